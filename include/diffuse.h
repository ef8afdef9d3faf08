/*
 * diffuse.h - denoising diffusion models in C.
 *
 * Overview
 * --------
 * diffuse trains denoising diffusion probabilistic models (Ho et al. 2020, "DDPM")
 * and samples from them. The library has five parts, each in its own files:
 *
 *   engine     tensors, an arena, a tape of ops with reverse-mode gradients  (src/engine.c,
 *              src/ops_*.c)
 *   params     every parameter in one contiguous block; AdamW and EMA over it (src/params.c)
 *   nn         the U-Net noise predictor built by composing engine ops       (src/unet.c)
 *   diffusion  schedules, q(x_t|x_0), posteriors, eps/x0/v, samplers          (src/schedule.c,
 *              src/samplers.c)
 *   io         IDX, PNG, .npy and safetensors files                          (src/io_*.c,
 *              src/safetensors.c)
 *
 * Worked example (one training step of a U-Net, then sampling):
 *
 *   dfs_unet_config cfg; dfs_unet_config_preset(&cfg, "fmnist");
 *   dfs_unet *net = dfs_unet_new(&cfg);           // declares and initialises parameters
 *   dfs_graph *g = dfs_graph_new();
 *   dfs_tensor *x = dfs_tensor_new(g, 4, (int[]){N, 1, 28, 28});   // fill x->data
 *   dfs_tensor *eps = dfs_unet_forward(net, g, x, t, labels);
 *   dfs_tensor *loss = dfs_mse(g, eps, target);
 *   dfs_backward(g, loss);                         // gradients land in net->params->grad
 *   dfs_adamw_step(net->params, &opt, step);
 *   dfs_graph_reset(g);                            // activations freed in O(1)
 *
 * Conventions
 * -----------
 * - Every public name starts with dfs_ / DFS_.
 * - Shapes are row-major; images are NCHW (N = batch, C = channels, H = height, W = width).
 * - Programmer errors (wrong shapes passed to an op) stop at DFS_ASSERT, which names file and
 *   line. Errors a caller can handle (files, arguments, data) return a dfs_status; a one-line
 *   description of the last error is in dfs_last_error().
 * - The library never calls exit() and prints only through the log callback.
 * - Randomness comes only from an explicit dfs_rng.
 */
#ifndef DIFFUSE_H
#define DIFFUSE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Status, errors, logging                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
    DFS_OK = 0,
    DFS_ERR_ARG,         /* bad argument value */
    DFS_ERR_IO,          /* open/read/write/fsync/rename failed (errno in message) */
    DFS_ERR_FORMAT,      /* file is corrupt, truncated or not the expected format */
    DFS_ERR_SHAPE,       /* data has the wrong shape for the model */
    DFS_ERR_NOMEM,       /* allocation failed or size overflowed */
    DFS_ERR_NAN,         /* loss or gradient is not finite */
    DFS_ERR_INTERRUPTED, /* stopped by a signal; state was saved */
    DFS_STATUS_COUNT
} dfs_status;

const char *dfs_status_str(dfs_status s);

/* Record a one-line description of the error being returned (printf-style). Thread-local. */
void dfs_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last recorded error line ("" if none). */
const char *dfs_last_error(void);

typedef enum { DFS_LOG_DEBUG, DFS_LOG_INFO, DFS_LOG_WARN, DFS_LOG_ERROR, DFS_LOG_COUNT } dfs_log_level;
typedef void (*dfs_log_fn)(dfs_log_level level, const char *msg, void *user);
/* Install a log callback (NULL silences the library, which is the default). */
void dfs_set_log(dfs_log_fn fn, void *user);
void dfs_log(dfs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Abort with file and line for programmer errors (shape mismatches in op calls). */
#define DFS_ASSERT(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) dfs_assert_fail(__FILE__, __LINE__, #cond);                              \
    } while (0)
void dfs_assert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));

