/* test_csdi.c - CSDI's denoiser (src/nn/csdi.c, Tashiro et al. 2021).
 *
 * 1. The config: CSDI's defaults accepted, every field out of its range refused with
 *    DFS_ERR_ARG (and dfs_csdi_new returning NULL), dfs_csdi_side_dim, and the parameter count
 *    and tensor count of a small config against a count by hand.
 * 2. A fresh net predicts exactly 0 (its last projection starts at zero), and its gradient
 *    reaches the last projection only.
 * 3. With every weight random (the zero last layer too): the gradient of L = sum R out with a
 *    fixed random R, for every parameter tensor, against central finite differences
 *    (gradcheck.h), on a tiny config with both transformers, with K = 1 (no feature
 *    transformer) and with L = 1 (no time transformer); parameters the pass does not use (the
 *    skipped transformer, feature-embedding rows past K) get exactly zero.
 * 4. Invariances: x_t at conditioning entries and the conditioning values at the other entries
 *    are never read (bit for bit); a permutation of the windows of a batch permutes the output
 *    windows, bit for bit where the BLAS sums a row the same wherever it lies (asked of it), within
 *    the rounding of reordered sums otherwise (OpenBLAS's Haswell SGEMM kernel).
 * 5. dfs_csdi_flops against the matrix products of the small config counted one by one.
 *
 * PyTorch parity (forward and every gradient against nn.functional in float64) is
 * tests/parity/parity_csdi.sh. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- the tiny config and its inputs ---------------------------------------------------------- */

/* C 8, 2 heads, 2 layers, ff 8, step embedding 8, time embedding 6, feature embedding 3,
 * 2 calendar values; 4 feature-embedding rows, so that a window of K = 3 leaves one unused. */
static void tiny_config(dfs_csdi_config *c) {
    dfs_csdi_config_default(c);
    c->features = 4;
    c->channels = 8;
    c->layers = 2;
    c->heads = 2;
    c->ff = 8;
    c->step_dim = 8;
    c->time_dim = 6;
    c->feature_dim = 3;
    c->calendar = 2;
}

/* One batch: B windows of L steps and K features, values in [-1, 1) (the ReLU margins below
 * rely on that bound), about half the entries conditioning, a step per window. */
typedef struct {
    dfs_csdi_input in;
    float *xt, *cond, *cal;
    uint8_t *mask;
    int *t;
} batch;

static float unif(dfs_rng *r) {
    return 2.0f * dfs_rng_uniform(r) - 1.0f;
}

static void batch_new(batch *b, int B, int L, int K, int NC, dfs_rng *r) {
    const size_t n = (size_t)B * L * K;
    b->xt = malloc(n * sizeof(float));
    b->cond = malloc(n * sizeof(float));
    b->mask = malloc(n);
    b->t = malloc((size_t)B * sizeof(int));
    b->cal = NC > 0 ? malloc((size_t)B * L * NC * sizeof(float)) : NULL;
    for (size_t i = 0; i < n; i++) {
        b->xt[i] = unif(r);
        b->cond[i] = unif(r);
        b->mask[i] = dfs_rng_uniform(r) < 0.5f;
    }
    for (int i = 0; i < B; i++)
        b->t[i] = (int)dfs_rng_below(r, 50);
    for (size_t i = 0; i < (size_t)B * L * NC; i++)
        b->cal[i] = unif(r);
    b->in = (dfs_csdi_input){B, L, K, b->xt, b->cond, b->mask, b->t, b->cal, NULL};
}

static void batch_free(batch *b) {
    free(b->xt);
    free(b->cond);
    free(b->mask);
    free(b->t);
    free(b->cal);
}

static dfs_tensor *param(dfs_csdi *n, const char *name) {
    dfs_tensor *t = dfs_params_find(dfs_csdi_params(n), name);
    DFS_ASSERT(t); /* a missing name is a test bug or a renamed parameter: stop loudly */
    return t;
}

/* ---- 1. config, side information, parameter count ------------------------------------------- */

