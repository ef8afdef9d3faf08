/* winograd.c - the stride-1, pad-1 3x3 convolution by Winograd's minimal filtering F(2x2,3x3)
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

/* G (4x3), B^T (4x4), A^T (2x4) of F(2,3), Lavin & Gray eq. 7-8 (written out in the loops
 * below; only G is a table, so that the test can break one of its entries). */
static float wino_G[4][3] = {{1.0f, 0.0f, 0.0f}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0.0f, 0.0f, 1.0f}};

float dfs_winograd_test_perturb(float eps) {
    float old = wino_G[1][0] - 0.5f;
    wino_G[1][0] = 0.5f + eps;
    return old;
}

int dfs_winograd_tiles(int n) { return (n + 1) / 2; }

/* U (16, Co, Ci): U[k][co][ci] = (G g G^T)[k / 4][k % 4] for g = w[co][ci] (3x3). */
void dfs_winograd_filter(float *U, const float *w, int Co, int Ci) {
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
    const int th = dfs_winograd_tiles(p->H);
    return p->nty > 0 && p->ty0 + p->nty < th ? p->ty0 + p->nty : th;
}

size_t dfs_winograd_scratch_floats(int Ci, int Co, int H, int W, int m) {
    const size_t L = (size_t)m * dfs_winograd_tiles(H) * dfs_winograd_tiles(W);
    return 16 * L * (size_t)(Ci + Co);
}

/* V[k][c][col] = (B^T d B)[k / 4][k % 4] for the tile at col, B^T = [1 0 -1 0; 0 1 1 0;
 * 0 -1 1 0; 0 1 0 -1]. One tile row of one plane at a time: the 16 stores of a tile go to 16
 * rows at the same column, consecutive along the tile row, and the loads are stride-2 runs,
 * so the loop over tiles vectorises (named scalars, no local arrays, to let it). */
static void input_transform(float *V, const dfs_winograd_fwd *p) {
    const int tw = dfs_winograd_tiles(p->W), Wq = p->W + 2, ty0 = p->ty0, ty1 = tile_rows_end(p);
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
    const int H = p->H, W = p->W, tw = dfs_winograd_tiles(W), ty0 = p->ty0, ty1 = tile_rows_end(p);
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

void dfs_winograd_run(const dfs_winograd_fwd *p) {
    const int L = p->m * (tile_rows_end(p) - p->ty0) * dfs_winograd_tiles(p->W), Ci = p->Ci, Co = p->Co;
    float *V = p->scratch;                 // (16, Ci, L)
    float *M = V + (size_t)16 * Ci * L;    // (16, Co, L)
    input_transform(V, p);
    for (int k = 0; k < 16; k++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, L, Ci, 1.0f,
                    p->U + (size_t)k * Co * Ci, Ci, V + (size_t)k * Ci * L, L, 0.0f,
                    M + (size_t)k * Co * L, L);
    output_transform(p, M);
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
    const dfs_winograd_fwd f = {.m = 1, .Ci = p->Ci, .Co = p->Co, .H = p->H, .W = p->W, .xp = p->xp,
                                .plane = p->plane, .ty0 = p->ty0, .nty = p->nty};
    const int tw = dfs_winograd_tiles(p->W), ty0 = p->ty0, ty1 = tile_rows_end(&f), W = p->W;
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

void dfs_winograd_dw_finish(float *dw, const float *M, int Co, int Ci) {
    const size_t CC = (size_t)Co * Ci;
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
