/* ops/conv.c - 2-D and 1-D convolution (cross-correlation, as in PyTorch) on the tape, and the
 * fused convolution of the U-Net (dfs_conv2d_fused, src/engine/tape.h).
 *
 * Size key: N batch, Ci/Co channels in/out, H W input height width, KH KW kernel,
 * Ho Wo output height width, P = Ho*Wo output pixels per image, K = Ci*KH*KW.
 *
 * Three paths, chosen by dfs_set_kernels and the geometry:
 * - FAST, stride-1 "same" convolutions (odd kernel, pad = kernel/2): the fused op below on the
 *   implicit-GEMM kernels of igemm.c, forward and backward (section "fast path: fused").
 * - FAST, every other convolution: forward on the same kernel through the phases of the padded
 *   input (phased_forward), backward as BLAS below.
 * - BLAS (and the reference for the others): im2col + GEMM (Chellapilla, Puri & Simard 2006,
 *   "High performance convolutional neural networks for document processing"), described next.
 *
 * im2col + GEMM: the images are split into chunks of nb, and the
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
 * dfs_conv2d_reference (naive loops, declared in src/kernels/kernels.h) is the readable definition the
 * fast path is tested against. */
#include "ops.h"

#include <cblas.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- fast path: im2col + sgemm, images spread over threads ------------------------------ */

static size_t chunk_floats = (size_t)1 << 19;

size_t dfs_conv_set_chunk_floats(size_t n) {
    size_t old = chunk_floats;
    chunk_floats = n ? n : 1;
    return old;
}

/* Below this many GEMM columns per call (nb*P), several images share one GEMM. */
#define CONV_MIN_COLS 256



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
    if (dx && dx_fresh && !conv_is_1x1(c)) memset(dx, 0, x->n * sizeof(float)); /* col2im adds */

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
                col2im_add(dx, ct, c, n0, m); /* into a cleared dx (above) */
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

/* ---- fast path: fused "same" convolution on the implicit-GEMM kernels ----------------------
 *
 * Size key as above, plus C = C1 + C2 input channels (two tensors concatenated), up the
 * upsampling factor, Hc Wc = H up, W up the conv's input (and output) size, Hp Wp = Hc + 2 ph,
 * Wc + 2 pw the zero-padded planes, m images per backward chunk.
 *
 * Forward, one image per thread at a time: pre(x) (GroupNorm stats, then normalise, SiLU,
 * dropout, upsample) is written straight into a per-thread zero-padded copy (C, Hp, Wp), and
 * the kernel (igemm.c) computes all Co output planes from it, adding bias, tadd and res as it
 * stores. A 1x1 conv without pre-op reads x in place. Nothing but out (and, when recording,
 * GroupNorm stats and dropout bits) goes to the arena.
 * Backward, chunks of m images per thread: dY is copied into zero-padded planes (Co, m, Hp,
 * Wp), pre(x) recomputed into (C, m, Hp, Wp); then
 *   dW (Co, K)     += dY (Co, m Hp Wp) B^T      one long dot product per (co, k) over the chunk
 *   dA (C, Hc, Wc)  = "same" conv of padded dY with the flipped, transposed kernel, per image
 * and dA goes back through upsample, dropout and GroupNorm(+SiLU) into dx (split over x, x2). */

typedef struct {
    int N, C1, C, H, W, up, Hc, Wc, KH, KW, ph, pw, Hp, Wp, Co, KHW, K;
    size_t plane, P, slack; /* Hp*Wp; Hc*Wc; floats after the last padded plane */
    int nq;                 /* positions of one image's output in padded rows */
    int direct;             /* 1x1 without pre-op: B rows are x's planes themselves */
    int is1d;               /* conv1d: x (N, C, W), H = KH = 1 */
} fgeom;

typedef struct {
    fgeom G;
    int norm, groups;
    float eps, scale;       /* scale: 1/(1-p) of dropout */
    float *stats;           /* mu (N*groups), rstd (N*groups), or NULL */
    uint8_t *mask;          /* dropout bits (N, C, H, W), or NULL */
    int bf16;               /* the forward ran in bf16: so does the backward's arithmetic */
} fused_saved;

static int same_conv_ok(int KH, int KW, int ph, int pw, int stride) {
    return stride == 1 && KH % 2 == 1 && KW % 2 == 1 && ph == KH / 2 && pw == KW / 2;
}

static fgeom fgeom_make(const dfs_tensor *x, const dfs_tensor *x2, const dfs_tensor *w, int up,
                        int direct_ok) {
    fgeom G;
    memset(&G, 0, sizeof G);
    G.is1d = x->ndim == 3;
    G.N = x->shape[0];
    G.C1 = x->shape[1];
    G.C = G.C1 + (x2 ? x2->shape[1] : 0);
    G.H = G.is1d ? 1 : x->shape[2];
    G.W = x->shape[x->ndim - 1];
    G.up = up;
    G.Hc = G.H * up;
    G.Wc = G.W * up;
    G.Co = w->shape[0];
    G.KH = G.is1d ? 1 : w->shape[2];
    G.KW = w->shape[w->ndim - 1];
    G.ph = G.KH / 2;
    G.pw = G.KW / 2;
    G.Hp = G.Hc + 2 * G.ph;
    G.Wp = G.Wc + 2 * G.pw;
    G.KHW = G.KH * G.KW;
    G.K = G.C * G.KHW;
    G.plane = (size_t)G.Hp * G.Wp;
    G.P = (size_t)G.Hc * G.Wc;
    G.slack = (size_t)(G.KH + 1) * G.Wp + G.KW + 32;
    G.direct = direct_ok && G.KHW == 1 && up == 1;
    G.nq = G.direct ? (int)G.P : (G.Hc - 1) * G.Wp + G.Wc;
    return G;
}

/* Below about a million multiply-adds a parallel region costs more than it saves. */
static int fused_worth_threads(const fgeom *G) {
    return (double)G->N * G->Co * G->K * (double)G->P >= (double)(1 << 20);
}

/* Carves 64-byte aligned pieces out of one scratch buffer: call with base NULL to measure. */
typedef struct {
    unsigned char *base;
    size_t used;
} carver;

static void *carve(carver *cv, size_t bytes) {
    void *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (bytes + 63) / 64 * 64;
    return p;
}

/* pre(x) of image n into the padded planes dst + c*cstride (interior at row ph, column pw),
 * borders cleared (the caller clears the slack after the last plane). act: 0 copy, 1 GroupNorm,
 * 2 GroupNorm+SiLU, with y = coef[2c] x + coef[2c+1]; mask: dropout bits or NULL. The
 * activation runs over a whole channel into tmp (H*W floats) and is then copied row by row:
 * one vector loop per plane is much faster than one per (short) row. */
static void fill_padded(float *dst, size_t cstride, const fgeom *G, const dfs_planes *x, int n,
                        int act, const float *coef, const uint8_t *mask, float scale, float *tmp) {
    const int W = G->W, Wc = G->Wc, Wp = G->Wp, up = G->up;
    const size_t HW = (size_t)G->H * W;
    for (int c = 0; c < G->C; c++) {
        float *pl = dst + (size_t)c * cstride; // (Hp, Wp)
        const float *xc = dfs_plane(x, c);     // (H, W)
        if (act && !mask && up == 1) { /* normalise (+SiLU) straight into the padded rows */
            memset(pl, 0, (size_t)G->ph * Wp * sizeof(float));
            memset(pl + (size_t)(G->ph + G->Hc) * Wp, 0, (size_t)G->ph * Wp * sizeof(float));
            dfs_act_pad_rows(pl + (size_t)G->ph * Wp, xc, G->H, W, G->pw, coef[2 * c],
                             coef[2 * c + 1], act == 2);
            continue;
        }
        if (act || mask) {
            if (act) dfs_act_row(tmp, xc, HW, coef[2 * c], coef[2 * c + 1], act == 2);
            else memcpy(tmp, xc, HW * sizeof(float));
            if (mask) {
                const size_t bit0 = ((size_t)n * G->C + c) * HW;
                for (size_t i = 0; i < HW; i++) {
                    size_t bi = bit0 + i;
                    tmp[i] = (mask[bi >> 3] >> (bi & 7) & 1) ? tmp[i] * scale : 0.0f;
                }
            }
            xc = tmp;
        }
        memset(pl, 0, (size_t)G->ph * Wp * sizeof(float));
        memset(pl + (size_t)(G->ph + G->Hc) * Wp, 0, (size_t)G->ph * Wp * sizeof(float));
        if (up == 1) {
            dfs_pad_rows(pl + (size_t)G->ph * Wp, xc, G->H, W, G->pw);
            continue;
        }
        for (int h = 0; h < G->H; h++) {
            const float *xr = xc + (size_t)h * W;
            for (int u = 0; u < up; u++) {
                float *row = pl + (size_t)(h * up + u + G->ph) * Wp; // (Wp)
                for (int i = 0; i < G->pw; i++) row[i] = row[G->pw + Wc + i] = 0.0f;
                for (int i = 0; i < Wc; i++) row[G->pw + i] = xr[i / up];
            }
        }
    }
}

