/* bf16.c - bfloat16 inputs and weights, float32 sums: the forward kernel of stride-1 "same"
 * convolutions in bfloat16 (declared in src/kernels/kernels.h; chosen by dfs_set_bf16,
 * include/diffuse/kernels.h).
 *
 * Size key as in igemm.c: R rows (output channels), Q positions (nq); K2 pairs of the
 * reduction, C2 = ceil(C / 2) channel pairs.
 *
 * bfloat16 is the top half of a float32 (8 exponent bits, 8 significant bits). AVX512_BF16's
 * vdpbf16ps takes two vectors of 32 bfloat16, read as 16 pairs, and adds the two products of
 * each pair to a float32 lane: twice the multiply-adds of an fp32 FMA per instruction. So the
 * reduction goes over pairs: a convolution's input channels are paired, c = 2 c2 and 2 c2 + 1,
 * and a padded input plane of a pair holds, per position, one 32-bit word with channel 2 c2 in
 * its low half and 2 c2 + 1 in its high half. The implicit GEMM of igemm.c is unchanged: row
 * kp = c2 KHW + t of B is the pair plane c2 shifted by the tap t, and A is packed as
 * (R/8, K2, 8) words of the same pairing of w.
 *
 * Three versions compute the same numbers:
 *   native    vdpbf16ps (CPUs with AVX512_BF16: AMD Zen 4 and 5, Intel Cooper Lake, Sapphire
 *             Rapids and later);
 *   emulated  AVX-512F: the two halves of every word widened to float32 (a bfloat16 is a float
 *             whose low 16 bits are zero) and two FMAs, odd half first;
 *   portable  loops with fmaf in the same order.
 * The product of two bfloat16 is exact in float32 (8 x 8 significant bits), so an FMA adds it
 * with one rounding, as vdpbf16ps does: Intel's definition of the instruction adds the odd
 * pair's product to the lane, rounds to nearest even, then adds the even pair's and rounds
 * again. The versions agree bit for bit, except that vdpbf16ps flushes subnormal inputs and
 * results to zero (values below 1.2e-38, which these networks do not produce). The emulated and
 * portable versions are slower than float32; they exist so that a CPU without AVX512_BF16 can
 * check bf16's results and measure its quality (DFS_BF16=emulate). */
#include "diffuse/kernels.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "tile.h"
#define BF16_X86 1
#define AVX512 __attribute__((target("avx512f")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))
#endif

#define MR 8  /* rows of a tile, as in igemm.c */
#define NVB 3 /* 16-lane vectors of a tile */
#ifdef BF16_X86
_Static_assert(MR == DFS_TILE_MR && NVB == DFS_TILE_NVB, "the tile of tile.h");
#endif

/* ---- which version runs ------------------------------------------------------------------ */

const char *const dfs_bf16_names[3] = {"off", "native", "emulated"};
static int cpu_bf16 = -1; /* -1: not read yet */
static int bf16_mode = DFS_BF16_OFF;

static int cpu_bw(void) {
#ifdef BF16_X86
    static int bw = -1;
    if (bw < 0) bw = __builtin_cpu_supports("avx512bw");
    return bw;
#else
    return 0;
#endif
}

int dfs_bf16_cpu(void) {
#ifdef BF16_X86
    if (cpu_bf16 < 0) /* the CPU itself (as DFS_CPU says), not the tests' dfs_igemm_force_portable */
        cpu_bf16 = dfs_cpu_avx512() && cpu_bw() && __builtin_cpu_supports("avx512bf16");
    return cpu_bf16;
#else
    return 0;
#endif
}

/* DFS_BF16=emulate, read at every dfs_set_bf16 (called from serial code only) */
static int emulate_allowed(void) {
    const char *e = getenv("DFS_BF16");
    return e && strcmp(e, "emulate") == 0;
}

void dfs_bf16_read_env(void) {
    (void)dfs_bf16_cpu();
    (void)cpu_bw();
}

