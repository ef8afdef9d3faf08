/* mol/rules.c - EDM's chemistry rules: bond orders from distances, allowed valences, atom and
 * molecule stability, and validity (no atom over its valence; one fragment for this project's).
 *
 * Source: Hoogeboom, Satorras, Vignac, Welling 2022, "Equivariant Diffusion for Molecule
 * Generation in 3D" (ICML), Sec. 5.1 and App. C; the rules are those of its code,
 * github.com/ehoogeboom/e3_diffusion_for_molecules, qm9/bond_analyze.py (bonds1, bonds2,
 * bonds3, margin1..3, allowed_bonds, get_bond_order) and qm9/analyze.py (check_stability),
 * re-derived here from their description. EDM's bond lengths come from
 * wiredchemist.com/chemistry/data/bond_energies_lengths.html and chemistry-reference.com. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mol_internal.h"

/* Bond lengths in pm of unordered element pairs (za <= zb). */
typedef struct {
    unsigned char za, zb;
    short pm;
} bond_len;

/* EDM's bonds1: typical single-bond lengths (the table is symmetric). */
static const bond_len SINGLE[] = {
    {1, 1, 74},    {1, 5, 119},   {1, 6, 109},   {1, 7, 101},   {1, 8, 96},    {1, 9, 92},
    {1, 14, 148},  {1, 15, 144},  {1, 16, 134},  {1, 17, 127},  {1, 33, 152},  {1, 35, 141},
    {1, 53, 161},  {5, 17, 175},  {6, 6, 154},   {6, 7, 147},   {6, 8, 143},   {6, 9, 135},
    {6, 14, 185},  {6, 15, 184},  {6, 16, 182},  {6, 17, 177},  {6, 35, 194},  {6, 53, 214},
    {7, 7, 145},   {7, 8, 140},   {7, 9, 136},   {7, 15, 177},  {7, 16, 168},  {7, 17, 175},
    {7, 35, 214},  {7, 53, 222},  {8, 8, 148},   {8, 9, 142},   {8, 14, 163},  {8, 15, 163},
    {8, 16, 151},  {8, 17, 164},  {8, 35, 172},  {8, 53, 194},  {9, 9, 142},   {9, 14, 160},
    {9, 15, 156},  {9, 16, 158},  {9, 17, 166},  {9, 35, 178},  {9, 53, 187},  {14, 14, 233},
    {14, 16, 200}, {14, 17, 202}, {14, 35, 215}, {14, 53, 243}, {15, 15, 221}, {15, 16, 210},
    {15, 17, 203}, {15, 35, 222}, {16, 16, 204}, {16, 17, 207}, {16, 35, 225}, {16, 53, 234},
    {17, 17, 199}, {17, 35, 214}, {35, 35, 228}, {53, 53, 266},
};

/* EDM's bonds2 (double bonds). It lists C-S under C only: the S-C lookup finds nothing, so
 * the pair (C, S) may be double and (S, C) may not. DOUBLE_ONE_WAY marks that entry. */
static const bond_len DOUBLE[] = {
    {6, 6, 134}, {6, 7, 129}, {6, 8, 120}, {6, 16, 160}, {7, 7, 125},
    {7, 8, 121}, {8, 8, 121}, {8, 15, 150}, {15, 16, 186},
};
#define DOUBLE_ONE_WAY_A 6  /* C */
#define DOUBLE_ONE_WAY_B 16 /* S */

/* EDM's bonds3 (triple bonds). */
static const bond_len TRIPLE[] = {{6, 6, 120}, {6, 7, 116}, {6, 8, 113}, {7, 7, 110}};

/* EDM's margin1, margin2, margin3 in pm, "tuned to maximize the stability of the QM9 true
 * samples" (bond_analyze.py). */
#define MARGIN1 10
#define MARGIN2 5
#define MARGIN3 3

/* The length of the pair in table t, or -1 when it has none. */
static int lookup(const bond_len *t, int nt, int za, int zb) {
    int a = za < zb ? za : zb, b = za < zb ? zb : za;
    for (int i = 0; i < nt; i++)
        if (t[i].za == a && t[i].zb == b) return t[i].pm;
    return -1;
}

#define COUNT(t) ((int)(sizeof(t) / sizeof((t)[0])))

