#!/bin/sh
# parity_classifier.sh BUILD - the cross-entropy op and the classifier against PyTorch:
# BUILD/tests/test_classifier --dump-parity writes logits, labels, a tiny classifier and a batch
# with the C losses, outputs and gradients; tests/parity/torch_classifier.py recomputes them with
# F.cross_entropy and torch.nn and compares. Prints its summary line ("torch_classifier: N
# passed, N failed"); exits non-zero on any failure.
NAME=torch_classifier; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
parity tests/parity/torch_classifier.py "$BUILD/tests/test_classifier" --dump-parity
