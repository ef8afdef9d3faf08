/* cmd_mol.c - diffuse mol: EDM models of 3-D molecules (train, sample, eval; render is in
 * cmd_mol_render.c). */
#include "common.h"
#include "mpi.h"
#include "progress.h"
#include "sampling.h"
#include "train_loop.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char mol_help[] =
    "usage: diffuse mol SUBCOMMAND [options]\n"
    "\n"
    "3-D molecules with EDM (Hoogeboom et al. 2022): atoms of H, C, N, O and F with positions,\n"
    "diffused jointly with an E(3)-equivariant graph network (docs/MOLECULES.md).\n"
    "\n"
    "  train    train a model on a set of molecules (diffuse data build molecules makes one)\n"
    "  sample   draw molecules from a model, as XYZ or SDF; --fragment completes a given part\n"
    "  eval     atom and molecule stability, validity, uniqueness, novelty (EDM's rules)\n"
    "  render   a PNG grid of molecules, ball and stick, or one denoising trajectory\n"
    "\n"
    "diffuse mol SUBCOMMAND --help tells more.\n";

/* A set of molecules from FILE.xyz, FILE.sdf or DIR (DIR/molecules.xyz). 0, or 2 after a
 * message. */
static int read_set(const char *cmd, const char *spec, dfs_mol_set *set) {
    memset(set, 0, sizeof *set);
    char path[4200];
    struct stat sb;
    if (stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(path, sizeof path, "%s/molecules.xyz", spec);
    else snprintf(path, sizeof path, "%s", spec);
    dfs_status s = ends_with(path, ".sdf") || ends_with(path, ".mol") ? dfs_sdf_read(path, set) : dfs_xyz_read(path, set);
    if (s != DFS_OK) return cli_fail("mol %s: %s", cmd, dfs_last_error());
    if (set->n < 1) {
        dfs_mol_set_free(set);
        return cli_fail("mol %s: %s holds no molecules", cmd, path);
    }
    return 0;
}

/* ---- train --------------------------------------------------------------------------------- */

static const char train_help[] =
    "usage: diffuse mol train --data DIR|FILE.xyz|FILE.sdf --out RUNDIR [options]\n"
    "       diffuse mol train --out RUNDIR --resume [options]\n"
    "\n"
    "Train an EDM model: positions and atom types diffused together (EDM's polynomial schedule),\n"
    "the noise predicted by an EGNN, the loss on every atom present. Writes\n"
    "RUNDIR/last.safetensors (resumable), RUNDIR/model.safetensors (the EMA weights, for\n"
    "sampling) and RUNDIR/metrics.csv. Ctrl-C or SIGTERM saves a checkpoint and exits with 0.\n"
    "\n"
    "  --data SET          the training molecules: a folder from diffuse data build molecules\n"
    "                      (its molecules.xyz), or an XYZ or SDF file; H, C, N, O, F only\n"
    "model (ignored with --resume):\n"
    "  --hidden N          EGNN features per atom (default 64)\n"
    "  --layers N          equivariant blocks (default 4)\n"
    "  --sublayers N       message-passing layers per block (default 1)\n"
    "  --attention 0|1     the gate on each edge's message (default 1)\n"
    "  --T N               diffusion steps (default 1000)\n"
    "  --schedule NAME     poly2 (EDM's, default), linear, cosine or quad\n"
    "training:\n"
    "  --steps N           optimiser steps (default 20000)\n"
    "  --minutes M         stop when the run has trained M minutes, counted over resumes\n"
    "                      (default: no limit; 0 lifts a resumed run's limit)\n"
    "  --batch N           molecules per step (default 64)\n"
    "  --lr X              peak learning rate (default 1e-3), divided by 10 at 75% and at 90%\n"
    "                      of the run (of --steps, or of --minutes when that comes first),\n"
    "                      after 100 warm-up steps\n"
    "  --ema DECAY         EMA decay of the weights that model.safetensors holds; 0 keeps none,\n"
    "                      so it holds the last weights (default 0.999; EDM's QM9 model used\n"
    "                      0.9999)\n"
    "  --seed N            (default 1)\n"
    "  --save-every N      checkpoint every N steps (default 500)\n"
    "  --log-every N       a metrics.csv line every N steps (default 10)\n"
    "  --resume            continue RUNDIR/last.safetensors with the run's own --batch and,\n"
    "                      unless given, its --data, --lr, --ema, --steps, --minutes,\n"
    "                      --save-every and --log-every, so that its learning-rate schedule\n"
    "                      goes on as it was\n"
    "  --threads N         OpenMP threads (default: all)\n"
    "several processes (docs/DISTRIBUTED.md):\n"
    "  mpirun -np N diffuse mol train ... trains data-parallel: every rank reads the data\n"
    "  (and --resume's checkpoint) and takes its share of every batch; rank 0 alone writes\n"
    "  RUNDIR. N ranks of --threads 1 give what one process of --threads N gives, bit for bit.\n";

typedef struct {
    const char *data, *out;
    dfs_mol_config mc;
    cli_train_args t;
} mtrain_args;

static int parse_train(mtrain_args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    dfs_mol_config_default(&a->mc);
    a->t = (cli_train_args){.steps = 20000, .batch = 64, .seed = 1, .save_every = 500, .log_every = 10, .lr = 1e-3, .ema = 0.999};
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"out", required_argument, 0, 'o'}, {"hidden", required_argument, 0, 'C'},
        {"layers", required_argument, 0, 'L'}, {"sublayers", required_argument, 0, 'U'},
        {"attention", required_argument, 0, 'A'}, {"T", required_argument, 0, 'T'},
        {"schedule", required_argument, 0, 'S'}, CLI_TRAIN_OPTIONS,
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    long v;
    dfs_egnn_config *n = &a->mc.net;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': a->data = optarg; break;
        case 'o': a->out = optarg; break;
        case 'C': if (cli_int("--hidden", optarg, 1, 4096, &v)) return 2; n->hidden = (int)v; break;
        case 'L': if (cli_int("--layers", optarg, 1, 64, &v)) return 2; n->layers = (int)v; break;
        case 'U': if (cli_int("--sublayers", optarg, 1, 16, &v)) return 2; n->sublayers = (int)v; break;
        case 'A': if (cli_int("--attention", optarg, 0, 1, &v)) return 2; n->attention = (int)v; break;
        case 'T': if (cli_int("--T", optarg, 2, 100000, &v)) return 2; a->mc.T = (int)v; break;
        case 'S':
            if ((a->mc.schedule = dfs_schedule_from_name(optarg)) < 0)
                return cli_fail("--schedule must be poly2, linear, cosine or quad, not '%s'", optarg);
            break;
        case 'h': fputs(train_help, stdout); fputs(cli_mpi_help, stdout); return 0;
        default:
            if ((v = cli_train_option(o, optarg, &a->t)) < 0) return cli_bad_option("mol train", argv);
            if (v) return (int)v;
            break;
        }
    }
    if (optind < argc) return cli_fail("mol train: unexpected argument '%s'", argv[optind]);
    if (!a->out) return cli_fail("mol train: --out RUNDIR is required");
    if (!a->data && !a->t.resume) return cli_fail("mol train: --data DIR|FILE (the training molecules) is required");
    return -1;
}

