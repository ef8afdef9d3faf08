/* samplers.c - ancestral DDPM and DDIM sampling, with respacing and classifier-free guidance.
 *
 * A sampler only needs three things kept apart (as in stable-diffusion.cpp's denoiser): the
 * schedule (abar_t), the model's parameterisation (converted to eps and x0 by
 * dfs_pred_to_eps_x0), and the update rule. Both update rules are written in terms of x0 and
 * eps at the visited step t and abar at the next visited step, so respacing (steps < T) is the
 * same code as the full chain.
 *
 * References
 *   DDPM   Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models"
 *   IDDPM  Nichol, Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models", sec. 4
 *   DDIM   Song, Meng, Ermon 2021, "Denoising Diffusion Implicit Models"
 *   CFG    Ho, Salimans 2022, "Classifier-Free Diffusion Guidance"
 *   DPM++  Lu, Zhou, Bao, Chen, Li, Zhu 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
 *          Diffusion Probabilistic Models", Algorithm 2 (multistep 2M, data prediction)
 *   EDM    Karras, Aittala, Aila, Laine 2022, "Elucidating the Design Space of Diffusion-Based
 *          Generative Models", Algorithm 1 (Heun, deterministic)
 *   Imagen Saharia et al. 2022, "Photorealistic Text-to-Image Diffusion Models with Deep
 *          Language Understanding", sec. 2.3 (dynamic thresholding)
 *
 * Random stream (fixed, so that samples are reproducible from a seed): x_T takes n*dim normals
 * first; then every step that adds noise takes n*dim normals, in element order. Steps that
 * add no noise (the last step, DDIM with eta = 0, dpm++2m, heun) take none. With a padding
 * mask every draw takes one normal per present entry instead (dfs_draw_noise).
 *
 * Padding and projection (docs/DIFFUSION.md, "Masks and projections") touch four places
 * only: every draw goes through dfs_draw_noise (padded, projected); the model's eps and x0
 * are padded and projected after guidance and clipping (eval_model); the dynamic threshold
 * counts present entries only; and x is set to 0 on padded entries after every step, so that
 * padded entries hold exactly 0 whatever a step computes there.
 *
 * Network evaluations: ddpm, ddim and dpm++2m evaluate once per visited timestep (`steps`);
 * heun twice per step except the last (2 steps - 1).
 */
#include "masks.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *const dfs_sampler_names[DFS_SAMPLER_COUNT] = {"ddpm", "ddim", "dpm++2m", "heun"};

int dfs_sampler_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < DFS_SAMPLER_COUNT; i++)
        if (strcmp(dfs_sampler_names[i], name) == 0) return i;
    return -1;
}

void dfs_sampler_config_default(dfs_sampler_config *c) {
    memset(c, 0, sizeof *c);
    c->kind = DFS_SAMPLER_DDPM;
    c->steps = 1000;
    c->eta = 0.0f;
    c->var_beta_tilde = 1;
    c->noise_scale = 1.0f;
    c->guidance = 1.0f;
    c->clip_x0 = 1;
    c->prediction = DFS_PRED_EPS;
    c->null_label = 0; /* the caller sets this to num_classes */
    c->strength = 1.0f;
}

/* Timestep spacing: `steps` integers evenly spaced over [0, T-1], both ends included, rounded
 * to nearest (halves up), descending:
 *     ts[i] = round((steps-1-i) * (T-1) / (steps-1)),  i = 0..steps-1.
 * steps == T gives T-1, T-2, ..., 0 (the full chain); steps == 1 gives the single step T-1
 * (one jump from pure noise to x0). Since (T-1)/(steps-1) >= 1 the values are distinct.
 * Computed in integers so that it is exact and platform independent. */
void dfs_sampler_timesteps(int T, int steps, int *ts) {
    DFS_ASSERT(T >= 1 && steps >= 1 && steps <= T);
    if (steps == 1) {
        ts[0] = T - 1;
        return;
    }
    long long den = steps - 1;
    for (int i = 0; i < steps; i++) {
        long long num = (long long)(steps - 1 - i) * (T - 1);
        ts[i] = (int)((2 * num + den) / (2 * den));
    }
}

