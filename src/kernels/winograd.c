/* winograd.c - the stride-1, pad-1 3x3 convolution by Winograd's minimal filtering F(2x2,3x3)
 * and, on AVX-512, F(4x4,3x3) (below: the same structure with 6x6 tiles)
 * (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks", section 4.1):
 *   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
 * per 4x4 input tile d (stride 2) and 3x3 filter g, giving a 2x2 output tile; summed over input
 * channels, the elementwise products become 16 independent matrix products (eq. 12)
 *   M_k (Co, L) = U_k (Co, Ci) V_k (Ci, L),   k = 0..15 the positions of the 4x4 tile,
 * which run as OpenBLAS sgemm. 2.25x fewer multiplies than the direct convolution, paid for
 * with the transforms and a larger rounding error (tests/unit/test_winograd.c bounds it).
 *
 * Size key: m images in a chunk, Ci/Co channels, H W the image (input = output size),
 * th = ceil(H/2), tw = ceil(W/2) tiles per column and row, T = th*tw tiles per image,
 * L = m*T columns of a chunk, Hq = 2 th + 2 rows of W + 2 (one zero row/column of padding
 * on each side, and a second zero row at the bottom for an odd H). A ragged last tile reads
 * zeros and its extra outputs are dropped: for an odd W its fourth column is column W + 2 of
 * a row, which is the next row's column 0, a zero of the left padding (or, after the last row,
 * the next plane's top row, or the zeroed slack after the last plane).
 *
 * The caller (src/ops/conv.c) owns the threads: it hands each thread whole chunks of images,
 * and OpenBLAS runs serially inside that OpenMP region, as for the im2col path. */
#include "kernels.h"

#include <cblas.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WINO_X86 1
#define AVX512 __attribute__((target("avx512f")))
#endif

/* G (4x3), B^T (4x4), A^T (2x4) of F(2,3), Lavin & Gray eq. 7-8 (written out in the loops
 * below; only G is a table, so that the test can break one of its entries). */
static float wino_G[4][3] = {{1.0f, 0.0f, 0.0f}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0.0f, 0.0f, 1.0f}};

static double wino4_G[6][3];

float dfs_winograd_test_perturb(float eps) {
    float old = wino_G[1][0] - 0.5f;
    wino_G[1][0] = 0.5f + eps;
    wino4_G[1][0] = -1.0 / 6 + eps;
    return old;
}

static int forced_tile = 0; /* dfs_winograd_test_tile */

int dfs_winograd_test_tile(int t) {
    const int old = forced_tile;
    forced_tile = t;
    return old;
}

int dfs_winograd_tiles(int n, int t) { return (n + t - 1) / t; }

static void filter4(float *U, const float *w, int Co, int Ci);

/* U (16, Co, Ci): U[k][co][ci] = (G g G^T)[k / 4][k % 4] for g = w[co][ci] (3x3); F(4x4):
 * U (36, Co, Ci), k / 6 and k % 6. */
void dfs_winograd_filter(float *U, const float *w, int Co, int Ci, int tile) {
    if (tile == 4) {
        filter4(U, w, Co, Ci);
        return;
    }
    const size_t CC = (size_t)Co * Ci;
    for (size_t i = 0; i < CC; i++) {
        const float *g = w + 9 * i; // (3, 3)
        float t[4][3], u[4][4];
        for (int r = 0; r < 4; r++) /* t = G g */
            for (int c = 0; c < 3; c++)
                t[r][c] = wino_G[r][0] * g[c] + wino_G[r][1] * g[3 + c] + wino_G[r][2] * g[6 + c];
        for (int r = 0; r < 4; r++) /* u = t G^T */
            for (int c = 0; c < 4; c++)
                u[r][c] = t[r][0] * wino_G[c][0] + t[r][1] * wino_G[c][1] + t[r][2] * wino_G[c][2];
        for (int k = 0; k < 16; k++) U[(size_t)k * CC + i] = u[k / 4][k % 4];
    }
}

/* The end of the tile rows of a call: ty0 + nty, or all of them when nty is 0. */
static int tile_rows_end(const dfs_winograd_fwd *p) {
    const int th = dfs_winograd_tiles(p->H, p->tile == 4 ? 4 : 2);
    return p->nty > 0 && p->ty0 + p->nty < th ? p->ty0 + p->nty : th;
}

size_t dfs_winograd_scratch_floats(int Ci, int Co, int H, int W, int m, int tile) {
    const int t = tile == 4 ? 4 : 2;
    const size_t L = (size_t)m * dfs_winograd_tiles(H, t) * dfs_winograd_tiles(W, t);
    return (size_t)(t + 2) * (t + 2) * L * (size_t)(Ci + Co);
}

