/* series.h - what the 'diffuse series' subcommands share (cli/cmd_series.c, cli/series_tasks.c):
 * data sets by name, columns, dates, and the windows of a forecasting or imputation task. */
#ifndef DFS_CLI_SERIES_H
#define DFS_CLI_SERIES_H

#include "common.h"

/* The CSV behind --data: a path, or one of the Debian data sets by name (seattle-weather,
 * seattle-temps, sf-temps from python3-vega-datasets; co2 from python3-statsmodels). */
const char *series_data_path(const char *spec);
/* Load --data with --columns (comma-separated names; NULL: every numeric column) into s.
 * 0, or 2 after a message. */
int series_load(const char *cmd, const char *spec, const char *columns, dfs_series *s);
/* Rows of s at or before DATE (a date means its whole day): 0, or 2 after a message. */
int series_rows_until(const char *cmd, const dfs_series *s, const char *date, int *rows);
/* The row of s at DATE (its first step), 0, or 2 after a message when DATE is not in s. */
int series_row_at(const char *cmd, const dfs_series *s, const char *date, int *row);

/* A task cut from a series: forecasts (--from --to --every --context --horizon) or imputation
 * (--from --windows --length --hide). */
typedef struct {
    const char *from, *to;  /* first origin (the first forecast step), last origin (forecast) */
    long every;             /* steps between origins (1) */
    long context, horizon;  /* forecast: steps given, steps drawn */
    long length, windows;   /* imputation: steps per window, how many (non-overlapping) */
    const char *hide;       /* imputation: random:P (a share P of the observed entries) or
                               gap:N (one gap of N steps per feature, at a random place) */
    uint64_t seed;          /* the hidden entries' draw */
} series_task_args;

/* The task's windows: W windows of L steps at start[w], known (W, L, K) the entries given,
 * score (W, L, K) the entries to score (observed and not known). 0 or 2 after a message. */
typedef struct {
    int W, L, forecast;
    int *start;
    uint8_t *known, *score;
} series_task;

int series_task_make(const char *cmd, const dfs_series *s, const series_task_args *a, series_task *t);
void series_task_free(series_task *t);
/* getopt_long entries and their handling for the task options (values 1000..1019). */
#define SERIES_TASK_OPTIONS                                                        \
    {"from", required_argument, 0, 1000}, {"to", required_argument, 0, 1001},     \
    {"every", required_argument, 0, 1002}, {"context", required_argument, 0, 1003}, \
    {"horizon", required_argument, 0, 1004}, {"length", required_argument, 0, 1005}, \
    {"windows", required_argument, 0, 1006}, {"hide", required_argument, 0, 1007}, \
    {"task-seed", required_argument, 0, 1008}
/* 1 when o was a task option (handled, or 2 stored in *rc after a message), else 0. */
int series_task_option(int o, const char *arg, series_task_args *a, int *rc);
/* The help text of the task options. */
extern const char series_task_help[];

/* Write a float32 .npy (W, S, L, K) or (W, L, K) etc.: 0, or 2 after a message. */
int series_write_npy(const char *path, const float *x, int ndim, const size_t *shape);

int series_windows(int argc, char **argv);   /* cli/series_tasks.c */
int series_eval(int argc, char **argv);      /* cli/series_tasks.c */
int series_baselines(int argc, char **argv); /* cli/series_tasks.c */
int series_plot(int argc, char **argv);      /* cli/series_tasks.c */

#endif
