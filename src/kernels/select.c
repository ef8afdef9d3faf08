/* select.c - which kernels the ops run: FAST (src/kernels/igemm.c) or BLAS (diffuse/kernels.h),
 * and whether no-grad 3x3 convolutions use Winograd (DFS_CONV=winograd, src/kernels/winograd.c). */
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
        (void)dfs_winograd_enabled(); /* and DFS_CONV */
        dfs_bf16_read_env();          /* and AVX512_BF16 */
        /* without AVX-512 the fast path would run its portable loops: slower than BLAS */
        const char *e = getenv("DFS_KERNELS");
        if (e && strcmp(e, "blas") == 0) kernels = DFS_KERNELS_BLAS;
        else if (e && strcmp(e, "fast") == 0) kernels = DFS_KERNELS_FAST;
        else kernels = dfs_igemm_avx512() ? DFS_KERNELS_FAST : DFS_KERNELS_BLAS;
    }
    return (dfs_kernels)kernels;
}


const char *dfs_kernels_path(void) {
    const int fast = dfs_get_kernels() == DFS_KERNELS_FAST, w = dfs_winograd_enabled();
    if (!fast) return w ? "blas+winograd" : "blas";
    const dfs_bf16_mode b = dfs_get_bf16(); /* bf16 takes the convolutions Winograd would */
    if (dfs_igemm_avx512()) {
        if (b) return b == DFS_BF16_NATIVE ? "avx512+bf16" : "avx512+bf16-emulated";
        return w ? "avx512+winograd" : "avx512";
    }
    if (b) return "portable+bf16-emulated";
    return w ? "portable+winograd" : "portable";
}

static int winograd = -1; /* -1: not chosen yet, read DFS_CONV */

int dfs_winograd_enabled(void) {
    if (winograd < 0) {
        const char *e = getenv("DFS_CONV");
        winograd = e && strcmp(e, "winograd") == 0;
    }
    return winograd;
}

int dfs_winograd_set(int on) {
    int old = dfs_winograd_enabled();
    winograd = on ? 1 : 0;
    return old;
}
