/* test_ops_graph.c - the EGNN ops of src/ops/graph.c (pair_expand, pair_diff, pair_sum,
 * sum_last, sqrt, recip, add_scalar, center_masked, and the fused pair_silu and pair_sum_gated)
 * on dense padded molecules.
 *
 * 1. Forward values and gradients against closed forms on small hand-made inputs, exactly
 *    where the op is a copy or one exact float operation on these dyadic values, else within a
 *    rounding bound; the documented out-of-domain results (sqrt of 0 and of a negative, 1/0).
 * 2. Backward against central finite differences (gradcheck.h), accumulating into existing
 *    gradients and storing into fresh ones.
 * 3. Edge cases: one atom (M = 1), a molecule with no atoms, w = NULL; the masked centre has a
 *    zero mean over the atoms present (within its bound) and exact zeros on padding.
 * 4. dfs_mul / dfs_add broadcasting (B, M, M, 3) against (B, M, M, 1), forward against a naive
 *    loop and backward by finite differences.
 * 5. EDM's coordinate update, composed from the ops: finite differences end to end, and its
 *    E(3) equivariance: an orthogonal Q applied to x applies Q to the output, within a bound
 *    derived from the rounding of each op.
 * 6. Large tensors (the OpenMP paths) against naive loops; wrong shapes stop at DFS_ASSERT.
 * 7. The fused ops of the EGNN: dfs_pair_silu against its reference composition (pair_expand,
 *    linear, add, silu) and dfs_pair_sum_gated against dfs_pair_sum(dfs_mul(e, s)), forward
 *    and backward within bounds derived from the rounding of each; finite differences for every
 *    input (fresh and accumulated gradients, a == c, no edge term); one thread and two give
 *    the same bits on tensors large enough for the threaded loops.
 * PyTorch parity of every op and of the composed update: tests/parity/parity_graph.sh. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Finite differences (gradcheck.h): error = truncation h^2/6 |d3L/dx3| + roundoff, with
 * L = sum R_k out_k, R ~ N(0, 1) (|R_k| <= 4 on these few dozen draws) and inputs ~ N(0, 1)
 * (|x| <= 4.5).
 *   Linear ops (pair_expand, pair_diff, pair_sum in e, sum_last, add_scalar, center_masked):
 *   no truncation at any h, so a large step H_LIN = 0.25 shrinks the roundoff, which is at
 *   most n_aff |R| e_out / h, n_aff being the outputs an input element reaches and e_out their
 *   rounding error: pair_expand copies (exact); pair_diff 2 (M - 1) = 8 outputs of one
 *   rounding, u |x_i - x_j| <= 9u: 8 * 4 * 9u / 0.25 = 7e-5; pair_sum 1 output, a sum of
 *   M = 5 products |w e| <= 2 * 4.5: (M + 1) u 45 * 4 / 0.25 = 2.6e-4; sum_last 1 output,
 *   3u * 13.5 * 4 / 0.25 = 4e-5; add_scalar u * 6 * 4 / 0.25 = 6e-6; center_masked reaches
 *   the <= 5 atoms present, each one rounding of <= 9: 5 * 4 * 9u / 0.25 = 4e-5.
 *   sqrt(x + eps), x >= 0.5: |f'''| = 3/8 (x + eps)^-5/2 <= 2.2, at H_SQRT = 1e-2 truncation
 *   1.7e-5 * 2.2 * 4 = 1.5e-4; roundoff 2 roundings of y <= 3: 2u * 3 * 4 / 1e-2 = 1.5e-4.
 *   recip, |x| >= 1: |f'''| = 6 / x^4 <= 6, at H_RECIP = 5e-3 truncation 4.2e-6 * 6 * 4 = 1e-4;
 *   roundoff u * 1 * 4 / 5e-3 = 5e-5.
 * TOL = 1e-3, relative, absolute below 1: four times the largest of these (sqrt's 3e-4) and
 * still far below any wrong term (a missing sum or sign errs by O(1)). The composed update has
 * its own derivation (test_egnn_gradients). */
#define H_LIN 0.25f
#define H_SQRT 1e-2f
#define H_RECIP 5e-3f
#define TOL 1e-3f

static dfs_rng rng;

static dfs_tensor *from(dfs_graph *g, int ndim, const int *shape, const float *v) {
    dfs_tensor *t = dfs_tensor_new(g, ndim, shape);
    memcpy(t->data, v, t->n * sizeof(float));
    return t;
}

static int same_shape(const dfs_tensor *t, int ndim, const int *shape) {
    if (t->ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return 0;
    return 1;
}

/* got[0..n-1] == want bit for bit (-0 == 0), the first mismatch printed */
static void check_exact(const char *what, const float *got, const float *want, size_t n) {
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (!(got[i] == want[i])) bad = i;
    CHECK(bad == n, "%s: element %zu is %.9g, want %.9g", what, bad, bad < n ? got[bad] : 0.0,
          bad < n ? want[bad] : 0.0);
}

/* |got - want| <= rel |want| for every element (want in double) */
static void check_rel(const char *what, const float *got, const double *want, size_t n,
                      double rel) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double r = err_ratio(fabs(got[i] - want[i]), rel * fabs(want[i]));
        if (!(r <= worst)) worst = r, at = i;
    }
    CHECK_RATIO(worst, "%s: element %zu is %.9g, want %.17g (%.3g of the bound)", what, at, got[at],
                want[at], worst);
}

/* dfs_backward_grad from out with dout into fresh gradients of the graph's inputs */
static void backward(dfs_graph *g, dfs_tensor *out, const float *dout) {
    dfs_backward_grad(g, out, dout);
}

/* ---- 1. closed forms ----------------------------------------------------------------------- */

