/* parity_dump.c - run a U-Net once and K AdamW steps on a fixed batch and write everything
 * PyTorch needs to repeat it (torch_parity.py; tests/parity/parity.sh, tests/parity/parity_text_unet.sh).
 *
 *   parity_dump [--text] OUT.safetensors
 *
 * Without --text: the reference U-Net (preset fmnist, 10 classes), 2 threads.
 * With --text: a small text-conditioned U-Net (src/nn/unet_text.c): 16x16, 2 channels, base 16,
 * levels (1, 2), attention at both levels (7 attention blocks with ctx layers); text encoder
 * width 16, 2 layers, 4 heads, vocabulary 13, 6 tokens; 1 thread.
 *
 * OUT holds: every initial parameter under its state_dict name, the batch ("input.x",
 * "input.t", "input.labels" as I64, "input.target"), the forward "output", the MSE "loss",
 * "grad.<name>" for every parameter, the K training losses "train.losses" and the weights
 * after training "final.<name>"; metadata "unet" is the config as checkpoints store it. With
 * --text also the caption table "input.tokens" (R, L) and "input.mask" (R, L) as I64; the labels
 * are then rows of the table, one of them R, the empty caption.
 * Without --text also the ops the U-Net does not use, each alone (dump_ops): "ops.x", and for
 * each op "ops.<op>.out" = op(ops.x), "ops.<op>.R" and "ops.<op>.dx", the gradient of
 * sum(R out); a permute's "ops.<op>.perm" (I64).
 *
 * Size key: N batch, C channels, H W image size, K training steps, R table rows, L tokens. */
#include "diffuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 4
#define K 5
#define R 3
#define L 6

static int fail(const char *what) {
    fprintf(stderr, "parity_dump: %s: %s\n", what, dfs_last_error());
    return 1;
}

/* One forward + backward on the batch; gradients land in net->params->grad (zeroed first).
 * Returns the loss and, if out != NULL, copies the output (N*C*H*W floats). */
static float step_loss(dfs_unet *net, dfs_graph *g, float *x, const int *t, const int *labels,
                       float *target, float *out) {
    const dfs_unet_config *c = &net->cfg;
    int shape[4] = {N, c->in_channels, c->image_size, c->image_size};
    dfs_params_zero_grad(net->params);
    dfs_tensor *xt = dfs_tensor_wrap(g, x, 4, shape);
    dfs_tensor *tt = dfs_tensor_wrap(g, target, 4, shape);
    dfs_tensor *eps = dfs_unet_forward(net, g, xt, t, labels);
    dfs_tensor *loss = dfs_mse(g, eps, tt);
    dfs_backward(g, loss);
    if (out) memcpy(out, eps->data, eps->n * sizeof(float));
    float l = loss->data[0];
    dfs_graph_reset(g);
    return l;
}

/* The ops that a CSDI denoiser adds and the U-Net does not use, one at a time on one input
 * X (2, 3, 4, 5) = 4 N(0, 1), its first elements set to 0, 100, -100, 30, -30 (relu's kink,
 * the saturated tails). The data must outlive w (the writer keeps pointers): static. */
enum { OPS = 5, OPS_N = 2 * 3 * 4 * 5 };
static const char *const op_name[OPS] = {"sigmoid", "tanh", "relu", "permute_0213",
                                         "permute_3102"};
static const int64_t op_perm[OPS][4] = {{0}, {0}, {0}, {0, 2, 1, 3}, {3, 1, 0, 2}};
static float ops_x[OPS_N], ops_r[OPS][OPS_N], ops_out[OPS][OPS_N], ops_dx[OPS][OPS_N];
static char ops_names[OPS][4][40];

static dfs_status dump_ops(dfs_st_writer *w, dfs_graph *g, dfs_rng *rng) {
    const int xs[4] = {2, 3, 4, 5};
    const int64_t xs64[4] = {2, 3, 4, 5}, ps[1] = {4};
    for (int i = 0; i < OPS_N; i++) ops_x[i] = 4.0f * dfs_rng_normal(rng);
    memcpy(ops_x, (float[]){0.0f, 100.0f, -100.0f, 30.0f, -30.0f}, 5 * sizeof(float));
    dfs_status st = dfs_st_writer_add(w, "ops.x", DFS_DT_F32, 4, xs64, ops_x);
    for (int k = 0; k < OPS && st == DFS_OK; k++) {
        dfs_graph_reset(g);
        dfs_tensor *x = dfs_tensor_wrap(g, ops_x, 4, xs), *y;
        x->requires_grad = 1;
        int perm[4];
        for (int d = 0; d < 4; d++) perm[d] = (int)op_perm[k][d];
        y = k == 0 ? dfs_sigmoid(g, x) : k == 1 ? dfs_tanh(g, x) : k == 2 ? dfs_relu(g, x)
                                                                  : dfs_permute(g, x, perm);
        dfs_rng_fill_normal(rng, ops_r[k], OPS_N);
        dfs_backward_grad(g, y, ops_r[k]);
        memcpy(ops_out[k], y->data, sizeof ops_out[k]);
        memcpy(ops_dx[k], x->grad, sizeof ops_dx[k]);
        int64_t ys[4];
        for (int d = 0; d < 4; d++) ys[d] = y->shape[d];
        const char *what[4] = {"out", "R", "dx", "perm"};
        for (int j = 0; j < 4; j++)
            snprintf(ops_names[k][j], sizeof ops_names[k][j], "ops.%s.%s", op_name[k], what[j]);
        const float *data[3] = {ops_out[k], ops_r[k], ops_dx[k]};
        for (int j = 0; j < 3 && st == DFS_OK; j++)
            st = dfs_st_writer_add(w, ops_names[k][j], DFS_DT_F32, 4, j == 2 ? xs64 : ys, data[j]);
        if (st == DFS_OK && k >= 3)
            st = dfs_st_writer_add(w, ops_names[k][3], DFS_DT_I64, 1, ps, op_perm[k]);
    }
    dfs_graph_reset(g);
    return st;
}

