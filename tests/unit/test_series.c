/* test_series.c - time-series models (include/diffuse/series.h): float .npy files, calendar
 * values, normalisation on the training span only, checkpoints round-tripped and bad ones
 * refused, given entries returned bit for bit, and a model trained on an AR(1) series whose
 * forecasts match the exact conditional distribution. */
#include "diffuse.h"
#include "check.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static const char *P(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static int err_has(const char *s) { return strstr(dfs_last_error(), s) != NULL; }

static int64_t T(const char *text) {
    int64_t t = 0;
    if (dfs_csv_parse_time(text, strlen(text), &t) != DFS_OK) {
        fprintf(stderr, "bad time %s\n", text);
        exit(2);
    }
    return t;
}

/* a daily series of n steps and K features from 2000-01-01, all observed, names f0, f1, ... */
static dfs_series make_series(int n, int K) {
    dfs_series s = {.n_steps = n, .n_features = K, .step = 86400};
    s.values = calloc((size_t)n * K, sizeof *s.values);
    s.observed = malloc((size_t)n * K);
    s.times = malloc(sizeof *s.times * n);
    s.names = calloc((size_t)K, sizeof *s.names);
    if (!s.values || !s.observed || !s.times || !s.names) exit(2);
    memset(s.observed, 1, (size_t)n * K);
    for (int i = 0; i < n; i++) s.times[i] = T("2000-01-01") + (int64_t)i * 86400;
    for (int k = 0; k < K; k++) {
        s.names[k] = malloc(16);
        if (!s.names[k]) exit(2);
        snprintf(s.names[k], 16, "f%d", k);
    }
    return s;
}

/* x_t = phi x_{t-1} + e_t, e ~ N(0, 1), started from the stationary law, in every feature */
static void fill_ar1(dfs_series *s, double phi, uint64_t seed) {
    dfs_rng r;
    dfs_rng_seed(&r, seed);
    const int K = s->n_features;
    for (int k = 0; k < K; k++) {
        double x = dfs_rng_normal(&r) / sqrt(1 - phi * phi);
        for (int i = 0; i < s->n_steps; i++) {
            x = phi * x + dfs_rng_normal(&r);
            s->values[(size_t)i * K + k] = (float)x;
        }
    }
}

/* ---- .npy ---------------------------------------------------------------------------------- */

static void test_npy(void) {
    float f[6] = {1.5f, -2.25f, NAN, 3e38f, -0.0f, 1e-40f};
    double d[3] = {1262304000.0, -1.0 / 3, 0.1};
    size_t shf[2] = {2, 3}, shd[1] = {3}, sh[DFS_MAXDIM];
    int nd = 0;
    float *fr = NULL;
    double *dr = NULL;
    CHECK(dfs_npy_write_f32(P("f.npy"), f, 2, shf) == DFS_OK, "write f32: %s", dfs_last_error());
    CHECK(dfs_npy_read_f32(P("f.npy"), &fr, &nd, sh) == DFS_OK, "read f32: %s", dfs_last_error());
    CHECK(fr && nd == 2 && sh[0] == 2 && sh[1] == 3 && !memcmp(fr, f, sizeof f), "f32 round trip bit for bit (NaN, -0, subnormal)");
    free(fr);
    CHECK(dfs_npy_write_f64(P("d.npy"), d, 1, shd) == DFS_OK, "write f64");
    CHECK(dfs_npy_read_f64(P("d.npy"), &dr, &nd, sh) == DFS_OK && nd == 1 && sh[0] == 3 && !memcmp(dr, d, sizeof d),
          "f64 round trip bit for bit");
    free(dr);
    dr = NULL;
    CHECK(dfs_npy_read_f64(P("f.npy"), &dr, &nd, sh) == DFS_ERR_FORMAT && err_has("float64") && !dr,
          "a float32 file read as float64 is refused: %s", dfs_last_error());
    fr = NULL;
    CHECK(dfs_npy_read_f32(P("d.npy"), &fr, &nd, sh) == DFS_ERR_FORMAT && err_has("float32") && !fr,
          "a float64 file read as float32 is refused: %s", dfs_last_error());
    /* a truncated file */
    FILE *fp = fopen(P("f.npy"), "r+b");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    CHECK(truncate(P("f.npy"), n - 3) == 0, "truncate");
    CHECK(dfs_npy_read_f32(P("f.npy"), &fr, &nd, sh) == DFS_ERR_FORMAT && err_has("truncated"),
          "a truncated float32 file is refused: %s", dfs_last_error());
}

