/* test_bf16.c - bfloat16 convolutions (src/kernels/bf16.c, dfs_set_bf16): the rounding, the
 * pair words, the three versions of the kernel against each other and against an exact sum,
 * the convolution ops against float32 within a bound derived from the rounding, and a U-Net.
 *
 * The bounds. Let u = 2^-24 (float32: 24 significant bits) and ub = 2^-8 (bfloat16: 8
 * significant bits, rounded to nearest, so |bf16(v) - v| <= ub |v| for normal v).
 *   The kernel on rounded data: each output is a sum of 2 K2 exact products (bfloat16 times
 *   bfloat16 fits in float32) added one at a time with one rounding each, then the bias: by
 *   Higham 2002, Lemma 3.1, |y - sum| <= gamma_{2 K2 + 1} (sum |a||b| + |bias|), gamma_n =
 *   n u / (1 - n u), where sum is the exact sum of the rounded products (computed in double).
 *   The op against float32: the inputs and weights are rounded before the products, so
 *   |sum w_r h_r - sum w h| <= (2 ub + ub^2) sum |w||h|; the float32 op and the kernel each add
 *   their own gamma_{K+1} (sum |w||h| + |b|), far below it. So
 *     |y_bf16 - y_fp32| <= (2 ub + ub^2 + 2 gamma_{2K+3}) (sum |w||h| + |b|) + u |res|
 *   with h = pre(x) the convolution's float32 input (computed here with the single ops) and
 *   sum |w||h| the reference convolution of |h| by |w|.
 *
 * Size key: N batch, C/Co channels, H W the image, KH = KW = k. */
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffuse.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "ref/ref.h"

static const double U32 = 5.9604644775390625e-8; /* 2^-24 */
static const double UB = 1.0 / 256;             /* 2^-8 */

static double gam(int n) { return n * U32 / (1 - n * U32); }

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- rounding ------------------------------------------------------------------------------ */

