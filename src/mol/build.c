/* mol/build.c - a QM9-like training set from Debian packages (issue 17): CML read with libxml2,
 * ASE's G2 set read with cJSON, NCI SMILES made 3-D by Open Babel run as a program, the filter,
 * deduplication by canonical form, and the three files of the set. */
#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../io/json.h"
#include "mol_internal.h"

extern char **environ;

/* Largest source file read (the biggest, first_5K.smi, is 200 KB). */
#define SRC_MAX_BYTES ((int64_t)64 << 20)
/* Atoms closer than this (Angstrom) are a broken geometry, not a molecule (H2: 0.74). */
#define MIN_DIST 0.5

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- CML --------------------------------------------------------------------------------- */

static int is_elem(const xmlNode *n, const char *name) {
    return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

/* The first element named name at or below n, in document order. */
static const xmlNode *find_elem(const xmlNode *n, const char *name) {
    for (; n; n = n->next) {
        if (is_elem(n, name)) return n;
        if (n->type == XML_ELEMENT_NODE) {
            const xmlNode *f = find_elem(n->children, name);
            if (f) return f;
        }
    }
    return NULL;
}

static long line_of(const xmlNode *n) {
    long l = xmlGetLineNo(n);
    return l > 0 ? l : 0;
}

/* The attribute's value (in no namespace), malloc'ed by libxml2 (xmlFree), or NULL. */
static char *attr(const xmlNode *n, const char *name) {
    return (char *)xmlGetNoNsProp(n, (const xmlChar *)name);
}

/* A coordinate attribute: 1 with *v set, 0 if absent, -1 with the message set. */
static int coord(const char *name, const xmlNode *a, const char *id, const char *key, double *v) {
    char *s = attr(a, key);
    if (!s) return 0;
    int finite = 0, ok = mol_parse_double(s, strlen(s), v, &finite);
    if (!ok || !finite)
        dfs_set_error("%s: line %ld: atom %s: %s=\"%s\" is not a%s number", name, line_of(a), id,
                      key, mol_quote(s, strlen(s), 0), ok ? " finite" : "");
    xmlFree(s);
    return ok && finite ? 1 : -1;
}

typedef struct {
    char *id;
    int index;
} cml_id;

static int cmp_id(const void *a, const void *b) {
    return strcmp(((const cml_id *)a)->id, ((const cml_id *)b)->id);
}

static int find_id(const cml_id *ids, int n, const char *id, size_t len) {
    char key[128];
    if (len >= sizeof key) return -1;
    memcpy(key, id, len);
    key[len] = 0;
    cml_id k = {key, 0};
    const cml_id *f = bsearch(&k, ids, (size_t)n, sizeof *ids, cmp_id);
    return f ? f->index : -1;
}

/* The bond order of a CML order attribute (NULL: single), or 0. */
static int cml_order(const char *s) {
    if (!s) return DFS_BOND_SINGLE;
    size_t n = strlen(s);
    mol_trim(&s, &n);
    if (n == 1 && (s[0] == '1' || s[0] == 'S')) return DFS_BOND_SINGLE;
    if (n == 1 && (s[0] == '2' || s[0] == 'D')) return DFS_BOND_DOUBLE;
    if (n == 1 && (s[0] == '3' || s[0] == 'T')) return DFS_BOND_TRIPLE;
    if ((n == 1 && s[0] == 'A') || (n == 3 && !memcmp(s, "1.5", 3))) return DFS_BOND_AROMATIC;
    return 0;
}

/* The atoms of mol (children of its atomArray children) into m and ids (sorted by id), with
 * *dim and the hydrogenCount of each atom (-1 when absent) in hcount. 0, or -1 with the
 * message set (m, ids, hcount then hold what was made, for the caller to free). */
static int cml_atoms(const char *name, const xmlNode *mol, dfs_mol *m, cml_id **ids_out,
                     int **hcount_out, int *dim, dfs_status *st) {
    static const char *const array_form[] = {"atomID", "elementType", "x3", "x2"};
    int n = 0;
    *st = DFS_ERR_FORMAT;
    for (const xmlNode *aa = mol->children; aa; aa = aa->next) {
        if (!is_elem(aa, "atomArray")) continue;
        for (size_t k = 0; k < sizeof array_form / sizeof *array_form; k++)
            if (xmlHasProp(aa, (const xmlChar *)array_form[k])) {
                dfs_set_error("%s: line %ld: an atomArray in CML's array form (attribute %s) is "
                              "not read; write one <atom> per atom",
                              name, line_of(aa), array_form[k]);
                return -1;
            }
        for (const xmlNode *a = aa->children; a; a = a->next)
            if (is_elem(a, "atom") && ++n > DFS_MOL_MAX_ATOMS) {
                dfs_set_error("%s: line %ld: more than %d atoms", name, line_of(a),
                              DFS_MOL_MAX_ATOMS);
                return -1;
            }
    }
    if ((*st = dfs_mol_init(m, n))) return -1;
    *st = DFS_ERR_NOMEM;
    cml_id *ids = *ids_out = calloc((size_t)n + 1, sizeof *ids);
    int *hcount = *hcount_out = malloc(((size_t)n + 1) * sizeof *hcount);
    if (!ids || !hcount) {
        dfs_set_error("%s: out of memory (%d atoms)", name, n);
        return -1;
    }
    *st = DFS_ERR_FORMAT;
    int i = 0, n3 = 0, n2 = 0;
    for (const xmlNode *aa = mol->children; aa; aa = aa->next) {
        if (!is_elem(aa, "atomArray")) continue;
        for (const xmlNode *a = aa->children; a; a = a->next) {
            if (!is_elem(a, "atom")) continue;
            char *id = attr(a, "id"), *el = attr(a, "elementType");
            char *q = attr(a, "formalCharge"), *h = attr(a, "hydrogenCount");
            int bad = 0;
            if (!id || !*id || strlen(id) >= 128) {
                dfs_set_error("%s: line %ld: an atom without an id (or one over 127 characters)",
                              name, line_of(a));
                bad = 1;
            } else if (!(ids[i].id = strdup(id))) {
                dfs_set_error("%s: out of memory", name);
                *st = DFS_ERR_NOMEM;
                bad = 1;
            } else if (!el || !(m->z[i] = dfs_element_z(el, strlen(el)))) {
                dfs_set_error("%s: line %ld: atom %s: elementType \"%s\" is not an element", name,
                              line_of(a), id, el ? mol_quote(el, strlen(el), 0) : "(none)");
                bad = 1;
            } else if (q && !mol_parse_int(q, strlen(q), &m->charge[i])) {
                dfs_set_error("%s: line %ld: atom %s: formalCharge=\"%s\" is not an integer", name,
                              line_of(a), id, mol_quote(q, strlen(q), 0));
                bad = 1;
            } else if (h && (!mol_parse_int(h, strlen(h), &hcount[i]) || hcount[i] < 0)) {
                dfs_set_error("%s: line %ld: atom %s: hydrogenCount=\"%s\" is not a count", name,
                              line_of(a), id, mol_quote(h, strlen(h), 0));
                bad = 1;
            }
            if (!bad && !h) hcount[i] = -1;
            ids[i].index = i;
            if (!bad) {
                double *p = &m->pos[3 * i], v2[2];
                int c3[3], c2[2];
                static const char *const k3[3] = {"x3", "y3", "z3"}, *const k2[2] = {"x2", "y2"};
                for (int k = 0; k < 3 && !bad; k++)
                    bad = (c3[k] = coord(name, a, id, k3[k], &p[k])) < 0;
                for (int k = 0; k < 2 && !bad; k++)
                    bad = (c2[k] = coord(name, a, id, k2[k], &v2[k])) < 0;
                if (!bad && (c3[0] + c3[1] + c3[2]) % 3) {
                    dfs_set_error("%s: line %ld: atom %s has only some of x3, y3, z3", name,
                                  line_of(a), id);
                    bad = 1;
                } else if (!bad && c3[0]) {
                    n3++;
                } else if (!bad && c2[0] && c2[1]) {
                    p[0] = v2[0], p[1] = v2[1], p[2] = 0, n2++;
                } else if (!bad) {
                    p[0] = p[1] = p[2] = 0;
                }
            }
            xmlFree(id), xmlFree(el), xmlFree(q), xmlFree(h);
            if (bad) return -1;
            i++;
        }
    }
    /* every atom in 3-D, else every atom in 2-D (the 3-D ones flattened), else none */
    *dim = n3 == n ? 3 : n3 + n2 == n ? 2 : 0;
    if (*dim == 2) {
        i = 0;
        for (const xmlNode *aa = mol->children; aa; aa = aa->next)
            for (const xmlNode *a = is_elem(aa, "atomArray") ? aa->children : NULL; a; a = a->next)
                if (is_elem(a, "atom")) {
                    double *p = &m->pos[3 * i++], v;
                    if (coord(name, a, "", "x2", &v) == 1) p[0] = v;
                    if (coord(name, a, "", "y2", &v) == 1) p[1] = v;
                    p[2] = 0;
                }
    } else if (*dim == 0) {
        memset(m->pos, 0, sizeof *m->pos * 3 * (size_t)n);
    }
    qsort(ids, (size_t)n, sizeof *ids, cmp_id);
    for (int k = 1; k < n; k++)
        if (!strcmp(ids[k].id, ids[k - 1].id)) {
            dfs_set_error("%s: atom id \"%s\" is used twice", name, ids[k].id);
            return -1;
        }
    *st = DFS_OK;
    return 0;
}

/* The bonds of mol into m. 0, or -1 with the message set and *st. */
static int cml_bonds(const char *name, const xmlNode *mol, dfs_mol *m, const cml_id *ids,
                     dfs_status *st) {
    int nb = 0;
    for (const xmlNode *ba = mol->children; ba; ba = ba->next)
        for (const xmlNode *b = is_elem(ba, "bondArray") ? ba->children : NULL; b; b = b->next)
            nb += is_elem(b, "bond");
    *st = DFS_ERR_NOMEM;
    dfs_mol_bond *bonds = malloc(((size_t)nb + 1) * sizeof *bonds);
    long *lines = malloc(((size_t)nb + 1) * sizeof *lines);
    int k = 0, rc = -1;
    if (!bonds || !lines) {
        dfs_set_error("%s: out of memory (%d bonds)", name, nb);
        goto done;
    }
    *st = DFS_ERR_FORMAT;
    for (const xmlNode *ba = mol->children; ba; ba = ba->next)
        for (const xmlNode *b = is_elem(ba, "bondArray") ? ba->children : NULL; b; b = b->next) {
            if (!is_elem(b, "bond")) continue;
            char *refs = attr(b, "atomRefs2"), *order = attr(b, "order");
            const char *t[3] = {0};
            size_t tn[3] = {0}, at = 0, len = refs ? strlen(refs) : 0;
            int nt = 0;
            while (refs && nt < 3) {
                while (at < len && strchr(" \t\r\n", refs[at]))
                    at++;
                if (at == len) break;
                t[nt] = refs + at;
                while (at < len && !strchr(" \t\r\n", refs[at]))
                    at++;
                tn[nt] = (size_t)(refs + at - t[nt]);
                nt++;
            }
            int a = nt == 2 ? find_id(ids, m->n, t[0], tn[0]) : -1;
            int c = nt == 2 ? find_id(ids, m->n, t[1], tn[1]) : -1;
            int o = cml_order(order), bad = 1;
            if (nt != 2)
                dfs_set_error("%s: line %ld: a bond's atomRefs2=\"%s\" does not name two atoms",
                              name, line_of(b), refs ? mol_quote(refs, len, 0) : "(none)");
            else if (a < 0 || c < 0)
                dfs_set_error("%s: line %ld: a bond names atom \"%s\", which is not in the "
                              "atomArray",
                              name, line_of(b),
                              a < 0 ? mol_quote(t[0], tn[0], 0) : mol_quote(t[1], tn[1], 0));
            else if (a == c)
                dfs_set_error("%s: line %ld: a bond of atom %s to itself", name, line_of(b),
                              mol_quote(t[0], tn[0], 0));
            else if (!o)
                dfs_set_error("%s: line %ld: bond order \"%s\" (want 1, 2, 3, S, D, T or A)", name,
                              line_of(b), mol_quote(order, strlen(order), 0));
            else
                bad = 0;
            xmlFree(refs), xmlFree(order);
            if (bad) goto done;
            lines[k] = line_of(b);
            bonds[k++] = (dfs_mol_bond){a, c, o};
        }
    int badb, dup;
    if ((*st = mol_bonds_check(bonds, k, m->n, &badb, &dup)) == DFS_ERR_NOMEM) {
        dfs_set_error("%s: out of memory", name);
        goto done;
    }
    if (dup >= 0) {
        dfs_set_error("%s: line %ld: a second bond between the same two atoms", name, lines[dup]);
        *st = DFS_ERR_FORMAT;
        goto done;
    }
    if (!(*st = dfs_mol_set_bonds(m, bonds, k))) rc = 0;
done:
    free(bonds);
    free(lines);
    return rc;
}

/* <name>'s text, else the id attribute, with line breaks as spaces, trimmed; NULL when out of
 * memory. */
static char *cml_title(const xmlNode *mol) {
    char *t = NULL;
    for (const xmlNode *c = mol->children; c && !t; c = c->next)
        if (is_elem(c, "name")) t = (char *)xmlNodeGetContent(c);
    if (!t) t = attr(mol, "id");
    const char *s = t ? t : "";
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", *s))
        s++, n--;
    while (n && strchr(" \t\r\n", s[n - 1]))
        n--;
    char *r = strndup(s, n);
    for (size_t i = 0; r && i < n; i++)
        if (r[i] == '\r' || r[i] == '\n' || r[i] == '\t') r[i] = ' ';
    xmlFree(t);
    return r;
}

dfs_status dfs_cml_parse(const char *name, const char *text, size_t len, dfs_mol *m,
                         dfs_cml_info *info) {
    if (!m) {
        dfs_set_error("dfs_cml_parse: NULL molecule");
        return DFS_ERR_ARG;
    }
    memset(m, 0, sizeof *m);
    if (info) memset(info, 0, sizeof *info);
    if (!name || (!text && len)) {
        dfs_set_error("dfs_cml_parse: NULL argument");
        return DFS_ERR_ARG;
    }
    if (len > INT_MAX) {
        dfs_set_error("%s: %zu bytes is too large for a CML molecule", name, len);
        return DFS_ERR_FORMAT;
    }
    xmlInitParser();
    xmlParserCtxtPtr ctx = xmlNewParserCtxt();
    if (!ctx) {
        dfs_set_error("%s: out of memory for the XML parser", name);
        return DFS_ERR_NOMEM;
    }
    /* no network, no external entities or DTDs (neither NOENT nor DTDLOAD), no messages on
     * stderr; BIG_LINES: line numbers past 65535 */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_BIG_LINES;
    xmlDocPtr doc = xmlCtxtReadMemory(ctx, text ? text : "", (int)len, name, NULL, opts);
    dfs_status st = DFS_ERR_FORMAT;
    cml_id *ids = NULL;
    int *hcount = NULL;
    if (!doc) {
        const char *msg = ctx->lastError.message ? ctx->lastError.message : "not XML\n";
        size_t ml = strlen(msg);
        while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
            ml--;
        dfs_set_error("%s: line %d: not well-formed XML: %.*s", name,
                      ctx->lastError.line > 0 ? ctx->lastError.line : mol_line_of(text, len),
                      (int)ml, msg);
        xmlFreeParserCtxt(ctx);
        return DFS_ERR_FORMAT;
    }
    const xmlNode *root = xmlDocGetRootElement(doc), *mol = find_elem(root, "molecule");
    int dim = 0;
    if (!mol) {
        dfs_set_error("%s: line %ld: no <molecule> element", name, root ? line_of(root) : 1L);
        goto fail;
    }
    if (cml_atoms(name, mol, m, &ids, &hcount, &dim, &st)) goto fail;
    if (cml_bonds(name, mol, m, ids, &st)) goto fail;
    char *title = cml_title(mol);
    st = title ? DFS_OK : DFS_ERR_NOMEM;
    if (title) {
        free(m->title);
        m->title = title;
    } else {
        dfs_set_error("%s: out of memory", name);
        goto fail;
    }
    if (info) {
        info->dim = dim;
        /* a hydrogenCount may be up to 1e9 (mol_parse_int): summed in 64 bits (10000 atoms at
         * most), then capped, so that three large counts do not overflow an int */
        long long implicit_h = 0;
        for (int i = 0; i < m->n; i++) {
            if (hcount[i] < 0) continue;
            int explicit_h = 0;
            for (int k = 0; k < m->n_bonds; k++) {
                const dfs_mol_bond *b = &m->bonds[k];
                explicit_h += (b->a == i && m->z[b->b] == 1) || (b->b == i && m->z[b->a] == 1);
            }
            if (hcount[i] > explicit_h) implicit_h += hcount[i] - explicit_h;
        }
        info->implicit_h = implicit_h < INT_MAX ? (int)implicit_h : INT_MAX;
    }
    goto done;
fail:
    dfs_mol_free(m);
done:
    /* ids has one more entry than atoms, calloc'ed and filled in order: NULL ends those made */
    for (int i = 0; ids && ids[i].id; i++)
        free(ids[i].id);
    free(ids);
    free(hcount);
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctx);
    if (st && info) memset(info, 0, sizeof *info);
    return st;
}

