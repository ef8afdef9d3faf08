/* test_train.c - the U-Net's size, checkpoints round-tripped and rejected when corrupt,
 * bit-exact resume, and learning: the loss falls on 512 images and one image is reproduced.
 * The fast paths of a whole training step: fused kernels against the unfused BLAS path,
 * recycled against kept activations, and inference (released tensors) against recording. */
#include "check.h"
#include "diffuse.h"
#include "engine/tape.h"

#include <float.h>
#include <math.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define U32 (FLT_EPSILON / 2) /* float unit roundoff, 2^-24 */

/* Rounding of a pass of the "small" U-Net in float when only the order of its sums changes
 * (other conv kernels, another split of the batch over threads, OpenBLAS blocking by the pass
 * size), from the probabilistic model of rounding (independent errors of either sign; Higham,
 * "Accuracy and Stability of Numerical Algorithms", sec. 2.8): a sum of K terms errs by about
 * sqrt(K) u relative to its result, and the independent errors of a chain of L such reductions
 * add in quadrature through a network whose GroupNorms keep the gain near 1: sqrt(L K) u.
 * For the small preset (28x28, 16/32 channels, groups 4, 1 encoder and 2 decoder blocks,
 * attention at 14x14) the longest forward chain has 61 reductions (stem; 8 resblocks of two
 * norm + conv; 4 attention blocks of norm, qkv, QK^T, softmax, AV, proj; down- and upsampling;
 * output norm + conv), the backward pass runs it back and adds a weight gradient: 2 * 61 + 1.
 * The longest reduction is a GroupNorm over 12 channels x 784 pixels = 9408 (the first 28x28
 * decoder block, 32 + 16 channels); weight gradients sum 6 images x 784 pixels = 4704.
 * Forward: sqrt(61 * 9408) u = 4.5e-5 of the outputs' scale; backward 6.4e-5 of the gradients'. */
enum { UNET_CHAIN = 61, UNET_KMAX = 9408 };
static double unet_eps(int chain) { return sqrt((double)chain * UNET_KMAX) * U32; }

/* An MSE loss over N outputs p against targets y: output errors dp of relative size eps move it
 * by 2 sum (p - y) dp, a sum of terms of random sign (y is noise independent of the rounding),
 * so by about 2 eps / sqrt(N) of the loss; summing the N squares in another order adds
 * sqrt(N) u. */
static double mse_eps(double eps, double N) { return 2 * eps / sqrt(N) + sqrt(N) * U32; }

static char tmpdir[] = "/tmp/dfs_train_XXXXXX";

static dfs_model *small_model_pred(uint64_t seed, float dropout, dfs_prediction pred) {
    dfs_model_config mc;
    dfs_unet_config_preset(&mc.unet, "small");
    mc.unet.dropout = dropout;
    mc.schedule = DFS_SCHEDULE_LINEAR;
    mc.T = 1000;
    mc.prediction = pred;
    return dfs_model_new(&mc, seed);
}

static dfs_model *small_model(uint64_t seed, float dropout) {
    return small_model_pred(seed, dropout, DFS_PRED_EPS);
}

static void test_sizes(void) {
    dfs_unet_config c;
    CHECK(dfs_unet_config_preset(&c, "fmnist") == DFS_OK, "preset fmnist");
    dfs_rng r;
    dfs_rng_seed(&r, 0);
    dfs_unet *u = dfs_unet_new(&c, &r);
    CHECK(u && u->params->n == 1624577, "fmnist has %zu parameters, want 1624577", u ? u->params->n : 0);
    /* an exact count (integer products in double); docs/MODEL_CARD.md and PERFORMANCE.md print
     * it as 0.554, REFERENCE_UNET.md as about 0.55: within half a unit of the 3rd digit */
    double gf = dfs_unet_flops(&c) * 1e-9;
    CHECK(fabs(gf - 0.554) <= 0.0005, "fmnist forward is %.4f GFLOP, the docs say 0.554 (about 0.55)", gf);
    dfs_unet_free(u);
    c.num_classes = 0;
    u = dfs_unet_new(&c, &r);
    CHECK(u && u->params->n == 1623169, "unconditional fmnist has %zu parameters, want 1623169", u ? u->params->n : 0);
    CHECK(u && dfs_params_find(u->params, "class_emb.weight") == NULL, "no class table without classes");
    dfs_unet_free(u);
    c.image_size = 30; /* not divisible by 4 */
    CHECK(dfs_unet_new(&c, &r) == NULL && strstr(dfs_last_error(), "divisible"), "bad size rejected: %s", dfs_last_error());
    CHECK(dfs_unet_config_preset(&c, "nope") == DFS_ERR_ARG, "unknown preset rejected");
}

static dfs_dataset fmnist_subset(int n) {
    dfs_dataset d;
    memset(&d, 0, sizeof d);
    dfs_status s = dfs_load_fashion_mnist(&d, 1);
    CHECK(s == DFS_OK, "load fashion-mnist: %s", dfs_last_error());
    if (s == DFS_OK && n < d.n) d.n = n;
    return d;
}

static void train_losses(dfs_model *m, dfs_dataset *d, dfs_train_state *st, int batch, int steps, float lr, float *losses) {
    dfs_train_config tc;
    dfs_train_config_default(&tc);
    tc.batch = batch;
    tc.opt.lr = lr;
    tc.opt.warmup = 10;
    tc.opt.ema_decay = 0.999f;
    dfs_trainer *tr;
    dfs_status s = dfs_trainer_new(&tr, m, &tc, d, st);
    CHECK(s == DFS_OK, "trainer: %s", dfs_last_error());
    if (s != DFS_OK) return;
    for (int i = 0; i < steps; i++) {
        s = dfs_trainer_step(tr, &losses[i]);
        CHECK(s == DFS_OK, "step %d: %s", i, dfs_last_error());
        if (s != DFS_OK) break;
    }
    dfs_trainer_free(tr);
}

