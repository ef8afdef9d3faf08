/* test_metrics.c - Gaussian feature statistics and the Frechet distance (src/eval/metrics.c) against
 * closed forms: identical sets give 0, commuting covariances give |dm|^2 + sum (sqrt a -
 * sqrt b)^2, a non-commuting 2x2 pair has tr(M^1/2) = sqrt(tr M + 2 sqrt(det M)), and sampled
 * shifted Gaussians approach the formula as the count grows. */
#include "check.h"
#include "diffuse.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* stats straight from a mean and a covariance */
static dfs_gauss_stats make_stats(int dim, const double *mean, const double *cov) {
    dfs_gauss_stats s;
    s.dim = dim;
    s.n = 1000;
    s.mean = malloc((size_t)dim * sizeof(double));
    s.cov = malloc((size_t)dim * dim * sizeof(double));
    memcpy(s.mean, mean, (size_t)dim * sizeof(double));
    memcpy(s.cov, cov, (size_t)dim * dim * sizeof(double));
    return s;
}

/* a random orthogonal matrix (Gram-Schmidt of Gaussian columns), row-major q[r][c] */
static void random_orthogonal(int d, dfs_rng *rng, double *q) {
    for (int i = 0; i < d * d; i++) q[i] = dfs_rng_normal(rng);
    for (int c = 0; c < d; c++) {
        for (int p = 0; p < c; p++) {
            double dot = 0;
            for (int r = 0; r < d; r++) dot += q[r * d + c] * q[r * d + p];
            for (int r = 0; r < d; r++) q[r * d + c] -= dot * q[r * d + p];
        }
        double nn = 0;
        for (int r = 0; r < d; r++) nn += q[r * d + c] * q[r * d + c];
        for (int r = 0; r < d; r++) q[r * d + c] /= sqrt(nn);
    }
}

/* cov = Q diag(l) Q^T */
static void rotate_diag(int d, const double *q, const double *l, double *cov) {
    for (int r = 0; r < d; r++)
        for (int c = 0; c < d; c++) {
            double acc = 0;
            for (int k = 0; k < d; k++) acc += q[r * d + k] * l[k] * q[c * d + k];
            cov[r * d + c] = acc;
        }
}

/* Unit roundoffs: half the spacing of the numbers just above 1 (2^-53 in double, 2^-24 in float). */
#define U64 (DBL_EPSILON / 2)
#define U32 (FLT_EPSILON / 2)

/* A bound on the rounding error of dfs_frechet_distance (src/eval/metrics.c, all in double), from how
 * it computes. M = C1^1/2 C2 C1^1/2 comes from an eigendecomposition of C1 (LAPACK dsyevd) and
 * two d-term matrix products, and tr(M^1/2) from the eigenvalues of M (dsyevd again). Each step
 * is backward stable with an error of about d u times the norms it multiplies, so the computed
 * eigenvalues of M are exact for a matrix within delta = 4 d u |C1| |C2| of M (Weyl); with a
 * singular C1 also through C1^1/2, whose null directions come out as sqrt(d u |C1|) (the sqrt(eps)
 * loss of a square root at a rounding-level eigenvalue) and are squared again in M.
 *  - an eigenvalue mu = 0 of M can come out as delta, so sqrt costs up to sqrt(delta): this is
 *    the ~1e-7 of exactly singular directions, not 1e-16;
 *  - an eigenvalue mu > 0 moves by delta, times |C1| |C2| / mu_min for the second-order coupling
 *    through a singular C1^1/2, and sqrt(mu) by that over 2 sqrt(mu) (never more than sqrt(delta)).
 * FD = |dm|^2 + tr C1 + tr C2 - 2 tr(M^1/2), the sums of d terms with relative error d u.
 *   nzero:  how many eigenvalues of M are zero (d where that is unknown)
 *   mu_min: the least nonzero eigenvalue of M (unused when nzero == d)
 *   n1, n2: bounds on |C1|_2 and |C2|_2 (the Frobenius norm will do)
 *   mag:    |dm|^2 + tr C1 + tr C2 */
