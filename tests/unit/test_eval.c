/* test_eval.c - the variational bound (src/diffusion/bound.c): Gaussian KL and discretized Gaussian
 * likelihood against numeric integration, and the whole bound on a point-mass data set where
 * every term has a closed form. */
#include "check.h"
#include "diffuse.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Unit roundoffs, half the spacing of the numbers just above 1: 2^-53 in double, 2^-24 in float.
 * Every tolerance below is written in these. libm's exp, log, erfc are taken to be within 4 ulp
 * (8 u relative): glibc promises "a few ulp" for them, and these arguments are ordinary. */
#define U64 (DBL_EPSILON / 2)
#define U32 (FLT_EPSILON / 2)
#define ULP4 (8 * U64)

/* ---- (a) helpers ----------------------------------------------------------------------------- */

static double npdf(double x, double m, double sd) {
    double z = (x - m) / sd;
    return exp(-0.5 * z * z) / (sd * sqrt(2.0 * M_PI));
}

/* An integrand: its value at x and, in *mag, the sum of the magnitudes of the terms it adds, so
 * that its rounding is within 8 u mag (a few operations and one libm call, ULP4). */
typedef double (*integrand)(double x, const double *p, double *mag);

/* Simpson's rule with n (even) intervals. *err bounds its error from how it is computed:
 *   truncation: the error is c h^4 times the 4th derivative for smooth f, so S_n - S_{n/2} is
 *               15 times S_n's own; the Richardson estimate |S_n - S_{n/2}| / 15, taken twice;
 *   rounding:   8 u mag per evaluation, and a running sum of n terms, n u sum|terms|: together
 *               (n + 8) u times the Simpson sum of mag. */
static double simpson(integrand f, const double *p, double a, double b, int n, double *err) {
    double h = (b - a) / n, mag, m0, acc = f(a, p, &m0) + f(b, p, &mag), accm = m0 + mag;
    double acc2 = acc; /* S_{n/2}: every other point, step 2h */
    for (int i = 1; i < n; i++) {
        double v = f(a + i * h, p, &mag);
        acc += (i & 1 ? 4 : 2) * v;
        accm += (i & 1 ? 4 : 2) * mag;
        if (!(i & 1)) acc2 += ((i / 2) & 1 ? 4 : 2) * v;
    }
    double s = acc * h / 3.0, s2 = acc2 * 2 * h / 3.0;
    *err = 2 * fabs(s - s2) / 15 + (n + 8) * U64 * accm * h / 3.0;
    return s;
}

/* integrand of KL(p || q): p log(p/q), p = (m1, sd1), q = (m2, sd2), with log(p/q) from the
 * exponents: q's density underflows to 0 in p's tails, which made the old p log(p/q) infinite
 * and the check inf <= inf pass whatever the KL */
static double kl_integrand(double x, const double *p, double *mag) {
    double z1 = (x - p[0]) / p[1], z2 = (x - p[2]) / p[3];
    double la = -0.5 * z1 * z1 - log(p[1]), lb = -0.5 * z2 * z2 - log(p[3]);
    double a = exp(la) / sqrt(2.0 * M_PI);
    *mag = a * (fabs(la) + fabs(lb) + fabs(la - lb));
    return a * (la - lb);
}

static double pdf_integrand(double x, const double *p, double *mag) {
    double v = npdf(x, p[0], p[1]);
    *mag = v;
    return v;
}

/* Rounding of dfs_normal_kl(m1, lv1, m2, lv2) = 0.5 (lv2 - lv1 + expm1(lv1 - lv2) + d^2 e^-lv2)
 * (src/diffusion/bound.c): a few u of each term, and the rounding of the log-variances passed in
 * (u |lv| + one log) times the derivatives 0.5 |1 - e^(lv1-lv2) - d^2 e^-lv2| etc. */
static double normal_kl_err(double m1, double lv1, double m2, double lv2) {
    double d = m1 - m2, t = fabs(lv2 - lv1) + fabs(expm1(lv1 - lv2)) + d * d * exp(-lv2);
    return 4 * U64 * t + ULP4 * (fabs(lv1) + fabs(lv2) + 2) * (1 + exp(lv1 - lv2) + d * d * exp(-lv2));
}