/* get_bond_order with check_exists = True (bond_analyze.py): a pair with no single-bond length
 * has order 0 (EDM's QM9 path, which does not check, would raise KeyError instead; no QM9
 * pair lacks one). */
int dfs_mol_bond_order(int za, int zb, double d) {
    double pm = 100.0 * d; /* Angstrom to pm, as EDM's "distance = 100 * distance" */
    int l1 = lookup(SINGLE, COUNT(SINGLE), za, zb);
    if (l1 < 0 || !(pm < l1 + MARGIN1)) return 0;
    int l2 = lookup(DOUBLE, COUNT(DOUBLE), za, zb);
    if (za == DOUBLE_ONE_WAY_B && zb == DOUBLE_ONE_WAY_A) l2 = -1;
    if (l2 < 0 || !(pm < l2 + MARGIN2)) return 1;
    int l3 = lookup(TRIPLE, COUNT(TRIPLE), za, zb);
    if (l3 < 0 || !(pm < l3 + MARGIN3)) return 2;
    return 3;
}

/* EDM's allowed_bonds: the valences each element may have (bit v set = valence v allowed). */
static unsigned allowed_mask(int z) {
    switch (z) {
    case 1: return 1u << 1;                  /* H */
    case 5: return 1u << 3;                  /* B */
    case 6: return 1u << 4;                  /* C */
    case 7: return 1u << 3;                  /* N */
    case 8: return 1u << 2;                  /* O */
    case 9: return 1u << 1;                  /* F */
    case 13: return 1u << 3;                 /* Al */
    case 14: return 1u << 4;                 /* Si */
    case 15: return 1u << 3 | 1u << 5;       /* P */
    case 16: return 1u << 4;                 /* S */
    case 17: return 1u << 1;                 /* Cl */
    case 33: return 1u << 3;                 /* As */
    case 35: return 1u << 1;                 /* Br */
    case 53: return 1u << 1;                 /* I */
    case 80: return 1u << 1 | 1u << 2;       /* Hg */
    case 83: return 1u << 3 | 1u << 5;       /* Bi */
    default: return 0;
    }
}

int dfs_mol_valence_allowed(int z, int valence) {
    return valence >= 0 && valence < 32 && (allowed_mask(z) >> valence & 1u);
}

static double dist(const double *p, int i, int j) {
    double dx = p[3 * i] - p[3 * j], dy = p[3 * i + 1] - p[3 * j + 1],
           dz = p[3 * i + 2] - p[3 * j + 2];
    return sqrt(dx * dx + dy * dy + dz * dz);
}

static int mol_ok(const char *fn, const dfs_mol *m) {
    if (!m || m->n < 0 || m->n > DFS_MOL_MAX_ATOMS || (m->n && (!m->z || !m->pos)) ||
        m->n_bonds < 0 || (m->n_bonds && !m->bonds)) {
        dfs_set_error("%s: NULL or malformed molecule", fn);
        return 0;
    }
    return 1;
}

dfs_status dfs_mol_perceive_bonds(dfs_mol *m) {
    if (!mol_ok("dfs_mol_perceive_bonds", m)) return DFS_ERR_ARG;
    int nb = 0, cap = 0;
    dfs_mol_bond *b = NULL;
    /* the pairs i < j in check_stability's order */
    for (int i = 0; i < m->n; i++)
        for (int j = i + 1; j < m->n; j++) {
            int o = dfs_mol_bond_order(m->z[i], m->z[j], dist(m->pos, i, j));
            if (!o) continue;
            if (nb == cap) {
                cap = cap ? 2 * cap : 16;
                dfs_mol_bond *nbp = realloc(b, sizeof *b * (size_t)cap);
                if (!nbp) {
                    free(b);
                    dfs_set_error("dfs_mol_perceive_bonds: out of memory (%d bonds)", cap);
                    return DFS_ERR_NOMEM;
                }
                b = nbp;
            }
            b[nb++] = (dfs_mol_bond){i, j, o};
        }
    free(m->bonds);
    m->bonds = b;
    m->n_bonds = nb;
    return DFS_OK;
}

/* ---- stability and validity -------------------------------------------------------------- */

