/* test_classifier.c - the classifier's ops and the classifier itself.
 *
 * 1. dfs_cross_entropy: values worked out by hand; forward and gradient against the
 *    term-by-term double-precision reference (src/ref/ref.h); backward against central finite
 *    differences; invariance to adding a constant to a row (the max shift) and finite, exact
 *    results on logits of +-1e4, where the unshifted formula overflows; the no-grad path.
 * 2. The whole network: finite differences of every parameter and the input of a tiny
 *    configuration (training gradients end to end); logits = head(features); batched inference
 *    independent of the batch split; the u8 path equal to the float path; config checks.
 * 3. Files: save/load gives bit-identical logits, the config, accuracy and train metadata back;
 *    truncated, garbled, foreign, incomplete, misshapen and non-finite files are each rejected
 *    with a specific status and message.
 * 4. Training: 600 Fashion-MNIST images, a few epochs: loss falls and test accuracy is far above
 *    chance; the same seed gives bit-identical weights; bad data and arguments are refused; a
 *    callback can stop training.
 * 5. The shipped models/classifier.safetensors reaches >= 0.90 on the 10,000 test images (the
 *    first 2,000 under the sanitizer run, which is slower) and agrees with its stored accuracy
 *    up to the test images whose prediction float rounding could flip (see test_shipped).
 *
 * With --dump-parity FILE it instead writes the cross-entropy and tiny-network cases for
 * tests/parity/torch_classifier.py (tests/parity/parity_classifier.sh) and exits. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"
#include "ref/ref.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Finite differences (gradcheck.h). Cross-entropy: the loss is formed in double and rounded to
 * float once, so the roundoff of a difference is ~sqrt(2) u |L| / 2h ~ 1.3e-5 at h = 1e-2
 * (|L| ~ 3); its third derivatives are below 1 (softmax's, over N), so the truncation h^2/6
 * |d3L/dx3| is below 1.7e-5. TOL_LIN = 2e-4, relative, absolute below 1: six times their sum,
 * and a wrong term errs by order 1/N = 0.2. The network: GroupNorm over groups of 4 to 16
 * values on tiny maps has third derivatives of several hundred, so the truncation is ~1e-2 at
 * h = 1e-2 and ~1.7e-4 at 2e-3, where the roundoff (a float32 network of ~7 layers, e ~ 1e-7 /
 * 2h with the double sum) is about as large: ~2e-4 together; TOL_NET = 2e-3 is ten times
 * that. */
#define H_LIN 1e-2f
#define TOL_LIN 2e-4f
#define H_NET 2e-3f
#define TOL_NET 2e-3f

/* Cross-entropy in float32 against the double reference (src/ref/ref.h). The forward takes
 * every step in double (the row max is one of the floats, exact) and rounds the loss to float
 * once: within u |loss| (CE_LOSS_TOL, 2u for the double steps' ~1e-16). The gradient
 * c expf((z_k - m) - log s) - c [k = y], c = 1/N in float: z_k - m rounds by at most u |z_k - m|,
 * log s (stored as float) by u |log s|, their difference by u |z_k - m - log s|; expf (glibc:
 * within an ulp, 2u) and the product by c and c itself (2u) add 4u more of p_k / N, and the
 * label's term 2u / N: ce_grad_bound. */
#define CE_LOSS_TOL (2 * U32)
static double ce_grad_bound(const float *z, int K, int y, int N, int k, double p) {
    float m = z[0];
    for (int j = 1; j < K; j++) m = z[j] > m ? z[j] : m;
    double logs = 0;
    for (int j = 0; j < K; j++) logs += exp((double)z[j] - m);
    logs = log(logs);
    double d = fabs((double)z[k] - m);
    return (p * U32 * (d + fabs(logs) + d + fabs(logs) + 4) + (k == y ? 2 * U32 : 0)) / N;
}

#define SHIPPED "models/classifier.safetensors"

static dfs_rng rng;
static char tmpdir[256];

static int err_has(const char *s) {
    return strstr(dfs_last_error(), s) != NULL;
}

/* ---- 1. cross-entropy ---------------------------------------------------------------------- */

typedef struct {
    const int *labels;
} ce_args;

static dfs_tensor *f_ce(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_cross_entropy(g, in[0], ((ce_args *)u)->labels);
}

static dfs_tensor *wrap_copy(dfs_graph *g, const float *data, int ndim, const int *shape) {
    dfs_tensor *t = dfs_tensor_new(g, ndim, shape);
    memcpy(t->data, data, t->n * sizeof(float));
    return t;
}