/* Relative rounding of the bin mass behind dfs_discretized_gaussian_loglik(x, mean, log sd):
 * src/diffusion/bound.c takes it as a difference (or 1 minus a sum) of 0.5 erfc at |a|/sqrt 2 and
 * |b|/sqrt 2, a and b the standardised bin edges (infinite at the ends), so its absolute error is
 * ULP4 of those terms (each <= 1/2) plus the u of 1 - (...) (or u mass for a difference of two
 * tails); the edges themselves round by ~3 u |edge|, which
 * moves the mass by the density there. Relative to the mass, plus the log's own ULP4. This is
 * the conditioning of the difference: a bin far out on one side is a difference of two tails,
 * computed from the tail it is in, so it keeps its relative precision. */
static double dgl_rel_err(double x, double mean, double sd, double mass) {
    const double h = 1.0 / 255.0, r = 0.70710678118654752440;
    double a = x < -0.999 ? -INFINITY : (x - mean - h) / sd, b = x > 0.999 ? INFINITY : (x - mean + h) / sd;
    double ea = isinf(a) ? 0 : 0.5 * erfc(fabs(a) * r), eb = isinf(b) ? 0 : 0.5 * erfc(fabs(b) * r);
    double pa = isinf(a) ? 0 : npdf(a, 0, 1) * fabs(a), pb = isinf(b) ? 0 : npdf(b, 0, 1) * fabs(b);
    double sub = a < 0 && b > 0 ? 2 * U64 : 2 * U64 * mass; /* 1 - (...) or a tail difference */
    return (ULP4 * (ea + eb) + sub + 3 * U64 * (pa + pb)) / mass + ULP4;
}

