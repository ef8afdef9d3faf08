/* train.c - one training step of the simple loss (Ho et al. 2020, Algorithm 1):
 * x0 ~ data, t ~ U{0..T-1}, eps ~ N(0, I), loss = || target - net(sqrt(abar_t) x0 +
 * sqrt(1 - abar_t) eps, t) ||^2, with labels dropped for classifier-free guidance (Ho &
 * Salimans 2022) and AdamW + EMA after the backward pass.
 *
 * The diffusion side of the step (the draws of t and eps, x_t, the target, the masked loss and
 * its gradient) is the core's (src/diffusion/loss.c), which works on any (n, dim) tensor; this
 * file adds the images, the labels, the U-Net and the optimiser. */
#include "diffuse/kernels.h"
#include "diffuse/model.h"
#include "../engine/tape.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

struct dfs_trainer {
    dfs_model *m;
    dfs_train_config c;
    const dfs_dataset *d;
    dfs_train_state *st;
    dfs_step *step;   /* the graphs the network side runs in (src/model/step.c) */
    size_t dim;
    int *perm;        /* (n) data order of the current epoch */
    long perm_epoch;
    int cond;         /* the U-Net takes labels (classes or caption rows) */
    float *x0, *eps, *xt, *target; /* (B, dim) */
    int *t, *labels;  /* (B) */
};

void dfs_train_config_default(dfs_train_config *c) {
    c->batch = 64;
    dfs_adamw_config_default(&c->opt);
    c->cond_drop = 0.1f;
}

void dfs_trainer_free(dfs_trainer *t) {
    if (!t) return;
    dfs_step_free(t->step);
    free(t->perm);
    free(t->x0);
    free(t->eps);
    free(t->xt);
    free(t->target);
    free(t->t);
    free(t->labels);
    free(t);
}

dfs_status dfs_trainer_new(dfs_trainer **out, dfs_model *m, const dfs_train_config *c,
                           const dfs_dataset *d, dfs_train_state *st) {
    *out = NULL;
    const dfs_unet_config *u = &m->cfg.unet;
    if (c->batch < 1 || c->batch > 4096) {
        dfs_set_error("batch size must be 1..4096, not %d", c->batch);
        return DFS_ERR_ARG;
    }
    if (!(c->cond_drop >= 0.0f && c->cond_drop <= 1.0f)) {
        dfs_set_error("label drop probability must be in [0, 1]");
        return DFS_ERR_ARG;
    }
    if (!(c->opt.lr > 0.0f) || !(c->opt.lr < 1.0f)) {
        dfs_set_error("learning rate must be in (0, 1), not %g", c->opt.lr);
        return DFS_ERR_ARG;
    }
    if (d->n < 1) {
        dfs_set_error("the data set is empty");
        return DFS_ERR_ARG;
    }
    if (d->c != u->in_channels || d->h != u->image_size || d->w != u->image_size) {
        dfs_set_error("data are %dx%dx%d images but the model takes %dx%dx%d", d->c, d->h, d->w,
                      u->in_channels, u->image_size, u->image_size);
        return DFS_ERR_SHAPE;
    }
    if (u->num_classes > 0 && d->labels && d->num_classes > u->num_classes) {
        dfs_set_error("data have %d classes but the model has %d", d->num_classes, u->num_classes);
        return DFS_ERR_SHAPE;
    }
    if (u->text.dim > 0 && dfs_unet_context_rows(m->net) != d->n) {
        dfs_set_error("the text model's caption table has %d rows but the data have %d images (one caption "
                      "per image, dfs_unet_set_context)",
                      dfs_unet_context_rows(m->net), d->n);
        return DFS_ERR_SHAPE;
    }
    dfs_trainer *t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    t->m = m;
    t->c = *c;
    t->d = d;
    t->st = st;
    t->dim = (size_t)u->in_channels * u->image_size * u->image_size;
    t->perm_epoch = -1;
    size_t bd = (size_t)c->batch * t->dim;
    t->cond = u->text.dim > 0 || u->num_classes > 0;
    t->step = dfs_step_new();
    t->perm = malloc((size_t)d->n * sizeof(int));
    t->x0 = malloc(bd * sizeof(float));
    t->eps = malloc(bd * sizeof(float));
    t->xt = malloc(bd * sizeof(float));
    t->target = malloc(bd * sizeof(float));
    t->t = malloc((size_t)c->batch * sizeof(int));
    t->labels = malloc((size_t)c->batch * sizeof(int));
    if (!t->step || !t->perm || !t->x0 || !t->eps || !t->xt || !t->target || !t->t || !t->labels)
        goto nomem;
    if (u->num_classes > 0 && !d->labels)
        dfs_log(DFS_LOG_WARN, "the data have no labels: training the class model on 'no class' only");
    *out = t;
    return DFS_OK;
nomem:
    dfs_trainer_free(t);
    dfs_set_error("out of memory for the trainer");
    return DFS_ERR_NOMEM;
}