/* GroupNorm of image n: stats into mu, rstd (G each), per-channel y = a x + b into coef (C, 2). */
static void gn_image(const fgeom *G, const dfs_planes *x, int groups, float eps, const float *gamma,
                     const float *beta, float *mu, float *rstd, float *coef) {
    const int Cg = G->C / groups;
    for (int gi = 0; gi < groups; gi++) {
        dfs_gn_stats(x, G->C, groups, gi, eps, &mu[gi], &rstd[gi]);
        for (int c = gi * Cg; c < (gi + 1) * Cg; c++) {
            float a = rstd[gi] * (gamma ? gamma[c] : 1.0f);
            coef[2 * c] = a;
            coef[2 * c + 1] = (beta ? beta[c] : 0.0f) - mu[gi] * a;
        }
    }
}

/* ---- Winograd (DFS_CONV=winograd; src/kernels/winograd.c) ----------------------------------
 * F(4x4,3x3) where its AVX-512 transforms run, else F(2x2,3x3) (dfs_winograd_tile). The
 * forward of a stride-1, pad-1 3x3 convolution, plain or fused: pre(x) of each image goes into
 * zero-padded planes (C, Hq, Wq) as on the fast path (fill_padded), the filters are transformed
 * once per call (U ((t + 2)^2, Co, C); not cached across calls: a few hundred flops per filter
 * against the products' (t + 2)^2 Co C per tile and image), and each thread runs whole chunks
 * of m images through dfs_winograd_run, which adds bias, tadd and res as it stores. The fused
 * op takes it in training too, where its backward takes Winograd for dA and dW (winograd_da,
 * winograd_dw below; F(2x2) at even sizes only); the plain op (conv_op, under the BLAS
 * kernels) only when nothing is recorded. */

static int winograd_ok(const fgeom *G) {
    return dfs_get_conv_algo() && !G->is1d && G->KH == 3 && G->KW == 3 && G->N > 0 &&
           G->C > 0 && G->Co > 0;
}

/* GEMM columns (tiles) per dfs_winograd_run: small enough that V (16, Ci, cols) and M
 * (16, Co, cols) stay in cache between the transforms and the products. Measured with
 * bench/winograd.sh on a loaded 2-CPU Xeon at 1 thread, over one fmnist forward's convs:
 * 512 columns 0.68x the direct kernel, 256 0.8x, 128 0.92x, 64 about 1.0x. */
static int winograd_cols(void) {
    static int cols = 0;
    if (!cols) {
        const char *e = getenv("DFS_WINOGRAD_COLS"); /* for tuning with bench/winograd.sh */
        cols = e && atoi(e) > 0 ? atoi(e) : 64;
    }
    return cols;
}

/* Images per chunk: about winograd_cols() GEMM columns, at most what a thread gets, and
 * per-thread scratch under 2^21 floats unless one image needs more. */
static int winograd_chunk(const fgeom *G, size_t plane, int T, int t) {
    const size_t tiles = (size_t)dfs_winograd_tiles(G->Hc, t) * dfs_winograd_tiles(G->Wc, t);
    int m = (int)((winograd_cols() + tiles - 1) / tiles);
    const int per = (G->N + T - 1) / T;
    if (m > per) m = per;
    while (m > 1 && (size_t)m * G->C * plane + dfs_winograd_scratch_floats(G->C, G->Co, G->Hc, G->Wc, m, t) >
                        ((size_t)1 << 21))
        m--;
    return m < 1 ? 1 : m;
}

/* out (N, Co, Hc, Wc) of the fused op with pre-op act (0 none, 1 GroupNorm, 2 GroupNorm+SiLU),
 * GroupNorm stats written to stats (as fused_fast does), dropout mask/scale as there. */
static void winograd_forward(dfs_graph *g, const fgeom *G0, float *out, const dfs_tensor *x,
                             const dfs_tensor *w, const dfs_tensor *b, const dfs_conv_fused *f,
                             int act, float *stats, const uint8_t *mask, float scale) {
    const int t = dfs_winograd_tile();
    fgeom G = *G0; /* winograd.c's planes: F(2x2) 2 ceil(Hc/2) + 2 rows, F(4x4) Hc + 2, of Wc + 2 */
    if (t == 2) G.Hp = 2 * dfs_winograd_tiles(G.Hc, 2) + 2;
    G.plane = (size_t)G.Hp * G.Wp;
    const int N = G.N, C = G.C, Co = G.Co, T = dfs_op_threads(), groups = f->groups;
    const int m = winograd_chunk(&G, G.plane, T, t), nchunks = (N + m - 1) / m;
    const int th = dfs_winograd_tiles(G.Hc, t), tw = dfs_winograd_tiles(G.Wc, t);
    const size_t HW = (size_t)G.H * G.W, P = G.P;
    carver cv = {NULL, 0};
    carve(&cv, (size_t)(t + 2) * (t + 2) * Co * C * sizeof(float));
    const size_t shared = cv.used;
    cv.used = 0;
    carve(&cv, ((size_t)m * C * G.plane + 16) * sizeof(float));
    carve(&cv, dfs_winograd_scratch_floats(C, Co, G.Hc, G.Wc, m, t) * sizeof(float));
    carve(&cv, (size_t)C * 2 * sizeof(float));
    carve(&cv, HW * sizeof(float));
    const size_t per_thread = cv.used;
    unsigned char *mem = dfs_graph_scratch(g, 0, shared + (size_t)T * per_thread);
    float *U = (float *)mem; // (16, Co, C)
    dfs_winograd_filter(U, w->data, Co, C, t);
    const float *gm = f->gamma ? f->gamma->data : NULL, *bt = f->beta ? f->beta->data : NULL;
    const double work = (double)N * Co * C * (double)P;
#pragma omp parallel num_threads(T) if (T > 1 && nchunks > 1 && work >= (double)(1 << 20))
    {
        carver tc = {mem + shared + (size_t)conv_thread_id() * per_thread, 0};
        float *xp = carve(&tc, ((size_t)m * C * G.plane + 16) * sizeof(float)); // (m, C, Hq, Wc + 2)
        float *scratch = carve(&tc, dfs_winograd_scratch_floats(C, Co, G.Hc, G.Wc, m, t) * sizeof(float));
        float *coef = carve(&tc, (size_t)C * 2 * sizeof(float));
        float *tmp = carve(&tc, HW * sizeof(float));
#pragma omp for schedule(static)
        for (int ch = 0; ch < nchunks; ch++) {
            const int n0 = ch * m, mm = N - n0 < m ? N - n0 : m;
            for (int j = 0; j < mm; j++) {
                const int n = n0 + j;
                const dfs_planes xpl = {x->data + (size_t)n * G.C1 * HW,
                                        f->x2 ? f->x2->data + (size_t)n * (C - G.C1) * HW : NULL,
                                        G.C1, HW};
                if (act)
                    gn_image(&G, &xpl, groups, f->eps, gm, bt, stats + (size_t)n * groups,
                             stats + (size_t)N * groups + (size_t)n * groups, coef);
                float *xj = xp + (size_t)j * C * G.plane;
                fill_padded(xj, G.plane, &G, &xpl, n, act, coef, mask, scale, tmp);
                /* fill_padded clears a border of one; an odd Hc has a second bottom row */
                if (G.Hp > G.Hc + 2)
                    for (int c = 0; c < C; c++)
                        memset(xj + (size_t)c * G.plane + (size_t)(G.Hc + 2) * G.Wp, 0,
                               (size_t)G.Wp * sizeof(float));
            }
            memset(xp + (size_t)mm * C * G.plane, 0, 16 * sizeof(float)); /* the slack */
            dfs_winograd_fwd p = {
                .m = mm, .Ci = C, .Co = Co, .H = G.Hc, .W = G.Wc, .U = U, .xp = xp,
                .plane = G.plane, .out = out + (size_t)n0 * Co * P, .bias = b ? b->data : NULL,
                .rowbias = f->tadd ? f->tadd->data + (size_t)n0 * Co : NULL,
                .res = f->res ? f->res->data + (size_t)n0 * Co * P : NULL, .scratch = scratch,
                .tile = t};
            /* one image of more tiles than winograd_cols(): blocks of tile rows */
            p.nty = mm == 1 ? (winograd_cols() + tw - 1) / tw : 0;
            for (p.ty0 = 0; p.ty0 < th; p.ty0 += p.nty ? p.nty : th) dfs_winograd_run(&p);
        }
    }
}

