/* align.c - the RMSD of two conformations after the best rotation (Kabsch 1976, "A solution
 * for the best rotation to relate two sets of vectors"), the rotation from LAPACK's SVD, and
 * the same over the orderings of atoms of one element (include/diffuse/mol.h). */
#include "diffuse/mol.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* RMSD of the centred point sets p and q (n, 3) after rotating q onto p: with H = q^T p
 * = U S V^T, the best proper rotation gives sum |p|^2 + sum |q|^2 - 2 (s1 + s2 + d s3), d the
 * sign of det(V U^T) (Kabsch's correction against a reflection). */
static int kabsch(const double *p, const double *q, int n, double *rmsd) {
    double H[9] = {0}, sp = 0, sq = 0;
    for (int a = 0; a < n; a++)
        for (int i = 0; i < 3; i++) {
            sp += p[3 * a + i] * p[3 * a + i];
            sq += q[3 * a + i] * q[3 * a + i];
            for (int j = 0; j < 3; j++) H[3 * i + j] += q[3 * a + i] * p[3 * a + j];
        }
    double S[3], U[9], VT[9], sup[2];
    if (LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'A', 'A', 3, 3, H, 3, S, U, 3, VT, 3, sup) != 0) return -1;
    double detU = U[0] * (U[4] * U[8] - U[5] * U[7]) - U[1] * (U[3] * U[8] - U[5] * U[6]) + U[2] * (U[3] * U[7] - U[4] * U[6]);
    double detV = VT[0] * (VT[4] * VT[8] - VT[5] * VT[7]) - VT[1] * (VT[3] * VT[8] - VT[5] * VT[6]) +
                  VT[2] * (VT[3] * VT[7] - VT[4] * VT[6]);
    double e = sp + sq - 2 * (S[0] + S[1] + (detU * detV < 0 ? -S[2] : S[2]));
    *rmsd = sqrt(e > 0 ? e / n : 0);
    return 0;
}

static void centred(const dfs_mol *m, const int *order, double *out) {
    double c[3] = {0, 0, 0};
    for (int a = 0; a < m->n; a++)
        for (int i = 0; i < 3; i++) c[i] += m->pos[3 * a + i] / m->n;
    for (int a = 0; a < m->n; a++)
        for (int i = 0; i < 3; i++) out[3 * a + i] = m->pos[3 * (order ? order[a] : a) + i] - c[i];
}

typedef struct {
    const dfs_mol *a, *b;
    double *p, *q;
    int *order, *used;
    long tried, limit;
    double best;
    int failed;
} search;

/* every assignment of b's atoms to a's atoms of the same element, depth-first */
static void assign(search *s, int k) {
    if (s->failed || s->tried >= s->limit) return;
    const int n = s->a->n;
    if (k == n) {
        double r;
        s->tried++;
        centred(s->b, s->order, s->q);
        if (kabsch(s->p, s->q, n, &r) != 0) s->failed = 1;
        else if (r < s->best) s->best = r;
        return;
    }
    for (int j = 0; j < n; j++)
        if (!s->used[j] && s->b->z[j] == s->a->z[k]) {
            s->used[j] = 1, s->order[k] = j;
            assign(s, k + 1);
            s->used[j] = 0;
        }
}

dfs_status dfs_mol_rmsd(const dfs_mol *a, const dfs_mol *b, int permute, double *rmsd) {
    if (!a || !b || !rmsd || a->n != b->n || a->n < 1) {
        dfs_set_error("rmsd: two molecules of the same number of atoms are needed (%d and %d)", a ? a->n : 0,
                      b ? b->n : 0);
        return DFS_ERR_ARG;
    }
    const int n = a->n;
    int count[DFS_MOL_MAX_Z + 1] = {0};
    for (int i = 0; i < n; i++) count[a->z[i]]++, count[b->z[i]]--;
    for (int z = 0; z <= DFS_MOL_MAX_Z; z++)
        if (count[z]) {
            dfs_set_error("rmsd: the molecules have different formulas (%s)", dfs_element_symbol(z) ? dfs_element_symbol(z) : "?");
            return DFS_ERR_ARG;
        }
    search s = {.a = a, .b = b, .limit = permute ? 1000000 : 1, .best = INFINITY};
    s.p = malloc((size_t)n * 3 * sizeof(double));
    s.q = malloc((size_t)n * 3 * sizeof(double));
    s.order = malloc((size_t)n * sizeof(int));
    s.used = calloc((size_t)n, sizeof(int));
    dfs_status st = s.p && s.q && s.order && s.used ? DFS_OK : DFS_ERR_NOMEM;
    if (st == DFS_OK) {
        centred(a, NULL, s.p);
        if (permute) assign(&s, 0);
        else {
            for (int i = 0; i < n; i++) s.order[i] = i;
            if (a->n && memcmp(a->z, b->z, (size_t)n * sizeof(int)) != 0) {
                dfs_set_error("rmsd: the atoms' elements differ in order (give permute = 1)");
                st = DFS_ERR_ARG;
            } else {
                centred(b, NULL, s.q);
                if (kabsch(s.p, s.q, n, &s.best) != 0) s.failed = 1;
            }
        }
        if (st == DFS_OK && s.failed) {
            dfs_set_error("rmsd: the SVD did not converge");
            st = DFS_ERR_NAN;
        }
    } else dfs_set_error("rmsd: out of memory");
    if (st == DFS_OK) *rmsd = s.best;
    free(s.p), free(s.q), free(s.order), free(s.used);
    return st;
}
