/* diffuse/model.h - a network with its diffusion settings: sampling, checkpoints, training. Part of diffuse.h. */
#ifndef DIFFUSE_MODEL_H
#define DIFFUSE_MODEL_H

#include "diffuse/nn.h"
#include "diffuse/diffusion.h"

#ifdef __cplusplus
extern "C" {
#endif

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
    float guidance;         /* classifier-free guidance scale (1 = conditional only); a loaded
                               one is within [-100, 100] */
    int var_beta;           /* DDPM's reverse variance: 1 beta_t, 0 beta-tilde_t (the default) */
    float noise_scale;      /* DDPM's noise scale (dfs_sampler_config.noise_scale) in (0, 1];
                               0: none recorded, which means 1 (dfs_recipe_noise_scale) */
} dfs_sampling_recipe;

/* The noise scale a recipe asks for: r->noise_scale, or 1 when none is recorded. */
static inline float dfs_recipe_noise_scale(const dfs_sampling_recipe *r) {
    return r->noise_scale > 0.0f ? r->noise_scale : 1.0f;
}

/* No _default function: diffuse train's defaults are given in brackets. */
typedef struct {
    dfs_unet_config unet;
    dfs_schedule_kind schedule; /* (linear) */
    int T;                      /* 1..100000 (1000) */
    dfs_prediction prediction;  /* (eps) */
} dfs_model_config;

typedef struct {
    dfs_model_config cfg;
    dfs_unet *net;
    dfs_schedule sched;
    int max_batch;     /* images per inference pass (64), over all threads together (each of
                          nt threads takes max_batch / nt at a time) */
    struct dfs_model_graphs *graphs; /* private to src/model/model.c: the inference graphs */
    struct dfs_tokenizer *tokenizer; /* text models: the captions' tokenizer (owned, freed by
                                        dfs_model_free; saved in checkpoints), else NULL */
    dfs_sampling_recipe sampling;    /* the settings it samples best with (checkpoint metadata
                                        "sampling"); .set = 0 when none were recorded */
} dfs_model;

/* Build a model with freshly initialised weights (seeded), no tokenizer, no sampling recipe;
 * owned by the caller (dfs_model_free). NULL on error (dfs_last_error): T outside 1..100000,
 * unknown prediction or schedule, bad U-Net config, out of memory. */
dfs_model *dfs_model_new(const dfs_model_config *c, uint64_t seed);
void dfs_model_free(dfs_model *m);
/* dfs_model_fn for the samplers: user is a dfs_model *. No-grad, eval mode, in chunks of
 * max_batch images. With several threads (and not called inside a parallel region) it is
 * data-parallel: each thread runs the whole network on its own share of the images. Results
 * depend on how the images are split into passes only at float rounding level (OpenBLAS's
 * time-embedding GEMMs and the strided convs see the pass's size). It uses the model's own
 * graphs: do not call it on one model from two threads at once. DFS_ERR_NOMEM when the
 * activations do not fit (dfs_graph_alloc). */
dfs_status dfs_model_predict(void *model, const float *x, const int *t, const int *labels, int n,
                             float *out);
/* Text models: Tokenize n texts with m->tokenizer (dfs_tokenizer_encode, at text.max_len;
 * on_unknown, which may be NULL, is called with every encoded word outside the vocabulary) and
 * attach them as the caption table, rows 0..n-1, replacing the previous one (row n is then the
 * empty caption). *truncated (may be NULL) gets the number of words dropped for length, over all
 * texts. DFS_ERR_ARG for a model without text or tokenizer, or a bad n; DFS_ERR_NOMEM; the
 * tokenizer's or dfs_unet_set_context's status. */
dfs_status dfs_model_set_prompts(dfs_model *m, const char *const *texts, int n,
                                 dfs_unknown_fn on_unknown, void *user, int *truncated);

/* Swap the live weights with the EMA weights (call again to swap back). */
void dfs_params_swap_ema(dfs_params *p);