static int same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* Copy the checkpoint src to dst with one change: tensor `drop` left out, the first value of
 * tensor `nan_of` made NaN, a tensor `extra` added, or metadata `key` set to val (NULL: left
 * out). Any of them NULL: not done. */
static int rewrite(const char *src, const char *dst, const char *drop, const char *nan_of, const char *extra,
                   const char *key, const char *val) {
    dfs_safetensors f;
    if (dfs_st_load(&f, src) != DFS_OK) return 0;
    dfs_st_writer *w = dfs_st_writer_new();
    float *copy = NULL, z[2] = {0}; // the writer keeps pointers to the data until it writes
    int64_t shp[1] = {2};
    for (int i = 0; i < f.count; i++) {
        const dfs_st_tensor *t = &f.t[i];
        if (drop && !strcmp(t->name, drop)) continue;
        const void *data = t->data;
        if (nan_of && !strcmp(t->name, nan_of) && t->dtype == DFS_DT_F32) {
            copy = malloc(t->nbytes);
            memcpy(copy, t->data, t->nbytes);
            copy[0] = NAN;
            data = copy;
        }
        dfs_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, data);
    }
    if (extra) dfs_st_writer_add(w, extra, DFS_DT_F32, 1, shp, z);
    for (int i = 0; i < f.nmeta; i++)
        if (!key || strcmp(f.meta_keys[i], key)) dfs_st_writer_meta(w, f.meta_keys[i], f.meta_vals[i]);
    if (key && val) dfs_st_writer_meta(w, key, val);
    int ok = dfs_st_writer_write(w, dst) == DFS_OK;
    dfs_st_writer_free(w);
    free(copy);
    dfs_st_free(&f);
    return ok;
}

/* A checkpoint whose tensors or metadata disagree with what it claims is refused, naming why:
 * nothing is dropped, reset or run with undefined values. */
static void test_checkpoint_consistency(const char *good) {
    char bad[256];
    snprintf(bad, sizeof bad, "%s/c.safetensors", tmpdir);
    dfs_safetensors f;
    int has_state = 0; // the cases below take parts of a full checkpoint away
    if (dfs_st_load(&f, good) == DFS_OK) {
        has_state = dfs_st_meta(&f, "state") != NULL && dfs_st_find(&f, "optim.m") != NULL;
        dfs_st_free(&f);
    }
    CHECK(has_state, "the checkpoint the cases start from is a full one");
/* a state of this step and seed whose generator starts with word rng0; a unet config of these
 * base channels and multipliers */
#define STATE(step, seed, rng0)                                                                       \
    "{\"step\":" step ",\"images_seen\":24,\"seed\":\"" seed "\",\"wall_seconds\":1,\"rng\":[\"" rng0 \
    "\",\"0\",\"0\",\"0\"],\"rng_spare\":\"0:00000000\"}"
#define UNET(base, mult)                                                                              \
    "{\"image_size\":28,\"in_channels\":1,\"base_channels\":" base ",\"mult\":[" mult "],\"attn\":[0,1],"   \
    "\"enc_blocks\":1,\"dec_blocks\":2,\"groups\":4,\"dropout\":0,\"num_classes\":10}"
    struct {
        const char *what, *drop, *nan_of, *extra, *key, *val, *want;
    } cases[] = {
        {"a NaN weight", NULL, "out_conv.bias", NULL, NULL, NULL, "tensor out_conv.bias holds a non-finite value"},
        {"a NaN EMA weight", NULL, "ema.out_conv.weight", NULL, NULL, NULL, "ema.out_conv.weight holds a non-finite"},
        {"a tensor the config does not use", NULL, NULL, "mid.attn.extra.weight", NULL, NULL,
         "mid.attn.extra.weight is not part of the model"},
        {"one EMA tensor missing", "ema.out_conv.bias", NULL, NULL, NULL, NULL, "1 of the"},
        {"optim.v without optim.m", "optim.m", NULL, NULL, NULL, NULL, "optim.v without optim.m"},
        {"moments without a state", NULL, NULL, NULL, "state", NULL, "no \"state\""},
        {"an all-zero generator", NULL, NULL, NULL, "state", STATE("3", "3", "0"), "malformed \"state\""},
        {"a negative seed", NULL, NULL, NULL, "state", STATE("3", "-1", "1"), "malformed \"state\""},
        {"a 24-digit seed", NULL, NULL, NULL, "state", STATE("3", "123456789012345678901234", "1"),
         "malformed \"state\""},
        {"a fractional step", NULL, NULL, NULL, "state", STATE("1.5", "3", "1"), "malformed \"state\""},
        {"base channels 2^30", NULL, NULL, NULL, "unet", UNET("1073741824", "1,2"), "at most 4096"},
        {"a level of 8192 channels", NULL, NULL, NULL, "unet", UNET("128", "1,64"), "8192 channels"},
        // 712M parameters (2.8 GB of floats, five such arrays with EMA and optimiser) asked of a
        // file of a few MB
        {"a config far bigger than the file", NULL, NULL, NULL, "unet", UNET("1024", "1,2"),
         "but the file holds only"},
    };
#undef STATE
#undef UNET
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(rewrite(good, bad, cases[i].drop, cases[i].nan_of, cases[i].extra, cases[i].key, cases[i].val),
              "%s: rewrite", cases[i].what);
        dfs_model *x = NULL;
        dfs_train_state s;
        int has_optim = 0;
        dfs_status st = dfs_checkpoint_load(bad, &x, &s, &has_optim, NULL);
        CHECK(st != DFS_OK && x == NULL && strstr(dfs_last_error(), cases[i].want), "%s: status %d, '%s' (want '%s')",
              cases[i].what, st, dfs_last_error(), cases[i].want);
        dfs_model_free(x);
    }
    // the unchanged copy loads: the rewriting itself changes nothing
    CHECK(rewrite(good, bad, NULL, NULL, NULL, NULL, NULL), "plain rewrite");
    dfs_model *x = NULL;
    CHECK(dfs_checkpoint_load(bad, &x, NULL, NULL, NULL) == DFS_OK, "an unchanged copy loads: %s", dfs_last_error());
    if (x) // the count the loader checks the file against, made without allocating the weights
        CHECK(dfs_unet_param_count(&x->cfg.unet) == x->net->params->n, "param count %zu, the model has %zu",
              dfs_unet_param_count(&x->cfg.unet), x->net->params->n);
    dfs_model_free(x);
}

