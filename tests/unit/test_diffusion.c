/* test_diffusion.c - schedules, the forward process, posteriors, parameterisations and the
 * DDPM / DDIM / DPM-Solver++(2M) / Heun samplers.
 *
 * The sampler checks use data x0 ~ N(mu, s^2) per dimension, for which the optimal noise
 * predictor is known in closed form: x_t | x0 ~ N(sqrt(a) x0, 1-a) with a = abar_t gives
 *   E[eps | x_t] = sqrt(1-a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a),
 * so a sampler run with this "model" must reproduce N(mu, s^2) up to discretisation error. */
#include "check.h"
#include "diffuse.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Unit roundoffs, half the spacing of the numbers just above 1: 2^-53 in double, 2^-24 in float.
 * Every tolerance below is written in these, from the operations the checked code performs. */
#define U64 (DBL_EPSILON / 2)
#define U32 (FLT_EPSILON / 2)

/* ---- helpers ------------------------------------------------------------------------------ */

static void mean_std(const float *x, size_t n, double *mean, double *std) {
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    double m = s / (double)n;
    for (size_t i = 0; i < n; i++) s2 += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = sqrt(s2 / (double)(n - 1));
}

/* The optimal predictor for Gaussian data, in any parameterisation. With labels, class k has
 * mean cls_mu[k]; the null label (and NULL labels) use `mu`. Counts calls and items. */
typedef struct {
    const dfs_schedule *s;
    dfs_prediction kind;
    double mu, sd;
    const double *cls_mu; /* NULL: unconditional */
    int null_label;
    int calls, items, max_n, min_n;
    int labels_ok; /* guided calls: first half conditional labels, second half null */
    const int *expect_labels;
    int nexpect;
    int dim; /* floats per item */
} gauss_model;

/* A diverged model: NaN for every prediction (dim 1). */
static dfs_status nan_fn(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    (void)user, (void)x, (void)t, (void)labels;
    for (int i = 0; i < n; i++) out[i] = NAN;
    return DFS_OK;
}

/* A model that fails (as out of memory would) at call number *user, counting down. */
static dfs_status failing_fn(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    int *left = user;
    (void)x, (void)t, (void)labels;
    if (--*left == 0) {
        dfs_set_error("the model ran out of memory");
        return DFS_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) out[i] = 0.1f;
    return DFS_OK;
}

static dfs_status gauss_fn(void *user, const float *x, const int *t, const int *labels, int n,
                           float *out) {
    gauss_model *m = user;
    m->calls++;
    m->items += n;
    if (n > m->max_n) m->max_n = n;
    if (n < m->min_n) m->min_n = n;
    if (m->expect_labels) {
        int k = m->nexpect;
        if (!labels || n != 2 * k) m->labels_ok = 0;
        else
            for (int i = 0; i < k; i++)
                if (labels[i] != m->expect_labels[i] || labels[k + i] != m->null_label)
                    m->labels_ok = 0;
    }
    int dim = m->dim;
    for (int i = 0; i < n; i++) {
        double mu = m->mu;
        if (m->cls_mu && labels && labels[i] != m->null_label) mu = m->cls_mu[labels[i]];
        double a = m->s->abar[t[i]], sa = sqrt(a), sb = sqrt(1.0 - a);
        double s2 = m->sd * m->sd;
        for (int j = 0; j < dim; j++) {
            double xt = x[i * dim + j];
            double eps = sb * (xt - sa * mu) / (a * s2 + 1.0 - a);
            double x0 = (xt - sb * eps) / sa;
            double o = m->kind == DFS_PRED_EPS ? eps : m->kind == DFS_PRED_X0 ? x0
                                                                              : sa * eps - sb * x0;
            out[i * dim + j] = (float)o;
        }
    }
    return DFS_OK;
}

/* Float rounding of a sampler run with the Gaussian model, bounded from what a step does: the
 * model output, the x0 and eps converted from it and the new x are each rounded once to float
 * (u32 relative), and the update weighs them by coefficients of magnitude at most ~1
 * (sqrt(abar_t'), sqrt(1 - abar_t' - sigma^2), sigma, the respaced posterior's c0 and ct;
 * dpm++2m's (1 + 1/(2r)) x0 - 1/(2r) x0_prev at most 3 on these grids; x0's own error from a
 * rounded eps, sb/sa u |eps|, enters times sqrt(abar_t') ~ sa). The maps of the remaining steps
 * are contractions for data of std s <= 1 (the exact flow's slope from t to t' is
 * sqrt(abar' s^2 + 1 - abar') / sqrt(abar s^2 + 1 - abar) <= 1), so an error made at one step
 * is not amplified, and two runs of `steps` steps that agree in exact arithmetic agree to within
 * steps 8 u32 vmax, vmax bounding |x|, |x0| and |eps| along the way. This is the worst case,
 * all roundings in one direction; typical differences are ~sqrt(steps) times smaller. */
static double run_round_bound(int steps, double vmax) { return 8.0 * steps * U32 * vmax; }

/* the largest magnitude among n floats: vmax for run_round_bound is this over x_T and the
 * outputs, plus |mu| + 1 for the x0 and eps in between (the model maps towards mu) */
static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = max_err(m, fabs(x[i]));
    return m;
}

static gauss_model gauss(const dfs_schedule *s, dfs_prediction kind, double mu, double sd) {
    gauss_model m = {0};
    m.s = s;
    m.kind = kind;
    m.mu = mu;
    m.sd = sd;
    m.min_n = 1 << 30;
    m.labels_ok = 1;
    m.dim = 1;
    return m;
}

static int cb_count, cb_order_ok;
static void count_cb(void *user, int i, int steps, int t, const float *x, int n) {
    const int *ts = user;
    if (i != cb_count || ts[i] != t || !x || n < 1) cb_order_ok = 0;
    cb_count++;
}

/* ---- schedules ---------------------------------------------------------------------------- */

static void test_schedule_values(void) {
    dfs_schedule s;
    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000) == DFS_OK, "init linear");
    /* beta_t = 1e-4 + (0.02 - 1e-4) t / 999 in double: exact at t = 0; otherwise four roundings
     * (difference, product, quotient, sum) of terms at most 0.02, so within 4 u 0.02 of the
     * exact value, and a difference of two within twice that plus the rounding of the want. */
    CHECK_CLOSE(s.beta[0], 1e-4, 0, 0, "linear beta_0");
    CHECK_CLOSE(s.beta[999], 0.02, 4 * U64 * 0.02, 0, "linear beta_{T-1}");
    CHECK_CLOSE(s.beta[500] - s.beta[499], (0.02 - 1e-4) / 999, 10 * U64 * 0.02, 0, "linear spacing");
    double prod = 1.0;
    int mono = 1, consistent = 1;
    for (int t = 0; t < 1000; t++) {
        prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * t / 999.0);
        if (t > 0 && !(s.abar[t] < s.abar[t - 1])) mono = 0;
        /* the same double operation on the same operand, or a copy: bit-equal */
        if (s.alpha[t] != 1.0 - s.beta[t]) consistent = 0;
        if (s.abar_prev[t] != (t ? s.abar[t - 1] : 1.0)) consistent = 0;
    }
    CHECK(mono, "linear abar must decrease strictly");
    CHECK(consistent, "alpha = 1 - beta and abar_prev = shifted abar");
    /* a product of T factors, each factor and each product rounded once: 2 T u relative */
    CHECK_CLOSE(s.abar[999], prod, 0, 2 * 1000 * U64, "linear abar_{T-1} vs double product");
    /* the literal has 5 significant digits: within half a unit of the last (4.0358298e-5) */
    CHECK_CLOSE(s.abar[999], 4.0358e-5, 0.5e-9, 0, "linear abar_{T-1} literal");
    /* at t = 0 abar_prev = 1: 1 - abar_prev, and so beta_tilde and post_ct, are exactly 0 */
    CHECK_CLOSE(s.beta_tilde[0], 0.0, 0, 0, "beta_tilde_0 = 0");
    /* post_c0 = b / (1 - (1 - b)): 1 - b rounds by u, which the cancellation turns into u / b
     * relative (1.1e-12 for b = 1e-4), plus the quotient's u */
    CHECK_CLOSE(s.post_c0[0], 1.0, U64 / s.beta[0] + 2 * U64, 0, "posterior at t=0 is x0 (c0)");
    CHECK_CLOSE(s.post_ct[0], 0.0, 0, 0, "posterior at t=0 is x0 (ct)");
    dfs_schedule_free(&s);
    CHECK(s.beta == NULL && s.T == 0, "free clears the struct");
    dfs_schedule_free(&s); /* twice is safe */

    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_COSINE, 1000) == DFS_OK, "init cosine");
    /* abar_0 = f(1)/f(0) computed here independently from IDDPM eq. 17. */
    double ss = 0.008, f0 = pow(cos(ss / (1 + ss) * M_PI / 2), 2);
    double f1 = pow(cos((1.0 / 1000 + ss) / (1 + ss) * M_PI / 2), 2);
    double f500 = pow(cos((500.0 / 1000 + ss) / (1 + ss) * M_PI / 2), 2);
    /* schedule.c squares cos with c * c, this test with pow (correctly rounded to < 1 ulp): each
     * f within 2 u, their quotient within 5 u; abar_0 = 1 - (1 - a) is exact (Sterbenz) */
    CHECK_CLOSE(s.abar[0], f1 / f0, 0, 8 * U64, "cosine abar_0 = f(1)/f(0)");
    CHECK(s.abar[0] > 0.9999 && s.abar[0] < 1.0, "cosine abar_0 = %.9g close to 1", s.abar[0]);
    /* abar_499 is the product of 500 rounded ratios a(t+1)/a(t) (1 - (1 - q) exact), where each
     * a(t) = f(t)/f(0) is computed once per use by the same code, so those roundings telescope:
     * 2 u per factor (ratio and product), plus the 8 u of f(500)/f(0) as above */
    CHECK_CLOSE(s.abar[499], f500 / f0, 0, (2 * 500 + 8) * U64, "cosine abar at t=500 (paper index)");
    /* the literal has 4 significant digits (0.49384359) */
    CHECK_CLOSE(s.abar[499], 0.4938, 0.5e-4, 0, "cosine abar mid-way is about 1/2");
    int ok = 1;
    mono = 1;
    for (int t = 0; t < 1000; t++) {
        if (!(s.beta[t] > 0 && s.beta[t] <= 0.999)) ok = 0;
        if (t > 0 && !(s.abar[t] < s.abar[t - 1])) mono = 0;
    }
    CHECK(ok, "cosine betas in (0, 0.999]");
    CHECK(mono, "cosine abar must decrease strictly");
    CHECK_CLOSE(s.beta[999], 0.999, 0, 0, "cosine last beta clipped at 0.999"); /* assigned */
    /* f(T-1)/f(0) ~ 2.4e-6 times the clipped 1 - 0.999: the same two double operations as
     * schedule.c, so bit-equal */
    CHECK_CLOSE(s.abar[999], s.abar[998] * (1.0 - 0.999), 0, 0, "cosine abar_{T-1} after the clipped beta");
    CHECK(s.abar[999] < 1e-6, "cosine abar_{T-1} = %g should be ~0", s.abar[999]);
    dfs_schedule_free(&s);

    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_QUAD, 50) == DFS_OK, "init quad");
    /* CSDI: b = linspace(sqrt(1e-4), sqrt(0.5), 50)^2, recomputed here with the same double
     * operations at the ends (r0^2 and r1^2, each sqrt and square rounded: 3 u relative) */
    CHECK_CLOSE(s.beta[0], 1e-4, 0, 3 * U64, "quad beta_0 = 1e-4");
    CHECK_CLOSE(s.beta[49], 0.5, 0, 5 * U64, "quad beta_{T-1} = 0.5");
    /* the square roots are evenly spaced: r_t - r_{t-1} = (sqrt(.5) - .01) / 49, each r within
     * 3 u of 0.71 */
    CHECK_CLOSE(sqrt(s.beta[25]) - sqrt(s.beta[24]), (sqrt(0.5) - 0.01) / 49, 8 * U64, 0, "quad sqrt spacing");
    /* the literals (Python's float arithmetic, the same formula) have 10 significant digits */
    CHECK_CLOSE(s.abar[49], 3.354078875e-05, 0.5e-14, 0, "quad abar_{T-1} literal");
    CHECK_CLOSE(s.abar[24], 0.3249896367, 0.5e-10, 0, "quad abar mid-way literal");
    CHECK(dfs_schedule_from_name("quad") == DFS_SCHEDULE_QUAD, "quad by name");
    dfs_schedule_free(&s);

    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_POLY2, 1000) == DFS_OK, "init poly2");
    /* EDM's closed form on every step but the last, whose ratio is clipped: abar_t =
     * (1 - 2e-5)(1 - ((t+1)/1000)^2)^2 + 1e-5 (EDM's levels 1..T of linspace(0, T+1, T+1)/(T+1)). schedule.c gets abar as a running product of
     * 1 - b_t, each b_t = 1 - a_t/a_{t-1} rounded to u: the relative error adds up to about
     * u sum_t 1/a_t <= 1000 u / min a_t, with a_t >= 0.5 except the last two steps (~1e4 u) */
    double worst = 0;
    for (int t = 0; t < 999; t++) {
        double f = (t + 1) / 1000.0, want = (1 - 2e-5) * (1 - f * f) * (1 - f * f) + 1e-5;
        double r = fabs(s.abar[t] / want - 1);
        if (r > worst) worst = r;
    }
    CHECK(worst < 1e-12, "poly2 abar_t = EDM's closed form before the last step (worst %.2e)", worst);
    /* the literals: EDM's own computation (numpy's linspace, clip, cumprod, float64), 13
     * significant digits; the last step's ratio is clipped at 0.001 */
    CHECK_CLOSE(s.abar[0], 9.999880000410e-01, 0.5e-12, 0, "poly2 abar_0 literal");
    CHECK_CLOSE(s.abar[499], 5.624987500000e-01, 0.5e-12, 0, "poly2 abar mid-way literal");
    CHECK_CLOSE(s.abar[998], 1.399592107998e-05, 0.5e-17, 1e-10, "poly2 abar_{T-2} literal");
    CHECK_CLOSE(s.abar[999], 1.000399592108e-05, 0.5e-17, 1e-10, "poly2 abar_{T-1} (clipped) literal");
    CHECK(dfs_schedule_from_name("poly2") == DFS_SCHEDULE_POLY2, "poly2 by name");
    dfs_schedule_free(&s);

    /* T = 1 and T = 100000 are allowed. */
    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1) == DFS_OK, "T = 1");
    CHECK_CLOSE(s.beta[0], 1e-4, 0, 0, "T = 1 linear beta"); /* the literal, assigned */
    dfs_schedule_free(&s);
    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_COSINE, 100000) == DFS_OK, "T = 100000");
    dfs_schedule_free(&s);
}

