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

#include <setjmp.h>
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

/* Abort with file and line for programmer errors (shape mismatches in op calls). Running out
 * of memory for activations inside a forward or backward pass has no way back either: it
 * prints one line and exits with status 2 (dfs_unet_config_check keeps attention, the largest
 * buffer, at most 4096 tokens, so that only a batch or model too large for the machine gets
 * there). */
#define DFS_ASSERT(cond)                                                                      \
    do {                                                                                      \
        if (!(cond)) dfs_assert_fail(__FILE__, __LINE__, #cond);                              \
    } while (0)
void dfs_assert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));

/* Threads used by OpenMP regions and OpenBLAS (n >= 1). */
void dfs_set_threads(int n);
int dfs_get_threads(void);

/* --- Kernel choice (issue 3, speed) -------------------------------------------------------- */
/* FAST: stride-1 convolutions run on the library's own AVX-512 implicit-GEMM kernels, fused
 * with the GroupNorm/SiLU/dropout before them and the bias/time-embedding/residual adds after
 * them (portable loops where the CPU lacks AVX-512). BLAS: the earlier path, im2col + OpenBLAS
 * sgemm and one op per step; kept as a reference and for comparison. The default is FAST on
 * CPUs with AVX-512 and BLAS elsewhere, or what the environment variable DFS_KERNELS (fast,
 * blas) names. DFS_CPU=avx2 makes an AVX-512 CPU count as one without it (BLAS by default,
 * and the portable loops under FAST), so that one machine tests both paths. */
typedef enum { DFS_KERNELS_FAST, DFS_KERNELS_BLAS, DFS_KERNELS_COUNT } dfs_kernels;
extern const char *const dfs_kernels_names[DFS_KERNELS_COUNT];
void dfs_set_kernels(dfs_kernels k);
dfs_kernels dfs_get_kernels(void);

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
    size_t data_cap;   /* engine use: capacity of graph-owned data (0 = not owned) */
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

/* Arena memory, 64-byte aligned, valid until the next reset. Contents uninitialised. When
 * memory runs out (or the activation limit below is reached) inside an op there is no way back
 * through the op's callers: with a jump buffer set by dfs_graph_set_oom_jump the allocation
 * sets dfs_last_error and longjmps to it (the graph is then only fit for dfs_graph_reset);
 * without one it prints the error and exits with status 2. dfs_trainer_step, dfs_model_predict
 * (and so dfs_sample and dfs_nll_bpd), dfs_classifier_forward[_u8] and dfs_classifier_train
 * set one and return DFS_ERR_NOMEM; a program that runs its own graphs can do the same. The
 * jump must stay within the thread that set it. jb = NULL removes it. */
void *dfs_graph_alloc(dfs_graph *g, size_t bytes);
void dfs_graph_set_oom_jump(dfs_graph *g, jmp_buf *jb);
/* The most arena memory one graph may hold, in bytes (0 = no limit, the default): a memory
 * budget for activations, past which allocation fails as above. Checked when an arena grows:
 * a graph already holding more keeps it. Process-wide. */
void dfs_set_activation_limit(size_t bytes);
/* New tensor in the arena. _new leaves data uninitialised, _zeros clears it. */
dfs_tensor *dfs_tensor_new(dfs_graph *g, int ndim, const int *shape);
dfs_tensor *dfs_tensor_zeros(dfs_graph *g, int ndim, const int *shape);
/* Tensor header in the arena over caller-owned data (no copy, no grad). */
dfs_tensor *dfs_tensor_wrap(dfs_graph *g, float *data, int ndim, const int *shape);
/* In a graph that does not record (dfs_graph_set_grad(g, 0)), hand t's data back so that
 * later tensors of this graph reuse it (inference then needs memory for the live tensors only,
 * not for all of them); t must not be read afterwards. A no-op while recording, and for
 * tensors that do not own their data (dfs_tensor_wrap, dfs_reshape views). */
void dfs_tensor_release(dfs_graph *g, dfs_tensor *t);

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
/* Swap the last two dimensions: (..., A, B) -> (..., B, A). */
dfs_tensor *dfs_transpose(dfs_graph *g, dfs_tensor *x);
/* Multi-head scaled dot-product attention (Vaswani et al. 2017 eq. 1): q (N, Lq, D),
 * k (N, Lk, D), v (N, Lk, Dv) -> (N, Lq, Dv); head i uses columns [i D/h, (i+1) D/h) of q and k
 * and [i Dv/h, (i+1) Dv/h) of v and the output. key_mask (N, Lk) or NULL: 0 hides a key (a
 * padding token) from every query; a query with every key hidden gets zeros. The mask is read
 * during the call only. src/ops_attn.c. */
dfs_tensor *dfs_attention(dfs_graph *g, dfs_tensor *q, dfs_tensor *k, dfs_tensor *v, int heads,
                          const uint8_t *key_mask);
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

/* The text encoder's configuration (src/text.c, section "Text encoder" below); a text-to-image
 * U-Net embeds one (dfs_unet_config.text). */
typedef struct {
    int vocab;   /* token table rows (the tokenizer's vocabulary size) */
    int max_len; /* L: tokens per caption, padded */
    int dim;     /* d: width */
    int layers;  /* transformer layers */
    int heads;   /* attention heads; divides dim */
} dfs_text_config;

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
    dfs_text_config text; /* text.dim == 0: no text; else captions condition the net (section
                             "Text-to-image" below; num_classes must then be 0) */
} dfs_unet_config;