static void fused_backward(dfs_graph *g, dfs_node *nd);
static void fused_direct(dfs_graph *g, const fgeom *G0, float *outd, const dfs_tensor *x,
                         const dfs_tensor *w, const dfs_tensor *b, const dfs_conv_fused *f, int act,
                         float *stats, const uint8_t *mask, float scale, int bf);

/* ---- DFS_CONV=auto: Winograd or the direct kernel, per shape, by timing ----
 * Which is faster depends on the CPU and the shape (bench/winograd.sh on a Zen 4: F(2x2)
 * 1.3-1.5x at 28x28 and 14x14 with 64+ channels, 0.4x at 7x7, 0.3x with one input channel;
 * F(4x4) 1.8-2.4x at 28x28, 1.5-1.7x at 14x14, 1.0-1.1x at 7x7, 0.4x with one input channel;
 * docs/PERFORMANCE.md, stop 35).
 * The first call of a shape (channels, size, batch, pre-op, threads) runs both paths on
 * its own data, twice each, alternating (the first run of each also pays its page faults), and
 * the faster best-of-two is used for that shape from then on in this process; the call's output
 * is the last run's, the direct one. Past AUTO_MAX shapes, new ones run direct, untimed.
 * PyTorch's torch.backends.cudnn.benchmark makes the same kind of choice, with the same cost:
 * two runs of a process may pick differently where the paths are close, and their outputs then
 * differ in rounding. dfs_conv_auto_count says what was picked. */
typedef struct {
    int C, Co, Hc, Wc, N, act, T, pick; /* T: the op's threads; pick: 1 Winograd, 0 direct */
} auto_entry;
#define AUTO_MAX 256
static auto_entry auto_table[AUTO_MAX];
static int auto_n = 0;

/* The pick stored for key (-1: none); the caller holds the critical section. */
static int auto_find(const auto_entry *key) {
    for (int i = 0; i < auto_n; i++) {
        const auto_entry *e = &auto_table[i];
        if (e->C == key->C && e->Co == key->Co && e->Hc == key->Hc && e->Wc == key->Wc &&
            e->N == key->N && e->act == key->act && e->T == key->T)
            return e->pick;
    }
    return -1;
}

/* The pick stored for key; -1 when the shape is new and there is room to time it; 0 (the
 * direct kernel, untimed) when the table is full. */
static int auto_lookup(const auto_entry *key) {
    int found = -1, full = 0;
#pragma omp critical(dfs_winograd_auto)
    {
        found = auto_find(key);
        full = auto_n >= AUTO_MAX;
    }
    return found >= 0 ? found : full ? 0 : -1;
}

/* Store e (its pick set). Threads with graphs of their own (dfs_model_predict) may have timed
 * the same shape at once: the first pick stored is the one kept. */
static void auto_store(const auto_entry *e) {
#pragma omp critical(dfs_winograd_auto)
    if (auto_find(e) < 0 && auto_n < AUTO_MAX) auto_table[auto_n++] = *e;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void dfs_conv_auto_count(int *winograd, int *direct) {
    int wn = 0, dn = 0;
#pragma omp critical(dfs_winograd_auto)
    for (int i = 0; i < auto_n; i++) {
        if (auto_table[i].pick) wn++;
        else dn++;
    }
    if (winograd) *winograd = wn;
    if (direct) *direct = dn;
}

/* 1: run Winograd for this call (DFS_CONV=winograd, or auto and it won); 0: run the direct path;
 * 2: done (auto mode, a shape seen for the first time: timed here, the direct result in out). */
static int winograd_pick(dfs_graph *g, const fgeom *G, float *out, const dfs_tensor *x,
                         const dfs_tensor *w, const dfs_tensor *b, const dfs_conv_fused *f, int act,
                         float *stats, const uint8_t *mask, float scale) {
    if (dfs_get_conv_algo() != DFS_CONV_AUTO) return 1;
    auto_entry e = {G->C, G->Co, G->Hc, G->Wc, G->N, act, dfs_op_threads(), 0};
    const int found = auto_lookup(&e);
    if (found >= 0) return found;
    double tw = 1e30, td = 1e30;
    for (int r = 0; r < 2; r++) {
        double t0 = now_s();
        winograd_forward(g, G, out, x, w, b, f, act, stats, mask, scale);
        double t1 = now_s();
        fused_direct(g, G, out, x, w, b, f, act, stats, mask, scale, 0);
        double t2 = now_s();
        if (t1 - t0 < tw) tw = t1 - t0;
        if (t2 - t1 < td) td = t2 - t1;
    }
    e.pick = tw < td;
    auto_store(&e);
    return 2;
}

static dfs_tensor *fused_fast(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b,
                              const dfs_conv_fused *f) {
    const int act = f->norm, training_drop = f->dropout > 0.0f && dfs_graph_training(g);
    /* bf16 (dfs_set_bf16, src/kernels/bf16.c): pre(x) goes into the float32 padded planes as
     * below (one more, zero, when C is odd), is rounded into pair planes (C2, Hp, Wp) of words,
     * and the pair kernel runs on the weights rounded and packed in pairs; a 1x1 convolution
     * without pre-op goes through the planes too (they are unpadded) */
    const int bf = dfs_get_bf16() != DFS_BF16_OFF;
    const fgeom G = fgeom_make(x, f->x2, w, f->up, !act && !training_drop && !bf);
    const int N = G.N, C = G.C, Co = G.Co, groups = f->groups;
    dfs_tensor *out = G.is1d ? dfs_tensor_new(g, 3, (int[]){N, Co, G.Wc})
                             : dfs_tensor_new(g, 4, (int[]){N, Co, G.Hc, G.Wc});
    dfs_node *nd = dfs_record(g, fused_backward, out, 8,
                              (dfs_tensor *[]){x, w, b, f->x2, f->gamma, f->beta, f->tadd, f->res});
    fused_saved *sv = NULL;
    float *stats = act ? dfs_graph_alloc(g, 2 * (size_t)N * groups * sizeof(float)) : NULL;
    uint8_t *mask = NULL;
    const float scale = training_drop ? 1.0f / (1.0f - f->dropout) : 1.0f;
    if (training_drop) {
        /* the mask dfs_dropout would draw on the (N, C, H, W) pre-activation */
        dfs_rng *rng = dfs_graph_rng(g);
        DFS_ASSERT(rng != NULL);
        const size_t n = (size_t)N * C * G.H * G.W;
        mask = dfs_graph_alloc(g, (n + 7) / 8);
        dfs_dropout_mask(mask, n, (size_t)N, rng, f->dropout);
    }
    if (nd) {
        sv = dfs_graph_alloc(g, sizeof *sv);
        sv->G = G;
        sv->norm = act;
        sv->groups = groups;
        sv->eps = f->eps;
        sv->scale = scale;
        sv->stats = stats;
        sv->mask = mask;
        sv->bf16 = bf;
        nd->saved = sv;
    }
    /* Winograd serves the training forward too: fused_backward reads only x, the GroupNorm
     * stats (winograd_forward writes them as fused_direct does) and the dropout mask (drawn
     * above, read by either path) */
    const int path = !bf && winograd_ok(&G)
                         ? winograd_pick(g, &G, out->data, x, w, b, f, act, stats, mask, scale)
                         : 0;
    if (path == 1) winograd_forward(g, &G, out->data, x, w, b, f, act, stats, mask, scale);
    else if (path == 0) fused_direct(g, &G, out->data, x, w, b, f, act, stats, mask, scale, bf);
    return out;
}

/* The direct path of fused_fast: pre(x) of each image into padded planes (bf: and their pair
 * words), then the implicit-GEMM kernel, float32 or bf16, into out (N, Co, Hc, Wc). */
static void fused_direct(dfs_graph *g, const fgeom *G0, float *outd, const dfs_tensor *x,
                         const dfs_tensor *w, const dfs_tensor *b, const dfs_conv_fused *f, int act,
                         float *stats, const uint8_t *mask, float scale, int bf) {
    const fgeom G = *G0;
    const int N = G.N, C = G.C, Co = G.Co, K = G.K, groups = f->groups;
    const int C2 = (C + 1) / 2, KB = bf ? C2 * G.KHW : K; /* the kernel's reduction: pairs in bf16 */
    const int T = dfs_op_threads(), nvec = (G.nq + 15) / 16;
    /* shared: packed weights (floats, or pair words: 4 bytes either way), vector map; per
     * thread: padded input (and its pair planes), pointer tables, coefs */
    const size_t xp_floats = bf ? (size_t)2 * C2 * G.plane : G.direct ? 0 : (size_t)C * G.plane + G.slack;
    const size_t xb_words = bf ? (size_t)C2 * G.plane + G.slack : 0;
    carver cv = {NULL, 0};
    carve(&cv, dfs_igemm_pack_floats(Co, KB) * sizeof(float));
    carve(&cv, (size_t)nvec * sizeof(uint16_t));
    carve(&cv, (size_t)nvec * sizeof(int));
    const size_t shared = cv.used;
    cv.used = 0;
    carve(&cv, xp_floats * sizeof(float));
    carve(&cv, xb_words * sizeof(uint32_t));
    carve(&cv, (size_t)KB * sizeof(float *));
    carve(&cv, (size_t)Co * 2 * sizeof(float *));
    carve(&cv, (size_t)Co * sizeof(float));
    carve(&cv, (size_t)C * 2 * sizeof(float));
    carve(&cv, (size_t)G.H * G.W * sizeof(float));
    const size_t per_thread = cv.used;
    unsigned char *mem = dfs_graph_scratch(g, 0, shared + (size_t)T * per_thread);
    cv = (carver){mem, 0};
    float *apack = carve(&cv, dfs_igemm_pack_floats(Co, KB) * sizeof(float));
    uint16_t *vmask = carve(&cv, (size_t)nvec * sizeof(uint16_t));
    int *vdst = carve(&cv, (size_t)nvec * sizeof(int));
    if (bf) dfs_igemm_bf16_pack((uint32_t *)apack, w->data, Co, C, G.KHW);
    else dfs_igemm_pack(apack, w->data, Co, K);
    dfs_igemm_vecmap(vmask, vdst, G.nq, G.direct ? G.Wc : G.Wp, G.Wc);

    const float *gm = f->gamma ? f->gamma->data : NULL, *bt = f->beta ? f->beta->data : NULL;
    const size_t HW = (size_t)G.H * G.W;
#pragma omp parallel num_threads(T) if (T > 1 && N > 1 && fused_worth_threads(&G))
    {
        carver tc = {mem + shared + (size_t)conv_thread_id() * per_thread, 0};
        float *xp = carve(&tc, xp_floats * sizeof(float));
        uint32_t *xb = carve(&tc, xb_words * sizeof(uint32_t));
        const float **src = carve(&tc, (size_t)KB * sizeof(float *));
        float **dst = carve(&tc, (size_t)Co * 2 * sizeof(float *));
        const float **res = (const float **)(dst + Co);
        float *rowbias = carve(&tc, (size_t)Co * sizeof(float));
        float *coef = carve(&tc, (size_t)C * 2 * sizeof(float));
        float *tmp = carve(&tc, (size_t)G.H * G.W * sizeof(float));
        if (bf) { /* the zero plane of an odd C, the pair planes' slack, the taps' pointers */
            const uint32_t **s32 = (const uint32_t **)src;
            if (C % 2) memset(xp + (size_t)C * G.plane, 0, G.plane * sizeof(float));
            memset(xb + (size_t)C2 * G.plane, 0, G.slack * sizeof(uint32_t));
            for (int c2 = 0; c2 < C2; c2++)
                for (int t = 0; t < G.KHW; t++)
                    s32[c2 * G.KHW + t] = xb + (size_t)c2 * G.plane + (size_t)(t / G.KW) * G.Wp + t % G.KW;
        }
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const dfs_planes xpl = {x->data + (size_t)n * G.C1 * HW,
                                    f->x2 ? f->x2->data + (size_t)n * (C - G.C1) * HW : NULL, G.C1, HW};
            if (act)
                gn_image(&G, &xpl, groups, f->eps, gm, bt, stats + (size_t)n * groups,
                         stats + (size_t)N * groups + (size_t)n * groups, coef);
            if (G.direct) {
                for (int c = 0; c < C; c++) src[c] = dfs_plane(&xpl, c);
            } else if (bf) {
                fill_padded(xp, G.plane, &G, &xpl, n, act, coef, mask, scale, tmp);
                for (int c2 = 0; c2 < C2; c2++)
                    dfs_bf16_pairs(xb + (size_t)c2 * G.plane, xp + (size_t)2 * c2 * G.plane,
                                   xp + (size_t)(2 * c2 + 1) * G.plane, G.plane);
            } else {
                fill_padded(xp, G.plane, &G, &xpl, n, act, coef, mask, scale, tmp);
                memset(xp + (size_t)C * G.plane, 0, G.slack * sizeof(float));
                for (int c = 0; c < C; c++)
                    for (int kh = 0; kh < G.KH; kh++)
                        for (int kw = 0; kw < G.KW; kw++)
                            src[(c * G.KH + kh) * G.KW + kw] = xp + (size_t)c * G.plane + (size_t)kh * G.Wp + kw;
            }
            for (int co = 0; co < Co; co++) {
                dst[co] = outd + ((size_t)n * Co + co) * G.P;
                res[co] = f->res ? f->res->data + ((size_t)n * Co + co) * G.P : NULL;
                rowbias[co] = (b ? b->data[co] : 0.0f) + (f->tadd ? f->tadd->data[(size_t)n * Co + co] : 0.0f);
            }
            if (bf) {
                const dfs_igemm_bf16_fwd p = {.rows = Co, .K = KB, .nq = G.nq, .apack = (const uint32_t *)apack,
                                              .src = (const uint32_t *const *)src, .vmask = vmask, .vdst = vdst,
                                              .dst = dst, .bias = rowbias, .res = f->res ? res : NULL,
                                              .accumulate = 0};
                dfs_igemm_bf16_run(&p);
            } else {
                const dfs_igemm_fwd p = {.rows = Co, .K = K, .nq = G.nq, .apack = apack, .src = src,
                                         .vmask = vmask, .vdst = vdst, .dst = dst, .bias = rowbias,
                                         .res = f->res ? res : NULL, .accumulate = 0};
                dfs_igemm_fwd_run(&p);
            }
        }
    }
}

