#!/bin/sh
# cli_masks.sh BUILD - image to image from the command line: diffuse sample --inpaint (RePaint)
# returns the kept pixels unchanged and fills the rest; --init (SDEdit) runs the share of the
# steps its strength asks for; the options' errors; and the shipped models sample byte for byte
# as they did before the diffusion core learnt known entries (the samplers' step table).
NAME=cli_masks; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
M=models/fmnist.safetensors

# a 28 x 28 gray test image: a bright square on a ramp, every byte value known
"$PY" - "$T/img.png" <<'EOF'
import struct, sys, zlib
w = h = 28
rows = b"".join(b"\0" + bytes((9 * x + 3 * y) % 256 if not (8 <= x < 20 and 8 <= y < 20) else 250
                              for x in range(w)) for y in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
EOF
check "the test image was made" [ -s "$T/img.png" ]

"$D" sample --model $M --inpaint "$T/img.png" --mask left --n 2 --sampler ddpm --steps 10 \
    --resample 2 --jump 3 --seed 2 --out "$T/inp.npy" 2>"$T/inp.err"
check "inpainting runs (status 0)" [ $? -eq 0 ]
check "it says how many network evaluations RePaint takes" \
    grep -q "with ddpm: 16 network evaluations (RePaint)" "$T/inp.err"
"$PY" - "$T/inp.npy" <<'EOF' >"$T/inp.out" 2>&1
import sys, numpy as np
x = np.load(sys.argv[1])
w = h = 28
ref = np.array([[(9 * c + 3 * r) % 256 if not (8 <= c < 20 and 8 <= r < 20) else 250
                 for c in range(w)] for r in range(h)], dtype=np.uint8)
assert x.shape == (2, 28, 28, 1), x.shape
kept = x[:, :, 14:, 0]
print("kept pixels equal:", bool((kept == ref[None, :, 14:]).all()))
filled = x[:, :, :14, 0].astype(float)
print("filled half differs from the image:", bool(np.abs(filled - ref[None, :, :14]).mean() > 5))
print("samples differ from each other:", bool(np.abs(filled[0] - filled[1]).mean() > 1))
EOF
check "the kept half comes back byte for byte" grep -q "kept pixels equal: True" "$T/inp.out"
check "the filled half is drawn, not copied" grep -q "filled half differs from the image: True" "$T/inp.out"
check "each sample fills it differently" grep -q "samples differ from each other: True" "$T/inp.out"

# a mask PNG: white fills; here the centre square
"$PY" -c "
import struct, sys, zlib
rows = b''.join(b'\0' + bytes(255 if 7 <= x < 21 and 7 <= y < 21 else 0 for x in range(28)) for y in range(28))
c = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], 'wb').write(b'\x89PNG\r\n\x1a\n' + c(b'IHDR', struct.pack('>IIBBBBB', 28, 28, 8, 0, 0, 0, 0)) + c(b'IDAT', zlib.compress(rows)) + c(b'IEND', b''))
" "$T/mask.png"
"$D" sample --model $M --inpaint fashion-mnist-test --index 3,5 --mask "$T/mask.png" --n 3 \
    --sampler ddim --steps 10 --seed 1 --out "$T/grid.png" 2>"$T/grid.err"
check "inpainting two test images with a PNG mask writes a grid (status 0)" [ $? -eq 0 ]
"$PY" -c "
import struct, sys
d = open(sys.argv[1], 'rb').read()
w, h = struct.unpack('>II', d[16:24])
print(w, h)" "$T/grid.png" >"$T/grid.size"
# 2 rows of (image, masked image, 3 samples), 28-pixel images with 2-pixel borders
check "the grid has one row per image and 5 columns" grep -qx "152 62" "$T/grid.size"

"$D" sample --model $M --init "$T/img.png" --strength 0.4 --n 2 --sampler ddim --steps 50 \
    --seed 1 --out "$T/sde.npy" 2>"$T/sde.err"
check "SDEdit runs (status 0)" [ $? -eq 0 ]
check "strength 0.4 of 50 steps runs 20" grep -q "with ddim: 20 network evaluations (SDEdit)" "$T/sde.err"
"$PY" - "$T/sde.npy" <<'EOF' >"$T/sde.out" 2>&1
import sys, numpy as np
x = np.load(sys.argv[1]).astype(float)
ref = np.array([[(9 * c + 3 * r) % 256 if not (8 <= c < 20 and 8 <= r < 20) else 250
                 for c in range(28)] for r in range(28)], dtype=float)
