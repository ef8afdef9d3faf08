/* test_egnn.c - EDM's EGNN denoiser (src/nn/egnn.c; Satorras et al. 2021, Hoogeboom et al.
 * 2022).
 *
 * 1. The config: the defaults accepted, every field just out of its range refused with
 *    DFS_ERR_ARG (and dfs_egnn_new returning NULL); the parameter count of a small config
 *    against a count by hand, EDM's names and shapes, dfs_egnn_param_count; the initial weights
 *    within PyTorch's bounds, the coordinate head's within xavier's with gain 0.001.
 * 2. Gradients of L = sum R out (R fixed random) with respect to every parameter and to the
 *    input xh (positions and features) against central finite differences (gradcheck.h), with
 *    every weight random, on two configs (attention and tanh on with two GCLs per block; both
 *    off with norm_constant 0.5); padded slots get exactly zero gradient.
 * 3. E(3): a rotation or a reflection Q and a translation of the input positions rotate the
 *    position output by Q and leave the features, within 1e-5 of the output's scale.
 * 4. Permutations of the atom slots of each molecule (padded slots moved too) permute the
 *    output; padded slots give exactly 0 and whatever they hold (NaN included) changes nothing;
 *    more padding changes nothing; the position output has zero centre of mass; an atom alone
 *    and a molecule with no atoms.
 * 5. dfs_egnn_flops against the matrix products of the small config counted one by one.
 *
 * PyTorch parity (the output and every gradient against an EDM-style PyTorch EGNN in float64)
 * is tests/parity/parity_egnn.sh. */
#include "check.h"
#include "diffuse.h"
#include "gradcheck.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static dfs_rng rng;

/* ---- configs and inputs --------------------------------------------------------------------- */

/* nf 8, F 4, 2 blocks of 2 GCLs, attention and tanh on, phi in (-2, 2), sums divided by 4 */
static void tiny_config(dfs_egnn_config *c) {
    dfs_egnn_config_default(c);
    c->features = 4;
    c->hidden = 8;
    c->layers = 2;
    c->sublayers = 2;
    c->coords_range = 2.0f;
    c->normalization_factor = 4.0f;
}

/* the other branches: no attention, no tanh, |x_i - x_j| + 0.5, one GCL per block */
static void plain_config(dfs_egnn_config *c) {
    tiny_config(c);
    c->hidden = 6;
    c->sublayers = 1;
    c->attention = 0;
    c->tanh = 0;
    c->norm_constant = 0.5f;
    c->normalization_factor = 2.0f;
}

static float unif(dfs_rng *r) {
    return 2.0f * dfs_rng_uniform(r) - 1.0f;
}

/* B molecules of M slots: atoms present where mask says, positions N(0, s^2) at least rmin
 * apart within a molecule, features U(-1, 1), t U(0, 1); padded slots hold `pad` (finite
 * garbage by default: the network must not read it). */
typedef struct {
    int B, M, F;
    float *xh, *t;
    uint8_t *mask;
} batch;

static void batch_new(batch *b, int B, int M, int F, const uint8_t *mask, float s, double rmin,
                      float pad) {
    const int D = 3 + F;
    b->B = B, b->M = M, b->F = F;
    b->xh = malloc((size_t)B * M * D * sizeof(float));
    b->t = malloc((size_t)B * sizeof(float));
    b->mask = malloc((size_t)B * M);
    memcpy(b->mask, mask, (size_t)B * M);
    for (int m = 0; m < B; m++) {
        b->t[m] = dfs_rng_uniform(&rng);
        for (int i = 0; i < M; i++) {
            float *p = b->xh + ((size_t)m * M + i) * D;
            if (!mask[m * M + i]) {
                for (int k = 0; k < D; k++)
                    p[k] = pad * (1.0f + (float)k);
                continue;
            }
            for (int k = 0; k < F; k++)
                p[3 + k] = unif(&rng);
            for (int tries = 0;; tries++) {
                for (int k = 0; k < 3; k++)
                    p[k] = s * dfs_rng_normal(&rng);
                int ok = 1;
                for (int j = 0; j < i && ok; j++) {
                    if (!mask[m * M + j]) continue;
                    const float *q = b->xh + ((size_t)m * M + j) * D;
                    double r2 = 0;
                    for (int k = 0; k < 3; k++)
                        r2 += ((double)p[k] - q[k]) * ((double)p[k] - q[k]);
                    ok = r2 >= rmin * rmin;
                }
                if (ok || tries > 10000) break;
            }
        }
    }
}

static void batch_free(batch *b) {
    free(b->xh);
    free(b->t);
    free(b->mask);
}

static dfs_egnn_input input_of(const batch *b) {
    return (dfs_egnn_input){b->B, b->M, b->xh, b->t, b->mask};
}

/* Every weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the coordinate heads' last layer
 * too (it starts 1000 times smaller, which would leave the coordinate path nearly untested). */
