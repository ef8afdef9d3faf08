/* cmd_train.c - diffuse train: the training loop with progress, metrics, sample grids,
 * checkpoints, resume and clean stops on Ctrl-C / SIGTERM. */
#include "common.h"
#include "mpi.h"
#include "progress.h"
#include "sampling.h"
#include "t2i.h"
#include "train_loop.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *train_help =
    "usage: diffuse train --data SRC --out RUNDIR [options]\n"
    "\n"
    "Train a U-Net noise predictor with the simple loss ||eps - eps_theta(x_t, t)||^2\n"
    "(Ho et al. 2020) and AdamW. Writes RUNDIR/last.safetensors (resumable), RUNDIR/metrics.csv\n"
    "and RUNDIR/samples-STEP.png. Ctrl-C or SIGTERM saves a checkpoint and exits with status 0.\n"
    "\n"
    "data:\n"
    "  --data SRC          fashion-mnist (Debian's dataset-fashion-mnist, 60000 images),\n"
    "                      fashion-mnist-test (its 10000 test images),\n"
    "                      a folder of PNGs (class sub-folders give labels; images are resized\n"
    "                      to the model size; at most 4096 x 4096 pixels each; links to\n"
    "                      folders are refused), or an IDX image file (gzip or raw)\n"
    "  --labels FILE       IDX label file to go with an IDX image file\n"
    "  --limit N           use only the first N images\n"
    "text-to-image (docs/TEXT_TO_IMAGE.md):\n"
    "  --text              condition on captions: --data is then fashion-captions (Fashion-MNIST\n"
    "                      with captions made from class and measured brightness and size),\n"
    "                      fashion-captions-test, emoji (Noto Color Emoji, 32x32 RGB) or a\n"
    "                      folder of PNGs with metadata.jsonl or NAME.txt captions. Images keep\n"
    "                      their size and channels unless --image-size / --channels say\n"
    "                      otherwise. The tokenizer is built from the training captions and\n"
    "                      saved in the checkpoint; every caption is dropped for the empty one\n"
    "                      with probability --cond-drop (classifier-free guidance). No classes.\n"
    "  --text-dim N        width of the text encoder (default 64)\n"
    "  --text-layers N     transformer layers (default 2)\n"
    "  --text-heads N      attention heads, dividing --text-dim (default 4)\n"
    "  --text-len N        tokens per caption with <bos> and <eos>; longer captions are cut\n"
    "                      (default 16)\n"
    "  --min-count N       words seen fewer times in the captions become <unk> (default 1)\n"
    "model (ignored with --resume, which reads them from the checkpoint):\n"
    "  --preset NAME       fmnist (the reference U-Net, default) or small\n"
    "  --unconditional     no class embedding\n"
    "  --channels N        image channels, 1 or 3 (default: the preset's, 1); PNG folders\n"
    "                      are converted to it\n"
    "  --image-size N      image height = width (default: the preset's, 28); PNG folders are\n"
    "                      resized to it\n"
    "  --base-channels N   channels of the first level (fmnist: 32)\n"
    "  --mult LIST         channel multipliers per level, e.g. 1,2,2 (fmnist)\n"
    "  --blocks N          residual blocks per encoder level; the decoder has N+1 (fmnist: 2)\n"
    "  --attn LIST         resolutions with self-attention, e.g. 7 or 14,7; 'none' for none\n"
    "  --groups N          GroupNorm groups (fmnist: 8)\n"
    "  --classes N         number of classes (fmnist: 10; 0 = unconditional)\n"
    "  --dropout P         dropout in residual blocks (fmnist: 0.1)\n"
    "  --schedule NAME     linear (default), cosine, quad (CSDI's) or poly2 (EDM's)\n"
    "  --T N               diffusion steps (default 1000)\n"
    "  --prediction NAME   eps (default), x0 or v\n"
    "optimisation (--resume keeps the run's --batch, --warmup to --cond-drop and --limit,\n"
    "              and takes a given --lr):\n"
    "  --steps N           train until step N in total (default 10000)\n"
    "  --minutes M         stop after M minutes of this run (whichever comes first)\n"
    "  --batch N           images per step (default 64)\n"
    "  --lr LR             peak learning rate (default 2e-4)\n"
    "  --warmup N          linear warm-up steps (default 500)\n"
    "  --weight-decay W    AdamW decoupled weight decay (default 0)\n"
    "  --clip C            gradient-norm clip, 0 disables (default 1)\n"
    "  --ema DECAY         EMA decay of the weights that model.safetensors holds; 0 keeps none,\n"
    "                      so it holds the last weights (default 0.9999)\n"
    "  --cond-drop P       probability of dropping a label (or caption) for guidance (default 0.1)\n"
    "run:\n"
    "  --out RUNDIR        output folder (created if missing); a new run refuses one that\n"
    "                      already holds a run (last.safetensors, or metrics.csv with rows)\n"
    "  --resume CKPT       continue a run from a checkpoint written by diffuse train\n"
    "  --init CKPT         start a new run from the (EMA) weights of CKPT wherever a tensor has\n"
    "                      the same name and shape; the rest starts fresh (fine-tuning, or a\n"
    "                      --text model from a class-conditional one of the same preset)\n"
    "  --seed S            random seed (default 0)\n"
    "  --threads N         threads (default 2)\n"
    "  --precision NAME    fp32 (default) or bf16: the stride-1 convolutions, forward and\n"
    "                      backward, take bfloat16 inputs and sum in float32 (AVX512_BF16);\n"
    "                      weights, AdamW, norms, attention and the loss stay float32.\n"
    "                      Without AVX512_BF16 it says so and trains in float32;\n"
    "                      DFS_BF16=emulate then gives bf16's results, more slowly\n"
    "  --conv NAME         the 3x3 convolutions of the forward pass and of the backward's\n"
    "                      input and weight gradients: direct (the default), winograd\n"
    "                      (Winograd F(4x4,3x3) with AVX-512, else F(2x2,3x3), which serves\n"
    "                      the backward at even sizes only) or auto (each shape's\n"
    "                      first call times both and keeps the faster: faster, but two runs\n"
    "                      may round differently). float32 on the FAST kernels only (the\n"
    "                      BLAS ones train direct); the environment's DFS_CONV sets the default\n"
    "  --sample-every N    write a sample grid every N steps (default 1000, 0 = never); for a\n"
    "                      text model its columns are captions of the data (listed in\n"
    "                      RUNDIR/samples-captions.txt), drawn with guidance 3\n"
    "  --sample-steps N    DDIM steps of those grids (default 50, at most T)\n"
    "  --save-every N      write RUNDIR/last.safetensors every N steps (default 500)\n"
    "  --log-every N       write a metrics.csv line every N steps (default 10)\n"
    "several processes (docs/DISTRIBUTED.md):\n"
    "  mpirun -np N diffuse train ... (or srun) trains data-parallel: every rank reads the\n"
    "  data (and --resume's checkpoint), takes its share of every batch of --batch images and\n"
    "  runs --threads threads; rank 0 alone writes RUNDIR. N ranks of 1 thread give what one\n"
    "  process of --threads N gives, bit for bit. A failed rank stops them all.\n";

