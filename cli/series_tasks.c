/* series_tasks.c - diffuse series windows, eval, baselines and plot: cutting a series into the
 * windows of a forecasting or imputation task, scoring sample ensembles (CRPS, coverage),
 * the baselines on the same windows, and fan charts. */
#include "series.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- data ---------------------------------------------------------------------------------- */

const char *series_data_path(const char *spec) {
    static const struct { const char *name, *path; } sets[] = {
        {"seattle-weather", "/usr/lib/python3/dist-packages/vega_datasets/_data/seattle-weather.csv"},
        {"seattle-temps", "/usr/lib/python3/dist-packages/vega_datasets/_data/seattle-temps.csv"},
        {"sf-temps", "/usr/lib/python3/dist-packages/vega_datasets/_data/sf-temps.csv"},
        {"co2", "/usr/lib/python3/dist-packages/statsmodels/datasets/co2/co2.csv"},
    };
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        if (!strcmp(spec, sets[i].name)) return sets[i].path;
    return spec;
}

/* Join b's columns to a's (the same steps), naming each column FILE.COLUMN. 0 or 2. */
static int join_series(const char *cmd, dfs_series *a, const char *aname, dfs_series *b, const char *bname, int first) {
    if (a->n_steps != b->n_steps || a->step != b->step || a->times[0] != b->times[0])
        return cli_fail("series %s: %s and %s do not cover the same time steps (%d and %d steps from %lld and %lld, every %lld and %lld s)",
                        cmd, aname, bname, a->n_steps, b->n_steps, (long long)a->times[0], (long long)b->times[0],
                        (long long)a->step, (long long)b->step);
    const int n = a->n_steps, Ka = a->n_features, Kb = b->n_features, K = Ka + Kb;
    float *v = malloc((size_t)n * K * sizeof(float));
    uint8_t *o = malloc((size_t)n * K);
    char **names = calloc((size_t)K, sizeof *names);
    if (!v || !o || !names) {
        free(v), free(o), free(names);
        return cli_fail("series %s: out of memory", cmd);
    }
    for (int i = 0; i < n; i++) {
        memcpy(v + (size_t)i * K, a->values + (size_t)i * Ka, (size_t)Ka * sizeof(float));
        memcpy(v + (size_t)i * K + Ka, b->values + (size_t)i * Kb, (size_t)Kb * sizeof(float));
        memcpy(o + (size_t)i * K, a->observed + (size_t)i * Ka, (size_t)Ka);
        memcpy(o + (size_t)i * K + Ka, b->observed + (size_t)i * Kb, (size_t)Kb);
    }
    for (int k = 0; k < K; k++) {
        const char *file = k < Ka ? aname : bname, *col = k < Ka ? a->names[k] : b->names[k - Ka];
        size_t len = strlen(file) + strlen(col) + 2;
        if ((names[k] = malloc(len))) {
            if (k < Ka && !first) snprintf(names[k], len, "%s", col); /* already FILE.COLUMN */
            else snprintf(names[k], len, "%s.%s", file, col);
        }
    }
    for (int k = 0; k < Ka; k++) free(a->names[k]);
    free(a->names), free(a->values), free(a->observed);
    a->values = v, a->observed = o, a->names = names, a->n_features = K;
    dfs_series_free(b);
    return 0;
}

int series_load(const char *cmd, const char *spec, const char *columns, dfs_series *s) {
    if (!spec) return cli_fail("series %s: --data is required (a CSV file, or seattle-weather, "
                               "seattle-temps, sf-temps, co2; several joined with +)", cmd);
    char buf[4096], specs[4096];
    const char *names[256];
    int n = 0;
    dfs_csv_options o = {0};
    if (columns) {
        if (strlen(columns) >= sizeof buf) return cli_fail("series %s: --columns is too long", cmd);
        strcpy(buf, columns);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (n == 256) return cli_fail("series %s: more than 256 --columns", cmd);
            names[n++] = tok;
        }
        if (n == 0) return cli_fail("series %s: --columns names no column", cmd);
        o.columns = names;
        o.n_columns = n;
    }
    /* FILE+FILE...: the files' columns side by side, on the same time steps */
    if (strlen(spec) >= sizeof specs) return cli_fail("series %s: --data is too long", cmd);
    strcpy(specs, spec);
    char *save = NULL, *first = strtok_r(specs, "+", &save);
    if (!first) return cli_fail("series %s: --data names no file", cmd);
    dfs_status st = dfs_csv_load_series(s, series_data_path(first), &o);
    if (st != DFS_OK) return cli_fail_status(st);
    int joined = 0;
    for (char *next = strtok_r(NULL, "+", &save); next; next = strtok_r(NULL, "+", &save)) {
        dfs_series b;
        if ((st = dfs_csv_load_series(&b, series_data_path(next), &o)) != DFS_OK) {
            dfs_series_free(s);
            return cli_fail_status(st);
        }
        if (join_series(cmd, s, first, &b, next, !joined)) {
            dfs_series_free(&b);
            dfs_series_free(s);
            return 2;
        }
        joined = 1;
    }
    if (s->n_steps < 2) {
        dfs_series_free(s);
        return cli_fail("series %s: %s has %d time step(s); at least 2 are needed", cmd, spec, s->n_steps);
    }
    return 0;
}

