/* ops/graph.c - the ops an E(n)-equivariant graph network (EGNN: Satorras et al. 2021; in the
 * form EDM uses it, Hoogeboom et al. 2022, app. B) needs on dense padded batches of molecules:
 * pair expansion and pair differences of node arrays into edge arrays, the first layer of an
 * edge MLP formed from per-atom terms, the masked (and gated) sums over neighbours, the sum over
 * the last dim, sqrt / reciprocal / scalar shift, and the masked removal of the centre of mass.
 * Each with its backward.
 *
 * Size key: B molecules, M atoms per molecule (padded), C features, D coordinates (3), K edge
 * attributes. Node arrays are (B, M, C); edge arrays (B, M, M, C) hold edge i -> j at
 * [b, i, j, :]. Backward functions accumulate (+=) into the grads of inputs that require grad;
 * an input with no gradient buffer yet gets one that is written (=) directly
 * (dfs_grad_for_write). Every backward here writes each element of its input's gradient from
 * one thread, in an order that does not depend on the thread count (in parallel over the rows
 * it writes, or over molecules), without atomics. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* Below this many elements an OpenMP region costs more than it saves. */
#define PAR_MIN 32768

/* Asserts that t is a node array (B, M, C) or an edge array (B, M, M, C). */
static void assert_node(const dfs_tensor *t) {
    DFS_ASSERT(t && t->ndim == 3);
}
static void assert_edge(const dfs_tensor *t) {
    DFS_ASSERT(t && t->ndim == 4 && t->shape[1] == t->shape[2]);
}

/* ---- pair expansion: out[b, i, j, :] = h[b, i, :] (which 0) or h[b, j, :] (which 1) -------
 * EGNN eq. 3: the edge model phi_e(h_i, h_j, ...) sees both ends of every edge. Backward:
 * dh[b, i, :] = sum_j dout[b, i, j, :] (which 0), dh[b, j, :] = sum_i dout[b, i, j, :]
 * (which 1). */

static void pair_expand_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *h = nd->in[0];
    const int which = nd->i[0], B = h->shape[0], M = h->shape[1], C = h->shape[2];
    int fresh;
    float *dh = dfs_grad_for_write(g, h, &fresh); // (B, M, C)
    const float *dy = nd->out->grad;              // (B, M, M, C)
    /* row (b, k) of dh sums the M rows of dy at [b, k, j] (which 0, stride C) or [b, i, k]
     * (which 1, stride M C) */
    const size_t step = which == 0 ? (size_t)C : (size_t)M * C;
#pragma omp parallel for if (nd->out->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) {
        const long b = r / M, k = r % M;
        const float *src = dy + (size_t)b * M * M * C +
                           (which == 0 ? (size_t)k * M * C : (size_t)k * C); // first of M rows
        float *d = dh + (size_t)r * C;
        if (fresh) memset(d, 0, (size_t)C * sizeof(float));
        for (int m = 0; m < M; m++, src += step) {
#pragma omp simd
            for (int c = 0; c < C; c++)
                d[c] += src[c];
        }
    }
}

dfs_tensor *dfs_pair_expand(dfs_graph *g, dfs_tensor *h, int which) {
    assert_node(h);
    DFS_ASSERT(which == 0 || which == 1);
    const int B = h->shape[0], M = h->shape[1], C = h->shape[2];
    dfs_tensor *out = dfs_tensor_new(g, 4, (int[]){B, M, M, C}); // (B, M, M, C)
    const size_t row = (size_t)C * sizeof(float);
#pragma omp parallel for if (out->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) { /* r = (b, i): the M rows out[b, i, :, :] */
        const long b = r / M, i = r % M;
        float *o = out->data + (size_t)r * M * C;
        for (int j = 0; j < M; j++)
            memcpy(o + (size_t)j * C, h->data + ((size_t)b * M + (which == 0 ? i : j)) * C, row);
    }
    dfs_node *nd = dfs_record(g, pair_expand_bw, out, 1, &h);
    if (nd) nd->i[0] = which;
    return out;
}

