/* engine.c - the graph: an arena of chunks and a tape of nodes, and reverse-mode gradients. */
#include "tape.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the graph: an arena of chunks and a tape of nodes ------------------------------------ */

typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    unsigned char *mem;
} chunk;

struct dfs_graph {
    chunk *head;      /* current chunk (newest first) */
    size_t used;      /* bytes handed out since reset */
    size_t reserved;  /* total capacity of all chunks */
    size_t peak;      /* most bytes handed out in one step */
    struct grad_block { float *p; size_t cap; } *pool; /* released gradient buffers */
    int npool, cappool;
    void *scratch[DFS_SCRATCH_SLOTS];
    size_t scratch_cap[DFS_SCRATCH_SLOTS];
    dfs_node **tape;
    int ntape, captape;
    int grad_enabled;
    int recycle;      /* backward hands dead activations to the pool (dfs_graph_set_recycle) */
    const float *rbase; /* parameter gradients in [rbase, rbase + rn) go to rblock instead */
    size_t rn;
    float *rblock;
    int training;
    dfs_rng *rng;
    jmp_buf *oom_jmp; /* where an allocation that fails jumps to (dfs_graph_set_oom_jump) */
};

static _Noreturn void graph_oom(dfs_graph *g, size_t more);
static size_t activation_limit; /* bytes of arena one graph may hold; 0 = no limit */

#define ARENA_ALIGN 64
#define ARENA_MIN (1u << 20)

static chunk *chunk_new(size_t cap) {
    chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->mem = aligned_alloc(ARENA_ALIGN, (cap + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!c->mem) {
        free(c);
        return NULL;
    }
    c->cap = cap;
    c->used = 0;
    c->next = NULL;
    return c;
}

dfs_graph *dfs_graph_new(void) {
    dfs_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->grad_enabled = 1;
    return g;
}

static void free_chunks(chunk *c) {
    while (c) {
        chunk *n = c->next;
        free(c->mem);
        free(c);
        c = n;
    }
}

void dfs_graph_free(dfs_graph *g) {
    if (!g) return;
    free_chunks(g->head);
    for (int i = 0; i < DFS_SCRATCH_SLOTS; i++) free(g->scratch[i]);
    free(g->pool);
    free(g->tape);
    free(g);
}

void *dfs_graph_scratch(dfs_graph *g, int slot, size_t bytes) {
    DFS_ASSERT(slot >= 0 && slot < DFS_SCRATCH_SLOTS);
    if (bytes > g->scratch_cap[slot]) {
        free(g->scratch[slot]);
        size_t cap = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
        g->scratch[slot] = aligned_alloc(ARENA_ALIGN, cap);
        if (!g->scratch[slot]) {
            g->scratch_cap[slot] = 0;
            graph_oom(g, cap);
        }
        g->scratch_cap[slot] = cap;
    }
    return g->scratch[slot];
}

void dfs_graph_reset(dfs_graph *g) {
    /* If the last step needed more than one chunk, replace them all with one chunk as big as
     * the largest step so far, so that later steps of the same shape never allocate. */
    if (g->head && g->head->next) {
        size_t total = g->peak;
        free_chunks(g->head);
        g->head = chunk_new(total);
        g->reserved = g->head ? total : 0; /* none: the next step allocates as it goes */
        if (!g->head) g->peak = 0;
    }
    if (g->head) g->head->used = 0;
    g->used = 0;
    g->ntape = 0;
    g->npool = 0;
}

void dfs_graph_set_grad(dfs_graph *g, int enabled) { g->grad_enabled = enabled; }
int dfs_graph_grad_enabled(const dfs_graph *g) { return g->grad_enabled; }
void dfs_graph_set_training(dfs_graph *g, int training, dfs_rng *rng) {
    g->training = training;
    g->rng = rng;
}
int dfs_graph_training(const dfs_graph *g) { return g->training; }
dfs_rng *dfs_graph_rng(dfs_graph *g) { return g->rng; }
size_t dfs_graph_bytes_used(const dfs_graph *g) { return g->used; }
size_t dfs_graph_bytes_reserved(const dfs_graph *g) { return g->reserved; }

void dfs_graph_set_oom_jump(dfs_graph *g, jmp_buf *jb) { g->oom_jmp = jb; }

void dfs_set_activation_limit(size_t bytes) { activation_limit = bytes; }

/* Out of memory inside an op: there is no way back through the op's callers, so jump to the
 * graph's recovery point when its runner set one (dfs_graph_set_oom_jump), else a clear
 * message and exit status 2, no core dump. */
static _Noreturn void graph_oom(dfs_graph *g, size_t more) {
    dfs_set_error("out of memory for activations (%zu MB more, %zu MB held): a smaller batch, image size "
                  "or model", more >> 20, g->reserved >> 20);
    if (g->oom_jmp) longjmp(*g->oom_jmp, 1);
    fprintf(stderr, "diffuse: %s\n", dfs_last_error());
    exit(2);
}

void *dfs_graph_alloc(dfs_graph *g, size_t bytes) {
    if (bytes > SIZE_MAX - ARENA_ALIGN) graph_oom(g, bytes);
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (!g->head || need > g->head->cap - g->head->used) {
        size_t cap = g->reserved / 2 > ARENA_MIN ? g->reserved / 2 : ARENA_MIN;
        if (cap < need) cap = need;
        if (activation_limit) { /* the arena grows to the limit and no further */
            size_t room = g->reserved < activation_limit ? activation_limit - g->reserved : 0;
            if (cap > room) cap = room;
            if (cap < need) graph_oom(g, need);
        }
        chunk *c = chunk_new(cap);
        if (!c) graph_oom(g, cap);
        c->next = g->head;
        g->head = c;
        g->reserved += cap;
    }
    void *p = g->head->mem + g->head->used;
    g->head->used += need;
    g->used += need;
    if (g->used > g->peak) g->peak = g->used;
    return p;
}

size_t dfs_shape_numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        DFS_ASSERT(shape[i] >= 0);
        n *= (size_t)shape[i];
    }
    return n;
}

