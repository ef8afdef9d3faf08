/* egnn.c - EDM's denoiser for molecules: the E(n)-equivariant graph network of Satorras et al.
 * 2021 ("E(n) Equivariant Graph Neural Networks", eqs. 3-6) in the form of Hoogeboom et al.
 * 2022 ("Equivariant Diffusion for Molecule Generation in 3D", app. B; their egnn/egnn_new.py
 * and EGNN_dynamics_QM9 in egnn/models.py), on dense batches of molecules padded to M atoms.
 *
 * Size key: B molecules, M atom slots, F node features, nf hidden width. Node arrays are
 * (B, M, C), edge arrays (B, M, M, C) with edge i -> j at [b, i, j, :] (src/ops/graph.c).
 *
 *   x0, h = xh masked (positions (B, M, 3), features (B, M, F); 0 on padded slots)
 *   h     = Linear_{F+1 -> nf}([h, t])                                     (B, M, nf)
 *   r0_ij = |x0_i - x0_j|^2                                                (B, M, M, 1)
 *   per block:
 *     r_ij = |x_i - x_j|^2, e_ij = [r_ij, r0_ij]                           (B, M, M, 2)
 *     d_ij = (x_i - x_j) / (sqrt(r_ij + 1e-8) + norm_constant)            (B, M, M, 3)
 *     per GCL (EGNN eqs. 3, 5, 6):
 *       m_ij = SiLU(Linear(SiLU(Linear([h_i, h_j, e_ij]))))               (B, M, M, nf)
 *       m_ij = m_ij sigmoid(Linear_{nf -> 1}(m_ij))                       (attention)
 *       h_i  = (h_i + Linear(SiLU(Linear([h_i, sum_j w_ij m_ij])))) mask_i
 *     EquivariantUpdate (EGNN eq. 4, EDM's normalised difference):
 *       phi_ij = Linear_{nf -> 1}(SiLU(Linear(SiLU(Linear([h_i, h_j, e_ij])))))
 *       phi_ij = coords_range tanh(phi_ij)                                 (tanh)
 *       x_i    = x_i + sum_j w_ij d_ij phi_ij
 *   out = [centre_mask(x - x0), (Linear_{nf -> F+1}(h))[:F] mask]         (B, M, 3 + F)
 * with w_ij = mask_i mask_j [i != j] / normalization_factor: EDM's edge mask and its division
 * of the sums, as the constant weights of dfs_pair_sum.
 *
 * The first Linear of each edge MLP, on the concatenation [h_i, h_j, e_ij] (2 nf + 2 inputs), is
 * W_a h_i + b + W_b h_j + W_e e_ij with W = [W_a W_b W_e] one (nf, 2 nf + 2) weight, as in
 * PyTorch: W_a h + b and W_b h are taken per atom (B M rows, not B M^2) and dfs_pair_silu
 * forms the pairs with the edge term and the SiLU in one pass, so the (B, M, M, 2 nf + 2)
 * concatenation is never built. The gated sums (attention, phi_ij d_ij) are dfs_pair_sum_gated,
 * without the gated edge arrays.
 *
 * Two of EDM's maskings are left out because they change nothing, bit for bit, for finite
 * values: x *= node_mask after each coordinate update (a padded slot starts at 0 and every
 * weight w_ij of its row is 0, so it stays 0; a present one is multiplied by 1), and
 * h *= node_mask at the end of each block (the block's last GCL has just done it). EDM's
 * check for NaN in the output (which it replaces by 0 with a warning) is the caller's. */
#include "diffuse/nn.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dfs_tensor *e0_w, *e0_b; /* edge_mlp.0: (nf, 2 nf + 2) */
    dfs_tensor *e1_w, *e1_b; /* edge_mlp.2: (nf, nf) */
    dfs_tensor *n0_w, *n0_b; /* node_mlp.0: (nf, 2 nf) */
    dfs_tensor *n1_w, *n1_b; /* node_mlp.2: (nf, nf) */
    dfs_tensor *a_w, *a_b;   /* att_mlp.0: (1, nf); NULL without attention */
} egnn_gcl;

typedef struct {
    egnn_gcl *gcl;           /* sublayers */
    dfs_tensor *c0_w, *c0_b; /* coord_mlp.0: (nf, 2 nf + 2) */
    dfs_tensor *c1_w, *c1_b; /* coord_mlp.2: (nf, nf) */
    dfs_tensor *c2_w;        /* coord_mlp.4: (1, nf), no bias */
} egnn_block;