typedef struct {
    const char *data, *labels, *out, *resume, *preset, *init, *precision;
    long limit, steps, batch, warmup, sample_every, sample_steps, save_every, log_every, threads, T, channels;
    double minutes, lr, wd, clip, ema, cond_drop, dropout;
    uint64_t seed;
    int unconditional, schedule, prediction;
    int set_dropout;
    long image_size, base_channels, blocks, groups, classes;
    const char *mult, *attn;
    int set_channels;
    int text;
    long text_dim, text_layers, text_heads, text_len, min_count;
    char init_note[512]; /* "CKPT (L of N tensors)": the warm start, kept in the record across resumes */
} train_args;

/* Parse "a,b,c" into up to DFS_MAX_LEVELS positive integers. Returns the count, or -1. */
static int parse_list(const char *s, int *out) {
    int n = 0;
    for (const char *p = s; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || (*end && *end != ',') || n == DFS_MAX_LEVELS) return -1;
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return n;
}

/* Apply the architecture options to the preset's configuration. */
static int apply_arch(const train_args *a, dfs_unet_config *c) {
    if (a->image_size) c->image_size = (int)a->image_size;
    if (a->set_channels) c->in_channels = (int)a->channels;
    if (a->base_channels) c->base_channels = (int)a->base_channels;
    if (a->groups) c->groups = (int)a->groups;
    if (a->blocks) c->enc_blocks = (int)a->blocks, c->dec_blocks = (int)a->blocks + 1;
    if (a->classes >= 0) c->num_classes = (int)a->classes;
    if (a->unconditional) c->num_classes = 0;
    if (a->set_dropout) c->dropout = (float)a->dropout;
    if (a->mult) {
        int m[DFS_MAX_LEVELS], n = parse_list(a->mult, m);
        if (n < 1) return cli_fail("--mult expects 1 to %d comma-separated multipliers, got '%s'", DFS_MAX_LEVELS, a->mult);
        int keep[DFS_MAX_LEVELS] = {0};
        for (int l = 0; l < n; l++) keep[l] = l < c->nlevels ? c->attn[l] : 0;
        c->nlevels = n;
        for (int l = 0; l < DFS_MAX_LEVELS; l++) c->mult[l] = l < n ? m[l] : 0, c->attn[l] = keep[l];
    }
    if (a->attn) {
        int r[DFS_MAX_LEVELS], n = strcmp(a->attn, "none") == 0 ? 0 : parse_list(a->attn, r);
        if (n < 0) return cli_fail("--attn expects comma-separated resolutions or 'none', got '%s'", a->attn);
        for (int l = 0; l < DFS_MAX_LEVELS; l++) c->attn[l] = 0;
        for (int i = 0; i < n; i++) {
            int found = 0;
            for (int l = 0; l < c->nlevels; l++)
                if ((c->image_size >> l) == r[i]) c->attn[l] = 1, found = 1;
            if (!found) return cli_fail("--attn: no level has resolution %d (image size %d, %d levels)", r[i], c->image_size, c->nlevels);
        }
    }
    return 0;
}

static char *train_json(const train_args *a, const dfs_train_config *tc, const dfs_dataset *d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "data", a->data);
    if (d->class_names && d->num_classes > 0) { /* for labelled sample grids */
        cJSON *names = cJSON_AddArrayToObject(o, "class_names");
        for (int k = 0; names && k < d->num_classes; k++)
            cJSON_AddItemToArray(names, cJSON_CreateString(d->class_names[k] ? d->class_names[k] : ""));
    }
    if (a->labels) cJSON_AddStringToObject(o, "labels", a->labels);
    cJSON_AddNumberToObject(o, "limit", (double)a->limit);
    cJSON_AddNumberToObject(o, "batch", tc->batch);
    cJSON_AddNumberToObject(o, "lr", tc->opt.lr);
    cJSON_AddNumberToObject(o, "warmup", tc->opt.warmup);
    cJSON_AddNumberToObject(o, "weight_decay", tc->opt.weight_decay);
    cJSON_AddNumberToObject(o, "clip", tc->opt.clip);
    cJSON_AddNumberToObject(o, "ema", tc->opt.ema_decay);
    cJSON_AddNumberToObject(o, "cond_drop", tc->cond_drop);
    if (a->init_note[0]) cJSON_AddStringToObject(o, "init", a->init_note);
    if (a->text) {
        cJSON_AddTrueToObject(o, "text");
        cJSON_AddNumberToObject(o, "min_count", (double)a->min_count);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Restore the optimisation settings of a resumed run, so that it continues exactly. */
static int restore_train(const char *json, train_args *a, dfs_train_config *tc, char **data_owned,
                         char **labels_owned) {
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!o) return cli_fail("the checkpoint has no training settings to resume from");
    const cJSON *v;
    int bad = 0;
    /* each setting within the bounds of its option, checked before it is converted */
#define NUM(key, dst, lo, hi, whole)                                                           \
    if (!bad) {                                                                               \
        double d_ = (dst);                                                                    \
        if (!(bad = cli_record_number(o, key, lo, hi, whole, &d_))) dst = d_;                 \
    }
    NUM("batch", tc->batch, 1, 4096, 1);
    NUM("lr", tc->opt.lr, 1e-9, 0.99, 0);
    NUM("warmup", tc->opt.warmup, 0, 100000000, 1);
    NUM("weight_decay", tc->opt.weight_decay, 0, 10, 0);
    NUM("clip", tc->opt.clip, 0, 1e9, 0);
    NUM("ema", tc->opt.ema_decay, 0, 0.999999, 0);
    NUM("cond_drop", tc->cond_drop, 0, 1, 0);
    NUM("limit", a->limit, 0, 100000000, 1);
#undef NUM
    if (bad) {
        cJSON_Delete(o);
        return bad;
    }
    if (!a->data && cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "data")))
        a->data = *data_owned = strdup(v->valuestring);
    if (!a->labels && cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "labels")))
        a->labels = *labels_owned = strdup(v->valuestring);
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "init")))
        snprintf(a->init_note, sizeof a->init_note, "%s", v->valuestring);
    cJSON_Delete(o);
    return 0;
}

