/* test_mol_render.c - ball-and-stick pictures, read back as pixels. The scene rasteriser
 * (src/render/scene.c): spheres where the projection puts them, the nearer surface kept by the
 * depth buffer whatever the drawing order, a stick in its two colours and seen end on, depth
 * cueing (a farther ball of one colour is darker, and not at all with fog 0), the fit inside the
 * margin, a rotation, supersampling as the mean of a finer picture, bands of rows that do not
 * show, determinism, and bad scenes and views refused. The molecule layer (src/mol/render.c):
 * element colours, the principal-axes view, water (red O, white H where the panel says they
 * are, the bonds perceived and coloured half by half), single, double and triple bonds as one,
 * two and three sticks, grids (size, layout, captions, empty cells), trajectories at one scale,
 * byte-identical files, and bad arguments refused with no file written. */
#include "check.h"
#include "diffuse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static const char *P(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

/* ---- pictures ------------------------------------------------------------------------------ */

/* An RGB picture: interleaved (h, w, 3) as dfs_scene_render writes it, or read from a PNG. */
typedef struct {
    uint8_t *px;
    int w, h;
} pic;

static const uint8_t *at(const pic *p, int x, int y) { return p->px + 3 * ((size_t)y * p->w + x); }
static int sum3(const uint8_t *c) { return c[0] + c[1] + c[2]; }
static int is_white(const uint8_t *c) { return c[0] == 255 && c[1] == 255 && c[2] == 255; }
/* a colour of that hue, shaded or darkened with depth */
static int reddish(const uint8_t *c) { return c[0] > 120 && 2 * c[1] < c[0] && 2 * c[2] < c[0]; }
static int bluish(const uint8_t *c) { return c[2] > 120 && 2 * c[0] < c[2] && 10 * c[1] < 7 * c[2]; }
static int greenish(const uint8_t *c) { return c[1] > 120 && 5 * c[0] < 4 * c[1] && 2 * c[2] < c[1]; }
/* grey or white: the three channels within 12 of each other */
static int greyish(const uint8_t *c) {
    return abs(c[0] - c[1]) <= 12 && abs(c[1] - c[2]) <= 12 && abs(c[0] - c[2]) <= 12;
}

