/* ops/matmul.c - fully connected layer and batched matrix product on the tape.
 *
 * Size key: M rows (all leading dims of x flattened), Fi in features, Fo out features
 * (not I and O: <complex.h>, pulled in by cblas.h, defines I),
 * B batch of matrices, M K N matrix sizes. All products go through cblas_sgemm (row-major).
 *
 * For C = A B the vector-Jacobian products are dA = dC B^T and dB = A^T dC (e.g. Goodfellow,
 * Bengio & Courville 2016, "Deep Learning", sec. 6.5.6); they are accumulated (beta = 1), or
 * stored (beta = 0) when the input has no gradient buffer yet.
 *
 * Threads: linear is one GEMM, threaded inside OpenBLAS. bmm runs its B products in one OpenMP
 * loop, one single-threaded GEMM per item (OpenBLAS runs serially inside an OpenMP region):
 * the products are small (49x49 in the U-Net) and B is the batch. */
#include "ops.h"

#include <cblas.h>

/* ---- linear: out (M, Fo) = x (M, Fi) w^T + b ---------------------------------------------- */

static void linear_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const int Fo = w->shape[0], Fi = w->shape[1], M = (int)(x->n / (size_t)Fi);
    const float *dy = node->out->grad; // (M, Fo)
    if (x->requires_grad) {
        /* dx (M, Fi) += dy (M, Fo) w (Fo, Fi) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, Fi, Fo, 1.0f, dy, Fo, w->data, Fi,
                    1.0f, dfs_grad(g, x), Fi);
    }
    if (w->requires_grad) {
        /* dw (Fo, Fi) += dy^T (Fo, M) x (M, Fi) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Fo, Fi, M, 1.0f, dy, Fo, x->data, Fi,
                    1.0f, dfs_grad(g, w), Fi);
    }
    if (b && b->requires_grad) {
        float *db = dfs_grad(g, b); // (Fo)
        for (int m = 0; m < M; m++)
            for (int o = 0; o < Fo; o++) db[o] += dy[(size_t)m * Fo + o];
    }
}

dfs_tensor *dfs_linear(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b) {
    DFS_ASSERT(w->ndim == 2);
    DFS_ASSERT(x->ndim >= 1 && x->shape[x->ndim - 1] == w->shape[1]);
    DFS_ASSERT(!b || (b->ndim == 1 && b->shape[0] == w->shape[0]));
    const int Fo = w->shape[0], Fi = w->shape[1], M = (int)(x->n / (size_t)Fi);
    int shape[DFS_MAXDIM];
    for (int d = 0; d < x->ndim - 1; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = Fo;
    dfs_tensor *out = dfs_tensor_new(g, x->ndim, shape); // (..., Fo)
    float beta = 0.0f;
    if (b) {
        for (int m = 0; m < M; m++)
            for (int o = 0; o < Fo; o++) out->data[(size_t)m * Fo + o] = b->data[o];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, Fo, Fi, 1.0f, x->data, Fi, w->data, Fi,
                beta, out->data, Fo);
    dfs_record(g, linear_backward, out, 3, (dfs_tensor *[]){x, w, b});
    return out;
}

/* ---- bmm: out (B, M, N) = op(a) op(b), op = transpose when the flag is set ---------------- */

/* Matrix sizes of a bmm node: a is (B,M,K) or (B,K,M) if ta; b is (B,K,N) or (B,N,K) if tb. */
typedef struct {
    int B, M, K, N, ta, tb;
} bmm_geom;

static bmm_geom bmm_geom_of(const dfs_tensor *a, const dfs_tensor *b, int ta, int tb) {
    bmm_geom s;
    s.B = a->shape[0];
    s.M = ta ? a->shape[2] : a->shape[1];
    s.K = ta ? a->shape[1] : a->shape[2];
    s.N = tb ? b->shape[1] : b->shape[2];
    s.ta = ta;
    s.tb = tb;
    return s;
}

static void bmm_backward(dfs_graph *g, dfs_node *node) {
    dfs_tensor *a = node->in[0], *b = node->in[1];
    const bmm_geom s = bmm_geom_of(a, b, node->i[0], node->i[1]);
    const int M = s.M, K = s.K, N = s.N;
    const int lda = s.ta ? M : K, ldb = s.tb ? K : N;
    const size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;
    const float *dc = node->out->grad; // (B, M, N)
    int fa = 0, fb = 0;
    float *da = a->requires_grad ? dfs_grad_for_write(g, a, &fa) : NULL;
    float *db = b->requires_grad ? dfs_grad_for_write(g, b, &fb) : NULL; // after da: a == b works
    const float ba = fa ? 0.0f : 1.0f, bb = fb ? 0.0f : 1.0f;
    /* With A' = op(A) (M,K), B' = op(B) (K,N): dA' = dC B'^T, dB' = A'^T dC. A transposed
     * operand receives the transpose: dA = dA'^T = B' dC^T, dB = dB'^T = dC^T A'. */
    const CBLAS_TRANSPOSE TA = s.ta ? CblasTrans : CblasNoTrans;
    const CBLAS_TRANSPOSE TB = s.tb ? CblasTrans : CblasNoTrans;
    const CBLAS_TRANSPOSE NTA = s.ta ? CblasNoTrans : CblasTrans;
    const CBLAS_TRANSPOSE NTB = s.tb ? CblasNoTrans : CblasTrans;
    const int T = dfs_op_threads();
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && s.B > 1)
    for (int i = 0; i < s.B; i++) {
        const float *A = a->data + i * sa, *Bm = b->data + i * sb, *dC = dc + i * sc;
        if (da) {
            if (!s.ta) /* dA (M,K) += dC (M,N) B'^T (N,K) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, NTB, M, K, N, 1.0f, dC, N, Bm, ldb, ba,
                            da + i * sa, lda);
            else /* dA (K,M) += B' (K,N) dC^T (N,M) */
                cblas_sgemm(CblasRowMajor, TB, CblasTrans, K, M, N, 1.0f, Bm, ldb, dC, N, ba,
                            da + i * sa, lda);
        }
        if (db) {
            if (!s.tb) /* dB (K,N) += A'^T (K,M) dC (M,N) */
                cblas_sgemm(CblasRowMajor, NTA, CblasNoTrans, K, N, M, 1.0f, A, lda, dC, N, bb,
                            db + i * sb, ldb);
            else /* dB (N,K) += dC^T (N,M) A' (M,K) */
                cblas_sgemm(CblasRowMajor, CblasTrans, TA, N, K, M, 1.0f, dC, N, A, lda, bb,
                            db + i * sb, ldb);
        }
    }
}

