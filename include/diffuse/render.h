/* diffuse/render.h - text, line charts and forecast fan charts drawn into PNGs (FreeType).
 * Part of diffuse.h. */
#ifndef DIFFUSE_RENDER_H
#define DIFFUSE_RENDER_H

#include "diffuse/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Render one line of UTF-8 text with a TrueType font (FreeType) at px pixels, px 4..512: *out
 * (h, w) malloc'ed 8-bit coverage (0 = paper, 255 = ink). DFS_ERR_IO if the font file is
 * missing, DFS_ERR_FORMAT if FreeType cannot use it. */
dfs_status dfs_text_render(const char *font_path, const char *text, int px, uint8_t **out,
                           int *w, int *h);
/* dfs_png_write_grid with a white band on top holding labels[j] centred over column j (black,
 * clipped to the column; NULL or "" leaves it blank), in font_path at px pixels, px 4..256.
 * labels has min(cols, n) entries. */
dfs_status dfs_png_write_grid_labeled(const char *path, const float *images, int n, int c,
                                      int h, int w, int cols, const char *const *labels,
                                      const char *font_path, int px);
/* The DejaVu Sans file of Debian's fonts-dejavu-core: dfs_plot_png's default font, and the
 * one the command line uses for labels. */
#define DFS_DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
/* Line charts (src/render/plot.c): loss curves and other series against steps, as an RGB PNG. */
typedef struct {
    const double *x, *y; /* n points; a non-finite point (or y <= 0 on a log axis) breaks the
                          * line, and a point left with no neighbour is drawn as a dot */
    int n;
    uint8_t rgb[3];      /* line colour */
    float width;         /* line width in pixels; 0 = 1.5 */
    float alpha;         /* opacity in (0, 1]; 0 = 1 */
    const char *label;   /* legend entry; NULL or "" for none */
} dfs_plot_series;
typedef struct {
    int width, height;   /* pixels; 0 = 800 x 450 */
    const char *title, *xlabel, *ylabel; /* NULL for none */
    int log_y;           /* logarithmic y axis */
    const char *font;    /* NULL = DFS_DEFAULT_FONT */
} dfs_plot_config;
/* Draw ns series on shared axes (ticks at 1, 2, 5 x 10^k; decades on a log axis) and write
 * the PNG atomically. cfg NULL gives the defaults. DFS_ERR_ARG if nothing finite is left or
 * the size is outside 200..8192 x 150..8192. */
dfs_status dfs_plot_png(const char *path, const dfs_plot_series *series, int ns,
                        const dfs_plot_config *cfg);
/* Fan charts (src/render/plot.c): probabilistic forecasts, one fan per feature on shared axes.
 * The central 90% interval (quantiles 5 to 95 %) is a light translucent band, the central 50%
 * (25 to 75 %) a darker one inside it, the median a line; the context (the history the
 * forecast was conditioned on) is a line in the same colour that leads into the median; the
 * truth, where given, is a black dashed line with a dot on each observation (when they stand
 * 6 pixels apart or more). A dotted vertical line marks where each forecast begins. The legend,
 * right of the plot area, names the features in their colours and then the marks. */
typedef struct {
    const double *x; /* n forecast positions (steps, days, ...): finite, strictly rising */
    int n;           /* points in the forecast, >= 2 */
    /* n values each: the 5, 25, 50, 75 and 95 % quantiles, finite (positive on a log axis)
     * and in that order at every point */
    const double *lo90, *lo50, *median, *hi50, *hi90;
    const double *truth; /* n observed values, NULL for none; NaN = missing (a break) */
    const double *context_x, *context_y; /* n_context points before x[0], NULL when 0; */
    int n_context;                       /* a non-finite point breaks the line */
    uint8_t rgb[3];    /* colour of the bands, the median and the context */
    const char *label; /* feature name in the legend; NULL or "" for none */
} dfs_plot_fan;
/* Opacity of a fan's colour in its 90% band (a pixel there is white + 0.22 (rgb - white)), and
 * of the 50% band blended on top of that. */
#define DFS_PLOT_FAN_ALPHA90 0.22f
#define DFS_PLOT_FAN_ALPHA50 0.32f
/* Draw nf fans on shared axes (the ticks, titles and size rules of dfs_plot_png) and write the
 * PNG atomically. cfg NULL gives the defaults. DFS_ERR_ARG, with the fan and point named and no
 * file written, if n < 2, an array is missing, x is not finite and rising, or a band value is
 * not finite or out of order (lo90 <= lo50 <= median <= hi50 <= hi90): quantiles out of order
 * are a caller's bug, so they are reported rather than sorted. */
dfs_status dfs_plot_fan_png(const char *path, const dfs_plot_fan *fans, int nf,
                            const dfs_plot_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_RENDER_H */
