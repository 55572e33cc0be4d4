#!/usr/bin/env bash
# Creates (once) the project's Python venv with DuckDB and Polars, for the interoperability test and the
# cold benchmark's baseline, and prints the venv's python. Everything comes from PyPI, so this
# works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TIERED_STORAGE_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb, pytz, polars' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'duckdb>=1.1,<2' pytz 'polars>=1,<2' >&2
fi
echo "$(cd "$venv" && pwd)/bin/python"