/* Read a PNG into an interleaved picture (dfs_png_read gives planes). */
static int read_png(const char *path, pic *p) {
    uint8_t *planes;
    int c, h, w;
    memset(p, 0, sizeof *p);
    if (dfs_png_read(path, &planes, &c, &h, &w)) return 0;
    p->px = malloc((size_t)w * h * 3);
    p->w = w, p->h = h;
    for (size_t i = 0; i < (size_t)w * h; i++)
        for (int k = 0; k < 3; k++) p->px[3 * i + k] = planes[(c == 3 ? k : 0) * (size_t)w * h + i];
    free(planes);
    return c == 3;
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* Where view v puts the scene point p, in pixels (x right, y down). */
static void project(const dfs_scene_view *v, int w, int h, const float p[3], double *x,
                    double *y) {
    double q[2];
    for (int r = 0; r < 2; r++)
        q[r] = v->rot[3 * r] * p[0] + v->rot[3 * r + 1] * p[1] + v->rot[3 * r + 2] * p[2];
    *x = 0.5 * w + v->scale * (q[0] - v->centre[0]);
    *y = 0.5 * h - v->scale * (q[1] - v->centre[1]);
}

/* ---- the scene rasteriser ------------------------------------------------------------------ */

static void test_scene_spheres(void) {
    enum { W = 160, H = 120 };
    uint8_t img[W * H * 3], img2[W * H * 3];
    /* two balls of one colour, the left one nearer; a small blue ball in front of a big green
     * one, drawn first so that only the depth buffer can keep it */
    const dfs_scene_sphere sp[4] = {{{-2, 0, 1}, 0.8f, {200, 60, 60}},
                                    {{2, 0, -1}, 0.8f, {200, 60, 60}},
                                    {{0, 1.5f, 2}, 0.3f, {40, 40, 250}},
                                    {{0, 1.5f, 0}, 0.7f, {40, 220, 40}}};
    dfs_scene s = {sp, 4, NULL, 0};
    dfs_scene_view v;
    CHECK(dfs_scene_fit(&s, 1, NULL, W, H, 10, &v) == DFS_OK, "fit: %s", dfs_last_error());
    CHECK(v.supersample == 3 && v.fog > 0 && v.background[0] == 255, "defaults: ss %d fog %g",
          v.supersample, v.fog);
    CHECK(v.z_near == 2 && v.z_far == -1, "depth range from the centres: %g %g", v.z_near,
          v.z_far);
    CHECK(dfs_scene_render(&s, &v, img, W, H) == DFS_OK, "render: %s", dfs_last_error());
    pic p = {img, W, H};
    CHECK(is_white(at(&p, 0, 0)) && is_white(at(&p, W - 1, H - 1)) && is_white(at(&p, W / 2, H - 3)),
          "background in the corners and under the balls");
    double x[4], y[4];
    for (int i = 0; i < 4; i++) project(&v, W, H, sp[i].c, &x[i], &y[i]);
    const uint8_t *near = at(&p, (int)x[0], (int)y[0]), *far = at(&p, (int)x[1], (int)y[1]);
    CHECK(reddish(near) && reddish(far), "both red balls at their centres: %d %d %d / %d %d %d",
          near[0], near[1], near[2], far[0], far[1], far[2]);
    CHECK(sum3(near) > sum3(far) + 30, "depth cue: the nearer ball is brighter (%d vs %d)",
          sum3(near), sum3(far));
    const uint8_t *front = at(&p, (int)x[2], (int)y[2]);
    CHECK(bluish(front), "the small near ball in front of the big one: %d %d %d", front[0],
          front[1], front[2]);
    const uint8_t *back = at(&p, (int)(x[3] - 0.5 * v.scale), (int)(y[3] - 0.2 * v.scale));
    CHECK(greenish(back), "the big ball beside it: %d %d %d", back[0], back[1], back[2]);
    /* the fit: nothing in the margin, and the scene reaches it along one axis */
    int x0 = W, x1 = -1, y0 = H, y1 = -1;
    for (int j = 0; j < H; j++)
        for (int i = 0; i < W; i++)
            if (!is_white(at(&p, i, j))) {
                x0 = i < x0 ? i : x0, x1 = i > x1 ? i : x1;
                y0 = j < y0 ? j : y0, y1 = j > y1 ? j : y1;
            }
    CHECK(x0 >= 10 && y0 >= 10 && x1 < W - 10 && y1 < H - 10, "inside the margin: %d..%d, %d..%d",
          x0, x1, y0, y1);
    CHECK(x1 - x0 >= W - 20 - 3 || y1 - y0 >= H - 20 - 3, "fills the panel: %d..%d, %d..%d", x0,
          x1, y0, y1);
    /* no fog: the two red balls are alike */
    dfs_scene_view nofog = v;
    nofog.fog = 0;
    CHECK(dfs_scene_render(&s, &nofog, img2, W, H) == DFS_OK, "render without fog");
    pic q = {img2, W, H};
    const uint8_t *n2 = at(&q, (int)x[0], (int)y[0]), *f2 = at(&q, (int)x[1], (int)y[1]);
    CHECK(abs(sum3(n2) - sum3(f2)) <= 3, "fog 0: the two balls alike (%d vs %d)", sum3(n2), sum3(f2));
    /* deterministic */
    CHECK(dfs_scene_render(&s, &v, img2, W, H) == DFS_OK && !memcmp(img, img2, sizeof img),
          "the same bytes twice");
    /* rotation: a quarter turn about z moves the ball at +x to +y (up the screen) */
    const dfs_scene_sphere one[2] = {{{2, 0, 0}, 0.5f, {200, 60, 60}}, {{0, 0, 0}, 0.3f, {40, 40, 250}}};
    const float quarter[9] = {0, -1, 0, 1, 0, 0, 0, 0, 1};
    dfs_scene s1 = {one, 2, NULL, 0};
    CHECK(dfs_scene_fit(&s1, 1, quarter, W, H, 4, &v) == DFS_OK &&
              dfs_scene_render(&s1, &v, img, W, H) == DFS_OK,
          "rotated render");
    double rx, ry, bx, by;
    project(&v, W, H, one[0].c, &rx, &ry);
    project(&v, W, H, one[1].c, &bx, &by);
    CHECK(fabs(rx - bx) < 0.5 && ry < by - 40, "turned: the red ball above the blue (%.1f,%.1f) (%.1f,%.1f)",
          rx, ry, bx, by);
    CHECK(reddish(at(&p, (int)rx, (int)ry)) && bluish(at(&p, (int)bx, (int)by)),
          "the balls where the rotation puts them");
}

static void test_scene_sticks(void) {
    enum { W = 200, H = 80 };
    uint8_t img[W * H * 3];
    pic p = {img, W, H};
    /* a stick along x, red at a, blue at b; and one along the line of sight (its end disc) */
    const dfs_scene_stick st[2] = {{{-4, 0, 0}, {4, 0, 0}, 0.4f, {220, 30, 30}, {30, 30, 220}},
                                   {{0, 2, -1}, {0, 2, 1}, 0.4f, {30, 200, 30}, {30, 200, 30}}};
    dfs_scene s = {NULL, 0, st, 2};
    dfs_scene_view v;
    CHECK(dfs_scene_fit(&s, 1, NULL, W, H, 6, &v) == DFS_OK &&
              dfs_scene_render(&s, &v, img, W, H) == DFS_OK,
          "stick render: %s", dfs_last_error());
    double xa, ya, xb, yb, xc, yc;
    const float qa[3] = {-2, 0, 0}, qb[3] = {2, 0, 0}, qc[3] = {0, 2, 0};
    project(&v, W, H, qa, &xa, &ya);
    project(&v, W, H, qb, &xb, &yb);
    project(&v, W, H, qc, &xc, &yc);
    const uint8_t *ca = at(&p, (int)xa, (int)ya), *cb = at(&p, (int)xb, (int)yb);
    CHECK(reddish(ca) && bluish(cb), "the halves in their colours: %d %d %d / %d %d %d", ca[0],
          ca[1], ca[2], cb[0], cb[1], cb[2]);
    CHECK(is_white(at(&p, (int)xa, (int)(ya + 0.6 * v.scale))), "nothing beside the stick");
    CHECK(greenish(at(&p, (int)xc, (int)yc)), "a stick seen end on shows its end");
    /* the side of a stick is shaded across it: lit toward the light (up), darker below */
    CHECK(sum3(at(&p, (int)xa, (int)(ya - 0.2 * v.scale))) > sum3(at(&p, (int)xa, (int)(ya + 0.3 * v.scale))),
          "shading across the stick");
}

/* Supersampling is the mean of a picture ss times finer: the samples sit where the pixels of
 * that picture have their centres. */
static void test_scene_supersample(void) {
    enum { W = 48, H = 40, S = 3 };
    static uint8_t fine[W * S * H * S * 3], coarse[W * H * 3];
    const dfs_scene_sphere sp[2] = {{{0, 0, 0}, 1, {250, 120, 20}}, {{1.1f, 0.7f, 0.5f}, 0.5f, {20, 120, 250}}};
    const dfs_scene_stick st[1] = {{{0, 0, 0}, {1.1f, 0.7f, 0.5f}, 0.2f, {90, 90, 90}, {200, 200, 200}}};
    dfs_scene s = {sp, 2, st, 1};
    dfs_scene_view v;
    CHECK(dfs_scene_fit(&s, 1, NULL, W, H, 3, &v) == DFS_OK, "fit");
    CHECK(dfs_scene_render(&s, &v, coarse, W, H) == DFS_OK, "coarse");
    dfs_scene_view f = v;
    f.scale *= S;
    f.supersample = 1;
    CHECK(dfs_scene_render(&s, &f, fine, W * S, H * S) == DFS_OK, "fine");
    int worst = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < 3; k++) {
                int sum = 0;
                for (int j = 0; j < S; j++)
                    for (int i = 0; i < S; i++)
                        sum += fine[3 * ((size_t)(y * S + j) * W * S + x * S + i) + k];
                int d = abs(coarse[3 * (y * W + x) + k] - (sum + S * S / 2) / (S * S));
                worst = d > worst ? d : worst;
            }
    CHECK(worst <= 2, "supersampled pixel = mean of the finer picture's (worst %d)", worst);
}