/* One sampling run of a model: what dfs_model_sample needs beyond the sampler's settings. */
typedef struct {
    dfs_sampler_config sampler; /* its prediction and null_label are ignored: the model's own are
                                   used (null_label below can override the latter) */
    const int *labels;  /* n class labels, or rows of the caption table for a text model; NULL:
                           unconditional, one pass with the model's own null label for every
                           sample (no guidance; null_label below is not used) */
    int n;              /* samples */
    int raw;            /* 0 (default): the EMA weights; 1: the live (raw) weights */
    int null_label;     /* guidance's null pass. -1 (default): the model's own "no condition":
                           num_classes for a class model, the row after the caption table (the
                           empty caption) for a text model; >= 0: this label or row (a negative
                           prompt) */
    dfs_sample_cb cb;   /* progress callback (may be NULL) and its user pointer */
    void *cb_user;
} dfs_sample_request;

void dfs_sample_request_default(dfs_sample_request *r);
/* Draw r->n samples from m into x (n * dim floats, dim = channels * size * size), with the
 * model's prediction type and null label, on its EMA weights unless r->raw (the weights are
 * swapped back before it returns, so m changes while it runs: no other thread may use m
 * meanwhile). The same random stream and statuses as dfs_sample, and DFS_ERR_ARG for
 * r->n < 1. */
dfs_status dfs_model_sample(dfs_model *m, const dfs_sample_request *r, dfs_rng *rng, float *x);
/* dfs_nll_bpd of n images x (labels may be NULL) under m: its prediction type, its EMA weights
 * unless raw (swapped in and back as dfs_model_sample does). */
dfs_status dfs_model_nll_bpd(dfs_model *m, const int *labels, const float *x, int n, int raw,
                             dfs_rng *rng, double *bpd);

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

/* A U-Net configuration as the JSON that checkpoints store under "unet" (docs/CHECKPOINTS.md),
 * printed by cJSON; the caller frees it with cJSON_free() (free() unless the program installed
 * cJSON hooks). NULL when out of memory. */
char *dfs_unet_config_json(const dfs_unet_config *c);
/* Write atomically: the weights (DFS_CKPT_FULL: the live ones, "ema.*" and the AdamW moments;
 * else the EMA weights under the plain names), and as metadata the configuration, the state
 * when st != NULL, m->sampling when set, m->tokenizer when there is one, and train_json (may be
 * NULL) as "train". DFS_ERR_ARG for an unknown kind, DFS_CKPT_FULL without st, st's generator
 * never seeded, or a float16 checkpoint with a weight beyond 65504; else the writer's status. */
dfs_status dfs_checkpoint_save(const char *path, const dfs_model *m, const dfs_train_state *st,
                               const char *train_json, dfs_ckpt_kind kind);
/* Load a checkpoint: builds the model from its metadata and loads weights (and EMA, optimiser
 * state, tokenizer and sampling recipe when present; without "ema.*" the EMA starts from the
 * weights). *st (st may be NULL) gets the stored state, zeroed when there is none. *has_optim
 * (may be NULL) tells whether it is resumable. *train_json (may be NULL) gets a malloc'ed copy
 * of the "train" metadata, or NULL. *m is the caller's (dfs_model_free), NULL on error:
 * DFS_ERR_FORMAT for a malformed or inconsistent file, DFS_ERR_SHAPE for a tensor of the wrong
 * shape, else the reader's or dfs_model_new's (DFS_ERR_ARG) status. */
dfs_status dfs_checkpoint_load(const char *path, dfs_model **m, dfs_train_state *st,
                               int *has_optim, char **train_json);
/* The pieces of a checkpoint, for other networks' files (the time-series models, src/series):
 * dfs_params_write adds p's tensors to w as a checkpoint of that kind stores them (above);
 * for DFS_CKPT_SAMPLING_F16 *half gets the float16 copy they point into, which the caller
 * frees after writing (else NULL); path only names the file in messages. dfs_params_read
 * loads them back from f with every check of dfs_checkpoint_load (shapes, finite values, EMA
 * all or none, moments both or neither, no tensor left over); *has_optim (may be NULL) tells
 * whether the moments were there. dfs_train_state_json gives the "state" metadata (free with
 * cJSON_free; NULL when out of memory), dfs_train_state_parse reads it back (DFS_ERR_FORMAT
 * when malformed). */
dfs_status dfs_params_write(dfs_st_writer *w, const dfs_params *p, dfs_ckpt_kind kind,
                            uint16_t **half, const char *path);
