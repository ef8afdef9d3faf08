/* test_ops_a.c - conv2d, conv1d, linear, bmm, reshape, concat, slice, upsample_nearest.
 *
 * 1. Forward values on small cases worked out by hand (exact: see check_values).
 * 2. Every backward (all inputs: data, weights, biases) against central finite differences
 *    (tolerance at GC_TOL).
 * 3. The fast im2col/GEMM conv against the naive reference, forward and backward, on odd shapes
 *    (stride 1/2, pad 0/1/2, kernels 1/3/5 and non-square) and with the image chunking forced
 *    to 1, 2 (with a remainder) and all images per GEMM, through every kernel path: each
 *    element within the rounding-error bound of its sum (gradcheck.h, sum_err), the sums of
 *    absolute terms coming from the reference run on |x|, |w| and |dout|.
 * 4. The no-grad path: with dfs_graph_set_grad(g, 0) ops compute the same values bit for bit,
 *    mark nothing as requiring grad, and backward from their outputs changes nothing. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"
#include "ops/ops.h"
#include "ref/ref.h"

#include <string.h>

/* Finite differences. Each op here is linear in any single input element (conv/linear/bmm are
 * bilinear, the shape ops linear), so with the steps actually taken (gradcheck.h) the central
 * difference has no truncation error and only the roundoff of the float32 forward remains:
 * |e(x+h) - e(x-h)| / 2h. One input element reaches n_out <= 50 outputs here (Co k^2), each a
 * sum of K <= 75 products of N(0,1) inputs and N(0,0.5^2) weights, whose rounding error has
 * the scale u sqrt(K) |partial sums| ~ 6e-8 * 9 * 3 ~ 1.5e-6; so e ~ |R| sqrt(n_out) 1.5e-6 ~
 * 1e-5 and the roundoff ~ sqrt(2) e / 2h ~ 7e-5 at h = 1e-2. GC_TOL = 1e-3 (relative, absolute
 * below 1) is ten times that scale, the room the largest of a few hundred such errors needs,
 * and still catches any wrong index or missing term (errors of O(1)). The two fused cases add
 * GroupNorm + SiLU, which are not linear: their truncation h^2/6 |d3L/dx3| ~ 1.7e-5 |d3L/dx3|,
 * with |d3L/dx3| of order 1 to 10 at unit group variance, stays below 2e-4. */
#define GC_H 1e-2f
#define GC_TOL 1e-3f

static dfs_rng rng;

/* ---- helpers --------------------------------------------------------------------------------- */

static dfs_tensor *wrap(dfs_graph *g, const float *data, int ndim, const int *shape) {
    dfs_tensor *t = dfs_tensor_new(g, ndim, shape);
    memcpy(t->data, data, t->n * sizeof(float));
    return t;
}

/* Exact: every hand case below has small integer inputs and weights, so each product and every
 * partial sum is an integer below 2^24, which float32 holds exactly: the result is exact in any
 * summation order, with or without FMA. */
static void check_values(const char *what, const dfs_tensor *t, const float *want, size_t n) {
    CHECK(t->n == n, "%s: %zu elements, want %zu", what, t->n, n);
    if (t->n != n) return;
    for (size_t i = 0; i < n; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s[%zu]", what, i);
        CHECK_CLOSE(t->data[i], want[i], 0, 0, buf);
    }
}

static void check_shape(const char *what, const dfs_tensor *t, int ndim, const int *shape) {
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    CHECK(ok, "%s: wrong shape (ndim %d: %d %d %d %d)", what, t->ndim, t->shape[0], t->shape[1],
          t->shape[2], t->shape[3]);
}

/* The worst |got - want| / bound over n elements, the bound of element i being
 * sum_err(nterms, sides asum[i]) + sides u |want[i]|: sides float32 computations of one sum of
 * nterms terms whose absolute values add up to asum[i], each rounded to float at the end. NaN
 * if got has a NaN. */
static double worst_ratio(const float *got, const float *want, const float *asum, size_t n,
                          double nterms, int sides) {
    double r = 0;
    for (size_t i = 0; i < n; i++) {
        double b = sum_err(nterms, sides * (double)asum[i]) + sides * U32 * fabs(want[i]);
        r = max_err(r, err_ratio(fabs((double)got[i] - want[i]), b));
    }
    return r;
}

static float *abs_copy(const float *p, size_t n) {
    float *a = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = fabsf(p[i]);
    return a;
}

/* ---- 1. forward values worked out by hand -----------------------------------------------------
 */

