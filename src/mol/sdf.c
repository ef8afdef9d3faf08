/* mol/sdf.c - SD files of MDL V2000 mol blocks (BIOVIA, "CTfile Formats", 2020: the header
 * block, the counts line, the atom and bond blocks with their fixed columns, the properties
 * block up to "M  END", then data items up to "$$$$"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mol_internal.h"

/* Columns [a, b) of s[0..n) (0-based), clipped to the line. */
static void cols(const char *s, size_t n, size_t a, size_t b, const char **f, size_t *fn) {
    if (a > n) a = n;
    if (b > n) b = n;
    *f = s + a;
    *fn = b - a;
}

static int starts(const char *s, size_t n, const char *pre) {
    size_t k = strlen(pre);
    return n >= k && !memcmp(s, pre, k);
}

/* The CTfile atom-block charge code: 0 none, 1 +3, 2 +2, 3 +1, 4 doublet radical (charge 0),
 * 5 -1, 6 -2, 7 -3. */
static int charge_of_code(int c) { return c == 0 || c == 4 ? 0 : 4 - c; }

typedef struct {
    const char *name;
    mol_lines L;
    int mol;  /* 1-based number of the molecule being read */
} reader;

/* The next line of a molecule, or -1 with "the file ends inside ... of molecule N" set. */
static int need_line(reader *r, const char **s, size_t *n, const char *where) {
    if (mol_next_line(&r->L, s, n)) return 0;
    dfs_set_error("%s: line %d: the file ends inside %s of molecule %d", r->name,
                  r->L.lineno + 1, where, r->mol);
    return -1;
}

/* An "M  CHG" line: "M  CHGnn8 aaa vvv ..." with nn = 1..8 pairs of atom and charge. */
static int parse_chg(reader *r, const char *s, size_t n, dfs_mol *m) {
    int v[17], k = 0;
    size_t i = 6;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i == n) break;
        size_t a = i;
        while (i < n && s[i] != ' ' && s[i] != '\t') i++;
        if (k == 17 || !mol_parse_int(s + a, i - a, &v[k])) {
            dfs_set_error("%s: line %d: bad M  CHG line \"%s\" (want a count 1..8, then that "
                          "many pairs of atom and charge)",
                          r->name, r->L.lineno, mol_quote(s, n, 0));
            return -1;
        }
        k++;
    }
    if (k < 1 || v[0] < 1 || v[0] > 8 || k != 1 + 2 * v[0]) {
        dfs_set_error("%s: line %d: bad M  CHG line \"%s\" (want a count 1..8, then that many "
                      "pairs of atom and charge)",
                      r->name, r->L.lineno, mol_quote(s, n, 0));
        return -1;
    }
    for (int j = 0; j < v[0]; j++) {
        int a = v[1 + 2 * j], c = v[2 + 2 * j];
        if (a < 1 || a > m->n || c < -15 || c > 15) {
            dfs_set_error("%s: line %d: M  CHG: atom %d with charge %d (want atoms 1..%d, "
                          "charges -15..15)",
                          r->name, r->L.lineno, a, c, m->n);
            return -1;
        }
        m->charge[a - 1] = c;
    }
    return 0;
}

/* An atom line into atom i: x, y, z in columns 1-30, the symbol in 32-34, the charge code in
 * 37-39 (each optional past the symbol). */
