/* test_ops_c.c - sigmoid, tanh, ReLU (src/ops/elem.c) and permute (src/ops/shape.c), the ops a
 * CSDI denoiser adds: its gated activation sigmoid(gate) tanh(filter), its ReLU output head and
 * its feature-wise attention over (B, L, K, C) <-> (B, K, L, C).
 *
 * 1. Forward values and derivatives against closed forms in double, each element within its
 *    rounding-error bound: on a grid, at 0, at +-100 and wherever exp leaves the normal floats
 *    (|x| ~ 87 to 104), where a naive 1 / (1 + exp(-x)) goes wrong; ReLU exactly, its gradient
 *    0 at x == 0 and -0.
 * 2. Backward against central finite differences, accumulating into existing gradients and
 *    storing into fresh ones, and the gated product with two paths into one input.
 * 3. Large tensors (the OpenMP paths) against the same closed forms.
 * 4. Permute: every permutation of every rank from 1 to DFS_MAXDIM against a naive index map,
 *    bit for bit, forward and backward (stored and accumulated), identity included; the round
 *    trip perm then its inverse gives x back bit for bit; CSDI's (B, K, L, C) -> (B, L, K, C)
 *    and (B, C, K, L) -> (B, K, L, C) at sizes that take the threaded path; finite differences;
 *    wrong permutations stop at DFS_ASSERT (in a child process). PyTorch parity of all four:
 *    tests/parity/parity.sh (parity_dump.c, torch_parity.py). */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Finite differences (gradcheck.h): error = truncation h^2/6 |d3L/dx3| + roundoff. With
 * L = sum R_i f(x_i), d3L/dx3 = R_i f'''(x_i); |sigmoid'''| <= 1/8, |tanh'''| <= 2 (both at 0),
 * and for the gated sigmoid(x) tanh(x), by the product rule, <= 1/8 + 3 (0.097)(1) + 3 (1/4)
 * (0.77) + 2 ~ 3.0 (max |sigmoid''| = 0.097, |tanh''| = 0.77). |R| <= 4 on these few dozen
 * N(0, 1) draws, so at h = 1e-2 the truncation is at most 1.7e-5 * 3 * 4 ~ 2e-4. ReLU and
 * permute are linear in each input element (ReLU away from its kink, which the inputs keep
 * clear of by more than h): no truncation. Roundoff: an input element reaches one output (two
 * for the gated product), which float32 rounds with an error of a few u |R| |out| <= 4 * 4u
 * ~ 1e-6 (|out| <= 1 but for ReLU, exact); over the step 2h that is ~7e-5 (permute copies
 * exactly: none). TOL = 1e-3, relative, absolute below 1, is five times the larger and still
 * catches any wrong derivative (errors of O(0.1) or more). */
#define H_FD 1e-2f
#define TOL 1e-3f
#define EPS_EXP 3e-7 /* relative error of dfs_expf on [-87, 88], checked in test_ops_b.c */
/* The spacing of float32's subnormals, 2^-149: a result there is rounded to within half of it,
 * an absolute error no relative bound covers. */
#define SUBNORMAL_ULP 1.40129846432481707e-45

static dfs_rng rng;

/* ---- closed forms and their float32 bounds -------------------------------------------------
 * The ops form e = exp(-|x|) (sigmoid) or exp(-2|x|) (tanh') with dfs_expf, whose relative error
 * is EPS_EXP while its argument is >= -87, and above that from exp(z / 2)^2 (z / 2 exact): twice
 * EPS_EXP, the product's rounding and EPS_EXP^2, below u. */
static double e_rel(double z) { return z >= -87.0 ? EPS_EXP : 2 * EPS_EXP + 2 * U32; }

static double sigmoid_d(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }
static double dsigmoid_d(double x) {
    double e = exp(-fabs(x));
    return e / ((1 + e) * (1 + e));
}
static double dtanh_d(double x) {
    double e = exp(-2 * fabs(x));
    return 4 * e / ((1 + e) * (1 + e));
}
/* sigmoid: 1 / (1 + e) or e / (1 + e): the sum and the quotient round (2u); e's error moves the
 * result by at most e / (1 + e) <= 1 times it; up to two roundings in the subnormals. */
static double sigmoid_bound(double x) {
    return fabs(sigmoid_d(x)) * (e_rel(-fabs(x)) + 2 * U32) + SUBNORMAL_ULP;
}
/* the derivatives e r r (times 4 for tanh, exact), r = 1 / (1 + e): r errs by 2u and e / (1 + e)
 * of e's error, so e r^2 by 2 e_rel + 4u and the two products' 2u, and the product with
 * dout = 1 is exact. In the subnormals three roundings of half a spacing each: e's, and the two
 * products'; tanh's 4 e multiplies e's by 4, so 3 spacings there. */
static double dsigmoid_bound(double x) {
    return dsigmoid_d(x) * (2 * e_rel(-fabs(x)) + 6 * U32) + 1.5 * SUBNORMAL_ULP;
}
static double dtanh_bound(double x) {
    return dtanh_d(x) * (2 * e_rel(-2 * fabs(x)) + 6 * U32) + 3 * SUBNORMAL_ULP;
}
/* tanhf: within 2 ulps (glibc's stated maximum on x86-64), 4u of the value. */
static double tanh_bound(double x) { return 4 * U32 * fabs(tanh(x)); }

static dfs_tensor *from(dfs_graph *g, int ndim, const int *shape, const float *v) {
    dfs_tensor *t = dfs_tensor_new(g, ndim, shape);
    memcpy(t->data, v, t->n * sizeof(float));
    return t;
}

enum { ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_COUNT };
static const char *act_name[ACT_COUNT] = {"sigmoid", "tanh", "relu"};
static dfs_tensor *act(dfs_graph *g, int which, dfs_tensor *x) {
    return which == ACT_SIGMOID ? dfs_sigmoid(g, x) : which == ACT_TANH ? dfs_tanh(g, x)
                                                                       : dfs_relu(g, x);
}

/* Forward and derivative (dout = 1) of op `which` on x[0..n-1] against the closed forms: the
 * worst error / bound ratios (ReLU must be exact: a bound of 0). */
static void check_act(int which, const float *xv, size_t n, const char *what) {
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *x = from(g, 1, (int[]){(int)n}, xv);
    x->requires_grad = 1;
    dfs_tensor *y = act(g, which, x);
    float *ones = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    dfs_backward_grad(g, y, ones);
    double ry = 0, rd = 0;
    size_t iy = 0, id = 0;
    for (size_t i = 0; i < n; i++) {
        double v = xv[i], want, bound, dwant, dbound;
        switch (which) {
        case ACT_SIGMOID:
            want = sigmoid_d(v), bound = sigmoid_bound(v);
            dwant = dsigmoid_d(v), dbound = dsigmoid_bound(v);
            break;
        case ACT_TANH:
            want = tanh(v), bound = tanh_bound(v);
            dwant = dtanh_d(v), dbound = dtanh_bound(v);
            break;
        default:
            want = v > 0 ? v : 0, bound = 0;
            dwant = v > 0 ? 1 : 0, dbound = 0;
        }
        /* equal values first: at +-inf the difference would be NaN */
        double a = err_ratio(y->data[i] == want ? 0 : fabs(y->data[i] - want), bound);
        double b = err_ratio(x->grad[i] == dwant ? 0 : fabs(x->grad[i] - dwant), dbound);
        if (!(a <= ry)) ry = a, iy = i; /* a NaN stays */
        if (!(b <= rd)) rd = b, id = i;
    }
    CHECK_RATIO(ry, "%s %s: forward error %.3g of its bound at x = %.9g (got %.9g, want %.9g)",
                act_name[which], what, ry, xv[iy], y->data[iy],
                which == ACT_SIGMOID ? sigmoid_d(xv[iy]) : which == ACT_TANH ? tanh(xv[iy])
                                                                              : fmax(xv[iy], 0));
    CHECK_RATIO(rd, "%s %s: derivative error %.3g of its bound at x = %.9g (got %.9g)",
                act_name[which], what, rd, xv[id], x->grad[id]);
    free(ones);
    dfs_graph_free(g);
}

/* ---- 1. values ---------------------------------------------------------------------------- */

static void test_act_values(void) {
    /* a grid over [-30, 30] in steps of 1/16, and the points where exp leaves the normal floats
     * (-87 for sigmoid, -43.5 for tanh's exp(-2|x|)), where the result turns subnormal (-87.3
     * for sigmoid), where it rounds to 0 (-103.97) and far beyond */
    static const float edges[] = {0.0f,   -0.0f,  1e-30f, -1e-30f, 43.4f,  43.6f,  -43.6f, 50.0f,
                                  -50.0f, 86.9f,  87.1f,  -86.9f,  -87.1f, -88.0f, -90.0f, 95.0f,
                                  -95.0f, 100.0f, -100.0f, 103.0f, -103.0f, -103.9f, -104.1f,
                                  200.0f, -200.0f, 1e30f, -1e30f, INFINITY, -INFINITY};
    const size_t ne = sizeof edges / sizeof edges[0], n = 961 + ne;
    float *xv = malloc(n * sizeof(float));
    for (int i = 0; i <= 960; i++) xv[i] = -30.0f + (float)i / 16.0f; /* exact */
    memcpy(xv + 961, edges, sizeof edges);
    for (int w = 0; w < ACT_COUNT; w++) check_act(w, xv, n, "grid and edges");
    free(xv);

    /* the named cases, spelled out */
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *x = from(g, 1, (int[]){6}, (float[]){100.0f, -100.0f, 0.0f, -0.0f, 2.0f, -3.0f});
    x->requires_grad = 1;
    dfs_tensor *s = dfs_sigmoid(g, x), *t = dfs_tanh(g, x), *r = dfs_relu(g, x);
    /* sigmoid(100) = 1 - 3.7e-44 rounds to 1; sigmoid(-100) = 3.720076e-44, subnormal (a naive
     * 1 / (1 + dfs_expf(100)) clamps at exp(88) and gives 6e-39) */
    CHECK(s->data[0] == 1.0f, "sigmoid(100) = %.9g, want 1", s->data[0]);
    CHECK(isfinite(s->data[1]) && s->data[1] > 0 &&
              fabs(s->data[1] - 3.720075976020836e-44) <= sigmoid_bound(-100),
          "sigmoid(-100) = %.9g, want 3.720076e-44", s->data[1]);
    CHECK(s->data[2] == 0.5f && s->data[3] == 0.5f, "sigmoid(+-0) = %g %g", s->data[2],
          s->data[3]);
    CHECK(t->data[0] == 1.0f && t->data[1] == -1.0f && t->data[2] == 0.0f,
          "tanh(100, -100, 0) = %g %g %g", t->data[0], t->data[1], t->data[2]);
    /* exact: a copy or zero */
    CHECK(r->data[0] == 100.0f && r->data[1] == 0.0f && r->data[2] == 0.0f && r->data[3] == 0.0f &&
              r->data[4] == 2.0f && r->data[5] == 0.0f,
          "relu(100, -100, 0, -0, 2, -3) = %g %g %g %g %g %g", r->data[0], r->data[1], r->data[2],
          r->data[3], r->data[4], r->data[5]);
    /* relu's gradient: 1 where x > 0, 0 elsewhere, at 0 and -0 too (PyTorch's choice) */
    float dout[6] = {1, 1, 1, 1, 1, 1};
    dfs_backward_grad(g, r, dout);
    CHECK(x->grad[0] == 1.0f && x->grad[1] == 0.0f && x->grad[2] == 0.0f && x->grad[3] == 0.0f &&
              x->grad[4] == 1.0f && x->grad[5] == 0.0f,
          "relu' at (100, -100, 0, -0, 2, -3) = %g %g %g %g %g %g", x->grad[0], x->grad[1],
          x->grad[2], x->grad[3], x->grad[4], x->grad[5]);

    /* no-grad mode records nothing */
    dfs_graph_reset(g);
    dfs_tensor *p = from(g, 1, (int[]){2}, (float[]){1.0f, -1.0f});
    p->requires_grad = 1;
    dfs_graph_set_grad(g, 0);
    for (int w = 0; w < ACT_COUNT; w++)
        CHECK(!act(g, w, p)->requires_grad, "no-grad mode: %s output requires grad", act_name[w]);
    CHECK(!dfs_permute(g, p, (int[]){0})->requires_grad,
          "no-grad mode: permute output requires grad");
    dfs_graph_set_grad(g, 1);
    for (int w = 0; w < ACT_COUNT; w++)
        CHECK(act(g, w, p)->requires_grad, "grad mode: %s output does not require grad",
              act_name[w]);
    dfs_graph_free(g);
}

/* ---- 2. finite differences ----------------------------------------------------------------- */

static dfs_tensor *f_sigmoid(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_sigmoid(g, in[0]);
}
static dfs_tensor *f_tanh(dfs_graph *g, dfs_tensor **in, void *u) { return dfs_tanh(g, in[0]); }
static dfs_tensor *f_relu(dfs_graph *g, dfs_tensor **in, void *u) { return dfs_relu(g, in[0]); }
/* "permute 3-d (2 0 1)" */
static void perm_name(char *buf, size_t cap, int nd, const int *perm) {
    int len = snprintf(buf, cap, "permute %d-d (", nd);
    for (int d = 0; d < nd && (size_t)len < cap; d++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%d", d ? " " : "", perm[d]);
    if ((size_t)len < cap) snprintf(buf + len, cap - (size_t)len, ")");
}
/* CSDI's gate (van den Oord et al. 2016, eq. 2, as CSDI's residual layer uses it): x reaches
 * the output along two paths, so the second backward accumulates into the first's gradient */
static dfs_tensor *f_gate(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_mul(g, dfs_sigmoid(g, in[0]), dfs_tanh(g, in[0]));
}
/* the same gate fused (dfs_gated_tanh): sigmoid of the first half of the last dim times tanh of
 * the second; its forward errs by up to 7.2e-7 absolutely (see test_gated_tanh), which over the
 * step 2h adds 4 * 2 * 7.2e-7 / 0.02 ~ 3e-4 to the roundoff above: under TOL */
static dfs_tensor *f_gtanh(dfs_graph *g, dfs_tensor **in, void *u) { return dfs_gated_tanh(g, in[0]); }
static dfs_tensor *f_permute(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_permute(g, in[0], u);
}
/* the op applied to dfs_scale(x, 1): the same values, but its backward finds x without a
 * gradient buffer and stores into a fresh one instead of adding */
typedef struct {
    gc_fn f;
    void *user;
} fresh_args;
static dfs_tensor *f_fresh(dfs_graph *g, dfs_tensor **in, void *u) {
    fresh_args *a = u;
    dfs_tensor *s = dfs_scale(g, in[0], 1.0f);
    return a->f(g, &s, a->user);
}

static void gc_both(const char *name, gc_fn f, dfs_tensor *x, void *user) {
    char buf[96];
    gradcheck(name, f, &x, 1, user, H_FD, TOL);
    fresh_args a = {f, user};
    snprintf(buf, sizeof buf, "%s (fresh grad)", name);
    gradcheck(buf, f_fresh, &x, 1, &a, H_FD, TOL);
}

static void test_gradients(void) {
    dfs_tensor *x = gc_input(3, (int[]){2, 3, 7}, &rng, 2.0f);
    gc_both("sigmoid", f_sigmoid, x, NULL);
    gc_both("tanh", f_tanh, x, NULL);
    gc_both("sigmoid * tanh", f_gate, x, NULL);
    dfs_tensor *xg = gc_input(3, (int[]){2, 3, 8}, &rng, 2.0f);
    gc_both("gated_tanh (fused)", f_gtanh, xg, NULL);
    gc_input_free(xg);
    /* relu: the central difference straddles the kink for |x| < h; keep |x| >= 0.1 */
    for (size_t i = 0; i < x->n; i++)
        if (fabsf(x->data[i]) < 0.1f) x->data[i] += x->data[i] < 0 ? -0.1f : 0.1f;
    gc_both("relu", f_relu, x, NULL);
    gc_input_free(x);

    /* permute: 3-d and 4-d, the CSDI swap, the last dim moving, identity */
    static const struct {
        int nd, shape[4], perm[4];
    } pc[] = {{3, {2, 3, 4}, {2, 0, 1}},       {3, {2, 3, 4}, {0, 2, 1}},
              {4, {2, 3, 4, 5}, {0, 2, 1, 3}}, {4, {2, 3, 2, 3}, {3, 1, 0, 2}},
              {4, {2, 3, 4, 2}, {0, 1, 2, 3}}, {2, {4, 5}, {1, 0}}};
    for (size_t c = 0; c < sizeof pc / sizeof pc[0]; c++) {
        dfs_tensor *p = gc_input(pc[c].nd, pc[c].shape, &rng, 1.0f);
        char name[96];
        perm_name(name, sizeof name, pc[c].nd, pc[c].perm);
        gc_both(name, f_permute, p, (void *)pc[c].perm);
        gc_input_free(p);
    }
}

/* ---- 3. large tensors: the threaded paths -------------------------------------------------- */

static void test_act_large(void) {
    const size_t n = 4 * 64 * 36 * 8; /* 73,728 > PAR_MIN (32,768) */
    float *xv = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) xv[i] = 6.0f * dfs_rng_normal(&rng);
    for (int w = 0; w < ACT_COUNT; w++) check_act(w, xv, n, "large");
    free(xv);
}

/* ---- 4. permute --------------------------------------------------------------------------- */

/* Naive reference: out[o] = x[sum_i o_i stride_x[perm[i]]], o walked in row-major order. */
static void permute_naive(float *out, const float *x, int nd, const int *shape, const int *perm) {
    size_t st[DFS_MAXDIM], n = 1;
    for (int d = nd - 1; d >= 0; d--) st[d] = n, n *= (size_t)shape[d];
    for (size_t o = 0; o < n; o++) {
        size_t r = o, off = 0;
        for (int d = nd - 1; d >= 0; d--) {
            size_t len = (size_t)shape[perm[d]];
            off += (r % len) * st[perm[d]];
            r /= len;
        }
        out[o] = x[off];
    }
}

/* x (shape) through perm, forward and backward, against permute_naive bit for bit (a copy and
 * its gradient a copy, or one float addition per element that the test repeats); then the round
 * trip with the inverse. Returns the number of mismatching elements. */
static int check_permute(int nd, const int *shape, const int *perm) {
    char what[96];
    perm_name(what, sizeof what, nd, perm);
    int inv[DFS_MAXDIM], oshape[DFS_MAXDIM];
    for (int d = 0; d < nd; d++) inv[perm[d]] = d, oshape[d] = shape[perm[d]];

    dfs_graph *g = dfs_graph_new();
    dfs_tensor *x = dfs_tensor_new(g, nd, shape);
    dfs_rng_fill_normal(&rng, x->data, x->n);
    x->requires_grad = 1;
    dfs_tensor *y = dfs_permute(g, x, perm);
    int ok = y->ndim == nd && y->n == x->n;
    for (int d = 0; ok && d < nd; d++) ok = y->shape[d] == oshape[d];
    CHECK(ok, "%s: output shape", what);
    CHECK(y->data != x->data, "%s: a view, not a copy", what);
    if (!ok) {
        dfs_graph_free(g);
        return 1;
    }
    const size_t n = x->n;
    float *want = malloc(n * sizeof(float)), *dout = malloc(n * sizeof(float));
    float *dwant = malloc(n * sizeof(float)), *pre = malloc(n * sizeof(float));
    permute_naive(want, x->data, nd, shape, perm);
    int bad = memcmp(y->data, want, n * sizeof(float)) != 0;
    CHECK(!bad, "%s: forward differs from the naive index map", what);

    /* backward into a fresh gradient (x has none yet): dx = dout permuted by the inverse */
    dfs_rng_fill_normal(&rng, dout, n);
    dfs_backward_grad(g, y, dout);
    permute_naive(dwant, dout, nd, oshape, inv);
    int badg = memcmp(x->grad, dwant, n * sizeof(float)) != 0;
    CHECK(!badg, "%s: backward (fresh gradient) differs", what);
    /* and into an existing one: dx = pre + the same, one float addition each */
    dfs_graph_reset(g);
    x = dfs_tensor_new(g, nd, shape);
    memcpy(x->data, dwant, n * sizeof(float)); /* any values */
    x->requires_grad = 1;
    x->grad = dfs_graph_alloc(g, n * sizeof(float));
    dfs_rng_fill_normal(&rng, pre, n);
    memcpy(x->grad, pre, n * sizeof(float));
    y = dfs_permute(g, x, perm);
    dfs_backward_grad(g, y, dout);
    for (size_t i = 0; i < n; i++) pre[i] += dwant[i];
    int bada = memcmp(x->grad, pre, n * sizeof(float)) != 0;
    CHECK(!bada, "%s: backward (accumulating) differs", what);

    /* the round trip is the identity, bit for bit */
    dfs_tensor *back = dfs_permute(g, y, inv);
    int ok2 = back->ndim == nd;
    for (int d = 0; ok2 && d < nd; d++) ok2 = back->shape[d] == shape[d];
    ok2 = ok2 && memcmp(back->data, x->data, n * sizeof(float)) == 0;
    CHECK(ok2, "%s: permute then its inverse is not x", what);

    free(want), free(dout), free(dwant), free(pre);
    dfs_graph_free(g);
    return bad + badg + bada + !ok2;
}

/* Every permutation of 0..nd-1 in lexicographic order (next_permutation); returns how many. */
static int next_perm(int *p, int n) {
    int i = n - 2;
    while (i >= 0 && p[i] >= p[i + 1]) i--;
    if (i < 0) return 0;
    int j = n - 1;
    while (p[j] <= p[i]) j--;
    int t = p[i];
    p[i] = p[j], p[j] = t;
    for (int a = i + 1, b = n - 1; a < b; a++, b--) t = p[a], p[a] = p[b], p[b] = t;
    return 1;
}

static void test_permute(void) {
    /* all perms of each rank, on sizes 2, 3, 4, 5, 3, ... (no two dims alike, so that a
     * swapped pair shows in the shape too) */
    static const int sizes[8] = {2, 3, 4, 5, 3, 2, 2, 2};
    int total = 0, bad = 0;
    for (int nd = 1; nd <= DFS_MAXDIM; nd++) {
        int p[DFS_MAXDIM];
        for (int d = 0; d < nd; d++) p[d] = d;
        do {
            bad += check_permute(nd, sizes, p);
            total++;
        } while (next_perm(p, nd));
    }
    int want = 0;
    for (int nd = 1, f = 1; nd <= DFS_MAXDIM; nd++) want += (f *= nd);
    CHECK(total == want, "permute: %d permutations checked, want %d", total, want);
    if (DFS_MAXDIM < 5)
        printf("test_ops_c: DFS_MAXDIM is %d: permute checked on ranks 1 to %d (%d permutations, "
               "%d off); 5-d tensors do not exist yet\n",
               DFS_MAXDIM, DFS_MAXDIM, total, bad);

    /* CSDI's shapes, large enough for the threaded path (> PAR_MIN elements): the feature
     * transformer's (B, K, L, C) -> (B, L, K, C), whole rows of C, and channels-first to
     * channels-last (B, C, K, L) -> (B, K, L, C), where the last dim moves; an odd case too */
    check_permute(4, (int[]){4, 36, 48, 64}, (int[]){0, 2, 1, 3});
    check_permute(4, (int[]){4, 64, 36, 48}, (int[]){0, 2, 3, 1});
    check_permute(4, (int[]){3, 37, 29, 11}, (int[]){2, 0, 3, 1});
    check_permute(3, (int[]){7, 1, 5000}, (int[]){1, 2, 0}); /* a dim of size 1 */
}

/* Wrong permutations stop at DFS_ASSERT (abort): each is tried in a child process, whose
 * stderr (the assertion message) is discarded. */
static void test_permute_asserts(void) {
    static const struct {
        const char *what;
        int perm[4];
        int null;
    } cases[] = {{"a repeated dim", {0, 0, 1}, 0},
                 {"a dim out of range", {0, 1, 3}, 0},
                 {"a negative dim", {-1, 0, 1}, 0},
                 {"no perm", {0}, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            if (!freopen("/dev/null", "w", stderr)) _exit(3);
            dfs_graph *g = dfs_graph_new();
            dfs_tensor *x = dfs_tensor_zeros(g, 3, (int[]){2, 3, 4});
            dfs_permute(g, x, cases[c].null ? NULL : cases[c].perm);
            _exit(0); /* it returned: the check below fails */
        }
        int status = 0;
        int waited = pid > 0 && waitpid(pid, &status, 0) == pid;
        CHECK(waited && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "permute with %s: the child %s", cases[c].what,
              !waited ? "could not run" : WIFSIGNALED(status) ? "died of another signal"
                                                              : "returned");
    }
}

/* dfs_gated_tanh against sigmoid(a) tanh(b) in double. dfs_sigmoidf = 1 / (1 + e) with e
 * within EPS_EXP relatively: sigmoid within s (1 - s) EPS_EXP + 2u <= 0.25 * 3e-7 + 1.2e-7 ~
 * 2e-7 absolutely; t = 2 sigmoid(2b) - 1 within 2 * 2e-7 + u ~ 4.6e-7; s t within
 * |t| 2e-7 + |s| 4.6e-7 + u <= 7.2e-7. On a grid over [-30, 30] in both halves. */
static void test_gated_tanh(void) {
    const int C = 61;
    float xv[2 * 61];
    double worst = 0;
    dfs_graph *g = dfs_graph_new();
    for (int r = 0; r < C; r++) {
        for (int c = 0; c < C; c++) {
            xv[c] = -30.0f + 1.0f * (float)r + 0.013f * (float)c; /* a: rows sweep the range */
            xv[C + c] = -30.0f + 1.0f * (float)c - 0.007f * (float)r;
        }
        dfs_graph_reset(g);
        dfs_tensor *y = dfs_gated_tanh(g, from(g, 2, (int[]){1, 2 * C}, xv));
        CHECK(y->ndim == 2 && y->shape[0] == 1 && y->shape[1] == C, "gated_tanh shape");
        for (int c = 0; c < C; c++)
            worst = max_err(worst, fabs(y->data[c] - sigmoid_d(xv[c]) * tanh((double)xv[C + c])));
    }
    CHECK(worst <= 7.2e-7, "gated_tanh within 7.2e-7 of sigmoid(a) tanh(b): worst %.3g", worst);
    /* a NaN goes through (dfs_expf turns it into no integer: that conversion is undefined) */
    dfs_graph_reset(g);
    float nan2[2] = {NAN, 0.5f};
    dfs_tensor *yn = dfs_gated_tanh(g, from(g, 2, (int[]){1, 2}, nan2));
    CHECK(isnan(yn->data[0]), "gated_tanh of a NaN gate is NaN, got %g", yn->data[0]);
    dfs_graph_free(g);
}

int main(void) {
    dfs_rng_seed(&rng, 20240917);
    test_permute_asserts(); /* before any OpenMP thread exists */
    dfs_set_threads(2);
    test_act_values();
    test_gradients();
    test_gated_tanh();
    test_act_large();
    test_permute();
    return check_summary("test_ops_c");
}