static void test_config(void) {
    dfs_csdi_config c;
    dfs_csdi_config_default(&c);
    CHECK(dfs_csdi_config_check(&c) == DFS_OK, "default config: %s", dfs_last_error());
    CHECK(c.channels == 64 && c.layers == 4 && c.heads == 8 && c.ff == 64 && c.step_dim == 128 &&
              c.time_dim == 128 && c.feature_dim == 16 && c.calendar == 0,
          "the defaults are CSDI's (64 channels, 4 layers, 8 heads, ff 64, 128, 128, 16)");
    /* time 128 + feature 16 + calendar 0 + the mask */
    CHECK(dfs_csdi_side_dim(&c) == 145, "default side dim %d, want 145", dfs_csdi_side_dim(&c));
    tiny_config(&c);
    CHECK(dfs_csdi_config_check(&c) == DFS_OK, "tiny config: %s", dfs_last_error());
    CHECK(dfs_csdi_side_dim(&c) == 6 + 3 + 2 + 1, "tiny side dim %d, want 12",
          dfs_csdi_side_dim(&c));
    c.feature_dim = 0, c.time_dim = 0, c.calendar = 0;
    CHECK(dfs_csdi_config_check(&c) == DFS_OK && dfs_csdi_side_dim(&c) == 1,
          "no embeddings: side information is the mask alone (%d)", dfs_csdi_side_dim(&c));

    /* each field just outside its range, the others valid */
    const struct {
        const char *what;
        size_t off;
        int value;
    } bad[] = {
        {"features 0", offsetof(dfs_csdi_config, features), 0},
        {"features 4097", offsetof(dfs_csdi_config, features), 4097},
        {"channels 0", offsetof(dfs_csdi_config, channels), 0},
        {"channels 4104 (8 heads of 513)", offsetof(dfs_csdi_config, channels), 4104},
        {"channels 12 in 8 heads", offsetof(dfs_csdi_config, channels), 12},
        {"layers 0", offsetof(dfs_csdi_config, layers), 0},
        {"layers 65", offsetof(dfs_csdi_config, layers), 65},
        {"heads 0", offsetof(dfs_csdi_config, heads), 0},
        {"heads 3 for 64 channels", offsetof(dfs_csdi_config, heads), 3},
        {"ff 0", offsetof(dfs_csdi_config, ff), 0},
        {"ff 16385", offsetof(dfs_csdi_config, ff), 16385},
        {"step_dim 1", offsetof(dfs_csdi_config, step_dim), 1},
        {"step_dim 4097", offsetof(dfs_csdi_config, step_dim), 4097},
        {"time_dim -1", offsetof(dfs_csdi_config, time_dim), -1},
        {"time_dim 1 (a sinusoidal embedding needs 2)", offsetof(dfs_csdi_config, time_dim), 1},
        {"time_dim 4097", offsetof(dfs_csdi_config, time_dim), 4097},
        {"feature_dim -1", offsetof(dfs_csdi_config, feature_dim), -1},
        {"feature_dim 4097", offsetof(dfs_csdi_config, feature_dim), 4097},
        {"calendar -1", offsetof(dfs_csdi_config, calendar), -1},
        {"calendar 17", offsetof(dfs_csdi_config, calendar), DFS_CSDI_MAX_CALENDAR + 1},
    };
    dfs_rng r;
    dfs_rng_seed(&r, 1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dfs_csdi_config_default(&c);
        *(int *)((char *)&c + bad[i].off) = bad[i].value;
        CHECK(dfs_csdi_config_check(&c) == DFS_ERR_ARG && strstr(dfs_last_error(), "CSDI"),
              "%s refused: %s", bad[i].what, dfs_last_error());
        CHECK(dfs_csdi_new(&c, &r) == NULL, "new with %s returns NULL", bad[i].what);
    }
    CHECK(dfs_csdi_config_check(NULL) == DFS_ERR_ARG, "a NULL config refused");
    /* the edges of the ranges are accepted */
    dfs_csdi_config_default(&c);
    c.features = 4096, c.layers = 64, c.step_dim = 2, c.calendar = DFS_CSDI_MAX_CALENDAR;
    c.channels = 8, c.heads = 8, c.ff = 16384, c.time_dim = 4096, c.feature_dim = 4096;
    CHECK(dfs_csdi_config_check(&c) == DFS_OK, "range edges accepted: %s", dfs_last_error());
}

/* The small config's parameters, counted by hand (S = 12 side channels, C = 8, E = 8, ff 8):
 *   input 2 -> 8                   8*2 + 8            =   24
 *   step_emb fc1, fc2 8 -> 8       2 (8*8 + 8)        =  144
 *   feature_emb (4, 3)                                =   12
 *   per layer:
 *     step 8 -> 8                  8*8 + 8            =   72
 *     time and feature transformers, each:
 *       qkv 8 -> 24                24*8 + 24          =  216
 *       attn_out, fc1, fc2 8 -> 8  3 (8*8 + 8)        =  216
 *       ln1, ln2 weight and bias   4*8                =   32   -> 464, two: 928
 *     mid 8 -> 16, out 8 -> 16     2 (16*8 + 16)      =  288
 *     cond 12 -> 16                16*12 + 16         =  208   -> 1496 per layer, 2992 for two
 *   output fc1 8 -> 8, fc2 8 -> 1  8*8 + 8 + 8 + 1    =   81
 * total 24 + 144 + 12 + 2992 + 81 = 3253 floats in 2 + 4 + 1 + 2 (2 + 12 + 12 + 6) + 4 = 75
 * tensors. Without the feature embedding: the table's 12 floats fewer, and a side of 9
 * channels (cond 16*9 + 16, 48 fewer per layer): 3253 - 12 - 96 = 3145 floats in 74 tensors. */