/* Drop the rows of metrics.csv past step: those of steps the checkpoint does not hold (a run
 * killed, or whose last save failed, after logging them), which the resumed run logs again;
 * and a last line without its newline, the half of a row whose write failed (a full disk),
 * which the next row would otherwise be glued to. Rewritten atomically, and only when there
 * is something to drop. 0, or 2 after a message. */
static int trim_metrics(const char *csv, long step) {
    FILE *f;
    if (dfs_open_read(csv, &f)) return 0; /* none yet: the run starts one */
    char *buf = NULL, *line = NULL;
    size_t len = 0, cap = 0, lcap = 0;
    ssize_t n;
    int drop = 0, first = 1, ok = 1;
    while (ok && (n = getline(&line, &lcap, f)) > 0) {
        char *end;
        long s = strtol(line, &end, 10);
        if (line[n - 1] != '\n' || /* a half-written last line */
            (!first && end != line && *end == ',' && s > step)) { /* past the checkpoint */
            drop = 1;
            continue;
        }
        first = 0;
        if (len + (size_t)n + 1 > cap) {
            char *b2 = realloc(buf, cap = 2 * (len + (size_t)n + 1));
            if (!b2) ok = 0;
            else buf = b2;
        }
        if (ok) memcpy(buf + len, line, (size_t)n), len += (size_t)n;
    }
    int err = ferror(f);
    fclose(f);
    free(line);
    int rc = 0;
    if (!ok || err)
        rc = cli_fail("cannot read %s to resume it", csv);
    else if (drop && dfs_write_atomic(csv, buf, len) != DFS_OK)
        rc = cli_fail_status(DFS_ERR_IO);
    free(buf);
    return rc;
}

static const char metrics_header[] = "step,loss,lr,images_seen,img_per_s,elapsed_s\n";

/* Never overwrite another run (checked before anything is loaded): a new run needs an --out
 * without one (a metrics.csv of only its header, from a run that failed at once, does not
 * count), and a resumed run writes only over the checkpoint it resumes. 0, or 2 after a
 * message. */
static int out_holds_other_run(const train_args *a, const char *ckpt, const char *csv) {
    struct stat sb, rb;
    int has_ckpt = stat(ckpt, &sb) == 0,
        has_rows = stat(csv, &rb) == 0 && (size_t)rb.st_size > sizeof metrics_header - 1;
    if (!a->resume && (has_ckpt || has_rows))
        return cli_fail("train: %s already holds a run (%s); continue it with --resume %s, or choose a new --out",
                        a->out, has_ckpt ? "last.safetensors" : "metrics.csv", ckpt);
    struct stat qb;
    if (a->resume && ((has_ckpt && (stat(a->resume, &qb) != 0 || qb.st_dev != sb.st_dev || qb.st_ino != sb.st_ino)) ||
                      (!has_ckpt && has_rows)))
        return cli_fail("train: %s already holds another run; resume %s into its own folder or a new --out", a->out,
                        a->resume);
    if (stat(csv, &rb) == 0 && S_ISFIFO(rb.st_mode)) /* opening it would wait for a reader */
        return cli_fail("train: %s is a FIFO", csv);
    return 0;
}

/* A grid of EMA samples drawn by DDIM in `steps` steps: for a class model one row per class
 * pair, 2 per class; for a text model (ncap > 0) one column per caption row caps[], 2 per
 * caption, with guidance 3. */
static int write_samples(dfs_model *m, const char *path, uint64_t seed, const int *caps, int ncap, int steps) {
    const dfs_unet_config *u = &m->cfg.unet;
    int ncls = ncap > 0 ? ncap : u->num_classes, n = ncls > 0 ? (ncls <= 10 ? 2 * ncls : 20) : 16;
    int cols = ncls > 0 && ncls <= 10 ? ncls : 8;
    size_t dim = (size_t)u->in_channels * u->image_size * u->image_size;
    float *x = malloc((size_t)n * dim * sizeof(float));
    int *labels = malloc((size_t)n * sizeof(int));
    if (!x || !labels) {
        free(x), free(labels);
        return cli_fail("out of memory for samples");
    }
    for (int i = 0; i < n; i++) labels[i] = ncls > 0 ? (ncap > 0 ? caps[i % ncap] : i % ncls) : 0;
    dfs_sample_request rq; /* the EMA weights (raw = 0), the model's null class or empty caption */
    dfs_sample_request_default(&rq);
    rq.sampler.kind = DFS_SAMPLER_DDIM;
    rq.sampler.steps = steps < m->cfg.T ? steps : m->cfg.T;
    rq.sampler.guidance = ncap > 0 ? 3.0f : 1.0f;
    rq.labels = ncls > 0 ? labels : NULL;
    rq.n = n;
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    dfs_status s = dfs_model_sample(m, &rq, &rng, x);
    if (s == DFS_OK) s = dfs_png_write_grid(path, x, n, u->in_channels, u->image_size, u->image_size, cols);
    free(x);
    free(labels);
    return s == DFS_OK ? 0 : cli_fail_status(s);
}

/* getopt_long values; the resumed run's note on overruled options names some of them */
enum { O_IMG = 300, O_BASE, O_MULT, O_BLOCKS, O_ATTN, O_GROUPS, O_CLASSES };
enum { O_TEXT = 400, O_TDIM, O_TLAYERS, O_THEADS, O_TLEN, O_MINCOUNT };
enum { O_LABELS = 256, O_LIMIT, O_UNCOND, O_CHANNELS, O_DROPOUT, O_SCHEDULE, O_T, O_PRED,
       O_STEPS, O_MINUTES, O_BATCH, O_LR, O_WARMUP, O_WD, O_CLIP, O_EMA, O_CDROP, O_RESUME, O_INIT,
       O_SEED, O_THREADS, O_SEVERY, O_SSTEPS, O_SAVE, O_LOG, O_PRESET, O_DATA, O_OUT, O_PRECISION,
       O_CONV };

