/* mol/render.c - ball-and-stick pictures of molecules: a grid of panels with captions, and a
 * row of the frames of one molecule's trajectory.
 *
 * A molecule becomes a scene of the render layer (src/render/scene.c does the drawing): a ball
 * per atom in its Jmol colour, sized 0.23 of the van der Waals radius, and a stick per bond
 * (or two or three thinner ones for double and triple bonds), each half in the colour of its
 * atom. The view is the molecule's principal axes (largest spread across the screen, smallest
 * toward the viewer), found by cyclic Jacobi on the 3 x 3 covariance of the positions. */
#include "diffuse/mol.h"
#include "diffuse/render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- elements ---------------------------------------------------------------------------- */

/* Jmol's colours (jmol.sourceforge.net/jscolors) and Bondi's van der Waals radii (Bondi 1964,
 * "van der Waals volumes and radii", J. Phys. Chem. 68, 441; H 1.20 as Bondi gives it). */
static const struct {
    int z;
    uint8_t rgb[3];
    float vdw;
} STYLES[] = {
    {1, {255, 255, 255}, 1.20f}, /* H */
    {6, {144, 144, 144}, 1.70f}, /* C */
    {7, {48, 80, 248}, 1.55f},   /* N */
    {8, {255, 13, 13}, 1.52f},   /* O */
    {9, {144, 224, 80}, 1.47f},  /* F */
    {15, {255, 128, 0}, 1.80f},  /* P */
    {16, {255, 255, 48}, 1.80f}, /* S */
    {17, {31, 240, 31}, 1.75f},  /* Cl */
    {35, {166, 41, 41}, 1.85f},  /* Br */
    {53, {148, 0, 148}, 1.98f},  /* I */
};
#define BALL 0.23f    /* ball radius / van der Waals radius */
#define OTHER_R 0.40f /* ball radius of the elements not in STYLES */
#define STICK_R 0.13f /* radius of a single bond's stick, Angstrom */

float dfs_mol_atom_style(int z, uint8_t rgb[3]) {
    for (size_t i = 0; i < sizeof STYLES / sizeof STYLES[0]; i++)
        if (STYLES[i].z == z) {
            memcpy(rgb, STYLES[i].rgb, 3);
            return BALL * STYLES[i].vdw;
        }
    rgb[0] = 128, rgb[1] = 136, rgb[2] = 160;
    return OTHER_R;
}

/* ---- the view ---------------------------------------------------------------------------- */

/* Eigenvalues ev and eigenvectors (columns of V) of the symmetric A, by cyclic Jacobi rotations
 * (Golub and Van Loan, "Matrix Computations", 4th ed., Alg. 8.5.3); A is destroyed. */