dfs_status dfs_cml_read(const char *path, dfs_mol *m, dfs_cml_info *info) {
    if (m) memset(m, 0, sizeof *m);
    if (info) memset(info, 0, sizeof *info);
    char *buf;
    size_t size;
    dfs_status st = dfs_read_file(path, SRC_MAX_BYTES, "a CML molecule", &buf, &size);
    if (st) return st;
    st = dfs_cml_parse(path, buf, size, m, info);
    free(buf);
    return st;
}

/* ---- names and the filter ---------------------------------------------------------------- */

const char *const dfs_molsrc_names[DFS_MOLSRC_COUNT] = {"chemical-structures", "avogadro", "g2",
                                                        "nci"};
const char *const dfs_molsrc_packages[DFS_MOLSRC_COUNT] = {
    "chemical-structures-data", "libavogadro-data", "python3-ase", "rdkit-data"};
/* Where each package puts its molecules (below options.root). */
static const char *const SRC_PATH[DFS_MOLSRC_COUNT] = {
    "/usr/share/chemical-structures", "/usr/share/avogadro2/molecules",
    "/usr/lib/python3/dist-packages/ase/collections/g2.json",
    "/usr/share/RDKit/Data/NCI/first_5K.smi"};
const char *const dfs_moldrop_names[DFS_MOLDROP_COUNT] = {
    "kept",  "unreadable", "element",   "heavy-atoms", "charged",
    "no-3d", "implicit-h", "fragments", "open-shell",  "duplicate"};

