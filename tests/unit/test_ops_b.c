/* test_ops_b.c - normalisation and elementwise ops: backward against central finite
 * differences (every input, gamma/beta and tables included), forward values against closed
 * forms, broadcasting against a naive reference, dropout statistics, and the large-tensor
 * (OpenMP) paths against plain double-precision loops. The fused GroupNorm+SiLU against the two
 * ops composed. Every op again with its inputs passed through dfs_scale(x, 1): their gradient
 * buffers are then new, which takes the backward paths that store instead of accumulate.
 * The vectorised exp and SiLU against libm, the dropout mask's independence of the thread
 * count, and the arena's reuse of released tensors (dfs_tensor_release, dfs_graph_set_recycle). */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"
#include "ops/ops.h"
#include "ref/ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Finite differences (gradcheck.h): error = truncation h^2/6 |d3L/dx3| + roundoff. The ops here
 * have |d3L/dx3| of order 1 to 10 on these inputs (|silu'''| <= 0.5, |gelu'''| <= 1.2, softmax's
 * below 1; GroupNorm multiplies every derivative by |gamma| rstd <= 1.5 and adds terms of order
 * 1/M; add, mul, mse, scale, embedding, dropout and conv have none), so at h = 1e-2 the
 * truncation is at most 1.7e-5 * 10 ~ 2e-4. The roundoff: an input element reaches a few to
 * a few dozen outputs of size ~1, each rounded with an error of the scale u (|out| + the
 * terms it sums), so e ~ sqrt(n_out) u |R| few ~ 1e-6 and e / h ~ 1e-4. (At h = 1e-3 the
 * roundoff would be ten times that; at 3e-2 GroupNorm+SiLU's truncation would reach 8e-4.)
 * TOL = 1e-3, relative, absolute below 1: five to ten times both, catching any wrong term. */
#define H_FD 1e-2f /* finite-difference step */
#define TOL 1e-3f  /* gradcheck relative tolerance */
#define EPS_EXP 3e-7 /* relative error of dfs_expf, checked in test_fast_exp */

/* Error bounds of the activations in float32 against exact values (test_activations):
 *   silu(z) = z / (1 + exp(-z)): dfs_expf, then +, /, * : relative EPS_EXP + 3u;
 *   gelu(v) = 0.5 v (1 + tanh(z)), z = K (v + A v^3): z from 5 roundings, tanhf within 2 ulps
 *   (4u relative, glibc's stated maximum on x86-64), then three more roundings. */
static double silu_bound(double v) {
    return fabs(v / (1 + exp(-v))) * (EPS_EXP + 3 * U32);
}
static double gelu_bound(double v) {
    const double K = 0.7978845608028654, A = 0.044715;
    double z = K * (v + A * v * v * v), th = tanh(z), gl = 0.5 * v * (1 + th);
    double dz = 5 * U32 * K * (fabs(v) + fabs(A * v * v * v));
    return 0.5 * fabs(v) * ((1 - th * th) * dz + 4 * U32 * fabs(th) + U32 * fabs(1 + th)) +
           2 * U32 * fabs(gl);
}

/* ---- op wrappers for gradcheck ------------------------------------------------------------ */

typedef struct {
    int groups;
    float eps;
} norm_args;

static dfs_tensor *f_group_norm(dfs_graph *g, dfs_tensor **in, void *u) {
    norm_args *a = u;
    return dfs_group_norm(g, in[0], in[1], in[2], a->groups, a->eps);
}
static dfs_tensor *f_group_norm_plain(dfs_graph *g, dfs_tensor **in, void *u) {
    norm_args *a = u;
    return dfs_group_norm(g, in[0], NULL, NULL, a->groups, a->eps);
}
static dfs_tensor *f_group_norm_silu(dfs_graph *g, dfs_tensor **in, void *u) {
    norm_args *a = u;
    return dfs_group_norm_silu(g, in[0], in[1], in[2], a->groups, a->eps);
}
static dfs_tensor *f_group_norm_silu_plain(dfs_graph *g, dfs_tensor **in, void *u) {
    norm_args *a = u;
    return dfs_group_norm_silu(g, in[0], NULL, NULL, a->groups, a->eps);
}
static dfs_tensor *f_group_norm_then_silu(dfs_graph *g, dfs_tensor **in, void *u) {
    norm_args *a = u;
    return dfs_silu(g, dfs_group_norm(g, in[0], in[1], in[2], a->groups, a->eps));
}
static dfs_tensor *f_layer_norm(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_layer_norm(g, in[0], in[1], in[2], 1e-5f);
}
static dfs_tensor *f_silu(dfs_graph *g, dfs_tensor **in, void *u) { return dfs_silu(g, in[0]); }
static dfs_tensor *f_gelu(dfs_graph *g, dfs_tensor **in, void *u) { return dfs_gelu(g, in[0]); }
static dfs_tensor *f_add(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_add(g, in[0], in[1]);
}
static dfs_tensor *f_mul(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_mul(g, in[0], in[1]);
}
static dfs_tensor *f_add_self(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_add(g, in[0], in[0]);
}
/* x * silu(x): x reaches the output along two paths, so grads must accumulate. */
static dfs_tensor *f_mul_silu(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_mul(g, in[0], dfs_silu(g, in[0]));
}
static dfs_tensor *f_scale(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_scale(g, in[0], -1.75f);
}
static dfs_tensor *f_softmax(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_softmax(g, in[0]);
}
static const int emb_idx[6] = {3, 0, 3, 4, 1, 3};
static dfs_tensor *f_embedding(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_embedding(g, in[0], emb_idx, 6);
}
typedef struct {
    dfs_rng rng;
    uint64_t seed;
    float p;
} drop_args;
/* Reseed before each evaluation so that every finite-difference pass sees the same mask. */
static dfs_tensor *f_dropout(dfs_graph *g, dfs_tensor **in, void *u) {
    drop_args *a = u;
    dfs_rng_seed(&a->rng, a->seed);
    dfs_graph_set_training(g, 1, &a->rng);
    return dfs_dropout(g, in[0], a->p);
}
static dfs_tensor *f_mse(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_mse(g, in[0], in[1]);
}
static dfs_tensor *f_mean(dfs_graph *g, dfs_tensor **in, void *u) { return dfs_mean(g, in[0]); }

static dfs_tensor *input(int ndim, const int *shape, dfs_rng *rng, float scale, float offset) {
    dfs_tensor *t = gc_input(ndim, shape, rng, scale);
    for (size_t i = 0; i < t->n; i++) t->data[i] += offset;
    return t;
}

/* ---- naive broadcasting reference --------------------------------------------------------- */

/* Element of t (padded on the left to nd dims) read at output multi-index ix. */
static float bread(const dfs_tensor *t, int nd, const int *ix) {
    size_t off = 0;
    int pad = nd - t->ndim;
    for (int k = 0; k < t->ndim; k++) {
        int i = t->shape[k] == 1 ? 0 : ix[k + pad];
        off = off * (size_t)t->shape[k] + (size_t)i;
    }
    return t->data[off];
}

/* Checks out = a op b elementwise by unravelling every output index. Returns mismatches. */
static int check_bcast_forward(const dfs_tensor *out, const dfs_tensor *a, const dfs_tensor *b,
                               int mul) {
    int bad = 0;
    for (size_t i = 0; i < out->n; i++) {
        int ix[DFS_MAXDIM];
        size_t r = i;
        for (int k = out->ndim - 1; k >= 0; k--) {
            ix[k] = (int)(r % (size_t)out->shape[k]);
            r /= (size_t)out->shape[k];
        }
        float x = bread(a, out->ndim, ix), y = bread(b, out->ndim, ix);
        float want = mul ? x * y : x + y;
        if (out->data[i] != want) bad++;
    }
    return bad;
}

static void test_broadcast(dfs_rng *rng) {
    struct {
        int na, nb;
        int sa[4], sb[4];
        int osh[4], ond;
    } cases[] = {
        {4, 4, {2, 3, 4, 5}, {2, 3, 1, 1}, {2, 3, 4, 5}, 4}, /* (N,C,H,W) + (N,C,1,1) */
        {4, 3, {2, 3, 4, 5}, {3, 1, 1}, {2, 3, 4, 5}, 4},    /* (N,C,H,W) + (C,1,1) */
        {3, 1, {2, 3, 4}, {4}, {2, 3, 4}, 3},                /* (B,L,D) + (D) */
        {1, 3, {4}, {2, 3, 4}, {2, 3, 4}, 3},                /* (D) + (B,L,D) */
        {4, 4, {2, 3, 1, 1}, {2, 3, 4, 5}, {2, 3, 4, 5}, 4}, /* small on the left */
        {3, 3, {2, 1, 3}, {1, 4, 1}, {2, 4, 3}, 3},          /* both broadcast */
        {4, 4, {2, 3, 4, 5}, {1, 3, 1, 5}, {2, 3, 4, 5}, 4}, /* not banded */
        {4, 4, {2, 3, 4, 5}, {2, 3, 4, 5}, {2, 3, 4, 5}, 4}, /* equal shapes */
        {2, 1, {3, 1}, {1}, {3, 1}, 2},                      /* size-1 dims */
    };
    int ncase = (int)(sizeof cases / sizeof cases[0]);
    dfs_graph *g = dfs_graph_new();
    for (int c = 0; c < ncase; c++) {
        dfs_tensor *in[2] = {gc_input(cases[c].na, cases[c].sa, rng, 1.0f),
                             gc_input(cases[c].nb, cases[c].sb, rng, 1.0f)};
        for (int mul = 0; mul < 2; mul++) {
            dfs_graph_reset(g);
            dfs_tensor *out = mul ? dfs_mul(g, in[0], in[1]) : dfs_add(g, in[0], in[1]);
            int shape_ok = out->ndim == cases[c].ond;
            for (int k = 0; shape_ok && k < out->ndim; k++)
                shape_ok = out->shape[k] == cases[c].osh[k];
            CHECK(shape_ok, "broadcast case %d: output shape", c);
            if (!shape_ok) continue;
            int bad = check_bcast_forward(out, in[0], in[1], mul);
            CHECK(bad == 0, "broadcast case %d %s: %d forward values differ", c,
                  mul ? "mul" : "add", bad);
            char name[64];
            snprintf(name, sizeof name, "%s broadcast case %d", mul ? "mul" : "add", c);
            gradcheck(name, mul ? f_mul : f_add, in, 2, NULL, H_FD, TOL);
        }
        gc_input_free(in[0]);
        gc_input_free(in[1]);
    }
    dfs_graph_free(g);

    /* the same tensor on both sides, and two paths to one input */
    dfs_tensor *x = gc_input(2, (int[]){3, 4}, rng, 1.0f);
    gradcheck("add(x, x)", f_add_self, &x, 1, NULL, H_FD, TOL);
    gradcheck("x * silu(x)", f_mul_silu, &x, 1, NULL, H_FD, TOL);
    gc_input_free(x);
}

/* ---- gradchecks of the other ops ------------------------------------------------------------ */

static void test_norm_grads(dfs_rng *rng) {
    struct {
        int nd, shape[4], groups;
    } cases[] = {
        {4, {2, 6, 3, 4}, 3}, /* several groups, 2-d spatial */
        {3, {2, 4, 5, 0}, 2}, /* 1-d spatial */
        {4, {3, 4, 2, 2}, 1}, /* one group (LayerNorm over C,H,W) */
        {4, {2, 4, 2, 3}, 4}, /* one channel per group (InstanceNorm) */
        {2, {3, 6, 0, 0}, 2}, /* no spatial dims */
    };
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        int C = cases[c].shape[1];
        dfs_tensor *in[3] = {input(cases[c].nd, cases[c].shape, rng, 1.5f, 0.3f),
                             input(1, (int[]){C}, rng, 0.5f, 1.0f),
                             input(1, (int[]){C}, rng, 0.5f, 0.0f)};
        norm_args a = {cases[c].groups, 1e-5f};
        char name[64];
        snprintf(name, sizeof name, "group_norm case %d (G=%d)", c, a.groups);
        gradcheck(name, f_group_norm, in, 3, &a, H_FD, TOL);
        snprintf(name, sizeof name, "group_norm_silu case %d (G=%d)", c, a.groups);
        gradcheck(name, f_group_norm_silu, in, 3, &a, H_FD, TOL);
        if (c == 0) {
            gradcheck("group_norm without affine", f_group_norm_plain, in, 1, &a, H_FD, TOL);
            gradcheck("group_norm_silu without affine", f_group_norm_silu_plain, in, 1, &a, H_FD,
                      TOL);
        }
        for (int k = 0; k < 3; k++) gc_input_free(in[k]);
    }
    {
        dfs_tensor *in[3] = {input(3, (int[]){3, 4, 8}, rng, 1.0f, -0.5f),
                             input(1, (int[]){8}, rng, 0.5f, 1.0f),
                             input(1, (int[]){8}, rng, 0.5f, 0.0f)};
        gradcheck("layer_norm (3,4,8)", f_layer_norm, in, 3, NULL, H_FD, TOL);
        for (int k = 0; k < 3; k++) gc_input_free(in[k]);
    }
}