/* ---- calendar ------------------------------------------------------------------------------ */

static void test_calendar(void) {
    int64_t t[4] = {T("2015-01-01"), T("2015-01-01 06:00:00"), T("2015-07-02 12:00:00"), T("2016-12-31 18:00:00")};
    float c[4 * DFS_SERIES_CALENDAR];
    dfs_series_calendar(t, 4, c);
    /* sin and cos of multiples of pi/2 in double, rounded to float: within 1.3e-16 of the exact
     * 0 or +-1 before rounding, so exact after it except where the value is ~0 (|sin(pi)| =
     * 1.2e-16 in double stays that small in float) */
    CHECK(c[0] == 0 && c[1] == 1 && c[2] == 0 && c[3] == 1, "midnight of 1 January: (0, 1, 0, 1), got (%g %g %g %g)", c[0], c[1], c[2], c[3]);
    CHECK(c[4] == 1 && fabsf(c[5]) < 1e-15f, "06:00 is a quarter day: sin 1, cos 0 (%g %g)", c[4], c[5]);
    /* 2015-07-02 12:00 is day 182.5 of 365: half the year */
    CHECK(fabsf(c[10]) < 1e-15f && c[11] == -1 && fabsf(c[8]) < 1e-15f && c[9] == -1,
          "noon of 2 July 2015 is half a day and half a year (%g %g %g %g)", c[8], c[9], c[10], c[11]);
    /* 2016 is a leap year: 31 December 18:00 is (365 + 0.75) / 366 of it */
    double y = (365 + 0.75) / 366;
    CHECK_CLOSE(c[14], sin(2 * M_PI * y), 6e-8, 0, "leap year's last evening: sin"); /* one float rounding */
    CHECK_CLOSE(c[15], cos(2 * M_PI * y), 6e-8, 0, "leap year's last evening: cos");
}

/* ---- model, normalisation, checkpoints ------------------------------------------------------ */

static void small_config(dfs_series_config *c, int window) {
    dfs_series_config_default(c);
    c->window = window;
    c->net.channels = 8;
    c->net.heads = 2;
    c->net.layers = 1;
    c->net.ff = 8;
    c->net.step_dim = 8;
    c->net.time_dim = 4;
    c->net.feature_dim = 2;
}