int dfs_molsrc_find(const char *name, size_t len) {
    for (int s = 0; name && s < DFS_MOLSRC_COUNT; s++)
        if (strlen(dfs_molsrc_names[s]) == len && !memcmp(name, dfs_molsrc_names[s], len)) return s;
    return -1;
}

/* The filter; geometry 0 leaves out the NO_3D test (obabel's first pass has no coordinates). */
static dfs_status filter(const dfs_mol *m, int has_bonds, int max_heavy, int geometry,
                         dfs_moldrop *why) {
    *why = DFS_MOLDROP_NONE;
    int heavy = 0;
    for (int i = 0; i < m->n; i++) {
        int z = m->z[i];
        if (z != 1 && z != 6 && z != 7 && z != 8 && z != 9) {
            *why = DFS_MOLDROP_ELEMENT;
            return DFS_OK;
        }
        heavy += z != 1;
    }
    if (heavy > max_heavy) *why = DFS_MOLDROP_HEAVY;
    for (int i = 0; i < m->n && !*why; i++)
        if (m->charge[i]) *why = DFS_MOLDROP_CHARGED;
    for (int i = 0; i < m->n && geometry && !*why; i++)
        for (int j = i + 1; j < m->n && !*why; j++) {
            const double *a = &m->pos[3 * i], *b = &m->pos[3 * j];
            double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
            if (dx * dx + dy * dy + dz * dz < MIN_DIST * MIN_DIST) *why = DFS_MOLDROP_NO_3D;
        }
    if (*why) return DFS_OK;
    dfs_mol_check c;
    dfs_status st = has_bonds ? dfs_mol_check_bonds(m, &c) : dfs_mol_check_edm(m, &c);
    if (st) return st;
    if (c.n_fragments != 1) *why = DFS_MOLDROP_FRAGMENTS;
    return DFS_OK;
}

dfs_status dfs_moldata_filter(const dfs_mol *m, int has_bonds, int max_heavy, dfs_moldrop *why) {
    if (!why || !m || m->n < 0 || (m->n && (!m->z || !m->pos || !m->charge))) {
        if (why) *why = DFS_MOLDROP_NONE;
        dfs_set_error("dfs_moldata_filter: NULL or malformed argument");
        return DFS_ERR_ARG;
    }
    return filter(m, has_bonds, max_heavy, 1, why);
}

