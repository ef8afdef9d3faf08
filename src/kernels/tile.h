/* tile.h - the store of a forward tile, shared by the float32 and bfloat16 implicit-GEMM
 * kernels (igemm.c, bf16.c): AVX-512, included only where the including file has made sure of
 * x86-64 and GCC-style attributes. Not public API. */
#ifndef DFS_KERNELS_TILE_H
#define DFS_KERNELS_TILE_H

#include <immintrin.h>
#include <stdint.h>

#define DFS_TILE_MR 8  /* rows of a forward tile */
#define DFS_TILE_NVB 3 /* 16-lane vectors of a forward tile */

/* Rows row0 .. row0 + 7 (those below `rows`) of a tile of vectors v0 .. v0 + NV - 1: the
 * output lanes of acc (vmask), packed to the low end (they are consecutive outputs from
 * vdst), plus the row's bias, plus res (when not NULL), plus dst itself when accumulating,
 * stored to dst. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void
dfs_tile_store(int rows, int row0, const float *bias, float *const *dst, const float *const *res,
               int accumulate, const uint16_t *vmask, const int *vdst, int v0, const int NV,
               __m512 acc[DFS_TILE_MR][DFS_TILE_NVB]) {
    const int nr = rows - row0 < DFS_TILE_MR ? rows - row0 : DFS_TILE_MR;
    #pragma GCC unroll 8
    for (int r = 0; r < DFS_TILE_MR; r++) {
        if (r >= nr) break;
        const int row = row0 + r;
        const __m512 b = _mm512_set1_ps(bias ? bias[row] : 0.0f);
        float *d = dst[row];
        const float *rs = res ? res[row] : NULL;
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            const unsigned m = vmask[v0 + v];
            if (!m) continue;
            const int o = vdst[v0 + v];
            __m512 y = m == 0xffffu ? acc[r][v] : _mm512_maskz_compress_ps((__mmask16)m, acc[r][v]);
            const __mmask16 cm = (__mmask16)((1u << __builtin_popcount(m)) - 1u);
            y = _mm512_add_ps(y, b);
            if (rs) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(cm, rs + o));
            if (accumulate) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(cm, d + o));
            _mm512_mask_storeu_ps(d + o, cm, y);
        }
    }
}

#endif