static void test_validation(void) {
    dfs_schedule s;
    dfs_set_error("%s", "");
    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 0) == DFS_ERR_ARG, "T = 0");
    CHECK(strlen(dfs_last_error()) > 0, "T = 0 sets a message");
    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_COSINE, 100001) == DFS_ERR_ARG, "T too big");
    CHECK(dfs_schedule_init(&s, (dfs_schedule_kind)7, 10) == DFS_ERR_ARG, "bad kind");
    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_COUNT, 10) == DFS_ERR_ARG, "kind COUNT");
    CHECK(s.beta == NULL, "failed init leaves the schedule empty");

    CHECK(dfs_schedule_from_name("linear") == DFS_SCHEDULE_LINEAR, "linear");
    CHECK(dfs_schedule_from_name("cosine") == DFS_SCHEDULE_COSINE, "cosine");
    CHECK(dfs_schedule_from_name("quadratic") == -1, "unknown schedule");
    CHECK(dfs_schedule_from_name(NULL) == -1, "NULL schedule name");
    CHECK(dfs_prediction_from_name("eps") == DFS_PRED_EPS, "eps");
    CHECK(dfs_prediction_from_name("x0") == DFS_PRED_X0, "x0");
    CHECK(dfs_prediction_from_name("v") == DFS_PRED_V, "v");
    CHECK(dfs_prediction_from_name("score") == -1, "unknown prediction");
    CHECK(dfs_sampler_from_name("ddpm") == DFS_SAMPLER_DDPM, "ddpm");
    CHECK(dfs_sampler_from_name("ddim") == DFS_SAMPLER_DDIM, "ddim");
    CHECK(dfs_sampler_from_name("dpm++2m") == DFS_SAMPLER_DPMPP_2M, "dpm++2m");
    CHECK(dfs_sampler_from_name("heun") == DFS_SAMPLER_HEUN, "heun");
    CHECK(dfs_sampler_from_name("euler") == -1, "unknown sampler");
    CHECK(dfs_sampler_from_name("dpm++") == -1, "prefix of a sampler name");
    CHECK(dfs_sampler_from_name(NULL) == -1, "NULL sampler name");
    for (int i = 0; i < DFS_SAMPLER_COUNT; i++)
        CHECK(dfs_sampler_from_name(dfs_sampler_names[i]) == i, "sampler name %d", i);
    for (int i = 0; i < DFS_SCHEDULE_COUNT; i++)
        CHECK(dfs_schedule_from_name(dfs_schedule_names[i]) == i, "schedule name %d", i);
    for (int i = 0; i < DFS_PRED_COUNT; i++)
        CHECK(dfs_prediction_from_name(dfs_prediction_names[i]) == i, "prediction name %d", i);

    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    CHECK(c.kind == DFS_SAMPLER_DDPM && c.steps == 1000 && c.eta == 0.0f &&
              c.var_beta_tilde == 1 && c.noise_scale == 1.0f && c.guidance == 1.0f && c.clip_x0 == 1 &&
              c.prediction == DFS_PRED_EPS && c.null_label == 0,
          "sampler defaults");

    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 100);
    gauss_model m = gauss(&s, DFS_PRED_EPS, 0.0, 1.0);
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    float x[4];
    c.steps = 0;
    dfs_set_error("%s", "");
    CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 4, 1, &rng, x, NULL, NULL) == DFS_ERR_ARG,
          "steps = 0");
    CHECK(strlen(dfs_last_error()) > 0, "steps = 0 sets a message");
    c.steps = 101;
    CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 4, 1, &rng, x, NULL, NULL) == DFS_ERR_ARG,
          "steps > T");
    c.steps = 100;
    CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 0, 1, &rng, x, NULL, NULL) == DFS_ERR_ARG,
          "n = 0");
    CHECK(dfs_sample(&s, &c, NULL, &m, NULL, 4, 1, &rng, x, NULL, NULL) == DFS_ERR_ARG,
          "model NULL");
    CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 4, 0, &rng, x, NULL, NULL) == DFS_ERR_ARG,
          "dim = 0");
    c.eta = -1.0f;
    CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 4, 1, &rng, x, NULL, NULL) == DFS_ERR_ARG,
          "eta < 0");
    c.eta = 0.0f;
    const float bad_scales[] = {-0.1f, 1.5f, NAN};
    for (int k = 0; k < 3; k++) {
        c.noise_scale = bad_scales[k];
        dfs_set_error("%s", "");
        CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 4, 1, &rng, x, NULL, NULL) == DFS_ERR_ARG &&
                  strstr(dfs_last_error(), "noise scale"),
              "noise scale %g refused: %s", (double)bad_scales[k], dfs_last_error());
    }
    c.noise_scale = 0.5f;
    c.kind = DFS_SAMPLER_DDIM;
    CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 4, 1, &rng, x, NULL, NULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "ddpm only"),
          "a noise scale with ddim refused: %s", dfs_last_error());
    c.noise_scale = 1.0f;
    c.kind = DFS_SAMPLER_COUNT;
    CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 4, 1, &rng, x, NULL, NULL) == DFS_ERR_ARG,
          "bad sampler kind");
    CHECK(m.calls == 0, "rejected calls never run the model");
    // a model that predicts NaN: every sampler reports it instead of returning the pictures
    for (int k = 0; k < DFS_SAMPLER_COUNT; k++) {
        dfs_sampler_config_default(&c);
        c.kind = (dfs_sampler_kind)k;
        c.steps = 10;
        dfs_status st = dfs_sample(&s, &c, nan_fn, NULL, NULL, 4, 1, &rng, x, NULL, NULL);
        CHECK(st == DFS_ERR_NAN && strstr(dfs_last_error(), "non-finite"), "%s: NaN predictions: %d %s",
              dfs_sampler_names[k], st, dfs_last_error());
    }
    // a model that fails at its 1st, 2nd, 3rd or 4th call: every sampler stops there and returns
    // its status and message (Heun's 2nd and 4th calls are inside a step)
    for (int k = 0; k < DFS_SAMPLER_COUNT; k++)
        for (int at = 1; at <= 4; at++) {
            dfs_sampler_config_default(&c);
            c.kind = (dfs_sampler_kind)k;
            c.steps = 10;
            int left = at;
            dfs_status st = dfs_sample(&s, &c, failing_fn, &left, NULL, 4, 1, &rng, x, NULL, NULL);
            CHECK(st == DFS_ERR_NOMEM && left == 0 && !strcmp(dfs_last_error(), "the model ran out of memory"),
                  "%s: a model failing at call %d: status %d, %d calls left, %s", dfs_sampler_names[k], at, st, left,
                  dfs_last_error());
        }
    dfs_schedule_free(&s);
}

/* ---- forward process: closed form (eq. 4) vs iterated steps (eq. 2) ----------------------- */

static void test_forward_chain(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000);
    enum { NC = 20000 };
    const float x0v = 0.7f;
    float *x = malloc(NC * sizeof(float)), *e = malloc(NC * sizeof(float));
    for (int i = 0; i < NC; i++) x[i] = x0v;
    dfs_rng rng;
    dfs_rng_seed(&rng, 42);
    const int at[] = {0, 9, 99, 499, 999};
    int k = 0;
    for (int t = 0; t < 1000 && k < 5; t++) {
        dfs_rng_fill_normal(&rng, e, NC);
        dfs_q_step(&s, t, x, e, x, NC); /* in place */
        if (t != at[k]) continue;
        k++;
        double m, sd;
        mean_std(x, NC, &m, &sd);
        double want_m = sqrt(s.abar[t]) * x0v, want_v = 1.0 - s.abar[t];
        /* Monte Carlo: 5 standard errors of the mean and of the sample variance (2 v^2/(n-1)
         * for Gaussian data), a false alarm for 1 seed in ~2 million. Rounding: every step stores
         * x in float (u |x| each, then shrunk by sqrt(alpha) < 1), so after t+1 steps each x is
         * within (t+1) u max|x| of the exact chain; E|x| <= sqrt(E x^2) <= 1 here, so the mean
         * moves by at most (t+1) u and the variance by twice the std times that. */
        double se_m = sqrt(want_v / NC), se_v = want_v * sqrt(2.0 / (NC - 1));
        double rnd = (t + 1) * U32;
        char what[64];
        snprintf(what, sizeof what, "iterated mean at t=%d", t);
        CHECK_CLOSE(m, want_m, 5 * se_m + rnd, 0, what);
        snprintf(what, sizeof what, "iterated var at t=%d", t);
        CHECK_CLOSE(sd * sd, want_v, 5 * se_v + 2 * sqrt(want_v) * rnd, 0, what);
    }
    /* dfs_q_sample is eq. 4 exactly. */
    float x0[3] = {0.5f, -1.0f, 0.0f}, ee[3] = {1.0f, 0.25f, -2.0f}, xt[3];
    dfs_q_sample(&s, 300, x0, ee, xt, 3);
    /* computed in double and rounded once to float: u relative, plus a few u of double */
    for (int i = 0; i < 3; i++) {
        double a = sqrt(s.abar[300]) * x0[i], b = sqrt(1 - s.abar[300]) * ee[i];
        CHECK_CLOSE(xt[i], a + b, 8 * U64 * (fabs(a) + fabs(b)), U32, "q_sample eq. 4");
    }
    free(x);
    free(e);
    dfs_schedule_free(&s);
}