/* Fill c from a preset name ("fmnist", "tiny"). DFS_ERR_ARG for unknown names. */
dfs_status dfs_unet_config_preset(dfs_unet_config *c, const char *name);
/* DFS_OK if the configuration can be built, else DFS_ERR_ARG with a message. */
dfs_status dfs_unet_config_check(const dfs_unet_config *c);
/* The configuration as the JSON that checkpoints store under "unet" (docs/CHECKPOINTS.md),
 * printed by cJSON; the caller frees it with cJSON_free() (free() unless the program installed
 * cJSON hooks). NULL when out of memory. */
char *dfs_unet_config_json(const dfs_unet_config *c);

typedef struct dfs_unet dfs_unet;
struct dfs_unet {
    dfs_unet_config cfg;
    dfs_params *params;
    void *impl; /* layer pointers into params */
    void *text; /* text conditioning: encoder and caption table (src/unet_text.c), or NULL */
};

/* Declare and initialise (PyTorch default init, from rng) a U-Net. NULL on bad config
 * (message in dfs_last_error). */
dfs_unet *dfs_unet_new(const dfs_unet_config *c, dfs_rng *rng);
void dfs_unet_free(dfs_unet *u);
/* The number of parameters dfs_unet_new would allocate, without allocating them (a checkpoint
 * loader compares it with the file before building the net); 0 on bad config. */
size_t dfs_unet_param_count(const dfs_unet_config *c);
/* Predict (N,C,H,W) from x_t (N,C,H,W), integer steps t[N] and labels[N] (label ==
 * num_classes means "no class"; labels may be NULL for unconditional or all-null). For a text
 * model labels[i] is a row of the caption table (dfs_unet_set_context), and the number of rows
 * means the empty caption. */
dfs_tensor *dfs_unet_forward(dfs_unet *u, dfs_graph *g, dfs_tensor *x, const int *t,
                             const int *labels);
/* Multiply-add FLOPs (x2) of one forward pass for one image, the text encoder and the words'
 * keys and values included for a text model (counted at text.max_len tokens). */
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
 * x (n, dim) at steps t[n] with labels[n] (NULL when unconditional) into out (n, dim), and
 * return DFS_OK. Any other status (after dfs_set_error) stops the sampler, which returns it. */
typedef dfs_status (*dfs_model_fn)(void *user, const float *x, const int *t, const int *labels, int n,
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
    float dynamic_threshold; /* Imagen's dynamic thresholding (Saharia et al. 2022 sec. 2.3):
                                percentile P in (0, 100] of |x0| per sample; 0 = off (default),
                                then clip_x0 applies */
    /* Known entries (inpainting, imputation, forecasting, fixed fragments): where
     * known_mask[j] != 0 (j over the n*dim values), the sample is held to known[j] and never
     * modelled: it starts at, and after every step is replaced by, a fresh draw of
     * q(x_t | x0 = known) at the step's noise level (RePaint, Lugmayr et al. 2022, Alg. 1), and
     * the result holds known[j] exactly. Both NULL (default): nothing known. */
    const float *known;         /* (n, dim) */
    const uint8_t *known_mask;  /* (n, dim) */
    int resample;   /* RePaint's r: each stretch of `jump` steps is sampled r times, going back
                       by the forward process in between (sec. 4.2); 0 or 1 = replacement only */
    int jump;       /* RePaint's jump length j, in steps visited (0: 1, Algorithm 1) */
    /* SDEdit (Meng et al. 2022): start from init (n, dim) noised to the step that leaves
     * floor(steps * strength) steps (at least 1) to run, instead of from pure noise. NULL:
     * off (default). strength in (0, 1]: 1 starts from the noisiest step visited. */
    const float *init;
    float strength;
} dfs_sampler_config;

void dfs_sampler_config_default(dfs_sampler_config *c);
/* The timesteps a sampler with `steps` steps visits, descending, written to ts[steps].
 * Evenly spaced ("trailing"-free, leading spacing): ts[i] = round((steps-1-i) * (T-1)/(steps-1)). */
void dfs_sampler_timesteps(int T, int steps, int *ts);

/* The visited step a run starts at: 0, or with an initial image (SDEdit)
 * steps - max(1, floor(steps * strength)). */
int dfs_sampler_start(const dfs_sampler_config *c);
/* Network evaluations of one run (per sample batch; guidance makes each one pass of 2n), with
 * RePaint's resampling and SDEdit's shorter run counted. */
long dfs_sampler_evals(const dfs_sampler_config *c);

/* Called after each step with the current x (n, dim), step index i of steps. With RePaint's
 * resampling, i goes back by `jump` after each jump. */
typedef void (*dfs_sample_cb)(void *user, int i, int steps, int t, const float *x, int n);

/* Draw n samples of dim floats each into x (n*dim floats), starting from N(0, I) drawn from
 * rng. labels[n] may be NULL (unconditional). With guidance w != 1 the model is evaluated on
 * labels and on null_label in one call of 2n items, eps = eps_u + w (eps_c - eps_u) (Ho &
 * Salimans 2022 eq. 6, whose w is this w - 1). DFS_ERR_NAN if any value of the result is not
 * finite (x then holds it as it is). Random stream: the start takes n*dim normals (x_T, or the
 * noise of SDEdit's start), then n*dim more for the known entries' start when there are known
 * entries; every step that adds noise takes n*dim, then n*dim more for the known entries
 * (none on the last step), and every RePaint jump n*dim. */
