/* diffuse/kernels.h - which compute kernels run (the kernels themselves are internal: src/kernels). Part of diffuse.h. */
#ifndef DIFFUSE_KERNELS_H
#define DIFFUSE_KERNELS_H

#include "diffuse/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- Kernel choice ------------------------------------------------------------------------ */
/* FAST: stride-1 "same" convolutions (odd kernel, padding kernel / 2) run forward and backward
 * on the library's own AVX-512 implicit-GEMM kernels, which in the U-Net also do the
 * GroupNorm/SiLU/dropout/upsampling before them and the bias/time-embedding/residual adds after
 * them; other convolutions run their forward on those kernels and their backward as under BLAS
 * (portable loops in place of the kernels where the CPU lacks AVX-512). BLAS: the earlier path,
 * im2col + OpenBLAS sgemm and one op per step; kept as a reference and for comparison. Until
 * dfs_set_kernels is called, the choice is made once, at the first dfs_get_kernels: what the
 * environment variable DFS_KERNELS (fast, blas) names, else FAST on CPUs with AVX-512 and BLAS
 * elsewhere. DFS_CPU=avx2 makes an AVX-512 CPU count as one without it (BLAS by default, and
 * the portable loops under FAST), so that one machine tests both paths. Process-wide. */
typedef enum { DFS_KERNELS_FAST, DFS_KERNELS_BLAS, DFS_KERNELS_COUNT } dfs_kernels;
extern const char *const dfs_kernels_names[DFS_KERNELS_COUNT];
void dfs_set_kernels(dfs_kernels k);
dfs_kernels dfs_get_kernels(void);
/* What the convolutions run on, as chosen above (for bench and info): "avx512" (FAST on the
 * library's AVX-512 kernels), "portable" (FAST's portable loops: no AVX-512, or DFS_CPU=avx2)
 * or "blas" (im2col + OpenBLAS sgemm), with "+winograd" when DFS_CONV=winograd, and
 * "+bf16" or "+bf16-emulated" when dfs_set_bf16 turned bfloat16 on (FAST only). */
const char *dfs_kernels_path(void);

/* --- bfloat16 ----------------------------------------------------------------------------- */
/* bf16 mixed precision: every stride-1 "same" convolution on the FAST path (all but the
 * U-Net's two downsampling convolutions), forward and backward, rounds its inputs and weights
 * (and in backward the output gradient) to bfloat16, to nearest with ties to even, and sums
 * their products in float32. Every other op (GroupNorm, SiLU, attention, the linear layers,
 * the strided convolutions, the adds, the loss) stays float32, and so do the parameters, their
 * gradients' sums and the optimiser's state: the mixed precision of GPU training. NATIVE runs
 * AVX512_BF16's vdpbf16ps, two multiply-adds per lane per instruction. EMULATED gives the same
 * results with AVX-512 F/BW instructions (or portable loops without them), more slowly than
 * float32: it is how a machine without AVX512_BF16 checks bf16's results and quality.
 * dfs_set_bf16(1) turns bf16 on for the process and returns the mode in force: NATIVE on a CPU
 * with AVX512_BF16, EMULATED when the environment variable DFS_BF16=emulate is set at the call
 * (on any CPU), else OFF (float32 goes on; the caller should say so). Under the BLAS kernels
 * it is always OFF. dfs_set_bf16(0) returns to float32. A backward runs in the precision its
 * forward ran in. */
typedef enum { DFS_BF16_OFF, DFS_BF16_NATIVE, DFS_BF16_EMULATED } dfs_bf16_mode;
extern const char *const dfs_bf16_names[3]; /* "off", "native", "emulated" */
dfs_bf16_mode dfs_set_bf16(int on);
dfs_bf16_mode dfs_get_bf16(void);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_KERNELS_H */