static void test_model(void) {
    dfs_series s = make_series(40, 2);
    for (int i = 0; i < 40; i++) {
        s.values[i * 2] = (float)(i % 7);
        s.values[i * 2 + 1] = (float)(100 + (i % 3) * 0.5);
    }
    s.observed[5 * 2] = 0; /* a gap: not counted */
    s.values[5 * 2] = NAN;
    dfs_series_config c;
    small_config(&c, 8);
    dfs_series_model *m = NULL;
    CHECK(dfs_series_model_new(&m, &c, &s, 30, 7) == DFS_OK && m, "new: %s", dfs_last_error());
    if (!m) return;
    /* the mean and sd of rows 0..29 of feature 0 without row 5, in double */
    double sum = 0, sq = 0;
    int n = 0;
    for (int i = 0; i < 30; i++)
        if (i != 5) sum += i % 7, n++;
    for (int i = 0; i < 30; i++)
        if (i != 5) sq += (i % 7 - sum / n) * (i % 7 - sum / n);
    /* the same sums in another order: within a few units of double rounding of values ~ 100 */
    CHECK_CLOSE(m->mean[0], sum / n, 1e-13, 0, "mean over the observed training rows");
    CHECK_CLOSE(m->sd[0], sqrt(sq / (n - 1)), 1e-13, 0, "sample sd over the observed training rows");
    CHECK(m->K == 2 && !strcmp(m->names[1], "f1") && m->step == 86400 && m->cfg.net.features == 2 &&
              m->cfg.net.calendar == DFS_SERIES_CALENDAR, "names, step and sizes");
    /* rows after the training span do not count */
    dfs_series_model *m2 = NULL;
    s.values[35 * 2] = 1e6f;
    CHECK(dfs_series_model_new(&m2, &c, &s, 30, 7) == DFS_OK && m2->mean[0] == m->mean[0] && m2->sd[0] == m->sd[0],
          "normalisation ignores rows past the training span");
    /* same seed, same weights */
    dfs_params *p1 = dfs_csdi_params(m->net), *p2 = dfs_csdi_params(m2->net);
    CHECK(p1->n == p2->n && !memcmp(p1->data, p2->data, p1->n * sizeof(float)), "same seed, same initial weights");
    dfs_series_model_free(m2);

    /* a constant feature cannot be normalised */
    dfs_series cs = make_series(20, 1);
    for (int i = 0; i < 20; i++) cs.values[i] = 3;
    m2 = NULL;
    CHECK(dfs_series_model_new(&m2, &c, &cs, 20, 1) == DFS_ERR_ARG && !m2 && err_has("f0") && err_has("spread"),
          "a constant feature is refused by name: %s", dfs_last_error());
    dfs_series_free(&cs);

    /* checkpoints: a full one round-trips every block of the parameters and the state */
    dfs_params *p = dfs_csdi_params(m->net);
    for (size_t i = 0; i < p->n; i++) p->ema[i] = p->data[i] * 0.5f, p->m[i] = (float)i, p->v[i] = 1.0f / (1 + i);
    m->sampling = (dfs_sampling_recipe){.set = 1, .kind = DFS_SAMPLER_DDIM, .steps = 10, .guidance = 1};
    dfs_train_state st = {.step = 12, .images_seen = 96, .seed = 5, .wall_seconds = 1.5};
    dfs_rng_seed(&st.rng, 9);
    CHECK(dfs_series_save(P("full.safetensors"), m, &st, "{\"x\":1}", DFS_CKPT_FULL) == DFS_OK, "save full: %s", dfs_last_error());
    dfs_series_model *r = NULL;
    dfs_train_state rs;
    int opt = 0;
    char *tj = NULL;
    CHECK(dfs_series_load(P("full.safetensors"), &r, &rs, &opt, &tj) == DFS_OK && r, "load full: %s", dfs_last_error());
    if (r) {
        dfs_params *q = dfs_csdi_params(r->net);
        CHECK(q->n == p->n && !memcmp(q->data, p->data, p->n * 4) && !memcmp(q->ema, p->ema, p->n * 4) &&
                  !memcmp(q->m, p->m, p->n * 4) && !memcmp(q->v, p->v, p->n * 4),
              "weights, EMA and moments bit for bit");
        CHECK(opt == 1 && rs.step == 12 && rs.images_seen == 96 && rs.seed == 5 && !memcmp(&rs.rng, &st.rng, sizeof st.rng),
              "state and generator");
        CHECK(tj && !strcmp(tj, "{\"x\":1}"), "training record");
        /* doubles through cJSON's %.17g: exact */
        CHECK(r->K == 2 && r->mean[0] == m->mean[0] && r->sd[1] == m->sd[1] && !strcmp(r->names[0], "f0") &&
                  r->step == 86400 && r->cfg.window == 8 && r->cfg.T == 50 && r->cfg.schedule == DFS_SCHEDULE_QUAD,
              "normalisation, names, step, window, schedule");
        CHECK(r->sampling.set && r->sampling.kind == DFS_SAMPLER_DDIM && r->sampling.steps == 10, "sampling recipe");
        CHECK(!memcmp(&r->cfg.net, &m->cfg.net, sizeof m->cfg.net), "network config");
    }
    free(tj);
    dfs_series_model_free(r);
    r = NULL;
    /* a sampling checkpoint holds the EMA weights as the weights */
    CHECK(dfs_series_save(P("samp.safetensors"), m, NULL, NULL, DFS_CKPT_SAMPLING) == DFS_OK, "save sampling");
    CHECK(dfs_series_load(P("samp.safetensors"), &r, NULL, &opt, NULL) == DFS_OK && opt == 0 &&
              !memcmp(dfs_csdi_params(r->net)->data, p->ema, p->n * 4),
          "sampling checkpoint = EMA weights, no optimiser");
    dfs_series_model_free(r);
    r = NULL;
    CHECK(dfs_series_save(P("bad.safetensors"), m, NULL, NULL, DFS_CKPT_FULL) == DFS_ERR_ARG, "a full checkpoint needs the state");
    dfs_train_state z = {.step = 1};
    CHECK(dfs_series_save(P("bad.safetensors"), m, &z, NULL, DFS_CKPT_FULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "never seeded") && access(P("bad.safetensors"), F_OK) != 0,
          "a state whose generator was never seeded is not written (load would refuse it): %s", dfs_last_error());
    CHECK(access(P("bad.safetensors"), F_OK) != 0, "and writes nothing");

    /* an image model's checkpoint is refused with what it is */
    dfs_model_config mc = {.schedule = DFS_SCHEDULE_LINEAR, .T = 10, .prediction = DFS_PRED_EPS};
    dfs_unet_config_preset(&mc.unet, "small");
    dfs_model *um = dfs_model_new(&mc, 1);
    CHECK(um && dfs_checkpoint_save(P("unet.safetensors"), um, NULL, NULL, DFS_CKPT_SAMPLING) == DFS_OK, "an image model");
    dfs_model_free(um);
    CHECK(dfs_series_load(P("unet.safetensors"), &r, NULL, NULL, NULL) == DFS_ERR_FORMAT && !r && err_has("image model"),
          "refused with a message that says it is an image model: %s", dfs_last_error());
    /* malformed series metadata */
    const char *bad[][3] = {
        {"series", "{\"names\":[\"a\"],\"mean\":[0],\"std\":[1],\"step\":86400,\"window\":8}", "names, mean, std"},
        {"series", "{\"names\":[\"a\",\"b\"],\"mean\":[0,0],\"std\":[1,0],\"step\":86400,\"window\":8}", "names, mean, std"},
        {"series", "{\"names\":[\"a\",\"b\"],\"mean\":[0,0],\"std\":[1,1],\"step\":86400}", "metadata"},
        /* day_of_year is 0 or 1 (absent: 1) */
        {"series", "{\"names\":[\"a\",\"b\"],\"mean\":[0,0],\"std\":[1,1],\"step\":86400,\"window\":8,\"day_of_year\":2}", "metadata"},
        /* a hostile header: 4096 channels in 64 layers (tens of GB) for a file of a few KB */
        {"csdi", "{\"features\":2,\"channels\":4096,\"layers\":64,\"heads\":8,\"ff\":64,\"step_dim\":8,"
                 "\"time_dim\":4,\"feature_dim\":2,\"calendar\":4}", "too many parameters"}};
    for (int i = 0; i < (int)(sizeof bad / sizeof *bad); i++) {
        /* the good file's tensors and metadata, with "series" replaced */
        dfs_safetensors f;
        CHECK(dfs_st_load(&f, P("samp.safetensors")) == DFS_OK, "reload");
        dfs_st_writer *w = dfs_st_writer_new();
        for (int j = 0; j < f.count; j++) dfs_st_writer_add(w, f.t[j].name, f.t[j].dtype, f.t[j].ndim, f.t[j].shape, f.t[j].data);
        for (int j = 0; j < f.nmeta; j++) dfs_st_writer_meta(w, f.meta_keys[j], f.meta_vals[j]);
        dfs_st_writer_meta(w, bad[i][0], bad[i][1]);
        CHECK(dfs_st_writer_write(w, P("meta.safetensors")) == DFS_OK, "write");
        dfs_st_writer_free(w);
        dfs_st_free(&f);
        CHECK(dfs_series_load(P("meta.safetensors"), &r, NULL, NULL, NULL) == DFS_ERR_FORMAT && !r && err_has(bad[i][2]),
              "bad series metadata %d refused: %s", i, dfs_last_error());
    }
    dfs_series_model_free(m);
    dfs_series_free(&s);
}

