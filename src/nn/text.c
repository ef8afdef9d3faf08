/* text.c - a small transformer text encoder (Vaswani et al. 2017, encoder only, pre-LayerNorm as
 * in GPT-2 and CLIP's text tower), to be trained jointly with the U-Net for text-to-image
 * (Imagen and GLIDE condition on such per-token outputs and a pooled vector).
 *
 * Size key: N captions, L tokens (max_len), d width, h heads, V vocabulary.
 *
 *   x   = tok_emb[tokens] + pos_emb[0..L-1]                        (N, L, d)
 *   per layer:
 *     x = x + out( attention( qkv( LN1(x) ), key mask ) )            multi-head, d / h per head
 *     x = x + fc2( GELU( fc1( LN2(x) ) ) )                           MLP of width 4d
 *   tokens = LN_final(x)                                            (N, L, d)
 *   pooled = mean of tokens over the unmasked positions              (N, d)
 *
 * Padding positions are hidden as keys from every query (dfs_attention's key mask) and left out
 * of the pooled mean, so a caption's encoding does not depend on how much padding follows it.
 * Parameters are declared into a caller's dfs_params (under a name prefix) so that the U-Net,
 * AdamW, EMA and checkpoints treat them as one block with the rest of the model. */
#include "diffuse/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dfs_tensor *ln1_w, *ln1_b, *qkv_w, *qkv_b, *out_w, *out_b;
    dfs_tensor *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} text_layer;

struct dfs_text_encoder {
    dfs_text_config cfg;
    dfs_tensor *tok_emb, *pos_emb, *lnf_w, *lnf_b;
    text_layer *layer;
};

