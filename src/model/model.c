/* model.c - a U-Net together with its diffusion schedule, and inference for the samplers. */
#include "diffuse/kernels.h"
#include "diffuse/model.h"
#include "../engine/tape.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The graphs of dfs_model_predict: one for a single-threaded call, and one per thread of a
 * data-parallel call, made on first use. */
struct dfs_model_graphs {
    dfs_graph *g;
    dfs_graph **gthread;
    int ngthread;
};

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
        !(m->graphs = calloc(1, sizeof *m->graphs)) || !(m->graphs->g = dfs_graph_new())) {
        dfs_model_free(m);
        return NULL;
    }
    return m;
}

void dfs_model_free(dfs_model *m) {
    if (!m) return;
    dfs_unet_free(m->net);
    dfs_tokenizer_free(m->tokenizer);
    dfs_schedule_free(&m->sched);
    if (m->graphs) {
        dfs_graph_free(m->graphs->g);
        for (int i = 0; i < m->graphs->ngthread; i++) dfs_graph_free(m->graphs->gthread[i]);
        free(m->graphs->gthread);
        free(m->graphs);
    }
    free(m);
}

/* Images [lo, hi) in passes of at most `pass` images through graph g. DFS_ERR_NOMEM (with
 * the error set) when an allocation in the graph fails: it jumps back here, and the graph is
 * reset. */
static dfs_status predict_range(dfs_model *m, dfs_graph *g, const float *x, const int *t,
                                const int *labels, int lo, int hi, int pass, float *out) {
    const dfs_unet_config *c = &m->cfg.unet;
    const size_t dim = (size_t)c->in_channels * c->image_size * c->image_size;
    jmp_buf jb;
    DFS_RETURN_ON_OOM(g, jb);
    dfs_graph_set_grad(g, 0);
    dfs_graph_set_training(g, 0, NULL);
    for (int i = lo; i < hi; i += pass) {
        int nb = hi - i < pass ? hi - i : pass;
        dfs_graph_reset(g);
        dfs_tensor *xt = dfs_tensor_wrap(g, (float *)x + (size_t)i * dim, 4,
                                         (int[]){nb, c->in_channels, c->image_size, c->image_size});
        dfs_tensor *y = dfs_unet_forward(m->net, g, xt, t + i, labels ? labels + i : NULL);
        memcpy(out + (size_t)i * dim, y->data, (size_t)nb * dim * sizeof(float));
    }
    dfs_graph_set_oom_jump(g, NULL);
    dfs_graph_reset(g);
    return DFS_OK;
}

/* Inference is data-parallel: each thread runs the whole network, every op serial, on its own
 * contiguous share of the images, in a graph of its own. The threads meet once per call
 * instead of at every op (hundreds of barriers per pass), which also keeps the speed when
 * another process takes a core. An image's result depends on the split only at float
 * rounding level (the time-embedding GEMMs and strided convs see the pass's size). A thread
 * that runs out of memory jumps back within itself (predict_range), never across the
 * parallel region; its error message is copied out to the caller's thread. */
dfs_status dfs_model_predict(void *model, const float *x, const int *t, const int *labels, int n,
                             float *out) {
    dfs_model *m = model;
    const int maxb = m->max_batch > 0 ? m->max_batch : 1;
    int T = 1;
#ifdef _OPENMP
    T = omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
    if (T > n) T = n;
    struct dfs_model_graphs *gs = m->graphs;
    if (T > 1 && gs->ngthread < T) { /* the per-thread graphs, once */
        dfs_graph **gt = realloc(gs->gthread, (size_t)T * sizeof *gt);
        if (gt) {
            gs->gthread = gt;
            while (gs->ngthread < T && (gt[gs->ngthread] = dfs_graph_new())) gs->ngthread++;
        }
        if (gs->ngthread < T) T = 1; /* out of memory: one thread, as before */
    }
    if (T <= 1) return predict_range(m, gs->g, x, t, labels, 0, n, maxb, out);
    (void)dfs_get_kernels(); /* read DFS_KERNELS before the threads do */
    dfs_status st = DFS_OK;
    char err[512] = "";
#pragma omp parallel num_threads(T)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        const int tid = 0, nt = 1;
#endif
        const int per = (n + nt - 1) / nt, lo = tid * per, hi = lo + per < n ? lo + per : n;
        const int pass = maxb / nt > 0 ? maxb / nt : 1;
        if (lo < hi && predict_range(m, gs->gthread[tid], x, t, labels, lo, hi, pass, out) != DFS_OK) {
#pragma omp critical(dfs_predict_error)
            {
                st = DFS_ERR_NOMEM;
                snprintf(err, sizeof err, "%s", dfs_last_error());
            }
        }
    }
    if (st != DFS_OK) dfs_set_error("%s", err);
    return st;
}

