#!/bin/sh
# cli_text.sh BUILD - text-to-image from the command line (issue 5): diffuse train --text on
# fashion-captions, emoji (RGB) and a caption folder, bit-exact resume, the tokenizer in the
# checkpoint and through export, diffuse sample --prompt / --prompts / --negative-prompt /
# --dynamic-threshold to PNG and .npy, the unknown-words warning, and every error as one line
# with exit status 2. Tiny models and a few steps: it checks the plumbing, not image quality.
NAME=cli_text; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"

# a tiny text model: small U-Net, a 1-layer encoder 16 wide; one thread (tiny tensors)
TINY="--preset small --batch 8 --threads 1 --text-dim 16 --text-layers 1 --text-heads 2 --log-every 1"

# help tells about the text options
"$D" train --help >"$T/h"
check "train --help: --text" grep -q -e "--text " "$T/h"
check "train --help: --text-dim" grep -q -e "--text-dim" "$T/h"
check "train --help: --min-count" grep -q -e "--min-count" "$T/h"
"$D" sample --help >"$T/h"
for o in --prompt --prompts --negative-prompt --dynamic-threshold; do
    check "sample --help: $o" grep -q -e "$o " "$T/h"
done

# training errors
expect_error "captioned data without --text" "add --text" "$D" train --data fashion-captions --out "$T/r"
expect_error "--text with classes" "not classes" "$D" train --data fashion-captions --text --classes 10 --out "$T/r"
expect_error "heads must divide the width" "must divide" "$D" train --data fashion-captions --text --text-dim 10 --text-heads 4 --out "$T/r"
expect_error "missing caption folder" "no such folder" "$D" train --data "$T/none" --text --out "$T/r"
expect_error "bad --text-len" "--text-len expects" "$D" train --data fashion-captions --text --text-len 2 --out "$T/r"

# --init: a text model starts from a class-conditional model of the same preset
"$D" train --data fashion-mnist --limit 16 --preset small --batch 8 --threads 1 --steps 1 --sample-every 0 \
    --out "$T/cls" 2>/dev/null
"$D" train --data fashion-captions --limit 16 --text $TINY --steps 1 --sample-every 0 \
    --init "$T/cls/last.safetensors" --out "$T/init" 2>"$T/init.err"
check "train --text --init exits 0" [ $? -eq 0 ]
check "--init says what it took and what starts fresh" \
    grep -q "^initialised [0-9]* of [0-9]* tensors from .*; fresh: .*text\.tok_emb\.weight" "$T/init.err"
"$D" train --resume "$T/init/last.safetensors" --steps 2 --sample-every 0 --out "$T/init" 2>/dev/null
"$D" info "$T/init/last.safetensors" >"$T/init.info" 2>&1
check "the training record keeps the warm start across a resume" \
    grep -q '"init":"[^"]*cls/last.safetensors ([0-9]* of [0-9]* tensors)"' "$T/init.info"
check "the resumed run reached step 2" grep -q "^step: *2$" "$T/init.info"
expect_error "--init with --resume" "give one of them" "$D" train --data fashion-captions --text \
    --init "$T/cls/last.safetensors" --resume "$T/cls/last.safetensors" --out "$T/r"
printf 'garbage' >"$T/garbage.safetensors"
expect_error "--init of a corrupt file" "garbage.safetensors" "$D" train --data fashion-captions --limit 16 \
    --text $TINY --init "$T/garbage.safetensors" --out "$T/r"
check "no run folder after a failed --init" [ ! -e "$T/r/last.safetensors" ]

# fashion-captions: a straight run of 4 steps with sample grids, and 2 + resume to 4
"$D" train --data fashion-captions --limit 64 --text $TINY --steps 4 --seed 3 --sample-every 4 --sample-steps 5 \
    --out "$T/run" 2>"$T/train.err"
check "train --text exits 0" [ $? -eq 0 ]
check "train --text says what it trains" grep -q "text-to-image U-Net" "$T/train.err"
check "train --text writes a checkpoint" [ -s "$T/run/last.safetensors" ]
check "train --text writes a sample grid" [ -s "$T/run/samples-000004.png" ]
check "the grid's captions are listed" grep -q "column 10: " "$T/run/samples-captions.txt"
check "the checkpoint holds the tokenizer" grep -a -q "diffuse-words-1" "$T/run/last.safetensors"
check "the checkpoint holds the text config" grep -a -q '\\"text\\":{\\"vocab\\"' "$T/run/last.safetensors"
"$D" train --data fashion-captions --limit 64 --text $TINY --steps 2 --seed 3 --sample-every 0 \
    --out "$T/run2" 2>/dev/null
"$D" train --resume "$T/run2/last.safetensors" --steps 4 --sample-every 0 --threads 1 --log-every 1 \
    --out "$T/run2" 2>"$T/resume.err"