dfs_status dfs_params_read(const char *path, const dfs_safetensors *f, dfs_params *p, int *has_optim);
char *dfs_train_state_json(const dfs_train_state *st);
dfs_status dfs_train_state_parse(const char *path, const char *json, dfs_train_state *st);
/* A whole checkpoint of another network (the time-series and molecule models), with every
 * check of dfs_checkpoint_save: p's tensors (dfs_params_write), "format", the n_meta pairs
 * {key, value} of meta in order (the network's and the data's JSON; a NULL value means its
 * JSON could not be made: DFS_ERR_NOMEM), "diffusion" (schedule, T, eps prediction), "state"
 * from st, "train" and "sampling" when given (its guidance written as 1: these networks take
 * none). who names the model in messages. */
dfs_status dfs_checkpoint_save_net(const char *path, const char *who, const dfs_params *p,
                                   const char *const (*meta)[2], int n_meta, int schedule, int T,
                                   const dfs_train_state *st, const char *train_json,
                                   const dfs_sampling_recipe *sampling, dfs_ckpt_kind kind);
/* The "sampling" metadata: {"sampler": NAME, "steps": N, "guidance": W} with "variance": "beta"
 * added when r->var_beta and "noise_scale": S when a ddpm recipe's scale is not 1 (read back: a
 * number in (0, 1], with ddpm only), written into buf (DFS_RECIPE_JSON bytes); parsed back with steps
 * checked against 1..T, guidance against [-100, 100] and nothing else allowed (DFS_ERR_FORMAT
 * naming path otherwise; json NULL: no recipe, r->set = 0). */
#define DFS_RECIPE_JSON 192
void dfs_sampling_recipe_json(const dfs_sampling_recipe *r, char *buf);
dfs_status dfs_sampling_recipe_parse(const char *path, const char *json, int T, dfs_sampling_recipe *r);
/* Start m from the weights of another checkpoint (fine-tuning, or a text model from a class
 * model): every parameter of m whose name is stored in path with the same shape takes the
 * stored EMA weights ("ema.NAME" when stored, else "NAME"; float32 or float16); the rest keep
 * their values. On success the EMA is reset to the weights. *loaded / *total count tensors
 * (NULL to skip); fresh, when not NULL, gets on success a malloc'ed comma-separated list of the
 * tensors left as they were (empty string if none), else NULL. DFS_ERR_SHAPE if no tensor
 * matches: the checkpoint is for another network; DFS_ERR_FORMAT for a file that is not a
 * diffuse checkpoint or a non-finite weight (the weights loaded so far stay); DFS_ERR_ARG for a
 * NULL m or path. */
dfs_status dfs_checkpoint_init_from(dfs_model *m, const char *path, int *loaded, int *total,
                                    char **fresh);

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* The network side of a training step, for any denoiser (src/model/step.c). A denoiser is its
 * parameters and a forward pass on the tape: forward(user, g, lo, nb) records on g the
 * prediction for rows [lo, lo + nb) of the caller's batch (the inputs x_t, t and any
 * conditioning are the caller's, reached through user) and returns it as nb * dim floats in
 * any shape. It may be called from several threads at once on different rows, each with a
 * graph of its own, so it must not write shared state. */
typedef struct {
    dfs_params *params;
    dfs_tensor *(*forward)(void *user, dfs_graph *g, int lo, int nb);
    void *user;
} dfs_denoiser;

/* The graphs (and per-thread workers) a training step runs in; reused from step to step. */
typedef struct dfs_step dfs_step;
dfs_step *dfs_step_new(void); /* NULL when out of memory */
void dfs_step_free(dfs_step *s);
/* Forward of the B rows, the masked loss dfs_masked_mse(m, pred, target) (m may be NULL) and,
 * if it is finite, its gradient into d->params's gradients (overwritten). With several OpenMP
 * threads (outside a parallel region) the rows are split among them, each running forward and
 * backward in a graph of its own with serial ops, and the gradients are summed: each share is
 * weighted by its modelled entries, so the result is the batch's mean and gradient, equal to
 * the one-thread step's up to float rounding. rng: dropout (the one-thread step draws from it
 * directly; the data-parallel step draws one u64 per thread to seed each worker's generator).
 * *loss (may be NULL) gets the loss, NaN or infinite when it is not finite (then the
 * gradients are not written, DFS_OK). DFS_ERR_NOMEM when the activations do not fit (gradients
 * may hold part of a backward pass); DFS_ERR_ARG for NULL arguments or B < 1. */
