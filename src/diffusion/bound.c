/* bound.c - the variational bound on the negative log-likelihood of data under a trained
 * diffusion model, in bits per dimension.
 *
 *   -log p(x_0) <= L_T + sum_{t>1} L_{t-1} + L_0                          (DDPM eq. 5)
 *   L_T     = KL(q(x_T|x_0) || N(0, I))                    prior, no model
 *   L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)),    x_t ~ q(x_t|x_0)
 *   L_0     = -log p(x_0|x_1)                              discretized Gaussian (DDPM eq. 13)
 *
 * In the 0-based index of dfs_schedule, index T-1 is the prior, index t >= 1 is a KL term and
 * index 0 is the decoder. The model's reverse step has mean mu~(x0_hat, x_t) (DDPM eq. 7 with
 * the model's predicted x_0, no clipping) and the fixed "small" variance beta_tilde_t; at index 0
 * beta_tilde is 0, so, as in improved-diffusion (Nichol & Dhariwal 2021, gaussian_diffusion.py,
 * posterior_log_variance_clipped), the decoder uses beta_tilde at index 1. Every one of the T
 * terms is evaluated (exact sum, no importance sampling over t), one model call per (image, t).
 *
 * With masks (dfs_nll_bpd_masked) every term is a sum over dimensions, and only the modelled
 * ones (present, not known) are summed: the bound of those given the known entries, which the
 * model sees noised like the rest. Bits per dimension then divide by each image's number of
 * modelled entries. Padded entries draw no noise and are 0 in x_t, so an image padded to any
 * width has the bound of the image cut down to its present entries.
 *
 * References
 *   DDPM    Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models", eq. 5, 7, 13
 *   IDDPM   Nichol, Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models", sec. 2,
 *           and their code (improved-diffusion: normal_kl, discretized_gaussian_log_likelihood,
 *           _vb_terms_bpd, _prior_bpd)
 */
#include "masks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_MIN_CHUNK 64 /* (image, t) pairs per model call when there are few images */

/* KL between two Gaussians (IDDPM code, normal_kl):
 * 0.5 (-1 + lv2 - lv1 + exp(lv1 - lv2) + (m1 - m2)^2 exp(-lv2)), with -1 + exp() as expm1 so
 * that equal Gaussians give exactly 0. */
double dfs_normal_kl(double mean1, double logvar1, double mean2, double logvar2) {
    double d = mean1 - mean2;
    return 0.5 * ((logvar2 - logvar1) + expm1(logvar1 - logvar2) + d * d * exp(-logvar2));
}

/* Standard normal mass on [a, b], a <= b, from the tail nearer to the interval so that far-out
 * bins keep their precision (erfc instead of differences of values near 1). */
static double normal_mass(double a, double b) {
    const double r = 0.70710678118654752440; /* 1/sqrt(2) */
    if (a >= 0) return 0.5 * (erfc(a * r) - erfc(b * r));
    if (b <= 0) return 0.5 * (erfc(-b * r) - erfc(-a * r));
    return 1.0 - 0.5 * (erfc(-a * r) + erfc(b * r));
}

/* DDPM eq. 13: the bin of x is [x - 1/255, x + 1/255], with -inf below -1 and +inf above 1
 * (edges detected at +-0.999 as in improved-diffusion). Differences from improved-diffusion: the
 * exact normal CDF (erfc, double) instead of a tanh approximation, and a floor of 1e-300 instead
 * of 1e-12 on the mass, so a decoder whose mean is far off still pays its full -log mass (a
 * 1e-12 floor caps it at 27.6 nats per dimension and the result is then no longer a bound). */
double dfs_discretized_gaussian_loglik(double x, double mean, double log_scale) {
    double inv = exp(-log_scale), c = x - mean;
    double lo = x < -0.999 ? -INFINITY : inv * (c - 1.0 / 255.0);
    double hi = x > 0.999 ? INFINITY : inv * (c + 1.0 / 255.0);
    double p = normal_mass(lo, hi);
    return log(p > 1e-300 ? p : 1e-300);
}

/* The dimension of the projection's subspace on one image's present entries: the trace of P
 * there, sum_j (P e_j)_j over the present j (dim projections of one unit vector each; work:
 * dim floats). For the zero centre of mass of a atoms of width w with c coordinates:
 * a w - c. */
static double continuous_dims(const dfs_masks *m, const uint8_t *present, size_t dim, float *work) {
    double tr = 0;
    for (size_t j = 0; j < dim; j++) {
        if (present && !present[j]) continue;
        memset(work, 0, dim * sizeof(float));
        work[j] = 1.0f;
        m->project(m->project_user, work, present, 1, dim);
        tr += work[j];
    }
    return floor(tr + 0.5); /* P is a projector: its trace is its rank, an integer */
}

dfs_status dfs_nll_bpd(const dfs_schedule *s, dfs_prediction pred, dfs_model_fn model, void *user,
                       const int *labels, const float *x0, int n, size_t dim, dfs_rng *rng,
                       double *bpd) {
    return dfs_nll_bpd_terms(s, pred, model, user, labels, x0, n, dim, rng, bpd, NULL);
}