/* ---- an edge MLP's first layer: out[b,i,j,:] = silu(a[b,i,:] + c[b,j,:] + w e[b,i,j,:]) ----
 * EGNN eq. 3's edge MLP phi_e(h_i, h_j, e_ij) starts with SiLU(Linear([h_i, h_j, e_ij])), which
 * is silu(W_a h_i + b + W_b h_j + W_e e_ij): the node terms a = W_a h + b and c = W_b h are M
 * rows per molecule, and this op forms the M^2 activations from them in one pass, the K edge
 * attributes (K = 2 in EDM) through w (C, K). It keeps nothing but its inputs: backward
 * recomputes z = a_i + c_j + w e_ij and, with s = sigmoid(z), dz = dout s (1 + z (1 - s)):
 *   da[b, i, :] = sum_j dz[b, i, j, :]          dc[b, j, :] = sum_i dz[b, i, j, :]
 *   de[b, i, j, k] = sum_c dz[b, i, j, c] w[c, k]
 *   dw[c, k] = sum_{b, i, j} dz[b, i, j, c] e[b, i, j, k]
 * one molecule per thread (the column sums dc stay within it); dw adds per-molecule partial
 * sums in molecule order, so the result does not depend on the thread count. */

/* z = a_i + c_j + sum_k e_k wt[k, :], C entries; wt (K, C) is w transposed */
static inline void pair_pre(float *z, const float *ai, const float *cj, const float *ej,
                            const float *wt, int C, int K) {
#pragma omp simd
    for (int ch = 0; ch < C; ch++)
        z[ch] = ai[ch] + cj[ch];
    for (int k = 0; k < K; k++) {
        const float ek = ej[k], *wk = wt + (size_t)k * C;
#pragma omp simd
        for (int ch = 0; ch < C; ch++)
            z[ch] += ek * wk[ch];
    }
}

static void pair_silu_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *a = nd->in[0], *c = nd->in[1], *e = nd->in[2], *w = nd->in[3];
    const int B = a->shape[0], M = a->shape[1], C = a->shape[2], K = e ? e->shape[3] : 0;
    const float *wt = nd->saved;     // (K, C)
    const float *dy = nd->out->grad; // (B, M, M, C)
    int fa = 0, fc = 0, fe = 0, fw = 0;
    float *da = a->requires_grad ? dfs_grad_for_write(g, a, &fa) : NULL;      // (B, M, C)
    float *dc = c->requires_grad ? dfs_grad_for_write(g, c, &fc) : NULL;      // a == c: fc = 0
    float *de = e && e->requires_grad ? dfs_grad_for_write(g, e, &fe) : NULL; // (B, M, M, K)
    const int need_w = e && w->requires_grad;
    /* scratch: dz rows (B, C), per-molecule partial sums of dw transposed (B, K, C) */
    float *zb = dfs_graph_alloc(g, (size_t)B * C * sizeof(float));
    float *pw = need_w ? dfs_graph_alloc(g, (size_t)B * K * C * sizeof(float)) : NULL;
#pragma omp parallel for if (nd->out->n >= PAR_MIN)
    for (int b = 0; b < B; b++) {
        float *z = zb + (size_t)b * C, *p = pw ? pw + (size_t)b * K * C : NULL;
        const size_t nb = (size_t)b * M * C; /* the molecule's first node row */
        if (da && fa) memset(da + nb, 0, (size_t)M * C * sizeof(float));
        if (dc && fc) memset(dc + nb, 0, (size_t)M * C * sizeof(float));
        if (p) memset(p, 0, (size_t)K * C * sizeof(float));
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++) {
                const size_t ij = ((size_t)b * M + i) * M + j; /* edge (b, i, j) */
                const float *ej = e ? e->data + ij * K : NULL, *d = dy + ij * C;
                pair_pre(z, a->data + nb + (size_t)i * C, c->data + nb + (size_t)j * C, ej, wt, C,
                         K);
#pragma omp simd
                for (int ch = 0; ch < C; ch++) {
                    const float s = dfs_sigmoidf(z[ch]);
                    z[ch] = d[ch] * s * (1.0f + z[ch] * (1.0f - s)); /* now dz */
                }
                if (da) {
                    float *t = da + nb + (size_t)i * C;
#pragma omp simd
                    for (int ch = 0; ch < C; ch++)
                        t[ch] += z[ch];
                }
                if (dc) {
                    float *t = dc + nb + (size_t)j * C;
#pragma omp simd
                    for (int ch = 0; ch < C; ch++)
                        t[ch] += z[ch];
                }
                for (int k = 0; k < K; k++) {
                    const float *wk = wt + (size_t)k * C;
                    if (de) {
                        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                        for (int ch = 0; ch < C; ch++)
                            dot += z[ch] * wk[ch];
                        de[ij * K + k] = fe ? dot : de[ij * K + k] + dot;
                    }
                    if (p) {
                        const float ek = ej[k];
                        float *pk = p + (size_t)k * C;
#pragma omp simd
                        for (int ch = 0; ch < C; ch++)
                            pk[ch] += z[ch] * ek;
                    }
                }
            }
    }
    if (need_w) { /* dw (C, K): the molecules' partial sums in order */
        float *dw = dfs_grad_for_write(g, w, &fw);
        for (int ch = 0; ch < C; ch++)
            for (int k = 0; k < K; k++) {
                float sum = 0.0f;
                for (int b = 0; b < B; b++)
                    sum += pw[((size_t)b * K + k) * C + ch];
                dw[(size_t)ch * K + k] = fw ? sum : dw[(size_t)ch * K + k] + sum;
            }
    }
}

