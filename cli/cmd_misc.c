/* cmd_misc.c - diffuse noise, info and bench. */
#include "common.h"
#include "sampling.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- noise ----------------------------------------------------------------------------------- */

static const char *noise_help =
    "usage: diffuse noise (--data SRC --index I | --image PNG) --out FILE.png [options]\n"
    "\n"
    "Show the forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) on one image:\n"
    "the original, then x_t at each requested step, side by side.\n"
    "\n"
    "  --data SRC          fashion-mnist, fashion-mnist-test, a PNG folder or an IDX file\n"
    "  --index I           which image of the data (default 0)\n"
    "  --image PNG         a single PNG instead (kept at its size; gray or RGB)\n"
    "  --at LIST           comma-separated steps in 0..T-1 (default 0,100,250,500,999)\n"
    "  --schedule NAME     linear (default), cosine, quad (CSDI's) or poly2 (EDM's)\n"
    "  --T N               diffusion steps (default 1000)\n"
    "  --seed S            noise seed (default 0)\n"
    "  --scale N           enlarge each image N times (nearest; default 1)\n"
    "  --out FILE.png      the strip\n";

int cmd_noise(int argc, char **argv) {
    const char *data = NULL, *image = NULL, *at = "0,100,250,500,999", *out = NULL;
    long index = 0, T = 1000, scale = 1;
    int schedule = DFS_SCHEDULE_LINEAR;
    uint64_t seed = 0;
    enum { O_DATA = 256, O_INDEX, O_IMAGE, O_AT, O_SCHED, O_T, O_SEED, O_OUT, O_SCALE };
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA}, {"index", required_argument, 0, O_INDEX},
        {"image", required_argument, 0, O_IMAGE}, {"at", required_argument, 0, O_AT},
        {"schedule", required_argument, 0, O_SCHED}, {"T", required_argument, 0, O_T},
        {"seed", required_argument, 0, O_SEED}, {"out", required_argument, 0, O_OUT},
        {"scale", required_argument, 0, O_SCALE},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h': fputs(noise_help, stdout); return 0;
        case O_SCALE: if (cli_int("--scale", optarg, 1, 16, &scale)) return 2; break;
        case O_DATA: data = optarg; break;
        case O_IMAGE: image = optarg; break;
        case O_AT: at = optarg; break;
        case O_OUT: out = optarg; break;
        case O_INDEX: if (cli_int("--index", optarg, 0, 1000000000, &index)) return 2; break;
        case O_T: if (cli_int("--T", optarg, 2, 100000, &T)) return 2; break;
        case O_SEED: if (cli_u64("--seed", optarg, &seed)) return 2; break;
        case O_SCHED: if ((schedule = dfs_schedule_from_name(optarg)) < 0) return cli_fail("--schedule must be linear, cosine, quad or poly2, not '%s'", optarg); break;
        default: return cli_bad_option("noise", argv);
        }
    }
    if (optind < argc) return cli_fail("noise: unexpected argument '%s'", argv[optind]);
    if (!out || !ends_with(out, ".png")) return cli_fail("noise: --out FILE.png is required");
    if (!!data == !!image) return cli_fail("noise: give exactly one of --data SRC or --image PNG");

    int steps[64], ns = 0;
    for (const char *p = at; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= T || (*end && *end != ',') || ns == 64)
            return cli_fail("--at expects up to 64 comma-separated steps in 0..%ld, got '%s'", T - 1, at);
        steps[ns++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (ns == 0) return cli_fail("--at is empty");

    uint8_t *px = NULL;
    int c, h, w;
    dfs_status s;
    if (image) {
        s = dfs_png_read(image, &px, &c, &h, &w);
        if (s != DFS_OK) return cli_fail_status(s);
    } else {
        dfs_dataset d;
        memset(&d, 0, sizeof d);
        s = cli_load_data(&d, data, NULL, 28, 1, 0);
        if (s != DFS_OK) return cli_fail_status(s);
        if (index >= d.n) {
            int n = d.n; /* freeing zeroes it */
            dfs_dataset_free(&d);
            return cli_fail("--index %ld is out of range: %s has %d images", index, data, n);
        }
        c = d.c, h = d.h, w = d.w;
        px = malloc((size_t)c * h * w);
        if (px) memcpy(px, d.pixels + (size_t)index * c * h * w, (size_t)c * h * w);
        dfs_dataset_free(&d);
        if (!px) return cli_fail("out of memory");
    }
    size_t dim = (size_t)c * h * w;
    if ((s = cli_grid_fits(ns + 1, h, w, ns + 1, (int)scale)) != DFS_OK) { /* before the frames */
        free(px);
        return cli_fail_status(s);
    }
    dfs_schedule sch;
    if ((s = dfs_schedule_init(&sch, schedule, (int)T)) != DFS_OK) {
        free(px);
        return cli_fail_status(s);
    }
    float *frames = malloc((size_t)(ns + 1) * dim * sizeof(float)), *eps = malloc(dim * sizeof(float));
    int rc = 0;
    if (!frames || !eps) rc = cli_fail("out of memory");
    else {
        for (size_t k = 0; k < dim; k++) frames[k] = px[k] / 127.5f - 1.0f;
        dfs_rng rng;
        dfs_rng_seed(&rng, seed);
        dfs_rng_fill_normal(&rng, eps, dim); /* the same noise at every step, so the strip shows the schedule */
        for (int i = 0; i < ns; i++) dfs_q_sample(&sch, steps[i], frames, eps, frames + (size_t)(i + 1) * dim, dim);
        s = cli_write_grid(out, frames, ns + 1, c, h, w, ns + 1, (int)scale);
        if (s != DFS_OK) rc = cli_fail_status(s);
        else fprintf(stderr, "wrote %s: original, then t = %s (%s schedule, T = %ld)\n", out, at, dfs_schedule_names[schedule], T);
    }
    free(frames);
    free(eps);
    free(px);
    dfs_schedule_free(&sch);
    return rc;
}

