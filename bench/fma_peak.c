/* fma_peak.c - the CPU's arithmetic ceiling for float32 and bfloat16 multiply-adds.
 *
 * Each thread runs a loop of 24 independent 512-bit accumulators, all in registers, with no
 * loads: once with vfmadd231ps (16 float32 multiply-adds, 32 FLOPs per instruction) and, on a
 * CPU with AVX512_BF16, once with vdpbf16ps (16 lanes x 2 bfloat16 products summed in
 * float32: 64 FLOPs per instruction). 24 chains cover a latency of up to 12 cycles at two
 * instructions per cycle. The best GFLOP/s of a few repetitions is printed as one JSON line:
 *   {"fma_gflops": X, "bf16_gflops": Y, "threads": N}   (bf16_gflops 0 without AVX512_BF16)
 * This is what no kernel can beat; OpenBLAS SGEMM (sgemm_peak.c) shows how much of it a tuned
 * float32 GEMM reaches, and diffuse's bf16 rates are read against bf16_gflops, for which
 * Debian's OpenBLAS 0.3.21 has no GEMM (no sbgemm). Needs x86-64 with AVX-512 F.
 *
 *   fma_peak [threads]   (default 2)
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "peak_args.h"

#define NACC 24
#define ITERS 4000000L /* per repetition and thread: ~96M instructions, ~0.05-0.1 s */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The sum of the accumulators keeps the loop from being optimised away. */
__attribute__((target("avx512f"))) static float fma_loop(long iters) {
    __m512 acc[NACC];
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
        #pragma GCC unroll 24
        for (int i = 0; i < NACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    __m512 s = acc[0];
    for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"))) static float bf16_loop(long iters) {
    __m512 acc[NACC];
    const __m512i x = _mm512_set1_epi32(0x3f803f80); /* the pair (1, 1) */
    const __m512i y = _mm512_set1_epi32(0x33d633d6); /* the pair (1e-7, 1e-7), about */
    for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
        #pragma GCC unroll 24
        for (int i = 0; i < NACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)x, (__m512bh)y);
    }
    __m512 s = acc[0];
    for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

/* best GFLOP/s over reps runs of loop on every thread at once */
static double peak(int threads, int bf16, double flops_per_insn) {
    double best = 0.0;
    float sink = 0.0f;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = 0.0;
        #pragma omp parallel num_threads(threads) reduction(+ : sink)
        {
            #pragma omp barrier
            #pragma omp master
            t0 = now();
            sink += bf16 ? bf16_loop(ITERS) : fma_loop(ITERS);
        }
        const double gf = (double)threads * ITERS * NACC * flops_per_insn / (now() - t0) * 1e-9;
        if (gf > best) best = gf;
    }
    if (sink != sink) fprintf(stderr, "fma_peak: NaN\n"); /* uses the sums */
    return best;
}

int main(int argc, char **argv) {
    const int threads = peak_threads_arg("fma_peak", argc, argv);
    if (threads < 0) return 2;
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "fma_peak: this CPU has no AVX-512 F; nothing to measure\n");
        return 1;
    }
    const double f = peak(threads, 0, 32.0);
    const double b = __builtin_cpu_supports("avx512bf16") ? peak(threads, 1, 64.0) : 0.0;
    printf("{\"fma_gflops\": %.2f, \"bf16_gflops\": %.2f, \"threads\": %d}\n", f, b, threads);
    return 0;
}