void dfs_params_swap_ema(dfs_params *p) {
    for (size_t i = 0; i < p->n; i++) {
        float tmp = p->data[i];
        p->data[i] = p->ema[i];
        p->ema[i] = tmp;
    }
}

void dfs_sample_request_default(dfs_sample_request *r) {
    memset(r, 0, sizeof *r);
    dfs_sampler_config_default(&r->sampler);
    r->null_label = -1;
}

dfs_status dfs_model_sample(dfs_model *m, const dfs_sample_request *r, dfs_rng *rng, float *x) {
    const dfs_unet_config *u = &m->cfg.unet;
    if (r->n < 1) {
        dfs_set_error("dfs_model_sample: n must be at least 1, got %d", r->n);
        return DFS_ERR_ARG;
    }
    dfs_sampler_config sc = r->sampler;
    sc.prediction = m->cfg.prediction;
    sc.null_label = r->null_label >= 0 ? r->null_label
                    : u->text.dim > 0  ? dfs_unet_context_rows(m->net)
                                       : u->num_classes;
    const size_t dim = (size_t)u->in_channels * u->image_size * u->image_size;
    const int ema = !r->raw && m->net->params->ema;
    if (ema) dfs_params_swap_ema(m->net->params);
    dfs_status s = dfs_sample(&m->sched, &sc, dfs_model_predict, m, r->labels, r->n, dim, rng, x, r->cb,
                              r->cb_user);
    if (ema) dfs_params_swap_ema(m->net->params);
    return s;
}

dfs_status dfs_model_nll_bpd(dfs_model *m, const int *labels, const float *x, int n, int raw,
                             dfs_rng *rng, double *bpd) {
    const dfs_unet_config *u = &m->cfg.unet;
    const size_t dim = (size_t)u->in_channels * u->image_size * u->image_size;
    const int ema = !raw && m->net->params->ema;
    if (ema) dfs_params_swap_ema(m->net->params);
    dfs_status s = dfs_nll_bpd(&m->sched, m->cfg.prediction, dfs_model_predict, m, labels, x, n, dim, rng, bpd);
    if (ema) dfs_params_swap_ema(m->net->params);
    return s;
}

dfs_status dfs_model_set_prompts(dfs_model *m, const char *const *texts, int n,
                                 dfs_unknown_fn on_unknown, void *user, int *truncated) {
    if (truncated) *truncated = 0;
    if (!m || !m->net->text || !m->tokenizer) {
        dfs_set_error("%s", !m || !m->net->text ? "the model has no text encoder"
                                                 : "the text model has no tokenizer");
        return DFS_ERR_ARG;
    }
    const int L = m->cfg.unet.text.max_len;
    if (n < 0 || (n > 0 && !texts) || (size_t)n > SIZE_MAX / sizeof(int) / (size_t)L) {
        dfs_set_error("dfs_model_set_prompts: bad prompt count %d", n);
        return DFS_ERR_ARG;
    }
    int *ids = malloc(((size_t)n * L + 1) * sizeof(int));
    uint8_t *mask = malloc((size_t)n * L + 1);
    if (!ids || !mask) {
        free(ids), free(mask);
        dfs_set_error("out of memory for %d prompts", n);
        return DFS_ERR_NOMEM;
    }
    dfs_status s = DFS_OK;
    for (int i = 0; i < n && s == DFS_OK; i++) {
        dfs_encode_info info;
        s = dfs_tokenizer_encode(m->tokenizer, texts[i], L, ids + (size_t)i * L, mask + (size_t)i * L, &info,
                                 on_unknown, user);
        if (s == DFS_OK && truncated) *truncated += info.truncated;
    }
    if (s == DFS_OK) s = dfs_unet_set_context(m->net, ids, mask, n);
    free(ids);
    free(mask);
    return s;
}
