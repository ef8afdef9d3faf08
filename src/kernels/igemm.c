/* igemm.c - implicit-GEMM kernels for stride-1 "same" convolutions (declared in src/kernels/kernels.h).
 *
 * Size key: R rows of the product (output channels), K reduction length (Ci*KH*KW), Q positions.
 *
 * A convolution is a GEMM   Y (R, Q) = A (R, K) B (K, Q)   whose B is never stored: row k of
 * B is a pointer src[k] into a zero-padded input plane, shifted by the tap (kh, kw) of row k,
 * so that B[k][q] = src[k][q] (the "implicit GEMM" lowering of Chetlur et al. 2014, "cuDNN:
 * efficient primitives for deep learning", sec. 3.1, done on the CPU over padded rows). With
 * planes of Hp x Wp floats and q = oh*Wp + ow, the positions with ow >= Wo are not outputs;
 * they are computed and dropped. Which lanes of each 16-float vector are outputs, and where
 * the first of them goes, is a small table (vmask, vdst) made once per geometry.
 *
 * The forward kernel keeps an 8 x 48 tile of Y in 24 AVX-512 registers: per k it loads three
 * vectors of B and multiplies them by 8 broadcast weights (A packed as (R/8, K, 8)). The dW
 * kernel keeps 4 x 6 dot products of length Q in 24 registers: per 16 positions it loads 4
 * vectors of dY and 6 of B. Both have portable loop versions with the same interface, used
 * when the CPU lacks AVX-512 and by the tests as the definition of the interface. */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include "tile.h"
#define IGEMM_X86 1
#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))
#endif

#define MR 8  /* rows of a forward tile */
#define NVB 3 /* 16-lane vectors of a forward tile */
#ifdef IGEMM_X86
_Static_assert(MR == DFS_TILE_MR && NVB == DFS_TILE_NVB, "the tile of tile.h");
#endif
#define WR 4  /* rows of a dW tile */
#define WK 6  /* reduction columns of a dW tile */

static int force_portable = 0;
static int cpu_avx512 = -1; /* -1: not read yet */

/* Whether the AVX-512 kernels run: the CPU has AVX-512F, and DFS_CPU=avx2 does not ask to
 * behave as an AVX2-only CPU (how the tests cover that path on an AVX-512 machine). Read once;
 * dfs_get_kernels calls this before any parallel region. */
int dfs_igemm_avx512(void) { return dfs_cpu_avx512() && !force_portable; }

int dfs_cpu_avx512(void) {
#ifdef IGEMM_X86
    if (cpu_avx512 < 0) {
        const char *e = getenv("DFS_CPU");
        /* libgcc fills in the CPU model before main; this only reads it */
        cpu_avx512 = __builtin_cpu_supports("avx512f") && !(e && strcmp(e, "avx2") == 0);
    }
    return cpu_avx512;
#else
    return 0;
#endif
}

int dfs_igemm_force_portable(int on) {
    int old = force_portable;
    force_portable = on;
    return old;
}

size_t dfs_igemm_pack_floats(int rows, int K) {
    return (size_t)(rows + MR - 1) / MR * MR * (size_t)K;
}

void dfs_igemm_pack(float *ap, const float *w, int rows, int K) {
    const int nb = (rows + MR - 1) / MR;
    for (int b = 0; b < nb; b++) {
        float *d = ap + (size_t)b * K * MR; // (K, MR)
        for (int k = 0; k < K; k++)
            for (int r = 0; r < MR; r++) {
                int row = b * MR + r;
                d[(size_t)k * MR + r] = row < rows ? w[(size_t)row * K + k] : 0.0f;
            }
    }
}

void dfs_igemm_pack_flip(float *ap, const float *w, int Co, int Ci, int KHW) {
    /* row ci, column k' = co*KHW + t of the packed matrix is w[co][ci][KHW - 1 - t] */
    const int K = Co * KHW, nb = (Ci + MR - 1) / MR;
    for (int b = 0; b < nb; b++) {
        float *d = ap + (size_t)b * K * MR; // (K, MR)
        for (int co = 0; co < Co; co++)
            for (int t = 0; t < KHW; t++)
                for (int r = 0; r < MR; r++) {
                    int ci = b * MR + r;
                    d[((size_t)co * KHW + t) * MR + r] =
                        ci < Ci ? w[((size_t)co * Ci + ci) * KHW + (KHW - 1 - t)] : 0.0f;
                }
    }
}