static void test_round(dfs_rng *rng) {
    const struct {
        uint32_t in;
        uint16_t out;
        const char *what;
    } k[] = {
        {0x3f800000u, 0x3f80, "1"},
        {0x3f808000u, 0x3f80, "1 + 2^-8: a tie, to the even 1"},
        {0x3f818000u, 0x3f82, "1 + 3 2^-8: a tie, to the even 1 + 2^-6"},
        {0x3f808001u, 0x3f81, "just above the tie: up"},
        {0x3f807fffu, 0x3f80, "just below the tie: down"},
        {0xc0200000u, 0xc020, "-2.5 exact"},
        {0x7f7fffffu, 0x7f80, "FLT_MAX overflows to infinity"},
        {0x7f800000u, 0x7f80, "infinity"},
        {0xff800000u, 0xff80, "-infinity"},
        {0x00000000u, 0x0000, "0"},
        {0x80000000u, 0x8000, "-0"},
        {0x7f800001u, 0x7fc0, "a signalling NaN becomes a quiet NaN (not infinity)"},
        {0xffc00000u, 0xffc0, "a quiet NaN keeps its sign"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        uint16_t r = dfs_bf16_round(from_bits(k[i].in));
        CHECK(r == k[i].out, "round %08x (%s): got %04x, want %04x", (unsigned)k[i].in, k[i].what,
              (unsigned)r, (unsigned)k[i].out);
    }
    /* random normal floats: the result is the nearer of the two bfloat16 neighbours (ties: the
     * one with an even last bit), and within ub relative */
    int bad = 0;
    double worst = 0;
    for (int i = 0; i < 100000; i++) {
        uint32_t u = (uint32_t)(dfs_rng_uniform(rng) * 4294967296.0);
        float x = from_bits(u);
        if (!isfinite(x) || fabsf(x) < 1e-37f || fabsf(x) > 3e38f) continue;
        const uint16_t r = dfs_bf16_round(x);
        const uint32_t lo = u & 0xffff0000u;
        const double dlo = fabs((double)from_bits(lo) - x), dhi = fabs((double)from_bits(lo + 0x10000u) - x);
        const uint16_t want = (uint16_t)((dlo < dhi || (dlo == dhi && !(lo >> 16 & 1))) ? lo >> 16 : (lo >> 16) + 1);
        if (r != want) bad++;
        worst = max_err(worst, fabs((double)dfs_bf16_float(r) - x) / fabs(x));
    }
    CHECK(bad == 0, "%d of 100000 random floats not rounded to the nearest bfloat16", bad);
    CHECK(worst <= UB, "relative rounding error %.3g over 2^-8", worst);
    printf("  rounding: 13 fixed cases; 100,000 random floats to nearest, worst relative error %.3g "
           "(bound 2^-8 = %.3g)\n", worst, UB);
}

/* The vector words against the portable loop, every length to 40, NaN and infinity among the data. */
static void test_pairs(dfs_rng *rng) {
    float lo[40], hi[40];
    uint32_t a[40], b[40];
    int bad = 0;
    for (int n = 1; n <= 40; n++) {
        for (int i = 0; i < n; i++) {
            lo[i] = (float)dfs_rng_normal(rng) * 3.0f;
            hi[i] = (float)dfs_rng_normal(rng) * 1e-3f;
        }
        lo[n / 2] = NAN;
        hi[n - 1] = INFINITY;
        for (int withhi = 0; withhi < 2; withhi++) {
            memset(a, 0xab, sizeof a);
            memset(b, 0xab, sizeof b);
            dfs_bf16_pairs(a, lo, withhi ? hi : NULL, (size_t)n);
            int old = dfs_igemm_force_portable(1);
            dfs_bf16_pairs(b, lo, withhi ? hi : NULL, (size_t)n);
            dfs_igemm_force_portable(old);
            for (int i = 0; i < 40; i++) {
                const uint32_t want = i < n ? ((uint32_t)(withhi ? dfs_bf16_round(hi[i]) : 0) << 16 |
                                               dfs_bf16_round(lo[i]))
                                            : 0xababababu;
                if (a[i] != want || b[i] != want) bad++;
            }
        }
    }
    CHECK(bad == 0, "%d pair words differ from bf16(hi) << 16 | bf16(lo) (or were written past n)", bad);
}

/* ---- the kernel ---------------------------------------------------------------------------- */

/* One image through the kernel version v: x (C, H, W), w (Co, C, k, k), b (Co); y (Co, H, W). */
static int run_kernel(float *y, const float *x, const float *w, const float *b, int C, int H, int W,
                      int Co, int k, dfs_bf16_kernel v) {
    const int p = k / 2, Hp = H + 2 * p, Wp = W + 2 * p, C2 = (C + 1) / 2, K2 = C2 * k * k;
    const size_t plane = (size_t)Hp * Wp, slack = (size_t)(k + 1) * Wp + k + 32;
    float *xp = calloc(2 * C2 * plane, sizeof(float));
    uint32_t *xb = calloc(C2 * plane + slack, sizeof(uint32_t));
    uint32_t *ap = malloc(dfs_igemm_pack_floats(Co, K2) * sizeof(uint32_t));
    const uint32_t **src = malloc((size_t)K2 * sizeof *src);
    float **dst = malloc((size_t)Co * sizeof *dst);
    const int nq = (H - 1) * Wp + W, nvec = (nq + 15) / 16;
    uint16_t *vmask = malloc((size_t)nvec * sizeof *vmask);
    int *vdst = malloc((size_t)nvec * sizeof *vdst);
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++)
            memcpy(xp + c * plane + (size_t)(h + p) * Wp + p, x + ((size_t)c * H + h) * W, (size_t)W * sizeof(float));
    for (int c2 = 0; c2 < C2; c2++) dfs_bf16_pairs(xb + c2 * plane, xp + 2 * c2 * plane, xp + (2 * c2 + 1) * plane, plane);
    for (int c2 = 0; c2 < C2; c2++)
        for (int t = 0; t < k * k; t++) src[c2 * k * k + t] = xb + c2 * plane + (size_t)(t / k) * Wp + t % k;
    for (int co = 0; co < Co; co++) dst[co] = y + (size_t)co * H * W;
    dfs_igemm_bf16_pack(ap, w, Co, C, k * k);
    dfs_igemm_vecmap(vmask, vdst, nq, Wp, W);
    const dfs_igemm_bf16_fwd pr = {.rows = Co, .K = K2, .nq = nq, .apack = ap, .src = src, .vmask = vmask,
                                   .vdst = vdst, .dst = dst, .bias = b, .res = NULL, .accumulate = 0};
    int rc = dfs_igemm_bf16_run_as(&pr, v);
    free(xp), free(xb), free(ap), free(src), free(dst), free(vmask), free(vdst);
    return rc;
}

/* Random shapes: the versions agree bit for bit, and each output is within the bound of the
 * exact sum of the rounded products. */
