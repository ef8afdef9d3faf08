#!/bin/sh
# Runs every test program in BUILD/tests and every tests/*.sh script, adds up their
# "N passed, N failed" lines and prints the total. Exits non-zero if anything failed.
BUILD=${1:-build}
pass=0; fail=0; broken=""
log=$(mktemp)
run() {
    name=$1; shift
    start=$(date +%s)
    "$@" >"$log" 2>&1
    rc=$?
    cat "$log"
    line=$(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
    [ -n "$p" ] || { p=0; f=1; echo "$name: printed no summary line"; }
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$name: exited $rc"; fi
    pass=$((pass + p)); fail=$((fail + f))
    [ "$f" -eq 0 ] || broken="$broken $name"
    echo "-- $name done in $(( $(date +%s) - start ))s"
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run "$(basename "$t")" "$t"
done
for s in tests/*.sh; do
    case $s in tests/run.sh|tests/lib.sh) continue ;; esac
    [ -f "$s" ] || continue
    run "$(basename "$s")" sh "$s" "$BUILD"
done
rm -f "$log"
[ -z "$broken" ] || echo "failing:$broken"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
