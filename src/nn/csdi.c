/* csdi.c - CSDI's denoiser (Tashiro et al. 2021, "CSDI: Conditional Score-based Diffusion
 * Models for Probabilistic Time Series Imputation", sec. 4 and appendix E), for windows of L
 * time steps of K features.
 *
 * Size key: B windows, L steps, K features, C channels, E step embedding, S side information.
 * Activations are channel-last, (B, L, K, C), so every 1x1 convolution of the paper is a
 * dfs_linear on the last dimension.
 *
 *   in    = [cond * mask, x_t * (1 - mask)]                          (B, L, K, 2)
 *   x     = ReLU(Linear_2->C(in))                                     (B, L, K, C)
 *   side  = [time embedding of the position (sinusoidal), calendar values, mask,
 *            learned feature embedding]                               (B, L, K, S)
 *   e     = SiLU(Linear(SiLU(Linear(sinusoidal(t)))))                 (B, E)
 *   per residual layer:
 *     y = x + Linear_E->C(e)                        (broadcast over L and K)
 *     y = TransformerLayer over L, for each (window, feature)        (skipped when L = 1)
 *     y = TransformerLayer over K, for each (window, step)           (skipped when K = 1)
 *     y = Linear_C->2C(y) + Linear_S->2C(side)
 *     y = sigmoid(y[:C]) * tanh(y[C:])                               (the gated activation)
 *     y = Linear_C->2C(y);  x = (x + y[:C]) / sqrt(2);  skip += y[C:]
 *   out   = Linear_C->1(ReLU(Linear_C->C(skip / sqrt(layers))))     (B, L, K)
 *
 * The transformer layers are PyTorch's nn.TransformerEncoderLayer as CSDI uses it (post-norm:
 * h = LN(h + attention(h)); h = LN(h + FF(h)), FF = Linear(GELU(Linear))), without dropout and
 * with the tanh form of GELU. The last projection starts at zero, as CSDI's, so a fresh net
 * predicts 0. */
#include "diffuse/nn.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dfs_tensor *qkv_w, *qkv_b, *out_w, *out_b, *ln1_w, *ln1_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b,
        *ln2_w, *ln2_b;
} csdi_tlayer;

typedef struct {
    dfs_tensor *step_w, *step_b;   /* E -> C */
    csdi_tlayer time, feat;
    dfs_tensor *mid_w, *mid_b;     /* C -> 2C */
    dfs_tensor *cond_w, *cond_b;   /* S -> 2C */
    dfs_tensor *out_w, *out_b;     /* C -> 2C */
} csdi_layer;

struct dfs_csdi {
    dfs_csdi_config cfg;
    dfs_params *params;
    dfs_tensor *in_w, *in_b, *emb1_w, *emb1_b, *emb2_w, *emb2_b, *feat_emb;
    dfs_tensor *o1_w, *o1_b, *o2_w, *o2_b;
    csdi_layer *layer;
};

void dfs_csdi_config_default(dfs_csdi_config *c) {
    memset(c, 0, sizeof *c);
    c->features = 1;
    c->channels = 64;
    c->layers = 4;
    c->heads = 8;
    c->ff = 64;
    c->step_dim = 128;
    c->time_dim = 128;
    c->feature_dim = 16;
    c->calendar = 0;
}

