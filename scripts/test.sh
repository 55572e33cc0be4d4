#!/usr/bin/env bash
# The one test command: `cargo test --workspace --features tiered-storage/failpoints,tiered-storage/s3`
# (every crate of the workspace: the library, whose crash-point tests, tests/cold_crash.rs and
# tests/torture.rs, need `failpoints` and whose object-store tests need `s3`; the YCSB harness,
# crates/ycsb; the sqlx co-linking check, crates/sqlx-compat; the HTTP service,
# crates/tiered-storage-server; the CLI, crates/tiered-storage-cli), with the fault-injection and
# S3-server tests required rather than skipped when their tools are missing, then a smoke run of
# the YCSB harness and the service's Python-client and browser checks.
#
# - Installs s3s-fs 0.14.1 (a real S3-protocol server, `cargo install` into
#   ~/.cache/tiered-storage-tools, once) and starts two instances on free ports of 127.0.0.1,
#   `primary` and `replica` (two regions), through scripts/s3_server.sh; exports their endpoints
#   (TIERED_STORAGE_S3_ENDPOINT, TIERED_STORAGE_S3_ENDPOINT_2), the bucket, the test credentials
#   (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and TIERED_STORAGE_S3_REQUIRED=1 (tests/s3_server.rs
#   and the S3 crash tests fail instead of skipping without a server); stops them on exit.
#
# - Installs Debian's fiu-utils (libfiu: fiu-run, fiu-ctrl, the POSIX preload library) when it
#   is missing, and util-linux's prlimit (the RLIMIT_FSIZE fallback of the disk-full tests).
# - Runs `cargo test --features failpoints` with TIERED_STORAGE_FIU=1 (tests/faults.rs: a
#   missing libfiu fails instead of skipping) and, as root, TIERED_STORAGE_TMPFS=1 (the
#   disk-full tests must mount their 48 MiB tmpfs; not root: they fall back to RLIMIT_FSIZE in
#   a child process). The long release runs below use the same feature, so they share a build.
# - TIERED_STORAGE_LONG=1 then runs the long modes in release builds: 1,000 crash cycles
#   (tests/torture.rs) and 500 libfiu fault runs (tests/faults.rs), printing their figures.
#
# - Then `cargo run -p ycsb -- --smoke`: the harness on 20,000 records, 0.1 s per cell,
#   checking that every system returns what was written (not timings), so it cannot rot.
# - Then the HTTP service's outside checks: scripts/python_client.sh (a standard-library Python
#   client puts, updates, reads, scans and reads /metrics against a running service, which must
#   exit 0 on SIGTERM) and scripts/browser_test.sh (installs Debian's chromium and
#   chromium-driver, Selenium into .venv; loads the dashboard against a service filled with
#   known data; screenshots in target/browser/).
# - Then the cross-tier property tests (tests/cold_model.rs) once more with the cold tier in an
#   in-process object store (TIERED_STORAGE_TEST_COLD_STORE=memory, tests/common), a smoke
#   run of the S3 benchmark (benches/s3.rs, tiny sizes, debug build), and Polars (from PyPI,
#   in .venv) reading an archive in the bucket through the S3 endpoint (scripts/polars_s3.sh).
# - Then the DuckDB interoperability check (DuckDB from PyPI into .venv), and each fuzz target
#   (scripts/fuzz.sh: cargo-fuzz into ~/.cache) for FUZZ_SECONDS (default 30) on its corpus.
#
# Extra arguments go to the library's `cargo test --features failpoints,s3` (e.g.
# `scripts/test.sh --test faults`, `scripts/test.sh --test s3_server`), and skip the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tiered-storage-target}"

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