void dfs_moldata_options_default(dfs_moldata_options *o) {
    memset(o, 0, sizeof *o);
    o->sources = (1u << DFS_MOLSRC_COUNT) - 1;
    o->max_heavy = 9;
    o->obabel = "obabel";
    o->gen3d = "med";
}

/* ---- the set being built ----------------------------------------------------------------- */

typedef struct {
    dfs_moldata *d;
    const dfs_moldata_options *o;
    int cap; /* entries of d->source and d->forms */
} builder;

/* "SOURCE NAME" with spaces in NAME as '_', cut to the 80 characters an SDF title may hold. */
static dfs_status set_title(dfs_mol *m, int src, const char *name) {
    char t[81];
    snprintf(t, sizeof t, "%s %s", dfs_molsrc_names[src], name);
    for (char *c = t + strlen(dfs_molsrc_names[src]) + 1; *c; c++)
        if (*c == ' ' || *c == '\t' || *c == '\r' || *c == '\n') *c = '_';
    return dfs_mol_set_title(m, t);
}

/* Count *m (owned; moved into the set or freed) for source src: dropped for why, else a
 * duplicate or added. Molecules without bonds of their own get EDM's perceived ones. */
static dfs_status offer(builder *B, int src, dfs_mol *m, int has_bonds, dfs_moldrop why) {
    dfs_moldata *d = B->d;
    dfs_molsrc_count *c = &d->count[src];
    if (why) {
        c->dropped[why]++;
        dfs_mol_free(m);
        return DFS_OK;
    }
    c->filtered++;
    dfs_mol p;
    char *form = NULL;
    dfs_status st = dfs_mol_copy(&p, m);
    if (!st && !(st = dfs_mol_perceive_bonds(&p))) st = dfs_mol_canonical(&p, &form);
    if (!st && !has_bonds) st = dfs_mol_set_bonds(m, p.bonds, p.n_bonds);
    dfs_mol_free(&p);
    if (st) goto out;
    /* a linear search: about a thousand forms */
    for (int i = 0; i < d->mols.n; i++)
        if (!strcmp(d->forms[i], form)) {
            c->dropped[DFS_MOLDROP_DUPLICATE]++;
            dfs_log(DFS_LOG_DEBUG, "molecules: %s: the bond graph of %s, kept before", m->title,
                    d->mols.mols[i].title);
            goto out;
        }
    if (d->mols.n == B->cap) {
        int cap = B->cap ? 2 * B->cap : 256;
        int *s = realloc(d->source, sizeof *s * (size_t)cap);
        if (s) d->source = s;
        char **f = s ? realloc(d->forms, sizeof *f * (size_t)cap) : NULL;
        if (f) d->forms = f;
        if (!s || !f) {
            dfs_set_error("molecules: out of memory (%d molecules)", cap);
            st = DFS_ERR_NOMEM;
            goto out;
        }
        B->cap = cap;
    }
    int i = d->mols.n;
    if ((st = dfs_mol_set_push(&d->mols, m))) goto out;
    d->source[i] = src;
    d->forms[i] = form;
    form = NULL;
    c->kept++;
    c->file_bonds += has_bonds != 0;
out:
    free(form);
    dfs_mol_free(m);
    return st;
}

/* A file, entry or line that could not be read: counted, its message logged. */
static void unreadable(builder *B, int src) {
    B->d->count[src].dropped[DFS_MOLDROP_UNREADABLE]++;
    dfs_log(DFS_LOG_WARN, "%s: %s (left out)", dfs_molsrc_names[src], dfs_last_error());
}

/* root + path, malloc'ed. */
static char *src_path(const builder *B, int src) {
    const char *root = B->o->root ? B->o->root : "";
    size_t n = strlen(root) + strlen(SRC_PATH[src]) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s", root, SRC_PATH[src]);
    return p;
}

static dfs_status missing(int src, const char *path, int err) {
    dfs_set_error("%s: %s: %s (install the Debian package %s)", dfs_molsrc_names[src], path,
                  strerror(err), dfs_molsrc_packages[src]);
    return DFS_ERR_IO;
}

/* ---- CML folders ------------------------------------------------------------------------- */

typedef struct {
    char **p;
    int n, cap;
} strs;

static void strs_free(strs *s) {
    for (int i = 0; i < s->n; i++)
        free(s->p[i]);
    free(s->p);
    memset(s, 0, sizeof *s);
}

static int strs_push(strs *s, char *p) {
    if (!p) return -1;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **q = realloc(s->p, sizeof *q * (size_t)cap);
        if (!q) {
            free(p);
            return -1;
        }
        s->p = q;
        s->cap = cap;
    }
    s->p[s->n++] = p;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .cml files at depths lo..hi below dir (1: in dir itself) as paths relative to base,
 * each folder's entries in strcmp order. */
static dfs_status walk(const char *dir, size_t base, int depth, int lo, int hi, strs *out) {
    DIR *dh = opendir(dir);
    if (!dh) {
        dfs_set_error("%s: %s", dir, strerror(errno));
        return DFS_ERR_IO;
    }
    strs names = {0};
    struct dirent *e;
    dfs_status st = DFS_OK;
    while ((e = readdir(dh)))
        if (e->d_name[0] != '.' && strs_push(&names, strdup(e->d_name))) st = DFS_ERR_NOMEM;
    closedir(dh);
    if (names.n) qsort(names.p, (size_t)names.n, sizeof *names.p, cmp_str);
    for (int i = 0; i < names.n && !st; i++) {
        size_t n = strlen(dir) + strlen(names.p[i]) + 2;
        char *path = malloc(n);
        if (!path) {
            st = DFS_ERR_NOMEM;
            break;
        }
        snprintf(path, n, "%s/%s", dir, names.p[i]);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && depth < hi) {
            st = walk(path, base, depth + 1, lo, hi, out);
        } else if (depth >= lo && strlen(names.p[i]) > 4 &&
                   !strcmp(names.p[i] + strlen(names.p[i]) - 4, ".cml")) {
            if (strs_push(out, strdup(path + base))) st = DFS_ERR_NOMEM;
        }
        free(path);
    }
    strs_free(&names);
    if (st == DFS_ERR_NOMEM) dfs_set_error("%s: out of memory listing the files", dir);
    return st;
}

