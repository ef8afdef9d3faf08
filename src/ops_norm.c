/* ops_norm.c - GroupNorm and LayerNorm, forward and backward.
 *
 * Size key: N batch, C channels, G groups, Cg = C / G channels per group, S spatial size (the
 * product of the dims after C), R rows, D features (the last dim).
 *
 * Both normalise a set of M numbers with their mean and biased variance (1/M, as PyTorch):
 *   xhat = (x - mu) rstd,  rstd = 1 / sqrt(var + eps),  y = gamma xhat + beta
 * GroupNorm: Wu & He 2018, "Group Normalization", eq. 1-3 (set = one sample, one group).
 * LayerNorm: Ba, Kiros & Hinton 2016, "Layer Normalization", eq. 4 (set = one row).
 * Backward over one set, with g = dy gamma (Ioffe & Szegedy 2015, sec. 3, the same algebra):
 *   dx = rstd (g - mean(g) - xhat mean(g xhat)),  dgamma += sum dy xhat,  dbeta += sum dy
 * Means and variances are accumulated in double. mu and rstd are saved per set in the arena. */
#include "internal.h"
#include "ops_ref.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Below this many elements an OpenMP region costs more than it saves. */
#define PAR_MIN 32768

/* mu and rstd of x[0..m-1], two passes in double. */
static void moments(const float *x, size_t m, float eps, float *mu, float *rstd) {
    /* Sums in double; `omp simd` lets the compiler keep several partial sums in vector lanes
     * (a reordering of the additions, not of their precision). */
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < m; i++) s += x[i];
    double mean = s / (double)m;
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (size_t i = 0; i < m; i++) {
        double d = x[i] - mean;
        v += d * d;
    }
    v /= (double)m;
    *mu = (float)mean;
    *rstd = (float)(1.0 / sqrt(v + eps));
}

/* ---- GroupNorm, optionally followed by SiLU --------------------------------------------------
 * With silu set the op is y = silu(z), z = GroupNorm(x) (the norm-then-activation pair of every
 * U-Net ResBlock), in one pass and without keeping z: backward recomputes z from x and the saved
 * mu, rstd (z = x a + b exactly as forward computes it) and uses
 *   dz = dy s(z) (1 + z (1 - s(z))),  s = sigmoid  (Elfwing et al. 2018, eq. 3)
 * in place of dy in the GroupNorm backward above. */

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* gamma/beta may be NULL (1 and 0). mu, rstd (N*G) are written. */
static void group_norm_forward(float *out, float *mu, float *rstd, const float *x,
                               const float *gamma, const float *beta, int N, int C, size_t S, int G,
                               float eps, int silu) {
    // out, x (N, C, S) viewed as (N*G, Cg, S); mu, rstd (N*G); gamma, beta (C)
    int Cg = C / G;
    size_t M = (size_t)Cg * S;
    long NG = (long)N * G;
#pragma omp parallel for if ((size_t)NG * M >= PAR_MIN)
    for (long ng = 0; ng < NG; ng++) {
        const float *xg = x + (size_t)ng * M; // (Cg, S)
        float *yg = out + (size_t)ng * M;     // (Cg, S)
        moments(xg, M, eps, &mu[ng], &rstd[ng]);
        int g0 = (int)(ng % G) * Cg;
        for (int c = 0; c < Cg; c++) {
            float gm = gamma ? gamma[g0 + c] : 1.0f;
            float bt = beta ? beta[g0 + c] : 0.0f;
            float a = rstd[ng] * gm, b = bt - mu[ng] * a; /* y = x a + b */
            const float *xc = xg + (size_t)c * S;
            float *yc = yg + (size_t)c * S;
            if (silu)
                for (size_t s = 0; s < S; s++) {
                    float z = xc[s] * a + b;
                    yc[s] = z * sigmoidf(z);
                }
            else
                for (size_t s = 0; s < S; s++) yc[s] = xc[s] * a + b;
        }
    }
}

/* dx (N,C,S) gets (dx_fresh: =, else +=) the input gradient; dgamma (C), dbeta (C) accumulate;
 * each may be NULL. One parallel pass per (sample, group) computes, per channel, A = sum dz and
 * B = sum dz xhat (dz = dy, or the SiLU-corrected dy, kept in gz, M floats per thread), from
 * which both dx and (summed over samples in ab, (N, C, 2) doubles) dgamma = sum B,
 * dbeta = sum A follow. */