dfs_status dfs_text_config_check(const dfs_text_config *c) {
    if (c->vocab < 2 || c->vocab > 1000000 || c->max_len < 1 || c->max_len > 4096 || c->dim < 1 ||
        c->dim > 8192 || c->layers < 0 || c->layers > 64 || c->heads < 1 || c->dim % c->heads != 0) {
        dfs_set_error("text encoder: bad config (vocab %d, max_len %d, dim %d, layers %d, heads %d; heads must "
                      "divide dim)",
                      c->vocab, c->max_len, c->dim, c->layers, c->heads);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

static dfs_tensor *add(dfs_params *p, const char *prefix, const char *name, int ndim, const int *shape) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return dfs_params_add(p, full, ndim, shape);
}

dfs_text_encoder *dfs_text_encoder_declare(dfs_params *p, const char *prefix, const dfs_text_config *c) {
    if (dfs_text_config_check(c) != DFS_OK) return NULL;
    dfs_text_encoder *te = calloc(1, sizeof *te);
    if (!te) return NULL;
    te->layer = calloc((size_t)(c->layers ? c->layers : 1), sizeof(text_layer));
    if (!te->layer) {
        free(te);
        return NULL;
    }
    te->cfg = *c;
    const int d = c->dim;
    te->tok_emb = add(p, prefix, "tok_emb.weight", 2, (int[]){c->vocab, d});
    te->pos_emb = add(p, prefix, "pos_emb.weight", 2, (int[]){c->max_len, d});
    for (int l = 0; l < c->layers; l++) {
        text_layer *y = &te->layer[l];
        char pre[200];
        snprintf(pre, sizeof pre, "%slayers.%d.", prefix, l);
        y->ln1_w = add(p, pre, "ln1.weight", 1, (int[]){d});
        y->ln1_b = add(p, pre, "ln1.bias", 1, (int[]){d});
        y->qkv_w = add(p, pre, "qkv.weight", 2, (int[]){3 * d, d});
        y->qkv_b = add(p, pre, "qkv.bias", 1, (int[]){3 * d});
        y->out_w = add(p, pre, "out.weight", 2, (int[]){d, d});
        y->out_b = add(p, pre, "out.bias", 1, (int[]){d});
        y->ln2_w = add(p, pre, "ln2.weight", 1, (int[]){d});
        y->ln2_b = add(p, pre, "ln2.bias", 1, (int[]){d});
        y->fc1_w = add(p, pre, "fc1.weight", 2, (int[]){4 * d, d});
        y->fc1_b = add(p, pre, "fc1.bias", 1, (int[]){4 * d});
        y->fc2_w = add(p, pre, "fc2.weight", 2, (int[]){d, 4 * d});
        y->fc2_b = add(p, pre, "fc2.bias", 1, (int[]){d});
    }
    te->lnf_w = add(p, prefix, "ln_final.weight", 1, (int[]){d});
    te->lnf_b = add(p, prefix, "ln_final.bias", 1, (int[]){d});
    return te;
}

void dfs_text_encoder_free(dfs_text_encoder *te) {
    if (!te) return;
    free(te->layer);
    free(te);
}

const dfs_text_config *dfs_text_encoder_config(const dfs_text_encoder *te) { return &te->cfg; }

static void fill_uniform(dfs_tensor *t, float bound, dfs_rng *rng) {
    for (size_t k = 0; k < t->n; k++) t->data[k] = bound * (2.0f * dfs_rng_uniform(rng) - 1.0f);
}

static void fill_const(dfs_tensor *t, float v) {
    for (size_t k = 0; k < t->n; k++) t->data[k] = v;
}

/* Linear layers as PyTorch's nn.Linear (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias),
 * LayerNorm weight 1 bias 0, embeddings N(0, 0.02^2) (GPT-2's init; N(0, 1) rows would dwarf
 * the residual stream). */
void dfs_text_encoder_init(dfs_text_encoder *te, dfs_rng *rng) {
    const int d = te->cfg.dim;
    dfs_rng_fill_normal(rng, te->tok_emb->data, te->tok_emb->n);
    for (size_t k = 0; k < te->tok_emb->n; k++) te->tok_emb->data[k] *= 0.02f;
    dfs_rng_fill_normal(rng, te->pos_emb->data, te->pos_emb->n);
    for (size_t k = 0; k < te->pos_emb->n; k++) te->pos_emb->data[k] *= 0.02f;
    const float b1 = 1.0f / sqrtf((float)d), b4 = 1.0f / sqrtf(4.0f * d);
    for (int l = 0; l < te->cfg.layers; l++) {
        text_layer *y = &te->layer[l];
        fill_const(y->ln1_w, 1), fill_const(y->ln1_b, 0), fill_const(y->ln2_w, 1), fill_const(y->ln2_b, 0);
        fill_uniform(y->qkv_w, b1, rng), fill_uniform(y->qkv_b, b1, rng);
        fill_uniform(y->out_w, b1, rng), fill_uniform(y->out_b, b1, rng);
        fill_uniform(y->fc1_w, b1, rng), fill_uniform(y->fc1_b, b1, rng);
        fill_uniform(y->fc2_w, b4, rng), fill_uniform(y->fc2_b, b4, rng);
    }
    fill_const(te->lnf_w, 1);
    fill_const(te->lnf_b, 0);
}

dfs_tensor *dfs_text_encoder_forward(dfs_text_encoder *te, dfs_graph *g, const int *tokens, const uint8_t *mask,
                                     int N, dfs_tensor **pooled) {
    const dfs_text_config *c = &te->cfg;
    const int L = c->max_len, d = c->dim;
    int *pos = dfs_graph_alloc(g, (size_t)N * L * sizeof(int));
    for (int i = 0; i < N * L; i++) {
        DFS_ASSERT(tokens[i] >= 0 && tokens[i] < c->vocab);
        pos[i] = i % L;
    }
    dfs_tensor *x = dfs_add(g, dfs_embedding(g, te->tok_emb, tokens, N * L), dfs_embedding(g, te->pos_emb, pos, N * L));
    x = dfs_reshape(g, x, 3, (int[]){N, L, d});
    for (int l = 0; l < c->layers; l++) {
        const text_layer *y = &te->layer[l];
        dfs_tensor *qkv = dfs_linear(g, dfs_layer_norm(g, x, y->ln1_w, y->ln1_b, 1e-5f), y->qkv_w, y->qkv_b);
        dfs_tensor *q = dfs_slice(g, qkv, 2, 0, d), *k = dfs_slice(g, qkv, 2, d, d), *v = dfs_slice(g, qkv, 2, 2 * d, d);
        x = dfs_add(g, x, dfs_linear(g, dfs_attention(g, q, k, v, c->heads, mask), y->out_w, y->out_b));
        dfs_tensor *hdn = dfs_gelu(g, dfs_linear(g, dfs_layer_norm(g, x, y->ln2_w, y->ln2_b, 1e-5f), y->fc1_w, y->fc1_b));
        x = dfs_add(g, x, dfs_linear(g, hdn, y->fc2_w, y->fc2_b));
    }
    x = dfs_layer_norm(g, x, te->lnf_w, te->lnf_b, 1e-5f);
    if (pooled) {
        /* masked mean as a product: w (N, 1, L) with 1/count on the kept positions */
        dfs_tensor *w = dfs_tensor_new(g, 3, (int[]){N, 1, L});
        for (int n = 0; n < N; n++) {
            int cnt = 0;
            for (int j = 0; j < L; j++) cnt += !mask || mask[n * L + j];
            for (int j = 0; j < L; j++) w->data[n * L + j] = (!mask || mask[n * L + j]) && cnt ? 1.0f / cnt : 0.0f;
        }
        *pooled = dfs_reshape(g, dfs_bmm(g, w, x, 0, 0), 2, (int[]){N, d});
    }
    return x;
}
