/* loss.c - the diffusion side of a training step on any tensor (n, dim): the draws of t and
 * eps, the noised input x_t and the target, and the masked mean squared error with its
 * gradient. The network in between is the caller's (src/model/train.c for the U-Net).
 *
 *   x0 ~ data, t ~ U{0..T-1}, eps ~ N(0, I)                         (DDPM Algorithm 1)
 *   x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps                    (DDPM eq. 4)
 *   L   = 1/|M| sum_{j in M} ((P out)_j - target_j)^2              (DDPM eq. 14, masked)
 *
 * M holds the modelled entries: present (not padding) and not known. Known (conditioning)
 * entries stay out of the loss as CSDI's observed entries do (Tashiro et al. 2021, sec. 4.2
 * and Algorithm 1: the loss is taken on the imputation targets only). P is the projection
 * (identity without one); the prediction is projected as in sampling, so the loss sees what
 * the sampler uses.
 *
 * References
 *   DDPM  Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models"
 *   CSDI  Tashiro, Song, Song, Ermon 2021, "CSDI: Conditional Score-based Diffusion Models for
 *         Probabilistic Time Series Imputation" */
#include "masks.h"

#include <string.h>

/* Loops over this many values or more are split over the threads, as the ops' are
 * (src/ops/elem.c), so that without masks the sum is dfs_mse's, bit for bit. */
#define PAR_MIN 32768

int dfs_draw_t(const dfs_schedule *s, dfs_rng *rng) {
    DFS_ASSERT(s && s->T >= 1);
    return (int)dfs_rng_below(rng, (uint32_t)s->T);
}

void dfs_train_inputs(const dfs_schedule *s, dfs_prediction pred, const dfs_masks *m, const int *t,
                      const float *x0, const float *eps, int n, size_t dim, float *xt, float *target) {
    for (int i = 0; i < n; i++) {
        const size_t o = (size_t)i * dim;
        dfs_q_sample(s, t[i], x0 + o, eps + o, xt + o, dim);
        dfs_pred_target(s, pred, t[i], x0 + o, eps + o, target + o, dim);
    }
    if (m && m->present) {
        masks_pad(m->present, xt, (size_t)n * dim);
        masks_pad(m->present, target, (size_t)n * dim);
    }
}

/* P out in work (padded entries 0), or out itself without a projection. */
static const float *projected(const dfs_masks *m, const float *out, int n, size_t dim, float *work) {
    if (!m || !m->project) return out;
    DFS_ASSERT(work != NULL);
    memcpy(work, out, (size_t)n * dim * sizeof(float));
    masks_pad(m->present, work, (size_t)n * dim);
    m->project(m->project_user, work, m->present, n, dim);
    masks_pad(m->present, work, (size_t)n * dim);
    return work;
}

float dfs_masked_mse(const dfs_masks *m, const float *out, const float *target, int n, size_t dim,
                     float *work) {
    const size_t count = dfs_masks_count(m, n, dim);
    if (count == 0) return 0.0f;
    const float *x = projected(m, out, n, dim, work), *y = target;
    const long N = (long)((size_t)n * dim);
    double s = 0;
    if (!m || (!m->present && !m->known_mask)) {
#pragma omp parallel for reduction(+ : s) if (N >= PAR_MIN)
        for (long i = 0; i < N; i++) {
            double d = (double)x[i] - y[i];
            s += d * d;
        }
    } else {
#pragma omp parallel for reduction(+ : s) if (N >= PAR_MIN)
        for (long i = 0; i < N; i++) {
            if (!masks_modelled(m, (size_t)i)) continue;
            double d = (double)x[i] - y[i];
            s += d * d;
        }
    }
    return (float)(s / (double)count);
}

void dfs_masked_mse_backward(float *dout, const dfs_masks *m, const float *out, const float *target,
                             int n, size_t dim, float dloss, float *work) {
    const size_t count = dfs_masks_count(m, n, dim);
    const long N = (long)((size_t)n * dim);
    if (count == 0) {
        memset(dout, 0, (size_t)N * sizeof(float));
        return;
    }
    const float *x = projected(m, out, n, dim, work), *y = target;
    const float c = 2.0f * dloss / (float)count; /* d/dout of (1/|M|) sum d^2, as dfs_mse */
#pragma omp parallel for if (N >= PAR_MIN)
    for (long i = 0; i < N; i++) dout[i] = masks_modelled(m, (size_t)i) ? c * (x[i] - y[i]) : 0.0f;
    if (m && m->project) { /* P^T = P: the chain rule through the projection of out */
        m->project(m->project_user, dout, m->present, n, dim);
        masks_pad(m->present, dout, (size_t)N);
    }
}
