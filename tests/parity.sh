#!/bin/sh
# parity.sh BUILD - the C U-Net against PyTorch: BUILD/tools/parity_dump runs the fmnist U-Net
# forward, backward and 5 AdamW steps on a fixed batch; tools/torch_parity.py repeats it in
# PyTorch and compares output, every gradient and the losses. Prints the summary line of
# torch_parity.py ("torch_parity: N passed, N failed"); exits non-zero on any failure.
BUILD=${1:-build}
PY=/usr/bin/python3

if [ -n "$DFS_SANITIZE" ]; then
    echo "parity.sh: skipped under the sanitizer run (PyTorch parity runs in 'make test')"
    echo "parity.sh: 0 passed, 0 failed"
    exit 0
fi

if ! "$PY" -c "import torch, numpy" >/dev/null 2>&1; then
    echo "parity.sh: $PY cannot import torch and numpy; install python3-torch python3-numpy" \
         "(make setup does)"
    echo "parity.sh: 0 passed, 1 failed"
    exit 1
fi

if [ ! -x "$BUILD/tools/parity_dump" ]; then
    echo "parity.sh: $BUILD/tools/parity_dump is missing (run make first)"
    echo "parity.sh: 0 passed, 1 failed"
    exit 1
fi

dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
out="$dir/parity.safetensors"

if ! "$BUILD/tools/parity_dump" "$out"; then
    echo "parity.sh: parity_dump failed"
    echo "parity.sh: 0 passed, 1 failed"
    exit 1
fi

"$PY" tools/torch_parity.py "$out"
rc=$?
# torch_parity.py prints its own summary line; make sure one exists if Python itself died.
[ $rc -le 1 ] || echo "torch_parity: 0 passed, 1 failed"
exit $rc
