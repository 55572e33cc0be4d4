#!/usr/bin/env bash
# Fuzz the cold-file reader, the TOML config loader and record decoding (see fuzz/README.md).
#
#   bash scripts/fuzz.sh [TARGET...]      # default: cold_file config_toml record_decode
#
# Installs cargo-fuzz into a cache (once), builds the targets on the stable toolchain with
# `--sanitizer none`, then runs each target for FUZZ_SECONDS (default 60) on a temporary copy
# of its committed corpus fuzz/corpus/TARGET. Fails if any target crashes (panic, abort, OOM
# over 2 GiB, an input running over 10 s; cold_file excepted for timeouts, see fuzz/README.md);
# the crashing inputs are kept under FUZZ_ARTIFACTS (outside the repository).
#
# Environment:
#   FUZZ_SECONDS=60         seconds per target
#   FUZZ_MERGE=1            afterwards, add the inputs that reach new code (edges) to
#                           fuzz/corpus/TARGET (the only way this script writes into the
#                           repository; prune before committing, see fuzz/README.md)
#   FUZZ_DEBUG_ASSERTIONS=0 build like a plain release build (no debug assertions or overflow
#                           checks), into "$FUZZ_TARGET_DIR-nodebug"
#   FUZZ_STRICT_PANICS=1    cold_file: a panic the library catches counts as a crash too
#   FUZZ_TARGET_DIR         build directory (default ~/.cache/tiered-storage-fuzz-target)
#   FUZZ_ARTIFACTS          where crash inputs go (default ~/.cache/tiered-storage-fuzz-artifacts)
#   CARGO_FUZZ_ROOT         where cargo-fuzz is installed (default ~/.cache/cargo-tools)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-60}
tools=${CARGO_FUZZ_ROOT:-$HOME/.cache/cargo-tools}
target_dir=${FUZZ_TARGET_DIR:-$HOME/.cache/tiered-storage-fuzz-target}
artifacts_root=${FUZZ_ARTIFACTS:-$HOME/.cache/tiered-storage-fuzz-artifacts}
export PATH="$tools/bin:$PATH"
export CARGO_TERM_COLOR=never

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(cold_file config_toml record_decode)
fi

# libfuzzer-sys compiles libFuzzer (C++) from source.
if ! command -v c++ >/dev/null 2>&1; then
    echo "== installing g++ (libFuzzer is built from source)"
    apt-get update -qq && apt-get install -y -qq g++
fi

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools"
    cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked --root "$tools"
fi

# Stable toolchain: no sanitizer (ASan needs nightly's -Zsanitizer). -O -a: optimized, with
# debug assertions and overflow checks, so arithmetic overflow panics: a crash in tiered-storage's
# code, an Error::ColdFile inside parquet (which a release build may instead wrap into an abort,
# see fuzz/README.md, "Known issues").
build=(cargo fuzz build -O -a --sanitizer none --target-dir "$target_dir")
if [ "${FUZZ_DEBUG_ASSERTIONS:-1}" = 0 ]; then
    target_dir="$target_dir-nodebug"
    build=(cargo fuzz build -O --sanitizer none --target-dir "$target_dir")
fi
echo "== ${build[*]}"
(cd fuzz && "${build[@]}")
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

work=$(mktemp -d "${TMPDIR:-/tmp}/tiered-storage-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    bin="$bin_dir/$t"
    [ -x "$bin" ] || { echo "no fuzz target $t ($bin)" >&2; exit 2; }
    corpus="$work/$t/corpus"
    mkdir -p "$corpus" "$work/$t/artifacts" "$work/$t/tmp"
    cp -r "fuzz/corpus/$t/." "$corpus/"
    # cold_file: parquet 60.1 spends seconds to hours skipping Thrift bool lists in a footer
    # (fuzz/README.md, "Known issues"): such inputs time out; they are reported, not failed.
    ignore_timeouts=0
    [ "$t" = cold_file ] && ignore_timeouts=1
    echo "== fuzz $t for ${seconds}s ($(ls "$corpus" | wc -l) corpus inputs)"
    status=0
    # Fork mode: a timeout (10 s per input) or OOM (2 GiB) ends one child, not the run.
    (cd "$work/$t" && TMPDIR="$work/$t/tmp" "$bin" "$corpus" \
        -fork=1 -ignore_crashes=0 -ignore_ooms=0 -ignore_timeouts="$ignore_timeouts" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$work/$t/artifacts/" >"$work/$t/log" 2>&1) || status=$?
    grep -E '^#[0-9]+: cov' "$work/$t/log" | tail -n 1 || true
    grep -E '^(INFO: exiting|cold_file: dependency panic)' "$work/$t/log" || true
    crashes=$(find "$work/$t/artifacts" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'leak-*' \
        -o -name 'timeout-*' \) | wc -l)
    slow=$(find "$work/$t/artifacts" -type f -name 'timeout-*' | wc -l)
    [ "$ignore_timeouts" = 1 ] && crashes=$((crashes - slow))
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ] || [ "$slow" -gt 0 ]; then
        keep="$artifacts_root/$(date -u +%Y%m%dT%H%M%SZ)-$t"
        mkdir -p "$keep"
        cp -r "$work/$t/artifacts/." "$keep/" 2>/dev/null || true
        cp "$work/$t/log" "$keep/log"
    fi
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed+=("$t")
        echo "!! $t crashed (exit $status, $crashes crash inputs)"
        grep -vE '^#[0-9]+: cov' "$work/$t/log" | tail -n 20
        # Fork mode keeps the children's output to itself: replay each input for its message.
        for input in "$work/$t/artifacts"/crash-* "$work/$t/artifacts"/oom-* \
            "$work/$t/artifacts"/leak-*; do
            [ -f "$input" ] || continue
            echo "!! $(basename "$input"):"
            (cd "$work/$t" && TMPDIR="$work/$t/tmp" timeout 60 "$bin" -rss_limit_mb=2048 "$input" 2>&1 |
                grep -E -A 3 "panicked|ERROR: libFuzzer|out-of-memory" | head -n 12) || true
        done
        echo "!! crash inputs and log kept in $keep"
        echo "!! reproduce: $bin $keep/<input>"
    elif [ "$slow" -gt 0 ]; then
        echo "note: $t: $slow input(s) timed out (known parquet issue, not a failure); kept in $keep"
    fi
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        echo "== merging new coverage of $t into fuzz/corpus/$t"
        TMPDIR="$work/$t/tmp" "$bin" -set_cover_merge=1 -use_counters=0 -timeout=10 \
            "$repo/fuzz/corpus/$t" "$corpus" \
            >"$work/$t/merge.log" 2>&1 || { tail -n 20 "$work/$t/merge.log"; exit 1; }
        grep -E 'MERGE-OUTER: [0-9]+ new files' "$work/$t/merge.log" || true
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashed: ${failed[*]}"
    echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, no crash"
echo "fuzz: ${#targets[@]} passed, 0 failed"
