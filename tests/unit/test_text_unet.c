/* test_text_unet.c - the text-conditioned U-Net (src/nn/unet_text.c, issue 5): gradients of the input
 * and of a sample of parameters (text encoder, text_proj, every block's ctx, image layers) against
 * central finite differences; the empty caption and masked padding behave as specified; the
 * caption table's errors; checkpoints with the text config and the tokenizer; a trainer that
 * learns two captions apart; Imagen's dynamic thresholding on cases with a known answer, in every
 * sampler. PyTorch parity of the whole text U-Net is tests/parity/parity_text_unet.sh. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h" /* U32, max_err, CHECK_RATIO */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/dfs_text_unet_XXXXXX";

/* A tiny U-Net with attention at both levels (and in the middle): 8x8, 3 channels. */
static dfs_unet_config tiny_config(void) {
    dfs_unet_config c;
    memset(&c, 0, sizeof c);
    c.image_size = 8;
    c.in_channels = 3;
    c.base_channels = 8;
    c.nlevels = 2;
    c.mult[0] = 1, c.mult[1] = 2;
    c.attn[0] = 1, c.attn[1] = 1;
    c.enc_blocks = 1;
    c.dec_blocks = 2;
    c.groups = 4;
    c.dropout = 0.0f;
    c.text = (dfs_text_config){.vocab = 11, .max_len = 5, .dim = 8, .layers = 1, .heads = 2};
    return c;
}

/* Three captions: <bos> 5 6 <eos> <pad>, <bos> 7 <eos> <pad> <pad>, and 5 tokens with no padding. */
static const int TOK[3 * 5] = {2, 5, 6, 3, 0, 2, 7, 3, 0, 0, 2, 8, 9, 10, 3};
static const uint8_t MASK[3 * 5] = {1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1};

static dfs_unet *tiny_unet(uint64_t seed) {
    dfs_unet_config c = tiny_config();
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    dfs_unet *u = dfs_unet_new(&c, &rng);
    CHECK(u != NULL, "tiny text U-Net: %s", dfs_last_error());
    if (!u) return NULL;
    /* Embeddings 40x their N(0, 0.02^2) init so that the words change the output by O(1) and
     * finite differences see it. */
    for (int i = 0; i < u->params->count; i++)
        if (strstr(u->params->t[i]->name, "text.") == u->params->t[i]->name && strstr(u->params->t[i]->name, "emb"))
            for (size_t k = 0; k < u->params->t[i]->n; k++) u->params->t[i]->data[k] *= 40.0f;
    CHECK(dfs_unet_set_context(u, TOK, MASK, 3) == DFS_OK, "set context: %s", dfs_last_error());
    return u;
}

static float *forward_copy(dfs_unet *u, const float *x, const int *t, const int *labels, int N) {
    const dfs_unet_config *c = &u->cfg;
    dfs_graph *g = dfs_graph_new();
    dfs_graph_set_grad(g, 0);
    dfs_tensor *xt = dfs_tensor_wrap(g, (float *)x, 4, (int[]){N, c->in_channels, c->image_size, c->image_size});
    dfs_tensor *y = dfs_unet_forward(u, g, xt, t, labels);
    float *out = malloc(y->n * sizeof(float));
    memcpy(out, y->data, y->n * sizeof(float));
    dfs_graph_free(g);
    return out;
}