static double fd_tol(int d, int nzero, double mu_min, double n1, double n2, double mag) {
    const double delta = 4.0 * d * U64 * n1 * n2;
    double tr = nzero * sqrt(delta);
    if (nzero < d) tr += (d - nzero) * fmin(sqrt(delta), delta * (1 + n1 * n2 / mu_min) / (2 * sqrt(mu_min)));
    return 2 * tr + 2.0 * d * U64 * mag;
}

static double frobenius(int d, const double *c) {
    double s = 0;
    for (int i = 0; i < d * d; i++) s += c[i] * c[i];
    return sqrt(s);
}

static double trace(int d, const double *c) {
    double s = 0;
    for (int i = 0; i < d; i++) s += c[i * d + i];
    return s;
}

/* A lower bound on the least eigenvalue of a symmetric d x d c with |c|_F = nc: the largest
 * g = tr(c)/d / 2^k for which c - g I has a Cholesky factor, less the d u nc by which the
 * factorisation's rounding could have shifted the spectrum (Cholesky is backward stable); 0 if
 * none above that rounding level succeeds (a singular c). */
static double lambda_min_lower(int d, const double *c, double nc) {
    double *a = malloc((size_t)d * d * sizeof(double));
    double g = 0;
    for (double try = trace(d, c) / d; try > 64 * d * U64 * nc; try /= 2) {
        memcpy(a, c, (size_t)d * d * sizeof(double));
        int ok = 1;
        for (int j = 0; j < d && ok; j++) { /* a = L L^T in place, lower triangle */
            double s = a[j * d + j] - try;
            for (int k = 0; k < j; k++) s -= a[j * d + k] * a[j * d + k];
            if (!(s > 0)) ok = 0;
            else {
                a[j * d + j] = sqrt(s);
                for (int i = j + 1; i < d; i++) {
                    double t = a[i * d + j];
                    for (int k = 0; k < j; k++) t -= a[i * d + k] * a[j * d + k];
                    a[i * d + j] = t / a[j * d + j];
                }
            }
        }
        if (ok) {
            g = try - 2 * d * U64 * nc;
            break;
        }
    }
    free(a);
    return g > 0 ? g : 0;
}

static void test_stats(void) {
    /* three 2-d vectors: mean (2, 1), unbiased covariance by hand */
    const float f[] = {1, 0, 2, 2, 3, 1};
    dfs_gauss_stats s;
    CHECK(dfs_gauss_stats_compute(f, 3, 2, &s) == DFS_OK, "stats of 3 vectors");
    /* Exact, tolerance 0: the features are small integers, so every sum, the division of 6 by 3,
     * the centred values and their products are integers in double, and the divisor n - 1 = 2
     * halves them exactly, whatever the summation order or FMA contraction. */
    CHECK_CLOSE(s.mean[0], 2.0, 0, 0, "mean x");
    CHECK_CLOSE(s.mean[1], 1.0, 0, 0, "mean y");
    /* x: -1, 0, 1 -> var 1; y: -1, 1, 0 -> var 1; cov (1*... ) = (1 + 0 + 0) / 2 = 0.5 */
    CHECK_CLOSE(s.cov[0], 1.0, 0, 0, "var x");
    CHECK_CLOSE(s.cov[3], 1.0, 0, 0, "var y");
    CHECK_CLOSE(s.cov[1], 0.5, 0, 0, "cov xy");
    CHECK_CLOSE(s.cov[2], 0.5, 0, 0, "cov yx (mirrored)");
    CHECK(s.n == 3 && s.dim == 2, "n and dim recorded");
    dfs_gauss_stats_free(&s);
    CHECK(s.mean == NULL, "free clears");

    CHECK(dfs_gauss_stats_compute(f, 1, 2, &s) == DFS_ERR_ARG, "one vector rejected");
    float bad[] = {1, 0, NAN, 2, 3, 1};
    CHECK(dfs_gauss_stats_compute(bad, 3, 2, &s) == DFS_ERR_NAN, "NaN feature rejected");
    CHECK(s.mean == NULL && s.cov == NULL, "nothing left allocated after an error");
}