dfs_bf16_mode dfs_set_bf16(int on) {
    dfs_bf16_read_env(); /* the CPU's features, read here in serial code rather than in a kernel */
    /* only the FAST path has the kernel; under BLAS everything stays float32 */
    if (!on || dfs_get_kernels() != DFS_KERNELS_FAST) bf16_mode = DFS_BF16_OFF;
    /* DFS_BF16=emulate emulates even on a CPU that has the instruction, so that the two can be
     * compared there; tests/unit/test_bf16.c compares the kernels themselves directly */
    else if (emulate_allowed()) bf16_mode = DFS_BF16_EMULATED;
    else bf16_mode = dfs_bf16_cpu() ? DFS_BF16_NATIVE : DFS_BF16_OFF;
    return (dfs_bf16_mode)bf16_mode;
}

/* OFF under the BLAS kernels, even when they were chosen after dfs_set_bf16 */
dfs_bf16_mode dfs_get_bf16(void) {
    return dfs_get_kernels() == DFS_KERNELS_FAST ? (dfs_bf16_mode)bf16_mode : DFS_BF16_OFF;
}

/* ---- conversions ------------------------------------------------------------------------- */

uint16_t dfs_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (isnan(x)) return (uint16_t)((u | 0x00400000u) >> 16); /* stays a (quiet) NaN */
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1u)) >> 16);  /* to nearest, ties to even */
}

float dfs_bf16_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline uint32_t pair_of(float lo, float hi) {
    return (uint32_t)dfs_bf16_round(hi) << 16 | dfs_bf16_round(lo);
}

#ifdef BF16_X86
/* The rounded bfloat16 of each lane, in the lane's top 16 bits (the low 16 are garbage). */
AVX512 INLINE __m512i round16(__m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
}

AVX512 static void pairs_avx512(uint32_t *dst, const float *lo, const float *hi, size_t n) {
    const __m512i top = _mm512_set1_epi32((int)0xffff0000u);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        const __m512i l = _mm512_srli_epi32(round16(_mm512_maskz_loadu_ps(m, lo + i)), 16);
        const __m512i h = hi ? _mm512_and_si512(round16(_mm512_maskz_loadu_ps(m, hi + i)), top)
                             : _mm512_setzero_si512();
        _mm512_mask_storeu_epi32(dst + i, m, _mm512_or_si512(l, h));
    }
}
#endif