/* One training run: the options, and what cmd_train sets up, owns and frees (run_free). */
typedef struct {
    train_args a;
    unsigned char given[512];   /* the options on the command line, by getopt value */
    char ckpt[4096], csv[4096], tmp[4096]; /* the run's files */
    dfs_train_config tc;
    dfs_model *m;
    dfs_train_state st;
    int text;                   /* a text-to-image run */
    dfs_caption_set cs;         /* text runs: the images and their captions */
    dfs_dataset data;           /* other runs: the images */
    const dfs_dataset *dp;      /* the one trained on */
    dfs_trainer *tr;
    int caps[10], ncap;         /* text runs: the caption rows of the sample grids */
    FILE *mf;                   /* metrics.csv */
    char *tj;                   /* the training record, saved in every checkpoint */
    char *data_owned, *labels_owned; /* --data and --labels read from a resumed record */
    double wall0;               /* the training time before this run (a resumed one's) */
    int interrupted;            /* stopped by a signal (on any rank) */
} train_run;

static void run_free(train_run *r) {
    if (r->mf) fclose(r->mf);
    cJSON_free(r->tj);
    dfs_trainer_free(r->tr);
    dfs_dataset_free(&r->data);
    dfs_caption_set_free(&r->cs);
    dfs_model_free(r->m);
    free(r->data_owned);
    free(r->labels_owned);
}

/* The command line into r->a and r->given, then the checks that need nothing loaded. -1 to go
 * on, else the exit status: 0 after --help, 2 after a message. */
static int parse_args(train_run *r, int argc, char **argv) {
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA}, {"labels", required_argument, 0, O_LABELS},
        {"limit", required_argument, 0, O_LIMIT}, {"preset", required_argument, 0, O_PRESET},
        {"unconditional", no_argument, 0, O_UNCOND}, {"channels", required_argument, 0, O_CHANNELS},
        {"dropout", required_argument, 0, O_DROPOUT}, {"schedule", required_argument, 0, O_SCHEDULE},
        {"T", required_argument, 0, O_T}, {"prediction", required_argument, 0, O_PRED},
        {"steps", required_argument, 0, O_STEPS}, {"minutes", required_argument, 0, O_MINUTES},
        {"batch", required_argument, 0, O_BATCH}, {"lr", required_argument, 0, O_LR},
        {"warmup", required_argument, 0, O_WARMUP}, {"weight-decay", required_argument, 0, O_WD},
        {"clip", required_argument, 0, O_CLIP}, {"ema", required_argument, 0, O_EMA},
        {"cond-drop", required_argument, 0, O_CDROP}, {"out", required_argument, 0, O_OUT},
        {"resume", required_argument, 0, O_RESUME}, {"init", required_argument, 0, O_INIT}, {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS}, {"sample-every", required_argument, 0, O_SEVERY},
        {"precision", required_argument, 0, O_PRECISION},
        {"conv", required_argument, 0, O_CONV},
        {"sample-steps", required_argument, 0, O_SSTEPS},
        {"save-every", required_argument, 0, O_SAVE}, {"log-every", required_argument, 0, O_LOG},
        {"image-size", required_argument, 0, O_IMG}, {"base-channels", required_argument, 0, O_BASE},
        {"mult", required_argument, 0, O_MULT}, {"blocks", required_argument, 0, O_BLOCKS},
        {"attn", required_argument, 0, O_ATTN}, {"groups", required_argument, 0, O_GROUPS},
        {"classes", required_argument, 0, O_CLASSES},
        {"text", no_argument, 0, O_TEXT}, {"text-dim", required_argument, 0, O_TDIM},
        {"text-layers", required_argument, 0, O_TLAYERS}, {"text-heads", required_argument, 0, O_THEADS},
        {"text-len", required_argument, 0, O_TLEN}, {"min-count", required_argument, 0, O_MINCOUNT},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    train_args *a = &r->a;
    *a = (train_args){.preset = "fmnist", .steps = 10000, .batch = 64, .warmup = 500, .sample_every = 1000,
                      .sample_steps = 50, .save_every = 500, .log_every = 10, .threads = 2, .T = 1000,
                      .channels = 1, .lr = 2e-4,
                      .clip = 1.0, .ema = 0.9999, .cond_drop = 0.1, .schedule = DFS_SCHEDULE_LINEAR,
                      .prediction = DFS_PRED_EPS, .classes = -1, .text_dim = 64, .text_layers = 2,
                      .text_heads = 4, .text_len = 16, .min_count = 1};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o > 0 && o < (int)sizeof r->given) r->given[o] = 1;
        switch (o) {
        case 'h': fputs(train_help, stdout); fputs(cli_mpi_help, stdout); return 0;
        case O_DATA: a->data = optarg; break;
        case O_LABELS: a->labels = optarg; break;
        case O_OUT: a->out = optarg; break;
        case O_RESUME: a->resume = optarg; break;
        case O_INIT: a->init = optarg; break;
        case O_PRESET: a->preset = optarg; break;
        case O_UNCOND: a->unconditional = 1; break;
        case O_LIMIT: if (cli_int("--limit", optarg, 1, 100000000, &a->limit)) return 2; break;
        case O_CHANNELS: if (cli_int("--channels", optarg, 1, 3, &a->channels) || a->channels == 2) return a->channels == 2 ? cli_fail("--channels must be 1 or 3") : 2; a->set_channels = 1; break;
        case O_IMG: if (cli_int("--image-size", optarg, 4, 1024, &a->image_size)) return 2; break;
        case O_BASE: if (cli_int("--base-channels", optarg, 2, 4096, &a->base_channels)) return 2; break;
        case O_BLOCKS: if (cli_int("--blocks", optarg, 1, 7, &a->blocks)) return 2; break;
        case O_GROUPS: if (cli_int("--groups", optarg, 1, 4096, &a->groups)) return 2; break;
        case O_CLASSES: if (cli_int("--classes", optarg, 0, 100000, &a->classes)) return 2; break;
        case O_TEXT: a->text = 1; break;
        case O_TDIM: if (cli_int("--text-dim", optarg, 1, 8192, &a->text_dim)) return 2; break;
        case O_TLAYERS: if (cli_int("--text-layers", optarg, 0, 64, &a->text_layers)) return 2; break;
        case O_THEADS: if (cli_int("--text-heads", optarg, 1, 8192, &a->text_heads)) return 2; break;
        case O_TLEN: if (cli_int("--text-len", optarg, 3, 4096, &a->text_len)) return 2; break;
        case O_MINCOUNT: if (cli_int("--min-count", optarg, 1, 1000000000, &a->min_count)) return 2; break;
        case O_MULT: a->mult = optarg; break;
        case O_ATTN: a->attn = optarg; break;
        case O_DROPOUT: if (cli_float("--dropout", optarg, 0, 0.99, &a->dropout)) return 2; a->set_dropout = 1; break;
        case O_SCHEDULE: if ((a->schedule = dfs_schedule_from_name(optarg)) < 0) return cli_fail("--schedule must be linear, cosine, quad or poly2, not '%s'", optarg); break;
        case O_PRED: if ((a->prediction = dfs_prediction_from_name(optarg)) < 0) return cli_fail("--prediction must be eps, x0 or v, not '%s'", optarg); break;
        case O_T: if (cli_int("--T", optarg, 2, 100000, &a->T)) return 2; break;
        case O_STEPS: if (cli_int("--steps", optarg, 1, 1000000000, &a->steps)) return 2; break;
        case O_MINUTES: if (cli_float("--minutes", optarg, 0.001, 1e7, &a->minutes)) return 2; break;
        case O_BATCH: if (cli_int("--batch", optarg, 1, 4096, &a->batch)) return 2; break;
        case O_LR: if (cli_float("--lr", optarg, 1e-9, 0.99, &a->lr)) return 2; break;
        case O_WARMUP: if (cli_int("--warmup", optarg, 0, 100000000, &a->warmup)) return 2; break;
        case O_WD: if (cli_float("--weight-decay", optarg, 0, 10, &a->wd)) return 2; break;
        case O_CLIP: if (cli_float("--clip", optarg, 0, 1e9, &a->clip)) return 2; break;
        case O_EMA: if (cli_float("--ema", optarg, 0, 0.999999, &a->ema)) return 2; break;
        case O_CDROP: if (cli_float("--cond-drop", optarg, 0, 1, &a->cond_drop)) return 2; break;
        case O_SEED: if (cli_u64("--seed", optarg, &a->seed)) return 2; break;
        case O_THREADS: if (cli_int("--threads", optarg, 1, 256, &a->threads)) return 2; break;
        case O_PRECISION:
            if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16"))
                return cli_fail("--precision must be fp32 or bf16, not '%s'", optarg);
            a->precision = optarg;
            break;
        case O_CONV:
            if (cli_conv_option(optarg)) return 2;
            break;
        case O_SEVERY: if (cli_int("--sample-every", optarg, 0, 1000000000, &a->sample_every)) return 2; break;
        case O_SSTEPS: if (cli_int("--sample-steps", optarg, 1, 100000, &a->sample_steps)) return 2; break;
        case O_SAVE: if (cli_int("--save-every", optarg, 1, 1000000000, &a->save_every)) return 2; break;
        case O_LOG: if (cli_int("--log-every", optarg, 1, 1000000000, &a->log_every)) return 2; break;
        default:
            return cli_bad_option("train", argv);
        }
    }
    if (optind < argc) return cli_fail("train: unexpected argument '%s'", argv[optind]);
    if (!a->out) return cli_fail("train: --out RUNDIR is required");
    if (a->init && a->resume) return cli_fail("train: --init starts a new run and --resume continues one; give one of them");
    if (!a->data && !a->resume) return cli_fail("train: --data is required (fashion-mnist, a PNG folder or an IDX file)");
    if (a->text && (a->classes > 0 || a->labels))
        return cli_fail("train: --text models are conditioned on captions, not classes (drop --%s)", a->labels ? "labels" : "classes");
    if (a->text && a->text_dim % a->text_heads)
        return cli_fail("train: --text-heads %ld must divide --text-dim %ld", a->text_heads, a->text_dim);
    if (!a->text && a->data && dfs_captions_is_builder(a->data))
        return cli_fail("train: %s is captioned data; add --text to train a text-to-image model", a->data);
    snprintf(r->ckpt, sizeof r->ckpt, "%s/last.safetensors", a->out);
    snprintf(r->csv, sizeof r->csv, "%s/metrics.csv", a->out);
    if (cli_mpi_rank() == 0 && out_holds_other_run(a, r->ckpt, r->csv)) return 2; /* rank 0 writes */
    return -1;
}

