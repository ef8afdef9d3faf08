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

/* ------------------------------------------------------------------------------------------ */
/* Models: CSDI over windows of a series (src/series/model.c)                                  */
/* ------------------------------------------------------------------------------------------ */

/* Calendar values the model sees per time step: sin and cos of the hour of day and of the day
 * of the year (2 pi (seconds since midnight) / 86400 and 2 pi (seconds since 1 January) /
 * the year's length), UTC. */
#define DFS_SERIES_CALENDAR 4
/* out (n, DFS_SERIES_CALENDAR) for n timestamps (seconds since 1970 UTC). */
void dfs_series_calendar(const int64_t *times, int n, float *out);

typedef struct {
    dfs_csdi_config net;        /* net.features and net.calendar are set by the model */
    dfs_schedule_kind schedule; /* (quad) */
    int T;                      /* (50) */
    int window;                 /* L of the training windows (63) */
    int no_day_of_year;         /* 1: the day-of-year calendar values are 0, so the model knows
                                   the hour of the day and not the season (0) */
} dfs_series_config;

void dfs_series_config_default(dfs_series_config *c);
/* The longest forecast the training masks hide: the last H steps of a window, H uniform in
 * 1..dfs_series_forecast_max(c) = 3 window / 10 (at least 1). A longer horizon in one pass is
 * a task the model was not trained on. */
int dfs_series_forecast_max(const dfs_series_config *c);

/* A trained (or training) CSDI model of one kind of series: K features with their names and
 * their normalisation (each feature's mean and standard deviation over the observed entries
 * of the training span; the net sees (value - mean) / std), the step it was trained at, and
 * its sampling recipe. */
typedef struct {
    dfs_series_config cfg;
    int K;
    char **names;     /* K */
    double *mean, *sd; /* K */
    int64_t step;     /* seconds between steps of the training series */
    dfs_csdi *net;
    dfs_schedule sched;
    dfs_sampling_recipe sampling; /* .set = 0: ancestral sampling, all T steps */
    int max_batch;    /* windows per forward pass per thread (64) */
} dfs_series_model;

/* A fresh model for the features of s, normalised on its rows [0, train_end). DFS_ERR_ARG
 * (message set) for a bad config, a feature with fewer than two observed training values or
 * with no spread; DFS_ERR_NOMEM. */
dfs_status dfs_series_model_new(dfs_series_model **out, const dfs_series_config *c,
                                const dfs_series *s, int train_end, uint64_t seed);
void dfs_series_model_free(dfs_series_model *m);
/* Checkpoints: the format and checks of dfs_checkpoint_save / _load (the "series" and "csdi"
 * metadata instead of "unet"); DFS_CKPT_FULL needs st. A file of another kind of model is
 * refused with DFS_ERR_FORMAT and a message that says what it is. */
dfs_status dfs_series_save(const char *path, const dfs_series_model *m, const dfs_train_state *st,
                           const char *train_json, dfs_ckpt_kind kind);
dfs_status dfs_series_load(const char *path, dfs_series_model **m, dfs_train_state *st,
                           int *has_optim, char **train_json);
/* The features of m in s, by name: idx[k] = the column of s holding m's feature k.
 * DFS_ERR_SHAPE (message set) if one is missing. */
dfs_status dfs_series_match(const dfs_series_model *m, const dfs_series *s, int *idx);

/* Training (CSDI's loss, Tashiro et al. 2021 Algorithm 1): windows of cfg.window steps from
 * the training span, each split into conditioning and target entries by one of the masks
 * below, eps-prediction loss on the target entries only, AdamW and EMA. */
typedef struct {
    int batch;             /* windows per step (16) */
    dfs_adamw_config opt;  /* lr 1e-3, warm-up 100, EMA 0.999, clip 1 */
    /* the shares of the training masks (normalised to sum 1): */
    float p_random;        /* each observed entry a target with a probability drawn U(0,1)
                              per window (CSDI's random strategy) (0.3) */
    float p_forecast;      /* the last H steps targets, H ~ U{1..3L/10} (0.3) */
    float p_block;         /* per feature one gap of U{1..L/4} steps (0.25) */
    float p_history;       /* the missing pattern of another training window (CSDI's
                              historical strategy; random when that hides nothing) (0.15) */
} dfs_series_train_config;

void dfs_series_train_config_default(dfs_series_train_config *c);
typedef struct dfs_series_trainer dfs_series_trainer;
/* The trainer keeps references to m, s and st. The windows are every start in
 * 0..train_end - window with an observed entry. DFS_ERR_ARG for a bad batch or lr, a
 * training span shorter than the window; DFS_ERR_SHAPE when s lacks one of m's features. */
dfs_status dfs_series_trainer_new(dfs_series_trainer **out, dfs_series_model *m,
                                  const dfs_series_train_config *c, const dfs_series *s,
                                  int train_end, dfs_train_state *st);
void dfs_series_trainer_free(dfs_series_trainer *t);
/* Windows in the training set. */
int dfs_series_trainer_windows(const dfs_series_trainer *t);
/* The learning rate of the following steps (a schedule), in (0, 1). */
void dfs_series_trainer_set_lr(dfs_series_trainer *t, float lr);
/* One step; *loss (may be NULL) gets the loss. Statuses as dfs_trainer_step. */
dfs_status dfs_series_trainer_step(dfs_series_trainer *t, float *loss);

/* Sampling: W windows of L steps, values in the data's units with NaN (or known 0) where
 * unknown; S samples of each, written to out (W, S, L, K), the known entries copied from
 * values bit for bit. The model's EMA weights are used unless raw. */
typedef struct {
    const float *values;    /* (W, L, K) */
    const uint8_t *known;   /* (W, L, K): 1 = given (must be finite in values) */
    const int64_t *times;   /* (W, L) timestamps (for the calendar values) */
    int W, L, S;
    dfs_sampler_config sampler; /* kind, steps, eta; the rest is set here (no clipping) */
    int raw;
    dfs_sample_cb cb;       /* called after each step of each group of windows */
    void *cb_user;
} dfs_series_request;

void dfs_series_request_default(dfs_series_request *r);
/* DFS_ERR_ARG for a bad request (sizes, a known entry that is not finite, a sampler
 * config); DFS_ERR_NOMEM; DFS_ERR_NAN when a sample is not finite. */
dfs_status dfs_series_sample(dfs_series_model *m, const dfs_series_request *r, dfs_rng *rng,
                             float *out);
/* Windows per group of dfs_series_sample for W windows of L steps and S samples each (at most
 * 4096 / S, and a bounded memory for the side projections): a run has ceil(W / this) groups,
 * and its callback is called at every sampler step of each. */
int dfs_series_group_windows(const dfs_series_model *m, int W, int L, int S);

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
