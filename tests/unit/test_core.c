/* test_core.c - the diffusion core on any tensor: the padding mask (sets of varying size), the
 * projection of the noise onto a subspace (EDM's zero centre of mass), the diffusion side of a
 * training step with its masked loss, and the bound with masks. Data are Gaussian, where the
 * exact denoiser and the exact answers are closed forms (as in test_masks.c).
 *
 * Where a result must equal another bit for bit (padded against cut-down, all-present against
 * no mask, masked loss against dfs_mse), it is compared with memcmp. Tolerances elsewhere come
 * from float rounding (U32 = 2^-24 per rounding, counted where used) or from the Monte Carlo
 * error of a statistic (5 standard errors: var / n for a mean, (C_ii C_jj + C_ij^2) / n for a
 * covariance entry), as stated at each check. */
#include "check.h"
#include "diffuse.h"
#include "engine/tape.h"
#include "gradcheck.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same_bits(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

/* ------------------------------------------------------------------------------------------ */
/* Correlated Gaussian data in D = 4 dimensions and its exact denoiser (as test_masks.c)        */
/* ------------------------------------------------------------------------------------------ */

#define D 4
static const double lam[D] = {0.04, 0.15, 0.4, 0.9};
static const double mu[D] = {0.3, -0.2, 0.1, 0.0};
static double Q[D][D], S[D][D];

static void setup_gauss(void) {
    static const int h[D][D] = {{1, 1, 1, 1}, {1, -1, 1, -1}, {1, 1, -1, -1}, {1, -1, -1, 1}};
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) Q[i][j] = 0.5 * h[i][j];
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            S[i][j] = 0;
            for (int k = 0; k < D; k++) S[i][j] += Q[i][k] * lam[k] * Q[j][k];
        }
}

typedef struct {
    const dfs_schedule *s;
    int diagonal;    /* 1: coordinates independent with variances lam (S = diag(lam)) */
    int gt;          /* the step G is for (-1: none yet) */
    double G[D][D], a, sb;
} exact_model;

/* The exact eps prediction at x_t = a x0 + s eps for x0 ~ N(mu, S):
 * E[x0 | x_t] = mu + G (x_t - a mu), G = a S (a^2 S + s^2 I)^-1, eps = (x_t - a E) / s. */
static dfs_status exact_eps(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    exact_model *m = user;
    for (int i = 0; i < n; i++) {
        if (t[i] != m->gt) {
            const double ab = m->s->abar[t[i]];
            m->a = sqrt(ab);
            m->sb = sqrt(1.0 - ab);
            for (int r = 0; r < D; r++)
                for (int c = 0; c < D; c++) {
                    double g = 0;
                    if (m->diagonal) g = r == c ? m->a * lam[r] / (ab * lam[r] + 1.0 - ab) : 0.0;
                    else
                        for (int k = 0; k < D; k++)
                            g += Q[r][k] * (m->a * lam[k] / (ab * lam[k] + 1.0 - ab)) * Q[c][k];
                    m->G[r][c] = g;
                }
            m->gt = t[i];
        }
        const float *xi = x + (size_t)i * D;
        for (int r = 0; r < D; r++) {
            double e = mu[r];
            for (int c = 0; c < D; c++) e += m->G[r][c] * (xi[c] - m->a * mu[c]);
            out[(size_t)i * D + r] = (float)((xi[r] - m->a * e) / m->sb);
        }
    }
    return DFS_OK;
}

/* The same model on a padded layout: each row of DP values holds the D data values at the
 * positions pos[], the rest are padding. It gathers, calls exact_eps, scatters, writes NaN on the
 * padded outputs (which the core must ignore), and counts padded inputs that are not +0. */
#define DP 7
static const int pos[D] = {1, 2, 4, 6};

typedef struct {
    exact_model *inner;
    long bad_inputs; /* padded entries of x that were not exactly +0 */
    float *buf;      /* (2 n_max, D) in, then out */
} padded_model;

static dfs_status padded_eps(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    padded_model *p = user;
    float *in = p->buf, *o = p->buf + (size_t)n * D;
    for (int i = 0; i < n; i++) {
        for (int j = 0, k = 0; j < DP; j++) {
            const float v = x[(size_t)i * DP + j];
            if (k < D && pos[k] == j) in[(size_t)i * D + k++] = v;
            else p->bad_inputs += !(v == 0.0f && !signbit(v));
        }
    }
    exact_eps(p->inner, in, t, labels, n, o);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < DP; j++) out[(size_t)i * DP + j] = NAN;
        for (int k = 0; k < D; k++) out[(size_t)i * DP + pos[k]] = o[(size_t)i * D + k];
    }
    return DFS_OK;
}

/* sample mean and covariance of n rows of d values taken at idx[] from rows of stride w */
static void moments(const float *x, int n, int w, const int *idx, int d, double *m, double *c) {
    for (int j = 0; j < d; j++) {
        m[j] = 0;
        for (int i = 0; i < n; i++) m[j] += x[(size_t)i * w + idx[j]];
        m[j] /= n;
    }
    for (int j = 0; j < d; j++)
        for (int k = 0; k < d; k++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += (x[(size_t)i * w + idx[j]] - m[j]) * (x[(size_t)i * w + idx[k]] - m[k]);
            c[j * d + k] = s / (n - 1);
        }
}

/* The largest error of a sample mean m and covariance c (d values) against em, ec, in units of
 * each statistic's standard error at n samples; entries of zero expected variance are skipped. */
static double worst_z(const double *m, const double *c, const double *em, const double *ec, int d, int n) {
    double z = 0;
    for (int j = 0; j < d; j++) {
        if (!(ec[j * d + j] > 0)) continue;
        z = max_err(z, fabs(m[j] - em[j]) / sqrt(ec[j * d + j] / n));
        for (int k = 0; k < d; k++) {
            if (!(ec[k * d + k] > 0)) continue;
            const double se = sqrt((ec[j * d + j] * ec[k * d + k] + ec[j * d + k] * ec[j * d + k]) / n);
            z = max_err(z, fabs(c[j * d + k] - ec[j * d + k]) / se);
        }
    }
    return z;
}

/* ------------------------------------------------------------------------------------------ */
/* Padding in the samplers                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *present;
    int w;
    long steps, bad; /* callbacks, and padded entries of x that were not exactly +0 */
} pad_watch;

static void watch_pad(void *user, int i, int steps, int t, const float *x, int n) {
    pad_watch *pw = user;
    pw->steps++;
    for (size_t j = 0; j < (size_t)n * pw->w; j++)
        if (!pw->present[j]) pw->bad += !(x[j] == 0.0f && !signbit(x[j]));
}