/* ---- info ------------------------------------------------------------------------------------ */

/* Whether path is a checkpoint with metadata `key` ("series": a time-series model,
 * "molecules": a molecule model). */
static int has_meta(const char *path, const char *key) {
    dfs_safetensors f;
    if (dfs_st_load(&f, path) != DFS_OK) return 0;
    int yes = dfs_st_meta(&f, key) != NULL;
    dfs_st_free(&f);
    return yes;
}

static int info_mol(const char *path) {
    dfs_mol_model *m;
    dfs_train_state st;
    int has_optim;
    char *tj = NULL;
    dfs_status s = dfs_mol_load(path, &m, &st, &has_optim, &tj);
    if (s != DFS_OK) return cli_fail_status(s);
    const dfs_egnn_config *c = &m->cfg.net;
    printf("checkpoint:   %s (%s)\n", path, has_optim ? "resumable: weights, EMA, AdamW state" : "sampling weights");
    printf("model:        EDM molecules, EGNN %d features, %d blocks of %d layers, attention %s, tanh %s "
           "(range %g)\n", c->hidden, c->layers, c->sublayers, c->attention ? "on" : "off", c->tanh ? "on" : "off",
           (double)c->coords_range);
    printf("atoms:        H, C, N, O, F; up to %d per molecule; training sizes", m->M);
    for (int a = 1; a <= m->M; a++)
        if (m->sizes[a]) printf(" %d:%ld", a, m->sizes[a]);
    printf("\nparameters:   %zu\n", dfs_egnn_params(m->net)->n);
    printf("diffusion:    %s schedule, T = %d, predicts eps\n", dfs_schedule_names[m->cfg.schedule], m->cfg.T);
    printf("flops:        %.3f MFLOP per molecule of %d slots forward\n", dfs_egnn_flops(c, m->M) * 1e-6, m->M);
    if (m->sampling.set)
        printf("sampling:     %s, %d steps%s%s (recommended)\n", dfs_sampler_names[m->sampling.kind], m->sampling.steps,
               m->sampling.var_beta ? ", variance beta" : "", cli_recipe_noise(&m->sampling));
    if (st.step > 0) printf("step:         %ld\nmolecules:    %ld seen\ntrain time:   %.1f s\n", st.step, st.images_seen, st.wall_seconds);
    if (tj) printf("training:     %s\n", tj);
    free(tj);
    dfs_mol_model_free(m);
    return 0;
}

