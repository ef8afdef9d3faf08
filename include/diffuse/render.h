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

/* ------------------------------------------------------------------------------------------ */
/* 3-D scenes of spheres and sticks (src/render/scene.c)                                       */
/* ------------------------------------------------------------------------------------------ */
/*
 * A small ray-casting rasteriser for ball-and-stick pictures; it knows nothing of chemistry
 * (src/mol/render.c turns molecules into scenes). Orthographic projection along the view's z
 * axis with a depth buffer per sample; shading is ambient + Lambert + a Blinn-Phong highlight
 * from one light at the upper left front; depth cueing blends surfaces toward view.fog_rgb the
 * farther they are; each pixel averages supersample^2 samples (antialiasing).
 *
 *   dfs_scene s = {spheres, n_spheres, sticks, n_sticks};
 *   dfs_scene_view v;
 *   dfs_scene_fit(&s, 1, rot, w, h, 8.0f, &v);   // the whole scene in the panel, 8 px margin
 *   dfs_scene_render(&s, &v, rgb, w, h);         // rgb: (h, w, 3), the caller's
 */
typedef struct {
    float c[3];     /* centre */
    float r;        /* radius, > 0 */
    uint8_t rgb[3]; /* colour */
} dfs_scene_sphere;
/* A cylinder from a to b; the half at a has colour rgb_a, the half at b rgb_b. Its flat ends
 * are drawn, so a stick ending inside a sphere is hidden there. */
typedef struct {
    float a[3], b[3];
    float r; /* radius, > 0 */
    uint8_t rgb_a[3], rgb_b[3];
} dfs_scene_stick;
typedef struct {
    const dfs_scene_sphere *spheres;
    int n_spheres;
    const dfs_scene_stick *sticks;
    int n_sticks;
} dfs_scene;
/* Where the camera is and how the picture looks. A scene point p is seen at q = rot p (x to
 * the right, y up, z toward the viewer) and drawn at pixel (w/2 + scale (q.x - centre[0]),
 * h/2 - scale (q.y - centre[1])), pixel (i, j) covering [i, i+1) x [j, j+1). rot should be a
 * rotation (orthonormal, determinant +1): radii are not transformed, and a mirror would show
 * the mirror-image scene. */
typedef struct {
    float rot[9];          /* row-major 3 x 3 */
    float centre[2];       /* view x, y at the middle of the picture */
    float scale;           /* pixels per scene unit, > 0 */
    float z_near, z_far;   /* view depths (q.z) where depth cueing starts and where it is full */
    float fog;             /* 0..1: at z_far and beyond, colour = (1 - fog) shaded + fog fog_rgb */
    uint8_t fog_rgb[3];
    uint8_t background[3]; /* where no surface is */
    int supersample;       /* samples per pixel along each axis, 1..DFS_SCENE_MAX_SUPERSAMPLE */
} dfs_scene_view;
#define DFS_SCENE_MAX_SUPERSAMPLE 8
/* Largest picture side dfs_scene_render draws. */
#define DFS_SCENE_MAX_SIDE 8192
/* The view that fits scenes[0..n) together (their union) into a w x h picture, margin pixels
 * clear on every side, seen through rot (NULL: the identity): the centre and scale from the
 * bounding box of the rotated spheres and sticks (radii included), z_near and z_far the
 * largest and smallest view depth of the sphere centres and stick ends (z_far = z_near - 1
 * for a flat scene). The rest are the defaults: white background, fog 0.40 toward dark
 * slate (40, 44, 56), supersample 3. Fitting several scenes together gives them one view:
 * the frames of an animation then share centre, scale and depth cue. A scene with nothing in
 * it gets centre 0 and scale min(w, h) / 10. DFS_ERR_ARG (message set) for n < 1, w or h
 * outside 1..DFS_SCENE_MAX_SIDE, a margin that leaves no room, a coordinate or radius that is
 * not finite, or a radius <= 0. */
dfs_status dfs_scene_fit(const dfs_scene *scenes, int n, const float *rot, int w, int h,
                         float margin, dfs_scene_view *view);
/* Draw s through view into rgb (h, w, 3), row-major, which the caller owns; every pixel is
 * written. Deterministic: the same scene and view give the same bytes. DFS_ERR_ARG (message
 * set) for w or h outside 1..DFS_SCENE_MAX_SIDE, supersample outside its range, a scale or
 * fog out of range, a coordinate or radius that is not finite, or a radius <= 0;
 * DFS_ERR_NOMEM. */
dfs_status dfs_scene_render(const dfs_scene *s, const dfs_scene_view *view, uint8_t *rgb, int w,
                            int h);

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_RENDER_H */
