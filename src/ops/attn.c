/* ops/attn.c - multi-head scaled dot-product attention and a last-two-dims transpose, for the
 * text encoder (a transformer) and for U-Net blocks that attend to text tokens.
 *
 * Size key: N batch, Lq queries, Lk keys, D query/key width, Dv value width, h heads,
 * dh = D / h and dvh = Dv / h per head.
 *
 *   S_h = Q_h K_h^T / sqrt(dh) (+ -inf where the key is masked)     (Lq, Lk)
 *   P_h = softmax(S_h) over keys,  O_h = P_h V_h                       (Lq, dvh)
 * (Vaswani et al. 2017, eq. 1 and sec. 3.2.2). Heads are the column blocks [h dh, (h+1) dh) of
 * Q and K and [h dvh, (h+1) dvh) of V and O: the layout a (N, L, D) projection produces, so no
 * permute is needed. The projections themselves are dfs_linear's.
 *
 * Backward, per head: dP = dO V^T, dS = P * (dP - rowsum(dP * P)) (softmax VJP),
 * dQ = dS K / sqrt(dh), dK = dS^T Q / sqrt(dh), dV = P^T dO. P is saved by forward
 * (N h Lq Lk floats). */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- transpose: (..., A, B) -> (..., B, A) ------------------------------------------------- */

static void transpose_block(float *dst, const float *src, int A, int B, int add) {
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++) {
            if (add) dst[(size_t)b * A + a] += src[(size_t)a * B + b];
            else dst[(size_t)b * A + a] = src[(size_t)a * B + b];
        }
}

static void transpose_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *x = node->in[0];
    const int A = node->i[0], B = node->i[1];
    const size_t M = x->n / ((size_t)A * B);
    float *dx = dfs_grad(g, x);
    for (size_t m = 0; m < M; m++)
        transpose_block(dx + m * A * B, node->out->grad + m * A * B, B, A, 1); /* dx = dout^T */
}

dfs_tensor *dfs_transpose(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x->ndim >= 2);
    int shape[DFS_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    const int A = x->shape[x->ndim - 2], B = x->shape[x->ndim - 1];
    shape[x->ndim - 2] = B;
    shape[x->ndim - 1] = A;
    dfs_tensor *out = dfs_tensor_new(g, x->ndim, shape);
    const size_t M = x->n / ((size_t)A * B);
    for (size_t m = 0; m < M; m++) transpose_block(out->data + m * A * B, x->data + m * A * B, A, B, 0);
    dfs_node *n = dfs_record(g, transpose_backward, out, 1, (dfs_tensor *[]){x});
    if (n) n->i[0] = A, n->i[1] = B;
    return out;
}

/* ---- attention ------------------------------------------------------------------------------ */

typedef struct {
    int N, Lq, Lk, D, Dv, h, dh, dvh;
} attn_geom;

static attn_geom attn_geom_of(const dfs_tensor *q, const dfs_tensor *k, const dfs_tensor *v, int heads) {
    attn_geom a = {q->shape[0], q->shape[1], k->shape[1], q->shape[2], v->shape[2], heads, 0, 0};
    a.dh = a.D / heads;
    a.dvh = a.Dv / heads;
    return a;
}

