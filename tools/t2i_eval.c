/* t2i_eval.c - how well a fashion-captions text-to-image model answers prompts (issue 5's
 * measure): for each of the 10 classes and each brightness word, the prompt "a dark NOUN" /
 * "a light NOUN" (NOUN one of the class's synonyms, article as the captions have it), N samples;
 * the project's classifier (models/classifier.safetensors) judges the class, and the caption
 * rule (dfs_fashion_measure_f32, the class's brightness terciles) judges the brightness.
 *
 * Prints the prompts, per-class agreement, and the totals: class agreement (chance 10%) and
 * brightness agreement (chance about 33%: a third of each class is dark, a third light), over
 * all samples and over the samples of the right class.
 *
 * Built as BUILD/tools/t2i_eval, installed as diffuse-t2i-eval; --help prints the options. */
#include "diffuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NCLS 10
#define NPROMPT (2 * NCLS)
#define CLASSIFIER "classifier.safetensors"

static const char *prog = "t2i_eval"; /* the name it was run by, for messages */

static int usage(void) {
    fprintf(stderr, "usage: %s MODEL [--n N] [--guidance W] [--steps S] [--sampler NAME] [--seed S]\n"
                    "           [--dynamic-threshold P] [--classifier FILE] [--threads T] [--raw]\n"
                    "           (%s --help for more)\n", prog, prog);
    return 2;
}

static int help(void) {
    printf("usage: %s MODEL [options]\n"
           "\n"
           "How well a fashion-captions text-to-image model answers prompts: for each of the 10\n"
           "classes, the prompts \"a dark NOUN\" and \"a light NOUN\" (NOUN a synonym of the class),\n"
           "N samples each. The project's classifier judges the class, the captions' brightness\n"
           "rule the brightness. Prints each prompt's agreement, the confusion of classes, and the\n"
           "totals: class agreement (chance 10%%) and brightness agreement (chance about 33%%).\n"
           "\n"
           "  MODEL                  a fashion-captions text model (the shipped one is\n"
           "                         fashion-text.safetensors)\n"
           "  --n N                  samples per prompt (default 5; 20 prompts)\n"
           "  --guidance W           classifier-free guidance scale (default 3)\n"
           "  --steps S              sampler steps (default 50)\n"
           "  --sampler NAME         ddpm, ddim (default), dpm++2m or heun\n"
           "  --seed S               seed of the sampler (default 0)\n"
           "  --dynamic-threshold P  Imagen's dynamic thresholding at percentile P (default off)\n"
           "  --classifier FILE      the judging classifier (default models/" CLASSIFIER ", else\n"
           "                         the installed share/diffuse/models/" CLASSIFIER ")\n"
           "  --threads T            threads (default 1)\n"
           "  --raw                  the live weights instead of the EMA weights\n",
           prog);
    return 0;
}

/* The default classifier: models/classifier.safetensors under the working folder (a source
 * tree), else the copy `make install` put in PREFIX/share/diffuse/models, found from this
 * program's own place, PREFIX/bin. Writes the path to buf (at least 4096 bytes). */
static const char *default_classifier(char *buf, size_t cap) {
    const char *local = "models/" CLASSIFIER;
    if (access(local, R_OK) == 0) return local;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return local;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return local;
    *slash = '\0'; /* PREFIX/bin */
    snprintf(buf, cap, "%s/../share/diffuse/models/" CLASSIFIER, exe);
    return access(buf, R_OK) == 0 ? buf : local;
}