/* Scratch memory of one dfs_sample call, allocated once up front. */
typedef struct {
    float *xin;   /* (2n, dim) model input when guided (x twice), else unused */
    float *out;   /* (nb, dim) model output */
    float *eps;   /* (n, dim) */
    float *x0;    /* (n, dim) */
    float *z;     /* (n, dim) fresh noise */
    int *tb;      /* (nb) timesteps */
    int *lb;      /* (nb) labels: n conditional then n null, when guided */
    float *prev;  /* (n, dim) dpm++2m: x0 of the previous step; heun: eps at the step start */
    float *xe;    /* (n, dim) heun: the Euler predictor x_{t'} */
    int *ts;      /* (steps) visited timesteps */
    float *thr;   /* (dim) dynamic thresholding: |x0| of one sample, reordered */
    float *kw;    /* (n, dim) known values and a projection: the known values, moved with x */
    float *px;    /* (n, dim) known values and a projection: P x */
} scratch;

static void scratch_free(scratch *w) {
    free(w->xin);
    free(w->out);
    free(w->eps);
    free(w->x0);
    free(w->z);
    free(w->tb);
    free(w->lb);
    free(w->prev);
    free(w->xe);
    free(w->ts);
    free(w->thr);
    free(w->kw);
    free(w->px);
}

/* The k-th smallest of a[0..n-1] (0-based), by quickselect (Hoare 1961, "FIND") with a
 * median-of-three pivot; a is reordered so that a[k] holds it, a[0..k-1] <= a[k] <= a[k+1..]. */
static float select_kth(float *a, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        float x = a[lo], y = a[mid], z = a[hi];
        const float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = lo, j = hi;
        while (i <= j) { /* Hoare partition: [lo, j] <= pivot <= [i, hi] */
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k]; /* between the two parts: equal to the pivot */
    }
    return a[k];
}

/* dfs_dynamic_threshold over the present entries of one sample only (present: its dim
 * bytes, NULL: all): the percentile is of the m present values, and padded entries are left
 * as they are. No present entry: nothing to do, s = 1. */
static float threshold_present(float *x0, const uint8_t *present, size_t dim, float p, float *scratch) {
    size_t m = 0;
    for (size_t j = 0; j < dim; j++)
        if (!present || present[j]) scratch[m++] = fabsf(x0[j]);
    if (m == 0) return 1.0f;
    /* numpy.percentile's default ("linear"): rank r = p/100 (m - 1), v = a_(floor r) +
     * (r - floor r) (a_(floor r + 1) - a_(floor r)) over the sorted values a_(i). */
    const double r = (double)p / 100.0 * (double)(m - 1);
    size_t k = (size_t)r;
    if (k > m - 1) k = m - 1;
    const double frac = r - (double)k;
    double s = select_kth(scratch, m, k);
    if (frac > 0.0 && k + 1 < m) {
        float next = scratch[k + 1]; /* the smallest of the values above a_(k) */
        for (size_t j = k + 2; j < m; j++) next = scratch[j] < next ? scratch[j] : next;
        s += frac * ((double)next - s);
    }
    /* Imagen sec. 2.3: s = max(s, 1); x0 = clip(x0, -s, s) / s */
    const float sf = s > 1.0 ? (float)s : 1.0f;
    for (size_t j = 0; j < dim; j++) {
        if (present && !present[j]) continue;
        const float v = x0[j] < -sf ? -sf : x0[j] > sf ? sf : x0[j];
        x0[j] = v / sf;
    }
    return sf;
}

float dfs_dynamic_threshold(float *x0, size_t dim, float p, float *scratch) {
    DFS_ASSERT(dim >= 1 && p > 0.0f && p <= 100.0f);
    return threshold_present(x0, NULL, dim, p, scratch);
}

/* The model as the update rules see it: eps and x0 (n, dim) at (x, t), with classifier-free
 * guidance and x0 clipping applied. Scratch from w; labels / lb as set up by dfs_sample. */