/* V[k][c][col] = (B^T d B)[k / 4][k % 4] for the tile at col, B^T = [1 0 -1 0; 0 1 1 0;
 * 0 -1 1 0; 0 1 0 -1]. One tile row of one plane at a time: the 16 stores of a tile go to 16
 * rows at the same column, consecutive along the tile row, and the loads are stride-2 runs,
 * so the loop over tiles vectorises (named scalars, no local arrays, to let it). */
static void input_transform(float *V, const dfs_winograd_fwd *p) {
    const int tw = dfs_winograd_tiles(p->W, 2), Wq = p->W + 2, ty0 = p->ty0, ty1 = tile_rows_end(p);
    const size_t T = (size_t)(ty1 - ty0) * tw, L = (size_t)p->m * T, ks = (size_t)p->Ci * L;
    for (int j = 0; j < p->m; j++)
        for (int c = 0; c < p->Ci; c++) {
            const float *pl = p->xp + ((size_t)j * p->Ci + c) * p->plane; // (Hq, W + 2)
            for (int ty = ty0; ty < ty1; ty++) {
                const float *restrict a = pl + (size_t)(2 * ty) * Wq, *restrict bb = a + Wq,
                                      *restrict cc = bb + Wq, *restrict d = cc + Wq;
                float *restrict v = V + (size_t)c * L + (size_t)j * T + (size_t)(ty - ty0) * tw;
#pragma omp simd
                for (int tx = 0; tx < tw; tx++) {
                    const int x = 2 * tx;
                    /* t = B^T d, column q */
                    const float t00 = a[x] - cc[x], t01 = a[x + 1] - cc[x + 1], t02 = a[x + 2] - cc[x + 2],
                                t03 = a[x + 3] - cc[x + 3];
                    const float t10 = bb[x] + cc[x], t11 = bb[x + 1] + cc[x + 1], t12 = bb[x + 2] + cc[x + 2],
                                t13 = bb[x + 3] + cc[x + 3];
                    const float t20 = cc[x] - bb[x], t21 = cc[x + 1] - bb[x + 1], t22 = cc[x + 2] - bb[x + 2],
                                t23 = cc[x + 3] - bb[x + 3];
                    const float t30 = bb[x] - d[x], t31 = bb[x + 1] - d[x + 1], t32 = bb[x + 2] - d[x + 2],
                                t33 = bb[x + 3] - d[x + 3];
                    /* v = t B */
                    v[0 * ks + tx] = t00 - t02, v[1 * ks + tx] = t01 + t02;
                    v[2 * ks + tx] = t02 - t01, v[3 * ks + tx] = t01 - t03;
                    v[4 * ks + tx] = t10 - t12, v[5 * ks + tx] = t11 + t12;
                    v[6 * ks + tx] = t12 - t11, v[7 * ks + tx] = t11 - t13;
                    v[8 * ks + tx] = t20 - t22, v[9 * ks + tx] = t21 + t22;
                    v[10 * ks + tx] = t22 - t21, v[11 * ks + tx] = t21 - t23;
                    v[12 * ks + tx] = t30 - t32, v[13 * ks + tx] = t31 + t32;
                    v[14 * ks + tx] = t32 - t31, v[15 * ks + tx] = t31 - t33;
                }
            }
        }
}

/* One tile row of one output plane: rows o0 (and o1 when not NULL) of W outputs, tiles
 * [0, n) whose both columns are inside W, from mm[k * ks + tx]; s = A^T m, y = s A + b
 * (+ the residual rows r0, r1). Inlined with constant has_res/two so each loop vectorises. */
static inline __attribute__((always_inline)) void out_row(float *restrict o0, float *restrict o1,
                                                          const float *restrict r0,
                                                          const float *restrict r1,
                                                          const float *restrict mm, size_t ks,
                                                          int n, float b, int has_res, int two) {
#pragma omp simd
    for (int tx = 0; tx < n; tx++) {
        const float m00 = mm[0 * ks + tx], m01 = mm[1 * ks + tx], m02 = mm[2 * ks + tx], m03 = mm[3 * ks + tx];
        const float m10 = mm[4 * ks + tx], m11 = mm[5 * ks + tx], m12 = mm[6 * ks + tx], m13 = mm[7 * ks + tx];
        const float m20 = mm[8 * ks + tx], m21 = mm[9 * ks + tx], m22 = mm[10 * ks + tx], m23 = mm[11 * ks + tx];
        const float m30 = mm[12 * ks + tx], m31 = mm[13 * ks + tx], m32 = mm[14 * ks + tx], m33 = mm[15 * ks + tx];
        const float s00 = m00 + m10 + m20, s01 = m01 + m11 + m21, s02 = m02 + m12 + m22, s03 = m03 + m13 + m23;
        float y0 = s00 + s01 + s02 + b, y1 = s01 - s02 - s03 + b;
        if (has_res) y0 += r0[2 * tx], y1 += r0[2 * tx + 1];
        o0[2 * tx] = y0, o0[2 * tx + 1] = y1;
        if (two) {
            const float s10 = m10 - m20 - m30, s11 = m11 - m21 - m31, s12 = m12 - m22 - m32,
                        s13 = m13 - m23 - m33;
            float z0 = s10 + s11 + s12 + b, z1 = s11 - s12 - s13 + b;
            if (has_res) z0 += r1[2 * tx], z1 += r1[2 * tx + 1];
            o1[2 * tx] = z0, o1[2 * tx + 1] = z1;
        }
    }
}

