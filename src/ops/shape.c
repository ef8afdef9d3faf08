/* ops/shape.c - ops that move data without arithmetic: reshape, concat, slice, nearest
 * upsampling, permute. Each backward routes the output gradient back to where the element came
 * from.
 *
 * Size key: N batch, C channels, H W height width, F upsampling factor; for permute's CSDI
 * example B batch, K features, L time steps, C channels. A tensor seen around
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

/* ---- permute: out.shape[i] = x.shape[perm[i]] (a copy) ---------------------------------------
 * Output element (o_0 .. o_{n-1}) is x's element with index o_i along dim perm[i]. The dims at
 * the end that perm leaves in place (perm[i] == i for i >= k) form rows of `inner` floats that
 * are contiguous in both tensors and are copied whole; the k dims before them are walked as an
 * odometer, in chunks that the threads share. (B, K, L, C) -> (B, L, K, C) is thus B L K
 * memcpys of C floats. When the last dim moves (k == n) the rows are the output's last dim,
 * gathered with x's stride along perm[n-1]. Backward is the inverse permutation of dout. As
 * torch.permute, but a copy rather than a strided view: tensors here are always contiguous. */

/* dst (+)= src permuted by perm: src has ndim dims of shape s; add accumulates. */
static void permute_copy(float *dst, const float *src, int ndim, const int *s, const int *perm,
                         int add) {
    /* src's strides; the output's shape and its dims' strides in src */
    size_t st[DFS_MAXDIM], os[DFS_MAXDIM], is[DFS_MAXDIM];
    size_t n = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        st[d] = n;
        n *= (size_t)s[d];
    }
    if (n == 0) return;
    for (int d = 0; d < ndim; d++) {
        os[d] = (size_t)s[perm[d]];
        is[d] = st[perm[d]];
    }
    int k = ndim; /* dims k.. stay in place */
    while (k > 0 && perm[k - 1] == k - 1) k--;
    size_t inner = 1, len, step; /* each row: len floats, step apart in src (1: contiguous) */
    for (int d = k; d < ndim; d++) inner *= os[d];
    int nd = k; /* dims of the odometer over rows */
    if (k == ndim && ndim > 0) {
        nd = ndim - 1, len = os[ndim - 1], step = is[ndim - 1];
    } else {
        len = inner, step = 1;
    }
    const size_t rows = n / len;
    /* chunks of rows, one odometer start each: enough for the threads to share evenly */
    const long nchunk = (long)(rows < 256 ? rows : 256);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long c = 0; c < nchunk; c++) {
        const size_t r0 = rows * (size_t)c / (size_t)nchunk,
                     r1 = rows * (size_t)(c + 1) / (size_t)nchunk;
        size_t idx[DFS_MAXDIM], off = 0, r = r0;
        for (int d = nd - 1; d >= 0; d--) { /* unravel r0 over os[0..nd) */
            idx[d] = r % os[d];
            r /= os[d];
            off += idx[d] * is[d];
        }
        for (size_t row = r0; row < r1; row++) {
            float *dr = dst + row * len;  // (len)
            const float *sr = src + off;  // (len) step apart
            if (step == 1 && !add)
                memcpy(dr, sr, len * sizeof(float));
            else if (step == 1)
                for (size_t j = 0; j < len; j++) dr[j] += sr[j];
            else if (!add)
                for (size_t j = 0; j < len; j++) dr[j] = sr[j * step];
            else
                for (size_t j = 0; j < len; j++) dr[j] += sr[j * step];
            for (int d = nd - 1; d >= 0; d--) { /* next row: the odometer, carries leftwards */
                off += is[d];
                if (++idx[d] < os[d]) break;
                off -= idx[d] * is[d];
                idx[d] = 0;
            }
        }
    }
}

static void permute_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *x = node->in[0];
    const int nd = x->ndim;
    int inv[DFS_MAXDIM];
    for (int d = 0; d < nd; d++) inv[node->i[d]] = d;
    int fresh;
    float *dx = dfs_grad_for_write(g, x, &fresh); // (x's shape)
    /* dx = dout (out's shape) permuted by the inverse */
    permute_copy(dx, node->out->grad, nd, node->out->shape, inv, !fresh);
}

dfs_tensor *dfs_permute(dfs_graph *g, dfs_tensor *x, const int *perm) {
    _Static_assert(DFS_MAXDIM <= sizeof ((dfs_node *)0)->i / sizeof(int),
                   "dfs_node.i holds the permutation");
    DFS_ASSERT(x && (x->ndim == 0 || perm));
    const int nd = x->ndim;
    int shape[DFS_MAXDIM] = {0}, seen[DFS_MAXDIM] = {0};
    for (int d = 0; d < nd; d++) {
        DFS_ASSERT(perm[d] >= 0 && perm[d] < nd && !seen[perm[d]]); /* a permutation of 0..n-1 */
        seen[perm[d]] = 1;
        shape[d] = x->shape[perm[d]];
    }
    dfs_tensor *out = dfs_tensor_new(g, nd, shape);
    permute_copy(out->data, x->data, nd, x->shape, perm, 0);
    dfs_node *n = dfs_record(g, permute_backward, out, 1, (dfs_tensor *[]){x});
    if (n)
        for (int d = 0; d < nd; d++) n->i[d] = perm[d];
    return out;
}