static void test_forward_values(void) {
    dfs_graph *g = dfs_graph_new();
    float img[16];
    for (int i = 0; i < 16; i++) img[i] = (float)(i + 1); // 1..16 in a 4x4 grid
    dfs_tensor *x = wrap(g, img, 4, (int[]){1, 1, 4, 4});
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, one = 1;
    dfs_tensor *w = wrap(g, ones, 4, (int[]){1, 1, 3, 3});
    dfs_tensor *b = wrap(g, &one, 1, (int[]){1});

    /* 3x3 box sums of the 4x4 grid: 1+2+3+5+6+7+9+10+11 = 54, 63, 90, 99; plus bias 1 */
    dfs_tensor *y = dfs_conv2d(g, x, w, b, 1, 0);
    check_shape("conv box", y, 4, (int[]){1, 1, 2, 2});
    check_values("conv box", y, (float[]){55, 64, 91, 100}, 4);

    /* stride 2 pad 1: windows centred on (0,0) (0,2) (2,0) (2,2), clipped by the border:
     * 1+2+5+6 = 14, 2+3+4+6+7+8 = 30, 5+6+9+10+13+14 = 57, 6+7+8+10+11+12+14+15+16 = 99 */
    y = dfs_conv2d(g, x, w, NULL, 2, 1);
    check_shape("conv s2p1", y, 4, (int[]){1, 1, 2, 2});
    check_values("conv s2p1", y, (float[]){14, 30, 57, 99}, 4);

    /* cross-correlation, not flipped: a delta at kernel (0,0) copies the top-left, at (2,2)
     * the bottom-right of each window */
    float d00[9] = {1, 0, 0, 0, 0, 0, 0, 0, 0}, d22[9] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
    y = dfs_conv2d(g, x, wrap(g, d00, 4, (int[]){1, 1, 3, 3}), NULL, 1, 0);
    check_values("conv delta00", y, (float[]){1, 2, 5, 6}, 4);
    y = dfs_conv2d(g, x, wrap(g, d22, 4, (int[]){1, 1, 3, 3}), NULL, 1, 0);
    check_values("conv delta22", y, (float[]){11, 12, 15, 16}, 4);

    /* non-square kernel (1,3) of ones, pad 0: row sums of 3 neighbours */
    y = dfs_conv2d(g, x, wrap(g, ones, 4, (int[]){1, 1, 1, 3}), NULL, 1, 0);
    check_shape("conv 1x3", y, 4, (int[]){1, 1, 4, 2});
    check_values("conv 1x3", y, (float[]){6, 9, 18, 21, 30, 33, 42, 45}, 8);

    /* 1x1 conv (the direct-GEMM path), 2 images, 2 channels in, 2 out:
     * out0 = c0 + c1, out1 = c0 - c1 + 10 */
    float x2[16] = {1, 2, 3, 4, 5, 6, 7, 8, /* image 1 */ 0, 0, 0, 0, 1, 1, 1, 1};
    float w2[4] = {1, 1, 1, -1}, b2[2] = {0, 10};
    y = dfs_conv2d(g, wrap(g, x2, 4, (int[]){2, 2, 2, 2}), wrap(g, w2, 4, (int[]){2, 2, 1, 1}),
                   wrap(g, b2, 1, (int[]){2}), 1, 0);
    check_values("conv 1x1", y,
                 (float[]){6, 8, 10, 12, 6, 6, 6, 6, /* image 1 */ 1, 1, 1, 1, 9, 9, 9, 9}, 16);

    /* conv1d with a difference kernel [1, 0, -1], pad 1: out[i] = x[i-1] - x[i+1] */
    dfs_tensor *s = wrap(g, (float[]){1, 2, 3, 4, 5}, 3, (int[]){1, 1, 5});
    dfs_tensor *k = wrap(g, (float[]){1, 0, -1}, 3, (int[]){1, 1, 3});
    y = dfs_conv1d(g, s, k, NULL, 1, 1);
    check_shape("conv1d", y, 3, (int[]){1, 1, 5});
    check_values("conv1d", y, (float[]){-2, -2, -2, -2, 4}, 5);
    y = dfs_conv1d(g, s, k, wrap(g, &one, 1, (int[]){1}), 2, 1);
    check_values("conv1d s2", y, (float[]){-1, -1, 5}, 3);

    /* linear: [[1,2,3],[4,5,6]] [[1,0,-1],[2,1,0]]^T + [10,20] = [[8,24],[8,33]] */
    float xl[6] = {1, 2, 3, 4, 5, 6}, wl[6] = {1, 0, -1, 2, 1, 0}, bl[2] = {10, 20};
    dfs_tensor *wlt = wrap(g, wl, 2, (int[]){2, 3}), *blt = wrap(g, bl, 1, (int[]){2});
    y = dfs_linear(g, wrap(g, xl, 2, (int[]){2, 3}), wlt, blt);
    check_shape("linear", y, 2, (int[]){2, 2});
    check_values("linear", y, (float[]){8, 24, 8, 33}, 4);
    y = dfs_linear(g, wrap(g, xl, 3, (int[]){2, 1, 3}), wlt, NULL);
    check_shape("linear 3d", y, 3, (int[]){2, 1, 2});
    check_values("linear 3d", y, (float[]){-2, 4, -2, 13}, 4);

    /* bmm: [[1,2,3],[4,5,6]] [[7,8],[9,10],[11,12]] = [[58,64],[139,154]], the same through
     * each transpose flag with the operand stored transposed; batch item 1 is 2x item 0 */
    float A[12] = {1, 2, 3, 4, 5, 6, 2, 4, 6, 8, 10, 12};
    float At[12] = {1, 4, 2, 5, 3, 6, 2, 8, 4, 10, 6, 12};
    float Bm[12] = {7, 8, 9, 10, 11, 12, 7, 8, 9, 10, 11, 12};
    float Bt[12] = {7, 9, 11, 8, 10, 12, 7, 9, 11, 8, 10, 12};
    float want_bmm[8] = {58, 64, 139, 154, 116, 128, 278, 308};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            dfs_tensor *a = ta ? wrap(g, At, 3, (int[]){2, 3, 2}) : wrap(g, A, 3, (int[]){2, 2, 3});
            dfs_tensor *bb =
                tb ? wrap(g, Bt, 3, (int[]){2, 2, 3}) : wrap(g, Bm, 3, (int[]){2, 3, 2});
            char name[128];
            snprintf(name, sizeof name, "bmm ta=%d tb=%d", ta, tb);
            y = dfs_bmm(g, a, bb, ta, tb);
            check_shape(name, y, 3, (int[]){2, 2, 2});
            check_values(name, y, want_bmm, 8);
        }

    /* upsample [[1,2],[3,4]] by 2 and [[5]] by 3 */
    y = dfs_upsample_nearest(g, wrap(g, (float[]){1, 2, 3, 4}, 4, (int[]){1, 1, 2, 2}), 2);
    check_shape("upsample", y, 4, (int[]){1, 1, 4, 4});
    check_values("upsample", y, (float[]){1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 16);
    y = dfs_upsample_nearest(g, wrap(g, (float[]){5, 6}, 4, (int[]){2, 1, 1, 1}), 3);
    check_values("upsample x3", y, (float[]){5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6},
                 18);

    /* concat (2,1,2) [1..4] and (2,2,2) [5..12] along dim 1 */
    dfs_tensor *ca = wrap(g, (float[]){1, 2, 3, 4}, 3, (int[]){2, 1, 2});
    dfs_tensor *cb = wrap(g, (float[]){5, 6, 7, 8, 9, 10, 11, 12}, 3, (int[]){2, 2, 2});
    y = dfs_concat(g, ca, cb, 1);
    check_shape("concat dim1", y, 3, (int[]){2, 3, 2});
    check_values("concat dim1", y, (float[]){1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}, 12);
    /* along the last dim: (2,1) [1,2] and (2,2) [3,4,5,6] */
    y = dfs_concat(g, wrap(g, (float[]){1, 2}, 2, (int[]){2, 1}),
                   wrap(g, (float[]){3, 4, 5, 6}, 2, (int[]){2, 2}), -1);
    check_shape("concat last", y, 2, (int[]){2, 3});
    check_values("concat last", y, (float[]){1, 3, 4, 2, 5, 6}, 6);
    /* along dim 0: appended */
    y = dfs_concat(g, wrap(g, (float[]){1, 2}, 2, (int[]){1, 2}),
                   wrap(g, (float[]){3, 4, 5, 6}, 2, (int[]){2, 2}), 0);
    check_shape("concat dim0", y, 2, (int[]){3, 2});
    check_values("concat dim0", y, (float[]){1, 2, 3, 4, 5, 6}, 6);

    /* slice of (2,3,2) = 0..11 */
    float r12[12];
    for (int i = 0; i < 12; i++) r12[i] = (float)i;
    dfs_tensor *sx = wrap(g, r12, 3, (int[]){2, 3, 2});
    y = dfs_slice(g, sx, 1, 1, 2);
    check_shape("slice dim1", y, 3, (int[]){2, 2, 2});
    check_values("slice dim1", y, (float[]){2, 3, 4, 5, 8, 9, 10, 11}, 8);
    y = dfs_slice(g, sx, 2, 1, 1);
    check_values("slice dim2", y, (float[]){1, 3, 5, 7, 9, 11}, 6);
    y = dfs_slice(g, sx, 0, 1, 1);
    check_values("slice dim0", y, (float[]){6, 7, 8, 9, 10, 11}, 6);

    /* reshape shares the data */
    y = dfs_reshape(g, sx, 2, (int[]){3, 4});
    check_shape("reshape", y, 2, (int[]){3, 4});
    CHECK(y->data == sx->data, "reshape copied the data");

    dfs_graph_free(g);
}

/* ---- 2. gradient checks ------------------------------------------------------------------------
 */

typedef struct {
    int stride, pad, bias, is1d;
} conv_args;

static dfs_tensor *f_conv(dfs_graph *g, dfs_tensor **in, void *user) {
    conv_args *a = user;
    dfs_tensor *b = a->bias ? in[2] : NULL;
    return a->is1d ? dfs_conv1d(g, in[0], in[1], b, a->stride, a->pad)
                   : dfs_conv2d(g, in[0], in[1], b, a->stride, a->pad);
}

static void gc_conv(int N, int Ci, int H, int W, int Co, int KH, int KW, int stride, int pad,
                    int bias, int x_grad) {
    dfs_tensor *in[3];
    in[0] = gc_input(4, (int[]){N, Ci, H, W}, &rng, 1.0f);
    in[1] = gc_input(4, (int[]){Co, Ci, KH, KW}, &rng, 0.5f);
    in[2] = gc_input(1, (int[]){Co}, &rng, 0.5f);
    in[0]->requires_grad = x_grad;
    conv_args a = {stride, pad, bias, 0};
    char name[128];
    snprintf(name, sizeof name, "conv2d N%d Ci%d %dx%d Co%d k%dx%d s%d p%d bias%d xgrad%d", N, Ci,
             H, W, Co, KH, KW, stride, pad, bias, x_grad);
    gradcheck(name, f_conv, in, bias ? 3 : 2, &a, GC_H, GC_TOL);
    if (!x_grad) {
        /* x does not require grad: backward must leave its buffer alone */
        int touched = 0;
        for (size_t i = 0; i < in[0]->n; i++) touched |= in[0]->grad[i] != 0;
        CHECK(!touched, "%s: wrote a gradient into x", name);
    }
    for (int i = 0; i < 3; i++) gc_input_free(in[i]);
}

static void gc_conv1d(int N, int Ci, int L, int Co, int K, int stride, int pad, int bias) {
    dfs_tensor *in[3];
    in[0] = gc_input(3, (int[]){N, Ci, L}, &rng, 1.0f);
    in[1] = gc_input(3, (int[]){Co, Ci, K}, &rng, 0.5f);
    in[2] = gc_input(1, (int[]){Co}, &rng, 0.5f);
    conv_args a = {stride, pad, bias, 1};
    char name[128];
    snprintf(name, sizeof name, "conv1d N%d Ci%d L%d Co%d k%d s%d p%d bias%d", N, Ci, L, Co, K,
             stride, pad, bias);
    gradcheck(name, f_conv, in, bias ? 3 : 2, &a, GC_H, GC_TOL);
    for (int i = 0; i < 3; i++) gc_input_free(in[i]);
}

static dfs_tensor *f_linear(dfs_graph *g, dfs_tensor **in, void *user) {
    int bias = *(int *)user;
    return dfs_linear(g, in[0], in[1], bias ? in[2] : NULL);
}

static void gc_linear(int ndim, const int *xshape, int O, int bias) {
    int I = xshape[ndim - 1];
    dfs_tensor *in[3];
    in[0] = gc_input(ndim, xshape, &rng, 1.0f);
    in[1] = gc_input(2, (int[]){O, I}, &rng, 0.5f);
    in[2] = gc_input(1, (int[]){O}, &rng, 0.5f);
    char name[128];
    snprintf(name, sizeof name, "linear ndim%d I%d O%d bias%d", ndim, I, O, bias);
    gradcheck(name, f_linear, in, bias ? 3 : 2, &bias, GC_H, GC_TOL);
    for (int i = 0; i < 3; i++) gc_input_free(in[i]);
}

