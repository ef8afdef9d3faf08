/* test_plot.c - line charts (src/render/plot.c) read back as pixels: a rising line rises, y = 10^x is
 * straight on a log axis and bent on a linear one, a NaN leaves a gap, and bad input (nothing
 * finite, nothing positive on a log axis, a missing font) is an error with no file written.
 * Fan charts the same way: the bands have their blended colours exactly where the quantiles
 * put them (a band that widens, one symmetric on a log axis), the median runs down the middle,
 * the truth is drawn only where it is finite, the start of the forecast is dotted, and bad
 * bands (too short, NaN, out of order, x not rising) are errors that name the point. */
#include "check.h"
#include "diffuse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *path = "/tmp/dfs_test_plot.png";

/* pixels of pure red (planar c, h, w as dfs_png_read gives them); per column the mean row,
 * NAN where there are none */
static int red_columns(const uint8_t *px, int w, int h, double *mean_row) {
    int cols = 0;
    for (int x = 0; x < w; x++) {
        double sum = 0;
        int n = 0;
        for (int y = 0; y < h; y++) {
            const size_t i = (size_t)y * w + x, plane = (size_t)w * h;
            if (px[i] > 200 && px[i + plane] < 60 && px[i + 2 * plane] < 60) sum += y, n++;
        }
        mean_row[x] = n ? sum / n : NAN;
        cols += n > 0;
    }
    return cols;
}

/* largest distance in rows of the red columns from their least-squares line */
static double line_residual(const double *row, int w) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int n = 0;
    for (int x = 0; x < w; x++)
        if (!isnan(row[x])) sx += x, sy += row[x], sxx += (double)x * x, sxy += x * row[x], n++;
    /* max_err keeps a NaN: with fewer than 2 red columns the fit is 0/0 and the residual NaN,
     * which fmax would have dropped, reporting a chart with no line as perfectly straight */
    double b = (n * sxy - sx * sy) / (n * sxx - sx * sx), a = (sy - b * sx) / n, worst = n < 2 ? NAN : 0;
    for (int x = 0; x < w; x++)
        if (!isnan(row[x])) worst = max_err(worst, fabs(row[x] - (a + b * x)));
    return worst;
}

static int draw(const double *x, const double *y, int n, int log_y, const char *label, uint8_t **px,
                int *w, int *h) {
    dfs_plot_series s = {x, y, n, {255, 0, 0}, 2.0f, 1.0f, label};
    dfs_plot_config c = {600, 400, "title", "x", "y", log_y, NULL};
    unlink(path);
    if (dfs_plot_png(path, &s, 1, &c) != DFS_OK) return 0;
    int ch;
    if (dfs_png_read(path, px, &ch, h, w) != DFS_OK) return 0;
    return ch == 3;
}


/* ---- fan charts ---- */

/* an RGB image as dfs_png_read gives it: planar (c, h, w) */
typedef struct {
    uint8_t *p;
    int w, h;
} image;

static int pix(const image *im, int x, int y, int k) {
    return im->p[(size_t)k * im->w * im->h + (size_t)y * im->w + x];
}
/* the pixel (x, y) is rgb, each channel within tol */
static int is_rgb(const image *im, int x, int y, const int rgb[3], int tol) {
    for (int k = 0; k < 3; k++)
        if (abs(pix(im, x, y, k) - rgb[k]) > tol) return 0;
    return 1;
}
static int is_black(const image *im, int x, int y) {
    return pix(im, x, y, 0) < 60 && pix(im, x, y, 1) < 60 && pix(im, x, y, 2) < 60;
}
/* rows of column x that are rgb (within tol), between rows y0 and y1 (exclusive): how many,
 * and the first and last of them (-1 if none) */
static int column_run(const image *im, int x, int y0, int y1, const int rgb[3], int tol,
                      int *first, int *last) {
    int n = 0;
    *first = *last = -1;
    for (int y = y0; y < y1; y++)
        if (is_rgb(im, x, y, rgb, tol)) {
            if (*first < 0) *first = y;
            *last = y, n++;
        }
    return n;
}
/* the colour blended over paper p at opacity a, as the chart blends it */
static void blend_rgb(int out[3], const int p[3], const uint8_t rgb[3], float a) {
    for (int k = 0; k < 3; k++) out[k] = (int)lrintf(p[k] + a * ((float)rgb[k] - p[k]));
}