static int parse_date(const char *cmd, const char *date, int64_t *t, int *whole_day) {
    if (dfs_csv_parse_time(date, strlen(date), t) != DFS_OK)
        return cli_fail("series %s: '%s' is not a date (2015-01-01) or date-time (2010-11-01 00:00)", cmd, date);
    *whole_day = strlen(date) <= 10;
    return 0;
}

int series_rows_until(const char *cmd, const dfs_series *s, const char *date, int *rows) {
    int64_t t = 0;
    int day = 0;
    if (parse_date(cmd, date, &t, &day)) return 2;
    if (day) t += 86400 - 1;
    int n = 0;
    while (n < s->n_steps && s->times[n] <= t) n++;
    if (n < 2) return cli_fail("series %s: only %d row(s) of the data are at or before %s", cmd, n, date);
    *rows = n;
    return 0;
}

int series_row_at(const char *cmd, const dfs_series *s, const char *date, int *row) {
    int64_t t = 0;
    int day = 0;
    if (parse_date(cmd, date, &t, &day)) return 2;
    if (t < s->times[0] || t > s->times[s->n_steps - 1] || (s->step && (t - s->times[0]) % s->step))
        return cli_fail("series %s: %s is not a time step of the data (%d steps of %lld s from its first row)",
                        cmd, date, s->n_steps, (long long)s->step);
    *row = s->step ? (int)((t - s->times[0]) / s->step) : 0;
    return 0;
}

/* ---- tasks --------------------------------------------------------------------------------- */

const char series_task_help[] =
    "the task's windows (forecast: --from --to --context --horizon; impute: --from --windows\n"
    "--length --hide):\n"
    "  --from DATE         forecast: the first origin (first forecast step); impute: the first\n"
    "                      window's first step\n"
    "  --to DATE           forecast: the last origin\n"
    "  --every N           forecast: steps between origins (default 1)\n"
    "  --context N         forecast: steps given before each origin\n"
    "  --horizon N         forecast: steps drawn from each origin\n"
    "  --length N          impute: steps per window (windows do not overlap)\n"
    "  --windows N         impute: how many windows\n"
    "  --hide SPEC         impute: random:P hides a share P of the observed entries, gap:N one\n"
    "                      gap of N steps per feature at a random place, none nothing (the\n"
    "                      data's own missing entries are the ones to fill; none to score)\n"
    "  --task-seed N       impute: the seed of the hidden entries' draw (default 1)\n";

int series_task_option(int o, const char *arg, series_task_args *a, int *rc) {
    *rc = 0;
    switch (o) {
    case 1000: a->from = arg; return 1;
    case 1001: a->to = arg; return 1;
    case 1002: *rc = cli_int("--every", arg, 1, 1000000, &a->every) ? 2 : 0; return 1;
    case 1003: *rc = cli_int("--context", arg, 1, 100000, &a->context) ? 2 : 0; return 1;
    case 1004: *rc = cli_int("--horizon", arg, 1, 100000, &a->horizon) ? 2 : 0; return 1;
    case 1005: *rc = cli_int("--length", arg, 1, 100000, &a->length) ? 2 : 0; return 1;
    case 1006: *rc = cli_int("--windows", arg, 1, 1000000, &a->windows) ? 2 : 0; return 1;
    case 1007: a->hide = arg; return 1;
    case 1008: *rc = cli_u64("--task-seed", arg, &a->seed) ? 2 : 0; return 1;
    default: return 0;
    }
}

void series_task_free(series_task *t) {
    free(t->start);
    free(t->known);
    free(t->score);
    memset(t, 0, sizeof *t);
}