static void test_elem_grads(dfs_rng *rng) {
    dfs_tensor *x = gc_input(3, (int[]){2, 3, 7}, rng, 2.0f);
    gradcheck("silu", f_silu, &x, 1, NULL, H_FD, TOL);
    gradcheck("gelu", f_gelu, &x, 1, NULL, H_FD, TOL);
    gradcheck("scale", f_scale, &x, 1, NULL, H_FD, TOL);
    gradcheck("softmax", f_softmax, &x, 1, NULL, H_FD, TOL);
    gradcheck("mean", f_mean, &x, 1, NULL, H_FD, TOL);
    gc_input_free(x);

    dfs_tensor *table = gc_input(2, (int[]){5, 4}, rng, 1.0f);
    gradcheck("embedding (repeated rows)", f_embedding, &table, 1, NULL, H_FD, TOL);
    /* row 2 is never picked: its gradient stays zero */
    int zero = 1;
    for (int k = 0; k < 4; k++) zero &= table->grad[2 * 4 + k] == 0.0f;
    CHECK(zero, "embedding: unpicked row got a gradient");
    gc_input_free(table);

    dfs_tensor *xd = gc_input(2, (int[]){4, 50}, rng, 1.0f);
    drop_args da = {.seed = 77, .p = 0.3f};
    gradcheck("dropout (fixed mask)", f_dropout, &xd, 1, &da, H_FD, TOL);
    gc_input_free(xd);

    dfs_tensor *m[2] = {gc_input(2, (int[]){3, 4}, rng, 1.0f),
                        gc_input(2, (int[]){3, 4}, rng, 1.0f)};
    m[1]->requires_grad = 0;
    gradcheck("mse", f_mse, m, 2, NULL, H_FD, TOL);
    gc_input_free(m[0]);
    gc_input_free(m[1]);
}

/* ---- forward values ------------------------------------------------------------------------- */

static dfs_tensor *from(dfs_graph *g, int ndim, const int *shape, const float *v) {
    dfs_tensor *t = dfs_tensor_new(g, ndim, shape);
    memcpy(t->data, v, t->n * sizeof(float));
    return t;
}

