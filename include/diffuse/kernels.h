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
 * or "blas" (im2col + OpenBLAS sgemm), with "+winograd" or "+winograd-auto" (dfs_set_conv_algo, under FAST), and
 * "+bf16" or "+bf16-emulated" when dfs_set_bf16 turned bfloat16 on (FAST only). */
const char *dfs_kernels_path(void);

/* --- 3x3 convolutions: direct or Winograd ----------------------------------------------- */
/* The forward of stride-1, pad-1 3x3 convolutions (sampling, eval, training's forward pass,
 * and training's backward, both the input's and the weights' gradients (at even sizes only
 * without AVX-512); under BLAS, no-grad passes only) runs on the direct kernel (DIRECT, the
 * default), on Winograd (WINOGRAD: F(4x4,3x3) where AVX-512 runs, 4x fewer multiplies, else
 * F(2x2,3x3), 2.25x fewer; more transforms, slower with one input channel), or AUTO: per shape (channels, size, batch, pre-op), the first call times
 * both paths on its own data and that shape keeps the faster for the rest of the process, as
 * PyTorch's torch.backends.cudnn.benchmark does; AUTO is on the FAST kernels only (BLAS runs
 * it as DIRECT). Like cudnn.benchmark, AUTO trades bit-reproducibility for speed: two runs may
 * pick differently where the paths are close, and the paths round differently (within float32
 * accuracy). Until dfs_set_conv_algo is called, the environment variable DFS_CONV (direct,
 * winograd, auto) chooses, read once at the first call. dfs_set_conv_algo returns the previous
 * choice. dfs_conv_auto_count gives how many shapes AUTO has timed, by the path each got
 * (either pointer may be NULL). Process-wide. */
typedef enum { DFS_CONV_DIRECT, DFS_CONV_WINOGRAD, DFS_CONV_AUTO } dfs_conv_algo;
extern const char *const dfs_conv_algo_names[3]; /* "direct", "winograd", "auto" */
dfs_conv_algo dfs_get_conv_algo(void);
dfs_conv_algo dfs_set_conv_algo(dfs_conv_algo a);
void dfs_conv_auto_count(int *winograd, int *direct);

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