static void test_kernel(dfs_rng *rng) {
    const int native = dfs_bf16_cpu();
    int shapes = 0, over = 0, differ = 0, native_differ = 0, ran_emu = 0;
    double worst = 0;
    for (int s = 0; s < 60; s++) {
        const int C = 1 + (int)(dfs_rng_uniform(rng) * (s < 40 ? 9 : 40)), Co = 1 + (int)(dfs_rng_uniform(rng) * 19);
        const int k = s % 3 == 0 ? 1 : 3, H = 1 + (int)(dfs_rng_uniform(rng) * 13), W = 1 + (int)(dfs_rng_uniform(rng) * 20);
        const size_t nx = (size_t)C * H * W, nw = (size_t)Co * C * k * k, ny = (size_t)Co * H * W;
        float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)), *b = malloc((size_t)Co * sizeof(float));
        float *y[3] = {malloc(ny * sizeof(float)), malloc(ny * sizeof(float)), malloc(ny * sizeof(float))};
        for (size_t i = 0; i < nx; i++) x[i] = (float)dfs_rng_normal(rng);
        for (size_t i = 0; i < nw; i++) w[i] = (float)(dfs_rng_normal(rng) / sqrt((double)C * k * k));
        for (int i = 0; i < Co; i++) b[i] = (float)dfs_rng_normal(rng) * 0.1f;
        CHECK(run_kernel(y[0], x, w, b, C, H, W, Co, k, DFS_BF16_KERNEL_PORTABLE) == 0, "portable runs");
        const int emu = run_kernel(y[1], x, w, b, C, H, W, Co, k, DFS_BF16_KERNEL_EMULATED) == 0;
        ran_emu |= emu;
        if (emu && memcmp(y[0], y[1], ny * sizeof(float))) differ++;
        if (native) {
            CHECK(run_kernel(y[2], x, w, b, C, H, W, Co, k, DFS_BF16_KERNEL_NATIVE) == 0, "native runs");
            if (memcmp(y[0], y[2], ny * sizeof(float))) native_differ++;
        }
        /* the exact sum of the rounded products, and the bound */
        const int K2 = (C + 1) / 2 * k * k, p = k / 2;
        for (int co = 0; co < Co; co++)
            for (int oh = 0; oh < H; oh++)
                for (int ow = 0; ow < W; ow++) {
                    double sum = 0, mag = 0;
                    for (int c = 0; c < C; c++)
                        for (int t = 0; t < k * k; t++) {
                            const int ih = oh + t / k - p, iw = ow + t % k - p;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            const double wr = dfs_bf16_float(dfs_bf16_round(w[((size_t)co * C + c) * k * k + t]));
                            const double xr = dfs_bf16_float(dfs_bf16_round(x[((size_t)c * H + ih) * W + iw]));
                            sum += wr * xr;
                            mag += fabs(wr * xr);
                        }
                    const double bound = gam(2 * K2 + 1) * (mag + fabs(b[co]));
                    const double err = fabs((double)y[0][((size_t)co * H + oh) * W + ow] - (sum + b[co]));
                    if (!(err <= bound)) over++;
                    worst = max_err(worst, bound > 0 ? err / bound : err);
                }
        shapes++;
        free(x), free(w), free(b), free(y[0]), free(y[1]), free(y[2]);
    }
    CHECK(over == 0, "%d outputs of the kernel over gamma_{2K2+1} (sum |a||b| + |bias|) (worst err/bound %.3g)", over, worst);
    CHECK(differ == 0, "the AVX-512 emulation differs from the portable loops on %d of %d shapes", differ, shapes);
    CHECK(native_differ == 0, "vdpbf16ps differs from the portable loops on %d of %d shapes", native_differ, shapes);
    printf("  kernel: %d random shapes, worst error / bound %.3g; %s%s\n", shapes, worst,
           ran_emu ? "emulated == portable bit for bit" : "emulated not run (no AVX-512 F/BW, or DFS_CPU=avx2)",
           native ? "; native (AVX512_BF16) == portable bit for bit" : "; native not run: no AVX512_BF16");
}

/* ---- the ops --------------------------------------------------------------------------------- */

/* The fused op (or plain dfs_conv2d when plain) in float32 and in bf16 on the same data, against
 * the bound above; h, the convolution's float32 input, from the single ops. */