dfs_status dfs_sample(const dfs_schedule *s, const dfs_sampler_config *c, dfs_model_fn model,
                      void *model_user, const int *labels, int n, size_t dim, dfs_rng *rng,
                      float *x, dfs_sample_cb cb, void *cb_user);

/* ------------------------------------------------------------------------------------------ */
/* Models: a U-Net with its diffusion settings                                                 */
/* ------------------------------------------------------------------------------------------ */

/* The sampling settings a model was measured at and is documented with, carried in its
 * checkpoint (diffuse export --sampler --steps --guidance) and used by diffuse sample and eval
 * for what the user does not give. */
typedef struct {
    int set;                /* 0: nothing recorded */
    dfs_sampler_kind kind;
    int steps;              /* 1..T */
    float guidance;         /* classifier-free guidance scale (1 = conditional only) */
} dfs_sampling_recipe;

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
    int max_batch;     /* images per inference pass (64), over all threads together */
    dfs_graph **gthread; /* engine use: one graph per thread of dfs_model_predict (lazily) */
    int ngthread;
    struct dfs_tokenizer *tokenizer; /* text models: the captions' tokenizer (owned, freed by
                                        dfs_model_free; saved in checkpoints), else NULL */
    dfs_sampling_recipe sampling;    /* the settings it samples best with (checkpoint metadata
                                        "sampling"); .set = 0 when none were recorded */
} dfs_model;

/* Build a model with freshly initialised weights (seeded). NULL on error (dfs_last_error). */
dfs_model *dfs_model_new(const dfs_model_config *c, uint64_t seed);
void dfs_model_free(dfs_model *m);
/* dfs_model_fn for the samplers: user is a dfs_model *. No-grad, eval mode, in chunks of
 * max_batch images. With several threads it is data-parallel: each thread runs the whole
 * network on its own share of the images. Results depend on how the images are split into
 * passes only at float rounding level (OpenBLAS's time-embedding GEMMs and the strided convs
 * see the pass's size). DFS_ERR_NOMEM when the activations do not fit (dfs_graph_alloc). */
dfs_status dfs_model_predict(void *model, const float *x, const int *t, const int *labels, int n,
                             float *out);
/* Swap the live weights with the EMA weights (call again to swap back). */
void dfs_params_swap_ema(dfs_params *p);

/* One sampling run of a model: what dfs_model_sample needs beyond the sampler's settings. */
typedef struct {
    dfs_sampler_config sampler; /* its prediction and null_label are ignored: the model's own are
                                   used (null_label below can override the latter) */
    const int *labels;  /* n class labels, or rows of the caption table for a text model; NULL:
                           unconditional (the model's null label for every sample when guided) */
    int n;              /* samples */
    int raw;            /* 0 (default): the EMA weights; 1: the live (raw) weights */
    int null_label;     /* -1 (default): the model's own "no condition": num_classes for a class
                           model, the row after the caption table (the empty caption) for a text
                           model; >= 0: this label or row (a negative prompt) */
    dfs_sample_cb cb;   /* progress callback (may be NULL) and its user pointer */
    void *cb_user;
} dfs_sample_request;

void dfs_sample_request_default(dfs_sample_request *r);
/* Draw r->n samples from m into x (n * dim floats, dim = channels * size * size), with the
 * model's prediction type and null label, on its EMA weights unless r->raw (the weights are
 * swapped back before it returns). The same random stream as dfs_sample. */
dfs_status dfs_model_sample(dfs_model *m, const dfs_sample_request *r, dfs_rng *rng, float *x);

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
/* Start m from the weights of another checkpoint (fine-tuning, or a text model from a class
 * model): every parameter of m whose name is stored in path with the same shape takes the
 * stored EMA weights ("ema.NAME", else "NAME"); the rest keep their values. The EMA is reset
 * to the weights. *loaded / *total count tensors (NULL to skip); fresh, when not NULL, gets a
 * malloc'ed comma-separated list of the tensors left as they were (empty string if none).
 * DFS_ERR_SHAPE if no tensor matches: the checkpoint is for another network. */
dfs_status dfs_checkpoint_init_from(dfs_model *m, const char *path, int *loaded, int *total,
                                    char **fresh);

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
 * DFS_ERR_NAN (weights untouched) if the loss or gradient is not finite; DFS_ERR_NOMEM if the
 * activations do not fit in memory: weights, EMA, AdamW state, step and images seen are
 * untouched, but the run's generator has drawn that step's batch, and the gradients may hold
 * part of a backward pass (the next step clears them). */
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
/* Whether that grid fits a PNG (65536 pixels a side): DFS_OK, or DFS_ERR_ARG with its size in
 * the error. For a caller to check before making the images. */
dfs_status dfs_png_grid_fits(int n, int h, int w, int cols);
/* Render one line of UTF-8 text with a TrueType font (FreeType) at px pixels: *out (h, w)
 * malloc'ed 8-bit coverage (0 = paper, 255 = ink). DFS_ERR_IO if the font file is missing. */
dfs_status dfs_text_render(const char *font_path, const char *text, int px, uint8_t **out,
                           int *w, int *h);
/* dfs_png_write_grid with a white band on top holding labels[j] centred over column j (black,
 * clipped to the column; NULL or "" leaves it blank), in font_path at px pixels. */
dfs_status dfs_png_write_grid_labeled(const char *path, const float *images, int n, int c,
                                      int h, int w, int cols, const char *const *labels,
                                      const char *font_path, int px);