/* A tensor the graph made, with what only the engine reads: the capacities of its
 * graph-owned data and gradient buffers (0 = not owned), so that they can go back to the pool.
 * Tensors made elsewhere (parameters, a caller's) have no such header: owned() tells them
 * apart by whether the tensor lies in the graph's arena. */
typedef struct {
    dfs_tensor t;
    size_t data_cap, grad_cap;
} owned_tensor;

static owned_tensor *owned(const dfs_graph *g, dfs_tensor *t) {
    const uintptr_t p = (uintptr_t)t;
    for (const chunk *c = g->head; c; c = c->next)
        if (p >= (uintptr_t)c->mem && p < (uintptr_t)c->mem + c->used) return (owned_tensor *)t;
    return NULL;
}

static dfs_tensor *tensor_header(dfs_graph *g, int ndim, const int *shape) {
    DFS_ASSERT(ndim >= 0 && ndim <= DFS_MAXDIM);
    owned_tensor *o = dfs_graph_alloc(g, sizeof *o);
    memset(o, 0, sizeof *o);
    dfs_tensor *t = &o->t;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->n = dfs_shape_numel(ndim, shape);
    return t;
}

/* Index of the smallest pooled block that holds n floats, or -1. */
static int pool_best(const dfs_graph *g, size_t n) {
    int best = -1;
    for (int i = 0; i < g->npool; i++)
        if (g->pool[i].cap >= n && (best < 0 || g->pool[i].cap < g->pool[best].cap)) best = i;
    return best;
}

static void pool_put(dfs_graph *g, float *p, size_t cap) {
    if (g->npool == g->cappool) {
        int c = g->cappool ? 2 * g->cappool : 64;
        struct grad_block *np = realloc(g->pool, (size_t)c * sizeof *np);
        if (!np) return; /* keep the buffer unrecycled: correct, only larger */
        g->pool = np;
        g->cappool = c;
    }
    g->pool[g->npool].p = p;
    g->pool[g->npool].cap = cap;
    g->npool++;
}

dfs_tensor *dfs_tensor_new(dfs_graph *g, int ndim, const int *shape) {
    dfs_tensor *t = tensor_header(g, ndim, shape);
    /* The pool holds dead memory only: released tensors' data and gradient buffers whose
     * backward has run. */
    owned_tensor *o = (owned_tensor *)t;
    int best = pool_best(g, t->n);
    if (best >= 0) {
        t->data = g->pool[best].p;
        o->data_cap = g->pool[best].cap;
        g->pool[best] = g->pool[--g->npool];
    } else {
        t->data = dfs_graph_alloc(g, t->n * sizeof(float));
        o->data_cap = t->n;
    }
    return t;
}

/* t's data back to the pool, if the graph owns it */
static void release_data(dfs_graph *g, dfs_tensor *t) {
    owned_tensor *o = t ? owned(g, t) : NULL;
    if (!o || !o->data_cap) return;
    pool_put(g, t->data, o->data_cap);
    t->data = NULL;
    o->data_cap = 0;
}

void dfs_tensor_release(dfs_graph *g, dfs_tensor *t) {
    if (!g->grad_enabled) release_data(g, t);
}

void dfs_tensor_release_dead(dfs_graph *g, dfs_tensor *t) { release_data(g, t); }

void dfs_graph_set_recycle(dfs_graph *g, int on) { g->recycle = on; }

void dfs_graph_redirect_grads(dfs_graph *g, const float *base, size_t n, float *block) {
    g->rbase = base;
    g->rn = n;
    g->rblock = block;
}

