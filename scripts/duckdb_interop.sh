#!/usr/bin/env bash
# Interoperability test: the archive writes cold Parquet files (examples/cold_interop.rs) and
# DuckDB, installed from PyPI into the project's venv (scripts/python_env.sh), must read back the
# same ids, signatures, outcomes, timestamps, maps and row counts (scripts/duckdb_interop.py).
# Needs only cargo and python3 (with venv and network access to PyPI on the first run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tiered-storage-target}"

PY="$(bash scripts/python_env.sh)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cargo run --release --example cold_interop -- "$tmp"
"$PY" scripts/duckdb_interop.py "$tmp"
# After updates and removes of archived records and a second archival, the recipes that apply
# the delete files (DuckDB view, Polars) give the store's row count, ids and PnL by day.
"$PY" scripts/duckdb_deletes.py "$tmp/deletes"
"$PY" scripts/polars_deletes.py "$tmp/deletes"