static dfs_tensor *f_bmm(dfs_graph *g, dfs_tensor **in, void *user) {
    int *t = user;
    return dfs_bmm(g, in[0], in[1], t[0], t[1]);
}

static void gc_bmm(int B, int M, int K, int N, int ta, int tb) {
    dfs_tensor *in[2];
    in[0] = gc_input(3, ta ? (int[]){B, K, M} : (int[]){B, M, K}, &rng, 1.0f);
    in[1] = gc_input(3, tb ? (int[]){B, N, K} : (int[]){B, K, N}, &rng, 1.0f);
    int t[2] = {ta, tb};
    char name[128];
    snprintf(name, sizeof name, "bmm B%d M%d K%d N%d ta%d tb%d", B, M, K, N, ta, tb);
    gradcheck(name, f_bmm, in, 2, t, GC_H, GC_TOL);
    for (int i = 0; i < 2; i++) gc_input_free(in[i]);
}

typedef struct {
    int op, dim, start, len, factor;
    int ndim, shape[DFS_MAXDIM];
} shape_args;

enum { OP_RESHAPE, OP_CONCAT, OP_SLICE, OP_UPSAMPLE };

static dfs_tensor *f_shape(dfs_graph *g, dfs_tensor **in, void *user) {
    shape_args *a = user;
    switch (a->op) {
    case OP_RESHAPE: {
        /* reshape alone, or followed by a slice that reads the new layout (len > 0) */
        dfs_tensor *r = dfs_reshape(g, in[0], a->ndim, a->shape);
        return a->len ? dfs_slice(g, r, 1, a->start, a->len) : r;
    }
    case OP_CONCAT: return dfs_concat(g, in[0], in[1], a->dim);
    case OP_SLICE: return dfs_slice(g, in[0], a->dim, a->start, a->len);
    default: return dfs_upsample_nearest(g, in[0], a->factor);
    }
}

static void gc_shape_ops(void) {
    /* reshape (2,3,4) -> (4,6), then all of it or columns 1..4 */
    for (int len = 0; len <= 4; len += 4) {
        dfs_tensor *x = gc_input(3, (int[]){2, 3, 4}, &rng, 1.0f);
        shape_args a = {.op = OP_RESHAPE, .start = 1, .len = len, .ndim = 2, .shape = {4, 6}};
        gradcheck(len ? "reshape+slice" : "reshape", f_shape, &x, 1, &a, GC_H, GC_TOL);
        gc_input_free(x);
    }
    /* concat along each dim of (2,3,4) + (2,3,4) with that dim resized */
    for (int dim = 0; dim < 3; dim++) {
        int sa[3] = {2, 3, 4}, sb[3] = {2, 3, 4};
        sb[dim] = dim + 1;
        dfs_tensor *in[2] = {gc_input(3, sa, &rng, 1.0f), gc_input(3, sb, &rng, 1.0f)};
        shape_args a = {.op = OP_CONCAT, .dim = dim};
        char name[128];
        snprintf(name, sizeof name, "concat dim%d", dim);
        gradcheck(name, f_shape, in, 2, &a, GC_H, GC_TOL);
        gc_input_free(in[0]);
        gc_input_free(in[1]);
    }
    /* slice along each dim of (3,4,5,2) */
    for (int dim = 0; dim < 4; dim++) {
        int shape[4] = {3, 4, 5, 2};
        dfs_tensor *x = gc_input(4, shape, &rng, 1.0f);
        shape_args a = {.op = OP_SLICE, .dim = dim, .start = 1, .len = shape[dim] - 1 > 1 ? 2 : 1};
        char name[128];
        snprintf(name, sizeof name, "slice dim%d", dim);
        gradcheck(name, f_shape, &x, 1, &a, GC_H, GC_TOL);
        gc_input_free(x);
    }
    for (int factor = 1; factor <= 3; factor++) {
        dfs_tensor *x = gc_input(4, (int[]){2, 3, 3, 2}, &rng, 1.0f);
        shape_args a = {.op = OP_UPSAMPLE, .factor = factor};
        char name[128];
        snprintf(name, sizeof name, "upsample x%d", factor);
        gradcheck(name, f_shape, &x, 1, &a, GC_H, GC_TOL);
        gc_input_free(x);
    }
}

static void test_gradients(void) {
    /* conv2d: kernels 1/3/5 and non-square, stride 1/2, pad 0/1/2, bias or not */
    gc_conv(2, 2, 5, 6, 3, 3, 3, 1, 1, 1, 1);
    gc_conv(2, 2, 5, 6, 3, 3, 3, 2, 0, 1, 1);
    gc_conv(1, 3, 7, 5, 2, 5, 5, 2, 2, 1, 1);
    gc_conv(2, 2, 4, 5, 3, 2, 3, 1, 1, 0, 1);
    gc_conv(2, 3, 4, 3, 2, 1, 1, 1, 0, 1, 1);  /* 1x1 direct-GEMM path */
    gc_conv(2, 3, 5, 4, 2, 1, 1, 2, 1, 1, 1);  /* 1x1 strided, padded: im2col path */
    gc_conv(2, 2, 5, 5, 3, 3, 3, 1, 1, 1, 0);  /* x without grad */
    gc_conv(2, 3, 3, 3, 2, 1, 1, 1, 0, 0, 0);  /* ... on the 1x1 path */
    size_t old = dfs_conv_set_chunk_floats(1); /* one image per GEMM */
    gc_conv(3, 2, 4, 4, 2, 3, 3, 1, 1, 1, 1);
    dfs_conv_set_chunk_floats(old);
    /* conv1d */
    gc_conv1d(2, 2, 7, 3, 3, 1, 1, 1);
    gc_conv1d(2, 3, 8, 2, 4, 2, 2, 0);
    gc_conv1d(1, 2, 5, 2, 1, 1, 0, 1);
    /* linear with 1, 2 and 3 dims */
    gc_linear(2, (int[]){3, 4}, 5, 1);
    gc_linear(3, (int[]){2, 3, 4}, 2, 1);
    gc_linear(3, (int[]){2, 2, 3}, 4, 0);
    gc_linear(1, (int[]){3}, 2, 1);
    /* bmm, all transposes */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) gc_bmm(2, 3, 4, 2, ta, tb);
    gc_shape_ops();
}

/* ---- 3. fast conv against the reference
 * ---------------------------------------------------------- */

static void fill(float *p, size_t n) { dfs_rng_fill_normal(&rng, p, n); }

static void conv_vs_ref(int N, int Ci, int H, int W, int Co, int KH, int KW, int stride, int pad,
                        size_t chunk) {
    const int Ho = (H + 2 * pad - KH) / stride + 1, Wo = (W + 2 * pad - KW) / stride + 1;
    dfs_tensor *x = gc_input(4, (int[]){N, Ci, H, W}, &rng, 1.0f);
    dfs_tensor *w = gc_input(4, (int[]){Co, Ci, KH, KW}, &rng, 0.3f);
    dfs_tensor *b = gc_input(1, (int[]){Co}, &rng, 0.3f);
    size_t no = (size_t)N * Co * Ho * Wo;
    float *ref = malloc(no * sizeof(float)), *dout = malloc(no * sizeof(float));
    float *dx = calloc(x->n, sizeof(float)), *dw = calloc(w->n, sizeof(float)),
          *db = calloc(b->n, sizeof(float));
    fill(dout, no);

    size_t old = dfs_conv_set_chunk_floats(chunk);
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *y = dfs_conv2d(g, x, w, b, stride, pad);
    dfs_backward_grad(g, y, dout);
    dfs_conv_set_chunk_floats(old);

    dfs_conv2d_reference(ref, x->data, w->data, b->data, N, Ci, H, W, Co, KH, KW, stride, pad);
    dfs_conv2d_reference_backward(dx, dw, db, dout, x->data, w->data, N, Ci, H, W, Co, KH, KW,
                                  stride, pad);
    /* The sums of absolute terms: the reference on absolute values. Per element, the forward is
     * a float32 sum of Ci KH KW products and the bias (the reference sums in double: only its
     * final rounding counts); dx sums at most Co KH KW products, dw and db N Ho Wo, in float32
     * on both sides (the reference backward accumulates in float). */
    float *ax = abs_copy(x->data, x->n), *aw = abs_copy(w->data, w->n), *ab = abs_copy(b->data, b->n);
    float *ad = abs_copy(dout, no), *ay = malloc(no * sizeof(float));
    float *adx = calloc(x->n, sizeof(float)), *adw = calloc(w->n, sizeof(float)),
          *adb = calloc(b->n, sizeof(float));
    dfs_conv2d_reference(ay, ax, aw, ab, N, Ci, H, W, Co, KH, KW, stride, pad);
    dfs_conv2d_reference_backward(adx, adw, adb, ad, ax, aw, N, Ci, H, W, Co, KH, KW, stride, pad);
    const double npos = (double)N * Ho * Wo;
    double e[4] = {y->n == no ? worst_ratio(y->data, ref, ay, no, Ci * KH * KW + 1, 1) : 1e30,
                   worst_ratio(x->grad, dx, adx, x->n, Co * KH * KW, 2),
                   worst_ratio(w->grad, dw, adw, w->n, npos, 2),
                   worst_ratio(b->grad, db, adb, b->n, npos, 2)};
    const char *what[4] = {"out", "dx", "dw", "db"};
    for (int i = 0; i < 4; i++)
        CHECK_RATIO(e[i],
                    "fast vs reference conv N%d Ci%d %dx%d Co%d k%dx%d s%d p%d chunk %zu: %s error "
                    "%.3g of its bound",
                    N, Ci, H, W, Co, KH, KW, stride, pad, chunk, what[i], e[i]);
    free(ax), free(aw), free(ab), free(ad), free(ay), free(adx), free(adw), free(adb);
    dfs_graph_free(g);
    free(ref);
    free(dout);
    free(dx);
    free(dw);
    free(db);
    gc_input_free(x);
    gc_input_free(w);
    gc_input_free(b);
}