static void test_checkpoint_and_resume(void) {
    dfs_dataset d = fmnist_subset(64);
    if (!d.pixels) return;
    char path[256];
    snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);

    /* straight run of 6 steps */
    dfs_model *a = small_model(7, 0.1f);
    dfs_train_state sa = {.seed = 3};
    dfs_rng_seed(&sa.rng, 3);
    float la[6], lb[6];
    train_losses(a, &d, &sa, 8, 6, 1e-3f, la);

    /* 3 steps, checkpoint, load into a fresh model, 3 more */
    dfs_model *b = small_model(7, 0.1f);
    dfs_train_state sb = {.seed = 3};
    dfs_rng_seed(&sb.rng, 3);
    train_losses(b, &d, &sb, 8, 3, 1e-3f, lb);
    CHECK(dfs_checkpoint_save(path, b, &sb, "{\"x\":1}", DFS_CKPT_FULL) == DFS_OK, "save: %s", dfs_last_error());
    dfs_model *c = NULL;
    dfs_train_state sc;
    int has_optim = 0;
    char *tj = NULL;
    dfs_status s = dfs_checkpoint_load(path, &c, &sc, &has_optim, &tj);
    CHECK(s == DFS_OK, "load: %s", dfs_last_error());
    if (s != DFS_OK) goto out;
    const dfs_params *pb = b->net->params, *pc = c->net->params;
    CHECK(pc->n == pb->n && same_bits(pb->data, pc->data, pb->n), "weights round-trip bit-exactly");
    CHECK(same_bits(pb->ema, pc->ema, pb->n), "EMA round-trips");
    CHECK(same_bits(pb->m, pc->m, pb->n) && same_bits(pb->v, pc->v, pb->n), "AdamW moments round-trip");
    CHECK(has_optim == 1 && sc.step == 3 && sc.images_seen == 24 && sc.seed == 3, "state: step %ld seen %ld", sc.step, sc.images_seen);
    CHECK(memcmp(sc.rng.s, sb.rng.s, sizeof sb.rng.s) == 0 && sc.rng.has_spare == sb.rng.has_spare &&
          sc.rng.spare == sb.rng.spare, "rng state round-trips");
    CHECK(tj && strcmp(tj, "{\"x\":1}") == 0, "train metadata round-trips");
    CHECK(memcmp(&c->cfg.unet, &b->cfg.unet, sizeof c->cfg.unet) == 0, "configuration round-trips");
    free(tj);
    train_losses(c, &d, &sc, 8, 3, 1e-3f, lb + 3);
    int exact = 1;
    for (int i = 0; i < 6; i++) exact &= memcmp(&la[i], &lb[i], sizeof(float)) == 0;
    CHECK(exact, "resumed losses equal the uninterrupted run bit for bit: %.9g %.9g %.9g vs %.9g %.9g %.9g",
          la[3], la[4], la[5], lb[3], lb[4], lb[5]);
    CHECK(same_bits(a->net->params->data, c->net->params->data, pb->n), "weights after resume equal the straight run's");

    /* sampling checkpoints: EMA weights under the plain names, float16 close to float32 */
    snprintf(path, sizeof path, "%s/s16.safetensors", tmpdir);
    CHECK(dfs_checkpoint_save(path, c, NULL, NULL, DFS_CKPT_SAMPLING_F16) == DFS_OK, "save f16: %s", dfs_last_error());
    dfs_model *h = NULL;
    s = dfs_checkpoint_load(path, &h, NULL, &has_optim, NULL);
    CHECK(s == DFS_OK && has_optim == 0, "load f16: %s", dfs_last_error());
    if (s == DFS_OK) {
        /* float16 rounds to nearest: within half an ulp, 2^-11 relative in the normal range
         * (|w| >= 2^-14) and 2^-25 absolute among the subnormals; max_err keeps a NaN */
        double worst = 0;
        for (size_t i = 0; i < pc->n; i++) {
            double e = fabs(h->net->params->data[i] - pc->ema[i]);
            worst = max_err(worst, e / (ldexp(fabs(pc->ema[i]), -11) + ldexp(1.0, -25)));
        }
        CHECK(worst <= 1, "float16 weights within half an ulp of the EMA weights (worst %.3g of it)", worst);
    }
    dfs_model_free(h);

    /* corrupt checkpoints are rejected with an error, never a crash */
    snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    CHECK(fread(buf, 1, (size_t)size, f) == (size_t)size, "read back");
    fclose(f);
    char bad[256];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", tmpdir);
    long cuts[] = {0, 4, 8, 100, size / 2, size - 1};
    for (int i = 0; i < 6; i++) {
        dfs_write_atomic(bad, buf, (size_t)cuts[i]);
        dfs_model *x = NULL;
        s = dfs_checkpoint_load(bad, &x, NULL, NULL, NULL);
        CHECK(s == DFS_ERR_FORMAT && x == NULL, "truncated to %ld bytes: status %d (%s)", cuts[i], s, dfs_last_error());
    }
    free(buf);
    /* a checkpoint of another architecture cannot be loaded into this one's tensors: a weight
     * of the wrong shape under the expected name */
    dfs_st_writer *w = dfs_st_writer_new();
    int64_t shp[1] = {200000}; // bytes enough for the config's 177,553 weights
    float *z = calloc((size_t)shp[0], sizeof *z);
    dfs_st_writer_add(w, "time_mlp.0.weight", DFS_DT_F32, 1, shp, z);
    dfs_st_writer_meta(w, "format", "diffuse-1");
    dfs_st_writer_meta(w, "unet", "{\"image_size\":28,\"in_channels\":1,\"base_channels\":16,\"mult\":[1,2],\"attn\":[0,1],\"enc_blocks\":1,\"dec_blocks\":2,\"groups\":4,\"dropout\":0,\"num_classes\":10}");
    dfs_st_writer_meta(w, "diffusion", "{\"schedule\":\"linear\",\"T\":1000,\"prediction\":\"eps\"}");
    CHECK(dfs_st_writer_write(w, bad) == DFS_OK, "write shape-mismatch file");
    dfs_st_writer_free(w);
    free(z);
    dfs_model *x = NULL;
    s = dfs_checkpoint_load(bad, &x, NULL, NULL, NULL);
    CHECK(s == DFS_ERR_SHAPE && strstr(dfs_last_error(), "time_mlp.0.weight"), "wrong shape named: %s", dfs_last_error());
    snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);
    test_checkpoint_consistency(path);