static void test_params(void) {
    dfs_csdi_config c;
    tiny_config(&c);
    dfs_rng r;
    dfs_rng_seed(&r, 2);
    dfs_csdi *n = dfs_csdi_new(&c, &r);
    CHECK(n != NULL, "new tiny: %s", dfs_last_error());
    if (!n) return;
    const dfs_params *p = dfs_csdi_params(n);
    CHECK(p->n == 3253 && p->count == 75, "tiny: %zu floats in %d tensors, want 3253 in 75", p->n,
          p->count);
    CHECK(dfs_csdi_param_count(&c) == 3253, "dfs_csdi_param_count: %zu, want 3253", dfs_csdi_param_count(&c));
    dfs_csdi_config d;
    dfs_csdi_config_default(&d);
    d.features = 2, d.calendar = 4;
    dfs_csdi *dn = dfs_csdi_new(&d, &r); /* the shipped daily model's config: 415,585 */
    CHECK(dn && dfs_csdi_param_count(&d) == dfs_csdi_params(dn)->n && dfs_csdi_params(dn)->n == 415585,
          "dfs_csdi_param_count of the default config with 2 features: %zu", dfs_csdi_param_count(&d));
    dfs_csdi_free(dn);
    /* PyTorch-style names, the shapes the formulas above assume */
    const struct {
        const char *name;
        int d0, d1;
    } want[] = {{"input.weight", 8, 2},
                {"step_emb.fc2.weight", 8, 8},
                {"feature_emb.weight", 4, 3},
                {"layers.1.time.qkv.weight", 24, 8},
                {"layers.0.feature.fc2.weight", 8, 8},
                {"layers.1.cond.weight", 16, 12},
                {"layers.0.out.bias", 16, 0},
                {"layers.1.feature.ln2.bias", 8, 0},
                {"output.fc2.weight", 1, 8}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const dfs_tensor *t = dfs_params_find(p, want[i].name);
        int ok = t && t->shape[0] == want[i].d0 &&
                 (want[i].d1 ? t->ndim == 2 && t->shape[1] == want[i].d1 : t->ndim == 1);
        CHECK(ok, "parameter %s: %s", want[i].name, t ? "wrong shape" : "missing");
    }
    const dfs_csdi_config *cc = dfs_csdi_config_of(n);
    CHECK(cc->channels == 8 && cc->features == 4 && cc->calendar == 2,
          "config_of gives the config");
    dfs_csdi_free(n);

    c.feature_dim = 0;
    n = dfs_csdi_new(&c, &r);
    CHECK(n && dfs_csdi_params(n)->n == 3145 && dfs_csdi_params(n)->count == 74 &&
              !dfs_params_find(dfs_csdi_params(n), "feature_emb.weight"),
          "no feature embedding: %zu floats in %d tensors, want 3145 in 74",
          n ? dfs_csdi_params(n)->n : 0, n ? dfs_csdi_params(n)->count : 0);
    dfs_csdi_free(n);
}

/* ---- 2. a fresh net ------------------------------------------------------------------------- */

/* out = output.fc2(h) with a zero weight and bias is a sum of products 0 * h: exactly 0 for
 * any finite h. Its gradient: d out / d fc2.weight = h (not all zero: the head's ReLU passes
 * about half of its units), d out / d fc2.bias = 1, and every other parameter's gradient goes
 * through fc2.weight^T = 0 and is exactly 0. */
static void test_fresh(void) {
    dfs_csdi_config c;
    tiny_config(&c);
    dfs_rng r;
    dfs_rng_seed(&r, 3);
    dfs_csdi *n = dfs_csdi_new(&c, &r);
    if (!n) {
        CHECK(0, "new tiny: %s", dfs_last_error());
        return;
    }
    batch b;
    batch_new(&b, 2, 5, 3, c.calendar, &r);
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *o = dfs_csdi_forward(n, g, &b.in);
    CHECK(o->ndim == 3 && o->shape[0] == 2 && o->shape[1] == 5 && o->shape[2] == 3,
          "output shape (2, 5, 3)");
    int zero = 1;
    for (size_t i = 0; i < o->n; i++)
        zero &= o->data[i] == 0.0f;
    CHECK(zero, "a fresh net predicts exactly 0");
    float R[30];
    double sumR = 0, absR = 0;
    for (int i = 0; i < 30; i++)
        R[i] = dfs_rng_normal(&r), sumR += R[i], absR += fabs(R[i]);
    dfs_params *p = dfs_csdi_params(n);
    dfs_params_zero_grad(p);
    dfs_backward_grad(g, o, R);
    const dfs_tensor *w2 = param(n, "output.fc2.weight"), *b2 = param(n, "output.fc2.bias");
    int others_zero = 1, w2_nonzero = 0;
    for (int i = 0; i < p->count; i++) {
        const dfs_tensor *t = p->t[i];
        if (t == w2 || t == b2) continue;
        for (size_t k = 0; k < t->n; k++)
            others_zero &= t->grad[k] == 0.0f;
    }
    for (size_t k = 0; k < w2->n; k++)
        w2_nonzero += w2->grad[k] != 0.0f;
    CHECK(others_zero, "a fresh net's gradient reaches nothing before the last projection");
    CHECK(w2_nonzero > 0, "the last projection's weight gets a gradient (%d of 8 nonzero)",
          w2_nonzero);
    /* fc2.bias's gradient is the float sum of the 30 R: within sum_err of the double sum */
    CHECK_CLOSE(b2->grad[0], sumR, sum_err(30, absR), 0, "fc2.bias gradient = sum R");
    dfs_graph_free(g);
    batch_free(&b);
    dfs_csdi_free(n);
}