/* ---- posterior q(x_{t-1} | x_t, x0) ------------------------------------------------------- */

static void test_posterior(void) {
    for (int kind = 0; kind < DFS_SCHEDULE_COUNT; kind++) {
        dfs_schedule s;
        dfs_schedule_init(&s, kind, 1000);
        /* Bayes on the joint Gaussian of (x_{t-1}, x_t) given x0:
         *   x_{t-1} ~ N(sqrt(abar_{t-1}) x0, 1 - abar_{t-1}),
         *   x_t = sqrt(a_t) x_{t-1} + sqrt(b_t) e
         *   C11 = 1 - abar_{t-1}, C12 = sqrt(a_t) C11, C22 = a_t C11 + b_t
         *   mean = m1 + C12/C22 (x_t - m2), var = C11 - C12^2 / C22. */
        const int ts[] = {0, 1, 10, 250, 700, 999};
        for (int k = 0; k < 6; k++) {
            int t = ts[k];
            double ap = 1.0;
            for (int u = 0; u < t; u++) ap *= 1.0 - s.beta[u];
            double a = 1.0 - s.beta[t], b = s.beta[t];
            double c11 = 1.0 - ap, c12 = sqrt(a) * c11, c22 = a * c11 + b;
            float x0 = 0.6f, xt = -0.3f, mean;
            double m1 = sqrt(ap) * x0, m2 = sqrt(a) * m1;
            double want_mean = m1 + c12 / c22 * (xt - m2), want_var = c11 - c12 * c12 / c22;
            double var = -1;
            dfs_q_posterior(&s, t, &x0, &xt, &mean, 1, &var);
            char what[80];
            /* Both sides share ap (the same product as abar_prev, bit for bit) and 1 - ap; they
             * differ in 1 - abar_t, which schedule.c takes from the rounded product abar_t
             * (u abar / (1 - abar) relative) and this test as a c11 + b (u / c22): so the
             * coefficients agree to ~4 u / (1 - abar_t) relative. The mean is then rounded to
             * float (u32 relative). The variance c11 - c12^2/c22 here cancels: its roundings of
             * u c11 and the u / c22 of c22 in c12^2/c22 = a c11^2/c22 count relative to
             * c11 b / c22, i.e. times c11 / b and a c11 / (b c22). */
            double rel64 = 8 * U64 * (1 + 1 / (1 - s.abar[t]) + c11 / b * (1 + 1 / c22));
            snprintf(what, sizeof what, "%s posterior mean t=%d", dfs_schedule_names[kind], t);
            CHECK_CLOSE(mean, want_mean, rel64 * (fabs(m1) + fabs(c12 / c22 * (xt - m2))), U32, what);
            snprintf(what, sizeof what, "%s posterior var t=%d", dfs_schedule_names[kind], t);
            CHECK_CLOSE(var, want_var, 0, rel64, what);
        }
        /* Monte Carlo: regress x_{t-1} on x_t over forward-process draws from a fixed x0. The
         * slope must be post_ct, the intercept post_c0 x0, the residual variance beta_tilde. */
        enum { NM = 100000 };
        float *xp = malloc(NM * sizeof(float)), *xt = malloc(NM * sizeof(float));
        float *e = malloc(NM * sizeof(float)), *x0 = malloc(NM * sizeof(float));
        for (int i = 0; i < NM; i++) x0[i] = 0.8f;
        dfs_rng rng;
        dfs_rng_seed(&rng, 7 + kind);
        const int mt[] = {1, 50, 600};
        for (int k = 0; k < 3; k++) {
            int t = mt[k];
            dfs_rng_fill_normal(&rng, e, NM);
            dfs_q_sample(&s, t - 1, x0, e, xp, NM);
            dfs_rng_fill_normal(&rng, e, NM);
            dfs_q_step(&s, t, xp, e, xt, NM);
            double mx = 0, my = 0, sxx = 0, sxy = 0, sax = 0, xmax = 0, pmax = 0;
            for (int i = 0; i < NM; i++) mx += xt[i], my += xp[i];
            mx /= NM, my /= NM;
            for (int i = 0; i < NM; i++) {
                sxx += (xt[i] - mx) * (xt[i] - mx);
                sxy += (xt[i] - mx) * (xp[i] - my);
                sax += fabs(xt[i] - mx);
                xmax = max_err(xmax, fabs(xt[i])), pmax = max_err(pmax, fabs(xp[i]));
            }
            double slope = sxy / sxx, icpt = my - slope * mx, rss = 0;
            for (int i = 0; i < NM; i++) {
                double r = xp[i] - icpt - slope * xt[i];
                rss += r * r;
            }
            double rv = rss / (NM - 2), bt = s.beta_tilde[t];
            /* 5 standard errors of least squares (a false alarm for 1 seed in ~2 million); the
             * residual variance has relative standard error sqrt(2 / (n - 2)). Rounding: x_{t-1}
             * and x_t are stored in float, so each residual is off by at most
             * e = u (max|x_{t-1}| + |slope| max|x_t|); taken all in one direction that moves the
             * slope by e sum|x_t - mx| / sxx, the intercept by e (1 + |mx| sum|x_t - mx| / sxx)
             * and the residual variance by 2 e sqrt(rv) + e^2. (The float x0 = 0.8f is the
             * exact x0 of both sides.) */
            double se_slope = sqrt(bt / sxx), se_icpt = sqrt(bt * (1.0 / NM + mx * mx / sxx));
            double e = U32 * (pmax + fabs(slope) * xmax);
            char what[80];
            snprintf(what, sizeof what, "%s MC posterior slope t=%d", dfs_schedule_names[kind], t);
            CHECK_CLOSE(slope, s.post_ct[t], 5 * se_slope + e * sax / sxx, 0, what);
            snprintf(what, sizeof what, "%s MC posterior intercept t=%d", dfs_schedule_names[kind],
                     t);
            CHECK_CLOSE(icpt, s.post_c0[t] * 0.8f, 5 * se_icpt + e * (1 + fabs(mx) * sax / sxx), 0, what);
            snprintf(what, sizeof what, "%s MC posterior var t=%d", dfs_schedule_names[kind], t);
            CHECK_CLOSE(rv, bt, 2 * e * sqrt(rv) + e * e, 5 * sqrt(2.0 / (NM - 2)), what);
        }
        free(xp);
        free(xt);
        free(e);
        free(x0);
        dfs_schedule_free(&s);
    }
}

/* ---- eps / x0 / v ------------------------------------------------------------------------- */

static void test_conversions(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_COSINE, 1000);
    enum { NV = 64 };
    float x0[NV], eps[NV], xt[NV], tgt[NV], e2[NV], z2[NV];
    dfs_rng rng;
    dfs_rng_seed(&rng, 3);
    const int ts[] = {0, 1, 100, 500, 900, 990};
    /* Each conversion computes in double and rounds its result to float once (u32 relative);
     * x_t and the v target were themselves rounded once. Worked through per kind:
     *  - x_t reconstruction sa z2 + sb e2 - x_t: eps kind sa (z2 - exact) <= u |x_t - sb p|,
     *    x0 kind likewise, v kind sa dz + sb de: all <= u (|x_t| + |p| + |z2| + |e2|);
     *  - the quantity a kind carries (eps for eps, x0 for x0) is copied exactly; v gives
     *    z2 - x0 = sa dx_t - sb dv + dz, within the same u (|x_t| + |p| + |z2| + |e2|);
     *  - the other quantity sees x_t's rounding divided by sa (x0 from eps) or sb (eps from x0):
     *    the ill-conditioned direction, u |x_t| / min(sa, sb), checked only where t is moderate.
     * The double arithmetic adds a few u64 of the terms, also divided by sa or sb. Each error is
     * checked against its own bound, and the worst ratio must be <= 1. */
    double worst[DFS_PRED_COUNT] = {0};
    int v_ok = 1;
    for (int k = 0; k < 6; k++) {
        int t = ts[k];
        for (int i = 0; i < NV; i++) {
            x0[i] = dfs_rng_uniform(&rng) * 2 - 1;
            eps[i] = dfs_rng_normal(&rng);
        }
        dfs_q_sample(&s, t, x0, eps, xt, NV);
        const double a = s.abar[t], sa = sqrt(a), sb = sqrt(1 - a), mins = fmin(sa, sb);
        for (int kind = 0; kind < DFS_PRED_COUNT; kind++) {
            dfs_pred_target(&s, kind, t, x0, eps, tgt, NV);
            dfs_pred_to_eps_x0(&s, kind, t, xt, tgt, e2, z2, NV);
            for (int i = 0; i < NV; i++) {
                double mag = fabs(xt[i]) + fabs(tgt[i]);
                double bnd = U32 * (mag + fabs(z2[i]) + fabs(e2[i])) + 8 * U64 * mag / mins;
                double rec = sa * z2[i] + sb * e2[i] - xt[i]; /* eq. 4 consistency */
                double d = fabs(rec);
                if (kind == DFS_PRED_EPS) d = max_err(d, fabs(e2[i] - eps[i]));
                if (kind == DFS_PRED_X0) d = max_err(d, fabs(z2[i] - x0[i]));
                if (kind == DFS_PRED_V) d = max_err(d, max_err(fabs(z2[i] - x0[i]), fabs(e2[i] - eps[i])));
                worst[kind] = max_err(worst[kind], d / bnd);
                double v = sa * eps[i] - sb * x0[i];
                if (kind == DFS_PRED_V &&
                    !(fabs(tgt[i] - v) <= U32 * fabs(v) + 4 * U64 * (fabs(sa * eps[i]) + fabs(sb * x0[i]))))
                    v_ok = 0;
            }
        }
        /* Round trips through the target at moderate t: all of eps and x0, the conditioning
         * 1 / min(sa, sb) included (<= 6.5 at t = 900 of the cosine schedule). */
        if (t >= 100 && t <= 900) {
            for (int kind = 0; kind < DFS_PRED_COUNT; kind++) {
                dfs_pred_target(&s, kind, t, x0, eps, tgt, NV);
                dfs_pred_to_eps_x0(&s, kind, t, xt, tgt, e2, z2, NV);
                double d = 0;
                for (int i = 0; i < NV; i++) {
                    double bnd = U32 * (fabs(xt[i]) / mins + fabs(tgt[i]) + fabs(z2[i]) + fabs(e2[i])) +
                                 8 * U64 * (fabs(xt[i]) + fabs(tgt[i])) / mins;
                    d = max_err(d, max_err(fabs(z2[i] - x0[i]), fabs(e2[i] - eps[i])) / bnd);
                }
                CHECK(d <= 1, "%s round trip at t=%d: max err %g of its rounding bound",
                      dfs_prediction_names[kind], t, d);
            }
        }
    }
    for (int kind = 0; kind < DFS_PRED_COUNT; kind++)
        CHECK(worst[kind] <= 1, "%s conversions: max err %g of its rounding bound", dfs_prediction_names[kind],
              worst[kind]);
    CHECK(v_ok, "v target = sqrt(abar) eps - sqrt(1-abar) x0");
    /* v-prediction: x0 = sqrt(a) x_t - sqrt(1-a) v exactly (hand values). */
    float xv = 0.5f, vv = -0.25f, ev, zv;
    dfs_pred_to_eps_x0(&s, DFS_PRED_V, 400, &xv, &vv, &ev, &zv, 1);
    double a = s.abar[400];
    /* one float rounding of a double result (u32 relative) and a few u64 of the terms (< 0.6) */
    CHECK_CLOSE(zv, sqrt(a) * 0.5 - sqrt(1 - a) * -0.25, 4 * U64, U32, "v -> x0");
    CHECK_CLOSE(ev, sqrt(1 - a) * 0.5 + sqrt(a) * -0.25, 4 * U64, U32, "v -> eps");
    /* NULL outputs and in-place conversion. */
    float p[2] = {0.3f, -0.1f}, xx[2] = {0.2f, 0.4f}, ref[2];
    dfs_pred_to_eps_x0(&s, DFS_PRED_X0, 200, xx, p, ref, NULL, 2);
    dfs_pred_to_eps_x0(&s, DFS_PRED_X0, 200, xx, p, p, NULL, 2);
    CHECK(p[0] == ref[0] && p[1] == ref[1], "in-place conversion");
    dfs_schedule_free(&s);
}

