/* test_crps.c - probabilistic forecast scores (src/eval/crps.c): hand-computed ensembles of 1, 2,
 * 4 and 21 samples, masks and NaN truths, the error returns, two independent references for the
 * sample CRPS (all pairs, and the integral of (F_S - H)^2), and Gaussian forecasts against the
 * closed-form CRPS: stratified samples with a deterministic bound, random draws with a
 * concentration bound, and the quantile form with exact Gaussian quantiles. */
#include "check.h"
#include "diffuse.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Unit roundoff of double. */
#define U64 (DBL_EPSILON / 2)

/* Rounding tolerances. The library and the references here compute in double from float inputs
 * (exact in double). Each per-entry term (a pinball loss, |x - y|, a gap times its weight) takes
 * at most 8 roundings, a relative error <= 8u, and a sum of m terms adds at most (m - 1) u times
 * the sum of their magnitudes (Higham, "Accuracy and stability of numerical algorithms", 4.2).
 * Two such computations differ by at most twice that: 2 (m + 8) u mag, mag the sum of the terms'
 * magnitudes over the divisor the score uses; rounded up to 4 (m + 16) u mag. */
static double round_tol(double m, double mag) { return 4 * (m + 16) * U64 * mag; }

/* CHECK_CLOSE with an absolute tolerance and a printf-style label */
#define CHECK_NEAR(a, b, tol, ...)                                                                 \
    do {                                                                                           \
        char what_[160];                                                                           \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                                \
        CHECK_CLOSE(a, b, tol, 0, what_);                                                          \
    } while (0)

static dfs_status score(const float *x, const float *y, const uint8_t *mask, int W, int S, size_t P,
                        dfs_forecast_scores *o) {
    return dfs_forecast_score(x, y, mask, W, S, P, o);
}

/* ---- Gaussian helpers, in double ------------------------------------------------------------ */

static double Phi(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }
static double phi(double z) { return isinf(z) ? 0 : exp(-0.5 * z * z) / sqrt(2 * M_PI); }

/* Phi^-1(p), 0 < p < 1: Acklam's rational approximation (relative error 1.15e-9), then one Halley
 * step on Phi(x) = p, which triples the number of correct digits: to about 1e-15 relative. */
