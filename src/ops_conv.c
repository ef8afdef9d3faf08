/* ops_conv.c - 2-D and 1-D convolution (cross-correlation, as in PyTorch) on the tape.
 *
 * Size key: N batch, Ci/Co channels in/out, H W input height width, KH KW kernel,
 * Ho Wo output height width, P = Ho*Wo output pixels per image, K = Ci*KH*KW.
 *
 * Fast path: im2col + GEMM (Chellapilla, Puri & Simard 2006, "High performance convolutional
 * neural networks for document processing"). The images are split into chunks of nb, and the
 * threads take whole chunks: each unrolls its chunk into its own cols (K, nb*P) and runs one
 * single-threaded GEMM   Y (Co, nb*P) = W (Co, K) cols (K, nb*P).   nb is 1 for large images
 * (Y is then the output image itself) and grows for small ones so that a GEMM has a few hundred
 * columns. Backward recomputes cols (they are not kept between forward and backward):
 *   dW (Co, K)      += dY (Co, nb*P) cols^T     (per-thread partial sums, added at the end)
 *   dcols (K, nb*P)  = W^T dY, then col2im adds dcols into dx
 *   db (Co)         += sum of dY over images and pixels.
 * A 1x1, stride-1, pad-0 conv is a plain GEMM per image (cols == x) and skips im2col.
 *
 * Threads: one OpenMP region per op, over chunks of images. OpenBLAS (the OpenMP build) runs
 * serially inside it. Threading each GEMM inside OpenBLAS instead left im2col, col2im and the
 * layout copies serial between many small parallel GEMMs, and with 2 threads that was slower
 * than 1 thread (profile in bench/profile.md).
 *
 * dfs_conv2d_reference (naive loops, declared in ops_ref.h) is the readable definition the
 * fast path is tested against. */
#include "internal.h"
#include "ops_ref.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

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

/* ---- fast path: im2col + sgemm, images spread over threads ------------------------------ */

static size_t chunk_floats = (size_t)1 << 19;

size_t dfs_conv_set_chunk_floats(size_t n) {
    size_t old = chunk_floats;
    chunk_floats = n ? n : 1;
    return old;
}

/* Below this many GEMM columns per call (nb*P), several images share one GEMM. */
#define CONV_MIN_COLS 256

float *dfs_grad_for_write(dfs_graph *g, dfs_tensor *t, int *fresh) {
    *fresh = t->grad == NULL;
    return dfs_grad(g, t);
}

int dfs_op_threads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

static int conv_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
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

/* Images per GEMM (per thread): enough for CONV_MIN_COLS columns, but the im2col buffer
 * (K, nb*P) and the output buffer (Co, nb*P) each stay under chunk_floats, every thread gets
 * a chunk, and at least one image. A 1x1 conv reads x in place: one image per GEMM. */