static void group_norm_backward(float *dx, int dx_fresh, float *dgamma, float *dbeta,
                                const float *dout, const float *x, const float *mu,
                                const float *rstd, const float *gamma, const float *beta, int N,
                                int C, size_t S, int G, int silu, float *gz, double *ab) {
    int Cg = C / G;
    size_t M = (size_t)Cg * S;
    long NG = (long)N * G;
#pragma omp parallel for if ((size_t)NG * M >= PAR_MIN)
    for (long ng = 0; ng < NG; ng++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const float *xg = x + (size_t)ng * M, *dyg = dout + (size_t)ng * M; // (Cg, S)
        float *gzt = silu ? gz + (size_t)tid * M : NULL;                    // (Cg, S)
        const int g0 = (int)(ng % G) * Cg;
        const float m = mu[ng], r = rstd[ng];
        double *abg = ab + 2 * ((size_t)ng * Cg); // (Cg, 2); ng * Cg = n * C + g0
        double sg = 0, sgx = 0;                   /* sum gamma dz, sum gamma dz xhat */
        for (int c = 0; c < Cg; c++) {
            float gm = gamma ? gamma[g0 + c] : 1.0f;
            const float *xc = xg + (size_t)c * S, *dyc = dyg + (size_t)c * S;
            double A = 0, B = 0;
            if (silu) {
                float bt = beta ? beta[g0 + c] : 0.0f;
                float a = r * gm, b = bt - m * a; /* z = x a + b, as in forward */
                float *gc = gzt + (size_t)c * S;
                for (size_t s = 0; s < S; s++) {
                    float z = xc[s] * a + b, sz = sigmoidf(z);
                    float d = dyc[s] * sz * (1.0f + z * (1.0f - sz));
                    gc[s] = d;
                    A += d;
                    B += d * ((xc[s] - m) * r);
                }
            } else {
                for (size_t s = 0; s < S; s++) {
                    A += dyc[s];
                    B += dyc[s] * ((xc[s] - m) * r);
                }
            }
            abg[2 * c] = A;
            abg[2 * c + 1] = B;
            sg += gm * A;
            sgx += gm * B;
        }
        if (!dx) continue;
        float *dxg = dx + (size_t)ng * M; // (Cg, S)
        float mg = (float)(sg / (double)M), mgx = (float)(sgx / (double)M);
        for (int c = 0; c < Cg; c++) {
            float gm = gamma ? gamma[g0 + c] : 1.0f;
            const float *xc = xg + (size_t)c * S;
            const float *dz = silu ? gzt + (size_t)c * S : dyg + (size_t)c * S;
            float *dxc = dxg + (size_t)c * S;
            if (dx_fresh)
                for (size_t s = 0; s < S; s++) {
                    float xh = (xc[s] - m) * r;
                    dxc[s] = r * (dz[s] * gm - mg - xh * mgx);
                }
            else
                for (size_t s = 0; s < S; s++) {
                    float xh = (xc[s] - m) * r;
                    dxc[s] += r * (dz[s] * gm - mg - xh * mgx);
                }
        }
    }
    if (dgamma || dbeta)
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

static void group_norm_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    int N = x->shape[0], C = x->shape[1], G = nd->i[0], silu = nd->i[1];
    size_t S = x->n / ((size_t)N * C), M = (size_t)(C / G) * S;
    const float *mu = nd->saved, *rstd = mu + (size_t)N * G;
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
    float *gz = silu ? dfs_graph_scratch(g, 0, (size_t)nthreads * M * sizeof(float)) : NULL;
    double *ab = dfs_graph_scratch(g, 1, 2 * (size_t)N * C * sizeof(double)); // (N, C, 2)
    int fresh = 0;
    float *dx = x->requires_grad ? dfs_grad_for_write(g, x, &fresh) : NULL;
    group_norm_backward(dx, fresh, gamma && gamma->requires_grad ? dfs_grad(g, gamma) : NULL,
                        beta && beta->requires_grad ? dfs_grad(g, beta) : NULL, nd->out->grad,
                        x->data, mu, rstd, gamma ? gamma->data : NULL, beta ? beta->data : NULL, N,
                        C, S, G, silu, gz, ab);
}

static dfs_tensor *group_norm_op(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                                 int groups, float eps, int silu) {
    DFS_ASSERT(x && x->ndim >= 2 && x->n > 0);
    int N = x->shape[0], C = x->shape[1];
    DFS_ASSERT(groups >= 1 && C % groups == 0);
    DFS_ASSERT(!gamma || gamma->n == (size_t)C);
    DFS_ASSERT(!beta || beta->n == (size_t)C);
    DFS_ASSERT(eps >= 0.0f);
    size_t S = x->n / ((size_t)N * C);
    dfs_tensor *out = dfs_tensor_like(g, x);
    float *stats = dfs_graph_alloc(g, 2 * (size_t)N * groups * sizeof(float)); // mu, rstd (N*G)
    group_norm_forward(out->data, stats, stats + (size_t)N * groups, x->data,
                       gamma ? gamma->data : NULL, beta ? beta->data : NULL, N, C, S, groups, eps,
                       silu);
    dfs_node *nd = dfs_record(g, group_norm_bw, out, 3, (dfs_tensor *[]){x, gamma, beta});
    if (nd) {
        nd->i[0] = groups;
        nd->i[1] = silu;
        nd->f[0] = eps;
        nd->saved = stats;
    }
    return out;
}

