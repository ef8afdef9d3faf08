/* winograd.c - the stride-1 3x3 convolutions of the reference U-Net (fmnist preset) at batch
 * B, timed on the direct kernel (the default path: dfs_conv2d on the implicit-GEMM kernel, or
 * im2col + BLAS under DFS_KERNELS=blas), on Winograd F(2x2,3x3) and, where AVX-512 runs, on
 * F(4x4,3x3) (src/kernels/winograd.c; DFS_CONV=winograd takes F(4x4) there), side by side in
 * one run: for each shape each path, alternating, and the best of R repetitions of each (the
 * least disturbed by other work on the machine); on a CPU with AVX512_BF16 also the direct
 * kernel in bf16 (dfs_set_bf16), the rate of the bf16 convolutions alone. No-grad forward,
 * plain conv (the fused pre-op costs the same on every path).
 *
 *   winograd [B=64] [R=5] [threads=2]      (bench/winograd.sh builds and runs it)
 *
 * Prints one line per shape: Ci, Co, H=W, how many such convolutions one forward has, the
 * milliseconds of each path and direct / each Winograd (above 1: Winograd is faster), then the
 * sums over one U-Net forward weighted by the counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diffuse.h"
#include "kernels/kernels.h"

/* Ci, Co, H (= W), count in one forward of the fmnist U-Net (base 32, mult 1 2 2, two encoder
 * and three decoder blocks per level, src/nn/unet.c): stem, the res blocks' conv1 (on the
 * concatenated skips in the decoder) and conv2, the upsample convs (counted at their output
 * size), out_conv. The stride-2 downsample and the 1x1 convs are not 3x3 stride 1. */
static const int SHAPES[][4] = {
    {1, 32, 28, 1},  {32, 32, 28, 7}, {64, 64, 28, 1}, {96, 32, 28, 1},  {64, 32, 28, 2},
    {32, 1, 28, 1},  {32, 64, 14, 1}, {64, 64, 14, 7}, {128, 64, 14, 2}, {96, 64, 14, 1},
    {64, 64, 7, 11}, {128, 64, 7, 3},
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

enum { DIRECT, WINO2, WINO4, BF16, NPATH };
static const char *const NAMES[NPATH] = {"direct", "F(2x2)", "F(4x4)", "bf16 direct"};

static double time_conv(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int path) {
    dfs_set_conv_algo(path == WINO2 || path == WINO4 ? DFS_CONV_WINOGRAD : DFS_CONV_DIRECT);
    dfs_winograd_test_tile(path == WINO4 ? 4 : 2);
    dfs_set_bf16(path == BF16);
    double t0 = now();
    dfs_tensor *y = dfs_conv2d(g, x, w, b, 1, 1);
    double t = now() - t0;
    dfs_tensor_release(g, y);
    dfs_set_bf16(0);
    dfs_winograd_test_tile(0);
    return t;
}

int main(int argc, char **argv) {
    const int B = argc > 1 ? atoi(argv[1]) : 64, R = argc > 2 ? atoi(argv[2]) : 5;
    dfs_set_threads(argc > 3 ? atoi(argv[3]) : 2);
    if (B < 1 || R < 1) return 2;
    int on[NPATH] = {1, 1, 0, 0};
    /* F(4x4) where its AVX-512 transforms run; bf16 only where vdpbf16ps runs (emulated bf16
     * times nothing of interest) */
    dfs_winograd_test_tile(4);
    on[WINO4] = dfs_winograd_tile() == 4;
    dfs_winograd_test_tile(0);
    on[BF16] = dfs_set_bf16(1) == DFS_BF16_NATIVE;
    dfs_set_bf16(0);
    printf("batch %d, best of %d, %d threads, kernels %s\n", B, R, dfs_get_threads(),
           dfs_kernels_names[dfs_get_kernels()]);
    printf("%5s %5s %4s %5s", "Ci", "Co", "H=W", "count");
    for (int k = 0; k < NPATH; k++)
        if (on[k]) printf(" %11s", NAMES[k]);
    printf("   direct/F(2x2)%s\n", on[WINO4] ? " direct/F(4x4)" : "");
    double tot[NPATH] = {0}, flops = 0;
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        const int Ci = SHAPES[s][0], Co = SHAPES[s][1], H = SHAPES[s][2], cnt = SHAPES[s][3];
        dfs_graph *g = dfs_graph_new();
        dfs_graph_set_grad(g, 0);
        dfs_tensor *x = dfs_tensor_new(g, 4, (int[]){B, Ci, H, H});
        dfs_tensor *w = dfs_tensor_new(g, 4, (int[]){Co, Ci, 3, 3});
        dfs_tensor *b = dfs_tensor_new(g, 1, (int[]){Co});
        dfs_rng_fill_normal(&rng, x->data, x->n);
        dfs_rng_fill_normal(&rng, w->data, w->n);
        dfs_rng_fill_normal(&rng, b->data, b->n);
        double best[NPATH] = {1e30, 1e30, 1e30, 1e30};
        for (int k = 0; k < NPATH; k++)
            if (on[k]) (void)time_conv(g, x, w, b, k); /* warm-up: scratch, pages */
        for (int r = 0; r < R; r++)
            for (int k = 0; k < NPATH; k++) {
                if (!on[k]) continue;
                double t = time_conv(g, x, w, b, k);
                if (t < best[k]) best[k] = t;
            }
        printf("%5d %5d %4d %5d", Ci, Co, H, cnt);
        for (int k = 0; k < NPATH; k++)
            if (on[k]) printf(" %11.3f", 1e3 * best[k]);
        printf(" %14.2f", best[DIRECT] / best[WINO2]);
        if (on[WINO4]) printf(" %13.2f", best[DIRECT] / best[WINO4]);
        printf("\n");
        for (int k = 0; k < NPATH; k++)
            if (on[k]) tot[k] += cnt * best[k];
        flops += cnt * 2.0 * B * Co * Ci * 9.0 * H * H; /* multiply-adds of the direct method, x2 */
        dfs_graph_free(g);
    }
    printf("one U-Net forward's 3x3 stride-1 convs (ms): direct %.1f (%.1f GFLOP/s); F(2x2) %.1f, ratio %.2f",
           1e3 * tot[DIRECT], flops / tot[DIRECT] * 1e-9, 1e3 * tot[WINO2], tot[DIRECT] / tot[WINO2]);
    if (on[WINO4]) printf("; F(4x4) %.1f, ratio %.2f", 1e3 * tot[WINO4], tot[DIRECT] / tot[WINO4]);
    if (on[BF16])
        printf("; bf16 direct %.1f (%.1f GFLOP/s, %.2fx fp32)", 1e3 * tot[BF16], flops / tot[BF16] * 1e-9,
               tot[DIRECT] / tot[BF16]);
    printf("\n(GFLOP/s count the direct method's 2 Ci Co 9 H W per image: Winograd does fewer)\n");
    return 0;
}