dfs_tensor *dfs_pair_silu(dfs_graph *g, dfs_tensor *a, dfs_tensor *c, dfs_tensor *e,
                          dfs_tensor *w) {
    assert_node(a);
    assert_node(c);
    const int B = a->shape[0], M = a->shape[1], C = a->shape[2];
    DFS_ASSERT(c->shape[0] == B && c->shape[1] == M && c->shape[2] == C);
    DFS_ASSERT((e == NULL) == (w == NULL));
    int K = 0;
    if (e) {
        assert_edge(e);
        K = e->shape[3];
        DFS_ASSERT(e->shape[0] == B && e->shape[1] == M);
        DFS_ASSERT(w->ndim == 2 && w->shape[0] == C && w->shape[1] == K);
    }
    /* w transposed, (K, C), so that the inner loops run along C; kept for backward */
    float *wt = dfs_graph_alloc(g, (size_t)(K ? K : 1) * C * sizeof(float));
    for (int ch = 0; ch < C; ch++)
        for (int k = 0; k < K; k++)
            wt[(size_t)k * C + ch] = w->data[(size_t)ch * K + k];
    dfs_tensor *out = dfs_tensor_new(g, 4, (int[]){B, M, M, C}); // (B, M, M, C)
#pragma omp parallel for if (out->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) { /* r = (b, i): the M rows out[b, i, :, :] */
        const long b = r / M;
        const float *ai = a->data + (size_t)r * C, *cb = c->data + (size_t)b * M * C;
        for (int j = 0; j < M; j++) {
            float *o = out->data + ((size_t)r * M + j) * C;
            pair_pre(o, ai, cb + (size_t)j * C, e ? e->data + ((size_t)r * M + j) * K : NULL, wt, C,
                     K);
#pragma omp simd
            for (int ch = 0; ch < C; ch++)
                o[ch] *= dfs_sigmoidf(o[ch]);
        }
    }
    dfs_node *nd = dfs_record(g, pair_silu_bw, out, 4, (dfs_tensor *[]){a, c, e, w});
    if (nd) nd->saved = wt;
    return out;
}

/* ---- pair differences: out[b, i, j, :] = x[b, i, :] - x[b, j, :] ------------------------
 * EGNN eq. 3-4: relative positions x_i - x_j, which a translation leaves unchanged and a
 * rotation rotates. The diagonal is exactly 0. Backward:
 * dx[b, k, :] = sum_j dout[b, k, j, :] - sum_i dout[b, i, k, :] (the diagonal term cancels). */

static void pair_diff_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    const int B = x->shape[0], M = x->shape[1], D = x->shape[2];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh); // (B, M, D)
    const float *dy = nd->out->grad;              // (B, M, M, D)
#pragma omp parallel for if (nd->out->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) {
        const long b = r / M, k = r % M;
        const float *e = dy + (size_t)b * M * M * D;
        float *d = dx + (size_t)r * D;
        if (fresh) memset(d, 0, (size_t)D * sizeof(float));
        for (int j = 0; j < M; j++) {
            const float *out_kj = e + ((size_t)k * M + j) * D, *in_jk = e + ((size_t)j * M + k) * D;
            for (int c = 0; c < D; c++)
                d[c] += out_kj[c] - in_jk[c];
        }
    }
}

