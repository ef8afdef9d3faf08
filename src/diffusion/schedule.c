/* schedule.c - the noise schedule, the forward process q, its posterior, and conversions among
 * the eps / x0 / v parameterisations.
 *
 * Index convention: arrays run over t = 0..T-1, where index t is step t+1 of Ho et al. 2020
 * (index 0 is the first noising step x_0 -> x_1). abar_prev[0] = 1 stands for "no noise".
 * All schedule arrays are double; per-element work is float data with double coefficients.
 *
 * References
 *   DDPM    Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models"
 *   IDDPM   Nichol, Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models"
 *   v-pred  Salimans, Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion Models"
 *   CSDI    Tashiro, Song, Song, Ermon 2021, "CSDI: Conditional Score-based Diffusion Models for
 *           Probabilistic Time Series Imputation"
 *   EDM     Hoogeboom, Satorras, Vignac, Welling 2022, "Equivariant Diffusion for Molecule
 *           Generation in 3D" (sec. 3 and appendix B, the polynomial schedule)
 */
#include "diffuse/diffusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DFS_T_MAX 100000

const char *const dfs_schedule_names[DFS_SCHEDULE_COUNT] = {"linear", "cosine", "quad", "poly2"};
const char *const dfs_prediction_names[DFS_PRED_COUNT] = {"eps", "x0", "v"};

