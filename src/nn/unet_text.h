/* unet_text.h - text conditioning of the U-Net (src/nn/unet_text.c), the hooks src/nn/unet.c calls.
 * Not public API; the public side is the "Text-to-image" section of include/diffuse/nn.h.
 *
 * Size key: N batch, L tokens per caption, d text width, E time-embedding width, c channels of
 * an attention block, P = H*W image positions. */
#ifndef DFS_UNET_TEXT_H
#define DFS_UNET_TEXT_H

#include "diffuse/nn.h"

/* Per U-Net (dfs_unet.text): the encoder, text_proj and the caption table. */
typedef struct unet_text unet_text;
/* Per forward pass: the encoded captions of the batch, in the graph's arena. */
typedef struct unet_text_fwd unet_text_fwd;

/* dfs_unet_config_check's part for c->text: DFS_OK when c->text.dim == 0, or when the encoder
 * config is valid and the model has no classes. DFS_ERR_ARG with a message otherwise. */
dfs_status unet_text_config_check(const dfs_unet_config *c);
/* Declare "text.*" (the encoder) and "text_proj" (d -> E) in p, before dfs_params_finalize.
 * NULL on failure (message set). */
unet_text *unet_text_declare(dfs_params *p, const dfs_unet_config *c);
/* After the U-Net's own initialisation: the encoder's (dfs_text_encoder_init). */
void unet_text_init(unet_text *ut, dfs_rng *rng);
void unet_text_free(unet_text *ut);

/* Encode the captions picked by labels[N] (NULL: all empty) and return temb (N, E) +
 * text_proj(pooled); *out gets the per-token features and masks for the attention blocks. */
dfs_tensor *unet_text_begin(unet_text *ut, dfs_graph *g, const int *labels, int N,
                            dfs_tensor *temb, unet_text_fwd **out);
/* GLIDE's concatenated keys and values: ctx = Linear(d, 2c) (w (2c, d), b (2c)) of the tokens
 * gives text keys and values (N, c, L), appended to the image's *k, *v (N, c, P) along the
 * positions: (N, c, P + L) each. */
void unet_text_kv(const unet_text_fwd *f, dfs_graph *g, dfs_tensor *w, dfs_tensor *b,
                  dfs_tensor **k, dfs_tensor **v);
/* Scores s (N, P, P + L) with -1e30 added at the padding tokens of each caption. */
dfs_tensor *unet_text_mask(const unet_text_fwd *f, dfs_graph *g, dfs_tensor *s);

#endif