/* The DejaVu Sans file of Debian's fonts-dejavu-core, used for labels. */
#define DFS_DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
/* Line charts (src/plot.c): loss curves and other series against steps, as an RGB PNG. */
typedef struct {
    const double *x, *y; /* n points; a non-finite point (or y <= 0 on a log axis) breaks the line */
    int n;
    uint8_t rgb[3];      /* line colour */
    float width;         /* line width in pixels; 0 = 1.5 */
    float alpha;         /* opacity in (0, 1]; 0 = 1 */
    const char *label;   /* legend entry; NULL or "" for none */
} dfs_plot_series;
typedef struct {
    int width, height;   /* pixels; 0 = 800 x 450 */
    const char *title, *xlabel, *ylabel; /* NULL for none */
    int log_y;           /* logarithmic y axis */
    const char *font;    /* NULL = DFS_DEFAULT_FONT */
} dfs_plot_config;
/* Draw ns series on shared axes (ticks at 1, 2, 5 x 10^k; decades on a log axis) and write
 * the PNG atomically. cfg NULL gives the defaults. DFS_ERR_ARG if nothing finite is left. */
dfs_status dfs_plot_png(const char *path, const dfs_plot_series *series, int ns,
                        const dfs_plot_config *cfg);
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
/* Open an existing regular file for reading ("rb") into *f. A FIFO, device or folder is refused
 * with "PATH: not a regular file" instead of being opened (opening a FIFO would wait for a
 * writer forever). DFS_ERR_IO with the error set on failure. */
dfs_status dfs_open_read(const char *path, FILE **f);
/* The same as a file descriptor (for gzdopen and the like): >= 0, or -1 with the error set. */
int dfs_open_read_fd(const char *path);

/* ------------------------------------------------------------------------------------------ */
/* Captioned images and words: the data of text-to-image models (docs/TEXT_TO_IMAGE.md)       */
/* src/captions.c (folders, loading by name), src/fashion_text.c, src/emoji.c, src/tokenizer.c */
/* ------------------------------------------------------------------------------------------ */

/* n images, each with one caption. images holds the pixels like every other data set (NCHW,
 * 0..255; training maps them to [-1, 1] by p / 127.5 - 1, see dfs_dataset_images_f32);
 * images.labels is the class for fashion-captions, a folder's integer "label" column when
 * every line has one, else NULL. */
typedef struct {
    dfs_dataset images;
    char **captions;  /* n UTF-8 captions (owned) */
    char **names;     /* n names: file names relative to a folder, or the emoji's code points
                         ("1F34E") / "fashion-mnist:INDEX" for builders (owned) */
    int skipped;      /* emoji: skin-tone variants left out (see skin_tones) */
    int failed;       /* emoji: emoji left out because they did not render as one glyph */
} dfs_caption_set;

/* Progress of a long load or write: done of total items. */
typedef void (*dfs_progress_fn)(void *user, long done, long total);

typedef struct {
    int size;           /* output height = width; 0: natural (fashion 28, emoji 32, folders:
                           the first image's, which must then be square) */
    int channels;       /* 1 or 3; 0: natural (fashion 1, emoji 3, folders: the first image's) */
    int test_split;     /* fashion-captions: 0 the 60000 training images, 1 the 10000 test ones */
    int limit;          /* keep the first `limit` items (0 = all); builders make only those */
    uint64_t seed;      /* fashion-captions: picks each image's synonym (with its index) */
    int skin_tones;     /* emoji: 1 keeps the skin-tone variants (default 0 leaves them out) */
    const char *emoji_font; /* NULL: /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf */
    const char *emoji_test; /* NULL: /usr/share/unicode/emoji/emoji-test.txt */
    dfs_progress_fn progress; /* may be NULL */
    void *progress_user;
} dfs_caption_options;

void dfs_caption_options_default(dfs_caption_options *o);
/* 1 if name is a built-in caption builder: "fashion-captions", "fashion-captions-test" (the
 * test split), "emoji". */
int dfs_captions_is_builder(const char *name);
/* Load a builder by name (built in memory, nothing written) or a captioned folder. o may be
 * NULL (defaults). On error *cs is zeroed and the message names the file, line or emoji. */
dfs_status dfs_captions_load(dfs_caption_set *cs, const char *spec, const dfs_caption_options *o);
/* A folder of PNGs with captions: DIR/metadata.jsonl, one JSON object per line with string
 * "file_name" (a PNG path relative to DIR) and string "text" (Hugging Face imagefolder), in
 * line order; or, without metadata.jsonl, every DIR/NAME.png (sorted) with DIR/NAME.txt
 * beside it. Images are converted to size/channels as dfs_load_png_dir does. Errors: empty
 * folder, bad JSON line N, missing file, image without caption, non-PNG image. */
dfs_status dfs_captions_load_dir(dfs_caption_set *cs, const char *dir,
                                 const dfs_caption_options *o);
/* Fashion-MNIST with captions (dfs_fashion_caption) and labels. */
dfs_status dfs_captions_fashion(dfs_caption_set *cs, const dfs_caption_options *o);
/* Noto Color Emoji rendered at size x size RGB with names from emoji-test.txt; emoji that do
 * not render are left out and counted in cs->failed (one DFS_LOG_WARN names the first few). */
dfs_status dfs_captions_emoji(dfs_caption_set *cs, const dfs_caption_options *o);
/* Write cs as a folder readable by dfs_captions_load_dir: DIR/NNNNNN.png (6 digits, index
 * order) and DIR/metadata.jsonl ({"file_name", "text", then "label" when labelled, "name"}).
 * Each image is written to a temporary name and renamed into place, the file system is synced
 * once, and metadata.jsonl comes last (dfs_write_atomic): a folder with metadata.jsonl is
 * complete. DIR is created if missing; existing files of the same names are replaced. */