enum { NP = 64, NS = 4000 };

static void test_padding_samplers(void) {
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000);
    exact_model em = {.s = &s, .gt = -1};
    padded_model pm = {.inner = &em, .buf = malloc(4 * NP * D * sizeof(float))};
    static uint8_t present[NP * DP], ones[NP * D], kmask[NP * DP], kmask_c[NP * D];
    static float known[NP * DP], known_c[NP * D], init[NP * DP], init_c[NP * D];
    static float xp[NP * DP], xc[NP * D], xo[NP * D];
    int labels[NP];
    for (int i = 0; i < NP; i++) {
        labels[i] = i % 3;
        for (int j = 0; j < DP; j++) {
            present[i * DP + j] = 0;
            init[i * DP + j] = 3.0f; /* padded: ignored */
            known[i * DP + j] = 5.0f;
            kmask[i * DP + j] = j == 0; /* a known bit on a padded entry: padding wins */
        }
        for (int k = 0; k < D; k++) {
            const int j = pos[k];
            present[i * DP + j] = 1;
            ones[i * D + k] = 1;
            init_c[i * D + k] = init[i * DP + j] = (float)(0.5 * sin(i + 3.0 * k));
            known_c[i * D + k] = known[i * DP + j] = k < 2 ? (float)(0.4 - 0.3 * k) : 9.0f;
            kmask_c[i * D + k] = kmask[i * DP + j] = k < 2;
        }
    }
    /* every sampler, each with one feature of the core on: the padded run must give the run on
     * the cut-down data bit for bit (the padded entries take no random numbers and are never
     * modelled), keep padded entries at +0 at every step, and an all-present mask must change
     * nothing */
    enum { PLAIN, THRESH, KNOWN, SDEDIT, GUIDED, NFEAT };
    static const char *const feat[NFEAT] = {"plain", "dynamic threshold", "known (RePaint)", "SDEdit", "guidance"};
    for (int kind = 0; kind < DFS_SAMPLER_COUNT; kind++)
        for (int f = 0; f < NFEAT; f++) {
            dfs_sampler_config c;
            dfs_sampler_config_default(&c);
            c.kind = (dfs_sampler_kind)kind;
            c.steps = 20;
            c.eta = 0.7f;
            if (f == THRESH) c.dynamic_threshold = 60.0f;
            if (f == KNOWN) c.resample = 3, c.jump = 4;
            if (f == SDEDIT) c.strength = 0.6f;
            if (f == GUIDED) c.guidance = 2.0f, c.null_label = 3;
            const int *lab = f == GUIDED ? labels : NULL;
            dfs_rng rng;
            /* cut down to the D present values */
            c.known = f == KNOWN ? known_c : NULL;
            c.known_mask = f == KNOWN ? kmask_c : NULL;
            c.init = f == SDEDIT ? init_c : NULL;
            dfs_rng_seed(&rng, 100 + kind);
            em.gt = -1;
            dfs_status st1 = dfs_sample(&s, &c, exact_eps, &em, lab, NP, D, &rng, xc, NULL, NULL);
            /* the same with an all-present mask */
            c.present = ones;
            dfs_rng_seed(&rng, 100 + kind);
            em.gt = -1;
            dfs_status st2 = dfs_sample(&s, &c, exact_eps, &em, lab, NP, D, &rng, xo, NULL, NULL);
            /* padded */
            c.present = present;
            c.known = f == KNOWN ? known : NULL;
            c.known_mask = f == KNOWN ? kmask : NULL;
            c.init = f == SDEDIT ? init : NULL;
            pad_watch pw = {present, DP, 0, 0};
            pm.bad_inputs = 0;
            dfs_rng_seed(&rng, 100 + kind);
            em.gt = -1;
            dfs_status st3 = dfs_sample(&s, &c, padded_eps, &pm, lab, NP, DP, &rng, xp, watch_pad, &pw);
            CHECK(st1 == DFS_OK && st2 == DFS_OK && st3 == DFS_OK, "%s, %s: %s", dfs_sampler_names[kind],
                  feat[f], dfs_last_error());
            int same = 1;
            for (int i = 0; i < NP; i++)
                for (int k = 0; k < D; k++)
                    same &= same_bits(&xp[i * DP + pos[k]], &xc[i * D + k], sizeof(float));
            CHECK(same, "%s, %s: the padded samples equal the cut-down ones bit for bit",
                  dfs_sampler_names[kind], feat[f]);
            CHECK(same_bits(xo, xc, sizeof xc), "%s, %s: an all-present mask gives the samples of no mask bit "
                  "for bit", dfs_sampler_names[kind], feat[f]);
            CHECK(pw.bad == 0 && pw.steps > 0, "%s, %s: %ld padded values not +0 over %ld steps",
                  dfs_sampler_names[kind], feat[f], pw.bad, pw.steps);
            CHECK(pm.bad_inputs == 0, "%s, %s: the model saw %ld padded inputs that are not +0",
                  dfs_sampler_names[kind], feat[f], pm.bad_inputs);
            long bad = 0;
            for (int j = 0; j < NP * DP; j++) bad += !present[j] && !(xp[j] == 0.0f && !signbit(xp[j]));
            CHECK(bad == 0, "%s, %s: %ld padded values of the result not +0", dfs_sampler_names[kind], feat[f], bad);
            if (f == THRESH) { /* the threshold acted: without it the samples differ */
                c.dynamic_threshold = 0.0f;
                c.present = NULL;
                dfs_rng_seed(&rng, 100 + kind);
                em.gt = -1;
                dfs_sample(&s, &c, exact_eps, &em, NULL, NP, D, &rng, xo, NULL, NULL);
                CHECK(!same_bits(xo, xc, sizeof xc), "%s: the dynamic threshold at 60%% changes the samples",
                      dfs_sampler_names[kind]);
            }
        }
    free(pm.buf);

    /* the law of the present entries: DDPM's full chain with the exact denoiser on the padded
     * layout gives N(mu, S) (test_masks.c measures its bias as within the Monte Carlo error) */
    float *x = malloc((size_t)NS * DP * sizeof(float));
    uint8_t *pres = malloc((size_t)NS * DP);
    pm.buf = malloc(4 * (size_t)NS * D * sizeof(float));
    for (int i = 0; i < NS; i++) memcpy(pres + (size_t)i * DP, present, DP);
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.steps = 1000;
    c.clip_x0 = 0;
    c.present = pres;
    dfs_rng rng;
    dfs_rng_seed(&rng, 7);
    pad_watch pw = {pres, DP, 0, 0};
    em.gt = -1;
    CHECK(dfs_sample(&s, &c, padded_eps, &pm, NULL, NS, DP, &rng, x, watch_pad, &pw) == DFS_OK, "ddpm 1000: %s",
          dfs_last_error());
    CHECK(pw.bad == 0 && pw.steps == 1000, "ddpm 1000 steps: %ld padded values not +0", pw.bad);
    double m[D], cv[D * D], ec[D * D];
    for (int j = 0; j < D; j++)
        for (int k = 0; k < D; k++) ec[j * D + k] = S[j][k];
    moments(x, NS, DP, pos, D, m, cv);
    const double z = worst_z(m, cv, mu, ec, D, NS);
    printf("padding, ddpm 1000 steps: mean %.4f %.4f %.4f %.4f (exact %.1f %.1f %.1f %.1f), worst %.1f SE\n",
           m[0], m[1], m[2], m[3], mu[0], mu[1], mu[2], mu[3], z);
    CHECK(z <= 5.0, "the present entries have the data's law N(mu, S): %.1f SE", z);
    free(x);
    free(pres);
    free(pm.buf);
    dfs_schedule_free(&s);
}

