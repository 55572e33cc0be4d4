#!/usr/bin/env bash
# A real S3-protocol server for the object-store tests and benchmarks: s3s-fs 0.14.1 from
# crates.io (SigV4, multipart, conditional PUTs, range GETs) over a temporary directory, one
# instance per name. Two instances stand in for two regions (the primary and a replica).
#
#   bash scripts/s3_server.sh install        install s3s-fs into the cached root (once)
#   bash scripts/s3_server.sh start NAME     start NAME (again: on its old port and root)
#   bash scripts/s3_server.sh stop NAME      stop NAME, keeping its port and root for a restart
#   bash scripts/s3_server.sh restart NAME   stop, then start on the same port and root
#   bash scripts/s3_server.sh info NAME      print NAME's PORT=, PID=, ROOT= (its state file)
#   bash scripts/s3_server.sh env [P [R]]    print the `export` lines the tests read, for the
#                                            instances P (default primary) and R (replica)
#   bash scripts/s3_server.sh remove NAME    stop NAME, remove its root and state
#   bash scripts/s3_server.sh stop-all       stop every instance, remove their roots and state
#
# `start` picks a free port on 127.0.0.1, makes a root directory holding the bucket's
# directory ($TIERED_STORAGE_S3_BUCKET, default tiered-storage-test: s3s-fs serves each
# top-level directory as a bucket), starts s3s-fs with fixed test credentials, waits until the
# port answers and writes PORT, PID and ROOT to $state/NAME.env; it prints the same lines. The
# objects are plain files: bucket `b`, key `p/date=D/part-N.parquet` is
# `ROOT/b/p/date=D/part-N.parquet`.
#
# Environment:
# - TIERED_STORAGE_TOOLS: the install root (default ~/.cache/tiered-storage-tools), so CI
#   installs once; `cargo install s3s-fs@0.14.1 --features binary --locked` (0.15 and later
#   need a newer rustc);
# - TIERED_STORAGE_S3_STATE: the state directory (default ${TMPDIR:-/tmp}/tiered-storage-s3-$UID);
# - TIERED_STORAGE_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: override the defaults.
set -euo pipefail

S3S_VERSION=0.14.1
tools="${TIERED_STORAGE_TOOLS:-$HOME/.cache/tiered-storage-tools}"
bin="$tools/bin/s3s-fs"
state="${TIERED_STORAGE_S3_STATE:-${TMPDIR:-/tmp}/tiered-storage-s3-$(id -u)}"
bucket="${TIERED_STORAGE_S3_BUCKET:-tiered-storage-test}"
access_key="${AWS_ACCESS_KEY_ID:-tiered-storage-test-key}"
secret_key="${AWS_SECRET_ACCESS_KEY:-tiered-storage-test-secret}"
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

die() {
    echo "s3_server.sh: $*" >&2
    exit 1
}

install() {
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$S3S_VERSION"; then
        return 0
    fi
    echo "== installing s3s-fs $S3S_VERSION into $tools (once; a few minutes)" >&2
    cargo install "s3s-fs@$S3S_VERSION" --features binary --locked --root "$tools" >&2
    [ -x "$bin" ] || die "cargo install did not produce $bin"
}

# Whether something accepts connections on 127.0.0.1:$1.
answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        answers "$p" || { echo "$p"; return; }
    done
    die "no free port found"
}

