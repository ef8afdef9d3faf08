/* ops_ref_cls.h - plain reference kernels of the classifier's ops (src/ops_loss.c), which tests
 * check the ops against. Not public API.
 *
 * Size key: N batch, K classes. Row-major. */
#ifndef DFS_OPS_REF_CLS_H
#define DFS_OPS_REF_CLS_H

/* Mean softmax cross-entropy of logits z (N, K) against labels (N), straight from the
 * definition -log(exp(z_y) / sum_k exp(z_k)) in double, without the max shift (exact for
 * |z| below ~700). When dz (N, K) is not NULL it gets the gradient (softmax - onehot) / N. */
double dfs_cross_entropy_reference(double *dz, const float *z, const int *labels, int N, int K);

#endif
