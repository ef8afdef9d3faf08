/* cmd_eval.c - diffuse eval: the variational bound on the negative log-likelihood of held-out
 * images (bits per dimension), as in Ho et al. 2020 table 2 and Nichol & Dhariwal 2021. */
#include "common.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *eval_help =
    "usage: diffuse eval --nll --model CKPT [options]\n"
    "\n"
    "Evaluate a trained model. --nll computes the variational bound on -log p(x) (DDPM eq. 5) of\n"
    "the first N images of the data, summed over all T steps (no subsampling), in bits per\n"
    "dimension, and prints its mean and standard error. Uses the EMA weights. docs/EVAL.md.\n"
    "\n"
    "  --nll               the negative log-likelihood bound (the only evaluation so far)\n"
    "  --model CKPT        checkpoint (.safetensors) written by diffuse train\n"
    "  --data SRC          fashion-mnist-test (default), fashion-mnist, a PNG folder or an IDX\n"
    "                      image file\n"
    "  --labels FILE       IDX labels for an IDX --data (class models; else the null class)\n"
    "  --n N               number of images (default 100); costs N x T network evaluations\n"
    "  --batch B           images per network pass (default 64)\n"
    "  --seed S            seed for the noise that draws x_t (default 0)\n"
    "  --threads N         threads (default 2)\n"
    "  --raw               use the raw weights instead of the EMA weights\n";

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = "fashion-mnist-test", *labels_path = NULL;
    long n = 100, batch = 64, threads = 2;
    uint64_t seed = 0;
    int nll = 0, raw = 0;
    enum { O_NLL = 256, O_MODEL, O_DATA, O_LABELS, O_N, O_BATCH, O_SEED, O_THREADS, O_RAW };
    static const struct option opts[] = {
        {"nll", no_argument, 0, O_NLL}, {"model", required_argument, 0, O_MODEL},
        {"data", required_argument, 0, O_DATA}, {"labels", required_argument, 0, O_LABELS},
        {"n", required_argument, 0, O_N}, {"batch", required_argument, 0, O_BATCH},
        {"seed", required_argument, 0, O_SEED}, {"threads", required_argument, 0, O_THREADS},
        {"raw", no_argument, 0, O_RAW}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h': fputs(eval_help, stdout); return 0;
        case O_NLL: nll = 1; break;
        case O_RAW: raw = 1; break;
        case O_MODEL: model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_LABELS: labels_path = optarg; break;
        case O_N: if (cli_int("--n", optarg, 1, 1000000, &n)) return 2; break;
        case O_BATCH: if (cli_int("--batch", optarg, 1, 4096, &batch)) return 2; break;
        case O_THREADS: if (cli_int("--threads", optarg, 1, 256, &threads)) return 2; break;
        case O_SEED: if (cli_u64("--seed", optarg, &seed)) return 2; break;
        default: return cli_fail("eval: unknown or incomplete option '%s' (see diffuse eval --help)", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_fail("eval: unexpected argument '%s'", argv[optind]);
    if (!nll) return cli_fail("eval: only --nll (the likelihood bound in bits/dim) is implemented so far");
    if (!model) return cli_fail("eval: --model CKPT is required");
    dfs_set_threads((int)threads);

    dfs_model *m = NULL;
    dfs_status s = dfs_checkpoint_load(model, &m, NULL, NULL, NULL);
    if (s != DFS_OK) return cli_fail_status(s);
    const dfs_unet_config *u = &m->cfg.unet;
    const int ncls = u->num_classes, C = u->in_channels, S = u->image_size;
    const size_t dim = (size_t)C * S * S;
    int rc = 0;
    float *x = NULL;
    double *bpd = NULL;
    int *lab = NULL;
    dfs_dataset d;
    memset(&d, 0, sizeof d);
    s = cli_load_data(&d, data, labels_path, S, C, (int)n);
    if (s != DFS_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    if (d.c != C || d.h != S || d.w != S) {
        rc = cli_fail("eval: %s has %dx%dx%d images but the model expects %dx%dx%d", data, d.c, d.h, d.w, C, S, S);
        goto done;
    }
    if (d.n < n) {
        fprintf(stderr, "diffuse: warning: %s has only %d images; evaluating all of them\n", data, d.n);
        n = d.n;
    }
    x = malloc((size_t)n * dim * sizeof(float));
    bpd = malloc((size_t)n * sizeof(double));
    lab = malloc((size_t)n * sizeof(int));
    if (!x || !bpd || !lab) {
        rc = cli_fail("out of memory for %ld images", n);
        goto done;
    }
    for (size_t i = 0; i < (size_t)n * dim; i++) x[i] = d.pixels[i] / 127.5f - 1.0f;
    /* class models: the bound on -log p(x | y) with the data's labels; the null class
     * (unconditional) when the data has none or they are out of range */
    int conditional = ncls > 0 && d.labels != NULL;
    for (long i = 0; i < n; i++) {
        lab[i] = ncls;
        if (conditional && d.labels[i] >= 0 && d.labels[i] < ncls) lab[i] = d.labels[i];
    }
    if (!raw) dfs_params_swap_ema(m->net->params);
    m->max_batch = (int)batch;

    fprintf(stderr, "bound on -log p(x%s) of %ld images of %s over T = %d steps (%ld network evaluations)\n",
            conditional ? " | class" : "", n, data, m->cfg.T, n * (long)m->cfg.T);
    cli_catch_signals();
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    double t0 = cli_now(), sum = 0;
    for (long i = 0; i < n; i += batch) {
        int nb = (int)(n - i < batch ? n - i : batch);
        s = dfs_nll_bpd(&m->sched, m->cfg.prediction, dfs_model_predict, m, ncls > 0 ? lab + i : NULL,
                        x + (size_t)i * dim, nb, dim, &rng, bpd + i);
        if (s != DFS_OK) {
            fputc('\n', stderr);
            rc = cli_fail_status(s);
            goto done;
        }
        for (int k = 0; k < nb; k++) sum += bpd[i + k];
        double el = cli_now() - t0;
        long doneimg = i + nb;
        fprintf(stderr, "\r%ld/%ld images | mean %.4f bits/dim | %.1f s | ETA %.0f s   ", doneimg, n,
                sum / doneimg, el, el / doneimg * (n - doneimg));
        if (cli_interrupted() && doneimg < n) {
            fputc('\n', stderr);
            rc = cli_fail("eval: interrupted after %ld of %ld images", doneimg, n);
            goto done;
        }
    }
    fputc('\n', stderr);
    double mean = sum / n, var = 0;
    for (long i = 0; i < n; i++) var += (bpd[i] - mean) * (bpd[i] - mean);
    double se = n > 1 ? sqrt(var / (n - 1) / n) : NAN;
    printf("nll bound: %.4f +- %.4f bits/dim (mean +- standard error over %ld images, %s weights)\n", mean, se, n,
           raw ? "raw" : "EMA");
    fprintf(stderr, "done in %.1f s\n", cli_now() - t0);
done:
    free(x);
    free(bpd);
    free(lab);
    dfs_dataset_free(&d);
    dfs_model_free(m);
    return rc;
}