static void conv_vs_reference_all(void) {
    static const int kernels[][2] = {{1, 1}, {3, 3}, {5, 5}, {1, 3}, {3, 5}, {5, 2}};
    /* chunk budgets: one image per GEMM, two (N = 3 leaves a remainder of one), all */
    const int N = 3, Ci = 3, H = 7, W = 9, Co = 4;
    for (size_t kk = 0; kk < sizeof kernels / sizeof kernels[0]; kk++)
        for (int stride = 1; stride <= 2; stride++)
            for (int pad = 0; pad <= 2; pad++) {
                const int KH = kernels[kk][0], KW = kernels[kk][1];
                const int Ho = (H + 2 * pad - KH) / stride + 1,
                          Wo = (W + 2 * pad - KW) / stride + 1;
                const size_t per_image = (size_t)(Ci * KH * KW > Co ? Ci * KH * KW : Co) * Ho * Wo;
                conv_vs_ref(N, Ci, H, W, Co, KH, KW, stride, pad, 1);
                conv_vs_ref(N, Ci, H, W, Co, KH, KW, stride, pad, 2 * per_image);
                conv_vs_ref(N, Ci, H, W, Co, KH, KW, stride, pad, (size_t)1 << 20);
            }
    /* images smaller than the kernel or the padding */
    conv_vs_ref(2, 2, 2, 3, 3, 5, 5, 1, 2, (size_t)1 << 20);
    conv_vs_ref(2, 2, 2, 3, 3, 5, 5, 2, 2, 1);
    conv_vs_ref(2, 2, 1, 1, 3, 3, 3, 1, 2, (size_t)1 << 20);
    conv_vs_ref(2, 2, 1, 2, 3, 1, 3, 2, 2, 1);
    /* U-Net-like sizes through multi-threaded BLAS */
    conv_vs_ref(4, 16, 16, 16, 32, 3, 3, 1, 1, (size_t)1 << 20);
    conv_vs_ref(4, 16, 16, 16, 32, 3, 3, 1, 1, 16 * 9 * 256 * 2);
    conv_vs_ref(4, 32, 16, 16, 16, 3, 3, 2, 1, (size_t)1 << 20);
    conv_vs_ref(4, 32, 8, 8, 16, 1, 1, 1, 0, (size_t)1 << 20);
    /* small images: several images per GEMM and per thread (7x7: 6 images give 294 columns),
     * with a remainder chunk, and per-thread dW partial sums */
    conv_vs_ref(11, 8, 7, 7, 16, 3, 3, 1, 1, (size_t)1 << 20);
    conv_vs_ref(11, 8, 7, 7, 16, 1, 1, 1, 0, (size_t)1 << 20);
    conv_vs_ref(9, 8, 14, 14, 8, 3, 3, 2, 1, (size_t)1 << 20);
}

/* Every path: the AVX-512 implicit-GEMM kernels (stride-1 "same" convolutions, where the CPU
 * has AVX-512), their portable loops, and im2col + BLAS (everything else, and all of it with
 * DFS_KERNELS_BLAS); then the kernels the program started with (DFS_KERNELS, DFS_CPU) again. */
static void test_conv_vs_reference(void) {
    const dfs_kernels kern = dfs_get_kernels();
    dfs_set_kernels(DFS_KERNELS_FAST);
    conv_vs_reference_all();
    if (dfs_igemm_avx512()) {
        dfs_igemm_force_portable(1);
        conv_vs_reference_all();
        dfs_igemm_force_portable(0);
    }
    dfs_set_kernels(DFS_KERNELS_BLAS);
    conv_vs_reference_all();
    dfs_set_kernels(kern);
}

/* conv1d against a naive loop */
static void conv1d_vs_naive(void) {
    const int N = 2, Ci = 3, L = 11, Co = 4, K = 3;
    for (int stride = 1; stride <= 2; stride++)
        for (int pad = 0; pad <= 2; pad++) {
            dfs_graph *g = dfs_graph_new();
            dfs_tensor *x = dfs_tensor_new(g, 3, (int[]){N, Ci, L});
            dfs_tensor *w = dfs_tensor_new(g, 3, (int[]){Co, Ci, K});
            dfs_tensor *b = dfs_tensor_new(g, 1, (int[]){Co});
            fill(x->data, x->n);
            fill(w->data, w->n);
            fill(b->data, b->n);
            dfs_tensor *y = dfs_conv1d(g, x, w, b, stride, pad);
            const int Lo = (L + 2 * pad - K) / stride + 1;
            CHECK(y->shape[2] == Lo, "conv1d s%d p%d: Lo %d (want %d)", stride, pad, y->shape[2], Lo);
            const int Lc = y->shape[2] == Lo ? Lo : 0;
            /* each output a float32 sum of Ci K products and the bias, against double */
            double worst = 0;
            for (int n = 0; n < N; n++)
                for (int co = 0; co < Co; co++)
                    for (int o = 0; o < Lc; o++) {
                        double s = b->data[co], a = fabs(b->data[co]);
                        for (int ci = 0; ci < Ci; ci++)
                            for (int k = 0; k < K; k++) {
                                int i = o * stride - pad + k;
                                if (i >= 0 && i < L) {
                                    double t = (double)w->data[(co * Ci + ci) * K + k] *
                                               x->data[(n * Ci + ci) * L + i];
                                    s += t, a += fabs(t);
                                }
                            }
                        double d = fabs(y->data[(n * Co + co) * Lo + o] - s);
                        worst = max_err(worst, err_ratio(d, sum_err(Ci * K + 1, a) + U32 * fabs(s)));
                    }
            CHECK_RATIO(worst, "conv1d s%d p%d: error %.3g of its bound", stride, pad, worst);
            dfs_graph_free(g);
        }
}

static void test_conv1d_vs_naive(void) {
    const dfs_kernels kern = dfs_get_kernels();
    dfs_set_kernels(DFS_KERNELS_FAST);
    conv1d_vs_naive();
    dfs_set_kernels(DFS_KERNELS_BLAS);
    conv1d_vs_naive();
    dfs_set_kernels(kern);
}

/* ---- 3b. the implicit-GEMM kernels and the fused convolution ----------------------------------
 * The kernels against a double-precision sum, on sizes with every kind of tail: rows not a
 * multiple of 8 (forward tile) or 4 (dW tile), K not a multiple of 6, positions not a multiple
 * of 16, lanes that are not outputs. Every path the CPU has is checked: the portable loops
 * always, the AVX-512 kernels where the CPU has AVX-512 (said in the output where it does
 * not). Each element within sum_err of its sum. Then dfs_conv2d_fused against the composition
 * of single ops it replaces (dfs_set_kernels(DFS_KERNELS_BLAS)): outputs and the gradients of
 * all eight inputs, with and without existing gradients, in training mode with dropout (the
 * same mask must come out), and through the portable kernels; and against finite
 * differences. */

/* The kernel paths to check: 0 = portable loops, 1 = AVX-512 where the CPU has it. */
static int igemm_paths(void) {
    static int said;
    int old = dfs_igemm_force_portable(0), avx = dfs_igemm_avx512();
    dfs_igemm_force_portable(old);
    if (!avx && !said++)
        printf("test_ops_a: this CPU has no AVX-512: the implicit-GEMM kernels are checked on "
               "their portable loops only\n");
    return avx ? 2 : 1;
}