static void randomise(dfs_egnn *n) {
    dfs_egnn_init(n, &rng);
    dfs_params *p = dfs_egnn_params(n);
    for (int i = 0; i < p->count; i++) {
        dfs_tensor *t = p->t[i];
        if (!strstr(t->name, "coord_mlp.4")) continue;
        for (size_t k = 0; k < t->n; k++)
            t->data[k] = unif(&rng) / sqrtf((float)t->shape[1]);
    }
    dfs_params_ema_init(p);
}

/* The prediction of n on b, copied out. */
static float *predict(dfs_egnn *n, const batch *b) {
    dfs_graph *g = dfs_graph_new();
    dfs_graph_set_grad(g, 0);
    dfs_egnn_input in = input_of(b);
    dfs_tensor *o = dfs_egnn_forward(n, g, &in);
    float *out = malloc(o->n * sizeof(float));
    memcpy(out, o->data, o->n * sizeof(float));
    dfs_graph_free(g);
    return out;
}

/* ---- 1. config, parameters, initialisation -------------------------------------------------- */

static void test_config(void) {
    dfs_egnn_config c;
    dfs_egnn_config_default(&c);
    CHECK(dfs_egnn_config_check(&c) == DFS_OK, "default config: %s", dfs_last_error());
    CHECK(c.features == 6 && c.hidden == 64 && c.layers == 4 && c.sublayers == 1 &&
              c.attention == 1 && c.tanh == 1 && c.coords_range == 15.0f &&
              c.norm_constant == 1.0f && c.normalization_factor == 1.0f,
          "the defaults (F 6, nf 64, 4 layers of 1 GCL, attention, tanh, 15, 1, 1)");
    const struct {
        const char *what;
        size_t off;
        int is_float;
        float value;
    } bad[] = {
        {"features 0", offsetof(dfs_egnn_config, features), 0, 0},
        {"features 4097", offsetof(dfs_egnn_config, features), 0, 4097},
        {"hidden 0", offsetof(dfs_egnn_config, hidden), 0, 0},
        {"hidden 4097", offsetof(dfs_egnn_config, hidden), 0, 4097},
        {"layers 0", offsetof(dfs_egnn_config, layers), 0, 0},
        {"layers 65", offsetof(dfs_egnn_config, layers), 0, 65},
        {"sublayers 0", offsetof(dfs_egnn_config, sublayers), 0, 0},
        {"sublayers 17", offsetof(dfs_egnn_config, sublayers), 0, 17},
        {"attention 2", offsetof(dfs_egnn_config, attention), 0, 2},
        {"attention -1", offsetof(dfs_egnn_config, attention), 0, -1},
        {"tanh 2", offsetof(dfs_egnn_config, tanh), 0, 2},
        {"coords_range 0", offsetof(dfs_egnn_config, coords_range), 1, 0},
        {"coords_range inf", offsetof(dfs_egnn_config, coords_range), 1, INFINITY},
        {"coords_range nan", offsetof(dfs_egnn_config, coords_range), 1, NAN},
        {"norm_constant -0.5", offsetof(dfs_egnn_config, norm_constant), 1, -0.5f},
        {"norm_constant nan", offsetof(dfs_egnn_config, norm_constant), 1, NAN},
        {"normalization_factor 0", offsetof(dfs_egnn_config, normalization_factor), 1, 0},
        {"normalization_factor -1", offsetof(dfs_egnn_config, normalization_factor), 1, -1},
        {"normalization_factor inf", offsetof(dfs_egnn_config, normalization_factor), 1, INFINITY},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dfs_egnn_config_default(&c);
        if (bad[i].is_float)
            *(float *)((char *)&c + bad[i].off) = bad[i].value;
        else
            *(int *)((char *)&c + bad[i].off) = (int)bad[i].value;
        CHECK(dfs_egnn_config_check(&c) == DFS_ERR_ARG && strstr(dfs_last_error(), "EGNN"),
              "%s refused: %s", bad[i].what, dfs_last_error());
        CHECK(dfs_egnn_new(&c, &rng) == NULL, "new with %s returns NULL", bad[i].what);
    }
    CHECK(dfs_egnn_config_check(NULL) == DFS_ERR_ARG, "a NULL config refused");
    dfs_egnn_config_default(&c);
    c.features = 4096, c.hidden = 1, c.layers = 64, c.sublayers = 16, c.attention = 0;
    c.tanh = 0, c.norm_constant = 0, c.coords_range = 1e-3f, c.normalization_factor = 1e-3f;
    CHECK(dfs_egnn_config_check(&c) == DFS_OK, "range edges accepted: %s", dfs_last_error());
}