/* ---- timesteps ---------------------------------------------------------------------------- */

static void test_timesteps(void) {
    int ts[1000];
    dfs_sampler_timesteps(1000, 1000, ts);
    int ok = 1;
    for (int i = 0; i < 1000; i++) ok &= ts[i] == 999 - i;
    CHECK(ok, "steps = T visits T-1..0");
    dfs_sampler_timesteps(1000, 1, ts);
    CHECK(ts[0] == 999, "steps = 1 visits T-1 (got %d)", ts[0]);
    dfs_sampler_timesteps(1000, 10, ts);
    const int want10[10] = {999, 888, 777, 666, 555, 444, 333, 222, 111, 0};
    ok = 1;
    for (int i = 0; i < 10; i++) ok &= ts[i] == want10[i];
    CHECK(ok, "steps = 10: %d %d %d ... %d", ts[0], ts[1], ts[2], ts[9]);
    dfs_sampler_timesteps(1000, 4, ts); /* 999 * {3,2,1,0}/3 = 999, 666, 333, 0 */
    CHECK(ts[0] == 999 && ts[1] == 666 && ts[2] == 333 && ts[3] == 0, "steps = 4");
    dfs_sampler_timesteps(1000, 50, ts); /* 999 * 48/49 = 978.61 -> 979; 999/49 = 20.39 -> 20 */
    CHECK(ts[0] == 999 && ts[1] == 979 && ts[48] == 20 && ts[49] == 0, "steps = 50: %d %d %d %d",
          ts[0], ts[1], ts[48], ts[49]);
    dfs_sampler_timesteps(1000, 2, ts);
    CHECK(ts[0] == 999 && ts[1] == 0, "steps = 2");
    dfs_sampler_timesteps(10, 7, ts);
    ok = 1;
    for (int i = 1; i < 7; i++) ok &= ts[i] < ts[i - 1];
    CHECK(ok && ts[0] == 9 && ts[6] == 0, "steps = 7 of 10 strictly descending");
    dfs_sampler_timesteps(1, 1, ts);
    CHECK(ts[0] == 0, "T = 1");
}

/* ---- sampler mechanics -------------------------------------------------------------------- */

static void test_determinism(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 200);
    gauss_model m = gauss(&s, DFS_PRED_EPS, 0.3, 0.5);
    m.dim = 4;
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.steps = 50;
    enum { NS = 256 };
    float a[NS], b[NS], d[NS];
    for (int kind = 0; kind < DFS_SAMPLER_COUNT; kind++) {
        c.kind = kind;
        c.eta = 0.5f;
        dfs_rng r;
        dfs_rng_seed(&r, 11);
        CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 64, 4, &r, a, NULL, NULL) == DFS_OK, "run a");
        dfs_rng_seed(&r, 11);
        CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 64, 4, &r, b, NULL, NULL) == DFS_OK, "run b");
        dfs_rng_seed(&r, 12);
        CHECK(dfs_sample(&s, &c, gauss_fn, &m, NULL, 64, 4, &r, d, NULL, NULL) == DFS_OK, "run d");
        CHECK(memcmp(a, b, sizeof a) == 0, "%s: same seed, same samples",
              dfs_sampler_names[kind]);
        int differ = 0;
        for (int i = 0; i < NS; i++) differ += a[i] != d[i];
        CHECK(differ > NS / 2, "%s: other seed, other samples (%d differ)",
              dfs_sampler_names[kind], differ);
    }

    /* Large enough (n * dim >= 65536) for the OpenMP loops to run threaded. */
    {
        enum { NB = 512, DB = 160 };
        float *p = malloc(NB * DB * sizeof(float)), *q = malloc(NB * DB * sizeof(float));
        gauss_model mb = gauss(&s, DFS_PRED_V, 0.3, 0.5);
        mb.dim = DB;
        const dfs_sampler_kind lk[] = {DFS_SAMPLER_DDIM, DFS_SAMPLER_DPMPP_2M, DFS_SAMPLER_HEUN};
        for (int k = 0; k < 3; k++) {
            dfs_sampler_config cb = c;
            cb.kind = lk[k];
            cb.eta = 1.0f;
            cb.steps = 4;
            dfs_rng r1, r2;
            dfs_rng_seed(&r1, 3);
            dfs_rng_seed(&r2, 3);
            dfs_sample(&s, &cb, gauss_fn, &mb, NULL, NB, DB, &r1, p, NULL, NULL);
            dfs_sample(&s, &cb, gauss_fn, &mb, NULL, NB, DB, &r2, q, NULL, NULL);
            CHECK(memcmp(p, q, NB * DB * sizeof(float)) == 0,
                  "large batch %s: same seed, same samples", dfs_sampler_names[lk[k]]);
            int finite = 1, moved = 0;
            for (int i = 0; i < NB * DB; i++) finite &= isfinite(p[i]), moved += p[i] != p[0];
            CHECK(finite && moved > NB * DB / 2, "large batch %s: finite, distinct samples",
                  dfs_sampler_names[lk[k]]);
        }
        free(p);
        free(q);
    }

    /* Callback once per step, in order, with the visited timesteps. Model called once per
     * step with n items when guidance is 1 (the default). */
    int ts[50];
    dfs_sampler_timesteps(200, 50, ts);
    cb_count = 0;
    cb_order_ok = 1;
    m.calls = m.items = m.max_n = 0;
    m.min_n = 1 << 30;
    dfs_rng r;
    dfs_rng_seed(&r, 1);
    c.kind = DFS_SAMPLER_DDPM;
    dfs_sample(&s, &c, gauss_fn, &m, NULL, 64, 4, &r, a, count_cb, ts);
    CHECK(cb_count == 50 && cb_order_ok, "callback per step (%d calls)", cb_count);
    CHECK(m.calls == 50 && m.max_n == 64 && m.min_n == 64, "one model call of n per step");
    /* dpm++2m: one call per step; heun: two per step but the last. Callback once per step. */
    const dfs_sampler_kind hk[] = {DFS_SAMPLER_DPMPP_2M, DFS_SAMPLER_HEUN};
    for (int k = 0; k < 2; k++) {
        cb_count = 0;
        cb_order_ok = 1;
        m.calls = m.items = m.max_n = 0;
        m.min_n = 1 << 30;
        dfs_rng_seed(&r, 1);
        c.kind = hk[k];
        dfs_sample(&s, &c, gauss_fn, &m, NULL, 64, 4, &r, a, count_cb, ts);
        int want = hk[k] == DFS_SAMPLER_HEUN ? 99 : 50;
        CHECK(cb_count == 50 && cb_order_ok, "%s: callback per step (%d calls)",
              dfs_sampler_names[hk[k]], cb_count);
        CHECK(m.calls == want && m.max_n == 64 && m.min_n == 64, "%s: %d model calls of n, want %d",
              dfs_sampler_names[hk[k]], m.calls, want);
    }
    dfs_schedule_free(&s);
}

/* DDIM with eta = 1 has sigma^2 = beta_tilde' and the same mean as the DDPM posterior, so with
 * the same seed the two samplers must agree (DDIM eq. 16 remark), respaced or not. */
static void test_ddim_eta1_is_ddpm(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_COSINE, 300);
    gauss_model m = gauss(&s, DFS_PRED_EPS, 0.3, 0.5);
    enum { NS = 2000 };
    float *a = malloc(NS * sizeof(float)), *b = malloc(NS * sizeof(float));
    const int steps[] = {300, 37};
    for (int k = 0; k < 2; k++) {
        dfs_sampler_config c;
        dfs_sampler_config_default(&c);
        c.steps = steps[k];
        c.clip_x0 = 0;
        dfs_rng r;
        dfs_rng_seed(&r, 5);
        c.kind = DFS_SAMPLER_DDPM;
        dfs_sample(&s, &c, gauss_fn, &m, NULL, NS, 1, &r, a, NULL, NULL);
        dfs_rng_seed(&r, 5);
        c.kind = DFS_SAMPLER_DDIM;
        c.eta = 1.0f;
        dfs_sample(&s, &c, gauss_fn, &m, NULL, NS, 1, &r, b, NULL, NULL);
        double d = 0;
        for (int i = 0; i < NS; i++) d = max_err(d, fabs(a[i] - b[i]));
        /* the same noise z: only rounding differs; x_T is the first NS normals of seed 5 */
        dfs_rng_seed(&r, 5);
        dfs_rng_fill_normal(&r, a, NS);
        double bound = run_round_bound(steps[k], max_err(max_abs(a, NS), max_abs(b, NS)) + 0.3 + 1);
        if (getenv("DFS_TEST_VERBOSE"))
            printf("  ddim eta=1 vs ddpm, %d steps: max diff %.3g, rounding bound %.3g\n", steps[k], d, bound);
        CHECK(d <= bound, "DDIM eta=1 vs DDPM, %d steps: max diff %g, rounding bound %g", steps[k], d, bound);
    }
    free(a);
    free(b);
    dfs_schedule_free(&s);
}

/* DPM-Solver++ first order is DDIM (DPM++ sec. 4 / DPM-Solver sec. 3.4), and dpm++2m takes
 * its first step and the two final steps (into t = 0, then to abar = 1) first order, so with
 * steps <= 3 it must equal DDIM(eta 0); with 4 steps the one 2M step makes it differ. Heun's
 * last step is Euler = x0, so with 1 step it is DDIM too. */