/* max |a - b|; NaN if either has a NaN */
static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = max_err(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---- gradients ----------------------------------------------------------------------------- */

typedef struct {
    dfs_unet *u;
    float *x; /* (N, C, H, W) */
    const int *t, *labels;
    int N;
    const float *R; /* (N, C, H, W) loss weights */
} fd_ctx;

/* L = sum R * unet(x), in double */
static double fd_loss(fd_ctx *f, dfs_graph *g) {
    const dfs_unet_config *c = &f->u->cfg;
    dfs_graph_reset(g);
    dfs_graph_set_grad(g, 0);
    dfs_tensor *xt = dfs_tensor_wrap(g, f->x, 4, (int[]){f->N, c->in_channels, c->image_size, c->image_size});
    dfs_tensor *y = dfs_unet_forward(f->u, g, xt, f->t, f->labels);
    double s = 0;
    for (size_t i = 0; i < y->n; i++) s += (double)f->R[i] * y->data[i];
    return s;
}

/* Relative error ||analytic - numeric|| / ||numeric|| over the sampled elements of one group,
 * and the element-wise worst |a - n| / max(|n|, 1e-2 max|n|). */
typedef struct {
    double dd, nn, worst, maxn;
    int count;
    const char *name;
} fd_group;

static void fd_add(fd_group *gr, double ana, double num) {
    gr->dd += (ana - num) * (ana - num);
    gr->nn += num * num;
    gr->count++;
    gr->maxn = max_err(gr->maxn, fabs(num));
}

static void test_gradients(void) {
    dfs_unet *u = tiny_unet(5);
    if (!u) return;
    const dfs_unet_config *c = &u->cfg;
    const int N = 3, D = c->in_channels * c->image_size * c->image_size;
    const int t[3] = {3, 400, 999}, labels[3] = {0, 1, 3}; /* two captions and the empty one */
    dfs_rng rng;
    dfs_rng_seed(&rng, 77);
    float *x = malloc((size_t)N * D * sizeof(float)), *R = malloc((size_t)N * D * sizeof(float));
    dfs_rng_fill_normal(&rng, x, (size_t)N * D);
    dfs_rng_fill_normal(&rng, R, (size_t)N * D);
    fd_ctx f = {u, x, t, labels, N, R};

    /* analytic: d(sum R out) / d(x, params) */
    dfs_graph *g = dfs_graph_new();
    dfs_params_zero_grad(u->params);
    dfs_tensor xin = {.data = x, .grad = calloc((size_t)N * D, sizeof(float)), .ndim = 4,
                      .shape = {N, c->in_channels, c->image_size, c->image_size}, .n = (size_t)N * D,
                      .requires_grad = 1};
    dfs_tensor *y = dfs_unet_forward(u, g, &xin, t, labels);
    dfs_backward_grad(g, y, R);
    dfs_graph_reset(g);

    /* Step and tolerance: the error of a central difference is truncation h^2/6 |d3L/dx3| plus
     * roundoff ~ e / h, e the float32 noise of L (576 outputs of a net ~15 layers deep: u
     * times |R| sqrt(576) times the depth's growth, ~1e-5). Over the groups below the relative
     * error goes as 1/h up to h = 2e-2 (roundoff: ctx 2.9e-3 at 1e-2, 1.35e-3 at 2e-2) and as
     * h^2 from 4e-2 on (truncation: image-side 2.9e-4 at 4e-2, 1.15e-3 at 8e-2); h = 3e-2
     * keeps both near 1e-3 (truncation ~6e-4, roundoff ~1e-3 for the small ctx gradients).
     * FD_TOL = 5e-3, on the norm of the errors over a group, leaves five times that. */
    const float h = 3e-2f;
    fd_group gx = {.name = "input x"};
    for (int i = 0; i < N * D; i += 7) {
        float v = x[i];
        x[i] = v + h;
        double lp = fd_loss(&f, g);
        x[i] = v - h;
        double lm = fd_loss(&f, g);
        x[i] = v;
        fd_add(&gx, xin.grad[i], (lp - lm) / (2.0 * h));
    }
    /* parameters: every text-side tensor and a few image-side ones, 4 elements each */
    const char *image_side[] = {"time_mlp.0.weight", "down.0.attn.0.qkv.weight", "mid.attn.proj.weight",
                                "up.1.res.0.conv1.weight", "out_conv.weight"};
    fd_group gt = {.name = "text.* parameters"}, gp = {.name = "text_proj"}, gc = {.name = "ctx (every block)"},
             gi = {.name = "image-side parameters"};
    int ctx_tensors = 0;
    for (int k = 0; k < u->params->count; k++) {
        dfs_tensor *p = u->params->t[k];
        fd_group *gr = NULL;
        if (strncmp(p->name, "text.", 5) == 0) gr = &gt;
        else if (strncmp(p->name, "text_proj.", 10) == 0) gr = &gp;
        else if (strstr(p->name, ".ctx.")) gr = &gc, ctx_tensors++;
        for (size_t j = 0; !gr && j < sizeof image_side / sizeof *image_side; j++)
            if (strcmp(p->name, image_side[j]) == 0) gr = &gi;
        if (!gr) continue;
        for (int e = 0; e < 4; e++) {
            size_t i = (size_t)(dfs_rng_u64(&rng) % p->n);
            float v = p->data[i];
            p->data[i] = v + h;
            double lp = fd_loss(&f, g);
            p->data[i] = v - h;
            double lm = fd_loss(&f, g);
            p->data[i] = v;
            fd_add(gr, p->grad[i], (lp - lm) / (2.0 * h));
        }
    }
    CHECK(ctx_tensors == 2 * 7, "ctx weight and bias in each of the 7 attention blocks (2 down, mid, 4 up): %d tensors",
          ctx_tensors);
    fd_group *all[] = {&gx, &gt, &gp, &gc, &gi};
    for (int k = 0; k < 5; k++) {
        double rel = sqrt(all[k]->dd / all[k]->nn);
        printf("  gradcheck %-22s %3d elements, |numeric| up to %.3g, relative error %.2e\n", all[k]->name,
               all[k]->count, all[k]->maxn, rel);
        CHECK(all[k]->count > 0 && all[k]->maxn > 1e-3 && rel < 5e-3,
              "%s: %d elements, relative error %.3g (max |grad| %.3g)", all[k]->name, all[k]->count, rel, all[k]->maxn);
    }
    free(xin.grad);
    dfs_graph_free(g);
    free(x), free(R);
    dfs_unet_free(u);
}

/* ---- the empty caption and masked padding ------------------------------------------------- */

static void test_empty_and_padding(void) {
    dfs_unet *u = tiny_unet(9);
    if (!u) return;
    const dfs_unet_config *c = &u->cfg;
    const int D = c->in_channels * c->image_size * c->image_size;
    dfs_rng rng;
    dfs_rng_seed(&rng, 3);
    float *x = malloc((size_t)D * sizeof(float));
    dfs_rng_fill_normal(&rng, x, (size_t)D);
    const int t[1] = {500};

    /* Table: caption A padded with <pad>; A with junk ids under the same mask; A with the junk
     * visible; junk everywhere with every token hidden; a different caption. */
    const int tok[5 * 5] = {2, 5, 6, 3, 0, 2, 5, 6, 3, 9, 2, 5, 6, 3, 9, 4, 8, 10, 7, 6, 2, 7, 3, 0, 0};
    const uint8_t mask[5 * 5] = {1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0};
    CHECK(dfs_unet_set_context(u, tok, mask, 5) == DFS_OK, "set context: %s", dfs_last_error());
    CHECK(dfs_unet_context_rows(u) == 5, "5 rows");
    float *out[6];
    for (int r = 0; r <= 5; r++) out[r] = forward_copy(u, x, t, (int[]){r}, 1);
    double pad = max_diff(out[0], out[1], (size_t)D), vis = max_diff(out[0], out[2], (size_t)D);
    double hid = max_diff(out[3], out[5], (size_t)D), other = max_diff(out[0], out[4], (size_t)D);
    double empty = max_diff(out[0], out[5], (size_t)D);
    CHECK(pad == 0, "junk under the mask changes nothing (max diff %g)", pad);
    CHECK(vis > 1e-3, "the same junk unmasked changes the output (max diff %g)", vis);
    CHECK(hid == 0, "a row with every token hidden is the empty caption (label = rows), max diff %g", hid);
    CHECK(other > 1e-3 && empty > 1e-3, "another caption, and the empty one, change the output (%g, %g)", other,
          empty);
    /* labels NULL: every image gets the empty caption */
    float *null_out = forward_copy(u, x, t, NULL, 1);
    CHECK(max_diff(null_out, out[5], (size_t)D) == 0, "labels NULL = the empty caption");
    free(null_out);

    /* The empty caption's output does not depend on the text encoder, text_proj's weight or any
     * ctx layer (every word hidden, pooled vector 0): their gradients are exactly 0, while
     * text_proj's bias gets one. With a real caption all of them get gradients. */
    dfs_graph *g = dfs_graph_new();
    for (int which = 0; which < 2; which++) {
        const int lab[1] = {which ? 0 : 5};
        dfs_params_zero_grad(u->params);
        dfs_tensor *xt = dfs_tensor_wrap(g, x, 4, (int[]){1, c->in_channels, c->image_size, c->image_size});
        dfs_tensor *y = dfs_unet_forward(u, g, xt, t, lab);
        float *R = malloc(y->n * sizeof(float));
        for (size_t i = 0; i < y->n; i++) R[i] = 1.0f;
        dfs_backward_grad(g, y, R);
        free(R);
        double text_grad = 0, bias_grad = 0;
        for (int k = 0; k < u->params->count; k++) {
            const dfs_tensor *p = u->params->t[k];
            int text_side = strncmp(p->name, "text.", 5) == 0 || strcmp(p->name, "text_proj.weight") == 0 ||
                            strstr(p->name, ".ctx.") != NULL;
            for (size_t i = 0; i < p->n; i++) {
                if (text_side) text_grad = max_err(text_grad, fabs(p->grad[i]));
                if (strcmp(p->name, "text_proj.bias") == 0) bias_grad = max_err(bias_grad, fabs(p->grad[i]));
            }
        }
        /* not exactly 0: the engine's softmax exp clamps its argument at -87, so a hidden word
         * keeps a weight of e^-87 ~ 1.6e-38 */
        if (which == 0)
            CHECK(text_grad < 1e-30 && bias_grad > 0,
                  "empty caption: text-side gradients 0 (max %g), text_proj.bias's not (%g)", text_grad, bias_grad);
        else
            CHECK(text_grad > 1e-6 && bias_grad > 0, "real caption: text-side gradients non-zero (max %g)",
                  text_grad);
        dfs_graph_reset(g);
    }
    dfs_graph_free(g);
    for (int r = 0; r <= 5; r++) free(out[r]);
    free(x);
    dfs_unet_free(u);
}

/* ---- configuration and the table's errors ------------------------------------------------ */

static void test_config_and_errors(void) {
    dfs_unet_config c = tiny_config();
    CHECK(dfs_unet_config_check(&c) == DFS_OK, "tiny text config valid: %s", dfs_last_error());
    c.num_classes = 10;
    CHECK(dfs_unet_config_check(&c) == DFS_ERR_ARG && strstr(dfs_last_error(), "class"),
          "text and classes together rejected: %s", dfs_last_error());
    c = tiny_config();
    c.text.heads = 3;
    CHECK(dfs_unet_config_check(&c) == DFS_ERR_ARG && strstr(dfs_last_error(), "heads"),
          "bad text config rejected: %s", dfs_last_error());
    /* presets have no text, and keep their parameter count */
    CHECK(dfs_unet_config_preset(&c, "fmnist") == DFS_OK && c.text.dim == 0, "fmnist preset has no text");
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    dfs_unet *plain = dfs_unet_new(&c, &rng);
    CHECK(plain && plain->params->n == 1624577 && plain->text == NULL, "fmnist: 1624577 parameters, no text");
    CHECK(dfs_unet_set_context(plain, TOK, MASK, 3) == DFS_ERR_ARG && dfs_unet_context_rows(plain) == -1,
          "a model without text has no caption table: %s", dfs_last_error());
    dfs_unet_free(plain);

    dfs_unet *u = tiny_unet(2);
    if (!u) return;
    int names = 0;
    for (int k = 0; k < u->params->count; k++)
        names += strcmp(u->params->t[k]->name, "text.tok_emb.weight") == 0 ||
                 strcmp(u->params->t[k]->name, "text_proj.weight") == 0 ||
                 strcmp(u->params->t[k]->name, "mid.attn.ctx.weight") == 0;
    CHECK(names == 3, "text.tok_emb, text_proj and mid.attn.ctx declared");
    const int bad_tok[5] = {2, 11, 3, 0, 0};
    CHECK(dfs_unet_set_context(u, bad_tok, NULL, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "vocabulary"),
          "token outside the vocabulary rejected: %s", dfs_last_error());
    const uint8_t bad_mask[5] = {1, 2, 0, 0, 0};
    CHECK(dfs_unet_set_context(u, TOK, bad_mask, 1) == DFS_ERR_ARG, "mask value 2 rejected");
    CHECK(dfs_unet_set_context(u, NULL, NULL, 2) == DFS_ERR_ARG, "rows without tokens rejected");
    CHECK(dfs_unet_context_rows(u) == 3, "a rejected table leaves the old one (%d rows)", dfs_unet_context_rows(u));
    CHECK(dfs_unet_set_context(u, NULL, NULL, 0) == DFS_OK && dfs_unet_context_rows(u) == 0,
          "an empty table: only the empty caption");
    dfs_unet_free(u);
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static dfs_model *text_model(const char *const *captions, int n, uint64_t seed, int dim, int T, dfs_prediction pred) {
    dfs_tokenizer_config tc;
    dfs_tokenizer_config_default(&tc);
    tc.max_len = 6;
    dfs_tokenizer *tok = NULL;
    CHECK(dfs_tokenizer_build(&tok, captions, n, &tc) == DFS_OK, "tokenizer: %s", dfs_last_error());
    if (!tok) return NULL;
    dfs_model_config mc;
    memset(&mc, 0, sizeof mc);
    mc.unet = tiny_config();
    mc.unet.in_channels = 1;
    mc.unet.text = (dfs_text_config){.vocab = dfs_tokenizer_vocab_size(tok), .max_len = 6, .dim = dim, .layers = 1,
                                     .heads = 2};
    mc.schedule = DFS_SCHEDULE_LINEAR;
    mc.T = T;
    mc.prediction = pred;
    dfs_model *m = dfs_model_new(&mc, seed);
    CHECK(m != NULL, "text model: %s", dfs_last_error());
    if (!m) {
        dfs_tokenizer_free(tok);
        return NULL;
    }
    m->tokenizer = tok;
    return m;
}

static void test_checkpoint(void) {
    const char *caps[4] = {"a dark boot", "a light bag", "dark trousers", "a bag"};
    dfs_model *m = text_model(caps, 4, 11, 8, 100, DFS_PRED_EPS);
    if (!m) return;
    CHECK(dfs_model_set_prompts(m, caps, 4, NULL, NULL, NULL) == DFS_OK, "prompts: %s", dfs_last_error());
    char path[256], p16[256];
    snprintf(path, sizeof path, "%s/text.safetensors", tmpdir);
    snprintf(p16, sizeof p16, "%s/text16.safetensors", tmpdir);
    dfs_train_state st = {.seed = 1};
    dfs_rng_seed(&st.rng, 1); // an all-zero generator state is refused on load
    CHECK(dfs_checkpoint_save(path, m, &st, NULL, DFS_CKPT_FULL) == DFS_OK, "save: %s", dfs_last_error());
    CHECK(dfs_checkpoint_save(p16, m, NULL, NULL, DFS_CKPT_SAMPLING_F16) == DFS_OK, "save f16: %s", dfs_last_error());
    dfs_safetensors f;
    if (dfs_st_load(&f, path) == DFS_OK) {
        const char *uj = dfs_st_meta(&f, "unet"), *tj = dfs_st_meta(&f, "tokenizer");
        CHECK(uj && strstr(uj, "\"text\":{\"vocab\":"), "unet metadata has the text config: %s", uj ? uj : "(none)");
        char *want = dfs_tokenizer_to_json(m->tokenizer);
        CHECK(tj && want && strcmp(tj, want) == 0, "tokenizer metadata is dfs_tokenizer_to_json's");
        free(want);
        dfs_st_free(&f);
    }
    dfs_model *b = NULL;
    dfs_train_state sb;
    int has_optim = 0;
    CHECK(dfs_checkpoint_load(path, &b, &sb, &has_optim, NULL) == DFS_OK, "load: %s", dfs_last_error());
    if (b) {
        CHECK(memcmp(&b->cfg.unet, &m->cfg.unet, sizeof b->cfg.unet) == 0, "the config (text included) round-trips");
        CHECK(b->net->params->n == m->net->params->n &&
                  memcmp(b->net->params->data, m->net->params->data, m->net->params->n * sizeof(float)) == 0,
              "weights round-trip bit-exactly");
        char *ja = dfs_tokenizer_to_json(m->tokenizer), *jb = b->tokenizer ? dfs_tokenizer_to_json(b->tokenizer) : NULL;
        CHECK(jb && strcmp(ja, jb) == 0, "the tokenizer round-trips");
        free(ja), free(jb);
        /* the same prompts give the same output */
        CHECK(dfs_model_set_prompts(b, caps, 4, NULL, NULL, NULL) == DFS_OK, "prompts on the loaded model");
        const int D = 64, n = 5;
        float x[5 * 64], ya[5 * 64], yb[5 * 64];
        dfs_rng rng;
        dfs_rng_seed(&rng, 4);
        dfs_rng_fill_normal(&rng, x, (size_t)n * D);
        const int t[5] = {1, 20, 40, 60, 99}, lab[5] = {0, 1, 2, 3, 4};
        dfs_model_predict(m, x, t, lab, n, ya);
        dfs_model_predict(b, x, t, lab, n, yb);
        CHECK(memcmp(ya, yb, sizeof ya) == 0, "the loaded model predicts the same, bit for bit");
    }
    dfs_model *h = NULL;
    CHECK(dfs_checkpoint_load(p16, &h, NULL, &has_optim, NULL) == DFS_OK && h && h->tokenizer && !has_optim,
          "the float16 sampling model keeps the tokenizer: %s", dfs_last_error());
    dfs_model_free(h);
    dfs_model_free(b);

    /* a tokenizer that does not fit the encoder is a corrupt file */
    const char *other[2] = {"one two three four five", "six seven"};
    dfs_tokenizer_config tc;
    dfs_tokenizer_config_default(&tc);
    tc.max_len = 6;
    dfs_tokenizer *wrong;
    CHECK(dfs_tokenizer_build(&wrong, other, 2, &tc) == DFS_OK, "second tokenizer");
    dfs_tokenizer *keep = m->tokenizer;
    m->tokenizer = wrong;
    CHECK(dfs_checkpoint_save(path, m, NULL, NULL, DFS_CKPT_SAMPLING) == DFS_OK, "save mismatched");
    m->tokenizer = keep;
    dfs_tokenizer_free(wrong);
    b = NULL;
    dfs_status s = dfs_checkpoint_load(path, &b, NULL, NULL, NULL);
    CHECK(s == DFS_ERR_FORMAT && !b && strstr(dfs_last_error(), "tokenizer"), "mismatched tokenizer rejected: %s",
          dfs_last_error());

    /* a model without text: no "text" in its metadata, no tokenizer, and loads as before */
    dfs_model_config mc;
    memset(&mc, 0, sizeof mc);
    dfs_unet_config_preset(&mc.unet, "small");
    mc.schedule = DFS_SCHEDULE_LINEAR, mc.T = 10, mc.prediction = DFS_PRED_EPS;
    dfs_model *plain = dfs_model_new(&mc, 1);
    CHECK(dfs_checkpoint_save(path, plain, NULL, NULL, DFS_CKPT_SAMPLING) == DFS_OK, "save plain");
    if (dfs_st_load(&f, path) == DFS_OK) {
        CHECK(!strstr(dfs_st_meta(&f, "unet"), "text") && !dfs_st_meta(&f, "tokenizer"),
              "a plain model's metadata has no text config and no tokenizer");
        dfs_st_free(&f);
    }
    b = NULL;
    CHECK(dfs_checkpoint_load(path, &b, NULL, NULL, NULL) == DFS_OK && b && b->cfg.unet.text.dim == 0 && !b->tokenizer,
          "plain model loads without text");
    dfs_model_free(b);
    dfs_model_free(plain);
    dfs_model_free(m);
}

/* ---- training: two captions learnt apart --------------------------------------------------- */

static void test_learns_captions(void) {
    /* 32 images of 8x8: the 'dark' ones all black, the 'light' ones all white */
    enum { N = 32 };
    const char *caps[N];
    dfs_dataset d = {.n = N, .c = 1, .h = 8, .w = 8};
    d.pixels = malloc(N * 64);
    for (int i = 0; i < N; i++) {
        caps[i] = i % 2 ? "light" : "dark";
        memset(d.pixels + i * 64, i % 2 ? 255 : 0, 64);
    }
    dfs_model *m = text_model(caps, N, 3, 16, 1000, DFS_PRED_X0); /* learns the caption in fewer steps than eps */
    if (!m) return;
    CHECK(dfs_model_set_prompts(m, caps, N - 1, NULL, NULL, NULL) == DFS_OK, "31 captions");
    dfs_train_config tc;
    dfs_train_config_default(&tc);
    tc.batch = 16;
    tc.opt.lr = 3e-3f;
    tc.opt.warmup = 20;
    tc.opt.ema_decay = 0;
    tc.cond_drop = 0.2f;
    dfs_train_state st = {.seed = 5};
    dfs_rng_seed(&st.rng, 5);
    dfs_trainer *tr = NULL;
    CHECK(dfs_trainer_new(&tr, m, &tc, &d, &st) == DFS_ERR_SHAPE && strstr(dfs_last_error(), "caption table"),
          "a table that does not match the data is refused: %s", dfs_last_error());
    CHECK(dfs_model_set_prompts(m, caps, N, NULL, NULL, NULL) == DFS_OK, "32 captions");
    dfs_status s = dfs_trainer_new(&tr, m, &tc, &d, &st);
    CHECK(s == DFS_OK, "trainer: %s", dfs_last_error());
    float first = 0, last = 0, loss;
    for (int i = 0; i < 150 && s == DFS_OK; i++) {
        s = dfs_trainer_step(tr, &loss);
        if (i < 20) first += loss / 20;
        if (i >= 130) last += loss / 20;
    }
    CHECK(s == DFS_OK && last < 0.5f * first, "loss falls: %.4f -> %.4f", first, last);
    dfs_trainer_free(tr);
    /* From pure noise at t = 600 (x_t says almost nothing about x0), the model's x0 estimate
     * can only come from the caption: the same 8 noise images with "dark" and with "light". */
    const char *prompts[2] = {"dark", "light"};
    CHECK(dfs_model_set_prompts(m, prompts, 2, NULL, NULL, NULL) == DFS_OK, "prompts");
    enum { K = 8, D = 64 };
    const int t0 = 600;
    int labels[2 * K], ts[2 * K];
    float xt[2 * K * D], x0[2 * K * D];
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    dfs_rng_fill_normal(&rng, xt, K * D);
    memcpy(xt + K * D, xt, sizeof(float) * K * D);
    for (int i = 0; i < 2 * K; i++) labels[i] = i / K, ts[i] = t0;
    dfs_model_predict(m, xt, ts, labels, 2 * K, x0);
    double mean[2] = {0, 0};
    for (int i = 0; i < 2 * K * D; i++) mean[i / (K * D)] += x0[i] / (K * D);
    printf("  learnt captions: mean x0 estimate at t = %d from noise, 'dark' %.3f, 'light' %.3f (data -1, 1)\n", t0,
           mean[0], mean[1]);
    CHECK(mean[0] < -0.5 && mean[1] > 0.5, "the caption decides: x0 estimate for 'dark' %.3f, for 'light' %.3f",
          mean[0], mean[1]);
    /* and sampling with guidance (null label = 2, the empty caption) draws them apart */
    dfs_sampler_config sc;
    dfs_sampler_config_default(&sc);
    sc.kind = DFS_SAMPLER_DDIM;
    sc.steps = 20;
    sc.guidance = 2.0f;
    sc.null_label = 2;
    sc.prediction = m->cfg.prediction;
    CHECK(dfs_sample(&m->sched, &sc, dfs_model_predict, m, labels, 2 * K, D, &rng, xt, NULL, NULL) == DFS_OK,
          "sample: %s", dfs_last_error());
    mean[0] = mean[1] = 0;
    for (int i = 0; i < 2 * K * D; i++) mean[i / (K * D)] += xt[i] / (K * D);
    printf("  learnt captions: mean pixel of samples, 'dark' %.3f, 'light' %.3f\n", mean[0], mean[1]);
    CHECK(mean[0] < -0.5 && mean[1] > 0.5, "samples: 'dark' %.3f, 'light' %.3f", mean[0], mean[1]);
    dfs_model_free(m);
    dfs_dataset_free(&d);
}

/* ---- dynamic thresholding ------------------------------------------------------------------ */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile(|x|, p) by sorting: the independent reference */
static double percentile_sorted(const float *x, size_t n, double p) {
    float *a = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = fabsf(x[i]);
    qsort(a, n, sizeof(float), cmp_float);
    double r = p / 100.0 * (double)(n - 1);
    size_t k = (size_t)r;
    double v = k + 1 < n ? a[k] + (r - (double)k) * ((double)a[k + 1] - a[k]) : a[k];
    free(a);
    return v;
}

typedef struct {
    const float *x0c, *x0u; /* (n, dim) what the model "predicts" for the caption and for null */
    int null_label;
} fixed_model;

/* An x0-prediction model that returns fixed images, whatever x and t */
static dfs_status fixed_predict(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    fixed_model *fm = user;
    const size_t dim = 101;
    (void)x, (void)t;
    for (int i = 0; i < n; i++) {
        int null = labels && labels[i] == fm->null_label;
        int row = labels ? (null ? labels[i - n / 2] : labels[i]) : i;
        memcpy(out + (size_t)i * dim, (null ? fm->x0u : fm->x0c) + (size_t)row * dim, dim * sizeof(float));
    }
    return DFS_OK;
}

static void test_dynamic_threshold(void) {
    /* The ramp x_k = (k - 50) 0.08, k = 0..100: |x| = 0, 0.08, 0.08, ..., 4, 4; its 90th
     * percentile is the sorted value at rank 90: 45 * 0.08 = 3.6. */
    enum { DIM = 101 };
    float x[DIM], scratch[DIM];
    for (int k = 0; k < DIM; k++) x[k] = (k - 50) * 0.08f;
    float s = dfs_dynamic_threshold(x, DIM, 90.0f, scratch);
    /* s is the float 45 * 0.08f: two roundings (0.08 and the product) from 3.6; x[75] =
     * 25 * 0.08f / s: four */
    CHECK_CLOSE(s, 3.6, 0, 2 * U32, "ramp: s = 90th percentile of |x| = 3.6");
    CHECK_CLOSE(x[75], 2.0 / 3.6, 0, 4 * U32, "x = 2 -> 2 / 3.6");
    CHECK(x[0] == -1.0f && x[100] == 1.0f && x[95] == 1.0f && x[5] == -1.0f, "beyond +-3.6 -> +-1");
    /* fractional rank: p = 96.5 -> rank 96.5, halfway between the sorted 3.84 and 3.92 */
    for (int k = 0; k < DIM; k++) x[k] = (k - 50) * 0.08f;
    s = dfs_dynamic_threshold(x, DIM, 96.5f, scratch);
    /* 48 * 0.08f and 49 * 0.08f (two roundings each), interpolated in double, rounded */
    CHECK_CLOSE(s, 3.88, 0, 3 * U32, "interpolated percentile");
    /* everything within [-1, 1]: s = max(s, 1) = 1 leaves the image unchanged */
    for (int k = 0; k < DIM; k++) x[k] = (k - 50) * 0.019f;
    float y[DIM];
    memcpy(y, x, sizeof x);
    s = dfs_dynamic_threshold(x, DIM, 99.5f, scratch);
    CHECK(s == 1.0f && memcmp(x, y, sizeof x) == 0, "within [-1, 1]: s = 1, unchanged");
    /* against sorting, on random data with ties, odd and even sizes, many percentiles. The op
     * interpolates in double like the reference and rounds s to float: |s - want| <= u want.
     * Each x / s then has s's u, the division's u and, for an x clipped at s on one side only,
     * the u between s and want: |b - c| <= 3u (|c| <= 1). */
    dfs_rng rng;
    dfs_rng_seed(&rng, 8);
    double worst = 0;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 1 + dfs_rng_below(&rng, 300);
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *sc = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) a[i] = trial % 3 ? 3.0f * dfs_rng_normal(&rng) : (float)((int)dfs_rng_below(&rng, 7) - 3);
        float p = trial % 5 ? 100.0f * dfs_rng_uniform(&rng) + 1e-3f : (trial % 2 ? 100.0f : 50.0f);
        if (p > 100.0f) p = 100.0f;
        memcpy(b, a, n * sizeof(float));
        double want = fmax(percentile_sorted(a, n, p), 1.0);
        double got = dfs_dynamic_threshold(b, n, p, sc);
        worst = max_err(worst, err_ratio(fabs(got - want), U32 * want));
        for (size_t i = 0; i < n; i++) {
            double c = fmin(fmax(a[i], -want), want) / want;
            worst = max_err(worst, err_ratio(fabs(b[i] - c), 3 * U32));
        }
        free(a), free(b), free(sc);
    }
    CHECK_RATIO(worst, "200 random cases equal the sorted reference (error %.3g of its bound)", worst);

    /* Every sampler, one step (a jump from x_T to x0): the result is the thresholded x0
     * prediction. With guidance w on an x0 model, x0 = x0_u + w (x0_c - x0_u) (eps is linear in
     * x0 at fixed x_t), thresholded. */
    float x0c[2 * DIM], x0u[2 * DIM], want[2 * DIM], clipped[2 * DIM];
    for (int k = 0; k < DIM; k++) {
        x0c[k] = (k - 50) * 0.04f;              /* guided: 1.5 x0c = (k - 50) 0.06, s = 2.7 */
        x0u[k] = 0.5f * x0c[k];
        x0c[DIM + k] = 0.3f * sinf((float)k);   /* small: s = 1 */
        x0u[DIM + k] = 0.0f;
    }
    const float w = 2.0f;
    for (int i = 0; i < 2 * DIM; i++) want[i] = x0u[i] + w * (x0c[i] - x0u[i]);
    memcpy(clipped, want, sizeof want);
    for (int i = 0; i < 2 * DIM; i++) clipped[i] = clipped[i] < -1 ? -1 : clipped[i] > 1 ? 1 : clipped[i];
    float sw = dfs_dynamic_threshold(want, DIM, 90.0f, scratch);
    float sw2 = dfs_dynamic_threshold(want + DIM, DIM, 90.0f, scratch);
    /* 45 * 0.04f, halved, and x0u + 2 (x0c - x0u): five roundings of values up to 2 * 1.8 */
    CHECK_CLOSE(sw, 2.7, 0, 5 * U32 * 3.6 / 2.7, "guided ramp: s = 2.7");
    CHECK(sw2 == 1.0f, "small guided image: s = 1 (got %g)", sw2);
    fixed_model fm = {x0c, x0u, 7};
    const int labels[2] = {0, 1};
    /* How far the sampler's guided x0 can lie from the exact x0u + w (x0c - x0u): the model's
     * x0 go to eps = (x_T - sa x0) / sb (double, rounded to float: u |eps|), guidance mixes them
     * in double, e = eu + w (ec - eu), and x0 = (x_T - sb e) / sa comes back with those
     * roundings times sb / sa (~157 at t = 999: x0 is ill-conditioned in eps there), plus its
     * own rounding and the float arithmetic of the test's want (3u of its terms):
     *   dx0_j = (sb / sa) u (|1 - w| |eu_j| + |w| |ec_j|) + 4u (|x0u_j| + |w| |x0c_j - x0u_j|).
     * Thresholding moves s by at most the largest dx0 of the sample (an order statistic of
     * values each off by at most that) plus its rounding, and x0 / s adds two roundings:
     *   |out_j - want_j| <= dx0_j / s + |want_j| (max dx0 / s + 3u).
     * x_T: the sampler's first n dim normals of rng (include/diffuse.h, samplers.c). */
    int ts1;
    dfs_sampler_timesteps(1000, 1, &ts1);
    double dx0[2 * DIM], bthr[2 * DIM], bclip[2 * DIM];
    {
        dfs_schedule sch;
        dfs_schedule_init(&sch, DFS_SCHEDULE_LINEAR, 1000);
        const double sa = sqrt(sch.abar[ts1]), sb = sqrt(1.0 - sch.abar[ts1]);
        dfs_schedule_free(&sch);
        float xT[2 * DIM];
        dfs_rng_seed(&rng, 1);
        dfs_rng_fill_normal(&rng, xT, 2 * DIM);
        for (int i = 0; i < 2 * DIM; i++) {
            double eu = (xT[i] - sa * x0u[i]) / sb, ec = (xT[i] - sa * x0c[i]) / sb;
            dx0[i] = sb / sa * U32 * (fabs(1 - w) * fabs(eu) + fabs(w) * fabs(ec)) +
                     4 * U32 * (fabs(x0u[i]) + fabs(w) * fabs(x0c[i] - x0u[i]));
        }
        for (int r = 0; r < 2; r++) {
            double m = 0, sr = r ? sw2 : sw;
            for (int k = 0; k < DIM; k++) m = fmax(m, dx0[r * DIM + k]);
            for (int k = 0; k < DIM; k++) {
                const int i = r * DIM + k;
                bthr[i] = dx0[i] / sr + fabs(want[i]) * (m / sr + 3 * U32);
                bclip[i] = dx0[i] + U32 * fabs(clipped[i]); /* clip(x0, -1, 1): x0's error or none */
            }
        }
    }
    for (int kind = 0; kind < DFS_SAMPLER_COUNT; kind++) {
        dfs_sampler_config sc;
        dfs_sampler_config_default(&sc);
        sc.kind = kind;
        sc.steps = 1;
        sc.prediction = DFS_PRED_X0;
        sc.guidance = w;
        sc.null_label = 7;
        sc.dynamic_threshold = 90.0f;
        dfs_schedule sch;
        dfs_schedule_init(&sch, DFS_SCHEDULE_LINEAR, 1000);
        float out[2 * DIM];
        dfs_rng_seed(&rng, 1);
        dfs_status st = dfs_sample(&sch, &sc, fixed_predict, &fm, labels, 2, DIM, &rng, out, NULL, NULL);
        /* one step: t = ts1 straight to x0 (every sampler's last step returns its x0) */
        double e = 0, ec = 0;
        for (int i = 0; i < 2 * DIM; i++) e = max_err(e, err_ratio(fabs((double)out[i] - want[i]), bthr[i]));
        CHECK(st == DFS_OK, "%s, one step: %s", dfs_sampler_names[kind], dfs_last_error());
        CHECK_RATIO(e, "%s, one step: the thresholded guided x0 (error %.3g of its bound)",
                    dfs_sampler_names[kind], e);
        sc.dynamic_threshold = 0.0f; /* static clipping instead: a different answer */
        dfs_rng_seed(&rng, 1);
        dfs_sample(&sch, &sc, fixed_predict, &fm, labels, 2, DIM, &rng, out, NULL, NULL);
        for (int i = 0; i < 2 * DIM; i++) ec = max_err(ec, err_ratio(fabs((double)out[i] - clipped[i]), bclip[i]));
        CHECK_RATIO(ec, "%s without it: the clipped x0 (error %.3g of its bound)", dfs_sampler_names[kind], ec);
        CHECK(max_diff(out, want, 2 * DIM) > 0.1, "%s without it: not the thresholded x0",
              dfs_sampler_names[kind]);
        sc.dynamic_threshold = 101.0f;
        CHECK(dfs_sample(&sch, &sc, fixed_predict, &fm, labels, 2, DIM, &rng, out, NULL, NULL) == DFS_ERR_ARG,
              "percentile 101 rejected");
        dfs_schedule_free(&sch);
    }
}

