/* model.c - a U-Net together with its diffusion schedule, and inference for the samplers. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

dfs_model *dfs_model_new(const dfs_model_config *c, uint64_t seed) {
    if (c->T < 1 || c->T > 100000) {
        dfs_set_error("number of diffusion steps T must be 1..100000, not %d", c->T);
        return NULL;
    }
    if (c->prediction < 0 || c->prediction >= DFS_PRED_COUNT) {
        dfs_set_error("unknown prediction target %d", (int)c->prediction);
        return NULL;
    }
    dfs_model *m = calloc(1, sizeof *m);
    if (!m) {
        dfs_set_error("out of memory");
        return NULL;
    }
    m->cfg = *c;
    m->max_batch = 64;
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    m->net = dfs_unet_new(&c->unet, &rng);
    if (!m->net || dfs_schedule_init(&m->sched, c->schedule, c->T) != DFS_OK ||
        !(m->g = dfs_graph_new())) {
        dfs_model_free(m);
        return NULL;
    }
    return m;
}

void dfs_model_free(dfs_model *m) {
    if (!m) return;
    dfs_unet_free(m->net);
    dfs_schedule_free(&m->sched);
    dfs_graph_free(m->g);
    free(m);
}

void dfs_model_predict(void *model, const float *x, const int *t, const int *labels, int n,
                       float *out) {
    dfs_model *m = model;
    const dfs_unet_config *c = &m->cfg.unet;
    const size_t dim = (size_t)c->in_channels * c->image_size * c->image_size;
    dfs_graph_set_grad(m->g, 0);
    dfs_graph_set_training(m->g, 0, NULL);
    for (int i = 0; i < n; i += m->max_batch) {
        int nb = n - i < m->max_batch ? n - i : m->max_batch;
        dfs_graph_reset(m->g);
        dfs_tensor *xt = dfs_tensor_wrap(m->g, (float *)x + (size_t)i * dim, 4,
                                         (int[]){nb, c->in_channels, c->image_size, c->image_size});
        dfs_tensor *y = dfs_unet_forward(m->net, m->g, xt, t + i, labels ? labels + i : NULL);
        memcpy(out + (size_t)i * dim, y->data, (size_t)nb * dim * sizeof(float));
    }
    dfs_graph_reset(m->g);
}

void dfs_params_swap_ema(dfs_params *p) {
    for (size_t i = 0; i < p->n; i++) {
        float tmp = p->data[i];
        p->data[i] = p->ema[i];
        p->ema[i] = tmp;
    }
}