/* ------------------------------------------------------------------------------------------ */
/* The zero-centre-of-mass projection                                                           */
/* ------------------------------------------------------------------------------------------ */

/* sample i has cnt[i] present atoms of `width` values, the first `coords` being positions */
static void atom_mask(uint8_t *present, const int *cnt, int n, int atoms, int width) {
    for (int i = 0; i < n; i++)
        for (int a = 0; a < atoms; a++)
            for (int c = 0; c < width; c++) present[((size_t)i * atoms + a) * width + c] = a < cnt[i];
}

static void test_projection_unit(void) {
    enum { n = 6, A = 5, W = 5, C = 3, DIM = A * W };
    const dfs_com_layout L = {W, C};
    const int cnt[n] = {5, 4, 3, 2, 1, 0};
    uint8_t present[n * DIM];
    float v[n * DIM], w[n * DIM], pv[n * DIM], pw[n * DIM], ppv[n * DIM];
    atom_mask(present, cnt, n, A, W);
    dfs_rng rng;
    dfs_rng_seed(&rng, 5);
    dfs_rng_fill_normal(&rng, v, n * DIM);
    dfs_rng_fill_normal(&rng, w, n * DIM);
    for (int j = 0; j < n * DIM; j++) v[j] += 2.0f; /* a centre of mass well away from 0 */
    memcpy(pv, v, sizeof v);
    memcpy(pw, w, sizeof w);
    dfs_project_zero_com((void *)&L, pv, present, n, DIM);
    dfs_project_zero_com((void *)&L, pw, present, n, DIM);
    memcpy(ppv, pv, sizeof pv);
    dfs_project_zero_com((void *)&L, ppv, present, n, DIM);
    /* Each output is (float)(v - mean), one rounding: |e_j| <= U32 |(Pv)_j| (the mean, in
     * double, adds ~1e-16). Then:
     *   sum over present atoms of (Pv)_a,c           <= U32 sum |Pv|
     *   |P(Pv) - Pv|_j (the mean of the e's, then one rounding)  <= U32 (mean|Pv| + |Pv_j|) + 1e-15
     *   <Pv, w> - <v, Pw> (P symmetric)              <= U32 sum (|Pv_j| |w_j| + |v_j| |Pw_j|)
     *   <Pv, v - Pv> (orthogonal)                    <= U32 sum |Pv_j| (|v_j| + 2 |Pv_j|) */
    double com = 0, idem = 0, sym, orth;
    long pad_bad = 0, feat_bad = 0;
    double vw = 0, wv = 0, symb = 0, vr = 0, orthb = 0;
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < W; c++) {
            double sum = 0, abs = 0;
            int m = 0;
            for (int a = 0; a < A; a++) {
                const int j = i * DIM + a * W + c;
                if (!present[j]) {
                    pad_bad += !(pv[j] == 0.0f && !signbit(pv[j])) + !(pw[j] == 0.0f && !signbit(pw[j]));
                    continue;
                }
                if (c >= C) {
                    feat_bad += !same_bits(&pv[j], &v[j], sizeof(float));
                    continue;
                }
                sum += pv[j];
                abs += fabs(pv[j]);
                m++;
            }
            if (c < C && m > 0) {
                com = max_err(com, err_ratio(fabs(sum), U32 * abs + 1e-15));
                for (int a = 0; a < A; a++) {
                    const int j = i * DIM + a * W + c;
                    if (present[j])
                        idem = max_err(idem, err_ratio(fabs((double)ppv[j] - pv[j]),
                                                       U32 * (abs / m + fabs(pv[j])) + 1e-15));
                }
            }
        }
    }
    for (int j = 0; j < n * DIM; j++) {
        vw += (double)pv[j] * w[j];
        wv += (double)v[j] * pw[j];
        symb += U32 * (fabs(pv[j]) * fabs(w[j]) + fabs(v[j]) * fabs(pw[j]));
        if (present[j]) {
            vr += (double)pv[j] * ((double)v[j] - pv[j]);
            orthb += U32 * fabs(pv[j]) * (fabs(v[j]) + 2 * fabs(pv[j]));
        }
    }
    sym = err_ratio(fabs(vw - wv), symb + 1e-12);
    orth = err_ratio(fabs(vr), orthb + 1e-12);
    CHECK_RATIO(com, "the present atoms' centre of mass is 0 to one rounding per value (ratio %.3g)", com);
    CHECK_RATIO(idem, "P is idempotent to rounding: P(Pv) = Pv (ratio %.3g)", idem);
    CHECK_RATIO(sym, "P is symmetric: <Pv, w> = <v, Pw> to rounding (%.3g against %.3g, ratio %.3g)", vw, wv, sym);
    CHECK_RATIO(orth, "P is orthogonal: <Pv, v - Pv> = 0 to rounding (%.3g, ratio %.3g)", vr, orth);
    CHECK(pad_bad == 0, "%ld padded values not +0 after the projection", pad_bad);
    CHECK(feat_bad == 0, "%ld present features changed by the projection", feat_bad);

    /* the matrix of P on one sample of 4 present atoms (positions only): I - 11^T / 4 on each
     * coordinate, entries exact in float (0.75, -0.25) */
    enum { A4 = 4, D4 = A4 * 3 };
    double worst = 0;
    for (int col = 0; col < D4; col++) {
        float e[D4] = {0};
        e[col] = 1.0f;
        dfs_project_zero_com(NULL, e, NULL, 1, D4);
        for (int row = 0; row < D4; row++) {
            const double want = (row % 3 == col % 3 ? -0.25 : 0.0) + (row == col ? 1.0 : 0.0);
            worst = max_err(worst, fabs(e[row] - want));
        }
    }
    CHECK(worst == 0, "P = I - 11^T/4 per coordinate exactly (worst %.3g)", worst);

    /* the complement: a constant per coordinate goes to 0 */
    float k[D4];
    for (int j = 0; j < D4; j++) k[j] = (float)(1.5 - 0.7 * (j % 3));
    dfs_project_zero_com(NULL, k, NULL, 1, D4);
    double kmax = 0;
    for (int j = 0; j < D4; j++) kmax = max_err(kmax, fabs(k[j]));
    CHECK(kmax <= 1e-15, "P kills a translation: max %.3g", kmax);
}

