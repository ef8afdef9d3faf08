/* select.c - which kernels the ops run: FAST (src/kernels/igemm.c) or BLAS (diffuse/kernels.h). */
#include "diffuse/kernels.h"
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

const char *const dfs_kernels_names[DFS_KERNELS_COUNT] = {"fast", "blas"};
static int kernels = -1; /* -1: not chosen yet, read DFS_KERNELS */

void dfs_set_kernels(dfs_kernels k) {
    DFS_ASSERT(k >= 0 && k < DFS_KERNELS_COUNT);
    kernels = (int)k;
}

dfs_kernels dfs_get_kernels(void) {
    if (kernels < 0) {
        (void)dfs_igemm_avx512(); /* reads DFS_CPU once, before the threads do */
        /* without AVX-512 the fast path would run its portable loops: slower than BLAS */
        const char *e = getenv("DFS_KERNELS");
        if (e && strcmp(e, "blas") == 0) kernels = DFS_KERNELS_BLAS;
        else if (e && strcmp(e, "fast") == 0) kernels = DFS_KERNELS_FAST;
        else kernels = dfs_igemm_avx512() ? DFS_KERNELS_FAST : DFS_KERNELS_BLAS;
    }
    return (dfs_kernels)kernels;
}