/* The tiny config's parameters by hand (nf 8, F 4: F + 1 = 5 inputs with the time, edge MLPs'
 * first layer on 2 nf + 2 = 18):
 *   embedding 5 -> 8          8*5 + 8      =   48
 *   embedding_out 8 -> 5      5*8 + 5      =   45
 *   per GCL: edge_mlp.0 18 -> 8  152, edge_mlp.2 8 -> 8  72, node_mlp.0 16 -> 8  136,
 *            node_mlp.2 8 -> 8  72, att_mlp.0 8 -> 1  9                      = 441
 *   per block: 2 GCLs 882, coord_mlp.0 152, coord_mlp.2 72, coord_mlp.4 8 (no bias) = 1114
 * total 48 + 45 + 2 * 1114 = 2321 floats in 4 + 2 (2 * 10 + 5) = 54 tensors. The plain config
 * (nf 6, one GCL, no attention; 14 inputs to the edge MLPs): embedding 36, embedding_out 35, GCL
 * 90 + 42 + 78 + 42 = 252, block 252 + 90 + 42 + 6 = 390, total 71 + 780 = 851 floats in
 * 4 + 2 (8 + 5) = 30 tensors. */
static void test_params(void) {
    dfs_egnn_config c;
    tiny_config(&c);
    dfs_egnn *n = dfs_egnn_new(&c, &rng);
    CHECK(n != NULL, "new tiny: %s", dfs_last_error());
    if (!n) return;
    const dfs_params *p = dfs_egnn_params(n);
    CHECK(p->n == 2321 && p->count == 54, "tiny: %zu floats in %d tensors, want 2321 in 54", p->n,
          p->count);
    CHECK(dfs_egnn_param_count(&c) == 2321, "dfs_egnn_param_count: %zu, want 2321",
          dfs_egnn_param_count(&c));
    /* EDM's names (its EGNN module's state_dict keys) and shapes, and its order */
    const struct {
        const char *name;
        int d0, d1;
    } want[] = {{"embedding.weight", 8, 5},
                {"embedding.bias", 8, 0},
                {"embedding_out.weight", 5, 8},
                {"embedding_out.bias", 5, 0},
                {"e_block_0.gcl_0.edge_mlp.0.weight", 8, 18},
                {"e_block_0.gcl_0.edge_mlp.0.bias", 8, 0},
                {"e_block_0.gcl_0.edge_mlp.2.weight", 8, 8},
                {"e_block_0.gcl_0.edge_mlp.2.bias", 8, 0},
                {"e_block_0.gcl_0.node_mlp.0.weight", 8, 16},
                {"e_block_0.gcl_0.node_mlp.0.bias", 8, 0},
                {"e_block_0.gcl_0.node_mlp.2.weight", 8, 8},
                {"e_block_0.gcl_0.node_mlp.2.bias", 8, 0},
                {"e_block_0.gcl_0.att_mlp.0.weight", 1, 8},
                {"e_block_0.gcl_0.att_mlp.0.bias", 1, 0},
                {"e_block_0.gcl_1.edge_mlp.0.weight", 8, 18},
                {"e_block_0.gcl_equiv.coord_mlp.0.weight", 8, 18},
                {"e_block_0.gcl_equiv.coord_mlp.2.bias", 8, 0},
                {"e_block_0.gcl_equiv.coord_mlp.4.weight", 1, 8},
                {"e_block_1.gcl_1.att_mlp.0.bias", 1, 0},
                {"e_block_1.gcl_equiv.coord_mlp.4.weight", 1, 8}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const dfs_tensor *t = dfs_params_find(p, want[i].name);
        int ok = t && t->shape[0] == want[i].d0 &&
                 (want[i].d1 ? t->ndim == 2 && t->shape[1] == want[i].d1 : t->ndim == 1);
        CHECK(ok, "parameter %s: %s", want[i].name, t ? "wrong shape" : "missing");
    }
    for (int i = 0; i < 14 && i < p->count; i++) /* the first 14 in EDM's order */
        CHECK(strcmp(p->t[i]->name, want[i].name) == 0, "parameter %d is %s, want %s", i,
              p->t[i]->name, want[i].name);
    CHECK(!dfs_params_find(p, "e_block_0.gcl_equiv.coord_mlp.4.bias"), "coord_mlp.4 has no bias");
    CHECK(dfs_egnn_config_of(n)->hidden == 8 && dfs_egnn_config_of(n)->sublayers == 2,
          "config_of gives the config");

    /* the initial weights: U(+-1/sqrt(fan_in)) everywhere (fan_in = shape[1]; a bias takes its
     * weight's), the coordinate heads' last layer U(+-0.001 sqrt(6 / (nf + 1))); each tensor
     * uses a good part of its range (its largest |w| above half the bound) */
    int bad = 0;
    for (int i = 0; i < p->count; i++) {
        const dfs_tensor *t = p->t[i];
        const dfs_tensor *wt = t;
        if (t->ndim == 1) { /* the bias follows its weight */
            char wn[256];
            snprintf(wn, sizeof wn, "%.*sweight", (int)(strlen(t->name) - 4), t->name);
            wt = dfs_params_find(p, wn);
        }
        double bound = wt ? 1.0 / sqrt((double)wt->shape[1]) : 0;
        if (strstr(t->name, "coord_mlp.4")) bound = 0.001 * sqrt(6.0 / (8 + 1));
        float most = 0;
        for (size_t k = 0; k < t->n; k++)
            most = fmaxf(most, fabsf(t->data[k]));
        if (!wt || !(most <= bound) || (t->n >= 8 && most < 0.5 * bound)) {
            bad++;
            fprintf(stderr, "  %s: max |w| %.3g, bound %.3g\n", t->name, most, bound);
        }
    }
    CHECK(bad == 0, "%d parameter tensors outside PyTorch's / EDM's initial bounds", bad);
    int ema_same = !memcmp(p->ema, p->data, p->n * sizeof(float));
    CHECK(ema_same, "EMA starts as the weights");
    dfs_egnn_free(n);

    plain_config(&c);
    n = dfs_egnn_new(&c, &rng);
    CHECK(n && dfs_egnn_params(n)->n == 851 && dfs_egnn_params(n)->count == 30 &&
              dfs_egnn_param_count(&c) == 851 &&
              !dfs_params_find(dfs_egnn_params(n), "e_block_0.gcl_0.att_mlp.0.weight"),
          "plain: %zu floats in %d tensors, want 851 in 30, no attention",
          n ? dfs_egnn_params(n)->n : 0, n ? dfs_egnn_params(n)->count : 0);
    dfs_egnn_free(n);
    dfs_egnn_config_default(&c); /* nf 64, F 6, 4 layers: 151,499 */
    n = dfs_egnn_new(&c, &rng);
    CHECK(n && dfs_egnn_params(n)->n == dfs_egnn_param_count(&c) &&
              dfs_egnn_param_count(&c) == 151499,
          "default config: %zu parameters, want 151499", dfs_egnn_param_count(&c));
    dfs_egnn_free(n);
}