static void test_activations(void) {
    dfs_graph *g = dfs_graph_new();
    float xv[5] = {0.0f, 1.0f, -1.0f, 2.0f, -3.0f};
    dfs_tensor *x = from(g, 1, (int[]){5}, xv);
    dfs_tensor *s = dfs_silu(g, x), *ge = dfs_gelu(g, x);
    /* at 0 both are exactly 0; elsewhere within silu_bound / gelu_bound of the exact value
     * (the constants: 1 / (1 + e^-1) and -1 / (1 + e); the GELU formula in double) */
    CHECK_CLOSE(s->data[0], 0.0, 0, 0, "silu(0)");
    CHECK_CLOSE(s->data[1], 0.7310585786300049, silu_bound(1), 0, "silu(1)");
    CHECK_CLOSE(s->data[2], -0.2689414213699951, silu_bound(-1), 0, "silu(-1)");
    CHECK_CLOSE(ge->data[0], 0.0, 0, 0, "gelu(0)");
    CHECK_CLOSE(ge->data[1], 0.841191990608, gelu_bound(1) + 1e-12, 0, "gelu(1)");
    CHECK_CLOSE(ge->data[2], -0.158808009392, gelu_bound(-1) + 1e-12, 0, "gelu(-1)");
    CHECK_CLOSE(ge->data[3], 1.954597694088, gelu_bound(2) + 1e-12, 0, "gelu(2)");
    CHECK_CLOSE(ge->data[4], -0.003637392082, gelu_bound(-3) + 1e-12, 0, "gelu(-3)");
    dfs_tensor *sc = dfs_scale(g, x, 2.5f);
    CHECK_CLOSE(sc->data[4], -7.5, 0, 0, "scale"); /* exact: -3 * 2.5 */

    /* softmax: rows sum to 1, ratios are exp differences, and huge inputs stay finite. Each
     * p_d = exp(x_d - m) / sum: x_d - m rounds by at most u |x_d - m| <= 5u here, dfs_expf errs
     * by EPS_EXP, the 4-term sum and the division by 4u more: |p_d - exact| <= e_sm p_d. The row
     * sum (in double) then errs by at most e_sm plus a few roundings; a ratio p_d / p_0 by
     * twice that and the test's division. */
    const double e_sm = EPS_EXP + 9 * U32;
    float sv[2 * 4] = {0.1f, -2.0f, 3.0f, 0.5f, 1000.0f, 1001.0f, 1002.0f, 1000.0f};
    dfs_tensor *sm = dfs_softmax(g, from(g, 2, (int[]){2, 4}, sv));
    for (int r = 0; r < 2; r++) {
        double sum = 0;
        for (int d = 0; d < 4; d++) sum += sm->data[r * 4 + d];
        CHECK_CLOSE(sum, 1.0, e_sm + 6 * U32, 0, "softmax row sum");
        for (int d = 1; d < 4; d++)
            CHECK_CLOSE(sm->data[r * 4 + d] / sm->data[r * 4], exp(sv[r * 4 + d] - sv[r * 4]), 0,
                        2 * (e_sm + 6 * U32) + U32, "softmax ratio");
    }
    /* closed form for the second row: exp(k) / (2 + e + e^2) for k = 0, 1, 2, 0 */
    double den = 2.0 + exp(1.0) + exp(2.0);
    CHECK_CLOSE(sm->data[6], exp(2.0) / den, 0, e_sm, "softmax large inputs");

    /* mean and mse of known numbers; mse gradient 2 (a - b) / n into a only */
    float av[4] = {1, 2, 3, 4}, bv[4] = {0, 2, 5, 1};
    dfs_tensor *a = from(g, 1, (int[]){4}, av), *b = from(g, 1, (int[]){4}, bv);
    a->requires_grad = b->requires_grad = 1;
    dfs_tensor *mean = dfs_mean(g, a);
    CHECK_CLOSE(mean->data[0], 2.5, 0, 0, "mean");
    dfs_graph_reset(g);
    a = from(g, 1, (int[]){4}, av);
    b = from(g, 1, (int[]){4}, bv);
    a->requires_grad = b->requires_grad = 1;
    dfs_tensor *mse = dfs_mse(g, a, b);
    CHECK(mse->n == 1, "mse is a scalar");
    CHECK_CLOSE(mse->data[0], 3.5, 0, 0, "mse of (1,0,-2,3)");
    dfs_backward(g, mse);
    float want[4] = {0.5f, 0.0f, -1.0f, 1.5f}; /* exact: 2 (a - b) / 4 of small integers */
    for (int i = 0; i < 4; i++) CHECK_CLOSE(a->grad[i], want[i], 0, 0, "mse grad");
    CHECK(b->grad == NULL || (b->grad[0] == 0 && b->grad[2] == 0 && b->grad[3] == 0),
          "mse: gradient flowed into the target");

    /* embedding picks rows */
    dfs_graph_reset(g);
    float tv[3 * 2] = {1, 2, 3, 4, 5, 6};
    dfs_tensor *e = dfs_embedding(g, from(g, 2, (int[]){3, 2}, tv), (int[]){2, 0, 2}, 3);
    CHECK(e->ndim == 2 && e->shape[0] == 3 && e->shape[1] == 2, "embedding shape");
    CHECK(e->data[0] == 5 && e->data[1] == 6 && e->data[2] == 1 && e->data[5] == 6,
          "embedding rows");

    /* no-grad mode records nothing */
    dfs_graph_reset(g);
    dfs_tensor *p = from(g, 1, (int[]){5}, xv);
    p->requires_grad = 1;
    dfs_graph_set_grad(g, 0);
    CHECK(!dfs_silu(g, p)->requires_grad, "no-grad mode: silu output requires grad");
    CHECK(!dfs_add(g, p, p)->requires_grad, "no-grad mode: add output requires grad");
    dfs_graph_set_grad(g, 1);
    CHECK(dfs_silu(g, p)->requires_grad, "grad mode: silu output does not require grad");
    dfs_graph_free(g);
}

/* How far a float32 GroupNorm / LayerNorm output gamma (x - mu) rstd + beta can lie from its
 * exact value, mu and rstd being exact: both are rounded to float (u each), then GroupNorm forms
 * y = x a + b with a = rstd gamma, b = beta - mu a, LayerNorm y = gamma ((x - mu) rstd) + beta;
 * either way about six roundings of terms no larger than |gamma| rstd (|x| + 2|mu|) + |beta|. */
static double norm_bound(double x, double mu, double rstd, double gamma, double beta) {
    return 6 * U32 * (fabs(gamma) * rstd * (fabs(x) + 2 * fabs(mu)) + fabs(beta));
}