typedef struct {
    dfs_mol_model *m;
    dfs_mol_trainer *tr;
    dfs_train_state *st;
    const char *train_json;
} mol_loop_user;

static dfs_status mol_loop_step(void *user, float lr, float *loss) {
    mol_loop_user *u = user;
    dfs_mol_trainer_set_lr(u->tr, lr);
    return dfs_mol_trainer_step(u->tr, loss);
}

static dfs_status mol_loop_save(void *user, const char *path, int full) {
    mol_loop_user *u = user;
    return dfs_mol_save(path, u->m, full ? u->st : NULL, u->train_json, full ? DFS_CKPT_FULL : DFS_CKPT_SAMPLING);
}

/* A checksum of what every rank must share before the first step (cli_mpi_same). */
static uint64_t mol_checksum(dfs_mol_model *m, const dfs_train_state *st, const dfs_mol_set *set) {
    const dfs_params *p = dfs_egnn_params(m->net);
    uint64_t h = CLI_FNV_SEED;
    const float *blocks[4] = {p->data, p->ema, p->m, p->v};
    for (int k = 0; k < 4; k++)
        if (blocks[k]) h = cli_fnv(h, blocks[k], p->n * sizeof(float));
    const long n[3] = {st->step, st->images_seen, set->n};
    h = cli_fnv(h, n, sizeof n);
    h = cli_fnv(h, &st->seed, sizeof st->seed);
    h = cli_fnv(h, st->rng.s, sizeof st->rng.s);
    for (int i = 0; i < set->n; i++) {
        h = cli_fnv(h, set->mols[i].z, (size_t)set->mols[i].n * sizeof(int));
        h = cli_fnv(h, set->mols[i].pos, (size_t)set->mols[i].n * 3 * sizeof(double));
    }
    return h;
}