static void test_first_order_is_ddim(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000);
    gauss_model m = gauss(&s, DFS_PRED_EPS, 0.3, 0.5);
    enum { NS = 1000 };
    float *a = malloc(NS * sizeof(float)), *b = malloc(NS * sizeof(float));
    for (int steps = 1; steps <= 4; steps++) {
        for (int k = 0; k < 2; k++) {
            dfs_sampler_kind kind = k ? DFS_SAMPLER_HEUN : DFS_SAMPLER_DPMPP_2M;
            if (kind == DFS_SAMPLER_HEUN && steps > 2) continue;
            dfs_sampler_config c;
            dfs_sampler_config_default(&c);
            c.steps = steps;
            c.clip_x0 = 0;
            c.kind = DFS_SAMPLER_DDIM;
            dfs_rng r;
            dfs_rng_seed(&r, 8);
            dfs_sample(&s, &c, gauss_fn, &m, NULL, NS, 1, &r, a, NULL, NULL);
            c.kind = kind;
            dfs_rng_seed(&r, 8);
            dfs_sample(&s, &c, gauss_fn, &m, NULL, NS, 1, &r, b, NULL, NULL);
            double d = 0;
            for (int i = 0; i < NS; i++) d = max_err(d, fabs(a[i] - b[i]));
            float *xT = malloc(NS * sizeof(float));
            dfs_rng_seed(&r, 8);
            dfs_rng_fill_normal(&r, xT, NS);
            double bound = run_round_bound(steps, max_err(max_abs(xT, NS), max_err(max_abs(a, NS), max_abs(b, NS))) + 0.3 + 1);
            free(xT);
            if (getenv("DFS_TEST_VERBOSE"))
                printf("  %s %d steps vs ddim: max diff %.3g, rounding bound %.3g\n", dfs_sampler_names[kind], steps,
                       d, bound);
            /* one step: every sampler returns the float x0 of the same model call, bit-equal;
             * first-order steps: the same map, so within rounding; a 2M or Heun correction
             * must move the samples by more than rounding could */
            if (steps == 1)
                CHECK(d == 0, "%s 1 step equals ddim: max diff %g", dfs_sampler_names[kind], d);
            else if (kind == DFS_SAMPLER_DPMPP_2M && steps <= 3)
                CHECK(d <= bound, "%s %d steps equals ddim: max diff %g, rounding bound %g", dfs_sampler_names[kind],
                      steps, d, bound);
            else
                CHECK(d > bound, "%s %d steps differs from ddim: max diff %g, rounding bound %g",
                      dfs_sampler_names[kind], steps, d, bound);
        }
    }
    free(a);
    free(b);
    dfs_schedule_free(&s);
}

/* One step from pure noise with an x0-predictor returns the prediction (clipped). */
static dfs_status x0_const_fn(void *user, const float *x, const int *t, const int *labels, int n,
                              float *out) {
    for (int i = 0; i < n; i++) out[i] = *(const float *)user;
    return DFS_OK;
}

static void test_one_step(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 100);
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.prediction = DFS_PRED_X0;
    c.steps = 1;
    float x[8], v = 0.25f, big = 3.0f;
    for (int kind = 0; kind < DFS_SAMPLER_COUNT; kind++) {
        c.kind = kind;
        dfs_rng r;
        dfs_rng_seed(&r, 9);
        dfs_sample(&s, &c, x0_const_fn, &v, NULL, 8, 1, &r, x, NULL, NULL);
        /* exact: the last step into abar = 1 has c0 = (1 - abar)/(1 - abar) = 1 (or sqrt(1)),
         * ct = ce = sigma = 0 (or copies x0), so x = 1 * x0 + 0 exactly, and a NaN fails */
        int ok = 1;
        for (int i = 0; i < 8; i++) ok &= x[i] == 0.25f;
        CHECK(ok, "%s one step returns x0 (got %g)", dfs_sampler_names[kind], x[0]);
        dfs_sample(&s, &c, x0_const_fn, &big, NULL, 8, 1, &r, x, NULL, NULL);
        ok = 1;
        for (int i = 0; i < 8; i++) ok &= x[i] == 1.0f;
        CHECK(ok, "%s clip_x0 clips to 1 (got %g)", dfs_sampler_names[kind], x[0]);
    }
    dfs_schedule_free(&s);
}

/* ---- the key test: samplers recover N(mu, s^2) with the optimal model -------------------- */

/* With the optimal Gaussian model, eps_hat and x0_hat are affine in x_t, so every sampler step
 * is x' = A x + B + sigma z and the output law N(m, v) follows exactly from m' = A m + B,
 * v' = A^2 v + sigma^2, starting from N(0, 1). The step coefficients are written here from the
 * papers independently of samplers.c: DDPM from DDPM eq. 7 with the respaced betas
 * b' = 1 - abar_t / abar_t' (IDDPM sec. 4), DDIM from DDIM eq. 12 and 16. This separates the
 * sampler's discretisation error (exact m, v vs mu, s^2) from implementation errors
 * (simulation vs exact m, v). */
/* Optimal Gaussian eps_hat = pe x + qe at timestep t. */
static void gauss_eps_affine(const dfs_schedule *s, int t, double mu, double sd, double *pe,
                             double *qe) {
    double a = s->abar[t], k = sqrt(1 - a) / (a * sd * sd + 1 - a);
    *pe = k;
    *qe = -k * sqrt(a) * mu;
}

/* The deterministic higher-order solvers map x_T affinely, x = ax x_T + bx, so with
 * x_T ~ N(0, 1) the output law is N(bx, ax^2). The steps are written from the papers:
 * DPM-Solver++ Algorithm 2 in (alpha, sigma, lambda) form; Heun from EDM Algorithm 1 in the
 * variables x~ = x / sqrt(abar), sigma = sqrt(1/abar - 1). */
static void exact_moments_ode(const dfs_schedule *s, const dfs_sampler_config *c, double mu,
                              double sd, double *mean, double *var) {
    int ts[1000];
    dfs_sampler_timesteps(s->T, c->steps, ts);
    double ax = 1, bx = 0, az = 0, bz = 0; /* x and the previous x0_hat, affine in x_T */
    double lam_prev = 0;
    for (int i = 0; i < c->steps; i++) {
        double a = s->abar[ts[i]];
        double pe, qe;
        gauss_eps_affine(s, ts[i], mu, sd, &pe, &qe);
        double pz = (1 - sqrt(1 - a) * pe) / sqrt(a), qz = -sqrt(1 - a) * qe / sqrt(a);
        double zx = pz * ax, zb = pz * bx + qz; /* x0_hat, affine in x_T */
        if (i + 1 == c->steps) {                /* both: the last step returns x0_hat */
            ax = zx, bx = zb;
            break;
        }
        double ap = s->abar[ts[i + 1]];
        if (c->kind == DFS_SAMPLER_DPMPP_2M) {
            double al_t = sqrt(ap), sg_t = sqrt(1 - ap), sg_s = sqrt(1 - a);
            double lam_s = log(sqrt(a) / sg_s), lam_t = log(al_t / sg_t), h = lam_t - lam_s;
            double Dx = zx, Db = zb;
            if (i > 0 && i + 2 < c->steps) { /* first order into t = 0 (the last ts) */
                double r = (lam_s - lam_prev) / h;
                Dx = (1 + 1 / (2 * r)) * zx - 1 / (2 * r) * az;
                Db = (1 + 1 / (2 * r)) * zb - 1 / (2 * r) * bz;
            }
            double cx = sg_t / sg_s, cd = -al_t * (exp(-h) - 1);
            ax = cx * ax + cd * Dx;
            bx = cx * bx + cd * Db;
            az = zx, bz = zb, lam_prev = lam_s;
        } else { /* heun */
            double sig = sqrt(1 / a - 1), sign = sqrt(1 / ap - 1), dt = sign - sig;
            /* x~ = x / sqrt(a); d_i = (x~ - D) / sig with D = x0_hat */
            double kx = ax / sqrt(a), kb = bx / sqrt(a);
            double dx = (kx - zx) / sig, db = (kb - zb) / sig;
            double ex = kx + dt * dx, eb = kb + dt * db; /* Euler, in x~ */
            double pe2, qe2;
            gauss_eps_affine(s, ts[i + 1], mu, sd, &pe2, &qe2);
            /* x0_hat at x = sqrt(ap) x~_e and t'; d' = (x~_e - x0_hat) / sig' */
            double pz2 = (1 - sqrt(1 - ap) * pe2) / sqrt(ap), qz2 = -sqrt(1 - ap) * qe2 / sqrt(ap);
            double z2x = pz2 * sqrt(ap) * ex, z2b = pz2 * sqrt(ap) * eb + qz2;
            double d2x = (ex - z2x) / sign, d2b = (eb - z2b) / sign;
            kx += dt * 0.5 * (dx + d2x);
            kb += dt * 0.5 * (db + d2b);
            ax = sqrt(ap) * kx, bx = sqrt(ap) * kb;
        }
    }
    *mean = bx;
    *var = ax * ax;
}

static void exact_moments(const dfs_schedule *s, const dfs_sampler_config *c, double mu,
                          double sd, double *mean, double *var) {
    if (c->kind == DFS_SAMPLER_DPMPP_2M || c->kind == DFS_SAMPLER_HEUN) {
        exact_moments_ode(s, c, mu, sd, mean, var);
        return;
    }
    int ts[1000];
    dfs_sampler_timesteps(s->T, c->steps, ts);
    double m = 0.0, v = 1.0;
    for (int i = 0; i < c->steps; i++) {
        double a = s->abar[ts[i]], ap = i + 1 < c->steps ? s->abar[ts[i + 1]] : 1.0;
        double sa = sqrt(a), sb = sqrt(1 - a), k = sb / (a * sd * sd + 1 - a);
        double pe = k, qe = -k * sa * mu;                 /* eps_hat = pe x + qe */
        double pz = (1 - sb * pe) / sa, qz = -sb * qe / sa; /* x0_hat = pz x + qz */
        double A, B, sig2;
        int last = i + 1 == c->steps;
        if (c->kind == DFS_SAMPLER_DDPM) {
            double b = 1 - a / ap;
            double c0 = sqrt(ap) * b / (1 - a), ct = sqrt(1 - b) * (1 - ap) / (1 - a);
            A = c0 * pz + ct;
            B = c0 * qz;
            sig2 = last ? 0 : c->var_beta_tilde ? (1 - ap) / (1 - a) * b : b;
            sig2 *= (double)c->noise_scale * c->noise_scale;
        } else {
            sig2 = last ? 0 : c->eta * c->eta * (1 - ap) / (1 - a) * (1 - a / ap);
            double ce = sqrt(fmax(0.0, 1 - ap - sig2));
            A = sqrt(ap) * pz + ce * pe;
            B = sqrt(ap) * qz + ce * qe;
        }
        m = A * m + B;
        v = A * A * v + sig2;
    }
    *mean = m;
    *var = v;
}

/* The map x_T -> x_0 of the real sampler (dfs_sample) with the exact Gaussian model, for the
 * deterministic samplers (DDIM eta = 0, dpm++2m, heun): affine up to rounding, so a least-squares
 * fit over NMAP draws of x_T has no sampling error, only rounding. For x_T ~ N(0, 1) the output
 * law is N(intercept, slope^2): the sampler's exact law, measured on the real code.
 * Rounding: in the worst case every output is off by E = run_round_bound in one direction, which
 * would move the slope by E sum|x_T - m| / sxx; but that bound (2e-3 at 1000 steps) hides the
 * whole discretisation error of a fine grid. The standard probabilistic model of rounding
 * (independent errors of mean 0, Higham, "Accuracy and Stability of Numerical Algorithms",
 * sec. 2.8) makes each output's error a random walk of `steps` roundings of at most 8 u32 vmax,
 * i.e. of std at most sigma = 8 sqrt(steps) u32 vmax, uncorrelated with x_T; least squares then
 * has standard errors sigma / sqrt(sxx) (slope) and sigma sqrt(1/n + m^2/sxx) (intercept), and
 * the tolerances are 5 of those (as for the Monte Carlo checks), plus 16 steps u64 for the
 * double arithmetic of the coefficients on both sides. */
typedef struct {
    double slope, icpt, tol_slope, tol_icpt;
} affine_map;

/* Least squares of y[first + k stride] on xT[first + k stride], k < n, with the rounding
 * tolerances above for a run of `steps` steps whose eps roundings are weighed by up to `wfac`
 * (1 unguided, 1 + 2|w| guided) and whose data mean is mu. */