void dfs_igemm_vecmap(uint16_t *vmask, int *vdst, int nq, int Wp, int Wo) {
    /* output index of position q = oh*Wp + ow (ow < Wo) is oh*Wo + ow */
    const int nvec = (nq + 15) / 16;
    for (int j = 0; j < nvec; j++) {
        unsigned m = 0;
        int first = -1;
        for (int l = 0; l < 16; l++) {
            int q = 16 * j + l;
            if (q >= nq || q % Wp >= Wo) continue;
            m |= 1u << l;
            if (first < 0) first = (q / Wp) * Wo + q % Wp;
        }
        vmask[j] = (uint16_t)m;
        vdst[j] = first < 0 ? 0 : first;
    }
}

/* ---- portable versions --------------------------------------------------------------------- */

static void fwd_portable(const dfs_igemm_fwd *p) {
    const int nvec = (p->nq + 15) / 16;
    for (int r = 0; r < p->rows; r++) {
        const float *a = p->apack + (size_t)(r / MR) * p->K * MR + r % MR; // stride MR
        const float bias = p->bias ? p->bias[r] : 0.0f;
        float *d = p->dst[r];
        const float *rs = p->res ? p->res[r] : NULL;
        for (int j = 0; j < nvec; j++) {
            int o = p->vdst[j];
            for (int l = 0; l < 16; l++) {
                if (!(p->vmask[j] >> l & 1)) continue;
                int q = 16 * j + l;
                float s = 0.0f;
                for (int k = 0; k < p->K; k++) s += a[(size_t)k * MR] * p->src[k][q];
                s += bias;
                if (rs) s += rs[o];
                d[o] = p->accumulate ? d[o] + s : s;
                o++;
            }
        }
    }
}

static void dw_portable(const dfs_igemm_dw *p) {
    const int nseg = p->nseg > 1 ? p->nseg : 1;
    for (int r = 0; r < p->rows; r++)
        for (int k = 0; k < p->K; k++) {
            float s = 0.0f;
            for (int sg = 0; sg < nseg; sg++) {
                const float *a = p->dy[r] + sg * p->seg_stride, *b = p->src[k] + sg * p->seg_stride;
                for (int q = 0; q < p->nq; q++) s += a[q] * b[q];
            }
            p->dw[(size_t)r * p->K + k] += s;
        }
}

/* ---- AVX-512 ------------------------------------------------------------------------------- */
#ifdef IGEMM_X86

/* One tile: rows 8*rb .. 8*rb+7, vectors v0 .. v0+NV-1; lm masks the loads of the last one. */
AVX512 INLINE void fwd_tile(const dfs_igemm_fwd *p, int rb, int v0, const int NV, __mmask16 lm) {
    const float *a = p->apack + (size_t)rb * p->K * MR; // (K, MR)
    const int q0 = 16 * v0;
    __m512 acc[MR][NVB];
    #pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
        #pragma GCC unroll 8
        for (int v = 0; v < NVB; v++) acc[r][v] = _mm512_setzero_ps();
    for (int k = 0; k < p->K; k++, a += MR) {
        const float *s = p->src[k] + q0;
        __m512 b[NVB];
        #pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            b[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(lm, s + 16 * v) : _mm512_loadu_ps(s + 16 * v);
        #pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512 ar = _mm512_set1_ps(a[r]);
            #pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(ar, b[v], acc[r][v]);
        }
    }
    dfs_tile_store(p->rows, MR * rb, p->bias, p->dst, p->res, p->accumulate, p->vmask, p->vdst, v0, NV, acc);
}

AVX512 static void fwd_avx512(const dfs_igemm_fwd *p) {
    const int nvec = (p->nq + 15) / 16, nrb = (p->rows + MR - 1) / MR;
    const int tail = p->nq - 16 * (nvec - 1);
    const __mmask16 last = (__mmask16)(tail >= 16 ? 0xffffu : (1u << tail) - 1u);
    for (int v0 = 0; v0 < nvec; v0 += NVB) {
        const int nv = nvec - v0 < NVB ? nvec - v0 : NVB;
        const __mmask16 lm = v0 + nv == nvec ? last : (__mmask16)0xffff;
        for (int rb = 0; rb < nrb; rb++) {
            if (nv == 3) fwd_tile(p, rb, v0, 3, lm);
            else if (nv == 2) fwd_tile(p, rb, v0, 2, lm);
            else fwd_tile(p, rb, v0, 1, lm);
        }
    }
}

