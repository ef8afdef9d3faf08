/* ops.h - what the ops share among themselves and offer the layers above beyond the public
 * diffuse/ops.h: the fused convolution, the dropout mask, the conv chunk size. Not public API. */
#ifndef DFS_OPS_H
#define DFS_OPS_H

#include "diffuse/ops.h"
#include "../engine/tape.h"
#include "../kernels/kernels.h"

/* Upper bound (in floats) on the im2col buffer of the fast conv; it sets how many images go
 * into one GEMM. Default 1 << 19 (2 MB). Tests lower it to exercise chunking. Returns the
 * previous value. Not thread-safe: set it before running ops. */
size_t dfs_conv_set_chunk_floats(size_t n);

/* Dropout mask of n elements in nslice equal slices (images), as bits (mask: (n + 7) / 8
 * bytes): element i of slice s is kept iff its 16-bit uniform is >= p 2^16, drawn from a
 * generator of its own for slice s, seeded from one draw of rng. So the mask depends on rng's
 * state alone, not on the thread count, and slices are drawn in parallel. dfs_dropout and the
 * fused convolution both use it. */
void dfs_dropout_mask(uint8_t *mask, size_t n, size_t nslice, dfs_rng *rng, float p);

/* Fused stride-1 "same" convolution (odd KH x KW kernel, pad KH/2 and KW/2, so the output has
 * the input's size) with the ops that surround it in the U-Net, as one op on the tape:
 *   out = conv(pre(x), w) + b + tadd[n, co] + res
 * x is x (N, C1, H, W), or the channel concatenation [x, x2] when x2 is set (never formed);
 * pre is, in this order: GroupNorm (norm 1; norm 2 adds SiLU), dropout (p > 0 in training
 * mode) and nearest upsampling by up (1 or 2; only without norm and dropout). tadd (N, Co) and
 * res (N, Co, H up, W up) may be NULL. The result equals the composition of dfs_concat,
 * dfs_group_norm(_silu), dfs_dropout, dfs_upsample_nearest, dfs_conv2d and dfs_add (the same
 * dropout mask too), which is what it runs when the fast kernels are off (dfs_set_kernels).
 * Forward keeps no pre(x): backward recomputes it. */
typedef struct {
    dfs_tensor *x2;
    int norm; /* 0 none, 1 GroupNorm, 2 GroupNorm then SiLU */
    dfs_tensor *gamma, *beta; /* (C1 + C2) or NULL (1 and 0) */
    int groups;
    float eps;
    float dropout;
    int up;
    dfs_tensor *tadd, *res;
} dfs_conv_fused;
dfs_tensor *dfs_conv2d_fused(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b,
                             const dfs_conv_fused *f);

#endif