static void test_cross_entropy(void) {
    dfs_graph *g = dfs_graph_new();

    /* hand values: two equal logits -> log 2; [1, 2, 3] with label 2 -> log(e + e^2 + e^3) - 3
     * = 0.40760596; the mean of the two rows */
    dfs_tensor *z = wrap_copy(g, (float[]){0, 0, 0, 1, 2, 3, 0, 0}, 2, (int[]){1, 2});
    dfs_tensor *l = dfs_cross_entropy(g, z, (int[]){0});
    CHECK(l->ndim == 1 && l->n == 1, "loss is a scalar (ndim %d, n %zu)", l->ndim, l->n);
    CHECK_CLOSE(l->data[0], log(2.0), 0, CE_LOSS_TOL, "ce([0,0], 0)");
    z = wrap_copy(g, (float[]){1, 2, 3}, 2, (int[]){1, 3});
    const double lse123 = log(exp(1.0) + exp(2.0) + exp(3.0));
    CHECK_CLOSE(dfs_cross_entropy(g, z, (int[]){2})->data[0], lse123 - 3, 0, CE_LOSS_TOL,
                "ce([1,2,3], 2)");
    CHECK_CLOSE(dfs_cross_entropy(g, z, (int[]){0})->data[0], lse123 - 1, 0, CE_LOSS_TOL,
                "ce([1,2,3], 0)");
    /* rows [0, 0, 1] and [2, 3, 0], both label 1: (log(2 + e) + log(e^2 + e^3 + 1) - 3) / 2 */
    z = wrap_copy(g, (float[]){0, 0, 1, 2, 3, 0}, 2, (int[]){2, 3});
    CHECK_CLOSE(dfs_cross_entropy(g, z, (int[]){1, 1})->data[0],
                (log(2.0 + exp(1.0)) + log(exp(2.0) + exp(3.0) + 1.0) - 3.0) / 2, 0, CE_LOSS_TOL,
                "ce mean of two rows");

    /* against the reference, forward and gradient, on random logits */
    enum { N = 5, K = 7 };
    float zr[N * K];
    int lab[N] = {0, 6, 3, 3, 1};
    for (int i = 0; i < N * K; i++)
        zr[i] = 3.0f * dfs_rng_normal(&rng);
    double dref[N * K];
    double lref = dfs_cross_entropy_reference(dref, zr, lab, N, K);
    dfs_graph_reset(g);
    z = wrap_copy(g, zr, 2, (int[]){N, K});
    z->requires_grad = 1;
    l = dfs_cross_entropy(g, z, lab);
    CHECK_CLOSE(l->data[0], lref, 0, CE_LOSS_TOL, "ce vs reference");
    dfs_backward(g, l);
    /* each element within ce_grad_bound; each row sums to 0 (softmax sums to 1, minus the
     * one-hot), so within the sum of its elements' bounds */
    double worst = 0, row[N] = {0}, rowb[N] = {0};
    for (int i = 0; i < N * K; i++) {
        const int r = i / K, k = i % K;
        double b = ce_grad_bound(zr + r * K, K, lab[r], N, k, dref[i] * N + (k == lab[r]));
        worst = max_err(worst, err_ratio(fabs(z->grad[i] - dref[i]), b));
        row[r] += z->grad[i], rowb[r] += b;
    }
    CHECK_RATIO(worst, "ce gradient vs reference: error %.3g of its bound", worst);
    for (int i = 0; i < N; i++)
        CHECK(fabs(row[i]) <= rowb[i], "ce gradient row %d sums to %.3g (bound %.3g)", i, row[i], rowb[i]);

    /* finite differences, including a batch of one and two classes */
    ce_args a = {lab};
    dfs_tensor *in = gc_input(2, (int[]){N, K}, &rng, 2.0f);
    gradcheck("cross_entropy (5,7)", f_ce, &in, 1, &a, H_LIN, TOL_LIN);
    gc_input_free(in);
    int one[1] = {1};
    a.labels = one;
    in = gc_input(2, (int[]){1, 2}, &rng, 1.0f);
    gradcheck("cross_entropy (1,2)", f_ce, &in, 1, &a, H_LIN, TOL_LIN);
    gc_input_free(in);

    /* stability: adding 1000 to a row changes nothing but the rounding of the logits (the
     * reference would overflow its exp in float, the op shifts by the max): the shifted floats
     * minus 1000 are exact in float (multiples of 2^-14 below 16), so the reference on them is
     * the exact answer for the shifted logits, and the op meets it as closely as above (z - m
     * is as exact for logits near 1000 as near 0). Logits of +-1e4 give exact, finite
     * results. */
    float zs[N * K], zd[N * K];
    for (int i = 0; i < N * K; i++) {
        zs[i] = zr[i] + 1000.0f;
        zd[i] = zs[i] - 1000.0f;
    }
    double dref_s[N * K];
    double lref_s = dfs_cross_entropy_reference(dref_s, zd, lab, N, K);
    dfs_graph_reset(g);
    dfs_tensor *zt = wrap_copy(g, zs, 2, (int[]){N, K});
    zt->requires_grad = 1;
    dfs_tensor *ls = dfs_cross_entropy(g, zt, lab);
    CHECK_CLOSE(ls->data[0], lref_s, 0, CE_LOSS_TOL, "ce shifted by 1000");
    dfs_backward(g, ls);
    worst = 0;
    for (int i = 0; i < N * K; i++) {
        const int r = i / K, k = i % K;
        double b = ce_grad_bound(zs + r * K, K, lab[r], N, k, dref_s[i] * N + (k == lab[r]));
        worst = max_err(worst, err_ratio(fabs(zt->grad[i] - dref_s[i]), b));
    }
    CHECK_RATIO(worst, "ce gradient shifted by 1000: error %.3g of its bound", worst);
    dfs_graph_reset(g);
    zt = wrap_copy(g, (float[]){1e4f, -1e4f, -1e4f, 1e4f}, 2, (int[]){2, 2});
    zt->requires_grad = 1;
    ls = dfs_cross_entropy(g, zt, (int[]){0, 0}); /* right (loss 0), wrong (loss 2e4) */
    /* exact: exp(-2e4) is 0 in double, so the rows give 0 and 2e4, the mean 1e4 */
    CHECK_CLOSE(ls->data[0], 1e4, 0, 0, "ce of +-1e4 logits");
    dfs_backward(g, ls);
    /* row 0: softmax = (1, 0) = onehot -> 0; row 1: softmax (0, 1) - (1, 0) = (-1, 1), / N;
     * exact too: expf(0) = 1, expf(-2e4) = 0 and c = 0.5 */
    float want[4] = {0, 0, -0.5f, 0.5f};
    for (int i = 0; i < 4; i++)
        CHECK_CLOSE(zt->grad[i], want[i], 0, 0, "ce grad at +-1e4");

    /* no-grad: the same value, nothing recorded */
    dfs_graph_reset(g);
    dfs_graph_set_grad(g, 0);
    z = wrap_copy(g, zr, 2, (int[]){N, K});
    z->requires_grad = 1;
    l = dfs_cross_entropy(g, z, lab);
    CHECK(fabs(l->data[0] - lref) <= CE_LOSS_TOL * fabs(lref), "no-grad ce %.9g vs %.9g", l->data[0], lref);
    CHECK(!l->requires_grad, "no-grad ce output requires no grad");
    dfs_graph_free(g);
}

/* ---- 2. the network ------------------------------------------------------------------------- */

/* 8x8 images, 3 classes, widths 4/4/8, 6 features, 2 groups: small enough for finite
 * differences of every parameter. */
static void tiny_config(dfs_classifier_config *c) {
    dfs_classifier_config_default(c);
    c->image_size = 8;
    c->num_classes = 3;
    c->channels[0] = 4, c->channels[1] = 4, c->channels[2] = 8;
    c->feature_dim = 6;
    c->groups = 2;
}

typedef struct {
    dfs_classifier *c;
} net_args;

static dfs_tensor *f_net(dfs_graph *g, dfs_tensor **in, void *u) {
    return dfs_classifier_graph(((net_args *)u)->c, g, in[0], NULL);
}