/* dw[r0+r][k0+c] += sum_q dy[r0+r][q] src[k0+c][q] for r < NR, c < NC. */
AVX512 INLINE void dw_tile(const dfs_igemm_dw *p, int r0, int k0, const int NR, const int NC) {
    __m512 acc[WR][WK];
    #pragma GCC unroll 8
    for (int r = 0; r < WR; r++)
        #pragma GCC unroll 8
        for (int c = 0; c < WK; c++) acc[r][c] = _mm512_setzero_ps();
    const float *dy[WR], *s[WK];
    const int nseg = p->nseg > 1 ? p->nseg : 1;
    for (int sg = 0; sg < nseg; sg++) {
        const size_t off = (size_t)sg * p->seg_stride;
        #pragma GCC unroll 8
        for (int r = 0; r < NR; r++) dy[r] = p->dy[r0 + r] + off;
        #pragma GCC unroll 8
        for (int c = 0; c < NC; c++) s[c] = p->src[k0 + c] + off;
        for (int q = 0; q < p->nq; q += 16) {
            const int left = p->nq - q;
            const __mmask16 m = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1u);
            __m512 a[WR], b[WK];
            #pragma GCC unroll 8
            for (int r = 0; r < NR; r++) a[r] = _mm512_maskz_loadu_ps(m, dy[r] + q);
            #pragma GCC unroll 8
            for (int c = 0; c < NC; c++) b[c] = _mm512_maskz_loadu_ps(m, s[c] + q);
            #pragma GCC unroll 8
            for (int r = 0; r < NR; r++)
                #pragma GCC unroll 8
                for (int c = 0; c < NC; c++) acc[r][c] = _mm512_fmadd_ps(a[r], b[c], acc[r][c]);
        }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
        #pragma GCC unroll 8
        for (int c = 0; c < NC; c++)
            p->dw[(size_t)(r0 + r) * p->K + k0 + c] += _mm512_reduce_add_ps(acc[r][c]);
}

#define DW_COLS(NR)                                                                           \
    for (int k0 = 0; k0 < p->K; k0 += WK) {                                                   \
        switch (p->K - k0 < WK ? p->K - k0 : WK) {                                            \
        case 6: dw_tile(p, r0, k0, NR, 6); break;                                             \
        case 5: dw_tile(p, r0, k0, NR, 5); break;                                             \
        case 4: dw_tile(p, r0, k0, NR, 4); break;                                             \
        case 3: dw_tile(p, r0, k0, NR, 3); break;                                             \
        case 2: dw_tile(p, r0, k0, NR, 2); break;                                             \
        default: dw_tile(p, r0, k0, NR, 1); break;                                            \
        }                                                                                     \
    }

AVX512 static void dw_avx512(const dfs_igemm_dw *p) {
    int r0 = 0;
    for (; r0 + WR <= p->rows; r0 += WR) DW_COLS(WR)
    for (; r0 < p->rows; r0++) DW_COLS(1)
}

/* exp(x): the polynomial of dfs_expf (src/kernels/kernels.h), scaled by 2^n with vscalefps. */
AVX512 INLINE __m512 exp16(__m512 x) {
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

/* z = a x + b, then silu(z) = z / (1 + exp(-z)) when silu: a reciprocal estimate (2^-14) and one
 * Newton step (2^-28). The pre-op of act_avx512 and act_pad_avx512. */
AVX512 INLINE __m512 act16(__m512 x, __m512 va, __m512 vb, int silu) {
    __m512 z = _mm512_fmadd_ps(x, va, vb);
    if (silu) {
        const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), z)));
        __m512 r = _mm512_rcp14_ps(d);
        r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
        z = _mm512_mul_ps(z, r);
    }
    return z;
}

AVX512 static void act_avx512(float *y, const float *x, size_t n, float a, float b, int silu) {
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = (__mmask16)(n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1u);
        const __m512 z = act16(_mm512_maskz_loadu_ps(m, x + i), va, vb, silu);
        if (m == 0xffff) _mm512_storeu_ps(y + i, z);
        else _mm512_mask_storeu_ps(y + i, m, z);
    }
}