struct dfs_egnn {
    dfs_egnn_config cfg;
    dfs_params *params;
    dfs_tensor *emb_w, *emb_b; /* embedding: (nf, F + 1) */
    dfs_tensor *out_w, *out_b; /* embedding_out: (F + 1, nf) */
    egnn_block *block;         /* layers */
};

void dfs_egnn_config_default(dfs_egnn_config *c) {
    memset(c, 0, sizeof *c);
    c->features = 6;
    c->hidden = 64;
    c->layers = 4;
    c->sublayers = 1;
    c->attention = 1;
    c->tanh = 1;
    c->coords_range = 15.0f;
    c->norm_constant = 1.0f;
    c->normalization_factor = 1.0f;
}

dfs_status dfs_egnn_config_check(const dfs_egnn_config *c) {
    if (!c) {
        dfs_set_error("EGNN: NULL config");
        return DFS_ERR_ARG;
    }
    if (c->features < 1 || c->features > 4096 || c->hidden < 1 || c->hidden > 4096 ||
        c->layers < 1 || c->layers > 64 || c->sublayers < 1 || c->sublayers > 16 ||
        (c->attention != 0 && c->attention != 1) || (c->tanh != 0 && c->tanh != 1) ||
        !(isfinite(c->coords_range) && c->coords_range > 0) ||
        !(isfinite(c->norm_constant) && c->norm_constant >= 0) ||
        !(isfinite(c->normalization_factor) && c->normalization_factor > 0)) {
        dfs_set_error("EGNN: bad config (features %d (1..4096), hidden %d (1..4096), layers %d "
                      "(1..64), sublayers %d (1..16), attention %d and tanh %d (0 or 1), "
                      "coords_range %g (> 0), norm_constant %g (>= 0), normalization_factor %g "
                      "(> 0))",
                      c->features, c->hidden, c->layers, c->sublayers, c->attention, c->tanh,
                      (double)c->coords_range, (double)c->norm_constant,
                      (double)c->normalization_factor);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

/* a Linear in -> out named prefix + "weight" / "bias"; b NULL: no bias */
static void add_linear(dfs_params *p, const char *prefix, int out, int in, dfs_tensor **w,
                       dfs_tensor **b) {
    char name[256];
    snprintf(name, sizeof name, "%sweight", prefix);
    *w = dfs_params_add(p, name, 2, (int[]){out, in});
    if (!b) return;
    snprintf(name, sizeof name, "%sbias", prefix);
    *b = dfs_params_add(p, name, 1, (int[]){out});
}

dfs_egnn *dfs_egnn_new(const dfs_egnn_config *c, dfs_rng *rng) {
    if (dfs_egnn_config_check(c) != DFS_OK) return NULL;
    dfs_egnn *n = calloc(1, sizeof *n);
    if (!n) goto nomem;
    n->cfg = *c;
    n->block = calloc((size_t)c->layers, sizeof *n->block);
    n->params = dfs_params_new();
    if (!n->block || !n->params) goto nomem;
    for (int l = 0; l < c->layers; l++) {
        n->block[l].gcl = calloc((size_t)c->sublayers, sizeof *n->block[l].gcl);
        if (!n->block[l].gcl) goto nomem;
    }
    /* EDM's module order: embedding, embedding_out, then the blocks (their GCLs, then the
     * coordinate update), so that the block is laid out as its state_dict */
    dfs_params *p = n->params;
    const int nf = c->hidden, F1 = c->features + 1, E = 2 * nf + 2;
    add_linear(p, "embedding.", nf, F1, &n->emb_w, &n->emb_b);
    add_linear(p, "embedding_out.", F1, nf, &n->out_w, &n->out_b);
    for (int l = 0; l < c->layers; l++) {
        egnn_block *y = &n->block[l];
        char pre[128];
        for (int s = 0; s < c->sublayers; s++) {
            egnn_gcl *q = &y->gcl[s];
            snprintf(pre, sizeof pre, "e_block_%d.gcl_%d.edge_mlp.0.", l, s);
            add_linear(p, pre, nf, E, &q->e0_w, &q->e0_b);
            snprintf(pre, sizeof pre, "e_block_%d.gcl_%d.edge_mlp.2.", l, s);
            add_linear(p, pre, nf, nf, &q->e1_w, &q->e1_b);
            snprintf(pre, sizeof pre, "e_block_%d.gcl_%d.node_mlp.0.", l, s);
            add_linear(p, pre, nf, 2 * nf, &q->n0_w, &q->n0_b);
            snprintf(pre, sizeof pre, "e_block_%d.gcl_%d.node_mlp.2.", l, s);
            add_linear(p, pre, nf, nf, &q->n1_w, &q->n1_b);
            if (c->attention) {
                snprintf(pre, sizeof pre, "e_block_%d.gcl_%d.att_mlp.0.", l, s);
                add_linear(p, pre, 1, nf, &q->a_w, &q->a_b);
            }
        }
        snprintf(pre, sizeof pre, "e_block_%d.gcl_equiv.coord_mlp.0.", l);
        add_linear(p, pre, nf, E, &y->c0_w, &y->c0_b);
        snprintf(pre, sizeof pre, "e_block_%d.gcl_equiv.coord_mlp.2.", l);
        add_linear(p, pre, nf, nf, &y->c1_w, &y->c1_b);
        snprintf(pre, sizeof pre, "e_block_%d.gcl_equiv.coord_mlp.4.", l);
        add_linear(p, pre, 1, nf, &y->c2_w, NULL);
    }
    if (dfs_params_finalize(p) != DFS_OK) goto nomem;
    dfs_egnn_init(n, rng);
    return n;
nomem:
    dfs_egnn_free(n);
    dfs_set_error("EGNN: out of memory for the parameters");
    return NULL;
}

void dfs_egnn_free(dfs_egnn *n) {
    if (!n) return;
    dfs_params_free(n->params);
    if (n->block)
        for (int l = 0; l < n->cfg.layers; l++)
            free(n->block[l].gcl);
    free(n->block);
    free(n);
}

const dfs_egnn_config *dfs_egnn_config_of(const dfs_egnn *n) {
    return &n->cfg;
}
dfs_params *dfs_egnn_params(dfs_egnn *n) {
    return n->params;
}

static void fill_uniform(dfs_tensor *t, float bound, dfs_rng *rng) {
    for (size_t k = 0; k < t->n; k++)
        t->data[k] = bound * (2.0f * dfs_rng_uniform(rng) - 1.0f);
}

/* nn.Linear's init: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
static void init_linear(dfs_tensor *w, dfs_tensor *b, dfs_rng *rng) {
    const float bound = 1.0f / sqrtf((float)w->shape[1]);
    fill_uniform(w, bound, rng);
    if (b) fill_uniform(b, bound, rng);
}

void dfs_egnn_init(dfs_egnn *n, dfs_rng *rng) {
    init_linear(n->emb_w, n->emb_b, rng);
    init_linear(n->out_w, n->out_b, rng);
    for (int l = 0; l < n->cfg.layers; l++) {
        egnn_block *y = &n->block[l];
        for (int s = 0; s < n->cfg.sublayers; s++) {
            egnn_gcl *q = &y->gcl[s];
            init_linear(q->e0_w, q->e0_b, rng);
            init_linear(q->e1_w, q->e1_b, rng);
            init_linear(q->n0_w, q->n0_b, rng);
            init_linear(q->n1_w, q->n1_b, rng);
            if (q->a_w) init_linear(q->a_w, q->a_b, rng);
        }
        init_linear(y->c0_w, y->c0_b, rng);
        init_linear(y->c1_w, y->c1_b, rng);
        /* EDM: xavier_uniform_(gain 0.001) on the last coordinate layer, bound gain
         * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), so that the coordinates start
         * almost still */
        fill_uniform(y->c2_w, 0.001f * sqrtf(6.0f / (float)(n->cfg.hidden + 1)), rng);
    }
    dfs_params_ema_init(n->params);
}

