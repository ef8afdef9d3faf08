#!/bin/sh
# quality.sh MODEL [N] [OUTDIR] [ROWS] - the table of docs/QUALITY.md: FD (next to its real-data
# floor) and class accuracy against the number of network evaluations, one `diffuse eval` per
# row, N samples each (default 2000). Each row's JSON goes to OUTDIR (default
# runs/quality) and a Markdown table with the command of every row is printed at the end.
# ROWS is a space-separated list of sampler:steps:guidance (default: the full table below).
# Rows already in OUTDIR are reused, so an interrupted run resumes where it stopped.
# Environment: DIFFUSE (the binary), GUIDANCE (w of the guided rows, default 2), THREADS (2),
# CHUNK (draw each row with diffuse sample in files of CHUNK samples under OUTDIR/chunks, kept
# across interruptions, then pool them in one diffuse eval; default 0: one eval per row),
# EVAL_OPTS (more options for every diffuse eval, e.g. --ref SRC; default none).
set -u
MODEL=${1:?usage: bench/quality.sh MODEL [N] [OUTDIR] [ROWS]}
N=${2:-2000}
OUT=${3:-runs/quality}
D=${DIFFUSE:-build/diffuse}
EVAL_OPTS=${EVAL_OPTS:-}
W=${GUIDANCE:-2}
T=${THREADS:-2}
CHUNK=${CHUNK:-0}
case $CHUNK in *[!0-9]* | '') echo "quality.sh: CHUNK must be a whole number, not '$CHUNK'" >&2; exit 2 ;; esac
if [ "$CHUNK" -gt 0 ] && [ $(((N + CHUNK - 1) / CHUNK)) -gt 256 ]; then
    echo "quality.sh: CHUNK=$CHUNK makes more than the 256 files diffuse eval pools" >&2; exit 2
fi
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
    if [ "$CHUNK" -gt 0 ]; then
        # drawn in chunks of CHUNK samples (seeds 101, 102, ...) that survive an interruption,
        # then pooled by one eval; the floor keeps seed 1 like the other rows
        MT=$(basename "$MODEL" .safetensors) # chunks of one model are not taken for another's
        set --                 # the --samples arguments, quoted file by file
        c=0
        while [ $((c * CHUNK)) -lt "$N" ]; do
            f="$OUT/chunks/$MT-$s-$k-w$g-n$N-by$CHUNK-$c.npy"
            n=$((N - c * CHUNK)); [ "$n" -gt "$CHUNK" ] && n=$CHUNK
            if [ ! -s "$f" ] || [ ! -s "${f%.npy}.seconds" ]; then
                mkdir -p "$OUT/chunks" || exit 1
                echo "   chunk $((c + 1)) of $(((N + CHUNK - 1) / CHUNK)): $n samples, seed $((101 + c))" >&2
                t0=$(date +%s.%N)
                "$D" sample --model "$MODEL" --sampler "$s" --steps "$k" --guidance "$g" --n "$n" \
                    --seed $((101 + c)) --threads "$T" --out "$f" || exit 1
                awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "${f%.npy}.seconds"
            fi
            set -- "$@" --samples "$f"; c=$((c + 1))
        done
        "$D" eval --fd --acc "$@" $EVAL_OPTS --seed 1 --threads "$T" --json "${j%.json}.part.json" || exit 1
        secs=$(cat "$OUT/chunks/$MT-$s-$k-w$g-n$N-by$CHUNK-"*.seconds | awk '{ t += $1 } END { printf "%.1f", t }')
        # the model, the sampler's settings and the summed sampling time, as a row drawn in one
        # go has them (numbers rewritten by awk, so that ".5" becomes the JSON number 0.5)
        awk -v m="$MODEL" -v s="$s" -v k="$k" -v g="$g" -v c="$CHUNK" -v t="$secs" '
            function q(x) { gsub(/\\/, "\\\\", x); gsub(/"/, "\\\"", x); return "\"" x "\"" }
            NR == 1 { print; printf "\t\"model\":\t%s,\n\t\"sampler\":\t%s,\n\t\"steps\":\t%d,\n", q(m), q(s), k
                      printf "\t\"guidance\":\t%.10g,\n\t\"seed\":\t1,\n\t\"chunk\":\t%d,\n\t\"sample_seconds\":\t%.1f,\n", g, c, t
                      next }
            { print }' "${j%.json}.part.json" > "$j.tmp" && mv "$j.tmp" "$j" &&
            rm -f "${j%.json}.part.json" || exit 1
    else
        "$D" eval --fd --acc --model "$MODEL" --sampler "$s" --steps "$k" --guidance "$g" --n "$N" \
            $EVAL_OPTS --seed 1 --threads "$T" --json "$j" || exit 1
    fi
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
echo "Rows whose JSON has a \"chunk\" field (CHUNK=C) were drawn in files of C samples,"
echo "\`$D sample --model $MODEL --sampler S --steps K --guidance W --n C --seed 101+i --out chunk-i.npy\`"
echo "for i = 0, 1, ..., and pooled by \`$D eval --fd --acc --samples chunk-0.npy --samples chunk-1.npy ... --seed 1\`."