/* ---- 2. gradients against finite differences ------------------------------------------------ */

typedef struct {
    dfs_egnn *n;
    const float *t;
    const uint8_t *mask;
    int nparam; /* in[nparam] is xh */
} net_args;

static dfs_tensor *f_net(dfs_graph *g, dfs_tensor **in, void *u) {
    const net_args *a = u;
    return dfs_egnn_apply(a->n, g, in[a->nparam], a->t, a->mask);
}

/* Finite differences (gradcheck.h) of L = sum R out over every parameter and every entry of xh.
 * The network is smooth where the test puts it: SiLU, sigmoid and tanh everywhere, and the
 * distance sqrt(r + 1e-8) only at r >= 1 between atoms present (positions at least 1 apart;
 * the diagonal r_ii = 0 never reaches the loss: d_ii = 0 and w_ii = 0).
 * Truncation h^2/6 |d3L/dp3|: the largest third derivatives belong to the edge-attribute
 * columns of the edge MLPs' first weights, which multiply squared distances of up to ~20 (a
 * third derivative grows with r^3 through the SiLUs): at h = 1e-2, 3e-2 and 0.1 the worst
 * element errs by 5.2e-4, 4.7e-3 and 4.7e-2, the h^2 of truncation, |d3L/dp3| ~ 30; so
 * 1.3e-4 at H_NET = 5e-3.
 * Roundoff (e(p + h) - e(p - h)) / 2h: the 90 outputs (of order 1 to 10) carry the float32
 * rounding of ~60 chained ops each, e ~ 1e-6 of L after the R-weighted sum; at h = 3e-3 the
 * worst element errs by 1.9e-4 where truncation is 4.7e-5, so e ~ 9e-7 and ~1e-4 at 5e-3.
 * TOL_NET = 6e-4, relative (absolute below 1): 2.5 times the sum of the two, 4.5 times the
 * worst measured (1.4e-4); a wrong term or a lost path errs by 1e-2 or more (a factor 0.9 on
 * one sum of pair_silu's backward: 1.7e-2; 1.01 on its edge-attribute gradient: 2e-3). */
#define H_NET 5e-3f
#define TOL_NET 6e-4f

