/* unet_text.c - text conditioning of the U-Net (docs/TEXT_TO_IMAGE.md), the way GLIDE conditions ADM on a
 * caption (Nichol et al. 2022, "GLIDE", sec. 4.1):
 *
 *   tokens (N, L) -> text encoder (src/nn/text.c) -> per-token features T (N, L, d), pooled (N, d)
 *   temb += text_proj(pooled)                        Linear(d, E), like a class embedding
 *   every attention block (c channels, P = H*W positions, single head):
 *     [k_t; v_t] = ctx(T)^T                          Linear(d, 2c) -> (N, 2c, L)
 *     K = [k, k_t], V = [v, v_t]                     (N, c, P + L): image positions, then words
 *     S = q^T K / sqrt(c) + B                        B = 0 at image positions and real words,
 *                                                    -1e30 at padding (exp underflows to 0)
 *     out = x + proj(V softmax(S)^T)
 *
 * The image positions are always visible, so a caption with no real token (the empty caption,
 * the null condition of classifier-free guidance) reduces every block to plain self-attention,
 * and its pooled vector is 0 (the encoder's masked mean of nothing), leaving text_proj's bias.
 *
 * The caption table (dfs_unet_set_context) is what labels index: row r of (rows, L) ids and
 * masks, and r == rows for the empty caption. It is runtime state, not a parameter: training
 * attaches every training caption, sampling attaches the prompts.
 *
 * Size key: N batch, L tokens, d text width, E = 4 * base channels, c block channels. */
#include "unet_text.h"
#include "diffuse/nn.h"
#include "../engine/tape.h"

#include <stdlib.h>
#include <string.h>

/* A score that no softmax row keeps: exp(-1e30 - max) is 0 in float. */
#define MASKED_SCORE (-1e30f)

struct unet_text {
    dfs_text_encoder *te;
    dfs_tensor *proj_w, *proj_b; /* text_proj: (E, d), (E) */
    int L, vocab;
    int rows;
    int *tokens;    /* (rows, L) */
    uint8_t *mask;  /* (rows, L) */
};

struct unet_text_fwd {
    dfs_tensor *tok; /* (N, L, d) per-token features */
    uint8_t *mask;   /* (N, L) 1 = real token */
    int N, L;
};

