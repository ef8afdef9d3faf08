/* scene.c - spheres and sticks drawn as a shaded 3-D picture: the rasteriser behind the
 * ball-and-stick pictures of molecules, with no chemistry in it.
 *
 * Every sample of the picture casts a ray along -z (orthographic projection) and keeps the
 * nearest surface it meets (a depth buffer per sample). A sphere is hit where
 * dx^2 + dy^2 < r^2, at depth z = cz + sqrt(r^2 - dx^2 - dy^2). A stick is a cylinder with
 * flat ends: the ray p(z) = (x, y, z) meets its side where the distance to the axis is r,
 *     |w|^2 - (w.u)^2 = r^2,   w = p(z) - a,   u = (b - a) / |b - a|,
 * a quadratic in z whose larger root is the front, kept if it lies between the ends; an end
 * disc facing the viewer is the plane (p - e).n = 0 cut to |p - e| <= r. The colour of a hit is
 *     ambient + diffuse max(0, n.l) + specular max(0, n.h)^48     (Blinn 1977, "Models of
 * light reflection for computer synthesized pictures"), h the half vector of the light l and
 * the viewer (0, 0, 1), then blended toward the fog colour in proportion to depth (depth
 * cueing, as molecular viewers have done since the vector displays of the 1970s).
 * Each pixel is the mean of supersample^2 samples on a regular grid (antialiasing).
 *
 * Memory is bounded: the picture is drawn in bands of pixel rows, each band holding at most
 * BAND_SAMPLES samples; every band visits the primitives whose boxes reach it. */
#include "diffuse/render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BAND_SAMPLES (1 << 20)

/* shading: light from the upper left front (view coordinates, normalised at first use) */
static const double LIGHT[3] = {-0.45, 0.55, 0.70};
#define AMBIENT 0.40
#define DIFFUSE 0.75
#define SPECULAR 0.40
#define SHININESS 48.0

static void xform(const float R[9], const float p[3], double q[3]) {
    for (int k = 0; k < 3; k++)
        q[k] = (double)R[3 * k] * p[0] + (double)R[3 * k + 1] * p[1] + (double)R[3 * k + 2] * p[2];
}

static int finite3(const float p[3]) {
    return isfinite(p[0]) && isfinite(p[1]) && isfinite(p[2]);
}

/* DFS_OK, or DFS_ERR_ARG with a message naming the first bad primitive */
static dfs_status check_scene(const dfs_scene *s, const char *who) {
    if (!s || s->n_spheres < 0 || s->n_sticks < 0 || (s->n_spheres && !s->spheres) ||
        (s->n_sticks && !s->sticks)) {
        dfs_set_error("%s: bad scene (NULL, or a negative count)", who);
        return DFS_ERR_ARG;
    }
    for (int i = 0; i < s->n_spheres; i++) {
        const dfs_scene_sphere *p = &s->spheres[i];
        if (!finite3(p->c) || !isfinite(p->r) || p->r <= 0) {
            dfs_set_error("%s: sphere %d: centre and radius must be finite, radius > 0", who, i);
            return DFS_ERR_ARG;
        }
    }
    for (int i = 0; i < s->n_sticks; i++) {
        const dfs_scene_stick *p = &s->sticks[i];
        if (!finite3(p->a) || !finite3(p->b) || !isfinite(p->r) || p->r <= 0) {
            dfs_set_error("%s: stick %d: ends and radius must be finite, radius > 0", who, i);
            return DFS_ERR_ARG;
        }
    }
    return DFS_OK;
}

static const float IDENTITY[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};