/* ---- sampling keeps what is given ------------------------------------------------------------ */

static void test_given_entries(void) {
    dfs_series s = make_series(60, 2);
    fill_ar1(&s, 0.5, 3);
    dfs_series_config c;
    small_config(&c, 10);
    dfs_series_model *m = NULL;
    CHECK(dfs_series_model_new(&m, &c, &s, 60, 2) == DFS_OK, "new");
    /* random weights everywhere (the last layer too), so the net's output is not 0 */
    dfs_params *p = dfs_csdi_params(m->net);
    dfs_rng r;
    dfs_rng_seed(&r, 4);
    for (size_t i = 0; i < p->n; i++) p->data[i] = p->ema[i] = 0.3f * (float)dfs_rng_normal(&r);
    const int W = 3, L = 10, K = 2, S = 4;
    float v[W * L * K];
    uint8_t kn[W * L * K];
    int64_t tm[W * L];
    for (int j = 0; j < W * L * K; j++) {
        v[j] = s.values[j + 7] * 3.7f + 0.1f; /* values with full mantissas */
        kn[j] = (j * 7 % 5) != 0;
        if (!kn[j]) v[j] = NAN;
    }
    for (int j = 0; j < W * L; j++) tm[j] = s.times[j];
    dfs_series_request q;
    dfs_series_request_default(&q);
    q.values = v, q.known = kn, q.times = tm, q.W = W, q.L = L, q.S = S;
    q.sampler.kind = DFS_SAMPLER_DDPM;
    q.sampler.steps = 50;
    float *out = malloc(sizeof(float) * W * S * L * K), *out2 = malloc(sizeof(float) * W * S * L * K);
    dfs_rng g;
    dfs_rng_seed(&g, 11);
    CHECK(dfs_series_sample(m, &q, &g, out) == DFS_OK, "sample: %s", dfs_last_error());
    int same = 1, finite = 1, spread = 0;
    for (int w = 0; w < W; w++)
        for (int k = 0; k < S; k++)
            for (int j = 0; j < L * K; j++) {
                float o = out[((size_t)w * S + k) * L * K + j], want = v[w * L * K + j];
                if (kn[w * L * K + j]) same &= !memcmp(&o, &want, 4);
                else finite &= isfinite(o), spread |= k > 0 && o != out[((size_t)w * S) * L * K + j];
            }
    CHECK(same, "given entries come back bit for bit in every sample");
    CHECK(finite && spread, "the others are drawn: finite, and they differ between samples");
    dfs_rng_seed(&g, 11);
    CHECK(dfs_series_sample(m, &q, &g, out2) == DFS_OK && !memcmp(out, out2, sizeof(float) * W * S * L * K),
          "the same seed draws the same samples");
    /* the EMA weights are swapped back */
    CHECK(p->data[0] == p->ema[0], "the weights are as before");
    /* a known entry that is not a number is refused */
    kn[0] = 1, v[0] = NAN;
    CHECK(dfs_series_sample(m, &q, &g, out2) == DFS_ERR_ARG && err_has("marked known"), "a NaN marked known: %s", dfs_last_error());
    free(out);
    free(out2);
    dfs_series_model_free(m);
    dfs_series_free(&s);
}

