/* plot.c - line charts as PNG: the loss curve of a training run, drawn without a plotting
 * stack. Axes get "nice" ticks (1, 2 or 5 times a power of ten; decades on a log axis) with
 * light grid lines, each series is an antialiased polyline, and titles, tick labels and the
 * legend are set in DejaVu Sans through dfs_text_render (FreeType).
 *
 * Lines are drawn by coverage: a pixel near a segment takes the colour with opacity
 * clamp(width/2 + 1/2 - d, 0, 1), d the distance from the pixel centre to the segment. That
 * is exact enough for charts and needs no special cases for steep or short segments. */
#include "diffuse/render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *px; /* RGB, row-major */
    int w, h;
    int x0, y0, x1, y1; /* clip rectangle, inclusive-exclusive */
} canvas;

static void blend(canvas *c, int x, int y, const uint8_t rgb[3], float a) {
    if (x < c->x0 || x >= c->x1 || y < c->y0 || y >= c->y1 || a <= 0.0f) return;
    if (a > 1.0f) a = 1.0f;
    uint8_t *p = c->px + ((size_t)y * c->w + x) * 3;
    for (int k = 0; k < 3; k++) p[k] = (uint8_t)lrintf(p[k] + a * ((float)rgb[k] - p[k]));
}

static void fill_rect(canvas *c, int x, int y, int w, int h, const uint8_t rgb[3]) {
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++) blend(c, i, j, rgb, 1.0f);
}

/* segment (ax, ay)-(bx, by) of the given width, antialiased */
static void draw_segment(canvas *c, double ax, double ay, double bx, double by, double width,
                         const uint8_t rgb[3], float alpha) {
    const double r = width * 0.5 + 1.0;
    int xmin = (int)floor(fmin(ax, bx) - r), xmax = (int)ceil(fmax(ax, bx) + r);
    int ymin = (int)floor(fmin(ay, by) - r), ymax = (int)ceil(fmax(ay, by) + r);
    if (xmin < c->x0) xmin = c->x0;
    if (ymin < c->y0) ymin = c->y0;
    if (xmax >= c->x1) xmax = c->x1 - 1;
    if (ymax >= c->y1) ymax = c->y1 - 1;
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = ymin; y <= ymax; y++)
        for (int x = xmin; x <= xmax; x++) {
            double px = x + 0.5 - ax, py = y + 0.5 - ay;
            double t = len2 > 0 ? (px * dx + py * dy) / len2 : 0.0;
            if (t < 0) t = 0;
            if (t > 1) t = 1;
            double ex = px - t * dx, ey = py - t * dy;
            double cov = width * 0.5 + 0.5 - sqrt(ex * ex + ey * ey);
            if (cov > 0) {
                /* where two segments of one polyline meet, the joint is covered twice; taking
                 * the larger opacity instead of compounding needs a coverage buffer, and the
                 * darker dot at a joint is invisible at these widths */
                blend(c, x, y, rgb, (float)(cov > 1 ? 1 : cov) * alpha);
            }
        }
}

/* text with its top-left corner at (x, y); rotate != 0 turns it 90 degrees anticlockwise
 * (reading bottom to top), with (x, y) still its top-left corner */
static dfs_status draw_text(canvas *c, const char *font, const char *text, int px, int x, int y,
                            int rotate, const uint8_t rgb[3], int *tw, int *th) {
    uint8_t *cov;
    int w, h;
    dfs_status s = dfs_text_render(font, text, px, &cov, &w, &h);
    if (s != DFS_OK) return s;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) {
            float a = cov[(size_t)j * w + i] / 255.0f;
            if (rotate) blend(c, x + j, y + (w - 1 - i), rgb, a);
            else blend(c, x + i, y + j, rgb, a);
        }
    free(cov);
    if (tw) *tw = rotate ? h : w;
    if (th) *th = rotate ? w : h;
    return DFS_OK;
}

static dfs_status text_size(const char *font, const char *text, int px, int *w, int *h) {
    uint8_t *cov;
    dfs_status s = dfs_text_render(font, text, px, &cov, w, h);
    free(cov);
    return s;
}

/* largest 1, 2 or 5 x 10^k not above x */
static double nice_step(double x) {
    double p = pow(10.0, floor(log10(x)));
    double m = x / p;
    return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * p;
}

/* tick label: whole numbers as integers (10000 and up in thousands, "150k"), fractions with
 * as many decimals as the tick step needs, tiny or huge values in %g form; no "-0" */
static void tick_label(char *buf, size_t n, double v, double step) {
    if (step <= 0) step = fabs(v) > 0 ? fabs(v) : 1; /* log axis: each label on its own */
    if (fabs(v) < step * 1e-9) v = 0.0;
    const double a = fabs(v);
    if (a >= 1e9 || (a > 0 && a < 1e-4)) snprintf(buf, n, "%g", v);
    else if (step >= 1000 && a >= 10000 && fmod(a, 1000) == 0) snprintf(buf, n, "%.0fk", v / 1000);
    else if (step >= 1 && fmod(a, 1) == 0) snprintf(buf, n, "%.0f", v);
    else {
        int dec = (int)ceil(-log10(step) - 1e-9);
        if (dec < 0) dec = 0;
        if (dec > 10) dec = 10;
        snprintf(buf, n, "%.*f", dec, v);
    }
}

