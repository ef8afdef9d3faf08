#!/bin/sh
# cli_hostile: hostile data files and folders (issue 14's findings), each refused up front with
# one clear line and status 2, never by exhausting memory and never by writing a checkpoint the
# program cannot read back. Each case failed on the code before the fix: the IDX and PNG
# cases by running out of the memory limit (or decoding 1 GiB), the symlink cases by loading
# a folder twice or switching caption formats silently, the long caption by training.
NAME=cli_hostile; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"

# A shell with a 1 GB address-space limit: a loader that trusts a header's sizes with malloc
# fails there with "out of memory" instead of the format error. The sanitizer's shadow memory
# needs the address space, so there the limit is left off (the messages are still checked).
limited() {
    if [ -z "$DFS_SANITIZE" ]; then (ulimit -v 1000000; exec "$@"); else "$@"; fi
}

# --- IDX: a 16-byte raw header declaring 1 x 65536 x 65536 pixels (4 GiB) -----------------------
printf '\000\000\010\003\000\000\000\001\000\001\000\000\000\001\000\000' >"$T/bomb.idx"
check "the raw IDX header is 16 bytes" [ "$(wc -c <"$T/bomb.idx")" -eq 16 ]
expect_error "a raw IDX header declaring 4 GiB is refused by its length, before allocating" \
    "bomb.idx: truncated: expected 4294967296 bytes of pixels, got 0$" \
    limited "$D" noise --data "$T/bomb.idx" --index 0 --at 0 --out "$T/n.png"
# the same header gzipped: 36 bytes of .gz; the buffer must grow with the data that arrives
gzip -c "$T/bomb.idx" >"$T/bomb.idx.gz"
expect_error "a gzipped IDX header declaring 4 GiB is refused as truncated" \
    "bomb.idx.gz: truncated: expected 4294967296 bytes of pixels, got 0$" \
    limited "$D" noise --data "$T/bomb.idx.gz" --index 0 --at 0 --out "$T/n.png"
# a raw file with pixels past what its header declares (refused before the fix too; now by
# its length, before reading)
printf '\000\000\010\003\000\000\000\001\000\000\000\002\000\000\000\002abcde' >"$T/long.idx"
expect_error "a raw IDX with bytes past its pixels is refused" \
    "long.idx: unexpected data after 4 bytes of pixels$" \
    "$D" noise --data "$T/long.idx" --index 0 --at 0 --out "$T/n.png"
check "no output was written" [ ! -e "$T/n.png" ]

# --- PNG bomb: 8192 x 8192 RGBA (256 MiB decoded) in a file of a few hundred KB ----------------
mkdir "$T/pngbomb"
"$PY" - "$T/pngbomb/big.png" <<'EOF'
import struct, sys, zlib
w = h = 8192
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
c = zlib.compressobj(9)
row = b"\0" * (1 + 4 * w)                 # filter byte 0, then transparent black pixels
idat = b"".join(c.compress(row) for _ in range(h)) + c.flush()
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
EOF
check "the PNG bomb is under 1 MB" [ "$(wc -c <"$T/pngbomb/big.png")" -lt 1000000 ]
expect_error "a PNG declaring 8192 x 8192 is refused before decoding" \
    "big.png: the image is 8192 x 8192 pixels; diffuse reads at most 16777216 pixels (4096 x 4096): shrink it first$" \
    limited "$D" train --data "$T/pngbomb" --image-size 28 --steps 1 --out "$T/run_bomb"
check "no run folder was left" [ ! -e "$T/run_bomb/last.safetensors" ]