/* The small text U-Net of the header comment. */
static void text_config(dfs_unet_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->image_size = 16;
    cfg->in_channels = 2;
    cfg->base_channels = 16;
    cfg->nlevels = 2;
    cfg->mult[0] = 1, cfg->mult[1] = 2;
    cfg->attn[0] = 1, cfg->attn[1] = 1;
    cfg->enc_blocks = 1;
    cfg->dec_blocks = 2;
    cfg->groups = 4;
    cfg->text = (dfs_text_config){.vocab = 13, .max_len = L, .dim = 16, .layers = 2, .heads = 4};
}

/* The caption table of the --text run: a padded caption, one with junk ids under its mask, one
 * with no padding. */
static const int tokens[R * L] = {2, 5, 6, 3, 0, 0, 2, 7, 3, 11, 12, 4, 2, 8, 9, 10, 12, 3};
static const uint8_t mask[R * L] = {1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1};

int main(int argc, char **argv) {
    const int text = argc == 3 && !strcmp(argv[1], "--text");
    if (argc != 2 + text || argv[argc - 1][0] == '-') {
        fprintf(stderr, "usage: parity_dump [--text] OUT.safetensors\n");
        return 2;
    }
    const char *path = argv[argc - 1];
    dfs_set_threads(text ? 1 : 2);

    dfs_unet_config cfg;
    if (text) text_config(&cfg);
    else if (dfs_unet_config_preset(&cfg, "fmnist") != DFS_OK) return fail("preset");
    cfg.dropout = 0.0f; /* deterministic: PyTorch cannot replay our dropout masks */
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    dfs_unet *net = dfs_unet_new(&cfg, &rng);
    if (!net) return fail("dfs_unet_new");
    dfs_params *p = net->params;
    int64_t tok64[R * L], mask64[R * L];
    if (text) {
        /* The embeddings' N(0, 0.02^2) init makes the words a small signal; x20 so that the
         * comparison sees their path with O(1) weight. */
        for (int i = 0; i < p->count; i++)
            if (!strcmp(p->t[i]->name, "text.tok_emb.weight") || !strcmp(p->t[i]->name, "text.pos_emb.weight"))
                for (size_t k = 0; k < p->t[i]->n; k++) p->t[i]->data[k] *= 20.0f;
        dfs_params_ema_init(p);
        if (dfs_unet_set_context(net, tokens, mask, R) != DFS_OK) return fail("dfs_unet_set_context");
        for (int i = 0; i < R * L; i++) tok64[i] = tokens[i], mask64[i] = mask[i];
    }

    /* The batch: x, target ~ N(0, 1); steps from both ends of T = 1000; labels with the null
     * class (or the empty caption). */
    const int D = cfg.in_channels * cfg.image_size * cfg.image_size;
    const int t[N] = {0, 17, 500, 999};
    int labels[N] = {0, 3, 9, cfg.num_classes};
    if (text) labels[1] = 1, labels[2] = 2, labels[3] = R;
    int64_t t64[N], lab64[N];
    for (int i = 0; i < N; i++) t64[i] = t[i], lab64[i] = labels[i];
    float *x = malloc((size_t)N * D * sizeof(float));      // (N, C, H, W)
    float *target = malloc((size_t)N * D * sizeof(float)); // (N, C, H, W)
    float *out = malloc((size_t)N * D * sizeof(float));    // (N, C, H, W)
    float *w0 = malloc(p->n * sizeof(float));              // initial weights
    float *g0 = malloc(p->n * sizeof(float));              // their gradients
    char **names = calloc(2 * (size_t)p->count, sizeof(char *));
    dfs_graph *g = dfs_graph_new();
    char *json = dfs_unet_config_json(&cfg);
    if (!x || !target || !out || !w0 || !g0 || !names || !g || !json) {
        fprintf(stderr, "parity_dump: out of memory\n");
        return 1;
    }
    dfs_rng drng;
    dfs_rng_seed(&drng, 1234);
    dfs_rng_fill_normal(&drng, x, (size_t)N * D);
    dfs_rng_fill_normal(&drng, target, (size_t)N * D);

    memcpy(w0, p->data, p->n * sizeof(float));
    float loss = step_loss(net, g, x, t, labels, target, out);
    memcpy(g0, p->grad, p->n * sizeof(float));

    /* K AdamW steps on the same batch (losses before each update). */
    dfs_adamw_config oc;
    dfs_adamw_config_default(&oc);
    oc.lr = 1e-3f;
    oc.warmup = 0;
    oc.clip = 1.0f;
    oc.weight_decay = 0.01f;
    oc.ema_decay = 0.0f;
    float losses[K];
    for (int k = 0; k < K; k++) {
        losses[k] = step_loss(net, g, x, t, labels, target, NULL);
        float gn;
        if (dfs_adamw_step(p, &oc, k + 1, &gn) != DFS_OK) return fail("dfs_adamw_step");
        printf("parity_dump: step %d loss %.6f grad norm %.4f\n", k + 1, losses[k], gn);
    }

    dfs_st_writer *w = dfs_st_writer_new();
    if (!w) return fail("dfs_st_writer_new");
    int64_t shp[4];
    dfs_status st = DFS_OK;
    for (int i = 0; i < p->count && st == DFS_OK; i++) {
        const dfs_tensor *pt = p->t[i];
        size_t off = (size_t)(pt->data - p->data);
        for (int d = 0; d < pt->ndim; d++) shp[d] = pt->shape[d];
        size_t len = strlen(pt->name) + 8;
        names[2 * i] = malloc(len);
        names[2 * i + 1] = malloc(len);
        if (!names[2 * i] || !names[2 * i + 1]) {
            fprintf(stderr, "parity_dump: out of memory\n");
            return 1;
        }
        snprintf(names[2 * i], len, "grad.%s", pt->name);
        snprintf(names[2 * i + 1], len, "final.%s", pt->name);
        const char *nm[3] = {pt->name, names[2 * i], names[2 * i + 1]};
        const float *src[3] = {w0 + off, g0 + off, pt->data}; /* initial, gradient, trained */
        for (int j = 0; j < 3 && st == DFS_OK; j++)
            st = dfs_st_writer_add(w, nm[j], DFS_DT_F32, pt->ndim, shp, src[j]);
    }
    const int64_t xs[4] = {N, cfg.in_channels, cfg.image_size, cfg.image_size};
    const int64_t ns[1] = {N}, one[1] = {1}, ks[1] = {K}, ts2[2] = {R, L};
    if (st == DFS_OK) st = dfs_st_writer_add(w, "input.x", DFS_DT_F32, 4, xs, x);
    if (st == DFS_OK) st = dfs_st_writer_add(w, "input.t", DFS_DT_I64, 1, ns, t64);
    if (st == DFS_OK) st = dfs_st_writer_add(w, "input.labels", DFS_DT_I64, 1, ns, lab64);
    if (st == DFS_OK && text) st = dfs_st_writer_add(w, "input.tokens", DFS_DT_I64, 2, ts2, tok64);
    if (st == DFS_OK && text) st = dfs_st_writer_add(w, "input.mask", DFS_DT_I64, 2, ts2, mask64);
    if (st == DFS_OK) st = dfs_st_writer_add(w, "input.target", DFS_DT_F32, 4, xs, target);
    if (st == DFS_OK) st = dfs_st_writer_add(w, "output", DFS_DT_F32, 4, xs, out);
    if (st == DFS_OK) st = dfs_st_writer_add(w, "loss", DFS_DT_F32, 1, one, &loss);
    if (st == DFS_OK) st = dfs_st_writer_add(w, "train.losses", DFS_DT_F32, 1, ks, losses);
    if (st == DFS_OK) st = dfs_st_writer_meta(w, "unet", json);
    if (st == DFS_OK) st = dfs_st_writer_meta(w, "train", "{\"lr\":1e-3,\"betas\":[0.9,0.999],"
                                                          "\"eps\":1e-8,\"weight_decay\":0.01,"
                                                          "\"warmup\":0,\"clip\":1.0}");
    if (st == DFS_OK && !text) st = dump_ops(w, g, &drng);
    if (st == DFS_OK) st = dfs_st_writer_write(w, path);
    if (st != DFS_OK) return fail(path);
    printf("parity_dump: %d parameter tensors, %zu floats, loss %.6f -> %s\n", p->count, p->n, loss, path);

    dfs_st_writer_free(w);
    for (int i = 0; i < 2 * p->count; i++) free(names[i]);
    free(names);
    free(json); /* no cJSON hooks here: cJSON_free is free */
    dfs_graph_free(g);
    dfs_unet_free(net);
    free(x), free(target), free(out), free(w0), free(g0);
    return 0;
}
