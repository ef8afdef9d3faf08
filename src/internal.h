/* internal.h - what op implementations need from the engine: the tape. Not public API. */
#ifndef DFS_INTERNAL_H
#define DFS_INTERNAL_H

#include "diffuse.h"

/* One recorded op. backward() reads out->grad and accumulates (+=) into the grads of the
 * inputs that require grad (use dfs_grad() to get, lazily allocating, their buffers). */
typedef struct dfs_node dfs_node;
typedef void (*dfs_backward_fn)(dfs_graph *g, dfs_node *n);
struct dfs_node {
    dfs_backward_fn backward;
    dfs_tensor *out;
    dfs_tensor *in[4];
    int nin;
    int i[8];     /* op integer arguments (stride, pad, dim, ...) */
    float f[4];   /* op float arguments (eps, p, scale, ...) */
    void *saved;  /* arena memory saved by forward for backward (means, masks, ...) */
};

/* If grad recording is on and any input requires grad, append a node, mark out as requiring
 * grad and return the node (fill i/f/saved). Otherwise return NULL (nothing to record). */
dfs_node *dfs_record(dfs_graph *g, dfs_backward_fn fn, dfs_tensor *out, int nin,
                     dfs_tensor *const *in);
/* The gradient buffer of t, allocated from the arena and zeroed on first use. */
float *dfs_grad(dfs_graph *g, dfs_tensor *t);
/* Reusable scratch memory outside the arena: slot i is one buffer that grows to the largest
 * size asked for and is reused by every later call (valid until the next call for that slot).
 * For temporaries that die within one op, such as im2col columns. */
#define DFS_SCRATCH_SLOTS 4
void *dfs_graph_scratch(dfs_graph *g, int slot, size_t bytes);
/* Training flag and dropout generator of the graph. */
int dfs_graph_training(const dfs_graph *g);
dfs_rng *dfs_graph_rng(dfs_graph *g);
/* Tensor with the same shape as x. */
dfs_tensor *dfs_tensor_like(dfs_graph *g, const dfs_tensor *x);
size_t dfs_shape_numel(int ndim, const int *shape);

#endif