/* The first layer of an edge MLP, SiLU(Linear([h_i, h_j, e_ij])) with weight w (nf, 2 nf + 2)
 * and bias b, as silu(w[:, :nf] h_i + b + w[:, nf:2nf] h_j + w[:, 2nf:] e_ij): (B, M, M, nf). */
static dfs_tensor *edge_layer(dfs_graph *g, dfs_tensor *h, dfs_tensor *e, dfs_tensor *w,
                              dfs_tensor *b) {
    const int nf = h->shape[2];
    dfs_tensor *wa = dfs_slice(g, w, 1, 0, nf), *wb = dfs_slice(g, w, 1, nf, nf),
               *we = dfs_slice(g, w, 1, 2 * nf, 2);
    return dfs_pair_silu(g, dfs_linear(g, h, wa, b), dfs_linear(g, h, wb, NULL), e, we);
}

/* EDM's GCL (egnn_new.py): the messages, their gated and weighted sum, the residual node MLP,
 * the node mask. h (B, M, nf), e (B, M, M, 2), w (B, M, M), mask (B, M, 1). */
static dfs_tensor *gcl(dfs_graph *g, const egnn_gcl *q, dfs_tensor *h, dfs_tensor *e,
                       const float *w, dfs_tensor *mask) {
    dfs_tensor *m = edge_layer(g, h, e, q->e0_w, q->e0_b);
    m = dfs_silu(g, dfs_linear(g, m, q->e1_w, q->e1_b)); /* (B, M, M, nf) */
    dfs_tensor *agg;                                     /* (B, M, nf) */
    if (q->a_w)
        agg = dfs_pair_sum_gated(g, m, dfs_sigmoid(g, dfs_linear(g, m, q->a_w, q->a_b)), w);
    else
        agg = dfs_pair_sum(g, m, w);
    dfs_tensor *u = dfs_silu(g, dfs_linear(g, dfs_concat(g, h, agg, 2), q->n0_w, q->n0_b));
    u = dfs_linear(g, u, q->n1_w, q->n1_b);
    return dfs_mul(g, dfs_add(g, h, u), mask);
}