static dfs_status read_cml_source(builder *B, int src) {
    char *dir = src_path(B, src);
    if (!dir) {
        dfs_set_error("molecules: out of memory");
        return DFS_ERR_NOMEM;
    }
    struct stat sb;
    dfs_status st = DFS_OK;
    strs files = {0};
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = missing(src, dir, stat(dir, &sb) != 0 ? errno : ENOTDIR);
        goto done;
    }
    /* chemical-structures: GROUP/NAME.cml; Avogadro: any depth (water.cml sits on top) */
    int lo = src == DFS_MOLSRC_CHEMICAL_STRUCTURES ? 2 : 1;
    int hi = src == DFS_MOLSRC_CHEMICAL_STRUCTURES ? 2 : 8;
    if ((st = walk(dir, strlen(dir) + 1, 1, lo, hi, &files))) goto done;
    int n = B->o->limit > 0 && B->o->limit < files.n ? B->o->limit : files.n;
    size_t plen = strlen(dir) + 2;
    for (int i = 0; i < n && !st; i++) {
        char *path = malloc(plen + strlen(files.p[i]));
        if (!path) {
            dfs_set_error("molecules: out of memory");
            st = DFS_ERR_NOMEM;
            break;
        }
        snprintf(path, plen + strlen(files.p[i]), "%s/%s", dir, files.p[i]);
        B->d->count[src].read++;
        dfs_mol m;
        dfs_cml_info info;
        st = dfs_cml_read(path, &m, &info);
        free(path);
        if (st == DFS_ERR_FORMAT || st == DFS_ERR_IO) {
            unreadable(B, src);
            st = DFS_OK;
            continue;
        }
        if (st) break;
        files.p[i][strlen(files.p[i]) - 4] = 0; /* the name: the path without .cml */
        dfs_moldrop why;
        if ((st = set_title(&m, src, files.p[i])) ||
            (st = filter(&m, 1, B->d->max_heavy, 1, &why))) {
            dfs_mol_free(&m);
            break;
        }
        if (info.dim != 3 && (!why || why > DFS_MOLDROP_NO_3D)) why = DFS_MOLDROP_NO_3D;
        if (info.implicit_h && (!why || why > DFS_MOLDROP_IMPLICIT_H)) why = DFS_MOLDROP_IMPLICIT_H;
        st = offer(B, src, &m, 1, why);
    }
done:
    strs_free(&files);
    free(dir);
    return st;
}

/* ---- ASE's G2 set ------------------------------------------------------------------------ */

/* One entry of an ASE database in JSON ({"numbers": [Z...], "positions": [[x, y, z]...],
 * "key_value_pairs": {"name": ...}, "initial_magmoms": [...]}) into m. 0, or -1 with the
 * message set and *st (DFS_ERR_FORMAT, DFS_ERR_NOMEM). */
static int g2_entry(const char *path, const cJSON *e, dfs_mol *m, int *open_shell, dfs_status *st) {
    const char *key = e->string ? e->string : "?";
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(e, "numbers");
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(e, "positions");
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(e, "key_value_pairs");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(kv, "name");
    const cJSON *mag = cJSON_GetObjectItemCaseSensitive(e, "initial_magmoms");
    *st = DFS_ERR_FORMAT;
    int n = cJSON_GetArraySize(num);
    if (!cJSON_IsArray(num) || !cJSON_IsArray(pos) || cJSON_GetArraySize(pos) != n ||
        n > DFS_MOL_MAX_ATOMS) {
        dfs_set_error("%s: entry \"%s\": want arrays \"numbers\" and \"positions\" of the same "
                      "length (at most %d)",
                      path, key, DFS_MOL_MAX_ATOMS);
        return -1;
    }
    if ((*st = dfs_mol_init(m, n))) return -1;
    *st = DFS_ERR_FORMAT;
    for (int i = 0; i < n; i++) {
        const cJSON *p = cJSON_GetArrayItem(pos, i);
        if (!dfs_json_int(cJSON_GetArrayItem(num, i), &m->z[i]) || !dfs_element_symbol(m->z[i])) {
            dfs_set_error("%s: entry \"%s\": numbers[%d] is not an atomic number 1..%d", path, key,
                          i, DFS_MOL_MAX_Z);
            return -1;
        }
        int ok = cJSON_IsArray(p) && cJSON_GetArraySize(p) == 3;
        for (int k = 0; k < 3 && ok; k++) {
            const cJSON *v = cJSON_GetArrayItem(p, k);
            ok = cJSON_IsNumber(v) && isfinite(v->valuedouble);
            if (ok) m->pos[3 * i + k] = v->valuedouble;
        }
        if (!ok) {
            dfs_set_error("%s: entry \"%s\": positions[%d] is not 3 finite numbers", path, key, i);
            return -1;
        }
    }
    *open_shell = 0;
    if (mag && (!cJSON_IsArray(mag) || cJSON_GetArraySize(mag) != n)) {
        dfs_set_error("%s: entry \"%s\": initial_magmoms is not an array of %d numbers", path, key,
                      n);
        return -1;
    }
    for (int i = 0; i < n && mag; i++) {
        const cJSON *v = cJSON_GetArrayItem(mag, i);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            dfs_set_error("%s: entry \"%s\": initial_magmoms[%d] is not a number", path, key, i);
            return -1;
        }
        *open_shell |= v->valuedouble != 0;
    }
    if ((*st = dfs_mol_set_title(m, cJSON_IsString(name) ? name->valuestring : key))) return -1;
    *st = DFS_OK;
    return 0;
}

static dfs_status read_g2(builder *B, int src) {
    char *path = src_path(B, src), *text = NULL;
    size_t size;
    cJSON *root = NULL;
    dfs_status st;
    if (!path) {
        dfs_set_error("molecules: out of memory");
        return DFS_ERR_NOMEM;
    }
    if (access(path, F_OK) != 0) {
        st = missing(src, path, errno);
        goto done;
    }
    if ((st = dfs_read_file(path, SRC_MAX_BYTES, "ASE's JSON", &text, &size))) goto done;
    const char *end = NULL;
    if (!(root = cJSON_ParseWithLengthOpts(text, size, &end, 0)) || !cJSON_IsObject(root)) {
        size_t at = end && end >= text && end <= text + size ? (size_t)(end - text) : 0;
        dfs_set_error("%s: line %d: %s", path, mol_line_of(text, at),
                      root ? "want a JSON object of entries" : "not valid JSON");
        st = DFS_ERR_FORMAT;
        goto done;
    }
    /* the entries are the object members ("1", "2", ...); "ids" and "nextid" are not */
    const cJSON *e;
    int n = 0;
    cJSON_ArrayForEach(e, root) {
        if (!cJSON_IsObject(e)) continue;
        if (B->o->limit > 0 && n == B->o->limit) break;
        n++;
        B->d->count[src].read++;
        dfs_mol m = {0};
        int open_shell = 0;
        dfs_moldrop why;
        if (g2_entry(path, e, &m, &open_shell, &st)) {
            dfs_mol_free(&m);
            if (st != DFS_ERR_FORMAT) break;
            unreadable(B, src);
            st = DFS_OK;
            continue;
        }
        char *name = strdup(m.title);
        if (!name || (st = set_title(&m, src, name)) ||
            (st = filter(&m, 0, B->d->max_heavy, 1, &why))) {
            if (!name) dfs_set_error("molecules: out of memory"), st = DFS_ERR_NOMEM;
            free(name);
            dfs_mol_free(&m);
            break;
        }
        free(name);
        if (!why && open_shell) why = DFS_MOLDROP_OPEN_SHELL;
        if ((st = offer(B, src, &m, 0, why))) break;
    }
done:
    cJSON_Delete(root);
    free(text);
    free(path);
    return st;
}