/* A picture drawn in several bands of rows looks as one drawn whole: shifting the scene by
 * whole pixels shifts the picture, wherever the band edges fall. */
static void test_scene_bands(void) {
    enum { W = 1024, H = 96 }; /* 1024 x 8 samples a row: 16 rows of pixels a band */
    uint8_t *a = malloc(W * H * 3), *b = malloc(W * H * 3);
    dfs_scene_sphere sp = {{0, 0, 0}, 1, {200, 60, 60}};
    dfs_scene s = {&sp, 1, NULL, 0};
    dfs_scene_view v;
    CHECK(dfs_scene_fit(&s, 1, NULL, W, H, 8, &v) == DFS_OK, "band fit");
    v.supersample = 8;
    v.scale = 32; /* a ball 64 pixels across, from row 16 to 80, over 4 band edges */
    CHECK(dfs_scene_render(&s, &v, a, W, H) == DFS_OK, "band render");
    v.centre[1] -= 8.0f / 32; /* 8 pixels up: the ball now spans rows 8..72 */
    CHECK(dfs_scene_render(&s, &v, b, W, H) == DFS_OK, "band render, shifted");
    int worst = 0;
    for (int y = 8; y < H; y++)
        for (int i = 0; i < W * 3; i++) {
            int d = abs(a[(size_t)y * W * 3 + i] - b[(size_t)(y - 8) * W * 3 + i]);
            worst = d > worst ? d : worst;
        }
    CHECK(worst <= 1, "shifted by 8 rows across a band edge, worst difference %d", worst);
    free(a), free(b);
}