out:
    dfs_model_free(a);
    dfs_model_free(b);
    dfs_model_free(c);
    dfs_dataset_free(&d);
}

static void test_learning(void) {
    if (getenv("DFS_SANITIZE")) {
        printf("test_learning: skipped under sanitizers (too slow)\n");
        return;
    }
    const char *set = getenv("DFS_TEST_SET");
    if (set && !strcmp(set, "numerics")) { /* make test-cpus: training outcomes are not numerics */
        printf("test_learning: left out of the numerics set (make test checks it)\n");
        return;
    }
    dfs_dataset d = fmnist_subset(512);
    if (!d.pixels) return;
    enum { STEPS = 200 };
    float loss[STEPS];
    dfs_model *m = small_model(1, 0.0f);
    dfs_train_state st = {.seed = 1};
    dfs_rng_seed(&st.rng, 1);
    train_losses(m, &d, &st, 16, STEPS, 2e-3f, loss);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) first += loss[i] / 10;
    for (int i = STEPS - 50; i < STEPS; i++) last += loss[i] / 50;
    printf("learning: mean loss of steps 1-10 %.4f, of steps %d-%d %.4f\n", first, STEPS - 49, STEPS, last);
    /* Not a rounding tolerance: training is chaotic, so another CPU, kernel or FMA contraction
     * trains other weights (rounding changes the trajectory, not just the last bits), and this
     * checks the outcome. A model that does not learn keeps its loss (ratio ~1); this one falls to
     * ~10% in 200 steps (0.773 -> 0.076 here): 35% allows a run 3x slower and still fails one
     * that does not learn. */
    CHECK(last < 0.35 * first, "loss fell from %.4f to %.4f (want below 35%%)", first, last);
    dfs_model_free(m);

    /* one image: a model trained on it alone reproduces it from noise. It predicts x0, which
     * for one image is a constant the network learns in a few hundred steps (an eps model needs
     * far longer to be exact at large t, where x0 = (x_t - sqrt(1-abar) eps) / sqrt(abar)
     * magnifies its error). The raw weights are used: 300 steps are too few for the EMA. */
    d.n = 1;
    m = small_model_pred(2, 0.0f, DFS_PRED_X0);
    dfs_train_state s1 = {.seed = 2};
    dfs_rng_seed(&s1.rng, 2);
    float l1[300];
    train_losses(m, &d, &s1, 8, 300, 2e-3f, l1);
    dfs_sampler_config sc;
    dfs_sampler_config_default(&sc);
    sc.kind = DFS_SAMPLER_DDIM;
    sc.steps = 50;
    sc.prediction = DFS_PRED_X0;
    sc.null_label = 10;
    sc.guidance = 1.0f;
    int labels[4];
    for (int i = 0; i < 4; i++) labels[i] = d.labels[0];
    float x[4 * 784];
    dfs_rng rng;
    dfs_rng_seed(&rng, 9);
    dfs_status s = dfs_sample(&m->sched, &sc, dfs_model_predict, m, labels, 4, 784, &rng, x, NULL, NULL);
    CHECK(s == DFS_OK, "sample: %s", dfs_last_error());
    double mse = 0, base = 0;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 784; k++) {
            double ref = d.pixels[k] / 127.5 - 1.0;
            mse += (x[i * 784 + k] - ref) * (x[i * 784 + k] - ref) / (4 * 784);
            base += ref * ref / (4 * 784);
        }
    printf("one image: sample MSE %.4f against the image (its mean square is %.4f)\n", mse, base);
    /* an outcome, as above: 0.02 is 3% of the image's mean square (0.69); a model that did not
     * learn the image, or a sampler that does not end on its x0, scores ~0.7 or more (0.006 here) */
    CHECK(mse < 0.02, "samples of a one-image model reproduce it: MSE %.4f", mse);
    dfs_model_free(m);
    dfs_dataset_free(&d);
}

/* One forward + backward of the small U-Net on a fixed batch (training mode, dropout 0.1):
 * the loss, all parameter gradients (copied to grad), and the arena bytes it used. */
