/* test_ops_a.c - conv2d, conv1d, linear, bmm, reshape, concat, slice, upsample_nearest.
 *
 * 1. Forward values on small cases worked out by hand.
 * 2. Every backward (all inputs: data, weights, biases) against central finite differences.
 *    Tolerance: each of these ops is linear in any single input element (conv/linear/bmm are
 *    bilinear, the shape ops linear), so (L(x+h) - L(x-h)) / 2h has no truncation error and
 *    only the float32 rounding of the forward remains: about 6e-8 * sum|R_i out_i| / h, which
 *    is ~1e-4 at h = 1e-2 for these sizes. A tolerance of 1e-3 (relative, or absolute below
 *    1) leaves ten times that margin yet catches any wrong index or missing term (errors of
 *    O(1)).
 * 3. The fast im2col/GEMM conv against the naive reference, forward and backward, on odd shapes
 *    (stride 1/2, pad 0/1/2, kernels 1/3/5 and non-square) and with the image chunking forced
 *    to 1, 2 (with a remainder) and all images per GEMM: max error <= 1e-4 of the largest value.
 * 4. The no-grad path: with dfs_graph_set_grad(g, 0) ops compute the same values bit for bit,
 *    mark nothing as requiring grad, and backward from their outputs changes nothing. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"
#include "internal.h"
#include "ops_ref.h"

#include <string.h>

#define GC_H 1e-2f
#define GC_TOL 1e-3f

static dfs_rng rng;

/* ---- helpers --------------------------------------------------------------------------------- */

static dfs_tensor *wrap(dfs_graph *g, const float *data, int ndim, const int *shape) {
    dfs_tensor *t = dfs_tensor_new(g, ndim, shape);
    memcpy(t->data, data, t->n * sizeof(float));
    return t;
}

static void check_values(const char *what, const dfs_tensor *t, const float *want, size_t n) {
    CHECK(t->n == n, "%s: %zu elements, want %zu", what, t->n, n);
    if (t->n != n) return;
    for (size_t i = 0; i < n; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s[%zu]", what, i);
        CHECK_CLOSE(t->data[i], want[i], 1e-5, 1e-6, buf);
    }
}

static void check_shape(const char *what, const dfs_tensor *t, int ndim, const int *shape) {
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    CHECK(ok, "%s: wrong shape (ndim %d: %d %d %d %d)", what, t->ndim, t->shape[0], t->shape[1],
          t->shape[2], t->shape[3]);
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n) {
    double m = 0, s = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d) m = d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return m / s;
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
    double e[4] = {rel_err(y->data, ref, no), rel_err(x->grad, dx, x->n),
                   rel_err(w->grad, dw, w->n), rel_err(b->grad, db, b->n)};
    const char *what[4] = {"out", "dx", "dw", "db"};
    for (int i = 0; i < 4; i++)
        CHECK(
            y->n == no && e[i] <= 1e-4,
            "fast vs reference conv N%d Ci%d %dx%d Co%d k%dx%d s%d p%d chunk %zu: %s rel err %.3g",
            N, Ci, H, W, Co, KH, KW, stride, pad, chunk, what[i], e[i]);
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

static void test_conv_vs_reference(void) {
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

/* conv1d against a naive loop */
static void test_conv1d_vs_naive(void) {
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
            double worst = 0;
            for (int n = 0; n < N; n++)
                for (int co = 0; co < Co; co++)
                    for (int o = 0; o < Lo; o++) {
                        double s = b->data[co];
                        for (int ci = 0; ci < Ci; ci++)
                            for (int k = 0; k < K; k++) {
                                int i = o * stride - pad + k;
                                if (i >= 0 && i < L)
                                    s += (double)w->data[(co * Ci + ci) * K + k] *
                                         x->data[(n * Ci + ci) * L + i];
                            }
                        double d = fabs(y->data[(n * Co + co) * Lo + o] - s);
                        if (d > worst) worst = d;
                    }
            CHECK(y->shape[2] == Lo && worst <= 1e-5, "conv1d s%d p%d: Lo %d (want %d), err %.3g",
                  stride, pad, y->shape[2], Lo, worst);
            dfs_graph_free(g);
        }
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
    test_no_grad();
    return check_summary("test_ops_a");
}