/* Images per backward chunk: enough padded positions (about 768) that a dW dot product is long
 * compared with its final horizontal sum, and at most what a thread gets. */
static int fused_chunk(const fgeom *G, int T) {
    int m = (int)(768 / G->plane);
    int per = (G->N + T - 1) / T;
    if (m > 16) m = 16;
    if (m > per) m = per;
    return m < 1 ? 1 : m;
}

/* dA (C, P) of image j, float32, on the direct kernel: the same convolution of its padded dY
 * planes (channel co at dyp + co mplane + j plane) with the flipped, transposed kernel apack. */
static void direct_da(const fgeom *G, const float *apack, const float **src, float **rows,
                      const uint16_t *vmask, const int *vdst, const float *dyp, size_t mplane, int j,
                      float *da) {
    const int nq = (G->Hc - 1) * G->Wp + G->Wc;
    for (int c = 0; c < G->C; c++) rows[c] = da + (size_t)c * G->P;
    for (int co = 0; co < G->Co; co++)
        for (int kh = 0; kh < G->KH; kh++)
            for (int kw = 0; kw < G->KW; kw++)
                src[(co * G->KH + kh) * G->KW + kw] =
                    dyp + (size_t)co * mplane + (size_t)j * G->plane + (size_t)kh * G->Wp + kw;
    const dfs_igemm_fwd p = {.rows = G->C, .K = G->Co * G->KHW, .nq = nq, .apack = apack,
                             .src = src, .vmask = vmask, .vdst = vdst, .dst = rows,
                             .bias = NULL, .res = NULL, .accumulate = 0};
    dfs_igemm_fwd_run(&p);
}

/* dW partial sums (Co, K) += the chunk's mm images, float32, on the direct kernel: the padded
 * pre(x) planes xp and dY planes dyp, channel-major (c or co, m, Hp, Wp). */
static void direct_dw(const fgeom *G, const float *xp, const float *dyp, size_t mplane, int mm,
                      const float **src, float **rows, float *wpart) {
    const int nq = (G->Hc - 1) * G->Wp + G->Wc;
    for (int c = 0; c < G->C; c++)
        for (int kh = 0; kh < G->KH; kh++)
            for (int kw = 0; kw < G->KW; kw++)
                src[(c * G->KH + kh) * G->KW + kw] = xp + (size_t)c * mplane + (size_t)kh * G->Wp + kw;
    for (int co = 0; co < G->Co; co++)
        rows[co] = (float *)dyp + (size_t)co * mplane + (size_t)G->ph * G->Wp + G->pw;
    /* one segment per image: its output rows only (the rows between are zero) */
    const dfs_igemm_dw p = {.rows = G->Co, .K = G->K, .nq = nq, .dy = (const float *const *)rows,
                            .src = src, .dw = wpart, .nseg = mm, .seg_stride = G->plane};
    dfs_igemm_dw_run(&p);
}

