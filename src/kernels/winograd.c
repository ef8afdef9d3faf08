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

size_t dfs_winograd_scratch_floats(int Ci, int Co, int H, int W, int m) {
    const size_t L = (size_t)m * dfs_winograd_tiles(H) * dfs_winograd_tiles(W);
    return 16 * L * (size_t)(Ci + Co);
}

/* V[k][c][col] = (B^T d B)[k / 4][k % 4] for the tile at col, B^T = [1 0 -1 0; 0 1 1 0;
 * 0 -1 1 0; 0 1 0 -1]. One tile row of one plane at a time: the 16 stores of a tile go to 16
 * rows at the same column, consecutive along the tile row (so the loop vectorises). */
static void input_transform(float *V, const dfs_winograd_fwd *p) {
    const int th = dfs_winograd_tiles(p->H), tw = dfs_winograd_tiles(p->W), Wq = p->W + 2;
    const size_t T = (size_t)th * tw, L = (size_t)p->m * T, kstride = (size_t)p->Ci * L;
    for (int j = 0; j < p->m; j++)
        for (int c = 0; c < p->Ci; c++) {
            const float *pl = p->xp + ((size_t)j * p->Ci + c) * p->plane; // (Hq, Wq)
            for (int ty = 0; ty < th; ty++) {
                const float *r0 = pl + (size_t)(2 * ty) * Wq, *r1 = r0 + Wq, *r2 = r1 + Wq,
                            *r3 = r2 + Wq;
                float *v = V + (size_t)c * L + (size_t)j * T + (size_t)ty * tw;
#pragma omp simd
                for (int tx = 0; tx < tw; tx++) {
                    const int x0 = 2 * tx;
                    float d[4][4], t[4][4];
                    for (int q = 0; q < 4; q++) {
                        d[0][q] = r0[x0 + q], d[1][q] = r1[x0 + q];
                        d[2][q] = r2[x0 + q], d[3][q] = r3[x0 + q];
                    }
                    for (int q = 0; q < 4; q++) { /* t = B^T d */
                        t[0][q] = d[0][q] - d[2][q];
                        t[1][q] = d[1][q] + d[2][q];
                        t[2][q] = d[2][q] - d[1][q];
                        t[3][q] = d[1][q] - d[3][q];
                    }
                    for (int r = 0; r < 4; r++) { /* v = t B */
                        v[(size_t)(4 * r + 0) * kstride + tx] = t[r][0] - t[r][2];
                        v[(size_t)(4 * r + 1) * kstride + tx] = t[r][1] + t[r][2];
                        v[(size_t)(4 * r + 2) * kstride + tx] = t[r][2] - t[r][1];
                        v[(size_t)(4 * r + 3) * kstride + tx] = t[r][1] - t[r][3];
                    }
                }
            }
        }
}

/* out = A^T M A (+ bias, rowbias, res), A^T = [1 1 1 0; 0 1 -1 -1]; the outputs of a ragged
 * last tile beyond H or W are dropped. */
static void output_transform(const dfs_winograd_fwd *p, const float *M) {
    const int H = p->H, W = p->W, th = dfs_winograd_tiles(H), tw = dfs_winograd_tiles(W);
    const size_t T = (size_t)th * tw, L = (size_t)p->m * T, kstride = (size_t)p->Co * L;
    const size_t P = (size_t)H * W;
    for (int j = 0; j < p->m; j++)
        for (int co = 0; co < p->Co; co++) {
            float *o = p->out + ((size_t)j * p->Co + co) * P; // (H, W)
            const float *rs = p->res ? p->res + ((size_t)j * p->Co + co) * P : NULL;
            const float b = (p->bias ? p->bias[co] : 0.0f) +
                            (p->rowbias ? p->rowbias[(size_t)j * p->Co + co] : 0.0f);
            for (int ty = 0; ty < th; ty++) {
                const float *mm = M + (size_t)co * L + (size_t)j * T + (size_t)ty * tw;
                const int two_rows = 2 * ty + 1 < H;
                for (int tx = 0; tx < tw; tx++) {
                    float m[4][4], s[2][4];
                    for (int k = 0; k < 16; k++) m[k / 4][k % 4] = mm[(size_t)k * kstride + tx];
                    for (int q = 0; q < 4; q++) { /* s = A^T m */
                        s[0][q] = m[0][q] + m[1][q] + m[2][q];
                        s[1][q] = m[1][q] - m[2][q] - m[3][q];
                    }
                    const int ox = 2 * tx, oy = 2 * ty;
                    for (int r = 0; r < 1 + two_rows; r++) { /* y = s A */
                        const size_t at = (size_t)(oy + r) * W + ox;
                        float y0 = s[r][0] + s[r][1] + s[r][2] + b;
                        o[at] = rs ? y0 + rs[at] : y0;
                        if (ox + 1 < W) {
                            float y1 = s[r][1] - s[r][2] - s[r][3] + b;
                            o[at + 1] = rs ? y1 + rs[at + 1] : y1;
                        }
                    }
                }
            }
        }
}

void dfs_winograd_run(const dfs_winograd_fwd *p) {
    const int th = dfs_winograd_tiles(p->H), tw = dfs_winograd_tiles(p->W);
    const int L = p->m * th * tw, Ci = p->Ci, Co = p->Co;
    float *V = p->scratch;                 // (16, Ci, L)
    float *M = V + (size_t)16 * Ci * L;    // (16, Co, L)
    input_transform(V, p);
    for (int k = 0; k < 16; k++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Co, L, Ci, 1.0f,
                    p->U + (size_t)k * Co * Ci, Ci, V + (size_t)k * Ci * L, L, 0.0f,
                    M + (size_t)k * Co * L, L);
    output_transform(p, M);
}