static int info_series(const char *path) {
    dfs_series_model *m;
    dfs_train_state st;
    int has_optim;
    char *tj = NULL;
    dfs_status s = dfs_series_load(path, &m, &st, &has_optim, &tj);
    if (s != DFS_OK) return cli_fail_status(s);
    const dfs_csdi_config *c = &m->cfg.net;
    printf("checkpoint:   %s (%s)\n", path, has_optim ? "resumable: weights, EMA, AdamW state" : "sampling weights");
    printf("model:        CSDI time series, %d channels, %d layers, %d heads, feed-forward %d, embeddings: "
           "step %d, time %d, feature %d, %d calendar values%s\n",
           c->channels, c->layers, c->heads, c->ff, c->step_dim, c->time_dim, c->feature_dim, c->calendar,
           m->cfg.no_day_of_year ? " (the day of the year held at 0: --no-day-of-year)" : "");
    printf("features:     ");
    for (int k = 0; k < m->K; k++) printf("%s%s (mean %.6g, sd %.6g)", k ? ", " : "", m->names[k], m->mean[k], m->sd[k]);
    printf("\nstep:         %lld s between rows; trained on windows of %d steps\n", (long long)m->step, m->cfg.window);
    printf("parameters:   %zu\n", dfs_csdi_params(m->net)->n);
    printf("diffusion:    %s schedule, T = %d, predicts eps\n", dfs_schedule_names[m->cfg.schedule], m->cfg.T);
    printf("flops:        %.3f MFLOP per window of %d steps forward\n", dfs_csdi_flops(c, m->cfg.window, m->K) * 1e-6, m->cfg.window);
    if (m->sampling.set)
        printf("sampling:     %s, %d steps%s%s (recommended)\n", dfs_sampler_names[m->sampling.kind], m->sampling.steps,
               m->sampling.var_beta ? ", variance beta" : "", cli_recipe_noise(&m->sampling));
    if (st.step > 0) printf("step:         %ld\nwindows seen: %ld\ntrain time:   %.1f s\n", st.step, st.images_seen, st.wall_seconds);
    if (tj) printf("training:     %s\n", tj);
    free(tj);
    dfs_series_model_free(m);
    return 0;
}

int cmd_info(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs("usage: diffuse info CKPT\n\nPrint a checkpoint's model configuration, parameter count and training state.\n", stdout);
        return 0;
    }
    if (argc != 2) return cli_fail("usage: diffuse info CKPT");
    dfs_model *m;
    dfs_train_state st;
    int has_optim;
    char *tj = NULL;
    if (has_meta(argv[1], "series")) return info_series(argv[1]);
    if (has_meta(argv[1], "molecules")) return info_mol(argv[1]);
    dfs_status s = dfs_checkpoint_load(argv[1], &m, &st, &has_optim, &tj);
    if (s != DFS_OK) return cli_fail_status(s);
    const dfs_unet_config *u = &m->cfg.unet;
    printf("checkpoint:   %s (%s)\n", argv[1], has_optim ? "resumable: weights, EMA, AdamW state" : "sampling weights");
    printf("model:        U-Net %dx%dx%d, base channels %d, multipliers", u->in_channels, u->image_size, u->image_size, u->base_channels);
    for (int l = 0; l < u->nlevels; l++) printf("%s%d", l ? "," : " ", u->mult[l]);
    printf(", attention at");
    int any = 0;
    for (int l = 0; l < u->nlevels; l++)
        if (u->attn[l]) printf("%s%dx%d", any++ ? "," : " ", u->image_size >> l, u->image_size >> l);
    if (!any) printf(" none");
    printf(", blocks %d/%d, groups %d, dropout %g\n", u->enc_blocks, u->dec_blocks, u->groups, u->dropout);
    if (u->text.dim)
        printf("conditioning: text (encoder %d wide, %d layers, %d heads, %d words, %d tokens; the empty caption "
               "for guidance)\n", u->text.dim, u->text.layers, u->text.heads, u->text.vocab, u->text.max_len);
    else if (u->num_classes) printf("conditioning: %d classes (+1 null row for guidance)\n", u->num_classes);
    else printf("conditioning: none (unconditional)\n");
    printf("parameters:   %zu\n", m->net->params->n);
    printf("diffusion:    %s schedule, T = %d, predicts %s\n", dfs_schedule_names[m->cfg.schedule], m->cfg.T, dfs_prediction_names[m->cfg.prediction]);
    printf("flops:        %.3f GFLOP per image forward\n", dfs_unet_flops(u) * 1e-9);
    if (m->sampling.set)
        printf("sampling:     %s, %d steps, guidance %g%s%s (recommended; sample and eval use it by default)\n",
               dfs_sampler_names[m->sampling.kind], m->sampling.steps, (double)m->sampling.guidance,
               m->sampling.var_beta ? ", variance beta" : "", cli_recipe_noise(&m->sampling));
    if (st.step > 0 || st.images_seen > 0) {
        printf("step:         %ld\n", st.step);
        printf("images seen:  %ld\n", st.images_seen);
        printf("train time:   %.1f s\n", st.wall_seconds);
    }
    if (tj) printf("training:     %s\n", tj);
    free(tj);
    dfs_model_free(m);
    return 0;
}