/* out = A^T M A (+ bias, rowbias, res), A^T = [1 1 1 0; 0 1 -1 -1]; the outputs of a ragged
 * last tile beyond H or W are dropped (an odd W: its last tile by scalar code). */
static void output_transform(const dfs_winograd_fwd *p, const float *M) {
    const int H = p->H, W = p->W, tw = dfs_winograd_tiles(W, 2), ty0 = p->ty0, ty1 = tile_rows_end(p);
    const int full = W / 2; /* tiles with both columns inside W */
    const size_t T = (size_t)(ty1 - ty0) * tw, L = (size_t)p->m * T, ks = (size_t)p->Co * L;
    const size_t P = (size_t)H * W;
    for (int j = 0; j < p->m; j++)
        for (int co = 0; co < p->Co; co++) {
            float *o = p->out + ((size_t)j * p->Co + co) * P; // (H, W)
            const float *rs = p->res ? p->res + ((size_t)j * p->Co + co) * P : NULL;
            const float b = (p->bias ? p->bias[co] : 0.0f) +
                            (p->rowbias ? p->rowbias[(size_t)j * p->Co + co] : 0.0f);
            for (int ty = ty0; ty < ty1; ty++) {
                const float *mm = M + (size_t)co * L + (size_t)j * T + (size_t)(ty - ty0) * tw;
                const int two = 2 * ty + 1 < H;
                float *o0 = o + (size_t)(2 * ty) * W, *o1 = two ? o0 + W : NULL;
                const float *r0 = rs ? rs + (size_t)(2 * ty) * W : NULL, *r1 = rs && two ? r0 + W : NULL;
                if (rs && two) out_row(o0, o1, r0, r1, mm, ks, full, b, 1, 1);
                else if (rs) out_row(o0, o1, r0, r1, mm, ks, full, b, 1, 0);
                else if (two) out_row(o0, o1, r0, r1, mm, ks, full, b, 0, 1);
                else out_row(o0, o1, r0, r1, mm, ks, full, b, 0, 0);
                if (full == tw) continue;
                /* the ragged last tile of an odd W: its first column only */
                const int tx = tw - 1, x = 2 * tx;
                float m[4][4];
                for (int k = 0; k < 16; k++) m[k / 4][k % 4] = mm[(size_t)k * ks + tx];
                const float y0 = (m[0][0] + m[1][0] + m[2][0]) + (m[0][1] + m[1][1] + m[2][1]) +
                                 (m[0][2] + m[1][2] + m[2][2]) + b;
                o0[x] = rs ? y0 + r0[x] : y0;
                if (two) {
                    const float z0 = (m[1][0] - m[2][0] - m[3][0]) + (m[1][1] - m[2][1] - m[3][1]) +
                                     (m[1][2] - m[2][2] - m[3][2]) + b;
                    o1[x] = rs ? z0 + r1[x] : z0;
                }
            }
        }
}

static void run4(const dfs_winograd_fwd *p);

void dfs_winograd_run(const dfs_winograd_fwd *p) {
    if (p->tile == 4) {
        run4(p);
        return;
    }
    const int L = p->m * (tile_rows_end(p) - p->ty0) * dfs_winograd_tiles(p->W, 2), Ci = p->Ci, Co = p->Co;
    float *V = p->scratch;                 // (16, Ci, L)
    float *M = V + (size_t)16 * Ci * L;    // (16, Co, L)
    input_transform(V, p);
    for (int k = 0; k < 16; k++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, L, Ci, 1.0f,
                    p->U + (size_t)k * Co * Ci, Ci, V + (size_t)k * Ci * L, L, 0.0f,
                    M + (size_t)k * Co * L, L);
    output_transform(p, M);
}

/* ---- F(4x4,3x3) -------------------------------------------------------------------------------
 * 6x6 input tiles at stride 4, a 4x4 output tile each, 36 products per tile (Lavin & Gray 2016,
 * section 4.2): 2.25 multiplies per output and input channel against F(2x2)'s 4 and the direct
 * sum's 9, for larger transforms and a larger rounding error (the test's bound). The matrices:
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * G's thirds are not floats: the filter transform runs in double and rounds once. The input
 * and output transforms are written so that every term of B^T d passes at most two roundings
 * (4 (d0 - d2) + (d4 - d2) for 4 d0 - 5 d2 + d4) and every term of A^T m at most three: the
 * factors 2, 4 and 8 are exact.
 * The planes are padded by one, (H + 2) rows of W + 2, as the direct kernel's, and nothing
 * outside them is read: the tiles past them read zeros. Any H and W.
 * V and M hold each channel's 36 rows together, V (Ci, 36, L) and M (Co, 36, L), so that one
 * tile's 36 values lie in one block of 36 L floats (the products run with ldb = ldc = 36 L):
 * with M as (36, Co, L) the output transform waited on its 36 streams (half its time at 14x14).
 * The transforms run on AVX-512 only (dfs_winograd_tile): without it F(2x2) serves. */
