/* diffuse/diffusion.h - schedules, parameterisations, the samplers with guidance and known entries, the bound. Part of diffuse.h. */
#ifndef DIFFUSE_DIFFUSION_H
#define DIFFUSE_DIFFUSION_H

#include "diffuse/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Diffusion: schedule, forward process, posteriors, parameterisations                         */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
    DFS_SCHEDULE_LINEAR,
    DFS_SCHEDULE_COSINE,
    DFS_SCHEDULE_QUAD,
    DFS_SCHEDULE_POLY2,
    DFS_SCHEDULE_COUNT
} dfs_schedule_kind;
typedef enum { DFS_PRED_EPS, DFS_PRED_X0, DFS_PRED_V, DFS_PRED_COUNT } dfs_prediction;
extern const char *const dfs_schedule_names[DFS_SCHEDULE_COUNT]; /* "linear", "cosine", "quad", "poly2" */
extern const char *const dfs_prediction_names[DFS_PRED_COUNT];   /* "eps", "x0", "v" */

/* Arrays indexed by t = 0..T-1 (t = 0 is the first noising step, x_1 in the paper). */
typedef struct {
    dfs_schedule_kind kind;
    int T;
    double *beta;          /* b_t */
    double *alpha;         /* 1 - b_t */
    double *abar;          /* prod_{s<=t} alpha_s */
    double *abar_prev;     /* abar_{t-1}, 1 at t = 0 */
    double *beta_tilde;    /* posterior variance (1-abar_{t-1})/(1-abar_t) b_t  (DDPM eq. 7) */
    double *post_c0;       /* posterior mean coefficient of x_0 (DDPM eq. 7) */
    double *post_ct;       /* posterior mean coefficient of x_t (DDPM eq. 7) */
} dfs_schedule;

/* Linear: b from 1e-4 to 0.02 (DDPM sec. 4; b = 1e-4 when T = 1). Cosine: Nichol & Dhariwal 2021
 * eq. 17, s = 0.008, b clipped at 0.999. Quad: CSDI's (Tashiro et al. 2021, made for T = 50):
 * sqrt(b) evenly spaced from sqrt(1e-4) to sqrt(0.5). Poly2: EDM's "polynomial_2" (Hoogeboom et
 * al. 2022, appendix B; made for T = 1000): abar_t = (1 - 2s)(1 - ((t+1)/T)^2)^2 + s, s = 1e-5,
 * with the bracket's step ratios clipped below at 0.001 (only the last, where the bracket is
 * 0): abar_t is EDM's noise level t + 1, its level 0 being the data here. T in 1..100000. The
 * seven arrays are one block owned by
 * s, freed by dfs_schedule_free (safe after a failed init, which leaves s zeroed).
 * DFS_ERR_ARG (s NULL, unknown kind, T out of range), DFS_ERR_NOMEM. */
dfs_status dfs_schedule_init(dfs_schedule *s, dfs_schedule_kind kind, int T);
void dfs_schedule_free(dfs_schedule *s);
/* The index of an exact name in dfs_schedule_names / dfs_prediction_names; -1 if unknown or
 * NULL. */
int dfs_schedule_from_name(const char *name);
int dfs_prediction_from_name(const char *name);

/* x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps  (DDPM eq. 4), n floats. In these elementwise
 * functions an output may alias an input; t out of 0..T-1 is an assertion failure. */
void dfs_q_sample(const dfs_schedule *s, int t, const float *x0, const float *eps, float *xt,
                  size_t n);
/* One forward step x_t = sqrt(1 - b_t) x_{t-1} + sqrt(b_t) eps  (DDPM eq. 2). */
void dfs_q_step(const dfs_schedule *s, int t, const float *xprev, const float *eps, float *xt,
                size_t n);
/* Posterior q(x_{t-1} | x_t, x_0): mean (n floats) and variance beta_tilde_t (DDPM eq. 6-7).
 * mean or var may be NULL. */
void dfs_q_posterior(const dfs_schedule *s, int t, const float *x0, const float *xt,
                     float *mean, size_t n, double *var);
