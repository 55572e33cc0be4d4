#!/usr/bin/env bash
# Builds the service's example server, starts it on a temporary data directory and a free
# port, runs the standard-library Python client against it, then stops the server with
# SIGTERM and checks that it shut down cleanly (exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p tiered-storage-server --example serve
bin="${CARGO_TARGET_DIR:-target}/debug/examples/serve"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" "$work/store" 127.0.0.1:0 >"$work/out" 2>"$work/err" &
server_pid=$!

url=""
for _ in $(seq 1 200); do
    url="$(sed -n 's/^listening on \(http:\/\/.*\)$/\1/p' "$work/out")"
    [[ -n "$url" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "python_client.sh: the server exited before listening:" >&2
        cat "$work/err" >&2
        exit 1
    fi
    sleep 0.05
done
[[ -n "$url" ]] || { echo "python_client.sh: the server did not start" >&2; exit 1; }

python3 crates/tiered-storage-server/examples/python_client.py "$url"

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
if [[ "$status" -ne 0 ]]; then
    echo "python_client.sh: the server exited with $status after SIGTERM:" >&2
    cat "$work/err" >&2
    exit 1
fi
grep -q '^stopped$' "$work/out" || { echo "python_client.sh: no clean stop" >&2; exit 1; }
echo "python_client.sh: passed (server stopped cleanly on SIGTERM)"
