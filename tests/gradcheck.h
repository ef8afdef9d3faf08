/* gradcheck.h - compare an op's backward with central finite differences.
 *
 * The op under test is a function f(g, inputs, user) -> output tensor. The loss is
 * L = sum_i R_i out_i with a fixed random R, so every output element is checked. The analytic
 * gradient comes from dfs_backward_grad(out, R); the numeric one from
 * (L(x + h) - L(x - h)) / 2h for every input element, with the sum taken in double. */
#ifndef DFS_GRADCHECK_H
#define DFS_GRADCHECK_H

#include "check.h"
#include "diffuse.h"
#include <stdlib.h>
#include <string.h>

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
 * |analytic - numeric| <= tol * max(1, |numeric|). Returns the number of failures. */
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
            float x0 = in[k]->data[i];
            in[k]->data[i] = x0 + h;
            double lp = gc_loss(g, f, in, user, R, NULL);
            in[k]->data[i] = x0 - h;
            double lm = gc_loss(g, f, in, user, R, NULL);
            in[k]->data[i] = x0;
            double num = (lp - lm) / (2.0 * h);
            double ana = in[k]->grad[i];
            double err = fabs(ana - num) / (fabs(num) > 1 ? fabs(num) : 1);
            if (err > worst) worst = err;
            if (!(err <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s: input %d element %zu: analytic %.6g numeric %.6g\n",
                            name, k, i, ana, num);
                bad++;
            }
        }
    }
    CHECK(bad == 0, "%s: %d gradient elements off (worst relative error %.3g)", name, bad,
          worst);
    free(R);
    dfs_graph_free(g);
    return bad;
}

#endif