dfs_status dfs_captions_write_dir(const dfs_caption_set *cs, const char *dir,
                                  dfs_progress_fn progress, void *user);
void dfs_caption_set_free(dfs_caption_set *cs);
/* Images first..first+count-1 of d as floats p / 127.5 - 1 (the training range) into out
 * (count, c, h, w). DFS_ERR_ARG if the range is outside d. */
dfs_status dfs_dataset_images_f32(const dfs_dataset *d, int first, int count, float *out);
/* Resize one image (sc, sh, sw) 8-bit to (oc, size, size) exactly as dfs_load_png_dir does:
 * area averaging when shrinking, half-pixel bilinear when growing, gray -> RGB by copying,
 * RGB -> gray by BT.601 luma. sc, oc in {1, 3}; size <= 4096. */
dfs_status dfs_image_resize_u8(const uint8_t *src, int sc, int sh, int sw, uint8_t *dst, int oc,
                               int size);

/* ---- fashion-captions: Fashion-MNIST classes, synonyms and measured attributes ----------- */

/* Brightness and size, each split at per-class terciles of the training images (tables in
 * src/fashion_text.c and docs/TEXT_TO_IMAGE.md). The middle third gets no word. */
typedef enum { DFS_TONE_DARK, DFS_TONE_MID, DFS_TONE_LIGHT, DFS_TONE_COUNT } dfs_fashion_tone;
typedef enum { DFS_SIZE_SMALL, DFS_SIZE_MID, DFS_SIZE_LARGE, DFS_SIZE_COUNT } dfs_fashion_size;
extern const char *const dfs_fashion_tone_words[DFS_TONE_COUNT]; /* "dark", "", "light" */
extern const char *const dfs_fashion_size_words[DFS_SIZE_COUNT]; /* "small", "", "large" */
/* A pixel belongs to the garment when its value is > this (of 255). */
#define DFS_FASHION_FG 32

typedef struct {
    float brightness;      /* mean value (0..255) of the garment pixels; 0 if none */
    float coverage;        /* garment pixels / all pixels */
    dfs_fashion_tone tone; /* brightness against the class's terciles */
    dfs_fashion_size size; /* coverage against the class's terciles */
} dfs_fashion_attr;

/* Measure a gray image (h, w) of 8-bit pixels for class cls (0..9; -1 uses the terciles of all
 * classes pooled). */
void dfs_fashion_measure(const uint8_t *gray, int h, int w, int cls, dfs_fashion_attr *a);
/* The same for a float image in [-1, 1] (a model's output), quantised as a PNG would be:
 * round((clamp(x, -1, 1) + 1) * 127.5). */
void dfs_fashion_measure_f32(const float *gray, int h, int w, int cls, dfs_fashion_attr *a);
/* The synonyms of class cls (0..9), e.g. {"t-shirt", "tee", "top"}: count, and the k-th. */
int dfs_fashion_synonym_count(int cls);
const char *dfs_fashion_synonym(int cls, int k);
/* Caption "a|an [small|large] [dark|light] SYNONYM" (plural synonyms take no article) with the
 * synonym picked from (seed, index), into buf (cap >= 64 is always enough). */
void dfs_fashion_caption(char *buf, size_t cap, int cls, const dfs_fashion_attr *a,
                         uint64_t seed, long index);
/* Read a caption or prompt back: *cls the class named first (longest phrase wins: "ankle boot"
 * before "boot", "t-shirt" before "shirt"; simple plurals accepted) or -1; *tone and *size the
 * attribute named (DFS_TONE_DARK/LIGHT, DFS_SIZE_SMALL/LARGE) or -1. Returns *cls. */
int dfs_fashion_parse(const char *text, int *cls, int *tone, int *size);

/* ---- emoji: Noto Color Emoji through HarfBuzz and FreeType --------------------------------- */

typedef struct {
    char *utf8;       /* the sequence as UTF-8 */
    char *codepoints; /* "1F3F3 FE0F 200D 1F308" as in emoji-test.txt */
    char *name;       /* "rainbow flag" */
    char *group;      /* "Flags" */
    char *subgroup;   /* "flag" */
    int skin_tone;    /* 1 if it has a skin-tone modifier (U+1F3FB..U+1F3FF) */
} dfs_emoji_entry;

/* The fully-qualified lines of emoji-test.txt in file order (skin-tone variants, those with
 * U+1F3FB..U+1F3FF, only with skin_tones). *list malloc'ed; free with dfs_emoji_list_free. */
dfs_status dfs_emoji_list(const char *emoji_test, int skin_tones, dfs_emoji_entry **list, int *n);
void dfs_emoji_list_free(dfs_emoji_entry *list, int n);
/* Caption: "NAME, GROUP WORDS, SUBGROUP WORDS", lowercased, Latin letters folded to ASCII
 * ("curaçao" -> "curacao", "o’clock" -> "o'clock"), "&" and quotes dropped, keycap symbols
 * spelled ("keycap: number sign"), subgroup hyphens as spaces: "red apple, food drink, food
 * fruit". Into buf; returns the length (truncated at cap - 1). */
size_t dfs_emoji_caption(const dfs_emoji_entry *e, char *buf, size_t cap);

