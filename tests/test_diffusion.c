/* test_diffusion.c - schedules, the forward process, posteriors, parameterisations and the
 * DDPM / DDIM / DPM-Solver++(2M) / Heun samplers.
 *
 * The sampler checks use data x0 ~ N(mu, s^2) per dimension, for which the optimal noise
 * predictor is known in closed form: x_t | x0 ~ N(sqrt(a) x0, 1-a) with a = abar_t gives
 *   E[eps | x_t] = sqrt(1-a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a),
 * so a sampler run with this "model" must reproduce N(mu, s^2) up to discretisation error. */
#include "check.h"
#include "diffuse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    CHECK_CLOSE(s.beta[0], 1e-4, 1e-15, 0, "linear beta_0");
    CHECK_CLOSE(s.beta[999], 0.02, 1e-15, 0, "linear beta_{T-1}");
    CHECK_CLOSE(s.beta[500] - s.beta[499], (0.02 - 1e-4) / 999, 1e-15, 0, "linear spacing");
    double prod = 1.0;
    int mono = 1, consistent = 1;
    for (int t = 0; t < 1000; t++) {
        prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * t / 999.0);
        if (t > 0 && !(s.abar[t] < s.abar[t - 1])) mono = 0;
        if (fabs(s.alpha[t] - (1.0 - s.beta[t])) > 1e-15) consistent = 0;
        if (fabs(s.abar_prev[t] - (t ? s.abar[t - 1] : 1.0)) > 1e-15) consistent = 0;
    }
    CHECK(mono, "linear abar must decrease strictly");
    CHECK(consistent, "alpha = 1 - beta and abar_prev = shifted abar");
    CHECK_CLOSE(s.abar[999], prod, 0, 1e-10, "linear abar_{T-1} vs double product");
    CHECK_CLOSE(s.abar[999], 4.035e-5, 0, 2e-3, "linear abar_{T-1} literal");
    CHECK_CLOSE(s.beta_tilde[0], 0.0, 1e-20, 0, "beta_tilde_0 = 0");
    CHECK_CLOSE(s.post_c0[0], 1.0, 1e-12, 0, "posterior at t=0 is x0 (c0)");
    CHECK_CLOSE(s.post_ct[0], 0.0, 1e-12, 0, "posterior at t=0 is x0 (ct)");
    dfs_schedule_free(&s);
    CHECK(s.beta == NULL && s.T == 0, "free clears the struct");
    dfs_schedule_free(&s); /* twice is safe */

    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_COSINE, 1000) == DFS_OK, "init cosine");
    /* abar_0 = f(1)/f(0) computed here independently from IDDPM eq. 17. */
    double ss = 0.008, f0 = pow(cos(ss / (1 + ss) * M_PI / 2), 2);
    double f1 = pow(cos((1.0 / 1000 + ss) / (1 + ss) * M_PI / 2), 2);
    double f500 = pow(cos((500.0 / 1000 + ss) / (1 + ss) * M_PI / 2), 2);
    CHECK_CLOSE(s.abar[0], f1 / f0, 1e-12, 0, "cosine abar_0 = f(1)/f(0)");
    CHECK(s.abar[0] > 0.9999 && s.abar[0] < 1.0, "cosine abar_0 = %.9g close to 1", s.abar[0]);
    CHECK_CLOSE(s.abar[499], f500 / f0, 1e-12, 0, "cosine abar at t=500 (paper index)");
    CHECK_CLOSE(s.abar[499], 0.4923, 2e-3, 0, "cosine abar mid-way is about 1/2");
    int ok = 1;
    mono = 1;
    for (int t = 0; t < 1000; t++) {
        if (!(s.beta[t] > 0 && s.beta[t] <= 0.999)) ok = 0;
        if (t > 0 && !(s.abar[t] < s.abar[t - 1])) mono = 0;
    }
    CHECK(ok, "cosine betas in (0, 0.999]");
    CHECK(mono, "cosine abar must decrease strictly");
    CHECK_CLOSE(s.beta[999], 0.999, 1e-12, 0, "cosine last beta clipped at 0.999");
    CHECK(s.abar[999] < 1e-6, "cosine abar_{T-1} = %g should be ~0", s.abar[999]);
    dfs_schedule_free(&s);

    /* T = 1 and T = 100000 are allowed. */
    CHECK(dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1) == DFS_OK, "T = 1");
    CHECK_CLOSE(s.beta[0], 1e-4, 1e-15, 0, "T = 1 linear beta");
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
              c.var_beta_tilde == 1 && c.guidance == 1.0f && c.clip_x0 == 1 &&
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
        double se_m = sqrt(want_v / NC), se_v = want_v * sqrt(2.0 / NC);
        char what[64];
        snprintf(what, sizeof what, "iterated mean at t=%d", t);
        CHECK_CLOSE(m, want_m, 5 * se_m + 1e-5, 0, what);
        snprintf(what, sizeof what, "iterated var at t=%d", t);
        CHECK_CLOSE(sd * sd, want_v, 5 * se_v, 0, what);
    }
    /* dfs_q_sample is eq. 4 exactly. */
    float x0[3] = {0.5f, -1.0f, 0.0f}, ee[3] = {1.0f, 0.25f, -2.0f}, xt[3];
    dfs_q_sample(&s, 300, x0, ee, xt, 3);
    for (int i = 0; i < 3; i++)
        CHECK_CLOSE(xt[i], sqrt(s.abar[300]) * x0[i] + sqrt(1 - s.abar[300]) * ee[i], 1e-6, 0,
                    "q_sample eq. 4");
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
            snprintf(what, sizeof what, "%s posterior mean t=%d", dfs_schedule_names[kind], t);
            CHECK_CLOSE(mean, want_mean, 1e-6, 1e-6, what);
            snprintf(what, sizeof what, "%s posterior var t=%d", dfs_schedule_names[kind], t);
            CHECK_CLOSE(var, want_var, 1e-12, 1e-9, what);
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
            double mx = 0, my = 0, sxx = 0, sxy = 0;
            for (int i = 0; i < NM; i++) mx += xt[i], my += xp[i];
            mx /= NM, my /= NM;
            for (int i = 0; i < NM; i++) {
                sxx += (xt[i] - mx) * (xt[i] - mx);
                sxy += (xt[i] - mx) * (xp[i] - my);
            }
            double slope = sxy / sxx, icpt = my - slope * mx, rss = 0;
            for (int i = 0; i < NM; i++) {
                double r = xp[i] - icpt - slope * xt[i];
                rss += r * r;
            }
            double rv = rss / (NM - 2), bt = s.beta_tilde[t];
            double se_slope = sqrt(bt / sxx), se_icpt = sqrt(bt * (1.0 / NM + mx * mx / sxx));
            char what[80];
            snprintf(what, sizeof what, "%s MC posterior slope t=%d", dfs_schedule_names[kind], t);
            CHECK_CLOSE(slope, s.post_ct[t], 5 * se_slope + 1e-6, 0, what);
            snprintf(what, sizeof what, "%s MC posterior intercept t=%d", dfs_schedule_names[kind],
                     t);
            CHECK_CLOSE(icpt, s.post_c0[t] * 0.8f, 5 * se_icpt + 1e-6, 0, what);
            snprintf(what, sizeof what, "%s MC posterior var t=%d", dfs_schedule_names[kind], t);
            CHECK_CLOSE(rv, bt, 1e-9, 5 * sqrt(2.0 / NM) + 1e-3, what);
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
    double worst[DFS_PRED_COUNT] = {0};
    int v_ok = 1;
    for (int k = 0; k < 6; k++) {
        int t = ts[k];
        for (int i = 0; i < NV; i++) {
            x0[i] = dfs_rng_uniform(&rng) * 2 - 1;
            eps[i] = dfs_rng_normal(&rng);
        }
        dfs_q_sample(&s, t, x0, eps, xt, NV);
        for (int kind = 0; kind < DFS_PRED_COUNT; kind++) {
            dfs_pred_target(&s, kind, t, x0, eps, tgt, NV);
            dfs_pred_to_eps_x0(&s, kind, t, xt, tgt, e2, z2, NV);
            for (int i = 0; i < NV; i++) {
                /* x0 from eps is ill-conditioned where abar -> 0 and eps from x0 where abar -> 1:
                 * compare each in the direction the parameterisation is stable, scaled by the
                 * conditioning, i.e. check x_t reconstruction and the stable quantity. */
                double a = s.abar[t], sa = sqrt(a), sb = sqrt(1 - a);
                double rec = sa * z2[i] + sb * e2[i] - xt[i]; /* eq. 4 consistency */
                double d = fabs(rec);
                if (kind == DFS_PRED_EPS) d = fmax(d, fabs(e2[i] - eps[i]));
                if (kind == DFS_PRED_X0) d = fmax(d, fabs(z2[i] - x0[i]));
                if (kind == DFS_PRED_V)
                    d = fmax(d, fmax(fabs(z2[i] - x0[i]), fabs(e2[i] - eps[i])));
                if (d > worst[kind]) worst[kind] = d;
                if (kind == DFS_PRED_V && fabs(tgt[i] - (sa * eps[i] - sb * x0[i])) > 1e-6)
                    v_ok = 0;
            }
        }
        /* Round trips through the target at moderate t: all of eps and x0 to 1e-5. */
        if (t >= 100 && t <= 900) {
            for (int kind = 0; kind < DFS_PRED_COUNT; kind++) {
                dfs_pred_target(&s, kind, t, x0, eps, tgt, NV);
                dfs_pred_to_eps_x0(&s, kind, t, xt, tgt, e2, z2, NV);
                double d = 0;
                for (int i = 0; i < NV; i++)
                    d = fmax(d, fmax(fabs(z2[i] - x0[i]), fabs(e2[i] - eps[i])));
                CHECK(d < 1e-5, "%s round trip at t=%d: max err %g", dfs_prediction_names[kind],
                      t, d);
            }
        }
    }
    for (int kind = 0; kind < DFS_PRED_COUNT; kind++)
        CHECK(worst[kind] < 1e-5, "%s conversions: max err %g", dfs_prediction_names[kind],
              worst[kind]);
    CHECK(v_ok, "v target = sqrt(abar) eps - sqrt(1-abar) x0");
    /* v-prediction: x0 = sqrt(a) x_t - sqrt(1-a) v exactly (hand values). */
    float xv = 0.5f, vv = -0.25f, ev, zv;
    dfs_pred_to_eps_x0(&s, DFS_PRED_V, 400, &xv, &vv, &ev, &zv, 1);
    double a = s.abar[400];
    CHECK_CLOSE(zv, sqrt(a) * 0.5 - sqrt(1 - a) * -0.25, 1e-7, 0, "v -> x0");
    CHECK_CLOSE(ev, sqrt(1 - a) * 0.5 + sqrt(a) * -0.25, 1e-7, 0, "v -> eps");
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
        for (int i = 0; i < NS; i++) d = fmax(d, fabs(a[i] - b[i]));
        CHECK(d < 1e-4, "DDIM eta=1 vs DDPM, %d steps: max diff %g", steps[k], d);
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
            for (int i = 0; i < NS; i++) d = fmax(d, fabs(a[i] - b[i]));
            if ((kind == DFS_SAMPLER_DPMPP_2M && steps <= 3) || steps == 1)
                CHECK(d < 1e-5, "%s %d steps equals ddim: max diff %g", dfs_sampler_names[kind],
                      steps, d);
            else
                CHECK(d > 1e-3, "%s %d steps differs from ddim: max diff %g",
                      dfs_sampler_names[kind], steps, d);
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
        int ok = 1;
        for (int i = 0; i < 8; i++) ok &= fabsf(x[i] - 0.25f) < 1e-6f;
        CHECK(ok, "%s one step returns x0 (got %g)", dfs_sampler_names[kind], x[0]);
        dfs_sample(&s, &c, x0_const_fn, &big, NULL, 8, 1, &r, x, NULL, NULL);
        ok = 1;
        for (int i = 0; i < 8; i++) ok &= fabsf(x[i] - 1.0f) < 1e-6f;
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
        /* The implementation: simulation vs exact output law, within 5 standard errors. */
        double se_m = es / sqrt(NS), se_s = es / sqrt(2.0 * NS);
        CHECK(fabs(mean - em) <= 5 * se_m + 1e-4, "%s: mean %.4f, exact %.4f", what, mean, em);
        CHECK(fabs(std - es) <= 5 * se_s + 1e-4, "%s: std %.4f, exact %.4f", what, std, es);
        /* The sampler: recovers the data law, mean within 2% of s and std within tol. */
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
    /* Discretisation error shrinks with the number of steps (DDIM eta = 0, linear). */
    double prev = 1e9;
    int shrinks = 1;
    const int nsteps[] = {5, 10, 25, 50, 100, 250, 1000};
    for (int k = 0; k < 7; k++) {
        dfs_sampler_config c;
        dfs_sampler_config_default(&c);
        c.kind = DFS_SAMPLER_DDIM;
        c.steps = nsteps[k];
        double em, ev;
        exact_moments(&sch[0], &c, mu, sd, &em, &ev);
        double err = fabs(sqrt(ev) - sd);
        if (!(err < prev)) shrinks = 0;
        prev = err;
    }
    CHECK(shrinks && prev < 0.005 * sd, "DDIM std error decreases with steps (1000: %g)", prev);
    for (int k = 0; k < DFS_SCHEDULE_COUNT; k++) dfs_schedule_free(&sch[k]);
    free(x);
}