/* EDM's EquivariantUpdate: x (B, M, 3) moved along the normalised differences d (B, M, M, 3)
 * by the invariant edge scalars phi (B, M, M, 1). */
static dfs_tensor *coord_update(dfs_graph *g, const dfs_egnn_config *c, const egnn_block *y,
                                dfs_tensor *h, dfs_tensor *x, dfs_tensor *d, dfs_tensor *e,
                                const float *w) {
    dfs_tensor *m = edge_layer(g, h, e, y->c0_w, y->c0_b);
    m = dfs_silu(g, dfs_linear(g, m, y->c1_w, y->c1_b));
    dfs_tensor *phi = dfs_linear(g, m, y->c2_w, NULL); /* (B, M, M, 1) */
    if (c->tanh) phi = dfs_scale(g, dfs_tanh(g, phi), c->coords_range);
    return dfs_add(g, x, dfs_pair_sum_gated(g, d, phi, w));
}

/* |x_i - x_j|^2 (B, M, M, 1) of the differences dx (B, M, M, 3) */
static dfs_tensor *sq_dist(dfs_graph *g, dfs_tensor *dx) {
    return dfs_sum_last(g, dfs_mul(g, dx, dx));
}

/* The network from the masked positions x0 (B, M, 3) and features h (B, M, F). */
static dfs_tensor *egnn(dfs_egnn *n, dfs_graph *g, dfs_tensor *x0, dfs_tensor *h, const float *t,
                        const uint8_t *node_mask) {
    const dfs_egnn_config *c = &n->cfg;
    const int B = x0->shape[0], M = x0->shape[1], F = c->features;
    /* the constants: the node mask as floats, the time column, the edge weights */
    dfs_tensor *mask = dfs_tensor_new(g, 3, (int[]){B, M, 1});
    dfs_tensor *tc = dfs_tensor_new(g, 3, (int[]){B, M, 1});
    float *w = dfs_graph_alloc(g, (size_t)B * M * M * sizeof(float));
    const float wv = 1.0f / c->normalization_factor;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++) {
            const int mi = node_mask[(size_t)b * M + i] != 0;
            mask->data[(size_t)b * M + i] = mi ? 1.0f : 0.0f;
            tc->data[(size_t)b * M + i] = t[b];
            float *wr = w + ((size_t)b * M + i) * M;
            for (int j = 0; j < M; j++)
                wr[j] = mi && node_mask[(size_t)b * M + j] && i != j ? wv : 0.0f;
        }
    h = dfs_linear(g, dfs_concat(g, h, tc, 2), n->emb_w, n->emb_b); /* (B, M, nf) */
    dfs_tensor *dx = dfs_pair_diff(g, x0), *r0 = sq_dist(g, dx);
    dfs_tensor *x = x0;
    for (int l = 0; l < c->layers; l++) {
        const egnn_block *y = &n->block[l];
        if (l > 0) dx = dfs_pair_diff(g, x);
        dfs_tensor *r = l > 0 ? sq_dist(g, dx) : r0;
        dfs_tensor *e = dfs_concat(g, r, r0, 3); /* (B, M, M, 2) */
        dfs_tensor *len = dfs_add_scalar(g, dfs_sqrt(g, r, 1e-8f), c->norm_constant);
        dfs_tensor *d = dfs_mul(g, dx, dfs_recip(g, len)); /* (B, M, M, 3) */
        for (int s = 0; s < c->sublayers; s++)
            h = gcl(g, &y->gcl[s], h, e, w, mask);
        x = coord_update(g, c, y, h, x, d, e, w);
    }
    dfs_tensor *ho = dfs_linear(g, h, n->out_w, n->out_b); /* (B, M, F + 1) */
    ho = dfs_mul(g, dfs_slice(g, ho, 2, 0, F), mask);      /* the time column dropped */
    dfs_tensor *vel = dfs_center_masked(g, dfs_add(g, x, dfs_scale(g, x0, -1.0f)), node_mask);
    return dfs_concat(g, vel, ho, 2); /* (B, M, 3 + F) */
}