static double wino4_G[6][3] = {{0.25, 0, 0},
                               {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                               {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 24, 1.0 / 12, 1.0 / 6},
                               {1.0 / 24, -1.0 / 12, 1.0 / 6},
                               {0, 0, 1}};

/* K[6 r + c][3 a + b] = G[r][a] G[c][b]: u = G g G^T is u[k] = sum_j K[k][j] g[j], and the
 * weights' gradient G^T m G is sum_k K[k][j] m[k]. */
static void kron4(double K[36][9]) {
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 6; c++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) K[6 * r + c][3 * a + b] = wino4_G[r][a] * wino4_G[c][b];
}

#define FB 16 /* filters per block of the loops below, the lanes they vectorise over */

/* U (36, Co, Ci) = G g G^T in double, rounded once: blocks of FB filters, each output a sum
 * of 9 products (within a few 2^-53 of |G||g||G^T| before the rounding). */
static void filter4(float *U, const float *w, int Co, int Ci) {
    const size_t CC = (size_t)Co * Ci;
    double K[36][9];
    kron4(K);
    for (size_t i0 = 0; i0 < CC; i0 += FB) {
        const int n = CC - i0 < FB ? (int)(CC - i0) : FB;
        double g[9][FB] = {{0}};
        for (int l = 0; l < n; l++)
            for (int j = 0; j < 9; j++) g[j][l] = w[9 * (i0 + l) + j];
        for (int k = 0; k < 36; k++) {
            double acc[FB] = {0};
            for (int j = 0; j < 9; j++) {
                const double kj = K[k][j];
#pragma omp simd
                for (int l = 0; l < FB; l++) acc[l] += kj * g[j][l];
            }
            for (int l = 0; l < n; l++) U[(size_t)k * CC + i0 + l] = (float)acc[l];
        }
    }
}

/* dw (Co, Ci, 3, 3) += G^T M_k G for M (36, Co, Ci), in double. */
static void finish4(float *dw, const float *M, size_t CC) {
    double K[36][9];
    kron4(K);
    for (size_t i0 = 0; i0 < CC; i0 += FB) {
        const int n = CC - i0 < FB ? (int)(CC - i0) : FB;
        double acc[9][FB] = {{0}};
        for (int k = 0; k < 36; k++) {
            double m[FB] = {0};
            for (int l = 0; l < n; l++) m[l] = M[(size_t)k * CC + i0 + l];
            for (int j = 0; j < 9; j++) {
                const double kj = K[k][j];
#pragma omp simd
                for (int l = 0; l < FB; l++) acc[j][l] += kj * m[l];
            }
        }
        for (int l = 0; l < n; l++)
            for (int j = 0; j < 9; j++) dw[9 * (i0 + l) + j] += (float)acc[j][l];
    }
}

#ifdef WINO_X86
/* ---- F(4x4,3x3) on AVX-512 -----------------------------------------------------------------
 * One tile row of a plane at a time, in groups of up to 7 tiles: a group's 30 input columns fit
 * two 16-lane registers per row, so B^T runs down the rows on whole registers, and B across the
 * columns takes six two-register permutes per row of B^T d, lane l picking column 4 l + j of
 * its tile (tiles in lanes 0..6). The output transform goes the other way: A^T down the rows
 * with tiles in lanes, A across, and four permutes interleave the 4 outputs of each tile into
 * the output row. Masked loads read nothing past the padded plane (zeros instead) and masked
 * stores write nothing past H x W. The operations are the ones the header above writes out,
 * with an FMA where a multiply by 2, 4 or 8 (exact) meets an addition, so each term passes
 * no more roundings than it counts. */
#define BT6V(o, d0, d1, d2, d3, d4, d5)                                                           \
    const __m512 o##a = _mm512_sub_ps(d4, d2), o##b = _mm512_fnmadd_ps(four, d2, d4),            \
                 o##c = _mm512_fnmadd_ps(four, d1, d3),                                          \
                 o##d = _mm512_mul_ps(two, _mm512_sub_ps(d3, d1));                                \
    const __m512 o##0 = _mm512_fmadd_ps(four, _mm512_sub_ps(d0, d2), o##a),                      \
                 o##1 = _mm512_add_ps(o##b, o##c), o##2 = _mm512_sub_ps(o##b, o##c),              \
                 o##3 = _mm512_add_ps(o##a, o##d), o##4 = _mm512_sub_ps(o##a, o##d),              \
                 o##5 = _mm512_fmadd_ps(four, _mm512_sub_ps(d1, d3), _mm512_sub_ps(d5, d3))