static void test_scene_bad(void) {
    uint8_t img[16 * 16 * 3];
    dfs_scene_sphere sp = {{0, 0, 0}, 1, {1, 2, 3}};
    dfs_scene s = {&sp, 1, NULL, 0}, empty = {NULL, 0, NULL, 0};
    dfs_scene_view v, e;
    CHECK(dfs_scene_fit(&s, 1, NULL, 16, 16, 1, &v) == DFS_OK, "fit");
    CHECK(dfs_scene_fit(&s, 0, NULL, 16, 16, 1, &e) == DFS_ERR_ARG, "no scenes");
    CHECK(dfs_scene_fit(&s, 1, NULL, 0, 16, 1, &e) == DFS_ERR_ARG, "zero width");
    CHECK(dfs_scene_fit(&s, 1, NULL, 16, 16, 8, &e) == DFS_ERR_ARG, "margin leaves no room");
    CHECK(dfs_scene_render(&s, &v, img, 16, DFS_SCENE_MAX_SIDE + 1) == DFS_ERR_ARG, "too tall");
    CHECK(dfs_scene_render(NULL, &v, img, 16, 16) == DFS_ERR_ARG, "NULL scene");
    e = v, e.supersample = 0;
    CHECK(dfs_scene_render(&s, &e, img, 16, 16) == DFS_ERR_ARG, "supersample 0");
    e = v, e.supersample = DFS_SCENE_MAX_SUPERSAMPLE + 1;
    CHECK(dfs_scene_render(&s, &e, img, 16, 16) == DFS_ERR_ARG, "supersample too large");
    e = v, e.scale = 0;
    CHECK(dfs_scene_render(&s, &e, img, 16, 16) == DFS_ERR_ARG, "scale 0");
    e = v, e.fog = 1.5f;
    CHECK(dfs_scene_render(&s, &e, img, 16, 16) == DFS_ERR_ARG, "fog above 1");
    sp.r = 0;
    CHECK(dfs_scene_render(&s, &v, img, 16, 16) == DFS_ERR_ARG && strstr(dfs_last_error(), "sphere 0"),
          "radius 0: %s", dfs_last_error());
    sp.r = 1, sp.c[1] = NAN;
    CHECK(dfs_scene_fit(&s, 1, NULL, 16, 16, 1, &e) == DFS_ERR_ARG, "NaN centre, fit");
    CHECK(dfs_scene_render(&s, &v, img, 16, 16) == DFS_ERR_ARG, "NaN centre, render");
    dfs_scene_stick st = {{0, 0, 0}, {1, 0, 0}, -1, {0}, {0}};
    dfs_scene sticks = {NULL, 0, &st, 1};
    CHECK(dfs_scene_render(&sticks, &v, img, 16, 16) == DFS_ERR_ARG, "negative stick radius");
    /* an empty scene is an empty picture */
    CHECK(dfs_scene_fit(&empty, 1, NULL, 16, 16, 1, &e) == DFS_OK &&
              dfs_scene_render(&empty, &e, img, 16, 16) == DFS_OK,
          "empty scene");
    int all = 1;
    for (size_t i = 0; i < sizeof img; i++) all &= img[i] == 255;
    CHECK(all, "an empty scene is all background");
}

/* ---- molecules ---------------------------------------------------------------------------- */

/* A molecule from (z, x, y, z) rows. */
static dfs_mol make(int n, const double (*atoms)[4]) {
    dfs_mol m;
    if (dfs_mol_init(&m, n)) {
        fprintf(stderr, "dfs_mol_init: %s\n", dfs_last_error());
        exit(2);
    }
    for (int i = 0; i < n; i++) {
        m.z[i] = (int)atoms[i][0];
        for (int d = 0; d < 3; d++) m.pos[3 * i + d] = atoms[i][1 + d];
    }
    return m;
}

static void test_styles(void) {
    uint8_t c[3];
    float rh = dfs_mol_atom_style(1, c);
    CHECK(c[0] == 255 && c[1] == 255 && c[2] == 255, "H white");
    float rc = dfs_mol_atom_style(6, c);
    CHECK(c[0] == c[1] && c[1] == c[2] && c[0] > 100 && c[0] < 200, "C grey: %d", c[0]);
    dfs_mol_atom_style(7, c);
    CHECK(c[2] > 200 && c[0] < 100, "N blue");
    float ro = dfs_mol_atom_style(8, c);
    CHECK(c[0] == 255 && c[1] < 30 && c[2] < 30, "O red");
    dfs_mol_atom_style(9, c);
    CHECK(c[1] > 200 && c[2] < 100, "F green");
    uint8_t c2[3];
    float ru = dfs_mol_atom_style(92, c), rz = dfs_mol_atom_style(0, c2);
    CHECK(ru == rz && ru > 0 && !memcmp(c, c2, 3) && !(c[0] == c[1] && c[1] == c[2]),
          "one fallback, not grey like carbon, for U and for z 0: %d %d %d", c[0], c[1], c[2]);
    CHECK(rh < ro && ro < rc && rh > 0.2f && rc < 0.5f, "radii H %g < O %g < C %g", rh, ro, rc);
}