static int parse_atom(reader *r, const char *s, size_t n, dfs_mol *m, int i, int counts_line) {
    if (n < 32) {
        dfs_set_error("%s: line %d: atom %d of %d (counts line %d): the line is too short for "
                      "an atom (x, y, z in columns 1-30, the symbol in 32-34): \"%s\"",
                      r->name, r->L.lineno, i + 1, m->n, counts_line, mol_quote(s, n, 0));
        return -1;
    }
    static const char axis[3] = {'x', 'y', 'z'};
    for (int k = 0; k < 3; k++) {
        const char *f;
        size_t fn;
        int finite;
        cols(s, n, 10 * (size_t)k, 10 * (size_t)k + 10, &f, &fn);
        if (!mol_parse_double(f, fn, &m->pos[3 * i + k], &finite)) {
            dfs_set_error("%s: line %d: atom %d of %d (counts line %d): %c coordinate \"%s\" "
                          "(columns %d-%d) is not a number",
                          r->name, r->L.lineno, i + 1, m->n, counts_line, axis[k],
                          mol_quote(f, fn, 0), 10 * k + 1, 10 * k + 10);
            return -1;
        }
        if (!finite) {
            dfs_set_error("%s: line %d: %c coordinate \"%s\" is not a finite number", r->name,
                          r->L.lineno, axis[k], mol_quote(f, fn, 0));
            return -1;
        }
    }
    const char *f;
    size_t fn;
    cols(s, n, 31, 34, &f, &fn);
    mol_trim(&f, &fn);
    if (!(m->z[i] = dfs_element_z(f, fn))) {
        dfs_set_error("%s: line %d: unknown element \"%s\" (columns 32-34)", r->name, r->L.lineno,
                      mol_quote(f, fn, 0));
        return -1;
    }
    cols(s, n, 36, 39, &f, &fn);
    mol_trim(&f, &fn);
    int code = 0;
    if (fn && (!mol_parse_int(f, fn, &code) || code < 0 || code > 7)) {
        dfs_set_error("%s: line %d: charge code \"%s\" (columns 37-39) is not 0..7", r->name,
                      r->L.lineno, mol_quote(f, fn, 0));
        return -1;
    }
    m->charge[i] = charge_of_code(code);
    return 0;
}

/* A bond line: atoms in columns 1-3 and 4-6, the type in 7-9. */
static int parse_bond(reader *r, const char *s, size_t n, dfs_mol *m, int j, int nb,
                      int counts_line) {
    int v[3];
    static const char *what[3] = {"first atom", "second atom", "bond type"};
    for (int k = 0; k < 3; k++) {
        const char *f;
        size_t fn;
        cols(s, n, 3 * (size_t)k, 3 * (size_t)k + 3, &f, &fn);
        if (!mol_parse_int(f, fn, &v[k])) {
            dfs_set_error("%s: line %d: bond %d of %d (counts line %d): %s \"%s\" (columns "
                          "%d-%d) is not a number",
                          r->name, r->L.lineno, j + 1, nb, counts_line, what[k],
                          mol_quote(f, fn, 0), 3 * k + 1, 3 * k + 3);
            return -1;
        }
    }
    if (v[0] < 1 || v[0] > m->n || v[1] < 1 || v[1] > m->n || v[0] == v[1]) {
        dfs_set_error("%s: line %d: bond %d joins atoms %d and %d (want two different atoms of "
                      "1..%d)",
                      r->name, r->L.lineno, j + 1, v[0], v[1], m->n);
        return -1;
    }
    if (v[2] < 1 || v[2] > 4) {
        dfs_set_error("%s: line %d: bond type %d is not supported (1, 2, 3 or 4 = aromatic; "
                      "5..8 are query types)",
                      r->name, r->L.lineno, v[2]);
        return -1;
    }
    m->bonds[j] = (dfs_mol_bond){v[0] - 1, v[1] - 1, v[2]};
    return 0;
}

