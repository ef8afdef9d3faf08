/* common.h - helpers shared by the diffuse subcommands: errors, number parsing, data. */
#ifndef DFS_CLI_COMMON_H
#define DFS_CLI_COMMON_H

#include "diffuse.h"

/* Print "diffuse: <cli_who><message>" on stderr and return 2 (the exit status for user errors).
 * cli_who is empty, or "rank N: " in a run over several processes (cli/mpi.c). */
extern char cli_who[32];
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with the library's last error line. */
int cli_fail_status(dfs_status s);
/* Strict parsers: the whole string must be a number in [lo, hi]. Return 0 on success. */
int cli_int(const char *opt, const char *s, long lo, long hi, long *out);
int cli_float(const char *opt, const char *s, double lo, double hi, double *out);
int cli_u64(const char *opt, const char *s, uint64_t *out);
/* After getopt_long returned '?': "CMD: unknown or incomplete option 'X' (see diffuse CMD
 * --help)", naming the short option itself inside a cluster such as -xy. Returns 2. */
int cli_bad_option(const char *cmd, char *const *argv);
/* Whether a file can be written at path, checked before minutes of work: not empty, not an
 * existing folder, FIFO or device, and in an existing writable folder. 0, or 2 after a
 * one-line message "CMD: OPT ...". */
int cli_out_ok(const char *cmd, const char *opt, const char *path);
/* dfs_png_grid_fits for images enlarged s times: before the images are made or the enlarged
 * copy allocated. */
dfs_status cli_grid_fits(int n, int h, int w, int cols, int s);
/* Write n images (uint8, N x H x W x C) to out (.npy) and, when labels is not NULL, their labels
 * to OUT.labels.npy, as a pair: the labels go to a side file first and are renamed in only after
 * the images are written, so that a failed write (a full disk) leaves the old pair as it was;
 * without labels, an old OUT.labels.npy (of the images replaced) is removed. */
dfs_status cli_write_npy_pair(const char *out, const uint8_t *px, const size_t shape[4], const int *labels);
/* Load --data: "fashion-mnist" (train set), "fashion-mnist-test", a folder of PNGs, or an IDX
 * image file (labels from labels_path when given). size/channels apply to PNG folders. */
dfs_status cli_load_data(dfs_dataset *d, const char *spec, const char *labels_path, int size,
                         int channels, int limit);
/* Install SIGINT/SIGTERM handlers that set a flag; cli_interrupted() reads it. */
void cli_catch_signals(void);
int cli_interrupted(void);
/* Seconds on a monotonic clock. */
double cli_now(void);
/* Library log messages to stderr ("diffuse: warning: ..."). */
void cli_log(dfs_log_level level, const char *msg, void *user);
int ends_with(const char *s, const char *suffix);
/* Peak resident set size of this process in MB. */
double cli_peak_rss_mb(void);

/* Write a grid PNG of n images (NCHW floats in [-1, 1]), each enlarged s times (nearest). */
dfs_status cli_write_grid(const char *path, const float *x, int n, int c, int h, int w, int cols,
                          int s);

/* The same with labels[cols] over the columns (DejaVu Sans from fonts-dejavu-core); labels NULL
 * gives the plain grid, and so does a missing font, with a warning. */
dfs_status cli_write_grid_labeled(const char *path, const float *x, int n, int c, int h, int w, int cols, int s,
                                  const char *const *labels);

/* The commands (cli/main.c's table): argv[0] is the command's name; the exit status. */
int cmd_train(int argc, char **argv);      /* cli/cmd_train.c */
int cmd_sample(int argc, char **argv);     /* cli/cmd_sample.c */
int cmd_noise(int argc, char **argv);      /* cli/cmd_misc.c */
int cmd_info(int argc, char **argv);       /* cli/cmd_misc.c */
int cmd_bench(int argc, char **argv);      /* cli/cmd_misc.c */
int cmd_export(int argc, char **argv);     /* cli/cmd_misc.c */
int cmd_eval(int argc, char **argv);       /* cli/cmd_eval.c */
int cmd_classifier(int argc, char **argv); /* cli/cmd_classifier.c */
int cmd_data(int argc, char **argv);       /* cli/cmd_data.c */
int cmd_plot(int argc, char **argv);       /* cli/cmd_plot.c */
int cmd_series(int argc, char **argv);    /* cli/cmd_series.c */
int cmd_mol(int argc, char **argv);       /* cli/cmd_mol.c */
int cmd_mol_render(int argc, char **argv); /* cli/cmd_mol_render.c: argv[0] "render" */

#endif