#define MAX_TICKS 64

/* positions of the ticks of [lo, hi]; on a log axis lo and hi are log10 values and the ticks
 * are decades, with 2 and 5 between them when the axis spans under three decades */
static int make_ticks(double lo, double hi, int log_axis, double *t, double *step) {
    int n = 0;
    if (!log_axis) {
        double s = nice_step((hi - lo) / 5.0);
        for (double v = ceil(lo / s - 1e-9) * s; v <= hi + s * 1e-9 && n < MAX_TICKS; v += s) t[n++] = v;
        *step = s;
        return n;
    }
    const int few = hi - lo < 3.0;
    for (int d = (int)floor(lo); d <= (int)ceil(hi) && n < MAX_TICKS - 3; d++) {
        const double mult[3] = {1, 2, 5};
        for (int k = 0; k < (few ? 3 : 1); k++) {
            double v = d + log10(mult[k]);
            if (v >= lo - 1e-9 && v <= hi + 1e-9) t[n++] = v;
        }
    }
    *step = 0;
    return n;
}

dfs_status dfs_plot_png(const char *path, const dfs_plot_series *series, int ns,
                        const dfs_plot_config *cfg) {
    dfs_plot_config def = {0};
    if (!cfg) cfg = &def;
    const int W = cfg->width > 0 ? cfg->width : 800, H = cfg->height > 0 ? cfg->height : 450;
    const char *font = cfg->font ? cfg->font : DFS_DEFAULT_FONT;
    if (!path || !series || ns <= 0 || W < 200 || H < 150 || W > 8192 || H > 8192) {
        dfs_set_error("plot: bad arguments (%d series, %d x %d)", ns, W, H);
        return DFS_ERR_ARG;
    }
    /* data range over the finite points (positive ones on a log axis) */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    long points = 0;
    for (int s = 0; s < ns; s++) {
        if (series[s].n < 0 || (series[s].n > 0 && (!series[s].x || !series[s].y))) {
            dfs_set_error("plot: series %d has no data arrays", s);
            return DFS_ERR_ARG;
        }
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (cfg->log_y && y <= 0)) continue;
            if (cfg->log_y) y = log10(y);
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
            points++;
        }
    }
    if (points == 0) {
        dfs_set_error("plot: %s: no finite%s points to draw", path, cfg->log_y ? " positive" : "");
        return DFS_ERR_ARG;
    }
    if (!isfinite(xhi - xlo) || !isfinite(yhi - ylo) || fabs(ylo) > 1e300 || fabs(yhi) > 1e300) {
        dfs_set_error("plot: %s: the values span more than a chart can scale (%g .. %g by %g .. %g)",
                      path, xlo, xhi, ylo, yhi);
        return DFS_ERR_ARG;
    }
    if (xhi == xlo) xlo -= 0.5, xhi += 0.5;
    if (yhi == ylo) {
        double d = cfg->log_y ? 0.5 : (fabs(ylo) > 0 ? fabs(ylo) * 0.1 : 0.5);
        ylo -= d, yhi += d;
    }
    double pad = (yhi - ylo) * 0.04;
    ylo -= pad, yhi += pad;

    const int fs = H >= 300 ? 14 : 11; /* font size of tick labels; titles are 1.2x */
    const uint8_t black[3] = {0, 0, 0}, grid[3] = {225, 225, 225}, axis[3] = {90, 90, 90};
    double xt[MAX_TICKS], yt[MAX_TICKS], xs, ys;
    int nx = make_ticks(xlo, xhi, 0, xt, &xs), ny = make_ticks(ylo, yhi, cfg->log_y, yt, &ys);

    /* margins from the widest y tick label */
    char lab[64];
    int lw, lh, ymax_w = 0;
    dfs_status st = DFS_OK;
    for (int i = 0; i < ny && !st; i++) {
        tick_label(lab, sizeof lab, cfg->log_y ? pow(10.0, yt[i]) : yt[i], ys);
        st = text_size(font, lab, fs, &lw, &lh);
        if (lw > ymax_w) ymax_w = lw;
    }
    if (st) return st;
    const int tfs = fs * 6 / 5;
    const int left = ymax_w + 14 + (cfg->ylabel ? tfs + 12 : 0), right = 24;
    const int top = cfg->title ? tfs * 2 + 12 : 16, bottom = fs + 18 + (cfg->xlabel ? tfs + 12 : 0);
    const int px0 = left, py0 = top, px1 = W - right, py1 = H - bottom;
    if (px1 - px0 < 50 || py1 - py0 < 50) {
        dfs_set_error("plot: %d x %d leaves no room for the plot area", W, H);
        return DFS_ERR_ARG;
    }
    uint8_t *img = malloc((size_t)W * H * 3);
    if (!img) {
        dfs_set_error("plot: out of memory");
        return DFS_ERR_NOMEM;
    }
    memset(img, 255, (size_t)W * H * 3);
    canvas c = {img, W, H, 0, 0, W, H};
