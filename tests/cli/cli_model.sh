#!/bin/sh
# cli_model.sh BUILD - the shipped model models/fmnist.safetensors: it loads as a float16
# sampling model of the reference U-Net with its training record, and 200 samples (DPM-Solver++
# 2M, 20 steps, guidance 1.2, as docs/MODEL_CARD.md) keep its quality: class accuracy of at least
# 80% (89.0% at 2,000 samples) and FD within 1.5x of the 200-image floor (1.10x when measured).
# models/fashion-text.safetensors: a text model with its tokenizer, and 40 samples of its 20
# class-and-brightness prompts (tools/t2i_eval, DPM-Solver++ 2M, 20 steps, guidance 3) keep
# class agreement of at least 80% and brightness agreement of at least 75% (98.2% and 100% at
# 400 samples, docs/TEXT_TO_IMAGE.md). models/emoji.safetensors: the emoji text model with its
# 1,779-word tokenizer, and for 40 captions of the data (tools/nn_eval, DDIM 20 steps, guidance 3)
# the sample's 5 nearest training images hold the caption for at least 50% of them
# (72.5% with this seed; 70.0% at the issue's 200 captions and DDIM 50 steps,
# docs/TEXT_TO_IMAGE.md). Under the sanitizer only the loading is checked.
NAME=cli_model; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
M=models/fmnist.safetensors

check "the shipped model is there" [ -s "$M" ]
"$D" info "$M" >"$T/info" 2>&1
check "info reads it" [ $? -eq 0 ]
check "sampling weights" grep -q "(sampling weights)" "$T/info"
check "the reference U-Net" grep -q "^parameters:   1624577$" "$T/info"
check "ten classes with their names" grep -q '"class_names":\["T-shirt/top",.*"Ankle boot"\]' "$T/info"
check "its step and images seen" grep -q "^images seen:  448000$" "$T/info"
if [ -z "$DFS_SANITIZE" ]; then
    "$D" eval --fd --acc --model "$M" --sampler dpm++2m --steps 20 --guidance 1.2 --n 200 \
        --json "$T/q.json" >"$T/q.out" 2>&1
    check "eval exits 0" [ $? -eq 0 ]
    acc=$(tr -d ' \t\n' <"$T/q.json" | grep -o '"class_accuracy":[0-9.e-]*' | cut -d: -f2)
    ratio=$(tr -d ' \t\n' <"$T/q.json" | grep -o '"fd_ratio":[0-9.e-]*' | cut -d: -f2)
    check "class accuracy of 200 samples at least 0.80 (got $acc)" awk "BEGIN { exit !(${acc:-0} >= 0.80) }"
    check "FD within 1.5x of the 200-image floor (got $ratio)" awk "BEGIN { exit !(${ratio:-99} <= 1.5) }"
else
    echo "$NAME: skipped under the sanitizer run: FD and class accuracy of $M's samples"
fi

# bf16 sampling (emulated here unless the CPU has AVX512_BF16: the same bits either way):
# other samples than float32's, the same at 1 and 2 threads (each image runs on one thread);
# test_bf16 bounds the difference and docs/PERFORMANCE.md measures its FD and accuracy
if [ -z "$DFS_SANITIZE" ]; then
    for p in fp32:2 bf16:1 bf16:2; do
        DFS_BF16=emulate "$D" sample --model "$M" --n 4 --class all --sampler ddim --steps 4 --seed 3 \
            --threads "${p#*:}" --precision "${p%:*}" --out "$T/p-${p%:*}-${p#*:}.npy" 2>/dev/null
    done
    other_files "bf16 samples differ from float32's" "$T/p-fp32-2.npy" "$T/p-bf16-2.npy"
    same_files "bf16 samples at 1 and 2 threads" "$T/p-bf16-1.npy" "$T/p-bf16-2.npy"
    DFS_BF16=emulate "$D" eval --model "$M" --fd --n 2 --steps 2 --sampler ddim --precision bf16 \
        --json "$T/p.json" >/dev/null 2>&1
    check "eval's JSON records the precision" grep -q '"precision":[[:space:]]*"bf16 (emulated)"' "$T/p.json"
fi

# the settings the model is documented at travel in the file, and a plain sample uses them:
# byte for byte the samples of the explicit options
check "info shows the recommended settings" \
    grep -q "^sampling:     dpm++2m, 20 steps, guidance 1.2 (recommended" "$T/info"
