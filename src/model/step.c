/* step.c - the network side of one training step, for any denoiser: forward, the core's masked
 * loss (src/diffusion/loss.c) and backward, into the parameters' gradients, on one thread or
 * data-parallel over several (include/diffuse/model.h, dfs_denoiser). The U-Net trainer
 * (train.c) and the time-series trainer (src/series) both run their steps here; what they add
 * is the data, the draws and the optimiser. */
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

struct dfs_step {
    dfs_graph *g;     /* the one-thread step */
    size_t np;        /* parameters the workers' gradients were made for */
    struct worker {   /* data-parallel steps: one per thread */
        dfs_graph *g;
        float *grad;  /* (params n) its own parameter gradients; NULL for worker 0, which
                       * writes the parameters' own (one copy of the parameters fewer) */
        dfs_rng rng;  /* its dropout generator, seeded from the run's each step */
        float loss;   /* its share of the batch loss */
        dfs_tensor *out; /* its loss tensor (kept here, not in a local that a longjmp may clobber) */
        dfs_masks m;  /* the masks of its rows */
        const dfs_masks *mp; /* &m, or NULL for no masks */
        float share;  /* the share of the batch mean its mean carries */
        int failed;   /* out of memory in this step */
        char err[256]; /* its message then */
    } *w;
    int nw;
    float *xbuf;      /* (nx) what the processes exchange besides the gradient: worker counts, losses */
    size_t nx;
};

dfs_step *dfs_step_new(void) {
    dfs_step *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->g = dfs_graph_new();
    if (!s->g) {
        free(s);
        return NULL;
    }
    dfs_graph_set_recycle(s->g, 1); /* nothing reads activations after backward */
    return s;
}

void dfs_step_free(dfs_step *s) {
    if (!s) return;
    for (int i = 0; i < s->nw; i++) {
        dfs_graph_free(s->w[i].g);
        free(s->w[i].grad);
    }
    free(s->w);
    free(s->xbuf);
    dfs_graph_free(s->g);
    free(s);
}

/* The core's masked loss (dfs_masked_mse) as an op on the tape: out is pred's (n, dim) rows
 * against target, with masks m (NULL: none, then it is dfs_mse bit for bit); m must outlive
 * the backward pass. */
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

/* rows [lo, lo + nb) of masks m (n rows of dim), or NULL for no masks */
static const dfs_masks *rows_of(const dfs_masks *m, int lo, size_t dim, dfs_masks *out) {
    if (!m) return NULL;
    *out = *m;
    if (m->present) out->present = m->present + (size_t)lo * dim;
    if (m->known_mask) out->known_mask = m->known_mask + (size_t)lo * dim;
    return out;
}

/* pred of rows [lo, lo + nb) as (nb, dim), or a failed assertion */
static dfs_tensor *forward_rows(const dfs_denoiser *d, dfs_graph *g, int lo, int nb, size_t dim) {
    dfs_tensor *pred = d->forward(d->user, g, lo, nb);
    DFS_ASSERT(pred && pred->n == (size_t)nb * dim);
    return pred;
}

/* Forward, loss and (if the loss is finite) backward of the whole batch in one graph; the
 * ops spread their work over the threads themselves. The loss goes to *L. DFS_ERR_NOMEM (with
 * the error set) when the activations do not fit: the allocation jumps back here. */
static dfs_status serial_step(dfs_step *s, const dfs_denoiser *d, int B, size_t dim,
                              const float *target, const dfs_masks *m, dfs_rng *rng, float *L) {
    dfs_graph *g = s->g;
    dfs_graph_reset(g);
    jmp_buf jb;
    DFS_RETURN_ON_OOM(g, jb);
    dfs_graph_set_grad(g, 1);
    dfs_graph_set_training(g, 1, rng);
    dfs_tensor *pred = forward_rows(d, g, 0, B, dim);
    const int shape[2] = {B, (int)dim};
    dfs_tensor *tg = dfs_tensor_wrap(g, (float *)target, 2, shape);
    dfs_tensor *loss = diffusion_loss(g, dfs_reshape(g, pred, 2, shape), tg, m);
    *L = loss->data[0];
    if (isfinite(*L)) {
        dfs_params_zero_grad(d->params);
        dfs_backward(g, loss);
    }
    dfs_graph_set_oom_jump(g, NULL);
    return DFS_OK;
}

static dfs_status ensure_workers(dfs_step *s, int n, size_t np) {
    if (s->np != np) { /* another network: start the workers again */
        for (int i = 0; i < s->nw; i++) {
            dfs_graph_free(s->w[i].g);
            free(s->w[i].grad);
        }
        s->nw = 0;
        s->np = np;
    }
    if (s->nw >= n) return DFS_OK;
    struct worker *w = realloc(s->w, (size_t)n * sizeof *w);
    if (!w) return DFS_ERR_NOMEM;
    s->w = w;
    while (s->nw < n) {
        struct worker *k = &s->w[s->nw];
        memset(k, 0, sizeof *k);
        k->g = dfs_graph_new();
        k->grad = s->nw ? malloc(np * sizeof(float)) : NULL;
        if (!k->g || (s->nw && !k->grad)) {
            dfs_graph_free(k->g);
            free(k->grad);
            return DFS_ERR_NOMEM;
        }
        dfs_graph_set_recycle(k->g, 1);
        s->nw++;
    }
    return DFS_OK;
}

