/* text_dump.c OUT.safetensors - runs the text encoder (src/nn/text.c) forward and backward on a
 * fixed batch of token ids with padding, and writes its parameters, the inputs, the outputs and
 * every parameter gradient for torch_text.py to repeat in PyTorch
 * (tests/parity/parity_text.sh). The loss is sum(R1 * tokens) + sum(R2 * pooled). */
#include "diffuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: text_dump OUT.safetensors\n");
        return 2;
    }
    const dfs_text_config c = {.vocab = 13, .max_len = 7, .dim = 24, .layers = 2, .heads = 3};
    enum { N = 3 };
    dfs_params *p = dfs_params_new();
    dfs_text_encoder *te = dfs_text_encoder_declare(p, "text.", &c);
    if (!te || dfs_params_finalize(p) != DFS_OK) return 1;
    dfs_rng rng;
    dfs_rng_seed(&rng, 21);
    dfs_text_encoder_init(te, &rng);
    for (int i = 0; i < p->count; i++) p->t[i]->requires_grad = 1;
    dfs_params_zero_grad(p);
    int tok[N * 7];
    uint8_t mask[N * 7];
    float tokf[N * 7], maskf[N * 7];
    const int len[N] = {7, 3, 1};
    for (int n = 0; n < N; n++)
        for (int j = 0; j < 7; j++) {
            tok[n * 7 + j] = (int)(dfs_rng_uniform(&rng) * c.vocab) % c.vocab;
            mask[n * 7 + j] = j < len[n];
            tokf[n * 7 + j] = (float)tok[n * 7 + j];
            maskf[n * 7 + j] = mask[n * 7 + j];
        }
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *pooled;
    dfs_tensor *x = dfs_text_encoder_forward(te, g, tok, mask, N, &pooled);
    float *R1 = malloc(x->n * sizeof(float)), *R2 = malloc(pooled->n * sizeof(float));
    for (size_t i = 0; i < x->n; i++) R1[i] = dfs_rng_normal(&rng);
    for (size_t i = 0; i < pooled->n; i++) R2[i] = dfs_rng_normal(&rng);
    /* one backward through both outputs: loss = sum R1 x + sum R2 pooled */
    dfs_tensor *r1 = dfs_tensor_wrap(g, R1, x->ndim, x->shape), *r2 = dfs_tensor_wrap(g, R2, 2, pooled->shape);
    dfs_tensor *l1 = dfs_mean(g, dfs_mul(g, x, r1)), *l2 = dfs_mean(g, dfs_mul(g, pooled, r2));
    dfs_tensor *loss = dfs_add(g, dfs_scale(g, l1, (float)x->n), dfs_scale(g, l2, (float)pooled->n));
    dfs_backward(g, loss);

    dfs_st_writer *w = dfs_st_writer_new();
    float *grads[256];
    int ng = 0;
    for (int i = 0; i < p->count && ng < 256; i++) {
        dfs_tensor *t = p->t[i];
        int64_t sh[DFS_MAXDIM];
        for (int d = 0; d < t->ndim; d++) sh[d] = t->shape[d];
        dfs_st_writer_add(w, t->name, DFS_DT_F32, t->ndim, sh, t->data);
        char gname[300];
        snprintf(gname, sizeof gname, "grad.%s", t->name);
        grads[ng] = malloc(t->n * sizeof(float));
        memcpy(grads[ng], t->grad, t->n * sizeof(float));
        dfs_st_writer_add(w, gname, DFS_DT_F32, t->ndim, sh, grads[ng++]);
    }
    int64_t s2[2] = {N, 7}, s3[3] = {N, 7, c.dim}, sp[2] = {N, c.dim};
    dfs_st_writer_add(w, "in.tokens", DFS_DT_F32, 2, s2, tokf);
    dfs_st_writer_add(w, "in.mask", DFS_DT_F32, 2, s2, maskf);
    dfs_st_writer_add(w, "in.R1", DFS_DT_F32, 3, s3, R1);
    dfs_st_writer_add(w, "in.R2", DFS_DT_F32, 2, sp, R2);
    dfs_st_writer_add(w, "out.tokens", DFS_DT_F32, 3, s3, x->data);
    dfs_st_writer_add(w, "out.pooled", DFS_DT_F32, 2, sp, pooled->data);
    char cfg[160];
    snprintf(cfg, sizeof cfg, "{\"vocab\": %d, \"max_len\": %d, \"dim\": %d, \"layers\": %d, \"heads\": %d}", c.vocab,
             c.max_len, c.dim, c.layers, c.heads);
    dfs_st_writer_meta(w, "text", cfg);
    dfs_status s = dfs_st_writer_write(w, argv[1]);
    dfs_st_writer_free(w);
    for (int i = 0; i < ng; i++) free(grads[i]);
    free(R1);
    free(R2);
    dfs_graph_free(g);
    dfs_text_encoder_free(te);
    dfs_params_free(p);
    if (s != DFS_OK) {
        fprintf(stderr, "text_dump: %s\n", dfs_last_error());
        return 1;
    }
    return 0;
}