if [ -z "$DFS_SANITIZE" ]; then
    "$D" sample --model $M --n 4 --seed 4 --out "$T/plain.npy" 2>"$T/plain.err"
    check "a plain sample runs (status 0)" [ $? -eq 0 ]
    check "and says it uses the recommended settings" \
        grep -q "^the model's recommended settings: dpm++2m, 20 steps, guidance 1.2" "$T/plain.err"
    "$D" sample --model $M --n 4 --seed 4 --sampler dpm++2m --steps 20 --guidance 1.2 \
        --out "$T/explicit.npy" 2>/dev/null
    same_files "a plain sample is the documented dpm++2m, 20 steps, w = 1.2" "$T/plain.npy" "$T/explicit.npy"
    "$D" sample --model $M --n 4 --seed 4 --sampler dpm++2m --steps 20 --guidance 1 \
        --out "$T/w1.npy" 2>/dev/null
    other_files "an explicit --guidance 1 overrides it" "$T/plain.npy" "$T/w1.npy"
else
    echo "$NAME: skipped under the sanitizer run: a plain sample against the explicit recommended settings"
fi
# a malformed recommendation is a corrupt file, refused with its reason; a well-formed one with a
# variance is read back, and export carries it
cat >"$T/rec.py" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["__metadata__"]["sampling"] = sys.argv[3]
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
EOF
for bad in '{"sampler": "dpm++2m", "steps": 5000, "guidance": 1.2}' \
           '{"sampler": "ddpm", "steps": 5, "guidance": 1, "variance": "wide"}' \
           '{"sampler": "ddpm", "steps": 5, "guidance": 1, "variance": 1}' \
           '{"sampler": "ddpm", "steps": 5, "guidance": 1, "extra": 1}' \
           '{"sampler": "ddpm", "steps": 5, "guidance": 1, "noise_scale": 0}' \
           '{"sampler": "ddpm", "steps": 5, "guidance": 1, "noise_scale": 1.5}' \
           '{"sampler": "ddpm", "steps": 5, "guidance": 1, "noise_scale": "low"}' \
           '{"sampler": "ddim", "steps": 5, "guidance": 1, "noise_scale": 0.5}'; do
    "$PY" "$T/rec.py" "$M" "$T/badrec.safetensors" "$bad"
    expect_error "a recommendation $bad is refused" 'malformed "sampling" metadata' "$D" info "$T/badrec.safetensors"
done
"$PY" "$T/rec.py" "$M" "$T/varrec.safetensors" '{"sampler": "ddpm", "steps": 5, "guidance": 1.5, "variance": "beta"}'
"$D" info "$T/varrec.safetensors" >"$T/varrec.info" 2>&1
check "a recommendation with variance beta is read" \
    grep -q "^sampling:     ddpm, 5 steps, guidance 1.5, variance beta" "$T/varrec.info"
"$D" export --model "$T/varrec.safetensors" --out "$T/varrec2.safetensors" 2>/dev/null
"$D" info "$T/varrec2.safetensors" >"$T/varrec2.info" 2>&1
check "and export carries it" grep -q "^sampling:     ddpm, 5 steps, guidance 1.5, variance beta" "$T/varrec2.info"
"$PY" "$T/rec.py" "$M" "$T/nsrec.safetensors" '{"sampler": "ddpm", "steps": 5, "guidance": 1.5, "noise_scale": 0.25}'
"$D" export --model "$T/nsrec.safetensors" --out "$T/nsrec2.safetensors" 2>/dev/null
"$D" info "$T/nsrec2.safetensors" >"$T/nsrec.info" 2>&1
check "a recommendation with a noise scale is read, and export carries it" \
    grep -q "^sampling:     ddpm, 5 steps, guidance 1.5, noise scale 0.25 (recommended" "$T/nsrec.info"
