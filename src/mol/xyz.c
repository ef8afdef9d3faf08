/* mol/xyz.c - XYZ files, one frame per molecule: the atom count, a comment line, then one line
 * "Sym x y z" per atom. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mol_internal.h"

/* The next whitespace-separated token of s[0..n) from *i: 1 with tok/tn set, 0 if none. */
static int token(const char *s, size_t n, size_t *i, const char **tok, size_t *tn) {
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t')) (*i)++;
    if (*i == n) return 0;
    size_t a = *i;
    while (*i < n && s[*i] != ' ' && s[*i] != '\t') (*i)++;
    *tok = s + a;
    *tn = *i - a;
    return 1;
}

/* One atom line into atom i of m: 0, or -1 with the message set. */
static int parse_atom(const char *name, int line, const char *s, size_t n, dfs_mol *m, int i,
                      int frame, int count_line) {
    const char *t[4];
    size_t tn[4];
    size_t at = 0;
    for (int k = 0; k < 4; k++) {
        if (!token(s, n, &at, &t[k], &tn[k])) {
            dfs_set_error("%s: line %d: want an atom line \"symbol x y z\" (atom %d of %d of "
                          "frame %d, count on line %d), got \"%s\"",
                          name, line, i + 1, m->n, frame, count_line, mol_quote(s, n, 0));
            return -1;
        }
    }
    int z = dfs_element_z(t[0], tn[0]);
    if (!z && mol_parse_int(t[0], tn[0], &z) && (z < 1 || z > DFS_MOL_MAX_Z)) z = 0;
    if (!z) {
        dfs_set_error("%s: line %d: unknown element \"%s\"", name, line,
                      mol_quote(t[0], tn[0], 0));
        return -1;
    }
    m->z[i] = z;
    static const char axis[3] = {'x', 'y', 'z'};
    for (int k = 0; k < 3; k++) {
        int finite;
        if (!mol_parse_double(t[k + 1], tn[k + 1], &m->pos[3 * i + k], &finite)) {
            dfs_set_error("%s: line %d: %c coordinate \"%s\" is not a number", name, line,
                          axis[k], mol_quote(t[k + 1], tn[k + 1], 0));
            return -1;
        }
        if (!finite) {
            dfs_set_error("%s: line %d: %c coordinate \"%s\" is not a finite number", name, line,
                          axis[k], mol_quote(t[k + 1], tn[k + 1], 0));
            return -1;
        }
    }
    return 0;
}