static int check_op(dfs_rng *rng, int N, int C1, int C2, int Co, int H, int W, int k, int norm, int up,
                    int plain, double *worst) {
    const int C = C1 + C2, Hc = H * up, Wc = W * up, groups = C % 2 ? 1 : 2;
    const size_t nx = (size_t)N * C1 * H * W, nx2 = (size_t)N * C2 * H * W, nw = (size_t)Co * C * k * k;
    const size_t ny = (size_t)N * Co * Hc * Wc;
    float *x = malloc(nx * sizeof(float)), *x2 = malloc((nx2 + 1) * sizeof(float)), *w = malloc(nw * sizeof(float));
    float *b = malloc((size_t)Co * sizeof(float)), *gm = malloc((size_t)C * sizeof(float)), *bt = malloc((size_t)C * sizeof(float));
    float *ta = malloc((size_t)N * Co * sizeof(float)), *res = malloc(ny * sizeof(float));
    float *y[2] = {malloc(ny * sizeof(float)), malloc(ny * sizeof(float))};
    float *S = malloc(ny * sizeof(float)), *aw = malloc(nw * sizeof(float));
    for (size_t i = 0; i < nx; i++) x[i] = (float)(dfs_rng_normal(rng) * 2 + 0.5);
    for (size_t i = 0; i < nx2; i++) x2[i] = (float)dfs_rng_normal(rng);
    for (size_t i = 0; i < nw; i++) w[i] = (float)(dfs_rng_normal(rng) / sqrt((double)C * k * k));
    for (int i = 0; i < Co; i++) b[i] = (float)dfs_rng_normal(rng) * 0.1f;
    for (int i = 0; i < C; i++) gm[i] = 1.0f + 0.2f * (float)dfs_rng_normal(rng), bt[i] = 0.1f * (float)dfs_rng_normal(rng);
    for (int i = 0; i < N * Co; i++) ta[i] = (float)dfs_rng_normal(rng);
    for (size_t i = 0; i < ny; i++) res[i] = (float)dfs_rng_normal(rng);
    for (int m = 0; m < 2; m++) {
        if (m) CHECK(dfs_set_bf16(1) == DFS_BF16_EMULATED, "DFS_BF16=emulate gives the emulated mode");
        dfs_graph *g = dfs_graph_new();
        dfs_graph_set_grad(g, 0);
        dfs_tensor *xt = dfs_tensor_wrap(g, x, 4, (int[]){N, C1, H, W});
        dfs_tensor *wt = dfs_tensor_wrap(g, w, 4, (int[]){Co, C, k, k});
        dfs_tensor *bt_ = dfs_tensor_wrap(g, b, 1, (int[]){Co});
        dfs_tensor *out;
        if (plain) out = dfs_conv2d(g, xt, wt, bt_, 1, k / 2);
        else {
            const dfs_conv_fused f = {.x2 = C2 ? dfs_tensor_wrap(g, x2, 4, (int[]){N, C2, H, W}) : NULL,
                                      .norm = norm, .gamma = norm ? dfs_tensor_wrap(g, gm, 1, (int[]){C}) : NULL,
                                      .beta = norm ? dfs_tensor_wrap(g, bt, 1, (int[]){C}) : NULL,
                                      .groups = groups, .eps = 1e-5f, .up = up,
                                      .tadd = dfs_tensor_wrap(g, ta, 2, (int[]){N, Co}),
                                      .res = dfs_tensor_wrap(g, res, 4, (int[]){N, Co, Hc, Wc})};
            out = dfs_conv2d_fused(g, xt, wt, bt_, &f);
        }
        memcpy(y[m], out->data, ny * sizeof(float));
        dfs_graph_free(g);
        dfs_set_bf16(0);
    }
    /* h = pre(x) in float32 from the single ops, then S = |w| * |h| + |b| + |tadd| */
    dfs_graph *g = dfs_graph_new();
    dfs_graph_set_grad(g, 0);
    dfs_tensor *h = dfs_tensor_wrap(g, x, 4, (int[]){N, C1, H, W});
    if (!plain && C2) h = dfs_concat(g, h, dfs_tensor_wrap(g, x2, 4, (int[]){N, C2, H, W}), 1);
    if (!plain && norm == 2)
        h = dfs_group_norm_silu(g, h, dfs_tensor_wrap(g, gm, 1, (int[]){C}), dfs_tensor_wrap(g, bt, 1, (int[]){C}),
                                groups, 1e-5f);
    if (!plain && up > 1) h = dfs_upsample_nearest(g, h, up);
    for (size_t i = 0; i < h->n; i++) h->data[i] = fabsf(h->data[i]);
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
    dfs_conv2d_reference(S, h->data, aw, NULL, N, C, Hc, Wc, Co, k, k, 1, k / 2);
    dfs_graph_free(g);
    const double c = 2 * UB + UB * UB + 2 * gam(2 * C * k * k + 3);
    int over = 0;
    double rel = 0, num = 0, den = 0;
    for (int n = 0; n < N; n++)
        for (int co = 0; co < Co; co++)
            for (size_t q = 0; q < (size_t)Hc * Wc; q++) {
                const size_t i = ((size_t)n * Co + co) * Hc * Wc + q;
                const double extra = fabs(b[co]) + (plain ? 0 : fabs(ta[n * Co + co]));
                const double bound = c * (1.0000001 * S[i] + extra) + (plain ? 0 : U32 * fabs(res[i]));
                const double d = fabs((double)y[1][i] - y[0][i]);
                if (!(d <= bound)) over++;
                *worst = max_err(*worst, d / bound);
                num += d * d, den += (double)y[0][i] * y[0][i];
            }
    rel = sqrt(num / den);
    CHECK(over == 0, "%s N%d C%d+%d Co%d %dx%d k%d norm%d up%d: %d outputs over the bound (worst err/bound %.3g)",
          plain ? "conv2d" : "fused", N, C1, C2, Co, H, W, k, norm, up, over, *worst);
    CHECK(rel > 0, "bf16 changed nothing (N%d C%d Co%d): is it running?", N, C, Co);
    free(x), free(x2), free(w), free(b), free(gm), free(bt), free(ta), free(res), free(y[0]), free(y[1]), free(S), free(aw);
    return over;
}