/* dA on Winograd (DFS_CONV=winograd, or auto and it won): a stride-1, pad-1 3x3 convolution
 * of dY with the flipped, transposed filters, so the forward's algorithm serves it, with Co
 * input and C output channels, on the forward's tile (dfs_winograd_tile). One image's Co
 * padded planes of dY (Hc + 2 rows of Wc + 2), mplane floats apart, are its input as they lie
 * (m = 1, plane = mplane): F(4x4) reads nothing outside them, at any size; F(2x2) needs even
 * sizes (its planes then are exactly these). dW takes the same tile and sizes. */
static int winograd_bwd_ok(const fgeom *G) {
    return winograd_ok(G) && (dfs_winograd_tile() == 4 || (G->Hc % 2 == 0 && G->Wc % 2 == 0));
}

/* Tile rows (of tile t) per dfs_winograd_run or dfs_winograd_dw_run of one image: about
 * winograd_cols() columns. */
static int winograd_da_rows(const fgeom *G, int t) {
    const int tw = dfs_winograd_tiles(G->Wc, t), th = dfs_winograd_tiles(G->Hc, t);
    const int r = (winograd_cols() + tw - 1) / tw;
    return r < th ? r : th;
}

/* U ((t + 2)^2, C, Co) of the flipped, transposed filters w'[c][co][k] = w[co][c][8 - k]; tmp:
 * 9 C Co floats. */
static void winograd_da_filter(float *U, float *tmp, const float *w, int Co, int C, int t) {
    for (int co = 0; co < Co; co++)
        for (int c = 0; c < C; c++)
            for (int k = 0; k < 9; k++) tmp[((size_t)c * Co + co) * 9 + k] = w[((size_t)co * C + c) * 9 + 8 - k];
    dfs_winograd_filter(U, tmp, C, Co, t);
}

static void winograd_da(const fgeom *G, const float *U, const float *dyp, size_t mplane, int j, float *da,
                        float *scratch, int t) {
    dfs_winograd_fwd p = {.m = 1, .Ci = G->Co, .Co = G->C, .H = G->Hc, .W = G->Wc, .U = U,
                          .xp = dyp + (size_t)j * G->plane, .plane = mplane, .out = da, .scratch = scratch,
                          .tile = t};
    const int th = dfs_winograd_tiles(G->Hc, t);
    p.nty = winograd_da_rows(G, t);
    for (p.ty0 = 0; p.ty0 < th; p.ty0 += p.nty) dfs_winograd_run(&p);
}

/* The auto table's key of a backward's dA (kind 3: a convolution with Co in and C out) or dW
 * (kind 4), apart from the forward's shapes (act 0 to 2); the pre-op plays no part in either. */
enum { BWD_DA = 3, BWD_DW = 4 };
static auto_entry bwd_key(const fgeom *G, int kind, int pick) {
    const int in = kind == BWD_DA ? G->Co : G->C, out = kind == BWD_DA ? G->C : G->Co;
    return (auto_entry){in, out, G->Hc, G->Wc, G->N, kind, dfs_op_threads(), pick};
}

/* The path of a backward's dA or dW: 0 direct, 1 Winograd, 2 time both on thread 0's first
 * image (dA) or chunk (dW) (auto, the shape's first backward; every result of that call is
 * the direct one). Where the tile allows (winograd_bwd_ok). */
static int winograd_bwd_pick(const fgeom *G, int kind) {
    if (!winograd_bwd_ok(G)) return 0;
    if (dfs_get_conv_algo() != DFS_CONV_AUTO) return 1;
    const auto_entry key = bwd_key(G, kind, 0);
    const int found = auto_lookup(&key);
    return found >= 0 ? found : 2;
}

/* dW on Winograd (dfs_winograd_dw_run): M (16, Co, C) += the chunk's mm images, from the
 * padded pre(x) planes xp (channel-major, as for dA: m = 1, plane = mplane) and dY (dout, the
 * chunk's first image's (Co, P)). Even sizes, like dA. */
static void winograd_dw(const fgeom *G, const float *xp, const float *dout, size_t mplane, int mm, float *M,
                        float *scratch, int t) {
    dfs_winograd_dw p = {.Ci = G->C, .Co = G->Co, .H = G->Hc, .W = G->Wc, .plane = mplane,
                         .dy_plane = G->P, .M = M, .scratch = scratch, .tile = t};
    const int th = dfs_winograd_tiles(G->Hc, t);
    p.nty = winograd_da_rows(G, t);
    for (int j = 0; j < mm; j++) {
        p.xp = xp + (size_t)j * G->plane;
        p.dy = dout + (size_t)j * G->Co * G->P;
        for (p.ty0 = 0; p.ty0 < th; p.ty0 += p.nty) dfs_winograd_dw_run(&p);
    }
}

