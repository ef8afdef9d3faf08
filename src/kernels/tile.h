/* tile.h - the store of a forward tile, the activation of 16 lanes and the rounding of 16 lanes
 * to bfloat16, shared by the float32 and bfloat16 implicit-GEMM kernels (igemm.c, bf16.c), so
 * that both compute the same bits: AVX-512, included only where the including file has made
 * sure of x86-64 and GCC-style attributes. Not public API. */
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

/* exp(x): the polynomial of dfs_expf (src/kernels/kernels.h), scaled by 2^n with vscalefps. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512 dfs_exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    /* n = round(x log2 e) by adding and subtracting 1.5 * 2^23, as dfs_expf does */
    const __m512 big = _mm512_set1_ps(12582912.0f);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), big), big);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    /* 2^n built in the exponent field (n in [-126, 127] after the clamp) */
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* a x + b, then SiLU when silu: z / (1 + exp(-z)) with a reciprocal estimate (2^-14) and one
 * Newton step (2^-28). */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512
dfs_act16(__m512 x, __m512 a, __m512 b, int silu) {
    __m512 z = _mm512_fmadd_ps(x, a, b);
    if (silu) {
        const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), dfs_exp16(_mm512_sub_ps(_mm512_setzero_ps(), z)));
        __m512 r = _mm512_rcp14_ps(d);
        r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
        z = _mm512_mul_ps(z, r);
    }
    return z;
}

/* The rounded (to nearest, ties to even; NaN kept quiet) bfloat16 of each lane, in the lane's
 * top 16 bits (the low 16 are garbage). */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512i dfs_round16(__m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
}

#endif