/* Threads used by OpenMP regions and OpenBLAS (n >= 1). */
void dfs_set_threads(int n);
int dfs_get_threads(void);

/* ------------------------------------------------------------------------------------------ */
/* Random numbers: xoshiro256** with Box-Muller normals. Same seed, same stream.               */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    uint64_t s[4];
    int has_spare; /* Box-Muller makes normals in pairs; the second is kept here */
    float spare;
} dfs_rng;

void dfs_rng_seed(dfs_rng *r, uint64_t seed);
uint64_t dfs_rng_u64(dfs_rng *r);
float dfs_rng_uniform(dfs_rng *r);            /* [0, 1) with 24 random bits */
uint32_t dfs_rng_below(dfs_rng *r, uint32_t n); /* uniform integer in [0, n), unbiased */
float dfs_rng_normal(dfs_rng *r);             /* standard normal */
void dfs_rng_fill_normal(dfs_rng *r, float *out, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Engine: tensors, graph (arena + tape), backward                                             */
/* ------------------------------------------------------------------------------------------ */

#define DFS_MAXDIM 4

typedef struct dfs_tensor {
    float *data;       /* n floats, row-major */
    float *grad;       /* n floats or NULL; allocated (zeroed) on first use in backward */
    int ndim;
    int shape[DFS_MAXDIM];
    size_t n;          /* number of elements */
    int requires_grad; /* gradient flows into this tensor (params, or results of ops on them) */
    const char *name;  /* parameter name, NULL for activations */
    size_t grad_cap;   /* engine use: capacity of a graph-owned grad buffer (0 = not owned) */
} dfs_tensor;

typedef struct dfs_graph dfs_graph;

/* A graph owns an arena for activations and the tape of recorded ops. Reset frees both in
 * O(1) and keeps the memory, so steady-state steps do not call malloc. */
dfs_graph *dfs_graph_new(void);
void dfs_graph_free(dfs_graph *g);
void dfs_graph_reset(dfs_graph *g);
/* Record ops for backward (default 1). With 0, ops only compute (no-grad inference). */
void dfs_graph_set_grad(dfs_graph *g, int enabled);
int dfs_graph_grad_enabled(const dfs_graph *g);
/* Training mode turns dropout on (default 0). Dropout draws from the given generator. */
void dfs_graph_set_training(dfs_graph *g, int training, dfs_rng *rng);
/* Bytes of arena in use now and the most ever reserved. */
size_t dfs_graph_bytes_used(const dfs_graph *g);
size_t dfs_graph_bytes_reserved(const dfs_graph *g);

/* Arena memory, 64-byte aligned, valid until the next reset. Contents uninitialised. */
void *dfs_graph_alloc(dfs_graph *g, size_t bytes);
/* New tensor in the arena. _new leaves data uninitialised, _zeros clears it. */
dfs_tensor *dfs_tensor_new(dfs_graph *g, int ndim, const int *shape);
dfs_tensor *dfs_tensor_zeros(dfs_graph *g, int ndim, const int *shape);
/* Tensor header in the arena over caller-owned data (no copy, no grad). */
dfs_tensor *dfs_tensor_wrap(dfs_graph *g, float *data, int ndim, const int *shape);

/* Reverse-mode differentiation: loss must be a scalar (n == 1). Walks the tape backwards;
 * gradients are accumulated (+=) into every tensor that requires grad, parameters included. */
void dfs_backward(dfs_graph *g, dfs_tensor *loss);
/* The same from any output, seeded with dout (out->n floats): vector-Jacobian products. */
void dfs_backward_grad(dfs_graph *g, dfs_tensor *out, const float *dout);

/* --- Ops. Each returns a new arena tensor and records a backward on the tape. ------------- */
/* Size key: N batch, C channels (Ci in, Co out), H W height width, L length, K kernel,
 * B batch of matrices, M K N matrix sizes, D features, V vocabulary, G groups. */

/* out (N,Co,Ho,Wo) = conv(x (N,Ci,H,W), w (Co,Ci,KH,KW)) + b (Co) ; b may be NULL.
 * Ho = (H + 2 pad - KH) / stride + 1. */
dfs_tensor *dfs_conv2d(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int stride,
                       int pad);
/* out (N,Co,Lo) = conv(x (N,Ci,L), w (Co,Ci,K)) + b (Co). */
dfs_tensor *dfs_conv1d(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b, int stride,
                       int pad);
/* out (..., O) = x (..., I) w^T + b, w (O, I), b (O) or NULL. */
dfs_tensor *dfs_linear(dfs_graph *g, dfs_tensor *x, dfs_tensor *w, dfs_tensor *b);
/* GroupNorm over (C/G, spatial) per sample and group; x (N,C,...), gamma/beta (C). */
dfs_tensor *dfs_group_norm(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                           int groups, float eps);
/* silu(group_norm(x)) in one op, without keeping the normalised tensor (fused: one pass,
 * one activation less). */
dfs_tensor *dfs_group_norm_silu(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma,
                                dfs_tensor *beta, int groups, float eps);
/* LayerNorm over the last dimension; gamma/beta (D). */
dfs_tensor *dfs_layer_norm(dfs_graph *g, dfs_tensor *x, dfs_tensor *gamma, dfs_tensor *beta,
                           float eps);
dfs_tensor *dfs_silu(dfs_graph *g, dfs_tensor *x);   /* x * sigmoid(x) */
dfs_tensor *dfs_gelu(dfs_graph *g, dfs_tensor *x);   /* tanh approximation */
/* Elementwise with NumPy broadcasting (shapes aligned on the right). */
dfs_tensor *dfs_add(dfs_graph *g, dfs_tensor *a, dfs_tensor *b);
dfs_tensor *dfs_mul(dfs_graph *g, dfs_tensor *a, dfs_tensor *b);
dfs_tensor *dfs_scale(dfs_graph *g, dfs_tensor *a, float s);
/* Same data, new shape (same element count). */
dfs_tensor *dfs_reshape(dfs_graph *g, dfs_tensor *x, int ndim, const int *shape);
/* Join along dim (other dims equal). */
dfs_tensor *dfs_concat(dfs_graph *g, dfs_tensor *a, dfs_tensor *b, int dim);
/* x[..., start:start+len, ...] along dim. */
dfs_tensor *dfs_slice(dfs_graph *g, dfs_tensor *x, int dim, int start, int len);
/* Nearest-neighbour upsampling of (N,C,H,W) by an integer factor. */
dfs_tensor *dfs_upsample_nearest(dfs_graph *g, dfs_tensor *x, int factor);
/* Softmax over the last dimension. */
dfs_tensor *dfs_softmax(dfs_graph *g, dfs_tensor *x);
/* Batched matmul: a (B,M,K) (or (B,K,M) if ta), b (B,K,N) (or (B,N,K) if tb) -> (B,M,N). */
dfs_tensor *dfs_bmm(dfs_graph *g, dfs_tensor *a, dfs_tensor *b, int ta, int tb);
/* Rows of table (V,D) picked by idx[0..n-1] -> (n, D). idx is copied. */
dfs_tensor *dfs_embedding(dfs_graph *g, dfs_tensor *table, const int *idx, int n);
/* Inverted dropout with probability p in training mode; identity otherwise. */
dfs_tensor *dfs_dropout(dfs_graph *g, dfs_tensor *x, float p);
/* Scalar mean of (a - b)^2; b is the target (no gradient flows into b). */
dfs_tensor *dfs_mse(dfs_graph *g, dfs_tensor *a, dfs_tensor *b);
/* Scalar mean of all elements. */
dfs_tensor *dfs_mean(dfs_graph *g, dfs_tensor *x);

/* Sinusoidal timestep embedding (no gradient): out (n, dim), sines first, then cosines,
 * f_i = exp(-ln(10000) i / (dim/2)) (Ho et al. 2020, after Vaswani et al. 2017). */
dfs_tensor *dfs_timestep_embedding(dfs_graph *g, const int *t, int n, int dim);

/* ------------------------------------------------------------------------------------------ */
/* Parameters and optimisation                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* All parameters in one block: data[n], grad[n], AdamW moments m[n], v[n], EMA ema[n], each in
 * the same layout, so the optimiser, clipping, EMA and checkpoints are single loops. */
typedef struct dfs_params {
    size_t n;        /* total floats */
    int count;       /* number of tensors */
    dfs_tensor **t;  /* count tensors, data/grad pointing into the blocks */
    float *data, *grad, *m, *v, *ema;
    int cap;
} dfs_params;

dfs_params *dfs_params_new(void);
void dfs_params_free(dfs_params *p);
/* Declare a parameter (before finalize). The name is copied. Returns its tensor. */
dfs_tensor *dfs_params_add(dfs_params *p, const char *name, int ndim, const int *shape);
/* Allocate the blocks and point the tensors into them. Returns DFS_ERR_NOMEM on failure. */
dfs_status dfs_params_finalize(dfs_params *p);
dfs_tensor *dfs_params_find(const dfs_params *p, const char *name);
void dfs_params_zero_grad(dfs_params *p);

typedef struct {
    float lr;           /* peak learning rate (default 2e-4) */
    float beta1, beta2; /* 0.9, 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* decoupled (Loshchilov & Hutter 2019), default 0 */
    int warmup;         /* linear warm-up steps (default 500) */
    float clip;         /* global grad-norm clip, <= 0 disables (default 1.0) */
    float ema_decay;    /* 0.9999 with warm-up min(decay, (1+s)/(10+s)); <= 0 disables */
} dfs_adamw_config;

void dfs_adamw_config_default(dfs_adamw_config *c);
/* One AdamW step (step counts from 1). Clips the gradient first; returns the pre-clip
 * gradient norm in *gnorm (may be NULL). Updates EMA if enabled. DFS_ERR_NAN if the gradient
 * is not finite (parameters are left untouched then). */
dfs_status dfs_adamw_step(dfs_params *p, const dfs_adamw_config *c, long step, float *gnorm);
/* Initialise EMA to the current weights. */
void dfs_params_ema_init(dfs_params *p);

/* ------------------------------------------------------------------------------------------ */
/* U-Net noise predictor                                                                       */
/* ------------------------------------------------------------------------------------------ */

#define DFS_MAX_LEVELS 6

typedef struct {
    int image_size;      /* H = W */
    int in_channels;     /* 1 or 3; output has the same */
    int base_channels;   /* C */
    int nlevels;
    int mult[DFS_MAX_LEVELS];  /* channels at level l = C * mult[l] */
    int attn[DFS_MAX_LEVELS];  /* 1: attention after each res block at level l */
    int enc_blocks;      /* res blocks per encoder level (2) */
    int dec_blocks;      /* res blocks per decoder level (enc_blocks + 1) */
    int groups;          /* GroupNorm groups (8) */
    float dropout;       /* 0.1 */
    int num_classes;     /* 0 = unconditional; else a table of num_classes + 1 rows */
} dfs_unet_config;

/* Fill c from a preset name ("fmnist", "tiny"). DFS_ERR_ARG for unknown names. */
dfs_status dfs_unet_config_preset(dfs_unet_config *c, const char *name);
/* DFS_OK if the configuration can be built, else DFS_ERR_ARG with a message. */
dfs_status dfs_unet_config_check(const dfs_unet_config *c);

typedef struct dfs_unet dfs_unet;
struct dfs_unet {
    dfs_unet_config cfg;
    dfs_params *params;
    void *impl; /* layer pointers into params */
};

/* Declare and initialise (PyTorch default init, from rng) a U-Net. NULL on bad config
 * (message in dfs_last_error). */
dfs_unet *dfs_unet_new(const dfs_unet_config *c, dfs_rng *rng);
void dfs_unet_free(dfs_unet *u);
/* Predict (N,C,H,W) from x_t (N,C,H,W), integer steps t[N] and labels[N] (label ==
 * num_classes means "no class"; labels may be NULL for unconditional or all-null). */
dfs_tensor *dfs_unet_forward(dfs_unet *u, dfs_graph *g, dfs_tensor *x, const int *t,
                             const int *labels);
/* Multiply-add FLOPs (x2) of one forward pass for one image. */
double dfs_unet_flops(const dfs_unet_config *c);

/* ------------------------------------------------------------------------------------------ */
/* Diffusion: schedule, forward process, posteriors, parameterisations                         */
/* ------------------------------------------------------------------------------------------ */

typedef enum { DFS_SCHEDULE_LINEAR, DFS_SCHEDULE_COSINE, DFS_SCHEDULE_COUNT } dfs_schedule_kind;
typedef enum { DFS_PRED_EPS, DFS_PRED_X0, DFS_PRED_V, DFS_PRED_COUNT } dfs_prediction;
extern const char *const dfs_schedule_names[DFS_SCHEDULE_COUNT]; /* "linear", "cosine" */
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

/* Linear: b from 1e-4 to 0.02 (DDPM sec. 4). Cosine: Nichol & Dhariwal 2021 eq. 17, s = 0.008,
 * b clipped at 0.999. */
dfs_status dfs_schedule_init(dfs_schedule *s, dfs_schedule_kind kind, int T);
void dfs_schedule_free(dfs_schedule *s);
/* Parse "linear"/"cosine" etc.; -1 if unknown. */
int dfs_schedule_from_name(const char *name);
int dfs_prediction_from_name(const char *name);

/* x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps  (DDPM eq. 4), n floats. */
void dfs_q_sample(const dfs_schedule *s, int t, const float *x0, const float *eps, float *xt,
                  size_t n);
/* One forward step x_t = sqrt(1 - b_t) x_{t-1} + sqrt(b_t) eps  (DDPM eq. 2). */
void dfs_q_step(const dfs_schedule *s, int t, const float *xprev, const float *eps, float *xt,
                size_t n);
/* Posterior q(x_{t-1} | x_t, x_0): mean (n floats) and variance beta_tilde_t (DDPM eq. 6-7). */
void dfs_q_posterior(const dfs_schedule *s, int t, const float *x0, const float *xt,
                     float *mean, size_t n, double *var);
/* Conversions among parameterisations at step t, given x_t. v = sqrt(abar) eps -
 * sqrt(1-abar) x0 (Salimans & Ho 2022 sec. 4). Any of the outputs may be NULL. */
void dfs_pred_to_eps_x0(const dfs_schedule *s, dfs_prediction kind, int t, const float *xt,
                        const float *pred, float *eps, float *x0, size_t n);
/* Training target for the given parameterisation from x0 and eps at step t. */
void dfs_pred_target(const dfs_schedule *s, dfs_prediction kind, int t, const float *x0,
                     const float *eps, float *target, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Samplers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* ddpm     ancestral (DDPM), `steps` network evaluations
 * ddim     DDIM (eta), `steps` network evaluations
 * dpm++2m  DPM-Solver++(2M), deterministic multistep; `steps` network evaluations
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
 * x (n, dim) at steps t[n] with labels[n] (NULL when unconditional) into out (n, dim). */
typedef void (*dfs_model_fn)(void *user, const float *x, const int *t, const int *labels, int n,
                             float *out);

typedef struct {
    dfs_sampler_kind kind;
    int steps;           /* timesteps visited (<= T): network evaluations, 2 steps - 1 for heun */
    float eta;           /* DDIM eta: 0 deterministic, 1 ~ DDPM variance */
    int var_beta_tilde;  /* DDPM: 1 uses beta-tilde_t, 0 uses beta_t (DDPM sec. 3.2) */
    float guidance;      /* guidance scale w: 1 = conditional only (no null pass), 0 = unconditional */
    int clip_x0;         /* clip predicted x0 to [-1, 1] (default 1) */
    dfs_prediction prediction;
    int null_label;      /* label meaning "no class" (num_classes) */
} dfs_sampler_config;

void dfs_sampler_config_default(dfs_sampler_config *c);
/* The timesteps a sampler with `steps` steps visits, descending, written to ts[steps].
 * Evenly spaced ("trailing"-free, leading spacing): ts[i] = round((steps-1-i) * (T-1)/(steps-1)). */
void dfs_sampler_timesteps(int T, int steps, int *ts);

/* Called after each step with the current x (n, dim), step index i of steps. */
typedef void (*dfs_sample_cb)(void *user, int i, int steps, int t, const float *x, int n);

/* Draw n samples of dim floats each into x (n*dim floats), starting from N(0, I) drawn from
 * rng. labels[n] may be NULL (unconditional). With guidance w != 1 the model is evaluated on
 * labels and on null_label in one call of 2n items, eps = eps_u + w (eps_c - eps_u) (Ho &
 * Salimans 2022 eq. 6, whose w is this w - 1). */
dfs_status dfs_sample(const dfs_schedule *s, const dfs_sampler_config *c, dfs_model_fn model,
                      void *model_user, const int *labels, int n, size_t dim, dfs_rng *rng,
                      float *x, dfs_sample_cb cb, void *cb_user);

/* ------------------------------------------------------------------------------------------ */
/* Models: a U-Net with its diffusion settings                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    dfs_unet_config unet;
    dfs_schedule_kind schedule; /* linear */
    int T;                      /* 1000 */
    dfs_prediction prediction;  /* eps */
} dfs_model_config;

typedef struct {
    dfs_model_config cfg;
    dfs_unet *net;
    dfs_schedule sched;
    dfs_graph *g;      /* for no-grad inference */
    int max_batch;     /* images per inference pass (64) */
} dfs_model;

/* Build a model with freshly initialised weights (seeded). NULL on error (dfs_last_error). */
dfs_model *dfs_model_new(const dfs_model_config *c, uint64_t seed);
void dfs_model_free(dfs_model *m);
/* dfs_model_fn for the samplers: user is a dfs_model *. No-grad, eval mode, in chunks of
 * max_batch images. */
void dfs_model_predict(void *model, const float *x, const int *t, const int *labels, int n,
                       float *out);
/* Swap the live weights with the EMA weights (call again to swap back). */
void dfs_params_swap_ema(dfs_params *p);

/* ------------------------------------------------------------------------------------------ */
/* Checkpoints (safetensors; names in docs/CHECKPOINTS.md)                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    long step;           /* optimiser steps done */
    long images_seen;
    uint64_t seed;       /* the run's seed (data order is derived from it) */
    dfs_rng rng;         /* the training generator, saved for exact resume */
    double wall_seconds; /* training time so far */
} dfs_train_state;