static void test_values(void) {
    dfs_graph *g = dfs_graph_new();

    /* pair_expand: h (1, 2, 2) = [[1 2] [3 4]]; dout 1..8 over (1, 2, 2, 2):
     * which 0: out[i][j] = h_i, dh_i = sum_j dout[i][j]: [1+3 2+4] [5+7 6+8];
     * which 1: out[i][j] = h_j, dh_j = sum_i dout[i][j]: [1+5 2+6] [3+7 4+8] */
    static const float dout8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const float want_e[2][8] = {{1, 2, 1, 2, 3, 4, 3, 4}, {1, 2, 3, 4, 1, 2, 3, 4}};
    static const float want_dh[2][4] = {{4, 6, 12, 14}, {6, 8, 10, 12}};
    for (int w = 0; w < 2; w++) {
        dfs_graph_reset(g);
        dfs_tensor *h = from(g, 3, (int[]){1, 2, 2}, (float[]){1, 2, 3, 4});
        h->requires_grad = 1;
        dfs_tensor *e = dfs_pair_expand(g, h, w);
        CHECK(same_shape(e, 4, (int[]){1, 2, 2, 2}), "pair_expand %d: shape", w);
        check_exact(w ? "pair_expand 1" : "pair_expand 0", e->data, want_e[w], 8);
        backward(g, e, dout8);
        check_exact(w ? "pair_expand 1 backward" : "pair_expand 0 backward", h->grad, want_dh[w],
                    4);
    }

    /* pair_diff: x (1, 3, 1) = [1 2 4]: out[i][j] = x_i - x_j; dout 1..9:
     * dx_k = (row k's sum) - (column k's sum) = [6 15 24] - [12 15 18] */
    dfs_graph_reset(g);
    dfs_tensor *x = from(g, 3, (int[]){1, 3, 1}, (float[]){1, 2, 4});
    x->requires_grad = 1;
    dfs_tensor *d = dfs_pair_diff(g, x);
    CHECK(same_shape(d, 4, (int[]){1, 3, 3, 1}), "pair_diff: shape");
    check_exact("pair_diff", d->data, (float[]){0, -1, -3, 1, 0, -2, 3, 2, 0}, 9);
    backward(g, d, (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9});
    check_exact("pair_diff backward", x->grad, (float[]){-6, 0, 6}, 3);

    /* pair_sum: e (1, 2, 2, 2) = 1..8, w = [[0.5 2] [0 1]]:
     * out_0 = 0.5 [1 2] + 2 [3 4] = [6.5 9], out_1 = 0 [5 6] + 1 [7 8] = [7 8];
     * dout [[1 -1] [2 3]]: de_ij = w_ij dout_i */
    static const float w22[4] = {0.5f, 2, 0, 1};
    for (int nullw = 0; nullw < 2; nullw++) {
        dfs_graph_reset(g);
        dfs_tensor *e = from(g, 4, (int[]){1, 2, 2, 2}, dout8);
        e->requires_grad = 1;
        dfs_tensor *s = dfs_pair_sum(g, e, nullw ? NULL : w22);
        CHECK(same_shape(s, 3, (int[]){1, 2, 2}), "pair_sum: shape");
        /* w = NULL sums plainly: [1+3 2+4] [5+7 6+8] */
        check_exact(nullw ? "pair_sum (w NULL)" : "pair_sum", s->data,
                    nullw ? (float[]){4, 6, 12, 14} : (float[]){6.5f, 9, 7, 8}, 4);
        backward(g, s, (float[]){1, -1, 2, 3});
        check_exact(nullw ? "pair_sum backward (w NULL)" : "pair_sum backward", e->grad,
                    nullw ? (float[]){1, -1, 1, -1, 2, 3, 2, 3}
                          : (float[]){0.5f, -0.5f, 2, -2, 0, 0, 2, 3},
                    8);
    }

    /* sum_last: (2, 3) -> (2, 1): [6 3.5]; dout [2 -1] spreads along the rows */
    dfs_graph_reset(g);
    dfs_tensor *v = from(g, 2, (int[]){2, 3}, (float[]){1, 2, 3, -1, 0.5f, 4});
    v->requires_grad = 1;
    dfs_tensor *sl = dfs_sum_last(g, v);
    CHECK(same_shape(sl, 2, (int[]){2, 1}), "sum_last: shape");
    check_exact("sum_last", sl->data, (float[]){6, 3.5f}, 2);
    backward(g, sl, (float[]){2, -1});
    check_exact("sum_last backward", v->grad, (float[]){2, 2, 2, -1, -1, -1}, 6);

    /* sqrt(x + eps), eps = 0.25: x = [3.75 2 0.75 5] -> sqrt of 4, 2.25, 1, 5.25 (the sums
     * exact): the first three exact, sqrt 5.25 one rounding (u); the derivatives
     * 0.5 / y = 1/4, 1/3, 1/2, 1/(2 sqrt 5.25): one rounding of the quotient, and y's: 2u */
    dfs_graph_reset(g);
    dfs_tensor *q = from(g, 1, (int[]){4}, (float[]){3.75f, 2, 0.75f, 5});
    q->requires_grad = 1;
    dfs_tensor *sq = dfs_sqrt(g, q, 0.25f);
    check_exact("sqrt", sq->data, (float[]){2, 1.5f, 1, sq->data[3]}, 4);
    check_rel("sqrt(5.25)", sq->data + 3, (double[]){sqrt(5.25)}, 1, 1.01 * U32);
    backward(g, sq, (float[]){1, 1, 1, 1});
    check_rel("sqrt backward", q->grad, (double[]){0.25, 1.0 / 3.0, 0.5, 0.5 / sqrt(5.25)}, 4,
              2.02 * U32);
    /* out of the domain, as documented: x + eps == 0 -> 0 with an infinite derivative, below
     * 0 -> NaN */
    dfs_graph_reset(g);
    dfs_tensor *q0 = from(g, 1, (int[]){2}, (float[]){-0.25f, -1});
    q0->requires_grad = 1;
    dfs_tensor *s0 = dfs_sqrt(g, q0, 0.25f);
    CHECK(s0->data[0] == 0 && isnan(s0->data[1]), "sqrt(0), sqrt(-0.75) = %g %g", s0->data[0],
          s0->data[1]);
    backward(g, s0, (float[]){1, 1});
    CHECK(isinf(q0->grad[0]) && q0->grad[0] > 0, "sqrt'(0) = %g, want +inf", q0->grad[0]);

    /* recip: [4 -0.5 3] -> [0.25 -2 1/3], derivative -y^2 = [-1/16 -4 -1/9]; 1/3 is one
     * rounding, its square and sign two more: 3u (relative, each) */
    dfs_graph_reset(g);
    dfs_tensor *r = from(g, 1, (int[]){4}, (float[]){4, -0.5f, 3, 0});
    r->requires_grad = 1;
    dfs_tensor *ry = dfs_recip(g, r);
    check_exact("recip", ry->data, (float[]){0.25f, -2, ry->data[2], INFINITY}, 4);
    check_rel("recip(3)", ry->data + 2, (double[]){1.0 / 3.0}, 1, 1.01 * U32);
    backward(g, ry, (float[]){1, 1, 1, 1});
    check_rel("recip backward", r->grad, (double[]){-0.0625, -4, -1.0 / 9.0}, 3, 3.03 * U32);
    CHECK(isinf(r->grad[3]) && r->grad[3] < 0, "recip'(0) = %g, want -inf", r->grad[3]);

    /* add_scalar: [1 -2.5] + 1.5 = [2.5 -1], derivative 1 */
    dfs_graph_reset(g);
    dfs_tensor *a = from(g, 1, (int[]){2}, (float[]){1, -2.5f});
    a->requires_grad = 1;
    dfs_tensor *ay = dfs_add_scalar(g, a, 1.5f);
    check_exact("add_scalar", ay->data, (float[]){2.5f, -1}, 2);
    backward(g, ay, (float[]){3, -7});
    check_exact("add_scalar backward", a->grad, (float[]){3, -7}, 2);

    /* center_masked: x (2, 3, 2), molecule 0 with atoms 0 and 1 present (mean [2 4]), the
     * padding atom far away; molecule 1 empty. Backward: the same projection of dout, whose
     * mean over molecule 0's atoms is [2 1] */
    dfs_graph_reset(g);
    uint8_t mask[6] = {1, 1, 0, 0, 0, 0};
    dfs_tensor *c = from(g, 3, (int[]){2, 3, 2}, (float[]){1, 2, 3, 6, 100, -7, 5, 5, -3, 2, 8, 1});
    c->requires_grad = 1;
    dfs_tensor *cy = dfs_center_masked(g, c, mask);
    mask[0] = 0; /* the op kept a copy: backward must not see this */
    CHECK(same_shape(cy, 3, (int[]){2, 3, 2}), "center_masked: shape");
    check_exact("center_masked", cy->data, (float[]){-1, -2, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0}, 12);
    backward(g, cy, (float[]){1, 0, 3, 2, 5, 5, 9, 9, 9, 9, 9, 9});
    check_exact("center_masked backward", c->grad, (float[]){-1, -1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0},
                12);

    /* no-grad mode records nothing; grad mode marks every output */
    dfs_graph_reset(g);
    dfs_tensor *p = from(g, 3, (int[]){1, 2, 3}, (float[]){1, 2, 3, 4, 5, 6});
    p->requires_grad = 1;
    const uint8_t m2[2] = {1, 1};
    for (int rec = 0; rec < 2; rec++) {
        dfs_graph_set_grad(g, rec);
        dfs_tensor *outs[] = {
            dfs_pair_expand(g, p, 0),
            dfs_pair_diff(g, p),
            dfs_pair_sum(g, dfs_pair_diff(g, p), NULL),
            dfs_sum_last(g, p),
            dfs_sqrt(g, p, 0),
            dfs_recip(g, p),
            dfs_add_scalar(g, p, 1),
            dfs_center_masked(g, p, m2),
            dfs_pair_silu(g, p, p, NULL, NULL),
            dfs_pair_sum_gated(g, dfs_pair_diff(g, p), dfs_sum_last(g, dfs_pair_diff(g, p)), NULL)};
        int bad = 0;
        for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++)
            bad += outs[k]->requires_grad != rec;
        CHECK(bad == 0, "%s mode: %d outputs with requires_grad %d", rec ? "grad" : "no-grad", bad,
              !rec);
    }
    dfs_graph_free(g);
}

/* ---- 2. finite differences ------------------------------------------------------------------ */

typedef struct {
    int which;      /* pair_expand */
    const float *w; /* pair_sum */
    const uint8_t *mask;
    float eps;
} op_args;

