#!/bin/sh
# parity_attn.sh BUILD - dfs_attention (forward and the gradients of q, k, v, with key masks and
# several heads) against PyTorch: BUILD/tests/parity/attn_dump writes the C results,
# tests/parity/torch_attn.py recomputes them with autograd in double precision and compares.
NAME=parity_attn; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
parity tests/parity/torch_attn.py "$BUILD/tests/parity/attn_dump"
