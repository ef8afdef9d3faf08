#!/bin/sh
# cli_classifier.sh BUILD - diffuse classifier end to end: help, argument and file errors (one
# line on stderr, exit 2, no output file), a short training run with its metadata, a stop by
# SIGTERM that still saves, and the shipped models/classifier.safetensors evaluated on the
# Fashion-MNIST test set (>= 0.90; the first 2000 images under the sanitizer run).
NAME=cli_classifier; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
M=models/classifier.safetensors

# help
"$D" classifier --help >"$T/h" 2>&1; check "classifier --help exits 0" [ $? -eq 0 ]
check "classifier --help names both subcommands" grep -q "diffuse classifier eval" "$T/h"
for c in train eval; do
    "$D" classifier $c --help >"$T/h" 2>&1; check "classifier $c --help exits 0" [ $? -eq 0 ]
    check "classifier $c --help prints usage" grep -q "usage: diffuse classifier $c" "$T/h"
done
"$D" classifier train --help >"$T/h"
for o in --data --labels --test-data --test-labels --out --epochs --batch --lr --weight-decay --warmup --limit --seed --threads; do
    check "train --help documents $o" grep -q -e "^  $o " "$T/h"
done
"$D" --help >"$T/h"; check "top-level help lists classifier" grep -q "classifier" "$T/h"

# argument errors
expect_error "no subcommand" "give a subcommand" "$D" classifier
expect_error "unknown subcommand" "unknown subcommand 'frob'" "$D" classifier frob
expect_error "unknown option" "unknown or incomplete option '--bogus'" "$D" classifier train --bogus
expect_error "option without value" "unknown or incomplete option" "$D" classifier eval --model
expect_error "missing --data" "--data is required" "$D" classifier train --out "$T/c.safetensors"
expect_error "missing --out" "--out FILE is required" "$D" classifier train --data fashion-mnist
expect_error "bad epochs" "--epochs expects an integer" "$D" classifier train --data fashion-mnist --out "$T/c.safetensors" --epochs 0
expect_error "bad lr" "--lr expects a number" "$D" classifier train --data fashion-mnist --out "$T/c.safetensors" --lr fast
expect_error "stray argument" "unexpected argument 'extra'" "$D" classifier eval --model "$M" extra
expect_error "missing --model" "--model FILE is required" "$D" classifier eval
expect_error "unwritable folder" "the folder .*no/such/dir does not exist" "$D" classifier train --data fashion-mnist --out "$T/no/such/dir/c.safetensors"
expect_error "an empty --out" "--out is empty" "$D" classifier train --data fashion-mnist --out ""
mkdir "$T/adir.safetensors"
expect_error "a folder as --out" "exists and is not a regular file" "$D" classifier train --data fashion-mnist --out "$T/adir.safetensors"
# two classes against the 10 of the default test set: refused before training, not after an epoch
mkdir -p "$T/two/a" "$T/two/b"
"$D" data build emoji --limit 2 --out "$T/em2" 2>/dev/null
cp "$T/em2/000000.png" "$T/two/a/x.png"; cp "$T/em2/000001.png" "$T/two/b/y.png"
expect_error "test labels outside the classes" "has label .* the training data has 2 classes" "$D" classifier train \
    --data "$T/two" --out "$T/c.safetensors" --epochs 1 --threads 1
expect_error "missing data" "no such file" "$D" classifier train --data "$T/none.idx" --out "$T/c.safetensors"
# an IDX image file without labels
printf '\000\000\010\003\000\000\000\002\000\000\000\034\000\000\000\034' >"$T/two.idx"
head -c 1568 /dev/zero >>"$T/two.idx"
expect_error "unlabelled data" "has no labels" "$D" classifier train --data "$T/two.idx" --out "$T/c.safetensors"
check "no output after failed runs" [ ! -e "$T/c.safetensors" ]
# an IDX test set takes its labels from --test-labels
printf '\000\000\010\001\000\000\000\002\003\007' >"$T/two.lab"
"$D" classifier train --data fashion-mnist-test --limit 64 --epochs 1 --test-data "$T/two.idx" \
    --test-labels "$T/two.lab" --threads 1 --out "$T/tl.safetensors" >"$T/tl.out" 2>&1
check "--test-labels gives an IDX test set its labels" grep -q "test accuracy .* on 2 images of .*two.idx" "$T/tl.out"
expect_error "--test-labels without a test set" "--test-labels goes with a --test-data" "$D" classifier train \
    --data fashion-mnist-test --test-data none --test-labels "$T/two.lab" --out "$T/tl2.safetensors"

