/* gradcheck.h - compare an op's backward with central finite differences, and the rounding-error
 * bounds that the tests share.
 *
 * The op under test is a function f(g, inputs, user) -> output tensor. The loss is
 * L = sum_i R_i out_i with a fixed random R, so every output element is checked. The analytic
 * gradient comes from dfs_backward_grad(out, R); the numeric one from
 * (L(x + h+) - L(x - h-)) / (h+ + h-) for every input element, with the sum taken in double and
 * h+-, the steps the float input actually took (x0 + h rounds to a float: taking the nominal h
 * would add a relative error of up to u |x0| / h to every derivative).
 *
 * Its error has two parts (the tolerance at each call site says how big they are there):
 *   truncation  h^2 / 6 |d^3 L / dx^3|, zero for an op that is linear in each single input
 *               element (conv, linear, bmm, the shape ops);
 *   roundoff    (e(x + h) - e(x - h)) / 2h, e being the float32 rounding error of L. */
#ifndef DFS_GRADCHECK_H
#define DFS_GRADCHECK_H

#include "check.h"
#include "diffuse.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- rounding-error bounds ------------------------------------------------------------------
 * U32 is the unit roundoff of float32, 2^-24 ~ 6e-8: a correctly rounded operation (+ - * /,
 * sqrt, a conversion from double) errs by at most U32 times its result.
 *
 * A float32 sum of n terms (a dot product, one output of a convolution or a matmul, a
 * reduction), in any order and blocking, with or without FMA contraction, errs by at most
 * gamma_n sum|terms|, gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability of Numerical
 * Algorithms, 2nd ed., 2002, sec. 3.1). That worst case needs every rounding to err the same
 * way; when the rounding errors behave as independent zero-mean variables (so on random test
 * data) the error is at most lambda sqrt(n) u sum|terms| with probability at least
 * 1 - 2n exp(-lambda^2 / 2) (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019).
 * sum_err() takes lambda = 8, a failure chance below 3e-14 n per checked value, and the smaller
 * of the two bounds. It covers every x86-64 code path of the library alike (AVX-512 or AVX2
 * kernels, OpenBLAS, the portable loops): they differ only in the order of the sums. */
#define U32 5.9604644775390625e-08 /* 2^-24 */

static inline double sum_err(double n, double abs_sum) {
    if (n < 1) n = 1;
    double worst = n * U32 / (1 - n * U32), prob = 8.0 * sqrt(n) * U32;
    return (prob < worst ? prob : worst) * abs_sum;
}

/* err / bound, for a running maximum with max_err(): 0 when both are 0, inf when only the bound
 * is, NaN when err is NaN (so a NaN output fails). A check passes when the maximum is <= 1. */
static inline double err_ratio(double err, double bound) {
    return err == 0 ? 0 : err / bound;
}

/* CHECK that a worst err / bound ratio is <= 1 (a NaN fails); with DFS_TEST_MARGINS set in the
 * environment, also print the ratio, to see how much headroom a bound has on a machine. */
#define CHECK_RATIO(ratio, ...)                                                               \
    do {                                                                                      \
        double r_ = (ratio);                                                                  \
        if (getenv("DFS_TEST_MARGINS")) printf("margin %s:%d: %.3g\n", __FILE__, __LINE__, r_); \
        CHECK(r_ <= 1.0, __VA_ARGS__);                                                        \
    } while (0)

typedef dfs_tensor *(*gc_fn)(dfs_graph *g, dfs_tensor **in, void *user);

/* A persistent input (outside any arena) with random N(0, scale^2) values and a grad buffer. */
static inline dfs_tensor *gc_input(int ndim, const int *shape, dfs_rng *rng, float scale) {
    dfs_tensor *t = calloc(1, sizeof *t);
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->n *= (size_t)shape[i];
    }
    t->data = malloc(t->n * sizeof(float));
    t->grad = calloc(t->n, sizeof(float));
    for (size_t i = 0; i < t->n; i++) t->data[i] = scale * dfs_rng_normal(rng);
    t->requires_grad = 1;
    return t;
}

static inline void gc_input_free(dfs_tensor *t) {
    if (!t) return;
    free(t->data);
    free(t->grad);
    free(t);
}

static inline double gc_loss(dfs_graph *g, gc_fn f, dfs_tensor **in, void *user, const float *R,
                             size_t *nout) {
    dfs_graph_reset(g);
    dfs_tensor *out = f(g, in, user);
    double s = 0;
    for (size_t i = 0; i < out->n; i++) s += (double)R[i] * out->data[i];
    if (nout) *nout = out->n;
    return s;
}

/* Checks every element of every input with requires_grad set. An element passes when
 * |analytic - numeric| <= tol * max(1, |numeric|): tol is relative for derivatives above 1 and
 * absolute below (roundoff is absolute: it does not shrink with the derivative). A NaN on
 * either side fails. Returns the number of failures. */
static inline int gradcheck(const char *name, gc_fn f, dfs_tensor **in, int nin, void *user,
                            float h, float tol) {
    dfs_graph *g = dfs_graph_new();
    dfs_rng rng;
    dfs_rng_seed(&rng, 1234);
    /* forward once to learn the output size, then backward with R */
    dfs_tensor *out = f(g, in, user);
    float *R = malloc(out->n * sizeof(float));
    for (size_t i = 0; i < out->n; i++) R[i] = dfs_rng_normal(&rng);
    for (int k = 0; k < nin; k++)
        if (in[k]->requires_grad) memset(in[k]->grad, 0, in[k]->n * sizeof(float));
    dfs_backward_grad(g, out, R);
    int bad = 0;
    double worst = 0;
    for (int k = 0; k < nin; k++) {
        if (!in[k]->requires_grad) continue;
        for (size_t i = 0; i < in[k]->n; i++) {
            float x0 = in[k]->data[i], xp = x0 + h, xm = x0 - h;
            in[k]->data[i] = xp;
            double lp = gc_loss(g, f, in, user, R, NULL);
            in[k]->data[i] = xm;
            double lm = gc_loss(g, f, in, user, R, NULL);
            in[k]->data[i] = x0;
            double num = (lp - lm) / ((double)xp - xm); /* the steps taken, exactly */
            double ana = in[k]->grad[i];
            double err = fabs(ana - num) / (fabs(num) > 1 ? fabs(num) : 1);
            worst = max_err(worst, err);
            if (!(err <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s: input %d element %zu: analytic %.6g numeric %.6g\n",
                            name, k, i, ana, num);
                bad++;
            }
        }
    }
    if (getenv("DFS_TEST_MARGINS")) printf("margin gradcheck %s: %.3g\n", name, worst / tol);
    CHECK(bad == 0, "%s: %d gradient elements off (worst relative error %.3g)", name, bad,
          worst);
    free(R);
    dfs_graph_free(g);
    return bad;
}

#endif