/* One molecule from the title line on into m. 0, or -1 with the message set (status in *st). */
static int read_mol(reader *r, dfs_mol *m, dfs_status *st) {
    const char *s;
    size_t n;
    *st = DFS_ERR_FORMAT;
    mol_next_line(&r->L, &s, &n); /* the title: the caller saw that a line is there */
    char *title = malloc(n + 1);
    if (!title) goto nomem;
    memcpy(title, s, n);
    title[n] = 0;
    if (need_line(r, &s, &n, "the header") || need_line(r, &s, &n, "the header") ||
        need_line(r, &s, &n, "the header (counts line)")) {
        free(title);
        return -1;
    }
    int counts_line = r->L.lineno, na, nb;
    const char *f;
    size_t fn;
    if (n >= 6 && memmem(s, n, "V3000", 5)) {
        dfs_set_error("%s: line %d: a V3000 mol block (only V2000 is read)", r->name,
                      r->L.lineno);
        free(title);
        return -1;
    }
    cols(s, n, 0, 3, &f, &fn);
    int ok = mol_parse_int(f, fn, &na);
    cols(s, n, 3, 6, &f, &fn);
    ok = ok && mol_parse_int(f, fn, &nb);
    if (!ok || na < 0 || nb < 0) {
        dfs_set_error("%s: line %d: bad counts line \"%s\" (want the atom and bond counts in "
                      "columns 1-3 and 4-6)",
                      r->name, r->L.lineno, mol_quote(s, n, 0));
        free(title);
        return -1;
    }
    if (dfs_mol_init(m, na)) {
        free(title);
        goto nomem;
    }
    free(m->title);
    m->title = title;
    if (nb && !(m->bonds = malloc(sizeof *m->bonds * (size_t)nb))) goto nomem;
    for (int i = 0; i < na; i++) {
        char where[64];
        snprintf(where, sizeof where, "the atom block (atom %d of %d)", i + 1, na);
        if (need_line(r, &s, &n, where) || parse_atom(r, s, n, m, i, counts_line)) return -1;
    }
    int bonds_line = r->L.lineno + 1;
    for (int j = 0; j < nb; j++) {
        char where[64];
        snprintf(where, sizeof where, "the bond block (bond %d of %d)", j + 1, nb);
        if (need_line(r, &s, &n, where) || parse_bond(r, s, n, m, j, nb, counts_line))
            return -1;
        m->n_bonds = j + 1;
    }
    int bad, dup;
    dfs_status bst = mol_bonds_check(m->bonds, m->n_bonds, m->n, &bad, &dup);
    if (bst == DFS_ERR_NOMEM) goto nomem;
    if (bst) {
        dfs_set_error("%s: line %d: bond %d joins atoms %d and %d a second time", r->name,
                      bonds_line + dup, dup + 1, m->bonds[dup].a + 1, m->bonds[dup].b + 1);
        return -1;
    }
    /* the properties block; any M  CHG replaces all the charges of the atom block */
    int seen_chg = 0;
    for (;;) {
        if (need_line(r, &s, &n, "the properties block (no \"M  END\")")) return -1;
        if (starts(s, n, "M  END")) break;
        if (starts(s, n, "$$$$")) {
            dfs_set_error("%s: line %d: \"$$$$\" before the \"M  END\" of molecule %d", r->name,
                          r->L.lineno, r->mol);
            return -1;
        }
        if (starts(s, n, "M  CHG")) {
            if (!seen_chg) memset(m->charge, 0, sizeof *m->charge * (size_t)(na ? na : 1));
            seen_chg = 1;
            if (parse_chg(r, s, n, m)) return -1;
        }
    }
    /* data items up to "$$$$", or the end of the file (a .mol file) */
    while (mol_next_line(&r->L, &s, &n))
        if (starts(s, n, "$$$$")) break;
    *st = DFS_OK;
    return 0;
nomem:
    dfs_set_error("%s: out of memory at line %d", r->name, r->L.lineno);
    *st = DFS_ERR_NOMEM;
    return -1;
}