typedef enum {
    DFS_CKPT_FULL,      /* weights, EMA, AdamW moments, state: resumable */
    DFS_CKPT_SAMPLING,  /* EMA weights only (stored as the weights), float32 */
    DFS_CKPT_SAMPLING_F16, /* the same in float16 */
    DFS_CKPT_COUNT
} dfs_ckpt_kind;

/* Write atomically. train_json (may be NULL) is stored as the "train" metadata. */
dfs_status dfs_checkpoint_save(const char *path, const dfs_model *m, const dfs_train_state *st,
                               const char *train_json, dfs_ckpt_kind kind);
/* Load a checkpoint: builds the model from its metadata and loads weights (and EMA, optimiser
 * state and *st when present and st != NULL). *has_optim tells whether it is resumable. */
dfs_status dfs_checkpoint_load(const char *path, dfs_model **m, dfs_train_state *st,
                               int *has_optim, char **train_json);

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int batch;             /* 64 */
    dfs_adamw_config opt;
    float cond_drop;       /* probability of replacing a label with "no class" (0.1) */
} dfs_train_config;

void dfs_train_config_default(dfs_train_config *c);

typedef struct dfs_trainer dfs_trainer;
struct dfs_dataset;
/* The trainer keeps a reference to m and data (both must outlive it). Data must match the
 * model's image size and channels (DFS_ERR_SHAPE otherwise). */
