/* metrics.c - sample-quality measures: Gaussian statistics of feature vectors and the Frechet
 * distance between two such Gaussians (the "FID" recipe of Heusel et al. 2017, here in the
 * feature space of diffuse's own Fashion-MNIST classifier, so the figures are "FD", not FID).
 *
 *   d^2(N(m1, C1), N(m2, C2)) = |m1 - m2|^2 + tr(C1) + tr(C2) - 2 tr((C1^1/2 C2 C1^1/2)^1/2)
 *
 * (Dowson & Landau 1982, "The Frechet distance between multivariate normal distributions";
 * Heusel et al. 2017, "GANs trained by a two time-scale update rule...", eq. 6). The usual code
 * takes scipy's sqrtm of the non-symmetric product C1 C2; its trace equals that of the
 * symmetric form above, because C1 C2 = C1^1/2 (C1^1/2 C2 C1^1/2) C1^-1/2 is similar to it. The
 * symmetric form needs only two eigendecompositions of symmetric matrices (LAPACK dsyevd, through
 * OpenBLAS's LAPACKE), with no complex arithmetic: C1^1/2 = V diag(sqrt l) V^T, and
 * tr(M^1/2) = sum sqrt(eig(M)). Eigenvalues that rounding makes slightly negative are clamped to
 * zero (covariances are positive semi-definite; with fewer samples than dimensions they are
 * singular).
 *
 * Everything is in double: the covariances of 2,000 128-dimensional features lose digits in
 * float, and FD is a small difference of large traces. */
#include "diffuse/eval.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dfs_set_error(const char *fmt, ...);

void dfs_gauss_stats_free(dfs_gauss_stats *st) {
    if (!st) return;
    free(st->mean);
    free(st->cov);
    memset(st, 0, sizeof *st);
}

/* mean[d] and the unbiased covariance cov[d][d] (divisor n - 1, as numpy.cov) of n rows. */
dfs_status dfs_gauss_stats_compute(const float *feat, long n, int dim, dfs_gauss_stats *st) {
    memset(st, 0, sizeof *st);
    if (n < 2 || dim < 1 || dim > 65536) {
        dfs_set_error("gaussian statistics need at least 2 vectors of dimension 1..65536 (got %ld of %d)", n,
                      dim);
        return DFS_ERR_ARG;
    }
    const size_t d = (size_t)dim;
    st->mean = calloc(d, sizeof(double));
    st->cov = calloc(d * d, sizeof(double));
    double *centred = malloc((size_t)n * d * sizeof(double));
    if (!st->mean || !st->cov || !centred) {
        free(centred);
        dfs_gauss_stats_free(st);
        dfs_set_error("out of memory for the statistics of %ld x %d features", n, dim);
        return DFS_ERR_NOMEM;
    }
    for (long i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double v = feat[(size_t)i * d + j];
            if (!isfinite(v)) {
                free(centred);
                dfs_gauss_stats_free(st);
                dfs_set_error("feature %zu of vector %ld is not finite", j, i);
                return DFS_ERR_NAN;
            }
            st->mean[j] += v;
        }
    for (size_t j = 0; j < d; j++) st->mean[j] /= (double)n;
    for (long i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) centred[(size_t)i * d + j] = feat[(size_t)i * d + j] - st->mean[j];
    /* cov = centred^T centred / (n - 1); dsyrk fills the upper triangle, mirrored below */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, (int)n, 1.0 / (double)(n - 1), centred, dim, 0.0,
                st->cov, dim);
    for (size_t r = 0; r < d; r++)
        for (size_t c = 0; c < r; c++) st->cov[r * d + c] = st->cov[c * d + r];
    free(centred);
    st->dim = dim;
    st->n = n;
    return DFS_OK;
}

/* Eigenvalues (ascending) into w and, if vectors, eigenvectors into the columns of a (row-major
 * dim x dim, overwritten). */
static dfs_status sym_eig(double *a, int dim, double *w, int vectors) {
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', dim, a, dim, w);
    if (info != 0) {
        dfs_set_error("LAPACK dsyevd failed (info %d): the covariance is not a finite symmetric matrix", (int)info);
        return info < 0 ? DFS_ERR_ARG : DFS_ERR_NAN;
    }
    return DFS_OK;
}