int main(int argc, char **argv) {
    const char *slash = strrchr(argv[0], '/');
    prog = slash ? slash + 1 : argv[0];
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return help();
    if (argc < 2 || argv[1][0] == '-') return usage();
    char clf_buf[4200];
    const char *model = argv[1], *clf_path = NULL;
    int n = 5, steps = 50, threads = 1, raw = 0, sampler = DFS_SAMPLER_DDIM;
    float guidance = 3.0f, dthr = 0.0f;
    unsigned long long seed = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--raw")) raw = 1;
        else if (!v) return usage();
        else if (!strcmp(a, "--n")) n = atoi(v), i++;
        else if (!strcmp(a, "--guidance")) guidance = (float)atof(v), i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--dynamic-threshold")) dthr = (float)atof(v), i++;
        else if (!strcmp(a, "--classifier")) clf_path = v, i++;
        else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (!strcmp(a, "--sampler")) sampler = dfs_sampler_from_name(v), i++;
        else return usage();
    }
    if (n < 1 || steps < 1 || threads < 1 || sampler < 0) return usage();
    if (!clf_path) clf_path = default_classifier(clf_buf, sizeof clf_buf);
    dfs_set_threads(threads);

    dfs_model *m = NULL;
    dfs_classifier *clf = NULL;
    if (dfs_checkpoint_load(model, &m, NULL, NULL, NULL) != DFS_OK ||
        dfs_classifier_load(clf_path, &clf, NULL) != DFS_OK) {
        fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
        return 1;
    }
    const dfs_unet_config *u = &m->cfg.unet;
    if (u->text.dim == 0 || !m->tokenizer || u->in_channels != 1 || u->image_size != clf->cfg.image_size) {
        fprintf(stderr, "%s: %s is not a fashion-captions text model (1 x %d x %d)\n", prog, model,
                clf->cfg.image_size, clf->cfg.image_size);
        return 1;
    }
    if (steps > m->cfg.T) steps = m->cfg.T;
    const int S = u->image_size, D = S * S, N = NPROMPT * n;

    /* the prompts: class c, tone t (0 dark, 1 light), a synonym picked by the index */
    char text[NPROMPT][64];
    const char *prompts[NPROMPT];
    int want_cls[NPROMPT], want_tone[NPROMPT];
    for (int c = 0; c < NCLS; c++)
        for (int t = 0; t < 2; t++) {
            const int p = 2 * c + t;
            dfs_fashion_attr a = {.tone = t ? DFS_TONE_LIGHT : DFS_TONE_DARK, .size = DFS_SIZE_MID};
            dfs_fashion_caption(text[p], sizeof text[p], c, &a, 7, p);
            prompts[p] = text[p];
            want_cls[p] = c;
            want_tone[p] = a.tone;
        }
    if (dfs_model_set_prompts(m, prompts, NPROMPT, NULL, NULL, NULL) != DFS_OK) {
        fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
        return 1;
    }
    int *labels = malloc((size_t)N * sizeof(int));
    float *x = malloc((size_t)N * D * sizeof(float)), *logits = malloc((size_t)N * NCLS * sizeof(float));
    if (!labels || !x || !logits) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    for (int i = 0; i < N; i++) labels[i] = i / n;
    dfs_sample_request rq;
    dfs_sample_request_default(&rq);
    rq.sampler.kind = sampler;
    rq.sampler.steps = steps;
    rq.sampler.guidance = guidance;
    rq.sampler.dynamic_threshold = dthr;
    rq.labels = labels;
    rq.n = N;
    rq.raw = raw;
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    if (dfs_model_sample(m, &rq, &rng, x) != DFS_OK ||
        dfs_classifier_forward(clf, x, N, logits, NULL) != DFS_OK) {
        fprintf(stderr, "%s: %s\n", prog, dfs_last_error());
        return 1;
    }
    int cls_ok = 0, tone_ok = 0, both_cls = 0, tone_ok_right_cls = 0, per_cls[NCLS] = {0};
    int confusion[NCLS][NCLS] = {{0}}; /* [prompted][classified] */
    printf("prompt                        class agreement  brightness agreement\n");
    for (int p = 0; p < NPROMPT; p++) {
        int pc = 0, pt = 0;
        for (int j = 0; j < n; j++) {
            const int i = p * n + j;
            int best = 0;
            for (int k = 1; k < NCLS; k++)
                if (logits[(size_t)i * NCLS + k] > logits[(size_t)i * NCLS + best]) best = k;
            dfs_fashion_attr a;
            dfs_fashion_measure_f32(x + (size_t)i * D, S, S, want_cls[p], &a);
            const int c_ok = best == want_cls[p], t_ok = (int)a.tone == want_tone[p];
            confusion[want_cls[p]][best]++;
            pc += c_ok, pt += t_ok;
            both_cls += c_ok;
            tone_ok_right_cls += c_ok && t_ok;
        }
        cls_ok += pc, tone_ok += pt, per_cls[want_cls[p]] += pc;
        printf("%-30s %3d/%-3d          %3d/%-3d\n", prompts[p], pc, n, pt, n);
    }
    printf("\nper class:");
    for (int c = 0; c < NCLS; c++) printf(" %d:%d/%d", c, per_cls[c], 2 * n);
    printf("\nconfusion (row: prompted class, column: the classifier's class):\n");
    for (int c = 0; c < NCLS; c++) {
        printf("  %d:", c);
        for (int k = 0; k < NCLS; k++) printf(" %3d", confusion[c][k]);
        printf("\n");
    }
    printf("\n%d samples (%d prompts x %d), %s %d steps, guidance %g%s, %s weights\n", N, NPROMPT, n,
           dfs_sampler_names[sampler], steps, guidance, dthr > 0 ? ", dynamic thresholding" : "", raw ? "raw" : "EMA");
    printf("class agreement:      %.1f%% (%d/%d; chance 10%%)\n", 100.0 * cls_ok / N, cls_ok, N);
    printf("brightness agreement: %.1f%% (%d/%d; chance ~33%%), %.1f%% among the %d of the right class\n",
           100.0 * tone_ok / N, tone_ok, N, both_cls ? 100.0 * tone_ok_right_cls / both_cls : 0.0, both_cls);
    free(labels), free(x), free(logits);
    dfs_classifier_free(clf);
    dfs_model_free(m);
    return 0;
}
