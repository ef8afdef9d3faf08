/* nn_eval.c - does a text-to-image model draw what a caption names? (issue 5's emoji measure)
 * For N captions drawn at random from the data, one sample each; the sample's K nearest
 * training images are found in a pixel feature space, and the prompt counts as answered when
 * one of those K images has exactly the prompt as its caption.
 *
 * Feature space: the image in [-1, 1] (pixel / 127.5 - 1, the model's own scale), averaged over
 * POOL x POOL blocks (default 2: 32x32x3 emoji become 16x16x3 = 768 numbers), compared by
 * Euclidean distance. Pooling forgives a pixel of misplacement without forgiving a wrong colour
 * or shape; there is no learned network in the measure, so nothing in it was fit to the data.
 * Chance is K / (images in the data).
 *
 * Built as BUILD/tools/nn_eval, installed as diffuse-nn-eval; --help prints the options. */
#include "diffuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "nn_eval"; /* the name it was run by, for messages */

static int usage(void) {
    fprintf(stderr, "usage: %s (MODEL | --real) [--data SRC] [--n N] [--k K] [--pool P] [--guidance W]\n"
                    "           [--steps S] [--sampler NAME] [--seed S] [--threads T] [--raw] [--shuffle]\n"
                    "           [--show FILE.png]   (%s --help for more)\n", prog, prog);
    return 2;
}

static int help(void) {
    printf("usage: %s (MODEL | --real) [options]\n"
           "\n"
           "Does a text-to-image model draw what a caption names? For N captions drawn at random\n"
           "from the data, one sample each; the sample's K nearest images of the data are found in\n"
           "a pixel feature space (the image in [-1, 1] averaged over POOL x POOL blocks, compared\n"
           "by Euclidean distance), and the prompt counts as answered when one of those K images\n"
           "has exactly the prompt as its caption. Prints top-1 and top-K against chance\n"
           "(K / images in the data).\n"
           "\n"
           "  MODEL            a text model checkpoint (the shipped emoji.safetensors is in\n"
           "                   models/ of the source tree, share/diffuse/models/ when installed)\n"
           "  --real           the data's own image for each caption instead of a sample: the\n"
           "                   measure's ceiling\n"
           "  --shuffle        with --real, the image of another caption: the measure's floor\n"
           "  --data SRC       captioned data: emoji (default), fashion-captions or a folder\n"
           "  --n N            captions (default 200)\n"
           "  --k K            nearest images looked at, 1..16 (default 5)\n"
           "  --pool P         block size of the feature space (default 2)\n"
           "  --guidance W     classifier-free guidance scale (default 3)\n"
           "  --steps S        sampler steps (default 50)\n"
           "  --sampler NAME   ddpm, ddim (default), dpm++2m or heun\n"
           "  --seed S         picks the captions (and, plus 1, seeds the sampler; default 0)\n"
           "  --threads T      threads (default 2)\n"
           "  --raw            the live weights instead of the EMA weights\n"
           "  --show FILE.png  a picture, one row per prompt (at most 16): the sample, then its K\n"
           "                   nearest images\n",
           prog);
    return 0;
}

/* images (n, c, s, s) in [-1, 1] averaged over p x p blocks into (n, c * (s/p)^2) */
static void pool_features(const float *x, int n, int c, int s, int p, float *out) {
    const int o = s / p;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < o; y++)
                for (int xx = 0; xx < o; xx++) {
                    double sum = 0;
                    for (int dy = 0; dy < p; dy++)
                        for (int dx = 0; dx < p; dx++)
                            sum += x[(((size_t)i * c + ch) * s + y * p + dy) * s + xx * p + dx];
                    out[(((size_t)i * c + ch) * o + y) * o + xx] = (float)(sum / (p * p));
                }
}