dfs_tensor *dfs_pair_diff(dfs_graph *g, dfs_tensor *x) {
    assert_node(x);
    const int B = x->shape[0], M = x->shape[1], D = x->shape[2];
    dfs_tensor *out = dfs_tensor_new(g, 4, (int[]){B, M, M, D}); // (B, M, M, D)
#pragma omp parallel for if (out->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) {
        const long b = r / M;
        const float *xi = x->data + (size_t)r * D, *xb = x->data + (size_t)b * M * D;
        float *o = out->data + (size_t)r * M * D;
        for (int j = 0; j < M; j++)
            for (int c = 0; c < D; c++)
                o[(size_t)j * D + c] = xi[c] - xb[(size_t)j * D + c];
    }
    dfs_record(g, pair_diff_bw, out, 1, &x);
    return out;
}

/* ---- weighted sum over neighbours: out[b, i, :] = sum_j w[b, i, j] e[b, i, j, :] ---------
 * EGNN eq. 5 (m_i = sum_j m_ij) and eq. 4 (the coordinate update's sum over j), with w the
 * edge mask of padded atoms and i != j, divided by EDM's normalisation constant. w (B, M, M)
 * is a constant (NULL: all ones). Backward: de[b, i, j, :] = w[b, i, j] dout[b, i, :]. */

static void pair_sum_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *e = nd->in[0];
    const int B = e->shape[0], M = e->shape[1], C = e->shape[3];
    const float *w = nd->saved; // (B, M, M) or NULL
    int fresh;
    float *de = dfs_grad_for_write(g, e, &fresh); // (B, M, M, C)
    const float *dy = nd->out->grad;              // (B, M, C)
#pragma omp parallel for if (e->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) { /* r = (b, i) */
        const float *d = dy + (size_t)r * C;
        for (int j = 0; j < M; j++) {
            const float wij = w ? w[(size_t)r * M + j] : 1.0f;
            float *t = de + ((size_t)r * M + j) * C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                t[c] = fresh ? wij * d[c] : t[c] + wij * d[c];
        }
    }
}

dfs_tensor *dfs_pair_sum(dfs_graph *g, dfs_tensor *e, const float *w) {
    assert_edge(e);
    const int B = e->shape[0], M = e->shape[1], C = e->shape[3];
    dfs_tensor *out = dfs_tensor_new(g, 3, (int[]){B, M, C}); // (B, M, C)
#pragma omp parallel for if (e->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) {
        float *o = out->data + (size_t)r * C;
        memset(o, 0, (size_t)C * sizeof(float));
        for (int j = 0; j < M; j++) {
            const float wij = w ? w[(size_t)r * M + j] : 1.0f;
            const float *t = e->data + ((size_t)r * M + j) * C;
#pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] += wij * t[c];
        }
    }
    dfs_node *nd = dfs_record(g, pair_sum_bw, out, 1, &e);
    if (nd && w) { /* the caller's weights may change before backward: keep a copy */
        const size_t bytes = (size_t)B * M * M * sizeof(float);
        float *copy = dfs_graph_alloc(g, bytes ? bytes : 1);
        if (bytes) memcpy(copy, w, bytes);
        nd->saved = copy;
    }
    return out;
}

/* ---- gated sum over neighbours: out[b,i,:] = sum_j w[b,i,j] s[b,i,j] e[b,i,j,:] -------------
 * The sums of EDM's GCL with attention, sum_j w_ij att_ij m_ij, and of its coordinate update,
 * sum_j w_ij phi_ij d_ij (EGNN eqs. 4-5), without forming the gated edge array: s (B, M, M, 1)
 * is a tensor with a gradient, w the constant weights of dfs_pair_sum (NULL: all ones).
 * Backward: de[b, i, j, :] = w_ij s_ij dout[b, i, :],
 *           ds[b, i, j] = w_ij e[b, i, j, :] . dout[b, i, :]. */

static void pair_sum_gated_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *e = nd->in[0], *s = nd->in[1];
    const int B = e->shape[0], M = e->shape[1], C = e->shape[3];
    const float *w = nd->saved; // (B, M, M) or NULL
    int fe = 0, fs = 0;
    float *de = e->requires_grad ? dfs_grad_for_write(g, e, &fe) : NULL; // (B, M, M, C)
    float *ds = s->requires_grad ? dfs_grad_for_write(g, s, &fs) : NULL; // (B, M, M, 1)
    const float *dy = nd->out->grad;                                     // (B, M, C)
