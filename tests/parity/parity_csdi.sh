#!/bin/sh
# parity_csdi.sh BUILD - CSDI's denoiser (src/nn/csdi.c) against PyTorch: the output and every
# parameter gradient on three batches (both transformers, K = 1, L = 1);
# BUILD/tests/parity/csdi_dump writes the C results, tests/parity/torch_csdi.py rebuilds the
# network with torch.nn.functional in double precision and compares.
NAME=parity_csdi; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
parity tests/parity/torch_csdi.py "$BUILD/tests/parity/csdi_dump"
