/* test_attn.c - multi-head attention and transpose (src/ops/attn.c): forward against naive
 * double-precision loops (with and without a key mask, one and several heads, Lq != Lk,
 * D != Dv), backward against central finite differences, self-attention with q = k = v the same
 * tensor, masked keys getting no gradient, and the batch/head OpenMP path against one thread.
 * PyTorch parity is tests/parity/parity_attn.sh. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Finite differences (gradcheck.h): truncation h^2/6 |d3L/dx3| with |d3L/dx3| of order 1 here
 * (softmax's third derivatives are below 1, times at most |k|^3 / dh^1.5 ~ 1 for unit
 * inputs): ~2e-5 at h = 1e-2; roundoff: an element reaches Lq Dv <= 20 outputs of size ~1 whose
 * rounding errors are ~u sqrt(Lk + dh) ~ 2e-7, so e ~ 1e-6 and e / h ~ 1e-4. TOL = 1e-3,
 * relative, absolute below 1, is five to ten times the larger (at h = 1e-3 the roundoff alone
 * would be ~1e-3). */
#define H_FD 1e-2f
#define TOL 1e-3f

typedef struct {
    int heads;
    const uint8_t *mask;
} attn_args;

static dfs_tensor *f_attn(dfs_graph *g, dfs_tensor **in, void *u) {
    attn_args *a = u;
    return dfs_attention(g, in[0], in[1], in[2], a->heads, a->mask);
}
static dfs_tensor *f_self_attn(dfs_graph *g, dfs_tensor **in, void *u) {
    attn_args *a = u;
    return dfs_attention(g, in[0], in[0], in[0], a->heads, a->mask);
}
static dfs_tensor *f_transpose(dfs_graph *g, dfs_tensor **in, void *u) { return dfs_transpose(g, in[0]); }
/* through a scale first: the inputs' gradient buffers are then fresh graph tensors */
static dfs_tensor *f_attn_scaled(dfs_graph *g, dfs_tensor **in, void *u) {
    attn_args *a = u;
    return dfs_attention(g, dfs_scale(g, in[0], 1.0f), dfs_scale(g, in[1], 1.0f), dfs_scale(g, in[2], 1.0f),
                         a->heads, a->mask);
}

/* Naive reference: out (N, Lq, Dv), and bound: how far a float32 evaluation may lie from it.
 * Per query row: each score s_j = q.k / sqrt(dh) errs by at most es_j = sum_err(dh, sum |q k|)
 * / sqrt(dh) + 2u |s_j| (the rounded scale and product); softmax turns absolute score errors
 * into relative errors of P of at most 2 max es (the normalisation takes a P-weighted mean of
 * them), plus u |s_j - max| (the subtraction), 2u (expf, correctly rounded to within an ulp)
 * and 2u (the reciprocal of the sum and the product); out = P V is a sum of Lk terms:
 * sum_err(Lk, A) + A (P's relative error), A = sum_j P_j |v_j|, and its final rounding. */
