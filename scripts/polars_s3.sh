#!/usr/bin/env bash
# Polars (from PyPI, in the project's venv: scripts/python_env.sh) reads an archive in an S3
# bucket through the S3 endpoint: examples/s3_interop.rs fills a store whose cold tier is in
# the bucket, archives it, changes archived records and archives again, and writes the ids and
# signatures the store serves; scripts/polars_s3.py must find the same rows, ids and
# signatures with `pl.scan_parquet("s3://bucket/prefix/...", hive_partitioning=True,
# storage_options=...)`, delete files applied.
#
# Uses the S3 server that TIERED_STORAGE_S3_ENDPOINT names (scripts/test.sh starts one), or
# starts one of its own (scripts/s3_server.sh) and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tiered-storage-target}"

PY="$(bash scripts/python_env.sh)"
tmp="$(mktemp -d)"
cleanup() { rm -rf "$tmp"; }
if [ -z "${TIERED_STORAGE_S3_ENDPOINT:-}" ]; then
    export TIERED_STORAGE_S3_STATE="$tmp/s3-state"
    cleanup() { bash scripts/s3_server.sh stop-all; rm -rf "$tmp"; }
    bash scripts/s3_server.sh start polars >/dev/null
    eval "$(bash scripts/s3_server.sh env polars)"
fi
trap cleanup EXIT

prefix="polars-$$-$(date +%s)"
cargo run --features s3 --example s3_interop -- "$tmp/fixture" "$prefix"
"$PY" scripts/polars_s3.py "$tmp/fixture" "$prefix"