int series_task_make(const char *cmd, const dfs_series *s, const series_task_args *a, series_task *t) {
    memset(t, 0, sizeof *t);
    const int K = s->n_features;
    int from, to;
    if (!a->from) return cli_fail("series %s: --from is required", cmd);
    if (series_row_at(cmd, s, a->from, &from)) return 2;
    t->forecast = a->horizon > 0;
    if (t->forecast) {
        if (!a->to || !a->context) return cli_fail("series %s: a forecast task needs --to and --context with --horizon", cmd);
        if (series_row_at(cmd, s, a->to, &to)) return 2;
        if (to < from) return cli_fail("series %s: --to is before --from", cmd);
        if (from - a->context < 0) return cli_fail("series %s: the first context would start %ld steps before the data", cmd, a->context - from);
        if (to + a->horizon > s->n_steps) return cli_fail("series %s: the last forecast would run %ld steps past the data", cmd, to + a->horizon - s->n_steps);
        t->L = (int)(a->context + a->horizon);
        t->W = (to - from) / (int)(a->every ? a->every : 1) + 1;
    } else {
        if (!a->length || !a->windows || !a->hide)
            return cli_fail("series %s: give a forecast task (--to --context --horizon) or an imputation task (--length --windows --hide)", cmd);
        if (from + a->length * a->windows > s->n_steps)
            return cli_fail("series %s: %ld windows of %ld steps from %s run past the data", cmd, a->windows, a->length, a->from);
        t->L = (int)a->length;
        t->W = (int)a->windows;
    }
    const size_t D = (size_t)t->L * K;
    t->start = malloc((size_t)t->W * sizeof(int));
    t->known = malloc((size_t)t->W * D);
    t->score = malloc((size_t)t->W * D);
    if (!t->start || !t->known || !t->score) {
        series_task_free(t);
        return cli_fail("series %s: out of memory", cmd);
    }
    double p = 0;
    long gap = 0;
    if (!t->forecast) {
        char *end;
        if (!strcmp(a->hide, "none")) {
            /* nothing hidden: the entries to fill are the data's own missing ones */
        } else if (!strncmp(a->hide, "random:", 7)) {
            p = strtod(a->hide + 7, &end);
            if (*end || !(p > 0 && p < 1)) p = -1;
        } else if (!strncmp(a->hide, "gap:", 4)) {
            gap = strtol(a->hide + 4, &end, 10);
            if (*end || gap < 1 || gap > t->L) gap = -1;
        } else {
            p = -1;
        }
        if (p < 0 || gap < 0) {
            series_task_free(t);
            return cli_fail("series %s: --hide must be random:P with 0 < P < 1, gap:N with 1 <= N <= --length, or none, not '%s'", cmd, a->hide);
        }
    }
    dfs_rng rng;
    dfs_rng_seed(&rng, a->seed ? a->seed : 1);
    for (int w = 0; w < t->W; w++) {
        const int st = t->forecast ? from + w * (int)(a->every ? a->every : 1) - (int)a->context
                                   : from + w * t->L;
        t->start[w] = st;
        uint8_t *kn = t->known + w * D, *sc = t->score + w * D;
        const uint8_t *ob = s->observed + (size_t)st * K;
        for (size_t j = 0; j < D; j++) {
            int hidden;
            if (t->forecast) hidden = (long)(j / K) >= a->context;
            else if (gap) hidden = 0;
            else hidden = dfs_rng_uniform(&rng) < p;
            kn[j] = ob[j] && !hidden;
            sc[j] = ob[j] && hidden;
        }
        if (gap)
            for (int k = 0; k < K; k++) {
                int at = (int)dfs_rng_below(&rng, (uint32_t)(t->L - gap + 1));
                for (int l = at; l < at + gap; l++) {
                    sc[(size_t)l * K + k] = ob[(size_t)l * K + k];
                    kn[(size_t)l * K + k] = 0;
                }
            }
    }
    return 0;
}

int series_write_npy(const char *path, const float *x, int ndim, const size_t *shape) {
    dfs_status st = dfs_npy_write_f32(path, x, ndim, shape);
    return st == DFS_OK ? 0 : cli_fail_status(st);
}

/* ---- windows ------------------------------------------------------------------------------- */

static const char windows_help[] =
    "usage: diffuse series windows --data CSV --columns A,B TASK --out PREFIX\n"
    "\n"
    "Cut a series into the windows of a forecasting or imputation task and write them as .npy\n"
    "files for forecast, impute, eval and plot (float32; NaN where missing):\n"
    "  forecast: PREFIX-context.npy (windows, context, features), PREFIX-truth.npy\n"
    "            (windows, horizon, features), PREFIX-times.npy (windows, context) float64\n"
    "            seconds since 1970 UTC\n"
    "  impute:   PREFIX-values.npy (windows, length, features) with the hidden entries NaN,\n"
    "            PREFIX-truth.npy (the same, nothing hidden), PREFIX-mask.npy (uint8, 1 = a\n"
    "            hidden entry to score), PREFIX-times.npy (windows, length)\n"
    "\n"
    "  --data CSV          a CSV file, or seattle-weather, seattle-temps, sf-temps, co2;\n"
    "                      A+B joins two files on their time steps (columns named A.COLUMN)\n"
    "  --columns A,B       the value columns (default: all)\n"
    "  --out PREFIX        where the files go\n";