static int conv_chunk(const conv_geom *c, int nthreads) {
    if (conv_is_1x1(c)) return 1;
    size_t K = (size_t)c->Ci * c->KH * c->KW, P = (size_t)c->Ho * c->Wo;
    size_t rows = K > (size_t)c->Co ? K : (size_t)c->Co;
    size_t nb = (CONV_MIN_COLS + P - 1) / P;
    size_t cap = chunk_floats / (rows * P);
    if (nb > cap) nb = cap;
    size_t per_thread = ((size_t)c->N + nthreads - 1) / nthreads;
    if (nb > per_thread) nb = per_thread;
    if (nb < 1) nb = 1;
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

/* out (N,Co,P) = conv(x, w) + b. Each thread takes whole chunks of nb images: im2col into its
 * own scratch, then one single-threaded GEMM (OpenBLAS runs serially inside an OpenMP region)
 *   Y (Co, nb*P) = W (Co, K) cols (K, nb*P)
 * written straight into out when nb == 1, else through a (Co, nb, P) -> (nb, Co, P) copy. */
static void conv_forward(dfs_graph *g, const conv_geom *c, float *out, const float *x,
                         const float *w, const float *b) {
    const int Co = c->Co, K = c->Ci * c->KH * c->KW, P = c->Ho * c->Wo;
    const int T = dfs_op_threads(), one = conv_is_1x1(c), nb = conv_chunk(c, T);
    const int nchunks = (c->N + nb - 1) / nb;
    const size_t cs = one ? 0 : (size_t)K * nb * P, ys = nb > 1 ? (size_t)Co * nb * P : 0;
    float *cols = cs ? dfs_graph_scratch(g, 0, (size_t)T * cs * sizeof(float)) : NULL; // T x (K, nb*P)
    float *ybuf = ys ? dfs_graph_scratch(g, 1, (size_t)T * ys * sizeof(float)) : NULL; // T x (Co, nb*P)
#pragma omp parallel num_threads(T) if (T > 1 && nchunks > 1)
    {
        const int tid = conv_thread_id();
        float *ct = cols ? cols + (size_t)tid * cs : NULL, *yt = ybuf ? ybuf + (size_t)tid * ys : NULL;
#pragma omp for schedule(static)
        for (int ch = 0; ch < nchunks; ch++) {
            const int n0 = ch * nb, m = c->N - n0 < nb ? c->N - n0 : nb, ld = m * P;
            const float *src = x + (size_t)n0 * K * P; // 1x1: cols of image n0 is x_n0 (Ci, P)
            if (!one) {
                im2col(ct, x, c, n0, m);
                src = ct;
            }
            float *dst = m == 1 ? out + (size_t)n0 * Co * P : yt; // (Co, m*P)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, ld, K, 1.0f, w, K, src, ld,
                        0.0f, dst, ld);
            if (m > 1) /* (Co, m, P) -> (m, Co, P) */
                for (int j = 0; j < m; j++)
                    for (int co = 0; co < Co; co++)
                        memcpy(out + ((size_t)(n0 + j) * Co + co) * P,
                               yt + (size_t)co * ld + (size_t)j * P, (size_t)P * sizeof(float));
            if (b)
                for (int j = 0; j < m; j++)
                    for (int co = 0; co < Co; co++) {
                        float *o = out + ((size_t)(n0 + j) * Co + co) * P, bc = b[co];
                        for (int p = 0; p < P; p++) o[p] += bc;
                    }
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

/* Backward, threads over chunks of images as in forward. For each chunk (dY (Co, m*P)):
 *   dW_t (Co, K) += dY cols^T        per-thread partial sums, added into dw at the end
 *   db_t (Co)    += sum of dY        likewise
 *   dcols (K, m*P) = W^T dY, then col2im adds dcols into the chunk's own images of dx. */
static void conv_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const conv_geom cg = conv_geom_of(x, w, node->i[0], node->i[1]);
    const conv_geom *c = &cg;
    const int Co = c->Co, K = c->Ci * c->KH * c->KW, P = c->Ho * c->Wo;
    const size_t HW = (size_t)c->H * c->W, CiHW = (size_t)c->Ci * HW;
    const float *dout = node->out->grad;                       // (N, Co, P)
    int dx_fresh = 0;
    float *dx = x->requires_grad ? dfs_grad_for_write(g, x, &dx_fresh) : NULL; // (N, Ci, H, W)
    float *dw = w->requires_grad ? dfs_grad(g, w) : NULL;      // (Co, K)
    float *db = b && b->requires_grad ? dfs_grad(g, b) : NULL; // (Co)
    if (!dx && !dw && !db) return;

    const int T = dfs_op_threads(), one = conv_is_1x1(c), nb = conv_chunk(c, T);
    const int nchunks = (c->N + nb - 1) / nb;
    const int need_cols = !one && (dx || dw);
    const size_t cs = need_cols ? (size_t)K * nb * P : 0, ys = nb > 1 ? (size_t)Co * nb * P : 0;
    const size_t ws = dw ? (size_t)Co * K : 0, bs = db ? (size_t)Co : 0;
    float *cols = cs ? dfs_graph_scratch(g, 0, (size_t)T * cs * sizeof(float)) : NULL; // T x (K, nb*P)
    float *dyb = ys ? dfs_graph_scratch(g, 1, (size_t)T * ys * sizeof(float)) : NULL;  // T x (Co, nb*P)
    float *wpart = ws ? dfs_graph_scratch(g, 2, (size_t)T * ws * sizeof(float)) : NULL; // T x (Co, K)
    double *bpart = bs ? dfs_graph_scratch(g, 3, (size_t)T * bs * sizeof(double)) : NULL; // T x (Co)
    int nt = 1;
#pragma omp parallel num_threads(T) if (T > 1 && nchunks > 1)
    {
        const int tid = conv_thread_id();
#ifdef _OPENMP
#pragma omp single
        nt = omp_get_num_threads();
#endif
        float *ct = cols ? cols + (size_t)tid * cs : NULL, *yt = dyb ? dyb + (size_t)tid * ys : NULL;
        float *wt = wpart ? wpart + (size_t)tid * ws : NULL;
        double *bt = bpart ? bpart + (size_t)tid * bs : NULL;
        if (wt) memset(wt, 0, ws * sizeof(float));
        if (bt) memset(bt, 0, bs * sizeof(double));
#pragma omp for schedule(static)
        for (int ch = 0; ch < nchunks; ch++) {
            const int n0 = ch * nb, m = c->N - n0 < nb ? c->N - n0 : nb, ld = m * P;
            if (bt)
                for (int j = 0; j < m; j++)
                    for (int co = 0; co < Co; co++)
                        bt[co] += sum_floats(dout + ((size_t)(n0 + j) * Co + co) * P, P);
            const float *dy = dout + (size_t)n0 * Co * P; // (Co, m*P)
            if (m > 1 && (dx || dw)) {
                /* (m, Co, P) -> (Co, m, P) */
                for (int j = 0; j < m; j++)
                    for (int co = 0; co < Co; co++)
                        memcpy(yt + (size_t)co * ld + (size_t)j * P,
                               dout + ((size_t)(n0 + j) * Co + co) * P, (size_t)P * sizeof(float));
                dy = yt;
            }
            if (one) {
                const float *xn = x->data + (size_t)n0 * CiHW; // (Ci, P)
                if (wt)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Co, K, P, 1.0f, dy, P, xn,
                                P, 1.0f, wt, K);
                if (dx)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, Co, 1.0f, w->data, K,
                                dy, P, dx_fresh ? 0.0f : 1.0f, dx + (size_t)n0 * CiHW, P);
                continue;
            }
            if (wt) {
                im2col(ct, x->data, c, n0, m);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Co, K, ld, 1.0f, dy, ld, ct, ld,
                            1.0f, wt, K);
            }
            if (dx) {
                /* ct now holds dcols (K, m*P) = W^T dY */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ld, Co, 1.0f, w->data, K, dy,
                            ld, 0.0f, ct, ld);
                col2im_add(dx, ct, c, n0, m); /* a fresh dx is cleared too (dfs_grad_for_write) */
            }
        }
        /* the implicit barrier of the loop above: every partial is complete */
        if (dw) {
#pragma omp for schedule(static)
            for (long i = 0; i < (long)ws; i++) {
                float s = 0.0f;
                for (int t = 0; t < nt; t++) s += wpart[(size_t)t * ws + i];
                dw[i] += s;
            }
        }
    }
    if (db)
        for (int co = 0; co < Co; co++) {
            double s = 0;
            for (int t = 0; t < nt; t++) s += bpart[(size_t)t * bs + co];
            db[co] += (float)s;
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
