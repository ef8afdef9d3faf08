#!/bin/sh
# cli.sh BUILD - the diffuse program end to end: help, errors (one line, exit 2, no partial
# output), training with metrics, checkpoints and Ctrl-C, resume, sampling to PNG and .npy,
# noise strips and info.
NAME=cli.sh; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"

# help
for c in train sample noise info bench export eval; do
    "$D" $c --help >"$T/h" 2>&1; check "$c --help exits 0" [ $? -eq 0 ]
    check "$c --help prints usage" grep -q "usage: diffuse $c" "$T/h"
done
"$D" --help >"$T/h"; check "top-level help lists commands" grep -q "sample" "$T/h"

# argument errors
expect_error "unknown command" "unknown command" "$D" frobnicate
expect_error "unknown option" "unknown or incomplete option" "$D" train --bogus
expect_error "attention over 512 x 512 tokens" "at most 4096 (64 x 64)" "$D" train --data fashion-mnist --preset small \
    --image-size 1024 --out "$T/big1024"
check "no run folder left by a refused config" [ ! -e "$T/big1024/metrics.csv" ]
expect_error "an unknown short option in a cluster" "option '-x' (see diffuse sample --help)" "$D" sample -xy --model m
expect_error "a seed of ' -1'" "--seed expects a non-negative integer" "$D" sample --model m --seed " -1" --out "$T/x.png"
expect_error "--labels with a data set that has its own" "--labels goes with an IDX --data file" "$D" train \
    --data fashion-mnist-test --labels /nonexistent --limit 4 --out "$T/lab" --steps 1
expect_error "bad number" "--batch expects an integer" "$D" train --data fashion-mnist --out "$T/r" --batch 0
expect_error "a grid of 0 sampler steps" "--sample-steps expects" "$D" train --data fashion-mnist --out "$T/r" --sample-steps 0
expect_error "bad schedule" "--schedule must be" "$D" train --data fashion-mnist --out "$T/r" --schedule cubic
expect_error "missing --out" "--out RUNDIR is required" "$D" train --data fashion-mnist
expect_error "missing data" "no such file" "$D" train --data /nonexistent --out "$T/r"
expect_error "missing model" "$T/none.safetensors" "$D" sample --model "$T/none.safetensors" --out "$T/x.png"
printf 'garbage that is not a checkpoint' >"$T/corrupt.safetensors"
expect_error "corrupt model" "corrupt.safetensors" "$D" sample --model "$T/corrupt.safetensors" --out "$T/x.png"
check "no partial output after a failed sample" [ ! -e "$T/x.png" ]
expect_error "bad out extension" "must end in .png or .npy" "$D" sample --model "$T/corrupt.safetensors" --out "$T/x.jpg"
expect_error "info of corrupt" "corrupt.safetensors" "$D" info "$T/corrupt.safetensors"
expect_error "noise index range" "fashion-mnist-test has 10000 images" "$D" noise --data fashion-mnist-test --index 10000 --out "$T/n.png"
"$D" data build emoji --limit 1 --size 128 --out "$T/big" 2>/dev/null # one 128x128 image
expect_error "a noise strip too wide for a PNG" "too large for a PNG" "$D" noise --image "$T/big/000000.png" \
    --scale 16 --at "$(seq -s, 0 15 945)" --out "$T/n.png"
check "no partial noise strip" [ ! -e "$T/n.png" ]
# an IDX file with the wrong image size for the model
printf '\000\000\010\003\000\000\000\002\000\000\000\005\000\000\000\005' >"$T/small.idx"
head -c 50 /dev/zero >>"$T/small.idx"
expect_error "wrong image size" "model takes" "$D" train --data "$T/small.idx" --preset small --out "$T/r" --steps 1
head -c 30 "$T/small.idx" >"$T/trunc.idx"
expect_error "truncated idx" "truncated" "$D" train --data "$T/trunc.idx" --preset small --out "$T/r" --steps 1

# training: a small model on 64 images, with metrics, samples and a checkpoint
"$D" train --data fashion-mnist --limit 64 --preset small --steps 12 --batch 8 --log-every 1 --sample-steps 5 \
    --sample-every 12 --save-every 6 --seed 5 --threads 2 --out "$T/run" 2>"$T/train.err"
check "train exits 0" [ $? -eq 0 ]
check "train progress shows img/s" grep -q "img/s" "$T/train.err"
check "metrics.csv has 12 steps" [ "$(tail -n +2 "$T/run/metrics.csv" | wc -l)" -eq 12 ]
check "sample grid written" [ -s "$T/run/samples-000012.png" ]
check "checkpoint written" [ -s "$T/run/last.safetensors" ]
"$D" info "$T/run/last.safetensors" >"$T/info"
check "info shows the step" grep -q "step: *12" "$T/info"
check "info shows the parameter count" grep -q "parameters:" "$T/info"

# resume: 6 steps, then resume to 12 -> same losses as the straight run
"$D" train --data fashion-mnist --limit 64 --preset small --steps 6 --batch 8 --log-every 1 \
    --sample-every 0 --seed 5 --threads 2 --out "$T/run2" 2>/dev/null
"$D" train --resume "$T/run2/last.safetensors" --steps 12 --log-every 1 --sample-every 0 \
    --threads 2 --out "$T/run2" 2>/dev/null
check "resume exits 0" [ $? -eq 0 ]
cut -d, -f1,2 "$T/run/metrics.csv" >"$T/a.csv"
cut -d, -f1,2 "$T/run2/metrics.csv" >"$T/b.csv"
same_files "resumed losses are bit-identical to the straight run" "$T/a.csv" "$T/b.csv"