static dfs_tensor *f_expand(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_pair_expand(g, in[0], ((op_args *)u)->which);
}
static dfs_tensor *f_diff(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_pair_diff(g, in[0]);
}
static dfs_tensor *f_psum(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_pair_sum(g, in[0], ((op_args *)u)->w);
}
static dfs_tensor *f_sum_last(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_sum_last(g, in[0]);
}
static dfs_tensor *f_sqrt(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_sqrt(g, in[0], ((op_args *)u)->eps);
}
static dfs_tensor *f_recip(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_recip(g, in[0]);
}
static dfs_tensor *f_add_scalar(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_add_scalar(g, in[0], 0.75f);
}
static dfs_tensor *f_center(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_center_masked(g, in[0], ((op_args *)u)->mask);
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

static void gc_both(const char *name, gc_fn f, dfs_tensor *x, void *user, float h) {
    char buf[96];
    gradcheck(name, f, &x, 1, user, h, TOL);
    fresh_args a = {f, user};
    snprintf(buf, sizeof buf, "%s (fresh grad)", name);
    gradcheck(buf, f_fresh, &x, 1, &a, h, TOL);
}

/* EGNN edge weights: w[b,i,j] = m_i m_j (i != j) / norm, for the node mask m (B, M) */
static void edge_weights(float *w, const uint8_t *m, int B, int M, float norm) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++)
                w[((size_t)b * M + i) * M + j] =
                    m[b * M + i] && m[b * M + j] && i != j ? 1.0f / norm : 0.0f;
}

static void test_gradients(void) {
    const int B = 2, M = 5, C = 4;
    /* molecule 0 has all 5 atoms, molecule 1 three and two padding atoms */
    const uint8_t mask[10] = {1, 1, 1, 1, 1, 1, 1, 0, 1, 0};
    float w[2 * 5 * 5];
    edge_weights(w, mask, B, M, (float)(M - 1));
    w[3] = 2.0f; /* a weight other than 0 and 1/(M-1) too, |w| <= 2 as the derivation says */

    dfs_tensor *h = gc_input(3, (int[]){B, M, C}, &rng, 1.0f);
    op_args a = {.which = 0, .w = w, .mask = mask, .eps = 1e-8f};
    gc_both("pair_expand 0", f_expand, h, &a, H_LIN);
    a.which = 1;
    gc_both("pair_expand 1", f_expand, h, &a, H_LIN);
    gc_both("pair_diff", f_diff, h, &a, H_LIN);
    gc_both("center_masked", f_center, h, &a, H_LIN);
    gc_both("sum_last", f_sum_last, h, &a, H_LIN);
    gc_both("add_scalar", f_add_scalar, h, &a, H_LIN);
    dfs_tensor *e = gc_input(4, (int[]){B, M, M, C}, &rng, 1.0f);
    gc_both("pair_sum", f_psum, e, &a, H_LIN);
    a.w = NULL;
    gc_both("pair_sum (w NULL)", f_psum, e, &a, H_LIN);
    /* sqrt on x >= 0.5, recip on |x| >= 1 (the domains the tolerance derivation assumes) */
    for (size_t i = 0; i < h->n; i++)
        h->data[i] = 0.5f + fabsf(h->data[i]);
    gc_both("sqrt", f_sqrt, h, &a, H_SQRT);
    for (size_t i = 0; i < h->n; i++)
        h->data[i] *= i % 2 ? 2.0f : -2.0f; /* |x| >= 1 */
    gc_both("recip", f_recip, h, &a, H_RECIP);
    gc_input_free(h);
    gc_input_free(e);
}

/* ---- 3. edge cases ------------------------------------------------------------------------- */

static void test_edge_cases(void) {
    dfs_graph *g = dfs_graph_new();
    /* one atom: no neighbour but itself; pair_diff is 0, pair_expand a copy, pair_sum w e,
     * the centred position 0 (x - x, exactly) */
    dfs_tensor *x = from(g, 3, (int[]){2, 1, 3}, (float[]){1.5f, -2, 7, 0.25f, 3, -1});
    x->requires_grad = 1;
    dfs_tensor *d = dfs_pair_diff(g, x), *e0 = dfs_pair_expand(g, x, 0),
               *e1 = dfs_pair_expand(g, x, 1);
    CHECK(same_shape(d, 4, (int[]){2, 1, 1, 3}), "M = 1: pair_diff shape");
    check_exact("M = 1: pair_diff", d->data, (float[]){0, 0, 0, 0, 0, 0}, 6);
    check_exact("M = 1: pair_expand 0", e0->data, x->data, 6);
    check_exact("M = 1: pair_expand 1", e1->data, x->data, 6);
    dfs_tensor *s = dfs_pair_sum(g, e0, (float[]){0.5f, 2});
    check_exact("M = 1: pair_sum", s->data, (float[]){0.75f, -1, 3.5f, 0.5f, 6, -2}, 6);
    const uint8_t one[2] = {1, 1};
    dfs_tensor *c = dfs_center_masked(g, x, one);
    check_exact("M = 1: center_masked", c->data, (float[]){0, 0, 0, 0, 0, 0}, 6);
    backward(g, d, (float[]){1, 2, 3, 4, 5, 6});
    check_exact("M = 1: pair_diff backward (the self-edge cancels)", x->grad,
                (float[]){0, 0, 0, 0, 0, 0}, 6);

    /* a molecule with no atoms: zeros forward, zero gradient; a batch of nothing but padding */
    dfs_graph_reset(g);
    const uint8_t none[6] = {0, 0, 0, 0, 0, 0};
    dfs_tensor *y = from(g, 3, (int[]){2, 3, 1}, (float[]){1, 2, 3, 4, 5, 6});
    y->requires_grad = 1;
    dfs_tensor *cy = dfs_center_masked(g, y, none);
    check_exact("no atoms: center_masked", cy->data, (float[]){0, 0, 0, 0, 0, 0}, 6);
    backward(g, cy, (float[]){1, 1, 1, 1, 1, 1});
    check_exact("no atoms: center_masked backward", y->grad, (float[]){0, 0, 0, 0, 0, 0}, 6);
    /* EGNN weights of an empty molecule are all 0: pair_sum gives 0 and passes back 0 */
    float w0[2 * 3 * 3];
    edge_weights(w0, none, 2, 3, 2.0f);
    dfs_tensor *ps = dfs_pair_sum(g, dfs_pair_expand(g, y, 1), w0);
    check_exact("no atoms: pair_sum", ps->data, (float[]){0, 0, 0, 0, 0, 0}, 6);

    /* the masked centre on random molecules of every size 1..6 padded to M = 6: mean zero over
     * the atoms present, within its bound, and exact zeros on padding. Each output is one
     * rounding of x_i - mean (mean in double), out_i = (x_i - mean)(1 + d_i), |d_i| <= u; the
     * exact x_i - mean sum to 0 (up to the double mean's error, below 1e-15 max |x|), so
     * |sum_i out_i| / n <= u sum_i |out_i| / n (1 + u) + 1e-15 max |x|. */
    dfs_graph_reset(g);
    const int B = 7, M = 6, D = 3;
    uint8_t mk[7 * 6];
    for (int b = 0; b < B; b++) /* molecule b has b atoms (0..6), scattered over the slots */
        for (int i = 0; i < M; i++)
            mk[b * M + i] = ((i * 5 + b) % M) < b;
    dfs_tensor *z = dfs_tensor_new(g, 3, (int[]){B, M, D});
    dfs_rng_fill_normal(&rng, z->data, z->n);
    for (size_t i = 0; i < z->n; i++)
        z->data[i] = 3.0f * z->data[i] + 10.0f; /* off centre */
    dfs_tensor *cz = dfs_center_masked(g, z, mk);
    double worst = 0;
    int pad_nonzero = 0, counted = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < D; k++) {
            double sum = 0, abs = 0, xmax = 0;
            int n = 0;
            for (int i = 0; i < M; i++) {
                const size_t at = ((size_t)b * M + i) * D + k;
                if (!mk[b * M + i]) {
                    pad_nonzero += !(cz->data[at] == 0 && !signbit(cz->data[at]));
                    continue;
                }
                n++;
                sum += cz->data[at];
                abs += fabs(cz->data[at]);
                xmax = fmax(xmax, fabs(z->data[at]));
            }
            counted += n > 0;
            if (n)
                worst = max_err(worst,
                                err_ratio(fabs(sum / n), U32 * (1 + U32) * abs / n + 1e-15 * xmax));
        }
    CHECK(counted == (B - 1) * D, "center_masked: %d molecule coordinates checked", counted);
    CHECK_RATIO(worst, "center_masked: mean over the atoms present is %.3g of its bound", worst);
    CHECK(pad_nonzero == 0, "center_masked: %d padding outputs not +0", pad_nonzero);
    dfs_graph_free(g);
}

/* ---- 4. broadcasting (B, M, M, 3) against (B, M, M, 1) -------------------------------------- */