static void test_norm_values(dfs_rng *rng) {
    dfs_graph *g = dfs_graph_new();
    int N = 2, C = 6, H = 5, W = 3, G = 3, Cg = C / G, S = H * W;
    dfs_tensor *x = dfs_tensor_new(g, 4, (int[]){N, C, H, W});
    for (size_t i = 0; i < x->n; i++) x->data[i] = 3.0f + 2.0f * dfs_rng_normal(rng);
    dfs_tensor *one = dfs_tensor_new(g, 1, (int[]){C}), *zero = dfs_tensor_zeros(g, 1, (int[]){C});
    for (int c = 0; c < C; c++) one->data[c] = 1.0f;
    dfs_tensor *y = dfs_group_norm(g, x, one, zero, G, 1e-5f);
    /* Per group, with mu and var from x in double: exactly, y has mean 0 and biased variance
     * var / (var + eps). The op rounds mu and rstd to float (u each) and forms y = x a + b,
     * a = rstd, b = -mu a: each y errs by at most e_i = 6u rstd (|x_i| + 2|mu|) (norm_bound), so
     * its mean by mean(e) and its variance by 2 mean(|y| e) + mean(e)^2. */
    double mu_g[2 * 3], rs_g[2 * 3];
    for (int n = 0; n < N; n++)
        for (int gg = 0; gg < G; gg++) {
            const float *xv = x->data + ((size_t)n * C + gg * Cg) * S;
            const float *v = y->data + ((size_t)n * C + gg * Cg) * S;
            double mu = 0, var = 0;
            for (int i = 0; i < Cg * S; i++) mu += xv[i];
            mu /= Cg * S;
            for (int i = 0; i < Cg * S; i++) var += (xv[i] - mu) * (xv[i] - mu);
            var /= Cg * S;
            double rs = 1 / sqrt(var + 1e-5), me = 0, ve = 0;
            mu_g[n * G + gg] = mu, rs_g[n * G + gg] = rs;
            double s = 0, s2 = 0;
            for (int i = 0; i < Cg * S; i++) s += v[i];
            s /= Cg * S;
            for (int i = 0; i < Cg * S; i++) {
                s2 += (v[i] - s) * (v[i] - s);
                double e = norm_bound(xv[i], mu, rs, 1, 0);
                me += e, ve += 2 * fabs(v[i]) * e;
            }
            s2 /= Cg * S; /* biased */
            me /= Cg * S, ve = ve / (Cg * S) + me * me;
            CHECK_CLOSE(s, 0.0, me, 0, "group_norm group mean");
            CHECK_CLOSE(s2, var / (var + 1e-5), ve, 0, "group_norm group variance");
        }
    /* affine: channel c gets gamma_c y + beta_c */
    dfs_tensor *gm = dfs_tensor_new(g, 1, (int[]){C}), *bt = dfs_tensor_new(g, 1, (int[]){C});
    for (int c = 0; c < C; c++) {
        gm->data[c] = 0.5f + c;
        bt->data[c] = -1.0f + 0.25f * c;
    }
    dfs_tensor *ya = dfs_group_norm(g, x, gm, bt, G, 1e-5f);
    /* both against the exact gamma_c xhat + beta_c: ya within norm_bound, y's (within
     * norm_bound with gamma 1) times |gamma_c|, and the test's own two roundings */
    double worst = 0;
    for (size_t i = 0; i < x->n; i++) {
        int c = (int)(i / S % C), gi = (int)(i / ((size_t)Cg * S));
        double mu = mu_g[gi], rs = rs_g[gi], gmc = gm->data[c], btc = bt->data[c];
        double b = norm_bound(x->data[i], mu, rs, gmc, btc) + fabs(gmc) * norm_bound(x->data[i], mu, rs, 1, 0) +
                   2 * U32 * (fabs(gmc * y->data[i]) + fabs(btc));
        worst = max_err(worst, err_ratio(fabs(ya->data[i] - (gm->data[c] * y->data[i] + bt->data[c])), b));
    }
    CHECK_RATIO(worst, "group_norm affine: error %.3g of its bound", worst);
    /* a tiny hand-computed case: one group of [1, 3] -> [-1, 1] (mean 2, variance 1, eps 0:
     * mu and rstd are exact, and so is x a + b) */
    dfs_tensor *t = from(g, 3, (int[]){1, 2, 1}, (float[]){1.0f, 3.0f});
    dfs_tensor *tn = dfs_group_norm(g, t, NULL, NULL, 1, 0.0f);
    CHECK_CLOSE(tn->data[0], -1.0, 0, 0, "group_norm [1,3]");
    CHECK_CLOSE(tn->data[1], 1.0, 0, 0, "group_norm [1,3]");

    /* layer norm: each row has mean 0 and variance 1; [1,2,3,4] by hand: mean 2.5, biased
     * variance 1.25 exact, rstd rounded (norm_bound) */
    dfs_tensor *l = from(g, 2, (int[]){1, 4}, (float[]){1, 2, 3, 4});
    dfs_tensor *ln = dfs_layer_norm(g, l, NULL, NULL, 0.0f);
    const double r125 = 1 / sqrt(1.25);
    CHECK_CLOSE(ln->data[0], -1.5 * r125, norm_bound(1, 2.5, r125, 1, 0), 0, "layer_norm [1,2,3,4]");
    CHECK_CLOSE(ln->data[3], 1.5 * r125, norm_bound(4, 2.5, r125, 1, 0), 0, "layer_norm [1,2,3,4]");
    dfs_graph_free(g);
}

static void test_timestep(void) {
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *e = dfs_timestep_embedding(g, (int[]){0, 5}, 2, 8);
    CHECK(e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 8, "timestep shape");
    CHECK(!e->requires_grad, "timestep embedding requires grad");
    for (int i = 0; i < 4; i++) {
        CHECK_CLOSE(e->data[i], 0.0, 0, 0, "t=0 sine");
        CHECK_CLOSE(e->data[4 + i], 1.0, 0, 0, "t=0 cosine");
    }
    /* dim 8: f_i = 10^-i, so at t = 5 the arguments are 5, 0.5, 0.05, 0.005 */
    const double s5[4] = {-0.958924274663, 0.479425538604, 0.049979169271, 0.004999979167};
    const double c5[4] = {0.283662185463, 0.877582561890, 0.998750260395, 0.999987500026};
    /* computed in double and rounded to float: within u of the value (the constants have 12
     * digits) */
    for (int i = 0; i < 4; i++) {
        CHECK_CLOSE(e->data[8 + i], s5[i], 1e-12, U32, "t=5 sine");
        CHECK_CLOSE(e->data[12 + i], c5[i], 1e-12, U32, "t=5 cosine");
    }
    dfs_graph_free(g);
}

static void test_dropout(dfs_rng *rng) {
    dfs_graph *g = dfs_graph_new();
    int n = 200000;
    float p = 0.3f;
    dfs_tensor *x = dfs_tensor_new(g, 1, (int[]){n});
    for (int i = 0; i < n; i++) x->data[i] = 1.0f + dfs_rng_uniform(rng); /* never 0 */

    /* evaluation mode (the default) and p == 0 are the identity */
    CHECK(dfs_dropout(g, x, p) == x, "dropout in eval mode is not the identity");
    dfs_rng r;
    dfs_rng_seed(&r, 5);
    dfs_graph_set_training(g, 1, &r);
    CHECK(dfs_dropout(g, x, 0.0f) == x, "dropout with p = 0 is not the identity");

    dfs_tensor *y = dfs_dropout(g, x, p);
    int zeros = 0, badscale = 0;
    for (int i = 0; i < n; i++) {
        /* kept: x / (1 - p) with two or three roundings on either side (1 - p, the scale, the
         * product): within 4u */
        if (y->data[i] == 0.0f)
            zeros++;
        else if (!(fabsf(y->data[i] - x->data[i] / (1.0f - p)) <= 4 * U32 * y->data[i]))
            badscale++;
    }
    /* binomial: the std of the fraction is sqrt(p (1-p) / n) = 0.001; 0.006 is 5.9 std (the
     * mask comes from the integer generator: the same on every machine) */
    CHECK_CLOSE((double)zeros / n, p, 0.006, 0, "dropout fraction zeroed");
    CHECK(badscale == 0, "dropout: %d kept values not scaled by 1/(1-p)", badscale);

    /* same seed, same mask; another seed, another mask */
    dfs_rng_seed(&r, 5);
    dfs_tensor *y2 = dfs_dropout(g, x, p);
    CHECK(memcmp(y->data, y2->data, (size_t)n * sizeof(float)) == 0, "same seed, different mask");
    dfs_rng_seed(&r, 6);
    dfs_tensor *y3 = dfs_dropout(g, x, p);
    CHECK(memcmp(y->data, y3->data, (size_t)n * sizeof(float)) != 0, "different seed, same mask");

    /* backward passes the gradient through kept elements only, scaled */
    x->requires_grad = 1;
    dfs_rng_seed(&r, 5);
    dfs_tensor *y4 = dfs_dropout(g, x, p);
    float *dout = malloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) dout[i] = 1.0f;
    dfs_backward_grad(g, y4, dout);
    int badgrad = 0;
    for (int i = 0; i < n; i++) {
        float want = y->data[i] == 0.0f ? 0.0f : 1.0f / (1.0f - p);
        if (!(fabsf(x->grad[i] - want) <= 4 * U32 * want)) badgrad++; /* as the forward */
    }
    CHECK(badgrad == 0, "dropout backward: %d elements off", badgrad);
    free(dout);
    dfs_graph_free(g);
}