/* ---- Open Babel, run as a program -------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
} bytes;

static int bytes_add(bytes *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n + 1) {
            if (cap > (size_t)DFS_MOL_MAX_BYTES) return -1;
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* What obabel said last: its last line on stderr that is not a ruler of '=' or the count
 * "N molecules converted", trimmed, in a static buffer per thread. */
static const char *last_words(const bytes *err) {
    static _Thread_local char msg[240];
    msg[0] = 0;
    const char *p = err->p ? err->p : "", *end = p + err->n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        const char *s = p;
        mol_trim(&s, &n);
        while (n && s[n - 1] == '\r')
            n--;
        int ruler = n && strspn(s, "=") >= n;
        int count = n > 20 && memmem(s, n, " converted", 10);
        if (n && !ruler && !count) snprintf(msg, sizeof msg, "%.*s", (int)n, s);
        p = e + (nl != NULL);
    }
    return msg[0] ? msg : "(nothing on stderr)";
}

/* Run argv (argv[0] looked up in PATH) with in[0..in_len) as its standard input, its standard
 * output into *out and standard error into *err. total > 0: progress(user, k, total) as the
 * k-th "$$$$" line (the end of an SDF molecule) arrives. DFS_ERR_IO when it cannot be started
 * (not found: naming the package openbabel), is killed or exits non-zero. */
static dfs_status run(const char *const *argv, const char *in, size_t in_len, bytes *out,
                      bytes *err, long total, dfs_progress_fn progress, void *user) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    const char *prog = argv[0];
    /* standard input from an unlinked temporary file: no pipe to write while reading */
    FILE *tf = tmpfile();
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    dfs_status st = DFS_ERR_IO;
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    int fa_ok = 0;
    if (!tf || (in_len && fwrite(in, 1, in_len, tf) != in_len) || fflush(tf) ||
        fseek(tf, 0, SEEK_SET)) {
        dfs_set_error("%s: cannot write its input to a temporary file: %s", prog, strerror(errno));
        goto done;
    }
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || posix_spawn_file_actions_init(&fa)) {
        dfs_set_error("%s: cannot make pipes: %s", prog, strerror(errno));
        goto done;
    }
    fa_ok = 1;
    int rc = posix_spawn_file_actions_adddup2(&fa, fileno(tf), 0);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    if (!rc) rc = posix_spawnp(&pid, prog, &fa, NULL, (char *const *)argv, environ);
    if (rc) {
        pid = -1;
        if (rc == ENOENT)
            dfs_set_error("%s: not found in PATH (install the Debian package openbabel)", prog);
        else
            dfs_set_error("%s: cannot run it: %s", prog, strerror(rc));
        goto done;
    }
    close(po[1]), close(pe[1]);
    po[1] = pe[1] = -1;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2, oom = 0;
    size_t scan = 0;
    long done_n = 0;
    char chunk[65536];
    while (open_fds) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            dfs_set_error("%s: poll: %s", prog, strerror(errno));
            goto done;
        }
        for (int k = 0; k < 2; k++) {
            if (fds[k].fd < 0 || !fds[k].revents) continue;
            ssize_t r = read(fds[k].fd, chunk, sizeof chunk);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                close(fds[k].fd);
                fds[k].fd = -1;
                if (k == 0)
                    po[0] = -1;
                else
                    pe[0] = -1;
                open_fds--;
                continue;
            }
            bytes *b = k == 0 ? out : err;
            if (k == 1 && b->n > 65536) { /* keep the tail of a chatty stderr */
                memmove(b->p, b->p + b->n - 32768, 32768);
                b->n = 32768;
            }
            if (bytes_add(b, chunk, (size_t)r)) oom = 1;
            if (k == 0 && total > 0 && progress && !oom) {
                const char *f;
                while ((f = memmem(out->p + scan, out->n - scan, "\n$$$$", 5))) {
                    scan = (size_t)(f - out->p) + 5;
                    progress(user, ++done_n < total ? done_n : total, total);
                }
                if (out->n > scan + 4) scan = out->n - 4;
            }
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            dfs_set_error("%s: waitpid: %s", prog, strerror(errno));
            pid = -1;
            goto done;
        }
    }
    pid = -1;
    if (oom) {
        dfs_set_error("%s: out of memory for its output (%zu bytes so far)", prog, out->n);
        st = DFS_ERR_NOMEM;
    } else if (WIFSIGNALED(status)) {
        dfs_set_error("%s was killed by signal %d (%s); it said: %s", prog, WTERMSIG(status),
                      strsignal(WTERMSIG(status)), last_words(err));
    } else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        dfs_set_error("%s exited with status %d: %s", prog, WEXITSTATUS(status), last_words(err));
    } else {
        st = DFS_OK;
    }
done:
    if (pid > 0) { /* a failure while it runs: stop it rather than leave it behind */
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    for (int k = 0; k < 2; k++) {
        if (po[k] >= 0) close(po[k]);
        if (pe[k] >= 0) close(pe[k]);
    }
    if (fa_ok) posix_spawn_file_actions_destroy(&fa);
    if (tf) fclose(tf);
    if (st) {
        free(out->p), free(err->p);
        memset(out, 0, sizeof *out);
        memset(err, 0, sizeof *err);
    }
    return st;
}

/* ---- NCI SMILES through obabel ----------------------------------------------------------- */

typedef struct {
    const char *smiles, *id; /* into the file's text (NUL-terminated there) */
    int line;
} smi_line;

/* obabel's SDF out[0..) for the molecules sent as titles 0..n-1: mols[k] and got[k] = 1 for
 * each that came back and reads; got[k] = 2 for one the SDF reader refuses (counted
 * unreadable, with its message). A molecule titled with anything but an index sent once fails
 * with DFS_ERR_FORMAT: the output is not what was asked for. */
static dfs_status parse_obabel(builder *B, int src, const bytes *out, const smi_line *L, int n,
                               dfs_mol *mols, uint8_t *got, const char *what, int *n_blocks) {
    const char *p = out->p ? out->p : "", *end = p + out->n;
    *n_blocks = 0;
    while (p < end) {
        const char *f = memmem(p, (size_t)(end - p), "\n$$$$", 5);
        const char *e = f ? f + 5 : end;
        while (e < end && *e != '\n')
            e++;
        if (e < end) e++;
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t tn = nl ? (size_t)(nl - p) : (size_t)(e - p);
        if (tn && p[tn - 1] == '\r') tn--;
        int k;
        if (!mol_parse_int(p, tn, &k) || k < 0 || k >= n || got[k]) {
            const char *blank = p;
            while (blank < e && strchr(" \t\r\n", *blank))
                blank++;
            if (blank == e) break; /* trailing blank lines */
            dfs_set_error("%s: its output has a molecule titled \"%s\", which is not one of the "
                          "%d sent",
                          what, mol_quote(p, tn, 0), n);
            return DFS_ERR_FORMAT;
        }
        (*n_blocks)++;
        char name[160];
        snprintf(name, sizeof name, "%s's SDF for line %d (%s)", what, L[k].line, L[k].smiles);
        dfs_mol_set set = {0};
        dfs_status st = dfs_sdf_parse(name, p, (size_t)(e - p), &set);
        if (!st && set.n != 1) {
            dfs_set_error("%s: %d molecules in one block", name, set.n);
            st = DFS_ERR_FORMAT;
        }
        if (st == DFS_ERR_FORMAT) {
            got[k] = 2;
            unreadable(B, src);
        } else if (st) {
            dfs_mol_set_free(&set);
            return st;
        } else {
            got[k] = 1;
            mols[k] = set.mols[0];
            memset(&set.mols[0], 0, sizeof set.mols[0]);
        }
        dfs_mol_set_free(&set);
        p = e;
    }
    return DFS_OK;
}