# a new run into a folder that holds one is refused, and the old run is kept
cp "$T/run2/metrics.csv" "$T/m.before"; cp "$T/run2/last.safetensors" "$T/c.before"
expect_error "a new run over an old one" "already holds a run" "$D" train --data fashion-mnist --limit 64 \
    --preset small --steps 2 --threads 1 --out "$T/run2"
check "the old run is kept" sh -c "cmp -s '$T/m.before' '$T/run2/metrics.csv' && cmp -s '$T/c.before' '$T/run2/last.safetensors'"
# rows logged past the checkpoint (a run killed before its next save) are dropped on resume, and
# a resume into a folder that holds another run is refused
cp -r "$T/run2" "$T/run7"; printf '13,0.5,0.001,104,1,1\n14,0.5,0.001,112,1,1\n' >>"$T/run7/metrics.csv"
"$D" train --resume "$T/run7/last.safetensors" --steps 14 --log-every 1 --sample-every 0 --threads 1 \
    --ema 0 --out "$T/run7" 2>"$T/r7.err"
check "an optimisation option given to a resume is named as overruled" \
    grep -q "note: --ema ignored; the resumed run keeps its 0.9999" "$T/r7.err"
check "resumed metrics.csv holds steps 1-14 once each" \
    [ "$(tail -n +2 "$T/run7/metrics.csv" | cut -d, -f1 | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 " ]
expect_error "a resume over another run" "already holds another run" "$D" train --resume "$T/run7/last.safetensors" \
    --steps 15 --threads 1 --out "$T/run2"
# a resumed record edited out of its options' ranges, or naming no data, is refused (edit_train:
# tests/lib.sh)
# the record keeps the float32 lr: a run at the edge of --lr's range (0.99) resumes
"$D" train --data fashion-mnist --limit 16 --preset small --steps 1 --batch 4 --lr 0.99 --sample-every 0 \
    --threads 1 --out "$T/edge" 2>/dev/null
"$D" train --resume "$T/edge/last.safetensors" --steps 2 --sample-every 0 --threads 1 --out "$T/edge" 2>"$T/edge.err"
check "a run at --lr 0.99 resumes" [ $? -eq 0 ]
# a given --lr is taken, and said (a run whose loss went NaN resumes with a lower one)
"$D" train --resume "$T/edge/last.safetensors" --steps 3 --lr 0.5 --sample-every 0 --threads 1 --out "$T/edge" \
    2>"$T/edge2.err"; rc=$?
check "a resume with --lr 0.5 exits 0: $(tail -n 1 "$T/edge2.err")" [ $rc -eq 0 ]
check "and says the run goes on at the given rate" grep -q "note: the run trained at --lr 0.99; it continues at 0.5" \
    "$T/edge2.err"
check "which its record keeps" sh -c "'$D' info '$T/edge/last.safetensors' | grep -q '\"lr\":0.5'"
expect_error "--labels beside a missing IDX file" "no such file or folder" "$D" train --data "$T/typo.idx" \
    --labels "$T/typo.lab" --out "$T/typo"
edit_train "$T/run2/last.safetensors" "$T/wd.safetensors" weight_decay 1e30
expect_error "a resumed weight decay of 1e30" '"weight_decay" is not a number in \[0, 10\]' "$D" train \
    --resume "$T/wd.safetensors" --steps 13 --threads 1 --out "$T/wdrun"
edit_train "$T/run2/last.safetensors" "$T/bt.safetensors" batch 1e300
expect_error "a resumed batch of 1e300" '"batch" is not a whole number' "$D" train \
    --resume "$T/bt.safetensors" --steps 13 --threads 1 --out "$T/btrun"
edit_train "$T/run2/last.safetensors" "$T/nd.safetensors" data -
expect_error "a resumed record without data" "names no training data; give --data" "$D" train \
    --resume "$T/nd.safetensors" --steps 13 --threads 1 --out "$T/ndrun"
# metrics.csv on a full disk (/dev/full): the run stops with an error before training a step,
# and its checkpoint is kept as it was
if [ -c /dev/full ]; then
    mkdir "$T/fullrun"; cp "$T/run2/last.safetensors" "$T/fullrun/"; ln -s /dev/full "$T/fullrun/metrics.csv"
    "$D" train --resume "$T/fullrun/last.safetensors" --steps 20 --log-every 1 --sample-every 0 --threads 1 \
        --out "$T/fullrun" 2>"$T/full.err"
    check "a full disk under metrics.csv fails the run" [ $? -eq 2 ]
    check "it says so" grep -q "cannot write .*metrics.csv: No space left on device" "$T/full.err"
    check "and the checkpoint is kept" cmp -s "$T/run2/last.safetensors" "$T/fullrun/last.safetensors"
fi
# the disk fills in the middle of a run (a file-size limit stands in for it: 2 blocks, 1 KiB in
# dash, 2 KiB in bash; writes past it fail with EFBIG as they would with ENOSPC): metrics.csv
# fails some steps in, the run stops and says so, the checkpoint it cannot save is the old one
# intact, no temporary file is left, and a resume once there is room again drops the
# half-written row and logs every step once
mkdir "$T/midfull"; cp "$T/run2/last.safetensors" "$T/run2/metrics.csv" "$T/midfull/"
(trap '' XFSZ; ulimit -f 2; exec "$D" train --resume "$T/midfull/last.safetensors" --steps 400 \
    --log-every 1 --save-every 100000 --sample-every 0 --threads 1 --out "$T/midfull") 2>"$T/midfull.err"