dfs_status unet_text_config_check(const dfs_unet_config *c) {
    if (c->text.dim == 0) return DFS_OK;
    if (dfs_text_config_check(&c->text) != DFS_OK) return DFS_ERR_ARG;
    if (c->num_classes != 0) {
        dfs_set_error("a text-conditioned U-Net has no class table (num_classes %d must be 0): captions are "
                      "its labels",
                      c->num_classes);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

unet_text *unet_text_declare(dfs_params *p, const dfs_unet_config *c) {
    unet_text *ut = calloc(1, sizeof *ut);
    if (!ut) {
        dfs_set_error("out of memory for the text encoder");
        return NULL;
    }
    ut->te = dfs_text_encoder_declare(p, "text.", &c->text);
    if (!ut->te) {
        free(ut);
        dfs_set_error("out of memory for the text encoder");
        return NULL;
    }
    const int d = c->text.dim, E = 4 * c->base_channels;
    ut->proj_w = dfs_params_add(p, "text_proj.weight", 2, (int[]){E, d});
    ut->proj_b = dfs_params_add(p, "text_proj.bias", 1, (int[]){E});
    ut->L = c->text.max_len;
    ut->vocab = c->text.vocab;
    return ut;
}

void unet_text_init(unet_text *ut, dfs_rng *rng) { dfs_text_encoder_init(ut->te, rng); }

void unet_text_free(unet_text *ut) {
    if (!ut) return;
    dfs_text_encoder_free(ut->te);
    free(ut->tokens);
    free(ut->mask);
    free(ut);
}

dfs_tensor *unet_text_begin(unet_text *ut, dfs_graph *g, const int *labels, int N,
                            dfs_tensor *temb, unet_text_fwd **out) {
    const int L = ut->L;
    unet_text_fwd *f = dfs_graph_alloc(g, sizeof *f);
    int *tok = dfs_graph_alloc(g, (size_t)N * L * sizeof(int)); /* (N, L) */
    f->mask = dfs_graph_alloc(g, (size_t)N * L);                 /* (N, L) */
    f->N = N;
    f->L = L;
    for (int i = 0; i < N; i++) {
        const int r = labels ? labels[i] : ut->rows;
        DFS_ASSERT(r >= 0 && r <= ut->rows);
        if (r < ut->rows) {
            memcpy(tok + (size_t)i * L, ut->tokens + (size_t)r * L, (size_t)L * sizeof(int));
            memcpy(f->mask + (size_t)i * L, ut->mask + (size_t)r * L, (size_t)L);
        } else { /* the empty caption: padding only, all hidden */
            memset(tok + (size_t)i * L, 0, (size_t)L * sizeof(int));
            memset(f->mask + (size_t)i * L, 0, (size_t)L);
        }
    }
    dfs_tensor *pooled;
    f->tok = dfs_text_encoder_forward(ut->te, g, tok, f->mask, N, &pooled);
    dfs_tensor *tp = dfs_linear(g, pooled, ut->proj_w, ut->proj_b); /* (N, E) */
    *out = f;
    return dfs_add(g, temb, tp);
}

void unet_text_kv(const unet_text_fwd *f, dfs_graph *g, dfs_tensor *w, dfs_tensor *b,
                  dfs_tensor **k, dfs_tensor **v) {
    const int c = (*k)->shape[1];
    DFS_ASSERT(w && w->shape[0] == 2 * c && (*k)->shape[0] == f->N);
    dfs_tensor *kv3 = dfs_linear(g, f->tok, w, b); /* (N, L, 2c) */
    dfs_tensor *kv = dfs_transpose(g, kv3);        /* (N, 2c, L) */
    dfs_tensor_release_dead(g, kv3);               /* transpose's backward reads no values */
    dfs_tensor *kt = dfs_slice(g, kv, 1, 0, c);    /* (N, c, L) */
    dfs_tensor *vt = dfs_slice(g, kv, 1, c, c);
    dfs_tensor_release_dead(g, kv); /* only sliced */
    dfs_tensor *k2 = dfs_concat(g, *k, kt, 2);     /* (N, c, P + L) */
    dfs_tensor *v2 = dfs_concat(g, *v, vt, 2);
    /* only concatenated: concat's backward reads no values */
    dfs_tensor_release_dead(g, kt);
    dfs_tensor_release_dead(g, vt);
    dfs_tensor_release_dead(g, *k);
    dfs_tensor_release_dead(g, *v);
    *k = k2;
    *v = v2;
}

dfs_tensor *unet_text_mask(const unet_text_fwd *f, dfs_graph *g, dfs_tensor *s) {
    const int N = s->shape[0], Lk = s->shape[2], L = f->L, P = Lk - L;
    DFS_ASSERT(s->ndim == 3 && N == f->N && P >= 0);
    dfs_tensor *bias = dfs_tensor_new(g, 3, (int[]){N, 1, Lk}); /* (N, 1, P + L), no grad */
    for (int n = 0; n < N; n++) {
        float *bn = bias->data + (size_t)n * Lk;
        for (int j = 0; j < P; j++) bn[j] = 0.0f;
        for (int j = 0; j < L; j++) bn[P + j] = f->mask[(size_t)n * L + j] ? 0.0f : MASKED_SCORE;
    }
    dfs_tensor *out = dfs_add(g, s, bias); /* broadcast over the P query rows */
    dfs_tensor_release_dead(g, s);         /* add's backward reads no values */
    return out;
}

/* ---- the caption table ---------------------------------------------------------------------- */

dfs_status dfs_unet_set_context(dfs_unet *u, const int *tokens, const uint8_t *mask, int rows) {
    unet_text *ut = u ? u->text : NULL;
    if (!ut) {
        dfs_set_error("the U-Net has no text encoder (dfs_unet_config.text.dim is 0)");
        return DFS_ERR_ARG;
    }
    const int L = ut->L;
    if (rows < 0 || (rows > 0 && !tokens) || (size_t)rows > SIZE_MAX / sizeof(int) / (size_t)L ||
        rows == INT32_MAX) {
        dfs_set_error("caption table: bad size (%d rows of %d tokens%s)", rows, L,
                      rows > 0 && !tokens ? ", tokens NULL" : "");
        return DFS_ERR_ARG;
    }
    const size_t n = (size_t)rows * L;
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= ut->vocab) {
            dfs_set_error("caption table: row %zu token %zu is %d, outside the vocabulary 0..%d", i / L, i % L,
                          tokens[i], ut->vocab - 1);
            return DFS_ERR_ARG;
        }
        if (mask && mask[i] > 1) {
            dfs_set_error("caption table: row %zu mask %zu is %d, not 0 or 1", i / L, i % L, mask[i]);
            return DFS_ERR_ARG;
        }
    }
    int *t2 = malloc((n ? n : 1) * sizeof(int));
    uint8_t *m2 = malloc(n ? n : 1);
    if (!t2 || !m2) {
        free(t2), free(m2);
        dfs_set_error("out of memory for a caption table of %d rows", rows);
        return DFS_ERR_NOMEM;
    }
    if (n) memcpy(t2, tokens, n * sizeof(int));
    if (n && mask) memcpy(m2, mask, n);
    else if (n) memset(m2, 1, n);
    free(ut->tokens);
    free(ut->mask);
    ut->tokens = t2;
    ut->mask = m2;
    ut->rows = rows;
    return DFS_OK;
}

int dfs_unet_context_rows(const dfs_unet *u) {
    const unet_text *ut = u ? u->text : NULL;
    return ut ? ut->rows : -1;
}