static void test_identical(void) {
    /* FD of a set with itself is 0, also for a singular covariance (fewer vectors than dims).
     * dfs_frechet_distance clamps its result at 0, which would also turn a NaN or a negative
     * raw value into 0, so "fd >= 0" proves nothing: the same statistics with the mean moved by e
     * and the covariance scaled by 4 (exact in binary) have the closed form
     *   |e|^2 + tr C + 4 tr C - 2 tr((C^1/2 4C C^1/2)^1/2) = |e|^2 + (1 - 2)^2 tr C,
     * strictly positive, where any NaN, sign or square-root error shows. */
    dfs_rng rng;
    dfs_rng_seed(&rng, 7);
    const int dims[] = {16, 128};
    const long ns[] = {500, 60};
    for (int k = 0; k < 2; k++) {
        int d = dims[k];
        long n = ns[k];
        float *f = malloc((size_t)n * d * sizeof(float));
        for (long i = 0; i < n * d; i++) f[i] = (float)(dfs_rng_normal(&rng) * (1 + i % 5) + i % 3);
        dfs_gauss_stats a, b;
        CHECK(dfs_gauss_stats_compute(f, n, d, &a) == DFS_OK, "stats a");
        CHECK(dfs_gauss_stats_compute(f, n, d, &b) == DFS_OK, "stats b");
        double fd = -1, tr = trace(d, a.cov), nc = frobenius(d, a.cov);
        CHECK(dfs_frechet_distance(&a, &b, &fd) == DFS_OK, "fd identical");
        /* M = C^1/2 C C^1/2 = C^2: where the eigenvalues of C are >= g > 0 (500 vectors in 16
         * dims), those of M are >= g^2; otherwise (60 vectors in 128 dims, rank 59) every
         * direction may be singular */
        double g = lambda_min_lower(d, a.cov, nc);
        int nz = g > 0 ? 0 : d;
        double tol = fd_tol(d, nz, g * g, nc, nc, 2 * tr);
        CHECK(fd >= 0 && fd <= tol, "FD of identical sets (dim %d, n %ld) = %g, bound %g (trace %g)", d, n, fd, tol, tr);
        double e2 = 0;
        for (int i = 0; i < d; i++) {
            b.mean[i] += 0.25 * (i % 7 - 3); /* |e| entries exact in binary; the sum rounds by d u */
            e2 += 0.0625 * (i % 7 - 3) * (i % 7 - 3);
        }
        for (int i = 0; i < d * d; i++) b.cov[i] *= 4;
        double fd2 = -1, want = e2 + tr;
        CHECK(dfs_frechet_distance(&a, &b, &fd2) == DFS_OK, "fd shifted and scaled");
        /* the moved mean a + e rounds by u |a + e|, which moves |dm|^2 by 2 |e| times that */
        double mean_tol = 0;
        for (int i = 0; i < d; i++) {
            double e = fabs(b.mean[i] - a.mean[i]);
            mean_tol += 4 * U64 * e * (fabs(a.mean[i]) + e);
        }
        char what[96];
        snprintf(what, sizeof what, "FD of a set against itself moved and scaled by 2 (dim %d, n %ld)", d, n);
        CHECK_CLOSE(fd2, want, fd_tol(d, nz, 4 * g * g, nc, 4 * nc, e2 + 5 * tr) + mean_tol, 0, what);
        dfs_gauss_stats_free(&a);
        dfs_gauss_stats_free(&b);
        free(f);
    }
}

