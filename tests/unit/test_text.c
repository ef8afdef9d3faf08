/* test_text.c - the transformer text encoder (src/nn/text.c): every parameter's gradient against
 * central finite differences, independence from padding (what sits in masked positions changes
 * nothing that is kept), the pooled vector as the mean of the kept tokens, and bad configs
 * rejected. PyTorch parity of the whole encoder is tests/parity/parity_text.sh. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dfs_text_encoder *te;
    const int *tok;
    const uint8_t *mask;
    int N, which; /* 0: tokens, 1: pooled */
} text_args;

static dfs_tensor *f_text(dfs_graph *g, dfs_tensor **in, void *u) {
    text_args *a = u;
    dfs_tensor *pooled = NULL;
    dfs_tensor *x = dfs_text_encoder_forward(a->te, g, a->tok, a->mask, a->N, &pooled);
    return a->which ? pooled : x;
}

static dfs_text_encoder *make(dfs_params **p, const dfs_text_config *c, uint64_t seed) {
    *p = dfs_params_new();
    dfs_text_encoder *te = dfs_text_encoder_declare(*p, "text.", c);
    if (!te || dfs_params_finalize(*p) != DFS_OK) return NULL;
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    dfs_text_encoder_init(te, &rng);
    /* larger embeddings than the 0.02 init so that finite differences see real curvature */
    for (int i = 0; i < (*p)->count; i++)
        if (strstr((*p)->t[i]->name, "emb"))
            for (size_t k = 0; k < (*p)->t[i]->n; k++) (*p)->t[i]->data[k] *= 40.0f;
    for (int i = 0; i < (*p)->count; i++) (*p)->t[i]->requires_grad = 1;
    return te;
}

/* Finite differences (gradcheck.h) at h = 1e-2: the truncation h^2/6 |d3L/dx3| is ~2e-4 (the
 * embeddings of size ~0.8 go through LayerNorms of width 8, whose third derivatives reach ~10;
 * at h = 3e-2 the error grows nine-fold, as h^2), the roundoff ~1e-4 (a parameter reaches
 * every output of its tokens, ~40 outputs of size ~1 rounded through two layers: e ~ u
 * sqrt(40) ~ 1e-6 per evaluation, over h). TOL 2e-3, relative, absolute below 1: ten times
 * that, and far below the O(1) error of a wrong term. */
#define H_TEXT 1e-2f
#define TOL_TEXT 2e-3f

static void test_gradients(void) {
    const dfs_text_config c = {.vocab = 7, .max_len = 4, .dim = 8, .layers = 2, .heads = 2};
    dfs_params *p;
    dfs_text_encoder *te = make(&p, &c, 3);
    CHECK(te != NULL, "declare and finalize");
    if (!te) return;
    CHECK(p->count == 2 + 12 * 2 + 2, "parameter count %d", p->count);
    const int tok[8] = {1, 5, 2, 0, 3, 3, 6, 4};
    const uint8_t mask[8] = {1, 1, 1, 0, 1, 1, 1, 1};
    text_args a = {te, tok, mask, 2, 0};
    gradcheck("text encoder tokens, all parameters", f_text, p->t, p->count, &a, H_TEXT, TOL_TEXT);
    a.which = 1;
    gradcheck("text encoder pooled, all parameters", f_text, p->t, p->count, &a, H_TEXT, TOL_TEXT);
    dfs_text_encoder_free(te);
    dfs_params_free(p);
}

static void test_padding(void) {
    const dfs_text_config c = {.vocab = 20, .max_len = 6, .dim = 16, .layers = 2, .heads = 4};
    dfs_params *p;
    dfs_text_encoder *te = make(&p, &c, 8);
    if (!te) return;
    /* the same 3-token caption, padded with different junk */
    const int t1[6] = {4, 9, 2, 0, 0, 0}, t2[6] = {4, 9, 2, 17, 5, 11};
    const uint8_t m[6] = {1, 1, 1, 0, 0, 0};
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *p1, *p2;
    dfs_tensor *x1 = dfs_text_encoder_forward(te, g, t1, m, 1, &p1);
    dfs_tensor *x2 = dfs_text_encoder_forward(te, g, t2, m, 1, &p2);
    /* Exactly equal: attention gives masked keys a weight of exactly 0 (and 0 v = 0), the pooled
     * mean weights them by 0, and everything else a kept token's output depends on is the same
     * numbers through the same operations (the GEMMs' element (i, j) depends on row i and
     * column j alone). */
    double worst = 0, mean_err = 0;
    for (int i = 0; i < 3 * 16; i++) worst = max_err(worst, fabs(x1->data[i] - x2->data[i]));
    for (int j = 0; j < 16; j++) {
        worst = max_err(worst, fabs(p1->data[j] - p2->data[j]));
        /* pooled = sum_t w_t x_t over the 6 positions, w = float(1/3) on the kept ones: a sum of
         * 6 terms, w's rounding (u) and the final rounding */
        double a = (fabs(x1->data[j]) + fabs(x1->data[16 + j]) + fabs(x1->data[32 + j])) / 3.0;
        double mean = (x1->data[j] + x1->data[16 + j] + x1->data[32 + j]) / 3.0;
        mean_err = max_err(mean_err, err_ratio(fabs(mean - p1->data[j]), sum_err(6, a) + U32 * (a + fabs(mean))));
    }
    CHECK(worst == 0, "kept tokens and pooled vector do not depend on the padding (max diff %g)", worst);
    CHECK_RATIO(mean_err, "pooled = mean of the 3 kept tokens (error %.3g of its bound)", mean_err);
    /* without the mask the junk does matter: by O(1) (embeddings of size ~0.8), far above any
     * rounding (~1e-6) */
    dfs_tensor *x3 = dfs_text_encoder_forward(te, g, t2, NULL, 1, NULL);
    double d3 = 0;
    for (int i = 0; i < 3 * 16; i++) d3 = max_err(d3, fabs(x1->data[i] - x3->data[i]));
    CHECK(d3 > 1e-3, "without a mask the padding changes the tokens (max diff %g)", d3);
    dfs_graph_free(g);
    dfs_text_encoder_free(te);
    dfs_params_free(p);
}

static void test_config(void) {
    dfs_text_config c = {.vocab = 10, .max_len = 8, .dim = 30, .layers = 1, .heads = 4};
    CHECK(dfs_text_config_check(&c) == DFS_ERR_ARG, "heads that do not divide dim rejected");
    c.heads = 3;
    CHECK(dfs_text_config_check(&c) == DFS_OK, "valid config accepted");
    c.vocab = 1;
    CHECK(dfs_text_config_check(&c) == DFS_ERR_ARG, "vocabulary of 1 rejected");
    dfs_params *p = dfs_params_new();
    CHECK(dfs_text_encoder_declare(p, "t.", &c) == NULL && p->count == 0, "bad config declares nothing");
    dfs_params_free(p);
}

int main(void) {
    test_config();
    test_padding();
    test_gradients();
    return check_summary("test_text");
}