dfs_status dfs_scene_fit(const dfs_scene *scenes, int n, const float *rot, int w, int h,
                         float margin, dfs_scene_view *view) {
    if (!scenes || n < 1 || !view || w < 1 || h < 1 || w > DFS_SCENE_MAX_SIDE ||
        h > DFS_SCENE_MAX_SIDE || !isfinite(margin) || margin < 0 || 2 * margin >= w ||
        2 * margin >= h) {
        dfs_set_error("scene_fit: bad arguments (%d scenes, %d x %d pixels, margin %g)", n, w, h,
                      (double)margin);
        return DFS_ERR_ARG;
    }
    if (!rot) rot = IDENTITY;
    for (int k = 0; k < 9; k++)
        if (!isfinite(rot[k])) {
            dfs_set_error("scene_fit: the rotation is not finite");
            return DFS_ERR_ARG;
        }
    double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
    double znear = -INFINITY, zfar = INFINITY;
    for (int j = 0; j < n; j++) {
        const dfs_scene *s = &scenes[j];
        dfs_status st = check_scene(s, "scene_fit");
        if (st) return st;
        /* every point that bounds the scene: sphere centres, stick ends, each with a radius */
        for (int i = 0; i < s->n_spheres + 2 * s->n_sticks; i++) {
            const float *p;
            float r;
            if (i < s->n_spheres) p = s->spheres[i].c, r = s->spheres[i].r;
            else {
                const dfs_scene_stick *k = &s->sticks[(i - s->n_spheres) / 2];
                p = (i - s->n_spheres) % 2 ? k->b : k->a, r = k->r;
            }
            double q[3];
            xform(rot, p, q);
            for (int d = 0; d < 2; d++) {
                if (q[d] - r < lo[d]) lo[d] = q[d] - r;
                if (q[d] + r > hi[d]) hi[d] = q[d] + r;
            }
            if (q[2] > znear) znear = q[2];
            if (q[2] < zfar) zfar = q[2];
        }
    }
    memcpy(view->rot, rot, sizeof view->rot);
    if (lo[0] > hi[0]) { /* nothing in any scene */
        view->centre[0] = view->centre[1] = 0;
        view->scale = (float)(w < h ? w : h) / 10.0f;
        znear = 0, zfar = -1;
    } else {
        view->centre[0] = (float)(0.5 * (lo[0] + hi[0]));
        view->centre[1] = (float)(0.5 * (lo[1] + hi[1]));
        double sx = (w - 2.0 * margin) / (hi[0] - lo[0]), sy = (h - 2.0 * margin) / (hi[1] - lo[1]);
        view->scale = (float)(sx < sy ? sx : sy);
        if (!(znear > zfar)) zfar = znear - 1;
    }
    view->z_near = (float)znear;
    view->z_far = (float)zfar;
    view->fog = 0.40f;
    view->fog_rgb[0] = 40, view->fog_rgb[1] = 44, view->fog_rgb[2] = 56;
    view->background[0] = view->background[1] = view->background[2] = 255;
    view->supersample = 3;
    if (!isfinite(view->scale) || !isfinite(view->centre[0]) || !isfinite(view->centre[1]) ||
        !isfinite(view->z_near) || !isfinite(view->z_far)) {
        dfs_set_error("scene_fit: the scene is too large to fit (coordinates near FLT_MAX)");
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

/* ---- drawing ----------------------------------------------------------------------------- */

/* One band of sample rows [j0, j0 + nj) of the whole sample grid (W = w ss columns): the
 * depth and the colour (0..1) of the nearest hit so far. */
typedef struct {
    const dfs_scene_view *v;
    int w, h, ss, W, j0, nj;
    double *qx, *qy; /* view x of each sample column, view y of each sample row of the band */
    float *z;        /* (nj, W), -INFINITY where nothing was hit */
    float *rgb;      /* (nj, W, 3) */
    double light[3], half[3];
} band;

/* Store a hit at sample (i, j) of the band if it is nearer than what is there. */
static void hit(band *B, int i, int j, double z, const double n[3], const uint8_t rgb[3]) {
    size_t at = (size_t)j * B->W + i;
    if (!(z > B->z[at])) return;
    B->z[at] = (float)z;
    const dfs_scene_view *v = B->v;
    double nl = n[0] * B->light[0] + n[1] * B->light[1] + n[2] * B->light[2];
    double nh = n[0] * B->half[0] + n[1] * B->half[1] + n[2] * B->half[2];
    double diff = nl > 0 ? nl : 0, spec = nh > 0 ? pow(nh, SHININESS) : 0;
    double t = 0; /* depth cue: 0 at z_near, 1 at z_far */
    if (v->z_near > v->z_far) {
        t = (v->z_near - z) / ((double)v->z_near - v->z_far);
        t = t < 0 ? 0 : t > 1 ? 1 : t;
    }
    t *= v->fog;
    for (int k = 0; k < 3; k++) {
        double c = rgb[k] / 255.0 * (AMBIENT + DIFFUSE * diff) + SPECULAR * spec;
        if (c > 1) c = 1;
        B->rgb[at * 3 + k] = (float)((1 - t) * c + t * v->fog_rgb[k] / 255.0);
    }
}

/* The band's sample columns and rows covered by the view-space box [x0, x1] x [y0, y1];
 * 0 when none. */
static int cover(const band *B, double x0, double x1, double y0, double y1, int *i0, int *i1,
                 int *j0, int *j1) {
    const dfs_scene_view *v = B->v;
    const double s = v->scale * B->ss;
    /* sample column i lies at pixel x (i + 0.5) / ss, view x centre + (px - w/2) / scale */
    double c0 = (x0 - v->centre[0]) * s + 0.5 * B->w * B->ss - 0.5;
    double c1 = (x1 - v->centre[0]) * s + 0.5 * B->w * B->ss - 0.5;
    double r0 = (v->centre[1] - y1) * s + 0.5 * B->h * B->ss - 0.5 - B->j0;
    double r1 = (v->centre[1] - y0) * s + 0.5 * B->h * B->ss - 0.5 - B->j0;
    if (c1 < 0 || r1 < 0 || c0 > B->W - 1 || r0 > B->nj - 1) return 0;
    *i0 = c0 < 0 ? 0 : (int)floor(c0);
    *i1 = c1 > B->W - 1 ? B->W - 1 : (int)ceil(c1);
    *j0 = r0 < 0 ? 0 : (int)floor(r0);
    *j1 = r1 > B->nj - 1 ? B->nj - 1 : (int)ceil(r1);
    return 1;
}

static void draw_sphere(band *B, const dfs_scene_sphere *sp) {
    double c[3], r = sp->r;
    xform(B->v->rot, sp->c, c);
    int i0, i1, j0, j1;
    if (!cover(B, c[0] - r, c[0] + r, c[1] - r, c[1] + r, &i0, &i1, &j0, &j1)) return;
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) {
            double dx = B->qx[i] - c[0], dy = B->qy[j] - c[1], d2 = r * r - dx * dx - dy * dy;
            if (d2 < 0) continue;
            double dz = sqrt(d2), n[3] = {dx / r, dy / r, dz / r};
            hit(B, i, j, c[2] + dz, n, sp->rgb);
        }
}

static void draw_stick(band *B, const dfs_scene_stick *st) {
    double a[3], b[3], u[3], r = st->r;
    xform(B->v->rot, st->a, a);
    xform(B->v->rot, st->b, b);
    double L = 0;
    for (int k = 0; k < 3; k++) u[k] = b[k] - a[k], L += u[k] * u[k];
    L = sqrt(L);
    if (!(L > 1e-9 * r)) return; /* no length: nothing to see beside the ends' spheres */
    for (int k = 0; k < 3; k++) u[k] /= L;
    int i0, i1, j0, j1;
    if (!cover(B, fmin(a[0], b[0]) - r, fmax(a[0], b[0]) + r, fmin(a[1], b[1]) - r,
               fmax(a[1], b[1]) + r, &i0, &i1, &j0, &j1))
        return;
    const double qa = 1 - u[2] * u[2]; /* the quadratic's z^2 coefficient */
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) {
            const double x = B->qx[i], y = B->qy[j];
            double best = -INFINITY, n[3] = {0, 0, 1};
            const uint8_t *rgb = st->rgb_a;
            /* side: w = (x - ax, y - ay, z - az) = w0 + z e_z */
            const double w0[3] = {x - a[0], y - a[1], -a[2]};
            const double w0u = w0[0] * u[0] + w0[1] * u[1] + w0[2] * u[2];
            const double hb = w0[2] - w0u * u[2];
            const double qc = w0[0] * w0[0] + w0[1] * w0[1] + w0[2] * w0[2] - w0u * w0u - r * r;
            const double disc = hb * hb - qa * qc;
            if (qa > 1e-12 && disc >= 0) {
                double z = (-hb + sqrt(disc)) / qa, s = w0u + z * u[2];
                if (s >= 0 && s <= L) {
                    best = z;
                    const double w[3] = {x - a[0], y - a[1], z - a[2]};
                    for (int k = 0; k < 3; k++) n[k] = (w[k] - s * u[k]) / r;
                    rgb = s < 0.5 * L ? st->rgb_a : st->rgb_b;
                }
            }
            /* the end discs that face the viewer: at a the outward normal is -u, at b +u */
            for (int e = 0; e < 2; e++) {
                const double *p = e ? b : a, sg = e ? 1 : -1, nz = sg * u[2];
                if (nz <= 1e-12) continue;
                double dx = x - p[0], dy = y - p[1];
                double z = p[2] - (dx * sg * u[0] + dy * sg * u[1]) / nz, dz = z - p[2];
                if (dx * dx + dy * dy + dz * dz <= r * r && z > best) {
                    best = z;
                    for (int k = 0; k < 3; k++) n[k] = sg * u[k];
                    rgb = e ? st->rgb_b : st->rgb_a;
                }
            }
            if (best > -INFINITY) hit(B, i, j, best, n, rgb);
        }
}