AVX512 static void pad_rows_avx512(float *dst, const float *src, int rows, int W, int pw) {
    const int Wp = W + 2 * pw;
    for (int h = 0; h < rows; h++) {
        float *d = dst + (size_t)h * Wp;
        const float *s = src + (size_t)h * W - pw; /* lane l reads s[l]: src[l - pw] */
        for (int l0 = 0; l0 < Wp; l0 += 16) {
            /* lanes [0, Wp - l0) are stored; lanes [pw - l0, pw + W - l0) read the row */
            const int n = Wp - l0, lo = pw - l0 > 0 ? pw - l0 : 0, hi = pw + W - l0 < 16 ? pw + W - l0 : 16;
            const unsigned st = n >= 16 ? 0xffffu : (1u << n) - 1u;
            const unsigned in = hi > lo ? ((1u << hi) - 1u) & ~((1u << lo) - 1u) : 0u;
            /* masked-off lanes are not read (no fault before src or after its row) */
            _mm512_mask_storeu_ps(d + l0, (__mmask16)st, _mm512_maskz_loadu_ps((__mmask16)in, s + l0));
        }
    }
}

AVX512 static void act_pad_avx512(float *dst, const float *src, int rows, int W, int pw, float a,
                                  float b, int silu) {
    const int Wp = W + 2 * pw;
    const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
    for (int h = 0; h < rows; h++) {
        float *d = dst + (size_t)h * Wp;
        const float *s = src + (size_t)h * W - pw;
        for (int l0 = 0; l0 < Wp; l0 += 16) {
            const int n = Wp - l0, lo = pw - l0 > 0 ? pw - l0 : 0, hi = pw + W - l0 < 16 ? pw + W - l0 : 16;
            const __mmask16 st = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
            const __mmask16 in = (__mmask16)(hi > lo ? ((1u << hi) - 1u) & ~((1u << lo) - 1u) : 0u);
            const __m512 z = act16(_mm512_maskz_loadu_ps(in, s + l0), va, vb, silu);
            _mm512_mask_storeu_ps(d + l0, st, _mm512_maskz_mov_ps(in, z)); /* padding: 0 */
        }
    }
}
#endif

void dfs_act_pad_rows(float *dst, const float *src, int rows, int W, int pw, float a, float b,
                      int silu) {
#ifdef IGEMM_X86
    if (dfs_igemm_avx512()) {
        act_pad_avx512(dst, src, rows, W, pw, a, b, silu);
        return;
    }
#endif
    const int Wp = W + 2 * pw;
    for (int h = 0; h < rows; h++) {
        float *d = dst + (size_t)h * Wp;
        for (int i = 0; i < pw; i++) d[i] = d[pw + W + i] = 0.0f;
        dfs_affine_act(d + pw, src + (size_t)h * W, (size_t)W, a, b, silu);
    }
}

void dfs_pad_rows(float *dst, const float *src, int rows, int W, int pw) {
#ifdef IGEMM_X86
    if (dfs_igemm_avx512()) {
        pad_rows_avx512(dst, src, rows, W, pw);
        return;
    }
#endif
    const int Wp = W + 2 * pw;
    for (int h = 0; h < rows; h++) {
        float *d = dst + (size_t)h * Wp;
        for (int i = 0; i < pw; i++) d[i] = d[pw + W + i] = 0.0f;
        memcpy(d + pw, src + (size_t)h * W, (size_t)W * sizeof(float));
    }
}

void dfs_act_row(float *y, const float *x, size_t n, float a, float b, int silu) {
#ifdef IGEMM_X86
    if (dfs_igemm_avx512()) {
        act_avx512(y, x, n, a, b, silu);
        return;
    }
#endif
    dfs_affine_act(y, x, n, a, b, silu);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

void dfs_igemm_fwd_run(const dfs_igemm_fwd *p) {
    if (p->rows <= 0 || p->nq <= 0) return;
#ifdef IGEMM_X86
    if (dfs_igemm_avx512()) {
        fwd_avx512(p);
        return;
    }
#endif
    fwd_portable(p);
}

void dfs_igemm_dw_run(const dfs_igemm_dw *p) {
    if (p->rows <= 0 || p->K <= 0 || p->nq <= 0) return;
#ifdef IGEMM_X86
    if (dfs_igemm_avx512()) {
        dw_avx512(p);
        return;
    }
#endif
    dw_portable(p);
}