dfs_status dfs_trainer_new(dfs_trainer **out, dfs_model *m, const dfs_train_config *c,
                           const struct dfs_dataset *data, dfs_train_state *st);
void dfs_trainer_free(dfs_trainer *t);
/* One step: batch, noise, forward, loss, backward, AdamW, EMA. Returns the loss in *loss.
 * DFS_ERR_NAN (weights untouched) if the loss or gradient is not finite. */
dfs_status dfs_trainer_step(dfs_trainer *t, float *loss);

/* ------------------------------------------------------------------------------------------ */
/* Data sets and files                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct dfs_dataset {
    int n, c, h, w;
    uint8_t *pixels;  /* n * c * h * w, NCHW, 0..255 */
    int *labels;      /* n labels or NULL */
    int num_classes;  /* 0 if unlabelled */
    char **class_names; /* num_classes names or NULL */
} dfs_dataset;

void dfs_dataset_free(dfs_dataset *d);
/* IDX files (MNIST format), gzip or raw, read with zlib. labels_path may be NULL. */
dfs_status dfs_load_idx(dfs_dataset *d, const char *images_path, const char *labels_path);
/* Debian's dataset-fashion-mnist: train (60000) or test (10000). */
dfs_status dfs_load_fashion_mnist(dfs_dataset *d, int train);
/* A folder of PNGs; sub-folders are classes (sorted by name). All images are resized with
 * box/bilinear filtering to size x size and converted to `channels` (1 or 3). */