dfs_status dfs_scene_render(const dfs_scene *s, const dfs_scene_view *v, uint8_t *rgb, int w,
                            int h) {
    if (!v || !rgb || w < 1 || h < 1 || w > DFS_SCENE_MAX_SIDE || h > DFS_SCENE_MAX_SIDE) {
        dfs_set_error("scene_render: bad arguments (%d x %d pixels)", w, h);
        return DFS_ERR_ARG;
    }
    if (v->supersample < 1 || v->supersample > DFS_SCENE_MAX_SUPERSAMPLE ||
        !(v->scale > 0) || !isfinite(v->scale) || !(v->fog >= 0 && v->fog <= 1) ||
        !isfinite(v->centre[0]) || !isfinite(v->centre[1]) || !isfinite(v->z_near) ||
        !isfinite(v->z_far)) {
        dfs_set_error("scene_render: bad view (supersample %d, scale %g, fog %g)", v->supersample,
                      (double)v->scale, (double)v->fog);
        return DFS_ERR_ARG;
    }
    for (int k = 0; k < 9; k++)
        if (!isfinite(v->rot[k])) {
            dfs_set_error("scene_render: the rotation is not finite");
            return DFS_ERR_ARG;
        }
    dfs_status st = check_scene(s, "scene_render");
    if (st) return st;

    band B = {.v = v, .w = w, .h = h, .ss = v->supersample};
    B.W = w * B.ss;
    int rows = BAND_SAMPLES / (B.W * B.ss); /* pixel rows per band */
    if (rows < 1) rows = 1;
    if (rows > h) rows = h;
    const size_t cap = (size_t)rows * B.ss * B.W; /* samples in a band */
    B.qx = malloc((size_t)B.W * sizeof *B.qx);
    B.qy = malloc((size_t)rows * B.ss * sizeof *B.qy);
    B.z = malloc(cap * sizeof *B.z);
    B.rgb = malloc(cap * 3 * sizeof *B.rgb);
    if (!B.qx || !B.qy || !B.z || !B.rgb) {
        free(B.qx), free(B.qy), free(B.z), free(B.rgb);
        dfs_set_error("scene_render: out of memory (%d x %d pixels, supersample %d)", w, h, B.ss);
        return DFS_ERR_NOMEM;
    }
    double ln = sqrt(LIGHT[0] * LIGHT[0] + LIGHT[1] * LIGHT[1] + LIGHT[2] * LIGHT[2]), hn = 0;
    for (int k = 0; k < 3; k++) B.light[k] = LIGHT[k] / ln, B.half[k] = B.light[k] + (k == 2);
    hn = sqrt(B.half[0] * B.half[0] + B.half[1] * B.half[1] + B.half[2] * B.half[2]);
    for (int k = 0; k < 3; k++) B.half[k] /= hn;
    for (int i = 0; i < B.W; i++)
        B.qx[i] = v->centre[0] + ((i + 0.5) / B.ss - 0.5 * w) / v->scale;
    const float inv = 1.0f / ((float)B.ss * B.ss);
    for (int y0 = 0; y0 < h; y0 += rows) {
        const int ny = y0 + rows <= h ? rows : h - y0;
        B.j0 = y0 * B.ss;
        B.nj = ny * B.ss;
        for (int j = 0; j < B.nj; j++)
            B.qy[j] = v->centre[1] - ((B.j0 + j + 0.5) / B.ss - 0.5 * h) / v->scale;
        const size_t ns = (size_t)B.nj * B.W;
        for (size_t k = 0; k < ns; k++) {
            B.z[k] = -INFINITY;
            for (int c = 0; c < 3; c++) B.rgb[3 * k + c] = v->background[c] / 255.0f;
        }
        for (int i = 0; i < s->n_sticks; i++) draw_stick(&B, &s->sticks[i]);
        for (int i = 0; i < s->n_spheres; i++) draw_sphere(&B, &s->spheres[i]);
        /* each pixel: the mean of its ss x ss samples */
        for (int y = 0; y < ny; y++)
            for (int x = 0; x < w; x++) {
                float sum[3] = {0, 0, 0};
                for (int j = 0; j < B.ss; j++)
                    for (int i = 0; i < B.ss; i++) {
                        const float *c = B.rgb + 3 * ((size_t)(y * B.ss + j) * B.W + x * B.ss + i);
                        sum[0] += c[0], sum[1] += c[1], sum[2] += c[2];
                    }
                uint8_t *o = rgb + 3 * ((size_t)(y0 + y) * w + x);
                for (int c = 0; c < 3; c++) o[c] = (uint8_t)lrintf(sum[c] * inv * 255.0f);
            }
    }
    free(B.qx), free(B.qy), free(B.z), free(B.rgb);
    return DFS_OK;
}