typedef struct dfs_emoji_font dfs_emoji_font;
/* Open a colour bitmap (CBDT) font at its first fixed size. NULL path: Noto's. */
dfs_status dfs_emoji_font_open(dfs_emoji_font **f, const char *path);
void dfs_emoji_font_close(dfs_emoji_font *f);
/* Shape utf8 with HarfBuzz; it must become exactly one glyph (not .notdef), which is loaded
 * in colour (FT_LOAD_COLOR, premultiplied BGRA), composited on white (c + 255 - a), centred
 * in a square and area-averaged to out (3, size, size). DFS_ERR_FORMAT if it does not. */
dfs_status dfs_emoji_render(dfs_emoji_font *f, const char *utf8, int size, uint8_t *out);

/* ---- words: a word tokenizer for captions (src/tokenizer.c) --------------------------------- */

/* Where text stops being UTF-8: the byte offset of its first ill-formed sequence (an overlong
 * form, a surrogate, a code point past U+10FFFF, a stray or missing continuation byte), or -1
 * when all of it is well formed. Captions and prompts must be UTF-8: a checkpoint stores its
 * vocabulary in the safetensors header, which is UTF-8 JSON. */
long dfs_utf8_invalid(const char *text);

/* Split text into lowercase words (rules in src/tokenizer.c and docs/TEXT_TO_IMAGE.md) into
 * buf (cap bytes; strlen(text) + 1 is always enough), pointing words[0..max_words-1] at them.
 * Returns the number of words (which may exceed max_words), or -1 if buf is too small. */
int dfs_text_words(const char *text, char *buf, size_t cap, const char **words, int max_words);

enum { DFS_TOK_PAD = 0, DFS_TOK_UNK = 1, DFS_TOK_BOS = 2, DFS_TOK_EOS = 3, DFS_TOK_SPECIALS = 4 };

typedef struct {
    int max_vocab; /* largest vocabulary, the 4 special tokens included (0 = no limit) */
    int min_count; /* words seen fewer times are left out (1) */
    int max_len;   /* encoded length incl. <bos> and <eos> (0 = longest training caption + 2) */
} dfs_tokenizer_config;

typedef struct dfs_tokenizer dfs_tokenizer;
typedef struct {
    int length;    /* ids before padding, <bos> and <eos> included */
    int words;     /* words in the text */
    int unknown;   /* of the encoded words, those mapped to <unk> */
    int truncated; /* words that did not fit in max_len and were dropped */
} dfs_encode_info;
/* Called with each encoded word that is not in the vocabulary (it becomes <unk>). */
typedef void (*dfs_unknown_fn)(void *user, const char *word);

void dfs_tokenizer_config_default(dfs_tokenizer_config *c);
/* Vocabulary from n training captions: <pad> <unk> <bos> <eos>, then words by count
 * (descending), ties bytewise. *out owned by the caller (dfs_tokenizer_free). */
dfs_status dfs_tokenizer_build(dfs_tokenizer **out, const char *const *texts, int n,
                               const dfs_tokenizer_config *c);
void dfs_tokenizer_free(dfs_tokenizer *t);
int dfs_tokenizer_vocab_size(const dfs_tokenizer *t);
int dfs_tokenizer_max_len(const dfs_tokenizer *t);
/* The word of an id (NULL out of range), the id of a word (DFS_TOK_UNK if absent). */
const char *dfs_tokenizer_word(const dfs_tokenizer *t, int id);
int dfs_tokenizer_id(const dfs_tokenizer *t, const char *word);
/* ids[max_len] = <bos> w1 .. wk <eos> <pad>...; words past max_len - 2 are dropped. mask
 * (may be NULL) gets 1 for the `length` real ids, 0 for padding; info may be NULL. */
dfs_status dfs_tokenizer_encode(const dfs_tokenizer *t, const char *text, int max_len, int *ids,
                                uint8_t *mask, dfs_encode_info *info, dfs_unknown_fn on_unknown,
                                void *user);
/* Words of ids joined by spaces, skipping <pad> <bos> <eos>; <unk> (and ids out of range) as
 * "<unk>". malloc'ed (NULL when out of memory). */
char *dfs_tokenizer_decode(const dfs_tokenizer *t, const int *ids, int n);
/* {"format":"diffuse-words-1","max_len":L,"vocab":[...]}; malloc'ed. Parsing checks the
 * format, the special tokens, that every word is one lowercase word, and no duplicates. */
char *dfs_tokenizer_to_json(const dfs_tokenizer *t);
dfs_status dfs_tokenizer_from_json(dfs_tokenizer **out, const char *json);

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
/* Text encoder: a small pre-LayerNorm transformer (src/text.c)                                */
/* ------------------------------------------------------------------------------------------ */

/* dfs_text_config is defined before dfs_unet_config (the U-Net embeds one). */

typedef struct dfs_text_encoder dfs_text_encoder;
/* DFS_OK or DFS_ERR_ARG with a message. */
dfs_status dfs_text_config_check(const dfs_text_config *c);
/* Declare the encoder's parameters in p, named prefix + "tok_emb.weight", "pos_emb.weight",
 * "layers.I.{ln1,qkv,out,ln2,fc1,fc2}.{weight,bias}", "ln_final.{weight,bias}". Call before
 * dfs_params_finalize; NULL for a bad config. Free with dfs_text_encoder_free (the parameters
 * belong to p). */