dfs_status dfs_nll_bpd_terms(const dfs_schedule *s, dfs_prediction pred, dfs_model_fn model,
                             void *user, const int *labels, const float *x0, int n, size_t dim,
                             dfs_rng *rng, double *bpd, double *terms) {
    return dfs_nll_bpd_masked(s, pred, model, user, labels, x0, NULL, n, dim, rng, bpd, terms);
}

dfs_status dfs_nll_bpd_masked(const dfs_schedule *s, dfs_prediction pred, dfs_model_fn model,
                              void *user, const int *labels, const float *x0, const dfs_masks *m,
                              int n, size_t dim, dfs_rng *rng, double *bpd, double *terms) {
    if (!s || !s->beta || !model || !x0 || !rng || !bpd) {
        dfs_set_error("dfs_nll_bpd: schedule, model, x0, rng and bpd must not be NULL");
        return DFS_ERR_ARG;
    }
    if ((int)pred < 0 || pred >= DFS_PRED_COUNT) {
        dfs_set_error("dfs_nll_bpd: unknown prediction kind %d", (int)pred);
        return DFS_ERR_ARG;
    }
    if (s->T < 2) {
        dfs_set_error("dfs_nll_bpd: needs T >= 2 (the decoder variance is beta_tilde at step 1), "
                      "got T = %d", s->T);
        return DFS_ERR_ARG;
    }
    if (n < 1 || dim < 1 || dim > ((size_t)1 << 40)) {
        dfs_set_error("dfs_nll_bpd: need n >= 1 images of dim >= 1 values, got n = %d, dim = %zu",
                      n, dim);
        return DFS_ERR_ARG;
    }
    /* With a projection the data are continuous and live in the subspace: see continuous_dims */
    const int proj = m && m->project;
    if (proj && m->known_mask) {
        dfs_set_error("dfs_nll_bpd: the bound with a projection takes no known entries");
        return DFS_ERR_ARG;
    }
    const uint8_t *present = m ? m->present : NULL;
    for (size_t i = 0; !proj && i < (size_t)n * dim; i++)
        if ((!present || present[i]) && !(x0[i] >= -1.0f && x0[i] <= 1.0f)) {
            dfs_set_error("dfs_nll_bpd: x0[%zu] = %g is outside [-1, 1] (8-bit data as p/127.5 - 1)",
                          i, (double)x0[i]);
            return DFS_ERR_ARG;
        }
    const int T = s->T;
    const size_t total = (size_t)n * T; /* (image, t) pairs, ordered t-major */
    size_t chunk = n > EVAL_MIN_CHUNK ? (size_t)n : EVAL_MIN_CHUNK;
    if (chunk > total) chunk = total;
    if (chunk > SIZE_MAX / sizeof(float) / 4 / dim) {
        dfs_set_error("dfs_nll_bpd: %zu images of %zu values do not fit in memory", chunk, dim);
        return DFS_ERR_NOMEM;
    }
    /* xt, out, x0hat: (chunk, dim) each; ts, lab: (chunk); to_bpd, dims: (n); with a
     * projection px0 (n, dim): the data projected */
    float *buf = malloc(3 * chunk * dim * sizeof(float));
    int *ts = malloc(2 * chunk * sizeof(int));
    double *to_bpd = malloc(2 * (size_t)n * sizeof(double)), *dims = to_bpd ? to_bpd + n : NULL;
    float *px0 = proj ? malloc((size_t)n * dim * sizeof(float)) : NULL;
    if (!buf || !ts || !to_bpd || (proj && !px0)) {
        free(buf);
        free(ts);
        free(to_bpd);
        free(px0);
        dfs_set_error("dfs_nll_bpd: out of memory for %zu images of %zu values", chunk, dim);
        return DFS_ERR_NOMEM;
    }
    float *xt = buf, *out = buf + chunk * dim, *x0hat = buf + 2 * chunk * dim;
    int *lab = ts + chunk;
    /* nats to bits per modelled dimension, per image: the modelled entries, or with a
     * projection the dimension of the subspace on the image's present entries */
    if (proj) {
        memcpy(px0, x0, (size_t)n * dim * sizeof(float));
        m->project(m->project_user, px0, present, n, dim);
        x0 = px0;
    }
    for (int i = 0; i < n; i++) {
        const dfs_masks mi = {present ? present + (size_t)i * dim : NULL,
                              m && m->known_mask ? m->known_mask + (size_t)i * dim : NULL, NULL, NULL};
        const double cnt = proj ? continuous_dims(m, mi.present, dim, xt) : (double)dfs_masks_count(&mi, 1, dim);
        if (!(cnt > 0.5)) {
            free(buf);
            free(ts);
            free(to_bpd);
            free(px0);
            dfs_set_error("dfs_nll_bpd: image %d has no modelled entry (all padded or known, or a projection "
                          "onto nothing)", i);
            return DFS_ERR_ARG;
        }
        dims[i] = cnt;
        to_bpd[i] = 1.0 / (cnt * M_LN2);
    }
    if (terms) memset(terms, 0, (size_t)(T + 1) * sizeof(double));

    /* L_T: KL(N(sqrt(abar) x0, 1 - abar) || N(0, 1)) at the last index (IDDPM _prior_bpd). */
    const double sa_T = sqrt(s->abar[T - 1]), lv_T = log(1.0 - s->abar[T - 1]);
    for (int i = 0; i < n; i++) {
        double kl = 0;
        if (proj) { /* in the subspace: the variance part once per dimension of it */
            kl = 0.5 * dims[i] * (expm1(lv_T) - lv_T);
            for (size_t j = 0; j < dim; j++)
                if (masks_modelled(m, (size_t)i * dim + j)) kl += 0.5 * sa_T * sa_T * x0[(size_t)i * dim + j] * x0[(size_t)i * dim + j];
        } else
            for (size_t j = 0; j < dim; j++)
                if (masks_modelled(m, (size_t)i * dim + j))
                    kl += dfs_normal_kl(sa_T * x0[(size_t)i * dim + j], lv_T, 0.0, 0.0);
        bpd[i] = kl * to_bpd[i];
        if (terms) terms[T] += bpd[i] / n;
    }

    /* L_{t-1} for t >= 1 and L_0, chunk pairs per model call. */
    for (size_t k0 = 0; k0 < total; k0 += chunk) {
        size_t nb = total - k0 < chunk ? total - k0 : chunk;
        for (size_t b = 0; b < nb; b++) {
            size_t k = k0 + b;
            int i = (int)(k % (size_t)n), t = (int)(k / (size_t)n);
            ts[b] = t;
            lab[b] = labels ? labels[i] : 0;
            float *x = xt + b * dim;
            const dfs_masks mi = {present ? present + (size_t)i * dim : NULL, NULL, proj ? m->project : NULL,
                                  proj ? m->project_user : NULL};
            dfs_draw_noise(&mi, rng, x, 1, dim);
            dfs_q_sample(s, t, x0 + (size_t)i * dim, x, x, dim); /* DDPM eq. 4, in place */
            masks_pad(mi.present, x, dim);
        }
        dfs_status ms = model(user, xt, ts, labels ? lab : NULL, (int)nb, out);
        if (ms != DFS_OK) { /* the model failed (out of memory): its error stands */
            free(buf);
            free(ts);
            free(to_bpd);
            free(px0);
            return ms;
        }
        for (size_t b = 0; b < nb; b++) {
            size_t k = k0 + b;
            int i = (int)(k % (size_t)n), t = ts[b];
            const float *x = xt + b * dim, *xs = x0 + (size_t)i * dim;
            float *xh = x0hat + b * dim;
            dfs_pred_to_eps_x0(s, pred, t, x, out + b * dim, NULL, xh, dim);
            const size_t o = (size_t)i * dim; /* the image's first entry, for the masks */
            if (proj) m->project(m->project_user, xh, present ? present + o : NULL, 1, dim);
            double nats = 0;
            if (t == 0 && proj) {
                /* L_0 for continuous data: -log N(x0; mean, beta_tilde_1 I) on the subspace */
                const double v = s->beta_tilde[1];
                nats = 0.5 * dims[i] * log(2 * M_PI * v);
                for (size_t j = 0; j < dim; j++) {
                    if (!masks_modelled(m, o + j)) continue;
                    double d = xs[j] - (s->post_c0[0] * xh[j] + s->post_ct[0] * x[j]);
                    nats += d * d / (2 * v);
                }
            } else if (t == 0) {
                /* L_0: the reverse-step mean at index 0 is x0_hat (post_c0 = 1, post_ct = 0);
                 * variance beta_tilde at index 1 (IDDPM posterior_log_variance_clipped). */
                double log_scale = 0.5 * log(s->beta_tilde[1]);
                for (size_t j = 0; j < dim; j++) {
                    if (!masks_modelled(m, o + j)) continue;
                    double mean = s->post_c0[0] * xh[j] + s->post_ct[0] * x[j];
                    nats -= dfs_discretized_gaussian_loglik(xs[j], mean, log_scale);
                }
            } else {
                /* L_{t-1}: both means from DDPM eq. 7 (dfs_q_posterior's formula, in double),
                 * one with the true x_0, one with x0_hat; both variances beta_tilde_t. */
                double c0 = s->post_c0[t], ct = s->post_ct[t], lv = log(s->beta_tilde[t]);
                for (size_t j = 0; j < dim; j++) {
                    if (!masks_modelled(m, o + j)) continue;
                    double mq = c0 * xs[j] + ct * x[j], mp = c0 * xh[j] + ct * x[j];
                    nats += dfs_normal_kl(mq, lv, mp, lv);
                }
            }
            bpd[i] += nats * to_bpd[i];
            if (terms) terms[t] += nats * to_bpd[i] / n;
        }
    }
    free(buf);
    free(ts);
    free(to_bpd);
    free(px0);
    for (int i = 0; i < n; i++)
        if (!isfinite(bpd[i])) {
            dfs_set_error("dfs_nll_bpd: the bound for image %d is not finite", i);
            return DFS_ERR_NAN;
        }
    return DFS_OK;
}