/* ---- export ---------------------------------------------------------------------------------- */

/* export for a time-series model: the same, through dfs_series_load / _save */
static int export_series(const char *model, const char *out, const dfs_sampling_recipe *rec, dfs_ckpt_kind kind) {
    dfs_series_model *m;
    char *tjson = NULL;
    dfs_train_state st;
    dfs_status s = dfs_series_load(model, &m, &st, NULL, &tjson);
    if (s != DFS_OK) return cli_fail_status(s);
    if (rec->set && rec->steps > m->cfg.T) {
        const int T = m->cfg.T;
        free(tjson);
        dfs_series_model_free(m);
        return cli_fail("export: --steps %d is more than the model's T = %d", rec->steps, T);
    }
    if (rec->set) m->sampling = *rec;
    s = dfs_series_save(out, m, st.step > 0 ? &st : NULL, tjson, kind);
    free(tjson);
    dfs_series_model_free(m);
    if (s != DFS_OK) return cli_fail_status(s);
    fprintf(stderr, "wrote %s (EMA weights, %s)\n", out, kind == DFS_CKPT_SAMPLING_F16 ? "float16" : "float32");
    return 0;
}

static int export_mol(const char *model, const char *out, const dfs_sampling_recipe *rec, dfs_ckpt_kind kind) {
    dfs_mol_model *m;
    char *tjson = NULL;
    dfs_train_state st;
    dfs_status s = dfs_mol_load(model, &m, &st, NULL, &tjson);
    if (s != DFS_OK) return cli_fail_status(s);
    if (rec->set && rec->steps > m->cfg.T) {
        const int T = m->cfg.T;
        free(tjson);
        dfs_mol_model_free(m);
        return cli_fail("export: --steps %d is more than the model's T = %d", rec->steps, T);
    }
    if (rec->set) m->sampling = *rec;
    s = dfs_mol_save(out, m, st.step > 0 ? &st : NULL, tjson, kind);
    free(tjson);
    dfs_mol_model_free(m);
    if (s != DFS_OK) return cli_fail_status(s);
    fprintf(stderr, "wrote %s (EMA weights, %s)\n", out, kind == DFS_CKPT_SAMPLING_F16 ? "float16" : "float32");
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    int kind = DFS_CKPT_SAMPLING_F16, sampler = -1;
    long steps = -1;
    double guidance = 1.0;
    int set_guidance = 0, var_beta = -1;
    double noise_scale = 0; /* 0: not given */
    enum { O_MODEL = 256, O_OUT, O_F16, O_F32, O_SAMPLER, O_STEPS, O_GUID, O_VAR, O_NOISE };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL}, {"out", required_argument, 0, O_OUT},
        {"f16", no_argument, 0, O_F16}, {"f32", no_argument, 0, O_F32},
        {"sampler", required_argument, 0, O_SAMPLER}, {"steps", required_argument, 0, O_STEPS},
        {"guidance", required_argument, 0, O_GUID}, {"variance", required_argument, 0, O_VAR},
        {"noise-scale", required_argument, 0, O_NOISE}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            fputs("usage: diffuse export --model CKPT --out FILE.safetensors [--f16 | --f32]\n"
                  "                      [--sampler NAME --steps N [--guidance W] [--variance V]\n"
                  "                       [--noise-scale S]]\n\n"
                  "Write the EMA weights of a training checkpoint as a sampling-only model (no\n"
                  "optimiser state), in float16 (default, half the size) or float32. The training\n"
                  "record, step, images seen and training time go with it (diffuse info shows them).\n"
                  "Image models, time-series models (diffuse series train's) and molecule models\n"
                  "(diffuse mol train's) alike.\n\n"
                  "  --model CKPT        the checkpoint to read (diffuse train's, or an exported model)\n"
                  "  --out FILE          the model to write (.safetensors); never over a training\n"
                  "                      checkpoint or over --model itself\n"
                  "  --f16, --f32        float16 weights (default) or float32\n"
                  "  --sampler NAME --steps N [--guidance W]\n"
                  "                      record the settings the model samples best with (ddpm, ddim,\n"
                  "                      dpm++2m or heun; steps 1..T; guidance default 1, none for a\n"
                  "                      series or molecule model): diffuse sample, eval, series\n"
                  "                      forecast and impute, and mol sample use them for what they\n"
                  "                      are not given. Without\n"
                  "                      these, the settings CKPT carries (if any) go with it\n"
                  "  --variance V        with --sampler ddpm: the reverse variance to record, beta-tilde\n"
                  "                      (default) or beta\n"
                  "  --noise-scale S     with --sampler ddpm: the noise scale to record, in (0, 1]\n"
                  "                      (default 1: the plain ancestral sampler); below 1 each step\n"
                  "                      adds S times its noise (a lower-temperature sampler)\n", stdout);
            return 0;
        case O_SAMPLER:
            if ((sampler = dfs_sampler_from_name(optarg)) < 0)
                return cli_fail("--sampler must be ddpm, ddim, dpm++2m or heun, not '%s'", optarg);
            break;
        case O_STEPS: if (cli_int("--steps", optarg, 1, 100000, &steps)) return 2; break;
        case O_GUID: if (cli_float("--guidance", optarg, -100, 100, &guidance)) return 2; set_guidance = 1; break;
        case O_VAR:
            if (strcmp(optarg, "beta") && strcmp(optarg, "beta-tilde"))
                return cli_fail("export: --variance must be beta or beta-tilde, not '%s'", optarg);
            var_beta = !strcmp(optarg, "beta");
            break;
        case O_NOISE:
            if (cli_float("--noise-scale", optarg, 0, 1, &noise_scale)) return 2;
            if (!(noise_scale > 0)) return cli_fail("export: --noise-scale must be in (0, 1], not '%s'", optarg);
            break;
        case O_MODEL: model = optarg; break;
        case O_OUT: out = optarg; break;
        case O_F16: kind = DFS_CKPT_SAMPLING_F16; break;
        case O_F32: kind = DFS_CKPT_SAMPLING; break;
        default: return cli_bad_option("export", argv);
        }
    }
    if (optind < argc) return cli_fail("export: unexpected argument '%s'", argv[optind]);
    if (!model || !out) return cli_fail("export: --model CKPT and --out FILE are required");
    if (!ends_with(out, ".safetensors")) return cli_fail("export: --out must end in .safetensors: '%s'", out);
    if ((sampler >= 0) != (steps > 0) || (set_guidance && sampler < 0) || ((var_beta >= 0 || noise_scale > 0) && sampler < 0))
        return cli_fail("export: --sampler and --steps go together (and --guidance, --variance and --noise-scale with them)");
    if (var_beta >= 0 && sampler != DFS_SAMPLER_DDPM)
        return cli_fail("export: --variance is ddpm's; the sampler is %s", dfs_sampler_names[sampler]);
    if (noise_scale > 0 && sampler != DFS_SAMPLER_DDPM)
        return cli_fail("export: --noise-scale is ddpm's; the sampler is %s", dfs_sampler_names[sampler]);
    /* never over a training checkpoint (its own input, or another run's): that would throw away
     * the optimiser state and EMA that resuming needs. Over a sampling model is fine. */
    struct stat so, sm;
    if (stat(out, &so) == 0) {
        dfs_safetensors f;
        int same = stat(model, &sm) == 0 && so.st_dev == sm.st_dev && so.st_ino == sm.st_ino, full = 0;
        if (!same && dfs_st_load(&f, out) == DFS_OK) {
            full = dfs_st_find(&f, "optim.m") != NULL;
            dfs_st_free(&f);
        }
        if (same) return cli_fail("export: --out is the --model file itself; write to a new file");
        if (full) return cli_fail("export: %s holds a resumable training checkpoint; write to a new file", out);
    }
    const dfs_sampling_recipe rec = {sampler >= 0, (dfs_sampler_kind)(sampler >= 0 ? sampler : 0), (int)steps,
                                     (float)guidance, var_beta == 1, noise_scale > 0 ? (float)noise_scale : 1.0f};
    if (has_meta(model, "series")) {
        if (set_guidance) return cli_fail("export: %s is a time-series model: no --guidance", model);
        return export_series(model, out, &rec, (dfs_ckpt_kind)kind);
    }
    if (has_meta(model, "molecules")) {
        if (set_guidance) return cli_fail("export: %s is a molecule model: no --guidance", model);
        return export_mol(model, out, &rec, (dfs_ckpt_kind)kind);
    }
    dfs_model *m;
    char *tjson = NULL; /* the training record (data, class names, ...) travels with the weights, */
    dfs_train_state st; /* and so do the step, images seen and training time */
    dfs_status s = dfs_checkpoint_load(model, &m, &st, NULL, &tjson);
    if (s != DFS_OK) return cli_fail_status(s);
    if (sampler >= 0) {
        if (steps > m->cfg.T) {
            const int T = m->cfg.T;
            free(tjson);
            dfs_model_free(m);
            return cli_fail("export: --steps %ld is more than the model's T = %d", steps, T);
        }
        m->sampling = rec;
    }
    s = dfs_checkpoint_save(out, m, st.step > 0 ? &st : NULL, tjson, (dfs_ckpt_kind)kind);
    free(tjson);
    dfs_model_free(m);
    if (s != DFS_OK) return cli_fail_status(s);
    fprintf(stderr, "wrote %s (EMA weights, %s)\n", out, kind == DFS_CKPT_SAMPLING_F16 ? "float16" : "float32");
    return 0;
}