/* --resume: the model, its training state and the run's own optimisation settings, with a
 * note for each option they overrule. 0, or 2 after a message. */
static int resume_run(train_run *r) {
    train_args *a = &r->a;
    dfs_train_config *tc = &r->tc;
    int has_optim = 0;
    char *tjson = NULL;
    dfs_status s = dfs_checkpoint_load(a->resume, &r->m, &r->st, &has_optim, &tjson);
    if (s != DFS_OK) return cli_fail_status(s);
    if (!has_optim) {
        free(tjson);
        return cli_fail("%s holds sampling weights only; resume needs a checkpoint written by diffuse train", a->resume);
    }
    int rc = restore_train(tjson, a, tc, &r->data_owned, &r->labels_owned);
    free(tjson);
    if (rc) return 2;
    if (!a->data) return cli_fail("train: %s names no training data; give --data", a->resume);
    r->text = r->m->cfg.unet.text.dim > 0;
    if (a->text && !r->text) return cli_fail("train: --text: %s is not a text model", a->resume);
    if (r->text && !r->m->tokenizer)
        return cli_fail("train: %s is a text model without a tokenizer; it cannot be resumed", a->resume);
    /* the optimisation settings are the run's: say which options were overruled */
    const struct {
        int opt;
        const char *name;
        double v;
    } kept[] = {{O_BATCH, "--batch", tc->batch},
                {O_WARMUP, "--warmup", tc->opt.warmup}, {O_WD, "--weight-decay", tc->opt.weight_decay},
                {O_CLIP, "--clip", tc->opt.clip},      {O_EMA, "--ema", tc->opt.ema_decay},
                {O_CDROP, "--cond-drop", tc->cond_drop}, {O_LIMIT, "--limit", (double)a->limit}};
    for (size_t k = 0; k < sizeof kept / sizeof *kept && cli_mpi_rank() == 0; k++)
        if (r->given[kept[k].opt])
            fprintf(stderr, "diffuse: note: %s ignored; the resumed run keeps its %g\n", kept[k].name, kept[k].v);
    /* but a given --lr is taken (a run whose loss went NaN resumes with a lower one) */
    if (r->given[O_LR] && cli_train_lr_note(tc->opt.lr, (float)a->lr)) tc->opt.lr = (float)a->lr;
    if (cli_mpi_rank() == 0)
        fprintf(stderr, "resuming %s at step %ld (%ld images seen)\n", a->resume, r->st.step, r->st.images_seen);
    return 0;
}

/* A new run: the preset's U-Net with the architecture options, for a text run with a tokenizer
 * built from the captions (read already) and their image size and channels; --init's weights
 * where they fit; a fresh training state. 0, or 2 after a message. */
