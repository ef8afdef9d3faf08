/* graph_dump.c OUT.safetensors - runs the EGNN ops of src/ops/graph.c (pair_expand, pair_diff,
 * pair_sum, sum_last, sqrt, recip, add_scalar, center_masked, pair_silu, pair_sum_gated) and
 * EDM's coordinate update composed from them, forward and backward (dout = R, random) on fixed
 * random inputs, and writes inputs, constants, outputs and gradients for torch_graph.py to
 * repeat in PyTorch (tests/parity/parity_graph.sh). Four padded molecules of M = 6 slots: 6
 * atoms, 4, 1 and none. Tensors of case NAME: NAME.in0 .. NAME.in3 (inputs, as many as the op
 * has), NAME.R, NAME.out, NAME.d0 .. NAME.d3 (gradients of the inputs), NAME.w (edge weights)
 * and NAME.mask (node mask, as floats) where the op has them; scalar arguments as metadata
 * NAME.eps, NAME.b. */
#include "diffuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 4, M = 6, C = 5, D = 3, K = 2, MAXKEEP = 128 };
/* node mask: molecule 0 full, 1 four atoms scattered, 2 one atom, 3 none */
static const uint8_t node_mask[B * M] = {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1,
                                         0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const float SQRT_EPS = 0.25f, ADD_B = 0.75f, EGNN_EPS = 1e-8f;

static float *keep[MAXKEEP];
static int nkeep;

static float *alloc(size_t n) {
    if (nkeep == MAXKEEP) {
        fprintf(stderr, "graph_dump: raise MAXKEEP\n");
        exit(1);
    }
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "graph_dump: out of memory\n");
        exit(1);
    }
    return keep[nkeep++] = p;
}

static float *randn(dfs_rng *r, size_t n, float scale) {
    float *p = alloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = scale * dfs_rng_normal(r);
    return p;
}

static float *copy(const float *s, size_t n) {
    float *p = alloc(n);
    memcpy(p, s, n * sizeof(float));
    return p;
}

/* NAME.what, shape of t */
static void add(dfs_st_writer *w, const char *name, const char *what, int ndim, const int *shape,
                const float *data) {
    char key[64];
    int64_t sh[DFS_MAXDIM];
    for (int d = 0; d < ndim; d++)
        sh[d] = shape[d];
    snprintf(key, sizeof key, "%s.%s", name, what);
    dfs_st_writer_add(w, key, DFS_DT_F32, ndim, sh, data);
}

/* EGNN edge weights m_i m_j (i != j) / (M - 1), (B, M, M) */
static float *egnn_weights(void) {
    float *w = alloc((size_t)B * M * M);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++)
                w[((size_t)b * M + i) * M + j] =
                    node_mask[b * M + i] && node_mask[b * M + j] && i != j ? 1.0f / (M - 1) : 0;
    return w;
}

typedef enum {
    OP_EXPAND0,
    OP_EXPAND1,
    OP_DIFF,
    OP_PSUM,
    OP_PSUM_NOW,
    OP_SUM_LAST,
    OP_SQRT,
    OP_RECIP,
    OP_ADD_SCALAR,
    OP_CENTER,
    OP_EGNN,
    OP_PSILU,
    OP_GATED,
    OP_COUNT
} op_id;
static const char *op_name[OP_COUNT] = {"pair_expand0",  "pair_expand1",  "pair_diff", "pair_sum",
                                        "pair_sum_nw",   "sum_last",      "sqrt",      "recip",
                                        "add_scalar",    "center_masked", "egnn",      "pair_silu",
                                        "pair_sum_gated"};

/* EDM's coordinate update (Hoogeboom et al. 2022, app. B, eq. 12) with phi_ij = h_i . h_j:
 * out_i = sum_j w_ij phi_ij (x_i - x_j) / (sqrt(|x_i - x_j|^2 + 1e-8) + 1) */
