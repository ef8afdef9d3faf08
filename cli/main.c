/* main.c - the diffuse command-line program: a thin user of libdiffuse. */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char cli_who[32];

int cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("diffuse: ", stderr);
    fputs(cli_who, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int cli_fail_status(dfs_status s) {
    const char *e = dfs_last_error();
    return cli_fail("%s", e[0] ? e : dfs_status_str(s));
}

int cli_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_fail("%s expects an integer in %ld..%ld, got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_float(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_fail("%s expects a number in [%g, %g], got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_u64(const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || !isdigit((unsigned char)s[0])) { /* strtoull takes " -1" */
        cli_fail("%s expects a non-negative integer, got '%s'", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_bad_option(const char *cmd, char *const *argv) {
    char shortopt[3] = {'-', (char)optopt, 0};
    /* optopt is the unknown short option (getopt may still be inside its cluster, so argv
     * does not name it); for long options it is 0 or their value, and argv[optind - 1] is it */
    const char *what = optopt > 0 && optopt < 128 && optopt != 'h' ? shortopt : argv[optind - 1];
    return cli_fail("%s: unknown or incomplete option '%s' (see diffuse %s --help)", cmd, what, cmd);
}

int cli_out_ok(const char *cmd, const char *opt, const char *path) {
    struct stat sb;
    if (!*path) return cli_fail("%s: %s is empty", cmd, opt);
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return cli_fail("%s: %s %s exists and is not a regular file", cmd, opt, path);
    char *copy = strdup(path);
    if (!copy) return cli_fail("out of memory");
    const char *slash = strrchr(copy, '/');
    const char *dir = !slash ? "." : slash == copy ? "/" : (copy[slash - copy] = 0, copy);
    int ok = stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && access(dir, W_OK) == 0;
    int rc = ok ? 0 : cli_fail("%s: %s %s: the folder %s %s", cmd, opt, path, dir,
                               stat(dir, &sb) != 0 ? "does not exist" : "is not a writable folder");
    free(copy);
    return rc;
}

int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

dfs_status cli_load_data(dfs_dataset *d, const char *spec, const char *labels_path, int size,
                         int channels, int limit) {
    dfs_status s;
    struct stat sb;
    int own = !strcmp(spec, "fashion-mnist") || !strcmp(spec, "fashion-mnist-test") ||
              (stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode));
    if (labels_path && own) { /* these carry their labels: a --labels would be ignored */
        dfs_set_error("--labels goes with an IDX --data file, not with %s", spec);
        return DFS_ERR_ARG;
    }
    if (strcmp(spec, "fashion-mnist") == 0) s = dfs_load_fashion_mnist(d, 1);
    else if (strcmp(spec, "fashion-mnist-test") == 0) s = dfs_load_fashion_mnist(d, 0);
    else if (stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode)) s = dfs_load_png_dir(d, spec, size, channels);
    else if (stat(spec, &sb) == 0) s = dfs_load_idx(d, spec, labels_path);
    else {
        dfs_set_error("--data %s: no such file or folder (use fashion-mnist, a PNG folder or an IDX file)", spec);
        return DFS_ERR_IO;
    }
    if (s == DFS_OK && limit > 0 && limit < d->n) d->n = limit;
    return s;
}

dfs_status cli_write_npy_pair(const char *out, const uint8_t *px, const size_t shape[4], const int *labels) {
    char lp[4096], lt[4200];
    snprintf(lp, sizeof lp, "%.*s.labels.npy", (int)(strlen(out) - 4), out);
    snprintf(lt, sizeof lt, "%s.pair.%ld", lp, (long)getpid());
    dfs_status s = DFS_OK;
    const size_t n = shape[0];
    if (labels) {
        int32_t *l32 = malloc((n ? n : 1) * sizeof *l32);
        if (!l32) {
            dfs_set_error("out of memory for %zu labels", n);
            return DFS_ERR_NOMEM;
        }
        for (size_t i = 0; i < n; i++) l32[i] = labels[i];
        size_t ls[1] = {n};
        s = dfs_npy_write_i32(lt, l32, 1, ls);
        free(l32);
    }
    if (s == DFS_OK) s = dfs_npy_write_u8(out, px, 4, shape);
    if (s == DFS_OK && labels && rename(lt, lp) != 0) {
        dfs_set_error("%s written, but its labels could not be renamed to %s: %s", out, lp, strerror(errno));
        s = DFS_ERR_IO;
    }
    if (labels) remove(lt);                  /* after a failure: the pair is unchanged */
    if (s == DFS_OK && !labels) remove(lp); /* the labels of the images just replaced */
    return s;
}

dfs_status cli_grid_fits(int n, int h, int w, int cols, int s) {
    if (s < 1) s = 1;
    if ((long long)h * s > INT_MAX / 2 || (long long)w * s > INT_MAX / 2) { /* far past any PNG */
        dfs_set_error("images of %d x %d enlarged %d times are too large for a PNG", h, w, s);
        return DFS_ERR_ARG;
    }
    return dfs_png_grid_fits(n, h * s, w * s, cols);
}

dfs_status cli_write_grid(const char *path, const float *x, int n, int c, int h, int w, int cols,
                          int s) {
    if (cli_grid_fits(n, h, w, cols, s)) return DFS_ERR_ARG; /* before the enlarged copy */
    if (s <= 1) return dfs_png_write_grid(path, x, n, c, h, w, cols);
    size_t big = (size_t)n * c * h * s * w * s;
    float *y = malloc(big * sizeof(float));
    if (!y) {
        dfs_set_error("out of memory for a %dx enlarged grid", s);
        return DFS_ERR_NOMEM;
    }
    for (size_t k = 0; k < (size_t)n * c; k++)
        for (int i = 0; i < h * s; i++)
            for (int j = 0; j < w * s; j++)
                y[(k * h * s + i) * w * s + j] = x[(k * h + i / s) * w + j / s];
    dfs_status st = dfs_png_write_grid(path, y, n, c, h * s, w * s, cols);
    free(y);
    return st;
}

dfs_status cli_write_grid_labeled(const char *path, const float *x, int n, int c, int h, int w, int cols, int s,
                                  const char *const *labels) {
    if (!labels) return cli_write_grid(path, x, n, c, h, w, cols, s);
    if (s < 1) s = 1;
    if (cli_grid_fits(n, h, w, cols, s)) return DFS_ERR_ARG;
    int px = w * s / 7;
    px = px < 8 ? 8 : px > 16 ? 16 : px;
    /* the font first: without it, the grid alone; a failed write is an error, not a fallback */
    uint8_t *cov = NULL;
    int cw, ch;
    if (dfs_text_render(DFS_DEFAULT_FONT, "Ag", px, &cov, &cw, &ch) != DFS_OK) {
        fprintf(stderr, "diffuse: warning: %s; writing the grid without class names\n", dfs_last_error());
        return cli_write_grid(path, x, n, c, h, w, cols, s);
    }
    free(cov);
    size_t big = (size_t)n * c * h * s * w * s;
    float *y = malloc(big * sizeof(float));
    if (!y) {
        dfs_set_error("out of memory for a %dx enlarged grid", s);
        return DFS_ERR_NOMEM;
    }
    for (size_t k = 0; k < (size_t)n * c; k++)
        for (int i = 0; i < h * s; i++)
            for (int j = 0; j < w * s; j++) y[(k * h * s + i) * w * s + j] = x[(k * h + i / s) * w + j / s];
    dfs_status st = dfs_png_write_grid_labeled(path, y, n, c, h * s, w * s, cols, labels, DFS_DEFAULT_FONT, px);
    free(y);
    return st;
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

void cli_catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C stops at once, even inside a long step */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_interrupted(void) { return interrupted; }

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double cli_peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

void cli_log(dfs_log_level level, const char *msg, void *user) {
    (void)user;
    if (level >= DFS_LOG_WARN) fprintf(stderr, "diffuse: %s%s\n", level == DFS_LOG_WARN ? "warning: " : "", msg);
}

/* The commands: dispatch and the listing of 'diffuse --help' both come from this table. */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
    const char *summary;                /* one line in 'diffuse --help' */
} cli_command;

static const cli_command commands[] = {
    {"train", cmd_train, "train a model on Fashion-MNIST, a PNG folder, IDX files or captions"},
    {"sample", cmd_sample, "draw images from a model: four samplers, guidance, prompts, inpainting"},
    {"noise", cmd_noise, "show the forward noising of one image at chosen steps"},
    {"info", cmd_info, "print a checkpoint's configuration and training state"},
    {"export", cmd_export, "write a checkpoint's EMA weights as a sampling-only model (float16)"},
    {"bench", cmd_bench, "time training steps and forward passes"},
    {"eval", cmd_eval, "FD and class accuracy of samples (--fd --acc), likelihood bound (--nll)"},
    {"classifier", cmd_classifier, "train or evaluate the image classifier that eval's --fd and --acc use"},
    {"data", cmd_data, "build and show captioned image folders (fashion-captions, emoji); build molecules"},
    {"plot", cmd_plot, "draw a loss curve (a column of metrics.csv) as a PNG chart"},
    {"series", cmd_series, "time series: train CSDI models, forecast, impute, score, baselines, fan charts"},
    {"mol", cmd_mol, "3-D molecules: train EDM models, sample, score by EDM's rules, render"},
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

static void usage(FILE *f) {
    int w = 0;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if ((int)strlen(commands[i].name) > w) w = (int)strlen(commands[i].name);
    fputs("usage: diffuse COMMAND [options]\n"
          "\n"
          "Denoising diffusion models (Ho et al. 2020) in C: train a U-Net noise predictor and\n"
          "sample from it.\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-*s  %s\n", w, commands[i].name, commands[i].summary);
    fputs("\nRun 'diffuse COMMAND --help' (or 'diffuse help COMMAND') for a command's options.\n", f);
}

static const cli_command *find_command(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

/* The library reads its DFS_* switches on first use and takes a value it does not know for
 * the default; the command line refuses one instead, before any work, so that a typo
 * (DFS_CONV=winogard) does not silently time the wrong path. Empty counts as unset. The names
 * are the library's own (dfs_kernels_names, dfs_conv_algo_names); DFS_CPU and DFS_BF16 each
 * have one value. */
static int check_env(void) {
    static const char *const cpu[] = {"avx2"}, *const bf16[] = {"emulate"};
    const struct {
        const char *name;
        const char *const *values;
        int n;
    } vars[] = {
        {"DFS_KERNELS", dfs_kernels_names, DFS_KERNELS_COUNT},
        {"DFS_CONV", dfs_conv_algo_names, (int)(sizeof dfs_conv_algo_names / sizeof *dfs_conv_algo_names)},
        {"DFS_CPU", cpu, 1},
        {"DFS_BF16", bf16, 1},
    };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *e = getenv(vars[i].name);
        if (!e || !*e) continue;
        int ok = 0;
        for (int k = 0; k < vars[i].n; k++) ok |= !strcmp(e, vars[i].values[k]);
        if (ok) continue;
        char say[128] = "";
        for (int k = 0; k < vars[i].n; k++)
            snprintf(say + strlen(say), sizeof say - strlen(say), "%s%s", k == 0 ? "" : k == vars[i].n - 1 ? " or " : ", ",
                     vars[i].values[k]);
        return cli_fail("the environment's %s must be %s, not '%s'", vars[i].name, say, e);
    }
    return 0;
}

int main(int argc, char **argv) {
    dfs_set_log(cli_log, NULL);
    if (check_env()) return 2;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        if (argc == 2) {
            usage(stdout);
            return 0;
        }
        const cli_command *c = find_command(argv[2]); /* diffuse help COMMAND: its --help */
        if (!c || argc > 3) return cli_fail("help: give one command of 'diffuse --help', not '%s'", argv[argc - 1]);
        char *help_argv[] = {argv[2], "--help", NULL};
        return c->run(2, help_argv);
    }
    const cli_command *c = find_command(name);
    if (!c) return cli_fail("unknown command '%s' (try 'diffuse --help')", name);
    return c->run(argc - 1, argv + 1);
}