check "resume of a text run exits 0" [ $? -eq 0 ]
cut -d, -f1,2 "$T/run/metrics.csv" >"$T/a.csv"
cut -d, -f1,2 "$T/run2/metrics.csv" >"$T/b.csv"
same_files "resumed text-run losses are bit-identical to the straight run" "$T/a.csv" "$T/b.csv"
check "resume reads the captions again without unknown words" sh -c "! grep -q unknown '$T/resume.err'"

# a plain (no text) model for the errors below
"$D" train --data fashion-mnist --limit 16 --preset small --steps 1 --batch 4 --sample-every 0 \
    --threads 1 --out "$T/plain" 2>/dev/null
expect_error "resume a plain model with --text" "not a text model" "$D" train --resume "$T/plain/last.safetensors" --text --out "$T/r"

M="$T/run/last.safetensors"
S="--steps 4 --sampler ddim --threads 1"
# sampling from a prompt, with an unknown word named in one warning line
"$D" sample --model "$M" --prompt "a dark ankle boot zorbs" --guidance 3 --n 4 $S --out "$T/p.png" 2>"$T/s.err"
check "sample --prompt exits 0" [ $? -eq 0 ]
check "sample --prompt writes the PNG" [ -s "$T/p.png" ]
check "unknown words: one warning naming them" [ "$(grep -c "unknown words" "$T/s.err")" -eq 1 ]
check "the warning names 'zorbs'" grep -q "'zorbs'" "$T/s.err"
check "known words are not named" sh -c "! grep -q \"'boot'\" '$T/s.err'"
# a prompt file: blank lines skipped, .npy with the prompt index as labels
printf 'a dark ankle boot\n\nlight pants\r\n   \n  a small bag\n' >"$T/prompts.txt"
"$D" sample --model "$M" --prompts "$T/prompts.txt" --n 2 --guidance 3 --negative-prompt "a coat" \
    --dynamic-threshold 99.5 $S --out "$T/p.npy" 2>"$T/s2.err"
check "sample --prompts --negative-prompt --dynamic-threshold exits 0" [ $? -eq 0 ]
check "3 prompts x 2 samples" grep -a -q "(6, 28, 28, 1)" "$T/p.npy"
check "labels beside the .npy" grep -a -q "(6,)" "$T/p.labels.npy"
check "no warning without unknown words" sh -c "! grep -q warning '$T/s2.err'"
"$D" sample --model "$M" --prompts "$T/prompts.txt" --scale 2 $S --out "$T/grid.png" 2>/dev/null
check "sample --prompts to a PNG with a row per prompt" [ -s "$T/grid.png" ]
"$D" sample --model "$M" --n 2 $S --out "$T/u.png" 2>/dev/null
check "a text model without a prompt samples unconditionally" [ -s "$T/u.png" ]
"$D" sample --model "$M" --n 2 $S --out "$T/p.npy" 2>/dev/null
check "unconditional samples over p.npy remove its old labels" sh -c "[ -s '$T/p.npy' ] && [ ! -e '$T/p.labels.npy' ]"
# the same seed and prompt give the same images; the prompt changes them
for b in "b1:a bag" "b2:a bag" "b3:light trousers"; do
    "$D" sample --model "$M" --prompt "${b#*:}" --n 2 $S --out "$T/${b%%:*}.npy" 2>"$T/b.err"
    rc=$?
    check "sample --prompt '${b#*:}' to ${b%%:*}.npy exits 0: $(tail -n 1 "$T/b.err")" [ $rc -eq 0 ]
done
same_files "same prompt and seed: same samples" "$T/b1.npy" "$T/b2.npy"
other_files "another prompt: other samples" "$T/b1.npy" "$T/b3.npy"

# export keeps the tokenizer: the float16 model still answers prompts
"$D" export --model "$M" --out "$T/ship.safetensors" 2>/dev/null
check "export of a text model exits 0" [ $? -eq 0 ]
"$D" sample --model "$T/ship.safetensors" --prompt "a bag" --n 2 $S --out "$T/ship.png" 2>/dev/null
check "the exported text model samples from a prompt" [ -s "$T/ship.png" ]