int series_windows(int argc, char **argv) {
    const char *data = NULL, *columns = NULL, *out = NULL;
    series_task_args ta = {.every = 1};
    static const struct option opts[] = {{"data", required_argument, 0, 'd'}, {"columns", required_argument, 0, 'c'},
                                         {"out", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'},
                                         SERIES_TASK_OPTIONS, {0, 0, 0, 0}};
    int o, rc;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (series_task_option(o, optarg, &ta, &rc)) {
            if (rc) return rc;
            continue;
        }
        switch (o) {
        case 'd': data = optarg; break;
        case 'c': columns = optarg; break;
        case 'o': out = optarg; break;
        case 'h': printf("%s\n%s", windows_help, series_task_help); return 0;
        default: return cli_bad_option("series windows", argv);
        }
    }
    if (optind < argc) return cli_fail("series windows: unexpected argument '%s'", argv[optind]);
    if (!out) return cli_fail("series windows: --out PREFIX is required");
    if (cli_out_ok("series windows", "--out", out)) return 2;
    dfs_series s;
    if (series_load("windows", data, columns, &s)) return 2;
    series_task t;
    if (series_task_make("windows", &s, &ta, &t)) {
        dfs_series_free(&s);
        return 2;
    }
    const int K = s.n_features, W = t.W, L = t.L;
    const int C = t.forecast ? (int)ta.context : L, H = t.forecast ? (int)ta.horizon : L;
    float *ctx = malloc((size_t)W * C * K * sizeof(float));
    float *tru = malloc((size_t)W * H * K * sizeof(float));
    double *tim = malloc((size_t)W * C * sizeof(double));
    char path[4200];
    rc = ctx && tru && tim ? 0 : cli_fail("series windows: out of memory");
    for (int w = 0; !rc && w < W; w++) {
        const size_t r0 = (size_t)t.start[w];
        for (int l = 0; l < L; l++)
            for (int k = 0; k < K; k++) {
                const size_t j = (r0 + l) * K + k, q = ((size_t)w * L + l) * K + k;
                const float v = s.observed[j] ? s.values[j] : NAN;
                if (l < C) ctx[((size_t)w * C + l) * K + k] = t.known[q] ? v : NAN;
                if (t.forecast && l >= C) tru[((size_t)w * H + l - C) * K + k] = v;
                if (!t.forecast) tru[q] = v;
            }
        for (int l = 0; l < C; l++) tim[(size_t)w * C + l] = (double)s.times[r0 + l];
    }
    size_t shc[3] = {(size_t)W, (size_t)C, (size_t)K}, shh[3] = {(size_t)W, (size_t)H, (size_t)K};
    if (!rc) {
        snprintf(path, sizeof path, "%s-%s.npy", out, t.forecast ? "context" : "values");
        rc = series_write_npy(path, ctx, 3, shc);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s-truth.npy", out);
        rc = series_write_npy(path, tru, 3, shh);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s-times.npy", out);
        dfs_status st = dfs_npy_write_f64(path, tim, 2, shc);
        if (st != DFS_OK) rc = cli_fail_status(st);
    }
    if (!rc && !t.forecast) {
        snprintf(path, sizeof path, "%s-mask.npy", out);
        dfs_status st = dfs_npy_write_u8(path, t.score, 3, shc);
        if (st != DFS_OK) rc = cli_fail_status(st);
    }
    if (!rc) {
        long scored = 0;
        for (size_t j = 0; j < (size_t)W * L * K; j++) scored += t.score[j];
        fprintf(stderr, "wrote %s-*.npy: %d windows of %d steps x %d features, %ld entries to score\n", out, W, L, K, scored);
    }
    free(ctx);
    free(tru);
    free(tim);
    series_task_free(&t);
    dfs_series_free(&s);
    return rc;
}

/* ---- eval ---------------------------------------------------------------------------------- */

static const char eval_help[] =
    "usage: diffuse series eval --samples F.npy --truth Y.npy [--mask M.npy] [--by-step N]\n"
    "\n"
    "Score sample forecasts (Tashiro et al. 2021's metrics). F is (windows, samples, ...) and Y\n"
    "(windows, ...) with the same trailing shape; an entry is scored where Y is not NaN and, with\n"
    "--mask (uint8, Y's shape), where the mask is 1. Prints:\n"
    "  CRPS from 19 quantiles (0.05 ... 0.95) as CSDI computes it, and the exact CRPS of the\n"
    "  samples, E|X - y| - 1/2 E|X - X'|; each per entry and normalised (sum of CRPS over sum\n"
    "  of |y|, CSDI's 'CRPS'); the MAE of the median; the 50% and 90% central intervals'\n"
    "  coverage.\n"
    "  --by-step N   then the same scores for each stretch of N steps (Y's second dimension,\n"
    "                the lead time of a forecast), with the median's mean signed error\n"
    "                (bias: positive where the forecasts run high)\n";

