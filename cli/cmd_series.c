/* cmd_series.c - diffuse series: probabilistic forecasting and imputation of time series with
 * CSDI models (train, forecast, impute); windows, eval, baselines and plot are in
 * series_tasks.c. */
#include "sampling.h"
#include "series.h"
#include "mpi.h"
#include "progress.h"
#include "train_loop.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char series_help[] =
    "usage: diffuse series SUBCOMMAND [options]\n"
    "\n"
    "Probabilistic forecasts and imputations of time series as sample ensembles, from CSDI\n"
    "models (Tashiro et al. 2021; docs/TIME_SERIES.md).\n"
    "\n"
    "subcommands:\n"
    "  train       train a model on a CSV of timestamped columns, up to a date\n"
    "  forecast    draw the next steps of context windows\n"
    "  impute      fill the missing entries of windows\n"
    "  windows     cut a series into a task's windows (.npy files)\n"
    "  eval        CRPS, MAE and interval coverage of samples against the truth\n"
    "  baselines   the same scores for climatology, persistence, autoregression, interpolation\n"
    "              and a conditional Gaussian on a task's windows\n"
    "  plot        a fan chart of one window\n"
    "\n"
    "Run 'diffuse series SUBCOMMAND --help' for its options.\n";

/* ---- train --------------------------------------------------------------------------------- */

static const char train_help[] =
    "usage: diffuse series train --data CSV --columns A,B --until DATE --out RUNDIR [options]\n"
    "       diffuse series train --out RUNDIR --resume [options]\n"
    "\n"
    "Train a CSDI model (Tashiro et al. 2021) on the rows of a CSV up to --until: windows of\n"
    "--window steps, each split into given and target entries by random, forecast (the last\n"
    "steps), gap and historical masks, the noise-prediction loss on the targets only. Writes\n"
    "RUNDIR/last.safetensors (resumable), RUNDIR/model.safetensors (the EMA weights, for\n"
    "sampling) and RUNDIR/metrics.csv. Ctrl-C or SIGTERM saves a checkpoint and exits with 0.\n"
    "\n"
    "data:\n"
    "  --data CSV          a CSV with a header row and a timestamp column, or one of Debian's:\n"
    "                      seattle-weather, seattle-temps, sf-temps (python3-vega-datasets),\n"
    "                      co2 (python3-statsmodels); A+B joins files on their time steps, the\n"
    "                      columns then named A.COLUMN (seattle-temps+sf-temps)\n"
    "  --columns A,B       the value columns (default: all)\n"
    "  --until DATE        the last row of the training span (a date: its whole day)\n"
    "model (ignored with --resume):\n"
    "  --init M            start from the weights, network, T and schedule of the series model\n"
    "                      M (a model.safetensors or last.safetensors of the same columns),\n"
    "                      with a fresh optimiser and learning-rate schedule: fine-tuning, for\n"
    "                      one at a longer --window (the net has no weight per time step).\n"
    "                      The other model options are refused with it.\n"
    "  --window N          steps per training window (default 63; with --init, M's); the\n"
    "                      forecast masks hide up to 3/10 of it, the longest forecast a\n"
    "                      model is trained for\n"
    "  --channels N        residual channels (default 64)\n"
    "  --layers N          residual layers (default 4)\n"
    "  --heads N           attention heads, dividing --channels (default 8)\n"
    "  --ff N              the transformers' feed-forward width (default 64)\n"
    "  --time-dim N        the time position embedding's width (default 128)\n"
    "  --feature-dim N     the feature embedding's width (default 16)\n"
    "  --T N               diffusion steps (default 50)\n"
    "  --no-day-of-year    hold the day-of-year calendar values at 0: the model reads the hour\n"
    "                      of the day but must take the season from the values it is given\n"
    "                      (for test months the training span never shows; allowed with\n"
    "                      --init)\n"
    "  --schedule NAME     quad (CSDI's, default), linear, cosine or poly2 (EDM's)\n"
    "training:\n"
    "  --steps N           optimiser steps (default 3000)\n"
    "  --minutes M         stop when the run has trained M minutes, counted over resumes as\n"
    "                      --steps counts steps (default: no limit; 0 lifts a resumed run's)\n"
    "  --batch N           windows per step (default 16)\n"
    "  --lr X              peak learning rate (default 1e-3), divided by 10 at 75% and at 90%\n"
    "                      of the run (CSDI's schedule; of --steps, or of --minutes when that\n"
    "                      comes first), after 100 warm-up steps\n"
    "  --ema DECAY         EMA decay of the weights that model.safetensors holds; 0 keeps none,\n"
    "                      so it holds the last weights (default 0.999)\n"
    "  --seed N            (default 1)\n"
    "  --save-every N      checkpoint every N steps (default 500)\n"
    "  --log-every N       a metrics.csv line every N steps (default 10)\n"
    "  --resume            continue RUNDIR/last.safetensors with the run's own --batch and,\n"
    "                      unless given, its --data, --columns, --until, --lr, --ema,\n"
    "                      --steps, --minutes, --save-every and --log-every, so that its\n"
    "                      learning-rate schedule goes on as it was\n"
    "  --threads N         OpenMP threads (default: all)\n"
    "several processes (docs/DISTRIBUTED.md):\n"
    "  mpirun -np N diffuse series train ... trains data-parallel: every rank reads the CSV\n"
    "  (and --resume's checkpoint) and takes its share of every batch; rank 0 alone writes\n"
    "  RUNDIR. N ranks of --threads 1 give what one process of --threads N gives, bit for bit.\n";

typedef struct {
    const char *data, *columns, *until, *out, *init;
    dfs_series_config mc;
    cli_train_args t;
    int window_given, net_given; /* --window; another model option (refused with --init) */
} strain_args;