static int find(int *parent, int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

/* The counts from each atom's valence in half units (val2, twice the bond-order sum) and the
 * number of connected parts. */
static void finish(const dfs_mol *m, const int *val2, int parts, dfs_mol_check *out) {
    out->n_atoms = m->n;
    out->n_stable = 0;
    for (int i = 0; i < m->n; i++)
        out->n_stable += val2[i] % 2 == 0 && dfs_mol_valence_allowed(m->z[i], val2[i] / 2);
    /* molecule_stable = (nr_stable_bonds == len(x)) in check_stability: true for no atoms */
    out->stable = out->n_stable == m->n;
    out->n_fragments = parts;
    out->n_over = 0;
    for (int i = 0; i < m->n; i++) {
        unsigned mask = allowed_mask(m->z[i]);
        int top = 31;
        while (top >= 0 && !(mask >> top & 1u)) top--;
        out->n_over += val2[i] > 2 * top; /* top = -1: nothing allowed */
    }
    out->valid_edm = m->n > 0 && out->n_over == 0;
    out->valid = out->valid_edm && parts == 1;
}

/* Workspace: val2 (n) zeroed, parent (n) each its own root. */
static int work(const char *fn, int n, int **val2, int **parent) {
    *val2 = calloc((size_t)(n ? n : 1), sizeof **val2);
    *parent = malloc(sizeof **parent * (size_t)(n ? n : 1));
    if (!*val2 || !*parent) {
        free(*val2);
        free(*parent);
        dfs_set_error("%s: out of memory (%d atoms)", fn, n);
        return -1;
    }
    for (int i = 0; i < n; i++) (*parent)[i] = i;
    return 0;
}

/* Join the parts of a and b; returns 1 if they were apart. */
static int join(int *parent, int a, int b) {
    int ra = find(parent, a), rb = find(parent, b);
    if (ra == rb) return 0;
    parent[ra] = rb;
    return 1;
}

/* check_stability: every pair i < j, its order from the distance, added to both atoms. */
dfs_status dfs_mol_check_edm(const dfs_mol *m, dfs_mol_check *out) {
    if (!out || !mol_ok("dfs_mol_check_edm", m)) {
        dfs_set_error("dfs_mol_check_edm: NULL or malformed argument");
        return DFS_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    int *val2, *parent, parts = m->n;
    if (work("dfs_mol_check_edm", m->n, &val2, &parent)) return DFS_ERR_NOMEM;
    for (int i = 0; i < m->n; i++)
        for (int j = i + 1; j < m->n; j++) {
            int o = dfs_mol_bond_order(m->z[i], m->z[j], dist(m->pos, i, j));
            if (!o) continue;
            val2[i] += 2 * o;
            val2[j] += 2 * o;
            parts -= join(parent, i, j);
        }
    finish(m, val2, parts, out);
    free(val2);
    free(parent);
    return DFS_OK;
}

dfs_status dfs_mol_check_bonds(const dfs_mol *m, dfs_mol_check *out) {
    if (!out || !mol_ok("dfs_mol_check_bonds", m)) {
        dfs_set_error("dfs_mol_check_bonds: NULL or malformed argument");
        return DFS_ERR_ARG;
    }
    int bad, dup;
    dfs_status st = mol_bonds_check(m->bonds, m->n_bonds, m->n, &bad, &dup);
    if (st == DFS_ERR_NOMEM) {
        dfs_set_error("dfs_mol_check_bonds: out of memory");
        return st;
    }
    if (st) {
        dfs_set_error("dfs_mol_check_bonds: bond %d is bad or repeats a pair",
                      bad >= 0 ? bad : dup);
        return DFS_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    int *val2, *parent, parts = m->n;
    if (work("dfs_mol_check_bonds", m->n, &val2, &parent)) return DFS_ERR_NOMEM;
    for (int k = 0; k < m->n_bonds; k++) {
        static const int half[5] = {0, 2, 4, 6, 3}; /* aromatic = 1.5 */
        const dfs_mol_bond *b = &m->bonds[k];
        val2[b->a] += half[b->order];
        val2[b->b] += half[b->order];
        parts -= join(parent, b->a, b->b);
    }
    finish(m, val2, parts, out);
    free(val2);
    free(parent);
    return DFS_OK;
}