/* Read F, Y and the optional mask and check their shapes: W, S, P. 0 or 2. */
static int read_scored(const char *fpath, const char *ypath, const char *mpath, float **F, float **Y,
                       uint8_t **M, int *W, int *S, size_t *P, size_t *L) {
    size_t fs[DFS_MAXDIM], ys[DFS_MAXDIM], ms[DFS_MAXDIM];
    int fd, yd, md;
    dfs_status st;
    *F = NULL, *Y = NULL, *M = NULL;
    if ((st = dfs_npy_read_f32(fpath, F, &fd, fs)) != DFS_OK) return cli_fail_status(st);
    if ((st = dfs_npy_read_f32(ypath, Y, &yd, ys)) != DFS_OK) return cli_fail_status(st);
    if (fd != yd + 1 || fd < 3) return cli_fail("series eval: %s has %d dimensions and %s %d; they must be (windows, samples, ...) and (windows, ...)", fpath, fd, ypath, yd);
    size_t p = 1;
    for (int i = 0; i < yd; i++) {
        if (ys[i] != fs[i == 0 ? 0 : i + 1])
            return cli_fail("series eval: %s and %s disagree in dimension %d (%zu and %zu)", fpath, ypath, i, fs[i == 0 ? 0 : i + 1], ys[i]);
        if (i > 0) p *= ys[i];
    }
    if (mpath) {
        if ((st = dfs_npy_read_u8(mpath, M, &md, ms)) != DFS_OK) return cli_fail_status(st);
        int same = md == yd;
        for (int i = 0; same && i < yd; i++) same = ms[i] == ys[i];
        if (!same) return cli_fail("series eval: the mask %s is not the shape of %s", mpath, ypath);
    }
    if (fs[0] < 1 || fs[1] < 1 || p < 1 || fs[0] > 100000000 || fs[1] > 100000)
        return cli_fail("series eval: empty or oversized arrays");
    *W = (int)fs[0], *S = (int)fs[1], *P = p, *L = ys[1];
    return 0;
}

static void print_scores(const char *name, const dfs_forecast_scores *c, int header) {
    if (header)
        printf("%-22s %10s %10s %10s %10s %10s %8s %8s %8s\n", "method", "CRPS(q)", "CRPS", "nCRPS(q)",
               "nCRPS", "MAE(med)", "cov50", "cov90", "entries");
    printf("%-22s %10.4f %10.4f %10.4f %10.4f %10.4f %8.3f %8.3f %8ld\n", name, c->crps_quantile, c->crps_sample,
           c->ncrps_quantile, c->ncrps_sample, c->mae_median, c->cover50, c->cover90, c->n);
}

/* The scores of each stretch of `by` steps (Y's second dimension) of P = L K entries a window:
 * the mask (or all entries) restricted to the stretch. 0 or 2. */
static int eval_by_step(const float *F, const float *Y, const uint8_t *M, int W, int S, size_t P, size_t L,
                        long by) {
    const size_t K = P / L;
    uint8_t *mb = malloc((size_t)W * P);
    if (!mb) return cli_fail("series eval: out of memory for a mask of %d x %zu entries", W, P);
    printf("\n%-22s %10s %10s %10s %10s %8s %8s %8s\n", "steps", "CRPS(q)", "CRPS", "MAE(med)", "bias(med)",
           "cov50", "cov90", "entries");
    int rc = 0;
    for (size_t l0 = 0; l0 < L && !rc; l0 += (size_t)by) {
        const size_t l1 = l0 + (size_t)by < L ? l0 + (size_t)by : L;
        for (int w = 0; w < W; w++)
            for (size_t p = 0; p < P; p++) {
                const size_t i = (size_t)w * P + p, l = p / K;
                mb[i] = l >= l0 && l < l1 && (!M || M[i]);
            }
        char name[48];
        snprintf(name, sizeof name, "%zu-%zu", l0 + 1, l1);
        dfs_forecast_scores sc;
        const dfs_status st = dfs_forecast_score(F, Y, mb, W, S, P, &sc);
        if (st == DFS_OK)
            printf("%-22s %10.4f %10.4f %10.4f %10.4f %8.3f %8.3f %8ld\n", name, sc.crps_quantile, sc.crps_sample,
                   sc.mae_median, sc.bias_median, sc.cover50, sc.cover90, sc.n);
        else if (st == DFS_ERR_ARG) /* nothing scored in this stretch (an imputation's mask) */
            printf("%-22s %10s %10s %10s %10s %8s %8s %8d\n", name, "-", "-", "-", "-", "-", "-", 0);
        else
            rc = cli_fail_status(st);
    }
    free(mb);
    return rc;
}

int series_eval(int argc, char **argv) {
    const char *fpath = NULL, *ypath = NULL, *mpath = NULL;
    long by = 0;
    static const struct option opts[] = {{"samples", required_argument, 0, 's'}, {"truth", required_argument, 0, 't'},
                                         {"mask", required_argument, 0, 'm'}, {"by-step", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 's': fpath = optarg; break;
        case 't': ypath = optarg; break;
        case 'm': mpath = optarg; break;
        case 'b': if (cli_int("--by-step", optarg, 1, 1000000, &by)) return 2; break;
        case 'h': fputs(eval_help, stdout); return 0;
        default: return cli_bad_option("series eval", argv);
        }
    }
    if (optind < argc) return cli_fail("series eval: unexpected argument '%s'", argv[optind]);
    if (!fpath || !ypath) return cli_fail("series eval: --samples and --truth are required");
    float *F, *Y;
    uint8_t *M;
    int W = 0, S = 0;
    size_t P = 0, L = 0;
    int rc = read_scored(fpath, ypath, mpath, &F, &Y, &M, &W, &S, &P, &L);
    if (!rc) {
        dfs_forecast_scores sc;
        dfs_status st = dfs_forecast_score(F, Y, M, W, S, P, &sc);
        if (st != DFS_OK) rc = cli_fail_status(st);
        else print_scores(fpath, &sc, 1);
        if (!rc && by) rc = eval_by_step(F, Y, M, W, S, P, L, by);
    }
    free(F);
    free(Y);
    free(M);
    return rc;
}