static void test_helpers(void) {
    const double cases[][4] = {{0.3, 0.5, -0.2, 1.3}, {1.0, 1.0, 0.0, 1.0}, {-0.7, 0.05, -0.6, 0.02}};
    for (int c = 0; c < 3; c++) {
        const double *p = cases[c];
        double lv1 = 2 * log(p[1]), lv2 = 2 * log(p[3]), err;
        double got = dfs_normal_kl(p[0], lv1, p[2], lv2);
        /* +-14 sd of p: its mass beyond is e^-98, times |log(p/q)| < 1e6 */
        double want = simpson(kl_integrand, p, p[0] - 14 * p[1], p[0] + 14 * p[1], 200000, &err);
        CHECK(isfinite(want) && want > 0, "KL integral %d finite: %g", c, want);
        CHECK_CLOSE(got, want, err + normal_kl_err(p[0], lv1, p[2], lv2), 0, "normal KL vs numeric integral");
    }
    /* equal Gaussians: lv2 - lv1 = 0, expm1(0) = 0 and d = 0 exactly */
    CHECK_CLOSE(dfs_normal_kl(0.4, -1.0, 0.4, -1.0), 0.0, 0, 0, "KL of equal Gaussians");

    /* discretized Gaussian: bins of width 2/255 around x, open-ended at -1 and 1 (integrated
     * over +-40 sd, the mass beyond is e^-800) */
    const double h = 1.0 / 255.0;
    const double xs[] = {-1.0, 200.0 / 127.5 - 1.0, 0.0, 1.0, 37.0 / 127.5 - 1.0};
    const double ms[] = {-0.98, 0.55, 0.01, 0.97, -0.2};
    const double sds[] = {0.03, 0.004, 0.02, 0.05, 0.3};
    for (int c = 0; c < 5; c++) {
        double p[2] = {ms[c], sds[c]}, err;
        double lo = xs[c] < -0.999 ? ms[c] - 40 * sds[c] : xs[c] - h;
        double hi = xs[c] > 0.999 ? ms[c] + 40 * sds[c] : xs[c] + h;
        double mass = simpson(pdf_integrand, p, lo, hi, 100000, &err), want = log(mass);
        double got = dfs_discretized_gaussian_loglik(xs[c], ms[c], log(sds[c]));
        /* log(mass) errs by the mass's relative error (Simpson's, the library's) plus the logs' */
        CHECK_CLOSE(got, want, err / mass + dgl_rel_err(xs[c], ms[c], sds[c], mass) + ULP4 * fabs(want), 0,
                    "discretized Gaussian log-likelihood vs integral");
    }
    /* a bin far in the tail keeps its precision (mean 0, sd 0.02, x = 0.4 is 20 sd out) */
    {
        double p[2] = {0.0, 0.02}, err;
        double mass = simpson(pdf_integrand, p, 0.4 - h, 0.4 + h, 20000, &err), want = log(mass);
        CHECK_CLOSE(dfs_discretized_gaussian_loglik(0.4, 0.0, log(0.02)), want,
                    err / mass + dgl_rel_err(0.4, 0.0, 0.02, mass) + ULP4 * fabs(want), 0, "tail bin");
    }
    /* the masses of all 256 bins sum to 1: each mass within its dgl_rel_err (and exp's ULP4),
     * and a sum of 256 terms rounds by 256 u of their total */
    double sum = 0, tol = 256 * U64;
    for (int k = 0; k < 256; k++) {
        double m = exp(dfs_discretized_gaussian_loglik(k / 127.5 - 1.0, 0.1, log(0.2)));
        sum += m;
        tol += m * (dgl_rel_err(k / 127.5 - 1.0, 0.1, 0.2, m) + ULP4);
    }
    CHECK_CLOSE(sum, 1.0, tol, 0, "bin masses sum to 1");
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
 *   decoder -log mass of c's bin under N(c + d, beta_tilde_1)          DDPM eq. 13
 * and in *err a bound on how far dfs_nll_bpd's value (src/diffusion/bound.c) and this one's may lie apart
 * by rounding, for a model of parameterisation `pred` that outputs x_0 = c + d exactly:
 *  - x0_hat: an x0 model's float output is copied exactly; an eps or v model's is converted
 *    (dfs_pred_to_eps_x0), x0 = (x_t - sb eps) / sa or sa x_t - sb v, which carries the float
 *    rounding of its output (u |p|) times sb / sa or sb, plus u |x0| (delta_t below);
 *    |x_t| <= sa |c| + 6 sb, as the 6 * T normals drawn stay within 6 (2e-9 each beyond);
 *  - KL_t: mq - mp = c0 (x0 - x0_hat) is formed from two rounded sums of c0 x0 and ct x_t
 *    (4 u of those terms, e_t), so it is within c0 delta_t + e_t of c0 d; squared over
 *    2 beta_tilde, plus exp(-log beta_tilde)'s ULP4 (1 + |log beta_tilde|) and a few u;
 *  - decoder: its mean post_c0_0 x0_hat is c + d off by |post_c0_0 - 1| |c + d| (the
 *    schedule's u / beta_0 cancellation) + 2 u + delta_0, which moves log mass by at most the
 *    densities at the bin's edges over the mass times that; the bin mass itself rounds by
 *    dgl_rel_err in the library and by ULP4 (hi + lo) / (hi - lo) here (erfc at arguments of
 *    either sign), the scale exp(-log sd) by ULP4 (1 + |log sd|) relative, times the edges;
 *  - prior: the same closed form on both sides, a few u of its terms (ULP4 for the log);
 *  - sums: T + dim terms, all positive: (T + dim) u of the total on each side. */
static double expected_nats(const dfs_schedule *s, const float *c, const double *d, size_t dim,
                            dfs_prediction pred, double *kl_sum, double *err) {
    const int T = s->T;
    double a = s->abar[T - 1], total = 0, kls = 0, e = 0;
    const double h = 1.0 / 255.0, sd = sqrt(s->beta_tilde[1]);
    for (size_t j = 0; j < dim; j++) {
        double cj = c[j];
        double prior = 0.5 * (-1.0 - log(1.0 - a) + (1.0 - a) + a * cj * cj);
        total += prior;
        e += 2 * ULP4 * (2 + fabs(log(1.0 - a)) + a * cj * cj);
        double delta0 = 0;
        for (int t = 0; t < T; t++) {
            double at = s->abar[t], sa = sqrt(at), sb = sqrt(1 - at), xmax = sa * fabs(cj) + 6 * sb;
            double z = fabs(cj + d[j]), delta = 0;
            /* the model's eps = (x_t - sa (c + d)) / sb: |eps| <= 6 + (u |x_t| + sa |d|) / sb */
            double emax = 6 + (U32 * xmax + sa * fabs(d[j])) / sb;
            if (pred == DFS_PRED_EPS) {
                delta = U32 * (sb * emax / sa + z) + 4 * U64 * (xmax + sb * emax) / sa;
            } else if (pred == DFS_PRED_V) {
                double vmax = sa * emax + sb * z;
                delta = U32 * (sb * vmax + z) + 4 * U64 * (sa * xmax + sb * vmax);
            }
            if (t == 0) {
                delta0 = delta;
                continue;
            }
            double c0 = s->post_c0[t], ct = s->post_ct[t], bt = s->beta_tilde[t];
            double kl = (c0 * d[j]) * (c0 * d[j]) / (2.0 * bt);
            kls += kl;
            double et = 4 * U64 * (c0 * (fabs(cj) + z) + 2 * ct * xmax);
            double dev = fabs(c0 * d[j]) + c0 * delta + et;
            e += (dev * dev - (c0 * d[j]) * (c0 * d[j])) / (2.0 * bt) + kl * (ULP4 * (1 + fabs(log(bt))) + 8 * U64);
        }
        double m = cj + d[j];
        double lo = cj < -0.999 ? 0.0 : 0.5 * erfc(-(cj - h - m) / (sd * sqrt(2.0)));
        double hi = cj > 0.999 ? 1.0 : 0.5 * erfc(-(cj + h - m) / (sd * sqrt(2.0)));
        double mass = hi - lo;
        total -= log(mass);
        double dens = (cj < -0.999 ? 0 : npdf(cj - h, m, sd)) + (cj > 0.999 ? 0 : npdf(cj + h, m, sd));
        double dm = fabs(s->post_c0[0] - 1) * fabs(m) + 2 * U64 * fabs(m) + delta0;
        double scale = ULP4 * (1 + fabs(log(sd))) * (h + fabs(cj - m)) * dens;
        e += (dens * dm + scale) / mass + dgl_rel_err(cj, m, sd, mass) + ULP4 * (hi + lo) / mass;
    }
    *kl_sum = kls;
    *err = e + 2 * (T + dim) * U64 * (total + kls);
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

    /* (b) exact x0 model: all KL terms vanish; bound = prior + decoder, within the rounding
     * bound of expected_nats (in bits per dim, like the values) */
    double zero[DIM] = {0}, kls, err;
    double want = expected_nats(&s, c, zero, DIM, DFS_PRED_X0, &kls, &err) / (DIM * ln2);
    double tol = err / (DIM * ln2);
    double bpd[N], terms[100001];
    dfs_rng rng;
    dfs_rng_seed(&rng, 7);
    point_model pm = {&s, DFS_PRED_X0, c, DIM, 0.0, 0};
    dfs_status st = dfs_nll_bpd_terms(&s, DFS_PRED_X0, point_fn, &pm, NULL, x0, N, DIM, &rng, bpd, terms);
    CHECK(st == DFS_OK, "dfs_nll_bpd: %s", dfs_last_error());
    CHECK(pm.calls == (long)N * T, "one model evaluation per image and step: %ld calls", pm.calls);
    snprintf(what, sizeof what, "%s T=%d: exact model bound = prior + decoder", dfs_schedule_names[kind], T);
    for (int i = 0; i < N; i++) CHECK_CLOSE(bpd[i], want, tol, 0, what);
    /* the x0 model's float output is copied into x0_hat, so mq - mp = 0 exactly */
    double maxkl = 0;
    for (int t = 1; t < T; t++) maxkl = max_err(maxkl, fabs(terms[t]));
    CHECK(maxkl == 0.0, "exact model: KL terms are exactly 0, max %g", maxkl);
    /* the per-step means over the images, summed again: T + 1 more roundings of the total */
    double sum = 0;
    for (int t = 0; t <= T; t++) sum += terms[t];
    CHECK_CLOSE(sum, want, tol + 2 * (T + 1) * U64 * want, 0, "terms add up to the bound");
    double bpd_f[N];
    st = dfs_nll_bpd(&s, DFS_PRED_X0, nomem_fn, NULL, NULL, x0, N, DIM, &rng, bpd_f);
    CHECK(st == DFS_ERR_NOMEM && !strcmp(dfs_last_error(), "no memory for this model"),
          "dfs_nll_bpd returns a failing model's status (%d) and message: %s", st, dfs_last_error());

    /* (c) a model off by 0.1: strictly larger, KL terms = sum_t (post_c0 0.1)^2 / (2 beta_tilde).
     * d is the offset the model's float output really has. (Through a volatile: GCC 12.2 at -O2
     * drops the float rounding of (double)(float)(c + 0.1) in this loop when it pairs two
     * iterations into one vector (SLP), leaving d = 0.1 - 2e-17 in two of the three dims, a
     * 3.2e-7 relative error that the old 1e-6 tolerance hid; -fno-tree-slp-vectorize fixes it.) */
    double d[DIM], err_w;
    for (int j = 0; j < DIM; j++) {
        volatile float cw = (float)((double)c[j] + 0.1);
        d[j] = (double)cw - (double)c[j];
    }
    double want_w = expected_nats(&s, c, d, DIM, DFS_PRED_X0, &kls, &err_w) / (DIM * ln2);
    double tol_w = err_w / (DIM * ln2);
    point_model pw = {&s, DFS_PRED_X0, c, DIM, 0.1, 0};
    double bpd_w[N], terms_w[100001];
    dfs_rng_seed(&rng, 7);
    st = dfs_nll_bpd_terms(&s, DFS_PRED_X0, point_fn, &pw, NULL, x0, N, DIM, &rng, bpd_w, terms_w);
    CHECK(st == DFS_OK, "dfs_nll_bpd (wrong model): %s", dfs_last_error());
    CHECK(bpd_w[0] > bpd[0] && bpd_w[1] > bpd[1], "wrong model gives a larger bound: %g vs %g", bpd_w[0], bpd[0]);
    double klsum = 0;
    for (int t = 1; t < T; t++) klsum += terms_w[t];
    snprintf(what, sizeof what, "%s T=%d: KL terms of the off-by-0.1 model (closed form)", dfs_schedule_names[kind], T);
    CHECK_CLOSE(klsum, kls / (DIM * ln2), tol_w + 2 * T * U64 * klsum, 0, what);
    /* with 0.1 for the offset: the float offsets d differ from 0.1 by up to half an ulp of
     * c + 0.1, which the square doubles (relative), on top of the rounding above */
    double kl1 = (s.post_c0[1] * 0.1) * (s.post_c0[1] * 0.1) / (2 * s.beta_tilde[1]) / ln2, drel = 0;
    for (int j = 0; j < DIM; j++) drel = max_err(drel, fabs(d[j] * d[j] / 0.01 - 1));
    CHECK_CLOSE(terms_w[1], kl1, tol_w + drel * kl1, 0, "KL at step 1 vs (post_c0 0.1)^2 / (2 beta_tilde), per dim in bits");
    snprintf(what, sizeof what, "%s T=%d: off-by-0.1 model bound", dfs_schedule_names[kind], T);
    for (int i = 0; i < N; i++) CHECK_CLOSE(bpd_w[i], want_w, tol_w, 0, what);

    /* (d) eps- and v-prediction versions of the exact model give the same bound, up to both
     * values' rounding: the conversion to x0_hat moves the decoder's mean to first order and the
     * KL terms to second (expected_nats) */
    for (int k = 0; k < 2; k++) {
        dfs_prediction pk = k ? DFS_PRED_V : DFS_PRED_EPS;
        double err_k;
        expected_nats(&s, c, zero, DIM, pk, &kls, &err_k);
        point_model pe = {&s, pk, c, DIM, 0.0, 0};
        double b2[N];
        dfs_rng_seed(&rng, 11);
        st = dfs_nll_bpd(&s, pk, point_fn, &pe, NULL, x0, N, DIM, &rng, b2);
        CHECK(st == DFS_OK, "dfs_nll_bpd (%s): %s", dfs_prediction_names[pk], dfs_last_error());
        snprintf(what, sizeof what, "%s T=%d: %s model bound = x0 model bound", dfs_schedule_names[kind], T,
                 dfs_prediction_names[pk]);
        for (int i = 0; i < N; i++) CHECK_CLOSE(b2[i], bpd[i], (err + err_k) / (DIM * ln2), 0, what);
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