static affine_map fit_affine(const float *xT, const float *y, int first, int stride, int n, int steps, double mu,
                             double wfac) {
    affine_map f;
    double mx = 0, my = 0, sxx = 0, sxy = 0, vmax = 0;
    for (int k = 0; k < n; k++) {
        const int i = first + k * stride;
        mx += xT[i], my += y[i];
        vmax = max_err(vmax, max_err(fabs(xT[i]), fabs(y[i])));
    }
    mx /= n, my /= n;
    for (int k = 0; k < n; k++) {
        const int i = first + k * stride;
        sxx += (xT[i] - mx) * (xT[i] - mx);
        sxy += (xT[i] - mx) * (y[i] - my);
    }
    f.slope = sxy / sxx;
    f.icpt = my - f.slope * mx;
    vmax = (vmax + fabs(mu) + 1) * wfac;
    const double sigma = 8 * sqrt((double)steps) * U32 * vmax, dbl = 16 * steps * U64 * vmax;
    f.tol_slope = 5 * sigma / sqrt(sxx) + dbl;
    f.tol_icpt = 5 * sigma * sqrt(1.0 / n + mx * mx / sxx) + dbl;
    return f;
}

static affine_map sampler_map(const dfs_schedule *s, dfs_sampler_kind kind, int steps, dfs_prediction pred,
                              double mu, double sd) {
    enum { NMAP = 2000 };
    float *xT = malloc(NMAP * sizeof(float)), *y = malloc(NMAP * sizeof(float));
    gauss_model m = gauss(s, pred, mu, sd);
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.kind = kind;
    c.steps = steps;
    c.prediction = pred;
    c.clip_x0 = 0;
    dfs_rng r;
    dfs_rng_seed(&r, 21);
    dfs_rng_fill_normal(&r, xT, NMAP); /* the sampler's x_T: its first NMAP normals */
    dfs_rng_seed(&r, 21);
    affine_map f = {NAN, NAN, 0, 0};
    if (dfs_sample(s, &c, gauss_fn, &m, NULL, NMAP, 1, &r, y, NULL, NULL) == DFS_OK)
        f = fit_affine(xT, y, 0, 1, NMAP, steps, mu, 1);
    free(xT);
    free(y);
    return f;
}

static void test_gaussian_recovery(void) {
    const double mu = 0.3, sd = 0.5;
    enum { NS = 20000 };
    float *x = malloc(NS * sizeof(float));
    /* tol: relative error allowed between the exact output std and s (the sampler's own
     * discretisation error; coarse deterministic samplers shrink the variance). */
    struct {
        dfs_schedule_kind sched;
        dfs_sampler_kind kind;
        int steps;
        float eta;
        dfs_prediction pred;
        int var_tilde;
        double tol;
    } runs[] = {
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDPM, 1000, 0, DFS_PRED_EPS, 1, 0.01},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDPM, 1000, 0, DFS_PRED_X0, 1, 0.01},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDPM, 1000, 0, DFS_PRED_EPS, 0, 0.01},
        {DFS_SCHEDULE_COSINE, DFS_SAMPLER_DDPM, 1000, 0, DFS_PRED_V, 1, 0.01},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDPM, 100, 0, DFS_PRED_EPS, 1, 0.08},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDPM, 100, 0, DFS_PRED_V, 1, 0.08},
        {DFS_SCHEDULE_COSINE, DFS_SAMPLER_DDPM, 100, 0, DFS_PRED_EPS, 1, 0.04},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDIM, 1000, 0, DFS_PRED_EPS, 1, 0.01},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDIM, 50, 0, DFS_PRED_EPS, 1, 0.07},
        {DFS_SCHEDULE_COSINE, DFS_SAMPLER_DDIM, 50, 0, DFS_PRED_V, 1, 0.04},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDIM, 10, 0, DFS_PRED_EPS, 1, 0.30},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDIM, 10, 0, DFS_PRED_X0, 1, 0.30},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDIM, 100, 1, DFS_PRED_EPS, 1, 0.08},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DDIM, 1000, 1, DFS_PRED_V, 1, 0.01},
        /* dpm++2m and heun: tol is the exact law's measured |std - s| / s rounded up by
         * 10-20% (linear: dpm++2m 0.215 at 10 steps, 0.047 at 20; heun 0.087, 0.019; cosine:
         * dpm++2m 0.061, 0.003). heun on cosine needs many steps: abar_999 = 2.4e-9 puts
         * sigma_max at 2e4 and the first step (to sigma 5.7 at 10 steps) overshoots by 15x in
         * std; at 50 steps the error is 0.078, at 100 0.010. */
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DPMPP_2M, 10, 0, DFS_PRED_EPS, 1, 0.23},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DPMPP_2M, 20, 0, DFS_PRED_EPS, 1, 0.06},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_DPMPP_2M, 10, 0, DFS_PRED_V, 1, 0.23},
        {DFS_SCHEDULE_COSINE, DFS_SAMPLER_DPMPP_2M, 10, 0, DFS_PRED_X0, 1, 0.08},
        {DFS_SCHEDULE_COSINE, DFS_SAMPLER_DPMPP_2M, 20, 0, DFS_PRED_EPS, 1, 0.02},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_HEUN, 10, 0, DFS_PRED_EPS, 1, 0.10},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_HEUN, 20, 0, DFS_PRED_EPS, 1, 0.03},
        {DFS_SCHEDULE_LINEAR, DFS_SAMPLER_HEUN, 10, 0, DFS_PRED_X0, 1, 0.10},
        {DFS_SCHEDULE_COSINE, DFS_SAMPLER_HEUN, 50, 0, DFS_PRED_V, 1, 0.09},
        {DFS_SCHEDULE_COSINE, DFS_SAMPLER_HEUN, 100, 0, DFS_PRED_EPS, 1, 0.02},
    };
    dfs_schedule sch[DFS_SCHEDULE_COUNT];
    for (int k = 0; k < DFS_SCHEDULE_COUNT; k++) dfs_schedule_init(&sch[k], k, 1000);
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        const dfs_schedule *s = &sch[runs[r].sched];
        gauss_model m = gauss(s, runs[r].pred, mu, sd);
        dfs_sampler_config c;
        dfs_sampler_config_default(&c);
        c.kind = runs[r].kind;
        c.steps = runs[r].steps;
        c.eta = runs[r].eta;
        c.prediction = runs[r].pred;
        c.var_beta_tilde = runs[r].var_tilde;
        c.clip_x0 = 0;
        dfs_rng rng;
        dfs_rng_seed(&rng, 100 + r);
        dfs_rng_fill_normal(&rng, x, NS); /* x_T, the sampler's first NS normals */
        double xT_max = max_abs(x, NS);
        dfs_rng_seed(&rng, 100 + r);
        dfs_status st = dfs_sample(s, &c, gauss_fn, &m, NULL, NS, 1, &rng, x, NULL, NULL);
        double mean, std, em, ev;
        mean_std(x, NS, &mean, &std);
        exact_moments(s, &c, mu, sd, &em, &ev);
        double es = sqrt(ev);
        char what[128];
        snprintf(what, sizeof what, "%s %s steps=%d eta=%g pred=%s var=%s",
                 dfs_schedule_names[runs[r].sched], dfs_sampler_names[runs[r].kind],
                 runs[r].steps, (double)runs[r].eta, dfs_prediction_names[runs[r].pred],
                 runs[r].var_tilde ? "beta_tilde" : "beta");
        CHECK(st == DFS_OK, "%s: status %d", what, st);
        /* heun: two evaluations per step except the last (Euler) one. */
        int want_calls = runs[r].kind == DFS_SAMPLER_HEUN ? 2 * runs[r].steps - 1 : runs[r].steps;
        CHECK(m.calls == want_calls, "%s: %d model calls, want %d", what, m.calls, want_calls);
        /* The implementation: simulation vs exact output law, within 5 standard errors (a
         * false alarm for 1 seed in ~2 million) plus the float rounding of the run, which moves
         * no sample, hence neither mean nor std, by more than run_round_bound. */
        double se_m = es / sqrt(NS), se_s = es / sqrt(2.0 * (NS - 1));
        /* vmax: the chains' states have std <= 1 and start at x_T; the ancestral noise is of
         * x_T's size, so |x_T|max + |out|max + |mu| + 1 bounds them */
        double rnd = run_round_bound(runs[r].steps, max_abs(x, NS) + xT_max + mu + 1);
        CHECK(fabs(mean - em) <= 5 * se_m + rnd, "%s: mean %.4f, exact %.4f", what, mean, em);
        CHECK(fabs(std - es) <= 5 * se_s + rnd, "%s: std %.4f, exact %.4f", what, std, es);
        /* The sampler: recovers the data law, mean within 2% of s and std within tol. These
         * are no rounding tolerances but the discretisation error each sampler is allowed at its
         * step count (a specification, met by the exact law computed above in double, which is
         * the same on every machine to ~1e-12). */
        CHECK(fabs(em - mu) <= 0.02 * sd, "%s: exact mean %.4f want %.4f", what, em, mu);
        CHECK(fabs(es - sd) <= runs[r].tol * sd, "%s: exact std %.4f want %.4f", what, es, sd);
        /* And directly: the samples themselves against (mu, s). */
        CHECK(fabs(mean - mu) <= 0.02 * sd + 5 * se_m, "%s: mean %.4f want %.4f", what, mean, mu);
        CHECK(fabs(std - sd) <= runs[r].tol * sd + 5 * se_s, "%s: std %.4f want %.4f", what, std,
              sd);
        if (getenv("DFS_TEST_VERBOSE"))
            printf("  %-56s mean %.4f (exact %.4f) std %.4f (exact %.4f)\n", what, mean, em, std,
                   es);
    }
    /* Discretisation error shrinks with the number of steps (DDIM eta = 0, linear), measured on
     * dfs_sample itself: the fitted map of the real sampler equals the exact map written from
     * the paper (exact_moments) to within its rounding bound, and its std error |slope - s|
     * falls at every step count by more than the two rounding bounds. */
    double prev = 1e9, prev_tol = 0;
    int shrinks = 1;
    const int nsteps[] = {5, 10, 25, 50, 100, 250, 1000};
    for (int k = 0; k < 7; k++) {
        dfs_sampler_config c;
        dfs_sampler_config_default(&c);
        c.kind = DFS_SAMPLER_DDIM;
        c.steps = nsteps[k];
        double em, ev;
        exact_moments(&sch[0], &c, mu, sd, &em, &ev);
        affine_map f = sampler_map(&sch[0], DFS_SAMPLER_DDIM, nsteps[k], DFS_PRED_EPS, mu, sd);
        if (getenv("DFS_TEST_VERBOSE"))
            printf("  ddim %4d steps: map slope %.6f intercept %.6f, off the exact map by %.2g %.2g, rounding %.2g %.2g\n",
                   nsteps[k], f.slope, f.icpt, f.slope - sqrt(ev), f.icpt - em, f.tol_slope, f.tol_icpt);
        CHECK(fabs(f.slope - sqrt(ev)) <= f.tol_slope && fabs(f.icpt - em) <= f.tol_icpt,
              "ddim %d steps: dfs_sample maps x_T to %.6f x_T + %.6f, the exact step map %.6f x_T + %.6f "
              "(rounding %.2g, %.2g)", nsteps[k], f.slope, f.icpt, sqrt(ev), em, f.tol_slope, f.tol_icpt);
        double err = fabs(f.slope - sd);
        if (!(err + f.tol_slope < prev - prev_tol)) shrinks = 0;
        prev = err, prev_tol = f.tol_slope;
    }
    CHECK(shrinks && prev + prev_tol < 0.005 * sd, "DDIM std error decreases with steps (1000: %g)", prev);
    for (int k = 0; k < DFS_SCHEDULE_COUNT; k++) dfs_schedule_free(&sch[k]);
    free(x);
}

