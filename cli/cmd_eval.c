/* cmd_eval.c - diffuse eval: how good a model is.
 *   --nll   the variational bound on the negative log-likelihood of held-out images (bits per
 *           dimension), as in Ho et al. 2020 table 2 and Nichol & Dhariwal 2021;
 *   --fd    the Frechet distance of samples to the test set in the feature space of diffuse's
 *           own Fashion-MNIST classifier (Heusel et al. 2017's recipe), next to the floor: the
 *           FD of as many real held-out images (training set) against the same test set;
 *   --acc   the classifier's agreement with the class each sample was drawn for.
 * Samples come from a .npy that diffuse sample wrote, or are drawn here from a model. */
#include "common.h"
#include "progress.h"
#include "sampling.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *eval_help =
    "usage: diffuse eval --nll --model CKPT [options]\n"
    "       diffuse eval --fd --acc (--samples FILE.npy | --model CKPT) [options]\n"
    "\n"
    "Evaluate a trained model or its samples (docs/EVAL.md, docs/QUALITY.md).\n"
    "\n"
    "what:\n"
    "  --nll               the variational bound on -log p(x) (DDPM eq. 5) of the first N images\n"
    "                      of --data, summed over all T steps, in bits per dimension (mean and\n"
    "                      standard error); costs N x T network evaluations. With --raw, of\n"
    "                      the raw weights (default: the EMA weights)\n"
    "  --fd                Frechet distance of the samples to --ref in the classifier's feature\n"
    "                      space, printed next to the floor: the FD of N real images drawn from\n"
    "                      --floor-data against the same --ref (FD is biased at small N)\n"
    "  --acc               accuracy of the classifier on the samples against the class each\n"
    "                      was drawn for (class-conditional models), overall and per class\n"
    "samples (for --fd and --acc):\n"
    "  --samples FILE.npy  uint8 N x H x W x C array as diffuse sample writes it; labels for --acc\n"
    "                      from FILE.labels.npy beside it. Given several times, the files are\n"
    "                      pooled in order (a long sampler run drawn in chunks; bench/quality.sh)\n"
    "  --model CKPT        or draw N samples from this checkpoint (also the model for --nll);\n"
    "                      the classes cycle 0, 1, ..., classes-1; a progress line counts the\n"
    "                      network evaluations (on a terminal; elsewhere a line at each tenth)\n"
    "  --save-samples F    also write the drawn samples to F.npy (and F.labels.npy)\n"
    "data and options:\n"
    "  --n N               images (default: 100 for --nll, 2000 samples for --fd/--acc); with\n"
    "                      --nll and --fd/--acc together it is the bound's, the samples stay 2000\n"
    "  --classifier FILE   the feature network (default models/classifier.safetensors)\n"
    "  --ref SRC           reference images for --fd (default fashion-mnist-test, all of them)\n"
    "  --floor-data SRC    real images for the floor (default fashion-mnist, N drawn at random)\n"
    "  --data SRC          images for --nll: fashion-mnist-test (default), fashion-mnist, a PNG\n"
    "                      folder or an IDX image file\n"
    "  --labels FILE       IDX labels for an IDX --data (class models; else the null class)\n"
    "  --batch B           images per network pass (default 64)\n"
    "  --seed S            seed for sampling, the floor's draw and the noise of --nll (default 0)\n"
    "  --threads N         threads (default 2)\n"
    "  --json FILE         also write the results as one JSON object to FILE\n";

#define EVAL_MAX_CLASSES 256
#define EVAL_MAX_FILES 256

typedef struct {
    const char *files[EVAL_MAX_FILES]; /* --samples, in order (nfiles of them; 0: sample --model) */
    int nfiles;
    const char *model, *save, *clf_path, *ref, *floor_data, *data, *labels_path, *json;
    long n, batch, threads;
    uint64_t seed;
    int nll, fd, acc;
    cli_sampling so; /* the sampler's options, as diffuse sample reads them (--raw: for --nll too) */
} eval_opts;

/* ---- results, printed and optionally written as JSON ------------------------------------- */

typedef struct {
    int have_nll, have_fd, have_acc;
    double nll, nll_se;
    long nll_n;
    double fd, floor;
    long fd_n, ref_n;
    double acc, class_acc[EVAL_MAX_CLASSES];
    long class_n[EVAL_MAX_CLASSES];
    int ncls;
    double sample_seconds;
} eval_results;

