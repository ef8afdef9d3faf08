/* crps.c - probabilistic forecast scores of sample ensembles, as CSDI reports them (Tashiro et
 * al. 2021, "CSDI: conditional score-based diffusion models for probabilistic time series
 * imputation", section 6 and their utils.py: calc_quantile_CRPS).
 *
 * For each scored entry, with truth y and S samples x_1..x_S sorted into x_(0) <= ... <= x_(S-1):
 *
 *   quantiles   Q(q) by linear interpolation between order statistics (Hyndman & Fan 1996,
 *               definition 7; numpy's default "linear", torch.quantile): rank h = q (S - 1),
 *               Q = x_(floor h) + (h - floor h)(x_(floor h + 1) - x_(floor h)).
 *   quantile    2 rho_q(y - Q(q)) = 2 |(Q - y)((y <= Q) - q)| (the pinball loss), at the 19 levels
 *     CRPS      q = 0.05, 0.10, ..., 0.95, averaged over the levels: the quantile-loss form of the
 *               CRPS, CRPS(F, y) = int_0^1 2 rho_q(y - F^-1(q)) dq (Laio & Tamea 2007, eq. 6;
 *               Gneiting & Ranjan 2011), on a grid of 19 levels.
 *   sample      the exact CRPS of the samples' empirical distribution F_S (Gneiting & Raftery 2007,
 *     CRPS      eq. 21): E|X - y| - 1/2 E|X - X'|
 *                 = (1/S) sum_i |x_i - y| - (1/S^2) sum_{i<j} |x_i - x_j|,
 *               with all S^2 ordered pairs (i = j included) in the second mean: the plain
 *               empirical form, not the "fair" one of Ferro (2014) that divides by S (S - 1).
 *               sum_{i<j} |x_i - x_j| = sum_i x_(i) (2i - S + 1) (0-based)
 *                                     = sum_k (x_(k+1) - x_(k)) (k + 1)(S - 1 - k),
 *               the second (gaps) form used here: its terms are all >= 0, so it loses nothing to
 *               cancellation when the samples sit far from zero.
 *
 * CSDI's "CRPS" is the normalised quantile form: sum over levels of (sum over scored entries of the
 * loss) / (sum over scored entries of |y|), divided by 19: ncrps_quantile here. The un-normalised
 * means per entry are reported next to it. CSDI's code computes 1{y <= Q} - q as a float32 tensor
 * even for float64 data ((target <= q_pred) * 1.0 takes torch's default dtype), so its value
 * differs from the double one here by up to 2^-24 relative, besides its float32 arithmetic.
 *
 * Everything is in double. The windows are scored in parallel, each into its own partial sums,
 * which are then added in window order: the result does not depend on the thread count. */
#include "diffuse/eval.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Level l of the quantile CRPS, l = 0..DFS_CRPS_LEVELS-1: q = (l + 1) / 20. CSDI takes
 * numpy.arange(0.05, 1.0, 0.05), whose values differ from these by at most one unit in the last
 * place; the quantiles move by as little. */
static double level(int l) { return (double)(l + 1) / 20.0; }
enum { L05 = 0, L25 = 4, L50 = 9, L75 = 14, L95 = 18 }; /* the levels of 0.05, 0.25, ..., 0.95 */

/* The q-quantile of n >= 1 sorted values by linear interpolation between order statistics. The
 * interpolation is the two-sided form of torch.lerp and numpy's _lerp (a + w (b - a) below
 * w = 1/2, b - (1 - w)(b - a) from there), with fused multiply-adds as torch's CPU kernel
 * computes it: in double this equals torch.quantile, CSDI's function, bit for bit (checked with
 * torch 1.13 on 9,120 random quantiles, S = 1 to 1000), and numpy.quantile, which rounds the
 * product separately, within one rounding. Writing fma() also keeps the result from depending on
 * whether a compiler contracts a + w (b - a) on its own (clang does by default). */
static double quantile_sorted(const double *x, int n, double q) {
    const double h = q * (n - 1);
    const int lo = (int)h; /* h >= 0: truncation is floor */
    if (lo >= n - 1) return x[n - 1];
    const double w = h - lo, a = x[lo], b = x[lo + 1];
    return w < 0.5 ? fma(w, b - a, a) : fma(a - b, 1 - w, b);
}

