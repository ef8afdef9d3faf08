/* diffuse/engine.h - tensors, the graph (arena + tape) and reverse-mode gradients. Part of diffuse.h. */
#ifndef DIFFUSE_ENGINE_H
#define DIFFUSE_ENGINE_H

#include "diffuse/base.h"

#include <setjmp.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Engine: tensors, graph (arena + tape), backward                                             */
/* ------------------------------------------------------------------------------------------ */

typedef struct dfs_tensor {
    float *data;       /* n floats, row-major */
    float *grad;       /* n floats or NULL; allocated (zeroed) on first use in backward */
    int ndim;
    int shape[DFS_MAXDIM];
    size_t n;          /* number of elements */
    int requires_grad; /* gradient flows into this tensor (params, or results of ops on them) */
    const char *name;  /* parameter name, NULL for activations */
} dfs_tensor;          /* the graph keeps what else it needs of the tensors it makes */

typedef struct dfs_graph dfs_graph;

/* A graph owns an arena for activations and the tape of recorded ops. Reset empties both and
 * keeps the memory (a step that needed several chunks leaves one chunk as large as the largest
 * step), so steady-state steps do not call malloc. dfs_graph_new returns NULL when out of
 * memory. A graph is used by one thread at a time. */
dfs_graph *dfs_graph_new(void);
void dfs_graph_free(dfs_graph *g);
void dfs_graph_reset(dfs_graph *g);
/* Record ops for backward (default 1). With 0, ops only compute (no-grad inference). */
void dfs_graph_set_grad(dfs_graph *g, int enabled);
int dfs_graph_grad_enabled(const dfs_graph *g);
/* Training mode turns dropout on (default 0). Dropout draws from rng, which the graph keeps a
 * pointer to and which must not be NULL while training mode has dropout to do. */
void dfs_graph_set_training(dfs_graph *g, int training, dfs_rng *rng);
/* Bytes of arena handed out since the last reset, and bytes the arena holds now. */
size_t dfs_graph_bytes_used(const dfs_graph *g);
size_t dfs_graph_bytes_reserved(const dfs_graph *g);

/* Arena memory, 64-byte aligned, valid until the next reset. Contents uninitialised. When
 * memory runs out (or the activation limit below is reached) inside an op there is no way back
 * through the op's callers: with a jump buffer set by dfs_graph_set_oom_jump the allocation
 * sets dfs_last_error and longjmps to it (the graph is then only fit for dfs_graph_reset);
 * without one it prints the error on stderr and calls exit(2). dfs_trainer_step,
 * dfs_model_predict (and so dfs_sample and dfs_nll_bpd when it is their dfs_model_fn),
 * dfs_classifier_forward[_u8] (and so dfs_classifier_evaluate) and dfs_classifier_train set one
 * and return DFS_ERR_NOMEM; a program that runs its own graphs can do the same. The jump must
 * stay within the thread that set it. jb = NULL removes it. */
void *dfs_graph_alloc(dfs_graph *g, size_t bytes);
void dfs_graph_set_oom_jump(dfs_graph *g, jmp_buf *jb);
/* The most arena memory one graph may hold, in bytes (0 = no limit, the default): a memory
 * budget for activations, past which allocation fails as above. Checked when an arena grows:
 * a graph already holding more keeps it. Process-wide. */
void dfs_set_activation_limit(size_t bytes);
/* New tensor in the arena. _new leaves data uninitialised, _zeros clears it. */
dfs_tensor *dfs_tensor_new(dfs_graph *g, int ndim, const int *shape);
dfs_tensor *dfs_tensor_zeros(dfs_graph *g, int ndim, const int *shape);
/* Tensor header in the arena over caller-owned data (no copy, no grad). */
dfs_tensor *dfs_tensor_wrap(dfs_graph *g, float *data, int ndim, const int *shape);
/* In a graph that does not record (dfs_graph_set_grad(g, 0)), hand t's data back so that
 * later tensors of this graph reuse it (inference then needs memory for the live tensors only,
 * not for all of them); t must not be read afterwards. A no-op while recording, and for
 * tensors that do not own their data (dfs_tensor_wrap, dfs_reshape views). */
void dfs_tensor_release(dfs_graph *g, dfs_tensor *t);

/* Reverse-mode differentiation: loss must be a scalar (n == 1). Walks the tape backwards;
 * gradients are accumulated (+=) into every tensor that requires grad, parameters included.
 * The gradient buffers of the results of recorded ops (other than loss) are recycled on the
 * way: their grad is NULL afterwards. */
void dfs_backward(dfs_graph *g, dfs_tensor *loss);
/* The same from any output, seeded with dout (out->n floats): vector-Jacobian products. */
void dfs_backward_grad(dfs_graph *g, dfs_tensor *out, const float *dout);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_ENGINE_H */
