/* kernels.h - compute on raw arrays (pointer in, pointer out), shared by the ops: the
 * vectorisable exp and SiLU, GroupNorm's arithmetic (norm.c) and the implicit-GEMM convolution
 * kernels (igemm.c, AVX-512 with portable loops). Nothing here knows the tape. Not public API.
 *
 * Size key: N batch, Ci/Co channels in/out, H W input height width, KH KW kernel, Ho Wo output.
 * All arrays are row-major; images NCHW. */
#ifndef DFS_KERNELS_H
#define DFS_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "diffuse/base.h"
#include "diffuse/kernels.h"
#include "../base/private.h"

/* ---- vectorisable exp and SiLU ---- */

/* exp(x) in float with plain arithmetic, so that `omp simd` loops vectorise it: exp(x) =
 * 2^n exp(r), n = round(x log2 e), r = x - n ln 2 with ln 2 in two parts (Cody & Waite 1980),
 * exp(r) = 1 + r + r^2 P(r) with the degree-5 P of Cephes' expf (Moshier 1989). Relative
 * error below 3e-7 (tests/unit/test_ops_b.c); x is clamped to [-87, 88], where exp stays a normal
 * float; a NaN gives NaN. */
static inline float dfs_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = x * 1.44269504088896341f + 12582912.0f; /* + 1.5 * 2^23 rounds to an integer */
    n -= 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    n = n == n ? n : 0.0f; /* a NaN x: no NaN-to-int conversion (undefined); r and p carry it */
    int32_t e = ((int32_t)n + 127) * (1 << 23);
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

/* sigmoid(x) = 1 / (1 + exp(-x)) */
static inline float dfs_sigmoidf(float x) { return 1.0f / (1.0f + dfs_expf(-x)); }

/* ---- GroupNorm on channel planes (ops/norm.c; also used by the fused convolution) ----
 * Size key: C channels, G groups, S floats per channel plane (one image), M = (C/G) S.
 * The planes of one image come from one tensor or from two concatenated along channels:
 * channel c is a + c s for c < ca, else b + (c - ca) s. */
typedef struct {
    const float *a, *b;
    int ca;
    size_t s;
} dfs_planes;
static inline const float *dfs_plane(const dfs_planes *p, int c) {
    return c < p->ca ? p->a + (size_t)c * p->s : p->b + (size_t)(c - p->ca) * p->s;
}

/* Mean and 1/sqrt(var + eps) of group g (biased variance, sums in double, two passes). */
void dfs_gn_stats(const dfs_planes *x, int C, int G, int g, float eps, float *mu, float *rstd);
/* y[i] = silu(a x[i] + b) (silu set) or a x[i] + b, for i < n. */
void dfs_affine_act(float *y, const float *x, size_t n, float a, float b, int silu);
/* Where the input gradient of a GroupNorm goes: planes like dfs_planes, each part stored
 * (fresh) or added, or skipped when NULL. */
typedef struct {
    float *a, *b;
    int ca;
    size_t s;
    int fresh_a, fresh_b;
} dfs_planes_grad;
/* Backward of group g of one image. dy (C, S) contiguous is the gradient of the norm's output
 * (of the SiLU's when silu is set: dz = dy silu'(z) is then formed in gz (C, S), which may be
 * dy itself). Writes ab[2c] = sum dz, ab[2c+1] = sum dz xhat for the group's channels c and,
 * when dx is not NULL, the input gradient of the group's channels. */
void dfs_gn_backward_group(const dfs_planes_grad *dx, float *gz, const float *dy,
                           const dfs_planes *x, int C, int G, int g, float mu, float rstd,
                           const float *gamma, const float *beta, int silu, double *ab);
/* dgamma (C), dbeta (C) += the sums of ab (N, C, 2) over images; either may be NULL. */
void dfs_gn_param_grads(float *dgamma, float *dbeta, const double *ab, int N, int C);

/* ---- implicit-GEMM kernels for stride-1 convolutions (igemm.c) ----
 * Size key: R rows (output channels), K reduction length, Q positions (nq). */