dfs_status dfs_step_run(dfs_step *s, const dfs_denoiser *d, int B, size_t dim, const float *target,
                        const dfs_masks *m, dfs_rng *rng, float *loss);

/* Data parallel over processes (docs/DISTRIBUTED.md). The library knows no network: the
 * program hands it a sum over its processes (the CLI's is MPI, cli/mpi.c), and every process
 * runs the same trainer on the same batch. dfs_step_run then takes only this process's share
 * of the workers: with T_r worker threads on rank r (dfs_set_threads; they may differ), the
 * batch is split among W = T_0 + ... + T_{R-1} workers exactly as one process of W threads
 * splits it, worker j of the whole being thread j - (T_0 + ... + T_{r-1}) of rank r; the run's
 * generator draws W dropout seeds, every process all of them; the W losses are summed in
 * worker order, the T_r gradients of a process in thread order and the R partial sums in rank
 * order. So R processes of one thread give the same losses and gradients, bit for bit, as one
 * process of R threads; with T_r > 1 the order of the gradient sum differs from one process's,
 * and the results agree to float rounding (reproducible for a given layout). Every process
 * then applies the same AdamW step to the same sum. */
typedef struct {
    int rank, ranks; /* this process, 0..ranks-1, of ranks >= 1 */
    /* buf (n floats, n may be 0) of every process becomes, on every process, the sum over the
     * ranks in rank order, out[i] = ((0.0f + buf_0[i]) + buf_1[i]) + ... + buf_{R-1}[i], in
     * float: the same result whatever the network (MPI_SUM's order is the implementation's,
     * hence this contract). Called by all processes at the same points, from the thread that
     * called dfs_step_run, with the same n. A status other than DFS_OK ends the step with it. */
    dfs_status (*sum)(void *user, float *buf, size_t n);
    void *user;
} dfs_reducer;
/* Set the process-wide reducer that every dfs_step_run (so every trainer) uses from now on:
 * copied; NULL, or one of ranks == 1, returns to this process alone (the default). Call it
 * before training, not while a step runs. DFS_ERR_ARG for a rank outside 0..ranks-1, ranks < 1
 * or a NULL sum (the reducer is then unchanged). */
dfs_status dfs_set_reducer(const dfs_reducer *r);

typedef struct {
    int batch;             /* 1..4096 (64) */
    dfs_adamw_config opt;  /* dfs_adamw_config_default; lr must be in (0, 1) */
    float cond_drop;       /* probability in [0, 1] of replacing a label with "no class" (the
                              empty caption for a text model) (0.1); unused when unconditional */
} dfs_train_config;

void dfs_train_config_default(dfs_train_config *c);

typedef struct dfs_trainer dfs_trainer;
struct dfs_dataset;
/* The trainer keeps a reference to m, data and st (all must outlive it); st->seed orders the
 * data and st->rng draws the steps. Data must match the model's image size and channels,
 * have no more classes than the model, and for a text model one caption row per image
 * (DFS_ERR_SHAPE otherwise). DFS_ERR_ARG for a batch, cond_drop or lr out of range or empty
 * data; DFS_ERR_NOMEM. */
dfs_status dfs_trainer_new(dfs_trainer **out, dfs_model *m, const dfs_train_config *c,
                           const struct dfs_dataset *data, dfs_train_state *st);
void dfs_trainer_free(dfs_trainer *t);
/* One step: batch, noise, forward, loss, backward, AdamW, EMA. Returns the loss in *loss (may
 * be NULL). Random stream (st->rng): per image a uniform for label dropout (conditional models
 * only) and t (dfs_draw_t), then batch * dim normals for the noise, then the dropout: one u64
 * per thread to seed each worker's generator when data-parallel, else drawn directly.
 * DFS_ERR_NAN if the loss or gradient is not finite (weights, EMA, AdamW state, step and images
 * seen untouched; the generator has drawn the step); DFS_ERR_NOMEM if the activations do not
 * fit in memory: weights, EMA, AdamW state, step and images seen are
 * untouched, but the run's generator has drawn that step's batch, and the gradients may hold
 * part of a backward pass (the next step clears them). */
dfs_status dfs_trainer_step(dfs_trainer *t, float *loss);



#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_MODEL_H */