void dfs_bf16_pairs(uint32_t *dst, const float *lo, const float *hi, size_t n) {
#ifdef BF16_X86
    if (dfs_igemm_avx512()) {
        pairs_avx512(dst, lo, hi, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = pair_of(lo[i], hi ? hi[i] : 0.0f);
}

void dfs_igemm_bf16_pack(uint32_t *ap, const float *w, int rows, int C, int KHW) {
    const int C2 = (C + 1) / 2, K2 = C2 * KHW, K = C * KHW, nb = (rows + MR - 1) / MR;
    for (int b = 0; b < nb; b++) {
        uint32_t *d = ap + (size_t)b * K2 * MR; // (K2, MR)
        for (int c2 = 0; c2 < C2; c2++)
            for (int t = 0; t < KHW; t++)
                for (int r = 0; r < MR; r++) {
                    const int row = b * MR + r, c = 2 * c2;
                    const float *wr = w + (size_t)row * K;
                    float lo = 0.0f, hi = 0.0f;
                    if (row < rows) {
                        lo = wr[c * KHW + t];
                        if (c + 1 < C) hi = wr[(c + 1) * KHW + t];
                    }
                    d[((size_t)c2 * KHW + t) * MR + r] = pair_of(lo, hi);
                }
    }
}

void dfs_igemm_bf16_pack_flip(uint32_t *ap, const float *w, int Co, int Ci, int KHW) {
    /* row ci, column co2 KHW + t: the pair of w[2 co2][ci][KHW - 1 - t], w[2 co2 + 1][ci][..] */
    const int Co2 = (Co + 1) / 2, K2 = Co2 * KHW, nb = (Ci + MR - 1) / MR;
    for (int b = 0; b < nb; b++) {
        uint32_t *d = ap + (size_t)b * K2 * MR; // (K2, MR)
        for (int co2 = 0; co2 < Co2; co2++)
            for (int t = 0; t < KHW; t++)
                for (int r = 0; r < MR; r++) {
                    const int ci = b * MR + r, co = 2 * co2;
                    float lo = 0.0f, hi = 0.0f;
                    if (ci < Ci) {
                        lo = w[((size_t)co * Ci + ci) * KHW + (KHW - 1 - t)];
                        if (co + 1 < Co) hi = w[((size_t)(co + 1) * Ci + ci) * KHW + (KHW - 1 - t)];
                    }
                    d[((size_t)co2 * KHW + t) * MR + r] = pair_of(lo, hi);
                }
    }
}

#ifdef BF16_X86
AVX512 static void round_avx512(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        const __m512i r = _mm512_srli_epi32(round16(_mm512_maskz_loadu_ps(m, src + i)), 16);
        _mm512_mask_cvtepi32_storeu_epi16(dst + i, m, r);
    }
}
#endif

void dfs_bf16_round_n(uint16_t *dst, const float *src, size_t n) {
#ifdef BF16_X86
    if (dfs_igemm_avx512()) {
        round_avx512(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = dfs_bf16_round(src[i]);
}

/* ---- portable ---------------------------------------------------------------------------- */

static inline float lo_of(uint32_t v) { return dfs_bf16_float((uint16_t)(v & 0xffffu)); }
static inline float hi_of(uint32_t v) { return dfs_bf16_float((uint16_t)(v >> 16)); }

static void bf16_portable(const dfs_igemm_bf16_fwd *p) {
    const int nvec = (p->nq + 15) / 16;
    for (int r = 0; r < p->rows; r++) {
        const uint32_t *a = p->apack + (size_t)(r / MR) * p->K * MR + r % MR; // stride MR
        const float bias = p->bias ? p->bias[r] : 0.0f;
        float *d = p->dst[r];
        const float *rs = p->res ? p->res[r] : NULL;
        for (int j = 0; j < nvec; j++) {
            int o = p->vdst[j];
            for (int l = 0; l < 16; l++) {
                if (!(p->vmask[j] >> l & 1)) continue;
                const int q = 16 * j + l;
                float s = 0.0f;
                for (int k = 0; k < p->K; k++) {
                    const uint32_t av = a[(size_t)k * MR], bv = p->src[k][q];
                    s = fmaf(hi_of(av), hi_of(bv), s); /* the odd channel first, as vdpbf16ps */
                    s = fmaf(lo_of(av), lo_of(bv), s);
                }
                s += bias;
                if (rs) s += rs[o];
                d[o] = p->accumulate ? d[o] + s : s;
                o++;
            }
        }
    }
}

/* The sum of 16 lane partials in the fixed tree of the AVX-512 versions: halves of 8, 4, 2, 1. */
static float tree16(const float *s) {
    float a[8], b[4], c[2];
    for (int i = 0; i < 8; i++) a[i] = s[i] + s[i + 8];
    for (int i = 0; i < 4; i++) b[i] = a[i] + a[i + 4];
    for (int i = 0; i < 2; i++) c[i] = b[i] + b[i + 2];
    return c[0] + c[1];
}

static void dw_portable(const dfs_igemm_bf16_dw *p) {
    const int nseg = p->nseg > 1 ? p->nseg : 1;
    for (int r = 0; r < p->rows; r++)
        for (int k = 0; k < p->K; k++) {
            float s[16] = {0};
            for (int sg = 0; sg < nseg; sg++) {
                const uint16_t *a = p->dy[r] + sg * p->seg_stride, *b = p->src[k] + sg * p->seg_stride;
                for (int q0 = 0; q0 < p->nq; q0 += 32)
                    for (int l = 0; l < 16; l++) {
                        const int q = q0 + 2 * l; /* lane l: positions q (low half), q + 1 (high) */
                        const float ah = q + 1 < p->nq ? dfs_bf16_float(a[q + 1]) : 0.0f;
                        const float bh = q + 1 < p->nq ? dfs_bf16_float(b[q + 1]) : 0.0f;
                        const float al = q < p->nq ? dfs_bf16_float(a[q]) : 0.0f;
                        const float bl = q < p->nq ? dfs_bf16_float(b[q]) : 0.0f;
                        s[l] = fmaf(ah, bh, s[l]);
                        s[l] = fmaf(al, bl, s[l]);
                    }
            }
            p->dw[(size_t)r * p->K + k] += tree16(s);
        }
}

/* ---- AVX-512: emulated and native -------------------------------------------------------- */
#ifdef BF16_X86

/* emulated: each word's halves as two floats (bh the odd channel, bl the even) */
#define EMU_LOADB(v, w)                                                                         \
    bh[v] = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32((int)0xffff0000u)));     \
    bl[v] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16))
