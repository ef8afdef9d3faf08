/* diffuse/eval.h - sample quality: Gaussian feature statistics, Frechet distance, nearest neighbours (LAPACK). Part of diffuse.h. */
#ifndef DIFFUSE_EVAL_H
#define DIFFUSE_EVAL_H

#include "diffuse/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Sample quality: Gaussian statistics of features and the Frechet distance (src/eval/metrics.c)    */
/* ------------------------------------------------------------------------------------------ */

/* Mean and unbiased covariance (divisor n - 1) of n feature vectors, in double. */
typedef struct {
    int dim;
    long n;       /* vectors they were computed from */
    double *mean; /* (dim) */
    double *cov;  /* (dim, dim), symmetric */
} dfs_gauss_stats;

/* feat (n, dim). Fills *st (free with dfs_gauss_stats_free). DFS_ERR_ARG for n < 2 or dim
 * outside 1..65536, DFS_ERR_NAN for a non-finite feature. */
dfs_status dfs_gauss_stats_compute(const float *feat, long n, int dim, dfs_gauss_stats *st);
void dfs_gauss_stats_free(dfs_gauss_stats *st);
/* Squared Frechet distance between N(a) and N(b) (Heusel et al. 2017 eq. 6):
 * |m1 - m2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), the square roots through LAPACK's
 * symmetric eigendecomposition (dsyevd). DFS_ERR_SHAPE if the dimensions differ; *fd is NaN
 * on any error. */
dfs_status dfs_frechet_distance(const dfs_gauss_stats *a, const dfs_gauss_stats *b, double *fd);
/* Nearest neighbours: for each of nq query rows (dim floats each), the indices of its k nearest
 * of nr reference rows by Euclidean distance, nearest first, ties to the lower index, in
 * idx[nq][k] (and the squared distances in dist[nq][k] when dist != NULL). One SGEMM gives the
 * cross terms: |q - r|^2 = |q|^2 - 2 q.r + |r|^2. DFS_ERR_ARG unless 1 <= k <= nr. */
dfs_status dfs_nearest(const float *q, int nq, const float *r, int nr, int dim, int k, int *idx,
                       float *dist);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_EVAL_H */