static dfs_status eval_model(const dfs_schedule *s, const dfs_sampler_config *c, dfs_model_fn model,
                             void *model_user, const int *labels, int n, int guided, size_t N,
                             scratch *w, const float *x, int t, float *eps, float *x0) {
    dfs_status ms;
    const int nb = guided ? 2 * n : n;
    const double sa = sqrt(s->abar[t]), sb = sqrt(1.0 - s->abar[t]);
    const double gw = c->guidance;
    for (int k = 0; k < nb; k++) w->tb[k] = t;
    if (guided) {
        memcpy(w->xin, x, N * sizeof(float));
        memcpy(w->xin + N, x, N * sizeof(float));
        if ((ms = model(model_user, w->xin, w->tb, w->lb, nb, w->out)) != DFS_OK) return ms;
        /* Guidance acts on eps, so convert both halves first (in place). */
        dfs_pred_to_eps_x0(s, c->prediction, t, x, w->out, w->out, NULL, N);
        dfs_pred_to_eps_x0(s, c->prediction, t, x, w->out + N, w->out + N, NULL, N);
        /* CFG (Ho & Salimans 2022 eq. 6 with scale w = 1 + their w):
         * eps = eps_u + w (eps_c - eps_u); w = 1 is conditional, w = 0 unconditional. */
        const float *ec = w->out, *eu = w->out + N;
#pragma omp parallel for schedule(static) if (N >= 65536)
        for (size_t j = 0; j < N; j++) {
            double e = eu[j] + gw * ((double)ec[j] - eu[j]);
            eps[j] = (float)e;
            x0[j] = (float)((x[j] - sb * e) / sa); /* DDPM eq. 4 solved for x0 */
        }
    } else {
        if ((ms = model(model_user, x, w->tb, labels, n, w->out)) != DFS_OK) return ms;
        dfs_pred_to_eps_x0(s, c->prediction, t, x, w->out, eps, x0, N);
    }
    if (c->dynamic_threshold > 0.0f) {
        /* Imagen's dynamic thresholding of the (guided) x0 prediction, each sample on its own,
         * instead of the static clip; eps recomputed from it as below. */
        const size_t dim = N / (size_t)n;
        for (int i = 0; i < n; i++)
            threshold_present(x0 + (size_t)i * dim, c->present ? c->present + (size_t)i * dim : NULL, dim,
                              c->dynamic_threshold, w->thr);
#pragma omp parallel for schedule(static) if (N >= 65536)
        for (size_t j = 0; j < N; j++) eps[j] = (float)((x[j] - sa * x0[j]) / sb);
    } else if (c->clip_x0) {
        /* Clip x0 to the data range, then recompute eps from the clipped x0 so that the
         * update (which uses both) stays on the line through x_t. */
#pragma omp parallel for schedule(static) if (N >= 65536)
        for (size_t j = 0; j < N; j++) {
            float z0 = x0[j] < -1.0f ? -1.0f : x0[j] > 1.0f ? 1.0f : x0[j];
            x0[j] = z0;
            eps[j] = (float)((x[j] - sa * z0) / sb);
        }
    }
    /* Padded entries are not modelled: whatever the model wrote there is dropped. Then the
     * projection, after guidance and clipping (which need not keep the subspace), of both
     * eps and x0: x_t = sqrt(abar) x0 + sqrt(1 - abar) eps holds before, so for x_t in the
     * subspace it holds after, and the update rules that combine them stay in it. */
    masks_pad(c->present, eps, N);
    masks_pad(c->present, x0, N);
    if (c->project) {
        c->project(c->project_user, eps, c->present, n, N / (size_t)n);
        c->project(c->project_user, x0, c->present, n, N / (size_t)n);
        masks_pad(c->present, eps, N);
        masks_pad(c->present, x0, N);
    }
    return DFS_OK;
}

/* lambda_t = log(alpha_t / sigma_t), alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t)
 * (DPM-Solver++ sec. 2 / DPM-Solver eq. 3): half the log-SNR. */
static double lambda_of(double abar) { return 0.5 * (log(abar) - log1p(-abar)); }

/* What one dfs_sample call shares with its step functions. */
typedef struct {
    const dfs_schedule *s;
    const dfs_sampler_config *c;
    dfs_model_fn model;
    void *model_user;
    const int *labels;
    int n, guided, steps;
    size_t N, dim;
    dfs_rng *rng;
    const dfs_masks *mk; /* the padding mask and projection of every draw */
    scratch *w;
    const float *known; /* the known values: c->known, or w->kw when they move with x */
    int fresh; /* dpm++2m: no previous x0 to extrapolate with (the first step, or the first
                  after a RePaint jump) */
} sampler_run;

/* One step of a sampler, from visited step i (t = ts[i], x = x_t, with eps and x0 at (x_t, t)
 * in w->eps and w->x0) to step i + 1 (x_t', abar_t' = abar_p; x0 itself when i is the last,
 * abar_p = 1). Each sampler is one such function, chosen from step_table by its kind. */