static void test_config(void) {
    dfs_classifier_config c;
    dfs_classifier_config_default(&c);
    CHECK(dfs_classifier_config_check(&c) == DFS_OK, "default config: %s", dfs_last_error());
    CHECK(c.image_size == 28 && c.in_channels == 1 && c.num_classes == 10 && c.feature_dim == 128,
          "default config is for Fashion-MNIST");
    c.image_size = 6;
    CHECK(dfs_classifier_config_check(&c) == DFS_ERR_ARG && err_has("8..1024"),
          "image size 6 refused: %s", dfs_last_error());
    c.image_size = 30; /* any size from 8 up: 30 -> 15 -> 8 -> 4 */
    CHECK(dfs_classifier_config_check(&c) == DFS_OK, "image size 30: %s", dfs_last_error());
    c.image_size = 1024;
    c.channels[2] = 4096;
    CHECK(dfs_classifier_config_check(&c) == DFS_ERR_ARG && err_has("too large"),
          "a feature layer of 2^35 weights refused: %s", dfs_last_error());
    dfs_classifier_config_default(&c);
    c.channels[1] = 60;
    c.groups = 8;
    CHECK(dfs_classifier_config_check(&c) == DFS_ERR_ARG && err_has("divisible"),
          "60 channels in 8 groups refused: %s", dfs_last_error());
    dfs_classifier_config_default(&c);
    c.in_channels = 2;
    dfs_classifier *cl = (dfs_classifier *)&c; /* must be set to NULL on failure */
    CHECK(dfs_classifier_new(&cl, &c, 0) == DFS_ERR_ARG && cl == NULL,
          "new with 2 input channels refused");
}

static void test_network(void) {
    dfs_classifier_config cfg;
    tiny_config(&cfg);
    dfs_classifier *c = NULL;
    CHECK(dfs_classifier_new(&c, &cfg, 7) == DFS_OK, "new tiny: %s", dfs_last_error());
    if (!c) return;
    /* parameters: 5 convs + 5 norms + feature + head, each weight and bias */
    size_t want = (4 * 1 * 9 + 4) + (4 * 4 * 9 + 4) + (4 * 4 * 9 + 4) + (8 * 4 * 9 + 8) +
                  (8 * 8 * 9 + 8) + 2 * (4 + 4 + 4 + 8 + 8) + (6 * 8 + 6) + (3 * 6 + 3);
    CHECK(c->params->n == want && c->params->count == 24,
          "tiny parameters %zu in %d tensors (want %zu in 24)", c->params->n, c->params->count,
          want);

    /* finite differences of the input and of every parameter, on a still smaller network
     * (12x12 images: maps 12, 6, 6, 3, 2; widths 2, 2, 4; 431 parameters) to keep the
     * sanitizer run short */
    {
        dfs_classifier_config mc;
        tiny_config(&mc);
        mc.image_size = 12;
        mc.channels[0] = 2, mc.channels[1] = 2, mc.channels[2] = 4;
        mc.feature_dim = 4;
        dfs_classifier *m = NULL;
        CHECK(dfs_classifier_new(&m, &mc, 8) == DFS_OK, "new micro: %s", dfs_last_error());
        if (m) {
            dfs_tensor *in[32];
            in[0] = gc_input(4, (int[]){1, 1, 12, 12}, &rng, 1.0f);
            for (int i = 0; i < m->params->count; i++)
                in[1 + i] = m->params->t[i];
            net_args a = {m};
            gradcheck("classifier (input and all parameters)", f_net, in, 1 + m->params->count, &a,
                      H_NET, TOL_NET);
            gc_input_free(in[0]);
            dfs_classifier_free(m);
        }
    }

    /* logits = head(features): the features are the head's input */
    enum { NI = 7 };
    const size_t dim = 64;
    float x[NI * 64], lg[NI * 3], ft[NI * 6], lg2[NI * 3], ft2[NI * 6];
    for (size_t i = 0; i < NI * dim; i++)
        x[i] = 2.0f * dfs_rng_uniform(&rng) - 1.0f;
    CHECK(dfs_classifier_forward(c, x, NI, lg, ft) == DFS_OK, "forward: %s", dfs_last_error());
    const dfs_tensor *hw = dfs_params_find(c->params, "head.weight");
    const dfs_tensor *hb = dfs_params_find(c->params, "head.bias");
    /* each logit a float32 sum of 6 products and the bias, against double */
    double worst = 0;
    for (int i = 0; i < NI; i++)
        for (int k = 0; k < 3; k++) {
            double s = hb->data[k], a = fabs(hb->data[k]);
            for (int f = 0; f < 6; f++) {
                double t = (double)hw->data[k * 6 + f] * ft[i * 6 + f];
                s += t, a += fabs(t);
            }
            worst = max_err(worst, err_ratio(fabs(s - lg[i * 3 + k]), sum_err(7, a) + U32 * fabs(s)));
        }
    CHECK_RATIO(worst, "logits = head(features): error %.3g of its bound", worst);
    int nonneg = 1;
    for (int i = 0; i < NI * 6; i++)
        nonneg &= ft[i] >= -0.2785f; /* min of silu */
    CHECK(nonneg, "features are SiLU outputs (>= -0.2785)");

    /* The batch split does not change an image's outputs (GroupNorm is per image) beyond
     * float rounding: a split can change the order of the sums (other GEMM shapes, other
     * kernels), not what is summed. How far two float32 evaluations of this network that
     * differ only in their summation order lie apart is measured on these same images with the
     * other kernel path (im2col + BLAS against the implicit-GEMM kernels, or the reverse: a
     * different order in every convolution); the split may differ by at most 4 times that
     * spread (the largest of a few dozen differences of the same kind), and by 16u of the
     * largest output at least. The split runs on the kernels lg was computed with. */
    float lg3[NI * 3], ft3[NI * 6];
    const dfs_kernels kern = dfs_get_kernels();
    dfs_set_kernels(kern == DFS_KERNELS_FAST ? DFS_KERNELS_BLAS : DFS_KERNELS_FAST);
    CHECK(dfs_classifier_forward(c, x, NI, lg3, ft3) == DFS_OK, "forward with the other kernels");
    dfs_set_kernels(kern);
    double spread = 0, scale = 0;
    for (int i = 0; i < NI * 3; i++)
        spread = max_err(spread, fabs(lg[i] - lg3[i])), scale = fmax(scale, fabs(lg[i]));
    for (int i = 0; i < NI * 6; i++)
        spread = max_err(spread, fabs(ft[i] - ft3[i])), scale = fmax(scale, fabs(ft[i]));
    c->max_batch = 3;
    CHECK(dfs_classifier_forward(c, x, NI, lg2, ft2) == DFS_OK, "forward in 3s");
    worst = 0;
    for (int i = 0; i < NI * 3; i++)
        worst = max_err(worst, fabs(lg[i] - lg2[i]));
    for (int i = 0; i < NI * 6; i++)
        worst = max_err(worst, fabs(ft[i] - ft2[i]));
    const double split_tol = fmax(4 * spread, 16 * U32 * scale);
    CHECK(spread == spread && worst <= split_tol,
          "batches of 3 vs 64: max difference %.3g (allowed %.3g: kernel spread %.3g)", worst, split_tol,
          spread);
    if (getenv("DFS_TEST_MARGINS")) printf("margin batch split: %.3g\n", worst / split_tol);
    /* only features, only logits */
    memset(lg2, 0, sizeof lg2);
    CHECK(dfs_classifier_forward(c, x, NI, lg2, NULL) == DFS_OK && lg2[NI * 3 - 1] != 0.0f,
          "forward with logits only");
    CHECK(dfs_classifier_forward(c, x, NI, NULL, NULL) == DFS_ERR_ARG, "no outputs refused");
    CHECK(dfs_classifier_forward(c, x, -1, lg2, NULL) == DFS_ERR_ARG, "n < 0 refused");
    CHECK(dfs_classifier_forward(c, x, 0, lg2, NULL) == DFS_OK, "n = 0 is a no-op");

    /* u8 pixels equal the float path on p / 127.5 - 1 */
    uint8_t px[NI * 64];
    for (size_t i = 0; i < NI * dim; i++) {
        px[i] = (uint8_t)dfs_rng_below(&rng, 256);
        x[i] = px[i] / 127.5f - 1.0f;
    }
    CHECK(dfs_classifier_forward(c, x, NI, lg, ft) == DFS_OK, "forward floats");
    CHECK(dfs_classifier_forward_u8(c, px, NI, lg2, ft2) == DFS_OK, "forward u8");
    CHECK(memcmp(lg, lg2, sizeof lg) == 0 && memcmp(ft, ft2, sizeof ft) == 0,
          "u8 path equals the float path bit for bit");

    dfs_classifier_free(c);
}

