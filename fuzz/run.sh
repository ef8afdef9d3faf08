#!/bin/sh
# `make fuzz`: runs each libFuzzer harness BUILD/fuzz_NAME for SECONDS seconds, FUZZ_JOBS at a
# time, on its seed corpus fuzz/corpus/NAME plus the inputs earlier runs found
# (BUILD/corpus/NAME, which is where new ones go; the committed corpus is never written).
# Prints each harness's executions and coverage (libFuzzer's final stats), copies every input
# that failed (crash-, oom-, leak-, timeout-) to fuzz/regressions/NAME/, where
# fuzz/replay.sh and `make test` replay it from then on, and exits non-zero if any harness
# found one. FUZZ_ONLY="png idx" picks harnesses; FUZZ_FLAGS adds libFuzzer flags.
#   usage: sh fuzz/run.sh BUILD SECONDS
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-60}
cd "$(dirname "$0")/.." || exit 2
NAMES=${FUZZ_ONLY:-"safetensors checkpoint classifier npy idx png tokenizer captions csv series mol cml molckpt"}

# Memory: a harness may not allocate more than 512 MB at once (no input of at most 64 KB needs
# that, whatever its header declares) nor hold more than 2 GB (ASan's shadow included).
# -timeout: one input taking 10 s is a finding (denial of service) too.
COMMON="-max_total_time=$SECONDS_EACH -print_final_stats=1 -max_len=65536 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512"

scratch=$(mktemp -d "${TMPDIR:-/dev/shm}/dfs-fuzz-run.XXXXXX" 2>/dev/null || mktemp -d) || exit 2
trap 'rm -rf "$scratch"' EXIT INT TERM
# one harness: NAME; its summary line goes to $scratch/NAME.line, "failed" to $scratch/NAME.failed
one() {
    name=$1
    bin=$BUILD/fuzz_$name
    work=$BUILD/corpus/$name
    art=$BUILD/artifacts/$name
    mkdir -p "$work" "$art" "fuzz/regressions/$name" "$scratch/tmp-$name"
    log=$BUILD/fuzz_$name.log
    start=$(date +%s)
    # shellcheck disable=SC2086
    TMPDIR=$scratch/tmp-$name ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$bin" $COMMON $FUZZ_FLAGS -artifact_prefix="$art/" "$work" "fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -n 1)
    corp=$(grep -E '^#[0-9]+' "$log" | grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' | tail -n 1)
    found=""
    for f in "$art"/crash-* "$art"/oom-* "$art"/leak-* "$art"/timeout-*; do
        [ -f "$f" ] || continue
        cp "$f" "fuzz/regressions/$name/" && rm -f "$f"
        found="$found fuzz/regressions/$name/$(basename "$f")"
    done
    line="fuzz $name: ${execs:-?} execs in ${secs}s (${rate:-?}/s), ${cov:-no coverage line}, ${corp:-corp: ?}, peak RSS ${rss:-?} MB"
    if [ $rc -ne 0 ] || [ -n "$found" ]; then
        line="$line, FAILED (exit $rc)${found:+:$found}"
        echo "$name" >"$scratch/$name.failed"
        { echo "---- last lines of $log:"; grep -v -E '^#[0-9]+' "$log" | tail -n 60; } >"$scratch/$name.tail"
    fi
    echo "$line" >"$scratch/$name.line"
}
for name in $NAMES; do
    [ -x "$BUILD/fuzz_$name" ] || { echo "fuzz: $BUILD/fuzz_$name is missing (make fuzz-build)"; exit 2; }
done
# FUZZ_JOBS harnesses at a time (default: the number of CPUs, at most 4); each runs on one core
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $jobs in ''|*[!0-9]*|0) echo "fuzz: FUZZ_JOBS='$jobs' is not a count"; exit 2 ;; esac
[ -n "${FUZZ_JOBS:-}" ] || [ "$jobs" -le 4 ] || jobs=4
running=0
for name in $NAMES; do
    echo "== fuzz $name: $SECONDS_EACH s"
    one "$name" &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then wait; running=0; fi
done
wait
summary=""
failed=""
for name in $NAMES; do
    [ -f "$scratch/$name.tail" ] && cat "$scratch/$name.tail"
    [ -f "$scratch/$name.failed" ] && failed="$failed $name"
    summary="$summary$(cat "$scratch/$name.line" 2>/dev/null || echo "fuzz $name: no result, FAILED")
"
    [ -f "$scratch/$name.line" ] || failed="$failed $name"
done
echo "== fuzz summary"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "fuzz: findings in:$failed (inputs kept in fuzz/regressions/; logs in $BUILD/fuzz_NAME.log)"
    exit 1
fi
echo "fuzz: no findings"
