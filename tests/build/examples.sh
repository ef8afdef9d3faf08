#!/bin/sh
# examples.sh BUILD [DIR] - the programs of examples/ run and do what they say: engine's gradient
# matches its closed form, and train_sample trains (the loss falls), samples and writes a PNG of
# one 28x28 sample per class in one row with a 2-pixel border (10 * 30 + 2 = 302 x 32, gray).
# DIR holds the example programs (default BUILD/examples); tests/build/install.sh passes the ones it
# built against an installed copy of the library. The sanitizer run leaves out train_sample's
# training and sampling (a few seconds here, over four minutes there; the library's trainer and
# samplers run under the sanitizers in the test programs).
NAME=examples; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
EX=${2:-$BUILD/examples}

# png_info FILE: "WIDTHxHEIGHT colour-type" from the IHDR chunk, or nothing if FILE is no PNG
png_info() {
    [ "$(od -An -tx1 -N8 "$1" 2>/dev/null | tr -d ' \n')" = 89504e470d0a1a0a ] || return 0
    od -An -tu1 -j16 -N10 "$1" | awk '{ printf "%dx%d %d\n", (($1 * 256 + $2) * 256 + $3) * 256 + $4,
                                              (($5 * 256 + $6) * 256 + $7) * 256 + $8, $10 }'
}

for p in engine train_sample; do
    check "$EX/$p is built (make all builds it)" [ -x "$EX/$p" ]
done

"$EX/engine" >"$T/engine.out" 2>&1; rc=$?
check "engine exits 0: $(tail -n 2 "$T/engine.out")" [ $rc -eq 0 ]
check "engine prints 6 gradient entries" [ "$(grep -c '^dw\[' "$T/engine.out")" -eq 6 ]
check "engine says they match the closed form" grep -q "matches the closed form" "$T/engine.out"

"$EX/train_sample" >"$T/usage.out" 2>&1; rc=$?
check "train_sample without arguments exits 2 with a usage line: rc=$rc" [ $rc -eq 2 ]
check "train_sample's usage line" grep -q "^usage: train_sample OUT.png" "$T/usage.out"

if [ -n "$DFS_SANITIZE" ]; then
    echo "$NAME: skipped under the sanitizer run: train_sample's training and sampling (it runs in 'make test')"
    summary
    exit
fi
start=$(date +%s)
"$EX/train_sample" "$T/samples.png" >"$T/ts.out" 2>&1; rc=$?
secs=$(( $(date +%s) - start ))
cat "$T/ts.out"
check "train_sample exits 0: $(tail -n 1 "$T/ts.out")" [ $rc -eq 0 ]
check "train_sample reports that the loss fell" grep -q "the loss fell" "$T/ts.out"
info=$(png_info "$T/samples.png")
check "train_sample wrote a 302x32 gray PNG, not '$info' ($(nonempty "$T/samples.png"))" \
    [ "$info" = "302x32 0" ]
echo "$NAME: train_sample took ${secs}s"

summary