static int mol_train_run(int argc, char **argv) {
    mtrain_args a;
    int rc = parse_train(&a, argc, argv);
    if (rc == 0) return 0; /* --help */
    if (rc > 0) return cli_mpi_agree(rc);
    rc = 0;
    const int lead = cli_mpi_rank() == 0;
    if (a.t.threads > 0) dfs_set_threads((int)a.t.threads);
    if (!rc) rc = cli_train_out_ok("mol train", a.out);
    char ckpt[4200], final[4200], csv[4200];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", a.out);
    snprintf(final, sizeof final, "%s/model.safetensors", a.out);
    snprintf(csv, sizeof csv, "%s/metrics.csv", a.out);
    dfs_mol_model *m = NULL;
    dfs_train_state st;
    memset(&st, 0, sizeof st);
    dfs_status ds;
    struct stat sb;
    cJSON *rec = NULL; /* a resumed run's record: its data and settings */
    if (rc) {
    } else if (a.t.resume) {
        int has_optim = 0;
        char *json = NULL;
        if ((ds = dfs_mol_load(ckpt, &m, &st, &has_optim, &json)) != DFS_OK) rc = cli_fail_status(ds);
        else if (!has_optim) rc = cli_fail("mol train: %s holds no optimiser state to resume", ckpt);
        else if (cli_train_restore("mol train", json, &a.t, &rec)) rc = 2;
        else cli_train_restore_text("mol train", rec, "data", "--data", &a.data);
        free(json);
        if (!rc && !a.data) rc = cli_fail("mol train: %s names no training data; give --data", ckpt);
    } else if (lead && stat(ckpt, &sb) == 0) {
        rc = cli_fail("mol train: %s already holds a run (%s); continue it with --resume or choose another --out",
                      a.out, ckpt);
    }
    dfs_mol_set set;
    memset(&set, 0, sizeof set);
    if (!rc && read_set("train", a.data, &set)) rc = 2;
    if (!rc && !a.t.resume) {
        if ((ds = dfs_mol_model_new(&m, &a.mc, set.mols, set.n, (uint64_t)a.t.seed)) != DFS_OK)
            rc = cli_fail("mol train: %s: %s", a.data, dfs_last_error());
        st.seed = (uint64_t)a.t.seed;
        dfs_rng_seed(&st.rng, (uint64_t)a.t.seed ^ 0x5eed5eedULL);
    }
    dfs_mol_train_config tc;
    dfs_mol_train_config_default(&tc);
    tc.batch = (int)a.t.batch;
    tc.opt.lr = (float)a.t.lr;
    tc.opt.ema_decay = (float)a.t.ema;
    dfs_mol_trainer *tr = NULL;
    if (!rc && (ds = dfs_mol_trainer_new(&tr, m, &tc, set.mols, set.n, &st)) != DFS_OK)
        rc = cli_fail("mol train: %s: %s", a.data, dfs_last_error());
    FILE *mf = NULL;
    if (lead && !rc && mkdir(a.out, 0777) != 0 && errno != EEXIST) rc = cli_fail("cannot create %s: %s", a.out, strerror(errno));
    if (lead && !rc && !(mf = fopen(csv, a.t.resume ? "a" : "w"))) rc = cli_fail("cannot write %s: %s", csv, strerror(errno));
    if (mf && !rc && ftell(mf) == 0) fputs("step,loss,lr,molecules_seen,molecules_per_s,elapsed_s\n", mf);
    cJSON *tr_json = cJSON_CreateObject();
    cJSON_AddStringToObject(tr_json, "data", a.data ? a.data : "");
    cJSON_AddNumberToObject(tr_json, "molecules", set.n);
    char *tj = cli_train_record(tr_json, &a.t) ? NULL : cJSON_PrintUnformatted(tr_json);
    cJSON_Delete(tr_json);
    if (!rc && !tj) rc = cli_fail("mol train: out of memory");
    rc = cli_mpi_agree(rc); /* a rank that failed said why */
    if (!rc) rc = cli_mpi_same(mol_checksum(m, &st, &set), "weights, training state or data");
    if (!lead) {
    } else if (!rc && st.step >= a.t.steps)
        fprintf(stderr, "mol train: %s is already at step %ld (--steps %ld): nothing to train\n", a.out, st.step, a.t.steps);
    else if (!rc && a.t.minutes > 0 && st.wall_seconds >= a.t.minutes * 60)
        fprintf(stderr, "mol train: %s has trained %.1f minutes already (--minutes %g): nothing to train\n", a.out,
                st.wall_seconds / 60, a.t.minutes);
    if (!rc && lead)
        fprintf(stderr, "mol train: %d molecules of up to %d atoms from %s; EGNN %zu parameters (%d features, %d "
                        "layers), %s schedule, T = %d\n",
                set.n, m->M, a.data, dfs_egnn_params(m->net)->n, m->cfg.net.hidden, m->cfg.net.layers,
                dfs_schedule_names[m->cfg.schedule], m->cfg.T);
    mol_loop_user u = {m, tr, &st, tj};
    cli_train_loop L = {.cmd = "mol train", .unit = "molecules", .resumed = a.t.resume, .ckpt = ckpt, .final = final,
                        .csv = csv, .metrics = mf,
                        .steps = a.t.steps, .batch = a.t.batch, .save_every = a.t.save_every, .log_every = a.t.log_every,
                        .minutes = a.t.minutes, .lr = a.t.lr, .ema = a.t.ema, .warmup = tc.opt.warmup, .user = &u,
                        .step = mol_loop_step, .save = mol_loop_save};
    if (!rc) rc = cli_train_loop_run(&L, &st);
    if (mf && fclose(mf) != 0 && !rc) rc = cli_fail("cannot write %s: %s", csv, strerror(errno));
    cJSON_free(tj);
    cJSON_Delete(rec);
    dfs_mol_trainer_free(tr);
    dfs_mol_model_free(m);
    dfs_mol_set_free(&set);
    return rc;
}

