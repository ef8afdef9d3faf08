#!/bin/sh
# cli_data.sh BUILD - diffuse data: help, one-line errors with exit 2, build --limit 20 of both
# builders (PNGs + metadata.jsonl readable back), show of folders and builders, .txt folders,
# unknown-word warnings and the grid.
NAME=cli_data.sh; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"

# help
"$D" data --help >"$T/h" 2>&1; check "data --help exits 0" [ $? -eq 0 ]
check "data --help prints usage" grep -q "usage: diffuse data build" "$T/h"
check "data --help names both builders" grep -q "fashion-captions" "$T/h"
"$D" data build --help >"$T/h2" 2>&1; check "data build --help exits 0" [ $? -eq 0 ]
"$D" --help >"$T/h3"; check "top-level help lists data" grep -q "^  data" "$T/h3"

# errors
expect_error "no subcommand" "give 'build NAME" "$D" data
expect_error "unknown subcommand" "unknown subcommand 'frob'" "$D" data frob
expect_error "unknown builder" "unknown builder 'mnist'" "$D" data build mnist --out "$T/x"
expect_error "missing --out" "--out DIR is required" "$D" data build emoji
expect_error "unknown option" "unknown or incomplete option '--bogus'" "$D" data build emoji --bogus --out "$T/x"
expect_error "bad limit" "--limit expects an integer" "$D" data build emoji --limit 0 --out "$T/x"
expect_error "bad split" "--split must be train or test" "$D" data build fashion-captions --split dev --out "$T/x"
expect_error "split for emoji" "--split applies to fashion-captions only" "$D" data build emoji --split test --out "$T/x"
expect_error "skin tones for fashion" "--skin-tones applies to emoji only" "$D" data build fashion-captions --skin-tones --out "$T/x"
expect_error "bad channels" "--channels must be 1 or 3" "$D" data build emoji --channels 2 --out "$T/x"
expect_error "show of nothing" "no such folder" "$D" data show "$T/none"
expect_error "two sources" "unexpected argument" "$D" data show emoji fashion-captions
expect_error "grid extension" "--grid must name a .png" "$D" data show emoji --limit 2 --grid "$T/g.jpg"
expect_error "a grid of --n 0 images" "--n 0 draws none" "$D" data show emoji --limit 2 --n 0 --grid "$T/g.png"
expect_error "an empty --out" "--out is empty" "$D" data build emoji --limit 2 --out ""
mkdir -p "$T/full"; echo x >"$T/full/keep"
expect_error "non-empty --out" "exists and is not empty" "$D" data build emoji --limit 2 --out "$T/full"
mkdir -p "$T/empty"
expect_error "empty folder" "empty folder" "$D" data show "$T/empty"
check "no partial output after errors" [ ! -e "$T/x" ]

# build both builders, 20 images each
"$D" data build fashion-captions --limit 20 --seed 3 --out "$T/fc" 2>"$T/fc.err"
check "fashion build exits 0" [ $? -eq 0 ]
check "fashion build wrote 20 PNGs" [ "$(ls "$T/fc"/*.png | wc -l)" -eq 20 ]
check "fashion metadata has 20 lines" [ "$(wc -l <"$T/fc/metadata.jsonl")" -eq 20 ]
check "fashion metadata is imagefolder JSON" grep -q '^{"file_name":"000000.png","text":"[a-z ]*boot","label":9' "$T/fc/metadata.jsonl"
check "fashion build reports" grep -q "wrote .*20 images (1 x 28 x 28)" "$T/fc.err"
check "no temp files left" [ -z "$(ls "$T/fc" | grep tmp)" ]
"$D" data build emoji --limit 20 --out "$T/em" 2>"$T/em.err"
check "emoji build exits 0" [ $? -eq 0 ]
check "emoji build wrote 20 PNGs" [ "$(ls "$T/em"/*.png | wc -l)" -eq 20 ]
check "emoji caption format" grep -q '"text":"grinning face, smileys emotion, face smiling"' "$T/em/metadata.jsonl"
check "emoji build reports counts" grep -q "emoji: 20 rendered, 0 failed, [0-9]* skin-tone variants left out" "$T/em.err"

