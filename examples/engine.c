/* engine.c - the engine in twenty lines: tensors in a graph, a few ops on the tape, and
 * reverse-mode gradients, checked against the gradient worked out by hand.
 *
 * The computation (N = 2 samples, I = 3 inputs, O = 2 outputs):
 *   h    = x w^T + b                 x (N, I), w (O, I), b (O)    -> h (N, O)
 *   a    = silu(h) = h sigmoid(h)
 *   loss = mean((a - y)^2)           over the N * O entries, y the target (N, O)
 * and by the chain rule, with s = sigmoid(h) and silu'(h) = s (1 + h (1 - s)):
 *   dloss/dw[o][i] = sum_n 2 / (N O) (a[n][o] - y[n][o]) silu'(h[n][o]) x[n][i]
 *
 *   examples/engine        prints dloss/dw from dfs_backward and from the formula; exits 1
 *                          when they differ by more than float rounding */
#include <diffuse.h>

#include <math.h>
#include <stdio.h>

enum { N = 2, I = 3, O = 2 };

int main(void) {
    float x[N * I] = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.75f};
    float y[N * O] = {0.1f, -0.2f, 0.3f, 0.7f};
    float w0[O * I] = {0.2f, -0.4f, 0.1f, 0.3f, 0.8f, -0.5f};
    float b0[O] = {0.05f, -0.1f};

    /* A graph owns the arena the tensors live in and the tape of the ops recorded on them. */
    dfs_graph *g = dfs_graph_new();
    if (!g) {
        fprintf(stderr, "engine: out of memory\n");
        return 1;
    }
    const int xs[2] = {N, I}, ws[2] = {O, I}, bs[1] = {O}, ys[2] = {N, O};
    dfs_tensor *tx = dfs_tensor_wrap(g, x, 2, xs); /* caller's data, no gradient */
    dfs_tensor *ty = dfs_tensor_wrap(g, y, 2, ys);
    dfs_tensor *tw = dfs_tensor_new(g, 2, ws);     /* arena data: the weights we differentiate */
    dfs_tensor *tb = dfs_tensor_new(g, 1, bs);
    for (int k = 0; k < O * I; k++) tw->data[k] = w0[k];
    for (int k = 0; k < O; k++) tb->data[k] = b0[k];
    tw->requires_grad = tb->requires_grad = 1;

    dfs_tensor *h = dfs_linear(g, tx, tw, tb); /* (N, O) */
    dfs_tensor *a = dfs_silu(g, h);
    dfs_tensor *loss = dfs_mse(g, a, ty);      /* scalar */
    dfs_backward(g, loss);                      /* fills tw->grad and tb->grad */

    /* The same gradient by hand. */
    double want[O * I] = {0};
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double hv = b0[o];
            for (int i = 0; i < I; i++) hv += (double)x[n * I + i] * w0[o * I + i];
            const double s = 1.0 / (1.0 + exp(-hv)), av = hv * s;
            const double d = 2.0 / (N * O) * (av - y[n * O + o]) * s * (1.0 + hv * (1.0 - s));
            for (int i = 0; i < I; i++) want[o * I + i] += d * x[n * I + i];
        }

    printf("loss = %.6f\n", loss->data[0]);
    printf("%-8s %12s %12s\n", "", "dfs_backward", "closed form");
    int bad = 0;
    for (int k = 0; k < O * I; k++) {
        const double got = tw->grad[k], err = fabs(got - want[k]);
        /* float32 arithmetic on a handful of terms of size ~1: a few units of float rounding */
        const int ok = err <= 1e-6 + 1e-5 * fabs(want[k]);
        printf("dw[%d][%d] %12.7f %12.7f%s\n", k / I, k % I, got, want[k], ok ? "" : "  <- differs");
        bad += !ok;
    }
    dfs_graph_free(g);
    if (bad) {
        fprintf(stderr, "engine: %d of %d gradient entries differ from the closed form\n", bad, O * I);
        return 1;
    }
    printf("engine: the gradient matches the closed form\n");
    return 0;
}