/* ---- large tensors (OpenMP paths) against plain double loops --------------------------------
 * Each element within its own rounding-error bound: the double reference's value is exact to
 * float precision; the op's error comes from the float32 roundings of the elementwise work
 * (norm_bound) and from its sums (sum_err of the sum of absolute terms, computed alongside). */

static void test_large(dfs_rng *rng) {
    dfs_graph *g = dfs_graph_new();
    int N = 4, C = 32, H = 16, W = 16, G = 8, Cg = C / G, S = H * W;
    size_t n = (size_t)N * C * S, M = (size_t)Cg * S;
    dfs_tensor *x = dfs_tensor_new(g, 4, (int[]){N, C, H, W});
    dfs_tensor *gm = dfs_tensor_new(g, 1, (int[]){C}), *bt = dfs_tensor_new(g, 1, (int[]){C});
    dfs_rng_fill_normal(rng, x->data, n);
    for (int c = 0; c < C; c++) {
        gm->data[c] = 1.0f + 0.3f * dfs_rng_normal(rng);
        bt->data[c] = 0.3f * dfs_rng_normal(rng);
    }
    x->requires_grad = gm->requires_grad = bt->requires_grad = 1;
    dfs_tensor *y = dfs_group_norm(g, x, gm, bt, G, 1e-5f);
    float *dout = malloc(n * sizeof(float));
    dfs_rng_fill_normal(rng, dout, n);
    dfs_backward_grad(g, y, dout);

    /* GroupNorm forward, dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = gamma dout, and
     * dgamma = sum dout xhat, dbeta = sum dout over N S positions. The bounds: y's is
     * norm_bound; xhat errs by at most ex = 3u (|x| + |mu|) rstd; dx's group means are sums of
     * M terms (sum_err), carry the errors of xhat, and dx's own few roundings add 4u of its
     * terms; dgamma and dbeta are sums of N S terms, dgamma with xhat's error carried. */
    double ry = 0, rdx = 0, rdg = 0, rdb = 0;
    double *sdg = calloc(C, sizeof(double)), *adg = calloc(C, sizeof(double)),
           *edg = calloc(C, sizeof(double)), *sdb = calloc(C, sizeof(double)),
           *adb = calloc(C, sizeof(double));
    for (int nn = 0; nn < N; nn++)
        for (int gg = 0; gg < G; gg++) {
            size_t o = ((size_t)nn * C + gg * Cg) * S;
            double mu = 0, var = 0;
            for (size_t i = 0; i < M; i++) mu += x->data[o + i];
            mu /= M;
            for (size_t i = 0; i < M; i++) var += (x->data[o + i] - mu) * (x->data[o + i] - mu);
            var /= M;
            double rs = 1.0 / sqrt(var + 1e-5), sg = 0, sgx = 0, ag = 0, agx = 0, agex = 0;
            for (size_t i = 0; i < M; i++) {
                int c = gg * Cg + (int)(i / S);
                double xh = (x->data[o + i] - mu) * rs, ex = 3 * U32 * (fabs(x->data[o + i]) + fabs(mu)) * rs;
                double gi = (double)dout[o + i] * gm->data[c];
                double want = gm->data[c] * xh + bt->data[c];
                ry = max_err(ry, err_ratio(fabs(y->data[o + i] - want),
                                           norm_bound(x->data[o + i], mu, rs, gm->data[c], bt->data[c])));
                sdg[c] += dout[o + i] * xh, adg[c] += fabs(dout[o + i] * xh), edg[c] += fabs(dout[o + i]) * ex;
                sdb[c] += dout[o + i], adb[c] += fabs(dout[o + i]);
                sg += gi, sgx += gi * xh, ag += fabs(gi), agx += fabs(gi * xh), agex += fabs(gi) * ex;
            }
            const double eg = sum_err(M, ag) / M, egx = (sum_err(M, agx) + agex) / M;
            for (size_t i = 0; i < M; i++) {
                int c = gg * Cg + (int)(i / S);
                double xh = (x->data[o + i] - mu) * rs, ex = 3 * U32 * (fabs(x->data[o + i]) + fabs(mu)) * rs;
                double gi = (double)dout[o + i] * gm->data[c];
                double want = rs * (gi - sg / M - xh * sgx / M);
                double b = rs * (eg + fabs(xh) * egx + ex * fabs(sgx / M)) +
                           4 * U32 * rs * (fabs(gi) + fabs(sg / M) + fabs(xh * sgx / M));
                rdx = max_err(rdx, err_ratio(fabs(x->grad[o + i] - want), b));
            }
        }
    for (int c = 0; c < C; c++) {
        rdg = max_err(rdg, err_ratio(fabs(gm->grad[c] - sdg[c]),
                                     sum_err((double)N * S, adg[c]) + edg[c] + U32 * fabs(sdg[c])));
        rdb = max_err(rdb, err_ratio(fabs(bt->grad[c] - sdb[c]), sum_err((double)N * S, adb[c]) + U32 * fabs(sdb[c])));
    }
    CHECK_RATIO(ry, "large group_norm forward: error %.3g of its bound", ry);
    CHECK_RATIO(rdx, "large group_norm dx: error %.3g of its bound", rdx);
    CHECK_RATIO(rdg, "large group_norm dgamma: error %.3g of its bound", rdg);
    CHECK_RATIO(rdb, "large group_norm dbeta: error %.3g of its bound", rdb);
    free(sdg), free(adg), free(edg), free(sdb), free(adb);

    /* broadcast add/mul of (N,C,1,1) and (C) rows, forward and backward: z and da are one
     * correctly rounded operation (within u of the double value; the add's da is dout
     * itself), db a sum of S terms */
    for (int mul = 0; mul < 2; mul++) {
        dfs_graph_reset(g);
        dfs_tensor *a = dfs_tensor_new(g, 4, (int[]){N, C, H, W});
        dfs_tensor *b = dfs_tensor_new(g, 4, (int[]){N, C, 1, 1});
        dfs_rng_fill_normal(rng, a->data, n);
        dfs_rng_fill_normal(rng, b->data, b->n);
        a->requires_grad = b->requires_grad = 1;
        dfs_tensor *z = mul ? dfs_mul(g, a, b) : dfs_add(g, a, b);
        dfs_backward_grad(g, z, dout);
        double *rdbb = calloc(b->n, sizeof(double)), *abb = calloc(b->n, sizeof(double));
        double rz = 0, rda = 0, rdbm = 0;
        for (size_t i = 0; i < n; i++) {
            size_t j = i / S;
            double zi = mul ? (double)a->data[i] * b->data[j] : (double)a->data[i] + b->data[j];
            double dai = mul ? (double)dout[i] * b->data[j] : dout[i];
            double t = mul ? (double)dout[i] * a->data[i] : dout[i];
            rz = max_err(rz, err_ratio(fabs(z->data[i] - zi), U32 * fabs(zi)));
            rda = max_err(rda, err_ratio(fabs(a->grad[i] - dai), U32 * fabs(dai)));
            rdbb[j] += t, abb[j] += fabs(t);
        }
        for (size_t j = 0; j < b->n; j++)
            rdbm = max_err(rdbm, err_ratio(fabs(b->grad[j] - rdbb[j]), sum_err(S, abb[j]) + U32 * fabs(rdbb[j])));
        CHECK_RATIO(rz, "large broadcast %s forward: error %.3g of its bound", mul ? "mul" : "add", rz);
        CHECK_RATIO(rda, "large broadcast %s da: error %.3g of its bound", mul ? "mul" : "add", rda);
        CHECK_RATIO(rdbm, "large broadcast %s db: error %.3g of its bound", mul ? "mul" : "add", rdbm);
        free(rdbb);
        free(abb);
    }

    /* Layer norm on (R, D) rows against a double-precision reference computed from the input:
     * the output elementwise (norm_bound) and each row's statistics (mean 0 and biased variance
     * var / (var + eps) within the mean of those bounds, as for GroupNorm in test_norm_values),
     * dgamma = sum_r dout xhat and dbeta = sum_r dout (sums of R terms, xhat's error carried). */
    dfs_graph_reset(g);
    int R = 512, D = 64; /* R * D == n, the length of dout */
    dfs_tensor *lx = dfs_tensor_new(g, 2, (int[]){R, D});
    dfs_tensor *lg = dfs_tensor_new(g, 1, (int[]){D}), *lb = dfs_tensor_new(g, 1, (int[]){D});
    dfs_rng_fill_normal(rng, lx->data, lx->n);
    for (int d = 0; d < D; d++) {
        lx->data[d] += 2.0f; /* one row off centre */
        lg->data[d] = 1.0f + 0.3f * dfs_rng_normal(rng);
        lb->data[d] = 0.3f * dfs_rng_normal(rng);
    }
    lg->requires_grad = lb->requires_grad = 1;
    dfs_tensor *ly = dfs_layer_norm(g, lx, lg, lb, 1e-5f);
    dfs_backward_grad(g, ly, dout);
    double *rg = calloc(D, sizeof(double)), *ag = calloc(D, sizeof(double)),
           *eg = calloc(D, sizeof(double)), *rb = calloc(D, sizeof(double)),
           *ab = calloc(D, sizeof(double));
    double rly = 0, rmean = 0, rvar = 0;
    for (int r = 0; r < R; r++) {
        const float *xr = lx->data + (size_t)r * D, *yr = ly->data + (size_t)r * D;
        double mu = 0, var = 0;
        for (int d = 0; d < D; d++) mu += xr[d];
        mu /= D;
        for (int d = 0; d < D; d++) var += (xr[d] - mu) * (xr[d] - mu);
        var /= D;
        double rs = 1 / sqrt(var + 1e-5), m = 0, v = 0, em = 0, ev = 0;
        for (int d = 0; d < D; d++) {
            double xh = (xr[d] - mu) * rs, want = lg->data[d] * xh + lb->data[d];
            double e = norm_bound(xr[d], mu, rs, lg->data[d], lb->data[d]);
            double ex = 3 * U32 * (fabs(xr[d]) + fabs(mu)) * rs, dy = dout[(size_t)r * D + d];
            rly = max_err(rly, err_ratio(fabs(yr[d] - want), e));
            /* the statistics of the normalised row, (y - beta) / gamma */
            double z = (yr[d] - (double)lb->data[d]) / lg->data[d], ez = e / fabs(lg->data[d]);
            m += z, v += z * z, em += ez, ev += 2 * fabs(z) * ez;
            rg[d] += dy * xh, ag[d] += fabs(dy * xh), eg[d] += fabs(dy) * ex;
            rb[d] += dy, ab[d] += fabs(dy);
        }
        m /= D, em /= D, v = v / D - m * m, ev = ev / D + em * em + 2 * fabs(m) * em;
        rmean = max_err(rmean, err_ratio(fabs(m), em));
        rvar = max_err(rvar, err_ratio(fabs(v - var / (var + 1e-5)), ev));
    }
    double rdgl = 0, rdbl = 0;
    for (int d = 0; d < D; d++) {
        rdgl = max_err(rdgl, err_ratio(fabs(lg->grad[d] - rg[d]), sum_err(R, ag[d]) + eg[d] + U32 * fabs(rg[d])));
        rdbl = max_err(rdbl, err_ratio(fabs(lb->grad[d] - rb[d]), sum_err(R, ab[d]) + U32 * fabs(rb[d])));
    }
    CHECK_RATIO(rly, "large layer_norm forward: error %.3g of its bound", rly);
    CHECK_RATIO(rmean, "large layer_norm row means: error %.3g of its bound", rmean);
    CHECK_RATIO(rvar, "large layer_norm row variances: error %.3g of its bound", rvar);
    CHECK_RATIO(rdgl, "large layer_norm dgamma: error %.3g of its bound", rdgl);
    CHECK_RATIO(rdbl, "large layer_norm dbeta: error %.3g of its bound", rdbl);
    free(rg), free(ag), free(eg), free(rb), free(ab);

    free(dout);
    dfs_graph_free(g);
}