#pragma omp parallel for if (e->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) { /* r = (b, i) */
        const float *d = dy + (size_t)r * C;
        for (int j = 0; j < M; j++) {
            const size_t rj = (size_t)r * M + j;
            const float wij = w ? w[rj] : 1.0f, q = wij * s->data[rj];
            const float *t = e->data + rj * C;
            if (de) {
                float *o = de + rj * C;
#pragma omp simd
                for (int ch = 0; ch < C; ch++)
                    o[ch] = fe ? q * d[ch] : o[ch] + q * d[ch];
            }
            if (ds) {
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int ch = 0; ch < C; ch++)
                    dot += t[ch] * d[ch];
                ds[rj] = fs ? wij * dot : ds[rj] + wij * dot;
            }
        }
    }
}

dfs_tensor *dfs_pair_sum_gated(dfs_graph *g, dfs_tensor *e, dfs_tensor *s, const float *w) {
    assert_edge(e);
    const int B = e->shape[0], M = e->shape[1], C = e->shape[3];
    DFS_ASSERT(s && s->ndim == 4 && s->shape[0] == B && s->shape[1] == M && s->shape[2] == M &&
               s->shape[3] == 1);
    dfs_tensor *out = dfs_tensor_new(g, 3, (int[]){B, M, C}); // (B, M, C)
#pragma omp parallel for if (e->n >= PAR_MIN)
    for (long r = 0; r < (long)B * M; r++) {
        float *o = out->data + (size_t)r * C;
        memset(o, 0, (size_t)C * sizeof(float));
        for (int j = 0; j < M; j++) {
            const size_t rj = (size_t)r * M + j;
            const float q = (w ? w[rj] : 1.0f) * s->data[rj];
            const float *t = e->data + rj * C;
#pragma omp simd
            for (int ch = 0; ch < C; ch++)
                o[ch] += q * t[ch];
        }
    }
    dfs_node *nd = dfs_record(g, pair_sum_gated_bw, out, 2, (dfs_tensor *[]){e, s});
    if (nd && w) { /* the caller's weights may change before backward: keep a copy */
        const size_t bytes = (size_t)B * M * M * sizeof(float);
        float *copy = dfs_graph_alloc(g, bytes ? bytes : 1);
        if (bytes) memcpy(copy, w, bytes);
        nd->saved = copy;
    }
    return out;
}

/* ---- sum over the last dim: (..., D) -> (..., 1) ------------------------------------------
 * EGNN eq. 3's squared distance ||x_i - x_j||^2 = sum_last(d * d). Backward: dx[r, :] = dy[r]. */

static void sum_last_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    const int D = x->shape[x->ndim - 1];
    const long R = (long)nd->out->n;
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh); // (R, D)
    const float *dy = nd->out->grad;              // (R)
#pragma omp parallel for if (x->n >= PAR_MIN)
    for (long r = 0; r < R; r++) {
        float *d = dx + (size_t)r * D;
        for (int c = 0; c < D; c++)
            d[c] = fresh ? dy[r] : d[c] + dy[r];
    }
}

dfs_tensor *dfs_sum_last(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x && x->ndim >= 1);
    int shape[DFS_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    const int D = shape[x->ndim - 1];
    shape[x->ndim - 1] = 1;
    dfs_tensor *out = dfs_tensor_new(g, x->ndim, shape); // (..., 1)
    const long R = (long)out->n;
#pragma omp parallel for if (x->n >= PAR_MIN)
    for (long r = 0; r < R; r++) {
        const float *t = x->data + (size_t)r * D;
        float s = 0.0f;
        for (int c = 0; c < D; c++)
            s += t[c];
        out->data[r] = s;
    }
    dfs_record(g, sum_last_bw, out, 1, &x);
    return out;
}

/* ---- sqrt(x + eps), 1 / x, x + b ----------------------------------------------------------
 * EDM's coordinate update (Hoogeboom et al. 2022, app. B, eq. 12): (x_i - x_j) / (d_ij + 1),
 * d_ij = sqrt(||x_i - x_j||^2 + 1e-8), which is mul(diff, recip(add_scalar(sqrt(sq, 1e-8), 1))).
 * No check of the domains (it would cost a pass over the data): sqrt of x + eps < 0 is NaN, and
 * x + eps == 0 gives 0 with an infinite derivative (NaN or inf in the gradient); recip(0) is
 * inf with an infinite derivative. */