/* Molecules of 1..4 atoms in 3-D padded to 4: x0 ~ N(P mu, P S P) in the zero-CoM subspace of
 * each sample's present atoms, S a fixed correlated 12x12 covariance (its leading 3m x 3m block
 * for m atoms). On the subspace, with C = P S P and x_t = a x0 + s P z,
 *   E[x0 | x_t] = P mu + a C M^-1 (x_t - a P mu),   M = a^2 C + s^2 P + (I - P)
 * (M is a^2 C + s^2 P on the subspace, which is invertible there, and I on its complement).
 * The model returns the exact eps plus a translation g (in the complement), which the sampler's
 * projection must remove, and NaN on padded atoms. */
enum { MA = 4, MD = 3 * MA };
static double Sm[MD][MD], mu0[MD];

static void proj_matrix(int m, double *P) { /* (3m, 3m) */
    const int d = 3 * m;
    for (int r = 0; r < d; r++)
        for (int c = 0; c < d; c++) P[r * d + c] = (r == c) - (r % 3 == c % 3 ? 1.0 / m : 0.0);
}

/* inverse of the d x d matrix A (Gauss-Jordan with partial pivoting), into Ai */
static void invert(int d, const double *A, double *Ai) {
    double M[MD][2 * MD];
    for (int r = 0; r < d; r++)
        for (int c = 0; c < 2 * d; c++) M[r][c] = c < d ? A[r * d + c] : (c - d == r);
    for (int k = 0; k < d; k++) {
        int p = k;
        for (int r = k + 1; r < d; r++)
            if (fabs(M[r][k]) > fabs(M[p][k])) p = r;
        for (int c = 0; c < 2 * d; c++) {
            double t = M[k][c];
            M[k][c] = M[p][c];
            M[p][c] = t;
        }
        const double piv = M[k][k];
        for (int c = 0; c < 2 * d; c++) M[k][c] /= piv;
        for (int r = 0; r < d; r++) {
            if (r == k) continue;
            const double f = M[r][k];
            for (int c = 0; c < 2 * d; c++) M[r][c] -= f * M[k][c];
        }
    }
    for (int r = 0; r < d; r++)
        for (int c = 0; c < d; c++) Ai[r * d + c] = M[r][d + c];
}

/* C = P S_m P and P mu for m atoms */
static void mol_law(int m, double *C, double *pm) {
    const int d = 3 * m;
    double P[MD * MD], T[MD * MD];
    proj_matrix(m, P);
    for (int r = 0; r < d; r++)
        for (int c = 0; c < d; c++) {
            T[r * d + c] = 0;
            for (int k = 0; k < d; k++) T[r * d + c] += P[r * d + k] * Sm[k][c];
        }
    for (int r = 0; r < d; r++) {
        pm[r] = 0;
        for (int k = 0; k < d; k++) pm[r] += P[r * d + k] * mu0[k];
        for (int c = 0; c < d; c++) {
            C[r * d + c] = 0;
            for (int k = 0; k < d; k++) C[r * d + c] += T[r * d + k] * P[k * d + c];
        }
    }
}

typedef struct {
    const dfs_schedule *s;
    const int *cnt; /* atoms of each sample */
    int gt[MA + 1];
    double G[MA + 1][MD * MD], pm[MA + 1][MD], a, sb;
} mol_model;

static const double transl[3] = {0.5, -0.3, 0.8}; /* g: a translation, in P's null space */

static dfs_status mol_eps(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    mol_model *mm = user;
    const double ab = mm->s->abar[t[0]];
    mm->a = sqrt(ab);
    mm->sb = sqrt(1.0 - ab);
    for (int i = 0; i < n; i++) {
        const int m = mm->cnt[i], d = 3 * m;
        const float *xi = x + (size_t)i * MD;
        float *oi = out + (size_t)i * MD;
        for (int j = 0; j < MD; j++) oi[j] = NAN;
        if (m == 0) continue;
        if (mm->gt[m] != t[0]) { /* G = a C M^-1 */
            double C[MD * MD], P[MD * MD], M[MD * MD], Mi[MD * MD];
            mol_law(m, C, mm->pm[m]);
            proj_matrix(m, P);
            for (int r = 0; r < d; r++)
                for (int c = 0; c < d; c++)
                    M[r * d + c] = ab * C[r * d + c] + (1.0 - ab) * P[r * d + c] + ((r == c) - P[r * d + c]);
            invert(d, M, Mi);
            for (int r = 0; r < d; r++)
                for (int c = 0; c < d; c++) {
                    double g = 0;
                    for (int k = 0; k < d; k++) g += C[r * d + k] * Mi[k * d + c];
                    mm->G[m][r * d + c] = mm->a * g;
                }
            mm->gt[m] = t[0];
        }
        for (int r = 0; r < d; r++) {
            double e = mm->pm[m][r];
            for (int c = 0; c < d; c++) e += mm->G[m][r * d + c] * (xi[c] - mm->a * mm->pm[m][c]);
            oi[r] = (float)((xi[r] - mm->a * e) / mm->sb + transl[r % 3]);
        }
    }
    return DFS_OK;
}

/* The centre of mass of x after k steps, from rounding only: each step forms x from x0, x,
 * eps and z (each projected: its centre of mass is at most U32 times its values' size) and
 * rounds the result once, so a step moves the centre of mass by at most about 5 U32 X, X
 * bounding |x|, |x0|, |eps|, |z|: 8 (|x| stays under 5 here, and a normal draw beyond 8 has
 * probability 1e-15). */
#define COM_STEP (5 * U32 * 8.0)