static int mol_train(int argc, char **argv) {
    int rc = cli_mpi_start("mol train");
    return cli_mpi_end(rc ? rc : mol_train_run(argc, argv));
}

/* ---- sample -------------------------------------------------------------------------------- */

static const char sample_help[] =
    "usage: diffuse mol sample --model M --out FILE.xyz|FILE.sdf [options]\n"
    "\n"
    "Draw molecules from an EDM model. The number of atoms of each is drawn from the training\n"
    "set's sizes unless --atoms is given. An SDF gets EDM's bonds, derived from the distances.\n"
    "\n"
    "  --model M           a checkpoint of diffuse mol train (model.safetensors)\n"
    "  --out FILE          .xyz or .sdf\n"
    "  --n N               molecules (default 100)\n"
    "  --atoms N           atoms per molecule (default: drawn from the training sizes)\n"
    "  --fragment FILE     an XYZ or SDF whose first molecule's atoms are held fixed (the\n"
    "                      core's known entries): every sample completes it to --atoms atoms\n"
    "                      (or a drawn size at least the fragment's); the fragment's atoms come\n"
    "                      back at their given positions\n"
    "  --resample R        RePaint's resampling with a fragment: each stretch of --jump steps\n"
    "                      sampled R times (default 1: replacement only; 4 to 5 places the\n"
    "                      added atoms better, at R times the cost)\n"
    "  --jump J            RePaint's jump length in steps (default 5)\n"
    "  --sampler NAME      ddpm, ddim, dpm++2m or heun (default: the model's recorded\n"
    "                      settings, else ddpm)\n"
    "  --steps N           timesteps visited (default: the recorded ones, else all T)\n"
    "  --eta X             DDIM noise (default 0)\n"
    "  --variance V        ddpm's reverse variance: beta-tilde (default) or beta\n"
    "  --noise-scale S     ddpm: multiply the noise each step adds by S in [0, 1] (default:\n"
    "                      the recorded one, else 1); below 1 a lower-temperature sampler,\n"
    "                      as protein diffusion's noise scale: less varied molecules\n"
    "  --trajectory FILE   also write molecule 1's states at 10 steps of the run as an XYZ\n"
    "                      file (one frame each, the last the result): diffuse mol render\n"
    "                      --trajectory draws it\n"
    "  --seed N            (default 1)\n"
    "  --raw               sample with the raw weights instead of the EMA ones\n"
    "  --threads N         OpenMP threads (default: all)\n";

typedef struct {
    cli_progress bar;
    long done, total;
    const dfs_mol_model *m;
    const int *sizes;  /* the molecules' sizes, drawn before the first step */
    int frames_at[16], nframes;
    dfs_mol *frames; /* (nframes) */
    int taken;
} msample_cb;

static void on_mol_step(void *user, int first, int i, int steps, const float *x, int rows) {
    (void)rows;
    msample_cb *c = user;
    c->done++;
    cli_progress_update(&c->bar, c->done, CLI_ETA_AUTO, NULL);
    if (first != 0 || !c->frames || c->taken >= c->nframes) return;
    if (i == c->frames_at[c->taken] || i == steps - 1) {
        dfs_mol_decode(c->m, x, c->sizes[0], &c->frames[c->taken]);
        char t[64];
        snprintf(t, sizeof t, "step %d of %d", i + 1, steps);
        dfs_mol_set_title(&c->frames[c->taken], t);
        c->taken++;
    }
}

