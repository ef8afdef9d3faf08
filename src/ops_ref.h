/* ops_ref.h - plain reference kernels that the fast ops are tested against. Not public API.
 *
 * Size key: N batch, Ci/Co channels in/out, H W input height width, KH KW kernel, Ho Wo output.
 * All arrays are row-major; images NCHW. */
#ifndef DFS_OPS_REF_H
#define DFS_OPS_REF_H

#include <stddef.h>

#include "internal.h"

/* Naive-loop 2-D cross-correlation (the "conv" of PyTorch and every DL framework):
 * out[n,co,oh,ow] = b[co] + sum_{ci,kh,kw} w[co,ci,kh,kw] x[n,ci,oh*stride-pad+kh,
 * ow*stride-pad+kw] with zeros outside the image. Ho = (H + 2 pad - KH) / stride + 1, likewise Wo.
 * out (N,Co,Ho,Wo) is overwritten; x (N,Ci,H,W), w (Co,Ci,KH,KW), b (Co) or NULL. */
void dfs_conv2d_reference(float *out, const float *x, const float *w, const float *b, int N, int Ci,
                          int H, int W, int Co, int KH, int KW, int stride, int pad);

/* Its vector-Jacobian product for dout (N,Co,Ho,Wo): accumulates (+=) into dx (N,Ci,H,W),
 * dw (Co,Ci,KH,KW) and db (Co); any of the three may be NULL. */
void dfs_conv2d_reference_backward(float *dx, float *dw, float *db, const float *dout,
                                   const float *x, const float *w, int N, int Ci, int H, int W,
                                   int Co, int KH, int KW, int stride, int pad);

/* Upper bound (in floats) on the im2col buffer of the fast conv; it sets how many images go
 * into one GEMM. Default 1 << 19 (2 MB). Tests lower it to exercise chunking. Returns the
 * previous value. Not thread-safe: set it before running ops. */
size_t dfs_conv_set_chunk_floats(size_t n);

/* ---- helpers shared by the fast ops ---- */

/* The gradient buffer of t for a backward that writes every element of it. *fresh is 1 when t
 * had no gradient yet: the caller then stores (=) into every element instead of adding, which
 * skips reading the zeros. The buffer still comes from dfs_grad, cleared, so that it is taken
 * from (and later returned to) the engine's pool of recycled gradient buffers; an engine call
 * that hands out a pooled buffer without clearing it would also save the memset. */
float *dfs_grad_for_write(dfs_graph *g, dfs_tensor *t, int *fresh);

/* Threads an op may use: 1 inside a parallel region (no nesting), else the OpenMP maximum. */
int dfs_op_threads(void);

#endif