static dfs_tensor *f_mul_b(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_mul(g, in[0], in[1]);
}
static dfs_tensor *f_add_b(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_add(g, in[0], in[1]);
}

static void test_broadcast(void) {
    /* B = 1 too: dfs_add/dfs_mul pad shapes to 4 dims and treat leading 1s apart */
    static const int shapes[][3] = {{2, 3, 3}, {1, 4, 3}, {3, 1, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], M = shapes[s][1], D = shapes[s][2];
        dfs_tensor *a = gc_input(4, (int[]){B, M, M, D}, &rng, 1.0f);
        dfs_tensor *b = gc_input(4, (int[]){B, M, M, 1}, &rng, 1.0f);
        dfs_graph *g = dfs_graph_new();
        for (int op = 0; op < 2; op++)
            for (int swap = 0; swap < 2; swap++) {
                dfs_graph_reset(g);
                dfs_tensor *y = op ? (swap ? dfs_mul(g, b, a) : dfs_mul(g, a, b))
                                   : (swap ? dfs_add(g, b, a) : dfs_add(g, a, b));
                int ok = same_shape(y, 4, (int[]){B, M, M, D});
                /* one float operation per element: the naive loop's, bit for bit */
                for (size_t i = 0; ok && i < a->n; i++) {
                    float bv = b->data[i / (size_t)D];
                    ok = y->data[i] == (op ? a->data[i] * bv : a->data[i] + bv);
                }
                CHECK(ok,
                      "%s (%d,%d,%d,%d) %s (%d,%d,%d,1): broadcast differs from the naive "
                      "loop",
                      op ? "mul" : "add", B, M, M, D, swap ? "<-" : "->", B, M, M);
            }
        dfs_graph_free(g);
        /* backward: linear in each element, so H_LIN; b's gradient sums D products */
        dfs_tensor *in[2] = {a, b};
        gradcheck("mul (B,M,M,3) (B,M,M,1)", f_mul_b, in, 2, NULL, H_LIN, TOL);
        gradcheck("add (B,M,M,3) (B,M,M,1)", f_add_b, in, 2, NULL, H_LIN, TOL);
        gc_input_free(a);
        gc_input_free(b);
    }
}

/* ---- 5. EDM's coordinate update, composed --------------------------------------------------
 * out_i = sum_j w_ij phi_ij g(x_i - x_j), g(d) = d / (sqrt(|d|^2 + 1e-8) + 1) (Hoogeboom et al.
 * 2022, app. B, eq. 12), phi_ij = h_i . h_j standing in for the edge MLP phi_x(m_ij) (an
 * invariant scalar per edge), w the EGNN weights, 1 / (M - 1) on the edges between atoms
 * present. x (B, M, 3), h (B, M, C). */

typedef struct {
    const float *w;
} egnn_args;

static dfs_tensor *f_egnn(dfs_graph *g, dfs_tensor **in, void *u) {
    const egnn_args *a = u;
    dfs_tensor *d = dfs_pair_diff(g, in[0]);            // (B, M, M, 3)
    dfs_tensor *sq = dfs_sum_last(g, dfs_mul(g, d, d)); // (B, M, M, 1)
    dfs_tensor *inv = dfs_recip(g, dfs_add_scalar(g, dfs_sqrt(g, sq, 1e-8f), 1.0f));
    dfs_tensor *phi = dfs_sum_last(
        g, dfs_mul(g, dfs_pair_expand(g, in[1], 0), dfs_pair_expand(g, in[1], 1))); // (B, M, M, 1)
    dfs_tensor *upd = dfs_mul(g, dfs_mul(g, d, inv), phi);                          // (B, M, M, 3)
    return dfs_pair_sum(g, upd, a->w);                                              // (B, M, 3)
}

enum { EB = 2, EM = 5, EC = 4 };
static const uint8_t emask[EB * EM] = {1, 1, 1, 1, 1, 1, 0, 1, 1, 1};

/* positions N(0, s^2) with every pair of atoms present at least rmin apart (redrawn until so) */
static void spread_positions(dfs_tensor *x, const uint8_t *m, float s, double rmin) {
    const int B = x->shape[0], M = x->shape[1];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++) {
            float *p = x->data + ((size_t)b * M + i) * 3;
            for (int tries = 0;; tries++) {
                for (int c = 0; c < 3; c++)
                    p[c] = s * dfs_rng_normal(&rng);
                int ok = 1;
                for (int j = 0; j < i && ok; j++) {
                    const float *q = x->data + ((size_t)b * M + j) * 3;
                    double r2 = 0;
                    for (int c = 0; c < 3; c++)
                        r2 += (double)(p[c] - q[c]) * (p[c] - q[c]);
                    ok = !(m[b * M + i] && m[b * M + j]) || r2 >= rmin * rmin;
                }
                if (ok || tries > 1000) break;
            }
        }
}

/* min distance between atoms present, and P = max over edges i != j between atoms present of
 * sum_c |h_ic h_jc| (>= |phi_ij|) */
static void egnn_stats(const dfs_tensor *x, const dfs_tensor *h, const uint8_t *m, double *rmin,
                       double *P) {
    const int B = x->shape[0], M = x->shape[1], C = h->shape[2];
    *rmin = INFINITY;
    *P = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++) {
                if (i == j || !m[b * M + i] || !m[b * M + j]) continue;
                const float *xi = x->data + ((size_t)b * M + i) * 3,
                            *xj = x->data + ((size_t)b * M + j) * 3;
                const float *hi = h->data + ((size_t)b * M + i) * C,
                            *hj = h->data + ((size_t)b * M + j) * C;
                double r2 = 0, p = 0;
                for (int c = 0; c < 3; c++)
                    r2 += ((double)xi[c] - xj[c]) * ((double)xi[c] - xj[c]);
                for (int c = 0; c < C; c++)
                    p += fabs((double)hi[c] * hj[c]);
                *rmin = fmin(*rmin, sqrt(r2));
                *P = fmax(*P, p);
            }
}

/* Finite differences through the composed update. Truncation: moving x_k along axis a by t
 * moves d_kj by +t e_a and d_ik by -t e_a; each g(d0 + t e) is analytic in t for |t| < r0 =
 * |d0| (|d0 + t e|^2 = r0^2 + 2 t d0.e + t^2 is a negative real or 0 only for |t| >= r0, and
 * the principal sqrt has a real part >= 0, so |sqrt + 1| >= 1 and |g| <= |d0| + |t|); Cauchy's
 * estimate on the circle |t| = rho -> r0 gives |g'''(0)| <= 6 (r0 + rho) / rho^3 -> 12 / r0^2.
 * L = sum_ij w_ij phi_ij R_i . g(d_ij), so with sum_j w_ij <= 1 and |R_i| <= 5 (3-vectors of
 * N(0, 1)), |d3L/dt3| <= 2 P 5 12 / r0^2 = 120 P / r0^2. With r0 >= 2 and P <= 0.5 (checked
 * on the inputs below) that is <= 15, and at h = 1e-2 the truncation is h^2/6 15 = 2.5e-4.
 * h_k enters phi linearly (phi_kk is masked out): no truncation there.
 * Roundoff: an output errs by E <= (9 + C + M) u P (derived at test_egnn_rotation) ~ 1e-6;
 * a step of x_k changes the rounding of the 2 (M - 1) edge terms through k and the sums of all
 * 3 M outputs; as independent roundings (gradcheck.h, lambda = 8) over ~3M (9 + C + M) = 270 of
 * them, each <= u |R| P / (M - 1) ~ 4e-8: 8 sqrt(270) 4e-8 ~ 5e-6, over h = 1e-2: 5e-4.
 * TOL_EGNN = 2e-3: 2.7 times the sum. */
#define H_EGNN 1e-2f
#define TOL_EGNN 2e-3f

static void test_egnn_gradients(void) {
    dfs_tensor *x = gc_input(3, (int[]){EB, EM, 3}, &rng, 1.0f);
    dfs_tensor *h = gc_input(3, (int[]){EB, EM, EC}, &rng, 0.3f);
    spread_positions(x, emask, 2.5f, 2.0);
    double r0, P;
    egnn_stats(x, h, emask, &r0, &P);
    CHECK(r0 >= 2.0 && P <= 0.5, "egnn inputs: min distance %.3g (want >= 2), P %.3g (<= 0.5)", r0,
          P);
    float w[EB * EM * EM];
    edge_weights(w, emask, EB, EM, (float)(EM - 1));
    egnn_args a = {w};
    dfs_tensor *in[2] = {x, h};
    gradcheck("egnn update", f_egnn, in, 2, &a, H_EGNN, TOL_EGNN);
    gc_input_free(x);
    gc_input_free(h);
}