static int mol_sample(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *fragment = NULL, *traj = NULL;
    long n = 100, atoms = 0, steps = -1, seed = 1, threads = 0, resample = 1, jump = 5;
    double eta = 0, noise_scale = -1;
    int sampler = -1, raw = 0, var = -1;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'M'}, {"out", required_argument, 0, 'o'}, {"n", required_argument, 0, 'n'},
        {"atoms", required_argument, 0, 'a'}, {"fragment", required_argument, 0, 'f'},
        {"sampler", required_argument, 0, 'S'}, {"steps", required_argument, 0, 's'}, {"eta", required_argument, 0, 'E'},
        {"variance", required_argument, 0, 'V'}, {"trajectory", required_argument, 0, 'J'},
        {"noise-scale", required_argument, 0, 'N'},
        {"seed", required_argument, 0, 'e'}, {"raw", no_argument, 0, 'R'}, {"threads", required_argument, 0, 'j'},
        {"resample", required_argument, 0, 'P'}, {"jump", required_argument, 0, 'U'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'M': model = optarg; break;
        case 'o': out = optarg; break;
        case 'n': if (cli_int("--n", optarg, 1, 1000000, &n)) return 2; break;
        case 'a': if (cli_int("--atoms", optarg, 1, DFS_MOL_MAX_SLOTS, &atoms)) return 2; break;
        case 'f': fragment = optarg; break;
        case 'S':
            if ((sampler = dfs_sampler_from_name(optarg)) < 0)
                return cli_fail("--sampler must be ddpm, ddim, dpm++2m or heun, not '%s'", optarg);
            break;
        case 's': if (cli_int("--steps", optarg, 1, 100000, &steps)) return 2; break;
        case 'E': if (cli_float("--eta", optarg, 0, 100, &eta)) return 2; break;
        case 'N': if (cli_float("--noise-scale", optarg, 0, 1, &noise_scale)) return 2; break;
        case 'V':
            if (!strcmp(optarg, "beta-tilde") || !strcmp(optarg, "tilde")) var = 1;
            else if (!strcmp(optarg, "beta")) var = 0;
            else return cli_fail("--variance must be beta-tilde or beta, not '%s'", optarg);
            break;
        case 'J': traj = optarg; break;
        case 'P': if (cli_int("--resample", optarg, 1, 1000, &resample)) return 2; break;
        case 'U': if (cli_int("--jump", optarg, 1, 100000, &jump)) return 2; break;
        case 'e': if (cli_int("--seed", optarg, 0, 1L << 62, &seed)) return 2; break;
        case 'R': raw = 1; break;
        case 'j': if (cli_int("--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'h': fputs(sample_help, stdout); return 0;
        default: return cli_bad_option("mol sample", argv);
        }
    }
    if (optind < argc) return cli_fail("mol sample: unexpected argument '%s'", argv[optind]);
    if (!model) return cli_fail("mol sample: --model M is required");
    if (!out) return cli_fail("mol sample: --out FILE.xyz|FILE.sdf is required");
    if (resample > 1 && !fragment) return cli_fail("mol sample: --resample needs --fragment (it harmonises the added atoms with it)");
    const int sdf = ends_with(out, ".sdf");
    if (!sdf && !ends_with(out, ".xyz")) return cli_fail("mol sample: --out must end in .xyz or .sdf, not '%s'", out);
    if (cli_out_ok("mol sample", "--out", out) || (traj && cli_out_ok("mol sample", "--trajectory", traj))) return 2;
    if (threads > 0) dfs_set_threads((int)threads);
    dfs_mol_model *m = NULL;
    dfs_status s = dfs_mol_load(model, &m, NULL, NULL, NULL);
    if (s != DFS_OK) return cli_fail_status(s);
    dfs_mol_set frag;
    memset(&frag, 0, sizeof frag);
    int rc = 0;
    if (fragment && read_set("sample", fragment, &frag)) rc = 2;
    if (!rc && atoms > m->M)
        rc = cli_fail("mol sample: --atoms %ld is more than the model's %d atom slots", atoms, m->M);
    dfs_mol_request r;
    dfs_mol_request_default(&r);
    r.n = (int)n, r.atoms = (int)atoms, r.raw = raw, r.fragment = fragment ? &frag.mols[0] : NULL;
    if (!rc && r.fragment && atoms && atoms < r.fragment->n)
        rc = cli_fail("mol sample: --atoms %ld is fewer than the fragment's %d atoms", atoms, r.fragment->n);
    const dfs_sampling_recipe *rec = &m->sampling;
    r.sampler.kind = sampler >= 0 ? (dfs_sampler_kind)sampler : rec->set ? rec->kind : DFS_SAMPLER_DDPM;
    r.sampler.steps = steps > 0 ? (int)steps : rec->set && (sampler < 0 || sampler == (int)rec->kind) ? rec->steps : m->cfg.T;
    r.sampler.eta = (float)eta;
    r.sampler.resample = (int)resample;
    r.sampler.jump = resample > 1 ? (int)(jump < r.sampler.steps ? jump : r.sampler.steps) : 0;
    r.sampler.var_beta_tilde = var >= 0 ? var : rec->set ? !rec->var_beta : 1;
    if (!rc && cli_noise_scale("mol sample", noise_scale, r.sampler.kind, rec, &r.sampler.noise_scale)) rc = 2;
    if (!rc && r.sampler.steps > m->cfg.T)
        rc = cli_fail("mol sample: --steps %d is more than the model's T = %d", r.sampler.steps, m->cfg.T);
    dfs_mol *mols = rc ? NULL : calloc((size_t)n, sizeof *mols);
    if (!rc && !mols) rc = cli_fail("mol sample: out of memory");
    msample_cb cb = {.m = m};
    dfs_mol frames[16];
    memset(frames, 0, sizeof frames);
    if (!rc) {
        const int G = 256;
        const long groups = (n + G - 1) / G;
        /* one callback per step taken (RePaint's resampling counted; heun's two evaluations
         * of a step are one) */
        cb.total = groups * (r.sampler.kind == DFS_SAMPLER_HEUN ? r.sampler.steps : dfs_sampler_evals(&r.sampler));
        if (traj) {
            cb.frames = frames;
            cb.nframes = 10;
            for (int k = 0; k < 10; k++) cb.frames_at[k] = (int)((long)(k + 1) * r.sampler.steps / 10) - 1;
        }
        r.cb = on_mol_step, r.cb_user = &cb, r.group = G;
        fprintf(stderr, "mol sample: %ld molecules, %s, %d steps%s%s%s\n", n, dfs_sampler_names[r.sampler.kind],
                r.sampler.steps, cli_noise_note(r.sampler.noise_scale), r.fragment ? ", completing the fragment of " : "", r.fragment ? fragment : "");
        cli_progress_start(&cb.bar, "sampler steps", cb.total, 0, 10);
        dfs_rng rng;
        dfs_rng_seed(&rng, (uint64_t)seed);
        int *sizes = malloc((size_t)n * sizeof(int));
        r.sizes = sizes;
        cb.sizes = sizes;
        s = sizes ? dfs_mol_sample(m, &r, &rng, mols) : DFS_ERR_NOMEM;
        free(sizes);
        cli_progress_end(&cb.bar);
        if (s != DFS_OK) rc = cli_fail("mol sample: %s", dfs_last_error());
    }
    if (!rc && sdf)
        for (long i = 0; i < n && !rc; i++)
            if (dfs_mol_perceive_bonds(&mols[i]) != DFS_OK) rc = cli_fail_status(DFS_ERR_NOMEM);
    for (long i = 0; i < n && !rc; i++) {
        char t[64];
        snprintf(t, sizeof t, "sample %ld", i + 1);
        dfs_mol_set_title(&mols[i], t);
    }
    if (!rc && (s = sdf ? dfs_sdf_write(out, mols, (int)n) : dfs_xyz_write(out, mols, (int)n)) != DFS_OK)
        rc = cli_fail_status(s);
    if (!rc && traj && (s = dfs_xyz_write(traj, frames, cb.taken)) != DFS_OK) rc = cli_fail_status(s);
    if (!rc) fprintf(stderr, "wrote %ld molecules to %s%s%s\n", n, out, traj ? " and the trajectory to " : "", traj ? traj : "");
    for (int k = 0; k < 16; k++) dfs_mol_free(&frames[k]);
    for (long i = 0; mols && i < n; i++) dfs_mol_free(&mols[i]);
    free(mols);
    dfs_mol_set_free(&frag);
    dfs_mol_model_free(m);
    return rc;
}

