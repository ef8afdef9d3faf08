/* ops_conv.c - 2-D and 1-D convolution (cross-correlation, as in PyTorch) on the tape.
 *
 * Size key: N batch, Ci/Co channels in/out, H W input height width, KH KW kernel,
 * Ho Wo output height width, P = Ho*Wo output pixels per image, K = Ci*KH*KW.
 *
 * Fast path: im2col + GEMM (Chellapilla, Puri & Simard 2006, "High performance convolutional
 * neural networks for document processing"). A chunk of nb images is unrolled at once into
 * cols (K, nb*P), so that one GEMM   Y (Co, nb*P) = W (Co, K) cols (K, nb*P)   covers the
 * chunk; nb is bounded so that the scratch stays a few MB. Backward recomputes cols (they are
 * not kept between forward and backward):
 *   dW (Co, K)      += dY (Co, nb*P) cols^T
 *   dcols (K, nb*P)  = W^T dY, then col2im adds dcols into dx
 *   db (Co)         += sum of dY over images and pixels.
 * A 1x1, stride-1, pad-0 conv is a plain GEMM per image (cols == x) and skips im2col.
 *
 * Threads: only inside OpenBLAS. im2col/col2im are memory-bound and cheap next to the GEMMs;
 * giving them OpenMP regions between GEMM calls made whole convs 3-8x slower on 2 cores
 * (the OpenMP pool and OpenBLAS's pthread pool spin-wait against each other).
 *
 * dfs_conv2d_reference (naive loops, declared in ops_ref.h) is the readable definition the
 * fast path is tested against. */
#include "internal.h"
#include "ops_ref.h"

#include <cblas.h>
#include <string.h>

/* ---- reference: naive loops ---------------------------------------------------------------- */

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

/* ---- fast path: im2col + sgemm ------------------------------------------------------------- */

static size_t chunk_floats = (size_t)1 << 19;

size_t dfs_conv_set_chunk_floats(size_t n) {
    size_t old = chunk_floats;
    chunk_floats = n ? n : 1;
    return old;
}

/* Separate strides and pads for H and W, so that conv1d is conv2d with H = KH = 1. */
typedef struct {
    int N, Ci, H, W, Co, KH, KW;
    int sh, sw, ph, pw;
    int Ho, Wo;
} conv_geom;

static int conv_is_1x1(const conv_geom *c) {
    return c->KH == 1 && c->KW == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0;
}

/* Images per GEMM: the im2col buffer (K, nb*P) and the output buffer (Co, nb*P) each stay
 * under chunk_floats, but at least one image. */
static int conv_chunk(const conv_geom *c) {
    size_t K = (size_t)c->Ci * c->KH * c->KW, P = (size_t)c->Ho * c->Wo;
    size_t rows = K > (size_t)c->Co ? K : (size_t)c->Co;
    size_t nb = chunk_floats / (rows * P);
    if (nb < 1) nb = 1;
    if (nb > (size_t)c->N) nb = (size_t)c->N;
    return (int)nb;
}

/* Output columns ow in [*lo, *hi) read input columns iw = ow*sw - pw + kw inside [0, W); the
 * others read zero padding. */
