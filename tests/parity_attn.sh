#!/bin/sh
# parity_attn.sh BUILD - dfs_attention (forward and the gradients of q, k, v, with key masks and
# several heads) against PyTorch: BUILD/tools/attn_dump writes the C results, tools/torch_attn.py
# recomputes them with autograd in double precision and compares.
NAME=parity_attn; BUILD=${1:-build}; . "$(dirname "$0")/lib.sh"
parity tools/torch_attn.py "$BUILD/tools/attn_dump"