static int new_model(train_run *r) {
    const train_args *a = &r->a;
    dfs_model_config mc;
    memset(&mc, 0, sizeof mc);
    dfs_status s;
    if ((s = dfs_unet_config_preset(&mc.unet, a->preset)) != DFS_OK) return cli_fail_status(s);
    dfs_tokenizer *tok = NULL;
    if (r->text) {
        mc.unet.image_size = r->cs.images.h;
        mc.unet.in_channels = r->cs.images.c;
        mc.unet.num_classes = 0;
        dfs_tokenizer_config tkc;
        dfs_tokenizer_config_default(&tkc);
        tkc.min_count = (int)a->min_count;
        tkc.max_len = (int)a->text_len;
        if ((s = dfs_tokenizer_build(&tok, (const char *const *)r->cs.captions, r->cs.images.n, &tkc)) != DFS_OK)
            return cli_fail_status(s);
        mc.unet.text = (dfs_text_config){.vocab = dfs_tokenizer_vocab_size(tok), .max_len = (int)a->text_len,
                                         .dim = (int)a->text_dim, .layers = (int)a->text_layers,
                                         .heads = (int)a->text_heads};
    }
    if (apply_arch(a, &mc.unet)) {
        dfs_tokenizer_free(tok);
        return 2;
    }
    if (dfs_unet_config_check(&mc.unet) != DFS_OK) {
        dfs_tokenizer_free(tok);
        return cli_fail_status(DFS_ERR_ARG);
    }
    mc.schedule = a->schedule;
    mc.T = (int)a->T;
    mc.prediction = a->prediction;
    r->m = dfs_model_new(&mc, a->seed);
    if (!r->m) {
        dfs_tokenizer_free(tok);
        return cli_fail_status(DFS_ERR_ARG);
    }
    r->m->tokenizer = tok; /* owned by the model from here, saved in its checkpoints */
    if (a->init) {
        int loaded, total;
        char *fresh = NULL;
        if ((s = dfs_checkpoint_init_from(r->m, a->init, &loaded, &total, &fresh)) != DFS_OK) return cli_fail_status(s);
        if (cli_mpi_rank() == 0)
            fprintf(stderr, "initialised %d of %d tensors from %s%s%.300s%s\n", loaded, total, a->init,
                *fresh ? "; fresh: " : "", fresh, strlen(fresh) > 300 ? "..." : "");
        free(fresh);
        snprintf(r->a.init_note, sizeof r->a.init_note, "%.400s (%d of %d tensors)", a->init, loaded, total);
    }
    r->st.seed = a->seed;
    dfs_rng_seed(&r->st.rng, a->seed ^ 0x5eed5eedULL);
    return 0;
}

/* The captions of a text run (before a new model: it takes their size, channels and words). */
static int load_captions(train_run *r) {
    dfs_caption_options co;
    dfs_caption_options_default(&co);
    co.size = r->m ? r->m->cfg.unet.image_size : (int)r->a.image_size;
    co.channels = r->m ? r->m->cfg.unet.in_channels : (r->a.set_channels ? (int)r->a.channels : 0);
    co.limit = (int)r->a.limit;
    dfs_status s = dfs_captions_load(&r->cs, r->a.data, &co);
    return s == DFS_OK ? 0 : cli_fail_status(s);
}

/* What the model trains on: every caption tokenized once into the model's table (row i is image
 * i's caption), or the images at the model's size and channels; then the trainer, and the
 * caption rows of a text run's sample grids. 0, or 2 after a message. */
static int load_data(train_run *r) {
    const dfs_unet_config *u = &r->m->cfg.unet;
    dfs_status s;
    r->dp = r->text ? &r->cs.images : &r->data;
    if (r->text) {
        cli_words uw = {0};
        int truncated = 0;
        s = dfs_model_set_prompts(r->m, (const char *const *)r->cs.captions, r->cs.images.n, cli_words_add, &uw,
                                  &truncated);
        if (s != DFS_OK) {
            cli_words_free(&uw);
            return cli_fail_status(s);
        }
        if (cli_mpi_rank() != 0) {
        } else if (r->a.resume) cli_words_warn(&uw);
        else if (uw.count > 0)
            fprintf(stderr, "diffuse: note: %ld caption words (%d distinct) are rarer than --min-count %ld and encode as <unk>\n",
                    uw.count, uw.n, r->a.min_count);
        if (truncated > 0 && cli_mpi_rank() == 0)
            fprintf(stderr, "diffuse: note: %d caption words past the model's %d tokens were dropped\n", truncated,
                    u->text.max_len);
        cli_words_free(&uw);
    } else {
        s = cli_load_data(&r->data, r->a.data, r->a.labels, u->image_size, u->in_channels, (int)r->a.limit);
        if (s != DFS_OK) return cli_fail_status(s);
    }
    if ((s = dfs_trainer_new(&r->tr, r->m, &r->tc, r->dp, &r->st)) != DFS_OK) return cli_fail_status(s);
    /* the captions of a text model's sample grids: the first image of each class when the data
     * are labelled with up to 10 classes, else 8 evenly spaced images */
    const dfs_dataset *im = &r->cs.images;
    if (r->text && im->labels && im->num_classes > 0 && im->num_classes <= 10) {
        for (int k = 0; k < im->num_classes; k++)
            for (int i = 0; i < im->n; i++)
                if (im->labels[i] == k) {
                    r->caps[r->ncap++] = i;
                    break;
                }
    } else if (r->text) {
        int want = im->n < 8 ? im->n : 8;
        for (int i = 0; i < want; i++) r->caps[r->ncap++] = (int)((long)i * im->n / want);
    }
    return 0;
}

/* The run folder: created if missing; metrics.csv (for a resume, trimmed to the checkpoint's
 * step and appended to) with its header; the training record; a text run's grid captions.
 * 0, or 2 after a message, before any step is trained. */