/* ---- DDPM's noise scale: the law of a lower-temperature sampler ----------------------------- */

/* With the exact Gaussian model, DDPM with noise scale g is affine in x_T plus Gaussian noise,
 * so its output law is N(m, v) with m, v from exact_moments (each step's noise variance times
 * g^2). The real sampler's samples match that law within 5 standard errors plus rounding, as in
 * test_gaussian_recovery; g < 1 narrows the law below the data's (the price of the lower
 * temperature, by a margin far outside the Monte Carlo error), and g = 1 is the plain sampler,
 * bit for bit. */
static void test_noise_scale(void) {
    const double mu = 0.3, sd = 0.5;
    enum { NS = 20000 };
    float *x = malloc(NS * sizeof(float)), *y = malloc(NS * sizeof(float));
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000);
    gauss_model m = gauss(&s, DFS_PRED_EPS, mu, sd);
    const float scales[] = {1.0f, 0.5f, 0.0f};
    double es1 = 0;
    for (int k = 0; k < 3; k++) {
        dfs_sampler_config c;
        dfs_sampler_config_default(&c);
        c.steps = 200;
        c.clip_x0 = 0;
        c.noise_scale = scales[k];
        dfs_rng rng;
        dfs_rng_seed(&rng, 7);
        dfs_rng_fill_normal(&rng, y, NS);
        const double xT_max = max_abs(y, NS);
        dfs_rng_seed(&rng, 7);
        dfs_status st = dfs_sample(&s, &c, gauss_fn, &m, NULL, NS, 1, &rng, x, NULL, NULL);
        double mean, std, em, ev;
        mean_std(x, NS, &mean, &std);
        exact_moments(&s, &c, mu, sd, &em, &ev);
        const double es = sqrt(ev), se_m = es / sqrt(NS), se_s = es / sqrt(2.0 * (NS - 1));
        const double rnd = run_round_bound(c.steps, max_abs(x, NS) + xT_max + mu + 1);
        CHECK(st == DFS_OK, "noise scale %g: status %d", (double)scales[k], st);
        CHECK(fabs(mean - em) <= 5 * se_m + rnd, "noise scale %g: mean %.4f, exact %.4f", (double)scales[k], mean, em);
        CHECK(fabs(std - es) <= 5 * se_s + rnd, "noise scale %g: std %.4f, exact %.4f", (double)scales[k], std, es);
        if (k == 0) {
            es1 = es;
            CHECK(fabs(es - sd) <= 0.04 * sd, "noise scale 1 recovers the data's std: %.4f", es);
            dfs_sampler_config d;
            dfs_sampler_config_default(&d);
            d.steps = 200;
            d.clip_x0 = 0;
            dfs_rng_seed(&rng, 7);
            dfs_sample(&s, &d, gauss_fn, &m, NULL, NS, 1, &rng, y, NULL, NULL);
            CHECK(!memcmp(x, y, NS * sizeof(float)), "noise scale 1 is the default sampler, bit for bit");
        } else {
            CHECK(es < es1 - 0.05 * sd && std < es1 - 0.05 * sd + 5 * se_s + rnd,
                  "noise scale %g narrows the law: std %.4f (exact %.4f) against %.4f at 1", (double)scales[k],
                  std, es, es1);
            CHECK(fabs(em - mu) <= 0.02 * sd, "noise scale %g keeps the mean: exact %.4f", (double)scales[k], em);
        }
    }
    dfs_schedule_free(&s);
    free(x);
    free(y);
}

/* ---- higher-order solvers: accuracy vs DDIM and convergence ------------------------------- */

/* The real sampler's map for the Gaussian model (mu 0.3, s 0.5) on the linear schedule, checked
 * against the exact map written from the papers (exact_moments: DDIM eq. 12, DPM-Solver++
 * Algorithm 2, EDM Algorithm 1) to within its rounding bound: so a wrong coefficient in a
 * sampler step fails here, not only in the Monte Carlo of test_gaussian_recovery. */
static affine_map checked_map(const dfs_schedule *s, dfs_sampler_kind kind, int steps) {
    affine_map f = sampler_map(s, kind, steps, DFS_PRED_EPS, 0.3, 0.5);
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.kind = kind;
    c.steps = steps;
    double em, ev;
    exact_moments(s, &c, 0.3, 0.5, &em, &ev);
    CHECK(fabs(f.slope - sqrt(ev)) <= f.tol_slope && fabs(f.icpt - em) <= f.tol_icpt,
          "%s %d steps: dfs_sample maps x_T to %.6f x_T + %.6f, the exact step map %.6f x_T + %.6f "
          "(rounding %.2g, %.2g)", dfs_sampler_names[kind], steps, f.slope, f.icpt, sqrt(ev), em, f.tol_slope,
          f.tol_icpt);
    return f;
}

static void test_higher_order(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000);
    const double sd = 0.5;
    /* At the same number of steps the second-order solvers are closer to N(mu, s^2) than DDIM:
     * the std of each real sampler's output law (its fitted map's slope, no sampling error),
     * with the rounding bounds counted against the claim. Heun spends 2 steps - 1 network
     * evaluations; dpm++2m the same as DDIM. */
    const int cmp_steps[] = {10, 20};
    for (int k = 0; k < 2; k++) {
        int st = cmp_steps[k];
        affine_map d = checked_map(&s, DFS_SAMPLER_DDIM, st), p = checked_map(&s, DFS_SAMPLER_DPMPP_2M, st),
                   h = checked_map(&s, DFS_SAMPLER_HEUN, st);
        double ed = fabs(d.slope - sd), ep = fabs(p.slope - sd), eh = fabs(h.slope - sd);
        if (getenv("DFS_TEST_VERBOSE"))
            printf("  linear %d steps: std/s ddim %.4f dpm++2m %.4f heun %.4f\n", st, d.slope / sd, p.slope / sd,
                   h.slope / sd);
        CHECK(ep + p.tol_slope < ed - d.tol_slope, "%d steps: |std/s - 1| dpm++2m %.4f < ddim %.4f", st, ep / sd,
              ed / sd);
        CHECK(eh + h.tol_slope < ed - d.tol_slope, "%d steps: |std/s - 1| heun %.4f < ddim %.4f", st, eh / sd,
              ed / sd);
    }
    /* Second order: the error falls faster than DDIM's first order from 20 to 100 steps, each
     * ratio taken at the end of its rounding interval that is least favourable to the claim. */
    {
        affine_map d20 = checked_map(&s, DFS_SAMPLER_DDIM, 20), d100 = checked_map(&s, DFS_SAMPLER_DDIM, 100);
        affine_map p20 = checked_map(&s, DFS_SAMPLER_DPMPP_2M, 20), p100 = checked_map(&s, DFS_SAMPLER_DPMPP_2M, 100);
        affine_map h20 = checked_map(&s, DFS_SAMPLER_HEUN, 20), h100 = checked_map(&s, DFS_SAMPLER_HEUN, 100);
        double ed20 = fabs(d20.slope - sd), ed100 = fabs(d100.slope - sd);
        double ep20 = fabs(p20.slope - sd), ep100 = fabs(p100.slope - sd);
        double eh20 = fabs(h20.slope - sd), eh100 = fabs(h100.slope - sd);
        double rd = (ed20 + d20.tol_slope) / (ed100 - d100.tol_slope);
        double rp = (ep20 - p20.tol_slope) / (ep100 + p100.tol_slope);
        double rh = (eh20 - h20.tol_slope) / (eh100 + h100.tol_slope);
        if (getenv("DFS_TEST_VERBOSE"))
            printf("  linear error 20 -> 100 steps: ddim %.2e -> %.2e, dpm++2m %.2e -> %.2e, "
                   "heun %.2e -> %.2e\n", ed20 / sd, ed100 / sd, ep20 / sd, ep100 / sd, eh20 / sd, eh100 / sd);
        CHECK(rp > rd, "dpm++2m error ratio 20/100 steps %.1f > ddim %.1f", rp, rd);
        CHECK(rh > rd, "heun error ratio 20/100 steps %.1f > ddim %.1f", rh, rd);
    }

    /* Each solver converges to the same ODE solution: with the same starting noise the
     * distance to DDIM(eta 0) with many steps shrinks as steps grow. The reference is the full
     * chain (T = 1000 steps): its own error (rms 1.3e-3 from the exact flow below; 500 steps:
     * ~2.6e-3) must stay under heun's at 100 steps for the sequence to keep falling. (The
     * distances below fall by 1.1x to 9x per row, far more than the ~1e-5 rms of rounding.) For
     * Gaussian data the probability-flow ODE is also solved exactly: in x~ = x / sqrt(abar),
     * sigma = sqrt(1/abar - 1), dx~/dsigma = sigma (x~ - mu) / (s^2 + sigma^2), so
     * x0 = mu + (x~_T - mu) s / sqrt(s^2 + sigma_T^2). All three converge to that too. */
    enum { NS = 4000, NREF = 1000 };
    float *ref = malloc(NS * sizeof(float)), *y = malloc(NS * sizeof(float));
    double *ode = malloc(NS * sizeof(double));
    {
        const double mu = 0.3, sd = 0.5, aT = s.abar[999], sT2 = 1 / aT - 1;
        dfs_rng r0;
        dfs_rng_seed(&r0, 21);
        dfs_rng_fill_normal(&r0, y, NS); /* x_T: the samplers' first NS normals */
        for (int i = 0; i < NS; i++)
            ode[i] = mu + (y[i] / sqrt(aT) - mu) * sd / sqrt(sd * sd + sT2);
    }
    gauss_model m = gauss(&s, DFS_PRED_EPS, 0.3, 0.5);
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.clip_x0 = 0;
    c.kind = DFS_SAMPLER_DDIM;
    c.steps = NREF;
    dfs_rng r;
    dfs_rng_seed(&r, 21);
    dfs_sample(&s, &c, gauss_fn, &m, NULL, NS, 1, &r, ref, NULL, NULL);
    /* The reference's distance to the exact ODE solution is its discretisation error, known in
     * closed form: the exact DDIM map (exact_moments) and the exact flow are both affine in x_T,
     * so the rms of their difference over these x_T is computed here; the real sampler must give
     * it up to its rounding, an rms of at most sigma = 8 sqrt(steps) u32 vmax per sample under
     * the probabilistic model of sampler_map (twice that allowed). */
    double dref = 0, dwant = 0, yT_max = 0;
    {
        const double mu = 0.3, sd = 0.5, aT = s.abar[999], sT2 = 1 / aT - 1;
        const double ao = sd / (sqrt(aT) * sqrt(sd * sd + sT2)), bo = mu - mu * sd / sqrt(sd * sd + sT2);
        double em, ev;
        exact_moments(&s, &c, mu, sd, &em, &ev);
        dfs_rng r0;
        dfs_rng_seed(&r0, 21);
        dfs_rng_fill_normal(&r0, y, NS);
        for (int i = 0; i < NS; i++) {
            double dd = (sqrt(ev) - ao) * y[i] + (em - bo);
            dwant += dd * dd;
            yT_max = max_err(yT_max, fabs(y[i]));
        }
        dwant = sqrt(dwant / NS);
    }
    for (int i = 0; i < NS; i++) dref += (ref[i] - ode[i]) * (ref[i] - ode[i]);
    dref = sqrt(dref / NS);
    double dtol = 2 * 8 * sqrt((double)NREF) * U32 * (max_err(yT_max, max_abs(ref, NS)) + 0.3 + 1);
    CHECK(fabs(dref - dwant) <= dtol, "ddim(%d steps) rms distance to the exact ODE solution %.4e, exact maps %.4e (rounding %.2g)",
          NREF, dref, dwant, dtol);
    const dfs_sampler_kind kinds[] = {DFS_SAMPLER_DDIM, DFS_SAMPLER_DPMPP_2M, DFS_SAMPLER_HEUN};
    const int conv_steps[] = {10, 20, 50, 100};
    double dist[3][4], dode[3][4];
    for (int k = 0; k < 3; k++) {
        for (int j = 0; j < 4; j++) {
            c.kind = kinds[k];
            c.steps = conv_steps[j];
            dfs_rng_seed(&r, 21);
            dfs_sample(&s, &c, gauss_fn, &m, NULL, NS, 1, &r, y, NULL, NULL);
            double d2 = 0, e2 = 0;
            for (int i = 0; i < NS; i++) {
                d2 += ((double)y[i] - ref[i]) * ((double)y[i] - ref[i]);
                e2 += (y[i] - ode[i]) * (y[i] - ode[i]);
            }
            dist[k][j] = sqrt(d2 / NS);
            dode[k][j] = sqrt(e2 / NS);
        }
        if (getenv("DFS_TEST_VERBOSE"))
            printf("  rms distance to ddim %d / exact ODE: %-8s %.2e %.2e %.2e %.2e / %.2e %.2e "
                   "%.2e %.2e\n", NREF, dfs_sampler_names[kinds[k]], dist[k][0], dist[k][1],
                   dist[k][2], dist[k][3], dode[k][0], dode[k][1], dode[k][2], dode[k][3]);
        CHECK(dist[k][1] < dist[k][0] && dist[k][2] < dist[k][1] && dist[k][3] < dist[k][2],
              "%s converges to ddim(%d steps): %.2e %.2e %.2e %.2e", dfs_sampler_names[kinds[k]],
              NREF, dist[k][0], dist[k][1], dist[k][2], dist[k][3]);
        CHECK(dode[k][1] < dode[k][0] && dode[k][2] < dode[k][1] && dode[k][3] < dode[k][2],
              "%s converges to the exact ODE solution: %.2e %.2e %.2e %.2e",
              dfs_sampler_names[kinds[k]], dode[k][0], dode[k][1], dode[k][2], dode[k][3]);
    }
    for (int j = 0; j < 4; j++)
        CHECK(dist[1][j] < dist[0][j] && dist[2][j] < dist[0][j],
              "%d steps: dpm++2m (%.2e) and heun (%.2e) closer to the ODE solution than ddim "
              "(%.2e)", conv_steps[j], dist[1][j], dist[2][j], dist[0][j]);
    for (int j = 0; j < 4; j++)
        CHECK(dode[1][j] < dode[0][j] && dode[2][j] < dode[0][j],
              "%d steps: dpm++2m (%.2e) and heun (%.2e) closer to the exact ODE solution than "
              "ddim (%.2e)", conv_steps[j], dode[1][j], dode[2][j], dode[0][j]);
    free(ref);
    free(y);
    free(ode);
    dfs_schedule_free(&s);
}

