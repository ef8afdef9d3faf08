/* winograd.c - the stride-1 3x3 convolutions of the reference U-Net (fmnist preset) at batch
 * B, timed on the direct kernel (the default path: dfs_conv2d on the implicit-GEMM kernel, or
 * im2col + BLAS under DFS_KERNELS=blas) and on Winograd F(2x2,3x3) (src/kernels/winograd.c),
 * side by side in one run: for each shape both, alternating, and the best of R repetitions of
 * each (the least disturbed by other work on the machine); on a CPU with AVX512_BF16 also the
 * direct kernel in bf16 (dfs_set_bf16), the rate of the bf16 convolutions alone. No-grad
 * forward, plain conv (the fused pre-op costs the same on both paths).
 *
 *   winograd [B=64] [R=5] [threads=2]      (bench/winograd.sh builds and runs it)
 *
 * Prints one line per shape: Ci, Co, H=W, how many such convolutions one forward has, the
 * milliseconds of each path, direct / winograd (above 1: Winograd is faster), then the sum over
 * one U-Net forward weighted by the counts. */
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

/* path 0: the direct kernel, 1: Winograd, 2: the direct kernel in bf16 (where it runs natively) */
static double time_conv(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int path) {
    dfs_set_conv_algo(path == 1 ? DFS_CONV_WINOGRAD : DFS_CONV_DIRECT);
    dfs_set_bf16(path == 2);
    double t0 = now();
    dfs_tensor *y = dfs_conv2d(g, x, w, b, 1, 1);
    double t = now() - t0;
    dfs_tensor_release(g, y);
    dfs_set_bf16(0);
    return t;
}

int main(int argc, char **argv) {
    const int B = argc > 1 ? atoi(argv[1]) : 64, R = argc > 2 ? atoi(argv[2]) : 5;
    dfs_set_threads(argc > 3 ? atoi(argv[3]) : 2);
    if (B < 1 || R < 1) return 2;
    /* the bf16 column only where vdpbf16ps runs: emulated bf16 times nothing of interest */
    const int np = dfs_set_bf16(1) == DFS_BF16_NATIVE ? 3 : 2;
    dfs_set_bf16(0);
    printf("batch %d, best of %d, %d threads, kernels %s\n", B, R, dfs_get_threads(),
           dfs_kernels_names[dfs_get_kernels()]);
    printf("%5s %5s %4s %5s %12s %12s %7s %12s\n", "Ci", "Co", "H=W", "count", "direct ms", "winograd ms",
           "ratio", np == 3 ? "bf16 ms" : "");
    double tot[3] = {0, 0, 0}, flops = 0;
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
        double best[3] = {1e30, 1e30, 1e30};
        for (int k = 0; k < np; k++) (void)time_conv(g, x, w, b, k); /* warm-up: scratch, pages */
        for (int r = 0; r < R; r++)
            for (int k = 0; k < np; k++) {
                double t = time_conv(g, x, w, b, k);
                if (t < best[k]) best[k] = t;
            }
        printf("%5d %5d %4d %5d %12.3f %12.3f %7.2f", Ci, Co, H, cnt, 1e3 * best[0], 1e3 * best[1],
               best[0] / best[1]);
        if (np == 3) printf(" %12.3f", 1e3 * best[2]);
        printf("\n");
        for (int k = 0; k < np; k++) tot[k] += cnt * best[k];
        flops += cnt * 2.0 * B * Co * Ci * 9.0 * H * H; /* multiply-adds of the direct method, x2 */
        dfs_graph_free(g);
    }
    printf("one U-Net forward's 3x3 stride-1 convs: direct %.1f ms (%.1f GFLOP/s), winograd %.1f ms, ratio %.2f",
           1e3 * tot[0], flops / tot[0] * 1e-9, 1e3 * tot[1], tot[0] / tot[1]);
    if (np == 3) printf("; bf16 direct %.1f ms (%.1f GFLOP/s, %.2fx fp32)", 1e3 * tot[2], flops / tot[2] * 1e-9, tot[0] / tot[2]);
    printf("\n(GFLOP/s count the direct method's 2 Ci Co 9 H W per image: Winograd does fewer)\n");
    return 0;
}
