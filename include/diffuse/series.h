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

/* BASELINES END ---------------------------------------------------------------------------- */

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_SERIES_H */