# sampling errors
expect_error "prompt on a plain model" "no text encoder" "$D" sample --model "$T/plain/last.safetensors" --prompt "a bag" --out "$T/x.png"
printf '\n   \n\n' >"$T/empty.txt"
expect_error "empty prompt file" "no prompts" "$D" sample --model "$M" --prompts "$T/empty.txt" --out "$T/x.png"
expect_error "missing prompt file" "cannot read" "$D" sample --model "$M" --prompts "$T/nope.txt" --out "$T/x.png"
expect_error "empty --prompt" "is empty" "$D" sample --model "$M" --prompt "  " --out "$T/x.png"
expect_error "--prompt and --prompts" "not both" "$D" sample --model "$M" --prompt "a" --prompts "$T/prompts.txt" --out "$T/x.png"
expect_error "negative prompt without guidance" "other than 1" "$D" sample --model "$M" --prompt "a bag" --negative-prompt "a coat" --out "$T/x.png"
expect_error "negative prompt without a prompt" "needs --prompt" "$D" sample --model "$M" --negative-prompt "a coat" --guidance 3 --out "$T/x.png"
expect_error "--class on a text model" "instead of --class" "$D" sample --model "$M" --class 3 --out "$T/x.png"
expect_error "guidance without a prompt" "needs --prompt" "$D" sample --model "$M" --guidance 3 --out "$T/x.png"
expect_error "dynamic threshold 0" "percentile" "$D" sample --model "$M" --dynamic-threshold 0 --out "$T/x.png"
expect_error "dynamic threshold 101" "--dynamic-threshold expects" "$D" sample --model "$M" --dynamic-threshold 101 --out "$T/x.png"
# a prompt file line with a NUL byte or that is not UTF-8 is refused, not cut short
printf 'a bag\n a red\000 apple\n' >"$T/nul.txt"
expect_error "a NUL byte in a prompt file" "nul.txt: line 2 is not UTF-8 text (or has a NUL byte)" "$D" sample --model "$M" --prompts "$T/nul.txt" --out "$T/x.png"
printf 'caf\351\n' >"$T/latin1.txt"
expect_error "a Latin-1 prompt file" "latin1.txt: line 1 is not UTF-8" "$D" sample --model "$M" --prompts "$T/latin1.txt" --out "$T/x.png"
expect_error "a Latin-1 --prompt" "--prompt is not UTF-8" "$D" sample --model "$M" --prompt "$(printf 'caf\351')" --out "$T/x.png"
mkfifo "$T/fifo.txt"
expect_error "a FIFO as the prompt file" "fifo.txt: not a regular file" timeout 20 "$D" sample --model "$M" --prompts "$T/fifo.txt" --out "$T/x.png"
# a grid too large for a PNG is refused before sampling, not after (no "done in" line)
awk 'BEGIN { for (i = 0; i < 2400; i++) print "a bag" }' >"$T/many.txt"
expect_error "a grid of 2400 prompts' rows" "too large for a PNG" "$D" sample --model "$M" --prompts "$T/many.txt" --n 1 --steps 1000 --out "$T/x.png"
expect_error "a grid of one column of 2400 samples" "or write FILE.npy" "$D" sample --model "$M" --prompt "a bag" --n 2400 --cols 1 --steps 1000 --out "$T/x.png"
check "no partial output after failed samples" [ ! -e "$T/x.png" ]

# emoji: 32x32 RGB, sizes and channels from the data
"$D" train --data emoji --limit 24 --text $TINY --steps 1 --sample-every 0 --out "$T/emoji" 2>"$T/e.err"
check "train --text on emoji exits 0" [ $? -eq 0 ]
check "emoji images are 3x32x32" grep -q "captioned 3x32x32 images" "$T/e.err"
"$D" sample --model "$T/emoji/last.safetensors" --prompt "red apple" --n 2 $S --out "$T/e.npy" 2>/dev/null
check "emoji samples are 32x32 RGB" grep -a -q "(2, 32, 32, 3)" "$T/e.npy"

# the emoji measure (tools/nn_eval): its ceiling (the data's own images) finds nearly every
# caption first, its floor (another caption's image) almost none; a model runs through it
NN=$BUILD/tools/nn_eval
"$NN" --real --n 200 >"$T/nn.out" 2>&1
check "nn_eval --real: top-1 at least 95%" grep -q -E "^top-1: (9[5-9]|100)\." "$T/nn.out"
"$NN" --real --shuffle --n 200 >"$T/nn.out" 2>&1
check "nn_eval --real --shuffle: top-5 under 2%" grep -q -E "^top-5: [01]\.[0-9]%" "$T/nn.out"
"$NN" "$T/emoji/last.safetensors" --n 3 --steps 2 --threads 1 --show "$T/nn.png" >"$T/nn.out" 2>&1
check "nn_eval of a model prints its top-5" grep -q -E "^top-5: [0-9.]+% \([0-9]+/3; chance 0\.27%\)" "$T/nn.out"
check "nn_eval --show writes the sample-and-neighbours grid" [ -s "$T/nn.png" ]
"$NN" "$T/run/last.safetensors" --n 3 >"$T/nn.out" 2>&1
rc=$?
check "nn_eval refuses a model of other images (exit 1, got $rc)" [ $rc -eq 1 ]
check "and says why" grep -q "is not a text model of emoji" "$T/nn.out"

# a caption folder written by diffuse data build
"$D" data build fashion-captions --limit 16 --out "$T/folder" >/dev/null 2>&1
"$D" train --data "$T/folder" --text $TINY --steps 1 --sample-every 0 --out "$T/frun" 2>"$T/f.err"
check "train --text on a caption folder exits 0" [ $? -eq 0 ]
check "the folder's 16 images are read" grep -q "on 16 captioned 1x28x28 images" "$T/f.err"

summary
