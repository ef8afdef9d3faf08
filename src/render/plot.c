/* plot.c - charts as PNG, drawn without a plotting stack: line charts (the loss curve of a
 * training run) and fan charts (probabilistic forecasts: quantile bands, median, context and
 * truth). Both share one frame: axes with "nice" ticks (1, 2 or 5 times a power of ten;
 * decades on a log axis) and light grid lines, titles, and a legend, all text set in DejaVu
 * Sans through dfs_text_render (FreeType).
 *
 * Lines are drawn by coverage: a pixel near a segment takes the colour with opacity
 * clamp(width/2 + 1/2 - d, 0, 1), d the distance from the pixel centre to the segment. That
 * is exact enough for charts and needs no special cases for steep or short segments. A band
 * between two polylines over the same x is filled column by column (fill_band): each pixel
 * column takes the rows between the two lines at its centre, the partly covered end rows in
 * proportion, blended at the band's opacity. */
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

/* ---- the frame every chart shares: data range, plot area, ticks, titles, legend ---- */

static const uint8_t black[3] = {0, 0, 0}, white[3] = {255, 255, 255};
static const uint8_t grid_rgb[3] = {225, 225, 225}, axis_rgb[3] = {90, 90, 90};

typedef struct {
    const dfs_plot_config *cfg;
    const char *font;
    int W, H, log_y;
    int fs, tfs;               /* font sizes of tick labels and of titles */
    double xlo, xhi, ylo, yhi; /* data range (log10 of y on a log axis), then padded */
    long points;               /* finite points seen by frame_add */
    int px0, py0, px1, py1;    /* plot area in pixels */
    double xt[MAX_TICKS], yt[MAX_TICKS], xs, ys; /* ticks and their steps */
    int nx, ny;
} frame;