/* tensor shapes are ints: the widest edge array (B, M, M, max(nf, 3)) and the widest node
 * array (B, M, max(nf, F + 3)) must count at most INT_MAX floats */
static void assert_sizes(const dfs_egnn_config *c, int B, int M) {
    DFS_ASSERT(B >= 1 && M >= 1);
    const size_t edge = (size_t)(c->hidden > 3 ? c->hidden : 3);
    const size_t node = (size_t)(c->hidden > c->features + 3 ? c->hidden : c->features + 3);
    DFS_ASSERT((size_t)B * M * M <= INT_MAX / edge && (size_t)B * M <= INT_MAX / node);
}

dfs_tensor *dfs_egnn_forward(dfs_egnn *n, dfs_graph *g, const dfs_egnn_input *in) {
    const dfs_egnn_config *c = &n->cfg;
    DFS_ASSERT(in && in->xh && in->t && in->node_mask);
    const int B = in->B, M = in->M, F = c->features, D = 3 + F;
    assert_sizes(c, B, M);
    /* the masked input, by selection: a padded slot's values are never read */
    dfs_tensor *x0 = dfs_tensor_new(g, 3, (int[]){B, M, 3});
    dfs_tensor *h = dfs_tensor_new(g, 3, (int[]){B, M, F});
    for (size_t a = 0; a < (size_t)B * M; a++) {
        const int m = in->node_mask[a] != 0;
        const float *src = in->xh + a * D;
        for (int k = 0; k < 3; k++)
            x0->data[a * 3 + k] = m ? src[k] : 0.0f;
        for (int k = 0; k < F; k++)
            h->data[a * F + k] = m ? src[3 + k] : 0.0f;
    }
    return egnn(n, g, x0, h, in->t, in->node_mask);
}

dfs_tensor *dfs_egnn_apply(dfs_egnn *n, dfs_graph *g, dfs_tensor *xh, const float *t,
                           const uint8_t *node_mask) {
    const dfs_egnn_config *c = &n->cfg;
    DFS_ASSERT(xh && t && node_mask && xh->ndim == 3 && xh->shape[2] == 3 + c->features);
    const int B = xh->shape[0], M = xh->shape[1];
    assert_sizes(c, B, M);
    dfs_tensor *mask = dfs_tensor_new(g, 3, (int[]){B, M, 1});
    for (size_t a = 0; a < (size_t)B * M; a++)
        mask->data[a] = node_mask[a] ? 1.0f : 0.0f;
    dfs_tensor *xm = dfs_mul(g, xh, mask); /* EDM: xh * node_mask */
    return egnn(n, g, dfs_slice(g, xm, 2, 0, 3), dfs_slice(g, xm, 2, 3, c->features), t, node_mask);
}

size_t dfs_egnn_param_count(const dfs_egnn_config *c) {
    const size_t nf = (size_t)c->hidden, F1 = (size_t)c->features + 1, E = 2 * nf + 2;
    const size_t gcl = (E * nf + nf) + (nf * nf + nf) + (2 * nf * nf + nf) + (nf * nf + nf) +
                       (c->attention ? nf + 1 : 0);
    const size_t equiv = (E * nf + nf) + (nf * nf + nf) + nf;
    return (F1 * nf + nf) + (nf * F1 + F1) +
           (size_t)c->layers * ((size_t)c->sublayers * gcl + equiv);
}

double dfs_egnn_flops(const dfs_egnn_config *c, int M) {
    const double nf = c->hidden, F1 = c->features + 1, P = (double)M * M;
    /* an edge MLP's first Linear: the node terms 2 nf^2 per atom, the edge term 2 nf per
     * edge; its second nf^2 per edge */
    const double edge_mlp = M * 2 * nf * nf + P * (2 * nf + nf * nf);
    const double gcl = edge_mlp + (c->attention ? P * nf : 0) + M * 3 * nf * nf; /* node MLP */
    const double equiv = edge_mlp + P * nf;
    const double macs = M * 2 * F1 * nf + c->layers * (c->sublayers * gcl + equiv);
    return 2.0 * macs;
}