#include <time.h>
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
#define TIMED(f)                                                                              \
    do {                                                                                      \
        double t0_ = now();                                                                   \
        f();                                                                                  \
        printf("  %s: %.2f s\n", #f, now() - t0_);                                            \
    } while (0)

/* dfs_unet_flops of a text model: the plain net's count plus 2 L n for every weight matrix
 * the L tokens go through (encoder projections and MLPs, each block's ctx), 2 n for text_proj
 * (one pooled vector), and the attention scores and sums: 4 L^2 d per encoder layer and
 * 4 c hw L for the words' keys in each attention block (3 at 8x8 with 8 channels, 4 at 4x4
 * with 16: the tiny net's encoder, middle and decoder). */
static void test_flops(void) {
    dfs_unet_config c = tiny_config(), plain = c;
    memset(&plain.text, 0, sizeof plain.text);
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    dfs_unet *u = dfs_unet_new(&c, &rng);
    const double L = c.text.max_len, d = c.text.dim;
    double want = c.text.layers * 4 * L * L * d + 3 * 4.0 * 8 * 64 * L + 4 * 4.0 * 16 * 16 * L;
    int mats = 0;
    for (int i = 0; u && i < u->params->count; i++) {
        const dfs_tensor *t = u->params->t[i];
        const char *n = t->name;
        if (strstr(n, "ctx.weight") || (!strncmp(n, "text.layers.", 12) && t->ndim == 2)) want += 2 * L * t->n, mats++;
        if (!strcmp(n, "text_proj.weight")) want += 2.0 * t->n, mats++;
    }
    const double got = dfs_unet_flops(&c) - dfs_unet_flops(&plain);
    CHECK(mats == 7 + 4 * c.text.layers + 1, "%d weight matrices of the text path", mats);
    CHECK_CLOSE(got, want, 0.5, 0, "text FLOPs over the plain net");
    dfs_unet_free(u);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    dfs_set_threads(1); /* tiny tensors: a second thread costs more than it gives */
    TIMED(test_config_and_errors);
    TIMED(test_flops);
    TIMED(test_empty_and_padding);
    TIMED(test_gradients);
    TIMED(test_checkpoint);
    TIMED(test_dynamic_threshold);
    TIMED(test_learns_captions);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_text_unet");
}