/* E(3) equivariance: out(Q x) = Q out(x) for orthogonal Q (EGNN eq. 4 and sec. 3.2), here with
 * Q a random rotation or reflection (Gram-Schmidt on a Gaussian 3 x 3, in double).
 * Bound on |out(fl(Q x))_i - Q out(x)_i| (2-norm per atom):
 *   each output component errs by E = (9 + C + M) u P: g(d) in float is 8 roundings deep
 *   (d, d^2, the 2-term sum, + eps, sqrt, + 1, 1/r, d * 1/r; relative errors add, sqrt halves
 *   its argument's), phi is a C-term dot product (C u sum|h h| <= C u P), the product g phi
 *   and w (.) one each, and the sum over j M - 1 more, relative to sum_j w_ij |g phi| <= P
 *   (sum_j w_ij <= 1, |g| < 1); in norm sqrt(3) E, for out(fl(Q x)) and for out(x) (Q keeps
 *   norms);
 *   fl(Q x) = Q x + delta, |delta_i| <= u |x_i|, moves the exact output by at most
 *   sum_j w_ij |phi_ij| |J_g| (|delta_i| + |delta_j|) <= 2 P u max|x| (the Jacobian of g has
 *   norm 1 / (r + 1) <= 1).
 * Total: 2 sqrt(3) E + 2 P u max|x|, times 1.01 for the second-order terms. */
static void test_egnn_rotation(void) {
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *x = dfs_tensor_new(g, 3, (int[]){EB, EM, 3}),
               *xr = dfs_tensor_new(g, 3, (int[]){EB, EM, 3});
    dfs_tensor *h = dfs_tensor_new(g, 3, (int[]){EB, EM, EC});
    dfs_rng_fill_normal(&rng, h->data, h->n);
    for (size_t i = 0; i < h->n; i++)
        h->data[i] *= 0.5f;
    spread_positions(x, emask, 1.5f, 0.0); /* close pairs too: the bound does not need r0 */
    float w[EB * EM * EM];
    edge_weights(w, emask, EB, EM, (float)(EM - 1));
    egnn_args a = {w};
    double r0, P, xmax = 0;
    egnn_stats(x, h, emask, &r0, &P);
    for (size_t i = 0; i < x->n; i += 3)
        xmax = fmax(xmax,
                    sqrt((double)x->data[i] * x->data[i] + (double)x->data[i + 1] * x->data[i + 1] +
                         (double)x->data[i + 2] * x->data[i + 2]));
    const double E = (9 + EC + EM) * U32 * P;
    const double bound = 1.01 * (2 * sqrt(3.0) * E + 2 * P * U32 * xmax);
    double worst = 0, moved = 0;
    for (int trial = 0; trial < 4; trial++) {
        double Q[3][3];
        for (int r = 0; r < 3; r++) { /* Gram-Schmidt on Gaussian rows */
            for (int c = 0; c < 3; c++)
                Q[r][c] = dfs_rng_normal(&rng);
            for (int k = 0; k < r; k++) {
                double dot = 0;
                for (int c = 0; c < 3; c++)
                    dot += Q[r][c] * Q[k][c];
                for (int c = 0; c < 3; c++)
                    Q[r][c] -= dot * Q[k][c];
            }
            double n = sqrt(Q[r][0] * Q[r][0] + Q[r][1] * Q[r][1] + Q[r][2] * Q[r][2]);
            for (int c = 0; c < 3; c++)
                Q[r][c] /= n;
        }
        for (size_t i = 0; i < x->n; i += 3)
            for (int r = 0; r < 3; r++)
                xr->data[i + r] = (float)(Q[r][0] * x->data[i] + Q[r][1] * x->data[i + 1] +
                                          Q[r][2] * x->data[i + 2]);
        dfs_tensor *o = f_egnn(g, (dfs_tensor *[]){x, h}, &a);
        dfs_tensor *orot = f_egnn(g, (dfs_tensor *[]){xr, h}, &a);
        for (size_t i = 0; i < o->n; i += 3) {
            double e2 = 0, m2 = 0;
            for (int r = 0; r < 3; r++) {
                double qo =
                    Q[r][0] * o->data[i] + Q[r][1] * o->data[i + 1] + Q[r][2] * o->data[i + 2];
                e2 += (orot->data[i + r] - qo) * (orot->data[i + r] - qo);
                m2 += (orot->data[i + r] - o->data[i + r]) * (orot->data[i + r] - o->data[i + r]);
            }
            worst = max_err(worst, err_ratio(sqrt(e2), bound));
            moved = fmax(moved, sqrt(m2));
        }
    }
    CHECK_RATIO(worst, "egnn update: |out(Qx) - Q out(x)| is %.3g of its bound %.3g", worst, bound);
    /* the test can fail: the outputs did turn (a non-equivariant op would not follow Q) */
    CHECK(moved > 1e3 * bound, "egnn update: rotations moved the outputs by only %.3g", moved);
    dfs_graph_free(g);
}

/* ---- 6. large tensors: the threaded paths -------------------------------------------------- */