static void valid_cols(const conv_geom *c, int kw, int *lo, int *hi) {
    const int off = c->pw - kw, t = c->W - 1 + off; // iw = ow*sw - off
    int l = off > 0 ? (off + c->sw - 1) / c->sw : 0;
    int h = t >= 0 ? t / c->sw + 1 : 0;
    if (l > c->Wo) l = c->Wo;
    if (h > c->Wo) h = c->Wo;
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

/* cols (K, nb*P): row k = (ci, kh, kw), column j*P + oh*Wo + ow for image n0 + j. */
static void im2col(float *cols, const float *x, const conv_geom *c, int n0, int nb) {
    const int KHW = c->KH * c->KW, K = c->Ci * KHW, P = c->Ho * c->Wo, Wo = c->Wo;
    const size_t ld = (size_t)nb * P;
    for (int k = 0; k < K; k++) {
        const int ci = k / KHW, kh = (k / c->KW) % c->KH, kw = k % c->KW, off = c->pw - kw;
        int lo, hi;
        valid_cols(c, kw, &lo, &hi);
        for (int j = 0; j < nb; j++) {
            const float *xc = x + ((size_t)(n0 + j) * c->Ci + ci) * c->H * c->W; // (H, W)
            float *row = cols + (size_t)k * ld + (size_t)j * P;                  // (Ho, Wo)
            for (int oh = 0; oh < c->Ho; oh++) {
                float *r = row + (size_t)oh * Wo;
                const int ih = oh * c->sh - c->ph + kh;
                if (ih < 0 || ih >= c->H) {
                    memset(r, 0, (size_t)Wo * sizeof(float));
                    continue;
                }
                const float *xr = xc + (size_t)ih * c->W; // (W)
                for (int ow = 0; ow < lo; ow++) r[ow] = 0.0f;
                if (c->sw == 1 && hi > lo)
                    memcpy(r + lo, xr + (lo - off), (size_t)(hi - lo) * sizeof(float));
                else
                    for (int ow = lo; ow < hi; ow++) r[ow] = xr[ow * c->sw - off];
                for (int ow = hi; ow < Wo; ow++) r[ow] = 0.0f;
            }
        }
    }
}

/* The adjoint of im2col: dx (N,Ci,H,W) += scatter of dcols (K, nb*P). */
static void col2im_add(float *dx, const float *dcols, const conv_geom *c, int n0, int nb) {
    const int P = c->Ho * c->Wo;
    const size_t ld = (size_t)nb * P;
    for (int j = 0; j < nb; j++)
        for (int ci = 0; ci < c->Ci; ci++) {
            float *dxc = dx + ((size_t)(n0 + j) * c->Ci + ci) * c->H * c->W; // (H, W)
            for (int kh = 0; kh < c->KH; kh++)
                for (int kw = 0; kw < c->KW; kw++) {
                    const int k = (ci * c->KH + kh) * c->KW + kw;
                    const float *row = dcols + (size_t)k * ld + (size_t)j * P; // (Ho, Wo)
                    const int off = c->pw - kw;
                    int lo, hi;
                    valid_cols(c, kw, &lo, &hi);
                    for (int oh = 0; oh < c->Ho; oh++) {
                        const int ih = oh * c->sh - c->ph + kh;
                        if (ih < 0 || ih >= c->H) continue;
                        float *dxr = dxc + (size_t)ih * c->W; // (W)
                        const float *r = row + (size_t)oh * c->Wo;
                        if (c->sw == 1)
                            for (int ow = lo; ow < hi; ow++) dxr[ow - off] += r[ow];
                        else
                            for (int ow = lo; ow < hi; ow++) dxr[ow * c->sw - off] += r[ow];
                    }
                }
        }
}

/* out (N,Co,P) = conv(x, w) + b. */
static void conv_forward(dfs_graph *g, const conv_geom *c, float *out, const float *x,
                         const float *w, const float *b) {
    const int Co = c->Co, K = c->Ci * c->KH * c->KW, P = c->Ho * c->Wo;
    if (conv_is_1x1(c)) {
        /* cols of image n is x_n (Ci, H*W) itself: out_n (Co, P) = w (Co, Ci) x_n */
        for (int n = 0; n < c->N; n++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, P, K, 1.0f, w, K,
                        x + (size_t)n * K * P, P, 0.0f, out + (size_t)n * Co * P, P);
    } else {
        const int nb = conv_chunk(c);
        float *cols = dfs_graph_scratch(g, 0, (size_t)K * nb * P * sizeof(float)); // (K, nb*P)
        float *y = nb > 1 ? dfs_graph_scratch(g, 1, (size_t)Co * nb * P * sizeof(float)) : NULL;
        for (int n0 = 0; n0 < c->N; n0 += nb) {
            const int m = c->N - n0 < nb ? c->N - n0 : nb;
            const int ld = m * P;
            im2col(cols, x, c, n0, m);
            float *dst = m == 1 ? out + (size_t)n0 * Co * P : y; // (Co, m*P)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, ld, K, 1.0f, w, K, cols, ld,
                        0.0f, dst, ld);
            if (m == 1) continue;
            /* (Co, m, P) -> (m, Co, P) */
            for (int j = 0; j < m; j++)
                for (int co = 0; co < Co; co++)
                    memcpy(out + ((size_t)(n0 + j) * Co + co) * P,
                           y + (size_t)co * ld + (size_t)j * P, (size_t)P * sizeof(float));
        }
    }
    if (b) {
        for (int n = 0; n < c->N; n++)
            for (int co = 0; co < Co; co++) {
                float *o = out + ((size_t)n * Co + co) * P;
                for (int p = 0; p < P; p++) o[p] += b[co];
            }
    }
}

/* Geometry of a recorded conv2d or conv1d node (x and w are 4-D, or 3-D for conv1d). */
static conv_geom conv_geom_of(const dfs_tensor *x, const dfs_tensor *w, int stride, int pad) {
    conv_geom c;
    c.N = x->shape[0];
    c.Ci = x->shape[1];
    c.Co = w->shape[0];
    if (x->ndim == 4) {
        c.H = x->shape[2], c.W = x->shape[3], c.KH = w->shape[2], c.KW = w->shape[3];
        c.sh = c.sw = stride, c.ph = c.pw = pad;
    } else {
        c.H = 1, c.W = x->shape[2], c.KH = 1, c.KW = w->shape[2];
        c.sh = 1, c.sw = stride, c.ph = 0, c.pw = pad;
    }
    c.Ho = c.H + 2 * c.ph >= c.KH ? (c.H + 2 * c.ph - c.KH) / c.sh + 1 : 0;
    c.Wo = c.W + 2 * c.pw >= c.KW ? (c.W + 2 * c.pw - c.KW) / c.sw + 1 : 0;
    return c;
}