/* ---- eval ---------------------------------------------------------------------------------- */

static const char eval_help[] =
    "usage: diffuse mol eval --samples FILE [--train SET] [--json FILE] [--table FILE.csv]\n"
    "\n"
    "Score molecules with EDM's rules (Hoogeboom et al. 2022, sec. 5.1): bond orders from the\n"
    "distances (EDM's bond-length tables, margins 10, 5 and 3 pm), atom stability (the share of\n"
    "atoms whose valence is allowed: H 1, C 4, N 3, O 2, F 1) and molecule stability (the share\n"
    "of molecules whose atoms all are). Validity reads 'allowed' as RDKit does in EDM's own\n"
    "check: an atom may have fewer bonds (RDKit adds implicit hydrogens), never more. validity\n"
    "is one connected fragment with no atom over; 'validity (EDM)' accepts any number of\n"
    "fragments, as EDM keeps the largest. Uniqueness (distinct canonical bond graphs among the\n"
    "valid) and novelty (the share of the valid unique ones not in the training set). With\n"
    "--train the training set is scored by the same rules, in a column of its own.\n"
    "\n"
    "  --samples FILE      the molecules: .xyz, .sdf, or a folder with molecules.xyz\n"
    "  --train SET         the training molecules (a folder or a file), for novelty\n"
    "  --json FILE         also write the figures as JSON\n"
    "  --table FILE.csv    also write one row per sample: its index, atoms, stable atoms, stable,\n"
    "                      fragments, atoms over their valence, valid, valid (EDM), and the bonds\n"
    "                      the rule finds from the distances (i-j:order, atoms counted from 0;\n"
    "                      an SDF's own bonds are not used)\n";