/* ---- higher-order solvers: accuracy vs DDIM and convergence ------------------------------- */

/* Exact output std / s of a deterministic sampler with the Gaussian model (mu 0.3, s 0.5). */
static double std_ratio(const dfs_schedule *s, dfs_sampler_kind kind, int steps) {
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.kind = kind;
    c.steps = steps;
    double em, ev;
    exact_moments(s, &c, 0.3, 0.5, &em, &ev);
    return sqrt(ev) / 0.5;
}

static void test_higher_order(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000);
    /* At the same number of steps the second-order solvers are closer to N(mu, s^2) than DDIM
     * (the exact output law, so no sampling error enters). Heun spends 2 steps - 1 network
     * evaluations; dpm++2m the same as DDIM. */
    const int cmp_steps[] = {10, 20};
    for (int k = 0; k < 2; k++) {
        int st = cmp_steps[k];
        double rd = std_ratio(&s, DFS_SAMPLER_DDIM, st);
        double rp = std_ratio(&s, DFS_SAMPLER_DPMPP_2M, st);
        double rh = std_ratio(&s, DFS_SAMPLER_HEUN, st);
        if (getenv("DFS_TEST_VERBOSE"))
            printf("  linear %d steps: std/s ddim %.4f dpm++2m %.4f heun %.4f\n", st, rd, rp, rh);
        CHECK(fabs(rp - 1) < fabs(rd - 1), "%d steps: |std/s - 1| dpm++2m %.4f < ddim %.4f", st,
              fabs(rp - 1), fabs(rd - 1));
        CHECK(fabs(rh - 1) < fabs(rd - 1), "%d steps: |std/s - 1| heun %.4f < ddim %.4f", st,
              fabs(rh - 1), fabs(rd - 1));
    }
    /* Second order: the error falls faster than DDIM's first order from 20 to 100 steps. */
    {
        double ed20 = fabs(std_ratio(&s, DFS_SAMPLER_DDIM, 20) - 1);
        double ed100 = fabs(std_ratio(&s, DFS_SAMPLER_DDIM, 100) - 1);
        double ep20 = fabs(std_ratio(&s, DFS_SAMPLER_DPMPP_2M, 20) - 1);
        double ep100 = fabs(std_ratio(&s, DFS_SAMPLER_DPMPP_2M, 100) - 1);
        double eh20 = fabs(std_ratio(&s, DFS_SAMPLER_HEUN, 20) - 1);
        double eh100 = fabs(std_ratio(&s, DFS_SAMPLER_HEUN, 100) - 1);
        if (getenv("DFS_TEST_VERBOSE"))
            printf("  linear error 20 -> 100 steps: ddim %.2e -> %.2e, dpm++2m %.2e -> %.2e, "
                   "heun %.2e -> %.2e\n", ed20, ed100, ep20, ep100, eh20, eh100);
        CHECK(ep20 / ep100 > ed20 / ed100, "dpm++2m error ratio 20/100 steps %.1f > ddim %.1f",
              ep20 / ep100, ed20 / ed100);
        CHECK(eh20 / eh100 > ed20 / ed100, "heun error ratio 20/100 steps %.1f > ddim %.1f",
              eh20 / eh100, ed20 / ed100);
    }

    /* Each solver converges to the same ODE solution: with the same starting noise the
     * distance to DDIM(eta 0) with many steps shrinks as steps grow. The reference is the full
     * chain (T = 1000 steps): its own error (rms 1.3e-3 from the exact flow below; 500 steps:
     * ~2.6e-3) must stay under heun's at 100 steps for the sequence to keep falling. For
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
    double dref = 0;
    for (int i = 0; i < NS; i++) dref += (ref[i] - ode[i]) * (ref[i] - ode[i]);
    dref = sqrt(dref / NS);
    CHECK(dref < 2e-3, "ddim(%d steps) rms distance to the exact ODE solution %.2e", NREF, dref);
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
            double want = w * cls_mu[cls];
            CHECK(fabs(mean - want) < 0.025, "w=%g class %d: mean %.4f want %.4f (pred %s)",
                  (double)w, cls, mean, want, dfs_prediction_names[preds[k]]);
            CHECK(fabs(std - 0.5) < 0.02, "w=%g class %d: std %.4f want 0.5", (double)w, cls,
                  std);
            if (w > 1)
                CHECK(fabs(mean) > fabs(cls_mu[cls]) + 0.25,
                      "w=%g pushes class %d beyond its mean (%.4f)", (double)w, cls, mean);
        }
    }
    /* The ODE solvers take guidance the same way (guided eps, then x0): 50 linear steps,
     * w = 3, model calls of 2n items, class means near w mu_c. std: heun's discretisation
     * error at 50 steps is under 1%, dpm++2m's 1.6% (exact laws, test_gaussian_recovery). */
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
        dfs_rng_seed(&rng, 78);
        CHECK(dfs_sample(&s, &c, gauss_fn, &m, labels, NS, 1, &rng, x, NULL, NULL) == DFS_OK,
              "%s guided sample", dfs_sampler_names[gk[k]]);
        int want_calls = gk[k] == DFS_SAMPLER_HEUN ? 99 : 50;
        CHECK(m.calls == want_calls && m.min_n == 2 * NS && m.max_n == 2 * NS && m.labels_ok,
              "%s guided: %d calls of %d..%d items, labels ok %d", dfs_sampler_names[gk[k]],
              m.calls, m.min_n, m.max_n, m.labels_ok);
        for (int cls = 0; cls < 2; cls++) {
            double sum = 0, sum2 = 0;
            for (int i = cls; i < NS; i += 2) sum += x[i], sum2 += (double)x[i] * x[i];
            double mean = sum / (NS / 2), std = sqrt(sum2 / (NS / 2) - mean * mean);
            double want = 3.0 * cls_mu[cls];
            if (getenv("DFS_TEST_VERBOSE"))
                printf("  %s w=3 class %d: mean %.4f (want %.4f) std %.4f\n",
                       dfs_sampler_names[gk[k]], cls, mean, want, std);
            CHECK(fabs(mean - want) < 0.025, "%s w=3 class %d: mean %.4f want %.4f",
                  dfs_sampler_names[gk[k]], cls, mean, want);
            CHECK(fabs(std - 0.5) < 0.03, "%s w=3 class %d: std %.4f want 0.5",
                  dfs_sampler_names[gk[k]], cls, std);
        }
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
    test_higher_order();
    test_guidance();
    return check_summary("test_diffusion");
}
