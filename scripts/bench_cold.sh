#!/usr/bin/env bash
# The cold-tier benchmark with its DuckDB baseline, in one command:
#   bash scripts/bench_cold.sh          (10M records; BENCH_COLD_ROWS=1000000 for a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tiered-storage-target}"
BENCH_PYTHON="$(bash scripts/python_env.sh)"
export BENCH_PYTHON
exec cargo bench --bench cold