dfs_status dfs_load_png_dir(dfs_dataset *d, const char *dir, int size, int channels);
/* Read one PNG into 8-bit pixels (c, h, w) with c = 1 or 3 (alpha composited on white). */
dfs_status dfs_png_read(const char *path, uint8_t **pixels, int *c, int *h, int *w);
/* Write an 8-bit PNG atomically (c = 1 or 3, pixels HWC interleaved). */
dfs_status dfs_png_write(const char *path, const uint8_t *pixels, int c, int h, int w);
/* Tile n images (c,h,w in [-1,1], NCHW floats) into a grid with `cols` columns and a 2-pixel
 * border, then write it as PNG. */
dfs_status dfs_png_write_grid(const char *path, const float *images, int n, int c, int h,
                              int w, int cols);
/* Write a uint8 .npy array atomically. */
dfs_status dfs_npy_write_u8(const char *path, const uint8_t *data, int ndim, const size_t *shape);
dfs_status dfs_npy_write_i32(const char *path, const int32_t *data, int ndim,
                             const size_t *shape);
/* Read a uint8 .npy array (any shape, C order); *data malloc'ed. */
dfs_status dfs_npy_read_u8(const char *path, uint8_t **data, int *ndim, size_t *shape);
/* Read a little-endian int32 ('<i4') .npy array, e.g. the labels diffuse sample writes. */
dfs_status dfs_npy_read_i32(const char *path, int32_t **data, int *ndim, size_t *shape);