dfs_tensor *dfs_group_norm(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                           int groups, float eps) {
    return group_norm_op(g, x, gamma, beta, groups, eps, 0);
}

dfs_tensor *dfs_group_norm_silu(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                                int groups, float eps) {
    return group_norm_op(g, x, gamma, beta, groups, eps, 1);
}

/* ---- LayerNorm ---------------------------------------------------------------------------- */

static void layer_norm_forward(float *out, float *mu, float *rstd, const float *x,
                               const float *gamma, const float *beta, size_t R, int D, float eps) {
    // out, x (R, D); mu, rstd (R); gamma, beta (D)
#pragma omp parallel for if (R * (size_t)D >= PAR_MIN)
    for (long r = 0; r < (long)R; r++) {
        const float *xr = x + (size_t)r * D;
        float *yr = out + (size_t)r * D;
        moments(xr, (size_t)D, eps, &mu[r], &rstd[r]);
        float m = mu[r], s = rstd[r];
        for (int d = 0; d < D; d++) {
            float xh = (xr[d] - m) * s;
            yr[d] = (gamma ? gamma[d] : 1.0f) * xh + (beta ? beta[d] : 0.0f);
        }
    }
}

/* Accumulates into dx (R,D), dgamma (D), dbeta (D); each may be NULL. part is scratch of
 * 2 * nthreads * D doubles for per-thread dgamma/dbeta sums. */
static void layer_norm_backward(float *dx, float *dgamma, float *dbeta, double *part, int nthreads,
                                const float *dout, const float *x, const float *mu,
                                const float *rstd, const float *gamma, size_t R, int D) {
    memset(part, 0, 2 * (size_t)nthreads * D * sizeof(double));
#pragma omp parallel num_threads(nthreads) if (R * (size_t)D >= PAR_MIN)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *pg = part + 2 * (size_t)tid * D, *pb = pg + D; // (D), (D)
#pragma omp for
        for (long r = 0; r < (long)R; r++) {
            const float *xr = x + (size_t)r * D, *dy = dout + (size_t)r * D;
            float m = mu[r], s = rstd[r];
            if (dgamma || dbeta) {
                for (int d = 0; d < D; d++) {
                    pg[d] += dy[d] * ((xr[d] - m) * s);
                    pb[d] += dy[d];
                }
            }
            if (dx) {
                double sg = 0, sgx = 0;
                for (int d = 0; d < D; d++) {
                    float gd = dy[d] * (gamma ? gamma[d] : 1.0f);
                    sg += gd;
                    sgx += gd * ((xr[d] - m) * s);
                }
                float mg = (float)(sg / D), mgx = (float)(sgx / D);
                float *dxr = dx + (size_t)r * D;
                for (int d = 0; d < D; d++) {
                    float gd = dy[d] * (gamma ? gamma[d] : 1.0f);
                    dxr[d] += s * (gd - mg - (xr[d] - m) * s * mgx);
                }
            }
        }
    }
    for (int d = 0; d < D; d++) {
        double sg = 0, sb = 0;
        for (int t = 0; t < nthreads; t++) {
            sg += part[2 * (size_t)t * D + d];
            sb += part[2 * (size_t)t * D + D + d];
        }
        if (dgamma) dgamma[d] += (float)sg;
        if (dbeta) dbeta[d] += (float)sb;
    }
}

static void layer_norm_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    int D = x->shape[x->ndim - 1];
    size_t R = x->n / (size_t)D;
    const float *mu = nd->saved, *rstd = mu + R;
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    double *part = dfs_graph_alloc(g, 2 * (size_t)nthreads * D * sizeof(double));
    layer_norm_backward(x->requires_grad ? dfs_grad(g, x) : NULL,
                        gamma && gamma->requires_grad ? dfs_grad(g, gamma) : NULL,
                        beta && beta->requires_grad ? dfs_grad(g, beta) : NULL, part, nthreads,
                        nd->out->grad, x->data, mu, rstd, gamma ? gamma->data : NULL, R, D);
}

dfs_tensor *dfs_layer_norm(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                           float eps) {
    DFS_ASSERT(x && x->ndim >= 1 && x->n > 0);
    int D = x->shape[x->ndim - 1];
    DFS_ASSERT(!gamma || gamma->n == (size_t)D);
    DFS_ASSERT(!beta || beta->n == (size_t)D);
    DFS_ASSERT(eps >= 0.0f);
    size_t R = x->n / (size_t)D;
    dfs_tensor *out = dfs_tensor_like(g, x);
    float *stats = dfs_graph_alloc(g, 2 * R * sizeof(float)); // mu, rstd (R)
    layer_norm_forward(out->data, stats, stats + R, x->data, gamma ? gamma->data : NULL,
                       beta ? beta->data : NULL, R, D, eps);
    dfs_node *nd = dfs_record(g, layer_norm_bw, out, 3, (dfs_tensor *[]){x, gamma, beta});
    if (nd) {
        nd->f[0] = eps;
        nd->saved = stats;
    }
    return out;
}