check "a disk filling mid-run fails the run" [ $? -eq 2 ]
last=$(tail -c 200 "$T/midfull/metrics.csv" | tail -n 2 | head -n 1 | cut -d, -f1)
check "after some steps were logged (last whole row: step $last)" [ "${last:-0}" -gt 13 -a "${last:-0}" -lt 400 ]
check "it names metrics.csv" grep -q "cannot write .*midfull/metrics.csv: File too large; stopping" "$T/midfull.err"
check "and says the checkpoint could not be saved" grep -q "and the checkpoint could not be saved" "$T/midfull.err"
check "the old checkpoint is intact" cmp -s "$T/run2/last.safetensors" "$T/midfull/last.safetensors"
check "no temporary file is left" [ -z "$(ls "$T/midfull" | grep -v -e '^last.safetensors$' -e '^metrics.csv$')" ]
"$D" train --resume "$T/midfull/last.safetensors" --steps 14 --log-every 1 --sample-every 0 --threads 1 \
    --out "$T/midfull" 2>/dev/null
check "the run resumes once there is room" [ $? -eq 0 ]
check "its metrics.csv holds steps 1-14 once each, the half-written row dropped" \
    [ "$(tail -n +2 "$T/midfull/metrics.csv" | cut -d, -f1 | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 " ]
# a row cut inside its step number, and a header cut short, are dropped on resume as well
mkdir "$T/cut1" "$T/cut2"; cp "$T/run2/last.safetensors" "$T/run2/metrics.csv" "$T/cut1/"
printf '1' >>"$T/cut1/metrics.csv"; cp "$T/run2/last.safetensors" "$T/cut2/"; printf 'step,lo' >"$T/cut2/metrics.csv"
for c in cut1 cut2; do
    "$D" train --resume "$T/$c/last.safetensors" --steps 13 --log-every 1 --sample-every 0 --threads 1 \
        --out "$T/$c" 2>/dev/null
done
check "a row cut in its step number is dropped" \
    [ "$(tail -n +2 "$T/cut1/metrics.csv" | cut -d, -f1 | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 9 10 11 12 13 " ]
check "a cut header is written again whole" [ "$(cat "$T/cut2/metrics.csv" | cut -d, -f1 | tr '\n' ' ')" = "step 13 " ]
# out of memory for activations (a 2 GB address-space limit against a batch of 4096 for the
# fmnist U-Net, which needs far more): the run says so and exits 2, and leaves no checkpoint
# behind, so a retry with a smaller batch into the same folder starts (not under the sanitizer,
# whose shadow memory needs the address space)
if [ -z "$DFS_SANITIZE" ]; then
    (ulimit -v 2000000; exec "$D" train --data fashion-mnist --limit 4096 --preset fmnist --batch 4096 \
        --steps 2 --sample-every 0 --threads 2 --out "$T/oom") 2>"$T/oom.err"
    check "a batch too large for memory fails the run with status 2" [ $? -eq 2 ]
    check "it says so" grep -q "^diffuse: out of memory for activations (.*): a smaller batch, image size or model$" "$T/oom.err"
    check "and leaves no checkpoint" [ ! -e "$T/oom/last.safetensors" ]
    "$D" train --data fashion-mnist --limit 64 --preset small --batch 8 --steps 2 --sample-every 0 --threads 2 \
        --out "$T/oom" 2>/dev/null
    check "a retry with a smaller batch in the same folder trains" [ $? -eq 0 ]
else
    echo "$NAME: skipped under the sanitizer run: the out-of-memory run under a 2 GB address-space limit"
fi
mkdir "$T/fiforun"; mkfifo "$T/fiforun/metrics.csv"
expect_error "a FIFO as metrics.csv" "metrics.csv is a FIFO" timeout 20 "$D" train --data fashion-mnist --limit 8 \
    --preset small --steps 1 --threads 1 --out "$T/fiforun"

# SIGTERM during training saves a checkpoint and exits 0; sent once a step is logged (within 60 s)
"$D" train --data fashion-mnist --limit 64 --preset small --steps 100000 --batch 8 --log-every 1 \
    --sample-every 0 --save-every 100000 --threads 2 --out "$T/run3" 2>"$T/sig.err" &
pid=$!
wait_until $pid 60 has_rows "$T/run3/metrics.csv"; started=$?
check "training logs a step within 60 s, before SIGTERM: $(tail -n 1 "$T/sig.err")" [ $started -eq 0 ]
kill -TERM $pid; wait $pid; rc=$?
check "SIGTERM exits 0" [ $rc -eq 0 ]
check "SIGTERM message" grep -q "interrupted at step [1-9]" "$T/sig.err"
check "SIGTERM checkpoint loads" "$D" info "$T/run3/last.safetensors" >/dev/null
check "no temp files left: $(ls "$T/run3" | tr '\n' ' ')" \
    [ -d "$T/run3" -a -z "$(ls "$T/run3" | grep -v -e '^last.safetensors$' -e '^metrics.csv$')" ]

# a PNG folder with class sub-folders, and a custom architecture (3 channels, 16x16)
mkdir -p "$T/pngs/cats" "$T/pngs/dogs"
for i in 1 2 3; do
    "$D" noise --data fashion-mnist --index $i --at $((i * 100)) --out "$T/pngs/cats/$i.png" 2>/dev/null
    "$D" noise --data fashion-mnist --index $((i + 10)) --at 5 --out "$T/pngs/dogs/$i.png" 2>/dev/null
done
"$D" train --data "$T/pngs" --preset small --channels 3 --image-size 16 --base-channels 8 \
    --mult 1,2 --blocks 1 --attn 8 --groups 4 --steps 2 --batch 2 --sample-every 2 \
    --out "$T/run4" 2>"$T/png.err"
