/* sgemm_peak.c - the machine's practical float32 matrix-multiply peak through OpenBLAS.
 *
 * Times C = A B with cblas_sgemm on square n x n matrices (2 n^3 FLOPs per product) for
 * n = 2048 and 4096 and prints the best GFLOP/s of a few repetitions as one JSON line:
 *   {"sgemm_gflops": X, "threads": N, "n": size}
 * This is the yardstick for `diffuse bench`'s achieved GFLOP/s: a training step of the
 * U-Net is mostly sgemm, so it can at best approach this figure.
 *
 *   sgemm_peak [threads]   (default 2)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "peak_args.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int threads = peak_threads_arg("sgemm_peak", argc, argv);
    if (threads < 0) return 2;
    openblas_set_num_threads(threads);

    static const int sizes[] = {2048, 4096};
    static const int reps[] = {5, 3}; /* ~17 and ~137 GFLOP per product */
    const int nmax = 4096;
    float *a = malloc((size_t)nmax * nmax * sizeof(float)); // (n, n)
    float *b = malloc((size_t)nmax * nmax * sizeof(float)); // (n, n)
    float *c = malloc((size_t)nmax * nmax * sizeof(float)); // (n, n)
    if (!a || !b || !c) {
        fprintf(stderr, "sgemm_peak: out of memory\n");
        return 1;
    }
    /* small deterministic values: no denormals, no overflow */
    for (size_t i = 0; i < (size_t)nmax * nmax; i++) {
        a[i] = (float)((int)(i * 7 % 13) - 6) * 0.01f;
        b[i] = (float)((int)(i * 5 % 11) - 5) * 0.01f;
        c[i] = 0.0f;
    }
    double best = 0.0;
    int best_n = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int n = sizes[s];
        /* one untimed product: thread pool start-up, page faults */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        for (int r = 0; r < reps[s]; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            double gf = 2.0 * n * n * (double)n / (now() - t0) * 1e-9;
            if (gf > best) best = gf, best_n = n;
        }
    }
    /* a checked element keeps the products from being optimised away and catches a broken BLAS */
    double want = 0.0;
    for (int k = 0; k < 4096; k++) want += (double)a[k] * b[(size_t)k * 4096];
    double got = c[0];
    free(a);
    free(b);
    free(c);
    if (got - want > 1e-3 || want - got > 1e-3 || got != got) {
        fprintf(stderr, "sgemm_peak: wrong result c[0] = %g, want %g\n", got, want);
        return 1;
    }
    printf("{\"sgemm_gflops\": %.2f, \"threads\": %d, \"n\": %d}\n", best, threads, best_n);
    return 0;
}