static void test_ops(dfs_rng *rng) {
    double worst = 0;
    int over = 0;
    over += check_op(rng, 2, 5, 0, 7, 6, 9, 3, 0, 1, 1, &worst);  /* plain 3x3, odd C */
    over += check_op(rng, 3, 4, 0, 9, 5, 5, 1, 0, 1, 1, &worst);  /* plain 1x1 (the direct case) */
    over += check_op(rng, 2, 6, 4, 8, 7, 7, 3, 2, 1, 0, &worst);  /* concat, GroupNorm+SiLU, tadd, res */
    over += check_op(rng, 2, 3, 0, 5, 4, 3, 3, 0, 2, 0, &worst);  /* upsampling */
    over += check_op(rng, 1, 32, 32, 16, 14, 14, 3, 2, 1, 0, &worst); /* U-Net-sized */
    printf("  ops: 5 cases (plain 3x3 and 1x1, concat + GroupNorm + SiLU, upsampling, 64 -> 16 channels); "
           "worst |bf16 - fp32| / bound %.3g\n", worst);
    (void)over;
}

/* ---- backward ---------------------------------------------------------------------------- */

/* The weight-gradient kernel: random rows, columns, lengths and segments; the versions bit for
 * bit, and within gamma_{L + 4} sum |a||b| of the exact sum (L products per lane: two per pair
 * of positions, ceil(nq / 32) pairs per lane per segment; then the 4 levels of the lane tree). */
static void test_dw_kernel(dfs_rng *rng) {
    const int native = dfs_bf16_cpu();
    int over = 0, differ = 0, native_differ = 0, ran_emu = 0;
    double worst = 0;
    for (int s = 0; s < 40; s++) {
        const int R = 1 + (int)(dfs_rng_uniform(rng) * 9), K = 1 + (int)(dfs_rng_uniform(rng) * 13);
        const int nq = 1 + (int)(dfs_rng_uniform(rng) * 100), nseg = 1 + (int)(dfs_rng_uniform(rng) * 3);
        const size_t stride = (size_t)nq + (size_t)(dfs_rng_uniform(rng) * 40), len = stride * nseg + 64;
        uint16_t *dy = malloc((size_t)R * len * sizeof(uint16_t)), *b = malloc((size_t)K * len * sizeof(uint16_t));
        for (size_t i = 0; i < (size_t)R * len; i++) dy[i] = dfs_bf16_round((float)dfs_rng_normal(rng));
        for (size_t i = 0; i < (size_t)K * len; i++) b[i] = dfs_bf16_round((float)dfs_rng_normal(rng) * 0.01f);
        const uint16_t **rows = malloc((size_t)R * sizeof *rows), **cols = malloc((size_t)K * sizeof *cols);
        for (int r = 0; r < R; r++) rows[r] = dy + (size_t)r * len + (size_t)(r % 3); /* odd offsets too */
        for (int k = 0; k < K; k++) cols[k] = b + (size_t)k * len + (size_t)(k % 5);
        float *dw[3];
        for (int v = 0; v < 3; v++) dw[v] = calloc((size_t)R * K, sizeof(float));
        dfs_igemm_bf16_dw p = {.rows = R, .K = K, .nq = nq, .dy = rows, .src = cols, .nseg = nseg, .seg_stride = stride};
        p.dw = dw[0];
        CHECK(dfs_igemm_bf16_dw_run_as(&p, DFS_BF16_KERNEL_PORTABLE) == 0, "portable runs");
        p.dw = dw[1];
        if (dfs_igemm_bf16_dw_run_as(&p, DFS_BF16_KERNEL_EMULATED) == 0) {
            ran_emu = 1;
            if (memcmp(dw[0], dw[1], (size_t)R * K * sizeof(float))) differ++;
        }
        p.dw = dw[2];
        if (native && dfs_igemm_bf16_dw_run_as(&p, DFS_BF16_KERNEL_NATIVE) == 0 &&
            memcmp(dw[0], dw[2], (size_t)R * K * sizeof(float)))
            native_differ++;
        const int L = 2 * nseg * ((nq + 31) / 32);
        for (int r = 0; r < R; r++)
            for (int k = 0; k < K; k++) {
                double sum = 0, mag = 0;
                for (int sg = 0; sg < nseg; sg++)
                    for (int q = 0; q < nq; q++) {
                        const double t = (double)dfs_bf16_float(rows[r][sg * stride + q]) *
                                         dfs_bf16_float(cols[k][sg * stride + q]);
                        sum += t, mag += fabs(t);
                    }
                const double err = fabs((double)dw[0][r * K + k] - sum), bound = gam(L + 4) * mag;
                if (!(err <= bound)) over++;
                worst = max_err(worst, bound > 0 ? err / bound : err);
            }
        free(dy), free(b), free(rows), free(cols), free(dw[0]), free(dw[1]), free(dw[2]);
    }
    CHECK(over == 0, "%d weight-gradient sums over gamma_{L+4} sum |a||b| (worst %.3g)", over, worst);
    CHECK(differ == 0, "the emulated weight-gradient kernel differs from the portable one on %d shapes", differ);
    CHECK(native_differ == 0, "the native weight-gradient kernel differs from the portable one on %d shapes", native_differ);
    printf("  weight-gradient kernel: 40 random shapes, worst error / bound %.3g; %s%s\n", worst,
           ran_emu ? "emulated == portable bit for bit" : "emulated not run (no AVX-512 F/BW, or DFS_CPU=avx2)",
           native ? "; native == portable bit for bit" : "; native not run: no AVX512_BF16");
}