/* ---- 3. files ---------------------------------------------------------------------------------
 */

static size_t file_read(const char *path, unsigned char **buf) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n);
    size_t got = fread(*buf, 1, (size_t)n, f);
    fclose(f);
    return got;
}

static void file_write(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, n, f);
    fclose(f);
}

/* Write a classifier-like file from c's tensors, with `skip` left out, tensor `bad_shape`
 * reshaped to 1-d, a NaN at `nan_in`, and the given format (NULL: none). */
static void write_variant(const char *path, const dfs_classifier *c, const char *format,
                          const char *skip, const char *bad_shape, const char *nan_in) {
    dfs_st_writer *w = dfs_st_writer_new();
    const dfs_params *p = c->params;
    float *copy = malloc(p->n * sizeof(float));
    memcpy(copy, p->data, p->n * sizeof(float));
    for (int i = 0; i < p->count; i++) {
        const dfs_tensor *t = p->t[i];
        float *d = copy + (t->data - p->data);
        if (skip && strcmp(t->name, skip) == 0) continue;
        if (nan_in && strcmp(t->name, nan_in) == 0) d[t->n - 1] = NAN;
        int64_t shape[4];
        int nd = t->ndim;
        for (int k = 0; k < nd; k++)
            shape[k] = t->shape[k];
        if (bad_shape && strcmp(t->name, bad_shape) == 0) nd = 1, shape[0] = (int64_t)t->n;
        dfs_st_writer_add(w, t->name, DFS_DT_F32, nd, shape, d);
    }
    if (format) dfs_st_writer_meta(w, "format", format);
    dfs_st_writer_meta(w, "classifier",
                       "{\"arch\":\"cnn5-flat\",\"image_size\":8,\"in_channels\":1,"
                       "\"num_classes\":3,\"channels\":[4,4,8],\"feature_dim\":6,\"groups\":2}");
    CHECK(dfs_st_writer_write(w, path) == DFS_OK, "write variant %s", path);
    dfs_st_writer_free(w);
    free(copy);
}

static void expect_load_error(const char *what, const char *path, dfs_status want,
                              const char *msg) {
    dfs_classifier *c = (dfs_classifier *)path; /* must come back NULL */
    dfs_status s = dfs_classifier_load(path, &c, NULL);
    CHECK(s == want && c == NULL && err_has(msg),
          "%s: status %s (want %s), message '%s' (want '%s')", what, dfs_status_str(s),
          dfs_status_str(want), dfs_last_error(), msg);
}