#define AT6V(o, m0, m1, m2, m3, m4, m5)                                                           \
    const __m512 o##p = _mm512_add_ps(m1, m2), o##q = _mm512_sub_ps(m1, m2),                     \
                 o##r = _mm512_add_ps(m3, m4), o##s = _mm512_sub_ps(m3, m4);                     \
    const __m512 o##0 = _mm512_add_ps(_mm512_add_ps(m0, o##p), o##r),                            \
                 o##1 = _mm512_fmadd_ps(two, o##s, o##q), o##2 = _mm512_fmadd_ps(four, o##r, o##p), \
                 o##3 = _mm512_add_ps(_mm512_fmadd_ps(eight, o##s, o##q), m5)

static __mmask16 lanes(int n) { return n <= 0 ? 0 : n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1); }

/* The permute that gives lane l (< 7) column 4 l + j of a two-register row. */
AVX512 static __m512i column_pick(int j) {
    int e[16];
    for (int l = 0; l < 16; l++) e[l] = l < 7 ? 4 * l + j : j;
    return _mm512_loadu_si512(e);
}

/* The lanes m of e0..e5 into rows p, p + ks, .. p + 5 ks. */
AVX512 static inline void store6(float *p, size_t ks, __mmask16 m, __m512 e0, __m512 e1, __m512 e2, __m512 e3,
                                 __m512 e4, __m512 e5) {
    _mm512_mask_storeu_ps(p, m, e0);
    _mm512_mask_storeu_ps(p + ks, m, e1);
    _mm512_mask_storeu_ps(p + 2 * ks, m, e2);
    _mm512_mask_storeu_ps(p + 3 * ks, m, e3);
    _mm512_mask_storeu_ps(p + 4 * ks, m, e4);
    _mm512_mask_storeu_ps(p + 5 * ks, m, e5);
}

AVX512 static void input_transform4_avx512(float *V, const dfs_winograd_fwd *p) {
    const int H = p->H, W = p->W, tw = dfs_winograd_tiles(W, 4), Wq = W + 2;
    const int ty0 = p->ty0, ty1 = tile_rows_end(p);
    const size_t T = (size_t)(ty1 - ty0) * tw, L = (size_t)p->m * T, ks = L;
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    __m512i idx[6];
    for (int j = 0; j < 6; j++) idx[j] = column_pick(j);
    for (int j = 0; j < p->m; j++)
        for (int c = 0; c < p->Ci; c++) {
            const float *pl = p->xp + ((size_t)j * p->Ci + c) * p->plane; // (H + 2, W + 2)
            for (int ty = ty0; ty < ty1; ty++)
                for (int g = 0; g < tw; g += 7) {
                    const int x0 = 4 * g, ng = tw - g < 7 ? tw - g : 7;
                    const __mmask16 mlo = lanes(Wq - x0), mhi = lanes(Wq - x0 - 16), mst = lanes(ng);
                    __m512 lo[6], hi[6];
                    for (int i = 0; i < 6; i++) {
                        const int y = 4 * ty + i;
                        const float *r = pl + (size_t)(y <= H + 1 ? y : 0) * Wq + x0;
                        lo[i] = _mm512_maskz_loadu_ps(y <= H + 1 ? mlo : 0, r);
                        hi[i] = _mm512_maskz_loadu_ps(y <= H + 1 ? mhi : 0, r + 16);
                    }
                    /* t = B^T d on both halves */
                    BT6V(l, lo[0], lo[1], lo[2], lo[3], lo[4], lo[5]);
                    BT6V(h, hi[0], hi[1], hi[2], hi[3], hi[4], hi[5]);
                    const __m512 tl[6] = {l0, l1, l2, l3, l4, l5}, th_[6] = {h0, h1, h2, h3, h4, h5};
                    float *v = V + (size_t)c * 36 * L + (size_t)j * T + (size_t)(ty - ty0) * tw + g;
                    for (int i = 0; i < 6; i++) {
                        const __m512 d0 = _mm512_permutex2var_ps(tl[i], idx[0], th_[i]),
                                     d1 = _mm512_permutex2var_ps(tl[i], idx[1], th_[i]),
                                     d2 = _mm512_permutex2var_ps(tl[i], idx[2], th_[i]),
                                     d3 = _mm512_permutex2var_ps(tl[i], idx[3], th_[i]),
                                     d4 = _mm512_permutex2var_ps(tl[i], idx[4], th_[i]),
                                     d5 = _mm512_permutex2var_ps(tl[i], idx[5], th_[i]);
                        BT6V(e, d0, d1, d2, d3, d4, d5);
                        store6(v + (size_t)(6 * i) * ks, ks, mst, e0, e1, e2, e3, e4, e5);
                    }
                }
        }
}