static void test_large(void) {
    /* B M M C = 4 * 53 * 53 * 3 = 33,708 > PAR_MIN (32,768) */
    const int B = 4, M = 53, C = 3;
    dfs_graph *g = dfs_graph_new();
    float *xs = malloc((size_t)B * M * C * sizeof(float)); /* outlives the graph's resets */
    dfs_rng_fill_normal(&rng, xs, (size_t)B * M * C);
    dfs_tensor *x = from(g, 3, (int[]){B, M, C}, xs);
    const size_t ne = (size_t)B * M * M * C;
    float *dout = malloc(ne * sizeof(float)), *w = malloc((size_t)B * M * M * sizeof(float));
    dfs_rng_fill_normal(&rng, dout, ne);
    for (size_t i = 0; i < (size_t)B * M * M; i++)
        w[i] = dfs_rng_uniform(&rng);

    /* forwards: copies and single roundings, bit for bit against the same float operation */
    dfs_tensor *e0 = dfs_pair_expand(g, x, 0), *e1 = dfs_pair_expand(g, x, 1),
               *d = dfs_pair_diff(g, x);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++)
                for (int c = 0; c < C; c++) {
                    const size_t o = (((size_t)b * M + i) * M + j) * C + c;
                    const float xi = x->data[((size_t)b * M + i) * C + c],
                                xj = x->data[((size_t)b * M + j) * C + c];
                    bad += !(e0->data[o] == xi && e1->data[o] == xj && d->data[o] == xi - xj);
                }
    CHECK(bad == 0, "large: %d pair_expand / pair_diff outputs off", bad);

    /* pair_sum against double, within sum_err(M) of the products, plus one rounding each of
     * them: (M + 1) u terms in the worst case */
    dfs_tensor *s = dfs_pair_sum(g, d, w);
    double worst = 0;
    for (size_t r = 0; r < (size_t)B * M; r++)
        for (int c = 0; c < C; c++) {
            double want = 0, abs = 0;
            for (int j = 0; j < M; j++) {
                double t = (double)w[r * M + j] * d->data[(r * M + j) * C + c];
                want += t, abs += fabs(t);
            }
            worst = max_err(
                worst, err_ratio(fabs(s->data[r * C + c] - want), sum_err(M, abs) + U32 * abs));
        }
    CHECK_RATIO(worst, "large: pair_sum is %.3g of its bound", worst);

    /* backwards of pair_expand (which 0 and 1) and pair_diff: sums of M (2M) terms of dout */
    const int which_of[3] = {0, 1, 2};
    for (int k = 0; k < 3; k++) {
        dfs_graph_reset(g);
        dfs_tensor *xx = from(g, 3, (int[]){B, M, C}, xs);
        xx->requires_grad = 1;
        dfs_tensor *y =
            which_of[k] < 2 ? dfs_pair_expand(g, xx, which_of[k]) : dfs_pair_diff(g, xx);
        dfs_backward_grad(g, y, dout);
        double wk = 0;
        for (int b = 0; b < B; b++)
            for (int n = 0; n < M; n++)
                for (int c = 0; c < C; c++) {
                    double want = 0, abs = 0;
                    for (int m = 0; m < M; m++) {
                        const double row = dout[(((size_t)b * M + n) * M + m) * C + c],
                                     col = dout[(((size_t)b * M + m) * M + n) * C + c];
                        const double t = k == 0 ? row : k == 1 ? col : row - col;
                        want += t, abs += fabs(row) + (k == 2 ? fabs(col) : 0);
                    }
                    wk = max_err(wk, err_ratio(fabs(xx->grad[((size_t)b * M + n) * C + c] - want),
                                               sum_err(k == 2 ? 2 * M : M, abs) + U32 * abs));
                }
        CHECK_RATIO(wk, "large: %s backward is %.3g of its bound",
                    k == 0   ? "pair_expand 0"
                    : k == 1 ? "pair_expand 1"
                             : "pair_diff",
                    wk);
    }

    /* sum_last, sqrt, recip, add_scalar on (B, M, M, C) and center_masked on (B M, M, C)
     * forward and backward: the same float operations bit for bit (sum_last: left to right) */
    dfs_graph_reset(g);
    dfs_tensor *v = from(g, 4, (int[]){B, M, M, C}, dout);
    for (size_t i = 0; i < v->n; i++)
        v->data[i] = 0.5f + fabsf(v->data[i]);
    v->requires_grad = 1;
    dfs_tensor *sq = dfs_sqrt(g, v, 1e-8f), *rc = dfs_recip(g, v), *as = dfs_add_scalar(g, v, 1);
    bad = 0;
    for (size_t i = 0; i < v->n; i++)
        bad += !(sq->data[i] == sqrtf(v->data[i] + 1e-8f) && rc->data[i] == 1.0f / v->data[i] &&
                 as->data[i] == v->data[i] + 1.0f);
    CHECK(bad == 0, "large: %d sqrt / recip / add_scalar outputs off", bad);
    dfs_tensor *sl = dfs_sum_last(g, v);
    bad = 0;
    for (size_t r = 0; r < sl->n; r++)
        bad += !(sl->data[r] == v->data[3 * r] + v->data[3 * r + 1] + v->data[3 * r + 2]);
    CHECK(bad == 0, "large: %d sum_last outputs off", bad);
    dfs_backward_grad(g, sq, dout);
    bad = 0;
    for (size_t i = 0; i < v->n; i++)
        bad += !(v->grad[i] == 0.5f * dout[i] / sq->data[i]);
    CHECK(bad == 0, "large: %d sqrt derivatives off", bad);

    dfs_graph_reset(g);
    const int CB = 4 * 53, CM = 53; /* center_masked on (212, 53, 3): 33,708 */
    uint8_t *mk = malloc((size_t)CB * CM);
    for (int i = 0; i < CB * CM; i++)
        mk[i] = dfs_rng_uniform(&rng) < 0.7f;
    dfs_tensor *cx = from(g, 3, (int[]){CB, CM, 3}, dout);
    cx->requires_grad = 1;
    dfs_tensor *cy = dfs_center_masked(g, cx, mk);
    dfs_backward_grad(g, cy, dout);
    bad = 0;
    for (int b = 0; b < CB; b++)
        for (int c = 0; c < 3; c++) {
            double mu = 0;
            int n = 0;
            for (int i = 0; i < CM; i++)
                if (mk[b * CM + i]) mu += cx->data[((size_t)b * CM + i) * 3 + c], n++;
            mu = n ? mu / n : 0;
            for (int i = 0; i < CM; i++) {
                const size_t at = ((size_t)b * CM + i) * 3 + c;
                const float want = mk[b * CM + i] ? (float)(cx->data[at] - mu) : 0.0f;
                bad += !(cy->data[at] == want && cx->grad[at] == want); /* P dout, dout = x */
            }
        }
    CHECK(bad == 0, "large: %d center_masked outputs or gradients off", bad);
    free(mk);
    free(xs);
    free(dout);
    free(w);
    dfs_graph_free(g);
}

/* ---- 7. the fused EGNN ops ------------------------------------------------------------------
 * dfs_pair_silu(a, c, e, w) = silu(a_i + c_j + w e_ij) and dfs_pair_sum_gated(e, s, w) =
 * sum_j w_ij s_ij e_ij, each against the composition of the plain ops it replaces. */

enum { FB = 2, FM = 4, FC = 5, FK = 2 };

static dfs_tensor *f_psilu(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_pair_silu(g, in[0], in[1], in[2], in[3]);
}
/* the same on scaled copies: backward stores into fresh gradient buffers */
static dfs_tensor *f_psilu_fresh(dfs_graph *g, dfs_tensor **in, void *u) {
    dfs_tensor *s[4];
    for (int k = 0; k < 4; k++)
        s[k] = dfs_scale(g, in[k], 1.0f);
    return dfs_pair_silu(g, s[0], s[1], s[2], s[3]);
}
/* a == c, and no edge term */
static dfs_tensor *f_psilu_same(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_pair_silu(g, in[0], in[0], NULL, NULL);
}
/* the reference: silu(pair_expand(a, 0) + pair_expand(c, 1) + linear(e, w)) */
static dfs_tensor *f_psilu_ref(dfs_graph *g, dfs_tensor **in, void *u) {
    dfs_tensor *z = dfs_add(g, dfs_pair_expand(g, in[0], 0), dfs_pair_expand(g, in[1], 1));
    if (in[2]) z = dfs_add(g, z, dfs_linear(g, in[2], in[3], NULL));
    return dfs_silu(g, z);
}

static dfs_tensor *f_gated(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_pair_sum_gated(g, in[0], in[1], ((op_args *)u)->w);
}
static dfs_tensor *f_gated_fresh(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_pair_sum_gated(g, dfs_scale(g, in[0], 1.0f), dfs_scale(g, in[1], 1.0f),
                              ((op_args *)u)->w);
}
static dfs_tensor *f_gated_ref(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_pair_sum(g, dfs_mul(g, in[0], in[1]), ((op_args *)u)->w);
}

/* Finite differences. silu is smooth (its second derivative within +-0.5, its third within
 * +-0.6), the gated sum bilinear in (e, s). With a, c ~ N(0, 1), e ~ N(0, 0.25), w (C, K) ~
 * N(0, 1) and R ~ N(0, 1) (|R| <= 4): truncation h^2/6 |d3L/dx3| is largest for an element of
 * w, whose third derivative sums |R| 0.6 |e|^3 over the B M M = 32 edges: about
 * 32 * 4 * 0.6 * 0.4 = 31 (|e|^3 is 0.4 on average), so 1.7e-5 * 31 = 5e-4 at h = 1e-2; for a
 * or c (M = 4 terms, no e) 7e-5. Roundoff: each of the 160 outputs (O(1)) carries a few u;
 * an element of w moves all of them: 8 sqrt(160) 3u 4 / (2h) ~ 3e-4. TOL (1e-3) holds both; a
 * wrong term errs by O(1). */
static void test_fused_gradients(void) {
    dfs_tensor *a = gc_input(3, (int[]){FB, FM, FC}, &rng, 1.0f);
    dfs_tensor *c = gc_input(3, (int[]){FB, FM, FC}, &rng, 1.0f);
    dfs_tensor *e = gc_input(4, (int[]){FB, FM, FM, FK}, &rng, 0.5f);
    dfs_tensor *w = gc_input(2, (int[]){FC, FK}, &rng, 1.0f);
    dfs_tensor *in[4] = {a, c, e, w};
    gradcheck("pair_silu", f_psilu, in, 4, NULL, 1e-2f, TOL);
    gradcheck("pair_silu (fresh grads)", f_psilu_fresh, in, 4, NULL, 1e-2f, TOL);
    gradcheck("pair_silu (a == c, no edge term)", f_psilu_same, in, 1, NULL, 1e-2f, TOL);
    /* the gated sum: linear in each single element, so H_LIN; s of both signs, a weight of 2
     * and zeros (test_gradients' weights) */
    const uint8_t mask[FB * FM] = {1, 1, 1, 1, 1, 0, 1, 1};
    float wt[FB * FM * FM];
    edge_weights(wt, mask, FB, FM, (float)(FM - 1));
    wt[1] = 2.0f;
    op_args args = {.w = wt};
    dfs_tensor *ge = gc_input(4, (int[]){FB, FM, FM, 3}, &rng, 1.0f);
    dfs_tensor *gs = gc_input(4, (int[]){FB, FM, FM, 1}, &rng, 1.0f);
    dfs_tensor *gin[2] = {ge, gs};
    gradcheck("pair_sum_gated", f_gated, gin, 2, &args, H_LIN, TOL);
    gradcheck("pair_sum_gated (fresh grads)", f_gated_fresh, gin, 2, &args, H_LIN, TOL);
    args.w = NULL;
    gradcheck("pair_sum_gated (w NULL)", f_gated, gin, 2, &args, H_LIN, TOL);
    gc_input_free(a), gc_input_free(c), gc_input_free(e), gc_input_free(w);
    gc_input_free(ge), gc_input_free(gs);
}

