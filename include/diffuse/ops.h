/* diffuse/ops.h - differentiable ops on the tape. Part of diffuse.h. */
#ifndef DIFFUSE_OPS_H
#define DIFFUSE_OPS_H

#include "diffuse/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- Ops ---------------------------------------------------------------------------------- */
/* Each returns a tensor in g's arena and, when g records (dfs_graph_set_grad) and an input
 * requires grad, records its backward on the tape. Wrong shapes stop at DFS_ASSERT. */
/* Size key: N batch, C channels (Ci in, Co out), H W height width, L length, K kernel,
 * B batch of matrices, M K N matrix sizes, D features, V vocabulary, G groups. */

/* out (N,Co,Ho,Wo) = conv(x (N,Ci,H,W), w (Co,Ci,KH,KW)) + b (Co) ; b may be NULL.
 * Cross-correlation, as PyTorch's. Ho = (H + 2 pad - KH) / stride + 1. */
dfs_tensor *dfs_conv2d(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int stride,
                       int pad);
/* out (N,Co,Lo) = conv(x (N,Ci,L), w (Co,Ci,K)) + b (Co). */
dfs_tensor *dfs_conv1d(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int stride,
                       int pad);
/* out (..., O) = x (..., I) w^T + b, w (O, I), b (O) or NULL. */
dfs_tensor *dfs_linear(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b);
/* GroupNorm over (C/G, spatial) per sample and group; x (N,C,...), gamma/beta (C) or NULL
 * (1 and 0). */
dfs_tensor *dfs_group_norm(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                           int groups, float eps);
/* silu(group_norm(x)) in one op, without keeping the normalised tensor (fused: one pass,
 * one activation less). */
dfs_tensor *dfs_group_norm_silu(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma,
                                dfs_tensor *beta, int groups, float eps);
/* LayerNorm over the last dimension; gamma/beta (D) or NULL (1 and 0). */
dfs_tensor *dfs_layer_norm(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                           float eps);
dfs_tensor *dfs_silu(dfs_graph *g, dfs_tensor *x);    /* x * sigmoid(x) */
dfs_tensor *dfs_gelu(dfs_graph *g, dfs_tensor *x);    /* tanh approximation */
dfs_tensor *dfs_sigmoid(dfs_graph *g, dfs_tensor *x); /* 1 / (1 + exp(-x)), stable for any x */
dfs_tensor *dfs_tanh(dfs_graph *g, dfs_tensor *x);    /* tanh(x) */
/* The gated activation of WaveNet and CSDI in one op: x (..., 2C) -> (..., C),
 * sigmoid(x[..., :C]) * tanh(x[..., C:]); its tanh is 2 sigmoid(2b) - 1, vectorised, within 4e-7
 * absolutely. */