/* Write `size` bytes to path atomically: path.tmp, fsync, rename, fsync the directory. */
dfs_status dfs_write_atomic(const char *path, const void *data, size_t size);

/* ------------------------------------------------------------------------------------------ */
/* safetensors                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef enum { DFS_DT_F32, DFS_DT_F16, DFS_DT_I64, DFS_DT_U8, DFS_DT_COUNT } dfs_dtype;

typedef struct {
    char *name;
    dfs_dtype dtype;
    int ndim;
    int64_t shape[DFS_MAXDIM];
    const void *data;   /* points into the loaded file buffer */
    size_t nbytes;
} dfs_st_tensor;

typedef struct {
    int count;
    dfs_st_tensor *t;
    int nmeta;
    char **meta_keys, **meta_vals;  /* __metadata__ string map */
    void *buf;          /* whole file */
    size_t size;
} dfs_safetensors;

/* Parse a file, checking the header length, JSON, dtypes, shapes and byte ranges. */
dfs_status dfs_st_load(dfs_safetensors *st, const char *path);
void dfs_st_free(dfs_safetensors *st);
const dfs_st_tensor *dfs_st_find(const dfs_safetensors *st, const char *name);
const char *dfs_st_meta(const dfs_safetensors *st, const char *key);

/* Builder for writing: add tensors (data is referenced, not copied, until write) and
 * metadata, then write atomically. */
