/* fuzz_mol.c - molecule files: the same bytes as multi-frame XYZ (dfs_xyz_parse on the input
 * buffer itself, which has no NUL after it, and dfs_xyz_read on a file) and as SDF V2000
 * (dfs_sdf_parse, dfs_sdf_read). The parse and the read must agree (status and molecules). A
 * set that is read must hold sound molecules: 0..DFS_MOL_MAX_ATOMS atoms (0..999 for SDF),
 * elements 1..DFS_MOL_MAX_Z, finite positions, charges 0 (XYZ) or -15..15 (SDF), bonds
 * between two different atoms in range with orders 1..4 and no pair twice, a title without a
 * line break. Each set that reads is then written as XYZ and as SDF; where the writer accepts
 * it, the reader must read the file back to the same molecules (positions to the 6 and 4
 * decimals written; charges and bonds exactly for SDF). */
#include "diffuse.h"
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_pair(const void *a, const void *b) {
    const long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static void check_mol(const char *what, int k, const dfs_mol *m, int sdf) {
    if (m->n < 0 || m->n > (sdf ? 999 : DFS_MOL_MAX_ATOMS))
        fuzz_fail("%s: molecule %d has %d atoms", what, k, m->n);
    if (m->n && (!m->z || !m->pos || !m->charge))
        fuzz_fail("%s: molecule %d: atoms without arrays", what, k);
    if (!m->title || strchr(m->title, '\n'))
        fuzz_fail("%s: molecule %d: no title, or one with a line break", what, k);
    for (int i = 0; i < m->n; i++) {
        if (m->z[i] < 1 || m->z[i] > DFS_MOL_MAX_Z)
            fuzz_fail("%s: molecule %d: atom %d is element %d", what, k, i, m->z[i]);
        for (int d = 0; d < 3; d++)
            if (!isfinite(m->pos[3 * i + d]))
                fuzz_fail("%s: molecule %d: atom %d: non-finite position", what, k, i);
        if (sdf ? m->charge[i] < -15 || m->charge[i] > 15 : m->charge[i] != 0)
            fuzz_fail("%s: molecule %d: atom %d: charge %d", what, k, i, m->charge[i]);
    }
    if (m->n_bonds < 0 || (!sdf && m->n_bonds) || (m->n_bonds > 0) != (m->bonds != NULL))
        fuzz_fail("%s: molecule %d: %d bonds at %p", what, k, m->n_bonds, (void *)m->bonds);
    if (!m->n_bonds) return;
    long *pairs = malloc(sizeof *pairs * (size_t)m->n_bonds);
    if (!pairs) fuzz_fail("out of memory");
    for (int j = 0; j < m->n_bonds; j++) {
        const dfs_mol_bond *b = &m->bonds[j];
        if (b->a < 0 || b->a >= m->n || b->b < 0 || b->b >= m->n || b->a == b->b || b->order < 1 ||
            b->order > 4)
            fuzz_fail("%s: molecule %d: bond %d is %d-%d of order %d (%d atoms)", what, k, j, b->a,
                      b->b, b->order, m->n);
        const int lo = b->a < b->b ? b->a : b->b, hi = b->a < b->b ? b->b : b->a;
        pairs[j] = (long)lo * (DFS_MOL_MAX_ATOMS + 1) + hi;
    }
    qsort(pairs, (size_t)m->n_bonds, sizeof *pairs, cmp_pair);
    for (int j = 1; j < m->n_bonds; j++)
        if (pairs[j] == pairs[j - 1])
            fuzz_fail("%s: molecule %d: two bonds join the same pair", what, k);
    free(pairs);
}

static void check_set(const char *what, dfs_status s, const dfs_mol_set *set, int sdf) {
    FUZZ_REPORT(what, s);
    if (s != DFS_OK) {
        if (set->n || set->mols)
            fuzz_fail("%s failed (%s) but returned %d molecules", what, dfs_status_str(s), set->n);
        return;
    }
    if (set->n < 0 || (set->n && !set->mols))
        fuzz_fail("%s: %d molecules at %p", what, set->n, (void *)set->mols);
    for (int k = 0; k < set->n; k++)
        check_mol(what, k, &set->mols[k], sdf);
}

/* a and b hold the same molecules: titles and elements; positions within tol + 4 ulp (the
 * writer's decimals), or bit for bit when tol < 0 (the parse and the read of one text); with
 * bonds, the charges and bonds too (not for a set that went through XYZ). */
static void same(const char *what, const dfs_mol_set *a, const dfs_mol_set *b, double tol,
                 int bonds) {
    if (a->n != b->n) fuzz_fail("%s: %d molecules, then %d", what, a->n, b->n);
    for (int k = 0; k < a->n; k++) {
        const dfs_mol *p = &a->mols[k], *q = &b->mols[k];
        if (p->n != q->n || strcmp(p->title, q->title))
            fuzz_fail("%s: molecule %d: %d atoms titled \"%s\", then %d titled \"%s\"", what, k,
                      p->n, p->title, q->n, q->title);
        for (int i = 0; i < p->n; i++) {
            if (p->z[i] != q->z[i])
                fuzz_fail("%s: molecule %d: atom %d: element %d, then %d", what, k, i, p->z[i],
                          q->z[i]);
            if (bonds && p->charge[i] != q->charge[i])
                fuzz_fail("%s: molecule %d: atom %d: charge %d, then %d", what, k, i, p->charge[i],
                          q->charge[i]);
            for (int d = 0; d < 3; d++) {
                const double x = p->pos[3 * i + d], y = q->pos[3 * i + d];
                if (tol < 0 ? memcmp(&x, &y, sizeof x) : !(fabs(x - y) <= tol + 9e-16 * fabs(x)))
                    fuzz_fail("%s: molecule %d: atom %d: coordinate %.17g, then %.17g", what, k, i,
                              x, y);
            }
        }
        if (!bonds) continue;
        if (p->n_bonds != q->n_bonds)
            fuzz_fail("%s: molecule %d: %d bonds, then %d", what, k, p->n_bonds, q->n_bonds);
        for (int j = 0; j < p->n_bonds; j++)
            if (p->bonds[j].a != q->bonds[j].a || p->bonds[j].b != q->bonds[j].b ||
                p->bonds[j].order != q->bonds[j].order)
                fuzz_fail("%s: molecule %d: bond %d differs", what, k, j);
    }
}

/* set written as XYZ and as SDF, each read back where the writer accepted it */
static void round_trip(const char *from, const dfs_mol_set *set) {
    static char xyz[600], sdf[600];
    if (!xyz[0])
        fuzz_path(xyz, sizeof xyz, "written.xyz"), fuzz_path(sdf, sizeof sdf, "written.sdf");
    char what[96];
    dfs_mol_set back;
    dfs_status s = dfs_xyz_write(xyz, set->mols, set->n);
    FUZZ_REPORT("dfs_xyz_write", s);
    if (s == DFS_OK) {
        snprintf(what, sizeof what, "%s, written as XYZ and read back", from);
        s = dfs_xyz_read(xyz, &back);
        if (s != DFS_OK) fuzz_fail("%s: %s", what, dfs_last_error());
        check_set(what, s, &back, 0);
        same(what, set, &back, 5e-7, 0);
        dfs_mol_set_free(&back);
    } else if (s != DFS_ERR_ARG) {
        fuzz_fail("dfs_xyz_write: %s: %s", dfs_status_str(s), dfs_last_error());
    }
    s = dfs_sdf_write(sdf, set->mols, set->n);
    FUZZ_REPORT("dfs_sdf_write", s);
    if (s == DFS_OK) {
        snprintf(what, sizeof what, "%s, written as SDF and read back", from);
        s = dfs_sdf_read(sdf, &back);
        if (s != DFS_OK) fuzz_fail("%s: %s", what, dfs_last_error());
        check_set(what, s, &back, 1);
        same(what, set, &back, 5e-5, 1);
        dfs_mol_set_free(&back);
    } else if (s != DFS_ERR_ARG) {
        fuzz_fail("dfs_sdf_write: %s: %s", dfs_status_str(s), dfs_last_error());
    }
}

typedef dfs_status (*parse_fn)(const char *, const char *, size_t, dfs_mol_set *);
typedef dfs_status (*read_fn)(const char *, dfs_mol_set *);

static void one_format(const char *fmt, parse_fn parse, read_fn read, const char *path,
                       const uint8_t *data, size_t size, int sdf) {
    char what[64];
    dfs_mol_set p, r;
    snprintf(what, sizeof what, "%s parse", fmt);
    const dfs_status sp = parse("input", (const char *)data, size, &p);
    check_set(what, sp, &p, sdf);
    snprintf(what, sizeof what, "%s read", fmt);
    const dfs_status sr = read(path, &r);
    check_set(what, sr, &r, sdf);
    if (sp != sr)
        fuzz_fail("%s: the parse gave %s, the read %s", fmt, dfs_status_str(sp),
                  dfs_status_str(sr));
    snprintf(what, sizeof what, "%s parse against read", fmt);
    same(what, &p, &r, -1, 1);
    if (sp == DFS_OK) round_trip(fmt, &p);
    dfs_mol_set_free(&p);
    dfs_mol_set_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.mol");
    fuzz_write(path, data, size);
    one_format("XYZ", dfs_xyz_parse, dfs_xyz_read, path, data, size, 0);
    one_format("SDF", dfs_sdf_parse, dfs_sdf_read, path, data, size, 1);
    return 0;
}