check "train on a PNG folder with a custom U-Net" [ $? -eq 0 ]
check "the PNG folder's six images are found" grep -q "on 6 images" "$T/png.err"
"$D" info "$T/run4/last.safetensors" >"$T/info4"
check "custom architecture is kept" grep -q "U-Net 3x16x16, base channels 8, multipliers 1,2, attention at 8x8" "$T/info4"
expect_error "attention at a missing resolution" "no level has resolution" "$D" train --data "$T/pngs" \
    --preset small --attn 5 --out "$T/run5"

# sampling
"$D" sample --model "$T/run/last.safetensors" --n 20 --sampler ddim --steps 5 --out "$T/s.png" \
    --trajectory "$T/traj.png" 2>/dev/null
check "sample png" [ -s "$T/s.png" ]
check "trajectory png" [ -s "$T/traj.png" ]
# class names: a model trained on fashion-mnist carries them; the grid gets a caption band
pngh() { od -An -tu1 -j20 -N4 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }'; }
"$D" sample --model "$T/run/last.safetensors" --n 10 --sampler ddim --steps 2 --out "$T/nl.png" --no-labels 2>/dev/null
check "grid with class names is taller than without ($(pngh "$T/s.png") vs $(pngh "$T/nl.png"))" \
    [ "$(pngh "$T/s.png")" -gt "$(( $(pngh "$T/nl.png") * 2 ))" ]
check "plain grid of 10 is one row of 28 + borders" [ "$(pngh "$T/nl.png")" -eq 32 ]
expect_error "eval of a model whose images the classifier does not take" "makes 3x16x16 images but the classifier" \
    "$D" eval --fd --model "$T/run4/last.safetensors" --n 4000
expect_error "wrong number of class names" "needs 10 comma-separated names" "$D" sample --model "$T/run/last.safetensors" \
    --class-names a,b --out "$T/c.png"
"$D" sample --model "$T/run/last.safetensors" --n 6 --class 3 --guidance 2 --sampler ddim --steps 4 --out "$T/s.npy" 2>/dev/null
check "sample npy" [ -s "$T/s.npy" ]
check "npy header shape" grep -q "'shape': (6, 28, 28, 1)" "$T/s.npy"
check "labels npy" grep -q "'shape': (6,)" "$T/s.labels.npy"
"$D" sample --model "$T/run/last.safetensors" --n 2 --sampler ddim --steps 3 --seed 4 --out "$T/d1.npy" 2>/dev/null
"$D" sample --model "$T/run/last.safetensors" --n 2 --sampler ddim --steps 3 --seed 4 --out "$T/d2.npy" 2>/dev/null
same_files "same seed, same samples" "$T/d1.npy" "$T/d2.npy"
# outputs are checked before sampling: a missing folder, a folder in the way, one file for two
expect_error "--out in a missing folder" "the folder .*/none does not exist" "$D" sample --model "$T/run/last.safetensors" \
    --n 2 --out "$T/none/s.npy"
mkdir "$T/dir.png"
expect_error "--out is a folder" "exists and is not a regular file" "$D" sample --model "$T/run/last.safetensors" \
    --n 2 --out "$T/dir.png"
expect_error "--trajectory over --out" "name the same file" "$D" sample --model "$T/run/last.safetensors" \
    --n 2 --out "$T/t.png" --trajectory "$T/t.png"
expect_error "eval --json in a missing folder" "the folder .*/none does not exist" "$D" eval --fd \
    --model "$T/run/last.safetensors" --json "$T/none/e.json"
"$D" sample --model "$T/run/last.safetensors" --n 2 --sampler ddpm --steps 10 --out "$T/p.png" 2>/dev/null
check "ddpm respaced sample" [ -s "$T/p.png" ]
for smp in dpm++2m heun; do
    "$D" sample --model "$T/run/last.safetensors" --n 2 --sampler $smp --steps 4 --out "$T/$smp.png" 2>/dev/null
    check "$smp sample" [ -s "$T/$smp.png" ]
done
expect_error "unknown sampler" "must be ddpm, ddim, dpm++2m or heun" "$D" sample --model "$T/run/last.safetensors" --sampler euler --out "$T/c.png"

# export never writes over a training checkpoint: its own input, or another run's
cp "$T/run/last.safetensors" "$T/own.safetensors"
expect_error "export onto its own input" "is the --model file itself" "$D" export --model "$T/own.safetensors" --out "$T/own.safetensors"
expect_error "export onto another run" "holds a resumable training checkpoint" "$D" export --model "$T/run/last.safetensors" --out "$T/own.safetensors"
expect_error "export to another suffix" "must end in .safetensors" "$D" export --model "$T/run/last.safetensors" --out "$T/x.bin"
check "the training checkpoint is kept" cmp -s "$T/run/last.safetensors" "$T/own.safetensors"
# export: EMA weights only, float16, smaller, and samplable
"$D" export --model "$T/run/last.safetensors" --out "$T/ship.safetensors" 2>/dev/null
check "export exits 0" [ $? -eq 0 ]
check "exported model is smaller" [ "$(wc -c <"$T/ship.safetensors")" -lt "$(wc -c <"$T/run/last.safetensors")" ]
"$D" info "$T/ship.safetensors" >"$T/info5"
check "exported model holds sampling weights" grep -q "sampling weights" "$T/info5"
check "exported model keeps the step and images seen" grep -q "^images seen:  96$" "$T/info5"
"$D" sample --model "$T/ship.safetensors" --n 2 --sampler ddim --steps 3 --out "$T/ship.png" 2>/dev/null
check "sample from the exported model" [ -s "$T/ship.png" ]
expect_error "resume from a sampling model" "sampling weights only" "$D" train --resume "$T/ship.safetensors" --out "$T/r6"

