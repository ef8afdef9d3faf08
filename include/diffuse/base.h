/* diffuse/base.h - status codes, errors, logging, assertions, threads, random numbers. Part of diffuse.h. */
#ifndef DIFFUSE_BASE_H
#define DIFFUSE_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Status, errors, logging                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Most dimensions of a tensor (engine) or a stored array (safetensors). */
#define DFS_MAXDIM 4

typedef enum {
    DFS_OK = 0,
    DFS_ERR_ARG,         /* bad argument value */
    DFS_ERR_IO,          /* a file or folder cannot be opened, read, written or synced */
    DFS_ERR_FORMAT,      /* file is corrupt, truncated or not the expected format */
    DFS_ERR_SHAPE,       /* data have the wrong shape or size for the model or reader */
    DFS_ERR_NOMEM,       /* allocation failed or size overflowed */
    DFS_ERR_NAN,         /* a loss, gradient, feature or result is not finite */
    DFS_ERR_INTERRUPTED, /* stopped early at a callback's request (the CLI's, on a signal) */
    DFS_STATUS_COUNT
} dfs_status;

const char *dfs_status_str(dfs_status s);

/* Record a one-line description of the error being returned (printf-style). Thread-local. */
void dfs_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last error line recorded in this thread ("" if none). */
const char *dfs_last_error(void);

typedef enum { DFS_LOG_DEBUG, DFS_LOG_INFO, DFS_LOG_WARN, DFS_LOG_ERROR, DFS_LOG_COUNT } dfs_log_level;
typedef void (*dfs_log_fn)(dfs_log_level level, const char *msg, void *user);
/* Install a log callback (NULL silences the library, which is the default). */
void dfs_set_log(dfs_log_fn fn, void *user);
void dfs_log(dfs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For programmer errors (shape mismatches in op calls): prints the file, line and condition on
 * stderr and calls abort(). Running out of memory for activations inside a forward or backward
 * pass is the other error with no way back through the callers: see dfs_graph_alloc
 * (diffuse/engine.h). dfs_unet_config_check keeps attention, the largest buffer, at most 4096
 * tokens, so that only a batch or model too large for the machine gets there. */
#define DFS_ASSERT(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) dfs_assert_fail(__FILE__, __LINE__, #cond);                              \
    } while (0)
void dfs_assert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));

/* Threads used by OpenMP regions and OpenBLAS, process-wide (n < 1 counts as 1). get returns
 * the last n set, 1 before any call (OpenMP and OpenBLAS then keep their own defaults). */
void dfs_set_threads(int n);
int dfs_get_threads(void);


/* ------------------------------------------------------------------------------------------ */
/* Random numbers: xoshiro256** with Box-Muller normals. Same seed, same stream.               */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    uint64_t s[4];
    int has_spare; /* Box-Muller makes normals in pairs; the second is kept here */
    float spare;
} dfs_rng;

void dfs_rng_seed(dfs_rng *r, uint64_t seed);
uint64_t dfs_rng_u64(dfs_rng *r);
float dfs_rng_uniform(dfs_rng *r);            /* [0, 1) with 24 random bits */
uint32_t dfs_rng_below(dfs_rng *r, uint32_t n); /* uniform integer in [0, n), unbiased; n >= 1 */
float dfs_rng_normal(dfs_rng *r);             /* standard normal */
/* The data order of a training epoch: perm = a Fisher-Yates shuffle of 0..n-1 with a generator
 * seeded by (seed, epoch), so that a run's position in its data is a function of how many
 * items it has seen, and resuming needs no extra state. */
void dfs_epoch_order(int *perm, int n, uint64_t seed, long epoch);
void dfs_rng_fill_normal(dfs_rng *r, float *out, size_t n);


/* Progress of a long load or write: done of total items. */
typedef void (*dfs_progress_fn)(void *user, long done, long total);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_BASE_H */