install_pkg() {
    # $1: a command the package provides, $2: the package.
    command -v "$1" >/dev/null && return 0
    echo "== installing $2 (for $1)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" \
        || { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$2"; } \
        || echo "!! could not install $2"
}

install_pkg fiu-run fiu-utils
install_pkg prlimit util-linux

if command -v fiu-run >/dev/null && command -v fiu-ctrl >/dev/null; then
    export TIERED_STORAGE_FIU=1
else
    echo "!! libfiu is not available: tests/faults.rs skips fiu_random_io_faults"
fi
if [ "$(id -u)" = 0 ]; then
    export TIERED_STORAGE_TMPFS=1
fi

# The S3 servers: this run's own state directory, so `stop-all` stops only its instances.
TIERED_STORAGE_S3_STATE="$(mktemp -d "${TMPDIR:-/tmp}/tiered-storage-s3-state.XXXXXX")"
export TIERED_STORAGE_S3_STATE
trap 'bash scripts/s3_server.sh stop-all; rm -rf "$TIERED_STORAGE_S3_STATE"' EXIT
bash scripts/s3_server.sh install >/dev/null
bash scripts/s3_server.sh start primary >/dev/null
bash scripts/s3_server.sh start replica >/dev/null
eval "$(bash scripts/s3_server.sh env primary replica)"
export TIERED_STORAGE_S3_REQUIRED=1
echo "== S3 servers (s3s-fs): primary $TIERED_STORAGE_S3_ENDPOINT, replica $TIERED_STORAGE_S3_ENDPOINT_2"

if [ "$#" != 0 ]; then
    echo "== cargo test --features failpoints,s3 $* (TIERED_STORAGE_FIU=${TIERED_STORAGE_FIU:-auto}, TIERED_STORAGE_TMPFS=${TIERED_STORAGE_TMPFS:-auto})"
    cargo test --features failpoints,s3 "$@"
else
    echo "== cargo test --workspace --features tiered-storage/failpoints,tiered-storage/s3 (TIERED_STORAGE_FIU=${TIERED_STORAGE_FIU:-auto}, TIERED_STORAGE_TMPFS=${TIERED_STORAGE_TMPFS:-auto})"
    cargo test --workspace --features tiered-storage/failpoints,tiered-storage/s3
    echo "== the cross-tier property tests with the cold tier in an object store (memory://)"
    TIERED_STORAGE_TEST_COLD_STORE=memory cargo test --features failpoints,s3 --test cold_model
    echo "== the S3 benchmark's smoke run (tiny sizes, debug build: checks it runs, not its figures)"
    BENCH_S3_RECORDS=5000 BENCH_S3_LOOKUPS=20 cargo test --features s3 --bench s3
    echo "== Polars reads the archive in the bucket through the S3 endpoint"
    bash scripts/polars_s3.sh
    echo "== YCSB harness smoke run (every system returns what was written)"
    cargo run -p ycsb -- --smoke --seconds 0.1
    echo "== HTTP service: the standard-library Python client against a running service"
    bash scripts/python_client.sh
    echo "== HTTP service: the dashboard in a real browser (Debian's chromium, Selenium)"
    bash scripts/browser_test.sh
    echo "== DuckDB interoperability"
    bash scripts/duckdb_interop.sh
    echo "== fuzz: each target for ${FUZZ_SECONDS:-30} s on its committed corpus"
    FUZZ_SECONDS="${FUZZ_SECONDS:-30}" bash scripts/fuzz.sh
fi

if [ "${TIERED_STORAGE_LONG:-0}" = 1 ]; then
    echo "== long: 1,000 crash cycles (release)"
    TIERED_STORAGE_TORTURE_CYCLES="${TIERED_STORAGE_TORTURE_CYCLES:-1000}" \
        cargo test --release --features failpoints,s3 --test torture -- --nocapture
    echo "== long: 500 libfiu fault runs (release)"
    TIERED_STORAGE_FIU_RUNS="${TIERED_STORAGE_FIU_RUNS:-500}" \
        cargo test --release --features failpoints,s3 --test faults fiu_random_io_faults -- --nocapture
fi