typedef struct {
    int n, atoms, stable_atoms, stable, valid, valid_edm, unique, novel;
} mol_scores;

/* forms (n, NULL where invalid), malloc'ed strings of the valid ones; one row per molecule to
 * tab if not NULL */
static int score_set(const dfs_mol_set *set, mol_scores *sc, char **forms, FILE *tab) {
    memset(sc, 0, sizeof *sc);
    sc->n = set->n;
    for (int i = 0; i < set->n; i++) {
        dfs_mol mol;
        dfs_mol_check c;
        forms[i] = NULL;
        if (dfs_mol_copy(&mol, &set->mols[i]) != DFS_OK || dfs_mol_check_edm(&mol, &c) != DFS_OK) {
            dfs_mol_free(&mol);
            return cli_fail("mol eval: %s", dfs_last_error());
        }
        sc->atoms += c.n_atoms, sc->stable_atoms += c.n_stable, sc->stable += c.stable, sc->valid += c.valid;
        sc->valid_edm += c.valid_edm;
        if ((c.valid || tab) && dfs_mol_perceive_bonds(&mol) != DFS_OK) {
            dfs_mol_free(&mol);
            return cli_fail("mol eval: %s", dfs_last_error());
        }
        if (c.valid && dfs_mol_canonical(&mol, &forms[i]) != DFS_OK) {
            dfs_mol_free(&mol);
            return cli_fail("mol eval: %s", dfs_last_error());
        }
        if (tab) {
            fprintf(tab, "%d,%d,%d,%d,%d,%d,%d,%d,", i, c.n_atoms, c.n_stable, c.stable, c.n_fragments, c.n_over, c.valid,
                    c.valid_edm);
            for (int k = 0; k < mol.n_bonds; k++)
                fprintf(tab, "%s%d-%d:%d", k ? " " : "", mol.bonds[k].a, mol.bonds[k].b, mol.bonds[k].order);
            fputc('\n', tab);
        }
        dfs_mol_free(&mol);
    }
    if (dfs_mol_unique((const char *const *)forms, set->n, &sc->unique, NULL) != DFS_OK)
        return cli_fail("mol eval: %s", dfs_last_error());
    return 0;
}

static double pct(int a, int b) { return b > 0 ? 100.0 * a / b : 0; }