dfs_tensor *dfs_gated_tanh(dfs_graph *g, dfs_tensor *x);
dfs_tensor *dfs_relu(dfs_graph *g, dfs_tensor *x);    /* max(x, 0); gradient 0 at x = 0 */
/* Elementwise with NumPy broadcasting (shapes aligned on the right). */
dfs_tensor *dfs_add(dfs_graph *g, dfs_tensor *a, dfs_tensor *b);
dfs_tensor *dfs_mul(dfs_graph *g, dfs_tensor *a, dfs_tensor *b);
dfs_tensor *dfs_scale(dfs_graph *g, dfs_tensor *a, float s);
/* Same data, new shape (same element count): a view, no copy. */
dfs_tensor *dfs_reshape(dfs_graph *g, dfs_tensor *x, int ndim, const int *shape);
/* Join along dim (other dims equal; a negative dim counts from the end). */
dfs_tensor *dfs_concat(dfs_graph *g, dfs_tensor *a, dfs_tensor *b, int dim);
/* x[..., start:start+len, ...] along dim, copied (a negative dim counts from the end). */
dfs_tensor *dfs_slice(dfs_graph *g, dfs_tensor *x, int dim, int start, int len);
/* Dims reordered, copied: out.shape[i] = x.shape[perm[i]] for i < x->ndim (as torch.permute). */
dfs_tensor *dfs_permute(dfs_graph *g, dfs_tensor *x, const int *perm);
/* Nearest-neighbour upsampling of (N,C,H,W) by an integer factor. */
dfs_tensor *dfs_upsample_nearest(dfs_graph *g, dfs_tensor *x, int factor);
/* Softmax over the last dimension. */
dfs_tensor *dfs_softmax(dfs_graph *g, dfs_tensor *x);
/* Batched matmul: a (B,M,K) (or (B,K,M) if ta), b (B,K,N) (or (B,N,K) if tb) -> (B,M,N). */
dfs_tensor *dfs_bmm(dfs_graph *g, dfs_tensor *a, dfs_tensor *b, int ta, int tb);
/* Swap the last two dimensions: (..., A, B) -> (..., B, A). */
dfs_tensor *dfs_transpose(dfs_graph *g, dfs_tensor *x);
/* Multi-head scaled dot-product attention (Vaswani et al. 2017 eq. 1): q (N, Lq, D),
 * k (N, Lk, D), v (N, Lk, Dv) -> (N, Lq, Dv); head i uses columns [i D/h, (i+1) D/h) of q and k
 * and [i Dv/h, (i+1) Dv/h) of v and the output. key_mask (N, Lk) or NULL: 0 hides a key (a
 * padding token) from every query; a query with every key hidden gets zeros. The mask is read
 * during the call only. src/ops/attn.c. */
dfs_tensor *dfs_attention(dfs_graph *g, dfs_tensor *q, dfs_tensor *k, dfs_tensor *v, int heads,
                          const uint8_t *key_mask);
/* Rows of table (V,D) picked by idx[0..n-1] -> (n, D). idx is copied. */
dfs_tensor *dfs_embedding(dfs_graph *g, dfs_tensor *table, const int *idx, int n);
/* Inverted dropout with probability p in [0, 1) in training mode (dfs_graph_set_training);
 * otherwise, or with p = 0, it returns x itself. */
dfs_tensor *dfs_dropout(dfs_graph *g, dfs_tensor *x, float p);
/* Softmax cross-entropy, mean over the batch: logits (N, K), labels[N] in [0, K) (copied).
 * L = 1/N sum_i logsumexp(z_i) - z_i[y_i], computed with the max shift. Scalar output. */
dfs_tensor *dfs_cross_entropy(dfs_graph *g, dfs_tensor *logits, const int *labels);
/* Scalar mean of (a - b)^2 over the a->n == b->n elements; b is the target (no gradient flows
 * into b). */
dfs_tensor *dfs_mse(dfs_graph *g, dfs_tensor *a, dfs_tensor *b);
/* Scalar mean of all elements. */
dfs_tensor *dfs_mean(dfs_graph *g, dfs_tensor *x);

/* Sinusoidal timestep embedding (no gradient): out (n, dim), sines first, then cosines,
 * f_i = exp(-ln(10000) i / (dim/2)); an odd dim gets a zero last column (Ho et al. 2020,
 * after Vaswani et al. 2017). */
dfs_tensor *dfs_timestep_embedding(dfs_graph *g, const int *t, int n, int dim);

/* --- Graph ops for EGNNs on padded molecules (src/ops/graph.c) ---------------------------- */
/* An E(n)-equivariant graph network (Satorras et al. 2021; EDM's form, Hoogeboom et al. 2022)
 * on dense batches: positions x (B, M, 3) and node features h (B, M, C) of B molecules padded
 * to M atoms, edge arrays (B, M, M, C) with edge i -> j at [b, i, j, :]. Padding is handled by
 * the constant weights of dfs_pair_sum and the mask of dfs_center_masked. EDM's coordinate
 * update sum_j (x_i - x_j) / (sqrt(||x_i - x_j||^2 + 1e-8) + 1) phi_ij, for instance:
 *     d = dfs_pair_diff(g, x);                                      // (B, M, M, 3)
 *     r = dfs_add_scalar(g, dfs_sqrt(g, dfs_sum_last(g, dfs_mul(g, d, d)), 1e-8f), 1.0f);
 *     u = dfs_mul(g, dfs_mul(g, d, dfs_recip(g, r)), phi);          // phi (B, M, M, 1)
 *     x_new = dfs_add(g, x, dfs_pair_sum(g, u, w));                 // (B, M, 3)
 * dfs_mul and dfs_add broadcast (B, M, M, 3) against (B, M, M, 1). */