AVX512 static void output_transform4_avx512(const dfs_winograd_fwd *p, const float *M) {
    const int H = p->H, W = p->W, tw = dfs_winograd_tiles(W, 4);
    const int ty0 = p->ty0, ty1 = tile_rows_end(p);
    const size_t T = (size_t)(ty1 - ty0) * tw, L = (size_t)p->m * T, ks = L;
    const size_t P = (size_t)H * W;
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f), eight = _mm512_set1_ps(8.0f);
    int e1[16], e2[16], e3[16];
    for (int l = 0; l < 16; l++) {
        e1[l] = (l & 1 ? 16 : 0) + l / 2;             /* a0 b0 a1 b1 .. a7 b7 */
        e2[l] = (l & 2 ? 16 : 0) + 2 * (l / 4) + (l & 1); /* pairs of both: tiles 0..3 */
        e3[l] = e2[l] + 8;                             /* tiles 4..7 */
    }
    const __m512i i1 = _mm512_loadu_si512(e1), i2 = _mm512_loadu_si512(e2), i3 = _mm512_loadu_si512(e3);
    for (int j = 0; j < p->m; j++)
        for (int co = 0; co < p->Co; co++) {
            float *o = p->out + ((size_t)j * p->Co + co) * P; // (H, W)
            const float *res = p->res ? p->res + ((size_t)j * p->Co + co) * P : NULL;
            const __m512 b = _mm512_set1_ps((p->bias ? p->bias[co] : 0.0f) +
                                            (p->rowbias ? p->rowbias[(size_t)j * p->Co + co] : 0.0f));
            for (int ty = ty0; ty < ty1; ty++)
                for (int g = 0; g < tw; g += 7) {
                    const int x0 = 4 * g, ng = tw - g < 7 ? tw - g : 7;
                    const __mmask16 mld = lanes(ng), mlo = lanes(W - x0 < 28 ? W - x0 : 28),
                                    mhi = lanes((W - x0 < 28 ? W - x0 : 28) - 16);
                    const float *mm = M + (size_t)co * 36 * L + (size_t)j * T + (size_t)(ty - ty0) * tw + g;
                    __m512 s[4][6];
                    for (int c = 0; c < 6; c++) {
                        const __m512 m0 = _mm512_maskz_loadu_ps(mld, mm + (size_t)(c)*ks),
                                     m1 = _mm512_maskz_loadu_ps(mld, mm + (size_t)(6 + c) * ks),
                                     m2 = _mm512_maskz_loadu_ps(mld, mm + (size_t)(12 + c) * ks),
                                     m3 = _mm512_maskz_loadu_ps(mld, mm + (size_t)(18 + c) * ks),
                                     m4 = _mm512_maskz_loadu_ps(mld, mm + (size_t)(24 + c) * ks),
                                     m5 = _mm512_maskz_loadu_ps(mld, mm + (size_t)(30 + c) * ks);
                        AT6V(a, m0, m1, m2, m3, m4, m5);
                        s[0][c] = a0, s[1][c] = a1, s[2][c] = a2, s[3][c] = a3;
                    }
                    for (int r = 0; r < 4 && 4 * ty + r < H; r++) {
                        AT6V(e, s[r][0], s[r][1], s[r][2], s[r][3], s[r][4], s[r][5]);
                        const __m512 p01 = _mm512_permutex2var_ps(e0, i1, e1),
                                     p23 = _mm512_permutex2var_ps(e2, i1, e3);
                        __m512 ylo = _mm512_add_ps(_mm512_permutex2var_ps(p01, i2, p23), b),
                               yhi = _mm512_add_ps(_mm512_permutex2var_ps(p01, i3, p23), b);
                        const size_t off = (size_t)(4 * ty + r) * W + x0;
                        if (res) {
                            ylo = _mm512_add_ps(ylo, _mm512_maskz_loadu_ps(mlo, res + off));
                            yhi = _mm512_add_ps(yhi, _mm512_maskz_loadu_ps(mhi, res + off + 16));
                        }
                        _mm512_mask_storeu_ps(o + off, mlo, ylo);
                        _mm512_mask_storeu_ps(o + off + 16, mhi, yhi);
                    }
                }
        }
}
/* dW's transform of dY: U'[co][k][col] = (A y A^T)[k / 6][k % 6] for the 4x4 tile y of dY
 * (rows past H and columns past W read as zeros), A = (A^T)^T (6x4):
 *   z0 = y0, z1 = (y0 + y2) + (y1 + y3), z2 = (y0 + y2) - (y1 + y3),
 *   z3 = (y0 + 4 y2) + 2 (y1 + 4 y3), z4 = (y0 + 4 y2) - 2 (y1 + 4 y3), z5 = y3,
 * down the rows on whole registers (tiles in lanes, after four permutes per row pick column
 * 4 l + j of tile l), then across. */
