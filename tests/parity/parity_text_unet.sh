#!/bin/sh
# parity_text_unet.sh BUILD - the text-conditioned U-Net (src/nn/unet_text.c) against PyTorch:
# BUILD/tests/parity/parity_dump --text runs a small text U-Net (attention with the words' keys
# and values in all 7 attention blocks, a 2-layer text encoder) forward, backward and 5 AdamW
# steps on a batch that includes a padded caption, junk under a mask and the empty caption;
# tests/parity/torch_parity.py repeats it with tests/parity/torch_unet.py's text path (float64,
# and float32 to measure the conditioning its tolerances come from) and compares the output,
# every gradient and the losses and updates, as for tests/parity/parity.sh.
NAME=torch_parity; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
parity tests/parity/torch_parity.py "$BUILD/tests/parity/parity_dump" --text