static void test_closed_forms(void) {
    dfs_rng rng;
    dfs_rng_seed(&rng, 3);
    /* commuting covariances Q diag(a) Q^T and Q diag(b) Q^T: FD = |dm|^2 + sum (sqrt a - sqrt b)^2 */
    enum { D = 12 };
    double q[D * D], la[D], lb[D], ca[D * D], cb[D * D], ma[D], mb[D];
    random_orthogonal(D, &rng, q);
    double want = 0;
    for (int i = 0; i < D; i++) {
        la[i] = 0.1 + i * 0.7;
        lb[i] = (i % 4 == 0) ? 0.0 : 2.5 - 0.1 * i; /* some exactly singular directions */
        ma[i] = 0.3 * i;
        mb[i] = 0.3 * i + (i % 2 ? 0.5 : -0.25);
        want += (ma[i] - mb[i]) * (ma[i] - mb[i]) + (sqrt(la[i]) - sqrt(lb[i])) * (sqrt(la[i]) - sqrt(lb[i]));
    }
    rotate_diag(D, q, la, ca);
    rotate_diag(D, q, lb, cb);
    dfs_gauss_stats a = make_stats(D, ma, ca), b = make_stats(D, mb, cb);
    /* M = C1^1/2 C2 C1^1/2 has the eigenvalues la lb: 3 exactly zero (lb = 0 at i = 0, 4, 8),
     * the least nonzero one la[1] lb[1] = 0.8 * 2.4; |C1| = la[11] = 7.8, |C2| = lb[1] = 2.4.
     * Each zero direction costs up to sqrt(4 d u |C1||C2|) = 3e-7 in tr(M^1/2) (fd_tol), so the
     * bound is ~2e-6 absolute: measured 1.75e-7 on a Zen 4 and in an AVX2 build, where a 1e-9
     * relative tolerance failed. Either order of the arguments has the same eigenvalues of M. */
    double mu_min = 1e300, dm2 = 0;
    for (int i = 0; i < D; i++) {
        if (la[i] * lb[i] > 0) mu_min = fmin(mu_min, la[i] * lb[i]);
        dm2 += (ma[i] - mb[i]) * (ma[i] - mb[i]);
    }
    /* the covariances are built here as Q diag(l) Q^T with Q from modified Gram-Schmidt,
     * orthogonal to ~u cond (max |Q^T Q - I| = 4.4e-16 for this seed): their spectra are la, lb
     * to that relative accuracy, and cb keeps rank 9 exactly, inside fd_tol's delta */
    double tol = fd_tol(D, 3, mu_min, 7.8, 2.4, dm2 + trace(D, ca) + trace(D, cb));
    double fd = -1, fd2 = -1;
    CHECK(dfs_frechet_distance(&a, &b, &fd) == DFS_OK, "fd commuting");
    CHECK_CLOSE(fd, want, tol, 0, "FD of commuting covariances vs closed form");
    CHECK(dfs_frechet_distance(&b, &a, &fd2) == DFS_OK, "fd swapped");
    /* with the singular covariance first its square root has sqrt(eps)-sized null directions */
    CHECK_CLOSE(fd2, want, tol, 0, "FD with the arguments swapped vs closed form");
    CHECK_CLOSE(fd2, fd, 2 * tol, 0, "FD is symmetric");
    dfs_gauss_stats_free(&a);
    dfs_gauss_stats_free(&b);

    /* non-commuting 2x2: tr((A^1/2 B A^1/2)^1/2) = sqrt(tr(AB) + 2 sqrt(det A det B)) */
    const double A[4] = {2.0, 0.6, 0.6, 0.5}, B[4] = {0.3, -0.2, -0.2, 1.7};
    const double m0[2] = {0, 0}, m1[2] = {1.0, -2.0};
    double trab = A[0] * B[0] + A[1] * B[2] + A[2] * B[1] + A[3] * B[3];
    double det = (A[0] * A[3] - A[1] * A[2]) * (B[0] * B[3] - B[1] * B[2]);
    double want2 = 1.0 + 4.0 + (A[0] + A[3]) + (B[0] + B[3]) - 2 * sqrt(trab + 2 * sqrt(det));
    a = make_stats(2, m0, A);
    b = make_stats(2, m1, B);
    CHECK(dfs_frechet_distance(&a, &b, &fd) == DFS_OK, "fd 2x2");
    /* nonsingular: M has tr = tr(AB) and det = det A det B, its least eigenvalue is
     * (tr - sqrt(tr^2 - 4 det)) / 2 = 0.35; |A| <= |A|_F, |B| <= |B|_F. The closed form itself
     * has a few roundings of terms up to 2 sqrt(tr(AB) + ...) ~ 3: 16 u times the terms. */
    double mu2 = 0.5 * (trab - sqrt(trab * trab - 4 * det)), terms2 = 5.0 + (A[0] + A[3]) + (B[0] + B[3]);
    double tol2 = fd_tol(2, 0, mu2, frobenius(2, A), frobenius(2, B), terms2) + 16 * U64 * terms2;
    CHECK_CLOSE(fd, want2, tol2, 0, "FD of non-commuting 2x2 covariances vs closed form");
    dfs_gauss_stats_free(&b);

    /* dimension mismatch */
    b = make_stats(1, m1, B);
    CHECK(dfs_frechet_distance(&a, &b, &fd) == DFS_ERR_SHAPE, "dimension mismatch rejected");
    dfs_gauss_stats_free(&a);
    dfs_gauss_stats_free(&b);
}

