/* mol/canon.c - a canonical form of a molecule's labelled bond graph, and EDM's uniqueness and
 * novelty on such forms.
 *
 * The method is individualisation-refinement (McKay 1981, "Practical graph isomorphism";
 * McKay and Piperno 2014, "Practical graph isomorphism, II", Sec. 2-3), without nauty's
 * automorphism pruning:
 *   1. colour refinement (1-dimensional Weisfeiler-Lehman with edge labels): an atom's new
 *      colour is the rank of (its colour, the sorted multiset of (bond order, neighbour's
 *      colour)), repeated until no colour class splits (an equitable partition). Starting
 *      from the rank of (element, charge), the ranks depend on the graph only, not on the
 *      numbering of the atoms;
 *   2. while a class has several atoms, branch over its atoms: give each in turn a colour of
 *      its own ("individualise") and refine again (the first such class, by colour);
 *   3. at each leaf the colours number the atoms 0..n-1; the form is the smallest (elements,
 *      bonds) listing over all leaves.
 * The one pruning: in a class, only the first of a set of twins is branched on. Twins u, v
 * (same colour, the same bond to every other atom) are swapped by an automorphism that fixes
 * the atoms individualised so far, so their subtrees give the same leaves. That makes a CH3 or
 * the H of a CH2 cost one branch instead of 3! or 2.
 * Every step is a function of the graph up to renumbering, so the size and depth of the search
 * tree are too: when they exceed the limits, both of two isomorphic graphs fall back to the
 * colour-refinement summary ("wl:"), never one of them alone. */
#include <stdlib.h>
#include <string.h>

#include "mol_internal.h"

/* The most ints the per-depth arrays of the search may hold (64 MiB). */
#define CANON_MAX_LEVEL_INTS ((size_t)1 << 24)

typedef struct {
    int n, nb;
    const int *z, *charge;  /* (n) */
    int *start;             /* (n + 1) adjacency offsets */
    int *to, *ord;          /* (2 nb) neighbours sorted by index, bond orders */
    /* refinement workspace */
    int *sig;               /* (n + 2 * 2 nb) signature of each atom: colour, then sorted
                               (order, neighbour colour) pairs; atom v at sig + 2 start[v] + v */
    int *vorder, *tmp, *newcol; /* (n) */
    /* search */
    long nodes;
    int depth_cap, aborted;
    int **level;            /* (depth_cap) per-depth colours, cell members, tried: 3n each */
    int *cert, *best;       /* (2 n + 3 nb) leaf certificates */
    int have_best;
    int *inv;               /* (n) atom at each canonical position */
} canon;

/* ---- refinement -------------------------------------------------------------------------- */

static const int *sig_of(const canon *c, int v) { return c->sig + 2 * c->start[v] + v; }