typedef struct dfs_st_writer dfs_st_writer;
dfs_st_writer *dfs_st_writer_new(void);
void dfs_st_writer_free(dfs_st_writer *w);
dfs_status dfs_st_writer_add(dfs_st_writer *w, const char *name, dfs_dtype dt, int ndim,
                             const int64_t *shape, const void *data);
dfs_status dfs_st_writer_meta(dfs_st_writer *w, const char *key, const char *val);
dfs_status dfs_st_writer_write(dfs_st_writer *w, const char *path);

/* float16 conversions (round to nearest even). */
uint16_t dfs_f32_to_f16(float f);
float dfs_f16_to_f32(uint16_t h);

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
 * fixed variance beta_tilde_t (beta_tilde_1 at t = 0). bpd[n] gets bits per dimension per
 * image. labels[n] may be NULL. docs/EVAL.md has the formulas. */
dfs_status dfs_nll_bpd(const dfs_schedule *s, dfs_prediction pred, dfs_model_fn model, void *user,
                       const int *labels, const float *x0, int n, size_t dim, dfs_rng *rng,
                       double *bpd);
/* The same, also writing each term's mean over the n images (bits/dim) to terms[T + 1]:
 * terms[0] the decoder, terms[t] (1 <= t < T) the KL at step t, terms[T] the prior. terms may
 * be NULL. */