/* rot is a rotation (orthonormal, det +1) with the spreads in falling order along x, y, z */
static void test_view_axes(void) {
    const double atoms[6][4] = {{6, 0.1, 0.2, 0.3},  {6, 3.1, 1.0, 0.4},  {8, -2.5, -0.8, 0.1},
                                {7, 1.0, -1.5, 0.9}, {1, -0.7, 1.1, -0.6}, {1, 2.0, -0.3, -0.4}};
    dfs_mol m = make(6, atoms);
    float R[9];
    dfs_mol_view_axes(&m, R);
    double worst = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double d = 0;
            for (int k = 0; k < 3; k++) d += (double)R[3 * a + k] * R[3 * b + k];
            worst = max_err(worst, fabs(d - (a == b)));
        }
    double det = R[0] * (R[4] * R[8] - R[5] * R[7]) - R[1] * (R[3] * R[8] - R[5] * R[6]) +
                 R[2] * (R[3] * R[7] - R[4] * R[6]);
    CHECK(worst < 1e-5 && fabs(det - 1) < 1e-5, "rotation: |R R' - I| %.2g, det %.6f", worst, det);
    double var[3] = {0, 0, 0}, mean[3] = {0, 0, 0};
    for (int i = 0; i < 6; i++)
        for (int r = 0; r < 3; r++)
            for (int k = 0; k < 3; k++) mean[r] += R[3 * r + k] * m.pos[3 * i + k] / 6;
    for (int i = 0; i < 6; i++)
        for (int r = 0; r < 3; r++) {
            double q = -mean[r];
            for (int k = 0; k < 3; k++) q += R[3 * r + k] * m.pos[3 * i + k];
            var[r] += q * q;
        }
    CHECK(var[0] >= var[1] && var[1] >= var[2], "spread x %g >= y %g >= z %g", var[0], var[1], var[2]);
    /* the view does not move with the molecule, and a single atom gets the identity */
    for (int i = 0; i < 6; i++) m.pos[3 * i] += 5;
    float R2[9];
    dfs_mol_view_axes(&m, R2);
    double moved = 0;
    for (int k = 0; k < 9; k++) moved = max_err(moved, fabs(R[k] - R2[k]));
    CHECK(moved < 1e-5, "a translation leaves the view (moved %.2g)", moved);
    m.n = 1;
    dfs_mol_view_axes(&m, R2);
    CHECK(R2[0] == 1 && R2[4] == 1 && R2[8] == 1 && R2[1] == 0, "one atom: identity");
    m.n = 6;
    dfs_mol_free(&m);
}

static void test_water(void) {
    enum { PX = 320 };
    static uint8_t img[PX * PX * 3];
    pic p = {img, PX, PX};
    /* water, O-H 0.957 A, H-O-H 104.5 degrees; no bonds given: EDM's are perceived */
    const double atoms[3][4] = {{8, 0, 0, 0}, {1, 0.757, 0.586, 0}, {1, -0.757, 0.586, 0}};
    dfs_mol m = make(3, atoms);
    float xy[6];
    CHECK(dfs_mol_render_panel(&m, NULL, PX, img, xy) == DFS_OK, "water: %s", dfs_last_error());
    CHECK(is_white(at(&p, 0, 0)) && is_white(at(&p, PX - 1, PX - 1)) && is_white(at(&p, PX / 2, 2)),
          "background where no atom is");
    const uint8_t *o = at(&p, (int)xy[0], (int)xy[1]);
    CHECK(reddish(o), "oxygen red at its centre (%.1f, %.1f): %d %d %d", xy[0], xy[1], o[0], o[1], o[2]);
    for (int h = 1; h <= 2; h++) {
        const uint8_t *c = at(&p, (int)xy[2 * h], (int)xy[2 * h + 1]);
        CHECK(greyish(c) && c[0] > 180, "hydrogen %d white-ish at its centre: %d %d %d", h, c[0],
              c[1], c[2]);
    }
    CHECK(fabsf(xy[3] - xy[5]) < 0.5f && fabsf(xy[2] - xy[4]) > 40,
          "principal axes: H...H across the screen (%.1f,%.1f) (%.1f,%.1f)", xy[2], xy[3], xy[4], xy[5]);
    CHECK(fabsf(xy[0] - 0.5f * (xy[2] + xy[4])) < 0.5f && fabsf(xy[1] - xy[3]) > 15,
          "O midway between the H, off their line");
    /* water is 2.1 A across with its balls: drawn at the scale of DFS_MOL_RENDER_MIN_SPAN */
    const double hh = 1.514 * (PX - 2 * (PX / 16)) / DFS_MOL_RENDER_MIN_SPAN;
    CHECK(fabs(fabsf(xy[2] - xy[4]) - hh) < 0.5, "H...H %.1f pixels, %.1f at the largest zoom",
          fabsf(xy[2] - xy[4]), hh);
    /* the O-H bond: a stick, red on the oxygen's half and white on the hydrogen's, past the
     * balls (O 0.35 A, H 0.28 A, bond 0.957 A, halves meet at 0.479 A) */
    const double t1 = 0.415 / 0.957, t2 = 0.58 / 0.957;
    const uint8_t *b1 = at(&p, (int)(xy[0] + t1 * (xy[2] - xy[0])), (int)(xy[1] + t1 * (xy[3] - xy[1])));
    const uint8_t *b2 = at(&p, (int)(xy[0] + t2 * (xy[2] - xy[0])), (int)(xy[1] + t2 * (xy[3] - xy[1])));
    CHECK(reddish(b1), "the bond's oxygen half red: %d %d %d", b1[0], b1[1], b1[2]);
    CHECK(greyish(b2) && !is_white(b2), "the bond's hydrogen half white-ish: %d %d %d", b2[0], b2[1], b2[2]);
    /* pulled apart beyond any bond: nothing between the atoms */
    for (int i = 0; i < 3; i++) m.pos[3 * i + 1] *= 4, m.pos[3 * i] *= 4;
    CHECK(dfs_mol_render_panel(&m, NULL, PX, img, xy) == DFS_OK, "water, stretched");
    const uint8_t *mid = at(&p, (int)(0.5f * (xy[0] + xy[2])), (int)(0.5f * (xy[1] + xy[3])));
    CHECK(is_white(mid), "no bond perceived, nothing drawn: %d %d %d", mid[0], mid[1], mid[2]);
    /* depth cueing: two O atoms, the first nearer, seen through the identity */
    const double two[2][4] = {{8, -1.5, 0, 1}, {8, 1.5, 0, -1}};
    dfs_mol d = make(2, two);
    const float I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    CHECK(dfs_mol_render_panel(&d, I, PX, img, xy) == DFS_OK, "two O");
    const uint8_t *n1 = at(&p, (int)xy[0], (int)xy[1]), *f1 = at(&p, (int)xy[2], (int)xy[3]);
    CHECK(reddish(n1) && reddish(f1) && n1[0] > f1[0] + 20,
          "the nearer oxygen brighter: %d %d %d vs %d %d %d", n1[0], n1[1], n1[2], f1[0], f1[1], f1[2]);
    dfs_mol_free(&d);
    dfs_mol_free(&m);
}