dfs_status dfs_xyz_parse(const char *name, const char *text, size_t len, dfs_mol_set *out) {
    if (!out) {
        dfs_set_error("dfs_xyz_parse: NULL set");
        return DFS_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    if (!name || (!text && len)) {
        dfs_set_error("dfs_xyz_parse: NULL argument");
        return DFS_ERR_ARG;
    }
    const char *nul = len ? memchr(text, 0, len) : NULL;
    if (nul) {
        dfs_set_error("%s: line %d: NUL byte (not a text file?)", name,
                      mol_line_of(text, (size_t)(nul - text)));
        return DFS_ERR_FORMAT;
    }
    mol_lines L;
    mol_lines_init(&L, text, len);
    dfs_mol m = {0};
    dfs_status st = DFS_ERR_FORMAT;
    const char *s;
    size_t n;
    int prev_count_line = 0, prev_count = 0;
    while (!mol_rest_blank(&L)) {
        mol_next_line(&L, &s, &n);
        int frame = out->n + 1, count_line = L.lineno, count;
        if (!mol_parse_int(s, n, &count)) {
            const char *d = s;
            size_t dn = n, k = 0;
            mol_trim(&d, &dn);
            while (k < dn && d[k] >= '0' && d[k] <= '9') k++;
            if (dn && k == dn) { /* digits, too many for an int */
                dfs_set_error("%s: line %d: atom count %s is outside 0..%d", name, L.lineno,
                              mol_quote(d, dn, 0), DFS_MOL_MAX_ATOMS);
                goto fail;
            }
            if (prev_count_line)
                dfs_set_error("%s: line %d: want the atom count of frame %d, got \"%s\" (does "
                              "the count %d on line %d match the atoms of frame %d?)",
                              name, L.lineno, frame, mol_quote(s, n, 0), prev_count,
                              prev_count_line, frame - 1);
            else
                dfs_set_error("%s: line %d: want the atom count of frame 1, got \"%s\"", name,
                              L.lineno, mol_quote(s, n, 0));
            goto fail;
        }
        if (count < 0 || count > DFS_MOL_MAX_ATOMS) {
            dfs_set_error("%s: line %d: atom count %d is outside 0..%d", name, L.lineno, count,
                          DFS_MOL_MAX_ATOMS);
            goto fail;
        }
        if (!mol_next_line(&L, &s, &n)) {
            dfs_set_error("%s: line %d: the file ends before the comment line of frame %d", name,
                          L.lineno + 1, frame);
            goto fail;
        }
        if ((st = dfs_mol_init(&m, count))) goto fail_msg;
        char *title = malloc(n + 1);
        if (!title) {
            st = DFS_ERR_NOMEM;
            goto fail_msg;
        }
        memcpy(title, s, n);
        title[n] = 0;
        free(m.title);
        m.title = title;
        st = DFS_ERR_FORMAT;
        for (int i = 0; i < count; i++) {
            if (!mol_next_line(&L, &s, &n)) {
                dfs_set_error("%s: line %d: the file ends inside frame %d: atom %d of the %d "
                              "counted on line %d is missing",
                              name, L.lineno + 1, frame, i + 1, count, count_line);
                goto fail;
            }
            if (parse_atom(name, L.lineno, s, n, &m, i, frame, count_line)) goto fail;
        }
        if ((st = dfs_mol_set_push(out, &m))) goto fail_msg;
        st = DFS_ERR_FORMAT;
        prev_count_line = count_line;
        prev_count = count;
    }
    return DFS_OK;
fail_msg:
    if (st == DFS_ERR_NOMEM) dfs_set_error("%s: out of memory at line %d", name, L.lineno);
fail:
    dfs_mol_free(&m);
    dfs_mol_set_free(out);
    return st;
}

dfs_status dfs_xyz_read(const char *path, dfs_mol_set *out) {
    if (!out || !path) {
        dfs_set_error("dfs_xyz_read: NULL argument");
        return DFS_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    char *buf;
    size_t size;
    dfs_status st = dfs_read_file(path, DFS_MOL_MAX_BYTES, "a molecule file", &buf, &size);
    if (st) return st;
    st = dfs_xyz_parse(path, buf, size, out);
    free(buf);
    return st;
}

dfs_status dfs_xyz_write(const char *path, const dfs_mol *mols, int n) {
    if (!path || n < 0 || (n > 0 && !mols)) {
        dfs_set_error("dfs_xyz_write: NULL argument or %d molecules", n);
        return DFS_ERR_ARG;
    }
    mol_buf b = {0};
    for (int k = 0; k < n; k++) {
        const dfs_mol *m = &mols[k];
        const char *title = m->title ? m->title : "";
        if (strpbrk(title, "\r\n")) {
            dfs_set_error("%s: molecule %d: the title has a line break", path, k);
            goto bad;
        }
        if (m->n < 0 || m->n > DFS_MOL_MAX_ATOMS || (m->n && (!m->z || !m->pos))) {
            dfs_set_error("%s: molecule %d: %d atoms (want 0..%d, with z and pos)", path, k, m->n,
                          DFS_MOL_MAX_ATOMS);
            goto bad;
        }
        mol_buf_printf(&b, "%d\n%s\n", m->n, title);
        for (int i = 0; i < m->n; i++) {
            const char *sym = dfs_element_symbol(m->z[i]);
            const double *p = &m->pos[3 * i];
            if (!sym) {
                dfs_set_error("%s: molecule %d: atom %d has no element (z = %d)", path, k, i,
                              m->z[i]);
                goto bad;
            }
            if (!isfinite(p[0]) || !isfinite(p[1]) || !isfinite(p[2])) {
                dfs_set_error("%s: molecule %d: atom %d has a coordinate that is not finite",
                              path, k, i);
                goto bad;
            }
            /* the reader takes numbers of at most 63 characters (mol_parse_double): "%.6f" of
             * a coordinate of 1e56 or more is longer, and the file could not be read back */
            for (int d = 0; d < 3; d++)
                if (snprintf(NULL, 0, "%.6f", p[d]) > 63) {
                    dfs_set_error("%s: molecule %d: atom %d: coordinate %g is too large to be "
                                  "read back (want |x| < 1e55)",
                                  path, k, i, p[d]);
                    goto bad;
                }
            mol_buf_printf(&b, "%-2s %.6f %.6f %.6f\n", sym, p[0], p[1], p[2]);
        }
    }
    return mol_buf_write(&b, path);
bad:
    free(b.p);
    return DFS_ERR_ARG;
}