static void test_igemm_kernels(void) {
    static const int cases[][5] = {/* rows, K, H, W, pw */
                                   {5, 7, 3, 5, 1},  {8, 12, 4, 13, 1}, {13, 9, 6, 6, 1},
                                   {16, 30, 7, 7, 1}, {3, 1, 1, 37, 0}, {1, 6, 2, 16, 0},
                                   {9, 25, 5, 9, 2}};
    const int npath = igemm_paths();
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int R = cases[ci][0], K = cases[ci][1], H = cases[ci][2], W = cases[ci][3];
        const int pw = cases[ci][4], Wp = W + 2 * pw, nq = (H - 1) * Wp + W, nvec = (nq + 15) / 16;
        const int span = nq + 3 * Wp; /* each B row reads nq floats from its own offset */
        float *A = malloc((size_t)R * K * sizeof(float)), *B = malloc((size_t)K * span * sizeof(float));
        float *ap = malloc(dfs_igemm_pack_floats(R, K) * sizeof(float));
        float *bias = malloc((size_t)R * sizeof(float)), *res = malloc((size_t)R * H * W * sizeof(float));
        float *y = malloc((size_t)R * H * W * sizeof(float)), *dw = malloc((size_t)R * K * sizeof(float));
        float *dy = malloc((size_t)R * nq * sizeof(float));
        uint16_t *vm = malloc((size_t)nvec * sizeof(uint16_t));
        int *vd = malloc((size_t)nvec * sizeof(int));
        fill(A, (size_t)R * K);
        fill(B, (size_t)K * span);
        fill(bias, (size_t)R);
        fill(res, (size_t)R * H * W);
        fill(dy, (size_t)R * nq);
        dfs_igemm_pack(ap, A, R, K);
        dfs_igemm_vecmap(vm, vd, nq, Wp, W);
        const float **src = malloc((size_t)K * sizeof(float *));
        const float **dyr = malloc((size_t)R * sizeof(float *));
        float **dst = malloc((size_t)R * sizeof(float *));
        const float **rs = malloc((size_t)R * sizeof(float *));
        for (int k = 0; k < K; k++) src[k] = B + (size_t)k * span + (k * 7) % (3 * Wp);
        for (int r = 0; r < R; r++) dyr[r] = dy + (size_t)r * nq;
        for (int path = 0; path < npath; path++) {
            int old = dfs_igemm_force_portable(path == 0);
            for (size_t i = 0; i < (size_t)R * H * W; i++) y[i] = 0.5f;
            memset(dw, 0, (size_t)R * K * sizeof(float));
            for (int r = 0; r < R; r++) {
                dst[r] = y + (size_t)r * H * W;
                rs[r] = res + (size_t)r * H * W;
            }
            /* y = 0.5 + A B + bias + res at the output positions only */
            dfs_igemm_fwd p = {.rows = R, .K = K, .nq = nq, .apack = ap, .src = src, .vmask = vm,
                               .vdst = vd, .dst = dst, .bias = bias, .res = rs, .accumulate = 1};
            dfs_igemm_fwd_run(&p);
            dfs_igemm_dw d = {.rows = R, .K = K, .nq = nq, .dy = dyr, .src = src, .dw = dw};
            dfs_igemm_dw_run(&d);
            dfs_igemm_force_portable(old);
            /* forward: a float32 sum of K products, the bias, the residual and the 0.5 there;
             * dW: of nq products (the reference sums in double) */
            double m = 0, mw = 0;
            for (int r = 0; r < R; r++)
                for (int oh = 0; oh < H; oh++)
                    for (int ow = 0; ow < W; ow++) {
                        double rv = res[((size_t)r * H + oh) * W + ow];
                        double want = 0.5 + bias[r] + rv, a = 0.5 + fabs(bias[r]) + fabs(rv);
                        for (int k = 0; k < K; k++) {
                            double t = (double)A[(size_t)r * K + k] * src[k][oh * Wp + ow];
                            want += t, a += fabs(t);
                        }
                        double got = y[((size_t)r * H + oh) * W + ow];
                        m = max_err(m, err_ratio(fabs(got - want), sum_err(K + 3, a) + U32 * fabs(want)));
                    }
            for (int r = 0; r < R; r++)
                for (int k = 0; k < K; k++) {
                    double want = 0, a = 0;
                    for (int q = 0; q < nq; q++) {
                        double t = (double)dyr[r][q] * src[k][q];
                        want += t, a += fabs(t);
                    }
                    double got = dw[(size_t)r * K + k];
                    mw = max_err(mw, err_ratio(fabs(got - want), sum_err(nq, a) + U32 * fabs(want)));
                }
            CHECK_RATIO(m, "igemm %s R%d K%d %dx%d pw%d: forward error %.3g of its bound",
                        path ? "avx512" : "portable", R, K, H, W, pw, m);
            CHECK_RATIO(mw, "igemm %s R%d K%d %dx%d pw%d: dW error %.3g of its bound",
                        path ? "avx512" : "portable", R, K, H, W, pw, mw);
        }
        free(y), free(dw);
        free(A), free(B), free(ap), free(bias), free(res), free(dy), free(vm), free(vd);
        free(src), free(dyr), free(dst), free(rs);
    }
}

/* The dW kernel over several segments (one per image of a backward chunk): the gaps between
 * segments hold huge values that must not be read (one read makes the error ~1e30). */
static void test_igemm_dw_segments(void) {
    const int R = 6, K = 13, nq = 37, nseg = 3, stride = 50, len = nseg * stride + 8;
    float *dy = malloc((size_t)R * len * sizeof(float)), *B = malloc((size_t)K * len * sizeof(float));
    fill(dy, (size_t)R * len);
    fill(B, (size_t)K * len);
    for (int sg = 0; sg < nseg; sg++)
        for (int q = nq; q < stride; q++) {
            for (int r = 0; r < R; r++) dy[(size_t)r * len + sg * stride + q] = 1e30f;
            for (int k = 0; k < K; k++) B[(size_t)k * len + sg * stride + q] = 1e30f;
        }
    const float *dyr[6], *src[13];
    for (int r = 0; r < R; r++) dyr[r] = dy + (size_t)r * len;
    for (int k = 0; k < K; k++) src[k] = B + (size_t)k * len;
    const int npath = igemm_paths();
    for (int path = 0; path < npath; path++) {
        int old = dfs_igemm_force_portable(path == 0);
        float dw[6 * 13] = {0};
        dfs_igemm_dw d = {.rows = R, .K = K, .nq = nq, .dy = dyr, .src = src, .dw = dw,
                          .nseg = nseg, .seg_stride = stride};
        dfs_igemm_dw_run(&d);
        dfs_igemm_force_portable(old);
        /* a float32 sum of nseg nq products, against double */
        double m = 0;
        for (int r = 0; r < R; r++)
            for (int k = 0; k < K; k++) {
                double want = 0, a = 0;
                for (int sg = 0; sg < nseg; sg++)
                    for (int q = 0; q < nq; q++) {
                        double t = (double)dyr[r][sg * stride + q] * src[k][sg * stride + q];
                        want += t, a += fabs(t);
                    }
                double e = fabs(dw[r * K + k] - want);
                m = max_err(m, err_ratio(e, sum_err(nseg * nq, a) + U32 * fabs(want)));
            }
        CHECK_RATIO(m, "igemm dW over %d segments (%s): error %.3g of its bound", nseg,
                    path ? "avx512" : "portable", m);
    }
    free(dy);
    free(B);
}

typedef struct {
    int N, C1, C2, H, W, Co, k, norm, groups, up, tadd, res;
    float dropout;
} fused_case;

/* Inputs of a fused case: x, x2, w, b, gamma, beta, tadd, res (NULL where unused). */
static void fused_inputs(const fused_case *c, dfs_tensor **in) {
    const int C = c->C1 + c->C2, Hc = c->H * c->up, Wc = c->W * c->up;
    in[0] = gc_input(4, (int[]){c->N, c->C1, c->H, c->W}, &rng, 1.0f);
    in[1] = c->C2 ? gc_input(4, (int[]){c->N, c->C2, c->H, c->W}, &rng, 1.0f) : NULL;
    in[2] = gc_input(4, (int[]){c->Co, C, c->k, c->k}, &rng, 0.4f);
    in[3] = gc_input(1, (int[]){c->Co}, &rng, 0.5f);
    in[4] = c->norm ? gc_input(1, (int[]){C}, &rng, 0.5f) : NULL;
    in[5] = c->norm ? gc_input(1, (int[]){C}, &rng, 0.5f) : NULL;
    in[6] = c->tadd ? gc_input(2, (int[]){c->N, c->Co}, &rng, 1.0f) : NULL;
    in[7] = c->res ? gc_input(4, (int[]){c->N, c->Co, Hc, Wc}, &rng, 1.0f) : NULL;
    if (in[4])
        for (int i = 0; i < C; i++) in[4]->data[i] += 1.0f; /* gamma near 1 */
}