static const char *fan_path = "/tmp/dfs_test_plot_fan.png";

static int draw_fans(const dfs_plot_fan *fans, int nf, const dfs_plot_config *cfg, image *im) {
    unlink(fan_path);
    im->p = NULL;
    if (dfs_plot_fan_png(fan_path, fans, nf, cfg) != DFS_OK) {
        fprintf(stderr, "fan chart: %s\n", dfs_last_error());
        return 0;
    }
    int ch;
    if (dfs_png_read(fan_path, &im->p, &ch, &im->h, &im->w) != DFS_OK) return 0;
    return ch == 3;
}

/* The plot area from the axes, which are the only long runs of the axis grey (90, 90, 90): the
 * bottom axis is the row with most of them, spanning px0 .. px1; the left axis rises from it at
 * px0 to py0. */
static void find_axes(const image *im, int *px0, int *py0, int *px1, int *py1) {
    const int axis[3] = {90, 90, 90};
    int best = -1, f, l;
    *py1 = 0;
    for (int y = 0; y < im->h; y++) {
        int n = 0;
        for (int x = 0; x < im->w; x++) n += is_rgb(im, x, y, axis, 2);
        if (n > best) best = n, *py1 = y;
    }
    *px0 = *px1 = -1;
    for (int x = 0; x < im->w; x++)
        if (is_rgb(im, x, *py1, axis, 2)) {
            if (*px0 < 0) *px0 = x;
            *px1 = x + 1;
        }
    column_run(im, *px0 < 0 ? 0 : *px0, 0, *py1, axis, 2, &f, &l);
    *py0 = f;
}

/* A fan over x = 40..79 after a context over 0..39 that spans y 0..40: the median is 20, the
 * 90% band 20 -+ w and the 50% band 20 -+ w/2 with w = 2 + 8 t widening over the forecast
 * (t = 0..1); the truth is 20 + w/4 (inside the 50% band), missing at points 15..24. */