static void attn_ref(double *out, double *bound, const float *q, const float *k, const float *v, int N, int Lq,
                     int Lk, int D, int Dv, int h, const uint8_t *mask) {
    const int dh = D / h, dvh = Dv / h;
    double *s = malloc((size_t)Lk * sizeof(double)), *es = malloc((size_t)Lk * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int hd = 0; hd < h; hd++)
            for (int i = 0; i < Lq; i++) {
                double mx = -INFINITY, sum = 0, esmax = 0, dmax = 0;
                for (int j = 0; j < Lk; j++) {
                    double d = 0, a = 0;
                    for (int c = 0; c < dh; c++) {
                        double t = (double)q[((size_t)n * Lq + i) * D + hd * dh + c] *
                                   k[((size_t)n * Lk + j) * D + hd * dh + c];
                        d += t, a += fabs(t);
                    }
                    s[j] = d / sqrt((double)dh);
                    es[j] = sum_err(dh, a) / sqrt((double)dh) + 2 * U32 * fabs(s[j]);
                    if ((!mask || mask[n * Lk + j]) && s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < Lk; j++) {
                    int keep = !mask || mask[n * Lk + j];
                    if (keep && es[j] > esmax) esmax = es[j];
                    if (keep && mx - s[j] > dmax) dmax = mx - s[j];
                    s[j] = keep ? exp(s[j] - mx) : 0;
                    sum += s[j];
                }
                const double ep = 2 * esmax + U32 * dmax + 4 * U32;
                for (int c = 0; c < dvh; c++) {
                    double o = 0, A = 0;
                    for (int j = 0; j < Lk; j++) {
                        double p = s[j] / (sum > 0 ? sum : 1), vv = v[((size_t)n * Lk + j) * Dv + hd * dvh + c];
                        o += p * vv, A += p * fabs(vv);
                    }
                    out[((size_t)n * Lq + i) * Dv + hd * dvh + c] = o;
                    bound[((size_t)n * Lq + i) * Dv + hd * dvh + c] = sum_err(Lk, A) + A * ep + U32 * fabs(o);
                }
            }
    free(s);
    free(es);
}

static void test_forward(void) {
    dfs_rng rng;
    dfs_rng_seed(&rng, 5);
    const struct {
        int N, Lq, Lk, D, Dv, h, masked;
    } cases[] = {{2, 3, 5, 4, 6, 1, 0}, {2, 4, 4, 8, 8, 2, 1}, {3, 7, 2, 6, 9, 3, 1}, {1, 1, 1, 2, 2, 2, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int N = cases[c].N, Lq = cases[c].Lq, Lk = cases[c].Lk, D = cases[c].D, Dv = cases[c].Dv, h = cases[c].h;
        dfs_tensor *q = gc_input(3, (int[]){N, Lq, D}, &rng, 1.5f), *k = gc_input(3, (int[]){N, Lk, D}, &rng, 1.5f),
                   *v = gc_input(3, (int[]){N, Lk, Dv}, &rng, 1.0f);
        uint8_t mask[64];
        for (int i = 0; i < N * Lk; i++) mask[i] = cases[c].masked ? (i % Lk == 0 || (i * 7) % 3 != 0) : 1;
        dfs_graph *g = dfs_graph_new();
        dfs_tensor *o = dfs_attention(g, q, k, v, h, cases[c].masked ? mask : NULL);
        double *ref = malloc((size_t)N * Lq * Dv * sizeof(double)), *bound = malloc((size_t)N * Lq * Dv * sizeof(double));
        attn_ref(ref, bound, q->data, k->data, v->data, N, Lq, Lk, D, Dv, h, cases[c].masked ? mask : NULL);
        int shape_ok = o->ndim == 3 && o->shape[0] == N && o->shape[1] == Lq && o->shape[2] == Dv;
        CHECK(shape_ok, "attention case %zu: output shape", c);
        double worst = 0;
        for (size_t i = 0; shape_ok && i < o->n; i++) worst = max_err(worst, err_ratio(fabs(o->data[i] - ref[i]), bound[i]));
        CHECK_RATIO(worst, "attention case %zu vs naive loops: error %.3g of its bound", c, worst);
        free(ref);
        free(bound);
        dfs_graph_free(g);
        gc_input_free(q);
        gc_input_free(k);
        gc_input_free(v);
    }
}

static void test_backward(void) {
    dfs_rng rng;
    dfs_rng_seed(&rng, 9);
    dfs_tensor *q = gc_input(3, (int[]){2, 3, 4}, &rng, 1.0f), *k = gc_input(3, (int[]){2, 5, 4}, &rng, 1.0f),
               *v = gc_input(3, (int[]){2, 5, 6}, &rng, 1.0f);
    dfs_tensor *in[3] = {q, k, v};
    attn_args a1 = {1, NULL}, a2 = {2, NULL};
    gradcheck("attention 1 head", f_attn, in, 3, &a1, H_FD, TOL);
    gradcheck("attention 2 heads", f_attn, in, 3, &a2, H_FD, TOL);
    gradcheck("attention 2 heads, fresh grads", f_attn_scaled, in, 3, &a2, H_FD, TOL);
    const uint8_t mask[10] = {1, 1, 0, 1, 0, 0, 1, 1, 1, 1};
    attn_args am = {2, mask};
    gradcheck("attention 2 heads, key mask", f_attn, in, 3, &am, H_FD, TOL);

    /* masked keys and values get exactly zero gradient */
    dfs_graph *g = dfs_graph_new();
    memset(k->grad, 0, k->n * sizeof(float));
    memset(v->grad, 0, v->n * sizeof(float));
    dfs_tensor *o = dfs_attention(g, q, k, v, 2, mask);
    float *R = malloc(o->n * sizeof(float));
    for (size_t i = 0; i < o->n; i++) R[i] = dfs_rng_normal(&rng);
    dfs_backward_grad(g, o, R);
    int zero = 1;
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 5; j++)
            if (!mask[n * 5 + j]) {
                for (int c = 0; c < 4; c++) zero &= k->grad[(n * 5 + j) * 4 + c] == 0.0f;
                for (int c = 0; c < 6; c++) zero &= v->grad[(n * 5 + j) * 6 + c] == 0.0f;
            }
    CHECK(zero, "masked keys and values receive no gradient");
    free(R);
    dfs_graph_free(g);

    dfs_tensor *x = gc_input(3, (int[]){2, 4, 6}, &rng, 1.0f);
    attn_args s3 = {3, NULL};
    gradcheck("self-attention, q = k = v one tensor, 3 heads", f_self_attn, &x, 1, &s3, H_FD, TOL);
    gradcheck("transpose (2, 4, 6)", f_transpose, &x, 1, NULL, H_FD, TOL);
    gc_input_free(x);
    gc_input_free(q);
    gc_input_free(k);
    gc_input_free(v);
}

static void test_transpose(void) {
    dfs_graph *g = dfs_graph_new();
    float d[6] = {1, 2, 3, 4, 5, 6};
    dfs_tensor *x = dfs_tensor_wrap(g, d, 2, (int[]){2, 3});
    dfs_tensor *t = dfs_transpose(g, x);
    CHECK(t->shape[0] == 3 && t->shape[1] == 2 && t->data[0] == 1 && t->data[1] == 4 && t->data[2] == 2 &&
              t->data[5] == 6,
          "transpose of [[1 2 3] [4 5 6]]");
    dfs_graph_free(g);
}

/* Many (n, head) items run in parallel; the result must match one thread bit for bit (each
 * item is computed whole by one thread, in the same order, whatever the thread count). */
static void test_threads(void) {
    dfs_rng rng;
    dfs_rng_seed(&rng, 2);
    dfs_tensor *q = gc_input(3, (int[]){8, 16, 32}, &rng, 1.0f), *k = gc_input(3, (int[]){8, 12, 32}, &rng, 1.0f),
               *v = gc_input(3, (int[]){8, 12, 16}, &rng, 1.0f);
    float *out1 = malloc(8 * 16 * 16 * sizeof(float)), *dq1 = malloc(q->n * sizeof(float));
    float *R = malloc(8 * 16 * 16 * sizeof(float));
    for (int i = 0; i < 8 * 16 * 16; i++) R[i] = dfs_rng_normal(&rng);
    int same = 1;
    for (int pass = 0; pass < 2; pass++) {
        dfs_set_threads(pass == 0 ? 1 : 2);
        memset(q->grad, 0, q->n * sizeof(float));
        dfs_graph *g = dfs_graph_new();
        dfs_tensor *o = dfs_attention(g, q, k, v, 4, NULL);
        dfs_backward_grad(g, o, R);
        if (pass == 0) {
            memcpy(out1, o->data, o->n * sizeof(float));
            memcpy(dq1, q->grad, q->n * sizeof(float));
        } else {
            same = !memcmp(out1, o->data, o->n * sizeof(float)) && !memcmp(dq1, q->grad, q->n * sizeof(float));
        }
        dfs_graph_free(g);
    }
    CHECK(same, "attention with 2 threads equals 1 thread");
    free(out1);
    free(dq1);
    free(R);
    gc_input_free(q);
    gc_input_free(k);
    gc_input_free(v);
}

int main(void) {
    test_transpose();
    test_forward();
    test_backward();
    test_threads();
    return check_summary("test_attn");
}