typedef struct {
    const uint8_t *present;
    const int *cnt;
    long bad, k;      /* padded values not +0; steps seen */
    double xmax;      /* the largest |x| seen */
    double com, ratio; /* the largest |centre of mass| seen, and its largest ratio to k COM_STEP */
} mol_watch;

static void watch_mol(void *user, int i, int steps, int t, const float *x, int n) {
    mol_watch *w = user;
    w->k++;
    for (size_t j = 0; j < (size_t)n * MD; j++) {
        if (!w->present[j]) w->bad += !(x[j] == 0.0f && !signbit(x[j]));
        w->xmax = max_err(w->xmax, fabs(x[j]));
    }
    for (int s = 0; s < n; s++)
        for (int c = 0; c < 3; c++) {
            double sum = 0;
            for (int a = 0; a < w->cnt[s]; a++) sum += x[(size_t)s * MD + 3 * a + c];
            const double com = fabs(sum / w->cnt[s]);
            w->com = max_err(w->com, com);
            w->ratio = max_err(w->ratio, err_ratio(com, (double)w->k * COM_STEP));
        }
}

static void test_projection_sampler(void) {
    dfs_rng rng;
    dfs_rng_seed(&rng, 31);
    double B[MD][MD];
    for (int r = 0; r < MD; r++) {
        mu0[r] = 0.4 * sin(1.0 + 2.0 * r);
        for (int c = 0; c < MD; c++) B[r][c] = dfs_rng_normal(&rng);
    }
    for (int r = 0; r < MD; r++) /* S = 0.3 B B^T / 12 + 0.05 I */
        for (int c = 0; c < MD; c++) {
            double v = 0;
            for (int k = 0; k < MD; k++) v += B[r][k] * B[c][k];
            Sm[r][c] = 0.3 * v / MD + 0.05 * (r == c);
        }
    enum { N = 8000, STEPS = 1000 };
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_LINEAR, 1000);
    int *cnt = malloc(N * sizeof(int));
    uint8_t *present = malloc((size_t)N * MD);
    float *x = malloc((size_t)N * MD * sizeof(float));
    for (int i = 0; i < N; i++) cnt[i] = 1 + i % MA;
    atom_mask(present, cnt, N, MA, 3);
    mol_model mm = {.s = &s, .cnt = cnt, .gt = {-1, -1, -1, -1, -1}};
    dfs_sampler_config c;
    dfs_sampler_config_default(&c);
    c.steps = STEPS;
    c.clip_x0 = 0;
    c.present = present;
    c.project = dfs_project_zero_com;
    mol_watch w = {present, cnt, 0, 0, 0, 0, 0};
    dfs_rng_seed(&rng, 32);
    CHECK(dfs_sample(&s, &c, mol_eps, &mm, NULL, N, MD, &rng, x, watch_mol, &w) == DFS_OK, "molecules: %s",
          dfs_last_error());
    CHECK(w.bad == 0, "molecules: %ld padded values not +0 over the steps", w.bad);
    CHECK(w.xmax < 8, "molecules: |x| stays under 8 (%.3g), as the bound on the centre of mass assumes", w.xmax);
    CHECK_RATIO(w.ratio, "molecules: after every step k the centre of mass is 0 to k rounding steps (largest "
                "%.3g, ratio %.3g)", w.com, w.ratio);
    const double tol = STEPS * COM_STEP;
    double com = 0;
    long nonzero1 = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 3; k++) {
            double sum = 0;
            for (int a = 0; a < cnt[i]; a++) sum += x[(size_t)i * MD + 3 * a + k];
            com = max_err(com, fabs(sum / cnt[i]));
            if (cnt[i] == 1) nonzero1 += x[(size_t)i * MD + k] != 0.0f;
        }
    printf("molecules: largest |centre of mass| %.3g (bound %.3g), largest |x| %.3g\n", com, tol, w.xmax);
    CHECK(com <= tol, "every sample's centre of mass is 0 to rounding: %.3g > %.3g", com, tol);
    CHECK(nonzero1 == 0, "one-atom molecules sit at the origin exactly (%ld values off)", nonzero1);
    /* the law of each size: N(P mu, P S P) */
    for (int m = 2; m <= MA; m++) {
        const int d = 3 * m, nm = N / MA;
        float *xm = malloc((size_t)nm * d * sizeof(float));
        int idx[MD];
        for (int j = 0; j < d; j++) idx[j] = j;
        for (int i = 0, k = 0; i < N; i++)
            if (cnt[i] == m) memcpy(xm + (size_t)k++ * d, x + (size_t)i * MD, d * sizeof(float));
        double C[MD * MD], pm[MD], em[MD], ec[MD * MD];
        mol_law(m, C, pm);
        moments(xm, nm, d, idx, d, em, ec);
        const double z = worst_z(em, ec, pm, C, d, nm);
        printf("molecules of %d atoms: %d samples, worst of %d statistics %.1f SE\n", m, nm, d + d * d, z);
        CHECK(z <= 5.0, "molecules of %d atoms have the law N(P mu, P S P): %.1f SE", m, z);
        free(xm);
    }
    /* without the projection, the noise's and the model's translations show: at the start
     * (x_T's centre of mass has sd 1/2 for 4 atoms), and at the end, where the model's
     * translation g leaves -sqrt(1 - abar_0) g (0.008 for g = 0.8) */
    c.project = NULL;
    c.steps = 50;
    dfs_rng_seed(&rng, 32);
    mm.gt[1] = mm.gt[2] = mm.gt[3] = mm.gt[4] = -1;
    mol_watch w2 = {present, cnt, 0, 0, 0, 0, 0};
    dfs_sample(&s, &c, mol_eps, &mm, NULL, N, MD, &rng, x, watch_mol, &w2);
    double off = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 3; k++) {
            double sum = 0;
            for (int a = 0; a < cnt[i]; a++) sum += x[(size_t)i * MD + 3 * a + k];
            if (cnt[i] > 1) off = max_err(off, fabs(sum / cnt[i]));
        }
    printf("molecules without the projection: largest |centre of mass| %.3g on the way, %.3g at the end\n", w2.com, off);
    CHECK(w2.com > 1.0 && off > 10 * 50 * COM_STEP, "without the projection the samples leave the subspace (%.3g on the "
          "way, %.3g at the end)", w2.com, off);
    free(cnt);
    free(present);
    free(x);
    dfs_schedule_free(&s);
}

/* ------------------------------------------------------------------------------------------ */
/* Noise draws and the training inputs                                                          */
/* ------------------------------------------------------------------------------------------ */

