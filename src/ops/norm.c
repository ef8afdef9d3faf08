/* ops/norm.c - GroupNorm and LayerNorm, forward and backward.
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
#include "ops.h"

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

static void group_norm_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    const int N = x->shape[0], C = x->shape[1], G = nd->i[0], silu = nd->i[1];
    const size_t S = x->n / ((size_t)N * C), CS = (size_t)C * S;
    const float *mu = nd->saved, *rstd = mu + (size_t)N * G;
    const int T = dfs_op_threads();
    /* SiLU: dz of one image per thread (each (sample, group) writes only its own channels) */
    float *gz = silu ? dfs_graph_scratch(g, 0, (size_t)T * CS * sizeof(float)) : NULL;
    double *ab = dfs_graph_scratch(g, 1, 2 * (size_t)N * C * sizeof(double)); // (N, C, 2)
    int fresh = 0;
    float *dx = x->requires_grad ? dfs_grad_for_write(g, x, &fresh) : NULL;
    const float *dy = nd->out->grad, *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
    const long NG = (long)N * G;
#pragma omp parallel for num_threads(T) if (T > 1 && (size_t)N * CS >= PAR_MIN)
    for (long ng = 0; ng < NG; ng++) {
        const int n = (int)(ng / G), gi = (int)(ng % G);
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const dfs_planes xp = {x->data + (size_t)n * CS, NULL, C, S};
        const dfs_planes_grad dxp = {dx ? dx + (size_t)n * CS : NULL, NULL, C, S, fresh, fresh};
        dfs_gn_backward_group(dx ? &dxp : NULL, gz ? gz + (size_t)tid * CS : NULL,
                              dy + (size_t)n * CS, &xp, C, G, gi, mu[ng], rstd[ng], gm, bt, silu,
                              ab + 2 * (size_t)n * C);
    }
    dfs_gn_param_grads(gamma && gamma->requires_grad ? dfs_grad(g, gamma) : NULL,
                   beta && beta->requires_grad ? dfs_grad(g, beta) : NULL, ab, N, C);
}

static dfs_tensor *group_norm_op(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                                 int groups, float eps, int silu) {
    DFS_ASSERT(x && x->ndim >= 2 && x->n > 0);
    const int N = x->shape[0], C = x->shape[1], G = groups;
    DFS_ASSERT(groups >= 1 && C % groups == 0);
    DFS_ASSERT(!gamma || gamma->n == (size_t)C);
    DFS_ASSERT(!beta || beta->n == (size_t)C);
    DFS_ASSERT(eps >= 0.0f);
    const size_t S = x->n / ((size_t)N * C), CS = (size_t)C * S;
    dfs_tensor *out = dfs_tensor_like(g, x);
    float *stats = dfs_graph_alloc(g, 2 * (size_t)N * G * sizeof(float)); // mu, rstd (N*G)
    float *mu = stats, *rstd = stats + (size_t)N * G;
    const float *gm = gamma ? gamma->data : NULL, *bt = beta ? beta->data : NULL;
    const long NG = (long)N * G;
    const int Cg = C / G;
#pragma omp parallel for if ((size_t)N * CS >= PAR_MIN)
    for (long ng = 0; ng < NG; ng++) {
        const int n = (int)(ng / G), gi = (int)(ng % G);
        const dfs_planes xp = {x->data + (size_t)n * CS, NULL, C, S};
        dfs_gn_stats(&xp, C, G, gi, eps, &mu[ng], &rstd[ng]);
        for (int c = gi * Cg; c < (gi + 1) * Cg; c++) {
            const float a = rstd[ng] * (gm ? gm[c] : 1.0f);
            const float b = (bt ? bt[c] : 0.0f) - mu[ng] * a; /* y = x a + b */
            const size_t off = (size_t)n * CS + (size_t)c * S;
            dfs_affine_act(out->data + off, x->data + off, S, a, b, silu);
        }
    }
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