/* h (B, M, C) -> (B, M, M, C): out[b,i,j,:] = h[b,i,:] (which 0) or h[b,j,:] (which 1). */
dfs_tensor *dfs_pair_expand(dfs_graph *g, dfs_tensor *h, int which);
/* x (B, M, D) -> (B, M, M, D): out[b,i,j,:] = x[b,i,:] - x[b,j,:] (0 on the diagonal). */
dfs_tensor *dfs_pair_diff(dfs_graph *g, dfs_tensor *x);
/* e (B, M, M, C) -> (B, M, C): out[b,i,:] = sum_j w[b,i,j] e[b,i,j,:]. w (B, M, M) is a
 * constant (no gradient; copied), NULL for all ones; for an EGNN, node_mask_i node_mask_j
 * (i != j) / normalisation. */
dfs_tensor *dfs_pair_sum(dfs_graph *g, dfs_tensor *e, const float *w);
/* a, c (B, M, C), e (B, M, M, K), w (C, K) -> (B, M, M, C):
 * out[b,i,j,:] = silu(a[b,i,:] + c[b,j,:] + w e[b,i,j,:]); e and w both NULL for no edge term.
 * An EGNN edge MLP's first layer SiLU(Linear([h_i, h_j, e_ij])) with weight [W_a W_b W_e] and
 * bias b is dfs_pair_silu(linear(h, W_a, b), linear(h, W_b), e, W_e): the node terms per atom
 * (M rows, not M^2), no (B, M, M, 2C + K) concatenation, no pre-activation kept (backward
 * recomputes it). a may be c. */
dfs_tensor *dfs_pair_silu(dfs_graph *g, dfs_tensor *a, dfs_tensor *c, dfs_tensor *e,
                          dfs_tensor *w);
/* e (B, M, M, C), s (B, M, M, 1) -> (B, M, C): out[b,i,:] = sum_j w[b,i,j] s[b,i,j] e[b,i,j,:],
 * w as dfs_pair_sum's (constant, copied; NULL for all ones), s a tensor with a gradient: the
 * gated sums of an EGNN (attention on messages, phi_ij on coordinate differences) without the
 * gated (B, M, M, C) array. */
dfs_tensor *dfs_pair_sum_gated(dfs_graph *g, dfs_tensor *e, dfs_tensor *s, const float *w);
/* (..., D) -> (..., 1): the sum over the last dim. */
dfs_tensor *dfs_sum_last(dfs_graph *g, dfs_tensor *x);
/* Elementwise sqrt(x + eps), 1 / x and x + b. Domains are not checked: x + eps < 0 gives NaN,
 * x + eps == 0 gives 0 with an infinite gradient, 1 / 0 is inf (and so its gradient). */
dfs_tensor *dfs_sqrt(dfs_graph *g, dfs_tensor *x, float eps);
dfs_tensor *dfs_recip(dfs_graph *g, dfs_tensor *x);
dfs_tensor *dfs_add_scalar(dfs_graph *g, dfs_tensor *x, float b);
/* x (B, M, D) minus the mean over each molecule's atoms present (mask (B, M) != 0; copied),
 * 0 on padding atoms and for a molecule with none (EDM's remove_mean_with_mask). Backward is
 * the same projection (it is symmetric). */
dfs_tensor *dfs_center_masked(dfs_graph *g, dfs_tensor *x, const uint8_t *mask);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_OPS_H */