# model file errors
expect_error "missing model" "$T/none.safetensors" "$D" classifier eval --model "$T/none.safetensors"
printf 'garbage that is not a classifier' >"$T/corrupt.safetensors"
expect_error "corrupt model" "corrupt.safetensors" "$D" classifier eval --model "$T/corrupt.safetensors"
if [ -f "$M" ]; then
    head -c 100000 "$M" >"$T/trunc.safetensors"
    expect_error "truncated model" "trunc.safetensors" "$D" classifier eval --model "$T/trunc.safetensors"
fi
# a U-Net checkpoint is not a classifier
"$D" train --data fashion-mnist --limit 16 --preset small --steps 1 --batch 8 --sample-every 0 \
    --threads 2 --out "$T/unet" 2>/dev/null
expect_error "a U-Net checkpoint" "not a diffuse classifier" "$D" classifier eval --model "$T/unet/last.safetensors"

# a short training run: 512 images, one epoch, no test set
"$D" classifier train --data fashion-mnist --limit 512 --epochs 1 --batch 64 --warmup 2 \
    --test-data none --seed 1 --threads 2 --out "$T/c.safetensors" >"$T/train.out" 2>"$T/train.err"
check "train exits 0" [ $? -eq 0 ]
check "train shows progress" grep -q "epoch 1/1 step 8/8" "$T/train.err"
check "train prints the epoch's loss" grep -q "epoch 1/1: train loss" "$T/train.err"
check "model written" [ -s "$T/c.safetensors" ]
# the model is written to c.safetensors.tmp.PID and renamed
check "no temporary file left: $(ls "$T" | grep '^c\.safetensors\.' | tr '\n' ' ')" \
    [ -z "$(ls "$T" | grep '^c\.safetensors\.')" ]
check "metadata records the command" grep -a -q "diffuse classifier train --data fashion-mnist --limit 512" "$T/c.safetensors"
"$D" classifier eval --model "$T/c.safetensors" --limit 500 >"$T/e.out" 2>"$T/e.err"
check "eval of the new model exits 0" [ $? -eq 0 ]
check "eval prints accuracy" grep -q "^accuracy 0\.[0-9]* (.* of 500 images" "$T/e.out"

# SIGTERM stops training after the current step, and what was trained is saved; sent once the
# progress line shows training under way (within 60 s; 320 images of batch 32 print it every step)
"$D" classifier train --data fashion-mnist --limit 320 --epochs 10000 --batch 32 \
    --test-data none --threads 2 --out "$T/sig.safetensors" >/dev/null 2>"$T/sig.err" &
pid=$!
wait_until $pid 60 grep -q "^epoch [0-9]*/[0-9]* step [1-9]" "$T/sig.err"; started=$?
check "training shows progress within 60 s, before SIGTERM: $(tail -n 1 "$T/sig.err")" [ $started -eq 0 ]
kill -TERM $pid; wait $pid; rc=$?
check "SIGTERM exits 0" [ $rc -eq 0 ]
check "SIGTERM says interrupted" grep -q "^interrupted after [1-9][0-9]* steps" "$T/sig.err"
check "SIGTERM saves the model" [ -s "$T/sig.safetensors" ]

# the shipped classifier
check "shipped classifier exists" [ -s "$M" ]
size=$(wc -c <"$M" 2>/dev/null || echo 0)
check "shipped classifier is under 2 MB ($size bytes)" [ "$size" -lt 2000000 ]
limit=""
if [ -n "$DFS_SANITIZE" ]; then
    limit="--limit 2000"
    echo "$NAME: skipped under the sanitizer run: the shipped classifier on test images past the first 2000"
fi
"$D" classifier eval --model "$M" $limit >"$T/ship.out" 2>"$T/ship.err"
rc=$?
check "eval of the shipped classifier exits 0 ($(cat "$T/ship.err"))" [ $rc -eq 0 ]
cat "$T/ship.out"
acc=$(sed -n 's/^accuracy \([0-9.]*\) .*/\1/p' "$T/ship.out")
check "shipped classifier accuracy ${acc:-?} >= 0.90" awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 0.90) }'
check "per-class line names all ten classes" grep -q "^per class: 0 T-shirt/top .* 9 Ankle boot [0-9.]*$" "$T/ship.out"

summary