dfs_text_encoder *dfs_text_encoder_declare(dfs_params *p, const char *prefix, const dfs_text_config *c);
void dfs_text_encoder_free(dfs_text_encoder *te);
const dfs_text_config *dfs_text_encoder_config(const dfs_text_encoder *te);
/* After finalize: PyTorch-default linear weights, LayerNorm 1/0, embeddings N(0, 0.02^2). */
void dfs_text_encoder_init(dfs_text_encoder *te, dfs_rng *rng);
/* tokens (N, L) in [0, vocab), mask (N, L) 1 for real tokens (NULL: all) -> per-token
 * features (N, L, d) after the final LayerNorm; *pooled (may be NULL) gets their mean over the
 * real tokens (N, d). */
dfs_tensor *dfs_text_encoder_forward(dfs_text_encoder *te, dfs_graph *g, const int *tokens,
                                     const uint8_t *mask, int N, dfs_tensor **pooled);

/* ------------------------------------------------------------------------------------------ */
/* Text-to-image: a U-Net conditioned on captions (src/unet_text.c, docs/TEXT_TO_IMAGE.md)     */
/* ------------------------------------------------------------------------------------------ */

/* With dfs_unet_config.text.dim = d > 0 the U-Net also holds (E = 4 * base channels):
 *   text.*          a dfs_text_encoder of config .text (tokens (N, L) -> (N, L, d), pooled (N, d))
 *   text_proj       Linear(d, E): text_proj(pooled) is added to the time embedding
 *   <attn>.ctx      in every attention block, Linear(d, 2c): keys and values of the words,
 *                   concatenated to the image's (GLIDE, Nichol et al. 2022 sec. 4.1):
 *                   each position attends to [all H*W positions, the caption's real tokens];
 *                   padding tokens are hidden (score -1e30 before the softmax).
 * The conditioning is a table of tokenized captions attached to the U-Net: labels[i] of
 * dfs_unet_forward picks row labels[i], and labels[i] == rows picks the EMPTY caption (every
 * token hidden, pooled vector 0): the null condition of classifier-free guidance. So the
 * samplers and dfs_model_predict are unchanged: guidance uses null_label = rows, and a negative
 * prompt is one more row used as null_label. */

/* Copy a table of rows tokenized captions: tokens (rows, L) with ids in [0, text.vocab), mask
 * (rows, L) of 0/1 (NULL: every token real), L = text.max_len; it replaces the previous table.
 * rows may be 0 (only the empty caption). DFS_ERR_ARG for a model without text or bad ids,
 * DFS_ERR_NOMEM. */
dfs_status dfs_unet_set_context(dfs_unet *u, const int *tokens, const uint8_t *mask, int rows);
/* Rows of the attached table (the label of the empty caption), or -1 for a model without text. */
int dfs_unet_context_rows(const dfs_unet *u);
/* Tokenize n texts with m->tokenizer (dfs_tokenizer_encode, at text.max_len; on_unknown is
 * called with every word outside the vocabulary, may be NULL) and attach them as the table.
 * *truncated (may be NULL) gets the number of words dropped for length. DFS_ERR_ARG for a model
 * without text or tokenizer. */
dfs_status dfs_model_set_prompts(dfs_model *m, const char *const *texts, int n,
                                 dfs_unknown_fn on_unknown, void *user, int *truncated);
/* Imagen's dynamic thresholding of one predicted x0 (dim floats) in place (Saharia et al. 2022
 * sec. 2.3): s = the p-th percentile of |x0| (linear interpolation between order statistics,
 * as numpy.percentile), s = max(s, 1), x0 = clip(x0, -s, s) / s. scratch: dim floats. Returns
 * s. */
float dfs_dynamic_threshold(float *x0, size_t dim, float p, float *scratch);

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
/* Nearest neighbours: for each of nq query rows (dim floats each), the indices of its k nearest
 * of nr reference rows by Euclidean distance, nearest first, ties to the lower index, in
 * idx[nq][k] (and the squared distances in dist[nq][k] when dist != NULL). One SGEMM gives the
 * cross terms: |q - r|^2 = |q|^2 - 2 q.r + |r|^2. */
dfs_status dfs_nearest(const float *q, int nq, const float *r, int nr, int dim, int k, int *idx,
                       float *dist);

/* ------------------------------------------------------------------------------------------ */
/* Image classifier: a small CNN whose features give FD and whose predictions class accuracy  */
/* (src/classifier.c, src/ops_loss.c, docs/CLASSIFIER.md)                                     */
/* ------------------------------------------------------------------------------------------ */

/* Softmax cross-entropy, mean over the batch: logits (N, K), labels[N] in [0, K) (copied).
 * L = 1/N sum_i logsumexp(z_i) - z_i[y_i], computed with the max shift. Scalar output. */
dfs_tensor *dfs_cross_entropy(dfs_graph *g, dfs_tensor *logits, const int *labels);

/* The network (K = num_classes, F = feature_dim, c0 c1 c2 = channels[]; every conv 3x3 with
 * padding 1, so a stride-2 conv maps a side s to ceil(s / 2)):
 *   x (N, in_channels, S, S), pixels scaled as the diffusion data: p / 127.5 - 1 in [-1, 1]
 *   conv c0           -> GroupNorm + SiLU     S          28
 *   conv c1, stride 2 -> GroupNorm + SiLU     S1         14
 *   conv c1           -> GroupNorm + SiLU     S1         14
 *   conv c2, stride 2 -> GroupNorm + SiLU     S2          7
 *   conv c2, stride 2 -> GroupNorm + SiLU     S3          4
 *   flatten (N, c2 S3 S3) -> linear F -> SiLU = the FEATURES (N, F), the space of FD
 *   linear K                                  = the logits (N, K)
 * GroupNorm normalises each image on its own, so an image's features do not depend on the
 * other images of its batch. */