/* Runs of non-background pixels down the column x from y0 to y1 */
static int runs_down(const pic *p, int x, int y0, int y1) {
    int runs = 0, in = 0;
    for (int y = y0; y <= y1; y++) {
        int ink = !is_white(at(p, x, y));
        runs += ink && !in;
        in = ink;
    }
    return runs;
}

static void test_bond_orders(void) {
    enum { PX = 400 };
    static uint8_t img[PX * PX * 3];
    pic p = {img, PX, PX};
    /* O=C=O along x, its bonds given with each order in turn */
    const double atoms[3][4] = {{8, -1.16, 0, 0}, {6, 0, 0, 0}, {8, 1.16, 0, 0}};
    dfs_mol m = make(3, atoms);
    for (int order = 1; order <= 3; order++) {
        const dfs_mol_bond b[2] = {{0, 1, order}, {1, 2, order}};
        dfs_mol_set_bonds(&m, b, 2);
        float xy[6];
        CHECK(dfs_mol_render_panel(&m, NULL, PX, img, xy) == DFS_OK, "CO2 order %d", order);
        /* the column through the middle of the visible C-O stick (C 0.39 A, O 0.35 A) */
        const double t = (0.39 + 0.5 * (1.16 - 0.39 - 0.35)) / 1.16;
        const int x = (int)(xy[2] + t * (xy[4] - xy[2])), y = (int)xy[3];
        CHECK(fabsf(xy[1] - xy[3]) < 0.5f, "CO2 along the screen's x");
        int r = runs_down(&p, x, y - 40, y + 40);
        CHECK(r == order, "bond order %d drawn as %d sticks", order, r);
    }
    dfs_mol_free(&m);
}