/* ---- bench ----------------------------------------------------------------------------------- */

static const char *bench_help =
    "usage: diffuse bench [--preset fmnist] [--batch 64] [--threads 2] [--steps 5] [--kernels fast]\n"
    "                     [--precision fp32] [--conv direct] [--sample] [--json]\n"
    "\n"
    "After two warm-up steps, time full training steps (forward, backward, AdamW) and no-grad\n"
    "forward passes on random data, and print images/s for each, the parameter count, the\n"
    "achieved GFLOP/s and the peak RSS.\n"
    "\n"
    "  --preset NAME   model (fmnist, small)\n"
    "  --batch N       images per step (default 64)\n"
    "  --threads N     threads (default 2)\n"
    "  --steps N       timed steps of each kind (default 5)\n"
    "  --kernels NAME  fast (fused AVX-512 convolutions; the default on CPUs with AVX-512) or\n"
    "                  blas (im2col + OpenBLAS, one op per step: the default elsewhere). The\n"
    "                  environment's DFS_KERNELS sets the default; DFS_CPU=avx2 makes an\n"
    "                  AVX-512 CPU count as one without it\n"
    "  --precision NAME  fp32 (default) or bf16: training steps, forward passes and sampling\n"
    "                  with bfloat16 convolutions (AVX512_BF16; without it, float32 and a note,\n"
    "                  or under DFS_BF16=emulate bf16's results more slowly)\n"
    "  --conv NAME     the 3x3 convolutions of the forward passes, sampling and training\n"
    "                  (forward and backward): direct (default), winograd or auto\n"
    "                  (per shape, the faster of the two by a timing at its first call; the\n"
    "                  warm-up passes make those calls, and the output says how many shapes\n"
    "                  took each). float32 only; the environment's DFS_CONV sets the default\n"
    "  --sample        also time DDIM sampling of --batch images in 50 steps\n"
    "  --json          print one JSON object instead of text\n";