dfs_status dfs_nll_bpd_terms(const dfs_schedule *s, dfs_prediction pred, dfs_model_fn model,
                             void *user, const int *labels, const float *x0, int n, size_t dim,
                             dfs_rng *rng, double *bpd, double *terms);

/* ------------------------------------------------------------------------------------------ */
/* Sample quality: Gaussian statistics of features and the Frechet distance (src/metrics.c)    */
/* ------------------------------------------------------------------------------------------ */

/* Mean and unbiased covariance (divisor n - 1) of n feature vectors, in double. */
typedef struct {
    int dim;
    long n;       /* vectors they were computed from */
    double *mean; /* (dim) */
    double *cov;  /* (dim, dim), symmetric */
} dfs_gauss_stats;

/* feat (n, dim). Fills *st (free with dfs_gauss_stats_free). DFS_ERR_ARG for n < 2,
 * DFS_ERR_NAN for a non-finite feature. */
dfs_status dfs_gauss_stats_compute(const float *feat, long n, int dim, dfs_gauss_stats *st);
void dfs_gauss_stats_free(dfs_gauss_stats *st);
/* Squared Frechet distance between N(a) and N(b) (Heusel et al. 2017 eq. 6):
 * |m1 - m2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), the square roots through LAPACK's
 * symmetric eigendecomposition (dsyevd). DFS_ERR_SHAPE if the dimensions differ. */
dfs_status dfs_frechet_distance(const dfs_gauss_stats *a, const dfs_gauss_stats *b, double *fd);

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_H */