# --- links to folders in data folders -----------------------------------------------------------
# a class folder, and a link to the data folder itself beside it
mkdir -p "$T/cls/a"
"$PY" -c "
import struct, zlib, sys
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
raw = b''.join(b'\0' + bytes(range(i, i + 8)) for i in range(8))
open(sys.argv[1], 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 8, 8, 8, 0, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
" "$T/cls/a/ok.png"
check "the small PNG was made" [ -s "$T/cls/a/ok.png" ]
"$D" train --data "$T/cls" --image-size 8 --preset small --steps 1 --sample-every 0 \
    --out "$T/run_cls" >/dev/null 2>"$T/cls.err"
check "a class folder of real files trains (status 0)" [ $? -eq 0 ]
ln -s . "$T/cls/self"
expect_error "a link to its own folder is not taken as a class" \
    "cls/self: a link to a folder, which diffuse does not follow (copy the folder, or link the files)$" \
    "$D" train --data "$T/cls" --image-size 8 --steps 1 --out "$T/run_self"
rm "$T/cls/self"
ln -s ../a "$T/cls/a/self"
expect_error "a link inside a class folder is refused too (self/self/ok.png is ok.png again)" \
    "cls/a/self: a link to a folder" \
    "$D" train --data "$T/cls" --image-size 8 --steps 1 --out "$T/run_self"
# a link to a file is an ordinary image
rm "$T/cls/a/self"; mkdir "$T/cls/b"; ln -s ../a/ok.png "$T/cls/b/linked.png"
"$D" train --data "$T/cls" --image-size 8 --preset small --steps 1 --sample-every 0 \
    --out "$T/run_lnfile" >/dev/null 2>"$T/lnfile.err"
check "a link to a PNG file is read as the image (status 0)" [ $? -eq 0 ]

# captioned folder: metadata.jsonl naming self/ok.png where self links to the folder
mkdir "$T/cap"; cp "$T/cls/a/ok.png" "$T/cap/ok.png"; ln -s . "$T/cap/self"
printf '{"file_name": "ok.png", "text": "a square"}\n{"file_name": "self/ok.png", "text": "again"}\n' \
    >"$T/cap/metadata.jsonl"
expect_error "a captioned file reached through a link to a folder is refused" \
    "cap/self/ok.png: the path goes through a link to a folder" "$D" data show "$T/cap"
# metadata.jsonl as a broken link and as a looping link: an error, not a switch to .txt captions
mkdir "$T/cap2"; cp "$T/cls/a/ok.png" "$T/cap2/ok.png"; echo "a square" >"$T/cap2/ok.txt"
"$D" data show "$T/cap2" >"$T/show.out" 2>&1
check "the folder reads with its .txt caption" grep -q "a square" "$T/show.out"
ln -s missing.jsonl "$T/cap2/metadata.jsonl"
expect_error "a broken metadata.jsonl link is an error" \
    "cap2/metadata.jsonl: cannot open: No such file or directory$" "$D" data show "$T/cap2"
rm "$T/cap2/metadata.jsonl"; ln -s metadata.jsonl "$T/cap2/metadata.jsonl"
expect_error "a looping metadata.jsonl link is an error" \
    "cap2/metadata.jsonl: cannot open: Too many levels of symbolic links$" "$D" data show "$T/cap2"

# --- captions too long for a checkpoint --------------------------------------------------------
# One caption of 100,000 letters: it trained and wrote a checkpoint whose vocabulary, at 110 MB,
# neither `info` nor `--resume` could read back. Refused when the folder is read.
mkdir "$T/cap3"; cp "$T/cls/a/ok.png" "$T/cap3/ok.png"
"$PY" -c "import json,sys; print(json.dumps({'file_name': 'ok.png', 'text': 'x' * 100000}))" \
    >"$T/cap3/metadata.jsonl"
expect_error "a caption longer than 65536 bytes is refused, naming the line" \
    "cap3/metadata.jsonl: line 1: the caption of ok.png is 100000 bytes; the longest allowed is 65536$" \
    "$D" train --text --data "$T/cap3" --steps 1 --out "$T/run_long"
check "and no checkpoint was written" [ ! -e "$T/run_long/last.safetensors" ]
# a 129-letter word fits a caption but not the tokenizer
"$PY" -c "import json; print(json.dumps({'file_name': 'ok.png', 'text': 'a ' + 'y' * 129}))" \
    >"$T/cap3/metadata.jsonl"
expect_error "a word of 129 bytes is refused by the tokenizer" \
    "caption 0 has a word of 129 bytes ('yyyyyyyyyyyyyyyyyyyyyyyy...'); the longest allowed is 128$" \
    "$D" data show "$T/cap3"
"$PY" -c "import json; print(json.dumps({'file_name': 'ok.png', 'text': 'a ' + 'y' * 128}))" \
    >"$T/cap3/metadata.jsonl"
"$D" train --text --data "$T/cap3" --preset small --image-size 8 --steps 2 --sample-every 0 \
    --out "$T/run_128" >/dev/null 2>"$T/run128.err"
check "a word of 128 bytes trains" [ $? -eq 0 ]
"$D" info "$T/run_128/last.safetensors" >"$T/info128.out" 2>&1
check "and its checkpoint reads back" [ $? -eq 0 ]

summary
