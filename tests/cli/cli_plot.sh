#!/bin/sh
# cli_plot.sh BUILD - diffuse plot: a loss curve from a metrics.csv, several files and columns,
# a log axis, and every bad file or option as one line on stderr with exit status 2 and no PNG.
NAME=cli_plot; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"

"$D" plot --help >"$T/h" 2>&1; check "plot --help exits 0" [ $? -eq 0 ]
check "plot --help prints usage" grep -q "usage: diffuse plot" "$T/h"
"$D" --help >"$T/h2"; check "top-level help lists plot" grep -q "^  plot" "$T/h2"

# a metrics.csv as diffuse train writes it, with a resume that replays steps 30 and 40
{ echo "step,loss,lr,images_seen,img_per_s,elapsed_s"
  for s in 10 20 30 40 50; do echo "$s,0.$((60 - s)),0.0002,$((s * 64)),100.0,$s.0"; done
  for s in 30 40 50 60; do echo "$s,0.0$s,0.0002,$((s * 64)),100.0,$s.0"; done; } >"$T/m.csv"
"$D" plot "$T/m.csv" --out "$T/loss.png" 2>"$T/e"; check "plot exits 0" [ $? -eq 0 ]
check "plot writes the PNG" [ -s "$T/loss.png" ]
check "plot says what it drew" grep -q "loss against step from 1 file" "$T/e"
"$D" plot "$T/m.csv" "$T/m.csv" --x images_seen --y lr --log --smooth 2 --title "two runs" \
    --width 400 --height 300 --out "$T/two.png" 2>"$T/e"
check "two files, other columns, log axis" [ -s "$T/two.png" ]
# the PNG header holds width and height as big-endian 32-bit numbers at bytes 16 and 20
check "--width/--height set the size" [ "$(od -An -tu1 -j16 -N8 "$T/two.png" | tr -s ' ')" = " 0 0 1 144 0 0 1 44" ]

# errors: one line, exit 2, no PNG
expect_error "missing --out" "--out FILE.png is required" "$D" plot "$T/m.csv"
expect_error "no files" "give one or more CSV files" "$D" plot --out "$T/x.png"
expect_error "missing file" "cannot open" "$D" plot "$T/none.csv" --out "$T/x.png"
: >"$T/empty.csv"
expect_error "empty file" "empty file" "$D" plot "$T/empty.csv" --out "$T/x.png"
echo "step,loss" >"$T/head.csv"
expect_error "header only" "no data rows" "$D" plot "$T/head.csv" --out "$T/x.png"
expect_error "unknown column" "no column 'accuracy'" "$D" plot "$T/m.csv" --y accuracy --out "$T/x.png"
printf 'step,loss\n1,0.5\n2,abc\n' >"$T/bad.csv"
expect_error "non-number" "bad.csv:3: .* is not a number" "$D" plot "$T/bad.csv" --out "$T/x.png"
printf 'step,loss\n1,0.5\n2\n' >"$T/short.csv"
expect_error "short row" "short.csv:3: 1 fields" "$D" plot "$T/short.csv" --out "$T/x.png"
printf 'step,loss\n1,-1\n2,0\n' >"$T/neg.csv"
expect_error "log axis of non-positive values" "no finite positive points" "$D" plot "$T/neg.csv" --log --out "$T/x.png"
expect_error "bad width" "--width expects an integer" "$D" plot "$T/m.csv" --width 10 --out "$T/x.png"
printf 'step,loss\n1,1e308\n2,-1e308\n' >"$T/huge.csv"
expect_error "a range past a double's" "span more than a chart can scale" "$D" plot "$T/huge.csv" --smooth 0 --out "$T/x.png"
check "no PNG after the failures" [ ! -e "$T/x.png" ]
# the columns past the 64th are found; a subnormal value is a number
awk 'BEGIN { for (i = 0; i < 100; i++) printf "c%d,", i; print "step,loss"; for (r = 1; r <= 3; r++) {
    for (i = 0; i < 100; i++) printf "0,"; print r "," (r == 2 ? "1e-320" : 0.5 / r) } }' >"$T/wide.csv"
"$D" plot "$T/wide.csv" --smooth 0 --out "$T/wide.png" 2>"$T/w.err"
check "a 102-column file plots its last two columns" [ -s "$T/wide.png" ]
# a folder or FIFO in place of the PNG is refused and kept (the rename would replace it)
mkfifo "$T/fifo.png"
expect_error "a FIFO as --out" "fifo.png exists and is not a regular file" "$D" plot "$T/m.csv" --out "$T/fifo.png"
check "the FIFO is kept" [ -p "$T/fifo.png" ]
check "no PNG after the failures" [ ! -e "$T/x.png" ]
summary