/* Y (R, Q) = A (R, K) B (K, Q) + bias (+ res), B[k][q] = src[k][q], written to the output
 * lanes only: lane l of vector j (q = 16 j + l) is an output when bit l of vmask[j] is set,
 * and the set lanes of vector j go to consecutive indices from vdst[j] of dst[r] (and read
 * res[r] at the same indices). Lanes q >= nq of src are never read. */
typedef struct {
    int rows, K, nq;
    const float *apack;      /* A packed by dfs_igemm_pack or dfs_igemm_pack_flip */
    const float *const *src; /* (K) */
    const uint16_t *vmask;   /* ((nq + 15) / 16) */
    const int *vdst;         /* ((nq + 15) / 16) */
    float *const *dst;       /* (R) output planes */
    const float *bias;       /* (R) added to every output of a row, or NULL */
    const float *const *res; /* (R) planes added elementwise, or NULL */
    int accumulate;          /* 1: dst += Y, 0: dst = Y */
} dfs_igemm_fwd;

/* dw (R, K) += dy (R, Q) B (K, Q)^T with B[k][q] = src[k][q]: weight gradients. The sum runs
 * over nseg segments of nq positions, segment s starting at q = s * seg_stride (one per image
 * of a chunk; the gaps between them are skipped). */
typedef struct {
    int rows, K, nq;
    const float *const *dy;  /* (R) */
    const float *const *src; /* (K) */
    float *dw;               /* (R, K), accumulated */
    int nseg;                /* 0 or 1: one segment */
    size_t seg_stride;
} dfs_igemm_dw;

void dfs_igemm_fwd_run(const dfs_igemm_fwd *p);
void dfs_igemm_dw_run(const dfs_igemm_dw *p);
/* Floats of a packed A of rows x K. */
size_t dfs_igemm_pack_floats(int rows, int K);
/* Pack w (rows, K) row-major. */
void dfs_igemm_pack(float *ap, const float *w, int rows, int K);
/* Pack the transposed, spatially flipped kernel of w (Co, Ci, KHW): a matrix of Ci rows and
 * K = Co*KHW columns, element (ci, co*KHW + t) = w[co][ci][KHW-1-t] (the kernel of the input
 * gradient of a "same" convolution). */
void dfs_igemm_pack_flip(float *ap, const float *w, int Co, int Ci, int KHW);
/* vmask/vdst for positions q = oh*Wp + ow, q < nq, of which those with ow < Wo are outputs,
 * stored at oh*Wo + ow. */
void dfs_igemm_vecmap(uint16_t *vmask, int *vdst, int nq, int Wp, int Wo);
/* dfs_affine_act (y = silu(a x + b) or a x + b) with AVX-512 and masked tails when available:
 * for short rows, where the vector loop of dfs_affine_act would spend its time in the tail. */
void dfs_act_row(float *y, const float *x, size_t n, float a, float b, int silu);
/* rows x W floats of src into rows of W + 2 pw floats at dst: pw zeros, the row, pw zeros. */
void dfs_pad_rows(float *dst, const float *src, int rows, int W, int pw);
/* The same with y = a x + b (silu: then silu(y)) on the way: dfs_pad_rows of dfs_affine_act. */
void dfs_act_pad_rows(float *dst, const float *src, int rows, int W, int pw, float a, float b,
                      int silu);
/* 1 if the AVX-512 kernels run (the CPU has AVX-512F and the portable loops are not forced). */
int dfs_igemm_avx512(void);
/* 1 if the CPU has AVX-512F and DFS_CPU=avx2 does not hide it, whatever the tests force (read
 * once). */
int dfs_cpu_avx512(void);
/* Force the portable loops (tests); returns the previous setting. */
int dfs_igemm_force_portable(int on);

/* ---- Winograd F(2x2,3x3) and F(4x4,3x3) for stride-1, pad-1 3x3 convolutions (winograd.c) ----
 * Size key: m images of a chunk, th = ceil(H/t) x tw = ceil(W/t) tiles of t x t outputs each
 * (t = 2 or 4), L = m th tw, Hq = 2 th + 2 (F(2x2)) or H + 2 (F(4x4)) rows of W + 2 floats: the
 * zero-padded input planes (interior at row 1, column 1; every other entry zero, including the
 * extra bottom row of an odd H for F(2x2)). */

