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
    dfs_graph *g;
    size_t dim;
    int *perm;        /* (n) data order of the current epoch */
    long perm_epoch;
    float *x0, *eps, *xt, *target; /* (B, dim) */
    int *t, *labels;  /* (B) */
    struct worker {   /* data-parallel steps: one per thread */
        dfs_graph *g;
        float *grad;  /* (params n) its own parameter gradients */
        dfs_rng rng;  /* its dropout generator, seeded from the run's each step */
        float loss;   /* its share of the batch loss */
        dfs_tensor *out; /* its loss tensor (kept here, not in a local that a longjmp may clobber) */
        int failed;   /* out of memory in this step */
    } *w;
    int nw;
};

void dfs_train_config_default(dfs_train_config *c) {
    c->batch = 64;
    dfs_adamw_config_default(&c->opt);
    c->cond_drop = 0.1f;
}

void dfs_trainer_free(dfs_trainer *t) {
    if (!t) return;
    for (int i = 0; i < t->nw; i++) {
        dfs_graph_free(t->w[i].g);
        free(t->w[i].grad);
    }
    free(t->w);
    dfs_graph_free(t->g);
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
    t->g = dfs_graph_new();
    if (t->g) dfs_graph_set_recycle(t->g, 1); /* nothing reads activations after backward */
    t->perm = malloc((size_t)d->n * sizeof(int));
    t->x0 = malloc(bd * sizeof(float));
    t->eps = malloc(bd * sizeof(float));
    t->xt = malloc(bd * sizeof(float));
    t->target = malloc(bd * sizeof(float));
    t->t = malloc((size_t)c->batch * sizeof(int));
    t->labels = malloc((size_t)c->batch * sizeof(int));
    if (!t->g || !t->perm || !t->x0 || !t->eps || !t->xt || !t->target || !t->t || !t->labels)
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
        dfs_rng r;
        dfs_rng_seed(&r, t->st->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(epoch + 1)));
        for (int i = 0; i < n; i++) t->perm[i] = i;
        for (int i = (int)n - 1; i > 0; i--) {
            int j = (int)dfs_rng_below(&r, (uint32_t)i + 1);
            int tmp = t->perm[i];
            t->perm[i] = t->perm[j];
            t->perm[j] = tmp;
        }
        t->perm_epoch = epoch;
    }
    return t->perm[seen % n];
}

/* The core's masked loss (dfs_masked_mse) as an op on the tape: out is pred's (n, dim) rows
 * against target, with masks m (NULL: none, then it is dfs_mse bit for bit); m must outlive
 * the backward pass. Images have no masks, so the steps below pass NULL; with masks, the
 * data-parallel step would weight each worker's mean by its share of the modelled entries
 * (dfs_masks_count) instead of its share nb / B of the images. */
static void diffusion_loss_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *a = nd->in[0], *b = nd->in[1];
    const dfs_masks *m = nd->saved;
    const int n = nd->i[0];
    const size_t dim = a->n / (size_t)n;
    int fresh;
    float *da = dfs_grad_for_write(g, a, &fresh);
    /* the core writes the gradient: into da when it is fresh, else into scratch, then added */
    float *d = fresh ? da : dfs_graph_scratch(g, 0, a->n * sizeof(float));
    float *work = m && m->project ? dfs_graph_scratch(g, 1, a->n * sizeof(float)) : NULL;
    dfs_masked_mse_backward(d, m, a->data, b->data, n, dim, nd->out->grad[0], work);
    if (!fresh)
        for (size_t i = 0; i < a->n; i++) da[i] += d[i];
}

static dfs_tensor *diffusion_loss(dfs_graph *g, dfs_tensor *pred, dfs_tensor *target, const dfs_masks *m) {
    DFS_ASSERT(pred && target && pred->n == target->n && pred->n > 0 && pred->ndim >= 1);
    const int n = pred->shape[0];
    const size_t dim = pred->n / (size_t)n;
    dfs_tensor *out = dfs_tensor_new(g, 1, (int[]){1});
    float *work = m && m->project ? dfs_graph_scratch(g, 1, pred->n * sizeof(float)) : NULL;
    out->data[0] = dfs_masked_mse(m, pred->data, target->data, n, dim, work);
    /* only pred is an input of the recorded op; target rides along in in[1] for backward */
    dfs_node *nd = dfs_record(g, diffusion_loss_bw, out, 1, &pred);
    if (nd) {
        nd->in[1] = target;
        nd->i[0] = n;
        nd->saved = (void *)m;
    }
    return out;
}

/* Forward, loss and (if the loss is finite) backward of the whole batch in one graph; the
 * ops spread their work over the threads themselves. The loss goes to *L. DFS_ERR_NOMEM (with
 * the error set) when the activations do not fit: the allocation jumps back here. */
static dfs_status serial_step(dfs_trainer *t, float *L) {
    dfs_model *m = t->m;
    const dfs_unet_config *u = &m->cfg.unet;
    const int B = t->c.batch, cond = u->text.dim > 0 || u->num_classes > 0;
    dfs_graph *g = t->g;
    dfs_graph_reset(g);
    jmp_buf jb;
    DFS_RETURN_ON_OOM(g, jb);
    dfs_graph_set_grad(g, 1);
    dfs_graph_set_training(g, 1, &t->st->rng);
    const int shape[4] = {B, u->in_channels, u->image_size, u->image_size};
    dfs_tensor *x = dfs_tensor_wrap(g, t->xt, 4, shape);
    dfs_tensor *pred = dfs_unet_forward(m->net, g, x, t->t, cond ? t->labels : NULL);
    dfs_tensor *loss = diffusion_loss(g, pred, dfs_tensor_wrap(g, t->target, 4, shape), NULL);
    *L = loss->data[0];
    if (isfinite(*L)) {
        dfs_params_zero_grad(m->net->params);
        dfs_backward(g, loss);
    }
    dfs_graph_set_oom_jump(g, NULL);
    return DFS_OK;
}