/* Five single atoms (O, N, F, C, H) in a grid of 2 columns: 3 rows, the last cell empty. */
static void test_grid(void) {
    enum { PX = 64, N = 5 };
    const int zs[N] = {8, 7, 9, 6, 1};
    dfs_mol mols[N];
    for (int i = 0; i < N; i++) {
        const double a[1][4] = {{zs[i], 0, 0, 0}};
        mols[i] = make(1, a);
    }
    const char *caps[N] = {"O", "nitrogen", "", "a caption far wider than its panel", "H"};
    const char *g1 = P("grid.png"), *g2 = P("grid2.png"), *g3 = P("plain.png");
    CHECK(dfs_mol_render_grid(g1, mols, N, caps, 2, PX, NULL) == DFS_OK, "grid: %s", dfs_last_error());
    CHECK(dfs_mol_render_grid(g2, mols, N, caps, 2, PX, NULL) == DFS_OK, "grid again");
    CHECK(dfs_mol_render_grid(g3, mols, N, NULL, 2, PX, NULL) == DFS_OK, "grid without captions");
    pic a, b, c;
    CHECK(read_png(g1, &a) && read_png(g2, &b) && read_png(g3, &c), "read the grids back");
    CHECK(a.w == b.w && a.h == b.h && !memcmp(a.px, b.px, (size_t)a.w * a.h * 3),
          "the same molecules give the same picture");
    FILE *f1 = fopen(g1, "rb"), *f2 = fopen(g2, "rb");
    int same = f1 && f2;
    while (same) {
        int x = fgetc(f1), y = fgetc(f2);
        same = x == y;
        if (x == EOF) break;
    }
    if (f1) fclose(f1);
    if (f2) fclose(f2);
    CHECK(same, "and the same bytes");
    /* 2 columns x 3 rows of 64-pixel panels with 1-pixel frames; captions add a strip a row */
    CHECK(c.w == 2 * (PX + 1) + 1 && c.h == 3 * (PX + 1) + 1, "plain grid %d x %d", c.w, c.h);
    const int strip = (a.h - c.h) / 3;
    CHECK(a.w == c.w && a.h == c.h + 3 * strip && strip >= 9 && strip < PX,
          "captioned grid %d x %d, strip %d", a.w, a.h, strip);
    /* cell i at column i % 2, row i / 2, its atom at the panel's centre */
    for (int i = 0; i < N; i++) {
        int x0 = (i % 2) * (PX + 1) + 1, y0 = (i / 2) * (PX + strip + 1) + 1;
        const uint8_t *m = at(&a, x0 + PX / 2, y0 + PX / 2);
        int ok = zs[i] == 8 ? reddish(m) : zs[i] == 7 ? bluish(m) : zs[i] == 9 ? greenish(m)
                 : zs[i] == 6 ? greyish(m) && m[0] < 160 : greyish(m) && m[0] > 180;
        CHECK(ok, "cell %d: element %d at its centre: %d %d %d", i, zs[i], m[0], m[1], m[2]);
        CHECK(is_white(at(&a, x0 + 2, y0 + 2)), "cell %d: background in its corner", i);
        /* caption strip: dark ink where a caption is, none where it is empty */
        int ink = 0;
        for (int y = y0 + PX; y < y0 + PX + strip; y++)
            for (int x = x0; x < x0 + PX; x++) ink += at(&a, x, y)[0] < 128;
        CHECK(caps[i][0] ? ink > 5 : ink == 0, "cell %d: caption '%s' has %d ink pixels", i, caps[i], ink);
        CHECK(!is_white(at(&a, x0 - 1, y0 + 5)), "cell %d: framed", i);
    }
    /* the empty sixth cell: white panel and strip */
    int blank = 1;
    for (int y = 2 * (PX + strip + 1) + 1; y < a.h - 1; y++)
        for (int x = PX + 2; x < a.w - 1; x++) blank &= is_white(at(&a, x, y));
    CHECK(blank, "the empty cell is blank");
    /* cols above n: one row */
    free(b.px);
    CHECK(dfs_mol_render_grid(g3, mols, 2, NULL, 9, PX, NULL) == DFS_OK && read_png(g3, &b) &&
              b.w == 2 * (PX + 1) + 1 && b.h == PX + 2,
          "2 molecules in 9 columns: one row of 2");
    free(a.px), free(b.px), free(c.px);
    for (int i = 0; i < N; i++) dfs_mol_free(&mols[i]);
}

/* the run of non-background pixels along row y through x: its length */
static int run_width(const pic *p, int x, int y) {
    int a = x, b = x;
    while (a > 0 && !is_white(at(p, a - 1, y))) a--;
    while (b < p->w - 1 && !is_white(at(p, b + 1, y))) b++;
    return b - a + 1;
}

static void test_trajectory(void) {
    enum { PX = 120, F = 3 };
    /* two O atoms 6, 4 and 2.6 A apart along x: one scale, so the balls keep their size */
    dfs_mol fr[F];
    const double d[F] = {3, 2, 1.3};
    for (int i = 0; i < F; i++) {
        const double a[2][4] = {{8, -d[i], 0, 0}, {8, d[i], 0, 0}};
        fr[i] = make(2, a);
    }
    const char *caps[F] = {"t 2", "t 1", "t 0"};
    const char *path = P("traj.png");
    CHECK(dfs_mol_render_trajectory(path, fr, F, caps, PX, NULL) == DFS_OK, "trajectory: %s",
          dfs_last_error());
    pic p;
    CHECK(read_png(path, &p), "read the trajectory back");
    CHECK(p.w == F * (PX + 1) + 1 && p.h > PX + 2, "one row of %d panels: %d x %d", F, p.w, p.h);
    /* along the middle row of each panel: the two balls, their widths and separation */
    double sep[F];
    int width[F];
    for (int i = 0; i < F; i++) {
        const int x0 = i * (PX + 1) + 1, y = 1 + PX / 2;
        int first = -1, last = -1;
        for (int x = x0; x < x0 + PX; x++)
            if (!is_white(at(&p, x, y))) last = x, first = first < 0 ? x : first;
        width[i] = first >= 0 ? run_width(&p, first, y) : 0;
        sep[i] = last - first + 1 - width[i]; /* centre to centre */
    }
    CHECK(width[0] > 5 && abs(width[0] - width[1]) <= 1 && abs(width[0] - width[2]) <= 1,
          "the balls keep their size: %d %d %d pixels", width[0], width[1], width[2]);
    CHECK(fabs(sep[0] / sep[2] - d[0] / d[2]) < 0.1 && fabs(sep[1] / sep[2] - d[1] / d[2]) < 0.1,
          "the atoms move apart in proportion: %g %g %g pixels", sep[0], sep[1], sep[2]);
    /* the same frames as a grid are each fitted: the balls change size */
    const char *gp = P("trajgrid.png");
    pic g;
    CHECK(dfs_mol_render_grid(gp, fr, F, NULL, F, PX, NULL) == DFS_OK && read_png(gp, &g), "as a grid");
    int w0 = 0, w2 = 0;
    for (int x = 1; x < PX && !w0; x++)
        if (!is_white(at(&g, x, 1 + PX / 2))) w0 = run_width(&g, x, 1 + PX / 2);
    for (int x = 2 * (PX + 1) + 1; x < 3 * (PX + 1) && !w2; x++)
        if (!is_white(at(&g, x, 1 + PX / 2))) w2 = run_width(&g, x, 1 + PX / 2);
    CHECK(w2 > w0 + 2, "a grid fits each panel on its own (balls %d and %d pixels)", w0, w2);
    free(p.px), free(g.px);
    for (int i = 0; i < F; i++) dfs_mol_free(&fr[i]);
}