#define EMU_STEP(r, aw)                                                                         \
    do {                                                                                        \
        const __m512 ah = _mm512_castsi512_ps(_mm512_and_si512(aw, _mm512_set1_epi32((int)0xffff0000u))); \
        const __m512 al = _mm512_castsi512_ps(_mm512_slli_epi32(aw, 16));                       \
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {                                  \
            acc[r][v] = _mm512_fmadd_ps(ah, bh[v], acc[r][v]);                                  \
            acc[r][v] = _mm512_fmadd_ps(al, bl[v], acc[r][v]);                                  \
        }                                                                                       \
    } while (0)
/* native: vdpbf16ps on the words as they are */
#define HW_LOADB(v, w) bw[v] = w
#define HW_STEP(r, aw)                                                                          \
    _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                                        \
        acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)aw, (__m512bh)bw[v])

/* the B registers of each version */
#define DECL_EMU __m512 bh[NVB], bl[NVB]
#define DECL_HW __m512i bw[NVB]

/* BF16_TILE(NAME, ATTR, DECL, LOADB, STEP) defines the tile NAME(p, rb, v0, NV, lm): rows
 * 8 rb .. 8 rb + 7, vectors v0 .. v0 + NV - 1, lm masking the loads of the last one. DECL
 * declares the B registers, LOADB(v, w) fills them from the words w of vector v, STEP(r, aw)
 * adds row r's pair aw times every vector of B to acc[r][..]. */
#define BF16_TILE(NAME, ATTR, DECL, LOADB, STEP)                                                \
    ATTR INLINE void NAME(const dfs_igemm_bf16_fwd *p, int rb, int v0, const int NV,           \
                          __mmask16 lm) {                                                       \
        const uint32_t *a = p->apack + (size_t)rb * p->K * MR; /* (K2, MR) */                   \
        const int q0 = 16 * v0;                                                                 \
        __m512 acc[MR][NVB];                                                                    \
        DECL;                                                                                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                    \
            _Pragma("GCC unroll 8") for (int v = 0; v < NVB; v++) acc[r][v] = _mm512_setzero_ps(); \
        for (int k = 0; k < p->K; k++, a += MR) {                                               \
            const uint32_t *s = p->src[k] + q0;                                                 \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {                              \
                const __m512i w = v == NV - 1 ? _mm512_maskz_loadu_epi32(lm, s + 16 * v)        \
                                              : _mm512_loadu_si512(s + 16 * v);                 \
                LOADB(v, w);                                                                    \
            }                                                                                   \
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                              \
                const __m512i aw = _mm512_set1_epi32((int)a[r]);                                \
                STEP(r, aw);                                                                    \
            }                                                                                   \
        }                                                                                       \
        dfs_tile_store(p->rows, MR * rb, p->bias, p->dst, p->res, p->accumulate, p->vmask,       \
                       p->vdst, v0, NV, acc);                                                   \
    }

BF16_TILE(tile_emu, AVX512, DECL_EMU, EMU_LOADB, EMU_STEP)
BF16_TILE(tile_hw, AVX512BF16, DECL_HW, HW_LOADB, HW_STEP)

/* Tiles of 8 rows by 3 vectors over the whole product, as igemm.c's fwd_avx512. */
#define BF16_RUN(NAME, ATTR, TILE)                                                              \
    ATTR static void NAME(const dfs_igemm_bf16_fwd *p) {                                        \
        const int nvec = (p->nq + 15) / 16, nrb = (p->rows + MR - 1) / MR;                      \
        const int tail = p->nq - 16 * (nvec - 1);                                               \
        const __mmask16 last = (__mmask16)(tail >= 16 ? 0xffffu : (1u << tail) - 1u);           \
        for (int v0 = 0; v0 < nvec; v0 += NVB) {                                                \
            const int nv = nvec - v0 < NVB ? nvec - v0 : NVB;                                   \
            const __mmask16 lm = v0 + nv == nvec ? last : (__mmask16)0xffff;                    \
            for (int rb = 0; rb < nrb; rb++) {                                                  \
                if (nv == 3) TILE(p, rb, v0, 3, lm);                                            \
                else if (nv == 2) TILE(p, rb, v0, 2, lm);                                       \
                else TILE(p, rb, v0, 1, lm);                                                    \
            }                                                                                   \
        }                                                                                       \
    }