typedef dfs_status (*step_fn)(sampler_run *r, int i, double abar_t, double abar_p, float *x);

/* x = c0 x0 + ct x + ce eps + sigma z: the update of DDPM and DDIM, which differ only in the
 * coefficients; z ~ N(0, I) is drawn only when sigma > 0. */
static dfs_status posterior_update(sampler_run *r, double c0, double ct, double ce, double sigma,
                                   float *x) {
    scratch *w = r->w;
    const size_t N = r->N;
    if (sigma > 0.0) dfs_draw_noise(r->mk, r->rng, w->z, r->n, r->dim);
    else memset(w->z, 0, N * sizeof(float));
#pragma omp parallel for schedule(static) if (N >= 65536)
    for (size_t j = 0; j < N; j++)
        x[j] = (float)(c0 * w->x0[j] + ct * x[j] + ce * w->eps[j] + sigma * w->z[j]);
    return DFS_OK;
}

static dfs_status step_ddpm(sampler_run *r, int i, double abar_t, double abar_p, float *x) {
    /* Respaced betas (IDDPM sec. 4): b' = 1 - abar_t / abar_t', equal to b_t when
     * steps == T. Posterior q(x_t' | x_t, x0) from DDPM eq. 7 with b', a' = 1 - b':
     * mean = sqrt(abar_t') b' / (1 - abar_t) x0
     *      + sqrt(a') (1 - abar_t') / (1 - abar_t) x_t,
     * variance beta_tilde' = (1 - abar_t') / (1 - abar_t) b', or b' (DDPM sec. 3.2). */
    const int last = i == r->steps - 1;
    double a1 = abar_t / abar_p, b1 = 1.0 - a1;
    double c0 = sqrt(abar_p) * b1 / (1.0 - abar_t);
    double ct = sqrt(a1) * (1.0 - abar_p) / (1.0 - abar_t);
    double var = r->c->var_beta_tilde ? (1.0 - abar_p) / (1.0 - abar_t) * b1 : b1;
    return posterior_update(r, c0, ct, 0.0, last ? 0.0 : r->c->noise_scale * sqrt(var), x);
}

static dfs_status step_ddim(sampler_run *r, int i, double abar_t, double abar_p, float *x) {
    /* DDIM eq. 12: x_t' = sqrt(abar_t') x0 + sqrt(1 - abar_t' - sigma^2) eps + sigma z,
     * eq. 16: sigma = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t').
     * For eta > 1 the direction term is clamped at 0. */
    const int last = i == r->steps - 1;
    double sg = r->c->eta * sqrt((1.0 - abar_p) / (1.0 - abar_t) * (1.0 - abar_t / abar_p));
    double sigma = last ? 0.0 : sg;
    double d = 1.0 - abar_p - sigma * sigma;
    return posterior_update(r, sqrt(abar_p), 0.0, d > 0.0 ? sqrt(d) : 0.0, sigma, x);
}

static dfs_status step_dpmpp_2m(sampler_run *r, int i, double abar_t, double abar_p, float *x) {
    /* DPM-Solver++(2M), DPM++ Algorithm 2, in x_t-space with alpha = sqrt(abar),
     * sigma = sqrt(1 - abar), lambda = log(alpha / sigma), h = lambda_t' - lambda_t:
     *   x_t' = (sigma_t' / sigma_t) x_t - alpha_t' (e^{-h} - 1) D,
     * D = x0 on the first step (first order, DPM++ eq. 9 / Alg. 1, = DDIM eta 0) and
     * D = (1 + 1/(2r)) x0 - 1/(2r) x0_prev with r = h_prev / h otherwise (Alg. 2).
     * The end: diffusers' DPMSolverMultistepScheduler (final_sigmas_type "zero") takes
     * its final step, to sigma = 0, first order. Our grid visits t = 0 (abar_0 =
     * 1 - beta_0, lambda_0 ~ 4.6: a jump in lambda several times the previous h) and
     * then abar = 1, so both of these final steps are first order: the 2M
     * extrapolation with r = h_prev / h << 1 overshoots there (std of Gaussian data
     * 1.39 s instead of 0.79 s at 10 linear steps). The very last step has e^{-h} = 0
     * and gives x = x0, the same final step as DDIM. */
    scratch *w = r->w;
    const size_t N = r->N;
    if (i == r->steps - 1) {
        memcpy(x, w->x0, N * sizeof(float));
        return DFS_OK;
    }
    const double h = lambda_of(abar_p) - lambda_of(abar_t);
    const double cx = sqrt((1.0 - abar_p) / (1.0 - abar_t)); /* sigma_t'/sigma_t */
    const double cd = -sqrt(abar_p) * expm1(-h);             /* -alpha_t'(e^-h - 1) */
    double c1 = 1.0, c2 = 0.0; /* D = c1 x0 + c2 x0_prev */
    if (!r->fresh && w->ts[i + 1] != 0) {
        const double rr = (lambda_of(abar_t) - lambda_of(r->s->abar[w->ts[i - 1]])) / h;
        c1 = 1.0 + 0.5 / rr;
        c2 = -0.5 / rr;
    }
    const float *x0p = w->prev;
#pragma omp parallel for schedule(static) if (N >= 65536)
    for (size_t j = 0; j < N; j++)
        x[j] = (float)(cx * x[j] + cd * (c1 * w->x0[j] + c2 * x0p[j]));
    memcpy(w->prev, w->x0, N * sizeof(float));
    return DFS_OK;
}