#define MAPX(v) (px0 + ((v) - xlo) / (xhi - xlo) * (px1 - px0))
#define MAPY(v) (py1 - ((v) - ylo) / (yhi - ylo) * (py1 - py0))

    /* grid and ticks */
    for (int i = 0; i < nx && !st; i++) {
        int x = (int)lrint(MAPX(xt[i]));
        fill_rect(&c, x, py0, 1, py1 - py0, grid);
        fill_rect(&c, x, py1, 1, 5, axis);
        tick_label(lab, sizeof lab, xt[i], xs);
        if (!(st = text_size(font, lab, fs, &lw, &lh))) st = draw_text(&c, font, lab, fs, x - lw / 2, py1 + 7, 0, black, NULL, NULL);
    }
    for (int i = 0; i < ny && !st; i++) {
        int y = (int)lrint(MAPY(yt[i]));
        fill_rect(&c, px0, y, px1 - px0, 1, grid);
        fill_rect(&c, px0 - 5, y, 5, 1, axis);
        tick_label(lab, sizeof lab, cfg->log_y ? pow(10.0, yt[i]) : yt[i], ys);
        if (!(st = text_size(font, lab, fs, &lw, &lh))) st = draw_text(&c, font, lab, fs, px0 - 8 - lw, y - lh / 2, 0, black, NULL, NULL);
    }
    fill_rect(&c, px0, py0, 1, py1 - py0 + 1, axis);
    fill_rect(&c, px0, py1, px1 - px0, 1, axis);

    /* titles */
    if (!st && cfg->title) {
        if (!(st = text_size(font, cfg->title, tfs, &lw, &lh))) st = draw_text(&c, font, cfg->title, tfs, (px0 + px1 - lw) / 2, 8, 0, black, NULL, NULL);
    }
    if (!st && cfg->xlabel) {
        if (!(st = text_size(font, cfg->xlabel, tfs, &lw, &lh))) st = draw_text(&c, font, cfg->xlabel, tfs, (px0 + px1 - lw) / 2, H - lh - 6, 0, black, NULL, NULL);
    }
    if (!st && cfg->ylabel) {
        if (!(st = text_size(font, cfg->ylabel, tfs, &lw, &lh))) st = draw_text(&c, font, cfg->ylabel, tfs, 6, (py0 + py1 - lw) / 2, 1, black, NULL, NULL);
    }

    /* the series, clipped to the plot area; a non-finite point breaks the line */
    c.x0 = px0 + 1, c.y0 = py0, c.x1 = px1 + 1, c.y1 = py1;
    for (int s = 0; s < ns && !st; s++) {
        const dfs_plot_series *S = &series[s];
        double width = S->width > 0 ? S->width : 1.5;
        float alpha = S->alpha > 0 ? S->alpha : 1.0f;
        int have = 0;
        double lx = 0, ly = 0;
        for (int i = 0; i < S->n; i++) {
            double x = S->x[i], y = S->y[i];
            if (!isfinite(x) || !isfinite(y) || (cfg->log_y && y <= 0)) {
                have = 0;
                continue;
            }
            double X = MAPX(x), Y = MAPY(cfg->log_y ? log10(y) : y);
            if (have) draw_segment(&c, lx, ly, X, Y, width, S->rgb, alpha);
            else if (S->n == 1) draw_segment(&c, X, Y, X, Y, width + 2, S->rgb, alpha);
            lx = X, ly = Y, have = 1;
        }
    }
    c.x0 = 0, c.y0 = 0, c.x1 = W, c.y1 = H;

    /* legend, top right inside the plot area */
    int ly = py0 + 8;
    for (int s = 0; s < ns && !st; s++) {
        if (!series[s].label || !*series[s].label) continue;
        if ((st = text_size(font, series[s].label, fs, &lw, &lh))) break;
        int x = px1 - 10 - lw;
        fill_rect(&c, x - 34, ly - 2, lw + 40, lh + 4, (const uint8_t[3]){255, 255, 255});
        draw_segment(&c, x - 30, ly + lh / 2.0, x - 8, ly + lh / 2.0, 2.5, series[s].rgb, 1.0f);
        st = draw_text(&c, font, series[s].label, fs, x, ly, 0, black, NULL, NULL);
        ly += lh + 4;
    }
#undef MAPX
#undef MAPY
    if (!st) st = dfs_png_write(path, img, 3, H, W);
    free(img);
    return st;
}