BF16_RUN(run_emu, AVX512, tile_emu)
BF16_RUN(run_hw, AVX512BF16, tile_hw)

/* ---- the weight-gradient kernel: dot products over pairs of positions ----
 * dw[r][k] += sum_q dy[r][q] src[k][q] with bfloat16 rows, 32 positions (16 pairs) per step,
 * a tile of 4 rows by 6 columns in 24 registers, the 16 lanes summed at the end in the tree of
 * tree16. Loads are of 16-bit elements (AVX512BW), at any offset. */
#define DWR 4
#define DWK 6
#define AVX512BW __attribute__((target("avx512f,avx512bw")))
#define AVX512BWBF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

AVX512 INLINE float tree16_avx512(__m512 v) {
    const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1)));
}

/* DW_TILE(NAME, ATTR, DECL, LOADA, STEP): NAME(p, r0, k0, NR, NC) for the rows r0 .. r0 + NR - 1
 * and columns k0 .. k0 + NC - 1; LOADA(r, w) keeps row r's words w of dY, STEP(r, c, w) adds
 * row r's words times column c's words w to acc[r][c]. */
#define DW_TILE(NAME, ATTR, DECL, LOADA, STEP)                                                  \
    ATTR INLINE void NAME(const dfs_igemm_bf16_dw *p, int r0, int k0, const int NR, const int NC) { \
        __m512 acc[DWR][DWK];                                                                   \
        DECL;                                                                                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < DWR; r++)                                   \
            _Pragma("GCC unroll 8") for (int c = 0; c < DWK; c++) acc[r][c] = _mm512_setzero_ps(); \
        const int nseg = p->nseg > 1 ? p->nseg : 1;                                             \
        for (int sg = 0; sg < nseg; sg++) {                                                     \
            const size_t off = (size_t)sg * p->seg_stride;                                      \
            for (int q = 0; q < p->nq; q += 32) {                                               \
                const int left = p->nq - q;                                                     \
                const __mmask32 m = left >= 32 ? 0xffffffffu : (1u << left) - 1u;               \
                _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++) {                          \
                    const __m512i w = _mm512_maskz_loadu_epi16(m, p->dy[r0 + r] + off + q);     \
                    LOADA(r, w);                                                                \
                }                                                                               \
                _Pragma("GCC unroll 8") for (int c = 0; c < NC; c++) {                          \
                    const __m512i w = _mm512_maskz_loadu_epi16(m, p->src[k0 + c] + off + q);    \
                    _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++) STEP(r, c, w);         \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        _Pragma("GCC unroll 8") for (int r = 0; r < NR; r++)                                    \
            _Pragma("GCC unroll 8") for (int c = 0; c < NC; c++)                                \
                p->dw[(size_t)(r0 + r) * p->K + k0 + c] += tree16_avx512(acc[r][c]);            \
    }

#define DW_DECL_EMU __m512 ah[DWR], al[DWR]
#define DW_LOADA_EMU(r, w)                                                                      \
    ah[r] = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32((int)0xffff0000u)));     \
    al[r] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16))
#define DW_STEP_EMU(r, c, w)                                                                    \
    do {                                                                                        \
        const __m512 bh = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32((int)0xffff0000u))); \
        const __m512 bl = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));                        \
        acc[r][c] = _mm512_fmadd_ps(ah[r], bh, acc[r][c]);                                      \
        acc[r][c] = _mm512_fmadd_ps(al[r], bl, acc[r][c]);                                      \
    } while (0)
#define DW_DECL_HW __m512i aw[DWR]
#define DW_LOADA_HW(r, w) aw[r] = w
#define DW_STEP_HW(r, c, w) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], (__m512bh)aw[r], (__m512bh)w)

