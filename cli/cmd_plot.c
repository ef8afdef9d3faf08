/* cmd_plot.c - diffuse plot: a column of one or more metrics.csv files (as diffuse train and
 * diffuse classifier train write them) drawn against another, as a PNG line chart. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *plot_help =
    "usage: diffuse plot FILE.csv [FILE.csv ...] --out FILE.png [options]\n"
    "\n"
    "Draw one column of CSV files against another: the loss curve of a training run from its\n"
    "metrics.csv. Each file is one line; its raw values are drawn pale and a trailing moving\n"
    "average over --smooth rows on top. The files need a header row naming the columns and\n"
    "numeric rows. Where x goes back (a run resumed from an earlier checkpoint), the rows it\n"
    "replays replace the earlier ones, so the curve shows the run that the checkpoint holds.\n"
    "\n"
    "  --out FILE.png      the chart (required)\n"
    "  --y COLUMN          column to draw (default loss)\n"
    "  --x COLUMN          column along the x axis (default step)\n"
    "  --smooth N          moving average over N rows; 0 draws the raw values alone\n"
    "                      (default: a fiftieth of the rows)\n"
    "  --log               logarithmic y axis\n"
    "  --title TEXT        title (default: the y column)\n"
    "  --width N, --height N  size in pixels (default 800 x 450)\n";

typedef struct {
    double *x, *y;
    int n;
} xy;

/* split a CSV line in place at commas; returns the field count (at most max) */
static int split(char *line, char **f, int max) {
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

static int parse_num(const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    while (*end == ' ') end++;
    return end != s && *end == 0 && !(errno == ERANGE && !isfinite(*v)); /* underflow is fine */
}

#define MAX_FIELDS 2049 /* as many as a 4096-byte line can hold */

/* read columns xname and yname of path */
static int read_csv(const char *path, const char *xname, const char *yname, xy *out) {
    memset(out, 0, sizeof *out);
    FILE *fp;
    if (dfs_open_read(path, &fp)) return cli_fail("%s", dfs_last_error());
    char line[4096], *f[MAX_FIELDS];
    int rc = 0, xi = -1, yi = -1, nf, cap = 0;
    long lineno = 1;
    if (!fgets(line, sizeof line, fp)) {
        fclose(fp);
        return cli_fail("%s: empty file (expected a header row such as step,loss,...)", path);
    }
    char header[4096];
    snprintf(header, sizeof header, "%s", line);
    header[strcspn(header, "\r\n")] = 0;
    nf = split(line, f, MAX_FIELDS);
    for (int i = 0; i < nf; i++) {
        if (!strcmp(f[i], xname)) xi = i;
        if (!strcmp(f[i], yname)) yi = i;
    }
    if (xi < 0 || yi < 0) {
        fclose(fp);
        return cli_fail("%s: no column '%s' (the header is '%s')", path, xi < 0 ? xname : yname, header);
    }
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        if (line[strspn(line, " \r\n")] == 0) continue; /* blank line */
        if (!strchr(line, '\n') && !feof(fp)) {
            rc = cli_fail("%s:%ld: line too long", path, lineno);
            break;
        }
        nf = split(line, f, MAX_FIELDS);
        double x, y;
        if (nf <= xi || nf <= yi) {
            rc = cli_fail("%s:%ld: %d fields, expected at least %d", path, lineno, nf, (xi > yi ? xi : yi) + 1);
            break;
        }
        if (!parse_num(f[xi], &x) || !parse_num(f[yi], &y)) {
            rc = cli_fail("%s:%ld: '%s' or '%s' is not a number", path, lineno, f[xi], f[yi]);
            break;
        }
        while (out->n > 0 && out->x[out->n - 1] >= x) out->n--; /* a resumed run replays */
        if (out->n == cap) {
            cap = cap ? cap * 2 : 1024;
            double *nx = realloc(out->x, cap * sizeof(double)), *ny = nx ? realloc(out->y, cap * sizeof(double)) : NULL;
            if (nx) out->x = nx;
            if (ny) out->y = ny;
            if (!nx || !ny) {
                rc = cli_fail("out of memory");
                break;
            }
        }
        out->x[out->n] = x, out->y[out->n] = y, out->n++;
    }
    if (!rc && ferror(fp)) rc = cli_fail("%s: read error", path);
    fclose(fp);
    if (!rc && out->n == 0) rc = cli_fail("%s: no data rows", path);
    if (rc) free(out->x), free(out->y), memset(out, 0, sizeof *out);
    return rc;
}

