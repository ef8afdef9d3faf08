#!/bin/sh
# parity_graph.sh BUILD - the EGNN ops (dfs_pair_expand, dfs_pair_diff, dfs_pair_sum,
# dfs_sum_last, dfs_sqrt, dfs_recip, dfs_add_scalar, dfs_center_masked, dfs_pair_silu,
# dfs_pair_sum_gated) and EDM's coordinate update composed from them against PyTorch: BUILD/tests/parity/graph_dump writes the C outputs
# and gradients, tests/parity/torch_graph.py recomputes them with autograd in double precision
# and compares. Without python3-torch it says so and counts one failure, as every parity script
# does (tests/lib.sh: parity); under the sanitizer run it is skipped.
NAME=parity_graph; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
parity tests/parity/torch_graph.py "$BUILD/tests/parity/graph_dump"