static void test_fan_geometry(void) {
    enum { NC = 40, NF = 40 };
    double cx[NC], cy[NC], x[NF], lo90[NF], lo50[NF], med[NF], hi50[NF], hi90[NF], truth[NF];
    for (int i = 0; i < NC; i++) cx[i] = i, cy[i] = 20 + 20 * sin(i / 3.0);
    cy[5] = 40, cy[14] = 0; /* the context reaches both ends of 0..40 */
    for (int j = 0; j < NF; j++) {
        const double t = j / (NF - 1.0), w = 2 + 8 * t;
        x[j] = NC + j, med[j] = 20;
        lo90[j] = 20 - w, hi90[j] = 20 + w, lo50[j] = 20 - w / 2, hi50[j] = 20 + w / 2;
        truth[j] = (j >= 15 && j <= 24) ? NAN : 20 + w / 4;
    }
    dfs_plot_fan fan = {x,  NF, lo90, lo50, med, hi50, hi90, truth, cx, cy,
                        NC, {0, 100, 200}, "feature"};
    dfs_plot_config cfg = {640, 360, NULL, "days", NULL, 0, NULL};
    image im;
    CHECK(draw_fans(&fan, 1, &cfg, &im), "fan chart of a widening band");
    if (!im.p) return;
    CHECK(im.w == 640 && im.h == 360, "fan chart read back as %d x %d, want 640 x 360", im.w, im.h);

    const int paper[3] = {255, 255, 255}, rgb[3] = {0, 100, 200};
    int c90[3], c50[3], f, l;
    blend_rgb(c90, paper, fan.rgb, DFS_PLOT_FAN_ALPHA90);
    blend_rgb(c50, c90, fan.rgb, DFS_PLOT_FAN_ALPHA50);
    int px0, py0, px1, py1;
    find_axes(&im, &px0, &py0, &px1, &py1);
    CHECK(px0 > 20 && px1 > px0 + 300 && px1 < im.w - 60 && py0 > 5 && py1 > py0 + 200,
          "plot area %d..%d x %d..%d (the legend needs room on the right)", px0, px1, py0, py1);

    /* the band's columns: those with a run of the 90% colour; they cover x = 40..79 of the
     * axis' 0..79 with no gaps but the grid lines (one column each) */
    int fx0 = -1, fx1 = -1, holes = 0;
    for (int xx = px0 + 1; xx < px1; xx++)
        if (column_run(&im, xx, py0, py1, c90, 1, &f, &l) >= 5) {
            if (fx0 < 0) fx0 = xx;
            else if (xx > fx1 + 2) holes++;
            fx1 = xx;
        }
    const double want_x0 = px0 + 40.0 / 79.0 * (px1 - px0);
    CHECK(fx0 > 0 && fabs(fx0 - want_x0) <= 2 && px1 - 1 - fx1 <= 1 && holes == 0,
          "90%% band over columns %d..%d (%d holes), want %.1f..%d", fx0, fx1, holes, want_x0,
          px1 - 1);
    if (fx0 < 0) {
        free(im.p);
        return;
    }

    /* The band's upper edge, hi90 = 20 + w, is one straight line over the forecast, and the
     * fill interpolates linearly between points: to a fraction of a pixel, read from the
     * partly covered pixel above each column's first full one (red = 255 - a 255 cov, for a
     * red channel of 0), skipping grid lines and the dotted column. A band held constant
     * across each ~6-pixel step between points would leave a sawtooth of about 0.7 pixels. */
    double *edge = calloc((size_t)im.w, sizeof(double));
    int grid_row[1024] = {0}, nedge = 0;
    CHECK(edge != NULL && py1 < 1024, "edge buffer for %d columns, %d rows", im.w, py1);
    if (!edge || py1 >= 1024) {
        free(edge), free(im.p);
        return;
    }
    const int grid[3] = {225, 225, 225};
    for (int y = py0; y < py1; y++) {
        int n = 0;
        for (int xx = px0 + 1; xx < fx0 - 1; xx++) n += is_rgb(&im, xx, y, grid, 0);
        grid_row[y] = n > (fx0 - px0) / 2;
    }
    for (int xx = 0; xx < im.w; xx++) {
        edge[xx] = NAN;
        if (xx < fx0 + 3 || xx > fx1 - 3 || is_rgb(&im, xx, py0 + 1, grid, 0)) continue;
        if (column_run(&im, xx, py0, py1, c90, 1, &f, &l) < 5 || grid_row[f] || grid_row[f - 1])
            continue;
        const double cov = (255 - pix(&im, xx, f - 1, 0)) / (DFS_PLOT_FAN_ALPHA90 * 255.0);
        edge[xx] = f - cov, nedge++;
    }
    const double edge_err = line_residual(edge, im.w);
    CHECK(nedge > 100 && edge_err <= 0.25, "the 90%% band's upper edge is %.3f pixels off a "
          "straight line over %d columns", edge_err, nedge);
    free(edge);

    /* a quarter and three quarters into the forecast: the band is 2 w tall, w = 4 then 8 */
    int top90[2], bot90[2], top50[2], bot50[2];
    for (int q = 0; q < 2; q++) {
        const int xx = (int)lrint(fx0 + (q ? 0.75 : 0.25) * (fx1 - fx0));
        column_run(&im, xx, py0, py1, c90, 1, &top90[q], &bot90[q]);
        column_run(&im, xx, py0, py1, c50, 1, &top50[q], &bot50[q]);
        /* inside: 90%-only rows have the 90% colour, 50% rows the 50% colour (grid lines,
         * the median and the truth cross a few of them); outside: paper or grid only */
        int n90 = 0, n50 = 0, rows90 = 0, rows50 = 0, bad = 0, nmed = 0;
        double sum_med = 0;
        for (int y = py0; y < py1; y++) {
            const int lum = pix(&im, xx, y, 0) + pix(&im, xx, y, 1) + pix(&im, xx, y, 2);
            if (y < top90[q] - 1 || y > bot90[q] + 1) bad += lum < 3 * 220;
            else if (y > top90[q] && y < top50[q] - 1) rows90++, n90 += is_rgb(&im, xx, y, c90, 1);
            else if (y > top50[q] && y < bot50[q])
                rows50++, n50 += is_rgb(&im, xx, y, c50, 1);
            if (is_rgb(&im, xx, y, rgb, 10)) sum_med += y, nmed++;
        }
        const double med_row = nmed ? sum_med / nmed : NAN;
        CHECK(rows90 > 0 && n90 >= 0.8 * rows90 && rows50 > 0 && n50 >= 0.7 * rows50,
              "column %d: %d of %d rows of the 90%% band have its colour, %d of %d of the 50%% "
              "band", xx, n90, rows90, n50, rows50);
        CHECK(bad == 0, "column %d: %d dark pixels outside the band (rows %d..%d)", xx, bad,
              top90[q], bot90[q]);
        CHECK(fabs(med_row - 0.5 * (top90[q] + bot90[q])) <= 1.5,
              "column %d: median at row %.2f, the band's middle is %.1f", xx, med_row,
              0.5 * (top90[q] + bot90[q]));
        const double h90 = bot90[q] - top90[q] + 1, h50 = bot50[q] - top50[q] + 1;
        CHECK(fabs(h50 / h90 - 0.5) <= 0.06, "column %d: 50%% band %.0f rows, 90%% band %.0f",
              xx, h50, h90);
    }
    const double ratio = (double)(bot90[1] - top90[1] + 1) / (bot90[0] - top90[0] + 1);
    CHECK(fabs(ratio - 2.0) <= 0.1, "the band widens %.3f times from t = 1/4 to 3/4, want 2 "
          "(w = 4 then 8)", ratio);

    /* the truth: black in most columns where it is finite (not all: it is dashed), none where
     * it is missing, and only inside the band (it lies in the 50% band) */
    const double step = (fx1 - fx0) / (NF - 1.0);
    int fin_cols = 0, fin_black = 0, miss_black = 0, stray = 0;
    for (int xx = fx0 + 2; xx < fx1 - 1; xx++) {
        const double j = (xx - fx0) / step; /* the point index at this column */
        int black = 0, ft, lt;
        const int band = column_run(&im, xx, py0, py1, c90, 1, &ft, &lt) >= 5;
        for (int y = py0; y < py1; y++)
            if (is_black(&im, xx, y)) black = 1, stray += band && (y < ft || y > lt);
        if (j > 14.5 && j < 24.5) miss_black += black;
        else if (j < 14 || j > 25) fin_cols++, fin_black += black;
    }
    CHECK(miss_black == 0, "%d columns of missing truth have black pixels", miss_black);
    CHECK(fin_black >= 0.65 * fin_cols && fin_black <= 0.95 * fin_cols,
          "the truth is black in %d of %d columns: missing, or not dashed", fin_black, fin_cols);
    CHECK(stray == 0, "%d black pixels outside the 90%% band", stray);

    /* the forecast begins at a dotted line: at the band's first column, above the band, some
     * rows are the axis grey and some are paper */
    const int axis[3] = {90, 90, 90};
    int best = 0, band_top, band_bot;
    column_run(&im, fx0 + 1, py0, py1, c90, 1, &band_top, &band_bot);
    const int rows = band_top - 2 - py0;
    for (int xx = fx0 - 2; xx <= fx0 + 1; xx++) {
        int n = 0;
        for (int y = py0; y < band_top - 2; y++) n += is_rgb(&im, xx, y, axis, 3);
        if (n > best) best = n;
    }
    CHECK(rows > 50 && best >= 0.25 * rows && best <= 0.7 * rows,
          "the forecast line is grey in %d of %d rows above the band", best, rows);

    /* the legend right of the plot area: the feature's colour and black text */
    int key = 0, text = 0;
    for (int y = 0; y < im.h; y++)
        for (int xx = px1 + 8; xx < im.w; xx++)
            key += is_rgb(&im, xx, y, rgb, 10), text += is_black(&im, xx, y);
    CHECK(key >= 20 && text >= 50, "legend: %d pixels of the feature's colour, %d of text", key,
          text);
    free(im.p);
}

