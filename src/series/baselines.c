/* series/baselines.c - the baselines a CSDI model (Tashiro et al. 2021, "CSDI: Conditional
 * score-based diffusion models for probabilistic time series imputation") is scored against,
 * declared in include/diffuse/series.h:
 *
 *   climatology      the same season's training values, drawn as whole rows
 *   seasonal naive   y[i] = y[i - period] + a stretch of training residuals
 *   ar               a VAR(p) fitted by least squares, simulated with bootstrapped residuals
 *   interp           linear interpolation plus the errors it makes on training windows
 *   gaussian         one Gaussian over a whole window, conditioned on the known entries
 *
 * Shapes: W windows, S samples, L steps a window, K features; out is (W, S, L, K).
 *
 * What a baseline sees. Every fit uses the training rows [0, train_end) only (and of them only
 * the observed entries), and of each window only its known entries: a window's hidden values,
 * and every row after the training span that is not a known entry of some window, never reach
 * an output (tests/unit/test_baselines.c changes them and compares the samples bit for bit).
 * Nothing looks before a window's first row either: a model is given the window alone, and so
 * are the baselines.
 *
 * Arithmetic is in double; each sample is rounded to float once, when written. Known entries
 * are copied from the series' floats, so they come back bit for bit. The random stream is read
 * in a fixed order (window by window, then as each function says), so one seed gives the same
 * samples on every run. */
#include "diffuse/series.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The series' value and observed flag at row r, feature k. */
#define VAL(s, r, k) ((double)(s)->values[(size_t)(r) * (s)->n_features + (k)])
#define OBS(s, r, k) ((s)->observed[(size_t)(r) * (s)->n_features + (k)])

static const char *fname(const dfs_series *s, int k) {
    return s->names && s->names[k] ? s->names[k] : "?";
}

/* The checks every baseline starts with, then out filled: known entries copied from the series
 * for every window and sample, the others NaN (so an entry a baseline forgot shows). */
static dfs_status begin(const dfs_series_task *t, int S, const dfs_rng *rng, float *out,
                        const char *name) {
    dfs_status st = dfs_series_task_check(t);
    if (st != DFS_OK) return st;
    if (S < 1 || !rng || !out) {
        dfs_set_error("%s baseline: %d samples a window (want >= 1), rng %s, out %s", name, S,
                      rng ? "set" : "NULL", out ? "set" : "NULL");
        return DFS_ERR_ARG;
    }
    const size_t W = (size_t)t->W, L = (size_t)t->L, K = (size_t)t->s->n_features;
    if ((size_t)S > SIZE_MAX / sizeof(double) / W / L / K) {
        dfs_set_error("%s baseline: %zu x %d x %zu x %zu samples overflow", name, W, S, L, K);
        return DFS_ERR_NOMEM;
    }
    for (size_t w = 0; w < W; w++) {
        const uint8_t *kn = t->known + w * L * K;
        const float *x = t->s->values + (size_t)t->start[w] * K;
        for (size_t s = 0; s < (size_t)S; s++) {
            float *o = out + (w * S + s) * L * K;
            for (size_t j = 0; j < L * K; j++)
                o[j] = kn[j] ? x[j] : NAN;
        }
    }
    return DFS_OK;
}

static dfs_status nomem(const char *name) {
    dfs_set_error("%s baseline: out of memory", name);
    return DFS_ERR_NOMEM;
}

static int row_full(const dfs_series *s, int r) {
    for (int k = 0; k < s->n_features; k++)
        if (!OBS(s, r, k)) return 0;
    return 1;
}

/* The starts r (0 <= r <= train_end - L) of the training windows whose L * K entries are all
 * observed, into starts (room for train_end rows); returns their count. */
static int full_windows(const dfs_series_task *t, int *starts) {
    int n = 0, run = 0; /* run: fully observed rows ending at r */
    for (int r = 0; r < t->train_end; r++) {
        run = row_full(t->s, r) ? run + 1 : 0;
        if (run >= t->L) starts[n++] = r - t->L + 1;
    }
    return n;
}

/* Each feature's mean over its observed training entries into mean[K] (NaN for a feature that
 * has none). */