/* "SMILES\tk\n" for each k with pick[k] (all when pick is NULL): obabel takes the rest of a
 * line as the title, so each molecule comes back named by its index. */
static dfs_status smiles_input(const smi_line *L, int n, const uint8_t *pick, bytes *in) {
    memset(in, 0, sizeof *in);
    char num[16];
    for (int k = 0; k < n; k++) {
        if (pick && !pick[k]) continue;
        int w = snprintf(num, sizeof num, "\t%d\n", k);
        if (bytes_add(in, L[k].smiles, strlen(L[k].smiles)) || bytes_add(in, num, (size_t)w)) {
            free(in->p);
            dfs_set_error("molecules: out of memory for obabel's input");
            return DFS_ERR_NOMEM;
        }
    }
    return DFS_OK;
}

static dfs_status read_nci(builder *B, int src) {
    const dfs_moldata_options *o = B->o;
    char *path = src_path(B, src), *text = NULL;
    size_t size;
    smi_line *L = NULL;
    dfs_mol *m0 = NULL, *m3 = NULL;
    uint8_t *got0 = NULL, *got3 = NULL, *pick = NULL;
    bytes in = {0}, out = {0}, err = {0};
    int n = 0, nb;
    dfs_status st;
    if (!path) {
        dfs_set_error("molecules: out of memory");
        return DFS_ERR_NOMEM;
    }
    if (access(path, F_OK) != 0) {
        st = missing(src, path, errno);
        goto done;
    }
    if ((st = dfs_read_file(path, SRC_MAX_BYTES, "a SMILES file", &text, &size))) goto done;
    /* lines "SMILES ID" (ID optional; blank lines skipped), cut in place */
    int lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    st = DFS_ERR_NOMEM;
    if (!(L = calloc((size_t)lines, sizeof *L))) goto nomem;
    char *p = text, *end = text + size;
    for (int line = 1; p < end; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
        *e = 0;
        char *save, *smi = strtok_r(p, " \t\r", &save),
                    *id = smi ? strtok_r(NULL, " \t\r", &save) : NULL;
        p = nl ? nl + 1 : end;
        if (!smi) continue;
        if (o->limit > 0 && n == o->limit) break;
        L[n++] = (smi_line){smi, id ? id : "", line};
    }
    B->d->count[src].read = n;
    if (!n) {
        st = DFS_OK;
        goto done;
    }
    /* obabel itself: missing, or not the program we think (its version goes into sources.json) */
    const char *const version[] = {o->obabel, "-V", NULL};
    if ((st = run(version, "", 0, &out, &err, 0, NULL, NULL))) goto done;
    size_t vl = strcspn(out.p ? out.p : "", "\r\n");
    if (!out.p || !vl || !(B->d->obabel_version = strndup(out.p, vl)) ||
        !(B->d->gen3d = strdup(o->gen3d))) {
        dfs_set_error("%s -V printed no version: is it Open Babel? (%s)", o->obabel,
                      last_words(&err));
        st = out.p && vl ? DFS_ERR_NOMEM : DFS_ERR_IO;
        goto done;
    }
    free(out.p), free(err.p);
    memset(&out, 0, sizeof out), memset(&err, 0, sizeof err);

    /* pass 1, no coordinates (fast): the atoms with explicit hydrogens, charges and bonds, for
     * the filter; -e: go on past a SMILES it cannot read (else it stops there) */
    st = DFS_ERR_NOMEM;
    if (!(m0 = calloc((size_t)n, sizeof *m0)) || !(m3 = calloc((size_t)n, sizeof *m3)) ||
        !(got0 = calloc((size_t)n, 1)) || !(got3 = calloc((size_t)n, 1)) ||
        !(pick = calloc((size_t)n, 1)))
        goto nomem;
    const char *const pass1[] = {o->obabel, "-ismi", "-osdf", "-e", "-h", NULL};
    if ((st = smiles_input(L, n, NULL, &in)) ||
        (st = run(pass1, in.p, in.n, &out, &err, 0, NULL, NULL)) ||
        (st = parse_obabel(B, src, &out, L, n, m0, got0, "obabel", &nb)))
        goto done;
    if (!nb) {
        dfs_set_error("obabel converted none of the %d SMILES of %s: %s", n, path,
                      last_words(&err));
        st = DFS_ERR_IO;
        goto done;
    }
    int survivors = 0;
    for (int k = 0; k < n; k++) {
        if (!got0[k]) {
            dfs_set_error("%s: line %d: obabel cannot read the SMILES \"%s\"", path, L[k].line,
                          L[k].smiles);
            unreadable(B, src);
            continue;
        }
        if (got0[k] == 2) continue; /* counted by parse_obabel */
        dfs_moldrop why;
        if ((st = filter(&m0[k], 1, B->d->max_heavy, 0, &why))) goto done;
        if (why)
            B->d->count[src].dropped[why]++;
        else
            pick[k] = 1, survivors++;
        dfs_mol_free(&m0[k]);
    }
    free(in.p), free(out.p), free(err.p);
    memset(&in, 0, sizeof in), memset(&out, 0, sizeof out), memset(&err, 0, sizeof err);

    /* pass 2: 3-D coordinates for the survivors (about 0.3 s each) */
    if (survivors) {
        const char *const pass2[] = {o->obabel, "-ismi",   "-osdf",  "-e",
                                     "-h",      "--gen3d", o->gen3d, NULL};
        if (o->progress) o->progress(o->progress_user, 0, survivors);
        if ((st = smiles_input(L, n, pick, &in)) ||
            (st = run(pass2, in.p, in.n, &out, &err, survivors, o->progress, o->progress_user)) ||
            (st = parse_obabel(B, src, &out, L, n, m3, got3, "obabel --gen3d", &nb)))
            goto done;
        if (o->progress) o->progress(o->progress_user, survivors, survivors);
    }
    for (int k = 0; k < n && !st; k++) {
        if (!pick[k] || got3[k] == 2) continue;
        if (!got3[k]) {
            dfs_set_error("%s: line %d: obabel --gen3d gave nothing for \"%s\" (it said: %s)", path,
                          L[k].line, L[k].smiles, last_words(&err));
            unreadable(B, src);
            continue;
        }
        char name[96];
        snprintf(name, sizeof name, "%s:%s", L[k].id, L[k].smiles);
        dfs_moldrop why;
        if ((st = set_title(&m3[k], src, name)) ||
            (st = filter(&m3[k], 1, B->d->max_heavy, 1, &why)))
            break;
        st = offer(B, src, &m3[k], 1, why);
    }
    goto done;
nomem:
    dfs_set_error("molecules: out of memory (%d SMILES)", n);
done:
    for (int k = 0; k < n && m0; k++)
        dfs_mol_free(&m0[k]);
    for (int k = 0; k < n && m3; k++)
        dfs_mol_free(&m3[k]);
    free(m0), free(m3), free(got0), free(got3), free(pick);
    free(in.p), free(out.p), free(err.p);
    free(L);
    free(text);
    free(path);
    return st;
}

