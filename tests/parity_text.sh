#!/bin/sh
# parity_text.sh BUILD - the text encoder (src/text.c) against PyTorch: outputs and every
# parameter gradient; BUILD/tools/text_dump writes the C results, tools/torch_text.py
# rebuilds the encoder with torch.nn in double precision and compares.
BUILD=${1:-build}
PY=/usr/bin/python3
if [ -n "$DFS_SANITIZE" ]; then
    echo "parity_text.sh: skipped under the sanitizer run (it runs in 'make test')"
    echo "parity_text: 0 passed, 0 failed"
    exit 0
fi
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
if ! "$BUILD/tools/text_dump" "$dir/text.safetensors"; then
    echo "parity_text: 0 passed, 1 failed"
    exit 1
fi
"$PY" tools/torch_text.py "$dir/text.safetensors"
rc=$?
[ $rc -le 1 ] || echo "parity_text: 0 passed, 1 failed"
exit $rc