/* the defaults of cfg (NULL for all of them) and the size check */
static dfs_status frame_init(frame *f, const dfs_plot_config *cfg) {
    static const dfs_plot_config def = {0};
    if (!cfg) cfg = &def;
    *f = (frame){.cfg = cfg, .log_y = cfg->log_y};
    f->W = cfg->width > 0 ? cfg->width : 800, f->H = cfg->height > 0 ? cfg->height : 450;
    f->font = cfg->font ? cfg->font : DFS_DEFAULT_FONT;
    f->fs = f->H >= 300 ? 14 : 11; /* tick labels and legend; titles are 1.2x */
    f->tfs = f->fs * 6 / 5;
    f->xlo = f->ylo = INFINITY, f->xhi = f->yhi = -INFINITY;
    if (f->W < 200 || f->H < 150 || f->W > 8192 || f->H > 8192) {
        dfs_set_error("plot: size %d x %d is outside 200..8192 x 150..8192", f->W, f->H);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

/* whether (x, y) can be drawn: finite, and y > 0 on a log axis */
static int plottable(const frame *f, double x, double y) {
    return isfinite(x) && isfinite(y) && !(f->log_y && y <= 0);
}

/* widen the data range to (x, y) if it can be drawn */
static void frame_add(frame *f, double x, double y) {
    if (!plottable(f, x, y)) return;
    if (f->log_y) y = log10(y);
    f->xlo = fmin(f->xlo, x), f->xhi = fmax(f->xhi, x);
    f->ylo = fmin(f->ylo, y), f->yhi = fmax(f->yhi, y);
    f->points++;
}

static double map_x(const frame *f, double x) {
    return f->px0 + (x - f->xlo) / (f->xhi - f->xlo) * (f->px1 - f->px0);
}
static double map_y(const frame *f, double y) {
    if (f->log_y) y = log10(y);
    return f->py1 - (y - f->ylo) / (f->yhi - f->ylo) * (f->py1 - f->py0);
}

/* pad the data range, choose the ticks and lay out the margins around the plot area, with
 * legend_w pixels kept free right of it */
static dfs_status frame_layout(frame *f, const char *path, int legend_w) {
    const dfs_plot_config *cfg = f->cfg;
    if (f->points == 0) {
        dfs_set_error("plot: %s: no finite%s points to draw", path, f->log_y ? " positive" : "");
        return DFS_ERR_ARG;
    }
    if (!isfinite(f->xhi - f->xlo) || !isfinite(f->yhi - f->ylo) || fabs(f->ylo) > 1e300 ||
        fabs(f->yhi) > 1e300) {
        dfs_set_error("plot: %s: the values span more than a chart can scale "
                      "(%g .. %g by %g .. %g)",
                      path, f->xlo, f->xhi, f->ylo, f->yhi);
        return DFS_ERR_ARG;
    }
    if (f->xhi == f->xlo) f->xlo -= 0.5, f->xhi += 0.5;
    if (f->yhi == f->ylo) {
        double d = f->log_y ? 0.5 : (fabs(f->ylo) > 0 ? fabs(f->ylo) * 0.1 : 0.5);
        f->ylo -= d, f->yhi += d;
    }
    double pad = (f->yhi - f->ylo) * 0.04;
    f->ylo -= pad, f->yhi += pad;

    f->nx = make_ticks(f->xlo, f->xhi, 0, f->xt, &f->xs);
    f->ny = make_ticks(f->ylo, f->yhi, f->log_y, f->yt, &f->ys);

    /* margins from the widest y tick label */
    char lab[64];
    int lw, lh, ymax_w = 0;
    for (int i = 0; i < f->ny; i++) {
        tick_label(lab, sizeof lab, f->log_y ? pow(10.0, f->yt[i]) : f->yt[i], f->ys);
        dfs_status st = text_size(f->font, lab, f->fs, &lw, &lh);
        if (st) return st;
        if (lw > ymax_w) ymax_w = lw;
    }
    const int tfs = f->tfs;
    f->px0 = ymax_w + 14 + (cfg->ylabel ? tfs + 12 : 0);
    f->py0 = cfg->title ? tfs * 2 + 12 : 16;
    f->px1 = f->W - 24 - legend_w;
    f->py1 = f->H - (f->fs + 18 + (cfg->xlabel ? tfs + 12 : 0));
    if (f->px1 - f->px0 < 50 || f->py1 - f->py0 < 50) {
        dfs_set_error("plot: %d x %d leaves no room for the plot area", f->W, f->H);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

/* text centred on x (centre_x) or at x, with its top at y */
static dfs_status put_text(canvas *c, const frame *f, const char *text, int px, int x, int y,
                           int centre_x, int rotate) {
    int lw, lh;
    dfs_status st = text_size(f->font, text, px, &lw, &lh);
    if (st) return st;
    return draw_text(c, f->font, text, px, centre_x ? x - lw / 2 : x, y, rotate, black, NULL, NULL);
}

/* grid lines, ticks and their labels, the axes and the titles */
static dfs_status frame_draw(canvas *c, const frame *f) {
    const dfs_plot_config *cfg = f->cfg;
    const int px0 = f->px0, py0 = f->py0, px1 = f->px1, py1 = f->py1, fs = f->fs;
    char lab[64];
    int lw, lh;
    dfs_status st = DFS_OK;
    for (int i = 0; i < f->nx && !st; i++) {
        int x = (int)lrint(map_x(f, f->xt[i]));
        fill_rect(c, x, py0, 1, py1 - py0, grid_rgb);
        fill_rect(c, x, py1, 1, 5, axis_rgb);
        tick_label(lab, sizeof lab, f->xt[i], f->xs);
        st = put_text(c, f, lab, fs, x, py1 + 7, 1, 0);
    }
    for (int i = 0; i < f->ny && !st; i++) {
        const double v = f->log_y ? pow(10.0, f->yt[i]) : f->yt[i];
        int y = (int)lrint(map_y(f, v));
        fill_rect(c, px0, y, px1 - px0, 1, grid_rgb);
        fill_rect(c, px0 - 5, y, 5, 1, axis_rgb);
        tick_label(lab, sizeof lab, v, f->ys);
        if (!(st = text_size(f->font, lab, fs, &lw, &lh)))
            st = draw_text(c, f->font, lab, fs, px0 - 8 - lw, y - lh / 2, 0, black, NULL, NULL);
    }
    fill_rect(c, px0, py0, 1, py1 - py0 + 1, axis_rgb);
    fill_rect(c, px0, py1, px1 - px0, 1, axis_rgb);
    if (!st && cfg->title) st = put_text(c, f, cfg->title, f->tfs, (px0 + px1) / 2, 8, 1, 0);
    if (!st && cfg->xlabel) {
        if (!(st = text_size(f->font, cfg->xlabel, f->tfs, &lw, &lh)))
            st = put_text(c, f, cfg->xlabel, f->tfs, (px0 + px1) / 2, f->H - lh - 6, 1, 0);
    }
    if (!st && cfg->ylabel) {
        if (!(st = text_size(f->font, cfg->ylabel, f->tfs, &lw, &lh)))
            st = draw_text(c, f->font, cfg->ylabel, f->tfs, 6, (py0 + py1 - lw) / 2, 1, black, NULL,
                           NULL);
    }
    return st;
}

/* data is drawn clipped to the plot area; everything else on the whole canvas */
static void clip_to_plot(canvas *c, const frame *f) {
    c->x0 = f->px0 + 1, c->y0 = f->py0, c->x1 = f->px1 + 1, c->y1 = f->py1;
}
static void clip_none(canvas *c) { c->x0 = 0, c->y0 = 0, c->x1 = c->w, c->y1 = c->h; }

/* segment (ax, ay)-(bx, by) in dashes: on pixels drawn, off pixels skipped, measured along the
 * line from *phase (the pattern position where the previous segment of a polyline stopped),
 * which it advances; on <= 0 draws it solid */
static void dash_segment(canvas *c, double ax, double ay, double bx, double by, double width,
                         const uint8_t rgb[3], float alpha, double on, double off, double *phase) {
    const double len = hypot(bx - ax, by - ay), period = on + off;
    if (on <= 0 || len == 0) {
        draw_segment(c, ax, ay, bx, by, width, rgb, alpha);
        return;
    }
    const double ux = (bx - ax) / len, uy = (by - ay) / len;
    for (double s = 0; s < len;) {
        const double q = fmod(*phase + s, period);
        double e = fmin(len, s + (q < on ? on - q : period - q));
        if (e <= s) e = fmin(len, s + 1e-3); /* rounding at a dash boundary */
        if (q < on)
            draw_segment(c, ax + ux * s, ay + uy * s, ax + ux * e, ay + uy * e, width, rgb, alpha);
        s = e;
    }
    *phase = fmod(*phase + len, period);
}

enum { DASH_ON = 4, DASH_OFF = 3 }; /* the truth's dashes, in pixels */
static const double TRUTH_DOT = 3.5;  /* diameter of the dots on the truth, in pixels */

/* the polyline through the n points (x, y), broken where a point cannot be drawn; a point with
 * no drawable neighbour becomes a dot. dashed: in DASH_ON / DASH_OFF dashes. */
static void plot_line(canvas *c, const frame *f, const double *x, const double *y, int n,
                      double width, const uint8_t rgb[3], float alpha, int dashed) {
    double lx = 0, ly = 0, phase = 0;
    int have = 0;
    for (int i = 0; i < n; i++) {
        if (!plottable(f, x[i], y[i])) {
            have = 0;
            continue;
        }
        const double X = map_x(f, x[i]), Y = map_y(f, y[i]);
        if (have)
            dash_segment(c, lx, ly, X, Y, width, rgb, alpha, dashed ? DASH_ON : 0, DASH_OFF,
                         &phase);
        else if (i + 1 == n || !plottable(f, x[i + 1], y[i + 1]))
            draw_segment(c, X, Y, X, Y, width + 2, rgb, alpha);
        else phase = 0;
        lx = X, ly = Y, have = 1;
    }
}

/* what a legend row shows left of its label */
typedef enum { KEY_LINE, KEY_DASH, KEY_DASH_DOT, KEY_BAND } key_kind;
typedef struct {
    const char *label;
    key_kind kind;
    uint8_t rgb[3];
    float fill[2]; /* KEY_BAND: opacities blended in turn, as the chart blends its bands */
} legend_key;

enum { KEY_W = 22, KEY_GAP = 8 }; /* a key's width, and the space from it to the label */

static legend_key make_key(const char *label, key_kind kind, const uint8_t rgb[3], float fill0,
                           float fill1) {
    return (legend_key){label, kind, {rgb[0], rgb[1], rgb[2]}, {fill0, fill1}};
}

/* one legend row with its top at *y, which it moves down: inside the plot area right-aligned at
 * its right edge on a white box, or outside left-aligned in the margin right of it */
static dfs_status legend_row(canvas *c, const frame *f, const legend_key *k, int outside, int *y) {
    int lw, lh;
    dfs_status st = text_size(f->font, k->label, f->fs, &lw, &lh);
    if (st) return st;
    const int x = outside ? f->px1 + 16 + KEY_W + KEY_GAP : f->px1 - 10 - lw;
    const int kx = x - KEY_GAP - KEY_W;
    const double ym = *y + lh / 2.0;
    if (!outside) fill_rect(c, kx - 4, *y - 2, lw + KEY_W + KEY_GAP + 10, lh + 4, white);
    double phase = 0;
    switch (k->kind) {
    case KEY_LINE: draw_segment(c, kx, ym, kx + KEY_W, ym, 2.5, k->rgb, 1.0f); break;
    case KEY_DASH:
    case KEY_DASH_DOT:
        dash_segment(c, kx, ym, kx + KEY_W, ym, 1.4, k->rgb, 1.0f, DASH_ON, DASH_OFF, &phase);
        if (k->kind == KEY_DASH_DOT)
            draw_segment(c, kx + KEY_W / 2, ym, kx + KEY_W / 2, ym, TRUTH_DOT, k->rgb, 1.0f);
        break;
    case KEY_BAND:
        for (int j = 0; j < 2; j++)
            for (int yy = *y + 1; yy < *y + lh - 1; yy++)
                for (int xx = kx; xx < kx + KEY_W; xx++) blend(c, xx, yy, k->rgb, k->fill[j]);
        break;
    }
    st = draw_text(c, f->font, k->label, f->fs, x, *y, 0, black, NULL, NULL);
    *y += lh + 4;
    return st;
}

/* the width a legend outside the plot area needs for the n labels (NULL or "" skipped) */
static dfs_status legend_width(const frame *f, const char *const *labels, int n, int *w) {
    int lw, lh;
    *w = 0;
    for (int i = 0; i < n; i++) {
        if (!labels[i] || !*labels[i]) continue;
        dfs_status st = text_size(f->font, labels[i], f->fs, &lw, &lh);
        if (st) return st;
        if (16 + KEY_W + KEY_GAP + lw > *w) *w = 16 + KEY_W + KEY_GAP + lw;
    }
    return DFS_OK;
}

/* a white RGB canvas of the frame's size */
static dfs_status canvas_new(canvas *c, const frame *f) {
    uint8_t *img = malloc((size_t)f->W * f->H * 3);
    if (!img) {
        dfs_set_error("plot: out of memory");
        return DFS_ERR_NOMEM;
    }
    memset(img, 255, (size_t)f->W * f->H * 3);
    *c = (canvas){img, f->W, f->H, 0, 0, f->W, f->H};
    return DFS_OK;
}

/* write the canvas (if st is DFS_OK) and free it */
static dfs_status canvas_finish(canvas *c, const char *path, dfs_status st) {
    if (!st) st = dfs_png_write(path, c->px, 3, c->h, c->w);
    free(c->px);
    c->px = NULL;
    return st;
}

dfs_status dfs_plot_png(const char *path, const dfs_plot_series *series, int ns,
                        const dfs_plot_config *cfg) {
    frame f;
    dfs_status st = frame_init(&f, cfg);
    if (st) return st;
    if (!path || !series || ns <= 0) {
        dfs_set_error("plot: bad arguments (%d series)", ns);
        return DFS_ERR_ARG;
    }
    for (int s = 0; s < ns; s++) {
        if (series[s].n < 0 || (series[s].n > 0 && (!series[s].x || !series[s].y))) {
            dfs_set_error("plot: series %d has no data arrays", s);
            return DFS_ERR_ARG;
        }
        for (int i = 0; i < series[s].n; i++) frame_add(&f, series[s].x[i], series[s].y[i]);
    }
    canvas c;
    if ((st = frame_layout(&f, path, 0)) || (st = canvas_new(&c, &f))) return st;
    st = frame_draw(&c, &f);

    /* the series, clipped to the plot area; a non-finite point breaks the line */
    clip_to_plot(&c, &f);
    for (int s = 0; s < ns && !st; s++) {
        const dfs_plot_series *S = &series[s];
        plot_line(&c, &f, S->x, S->y, S->n, S->width > 0 ? S->width : 1.5, S->rgb,
                  S->alpha > 0 ? S->alpha : 1.0f, 0);
    }
    clip_none(&c);

    /* legend, top right inside the plot area */
    int ly = f.py0 + 8;
    for (int s = 0; s < ns && !st; s++) {
        if (!series[s].label || !*series[s].label) continue;
        const legend_key k = make_key(series[s].label, KEY_LINE, series[s].rgb, 0, 0);
        st = legend_row(&c, &f, &k, 0, &ly);
    }
    return canvas_finish(&c, path, st);
}

/* ---- fan charts ---- */

/* opacities of the 90% band and of the 50% band blended over it (render.h) */
static const float FAN_A90 = DFS_PLOT_FAN_ALPHA90, FAN_A50 = DFS_PLOT_FAN_ALPHA50;

/* the band between the polylines lo and hi over the n rising x, blended column by column: a
 * pixel column whose centre lies in the x range gets the rows between the two lines, linearly
 * interpolated at its centre; the two end rows take the fraction of them the band covers */
static void fill_band(canvas *c, const frame *f, const double *x, const double *lo,
                      const double *hi, int n, const uint8_t rgb[3], float alpha) {
    const double X0 = map_x(f, x[0]), Xn = map_x(f, x[n - 1]);
    int i = 0;
    for (int col = (int)ceil(X0 - 0.5); col + 0.5 <= Xn; col++) {
        const double cx = col + 0.5;
        while (i < n - 2 && map_x(f, x[i + 1]) < cx) i++;
        const double xa = map_x(f, x[i]), xb = map_x(f, x[i + 1]);
        const double t = fmin(1, fmax(0, (cx - xa) / (xb - xa)));
        const double ya = map_y(f, hi[i]), yb = map_y(f, hi[i + 1]);
        const double za = map_y(f, lo[i]), zb = map_y(f, lo[i + 1]);
        const double top = ya + t * (yb - ya), bot = za + t * (zb - za); /* top <= bot */
        for (int row = (int)floor(top); row < bot; row++) {
            const double cov = fmin(row + 1, bot) - fmax(row, top);
            blend(c, col, row, rgb, alpha * (float)cov);
        }
    }
}

/* fan k's arrays present and its values drawable and in order; the error names fan and point */
static dfs_status fan_check(const dfs_plot_fan *F, int k, int log_y) {
    const char *name = F->label && *F->label ? F->label : "unlabelled";
    const double *q[5] = {F->lo90, F->lo50, F->median, F->hi50, F->hi90};
    static const char *qn[5] = {"lo90", "lo50", "median", "hi50", "hi90"};
    if (F->n < 2 || !F->x || !q[0] || !q[1] || !q[2] || !q[3] || !q[4]) {
        dfs_set_error("plot: fan %d (%s): needs x and the five bands over n >= 2 points (n = %d)",
                      k, name, F->n);
        return DFS_ERR_ARG;
    }
    if (F->n_context < 0 || (F->n_context > 0 && (!F->context_x || !F->context_y))) {
        dfs_set_error("plot: fan %d (%s): %d context points without their arrays", k, name,
                      F->n_context);
        return DFS_ERR_ARG;
    }
    for (int i = 0; i < F->n; i++) {
        if (!isfinite(F->x[i]) || (i > 0 && !(F->x[i] > F->x[i - 1]))) {
            dfs_set_error("plot: fan %d (%s): x[%d] = %g is not finite and above the one before",
                          k, name, i, F->x[i]);
            return DFS_ERR_ARG;
        }
        for (int j = 0; j < 5; j++)
            if (!isfinite(q[j][i]) || (log_y && q[j][i] <= 0)) {
                dfs_set_error("plot: fan %d (%s): %s[%d] = %g is not %s", k, name, qn[j], i,
                              q[j][i], log_y ? "finite and positive (log axis)" : "finite");
                return DFS_ERR_ARG;
            }
        for (int j = 0; j < 4; j++)
            if (q[j][i] > q[j + 1][i]) {
                dfs_set_error("plot: fan %d (%s): at point %d %s = %g is above %s = %g (the bands "
                              "must be lo90 <= lo50 <= median <= hi50 <= hi90)",
                              k, name, i, qn[j], q[j][i], qn[j + 1], q[j + 1][i]);
                return DFS_ERR_ARG;
            }
    }
    return DFS_OK;
}

dfs_status dfs_plot_fan_png(const char *path, const dfs_plot_fan *fans, int nf,
                            const dfs_plot_config *cfg) {
    frame f;
    dfs_status st = frame_init(&f, cfg);
    if (st) return st;
    if (!path || !fans || nf <= 0) {
        dfs_set_error("plot: bad arguments (%d fans)", nf);
        return DFS_ERR_ARG;
    }
    int any_truth = 0, legend_w = 0, w;
    for (int k = 0; k < nf; k++) {
        const dfs_plot_fan *F = &fans[k];
        if ((st = fan_check(F, k, f.log_y))) return st;
        for (int i = 0; i < F->n; i++) {
            frame_add(&f, F->x[i], F->lo90[i]), frame_add(&f, F->x[i], F->hi90[i]);
            if (F->truth) frame_add(&f, F->x[i], F->truth[i]);
        }
        for (int i = 0; i < F->n_context; i++) frame_add(&f, F->context_x[i], F->context_y[i]);
        any_truth |= F->truth != NULL;
        if ((st = legend_width(&f, &F->label, 1, &w))) return st;
        if (w > legend_w) legend_w = w;
    }
    /* the legend's keys to the marks, in a neutral grey, below the features after a gap */
    static const char *const style[4] = {"median", "50%", "90%", "truth"};
    const uint8_t grey[3] = {110, 110, 110};
    legend_key keys[4] = {make_key(style[0], KEY_LINE, grey, 0, 0),
                          make_key(style[1], KEY_BAND, grey, FAN_A90, FAN_A50),
                          make_key(style[2], KEY_BAND, grey, FAN_A90, 0),
                          make_key(style[3], KEY_DASH, black, 0, 0)};
    if ((st = legend_width(&f, style, any_truth ? 4 : 3, &w))) return st;
    if (w > legend_w) legend_w = w;
    /* the legend sits right of the plot area: inside it would cover the forecast, which is
     * at the right end of the data */
    canvas c;
    if ((st = frame_layout(&f, path, legend_w)) || (st = canvas_new(&c, &f))) return st;
    st = frame_draw(&c, &f);

    clip_to_plot(&c, &f);
    /* all 90% bands under all 50% bands, so that overlapping fans stay readable */
    for (int k = 0; k < nf; k++)
        fill_band(&c, &f, fans[k].x, fans[k].lo90, fans[k].hi90, fans[k].n, fans[k].rgb, FAN_A90);
    for (int k = 0; k < nf; k++)
        fill_band(&c, &f, fans[k].x, fans[k].lo50, fans[k].hi50, fans[k].n, fans[k].rgb, FAN_A50);
    /* where each forecast begins: a dotted line (drawn once where fans share the start) */
    for (int k = 0; k < nf; k++) {
        const double X = floor(map_x(&f, fans[k].x[0])) + 0.5; /* a pixel column's centre */
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= floor(map_x(&f, fans[j].x[0])) + 0.5 == X;
        double phase = 0;
        if (!seen) dash_segment(&c, X, f.py0, X, f.py1, 1.0, axis_rgb, 1.0f, 2, 3, &phase);
    }
    for (int k = 0; k < nf; k++) {
        const dfs_plot_fan *F = &fans[k];
        plot_line(&c, &f, F->context_x, F->context_y, F->n_context, 1.6, F->rgb, 1.0f, 0);
        /* the context leads into the forecast: its last point joins the first median */
        const int last = F->n_context - 1;
        if (last >= 0 && plottable(&f, F->context_x[last], F->context_y[last]) &&
            F->context_x[last] < F->x[0]) {
            const double bx[2] = {F->context_x[last], F->x[0]};
            const double by[2] = {F->context_y[last], F->median[0]};
            plot_line(&c, &f, bx, by, 2, 1.6, F->rgb, 1.0f, 0);
        }
        plot_line(&c, &f, F->x, F->median, F->n, 2.0, F->rgb, 1.0f, 0);
    }
    /* the truth: a dashed line, with a dot on each observation where they stand apart */
    for (int k = 0; k < nf; k++) {
        const dfs_plot_fan *F = &fans[k];
        if (!F->truth) continue;
        plot_line(&c, &f, F->x, F->truth, F->n, 1.4, black, 1.0f, 1);
        double gap = INFINITY;
        for (int i = 1; i < F->n; i++)
            gap = fmin(gap, map_x(&f, F->x[i]) - map_x(&f, F->x[i - 1]));
        if (gap < 6) continue;
        keys[3].kind = KEY_DASH_DOT;
        for (int i = 0; i < F->n; i++)
            if (plottable(&f, F->x[i], F->truth[i])) {
                const double X = map_x(&f, F->x[i]), Y = map_y(&f, F->truth[i]);
                draw_segment(&c, X, Y, X, Y, TRUTH_DOT, black, 1.0f);
            }
    }
    clip_none(&c);

    /* legend: the features in their colours, then what the marks mean */
    int ly = f.py0 + 8;
    for (int k = 0; k < nf && !st; k++) {
        if (!fans[k].label || !*fans[k].label) continue;
        const legend_key key = make_key(fans[k].label, KEY_LINE, fans[k].rgb, 0, 0);
        st = legend_row(&c, &f, &key, 1, &ly);
    }
    ly += f.fs / 2;
    for (int j = 0; j < (any_truth ? 4 : 3) && !st; j++) st = legend_row(&c, &f, &keys[j], 1, &ly);
    return canvas_finish(&c, path, st);
}
