/* tape.h - what op implementations need from the engine: the tape and gradient buffers. Not
 * public API. */
#ifndef DFS_TAPE_H
#define DFS_TAPE_H

#include "diffuse/engine.h"
#include "../base/private.h"

/* One recorded op. backward() reads out->grad and accumulates (+=) into the grads of the
 * inputs that require grad (use dfs_grad() to get, lazily allocating, their buffers). */
typedef struct dfs_node dfs_node;
typedef void (*dfs_backward_fn)(dfs_graph *g, dfs_node *n);
struct dfs_node {
    dfs_backward_fn backward;
    dfs_tensor *out;
    dfs_tensor *in[8]; /* inputs (NULL allowed); only 0..3 for ops before the fused conv */
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
/* The same, except that a buffer handed out on first use is not cleared: for a caller that
 * then writes every element (dfs_grad_for_write below). */
float *dfs_grad_uncleared(dfs_graph *g, dfs_tensor *t);
/* The gradient buffer of t for a backward that writes every element of it. *fresh is 1 when t
 * had no gradient yet: the buffer (from the engine's pool of recycled gradient buffers, or
 * the arena) is then NOT cleared, and the caller must store (=) into every element instead of
 * adding, which saves both the clearing and the read. */
float *dfs_grad_for_write(dfs_graph *g, dfs_tensor *t, int *fresh);
/* Reusable scratch memory outside the arena: slot i is one buffer that grows to the largest
 * size asked for and is reused by every later call (valid until the next call for that slot).
 * For temporaries that die within one op, such as im2col columns. */
#define DFS_SCRATCH_SLOTS 4
void *dfs_graph_scratch(dfs_graph *g, int slot, size_t bytes);
/* In a function that runs graph g and returns dfs_status, with a jmp_buf jb of its own: from
 * here on, an allocation in g that fails (dfs_graph_alloc) comes back to this point, which
 * resets g and returns DFS_ERR_NOMEM from the function (the error is set). A macro because
 * setjmp must be called in the frame that stays live; the function must call
 * dfs_graph_set_oom_jump(g, NULL) before it returns normally, and no local it changes after
 * this point may be read on the way out. */
#define DFS_RETURN_ON_OOM(g, jb)                \
    do {                                        \
        if (setjmp(jb)) {                       \
            dfs_graph_set_oom_jump((g), NULL);  \
            dfs_graph_reset(g);                 \
            return DFS_ERR_NOMEM;               \
        }                                       \
        dfs_graph_set_oom_jump((g), &(jb));     \
    } while (0)
/* Release t's data even while recording (dfs_tensor_release does not): for a tensor whose
 * values no recorded backward reads, e.g. one that only feeds an addition or a slice. */
void dfs_tensor_release_dead(dfs_graph *g, dfs_tensor *t);
/* With on set, backward hands each activation's data to the pool as soon as the backward of
 * the op that made it has run, where later gradient buffers reuse it: the peak memory of a
 * training step is then about that of its forward pass. The values of the graph's tensors
 * (except the one backward starts from) are then invalid after backward. Off by default. */
void dfs_graph_set_recycle(dfs_graph *g, int on);
/* Gradients of tensors whose grad lies in [base, base + n) (the parameters: one block, see
 * dfs_params) go to the same offsets of block instead, for this graph only: the private
 * gradients of one data-parallel worker (train.c). block NULL turns it off. */
void dfs_graph_redirect_grads(dfs_graph *g, const float *base, size_t n, float *block);
/* Training flag and dropout generator of the graph. */
int dfs_graph_training(const dfs_graph *g);
dfs_rng *dfs_graph_rng(dfs_graph *g);
/* Tensor with the same shape as x. */
dfs_tensor *dfs_tensor_like(dfs_graph *g, const dfs_tensor *x);
size_t dfs_shape_numel(int ndim, const int *shape);

#endif