static float unet_step(dfs_model *m, int recycle, float *grad, size_t *used) {
    const int B = 6, D = 28 * 28;
    float *x = malloc((size_t)B * D * sizeof(float)), *y = malloc((size_t)B * D * sizeof(float));
    int t[6] = {0, 5, 100, 400, 800, 999}, lab[6] = {0, 1, 2, 3, 9, 10};
    dfs_rng r;
    dfs_rng_seed(&r, 11);
    dfs_rng_fill_normal(&r, x, (size_t)B * D);
    dfs_rng_fill_normal(&r, y, (size_t)B * D);
    dfs_graph *g = dfs_graph_new();
    dfs_graph_set_recycle(g, recycle);
    dfs_rng_seed(&r, 12);
    dfs_graph_set_training(g, 1, &r);
    const int shape[4] = {B, 1, 28, 28};
    dfs_tensor *p = dfs_unet_forward(m->net, g, dfs_tensor_wrap(g, x, 4, shape), t, lab);
    dfs_tensor *loss = dfs_mse(g, p, dfs_tensor_wrap(g, y, 4, shape));
    dfs_params_zero_grad(m->net->params);
    dfs_backward(g, loss);
    memcpy(grad, m->net->params->grad, m->net->params->n * sizeof(float));
    *used = dfs_graph_bytes_used(g);
    float l = loss->data[0];
    dfs_graph_free(g);
    free(x);
    free(y);
    return l;
}

/* the largest |a - b| over the largest |b| (a NaN anywhere gives NaN) */
static double max_rel(const float *a, const float *b, size_t n) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        m = max_err(m, fabs((double)a[i] - b[i]));
        s = max_err(s, fabs((double)b[i]));
    }
    return m / s;
}

static void test_fast_paths(void) {
    const dfs_kernels kern0 = dfs_get_kernels(); /* DFS_KERNELS / DFS_CPU choose it */
    dfs_model *m = small_model(3, 0.1f);
    const size_t n = m->net->params->n;
    float *gf = malloc(n * sizeof(float)), *gb = malloc(n * sizeof(float)), *gr = malloc(n * sizeof(float));
    size_t uf, ub, ur;
    /* fused kernels vs the unfused BLAS path: same dropout masks, so same loss and gradients
     * up to float summation order */
    dfs_set_kernels(DFS_KERNELS_BLAS);
    float lb = unet_step(m, 0, gb, &ub);
    dfs_set_kernels(DFS_KERNELS_FAST);
    float lf = unet_step(m, 0, gf, &uf);
    /* only the summation order differs (unet_eps, mse_eps over the 6 x 784 outputs) */
    const double tol_loss = mse_eps(unet_eps(UNET_CHAIN), 6 * 784), tol_grad = unet_eps(2 * UNET_CHAIN + 1);
    CHECK(fabs((double)lf - lb) <= tol_loss * fabs(lb), "U-Net loss fast %.9g vs BLAS %.9g (rounding %.2g)", lf, lb,
          tol_loss);
    double e = max_rel(gf, gb, n);
    CHECK(e <= tol_grad, "U-Net gradients fast vs BLAS: max error %.3g of the largest (rounding %.2g)", e, tol_grad);
    CHECK(uf < ub, "the fused step used %zu arena bytes, the unfused %zu", uf, ub);
    /* recycling activations in backward: bit-identical gradients, less memory */
    float lr = unet_step(m, 1, gr, &ur);
    CHECK(lr == lf && memcmp(gr, gf, n * sizeof(float)) == 0, "recycling changed the step");
    CHECK(ur < uf * 9 / 10, "recycling used %zu arena bytes, keeping %zu", ur, uf);

    /* inference releases tensors: the same output bit for bit as a recording pass, in less
     * memory */
    const int B = 4, D = 28 * 28, t[4] = {1, 200, 600, 999}, lab[4] = {4, 5, 6, 10};
    float *x = malloc((size_t)B * D * sizeof(float));
    dfs_rng r;
    dfs_rng_seed(&r, 13);
    dfs_rng_fill_normal(&r, x, (size_t)B * D);
    dfs_graph *g1 = dfs_graph_new(), *g0 = dfs_graph_new();
    dfs_graph_set_grad(g0, 0);
    const int shape[4] = {B, 1, 28, 28};
    dfs_tensor *y1 = dfs_unet_forward(m->net, g1, dfs_tensor_wrap(g1, x, 4, shape), t, lab);
    dfs_tensor *y0 = dfs_unet_forward(m->net, g0, dfs_tensor_wrap(g0, x, 4, shape), t, lab);
    CHECK(y0->n == y1->n && memcmp(y0->data, y1->data, y0->n * sizeof(float)) == 0,
          "no-grad U-Net output differs from the recording pass");
    CHECK(dfs_graph_bytes_used(g0) * 3 < dfs_graph_bytes_used(g1),
          "no-grad forward used %zu arena bytes, recording %zu", dfs_graph_bytes_used(g0),
          dfs_graph_bytes_used(g1));
    dfs_graph_free(g0);
    dfs_graph_free(g1);

    /* data-parallel inference: 2 threads, each on its share, in passes of one image, give 1
     * thread's result up to float rounding (OpenBLAS's GEMMs of the time embedding see the
     * pass size; measured 0 to 7e-7 on outputs of about 1): unet_eps of a forward pass */
    float *p1 = malloc((size_t)B * D * sizeof(float)), *p2 = malloc((size_t)B * D * sizeof(float));
    dfs_set_threads(1);
    dfs_model_predict(m, x, t, lab, B - 1, p1);
    dfs_set_threads(2);
    m->max_batch = 2;
    dfs_model_predict(m, x, t, lab, B - 1, p2);
    m->max_batch = 64;
    e = max_rel(p2, p1, (size_t)(B - 1) * D);
    CHECK(e <= unet_eps(UNET_CHAIN), "dfs_model_predict: 2 threads differ from 1 by %.3g of the largest (rounding %.2g)",
          e, unet_eps(UNET_CHAIN));
    free(p1);
    free(p2);
    free(x);
    free(gf);
    free(gb);
    free(gr);
    dfs_model_free(m);
    dfs_set_kernels(kern0); /* the rest of the suite runs on the kernels it was given */
}