/* The process-wide reducer (dfs_set_reducer); .ranks == 1: this process alone. */
static dfs_reducer reducer = {.rank = 0, .ranks = 1};

dfs_status dfs_set_reducer(const dfs_reducer *r) {
    if (!r) {
        reducer = (dfs_reducer){.rank = 0, .ranks = 1};
        return DFS_OK;
    }
    if (r->ranks < 1 || r->rank < 0 || r->rank >= r->ranks || !r->sum) {
        dfs_set_error("dfs_set_reducer: rank %d of %d ranks, or no sum", r->rank, r->ranks);
        return DFS_ERR_ARG;
    }
    reducer = *r;
    return DFS_OK;
}

/* s->xbuf with room for n floats, zeroed; NULL when out of memory */
static float *exchange_buf(dfs_step *s, size_t n) {
    if (n > s->nx) {
        float *b = realloc(s->xbuf, n * sizeof(float));
        if (!b) return NULL;
        s->xbuf = b;
        s->nx = n;
    }
    memset(s->xbuf, 0, n * sizeof(float));
    return s->xbuf;
}

/* Forward and loss of worker k (global worker j of W) on rows [jB/W, (j+1)B/W); a worker
 * without rows has loss 0 and no gradient. Out of memory jumps back here: failed, loss NaN. */
static void worker_forward(dfs_step *s, int k, int j, int W, const dfs_denoiser *d, int B, size_t dim,
                           const float *target, const dfs_masks *m, double total) {
    struct worker *wk = &s->w[k];
    dfs_params *p = d->params;
    const int lo = (int)((long)j * B / W), hi = (int)((long)(j + 1) * B / W), nb = hi - lo;
    wk->mp = rows_of(m, lo, dim, &wk->m);
    wk->share = !m ? (float)nb / (float)B
                : total > 0 ? (float)((double)dfs_masks_count(wk->mp, nb, dim) / total) : 0.0f;
    dfs_graph *g = wk->g;
    dfs_graph_reset(g);
    dfs_graph_set_grad(g, 1);
    dfs_graph_set_training(g, 1, &wk->rng);
    if (k) { /* worker 0's go to the parameters' own, cleared in worker_backward */
        dfs_graph_redirect_grads(g, p->grad, p->n, wk->grad);
        memset(wk->grad, 0, p->n * sizeof(float));
    }
    jmp_buf jb;
    wk->out = NULL;
    wk->failed = 0;
    wk->loss = 0.0f;
    if (setjmp(jb) == 0) {
        dfs_graph_set_oom_jump(g, &jb);
        if (nb > 0) {
            const int shape[2] = {nb, (int)dim};
            dfs_tensor *pred = dfs_reshape(g, forward_rows(d, g, lo, nb, dim), 2, shape);
            dfs_tensor *tg = dfs_tensor_wrap(g, (float *)target + (size_t)lo * dim, 2, shape);
            wk->out = diffusion_loss(g, pred, tg, wk->mp);
            wk->loss = wk->out->data[0] * wk->share;
        }
    } else {
        wk->failed = 1;
        wk->loss = NAN;
        snprintf(wk->err, sizeof wk->err, "%s", dfs_last_error());
    }
    dfs_graph_set_oom_jump(g, NULL);
}

/* Backward of worker k when the batch loss is finite, seeded with its share. Worker 0 writes
 * the parameters' gradients p->grad, cleared here, so that a step whose loss is not finite
 * leaves them as they were, as serial_step does. */
static void worker_backward(dfs_step *s, int k, float L, dfs_params *p) {
    struct worker *wk = &s->w[k];
    dfs_graph *g = wk->g;
    jmp_buf jb;
    if (k == 0 && isfinite(L)) memset(p->grad, 0, p->n * sizeof(float));
    if (!wk->failed && wk->out && isfinite(L)) {
        if (setjmp(jb) == 0) {
            dfs_graph_set_oom_jump(g, &jb);
            dfs_backward_grad(g, wk->out, &wk->share);
        } else {
            wk->failed = 1;
            snprintf(wk->err, sizeof wk->err, "%s", dfs_last_error());
        }
    }
    dfs_graph_set_oom_jump(g, NULL);
    if (wk->failed) dfs_graph_reset(g);
}

