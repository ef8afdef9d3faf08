/* train_sample.c - train a small class-conditional U-Net on Fashion-MNIST for a few steps,
 * then draw one sample of each class with classifier-free guidance and write them as a PNG.
 *
 *   examples/train_sample OUT.png [STEPS]      (STEPS: training steps, default 30)
 *
 * A few seconds on two cores. Thirty steps teach the network little: the samples are blurry
 * shapes, not clothes (the shipped models/fmnist.safetensors took 7,000 steps of the larger
 * "fmnist" preset). What this shows is the API of a whole run: data, model, trainer, sampling,
 * pictures, and a status checked after every call. It needs Debian's dataset-fashion-mnist.
 * Exits 1 when a call fails or the training loss did not fall. */
#include <diffuse.h>

#include <stdio.h>
#include <stdlib.h>

#define IMAGES 256  /* training images: the first 256 of the 60,000 */
#define BATCH 32
#define CLASSES 10  /* one sample of each */

/* The library prints nothing itself; this passes its warnings and errors to stderr. */
static void log_to_stderr(dfs_log_level level, const char *msg, void *user) {
    (void)user;
    if (level >= DFS_LOG_WARN) fprintf(stderr, "diffuse: %s\n", msg);
}

/* One line naming the failed call and the library's description of why. */
static int fail(const char *what, dfs_status s) {
    fprintf(stderr, "train_sample: %s: %s (%s)\n", what, dfs_last_error(), dfs_status_str(s));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: train_sample OUT.png [STEPS]\n");
        return 2;
    }
    const char *out = argv[1];
    const int steps = argc > 2 ? atoi(argv[2]) : 30;
    if (steps < 10 || steps > 100000) {
        fprintf(stderr, "train_sample: STEPS must be 10..100000\n");
        return 2;
    }
    dfs_set_log(log_to_stderr, NULL);
    dfs_set_threads(2);
    dfs_status s;

    /* Data: 28x28 gray images with labels 0..9, pixels 0..255 (the trainer scales them to
     * [-1, 1]). Keeping the first IMAGES is a matter of the count: pixels and labels are
     * stored image by image. */
    dfs_dataset data;
    if ((s = dfs_load_fashion_mnist(&data, 1)) != DFS_OK) return fail("loading Fashion-MNIST", s);
    if (data.n > IMAGES) data.n = IMAGES;

    /* Model: the "small" U-Net preset (28x28, 10 classes, about 0.18 M parameters) with the
     * DDPM diffusion settings: linear schedule, T = 1000, the network predicts the noise. */
    dfs_model_config mc = {.schedule = DFS_SCHEDULE_LINEAR, .T = 1000, .prediction = DFS_PRED_EPS};
    if ((s = dfs_unet_config_preset(&mc.unet, "small")) != DFS_OK) return fail("preset", s);
    mc.unet.attn[1] = 0; /* without its attention layer: a third of the time */
    dfs_model *m = dfs_model_new(&mc, 1);
    if (!m) return fail("dfs_model_new", DFS_ERR_ARG);

    /* Trainer: AdamW with a short warm-up and a higher learning rate than the default, for a
     * run this short. The training state carries the seed of the data order and the
     * generator of noise, time steps and dropout: the same seeds give the same run. */
    dfs_train_config tc;
    dfs_train_config_default(&tc);
    tc.batch = BATCH;
    tc.opt.lr = 2e-3f;
    tc.opt.warmup = 10;
    dfs_train_state st = {.seed = 1};
    dfs_rng_seed(&st.rng, 1);
    dfs_trainer *tr;
    if ((s = dfs_trainer_new(&tr, m, &tc, &data, &st)) != DFS_OK) return fail("dfs_trainer_new", s);
    double first = 0, last = 0; /* mean loss of the first and the last 5 steps */
    for (int i = 0; i < steps; i++) {
        float loss;
        if ((s = dfs_trainer_step(tr, &loss)) != DFS_OK) return fail("dfs_trainer_step", s);
        if (i < 5) first += loss / 5;
        if (i >= steps - 5) last += loss / 5;
        if (i % 10 == 0 || i == steps - 1) printf("step %3d  loss %.4f\n", i + 1, loss);
    }
    dfs_trainer_free(tr);

    /* Sampling: DDIM in 20 steps, guidance w = 2 (the model's own null label is the "no class"
     * of guidance), on the EMA weights. */
    dfs_sample_request req;
    dfs_sample_request_default(&req);
    req.sampler.kind = DFS_SAMPLER_DDIM;
    req.sampler.steps = 20;
    req.sampler.guidance = 2.0f;
    int labels[CLASSES];
    for (int c = 0; c < CLASSES; c++) labels[c] = c;
    req.labels = labels;
    req.n = CLASSES;
    const int S = mc.unet.image_size, C = mc.unet.in_channels;
    float *x = malloc(sizeof(float) * CLASSES * C * S * S); /* (n, C, S, S) in [-1, 1] */
    if (!x) return fail("samples", DFS_ERR_NOMEM);
    dfs_rng rng;
    dfs_rng_seed(&rng, 7);
    if ((s = dfs_model_sample(m, &req, &rng, x)) != DFS_OK) return fail("dfs_model_sample", s);
    if ((s = dfs_png_write_grid(out, x, CLASSES, C, S, S, CLASSES)) != DFS_OK) return fail(out, s);
    printf("wrote %s: one sample of each of the %d classes\n", out, CLASSES);

    free(x);
    dfs_model_free(m);
    dfs_dataset_free(&data);
    if (!(last < first)) {
        fprintf(stderr, "train_sample: the loss did not fall (first steps %.4f, last steps %.4f)\n", first, last);
        return 1;
    }
    printf("train_sample: the loss fell from %.4f to %.4f\n", first, last);
    return 0;
}