/* ---- 3. gradients against finite differences ------------------------------------------------ */

/* Every weight random, the ReLUs kept away from their kinks.
 *
 * A central difference across a ReLU's kink errs by up to half the slope change times the
 * distance crossed, an O(1) error that no tolerance on rounding covers; with 240 units per
 * ReLU layer some unit would lie within h |dz/dw| of 0 for most parameters. So each ReLU unit
 * gets a bias that puts it beyond any value its input can take, on either side by channel
 * (even channels always on, odd ones always off, so both branches are checked):
 *   input    z_c = w_c0 cond m + w_c1 x_t (1 - m) + b_c with |cond|, |x_t| < 1: |z_c - b_c| <
 *            |w_c0| + |w_c1|;
 *   head     z_o = sum_c W_oc s_c + b_o with the skip sum s_c = sum_layers (out.bias +
 *            out.weight g)_{C+c} / sqrt(layers), where the gated activation g = sigmoid * tanh
 *            lies in (-1, 1): |s_c| < S_c = sum_layers (|out.bias_{C+c}| + sum_j
 *            |out.weight_{C+c,j}|) / sqrt(layers), and |z_o - b_o| < sum_c |W_oc| S_c.
 * b = +-(that bound + MARGIN). A step h in one parameter moves a bound by at most h max(1,
 * max S_c, max_o sum_c |W_oc|) (h in a bias or W, or h / sqrt(layers) in one S_c times |W_oc|),
 * checked below to stay under MARGIN. The head's W is scaled by 1/4 so that its outputs stay
 * of order 1 (the finite differences' roundoff grows with them). The LayerNorm weights and
 * biases move off 1 and 0, and the last projection gets weights like the others. */
#define MARGIN 0.25f

static double randomise(dfs_csdi *n, dfs_rng *r) {
    dfs_csdi_init(n, r);
    const dfs_csdi_config *c = dfs_csdi_config_of(n);
    const int C = c->channels;
    dfs_params *p = dfs_csdi_params(n);
    for (int i = 0; i < p->count; i++) {
        dfs_tensor *t = p->t[i];
        if (strstr(t->name, ".ln")) {
            const int is_w = strstr(t->name, "weight") != NULL;
            for (size_t k = 0; k < t->n; k++)
                t->data[k] = (is_w ? 1.0f : 0.0f) + 0.3f * dfs_rng_normal(r);
        }
    }
    dfs_tensor *w2 = param(n, "output.fc2.weight"), *b2 = param(n, "output.fc2.bias");
    for (size_t k = 0; k < w2->n; k++)
        w2->data[k] = unif(r) / sqrtf((float)C);
    b2->data[0] = unif(r) / sqrtf((float)C);
    /* input ReLU */
    dfs_tensor *wi = param(n, "input.weight"), *bi = param(n, "input.bias");
    for (int ch = 0; ch < C; ch++) {
        float bound = fabsf(wi->data[2 * ch]) + fabsf(wi->data[2 * ch + 1]) + MARGIN;
        bi->data[ch] = ch % 2 == 0 ? bound : -bound;
    }
    /* head ReLU */
    float S[4096] = {0}, Smax = 0, Wmax = 0;
    for (int l = 0; l < c->layers; l++) {
        char nw[64], nb[64];
        snprintf(nw, sizeof nw, "layers.%d.out.weight", l);
        snprintf(nb, sizeof nb, "layers.%d.out.bias", l);
        const dfs_tensor *ow = param(n, nw), *ob = param(n, nb);
        for (int ch = 0; ch < C; ch++) {
            float s = fabsf(ob->data[C + ch]);
            for (int j = 0; j < C; j++)
                s += fabsf(ow->data[(size_t)(C + ch) * C + j]);
            S[ch] += s / sqrtf((float)c->layers);
        }
    }
    dfs_tensor *w1 = param(n, "output.fc1.weight"), *b1 = param(n, "output.fc1.bias");
    for (int o = 0; o < C; o++) {
        float bound = MARGIN, wsum = 0;
        for (int ch = 0; ch < C; ch++) {
            w1->data[(size_t)o * C + ch] *= 0.25f;
            bound += fabsf(w1->data[(size_t)o * C + ch]) * S[ch];
            wsum += fabsf(w1->data[(size_t)o * C + ch]);
        }
        b1->data[o] = o % 2 == 0 ? bound : -bound;
        Wmax = fmaxf(Wmax, wsum);
    }
    for (int ch = 0; ch < C; ch++)
        Smax = fmaxf(Smax, S[ch]);
    dfs_params_ema_init(p);
    return fmax(1.0, fmax(Smax, Wmax)); /* a step h moves a ReLU's input bound by <= h this */
}

typedef struct {
    dfs_csdi *n;
    const dfs_csdi_input *in;
} net_args;

static dfs_tensor *f_net(dfs_graph *g, dfs_tensor **in, void *u) {
    net_args *a = u;
    return dfs_csdi_forward(a->n, g, a->in);
}

