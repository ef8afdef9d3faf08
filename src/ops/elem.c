/* ops/elem.c - elementwise ops (SiLU, GELU, sigmoid, tanh, ReLU), broadcasting add/mul,
 * softmax, embedding, dropout, losses and the sinusoidal timestep embedding, each with its
 * backward.
 *
 * Size key: N batch, C channels, H W height width, R rows, D features (last dim), V vocabulary.
 * Backward functions accumulate (+=) into the grads of inputs that require grad; an input with
 * no gradient buffer yet gets one that is written (=) directly (dfs_grad_for_write), which
 * saves clearing it first. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* Below this many elements an OpenMP region costs more than it saves. */
#define PAR_MIN 32768

static dfs_tensor *scalar_new(dfs_graph *g) { return dfs_tensor_new(g, 1, (int[]){1}); }

/* ---- SiLU: x sigmoid(x) (Elfwing et al. 2018, eq. 3; Hendrycks & Gimpel 2016) -------------- */

/* dfs_sigmoidf (src/kernels/kernels.h): the vectorisable exp, so that these loops run in SIMD lanes */

static void silu_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad, *xd = x->data;
    long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        /* d/dx x s(x) = s(x) (1 + x (1 - s(x))) */
        float s = dfs_sigmoidf(xd[i]);
        float d = dy[i] * s * (1.0f + xd[i] * (1.0f - s));
        dx[i] = fresh ? d : dx[i] + d;
    }
}

dfs_tensor *dfs_silu(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = xd[i] * dfs_sigmoidf(xd[i]);
    dfs_record(g, silu_bw, out, 1, &x);
    return out;
}

/* ---- the gated activation of WaveNet and CSDI: x (..., 2C) -> sigmoid(a) tanh(b) (..., C),
 * a = x[..., :C], b = x[..., C:], in one pass (instead of two slices, two activations and a
 * product). tanh(b) = 2 sigmoid(2 b) - 1 with the vectorised dfs_sigmoidf: within 4e-7 of
 * tanh absolutely (not relatively, near 0), which is what the next linear layer sees. The
 * backward: d/da = t s (1 - s), d/db = s (1 - t^2), s = sigmoid(a), t = tanh(b). ---------- */

static void gated_tanh_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    const long C = nd->i[0], rows = (long)(x->n / (size_t)(2 * C));
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad, *xd = x->data;
#pragma omp parallel for if (rows * C >= PAR_MIN)
    for (long r = 0; r < rows; r++) {
        const float *a = xd + r * 2 * C, *b = a + C, *d = dy + r * C;
        float *da = dx + r * 2 * C, *db = da + C;
#pragma omp simd
        for (long c = 0; c < C; c++) {
            const float s = dfs_sigmoidf(a[c]), t = 2.0f * dfs_sigmoidf(2.0f * b[c]) - 1.0f;
            const float ga = d[c] * t * s * (1.0f - s), gb = d[c] * s * (1.0f - t * t);
            da[c] = fresh ? ga : da[c] + ga;
            db[c] = fresh ? gb : db[c] + gb;
        }
    }
}

dfs_tensor *dfs_gated_tanh(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x && x->ndim >= 1 && x->shape[x->ndim - 1] % 2 == 0 && x->shape[x->ndim - 1] > 0);
    int shape[DFS_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    const long C = shape[x->ndim - 1] / 2, rows = (long)(x->n / (size_t)(2 * C));
    shape[x->ndim - 1] = (int)C;
    dfs_tensor *out = dfs_tensor_new(g, x->ndim, shape);
    const float *xd = x->data;
    float *y = out->data;
#pragma omp parallel for if (rows * C >= PAR_MIN)
    for (long r = 0; r < rows; r++) {
        const float *a = xd + r * 2 * C, *b = a + C;
        float *o = y + r * C;
#pragma omp simd
        for (long c = 0; c < C; c++) o[c] = dfs_sigmoidf(a[c]) * (2.0f * dfs_sigmoidf(2.0f * b[c]) - 1.0f);
    }
    dfs_node *nd = dfs_record(g, gated_tanh_bw, out, 1, &x);
    if (nd) nd->i[0] = (int)C;
    return out;
}

/* ---- GELU, tanh approximation (Hendrycks & Gimpel 2016, sec. 2; PyTorch approximate='tanh'):
 * gelu(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3) -------------------------- */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