dfs_tensor *dfs_bmm(dfs_graph *g, dfs_tensor *a, dfs_tensor *b, int ta, int tb) {
    DFS_ASSERT(a->ndim == 3 && b->ndim == 3 && a->shape[0] == b->shape[0]);
    const bmm_geom s = bmm_geom_of(a, b, ta, tb);
    DFS_ASSERT((tb ? b->shape[2] : b->shape[1]) == s.K);
    const int lda = ta ? s.M : s.K, ldb = tb ? s.K : s.N;
    const size_t sa = (size_t)s.M * s.K, sb = (size_t)s.K * s.N, sc = (size_t)s.M * s.N;
    dfs_tensor *out = dfs_tensor_new(g, 3, (int[]){s.B, s.M, s.N}); // (B, M, N)
    const int T = dfs_op_threads();
#pragma omp parallel for schedule(static) num_threads(T) if (T > 1 && s.B > 1)
    for (int i = 0; i < s.B; i++)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    s.M, s.N, s.K, 1.0f, a->data + i * sa, lda, b->data + i * sb, ldb, 0.0f,
                    out->data + i * sc, s.N);
    dfs_node *n = dfs_record(g, bmm_backward, out, 2, (dfs_tensor *[]){a, b});
    if (n) {
        n->i[0] = ta ? 1 : 0;
        n->i[1] = tb ? 1 : 0;
    }
    return out;
}