/* The data order of an epoch is a Fisher-Yates shuffle seeded by (run seed, epoch), so that the
 * position in the data is a function of images_seen alone and resuming needs no extra state. */
static int next_index(dfs_trainer *t, long seen) {
    long n = t->d->n, epoch = seen / n;
    if (epoch != t->perm_epoch) {
        dfs_epoch_order(t->perm, (int)n, t->st->seed, epoch);
        t->perm_epoch = epoch;
    }
    return t->perm[seen % n];
}

/* The U-Net as a dfs_denoiser: rows [lo, lo + nb) of the batch's x_t, steps and labels. */
static dfs_tensor *unet_rows(void *user, dfs_graph *g, int lo, int nb) {
    dfs_trainer *t = user;
    const dfs_unet_config *u = &t->m->cfg.unet;
    const int shape[4] = {nb, u->in_channels, u->image_size, u->image_size};
    dfs_tensor *x = dfs_tensor_wrap(g, t->xt + (size_t)lo * t->dim, 4, shape);
    return dfs_unet_forward(t->m->net, g, x, t->t + lo, t->cond ? t->labels + lo : NULL);
}

dfs_status dfs_trainer_step(dfs_trainer *t, float *loss_out) {
    dfs_model *m = t->m;
    const dfs_unet_config *u = &m->cfg.unet;
    const dfs_dataset *d = t->d;
    dfs_rng *rng = &t->st->rng;
    /* A text model's label is the image's row of the caption table; row `rows` is the empty
     * caption, which caption dropout puts in its place. */
    const int text = u->text.dim > 0;
    const int B = t->c.batch, null = text ? dfs_unet_context_rows(m->net) : u->num_classes;
    const int cond = text || null > 0;
    const size_t dim = t->dim;

    for (int i = 0; i < B; i++) {
        int idx = next_index(t, t->st->images_seen + i);
        const uint8_t *px = d->pixels + (size_t)idx * dim;
        for (size_t k = 0; k < dim; k++) t->x0[i * dim + k] = px[k] / 127.5f - 1.0f;
        int lab = text ? idx : (d->labels && null > 0) ? d->labels[idx] : null;
        if (cond && dfs_rng_uniform(rng) < t->c.cond_drop) lab = null;
        t->labels[i] = lab;
        t->t[i] = dfs_draw_t(&m->sched, rng);
    }
    /* the diffusion side (src/diffusion/loss.c): eps, x_t and the target; no masks for images */
    dfs_draw_noise(NULL, rng, t->eps, B, dim);
    dfs_train_inputs(&m->sched, m->cfg.prediction, NULL, t->t, t->x0, t->eps, B, dim, t->xt, t->target);

    /* the network side (src/model/step.c): forward, loss, backward, one thread or several */
    const dfs_denoiser den = {m->net->params, unet_rows, t};
    float L = NAN;
    dfs_status ss = dfs_step_run(t->step, &den, B, dim, t->target, NULL, rng, &L);
    if (ss != DFS_OK) return ss; /* out of memory for activations: nothing updated */
    if (loss_out) *loss_out = L;
    if (!isfinite(L)) {
        dfs_set_error("loss is %g at step %ld", L, t->st->step + 1);
        return DFS_ERR_NAN;
    }
    dfs_status s = dfs_adamw_step(m->net->params, &t->c.opt, t->st->step + 1, NULL);
    if (s != DFS_OK) return s;
    t->st->step++;
    t->st->images_seen += B;
    return DFS_OK;
}