static dfs_tensor *egnn(dfs_graph *g, dfs_tensor *x, dfs_tensor *h, const float *w) {
    dfs_tensor *d = dfs_pair_diff(g, x);
    dfs_tensor *sq = dfs_sum_last(g, dfs_mul(g, d, d));
    dfs_tensor *inv = dfs_recip(g, dfs_add_scalar(g, dfs_sqrt(g, sq, EGNN_EPS), 1.0f));
    dfs_tensor *phi =
        dfs_sum_last(g, dfs_mul(g, dfs_pair_expand(g, h, 0), dfs_pair_expand(g, h, 1)));
    return dfs_pair_sum(g, dfs_mul(g, dfs_mul(g, d, inv), phi), w);
}

static void run(dfs_st_writer *wr, dfs_rng *rng, op_id op) {
    const char *name = op_name[op];
    /* inputs: count, dims and shapes (node arrays (B, M, C) unless set) */
    int nin = 1, nd[4] = {3, 3, 3, 3}, sh[4][4];
    for (int k = 0; k < 4; k++)
        sh[k][0] = B, sh[k][1] = M, sh[k][2] = C, sh[k][3] = 0;
    switch (op) {
    case OP_DIFF:
    case OP_CENTER:
        sh[0][2] = D;
        break;
    case OP_PSUM:
    case OP_PSUM_NOW:
        nd[0] = 4, sh[0][2] = M, sh[0][3] = C;
        break;
    case OP_SUM_LAST:
        nd[0] = 4, sh[0][2] = M, sh[0][3] = D;
        break;
    case OP_SQRT:
    case OP_RECIP:
    case OP_ADD_SCALAR:
        nd[0] = 4, sh[0][2] = M, sh[0][3] = 1;
        break;
    case OP_EGNN:
        nin = 2, sh[0][2] = D;
        break;
    case OP_PSILU: /* a, c (B, M, C), e (B, M, M, K), w (C, K) */
        nin = 4, nd[2] = 4, sh[2][2] = M, sh[2][3] = K;
        nd[3] = 2, sh[3][0] = C, sh[3][1] = K;
        break;
    case OP_GATED: /* e (B, M, M, D), s (B, M, M, 1) */
        nin = 2, nd[0] = 4, sh[0][2] = M, sh[0][3] = D;
        nd[1] = 4, sh[1][2] = M, sh[1][3] = 1;
        break;
    default:
        break;
    }
    size_t n[4];
    float *x[4] = {NULL, NULL, NULL, NULL};
    for (int k = 0; k < nin; k++) {
        n[k] = 1;
        for (int d = 0; d < nd[k]; d++)
            n[k] *= (size_t)sh[k][d];
    }
    x[0] = randn(rng, n[0], op == OP_EGNN ? 1.5f : 1.0f);
    if (op == OP_SQRT) /* squared distances: >= 0 */
        for (size_t i = 0; i < n[0]; i++)
            x[0][i] *= x[0][i];
    if (op == OP_RECIP) /* 1 + distance, either sign: |x| >= 1 */
        for (size_t i = 0; i < n[0]; i++)
            x[0][i] = (i % 2 ? 1.0f : -1.0f) * (1.0f + x[0][i] * x[0][i]);
    if (op == OP_EGNN) x[1] = randn(rng, n[1], 0.5f);
    if (op == OP_PSILU) /* EDM's edge attributes are squared distances: >= 0 */
        for (int k = 1; k < 4; k++) {
            x[k] = randn(rng, n[k], 1.0f);
            for (size_t i = 0; k == 2 && i < n[k]; i++)
                x[k][i] *= x[k][i];
        }
    if (op == OP_GATED) x[1] = randn(rng, n[1], 1.0f);
    float *w = NULL;
    if (op == OP_PSUM || op == OP_GATED) { /* random weights on the edges between atoms present */
        w = egnn_weights();
        for (size_t i = 0; i < (size_t)B * M * M; i++)
            w[i] *= (M - 1) * 2 * dfs_rng_uniform(rng);
    } else if (op == OP_EGNN) {
        w = egnn_weights();
    }

    dfs_graph *g = dfs_graph_new();
    dfs_tensor *t[4] = {NULL, NULL, NULL, NULL};
    for (int k = 0; k < nin; k++) {
        t[k] = dfs_tensor_wrap(g, x[k], nd[k], sh[k]);
        t[k]->requires_grad = 1;
    }
    dfs_tensor *a = t[0], *out;
    switch (op) {
    case OP_EXPAND0:
        out = dfs_pair_expand(g, a, 0);
        break;
    case OP_EXPAND1:
        out = dfs_pair_expand(g, a, 1);
        break;
    case OP_DIFF:
        out = dfs_pair_diff(g, a);
        break;
    case OP_PSUM:
        out = dfs_pair_sum(g, a, w);
        break;
    case OP_PSUM_NOW:
        out = dfs_pair_sum(g, a, NULL);
        break;
    case OP_SUM_LAST:
        out = dfs_sum_last(g, a);
        break;
    case OP_SQRT:
        out = dfs_sqrt(g, a, SQRT_EPS);
        break;
    case OP_RECIP:
        out = dfs_recip(g, a);
        break;
    case OP_ADD_SCALAR:
        out = dfs_add_scalar(g, a, ADD_B);
        break;
    case OP_CENTER:
        out = dfs_center_masked(g, a, node_mask);
        break;
    case OP_PSILU:
        out = dfs_pair_silu(g, t[0], t[1], t[2], t[3]);
        break;
    case OP_GATED:
        out = dfs_pair_sum_gated(g, t[0], t[1], w);
        break;
    default:
        out = egnn(g, a, t[1], w);
        break;
    }
    float *R = randn(rng, out->n, 1.0f);
    dfs_backward_grad(g, out, R);
    add(wr, name, "R", out->ndim, out->shape, R);
    add(wr, name, "out", out->ndim, out->shape, copy(out->data, out->n));
    for (int k = 0; k < nin; k++) {
        char in[16], dn[16]; /* "in" or "d" and any int: gcc -O1 checks the whole range */
        snprintf(in, sizeof in, "in%d", k);
        snprintf(dn, sizeof dn, "d%d", k);
        add(wr, name, in, nd[k], sh[k], x[k]);
        add(wr, name, dn, nd[k], sh[k], copy(t[k]->grad, n[k]));
    }
    if (w) add(wr, name, "w", 3, (int[]){B, M, M}, w);
    if (op == OP_CENTER) {
        float *m = alloc((size_t)B * M);
        for (int i = 0; i < B * M; i++)
            m[i] = node_mask[i];
        add(wr, name, "mask", 2, (int[]){B, M}, m);
    }
    dfs_graph_free(g);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: graph_dump OUT.safetensors\n");
        return 2;
    }
    dfs_rng rng;
    dfs_rng_seed(&rng, 4242);
    dfs_st_writer *w = dfs_st_writer_new();
    for (int op = 0; op < OP_COUNT; op++)
        run(w, &rng, (op_id)op);
    char v[32];
    snprintf(v, sizeof v, "%.9g", SQRT_EPS);
    dfs_st_writer_meta(w, "sqrt.eps", v);
    snprintf(v, sizeof v, "%.9g", ADD_B);
    dfs_st_writer_meta(w, "add_scalar.b", v);
    snprintf(v, sizeof v, "%.9g", EGNN_EPS);
    dfs_st_writer_meta(w, "egnn.eps", v);
    dfs_status s = dfs_st_writer_write(w, argv[1]);
    dfs_st_writer_free(w);
    for (int i = 0; i < nkeep; i++)
        free(keep[i]);
    if (s != DFS_OK) {
        fprintf(stderr, "graph_dump: %s\n", dfs_last_error());
        return 1;
    }
    return 0;
}