static int parse_train(strain_args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    dfs_series_config_default(&a->mc);
    a->t = (cli_train_args){.steps = 3000, .batch = 16, .seed = 1, .save_every = 500, .log_every = 10, .lr = 1e-3, .ema = 0.999};
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"columns", required_argument, 0, 'c'}, {"until", required_argument, 0, 'u'},
        {"out", required_argument, 0, 'o'}, {"window", required_argument, 0, 'w'}, {"channels", required_argument, 0, 'C'},
        {"layers", required_argument, 0, 'L'}, {"heads", required_argument, 0, 'H'}, {"ff", required_argument, 0, 'F'},
        {"time-dim", required_argument, 0, 'E'}, {"feature-dim", required_argument, 0, 'G'}, {"T", required_argument, 0, 'T'},
        {"schedule", required_argument, 0, 'S'}, {"init", required_argument, 0, 'i'},
        {"no-day-of-year", no_argument, 0, 'Y'}, CLI_TRAIN_OPTIONS,
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    long v;
    dfs_csdi_config *n = &a->mc.net;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': a->data = optarg; break;
        case 'c': a->columns = optarg; break;
        case 'u': a->until = optarg; break;
        case 'o': a->out = optarg; break;
        case 'i': a->init = optarg; break;
        case 'Y': a->mc.no_day_of_year = 1; break;
        case 'w': if (cli_int("--window", optarg, 2, 100000, &v)) return 2; a->mc.window = (int)v; a->window_given = 1; break;
        case 'C': a->net_given = 1; if (cli_int("--channels", optarg, 1, 4096, &v)) return 2; n->channels = (int)v; break;
        case 'L': a->net_given = 1; if (cli_int("--layers", optarg, 1, 64, &v)) return 2; n->layers = (int)v; break;
        case 'H': a->net_given = 1; if (cli_int("--heads", optarg, 1, 4096, &v)) return 2; n->heads = (int)v; break;
        case 'F': a->net_given = 1; if (cli_int("--ff", optarg, 1, 16384, &v)) return 2; n->ff = (int)v; break;
        case 'E': a->net_given = 1; if (cli_int("--time-dim", optarg, 0, 4096, &v)) return 2; n->time_dim = (int)v; break; /* 1: refused by the config check */
        case 'G': a->net_given = 1; if (cli_int("--feature-dim", optarg, 0, 4096, &v)) return 2; n->feature_dim = (int)v; break;
        case 'T': a->net_given = 1; if (cli_int("--T", optarg, 1, 100000, &v)) return 2; a->mc.T = (int)v; break;
        case 'S':
            a->net_given = 1;
            if ((a->mc.schedule = dfs_schedule_from_name(optarg)) < 0)
                return cli_fail("--schedule must be quad, linear, cosine or poly2, not '%s'", optarg);
            break;
        case 'h': fputs(train_help, stdout); fputs(cli_mpi_help, stdout); return 0;
        default:
            if ((v = cli_train_option(o, optarg, &a->t)) < 0) return cli_bad_option("series train", argv);
            if (v) return (int)v;
            break;
        }
    }
    if (optind < argc) return cli_fail("series train: unexpected argument '%s'", argv[optind]);
    if (!a->out) return cli_fail("series train: --out RUNDIR is required");
    if (!a->until && !a->t.resume) return cli_fail("series train: --until DATE (the end of the training span) is required");
    if (a->init && a->t.resume)
        return cli_fail("series train: --init starts a new run and --resume continues one; give one of them");
    if (a->init && a->net_given)
        return cli_fail("series train: --init takes the network, T and schedule from %s; only --window may change", a->init);
    return -1;
}

static int series_train_run(int argc, char **argv);

/* Over several processes (cli/mpi.c) every rank runs the same trainer on the same batches and
 * takes its share of each; rank 0 alone writes the run folder and speaks. */
static int series_train(int argc, char **argv) {
    int rc = cli_mpi_start("series train");
    return cli_mpi_end(rc ? rc : series_train_run(argc, argv));
}

/* A checksum of what every rank must share before the first step (cli_mpi_same). */
static uint64_t series_checksum(dfs_series_model *m, const dfs_train_state *st, const dfs_series *s) {
    const dfs_params *p = dfs_csdi_params(m->net);
    uint64_t h = CLI_FNV_SEED;
    const float *blocks[4] = {p->data, p->ema, p->m, p->v};
    for (int k = 0; k < 4; k++)
        if (blocks[k]) h = cli_fnv(h, blocks[k], p->n * sizeof(float));
    const long n[4] = {st->step, st->images_seen, s->n_steps, s->n_features};
    h = cli_fnv(h, n, sizeof n);
    h = cli_fnv(h, &st->seed, sizeof st->seed);
    h = cli_fnv(h, st->rng.s, sizeof st->rng.s);
    h = cli_fnv(h, s->values, (size_t)s->n_steps * s->n_features * sizeof *s->values);
    return cli_fnv(h, s->observed, (size_t)s->n_steps * s->n_features * sizeof *s->observed);
}

/* The training loop's (cli/train_loop.h) two calls on a series run. */
typedef struct {
    dfs_series_model *m;
    dfs_series_trainer *tr;
    dfs_train_state *st;
    const char *train_json;
} series_loop_user;

static dfs_status series_loop_step(void *user, float lr, float *loss) {
    series_loop_user *u = user;
    dfs_series_trainer_set_lr(u->tr, lr);
    return dfs_series_trainer_step(u->tr, loss);
}

static dfs_status series_loop_save(void *user, const char *path, int full) {
    series_loop_user *u = user;
    return dfs_series_save(path, u->m, full ? u->st : NULL, u->train_json, full ? DFS_CKPT_FULL : DFS_CKPT_SAMPLING);
}

/* --init: a new model of the configuration of a->init (its window replaced by --window when
 * given), normalised on this run's own training span, with the weights and EMA of a->init. */