/* On a log axis a band that is symmetric in log10 (median 100, 90% band 25..400, 50% band
 * 50..200) is symmetric on screen: the median in its middle, the 50% band half as tall. On a
 * linear axis the median would sit 4/5 of the way down it. */
static void test_fan_log_axis(void) {
    enum { N = 20 };
    double x[N], lo90[N], lo50[N], med[N], hi50[N], hi90[N], cx[2] = {-10, -1}, cy[2] = {1, 1e4};
    for (int i = 0; i < N; i++)
        x[i] = i, med[i] = 100, lo90[i] = 25, hi90[i] = 400, lo50[i] = 50, hi50[i] = 200;
    dfs_plot_fan fan = {x, N, lo90, lo50, med, hi50, hi90, NULL, cx, cy, 2, {200, 40, 0}, NULL};
    dfs_plot_config cfg = {500, 400, "log", NULL, "y", 1, NULL};
    image im;
    CHECK(draw_fans(&fan, 1, &cfg, &im), "fan chart on a log axis");
    if (!im.p) return;
    const int paper[3] = {255, 255, 255}, rgb[3] = {200, 40, 0};
    int c90[3], c50[3], t90 = -1, b90 = -1, t50 = -1, b50 = -1, nmed = 0, px0, py0, px1, py1;
    blend_rgb(c90, paper, fan.rgb, DFS_PLOT_FAN_ALPHA90);
    blend_rgb(c50, c90, fan.rgb, DFS_PLOT_FAN_ALPHA50);
    /* the column of x = 13 on the axis' -10..19 (away from the grid lines at multiples of 5) */
    find_axes(&im, &px0, &py0, &px1, &py1);
    const int xx = px0 + (int)lrint(23.0 / 29.0 * (px1 - px0));
    double sum = 0;
    column_run(&im, xx, 0, im.h, c90, 1, &t90, &b90);
    column_run(&im, xx, 0, im.h, c50, 1, &t50, &b50);
    for (int y = 0; y < im.h; y++)
        if (is_rgb(&im, xx, y, rgb, 10)) sum += y, nmed++;
    const double mid = 0.5 * (t90 + b90), h90 = b90 - t90 + 1, h50 = b50 - t50 + 1;
    CHECK(t90 > 0 && nmed > 0 && fabs(sum / nmed - mid) <= 1.5,
          "log axis: median at row %.2f, the 90%% band spans %d..%d", nmed ? sum / nmed : NAN, t90,
          b90);
    CHECK(t90 > 0 && fabs(h50 / h90 - 0.5) <= 0.04, "log axis: 50%% band %.0f rows, 90%% %.0f",
          h50, h90);
    free(im.p);
}