/* ---- baselines ----------------------------------------------------------------------------- */

static const char baselines_help[] =
    "usage: diffuse series baselines --data CSV --columns A,B --until DATE TASK [options]\n"
    "\n"
    "Score the baselines on the windows of a task (the options of 'diffuse series windows'),\n"
    "with the metrics of 'diffuse series eval', each fitted on the rows up to --until:\n"
    "  climatology      the training values within 7 days of the same day of the year (daily\n"
    "                   data) or at the same hour in the last 28 training days (finer steps)\n"
    "  persistence      the last known value plus bootstrapped training increments\n"
    "  seasonal-naive   the value one period back plus bootstrapped seasonal differences\n"
    "                   (--period; only for steps finer than a day: period 1 day)\n"
    "  ar               a linear autoregression on --lags rows of every feature, least squares\n"
    "                   (LAPACK), with bootstrapped residual paths\n"
    "  interp           (imputation) linear interpolation plus the errors it makes on training\n"
    "                   windows under the same mask\n"
    "  gaussian         a multivariate Gaussian over whole windows, fitted to every training\n"
    "                   window and conditioned exactly on the known entries (LAPACK)\n"
    "\n"
    "  --data CSV          a CSV file, or seattle-weather, seattle-temps, sf-temps, co2\n"
    "  --columns A,B       the value columns (default: all)\n"
    "  --until DATE        the end of the training span\n"
    "  --samples N         samples per window (default 100)\n"
    "  --lags N            the autoregression's lags (default: 7, or a day's steps)\n"
    "  --seed N            (default 1)\n"
    "  --out PREFIX        also write each baseline's samples to PREFIX-NAME.npy\n";

int series_baselines(int argc, char **argv) {
    const char *data = NULL, *columns = NULL, *until = NULL, *out = NULL;
    long S = 100, lags = 0;
    uint64_t seed = 1;
    series_task_args ta = {.every = 1};
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"columns", required_argument, 0, 'c'}, {"until", required_argument, 0, 'u'},
        {"samples", required_argument, 0, 'n'}, {"lags", required_argument, 0, 'l'}, {"seed", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, SERIES_TASK_OPTIONS, {0, 0, 0, 0}};
    int o, rc;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (series_task_option(o, optarg, &ta, &rc)) {
            if (rc) return rc;
            continue;
        }
        switch (o) {
        case 'd': data = optarg; break;
        case 'c': columns = optarg; break;
        case 'u': until = optarg; break;
        case 'n': if (cli_int("--samples", optarg, 1, 100000, &S)) return 2; break;
        case 'l': if (cli_int("--lags", optarg, 1, 10000, &lags)) return 2; break;
        case 's': if (cli_u64("--seed", optarg, &seed)) return 2; break;
        case 'o': out = optarg; break;
        case 'h': printf("%s\n%s", baselines_help, series_task_help); return 0;
        default: return cli_bad_option("series baselines", argv);
        }
    }
    if (optind < argc) return cli_fail("series baselines: unexpected argument '%s'", argv[optind]);
    if (!until) return cli_fail("series baselines: --until DATE (the end of the training span) is required");
    if (out && cli_out_ok("series baselines", "--out", out)) return 2;
    dfs_series s;
    if (series_load("baselines", data, columns, &s)) return 2;
    series_task t;
    int train_end;
    if (series_rows_until("baselines", &s, until, &train_end) || series_task_make("baselines", &s, &ta, &t)) {
        dfs_series_free(&s);
        return 2;
    }
    const int K = s.n_features, hourly = s.step > 0 && s.step < 86400;
    const int day = hourly ? (int)(86400 / s.step) : 1;
    if (!lags) lags = hourly ? day : 7;
    dfs_series_task task = {.s = &s, .train_end = train_end, .start = t.start, .W = t.W, .L = t.L, .known = t.known};
    const size_t D = (size_t)t.L * K;
    float *x = malloc((size_t)t.W * S * D * sizeof(float));
    float *truth = malloc((size_t)t.W * D * sizeof(float));
    rc = x && truth ? 0 : cli_fail("series baselines: out of memory");
    for (int w = 0; !rc && w < t.W; w++)
        for (size_t j = 0; j < D; j++) {
            const size_t r = (size_t)t.start[w] * K + j;
            truth[w * D + j] = s.observed[r] ? s.values[r] : NAN;
        }
    const char *names[] = {"climatology", "persistence", "seasonal-naive", "ar", "interp", "gaussian"};
    int header = 1;
    for (int b = 0; !rc && b < 6; b++) {
        if (b == 2 && (!hourly || day >= t.L || day >= train_end)) continue;
        if (b == 4 && t.forecast) continue;
        dfs_rng rng;
        dfs_rng_seed(&rng, seed);
        double t0 = cli_now();
        dfs_status st;
        switch (b) {
        case 0: st = dfs_baseline_climatology(&task, (int)S, &rng, x); break;
        case 1: st = dfs_baseline_seasonal_naive(&task, 1, (int)S, &rng, x); break;
        case 2: st = dfs_baseline_seasonal_naive(&task, day, (int)S, &rng, x); break;
        case 3: st = dfs_baseline_ar(&task, (int)lags, (int)S, &rng, x); break;
        case 4: st = dfs_baseline_interp(&task, 200, (int)S, &rng, x); break;
        default: st = dfs_baseline_gaussian(&task, (int)S, &rng, x); break;
        }
        if (st != DFS_OK) {
            fprintf(stderr, "diffuse: series baselines: %s: %s\n", names[b], dfs_last_error());
            continue;
        }
        dfs_forecast_scores sc;
        if ((st = dfs_forecast_score(x, truth, t.score, t.W, (int)S, D, &sc)) != DFS_OK) {
            rc = cli_fail_status(st);
            break;
        }
        char label[64];
        snprintf(label, sizeof label, b == 3 ? "%s(%ld)" : "%s", names[b], lags);
        print_scores(label, &sc, header);
        header = 0;
        fprintf(stderr, "%s: %.1f s\n", label, cli_now() - t0);
        if (out) {
            char path[4200];
            snprintf(path, sizeof path, "%s-%s.npy", out, names[b]);
            size_t shape[4] = {(size_t)t.W, (size_t)S, (size_t)t.L, (size_t)K};
            rc = series_write_npy(path, x, 4, shape);
        }
    }
    free(x);
    free(truth);
    series_task_free(&t);
    dfs_series_free(&s);
    return rc;
}

