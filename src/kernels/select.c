/* select.c - which kernels the ops run: FAST (src/kernels/igemm.c) or BLAS (diffuse/kernels.h),
 * and whether 3x3 convolutions use Winograd (DFS_CONV=winograd, src/kernels/winograd.c). */
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
        (void)dfs_get_conv_algo(); /* and DFS_CONV */
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
    const int fast = dfs_get_kernels() == DFS_KERNELS_FAST, w = dfs_get_conv_algo();
    if (!fast) return w == DFS_CONV_WINOGRAD ? "blas+winograd" : "blas"; /* no auto under BLAS */
    const dfs_bf16_mode b = dfs_get_bf16(); /* bf16 takes the convolutions Winograd would */
    if (dfs_igemm_avx512()) {
        if (b) return b == DFS_BF16_NATIVE ? "avx512+bf16" : "avx512+bf16-emulated";
        return w == DFS_CONV_AUTO ? "avx512+winograd-auto" : w ? "avx512+winograd" : "avx512";
    }
    if (b) return "portable+bf16-emulated";
    return w == DFS_CONV_AUTO ? "portable+winograd-auto" : w ? "portable+winograd" : "portable";
}

static int winograd = -1; /* -1: not chosen yet, read DFS_CONV */

const char *const dfs_conv_algo_names[3] = {"direct", "winograd", "auto"};

dfs_conv_algo dfs_get_conv_algo(void) {
    if (winograd < 0) {
        const char *e = getenv("DFS_CONV");
        winograd = !e ? DFS_CONV_DIRECT
                   : strcmp(e, "winograd") == 0 ? DFS_CONV_WINOGRAD
                   : strcmp(e, "auto") == 0     ? DFS_CONV_AUTO
                                                : DFS_CONV_DIRECT;
    }
    return (dfs_conv_algo)winograd;
}

dfs_conv_algo dfs_set_conv_algo(dfs_conv_algo a) {
    DFS_ASSERT(a >= DFS_CONV_DIRECT && a <= DFS_CONV_AUTO);
    const dfs_conv_algo old = dfs_get_conv_algo();
    winograd = (int)a;
    return old;
}