/* Sampled N(0, I) against N(mu, s^2 I) in d dimensions: FD -> |mu|^2 + d (1 - s)^2, and the
 * bias shrinks as n grows (the reason issue 4 asks for a real-data floor at equal n).
 *
 * Standard error of the estimate at n samples each (delta method): the mean part
 * |mx - my|^2 with mx - my = -mu + N(0, (1 + s^2)/n I) has bias d (1 + s^2)/n and variance
 * 4 |mu|^2 (1 + s^2)/n + 2 d ((1 + s^2)/n)^2; the covariance part moves to first order by
 * (1 - s) tr(dCx) + (s - 1)/s tr(dCy), where the traces of the sample covariances have variance
 * 2 d/(n - 1) and 2 d s^4/(n - 1): variance 2 d (1 - s)^2 (1 + s^2)/(n - 1). Its second-order
 * bias (off-diagonal sample covariances, each of variance ~1/n) is O(d^2 (1 + s^2)/n). */
static double fd_sampled_se(int d, long n, double mu2, double s) {
    const double v = (1 + s * s) / (double)n;
    return sqrt(4 * mu2 * v + 2 * d * v * v + 2.0 * d * (1 - s) * (1 - s) * (1 + s * s) / (double)(n - 1));
}

static void test_sampled_gaussians(void) {
    enum { D = 8 };
    dfs_rng rng;
    dfs_rng_seed(&rng, 11);
    const double s = 1.5;
    double mu[D], want = 0, mu2 = 0;
    for (int i = 0; i < D; i++) {
        mu[i] = 0.25 * (i - 3);
        mu2 += mu[i] * mu[i];
        want += mu[i] * mu[i] + (1 - s) * (1 - s);
    }
    double err_small = 0, err_big = 0;
    /* 400000: five standard errors are 0.055, 1.2% of the 4.75 it should approach */
    const long counts[2] = {200, 400000};
    for (int k = 0; k < 2; k++) {
        long n = counts[k];
        float *x = malloc((size_t)n * D * sizeof(float)), *y = malloc((size_t)n * D * sizeof(float));
        for (long i = 0; i < n; i++)
            for (int j = 0; j < D; j++) {
                x[i * D + j] = (float)dfs_rng_normal(&rng);
                y[i * D + j] = (float)(mu[j] + s * dfs_rng_normal(&rng));
            }
        dfs_gauss_stats a, b;
        double fd = -1;
        CHECK(dfs_gauss_stats_compute(x, n, D, &a) == DFS_OK && dfs_gauss_stats_compute(y, n, D, &b) == DFS_OK,
              "sampled stats");
        CHECK(dfs_frechet_distance(&a, &b, &fd) == DFS_OK, "sampled fd");
        if (k == 0) err_small = fabs(fd - want);
        else err_big = fabs(fd - want);
        if (k == 1) {
            /* 5 standard errors (a false alarm for 1 seed in ~2 million) plus the two biases; the
             * float features round by u relative, a bias of 2 u of the traces, far below these */
            double bias = D * (1 + s * s) / (double)n + (double)D * D * (1 + s * s) / (double)n;
            CHECK_CLOSE(fd, want, 5 * fd_sampled_se(D, n, mu2, s) + bias, 0,
                        "FD of 400000 samples of shifted, scaled Gaussians");
        }
        dfs_gauss_stats_free(&a);
        dfs_gauss_stats_free(&b);
        free(x);
        free(y);
    }
    /* at 200 the standard error alone is 0.49 and the bias 0.1 to 0.6, at 400000 0.011 */
    CHECK(err_big < err_small, "error shrinks with the sample count (%g at 200, %g at 400000)", err_small, err_big);
}

/* dfs_nearest against brute force in double: a reference is its own nearest, the k nearest come
 * in order, duplicates tie to the lower index, and bad arguments are refused. */