static void fused_backward(dfs_graph *g, dfs_node *nd) {
    const fused_saved *sv = nd->saved;
    const fgeom *G = &sv->G;
    dfs_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *x2 = nd->in[3];
    dfs_tensor *gamma = nd->in[4], *beta = nd->in[5], *tadd = nd->in[6], *res = nd->in[7];
    const int N = G->N, C = G->C, C1 = G->C1, Co = G->Co, K = G->K, KHW = G->KHW;
    const int groups = sv->groups, act = sv->norm;
    const size_t P = G->P, plane = G->plane, HW = (size_t)G->H * G->W;
    const float *dout = nd->out->grad; // (N, Co, P)
    int fr = 0, f1 = 0, f2 = 0;
    float *dres = res && res->requires_grad ? dfs_grad_for_write(g, res, &fr) : NULL;
    float *dx1 = x->requires_grad ? dfs_grad_for_write(g, x, &f1) : NULL;
    float *dx2 = x2 && x2->requires_grad ? dfs_grad_for_write(g, x2, &f2) : NULL;
    float *dw = w->requires_grad ? dfs_grad(g, w) : NULL;
    float *db = b && b->requires_grad ? dfs_grad(g, b) : NULL;
    float *dt = tadd && tadd->requires_grad ? dfs_grad(g, tadd) : NULL;
    float *dgm = act && gamma && gamma->requires_grad ? dfs_grad(g, gamma) : NULL;
    float *dbt = act && beta && beta->requires_grad ? dfs_grad(g, beta) : NULL;
    const int need_da = dx1 || dx2 || dgm || dbt;
    const int need_dy = dw || need_da;

    const int T = dfs_op_threads(), m = fused_chunk(G, T), nchunks = (N + m - 1) / m;
    const int nq = (G->Hc - 1) * G->Wp + G->Wc, nvec = (nq + 15) / 16;
    const size_t mplane = (size_t)m * plane;
    /* bf16: dA from pair planes of dY (Co2 of them) and pairs of the flipped weights; dW from
     * bfloat16 copies of the padded pre(x) and dY (src/kernels/bf16.c) */
    const int bf = sv->bf16, Co2 = (Co + 1) / 2, KA = bf ? Co2 * KHW : Co * KHW;
    const int wda = need_da && !bf ? winograd_bwd_pick(G, BWD_DA) : 0;
    const int wdw = dw && !bf ? winograd_bwd_pick(G, BWD_DW) : 0;
    const int wt = dfs_winograd_tile(), wtp = (wt + 2) * (wt + 2); /* dA's and dW's tile */
    const size_t wscr = wda || wdw ? dfs_winograd_scratch_floats(Co, C, wt * winograd_da_rows(G, wt), G->Wc, 1, wt) : 0;
    const size_t CCo = (size_t)wtp * C * Co; /* Winograd dW's M (wtp, Co, C) */
    /* Winograd dA: U (wtp, C, Co), and its 9 C Co input after it, or, with Winograd dW, in
     * thread 0's M, which the filter transform is done with before M is cleared. The direct
     * kernel's packed weights only where it runs: those and the direct dW's per-thread sums
     * cost about 0.3 MB each at the U-Net's largest backward. */
    const int da_packed = need_da && wda != 1, u_tmp = wda && wdw != 1 ? 9 : 0;
    carver cv = {NULL, 0};
    carve(&cv, da_packed ? dfs_igemm_pack_floats(C, KA) * sizeof(float) : 0);
    carve(&cv, wda ? (size_t)(wtp + u_tmp) * C * Co * sizeof(float) : 0);
    carve(&cv, (size_t)nvec * sizeof(uint16_t));
    carve(&cv, (size_t)nvec * sizeof(int));
    carve(&cv, (size_t)N * Co * sizeof(double));
    carve(&cv, act ? 2 * (size_t)N * C * sizeof(double) : 0);
    const size_t shared = cv.used;
    /* per thread: the offsets of its pieces */
    cv.used = 0;
    const size_t o_xp = cv.used;
    carve(&cv, dw ? ((size_t)C * mplane + G->slack) * sizeof(float) : 0);
    const size_t o_dy = cv.used;
    carve(&cv, need_dy ? ((size_t)Co * mplane + G->slack) * sizeof(float) : 0);
    const size_t o_da = cv.used;
    carve(&cv, need_da ? (size_t)C * P * sizeof(float) : 0);
    const size_t o_wp = cv.used;
    carve(&cv, dw && wdw != 1 ? (size_t)Co * K * sizeof(float) : 0);
    const size_t o_dyb = cv.used; /* bf16: dY's pair planes (Co2, m, Hp, Wp) */
    carve(&cv, bf && need_da ? ((size_t)Co2 * mplane + G->slack) * sizeof(uint32_t) : 0);
    const size_t o_xh = cv.used;  /* bf16: pre(x) and dY rounded, 16 bits each */
    carve(&cv, bf && dw ? ((size_t)C * mplane + G->slack) * sizeof(uint16_t) : 0);
    const size_t o_dyh = cv.used;
    carve(&cv, bf && dw ? ((size_t)Co * mplane + G->slack) * sizeof(uint16_t) : 0);
    const size_t o_src = cv.used;
    carve(&cv, (size_t)(K > Co * KHW ? K : Co * KHW) * sizeof(float *));
    const size_t o_rows = cv.used;
    carve(&cv, (size_t)(C > Co ? C : Co) * sizeof(float *));
    const size_t o_coef = cv.used;
    carve(&cv, act ? (size_t)C * 2 * sizeof(float) : 0);
    const size_t o_tmp = cv.used;
    carve(&cv, HW * sizeof(float));
    const size_t o_wscr = cv.used; /* Winograd dA and dW: their scratch */
    carve(&cv, wscr * sizeof(float));
    const size_t o_wm = cv.used; /* Winograd dW: M, or for the timing a second M and dW */
    carve(&cv, wdw == 1 ? CCo * sizeof(float) : 0);
    const size_t o_wm2 = cv.used;
    carve(&cv, wdw == 2 ? (CCo + (size_t)Co * K) * sizeof(float) : 0);
    const size_t per_thread = cv.used;
    unsigned char *mem = dfs_graph_scratch(g, 0, shared + (size_t)T * per_thread);
    cv = (carver){mem, 0};
    float *apack = carve(&cv, da_packed ? dfs_igemm_pack_floats(C, KA) * sizeof(float) : 0);
    float *wU = carve(&cv, wda ? (size_t)(wtp + u_tmp) * C * Co * sizeof(float) : 0);
    uint16_t *vmask = carve(&cv, (size_t)nvec * sizeof(uint16_t));
    int *vdst = carve(&cv, (size_t)nvec * sizeof(int));
    double *sums = carve(&cv, (size_t)N * Co * sizeof(double));                 // (N, Co)
    double *ab = carve(&cv, act ? 2 * (size_t)N * C * sizeof(double) : 0);      // (N, C, 2)
    if (da_packed && bf) dfs_igemm_bf16_pack_flip((uint32_t *)apack, w->data, Co, C, KHW);
    else if (da_packed) dfs_igemm_pack_flip(apack, w->data, Co, C, KHW);
    if (wda)
        winograd_da_filter(wU, u_tmp ? wU + (size_t)wtp * C * Co : (float *)(mem + shared + o_wm), w->data, Co, C, wt);
    int wpick = -1, wpick_dw = -1; /* wda, wdw 2: what the timings found */
    dfs_igemm_vecmap(vmask, vdst, nq, G->Wp, G->Wc);
    const float *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
    const float *mu = sv->stats, *rstd = sv->stats ? sv->stats + (size_t)N * groups : NULL;
    int nt = 1;

#pragma omp parallel num_threads(T) if (T > 1 && nchunks > 1 && fused_worth_threads(G))
    {
        const int tid = conv_thread_id();
#ifdef _OPENMP
#pragma omp single
        nt = omp_get_num_threads();
#endif
        unsigned char *tm = mem + shared + (size_t)tid * per_thread;
        float *xp = (float *)(tm + o_xp), *dyp = (float *)(tm + o_dy), *da = (float *)(tm + o_da);
        float *wpart = dw && wdw != 1 ? (float *)(tm + o_wp) : NULL;
        uint32_t *dyb = (uint32_t *)(tm + o_dyb);
        uint16_t *xh = (uint16_t *)(tm + o_xh), *dyh = (uint16_t *)(tm + o_dyh);
        const float **src = (const float **)(tm + o_src);
        float **rows = (float **)(tm + o_rows);
        float *coef = (float *)(tm + o_coef), *tmp = (float *)(tm + o_tmp);
        float *wscratch = (float *)(tm + o_wscr);
        float *wm = (float *)(tm + o_wm), *wm2 = (float *)(tm + o_wm2);
        int timed = 0, timed_dw = 0;
        if (wpart) memset(wpart, 0, (size_t)Co * K * sizeof(float)); /* NULL where dW runs on Winograd */
        if (wdw == 1) memset(wm, 0, CCo * sizeof(float));
#pragma omp for schedule(static)
        for (int ch = 0; ch < nchunks; ch++) {
            const int n0 = ch * m, mm = N - n0 < m ? N - n0 : m;
            /* dY: sums for db and dtadd, dres, and the padded copy (Co, m, Hp, Wp) */
            for (int j = 0; j < mm; j++) {
                const int n = n0 + j;
                for (int co = 0; co < Co; co++) {
                    const float *d = dout + ((size_t)n * Co + co) * P; // (Hc, Wc)
                    double s = 0;
#pragma omp simd reduction(+ : s)
                    for (size_t i = 0; i < P; i++) s += d[i];
                    sums[(size_t)n * Co + co] = s;
                    if (dres) {
                        float *r = dres + ((size_t)n * Co + co) * P;
                        if (fr) memcpy(r, d, P * sizeof(float));
                        else
                            for (size_t i = 0; i < P; i++) r[i] += d[i];
                    }
                    if (!need_dy) continue;
                    float *pl = dyp + (size_t)co * mplane + (size_t)j * plane; // (Hp, Wp)
                    memset(pl, 0, (size_t)G->ph * G->Wp * sizeof(float));
                    memset(pl + (size_t)(G->ph + G->Hc) * G->Wp, 0, (size_t)G->ph * G->Wp * sizeof(float));
                    dfs_pad_rows(pl + (size_t)G->ph * G->Wp, d, G->Hc, G->Wc, G->pw);
                }
            }
            if (!need_dy) continue;
            memset(dyp + (size_t)Co * mplane, 0, G->slack * sizeof(float));
            if (dw) {
                /* recompute pre(x) for the chunk into (C, m, Hp, Wp) */
                for (int j = 0; j < mm; j++) {
                    const int n = n0 + j;
                    const dfs_planes xpl = {x->data + (size_t)n * C1 * HW,
                                            x2 ? x2->data + (size_t)n * (C - C1) * HW : NULL, C1, HW};
                    if (act)
                        for (int gi = 0; gi < groups; gi++) {
                            const int Cg = C / groups;
                            const float mg = mu[(size_t)n * groups + gi], rs = rstd[(size_t)n * groups + gi];
                            for (int c = gi * Cg; c < (gi + 1) * Cg; c++) {
                                float a = rs * (gm ? gm[c] : 1.0f);
                                coef[2 * c] = a;
                                coef[2 * c + 1] = (bt ? bt[c] : 0.0f) - mg * a;
                            }
                        }
                    fill_padded(xp + (size_t)j * plane, mplane, G, &xpl, n, act, coef, sv->mask, sv->scale, tmp);
                }
                memset(xp + (size_t)C * mplane, 0, G->slack * sizeof(float));
                if (bf) { /* the same products on bfloat16 copies of the chunk's mm images */
                    for (int c = 0; c < C; c++)
                        dfs_bf16_round_n(xh + (size_t)c * mplane, xp + (size_t)c * mplane, (size_t)mm * plane);
                    for (int co = 0; co < Co; co++)
                        dfs_bf16_round_n(dyh + (size_t)co * mplane, dyp + (size_t)co * mplane, (size_t)mm * plane);
                    const uint16_t **s16 = (const uint16_t **)src, **r16 = (const uint16_t **)rows;
                    for (int c = 0; c < C; c++)
                        for (int t = 0; t < KHW; t++)
                            s16[c * KHW + t] = xh + (size_t)c * mplane + (size_t)(t / G->KW) * G->Wp + t % G->KW;
                    for (int co = 0; co < Co; co++)
                        r16[co] = dyh + (size_t)co * mplane + (size_t)G->ph * G->Wp + G->pw;
                    const dfs_igemm_bf16_dw p = {.rows = Co, .K = K, .nq = nq, .dy = r16, .src = s16,
                                                 .dw = wpart, .nseg = mm, .seg_stride = plane};
                    dfs_igemm_bf16_dw_run(&p);
                } else if (wdw == 1) {
                    winograd_dw(G, xp, dout + (size_t)n0 * Co * P, mplane, mm, wm, wscratch, wt);
                } else {
                    if (wdw == 2 && tid == 0 && !timed_dw) { /* best of two each, into throwaway sums */
                        float *w2 = wm2 + CCo;
                        double tw = 1e30, td = 1e30;
                        for (int r = 0; r < 2; r++) {
                            memset(wm2, 0, CCo * sizeof(float));
                            memset(w2, 0, (size_t)Co * K * sizeof(float));
                            const double t0 = now_s();
                            winograd_dw(G, xp, dout + (size_t)n0 * Co * P, mplane, mm, wm2, wscratch, wt);
                            const double t1 = now_s();
                            direct_dw(G, xp, dyp, mplane, mm, src, rows, w2);
                            const double t2 = now_s();
                            if (t1 - t0 < tw) tw = t1 - t0;
                            if (t2 - t1 < td) td = t2 - t1;
                        }
                        wpick_dw = tw < td;
                        timed_dw = 1;
                    }
                    direct_dw(G, xp, dyp, mplane, mm, src, rows, wpart);
                }
            }
            if (!need_da) continue;
            if (bf) /* dY's channels in pairs, the chunk's mm images */
                for (int co2 = 0; co2 < Co2; co2++)
                    dfs_bf16_pairs(dyb + (size_t)co2 * mplane, dyp + (size_t)2 * co2 * mplane,
                                   2 * co2 + 1 < Co ? dyp + (size_t)(2 * co2 + 1) * mplane : NULL, (size_t)mm * plane);
            for (int j = 0; j < mm; j++) {
                const int n = n0 + j;
                /* dA = same conv of the padded dY with the flipped, transposed kernel */
                for (int c = 0; c < C; c++) rows[c] = da + (size_t)c * P;
                if (bf) {
                    const uint32_t **s32 = (const uint32_t **)src;
                    for (int co2 = 0; co2 < Co2; co2++)
                        for (int t = 0; t < KHW; t++)
                            s32[co2 * KHW + t] = dyb + (size_t)co2 * mplane + (size_t)j * plane +
                                                 (size_t)(t / G->KW) * G->Wp + t % G->KW;
                    const dfs_igemm_bf16_fwd p = {.rows = C, .K = KA, .nq = nq, .apack = (const uint32_t *)apack,
                                                  .src = s32, .vmask = vmask, .vdst = vdst, .dst = rows,
                                                  .bias = NULL, .res = NULL, .accumulate = 0};
                    dfs_igemm_bf16_run(&p);
                } else if (wda == 1) {
                    winograd_da(G, wU, dyp, mplane, j, da, wscratch, wt);
                } else if (wda == 2 && tid == 0 && !timed) { /* best of two each, direct last */
                    double tw = 1e30, td = 1e30;
                    for (int r = 0; r < 2; r++) {
                        const double t0 = now_s();
                        winograd_da(G, wU, dyp, mplane, j, da, wscratch, wt); /* direct's overwrites it */
                        const double t1 = now_s();
                        direct_da(G, apack, src, rows, vmask, vdst, dyp, mplane, j, da);
                        const double t2 = now_s();
                        if (t1 - t0 < tw) tw = t1 - t0;
                        if (t2 - t1 < td) td = t2 - t1;
                    }
                    wpick = tw < td;
                    timed = 1;
                } else {
                    direct_da(G, apack, src, rows, vmask, vdst, dyp, mplane, j, da);
                }
                /* back through pre: upsample, dropout, GroupNorm (+SiLU) */
                float *o1 = dx1 ? dx1 + (size_t)n * C1 * HW : NULL;
                float *o2 = dx2 ? dx2 + (size_t)n * (C - C1) * HW : NULL;
                if (G->up > 1) {
                    const int up = G->up;
                    for (int c = 0; c < C; c++) {
                        float *o = c < C1 ? o1 : o2;
                        if (!o) continue;
                        o += (size_t)(c < C1 ? c : c - C1) * HW;
                        const int fresh = c < C1 ? f1 : f2;
                        const float *d = da + (size_t)c * P;
                        for (int h = 0; h < G->H; h++)
                            for (int i = 0; i < G->W; i++) {
                                float s = 0.0f;
                                for (int u = 0; u < up; u++)
                                    for (int v = 0; v < up; v++) s += d[(size_t)(h * up + u) * G->Wc + i * up + v];
                                float *t = o + (size_t)h * G->W + i;
                                *t = fresh ? s : *t + s;
                            }
                    }
                    continue;
                }
                if (sv->mask) {
                    const size_t bit0 = (size_t)n * C * HW;
                    for (size_t i = 0; i < (size_t)C * HW; i++) {
                        size_t bi = bit0 + i;
                        da[i] = (sv->mask[bi >> 3] >> (bi & 7) & 1) ? da[i] * sv->scale : 0.0f;
                    }
                }
                if (act) {
                    const dfs_planes xpl = {x->data + (size_t)n * C1 * HW,
                                            x2 ? x2->data + (size_t)n * (C - C1) * HW : NULL, C1, HW};
                    const dfs_planes_grad dxp = {o1, o2, C1, HW, f1, f2};
                    for (int gi = 0; gi < groups; gi++)
                        dfs_gn_backward_group(o1 || o2 ? &dxp : NULL, da, da, &xpl, C, groups, gi,
                                              mu[(size_t)n * groups + gi], rstd[(size_t)n * groups + gi],
                                              gm, bt, act == 2, ab + 2 * (size_t)n * C);
                    continue;
                }
                for (int c = 0; c < C; c++) {
                    float *o = c < C1 ? o1 : o2;
                    if (!o) continue;
                    o += (size_t)(c < C1 ? c : c - C1) * HW;
                    const float *d = da + (size_t)c * P;
                    if (c < C1 ? f1 : f2) memcpy(o, d, P * sizeof(float));
                    else
                        for (size_t i = 0; i < P; i++) o[i] += d[i];
                }
            }
        }
        /* the implicit barrier above: every partial is complete */
        if (wdw == 1) { /* the threads' M summed into thread 0's, then the filter transform back */
            float *m0 = (float *)(mem + shared + o_wm);
#pragma omp for schedule(static)
            for (long i = 0; i < (long)CCo; i++)
                for (int t = 1; t < nt; t++) m0[i] += ((const float *)(mem + shared + (size_t)t * per_thread + o_wm))[i];
#pragma omp single
            dfs_winograd_dw_finish(dw, m0, Co, C, wt);
        } else if (dw) {
#pragma omp for schedule(static)
            for (long i = 0; i < (long)Co * K; i++) {
                float s = 0.0f;
                for (int t = 0; t < nt; t++) s += ((const float *)(mem + shared + (size_t)t * per_thread + o_wp))[i];
                dw[i] += s;
            }
        }
    }
    if (wda == 2 && wpick >= 0) {
        const auto_entry e = bwd_key(G, BWD_DA, wpick);
        auto_store(&e);
    }
    if (wdw == 2 && wpick_dw >= 0) {
        const auto_entry e = bwd_key(G, BWD_DW, wpick_dw);
        auto_store(&e);
    }
    if (db || dt)
        for (int co = 0; co < Co; co++) {
            double s = 0;
            for (int n = 0; n < N; n++) {
                s += sums[(size_t)n * Co + co];
                if (dt) dt[(size_t)n * Co + co] += (float)sums[(size_t)n * Co + co];
            }
            if (db) db[co] += (float)s;
        }
    if (act) dfs_gn_param_grads(dgm, dbt, ab, N, C);
}