/* Compare the signatures of atoms a and b: colour, degree, then the pairs. */
static int sig_cmp(const canon *c, int a, int b) {
    const int *x = sig_of(c, a), *y = sig_of(c, b);
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    int da = c->start[a + 1] - c->start[a], db = c->start[b + 1] - c->start[b];
    if (da != db) return da < db ? -1 : 1;
    for (int i = 1; i <= 2 * da; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

static int label_cmp(const canon *c, int a, int b) {
    if (c->z[a] != c->z[b]) return c->z[a] < c->z[b] ? -1 : 1;
    return (c->charge[a] > c->charge[b]) - (c->charge[a] < c->charge[b]);
}

/* Stable merge sort of a[0..n) by cmp. */
static void msort(const canon *c, int *a, int *tmp, int n, int (*cmp)(const canon *, int, int)) {
    if (n < 2) return;
    int h = n / 2;
    msort(c, a, tmp, h, cmp);
    msort(c, a + h, tmp, n - h, cmp);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp(c, a[j], a[i]) < 0 ? a[j++] : a[i++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, sizeof *a * (size_t)n);
}

static int pair_cmp(const void *p, const void *q) {
    const int *x = p, *y = q;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Rank the atoms by cmp into col: col[v] = the number of distinct keys below v's. Returns the
 * number of colours. */
static int rank(canon *c, int *col, int (*cmp)(const canon *, int, int)) {
    int n = c->n, r = 0;
    for (int v = 0; v < n; v++) c->vorder[v] = v;
    msort(c, c->vorder, c->tmp, n, cmp);
    for (int i = 0; i < n; i++) {
        if (i && cmp(c, c->vorder[i - 1], c->vorder[i])) r++;
        c->newcol[c->vorder[i]] = r;
    }
    memcpy(col, c->newcol, sizeof *col * (size_t)n);
    return n ? r + 1 : 0;
}

/* Refine col (k colours) to the coarsest equitable partition below it; returns its colours. */
static int refine(canon *c, int *col, int k) {
    for (;;) {
        for (int v = 0; v < c->n; v++) {
            int *s = c->sig + 2 * c->start[v] + v, d = c->start[v + 1] - c->start[v];
            s[0] = col[v];
            for (int e = 0; e < d; e++) {
                s[1 + 2 * e] = c->ord[c->start[v] + e];
                s[2 + 2 * e] = col[c->to[c->start[v] + e]];
            }
            qsort(s + 1, (size_t)d, 2 * sizeof *s, pair_cmp);
        }
        int k2 = rank(c, col, sig_cmp);
        if (k2 == k) return k;
        k = k2;
    }
}

/* ---- search ------------------------------------------------------------------------------ */

/* Whether u and v have the same bond to every other atom (their neighbour lists are sorted by
 * atom index). */
static int twins(const canon *c, int u, int v) {
    int i = c->start[u], ie = c->start[u + 1], j = c->start[v], je = c->start[v + 1];
    for (;;) {
        while (i < ie && c->to[i] == v) i++;
        while (j < je && c->to[j] == u) j++;
        if (i == ie || j == je) return i == ie && j == je;
        if (c->to[i] != c->to[j] || c->ord[i] != c->ord[j]) return 0;
        i++, j++;
    }
}

/* A leaf (every colour a single atom): its certificate, kept if it is the smallest so far. */
static void leaf(canon *c, const int *col) {
    int n = c->n, *q = c->cert;
    for (int v = 0; v < n; v++) c->inv[col[v]] = v;
    for (int p = 0; p < n; p++) {
        *q++ = c->z[c->inv[p]];
        *q++ = c->charge[c->inv[p]];
    }
    for (int p = 0; p < n; p++) {
        int v = c->inv[p], *first = q;
        for (int e = c->start[v]; e < c->start[v + 1]; e++)
            if (col[c->to[e]] > p) {
                q[0] = p;
                q[1] = col[c->to[e]];
                q[2] = c->ord[e];
                q += 3;
            }
        qsort(first, (size_t)(q - first) / 3, 3 * sizeof *q, pair_cmp);
    }
    size_t len = (size_t)(q - c->cert), i = 0;
    if (c->have_best) { /* keep the lexicographically smallest */
        while (i < len && c->cert[i] == c->best[i]) i++;
        if (i == len || c->cert[i] > c->best[i]) return;
    }
    memcpy(c->best, c->cert, sizeof *q * len);
    c->have_best = 1;
}

static void search(canon *c, int depth, int k) {
    if (c->aborted) return;
    if (++c->nodes > DFS_MOL_CANON_MAX_NODES) {
        c->aborted = 1;
        return;
    }
    int n = c->n, *col = c->level[depth];
    if (k == n) {
        leaf(c, col);
        return;
    }
    if (depth + 1 >= c->depth_cap) { /* no room for the children's colours */
        c->aborted = 1;
        return;
    }
    /* the first colour with several atoms, and its atoms in index order */
    int *members = col + n, *tried = col + 2 * n, nm = 0, nt = 0, t = -1;
    int *size = c->tmp; /* free between refinements */
    memset(size, 0, sizeof *size * (size_t)n);
    for (int v = 0; v < n; v++) size[col[v]]++;
    for (int r = 0; r < k && t < 0; r++)
        if (size[r] > 1) t = r;
    for (int v = 0; v < n; v++)
        if (col[v] == t) members[nm++] = v;
    if (!c->level[depth + 1] &&
        !(c->level[depth + 1] = malloc(sizeof(int) * 3 * (size_t)n))) {
        c->aborted = 2; /* out of memory */
        return;
    }
    int *child = c->level[depth + 1];
    for (int i = 0; i < nm && !c->aborted; i++) {
        int v = members[i], twin = 0;
        for (int j = 0; j < nt && !twin; j++) twin = twins(c, tried[j], v);
        if (twin) continue;
        tried[nt++] = v;
        /* individualise v: it keeps colour t, the rest of its class moves to t + 1, and every
         * colour above t moves up one */
        for (int u = 0; u < n; u++) child[u] = col[u] + (col[u] > t || (col[u] == t && u != v));
        search(c, depth + 1, refine(c, child, k + 1));
    }
}

/* ---- the form as text -------------------------------------------------------------------- */

static void put_atom(mol_buf *b, int z, int charge) {
    mol_buf_printf(b, "%s", dfs_element_symbol(z));
    if (charge) mol_buf_printf(b, "%+d", charge);
}

/* From the smallest leaf certificate: "v1:" atoms ";" bonds "a-b:order". */
static void form_exact(const canon *c, mol_buf *b) {
    mol_buf_printf(b, "v1:");
    for (int p = 0; p < c->n; p++) {
        if (p) mol_buf_printf(b, ",");
        put_atom(b, c->best[2 * p], c->best[2 * p + 1]);
    }
    mol_buf_printf(b, ";");
    const int *e = c->best + 2 * c->n;
    for (int i = 0; i < c->nb; i++)
        mol_buf_printf(b, "%s%d-%d:%d", i ? "," : "", e[3 * i], e[3 * i + 1], e[3 * i + 2]);
}

/* The equitable partition of the root: per colour, its atoms' label, how many there are, and
 * their shared signature (order.colour of each neighbour). It is the same for two graphs
 * exactly when colour refinement cannot tell them apart. */
static void form_wl(canon *c, const int *col, int k, mol_buf *b) {
    mol_buf_printf(b, "wl:");
    memcpy(c->level[0], col, sizeof *col * (size_t)c->n);
    refine(c, c->level[0], k); /* only to fill sig: col is stable, so it stays as it is */
    for (int v = 0; v < c->n; v++) c->inv[v] = -1;
    for (int v = 0; v < c->n; v++) c->tmp[v] = 0;
    for (int v = 0; v < c->n; v++) {
        if (c->inv[col[v]] < 0) c->inv[col[v]] = v;
        c->tmp[col[v]]++;
    }
    for (int r = 0; r < k; r++) {
        int v = c->inv[r], d = c->start[v + 1] - c->start[v];
        const int *s = sig_of(c, v);
        if (r) mol_buf_printf(b, ";");
        put_atom(b, c->z[v], c->charge[v]);
        mol_buf_printf(b, "*%d(", c->tmp[r]);
        for (int e = 0; e < d; e++)
            mol_buf_printf(b, "%s%d.%d", e ? "," : "", s[1 + 2 * e], s[2 + 2 * e]);
        mol_buf_printf(b, ")");
    }
}

static void canon_free(canon *c) {
    free(c->start);
    free(c->to);
    free(c->ord);
    free(c->sig);
    free(c->vorder);
    free(c->tmp);
    free(c->newcol);
    free(c->cert);
    free(c->best);
    free(c->inv);
    if (c->level)
        for (int d = 0; d < c->depth_cap; d++) free(c->level[d]);
    free(c->level);
}

dfs_status dfs_mol_canonical(const dfs_mol *m, char **form) {
    if (!form || !m || m->n < 0 || m->n > DFS_MOL_MAX_ATOMS || (m->n && (!m->z || !m->charge)) ||
        m->n_bonds < 0 || (m->n_bonds && !m->bonds)) {
        dfs_set_error("dfs_mol_canonical: NULL or malformed argument");
        return DFS_ERR_ARG;
    }
    *form = NULL;
    int bad, dup;
    dfs_status st = mol_bonds_check(m->bonds, m->n_bonds, m->n, &bad, &dup);
    if (st == DFS_ERR_ARG) {
        dfs_set_error("dfs_mol_canonical: bond %d is bad or repeats a pair", bad >= 0 ? bad : dup);
        return st;
    }
    canon c = {0};
    int n = m->n, nb = m->n_bonds;
    size_t n1 = (size_t)(n ? n : 1), e2 = 2 * (size_t)nb + 1;
    c.n = n;
    c.nb = nb;
    c.z = m->z;
    c.charge = m->charge;
    c.depth_cap = (int)(CANON_MAX_LEVEL_INTS / (3 * n1));
    if (c.depth_cap > n + 1) c.depth_cap = n + 1;
    c.start = calloc(n1 + 1, sizeof(int));
    c.to = malloc(sizeof(int) * e2);
    c.ord = malloc(sizeof(int) * e2);
    c.sig = malloc(sizeof(int) * (n1 + 2 * e2));
    c.vorder = malloc(sizeof(int) * n1);
    c.tmp = malloc(sizeof(int) * n1);
    c.newcol = malloc(sizeof(int) * n1);
    c.cert = malloc(sizeof(int) * (2 * n1 + 3 * (size_t)nb + 1));
    c.best = malloc(sizeof(int) * (2 * n1 + 3 * (size_t)nb + 1));
    c.inv = malloc(sizeof(int) * n1);
    c.level = calloc((size_t)c.depth_cap, sizeof *c.level);
    mol_buf b = {0};
    if (st || !c.start || !c.to || !c.ord || !c.sig || !c.vorder || !c.tmp || !c.newcol ||
        !c.cert || !c.best || !c.inv || !c.level || !(c.level[0] = malloc(sizeof(int) * 3 * n1)))
        goto nomem;
    /* adjacency, each atom's neighbours sorted by index (counting sort over the bonds) */
    for (int i = 0; i < nb; i++) c.start[m->bonds[i].a + 1]++, c.start[m->bonds[i].b + 1]++;
    for (int v = 0; v < n; v++) c.start[v + 1] += c.start[v];
    for (int v = 0; v < n; v++) c.tmp[v] = c.start[v];
    for (int i = 0; i < nb; i++) {
        int a = m->bonds[i].a, bb = m->bonds[i].b, o = m->bonds[i].order;
        c.to[c.tmp[a]] = bb, c.ord[c.tmp[a]++] = o;
        c.to[c.tmp[bb]] = a, c.ord[c.tmp[bb]++] = o;
    }
    for (int v = 0; v < n; v++) { /* insertion sort of (to, ord) by to; degrees are small */
        for (int i = c.start[v] + 1; i < c.start[v + 1]; i++) {
            int t = c.to[i], o = c.ord[i], j = i;
            for (; j > c.start[v] && c.to[j - 1] > t; j--) {
                c.to[j] = c.to[j - 1];
                c.ord[j] = c.ord[j - 1];
            }
            c.to[j] = t, c.ord[j] = o;
        }
    }
    int k = refine(&c, c.level[0], rank(&c, c.level[0], label_cmp));
    int *root = malloc(sizeof(int) * n1);
    if (!root) goto nomem;
    memcpy(root, c.level[0], sizeof(int) * (size_t)n);
    search(&c, 0, k);
    if (c.aborted == 2) {
        free(root);
        goto nomem;
    }
    if (c.aborted) {
        form_wl(&c, root, k, &b);
    } else {
        form_exact(&c, &b);
    }
    free(root);
    mol_buf_printf(&b, "%s", ""); /* a buffer even for an empty form */
    if (b.err) goto nomem;
    canon_free(&c);
    *form = b.p;
    return DFS_OK;
nomem:
    free(b.p);
    canon_free(&c);
    dfs_set_error("dfs_mol_canonical: out of memory (%d atoms, %d bonds)", n, nb);
    return DFS_ERR_NOMEM;
}

/* ---- uniqueness and novelty ---------------------------------------------------------------- */

typedef struct {
    const char *s;
    int i;
} keyed;

static int keyed_cmp(const void *p, const void *q) {
    const keyed *a = p, *b = q;
    int r = strcmp(a->s, b->s);
    return r ? r : (a->i > b->i) - (a->i < b->i);
}

/* The non-NULL entries of forms[0..n) sorted by (string, index) into *out (count *k). */
static dfs_status sorted(const char *const *forms, int n, keyed **out, int *k) {
    *k = 0;
    *out = malloc(sizeof **out * (size_t)(n > 0 ? n : 1));
    if (!*out) return DFS_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        if (forms[i]) (*out)[(*k)++] = (keyed){forms[i], i};
    qsort(*out, (size_t)*k, sizeof **out, keyed_cmp);
    return DFS_OK;
}

dfs_status dfs_mol_unique(const char *const *forms, int n, int *n_unique, uint8_t *first) {
    if (!n_unique || n < 0 || (n && !forms)) {
        dfs_set_error("dfs_mol_unique: NULL argument or %d forms", n);
        return DFS_ERR_ARG;
    }
    keyed *s;
    int k;
    if (sorted(forms, n, &s, &k)) {
        dfs_set_error("dfs_mol_unique: out of memory (%d forms)", n);
        return DFS_ERR_NOMEM;
    }
    if (first) memset(first, 0, (size_t)n);
    *n_unique = 0;
    for (int i = 0; i < k; i++)
        if (!i || strcmp(s[i - 1].s, s[i].s)) {
            (*n_unique)++;
            if (first) first[s[i].i] = 1; /* the lowest index of its group, by the sort */
        }
    free(s);
    return DFS_OK;
}

dfs_status dfs_mol_novel(const char *const *forms, int n, const char *const *train, int n_train,
                         int *n_novel, uint8_t *novel) {
    if (!n_novel || n < 0 || n_train < 0 || (n && !forms) || (n_train && !train)) {
        dfs_set_error("dfs_mol_novel: NULL argument or %d forms, %d training forms", n, n_train);
        return DFS_ERR_ARG;
    }
    keyed *t;
    int k;
    if (sorted(train, n_train, &t, &k)) {
        dfs_set_error("dfs_mol_novel: out of memory (%d training forms)", n_train);
        return DFS_ERR_NOMEM;
    }
    *n_novel = 0;
    for (int i = 0; i < n; i++) {
        int is_novel = 0;
        if (forms[i]) {
            int lo = 0, hi = k; /* the first training form >= forms[i] */
            while (lo < hi) {
                int mid = lo + (hi - lo) / 2;
                if (strcmp(t[mid].s, forms[i]) < 0) lo = mid + 1;
                else hi = mid;
            }
            is_novel = lo == k || strcmp(t[lo].s, forms[i]) != 0;
        }
        *n_novel += is_novel;
        if (novel) novel[i] = (uint8_t)is_novel;
    }
    free(t);
    return DFS_OK;
}