static void test_noise_and_inputs(void) {
    enum { n = 7, A = 4, DIM = 3 * A, N = n * DIM };
    const int cnt[n] = {4, 3, 2, 4, 1, 3, 2};
    uint8_t present[N];
    atom_mask(present, cnt, n, A, 3);
    float z[N], ref[N];
    dfs_rng r1, r2;
    /* no masks: dfs_rng_fill_normal */
    dfs_rng_seed(&r1, 3);
    dfs_rng_seed(&r2, 3);
    dfs_draw_noise(NULL, &r1, z, n, DIM);
    dfs_rng_fill_normal(&r2, ref, N);
    CHECK(same_bits(z, ref, sizeof z) && same_bits(&r1, &r2, sizeof r1), "no masks: the noise is dfs_rng_fill_normal's");
    /* padding: the present entries take the normals in a row, the padded none */
    const dfs_masks pm = {present, NULL, NULL, NULL};
    int k = 0, ok = 1;
    for (int j = 0; j < N; j++) k += present[j];
    dfs_rng_seed(&r1, 3);
    dfs_rng_seed(&r2, 3);
    dfs_draw_noise(&pm, &r1, z, n, DIM);
    dfs_rng_fill_normal(&r2, ref, (size_t)k);
    for (int j = 0, q = 0; j < N; j++) ok &= present[j] ? same_bits(&z[j], &ref[q++], sizeof(float)) : z[j] == 0.0f && !signbit(z[j]);
    CHECK(ok && same_bits(&r1, &r2, sizeof r1), "padding: %d normals for the %d present entries, padded +0", k, k);

    /* projected noise: covariance P on the present atoms (Monte Carlo, 5 SE of each entry:
     * for Gaussian z the SE of a covariance entry is sqrt((P_ii P_jj + P_ij^2) / n)) */
    enum { M = 20000 };
    float *zz = malloc((size_t)M * DIM * sizeof(float));
    uint8_t *pres = malloc((size_t)M * DIM);
    for (int i = 0; i < M; i++) memcpy(pres + (size_t)i * DIM, present, DIM); /* all: 4 atoms */
    const dfs_masks mp = {pres, NULL, dfs_project_zero_com, NULL};
    dfs_rng_seed(&r1, 4);
    dfs_draw_noise(&mp, &r1, zz, M, DIM);
    double P[MD * MD], em[MD], ec[MD * MD], zero[MD] = {0};
    int idx[MD];
    for (int j = 0; j < DIM; j++) idx[j] = j;
    proj_matrix(A, P);
    moments(zz, M, DIM, idx, DIM, em, ec);
    const double zs = worst_z(em, ec, zero, P, DIM, M);
    CHECK(zs <= 5.0, "projected noise has covariance P (and mean 0): %.1f SE", zs);
    free(zz);
    free(pres);

    /* the training inputs: x_t and the target on present entries as dfs_q_sample and
     * dfs_pred_target give them, 0 on padded ones */
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_COSINE, 100);
    float x0[N], eps[N], xt[N], tg[N], rx[DIM], rt[DIM];
    int t[n];
    dfs_rng_seed(&r1, 6);
    dfs_rng_seed(&r2, 6);
    int tok = 1;
    for (int i = 0; i < n; i++) {
        t[i] = dfs_draw_t(&s, &r1);
        tok &= t[i] == (int)dfs_rng_below(&r2, 100) && t[i] >= 0 && t[i] < 100;
    }
    CHECK(tok, "dfs_draw_t is one dfs_rng_below(T)");
    dfs_rng_fill_normal(&r1, x0, N);
    const dfs_masks mk = {present, NULL, dfs_project_zero_com, NULL};
    dfs_project_zero_com(NULL, x0, present, n, DIM); /* data in the subspace */
    dfs_draw_noise(&mk, &r1, eps, n, DIM);
    for (int pred = 0; pred < DFS_PRED_COUNT; pred++) {
        dfs_train_inputs(&s, (dfs_prediction)pred, &mk, t, x0, eps, n, DIM, xt, tg);
        int same = 1;
        for (int i = 0; i < n; i++) {
            dfs_q_sample(&s, t[i], x0 + i * DIM, eps + i * DIM, rx, DIM);
            dfs_pred_target(&s, (dfs_prediction)pred, t[i], x0 + i * DIM, eps + i * DIM, rt, DIM);
            for (int j = 0; j < DIM; j++) {
                const int q = i * DIM + j;
                if (present[q]) same &= same_bits(&xt[q], &rx[j], 4) && same_bits(&tg[q], &rt[j], 4);
                else same &= xt[q] == 0.0f && tg[q] == 0.0f && !signbit(xt[q]) && !signbit(tg[q]);
            }
        }
        CHECK(same, "%s: x_t and the target on present entries as DDPM eq. 4 gives them, padded +0",
              dfs_prediction_names[pred]);
    }
    dfs_schedule_free(&s);
}

/* ------------------------------------------------------------------------------------------ */
/* The masked loss                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* dfs_mse on the tape: its loss and gradient, for the bit-for-bit comparison */
static float tape_mse(const float *out, const float *target, size_t N, float *grad) {
    dfs_graph *g = dfs_graph_new();
    dfs_graph_set_grad(g, 1);
    dfs_tensor *a = dfs_tensor_wrap(g, (float *)out, 1, (int[]){(int)N});
    a->requires_grad = 1;
    dfs_tensor *b = dfs_tensor_wrap(g, (float *)target, 1, (int[]){(int)N});
    dfs_tensor *l = dfs_mse(g, a, b);
    const float L = l->data[0];
    dfs_backward(g, l);
    memcpy(grad, a->grad, N * sizeof(float));
    dfs_graph_free(g);
    return L;
}

/* The loss in double from its definition, P applied in double: 1/|M| sum_M ((P out) - y)^2 */
static double direct_loss(const dfs_masks *m, const float *out, const float *y, int n, int atoms, double *bound) {
    const int dim = 3 * atoms;
    double s = 0, b = 0;
    size_t count = 0;
    for (int i = 0; i < n; i++) {
        double po[MD * 4];
        for (int c = 0; c < 3; c++) {
            double mean = 0;
            int k = 0;
            for (int a = 0; a < atoms; a++) {
                const int j = i * dim + 3 * a + c;
                if (m->present && !m->present[j]) continue;
                mean += out[j];
                k++;
            }
            mean = k ? mean / k : 0;
            for (int a = 0; a < atoms; a++) {
                const int j = i * dim + 3 * a + c;
                po[3 * a + c] = m->project ? out[j] - mean : out[j];
            }
        }
        for (int q = 0; q < dim; q++) {
            const int j = i * dim + q;
            if ((m->present && !m->present[j]) || (m->known_mask && m->known_mask[j])) continue;
            const double d = po[q] - y[j];
            s += d * d;
            b += fabs(d) * fabs(po[q]);
            count++;
        }
    }
    /* the float P out errs by U32 |P out| per entry, moving the loss by 2/|M| sum |d| U32 |P out|;
     * the sum in double and its one rounding to float add U32 L (and ~1e-16) */
    const double L = count ? s / count : 0;
    *bound = (count ? 2 * U32 * b / count : 0) + 2 * U32 * L + 1e-15;
    return L;
}