/* Forward and backward against the reference compositions, on B = 3 molecules of M = 24 and
 * C = 24 (41,472 floats per edge array: the threaded loops), with one thread and fresh
 * gradient buffers, then with two threads and buffers of zeros that backward adds to: both
 * must give the same values (0 + g is g; only a zero's sign may differ), and the second run is
 * checked against the reference.
 *
 * pair_silu. Both sides evaluate z = a_i + c_j + sum_k w_k e_k, K + 2 terms, in float (in
 * other orders): each within gamma_{K+2} sum|terms| of the exact z, so they differ by
 * dz <= 2 sum_err(K + 2, sum|terms|). Both apply the same float silu (z * sigmoid, dfs_expf):
 * the outputs differ by <= 1.1 dz (|silu'| <= 1.1) plus the float silu's own rounding at two
 * arguments, 2 * 6e-7 |silu(z)| (dfs_expf 3e-7, four roundings). Backward, both form
 * g = dout s (1 + z (1 - s)) (silu_bw's formula) from their z: they differ by
 * <= |dout| (0.5 dz + 2e-6 (s + |z s (1 - s)|)) (|silu''| <= 0.5; the formula's own rounding,
 * 1e-6 of its terms, on each side); then da_i = sum_j g_ij, dc_j = sum_i g_ij (pair_expand's
 * backward), de = g w and dw = g^T e (GEMMs), sums in other orders on each side:
 * |diff| <= sum |g diffs| |factor| + 2 sum_err(n, sum |g factor|).
 * pair_sum_gated. The fast side sums (w s) e, the reference w (s e): two roundings each, so
 * the products differ by <= 4u |w s e|, the sums of M by 2 sum_err(M, .) more; backward
 * de = (w s) dout against s (w dout) (4u), ds = w (e . dout) against the sum of (w dout_c) e_c
 * (band_reduce, two roundings a term, added in double): 2 sum_err(C, .) + 4u. All checked at
 * 1.01 times the bound. */
static double bound_ratio(double diff, double bound) {
    return err_ratio(diff, 1.01 * bound);
}

/* a[i] == b[i] for all i: the same bits but for the sign of a zero (0 + -0 is +0) */
static int same_values(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i])) return 0;
    return 1;
}

static void test_fused_reference(void) {
    enum { B = 3, M = 24, C = 24, K = 2, NE = B * M * M };
    dfs_rng r;
    dfs_rng_seed(&r, 77);
    float *av = malloc(sizeof(float) * B * M * C), *cv = malloc(sizeof(float) * B * M * C);
    float *ev = malloc(sizeof(float) * NE * K), *wv = malloc(sizeof(float) * C * K);
    float *dout = malloc(sizeof(float) * NE * C);
    dfs_rng_fill_normal(&r, av, (size_t)B * M * C);
    dfs_rng_fill_normal(&r, cv, (size_t)B * M * C);
    dfs_rng_fill_normal(&r, ev, (size_t)NE * K);
    dfs_rng_fill_normal(&r, wv, (size_t)C * K);
    dfs_rng_fill_normal(&r, dout, (size_t)NE * C);
    const int T0 = dfs_get_threads();
    static const char *part[5] = {"output", "da", "dc", "de", "dw"};
    const size_t nn[5] = {(size_t)NE * C, (size_t)B * M * C, (size_t)B * M * C, (size_t)NE * K,
                          (size_t)C * K};
    float *keep[2][5]; /* out, da, dc, de, dw of the fused op with 1 and 2 threads */
    double worst[5] = {0};
    for (int th = 0; th < 2; th++) {
        dfs_set_threads(th + 1);
        dfs_tensor *x[2][4], *out[2];
        dfs_graph *g[2];
        for (int v = 0; v < 2; v++) { /* 0 fused, 1 reference */
            g[v] = dfs_graph_new();
            x[v][0] = from(g[v], 3, (int[]){B, M, C}, av);
            x[v][1] = from(g[v], 3, (int[]){B, M, C}, cv);
            x[v][2] = from(g[v], 4, (int[]){B, M, M, K}, ev);
            x[v][3] = from(g[v], 2, (int[]){C, K}, wv);
            for (int k = 0; k < 4; k++) {
                x[v][k]->requires_grad = 1;
                if (th) x[v][k]->grad = dfs_tensor_zeros(g[v], 1, (int[]){(int)x[v][k]->n})->data;
            }
            out[v] = v ? f_psilu_ref(g[v], x[v], NULL) : f_psilu(g[v], x[v], NULL);
            dfs_backward_grad(g[v], out[v], dout);
        }
        const float *got[5] = {out[0]->data, x[0][0]->grad, x[0][1]->grad, x[0][2]->grad,
                               x[0][3]->grad};
        for (int q = 0; q < 5; q++) {
            keep[th][q] = malloc(nn[q] * sizeof(float));
            memcpy(keep[th][q], got[q], nn[q] * sizeof(float));
        }
        if (th == 1) { /* the bounds, once: per edge and channel, g's difference bound and |g| */
            double *gb = malloc(sizeof(double) * NE * C), *ga = malloc(sizeof(double) * NE * C);
            for (size_t ij = 0; ij < (size_t)NE; ij++) {
                const size_t b = ij / (M * M), i = ij / M % M, j = ij % M;
                for (int ch = 0; ch < C; ch++) {
                    const size_t at = ij * C + ch;
                    const double ai = av[(b * M + i) * C + ch], cj = cv[(b * M + j) * C + ch];
                    double z = ai + cj, abs = fabs(ai) + fabs(cj);
                    for (int k = 0; k < K; k++) {
                        z += (double)wv[ch * K + k] * ev[ij * K + k];
                        abs += fabs((double)wv[ch * K + k] * ev[ij * K + k]);
                    }
                    const double dz = 2 * sum_err(K + 2, abs), s = 1 / (1 + exp(-z));
                    const double fwd = 1.1 * dz + 2 * 6e-7 * fabs(z * s);
                    worst[0] = max_err(worst[0],
                                       bound_ratio(fabs(out[0]->data[at] - out[1]->data[at]), fwd));
                    gb[at] = fabs(dout[at]) * (0.5 * dz + 2e-6 * (s + fabs(z * s * (1 - s))));
                    ga[at] = fabs(dout[at] * s * (1 + z * (1 - s)));
                }
            }
            for (int v = 0; v < 2; v++) /* da (sums over j), dc (sums over i): M terms */
                for (int b = 0; b < B; b++)
                    for (int m = 0; m < M; m++)
                        for (int ch = 0; ch < C; ch++) {
                            double sb = 0, sa = 0;
                            for (int o = 0; o < M; o++) {
                                const size_t at =
                                    (((size_t)b * M + (v ? o : m)) * M + (v ? m : o)) * C + ch;
                                sb += gb[at], sa += ga[at];
                            }
                            const size_t at = ((size_t)b * M + m) * C + ch;
                            const double d = fabs(x[0][v]->grad[at] - x[1][v]->grad[at]);
                            worst[1 + v] =
                                max_err(worst[1 + v], bound_ratio(d, sb + 2 * sum_err(M, sa + sb)));
                        }
            for (size_t ij = 0; ij < (size_t)NE; ij++) /* de: C terms */
                for (int k = 0; k < K; k++) {
                    double sb = 0, sa = 0;
                    for (int ch = 0; ch < C; ch++) {
                        sb += gb[ij * C + ch] * fabs(wv[ch * K + k]);
                        sa += ga[ij * C + ch] * fabs(wv[ch * K + k]);
                    }
                    const double d = fabs(x[0][2]->grad[ij * K + k] - x[1][2]->grad[ij * K + k]);
                    worst[3] = max_err(worst[3], bound_ratio(d, sb + 2 * sum_err(C, sa + sb)));
                }
            for (int ch = 0; ch < C; ch++) /* dw: B M M terms */
                for (int k = 0; k < K; k++) {
                    double sb = 0, sa = 0;
                    for (size_t ij = 0; ij < (size_t)NE; ij++) {
                        sb += gb[ij * C + ch] * fabs(ev[ij * K + k]);
                        sa += ga[ij * C + ch] * fabs(ev[ij * K + k]);
                    }
                    const double d = fabs(x[0][3]->grad[ch * K + k] - x[1][3]->grad[ch * K + k]);
                    worst[4] = max_err(worst[4], bound_ratio(d, sb + 2 * sum_err(NE, sa + sb)));
                }
            free(gb);
            free(ga);
        }
        dfs_graph_free(g[0]);
        dfs_graph_free(g[1]);
    }
    for (int q = 0; q < 5; q++) {
        CHECK_RATIO(worst[q], "pair_silu %s against the composition: %.3g of the bound", part[q],
                    worst[q]);
        CHECK(same_values(keep[0][q], keep[1][q], nn[q]),
              "pair_silu %s: one thread with fresh gradients and two adding to zeros give the "
              "same values",
              part[q]);
        free(keep[0][q]);
        free(keep[1][q]);
    }

    /* the gated sum, with EGNN weights (padding atoms among the molecules) */
    enum { GC = 16 };
    uint8_t mask[B * M];
    for (int i = 0; i < B * M; i++)
        mask[i] = i % 7 != 3;
    float *wt = malloc(sizeof(float) * NE), *sv = malloc(sizeof(float) * NE);
    float *gv = malloc(sizeof(float) * NE * GC);
    edge_weights(wt, mask, B, M, 3.0f);
    dfs_rng_fill_normal(&r, gv, (size_t)NE * GC);
    dfs_rng_fill_normal(&r, sv, (size_t)NE);
    static const char *gpart[3] = {"output", "de", "ds"};
    const size_t gn[3] = {(size_t)B * M * GC, (size_t)NE * GC, (size_t)NE};
    float *gkeep[2][3];
    double gw[3] = {0};
    for (int th = 0; th < 2; th++) {
        dfs_set_threads(th + 1);
        dfs_graph *g[2];
        dfs_tensor *x[2][2], *out[2];
        op_args args = {.w = wt};
        for (int v = 0; v < 2; v++) {
            g[v] = dfs_graph_new();
            x[v][0] = from(g[v], 4, (int[]){B, M, M, GC}, gv);
            x[v][1] = from(g[v], 4, (int[]){B, M, M, 1}, sv);
            for (int k = 0; k < 2; k++) {
                x[v][k]->requires_grad = 1;
                if (th) x[v][k]->grad = dfs_tensor_zeros(g[v], 1, (int[]){(int)x[v][k]->n})->data;
            }
            out[v] = v ? f_gated_ref(g[v], x[v], &args) : f_gated(g[v], x[v], &args);
            dfs_backward_grad(g[v], out[v], dout); /* dout's first B M GC floats */
        }
        const float *got[3] = {out[0]->data, x[0][0]->grad, x[0][1]->grad};
        for (int q = 0; q < 3; q++) {
            gkeep[th][q] = malloc(gn[q] * sizeof(float));
            memcpy(gkeep[th][q], got[q], gn[q] * sizeof(float));
        }
        for (size_t rr = 0; th == 1 && rr < (size_t)B * M; rr++)
            for (int ch = 0; ch < GC; ch++) {
                double abs = 0;
                for (int j = 0; j < M; j++) {
                    const size_t rj = rr * M + j;
                    abs += fabs((double)wt[rj] * sv[rj] * gv[rj * GC + ch]);
                    const double d =
                        fabs(x[0][0]->grad[rj * GC + ch] - x[1][0]->grad[rj * GC + ch]);
                    gw[1] = max_err(gw[1], bound_ratio(d, 4 * U32 *
                                                              fabs((double)wt[rj] * sv[rj] *
                                                                   dout[rr * GC + ch])));
                }
                const double d = fabs(out[0]->data[rr * GC + ch] - out[1]->data[rr * GC + ch]);
                gw[0] = max_err(gw[0], bound_ratio(d, 2 * sum_err(M, abs) + 4 * U32 * abs));
            }
        for (size_t rj = 0; th == 1 && rj < (size_t)NE; rj++) {
            double abs = 0;
            for (int ch = 0; ch < GC; ch++)
                abs += fabs((double)wt[rj] * gv[rj * GC + ch] * dout[rj / M * GC + ch]);
            const double d = fabs(x[0][1]->grad[rj] - x[1][1]->grad[rj]);
            gw[2] = max_err(gw[2], bound_ratio(d, 2 * sum_err(GC, abs) + 4 * U32 * abs));
        }
        dfs_graph_free(g[0]);
        dfs_graph_free(g[1]);
    }
    for (int q = 0; q < 3; q++) {
        CHECK_RATIO(gw[q], "pair_sum_gated %s against pair_sum(mul): %.3g of the bound", gpart[q],
                    gw[q]);
        CHECK(same_values(gkeep[0][q], gkeep[1][q], gn[q]),
              "pair_sum_gated %s: one thread with fresh gradients and two adding to zeros give "
              "the same values",
              gpart[q]);
        free(gkeep[0][q]);
        free(gkeep[1][q]);
    }
    dfs_set_threads(T0);
    free(av), free(cv), free(ev), free(wv), free(dout), free(wt), free(gv), free(sv);
}