/* One chunk: out (m, Co, H, W) = conv3x3(x) + bias + rowbias + res, from the padded planes xp
 * (m, Ci) of plane floats each (plane >= Hq (W + 2), row stride W + 2), followed by at least
 * one zero float (an odd W reads one float past a plane's last row). scratch: at least
 * dfs_winograd_scratch_floats(Ci, Co, H, W, m) floats. Runs single-threaded BLAS calls. */
typedef struct {
    int m, Ci, Co, H, W;
    const float *U;       /* (16, Co, Ci) from dfs_winograd_filter */
    const float *xp;      /* (m, Ci, plane) padded input */
    size_t plane;         /* floats per padded plane, >= Hq * Wq */
    float *out;           /* (m, Co, H, W) */
    const float *bias;    /* (Co) or NULL */
    const float *rowbias; /* (m, Co) or NULL: a per-image bias (the U-Net's time embedding) */
    const float *res;     /* (m, Co, H, W) added, or NULL */
    float *scratch;
    int ty0, nty;         /* only tile rows [ty0, ty0 + nty) (output rows 2 ty0 ..), nty 0: all;
                             a block of rows keeps V and M in cache when one image is large */
    int tile;             /* 2 (or 0): F(2x2,3x3) as above; 4: F(4x4,3x3) (AVX-512 only: see
                             dfs_winograd_tile), tiles of 4 outputs, planes of H + 2 rows and no
                             slack (nothing outside them is read), any H and W */
} dfs_winograd_fwd;

/* The forward's and dA's tile: 4 (F(4x4,3x3)) where the AVX-512 kernels run
 * (dfs_igemm_avx512), else 2. */
int dfs_winograd_tile(void);
/* ceil(n / t): tiles of t outputs along a side of n. */
int dfs_winograd_tiles(int n, int t);
/* U (16, Co, Ci) = G g G^T of every 3x3 filter g of w (Co, Ci, 3, 3); tile 4: F(4x4,3x3)'s
 * U (36, Co, Ci). */
void dfs_winograd_filter(float *U, const float *w, int Co, int Ci, int tile);
/* Floats of the scratch of a chunk of m images: V (16, Ci, L) and M (16, Co, L); tile 4:
 * V (Ci, 36, L) and M (Co, 36, L). */
size_t dfs_winograd_scratch_floats(int Ci, int Co, int H, int W, int m, int tile);
void dfs_winograd_run(const dfs_winograd_fwd *p);
/* The weights' gradient of one image (winograd.c explains it): M ((t + 2)^2, Co, Ci) += the
 * products of its input tiles (padded planes xp, as in dfs_winograd_fwd with m = 1) with its
 * output gradient's t x t tiles (dy: Co planes of H x W, dy_plane floats apart); only tile rows
 * [ty0, ty0 + nty) (nty 0: all). F(2x2): even H and W. scratch: dfs_winograd_scratch_floats(Ci,
 * Co, t nty (or H), W, 1, t) floats. dfs_winograd_dw_finish then adds G^T M_k G to dw
 * (Co, Ci, 3, 3). */
typedef struct {
    int Ci, Co, H, W;
    const float *xp;
    size_t plane;
    const float *dy;
    size_t dy_plane;
    float *M;
    float *scratch;
    int ty0, nty;
    int tile; /* 2 (or 0), or 4 (F(4x4), AVX-512 only; any H and W, M (36, Co, Ci)) */
} dfs_winograd_dw;
void dfs_winograd_dw_run(const dfs_winograd_dw *p);
void dfs_winograd_dw_finish(float *dw, const float *M, int Co, int Ci, int tile);
/* Tests only: add eps to the entry G[1][0] of the filter transforms (1/2 in F(2x2), -1/6 in
 * F(4x4); 0 restores them); returns the previous eps. */
float dfs_winograd_test_perturb(float eps);
/* Tests and bench/winograd.c only: dfs_winograd_tile returns t (2, or 4 where AVX-512 runs) from now on, 0 undoes
 * it; returns the previous setting. */
int dfs_winograd_test_tile(int t);
/* dfs_get_conv_algo, dfs_set_conv_algo, dfs_conv_auto_count: include/diffuse/kernels.h */

