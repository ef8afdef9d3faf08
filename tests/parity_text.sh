#!/bin/sh
# parity_text.sh BUILD - the text encoder (src/nn/text.c) against PyTorch: outputs and every
# parameter gradient; BUILD/tools/text_dump writes the C results, tools/torch_text.py
# rebuilds the encoder with torch.nn in double precision and compares.
NAME=parity_text; BUILD=${1:-build}; . "$(dirname "$0")/lib.sh"
parity tools/torch_text.py "$BUILD/tools/text_dump"