static void gelu_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    float *dx = dfs_grad(g, x);
    const float *dy = nd->out->grad, *xd = x->data;
    long n = (long)x->n;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        float v = xd[i];
        float th = tanhf(GELU_K * (v + GELU_A * v * v * v));
        float du = GELU_K * (1.0f + 3.0f * GELU_A * v * v);
        dx[i] += dy[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du);
    }
}

dfs_tensor *dfs_gelu(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    long n = (long)x->n;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        float v = xd[i];
        y[i] = 0.5f * v * (1.0f + tanhf(GELU_K * (v + GELU_A * v * v * v)));
    }
    dfs_record(g, gelu_bw, out, 1, &x);
    return out;
}

/* ---- sigmoid, tanh, ReLU ------------------------------------------------------------------
 * Each backward recomputes its derivative from x, as SiLU's does: s (1 - s) and 1 - tanh^2
 * formed from the rounded output lose all relative accuracy where the output rounds to +-1
 * (|x| > 17 for the sigmoid, > 9 for tanh), e / (1 + e)^2 does not. */

/* exp(z) for z <= 0, vectorisable and right down to the subnormals: dfs_expf clamps at -87,
 * where exp leaves the normal floats; below that exp(z) = exp(z / 2)^2, which the multiply
 * rounds into the subnormals (to 0 below -104, as exp(z) itself rounds). */
static inline float exp_nonpos(float z) {
    const int deep = !(z >= -87.0f);
    const float h = dfs_expf(deep ? 0.5f * z : z);
    return deep ? h * h : h;
}

/* sigmoid(x) = 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) for x < 0: with e = e^-|x| <= 1
 * the sum 1 + e never overflows and both branches are accurate to a few roundings. */
static void sigmoid_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad, *xd = x->data;
    long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        /* s'(x) = s(x) (1 - s(x)) = e / (1 + e)^2, e = exp(-|x|) (even in x) */
        float e = exp_nonpos(-fabsf(xd[i])), r = 1.0f / (1.0f + e);
        float d = dy[i] * (e * r * r);
        dx[i] = fresh ? d : dx[i] + d;
    }
}

dfs_tensor *dfs_sigmoid(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        float v = xd[i], e = exp_nonpos(-fabsf(v)), d = 1.0f + e;
        y[i] = v >= 0.0f ? 1.0f / d : e / d;
    }
    dfs_record(g, sigmoid_bw, out, 1, &x);
    return out;
}

/* tanh by libm (tanhf, within 2 ulps in glibc); tanh'(x) = 1 - tanh^2 x = 4 e / (1 + e)^2,
 * e = exp(-2 |x|). */
static void tanh_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad, *xd = x->data;
    long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        float e = exp_nonpos(-2.0f * fabsf(xd[i])), r = 1.0f / (1.0f + e);
        float d = dy[i] * (4.0f * e * r * r);
        dx[i] = fresh ? d : dx[i] + d;
    }
}

dfs_tensor *dfs_tanh(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    long n = (long)x->n;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = tanhf(xd[i]);
    dfs_record(g, tanh_bw, out, 1, &x);
    return out;
}

/* relu(x) = max(x, 0) (Nair & Hinton 2010; a NaN stays NaN); relu'(x) = 1 for x > 0, else 0,
 * at x = 0 too, as PyTorch's (the subgradient 0). */
static void relu_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad, *xd = x->data;
    long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        float d = xd[i] > 0.0f ? dy[i] : 0.0f;
        dx[i] = fresh ? d : dx[i] + d;
    }
}

dfs_tensor *dfs_relu(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    long n = (long)x->n;
#pragma omp parallel for simd if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = xd[i] > 0.0f || xd[i] != xd[i] ? xd[i] : 0.0f;
    dfs_record(g, relu_bw, out, 1, &x);
    return out;
}

/* ---- add / mul with NumPy broadcasting ---------------------------------------------------
 * Shapes are aligned on the right and padded on the left with 1s to 4 dims. A dim of size 1
 * broadcasts (stride 0). Fast paths: both operands have the output's shape (flat loop), or one
 * has it and the other is "banded": its padded shape is 1s, then the output's dims, then 1s,
 * so element i of the output reads element (i / inner) % mid of it. This covers (N,C,1,1) and
 * (C,1,1) against (N,C,H,W), and (D) against (B,L,D). Anything else takes a strided 4-d loop. */

