#!/bin/sh
# parity_classifier.sh BUILD - the cross-entropy op and the classifier against PyTorch:
# BUILD/tests/test_classifier --dump-parity writes logits, labels, a tiny classifier and a batch
# with the C losses, outputs and gradients; tools/torch_classifier.py recomputes them with
# F.cross_entropy and torch.nn and compares. Prints its summary line ("torch_classifier: N
# passed, N failed"); exits non-zero on any failure.
BUILD=${1:-build}
PY=/usr/bin/python3

if [ -n "$DFS_SANITIZE" ]; then
    echo "parity_classifier.sh: skipped under the sanitizer run (PyTorch parity runs in 'make test')"
    echo "parity_classifier.sh: 0 passed, 0 failed"
    exit 0
fi
if ! "$PY" -c "import torch, numpy" >/dev/null 2>&1; then
    echo "parity_classifier.sh: $PY cannot import torch and numpy; install python3-torch" \
         "python3-numpy (make setup does)"
    echo "parity_classifier.sh: 0 passed, 1 failed"
    exit 1
fi
if [ ! -x "$BUILD/tests/test_classifier" ]; then
    echo "parity_classifier.sh: $BUILD/tests/test_classifier is missing (run make first)"
    echo "parity_classifier.sh: 0 passed, 1 failed"
    exit 1
fi

dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT INT TERM
out="$dir/classifier_parity.safetensors"
if ! "$BUILD/tests/test_classifier" --dump-parity "$out"; then
    echo "parity_classifier.sh: test_classifier --dump-parity failed"
    echo "parity_classifier.sh: 0 passed, 1 failed"
    exit 1
fi
"$PY" tools/torch_classifier.py "$out"
rc=$?
[ $rc -le 1 ] || echo "torch_classifier: 0 passed, 1 failed"
exit $rc