/* Forward of any convolution on the implicit-GEMM kernel, through the phases of the padded
 * input: with stride s, xpad[s oh + kh][s ow + kw] = P_(kh mod s, kw mod s)[oh + kh / s]
 * [ow + kw / s], where P_ab[i][j] = xpad[s i + a][s j + b] (Hq x Wq = ceil(Hp / s) x
 * ceil(Wp / s) each, zero beyond xpad). So B row k = (ci, kh, kw) is a shifted view of one
 * phase plane, and q = oh Wq + ow with ow < Wo are the outputs. Used for the convolutions the
 * fused op does not take (strided, or padded other than "same"); their backward stays im2col
 * (conv_backward recomputes the columns from x). Threads over images. */
static void phased_forward(dfs_graph *g, const conv_geom *c, float *out, const float *x,
                           const float *w, const float *b) {
    const int sh = c->sh, sw = c->sw, Co = c->Co, KHW = c->KH * c->KW, K = c->Ci * KHW;
    const int Hp = c->H + 2 * c->ph, Wp = c->W + 2 * c->pw;
    const int Hq = (Hp + sh - 1) / sh, Wq = (Wp + sw - 1) / sw;
    const size_t qplane = (size_t)Hq * Wq, cstride = (size_t)sh * sw * qplane; // per channel
    const size_t P = (size_t)c->Ho * c->Wo, HW = (size_t)c->H * c->W;
    const int nq = (c->Ho - 1) * Wq + c->Wo, nvec = (nq + 15) / 16;
    const int T = dfs_op_threads();
    carver cv = {NULL, 0};
    carve(&cv, dfs_igemm_pack_floats(Co, K) * sizeof(float));
    carve(&cv, (size_t)nvec * sizeof(uint16_t));
    carve(&cv, (size_t)nvec * sizeof(int));
    const size_t shared = cv.used;
    cv.used = 0;
    carve(&cv, (size_t)c->Ci * cstride * sizeof(float));
    carve(&cv, (size_t)K * sizeof(float *));
    carve(&cv, (size_t)Co * sizeof(float *));
    const size_t per_thread = cv.used;
    unsigned char *mem = dfs_graph_scratch(g, 0, shared + (size_t)T * per_thread);
    cv = (carver){mem, 0};
    float *apack = carve(&cv, dfs_igemm_pack_floats(Co, K) * sizeof(float));
    uint16_t *vmask = carve(&cv, (size_t)nvec * sizeof(uint16_t));
    int *vdst = carve(&cv, (size_t)nvec * sizeof(int));
    dfs_igemm_pack(apack, w, Co, K);
    dfs_igemm_vecmap(vmask, vdst, nq, Wq, c->Wo);
    const double work = (double)c->N * Co * K * (double)P;
#pragma omp parallel num_threads(T) if (T > 1 && c->N > 1 && work >= (double)(1 << 20))
    {
        carver tc = {mem + shared + (size_t)conv_thread_id() * per_thread, 0};
        float *ph = carve(&tc, (size_t)c->Ci * cstride * sizeof(float)); // (Ci, sh*sw, Hq, Wq)
        const float **src = carve(&tc, (size_t)K * sizeof(float *));
        float **dst = carve(&tc, (size_t)Co * sizeof(float *));
#pragma omp for schedule(static)
        for (int n = 0; n < c->N; n++) {
            for (int ci = 0; ci < c->Ci; ci++) {
                const float *xc = x + ((size_t)n * c->Ci + ci) * HW; // (H, W)
                for (int a = 0; a < sh; a++)
                    for (int bb = 0; bb < sw; bb++) {
                        float *pl = ph + (size_t)ci * cstride + (size_t)(a * sw + bb) * qplane;
                        for (int i = 0; i < Hq; i++) {
                            const int ih = sh * i + a - c->ph;
                            for (int j = 0; j < Wq; j++) {
                                const int iw = sw * j + bb - c->pw;
                                pl[(size_t)i * Wq + j] = ih >= 0 && ih < c->H && iw >= 0 && iw < c->W
                                                             ? xc[(size_t)ih * c->W + iw]
                                                             : 0.0f;
                            }
                        }
                    }
            }
            for (int ci = 0; ci < c->Ci; ci++)
                for (int kh = 0; kh < c->KH; kh++)
                    for (int kw = 0; kw < c->KW; kw++)
                        src[(ci * c->KH + kh) * c->KW + kw] =
                            ph + (size_t)ci * cstride + (size_t)((kh % sh) * sw + kw % sw) * qplane +
                            (size_t)(kh / sh) * Wq + kw / sw;
            for (int co = 0; co < Co; co++) dst[co] = out + ((size_t)n * Co + co) * P;
            const dfs_igemm_fwd p = {.rows = Co, .K = K, .nq = nq, .apack = apack, .src = src,
                                     .vmask = vmask, .vdst = vdst, .dst = dst, .bias = b,
                                     .res = NULL, .accumulate = 0};
            dfs_igemm_fwd_run(&p);
        }
    }
}