enum { OP_ADD, OP_MUL };

typedef struct {
    int shape[4];        /* output shape, padded */
    size_t sa[4], sb[4]; /* strides of a and b over the padded output index; 0 = broadcast */
} bcast;

/* Banded layout of x relative to the padded output shape: outer x mid x inner with x holding
 * the mid part. Returns 0 if x is not banded. */
static int banded(const int *xs, const int *os, size_t *outer, size_t *mid, size_t *inner) {
    size_t p[3] = {1, 1, 1};
    int phase = 0; /* 0: leading 1s, 1: x's dims, 2: trailing 1s */
    for (int k = 0; k < 4; k++) {
        if (os[k] == 1) continue; /* fits any phase */
        int same = xs[k] == os[k];
        if (phase == 0 && same)
            phase = 1;
        else if (phase == 1 && !same)
            phase = 2;
        else if (phase == 2 && same)
            return 0;
        p[phase] *= (size_t)os[k];
    }
    *outer = p[0];
    *mid = p[1];
    *inner = p[2];
    return 1;
}

static void pad4(const dfs_tensor *t, int *s) {
    int off = 4 - t->ndim;
    for (int k = 0; k < 4; k++) s[k] = k < off ? 1 : t->shape[k - off];
}

/* Output shape of broadcasting a with b; asserts they are compatible. */
static void bcast_plan(bcast *p, const dfs_tensor *a, const dfs_tensor *b) {
    int as[4], bs[4];
    pad4(a, as);
    pad4(b, bs);
    size_t ra = 1, rb = 1;
    for (int k = 3; k >= 0; k--) {
        DFS_ASSERT(as[k] == bs[k] || as[k] == 1 || bs[k] == 1);
        p->shape[k] = as[k] == 1 ? bs[k] : as[k];
        p->sa[k] = as[k] == 1 ? 0 : ra;
        p->sb[k] = bs[k] == 1 ? 0 : rb;
        ra *= (size_t)as[k];
        rb *= (size_t)bs[k];
    }
}

/* y (outer, mid, inner) = big (outer, mid, inner) op small (mid); accumulate adds into y. */
static void band_apply(int op, int accumulate, float *y, const float *big, const float *small,
                       size_t outer, size_t mid, size_t inner) {
    if (inner == 1) {
#pragma omp parallel for if (outer * mid >= PAR_MIN)
        for (long o = 0; o < (long)outer; o++) {
            const float *x = big + (size_t)o * mid;
            float *yo = y + (size_t)o * mid;
            if (op == OP_ADD) {
                if (accumulate)
                    for (size_t m = 0; m < mid; m++) yo[m] += x[m] + small[m];
                else
                    for (size_t m = 0; m < mid; m++) yo[m] = x[m] + small[m];
            } else {
                if (accumulate)
                    for (size_t m = 0; m < mid; m++) yo[m] += x[m] * small[m];
                else
                    for (size_t m = 0; m < mid; m++) yo[m] = x[m] * small[m];
            }
        }
        return;
    }
#pragma omp parallel for if (outer * mid * inner >= PAR_MIN)
    for (long j = 0; j < (long)(outer * mid); j++) {
        float v = small[(size_t)j % mid];
        const float *x = big + (size_t)j * inner;
        float *yj = y + (size_t)j * inner;
        if (op == OP_ADD) {
            if (accumulate)
                for (size_t s = 0; s < inner; s++) yj[s] += x[s] + v;
            else
                for (size_t s = 0; s < inner; s++) yj[s] = x[s] + v;
        } else {
            if (accumulate)
                for (size_t s = 0; s < inner; s++) yj[s] += x[s] * v;
            else
                for (size_t s = 0; s < inner; s++) yj[s] = x[s] * v;
        }
    }
}