static void attention_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    const attn_geom a = attn_geom_of(q, k, v, node->i[0]);
    const float scale = node->f[0];
    const float *P = node->saved; /* (N, h, Lq, Lk) */
    const float *dO = node->out->grad;
    float *dq = q->requires_grad ? dfs_grad(g, q) : NULL;
    float *dk = k->requires_grad ? dfs_grad(g, k) : NULL;
    float *dv = v->requires_grad ? dfs_grad(g, v) : NULL;
    const size_t LL = (size_t)a.Lq * a.Lk;
    float *dS_all = dfs_graph_scratch(g, 0, (size_t)a.N * a.h * LL * sizeof(float));
    const int T = dfs_op_threads();
    /* q, k and v may be the same tensor (self-attention on one projection): the items of the
     * parallel loop touch disjoint (n, head) column blocks of every gradient, so they never
     * race, whichever tensors alias. */
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && a.N * a.h > 1)
    for (int nh = 0; nh < a.N * a.h; nh++) {
        const int n = nh / a.h, hd = nh % a.h;
        const float *Pn = P + (size_t)nh * LL;
        float *dS = dS_all + (size_t)nh * LL;
        const float *Q = q->data + (size_t)n * a.Lq * a.D + hd * a.dh;
        const float *K = k->data + (size_t)n * a.Lk * a.D + hd * a.dh;
        const float *V = v->data + (size_t)n * a.Lk * a.Dv + hd * a.dvh;
        const float *dOn = dO + (size_t)n * a.Lq * a.Dv + hd * a.dvh;
        /* dP (Lq, Lk) = dO (Lq, dvh) V^T (dvh, Lk) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a.Lq, a.Lk, a.dvh, 1.0f, dOn, a.Dv, V, a.Dv, 0.0f, dS,
                    a.Lk);
        for (int i = 0; i < a.Lq; i++) {
            float *r = dS + (size_t)i * a.Lk;
            const float *p = Pn + (size_t)i * a.Lk;
            double dot = 0;
            for (int j = 0; j < a.Lk; j++) dot += (double)r[j] * p[j];
            for (int j = 0; j < a.Lk; j++) r[j] = p[j] * (r[j] - (float)dot) * scale; /* dS, scale folded in */
        }
        if (dq) /* dQ (Lq, dh) += dS (Lq, Lk) K (Lk, dh) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a.Lq, a.dh, a.Lk, 1.0f, dS, a.Lk, K, a.D, 1.0f,
                        dq + (size_t)n * a.Lq * a.D + hd * a.dh, a.D);
        if (dk) /* dK (Lk, dh) += dS^T (Lk, Lq) Q (Lq, dh) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a.Lk, a.dh, a.Lq, 1.0f, dS, a.Lk, Q, a.D, 1.0f,
                        dk + (size_t)n * a.Lk * a.D + hd * a.dh, a.D);
        if (dv) /* dV (Lk, dvh) += P^T (Lk, Lq) dO (Lq, dvh) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a.Lk, a.dvh, a.Lq, 1.0f, Pn, a.Lk, dOn, a.Dv, 1.0f,
                        dv + (size_t)n * a.Lk * a.Dv + hd * a.dvh, a.Dv);
    }
}

dfs_tensor *dfs_attention(dfs_graph *g, dfs_tensor *q, dfs_tensor *k, dfs_tensor *v, int heads,
                          const uint8_t *key_mask) {
    DFS_ASSERT(q->ndim == 3 && k->ndim == 3 && v->ndim == 3);
    DFS_ASSERT(k->shape[0] == q->shape[0] && v->shape[0] == q->shape[0] && v->shape[1] == k->shape[1]);
    DFS_ASSERT(k->shape[2] == q->shape[2] && heads >= 1 && q->shape[2] % heads == 0 && v->shape[2] % heads == 0);
    const attn_geom a = attn_geom_of(q, k, v, heads);
    const float scale = 1.0f / sqrtf((float)a.dh);
    const size_t LL = (size_t)a.Lq * a.Lk;
    dfs_tensor *out = dfs_tensor_new(g, 3, (int[]){a.N, a.Lq, a.Dv}); /* (N, Lq, Dv) */
    float *P = dfs_graph_alloc(g, (size_t)a.N * a.h * LL * sizeof(float)); /* (N, h, Lq, Lk) */
    const int T = dfs_op_threads();
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && a.N * a.h > 1)
    for (int nh = 0; nh < a.N * a.h; nh++) {
        const int n = nh / a.h, hd = nh % a.h;
        float *S = P + (size_t)nh * LL;
        const uint8_t *mask = key_mask ? key_mask + (size_t)n * a.Lk : NULL;
        /* S (Lq, Lk) = Q (Lq, dh) K^T (dh, Lk) / sqrt(dh) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a.Lq, a.Lk, a.dh, scale,
                    q->data + (size_t)n * a.Lq * a.D + hd * a.dh, a.D, k->data + (size_t)n * a.Lk * a.D + hd * a.dh,
                    a.D, 0.0f, S, a.Lk);
        for (int i = 0; i < a.Lq; i++) {
            float *r = S + (size_t)i * a.Lk, mx = -INFINITY;
            for (int j = 0; j < a.Lk; j++)
                if ((!mask || mask[j]) && r[j] > mx) mx = r[j];
            double sum = 0;
            for (int j = 0; j < a.Lk; j++) {
                r[j] = (!mask || mask[j]) ? expf(r[j] - mx) : 0.0f;
                sum += r[j];
            }
            const float inv = sum > 0 ? (float)(1.0 / sum) : 0.0f; /* all keys masked: zeros */
            for (int j = 0; j < a.Lk; j++) r[j] *= inv;
        }
        /* O (Lq, dvh) = P (Lq, Lk) V (Lk, dvh) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a.Lq, a.dvh, a.Lk, 1.0f, S, a.Lk,
                    v->data + (size_t)n * a.Lk * a.Dv + hd * a.dvh, a.Dv, 0.0f,
                    out->data + (size_t)n * a.Lq * a.Dv + hd * a.dvh, a.Dv);
    }
    dfs_node *node = dfs_record(g, attention_backward, out, 3, (dfs_tensor *[]){q, k, v});
    if (node) {
        node->i[0] = heads;
        node->f[0] = scale;
        node->saved = P;
    }
    return out;
}