/* trailing mean over win rows (fewer at the start); non-finite values are left out */
static double *moving_average(const double *y, int n, int win) {
    double *m = malloc((size_t)n * sizeof(double));
    if (!m) return NULL;
    double sum = 0;
    int cnt = 0;
    for (int i = 0; i < n; i++) {
        if (isfinite(y[i])) sum += y[i], cnt++;
        if (i >= win && isfinite(y[i - win])) sum -= y[i - win], cnt--;
        m[i] = cnt ? sum / cnt : NAN;
    }
    return m;
}

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *xname = "step", *yname = "loss", *title = NULL;
    long smooth = -1, width = 800, height = 450;
    int log_y = 0;
    enum { O_OUT = 256, O_X, O_Y, O_SMOOTH, O_LOG, O_TITLE, O_W, O_H };
    static const struct option opts[] = {
        {"out", required_argument, 0, O_OUT}, {"x", required_argument, 0, O_X},
        {"y", required_argument, 0, O_Y}, {"smooth", required_argument, 0, O_SMOOTH},
        {"log", no_argument, 0, O_LOG}, {"title", required_argument, 0, O_TITLE},
        {"width", required_argument, 0, O_W}, {"height", required_argument, 0, O_H},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h': fputs(plot_help, stdout); return 0;
        case O_OUT: out = optarg; break;
        case O_X: xname = optarg; break;
        case O_Y: yname = optarg; break;
        case O_TITLE: title = optarg; break;
        case O_LOG: log_y = 1; break;
        case O_SMOOTH: if (cli_int("--smooth", optarg, 0, 1000000, &smooth)) return 2; break;
        case O_W: if (cli_int("--width", optarg, 200, 8192, &width)) return 2; break;
        case O_H: if (cli_int("--height", optarg, 150, 8192, &height)) return 2; break;
        default: return cli_bad_option("plot", argv);
        }
    }
    if (!out || !ends_with(out, ".png")) return cli_fail("plot: --out FILE.png is required");
    const int nfiles = argc - optind;
    if (nfiles < 1) return cli_fail("plot: give one or more CSV files (see diffuse plot --help)");
    if (nfiles > 8) return cli_fail("plot: at most 8 files, got %d", nfiles);

    static const uint8_t palette[8][3] = {{31, 119, 180}, {214, 39, 40},  {44, 160, 44},  {255, 127, 14},
                                          {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127}};
    xy data[8] = {{0}};
    double *avg[8] = {0};
    dfs_plot_series series[16];
    char labels[8][160];
    int ns = 0, rc = 0;
    for (int i = 0; i < nfiles && !rc; i++) {
        if ((rc = read_csv(argv[optind + i], xname, yname, &data[i]))) break;
        long win = smooth >= 0 ? smooth : data[i].n / 50;
        const char *name = strrchr(argv[optind + i], '/');
        name = name ? name + 1 : argv[optind + i];
        if (win > 1) snprintf(labels[i], sizeof labels[i], "%s%s%s, mean of %ld rows", nfiles > 1 ? name : "",
                              nfiles > 1 ? ": " : "", yname, win);
        else snprintf(labels[i], sizeof labels[i], "%s%s%s", nfiles > 1 ? name : "", nfiles > 1 ? ": " : "", yname);
        series[ns++] = (dfs_plot_series){data[i].x, data[i].y, data[i].n, {palette[i][0], palette[i][1], palette[i][2]},
                                         1.0f, win > 1 ? 0.3f : 1.0f, win > 1 ? NULL : labels[i]};
        if (win > 1) {
            if (!(avg[i] = moving_average(data[i].y, data[i].n, (int)win))) {
                rc = cli_fail("out of memory");
                break;
            }
            series[ns++] = (dfs_plot_series){data[i].x, avg[i], data[i].n, {palette[i][0], palette[i][1], palette[i][2]},
                                             2.0f, 1.0f, labels[i]};
        }
    }
    if (!rc) {
        dfs_plot_config cfg = {(int)width, (int)height, title ? title : yname, xname, yname, log_y, NULL};
        dfs_status s = dfs_plot_png(out, series, ns, &cfg);
        if (s != DFS_OK) rc = cli_fail_status(s);
        else fprintf(stderr, "wrote %s: %s against %s from %d file%s\n", out, yname, xname, nfiles, nfiles > 1 ? "s" : "");
    }
    for (int i = 0; i < nfiles; i++) free(data[i].x), free(data[i].y), free(avg[i]);
    return rc;
}