static int init_model(const strain_args *a, const dfs_series *s, int train_end, dfs_series_model **out) {
    dfs_series_model *m0 = NULL, *m = NULL;
    dfs_status ds = dfs_series_load(a->init, &m0, NULL, NULL, NULL);
    if (ds != DFS_OK) return cli_fail_status(ds);
    dfs_series_config c = m0->cfg;
    if (a->window_given) c.window = a->mc.window;
    if (a->mc.no_day_of_year) c.no_day_of_year = 1;
    int rc = 0;
    if (m0->K != s->n_features) rc = cli_fail("series train: %s has %d feature(s), and --columns gives %d", a->init, m0->K, s->n_features);
    for (int k = 0; !rc && k < m0->K; k++)
        if (strcmp(m0->names[k], s->names[k]))
            rc = cli_fail("series train: feature %d of %s is '%s', and of --columns '%s'", k + 1, a->init, m0->names[k], s->names[k]);
    if (!rc && m0->step != s->step)
        rc = cli_fail("series train: %s was trained at a step of %lld s, and %s has %lld s", a->init, (long long)m0->step,
                      a->data ? a->data : "the data", (long long)s->step);
    if (!rc && (ds = dfs_series_model_new(&m, &c, s, train_end, (uint64_t)a->t.seed)) != DFS_OK) rc = cli_fail_status(ds);
    if (!rc) {
        dfs_params *p = dfs_csdi_params(m->net);
        const dfs_params *p0 = dfs_csdi_params(m0->net);
        if (p->n != p0->n) {
            /* the net has no weight per time step, so a window does not change the count */
            rc = cli_fail("series train: %s has %zu parameters and the model at --window %d %zu: they cannot be copied",
                          a->init, p0->n, c.window, p->n);
        } else {
            memcpy(p->data, p0->data, p->n * sizeof(float));
            memcpy(p->ema, p0->ema, p->n * sizeof(float));
            m->sampling = m0->sampling;
        }
        for (int k = 0; !rc && k < m->K; k++)
            if (fabs(m->mean[k] - m0->mean[k]) > 1e-9 * m0->sd[k] || fabs(m->sd[k] - m0->sd[k]) > 1e-9 * m0->sd[k])
                fprintf(stderr, "series train: note: %s's normalisation of %s (mean %g, sd %g) becomes this span's (%g, %g)\n",
                        a->init, m->names[k], m0->mean[k], m0->sd[k], m->mean[k], m->sd[k]);
    }
    if (!rc) fprintf(stderr, "series train: starting from the weights of %s (window %d -> %d)\n", a->init, m0->cfg.window, c.window);
    dfs_series_model_free(m0);
    if (rc) dfs_series_model_free(m);
    else *out = m;
    return rc;
}

static int series_train_run(int argc, char **argv) {
    strain_args a;
    int rc = parse_train(&a, argc, argv);
    if (rc == 0) return 0; /* --help */
    if (rc > 0) return cli_mpi_agree(rc);
    rc = 0;
    const int lead = cli_mpi_rank() == 0;
    if (a.t.threads > 0) dfs_set_threads((int)a.t.threads);
    if (!rc) rc = cli_train_out_ok("series train", a.out);
    char ckpt[4200], final[4200], csv[4200];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", a.out);
    snprintf(final, sizeof final, "%s/model.safetensors", a.out);
    snprintf(csv, sizeof csv, "%s/metrics.csv", a.out);
    dfs_series_model *m = NULL;
    dfs_train_state st;
    memset(&st, 0, sizeof st);
    dfs_status ds;
    struct stat sb;
    cJSON *rec = NULL; /* a resumed run's record: its data, span and settings */
    if (rc) {
    } else if (a.t.resume) {
        int has_optim = 0;
        char *json = NULL;
        if ((ds = dfs_series_load(ckpt, &m, &st, &has_optim, &json)) != DFS_OK) rc = cli_fail_status(ds);
        else if (!has_optim) rc = cli_fail("series train: %s holds no optimiser state to resume", ckpt);
        else if (cli_train_restore("series train", json, &a.t, &rec)) rc = 2;
        free(json);
        if (!rc) {
            cli_train_restore_text("series train", rec, "data", "--data", &a.data);
            if (!a.columns) /* other columns: the model's check below says which it lacks */
                cli_train_restore_text("series train", rec, "columns", "--columns", &a.columns);
            cli_train_restore_text("series train", rec, "until", "--until", &a.until);
            cli_train_restore_text("series train", rec, "init", "--init", &a.init); /* kept in the record */
            if (a.data && !*a.data) a.data = NULL; /* recorded as "" when the run had none */
            if (a.columns && !*a.columns) a.columns = NULL; /* "": all of them */
        }
        if (!rc && !a.until) rc = cli_fail("series train: %s records no --until; give it", ckpt);
    } else if (lead && stat(ckpt, &sb) == 0) {
        rc = cli_fail("series train: %s already holds a run (%s); continue it with --resume or choose another --out",
                      a.out, ckpt);
    }
    /* up to the first step a failure sets rc and skips the rest, so that every rank reaches
     * cli_mpi_agree below and a failure on one rank stops them all */
    dfs_series s;
    memset(&s, 0, sizeof s);
    int train_end = 0;
    if (!rc && series_load("train", a.data, a.columns, &s)) rc = 2;
    if (!rc && series_rows_until("train", &s, a.until, &train_end)) rc = 2;
    if (!rc && !a.t.resume && a.init) {
        if (init_model(&a, &s, train_end, &m)) rc = 2;
    } else if (!rc && !a.t.resume) {
        if ((ds = dfs_series_model_new(&m, &a.mc, &s, train_end, (uint64_t)a.t.seed)) != DFS_OK) rc = cli_fail_status(ds);
    }
    if (!rc && !a.t.resume) {
        st.seed = (uint64_t)a.t.seed;
        dfs_rng_seed(&st.rng, (uint64_t)a.t.seed ^ 0x5eed5eedULL);
    }
    dfs_series_train_config tc;
    dfs_series_train_config_default(&tc);
    tc.batch = (int)a.t.batch;
    tc.opt.lr = (float)a.t.lr;
    tc.opt.ema_decay = (float)a.t.ema;
    dfs_series_trainer *tr = NULL;
    if (!rc && (ds = dfs_series_trainer_new(&tr, m, &tc, &s, train_end, &st)) != DFS_OK) rc = cli_fail_status(ds);
    FILE *mf = NULL;
    if (lead && !rc && mkdir(a.out, 0777) != 0 && errno != EEXIST) rc = cli_fail("cannot create %s: %s", a.out, strerror(errno));
    if (lead && !rc && !(mf = fopen(csv, a.t.resume ? "a" : "w"))) rc = cli_fail("cannot write %s: %s", csv, strerror(errno));
    if (mf && !rc && ftell(mf) == 0) fputs("step,loss,lr,windows_seen,windows_per_s,elapsed_s\n", mf);
    /* the training record, "train" in the checkpoints */
    cJSON *tr_json = cJSON_CreateObject();
    cJSON_AddStringToObject(tr_json, "data", a.data ? a.data : "");
    cJSON_AddStringToObject(tr_json, "columns", a.columns ? a.columns : "");
    cJSON_AddStringToObject(tr_json, "until", a.until ? a.until : "");
    if (a.init) cJSON_AddStringToObject(tr_json, "init", a.init);
    char *tj = cli_train_record(tr_json, &a.t) ? NULL : cJSON_PrintUnformatted(tr_json);
    cJSON_Delete(tr_json);
    if (!rc && !tj) rc = cli_fail("series train: out of memory");
    rc = cli_mpi_agree(rc); /* a rank that failed said why */
    if (!rc) rc = cli_mpi_same(series_checksum(m, &st, &s), "weights, training state or data");
    if (!lead) {
    } else if (!rc && st.step >= a.t.steps)
        fprintf(stderr, "series train: %s is already at step %ld (--steps %ld): nothing to train\n", a.out, st.step, a.t.steps);
    else if (!rc && a.t.minutes > 0 && st.wall_seconds >= a.t.minutes * 60)
        fprintf(stderr, "series train: %s has trained %.1f minutes already (--minutes %g): nothing to train\n", a.out,
                st.wall_seconds / 60, a.t.minutes);
    if (!rc && lead)
        fprintf(stderr, "series train: %d features (%s%s), %d training rows to %s, %d windows of %d steps; CSDI %zu "
                        "parameters (%d channels, %d layers), %s schedule, T = %d\n",
                m->K, m->names[0], m->K > 1 ? ", ..." : "", train_end, a.until, dfs_series_trainer_windows(tr),
                m->cfg.window, dfs_csdi_params(m->net)->n, m->cfg.net.channels, m->cfg.net.layers,
                dfs_schedule_names[m->cfg.schedule], m->cfg.T);
    series_loop_user u = {m, tr, &st, tj};
    cli_train_loop L = {.cmd = "series train", .unit = "windows", .resumed = a.t.resume, .ckpt = ckpt, .final = final,
                        .csv = csv, .metrics = mf,
                        .steps = a.t.steps, .batch = a.t.batch, .save_every = a.t.save_every, .log_every = a.t.log_every,
                        .minutes = a.t.minutes, .lr = a.t.lr, .ema = a.t.ema, .warmup = tc.opt.warmup, .user = &u,
                        .step = series_loop_step, .save = series_loop_save};
    if (!rc) rc = cli_train_loop_run(&L, &st);
    if (mf && fclose(mf) != 0 && !rc) rc = cli_fail("cannot write %s: %s", csv, strerror(errno));
    cJSON_free(tj);
    cJSON_Delete(rec);
    dfs_series_trainer_free(tr);
    dfs_series_model_free(m);
    dfs_series_free(&s);
    return rc;
}