static int name_lookup(const char *const *names, int count, const char *name) {
    if (!name) return -1;
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

int dfs_schedule_from_name(const char *name) {
    return name_lookup(dfs_schedule_names, DFS_SCHEDULE_COUNT, name);
}

int dfs_prediction_from_name(const char *name) {
    return name_lookup(dfs_prediction_names, DFS_PRED_COUNT, name);
}

/* IDDPM eq. 17: f(t) = cos^2(((t/T) + s) / (1 + s) * pi/2), s = 0.008. */
static double cosine_f(double t, double T) {
    const double s = 0.008;
    double c = cos((t / T + s) / (1.0 + s) * M_PI * 0.5);
    return c * c;
}

/* Fills s; all seven arrays live in one block owned by s (freed by dfs_schedule_free). On
 * error s is left zeroed, so dfs_schedule_free is always safe. */
dfs_status dfs_schedule_init(dfs_schedule *s, dfs_schedule_kind kind, int T) {
    if (!s) {
        dfs_set_error("dfs_schedule_init: schedule pointer is NULL");
        return DFS_ERR_ARG;
    }
    memset(s, 0, sizeof *s);
    if ((int)kind < 0 || kind >= DFS_SCHEDULE_COUNT) {
        dfs_set_error("dfs_schedule_init: unknown schedule kind %d", (int)kind);
        return DFS_ERR_ARG;
    }
    if (T < 1 || T > DFS_T_MAX) {
        dfs_set_error("dfs_schedule_init: T = %d out of range 1..%d", T, DFS_T_MAX);
        return DFS_ERR_ARG;
    }
    double *block = malloc(7 * (size_t)T * sizeof(double));
    if (!block) {
        dfs_set_error("dfs_schedule_init: out of memory for T = %d", T);
        return DFS_ERR_NOMEM;
    }
    s->kind = kind;
    s->T = T;
    s->beta = block;
    s->alpha = block + 1 * (size_t)T;
    s->abar = block + 2 * (size_t)T;
    s->abar_prev = block + 3 * (size_t)T;
    s->beta_tilde = block + 4 * (size_t)T;
    s->post_c0 = block + 5 * (size_t)T;
    s->post_ct = block + 6 * (size_t)T;

    if (kind == DFS_SCHEDULE_LINEAR) {
        /* DDPM sec. 4: b_1 = 1e-4 ... b_T = 0.02, linearly spaced (T = 1 gives b = 1e-4). */
        for (int t = 0; t < T; t++)
            s->beta[t] = T == 1 ? 1e-4 : 1e-4 + (0.02 - 1e-4) * (double)t / (double)(T - 1);
    } else if (kind == DFS_SCHEDULE_QUAD) {
        /* CSDI's "quad" schedule (their config: beta_start 1e-4, beta_end 0.5, T = 50): the
         * square roots of b are evenly spaced, b_t = (sqrt(1e-4) + (sqrt(0.5) - sqrt(1e-4))
         * t / (T - 1))^2, so b rises from 1e-4 to 0.5 (T = 1 gives b = 1e-4). */
        const double r0 = sqrt(1e-4), r1 = sqrt(0.5);
        for (int t = 0; t < T; t++) {
            double r = T == 1 ? r0 : r0 + (r1 - r0) * (double)t / (double)(T - 1);
            s->beta[t] = r * r;
        }
    } else if (kind == DFS_SCHEDULE_POLY2) {
        /* EDM's "polynomial_2" schedule with precision s = 1e-5, on EDM's T + 1 levels u = 0..T:
         * a2(u) = (1 - (u/T)^2)^2 (numpy's linspace(0, T+1, T+1) / (T+1) is u/T), each ratio
         * a2(u)/a2(u-1) clipped below at 0.001 (only the last one, 0, is), then
         * a2 := (1 - 2s) a2 + s. abar_t here is EDM's level u = t + 1, so every x_t has EDM's
         * noise level; EDM's level 0 (a2 = 1 - s, noise of variance s on the data) is the data
         * itself here. */
        const double prec = 1e-5;
        double raw = 1.0, prev = 1.0 - prec; /* a2 at EDM's level 0, after the precision step */
        for (int u = 1; u <= T; u++) {
            double f = (double)u / (double)T;
            double r = (1.0 - f * f) * (1.0 - f * f);
            double step = r / raw; /* the unclipped ratio a2(u)/a2(u-1) */
            if (step < 0.001) step = 0.001;
            raw *= step;
            double a2 = (1.0 - 2.0 * prec) * raw + prec;
            s->beta[u - 1] = 1.0 - (u == 1 ? a2 : a2 / prev);
            prev = a2;
        }
    } else {
        /* IDDPM eq. 17: abar(t) = f(t)/f(0); b_t = 1 - abar_t / abar_{t-1}, clipped at 0.999.
         * Index t here is step t+1 of the paper. */
        double f0 = cosine_f(0.0, T);
        for (int t = 0; t < T; t++) {
            double a1 = cosine_f(t + 1.0, T) / f0, a0 = cosine_f((double)t, T) / f0;
            double b = 1.0 - a1 / a0;
            s->beta[t] = b > 0.999 ? 0.999 : b;
        }
    }

    /* abar as the running product of the (possibly clipped) alphas, so all arrays agree. */
    double abar = 1.0;
    for (int t = 0; t < T; t++) {
        double b = s->beta[t];
        double a = 1.0 - b;
        double abar_prev = abar;
        abar *= a;
        s->alpha[t] = a;
        s->abar[t] = abar;
        s->abar_prev[t] = abar_prev;
        /* DDPM eq. 7: beta_tilde = (1 - abar_{t-1}) / (1 - abar_t) b_t,
         * mu_tilde = sqrt(abar_{t-1}) b_t / (1 - abar_t) x0
         *          + sqrt(a_t) (1 - abar_{t-1}) / (1 - abar_t) x_t */
        s->beta_tilde[t] = (1.0 - abar_prev) / (1.0 - abar) * b;
        s->post_c0[t] = sqrt(abar_prev) * b / (1.0 - abar);
        s->post_ct[t] = sqrt(a) * (1.0 - abar_prev) / (1.0 - abar);
    }
    return DFS_OK;
}

void dfs_schedule_free(dfs_schedule *s) {
    if (!s) return;
    free(s->beta); /* the block holding all seven arrays */
    memset(s, 0, sizeof *s);
}

/* The elementwise functions below read x[i] and y[i] before writing out[i], so an output may
 * alias an input. */

/* DDPM eq. 4: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. */
void dfs_q_sample(const dfs_schedule *s, int t, const float *x0, const float *eps, float *xt,
                  size_t n) {
    DFS_ASSERT(t >= 0 && t < s->T);
    double a = sqrt(s->abar[t]), b = sqrt(1.0 - s->abar[t]);
    for (size_t i = 0; i < n; i++) xt[i] = (float)(a * x0[i] + b * eps[i]);
}

/* DDPM eq. 2: x_t = sqrt(1 - b_t) x_{t-1} + sqrt(b_t) eps. */
void dfs_q_step(const dfs_schedule *s, int t, const float *xprev, const float *eps, float *xt,
                size_t n) {
    DFS_ASSERT(t >= 0 && t < s->T);
    double a = sqrt(s->alpha[t]), b = sqrt(s->beta[t]);
    for (size_t i = 0; i < n; i++) xt[i] = (float)(a * xprev[i] + b * eps[i]);
}

/* DDPM eq. 6-7: q(x_{t-1} | x_t, x0) = N(post_c0 x0 + post_ct x_t, beta_tilde_t).
 * mean or var may be NULL. */
void dfs_q_posterior(const dfs_schedule *s, int t, const float *x0, const float *xt,
                     float *mean, size_t n, double *var) {
    DFS_ASSERT(t >= 0 && t < s->T);
    if (mean) {
        double c0 = s->post_c0[t], ct = s->post_ct[t];
        for (size_t i = 0; i < n; i++) mean[i] = (float)(c0 * x0[i] + ct * xt[i]);
    }
    if (var) *var = s->beta_tilde[t];
}

/* From the model output `pred` at step t to eps and x0 (either may be NULL):
 *   eps:  x0 = (x_t - sqrt(1-abar) eps) / sqrt(abar)                  (DDPM eq. 4 solved)
 *   x0:   eps = (x_t - sqrt(abar) x0) / sqrt(1-abar)
 *   v:    x0 = sqrt(abar) x_t - sqrt(1-abar) v, eps = sqrt(1-abar) x_t + sqrt(abar) v
 *         (Salimans & Ho 2022 sec. 4, v = sqrt(abar) eps - sqrt(1-abar) x0) */
void dfs_pred_to_eps_x0(const dfs_schedule *s, dfs_prediction kind, int t, const float *xt,
                        const float *pred, float *eps, float *x0, size_t n) {
    DFS_ASSERT(t >= 0 && t < s->T);
    DFS_ASSERT((int)kind >= 0 && kind < DFS_PRED_COUNT);
    double sa = sqrt(s->abar[t]), sb = sqrt(1.0 - s->abar[t]);
    for (size_t i = 0; i < n; i++) {
        double x = xt[i], p = pred[i], e, z;
        switch (kind) {
        case DFS_PRED_EPS: e = p; z = (x - sb * p) / sa; break;
        case DFS_PRED_X0: z = p; e = (x - sa * p) / sb; break;
        default: z = sa * x - sb * p; e = sb * x + sa * p; break; /* DFS_PRED_V */
        }
        if (eps) eps[i] = (float)e;
        if (x0) x0[i] = (float)z;
    }
}

/* What a model of the given parameterisation is trained to output (DDPM eq. 14 for eps;
 * x0 itself; v = sqrt(abar) eps - sqrt(1-abar) x0, Salimans & Ho 2022). */
void dfs_pred_target(const dfs_schedule *s, dfs_prediction kind, int t, const float *x0,
                     const float *eps, float *target, size_t n) {
    DFS_ASSERT(t >= 0 && t < s->T);
    DFS_ASSERT((int)kind >= 0 && kind < DFS_PRED_COUNT);
    double sa = sqrt(s->abar[t]), sb = sqrt(1.0 - s->abar[t]);
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case DFS_PRED_EPS: target[i] = eps[i]; break;
        case DFS_PRED_X0: target[i] = x0[i]; break;
        default: target[i] = (float)(sa * eps[i] - sb * x0[i]); break;
        }
    }
}