static dfs_tensor *fused_apply(dfs_graph *g, dfs_tensor **in, void *user) {
    const fused_case *c = user;
    const dfs_conv_fused f = {.x2 = in[1], .norm = c->norm, .gamma = in[4], .beta = in[5],
                              .groups = c->groups, .eps = 1e-5f, .dropout = c->dropout,
                              .up = c->up, .tadd = in[6], .res = in[7]};
    return dfs_conv2d_fused(g, in[0], in[2], in[3], &f);
}

/* Forward and backward of one case with the current kernels; out (n) and grads (8 arrays)
 * are malloc'ed copies. pre: existing gradients the backward adds to (or zeros). */
static float *fused_run(const fused_case *c, dfs_tensor **in, const float *dout, size_t *n,
                        float **grads, int pre) {
    dfs_graph *g = dfs_graph_new();
    dfs_rng r;
    dfs_rng_seed(&r, 77);
    dfs_graph_set_training(g, c->dropout > 0.0f, &r);
    for (int i = 0; i < 8; i++)
        if (in[i])
            for (size_t e = 0; e < in[i]->n; e++) in[i]->grad[e] = pre ? 0.25f : 0.0f;
    dfs_tensor *y = fused_apply(g, in, (void *)c);
    dfs_backward_grad(g, y, dout);
    *n = y->n;
    float *out = malloc(y->n * sizeof(float));
    memcpy(out, y->data, y->n * sizeof(float));
    for (int i = 0; i < 8; i++) {
        grads[i] = NULL;
        if (!in[i]) continue;
        grads[i] = malloc(in[i]->n * sizeof(float));
        memcpy(grads[i], in[i]->grad, in[i]->n * sizeof(float));
    }
    dfs_graph_free(g);
    return out;
}

/* Error bounds of a fused case: for the output and each input's gradient, per element, how far
 * two float32 evaluations (the fused op and the composed single ops) can lie apart. Computed
 * in double along the op's own chain, from the magnitudes of what each sum adds up:
 *   pre(x)  a = silu(gamma xhat + beta) (or without SiLU, or x itself): the GroupNorm
 *           statistics are summed in double and rounded (u each), then about 8 roundings and
 *           the exp of SiLU (relative error EPS_EXP) per element:
 *           |da| <= (EPS_EXP + 8u) (|gamma| (|x| + 2|mu|) rstd + |beta| + |a|); dropout's scale
 *           1/(1-p) multiplies it (every element counted as kept, an upper bound);
 *   conv    each output a float32 sum of C k^2 products, the bias, tadd and res: sum_err of
 *           it, plus sum |w| |da| carried in; dW and db sums over N H W positions, dtadd over
 *           H W, the input gradient over Co k^2 (times 4 with the upsampling);
 *   norm    the gradient through SiLU' (EPS_EXP again) and GroupNorm's backward
 *           rstd (gamma dz - mean(gamma dz) - xhat mean(gamma dz xhat)), whose group sums the
 *           library takes in double: the errors of dz carried through, a few roundings of each
 *           term, and the error 3u (|x| + |mu|) rstd of xhat.
 * Every bound is for both sides (factor 2). */
#define EPS_EXP 3e-7 /* relative error of dfs_expf, checked in tests/unit/test_ops_b.c */
typedef struct {
    double *out, *g[8];
} fused_bound;

static void fused_bounds(const fused_case *c, dfs_tensor **in, const float *dout, int pre,
                         fused_bound *fb) {
    const int N = c->N, C = c->C1 + c->C2, H = c->H, W = c->W, S = H * W, up = c->up;
    const int Hc = H * up, Wc = W * up, Sc = Hc * Wc, Co = c->Co, k = c->k, pd = k / 2;
    const double P = pre ? 0.25 : 0.0, u = U32, ea_rel = EPS_EXP + 8 * u;
    const double s = c->dropout > 0 ? 1.0 / (1.0 - c->dropout) : 1.0;
    const float *w = in[2]->data;
    const size_t na = (size_t)N * C * S, nu = (size_t)N * C * Sc, no = (size_t)N * Co * Sc;
    double *x = malloc(na * sizeof(double)), *a = calloc(na, sizeof(double)),
           *ea = calloc(na, sizeof(double)), *xh = calloc(na, sizeof(double)),
           *exh = calloc(na, sizeof(double)), *z = calloc(na, sizeof(double));
    double *rstd = calloc((size_t)N * C, sizeof(double));
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < S; i++)
                x[((size_t)n * C + ch) * S + i] =
                    ch < c->C1 ? in[0]->data[((size_t)n * c->C1 + ch) * S + i]
                               : in[1]->data[((size_t)n * c->C2 + ch - c->C1) * S + i];
    /* pre(x) and its error, scaled by dropout's 1/(1-p) */
    if (c->norm) {
        const int Cg = C / c->groups;
        for (int n = 0; n < N; n++)
            for (int gg = 0; gg < c->groups; gg++) {
                const size_t o = ((size_t)n * C + gg * Cg) * S, M = (size_t)Cg * S;
                double mu = 0, var = 0;
                for (size_t i = 0; i < M; i++) mu += x[o + i];
                mu /= M;
                for (size_t i = 0; i < M; i++) var += (x[o + i] - mu) * (x[o + i] - mu);
                double r = 1.0 / sqrt(var / M + 1e-5);
                for (size_t i = 0; i < M; i++) {
                    const int ch = gg * Cg + (int)(i / S);
                    const double gm = in[4]->data[ch], bt = in[5]->data[ch];
                    rstd[(size_t)n * C + ch] = r;
                    xh[o + i] = (x[o + i] - mu) * r;
                    exh[o + i] = 3 * u * (fabs(x[o + i]) + fabs(mu)) * r;
                    z[o + i] = gm * xh[o + i] + bt;
                    a[o + i] = c->norm == 2 ? z[o + i] / (1 + exp(-z[o + i])) : z[o + i];
                    ea[o + i] = ea_rel * (fabs(gm) * (fabs(x[o + i]) + 2 * fabs(mu)) * r + fabs(bt) +
                                          fabs(a[o + i]));
                }
            }
    } else {
        memcpy(a, x, na * sizeof(double));
    }
    for (size_t i = 0; i < na; i++) ea[i] = s * ea[i] + (s != 1 ? u * s * fabs(a[i]) : 0), a[i] *= s;
    /* upsampled: (N, C, Hc, Wc) */
    double *au = malloc(nu * sizeof(double)), *eau = malloc(nu * sizeof(double));
    for (size_t nc = 0; nc < (size_t)N * C; nc++)
        for (int h = 0; h < Hc; h++)
            for (int wq = 0; wq < Wc; wq++) {
                au[nc * Sc + h * Wc + wq] = a[nc * S + (h / up) * W + wq / up];
                eau[nc * Sc + h * Wc + wq] = ea[nc * S + (h / up) * W + wq / up];
            }
    /* output */
    const double nf = (double)C * k * k + 3;
    for (int n = 0; n < N; n++)
        for (int co = 0; co < Co; co++)
            for (int h = 0; h < Hc; h++)
                for (int wq = 0; wq < Wc; wq++) {
                    double A = fabs(in[3]->data[co]), E = 0;
                    if (in[6]) A += fabs(in[6]->data[n * Co + co]);
                    if (in[7]) A += fabs(in[7]->data[(((size_t)n * Co + co) * Hc + h) * Wc + wq]);
                    for (int ch = 0; ch < C; ch++)
                        for (int kh = 0; kh < k; kh++)
                            for (int kw = 0; kw < k; kw++) {
                                int ih = h - pd + kh, iw = wq - pd + kw;
                                if (ih < 0 || ih >= Hc || iw < 0 || iw >= Wc) continue;
                                size_t ai = ((size_t)n * C + ch) * Sc + ih * Wc + iw;
                                double wv = fabs(w[((co * C + ch) * k + kh) * k + kw]);
                                A += wv * fabs(au[ai]), E += wv * eau[ai];
                            }
                    fb->out[(((size_t)n * Co + co) * Hc + h) * Wc + wq] =
                        2 * (sum_err(nf, A) + u * A + E);
                }
    /* res, tadd, b: sums of dout */
    const double npos = (double)N * Sc + 1;
    if (in[7])
        for (size_t i = 0; i < no; i++) fb->g[7][i] = 2 * u * (P + fabs(dout[i]));
    if (in[6])
        for (int n = 0; n < N; n++)
            for (int co = 0; co < Co; co++) {
                double A = P;
                for (int i = 0; i < Sc; i++) A += fabs(dout[((size_t)n * Co + co) * Sc + i]);
                fb->g[6][n * Co + co] = 2 * (sum_err(Sc + 1, A) + u * A);
            }
    for (int co = 0; co < Co; co++) {
        double A = P;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < Sc; i++) A += fabs(dout[((size_t)n * Co + co) * Sc + i]);
        fb->g[3][co] = 2 * (sum_err(npos, A) + u * A);
    }
    /* w: sums over positions of dout times the activation; the activation's gradient: sums
     * over Co k^2 of dout times w */
    double *Adau = calloc(nu, sizeof(double));
    for (int co = 0; co < Co; co++)
        for (int ch = 0; ch < C; ch++)
            for (int kh = 0; kh < k; kh++)
                for (int kw = 0; kw < k; kw++) {
                    const size_t wi = ((size_t)(co * C + ch) * k + kh) * k + kw;
                    double A = P, E = 0;
                    for (int n = 0; n < N; n++)
                        for (int h = 0; h < Hc; h++)
                            for (int wq = 0; wq < Wc; wq++) {
                                int ih = h - pd + kh, iw = wq - pd + kw;
                                if (ih < 0 || ih >= Hc || iw < 0 || iw >= Wc) continue;
                                size_t ai = ((size_t)n * C + ch) * Sc + ih * Wc + iw;
                                double d = dout[(((size_t)n * Co + co) * Hc + h) * Wc + wq];
                                A += fabs(d * au[ai]), E += fabs(d) * eau[ai];
                                Adau[ai] += fabs(d * w[wi]);
                            }
                    fb->g[2][wi] = 2 * (sum_err(npos, A) + u * A + E);
                }
    /* back through upsampling (a sum over up^2 copies) and dropout's scale */
    double *Ada = calloc(na, sizeof(double)), *Eda = calloc(na, sizeof(double));
    const double nda = (double)Co * k * k * up * up;
    for (size_t nc = 0; nc < (size_t)N * C; nc++)
        for (int h = 0; h < Hc; h++)
            for (int wq = 0; wq < Wc; wq++) {
                size_t i = nc * S + (h / up) * W + wq / up, j = nc * Sc + h * Wc + wq;
                Ada[i] += s * Adau[j];
            }
    for (size_t i = 0; i < na; i++) Eda[i] = 2 * (sum_err(nda, Ada[i]) + 2 * u * Ada[i]);
    /* the input gradients */
    double *gx = calloc(na, sizeof(double));
    if (!c->norm) {
        for (size_t i = 0; i < na; i++) gx[i] = Eda[i] + 2 * u * (P + Ada[i]);
    } else {
        const int Cg = C / c->groups;
        const size_t M = (size_t)Cg * S;
        double *Adz = malloc(na * sizeof(double)), *Edz = malloc(na * sizeof(double));
        for (size_t i = 0; i < na; i++) {
            double d = 1, m = 0;
            if (c->norm == 2) {
                double sg = 1 / (1 + exp(-z[i]));
                d = fabs(sg * (1 + z[i] * (1 - sg)));
                m = sg + fabs(z[i]) * sg * (1 - sg); /* the terms of silu' */
            }
            Adz[i] = d * Ada[i];
            Edz[i] = d * Eda[i] + 2 * (EPS_EXP + 6 * u) * m * Ada[i];
        }
        for (int ch = 0; ch < C; ch++) fb->g[4][ch] = fb->g[5][ch] = 0;
        for (int n = 0; n < N; n++)
            for (int gg = 0; gg < c->groups; gg++) {
                const size_t o = ((size_t)n * C + gg * Cg) * S;
                double mE = 0, mEx = 0, mA = 0, mAx = 0, mAe = 0;
                for (size_t i = 0; i < M; i++) {
                    const double gm = fabs(in[4]->data[gg * Cg + (int)(i / S)]);
                    mE += gm * Edz[o + i], mEx += gm * Edz[o + i] * fabs(xh[o + i]);
                    mA += gm * Adz[o + i], mAx += gm * Adz[o + i] * fabs(xh[o + i]);
                    mAe += gm * Adz[o + i] * exh[o + i];
                }
                mE /= M, mEx /= M, mA /= M, mAx /= M, mAe /= M;
                for (size_t i = 0; i < M; i++) {
                    const int ch = gg * Cg + (int)(i / S);
                    const double gm = fabs(in[4]->data[ch]), r = rstd[(size_t)n * C + ch];
                    const double ax = fabs(xh[o + i]);
                    gx[o + i] = r * (gm * Edz[o + i] + mE + ax * mEx) +
                                2 * 6 * u * (r * (gm * Adz[o + i] + mA + ax * mAx) + P) +
                                2 * r * (exh[o + i] * mAx + ax * mAe);
                    fb->g[4][ch] += Edz[o + i] * ax + 2 * Adz[o + i] * exh[o + i] + 2 * u * Adz[o + i] * ax;
                    fb->g[5][ch] += Edz[o + i] + 2 * u * Adz[o + i];
                }
            }
        for (int ch = 0; ch < C; ch++) fb->g[4][ch] += 2 * u * P, fb->g[5][ch] += 2 * u * P;
        free(Adz), free(Edz);
    }
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < S; i++) {
                double b = gx[((size_t)n * C + ch) * S + i];
                if (ch < c->C1) fb->g[0][((size_t)n * c->C1 + ch) * S + i] = b;
                else fb->g[1][((size_t)n * c->C2 + ch - c->C1) * S + i] = b;
            }
    free(x), free(a), free(ea), free(xh), free(exh), free(z), free(rstd), free(au), free(eau);
    free(Adau), free(Ada), free(Eda), free(gx);
}