/* Conversions among parameterisations at step t, given x_t. v = sqrt(abar) eps -
 * sqrt(1-abar) x0 (Salimans & Ho 2022 sec. 4). Either output (eps, x0) may be NULL. */
void dfs_pred_to_eps_x0(const dfs_schedule *s, dfs_prediction kind, int t, const float *xt,
                        const float *pred, float *eps, float *x0, size_t n);
/* Training target for the given parameterisation from x0 and eps at step t. */
void dfs_pred_target(const dfs_schedule *s, dfs_prediction kind, int t, const float *x0,
                     const float *eps, float *target, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Masks and projections: what differs between images, series and molecules                    */
/* ------------------------------------------------------------------------------------------ */

/* The core works on n samples of dim floats each, (n, dim), and knows nothing of pixels, time
 * steps or atoms. What differs between kinds of data is carried by masks over the n*dim entries
 * (bytes, nonzero = set; NULL = the mask is off) and by a projection (docs/DIFFUSION.md, "Masks
 * and projections"):
 *   present     padding, for sets of varying size (molecules of different atom counts, series
 *               of different lengths): an entry with present[j] == 0 is not part of the sample.
 *               It takes no random numbers, is never noised or modelled (the model's output
 *               there is ignored), is exactly 0 in x at every step and in every result, and
 *               counts nowhere (loss, bound, dynamic threshold). NULL: all present.
 *   known_mask  conditioning entries (inpainting, imputation, forecasting, fixed fragments):
 *               held to given values when sampling (RePaint), left out of the training loss
 *               and of the bound (CSDI's target mask is their complement). The model sees
 *               them, noised like the rest. NULL: none.
 * The modelled entries, the ones a loss or a bound counts, are those present and not known.
 *
 * A projection P onto a linear subspace (EDM's zero centre of mass) is applied to every
 * Gaussian draw (x_T, each step's noise, RePaint's draws and jumps, SDEdit's noise, the
 * training noise) and to every model prediction, so that samples stay in the subspace. It must
 * be linear, idempotent and orthogonal (P = P^2 = P^T) and leave padded entries at 0: v is
 * (n, dim), changed in place; present is the padding mask of those n rows (NULL: all). */
typedef void (*dfs_project_fn)(void *user, float *v, const uint8_t *present, int n, size_t dim);

/* The masks and the projection of a training batch or a bound (with a projection the bound
 * takes continuous data and no known entries); all NULL (zeroed struct): an ordinary dense
 * tensor. */
typedef struct {
    const uint8_t *present;    /* (n, dim) padding mask, NULL: all present */
    const uint8_t *known_mask; /* (n, dim) conditioning entries, NULL: none */
    dfs_project_fn project;    /* NULL: no projection */
    void *project_user;
} dfs_masks;

/* The layout dfs_project_zero_com reads: each sample is (atoms, width) floats, dim = atoms *
 * width, and the first `coords` values of each atom are its position (EDM's x, the rest its
 * features h, Hoogeboom et al. 2022 sec. 3). */
typedef struct {
    int width;  /* values per atom, >= coords */
    int coords; /* position coordinates per atom, 1..width (3) */
} dfs_com_layout;

/* dfs_project_fn for EDM's positions (Hoogeboom et al. 2022, sec. 3: they live in the linear
 * subspace sum_a x_a = 0): for each sample and each coordinate c < coords, subtract the mean
 * over the present atoms (mean taken in double); the features are left alone; padded entries
 * are set to 0. user: a const dfs_com_layout *, or NULL for (n, atoms, 3) positions only. P is
 * the orthogonal projector onto that subspace (on the present entries). */
void dfs_project_zero_com(void *user, float *v, const uint8_t *present, int n, size_t dim);

/* The number of modelled entries (present and not known) of the (n, dim) batch; m may be NULL. */
size_t dfs_masks_count(const dfs_masks *m, int n, size_t dim);

/* z ~ N(0, I) on the present entries, 0 on the padded ones, then projected. Random stream: one
 * normal per present entry, in element order (n*dim normals when there is no padding, the
 * same as dfs_rng_fill_normal). m may be NULL. */
void dfs_draw_noise(const dfs_masks *m, dfs_rng *rng, float *z, int n, size_t dim);

/* ------------------------------------------------------------------------------------------ */
/* Training: the diffusion side of one step, on any tensor                                     */
/* ------------------------------------------------------------------------------------------ */

/* A training step (Ho et al. 2020, Algorithm 1) on a batch x0 (n, dim), with the network in
 * between:
 *     t[i] = dfs_draw_t(s, rng)                         for each sample
 *     dfs_draw_noise(m, rng, eps, n, dim)                eps ~ N(0, I), padded, projected
 *     dfs_train_inputs(s, pred, m, t, x0, eps, ...)      x_t and the target
 *     out = network(x_t, t)                               (n, dim)
 *     loss = dfs_masked_mse(m, out, target, ...)          and dfs_masked_mse_backward
 * x0 must lie in the projection's subspace (centre the data once with the projection). */

/* t ~ U{0, ..., T-1}: one draw of dfs_rng_below. */
int dfs_draw_t(const dfs_schedule *s, dfs_rng *rng);
/* For each sample i at step t[i]: x_t = sqrt(abar) x0 + sqrt(1 - abar) eps (DDPM eq. 4) and
 * the target of the parameterisation (dfs_pred_target), both 0 on padded entries. m may be
 * NULL. xt and target are (n, dim). */
void dfs_train_inputs(const dfs_schedule *s, dfs_prediction pred, const dfs_masks *m, const int *t,
                      const float *x0, const float *eps, int n, size_t dim, float *xt, float *target);
/* The masked loss: the mean over the modelled entries M of (P out - target)^2, P the
 * projection (identity when m is NULL or m->project is NULL; P out is padded before and after):
 *     L = 1/|M| sum_{j in M} ((P out)_j - target_j)^2
 * summed in double and rounded once; 0 when M is empty. With no masks and no projection it is
 * the same number, bit for bit, as dfs_mse (the same OpenMP reduction). work: n*dim floats of scratch when there is a projection, else
 * unused (may be NULL). */
float dfs_masked_mse(const dfs_masks *m, const float *out, const float *target, int n, size_t dim,
                     float *work);
/* Its gradient with respect to out, times dloss, written (=, not added) to dout (n, dim):
 *     dL/dout = P^T r = P r,  r_j = 2 dloss / |M| ((P out)_j - target_j) on M, 0 elsewhere,
 * so entries outside M get 0 when there is no projection, and padded entries always do; all 0
 * when M is empty. With no masks and no projection it is dfs_mse's gradient bit for bit. work as for dfs_masked_mse. */
void dfs_masked_mse_backward(float *dout, const dfs_masks *m, const float *out, const float *target,
                             int n, size_t dim, float dloss, float *work);

/* ------------------------------------------------------------------------------------------ */
/* Samplers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* ddpm     ancestral (DDPM), `steps` network evaluations
 * ddim     DDIM (eta), `steps` network evaluations
 * dpm++2m  DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), deterministic multistep, first order on
 *          the first step (and after a RePaint jump) and on the last two; `steps` network
 *          evaluations
 * heun     Heun 2nd order on the probability-flow ODE (Karras et al. 2022, Alg. 1), deterministic;
 *          `steps` timesteps visited, 2 steps - 1 network evaluations (see docs/DIFFUSION.md) */
typedef enum {
    DFS_SAMPLER_DDPM,
    DFS_SAMPLER_DDIM,
    DFS_SAMPLER_DPMPP_2M,
    DFS_SAMPLER_HEUN,
    DFS_SAMPLER_COUNT
} dfs_sampler_kind;
/* "ddpm", "ddim", "dpm++2m", "heun" */
extern const char *const dfs_sampler_names[DFS_SAMPLER_COUNT];
int dfs_sampler_from_name(const char *name);

/* The network as the samplers see it: write the model output (in its parameterisation) for
 * x (n, dim) at steps t[n] with labels[n] (NULL when the caller passed no labels) into out
 * (n, dim), and return DFS_OK. Any other status (after dfs_set_error) stops the sampler (or the
 * bound), which returns it. */
typedef dfs_status (*dfs_model_fn)(void *user, const float *x, const int *t, const int *labels, int n,
                                   float *out);

typedef struct {
    dfs_sampler_kind kind;      /* default ddpm */
    int steps;           /* timesteps visited, 1..T (default 1000); network evaluations: see
                            dfs_sampler_evals */
    float eta;           /* DDIM eta >= 0 (default 0): 0 deterministic, 1 ~ DDPM variance */
    int var_beta_tilde;  /* DDPM: 1 (default) uses beta-tilde_t, 0 uses beta_t (DDPM sec. 3.2) */
    float noise_scale;   /* DDPM: the factor on each step's added noise, in [0, 1] (default 1,
                            the ancestral sampler); below 1 a lower-temperature sampler (the
                            "noise scale" of protein diffusion, e.g. FrameDiff, RFdiffusion):
                            the mean of every step is unchanged, and 0 draws no noise after
                            x_T. Other samplers need 1 (DFS_ERR_ARG) */
    float guidance;      /* guidance scale w (default 1): 1 = conditional only (no null pass),
                            0 = unconditional; acts only when dfs_sample gets labels */
    int clip_x0;         /* clip predicted x0 to [-1, 1] and recompute eps from it (default 1) */
    dfs_prediction prediction; /* the model's parameterisation (default eps) */
    int null_label;      /* label meaning "no class" for guidance's null pass; the default 0 is a
                            placeholder: set num_classes (dfs_model_sample does) */
    float dynamic_threshold; /* Imagen's dynamic thresholding (Saharia et al. 2022 sec. 2.3):
                                percentile P in (0, 100] of |x0| per sample (of its present
                                entries); 0 = off (default), then clip_x0 applies */
    /* Known entries (inpainting, imputation, forecasting, fixed fragments): where
     * known_mask[j] != 0 (j over the n*dim values), the sample is held to known[j] and never
     * modelled: it starts at, and after every step is replaced by, a fresh draw of
     * q(x_t | x0 = known) at the step's noise level (RePaint, Lugmayr et al. 2022, Alg. 1), and
     * the result holds known[j] exactly. Both or neither (DFS_ERR_ARG); both NULL (default):
     * nothing known. With a projection too, replacing the known entries takes x out of the
     * subspace (a fixed fragment moves the centre of mass): after each replacement x becomes
     * P x and the known values move with it (each known value plus its entry of P x - x, in a
     * copy), so that x and the known values stay in one frame; the result then holds the known
     * values so moved (for the zero centre of mass: all translated alike, DiffSBDD's
     * re-centring), which the caller reads back from the result. */
    const float *known;         /* (n, dim) */
    const uint8_t *known_mask;  /* (n, dim) */
    int resample;   /* RePaint's r, 0..1000: each stretch of `jump` steps is sampled r times,
                       going back by the forward process in between (sec. 4.2); 0 or 1 =
                       replacement only; r > 1 needs known entries (DFS_ERR_ARG) */
    int jump;       /* RePaint's jump length j, in steps visited, 0..steps (0: 1, Algorithm 1) */
    /* SDEdit (Meng et al. 2022): start from init (n, dim) noised to the step that leaves
     * floor(steps * strength) steps (at least 1) to run, instead of from pure noise. NULL:
     * off (default). strength in (0, 1] (default 1; DFS_ERR_ARG otherwise when init is set):
     * 1 starts from init noised to the noisiest step visited. */
    const float *init;
    float strength;
    /* Padding (sets of varying size): entries with present[j] == 0 are not part of the sample;
     * they draw no noise, the model's output there is ignored, and they are exactly 0 in x
     * after every step and in the result (see "Masks and projections" above). A model that
     * needs the mask (an EGNN's node mask) takes it through its own user pointer; with
     * guidance it is called on 2n rows, rows i and n + i being sample i. NULL (default): all
     * present. */
    const uint8_t *present;     /* (n, dim) */
    /* A projection of every Gaussian draw and every (guided, clipped) prediction of eps and
     * x0, e.g. dfs_project_zero_com. NULL (default): none. */
    dfs_project_fn project;
    void *project_user;
} dfs_sampler_config;

/* Zeroes c, then sets the defaults given above. */
void dfs_sampler_config_default(dfs_sampler_config *c);
/* The timesteps a sampler with `steps` steps visits, descending, written to ts[steps]: evenly
 * spaced over [0, T-1] with both ends included (diffusers' "linspace" spacing), rounded to
 * nearest, halves up: ts[i] = round((steps-1-i) * (T-1)/(steps-1)); steps == 1 gives T-1.
 * Needs 1 <= steps <= T (assertion). */
void dfs_sampler_timesteps(int T, int steps, int *ts);

/* The visited step a run starts at: 0, or with an initial image (SDEdit)
 * steps - max(1, floor(steps * strength)). */
int dfs_sampler_start(const dfs_sampler_config *c);
/* Network evaluations of one run (per sample batch; guidance makes each one pass of 2n), with
 * RePaint's resampling and SDEdit's shorter run counted: one per step taken, two for heun
 * except on the last step. Neither function checks c. */
long dfs_sampler_evals(const dfs_sampler_config *c);

/* Called after each step with the current x (n, dim) (known entries and padding already
 * applied), the index i of the visited step just taken (0..steps-1, from dfs_sampler_start)
 * and its timestep t = ts[i]. After a RePaint jump the steps from i + 1 - jump are taken
 * again, so the next call's i is i + 1 - jump. */
typedef void (*dfs_sample_cb)(void *user, int i, int steps, int t, const float *x, int n);

/* Draw n samples of dim floats each into x (n*dim floats; its contents are ignored), starting
 * from N(0, I) drawn from rng (or from c->init, SDEdit). labels[n] may be NULL: then every
 * model call gets NULL labels and there is no guidance, whatever c->guidance. With labels and
 * guidance w != 1 the model is evaluated on labels and on null_label in one call of 2n items,
 * eps = eps_u + w (eps_c - eps_u) (Ho & Salimans 2022 eq. 6, whose w is this w - 1).
 * DFS_ERR_ARG for a NULL s, c, model, rng or x, n < 1, dim < 1 or a bad config; DFS_ERR_NOMEM;
 * a status the model returns (x then holds the run so far); DFS_ERR_NAN if any value of the
 * result is not finite (x then holds it as it is).
 * Random stream, in this order: the start takes one draw (x_T, or the noise of SDEdit's start),
 * then one more for the known entries' start when there are known entries; each step then
 * takes one draw if it adds noise (ddpm, ddim with eta > 0; never the last step), then one
 * for the known entries when there are any (not on the last step); each RePaint jump, after
 * its step, takes one. A draw is n*dim normals in element order, or with a padding mask one
 * normal per present entry (dfs_draw_noise), so that samples padded alike give, bit for bit,
 * what the same samples cut down to their present entries give. */
dfs_status dfs_sample(const dfs_schedule *s, const dfs_sampler_config *c, dfs_model_fn model,
                      void *model_user, const int *labels, int n, size_t dim, dfs_rng *rng,
                      float *x, dfs_sample_cb cb, void *cb_user);


/* Imagen's dynamic thresholding of one predicted x0 (dim floats) in place (Saharia et al. 2022
 * sec. 2.3): s = the p-th percentile of |x0| (linear interpolation between order statistics,
 * as numpy.percentile), s = max(s, 1), x0 = clip(x0, -s, s) / s. p in (0, 100] and dim >= 1
 * (assertions). scratch: dim floats, overwritten. Returns s. */
float dfs_dynamic_threshold(float *x0, size_t dim, float p, float *scratch);


/* ------------------------------------------------------------------------------------------ */
/* Evaluation: the variational bound on the negative log-likelihood, in bits per dimension      */
/* ------------------------------------------------------------------------------------------ */

/* KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) in nats, one dimension. */
double dfs_normal_kl(double mean1, double logvar1, double mean2, double logvar2);
/* log of the mass that N(mean, exp(2 log_scale)) puts on the 8-bit bin of x in [-1, 1]: bins of
 * width 2/255 centred on the data values, the end bins reaching to -inf and +inf (DDPM eq. 13).
 * Exact normal CDF; the mass is floored at 1e-300 (improved-diffusion uses 1e-12). */
double dfs_discretized_gaussian_loglik(double x, double mean, double log_scale);
/* Upper bound on -log p(x0) (DDPM eq. 5) for n images x0 (n, dim) in [-1, 1] (8-bit data as
 * p/127.5 - 1), evaluated at all T steps (exact sum, no subsampling): prior KL at T-1, the KL of
 * the posterior q(x_{t-1}|x_t,x_0) to the model's reverse step for t >= 1 with x_t drawn from
 * q(x_t|x_0) (rng), and the discretized Gaussian decoder at t = 0. The reverse steps use the
 * fixed variance beta_tilde_t (beta_tilde_1 at t = 0) and the unclipped predicted x0. bpd[n]
 * gets bits per dimension per image. labels[n] may be NULL. The model is called on batches of
 * max(n, 64) (image, t) pairs (fewer at the end). Random stream: dim normals per (image, t)
 * pair, t = 0..T-1 outermost, images in order within each t. DFS_ERR_ARG for a NULL s, model,
 * x0, rng or bpd, T < 2, n < 1, dim < 1 or a value outside [-1, 1]; DFS_ERR_NOMEM; a status
 * the model returns; DFS_ERR_NAN if a bound is not finite. docs/EVAL.md has the formulas. */
dfs_status dfs_nll_bpd(const dfs_schedule *s, dfs_prediction pred, dfs_model_fn model, void *user,
                       const int *labels, const float *x0, int n, size_t dim, dfs_rng *rng,
                       double *bpd);
/* The same, also writing each term's mean over the n images (bits/dim) to terms[T + 1]
 * (zeroed first):
 * terms[0] the decoder, terms[t] (1 <= t < T) the KL at step t, terms[T] the prior. terms may
 * be NULL. */
dfs_status dfs_nll_bpd_terms(const dfs_schedule *s, dfs_prediction pred, dfs_model_fn model,
                             void *user, const int *labels, const float *x0, int n, size_t dim,
                             dfs_rng *rng, double *bpd, double *terms);
/* The same with masks (m may be NULL): the bound of the modelled entries (present, not known)
 * given the known ones, in bits per modelled dimension of each image: every term is summed
 * over the modelled entries only and divided by their number in that image. The model sees
 * x_t on all present entries (the known ones noised too, as when sampling), 0 on padded ones.
 * Random stream: per (image, t) pair, in the order above, one normal per present entry, so
 * images padded alike give, bit for bit, the bound of the same images cut down to their
 * present entries. Only present entries need be in [-1, 1]. DFS_ERR_ARG also for an image with
 * no modelled entry.
 * With a projection (m->project; no known entries then, DFS_ERR_ARG) the data are continuous
 * and live in the subspace (EDM's positions): x0 is projected first (any range), the noise
 * and the model's x0 are projected, the dimension of an image is r = the trace of P on its
 * present entries (computed by projecting each unit vector: dim^2 work per image; a w - 3 for
 * a molecule of a atoms of w values, 3 of them coordinates), the prior's variance term counts
 * r dimensions, and the decoder is the Gaussian density N(x0; mean, beta_tilde_1 I) on the
 * subspace: a bound on -log of a density (EDM, Hoogeboom et al. 2022 sec. 3.3, bounds
 * densities too), in bits per dimension of the subspace, which may be negative. */
dfs_status dfs_nll_bpd_masked(const dfs_schedule *s, dfs_prediction pred, dfs_model_fn model,
                              void *user, const int *labels, const float *x0, const dfs_masks *m,
                              int n, size_t dim, dfs_rng *rng, double *bpd, double *terms);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_DIFFUSION_H */