static void test_files(void) {
    dfs_classifier_config cfg;
    tiny_config(&cfg);
    dfs_classifier *c = NULL;
    dfs_classifier_new(&c, &cfg, 11);
    c->test_accuracy = 0.8765;
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/c.safetensors", tmpdir);
    CHECK(dfs_classifier_save(path, c, "{\"epochs\":3}") == DFS_OK, "save: %s", dfs_last_error());
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "no temporary file left behind");

    enum { NI = 5 };
    float x[NI * 64], a[NI * 3], b[NI * 3], fa[NI * 6], fb[NI * 6];
    for (int i = 0; i < NI * 64; i++)
        x[i] = dfs_rng_normal(&rng);
    dfs_classifier_forward(c, x, NI, a, fa);
    dfs_classifier *d = NULL;
    char *tj = NULL;
    CHECK(dfs_classifier_load(path, &d, &tj) == DFS_OK, "load: %s", dfs_last_error());
    if (d) {
        CHECK(memcmp(&d->cfg, &c->cfg, sizeof cfg) == 0, "config round trip");
        CHECK(fabs(d->test_accuracy - 0.8765) < 1e-9, "accuracy round trip: %g", d->test_accuracy);
        CHECK(tj && strcmp(tj, "{\"epochs\":3}") == 0, "train metadata round trip: %s",
              tj ? tj : "(null)");
        dfs_classifier_forward(d, x, NI, b, fb);
        CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(fa, fb, sizeof fa) == 0,
              "logits and features after load are bit-identical");
        dfs_classifier_free(d);
    }
    free(tj);
    /* the metadata other tools read */
    dfs_safetensors st;
    if (dfs_st_load(&st, path) == DFS_OK) {
        const char *fl = dfs_st_meta(&st, "feature_layer"),
                   *acc = dfs_st_meta(&st, "test_accuracy");
        CHECK(fl && strstr(fl, "penultimate"), "feature_layer metadata: %s", fl ? fl : "(none)");
        CHECK(acc && strcmp(acc, "0.8765") == 0, "test_accuracy metadata: %s",
              acc ? acc : "(none)");
        dfs_st_free(&st);
    }

    /* damaged files */
    unsigned char *buf = NULL;
    size_t n = file_read(path, &buf);
    CHECK(n > 1000, "saved file has %zu bytes", n);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", tmpdir);
    file_write(bad, buf, n / 2);
    expect_load_error("truncated to half", bad, DFS_ERR_FORMAT, "bad.safetensors");
    file_write(bad, buf, 5);
    expect_load_error("truncated to 5 bytes", bad, DFS_ERR_FORMAT, "bad.safetensors");
    buf[12] ^= 0x55; /* inside the JSON header */
    file_write(bad, buf, n);
    expect_load_error("garbled header", bad, DFS_ERR_FORMAT, "bad.safetensors");
    free(buf);
    file_write(bad, "not a model at all", 18);
    expect_load_error("garbage", bad, DFS_ERR_FORMAT, "bad.safetensors");
    snprintf(bad, sizeof bad, "%s/none.safetensors", tmpdir);
    expect_load_error("missing file", bad, DFS_ERR_IO, "none.safetensors");

    snprintf(bad, sizeof bad, "%s/v.safetensors", tmpdir);
    write_variant(bad, c, "diffuse-1", NULL, NULL, NULL);
    expect_load_error("a U-Net checkpoint's format", bad, DFS_ERR_FORMAT,
                      "not a diffuse classifier");
    write_variant(bad, c, NULL, NULL, NULL, NULL);
    expect_load_error("no format", bad, DFS_ERR_FORMAT, "not a diffuse classifier");
    write_variant(bad, c, "diffuse-classifier-1", "norm3.bias", NULL, NULL);
    expect_load_error("missing tensor", bad, DFS_ERR_FORMAT, "tensors");
    write_variant(bad, c, "diffuse-classifier-1", NULL, "conv2.weight", NULL);
    expect_load_error("wrong shape", bad, DFS_ERR_SHAPE, "conv2.weight");
    write_variant(bad, c, "diffuse-classifier-1", NULL, NULL, "head.weight");
    expect_load_error("NaN weight", bad, DFS_ERR_FORMAT, "non-finite");
    /* a config that does not match the tensors: "classifier" metadata says 16 features */
    {
        dfs_st_writer *w = dfs_st_writer_new();
        for (int i = 0; i < c->params->count; i++) {
            const dfs_tensor *t = c->params->t[i];
            int64_t shape[4];
            for (int k = 0; k < t->ndim; k++)
                shape[k] = t->shape[k];
            dfs_st_writer_add(w, t->name, DFS_DT_F32, t->ndim, shape, t->data);
        }
        dfs_st_writer_meta(w, "format", "diffuse-classifier-1");
        dfs_st_writer_meta(
            w, "classifier",
            "{\"arch\":\"cnn5-flat\",\"image_size\":8,\"in_channels\":1,"
            "\"num_classes\":3,\"channels\":[4,4,8],\"feature_dim\":16,\"groups\":2}");
        dfs_st_writer_write(w, bad);
        dfs_st_writer_free(w);
        expect_load_error("config does not match tensors", bad, DFS_ERR_SHAPE, "feature.weight");
        w = dfs_st_writer_new();
        dfs_st_writer_meta(w, "format", "diffuse-classifier-1");
        dfs_st_writer_meta(
            w, "classifier",
            "{\"arch\":\"resnet\",\"image_size\":8,\"in_channels\":1,"
            "\"num_classes\":3,\"channels\":[4,4,8],\"feature_dim\":6,\"groups\":2}");
        dfs_st_writer_write(w, bad);
        dfs_st_writer_free(w);
        expect_load_error("unknown arch", bad, DFS_ERR_FORMAT, "architecture \"resnet\"");
        w = dfs_st_writer_new();
        dfs_st_writer_meta(w, "format", "diffuse-classifier-1");
        dfs_st_writer_meta(w, "classifier", "{\"arch\":\"cnn5-flat\",\"image_size\":8.5}");
        dfs_st_writer_write(w, bad);
        dfs_st_writer_free(w);
        expect_load_error("malformed config", bad, DFS_ERR_FORMAT, "malformed");
        w = dfs_st_writer_new();
        dfs_st_writer_meta(w, "format", "diffuse-classifier-1");
        dfs_st_writer_meta(
            w, "classifier",
            "{\"arch\":\"cnn5-flat\",\"image_size\":8,\"in_channels\":1,"
            "\"num_classes\":3,\"channels\":[4,4,8],\"feature_dim\":6,\"groups\":3}");
        dfs_st_writer_write(w, bad);
        dfs_st_writer_free(w);
        expect_load_error("bad config", bad, DFS_ERR_FORMAT, "divisible");
    }
    snprintf(bad, sizeof bad, "%s/nodir/c.safetensors", tmpdir);
    CHECK(dfs_classifier_save(bad, c, NULL) == DFS_ERR_IO, "save into a missing folder fails: %s",
          dfs_last_error());
    dfs_classifier_free(c);
}

/* ---- 4. training ------------------------------------------------------------------------------
 */

typedef struct {
    int calls, stop_after;
    double first_epoch, last_epoch;
    int last_e;
    long spe;
} train_log;

static int log_cb(void *u, int epoch, long step, long spe, float loss) {
    train_log *t = u;
    t->calls++;
    t->spe = spe;
    if (epoch == 0) t->first_epoch += loss / spe;
    if (epoch != t->last_e) t->last_epoch = 0, t->last_e = epoch;
    t->last_epoch += loss / spe;
    return t->stop_after > 0 && t->calls >= t->stop_after;
}