int main(int argc, char **argv) {
    const char *slash = strrchr(argv[0], '/');
    prog = slash ? slash + 1 : argv[0];
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return help();
    if (argc < 2) return usage();
    const char *model = NULL, *data = "emoji", *show = NULL;
    int n = 200, k = 5, pool = 2, steps = 50, threads = 2, raw = 0, real = 0, shuffle = 0;
    int sampler = DFS_SAMPLER_DDIM;
    float guidance = 3.0f;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--real")) real = 1;
        else if (!strcmp(a, "--raw")) raw = 1;
        else if (!strcmp(a, "--shuffle")) shuffle = 1;
        else if (a[0] != '-' && !model) model = a;
        else if (!v) return usage();
        else if (!strcmp(a, "--data")) data = v, i++;
        else if (!strcmp(a, "--n")) n = atoi(v), i++;
        else if (!strcmp(a, "--k")) k = atoi(v), i++;
        else if (!strcmp(a, "--pool")) pool = atoi(v), i++;
        else if (!strcmp(a, "--guidance")) guidance = (float)atof(v), i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (!strcmp(a, "--sampler")) sampler = dfs_sampler_from_name(v), i++;
        else if (!strcmp(a, "--show")) show = v, i++;
        else return usage();
    }
    if (!!model == !!real || n < 1 || k < 1 || k > 16 || pool < 1 || steps < 1 || threads < 1 || sampler < 0 ||
        (shuffle && !real))
        return usage();
    dfs_set_threads(threads);

    dfs_caption_set cs;
    if (dfs_captions_load(&cs, data, NULL) != DFS_OK) {
        fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
        return 1;
    }
    const int N = cs.images.n, C = cs.images.c, S = cs.images.h;
    if (S % pool || cs.images.w != S) {
        fprintf(stderr, "%s: images of %d x %d do not pool by %d\n", prog, S, cs.images.w, pool);
        return 1;
    }
    if (n > N) n = N;
    if (k > N) k = N;
    const size_t D = (size_t)C * S * S, F = D / ((size_t)pool * pool);
    float *ref = malloc((size_t)N * D * sizeof(float)), *rf = malloc((size_t)N * F * sizeof(float));
    float *x = malloc((size_t)n * D * sizeof(float)), *xf = malloc((size_t)n * F * sizeof(float));
    int *pick = malloc((size_t)N * sizeof(int)), *idx = malloc((size_t)n * k * sizeof(int));
    if (!ref || !rf || !x || !xf || !pick || !idx) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    for (size_t i = 0; i < (size_t)N * D; i++) ref[i] = cs.images.pixels[i] / 127.5f - 1.0f;
    pool_features(ref, N, C, S, pool, rf);

    /* n distinct captions: the first n of a seeded shuffle of the data */
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    for (int i = 0; i < N; i++) pick[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(dfs_rng_u64(&rng) % (uint64_t)(i + 1)), t = pick[i];
        pick[i] = pick[j], pick[j] = t;
    }
    const char **prompts = malloc((size_t)n * sizeof(char *));
    int *labels = malloc((size_t)n * sizeof(int));
    if (!prompts || !labels) return 1;
    for (int i = 0; i < n; i++) prompts[i] = cs.captions[pick[i]], labels[i] = i;

    dfs_model *m = NULL;
    if (real) {
        for (int i = 0; i < n; i++) {
            int src = shuffle ? pick[(i + 1) % n] : pick[i]; /* another caption's image */
            memcpy(x + (size_t)i * D, ref + (size_t)src * D, D * sizeof(float));
        }
    } else {
        if (dfs_checkpoint_load(model, &m, NULL, NULL, NULL) != DFS_OK) {
            fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
            return 1;
        }
        const dfs_unet_config *u = &m->cfg.unet;
        if (u->text.dim == 0 || !m->tokenizer || u->in_channels != C || u->image_size != S) {
            fprintf(stderr, "%s: %s is not a text model of %s's %dx%dx%d images\n", prog, model, data, C, S, S);
            return 1;
        }
        if (dfs_model_set_prompts(m, prompts, n, NULL, NULL, NULL) != DFS_OK) {
            fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
            return 1;
        }
        if (steps > m->cfg.T) steps = m->cfg.T;
        dfs_sample_request rq;
        dfs_sample_request_default(&rq);
        rq.sampler.kind = sampler;
        rq.sampler.steps = steps;
        rq.sampler.guidance = guidance;
        rq.labels = labels;
        rq.n = n;
        rq.raw = raw;
        dfs_rng srng;
        dfs_rng_seed(&srng, seed + 1);
        if (dfs_model_sample(m, &rq, &srng, x) != DFS_OK) {
            fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
            return 1;
        }
    }
    pool_features(x, n, C, S, pool, xf);
    if (dfs_nearest(xf, n, rf, N, (int)F, k, idx, NULL) != DFS_OK) {
        fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
        return 1;
    }
    int top1 = 0, topk = 0;
    for (int i = 0; i < n; i++) {
        int hit = 0;
        for (int j = 0; j < k && !hit; j++)
            if (!strcmp(cs.captions[idx[(size_t)i * k + j]], prompts[i])) hit = j + 1;
        top1 += hit == 1, topk += hit > 0;
        if (i < 20 || !hit)
            printf("%-4s %-60.60s | nearest: %.60s\n", hit ? (hit == 1 ? "1" : "k") : "-", prompts[i],
                   cs.captions[idx[(size_t)i * k]]);
    }
    printf("\n%d prompts of %s (%d images), %s, features: %dx%d average pool of the pixels in [-1, 1]\n", n, data, N,
           real ? (shuffle ? "the data's image of ANOTHER caption (floor)" : "the data's own images (ceiling)") : "one sample each",
           pool, pool);
    if (!real)
        printf("model %s, %s %d steps, guidance %g, %s weights\n", model, dfs_sampler_names[sampler], steps, guidance,
               raw ? "raw" : "EMA");
    printf("top-1: %.1f%% (%d/%d)\n", 100.0 * top1 / n, top1, n);
    printf("top-%d: %.1f%% (%d/%d; chance %.2f%%)\n", k, 100.0 * topk / n, topk, n, 100.0 * k / N);

    if (show) { /* rows: the sample, then its k nearest */
        const int rows = n < 16 ? n : 16, cols = k + 1;
        float *g = malloc((size_t)rows * cols * D * sizeof(float));
        if (g) {
            for (int i = 0; i < rows; i++) {
                memcpy(g + (size_t)i * cols * D, x + (size_t)i * D, D * sizeof(float));
                for (int j = 0; j < k; j++)
                    memcpy(g + ((size_t)i * cols + 1 + j) * D, ref + (size_t)idx[(size_t)i * k + j] * D, D * sizeof(float));
            }
            if (dfs_png_write_grid(show, g, rows * cols, C, S, S, cols) != DFS_OK)
                fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
            free(g);
        }
    }
    free(ref), free(rf), free(x), free(xf), free(pick), free(idx), free(prompts), free(labels);
    dfs_model_free(m);
    dfs_caption_set_free(&cs);
    return 0;
}