# the variational bound in bits/dim on one test image
"$D" eval --nll --model "$T/run/last.safetensors" --n 1 >"$T/nll.txt" 2>/dev/null
check "eval --nll exits 0" [ $? -eq 0 ]
check "eval --nll prints bits/dim" grep -q "bits/dim" "$T/nll.txt"
expect_error "eval without --nll" "nll" "$D" eval --model "$T/run/last.safetensors"
# one 28x28 image whose label (12) names no class of the model: refused, not bounded unconditionally
printf '\000\000\010\003\000\000\000\001\000\000\000\034\000\000\000\034' >"$T/one.idx"
head -c 784 /dev/zero >>"$T/one.idx"
printf '\000\000\010\001\000\000\000\001\014' >"$T/one-labels.idx"
expect_error "a label outside the model's classes" "image 0 of .*one.idx has label 12; the model has classes 0..9" \
    "$D" eval --nll --model "$T/run/last.safetensors" --data "$T/one.idx" --labels "$T/one-labels.idx" --n 1

# FD and class accuracy with the shipped classifier: drawn from a model, then the same samples
# read back from .npy must give the same figures; real test images must score like real data.
# Under the sanitizer the FD reference is the first 500 test images instead of all 10,000: the
# same code on a twentieth of the classifier passes, each full pass taking a minute there
# (make test keeps the whole reference).
CLF=models/classifier.safetensors
REF=
if [ -n "$DFS_SANITIZE" ]; then
    /usr/bin/python3 - "$T/ref.idx" <<'EOF'
import gzip, struct, sys
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f: x = f.read()
open(sys.argv[1], "wb").write(struct.pack(">IIII", 0x803, 500, 28, 28) + x[16:16 + 500 * 784])
EOF
    REF="--ref $T/ref.idx"
fi
"$D" eval --fd --acc --model "$T/run/last.safetensors" --n 20 --steps 2 --json "$T/q.json" \
    --save-samples "$T/q.npy" --classifier "$CLF" $REF >"$T/q.txt" 2>"$T/q.err"
rc=$?
check "eval --fd --acc from a model exits 0: $(tail -n 1 "$T/q.err")" [ $rc -eq 0 ]
check "eval prints fd and its floor" grep -q "^fd: .* | floor " "$T/q.txt"
check "eval prints class accuracy" grep -q "^class accuracy: " "$T/q.txt"
check "eval writes JSON results" grep -q '"fd_floor"' "$T/q.json"
check "eval saves the samples and labels" [ -s "$T/q.npy" -a -s "$T/q.labels.npy" ]
# figures FILE FIELDS: the fd and class accuracy lines of an eval's output, cut to FIELDS
figures() { grep -E '^(fd|class accuracy): ' "$1" | cut -d'|' -f"$2"; }
"$D" eval --fd --acc --samples "$T/q.npy" --classifier "$CLF" $REF >"$T/q2.txt" 2>"$T/q2.err"
rc=$?
check "eval of the saved .npy exits 0: $(tail -n 1 "$T/q2.err")" [ $rc -eq 0 ]
figures "$T/q.txt" 1-2 >"$T/q.fig"; figures "$T/q2.txt" 1-2 >"$T/q2.fig"
same_files "eval of the saved .npy gives the same figures" "$T/q.fig" "$T/q2.fig"
/usr/bin/python3 - "$T" <<'EOF'
import gzip, sys, numpy as np
d = "/usr/share/datasets/fashion-mnist/"
with gzip.open(d + "t10k-images-idx3-ubyte.gz") as f: x = np.frombuffer(f.read(), np.uint8, offset=16)
with gzip.open(d + "t10k-labels-idx1-ubyte.gz") as f: y = np.frombuffer(f.read(), np.uint8, offset=8)
np.save(sys.argv[1] + "/real.npy", x.reshape(-1, 28, 28, 1)[:1000])
np.save(sys.argv[1] + "/real.labels.npy", y[:1000].astype("<i4"))
np.save(sys.argv[1] + "/flat.npy", x[:784 * 4])
np.save(sys.argv[1] + "/real8.npy", x.reshape(-1, 28, 28, 1)[:8])
np.save(sys.argv[1] + "/real8.labels.npy", y[:7].astype("<i4"))
for name, a, b in (("realA", 0, 600), ("realB", 600, 1000)):
    np.save(sys.argv[1] + "/" + name + ".npy", x.reshape(-1, 28, 28, 1)[a:b])
    np.save(sys.argv[1] + "/" + name + ".labels.npy", y[a:b].astype("<i4"))