/* Data-parallel step: worker k runs forward and backward of rows [jB/W, (j+1)B/W), j = off + k
 * of the W workers of all processes (W = n, off = 0 for one process), in a graph of its own,
 * every op serial inside it, with its own dropout generator and its own parameter gradients
 * (dfs_graph_redirect_grads); the gradients are then added. The threads meet twice per step
 * instead of at every op (hundreds of barriers), which also keeps the speed when another
 * process takes a core. Each worker's loss is its mean scaled by its share of the modelled
 * entries (of the rows, nb / B, when there are no masks), so the sum is the batch mean and the
 * summed gradient is the batch gradient. The dropout masks (and so the result, at float
 * rounding) depend on the worker count; a run is reproducible for a given count. A worker that
 * runs out of memory jumps back within its own call (never across the parallel loop), its loss
 * is NaN so that no process runs backward, and the step returns DFS_ERR_NOMEM with its
 * message; with several processes it still takes part in the sums (a gradient of NaN, which
 * makes AdamW refuse the step everywhere). R: the other processes, or NULL. */
static dfs_status parallel_step(dfs_step *s, int n, const dfs_denoiser *d, int B, size_t dim,
                                const float *target, const dfs_masks *m, dfs_rng *rng, float *Lout,
                                const dfs_reducer *R) {
    dfs_params *p = d->params;
    int W = n, off = 0;
    dfs_status st;
    if (R) { /* every process's worker count, in rank order: the layout of the workers */
        float *cnt = exchange_buf(s, (size_t)R->ranks);
        if (!cnt) goto nomem;
        cnt[R->rank] = (float)n;
        if ((st = R->sum(R->user, cnt, (size_t)R->ranks)) != DFS_OK) return st;
        W = 0;
        for (int r = 0; r < R->ranks; r++) {
            if (r == R->rank) off = W;
            W += (int)cnt[r];
        }
        if (!exchange_buf(s, (size_t)W)) goto nomem;
    }
    for (int j = 0; j < W; j++) { /* W seeds in worker order; this process keeps its own */
        uint64_t seed = dfs_rng_u64(rng);
        if (j >= off && j < off + n) dfs_rng_seed(&s->w[j - off].rng, seed);
    }
    (void)dfs_get_kernels(); /* read DFS_KERNELS before the threads do */
    const double total = m ? (double)dfs_masks_count(m, B, dim) : (double)B;
#pragma omp parallel for num_threads(n) schedule(static, 1)
    for (int k = 0; k < n; k++) worker_forward(s, k, off + k, W, d, B, dim, target, m, total);
    /* the batch loss: every worker's share in worker order, from all processes */
    float L = 0.0f;
    if (R) {
        float *lv = s->xbuf;
        memset(lv, 0, (size_t)W * sizeof(float));
        for (int k = 0; k < n; k++) lv[off + k] = s->w[k].loss;
        if ((st = R->sum(R->user, lv, (size_t)W)) != DFS_OK) return st;
        for (int j = 0; j < W; j++) L += lv[j];
    } else {
        for (int j = 0; j < n; j++) L += s->w[j].loss;
    }
#pragma omp parallel for num_threads(n) schedule(static, 1)
    for (int k = 0; k < n; k++) worker_backward(s, k, L, p);
    int oom = -1; /* the first worker that ran out of memory */
    for (int k = 0; k < n && oom < 0; k++)
        if (s->w[k].failed) oom = k;
    *Lout = L;
    /* a NaN loss (a worker out of memory in forward included) is every process's: no sum */
    if (!isfinite(L) || (oom >= 0 && !R)) goto done;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)p->n; i++) { /* worker 0's sums are p->grad already */
        float sum = p->grad[i];
        for (int j = 1; j < n; j++) sum += s->w[j].grad[i];
        p->grad[i] = oom >= 0 ? NAN : sum;
    }
    if (R && (st = R->sum(R->user, p->grad, p->n)) != DFS_OK) return st;
done:
    if (oom >= 0) {
        dfs_set_error("%s", s->w[oom].err);
        return DFS_ERR_NOMEM;
    }
    return DFS_OK;
nomem:
    dfs_set_error("out of memory for the exchange between processes");
    return DFS_ERR_NOMEM;
}

dfs_status dfs_step_run(dfs_step *s, const dfs_denoiser *d, int B, size_t dim, const float *target,
                        const dfs_masks *m, dfs_rng *rng, float *loss) {
    if (!s || !d || !d->forward || !d->params || !target || !rng || B < 1 || dim < 1) {
        dfs_set_error("dfs_step_run: NULL argument or empty batch");
        return DFS_ERR_ARG;
    }
    int nt = 1;
#ifdef _OPENMP
    nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
    const dfs_reducer *R = reducer.ranks > 1 ? &reducer : NULL;
    float L = NAN;
    dfs_status st;
    if (R) { /* several processes: always the workers, whose layout the processes share */
        if (ensure_workers(s, nt, d->params->n) != DFS_OK) {
            dfs_set_error("out of memory for the training step's workers");
            return DFS_ERR_NOMEM;
        }
        st = parallel_step(s, nt, d, B, dim, target, m, rng, &L, R);
    } else {
        if (nt > B) nt = B;
        if (nt > 1 && ensure_workers(s, nt, d->params->n) != DFS_OK) nt = 1;
        st = nt > 1 ? parallel_step(s, nt, d, B, dim, target, m, rng, &L, NULL)
                    : serial_step(s, d, B, dim, target, m, rng, &L);
    }
    if (loss) *loss = L;
    return st;
}
