/* params.c - all parameters in one block, AdamW with warm-up and clipping, EMA. */
#include "diffuse/nn.h"
#include "../engine/tape.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dfs_params *dfs_params_new(void) { return calloc(1, sizeof(dfs_params)); }

void dfs_params_free(dfs_params *p) {
    if (!p) return;
    for (int i = 0; i < p->count; i++) {
        free((char *)p->t[i]->name);
        free(p->t[i]);
    }
    free(p->t);
    free(p->data);
    free(p->grad);
    free(p->m);
    free(p->v);
    free(p->ema);
    free(p);
}

dfs_tensor *dfs_params_add(dfs_params *p, const char *name, int ndim, const int *shape) {
    DFS_ASSERT(p->data == NULL); /* declare everything before finalize */
    DFS_ASSERT(ndim >= 1 && ndim <= DFS_MAXDIM);
    if (p->count == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        dfs_tensor **t = realloc(p->t, (size_t)cap * sizeof *t);
        DFS_ASSERT(t != NULL);
        p->t = t;
        p->cap = cap;
    }
    dfs_tensor *t = calloc(1, sizeof *t);
    DFS_ASSERT(t != NULL);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->n = dfs_shape_numel(ndim, shape);
    t->requires_grad = 1;
    t->name = strdup(name);
    DFS_ASSERT(t->name != NULL);
    p->t[p->count++] = t;
    p->n += t->n;
    return t;
}

dfs_status dfs_params_finalize(dfs_params *p) {
    size_t bytes = p->n * sizeof(float);
    if (bytes / sizeof(float) != p->n) {
        dfs_set_error("parameter count %zu overflows", p->n);
        return DFS_ERR_NOMEM;
    }
    p->data = calloc(p->n, sizeof(float));
    p->grad = calloc(p->n, sizeof(float));
    p->m = calloc(p->n, sizeof(float));
    p->v = calloc(p->n, sizeof(float));
    p->ema = calloc(p->n, sizeof(float));
    if (!p->data || !p->grad || !p->m || !p->v || !p->ema) {
        dfs_set_error("out of memory for %zu parameters", p->n);
        return DFS_ERR_NOMEM;
    }
    size_t off = 0;
    for (int i = 0; i < p->count; i++) {
        p->t[i]->data = p->data + off;
        p->t[i]->grad = p->grad + off;
        off += p->t[i]->n;
    }
    return DFS_OK;
}

dfs_tensor *dfs_params_find(const dfs_params *p, const char *name) {
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->t[i]->name, name) == 0) return p->t[i];
    return NULL;
}

void dfs_params_zero_grad(dfs_params *p) { memset(p->grad, 0, p->n * sizeof(float)); }

void dfs_params_ema_init(dfs_params *p) { memcpy(p->ema, p->data, p->n * sizeof(float)); }

void dfs_adamw_config_default(dfs_adamw_config *c) {
    c->lr = 2e-4f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = 0.0f;
    c->warmup = 500;
    c->clip = 1.0f;
    c->ema_decay = 0.9999f;
}

dfs_status dfs_adamw_step(dfs_params *p, const dfs_adamw_config *c, long step, float *gnorm) {
    DFS_ASSERT(step >= 1);
    const size_t n = p->n;
    float *restrict w = p->data, *restrict g = p->grad, *restrict m = p->m, *restrict v = p->v;

    double ss = 0.0;
#pragma omp parallel for reduction(+ : ss) schedule(static)
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    float norm = (float)sqrt(ss);
    if (gnorm) *gnorm = norm;
    if (!isfinite(norm)) {
        dfs_set_error("gradient norm is not finite at step %ld", step);
        return DFS_ERR_NAN;
    }
    /* Global-norm clipping, as torch.nn.utils.clip_grad_norm_ (Pascanu et al. 2013). */
    float gscale = 1.0f;
    if (c->clip > 0.0f && norm > c->clip) gscale = c->clip / (norm + 1e-6f);

    /* Linear warm-up of the learning rate (Goyal et al. 2017). */
    float lr = c->lr;
    if (c->warmup > 0 && step < c->warmup) lr = c->lr * (float)step / (float)c->warmup;

    /* AdamW (Loshchilov & Hutter 2019, Algorithm 2), in PyTorch's operation order:
     * w *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). */
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float decay = 1.0f - lr * c->weight_decay;
    const float bc1 = 1.0f - powf(b1, (float)step);
    const float bc2s = sqrtf(1.0f - powf(b2, (float)step));
    const float step_size = lr / bc1;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gscale;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] = w[i] * decay - step_size * m[i] / (sqrtf(v[i]) / bc2s + eps);
    }

    /* EMA of the weights with warm-up (Tan & Le 2019; as in the DDPM reference code). A decay
     * of 0 keeps the weights themselves, so that a sampling checkpoint (which holds the EMA)
     * holds the last weights rather than the first. */
    if (c->ema_decay <= 0.0f) {
        memcpy(p->ema, w, n * sizeof(float));
    } else {
        float d = c->ema_decay;
        float warm = (1.0f + (float)step) / (10.0f + (float)step);
        if (warm < d) d = warm;
        float *restrict e = p->ema;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) e[i] = d * e[i] + (1.0f - d) * w[i];
    }
    return DFS_OK;
}