static dfs_status step_heun(sampler_run *r, int i, double abar_t, double abar_p, float *x) {
    /* Heun on the probability-flow ODE (EDM eq. 1), EDM Algorithm 1 with sigma(t) = t,
     * s(t) = 1 (= Algorithm 2 with S_churn = 0), in the unscaled variables
     * x~ = x / sqrt(abar), sigma = sqrt((1 - abar) / abar) (EDM Table 1, VP: s(t) =
     * 1 / sqrt(1 + sigma^2) = sqrt(abar)). D(x~; sigma) = x0, so the slope
     * (x~ - D) / sigma (Alg. 1 line 4) is eps. With d = sigma_t' - sigma_t:
     *   x~_e  = x~ + d eps(x_t, t)                                    (Alg. 1 line 5)
     *   x~_t' = x~ + d (eps(x_t, t) + eps(x_e, t')) / 2               (lines 7-8)
     * with x_e = sqrt(abar_t') x~_e and the model evaluated at the visited timestep
     * t'. The last step, to sigma = 0, is the Euler step x~ - sigma eps = x0 (line 6
     * skips the correction there). */
    scratch *w = r->w;
    const size_t N = r->N;
    if (i == r->steps - 1) {
        memcpy(x, w->x0, N * sizeof(float));
        return DFS_OK;
    }
    const double sa = sqrt(abar_t), sp = sqrt(abar_p);
    const double d = sqrt((1.0 - abar_p) / abar_p) - sqrt((1.0 - abar_t) / abar_t);
#pragma omp parallel for schedule(static) if (N >= 65536)
    for (size_t j = 0; j < N; j++)
        w->xe[j] = (float)(sp * (x[j] / sa + d * w->eps[j]));
    memcpy(w->prev, w->eps, N * sizeof(float)); /* eps at (x_t, t) */
    dfs_status ms = eval_model(r->s, r->c, r->model, r->model_user, r->labels, r->n, r->guided, N,
                               w, w->xe, w->ts[i + 1], w->eps, w->x0);
    if (ms != DFS_OK) return ms;
#pragma omp parallel for schedule(static) if (N >= 65536)
    for (size_t j = 0; j < N; j++)
        x[j] = (float)(sp * (x[j] / sa + 0.5 * d * ((double)w->prev[j] + w->eps[j])));
    return DFS_OK;
}

static const step_fn step_table[DFS_SAMPLER_COUNT] = {step_ddpm, step_ddim, step_dpmpp_2m,
                                                      step_heun};

/* x = sqrt(abar) x0 + sqrt(1 - abar) z, z ~ N(0, I) (DDPM eq. 4) drawn by dfs_draw_noise, on
 * the entries where mask is set (all when mask is NULL). z may be x. */
static void q_sample(const sampler_run *r, float *z, const float *x0, const uint8_t *mask, double abar,
                     float *x) {
    const size_t N = r->N;
    dfs_draw_noise(r->mk, r->rng, z, r->n, r->dim);
    const double sa = sqrt(abar), sb = sqrt(1.0 - abar);
    for (size_t j = 0; j < N; j++)
        if (!mask || mask[j]) x[j] = (float)(sa * x0[j] + sb * z[j]);
}