/* 16 images of random pixels at 28x28 with labels 0..9 in turn, standing in for images */
static dfs_dataset random_dataset(uint64_t seed) {
    dfs_dataset d;
    memset(&d, 0, sizeof d);
    d.n = 16, d.c = 1, d.h = 28, d.w = 28, d.num_classes = 10;
    d.pixels = malloc((size_t)d.n * 784);
    d.labels = malloc((size_t)d.n * sizeof(int));
    dfs_rng r;
    dfs_rng_seed(&r, seed);
    for (int i = 0; i < d.n * 784; i++) d.pixels[i] = (uint8_t)dfs_rng_below(&r, 256);
    for (int i = 0; i < d.n; i++) d.labels[i] = i % 10;
    return d;
}

/* A data-parallel training step (2 threads, each on half the batch in its own graph, with its
 * own parameter gradients) against one graph for the whole batch (1 thread): without dropout
 * the loss and the summed gradient agree up to float rounding, and the run's generator moves
 * on the same for the data. Random pixels stand in for images. */
static void test_parallel_step(void) {
    dfs_dataset d = random_dataset(21);
    float loss[2], *grad[2];
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        dfs_set_threads(k + 1);
        dfs_model *m = small_model(5, 0.0f);
        dfs_train_config tc;
        dfs_train_config_default(&tc);
        tc.batch = 7; /* odd: unequal halves */
        tc.opt.clip = 0.0f; /* the raw gradient stays in params->grad */
        dfs_train_state st = {.seed = 3};
        dfs_rng_seed(&st.rng, 4);
        dfs_trainer *tr;
        CHECK(dfs_trainer_new(&tr, m, &tc, &d, &st) == DFS_OK, "trainer: %s", dfs_last_error());
        CHECK(dfs_trainer_step(tr, &loss[k]) == DFS_OK, "step: %s", dfs_last_error());
        n = m->net->params->n;
        grad[k] = malloc(n * sizeof(float));
        memcpy(grad[k], m->net->params->grad, n * sizeof(float));
        dfs_trainer_free(tr);
        dfs_model_free(m);
    }
    dfs_set_threads(2);
    /* only the summation order differs: the batch split 3 + 4 in the GEMMs and reductions, and
     * the two partial gradients added at the end (unet_eps, mse_eps over 7 x 784 outputs) */
    const double tol_loss = mse_eps(unet_eps(UNET_CHAIN), 7 * 784), tol_grad = unet_eps(2 * UNET_CHAIN + 1);
    CHECK(fabs((double)loss[1] - loss[0]) <= tol_loss * loss[0], "data-parallel loss %.9g, serial %.9g (rounding %.2g)",
          loss[1], loss[0], tol_loss);
    double e = max_rel(grad[1], grad[0], n);
    CHECK(e <= tol_grad, "data-parallel gradient differs by %.3g of the largest (rounding %.2g)", e, tol_grad);
    free(grad[0]);
    free(grad[1]);
    free(d.pixels);
    free(d.labels);
}


/* Out of memory for activations (an activation limit stands in for a full memory): a training
 * step, on one thread and data-parallel on two, returns DFS_ERR_NOMEM with the message and
 * leaves the weights, the step count and the images seen as they were; dfs_model_predict and
 * dfs_sample return it too. Once memory is there again the same trainer and model go on and
 * give the results of ones that never failed. */