static void grad_case(const char *what, const dfs_egnn_config *c, uint64_t seed) {
    dfs_rng_seed(&rng, seed);
    dfs_egnn *n = dfs_egnn_new(c, &rng);
    if (!n) {
        CHECK(0, "new: %s", dfs_last_error());
        return;
    }
    randomise(n);
    enum { B = 2, M = 5 };
    /* molecule 0 full, molecule 1 three atoms with padding in the middle and at the end */
    static const uint8_t mask[B * M] = {1, 1, 1, 1, 1, 1, 0, 1, 1, 0};
    batch b;
    batch_new(&b, B, M, c->features, mask, 1.0f, 1.0, 0.75f);
    const int D = 3 + c->features;
    dfs_tensor *xh = gc_input(3, (int[]){B, M, D}, &rng, 1.0f);
    memcpy(xh->data, b.xh, xh->n * sizeof(float));
    dfs_params *p = dfs_egnn_params(n);
    dfs_tensor **in = malloc((size_t)(p->count + 1) * sizeof *in);
    memcpy(in, p->t, (size_t)p->count * sizeof *in);
    in[p->count] = xh;
    net_args a = {n, b.t, b.mask, p->count};
    gradcheck(what, f_net, in, p->count + 1, &a, H_NET, TOL_NET);
    /* gradcheck left the analytic gradient of its R in each grad: padded slots get exactly 0,
     * present ones and every parameter tensor something */
    int pad_zero = 1, present_nonzero = 1, params_nonzero = 1;
    for (int s = 0; s < B * M; s++) {
        int nz = 0;
        for (int k = 0; k < D; k++)
            nz += xh->grad[(size_t)s * D + k] != 0.0f;
        if (mask[s])
            present_nonzero &= nz == D;
        else
            pad_zero &= nz == 0;
    }
    for (int i = 0; i < p->count; i++) {
        size_t nz = 0;
        for (size_t k = 0; k < p->t[i]->n; k++)
            nz += p->t[i]->grad[k] != 0.0f;
        if (!nz) fprintf(stderr, "  %s: %s has no gradient\n", what, p->t[i]->name);
        params_nonzero &= nz > 0;
    }
    CHECK(pad_zero, "%s: padded slots of xh get exactly zero gradient", what);
    CHECK(present_nonzero, "%s: every entry of a present atom gets a gradient", what);
    CHECK(params_nonzero, "%s: every parameter tensor gets a gradient", what);
    free(in);
    gc_input_free(xh);
    batch_free(&b);
    dfs_egnn_free(n);
}

static void test_gradients(void) {
    dfs_egnn_config c;
    tiny_config(&c);
    grad_case("egnn (attention, tanh, 2 GCLs)", &c, 11);
    plain_config(&c);
    grad_case("egnn (no attention, no tanh, norm_constant 0.5)", &c, 12);
}

/* ---- 3. E(3) equivariance ------------------------------------------------------------------- */

/* a random orthogonal matrix (Gram-Schmidt on Gaussian rows, in double), its determinant's sign
 * flipped to `det` by negating the last row */
static void random_orthogonal(double Q[3][3], int det) {
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++)
            Q[r][c] = dfs_rng_normal(&rng);
        for (int k = 0; k < r; k++) {
            double dot = 0;
            for (int c = 0; c < 3; c++)
                dot += Q[r][c] * Q[k][c];
            for (int c = 0; c < 3; c++)
                Q[r][c] -= dot * Q[k][c];
        }
        double nrm = sqrt(Q[r][0] * Q[r][0] + Q[r][1] * Q[r][1] + Q[r][2] * Q[r][2]);
        for (int c = 0; c < 3; c++)
            Q[r][c] /= nrm;
    }
    const double d = Q[0][0] * (Q[1][1] * Q[2][2] - Q[1][2] * Q[2][1]) -
                     Q[0][1] * (Q[1][0] * Q[2][2] - Q[1][2] * Q[2][0]) +
                     Q[0][2] * (Q[1][0] * Q[2][1] - Q[1][1] * Q[2][0]);
    if ((d > 0) != (det > 0))
        for (int c = 0; c < 3; c++)
            Q[2][c] = -Q[2][c];
}

/* A default-sized net (F 6, nf 16 instead of 64 to stay fast, 4 blocks, attention, tanh,
 * coords_range 15) with random weights, on 3 molecules of 9 slots, 9, 6 and 4 atoms (padding
 * scattered). out(Q x + s) against Q out(x) for the positions and out(x) for the features:
 * the largest difference must stay within 1e-5 of the largest output (of its part). What
 * differs between the two runs is rounding: Q x + s rounds each coordinate (u |Q x + s|,
 * |s| <= 3 here: ~5e-7 of the distances), and every op after rounds other numbers; over the
 * 4 blocks that gives 3e-7 to 8e-7 of the scale here (DFS_TEST_MARGINS), a twelfth of the
 * tolerance at worst. A broken equivariance errs by O(1): a constant added to the coordinate
 * differences by 1.6, the x coordinate used as an edge attribute by 14, padded slots at the
 * origin left in the neighbour sums by 100 (the scale is ~60 for positions, ~130 for
 * features). */
#define EQUI_TOL 1e-5