/* Known entries after a step to abar_p (RePaint, Lugmayr et al. 2022, Algorithm 1 line 5 and
 * 7: x_known ~ q(x_t' | x0 = known), combined with the sampled unknown entries): a fresh draw
 * (dfs_draw_noise); at the end (abar_p = 1) the known values themselves, exactly. */
static void hold_known(sampler_run *r, double abar_p, int last, float *x) {
    const dfs_sampler_config *c = r->c;
    if (!c->known) return;
    if (last) {
        for (size_t j = 0; j < r->N; j++)
            if (c->known_mask[j]) x[j] = r->known[j];
        return;
    }
    q_sample(r, r->w->z, r->known, c->known_mask, abar_p, x);
}

/* With known values and a projection, x leaves the subspace when its known entries are
 * replaced (a fragment's atoms move the centre of mass). Project x back, and move the known
 * values by the same change (P x - x on their entries), so that x and the known values stay
 * in one frame: for the zero centre of mass, the whole molecule and the fragment are
 * translated together (as DiffSBDD re-centres the combined system). */
static void follow_projection(sampler_run *r, float *x) {
    const dfs_sampler_config *c = r->c;
    if (!c->known || !c->project) return;
    float *px = r->w->px, *kw = r->w->kw;
    memcpy(px, x, r->N * sizeof(float));
    c->project(c->project_user, px, c->present, r->n, r->dim);
    for (size_t j = 0; j < r->N; j++) {
        if (c->known_mask[j]) kw[j] += px[j] - x[j];
        x[j] = px[j];
    }
}

/* RePaint's resampling jump (Algorithm 1 line 9, with jumps of several steps as in its sec.
 * 4.2): from x_t2 back to the noisier x_t1, t1 < t2 in steps visited, by the forward process
 * q(x_t1 | x_t2) = N(sqrt(abar_t1 / abar_t2) x_t2, (1 - abar_t1 / abar_t2) I). */
static void jump_back(sampler_run *r, double abar_from, double abar_to, float *x) {
    const double a = abar_to / abar_from;
    const double ca = sqrt(a), cz = sqrt(1.0 - a);
    dfs_draw_noise(r->mk, r->rng, r->w->z, r->n, r->dim);
    for (size_t j = 0; j < r->N; j++) x[j] = (float)(ca * x[j] + cz * r->w->z[j]);
}

int dfs_sampler_start(const dfs_sampler_config *c) {
    if (!c->init) return 0;
    const int run = (int)floor((double)c->steps * c->strength + 1e-9);
    return c->steps - (run < 1 ? 1 : run > c->steps ? c->steps : run);
}

long dfs_sampler_evals(const dfs_sampler_config *c) {
    const int p0 = dfs_sampler_start(c);
    long down = c->steps - p0;
    if (c->resample > 1) {
        const int j = c->jump > 0 ? c->jump : 1;
        /* a jump from every position p with (steps - p) % j == 0, p - j >= p0, 0 < steps - p */
        for (int p = p0 + j; p < c->steps; p++)
            if ((c->steps - p) % j == 0) down += (long)(c->resample - 1) * j;
    }
    return c->kind == DFS_SAMPLER_HEUN ? 2 * down - 1 : down;
}

