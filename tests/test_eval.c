/* test_eval.c - the variational bound (src/eval.c): Gaussian KL and discretized Gaussian
 * likelihood against numeric integration, and the whole bound on a point-mass data set where
 * every term has a closed form. */
#include "check.h"
#include "diffuse.h"

#include <math.h>
#include <string.h>

/* ---- (a) helpers ----------------------------------------------------------------------------- */

static double npdf(double x, double m, double sd) {
    double z = (x - m) / sd;
    return exp(-0.5 * z * z) / (sd * sqrt(2.0 * M_PI));
}

/* Simpson's rule with n (even) intervals. */
static double simpson(double (*f)(double, const double *), const double *p, double a, double b,
                      int n) {
    double h = (b - a) / n, acc = f(a, p) + f(b, p);
    for (int i = 1; i < n; i++) acc += (i & 1 ? 4 : 2) * f(a + i * h, p);
    return acc * h / 3.0;
}

/* integrand of KL(p || q): p log(p/q), p = (m1, sd1), q = (m2, sd2) */
static double kl_integrand(double x, const double *p) {
    double a = npdf(x, p[0], p[1]), b = npdf(x, p[2], p[3]);
    return a > 0 ? a * log(a / b) : 0.0;
}

static double pdf_integrand(double x, const double *p) { return npdf(x, p[0], p[1]); }

static void test_helpers(void) {
    const double cases[][4] = {{0.3, 0.5, -0.2, 1.3}, {1.0, 1.0, 0.0, 1.0}, {-0.7, 0.05, -0.6, 0.02}};
    for (int c = 0; c < 3; c++) {
        const double *p = cases[c];
        double got = dfs_normal_kl(p[0], 2 * log(p[1]), p[2], 2 * log(p[3]));
        double want = simpson(kl_integrand, p, p[0] - 14 * p[1], p[0] + 14 * p[1], 200000);
        CHECK_CLOSE(got, want, 1e-9, 1e-7, "normal KL vs numeric integral");
    }
    CHECK_CLOSE(dfs_normal_kl(0.4, -1.0, 0.4, -1.0), 0.0, 1e-15, 0, "KL of equal Gaussians");

    /* discretized Gaussian: bins of width 2/255 around x, open-ended at -1 and 1 */
    const double h = 1.0 / 255.0;
    const double xs[] = {-1.0, 200.0 / 127.5 - 1.0, 0.0, 1.0, 37.0 / 127.5 - 1.0};
    const double ms[] = {-0.98, 0.55, 0.01, 0.97, -0.2};
    const double sds[] = {0.03, 0.004, 0.02, 0.05, 0.3};
    for (int c = 0; c < 5; c++) {
        double p[2] = {ms[c], sds[c]};
        double lo = xs[c] < -0.999 ? ms[c] - 40 * sds[c] : xs[c] - h;
        double hi = xs[c] > 0.999 ? ms[c] + 40 * sds[c] : xs[c] + h;
        double want = log(simpson(pdf_integrand, p, lo, hi, 100000));
        double got = dfs_discretized_gaussian_loglik(xs[c], ms[c], log(sds[c]));
        CHECK_CLOSE(got, want, 1e-9, 1e-8, "discretized Gaussian log-likelihood vs integral");
    }
    /* a bin far in the tail keeps its precision (mean 0, sd 0.02, x = 0.4 is 20 sd out) */
    {
        double p[2] = {0.0, 0.02};
        double want = log(simpson(pdf_integrand, p, 0.4 - h, 0.4 + h, 20000));
        CHECK_CLOSE(dfs_discretized_gaussian_loglik(0.4, 0.0, log(0.02)), want,
                    1e-9, 1e-8, "tail bin");
    }
    /* the masses of all 256 bins sum to 1 */
    double sum = 0;
    for (int k = 0; k < 256; k++) sum += exp(dfs_discretized_gaussian_loglik(k / 127.5 - 1.0, 0.1, log(0.2)));
    CHECK_CLOSE(sum, 1.0, 1e-12, 0, "bin masses sum to 1");
}

/* ---- (b)-(d) the bound on a point mass --------------------------------------------------------- */

/* A model that knows x_0 = c[j] (per dimension) and outputs it, offset by `off`, in its own
 * parameterisation, computed in double from x_t. */
typedef struct {
    const dfs_schedule *s;
    dfs_prediction kind;
    const float *c; /* (dim) */
    size_t dim;
    double off;
    long calls;
} point_model;

