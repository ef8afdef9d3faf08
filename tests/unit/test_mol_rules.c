/* test_mol_rules.c - EDM's chemistry rules (src/mol/rules.c) on molecules whose answers are
 * known: bond orders at and around EDM's thresholds, stability of real geometries built from
 * textbook bond lengths (methane, water, ethane, ethene, ethyne, HCN, PF5, benzene in its
 * Kekule and its symmetric form), a broken one (CH3) and a two-fragment set; then the
 * canonical form (src/mol/canon.c): the same molecule with its atoms renumbered gives the same
 * string, different molecules (isomers, and pairs that colour refinement alone cannot tell
 * apart) give different ones; uniqueness and novelty. */
#include "diffuse.h"
#include "check.h"

#include <math.h>
#include <string.h>

#define DEG (3.14159265358979323846 / 180.0)

/* ---- building molecules ------------------------------------------------------------------ */

typedef struct {
    int n;
    int z[64];
    double p[64][3];
} geom;

static int add(geom *g, int z, double x, double y, double zz) {
    g->z[g->n] = z;
    g->p[g->n][0] = x;
    g->p[g->n][1] = y;
    g->p[g->n][2] = zz;
    return g->n++;
}

/* An atom of element z at distance d from atom i along the unit vector u. */
static int add_from(geom *g, int z, int i, double d, const double *u) {
    return add(g, z, g->p[i][0] + d * u[0], g->p[i][1] + d * u[1], g->p[i][2] + d * u[2]);
}

static dfs_mol to_mol(const geom *g, const char *title) {
    dfs_mol m;
    if (dfs_mol_init(&m, g->n) || dfs_mol_set_title(&m, title)) exit(2);
    for (int i = 0; i < g->n; i++) {
        m.z[i] = g->z[i];
        memcpy(&m.pos[3 * i], g->p[i], sizeof g->p[i]);
    }
    return m;
}

/* C-H 1.09 A, tetrahedral (CRC Handbook: methane r(C-H) = 1.087 A). */
static geom methane(void) {
    geom g = {0};
    int c = add(&g, 6, 0, 0, 0);
    static const double s[4][3] = {{1, 1, 1}, {1, -1, -1}, {-1, 1, -1}, {-1, -1, 1}};
    for (int k = 0; k < 4; k++) {
        double u[3] = {s[k][0] / sqrt(3), s[k][1] / sqrt(3), s[k][2] / sqrt(3)};
        add_from(&g, 1, c, 1.09, u);
    }
    return g;
}

/* O-H 0.958 A, H-O-H 104.5 degrees. */
static geom water(void) {
    geom g = {0};
    int o = add(&g, 8, 0, 0, 0);
    for (int k = -1; k <= 1; k += 2) {
        double u[3] = {k * sin(52.25 * DEG), cos(52.25 * DEG), 0};
        add_from(&g, 1, o, 0.958, u);
    }
    return g;
}

/* Staggered ethane: C-C 1.535, C-H 1.094, H-C-C 111 degrees. */
static geom ethane(void) {
    geom g = {0};
    int c[2] = {add(&g, 6, 0, 0, 0.7675), add(&g, 6, 0, 0, -0.7675)};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++) {
            double phi = (120.0 * k + 60.0 * s) * DEG, t = (180.0 - 111.0) * DEG;
            double u[3] = {sin(t) * cos(phi), sin(t) * sin(phi), (s ? -1 : 1) * cos(t)};
            add_from(&g, 1, c[s], 1.094, u);
        }
    return g;
}

/* Ethene: C=C 1.339, C-H 1.086, H-C-C 121.2 degrees, planar. */
static geom ethene(void) {
    geom g = {0};
    int c[2] = {add(&g, 6, 0.6695, 0, 0), add(&g, 6, -0.6695, 0, 0)};
    for (int s = 0; s < 2; s++)
        for (int k = -1; k <= 1; k += 2) {
            double t = (180.0 - 121.2) * DEG;
            double u[3] = {(s ? -1 : 1) * cos(t), k * sin(t), 0};
            add_from(&g, 1, c[s], 1.086, u);
        }
    return g;
}

/* Ethyne: C#C 1.203, C-H 1.063, linear. */
static geom ethyne(void) {
    geom g = {0};
    add(&g, 1, -0.6015 - 1.063, 0, 0);
    add(&g, 6, -0.6015, 0, 0);
    add(&g, 6, 0.6015, 0, 0);
    add(&g, 1, 0.6015 + 1.063, 0, 0);
    return g;
}

/* HCN: H-C 1.065, C#N 1.153, linear. */
static geom hcn(void) {
    geom g = {0};
    add(&g, 1, -1.065, 0, 0);
    add(&g, 6, 0, 0, 0);
    add(&g, 7, 1.153, 0, 0);
    return g;
}