static dfs_status check_config(const dfs_schedule *s, const dfs_sampler_config *c) {
    if ((int)c->kind < 0 || c->kind >= DFS_SAMPLER_COUNT) {
        dfs_set_error("dfs_sample: unknown sampler kind %d", (int)c->kind);
        return DFS_ERR_ARG;
    }
    if ((int)c->prediction < 0 || c->prediction >= DFS_PRED_COUNT) {
        dfs_set_error("dfs_sample: unknown prediction kind %d", (int)c->prediction);
        return DFS_ERR_ARG;
    }
    if (c->steps < 1 || c->steps > s->T) {
        dfs_set_error("dfs_sample: steps = %d out of range 1..%d (T)", c->steps, s->T);
        return DFS_ERR_ARG;
    }
    if (!isfinite(c->eta) || c->eta < 0.0f) {
        dfs_set_error("dfs_sample: eta = %g must be finite and >= 0", (double)c->eta);
        return DFS_ERR_ARG;
    }
    if (!(c->noise_scale >= 0.0f && c->noise_scale <= 1.0f)) {
        dfs_set_error("dfs_sample: noise scale %g must be in [0, 1]", (double)c->noise_scale);
        return DFS_ERR_ARG;
    }
    if (c->noise_scale != 1.0f && c->kind != DFS_SAMPLER_DDPM) {
        dfs_set_error("dfs_sample: a noise scale (%g) acts on ddpm only, not %s", (double)c->noise_scale,
                      dfs_sampler_names[c->kind]);
        return DFS_ERR_ARG;
    }
    if (!(c->dynamic_threshold >= 0.0f && c->dynamic_threshold <= 100.0f)) {
        dfs_set_error("dfs_sample: dynamic threshold percentile %g must be in (0, 100], or 0 for off",
                      (double)c->dynamic_threshold);
        return DFS_ERR_ARG;
    }
    if (!isfinite(c->guidance)) {
        dfs_set_error("dfs_sample: guidance = %g is not finite", (double)c->guidance);
        return DFS_ERR_ARG;
    }
    if (!c->known != !c->known_mask) {
        dfs_set_error("dfs_sample: known values and known_mask go together (one is NULL)");
        return DFS_ERR_ARG;
    }
    if (c->resample < 0 || c->resample > 1000 || c->jump < 0 || c->jump > c->steps) {
        dfs_set_error("dfs_sample: resample = %d must be in 0..1000 and jump = %d in 0..steps (%d)",
                      c->resample, c->jump, c->steps);
        return DFS_ERR_ARG;
    }
    if (c->resample > 1 && !c->known) {
        dfs_set_error("dfs_sample: resampling (RePaint) needs known entries");
        return DFS_ERR_ARG;
    }
    if (c->init && !(c->strength > 0.0f && c->strength <= 1.0f)) {
        dfs_set_error("dfs_sample: strength = %g must be in (0, 1] with an initial image",
                      (double)c->strength);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

dfs_status dfs_sample(const dfs_schedule *s, const dfs_sampler_config *c, dfs_model_fn model,
                      void *model_user, const int *labels, int n, size_t dim, dfs_rng *rng,
                      float *x, dfs_sample_cb cb, void *cb_user) {
    if (!s || !s->abar || s->T < 1) {
        dfs_set_error("dfs_sample: schedule is NULL or not initialised");
        return DFS_ERR_ARG;
    }
    if (!c || !model || !rng || !x) {
        dfs_set_error("dfs_sample: %s is NULL",
                      !c ? "config" : !model ? "model" : !rng ? "rng" : "output x");
        return DFS_ERR_ARG;
    }
    dfs_status st = check_config(s, c);
    if (st) return st;
    if (n < 1 || dim < 1) {
        dfs_set_error("dfs_sample: need n >= 1 and dim >= 1 (got n = %d, dim = %zu)", n, dim);
        return DFS_ERR_ARG;
    }
    /* Classifier-free guidance needs labels to have a conditional pass; without labels the
     * single pass is unconditional and guidance has nothing to act on. */
    const int guided = c->guidance != 1.0f && labels != NULL;
    const int nb = guided ? 2 * n : n;
    if ((guided && n > INT32_MAX / 2) || dim > SIZE_MAX / sizeof(float) / (size_t)nb) {
        dfs_set_error("dfs_sample: n = %d times dim = %zu overflows", n, dim);
        return DFS_ERR_NOMEM;
    }
    const size_t N = (size_t)n * dim;
    const int steps = c->steps;

    scratch w = {0};
    w.out = malloc((size_t)nb * dim * sizeof(float));
    w.eps = malloc(N * sizeof(float));
    w.x0 = malloc(N * sizeof(float));
    w.z = malloc(N * sizeof(float));
    w.tb = malloc((size_t)nb * sizeof(int));
    w.ts = malloc((size_t)steps * sizeof(int));
    if (guided) {
        w.xin = malloc(2 * N * sizeof(float));
        w.lb = malloc((size_t)nb * sizeof(int));
    }
    const int multi = c->kind == DFS_SAMPLER_DPMPP_2M || c->kind == DFS_SAMPLER_HEUN;
    if (multi) w.prev = calloc(N, sizeof(float)); /* zeroed: read (times 0) on step 0 */
    if (c->kind == DFS_SAMPLER_HEUN) w.xe = malloc(N * sizeof(float));
    if (c->dynamic_threshold > 0.0f) w.thr = malloc(dim * sizeof(float));
    const int follow = c->known && c->project;
    if (follow && (w.kw = malloc(N * sizeof(float))) && (w.px = malloc(N * sizeof(float))))
        memcpy(w.kw, c->known, N * sizeof(float));
    if (!w.out || !w.eps || !w.x0 || !w.z || !w.tb || !w.ts || (guided && (!w.xin || !w.lb)) ||
        (multi && !w.prev) || (c->kind == DFS_SAMPLER_HEUN && !w.xe) ||
        (c->dynamic_threshold > 0.0f && !w.thr) || (follow && (!w.kw || !w.px))) {
        scratch_free(&w);
        dfs_set_error("dfs_sample: out of memory for %d x %zu samples", n, dim);
        return DFS_ERR_NOMEM;
    }
    dfs_sampler_timesteps(s->T, steps, w.ts);
    if (guided) {
        for (int k = 0; k < n; k++) {
            w.lb[k] = labels[k];
            w.lb[n + k] = c->null_label;
        }
    }
    const dfs_masks mk = {c->present, NULL, c->project, c->project_user};
    sampler_run r = {s, c, model, model_user, labels, n, guided, steps, N, dim, rng, &mk, &w,
                     follow ? w.kw : c->known, 1};

    /* The start, at position p0 of the visited steps: x_T ~ N(0, I), or for SDEdit (Meng et
     * al. 2022, sec. 3) the initial image noised to the step where the run begins,
     * x_t0 ~ q(x_t0 | x0 = init); the same n*dim normals either way. Known entries start
     * noised to t0 too. */
    const int p0 = dfs_sampler_start(c);
    if (c->init) q_sample(&r, x, c->init, NULL, s->abar[w.ts[p0]], x);
    else dfs_draw_noise(&mk, rng, x, n, dim);
    if (c->known) q_sample(&r, w.z, r.known, c->known_mask, s->abar[w.ts[p0]], x);
    masks_pad(c->present, x, N);
    follow_projection(&r, x);

    /* RePaint's schedule of jumps (sec. 4.2): after the step that leaves (steps - p) visited
     * steps to go, for p a multiple of `jump` away from the end, go back `jump` steps by the
     * forward process, resample - 1 times at each such position. */
    const int jump = c->resample > 1 ? (c->jump > 0 ? c->jump : 1) : 0;
    int *jumps_left = NULL;
    if (jump) {
        jumps_left = malloc((size_t)(steps + 1) * sizeof(int));
        if (!jumps_left) {
            scratch_free(&w);
            dfs_set_error("dfs_sample: out of memory");
            return DFS_ERR_NOMEM;
        }
        for (int p = 0; p <= steps; p++)
            jumps_left[p] = p - jump >= p0 && p < steps && (steps - p) % jump == 0 ? c->resample - 1 : 0;
    }

    for (int i = p0; i < steps;) {
        const int t = w.ts[i];
        const int last = i == steps - 1;
        const double abar_t = s->abar[t];
        const double abar_p = last ? 1.0 : s->abar[w.ts[i + 1]]; /* abar at the next step */

        /* ---- model: eps and x0 at (x_t, t), then the sampler's step to x_t' ---- */
        st = eval_model(s, c, model, model_user, labels, n, guided, N, &w, x, t, w.eps, w.x0);
        if (st == DFS_OK) st = step_table[c->kind](&r, i, abar_t, abar_p, x);
        if (st != DFS_OK) { /* the model failed (out of memory): its error stands */
            scratch_free(&w);
            free(jumps_left);
            return st;
        }
        r.fresh = 0;
        hold_known(&r, abar_p, last, x);
        masks_pad(c->present, x, N);
        if (!last) follow_projection(&r, x);
        if (cb) cb(cb_user, i, steps, t, x, n);
        i++;
        if (jump && jumps_left[i] > 0) {
            jumps_left[i]--;
            jump_back(&r, abar_p, s->abar[w.ts[i - jump]], x);
            masks_pad(c->present, x, N);
            i -= jump;
            r.fresh = 1; /* dpm++2m's previous x0 belongs to another branch */
        }
    }
    scratch_free(&w);
    free(jumps_left);
    size_t bad = 0; /* a diverged model: say so, rather than write black or gray pictures */
    for (size_t j = 0; j < N; j++) bad += !isfinite(x[j]);
    if (bad) {
        dfs_set_error("sampling gave %zu non-finite values of %zu: the model's predictions diverged", bad, N);
        return DFS_ERR_NAN;
    }
    return DFS_OK;
}