DW_TILE(dw_tile_emu, AVX512BW, DW_DECL_EMU, DW_LOADA_EMU, DW_STEP_EMU)
DW_TILE(dw_tile_hw, AVX512BWBF16, DW_DECL_HW, DW_LOADA_HW, DW_STEP_HW)

#define DW_COLS(TILE, NR)                                                                       \
    for (int k0 = 0; k0 < p->K; k0 += DWK) {                                                    \
        switch (p->K - k0 < DWK ? p->K - k0 : DWK) {                                            \
        case 6: TILE(p, r0, k0, NR, 6); break;                                                  \
        case 5: TILE(p, r0, k0, NR, 5); break;                                                  \
        case 4: TILE(p, r0, k0, NR, 4); break;                                                  \
        case 3: TILE(p, r0, k0, NR, 3); break;                                                  \
        case 2: TILE(p, r0, k0, NR, 2); break;                                                  \
        default: TILE(p, r0, k0, NR, 1); break;                                                 \
        }                                                                                       \
    }
#define DW_RUN(NAME, ATTR, TILE)                                                                \
    ATTR static void NAME(const dfs_igemm_bf16_dw *p) {                                         \
        int r0 = 0;                                                                             \
        for (; r0 + DWR <= p->rows; r0 += DWR) DW_COLS(TILE, DWR)                               \
        for (; r0 < p->rows; r0++) DW_COLS(TILE, 1)                                             \
    }

DW_RUN(dw_emu, AVX512BW, dw_tile_emu)
DW_RUN(dw_hw, AVX512BWBF16, dw_tile_hw)
#endif

/* ---- dispatch ---------------------------------------------------------------------------- */

/* Whether version k runs on this CPU (the weight-gradient kernel's 16-bit loads need AVX512BW). */
static int can_run(dfs_bf16_kernel k) {
#ifdef BF16_X86
    if (k == DFS_BF16_KERNEL_NATIVE) return dfs_bf16_cpu();
    if (k == DFS_BF16_KERNEL_EMULATED) return dfs_igemm_avx512() && cpu_bw();
    return 1;
#else
    return k == DFS_BF16_KERNEL_PORTABLE;
#endif
}

/* The version dfs_get_bf16 asks for, on this CPU. */
static dfs_bf16_kernel chosen(void) {
    if (bf16_mode == DFS_BF16_NATIVE && can_run(DFS_BF16_KERNEL_NATIVE) && dfs_igemm_avx512())
        return DFS_BF16_KERNEL_NATIVE;
    return can_run(DFS_BF16_KERNEL_EMULATED) ? DFS_BF16_KERNEL_EMULATED : DFS_BF16_KERNEL_PORTABLE;
}

int dfs_igemm_bf16_dw_run_as(const dfs_igemm_bf16_dw *p, dfs_bf16_kernel k) {
    if (!can_run(k)) return -1;
    if (p->rows <= 0 || p->K <= 0 || p->nq <= 0) return 0;
    switch (k) {
#ifdef BF16_X86
    case DFS_BF16_KERNEL_NATIVE: dw_hw(p); break;
    case DFS_BF16_KERNEL_EMULATED: dw_emu(p); break;
#endif
    default: dw_portable(p); break;
    }
    return 0;
}

void dfs_igemm_bf16_dw_run(const dfs_igemm_bf16_dw *p) {
    const int rc = dfs_igemm_bf16_dw_run_as(p, chosen());
    DFS_ASSERT(rc == 0); /* chosen() picks a version this CPU runs */
}

int dfs_igemm_bf16_run_as(const dfs_igemm_bf16_fwd *p, dfs_bf16_kernel k) {
    if (!can_run(k)) return -1;
    if (p->rows <= 0 || p->nq <= 0) return 0;
    switch (k) {
#ifdef BF16_X86
    case DFS_BF16_KERNEL_NATIVE: run_hw(p); break;
    case DFS_BF16_KERNEL_EMULATED: run_emu(p); break;
#endif
    default: bf16_portable(p); break;
    }
    return 0;
}

void dfs_igemm_bf16_run(const dfs_igemm_bf16_fwd *p) {
    const int rc = dfs_igemm_bf16_run_as(p, chosen());
    DFS_ASSERT(rc == 0);
}