typedef struct {
    int image_size;  /* S (28), 8..1024 */
    int in_channels; /* 1 or 3 */
    int num_classes; /* K (10) */
    int channels[3]; /* c0 c1 c2 (16, 32, 64) */
    int feature_dim; /* F (128) */
    int groups;      /* GroupNorm groups (8); divides every channels[] */
} dfs_classifier_config;

void dfs_classifier_config_default(dfs_classifier_config *c);
/* DFS_OK if c can be built, else DFS_ERR_ARG with a message. */
dfs_status dfs_classifier_config_check(const dfs_classifier_config *c);

typedef struct {
    dfs_classifier_config cfg;
    dfs_params *params;   /* all weights; grad/m/v used by training */
    dfs_graph *g;         /* graph for no-grad inference */
    int max_batch;        /* images per inference pass (64) */
    double test_accuracy; /* as measured and stored in the file; < 0 if unknown */
    void *impl;           /* layer pointers into params */
} dfs_classifier;

/* Build a classifier with PyTorch-default initial weights drawn from seed. *out is owned by the
 * caller (dfs_classifier_free). DFS_ERR_ARG for a bad config, DFS_ERR_NOMEM. */
dfs_status dfs_classifier_new(dfs_classifier **out, const dfs_classifier_config *c, uint64_t seed);
void dfs_classifier_free(dfs_classifier *c);

/* Record the network on g (for training, or composing): x (N, C, S, S) -> logits (N, K); the
 * features (N, F) are returned in *features when features != NULL. */
dfs_tensor *dfs_classifier_graph(dfs_classifier *c, dfs_graph *g, dfs_tensor *x,
                                 dfs_tensor **features);
/* No-grad inference on n images x (n, C, S, S) in [-1, 1], in passes of max_batch images
 * (threads: dfs_set_threads). Writes logits (n, K) and/or features (n, F); either may be NULL.
 * DFS_ERR_ARG if n < 0 or both outputs are NULL; DFS_ERR_NOMEM if the activations do not fit. */
dfs_status dfs_classifier_forward(dfs_classifier *c, const float *x, int n, float *logits,
                                  float *features);
/* The same for n images of 8-bit pixels (n, C, S, S), scaled as p / 127.5 - 1. */
dfs_status dfs_classifier_forward_u8(dfs_classifier *c, const uint8_t *pixels, int n,
                                     float *logits, float *features);
/* Accuracy of the classifier on a labelled data set: *accuracy (may be NULL) and, when
 * confusion != NULL, confusion[true * K + predicted] counts (K * K ints, overwritten).
 * DFS_ERR_SHAPE if the images do not fit the model, DFS_ERR_ARG without labels or with a label
 * outside [0, K). */
dfs_status dfs_classifier_evaluate(dfs_classifier *c, const dfs_dataset *d, double *accuracy,
                                   int *confusion);

/* Write the weights (float32) atomically, with metadata: "format" = "diffuse-classifier-1",
 * "classifier" (the config as JSON), "test_accuracy" (when >= 0), "feature_layer" (a one-line
 * description) and "train" (train_json, may be NULL). */
dfs_status dfs_classifier_save(const char *path, const dfs_classifier *c, const char *train_json);
/* Load a file written by dfs_classifier_save. Every tensor must be present with its exact shape
 * and finite values (DFS_ERR_FORMAT / DFS_ERR_SHAPE otherwise). *train_json (may be NULL) gets
 * a malloc'ed copy of the "train" metadata or NULL. */
dfs_status dfs_classifier_load(const char *path, dfs_classifier **out, char **train_json);

/* Training: cross-entropy, AdamW (src/params.c) with linear warm-up and cosine decay of the
 * learning rate to 0 over all steps (Loshchilov & Hutter 2017, eq. 5). Epoch e visits the data
 * in a Fisher-Yates order drawn from (seed, e); weights start from dfs_classifier_new's. */
typedef struct {
    int epochs;         /* 3 */
    int batch;          /* 128; the last batch of an epoch may be smaller */
    float lr;           /* peak learning rate (3e-3) */
    float weight_decay; /* AdamW decoupled weight decay (5e-4) */
    int warmup;         /* linear warm-up steps (100) */
    float clip;         /* gradient-norm clip, <= 0 disables (5) */
    uint64_t seed;      /* data order (0); the initial weights come from dfs_classifier_new */
} dfs_classifier_train_config;

void dfs_classifier_train_config_default(dfs_classifier_train_config *c);
/* Called after every step with the 0-based epoch, the step within it (1..steps_per_epoch) and
 * the batch loss. Return non-zero to stop training (dfs_classifier_train then returns
 * DFS_ERR_INTERRUPTED; the weights are those after the last step). */
typedef int (*dfs_classifier_step_fn)(void *user, int epoch, long step, long steps_per_epoch,
                                      float loss);
/* Train c on the labelled data set d. DFS_ERR_ARG for a bad config or missing/out-of-range
 * labels, DFS_ERR_SHAPE if the images do not fit, DFS_ERR_NAN if the loss or gradient stops
 * being finite (weights of the last good step are kept), DFS_ERR_NOMEM if the activations do
 * not fit (likewise). */
dfs_status dfs_classifier_train(dfs_classifier *c, const dfs_dataset *d,
                                const dfs_classifier_train_config *tc, dfs_classifier_step_fn cb,
                                void *user);

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_H */