static void test_training(void) {
    dfs_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    if (dfs_load_fashion_mnist(&tr, 1) != DFS_OK || dfs_load_fashion_mnist(&te, 0) != DFS_OK) {
        CHECK(0, "Fashion-MNIST (Debian dataset-fashion-mnist) is needed: %s", dfs_last_error());
        return;
    }
    tr.n = 600;
    te.n = 1000;
    dfs_classifier_config cfg;
    dfs_classifier_config_default(&cfg);
    cfg.channels[0] = 8, cfg.channels[1] = 16, cfg.channels[2] = 32, cfg.feature_dim = 32;
    dfs_classifier_train_config tc;
    dfs_classifier_train_config_default(&tc);
    tc.epochs = 4;
    tc.batch = 32;
    tc.lr = 5e-3f;
    tc.warmup = 10;
    tc.seed = 3;
    dfs_classifier *c = NULL, *c2 = NULL;
    dfs_classifier_new(&c, &cfg, 1);
    train_log lg = {0};
    lg.last_e = 0;
    dfs_status s = dfs_classifier_train(c, &tr, &tc, log_cb, &lg);
    CHECK(s == DFS_OK, "train: %s", dfs_last_error());
    CHECK(lg.spe == 19 && lg.calls == 4 * 19,
          "19 steps per epoch (600 / 32, last one partial), %d calls", lg.calls);
    CHECK(lg.last_epoch < 0.75 * lg.first_epoch,
          "mean loss fell from %.3f (epoch 1) to %.3f (epoch 4)", lg.first_epoch, lg.last_epoch);
    double acc = 0;
    int conf[100];
    CHECK(dfs_classifier_evaluate(c, &te, &acc, conf) == DFS_OK, "evaluate: %s", dfs_last_error());
    int total = 0, diag = 0;
    for (int i = 0; i < 100; i++)
        total += conf[i];
    for (int i = 0; i < 10; i++)
        diag += conf[i * 11];
    CHECK(total == 1000 && diag == (int)lround(acc * 1000),
          "confusion matrix: %d images, %d on the diagonal", total, diag);
    printf("test_classifier: 600 images x 4 epochs -> accuracy %.3f on 1000 test images (chance "
           "0.1)\n",
           acc);
    CHECK(acc > 0.6, "a short run beats chance clearly: accuracy %.3f", acc);

    /* the same seed and threads give the same weights, bit for bit; another seed does not
     * (one epoch of the first 128 images: 4 steps) */
    dfs_classifier_new(&c2, &cfg, 1);
    tc.epochs = 1;
    tr.n = 128;
    dfs_classifier_free(c);
    dfs_classifier_new(&c, &cfg, 1);
    dfs_classifier_train(c, &tr, &tc, NULL, NULL);
    dfs_classifier_train(c2, &tr, &tc, NULL, NULL);
    CHECK(memcmp(c->params->data, c2->params->data, c->params->n * sizeof(float)) == 0,
          "same seed, same weights");
    dfs_classifier_free(c2);
    dfs_classifier_new(&c2, &cfg, 1);
    tc.seed = 4;
    dfs_classifier_train(c2, &tr, &tc, NULL, NULL);
    CHECK(memcmp(c->params->data, c2->params->data, c->params->n * sizeof(float)) != 0,
          "another data order, other weights");

    /* a callback stops training */
    train_log stop = {0};
    stop.stop_after = 3;
    s = dfs_classifier_train(c2, &tr, &tc, log_cb, &stop);
    CHECK(s == DFS_ERR_INTERRUPTED && stop.calls == 3, "stopped after %d steps: %s", stop.calls,
          dfs_status_str(s));

    /* out of memory for activations (a 256 KB limit; one conv output of the batch is 800 KB):
     * training and inference return DFS_ERR_NOMEM with the message and the weights untouched,
     * and with the memory back inference works and gives what a fresh copy gives */
    {
        const size_t np = c2->params->n;
        float *w0 = malloc(np * sizeof(float)), lg1[64 * 10], lg2[64 * 10];
        memcpy(w0, c2->params->data, np * sizeof(float));
        dfs_set_activation_limit(256u << 10);
        s = dfs_classifier_train(c2, &tr, &tc, NULL, NULL);
        CHECK(s == DFS_ERR_NOMEM && err_has("out of memory for activations"), "train past the limit: %d %s", s,
              dfs_last_error());
        CHECK(memcmp(w0, c2->params->data, np * sizeof(float)) == 0, "a failed training leaves the weights");
        s = dfs_classifier_forward_u8(c2, tr.pixels, 64, lg1, NULL);
        CHECK(s == DFS_ERR_NOMEM && err_has("out of memory for activations"), "forward past the limit: %d %s", s,
              dfs_last_error());
        dfs_set_activation_limit(0);
        CHECK(dfs_classifier_forward_u8(c2, tr.pixels, 64, lg1, NULL) == DFS_OK, "forward: %s", dfs_last_error());
        dfs_classifier *c3 = NULL;
        dfs_classifier_new(&c3, &cfg, 1);
        memcpy(c3->params->data, w0, np * sizeof(float));
        CHECK(c3 && dfs_classifier_forward_u8(c3, tr.pixels, 64, lg2, NULL) == DFS_OK &&
                  memcmp(lg1, lg2, sizeof lg1) == 0,
              "forward after a failure gives a fresh copy's logits");
        dfs_classifier_free(c3);
        free(w0);
    }
    tr.n = 600;

    /* refused inputs */
    tc.batch = 0;
    CHECK(dfs_classifier_train(c, &tr, &tc, NULL, NULL) == DFS_ERR_ARG && err_has("batch"),
          "batch 0 refused: %s", dfs_last_error());
    tc.batch = 32;
    tc.epochs = 0;
    CHECK(dfs_classifier_train(c, &tr, &tc, NULL, NULL) == DFS_ERR_ARG, "0 epochs refused");
    tc.epochs = 1;
    tc.lr = 0;
    CHECK(dfs_classifier_train(c, &tr, &tc, NULL, NULL) == DFS_ERR_ARG, "lr 0 refused");
    tc.lr = 1e-3f;
    int *labels = tr.labels;
    tr.labels = NULL;
    CHECK(dfs_classifier_train(c, &tr, &tc, NULL, NULL) == DFS_ERR_ARG && err_has("no labels"),
          "unlabelled data refused: %s", dfs_last_error());
    CHECK(dfs_classifier_evaluate(c, &tr, &acc, NULL) == DFS_ERR_ARG, "evaluate needs labels");
    tr.labels = labels;
    int keep = tr.labels[5];
    tr.labels[5] = 10;
    CHECK(dfs_classifier_train(c, &tr, &tc, NULL, NULL) == DFS_ERR_ARG && err_has("label 10"),
          "label 10 refused: %s", dfs_last_error());
    tr.labels[5] = keep;
    tr.w = 27;
    CHECK(dfs_classifier_train(c, &tr, &tc, NULL, NULL) == DFS_ERR_SHAPE,
          "27-pixel-wide images refused");
    CHECK(dfs_classifier_evaluate(c, &tr, &acc, NULL) == DFS_ERR_SHAPE, "evaluate checks the size");
    tr.w = 28;

    dfs_classifier_free(c);
    dfs_classifier_free(c2);
    tr.n = 60000;
    te.n = 10000;
    dfs_dataset_free(&tr);
    dfs_dataset_free(&te);
}

