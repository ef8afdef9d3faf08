/* test_plot.c - line charts (src/render/plot.c) read back as pixels: a rising line rises, y = 10^x is
 * straight on a log axis and bent on a linear one, a NaN leaves a gap, and bad input (nothing
 * finite, nothing positive on a log axis, a missing font) is an error with no file written. */
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
    return check_summary("test_plot");
}
