/* mol/mol.c - elements, molecules and sets of molecules: making, copying, freeing. */
#include "diffuse/mol.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "mol_internal.h"

/* ---- elements ---------------------------------------------------------------------------- */

/* IUPAC symbols, index = atomic number. */
static const char *const SYMBOLS[DFS_MOL_MAX_Z + 1] = {
    NULL, "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si",
    "P",  "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
    "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru",
    "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr",
    "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",
    "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac",
    "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf",
    "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};

const char *dfs_element_symbol(int z) {
    return z >= 1 && z <= DFS_MOL_MAX_Z ? SYMBOLS[z] : NULL;
}

/* No two symbols differ only in case, so a case-blind match is unambiguous. */
int dfs_element_z(const char *s, size_t len) {
    if (!s || len < 1 || len > 2) return 0;
    for (int z = 1; z <= DFS_MOL_MAX_Z; z++) {
        const char *y = SYMBOLS[z];
        if (strlen(y) != len) continue;
        size_t k = 0;
        while (k < len && tolower((unsigned char)s[k]) == tolower((unsigned char)y[k])) k++;
        if (k == len) return z;
    }
    return 0;
}

/* ---- molecules --------------------------------------------------------------------------- */

dfs_status dfs_mol_init(dfs_mol *m, int n) {
    if (!m) {
        dfs_set_error("dfs_mol_init: NULL molecule");
        return DFS_ERR_ARG;
    }
    memset(m, 0, sizeof *m);
    if (n < 0 || n > DFS_MOL_MAX_ATOMS) {
        dfs_set_error("dfs_mol_init: %d atoms (want 0..%d)", n, DFS_MOL_MAX_ATOMS);
        return DFS_ERR_ARG;
    }
    size_t k = n ? (size_t)n : 1; /* calloc(0) may return NULL */
    m->z = calloc(k, sizeof *m->z);
    m->pos = calloc(3 * k, sizeof *m->pos);
    m->charge = calloc(k, sizeof *m->charge);
    m->title = calloc(1, 1);
    if (!m->z || !m->pos || !m->charge || !m->title) {
        dfs_mol_free(m);
        dfs_set_error("dfs_mol_init: out of memory (%d atoms)", n);
        return DFS_ERR_NOMEM;
    }
    m->n = n;
    return DFS_OK;
}

void dfs_mol_free(dfs_mol *m) {
    if (!m) return;
    free(m->z);
    free(m->pos);
    free(m->charge);
    free(m->bonds);
    free(m->title);
    memset(m, 0, sizeof *m);
}

dfs_status dfs_mol_set_title(dfs_mol *m, const char *title) {
    char *t = strdup(title ? title : "");
    if (!t) {
        dfs_set_error("dfs_mol_set_title: out of memory");
        return DFS_ERR_NOMEM;
    }
    free(m->title);
    m->title = t;
    return DFS_OK;
}

static int cmp_pair(const void *a, const void *b) {
    const int *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

dfs_status mol_bonds_check(const dfs_mol_bond *bonds, int nb, int n, int *bad, int *dup) {
    *bad = -1;
    *dup = -1;
    for (int i = 0; i < nb; i++) {
        const dfs_mol_bond *b = &bonds[i];
        if (b->a < 0 || b->a >= n || b->b < 0 || b->b >= n || b->a == b->b || b->order < 1 ||
            b->order > DFS_BOND_AROMATIC) {
            *bad = i;
            return DFS_ERR_ARG;
        }
    }
    if (nb < 2) return DFS_OK;
    /* the same pair twice: sort (min, max, index) triples and compare neighbours */
    int *p = malloc(sizeof *p * 3 * (size_t)nb);
    if (!p) return DFS_ERR_NOMEM;
    for (int i = 0; i < nb; i++) {
        int a = bonds[i].a, b = bonds[i].b;
        p[3 * i] = a < b ? a : b;
        p[3 * i + 1] = a < b ? b : a;
        p[3 * i + 2] = i;
    }
    qsort(p, (size_t)nb, 3 * sizeof *p, cmp_pair);
    for (int i = 1; i < nb && *dup < 0; i++)
        if (p[3 * i] == p[3 * i - 3] && p[3 * i + 1] == p[3 * i - 2])
            *dup = p[3 * i + 2] > p[3 * i - 1] ? p[3 * i + 2] : p[3 * i - 1];
    free(p);
    return *dup >= 0 ? DFS_ERR_ARG : DFS_OK;
}

dfs_status dfs_mol_set_bonds(dfs_mol *m, const dfs_mol_bond *bonds, int n) {
    if (!m || n < 0 || (n > 0 && !bonds)) {
        dfs_set_error("dfs_mol_set_bonds: NULL argument or %d bonds", n);
        return DFS_ERR_ARG;
    }
    int bad, dup;
    dfs_status st = mol_bonds_check(bonds, n, m->n, &bad, &dup);
    if (st == DFS_ERR_NOMEM) {
        dfs_set_error("dfs_mol_set_bonds: out of memory");
        return st;
    }
    if (bad >= 0) {
        dfs_set_error("dfs_mol_set_bonds: bond %d (%d-%d, order %d) is not a bond of %d atoms "
                      "with an order 1..4", bad, bonds[bad].a, bonds[bad].b, bonds[bad].order,
                      m->n);
        return DFS_ERR_ARG;
    }
    if (dup >= 0) {
        dfs_set_error("dfs_mol_set_bonds: bond %d joins atoms %d and %d a second time", dup,
                      bonds[dup].a, bonds[dup].b);
        return DFS_ERR_ARG;
    }
    dfs_mol_bond *c = NULL;
    if (n > 0) {
        c = malloc(sizeof *c * (size_t)n);
        if (!c) {
            dfs_set_error("dfs_mol_set_bonds: out of memory (%d bonds)", n);
            return DFS_ERR_NOMEM;
        }
        memcpy(c, bonds, sizeof *c * (size_t)n);
    }
    free(m->bonds);
    m->bonds = c;
    m->n_bonds = n;
    return DFS_OK;
}

dfs_status dfs_mol_copy(dfs_mol *dst, const dfs_mol *src) {
    if (!dst || !src) {
        dfs_set_error("dfs_mol_copy: NULL argument");
        return DFS_ERR_ARG;
    }
    dfs_status st = dfs_mol_init(dst, src->n);
    if (st) return st;
    size_t n = (size_t)src->n;
    if (n) {
        memcpy(dst->z, src->z, sizeof *dst->z * n);
        memcpy(dst->pos, src->pos, sizeof *dst->pos * 3 * n);
        memcpy(dst->charge, src->charge, sizeof *dst->charge * n);
    }
    if ((st = dfs_mol_set_title(dst, src->title)) ||
        (st = dfs_mol_set_bonds(dst, src->bonds, src->n_bonds)))
        dfs_mol_free(dst);
    return st;
}

/* ---- sets -------------------------------------------------------------------------------- */

dfs_status dfs_mol_set_push(dfs_mol_set *s, dfs_mol *m) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap : 16;
        if (cap > (1 << 28)) {
            dfs_set_error("dfs_mol_set_push: more than %d molecules", 1 << 28);
            return DFS_ERR_NOMEM;
        }
        cap *= s->cap ? 2 : 1;
        dfs_mol *p = realloc(s->mols, sizeof *p * (size_t)cap);
        if (!p) {
            dfs_set_error("dfs_mol_set_push: out of memory (%d molecules)", cap);
            return DFS_ERR_NOMEM;
        }
        s->mols = p;
        s->cap = cap;
    }
    s->mols[s->n++] = *m;
    memset(m, 0, sizeof *m);
    return DFS_OK;
}

void dfs_mol_set_free(dfs_mol_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) dfs_mol_free(&s->mols[i]);
    free(s->mols);
    memset(s, 0, sizeof *s);
}