static dfs_status point_fn(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    point_model *pm = user;
    (void)labels;
    pm->calls += n;
    for (int i = 0; i < n; i++) {
        double sa = sqrt(pm->s->abar[t[i]]), sb = sqrt(1.0 - pm->s->abar[t[i]]);
        for (size_t j = 0; j < pm->dim; j++) {
            double xt = x[(size_t)i * pm->dim + j], z = (double)pm->c[j] + pm->off;
            double e = (xt - sa * z) / sb;
            double v = pm->kind == DFS_PRED_X0 ? z : pm->kind == DFS_PRED_EPS ? e : sa * e - sb * z;
            out[(size_t)i * pm->dim + j] = (float)v;
        }
    }
    return DFS_OK;
}

/* The bound in nats per image for x_0 = c when the model's x_0 is c + d (d per dim, already in
 * float as the model's output will be), from the closed forms:
 *   prior   0.5 (-1 - log(1 - abar) + (1 - abar) + abar c^2)          KL to N(0,1), DDPM eq. 5
 *   KL_t    (post_c0_t d)^2 / (2 beta_tilde_t)                         equal variances
 *   decoder -log mass of c's bin under N(c + d, beta_tilde_1)          DDPM eq. 13 */
static double expected_nats(const dfs_schedule *s, const float *c, const double *d, size_t dim,
                            double *kl_sum) {
    const int T = s->T;
    double a = s->abar[T - 1], total = 0, kls = 0;
    const double h = 1.0 / 255.0, sd = sqrt(s->beta_tilde[1]);
    for (size_t j = 0; j < dim; j++) {
        double cj = c[j];
        total += 0.5 * (-1.0 - log(1.0 - a) + (1.0 - a) + a * cj * cj);
        for (int t = 1; t < T; t++) kls += (s->post_c0[t] * d[j]) * (s->post_c0[t] * d[j]) / (2.0 * s->beta_tilde[t]);
        double m = cj + d[j];
        double lo = cj < -0.999 ? 0.0 : 0.5 * erfc(-(cj - h - m) / (sd * sqrt(2.0)));
        double hi = cj > 0.999 ? 1.0 : 0.5 * erfc(-(cj + h - m) / (sd * sqrt(2.0)));
        total -= log(hi - lo);
    }
    *kl_sum = kls;
    return total + kls;
}

/* A model that cannot run (out of memory) */
static dfs_status nomem_fn(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    (void)user, (void)x, (void)t, (void)labels, (void)n, (void)out;
    dfs_set_error("no memory for this model");
    return DFS_ERR_NOMEM;
}