/* ---- sampling: forecast and impute --------------------------------------------------------- */

typedef struct {
    const char *model, *input, *times, *out;
    long horizon, samples, steps, use_context, seed, chunk, block;
    double eta, noise_scale; /* noise_scale -1: not given */
    int sampler, raw, var_beta;
} ssample_args;

static const char sampling_help[] =
    "sampling:\n"
    "  --samples N         samples per window (default 100)\n"
    "  --sampler NAME      ddpm (ancestral, CSDI's; default) or ddim; the model's recorded\n"
    "                      sampler when it has one\n"
    "  --steps N           timesteps visited (default: all T for ddpm, the model's recipe)\n"
    "  --eta X             DDIM's eta (default 0)\n"
    "  --variance V        ddpm's reverse-step variance: beta-tilde (or tilde; the posterior's,\n"
    "                      CSDI's) or beta (beta_t, larger: wider samples); default the\n"
    "                      model's recipe, else beta-tilde\n"
    "  --noise-scale S     ddpm: multiply the noise each step adds by S in [0, 1] (default:\n"
    "                      the model's recipe, else 1); below 1 a lower-temperature sampler\n"
    "  --seed N            (default 1)\n"
    "  --raw               the live weights instead of the EMA (a training checkpoint)\n"
    "  --times T.npy       (windows, steps) float64 seconds since 1970 UTC of the input's steps\n"
    "                      (the calendar values); default: PREFIX-times.npy beside a\n"
    "                      PREFIX-context.npy or PREFIX-values.npy from 'series windows'\n";

static const char forecast_help[] =
    "usage: diffuse series forecast --model M --context CTX --horizon H --out F.npy|F.csv [options]\n"
    "\n"
    "Draw --samples continuations of --horizon steps after each context window. CTX is a float32\n"
    ".npy (windows, steps, features) in the data's units with NaN where missing (as 'series\n"
    "windows' writes), or a CSV with the model's columns (one window: all its rows). F is\n"
    "(windows, samples, horizon, features) in the data's units, or a CSV of rows window,\n"
    "sample, time, features. The model sees the last (its window - H) steps of each context\n"
    "(--use-context to change).\n"
    "  --model M           a series model (diffuse series train's model.safetensors)\n"
    "  --context CTX\n"
    "  --horizon H\n"
    "  --use-context N     context steps the model sees (default: its window - H)\n"
    "  --block B           draw the horizon B steps at a time: every sample path goes on from\n"
    "                      its own past, each block seeing the last (window - B) steps of the\n"
    "                      context and of the path's earlier blocks (autoregressive rollout:\n"
    "                      more context than one pass of a long horizon allows, at H / B\n"
    "                      passes). Default: the whole horizon in one pass\n"
    "  --out F\n";

static const char impute_help[] =
    "usage: diffuse series impute --model M --values V.npy|V.csv --out F.npy [options]\n"
    "\n"
    "Fill the missing entries (NaN, or an empty field or a missing row of a CSV) of each window\n"
    "with --samples draws; the given entries come back unchanged, bit for bit. V is a float32\n"
    ".npy (windows, steps, features) or a CSV with the model's columns (one window; cut into\n"
    "pieces of --chunk steps that are imputed one by one). F is (windows, samples, steps,\n"
    "features).\n"
    "  --model M\n"
    "  --values V\n"
    "  --chunk N           a CSV's piece length (default: the model's window)\n"
    "  --out F\n";