static void eig3(double A[3][3], double V[3][3], double ev[3]) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) V[i][j] = i == j;
    for (int sweep = 0; sweep < 50; sweep++) {
        double off = fabs(A[0][1]) + fabs(A[0][2]) + fabs(A[1][2]);
        double diag = fabs(A[0][0]) + fabs(A[1][1]) + fabs(A[2][2]);
        if (off <= 1e-15 * diag || off == 0) break;
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                if (A[p][q] == 0) continue;
                /* the rotation (c, s) that zeroes A[p][q] (Alg. 8.5.1) */
                double tau = (A[q][q] - A[p][p]) / (2 * A[p][q]);
                double t = (tau >= 0 ? 1 : -1) / (fabs(tau) + sqrt(1 + tau * tau));
                double c = 1 / sqrt(1 + t * t), s = t * c;
                for (int k = 0; k < 3; k++) { /* A := A J */
                    double akp = A[k][p], akq = A[k][q];
                    A[k][p] = c * akp - s * akq, A[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 3; k++) { /* A := J' A */
                    double apk = A[p][k], aqk = A[q][k];
                    A[p][k] = c * apk - s * aqk, A[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 3; k++) { /* V := V J */
                    double vkp = V[k][p], vkq = V[k][q];
                    V[k][p] = c * vkp - s * vkq, V[k][q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < 3; i++) ev[i] = A[i][i];
}

void dfs_mol_view_axes(const dfs_mol *m, float rot[9]) {
    static const float I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(rot, I, sizeof I);
    if (!m || m->n < 2 || !m->pos) return;
    double mean[3] = {0, 0, 0}, C[3][3] = {{0}};
    for (int i = 0; i < m->n; i++)
        for (int k = 0; k < 3; k++) mean[k] += m->pos[3 * i + k] / m->n;
    for (int i = 0; i < m->n; i++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                C[a][b] += (m->pos[3 * i + a] - mean[a]) * (m->pos[3 * i + b] - mean[b]);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (!isfinite(C[a][b])) return;
    double V[3][3], ev[3];
    eig3(C, V, ev);
    int order[3] = {0, 1, 2}; /* largest eigenvalue first; a stable sort keeps ties in order */
    for (int i = 1; i < 3; i++)
        for (int j = i; j > 0 && ev[order[j]] > ev[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    double R[3][3];
    for (int r = 0; r < 2; r++) {
        int big = 0;
        for (int k = 0; k < 3; k++) {
            R[r][k] = V[k][order[r]];
            if (fabs(R[r][k]) > fabs(R[r][big]) + 1e-12) big = k;
        }
        if (R[r][big] < 0)
            for (int k = 0; k < 3; k++) R[r][k] = -R[r][k];
    }
    R[2][0] = R[0][1] * R[1][2] - R[0][2] * R[1][1];
    R[2][1] = R[0][2] * R[1][0] - R[0][0] * R[1][2];
    R[2][2] = R[0][0] * R[1][1] - R[0][1] * R[1][0];
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 3; k++) rot[3 * r + k] = (float)R[r][k];
}

/* ---- molecule -> scene ------------------------------------------------------------------- */

typedef struct {
    dfs_scene_sphere *sp;
    dfs_scene_stick *st;
    dfs_scene s;
} mol_scene;

static void mol_scene_free(mol_scene *ms) {
    free(ms->sp), free(ms->st);
    memset(ms, 0, sizeof *ms);
}

/* A stick along the stretch t0..t1 of the line from atom a to atom b, moved by off (Angstrom;
 * NULL: not moved), of radius r, coloured ca at its start and cb at its end. */
static void add_stick(mol_scene *ms, const dfs_mol *m, int a, int b, const double off[3], double t0,
                      double t1, float r, const uint8_t ca[3], const uint8_t cb[3]) {
    dfs_scene_stick *k = &ms->st[ms->s.n_sticks++];
    for (int d = 0; d < 3; d++) {
        double p = m->pos[3 * a + d], q = m->pos[3 * b + d], o = off ? off[d] : 0;
        k->a[d] = (float)(p + t0 * (q - p) + o);
        k->b[d] = (float)(p + t1 * (q - p) + o);
    }
    k->r = r;
    memcpy(k->rgb_a, ca, 3);
    memcpy(k->rgb_b, cb, 3);
}

/* The scene of m seen through rot (which orients the parallel sticks of multiple bonds across
 * the screen). Messages start with who. */
static dfs_status mol_scene_build(const dfs_mol *m, const float rot[9], const char *who,
                                  mol_scene *ms) {
    memset(ms, 0, sizeof *ms);
    if (m->n < 0 || m->n > DFS_MOL_MAX_ATOMS || (m->n > 0 && (!m->pos || !m->z)) ||
        m->n_bonds < 0 || (m->n_bonds > 0 && !m->bonds)) {
        dfs_set_error("%s: bad dfs_mol (NULL arrays, or counts out of range)", who);
        return DFS_ERR_ARG;
    }
    for (int i = 0; i < 3 * m->n; i++)
        if (!isfinite(m->pos[i])) {
            dfs_set_error("%s: atom %d has a position that is not finite", who, i / 3 + 1);
            return DFS_ERR_ARG;
        }
    /* bonds: the molecule's own, or EDM's from the distances (perceived on a shallow copy
     * that shares m's atoms and owns only its new bonds) */
    dfs_mol perceived = {0};
    const dfs_mol_bond *bonds = m->bonds;
    int nb = m->n_bonds;
    if (nb == 0 && m->n >= 2) {
        perceived = *m;
        perceived.bonds = NULL;
        dfs_status st = dfs_mol_perceive_bonds(&perceived);
        if (st) return st;
        bonds = perceived.bonds, nb = perceived.n_bonds;
    }
    ms->sp = malloc(((size_t)m->n + 1) * sizeof *ms->sp);
    ms->st = malloc(((size_t)nb * 4 + 1) * sizeof *ms->st); /* at most 4 sticks a bond */
    if (!ms->sp || !ms->st) {
        free(perceived.bonds);
        mol_scene_free(ms);
        dfs_set_error("mol_render: out of memory");
        return DFS_ERR_NOMEM;
    }
    for (int i = 0; i < m->n; i++) {
        dfs_scene_sphere *s = &ms->sp[i];
        s->r = dfs_mol_atom_style(m->z[i], s->rgb);
        for (int d = 0; d < 3; d++) s->c[d] = (float)m->pos[3 * i + d];
    }
    ms->s.n_spheres = m->n;
    const double view[3] = {rot[6], rot[7], rot[8]}; /* toward the viewer, in the molecule's axes */
    for (int j = 0; j < nb; j++)
        if (bonds[j].a < 0 || bonds[j].b < 0 || bonds[j].a >= m->n || bonds[j].b >= m->n ||
            bonds[j].a == bonds[j].b) {
            free(perceived.bonds);
            mol_scene_free(ms);
            dfs_set_error("%s: bond %d joins atoms %d and %d of %d", who, j + 1, bonds[j].a + 1,
                          bonds[j].b + 1, m->n);
            return DFS_ERR_ARG;
        }
    for (int j = 0; j < nb; j++) {
        const int a = bonds[j].a, b = bonds[j].b, order = bonds[j].order;
        const uint8_t *ca = ms->sp[a].rgb, *cb = ms->sp[b].rgb;
        if (order != DFS_BOND_DOUBLE && order != DFS_BOND_TRIPLE && order != DFS_BOND_AROMATIC) {
            add_stick(ms, m, a, b, NULL, 0, 1, STICK_R, ca, cb);
            continue;
        }
        /* a unit vector across the bond and across the line of sight: the parallel sticks
         * then stand side by side on the screen */
        double d[3], x[3], len = 0;
        for (int k = 0; k < 3; k++) d[k] = m->pos[3 * b + k] - m->pos[3 * a + k];
        x[0] = d[1] * view[2] - d[2] * view[1];
        x[1] = d[2] * view[0] - d[0] * view[2];
        x[2] = d[0] * view[1] - d[1] * view[0];
        len = sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
        if (len < 1e-6 * sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])) { /* bond along the view */
            const int ax = fabs(d[0]) < fabs(d[1]); /* the axis x or y less along the bond */
            const double e[3] = {ax, 1 - ax, 0};
            x[0] = d[1] * e[2] - d[2] * e[1];
            x[1] = d[2] * e[0] - d[0] * e[2];
            x[2] = d[0] * e[1] - d[1] * e[0];
            len = sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
        }
        if (!(len > 0)) { /* two atoms at one place: nothing to draw between them */
            continue;
        }
        double o1[3], o2[3];
        if (order == DFS_BOND_TRIPLE) {
            const float r = 0.55f * STICK_R;
            for (int k = 0; k < 3; k++) o1[k] = x[k] / len * 2.6 * r, o2[k] = -o1[k];
            add_stick(ms, m, a, b, NULL, 0, 1, r, ca, cb);
            add_stick(ms, m, a, b, o1, 0, 1, r, ca, cb);
            add_stick(ms, m, a, b, o2, 0, 1, r, ca, cb);
        } else if (order == DFS_BOND_DOUBLE) {
            const float r = 0.65f * STICK_R;
            for (int k = 0; k < 3; k++) o1[k] = x[k] / len * 1.5 * r, o2[k] = -o1[k];
            add_stick(ms, m, a, b, o1, 0, 1, r, ca, cb);
            add_stick(ms, m, a, b, o2, 0, 1, r, ca, cb);
        } else { /* aromatic: a single bond's stick and a dashed thin one beside it, on the
                  * side of the other aromatic bonds at a or b (inside a ring) */
            const float r = 0.45f * STICK_R;
            double side = 0;
            for (int i = 0; i < nb; i++) {
                const dfs_mol_bond *o = &bonds[i];
                if (i == j || o->order != DFS_BOND_AROMATIC) continue;
                int far = o->a == a || o->a == b ? o->b : o->b == a || o->b == b ? o->a : -1;
                if (far < 0 || far == a || far == b) continue; /* not adjacent, or the same pair */
                for (int k = 0; k < 3; k++)
                    side += x[k] * (m->pos[3 * far + k] -
                                    0.5 * (m->pos[3 * a + k] + m->pos[3 * b + k]));
            }
            const double sg = side < 0 ? -1 : 1;
            for (int k = 0; k < 3; k++) o1[k] = sg * x[k] / len * (STICK_R + 1.6 * r);
            add_stick(ms, m, a, b, NULL, 0, 1, 0.8f * STICK_R, ca, cb);
            add_stick(ms, m, a, b, o1, 0.22, 0.36, r, ca, ca);
            add_stick(ms, m, a, b, o1, 0.43, 0.57, r, ca, cb);
            add_stick(ms, m, a, b, o1, 0.64, 0.78, r, cb, cb);
        }
    }
    free(perceived.bonds);
    ms->s.spheres = ms->sp;
    ms->s.sticks = ms->st;
    return DFS_OK;
}

/* ---- panels and grids -------------------------------------------------------------------- */

static int margin_of(int px) { return px / 16; }

/* The view of scenes[0..n) together through rot in a px panel, zoomed no further than
 * DFS_MOL_RENDER_MIN_SPAN allows. */
static dfs_status fit(const dfs_scene *scenes, int n, const float rot[9], int px,
                      dfs_scene_view *v) {
    dfs_status st = dfs_scene_fit(scenes, n, rot, px, px, (float)margin_of(px), v);
    if (st) return st;
    const float most = (px - 2 * margin_of(px)) / DFS_MOL_RENDER_MIN_SPAN;
    if (v->scale > most) v->scale = most;
    return DFS_OK;
}

/* dfs_mol_render_panel, its messages starting with who */
static dfs_status panel(const char *who, const dfs_mol *m, const float *rot, int px,
                        uint8_t *rgb, float *xy) {
    float axes[9];
    if (!rot) dfs_mol_view_axes(m, axes), rot = axes;
    mol_scene ms;
    dfs_status st = mol_scene_build(m, rot, who, &ms);
    if (st) return st;
    dfs_scene_view v;
    st = fit(&ms.s, 1, rot, px, &v);
    if (!st) st = dfs_scene_render(&ms.s, &v, rgb, px, px);
    if (!st && xy)
        for (int i = 0; i < m->n; i++) {
            double q[2] = {0, 0};
            for (int r = 0; r < 2; r++)
                for (int k = 0; k < 3; k++) q[r] += (double)rot[3 * r + k] * m->pos[3 * i + k];
            xy[2 * i] = (float)(0.5 * px + v.scale * (q[0] - v.centre[0]));
            xy[2 * i + 1] = (float)(0.5 * px - v.scale * (q[1] - v.centre[1]));
        }
    mol_scene_free(&ms);
    return st;
}

dfs_status dfs_mol_render_panel(const dfs_mol *m, const float *rot, int px, uint8_t *rgb,
                                float *xy) {
    if (!m || !rgb || px < DFS_MOL_RENDER_MIN_PX || px > DFS_MOL_RENDER_MAX_PX) {
        dfs_set_error("mol_render_panel: bad arguments (panel of %d pixels; %d..%d)", px,
                      DFS_MOL_RENDER_MIN_PX, DFS_MOL_RENDER_MAX_PX);
        return DFS_ERR_ARG;
    }
    return panel("mol_render_panel", m, rot, px, rgb, xy);
}

#define FRAME 1                    /* frame lines between the cells, pixels */
static const uint8_t FRAME_RGB[3] = {214, 214, 214};
#define INK 34                     /* caption grey level */

/* The caption's pixel size for a px panel. */
static int caption_px(int px) {
    int c = px / 13;
    return c < 9 ? 9 : c > 40 ? 40 : c;
}

/* Blend text into the cell strip [x0, x0 + cw) x [y0, y0 + ch) of the RGB grid g (gw wide),
 * centred, in a smaller size if it is too wide, clipped if still too wide. */
static dfs_status draw_caption(uint8_t *g, int gw, int x0, int y0, int cw, int ch,
                               const char *text, const char *font, int size) {
    uint8_t *cov = NULL;
    int tw = 0, th = 0;
    for (;;) {
        dfs_status st = dfs_text_render(font, text, size, &cov, &tw, &th);
        if (st) return st;
        if (tw <= cw - 4 || size <= 8) break;
        free(cov);
        int smaller = size * (cw - 4) / tw;
        size = smaller < size ? (smaller < 8 ? 8 : smaller) : size - 1;
    }
    int x = tw <= cw ? x0 + (cw - tw) / 2 : x0, y = y0 + (ch - th) / 2;
    for (int r = 0; r < th; r++)
        for (int c = 0; c < tw; c++) {
            int gx = x + c, gy = y + r;
            if (gx < x0 || gx >= x0 + cw || gy < y0 || gy >= y0 + ch) continue;
            unsigned a = cov[(size_t)r * tw + c];
            uint8_t *p = g + ((size_t)gy * gw + gx) * 3;
            for (int k = 0; k < 3; k++) p[k] = (uint8_t)((p[k] * (255u - a) + INK * a + 127) / 255);
        }
    free(cov);
    return DFS_OK;
}

/* The grid of n panels behind both public functions. views NULL: each molecule through its
 * own principal axes and fit; else one view (shared) for all. */
static dfs_status write_grid(const char *who, const char *path, const dfs_mol *mols, int n,
                             const char *const *captions, int cols, int px, const char *font,
                             const dfs_scene_view *shared, const mol_scene *scenes) {
    if (!font) font = DFS_DEFAULT_FONT;
    if (cols > n) cols = n;
    const int rows = (n + cols - 1) / cols;
    int strip = 0; /* caption strip height: the font's line height and some air */
    if (captions) {
        uint8_t *cov;
        int tw, th;
        dfs_status st = dfs_text_render(font, "Ag", caption_px(px), &cov, &tw, &th);
        if (st) return st;
        free(cov);
        strip = th + th / 2;
    }
    const int64_t gw = (int64_t)cols * (px + FRAME) + FRAME;
    const int64_t gh = (int64_t)rows * (px + strip + FRAME) + FRAME;
    if (gw > 65536 || gh > 65536) {
        dfs_set_error("%s: %s: %d molecules in %d columns make a picture of %lld x %lld pixels; "
                      "a PNG holds at most 65536 a side",
                      who, path, n, cols, (long long)gw, (long long)gh);
        return DFS_ERR_ARG;
    }
    uint8_t *g = malloc((size_t)gw * (size_t)gh * 3), *pic = malloc((size_t)px * px * 3);
    if (!g || !pic) {
        free(g), free(pic);
        dfs_set_error("%s: %s: out of memory for a %lld x %lld picture", who, path,
                      (long long)gw, (long long)gh);
        return DFS_ERR_NOMEM;
    }
    for (size_t i = 0; i < (size_t)gw * (size_t)gh; i++) memcpy(g + 3 * i, FRAME_RGB, 3);
    dfs_status st = DFS_OK;
    for (int i = 0; i < rows * cols && !st; i++) {
        const int x0 = (i % cols) * (px + FRAME) + FRAME;
        const int y0 = (i / cols) * (px + strip + FRAME) + FRAME;
        char name[96];
        snprintf(name, sizeof name, "%s: molecule %d", who, i + 1);
        if (i < n && shared) st = dfs_scene_render(&scenes[i].s, shared, pic, px, px);
        else if (i < n) st = panel(name, &mols[i], NULL, px, pic, NULL);
        else memset(pic, 255, (size_t)px * px * 3); /* the empty cells of the last row */
        if (st) break;
        for (int y = 0; y < px; y++)
            memcpy(g + ((size_t)(y0 + y) * gw + x0) * 3, pic + (size_t)y * px * 3,
                   (size_t)px * 3);
        for (int y = 0; y < strip; y++)
            memset(g + ((size_t)(y0 + px + y) * gw + x0) * 3, 255, (size_t)px * 3);
        if (i < n && captions && captions[i] && captions[i][0])
            st = draw_caption(g, (int)gw, x0, y0 + px, px, strip, captions[i], font,
                              caption_px(px));
    }
    free(pic);
    if (!st) st = dfs_png_write(path, g, 3, (int)gh, (int)gw);
    free(g);
    return st;
}

static dfs_status check_args(const char *who, const char *path, const dfs_mol *mols, int n,
                             int cols, int px) {
    if (!path || !mols || n < 1 || cols < 1 || px < DFS_MOL_RENDER_MIN_PX ||
        px > DFS_MOL_RENDER_MAX_PX) {
        dfs_set_error("%s: bad arguments (%d molecules, %d columns, panels of %d pixels; "
                      "panels are %d..%d)",
                      who, n, cols, px, DFS_MOL_RENDER_MIN_PX, DFS_MOL_RENDER_MAX_PX);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

dfs_status dfs_mol_render_grid(const char *path, const dfs_mol *mols, int n,
                               const char *const *captions, int cols, int px, const char *font) {
    dfs_status st = check_args("mol_render_grid", path, mols, n, cols, px);
    if (st) return st;
    return write_grid("mol_render_grid", path, mols, n, captions, cols, px, font, NULL, NULL);
}

dfs_status dfs_mol_render_trajectory(const char *path, const dfs_mol *frames, int nframes,
                                     const char *const *captions, int px, const char *font) {
    dfs_status st = check_args("mol_render_trajectory", path, frames, nframes, 1, px);
    if (st) return st;
    float rot[9];
    dfs_mol_view_axes(&frames[nframes - 1], rot);
    mol_scene *ms = calloc((size_t)nframes, sizeof *ms);
    dfs_scene *s = calloc((size_t)nframes, sizeof *s);
    if (!ms || !s) {
        free(ms), free(s);
        dfs_set_error("mol_render_trajectory: out of memory");
        return DFS_ERR_NOMEM;
    }
    for (int i = 0; i < nframes && !st; i++) {
        char name[96];
        snprintf(name, sizeof name, "mol_render_trajectory: frame %d", i + 1);
        if (!(st = mol_scene_build(&frames[i], rot, name, &ms[i]))) s[i] = ms[i].s;
    }
    dfs_scene_view v;
    if (!st) st = fit(s, nframes, rot, px, &v);
    if (!st)
        st = write_grid("mol_render_trajectory", path, frames, nframes, captions, nframes, px,
                        font, &v, ms);
    for (int i = 0; i < nframes; i++) mol_scene_free(&ms[i]);
    free(ms), free(s);
    return st;
}