/* Finite differences (gradcheck.h) of L = sum R out over all 3253 parameters.
 * Truncation h^2/6 |d3L/dw3|: with the ReLUs pinned the network is smooth (GELU, sigmoid, tanh,
 * SiLU, softmax, LayerNorm over 8 channels of unit-order spread), its third derivatives along
 * one weight products of a few O(1) factors: of order 1 to 10, so below 2e-4 at h = 1e-2.
 * Roundoff (e(w+h) - e(w-h)) / 2h: each of the 30 outputs (of order 1) carries the float32
 * rounding of ~15 chained ops with sums of 8 to 24 terms, a few 1e-7 of its size; R-weighted
 * over 30 outputs e ~ 2e-6, so ~1.5e-4 at h = 1e-2 (at 3e-3 it would be 5e-4, with the
 * truncation 10 times smaller). Measured on x86-64 (AVX-512 and Haswell OpenBLAS kernels):
 * the worst element errs by 1.3e-4 at h = 1e-2, by 4e-4 at 3e-3 (roundoff, ~1/h) and by 8e-4
 * at 3e-2 (truncation, ~h^2: |d3L/dw3| ~ 6). TOL = 1e-3, relative, absolute below 1, is about
 * three times the estimate and eight times the measurement; a wrong term, index or missing
 * path errs by O(0.1) to O(1). */
#define H_NET 1e-2f
#define TOL_NET 1e-3f

static void grad_case(const char *what, int B, int L, int K, uint64_t seed) {
    dfs_csdi_config c;
    tiny_config(&c);
    dfs_rng r;
    dfs_rng_seed(&r, seed);
    dfs_csdi *n = dfs_csdi_new(&c, &r);
    if (!n) {
        CHECK(0, "new tiny: %s", dfs_last_error());
        return;
    }
    const double reach = randomise(n, &r);
    CHECK(H_NET * reach < MARGIN,
          "%s: a step of %g moves a ReLU input by <= %.3g, under the margin %g", what, H_NET,
          H_NET * reach, MARGIN);
    batch b;
    batch_new(&b, B, L, K, c.calendar, &r);
    dfs_params *p = dfs_csdi_params(n);
    net_args a = {n, &b.in};
    /* every parameter tensor is an input of the check, and nothing else */
    gradcheck(what, f_net, p->t, p->count, &a, H_NET, TOL_NET);
    /* gradcheck left the analytic gradient of its R in each grad: what the pass does not use
     * has exactly 0, which a central difference also gives (the loss does not move at all) */
    int unused_zero = 1, used_nonzero = 1;
    for (int i = 0; i < p->count; i++) {
        const dfs_tensor *t = p->t[i];
        const int skipped =
            (L == 1 && strstr(t->name, ".time.")) || (K == 1 && strstr(t->name, ".feature."));
        const int is_emb = strcmp(t->name, "feature_emb.weight") == 0;
        size_t nz = 0, nz_unused = 0;
        for (size_t k = 0; k < t->n; k++) {
            nz += t->grad[k] != 0.0f;
            if (is_emb && (int)(k / (size_t)c.feature_dim) >= K) nz_unused += t->grad[k] != 0.0f;
        }
        if (skipped)
            unused_zero &= nz == 0;
        else if (is_emb)
            unused_zero &= nz_unused == 0, used_nonzero &= nz > 0;
        else
            used_nonzero &= nz > 0;
        if (skipped ? nz != 0 : (nz == 0 || nz_unused != 0))
            fprintf(stderr, "  %s: %s has %zu nonzero gradients (%zu in unused rows)\n", what,
                    t->name, nz, nz_unused);
    }
    CHECK(unused_zero, "%s: unused parameters get exactly zero gradient", what);
    CHECK(used_nonzero, "%s: every used parameter tensor gets a gradient", what);
    batch_free(&b);
    dfs_csdi_free(n);
}

static void test_gradients(void) {
    grad_case("csdi B 2, L 5, K 3", 2, 5, 3, 11);
    grad_case("csdi B 2, L 5, K 1 (no feature transformer)", 2, 5, 1, 12);
    grad_case("csdi B 2, L 1, K 3 (no time transformer)", 2, 1, 3, 13);
}

/* ---- 4. invariances ----------------------------------------------------------------------- */

/* The output of n on in, copied out. */
static float *predict(dfs_csdi *n, const dfs_csdi_input *in) {
    dfs_graph *g = dfs_graph_new();
    dfs_graph_set_grad(g, 0);
    dfs_tensor *o = dfs_csdi_forward(n, g, in);
    float *out = malloc(o->n * sizeof(float));
    memcpy(out, o->data, o->n * sizeof(float));
    dfs_graph_free(g);
    return out;
}

/* x_t at conditioning entries and cond elsewhere are replaced by 0 before the first layer
 * (the input channels are cond m and x_t (1 - m), formed by selection, not by products), so
 * changing them changes no bit anywhere. As a control, changing an entry the net does read
 * changes the output. */