check_name() {
    [[ "${1:-}" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad instance name '${1:-}' (letters, digits, _ . -)"
}

# Load NAME's state file into PORT, PID, ROOT (empty when there is none).
load() {
    PORT="" PID="" ROOT=""
    local f="$state/$1.env"
    [ -f "$f" ] || return 0
    # shellcheck disable=SC1090
    . "$f"
}

save() {
    mkdir -p "$state"
    printf 'PORT=%s\nPID=%s\nROOT=%s\n' "$PORT" "$PID" "$ROOT" >"$state/$1.env.tmp"
    mv "$state/$1.env.tmp" "$state/$1.env"
}

running() {
    [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null
}

# Start s3s-fs on $PORT over $ROOT; returns 1 if it died before answering (port taken).
launch() {
    local name="$1" log="$state/$1.log"
    mkdir -p "$state" "$ROOT/$bucket"
    # Detached from the caller's pipes, so a test that runs this script with captured output
    # is not kept waiting by the server.
    setsid "$bin" --host 127.0.0.1 --port "$PORT" --access-key "$access_key" \
        --secret-key "$secret_key" "$ROOT" </dev/null >>"$log" 2>&1 &
    PID=$!
    for _ in $(seq 1 500); do
        if answers "$PORT"; then
            save "$name"
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || { PID=""; return 1; }
        sleep 0.01
    done
    kill "$PID" 2>/dev/null || true
    die "s3s-fs $name did not answer on 127.0.0.1:$PORT within 5 s (log: $log)"
}

start() {
    check_name "$1"
    [ -x "$bin" ] || install
    load "$1"
    if running; then
        echo "s3_server.sh: $1 is already running" >&2
    elif [ -n "$PORT" ]; then
        # A restart: same port and root, so clients and the objects stay where they were.
        # The old port can take a moment to be free again.
        local ok=""
        for _ in $(seq 1 50); do
            if launch "$1"; then ok=1; break; fi
            sleep 0.1
        done
        [ -n "$ok" ] || die "s3s-fs $1 could not restart on port $PORT (log: $state/$1.log)"
    else
        ROOT="$(mktemp -d "${TMPDIR:-/tmp}/tiered-storage-s3-$1.XXXXXX")"
        local ok=""
        for _ in $(seq 1 10); do
            PORT="$(free_port)"
            if launch "$1"; then ok=1; break; fi
        done
        [ -n "$ok" ] || die "s3s-fs $1 could not start (log: $state/$1.log)"
    fi
    printf 'PORT=%s\nPID=%s\nROOT=%s\n' "$PORT" "$PID" "$ROOT"
}

stop() {
    check_name "$1"
    load "$1"
    if running; then
        kill "$PID" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.01
        done
        kill -9 "$PID" 2>/dev/null || true
    fi
    if [ -n "$PORT" ]; then
        PID=""
        save "$1"
    fi
}

remove() {
    stop "$1"
    load "$1"
    case "$ROOT" in
        "${TMPDIR:-/tmp}"/tiered-storage-s3-*) rm -rf "$ROOT" ;;
    esac
    rm -f "$state/$1.env" "$state/$1.log"
}

stop_all() {
    [ -d "$state" ] || return 0
    local f
    for f in "$state"/*.env; do
        [ -e "$f" ] || continue
        remove "$(basename "$f" .env)"
    done
}

print_env() {
    local primary="${1:-primary}" replica="${2:-replica}"
    load "$primary"
    [ -n "$PORT" ] || die "no instance $primary (start it first)"
    echo "export TIERED_STORAGE_S3_ENDPOINT=http://127.0.0.1:$PORT"
    echo "export TIERED_STORAGE_S3_ROOT=$ROOT"
    echo "export TIERED_STORAGE_S3_NAME=$primary"
    load "$replica"
    if [ -n "$PORT" ]; then
        echo "export TIERED_STORAGE_S3_ENDPOINT_2=http://127.0.0.1:$PORT"
        echo "export TIERED_STORAGE_S3_ROOT_2=$ROOT"
        echo "export TIERED_STORAGE_S3_NAME_2=$replica"
    fi
    echo "export TIERED_STORAGE_S3_BUCKET=$bucket"
    echo "export TIERED_STORAGE_S3_SCRIPT=$script"
    echo "export TIERED_STORAGE_S3_STATE=$state"
    echo "export AWS_ACCESS_KEY_ID=$access_key"
    echo "export AWS_SECRET_ACCESS_KEY=$secret_key"
    echo "export AWS_REGION=${AWS_REGION:-us-east-1}"
}

case "${1:-}" in
    install) install; echo "$bin" ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    restart) stop "${2:-}"; start "${2:-}" ;;
    info) check_name "${2:-}"; cat "$state/$2.env" 2>/dev/null || die "no instance $2" ;;
    env) print_env "${2:-}" "${3:-}" ;;
    remove) remove "${2:-}" ;;
    stop-all) stop_all ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