/* ---- bfloat16 inputs and weights, float32 sums (bf16.c) ----
 * Size key: R rows, Q positions (nq) as above; C channels, C2 = ceil(C / 2) pairs of them,
 * K2 = C2 KHW pairs of the reduction. A word holds a pair: channel 2 c2 in its low 16 bits,
 * 2 c2 + 1 in its high 16 (zero past C). */

/* x rounded to bfloat16, to nearest with ties to even (a NaN stays a quiet NaN, an overflow
 * becomes infinity); and a bfloat16 widened back (exact). */
uint16_t dfs_bf16_round(float x);
float dfs_bf16_float(uint16_t h);
/* dst[i] = bf16(hi[i]) << 16 | bf16(lo[i]) for i < n; hi NULL: zeros. */
void dfs_bf16_pairs(uint32_t *dst, const float *lo, const float *hi, size_t n);
/* Pack w (R, C, KHW) as A (R, K2) of pair words, in dfs_igemm_pack's layout: row r, column
 * c2 KHW + t is the pair (w[r][2 c2][t], w[r][2 c2 + 1][t]); dfs_igemm_pack_floats(R, K2) words. */
void dfs_igemm_bf16_pack(uint32_t *ap, const float *w, int rows, int C, int KHW);

/* dfs_igemm_fwd with words: Y (R, Q) = sum over kp of both halves of A[r][kp] times both
 * halves of src[kp][q], the odd halves' product first, each added with one rounding to float32,
 * then + bias (+ res), stored as dfs_igemm_fwd does. */
typedef struct {
    int rows, K, nq;            /* K: pairs (K2) */
    const uint32_t *apack;      /* A packed by dfs_igemm_bf16_pack */
    const uint32_t *const *src; /* (K) pair planes, shifted by the tap */
    const uint16_t *vmask;
    const int *vdst;
    float *const *dst;
    const float *bias;
    const float *const *res;
    int accumulate;
} dfs_igemm_bf16_fwd;

/* Pack the flipped, transposed kernel of w (Co, Ci, KHW) as dfs_igemm_pack_flip does, pairing
 * output channels: row ci, column co2 KHW + t is the pair (w[2 co2][ci][KHW-1-t],
 * w[2 co2 + 1][ci][KHW-1-t]) (the input gradient's kernel, over pairs of dY's channels). */
void dfs_igemm_bf16_pack_flip(uint32_t *ap, const float *w, int Co, int Ci, int KHW);
/* dst[i] = bf16(src[i]) for i < n. */
void dfs_bf16_round_n(uint16_t *dst, const float *src, size_t n);

/* dfs_igemm_dw with bfloat16 rows: dw (R, K) += dy (R, Q) B (K, Q)^T over nseg segments, the
 * positions taken in pairs (q, q + 1) from even q of each segment: 16 lane sums per (r, k), each
 * adding the high position's product then the low one's with one rounding each, summed at the
 * end as halves of 8, 4, 2 and 1 lanes. */
typedef struct {
    int rows, K, nq;
    const uint16_t *const *dy;  /* (R) */
    const uint16_t *const *src; /* (K) */
    float *dw;                  /* (R, K), accumulated */
    int nseg;
    size_t seg_stride;
} dfs_igemm_bf16_dw;

/* The version that dfs_get_bf16 names: native, else emulated on AVX-512 (with AVX512BW), else
 * portable. */
void dfs_igemm_bf16_run(const dfs_igemm_bf16_fwd *p);
void dfs_igemm_bf16_dw_run(const dfs_igemm_bf16_dw *p);
/* A given version (tests): 0, or -1 when this CPU cannot run it. All give the same bits. */
typedef enum { DFS_BF16_KERNEL_PORTABLE, DFS_BF16_KERNEL_EMULATED, DFS_BF16_KERNEL_NATIVE } dfs_bf16_kernel;
int dfs_igemm_bf16_run_as(const dfs_igemm_bf16_fwd *p, dfs_bf16_kernel k);
int dfs_igemm_bf16_dw_run_as(const dfs_igemm_bf16_dw *p, dfs_bf16_kernel k);
/* 1 if the CPU has AVX512_BF16 (and AVX-512 is not turned off by DFS_CPU=avx2). */
int dfs_bf16_cpu(void);
/* Read the CPU's features now (dfs_get_kernels calls it before any threads). */
void dfs_bf16_read_env(void);

#endif
