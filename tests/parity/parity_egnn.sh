#!/bin/sh
# parity_egnn.sh BUILD - EDM's EGNN denoiser (src/nn/egnn.c) against PyTorch: the output, every
# parameter gradient and the input gradient of two nets (attention, tanh and two GCLs per block;
# neither, norm_constant 0) on two padded batches each; BUILD/tests/parity/egnn_dump writes the
# C results, tests/parity/torch_egnn.py rebuilds the network as EDM's modules on an edge list in
# double precision and compares.
NAME=parity_egnn; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
parity tests/parity/torch_egnn.py "$BUILD/tests/parity/egnn_dump"