dfs_status dfs_csdi_config_check(const dfs_csdi_config *c) {
    if (!c || c->features < 1 || c->features > 4096 || c->channels < 1 || c->channels > 4096 ||
        c->layers < 1 || c->layers > 64 || c->heads < 1 || c->channels % c->heads != 0 ||
        c->ff < 1 || c->ff > 16384 || c->step_dim < 2 || c->step_dim > 4096 ||
        c->time_dim < 0 || c->time_dim == 1 || c->time_dim > 4096 || c->feature_dim < 0 || c->feature_dim > 4096 ||
        c->calendar < 0 || c->calendar > DFS_CSDI_MAX_CALENDAR) {
        if (c)
            dfs_set_error("CSDI: bad config (features %d (1..4096), channels %d, layers %d (1..64), "
                          "heads %d (must divide channels), ff %d, step_dim %d, time_dim %d (0 or 2..4096), "
                          "feature_dim %d, calendar %d (0..%d))",
                          c->features, c->channels, c->layers, c->heads, c->ff, c->step_dim,
                          c->time_dim, c->feature_dim, c->calendar, DFS_CSDI_MAX_CALENDAR);
        else
            dfs_set_error("CSDI: NULL config");
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

int dfs_csdi_side_dim(const dfs_csdi_config *c) {
    return c->time_dim + c->feature_dim + c->calendar + 1;
}

static dfs_tensor *add(dfs_params *p, const char *prefix, const char *name, int ndim, const int *shape) {
    char full[512];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return dfs_params_add(p, full, ndim, shape);
}

/* a Linear in -> out under prefix: weight (out, in), bias (out) */
static void add_linear(dfs_params *p, const char *prefix, int out, int in, dfs_tensor **w,
                       dfs_tensor **b) {
    *w = add(p, prefix, "weight", 2, (int[]){out, in});
    *b = add(p, prefix, "bias", 1, (int[]){out});
}

static void add_tlayer(dfs_params *p, const char *prefix, const dfs_csdi_config *c, csdi_tlayer *y) {
    char pre[256];
    const int C = c->channels;
#define LIN(name, out, in, w, b)                              \
    snprintf(pre, sizeof pre, "%s" name ".", prefix);         \
    add_linear(p, pre, out, in, w, b)
    LIN("qkv", 3 * C, C, &y->qkv_w, &y->qkv_b);
    LIN("attn_out", C, C, &y->out_w, &y->out_b);
    LIN("fc1", c->ff, C, &y->fc1_w, &y->fc1_b);
    LIN("fc2", C, c->ff, &y->fc2_w, &y->fc2_b);
#undef LIN
    y->ln1_w = add(p, prefix, "ln1.weight", 1, (int[]){C});
    y->ln1_b = add(p, prefix, "ln1.bias", 1, (int[]){C});
    y->ln2_w = add(p, prefix, "ln2.weight", 1, (int[]){C});
    y->ln2_b = add(p, prefix, "ln2.bias", 1, (int[]){C});
}

dfs_csdi *dfs_csdi_new(const dfs_csdi_config *c, dfs_rng *rng) {
    if (dfs_csdi_config_check(c) != DFS_OK) return NULL;
    dfs_csdi *n = calloc(1, sizeof *n);
    if (!n) goto nomem;
    n->cfg = *c;
    n->layer = calloc((size_t)c->layers, sizeof *n->layer);
    n->params = dfs_params_new();
    if (!n->layer || !n->params) goto nomem;
    dfs_params *p = n->params;
    const int C = c->channels, E = c->step_dim, S = dfs_csdi_side_dim(c);
    add_linear(p, "input.", C, 2, &n->in_w, &n->in_b);
    add_linear(p, "step_emb.fc1.", E, E, &n->emb1_w, &n->emb1_b);
    add_linear(p, "step_emb.fc2.", E, E, &n->emb2_w, &n->emb2_b);
    if (c->feature_dim > 0)
        n->feat_emb = add(p, "", "feature_emb.weight", 2, (int[]){c->features, c->feature_dim});
    for (int l = 0; l < c->layers; l++) {
        csdi_layer *y = &n->layer[l];
        char pre[128], sub[160];
        snprintf(pre, sizeof pre, "layers.%d.", l);
        snprintf(sub, sizeof sub, "%sstep.", pre);
        add_linear(p, sub, C, E, &y->step_w, &y->step_b);
        snprintf(sub, sizeof sub, "%stime.", pre);
        add_tlayer(p, sub, c, &y->time);
        snprintf(sub, sizeof sub, "%sfeature.", pre);
        add_tlayer(p, sub, c, &y->feat);
        snprintf(sub, sizeof sub, "%smid.", pre);
        add_linear(p, sub, 2 * C, C, &y->mid_w, &y->mid_b);
        snprintf(sub, sizeof sub, "%scond.", pre);
        add_linear(p, sub, 2 * C, S, &y->cond_w, &y->cond_b);
        snprintf(sub, sizeof sub, "%sout.", pre);
        add_linear(p, sub, 2 * C, C, &y->out_w, &y->out_b);
    }
    add_linear(p, "output.fc1.", C, C, &n->o1_w, &n->o1_b);
    add_linear(p, "output.fc2.", 1, C, &n->o2_w, &n->o2_b);
    if (dfs_params_finalize(p) != DFS_OK) goto nomem;
    dfs_csdi_init(n, rng);
    return n;
nomem:
    dfs_csdi_free(n);
    dfs_set_error("CSDI: out of memory for the parameters");
    return NULL;
}

void dfs_csdi_free(dfs_csdi *n) {
    if (!n) return;
    dfs_params_free(n->params);
    free(n->layer);
    free(n);
}

const dfs_csdi_config *dfs_csdi_config_of(const dfs_csdi *n) { return &n->cfg; }
dfs_params *dfs_csdi_params(dfs_csdi *n) { return n->params; }

static void fill_uniform(dfs_tensor *t, float bound, dfs_rng *rng) {
    for (size_t k = 0; k < t->n; k++) t->data[k] = bound * (2.0f * dfs_rng_uniform(rng) - 1.0f);
}

static void fill_const(dfs_tensor *t, float v) {
    for (size_t k = 0; k < t->n; k++) t->data[k] = v;
}

/* nn.Linear's init: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
static void init_linear(dfs_tensor *w, dfs_tensor *b, dfs_rng *rng) {
    const float bound = 1.0f / sqrtf((float)w->shape[1]);
    fill_uniform(w, bound, rng);
    fill_uniform(b, bound, rng);
}

/* CSDI's 1x1 convolutions: weight kaiming_normal_ (N(0, 2 / fan_in)), bias as nn.Conv1d's
 * default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
static void init_conv(dfs_tensor *w, dfs_tensor *b, dfs_rng *rng) {
    const float sd = sqrtf(2.0f / (float)w->shape[1]);
    dfs_rng_fill_normal(rng, w->data, w->n);
    for (size_t k = 0; k < w->n; k++) w->data[k] *= sd;
    fill_uniform(b, 1.0f / sqrtf((float)w->shape[1]), rng);
}

static void init_tlayer(csdi_tlayer *y, dfs_rng *rng) {
    init_linear(y->qkv_w, y->qkv_b, rng);
    init_linear(y->out_w, y->out_b, rng);
    init_linear(y->fc1_w, y->fc1_b, rng);
    init_linear(y->fc2_w, y->fc2_b, rng);
    fill_const(y->ln1_w, 1), fill_const(y->ln1_b, 0), fill_const(y->ln2_w, 1), fill_const(y->ln2_b, 0);
}

void dfs_csdi_init(dfs_csdi *n, dfs_rng *rng) {
    init_conv(n->in_w, n->in_b, rng);
    init_linear(n->emb1_w, n->emb1_b, rng);
    init_linear(n->emb2_w, n->emb2_b, rng);
    if (n->feat_emb) dfs_rng_fill_normal(rng, n->feat_emb->data, n->feat_emb->n); /* nn.Embedding */
    for (int l = 0; l < n->cfg.layers; l++) {
        csdi_layer *y = &n->layer[l];
        init_linear(y->step_w, y->step_b, rng);
        init_tlayer(&y->time, rng);
        init_tlayer(&y->feat, rng);
        init_conv(y->mid_w, y->mid_b, rng);
        init_conv(y->cond_w, y->cond_b, rng);
        init_conv(y->out_w, y->out_b, rng);
    }
    init_conv(n->o1_w, n->o1_b, rng);
    fill_const(n->o2_w, 0);
    fill_const(n->o2_b, 0);
    dfs_params_ema_init(n->params);
}

/* PyTorch's post-norm nn.TransformerEncoderLayer on h (N, S, C), without dropout. */
static dfs_tensor *transformer(dfs_graph *g, const csdi_tlayer *y, dfs_tensor *h, int C, int heads) {
    dfs_tensor *qkv = dfs_linear(g, h, y->qkv_w, y->qkv_b);
    dfs_tensor *q = dfs_slice(g, qkv, 2, 0, C), *k = dfs_slice(g, qkv, 2, C, C),
               *v = dfs_slice(g, qkv, 2, 2 * C, C);
    dfs_tensor *a = dfs_linear(g, dfs_attention(g, q, k, v, heads, NULL), y->out_w, y->out_b);
    h = dfs_layer_norm(g, dfs_add(g, h, a), y->ln1_w, y->ln1_b, 1e-5f);
    dfs_tensor *f = dfs_linear(g, dfs_gelu(g, dfs_linear(g, h, y->fc1_w, y->fc1_b)), y->fc2_w, y->fc2_b);
    return dfs_layer_norm(g, dfs_add(g, h, f), y->ln2_w, y->ln2_b, 1e-5f);
}

/* The side information (B, L, K, S) as (B L K, S): the constant part built here, the learned
 * feature embedding joined to it on the tape. */
static dfs_tensor *side_info(dfs_csdi *n, dfs_graph *g, const dfs_csdi_input *in) {
    const dfs_csdi_config *c = &n->cfg;
    const int B = in->B, L = in->L, K = in->K, TD = c->time_dim, NC = c->calendar;
    const int S0 = TD + NC + 1;
    const size_t rows = (size_t)B * L * K;
    dfs_tensor *s0 = dfs_tensor_new(g, 2, (int[]){(int)rows, S0});
    /* the time embedding of positions 0..L-1 (sines, then cosines), computed once */
    dfs_tensor *te = NULL;
    if (TD > 0) {
        int *pos = dfs_graph_alloc(g, (size_t)L * sizeof(int));
        for (int l = 0; l < L; l++) pos[l] = l;
        te = dfs_timestep_embedding(g, pos, L, TD);
    }
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            for (int k = 0; k < K; k++) {
                const size_t r = ((size_t)b * L + l) * K + k;
                float *o = s0->data + r * S0;
                if (TD > 0) memcpy(o, te->data + (size_t)l * TD, (size_t)TD * sizeof(float));
                for (int j = 0; j < NC; j++) o[TD + j] = in->calendar[((size_t)b * L + l) * NC + j];
                o[TD + NC] = in->cond_mask[r] ? 1.0f : 0.0f;
            }
    if (!n->feat_emb) return s0;
    int *idx = dfs_graph_alloc(g, rows * sizeof(int));
    for (size_t r = 0; r < rows; r++) idx[r] = (int)(r % (size_t)K);
    return dfs_concat(g, s0, dfs_embedding(g, n->feat_emb, idx, (int)rows), 1);
}

size_t dfs_csdi_side_floats(const dfs_csdi *n, int L, int K) {
    return (size_t)n->cfg.layers * L * K * 2 * n->cfg.channels;
}

void dfs_csdi_side_cache(dfs_csdi *n, dfs_graph *g, const dfs_csdi_input *in, float *out) {
    const dfs_csdi_config *c = &n->cfg;
    DFS_ASSERT(in && in->B >= 1 && in->L >= 1 && in->K >= 1 && in->K <= c->features && in->cond_mask &&
               (c->calendar == 0 || in->calendar) && out);
    const size_t D = (size_t)in->L * in->K, C2 = 2 * (size_t)c->channels;
    const int grad = dfs_graph_grad_enabled(g);
    dfs_graph_set_grad(g, 0);
    dfs_tensor *side = side_info(n, g, in);
    for (int l = 0; l < c->layers; l++) {
        dfs_tensor *p = dfs_linear(g, side, n->layer[l].cond_w, n->layer[l].cond_b); /* (B D, 2C) */
        for (int b = 0; b < in->B; b++)
            memcpy(out + ((size_t)b * c->layers + l) * D * C2, p->data + (size_t)b * D * C2,
                   D * C2 * sizeof(float));
    }
    dfs_graph_set_grad(g, grad);
}

/* layer l's side projection (B L K, 2C) gathered from the per-window blocks */
static dfs_tensor *cached_side(const dfs_csdi *n, dfs_graph *g, const dfs_csdi_input *in, int l) {
    const size_t D = (size_t)in->L * in->K, C2 = 2 * (size_t)n->cfg.channels;
    dfs_tensor *t = dfs_tensor_new(g, 2, (int[]){(int)((size_t)in->B * D), (int)C2});
    for (int b = 0; b < in->B; b++)
        memcpy(t->data + (size_t)b * D * C2, in->side[b] + (size_t)l * D * C2, D * C2 * sizeof(float));
    return t;
}

dfs_tensor *dfs_csdi_forward(dfs_csdi *n, dfs_graph *g, const dfs_csdi_input *in) {
    const dfs_csdi_config *c = &n->cfg;
    DFS_ASSERT(in && in->B >= 1 && in->L >= 1 && in->K >= 1 && in->K <= c->features && in->xt &&
               in->cond && in->cond_mask && in->t && (c->calendar == 0 || in->calendar || in->side));
    const int B = in->B, L = in->L, K = in->K, C = c->channels;
    const size_t rows = (size_t)B * L * K;
    /* tensor shapes are ints: the widest activation, (B L K, 3C) of the qkv projection */
    DFS_ASSERT(rows * 3 * (size_t)(C > c->ff ? C : c->ff) <= INT_MAX);
    /* the two input channels: the observed values where conditioned, x_t elsewhere */
    dfs_tensor *inp = dfs_tensor_new(g, 2, (int[]){(int)rows, 2});
    for (size_t r = 0; r < rows; r++) {
        const int m = in->cond_mask[r] != 0;
        inp->data[2 * r] = m ? in->cond[r] : 0.0f;
        inp->data[2 * r + 1] = m ? 0.0f : in->xt[r];
    }
    dfs_tensor *x = dfs_relu(g, dfs_linear(g, inp, n->in_w, n->in_b)); /* (BLK, C) */
    dfs_tensor *side = in->side ? NULL : side_info(n, g, in);          /* (BLK, S) */
    dfs_tensor *e = dfs_timestep_embedding(g, in->t, B, c->step_dim);
    e = dfs_silu(g, dfs_linear(g, e, n->emb1_w, n->emb1_b));
    e = dfs_silu(g, dfs_linear(g, e, n->emb2_w, n->emb2_b));           /* (B, E) */
    x = dfs_reshape(g, x, 4, (int[]){B, L, K, C});
    dfs_tensor *skip = NULL;
    const float r2 = (float)(1.0 / sqrt(2.0));
    for (int l = 0; l < c->layers; l++) {
        const csdi_layer *y = &n->layer[l];
        dfs_tensor *d = dfs_reshape(g, dfs_linear(g, e, y->step_w, y->step_b), 4, (int[]){B, 1, 1, C});
        dfs_tensor *h = dfs_add(g, x, d); /* (B, L, K, C) */
        if (L > 1) { /* across time: (B, K, L, C) as B K sequences of L */
            dfs_tensor *ht = dfs_permute(g, h, (int[]){0, 2, 1, 3});
            ht = transformer(g, &y->time, dfs_reshape(g, ht, 3, (int[]){B * K, L, C}), C, c->heads);
            h = dfs_permute(g, dfs_reshape(g, ht, 4, (int[]){B, K, L, C}), (int[]){0, 2, 1, 3});
        }
        if (K > 1) { /* across features: B L sequences of K */
            h = transformer(g, &y->feat, dfs_reshape(g, h, 3, (int[]){B * L, K, C}), C, c->heads);
        }
        h = dfs_reshape(g, h, 2, (int[]){(int)rows, C});
        dfs_tensor *sp = side ? dfs_linear(g, side, y->cond_w, y->cond_b) : cached_side(n, g, in, l);
        h = dfs_add(g, dfs_linear(g, h, y->mid_w, y->mid_b), sp);
        h = dfs_gated_tanh(g, h);
        h = dfs_linear(g, h, y->out_w, y->out_b); /* (BLK, 2C) */
        dfs_tensor *res = dfs_reshape(g, dfs_slice(g, h, 1, 0, C), 4, (int[]){B, L, K, C});
        dfs_tensor *sk = dfs_slice(g, h, 1, C, C);
        x = dfs_scale(g, dfs_add(g, x, res), r2);
        skip = skip ? dfs_add(g, skip, sk) : sk;
    }
    skip = dfs_scale(g, skip, (float)(1.0 / sqrt((double)c->layers)));
    dfs_tensor *o = dfs_relu(g, dfs_linear(g, skip, n->o1_w, n->o1_b));
    o = dfs_linear(g, o, n->o2_w, n->o2_b); /* (BLK, 1) */
    return dfs_reshape(g, o, 3, (int[]){B, L, K});
}

size_t dfs_csdi_param_count(const dfs_csdi_config *c) {
    const size_t C = (size_t)c->channels, E = (size_t)c->step_dim, F = (size_t)c->ff;
    const size_t S = (size_t)dfs_csdi_side_dim(c);
    const size_t tlayer = (3 * C * C + 3 * C) + (C * C + C) + (F * C + F) + (C * F + C) + 4 * C;
    const size_t layer = (E * C + C) + 2 * tlayer + (2 * C * C + 2 * C) + (2 * C * S + 2 * C) + (2 * C * C + 2 * C);
    return (2 * C + C) + 2 * (E * E + E) + (size_t)c->features * (size_t)c->feature_dim + (size_t)c->layers * layer +
           (C * C + C) + (C + 1);
}

double dfs_csdi_flops(const dfs_csdi_config *c, int L, int K) {
    const double C = c->channels, E = c->step_dim, S = dfs_csdi_side_dim(c), F = c->ff;
    const double tok = (double)L * K;
    /* multiply-adds per token of one transformer: qkv 3C^2, output C^2, FF 2CF, and the
     * attention's two products over a sequence of n: 2nC */
    const double tf_time = L > 1 ? 4 * C * C + 2 * C * F + 2.0 * L * C : 0;
    const double tf_feat = K > 1 ? 4 * C * C + 2 * C * F + 2.0 * K * C : 0;
    /* per token of a residual layer: the transformers, mid C->2C, cond S->2C, out C->2C */
    const double layer = tf_time + tf_feat + 2 * C * C + 2 * S * C + 2 * C * C;
    const double macs = tok * (2 * C + c->layers * layer + C * C + C) /* input, layers, head */
                        + 2 * E * E + c->layers * E * C;              /* step embedding */
    return 2.0 * macs;
}
