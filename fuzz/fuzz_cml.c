/* fuzz_cml.c - CML molecules (libxml2): dfs_cml_parse on the input buffer itself (no NUL after
 * it) and dfs_cml_read on a file; both must agree. A molecule that is read must be sound:
 * 0..DFS_MOL_MAX_ATOMS atoms of elements 1..DFS_MOL_MAX_Z at finite positions (all 0 when the
 * file has no coordinates, z = 0 when only 2-D ones), bonds between two different atoms in range
 * with orders 1..4 and no pair twice, a title without line breaks or tabs, and info.dim 0, 2
 * or 3 with implicit_h >= 0; one that is not is empty, with info zeroed. It then goes the way
 * of a package's file in dfs_moldata_build: the filter (dfs_moldata_filter on its own bonds, at
 * most 9 heavy atoms), and for one that passes with 3-D coordinates and no implicit hydrogens,
 * EDM's bonds (dfs_mol_perceive_bonds) and the canonical form (dfs_mol_canonical). */
#include "diffuse.h"
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check(const char *what, dfs_status s, const dfs_mol *m, const dfs_cml_info *info) {
    FUZZ_REPORT(what, s);
    if (s != DFS_OK) {
        if (m->n || m->z || m->pos || m->charge || m->bonds || m->n_bonds || m->title ||
            info->dim || info->implicit_h)
            fuzz_fail("%s failed (%s) but returned a molecule or info", what, dfs_status_str(s));
        return;
    }
    if (m->n < 0 || m->n > DFS_MOL_MAX_ATOMS || (m->n && (!m->z || !m->pos || !m->charge)))
        fuzz_fail("%s: %d atoms", what, m->n);
    if (!m->title || strpbrk(m->title, "\r\n\t"))
        fuzz_fail("%s: no title, or one with a line break or tab", what);
    if ((info->dim != 0 && info->dim != 2 && info->dim != 3) || info->implicit_h < 0)
        fuzz_fail("%s: dim %d, %d implicit hydrogens", what, info->dim, info->implicit_h);
    for (int i = 0; i < m->n; i++) {
        if (m->z[i] < 1 || m->z[i] > DFS_MOL_MAX_Z)
            fuzz_fail("%s: atom %d is element %d", what, i, m->z[i]);
        for (int d = 0; d < 3; d++) {
            const double x = m->pos[3 * i + d];
            if (!isfinite(x) || (info->dim == 0 && x != 0) || (info->dim == 2 && d == 2 && x != 0))
                fuzz_fail("%s: atom %d: coordinate %d is %g in a file of dimension %d", what, i, d,
                          x, info->dim);
        }
    }
    if (m->n_bonds < 0 || (m->n_bonds > 0) != (m->bonds != NULL))
        fuzz_fail("%s: %d bonds", what, m->n_bonds);
    for (int j = 0; j < m->n_bonds; j++) {
        const dfs_mol_bond *b = &m->bonds[j];
        if (b->a < 0 || b->a >= m->n || b->b < 0 || b->b >= m->n || b->a == b->b || b->order < 1 ||
            b->order > 4)
            fuzz_fail("%s: bond %d is %d-%d of order %d (%d atoms)", what, j, b->a, b->b, b->order,
                      m->n);
    }
    /* no pair twice: dfs_mol_set_bonds refuses that, so a copy of the bonds must be accepted */
    dfs_mol c;
    if (dfs_mol_copy(&c, m) != DFS_OK || dfs_mol_set_bonds(&c, m->bonds, m->n_bonds) != DFS_OK)
        fuzz_fail("%s: its bonds are refused: %s", what, dfs_last_error());
    dfs_mol_free(&c);
}

static void same(const dfs_mol *a, const dfs_mol *b, const dfs_cml_info *ia,
                 const dfs_cml_info *ib) {
    if (a->n != b->n || a->n_bonds != b->n_bonds || strcmp(a->title, b->title) ||
        ia->dim != ib->dim || ia->implicit_h != ib->implicit_h)
        fuzz_fail("parse and read disagree: %d atoms, %d bonds, dim %d, then %d, %d, %d", a->n,
                  a->n_bonds, ia->dim, b->n, b->n_bonds, ib->dim);
    for (int i = 0; i < a->n; i++)
        if (a->z[i] != b->z[i] || a->charge[i] != b->charge[i] ||
            memcmp(&a->pos[3 * i], &b->pos[3 * i], 3 * sizeof(double)))
            fuzz_fail("parse and read disagree on atom %d", i);
    for (int j = 0; j < a->n_bonds; j++)
        if (a->bonds[j].a != b->bonds[j].a || a->bonds[j].b != b->bonds[j].b ||
            a->bonds[j].order != b->bonds[j].order)
            fuzz_fail("parse and read disagree on bond %d", j);
}

/* what dfs_moldata_build does with a CML file it has read (read_cml_source, offer) */
static void build_path(const dfs_mol *m, const dfs_cml_info *info) {
    dfs_moldrop why = DFS_MOLDROP_COUNT;
    dfs_status s = dfs_moldata_filter(m, 1, 9, &why);
    FUZZ_REPORT("dfs_moldata_filter", s);
    if (s != DFS_OK) fuzz_fail("dfs_moldata_filter: %s: %s", dfs_status_str(s), dfs_last_error());
    if (why < DFS_MOLDROP_NONE || why >= DFS_MOLDROP_COUNT)
        fuzz_fail("dfs_moldata_filter: reason %d", (int)why);
    if (why || info->dim != 3 || info->implicit_h) return;
    dfs_mol p;
    char *form = NULL;
    if ((s = dfs_mol_copy(&p, m)) == DFS_OK && (s = dfs_mol_perceive_bonds(&p)) == DFS_OK)
        s = dfs_mol_canonical(&p, &form);
    FUZZ_REPORT("dfs_mol_canonical", s);
    if (s != DFS_OK)
        fuzz_fail("perceived bonds and canonical form: %s: %s", dfs_status_str(s),
                  dfs_last_error());
    if (!form || (strncmp(form, "v1:", 3) && strncmp(form, "wl:", 3)))
        fuzz_fail("canonical form \"%s\"", form);
    free(form);
    dfs_mol_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.cml");
    fuzz_write(path, data, size);
    dfs_mol p, r;
    dfs_cml_info ip, ir;
    const dfs_status sp = dfs_cml_parse("input.cml", (const char *)data, size, &p, &ip);
    check("dfs_cml_parse", sp, &p, &ip);
    const dfs_status sr = dfs_cml_read(path, &r, &ir);
    check("dfs_cml_read", sr, &r, &ir);
    if (sp != sr)
        fuzz_fail("dfs_cml_parse gave %s, dfs_cml_read %s", dfs_status_str(sp), dfs_status_str(sr));
    if (sp == DFS_OK) {
        same(&p, &r, &ip, &ir);
        build_path(&p, &ip);
    }
    dfs_mol_free(&p);
    dfs_mol_free(&r);
    return 0;
}
