#!/bin/sh
# Replays every regression file (fuzz/regressions/NAME/*) and every corpus file
# (fuzz/corpus/NAME/*) through the harness NAME built with the Makefile's compiler and flags
# (BUILD/fuzz/replay_NAME: fuzz/replay_main.c instead of libFuzzer, so no clang is needed).
# One process per file; a file passes when the harness exits 0 within FUZZ_REPLAY_TIMEOUT
# seconds (default 120). Files under fuzz/regressions/NAME/slow/ are replayed only with
# FUZZ_REPLAY_SLOW=1. Prints "fuzz_replay: N passed, N failed" (tests/run.sh adds it up) and
# exits non-zero if any file failed.
#   usage: sh fuzz/replay.sh [BUILD]     (BUILD defaults to build)
BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 2
NAMES="safetensors checkpoint classifier npy idx png tokenizer captions csv series mol cml molckpt"
TIMEOUT=${FUZZ_REPLAY_TIMEOUT:-120}

# Build the replay binaries (normally `make all` has, with the same flags as the library). A
# library built with sanitizers (test-asan) needs them at link time too.
flags=""
if [ -f "$BUILD/libdiffuse.a" ] && nm "$BUILD/libdiffuse.a" 2>/dev/null | grep -q __asan_init; then
    flags="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
fi
if [ -n "$flags" ]; then
    # an allocation over 1 GiB is a finding, as libFuzzer's -malloc_limit_mb makes it: no input
    # here needs one (the 1.4 GB tEXt chunk of regressions/png/oom-tEXt-* did, before the fix)
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}max_allocation_size_mb=1024"
    make --no-print-directory BUILD="$BUILD" CFLAGS="$flags" fuzz-replay >/dev/null || { echo "fuzz_replay: build failed"; echo "fuzz_replay: 0 passed, 1 failed"; exit 1; }
else
    make --no-print-directory BUILD="$BUILD" fuzz-replay >/dev/null || { echo "fuzz_replay: build failed"; echo "fuzz_replay: 0 passed, 1 failed"; exit 1; }
fi

pass=0; fail=0
log=$(mktemp) || exit 2
scratch=$(mktemp -d) || exit 2
trap 'rm -rf "$log" "$scratch"' EXIT
for name in $NAMES; do
    bin=$BUILD/fuzz/replay_$name
    files=""
    for f in fuzz/regressions/$name/* fuzz/corpus/$name/*; do
        [ -f "$f" ] && files="$files $f"
    done
    if [ "${FUZZ_REPLAY_SLOW:-0}" = 1 ]; then
        for f in fuzz/regressions/$name/slow/*; do [ -f "$f" ] && files="$files $f"; done
    fi
    n=0; bad=0
    for f in $files; do
        n=$((n + 1))
        if TMPDIR=$scratch timeout "$TIMEOUT" "$bin" "$f" >"$log" 2>&1; then
            pass=$((pass + 1))
        else
            rc=$?
            fail=$((fail + 1)); bad=$((bad + 1))
            [ $rc -eq 124 ] && why="timed out after ${TIMEOUT}s" || why="exit status $rc"
            echo "FAIL fuzz $name: $f: $why"
            tail -n 30 "$log" | sed 's/^/    /'
        fi
    done
    echo "fuzz $name: $((n - bad)) of $n files replayed cleanly"
done
echo "fuzz_replay: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