static void test_out_of_memory(void) {
    dfs_dataset d = random_dataset(22);
    dfs_rng r;
    dfs_rng_seed(&r, 23);
    for (int threads = 1; threads <= 2; threads++) {
        dfs_set_threads(threads);
        float ref_loss = 0.0f, loss = 0.0f;
        size_t np = 0;
        float *ref_w = NULL;
        for (int k = 0; k < 2; k++) { /* k = 0: never limited, the reference; k = 1: fails first */
            dfs_model *m = small_model(6, 0.0f);
            dfs_train_config tc;
            dfs_train_config_default(&tc);
            tc.batch = 7; /* odd: on 2 threads, shares of 3 and 4 images */
            dfs_train_state st = {.seed = 3};
            dfs_rng_seed(&st.rng, 4);
            dfs_trainer *tr;
            CHECK(dfs_trainer_new(&tr, m, &tc, &d, &st) == DFS_OK, "trainer: %s", dfs_last_error());
            np = m->net->params->n;
            if (k == 1) {
                /* the limit rises from 1 MB in steps of 256 KB until the step fits: the failure
                 * moves from the first op through the forward pass (one worker's share of the
                 * odd batch fitting, the other's not) into the backward pass */
                float *w0 = malloc(np * sizeof(float));
                memcpy(w0, m->net->params->data, np * sizeof(float));
                int fails = 0, bad_msg = 0, bad_state = 0;
                dfs_status s = DFS_ERR_NOMEM;
                size_t lim = 1u << 20;
                for (; s == DFS_ERR_NOMEM && lim < (512u << 20); lim += 256u << 10) {
                    dfs_set_activation_limit(lim);
                    dfs_rng_seed(&st.rng, 4); /* each try draws the same batch */
                    s = dfs_trainer_step(tr, &loss);
                    if (s != DFS_ERR_NOMEM) break;
                    fails++;
                    bad_msg += strstr(dfs_last_error(), "out of memory for activations") == NULL;
                    bad_state += !same_bits(w0, m->net->params->data, np) || st.step != 0 || st.images_seen != 0;
                }
                dfs_set_activation_limit(0);
                CHECK(s == DFS_OK && fails >= 8, "%d threads: %d failed steps below a limit of %zu KB, then %s", threads,
                      fails, lim >> 10, s == DFS_OK ? "a step" : dfs_last_error());
                CHECK(bad_msg == 0, "%d threads: %d failures without the out-of-memory message", threads, bad_msg);
                CHECK(bad_state == 0, "%d threads: %d failed steps changed the weights or the counts", threads, bad_state);
                free(w0);
                CHECK(st.step == 1, "%d threads: the step that fitted counts once (step %ld)", threads, st.step);
            } else {
                CHECK(dfs_trainer_step(tr, &loss) == DFS_OK, "%d threads: step: %s", threads, dfs_last_error());
            }
            if (k == 0) {
                ref_loss = loss;
                ref_w = malloc(np * sizeof(float));
                memcpy(ref_w, m->net->params->data, np * sizeof(float));
            } else {
                CHECK(loss == ref_loss && same_bits(ref_w, m->net->params->data, np),
                      "%d threads: after the failures the step gives loss %.9g and weights unlike a fresh "
                      "trainer's (%.9g)", threads, loss, ref_loss);
                /* inference and sampling */
                const int n = 6;
                float *x = malloc((size_t)n * 784 * sizeof(float)), *y = malloc((size_t)n * 784 * sizeof(float));
                float *y2 = malloc((size_t)n * 784 * sizeof(float));
                int t[6] = {0, 100, 200, 500, 900, 999}, lab[6] = {0, 1, 2, 3, 4, 10};
                dfs_rng_fill_normal(&r, x, (size_t)n * 784);
                m->max_batch = 64;
                dfs_set_activation_limit(1u << 20);
                CHECK(dfs_model_predict(m, x, t, lab, n, y) == DFS_ERR_NOMEM &&
                          strstr(dfs_last_error(), "out of memory for activations"),
                      "%d threads: predict past the limit: %s", threads, dfs_last_error());
                dfs_sampler_config sc;
                dfs_sampler_config_default(&sc);
                sc.kind = DFS_SAMPLER_DDIM;
                sc.steps = 3;
                sc.guidance = 2.0f;
                sc.null_label = 10;
                dfs_rng sr;
                dfs_rng_seed(&sr, 1);
                CHECK(dfs_sample(&m->sched, &sc, dfs_model_predict, m, lab, 5, 784, &sr, y2, NULL, NULL) ==
                          DFS_ERR_NOMEM,
                      "%d threads: dfs_sample past the limit: %s", threads, dfs_last_error());
                dfs_set_activation_limit(0);
                CHECK(dfs_model_predict(m, x, t, lab, n, y) == DFS_OK, "%d threads: predict: %s", threads,
                      dfs_last_error());
                dfs_model *fresh = small_model(6, 0.0f);
                memcpy(fresh->net->params->data, m->net->params->data, np * sizeof(float));
                fresh->max_batch = 64;
                CHECK(dfs_model_predict(fresh, x, t, lab, n, y2) == DFS_OK, "predict: %s", dfs_last_error());
                CHECK(same_bits(y, y2, (size_t)n * 784), "%d threads: predict after a failure differs from a "
                      "model's that never failed", threads);
                dfs_model_free(fresh);
                free(x), free(y), free(y2);
            }
            dfs_trainer_free(tr);
            dfs_model_free(m);
        }
        free(ref_w);
    }
    dfs_set_threads(2);
    free(d.pixels);
    free(d.labels);
}

/* --init: a model takes the EMA weights of every stored tensor of its name and shape; an
 * unconditional model from a class model leaves nothing fresh (it has no class embedding), a
 * wider model takes only the few tensors of equal shape, a checkpoint of other tensors matches
 * nothing, and a file that is not a checkpoint is refused. */
