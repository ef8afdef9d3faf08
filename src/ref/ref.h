/* ref.h - plain reference loops, in double where it matters, that tests compare the fast
 * paths to. Not public API. */
#ifndef DFS_REF_H
#define DFS_REF_H

#include <stddef.h>

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

/* Mean softmax cross-entropy of logits z (N, K) against labels (N), straight from the
 * definition -log(exp(z_y) / sum_k exp(z_k)) in double, without the max shift (exact for
 * |z| below ~700). When dz (N, K) is not NULL it gets the gradient (softmax - onehot) / N. */
double dfs_cross_entropy_reference(double *dz, const float *z, const int *labels, int N, int K);

#endif