dfs_tensor *dfs_tensor_zeros(dfs_graph *g, int ndim, const int *shape) {
    dfs_tensor *t = dfs_tensor_new(g, ndim, shape);
    memset(t->data, 0, t->n * sizeof(float));
    return t;
}

dfs_tensor *dfs_tensor_wrap(dfs_graph *g, float *data, int ndim, const int *shape) {
    dfs_tensor *t = tensor_header(g, ndim, shape);
    t->data = data;
    return t;
}

dfs_tensor *dfs_tensor_like(dfs_graph *g, const dfs_tensor *x) {
    return dfs_tensor_new(g, x->ndim, x->shape);
}

dfs_node *dfs_record(dfs_graph *g, dfs_backward_fn fn, dfs_tensor *out, int nin,
                     dfs_tensor *const *in) {
    if (!g->grad_enabled) return NULL;
    int any = 0;
    for (int i = 0; i < nin; i++) any |= in[i] && in[i]->requires_grad;
    if (!any) return NULL;
    DFS_ASSERT(nin <= 8);
    dfs_node *n = dfs_graph_alloc(g, sizeof *n);
    memset(n, 0, sizeof *n);
    n->backward = fn;
    n->out = out;
    n->nin = nin;
    for (int i = 0; i < nin; i++) n->in[i] = in[i];
    out->requires_grad = 1;
    if (g->ntape == g->captape) {
        int cap = g->captape ? 2 * g->captape : 256;
        dfs_node **t = realloc(g->tape, (size_t)cap * sizeof *t);
        if (!t) graph_oom(g, (size_t)cap * sizeof *t);
        g->tape = t;
        g->captape = cap;
    }
    g->tape[g->ntape++] = n;
    return n;
}

/* Gradient buffers of activations are recycled during backward: once the op that produced a
 * tensor has run its backward, nothing reads that tensor's gradient again, so its buffer goes
 * to a pool that later dfs_grad calls take from (best fit). The pool lives in the arena, so
 * the steady state still never calls malloc; it roughly halves the memory of a training step. */
static float *grad_buffer(dfs_graph *g, dfs_tensor *t, int clear) {
    if (t->grad && g->rblock) { /* a data-parallel worker's own parameter gradients */
        const uintptr_t p = (uintptr_t)t->grad, b = (uintptr_t)g->rbase;
        if (p >= b && p < b + g->rn * sizeof(float)) return g->rblock + (t->grad - g->rbase);
    }
    if (!t->grad) {
        /* a tensor made elsewhere keeps a graph buffer it is given for good (until reset) */
        owned_tensor *o = owned(g, t);
        int best = pool_best(g, t->n);
        size_t cap;
        if (best >= 0) {
            t->grad = g->pool[best].p;
            cap = g->pool[best].cap;
            g->pool[best] = g->pool[--g->npool];
        } else {
            t->grad = dfs_graph_alloc(g, t->n * sizeof(float));
            cap = t->n;
        }
        if (o) o->grad_cap = cap;
        if (clear) memset(t->grad, 0, t->n * sizeof(float));
    }
    return t->grad;
}

float *dfs_grad(dfs_graph *g, dfs_tensor *t) { return grad_buffer(g, t, 1); }
float *dfs_grad_uncleared(dfs_graph *g, dfs_tensor *t) { return grad_buffer(g, t, 0); }
float *dfs_grad_for_write(dfs_graph *g, dfs_tensor *t, int *fresh) {
    *fresh = t->grad == NULL;
    return *fresh ? dfs_grad_uncleared(g, t) : dfs_grad(g, t); /* dfs_grad: redirects */
}

static void release_grad(dfs_graph *g, dfs_tensor *t) {
    owned_tensor *o = owned(g, t);
    if (!o || !o->grad_cap) return; /* not a graph-owned buffer (parameters, caller's tensors) */
    pool_put(g, t->grad, o->grad_cap);
    t->grad = NULL;
    o->grad_cap = 0;
}

void dfs_backward(dfs_graph *g, dfs_tensor *loss) {
    DFS_ASSERT(loss->n == 1);
    float one = 1.0f;
    dfs_backward_grad(g, loss, &one);
}

void dfs_backward_grad(dfs_graph *g, dfs_tensor *out, const float *dout) {
    if (!out->requires_grad) return;
    float *d = dfs_grad(g, out);
    for (size_t i = 0; i < out->n; i++) d[i] += dout[i];
    for (int i = g->ntape - 1; i >= 0; i--) {
        dfs_node *n = g->tape[i];
        if (!n->out->grad) continue;
        n->backward(g, n);
        if (n->out != out) {
            release_grad(g, n->out);
            /* Its consumers ran their backward before it and its producer just did: nothing
             * reads this tensor's values any more. Views (reshape) own no data and keep it. */
            if (g->recycle) release_data(g, n->out);
        }
    }
}