static int write_json(const char *path, const eval_opts *o, const eval_results *r) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return cli_fail("out of memory");
    if (o->nfiles == 1) cJSON_AddStringToObject(j, "samples", o->files[0]);
    if (o->nfiles > 1) {
        cJSON *a = cJSON_AddArrayToObject(j, "samples");
        for (int i = 0; a && i < o->nfiles; i++) cJSON_AddItemToArray(a, cJSON_CreateString(o->files[i]));
    }
    if (o->model) cJSON_AddStringToObject(j, "model", o->model);
    if (o->model && !o->nfiles && (o->fd || o->acc)) {
        cJSON_AddStringToObject(j, "sampler", dfs_sampler_names[o->so.sampler]);
        cJSON_AddNumberToObject(j, "steps", (double)o->so.steps);
        cJSON_AddNumberToObject(j, "guidance", o->so.guidance);
        cJSON_AddNumberToObject(j, "eta", o->so.eta);
        cJSON_AddStringToObject(j, "variance", o->so.var_tilde ? "beta-tilde" : "beta");
        cJSON_AddNumberToObject(j, "noise_scale", o->so.noise_scale);
        cJSON_AddNumberToObject(j, "dynamic_threshold", o->so.dthr);
        cJSON_AddBoolToObject(j, "raw", o->so.raw);
        cJSON_AddNumberToObject(j, "seed", (double)o->seed);
        cJSON_AddNumberToObject(j, "sample_seconds", r->sample_seconds);
        cJSON_AddStringToObject(j, "precision", cli_precision_name(o->so.bf16));
        cJSON_AddStringToObject(j, "conv", dfs_conv_algo_names[dfs_get_conv_algo()]);
    }
    if (r->have_nll) {
        cJSON_AddNumberToObject(j, "nll_bpd", r->nll);
        cJSON_AddNumberToObject(j, "nll_se", r->nll_se);
        cJSON_AddNumberToObject(j, "nll_n", (double)r->nll_n);
    }
    if (r->have_fd) {
        cJSON_AddNumberToObject(j, "fd", r->fd);
        cJSON_AddNumberToObject(j, "fd_floor", r->floor);
        cJSON_AddNumberToObject(j, "fd_ratio", r->floor > 0 ? r->fd / r->floor : 0.0);
        cJSON_AddNumberToObject(j, "fd_n", (double)r->fd_n);
        cJSON_AddNumberToObject(j, "ref_n", (double)r->ref_n);
    }
    if (r->have_acc) {
        cJSON_AddNumberToObject(j, "class_accuracy", r->acc);
        cJSON *pc = cJSON_AddArrayToObject(j, "per_class");
        for (int k = 0; pc && k < r->ncls; k++) cJSON_AddItemToArray(pc, cJSON_CreateNumber(r->class_acc[k]));
    }
    if (r->have_fd || r->have_acc) cJSON_AddStringToObject(j, "classifier", o->clf_path);
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    if (!txt) return cli_fail("out of memory");
    size_t len = strlen(txt);
    txt[len] = '\n'; /* replace the terminator: the file ends with a newline */
    dfs_status s = dfs_write_atomic(path, txt, len + 1);
    cJSON_free(txt);
    return s == DFS_OK ? 0 : cli_fail_status(s);
}

/* ---- --nll --------------------------------------------------------------------------------- */