/* ---- classifier-free guidance ------------------------------------------------------------- */

/* The exact output law (mean, std) of a sampler whose eps is that of data N(mean, 0.5^2). */
static void guided_law(const dfs_schedule *s, const dfs_sampler_config *c, double mean, double *em,
                       double *es) {
    double ev;
    exact_moments(s, c, mean, 0.5, em, &ev);
    *es = sqrt(ev);
}

/* Tolerances of a class's sample mean and std (n samples, population std) against the exact
 * law: 5 standard errors (es / sqrt(n), es / sqrt(2 (n - 1))), the std's 1/(2n) bias from the
 * divisor n, and the run's float rounding (run_round_bound; guidance mixes two rounded eps as
 * eu + w (ec - eu), which weighs their roundings by up to 1 + 2 |w|). vmax bounds the states. */
static void guided_tol(const dfs_sampler_config *c, double es, int n, double vmax, double *tol_m,
                       double *tol_s) {
    double rnd = run_round_bound(c->steps, vmax * (1 + 2 * fabs((double)c->guidance)));
    *tol_m = 5 * es / sqrt((double)n) + rnd;
    *tol_s = 5 * es / sqrt(2.0 * (n - 1)) + es / (2.0 * n) + rnd;
}

/* Two classes with means +0.5 / -0.5 and s = 0.5; the null model is N(0, s^2) (ignoring that
 * the true unconditional is a mixture). eps is linear in the data mean, so the guided
 * eps = eps(0) + w (eps(mu_c) - eps(0)) = eps(w mu_c): samples are N(w mu_c, s^2). */
static void test_guidance(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000);
    static const double cls_mu[2] = {0.5, -0.5};
    enum { NS = 10000 };
    float *x = malloc(NS * sizeof(float));
    int *labels = malloc(NS * sizeof(int));
    for (int i = 0; i < NS; i++) labels[i] = i & 1;
    const float ws[] = {1.0f, 0.0f, 3.0f};
    const dfs_prediction preds[] = {DFS_PRED_EPS, DFS_PRED_X0, DFS_PRED_V};
    for (int k = 0; k < 3; k++) {
        float w = ws[k];
        gauss_model m = gauss(&s, preds[k], 0.0, 0.5);
        m.cls_mu = cls_mu;
        m.null_label = 2;
        if (w != 1.0f) {
            m.expect_labels = labels;
            m.nexpect = NS;
        }
        dfs_sampler_config c;
        dfs_sampler_config_default(&c);
        c.kind = DFS_SAMPLER_DDPM;
        c.steps = 1000;
        c.guidance = w;
        c.clip_x0 = 0;
        c.prediction = preds[k];
        c.null_label = 2;
        dfs_rng rng;
        dfs_rng_seed(&rng, 77);
        CHECK(dfs_sample(&s, &c, gauss_fn, &m, labels, NS, 1, &rng, x, NULL, NULL) == DFS_OK,
              "guided sample");
        int want_n = w != 1.0f ? 2 * NS : NS;
        CHECK(m.calls == 1000 && m.max_n == want_n && m.min_n == want_n,
              "w=%g: %d calls of %d..%d items, want 1000 of %d", (double)w, m.calls, m.min_n,
              m.max_n, want_n);
        CHECK(m.labels_ok, "w=%g: labels are the conditional ones then null_label", (double)w);
        for (int cls = 0; cls < 2; cls++) {
            double sum = 0, sum2 = 0;
            for (int i = cls; i < NS; i += 2) sum += x[i], sum2 += (double)x[i] * x[i];
            double mean = sum / (NS / 2), std = sqrt(sum2 / (NS / 2) - mean * mean);
            double want = w * cls_mu[cls], em, es;
            guided_law(&s, &c, want, &em, &es);
            double tol_m, tol_s;
            guided_tol(&c, es, NS / 2, max_abs(x, NS) + 4 + fabs(want) + 1, &tol_m, &tol_s);
            CHECK(fabs(mean - em) <= tol_m, "w=%g class %d: mean %.4f want %.4f (exact law of data mean %.4f) (pred %s)",
                  (double)w, cls, mean, em, want, dfs_prediction_names[preds[k]]);
            CHECK(fabs(std - es) <= tol_s, "w=%g class %d: std %.4f want %.4f", (double)w, cls, std, es);
            if (w > 1)
                CHECK(fabs(mean) > fabs(cls_mu[cls]) + 0.25,
                      "w=%g pushes class %d beyond its mean (%.4f)", (double)w, cls, mean);
        }
    }
    /* The ODE solvers take guidance the same way (guided eps, then x0): 50 linear steps,
     * w = 3, model calls of 2n items, and each class's map x_T -> x_0 (deterministic, so fitted
     * without sampling error, see sampler_map) is the exact map of an unguided run on data of
     * mean w mu_c: the law N(w mu_c, s^2) up to the solver's discretisation error at 50 steps. */
    const dfs_sampler_kind gk[] = {DFS_SAMPLER_DPMPP_2M, DFS_SAMPLER_HEUN};
    for (int k = 0; k < 2; k++) {
        gauss_model m = gauss(&s, DFS_PRED_EPS, 0.0, 0.5);
        m.cls_mu = cls_mu;
        m.null_label = 2;
        m.expect_labels = labels;
        m.nexpect = NS;
        dfs_sampler_config c;
        dfs_sampler_config_default(&c);
        c.kind = gk[k];
        c.steps = 50;
        c.guidance = 3.0f;
        c.clip_x0 = 0;
        c.null_label = 2;
        dfs_rng rng;
        float *xT = malloc(NS * sizeof(float));
        dfs_rng_seed(&rng, 78);
        dfs_rng_fill_normal(&rng, xT, NS); /* x_T: the sampler's first NS normals */
        dfs_rng_seed(&rng, 78);
        CHECK(dfs_sample(&s, &c, gauss_fn, &m, labels, NS, 1, &rng, x, NULL, NULL) == DFS_OK,
              "%s guided sample", dfs_sampler_names[gk[k]]);
        int want_calls = gk[k] == DFS_SAMPLER_HEUN ? 99 : 50;
        CHECK(m.calls == want_calls && m.min_n == 2 * NS && m.max_n == 2 * NS && m.labels_ok,
              "%s guided: %d calls of %d..%d items, labels ok %d", dfs_sampler_names[gk[k]],
              m.calls, m.min_n, m.max_n, m.labels_ok);
        for (int cls = 0; cls < 2; cls++) {
            double want = 3.0 * cls_mu[cls], em, es;
            guided_law(&s, &c, want, &em, &es);
            affine_map f = fit_affine(xT, x, cls, 2, NS / 2, c.steps, want, 1 + 2 * 3.0);
            if (getenv("DFS_TEST_VERBOSE"))
                printf("  %s w=3 class %d: law N(%.6f, %.6f^2), exact N(%.6f, %.6f^2), rounding %.2g %.2g\n",
                       dfs_sampler_names[gk[k]], cls, f.icpt, f.slope, em, es, f.tol_icpt, f.tol_slope);
            CHECK(fabs(f.icpt - em) <= f.tol_icpt, "%s w=3 class %d: mean %.6f want %.6f (exact law of data mean %.4f)",
                  dfs_sampler_names[gk[k]], cls, f.icpt, em, want);
            CHECK(fabs(f.slope - es) <= f.tol_slope, "%s w=3 class %d: std %.6f want %.6f", dfs_sampler_names[gk[k]],
                  cls, f.slope, es);
            CHECK(fabs(f.icpt) > fabs(cls_mu[cls]) + 0.25, "%s w=3 pushes class %d beyond its mean (%.4f)",
                  dfs_sampler_names[gk[k]], cls, f.icpt);
        }
        free(xT);
    }
    /* Guidance without labels: one unconditional pass of n items. */
    gauss_model m = gauss(&s, DFS_PRED_EPS, 0.0, 0.5);
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.steps = 20;
    c.guidance = 3.0f;
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    dfs_sample(&s, &c, gauss_fn, &m, NULL, 16, 1, &rng, x, NULL, NULL);
    CHECK(m.calls == 20 && m.max_n == 16, "guidance with NULL labels: single pass");
    free(x);
    free(labels);
    dfs_schedule_free(&s);
}

int main(void) {
    test_schedule_values();
    test_validation();
    test_forward_chain();
    test_posterior();
    test_conversions();
    test_timesteps();
    test_determinism();
    test_ddim_eta1_is_ddpm();
    test_first_order_is_ddim();
    test_one_step();
    test_gaussian_recovery();
    test_noise_scale();
    test_higher_order();
    test_guidance();
    return check_summary("test_diffusion");
}