#define A4V(o, y0, y1, y2, y3)                                                                    \
    const __m512 o##e = _mm512_add_ps(y0, y2), o##f = _mm512_add_ps(y1, y3),                     \
                 o##g = _mm512_fmadd_ps(four, y2, y0), o##h = _mm512_mul_ps(two, _mm512_fmadd_ps(four, y3, y1)); \
    const __m512 o##0 = y0, o##1 = _mm512_add_ps(o##e, o##f), o##2 = _mm512_sub_ps(o##e, o##f),  \
                 o##3 = _mm512_add_ps(o##g, o##h), o##4 = _mm512_sub_ps(o##g, o##h), o##5 = y3

AVX512 static void dy_transform4_avx512(float *U, const dfs_winograd_dw *p, int ty1) {
    const int H = p->H, W = p->W, tw = dfs_winograd_tiles(W, 4), ty0 = p->ty0;
    const size_t L = (size_t)(ty1 - ty0) * tw;
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    __m512i idx[4];
    for (int j = 0; j < 4; j++) idx[j] = column_pick(j);
    for (int co = 0; co < p->Co; co++) {
        const float *d = p->dy + (size_t)co * p->dy_plane; // (H, W)
        for (int ty = ty0; ty < ty1; ty++)
            for (int g = 0; g < tw; g += 7) {
                const int x0 = 4 * g, ng = tw - g < 7 ? tw - g : 7, vc = W - x0 < 28 ? W - x0 : 28;
                const __mmask16 mlo = lanes(vc), mhi = lanes(vc - 16), mst = lanes(ng);
                __m512 y[4][4]; /* y[i][j]: row i, column j of each tile */
                for (int i = 0; i < 4; i++) {
                    const int row = 4 * ty + i;
                    const float *r = d + (size_t)(row < H ? row : 0) * W + x0;
                    const __m512 lo = _mm512_maskz_loadu_ps(row < H ? mlo : 0, r),
                                 hi = _mm512_maskz_loadu_ps(row < H ? mhi : 0, r + 16);
                    for (int j = 0; j < 4; j++) y[i][j] = _mm512_permutex2var_ps(lo, idx[j], hi);
                }
                __m512 z[6][4]; /* A y: row a, column j */
                for (int j = 0; j < 4; j++) {
                    A4V(c, y[0][j], y[1][j], y[2][j], y[3][j]);
                    z[0][j] = c0, z[1][j] = c1, z[2][j] = c2, z[3][j] = c3, z[4][j] = c4, z[5][j] = c5;
                }
                float *u = U + (size_t)co * 36 * L + (size_t)(ty - ty0) * tw + g;
                for (int a = 0; a < 6; a++) {
                    A4V(e, z[a][0], z[a][1], z[a][2], z[a][3]);
                    store6(u + (size_t)(6 * a) * L, L, mst, e0, e1, e2, e3, e4, e5);
                }
            }
    }
}

/* F(4x4) dW of one image's tile rows: V (Ci, 36, L) from the input transform, U' (Co, 36, L)
 * from dY's, M (36, Co, Ci) += U'_k V_k^T. */
static void dw_run4(const dfs_winograd_dw *p) {
    const dfs_winograd_fwd f = {.m = 1, .Ci = p->Ci, .Co = p->Co, .H = p->H, .W = p->W, .xp = p->xp,
                                .plane = p->plane, .ty0 = p->ty0, .nty = p->nty, .tile = 4};
    const int ty1 = tile_rows_end(&f);
    const size_t L = (size_t)(ty1 - p->ty0) * dfs_winograd_tiles(p->W, 4), CC = (size_t)p->Co * p->Ci;
    float *V = p->scratch;                 // (Ci, 36, L)
    float *U = V + (size_t)36 * p->Ci * L; // (Co, 36, L)
    input_transform4_avx512(V, &f);
    dy_transform4_avx512(U, p, ty1);
    for (int k = 0; k < 36; k++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->Co, p->Ci, (int)L, 1.0f, U + (size_t)k * L,
                    (int)(36 * L), V + (size_t)k * L, (int)(36 * L), 1.0f, p->M + (size_t)k * CC, p->Ci);
}
#endif

static void run4(const dfs_winograd_fwd *p) {
#ifdef WINO_X86
    const int L = p->m * (tile_rows_end(p) - p->ty0) * dfs_winograd_tiles(p->W, 4), Ci = p->Ci, Co = p->Co;
    float *V = p->scratch;              // (Ci, 36, L)
    float *M = V + (size_t)36 * Ci * L; // (Co, 36, L)
    input_transform4_avx512(V, p);
    for (int k = 0; k < 36; k++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, L, Ci, 1.0f,
                    p->U + (size_t)k * Co * Ci, Ci, V + (size_t)k * L, 36 * L, 0.0f,
                    M + (size_t)k * L, 36 * L);
    output_transform4_avx512(p, M);
#else
    (void)p;
#endif
}