/* dsmall (mid) += sum over outer, inner of dy (outer, mid, inner) [* other (outer, mid, inner)]. */
static void band_reduce(float *dsmall, const float *dy, const float *other, size_t outer,
                        size_t mid, size_t inner) {
    if (inner == 1) {
        /* rows of length mid: sum rows (vectorises over m) */
        for (size_t o = 0; o < outer; o++) {
            const float *d = dy + o * mid, *w = other ? other + o * mid : NULL;
            if (w)
                for (size_t m = 0; m < mid; m++) dsmall[m] += d[m] * w[m];
            else
                for (size_t m = 0; m < mid; m++) dsmall[m] += d[m];
        }
        return;
    }
#pragma omp parallel for if (outer * mid * inner >= PAR_MIN)
    for (long m = 0; m < (long)mid; m++) {
        double s = 0;
        for (size_t o = 0; o < outer; o++) {
            size_t base = (o * mid + (size_t)m) * inner;
            const float *d = dy + base;
            if (other) {
                const float *w = other + base;
                for (size_t k = 0; k < inner; k++) s += d[k] * w[k];
            } else {
                for (size_t k = 0; k < inner; k++) s += d[k];
            }
        }
        dsmall[m] += (float)s;
    }
}

/* General strided loop over the padded output: out = a op b. */
static void bcast_forward_general(int op, float *out, const float *a, const float *b,
                                  const bcast *p) {
    const int *s = p->shape;
#pragma omp parallel for collapse(2) if ((size_t)s[0] * s[1] * s[2] * s[3] >= PAR_MIN)
    for (int i0 = 0; i0 < s[0]; i0++)
        for (int i1 = 0; i1 < s[1]; i1++) {
            size_t o = ((size_t)i0 * s[1] + i1) * s[2] * s[3];
            for (int i2 = 0; i2 < s[2]; i2++)
                for (int i3 = 0; i3 < s[3]; i3++, o++) {
                    float x = a[i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2] + i3 * p->sa[3]];
                    float y = b[i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2] + i3 * p->sb[3]];
                    out[o] = op == OP_ADD ? x + y : x * y;
                }
        }
}

/* General strided reduction: dx[sx . i] += dy[i] (* w[sw . i]). Serial: several output
 * elements may land on the same dx element. */
static void bcast_backward_general(float *dx, const size_t *sx, const float *dy, const float *w,
                                   const size_t *sw, const int *s) {
    size_t o = 0;
    for (int i0 = 0; i0 < s[0]; i0++)
        for (int i1 = 0; i1 < s[1]; i1++)
            for (int i2 = 0; i2 < s[2]; i2++)
                for (int i3 = 0; i3 < s[3]; i3++, o++) {
                    size_t ix = i0 * sx[0] + i1 * sx[1] + i2 * sx[2] + i3 * sx[3];
                    float v = dy[o];
                    if (w) v *= w[i0 * sw[0] + i1 * sw[1] + i2 * sw[2] + i3 * sw[3]];
                    dx[ix] += v;
                }
}

/* Gradient of the output into input x (strides sx), whose partner is y (strides sy). */
static void binary_grad(dfs_graph *g, int op, const bcast *p, dfs_tensor *out, dfs_tensor *x,
                        const size_t *sx, dfs_tensor *y, const size_t *sy) {
    if (!x->requires_grad) return;
    int fresh = 0;
    /* only the two paths below that write every element of dx may skip clearing it */
    float *dx = x->n == out->n ? dfs_grad_for_write(g, x, &fresh) : dfs_grad(g, x);
    const float *dy = out->grad;
    const float *w = op == OP_MUL ? y->data : NULL; /* d(x y)/dx = y */
    int xs[4], ys[4];
    pad4(x, xs);
    pad4(y, ys);
    size_t outer, mid, inner;
    if (x->n == out->n && (!w || y->n == out->n)) {
        long n = (long)out->n;
        if (fresh && !w) {
#pragma omp parallel for if (n >= PAR_MIN)
            for (long i = 0; i < n; i++) dx[i] = dy[i];
        } else if (fresh) {
#pragma omp parallel for if (n >= PAR_MIN)
            for (long i = 0; i < n; i++) dx[i] = dy[i] * w[i];
        } else {
#pragma omp parallel for if (n >= PAR_MIN)
            for (long i = 0; i < n; i++) dx[i] += w ? dy[i] * w[i] : dy[i];
        }
    } else if (x->n == out->n && banded(ys, p->shape, &outer, &mid, &inner)) {
        /* dx (full) (+)= dy * y (banded) */
        band_apply(OP_MUL, !fresh, dx, dy, w, outer, mid, inner);
    } else {
        if (fresh) memset(dx, 0, x->n * sizeof(float)); /* a broadcast x with n == out->n */
        if ((!w || y->n == out->n) && banded(xs, p->shape, &outer, &mid, &inner))
            band_reduce(dx, dy, w, outer, mid, inner);
        else
            bcast_backward_general(dx, sx, dy, w, sy, p->shape);
    }
}

