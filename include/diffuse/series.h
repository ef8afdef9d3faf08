/* diffuse/series.h - time series: windows of a series, CSDI models that forecast and impute, and
 * the baselines they are scored against. Part of diffuse.h. */
#ifndef DIFFUSE_SERIES_H
#define DIFFUSE_SERIES_H

#include "diffuse/io.h"
#include "diffuse/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Tasks: windows of a series with some entries given                                          */
/* ------------------------------------------------------------------------------------------ */

/* A probabilistic task on W windows of L consecutive steps of a series' K = s->n_features
 * features. Window w covers rows start[w] .. start[w] + L - 1 of s. known (W, L, K) marks the
 * entries a forecaster is given (each must be observed in s); the others are to be drawn, and
 * are scored where s observes them. Rows [0, train_end) are the training span: every fit
 * (normalisation, residuals, covariances, climatology) uses only those rows. A forecast of the
 * next H steps is the task whose known entries are the first L - H rows. */
typedef struct {
    const dfs_series *s;
    int train_end;        /* rows of s in the training span, 1..s->n_steps */
    const int *start;     /* W window starts, each in 0..n_steps - L */
    int W, L;
    const uint8_t *known; /* (W, L, K) */
} dfs_series_task;

/* Check a task: DFS_ERR_ARG (with a message) for a NULL or empty part, a window outside the
 * series, or a known entry that s does not observe. */
dfs_status dfs_series_task_check(const dfs_series_task *t);

/* BASELINES BEGIN -------------------------------------------------------------------------- */
/* Baselines (src/series/baselines.c). Each writes S sample paths per window to out
 * (W, S, L, K), in the data's units, with the known entries copied from the series. */
/*
 * Every baseline first checks the task (dfs_series_task_check), then S >= 1, rng and out
 * non-NULL (DFS_ERR_ARG), and fits on the training rows [0, train_end) only: of each window it
 * sees only the known entries, never the hidden ones, nor rows before the window. Computed in
 * double, rounded to float once. Errors: DFS_ERR_ARG with the reason in dfs_last_error() for a
 * bad parameter or too little training data, DFS_ERR_NOMEM. One rng seed gives the same
 * samples; the order in which each reads the stream is written beside it in baselines.c.
 *
 * climatology: each unknown entry from the training rows of the same season: for a daily or
 * coarser step, every training row within 7 days of the same day of the year (all years); for
 * a finer step, the training rows at the same hour of the day in the last 28 days of the
 * training span. Each sample copies one whole pool row's values into the window row's unknown
 * features (a row that observes all of them; if none does, each feature from its own pool),
 * independently for every row and sample. DFS_ERR_ARG if a feature's pool is empty. */
dfs_status dfs_baseline_climatology(const dfs_series_task *t, int S, dfs_rng *rng, float *out);

/* seasonal naive: the seasonal random walk y[i] = y[i - period] + r[i] from the latest known
 * entry of the same phase (or backwards, y[i] = y[i + period] - r[i + period], from the first
 * one after), with r one circular stretch of L consecutive training residual rows y[t] -
 * y[t - period] per sample path (missing residual entries replaced by random observed ones of
 * the feature). An entry with no known entry of its phase in the window starts from its
 * feature's nearest known entry (else the training mean) plus r[i]. period 1 is persistence
 * with bootstrapped increments. 1 <= period < min(L, train_end). */
dfs_status dfs_baseline_seasonal_naive(const dfs_series_task *t, int period, int S,
                                       dfs_rng *rng, float *out);

/* ar: a VAR(lags) (each row on the previous `lags` rows of all K features, plus an intercept)
 * fitted by least squares (LAPACK dgelsd) on the training rows whose lags are all observed;
 * paths simulated row by row, each unknown entry the fit's prediction plus that feature's part
 * of one bootstrapped whole residual row of the fit, known entries held at their values. The
 * rows before the window are a stand-in: the `lags` training rows before a random fitted row.
 * DFS_ERR_ARG unless more fitted rows than the 1 + lags * K coefficients of a feature. */
dfs_status dfs_baseline_ar(const dfs_series_task *t, int lags, int S, dfs_rng *rng,
                           float *out);

/* interp: per feature, linear interpolation between the window's nearest known entries
 * (constant beyond the first and last; the training mean if the feature has none in the
 * window), plus the error pattern of one of n_ref fully observed training windows (drawn once
 * a call) under the same known mask and the same interpolation, one whole pattern a sample
 * path. n_ref >= 1 (200 is plenty); DFS_ERR_ARG without a fully observed training window. */
dfs_status dfs_baseline_interp(const dfs_series_task *t, int n_ref, int S, dfs_rng *rng,
                               float *out);

/* gaussian: one multivariate Gaussian over a window's L * K entries (at most 4096), mean and
 * unbiased covariance of every fully observed training window of L rows (sliding by one), plus
 * a ridge of 1e-6 * trace / (L * K) on the diagonal, conditioned exactly on each window's known
 * entries (mu_u + S_uk S_kk^-1 (x_k - mu_k), S_uu - S_uk S_kk^-1 S_ku, by Cholesky); samples
 * are mean + C z, C the conditional covariance's Cholesky factor. The factors of the last known
 * pattern are reused. DFS_ERR_ARG unless there are more training windows than L * K. */
dfs_status dfs_baseline_gaussian(const dfs_series_task *t, int S, dfs_rng *rng, float *out);

/* BASELINES END ---------------------------------------------------------------------------- */

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_SERIES_H */