# show: folders read back, builders in memory
"$D" data show "$T/fc" --n 3 >"$T/s1"
check "show folder exits 0" [ $? -eq 0 ]
check "show counts the images" grep -q "images: *20 (1 x 28 x 28), labelled" "$T/s1"
check "show prints the vocabulary size" grep -q "vocabulary: *[0-9][0-9]* tokens" "$T/s1"
check "show prints 3 captions" [ "$(grep -c "^  [0-9]" "$T/s1")" -eq 3 ]
"$D" data show fashion-captions --limit 20 --seed 3 --n 20 >"$T/mem.out" 2>"$T/mem.err"
rc=$?
check "show of the in-memory builder exits 0: $(tail -n 1 "$T/mem.err")" [ $rc -eq 0 ]
"$D" data show "$T/fc" --n 20 >"$T/disk.out" 2>"$T/disk.err"
rc=$?
check "show of the built folder exits 0: $(tail -n 1 "$T/disk.err")" [ $rc -eq 0 ]
grep "^  [0-9]" "$T/mem.out" | awk '{$2=""; print}' >"$T/mem"
grep "^  [0-9]" "$T/disk.out" | awk '{$2=""; print}' >"$T/disk"
check "the builder shows 20 captions" [ "$(wc -l <"$T/mem")" -eq 20 ]
same_files "folder captions equal the in-memory builder's" "$T/mem" "$T/disk"
"$D" data show "$T/em" --n 2 --grid "$T/g.png" >"$T/s2" 2>"$T/s2.err"
check "show emoji folder" grep -q "images: *20 (3 x 32 x 32)" "$T/s2"
check "grid written" [ -s "$T/g.png" ]
"$D" data show emoji --limit 50 --n 1 --encode "a red apple with zorbs" >"$T/s3" 2>"$T/s3.err"
check "encode exits 0" [ $? -eq 0 ]
check "unknown words named in one warning" grep -q "warning: unknown words (encoded as <unk>): 'red' 'apple' 'zorbs'" "$T/s3.err"
check "encoded ids printed" grep -q "^encoded: *2 " "$T/s3"

# a .txt caption folder, converted on load
mkdir -p "$T/txt"
cp "$T/em/000000.png" "$T/txt/smile.png"; printf 'a smiling face\n' >"$T/txt/smile.txt"
cp "$T/em/000001.png" "$T/txt/grin.png"; printf 'a grinning face' >"$T/txt/grin.txt"
"$D" data show "$T/txt" --size 16 --channels 1 >"$T/s4"
check "txt folder shows 2 images" grep -q "images: *2 (1 x 16 x 16)" "$T/s4"
check "txt folder captions" grep -q "grin.png *a grinning face" "$T/s4"
cp "$T/em/000002.png" "$T/txt/lonely.png"
expect_error "image without caption" "lonely.png: image without caption" "$D" data show "$T/txt"
printf '{"file_name": "smile.png", "text": "ok"}\n{"file_name": "grin.png", "text": \n' >"$T/txt/metadata.jsonl"
expect_error "bad JSON line" "metadata.jsonl: line 2" "$D" data show "$T/txt"
# a caption that is not UTF-8 would be stored in the checkpoint's header, which is UTF-8 JSON
printf '{"file_name": "smile.png", "text": "caf\351"}\n{"file_name": "grin.png", "text": "x"}\n' >"$T/txt/metadata.jsonl"
expect_error "a Latin-1 caption" "metadata.jsonl: line 1: not UTF-8 text" "$D" data show "$T/txt"
# a FIFO named like an image is refused at once, not waited on
rm "$T/txt/metadata.jsonl" "$T/txt/lonely.png"; mkfifo "$T/txt/lonely.png"; printf 'alone\n' >"$T/txt/lonely.txt"
expect_error "a FIFO among the images" "lonely.png: not a regular file" timeout 20 "$D" data show "$T/txt"

summary