static int parse_sampling(ssample_args *a, int argc, char **argv, int forecast) {
    memset(a, 0, sizeof *a);
    a->samples = 100, a->seed = 1, a->sampler = -1, a->var_beta = -1, a->noise_scale = -1;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'M'}, {"context", required_argument, 0, 'c'}, {"values", required_argument, 0, 'V'},
        {"horizon", required_argument, 0, 'H'}, {"samples", required_argument, 0, 'n'}, {"sampler", required_argument, 0, 'k'},
        {"steps", required_argument, 0, 's'}, {"eta", required_argument, 0, 'e'}, {"seed", required_argument, 0, 'S'},
        {"raw", no_argument, 0, 'r'}, {"times", required_argument, 0, 't'}, {"use-context", required_argument, 0, 'u'},
        {"chunk", required_argument, 0, 'C'}, {"out", required_argument, 0, 'o'}, {"variance", required_argument, 0, 'v'},
        {"block", required_argument, 0, 'B'}, {"noise-scale", required_argument, 0, 'N'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = forecast ? "series forecast" : "series impute";
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'M': a->model = optarg; break;
        case 'c': if (!forecast) return cli_fail("%s: --context is forecast's; give --values", cmd); a->input = optarg; break;
        case 'V': if (forecast) return cli_fail("%s: --values is impute's; give --context", cmd); a->input = optarg; break;
        case 'H':
            if (!forecast) return cli_fail("%s: --horizon is forecast's", cmd);
            if (cli_int("--horizon", optarg, 1, 100000, &a->horizon)) return 2;
            break;
        case 'n': if (cli_int("--samples", optarg, 1, 100000, &a->samples)) return 2; break;
        case 'k':
            if ((a->sampler = dfs_sampler_from_name(optarg)) < 0 || (a->sampler != DFS_SAMPLER_DDPM && a->sampler != DFS_SAMPLER_DDIM))
                return cli_fail("%s: --sampler must be ddpm or ddim, not '%s'", cmd, optarg);
            break;
        case 's': if (cli_int("--steps", optarg, 1, 100000, &a->steps)) return 2; break;
        case 'e': if (cli_float("--eta", optarg, 0, 10, &a->eta)) return 2; break;
        case 'N': if (cli_float("--noise-scale", optarg, 0, 1, &a->noise_scale)) return 2; break;
        case 'S': if (cli_int("--seed", optarg, 0, 1L << 62, &a->seed)) return 2; break;
        case 'r': a->raw = 1; break;
        case 't': a->times = optarg; break;
        case 'u': if (cli_int("--use-context", optarg, 1, 100000, &a->use_context)) return 2; break;
        case 'C': if (cli_int("--chunk", optarg, 1, 100000, &a->chunk)) return 2; break;
        case 'B':
            if (!forecast) return cli_fail("%s: --block is forecast's", cmd);
            if (cli_int("--block", optarg, 1, 100000, &a->block)) return 2;
            break;
        case 'v':
            if (strcmp(optarg, "beta-tilde") && strcmp(optarg, "tilde") && strcmp(optarg, "beta"))
                return cli_fail("%s: --variance must be beta-tilde (or tilde) or beta, not '%s'", cmd, optarg);
            a->var_beta = !strcmp(optarg, "beta");
            break;
        case 'o': a->out = optarg; break;
        case 'h': printf("%s\n%s", forecast ? forecast_help : impute_help, sampling_help); return 0;
        default: return cli_bad_option(cmd, argv);
        }
    }
    if (optind < argc) return cli_fail("%s: unexpected argument '%s'", cmd, argv[optind]);
    if (!a->model || !a->input || !a->out) return cli_fail("%s: --model, --%s and --out are required", cmd, forecast ? "context" : "values");
    if (forecast && !a->horizon) return cli_fail("%s: --horizon is required", cmd);
    if (a->block && a->use_context) return cli_fail("%s: --block and --use-context do not go together", cmd);
    if (cli_out_ok(cmd, "--out", a->out)) return 2;
    return -1;
}

/* The input windows: X (W, L, K) in the model's feature order, NaN where missing, and the
 * timestamps (W, L). From a .npy (and its times) or a CSV (one window). 0 or 2. */
static int read_input(const char *cmd, const ssample_args *a, const dfs_series_model *m, float **X, int64_t **T,
                      int *W, int *L) {
    *X = NULL, *T = NULL;
    const int K = m->K;
    if (ends_with(a->input, ".csv")) {
        dfs_series s;
        const char *cols[4096];
        for (int k = 0; k < K; k++) cols[k] = m->names[k];
        dfs_csv_options o = {.columns = cols, .n_columns = K, .step = m->step};
        dfs_status st = dfs_csv_load_series(&s, a->input, &o);
        if (st != DFS_OK) return cli_fail_status(st);
        *W = 1, *L = s.n_steps;
        *X = malloc((size_t)s.n_steps * K * sizeof(float));
        *T = malloc((size_t)s.n_steps * sizeof(int64_t));
        if (!*X || !*T) {
            dfs_series_free(&s);
            return cli_fail("%s: out of memory", cmd);
        }
        for (size_t j = 0; j < (size_t)s.n_steps * K; j++) (*X)[j] = s.observed[j] ? s.values[j] : NAN;
        memcpy(*T, s.times, (size_t)s.n_steps * sizeof(int64_t));
        dfs_series_free(&s);
        return 0;
    }
    size_t sh[DFS_MAXDIM], ts[DFS_MAXDIM];
    int nd, td;
    dfs_status st = dfs_npy_read_f32(a->input, X, &nd, sh);
    if (st != DFS_OK) return cli_fail_status(st);
    if (nd != 3 || (int)sh[2] != K || sh[0] < 1 || sh[1] < 1 || sh[0] > 10000000 || sh[1] > 100000)
        return cli_fail("%s: %s must be (windows, steps, %d features: %s%s)", cmd, a->input, K, m->names[0], K > 1 ? ", ..." : "");
    *W = (int)sh[0], *L = (int)sh[1];
    char tp[4200];
    const char *times = a->times;
    if (!times) {
        size_t n = strlen(a->input);
        const char *suf = ends_with(a->input, "-context.npy") ? "-context.npy" : ends_with(a->input, "-values.npy") ? "-values.npy" : NULL;
        if (!suf) return cli_fail("%s: give --times T.npy: the model needs each step's date for its calendar values", cmd);
        snprintf(tp, sizeof tp, "%.*s-times.npy", (int)(n - strlen(suf)), a->input);
        times = tp;
    }
    double *td64;
    if ((st = dfs_npy_read_f64(times, &td64, &td, ts)) != DFS_OK) return cli_fail_status(st);
    if (td != 2 || (int)ts[0] != *W || (int)ts[1] != *L) {
        free(td64);
        return cli_fail("%s: %s must be (windows, steps) = (%d, %d)", cmd, times, *W, *L);
    }
    *T = malloc((size_t)*W * *L * sizeof(int64_t));
    if (!*T) {
        free(td64);
        return cli_fail("%s: out of memory", cmd);
    }
    for (size_t j = 0; j < (size_t)*W * *L; j++) {
        if (!(fabs(td64[j]) < 1e15)) {
            free(td64);
            return cli_fail("%s: %s holds a time that is not a number of seconds", cmd, times);
        }
        (*T)[j] = (int64_t)td64[j];
    }
    free(td64);
    return 0;
}