static int open_run(train_run *r) {
    const train_args *a = &r->a;
    if (cli_mpi_rank() != 0) return 0; /* rank 0 alone writes the run */
    if (mkdir(a->out, 0777) != 0 && errno != EEXIST) return cli_fail("cannot create %s: %s", a->out, strerror(errno));
    if (a->resume && trim_metrics(r->csv, r->st.step)) return 2;
    if (!(r->mf = fopen(r->csv, a->resume ? "a" : "w"))) return cli_fail("cannot write %s: %s", r->csv, strerror(errno));
    if ((!a->resume || ftell(r->mf) == 0) && (fputs(metrics_header, r->mf) < 0 || fflush(r->mf) != 0))
        return cli_fail("cannot write %s: %s", r->csv, strerror(errno));
    r->a.text = r->text; /* recorded in the training settings */
    r->tj = train_json(&r->a, &r->tc, r->dp);
    if (r->text) { /* what the columns of the sample grids show */
        snprintf(r->tmp, sizeof r->tmp, "%s/samples-captions.txt", a->out);
        FILE *cf = fopen(r->tmp, "w");
        for (int k = 0; cf && k < r->ncap; k++) fprintf(cf, "column %d: %s\n", k + 1, r->cs.captions[r->caps[k]]);
        if (cf) fclose(cf);
    }
    return 0;
}

/* Train until --steps, --minutes or a signal, logging metrics.csv, saving checkpoints and
 * sample grids on their schedules. Returns 0 or 2 (after a message); *last is the status of
 * the last step (DFS_ERR_NAN: the run diverged) and *csv_err the errno of a failed write to
 * metrics.csv (a full disk), else 0. */
static int train_loop(train_run *r, dfs_status *last, int *csv_err) {
    const train_args *a = &r->a;
    const dfs_train_config *tc = &r->tc;
    dfs_train_state *st = &r->st;
    dfs_status s = DFS_OK;
    int rc = 0;
    double t0 = cli_now(), wall0 = st->wall_seconds;
    long step0 = st->step;
    double loss_avg = 0;
    int have_avg = 0;
    float loss = 0;
    /* over several processes rank 0 (the lead) alone writes; a failure that is one rank's
     * alone (not the loss, which every rank shares) stops all ranks (cli_mpi_abort) */
    const int lead = cli_mpi_rank() == 0, many = cli_mpi_ranks() > 1;
    cli_progress bar; /* a line a hundredth of the run when stderr is not a terminal */
    cli_progress_start(&bar, "step", a->steps, step0, lead ? 100 : 0);
    *csv_err = 0;
    while (st->step < a->steps) {
        int stop = cli_interrupted() ? 2 : a->minutes > 0 && cli_now() - t0 > a->minutes * 60;
        double unused = 0;
        cli_mpi_step_agree(&stop, &unused); /* every rank stops at the same step */
        r->interrupted = stop == 2;         /* a signal on any rank */
        if (stop) break;
        s = dfs_trainer_step(r->tr, &loss);
        if (s != DFS_OK) {
            cli_progress_end(&bar);
            struct stat cb;
            if (s != DFS_ERR_NAN)
                rc = cli_mpi_abort(cli_fail_status(s));
            else if (!lead)
                rc = 2; /* the loss is every rank's: rank 0 says it */
            else if (stat(r->ckpt, &cb) == 0)
                rc = cli_fail("%s; stopping. The last checkpoint (%s) is kept: resume it with a lower --lr", dfs_last_error(), r->ckpt);
            else
                rc = cli_fail("%s; stopping before any checkpoint was written (try a lower --lr, or check the data and --init weights)",
                              dfs_last_error());
            break;
        }
        loss_avg = have_avg ? 0.98 * loss_avg + 0.02 * loss : loss;
        have_avg = 1;
        double el = cli_now() - t0;
        double ips = (double)(st->step - step0) * tc->batch / (el > 0 ? el : 1e-9);
        st->wall_seconds = wall0 + el;
        if (lead && (st->step % a->log_every == 0 || st->step == a->steps)) {
            float lr = tc->opt.warmup > 0 && st->step < tc->opt.warmup ? tc->opt.lr * st->step / tc->opt.warmup : tc->opt.lr;
            if (fprintf(r->mf, "%ld,%.9g,%.6g,%ld,%.2f,%.2f\n", st->step, loss, lr, st->images_seen, ips, st->wall_seconds) < 0 ||
                fflush(r->mf) != 0) {
                *csv_err = errno ? errno : EIO;
                cli_progress_end(&bar);
                rc = cli_fail("cannot write %s: %s; stopping", r->csv, strerror(*csv_err));
                if (many && dfs_checkpoint_save(r->ckpt, r->m, st, r->tj, DFS_CKPT_FULL) == DFS_OK)
                    fprintf(stderr, "diffuse: the checkpoint of step %ld is saved to %s\n", st->step, r->ckpt);
                cli_mpi_abort(rc);
                break;
            }
        }
        if (!lead) continue;
        double eta = ips > 0 ? (double)(a->steps - st->step) * tc->batch / ips : -1;
        if (a->minutes > 0 && a->minutes * 60 - el < eta) eta = a->minutes * 60 - el;
        cli_progress_update(&bar, st->step, eta, "loss %.4f | %.1f img/s", loss_avg, ips);
        if (st->step % a->save_every == 0) {
            if ((s = dfs_checkpoint_save(r->ckpt, r->m, st, r->tj, DFS_CKPT_FULL)) != DFS_OK) {
                cli_progress_end(&bar);
                rc = cli_mpi_abort(cli_fail_status(s));
                break;
            }
        }
        if (a->sample_every > 0 && st->step % a->sample_every == 0) {
            snprintf(r->tmp, sizeof r->tmp, "%s/samples-%06ld.png", a->out, st->step);
            if ((rc = write_samples(r->m, r->tmp, a->seed, r->caps, r->ncap, (int)a->sample_steps)) != 0) {
                cli_mpi_abort(rc);
                break;
            }
        }
    }
    cli_progress_end(&bar);
    *last = s;
    return rc;
}

/* After the loop: the last checkpoint (on an error only when this run added steps and did not
 * diverge, so that a run failing at its first step leaves nothing to block a retry in --out),
 * and the closing line. Returns the run's exit status. */