static void test_equivariance(void) {
    dfs_rng_seed(&rng, 31);
    dfs_egnn_config c;
    dfs_egnn_config_default(&c);
    c.hidden = 16;
    dfs_egnn *n = dfs_egnn_new(&c, &rng);
    if (!n) {
        CHECK(0, "new: %s", dfs_last_error());
        return;
    }
    randomise(n);
    enum { B = 3, M = 9 };
    uint8_t mask[B * M];
    for (int m = 0; m < B; m++)
        for (int i = 0; i < M; i++)
            mask[m * M + i] = m == 0 || ((i * 4 + m) % M) < (m == 1 ? 6 : 4);
    batch b;
    batch_new(&b, B, M, c.features, mask, 1.5f, 1.0, -3.0f);
    const int D = 3 + c.features;
    float *o = predict(n, &b);
    double xs = 0, hs = 0; /* the output's scale, per part */
    for (int s = 0; s < B * M; s++)
        for (int k = 0; k < D; k++) {
            const double v = fabs(o[(size_t)s * D + k]);
            if (k < 3)
                xs = fmax(xs, v);
            else
                hs = fmax(hs, v);
        }
    CHECK(xs > 0.1 && hs > 0.1,
          "the random net moves the atoms (%.3g) and predicts features (%.3g)", xs, hs);
    batch q = b;
    q.xh = malloc((size_t)B * M * D * sizeof(float));
    for (int trial = 0; trial < 4; trial++) {
        double Q[3][3], sh[3];
        const int det = trial % 2 ? -1 : 1;
        random_orthogonal(Q, det);
        for (int k = 0; k < 3; k++)
            sh[k] = trial < 2 ? 3.0 * unif(&rng) : 0.0;
        memcpy(q.xh, b.xh, (size_t)B * M * D * sizeof(float));
        for (int s = 0; s < B * M; s++) {
            if (!mask[s]) continue; /* padded slots keep their garbage */
            const float *x = b.xh + (size_t)s * D;
            for (int r = 0; r < 3; r++)
                q.xh[(size_t)s * D + r] =
                    (float)(Q[r][0] * x[0] + Q[r][1] * x[1] + Q[r][2] * x[2] + sh[r]);
        }
        float *oq = predict(n, &q);
        double ex = 0, eh = 0, moved = 0;
        for (int s = 0; s < B * M; s++) {
            const float *a = o + (size_t)s * D, *r = oq + (size_t)s * D;
            for (int k = 0; k < 3; k++) {
                const double qa = Q[k][0] * a[0] + Q[k][1] * a[1] + Q[k][2] * a[2];
                ex = max_err(ex, fabs(r[k] - qa));
                moved = fmax(moved, fabs(r[k] - a[k]));
            }
            for (int k = 3; k < D; k++)
                eh = max_err(eh, fabs(r[k] - a[k]));
        }
        CHECK_RATIO(err_ratio(ex, EQUI_TOL * xs),
                    "%s (det %+d, shift %.2g %.2g %.2g): |out_x(Qx + s) - Q out_x(x)| %.3g, "
                    "allowed %.3g",
                    det > 0 ? "rotation" : "reflection", det, sh[0], sh[1], sh[2], ex,
                    EQUI_TOL * xs);
        CHECK_RATIO(err_ratio(eh, EQUI_TOL * hs),
                    "%s: |out_h(Qx + s) - out_h(x)| %.3g, allowed %.3g",
                    det > 0 ? "rotation" : "reflection", eh, EQUI_TOL * hs);
        /* the test can fail: the position outputs did turn */
        CHECK(moved > 1e3 * EQUI_TOL * xs, "trial %d: Q moved the position output by only %.3g",
              trial, moved);
        free(oq);
    }
    /* a control: a non-orthogonal map (a stretch along one axis) changes the features */
    memcpy(q.xh, b.xh, (size_t)B * M * D * sizeof(float));
    for (int s = 0; s < B * M; s++)
        if (mask[s]) q.xh[(size_t)s * D] *= 1.5f;
    float *os = predict(n, &q);
    double eh = 0;
    for (int s = 0; s < B * M; s++)
        for (int k = 3; k < D; k++)
            eh = fmax(eh, fabs(os[(size_t)s * D + k] - o[(size_t)s * D + k]));
    CHECK(eh > 1e3 * EQUI_TOL * hs, "a stretch changes the features (by %.3g)", eh);
    free(os);
    free(q.xh);
    free(o);
    batch_free(&b);
    dfs_egnn_free(n);
}

/* ---- 4. permutations, padding, centre of mass ---------------------------------------------- */

/* Reordering the slots of a molecule, or adding padded slots, keeps every term of every sum and
 * every row of every GEMM; what it can change is the order of the sums over neighbours (the
 * pair sums run over slots in order) and, with some BLAS kernels, how a GEMM sums a row at
 * another place. A reordered sum of up to M terms moves by a few u of its size; through the
 * 4 blocks that stays near 1e-6 of the output's scale, as the roundings of the equivariance
 * test do (6.5e-7 measured for the permutation; padded slots added between the atoms add
 * exact zeros to the sums: no difference at all here); a slot put in the wrong place errs by
 * O(1). */
#define PERM_TOL 1e-5

/* max |a - b| over the present slots of each molecule, slot s of b being slot perm[s] of a,
 * relative to the scale of a; 0 on padded slots of b is checked exactly */