typedef struct {
    cli_progress bar;
    long done;
} sample_progress;

static void on_step(void *user, int i, int steps, int t, const float *x, int n) {
    (void)i, (void)steps, (void)t, (void)x, (void)n;
    sample_progress *p = user;
    p->done++;
    cli_progress_update(&p->bar, p->done, CLI_ETA_AUTO, NULL);
}

/* Fill the request's sampler from the options and the model's recipe: 0, or 2 after a one-line
 * message (a noise scale with a sampler other than ddpm). */
static int sampler_of(const char *cmd, const ssample_args *a, const dfs_series_model *m, dfs_sampler_config *c) {
    dfs_sampler_config_default(c);
    c->kind = a->sampler >= 0 ? (dfs_sampler_kind)a->sampler : m->sampling.set ? m->sampling.kind : DFS_SAMPLER_DDPM;
    c->steps = a->steps ? (int)a->steps : m->sampling.set && (a->sampler < 0 || a->sampler == (int)m->sampling.kind)
                                              ? m->sampling.steps : m->cfg.T;
    if (c->steps > m->cfg.T) c->steps = m->cfg.T;
    c->eta = (float)a->eta;
    /* the recipe's variance goes with the recipe's sampler */
    const int recipe = m->sampling.set && c->kind == m->sampling.kind;
    c->var_beta_tilde = a->var_beta >= 0 ? !a->var_beta : !(recipe && m->sampling.var_beta);
    return cli_noise_scale(cmd, a->noise_scale, c->kind, &m->sampling, &c->noise_scale);
}

