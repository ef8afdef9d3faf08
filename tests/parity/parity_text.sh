#!/bin/sh
# parity_text.sh BUILD - the text encoder (src/nn/text.c) against PyTorch: outputs and every
# parameter gradient; BUILD/tests/parity/text_dump writes the C results, tests/parity/torch_text.py
# rebuilds the encoder with torch.nn in double precision and compares.
NAME=parity_text; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
parity tests/parity/torch_text.py "$BUILD/tests/parity/text_dump"