static void binary_bw(dfs_graph *g, dfs_node *nd) {
    bcast p;
    dfs_tensor *a = nd->in[0], *b = nd->in[1];
    bcast_plan(&p, a, b);
    binary_grad(g, nd->i[0], &p, nd->out, a, p.sa, b, p.sb);
    binary_grad(g, nd->i[0], &p, nd->out, b, p.sb, a, p.sa);
}

static dfs_tensor *binary(dfs_graph *g, int op, dfs_tensor *a, dfs_tensor *b) {
    DFS_ASSERT(a && b);
    bcast p;
    bcast_plan(&p, a, b);
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    dfs_tensor *out = dfs_tensor_new(g, nd, p.shape + 4 - nd);
    int as[4], bs[4];
    pad4(a, as);
    pad4(b, bs);
    size_t outer, mid, inner;
    if (a->n == out->n && b->n == out->n) {
        const float *x = a->data, *y = b->data;
        float *z = out->data;
        long n = (long)out->n;
        if (op == OP_ADD) {
#pragma omp parallel for if (n >= PAR_MIN)
            for (long i = 0; i < n; i++) z[i] = x[i] + y[i];
        } else {
#pragma omp parallel for if (n >= PAR_MIN)
            for (long i = 0; i < n; i++) z[i] = x[i] * y[i];
        }
    } else if (a->n == out->n && banded(bs, p.shape, &outer, &mid, &inner)) {
        band_apply(op, 0, out->data, a->data, b->data, outer, mid, inner);
    } else if (b->n == out->n && banded(as, p.shape, &outer, &mid, &inner)) {
        band_apply(op, 0, out->data, b->data, a->data, outer, mid, inner); /* op commutes */
    } else {
        bcast_forward_general(op, out->data, a->data, b->data, &p);
    }
    dfs_node *n = dfs_record(g, binary_bw, out, 2, (dfs_tensor *[]){a, b});
    if (n) n->i[0] = op;
    return out;
}

dfs_tensor *dfs_add(dfs_graph *g, dfs_tensor *a, dfs_tensor *b) { return binary(g, OP_ADD, a, b); }
dfs_tensor *dfs_mul(dfs_graph *g, dfs_tensor *a, dfs_tensor *b) { return binary(g, OP_MUL, a, b); }

/* ---- scale: s x -------------------------------------------------------------------------- */

static void scale_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh), s = nd->f[0];
    const float *dy = nd->out->grad;
    long n = (long)x->n;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) dx[i] = fresh ? s * dy[i] : dx[i] + s * dy[i];
}

dfs_tensor *dfs_scale(dfs_graph *g, dfs_tensor *x, float s) {
    DFS_ASSERT(x);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data;
    float *y = out->data;
    long n = (long)x->n;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = s * xd[i];
    dfs_node *nd = dfs_record(g, scale_bw, out, 1, &x);
    if (nd) nd->f[0] = s;
    return out;
}

/* ---- softmax over the last dim: y = exp(x - max) / sum exp(x - max) -----------------------
 * Backward: dx = y (dy - sum_j dy_j y_j). */

static void softmax_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int D = x->shape[x->ndim - 1];
    long R = (long)(x->n / (size_t)D);
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh);
    const float *dy = nd->out->grad, *y = nd->out->data; // (R, D)
#pragma omp parallel for if (x->n >= PAR_MIN)
    for (long r = 0; r < R; r++) {
        const float *yr = y + (size_t)r * D, *dr = dy + (size_t)r * D;
        float *dxr = dx + (size_t)r * D;
        double s = 0;
        for (int d = 0; d < D; d++) s += dr[d] * yr[d];
        float sf = (float)s;
        if (fresh)
            for (int d = 0; d < D; d++) dxr[d] = yr[d] * (dr[d] - sf);
        else
            for (int d = 0; d < D; d++) dxr[d] += yr[d] * (dr[d] - sf);
    }
}

dfs_tensor *dfs_softmax(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x && x->ndim >= 1 && x->shape[x->ndim - 1] > 0);
    int D = x->shape[x->ndim - 1];
    long R = (long)(x->n / (size_t)D);
    dfs_tensor *out = dfs_tensor_like(g, x);
    const float *xd = x->data; // (R, D)
    float *y = out->data;      // (R, D)
