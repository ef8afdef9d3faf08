/* test_text.c - the transformer text encoder (src/text.c): every parameter's gradient against
 * central finite differences, independence from padding (what sits in masked positions changes
 * nothing that is kept), the pooled vector as the mean of the kept tokens, and bad configs
 * rejected. PyTorch parity of the whole encoder is tests/parity_text.sh. */
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
    gradcheck("text encoder tokens, all parameters", f_text, p->t, p->count, &a, 1e-3f, 2e-2f);
    a.which = 1;
    gradcheck("text encoder pooled, all parameters", f_text, p->t, p->count, &a, 1e-3f, 2e-2f);
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
    double worst = 0, mean_err = 0;
    for (int i = 0; i < 3 * 16; i++) worst = fmax(worst, fabs(x1->data[i] - x2->data[i]));
    for (int j = 0; j < 16; j++) {
        worst = fmax(worst, fabs(p1->data[j] - p2->data[j]));
        double mean = (x1->data[j] + x1->data[16 + j] + x1->data[32 + j]) / 3.0;
        mean_err = fmax(mean_err, fabs(mean - p1->data[j]));
    }
    CHECK(worst < 1e-6, "kept tokens and pooled vector do not depend on the padding (max diff %g)", worst);
    CHECK(mean_err < 1e-6, "pooled = mean of the 3 kept tokens (max diff %g)", mean_err);
    /* without the mask the junk does matter */
    dfs_tensor *x3 = dfs_text_encoder_forward(te, g, t2, NULL, 1, NULL);
    double d3 = 0;
    for (int i = 0; i < 3 * 16; i++) d3 = fmax(d3, fabs(x1->data[i] - x3->data[i]));
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