static void test_masked_loss(void) {
    /* no masks and all-ones masks: dfs_mse bit for bit, on a small tensor and on one that is
     * split over the threads (>= 32768 values) */
    const int sizes[2][2] = {{5, 12}, {48, 784}};
    for (int q = 0; q < 2; q++) {
        const int n = sizes[q][0], dim = sizes[q][1];
        const size_t N = (size_t)n * dim;
        float *o = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float)), *g0 = malloc(N * sizeof(float));
        float *g1 = malloc(N * sizeof(float)), *g2 = malloc(N * sizeof(float));
        uint8_t *ones = malloc(N), *zeros = calloc(N, 1);
        memset(ones, 1, N);
        dfs_rng rng;
        dfs_rng_seed(&rng, 40 + q);
        dfs_rng_fill_normal(&rng, o, N);
        dfs_rng_fill_normal(&rng, y, N);
        const float L0 = tape_mse(o, y, N, g0);
        const float L1 = dfs_masked_mse(NULL, o, y, n, dim, NULL);
        dfs_masked_mse_backward(g1, NULL, o, y, n, dim, 1.0f, NULL);
        const dfs_masks all = {ones, zeros, NULL, NULL};
        const float L2 = dfs_masked_mse(&all, o, y, n, dim, NULL);
        dfs_masked_mse_backward(g2, &all, o, y, n, dim, 1.0f, NULL);
        CHECK(same_bits(&L0, &L1, 4) && same_bits(g0, g1, N * 4), "%zu values, no masks: loss %.9g and gradient are "
              "dfs_mse's bit for bit (%.9g)", N, L1, L0);
        CHECK(same_bits(&L0, &L2, 4) && same_bits(g0, g2, N * 4), "%zu values, all-present masks: dfs_mse's bit for bit",
              N);
        free(o), free(y), free(g0), free(g1), free(g2), free(ones), free(zeros);
    }

    /* molecules of 1..4 atoms padded to 4, some entries known; with and without projection */
    enum { n = 6, A = 4, DIM = 3 * A, N = n * DIM };
    const int cnt[n] = {4, 2, 3, 1, 4, 3};
    uint8_t present[N], known[N];
    atom_mask(present, cnt, n, A, 3);
    float o[N], y[N], g[N], work[N];
    dfs_rng rng;
    dfs_rng_seed(&rng, 50);
    dfs_rng_fill_normal(&rng, o, N);
    dfs_rng_fill_normal(&rng, y, N);
    for (int j = 0; j < N; j++) {
        known[j] = dfs_rng_uniform(&rng) < 0.3;
        if (!present[j]) o[j] = 1e3f; /* large garbage on padded outputs: must not count */
    }
    for (int proj = 0; proj < 2; proj++) {
        const dfs_masks m = {present, known, proj ? dfs_project_zero_com : NULL, NULL};
        const char *what = proj ? "projected" : "not projected";
        double bound;
        const double want = direct_loss(&m, o, y, n, A, &bound);
        const float L = dfs_masked_mse(&m, o, y, n, DIM, work);
        CHECK_RATIO(err_ratio(fabs(L - want), bound), "%s: loss %.9g against the direct %.9g (bound %.3g)", what, L, want,
                    bound);
        dfs_masked_mse_backward(g, &m, o, y, n, DIM, 1.0f, work);
        /* outside M: exactly +0 without a projection; padded entries +0 always */
        long outside = 0;
        for (int j = 0; j < N; j++) {
            const int modelled = present[j] && !known[j];
            if (!present[j] || (!proj && !modelled)) outside += !(g[j] == 0.0f && !signbit(g[j]));
        }
        CHECK(outside == 0, "%s: %ld gradient entries outside the mask are not 0", what, outside);
        /* Central differences of the float loss: L is quadratic in out (P is linear), so the
         * difference quotient has no truncation error, only the loss's rounding error (at
         * most `bound` at each end) over the step taken: 2 bound / (h+ + h-). The analytic
         * gradient P (c (P out - y)), c = 2 / |M|: the float P out errs by U32 |P out| <=
         * 2 U32 max|out|, the subtraction, the product and the projection's subtraction round
         * once each (3 U32 |g|), and the projection's mean carries the residual's errors:
         * in all 4 U32 |g| + 4 c U32 max|out| over present entries. */
        const double c = 2.0 / (double)dfs_masks_count(&m, n, DIM);
        double omax = 0;
        for (int j = 0; j < N; j++)
            if (present[j]) omax = max_err(omax, fabs(o[j]));
        const float h = 1.0f / 64;
        double worst = 0;
        for (int j = 0; j < N; j++) {
            const float x0 = o[j], xp = x0 + h, xm = x0 - h;
            o[j] = xp;
            const float Lp = dfs_masked_mse(&m, o, y, n, DIM, work);
            o[j] = xm;
            const float Lm = dfs_masked_mse(&m, o, y, n, DIM, work);
            o[j] = x0;
            const double num = ((double)Lp - Lm) / ((double)xp - xm);
            const double tol = 2 * bound / ((double)xp - xm) + 4 * U32 * fabs(g[j]) + 4 * c * U32 * omax;
            worst = max_err(worst, err_ratio(fabs(g[j] - num), tol));
        }
        CHECK_RATIO(worst, "%s: the gradient matches central differences of the loss (ratio %.3g)", what, worst);
    }
    /* nothing modelled: loss 0, gradient 0 */
    uint8_t none[N];
    memset(none, 0, N);
    const dfs_masks m0 = {none, NULL, NULL, NULL};
    float L = dfs_masked_mse(&m0, o, y, n, DIM, NULL);
    dfs_masked_mse_backward(g, &m0, o, y, n, DIM, 1.0f, NULL);
    double gmax = 0;
    for (int j = 0; j < N; j++) gmax = max_err(gmax, fabs(g[j]));
    CHECK(L == 0.0f && gmax == 0, "nothing modelled: loss %g, gradient max %g", L, gmax);
    CHECK(dfs_masks_count(&m0, n, DIM) == 0 && dfs_masks_count(NULL, n, DIM) == (size_t)N, "modelled counts");
}

