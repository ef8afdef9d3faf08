/* ops/shape.c - ops that move data without arithmetic: reshape, concat, slice, nearest
 * upsampling. Each backward routes the output gradient back to where the element came from.
 *
 * Size key: N batch, C channels, H W height width, F upsampling factor. A tensor seen around
 * one dim d is (outer, len_d, inner) with outer = prod shape[:d], inner = prod shape[d+1:].
 * Copies of more than PAR_MIN floats are split over threads; a backward that writes the whole
 * gradient of an input with no gradient buffer yet stores into it instead of clearing it
 * and adding (dfs_grad_for_write). */

/* Below this many elements an OpenMP region costs more than it saves. */
#define PAR_MIN 32768
#include "ops.h"

#include <string.h>

static void split_dim(const dfs_tensor *t, int dim, size_t *outer, size_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < dim; d++) *outer *= (size_t)t->shape[d];
    for (int d = dim + 1; d < t->ndim; d++) *inner *= (size_t)t->shape[d];
}

/* ---- reshape: a new header over the same data ------------------------------------------- */

static void reshape_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *x = node->in[0];
    int fresh;
    const float *dy = node->out->grad;              // (n)
    float *dx = dfs_grad_for_write(g, x, &fresh);   // (n)
    long n = (long)x->n;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long i = 0; i < n; i++) dx[i] = fresh ? dy[i] : dx[i] + dy[i];
}

dfs_tensor *dfs_reshape(dfs_graph *g, dfs_tensor *x, int ndim, const int *shape) {
    DFS_ASSERT(ndim >= 0 && ndim <= DFS_MAXDIM);
    DFS_ASSERT(dfs_shape_numel(ndim, shape) == x->n);
    /* out->grad is its own buffer (allocated on demand), so the data is shared but the
     * gradients are not, and backward adds one into the other. */
    dfs_tensor *out = dfs_tensor_wrap(g, x->data, ndim, shape);
    dfs_record(g, reshape_backward, out, 1, (dfs_tensor *[]){x});
    return out;
}

/* ---- concat along dim ----------------------------------------------------------------------- */

static void concat_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *a = node->in[0], *b = node->in[1];
    const int dim = node->i[0];
    size_t outer, inner;
    split_dim(a, dim, &outer, &inner);
    const size_t ra = (size_t)a->shape[dim] * inner, rb = (size_t)b->shape[dim] * inner;
    const float *dy = node->out->grad; // (outer, ra + rb)
    int fa = 0, fb = 0;
    float *da = a->requires_grad ? dfs_grad_for_write(g, a, &fa) : NULL;
    float *db = b->requires_grad ? dfs_grad_for_write(g, b, &fb) : NULL; // a == b: fb = 0
#pragma omp parallel for schedule(static) if (outer * (ra + rb) >= PAR_MIN)
    for (long o = 0; o < (long)outer; o++) {
        const float *src = dy + o * (ra + rb);
        if (da && fa)
            memcpy(da + o * ra, src, ra * sizeof(float));
        else if (da)
            for (size_t i = 0; i < ra; i++) da[o * ra + i] += src[i];
        if (db && fb)
            memcpy(db + o * rb, src + ra, rb * sizeof(float));
        else if (db)
            for (size_t i = 0; i < rb; i++) db[o * rb + i] += src[ra + i];
    }
}

dfs_tensor *dfs_concat(dfs_graph *g, dfs_tensor *a, dfs_tensor *b, int dim) {
    DFS_ASSERT(a->ndim == b->ndim);
    if (dim < 0) dim += a->ndim;
    DFS_ASSERT(dim >= 0 && dim < a->ndim);
    for (int d = 0; d < a->ndim; d++) DFS_ASSERT(d == dim || a->shape[d] == b->shape[d]);
    int shape[DFS_MAXDIM];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] = a->shape[dim] + b->shape[dim];
    dfs_tensor *out = dfs_tensor_new(g, a->ndim, shape);
    size_t outer, inner;
    split_dim(a, dim, &outer, &inner);
    const size_t ra = (size_t)a->shape[dim] * inner, rb = (size_t)b->shape[dim] * inner;
#pragma omp parallel for schedule(static) if (outer * (ra + rb) >= PAR_MIN)
    for (long o = 0; o < (long)outer; o++) {
        float *dst = out->data + o * (ra + rb); // (ra + rb)
        memcpy(dst, a->data + o * ra, ra * sizeof(float));
        memcpy(dst + ra, b->data + o * rb, rb * sizeof(float));
    }
    dfs_node *n = dfs_record(g, concat_backward, out, 2, (dfs_tensor *[]){a, b});
    if (n) n->i[0] = dim;
    return out;
}