static double perm_err(const float *a, const float *b, const int *perm, const uint8_t *mask_b,
                       int B, int M, int Mb, int D, int *pad_nonzero) {
    double e = 0, scale = 0;
    for (int m = 0; m < B; m++)
        for (int s = 0; s < Mb; s++) {
            const float *y = b + ((size_t)m * Mb + s) * D;
            if (!mask_b[m * Mb + s]) {
                for (int k = 0; k < D; k++)
                    *pad_nonzero += !(y[k] == 0.0f);
                continue;
            }
            const float *x = a + ((size_t)m * M + perm[s]) * D;
            for (int k = 0; k < D; k++) {
                e = max_err(e, fabs(y[k] - x[k]));
                scale = fmax(scale, fabs(x[k]));
            }
        }
    return scale > 0 ? e / scale : (e == 0 ? 0 : INFINITY);
}

static void test_permutation_padding(void) {
    dfs_rng_seed(&rng, 41);
    dfs_egnn_config c;
    dfs_egnn_config_default(&c);
    c.hidden = 16;
    dfs_egnn *n = dfs_egnn_new(&c, &rng);
    if (!n) {
        CHECK(0, "new: %s", dfs_last_error());
        return;
    }
    randomise(n);
    enum { B = 2, M = 7, D = 9 };
    static const uint8_t mask[B * M] = {1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};
    batch b;
    batch_new(&b, B, M, c.features, mask, 1.5f, 1.0, 2.5f);
    float *o = predict(n, &b);

    /* padded slots: exactly 0 out, whatever they hold in (NaN and inf included) */
    int pad_nonzero = 0;
    for (int s = 0; s < B * M; s++)
        for (int k = 0; k < D && !mask[s]; k++)
            pad_nonzero += !(o[(size_t)s * D + k] == 0.0f);
    CHECK(pad_nonzero == 0, "padded slots predict exactly 0 (%d entries not)", pad_nonzero);
    batch q = b;
    q.xh = malloc(sizeof(float) * B * M * D);
    memcpy(q.xh, b.xh, sizeof(float) * B * M * D);
    for (int s = 0; s < B * M; s++)
        for (int k = 0; k < D && !mask[s]; k++)
            q.xh[(size_t)s * D + k] = k % 2 ? NAN : -INFINITY;
    float *o2 = predict(n, &q);
    CHECK(!memcmp(o, o2, sizeof(float) * B * M * D),
          "what padded slots hold (NaN, inf) changes no bit of the output");
    free(o2);

    /* a permutation of each molecule's slots, padded slots moving too: slot s of the new
     * batch is slot perm[s] of the old */
    static const int perm[M] = {4, 6, 0, 2, 5, 1, 3};
    uint8_t maskp[B * M];
    for (int m = 0; m < B; m++)
        for (int s = 0; s < M; s++) {
            maskp[m * M + s] = mask[m * M + perm[s]];
            memcpy(q.xh + ((size_t)m * M + s) * D, b.xh + ((size_t)m * M + perm[s]) * D,
                   sizeof(float) * D);
        }
    q.mask = maskp;
    o2 = predict(n, &q);
    pad_nonzero = 0;
    double e = perm_err(o, o2, perm, maskp, B, M, M, D, &pad_nonzero);
    CHECK_RATIO(err_ratio(e, PERM_TOL),
                "slots permuted: the output permuted within %.3g of its "
                "scale (allowed %.3g)",
                e, PERM_TOL);
    CHECK(pad_nonzero == 0, "slots permuted: padded slots predict 0");
    free(o2);

    /* more padding: 4 slots more per molecule, present atoms spread among them in order */
    enum { M2 = M + 4 };
    static const int place[M] = {0, 2, 3, 5, 6, 8, 10}; /* slot of old slot k */
    int back[M2];
    uint8_t mask2[B * M2];
    float *xh2 = malloc(sizeof(float) * B * M2 * D);
    for (int s = 0; s < M2; s++)
        back[s] = -1;
    for (int k = 0; k < M; k++)
        back[place[k]] = k;
    for (int m = 0; m < B; m++)
        for (int s = 0; s < M2; s++) {
            float *y = xh2 + ((size_t)m * M2 + s) * D;
            mask2[m * M2 + s] = back[s] >= 0 && mask[m * M + back[s]];
            if (back[s] >= 0)
                memcpy(y, b.xh + ((size_t)m * M + back[s]) * D, sizeof(float) * D);
            else
                for (int k = 0; k < D; k++)
                    y[k] = 1e4f;
        }
    for (int s = 0; s < M2; s++)
        if (back[s] < 0) back[s] = 0; /* padded in both: perm_err checks them as padding */
    batch w = {B, M2, c.features, xh2, b.t, mask2};
    float *o3 = predict(n, &w);
    pad_nonzero = 0;
    e = perm_err(o, o3, back, mask2, B, M, M2, D, &pad_nonzero);
    CHECK_RATIO(err_ratio(e, PERM_TOL),
                "4 more padded slots: the atoms' outputs within %.3g of the scale (allowed %.3g)",
                e, PERM_TOL);
    CHECK(pad_nonzero == 0, "more padding: padded slots predict 0");
    free(o3);
    free(xh2);

    /* zero centre of mass over the atoms present: each output is one rounding of y_i - mean,
     * y = x_final - x0 (the mean in double), so |sum_i out_i| / n <= u sum_i |out_i| / n (1 + u)
     * plus the double mean's error, n 2^-53 max |y_i|: below 1e-12 sum_i |out_i| / n unless
     * the molecule drifted 10^3 times further than its atoms moved apart (test_ops_graph
     * checks the op itself) */
    double worst = 0;
    for (int m = 0; m < B; m++)
        for (int k = 0; k < 3; k++) {
            double sum = 0, abs = 0;
            int na = 0;
            for (int s = 0; s < M; s++) {
                if (!mask[m * M + s]) continue;
                const double v = o[((size_t)m * M + s) * D + k];
                sum += v, abs += fabs(v), na++;
            }
            worst = max_err(worst, err_ratio(fabs(sum / na), (U32 * (1 + U32) + 1e-12) * abs / na));
        }
    CHECK_RATIO(worst, "the position output has zero centre of mass (%.3g of the bound)", worst);

    /* dfs_egnn_apply on the same xh (masking by a product instead of a selection): the same
     * values (a product by 1 is exact; padded slots are finite here) */
    dfs_graph *g = dfs_graph_new();
    dfs_tensor *x = dfs_tensor_new(g, 3, (int[]){B, M, D});
    memcpy(x->data, b.xh, sizeof(float) * B * M * D);
    dfs_tensor *oa = dfs_egnn_apply(n, g, x, b.t, b.mask);
    int same = oa->n == (size_t)B * M * D;
    for (size_t i = 0; same && i < oa->n; i++)
        same = oa->data[i] == o[i];
    CHECK(same, "dfs_egnn_apply gives dfs_egnn_forward's output");
    dfs_graph_free(g);

    free(q.xh);
    free(o);
    batch_free(&b);
    dfs_egnn_free(n);
}

