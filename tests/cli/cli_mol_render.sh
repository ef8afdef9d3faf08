#!/bin/sh
# cli_mol_render.sh BUILD - diffuse mol render: grids from XYZ and SDF files (size from --cols
# and --size, --max, captions or none, the same bytes twice), a trajectory as one row of frames,
# and every bad file or option as one line on stderr with exit status 2 and no PNG.
NAME=cli_mol_render; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"

# width and height of a PNG: big-endian 32-bit numbers at bytes 16 and 20 of its header
png_size() { od -An -tu4 --endian=big -j16 -N8 "$1" | tr -s ' ' | sed 's/^ //'; }

"$D" mol render --help >"$T/h" 2>&1; check "mol render --help exits 0" [ $? -eq 0 ]
check "mol render --help prints usage" grep -q "usage: diffuse mol render" "$T/h"
check "--help names every option" sh -c 'for o in --in --out --cols --size --max --captions --trajectory; do grep -q -e "$o" "$1" || exit 1; done' - "$T/h"

# water, methane and ethanol as XYZ (no bonds: perceived from the distances)
cp "$(dirname "$0")/../data/water-methane-ethanol.xyz" "$T/m.xyz"
"$D" mol render --in "$T/m.xyz" --out "$T/g.png" 2>"$T/e"; rc=$?
check "grid exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
check "grid says what it drew" grep -q "wrote .*g.png: 3 of the 3 molecules of .*m.xyz, 3 x 1 panels of 240 pixels" "$T/e"
w_h=$(png_size "$T/g.png")
check "3 panels of 240 pixels with 1-pixel frames: 724 wide ($w_h)" [ "${w_h% *}" = 724 ]
check "a caption strip under the panels ($w_h)" [ "${w_h#* }" -gt 242 ]
"$D" mol render --in "$T/m.xyz" --out "$T/n.png" --captions none --cols 2 --size 64 2>"$T/e"
check "--cols 2 --size 64 --captions none: 131 x 131 ($(png_size "$T/n.png"))" [ "$(png_size "$T/n.png")" = "131 131" ]
"$D" mol render --in "$T/m.xyz" --out "$T/g2.png" 2>"$T/e"
same_files "the same file gives the same PNG" "$T/g.png" "$T/g2.png"
"$D" mol render --in "$T/m.xyz" --out "$T/i.png" --captions index 2>"$T/e"
other_files "index captions differ from formulas" "$T/g.png" "$T/i.png"
"$D" mol render --in "$T/m.xyz" --out "$T/t.png" --captions title --max 2 --size 100 2>"$T/e"
check "--max 2 draws the first two" grep -q "2 of the 3 molecules" "$T/e"
check "--max 2: 2 panels of 100 ($(png_size "$T/t.png"))" [ "$(png_size "$T/t.png" | cut -d' ' -f1)" = 203 ]

# formaldehyde as SDF, with its double bond
cat >"$T/f.sdf" <<'EOF'
formaldehyde
 hand-written

  4  3  0  0  0  0  0  0  0  0999 V2000
    1.1419   -0.0194    0.0053 C   0  0  0  0  0  0  0  0  0  0  0  0
    2.3666   -0.0194    0.0053 O   0  0  0  0  0  0  0  0  0  0  0  0
    0.5545   -0.2349    0.9121 H   0  0  0  0  0  0  0  0  0  0  0  0
    0.5545    0.1960   -0.9015 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  2  0  0  0  0
  1  3  1  0  0  0  0
  1  4  1  0  0  0  0
M  END
$$$$
EOF
"$D" mol render --in "$T/f.sdf" --out "$T/f.png" --size 128 2>"$T/e"; rc=$?
check "SDF grid exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
check "SDF grid: one panel of 128 ($(png_size "$T/f.png"))" [ "$(png_size "$T/f.png" | cut -d' ' -f1)" = 130 ]

# a trajectory: 5 frames of water pulled together; --max 3 takes frames 1, 3 and 5
for s in 4 3 2 1.5 1; do
    echo 3; echo "step $s"
    awk -v s="$s" 'BEGIN { printf "O 0 0 0\nH %f %f 0\nH %f %f 0\n", 0.757 * s, 0.586 * s, -0.757 * s, 0.586 * s }'