/* PF5, trigonal bipyramid: P-F 1.534 equatorial, 1.577 axial. */
static geom pf5(void) {
    geom g = {0};
    int p = add(&g, 15, 0, 0, 0);
    for (int k = 0; k < 3; k++) {
        double u[3] = {cos(120.0 * k * DEG), sin(120.0 * k * DEG), 0};
        add_from(&g, 9, p, 1.534, u);
    }
    double up[3] = {0, 0, 1}, down[3] = {0, 0, -1};
    add_from(&g, 9, p, 1.577, up);
    add_from(&g, 9, p, 1.577, down);
    return g;
}

/* A six-ring with sides a, b, a, b, a, b and 120-degree angles, each C with an H (C-H 1.084)
 * on the outer bisector. a = b = 1.397 is benzene (D6h); a = 1.34, b = 1.46 a Kekule form. */
static geom benzene(double a, double b) {
    geom g = {0};
    double x = 0, y = 0;
    for (int k = 0; k < 6; k++) {
        add(&g, 6, x, y, 0);
        double l = k % 2 ? b : a;
        x += l * cos(60.0 * k * DEG);
        y += l * sin(60.0 * k * DEG);
    }
    for (int k = 0; k < 6; k++) {
        const double *c = g.p[k], *l = g.p[(k + 5) % 6], *r = g.p[(k + 1) % 6];
        double u[3] = {0, 0, 0}, nu = 0;
        for (int d = 0; d < 3; d++) {
            double dl = c[d] - l[d], dr = c[d] - r[d];
            u[d] = dl / hypot(c[0] - l[0], c[1] - l[1]) + dr / hypot(c[0] - r[0], c[1] - r[1]);
            nu += u[d] * u[d];
        }
        for (int d = 0; d < 3; d++) u[d] /= sqrt(nu);
        add_from(&g, 1, k, 1.084, u);
    }
    return g;
}

/* Planar CH3 (the methyl radical): C has 3 bonds, not 4. */
static geom methyl(void) {
    geom g = {0};
    int c = add(&g, 6, 0, 0, 0);
    for (int k = 0; k < 3; k++) {
        double u[3] = {cos(120.0 * k * DEG), sin(120.0 * k * DEG), 0};
        add_from(&g, 1, c, 1.079, u);
    }
    return g;
}

static dfs_mol_check check_of(const geom *g) {
    dfs_mol m = to_mol(g, "");
    dfs_mol_check c;
    memset(&c, 0xff, sizeof c);
    dfs_status st = dfs_mol_check_edm(&m, &c);
    CHECK(st == DFS_OK, "check: %s", dfs_last_error());
    dfs_mol_free(&m);
    return c;
}

/* The orders EDM's rule gives to the bonded pairs of g, as "i-j:o" joined by spaces. */
static const char *orders(const geom *g) {
    static char s[1024];
    dfs_mol m = to_mol(g, "");
    s[0] = 0;
    if (dfs_mol_perceive_bonds(&m) == DFS_OK)
        for (int k = 0; k < m.n_bonds; k++) {
            size_t l = strlen(s);
            snprintf(s + l, sizeof s - l, "%s%d-%d:%d", k ? " " : "", m.bonds[k].a, m.bonds[k].b,
                     m.bonds[k].order);
        }
    dfs_mol_free(&m);
    return s;
}

/* ---- bond orders ------------------------------------------------------------------------- */