static int finish_run(train_run *r, int rc, dfs_status last, int csv_err, long step0) {
    const dfs_train_state *st = &r->st;
    if (cli_mpi_rank() != 0) return rc; /* rank 0 writes */
    FILE *mf = r->mf;
    r->mf = NULL;
    if (fclose(mf) != 0 && rc == 0) rc = cli_fail("cannot write %s: %s", r->csv, strerror(errno));
    if (rc == 0 || (last != DFS_ERR_NAN && st->step > step0)) {
        dfs_status s2 = dfs_checkpoint_save(r->ckpt, r->m, st, r->tj, DFS_CKPT_FULL);
        if (s2 != DFS_OK) /* a second failure is said too: the run's state is then lost */
            rc = rc == 0 ? cli_fail_status(s2) : (cli_fail("and the checkpoint could not be saved: %s", dfs_last_error()), rc);
        else if (csv_err)
            fprintf(stderr, "diffuse: the checkpoint of step %ld is saved to %s\n", st->step, r->ckpt);
    }
    if (rc == 0) {
        if (r->interrupted || cli_interrupted())
            fprintf(stderr, "interrupted at step %ld: checkpoint saved to %s (continue with --resume %s)\n", st->step,
                    r->ckpt, r->ckpt);
        else
            fprintf(stderr, "done: step %ld, %ld images seen, %.1f s; checkpoint %s\n", st->step, st->images_seen,
                    st->wall_seconds, r->ckpt);
        double sum_s, wait_s, run_s = st->wall_seconds - r->wall0 > 0 ? st->wall_seconds - r->wall0 : 1e-9;
        long sums;
        cli_mpi_sum_time(&sum_s, &wait_s, &sums);
        if (sums > 0 && st->step > step0)
            fprintf(stderr, "%d ranks: the gradient sum took %.2f ms per step, %.1f%% of the step time; rank 0 "
                    "waited %.2f ms per step for the slowest rank\n", cli_mpi_ranks(), 1e3 * sum_s / sums,
                    100 * sum_s / run_s, 1e3 * wait_s / sums);
    }
    return rc;
}

/* A checksum of what every rank must share before the first step: the weights, EMA and AdamW
 * moments, the training state and the images (their labels and captions follow from the same
 * --data). */
static uint64_t run_checksum(const train_run *r) {
    const dfs_params *p = r->m->net->params;
    uint64_t h = CLI_FNV_SEED;
    const float *blocks[4] = {p->data, p->ema, p->m, p->v};
    for (int k = 0; k < 4; k++)
        if (blocks[k]) h = cli_fnv(h, blocks[k], p->n * sizeof(float));
    const long s[2] = {r->st.step, r->st.images_seen};
    h = cli_fnv(h, s, sizeof s);
    h = cli_fnv(h, &r->st.seed, sizeof r->st.seed);
    h = cli_fnv(h, r->st.rng.s, sizeof r->st.rng.s);
    const dfs_dataset *d = r->dp;
    const int dims[4] = {d->n, d->c, d->h, d->w};
    h = cli_fnv(h, dims, sizeof dims);
    return cli_fnv(h, d->pixels, (size_t)d->n * d->c * d->h * d->w);
}

static int train_main(int argc, char **argv);

int cmd_train(int argc, char **argv) {
    int rc = cli_mpi_start("train");
    return cli_mpi_end(rc ? rc : train_main(argc, argv));
}

static int train_main(int argc, char **argv) {
    train_run run;
    train_run *r = &run;
    memset(r, 0, sizeof *r);
    int rc = parse_args(r, argc, argv);
    if (rc == 0) return 0; /* --help */
    if (rc > 0) { /* the options are every rank's, but only rank 0 looks at --out */
        run_free(r);
        return cli_mpi_agree(rc);
    }
    const train_args *a = &r->a;
    dfs_set_threads((int)a->threads);
    dfs_bf16_mode bf16 = DFS_BF16_OFF;
    if (cli_precision_option(a->precision ? a->precision : "fp32", &bf16)) {
        run_free(r);
        return cli_mpi_agree(2);
    }
    dfs_train_config_default(&r->tc);
    r->tc.batch = (int)a->batch;
    r->tc.opt.lr = (float)a->lr;
    r->tc.opt.warmup = (int)a->warmup;
    r->tc.opt.weight_decay = (float)a->wd;
    r->tc.opt.clip = (float)a->clip;
    r->tc.opt.ema_decay = (float)a->ema;
    r->tc.cond_drop = (float)a->cond_drop;
    r->text = a->text;
    /* a resumed model first (it says what the data are); captions before a new model (it takes
     * their size, channels and vocabulary) */
    int agreed = 0;
    if ((a->resume && (rc = resume_run(r))) || (r->text && (rc = load_captions(r))) ||
        (!a->resume && (rc = new_model(r))) || (rc = load_data(r)) || (rc = open_run(r)) ||
        (agreed = 1, rc = cli_mpi_agree(0)) || (rc = cli_mpi_same(run_checksum(r), "weights, training state or data"))) {
        /* a rank that failed said why; the others learn it in cli_mpi_agree and stop too */
        if (!agreed) rc = cli_mpi_agree(rc);
        run_free(r);
        return rc;
    }
    const dfs_unet_config *u = &r->m->cfg.unet;
    const dfs_dataset *dp = r->dp;
    /* --conv applies to training on the FAST kernels in float32 only */
    const int conv = dfs_get_kernels() == DFS_KERNELS_FAST && !dfs_get_bf16() ? (int)dfs_get_conv_algo() : 0;
    if (cli_mpi_rank() != 0) {
    } else if (r->text)
        fprintf(stderr, "training text-to-image U-Net (%zu parameters, %s; text encoder %d wide, %d layers, %d words, "
                "%d tokens) on %d captioned %dx%dx%d images of %s, batch %d, %ld threads\n",
                r->m->net->params->n, dfs_schedule_names[r->m->cfg.schedule], u->text.dim, u->text.layers,
                u->text.vocab, u->text.max_len, dp->n, dp->c, dp->h, dp->w, a->data, r->tc.batch, a->threads);
    else
        fprintf(stderr, "training %s U-Net (%zu parameters, %s) on %d images of %s, batch %d, %ld threads%s%s%s%s\n",
                u->num_classes ? "class-conditional" : "unconditional", r->m->net->params->n,
                dfs_schedule_names[r->m->cfg.schedule], dp->n, a->data, r->tc.batch, a->threads,
                dfs_get_bf16() ? ", " : "", dfs_get_bf16() ? cli_precision_name(dfs_get_bf16()) : "",
                conv ? ", conv " : "", conv ? dfs_conv_algo_names[conv] : "");
    if (cli_mpi_rank() == 0 && cli_mpi_ranks() > 1)
        fprintf(stderr, "data-parallel over %d ranks: %ld threads each, %d images of every batch per thread\n",
                cli_mpi_ranks(), a->threads, r->tc.batch / (cli_mpi_ranks() * (int)a->threads));
    r->wall0 = r->st.wall_seconds;
    cli_catch_signals();
    const long step0 = r->st.step;
    dfs_status last;
    int csv_err;
    rc = train_loop(r, &last, &csv_err);
    rc = finish_run(r, rc, last, csv_err, step0);
    run_free(r);
    return rc;
}