static int cmp_double(const void *pa, const void *pb) {
    const double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* One window's sums over its scored entries. */
typedef struct {
    double pinball; /* sum over entries and levels of 2 rho_q(y - Q(q)) */
    double crps;    /* sum over entries of the sample CRPS */
    double abs_y;   /* sum of |y| */
    double abs_med; /* sum of |Q(0.5) - y| */
    double med_err; /* sum of Q(0.5) - y */
    long n, in50, in90;
    size_t bad;     /* the first entry with a non-finite sample or an infinite truth, or P */
    int bad_sample; /* its first non-finite sample, or -1 for an infinite truth */
} window_sums;

/* Adds one entry, y and its S samples sorted in x (S), to *ws. */
static void score_entry(const double *x, int S, double y, window_sums *ws) {
    double Q[DFS_CRPS_LEVELS];
    for (int l = 0; l < DFS_CRPS_LEVELS; l++) {
        const double q = level(l);
        Q[l] = quantile_sorted(x, S, q);
        ws->pinball += 2 * fabs((Q[l] - y) * ((y <= Q[l] ? 1.0 : 0.0) - q));
    }
    double dev = 0, spread = 0; /* sum_i |x_i - y|, sum_{i<j} |x_i - x_j| */
    for (int i = 0; i < S; i++) dev += fabs(x[i] - y);
    for (int k = 0; k + 1 < S; k++) spread += (x[k + 1] - x[k]) * ((double)(k + 1) * (S - 1 - k));
    ws->crps += dev / S - spread / ((double)S * S);
    ws->abs_y += fabs(y);
    ws->abs_med += fabs(Q[L50] - y);
    ws->med_err += Q[L50] - y;
    ws->in50 += Q[L25] <= y && y <= Q[L75];
    ws->in90 += Q[L05] <= y && y <= Q[L95];
    ws->n++;
}

/* Scores window w into *ws, with x (S) as room to sort. */
static void score_window(const float *samples, const float *truth, const uint8_t *mask, int w,
                         int S, size_t P, double *x, window_sums *ws) {
    memset(ws, 0, sizeof *ws);
    ws->bad = P;
    const float *tw = truth + (size_t)w * P;
    const uint8_t *mw = mask ? mask + (size_t)w * P : NULL;
    const float *sw = samples + (size_t)w * S * P; /* (S, P) */
    for (size_t p = 0; p < P; p++) {
        const double y = tw[p];
        if ((mw && !mw[p]) || isnan(y)) continue;
        if (isinf(y)) {
            ws->bad = p, ws->bad_sample = -1;
            return;
        }
        for (int s = 0; s < S; s++) {
            x[s] = sw[(size_t)s * P + p];
            if (!isfinite(x[s])) {
                ws->bad = p, ws->bad_sample = s;
                return;
            }
        }
        qsort(x, (size_t)S, sizeof *x, cmp_double);
        score_entry(x, S, y, ws);
    }
}

static void fill_nan(dfs_forecast_scores *out) {
    out->crps_quantile = out->crps_sample = out->ncrps_quantile = out->ncrps_sample = NAN;
    out->mae_median = out->cover50 = out->cover90 = out->bias_median = NAN;
    out->n = 0;
}

dfs_status dfs_forecast_score(const float *samples, const float *truth, const uint8_t *mask, int W,
                              int S, size_t P, dfs_forecast_scores *out) {
    if (out) fill_nan(out);
    if (!samples || !truth || !out || W < 1 || S < 1 || P < 1) {
        dfs_set_error("forecast scores: NULL array or empty shape (%d windows of %d samples of "
                      "%zu entries)", W, S, P);
        return DFS_ERR_ARG;
    }
    if (P > SIZE_MAX / sizeof(float) / (size_t)W / (size_t)S) {
        dfs_set_error("forecast scores: %d x %d x %zu samples overflow the address space", W, S, P);
        return DFS_ERR_ARG;
    }
    window_sums *ws = malloc((size_t)W * sizeof *ws);
    if (!ws) {
        dfs_set_error("forecast scores: out of memory for the sums of %d windows", W);
        return DFS_ERR_NOMEM;
    }
    int nomem = 0;
#pragma omp parallel
    {
        double *x = malloc((size_t)S * sizeof *x); /* this thread's room to sort one entry */
        if (!x) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int w = 0; w < W; w++)
            if (x) score_window(samples, truth, mask, w, S, P, x, &ws[w]);
        free(x);
    }
    dfs_status st = DFS_OK;
    window_sums t = {0};
    if (nomem) {
        dfs_set_error("forecast scores: out of memory for %d samples per thread", S);
        st = DFS_ERR_NOMEM;
        goto done;
    }
    for (int w = 0; w < W; w++) {
        if (ws[w].bad < P) {
            if (ws[w].bad_sample < 0)
                dfs_set_error("forecast scores: the truth of entry %zu of window %d is infinite",
                              ws[w].bad, w);
            else
                dfs_set_error("forecast scores: sample %d of entry %zu of window %d is not finite",
                              ws[w].bad_sample, ws[w].bad, w);
            st = DFS_ERR_NAN;
            goto done;
        }
        t.pinball += ws[w].pinball;
        t.crps += ws[w].crps;
        t.abs_y += ws[w].abs_y;
        t.abs_med += ws[w].abs_med;
        t.med_err += ws[w].med_err;
        t.n += ws[w].n;
        t.in50 += ws[w].in50;
        t.in90 += ws[w].in90;
    }
    if (t.n == 0) {
        dfs_set_error("forecast scores: no entry to score (the mask is all zero or the truth all "
                      "NaN in %d windows of %zu entries)", W, P);
        st = DFS_ERR_ARG;
        goto done;
    }
    const double n = (double)t.n;
    out->crps_quantile = t.pinball / DFS_CRPS_LEVELS / n;
    out->crps_sample = t.crps / n;
    /* 0 / 0 and x / 0 (every scored truth is 0) give NaN and infinity, as CSDI's division does */
    out->ncrps_quantile = t.pinball / DFS_CRPS_LEVELS / t.abs_y;
    out->ncrps_sample = t.crps / t.abs_y;
    out->mae_median = t.abs_med / n;
    out->bias_median = t.med_err / n;
    out->cover50 = (double)t.in50 / n;
    out->cover90 = (double)t.in90 / n;
    out->n = t.n;
done:
    free(ws);
    return st;
}
