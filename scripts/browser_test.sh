#!/usr/bin/env bash
# Real-browser test of the dashboard: Debian's chromium + chromedriver driven by Selenium (from
# PyPI, into the project's venv) against the service (the server crate's `serve` example) filled
# with known data. scripts/browser_test.py has the checks; screenshots go to target/browser/.
# Needs cargo, python3 with venv, and as root apt-get (the first time) and PyPI access.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tiered-storage-target}"
SELENIUM_VERSION=4.45.0

# Debian's chromium and its driver (Playwright's or Selenium's own browser downloads do not work
# on a closed network; these do).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "browser_test: chromium and chromedriver are missing; install Debian's chromium and chromium-driver (as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    pkgs=(chromium chromium-driver)
    if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${pkgs[@]}" >&2
    fi
fi
chromium="$(command -v chromium)"
chromedriver="$(command -v chromedriver)"
echo "browser_test: $("$chromium" --version 2>/dev/null | head -n1); $("$chromedriver" --version | head -n1)"

# The project's venv (the one scripts/python_env.sh makes for DuckDB), with Selenium pinned.
venv="${TIERED_STORAGE_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION" >&2
fi
PY="$(cd "$venv" && pwd)/bin/python"

cargo build --release -p tiered-storage-server --example serve
serve_bin="$CARGO_TARGET_DIR/release/examples/serve"

# The test starts the service itself (twice: open, then with a token required for reads, on the
# same data), stops it with SIGTERM and requires exit status 0 each time.
"$PY" scripts/browser_test.py --serve-bin "$serve_bin" --chromium "$chromium" \
    --chromedriver "$chromedriver" --out target/browser
