/* ops/loss.c - softmax cross-entropy over integer labels, with its backward and a plain
 * reference implementation.
 *
 * Size key: N batch (rows), K classes (the last dim of the logits).
 *
 * For logits z (N, K) and labels y (N), the loss is the mean negative log-likelihood of the
 * softmax (Bridle 1990; Goodfellow, Bengio & Courville 2016, sec. 6.2.2.3):
 *   L = 1/N sum_i [ logsumexp(z_i) - z_i[y_i] ],  logsumexp(z) = m + log sum_k exp(z_k - m)
 * with m = max_k z_k, so that no exp overflows and the largest term is exp(0) = 1 (stable
 * for any finite logits). Its gradient is
 *   dL/dz_ik = (softmax(z_i)_k - [k == y_i]) / N,  softmax(z_i)_k = exp(z_ik - logsumexp(z_i))
 * This is PyTorch's F.cross_entropy(z, y) with reduction="mean" and no class weights. */
#include "ops.h"

#include <math.h>
#include <string.h>

/* The max m of one row of K floats and log sum_k exp(z_k - m) (in double). */
static void row_lse(const float *z, int K, float *m_out, double *logs_out) {
    float m = z[0];
    for (int k = 1; k < K; k++)
        m = z[k] > m ? z[k] : m;
    double s = 0;
    for (int k = 0; k < K; k++)
        s += exp((double)z[k] - m);
    *m_out = m;
    *logs_out = log(s);
}

/* saved: per row the max m and log s (2N floats), then the labels (N ints). The backward
 * forms softmax as exp((z - m) - log s): z - m is exact for nearby floats, so large logits
 * (a row near 500, say) lose no precision to a rounded logsumexp. */
static void cross_entropy_bw(dfs_graph *g, dfs_node *nd) {
    dfs_tensor *x = nd->in[0];
    const int N = nd->i[0], K = nd->i[1];
    const float *ms = nd->saved;                           // (N, 2): m, log s
    const int *labels = (const int *)(ms + 2 * (size_t)N); // (N)
    const float c = nd->out->grad[0] / (float)N;           // dL/dloss, mean over the batch
    float *dx = dfs_grad(g, x);                            // (N, K)
    const float *z = x->data;                              // (N, K)
    for (int i = 0; i < N; i++) {
        const float *zi = z + (size_t)i * K;
        const float m = ms[2 * i], logs = ms[2 * i + 1];
        float *di = dx + (size_t)i * K;
        for (int k = 0; k < K; k++)
            di[k] += c * expf((zi[k] - m) - logs);
        di[labels[i]] -= c;
    }
}

dfs_tensor *dfs_cross_entropy(dfs_graph *g, dfs_tensor *logits, const int *labels) {
    DFS_ASSERT(logits && labels);
    DFS_ASSERT(logits->ndim == 2 && logits->shape[0] > 0 && logits->shape[1] > 0);
    const int N = logits->shape[0], K = logits->shape[1];
    for (int i = 0; i < N; i++)
        DFS_ASSERT(labels[i] >= 0 && labels[i] < K);
    dfs_tensor *out = dfs_tensor_new(g, 1, (int[]){1});
    dfs_node *nd = dfs_record(g, cross_entropy_bw, out, 1, &logits);
    float *ms = NULL;
    if (nd) {
        /* one block: 2N floats then N ints (both 4 bytes, so the ints stay aligned) */
        ms = dfs_graph_alloc(g, (size_t)N * (2 * sizeof(float) + sizeof(int)));
        memcpy(ms + 2 * (size_t)N, labels, (size_t)N * sizeof(int));
        nd->saved = ms;
        nd->i[0] = N;
        nd->i[1] = K;
    }
    double sum = 0;
    for (int i = 0; i < N; i++) {
        const float *zi = logits->data + (size_t)i * K;
        float m;
        double logs;
        row_lse(zi, K, &m, &logs);
        if (ms) ms[2 * i] = m, ms[2 * i + 1] = (float)logs;
        sum += ((double)m - zi[labels[i]]) + logs; /* logsumexp(z_i) - z_i[y_i] */
    }
    out->data[0] = (float)(sum / N);
    return out;
}