static void test_invariances(void) {
    dfs_csdi_config c;
    tiny_config(&c);
    dfs_rng r;
    dfs_rng_seed(&r, 21);
    dfs_csdi *n = dfs_csdi_new(&c, &r);
    if (!n) {
        CHECK(0, "new tiny: %s", dfs_last_error());
        return;
    }
    randomise(n, &r);
    enum { B = 3, L = 6, K = 4, NC = 2, W = L * K };
    batch b;
    batch_new(&b, B, L, K, NC, &r);
    float *o0 = predict(n, &b.in);
    int any = 0;
    for (int i = 0; i < B * W; i++)
        any |= o0[i] != 0.0f;
    CHECK(any, "the randomised net predicts something other than 0");

    float *xt2 = malloc(B * W * sizeof(float)), *cond2 = malloc(B * W * sizeof(float));
    memcpy(xt2, b.xt, B * W * sizeof(float));
    memcpy(cond2, b.cond, B * W * sizeof(float));
    int nc = 0;
    for (int i = 0; i < B * W; i++) {
        if (b.mask[i])
            xt2[i] = 1e3f * dfs_rng_normal(&r), nc++;
        else
            cond2[i] = 1e3f * dfs_rng_normal(&r);
    }
    CHECK(nc > 0 && nc < B * W, "the mask has both kinds of entries (%d of %d conditioning)", nc,
          B * W);
    dfs_csdi_input in2 = b.in;
    in2.xt = xt2;
    float *o1 = predict(n, &in2);
    CHECK(!memcmp(o0, o1, B * W * sizeof(float)), "x_t at conditioning entries is never read");
    in2 = b.in;
    in2.cond = cond2;
    float *o2 = predict(n, &in2);
    CHECK(!memcmp(o0, o2, B * W * sizeof(float)), "cond at the other entries is never read");
    free(o1);
    free(o2);

    /* controls: an entry of x_t where it is read, one of cond where it is read */
    int ix = -1, ic = -1;
    for (int i = 0; i < B * W; i++) {
        if (!b.mask[i] && ix < 0) ix = i;
        if (b.mask[i] && ic < 0) ic = i;
    }
    in2 = b.in;
    memcpy(xt2, b.xt, B * W * sizeof(float));
    xt2[ix] += 0.5f;
    in2.xt = xt2;
    o1 = predict(n, &in2);
    CHECK(memcmp(o0, o1, B * W * sizeof(float)) != 0, "x_t at a denoised entry is read");
    in2 = b.in;
    memcpy(cond2, b.cond, B * W * sizeof(float));
    cond2[ic] += 0.5f;
    in2.cond = cond2;
    o2 = predict(n, &in2);
    CHECK(memcmp(o0, o2, B * W * sizeof(float)) != 0, "cond at a conditioning entry is read");
    free(o1);
    free(o2);

    free(xt2);
    free(cond2);
    free(o0);
    batch_free(&b);
    dfs_csdi_free(n);
}

/* Window permutation. Every op of the forward computes a window's values from that window's
 * rows alone: the Linears are GEMMs over all B L K rows, attention works per sequence (a window's
 * feature or step) and head, LayerNorm per row, the rest is elementwise or broadcasts the
 * window's step embedding. A permutation of the windows keeps every shape and every term of
 * every sum; what it can change is the order in which a GEMM sums a row, when the BLAS kernel
 * sums a row according to where it lies. OpenBLAS 0.3.21's SkylakeX and Sandybridge SGEMM
 * kernels do not (each row one chain over the inner dimension, wherever it lies), its Haswell
 * kernel (make test-cpus's AVX2 run) does: rotating the 192 rows of a (192, 8) x (8, 24)
 * product by 64 changes the bits of 128 rows there. So the test asks cblas_sgemm, on every
 * Linear shape of the net with the same row permutation (blas_rows_fixed), and then demands
 *   - bit for bit, where the BLAS sums every row the same wherever it lies;
 *   - otherwise what reordered sums can do: a reordered sum of n <= 24 terms moves by a few u
 *     of its size (independent roundings: ~sqrt(n) u / 2); 29 Linears lie on each output's
 *     path (the input 1, the step embedding 2, per residual layer 12: the step projection, 4
 *     per transformer, mid, cond and out; the head 2), with gains of order 1 through
 *     LayerNorm, the gates and the head, adding in quadrature to ~sqrt(29) 3u ~ 16u of the
 *     largest output. PERM_TOL = 64u of it, four times that (the Haswell kernel gives 1.7u);
 *     a window put in the wrong place errs by O(1). */
#define PERM_TOL (64 * U32)

/* 1 if cblas_sgemm, called as dfs_linear calls it (out (M, Fo) = bias rows + x (M, Fi) w^T,
 * beta = 1), gives each row the same bits after the windows are permuted by perm, for every
 * Linear of the net: those over the B W token rows and those over the B windows' step
 * embeddings. Random data, as the bits depend on the order of the operations, not on the
 * values. */
