#!/usr/bin/env bash
# The object-storage benchmark (benches/s3.rs) against two local S3 servers, in one command:
#   bash scripts/bench_s3.sh                          (2.5M records: about 10 minutes here)
#   BENCH_S3_RECORDS=200000 bash scripts/bench_s3.sh  (a quicker run)
# Installs s3s-fs once (scripts/s3_server.sh), starts a primary and a replica on free ports of
# 127.0.0.1 with temporary roots, runs `cargo bench --bench s3 --features s3`, and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tiered-storage-target}"
TIERED_STORAGE_S3_STATE="$(mktemp -d "${TMPDIR:-/tmp}/tiered-storage-s3-state.XXXXXX")"
export TIERED_STORAGE_S3_STATE
trap 'bash scripts/s3_server.sh stop-all; rm -rf "$TIERED_STORAGE_S3_STATE"' EXIT
bash scripts/s3_server.sh install >/dev/null
bash scripts/s3_server.sh start primary >/dev/null
bash scripts/s3_server.sh start replica >/dev/null
eval "$(bash scripts/s3_server.sh env primary replica)"
cargo bench --features s3 --bench s3
