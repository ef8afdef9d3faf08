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


/* ------------------------------------------------------------------------------------------ */
/* Probabilistic forecasts: CRPS and coverage of sample ensembles, as CSDI (src/eval/crps.c)  */
/* ------------------------------------------------------------------------------------------ */

/* The quantile levels of the quantile CRPS: q = 0.05, 0.10, ..., 0.95 (CSDI's). */
#define DFS_CRPS_LEVELS 19

/* Scores of a sample forecast over its scored entries (n of them), computed in double. Q(q) is an
 * entry's q-quantile of its S samples by linear interpolation between order statistics (numpy's
 * default, torch.quantile's): rank h = q (S - 1), Q = x_(floor h) + frac(h) (x_(floor h + 1) -
 * x_(floor h)) with x_(0) <= ... <= x_(S-1), rounded as torch.quantile rounds it (numpy.quantile
 * can differ by one rounding). y is the entry's truth. */
typedef struct {
    /* mean over the 19 levels and the entries of 2 |(Q(q) - y)((y <= Q(q)) - q)|: twice the
     * pinball loss, whose integral over q in (0, 1) is the CRPS (Laio & Tamea 2007) */
    double crps_quantile;
    /* mean over the entries of the exact CRPS of the samples' empirical distribution,
     * (1/S) sum_i |x_i - y| - (1/(2 S^2)) sum_{i,j} |x_i - x_j| (Gneiting & Raftery 2007, eq. 21;
     * all S^2 pairs: the plain form, not the "fair" one with S (S - 1)) */
    double crps_sample;
    /* the same sums over the entries divided by sum |y| instead of n: ncrps_quantile is the "CRPS"
     * of CSDI (Tashiro et al. 2021, utils.py calc_quantile_CRPS). NaN or infinite when every
     * scored truth is 0. */
    double ncrps_quantile, ncrps_sample;
    /* mean |Q(0.5) - y|. CSDI's MAE takes torch.median instead, the lower of the two middle
     * samples when S is even. */
    double mae_median;
    /* fractions of the entries with Q(0.25) <= y <= Q(0.75), and Q(0.05) <= y <= Q(0.95) */
    double cover50, cover90;
    long n; /* scored entries */
    /* mean Q(0.5) - y: the median's signed error (positive: the forecasts run high), which
     * with mae_median tells a bias from a spread */
    double bias_median;
} dfs_forecast_scores;

/* Scores S-sample forecasts of W windows (tasks) of P entries each (P = L K: steps x features).
 *   samples (W, S, P): sample s of window w is samples[(w S + s) P + p]
 *   truth   (W, P)
 *   mask    (W, P) or NULL: nonzero scores an entry; NULL scores every entry
 * An entry whose truth is NaN is skipped even where the mask scores it; an unscored entry's
 * samples are not read into any sum (they may be NaN). The windows are scored in parallel (OpenMP)
 * and their sums added in window order: the result does not depend on the thread count.
 * DFS_ERR_ARG for a NULL samples, truth or out, W, S or P < 1, or no entry to score;
 * DFS_ERR_NAN if a scored entry has a non-finite sample or an infinite truth; DFS_ERR_NOMEM if
 * W sums or S doubles per thread cannot be allocated. On any error the fields of *out are NaN and
 * n is 0. */
dfs_status dfs_forecast_score(const float *samples, const float *truth, const uint8_t *mask, int W,
                              int S, size_t P, dfs_forecast_scores *out);

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_EVAL_H */