static void test_init_from(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/init.safetensors", tmpdir);
    dfs_model *a = small_model(11, 0.0f);
    dfs_params *pa = a->net->params;
    for (size_t i = 0; i < pa->n; i++) pa->ema[i] = pa->data[i] * 0.5f + 0.25f; /* EMA != weights */
    dfs_train_state sa = {.seed = 11};
    CHECK(dfs_checkpoint_save(path, a, NULL, NULL, DFS_CKPT_FULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "needs the training state"),
          "a full checkpoint without a state is refused: %s", dfs_last_error());
    CHECK(dfs_checkpoint_save(path, a, &sa, NULL, DFS_CKPT_FULL) == DFS_ERR_ARG && strstr(dfs_last_error(), "all zero"),
          "a state whose generator was never seeded is refused: %s", dfs_last_error());
    dfs_rng_seed(&sa.rng, 11);
    CHECK(dfs_checkpoint_save(path, a, &sa, NULL, DFS_CKPT_FULL) == DFS_OK, "save: %s", dfs_last_error());

    dfs_model_config mc;
    dfs_unet_config_preset(&mc.unet, "small");
    mc.unet.num_classes = 0;
    mc.schedule = DFS_SCHEDULE_LINEAR, mc.T = 1000, mc.prediction = DFS_PRED_EPS;
    dfs_model *b = dfs_model_new(&mc, 12);
    int loaded = -1, total = -1;
    char *fresh = NULL;
    dfs_status s = dfs_checkpoint_init_from(b, path, &loaded, &total, &fresh);
    CHECK(s == DFS_OK, "init_from: %s", dfs_last_error());
    const dfs_params *pb = b->net->params;
    CHECK(loaded == pb->count && total == pb->count && fresh && !*fresh, "loaded %d of %d, fresh '%s'", loaded, total,
          fresh ? fresh : "(null)");
    free(fresh);
    int same = 1, matched = 0;
    for (int i = 0; i < pb->count; i++)
        for (int j = 0; j < pa->count; j++)
            if (!strcmp(pb->t[i]->name, pa->t[j]->name)) {
                matched++;
                same &= memcmp(pb->t[i]->data, pa->ema + (pa->t[j]->data - pa->data), pb->t[i]->n * sizeof(float)) == 0;
            }
    CHECK(matched == pb->count && same, "every tensor holds the stored EMA weights (%d matched)", matched);
    CHECK(same_bits(pb->data, pb->ema, pb->n), "the EMA restarts from the loaded weights");
    CHECK(pb->count < pa->count, "the class embedding is the only difference (%d vs %d tensors)", pb->count, pa->count);

    dfs_unet_config_preset(&mc.unet, "small");
    mc.unet.base_channels *= 2;
    dfs_model *c = dfs_model_new(&mc, 13);
    char *cfresh = NULL;
    s = dfs_checkpoint_init_from(c, path, &loaded, &total, &cfresh);
    CHECK(s == DFS_OK && loaded > 0 && loaded < total && cfresh && strstr(cfresh, "time_mlp.0.weight"),
          "a wider model takes only the tensors of equal shape: %d of %d, fresh %.80s", loaded, total,
          cfresh ? cfresh : dfs_last_error());
    free(cfresh);

    /* a diffuse checkpoint whose one tensor no model has */
    snprintf(path, sizeof path, "%s/other.safetensors", tmpdir);
    dfs_st_writer *w = dfs_st_writer_new();
    const int64_t shape[1] = {3};
    const float vals[3] = {1, 2, 3};
    CHECK(w && dfs_st_writer_meta(w, "format", "diffuse-1") == DFS_OK &&
              dfs_st_writer_add(w, "something.else", DFS_DT_F32, 1, shape, vals) == DFS_OK &&
              dfs_st_writer_write(w, path) == DFS_OK, "write other: %s", dfs_last_error());
    dfs_st_writer_free(w);
    float before = c->net->params->data[0];
    CHECK(dfs_checkpoint_init_from(c, path, &loaded, NULL, NULL) == DFS_ERR_SHAPE && loaded == 0,
          "a checkpoint of other tensors matches nothing: %s", dfs_last_error());
    CHECK(c->net->params->data[0] == before, "and the model keeps its weights");
    snprintf(path, sizeof path, "%s/garbage.safetensors", tmpdir);
    FILE *f = fopen(path, "wb");
    if (f) fputs("not a checkpoint at all", f), fclose(f);
    CHECK(dfs_checkpoint_init_from(c, path, NULL, NULL, NULL) != DFS_OK, "garbage refused");
    dfs_model_free(a), dfs_model_free(b), dfs_model_free(c);
}

/* dfs_model_nll_bpd: the bound of the EMA weights (the same bits as dfs_nll_bpd with the EMA
 * swapped in by hand, same seed), of the live ones with raw, and the model's weights are as
 * before afterwards. A control: EMA and live weights differ, so do their bounds. */
static void test_model_nll(void) {
    dfs_model_config mc;
    dfs_unet_config_preset(&mc.unet, "small");
    mc.unet.dropout = 0;
    mc.schedule = DFS_SCHEDULE_LINEAR;
    mc.T = 8;
    mc.prediction = DFS_PRED_EPS;
    dfs_model *m = dfs_model_new(&mc, 31);
    if (!m) {
        CHECK(0, "new model: %s", dfs_last_error());
        return;
    }
    dfs_params *p = m->net->params;
    for (size_t i = 0; i < p->n; i++) p->ema[i] = p->data[i] * 0.9f;
    float *before = malloc(p->n * sizeof(float));
    memcpy(before, p->data, p->n * sizeof(float));
    const size_t dim = (size_t)mc.unet.in_channels * mc.unet.image_size * mc.unet.image_size;
    float *x = malloc(2 * dim * sizeof(float));
    dfs_rng r;
    dfs_rng_seed(&r, 5);
    for (size_t i = 0; i < 2 * dim; i++) x[i] = 2 * dfs_rng_uniform(&r) - 1;
    double ema[2], raw[2], hand[2];
    dfs_rng_seed(&r, 6);
    dfs_status s1 = dfs_model_nll_bpd(m, NULL, x, 2, 0, &r, ema);
    dfs_rng_seed(&r, 6);
    dfs_status s2 = dfs_model_nll_bpd(m, NULL, x, 2, 1, &r, raw);
    CHECK(s1 == DFS_OK && s2 == DFS_OK, "dfs_model_nll_bpd runs: %s", dfs_last_error());
    CHECK(!memcmp(before, p->data, p->n * sizeof(float)), "the live weights are back afterwards");
    dfs_params_swap_ema(p);
    dfs_rng_seed(&r, 6);
    dfs_nll_bpd(&m->sched, mc.prediction, dfs_model_predict, m, NULL, x, 2, dim, &r, hand);
    dfs_params_swap_ema(p);
    CHECK(ema[0] == hand[0] && ema[1] == hand[1], "the EMA weights' bound: %.9g %.9g, by hand %.9g %.9g", ema[0],
          ema[1], hand[0], hand[1]);
    CHECK(raw[0] != ema[0] && isfinite(raw[0]) && isfinite(ema[0]),
          "raw: the live weights' bound %.9g, not the EMA's %.9g", raw[0], ema[0]);
    free(before);
    free(x);
    dfs_model_free(m);
}

int main(void) {
    dfs_set_threads(2);
    if (!mkdtemp(tmpdir)) return 1;
    test_sizes();
    test_fast_paths();
    test_parallel_step();
    test_out_of_memory();
    test_checkpoint_and_resume();
    test_init_from();
    test_model_nll();
    test_learning();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_train");
}
