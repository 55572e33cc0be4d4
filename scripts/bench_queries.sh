#!/usr/bin/env bash
# The query benchmark with its DuckDB baseline, in one command:
#   bash scripts/bench_queries.sh      (2.5M archived records; BENCH_QUERY_ROWS=500000 for a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tiered-storage-target}"
BENCH_PYTHON="$(bash scripts/python_env.sh)"
export BENCH_PYTHON
exec cargo bench --bench queries --features sql
