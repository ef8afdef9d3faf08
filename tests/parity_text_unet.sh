#!/bin/sh
# parity_text_unet.sh BUILD - the text-conditioned U-Net (src/unet_text.c) against PyTorch:
# BUILD/tools/text_unet_dump runs a small text U-Net (attention with the words' keys and values in
# all 7 attention blocks, a 2-layer text encoder) forward, backward and 5 AdamW steps on a batch
# that includes a padded caption, junk under a mask and the empty caption; tools/torch_text_unet.py
# repeats it with tools/torch_unet.py's text path and compares the output, every gradient and the
# losses and updates, with tests/parity.sh's tolerances.
BUILD=${1:-build}
PY=/usr/bin/python3

if [ -n "$DFS_SANITIZE" ]; then
    echo "parity_text_unet.sh: skipped under the sanitizer run (it runs in 'make test')"
    echo "torch_text_unet: 0 passed, 0 failed"
    exit 0
fi
if ! "$PY" -c "import torch, numpy" >/dev/null 2>&1; then
    echo "parity_text_unet.sh: $PY cannot import torch and numpy (make setup installs them)"
    echo "torch_text_unet: 0 passed, 1 failed"
    exit 1
fi
if [ ! -x "$BUILD/tools/text_unet_dump" ]; then
    echo "parity_text_unet.sh: $BUILD/tools/text_unet_dump is missing (run make first)"
    echo "torch_text_unet: 0 passed, 1 failed"
    exit 1
fi
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
if ! "$BUILD/tools/text_unet_dump" "$dir/text_unet.safetensors"; then
    echo "parity_text_unet.sh: text_unet_dump failed"
    echo "torch_text_unet: 0 passed, 1 failed"
    exit 1
fi
"$PY" tools/torch_text_unet.py "$dir/text_unet.safetensors"
rc=$?
[ $rc -le 1 ] || echo "torch_text_unet: 0 passed, 1 failed"
exit $rc