np.save(sys.argv[1] + "/rgb.npy", np.zeros((2, 28, 28, 3), np.uint8))
np.save(sys.argv[1] + "/rgb.labels.npy", np.zeros(2, "<i4"))
EOF
# the figures of 1000 real test images, and pooling files: numbers, checked in 'make test';
# the sanitizer run leaves them out (five evaluations of 1,000+ images take minutes there)
if [ -z "$DFS_SANITIZE" ]; then
    "$D" eval --fd --acc --samples "$T/real.npy" --classifier "$CLF" --json "$T/real.json" >"$T/real.txt" 2>/dev/null
    check "eval of 1000 real test images exits 0" [ $? -eq 0 ]
    acc=$(sed -n 's/^class accuracy: \([0-9.]*\)%.*/\1/p' "$T/real.txt")
    check "real test images: class accuracy $acc% >= 85%" awk -v a="$acc" 'BEGIN { exit !(a >= 85) }'
    ratio=$(sed -n 's/^fd: .* | ratio \([0-9.]*\)x.*/\1/p' "$T/real.txt")
    check "real test images: FD within 1.5x of the floor (ratio $ratio)" awk -v r="$ratio" 'BEGIN { exit !(r > 0 && r < 1.5) }'
    # a sample set drawn in chunks: --samples given twice pools the files in order
    "$D" eval --fd --acc --samples "$T/realA.npy" --samples "$T/realB.npy" --classifier "$CLF" --json "$T/ab.json" \
        >"$T/ab.txt" 2>"$T/ab.err"
    rc=$?
    check "eval of two --samples files exits 0: $(tail -n 1 "$T/ab.err")" [ $rc -eq 0 ]
    figures "$T/real.txt" 1-3 >"$T/real.fig"; figures "$T/ab.txt" 1-3 >"$T/ab.fig"
    same_files "eval pools two --samples files into the figures of one" "$T/real.fig" "$T/ab.fig"
    check "the JSON of pooled files lists both, in order" grep -q 'realA.npy",[[:space:]]*"[^"]*realB.npy"\]' "$T/ab.json"
    "$D" eval --fd --acc --samples "$T/realB.npy" --samples "$T/realA.npy" --n 400 --classifier "$CLF" >"$T/ba.txt" 2>"$T/ba.err"
    rc=$?
    check "eval of --samples B A --n 400 exits 0: $(tail -n 1 "$T/ba.err")" [ $rc -eq 0 ]
    "$D" eval --fd --acc --samples "$T/realB.npy" --classifier "$CLF" >"$T/b.txt" 2>"$T/b.err"
    rc=$?
    check "eval of --samples B exits 0: $(tail -n 1 "$T/b.err")" [ $rc -eq 0 ]
    figures "$T/ba.txt" 1-3 >"$T/ba.fig"; figures "$T/b.txt" 1-3 >"$T/b.fig"
    same_files "pooled files keep their order (--n 400 takes the first file's 400)" "$T/ba.fig" "$T/b.fig"
else
    echo "$NAME: skipped under the sanitizer run: FD and accuracy of 1000 real test images, pooled files"
fi
cp "$T/realA.npy" "$T/nolabelsA.npy"
expect_error "a pooled file without labels under --acc" "nolabelsA.labels.npy" "$D" eval --acc --samples "$T/realB.npy" --samples "$T/nolabelsA.npy" --classifier "$CLF"
expect_error "pooled files of two shapes" "holds 3x28x28 images" "$D" eval --fd --samples "$T/realA.npy" --samples "$T/rgb.npy" --classifier "$CLF"
expect_error "a second --samples that is not .npy" "must be a .npy file, not 'x.png'" "$D" eval --fd --samples "$T/realA.npy" --samples x.png
expect_error "eval of a 1-D array" "N x H x W x C" "$D" eval --fd --samples "$T/flat.npy" --classifier "$CLF"
expect_error "labels of the wrong length" "7 labels for 8 samples" "$D" eval --acc --samples "$T/real8.npy" --classifier "$CLF"
cp "$T/real8.npy" "$T/nolabels.npy"
expect_error "acc without a labels file" "needs the sample labels" "$D" eval --acc --samples "$T/nolabels.npy" --classifier "$CLF"
head -c 300 "$CLF" >"$T/clf-trunc.safetensors"
expect_error "truncated classifier" "past the end" "$D" eval --fd --samples "$T/real8.npy" --classifier "$T/clf-trunc.safetensors"
expect_error "fd needs samples" "need --samples" "$D" eval --fd
expect_error "samples and a model without --nll" "not both" "$D" eval --fd --samples "$T/real8.npy" \
    --model "$T/run/last.safetensors" --classifier "$CLF"

# bench/quality.sh with CHUNK: a row drawn in files of 4 samples, pooled by one eval; the files
# survive, and a second run with the row's JSON gone draws nothing new
Q="$T/quality dir"
CHUNK=4 DIFFUSE="$D" THREADS=1 EVAL_OPTS="$REF" sh bench/quality.sh "$T/run/last.safetensors" 10 "$Q" "ddim:2:1" \
    >"$T/qt.txt" 2>"$T/qt.err"
rc=$?
check "quality.sh CHUNK=4 exits 0: $(tail -n 1 "$T/qt.err")" [ $rc -eq 0 ]
check "quality.sh says when it draws a chunk" grep -q 'chunk [0-9]* of' "$T/qt.err"
check "quality.sh drew 3 chunk files (4 + 4 + 2 samples)" [ "$(ls "$Q/chunks/"*.npy | grep -vc labels)" -eq 3 ]
check "the row's JSON records the chunk size" grep -q '"chunk":[[:space:]]*4,' "$Q/ddim-2-w1-n10.json"
check "the row's JSON pools 10 samples" grep -q '"fd_n":[[:space:]]*10,' "$Q/ddim-2-w1-n10.json"
/usr/bin/python3 -c "import json, sys; json.load(open(sys.argv[1]))" "$Q/ddim-2-w1-n10.json" 2>/dev/null
check "the row's JSON parses" [ $? -eq 0 ]
check "quality.sh prints the row" grep -q "^| ddim | 2 | 1 | 2 | " "$T/qt.txt"
rm "$Q/ddim-2-w1-n10.json"
CHUNK=4 DIFFUSE="$D" THREADS=1 EVAL_OPTS="$REF" sh bench/quality.sh "$T/run/last.safetensors" 10 "$Q" "ddim:2:1" \
    >/dev/null 2>"$T/qt2.err"