/* ---- plot ---------------------------------------------------------------------------------- */

static const char plot_help[] =
    "usage: diffuse series plot --samples F.npy [--context C.npy] [--truth Y.npy] --out FAN.png\n"
    "                           [options]\n"
    "\n"
    "Draw a fan chart of one window of sample forecasts or imputations: for each feature the\n"
    "median, the central 50% and 90% bands (which close up on the entries an imputation was\n"
    "given), the context a forecast was given, and the truth.\n"
    "  --samples F.npy     (windows, samples, steps, features), from forecast or impute\n"
    "  --context C.npy     (windows, context, features): a forecast's history, drawn before it\n"
    "  --truth Y.npy       (windows, steps, features) what happened (NaN: missing)\n"
    "  --window N          which window (default 0)\n"
    "  --names A,B         legend names of the features (default: feature 1, ...)\n"
    "  --title TEXT        (default: none)\n"
    "  --xlabel TEXT       (default: steps)\n"
    "  --out FAN.png\n";

/* the q-quantile of n sorted values, linear interpolation (numpy's default) */
static double quantile(const float *v, int n, double q) {
    double h = q * (n - 1);
    int i = (int)floor(h);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (h - i) * (v[i + 1] - v[i]);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int series_plot(int argc, char **argv) {
    const char *fpath = NULL, *cpath = NULL, *ypath = NULL, *out = NULL, *names = NULL,
               *title = NULL, *xlabel = "steps";
    long win = 0;
    static const struct option opts[] = {
        {"samples", required_argument, 0, 's'}, {"context", required_argument, 0, 'c'},
        {"truth", required_argument, 0, 't'}, {"window", required_argument, 0, 'w'}, {"names", required_argument, 0, 'n'},
        {"title", required_argument, 0, 'T'}, {"xlabel", required_argument, 0, 'x'}, {"out", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 's': fpath = optarg; break;
        case 'c': cpath = optarg; break;
        case 't': ypath = optarg; break;
        case 'w': if (cli_int("--window", optarg, 0, 100000000, &win)) return 2; break;
        case 'n': names = optarg; break;
        case 'T': title = optarg; break;
        case 'x': xlabel = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(plot_help, stdout); return 0;
        default: return cli_bad_option("series plot", argv);
        }
    }
    if (optind < argc) return cli_fail("series plot: unexpected argument '%s'", argv[optind]);
    if (!fpath || !out) return cli_fail("series plot: --samples and --out are required");
    if (cli_out_ok("series plot", "--out", out)) return 2;
    float *F = NULL, *C = NULL, *Y = NULL;
    size_t fs[DFS_MAXDIM], cs[DFS_MAXDIM] = {0}, ys[DFS_MAXDIM];
    int fd, cd = 0, yd, rc = 0;
    dfs_status st = dfs_npy_read_f32(fpath, &F, &fd, fs);
    if (st != DFS_OK) return cli_fail_status(st);
    if (fd != 4) rc = cli_fail("series plot: %s must be (windows, samples, steps, features)", fpath);
    const int W = (int)fs[0], S = (int)fs[1], H = (int)fs[2], K = (int)fs[3];
    if (!rc && win >= W) rc = cli_fail("series plot: --window %ld, but %s has %d windows", win, fpath, W);
    if (!rc && cpath) {
        if ((st = dfs_npy_read_f32(cpath, &C, &cd, cs)) != DFS_OK) rc = cli_fail_status(st);
        else if (cd != 3 || (int)cs[0] != W || (int)cs[2] != K)
            rc = cli_fail("series plot: %s must be (windows, steps, features) of %d windows and %d features", cpath, W, K);
    }
    if (!rc && ypath) {
        if ((st = dfs_npy_read_f32(ypath, &Y, &yd, ys)) != DFS_OK) rc = cli_fail_status(st);
        else if (yd != 3 || (int)ys[0] != W || (int)ys[1] != H || (int)ys[2] != K)
            rc = cli_fail("series plot: %s must be (windows, steps, features) of the samples' shape (%d, %d, %d)", ypath, W, H, K);
    }
    if (!rc && K > 8) rc = cli_fail("series plot: %d features; a chart shows at most 8", K);
    static const uint8_t colours[8][3] = {{214, 39, 40}, {31, 119, 180}, {44, 160, 44}, {148, 103, 189},
                                          {255, 127, 14}, {140, 86, 75}, {227, 119, 194}, {23, 190, 207}};
    const int NC = cpath ? (int)cs[1] : 0;
    double *buf = rc ? NULL : malloc((size_t)K * (7 * H + 2 * NC + 1) * sizeof(double));
    float *col = rc ? NULL : malloc((size_t)S * sizeof(float));
    char namebuf[1024], *nm[8] = {0}, deflt[8][32];
    if (!rc && (!buf || !col)) rc = cli_fail("series plot: out of memory");
    if (!rc && names) {
        snprintf(namebuf, sizeof namebuf, "%s", names);
        int k = 0;
        for (char *tok = strtok(namebuf, ","); tok && k < 8; tok = strtok(NULL, ",")) nm[k++] = tok;
    }
    dfs_plot_fan fans[8];
    for (int k = 0; !rc && k < K; k++) {
        double *b = buf + (size_t)k * (7 * H + 2 * NC + 1);
        double *x = b, *q05 = b + H, *q25 = b + 2 * H, *q50 = b + 3 * H, *q75 = b + 4 * H, *q95 = b + 5 * H, *tr = b + 6 * H;
        double *cx = b + 7 * H, *cy = cx + NC;
        for (int l = 0; l < H; l++) {
            for (int q = 0; q < S; q++) col[q] = F[(((size_t)win * S + q) * H + l) * K + k];
            qsort(col, (size_t)S, sizeof *col, cmp_float);
            if (!isfinite(col[0]) || !isfinite(col[S - 1])) {
                rc = cli_fail("series plot: %s holds a non-finite sample (window %ld, step %d)", fpath, win, l);
                break;
            }
            x[l] = l;
            q05[l] = quantile(col, S, 0.05), q25[l] = quantile(col, S, 0.25), q50[l] = quantile(col, S, 0.5);
            q75[l] = quantile(col, S, 0.75), q95[l] = quantile(col, S, 0.95);
            tr[l] = Y ? Y[((size_t)win * H + l) * K + k] : NAN;
        }
        for (int l = 0; l < NC; l++) {
            cx[l] = l - NC;
            cy[l] = C[((size_t)win * NC + l) * K + k];
        }
        snprintf(deflt[k], sizeof deflt[k], "feature %d", k + 1);
        fans[k] = (dfs_plot_fan){.x = x, .n = H, .lo90 = q05, .lo50 = q25, .median = q50, .hi50 = q75, .hi90 = q95,
                                 .truth = Y ? tr : NULL, .context_x = NC ? cx : NULL, .context_y = NC ? cy : NULL,
                                 .n_context = NC, .label = nm[k] ? nm[k] : deflt[k]};
        memcpy(fans[k].rgb, colours[k], 3);
    }
    if (!rc) {
        dfs_plot_config pc = {.width = 900, .height = 450, .title = title, .xlabel = xlabel, .ylabel = NULL};
        if ((st = dfs_plot_fan_png(out, fans, K, &pc)) != DFS_OK) rc = cli_fail_status(st);
        else fprintf(stderr, "wrote %s\n", out);
    }
    free(buf);
    free(col);
    free(F);
    free(C);
    free(Y);
    return rc;
}