static int eval_nll(const eval_opts *o, dfs_model *m, eval_results *r) {
    const dfs_unet_config *u = &m->cfg.unet;
    const int ncls = u->num_classes, C = u->in_channels, S = u->image_size;
    const size_t dim = (size_t)C * S * S;
    long n = o->n > 0 ? o->n : 100;
    int rc = 0;
    float *x = NULL;
    double *bpd = NULL;
    int *lab = NULL;
    dfs_dataset d;
    memset(&d, 0, sizeof d);
    dfs_status s = cli_load_data(&d, o->data, o->labels_path, S, C, (int)n);
    if (s != DFS_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    if (d.c != C || d.h != S || d.w != S) {
        rc = cli_fail("eval: %s has %dx%dx%d images but the model expects %dx%dx%d", o->data, d.c, d.h, d.w, C, S,
                      S);
        goto done;
    }
    if (d.n < n) {
        fprintf(stderr, "diffuse: warning: %s has only %d images; evaluating all of them\n", o->data, d.n);
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
    /* class models: the bound on -log p(x | y) with the data's labels, or with the null class
     * (unconditional) when the data has none; a label the model has no class for is an error */
    int conditional = ncls > 0 && d.labels != NULL;
    for (long i = 0; i < n; i++) {
        lab[i] = conditional ? d.labels[i] : ncls;
        if (conditional && (lab[i] < 0 || lab[i] >= ncls)) {
            rc = cli_fail("eval: image %ld of %s has label %d; the model has classes 0..%d", i, o->data, lab[i],
                          ncls - 1);
            goto done;
        }
    }
    fprintf(stderr, "bound on -log p(x%s) of %ld images of %s over T = %d steps (%ld network evaluations)\n",
            conditional ? " | class" : "", n, o->data, m->cfg.T, n * (long)m->cfg.T);
    dfs_rng rng;
    dfs_rng_seed(&rng, o->seed);
    double t0 = cli_now(), sum = 0;
    cli_progress bar;
    cli_progress_start(&bar, "images", n, 0, 10);
    for (long i = 0; i < n; i += o->batch) {
        int nb = (int)(n - i < o->batch ? n - i : o->batch);
        s = dfs_model_nll_bpd(m, ncls > 0 ? lab + i : NULL, x + (size_t)i * dim, nb, o->so.raw, &rng, bpd + i);
        if (s != DFS_OK) break;
        for (int k = 0; k < nb; k++) sum += bpd[i + k];
        cli_progress_update(&bar, i + nb, CLI_ETA_AUTO, "mean %.4f bits/dim", sum / (i + nb));
    }
    cli_progress_end(&bar);
    if (s != DFS_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    double mean = sum / n, var = 0;
    for (long i = 0; i < n; i++) var += (bpd[i] - mean) * (bpd[i] - mean);
    r->have_nll = 1;
    r->nll = mean;
    r->nll_se = n > 1 ? sqrt(var / (n - 1) / n) : NAN;
    r->nll_n = n;
    printf("nll bound: %.4f +- %.4f bits/dim (mean +- standard error over %ld images, %s weights)\n", mean,
           r->nll_se, n, o->so.raw ? "raw" : "EMA");
    fprintf(stderr, "done in %.1f s\n", cli_now() - t0);
done:
    free(x);
    free(bpd);
    free(lab);
    dfs_dataset_free(&d);
    return rc;
}

/* ---- samples: from a .npy or drawn from the model ------------------------------------------ */

typedef struct {
    float *x;    /* (n, c, h, w) in [-1, 1] */
    int *labels; /* (n) or NULL */
    long n;
    int c, h, w;
} sample_set;

static void sample_set_free(sample_set *ss) {
    free(ss->x);
    free(ss->labels);
    memset(ss, 0, sizeof *ss);
}

/* uint8 (n, h, w, c) from diffuse sample, and FILE.labels.npy when it exists */
static int load_one(const char *path, int want_labels, sample_set *ss) {
    uint8_t *px = NULL;
    int nd = 0;
    size_t shp[DFS_MAXDIM];
    dfs_status s = dfs_npy_read_u8(path, &px, &nd, shp);
    if (s != DFS_OK) return cli_fail_status(s);
    if (nd != 4 || (shp[3] != 1 && shp[3] != 3) || shp[0] < 1 || shp[1] < 1 || shp[2] < 1) {
        free(px);
        return cli_fail("eval: %s must be a uint8 array N x H x W x C with C = 1 or 3 (as diffuse sample writes)",
                        path);
    }
    ss->n = (long)shp[0];
    ss->h = (int)shp[1];
    ss->w = (int)shp[2];
    ss->c = (int)shp[3];
    const size_t hw = (size_t)ss->h * ss->w;
    ss->x = malloc((size_t)ss->n * ss->c * hw * sizeof(float));
    if (!ss->x) {
        free(px);
        return cli_fail("out of memory for %ld samples", ss->n);
    }
    for (long i = 0; i < ss->n; i++)
        for (int ch = 0; ch < ss->c; ch++)
            for (size_t p = 0; p < hw; p++)
                ss->x[((size_t)i * ss->c + ch) * hw + p] = px[((size_t)i * hw + p) * ss->c + ch] / 127.5f - 1.0f;
    free(px);
    if (!want_labels) return 0;
    char lp[4096];
    if (!ends_with(path, ".npy") || strlen(path) + 8 >= sizeof lp)
        return cli_fail("eval: --acc needs labels in FILE.labels.npy beside FILE.npy");
    snprintf(lp, sizeof lp, "%.*s.labels.npy", (int)(strlen(path) - 4), path);
    int32_t *l = NULL;
    s = dfs_npy_read_i32(lp, &l, &nd, shp);
    if (s != DFS_OK) return cli_fail("eval: --acc needs the sample labels: %s", dfs_last_error());
    if (nd != 1 || (long)shp[0] != ss->n) {
        free(l);
        return cli_fail("eval: %s has %zu labels for %ld samples", lp, nd == 1 ? shp[0] : 0, ss->n);
    }
    ss->labels = malloc((size_t)ss->n * sizeof(int));
    if (!ss->labels) {
        free(l);
        return cli_fail("out of memory");
    }
    for (long i = 0; i < ss->n; i++) ss->labels[i] = l[i];
    free(l);
    return 0;
}

/* the files of --samples one after another; all must hold images of one shape, and labels for --acc */
static int load_samples(const eval_opts *o, sample_set *ss) {
    int rc = load_one(o->files[0], o->acc, ss);
    for (int f = 1; !rc && f < o->nfiles; f++) {
        sample_set b;
        memset(&b, 0, sizeof b);
        if ((rc = load_one(o->files[f], o->acc, &b))) {
            sample_set_free(&b); /* the pixels of a file whose labels failed */
            break;
        }
        if (b.c != ss->c || b.h != ss->h || b.w != ss->w) {
            rc = cli_fail("eval: %s holds %dx%dx%d images but %s holds %dx%dx%d", o->files[f], b.c, b.h, b.w, o->files[0],
                     ss->c, ss->h, ss->w);
            sample_set_free(&b);
            break;
        }
        const size_t dim = (size_t)ss->c * ss->h * ss->w;
        float *x = realloc(ss->x, (size_t)(ss->n + b.n) * dim * sizeof(float));
        if (x) ss->x = x;
        int *l = b.labels ? realloc(ss->labels, (size_t)(ss->n + b.n) * sizeof(int)) : ss->labels;
        if (l) ss->labels = l;
        if (!x || (b.labels && !l)) {
            sample_set_free(&b);
            return cli_fail("out of memory for %ld samples", ss->n + b.n);
        }
        memcpy(ss->x + (size_t)ss->n * dim, b.x, (size_t)b.n * dim * sizeof(float));
        if (b.labels) memcpy(ss->labels + ss->n, b.labels, (size_t)b.n * sizeof(int));
        ss->n += b.n;
        sample_set_free(&b);
    }
    return rc;
}

static int draw_samples(const eval_opts *o, dfs_model *m, sample_set *ss, double *seconds) {
    const dfs_unet_config *u = &m->cfg.unet;
    const int ncls = u->num_classes;
    ss->n = o->n > 0 ? o->n : 2000;
    ss->c = u->in_channels;
    ss->h = ss->w = u->image_size;
    const size_t dim = (size_t)ss->c * ss->h * ss->w;
    ss->x = malloc((size_t)ss->n * dim * sizeof(float));
    ss->labels = ncls > 0 ? malloc((size_t)ss->n * sizeof(int)) : NULL;
    if (!ss->x || (ncls > 0 && !ss->labels)) return cli_fail("out of memory for %ld samples", ss->n);
    for (long i = 0; ncls > 0 && i < ss->n; i++) ss->labels[i] = (int)(i % ncls);
    dfs_sample_request rq;
    cli_sampling_request(&o->so, &rq, ss->labels, (int)ss->n);
    dfs_rng rng;
    dfs_rng_seed(&rng, o->seed);
    fprintf(stderr, "sampling %ld images with %s in %d steps, guidance %g\n", ss->n, dfs_sampler_names[o->so.sampler],
            rq.sampler.steps, o->so.guidance);
    cli_sample_progress bar;
    cli_sample_progress_attach(&bar, &rq);
    double t0 = cli_now();
    dfs_status s = dfs_model_sample(m, &rq, &rng, ss->x);
    cli_sample_progress_end(&bar);
    if (s != DFS_OK) return cli_fail_status(s);
    *seconds = cli_now() - t0;
    /* quantise to 8 bits as diffuse sample's .npy does, so both paths measure the same images */
    for (size_t i = 0; i < (size_t)ss->n * dim; i++) {
        float v = ss->x[i] < -1 ? -1 : ss->x[i] > 1 ? 1 : ss->x[i];
        ss->x[i] = roundf((v + 1) * 127.5f) / 127.5f - 1.0f;
    }
    if (o->save) {
        uint8_t *px = malloc((size_t)ss->n * dim);
        if (!px) return cli_fail("out of memory");
        const size_t hw = (size_t)ss->h * ss->w;
        for (long i = 0; i < ss->n; i++)
            for (int ch = 0; ch < ss->c; ch++)
                for (size_t q = 0; q < hw; q++)
                    px[((size_t)i * hw + q) * ss->c + ch] =
                        (uint8_t)lroundf((ss->x[((size_t)i * ss->c + ch) * hw + q] + 1) * 127.5f);
        size_t shp[4] = {(size_t)ss->n, (size_t)ss->h, (size_t)ss->w, (size_t)ss->c};
        s = cli_write_npy_pair(o->save, px, shp, ss->labels); /* as diffuse sample writes them */
        free(px);
        if (s != DFS_OK) return cli_fail_status(s);
    }
    return 0;
}

/* ---- classifier features -------------------------------------------------------------------- */

/* Features (n, F) and, when pred != NULL, the arg-max class of n images (n, c, h, w) in [-1, 1]. */
static int featurize(dfs_classifier *clf, const float *x, long n, float **feat, int **pred) {
    const int F = clf->cfg.feature_dim, K = clf->cfg.num_classes;
    float *logits = pred ? malloc((size_t)n * K * sizeof(float)) : NULL;
    *feat = malloc((size_t)n * F * sizeof(float));
    if (pred) *pred = malloc((size_t)n * sizeof(int));
    if (!*feat || (pred && (!*pred || !logits))) {
        free(logits);
        return cli_fail("out of memory for %ld feature vectors", n);
    }
    dfs_status s = dfs_classifier_forward(clf, x, (int)n, logits, *feat);
    if (s != DFS_OK) {
        free(logits);
        return cli_fail_status(s);
    }
    for (long i = 0; pred && i < n; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (logits[(size_t)i * K + k] > logits[(size_t)i * K + best]) best = k;
        (*pred)[i] = best;
    }
    free(logits);
    return 0;
}

/* Images of a data set as floats in [-1, 1]: all of them, or n drawn without replacement
 * (a partial Fisher-Yates shuffle from rng) when n > 0. */
static float *dataset_floats(const dfs_dataset *d, long n, dfs_rng *rng, long *count) {
    const size_t dim = (size_t)d->c * d->h * d->w;
    long k = n > 0 && n < d->n ? n : d->n;
    int *idx = malloc((size_t)d->n * sizeof(int));
    float *x = malloc((size_t)k * dim * sizeof(float));
    if (!idx || !x) {
        free(idx);
        free(x);
        return NULL;
    }
    for (int i = 0; i < d->n; i++) idx[i] = i;
    if (k < d->n)
        for (long i = 0; i < k; i++) {
            long j = i + (long)(dfs_rng_uniform(rng) * (d->n - i));
            if (j >= d->n) j = d->n - 1;
            int t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
    for (long i = 0; i < k; i++)
        for (size_t q = 0; q < dim; q++) x[(size_t)i * dim + q] = d->pixels[(size_t)idx[i] * dim + q] / 127.5f - 1.0f;
    free(idx);
    *count = k;
    return x;
}

static int eval_quality(const eval_opts *o, dfs_model *m, eval_results *r) {
    int rc = 0;
    dfs_classifier *clf = NULL;
    sample_set ss;
    memset(&ss, 0, sizeof ss);
    dfs_dataset ref, fl;
    memset(&ref, 0, sizeof ref);
    memset(&fl, 0, sizeof fl);
    float *fs = NULL, *fr = NULL, *ff = NULL, *xr = NULL, *xf = NULL;
    int *ps = NULL;
    dfs_gauss_stats gs, gr, gf;
    memset(&gs, 0, sizeof gs);
    memset(&gr, 0, sizeof gr);
    memset(&gf, 0, sizeof gf);

    dfs_status s = dfs_classifier_load(o->clf_path, &clf, NULL);
    if (s != DFS_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    if (o->nfiles) {
        if ((rc = load_samples(o, &ss))) goto done;
        if (o->n > 0 && o->n < ss.n) ss.n = o->n; /* the first N */
    } else {
        /* --precision covers drawing the samples; the metric (classifier features) and --nll
         * stay float32, so that two precisions are measured by the same yardstick */
        if (o->so.bf16) dfs_set_bf16(1);
        rc = draw_samples(o, m, &ss, &r->sample_seconds);
        dfs_set_bf16(0);
        if (rc) goto done;
    }
    const int cc = clf->cfg.in_channels, ch = clf->cfg.image_size, cw = clf->cfg.image_size;
    if (ss.c != cc || ss.h != ch || ss.w != cw) {
        rc = cli_fail("eval: the samples are %dx%dx%d but the classifier takes %dx%dx%d", ss.c, ss.h, ss.w, cc, ch, cw);
        goto done;
    }
    double t0 = cli_now();
    if ((rc = featurize(clf, ss.x, ss.n, &fs, &ps))) goto done;
    const int F = clf->cfg.feature_dim;
    if (o->acc) {
        const int ncls = clf->cfg.num_classes;
        if (!ss.labels) {
            rc = cli_fail("eval: --acc needs class labels: the samples have none (unconditional model?)");
            goto done;
        }
        if (ncls > EVAL_MAX_CLASSES) {
            rc = cli_fail("eval: --acc supports at most %d classes", EVAL_MAX_CLASSES);
            goto done;
        }
        long right = 0, right_k[EVAL_MAX_CLASSES] = {0};
        r->ncls = ncls;
        for (long i = 0; i < ss.n; i++) {
            int y = ss.labels[i];
            if (y < 0 || y >= ncls) {
                rc = cli_fail("eval: sample %ld has label %d, outside the classifier's 0..%d", i, y, ncls - 1);
                goto done;
            }
            r->class_n[y]++;
            if (ps[i] == y) right++, right_k[y]++;
        }
        r->have_acc = 1;
        r->acc = (double)right / ss.n;
        for (int k = 0; k < ncls; k++) r->class_acc[k] = r->class_n[k] ? (double)right_k[k] / r->class_n[k] : NAN;
    }
    if (o->fd) {
        if (ss.n < 2) {
            rc = cli_fail("eval: --fd needs at least 2 samples");
            goto done;
        }
        if ((s = cli_load_data(&ref, o->ref, NULL, ss.h, ss.c, 0)) != DFS_OK ||
            (s = cli_load_data(&fl, o->floor_data, NULL, ss.h, ss.c, 0)) != DFS_OK) {
            rc = cli_fail_status(s);
            goto done;
        }
        if (ref.c != ss.c || ref.h != ss.h || ref.w != ss.w || fl.c != ss.c || fl.h != ss.h || fl.w != ss.w) {
            rc = cli_fail("eval: --ref and --floor-data must hold %dx%dx%d images like the samples", ss.c, ss.h, ss.w);
            goto done;
        }
        if (fl.n < ss.n) {
            rc = cli_fail("eval: --floor-data %s has %d images, fewer than the %ld samples", o->floor_data, fl.n,
                          ss.n);
            goto done;
        }
        dfs_rng rng;
        dfs_rng_seed(&rng, o->seed ^ 0x9e3779b97f4a7c15ull);
        long nr = 0, nf = 0;
        xr = dataset_floats(&ref, 0, &rng, &nr);
        xf = dataset_floats(&fl, ss.n, &rng, &nf);
        if (!xr || !xf) {
            rc = cli_fail("out of memory for the reference images");
            goto done;
        }
        if ((rc = featurize(clf, xr, nr, &fr, NULL)) || (rc = featurize(clf, xf, nf, &ff, NULL))) goto done;
        if ((s = dfs_gauss_stats_compute(fs, ss.n, F, &gs)) != DFS_OK ||
            (s = dfs_gauss_stats_compute(fr, nr, F, &gr)) != DFS_OK ||
            (s = dfs_gauss_stats_compute(ff, nf, F, &gf)) != DFS_OK ||
            (s = dfs_frechet_distance(&gs, &gr, &r->fd)) != DFS_OK ||
            (s = dfs_frechet_distance(&gf, &gr, &r->floor)) != DFS_OK) {
            rc = cli_fail_status(s);
            goto done;
        }
        r->have_fd = 1;
        r->fd_n = ss.n;
        r->ref_n = nr;
    }
    char what[4200];
    if (o->nfiles > 1) snprintf(what, sizeof what, "samples of %s and %d more files", o->files[0], o->nfiles - 1);
    else snprintf(what, sizeof what, "%s", o->nfiles ? o->files[0] : "samples");
    if (r->have_fd)
        printf("fd: %.4f | floor %.4f (%ld real images of %s) | ratio %.2fx | %ld %s vs %ld images of %s\n", r->fd,
               r->floor, ss.n, o->floor_data, r->floor > 0 ? r->fd / r->floor : 0.0, ss.n, what, r->ref_n, o->ref);
    if (r->have_acc) {
        printf("class accuracy: %.2f%% of %ld | per class:", 100 * r->acc, ss.n);
        for (int k = 0; k < r->ncls; k++) printf(" %d:%.1f", k, 100 * r->class_acc[k]);
        printf("\n");
    }
    fprintf(stderr, "features and statistics in %.1f s\n", cli_now() - t0);
done:
    dfs_gauss_stats_free(&gs);
    dfs_gauss_stats_free(&gr);
    dfs_gauss_stats_free(&gf);
    free(fs);
    free(fr);
    free(ff);
    free(xr);
    free(xf);
    free(ps);
    dfs_dataset_free(&ref);
    dfs_dataset_free(&fl);
    sample_set_free(&ss);
    dfs_classifier_free(clf);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    eval_opts o = {.data = "fashion-mnist-test", .ref = "fashion-mnist-test", .floor_data = "fashion-mnist",
                   .clf_path = "models/classifier.safetensors", .batch = 64, .threads = 2};
    cli_sampling_init(&o.so, DFS_SAMPLER_DDIM, 20);
    enum { O_NLL = 256, O_FD, O_ACC, O_MODEL, O_SAMPLES, O_SAVE, O_CLF, O_REF, O_FLOOR, O_DATA, O_LABELS, O_N,
           O_BATCH, O_SEED, O_THREADS, O_JSON };
    static const struct option opts[] = {
        {"nll", no_argument, 0, O_NLL}, {"fd", no_argument, 0, O_FD}, {"acc", no_argument, 0, O_ACC},
        {"model", required_argument, 0, O_MODEL}, {"samples", required_argument, 0, O_SAMPLES},
        {"save-samples", required_argument, 0, O_SAVE}, {"classifier", required_argument, 0, O_CLF},
        {"ref", required_argument, 0, O_REF}, {"floor-data", required_argument, 0, O_FLOOR},
        {"data", required_argument, 0, O_DATA}, {"labels", required_argument, 0, O_LABELS},
        {"n", required_argument, 0, O_N}, {"batch", required_argument, 0, O_BATCH},
        {"seed", required_argument, 0, O_SEED}, {"threads", required_argument, 0, O_THREADS},
        {"json", required_argument, 0, O_JSON}, CLI_SAMPLING_LONGOPTS,
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int taken = cli_sampling_option(&o.so, c, optarg);
        if (taken >= 0) {
            if (taken) return taken;
            continue;
        }
        switch (c) {
        case 'h':
            fputs(eval_help, stdout);
            cli_sampling_help(stdout, &o.so);
            return 0;
        case O_NLL: o.nll = 1; break;
        case O_FD: o.fd = 1; break;
        case O_ACC: o.acc = 1; break;
        case O_MODEL: o.model = optarg; break;
        case O_SAMPLES:
            if (o.nfiles == EVAL_MAX_FILES) return cli_fail("eval: at most %d --samples files", EVAL_MAX_FILES);
            if (!ends_with(optarg, ".npy")) return cli_fail("eval: --samples must be a .npy file, not '%s'", optarg);
            o.files[o.nfiles++] = optarg;
            break;
        case O_SAVE: o.save = optarg; break;
        case O_CLF: o.clf_path = optarg; break;
        case O_REF: o.ref = optarg; break;
        case O_FLOOR: o.floor_data = optarg; break;
        case O_DATA: o.data = optarg; break;
        case O_LABELS: o.labels_path = optarg; break;
        case O_JSON: o.json = optarg; break;
        case O_N: if (cli_int("--n", optarg, 1, 1000000, &o.n)) return 2; break;
        case O_BATCH: if (cli_int("--batch", optarg, 1, 4096, &o.batch)) return 2; break;
        case O_THREADS: if (cli_int("--threads", optarg, 1, 256, &o.threads)) return 2; break;
        case O_SEED: if (cli_u64("--seed", optarg, &o.seed)) return 2; break;
        default: return cli_bad_option("eval", argv);
        }
    }
    if (optind < argc) return cli_fail("eval: unexpected argument '%s'", argv[optind]);
    dfs_set_bf16(0); /* until the samples are drawn (o.so.bf16 keeps the mode --precision got) */
    if (!o.nll && !o.fd && !o.acc) return cli_fail("eval: say what to measure: --nll, --fd and/or --acc");
    if (o.nll && !o.model) return cli_fail("eval: --nll needs --model CKPT");
    if ((o.fd || o.acc) && !o.model && !o.nfiles)
        return cli_fail("eval: --fd and --acc need --samples FILE.npy or --model CKPT to sample from");
    if (o.save && !ends_with(o.save, ".npy")) return cli_fail("eval: --save-samples must end in .npy");
    if (o.save && o.nfiles) return cli_fail("eval: --save-samples only applies when sampling from --model");
    if (o.nfiles && o.model && !o.nll) // the model would be loaded and never used
        return cli_fail("eval: give --samples or --model, not both (--model beside --samples is for --nll)");
    if (o.json && !ends_with(o.json, ".json")) return cli_fail("eval: --json must end in .json");
    if ((o.json && cli_out_ok("eval", "--json", o.json)) || (o.save && cli_out_ok("eval", "--save-samples", o.save)))
        return 2;
    dfs_set_threads((int)o.threads);

    dfs_model *m = NULL;
    eval_results r;
    memset(&r, 0, sizeof r);
    int rc = 0;
    if (o.model) {
        dfs_status s = dfs_checkpoint_load(o.model, &m, NULL, NULL, NULL);
        if (s != DFS_OK) return cli_fail_status(s);
        m->max_batch = (int)o.batch;
        /* samples are drawn for the model's classes, which guidance acts on; text models draw
         * unconditionally here */
        const int sampling = (o.fd || o.acc) && !o.nfiles, ncls = m->cfg.unet.num_classes;
        if (cli_sampling_resolve(&o.so, "eval", o.model, m, sampling, ncls == 0, ncls > 0)) {
            dfs_model_free(m);
            return 2;
        }
        cli_sampling_say_recipe(&o.so, m);
    }
    if ((o.fd || o.acc) && m && !o.nfiles) { /* the classifier must take the model's images: known before the work */
        dfs_classifier *clf = NULL;
        dfs_status s = dfs_classifier_load(o.clf_path, &clf, NULL);
        const dfs_unet_config *u = &m->cfg.unet;
        if (s != DFS_OK) rc = cli_fail_status(s);
        else if (clf->cfg.in_channels != u->in_channels || clf->cfg.image_size != u->image_size)
            rc = cli_fail("eval: the model makes %dx%dx%d images but the classifier %s takes %dx%dx%d", u->in_channels,
                          u->image_size, u->image_size, o.clf_path, clf->cfg.in_channels, clf->cfg.image_size,
                          clf->cfg.image_size);
        dfs_classifier_free(clf);
        if (rc) {
            dfs_model_free(m);
            return rc;
        }
    }
    /* no signal catching: Ctrl-C or SIGTERM stops eval at once (sampling and the bound do not
     * pause to look), and the JSON, written atomically at the end, is then not written */
    if (o.nll) rc = eval_nll(&o, m, &r);
    if (!rc && (o.fd || o.acc)) {
        eval_opts q = o;
        if (o.nll) q.n = 0; /* --n was for the bound; the sample count defaults */
        rc = eval_quality(&q, o.nfiles ? NULL : m, &r);
    }
    if (!rc && o.json) rc = write_json(o.json, &o, &r);
    dfs_model_free(m);
    return rc;
}