/* An atom alone: no neighbours, so its position output is 0 (x_final = x0, centred: 0) and its
 * features are the node MLPs' on an empty message; a molecule with no atoms predicts 0. */
static void test_small_molecules(void) {
    dfs_rng_seed(&rng, 51);
    dfs_egnn_config c;
    tiny_config(&c);
    dfs_egnn *n = dfs_egnn_new(&c, &rng);
    if (!n) {
        CHECK(0, "new: %s", dfs_last_error());
        return;
    }
    randomise(n);
    enum { B = 3, M = 3, D = 7 };
    static const uint8_t mask[B * M] = {0, 1, 0, 0, 0, 0, 1, 1, 1};
    batch b;
    batch_new(&b, B, M, c.features, mask, 1.0f, 1.0, 0.5f);
    float *o = predict(n, &b);
    int ok_single = 1, ok_empty = 1, ok_full = 0;
    for (int k = 0; k < D; k++) {
        const float v = o[1 * D + k];
        ok_single &= k < 3 ? v == 0.0f : (isfinite(v) && v != 0.0f);
    }
    for (int s = 3; s < 6; s++)
        for (int k = 0; k < D; k++)
            ok_empty &= o[(size_t)s * D + k] == 0.0f;
    for (int s = 6; s < 9; s++)
        for (int k = 0; k < 3; k++)
            ok_full |= o[(size_t)s * D + k] != 0.0f;
    CHECK(ok_single, "an atom alone: position output 0, features finite");
    CHECK(ok_empty, "a molecule with no atoms predicts exactly 0");
    CHECK(ok_full, "a molecule of 3 atoms moves them");
    free(o);
    batch_free(&b);
    dfs_egnn_free(n);
}

/* ---- 5. flops ---------------------------------------------------------------------------------
 */

/* The tiny config (nf 8, F 4, 2 blocks of 2 GCLs with attention), M = 5 (25 edges with the
 * diagonal), multiply-adds:
 *   embedding 5 * 5*8 = 200, embedding_out 5 * 8*5 = 200                         400
 *   an edge MLP: node terms 5 * 2*8*8 = 640, edge attributes 25 * 2*8 = 400,
 *     second layer 25 * 8*8 = 1600                                              2640
 *   a GCL: edge MLP 2640, attention 25 * 8 = 200, node MLP 5 * (16*8 + 8*8) = 960   3800
 *   a block: 2 GCLs 7600, coordinate MLP 2640 + its last layer 25 * 8 = 200     10440
 * total 400 + 2 * 10440 = 21280 multiply-adds, 42560 flops. */
static void test_flops(void) {
    dfs_egnn_config c;
    tiny_config(&c);
    CHECK(dfs_egnn_flops(&c, 5) == 42560.0, "flops(M 5) = %.17g, want 42560",
          dfs_egnn_flops(&c, 5));
}

int main(void) {
    dfs_rng_seed(&rng, 7);
    test_config();
    test_params();
    test_gradients();
    test_equivariance();
    test_permutation_padding();
    test_small_molecules();
    test_flops();
    return check_summary("test_egnn");
}
