/* conv.c - 2-D convolution as naive loops in double: the readable definition that the fast
 * paths (src/ops/conv.c, src/kernels/igemm.c) are tested against. */
#include "ref.h"

#include <stddef.h>

void dfs_conv2d_reference(float *out, const float *x, const float *w, const float *b, int N, int Ci,
                          int H, int W, int Co, int KH, int KW, int stride, int pad) {
    const int Ho = (H + 2 * pad - KH) / stride + 1, Wo = (W + 2 * pad - KW) / stride + 1;
    for (int n = 0; n < N; n++)
        for (int co = 0; co < Co; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double s = b ? b[co] : 0.0;
                    for (int ci = 0; ci < Ci; ci++)
                        for (int kh = 0; kh < KH; kh++)
                            for (int kw = 0; kw < KW; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                s += (double)w[((co * Ci + ci) * KH + kh) * KW + kw] *
                                     x[(((size_t)n * Ci + ci) * H + ih) * W + iw];
                            }
                    out[(((size_t)n * Co + co) * Ho + oh) * Wo + ow] = (float)s;
                }
}

void dfs_conv2d_reference_backward(float *dx, float *dw, float *db, const float *dout,
                                   const float *x, const float *w, int N, int Ci, int H, int W,
                                   int Co, int KH, int KW, int stride, int pad) {
    const int Ho = (H + 2 * pad - KH) / stride + 1, Wo = (W + 2 * pad - KW) / stride + 1;
    for (int n = 0; n < N; n++)
        for (int co = 0; co < Co; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    float d = dout[(((size_t)n * Co + co) * Ho + oh) * Wo + ow];
                    if (db) db[co] += d;
                    for (int ci = 0; ci < Ci; ci++)
                        for (int kh = 0; kh < KH; kh++)
                            for (int kw = 0; kw < KW; kw++) {
                                int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                size_t xi = (((size_t)n * Ci + ci) * H + ih) * W + iw;
                                size_t wi = (((size_t)co * Ci + ci) * KH + kh) * KW + kw;
                                if (dw) dw[wi] += d * x[xi];
                                if (dx) dx[xi] += d * w[wi];
                            }
                }
}

