/* norm.c - the arithmetic of GroupNorm on raw arrays, shared by the GroupNorm op
 * (src/ops/norm.c) and the fused convolution (src/ops/conv.c, src/kernels/igemm.c): the
 * statistics of one group, the affine map with optional SiLU, and the backward of one group. */
#include "kernels.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- GroupNorm, optionally followed by SiLU --------------------------------------------------
 * With silu set the op is y = silu(z), z = GroupNorm(x) (the norm-then-activation pair of every
 * U-Net ResBlock), in one pass and without keeping z: backward recomputes z from x and the saved
 * mu, rstd (z = x a + b exactly as forward computes it) and uses
 *   dz = dy s(z) (1 + z (1 - s(z))),  s = sigmoid  (Elfwing et al. 2018, eq. 3)
 * in place of dy in the GroupNorm backward above. The per-group helpers below work on channel
 * planes that may come from two tensors, so that the fused convolution (ops/conv.c) normalises
 * a channel concatenation without forming it. */

void dfs_gn_stats(const dfs_planes *x, int C, int G, int g, float eps, float *mu, float *rstd) {
    /* One pass over the group: sums of d = x - x0 and d^2 in double, with x0 the group's first
     * value (the shift keeps E[d^2] - E[d]^2 free of cancellation unless the mean were ~1e8
     * standard deviations from x0; Chan, Golub & LeVeque 1983, "Algorithms for computing the
     * sample variance", sec. 3). */
    const int Cg = C / G;
    const size_t S = x->s;
    const double M = (double)Cg * (double)S;
    const double x0 = dfs_plane(x, g * Cg)[0];
    double s = 0, q = 0;
    for (int c = g * Cg; c < (g + 1) * Cg; c++) {
        const float *xc = dfs_plane(x, c); // (S)
#pragma omp simd reduction(+ : s, q)
        for (size_t i = 0; i < S; i++) {
            double d = xc[i] - x0;
            s += d;
            q += d * d;
        }
    }
    const double md = s / M, v = q / M - md * md;
    *mu = (float)(x0 + md);
    *rstd = (float)(1.0 / sqrt((v > 0.0 ? v : 0.0) + eps));
}

void dfs_affine_act(float *y, const float *x, size_t n, float a, float b, int silu) {
    if (silu) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float z = x[i] * a + b;
            y[i] = z * dfs_sigmoidf(z);
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = x[i] * a + b;
    }
}

void dfs_gn_backward_group(const dfs_planes_grad *dx, float *gz, const float *dy,
                           const dfs_planes *x, int C, int G, int g, float mu, float rstd,
                           const float *gamma, const float *beta, int silu, double *ab) {
    const int Cg = C / G, g0 = g * Cg;
    const size_t S = x->s;
    const float m = mu, r = rstd;
    double sg = 0, sgx = 0; /* sum gamma dz, sum gamma dz xhat */
    for (int c = g0; c < g0 + Cg; c++) {
        const float gm = gamma ? gamma[c] : 1.0f;
        const float *xc = dfs_plane(x, c), *dyc = dy + (size_t)c * S; // (S)
        double A = 0, B = 0;
        if (silu) {
            const float bt = beta ? beta[c] : 0.0f;
            const float a = r * gm, b = bt - m * a; /* z = x a + b, as in forward */
            float *gc = gz + (size_t)c * S;
#pragma omp simd reduction(+ : A, B)
            for (size_t s = 0; s < S; s++) {
                float z = xc[s] * a + b, sz = dfs_sigmoidf(z);
                float d = dyc[s] * sz * (1.0f + z * (1.0f - sz));
                gc[s] = d;
                A += d;
                B += d * ((xc[s] - m) * r);
            }
        } else {
#pragma omp simd reduction(+ : A, B)
            for (size_t s = 0; s < S; s++) {
                A += dyc[s];
                B += dyc[s] * ((xc[s] - m) * r);
            }
        }
        ab[2 * c] = A;
        ab[2 * c + 1] = B;
        sg += gm * A;
        sgx += gm * B;
    }
    if (!dx) return;
    const double M = (double)Cg * (double)S;
    const float mg = (float)(sg / M), mgx = (float)(sgx / M);
    for (int c = g0; c < g0 + Cg; c++) {
        const float gm = gamma ? gamma[c] : 1.0f;
        const float *xc = dfs_plane(x, c);
        const float *dz = (silu ? gz : dy) + (size_t)c * S;
        const int in_a = c < dx->ca;
        if (!(in_a ? dx->a : dx->b)) continue; /* that part needs no gradient (x2 of a concat, say) */
        float *dxc = in_a ? dx->a + (size_t)c * dx->s : dx->b + (size_t)(c - dx->ca) * dx->s;
        if (in_a ? dx->fresh_a : dx->fresh_b) {
#pragma omp simd
            for (size_t s = 0; s < S; s++) dxc[s] = r * (dz[s] * gm - mg - (xc[s] - m) * r * mgx);
        } else {
#pragma omp simd
            for (size_t s = 0; s < S; s++) dxc[s] += r * (dz[s] * gm - mg - (xc[s] - m) * r * mgx);
        }
    }
}

void dfs_gn_param_grads(float *dgamma, float *dbeta, const double *ab, int N, int C) {
    if (!dgamma && !dbeta) return;
    for (int c = 0; c < C; c++) {
        double sa = 0, sb = 0;
        for (int n = 0; n < N; n++) {
            sa += ab[2 * ((size_t)n * C + c)];
            sb += ab[2 * ((size_t)n * C + c) + 1];
        }
        if (dgamma) dgamma[c] += (float)sb;
        if (dbeta) dbeta[c] += (float)sa;
    }
}