/* Sum of d[0..n-1] in 8 float lanes (vectorisable), combined in double. */
static double sum_floats(const float *d, int n) {
    float acc[8] = {0};
    int p = 0;
    for (; p + 8 <= n; p += 8)
        for (int l = 0; l < 8; l++) acc[l] += d[p + l];
    double s = 0;
    for (int l = 0; l < 8; l++) s += acc[l];
    for (; p < n; p++) s += d[p];
    return s;
}

static void conv_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const conv_geom cg = conv_geom_of(x, w, node->i[0], node->i[1]);
    const conv_geom *c = &cg;
    const int Co = c->Co, K = c->Ci * c->KH * c->KW, P = c->Ho * c->Wo;
    const float *dout = node->out->grad;                       // (N, Co, P)
    float *dx = x->requires_grad ? dfs_grad(g, x) : NULL;      // (N, Ci, H, W)
    float *dw = w->requires_grad ? dfs_grad(g, w) : NULL;      // (Co, K)
    float *db = b && b->requires_grad ? dfs_grad(g, b) : NULL; // (Co)

    if (db) {
        for (int co = 0; co < Co; co++) {
            double s = 0;
            for (int n = 0; n < c->N; n++) s += sum_floats(dout + ((size_t)n * Co + co) * P, P);
            db[co] += (float)s;
        }
    }
    if (!dx && !dw) return;

    if (conv_is_1x1(c)) {
        for (int n = 0; n < c->N; n++) {
            const float *dy = dout + (size_t)n * Co * P; // (Co, P)
            if (dw)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Co, K, P, 1.0f, dy, P,
                            x->data + (size_t)n * K * P, P, 1.0f, dw, K);
            if (dx)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, Co, 1.0f, w->data, K, dy,
                            P, 1.0f, dx + (size_t)n * K * P, P);
        }
        return;
    }

    const int nb = conv_chunk(c);
    float *cols = dfs_graph_scratch(g, 0, (size_t)K * nb * P * sizeof(float)); // (K, nb*P)
    float *dyb = nb > 1 ? dfs_graph_scratch(g, 1, (size_t)Co * nb * P * sizeof(float)) : NULL;
    for (int n0 = 0; n0 < c->N; n0 += nb) {
        const int m = c->N - n0 < nb ? c->N - n0 : nb;
        const int ld = m * P;
        const float *dy; // (Co, m*P)
        if (m == 1) {
            dy = dout + (size_t)n0 * Co * P;
        } else {
            /* (m, Co, P) -> (Co, m, P) */
            for (int j = 0; j < m; j++)
                for (int co = 0; co < Co; co++)
                    memcpy(dyb + (size_t)co * ld + (size_t)j * P,
                           dout + ((size_t)(n0 + j) * Co + co) * P, (size_t)P * sizeof(float));
            dy = dyb;
        }
        if (dw) {
            im2col(cols, x->data, c, n0, m);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Co, K, ld, 1.0f, dy, ld, cols, ld,
                        1.0f, dw, K);
        }
        if (dx) {
            /* cols now holds dcols (K, m*P) = W^T dY */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ld, Co, 1.0f, w->data, K, dy,
                        ld, 0.0f, cols, ld);
            col2im_add(dx, cols, c, n0, m);
        }
    }
}

static dfs_tensor *conv_op(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int stride,
                           int pad) {
    const conv_geom c = conv_geom_of(x, w, stride, pad);
    DFS_ASSERT(c.Ho >= 1 && c.Wo >= 1);
    dfs_tensor *out = x->ndim == 4 ? dfs_tensor_new(g, 4, (int[]){c.N, c.Co, c.Ho, c.Wo})
                                   : dfs_tensor_new(g, 3, (int[]){c.N, c.Co, c.Wo});
    conv_forward(g, &c, out->data, x->data, w->data, b ? b->data : NULL);
    dfs_node *n = dfs_record(g, conv_backward, out, 3, (dfs_tensor *[]){x, w, b});
    if (n) {
        n->i[0] = stride;
        n->i[1] = pad;
    }
    return out;
}

dfs_tensor *dfs_conv2d(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int stride,
                       int pad) {
    DFS_ASSERT(x->ndim == 4 && w->ndim == 4);
    DFS_ASSERT(x->shape[1] == w->shape[1]);
    DFS_ASSERT(!b || (b->ndim == 1 && b->shape[0] == w->shape[0]));
    DFS_ASSERT(stride >= 1 && pad >= 0);
    return conv_op(g, x, w, b, stride, pad);
}

dfs_tensor *dfs_conv1d(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int stride,
                       int pad) {
    DFS_ASSERT(x->ndim == 3 && w->ndim == 3);
    DFS_ASSERT(x->shape[1] == w->shape[1]);
    DFS_ASSERT(!b || (b->ndim == 1 && b->shape[0] == w->shape[0]));
    DFS_ASSERT(stride >= 1 && pad >= 0);
    return conv_op(g, x, w, b, stride, pad);
}