/* ---- the whole set ----------------------------------------------------------------------- */

void dfs_moldata_free(dfs_moldata *d) {
    if (!d) return;
    for (int i = 0; d->forms && i < d->mols.n; i++)
        free(d->forms[i]);
    dfs_mol_set_free(&d->mols);
    free(d->forms);
    free(d->source);
    free(d->obabel_version);
    free(d->gen3d);
    free(d->root);
    memset(d, 0, sizeof *d);
}

dfs_status dfs_moldata_build(dfs_moldata *d, const dfs_moldata_options *o) {
    if (!d) {
        dfs_set_error("dfs_moldata_build: NULL set");
        return DFS_ERR_ARG;
    }
    memset(d, 0, sizeof *d);
    if (!o || o->sources >> DFS_MOLSRC_COUNT || o->limit < 0 || o->max_heavy < 0 || !o->obabel ||
        !*o->obabel || !o->gen3d || !*o->gen3d) {
        dfs_set_error("dfs_moldata_build: bad options (sources 0x%x, limit %d, max_heavy %d, "
                      "obabel and gen3d must be set)",
                      o ? o->sources : 0, o ? o->limit : 0, o ? o->max_heavy : 0);
        return DFS_ERR_ARG;
    }
    d->sources = o->sources;
    d->max_heavy = o->max_heavy;
    if (o->root && *o->root && !(d->root = strdup(o->root))) {
        dfs_set_error("molecules: out of memory");
        return DFS_ERR_NOMEM;
    }
    builder B = {d, o, 0};
    dfs_status st = DFS_OK;
    for (int s = 0; s < DFS_MOLSRC_COUNT && !st; s++) {
        if (!(o->sources >> s & 1)) continue;
        double t0 = now();
        st = s == DFS_MOLSRC_G2    ? read_g2(&B, s)
             : s == DFS_MOLSRC_NCI ? read_nci(&B, s)
                                   : read_cml_source(&B, s);
        d->count[s].seconds = now() - t0;
    }
    if (st) dfs_moldata_free(d);
    return st;
}

/* sources.json: what was read, the filter, and each source's counts. */
static char *summary_json(const dfs_moldata *d, const char *root) {
    cJSON *j = cJSON_CreateObject(), *f = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!j || !f || !arr) {
        cJSON_Delete(j), cJSON_Delete(f), cJSON_Delete(arr);
        return NULL;
    }
    cJSON_AddNumberToObject(j, "molecules", d->mols.n);
    cJSON_AddStringToObject(f, "elements", "H C N O F");
    cJSON_AddNumberToObject(f, "max_heavy_atoms", d->max_heavy);
    cJSON_AddStringToObject(f, "formal_charges", "all 0");
    cJSON_AddStringToObject(f, "fragments", "1 (the source's bonds, else EDM's perceived ones)");
    cJSON_AddStringToObject(f, "hydrogens", "explicit");
    cJSON_AddStringToObject(f, "coordinates", "3-D, no two atoms closer than 0.5 A");
    cJSON_AddStringToObject(f, "g2", "closed shells only (no initial_magmoms)");
    cJSON_AddItemToObject(j, "filter", f);
    cJSON_AddStringToObject(j, "duplicates",
                            "same dfs_mol_canonical form of EDM's perceived "
                            "bonds; the first kept, in source order");
    if (d->obabel_version) {
        cJSON_AddStringToObject(j, "obabel", d->obabel_version);
        cJSON_AddStringToObject(j, "gen3d", d->gen3d ? d->gen3d : "");
    }
    for (int s = 0; s < DFS_MOLSRC_COUNT; s++) {
        if (!(d->sources >> s & 1)) continue;
        const dfs_molsrc_count *c = &d->count[s];
        cJSON *e = cJSON_CreateObject(), *dr = cJSON_CreateObject();
        if (!e || !dr) {
            cJSON_Delete(e), cJSON_Delete(dr), cJSON_Delete(j), cJSON_Delete(arr);
            return NULL;
        }
        char path[512];
        snprintf(path, sizeof path, "%s%s", root ? root : "", SRC_PATH[s]);
        cJSON_AddStringToObject(e, "name", dfs_molsrc_names[s]);
        cJSON_AddStringToObject(e, "package", dfs_molsrc_packages[s]);
        cJSON_AddStringToObject(e, "path", path);
        cJSON_AddNumberToObject(e, "read", c->read);
        cJSON_AddNumberToObject(e, "filtered", c->filtered);
        cJSON_AddNumberToObject(e, "kept", c->kept);
        cJSON_AddNumberToObject(e, "kept_with_file_bonds", c->file_bonds);
        for (int r = 1; r < DFS_MOLDROP_COUNT; r++)
            cJSON_AddNumberToObject(dr, dfs_moldrop_names[r], c->dropped[r]);
        cJSON_AddItemToObject(e, "dropped", dr);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddItemToObject(j, "sources", arr);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}

dfs_status dfs_moldata_write(const dfs_moldata *d, const char *dir) {
    if (!d || !dir || !*dir || d->mols.n < 0 || (d->mols.n && !d->mols.mols)) {
        dfs_set_error("dfs_moldata_write: NULL argument or empty folder name");
        return DFS_ERR_ARG;
    }
    struct stat sb;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        dfs_set_error("%s: cannot create folder: %s", dir, strerror(errno));
        return DFS_ERR_IO;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        dfs_set_error("%s: exists and is not a folder", dir);
        return DFS_ERR_IO;
    }
    size_t n = strlen(dir) + 32;
    char *path = malloc(n), *json = NULL;
    dfs_status st = DFS_ERR_NOMEM;
    if (!path) goto nomem;
    snprintf(path, n, "%s/molecules.xyz", dir);
    if ((st = dfs_xyz_write(path, d->mols.mols, d->mols.n))) goto done;
    snprintf(path, n, "%s/molecules.sdf", dir);
    if ((st = dfs_sdf_write(path, d->mols.mols, d->mols.n))) goto done;
    if (!(json = summary_json(d, d->root))) goto nomem;
    snprintf(path, n, "%s/sources.json", dir);
    size_t jl = strlen(json);
    char *jn = realloc(json, jl + 2);
    if (!jn) goto nomem;
    json = jn;
    memcpy(json + jl, "\n", 2);
    st = dfs_write_atomic(path, json, jl + 1);
    goto done;
nomem:
    st = DFS_ERR_NOMEM;
    dfs_set_error("%s: out of memory writing the set", dir);
done:
    free(json);
    free(path);
    return st;
}