/* ------------------------------------------------------------------------------------------ */
/* The bound with masks                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void test_bound_masks(void) {
    enum { T = 40, n = 9 };
    dfs_schedule s;
    dfs_schedule_init(&s, DFS_SCHEDULE_COSINE, T);
    exact_model em = {.s = &s, .gt = -1};
    padded_model pm = {.inner = &em, .buf = malloc(4 * 64 * D * sizeof(float))};
    float xc[n * D], xp[n * DP];
    uint8_t present[n * DP], ones[n * D];
    dfs_rng rng;
    dfs_rng_seed(&rng, 60);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < DP; j++) {
            present[i * DP + j] = 0;
            xp[i * DP + j] = 7.0f; /* padded: outside [-1, 1], and ignored */
        }
        for (int k = 0; k < D; k++) {
            const int p = (int)dfs_rng_below(&rng, 256); /* 8-bit data */
            xc[i * D + k] = xp[i * DP + pos[k]] = p / 127.5f - 1.0f;
            present[i * DP + pos[k]] = 1;
            ones[i * D + k] = 1;
        }
    }
    double b1[n], b2[n], b3[n], t1[T + 1], t2[T + 1], t3[T + 1];
    /* padded against cut down, and all-present against no mask: bit for bit */
    dfs_rng_seed(&rng, 61);
    em.gt = -1;
    dfs_status s1 = dfs_nll_bpd_terms(&s, DFS_PRED_EPS, exact_eps, &em, NULL, xc, n, D, &rng, b1, t1);
    const dfs_masks mp = {present, NULL, NULL, NULL}, mo = {ones, NULL, NULL, NULL};
    dfs_rng_seed(&rng, 61);
    em.gt = -1;
    pm.bad_inputs = 0;
    dfs_status s2 = dfs_nll_bpd_masked(&s, DFS_PRED_EPS, padded_eps, &pm, NULL, xp, &mp, n, DP, &rng, b2, t2);
    dfs_rng_seed(&rng, 61);
    em.gt = -1;
    dfs_status s3 = dfs_nll_bpd_masked(&s, DFS_PRED_EPS, exact_eps, &em, NULL, xc, &mo, n, D, &rng, b3, t3);
    CHECK(s1 == DFS_OK && s2 == DFS_OK && s3 == DFS_OK, "bounds: %s", dfs_last_error());
    printf("bound of Gaussian data, %d steps: %.4f bits/dim (image 0), padded %.4f\n", T, b1[0], b2[0]);
    CHECK(same_bits(b1, b2, sizeof b1) && same_bits(t1, t2, sizeof t1),
          "the bound of padded images is the bound of the cut-down images bit for bit (%.17g, %.17g)", b1[0], b2[0]);
    CHECK(pm.bad_inputs == 0, "the bound's model saw %ld padded inputs not +0", pm.bad_inputs);
    CHECK(same_bits(b1, b3, sizeof b1) && same_bits(t1, t3, sizeof t1), "an all-present mask changes nothing");

    /* Known entries, with independent coordinates (diagonal S): the bound splits over the
     * coordinates, so (bits of U given K) |U| + (bits of K given U) |K| = (bits of all) D per
     * image, with the same random stream for all three. The sums are of non-negative terms in
     * double: each errs by at most (terms) 2^-53 relative, T D terms. */
    em.diagonal = 1;
    uint8_t kA[n * D], kB[n * D];
    for (int j = 0; j < n * D; j++) {
        kA[j] = (j % D) < 1; /* known: coordinate 0 */
        kB[j] = !kA[j];
    }
    const dfs_masks mA = {NULL, kA, NULL, NULL}, mB = {NULL, kB, NULL, NULL};
    double ba[n], bb[n];
    dfs_rng_seed(&rng, 62);
    em.gt = -1;
    dfs_nll_bpd_terms(&s, DFS_PRED_EPS, exact_eps, &em, NULL, xc, n, D, &rng, b1, NULL);
    dfs_rng_seed(&rng, 62);
    em.gt = -1;
    CHECK(dfs_nll_bpd_masked(&s, DFS_PRED_EPS, exact_eps, &em, NULL, xc, &mA, n, D, &rng, ba, NULL) == DFS_OK, "known A");
    dfs_rng_seed(&rng, 62);
    em.gt = -1;
    CHECK(dfs_nll_bpd_masked(&s, DFS_PRED_EPS, exact_eps, &em, NULL, xc, &mB, n, D, &rng, bb, NULL) == DFS_OK, "known B");
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const double lhs = ba[i] * (D - 1) + bb[i] * 1, rhs = b1[i] * D;
        worst = max_err(worst, err_ratio(fabs(lhs - rhs), 4.0 * (T * D) * 1.1102230246251565e-16 * fabs(rhs)));
    }
    CHECK_RATIO(worst, "known entries: the bound of the modelled entries given the known ones adds up to the whole "
                "(ratio %.3g)", worst);
    CHECK(ba[0] != b1[0], "the known mask changes the bound");

    /* refused: a projection with known entries (test_masks checks the bound with a projection),
     * an image with nothing modelled */
    uint8_t onek[D] = {1, 0, 0, 0};
    const dfs_masks mproj = {NULL, onek, dfs_project_zero_com, NULL};
    CHECK(dfs_nll_bpd_masked(&s, DFS_PRED_EPS, exact_eps, &em, NULL, xc, &mproj, 1, D, &rng, ba, NULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "projection takes no known entries"),
          "a projection with known entries is refused: %s", dfs_last_error());
    uint8_t allk[D] = {1, 1, 1, 1};
    const dfs_masks mk = {NULL, allk, NULL, NULL};
    CHECK(dfs_nll_bpd_masked(&s, DFS_PRED_EPS, exact_eps, &em, NULL, xc, &mk, 1, D, &rng, ba, NULL) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "no modelled"),
          "an image with nothing modelled is refused: %s", dfs_last_error());
    free(pm.buf);
    dfs_schedule_free(&s);
}

int main(void) {
    setup_gauss();
    test_projection_unit();
    test_noise_and_inputs();
    test_masked_loss();
    test_bound_masks();
    test_padding_samplers();
    test_projection_sampler();
    return check_summary("test_core");
}