/* Wrong shapes stop at DFS_ASSERT (abort): each in a child process, its stderr discarded. */
static void test_asserts(void) {
    static const char *what[] = {"pair_expand which 2",
                                 "pair_expand of a 4-d tensor",
                                 "pair_diff of a 2-d tensor",
                                 "pair_sum over (1, 2, 3, 1)",
                                 "center_masked without a mask",
                                 "sum_last of a 0-d tensor",
                                 "pair_silu with e but no w",
                                 "pair_silu with w (C, K + 1)",
                                 "pair_silu of a and c of other sizes",
                                 "pair_sum_gated with s (1, 2, 2, 3)"};
    for (int c = 0; c < (int)(sizeof what / sizeof what[0]); c++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            if (!freopen("/dev/null", "w", stderr)) _exit(3);
            dfs_graph *g = dfs_graph_new();
            dfs_tensor *t3 = dfs_tensor_zeros(g, 3, (int[]){1, 2, 3}),
                       *t4 = dfs_tensor_zeros(g, 4, (int[]){1, 2, 3, 1});
            switch (c) {
            case 0:
                dfs_pair_expand(g, t3, 2);
                break;
            case 1:
                dfs_pair_expand(g, t4, 0);
                break;
            case 2:
                dfs_pair_diff(g, dfs_tensor_zeros(g, 2, (int[]){2, 3}));
                break;
            case 3:
                dfs_pair_sum(g, t4, NULL);
                break;
            case 4:
                dfs_center_masked(g, t3, NULL);
                break;
            case 5:
                dfs_sum_last(g, dfs_tensor_zeros(g, 0, NULL));
                break;
            case 6:
                dfs_pair_silu(g, t3, t3, dfs_tensor_zeros(g, 4, (int[]){1, 2, 2, 2}), NULL);
                break;
            case 7:
                dfs_pair_silu(g, t3, t3, dfs_tensor_zeros(g, 4, (int[]){1, 2, 2, 2}),
                              dfs_tensor_zeros(g, 2, (int[]){3, 3}));
                break;
            case 8:
                dfs_pair_silu(g, t3, dfs_tensor_zeros(g, 3, (int[]){1, 2, 4}), NULL, NULL);
                break;
            default:
                dfs_pair_sum_gated(g, dfs_tensor_zeros(g, 4, (int[]){1, 2, 2, 3}),
                                   dfs_tensor_zeros(g, 4, (int[]){1, 2, 2, 3}), NULL);
                break;
            }
            _exit(0); /* it returned: the check below fails */
        }
        int status = 0;
        int waited = pid > 0 && waitpid(pid, &status, 0) == pid;
        CHECK(waited && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: the child %s",
              what[c],
              !waited               ? "could not run"
              : WIFSIGNALED(status) ? "died of another signal"
                                    : "returned");
    }
}

int main(void) {
    dfs_rng_seed(&rng, 20250301);
    test_asserts(); /* before any OpenMP thread exists */
    dfs_set_threads(2);
    test_values();
    test_gradients();
    test_edge_cases();
    test_broadcast();
    test_egnn_gradients();
    test_egnn_rotation();
    test_large();
    test_fused_gradients();
    test_fused_reference();
    return check_summary("test_ops_graph");
}