/* ---- 5. the shipped model ----------------------------------------------------------------------
 */

static void test_shipped(void) {
    dfs_classifier *c = NULL;
    char *tj = NULL;
    dfs_status s = dfs_classifier_load(SHIPPED, &c, &tj);
    CHECK(s == DFS_OK, "load %s: %s", SHIPPED, dfs_last_error());
    if (s != DFS_OK) return;
    dfs_dataset te;
    memset(&te, 0, sizeof te);
    if (dfs_load_fashion_mnist(&te, 0) != DFS_OK) {
        CHECK(0, "Fashion-MNIST test set is needed: %s", dfs_last_error());
        dfs_classifier_free(c);
        free(tj);
        return;
    }
    int full = getenv("DFS_SANITIZE") == NULL;
    if (!full) te.n = 2000;
    const int K = c->cfg.num_classes, n = te.n, nsub = n < 1000 ? n : 1000;
    CHECK(K == 10, "shipped classifier has %d classes", K);
    CHECK(c->params->n < 500000, "shipped classifier is small: %zu parameters", c->params->n);
    CHECK(tj != NULL, "shipped classifier records how it was trained");
    if (K != 10) goto done;
    /* The logits of every test image (forward_u8 batches them as dfs_classifier_evaluate
     * does), and of the first 1000 again through the other kernel path. */
    float *lg = malloc((size_t)n * K * sizeof(float)), *lb = malloc((size_t)nsub * K * sizeof(float));
    s = dfs_classifier_forward_u8(c, te.pixels, n, lg, NULL);
    CHECK(s == DFS_OK, "forward: %s", dfs_last_error());
    const dfs_kernels kern = dfs_get_kernels();
    dfs_set_kernels(kern == DFS_KERNELS_FAST ? DFS_KERNELS_BLAS : DFS_KERNELS_FAST);
    CHECK(dfs_classifier_forward_u8(c, te.pixels, nsub, lb, NULL) == DFS_OK, "forward with the other kernels");
    dfs_set_kernels(kern);
    /* The stored accuracy was measured on another machine, whose float32 logits differ from
     * these by rounding alone: a prediction can differ only where the top two logits lie closer
     * than the two machines' errors together. The size of those errors: the spread between two
     * evaluations here that sum in different orders (the two kernel paths, the largest
     * difference over 10,000 logits), times 10 for the tail of other machines' orders; so an
     * image is "near a tie" when its margin is below 2 x 10 x spread. The accuracy here may
     * then differ from the stored one by the near ties over n and the 4-decimal rounding of the
     * stored figure (0.5e-4). */
    double spread = 0, lmax = 0;
    for (size_t i = 0; i < (size_t)nsub * K; i++) {
        spread = max_err(spread, fabs((double)lg[i] - lb[i]));
        lmax = fmax(lmax, fabs(lg[i]));
    }
    /* (at least 16u of the largest logit, should the two paths ever agree to the bit) */
    const double tie = 2 * 10 * fmax(spread, 16 * U32 * lmax);
    int correct = 0, near = 0, correct_sub = 0, near_sub = 0;
    for (int i = 0; i < n; i++) {
        const float *z = lg + (size_t)i * K;
        int a = 0;
        for (int k = 1; k < K; k++) a = z[k] > z[a] ? k : a;
        double second = -INFINITY;
        for (int k = 0; k < K; k++)
            if (k != a && z[k] > second) second = z[k];
        correct += a == te.labels[i];
        near += !(z[a] - second >= tie); /* a NaN counts as near */
        if (i < nsub) correct_sub += a == te.labels[i], near_sub += !(z[a] - second >= tie);
    }
    const double acc = (double)correct / n;
    printf("test_classifier: shipped classifier: accuracy %.4f on %d test images (stored %.4f); "
           "%d near ties (top-2 margin < %.2g)\n",
           acc, n, c->test_accuracy, near, tie);
    /* and that spread must itself be rounding-sized: float32 error grows by about u sqrt(K)
     * per layer relative to the logits' scale (<= 20 here), so over 7 layers with K <= 1024,
     * ~2e-4 at most; capped at 1e-3 so that a broken kernel path cannot make every image a
     * near tie */
    CHECK(spread == spread && spread < 1e-3, "fast and BLAS logits differ by %.3g", spread);
    CHECK(acc >= 0.90, "shipped classifier accuracy %.4f on %d test images, want >= 0.90", acc, n);
    if (full)
        CHECK(fabs(acc - c->test_accuracy) <= (near + 0.5) / n,
              "measured %.4f, stored %.4f: more apart than %d near ties allow", acc,
              c->test_accuracy, near);
    /* dfs_classifier_evaluate agrees with the argmax of these logits (the same batches: the
     * same logits; near ties allowed all the same) */
    {
        double acc_e = 0;
        int conf[100], total = 0;
        te.n = nsub;
        s = dfs_classifier_evaluate(c, &te, &acc_e, conf);
        te.n = n;
        for (int i = 0; i < 100; i++) total += conf[i];
        CHECK(s == DFS_OK && total == nsub && fabs(acc_e - (double)correct_sub / nsub) <= (double)near_sub / nsub,
              "evaluate on %d images: %.4f, argmax of the logits %.4f", nsub, acc_e, (double)correct_sub / nsub);
    }
    free(lg);
    free(lb);
done:
    te.n = 10000;
    dfs_dataset_free(&te);
    dfs_classifier_free(c);
    free(tj);
}