#pragma omp parallel for if (x->n >= PAR_MIN)
    for (long r = 0; r < R; r++) {
        const float *xr = xd + (size_t)r * D;
        float *yr = y + (size_t)r * D;
        float mx = xr[0];
        for (int d = 1; d < D; d++) mx = xr[d] > mx ? xr[d] : mx;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < D; d++) {
            yr[d] = dfs_expf(xr[d] - mx);
            s += yr[d];
        }
        float inv = (float)(1.0 / s);
#pragma omp simd
        for (int d = 0; d < D; d++) yr[d] *= inv;
    }
    dfs_record(g, softmax_bw, out, 1, &x);
    return out;
}

/* ---- embedding: out (n, D) = table (V, D) rows idx[0..n-1] ------------------------------- */

static void embedding_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *table = nd->in[0];
    int n = nd->i[0], D = table->shape[1];
    const int *idx = nd->saved;
    float *dt = dfs_grad(g, table);
    const float *dy = nd->out->grad;
    /* serial: repeated indices add into the same row */
    for (int i = 0; i < n; i++) {
        float *row = dt + (size_t)idx[i] * D;
        const float *d = dy + (size_t)i * D;
        for (int k = 0; k < D; k++) row[k] += d[k];
    }
}

dfs_tensor *dfs_embedding(dfs_graph *g, dfs_tensor *table, const int *idx, int n) {
    DFS_ASSERT(table && table->ndim == 2);
    DFS_ASSERT(n >= 0 && (n == 0 || idx));
    int V = table->shape[0], D = table->shape[1];
    for (int i = 0; i < n; i++) DFS_ASSERT(idx[i] >= 0 && idx[i] < V);
    dfs_tensor *out = dfs_tensor_new(g, 2, (int[]){n, D});
    for (int i = 0; i < n; i++)
        memcpy(out->data + (size_t)i * D, table->data + (size_t)idx[i] * D,
               (size_t)D * sizeof(float));
    dfs_node *nd = dfs_record(g, embedding_bw, out, 1, &table);
    if (nd) {
        int *copy = dfs_graph_alloc(g, (size_t)(n ? n : 1) * sizeof(int));
        if (n) memcpy(copy, idx, (size_t)n * sizeof(int));
        nd->i[0] = n;
        nd->saved = copy;
    }
    return out;
}

/* ---- dropout (Srivastava et al. 2014), inverted: kept elements are scaled by 1/(1-p) at
 * training time so that evaluation is the identity. The mask is saved as bits. -------------- */

void dfs_dropout_mask(uint8_t *mask, size_t n, size_t nslice, dfs_rng *rng, float p) {
    DFS_ASSERT(nslice >= 1 && n % nslice == 0);
    const size_t len = n / nslice;
    const uint64_t seed = dfs_rng_u64(rng);
    /* keep iff a 16-bit uniform >= p 2^16 rounded: each 64-bit draw serves four elements
     * (p is then a multiple of 2^-16, e.g. 0.1 becomes 0.100006) */
    const uint32_t thr = (uint32_t)lround((double)p * 65536.0);
    memset(mask, 0, (n + 7) / 8);
    /* slices own whole bytes when len % 8 == 0: then they can be drawn in parallel */
#pragma omp parallel for schedule(static) if (len % 8 == 0 && n >= PAR_MIN)
    for (long s = 0; s < (long)nslice; s++) {
        dfs_rng r;
        dfs_rng_seed(&r, seed + 0x9e3779b97f4a7c15ULL * (uint64_t)s);
        const size_t b0 = (size_t)s * len;
        for (size_t i = 0; i < len; i += 4) {
            uint64_t u = dfs_rng_u64(&r);
            for (size_t k = 0; k < 4 && i + k < len; k++) {
                size_t bi = b0 + i + k;
                if ((uint32_t)(u >> (16 * k) & 0xffff) >= thr) mask[bi >> 3] |= (uint8_t)(1u << (bi & 7));
            }
        }
    }
}

static void dropout_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh), scale = nd->f[0];
    const float *dy = nd->out->grad;
    const uint8_t *mask = nd->saved; // (n + 7) / 8 bytes
    long n = (long)x->n;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        float d = (mask[i >> 3] >> (i & 7) & 1) ? scale * dy[i] : 0.0f;
        dx[i] = fresh ? d : dx[i] + d;
    }
}