/* d sqrt(x + eps) / dx = 1 / (2 y), y = sqrt(x + eps): the output, read back */
static void sqrt_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad, *y = nd->out->data;
    const long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float d = 0.5f * dy[i] / y[i];
        dx[i] = fresh ? d : dx[i] + d;
    }
}

dfs_tensor *dfs_sqrt(dfs_graph *g, dfs_tensor *x, float eps) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    const long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++)
        y[i] = sqrtf(xd[i] + eps);
    dfs_record(g, sqrt_bw, out, 1, &x);
    return out;
}

/* d (1 / x) / dx = -1 / x^2 = -y^2, y = 1 / x: the output, read back */
static void recip_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad, *y = nd->out->data;
    const long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        const float d = -dy[i] * y[i] * y[i];
        dx[i] = fresh ? d : dx[i] + d;
    }
}

dfs_tensor *dfs_recip(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    const long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++)
        y[i] = 1.0f / xd[i];
    dfs_record(g, recip_bw, out, 1, &x);
    return out;
}

/* d (x + b) / dx = 1 */
static void add_scalar_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad;
    const long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++)
        dx[i] = fresh ? dy[i] : dx[i] + dy[i];
}

dfs_tensor *dfs_add_scalar(dfs_graph *g, dfs_tensor *x, float b) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    const long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++)
        y[i] = xd[i] + b;
    dfs_record(g, add_scalar_bw, out, 1, &x);
    return out;
}

/* ---- masked centring: EDM's remove_mean_with_mask (Hoogeboom et al. 2022, sec. 3.2: the
 * zero centre-of-mass subspace that makes the likelihood translation invariant) --------------
 * With n_b = #{i : mask[b, i]} and mean_b = sum_{i: mask} x[b, i, :] / n_b,
 *   out[b, i, :] = mask[b, i] (x[b, i, :] - mean_b),
 * 0 for a molecule with no atoms. The mean is taken and subtracted in double, so each output is
 * one rounding of the exact value. The map is P = diag(m) (I - m m^T / n) per molecule and
 * coordinate, symmetric, so backward applies the same projection to dout:
 *   dx[b, i, :] = mask[b, i] (dout[b, i, :] - sum_{k: mask} dout[b, k, :] / n_b). */

/* dst[b] (+)= P src[b] for each molecule b (src, dst (B, M, D)); one coordinate at a time, so
 * that the mean is one double and no buffer is needed */
static void center_apply(float *dst, const float *src, const uint8_t *mask, int B, int M, int D,
                         int accumulate) {
#pragma omp parallel for if ((size_t)B * M * D >= PAR_MIN)
    for (int b = 0; b < B; b++) {
        const uint8_t *m = mask + (size_t)b * M;  // (M)
        const float *s = src + (size_t)b * M * D; // (M, D)
        float *o = dst + (size_t)b * M * D;       // (M, D)
        int n = 0;
        for (int i = 0; i < M; i++)
            n += m[i] != 0;
        for (int c = 0; c < D; c++) {
            double mu = 0; /* mean_b of coordinate c over the atoms present */
            for (int i = 0; i < M; i++)
                if (m[i]) mu += s[(size_t)i * D + c];
            mu = n ? mu / n : 0;
            for (int i = 0; i < M; i++) {
                const size_t k = (size_t)i * D + c;
                const float v = m[i] ? (float)(s[k] - mu) : 0.0f;
                o[k] = accumulate ? o[k] + v : v;
            }
        }
    }
}

static void center_masked_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    center_apply(dx, nd->out->grad, nd->saved, x->shape[0], x->shape[1], x->shape[2], !fresh);
}

dfs_tensor *dfs_center_masked(dfs_graph *g, dfs_tensor *x, const uint8_t *mask) {
    assert_node(x);
    DFS_ASSERT(mask);
    const int B = x->shape[0], M = x->shape[1], D = x->shape[2];
    dfs_tensor *out = dfs_tensor_new(g, 3, x->shape); // (B, M, D)
    center_apply(out->data, x->data, mask, B, M, D, 0);
    dfs_node *nd = dfs_record(g, center_masked_bw, out, 1, &x);
    if (nd) { /* the caller's mask may change before backward: keep a copy */
        const size_t bytes = (size_t)B * M;
        uint8_t *copy = dfs_graph_alloc(g, bytes ? bytes : 1);
        if (bytes) memcpy(copy, mask, bytes);
        nd->saved = copy;
    }
    return out;
}