/* The gradients of a convolution (plain, or fused with concat and GroupNorm + SiLU) in bf16
 * against float32, for a random output gradient dy: dW within (2 ub + ub^2 + 2 gamma)
 * sum_q |dy||h| and, for the plain op, dx within the same factor of sum |w||dy| (both sums by
 * the reference backward on magnitudes); through GroupNorm, dx's relative L2 difference within
 * 4 ub. */
static void check_backward(dfs_rng *rng, int N, int C1, int C2, int Co, int H, int W, int k, int fused,
                           double *worst_w, double *worst_x) {
    const int C = C1 + C2, groups = 2;
    const size_t nx = (size_t)N * C1 * H * W, nx2 = (size_t)N * C2 * H * W, nw = (size_t)Co * C * k * k;
    const size_t ny = (size_t)N * Co * H * W;
    float *x = malloc(nx * sizeof(float)), *x2 = malloc((nx2 + 1) * sizeof(float)), *w = malloc(nw * sizeof(float));
    float *b = calloc((size_t)Co, sizeof(float)), *gm = malloc((size_t)C * sizeof(float)), *bt = malloc((size_t)C * sizeof(float));
    float *dy = malloc(ny * sizeof(float)), *gw[2], *gx[2];
    for (size_t i = 0; i < nx; i++) x[i] = (float)(dfs_rng_normal(rng) + 0.3);
    for (size_t i = 0; i < nx2; i++) x2[i] = (float)dfs_rng_normal(rng);
    for (size_t i = 0; i < nw; i++) w[i] = (float)(dfs_rng_normal(rng) / sqrt((double)C * k * k));
    for (int i = 0; i < C; i++) gm[i] = 1.0f + 0.2f * (float)dfs_rng_normal(rng), bt[i] = 0.1f * (float)dfs_rng_normal(rng);
    for (size_t i = 0; i < ny; i++) dy[i] = (float)dfs_rng_normal(rng);
    for (int m = 0; m < 2; m++) {
        if (m) dfs_set_bf16(1);
        dfs_graph *g = dfs_graph_new();
        dfs_tensor *xt = dfs_tensor_wrap(g, x, 4, (int[]){N, C1, H, W});
        dfs_tensor *wt = dfs_tensor_wrap(g, w, 4, (int[]){Co, C, k, k});
        xt->requires_grad = wt->requires_grad = 1;
        dfs_tensor *out;
        if (!fused) out = dfs_conv2d(g, xt, wt, dfs_tensor_wrap(g, b, 1, (int[]){Co}), 1, k / 2);
        else {
            const dfs_conv_fused f = {.x2 = dfs_tensor_wrap(g, x2, 4, (int[]){N, C2, H, W}), .norm = 2,
                                      .gamma = dfs_tensor_wrap(g, gm, 1, (int[]){C}),
                                      .beta = dfs_tensor_wrap(g, bt, 1, (int[]){C}), .groups = groups,
                                      .eps = 1e-5f, .up = 1};
            out = dfs_conv2d_fused(g, xt, wt, NULL, &f);
        }
        dfs_backward_grad(g, out, dy);
        gw[m] = malloc(nw * sizeof(float));
        gx[m] = malloc(nx * sizeof(float));
        memcpy(gw[m], wt->grad, nw * sizeof(float));
        memcpy(gx[m], xt->grad, nx * sizeof(float));
        dfs_graph_free(g);
        dfs_set_bf16(0);
    }
    /* the magnitudes: h = pre(x), then |dy| x |h| and |w| x |dy| by the reference backward */
    dfs_graph *g = dfs_graph_new();
    dfs_graph_set_grad(g, 0);
    dfs_tensor *h = dfs_tensor_wrap(g, x, 4, (int[]){N, C1, H, W});
    if (fused) {
        h = dfs_concat(g, h, dfs_tensor_wrap(g, x2, 4, (int[]){N, C2, H, W}), 1);
        h = dfs_group_norm_silu(g, h, dfs_tensor_wrap(g, gm, 1, (int[]){C}), dfs_tensor_wrap(g, bt, 1, (int[]){C}),
                                groups, 1e-5f);
    }
    float *ah = malloc(h->n * sizeof(float)), *aw = malloc(nw * sizeof(float)), *ady = malloc(ny * sizeof(float));
    for (size_t i = 0; i < h->n; i++) ah[i] = fabsf(h->data[i]);
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]);
    for (size_t i = 0; i < ny; i++) ady[i] = fabsf(dy[i]);
    float *Mw = calloc(nw, sizeof(float)), *Mx = calloc(h->n, sizeof(float));
    dfs_conv2d_reference_backward(Mx, Mw, NULL, ady, ah, aw, N, C, H, W, Co, k, k, 1, k / 2);
    dfs_graph_free(g);
    const double c = 2 * UB + UB * UB + 2 * gam(N * (H + k) * (W + k) + Co * k * k + 16);
    int over = 0;
    for (size_t i = 0; i < nw; i++) {
        const double d = fabs((double)gw[1][i] - gw[0][i]), bound = c * 1.0000001 * Mw[i];
        if (!(d <= bound)) over++;
        *worst_w = max_err(*worst_w, d / bound);
    }
    CHECK(over == 0, "dW of %s N%d C%d Co%d %dx%d k%d: %d over the bound (worst %.3g)", fused ? "fused" : "conv2d",
          N, C, Co, H, W, k, over, *worst_w);
    double num = 0, den = 0;
    over = 0;
    for (size_t i = 0; i < nx; i++) {
        const double d = fabs((double)gx[1][i] - gx[0][i]);
        num += d * d, den += (double)gx[0][i] * gx[0][i];
        if (!fused) {
            const double bound = c * 1.0000001 * Mx[i];
            if (!(d <= bound)) over++;
            *worst_x = max_err(*worst_x, d / bound);
        }
    }
    if (fused) CHECK(sqrt(num / den) < 4 * UB, "dx through GroupNorm: relative L2 difference %.3g", sqrt(num / den));
    else CHECK(over == 0, "dx of conv2d N%d C%d Co%d: %d over the bound (worst %.3g)", N, C, Co, over, *worst_x);
    CHECK(num > 0, "bf16 changed no input gradient: is it running?");
    CHECK(memcmp(gw[0], gw[1], nw * sizeof(float)) != 0, "bf16 changed no weight gradient: is it running?");
    free(x), free(x2), free(w), free(b), free(gm), free(bt), free(dy), free(gw[0]), free(gw[1]), free(gx[0]),
        free(gx[1]), free(ah), free(aw), free(ady), free(Mw), free(Mx);
}