/* ---- fresh gradient buffers ------------------------------------------------------------------ */

typedef struct {
    gc_fn f;
    void *user;
    int nin;
} fresh_args;

/* The wrapped op applied to dfs_scale(x, 1) of each input that requires grad: values are the
 * same, but the op's backward finds its inputs without gradient buffers. */
static dfs_tensor *f_fresh(dfs_graph *g, dfs_tensor **in, void *u) {
    fresh_args *a = u;
    dfs_tensor *s[4] = {0};
    for (int k = 0; k < a->nin; k++) s[k] = in[k]->requires_grad ? dfs_scale(g, in[k], 1.0f) : in[k];
    return a->f(g, s, a->user);
}

static dfs_tensor *f_concat(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_concat(g, in[0], in[1], 1);
}
static dfs_tensor *f_upsample(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_upsample_nearest(g, in[0], 2);
}
static dfs_tensor *f_reshape(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_reshape(g, in[0], 2, (int[]){in[0]->shape[0], (int)(in[0]->n / in[0]->shape[0])});
}
static dfs_tensor *f_conv3(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_conv2d(g, in[0], in[1], in[2], 1, 1);
}
static dfs_tensor *f_conv1(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_conv2d(g, in[0], in[1], in[2], 1, 0);
}
static dfs_tensor *f_bmm_tn(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_bmm(g, in[0], in[1], 1, 0);
}

static void fresh_check(const char *name, gc_fn f, dfs_tensor **in, int nin, void *user) {
    fresh_args a = {f, user, nin};
    dfs_tensor *pad[4] = {0};
    for (int k = 0; k < nin; k++) pad[k] = in[k];
    char buf[96];
    snprintf(buf, sizeof buf, "%s (fresh grad)", name);
    gradcheck(buf, f_fresh, pad, nin, &a, H_FD, TOL);
}

/* Large tensors (parallel paths): the gradient through the fresh path equals the accumulating
 * one, and the fused GroupNorm+SiLU equals silu(group_norm) in values and gradients.
 * Tolerances, relative to the largest value: the fresh and the accumulating backward evaluate
 * the same expressions (0 + v = v exactly), but the compiler may contract a different subset of
 * a * b + c into FMAs in the two loops: a few roundings, 4u of terms at most ~4x the largest
 * value, ~1e-6 (TOL_SAME). GroupNorm+SiLU fused and composed both evaluate silu and silu'
 * through dfs_expf (EPS_EXP) and a few roundings, ~8e-7 of each term; GroupNorm's backward
 * subtracts group means of terms as large as the result and ~3x larger, so ~4 such terms:
 * ~3e-6, and 1e-5 (TOL_GNS) leaves three times that. */
#define TOL_SAME 1e-6
#define TOL_GNS 1e-5
static double max_rel(const float *a, const float *b, size_t n) {
    double m = 0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return m / s;
}

static void grads_of(gc_fn f, dfs_tensor **in, int nin, void *user, const float *dout, float **g_out,
                     float **y_out) {
    dfs_graph *g = dfs_graph_new();
    for (int k = 0; k < nin; k++) memset(in[k]->grad, 0, in[k]->n * sizeof(float));
    dfs_tensor *y = f(g, in, user);
    dfs_backward_grad(g, y, dout);
    for (int k = 0; k < nin; k++) {
        g_out[k] = malloc(in[k]->n * sizeof(float));
        memcpy(g_out[k], in[k]->grad, in[k]->n * sizeof(float));
    }
    *y_out = malloc(y->n * sizeof(float));
    memcpy(*y_out, y->data, y->n * sizeof(float));
    dfs_graph_free(g);
}