static void train_means(const dfs_series_task *t, double *mean) {
    const dfs_series *s = t->s;
    for (int k = 0; k < s->n_features; k++) {
        double sum = 0;
        long n = 0;
        for (int r = 0; r < t->train_end; r++)
            if (OBS(s, r, k)) sum += VAL(s, r, k), n++;
        mean[k] = n ? sum / n : NAN;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Climatology                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* The season of a time: the day of the year 0..365 (UTC) for a daily or coarser step, the hour
 * of the day 0..23 for a finer one. */
static int season(int64_t time, int daily) {
    if (daily) {
        time_t tt = (time_t)time;
        struct tm tm;
        if (!gmtime_r(&tt, &tm)) return 0;
        return tm.tm_yday;
    }
    int64_t sod = (time % 86400 + 86400) % 86400;
    return (int)(sod / 3600);
}

/* A window row's unknown entries are drawn from the training rows of the same season (the
 * empirical climatology, e.g. Wilks 2011, "Statistical methods in the atmospheric sciences",
 * sec. 7.9: the reference forecast of a skill score). With a daily or coarser step the season
 * is the day of the year, and the pool is every training row within 7 days of it in any year
 * (days counted round a 366-day circle, tm_yday, so Dec 31 and Jan 1 are neighbours); with a
 * finer step it is the hour of the day, and the pool is the training rows at that hour within
 * the last 28 days of the training span (the weather of four weeks, not of other years).
 *
 * Rows are drawn whole: each sample takes one pool row, uniformly among those that observe
 * every feature the window row lacks, and copies those features, so the features keep their
 * joint distribution. When no pool row observes all of them, each feature is drawn on its own
 * from the pool rows that observe it. Samples are independent from row to row and from sample
 * to sample (a marginal forecast: no serial dependence). Random stream: for each window, row
 * and sample, one index (per missing feature, in feature order, when drawn one by one). */
dfs_status dfs_baseline_climatology(const dfs_series_task *t, int S, dfs_rng *rng, float *out) {
    const char *name = "climatology";
    dfs_status st = begin(t, S, rng, out, name);
    if (st != DFS_OK) return st;
    const dfs_series *s = t->s;
    if (s->step <= 0) {
        dfs_set_error("climatology baseline: the series has no step (one row)");
        return DFS_ERR_ARG;
    }
    const int K = s->n_features, L = t->L, daily = s->step >= 86400;
    const int nb = daily ? 366 : 24, span = daily ? 7 : 0;
    int lo = 0; /* first training row of the pool */
    if (!daily)
        while (lo < t->train_end && s->times[lo] <= s->times[t->train_end - 1] - 28 * 86400)
            lo++;
    /* Training rows by season: rows[first[b] .. first[b + 1]) are those of season b. */
    int *first = calloc(nb + 1, sizeof *first);
    int *rows = malloc(sizeof *rows * t->train_end);
    int *fill = calloc(nb, sizeof *fill);
    int *pool = malloc(sizeof *pool * t->train_end);
    int *miss = malloc(sizeof *miss * K);
    if (!first || !rows || !fill || !pool || !miss) {
        st = nomem(name);
        goto done;
    }
    for (int r = lo; r < t->train_end; r++)
        first[season(s->times[r], daily) + 1]++;
    for (int b = 0; b < nb; b++)
        first[b + 1] += first[b];
    for (int r = lo; r < t->train_end; r++) {
        int b = season(s->times[r], daily);
        rows[first[b] + fill[b]++] = r;
    }
    for (int w = 0; w < t->W; w++)
        for (int i = 0; i < L; i++) {
            const uint8_t *kn = t->known + ((size_t)w * L + i) * K;
            int nm = 0;
            for (int k = 0; k < K; k++)
                if (!kn[k]) miss[nm++] = k;
            if (!nm) continue;
            int key = season(s->times[t->start[w] + i], daily), m = 0;
            for (int d = -span; d <= span; d++) {
                int b = ((key + d) % nb + nb) % nb;
                for (int j = first[b]; j < first[b + 1]; j++) {
                    int ok = 1;
                    for (int q = 0; q < nm && ok; q++)
                        ok = OBS(s, rows[j], miss[q]);
                    if (ok) pool[m++] = rows[j];
                }
            }
            if (m) {
                for (int smp = 0; smp < S; smp++) {
                    int r = pool[dfs_rng_below(rng, (uint32_t)m)];
                    float *o = out + (((size_t)w * S + smp) * L + i) * K;
                    for (int q = 0; q < nm; q++)
                        o[miss[q]] = s->values[(size_t)r * K + miss[q]];
                }
                continue;
            }
            for (int q = 0; q < nm; q++) {
                int k = miss[q];
                m = 0;
                for (int d = -span; d <= span; d++) {
                    int b = ((key + d) % nb + nb) % nb;
                    for (int j = first[b]; j < first[b + 1]; j++)
                        if (OBS(s, rows[j], k)) pool[m++] = rows[j];
                }
                if (!m) {
                    if (daily)
                        dfs_set_error("climatology baseline: no training value of %s within 7 "
                                      "days of day %d of the year (window %d, step %d)",
                                      fname(s, k), key + 1, w, i);
                    else
                        dfs_set_error("climatology baseline: no training value of %s at hour "
                                      "%d in the last 28 days of training (window %d, step %d)",
                                      fname(s, k), key, w, i);
                    st = DFS_ERR_ARG;
                    goto done;
                }
                for (int smp = 0; smp < S; smp++) {
                    int r = pool[dfs_rng_below(rng, (uint32_t)m)];
                    out[(((size_t)w * S + smp) * L + i) * K + k] = s->values[(size_t)r * K + k];
                }
            }
        }
done:
    free(first);
    free(rows);
    free(fill);
    free(pool);
    free(miss);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Seasonal naive                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* How an unknown entry (i, k) of a window gets its value, from the known entries of its chain
 * i + m * period (m any integer, the rows of the same phase in the window). */
enum { SN_KNOWN, SN_FWD, SN_BWD, SN_NEAR, SN_MEAN };

/* The seasonal random walk y[i] = y[i - P] + r[i] (the seasonal naive method with bootstrapped
 * residuals: Hyndman & Athanasopoulos, "Forecasting: principles and practice", 3rd ed., sec.
 * 5.2 and 5.5). For a forecast h steps past the last known row this is the last known value of
 * the same phase plus ceil(h / P) residuals, the seasonal naive's widening spread.
 *
 * Residual rows r[t] = y[t] - y[t - P], t in [P, train_end), make a circular list of nr =
 * train_end - P rows (an entry is missing unless both values are observed). Each sample path
 * takes one stretch of L consecutive rows of it, from a uniform start b0 (row i of the window
 * gets residual row (b0 + i) mod nr; the circular block bootstrap of Politis & Romano 1992
 * with one block a window), so the residuals keep their serial and cross-feature dependence
 * and, two periods ahead, r[i - P] + r[i] is a real training difference y[t] - y[t - 2P]. A
 * missing residual entry in the stretch is replaced by an observed residual of that feature
 * drawn uniformly.
 *
 * Each unknown entry walks from the known entries of its chain: forward from the latest one
 * before it (y[i] = y[i - P] + r[i]), else backward from the first one after it (y[i] =
 * y[i + P] - r[i + P], the same walk read the other way: imputation before the first known
 * period). An entry whose chain has no known entry (possible only in imputation, or with a
 * context shorter than a period) falls back to the nearest known entry of its feature in the
 * window (the earlier at equal distance), else to the feature's training mean, plus r[i].
 *
 * Random stream: for each window and sample, the start b0, then a replacement index for each
 * missing residual entry of the stretch, row by row. */
dfs_status dfs_baseline_seasonal_naive(const dfs_series_task *t, int period, int S, dfs_rng *rng,
                                       float *out) {
    const char *name = "seasonal naive";
    dfs_status st = begin(t, S, rng, out, name);
    if (st != DFS_OK) return st;
    const dfs_series *s = t->s;
    const int K = s->n_features, L = t->L, P = period;
    if (P < 1 || P >= L || P >= t->train_end) {
        dfs_set_error("seasonal naive baseline: period %d outside 1..%d (below the window "
                      "length %d and the training span of %d rows)",
                      P, (L < t->train_end ? L : t->train_end) - 1, L, t->train_end);
        return DFS_ERR_ARG;
    }
    const int nr = t->train_end - P;
    double *res = malloc(sizeof *res * nr * K); /* (nr, K), NaN where missing */
    int *seen = malloc(sizeof *seen * nr * K);  /* (K, nr): observed residual rows */
    int *nseen = calloc(K, sizeof *nseen);
    double *mean = malloc(sizeof *mean * K);
    uint8_t *how = malloc((size_t)L * K);     /* (L, K) SN_* */
    int *near = malloc(sizeof *near * L * K); /* (L, K) row of the SN_NEAR anchor */
    double *r = malloc(sizeof *r * L * K);    /* (L, K) this path's residuals */
    double *y = malloc(sizeof *y * L * K);    /* (L, K) this path */
    if (!res || !seen || !nseen || !mean || !how || !near || !r || !y) {
        st = nomem(name);
        goto done;
    }
    for (int j = 0; j < nr; j++)
        for (int k = 0; k < K; k++) {
            int tt = P + j;
            if (OBS(s, tt, k) && OBS(s, tt - P, k)) {
                res[(size_t)j * K + k] = VAL(s, tt, k) - VAL(s, tt - P, k);
                seen[(size_t)k * nr + nseen[k]++] = j;
            } else {
                res[(size_t)j * K + k] = NAN;
            }
        }
    for (int k = 0; k < K; k++)
        if (!nseen[k]) {
            dfs_set_error("seasonal naive baseline: no training residual y[t] - y[t - %d] of %s "
                          "(no two observed values a period apart in rows 0..%d)",
                          P, fname(s, k), t->train_end - 1);
            st = DFS_ERR_ARG;
            goto done;
        }
    train_means(t, mean);
    for (int w = 0; w < t->W; w++) {
        const uint8_t *kn = t->known + (size_t)w * L * K;
        const float *x = s->values + (size_t)t->start[w] * K;
        for (int i = 0; i < L; i++)
            for (int k = 0; k < K; k++) {
                size_t e = (size_t)i * K + k;
                if (kn[e]) {
                    how[e] = SN_KNOWN;
                    continue;
                }
                int fwd = 0, bwd = 0, nb = -1;
                for (int j = i - P; j >= 0 && !fwd; j -= P)
                    fwd = kn[(size_t)j * K + k];
                for (int j = i + P; j < L && !bwd; j += P)
                    bwd = kn[(size_t)j * K + k];
                for (int d = 1; d < L && nb < 0; d++) {
                    if (i - d >= 0 && kn[(size_t)(i - d) * K + k])
                        nb = i - d;
                    else if (i + d < L && kn[(size_t)(i + d) * K + k])
                        nb = i + d;
                }
                how[e] = fwd ? SN_FWD : bwd ? SN_BWD : nb >= 0 ? SN_NEAR : SN_MEAN;
                near[e] = nb;
            }
        for (int smp = 0; smp < S; smp++) {
            int b0 = (int)dfs_rng_below(rng, (uint32_t)nr);
            for (int i = 0; i < L; i++) {
                const double *src = res + (size_t)((b0 + i) % nr) * K;
                for (int k = 0; k < K; k++) {
                    double v = src[k];
                    if (isnan(v))
                        v = res[(size_t)seen[(size_t)k * nr +
                                             dfs_rng_below(rng, (uint32_t)nseen[k])] *
                                    K +
                                k];
                    r[(size_t)i * K + k] = v;
                }
            }
            for (size_t e = 0; e < (size_t)L * K; e++) {
                size_t k = e % K;
                switch (how[e]) {
                case SN_KNOWN:
                    y[e] = x[e];
                    break;
                case SN_FWD:
                    y[e] = y[e - (size_t)P * K] + r[e];
                    break;
                case SN_NEAR:
                    y[e] = x[(size_t)near[e] * K + k] + r[e];
                    break;
                case SN_MEAN:
                    y[e] = mean[k] + r[e];
                    break;
                default:
                    break; /* SN_BWD: below */
                }
            }
            for (size_t e = (size_t)L * K; e-- > 0;)
                if (how[e] == SN_BWD) y[e] = y[e + (size_t)P * K] - r[e + (size_t)P * K];
            float *o = out + ((size_t)w * S + smp) * L * K;
            for (size_t e = 0; e < (size_t)L * K; e++)
                if (how[e] != SN_KNOWN) o[e] = (float)y[e];
        }
    }
done:
    free(res);
    free(seen);
    free(nseen);
    free(mean);
    free(how);
    free(near);
    free(r);
    free(y);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Vector autoregression                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* A VAR(p), p = lags: y[t] = c + A_1 y[t-1] + ... + A_p y[t-p] + e[t], all K features on all K
 * features' lags, fitted by multivariate least squares (Luetkepohl 2005, "New introduction to
 * multiple time series analysis", sec. 3.2: one least-squares problem per feature, same
 * regressors) on every training row t whose rows t - p .. t are fully observed. The solver is
 * LAPACK's dgelsd (SVD, rcond = machine precision), which gives the minimum-norm solution when
 * the regressors are collinear (a constant feature, a feature that copies another) instead of
 * dividing by a zero pivot as a QR solve (dgels) would.
 *
 * Sample paths run forward row by row: the unknown entries of row i are c + sum_j A_j y[i - j]
 * plus one whole residual row of the fit (e[t] for a uniform fitted row t, so the features'
 * residuals keep their joint law: the residual bootstrap, Efron & Tibshirani 1993, "An
 * introduction to the bootstrap", sec. 8.5); known entries are held at their values, and the
 * path goes on from them. Rows before the window (lags of the window's first p rows) are not
 * looked at: each path stands in the p training rows before a uniformly drawn fitted row (a
 * real stretch of the training span), so an unknown entry in the first p rows is drawn from
 * about the series' stationary law rather than from a made-up history. Known entries later in
 * the window do not pull earlier simulated rows towards them (a filter, not a smoother).
 *
 * Random stream: for each window and sample, the stand-in history's row, then one residual row
 * for each window row with an unknown entry. */
dfs_status dfs_baseline_ar(const dfs_series_task *t, int lags, int S, dfs_rng *rng, float *out) {
    const char *name = "ar";
    dfs_status st = begin(t, S, rng, out, name);
    if (st != DFS_OK) return st;
    const dfs_series *s = t->s;
    const int K = s->n_features, L = t->L, p = lags;
    if (p < 1 || p >= t->train_end || p > 100000 / K) {
        dfs_set_error("ar baseline: %d lags outside 1..%d", p,
                      (t->train_end - 1 < 100000 / K ? t->train_end - 1 : 100000 / K));
        return DFS_ERR_ARG;
    }
    const int nc = 1 + p * K; /* coefficients per feature: intercept, then lag 1's K, ... */
    int *fit = malloc(sizeof *fit * t->train_end); /* the fitted rows t */
    int n = 0, run = 0;
    if (!fit) return nomem(name);
    for (int r = 0; r < t->train_end; r++) {
        run = row_full(s, r) ? run + 1 : 0;
        if (run >= p + 1) fit[n++] = r;
    }
    if (n <= nc) {
        dfs_set_error("ar baseline: %d training rows with %d fully observed rows of history, "
                      "need more than the %d coefficients a feature of a VAR(%d) on %d "
                      "features has",
                      n, p, nc, p, K);
        free(fit);
        return DFS_ERR_ARG;
    }
    const int ldb = n;                               /* n > nc */
    double *X = malloc(sizeof *X * (size_t)n * nc);  /* (n, nc) column-major */
    double *B = malloc(sizeof *B * (size_t)ldb * K); /* (n, K) column-major: targets, then
                                                       coefficients in its first nc rows */
    double *sv = malloc(sizeof *sv * nc);
    double *E = malloc(sizeof *E * (size_t)n * K);             /* (n, K) residual rows */
    double *path = malloc(sizeof *path * (size_t)(p + L) * K); /* (p + L, K) */
    if (!X || !B || !sv || !E || !path) {
        st = nomem(name);
        goto done;
    }
    for (int j = 0; j < n; j++) {
        int r = fit[j];
        X[j] = 1;
        for (int l = 1; l <= p; l++)
            for (int k = 0; k < K; k++)
                X[(size_t)(1 + (l - 1) * K + k) * n + j] = VAL(s, r - l, k);
        for (int k = 0; k < K; k++)
            B[(size_t)k * ldb + j] = VAL(s, r, k);
    }
    lapack_int rank = 0;
    lapack_int info = LAPACKE_dgelsd(LAPACK_COL_MAJOR, n, nc, K, X, n, B, ldb, sv, -1.0, &rank);
    if (info != 0) {
        dfs_set_error("ar baseline: the least-squares fit failed (dgelsd info %d)", (int)info);
        st = DFS_ERR_ARG;
        goto done;
    }
    /* Coefficient c of feature k's equation: B[k * ldb + c]. Residuals from the data. */
    for (int j = 0; j < n; j++) {
        int r = fit[j];
        for (int k = 0; k < K; k++) {
            const double *b = B + (size_t)k * ldb;
            double pred = b[0];
            for (int l = 1; l <= p; l++)
                for (int q = 0; q < K; q++)
                    pred += b[1 + (l - 1) * K + q] * VAL(s, r - l, q);
            E[(size_t)j * K + k] = VAL(s, r, k) - pred;
        }
    }
    for (int w = 0; w < t->W; w++) {
        const uint8_t *kn = t->known + (size_t)w * L * K;
        const float *x = s->values + (size_t)t->start[w] * K;
        for (int smp = 0; smp < S; smp++) {
            int h = fit[dfs_rng_below(rng, (uint32_t)n)];
            for (int l = 0; l < p; l++)
                for (int k = 0; k < K; k++)
                    path[(size_t)l * K + k] = VAL(s, h - p + l, k);
            float *o = out + ((size_t)w * S + smp) * L * K;
            for (int i = 0; i < L; i++) {
                double *y = path + (size_t)(p + i) * K;
                const uint8_t *ki = kn + (size_t)i * K;
                int all = 1;
                for (int k = 0; k < K; k++)
                    all &= ki[k] != 0;
                if (all) {
                    for (int k = 0; k < K; k++)
                        y[k] = x[(size_t)i * K + k];
                    continue;
                }
                const double *e = E + (size_t)dfs_rng_below(rng, (uint32_t)n) * K;
                for (int k = 0; k < K; k++) {
                    if (ki[k]) {
                        y[k] = x[(size_t)i * K + k];
                        continue;
                    }
                    const double *b = B + (size_t)k * ldb;
                    double pred = b[0];
                    for (int l = 1; l <= p; l++)
                        for (int q = 0; q < K; q++)
                            pred += b[1 + (l - 1) * K + q] * y[q - l * K];
                    y[k] = pred + e[k];
                    o[(size_t)i * K + k] = (float)y[k];
                }
            }
        }
    }
done:
    free(fit);
    free(X);
    free(B);
    free(sv);
    free(E);
    free(path);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Interpolation with empirical errors                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Feature k of one window x (L, K) with known mask kn (L, K), filled in y (L, K) at the
 * unknown entries: linear between the nearest known entries before and after, the nearest
 * known value beyond the first or last one, and `fill` if the feature has no known entry. */
static void interp_feature(const double *x, const uint8_t *kn, int L, int K, int k, double fill,
                           double *y) {
    int a = -1; /* last known row so far */
    for (int i = 0; i < L; i++) {
        size_t e = (size_t)i * K + k;
        if (kn[e]) {
            y[e] = x[e];
            a = i;
            continue;
        }
        int b = i + 1;
        while (b < L && !kn[(size_t)b * K + k])
            b++;
        if (a < 0 && b >= L)
            y[e] = fill;
        else if (a < 0)
            y[e] = x[(size_t)b * K + k];
        else if (b >= L)
            y[e] = x[(size_t)a * K + k];
        else {
            double xa = x[(size_t)a * K + k], xb = x[(size_t)b * K + k];
            /* product first: exact for integer data on a line */
            y[e] = xa + (xb - xa) * (double)(i - a) / (double)(b - a);
        }
    }
}

/* Each feature is interpolated between the window's known entries (interp_feature; a feature
 * with no known entry in the window takes its training mean). The error is drawn from the
 * errors that the same interpolation makes on training data: n_ref training windows of L
 * fully observed rows are drawn uniformly (with replacement) once per call; for each window of
 * the task its own known mask is laid on each of them, they are interpolated the same way, and
 * their errors (truth - interpolation) at the unknown entries are kept. Each sample path adds
 * one whole reference window's error pattern (a uniform one of the n_ref), so the errors keep
 * their correlation across steps and features, and the spread grows with the distance to the
 * nearest known entry as it does in the training data. With a training span that is linear in
 * time the errors reproduce exactly what the interpolation misses, so the samples are exact.
 *
 * Random stream: n_ref window starts, then for each window and sample one reference index. */
dfs_status dfs_baseline_interp(const dfs_series_task *t, int n_ref, int S, dfs_rng *rng,
                               float *out) {
    const char *name = "interp";
    dfs_status st = begin(t, S, rng, out, name);
    if (st != DFS_OK) return st;
    const dfs_series *s = t->s;
    const int K = s->n_features, L = t->L;
    const size_t LK = (size_t)L * K;
    if (n_ref < 1 || (size_t)n_ref > SIZE_MAX / sizeof(double) / LK / 2) {
        dfs_set_error("interp baseline: %d reference windows (want at least 1)", n_ref);
        return DFS_ERR_ARG;
    }
    int *starts = malloc(sizeof *starts * t->train_end);
    int *ref = malloc(sizeof *ref * n_ref);
    double *mean = malloc(sizeof *mean * K);
    double *err = malloc(sizeof *err * n_ref * LK);                  /* (n_ref, L, K) */
    double *x = malloc(sizeof *x * LK), *y = malloc(sizeof *y * LK); /* (L, K) */
    if (!starts || !ref || !mean || !err || !x || !y) {
        st = nomem(name);
        goto done;
    }
    int nv = full_windows(t, starts);
    if (!nv) {
        dfs_set_error("interp baseline: no training window of %d fully observed rows in rows "
                      "0..%d",
                      L, t->train_end - 1);
        st = DFS_ERR_ARG;
        goto done;
    }
    for (int j = 0; j < n_ref; j++)
        ref[j] = starts[dfs_rng_below(rng, (uint32_t)nv)];
    train_means(t, mean); /* every feature observed: a fully observed window exists */
    for (int w = 0; w < t->W; w++) {
        const uint8_t *kn = t->known + (size_t)w * LK;
        for (int j = 0; j < n_ref; j++) {
            const float *v = s->values + (size_t)ref[j] * K;
            for (size_t e = 0; e < LK; e++)
                x[e] = v[e];
            for (int k = 0; k < K; k++)
                interp_feature(x, kn, L, K, k, mean[k], y);
            for (size_t e = 0; e < LK; e++)
                err[j * LK + e] = kn[e] ? 0 : x[e] - y[e];
        }
        const float *v = s->values + (size_t)t->start[w] * K;
        for (size_t e = 0; e < LK; e++)
            x[e] = kn[e] ? v[e] : 0; /* hidden values unread */
        for (int k = 0; k < K; k++)
            interp_feature(x, kn, L, K, k, mean[k], y);
        for (int smp = 0; smp < S; smp++) {
            const double *d = err + dfs_rng_below(rng, (uint32_t)n_ref) * LK;
            float *o = out + ((size_t)w * S + smp) * LK;
            for (size_t e = 0; e < LK; e++)
                if (!kn[e]) o[e] = (float)(y[e] + d[e]);
        }
    }
done:
    free(starts);
    free(ref);
    free(mean);
    free(err);
    free(x);
    free(y);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Gaussian over a window                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* The conditional law of one known pattern: D = L * K entries, nk known (kidx), nu unknown
 * (uidx); A (nk, nu) = S_kk^-1 S_ku and the lower Cholesky factor C (nu, nu) of
 * S_uu - S_uk S_kk^-1 S_ku, both column-major. */
typedef struct {
    uint8_t *mask; /* (L, K) the pattern it was made for */
    int nk, nu;
    int *kidx, *uidx;
    double *A, *C;
} gauss_cond;

/* Fill g for the pattern kn from the mean-free covariance cov (D, D). */
static dfs_status gauss_condition(const double *cov, int D, const uint8_t *kn, gauss_cond *g) {
    memcpy(g->mask, kn, (size_t)D);
    g->nk = g->nu = 0;
    for (int e = 0; e < D; e++) {
        if (kn[e])
            g->kidx[g->nk++] = e;
        else
            g->uidx[g->nu++] = e;
    }
    const int nk = g->nk, nu = g->nu;
    if (!nu) return DFS_OK;
    double *Skk = NULL;
    double *C = g->C, *A = g->A;
    for (int b = 0; b < nu; b++)
        for (int a = 0; a < nu; a++)
            C[(size_t)b * nu + a] = cov[(size_t)g->uidx[a] * D + g->uidx[b]];
    if (nk) {
        Skk = malloc(sizeof *Skk * (size_t)nk * nk);
        if (!Skk) return nomem("gaussian");
        for (int b = 0; b < nk; b++)
            for (int a = 0; a < nk; a++)
                Skk[(size_t)b * nk + a] = cov[(size_t)g->kidx[a] * D + g->kidx[b]];
        for (int b = 0; b < nu; b++)
            for (int a = 0; a < nk; a++)
                A[(size_t)b * nk + a] = cov[(size_t)g->kidx[a] * D + g->uidx[b]];
        /* S_kk = F F^T, A = S_kk^-1 S_ku, then C = S_uu - S_ku^T A (PRML eq. 2.82). */
        lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', nk, Skk, nk);
        if (!info) info = LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', nk, nu, Skk, nk, A, nk);
        if (info) {
            free(Skk);
            dfs_set_error("gaussian baseline: the known entries' covariance is not positive "
                          "definite (dpotrf/dpotrs info %d)",
                          (int)info);
            return DFS_ERR_ARG;
        }
        free(Skk);
        /* C -= S_uk A, read straight from cov's (uidx, kidx) block, lower half mirrored */
        for (int b = 0; b < nu; b++)
            for (int a = b; a < nu; a++) {
                double sum = 0;
                const double *Ab = A + (size_t)b * nk;
                const double *ca = cov + (size_t)g->uidx[a] * D;
                for (int q = 0; q < nk; q++)
                    sum += ca[g->kidx[q]] * Ab[q];
                C[(size_t)b * nu + a] -= sum;
                C[(size_t)a * nu + b] = C[(size_t)b * nu + a];
            }
    }
    /* The ridge keeps S positive definite, and so its Schur complement C, with eigenvalues at
     * least the ridge; rounding can still break a Cholesky at a near-zero pivot. Then a jitter
     * of 1e-10, 1e-8, ... of C's mean diagonal is added until it goes through. */
    double tr = 0;
    for (int a = 0; a < nu; a++)
        tr += C[(size_t)a * nu + a];
    double *C0 = malloc(sizeof *C0 * (size_t)nu * nu);
    if (!C0) return nomem("gaussian");
    memcpy(C0, C, sizeof *C0 * (size_t)nu * nu);
    double jitter = 0;
    for (int tries = 0;; tries++) {
        lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', nu, C, nu);
        if (!info) break;
        if (tries == 6) {
            free(C0);
            dfs_set_error("gaussian baseline: the conditional covariance is not positive "
                          "definite (dpotrf info %d with a jitter of %g)",
                          (int)info, jitter);
            return DFS_ERR_ARG;
        }
        jitter = (tr > 0 ? tr / nu : 1.0) * pow(10.0, -10 + 2 * tries);
        memcpy(C, C0, sizeof *C0 * (size_t)nu * nu);
        for (int a = 0; a < nu; a++)
            C[(size_t)a * nu + a] += jitter;
    }
    free(C0); /* (dpotrf leaves C's upper half as it was; the sampler reads the lower) */
    return DFS_OK;
}

/* One Gaussian N(mu, Sigma) over the D = L * K entries of a window (time and features
 * together), fitted to every training window of L fully observed rows (sliding by one row;
 * windows with a missing entry are left out): mu the mean, Sigma the unbiased covariance
 * (divisor n - 1) plus a ridge of 1e-6 * trace(Sigma) / D on the diagonal, which keeps the
 * known entries' block invertible when the features are collinear. It needs more windows than
 * D; overlapping windows are far from independent, so many more are better. Each window is
 * then drawn from the exact conditional law given its known entries x_k (Bishop 2006, "Pattern
 * recognition and machine learning", eqs. 2.81 and 2.82):
 *
 *   mean  mu_u + S_uk S_kk^-1 (x_k - mu_k),   covariance  S_uu - S_uk S_kk^-1 S_ku,
 *
 * by Cholesky factorisations (LAPACK dpotrf/dpotrs), a sample being mean + C z with C C^T the
 * conditional covariance and z standard normal. The factors of the last known pattern are kept,
 * so a forecast task (one pattern for all windows) factors once; each new pattern costs
 * O(D^3). It is the best linear predictor under the training covariance, and the exact
 * conditional for a stationary Gaussian series; where the data are not Gaussian (skewed,
 * bounded, heavy-tailed), its spread is right only on average.
 *
 * Random stream: for each window and sample, nu normals (the unknown entries in row-major
 * order of (L, K)). */
dfs_status dfs_baseline_gaussian(const dfs_series_task *t, int S, dfs_rng *rng, float *out) {
    const char *name = "gaussian";
    dfs_status st = begin(t, S, rng, out, name);
    if (st != DFS_OK) return st;
    const dfs_series *s = t->s;
    const int K = s->n_features, L = t->L;
    if ((int64_t)L * K > 4096) {
        dfs_set_error("gaussian baseline: windows of %d x %d = %lld entries, at most 4096", L, K,
                      (long long)L * K);
        return DFS_ERR_ARG;
    }
    const int D = L * K;
    enum { CHUNK = 256 };
    gauss_cond g = {0};
    int *starts = malloc(sizeof *starts * t->train_end);
    double *mu = calloc(D, sizeof *mu);
    double *cov = calloc((size_t)D * D, sizeof *cov); /* (D, D) */
    double *Z = malloc(sizeof *Z * CHUNK * D);        /* (CHUNK, D) centred windows */
    double *m = malloc(sizeof *m * D), *z = malloc(sizeof *z * D);
    g.mask = malloc((size_t)D);
    g.kidx = malloc(sizeof *g.kidx * D);
    g.uidx = malloc(sizeof *g.uidx * D);
    g.A = malloc(sizeof *g.A * (size_t)D * D);
    g.C = malloc(sizeof *g.C * (size_t)D * D);
    if (!starts || !mu || !cov || !Z || !m || !z || !g.mask || !g.kidx || !g.uidx || !g.A || !g.C) {
        st = nomem(name);
        goto done;
    }
    int nv = full_windows(t, starts);
    if (nv <= D) {
        dfs_set_error("gaussian baseline: %d training windows of %d fully observed rows; a "
                      "covariance of %d x %d = %d entries needs more than %d",
                      nv, L, L, K, D, D);
        st = DFS_ERR_ARG;
        goto done;
    }
    for (int j = 0; j < nv; j++) {
        const float *v = s->values + (size_t)starts[j] * K;
        for (int e = 0; e < D; e++)
            mu[e] += v[e];
    }
    for (int e = 0; e < D; e++)
        mu[e] /= nv;
    /* cov = sum over windows of (v - mu)(v - mu)^T, CHUNK windows a BLAS call (upper half). */
    for (int j0 = 0; j0 < nv; j0 += CHUNK) {
        int nj = nv - j0 < CHUNK ? nv - j0 : CHUNK;
        for (int j = 0; j < nj; j++) {
            const float *v = s->values + (size_t)starts[j0 + j] * K;
            for (int e = 0; e < D; e++)
                Z[(size_t)j * D + e] = v[e] - mu[e];
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, nj, 1.0, Z, D, 1.0, cov, D);
    }
    double tr = 0;
    for (int a = 0; a < D; a++) {
        for (int b = a; b < D; b++) {
            cov[(size_t)a * D + b] /= nv - 1;
            cov[(size_t)b * D + a] = cov[(size_t)a * D + b];
        }
        tr += cov[(size_t)a * D + a];
    }
    /* A constant series has trace 0: the smallest ridge that keeps the factorisations going */
    double ridge = tr > 0 ? 1e-6 * tr / D : DBL_MIN;
    for (int a = 0; a < D; a++)
        cov[(size_t)a * D + a] += ridge;
    int have = 0;
    for (int w = 0; w < t->W; w++) {
        const uint8_t *kn = t->known + (size_t)w * D;
        if (!have || memcmp(kn, g.mask, (size_t)D)) {
            st = gauss_condition(cov, D, kn, &g);
            if (st != DFS_OK) goto done;
            have = 1;
        }
        const int nk = g.nk, nu = g.nu;
        if (!nu) continue;
        /* mean of the unknown entries: mu_u + A^T (x_k - mu_k) (PRML eq. 2.81) */
        const float *v = s->values + (size_t)t->start[w] * K;
        for (int q = 0; q < nk; q++)
            z[q] = v[g.kidx[q]] - mu[g.kidx[q]];
        for (int b = 0; b < nu; b++) {
            double sum = mu[g.uidx[b]];
            const double *Ab = g.A + (size_t)b * nk;
            for (int q = 0; q < nk; q++)
                sum += Ab[q] * z[q];
            m[b] = sum;
        }
        for (int smp = 0; smp < S; smp++) {
            for (int b = 0; b < nu; b++)
                z[b] = dfs_rng_normal(rng);
            float *o = out + ((size_t)w * S + smp) * D;
            for (int a = 0; a < nu; a++) {
                double sum = m[a];
                for (int b = 0; b <= a; b++)
                    sum += g.C[(size_t)b * nu + a] * z[b];
                o[g.uidx[a]] = (float)sum;
            }
        }
    }
done:
    free(starts);
    free(mu);
    free(cov);
    free(Z);
    free(m);
    free(z);
    free(g.mask);
    free(g.kidx);
    free(g.uidx);
    free(g.A);
    free(g.C);
    return st;
}