static int mol_eval(int argc, char **argv) {
    const char *samples = NULL, *train = NULL, *json = NULL, *table = NULL;
    static const struct option opts[] = {{"samples", required_argument, 0, 's'}, {"train", required_argument, 0, 't'},
                                         {"json", required_argument, 0, 'J'}, {"table", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},    {0, 0, 0, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 's': samples = optarg; break;
        case 't': train = optarg; break;
        case 'J': json = optarg; break;
        case 'T': table = optarg; break;
        case 'h': fputs(eval_help, stdout); return 0;
        default: return cli_bad_option("mol eval", argv);
        }
    }
    if (optind < argc) return cli_fail("mol eval: unexpected argument '%s'", argv[optind]);
    if (!samples) return cli_fail("mol eval: --samples FILE is required");
    if (json && cli_out_ok("mol eval", "--json", json)) return 2;
    if (table && cli_out_ok("mol eval", "--table", table)) return 2;
    dfs_mol_set S, Tr;
    memset(&Tr, 0, sizeof Tr);
    if (read_set("eval", samples, &S)) return 2;
    int rc = train && read_set("eval", train, &Tr) ? 2 : 0;
    char **fs = calloc((size_t)S.n, sizeof *fs), **ft = calloc((size_t)(Tr.n > 0 ? Tr.n : 1), sizeof *ft);
    mol_scores a, b;
    memset(&b, 0, sizeof b);
    if (!rc && (!fs || !ft)) rc = cli_fail("mol eval: out of memory");
    char *tab_buf = NULL;
    size_t tab_len = 0;
    FILE *tab = NULL;
    if (!rc && table && !(tab = open_memstream(&tab_buf, &tab_len))) rc = cli_fail("mol eval: out of memory");
    if (tab) fputs("sample,atoms,stable_atoms,stable,fragments,over_valence,valid,valid_edm,bonds\n", tab);
    if (!rc) rc = score_set(&S, &a, fs, tab);
    if (tab) {
        const int bad = ferror(tab);
        if ((fclose(tab) != 0 || bad) && !rc) rc = cli_fail("mol eval: out of memory");
    }
    if (!rc && train) rc = score_set(&Tr, &b, ft, NULL);
    if (!rc && train) {
        /* novelty over the valid unique samples: count each distinct form once */
        uint8_t *first = calloc((size_t)S.n, 1);
        char **uf = calloc((size_t)S.n, sizeof *uf);
        if (!first || !uf) rc = cli_fail("mol eval: out of memory");
        if (!rc && dfs_mol_unique((const char *const *)fs, S.n, &a.unique, first) != DFS_OK) rc = cli_fail("mol eval: %s", dfs_last_error());
        for (int i = 0; !rc && i < S.n; i++) uf[i] = first[i] ? fs[i] : NULL;
        if (!rc && dfs_mol_novel((const char *const *)uf, S.n, (const char *const *)ft, Tr.n, &a.novel, NULL) != DFS_OK)
            rc = cli_fail("mol eval: %s", dfs_last_error());
        free(first);
        free(uf);
    }
    if (!rc) {
        printf("%-22s %12s", "", "samples");
        if (train) printf(" %12s", "training set");
        printf("\n%-22s %12d", "molecules", a.n);
        if (train) printf(" %12d", b.n);
        printf("\n%-22s %11.1f%%", "atom stability", pct(a.stable_atoms, a.atoms));
        if (train) printf(" %11.1f%%", pct(b.stable_atoms, b.atoms));
        printf("\n%-22s %11.1f%%", "molecule stability", pct(a.stable, a.n));
        if (train) printf(" %11.1f%%", pct(b.stable, b.n));
        printf("\n%-22s %11.1f%%", "validity", pct(a.valid, a.n));
        if (train) printf(" %11.1f%%", pct(b.valid, b.n));
        printf("\n%-22s %11.1f%%", "validity (EDM)", pct(a.valid_edm, a.n));
        if (train) printf(" %11.1f%%", pct(b.valid_edm, b.n));
        printf("\n%-22s %11.1f%%", "uniqueness (of valid)", pct(a.unique, a.valid));
        if (train) printf(" %11.1f%%", pct(b.unique, b.valid));
        if (train) printf("\n%-22s %11.1f%%", "novelty (of unique)", pct(a.novel, a.unique));
        printf("\n");
    }
    if (!rc && json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "molecules", a.n);
        cJSON_AddNumberToObject(j, "atom_stability", pct(a.stable_atoms, a.atoms) / 100);
        cJSON_AddNumberToObject(j, "molecule_stability", pct(a.stable, a.n) / 100);
        cJSON_AddNumberToObject(j, "validity", pct(a.valid, a.n) / 100);
        cJSON_AddNumberToObject(j, "validity_edm", pct(a.valid_edm, a.n) / 100);
        cJSON_AddNumberToObject(j, "uniqueness", pct(a.unique, a.valid) / 100);
        if (train) {
            cJSON_AddNumberToObject(j, "novelty", pct(a.novel, a.unique) / 100);
            cJSON *t = cJSON_AddObjectToObject(j, "train");
            cJSON_AddNumberToObject(t, "molecules", b.n);
            cJSON_AddNumberToObject(t, "atom_stability", pct(b.stable_atoms, b.atoms) / 100);
            cJSON_AddNumberToObject(t, "molecule_stability", pct(b.stable, b.n) / 100);
            cJSON_AddNumberToObject(t, "validity", pct(b.valid, b.n) / 100);
            cJSON_AddNumberToObject(t, "validity_edm", pct(b.valid_edm, b.n) / 100);
            cJSON_AddNumberToObject(t, "uniqueness", pct(b.unique, b.valid) / 100);
        }
        char *txt = cJSON_Print(j);
        cJSON_Delete(j);
        size_t len = txt ? strlen(txt) : 0;
        if (!txt || dfs_write_atomic(json, txt, len) != DFS_OK) rc = cli_fail("mol eval: %s", txt ? dfs_last_error() : "out of memory");
        cJSON_free(txt);
    }
    /* the table last, as the JSON: no file from a run that failed */
    if (!rc && table && dfs_write_atomic(table, tab_buf, tab_len) != DFS_OK) rc = cli_fail("mol eval: %s", dfs_last_error());
    free(tab_buf);
    for (int i = 0; fs && i < S.n; i++) free(fs[i]);
    for (int i = 0; ft && i < Tr.n; i++) free(ft[i]);
    free(fs);
    free(ft);
    dfs_mol_set_free(&S);
    dfs_mol_set_free(&Tr);
    return rc;
}

int cmd_mol(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(mol_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "train")) return mol_train(argc - 1, argv + 1);
    if (!strcmp(sub, "sample")) return mol_sample(argc - 1, argv + 1);
    if (!strcmp(sub, "eval")) return mol_eval(argc - 1, argv + 1);
    if (!strcmp(sub, "render")) return cmd_mol_render(argc - 1, argv + 1);
    return cli_fail("mol: unknown subcommand '%s' (train, sample, eval or render; see diffuse mol --help)", sub);
}