static double Phi_inv(double p) {
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    double x;
    if (p < 0.02425) {
        double q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p > 1 - 0.02425) {
        double q = sqrt(-2 * log(1 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    double e = Phi(x) - p, u = e * sqrt(2 * M_PI) * exp(0.5 * x * x);
    return x - u / (1 + 0.5 * x * u);
}

/* CRPS of N(mu, s^2) at y (Gneiting et al. 2005, eq. 5):
 * s (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)), z = (y - mu)/s. */
static double gauss_crps(double mu, double s, double y) {
    double z = (y - mu) / s;
    return s * (z * (2 * Phi(z) - 1) + 2 * phi(z) - 1 / sqrt(M_PI));
}

/* twice the pinball loss of quantile Q at level q for truth y */
static double pinball2(double Q, double y, double q) { return 2 * fabs((Q - y) * ((y <= Q) - q)); }

/* ---- references for one entry (samples x, S of them, truth y), in double -------------------- */

/* (1/S) sum |x_i - y| - (1/(2 S^2)) sum over all S^2 pairs |x_i - x_j|, in O(S^2) */
static double ref_crps_pairs(const float *x, int S, double y) {
    double dev = 0, pairs = 0;
    for (int i = 0; i < S; i++) {
        dev += fabs(x[i] - y);
        for (int j = 0; j < S; j++) pairs += fabs((double)x[i] - x[j]);
    }
    return dev / S - pairs / (2.0 * S * S);
}

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* The CRPS as its definition, int (F_S(t) - 1{t >= y})^2 dt (Matheson & Winkler 1976): F_S and the
 * step are constant between consecutive points of {x_i} U {y}, so the integral is a finite sum. */
static double ref_crps_integral(const float *x, int S, double y) {
    double *t = malloc((size_t)(S + 1) * sizeof *t);
    for (int i = 0; i < S; i++) t[i] = x[i];
    t[S] = y;
    qsort(t, (size_t)S + 1, sizeof *t, cmp_double);
    double sum = 0;
    for (int k = 0; k < S; k++) { /* the interval [t_k, t_k+1) */
        int below = 0;            /* samples <= t_k */
        for (int i = 0; i < S; i++) below += x[i] <= t[k];
        double F = (double)below / S, H = t[k] >= y ? 1 : 0;
        sum += (F - H) * (F - H) * (t[k + 1] - t[k]);
    }
    free(t);
    return sum;
}

/* The textbook form of numpy's default quantile (linear, Hyndman & Fan type 7) of sorted xs (n):
 * h = q (n - 1), xs[floor h] + (h - floor h)(xs[floor h + 1] - xs[floor h]). */
static double ref_quantile(const double *xs, int n, double q) {
    double h = q * (n - 1);
    int lo = (int)floor(h);
    if (lo >= n - 1) return xs[n - 1];
    return xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo]);
}

/* ---- hand-computed ensembles ---------------------------------------------------------------- */

/* Sums of the levels q_l = l/20, l = 1..19: sum q = 9.5, sum q^2 = (19 20 39 / 6) / 400 = 6.175. */

/* S = 1: the CRPS of a point mass at x is |x - y|, and so is the quantile form: every quantile is
 * x, and the mean over the levels of 2 |x - y| q (y > x) or 2 |x - y| (1 - q) (y <= x) is |x - y|
 * (mean q = 1/2). The median is x, and y is covered only where y = x. */
static void test_one_sample(void) {
    const float x[4] = {1.0f, -2.5f, 3.0f, 0.25f}, y[4] = {3.0f, -2.0f, 3.0f, -1.75f};
    const double d[4] = {2.0, 0.5, 0.0, 2.0}; /* |x - y| */
    dfs_forecast_scores o;
    CHECK(score(x, y, NULL, 1, 1, 4, &o) == DFS_OK, "status: %s", dfs_last_error());
    CHECK(o.n == 4, "n %ld, want 4", o.n);
    /* each entry's terms are exact (dyadic values) but for the 19-level sum: m = 19 per entry */
    const double mean = (d[0] + d[1] + d[2] + d[3]) / 4, sum_y = 3 + 2 + 3 + 1.75;
    CHECK_NEAR(o.crps_sample, mean, round_tol(4, mean), "S=1 crps_sample");
    CHECK_NEAR(o.crps_quantile, mean, round_tol(19 * 4, mean), "S=1 crps_quantile");
    CHECK_NEAR(o.ncrps_sample, 4 * mean / sum_y, round_tol(4, 4 * mean / sum_y),
               "S=1 ncrps_sample");
    CHECK_NEAR(o.ncrps_quantile, 4 * mean / sum_y, round_tol(19 * 4, 4 * mean / sum_y),
               "S=1 ncrps_quantile");
    CHECK_NEAR(o.mae_median, mean, round_tol(4, mean), "S=1 mae_median");
    /* x - y: -2, -0.5, 0, 2 */
    CHECK_NEAR(o.bias_median, -0.125, round_tol(4, mean), "S=1 bias_median");
    CHECK(o.cover50 == 0.25 && o.cover90 == 0.25, "S=1 coverage %g %g, want 0.25 0.25 (y = x only)",
          o.cover50, o.cover90);
}

/* S = 2, samples {0, 1} (stored as 1, 0: the order in memory must not matter), truths 0.5 and 2.
 *  sample CRPS: (|0 - y| + |1 - y|)/2 - |0 - 1|/4 (two of the four ordered pairs differ by 1):
 *    y = 0.5: 0.5 - 0.25 = 0.25;  y = 2: 1.5 - 0.25 = 1.25  (the "fair" form, /(S(S-1)), would give
 *    0 and 1).
 *  quantiles Q(q) = q (rank q (2 - 1) = q between 0 and 1):
 *    y = 0.5: 2 (0.5 - q) q for q < 0.5 (0.045 0.08 0.105 0.12 0.125 0.12 0.105 0.08 0.045, sum
 *    0.825), 0 at q = 0.5, 2 (q - 0.5)(1 - q) above (the mirror image, 0.825): 1.65 / 19.
 *    y = 2: Q < y everywhere, 2 (2 - q) q: (4 sum q - 2 sum q^2)/19 = (38 - 12.35)/19 = 1.35.
 *  median 0.5: |0.5 - 0.5| = 0, |0.5 - 2| = 1.5.  Q(0.25) = 0.25, Q(0.75) = 0.75, Q(0.05) = 0.05,
 *  Q(0.95) = 0.95: y = 0.5 inside both, y = 2 outside both. */
static void test_two_samples(void) {
    const float x[2 * 2] = {1, 1, 0, 0}; /* (S, P): sample 0 is 1 at both entries, sample 1 is 0 */
    const float y[2] = {0.5f, 2.0f};
    dfs_forecast_scores o;
    CHECK(score(x, y, NULL, 1, 2, 2, &o) == DFS_OK, "status: %s", dfs_last_error());
    const double cs = (0.25 + 1.25) / 2, cq = (1.65 / 19 + 1.35) / 2;
    CHECK_NEAR(o.crps_sample, cs, round_tol(2, 1.5), "S=2 crps_sample");
    CHECK_NEAR(o.crps_quantile, cq, round_tol(38, 2 * cq), "S=2 crps_quantile");
    CHECK_NEAR(o.ncrps_sample, 2 * cs / 2.5, round_tol(2, 1.5 / 2.5), "S=2 ncrps_sample");
    CHECK_NEAR(o.ncrps_quantile, 2 * cq / 2.5, round_tol(38, 2 * cq / 2.5), "S=2 ncrps_quantile");
    CHECK_NEAR(o.mae_median, 0.75, round_tol(2, 0.75), "S=2 mae_median");
    CHECK_NEAR(o.bias_median, -0.75, round_tol(2, 0.75), "S=2 bias_median (0 and -1.5)");
    CHECK(o.cover50 == 0.5 && o.cover90 == 0.5 && o.n == 2, "S=2 coverage %g %g n %ld", o.cover50,
          o.cover90, o.n);
}

/* Linear interpolation between order statistics, on 4 samples {3, 1, 4, 10} (sorted 1 3 4 10,
 * ranks q (4 - 1) = 3q): Q(q) = 1 + 6q up to q = 1/3, 3q + 2 up to 2/3, 18q - 8 above. At the 19
 * levels that is 1.3 1.6 1.9 2.2 2.5 2.8 3.05 3.2 3.35 3.5 3.65 3.8 3.95 4.6 5.5 6.4 7.3 8.2 9.1,
 * as numpy.quantile(x, numpy.arange(0.05, 1, 0.05)) prints. Truths on the closed interval's ends
 * (Q(0.25) = 2.5 and Q(0.75) = 5.5 are exact in binary: 1 + 0.75 (3 - 1), 4 + 0.25 (10 - 4)) are
 * covered; 2 and 6 only by the 90% interval [1.3, 9.1]; 1.25 and 9.5 by neither. */
static double q4(double q) {
    return q <= 1.0 / 3 ? 1 + 6 * q : q <= 2.0 / 3 ? 3 * q + 2 : 18 * q - 8;
}

static void test_four_samples(void) {
    enum { S = 4, P = 6 };
    const float ys[P] = {2.5f, 5.5f, 2.0f, 6.0f, 1.25f, 9.5f};
    const float order[4][S] = {{3, 1, 4, 10}, {10, 4, 3, 1}, {1, 10, 3, 4}, {4, 3, 10, 1}};
    float x[S * P];
    for (int p = 0; p < P; p++)
        for (int s = 0; s < S; s++) x[s * P + p] = order[p % 4][s];
    dfs_forecast_scores o;
    CHECK(score(x, ys, NULL, 1, S, P, &o) == DFS_OK, "status: %s", dfs_last_error());
    double cq = 0, mae = 0, mag = 0;
    for (int p = 0; p < P; p++) {
        for (int l = 1; l <= 19; l++) cq += pinball2(q4(l / 20.0), ys[p], l / 20.0) / 19;
        mae += fabs(3.5 - ys[p]);
        mag += fabs(ys[p]) + 10;
    }
    /* the hand formula and the library's interpolation each round Q a few times, relative to the
     * largest sample (10); the pinball is 2-Lipschitz in Q: inside round_tol's per-term 8u with
     * mag = |y| + max x */
    CHECK_NEAR(o.crps_quantile, cq / P, round_tol(19 * P, 2 * mag / P), "4 samples crps_quantile");
    CHECK_NEAR(o.mae_median, mae / P, round_tol(P, mag / P), "4 samples mae_median (median 3.5)");
    CHECK(o.cover50 == 2.0 / 6 && o.cover90 == 4.0 / 6,
          "4 samples coverage %.17g %.17g, want 2/6 4/6", o.cover50, o.cover90);
    /* the sample CRPS by the pair formula: (1/4) sum |x - y| - (1/16) sum over pairs */
    double cs = 0;
    for (int p = 0; p < P; p++) cs += ref_crps_pairs(order[0], S, ys[p]) / P;
    CHECK_NEAR(o.crps_sample, cs, round_tol(S * S * P, mag / P), "4 samples crps_sample");
}

/* 21 samples 0..20 (shuffled): ranks 20q are exact for q = 0.05, 0.25, 0.5, 0.75, 0.95 (20 x the
 * doubles nearest 0.05 and 0.95 round to 1 and 19), so the 90% interval is [1, 19], the 50% one
 * [5, 15] and the median 10. Of the truths 0.5 1 4.5 5 10 15 15.5 19 19.5 20.5, seven lie in
 * [1, 19], three in [5, 15] (ends included); sum |10 - y| = 68.5. */
static void test_coverage(void) {
    enum { S = 21, P = 10 };
    const float ys[P] = {0.5f, 1, 4.5f, 5, 10, 15, 15.5f, 19, 19.5f, 20.5f};
    float x[S * P];
    for (int p = 0; p < P; p++)
        for (int s = 0; s < S; s++) x[s * P + p] = (float)((s * 8 + p) % S); /* 8 is prime to 21 */
    dfs_forecast_scores o;
    CHECK(score(x, ys, NULL, 1, S, P, &o) == DFS_OK, "status: %s", dfs_last_error());
    CHECK(o.cover90 == 7.0 / 10, "cover90 %.17g, want 0.7", o.cover90);
    CHECK(o.cover50 == 3.0 / 10, "cover50 %.17g, want 0.3", o.cover50);
    CHECK_NEAR(o.mae_median, 6.85, round_tol(P, 6.85), "21 samples mae_median");
    /* 10 - y summed: 100 - 110.5 */
    CHECK_NEAR(o.bias_median, -1.05, round_tol(P, 6.85), "21 samples bias_median");
}

/* ---- masks, NaN truths, errors --------------------------------------------------------------- */

/* Scored entries are those with a nonzero mask and a truth that is not NaN; the others may hold
 * NaN samples. The scores equal those of the scored entries packed into one window. */
static void test_mask_nan(void) {
    enum { W = 3, S = 3, P = 4 };
    const uint8_t mask[W * P] = {1, 0, 255, 1, 0, 0, 0, 0, 1, 1, 0, 1};
    float y[W * P], x[W * S * P], xp[S * 5], yp[5];
    dfs_rng r;
    dfs_rng_seed(&r, 11);
    for (int i = 0; i < W * P; i++) y[i] = 2 * dfs_rng_normal(&r);
    for (int i = 0; i < W * S * P; i++) x[i] = 2 * dfs_rng_normal(&r);
    y[0 * P + 3] = NAN; /* scored by the mask, skipped by the NaN */
    y[1 * P + 0] = NAN;
    int np = 0;
    for (int w = 0; w < W; w++)
        for (int p = 0; p < P; p++) {
            int scored = mask[w * P + p] && !isnan(y[w * P + p]);
            for (int s = 0; s < S; s++) {
                float *v = &x[(w * S + s) * P + p];
                if (!scored) *v = NAN;
                else xp[s * 5 + np] = *v;
            }
            if (scored) yp[np++] = y[w * P + p];
        }
    CHECK(np == 5, "packed %d entries, want 5", np);
    dfs_forecast_scores o, op;
    CHECK(score(x, y, mask, W, S, P, &o) == DFS_OK, "masked status: %s", dfs_last_error());
    CHECK(score(xp, yp, NULL, 1, S, 5, &op) == DFS_OK, "packed status: %s", dfs_last_error());
    CHECK(o.n == 5 && op.n == 5, "n %ld and %ld, want 5", o.n, op.n);
    /* the same terms summed in another grouping: rounding only. Magnitudes: samples and truths of
     * N(0, 4) are below 16 here (at most 8 sigma), so every term is below 2 (16 + 16) */
    const double mag = 64, ymag = op.crps_quantile / op.ncrps_quantile; /* mean |y| */
    CHECK_NEAR(o.crps_sample, op.crps_sample, round_tol(S * 5, mag), "mask: crps_sample");
    CHECK_NEAR(o.crps_quantile, op.crps_quantile, round_tol(19 * 5, mag), "mask: crps_quantile");
    CHECK_NEAR(o.ncrps_sample, op.ncrps_sample, round_tol(S * 5, mag / ymag), "mask: ncrps_sample");
    CHECK_NEAR(o.ncrps_quantile, op.ncrps_quantile, round_tol(19 * 5, mag / ymag),
               "mask: ncrps_quantile");
    CHECK_NEAR(o.mae_median, op.mae_median, round_tol(5, mag), "mask: mae_median");
    CHECK_NEAR(o.bias_median, op.bias_median, round_tol(5, mag), "mask: bias_median");
    CHECK(o.cover50 == op.cover50 && o.cover90 == op.cover90, "mask: coverage %g %g vs %g %g",
          o.cover50, o.cover90, op.cover50, op.cover90);

    /* no mask: the NaN truth alone is skipped, its NaN samples too (the S = 2 case again) */
    const float x2[2 * 3] = {0, NAN, 0, 1, NAN, 1}, y2[3] = {0.5f, NAN, 2.0f};
    CHECK(score(x2, y2, NULL, 1, 2, 3, &o) == DFS_OK, "no mask status: %s", dfs_last_error());
    CHECK(o.n == 2, "no mask: n %ld, want 2", o.n);
    CHECK_NEAR(o.crps_sample, 0.75, round_tol(2, 1.5), "no mask: crps_sample");
}

static void test_errors(void) {
    const float x[2 * 2 * 3] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    const float y[2 * 3] = {0, 1, 2, 3, 4, 5};
    const uint8_t none[2 * 3] = {0};
    dfs_forecast_scores o;
    CHECK(score(NULL, y, NULL, 2, 2, 3, &o) == DFS_ERR_ARG, "NULL samples accepted");
    CHECK(score(x, NULL, NULL, 2, 2, 3, &o) == DFS_ERR_ARG, "NULL truth accepted");
    CHECK(score(x, y, NULL, 2, 2, 3, NULL) == DFS_ERR_ARG, "NULL out accepted");
    CHECK(score(x, y, NULL, 0, 2, 3, &o) == DFS_ERR_ARG, "W = 0 accepted");
    CHECK(score(x, y, NULL, -1, 2, 3, &o) == DFS_ERR_ARG, "W = -1 accepted");
    CHECK(score(x, y, NULL, 2, 0, 3, &o) == DFS_ERR_ARG, "S = 0 accepted");
    CHECK(score(x, y, NULL, 2, 2, 0, &o) == DFS_ERR_ARG, "P = 0 accepted");
    CHECK(score(x, y, NULL, INT_MAX, INT_MAX, SIZE_MAX / 2, &o) == DFS_ERR_ARG,
          "an overflowing shape accepted");
    CHECK(score(x, y, none, 2, 2, 3, &o) == DFS_ERR_ARG, "an all-zero mask accepted");
    CHECK(strstr(dfs_last_error(), "no entry") != NULL, "message '%s'", dfs_last_error());
    const float ynan[2 * 3] = {NAN, NAN, NAN, NAN, NAN, NAN};
    CHECK(score(x, ynan, NULL, 2, 2, 3, &o) == DFS_ERR_ARG, "all-NaN truth accepted");

    /* a non-finite sample of a scored entry: sample 1 of entry 2 of window 1 */
    CHECK(score(x, y, NULL, 2, 2, 3, &o) == DFS_OK && o.n == 6, "clean case: %s", dfs_last_error());
    float xb[2 * 2 * 3];
    const float bad[2] = {NAN, INFINITY};
    for (int b = 0; b < 2; b++) {
        memcpy(xb, x, sizeof xb);
        xb[(1 * 2 + 1) * 3 + 2] = bad[b];
        CHECK(score(xb, y, NULL, 2, 2, 3, &o) == DFS_ERR_NAN, "sample %g accepted", (double)bad[b]);
        CHECK(strstr(dfs_last_error(), "sample 1 of entry 2 of window 1") != NULL, "message '%s'",
              dfs_last_error());
        CHECK(isnan(o.crps_quantile) && isnan(o.crps_sample) && isnan(o.ncrps_quantile) &&
                  isnan(o.ncrps_sample) && isnan(o.mae_median) && isnan(o.bias_median) && isnan(o.cover50) &&
                  isnan(o.cover90) && o.n == 0,
              "fields after an error: %g %g n %ld", o.crps_quantile, o.crps_sample, o.n);
    }
    /* ... but not where the mask leaves the entry out */
    const uint8_t skip[2 * 3] = {1, 1, 1, 1, 1, 0};
    CHECK(score(xb, y, skip, 2, 2, 3, &o) == DFS_OK && o.n == 5, "masked bad sample: %s",
          dfs_last_error());
    /* an infinite truth is an error, not a missing value */
    float yi[2 * 3];
    memcpy(yi, y, sizeof yi);
    yi[4] = -INFINITY;
    CHECK(score(x, yi, NULL, 2, 2, 3, &o) == DFS_ERR_NAN, "infinite truth accepted");
}

/* ---- the sample CRPS against two references, on random ensembles --------------------------- */

/* The library's sorted gaps form against the all-pairs sum and the integral of (F_S - H)^2, and
 * its quantile scores against the textbook interpolation, for S = 1, 2, 3, 7, 50, 101 and samples
 * centred at 1000 with spread 3 (where sum_i x_(i) (2i - S + 1) would cancel 3 digits). */
static void test_random_references(void) {
    const int Ss[] = {1, 2, 3, 7, 50, 101};
    enum { P = 40 };
    dfs_rng r;
    dfs_rng_seed(&r, 5);
    for (size_t c = 0; c < sizeof Ss / sizeof *Ss; c++) {
        const int S = Ss[c];
        float *x = malloc((size_t)S * P * sizeof *x), y[P], *e = malloc((size_t)S * sizeof *e);
        double *xs = malloc((size_t)S * sizeof *xs);
        for (int i = 0; i < S * P; i++) x[i] = 1000 + 3 * dfs_rng_normal(&r);
        for (int p = 0; p < P; p++) y[p] = 1000 + 4 * dfs_rng_normal(&r);
        dfs_forecast_scores o;
        CHECK(score(x, y, NULL, 1, S, P, &o) == DFS_OK, "S=%d status: %s", S, dfs_last_error());
        double pairs = 0, integral = 0, mag = 0, cq = 0, mae = 0;
        long in50 = 0, in90 = 0;
        for (int p = 0; p < P; p++) {
            for (int s = 0; s < S; s++) e[s] = x[s * P + p], xs[s] = e[s];
            pairs += ref_crps_pairs(e, S, y[p]) / P;
            integral += ref_crps_integral(e, S, y[p]) / P;
            qsort(xs, (size_t)S, sizeof *xs, cmp_double);
            for (int l = 1; l <= 19; l++)
                cq += pinball2(ref_quantile(xs, S, l / 20.0), y[p], l / 20.0);
            mae += fabs(ref_quantile(xs, S, 0.5) - y[p]);
            double q05 = ref_quantile(xs, S, 0.05), q25 = ref_quantile(xs, S, 0.25);
            double q75 = ref_quantile(xs, S, 0.75), q95 = ref_quantile(xs, S, 0.95);
            in50 += q25 <= y[p] && y[p] <= q75;
            in90 += q05 <= y[p] && y[p] <= q95;
        }
        /* every difference and term is below 2 (|x - 1000| + |y - 1000|) < 2 (30 + 40) at 10
         * sigma; the sums have S^2 P terms (pairs), or 2 (S + 1)^2 P (integral: S + 1 intervals of
         * an S-term count, counts exact) */
        mag = 140;
        CHECK_NEAR(o.crps_sample, pairs, round_tol((double)S * S * P, mag), "S=%d vs pairs", S);
        CHECK_NEAR(o.crps_sample, integral, round_tol(2.0 * (S + 1) * (S + 1) * P, mag),
                    "S=%d vs integral", S);
        /* the quantiles: the library's two-sided lerp and the one-sided form here differ by a
         * rounding of the larger end, 4u 1040, which is inside round_tol's per-term 8u of
         * mag = 2 (1040 + 1040) (the pinball is 2-Lipschitz in Q) */
        CHECK_NEAR(o.crps_quantile, cq / 19 / P, round_tol(19 * P, 4160), "S=%d quantile CRPS", S);
        CHECK_NEAR(o.mae_median, mae / P, round_tol(P, 4160), "S=%d mae_median", S);
        CHECK(o.cover50 == (double)in50 / P && o.cover90 == (double)in90 / P,
              "S=%d coverage %g %g, want %g %g", S, o.cover50, o.cover90, (double)in50 / P,
              (double)in90 / P);
        free(x), free(e), free(xs);
    }
}

/* ---- Gaussian forecasts against the closed form -------------------------------------------- */

/* (a1) Stratified samples x_i = mu + s Phi^-1((i + 1/2)/S), i = 0..S-1 (rounded to float).
 * The error bound: with F_S the samples' distribution and H the step at y,
 *   CRPS(F_S) - CRPS(F) = int (F_S - F)(F_S + F - 2H) dt, and |F_S + F - 2H| <= 2,
 * so |CRPS(F_S) - CRPS(F)| <= 2 int |F_S - F| = 2 W1(F_S, F), the Wasserstein-1 distance, which is
 * int_0^1 |F_S^-1(u) - F^-1(u)| du: on the cell u in [i/S, (i+1)/S], |F^-1(u) - x_i| integrates
 * to s (2 phi(c_i) - phi(z_i) - phi(z_i+1)), c_i = Phi^-1((i+1/2)/S), z_i = Phi^-1(i/S) (from
 * int z phi(z) dz = -phi(z), and c_i splitting the cell's mass in halves). So
 *   W1 = s sum_i (2 phi(c_i) - phi(z_i) - phi(z_i+1)),  = 0.00855 s at S = 200, 0.000113 s at
 *   S = 20000: O(1/S) up to a logarithm from the tails.
 * The observed errors are far smaller (2e-5 s at S = 200, 1e-8 s at S = 20000: the signs of F_S - F
 * alternate within each cell), but this is the bound that can be derived in a line.
 * Rounding the samples to float moves them by d_i = float(x_i) - x_i, which moves the CRPS by at
 * most 2 mean |d_i| (each sample enters with weight <= 1/S through |x_i - y| and <= 1/S through the
 * pair sum). Phi_inv's error (~1e-15 relative) is far inside that. */
static void test_gauss_stratified(void) {
    const double mu = 1.5, s = 2.0, zs[] = {-2.0, -0.5, 0.0, 0.7, 2.5};
    const int Ss[] = {200, 20000};
    for (int c = 0; c < 2; c++) {
        const int S = Ss[c];
        float *x = malloc((size_t)S * sizeof *x);
        double w1 = 0, dsum = 0, xmax = 0;
        for (int i = 0; i < S; i++) {
            double ci = Phi_inv((i + 0.5) / S), xi = mu + s * ci;
            double zi = i == 0 ? -INFINITY : Phi_inv((double)i / S);
            double zi1 = i == S - 1 ? INFINITY : Phi_inv((double)(i + 1) / S);
            w1 += 2 * phi(ci) - phi(zi) - phi(zi1);
            x[i] = (float)xi;
            dsum += fabs((double)x[i] - xi);
            xmax = fmax(xmax, fabs(xi));
        }
        w1 *= s;
        for (size_t k = 0; k < sizeof zs / sizeof *zs; k++) {
            const float y = (float)(mu + s * zs[k]);
            dfs_forecast_scores o;
            CHECK(score(x, &y, NULL, 1, S, 1, &o) == DFS_OK, "status: %s", dfs_last_error());
            const double want = gauss_crps(mu, s, y);
            const double tol = 2 * w1 + 2 * dsum / S + round_tol(S, 2 * (xmax + fabs(y)));
            CHECK_NEAR(o.crps_sample, want, tol, "stratified S=%d z=%g (2 W1 = %.3g)", S, zs[k],
                       2 * w1);
        }
        free(x);
    }
}

/* (a2) Random draws: N = W P = 100000 entries of S = 10 draws of N(mu, s^2) each (dfs_rng),
 * truths mu + s z_e with z_e spread over [-2.5, 2.5]. The plain empirical CRPS is a biased
 * estimate:
 * E over the draws of (1/S^2) sum_ij |x_i - x_j| = ((S - 1)/S) E|X - X'|, so
 *   E crps_sample = mean_e CRPS(F, y_e) + E|X - X'| / (2S),  E|X - X'| = 2 s / sqrt(pi)
 * (+0.113 here; the "fair" form would have no bias). The spread about that mean: crps_sample is a
 * function of the N S draws whose gradient has components (1/N)(1/S)(sign(x_i - y) - (1/S) sum_j
 * sign(x_i - x_j)), each below 2/(N S) in size, so it is Lipschitz with L = sqrt(N S) 2/(N S) =
 * 2/sqrt(N S) in the draws' units, and Gaussian concentration (Tsirelson-Ibragimov-Sudakov) gives
 * P(|crps_sample - E| >= t) <= 2 exp(-t^2 / (2 L^2 s^2)): t = 6 L s = 0.012 s fails once in 3e7
 * seeds. The float draws' 24-bit Box-Muller (no |z| above 5.8) and the rounding to float move the
 * mean by under 1e-6 s, inside that. */
static void test_gauss_draws(void) {
    enum { W = 100, S = 10, P = 1000 };
    const double mu = -0.75, s = 2.0;
    float *x = malloc((size_t)W * S * P * sizeof *x), *y = malloc((size_t)W * P * sizeof *y);
    dfs_rng r;
    dfs_rng_seed(&r, 2021);
    double want = 0;
    for (int w = 0; w < W; w++)
        for (int p = 0; p < P; p++) {
            double z = -2.5 + 5.0 * ((w * P + p) % 101) / 100;
            y[w * P + p] = (float)(mu + s * z);
            want += gauss_crps(mu, s, y[w * P + p]);
        }
    want = want / (W * P) + s / (S * sqrt(M_PI));
    for (size_t i = 0; i < (size_t)W * S * P; i++) x[i] = (float)(mu + s * dfs_rng_normal(&r));
    dfs_forecast_scores o;
    CHECK(score(x, y, NULL, W, S, P, &o) == DFS_OK, "status: %s", dfs_last_error());
    const double tol = 6 * 2 / sqrt((double)W * P * S) * s;
    CHECK_NEAR(o.crps_sample, want, tol, "random draws: crps_sample vs CRPS + bias");
    /* and the result does not depend on the thread count (window sums added in order) */
    const int threads = dfs_get_threads();
    dfs_forecast_scores o1, o4;
    dfs_set_threads(1);
    CHECK(score(x, y, NULL, W, S, P, &o1) == DFS_OK, "1 thread: %s", dfs_last_error());
    dfs_set_threads(4);
    CHECK(score(x, y, NULL, W, S, P, &o4) == DFS_OK, "4 threads: %s", dfs_last_error());
    dfs_set_threads(threads);
    CHECK(memcmp(&o1, &o4, sizeof o1) == 0 && memcmp(&o, &o1, sizeof o) == 0,
          "threads change the result: %.17g %.17g %.17g", o.crps_sample, o1.crps_sample,
          o4.crps_sample);
    free(x), free(y);
}

/* (b) The quantile form with the exact quantiles of N(mu, s^2): with S = 20k + 1 samples, rank
 * q_l (S - 1) = 50 l (k = 50) is an order statistic at every level q_l = l/20, so samples
 * x_i = mu + s Phi^-1(i / (S - 1)) (the ends, not used, moved inside) give
 * Q(q_l) = mu + s Phi^-1(q_l) exactly but for rounding, and crps_quantile must equal the closed
 * form
 *   (1/19) sum_l 2 rho_q_l(y - mu - s Phi^-1(q_l)).
 * Its error: rounding the samples to float moves Q by d_l = float(x) - x and the 2-Lipschitz
 * pinball by 2 |d_l|; the rank 50 l comes out within 2u 1000 of the integer, an interpolation
 * weight of 2e-13 on a neighbouring gap (< s/10), far below d_l.
 * What 19 levels cost: the mean over levels is 20/19 times the trapezoid rule for
 * CRPS = int_0^1 2 rho_q dq on 20 cells (the loss vanishes at q = 0 and 1), so the 19-level value
 * exceeds the CRPS by 3.9% at z = 0 (0.24271 s vs 0.23369 s), 4.5% at z = 0.5, 4.9% at z = 1,
 * 5.3% at z = 2 and 3.8% at z = 3; 20000 midpoint levels come within 5e-8 s of it (z = 0..3). */
static void test_gauss_quantile_form(void) {
    enum { K = 50, S = 20 * K + 1 };
    const double mu = 0.25, s = 3.0, zs[] = {-1.5, 0.0, 0.5, 1.0, 2.0, 3.0};
    float x[S];
    for (int i = 0; i < S; i++) {
        double u = i == 0 ? 0.25 / (S - 1) : i == S - 1 ? 1 - 0.25 / (S - 1) : (double)i / (S - 1);
        x[S - 1 - i] = (float)(mu + s * Phi_inv(u)); /* stored in descending order */
    }
    for (size_t k = 0; k < sizeof zs / sizeof *zs; k++) {
        const float y = (float)(mu + s * zs[k]);
        double want = 0, tol = 0;
        for (int l = 1; l <= 19; l++) {
            const double Q = mu + s * Phi_inv(l / 20.0);
            want += pinball2(Q, y, l / 20.0) / 19;
            tol += 2 * fabs((double)x[S - 1 - K * l] - Q) / 19;
        }
        tol += round_tol(19, 2 * (fabs(mu) + 5 * s + fabs(y)));
        dfs_forecast_scores o;
        CHECK(score(x, &y, NULL, 1, S, 1, &o) == DFS_OK, "status: %s", dfs_last_error());
        CHECK_NEAR(o.crps_quantile, want, tol, "exact Gaussian quantiles z=%g", zs[k]);
        /* the 19-level gap stated above, for the closed forms used here */
        const double gap = want / gauss_crps(mu, s, y);
        CHECK(gap > 1.03 && gap < 1.06, "z=%g: 19-level form / CRPS = %.4f, stated 1.038..1.054",
              zs[k], gap);
    }
}

int main(void) {
    test_one_sample();
    test_two_samples();
    test_four_samples();
    test_coverage();
    test_mask_nan();
    test_errors();
    test_random_references();
    test_gauss_stratified();
    test_gauss_draws();
    test_gauss_quantile_form();
    return check_summary("test_crps");
}