static void test_backward(dfs_rng *rng) {
    double ww = 0, wx = 0;
    check_backward(rng, 2, 5, 0, 7, 6, 9, 3, 0, &ww, &wx);   /* odd C */
    check_backward(rng, 3, 4, 0, 9, 5, 5, 1, 0, &ww, &wx);   /* 1x1, odd Co */
    check_backward(rng, 2, 6, 4, 8, 7, 7, 3, 1, &ww, &wx);   /* concat, GroupNorm + SiLU */
    check_backward(rng, 2, 32, 32, 16, 14, 14, 3, 1, &ww, &wx); /* U-Net-sized */
    printf("  backward: 4 cases; worst |dW_bf16 - dW_fp32| / bound %.3g, |dx| (plain) %.3g\n", ww, wx);
}

/* ---- the mode, and a U-Net --------------------------------------------------------------------- */

static void test_mode(void) {
    const dfs_kernels orig = dfs_get_kernels();
    dfs_set_kernels(DFS_KERNELS_FAST);
    unsetenv("DFS_BF16");
    const dfs_bf16_mode m = dfs_set_bf16(1);
    CHECK(m == (dfs_bf16_cpu() ? DFS_BF16_NATIVE : DFS_BF16_OFF),
          "without DFS_BF16 the mode follows the CPU (%s), got %s", dfs_bf16_cpu() ? "native" : "off",
          dfs_bf16_names[m]);
    CHECK(dfs_get_bf16() == m, "get returns what set gave");
    CHECK(dfs_set_bf16(0) == DFS_BF16_OFF && dfs_get_bf16() == DFS_BF16_OFF, "set(0) turns it off");
    setenv("DFS_BF16", "emulate", 1);
    CHECK(dfs_set_bf16(1) == DFS_BF16_EMULATED, "DFS_BF16=emulate: emulated");
    CHECK(strstr(dfs_kernels_path(), "+bf16-emulated") != NULL, "the path says so: %s", dfs_kernels_path());
    dfs_set_kernels(DFS_KERNELS_BLAS);
    CHECK(dfs_set_bf16(1) == DFS_BF16_OFF, "under the BLAS kernels bf16 stays off");
    dfs_set_kernels(DFS_KERNELS_FAST);
    dfs_set_bf16(0);
    CHECK(strstr(dfs_kernels_path(), "bf16") == NULL, "off again: %s", dfs_kernels_path());
    dfs_set_kernels(orig);
}