static void test_nearest(void) {
    enum { NR = 300, NQ = 70, DIM = 24, K = 5 };
    dfs_rng rng;
    dfs_rng_seed(&rng, 9);
    float *r = malloc(sizeof(float) * NR * DIM), *q = malloc(sizeof(float) * NQ * DIM), dist[NQ * K];
    int idx[NQ * K];
    for (int i = 0; i < NR * DIM; i++) r[i] = (float)dfs_rng_normal(&rng);
    memcpy(r + 7 * DIM, r + 3 * DIM, sizeof(float) * DIM); /* row 7 duplicates row 3 */
    for (int i = 0; i < NQ; i++)
        for (int c = 0; c < DIM; c++) /* queries near references 0..NQ-1, some exactly on them */
            q[i * DIM + c] = r[(i * 4 % NR) * DIM + c] + (i % 3 ? 0.3f * (float)dfs_rng_normal(&rng) : 0.0f);
    CHECK(dfs_nearest(q, NQ, r, NR, DIM, K, idx, dist) == DFS_OK, "nearest: %s", dfs_last_error());
    /* dfs_nearest computes |q|^2 + |r|^2 - 2 q.r in float: the DIM-term dot product (sgemm, any
     * order or FMA) errs by at most DIM u sum |q_c r_c|, the norms (summed in double) round once
     * to float, and two float additions round once each, so a distance is within
     *   bnd = (DIM + 3) u (|q|^2 + |r|^2 + 2 sum |q_c r_c|)
     * of the double one. Two distances closer than their bounds may come in either order. */
    int same = 1, self = 1, sorted = 1;
    double worst = 0;
    for (int i = 0; i < NQ; i++) {
        double d[NR], bnd[NR];
        for (int j = 0; j < NR; j++) {
            double s = 0, qq = 0, rr = 0, qr = 0;
            for (int c = 0; c < DIM; c++) {
                double qc = q[i * DIM + c], rc = r[j * DIM + c];
                s += (qc - rc) * (qc - rc);
                qq += qc * qc, rr += rc * rc, qr += fabs(qc * rc);
            }
            d[j] = s;
            bnd[j] = (DIM + 3) * U32 * (qq + rr + 2 * qr);
        }
        for (int m = 0; m < K; m++) { /* brute force: the m-th smallest, lower index first */
            int best = -1;
            for (int j = 0; j < NR; j++) {
                int used = 0;
                for (int p = 0; p < m; p++) used |= idx[i * K + p] == j;
                if (!used && (best < 0 || d[j] < d[best])) best = j;
            }
            const int got = idx[i * K + m];
            same &= best == got || fabs(d[best] - d[got]) <= bnd[best] + bnd[got];
            worst = max_err(worst, fabs(dist[i * K + m] - d[got]) / bnd[got]);
            if (m) sorted &= dist[i * K + m] >= dist[i * K + m - 1];
        }
        /* the exact distance is 0; the float one is clamped at 0 and within the bound */
        if (i % 3 == 0) self &= idx[i * K] == i * 4 % NR && dist[i * K] <= bnd[i * 4 % NR];
    }
    CHECK(same, "the k nearest agree with brute force");
    CHECK(sorted, "nearest first");
    CHECK(self, "a query on a reference finds it first");
    CHECK(worst <= 1, "squared distances within %.2g of their rounding bounds of double", worst);
    /* row 3 and its duplicate, row 7: the lower index first */
    CHECK(dfs_nearest(r + 7 * DIM, 1, r, NR, DIM, 2, idx, NULL) == DFS_OK && idx[0] == 3 && idx[1] == 7,
          "a tie goes to the lower index: %d, %d", idx[0], idx[1]);
    CHECK(dfs_nearest(q, NQ, r, NR, DIM, NR + 1, idx, NULL) == DFS_ERR_ARG, "k > references refused");
    CHECK(dfs_nearest(q, NQ, r, 0, DIM, 1, idx, NULL) == DFS_ERR_ARG, "no references refused");
    free(r), free(q);
}

int main(void) {
    test_stats();
    test_identical();
    test_closed_forms();
    test_sampled_gaussians();
    test_nearest();
    return check_summary("test_metrics");
}