# the bright square survives a short run from the image (strength 0.4)
print("square kept:", bool(x[:, 9:19, 9:19, 0].mean() > x[:, :, :, 0].mean() + 30))
EOF
check "a short SDEdit run keeps the image's layout" grep -q "square kept: True" "$T/sde.out"

expect_error "--mask without --inpaint" "sample: --mask goes with --inpaint$" \
    "$D" sample --model $M --mask left --out "$T/x.png"
expect_error "--inpaint without --mask" "sample: --inpaint needs --mask" \
    "$D" sample --model $M --inpaint "$T/img.png" --out "$T/x.png"
expect_error "both --inpaint and --init" "sample: give --inpaint or --init, not both$" \
    "$D" sample --model $M --inpaint "$T/img.png" --mask left --init "$T/img.png" --out "$T/x.png"
expect_error "--strength without --init" "sample: --strength goes with --init$" \
    "$D" sample --model $M --strength 0.5 --out "$T/x.png"
expect_error "--strength 0" "strength must be in (0, 1]" \
    "$D" sample --model $M --init "$T/img.png" --strength 0 --out "$T/x.png"
expect_error "an unknown mask shape" "sample: --mask must be a PNG or left, right, top, bottom or center, not 'diag'$" \
    "$D" sample --model $M --inpaint "$T/img.png" --mask diag --out "$T/x.png"
expect_error "--index past the data" "sample: --index must list images 0..9999 of fashion-mnist-test" \
    "$D" sample --model $M --inpaint fashion-mnist-test --index 10000 --mask left --out "$T/x.png"
expect_error "--index with a PNG" "sample: --index picks images of a data set, not of the PNG" \
    "$D" sample --model $M --inpaint "$T/img.png" --index 2 --mask left --out "$T/x.png"
check "no output file was left by the errors" [ ! -e "$T/x.png" ]

# Byte for byte as before: the shipped models sampled by this build and by the build of the
# commit before the step table and the masks (37b0ff1), same seeds, same explicit options,
# every sampler. Not under the sanitizer (a second build of the whole program).
BASE=37b0ff1
if [ -n "$DFS_SANITIZE" ]; then
    echo "$NAME: the comparison with $BASE is skipped under the sanitizer run (it runs in 'make test')"
elif ! git cat-file -e "$BASE^{commit}" 2>/dev/null; then
    bad "commit $BASE is not in this checkout's history (a clone with history is needed)"
else
    git worktree add --detach -q "$T/base" "$BASE" 2>"$T/wt.err" && \
        make -C "$T/base" --no-print-directory -j2 BUILD=build build/diffuse >"$T/base.log" 2>&1
    check "the base commit builds" [ -x "$T/base/build/diffuse" ]
    for S in "ddpm --steps 30" "ddpm --steps 20 --variance beta" "ddim --steps 15 --eta 0.5" \
             "dpm++2m --steps 12" "heun --steps 8"; do
        "$T/base/build/diffuse" sample --model $M --n 12 --sampler $S --guidance 1.2 --seed 5 \
            --out "$T/old.npy" 2>/dev/null
        "$D" sample --model $M --n 12 --sampler $S --guidance 1.2 --seed 5 --out "$T/new.npy" 2>/dev/null
        same_files "fmnist, $S: byte for byte as before" "$T/old.npy" "$T/new.npy"
        "$T/base/build/diffuse" sample --model models/fashion-text.safetensors --prompt "a dark ankle boot" \
            --n 6 --sampler $S --guidance 3 --seed 5 --out "$T/old.npy" 2>/dev/null
        "$D" sample --model models/fashion-text.safetensors --prompt "a dark ankle boot" \
            --n 6 --sampler $S --guidance 3 --seed 5 --out "$T/new.npy" 2>/dev/null
        same_files "fashion-text, $S: byte for byte as before" "$T/old.npy" "$T/new.npy"
        rm -f "$T/old.npy" "$T/new.npy" "$T/old.labels.npy" "$T/new.labels.npy"
    done
    git worktree remove --force "$T/base" 2>/dev/null
fi
summary