static int blas_rows_fixed(const dfs_csdi_config *c, int B, int Wt, const int *perm) {
    const int C = c->channels, F = c->ff, S = dfs_csdi_side_dim(c), E = c->step_dim;
    /* Fo, Fi, rows per window */
    const int shapes[][3] = {{C, 2, Wt},     {3 * C, C, Wt}, {C, C, Wt}, {F, C, Wt}, {C, F, Wt},
                             {2 * C, C, Wt}, {2 * C, S, Wt}, {1, C, Wt}, {E, E, 1},  {C, E, 1}};
    dfs_rng r;
    dfs_rng_seed(&r, 99);
    int fixed = 1;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int Fo = shapes[s][0], Fi = shapes[s][1], W = shapes[s][2], M = B * W;
        float *x = malloc((size_t)M * Fi * sizeof(float)),
              *xp = malloc((size_t)M * Fi * sizeof(float));
        float *w = malloc((size_t)Fo * Fi * sizeof(float)), *b = malloc((size_t)Fo * sizeof(float));
        float *y = malloc((size_t)M * Fo * sizeof(float)),
              *yp = malloc((size_t)M * Fo * sizeof(float));
        dfs_rng_fill_normal(&r, x, (size_t)M * Fi);
        dfs_rng_fill_normal(&r, w, (size_t)Fo * Fi);
        dfs_rng_fill_normal(&r, b, (size_t)Fo);
        for (int i = 0; i < B; i++)
            memcpy(xp + (size_t)i * W * Fi, x + (size_t)perm[i] * W * Fi,
                   (size_t)W * Fi * sizeof(float));
        for (int m = 0; m < M; m++)
            for (int o = 0; o < Fo; o++)
                y[(size_t)m * Fo + o] = yp[(size_t)m * Fo + o] = b[o];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, Fo, Fi, 1.0f, x, Fi, w, Fi, 1.0f, y,
                    Fo);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, Fo, Fi, 1.0f, xp, Fi, w, Fi, 1.0f,
                    yp, Fo);
        for (int i = 0; i < B; i++)
            fixed &= !memcmp(yp + (size_t)i * W * Fo, y + (size_t)perm[i] * W * Fo,
                             (size_t)W * Fo * sizeof(float));
        free(x), free(xp), free(w), free(b), free(y), free(yp);
    }
    return fixed;
}

static void perm_case(dfs_csdi *n, int B, int L, int K, const int *perm, dfs_rng *r) {
    const int W = L * K, NC = dfs_csdi_config_of(n)->calendar;
    const int exact = blas_rows_fixed(dfs_csdi_config_of(n), B, W, perm);
    batch b, q;
    batch_new(&b, B, L, K, NC, r);
    batch_new(&q, B, L, K, NC, r);
    /* window i of q is window perm[i] of b */
    for (int i = 0; i < B; i++) {
        const int j = perm[i];
        memcpy(q.xt + i * W, b.xt + j * W, W * sizeof(float));
        memcpy(q.cond + i * W, b.cond + j * W, W * sizeof(float));
        memcpy(q.mask + i * W, b.mask + j * W, W);
        memcpy(q.cal + i * L * NC, b.cal + j * L * NC, L * NC * sizeof(float));
        q.t[i] = b.t[j];
    }
    float *o0 = predict(n, &b.in), *op = predict(n, &q.in);
    int same = 1;
    double worst = 0, scale = 0;
    for (int i = 0; i < B; i++) {
        same &= !memcmp(op + i * W, o0 + perm[i] * W, W * sizeof(float));
        for (int k = 0; k < W; k++) {
            worst = max_err(worst, fabs(op[i * W + k] - o0[perm[i] * W + k]));
            scale = fmax(scale, fabs(o0[perm[i] * W + k]));
        }
    }
    if (exact) {
        CHECK(same,
              "%d windows of %d rows permuted: the output windows permuted bit for bit "
              "(max difference %.3g)",
              B, W, worst);
    } else {
        CHECK_RATIO(err_ratio(worst, PERM_TOL * scale),
                    "%d windows of %d rows permuted (the BLAS sums rows by place): max difference "
                    "%.3g, allowed %.3g",
                    B, W, worst, PERM_TOL * scale);
    }
    /* a control: the windows predict differently, so a permutation that was ignored shows */
    CHECK(memcmp(o0, o0 + W, W * sizeof(float)) != 0 && scale > 0,
          "two windows predict differently");
    free(o0);
    free(op);
    batch_free(&b);
    batch_free(&q);
}

static void test_permutation(void) {
    dfs_csdi_config c;
    tiny_config(&c);
    dfs_rng r;
    dfs_rng_seed(&r, 22);
    dfs_csdi *n = dfs_csdi_new(&c, &r);
    if (!n) {
        CHECK(0, "new tiny: %s", dfs_last_error());
        return;
    }
    randomise(n, &r);
    perm_case(n, 3, 16, 4, (const int[]){2, 0, 1}, &r);
    perm_case(n, 5, 9, 4, (const int[]){3, 0, 4, 2, 1}, &r);
    dfs_csdi_free(n);
}

/* ---- 5. flops ------------------------------------------------------------------------------- */


/* The side projections cached per window (dfs_csdi_side_cache, what a sampler computes once)
 * give the forward's values: bit for bit when made in one call over the same B windows (the
 * same GEMM on the same rows), within PERM_TOL of the largest output when made one window at a
 * time (the cond GEMM then sums over fewer rows: the reordering argument above). The calendar
 * is not read then. A control: the blocks of two windows swapped change the output. */