/* Two fans on shared axes (a feature's maximum and minimum): each band in its own colour, the
 * higher one above, and both named in the legend in their colours. */
static void test_fan_two_features(void) {
    enum { N = 12 };
    double x[N], q[2][5][N];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 2; k++)
            for (int m = 0; m < 5; m++) x[i] = i, q[k][m][i] = (k ? 10 : 30) + 2.5 * m;
    dfs_plot_fan fans[2] = {{x, N, q[0][0], q[0][1], q[0][2], q[0][3], q[0][4], NULL, NULL, NULL,
                             0, {214, 39, 40}, "max"},
                            {x, N, q[1][0], q[1][1], q[1][2], q[1][3], q[1][4], NULL, NULL, NULL,
                             0, {31, 119, 180}, "min"}};
    image im;
    CHECK(draw_fans(fans, 2, NULL, &im), "two fans");
    if (!im.p) return;
    CHECK(im.w == 800 && im.h == 450, "default size %d x %d, want 800 x 450", im.w, im.h);
    const int paper[3] = {255, 255, 255};
    int px0, py0, px1, py1, top[2], bot[2], n[2], key[2] = {0, 0};
    find_axes(&im, &px0, &py0, &px1, &py1);
    for (int k = 0; k < 2; k++) {
        int c90[3];
        const int rgb[3] = {fans[k].rgb[0], fans[k].rgb[1], fans[k].rgb[2]};
        blend_rgb(c90, paper, fans[k].rgb, DFS_PLOT_FAN_ALPHA90);
        n[k] = column_run(&im, (px0 + px1) / 2 + 3, py0, py1, c90, 1, &top[k], &bot[k]);
        for (int y = 0; y < im.h; y++)
            for (int xx = px1 + 8; xx < im.w; xx++) key[k] += is_rgb(&im, xx, y, rgb, 10);
    }
    CHECK(n[0] >= 10 && n[1] >= 10 && bot[0] < top[1],
          "90%% bands: max rows %d..%d (%d), min rows %d..%d (%d)", top[0], bot[0], n[0], top[1],
          bot[1], n[1]);
    CHECK(key[0] >= 20 && key[1] >= 20, "legend keys: %d and %d pixels", key[0], key[1]);
    free(im.p);
}