/* ---- slice: x[..., start:start+len, ...] (a copy) ------------------------------------------ */

static void slice_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *x = node->in[0];
    const int dim = node->i[0], start = node->i[1], len = node->i[2];
    size_t outer, inner;
    split_dim(x, dim, &outer, &inner);
    const size_t rx = (size_t)x->shape[dim] * inner, ry = (size_t)len * inner;
    const float *dy = node->out->grad; // (outer, ry)
    float *dx = dfs_grad(g, x);        // (outer, rx)
#pragma omp parallel for schedule(static) if (outer * ry >= PAR_MIN)
    for (long o = 0; o < (long)outer; o++) {
        float *d = dx + o * rx + (size_t)start * inner;
        const float *s = dy + o * ry;
        for (size_t i = 0; i < ry; i++) d[i] += s[i];
    }
}

dfs_tensor *dfs_slice(dfs_graph *g, dfs_tensor *x, int dim, int start, int len) {
    if (dim < 0) dim += x->ndim;
    DFS_ASSERT(dim >= 0 && dim < x->ndim);
    DFS_ASSERT(start >= 0 && len >= 0 && start <= x->shape[dim] - len);
    int shape[DFS_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = len;
    dfs_tensor *out = dfs_tensor_new(g, x->ndim, shape);
    size_t outer, inner;
    split_dim(x, dim, &outer, &inner);
    const size_t rx = (size_t)x->shape[dim] * inner, ry = (size_t)len * inner;
#pragma omp parallel for schedule(static) if (outer * ry >= PAR_MIN)
    for (long o = 0; o < (long)outer; o++)
        memcpy(out->data + o * ry, x->data + o * rx + (size_t)start * inner, ry * sizeof(float));
    dfs_node *n = dfs_record(g, slice_backward, out, 1, (dfs_tensor *[]){x});
    if (n) {
        n->i[0] = dim;
        n->i[1] = start;
        n->i[2] = len;
    }
    return out;
}

/* ---- nearest upsampling: out[n,c,h,w] = x[n,c,h/F,w/F] ------------------------------------ */

static void upsample_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *x = node->in[0];
    const int F = node->i[0], H = x->shape[2], W = x->shape[3], Wo = W * F;
    const size_t planes = (size_t)x->shape[0] * x->shape[1];
    const float *dy = node->out->grad;            // (N*C, H*F, W*F)
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh); // (N*C, H, W)
    /* dx[h, w] (+)= the sum of the F x F block of dy that it was copied to */
#pragma omp parallel for schedule(static) if (x->n * F * F >= PAR_MIN)
    for (long p = 0; p < (long)planes; p++) {
        const float *d = dy + (size_t)p * H * F * Wo;
        float *s = dx + (size_t)p * H * W;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                float acc = 0.0f;
                for (int a = 0; a < F; a++)
                    for (int b = 0; b < F; b++) acc += d[(size_t)(h * F + a) * Wo + w * F + b];
                s[h * W + w] = fresh ? acc : s[h * W + w] + acc;
            }
    }
}

dfs_tensor *dfs_upsample_nearest(dfs_graph *g, dfs_tensor *x, int factor) {
    DFS_ASSERT(x->ndim == 4 && factor >= 1);
    const int F = factor, H = x->shape[2], W = x->shape[3], Wo = W * F;
    dfs_tensor *out = dfs_tensor_new(g, 4, (int[]){x->shape[0], x->shape[1], H * F, Wo});
    const size_t planes = (size_t)x->shape[0] * x->shape[1];
#pragma omp parallel for schedule(static) if (out->n >= PAR_MIN)
    for (long p = 0; p < (long)planes; p++) {
        const float *s = x->data + p * (size_t)H * W;  // (H, W)
        float *d = out->data + p * (size_t)H * F * Wo; // (H*F, W*F)
        for (int oh = 0; oh < H * F; oh++)
            for (int ow = 0; ow < Wo; ow++) d[(size_t)oh * Wo + ow] = s[(oh / F) * W + ow / F];
    }
    dfs_node *n = dfs_record(g, upsample_backward, out, 1, (dfs_tensor *[]){x});
    if (n) n->i[0] = F;
    return out;
}