/* worst |a - b| / bound over n elements (NaN if a has a NaN) */
static double bound_ratio(const float *a, const float *b, const double *bound, size_t n) {
    double r = 0;
    for (size_t i = 0; i < n; i++) r = max_err(r, err_ratio(fabs((double)a[i] - b[i]), bound[i]));
    return r;
}

static void fused_vs_composed(const fused_case *c) {
    static const char *names[8] = {"x", "x2", "w", "b", "gamma", "beta", "tadd", "res"};
    dfs_tensor *in[8];
    fused_inputs(c, in);
    const size_t no = (size_t)c->N * c->Co * c->H * c->up * c->W * c->up;
    float *dout = malloc(no * sizeof(float));
    fill(dout, no);
    fused_bound fb;
    fb.out = malloc(no * sizeof(double));
    for (int i = 0; i < 8; i++) fb.g[i] = in[i] ? malloc(in[i]->n * sizeof(double)) : NULL;
    for (int pre = 0; pre < 2; pre++) {
        size_t nr, nf, np;
        float *gr[8], *gf[8], *gp[8];
        fused_bounds(c, in, dout, pre, &fb);
        const dfs_kernels kern = dfs_get_kernels();
        dfs_set_kernels(DFS_KERNELS_BLAS);
        float *ref = fused_run(c, in, dout, &nr, gr, pre);
        dfs_set_kernels(DFS_KERNELS_FAST);
        float *fast = fused_run(c, in, dout, &nf, gf, pre);
        int old = dfs_igemm_force_portable(1);
        float *port = fused_run(c, in, dout, &np, gp, pre);
        dfs_igemm_force_portable(old);
        dfs_set_kernels(kern);
        char what[160];
        snprintf(what, sizeof what,
                 "fused N%d C%d+%d %dx%d Co%d k%d norm%d G%d up%d tadd%d res%d p%.1f grads%d", c->N,
                 c->C1, c->C2, c->H, c->W, c->Co, c->k, c->norm, c->groups, c->up, c->tadd, c->res,
                 (double)c->dropout, pre);
        /* each element within its bound (fused_bounds) of the composed ops */
        double e = nr == no && nf == no && np == no ? bound_ratio(fast, ref, fb.out, no) : 1e30;
        double ep = nr == no && np == no ? bound_ratio(port, ref, fb.out, no) : 1e30;
        CHECK_RATIO(max_err(e, ep), "%s: out error %.3g of its bound (portable %.3g)", what, e, ep);
        for (int i = 0; i < 8; i++) {
            if (!in[i]) continue;
            e = bound_ratio(gf[i], gr[i], fb.g[i], in[i]->n);
            ep = bound_ratio(gp[i], gr[i], fb.g[i], in[i]->n);
            CHECK_RATIO(max_err(e, ep), "%s: d%s error %.3g of its bound (portable %.3g)", what,
                        names[i], e, ep);
            free(gr[i]), free(gf[i]), free(gp[i]);
        }
        free(ref), free(fast), free(port);
    }
    free(fb.out);
    for (int i = 0; i < 8; i++) free(fb.g[i]);
    free(dout);
    for (int i = 0; i < 8; i++) gc_input_free(in[i]);
}