dfs_status dfs_sdf_parse(const char *name, const char *text, size_t len, dfs_mol_set *out) {
    if (!out) {
        dfs_set_error("dfs_sdf_parse: NULL set");
        return DFS_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    if (!name || (!text && len)) {
        dfs_set_error("dfs_sdf_parse: NULL argument");
        return DFS_ERR_ARG;
    }
    const char *nul = len ? memchr(text, 0, len) : NULL;
    if (nul) {
        dfs_set_error("%s: line %d: NUL byte (not a text file?)", name,
                      mol_line_of(text, (size_t)(nul - text)));
        return DFS_ERR_FORMAT;
    }
    reader r = {name, {0}, 0};
    mol_lines_init(&r.L, text, len);
    dfs_status st = DFS_OK;
    while (!mol_rest_blank(&r.L)) {
        dfs_mol m = {0};
        r.mol = out->n + 1;
        if (read_mol(&r, &m, &st) || (st = dfs_mol_set_push(out, &m))) {
            dfs_mol_free(&m);
            dfs_mol_set_free(out);
            return st;
        }
    }
    return DFS_OK;
}

dfs_status dfs_sdf_read(const char *path, dfs_mol_set *out) {
    if (!out || !path) {
        dfs_set_error("dfs_sdf_read: NULL argument");
        return DFS_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    char *buf;
    size_t size;
    dfs_status st = dfs_read_file(path, DFS_MOL_MAX_BYTES, "a molecule file", &buf, &size);
    if (st) return st;
    st = dfs_sdf_parse(path, buf, size, out);
    free(buf);
    return st;
}

/* ---- writing ----------------------------------------------------------------------------- */

static int check_mol(const char *path, int k, const dfs_mol *m) {
    const char *title = m->title ? m->title : "";
    if (strpbrk(title, "\r\n") || strlen(title) > 80) {
        dfs_set_error("%s: molecule %d: the title has a line break or is longer than 80 "
                      "characters",
                      path, k);
        return -1;
    }
    if (m->n < 0 || m->n > 999 || m->n_bonds < 0 || m->n_bonds > 999 ||
        (m->n && (!m->z || !m->pos)) || (m->n_bonds && !m->bonds)) {
        dfs_set_error("%s: molecule %d: %d atoms and %d bonds (a V2000 block holds 0..999 of "
                      "each)",
                      path, k, m->n, m->n_bonds);
        return -1;
    }
    for (int i = 0; i < m->n; i++) {
        int c = m->charge ? m->charge[i] : 0;
        if (!dfs_element_symbol(m->z[i]) || c < -15 || c > 15) {
            dfs_set_error("%s: molecule %d: atom %d: element %d, charge %d (want 1..%d and "
                          "-15..15)",
                          path, k, i, m->z[i], c, DFS_MOL_MAX_Z);
            return -1;
        }
        for (int d = 0; d < 3; d++) {
            char f[64];
            double x = m->pos[3 * i + d];
            if (!isfinite(x) || snprintf(f, sizeof f, "%10.4f", x) != 10) {
                dfs_set_error("%s: molecule %d: atom %d: coordinate %g does not fit the 10 "
                              "columns of V2000",
                              path, k, i, x);
                return -1;
            }
        }
    }
    int bad, dup;
    dfs_status st = mol_bonds_check(m->bonds, m->n_bonds, m->n, &bad, &dup);
    if (st == DFS_ERR_NOMEM) {
        dfs_set_error("%s: out of memory", path);
        return -1;
    }
    if (st) {
        int j = bad >= 0 ? bad : dup;
        dfs_set_error("%s: molecule %d: bond %d (%d-%d, order %d) is not a bond of %d atoms, "
                      "or repeats a pair",
                      path, k, j, m->bonds[j].a, m->bonds[j].b, m->bonds[j].order, m->n);
        return -1;
    }
    return 0;
}

dfs_status dfs_sdf_write(const char *path, const dfs_mol *mols, int n) {
    if (!path || n < 0 || (n > 0 && !mols)) {
        dfs_set_error("dfs_sdf_write: NULL argument or %d molecules", n);
        return DFS_ERR_ARG;
    }
    mol_buf b = {0};
    for (int k = 0; k < n; k++) {
        const dfs_mol *m = &mols[k];
        if (check_mol(path, k, m)) {
            free(b.p);
            return DFS_ERR_ARG;
        }
        /* header: title; initials (2), program (8), date (10, left blank so that the file does
         * not depend on the time), dimension code "3D"; an empty comment line */
        mol_buf_printf(&b, "%s\n  diffuse           3D\n\n", m->title ? m->title : "");
        mol_buf_printf(&b, "%3d%3d  0  0  0  0  0  0  0  0999 V2000\n", m->n, m->n_bonds);
        int n_chg = 0;
        for (int i = 0; i < m->n; i++) {
            const double *p = &m->pos[3 * i];
            int c = m->charge ? m->charge[i] : 0;
            int code = c >= -3 && c <= 3 && c ? 4 - c : 0;
            n_chg += c != 0;
            mol_buf_printf(&b, "%10.4f%10.4f%10.4f %-3s 0%3d  0  0  0  0  0  0  0  0  0  0\n",
                           p[0], p[1], p[2], dfs_element_symbol(m->z[i]), code);
        }
        for (int j = 0; j < m->n_bonds; j++)
            mol_buf_printf(&b, "%3d%3d%3d  0\n", m->bonds[j].a + 1, m->bonds[j].b + 1,
                           m->bonds[j].order);
        /* every charge again as M  CHG, 8 to a line; readers then ignore the atom block's */
        for (int i = 0, left = n_chg; left > 0;) {
            int k8 = left < 8 ? left : 8;
            mol_buf_printf(&b, "M  CHG%3d", k8);
            for (int w = 0; w < k8; i++)
                if (m->charge[i]) {
                    mol_buf_printf(&b, " %3d %3d", i + 1, m->charge[i]);
                    w++;
                }
            mol_buf_printf(&b, "\n");
            left -= k8;
        }
        mol_buf_printf(&b, "M  END\n$$$$\n");
    }
    return mol_buf_write(&b, path);
}