/* bad fans: each is DFS_ERR_ARG (DFS_ERR_IO for the font) with a message naming what is
 * wrong, and no file is written */
static void test_fan_errors(void) {
    enum { N = 10 };
    double x[N], lo90[N], lo50[N], med[N], hi50[N], hi90[N];
    for (int i = 0; i < N; i++)
        x[i] = i, lo90[i] = -2, lo50[i] = -1, med[i] = 0, hi50[i] = 1, hi90[i] = 2;
    const dfs_plot_fan good = {x, N, lo90, lo50, med, hi50, hi90, NULL, NULL, NULL, 0, {0, 0, 0},
                               "f"};
    dfs_plot_fan bad;
    unlink(fan_path);
#define FAN_FAILS(want, needle, what)                                                          \
    do {                                                                                      \
        dfs_status s_ = dfs_plot_fan_png(fan_path, &bad, 1, NULL);                            \
        CHECK(s_ == (want), "%s: status %d, want %d", what, (int)s_, (int)(want));            \
        CHECK(strstr(dfs_last_error(), needle) != NULL, "%s: error '%s' lacks '%s'", what,    \
              dfs_last_error(), needle);                                                      \
        CHECK(access(fan_path, F_OK) != 0, "%s: a file was written", what);                   \
    } while (0)
    bad = good, bad.n = 1;
    FAN_FAILS(DFS_ERR_ARG, "n >= 2", "a fan of one point");
    bad = good, bad.median = NULL;
    FAN_FAILS(DFS_ERR_ARG, "five bands", "no median");
    bad = good, bad.n_context = 3;
    FAN_FAILS(DFS_ERR_ARG, "context", "context points without arrays");
    double xs[N], b[N];
    memcpy(xs, x, sizeof xs), xs[4] = xs[3];
    bad = good, bad.x = xs;
    FAN_FAILS(DFS_ERR_ARG, "x[4]", "x not rising");
    memcpy(b, hi90, sizeof b), b[7] = NAN;
    bad = good, bad.hi90 = b;
    FAN_FAILS(DFS_ERR_ARG, "hi90[7]", "a NaN in the 90% band");
    memcpy(b, lo50, sizeof b), b[5] = 1.5; /* above the median and hi50 */
    bad = good, bad.lo50 = b;
    FAN_FAILS(DFS_ERR_ARG, "point 5 lo50", "lo50 above the median");
    memcpy(b, hi90, sizeof b), b[9] = 0.5; /* under hi50 */
    bad = good, bad.hi90 = b;
    FAN_FAILS(DFS_ERR_ARG, "point 9 hi50", "hi90 under hi50");
    bad = good;
    dfs_plot_config logc = {0}, small = {100, 100, NULL, NULL, NULL, 0, NULL}, nofont = {0};
    logc.log_y = 1;
    nofont.font = "/nonexistent/font.ttf";
    CHECK(dfs_plot_fan_png(fan_path, &bad, 1, &logc) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "positive") != NULL,
          "bands <= 0 on a log axis: %s", dfs_last_error());
    CHECK(dfs_plot_fan_png(fan_path, &bad, 1, &small) == DFS_ERR_ARG, "a 100 x 100 chart");
    CHECK(dfs_plot_fan_png(fan_path, &bad, 0, NULL) == DFS_ERR_ARG, "no fans");
    CHECK(dfs_plot_fan_png(fan_path, NULL, 1, NULL) == DFS_ERR_ARG, "fans NULL");
    CHECK(dfs_plot_fan_png(fan_path, &bad, 1, &nofont) == DFS_ERR_IO, "missing font");
    CHECK(access(fan_path, F_OK) != 0, "no file after the failures");
    /* and the good fan is drawn */
    CHECK(dfs_plot_fan_png(fan_path, &good, 1, NULL) == DFS_OK, "the good fan: %s",
          dfs_last_error());
    CHECK(access(fan_path, F_OK) == 0, "the good fan's file exists");
#undef FAN_FAILS
}