/* The no-grad forward of the fused op: the same values, bit for bit, and nothing recorded. */
static void fused_no_grad(const fused_case *c) {
    dfs_tensor *in[8];
    fused_inputs(c, in);
    dfs_graph *g1 = dfs_graph_new(), *g0 = dfs_graph_new();
    dfs_graph_set_grad(g0, 0);
    dfs_tensor *y1 = fused_apply(g1, in, (void *)c), *y0 = fused_apply(g0, in, (void *)c);
    CHECK(y1->requires_grad && !y0->requires_grad && y0->n == y1->n &&
              !memcmp(y0->data, y1->data, y0->n * sizeof(float)),
          "fused no-grad k%d norm%d: values or recording differ", c->k, c->norm);
    dfs_graph_free(g0);
    dfs_graph_free(g1);
    for (int i = 0; i < 8; i++) gc_input_free(in[i]);
}

/* gradcheck takes only the inputs that exist: map them back to their eight slots */
typedef struct {
    const fused_case *c;
    int slot[8], n;
} fused_gc;

static dfs_tensor *fused_apply_gc(dfs_graph *g, dfs_tensor **packed, void *user) {
    const fused_gc *u = user;
    dfs_tensor *in[8] = {0};
    for (int i = 0; i < u->n; i++) in[u->slot[i]] = packed[i];
    return fused_apply(g, in, (void *)u->c);
}

static void fused_gradcheck(const char *name, const fused_case *c) {
    dfs_tensor *in[8], *packed[8];
    fused_inputs(c, in);
    fused_gc u = {.c = c};
    for (int i = 0; i < 8; i++)
        if (in[i]) {
            u.slot[u.n] = i;
            packed[u.n++] = in[i];
        }
    gradcheck(name, fused_apply_gc, packed, u.n, &u, GC_H, GC_TOL);
    for (int i = 0; i < 8; i++) gc_input_free(in[i]);
}

static void test_conv_fused(void) {
    static const fused_case cases[] = {
        /* the ResBlock's first conv: [x, skip] -> GN + SiLU -> 3x3 + bias + time embedding */
        {.N = 3, .C1 = 6, .C2 = 4, .H = 5, .W = 7, .Co = 5, .k = 3, .norm = 2, .groups = 5, .up = 1, .tadd = 1},
        /* the second: GN + SiLU + dropout -> 3x3 + bias + residual */
        {.N = 3, .C1 = 8, .H = 6, .W = 5, .Co = 9, .k = 3, .norm = 2, .groups = 2, .up = 1, .res = 1, .dropout = 0.3f},
        /* attention: GN -> 1x1 (qkv); 1x1 + residual (proj); the decoder's 1x1 skip on [x, skip] */
        {.N = 2, .C1 = 8, .H = 4, .W = 4, .Co = 24, .k = 1, .norm = 1, .groups = 4, .up = 1},
        {.N = 2, .C1 = 8, .H = 4, .W = 4, .Co = 8, .k = 1, .up = 1, .res = 1},
        {.N = 3, .C1 = 5, .C2 = 3, .H = 7, .W = 7, .Co = 4, .k = 1, .up = 1},
        /* nearest 2x upsampling, then 3x3; a 5x5 conv; dropout without a norm */
        {.N = 2, .C1 = 3, .C2 = 2, .H = 3, .W = 4, .Co = 4, .k = 3, .up = 2, .res = 1},
        {.N = 2, .C1 = 3, .H = 6, .W = 6, .Co = 3, .k = 5, .up = 1, .tadd = 1},
        {.N = 2, .C1 = 4, .H = 5, .W = 5, .Co = 3, .k = 3, .up = 1, .dropout = 0.5f},
        /* 7x7 planes, many images: several images per backward chunk, and a remainder */
        {.N = 21, .C1 = 16, .C2 = 8, .H = 7, .W = 7, .Co = 16, .k = 3, .norm = 2, .groups = 8, .up = 1, .tadd = 1, .res = 1},
        /* one image, one channel */
        {.N = 1, .C1 = 1, .H = 2, .W = 3, .Co = 1, .k = 3, .norm = 2, .groups = 1, .up = 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fused_vs_composed(&cases[i]);
        fused_no_grad(&cases[i]);
    }
    /* finite differences on the whole fused op (no dropout: the mask would be redrawn) */
    fused_gradcheck("fused conv (concat, GN+SiLU, 3x3, tadd, res)",
                    &(fused_case){.N = 2, .C1 = 2, .C2 = 2, .H = 3, .W = 4, .Co = 3, .k = 3,
                                  .norm = 2, .groups = 2, .up = 1, .tadd = 1, .res = 1});
    fused_gradcheck("fused conv (upsample 2x, 3x3)",
                    &(fused_case){.N = 2, .C1 = 2, .H = 2, .W = 3, .Co = 2, .k = 3, .up = 2});
}

/* ---- 4. no-grad path
 * ------------------------------------------------------------------------------- */

/* Every op on inputs that require grad; returns the outputs. */
static int run_all_ops(dfs_graph *g, dfs_tensor **p, dfs_tensor **outs) {
    int k = 0;
    outs[k++] = dfs_conv2d(g, p[0], p[1], p[2], 2, 1);
    outs[k++] = dfs_conv2d(g, p[0], p[3], NULL, 1, 0);
    outs[k++] = dfs_conv1d(g, p[4], p[5], p[2], 1, 1);
    outs[k++] = dfs_linear(g, p[6], p[7], p[2]);
    outs[k++] = dfs_bmm(g, p[6], p[6], 0, 1);
    outs[k++] = dfs_reshape(g, p[0], 2, (int[]){2, 75});
    outs[k++] = dfs_concat(g, p[0], p[0], 1);
    outs[k++] = dfs_slice(g, p[0], 3, 1, 2);
    outs[k++] = dfs_upsample_nearest(g, p[0], 2);
    return k;
}

static void test_no_grad(void) {
    dfs_tensor *p[8];
    p[0] = gc_input(4, (int[]){2, 3, 5, 5}, &rng, 1.0f); // x
    p[1] = gc_input(4, (int[]){4, 3, 3, 3}, &rng, 1.0f); // w 3x3
    p[2] = gc_input(1, (int[]){4}, &rng, 1.0f);          // b
    p[3] = gc_input(4, (int[]){4, 3, 1, 1}, &rng, 1.0f); // w 1x1
    p[4] = gc_input(3, (int[]){2, 3, 6}, &rng, 1.0f);    // x 1d
    p[5] = gc_input(3, (int[]){4, 3, 3}, &rng, 1.0f);    // w 1d
    p[6] = gc_input(3, (int[]){2, 3, 5}, &rng, 1.0f);    // x for linear, bmm
    p[7] = gc_input(2, (int[]){4, 5}, &rng, 1.0f);       // w linear
    dfs_graph *g1 = dfs_graph_new(), *g0 = dfs_graph_new();
    dfs_graph_set_grad(g0, 0);
    CHECK(dfs_graph_grad_enabled(g0) == 0 && dfs_graph_grad_enabled(g1) == 1, "grad flag not kept");
    dfs_tensor *o1[16], *o0[16];
    int n1 = run_all_ops(g1, p, o1), n0 = run_all_ops(g0, p, o0);
    CHECK(n0 == n1, "op count");
    for (int i = 0; i < n0; i++) {
        CHECK(o1[i]->requires_grad == 1, "op %d: grad mode did not record", i);
        CHECK(o0[i]->requires_grad == 0, "op %d: no-grad mode marked its output", i);
        CHECK(o0[i]->n == o1[i]->n && !memcmp(o0[i]->data, o1[i]->data, o0[i]->n * sizeof(float)),
              "op %d: no-grad values differ", i);
        /* backward from a no-grad output must not touch any input gradient */
        float *dout = malloc(o0[i]->n * sizeof(float));
        fill(dout, o0[i]->n);
        for (int j = 0; j < 8; j++) memset(p[j]->grad, 0, p[j]->n * sizeof(float));
        dfs_backward_grad(g0, o0[i], dout);
        int touched = 0;
        for (int j = 0; j < 8; j++)
            for (size_t e = 0; e < p[j]->n; e++) touched |= p[j]->grad[e] != 0;
        CHECK(!touched && o0[i]->grad == NULL, "op %d: no-grad backward wrote gradients", i);
        free(dout);
    }
    /* nothing recorded means less arena used (no nodes, no grad buffers) */
    CHECK(dfs_graph_bytes_used(g0) < dfs_graph_bytes_used(g1), "no-grad used %zu bytes >= %zu",
          dfs_graph_bytes_used(g0), dfs_graph_bytes_used(g1));
    dfs_graph_free(g0);
    dfs_graph_free(g1);
    for (int j = 0; j < 8; j++) gc_input_free(p[j]);
}

int main(void) {
    dfs_rng_seed(&rng, 42);
    test_forward_values();
    test_gradients();
    test_conv_vs_reference();
    test_conv1d_vs_naive();
    test_igemm_kernels();
    test_igemm_dw_segments();
    test_conv_fused();
    test_no_grad();
    return check_summary("test_ops_a");
}