static int write_output(const char *cmd, const char *out, const float *F, int W, int S, int H, const dfs_series_model *m,
                        const int64_t *times) {
    const int K = m->K;
    if (!ends_with(out, ".csv")) {
        size_t shape[4] = {(size_t)W, (size_t)S, (size_t)H, (size_t)K};
        return series_write_npy(out, F, 4, shape);
    }
    /* a CSV: window, sample, time, features; written to memory, then atomically */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return cli_fail("%s: out of memory", cmd);
    fprintf(f, "window,sample,time");
    for (int k = 0; k < K; k++) fprintf(f, ",%s", m->names[k]);
    fputc('\n', f);
    for (int w = 0; w < W; w++)
        for (int q = 0; q < S; q++)
            for (int h = 0; h < H; h++) {
                time_t tt = (time_t)times[(size_t)w * H + h];
                struct tm tm;
                char ts[32];
                gmtime_r(&tt, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
                fprintf(f, "%d,%d,%s", w, q, ts);
                for (int k = 0; k < K; k++) fprintf(f, ",%.9g", F[(((size_t)w * S + q) * H + h) * K + k]);
                fputc('\n', f);
            }
    if (fclose(f) != 0) {
        free(buf);
        return cli_fail("%s: out of memory", cmd);
    }
    dfs_status st = dfs_write_atomic(out, buf, len);
    free(buf);
    return st == DFS_OK ? 0 : cli_fail_status(st);
}

/* --block: the forecast of W windows drawn B steps at a time, every one of the S sample paths a
 * window of its own (one sample each), its history the context's L rows and the blocks drawn
 * so far; each block sees the last min(window - B, rows so far) of them. out (W, S, H, K) and
 * TH (W, H), the horizon's times; sc the sampler (sampler_of). 0 or 2. */
static int forecast_blocks(const char *cmd, const ssample_args *a, const dfs_sampler_config *sc, dfs_series_model *m,
                           const float *X, const int64_t *T, int W, int L, float *out, int64_t *TH) {
    const int K = m->K, S = (int)a->samples, H = (int)a->horizon, B = (int)a->block, P = W * S;
    const int Cm = m->cfg.window - B;
    if (Cm < 1) return cli_fail("%s: --block %d leaves no context in the model's window of %d", cmd, B, m->cfg.window);
    const size_t Lh = (size_t)L + H, Lw = (size_t)m->cfg.window;
    float *hist = malloc((size_t)P * Lh * K * sizeof(float)), *V = malloc((size_t)P * Lw * K * sizeof(float));
    float *F = malloc((size_t)P * Lw * K * sizeof(float));
    int64_t *ht = malloc((size_t)W * Lh * sizeof(int64_t)), *TW = malloc((size_t)P * Lw * sizeof(int64_t));
    uint8_t *known = malloc((size_t)P * Lw * K);
    int rc = !hist || !V || !F || !ht || !TW || !known ? cli_fail("%s: out of memory for %d x %d paths", cmd, W, S) : 0;
    for (int p = 0; !rc && p < P; p++)
        memcpy(hist + (size_t)p * Lh * K, X + (size_t)(p / S) * L * K, (size_t)L * K * sizeof(float));
    for (int w = 0; !rc && w < W; w++)
        for (size_t l = 0; l < Lh; l++)
            ht[w * Lh + l] = l < (size_t)L ? T[(size_t)w * L + l] : T[(size_t)w * L + L - 1] + (int64_t)(l - L + 1) * m->step;
    dfs_series_request r;
    dfs_series_request_default(&r);
    r.sampler = *sc;
    const int nblocks = (H + B - 1) / B;
    long total = 0; /* groups of every block: the first blocks see fewer steps */
    for (int h0 = 0; h0 < H; h0 += B) {
        const int b = H - h0 < B ? H - h0 : B, Lm = (L + h0 < Cm ? L + h0 : Cm) + b;
        const int G = dfs_series_group_windows(m, P, Lm, 1);
        total += (P + G - 1) / G;
    }
    sample_progress pr = {0};
    cli_progress_start(&pr.bar, "sampler steps", total * r.sampler.steps, 0, 10);
    fprintf(stderr, "%s: %d window(s) x %d samples, %d block(s) of up to %d steps, each seeing up to %d steps; %s, %d steps%s%s\n",
            cmd, W, S, nblocks, B, Cm, dfs_sampler_names[r.sampler.kind], r.sampler.steps,
            r.sampler.kind != DFS_SAMPLER_DDPM ? "" : r.sampler.var_beta_tilde ? ", variance beta-tilde" : ", variance beta",
            cli_noise_note(r.sampler.noise_scale));
    dfs_rng rng;
    dfs_rng_seed(&rng, (uint64_t)a->seed);
    const double t0 = cli_now();
    for (int h0 = 0; !rc && h0 < H; h0 += B) {
        const int b = H - h0 < B ? H - h0 : B, C = L + h0 < Cm ? L + h0 : Cm, Lm = C + b;
        const size_t D = (size_t)Lm * K;
        for (int p = 0; p < P; p++) {
            const int w = p / S, r0 = L + h0 - C; /* the first history row the block sees */
            for (int l = 0; l < Lm; l++) {
                for (int k = 0; k < K; k++) {
                    const float v = l < C ? hist[((size_t)p * Lh + r0 + l) * K + k] : NAN;
                    V[p * D + (size_t)l * K + k] = v;
                    known[p * D + (size_t)l * K + k] = isfinite(v);
                }
                TW[(size_t)p * Lm + l] = ht[(size_t)w * Lh + r0 + l];
            }
        }
        r.values = V, r.known = known, r.times = TW, r.W = P, r.L = Lm, r.S = 1, r.raw = a->raw;
        r.cb = on_step, r.cb_user = &pr;
        dfs_status ds = dfs_series_sample(m, &r, &rng, F);
        if (ds != DFS_OK) rc = cli_fail_status(ds);
        for (int p = 0; !rc && p < P; p++) /* the block's new steps join the path */
            memcpy(hist + ((size_t)p * Lh + L + h0) * K, F + (p * D + (size_t)C * K), (size_t)b * K * sizeof(float));
    }
    cli_progress_end(&pr.bar);
    if (!rc) fprintf(stderr, "%s: %.1f s\n", cmd, cli_now() - t0);
    for (int p = 0; !rc && p < P; p++)
        memcpy(out + (size_t)p * H * K, hist + ((size_t)p * Lh + L) * K, (size_t)H * K * sizeof(float));
    for (int w = 0; !rc && w < W; w++) memcpy(TH + (size_t)w * H, ht + (size_t)w * Lh + L, (size_t)H * sizeof(int64_t));
    free(hist), free(V), free(F), free(ht), free(TW), free(known);
    return rc;
}

static int series_sampling(int argc, char **argv, int forecast) {
    const char *cmd = forecast ? "series forecast" : "series impute";
    ssample_args a;
    int rc = parse_sampling(&a, argc, argv, forecast);
    if (rc >= 0) return rc;
    rc = 0;
    dfs_series_model *m;
    dfs_status ds = dfs_series_load(a.model, &m, NULL, NULL, NULL);
    if (ds != DFS_OK) return cli_fail_status(ds);
    const int K = m->K, S = (int)a.samples;
    float *X = NULL, *V = NULL, *F = NULL, *out = NULL;
    int64_t *T = NULL, *TW = NULL;
    uint8_t *known = NULL;
    int W = 0, L = 0;
    dfs_sampler_config sc;
    rc = sampler_of(cmd, &a, m, &sc);
    if (!rc) rc = read_input(cmd, &a, m, &X, &T, &W, &L);
    if (!rc && forecast && (!a.block || a.block < m->cfg.window)) { /* a horizon (or block) past the training masks' */
        const long h = a.block && a.block < a.horizon ? a.block : a.horizon;
        const int hmax = dfs_series_forecast_max(&m->cfg);
        if (h > hmax)
            fprintf(stderr, "%s: note: the model was trained on windows of %d steps, whose forecast masks hide at most the "
                            "last %d; %s of %ld is longer (train at a window of %ld or more: --init lets a run start "
                            "from this model)\n",
                    cmd, m->cfg.window, hmax, a.block && a.block < a.horizon ? "a block" : "a horizon", h, (h * 10 + 2) / 3);
    }
    if (!rc && forecast && a.block && a.block < a.horizon) { /* in blocks (a block of H is one pass) */
        out = malloc((size_t)W * S * a.horizon * K * sizeof(float));
        int64_t *TH = malloc((size_t)W * a.horizon * sizeof(int64_t));
        rc = !out || !TH ? cli_fail("%s: out of memory", cmd) : forecast_blocks(cmd, &a, &sc, m, X, T, W, L, out, TH);
        if (!rc) rc = write_output(cmd, a.out, out, W, S, (int)a.horizon, m, TH);
        if (!rc) fprintf(stderr, "wrote %s\n", a.out);
        free(TH), free(X), free(T), free(out);
        dfs_series_model_free(m);
        return rc;
    }
    /* the windows the model sees: forecast: the last C context steps and H new ones; impute:
     * the input itself, a CSV cut into chunks */
    int C = 0, H = (int)a.horizon, Lm = L, nwin = W;
    if (!rc && forecast) {
        C = a.use_context ? (int)a.use_context : m->cfg.window - H;
        if (C < 1) C = L;
        if (C > L) C = L;
        Lm = C + H;
    } else if (!rc && ends_with(a.input, ".csv")) {
        Lm = a.chunk ? (int)a.chunk : m->cfg.window;
        if (Lm > L) Lm = L;
        nwin = (L + Lm - 1) / Lm;
    }
    const size_t Dm = (size_t)Lm * K;
    if (!rc) {
        V = malloc((size_t)nwin * Dm * sizeof(float));
        known = malloc((size_t)nwin * Dm);
        TW = malloc((size_t)nwin * Lm * sizeof(int64_t));
        F = malloc((size_t)nwin * S * Dm * sizeof(float));
        if (!V || !known || !TW || !F) rc = cli_fail("%s: out of memory for %d x %d samples", cmd, nwin, S);
    }
    long given = 0, missing = 0;
    for (int w = 0; !rc && w < nwin; w++) {
        for (int l = 0; l < Lm; l++) {
            /* the source row: forecast: context row L - C + l (l < C); impute: chunk rows, the
             * last chunk of a CSV shifted back to end at the last row */
            int src_w = forecast || nwin == W ? w : 0;
            int row = forecast ? L - C + l : nwin == W ? l : (w * Lm + Lm <= L ? w * Lm : L - Lm) + l;
            for (int k = 0; k < K; k++) {
                float v = forecast && l >= C ? NAN : X[((size_t)src_w * L + row) * K + k];
                V[w * Dm + (size_t)l * K + k] = v;
                known[w * Dm + (size_t)l * K + k] = isfinite(v);
                given += isfinite(v);
                missing += !isfinite(v);
            }
            TW[(size_t)w * Lm + l] = forecast && l >= C ? T[(size_t)w * L + L - 1] + (int64_t)(l - C + 1) * m->step
                                                        : T[(size_t)src_w * L + row];
        }
    }
    if (!rc && missing == 0) rc = cli_fail("%s: nothing to draw: every entry of %s is given", cmd, a.input);
    if (!rc) {
        dfs_series_request r;
        dfs_series_request_default(&r);
        r.values = V, r.known = known, r.times = TW, r.W = nwin, r.L = Lm, r.S = S, r.raw = a.raw;
        r.sampler = sc;
        sample_progress pr = {0};
        const int G = dfs_series_group_windows(m, nwin, Lm, S);
        const long groups = (nwin + G - 1) / G;
        cli_progress_start(&pr.bar, "sampler steps", groups * r.sampler.steps, 0, 10);
        r.cb = on_step, r.cb_user = &pr;
        fprintf(stderr, "%s: %d window(s) of %d steps (%ld given, %ld to draw) x %d samples, %s, %d steps%s%s\n", cmd, nwin, Lm,
                given, missing, S, dfs_sampler_names[r.sampler.kind], r.sampler.steps,
                r.sampler.kind != DFS_SAMPLER_DDPM ? "" : r.sampler.var_beta_tilde ? ", variance beta-tilde" : ", variance beta",
            cli_noise_note(r.sampler.noise_scale));
        dfs_rng rng;
        dfs_rng_seed(&rng, (uint64_t)a.seed);
        double t0 = cli_now();
        ds = dfs_series_sample(m, &r, &rng, F);
        cli_progress_end(&pr.bar);
        if (ds != DFS_OK) rc = cli_fail_status(ds);
        else fprintf(stderr, "%s: %.1f s\n", cmd, cli_now() - t0);
    }
    if (!rc && forecast) { /* keep the horizon */
        out = malloc((size_t)W * S * H * K * sizeof(float));
        int64_t *TH = malloc((size_t)W * H * sizeof(int64_t));
        if (!out || !TH) rc = cli_fail("%s: out of memory", cmd);
        for (int w = 0; !rc && w < W; w++) {
            for (int q = 0; q < S; q++)
                memcpy(out + (((size_t)w * S + q) * H) * K, F + (((size_t)w * S + q) * Lm + C) * K, (size_t)H * K * sizeof(float));
            memcpy(TH + (size_t)w * H, TW + (size_t)w * Lm + C, (size_t)H * sizeof(int64_t));
        }
        if (!rc) rc = write_output(cmd, a.out, out, W, S, H, m, TH);
        free(TH);
    } else if (!rc && nwin != W) { /* a CSV in chunks: put the pieces back together */
        out = malloc((size_t)S * L * K * sizeof(float));
        if (!out) rc = cli_fail("%s: out of memory", cmd);
        for (int w = 0; !rc && w < nwin; w++) {
            const int r0 = w * Lm + Lm <= L ? w * Lm : L - Lm;
            for (int q = 0; q < S; q++)
                for (int l = 0; l < Lm; l++)
                    memcpy(out + ((size_t)q * L + r0 + l) * K, F + (((size_t)w * S + q) * Lm + l) * K, (size_t)K * sizeof(float));
        }
        if (!rc) rc = write_output(cmd, a.out, out, 1, S, L, m, T);
    } else if (!rc) {
        rc = write_output(cmd, a.out, F, W, S, L, m, T);
    }
    if (!rc) fprintf(stderr, "wrote %s\n", a.out);
    free(X);
    free(T);
    free(V);
    free(known);
    free(TW);
    free(F);
    free(out);
    dfs_series_model_free(m);
    return rc;
}

static int series_forecast(int argc, char **argv) { return series_sampling(argc, argv, 1); }
static int series_impute(int argc, char **argv) { return series_sampling(argc, argv, 0); }

int cmd_series(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } subs[] = {{"train", series_train},         {"forecast", series_forecast}, {"impute", series_impute},
                {"windows", series_windows},     {"eval", series_eval},         {"baselines", series_baselines},
                {"plot", series_plot}};
    if (argc < 2) {
        fputs(series_help, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(series_help, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (!strcmp(argv[1], subs[i].name)) return subs[i].run(argc - 1, argv + 1);
    return cli_fail("series: unknown subcommand '%s' (train, forecast, impute, windows, eval, baselines, plot)", argv[1]);
}