int cmd_bench(int argc, char **argv) {
    const char *preset = "fmnist";
    long batch = 64, threads = 2, steps = 5;
    int json = 0, sample = 0;
    const char *precision = "fp32";
    dfs_kernels kernels = dfs_get_kernels();
    enum { O_PRESET = 256, O_BATCH, O_THREADS, O_STEPS, O_JSON, O_SAMPLE, O_KERNELS, O_PRECISION, O_CONV };
    static const struct option opts[] = {
        {"preset", required_argument, 0, O_PRESET}, {"batch", required_argument, 0, O_BATCH},
        {"threads", required_argument, 0, O_THREADS}, {"steps", required_argument, 0, O_STEPS},
        {"json", no_argument, 0, O_JSON}, {"sample", no_argument, 0, O_SAMPLE},
        {"kernels", required_argument, 0, O_KERNELS}, {"precision", required_argument, 0, O_PRECISION},
        {"conv", required_argument, 0, O_CONV}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h': fputs(bench_help, stdout); return 0;
        case O_PRECISION:
            if (strcmp(optarg, "fp32") && strcmp(optarg, "bf16"))
                return cli_fail("--precision must be fp32 or bf16, not '%s'", optarg);
            precision = optarg;
            break;
        case O_PRESET: preset = optarg; break;
        case O_CONV: if (cli_conv_option(optarg)) return 2; break;
        case O_JSON: json = 1; break;
        case O_SAMPLE: sample = 1; break;
        case O_KERNELS:
            if (!strcmp(optarg, "fast")) kernels = DFS_KERNELS_FAST;
            else if (!strcmp(optarg, "blas")) kernels = DFS_KERNELS_BLAS;
            else return cli_fail("--kernels must be fast or blas, not '%s'", optarg);
            break;
        case O_BATCH: if (cli_int("--batch", optarg, 1, 4096, &batch)) return 2; break;
        case O_THREADS: if (cli_int("--threads", optarg, 1, 256, &threads)) return 2; break;
        case O_STEPS: if (cli_int("--steps", optarg, 1, 100000, &steps)) return 2; break;
        default: return cli_bad_option("bench", argv);
        }
    }
    if (optind < argc) return cli_fail("bench: unexpected argument '%s'", argv[optind]);
    dfs_set_threads((int)threads);
    dfs_set_kernels(kernels);
    dfs_bf16_mode bf16 = DFS_BF16_OFF; /* after the kernels: bf16 needs FAST */
    if (cli_precision_option(precision, &bf16)) return 2;
    dfs_model_config mc;
    memset(&mc, 0, sizeof mc);
    dfs_status s = dfs_unet_config_preset(&mc.unet, preset);
    if (s != DFS_OK) return cli_fail_status(s);
    mc.schedule = DFS_SCHEDULE_LINEAR;
    mc.T = 1000;
    mc.prediction = DFS_PRED_EPS;
    dfs_model *m = dfs_model_new(&mc, 0);
    if (!m) return cli_fail_status(DFS_ERR_ARG);
    const dfs_unet_config *u = &m->cfg.unet;
    const size_t dim = (size_t)u->in_channels * u->image_size * u->image_size;

    /* random images stand in for data: the cost does not depend on the pixels */
    dfs_dataset d = {.n = (int)batch, .c = u->in_channels, .h = u->image_size, .w = u->image_size};
    d.pixels = malloc((size_t)batch * dim);
    d.labels = malloc((size_t)batch * sizeof(int));
    d.num_classes = u->num_classes;
    float *x = malloc((size_t)batch * dim * sizeof(float)), *y = malloc((size_t)batch * dim * sizeof(float));
    int *t = malloc((size_t)batch * sizeof(int));
    if (!d.pixels || !d.labels || !x || !y || !t) {
        dfs_model_free(m);
        return cli_fail("out of memory");
    }
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    for (size_t i = 0; i < (size_t)batch * dim; i++) d.pixels[i] = (uint8_t)dfs_rng_below(&rng, 256);
    for (long i = 0; i < batch; i++) {
        d.labels[i] = u->num_classes ? (int)dfs_rng_below(&rng, (uint32_t)u->num_classes) : 0;
        t[i] = (int)dfs_rng_below(&rng, 1000);
    }
    dfs_rng_fill_normal(&rng, x, (size_t)batch * dim);

    dfs_train_config tc;
    dfs_train_config_default(&tc);
    tc.batch = (int)batch;
    dfs_train_state st = {.seed = 1};
    dfs_rng_seed(&st.rng, 2);
    dfs_trainer *tr;
    if ((s = dfs_trainer_new(&tr, m, &tc, &d, &st)) != DFS_OK) return cli_fail_status(s);
    float loss;
    /* warm-up: the arena grows in the first step and is laid out as one block in the second */
    int rc = 0;
    if ((s = dfs_trainer_step(tr, &loss)) != DFS_OK || (s = dfs_trainer_step(tr, &loss)) != DFS_OK) {
        rc = cli_fail_status(s); /* out of memory for this batch: no numbers rather than wrong ones */
        goto done;
    }
    double t0 = cli_now();
    for (long i = 0; i < steps; i++) dfs_trainer_step(tr, &loss);
    double train_s = (cli_now() - t0) / steps;
    /* the training graph is no longer needed: free it so that the forward passes do not add
     * their memory on top of it (peak RSS is then the larger of the two, not their sum) */
    dfs_trainer_free(tr);
    tr = NULL;
    m->max_batch = (int)batch;
    for (int i = 0; i < 2 && s == DFS_OK; i++) s = dfs_model_predict(m, x, t, u->num_classes ? d.labels : NULL, (int)batch, y);
    if (s != DFS_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    t0 = cli_now();
    for (long i = 0; i < steps; i++) dfs_model_predict(m, x, t, u->num_classes ? d.labels : NULL, (int)batch, y);
    double fwd_s = (cli_now() - t0) / steps;
    double sample_s = -1;
    if (sample) {
        dfs_sample_request rq;
        dfs_sample_request_default(&rq);
        rq.sampler.kind = DFS_SAMPLER_DDIM;
        rq.sampler.steps = 50;
        rq.labels = u->num_classes ? d.labels : NULL;
        rq.n = (int)batch;
        rq.raw = 1; /* the live weights, as the forward passes above (the EMA ones cost the same) */
        t0 = cli_now();
        dfs_status ss = dfs_model_sample(m, &rq, &rng, y);
        sample_s = cli_now() - t0;
        /* a random model's samples may diverge (DFS_ERR_NAN): only a failure to run stops the bench */
        if (ss != DFS_OK && ss != DFS_ERR_NAN) {
            rc = cli_fail_status(ss);
            goto done;
        }
    }
    int auto_w = 0, auto_d = 0;
    const int conv_auto = dfs_get_conv_algo() == DFS_CONV_AUTO; /* 0 shapes where it has no say (BLAS, bf16) */
    dfs_conv_auto_count(&auto_w, &auto_d);
    double flops = dfs_unet_flops(u);
    double train_ips = batch / train_s, fwd_ips = batch / fwd_s;
    double rss = cli_peak_rss_mb();
    if (json) {
        printf("{\"preset\": \"%s\", \"kernels\": \"%s\", \"path\": \"%s\", \"precision\": \"%s\", "
               "\"batch\": %ld, \"threads\": %ld, \"params\": %zu, "
               "\"train_img_per_s\": %.3f, \"forward_img_per_s\": %.3f, "
               "\"train_gflops\": %.3f, \"forward_gflops\": %.3f, \"gflop_per_image_forward\": %.4f, "
               "\"peak_rss_mb\": %.1f",
               preset, dfs_kernels_names[kernels], dfs_kernels_path(), cli_precision_name(bf16), batch, threads,
               m->net->params->n, train_ips, fwd_ips,
               train_ips * 3 * flops * 1e-9,
               fwd_ips * flops * 1e-9, flops * 1e-9, rss);
        if (sample_s >= 0) printf(", \"ddim50_sample_s\": %.3f", sample_s);
        printf(", \"conv\": \"%s\"", dfs_conv_algo_names[dfs_get_conv_algo()]);
        if (conv_auto) printf(", \"auto_winograd_shapes\": %d, \"auto_direct_shapes\": %d", auto_w, auto_d);
        printf("}\n");
    } else {
        printf("preset %s, %s kernels (%s), %s, batch %ld, %ld threads, %zu parameters, %.3f GFLOP per image forward\n",
               preset, dfs_kernels_names[kernels], dfs_kernels_path(), cli_precision_name(bf16), batch, threads,
               m->net->params->n, flops * 1e-9);
        printf("train:    %8.2f img/s  (%.1f ms/step, ~%.1f GFLOP/s counting backward as 2x forward)\n", train_ips,
               train_s * 1e3, train_ips * 3 * flops * 1e-9);
        printf("forward:  %8.2f img/s  (%.1f ms/batch, %.1f GFLOP/s)\n", fwd_ips, fwd_s * 1e3, fwd_ips * flops * 1e-9);
        if (sample_s >= 0) printf("sampling: %ld images, DDIM 50 steps: %.2f s\n", batch, sample_s);
        if (conv_auto) printf("conv auto: %d shapes on Winograd, %d on the direct kernel\n", auto_w, auto_d);
        printf("peak RSS: %.1f MB\n", rss);
    }
done:
    dfs_trainer_free(tr);
    free(d.pixels);
    free(d.labels);
    free(x);
    free(y);
    free(t);
    dfs_model_free(m);
    return rc;
}