static dfs_status ensure_workers(dfs_trainer *t, int n) {
    if (t->nw >= n) return DFS_OK;
    struct worker *w = realloc(t->w, (size_t)n * sizeof *w);
    if (!w) return DFS_ERR_NOMEM;
    t->w = w;
    const size_t np = t->m->net->params->n;
    while (t->nw < n) {
        struct worker *k = &t->w[t->nw];
        memset(k, 0, sizeof *k);
        k->g = dfs_graph_new();
        k->grad = malloc(np * sizeof(float));
        if (!k->g || !k->grad) {
            dfs_graph_free(k->g);
            free(k->grad);
            return DFS_ERR_NOMEM;
        }
        dfs_graph_set_recycle(k->g, 1);
        t->nw++;
    }
    return DFS_OK;
}

/* Data-parallel step: thread k runs forward and backward of images [kB/n, (k+1)B/n) in a graph
 * of its own, every op serial inside it, with its own dropout generator and its own parameter
 * gradients (dfs_graph_redirect_grads); the n gradients are then added. The threads meet
 * twice per step instead of at every op (hundreds of barriers), which also keeps the speed
 * when another process takes a core. Each worker's loss is its mean scaled by its share of the
 * batch, so the sum is the batch mean and the summed gradient is the batch gradient. The
 * dropout masks (and so the result, at float rounding) depend on the thread count; a run is
 * reproducible for a given count. The loss goes to *L. A worker that runs out of memory jumps
 * back within its own thread (never across the parallel region), goes on to meet the others
 * at the barrier, and the step returns DFS_ERR_NOMEM with its message. */
static dfs_status parallel_step(dfs_trainer *t, int n, float *Lout) {
    dfs_model *m = t->m;
    const dfs_unet_config *u = &m->cfg.unet;
    dfs_params *p = m->net->params;
    const int B = t->c.batch, cond = u->text.dim > 0 || u->num_classes > 0;
    const size_t dim = t->dim;
    for (int k = 0; k < n; k++) dfs_rng_seed(&t->w[k].rng, dfs_rng_u64(&t->st->rng));
    (void)dfs_get_kernels(); /* read DFS_KERNELS before the threads do */
    float L = 0.0f;
    int team = 1, oom = 0;
    char err[512] = "";
#pragma omp parallel num_threads(n)
    {
        int k = 0;
#ifdef _OPENMP
        k = omp_get_thread_num();
#pragma omp single
        team = omp_get_num_threads();
#endif
        struct worker *wk = &t->w[k];
        const int lo = (int)((long)k * B / team), hi = (int)((long)(k + 1) * B / team), nb = hi - lo;
        dfs_graph *g = wk->g;
        dfs_graph_reset(g);
        dfs_graph_set_grad(g, 1);
        dfs_graph_set_training(g, 1, &wk->rng);
        dfs_graph_redirect_grads(g, p->grad, p->n, wk->grad);
        memset(wk->grad, 0, p->n * sizeof(float));
        jmp_buf jb;
        wk->out = NULL;
        wk->failed = 0;
        wk->loss = 0.0f;
        if (setjmp(jb) == 0) {
            dfs_graph_set_oom_jump(g, &jb);
            if (nb > 0) {
                const int shape[4] = {nb, u->in_channels, u->image_size, u->image_size};
                dfs_tensor *x = dfs_tensor_wrap(g, t->xt + (size_t)lo * dim, 4, shape);
                dfs_tensor *pred = dfs_unet_forward(m->net, g, x, t->t + lo, cond ? t->labels + lo : NULL);
                wk->out = diffusion_loss(g, pred, dfs_tensor_wrap(g, t->target + (size_t)lo * dim, 4, shape), NULL);
                wk->loss = wk->out->data[0] * (float)nb / (float)B;
            }
        } else {
            wk->failed = 1;
            wk->loss = NAN;
        }
#pragma omp barrier
#pragma omp single
        for (int j = 0; j < team; j++) L += t->w[j].loss;
        /* the implicit barrier of single: L is complete */
        if (!wk->failed && wk->out && isfinite(L)) {
            const float share = (float)nb / (float)B;
            if (setjmp(jb) == 0) dfs_backward_grad(g, wk->out, &share);
            else wk->failed = 1;
        }
        dfs_graph_set_oom_jump(g, NULL);
        if (wk->failed) {
            dfs_graph_reset(g);
#pragma omp critical(dfs_train_error)
            {
                oom = 1;
                snprintf(err, sizeof err, "%s", dfs_last_error());
            }
        }
    }
    if (oom) {
        dfs_set_error("%s", err);
        return DFS_ERR_NOMEM;
    }
    *Lout = L;
    if (!isfinite(L)) return DFS_OK;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)p->n; i++) {
        float s = 0.0f;
        for (int j = 0; j < team; j++) s += t->w[j].grad[i];
        p->grad[i] = s;
    }
    return DFS_OK;
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

    int nt = 1;
#ifdef _OPENMP
    nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
    if (nt > B) nt = B;
    if (nt > 1 && ensure_workers(t, nt) != DFS_OK) nt = 1;
    float L = NAN;
    dfs_status ss = nt > 1 ? parallel_step(t, nt, &L) : serial_step(t, &L);
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