static void compare_large(const char *name, gc_fn f1, gc_fn f2, dfs_tensor **in, int nin, void *u1,
                          void *u2, size_t nout, dfs_rng *rng, double tol) {
    float *dout = malloc(nout * sizeof(float));
    dfs_rng_fill_normal(rng, dout, nout);
    float *g1[4], *g2[4], *y1, *y2;
    grads_of(f1, in, nin, u1, dout, g1, &y1);
    grads_of(f2, in, nin, u2, dout, g2, &y2);
    double e = max_rel(y1, y2, nout);
    CHECK(e <= tol, "%s: output rel err %.3g", name, e);
    for (int k = 0; k < nin; k++) {
        e = max_rel(g1[k], g2[k], in[k]->n);
        CHECK(e <= tol, "%s: grad of input %d rel err %.3g", name, k, e);
        free(g1[k]);
        free(g2[k]);
    }
    free(y1);
    free(y2);
    free(dout);
}

static void test_fresh_grads(dfs_rng *rng) {
    norm_args na = {3, 1e-5f};
    dfs_tensor *x = input(4, (int[]){2, 6, 3, 4}, rng, 1.5f, 0.3f);
    dfs_tensor *gm = input(1, (int[]){6}, rng, 0.5f, 1.0f), *bt = input(1, (int[]){6}, rng, 0.5f, 0.0f);
    dfs_tensor *y = input(4, (int[]){2, 6, 3, 4}, rng, 1.0f, 0.0f);
    dfs_tensor *row = input(4, (int[]){1, 6, 1, 1}, rng, 1.0f, 0.0f);
    dfs_tensor *z = input(4, (int[]){2, 2, 3, 4}, rng, 1.0f, 0.0f);
    fresh_check("group_norm", f_group_norm, (dfs_tensor *[]){x, gm, bt}, 3, &na);
    fresh_check("group_norm_silu", f_group_norm_silu, (dfs_tensor *[]){x, gm, bt}, 3, &na);
    fresh_check("silu", f_silu, &x, 1, NULL);
    fresh_check("scale", f_scale, &x, 1, NULL);
    fresh_check("softmax", f_softmax, &x, 1, NULL);
    fresh_check("add", f_add, (dfs_tensor *[]){x, y}, 2, NULL);
    fresh_check("mul", f_mul, (dfs_tensor *[]){x, y}, 2, NULL);
    fresh_check("add broadcast", f_add, (dfs_tensor *[]){x, row}, 2, NULL);
    fresh_check("mul broadcast", f_mul, (dfs_tensor *[]){row, x}, 2, NULL);
    fresh_check("add self", f_add_self, &x, 1, NULL);
    fresh_check("concat", f_concat, (dfs_tensor *[]){x, z}, 2, NULL);
    fresh_check("upsample", f_upsample, &x, 1, NULL);
    fresh_check("reshape", f_reshape, &x, 1, NULL);
    y->requires_grad = 0; /* the mse target */
    fresh_check("mse", f_mse, (dfs_tensor *[]){x, y}, 2, NULL);
    y->requires_grad = 1;
    drop_args da = {.seed = 78, .p = 0.3f};
    fresh_check("dropout", f_dropout, &x, 1, &da);
    dfs_tensor *w3 = input(4, (int[]){4, 6, 3, 3}, rng, 0.3f, 0.0f), *w1 = input(4, (int[]){4, 6, 1, 1}, rng, 0.3f, 0.0f);
    dfs_tensor *cb = input(1, (int[]){4}, rng, 0.3f, 0.0f);
    fresh_check("conv 3x3", f_conv3, (dfs_tensor *[]){x, w3, cb}, 3, NULL);
    fresh_check("conv 1x1", f_conv1, (dfs_tensor *[]){x, w1, cb}, 3, NULL);
    dfs_tensor *ba = input(3, (int[]){3, 4, 5}, rng, 1.0f, 0.0f), *bb = input(3, (int[]){3, 4, 2}, rng, 1.0f, 0.0f);
    fresh_check("bmm", f_bmm_tn, (dfs_tensor *[]){ba, bb}, 2, NULL);
    dfs_tensor *all[] = {x, gm, bt, y, row, z, w3, w1, cb, ba, bb};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) gc_input_free(all[k]);

    /* large: OpenMP paths */
    norm_args nl = {8, 1e-5f};
    dfs_tensor *lx = input(4, (int[]){4, 32, 16, 16}, rng, 1.5f, 0.3f);
    dfs_tensor *lg = input(1, (int[]){32}, rng, 0.5f, 1.0f), *lb = input(1, (int[]){32}, rng, 0.5f, 0.0f);
    dfs_tensor *ly = input(4, (int[]){4, 32, 16, 16}, rng, 1.0f, 0.0f);
    dfs_tensor *in3[3] = {lx, lg, lb}, *in2[2] = {lx, ly};
    fresh_args fa;
    compare_large("group_norm_silu vs silu(group_norm)", f_group_norm_silu, f_group_norm_then_silu,
                  in3, 3, &nl, &nl, lx->n, rng, TOL_GNS);
    fa = (fresh_args){f_group_norm_silu, &nl, 3};
    compare_large("group_norm_silu fresh", f_fresh, f_group_norm_silu, in3, 3, &fa, &nl, lx->n, rng, TOL_SAME);
    fa = (fresh_args){f_silu, NULL, 1};
    compare_large("silu fresh", f_fresh, f_silu, &lx, 1, &fa, NULL, lx->n, rng, TOL_SAME);
    fa = (fresh_args){f_mul, NULL, 2};
    compare_large("mul fresh", f_fresh, f_mul, in2, 2, &fa, NULL, lx->n, rng, TOL_SAME);
    fa = (fresh_args){f_concat, NULL, 2};
    compare_large("concat fresh", f_fresh, f_concat, in2, 2, &fa, NULL, 2 * lx->n, rng, TOL_SAME);
    fa = (fresh_args){f_upsample, NULL, 1};
    compare_large("upsample fresh", f_fresh, f_upsample, &lx, 1, &fa, NULL, 4 * lx->n, rng, TOL_SAME);
    dfs_tensor *large[] = {lx, lg, lb, ly};
    for (size_t k = 0; k < sizeof large / sizeof large[0]; k++) gc_input_free(large[k]);
}

/* ---- fast exp and SiLU, dropout masks, memory reuse ------------------------------------------ */