if [ -z "$DFS_SANITIZE" ]; then
    "$D" sample --model "$T/nsrec.safetensors" --n 2 --seed 4 --out "$T/ns-rec.npy" 2>"$T/ns.err"
    check "a plain sample says it uses the noise scale" grep -q "^the model's recommended settings: ddpm, 5 steps, guidance 1.5, noise scale 0.25" "$T/ns.err"
    "$D" sample --model "$M" --n 2 --seed 4 --sampler ddpm --steps 5 --guidance 1.5 --noise-scale 0.25 --out "$T/ns-exp.npy" 2>/dev/null
    same_files "and samples as the explicit --noise-scale 0.25" "$T/ns-rec.npy" "$T/ns-exp.npy"
    "$D" sample --model "$M" --n 2 --seed 4 --sampler ddpm --steps 5 --guidance 1.5 --out "$T/ns-one.npy" 2>/dev/null
    other_files "which differs from the plain ancestral sampler" "$T/ns-rec.npy" "$T/ns-one.npy"
    "$D" eval --model "$M" --fd --n 2 --steps 2 --sampler ddpm --noise-scale 0.5 --json "$T/ns.json" >/dev/null 2>&1
    check "eval's JSON records the noise scale" grep -q '"noise_scale":[[:space:]]*0.5' "$T/ns.json"
fi
expect_error "sample refuses --noise-scale with ddim" "ddpm sampler only, not ddim" \
    "$D" sample --model "$M" --n 1 --sampler ddim --steps 2 --noise-scale 0.5 --out "$T/x.npy"

F=models/fashion-text.safetensors
"$D" info "$F" >"$T/finfo" 2>&1
check "info reads the text model" [ $? -eq 0 ]
check "text conditioning with its tokenizer's 30 words" grep -q "^conditioning: text (encoder 64 wide, 2 layers, 4 heads, 30 words" "$T/finfo"
check "fashion-text records its documented settings" \
    grep -q "^sampling:     ddim, 50 steps, guidance 3 (recommended" "$T/finfo"
if [ -z "$DFS_SANITIZE" ]; then
    "$BUILD/tools/t2i_eval" "$F" --n 2 --guidance 3 --steps 20 --sampler dpm++2m --threads 2 >"$T/t2i.out" 2>&1
    check "t2i_eval exits 0" [ $? -eq 0 ]
    cls=$(sed -n 's/^class agreement: *\([0-9.]*\)%.*/\1/p' "$T/t2i.out")
    tone=$(sed -n 's/^brightness agreement: *\([0-9.]*\)%.*/\1/p' "$T/t2i.out")
    check "class agreement of 40 samples at least 80% (got $cls)" awk "BEGIN { exit !(${cls:-0} >= 80) }"
    check "brightness agreement at least 75% (got $tone)" awk "BEGIN { exit !(${tone:-0} >= 75) }"
else
    echo "$NAME: skipped under the sanitizer run: class and brightness agreement of $F's samples"
fi
E=models/emoji.safetensors
"$D" info "$E" >"$T/einfo" 2>&1
check "info reads the emoji model" [ $? -eq 0 ]
check "emoji: sampling weights" grep -q "(sampling weights)" "$T/einfo"
check "emoji: text conditioning with its tokenizer's 1779 words" grep -q "^conditioning: text (encoder 128 wide, 2 layers, 4 heads, 1779 words" "$T/einfo"
check "emoji: 3x32x32 images" grep -q "^model:        U-Net 3x32x32" "$T/einfo"
check "emoji records its documented settings" grep -q "^sampling:     ddim, 50 steps, guidance 3 (recommended" "$T/einfo"
if [ -z "$DFS_SANITIZE" ]; then
    "$D" sample --model "$E" --prompt "red book, objects, book paper" --n 2 --seed 3 --out "$T/e1.npy" 2>"$T/e1.err"
    "$D" sample --model "$E" --prompt "red book, objects, book paper" --n 2 --seed 3 --sampler ddim --steps 50 \
        --guidance 3 --out "$T/e2.npy" 2>/dev/null
    same_files "a plain emoji sample is the documented DDIM 50, guidance 3" "$T/e1.npy" "$T/e2.npy"
    check "and says so" grep -q "^the model's recommended settings: ddim, 50 steps, guidance 3" "$T/e1.err"
fi
if [ -z "$DFS_SANITIZE" ]; then
    "$BUILD/tools/nn_eval" "$E" --n 40 --steps 20 --guidance 3 --threads 2 >"$T/nn.out" 2>&1
    check "nn_eval exits 0" [ $? -eq 0 ]
    top5=$(sed -n 's/^top-5: *\([0-9.]*\)%.*/\1/p' "$T/nn.out")
    check "caption among the 5 nearest for at least 50% of 40 prompts (got $top5)" awk "BEGIN { exit !(${top5:-0} >= 50) }"
else
    echo "$NAME: skipped under the sanitizer run: nearest-neighbour agreement of $E's samples"
fi
summary