int dfs_winograd_tile(void) {
#ifdef WINO_X86
    if (forced_tile) return forced_tile == 4 && dfs_igemm_avx512() ? 4 : 2;
    return dfs_igemm_avx512() ? 4 : 2;
#else
    return 2;
#endif
}

/* ---- the weights' gradient ----------------------------------------------------------------
 * The forward is linear in the filter: per tile Y = A^T [(G g G^T) (.) V] A, V = B^T d B, so
 * with <P, Q> the sum of the entrywise products,
 *   <dY, Y> = <A dY A^T, (G g G^T) (.) V> = <G^T [(A dY A^T) (.) V] G, g>,
 * and dL/dg = G^T [ sum over tiles and images of (A dY A^T) (.) V ] G: the input transform
 * of the forward, a transform of each 2x2 tile of dY (A = [1 0; 1 1; 1 -1; 0 -1]), 16 matrix
 * products summed over the tiles, M_k (Co, Ci) += U'_k (Co, L) V_k (Ci, L)^T, and one filter
 * transform back per call (dfs_winograd_dw_finish). 4 multiplies per (co, ci) and output pixel
 * in the products against 9 for the direct sum. Even H and W only (no ragged tiles). */
void dfs_winograd_dw_run(const dfs_winograd_dw *p) {
#ifdef WINO_X86
    if (p->tile == 4) {
        dw_run4(p);
        return;
    }
#endif
    const dfs_winograd_fwd f = {.m = 1, .Ci = p->Ci, .Co = p->Co, .H = p->H, .W = p->W, .xp = p->xp,
                                .plane = p->plane, .ty0 = p->ty0, .nty = p->nty};
    const int tw = dfs_winograd_tiles(p->W, 2), ty0 = p->ty0, ty1 = tile_rows_end(&f), W = p->W;
    const size_t L = (size_t)(ty1 - ty0) * tw, ks = (size_t)p->Co * L;
    float *V = p->scratch;                 // (16, Ci, L)
    float *U = V + (size_t)16 * p->Ci * L; // (16, Co, L)
    input_transform(V, &f);
    for (int co = 0; co < p->Co; co++) {
        const float *d = p->dy + (size_t)co * p->dy_plane; // (H, W)
        for (int ty = ty0; ty < ty1; ty++) {
            const float *restrict r0 = d + (size_t)(2 * ty) * W, *restrict r1 = r0 + W;
            float *restrict u = U + (size_t)co * L + (size_t)(ty - ty0) * tw;
#pragma omp simd
            for (int tx = 0; tx < tw; tx++) {
                const float a = r0[2 * tx], b = r0[2 * tx + 1], c = r1[2 * tx], e = r1[2 * tx + 1];
                /* t = A dy: rows (a, b), (a + c, b + e), (a - c, b - e), (-c, -e); u = t A^T */
                const float t10 = a + c, t11 = b + e, t20 = a - c, t21 = b - e;
                u[0 * ks + tx] = a, u[1 * ks + tx] = a + b, u[2 * ks + tx] = a - b, u[3 * ks + tx] = -b;
                u[4 * ks + tx] = t10, u[5 * ks + tx] = t10 + t11, u[6 * ks + tx] = t10 - t11, u[7 * ks + tx] = -t11;
                u[8 * ks + tx] = t20, u[9 * ks + tx] = t20 + t21, u[10 * ks + tx] = t20 - t21, u[11 * ks + tx] = -t21;
                u[12 * ks + tx] = -c, u[13 * ks + tx] = -c - e, u[14 * ks + tx] = e - c, u[15 * ks + tx] = e;
            }
        }
    }
    const size_t CC = (size_t)p->Co * p->Ci;
    for (int k = 0; k < 16; k++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->Co, p->Ci, (int)L, 1.0f, U + (size_t)k * ks,
                    (int)L, V + (size_t)k * p->Ci * L, (int)L, 1.0f, p->M + (size_t)k * CC, p->Ci);
}

void dfs_winograd_dw_finish(float *dw, const float *M, int Co, int Ci, int tile) {
    const size_t CC = (size_t)Co * Ci;
    if (tile == 4) {
        finish4(dw, M, CC);
        return;
    }
    for (size_t i = 0; i < CC; i++) {
        float m[4][4], s[3][4];
        for (int k = 0; k < 16; k++) m[k / 4][k % 4] = M[(size_t)k * CC + i];
        for (int r = 0; r < 3; r++) /* s = G^T m */
            for (int c = 0; c < 4; c++)
                s[r][c] = wino_G[0][r] * m[0][c] + wino_G[1][r] * m[1][c] + wino_G[2][r] * m[2][c] +
                          wino_G[3][r] * m[3][c];
        for (int r = 0; r < 3; r++) /* dw += s G */
            for (int c = 0; c < 3; c++)
                dw[9 * i + 3 * r + c] +=
                    s[r][0] * wino_G[0][c] + s[r][1] * wino_G[1][c] + s[r][2] * wino_G[2][c] + s[r][3] * wino_G[3][c];
    }
}