dfs_status dfs_frechet_distance(const dfs_gauss_stats *a, const dfs_gauss_stats *b, double *fd) {
    *fd = NAN;
    if (!a || !b || !a->mean || !b->mean || a->dim != b->dim || a->dim < 1) {
        dfs_set_error("Frechet distance of statistics of different dimensions (%d and %d)", a ? a->dim : 0,
                      b ? b->dim : 0);
        return DFS_ERR_SHAPE;
    }
    const int dim = a->dim;
    const size_t d = (size_t)dim;
    double *v = malloc(d * d * sizeof(double));   /* eigenvectors of C1, then C1^1/2 */
    double *tmp = malloc(d * d * sizeof(double));
    double *m = malloc(d * d * sizeof(double));   /* C1^1/2 C2 C1^1/2 */
    double *w = malloc(d * sizeof(double));
    dfs_status s = DFS_ERR_NOMEM;
    if (!v || !tmp || !m || !w) {
        dfs_set_error("out of memory for a %d x %d Frechet distance", dim, dim);
        goto done;
    }
    /* C1^1/2 = V diag(sqrt(max(l, 0))) V^T */
    memcpy(v, a->cov, d * d * sizeof(double));
    if ((s = sym_eig(v, dim, w, 1)) != DFS_OK) goto done;
    for (size_t r = 0; r < d; r++)
        for (size_t c = 0; c < d; c++) tmp[r * d + c] = v[r * d + c] * sqrt(w[c] > 0 ? w[c] : 0);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, dim, dim, dim, 1.0, tmp, dim, v, dim, 0.0, m, dim);
    memcpy(v, m, d * d * sizeof(double)); /* v = C1^1/2 */
    /* M = C1^1/2 C2 C1^1/2, symmetrised against rounding */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, v, dim, b->cov, dim, 0.0, tmp, dim);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, tmp, dim, v, dim, 0.0, m, dim);
    for (size_t r = 0; r < d; r++)
        for (size_t c = 0; c < r; c++) {
            double avg = 0.5 * (m[r * d + c] + m[c * d + r]);
            m[r * d + c] = m[c * d + r] = avg;
        }
    if ((s = sym_eig(m, dim, w, 0)) != DFS_OK) goto done;
    double tr_sqrt = 0, tr1 = 0, tr2 = 0, dmu = 0;
    for (size_t i = 0; i < d; i++) {
        tr_sqrt += sqrt(w[i] > 0 ? w[i] : 0);
        tr1 += a->cov[i * d + i];
        tr2 += b->cov[i * d + i];
        double e = a->mean[i] - b->mean[i];
        dmu += e * e;
    }
    double r = dmu + tr1 + tr2 - 2 * tr_sqrt;
    /* identical statistics give 0 up to rounding; never report a negative squared distance */
    *fd = r > 0 ? r : 0;
    s = DFS_OK;
done:
    free(v);
    free(tmp);
    free(m);
    free(w);
    return s;
}

dfs_status dfs_nearest(const float *q, int nq, const float *r, int nr, int dim, int k, int *idx,
                       float *dist) {
    if (!q || !r || !idx || nq < 0 || nr < 1 || dim < 1 || k < 1 || k > nr) {
        dfs_set_error("nearest: bad arguments (%d queries, %d references, dim %d, k %d)", nq, nr, dim, k);
        return DFS_ERR_ARG;
    }
    const int B = 256; /* queries per block: a block's distances are B x nr floats */
    float *rn = malloc((size_t)nr * sizeof(float)), *d = malloc((size_t)B * nr * sizeof(float));
    if (!rn || !d) {
        free(rn), free(d);
        dfs_set_error("nearest: out of memory (%d references)", nr);
        return DFS_ERR_NOMEM;
    }
    for (int j = 0; j < nr; j++) {
        double s = 0;
        for (int c = 0; c < dim; c++) s += (double)r[(size_t)j * dim + c] * r[(size_t)j * dim + c];
        rn[j] = (float)s;
    }
    for (int i0 = 0; i0 < nq; i0 += B) {
        const int nb = nq - i0 < B ? nq - i0 : B;
        /* d = -2 Q R^T, then + |q|^2 + |r|^2 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nr, dim, -2.0f, q + (size_t)i0 * dim, dim, r, dim,
                    0.0f, d, nr);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < nb; i++) {
            const float *qi = q + (size_t)(i0 + i) * dim;
            double s = 0;
            for (int c = 0; c < dim; c++) s += (double)qi[c] * qi[c];
            float *di = d + (size_t)i * nr;
            for (int j = 0; j < nr; j++) di[j] += (float)s + rn[j];
            /* the k smallest by insertion into a sorted list of k (k is small) */
            int *out = idx + (size_t)(i0 + i) * k;
            int have = 0;
            for (int j = 0; j < nr; j++) {
                const float v = di[j];
                if (have == k && !(v < di[out[k - 1]])) continue;
                int pos = have < k ? have++ : k - 1;
                while (pos > 0 && v < di[out[pos - 1]]) {
                    out[pos] = out[pos - 1];
                    pos--;
                }
                out[pos] = j;
            }
            if (dist)
                for (int m = 0; m < k; m++) dist[(size_t)(i0 + i) * k + m] = di[out[m]] > 0 ? di[out[m]] : 0.0f;
        }
    }
    free(rn), free(d);
    return DFS_OK;
}
