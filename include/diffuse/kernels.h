/* diffuse/kernels.h - which compute kernels run (the kernels themselves are internal: src/kernels). Part of diffuse.h. */
#ifndef DIFFUSE_KERNELS_H
#define DIFFUSE_KERNELS_H

#include "diffuse/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- Kernel choice ------------------------------------------------------------------------ */
/* FAST: stride-1 convolutions run on the library's own AVX-512 implicit-GEMM kernels, fused
 * with the GroupNorm/SiLU/dropout before them and the bias/time-embedding/residual adds after
 * them (portable loops where the CPU lacks AVX-512). BLAS: the earlier path, im2col + OpenBLAS
 * sgemm and one op per step; kept as a reference and for comparison. The default is FAST on
 * CPUs with AVX-512 and BLAS elsewhere, or what the environment variable DFS_KERNELS (fast,
 * blas) names. DFS_CPU=avx2 makes an AVX-512 CPU count as one without it (BLAS by default,
 * and the portable loops under FAST), so that one machine tests both paths. */
typedef enum { DFS_KERNELS_FAST, DFS_KERNELS_BLAS, DFS_KERNELS_COUNT } dfs_kernels;
extern const char *const dfs_kernels_names[DFS_KERNELS_COUNT];
void dfs_set_kernels(dfs_kernels k);
dfs_kernels dfs_get_kernels(void);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_KERNELS_H */