static dfs_tensor *conv_op(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int stride,
                           int pad) {
    const conv_geom c = conv_geom_of(x, w, stride, pad);
    DFS_ASSERT(c.Ho >= 1 && c.Wo >= 1);
    if (dfs_get_kernels() == DFS_KERNELS_FAST && same_conv_ok(c.KH, c.KW, c.ph, c.pw, stride) &&
        c.N > 0 && c.Ci > 0 && c.Co > 0) {
        const dfs_conv_fused none = {.up = 1};
        return fused_fast(g, x, w, b, &none);
    }
    dfs_tensor *out = x->ndim == 4 ? dfs_tensor_new(g, 4, (int[]){c.N, c.Co, c.Ho, c.Wo})
                                   : dfs_tensor_new(g, 3, (int[]){c.N, c.Co, c.Wo});
    dfs_node *n = dfs_record(g, conv_backward, out, 3, (dfs_tensor *[]){x, w, b});
    const fgeom G = fgeom_make(x, NULL, w, 1, 0);
    if (!n && x->ndim == 4 && same_conv_ok(c.KH, c.KW, c.ph, c.pw, stride) && winograd_ok(&G) &&
        dfs_get_conv_algo() == DFS_CONV_WINOGRAD) {
        /* under BLAS kernels (FAST took it above), where auto mode is not offered */
        const dfs_conv_fused none = {.up = 1};
        winograd_forward(g, &G, out->data, x, w, b, &none, 0, NULL, NULL, 1.0f);
    } else if (dfs_get_kernels() == DFS_KERNELS_FAST && c.N > 0 && c.Ci > 0 && c.Co > 0)
        phased_forward(g, &c, out->data, x->data, w->data, b ? b->data : NULL);
    else
        conv_forward(g, &c, out->data, x->data, w->data, b ? b->data : NULL);
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

/* The fused op as the composition of single ops: the definition of dfs_conv2d_fused, run when
 * the fast kernels are off. */
static dfs_tensor *fused_composed(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b,
                                  const dfs_conv_fused *f) {
    dfs_tensor *h = f->x2 ? dfs_concat(g, x, f->x2, 1) : x;
    if (f->norm == 1) h = dfs_group_norm(g, h, f->gamma, f->beta, f->groups, f->eps);
    if (f->norm == 2) h = dfs_group_norm_silu(g, h, f->gamma, f->beta, f->groups, f->eps);
    if (f->dropout > 0.0f) h = dfs_dropout(g, h, f->dropout);
    if (f->up > 1) h = dfs_upsample_nearest(g, h, f->up);
    h = dfs_conv2d(g, h, w, b, 1, w->shape[2] / 2);
    if (f->tadd)
        h = dfs_add(g, h, dfs_reshape(g, f->tadd, 4, (int[]){h->shape[0], h->shape[1], 1, 1}));
    if (f->res) h = dfs_add(g, h, f->res);
    return h;
}

dfs_tensor *dfs_conv2d_fused(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b,
                             const dfs_conv_fused *f) {
    DFS_ASSERT(x && w && f && x->ndim == 4 && w->ndim == 4);
    const int N = x->shape[0], C = x->shape[1] + (f->x2 ? f->x2->shape[1] : 0), Co = w->shape[0];
    const int up = f->up < 1 ? 1 : f->up;
    DFS_ASSERT(!f->x2 || (f->x2->ndim == 4 && f->x2->shape[0] == N &&
                          f->x2->shape[2] == x->shape[2] && f->x2->shape[3] == x->shape[3]));
    DFS_ASSERT(w->shape[1] == C && w->shape[2] % 2 == 1 && w->shape[2] == w->shape[3]);
    DFS_ASSERT(!b || (b->ndim == 1 && b->shape[0] == Co));
    DFS_ASSERT(f->norm >= 0 && f->norm <= 2);
    DFS_ASSERT(!f->norm || (f->groups >= 1 && C % f->groups == 0 && f->eps >= 0.0f));
    DFS_ASSERT(!f->gamma || f->gamma->n == (size_t)C);
    DFS_ASSERT(!f->beta || f->beta->n == (size_t)C);
    DFS_ASSERT(f->dropout >= 0.0f && f->dropout < 1.0f);
    DFS_ASSERT(up == 1 || (!f->norm && f->dropout == 0.0f));
    DFS_ASSERT(!f->tadd || f->tadd->n == (size_t)N * Co);
    DFS_ASSERT(!f->res || (f->res->ndim == 4 && f->res->shape[0] == N && f->res->shape[1] == Co &&
                           f->res->shape[2] == x->shape[2] * up && f->res->shape[3] == x->shape[3] * up));
    dfs_conv_fused ff = *f;
    ff.up = up;
    if (dfs_get_kernels() != DFS_KERNELS_FAST || N == 0) return fused_composed(g, x, w, b, &ff);
    return fused_fast(g, x, w, b, &ff);
}