done >"$T/traj.xyz"
"$D" mol render --in "$T/traj.xyz" --out "$T/traj.png" --trajectory --max 3 --size 80 2>"$T/e"; rc=$?
check "trajectory exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
check "trajectory says what it drew" grep -q "3 of the 5 frames of .*traj.xyz, 3 x 1 panels of 80 pixels" "$T/e"
check "trajectory: one row of 3 panels ($(png_size "$T/traj.png"))" [ "$(png_size "$T/traj.png" | cut -d' ' -f1)" = 244 ]
"$D" mol render --in "$T/traj.xyz" --out "$T/traj1.png" --trajectory --max 3 --size 80 --captions none 2>"$T/e"
check "trajectory without captions: 244 x 82 ($(png_size "$T/traj1.png"))" [ "$(png_size "$T/traj1.png")" = "244 82" ]
"$D" mol render --in "$T/traj.xyz" --out "$T/grid5.png" --max 3 --size 80 --captions none 2>"$T/e"
other_files "a trajectory is not a grid of the same frames (one view, one scale)" "$T/traj1.png" "$T/grid5.png"

# errors: one line, exit 2, no PNG
expect_error "missing --in" "--in FILE.xyz|FILE.sdf is required" "$D" mol render --out "$T/x.png"
expect_error "missing --out" "--out FILE.png is required" "$D" mol render --in "$T/m.xyz"
expect_error "--out not a PNG" "--out FILE.png is required" "$D" mol render --in "$T/m.xyz" --out "$T/x.jpg"
expect_error "missing file" "none.xyz: cannot open" "$D" mol render --in "$T/none.xyz" --out "$T/x.png"
expect_error "other extension" "must end in .xyz, .sdf or .mol" "$D" mol render --in "$T/m.txt" --out "$T/x.png"
printf '2\nw\nO 0 0 0\nH 0.9 x 0\n' >"$T/bad.xyz"
expect_error "a file with an error: the reader's file and line" "bad.xyz: line 4: .*not a number" \
    "$D" mol render --in "$T/bad.xyz" --out "$T/x.png"
printf '3\ncut short\nO 0 0 0\n' >"$T/short.xyz"
expect_error "a truncated file" "short.xyz: line" "$D" mol render --in "$T/short.xyz" --out "$T/x.png"
: >"$T/empty.xyz"
expect_error "empty file" "empty.xyz: no molecules" "$D" mol render --in "$T/empty.xyz" --out "$T/x.png"
expect_error "bad --size" "--size expects an integer in 32..4096" "$D" mol render --in "$T/m.xyz" --out "$T/x.png" --size 10
expect_error "bad --cols" "--cols expects an integer" "$D" mol render --in "$T/m.xyz" --out "$T/x.png" --cols 0
expect_error "bad --max" "--max expects an integer" "$D" mol render --in "$T/m.xyz" --out "$T/x.png" --max two
expect_error "bad --captions" "--captions is formula, index, title or none" "$D" mol render --in "$T/m.xyz" --out "$T/x.png" --captions name
expect_error "--cols with --trajectory" "--cols does not apply to --trajectory" "$D" mol render --in "$T/m.xyz" --out "$T/x.png" --trajectory --cols 2
expect_error "unknown option" "unknown or incomplete option '--bogus'" "$D" mol render --in "$T/m.xyz" --out "$T/x.png" --bogus
expect_error "stray argument" "unexpected argument" "$D" mol render "$T/m.xyz" --out "$T/x.png"
for i in 1 2 3 4 5 6; do cat "$T/m.xyz"; done >"$T/18.xyz"
expect_error "grid too large for a PNG" "65536" "$D" mol render --in "$T/18.xyz" --out "$T/x.png" --cols 18 --size 4096
expect_error "--out in a missing folder" "does not exist" "$D" mol render --in "$T/m.xyz" --out "$T/no/x.png"
check "no PNG after the failures" [ ! -e "$T/x.png" ]
summary