check "a rerun writes the row again" [ $? -eq 0 -a -s "$Q/ddim-2-w1-n10.json" ]
check "a rerun reuses the chunk files (draws none)" sh -c "! grep -q 'chunk [0-9]* of' \"\$1\"" sh "$T/qt2.err"

expect_error "class out of range" "--class expects" "$D" sample --model "$T/run/last.safetensors" --class 10 --out "$T/c.png"
expect_error "steps above T" "more than the model" "$D" sample --model "$T/run/last.safetensors" --steps 5000 --out "$T/c.png"
expect_error "export --steps above T" "export: --steps 5000 is more than the model's T = 1000" \
    "$D" export --model "$T/run/last.safetensors" --out "$T/big.safetensors" --sampler ddim --steps 5000
check "and writes nothing" [ ! -e "$T/big.safetensors" ]

# noise strip
"$D" noise --data fashion-mnist --index 0 --at 0,100,500,999 --out "$T/noise.png" 2>/dev/null
check "noise strip" [ -s "$T/noise.png" ]
"$D" noise --image "$T/run/samples-000012.png" --schedule cosine --out "$T/noise2.png" 2>/dev/null
check "noise from a PNG" [ -s "$T/noise2.png" ]

# bench JSON
env -u DFS_KERNELS -u DFS_CPU -u DFS_CONV "$D" bench --preset small --batch 4 --steps 1 --json >"$T/bench.json"
for k in train_img_per_s forward_img_per_s params peak_rss_mb; do
    check "bench json has $k" grep -q "\"$k\"" "$T/bench.json"
done
# the path the kernels take follows the CPU's features and the overrides (none inherited)
if grep -qw avx512f /proc/cpuinfo; then want=avx512; else want=blas; fi
check "bench reports the kernel path this CPU gets ($want)" grep -q "\"path\": \"$want\"" "$T/bench.json"
env -u DFS_KERNELS -u DFS_CPU -u DFS_CONV DFS_CPU=avx2 "$D" bench --preset small --batch 2 --steps 1 --json >"$T/bench2.json"
check "DFS_CPU=avx2: the BLAS path" grep -q '"kernels": "blas", "path": "blas"' "$T/bench2.json"
env -u DFS_KERNELS -u DFS_CPU -u DFS_CONV DFS_CPU=avx2 "$D" bench --preset small --batch 2 --steps 1 --kernels fast --json >"$T/bench3.json"
check "DFS_CPU=avx2 --kernels fast: the portable loops" grep -q '"path": "portable"' "$T/bench3.json"
env -u DFS_KERNELS -u DFS_CPU -u DFS_CONV DFS_CONV=winograd "$D" bench --preset small --batch 2 --steps 1 --kernels blas --json >"$T/bench4.json"
check "DFS_CONV=winograd is shown" grep -q '"path": "blas+winograd"' "$T/bench4.json"
# --conv auto (FAST kernels, even on the portable loops): the path, and the shapes it timed: the
# small preset's forward meets 10 distinct 3x3 stride-1 shapes (channels, size, pre-op), and its
# training step's backward 19 more: the input gradients of all but the first (the image needs
# none) and the weight gradients of all 10 (both levels, 28 and 14, are even), each counted once
# for the path it took, however many threads met it at once
env -u DFS_KERNELS -u DFS_CPU -u DFS_CONV "$D" bench --preset small --batch 2 --steps 1 --kernels fast --conv auto \
    --json >"$T/bench7.json"
check "--conv auto is shown" grep -q '+winograd-auto"' "$T/bench7.json"
check "--conv auto counts the shapes it timed" python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (d["conv"] == "auto" and d["auto_winograd_shapes"] + d["auto_direct_shapes"] == 29))' "$T/bench7.json"
env -u DFS_KERNELS -u DFS_CPU -u DFS_CONV DFS_CONV=auto "$D" bench --preset small --batch 2 --steps 1 --kernels blas --json >"$T/bench8.json"
check "DFS_CONV=auto under BLAS kernels: direct" grep -q '"path": "blas"' "$T/bench8.json"
expect_error "--conv fft refused" "--conv must be direct, winograd or auto, not 'fft'" "$D" bench --conv fft
expect_error "sample --conv fft refused" "--conv must be direct, winograd or auto, not 'fft'" \
    "$D" sample --model models/fmnist.safetensors --out "$T/x.png" --conv fft
# the library's DFS_* switches: an unknown value is refused by the command line before any work
# (the library alone would take it for the default); empty counts as unset
expect_error "DFS_CONV=winogard refused" "the environment's DFS_CONV must be direct, winograd or auto, not 'winogard'" \
    env DFS_CONV=winogard "$D" info models/fmnist.safetensors
expect_error "DFS_KERNELS=gpu refused" "the environment's DFS_KERNELS must be fast or blas, not 'gpu'" \
    env DFS_KERNELS=gpu "$D" --help
expect_error "DFS_CPU=avx512 refused" "the environment's DFS_CPU must be avx2, not 'avx512'" env DFS_CPU=avx512 "$D" info models/fmnist.safetensors
expect_error "DFS_BF16=1 refused" "the environment's DFS_BF16 must be emulate, not '1'" env DFS_BF16=1 "$D" info models/fmnist.safetensors
env DFS_CONV= DFS_KERNELS=blas "$D" info models/fmnist.safetensors >/dev/null 2>&1
check "DFS_CONV empty counts as unset, DFS_KERNELS=blas is taken" [ $? -eq 0 ]
# --precision bf16: native where the CPU has AVX512_BF16; elsewhere float32 and one line that
# says so; DFS_BF16=emulate: bf16's results by emulation, on any CPU; a bad name refused
env -u DFS_KERNELS -u DFS_CPU -u DFS_CONV -u DFS_BF16 "$D" bench --preset small --batch 2 --steps 1 --precision bf16 \
    --json >"$T/bench5.json" 2>"$T/bench5.err"
