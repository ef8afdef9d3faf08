#!/bin/sh
# quality.sh MODEL [N] [OUTDIR] [ROWS] - the table of docs/QUALITY.md: FD (next to its real-data
# floor) and class accuracy against the number of network evaluations, one `diffuse eval` per
# row, N samples each (default 2000). Each row's JSON goes to OUTDIR (default
# runs/quality) and a Markdown table with the command of every row is printed at the end.
# ROWS is a space-separated list of sampler:steps:guidance (default: the full table below).
# Rows already in OUTDIR are reused, so an interrupted run resumes where it stopped.
set -u
MODEL=${1:?usage: bench/quality.sh MODEL [N] [OUTDIR] [ROWS]}
N=${2:-2000}
OUT=${3:-runs/quality}
D=${DIFFUSE:-build/diffuse}
W=${GUIDANCE:-2}
ROWS=${4:-"ddpm:1000:1 ddim:10:1 ddim:20:1 ddim:50:1 ddim:100:1 dpm++2m:10:1 dpm++2m:20:1 heun:10:1 heun:20:1
ddpm:1000:$W ddim:10:$W ddim:20:$W ddim:50:$W ddim:100:$W dpm++2m:10:$W dpm++2m:20:$W heun:10:$W heun:20:$W"}
mkdir -p "$OUT" || exit 1

# a number from the JSON diffuse eval writes (cJSON: a tab before the key and after the colon)
num() { sed -n "s/^[[:space:]]*\"$1\":[[:space:]]*\\([-0-9.e+]*\\).*/\\1/p" "$2" | head -n 1; }

for row in $ROWS; do
    s=${row%%:*}; rest=${row#*:}; k=${rest%%:*}; g=${rest#*:}
    j="$OUT/$s-$k-w$g-n$N.json"
    [ -s "$j" ] && continue
    echo "== $s, $k steps, guidance $g, $N samples" >&2
    "$D" eval --fd --acc --model "$MODEL" --sampler "$s" --steps "$k" --guidance "$g" --n "$N" \
        --seed 1 --json "$j" || exit 1
done

echo "| sampler | steps | guidance | network evals / image | FD | floor | FD / floor | class acc | sampling s |"
echo "|---|---|---|---|---|---|---|---|---|"
for row in $ROWS; do
    s=${row%%:*}; rest=${row#*:}; k=${rest%%:*}; g=${rest#*:}
    j="$OUT/$s-$k-w$g-n$N.json"
    [ -s "$j" ] || continue
    nfe=$k
    [ "$s" = heun ] && nfe=$((2 * k - 1))
    [ "$g" != 1 ] && nfe=$((2 * nfe))
    printf '| %s | %s | %s | %s | %.2f | %.2f | %.2fx | %.1f%% | %.0f |\n' "$s" "$k" "$g" "$nfe" \
        "$(num fd "$j")" "$(num fd_floor "$j")" "$(num fd_ratio "$j")" \
        "$(awk -v a="$(num class_accuracy "$j")" 'BEGIN { print 100 * a }')" "$(num sample_seconds "$j")"
done
echo
echo "Each row: \`$D eval --fd --acc --model $MODEL --sampler S --steps K --guidance W --n $N --seed 1\`"