/* ---- parity dump for tests/parity/torch_classifier.py -------------------------------------------
 */

/* Cases: "ce.logits" (6, 10) with one row of +-30 and one shifted by 500, "ce.labels" (I64),
 * "ce.loss", "ce.grad"; the tiny network's parameters under their names, "net.x" (3, 1, 8, 8),
 * "net.labels", "net.logits", "net.features", "net.loss" (cross-entropy of the logits),
 * "net.grad.<name>" and "net.grad.x". */
static int dump_parity(const char *path) {
    dfs_rng_seed(&rng, 99);
    dfs_st_writer *w = dfs_st_writer_new();
    dfs_graph *g = dfs_graph_new();
    enum { N = 6, K = 10, NB = 3 };
    dfs_tensor *z = dfs_tensor_new(g, 2, (int[]){N, K});
    for (int i = 0; i < N * K; i++)
        z->data[i] = 2.0f * dfs_rng_normal(&rng);
    for (int k = 0; k < K; k++)
        z->data[4 * K + k] = k % 2 ? 30.0f : -30.0f;
    for (int k = 0; k < K; k++)
        z->data[5 * K + k] += 500.0f;
    z->requires_grad = 1;
    int lab[N] = {3, 0, 9, 9, 4, 7};
    int64_t lab64[N];
    for (int i = 0; i < N; i++)
        lab64[i] = lab[i];
    dfs_tensor *l = dfs_cross_entropy(g, z, lab);
    dfs_backward(g, l);
    dfs_st_writer_add(w, "ce.logits", DFS_DT_F32, 2, (int64_t[]){N, K}, z->data);
    dfs_st_writer_add(w, "ce.labels", DFS_DT_I64, 1, (int64_t[]){N}, lab64);
    dfs_st_writer_add(w, "ce.loss", DFS_DT_F32, 1, (int64_t[]){1}, l->data);
    dfs_st_writer_add(w, "ce.grad", DFS_DT_F32, 2, (int64_t[]){N, K}, z->grad);

    dfs_classifier_config cfg;
    tiny_config(&cfg);
    dfs_classifier *c = NULL;
    dfs_classifier_new(&c, &cfg, 5);
    /* non-trivial norm parameters, so that their gradients are checked at a generic point */
    for (int i = 0; i < c->params->count; i++)
        if (strncmp(c->params->t[i]->name, "norm", 4) == 0)
            for (size_t k = 0; k < c->params->t[i]->n; k++)
                c->params->t[i]->data[k] += 0.3f * dfs_rng_normal(&rng);
    dfs_graph *g2 = dfs_graph_new();
    dfs_tensor *x = dfs_tensor_new(g2, 4, (int[]){NB, 1, 8, 8});
    for (size_t i = 0; i < x->n; i++)
        x->data[i] = 2.0f * dfs_rng_uniform(&rng) - 1.0f;
    x->requires_grad = 1;
    int nl[NB] = {2, 0, 1};
    int64_t nl64[NB] = {2, 0, 1};
    dfs_tensor *feat = NULL;
    dfs_tensor *logits = dfs_classifier_graph(c, g2, x, &feat);
    dfs_tensor *loss = dfs_cross_entropy(g2, logits, nl);
    dfs_params_zero_grad(c->params);
    dfs_backward(g2, loss);
    char name[128];
    char *names[64];
    int nn = 0;
    for (int i = 0; i < c->params->count; i++) {
        dfs_tensor *t = c->params->t[i];
        int64_t shape[4];
        for (int k = 0; k < t->ndim; k++)
            shape[k] = t->shape[k];
        dfs_st_writer_add(w, t->name, DFS_DT_F32, t->ndim, shape, t->data);
        snprintf(name, sizeof name, "net.grad.%s", t->name);
        names[nn] = strdup(name);
        dfs_st_writer_add(w, names[nn++], DFS_DT_F32, t->ndim, shape, t->grad);
    }
    dfs_st_writer_add(w, "net.x", DFS_DT_F32, 4, (int64_t[]){NB, 1, 8, 8}, x->data);
    dfs_st_writer_add(w, "net.labels", DFS_DT_I64, 1, (int64_t[]){NB}, nl64);
    dfs_st_writer_add(w, "net.logits", DFS_DT_F32, 2, (int64_t[]){NB, 3}, logits->data);
    dfs_st_writer_add(w, "net.features", DFS_DT_F32, 2, (int64_t[]){NB, 6}, feat->data);
    dfs_st_writer_add(w, "net.loss", DFS_DT_F32, 1, (int64_t[]){1}, loss->data);
    dfs_st_writer_add(w, "net.grad.x", DFS_DT_F32, 4, (int64_t[]){NB, 1, 8, 8}, x->grad);
    char *cj = NULL;
    {
        /* the config, as the classifier file stores it */
        char tmp[256];
        snprintf(tmp, sizeof tmp,
                 "{\"image_size\":%d,\"in_channels\":%d,\"num_classes\":%d,\"channels\":[%d,%d,%d],"
                 "\"feature_dim\":%d,\"groups\":%d}",
                 cfg.image_size, cfg.in_channels, cfg.num_classes, cfg.channels[0], cfg.channels[1],
                 cfg.channels[2], cfg.feature_dim, cfg.groups);
        cj = strdup(tmp);
    }
    dfs_st_writer_meta(w, "classifier", cj);
    dfs_status s = dfs_st_writer_write(w, path);
    if (s != DFS_OK) fprintf(stderr, "test_classifier: %s\n", dfs_last_error());
    dfs_st_writer_free(w);
    for (int i = 0; i < nn; i++)
        free(names[i]);
    free(cj);
    dfs_classifier_free(c);
    dfs_graph_free(g);
    dfs_graph_free(g2);
    return s == DFS_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--dump-parity") == 0) return dump_parity(argv[2]);
    dfs_set_threads(2);
    dfs_rng_seed(&rng, 2024);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfs_test_classifier_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    struct {
        const char *name;
        void (*fn)(void);
    } parts[] = {{"cross-entropy", test_cross_entropy},
                 {"config", test_config},
                 {"network", test_network},
                 {"files", test_files},
                 {"training", test_training},
                 {"shipped model", test_shipped}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        parts[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("test_classifier: %s: %.1f s\n", parts[i].name,
               (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec));
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_classifier");
}