dfs_tensor *dfs_dropout(dfs_graph *g, dfs_tensor *x, float p) {
    DFS_ASSERT(x);
    DFS_ASSERT(p >= 0.0f && p < 1.0f);
    if (!dfs_graph_training(g) || p == 0.0f) return x;
    dfs_rng *rng = dfs_graph_rng(g);
    DFS_ASSERT(rng != NULL); /* training mode needs a generator: dfs_graph_set_training */
    dfs_tensor *out = dfs_tensor_like(g, x);
    dfs_node *nd = dfs_record(g, dropout_bw, out, 1, &x);
    uint8_t *mask = dfs_graph_alloc(g, (x->n + 7) / 8);
    /* one slice per index of the first dim (per image), as the fused convolution draws it */
    const size_t nslice = x->ndim >= 1 && x->shape[0] > 0 && x->n ? (size_t)x->shape[0] : 1;
    if (x->n) dfs_dropout_mask(mask, x->n, nslice, rng, p);
    const float scale = 1.0f / (1.0f - p);
    const long n = (long)x->n;
    const float *xd = x->data;
    float *y = out->data;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) y[i] = (mask[i >> 3] >> (i & 7) & 1) ? xd[i] * scale : 0.0f;
    if (nd) {
        nd->saved = mask;
        nd->f[0] = scale;
        nd->f[1] = p;
    }
    return out;
}

/* ---- losses and reductions ---------------------------------------------------------------- */

/* mse = mean (a - b)^2; d/da = 2 (a - b) / n. b is a target: no gradient. */
static void mse_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *a = nd->in[0], *b = nd->in[1];
    int fresh;
    float *da = dfs_grad_for_write(g, a, &fresh);
    float c = 2.0f * nd->out->grad[0] / (float)a->n;
    const float *x = a->data, *y = b->data;
    long n = (long)a->n;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) da[i] = fresh ? c * (x[i] - y[i]) : da[i] + c * (x[i] - y[i]);
}

dfs_tensor *dfs_mse(dfs_graph *g, dfs_tensor *a, dfs_tensor *b) {
    DFS_ASSERT(a && b && a->n == b->n && a->n > 0);
    dfs_tensor *out = scalar_new(g);
    const float *x = a->data, *y = b->data;
    long n = (long)a->n;
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) {
        double d = (double)x[i] - y[i];
        s += d * d;
    }
    out->data[0] = (float)(s / (double)n);
    /* only a is an input of the recorded op; b rides along in in[1] for backward */
    dfs_node *nd = dfs_record(g, mse_bw, out, 1, &a);
    if (nd) nd->in[1] = b;
    return out;
}

static void mean_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    float *dx = dfs_grad(g, x);
    float c = nd->out->grad[0] / (float)x->n;
    long n = (long)x->n;
#pragma omp parallel for if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) dx[i] += c;
}

dfs_tensor *dfs_mean(dfs_graph *g, dfs_tensor *x) {
    DFS_ASSERT(x && x->n > 0);
    dfs_tensor *out = scalar_new(g);
    const float *xd = x->data;
    long n = (long)x->n;
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) s += xd[i];
    out->data[0] = (float)(s / (double)n);
    dfs_record(g, mean_bw, out, 1, &x);
    return out;
}

/* ---- sinusoidal timestep embedding (Vaswani et al. 2017 sec. 3.5; Ho et al. 2020 app. B) ---
 * out[j] = [sin(t_j f_0) .. sin(t_j f_{h-1}), cos(t_j f_0) .. cos(t_j f_{h-1})], h = dim / 2,
 * f_i = exp(-ln(10000) i / h). An odd dim gets a zero last column. No gradient. */
dfs_tensor *dfs_timestep_embedding(dfs_graph *g, const int *t, int n, int dim) {
    DFS_ASSERT(n >= 0 && (n == 0 || t) && dim >= 2);
    int h = dim / 2;
    dfs_tensor *out = dfs_tensor_new(g, 2, (int[]){n, dim}); // (n, dim)
    for (int j = 0; j < n; j++) {
        float *row = out->data + (size_t)j * dim;
        for (int i = 0; i < h; i++) {
            double arg = (double)t[j] * exp(-log(10000.0) * i / h);
            row[i] = (float)sin(arg);
            row[h + i] = (float)cos(arg);
        }
        if (dim & 1) row[dim - 1] = 0.0f;
    }
    return out;
}