/* ---- learning: an AR(1) series ----------------------------------------------------------------- */

/* Trained on x_t = 0.8 x_{t-1} + e_t, the model's forecast of step h after a context must have
 * the exact conditional law N(0.8^h x_last, (1 - 0.8^2h) / (1 - 0.8^2)). */
static void test_ar1(void) {
    const double phi = 0.8;
    dfs_series s = make_series(6000, 1);
    fill_ar1(&s, phi, 21);
    dfs_series_config c;
    dfs_series_config_default(&c);
    c.window = 8;
    c.net.channels = 16, c.net.heads = 2, c.net.layers = 2, c.net.ff = 16;
    c.net.step_dim = 32, c.net.time_dim = 16, c.net.feature_dim = 4;
    dfs_series_model *m = NULL;
    CHECK(dfs_series_model_new(&m, &c, &s, 5000, 1) == DFS_OK, "new");
    dfs_series_train_config tc;
    dfs_series_train_config_default(&tc);
    tc.batch = 32;
    tc.p_forecast = 0.5f; /* the task tested here */
    dfs_train_state st = {.seed = 1};
    dfs_rng_seed(&st.rng, 2);
    dfs_series_trainer *t = NULL;
    CHECK(dfs_series_trainer_new(&t, m, &tc, &s, 5000, &st) == DFS_OK, "trainer: %s", dfs_last_error());
    const int steps = 3000;
    dfs_series_trainer_set_lr(t, 2e-3f);
    float loss = 0, first = 0, avg = 0;
    for (int i = 0; i < steps && t; i++) {
        if (i == steps * 3 / 4 || i == steps * 9 / 10) dfs_series_trainer_set_lr(t, i == steps * 3 / 4 ? 2e-4f : 2e-5f);
        if (dfs_series_trainer_step(t, &loss) != DFS_OK) break;
        if (i < 50) first += loss / 50;
        if (i >= steps - 100) avg += loss / 100;
    }
    CHECK(st.step == steps, "trained %d steps (%s)", steps, dfs_last_error());
    /* a model that predicts eps = 0 has loss E eps^2 = 1 */
    CHECK(avg < 0.6 * first, "the loss falls: first 50 steps %.3f, last 100 %.3f", first, avg);
    /* forecasts of 2 steps after 6 from the held-out rows */
    const int W = 100, L = 8, H = 2, S = 100;
    float *v = malloc(sizeof(float) * W * L), *out = malloc(sizeof(float) * W * S * L);
    uint8_t *kn = malloc((size_t)W * L);
    int64_t *tm = malloc(sizeof(int64_t) * W * L);
    for (int w = 0; w < W; w++)
        for (int l = 0; l < L; l++) {
            const int row = 5000 + w * 9 + l;
            v[w * L + l] = l < L - H ? s.values[row] : NAN;
            kn[w * L + l] = l < L - H;
            tm[w * L + l] = s.times[row];
        }
    dfs_series_request q;
    dfs_series_request_default(&q);
    q.values = v, q.known = kn, q.times = tm, q.W = W, q.L = L, q.S = S;
    q.sampler.kind = DFS_SAMPLER_DDPM;
    q.sampler.steps = 50;
    dfs_rng g;
    dfs_rng_seed(&g, 3);
    CHECK(dfs_series_sample(m, &q, &g, out) == DFS_OK, "forecast: %s", dfs_last_error());
    for (int h = 1; h <= H; h++) {
        const double var = (1 - pow(phi, 2 * h)) / (1 - phi * phi);
        double z2 = 0, pooled = 0;
        for (int w = 0; w < W; w++) {
            const double want = pow(phi, h) * v[w * L + L - H - 1];
            double mean = 0, ss = 0;
            for (int k = 0; k < S; k++) mean += out[((size_t)w * S + k) * L + L - H - 1 + h] / S;
            for (int k = 0; k < S; k++) {
                double d = out[((size_t)w * S + k) * L + L - H - 1 + h] - mean;
                ss += d * d;
            }
            z2 += (mean - want) * (mean - want) / var / W;
            pooled += ss / (S - 1) / W;
        }
        /* Monte Carlo alone: each window's mean of S = 100 draws misses by sd sqrt(var / S), so
         * the mean of z^2 over 100 windows is about 1/S = 0.01 (chi-square, relative sd 0.14);
         * the pooled variance of 9900 draws is within 3 %. The rest is the model's own error,
         * which no rounding argument bounds: this 16-channel model after 3000 steps measured
         * z2 = 0.07 to 0.11 and variance ratios 1.16 to 1.21 at h = 1 and 0.77 to 0.90 at h = 2
         * over five configurations (too wide one step ahead, too narrow two ahead; see
         * docs/TIME_SERIES.md). The bounds say the forecast uses the context and is calibrated
         * to within a third: a model that ignored the context would give z2 = phi^2h x^2 / var
         * ~ 1.8 and a variance ratio of 1 / (1 - phi^2h) = 2.8 at h = 1 (1.6 and 1.7 at h = 2). */
        printf("ar1: h = %d: mean error^2 / var = %.4f, variance ratio %.3f\n", h, z2, pooled / var);
        CHECK(z2 < 0.2, "h = %d: forecast means match phi^h x (mean z^2 %.4f)", h, z2);
        CHECK(pooled / var > 0.67 && pooled / var < 1.5, "h = %d: forecast spread matches (variance ratio %.3f)", h, pooled / var);
    }
    free(v);
    free(out);
    free(kn);
    free(tm);
    dfs_series_trainer_free(t);
    dfs_series_model_free(m);
    dfs_series_free(&s);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_series.XXXXXX");
    if (!mkdtemp(tmpdir)) return 2;
    test_npy();
    test_calendar();
    test_model();
    test_given_entries();
    const char *set = getenv("DFS_TEST_SET");
    if (getenv("DFS_SANITIZE") || (set && !strcmp(set, "numerics")))
        printf("test_series: the AR(1) learning check skipped under %s\n", getenv("DFS_SANITIZE") ? "the sanitizer" : "'numerics'");
    else
        test_ar1();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_series");
}