static void test_point_mass(dfs_schedule_kind kind, int T) {
    dfs_schedule s;
    CHECK(dfs_schedule_init(&s, kind, T) == DFS_OK, "schedule init: %s", dfs_last_error());
    enum { DIM = 3, N = 2 };
    const float c[DIM] = {200.0f / 127.5f - 1.0f, -1.0f, 1.0f}; /* an inner bin and both ends */
    float x0[N * DIM];
    for (int i = 0; i < N; i++) memcpy(x0 + i * DIM, c, sizeof c);
    const double ln2 = log(2.0);
    char what[160];

    /* (b) exact x0 model: all KL terms vanish; bound = prior + decoder */
    double zero[DIM] = {0}, kls;
    double want = expected_nats(&s, c, zero, DIM, &kls) / (DIM * ln2);
    double bpd[N], terms[100001];
    dfs_rng rng;
    dfs_rng_seed(&rng, 7);
    point_model pm = {&s, DFS_PRED_X0, c, DIM, 0.0, 0};
    dfs_status st = dfs_nll_bpd_terms(&s, DFS_PRED_X0, point_fn, &pm, NULL, x0, N, DIM, &rng, bpd, terms);
    CHECK(st == DFS_OK, "dfs_nll_bpd: %s", dfs_last_error());
    CHECK(pm.calls == (long)N * T, "one model evaluation per image and step: %ld calls", pm.calls);
    snprintf(what, sizeof what, "%s T=%d: exact model bound = prior + decoder", dfs_schedule_names[kind], T);
    for (int i = 0; i < N; i++) CHECK_CLOSE(bpd[i], want, 0, 1e-6, what);
    double maxkl = 0;
    for (int t = 1; t < T; t++) maxkl = fmax(maxkl, fabs(terms[t]));
    CHECK(maxkl == 0.0, "exact model: KL terms are exactly 0, max %g", maxkl);
    double sum = 0;
    for (int t = 0; t <= T; t++) sum += terms[t];
    CHECK_CLOSE(sum, want, 0, 1e-9, "terms add up to the bound");
    double bpd_f[N];
    st = dfs_nll_bpd(&s, DFS_PRED_X0, nomem_fn, NULL, NULL, x0, N, DIM, &rng, bpd_f);
    CHECK(st == DFS_ERR_NOMEM && !strcmp(dfs_last_error(), "no memory for this model"),
          "dfs_nll_bpd returns a failing model's status (%d) and message: %s", st, dfs_last_error());

    /* (c) a model off by 0.1: strictly larger, KL terms = sum_t (post_c0 0.1)^2 / (2 beta_tilde) */
    double d[DIM];
    for (int j = 0; j < DIM; j++) d[j] = (double)(float)((double)c[j] + 0.1) - (double)c[j];
    double want_w = expected_nats(&s, c, d, DIM, &kls) / (DIM * ln2);
    point_model pw = {&s, DFS_PRED_X0, c, DIM, 0.1, 0};
    double bpd_w[N], terms_w[100001];
    dfs_rng_seed(&rng, 7);
    st = dfs_nll_bpd_terms(&s, DFS_PRED_X0, point_fn, &pw, NULL, x0, N, DIM, &rng, bpd_w, terms_w);
    CHECK(st == DFS_OK, "dfs_nll_bpd (wrong model): %s", dfs_last_error());
    CHECK(bpd_w[0] > bpd[0] && bpd_w[1] > bpd[1], "wrong model gives a larger bound: %g vs %g", bpd_w[0], bpd[0]);
    double klsum = 0;
    for (int t = 1; t < T; t++) klsum += terms_w[t];
    snprintf(what, sizeof what, "%s T=%d: KL terms of the off-by-0.1 model (closed form)", dfs_schedule_names[kind], T);
    CHECK_CLOSE(klsum, kls / (DIM * ln2), 0, 1e-6, what);
    CHECK_CLOSE(terms_w[1], (s.post_c0[1] * 0.1) * (s.post_c0[1] * 0.1) / (2 * s.beta_tilde[1]) / ln2, 0, 1e-5,
                "KL at step 1 vs (post_c0 0.1)^2 / (2 beta_tilde), per dim in bits");
    snprintf(what, sizeof what, "%s T=%d: off-by-0.1 model bound", dfs_schedule_names[kind], T);
    for (int i = 0; i < N; i++) CHECK_CLOSE(bpd_w[i], want_w, 0, 1e-6, what);

    /* (d) eps- and v-prediction versions of the exact model give the same bound */
    for (int k = 0; k < 2; k++) {
        dfs_prediction pk = k ? DFS_PRED_V : DFS_PRED_EPS;
        point_model pe = {&s, pk, c, DIM, 0.0, 0};
        double b2[N];
        dfs_rng_seed(&rng, 11);
        st = dfs_nll_bpd(&s, pk, point_fn, &pe, NULL, x0, N, DIM, &rng, b2);
        CHECK(st == DFS_OK, "dfs_nll_bpd (%s): %s", dfs_prediction_names[pk], dfs_last_error());
        snprintf(what, sizeof what, "%s T=%d: %s model bound = x0 model bound", dfs_schedule_names[kind], T,
                 dfs_prediction_names[pk]);
        for (int i = 0; i < N; i++) CHECK_CLOSE(b2[i], bpd[i], 0, 1e-5, what);
    }
    dfs_schedule_free(&s);
}

/* Bad input is rejected with a status and a message. */
static void test_errors(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 10);
    float c[1] = {0.0f}, bad[1] = {1.5f};
    point_model pm = {&s, DFS_PRED_X0, c, 1, 0.0, 0};
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    double b[1];
    CHECK(dfs_nll_bpd(&s, DFS_PRED_X0, point_fn, &pm, NULL, bad, 1, 1, &rng, b) == DFS_ERR_ARG,
          "x0 outside [-1, 1] is rejected");
    CHECK(strstr(dfs_last_error(), "outside") != NULL, "message names the problem: %s", dfs_last_error());
    CHECK(dfs_nll_bpd(&s, DFS_PRED_X0, point_fn, &pm, NULL, c, 0, 1, &rng, b) == DFS_ERR_ARG, "n = 0 rejected");
    CHECK(dfs_nll_bpd(&s, (dfs_prediction)7, point_fn, &pm, NULL, c, 1, 1, &rng, b) == DFS_ERR_ARG,
          "bad prediction kind rejected");
    dfs_schedule_free(&s);
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1);
    CHECK(dfs_nll_bpd(&s, DFS_PRED_X0, point_fn, &pm, NULL, c, 1, 1, &rng, b) == DFS_ERR_ARG, "T = 1 rejected");
    dfs_schedule_free(&s);
}

int main(void) {
    test_helpers();
    test_point_mass(DFS_SCHEDULE_LINEAR, 1000);
    test_point_mass(DFS_SCHEDULE_COSINE, 200);
    test_errors();
    return check_summary("test_eval");
}