static void test_bond_order(void) {
    /* C-C: single below 154 + 10 pm, double below 134 + 5, triple below 120 + 3 */
    struct {
        int a, b;
        double d;
        int want;
    } t[] = {
        {6, 6, 1.6401, 0}, {6, 6, 1.6399, 1}, {6, 6, 1.3901, 1}, {6, 6, 1.3899, 2},
        {6, 6, 1.2301, 2}, {6, 6, 1.2299, 3}, {6, 6, 0.5, 3},    {6, 7, 1.1899, 3},
        {7, 6, 1.1899, 3}, {6, 8, 1.1599, 3}, {8, 6, 1.2499, 2}, {8, 8, 1.2599, 2},
        {8, 8, 1.0, 2},    {7, 7, 1.1299, 3}, {1, 6, 1.1899, 1}, {1, 6, 1.1901, 0},
        {1, 1, 0.74, 1},   {1, 1, 0.84, 0},   {6, 9, 1.44, 1},   {9, 9, 1.0, 1},
        {1, 8, 1.0, 1},    {15, 8, 1.5, 2},   {8, 15, 1.5, 2},   {15, 16, 1.9, 2},
        {16, 15, 1.9, 2},  {15, 15, 2.0, 1},  {17, 35, 2.2, 1},  {53, 53, 2.7, 1},
        /* EDM lists the C-S double bond under C only */
        {6, 16, 1.6, 2},   {16, 6, 1.6, 1},
        /* pairs with no length in EDM's tables: no bond at any distance */
        {5, 6, 0.5, 0},    {1, 26, 1.0, 0},   {6, 2, 1.0, 0},    {0, 6, 1.0, 0},
        {6, 6, NAN, 0},    {6, 6, INFINITY, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        int o = dfs_mol_bond_order(t[i].a, t[i].b, t[i].d);
        CHECK(o == t[i].want, "order(%d, %d, %g) = %d, want %d", t[i].a, t[i].b, t[i].d, o,
              t[i].want);
    }
    /* allowed valences (EDM's allowed_bonds) */
    CHECK(dfs_mol_valence_allowed(1, 1) && !dfs_mol_valence_allowed(1, 2) &&
              dfs_mol_valence_allowed(6, 4) && !dfs_mol_valence_allowed(6, 3) &&
              dfs_mol_valence_allowed(7, 3) && !dfs_mol_valence_allowed(7, 4) &&
              dfs_mol_valence_allowed(8, 2) && dfs_mol_valence_allowed(9, 1),
          "H 1, C 4, N 3, O 2, F 1");
    CHECK(dfs_mol_valence_allowed(15, 3) && dfs_mol_valence_allowed(15, 5) &&
              !dfs_mol_valence_allowed(15, 4) && dfs_mol_valence_allowed(80, 2) &&
              dfs_mol_valence_allowed(83, 5),
          "P 3 or 5, Hg 1 or 2, Bi 3 or 5");
    CHECK(!dfs_mol_valence_allowed(26, 2) && !dfs_mol_valence_allowed(2, 0) &&
              !dfs_mol_valence_allowed(6, -4) && !dfs_mol_valence_allowed(6, 100),
          "Fe, He: nothing allowed; out of range");
}

/* ---- stability and validity -------------------------------------------------------------- */

/* valid: one fragment, no atom over its valence; valid_edm: no atom over (RDKit's check) */
static void expect(const char *name, const geom *g, int n_stable, int stable, int parts, int over,
                   int valid, int valid_edm) {
    dfs_mol_check c = check_of(g);
    CHECK(c.n_atoms == g->n && c.n_stable == n_stable && c.stable == stable &&
              c.n_fragments == parts && c.n_over == over && c.valid == valid &&
              c.valid_edm == valid_edm,
          "%s: atoms %d, stable %d (want %d), molecule stable %d (want %d), fragments %d "
          "(want %d), over %d (want %d), valid %d (want %d), EDM valid %d (want %d)",
          name, c.n_atoms, c.n_stable, n_stable, c.stable, stable, c.n_fragments, parts, c.n_over,
          over, c.valid, valid, c.valid_edm, valid_edm);
}

static void test_stability(void) {
    geom g[9] = {methane(), water(), ethane(), ethene(), ethyne(), hcn(), pf5(),
                 benzene(1.34, 1.46), methyl()};
    const char *names[9] = {"methane", "water", "ethane", "ethene", "ethyne", "HCN", "PF5",
                            "Kekule benzene", "CH3"};
    for (int k = 0; k < 8; k++) expect(names[k], &g[k], g[k].n, 1, 1, 0, 1, 1);
    /* orders: C=C in ethene, C#C in ethyne, C#N in HCN, alternating in the Kekule ring */
    CHECK(!strcmp(orders(&g[3]), "0-1:2 0-2:1 0-3:1 1-4:1 1-5:1"), "ethene: %s", orders(&g[3]));
    CHECK(!strcmp(orders(&g[4]), "0-1:1 1-2:3 2-3:1"), "ethyne: %s", orders(&g[4]));
    CHECK(!strcmp(orders(&g[5]), "0-1:1 1-2:3"), "HCN: %s", orders(&g[5]));
    CHECK(!strcmp(orders(&g[2]), "0-1:1 0-2:1 0-3:1 0-4:1 1-5:1 1-6:1 1-7:1"), "ethane: %s",
          orders(&g[2]));
    CHECK(!strcmp(orders(&g[7]), "0-1:2 0-5:1 0-6:1 1-2:1 1-7:1 2-3:2 2-8:1 3-4:1 3-9:1 "
                                 "4-5:2 4-10:1 5-11:1"),
          "Kekule benzene: %s", orders(&g[7]));
    /* the methyl radical: its C has 3 bonds, so it is not stable; but it is valid, as RDKit
     * gives an atom under its valence implicit hydrogens (here CH4) */
    expect("CH3", &g[8], 3, 0, 1, 0, 1, 1);
    /* benzene with six equal C-C bonds of 1.397 A: 139.7 pm is not below 134 + 5, so EDM's
     * rule sees six single C-C bonds and every C with valence 3 (a known blind spot of the
     * rule for aromatic rings; QM9 has few of them) */
    geom d6h = benzene(1.397, 1.397);
    expect("benzene D6h", &d6h, 6, 0, 1, 0, 1, 1);
    /* two molecules in one: every atom stable, but two fragments: not valid; EDM's validity
     * keeps the largest fragment */
    geom two = methane();
    geom w = water();
    for (int i = 0; i < w.n; i++) add(&two, w.z[i], w.p[i][0] + 10, w.p[i][1], w.p[i][2]);
    expect("methane + water", &two, two.n, 1, 2, 0, 0, 1);
    /* one atom (under its valence: valid, as H2 to RDKit); no atoms (EDM: stable; neither
     * valid) */
    geom h = {0};
    add(&h, 1, 0, 0, 0);
    expect("a lone H", &h, 0, 0, 1, 0, 1, 1);
    geom none = {0};
    expect("no atoms", &none, 0, 1, 0, 0, 0, 0);
    /* over the valence: CH5 (a fifth H 1.09 A from the C) and NH4 without its charge (EDM
     * ignores charges, and RDKit refuses a neutral N with 4 bonds): invalid, in any reading;
     * beside water, still invalid to EDM */
    geom ch5 = methane();
    const double back[3] = {-1 / sqrt(3), -1 / sqrt(3), -1 / sqrt(3)}; /* 1.26 A from 3 H */
    add_from(&ch5, 1, 0, 1.09, back);
    {
        dfs_mol_check c5 = check_of(&ch5);
        CHECK(c5.n_over == 1 && !c5.valid && !c5.valid_edm && c5.n_fragments == 1,
              "CH5: over %d, valid %d, EDM valid %d", c5.n_over, c5.valid, c5.valid_edm);
    }
    geom nh4 = methane();
    nh4.z[0] = 7;
    expect("NH4 (no charge)", &nh4, 4, 0, 1, 1, 0, 0);
    for (int i = 0; i < w.n; i++) add(&nh4, w.z[i], w.p[i][0] + 10, w.p[i][1], w.p[i][2]);
    expect("NH4 beside water", &nh4, 7, 0, 2, 1, 0, 0);
    /* EDM's two metrics over a set: atom stability = stable atoms / atoms, molecule
     * stability = stable molecules / molecules */
    const geom *set[3] = {&g[0], &g[8], &d6h};
    int atoms = 0, stable_atoms = 0, stable_mols = 0;
    for (int k = 0; k < 3; k++) {
        dfs_mol_check c = check_of(set[k]);
        atoms += c.n_atoms;
        stable_atoms += c.n_stable;
        stable_mols += c.stable;
    }
    CHECK(atoms == 21 && stable_atoms == 14 && stable_mols == 1,
          "methane, CH3, D6h benzene: %d of %d atoms and %d of 3 molecules stable", stable_atoms,
          atoms, stable_mols);
    /* the bonds of a file: benzene with aromatic bonds (1.5 each) is stable, NH4+ is not
     * (charges are not counted) */
    dfs_mol b = to_mol(&d6h, "benzene");
    dfs_mol_bond bb[12];
    for (int k = 0; k < 6; k++) {
        bb[k] = (dfs_mol_bond){k, (k + 1) % 6, DFS_BOND_AROMATIC};
        bb[6 + k] = (dfs_mol_bond){k, 6 + k, DFS_BOND_SINGLE};
    }
    dfs_mol_set_bonds(&b, bb, 12);
    dfs_mol_check c;
    CHECK(dfs_mol_check_bonds(&b, &c) == DFS_OK && c.stable && c.valid && c.n_stable == 12,
          "aromatic benzene: %d stable", c.n_stable);
    bb[0].order = DFS_BOND_SINGLE; /* C0 and C1 now 3.5 */
    dfs_mol_set_bonds(&b, bb, 12);
    CHECK(dfs_mol_check_bonds(&b, &c) == DFS_OK && !c.stable && c.n_stable == 10,
          "one aromatic bond made single: %d stable", c.n_stable);
    dfs_mol_free(&b);
}

/* ---- canonical forms --------------------------------------------------------------------- */

/* A graph: the heavy atoms' one-letter symbols ("CCO"), bonds (a, b, order), then h[i]
 * hydrogens bonded to heavy atom i (h may be NULL). */
static dfs_mol graph(const char *elems, const int (*bonds)[3], int nb, const int *h) {
    int heavy = (int)strlen(elems), n = heavy;
    for (int i = 0; h && i < heavy; i++) n += h[i];
    dfs_mol m;
    if (dfs_mol_init(&m, n)) exit(2);
    dfs_mol_bond *b = malloc(sizeof *b * (size_t)(nb + n + 1));
    for (int i = 0; i < heavy; i++) m.z[i] = dfs_element_z(elems + i, 1);
    for (int k = 0; k < nb; k++) b[k] = (dfs_mol_bond){bonds[k][0], bonds[k][1], bonds[k][2]};
    int at = heavy, k = nb;
    for (int i = 0; h && i < heavy; i++)
        for (int j = 0; j < h[i]; j++) {
            m.z[at] = 1;
            b[k++] = (dfs_mol_bond){i, at++, 1};
        }
    if (dfs_mol_set_bonds(&m, b, k)) {
        fprintf(stderr, "graph: %s\n", dfs_last_error());
        exit(2);
    }
    free(b);
    return m;
}

/* m with its atoms renumbered at random, its bonds shuffled and each one's ends swapped at
 * random. */
static dfs_mol shuffled(const dfs_mol *m, dfs_rng *r) {
    dfs_mol s;
    if (dfs_mol_init(&s, m->n)) exit(2);
    int *perm = malloc(sizeof *perm * (size_t)(m->n + 1));
    for (int i = 0; i < m->n; i++) perm[i] = i;
    for (int i = m->n - 1; i > 0; i--) {
        int j = (int)dfs_rng_below(r, (uint32_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < m->n; i++) {
        s.z[perm[i]] = m->z[i];
        s.charge[perm[i]] = m->charge[i];
        memcpy(&s.pos[3 * perm[i]], &m->pos[3 * i], 3 * sizeof(double));
    }
    dfs_mol_bond *b = malloc(sizeof *b * (size_t)(m->n_bonds + 1));
    for (int k = 0; k < m->n_bonds; k++) {
        int x = perm[m->bonds[k].a], y = perm[m->bonds[k].b];
        b[k] = dfs_rng_below(r, 2) ? (dfs_mol_bond){x, y, m->bonds[k].order}
                                   : (dfs_mol_bond){y, x, m->bonds[k].order};
    }
    for (int k = m->n_bonds - 1; k > 0; k--) {
        int j = (int)dfs_rng_below(r, (uint32_t)k + 1);
        dfs_mol_bond t = b[k];
        b[k] = b[j];
        b[j] = t;
    }
    dfs_mol_set_bonds(&s, b, m->n_bonds);
    free(b);
    free(perm);
    return s;
}

static char *form_of(const dfs_mol *m) {
    char *f = NULL;
    dfs_status st = dfs_mol_canonical(m, &f);
    CHECK(st == DFS_OK && f, "canonical: %s", dfs_last_error());
    return f ? f : calloc(1, 1);
}

/* The form of m is the same under 8 renumberings, and starts with prefix. Returns it. */
static char *stable_form(const char *name, const dfs_mol *m, const char *prefix, dfs_rng *r) {
    char *f = form_of(m);
    CHECK(!strncmp(f, prefix, strlen(prefix)), "%s: form \"%.80s\" does not start with %s", name,
          f, prefix);
    int same = 1;
    for (int t = 0; t < 8; t++) {
        dfs_mol s = shuffled(m, r);
        char *g = form_of(&s);
        if (strcmp(f, g)) {
            same = 0;
            fprintf(stderr, "%s renumbered:\n  %s\n  %s\n", name, f, g);
        }
        free(g);
        dfs_mol_free(&s);
    }
    CHECK(same, "%s: the same form under renumbering", name);
    return f;
}

static void test_canonical(void) {
    dfs_rng r;
    dfs_rng_seed(&r, 17);
    /* water, by hand: H first (ranked by element), O last */
    geom wg = water();
    dfs_mol w = to_mol(&wg, "");
    dfs_mol_perceive_bonds(&w);
    char *f = stable_form("water", &w, "v1:", &r);
    CHECK(!strcmp(f, "v1:H,H,O;0-2:1,1-2:1"), "water: %s", f);
    free(f);
    dfs_mol_free(&w);
    /* molecules from geometries, through EDM's bonds */
    geom gs[5] = {methane(), ethane(), ethene(), benzene(1.34, 1.46), hcn()};
    char *gf[5];
    for (int k = 0; k < 5; k++) {
        dfs_mol m = to_mol(&gs[k], "");
        dfs_mol_perceive_bonds(&m);
        gf[k] = stable_form("geometry", &m, "v1:", &r);
        dfs_mol_free(&m);
    }
    for (int a = 0; a < 5; a++)
        for (int b = a + 1; b < 5; b++)
            CHECK(strcmp(gf[a], gf[b]), "molecules %d and %d differ", a, b);
    for (int k = 0; k < 5; k++) free(gf[k]);

    /* isomers: ethanol and dimethyl ether (C2H6O); propan-1-ol and propan-2-ol (C3H8O) */
    static const int eth[][3] = {{0, 1, 1}, {1, 2, 1}}, dme[][3] = {{0, 2, 1}, {1, 2, 1}};
    static const int h_eth[] = {3, 2, 1}, h_dme[] = {3, 3, 0};
    dfs_mol m1 = graph("CCO", eth, 2, h_eth), m2 = graph("CCO", dme, 2, h_dme);
    static const int p1[][3] = {{0, 1, 1}, {1, 2, 1}, {2, 3, 1}},
                     p2[][3] = {{0, 1, 1}, {1, 2, 1}, {1, 3, 1}};
    static const int h_p1[] = {3, 2, 2, 1}, h_p2[] = {3, 1, 3, 1};
    dfs_mol m3 = graph("CCCO", p1, 3, h_p1), m4 = graph("CCCO", p2, 3, h_p2);
    char *f1 = stable_form("ethanol", &m1, "v1:", &r), *f2 = stable_form("ether", &m2, "v1:", &r);
    char *f3 = stable_form("propanol", &m3, "v1:", &r);
    char *f4 = stable_form("isopropanol", &m4, "v1:", &r);
    CHECK(strcmp(f1, f2) && strcmp(f3, f4), "isomers differ:\n %s\n %s\n %s\n %s", f1, f2, f3, f4);
    /* bond orders and charges count: ethanol with a double C=C bond is another graph */
    static const int eth2[][3] = {{0, 1, 2}, {1, 2, 1}};
    dfs_mol m5 = graph("CCO", eth2, 2, h_eth);
    char *f5 = form_of(&m5);
    m1.charge[2] = -1;
    char *f6 = form_of(&m1);
    CHECK(strcmp(f1, f5) && strcmp(f1, f6) && strstr(f6, "O-1"), "orders and charges: %s %s",
          f5, f6);

    /* pairs that colour refinement (1-WL) alone cannot tell apart, since every atom sees the
     * same kinds of neighbours: cyclohexane and two cyclopropanes (C6H12); decalin and
     * bicyclopentyl (C10H18) */
    static const int hex[][3] = {{0, 1, 1}, {1, 2, 1}, {2, 3, 1}, {3, 4, 1}, {4, 5, 1}, {5, 0, 1}};
    static const int tri[][3] = {{0, 1, 1}, {1, 2, 1}, {2, 0, 1}, {3, 4, 1}, {4, 5, 1}, {5, 3, 1}};
    static const int h2[] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
    dfs_mol c6 = graph("CCCCCC", hex, 6, h2), c33 = graph("CCCCCC", tri, 6, h2);
    static const int dec[][3] = {{0, 1, 1}, {1, 2, 1}, {2, 3, 1}, {3, 4, 1}, {4, 5, 1},
                                 {5, 0, 1}, {5, 6, 1}, {6, 7, 1}, {7, 8, 1}, {8, 9, 1},
                                 {9, 4, 1}};
    static const int bcp[][3] = {{0, 1, 1}, {1, 2, 1}, {2, 3, 1}, {3, 4, 1}, {4, 0, 1},
                                 {5, 6, 1}, {6, 7, 1}, {7, 8, 1}, {8, 9, 1}, {9, 5, 1},
                                 {0, 5, 1}};
    static const int h_dec[] = {2, 2, 2, 2, 1, 1, 2, 2, 2, 2};
    static const int h_bcp[] = {1, 2, 2, 2, 2, 1, 2, 2, 2, 2};
    dfs_mol d1 = graph("CCCCCCCCCC", dec, 11, h_dec), d2 = graph("CCCCCCCCCC", bcp, 11, h_bcp);
    char *fc6 = stable_form("cyclohexane", &c6, "v1:", &r);
    char *fc33 = stable_form("2 cyclopropanes", &c33, "v1:", &r);
    char *fd1 = stable_form("decalin", &d1, "v1:", &r);
    char *fd2 = stable_form("bicyclopentyl", &d2, "v1:", &r);
    CHECK(strcmp(fc6, fc33), "cyclohexane vs two cyclopropanes: %s", fc6);
    CHECK(strcmp(fd1, fd2), "decalin vs bicyclopentyl: %s", fd1);

    /* symmetric molecules still get an exact form: neopentane (3!^4 4! automorphisms, pruned
     * by the twins), cubane (48) */
    static const int neo[][3] = {{0, 1, 1}, {0, 2, 1}, {0, 3, 1}, {0, 4, 1}};
    static const int h_neo[] = {0, 3, 3, 3, 3};
    dfs_mol ne = graph("CCCCC", neo, 4, h_neo);
    int cb[12][3], e = 0;
    for (int v = 0; v < 8; v++)
        for (int bit = 1; bit < 8; bit <<= 1)
            if (v < (v ^ bit)) cb[e][0] = v, cb[e][1] = v ^ bit, cb[e++][2] = 1;
    static const int h1[] = {1, 1, 1, 1, 1, 1, 1, 1};
    dfs_mol cu = graph("CCCCCCCC", (const int(*)[3])cb, 12, h1);
    char *fne = stable_form("neopentane", &ne, "v1:", &r);
    char *fcu = stable_form("cubane", &cu, "v1:", &r);
    free(fne);
    free(fcu);

    /* the documented limit: twenty disjoint C3 rings and ten disjoint C6 rings (no H) have
     * search trees far beyond DFS_MOL_CANON_MAX_NODES, so both get the colour-refinement
     * summary, and it is the same for both although they are not isomorphic */
    int big[60][3];
    for (int t = 0; t < 20; t++)
        for (int k = 0; k < 3; k++)
            big[3 * t + k][0] = 3 * t + k, big[3 * t + k][1] = 3 * t + (k + 1) % 3,
                           big[3 * t + k][2] = 1;
    char e60[61];
    memset(e60, 'C', 60);
    e60[60] = 0;
    dfs_mol t20 = graph(e60, (const int(*)[3])big, 60, NULL);
    for (int t = 0; t < 10; t++)
        for (int k = 0; k < 6; k++)
            big[6 * t + k][0] = 6 * t + k, big[6 * t + k][1] = 6 * t + (k + 1) % 6,
                           big[6 * t + k][2] = 1;
    dfs_mol h10 = graph(e60, (const int(*)[3])big, 60, NULL);
    char *ft = form_of(&t20), *fh = form_of(&h10);
    CHECK(!strncmp(ft, "wl:", 3) && !strcmp(ft, fh), "the fallback: %s / %s", ft, fh);
    dfs_mol ts = shuffled(&t20, &r);
    char *fts = form_of(&ts);
    CHECK(!strcmp(ft, fts), "the fallback is the same under renumbering: %s", fts);

    /* uniqueness and novelty */
    const char *forms[7] = {f1, f2, f1, NULL, f3, f2, f4};
    uint8_t first[7], novel[7];
    int nu = -1, nn = -1;
    CHECK(dfs_mol_unique(forms, 7, &nu, first) == DFS_OK && nu == 4, "unique: %d", nu);
    CHECK(first[0] && first[1] && !first[2] && !first[3] && first[4] && !first[5] && first[6],
          "first occurrences");
    const char *train[3] = {f2, f4, fc6};
    CHECK(dfs_mol_novel(forms, 7, train, 3, &nn, novel) == DFS_OK && nn == 3, "novel: %d", nn);
    CHECK(novel[0] && !novel[1] && novel[2] && !novel[3] && novel[4] && !novel[5] && !novel[6],
          "novel flags");
    CHECK(dfs_mol_unique(forms, 0, &nu, NULL) == DFS_OK && nu == 0, "no forms");
    CHECK(dfs_mol_novel(forms, 3, NULL, 0, &nn, NULL) == DFS_OK && nn == 3,
          "everything is novel against no training set");

    /* edge cases: no atoms; bad bonds refused */
    dfs_mol empty;
    dfs_mol_init(&empty, 0);
    char *fe = form_of(&empty);
    CHECK(!strcmp(fe, "v1:;"), "no atoms: \"%s\"", fe);
    free(fe);
    dfs_mol_free(&empty);
    dfs_mol_bond bad = {0, 7, 1};
    dfs_mol hm = graph("C", NULL, 0, NULL);
    hm.bonds = &bad;
    hm.n_bonds = 1;
    char *fb = NULL;
    CHECK(dfs_mol_canonical(&hm, &fb) == DFS_ERR_ARG && !fb, "a bond to a missing atom");
    hm.bonds = NULL;
    hm.n_bonds = 0;
    dfs_mol_free(&hm);

    char *all[] = {f1, f2, f3, f4, f5, f6, fc6, fc33, fd1, fd2, ft, fh, fts};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    dfs_mol *ms[] = {&m1, &m2, &m3, &m4, &m5, &c6, &c33, &d1, &d2, &ne, &cu, &t20, &h10, &ts};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++) dfs_mol_free(ms[i]);
}

/* Against brute force: random labelled graphs on 6 atoms (C, N; orders 1-2), forms equal
 * exactly when one of the 720 renumberings maps one graph onto the other. Half the pairs are
 * a graph and a renumbered copy; a quarter a graph and a renumbered copy with two bonds
 * swapped so that every atom keeps its element, degree and valence (non-isomorphic pairs
 * that a weak invariant would confuse, counted as "hard"); a quarter two random graphs. */
static int iso6(const dfs_mol *a, const dfs_mol *b) {
    int A[6][6] = {{0}}, B[6][6] = {{0}}, p[6] = {0, 1, 2, 3, 4, 5};
    for (int k = 0; k < a->n_bonds; k++)
        A[a->bonds[k].a][a->bonds[k].b] = A[a->bonds[k].b][a->bonds[k].a] = a->bonds[k].order;
    for (int k = 0; k < b->n_bonds; k++)
        B[b->bonds[k].a][b->bonds[k].b] = B[b->bonds[k].b][b->bonds[k].a] = b->bonds[k].order;
    for (;;) { /* every permutation, in lexicographic order */
        int ok = 1;
        for (int i = 0; i < 6 && ok; i++) {
            ok = a->z[i] == b->z[p[i]];
            for (int j = 0; j < 6 && ok; j++) ok = A[i][j] == B[p[i]][p[j]];
        }
        if (ok) return 1;
        int i = 4;
        while (i >= 0 && p[i] > p[i + 1]) i--;
        if (i < 0) return 0;
        int j = 5;
        while (p[j] < p[i]) j--;
        int t = p[i];
        p[i] = p[j];
        p[j] = t;
        for (int l = i + 1, r = 5; l < r; l++, r--) t = p[l], p[l] = p[r], p[r] = t;
    }
}

static dfs_mol random6(dfs_rng *r) {
    dfs_mol m;
    if (dfs_mol_init(&m, 6)) exit(2);
    static const int el[3] = {6, 6, 7};
    dfs_mol_bond b[15];
    int nb = 0;
    for (int i = 0; i < 6; i++) m.z[i] = el[dfs_rng_below(r, 3)];
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            if (dfs_rng_below(r, 5) < 2)
                b[nb++] = (dfs_mol_bond){i, j, 1 + (dfs_rng_below(r, 4) == 0)};
    dfs_mol_set_bonds(&m, b, nb);
    return m;
}

/* The sorted (element, degree, valence) of the atoms, as one comparable key. */
static void atom_key(const dfs_mol *m, long *key) {
    for (int i = 0; i < 6; i++) {
        int deg = 0, val = 0;
        for (int k = 0; k < m->n_bonds; k++)
            if (m->bonds[k].a == i || m->bonds[k].b == i) deg++, val += m->bonds[k].order;
        key[i] = m->z[i] * 10000L + deg * 100 + val;
    }
    for (int i = 1; i < 6; i++)
        for (int j = i; j > 0 && key[j - 1] > key[j]; j--) {
            long t = key[j];
            key[j] = key[j - 1];
            key[j - 1] = t;
        }
}

/* a with two bonds a-b, c-d of the same order replaced by a-d, c-b (when those are new):
 * every atom keeps its element, degree and valence. */
static dfs_mol swapped(const dfs_mol *m, dfs_rng *r) {
    dfs_mol s;
    if (dfs_mol_copy(&s, m)) exit(2);
    for (int tries = 0; tries < 50 && m->n_bonds >= 2; tries++) {
        int i = (int)dfs_rng_below(r, (uint32_t)m->n_bonds);
        int j = (int)dfs_rng_below(r, (uint32_t)m->n_bonds);
        dfs_mol_bond x = s.bonds[i], y = s.bonds[j];
        if (i == j || x.order != y.order || x.a == y.a || x.a == y.b || x.b == y.a ||
            x.b == y.b)
            continue;
        int taken = 0;
        for (int k = 0; k < s.n_bonds; k++) {
            dfs_mol_bond e = s.bonds[k];
            taken |= (e.a == x.a && e.b == y.b) || (e.a == y.b && e.b == x.a) ||
                     (e.a == y.a && e.b == x.b) || (e.a == x.b && e.b == y.a);
        }
        if (taken) continue;
        s.bonds[i].b = y.b;
        s.bonds[j].b = x.b;
        break;
    }
    return s;
}

static void test_canonical_brute_force(void) {
    dfs_rng r;
    dfs_rng_seed(&r, 2022);
    int agree = 0, iso = 0, hard = 0, pairs = 400;
    for (int t = 0; t < pairs; t++) {
        dfs_mol a = random6(&r), b;
        if (t % 2) {
            b = shuffled(&a, &r);
        } else if (t % 4) {
            dfs_mol w = swapped(&a, &r);
            b = shuffled(&w, &r);
            dfs_mol_free(&w);
        } else {
            b = random6(&r);
        }
        char *fa = form_of(&a), *fb = form_of(&b);
        int same = !strcmp(fa, fb), is = iso6(&a, &b);
        long ka[6], kb[6];
        atom_key(&a, ka);
        atom_key(&b, kb);
        iso += is;
        hard += !is && !memcmp(ka, kb, sizeof ka);
        agree += same == is;
        if (same != is) fprintf(stderr, "disagree: iso %d\n  %s\n  %s\n", is, fa, fb);
        free(fa);
        free(fb);
        dfs_mol_free(&a);
        dfs_mol_free(&b);
    }
    CHECK(agree == pairs, "forms equal exactly when isomorphic: %d of %d pairs", agree, pairs);
    CHECK(iso >= pairs / 2 && hard > 0, "%d isomorphic pairs, %d others with the same atoms",
          iso, hard);
}

int main(void) {
    test_bond_order();
    test_stability();
    test_canonical();
    test_canonical_brute_force();
    return check_summary("test_mol_rules");
}