int main(void) {
    enum { N = 200 };
    double x[N], y[N];
    uint8_t *px = NULL;
    int w, h;
    double *row = malloc(8192 * sizeof(double));

    /* y = x rises: the mean row of the red pixels falls from left to right */
    for (int i = 0; i < N; i++) x[i] = i, y[i] = i;
    CHECK(draw(x, y, N, 0, "red", &px, &w, &h), "plot of y = x");
    if (px) {
        CHECK(w == 600 && h == 400, "size %d x %d", w, h);
        int cols = red_columns(px, w, h, row), first = -1, last = -1;
        for (int c = 0; c < w; c++)
            if (!isnan(row[c]) && c < w - 40) { /* the legend's sample line is top right */
                if (first < 0) first = c;
                last = c;
            }
        CHECK(cols > w / 2, "the line spans %d of %d columns", cols, w);
        CHECK(first >= 0 && row[first] > row[last] + h / 2, "rows %g at the left, %g at the right",
              first >= 0 ? row[first] : NAN, last >= 0 ? row[last] : NAN);
        free(px), px = NULL;
    }

    /* y = 10^x over three decades: straight on a log axis, bent on a linear one (no legend) */
    for (int i = 0; i < N; i++) x[i] = 3.0 * i / (N - 1), y[i] = pow(10.0, x[i]);
    double straight = 1e9, bent = 0;
    if (draw(x, y, N, 1, NULL, &px, &w, &h)) {
        red_columns(px, w, h, row);
        straight = line_residual(row, w);
        free(px), px = NULL;
    }
    if (draw(x, y, N, 0, NULL, &px, &w, &h)) {
        red_columns(px, w, h, row);
        bent = line_residual(row, w);
        free(px), px = NULL;
    }
    /* Pixel quantisation, not floating point: a column's red pixels are a run whose two ends
     * lie on pixel rows, so its mean row is within 0.5 of the line's centre there; a least-
     * squares line through points each within 0.5 of a straight line departs from it by at most
     * twice that at the ends (the leverage of the end columns of an evenly spaced fit is <= 2),
     * so a straight chart leaves residuals <= 0.5 + 1.0 = 1.5 rows (measured 0.56). 10^x on a
     * linear axis bends by about half the ~290-row plot area (measured 148): 30 rows lies far
     * from both. */
    CHECK(straight <= 1.5, "10^x on a log axis is %.2f rows off a straight line", straight);
    CHECK(bent > 30.0, "10^x on a linear axis is only %.2f rows off a straight line", bent);

    /* a NaN in the middle breaks the line: a run of empty columns around it */
    for (int i = 0; i < N; i++) x[i] = i, y[i] = (i >= 95 && i <= 105) ? NAN : 1.0 + 0.001 * i;
    if (draw(x, y, N, 0, NULL, &px, &w, &h)) {
        red_columns(px, w, h, row);
        int gap = 0, run = 0;
        for (int c = 0; c < w; c++) {
            run = isnan(row[c]) ? run + 1 : 0;
            if (run > gap && c > w / 4) gap = run;
        }
        CHECK(gap >= 10, "longest gap in the middle is %d columns", gap);
        free(px), px = NULL;
    } else CHECK(0, "plot with a NaN gap");

    /* bad input: nothing to draw, nothing positive on a log axis, a missing font */
    unlink(path);
    double nan_y[3] = {NAN, NAN, NAN}, neg[3] = {-1, 0, -2}, xs[3] = {0, 1, 2};
    dfs_plot_series s = {xs, nan_y, 3, {0, 0, 0}, 0, 0, NULL};
    CHECK(dfs_plot_png(path, &s, 1, NULL) == DFS_ERR_ARG, "all-NaN series");
    CHECK(strstr(dfs_last_error(), "no finite") != NULL, "error: %s", dfs_last_error());
    dfs_plot_config logc = {0};
    logc.log_y = 1;
    s.y = neg;
    CHECK(dfs_plot_png(path, &s, 1, &logc) == DFS_ERR_ARG, "log axis without positive values");
    CHECK(dfs_plot_png(path, &s, 0, NULL) == DFS_ERR_ARG, "no series");
    dfs_plot_config badfont = {0};
    badfont.font = "/nonexistent/font.ttf";
    s.y = xs;
    CHECK(dfs_plot_png(path, &s, 1, &badfont) == DFS_ERR_IO, "missing font");
    CHECK(access(path, F_OK) != 0, "no file after the failures");

    free(row);
    test_fan_geometry();
    test_fan_log_axis();
    test_fan_two_features();
    test_fan_errors();
    return check_summary("test_plot");
}
