#!/bin/sh
# parity_attn.sh BUILD - dfs_attention (forward and the gradients of q, k, v, with key masks and
# several heads) against PyTorch: BUILD/tools/attn_dump writes the C results, tools/torch_attn.py
# recomputes them with autograd in double precision and compares.
BUILD=${1:-build}
PY=/usr/bin/python3
if [ -n "$DFS_SANITIZE" ]; then
    echo "parity_attn.sh: skipped under the sanitizer run (it runs in 'make test')"
    echo "parity_attn: 0 passed, 0 failed"
    exit 0
fi
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
if ! "$BUILD/tools/attn_dump" "$dir/attn.safetensors"; then
    echo "parity_attn: 0 passed, 1 failed"
    exit 1
fi
"$PY" tools/torch_attn.py "$dir/attn.safetensors"
rc=$?
[ $rc -le 1 ] || echo "parity_attn: 0 passed, 1 failed"
exit $rc