static void test_side_cache(void) {
    dfs_csdi_config c;
    tiny_config(&c);
    dfs_rng r;
    dfs_rng_seed(&r, 23);
    dfs_csdi *n = dfs_csdi_new(&c, &r);
    if (!n) {
        CHECK(0, "new tiny: %s", dfs_last_error());
        return;
    }
    randomise(n, &r);
    enum { B = 3, L = 6, K = 4, W = L * K };
    batch b;
    batch_new(&b, B, L, K, c.calendar, &r);
    const size_t per = dfs_csdi_side_floats(n, L, K);
    CHECK(per == (size_t)c.layers * W * 2 * c.channels, "one window's block: %zu floats", per);
    float *all = malloc(B * per * sizeof(float)), *one = malloc(B * per * sizeof(float));
    dfs_graph *g = dfs_graph_new();
    dfs_csdi_side_cache(n, g, &b.in, all);
    for (int i = 0; i < B; i++) {
        dfs_graph_reset(g);
        dfs_csdi_input in1 = {.B = 1, .L = L, .K = K, .cond_mask = b.mask + i * W, .calendar = b.cal + i * L * c.calendar};
        dfs_csdi_side_cache(n, g, &in1, one + i * per);
    }
    dfs_graph_free(g);

    float *o0 = predict(n, &b.in);
    const float *blocks[B];
    dfs_csdi_input in = b.in;
    in.calendar = NULL;
    in.side = blocks;
    for (int i = 0; i < B; i++) blocks[i] = all + i * per;
    float *o1 = predict(n, &in);
    CHECK(!memcmp(o0, o1, B * W * sizeof(float)), "side projections cached in one call: the same bits");
    for (int i = 0; i < B; i++) blocks[i] = one + i * per;
    float *o2 = predict(n, &in);
    double worst = 0, scale = 0;
    for (int i = 0; i < B * W; i++) {
        worst = max_err(worst, fabs(o2[i] - o0[i]));
        scale = fmax(scale, fabs(o0[i]));
    }
    CHECK(scale > 0, "the net predicts something");
    CHECK_RATIO(err_ratio(worst, PERM_TOL * scale),
                "side projections cached a window at a time: max difference %.3g, allowed %.3g", worst,
                PERM_TOL * scale);
    blocks[0] = one + per, blocks[1] = one;
    float *o3 = predict(n, &in);
    worst = 0;
    for (int i = 0; i < W; i++) worst = fmax(worst, fabs(o3[i] - o0[i]));
    CHECK(worst > 100 * PERM_TOL * scale, "two windows' blocks swapped: window 0 moves by %.3g", worst);
    free(o0), free(o1), free(o2), free(o3);
    free(all), free(one);
    batch_free(&b);
    dfs_csdi_free(n);
}

/* The small config, one window of L = 5 steps and K = 3 features (15 tokens), multiply-adds of
 * every matrix product:
 *   input 2 -> 8 on 15 tokens                                          240
 *   step embedding, two 8 -> 8 on one row                              128
 *   per layer:
 *     step projection 8 -> 8 on one row                                 64
 *     time transformer, 3 sequences of 5: qkv 15*8*24 = 2880, QK^T and PV 2 heads * 5*5*4 *
 *       3 sequences * 2 = 1200, attn_out, fc1, fc2 3 * 15*8*8 = 2880  6960
 *     feature transformer, 5 sequences of 3: 2880 + 2 * 3*3*4 * 5 * 2 (720) + 2880   6480
 *     mid 15*8*16 = 1920, cond 15*12*16 = 2880, out 1920                6720
 *     -> 20224 per layer, 40448 for two
 *   head fc1 15*8*8 = 960, fc2 15*8 = 120                             1080
 * total 41896 multiply-adds, 83792 flops. With L = 1 (3 tokens, no time transformer; the
 * feature transformer over one sequence of 3): input 48, step embedding 128, per layer 64 +
 * (qkv 576 + QK^T and PV 2 * 2 heads * 3*3*4 = 144 + 576) + (384 + 576 + 384) = 2704, two
 * 5408, head 192 + 24: 5800 multiply-adds, 11600 flops. Every count is an integer below 2^53,
 * so the function's double arithmetic must give it exactly. */
static void test_flops(void) {
    dfs_csdi_config c;
    tiny_config(&c);
    CHECK(dfs_csdi_flops(&c, 5, 3) == 83792.0, "flops(L 5, K 3) = %.17g, want 83792",
          dfs_csdi_flops(&c, 5, 3));
    CHECK(dfs_csdi_flops(&c, 1, 3) == 11600.0, "flops(L 1, K 3) = %.17g, want 11600",
          dfs_csdi_flops(&c, 1, 3));
}

int main(void) {
    test_config();
    test_params();
    test_fresh();
    test_gradients();
    test_invariances();
    test_permutation();
    test_side_cache();
    test_flops();
    return check_summary("test_csdi");
}
