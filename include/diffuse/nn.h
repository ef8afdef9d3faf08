/* diffuse/nn.h - parameters and AdamW/EMA, the U-Net, the text encoder, the word tokenizer, the image classifier. Part of diffuse.h. */
#ifndef DIFFUSE_NN_H
#define DIFFUSE_NN_H

#include "diffuse/ops.h"
#include "diffuse/io.h"

#ifdef __cplusplus
extern "C" {
#endif

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
/* Declare a parameter (before finalize). The name is copied. Returns its tensor, owned by p.
 * Out of memory stops at DFS_ASSERT. */
dfs_tensor *dfs_params_add(dfs_params *p, const char *name, int ndim, const int *shape);
/* Allocate the blocks (zeroed) and point the tensors into them. Returns DFS_ERR_NOMEM on
 * failure. */
dfs_status dfs_params_finalize(dfs_params *p);
/* The tensor of that name, or NULL. */
dfs_tensor *dfs_params_find(const dfs_params *p, const char *name);
void dfs_params_zero_grad(dfs_params *p);

typedef struct {
    float lr;           /* peak learning rate (default 2e-4) */
    float beta1, beta2; /* 0.9, 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* decoupled (Loshchilov & Hutter 2019), default 0 */
    int warmup;         /* linear warm-up steps (default 500) */
    float clip;         /* global grad-norm clip, <= 0 disables (default 1.0) */
    float ema_decay;    /* 0.9999 with warm-up min(decay, (1+s)/(10+s)); <= 0: the EMA is
                         * the weights themselves */
} dfs_adamw_config;

void dfs_adamw_config_default(dfs_adamw_config *c);
/* One AdamW step (step counts from 1; the learning rate ramps up linearly over the first
 * warmup steps, Goyal et al. 2017). Clips the gradient first; returns the pre-clip
 * gradient norm in *gnorm (may be NULL). Updates EMA if enabled. DFS_ERR_NAN if the gradient
 * is not finite (parameters are left untouched then). */
dfs_status dfs_adamw_step(dfs_params *p, const dfs_adamw_config *c, long step, float *gnorm);
/* Initialise EMA to the current weights. */
void dfs_params_ema_init(dfs_params *p);

/* ------------------------------------------------------------------------------------------ */
/* CSDI: the denoiser for windows of time series (src/nn/csdi.c)                               */
/* ------------------------------------------------------------------------------------------ */

/* Tashiro et al. 2021. Values in parentheses are CSDI's (dfs_csdi_config_default). */
#define DFS_CSDI_MAX_CALENDAR 16
typedef struct {
    int features;    /* K the feature embedding has rows for: a window may have up to K (1) */
    int channels;    /* C, residual channels (64) */
    int layers;      /* residual layers (4) */
    int heads;       /* attention heads, dividing channels (8) */
    int ff;          /* the transformers' feed-forward width (64) */
    int step_dim;    /* diffusion-step embedding width, >= 2 (128) */
    int time_dim;    /* sinusoidal embedding of the step's position in the window, 0 (none)
                        or 2..4096 (128) */
    int feature_dim; /* learned embedding of each feature (16); 0: none */
    int calendar;    /* calendar values per time step that the caller gives (0..16) (0) */
} dfs_csdi_config;

typedef struct dfs_csdi dfs_csdi;

/* One forward pass: B windows of L steps and K features, every array row-major (B, L, K). */
typedef struct {
    int B, L, K;
    const float *xt;          /* the noisy values; read where cond_mask is 0 */
    const float *cond;        /* the conditioning (observed) values; read where cond_mask is 1 */
    const uint8_t *cond_mask; /* 1: a conditioning entry (clean, given); 0: to be denoised */
    const int *t;             /* (B) diffusion steps */
    const float *calendar;    /* (B, L, calendar): e.g. sin/cos of hour of day and day of year;
                                 NULL when the config has none */
    const float *const *side; /* NULL, or (B) blocks from dfs_csdi_side_cache, one per window:
                                 then calendar and the feature embedding are not read */
} dfs_csdi_input;

void dfs_csdi_config_default(dfs_csdi_config *c);
/* DFS_ERR_ARG with a message for a config out of the ranges above. */
dfs_status dfs_csdi_config_check(const dfs_csdi_config *c);
/* Side-information channels: time_dim + feature_dim + calendar + 1 (the mask), in the order
 * [time position embedding, calendar values, mask, feature embedding] (cond.weight's columns). */
int dfs_csdi_side_dim(const dfs_csdi_config *c);
/* A net with its parameters allocated and initialised (CSDI's init: 1x1 projections
 * kaiming-normal, linear layers PyTorch's uniform, the last projection zero), EMA = weights.
 * NULL on a bad config or out of memory (dfs_last_error). */
dfs_csdi *dfs_csdi_new(const dfs_csdi_config *c, dfs_rng *rng);
void dfs_csdi_free(dfs_csdi *n);
/* Initialise the weights again from rng (then EMA = weights). */
void dfs_csdi_init(dfs_csdi *n, dfs_rng *rng);
const dfs_csdi_config *dfs_csdi_config_of(const dfs_csdi *n);
dfs_params *dfs_csdi_params(dfs_csdi *n);
/* The predicted noise (B, L, K) on g; in is read during the call only. Wrong sizes (K above
 * features, a missing array) stop at DFS_ASSERT. */
dfs_tensor *dfs_csdi_forward(dfs_csdi *n, dfs_graph *g, const dfs_csdi_input *in);
/* The side information's projection in every residual layer depends on the mask and the
 * calendar, not on x_t or t: a sampler computes it once per window instead of at every step.
 * dfs_csdi_side_floats is the size of one window's block (layers L K 2C floats);
 * dfs_csdi_side_cache fills in->B blocks at out (xt and t are not read), on g without a tape,
 * from the weights as they are now (swap EMA in first). A forward given these blocks as
 * in->side gives the same values as one without. */
size_t dfs_csdi_side_floats(const dfs_csdi *n, int L, int K);
void dfs_csdi_side_cache(dfs_csdi *n, dfs_graph *g, const dfs_csdi_input *in, float *out);
/* The number of parameters dfs_csdi_new allocates for c (a valid config), without allocating
 * them: a checkpoint's config is checked against the bytes it holds before the net is built. */
size_t dfs_csdi_param_count(const dfs_csdi_config *c);
/* Floating-point operations of one forward pass of one window of L steps and K features (two
 * per multiply-add, matrix products only). */
double dfs_csdi_flops(const dfs_csdi_config *c, int L, int K);

/* ------------------------------------------------------------------------------------------ */
/* U-Net noise predictor                                                                       */
/* ------------------------------------------------------------------------------------------ */

#define DFS_MAX_LEVELS 6

/* The text encoder's configuration (src/nn/text.c, section "Text encoder" below); a text-to-image
 * U-Net embeds one (dfs_unet_config.text). */
typedef struct {
    int vocab;   /* token table rows (the tokenizer's vocabulary size) */
    int max_len; /* L: tokens per caption, padded */
    int dim;     /* d: width */
    int layers;  /* transformer layers */
    int heads;   /* attention heads; divides dim */
} dfs_text_config;

/* Values in parentheses are the "fmnist" preset's. dfs_unet_config_check gives the limits. */
typedef struct {
    int image_size;      /* H = W; divisible by 2^(nlevels - 1) */
    int in_channels;     /* 1..4 (1 gray, 3 RGB); the output has as many */
    int base_channels;   /* C (32); even and divisible by groups */
    int nlevels;         /* 1..DFS_MAX_LEVELS (3) */
    int mult[DFS_MAX_LEVELS];  /* channels at level l = C * mult[l] (1, 2, 2) */
    int attn[DFS_MAX_LEVELS];  /* 1: attention after each res block at level l (level 2) */
    int enc_blocks;      /* res blocks per encoder level (2) */
    int dec_blocks;      /* res blocks per decoder level: must be enc_blocks + 1 (3) */
    int groups;          /* GroupNorm groups (8) */
    float dropout;       /* in [0, 1) (0.1) */
    int num_classes;     /* 0 = unconditional; else a table of num_classes + 1 rows (10) */
    dfs_text_config text; /* text.dim == 0: no text; else captions condition the net (section
                             "Text-to-image" below; num_classes must then be 0) */
} dfs_unet_config;

/* Fill c from a preset name ("fmnist", "small"). DFS_ERR_ARG for unknown names. */
dfs_status dfs_unet_config_preset(dfs_unet_config *c, const char *name);
/* DFS_OK if the configuration can be built, else DFS_ERR_ARG with a message. */
dfs_status dfs_unet_config_check(const dfs_unet_config *c);
typedef struct dfs_unet dfs_unet;
struct dfs_unet {
    dfs_unet_config cfg;
    dfs_params *params;
    void *impl; /* layer pointers into params */
    void *text; /* text conditioning: encoder and caption table (src/nn/unet_text.c), or NULL */
};

/* Declare and initialise (PyTorch default init, from rng) a U-Net; the EMA starts as the
 * weights. NULL on a bad config or out of memory (message in dfs_last_error). */
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
/* Text encoder: a small pre-LayerNorm transformer (src/nn/text.c)                                */
/* ------------------------------------------------------------------------------------------ */

/* dfs_text_config is defined before dfs_unet_config (the U-Net embeds one). */

typedef struct dfs_text_encoder dfs_text_encoder;
/* DFS_OK or DFS_ERR_ARG with a message. */
dfs_status dfs_text_config_check(const dfs_text_config *c);
/* Declare the encoder's parameters in p, named prefix + "tok_emb.weight", "pos_emb.weight",
 * "layers.I.{ln1,qkv,out,ln2,fc1,fc2}.{weight,bias}", "ln_final.{weight,bias}". Call before
 * dfs_params_finalize; NULL for a bad config (message set) or out of memory. Free with
 * dfs_text_encoder_free (the parameters belong to p). */
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


/* ---- words: a word tokenizer for captions (src/nn/tokenizer.c) --------------------------------- */

/* Where text stops being UTF-8: the byte offset of its first ill-formed sequence (an overlong
 * form, a surrogate, a code point past U+10FFFF, a stray or missing continuation byte), or -1
 * when all of it is well formed. Captions and prompts must be UTF-8: a checkpoint stores its
 * vocabulary in the safetensors header, which is UTF-8 JSON. */
long dfs_utf8_invalid(const char *text);

/* Split text into words, ASCII letters lowercased (rules in src/nn/tokenizer.c and
 * docs/TEXT_TO_IMAGE.md), into buf (cap bytes; strlen(text) + 1 is always enough), pointing
 * words[0..max_words-1] at them. Returns the number of words (which may exceed max_words), or
 * -1 if buf is too small or an argument is NULL. */
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
 * (descending), ties bytewise. *out owned by the caller (dfs_tokenizer_free). DFS_ERR_FORMAT
 * for a caption that is not UTF-8 or has a word over 128 bytes. */
dfs_status dfs_tokenizer_build(dfs_tokenizer **out, const char *const *texts, int n,
                               const dfs_tokenizer_config *c);
void dfs_tokenizer_free(dfs_tokenizer *t);
int dfs_tokenizer_vocab_size(const dfs_tokenizer *t);
int dfs_tokenizer_max_len(const dfs_tokenizer *t);
/* The word of an id (NULL out of range), the id of a word (DFS_TOK_UNK if absent). */
const char *dfs_tokenizer_word(const dfs_tokenizer *t, int id);
int dfs_tokenizer_id(const dfs_tokenizer *t, const char *word);
/* ids[max_len] = <bos> w1 .. wk <eos> <pad>..., max_len 3..4096 (DFS_ERR_ARG otherwise); words
 * past max_len - 2 are dropped. mask (may be NULL) gets 1 for the `length` real ids, 0 for
 * padding; info and on_unknown may be NULL. */
dfs_status dfs_tokenizer_encode(const dfs_tokenizer *t, const char *text, int max_len, int *ids,
                                uint8_t *mask, dfs_encode_info *info, dfs_unknown_fn on_unknown,
                                void *user);
/* Words of ids joined by spaces, skipping <pad> <bos> <eos>; <unk> (and ids out of range) as
 * "<unk>". malloc'ed (NULL when out of memory). */
char *dfs_tokenizer_decode(const dfs_tokenizer *t, const int *ids, int n);
/* {"format":"diffuse-words-1","max_len":L,"vocab":[...]}, printed by cJSON (free with
 * cJSON_free(): free() unless the program installed cJSON hooks); NULL when out of memory.
 * Parsing checks the format, max_len, the special tokens, that every word is one lowercase
 * word of at most 128 bytes, and no duplicates. */
char *dfs_tokenizer_to_json(const dfs_tokenizer *t);
dfs_status dfs_tokenizer_from_json(dfs_tokenizer **out, const char *json);


/* ------------------------------------------------------------------------------------------ */
/* Text-to-image: a U-Net conditioned on captions (src/nn/unet_text.c, docs/TEXT_TO_IMAGE.md)     */
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
 * rows may be 0 (only the empty caption). DFS_ERR_ARG for a model without text, bad ids or
 * mask values, DFS_ERR_NOMEM. */
dfs_status dfs_unet_set_context(dfs_unet *u, const int *tokens, const uint8_t *mask, int rows);
/* Rows of the attached table (the label of the empty caption), or -1 for a model without text. */
int dfs_unet_context_rows(const dfs_unet *u);

/* ------------------------------------------------------------------------------------------ */
/* Image classifier: a small CNN whose features give FD and whose predictions class accuracy  */
/* (src/nn/classifier.c, src/ops/loss.c, docs/CLASSIFIER.md)                                     */
/* ------------------------------------------------------------------------------------------ */


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
 * DFS_ERR_ARG if n < 0, both outputs are NULL or max_batch < 1; DFS_ERR_NOMEM if the
 * activations do not fit. */
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

/* Training: cross-entropy, AdamW (src/nn/params.c) with linear warm-up and cosine decay of the
 * learning rate to 0 over all steps (Loshchilov & Hutter 2017, eq. 5). Epoch e visits the data
 * in a Fisher-Yates order drawn from (seed, e); training goes on from c's current weights
 * (dfs_classifier_new's for a new one), with the AdamW moments reset to zero. */
typedef struct {
    int epochs;         /* 3 */
    int batch;          /* 128; the last batch of an epoch may be smaller */
    float lr;           /* peak learning rate (3e-3) */
    float weight_decay; /* AdamW decoupled weight decay (5e-4) */
    int warmup;         /* linear warm-up steps (100) */
    float clip;         /* gradient-norm clip, <= 0 disables (5) */
    uint64_t seed;      /* data order (0); the weights are c's, not drawn here */
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


/* ------------------------------------------------------------------------------------------ */
/* EGNN: the denoiser for molecules (src/nn/egnn.c)                                            */
/* ------------------------------------------------------------------------------------------ */

/* The E(n)-equivariant graph network of Satorras et al. 2021 in the form EDM uses as its noise
 * predictor (Hoogeboom et al. 2022, app. B; their egnn_new.py and EGNN_dynamics_QM9, with
 * sin_embedding off and aggregation "sum"). B molecules of up to M atoms (padded), each atom
 * 3 coordinates and F features, fully connected between the atoms present of a molecule:
 *   h = Linear_{F+1 -> nf}([h, t])                   t the normalised time, per atom
 *   layers blocks, each with edge attributes e_ij = [|x_i - x_j|^2, |x0_i - x0_j|^2] (x0 the
 *   input positions) and d_ij = (x_i - x_j) / (sqrt(|x_i - x_j|^2 + 1e-8) + norm_constant):
 *     sublayers GCLs:   m_ij = SiLU(Linear(SiLU(Linear([h_i, h_j, e_ij]))))
 *                       m_ij *= sigmoid(Linear_{nf -> 1}(m_ij))            (attention)
 *                       h_i += Linear(SiLU(Linear([h_i, sum_j w_ij m_ij]))); h *= node mask
 *     the coordinates:  phi_ij = Linear_{nf -> 1, no bias}(SiLU(Linear(SiLU(Linear(
 *                              [h_i, h_j, e_ij])))))
 *                       phi_ij = coords_range tanh(phi_ij)                   (tanh)
 *                       x_i += sum_j w_ij d_ij phi_ij
 *   w_ij = 1 / normalization_factor between distinct atoms present of one molecule, else 0.
 *   out = [centre(x - x0), Linear_{nf -> F+1}(h)[:F] node mask] (B, M, 3 + F): the position part
 *   with zero centre of mass over each molecule's atoms (EDM's remove_mean_with_mask), 0 on
 *   padding. A rotation or reflection of the input positions rotates the position part and
 *   leaves the features; a translation changes nothing.
 * Values in parentheses are dfs_egnn_config_default's (EDM's QM9 model: nf 256, 9 layers). */
typedef struct {
    int features;               /* F: node features in and out (6: one-hot H C N O F + charge) */
    int hidden;                 /* nf (64) */
    int layers;                 /* equivariant blocks (4) */
    int sublayers;              /* GCLs per block (1) */
    int attention;              /* 0 or 1: the edge gate sigmoid(Linear(m_ij)) (1) */
    int tanh;                   /* 0 or 1: phi = coords_range tanh(phi) (1) */
    float coords_range;         /* (15) */
    float norm_constant;        /* added to |x_i - x_j| in d_ij, >= 0 (1) */
    float normalization_factor; /* the neighbour sums are divided by it, > 0 (1) */
} dfs_egnn_config;

typedef struct dfs_egnn dfs_egnn;

/* One forward pass: B molecules of M atom slots, arrays row-major. */
typedef struct {
    int B, M;
    const float *xh;          /* (B, M, 3 + F): positions, then features; padded slots not read */
    const float *t;           /* (B): the time t / T in [0, 1] */
    const uint8_t *node_mask; /* (B, M): nonzero for an atom present */
} dfs_egnn_input;

void dfs_egnn_config_default(dfs_egnn_config *c);
/* DFS_ERR_ARG with a message for a config out of range: features 1..4096, hidden 1..4096,
 * layers 1..64, sublayers 1..16, attention and tanh 0 or 1, coords_range finite and > 0,
 * norm_constant finite and >= 0, normalization_factor finite and > 0. */
dfs_status dfs_egnn_config_check(const dfs_egnn_config *c);
/* A net with its parameters allocated and initialised (PyTorch's default Linear init, the
 * coordinate head's last Linear xavier-uniform with gain 0.001, as EDM), EMA = weights. NULL on
 * a bad config or out of memory (dfs_last_error). The parameters carry the names of EDM's
 * EGNN module: "embedding.weight", "e_block_L.gcl_S.edge_mlp.0.weight" (.2, node_mlp.0, .2,
 * att_mlp.0), "e_block_L.gcl_equiv.coord_mlp.0.weight" (.2, .4 without bias),
 * "embedding_out.bias", ..., in its order. */
dfs_egnn *dfs_egnn_new(const dfs_egnn_config *c, dfs_rng *rng);
void dfs_egnn_free(dfs_egnn *n);
/* Initialise the weights again from rng (then EMA = weights). */
void dfs_egnn_init(dfs_egnn *n, dfs_rng *rng);
const dfs_egnn_config *dfs_egnn_config_of(const dfs_egnn *n);
dfs_params *dfs_egnn_params(dfs_egnn *n);
/* The prediction (B, M, 3 + F) on g, as above; in is read during the call only. Anything in a
 * padded slot of xh is ignored (the output there is 0). Wrong sizes or a missing array stop at
 * DFS_ASSERT. */
dfs_tensor *dfs_egnn_forward(dfs_egnn *n, dfs_graph *g, const dfs_egnn_input *in);
/* The same on a tensor xh (B, M, 3 + F) of g, which may require grad (the gradient with
 * respect to the input: guidance, tests). Padded slots are multiplied by 0 as EDM does, so they
 * must be finite. */
dfs_tensor *dfs_egnn_apply(dfs_egnn *n, dfs_graph *g, dfs_tensor *xh, const float *t,
                           const uint8_t *node_mask);
/* The number of parameters dfs_egnn_new allocates for c (a valid config), without allocating
 * them. */
size_t dfs_egnn_param_count(const dfs_egnn_config *c);
/* Floating-point operations of one forward pass of one molecule of M atom slots (two per
 * multiply-add, matrix products only, the M^2 edges of padded slots included). */
double dfs_egnn_flops(const dfs_egnn_config *c, int M);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_NN_H */