if grep -qw avx512_bf16 /proc/cpuinfo; then
    check "bf16 on a CPU with AVX512_BF16: native" grep -q '"path": "avx512+bf16", "precision": "bf16"' "$T/bench5.json"
elif grep -qw avx512f /proc/cpuinfo; then
    check "bf16 without AVX512_BF16: float32" grep -q '"path": "avx512", "precision": "fp32"' "$T/bench5.json"
    check "and it says so" grep -q 'this CPU has no AVX512_BF16, so this runs in float32' "$T/bench5.err"
else
    check "bf16 on the BLAS kernels: float32" grep -q '"path": "blas", "precision": "fp32"' "$T/bench5.json"
    check "and it says so" grep -q 'the BLAS kernels have no bf16 path' "$T/bench5.err"
fi
env -u DFS_KERNELS -u DFS_CPU -u DFS_CONV DFS_BF16=emulate "$D" bench --preset small --batch 2 --steps 1 --kernels fast \
    --precision bf16 --json >"$T/bench6.json" 2>"$T/bench6.err"
check "DFS_BF16=emulate: bf16 emulated" grep -q '+bf16-emulated", "precision": "bf16 (emulated)"' "$T/bench6.json"
check "and it says so" grep -q 'bf16 emulated (DFS_BF16=emulate)' "$T/bench6.err"
expect_error "--precision fp16 refused" "--precision must be fp32 or bf16, not 'fp16'" \
    "$D" bench --preset small --precision fp16
# bf16 training (emulated) from the same seed as float32: the first step's loss (same images,
# same noise, before any update) differs, by less than 1% (the forward's rounding, test_bf16)
for p in fp32 bf16; do
    DFS_BF16=emulate "$D" train --data fashion-mnist --limit 64 --preset small --steps 2 --batch 4 --seed 5 \
        --sample-every 0 --log-every 1 --threads 2 --precision $p --out "$T/bt-$p" >/dev/null 2>"$T/bt.err"
    sed -n 2p "$T/bt-$p/metrics.csv" | cut -d, -f2 >"$T/bt-$p.loss"
done
check "train --precision bf16 says it is emulated" grep -q 'training .*bf16 (emulated)' "$T/bt.err"
other_files "bf16 training: another first loss than float32's" "$T/bt-fp32.loss" "$T/bt-bf16.loss"
check "and within 1% of it ($(cat "$T/bt-fp32.loss") and $(cat "$T/bt-bf16.loss"))" \
    awk -v a="$(cat "$T/bt-fp32.loss")" -v b="$(cat "$T/bt-bf16.loss")" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 0.01 * a) }'
# train --conv winograd from the same seed (the FAST kernels: the BLAS ones train on the direct
# path whatever --conv says). Winograd's forward and gradients round differently
# (test_winograd: relative 1e-6 over a U-Net step): the weights and AdamW state of the
# checkpoint differ from direct's, which two direct runs reproduce bit for bit, while the losses
# of both steps agree to 1e-4 (printed to 9 digits, a mean over 3,136 pixels: mostly equal)
for c in direct direct2 winograd; do
    env -u DFS_CONV -u DFS_CPU DFS_KERNELS=fast "$D" train --data fashion-mnist --limit 64 --preset small --steps 2 \
        --batch 4 --seed 5 --sample-every 0 --log-every 1 --threads 2 --conv ${c%2} --out "$T/bc-$c" >/dev/null 2>"$T/bc.err"
    sed -n '2,3p' "$T/bc-$c/metrics.csv" | cut -d, -f2 >"$T/bc-$c.loss"
done
check "train --conv winograd says so" grep -q 'training .*, conv winograd' "$T/bc.err"
st_data_same() { # the tensors' bytes of two safetensors files (their headers hold the run's clock)
    python3 -c 'import struct, sys
def data(p):
    b = open(p, "rb").read()
    return b[8 + struct.unpack("<Q", b[:8])[0]:]
sys.exit(data(sys.argv[1]) != data(sys.argv[2]))' "$1" "$2"
}
check "two direct runs: the same weights and AdamW state" st_data_same "$T/bc-direct/last.safetensors" "$T/bc-direct2/last.safetensors"
st_data_differ() { ! st_data_same "$1" "$2"; }
check "--conv winograd: other weights and AdamW state" st_data_differ "$T/bc-direct/last.safetensors" "$T/bc-winograd/last.safetensors"
check "--conv winograd: both losses within 1e-4 of direct's ($(tr '\n' ' ' <"$T/bc-direct.loss")and $(tr '\n' ' ' <"$T/bc-winograd.loss"))" \
    awk 'NR == FNR { a[FNR] = $1; next } { d = a[FNR] - $1; if (d < 0) d = -d; if (!(d < 1e-4 * a[FNR])) bad = 1; n++ }
         END { exit bad || n != 2 }' "$T/bc-direct.loss" "$T/bc-winograd.loss"
expect_error "train --conv fft refused" "--conv must be direct, winograd or auto, not 'fft'" \
    "$D" train --data fashion-mnist --out "$T/r" --conv fft

summary