static void test_fast_exp(void) {
    /* dfs_expf against double exp at 2M points of [-87, 88]: relative error at most EPS_EXP =
     * 3e-7 (2.5 ulps), the accuracy the other tests' bounds assume. Its parts: Cephes' degree-5
     * P approximates exp on |r| <= ln2 / 2 to ~1e-8 relative, the reduction r = x - n ln 2
     * (ln 2 in two parts) errs by ~u |r|, and Horner's 7 steps (with or without FMA) and the
     * final scaling add a few roundings of terms of size <= 1.4: ~5u ~ 3e-7 at most. */
    double worst = 0, wx = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        double want = exp((double)x), err = fabs(dfs_expf(x) - want) / want;
        if (!(err <= worst)) worst = err, wx = x; /* a NaN stays */
    }
    CHECK(worst <= EPS_EXP, "dfs_expf: relative error %.3g at x = %g", worst, wx);
    CHECK(dfs_expf(-1000.0f) > 0.0f && dfs_expf(-1000.0f) < 1e-37f && isfinite(dfs_expf(1000.0f)),
          "dfs_expf clamps: exp(-1000) = %g, exp(1000) = %g", (double)dfs_expf(-1000.0f),
          (double)dfs_expf(1000.0f));
    /* SiLU rows (AVX-512 with masked tails, and the portable loop) against double, at lengths
     * with every tail size. z = 1.3 x - 0.2 rounds by at most 2u (|1.3 x| + 0.2) <= 2.8u
     * max(|z|, 1) (|x| <= 12); silu' <= 1.1 carries that, and silu itself adds EPS_EXP + 3u
     * (silu_bound): 1e-6 of max(|silu|, 1) holds the 6.6e-7 that makes. */
    float x[100], y[2][100];
    for (int n = 1; n <= 100; n += 3) {
        for (int i = 0; i < n; i++) x[i] = -12.0f + 24.0f * (float)((i * 37) % 101) / 100.0f;
        for (int silu = 0; silu <= 1; silu++) {
            dfs_act_row(y[0], x, (size_t)n, 1.3f, -0.2f, silu);
            dfs_affine_act(y[1], x, (size_t)n, 1.3f, -0.2f, silu);
            double e = 0;
            for (int k = 0; k < 2; k++)
                for (int i = 0; i < n; i++) {
                    double z = 1.3 * x[i] - 0.2, want = silu ? z / (1.0 + exp(-z)) : z;
                    double d = fabs(y[k][i] - want) / (fabs(want) > 1 ? fabs(want) : 1);
                    e = max_err(e, d);
                }
            CHECK(e <= 1e-6, "act row n%d silu%d: error %.3g", n, silu, e);
        }
    }
    /* padded rows: zeros, the row, zeros */
    float src[3 * 19], dst[3 * 23];
    for (int i = 0; i < 3 * 19; i++) src[i] = (float)(i + 1);
    dfs_pad_rows(dst, src, 3, 19, 2);
    int bad = 0;
    for (int h = 0; h < 3; h++)
        for (int i = 0; i < 23; i++) {
            float want = i < 2 || i >= 21 ? 0.0f : src[h * 19 + i - 2];
            bad += dst[h * 23 + i] != want;
        }
    CHECK(bad == 0, "dfs_pad_rows: %d wrong elements", bad);
    /* and with SiLU(a x + b) on the way, against the unpadded row function: two evaluations of
     * silu(a x + b), each within (EPS_EXP + 6u) max(|value|, 1) of the exact value as above,
     * so 2 (3e-7 + 3.6e-7) < 1.4e-6 of max(|value|, 1) apart */
    for (int silu = 0; silu <= 1; silu++) {
        float rowy[19];
        dfs_act_pad_rows(dst, src, 3, 19, 2, 0.01f, -0.3f, silu);
        bad = 0;
        for (int h = 0; h < 3; h++) {
            dfs_affine_act(rowy, src + h * 19, 19, 0.01f, -0.3f, silu);
            for (int i = 0; i < 23; i++) {
                float want = i < 2 || i >= 21 ? 0.0f : rowy[i - 2];
                bad += !(fabsf(dst[h * 23 + i] - want) <= 1.4e-6f * fmaxf(1.0f, fabsf(want)));
            }
        }
        CHECK(bad == 0, "dfs_act_pad_rows silu%d: %d wrong elements", silu, bad);
    }
}

static void test_dropout_mask(void) {
    /* the same mask with 1 and 2 threads (slices drawn in parallel), from the generator's
     * state alone; p of it dropped; a slice size that is not a multiple of 8 (serial path) */
    const size_t n = 64 * 1000;
    uint8_t *m1 = malloc(n / 8 + 1), *m2 = malloc(n / 8 + 1);
    dfs_rng r;
    dfs_set_threads(1);
    dfs_rng_seed(&r, 9);
    dfs_dropout_mask(m1, n, 64, &r, 0.1f);
    dfs_set_threads(2);
    dfs_rng_seed(&r, 9);
    dfs_dropout_mask(m2, n, 64, &r, 0.1f);
    CHECK(memcmp(m1, m2, n / 8) == 0, "dropout mask depends on the thread count");
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) kept += m1[i >> 3] >> (i & 7) & 1;
    /* binomial: std sqrt(0.9 * 0.1 / 64000) = 1.2e-3; 0.006 is 5 std (the same integer
     * generator, so the same count, on every machine) */
    CHECK_CLOSE((double)kept / n, 0.9, 0.006, 0, "dropout mask: fraction kept");
    dfs_rng_seed(&r, 9);
    dfs_dropout_mask(m2, 63 * 7, 7, &r, 0.5f);
    kept = 0;
    for (size_t i = 0; i < 63 * 7; i++) kept += m2[i >> 3] >> (i & 7) & 1;
    /* mean 220.5, std 10.5: +-6.5 std */
    CHECK(kept > 150 && kept < 290, "dropout mask, odd slices: %zu of 441 kept", kept);
    free(m1);
    free(m2);
}

static void test_release(void) {
    dfs_graph *g = dfs_graph_new();
    /* recording: release is a no-op (backward may need the values) */
    dfs_tensor *a = dfs_tensor_new(g, 1, (int[]){1000});
    dfs_tensor_release(g, a);
    CHECK(a->data != NULL, "release while recording freed the data");
    /* without recording, a released block is reused by the next tensor that fits */
    dfs_graph_set_grad(g, 0);
    dfs_tensor *b = dfs_tensor_new(g, 1, (int[]){1000});
    float *bd = b->data;
    size_t used = dfs_graph_bytes_used(g);
    dfs_tensor_release(g, b);
    CHECK(b->data == NULL, "release did not clear the tensor's data pointer");
    dfs_tensor *c = dfs_tensor_new(g, 1, (int[]){800});
    CHECK(c->data == bd && dfs_graph_bytes_used(g) < used + 800 * sizeof(float),
          "released block not reused (arena grew by %zu bytes)", dfs_graph_bytes_used(g) - used);
    dfs_tensor *d = dfs_tensor_new(g, 1, (int[]){2000}); /* too big for any free block */
    CHECK(d->data != bd, "a too small block was handed out");
    /* views own no data: releasing one frees nothing */
    dfs_tensor *v = dfs_reshape(g, d, 2, (int[]){2, 1000});
    dfs_tensor_release(g, v);
    CHECK(d->data != NULL && v->data == d->data, "releasing a view freed its base");
    /* dead release works while recording */
    dfs_graph_set_grad(g, 1);
    dfs_tensor *e = dfs_tensor_new(g, 1, (int[]){500});
    float *ed = e->data;
    dfs_tensor_release_dead(g, e);
    dfs_tensor *f = dfs_tensor_new(g, 1, (int[]){500});
    CHECK(f->data == ed, "dead release while recording: block not reused");
    dfs_graph_free(g);

    /* recycling during backward: the same gradients, no more memory (the U-Net, where it
     * saves much, is in test_train.c) */
    dfs_rng r;
    dfs_rng_seed(&r, 3);
    dfs_tensor *x = gc_input(4, (int[]){8, 16, 24, 24}, &r, 1.0f); /* 295 KB per activation */
    dfs_tensor *w = gc_input(4, (int[]){16, 16, 3, 3}, &r, 0.2f);
    float *gw[2];
    size_t peak[2];
    for (int rec = 0; rec < 2; rec++) {
        dfs_graph *h = dfs_graph_new();
        dfs_graph_set_recycle(h, rec);
        memset(w->grad, 0, w->n * sizeof(float));
        dfs_tensor *y = x;
        for (int l = 0; l < 6; l++) y = dfs_silu(h, dfs_conv2d(h, y, w, NULL, 1, 1));
        dfs_backward(h, dfs_mean(h, y));
        gw[rec] = malloc(w->n * sizeof(float));
        memcpy(gw[rec], w->grad, w->n * sizeof(float));
        peak[rec] = dfs_graph_bytes_used(h);
        dfs_graph_free(h);
    }
    CHECK(memcmp(gw[0], gw[1], w->n * sizeof(float)) == 0, "recycling changed the gradients");
    CHECK(peak[1] <= peak[0], "recycling raised the arena: %zu vs %zu bytes", peak[1], peak[0]);
    free(gw[0]);
    free(gw[1]);
    gc_input_free(x);
    gc_input_free(w);
}

int main(void) {
    dfs_set_threads(2);
    dfs_rng rng;
    dfs_rng_seed(&rng, 42);
    test_activations();
    test_norm_values(&rng);
    test_timestep();
    test_dropout(&rng);
    test_broadcast(&rng);
    test_norm_grads(&rng);
    test_elem_grads(&rng);
    test_large(&rng);
    test_fresh_grads(&rng);
    test_fast_exp();
    test_dropout_mask();
    test_release();
    return check_summary("test_ops_b");
}