/* The fmnist U-Net's no-grad forward in bf16 against float32: about 20 convolutions deep, each
 * within 2 ub of its inputs' magnitudes (random-like rounding errors average down to about
 * ub / sqrt(3) per rounding in the L2 sense), so a relative L2 difference near ub is expected;
 * over 2^-5 = 8 ub would mean an error beyond rounding. And the same bits at 1 and 2 threads
 * (every image runs whole on one thread). */
static void test_unet(void) {
    if (getenv("DFS_SANITIZE")) {
        printf("test_bf16: the U-Net check skipped under the sanitizer (too slow)\n");
        return;
    }
    dfs_unet_config c;
    CHECK(dfs_unet_config_preset(&c, "fmnist") == DFS_OK, "preset");
    dfs_rng rng;
    dfs_rng_seed(&rng, 5);
    dfs_unet *u = dfs_unet_new(&c, &rng);
    CHECK(u != NULL, "U-Net: %s", dfs_last_error());
    if (!u) return;
    const int N = 4, S = c.image_size;
    const size_t n = (size_t)N * S * S;
    float *x = malloc(n * sizeof(float)), *y[3];
    dfs_rng_fill_normal(&rng, x, n);
    const int t[4] = {1, 250, 500, 999}, labels[4] = {0, 3, 7, 10};
    for (int k = 0; k < 3; k++) {
        dfs_set_bf16(k > 0);
        dfs_set_threads(k == 2 ? 2 : 1);
        dfs_graph *g = dfs_graph_new();
        dfs_graph_set_grad(g, 0);
        dfs_tensor *out = dfs_unet_forward(u, g, dfs_tensor_wrap(g, x, 4, (int[]){N, 1, S, S}), t, labels);
        y[k] = malloc(out->n * sizeof(float));
        memcpy(y[k], out->data, out->n * sizeof(float));
        dfs_graph_free(g);
    }
    dfs_set_bf16(0);
    dfs_set_threads(1);
    if (dfs_bf16_cpu()) { /* the whole forward on vdpbf16ps: the emulation's bits */
        unsetenv("DFS_BF16");
        CHECK(dfs_set_bf16(1) == DFS_BF16_NATIVE, "native where the CPU has AVX512_BF16");
        dfs_graph *g = dfs_graph_new();
        dfs_graph_set_grad(g, 0);
        dfs_tensor *out = dfs_unet_forward(u, g, dfs_tensor_wrap(g, x, 4, (int[]){N, 1, S, S}), t, labels);
        CHECK(memcmp(out->data, y[1], n * sizeof(float)) == 0, "the U-Net on vdpbf16ps gives the emulation's bits");
        dfs_graph_free(g);
        dfs_set_bf16(0);
        setenv("DFS_BF16", "emulate", 1);
    } else {
        printf("  fmnist U-Net on vdpbf16ps: not run, this CPU has no AVX512_BF16\n");
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)y[1][i] - y[0][i];
        num += d * d, den += (double)y[0][i] * y[0][i];
    }
    const double rel = sqrt(num / den);
    printf("  fmnist U-Net, N=%d: bf16 against float32, relative L2 difference %.3g (ub = 2^-8 = %.3g)\n", N, rel, UB);
    CHECK(rel > 0 && rel < 1.0 / 32, "U-Net in bf16: relative L2 difference %.3g", rel);
    CHECK(memcmp(y[1], y[2], n * sizeof(float)) == 0, "bf16 at 1 and 2 threads: the same bits");
    free(x), free(y[0]), free(y[1]), free(y[2]);
    dfs_unet_free(u);
}

int main(void) {
    dfs_rng rng;
    dfs_rng_seed(&rng, 11);
    test_round(&rng);
    test_pairs(&rng);
    test_kernel(&rng);
    test_dw_kernel(&rng);
    test_mode(); /* leaves DFS_BF16=emulate set, for what follows */
    if (dfs_get_kernels() == DFS_KERNELS_FAST) {
        test_ops(&rng);
        test_backward(&rng);
        test_unet();
    } else {
        printf("test_bf16: the op and U-Net checks need the FAST kernels (DFS_KERNELS=blas here)\n");
    }
    return check_summary("test_bf16");
}