static void test_bad(void) {
    const double a[2][4] = {{8, 0, 0, 0}, {1, 0.96, 0, 0}};
    dfs_mol m = make(2, a);
    uint8_t img[64 * 64 * 3];
    const char *out = P("bad.png");
    CHECK(dfs_mol_render_grid(out, &m, 0, NULL, 1, 64, NULL) == DFS_ERR_ARG, "no molecules");
    CHECK(dfs_mol_render_grid(out, &m, 1, NULL, 0, 64, NULL) == DFS_ERR_ARG, "0 columns");
    CHECK(dfs_mol_render_grid(out, &m, 1, NULL, 1, DFS_MOL_RENDER_MIN_PX - 1, NULL) == DFS_ERR_ARG,
          "panel too small");
    CHECK(dfs_mol_render_grid(out, &m, 1, NULL, 1, DFS_MOL_RENDER_MAX_PX + 1, NULL) == DFS_ERR_ARG,
          "panel too large");
    CHECK(dfs_mol_render_grid(NULL, &m, 1, NULL, 1, 64, NULL) == DFS_ERR_ARG, "no path");
    CHECK(dfs_mol_render_trajectory(out, &m, 0, NULL, 64, NULL) == DFS_ERR_ARG, "no frames");
    CHECK(dfs_mol_render_panel(&m, NULL, 8, img, NULL) == DFS_ERR_ARG, "panel of 8 pixels");
    /* more panels than a PNG holds, refused before drawing */
    dfs_mol many[17];
    for (int i = 0; i < 17; i++) many[i] = m;
    CHECK(dfs_mol_render_grid(out, many, 17, NULL, 1, 4096, NULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "65536"),
          "too large a grid: %s", dfs_last_error());
    /* a captioned grid with a missing font */
    const char *cap[1] = {"x"};
    CHECK(dfs_mol_render_grid(out, &m, 1, cap, 1, 64, "/nonexistent/font.ttf") == DFS_ERR_IO,
          "missing font: %s", dfs_last_error());
    /* a position that is not finite, named with its molecule and atom */
    dfs_mol ok = make(2, a);
    m.pos[4] = NAN;
    dfs_mol two[2] = {ok, m};
    CHECK(dfs_mol_render_grid(out, two, 2, NULL, 2, 64, NULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "molecule 2") && strstr(dfs_last_error(), "atom 2"),
          "NaN position: %s", dfs_last_error());
    CHECK(dfs_mol_render_trajectory(out, two, 2, NULL, 64, NULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "frame 2"),
          "NaN in a frame: %s", dfs_last_error());
    m.pos[4] = 0;
    /* a bond to an atom that is not there */
    dfs_mol_bond bad = {0, 5, 1};
    m.bonds = &bad, m.n_bonds = 1;
    CHECK(dfs_mol_render_panel(&m, NULL, 64, img, NULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "bond 1"),
          "bond out of range: %s", dfs_last_error());
    m.bonds = NULL, m.n_bonds = 0;
    CHECK(!file_exists(out), "no file written after the failures");
    /* no atoms: an empty panel */
    dfs_mol e;
    dfs_mol_init(&e, 0);
    CHECK(dfs_mol_render_panel(&e, NULL, 64, img, NULL) == DFS_OK && img[0] == 255 &&
              img[3 * (32 * 64 + 32)] == 255,
          "no atoms: an empty panel");
    dfs_mol_free(&e);
    dfs_mol_free(&ok);
    dfs_mol_free(&m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfs_mol_render_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_scene_spheres();
    test_scene_sticks();
    test_scene_supersample();
    test_scene_bands();
    test_scene_bad();
    test_styles();
    test_view_axes();
    test_water();
    test_bond_orders();
    test_grid();
    test_trajectory();
    test_bad();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_mol_render");
}
