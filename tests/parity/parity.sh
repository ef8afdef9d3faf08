#!/bin/sh
# parity.sh BUILD - the C U-Net against PyTorch: BUILD/tests/parity/parity_dump runs the fmnist
# U-Net forward, backward and 5 AdamW steps on a fixed batch, once with the fast kernels and once
# with the BLAS path (DFS_KERNELS); tests/parity/torch_parity.py repeats it in PyTorch (float64,
# and float32 to measure the conditioning its tolerances come from) and compares both dumps'
# output, every gradient, the losses and the weight updates. Prints "parity: N passed, N
# failed"; exits non-zero on any failure.
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

if [ ! -x "$BUILD/tests/parity/parity_dump" ]; then
    echo "parity.sh: $BUILD/tests/parity/parity_dump is missing (run make first)"
    echo "parity.sh: 0 passed, 1 failed"
    exit 1
fi

dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM

# Both kernel paths (include/diffuse.h, dfs_kernels): the fused AVX-512 kernels (the default)
# and the unfused im2col + BLAS path they replaced, against one PyTorch reference.
pass=0
fail=0
dumps=""
for k in fast blas; do
    out="$dir/parity-$k.safetensors"
    echo "parity.sh: kernels $k"
    if DFS_KERNELS=$k "$BUILD/tests/parity/parity_dump" "$out"; then
        dumps="$dumps $out"
    else
        echo "parity.sh: parity_dump failed (kernels $k)"
        fail=$((fail + 1))
    fi
done
if [ -n "$dumps" ]; then
    # shellcheck disable=SC2086 # two paths without spaces (mktemp)
    "$PY" tests/parity/torch_parity.py $dumps >"$dir/log" 2>&1
    rc=$?
    cat "$dir/log"
    line=$(grep -E '^torch_parity: [0-9]+ passed, [0-9]+ failed' "$dir/log" | tail -n 1)
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
    # torch_parity.py prints its own summary line; count a failure if Python itself died.
    [ -n "$p" ] || { p=0; f=1; }
    [ $rc -eq 0 ] || [ "$f" -gt 0 ] || f=1
    pass=$((pass + p))
    fail=$((fail + f))
fi
echo "parity: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
