/* unet.c - the U-Net noise predictor of Ho et al. 2020 (appendix B), composed from engine ops.
 *
 * Layout and names follow the reference U-Net (docs/CHECKPOINTS.md): parameters are
 * declared in forward order with PyTorch state_dict names, so a PyTorch module of the same
 * architecture (tests/parity/torch_unet.py) loads a checkpoint as it is.
 *
 * Size key: N batch, C channels, H W spatial, E = 4 * base channels (time embedding width). */
#include "diffuse/nn.h"
#include "../engine/tape.h"
#include "../ops/ops.h"
#include "unet_text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCKS 8

typedef struct { dfs_tensor *w, *b; } affine; /* conv, linear or norm: weight and bias */

typedef struct {
    int cin, cout;
    affine norm1, conv1, temb, norm2, conv2, skip; /* skip.w == NULL when cin == cout */
} resblock;

typedef struct {
    int c;
    affine norm, qkv, proj;
    affine ctx; /* text models: Linear(d, 2c), the words' keys and values (src/nn/unet_text.c) */
} attnblock;

typedef struct {
    affine time0, time2;   /* time MLP: Linear(C, E), SiLU, Linear(E, E) */
    dfs_tensor *class_emb; /* (num_classes + 1, E) or NULL */
    affine stem;
    resblock down_res[DFS_MAX_LEVELS][MAX_BLOCKS];
    attnblock down_attn[DFS_MAX_LEVELS][MAX_BLOCKS];
    affine downsample[DFS_MAX_LEVELS];
    resblock mid1, mid2;
    attnblock mid_attn;
    resblock up_res[DFS_MAX_LEVELS][MAX_BLOCKS];
    attnblock up_attn[DFS_MAX_LEVELS][MAX_BLOCKS];
    affine upsample[DFS_MAX_LEVELS];
    affine out_norm, out_conv;
} unet_layers;

/* ---- configuration -------------------------------------------------------------------------- */

dfs_status dfs_unet_config_preset(dfs_unet_config *c, const char *name) {
    memset(c, 0, sizeof *c);
    c->groups = 8;
    c->enc_blocks = 2;
    c->dec_blocks = 3;
    if (strcmp(name, "fmnist") == 0) {
        /* the reference U-Net: 1,624,577 parameters (README, "The network") */
        c->image_size = 28;
        c->in_channels = 1;
        c->base_channels = 32;
        c->nlevels = 3;
        c->mult[0] = 1, c->mult[1] = 2, c->mult[2] = 2;
        c->attn[2] = 1;
        c->dropout = 0.1f;
        c->num_classes = 10;
        return DFS_OK;
    }
    if (strcmp(name, "small") == 0) {
        /* A quick model for tests and demos on 28x28 images (~0.2 M parameters). */
        c->image_size = 28;
        c->in_channels = 1;
        c->base_channels = 16;
        c->nlevels = 2;
        c->mult[0] = 1, c->mult[1] = 2;
        c->attn[1] = 1;
        c->enc_blocks = 1;
        c->dec_blocks = 2;
        c->groups = 4;
        c->dropout = 0.0f;
        c->num_classes = 10;
        return DFS_OK;
    }
    dfs_set_error("unknown preset '%s' (known: fmnist, small)", name);
    return DFS_ERR_ARG;
}

dfs_status dfs_unet_config_check(const dfs_unet_config *c) {
#define BAD(...)                                                                              \
    do {                                                                                      \
        dfs_set_error(__VA_ARGS__);                                                           \
        return DFS_ERR_ARG;                                                                   \
    } while (0)
    if (c->in_channels < 1 || c->in_channels > 4) BAD("in_channels must be 1..4, not %d", c->in_channels);
    if (c->nlevels < 1 || c->nlevels > DFS_MAX_LEVELS)
        BAD("levels must be 1..%d, not %d", DFS_MAX_LEVELS, c->nlevels);
    if (c->image_size < 1 || c->image_size > 1024) BAD("image size must be 1..1024, not %d", c->image_size);
    if (c->image_size % (1 << (c->nlevels - 1)))
        BAD("image size %d is not divisible by 2^(levels-1) = %d", c->image_size,
            1 << (c->nlevels - 1));
    if (c->groups < 1) BAD("groups must be >= 1");
    if (c->base_channels < 2 || c->base_channels % 2 || c->base_channels % c->groups)
        BAD("base channels %d must be even and divisible by groups %d", c->base_channels, c->groups);
    if (c->base_channels > 4096) BAD("base channels %d must be at most 4096", c->base_channels);
    for (int l = 0; l < c->nlevels; l++) {
        if (c->mult[l] < 1 || c->mult[l] > 64) BAD("channel multiplier %d of level %d must be 1..64", c->mult[l], l);
        if (c->base_channels * c->mult[l] > 4096) // also keeps 4 C (the time embedding) in int
            BAD("level %d has %d channels; at most 4096", l, c->base_channels * c->mult[l]);
    }
    /* self-attention holds a (tokens x tokens) matrix per image: past 64 x 64 tokens that is
     * gigabytes for one image (1024 x 1024 pixels with attention at 256 x 256: 17 GB) */
    for (int l = 0; l < c->nlevels; l++) {
        int r = c->image_size >> l, mid = l == c->nlevels - 1; // the middle block attends at the last
        if ((c->attn[l] || mid) && r * r > 4096)
            BAD("%s at level %d would span %d x %d = %d tokens; at most 4096 (64 x 64): more levels or a "
                "smaller image size",
                mid && !c->attn[l] ? "the middle block's attention" : "self-attention", l, r, r, r * r);
    }
    if (c->enc_blocks < 1 || c->enc_blocks > MAX_BLOCKS) BAD("blocks per level must be 1..%d", MAX_BLOCKS);
    if (c->dec_blocks != c->enc_blocks + 1)
        BAD("decoder blocks (%d) must be encoder blocks + 1 (%d): one per skip", c->dec_blocks, c->enc_blocks + 1);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f)) BAD("dropout must be in [0, 1)");
    if (c->num_classes < 0 || c->num_classes > 100000) BAD("number of classes must be 0..100000");
    if (unet_text_config_check(c) != DFS_OK) return DFS_ERR_ARG;
    return DFS_OK;
#undef BAD
}

/* ---- declaration and initialisation ---------------------------------------------------------- */

typedef struct {
    dfs_params *p;
    char prefix[128];
    int text_dim; /* d of a text model, else 0 */
} decl;

static dfs_tensor *add(decl *d, const char *suffix, int ndim, const int *shape) {
    char name[320];
    snprintf(name, sizeof name, "%s%s", d->prefix, suffix);
    return dfs_params_add(d->p, name, ndim, shape);
}

/* kind: 'c' conv (co, ci, k, k), 'l' linear (co, ci), 'n' norm (co) */
static affine declare(decl *d, const char *name, char kind, int ci, int co, int k) {
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    affine a;
    if (kind == 'c') a.w = add(d, w, 4, (int[]){co, ci, k, k});
    else if (kind == 'l') a.w = add(d, w, 2, (int[]){co, ci});
    else a.w = add(d, w, 1, (int[]){co});
    a.b = add(d, b, 1, (int[]){co});
    return a;
}

static resblock declare_res(decl *d, int cin, int cout, int E) {
    resblock r;
    memset(&r, 0, sizeof r);
    r.cin = cin;
    r.cout = cout;
    r.norm1 = declare(d, "norm1", 'n', 0, cin, 0);
    r.conv1 = declare(d, "conv1", 'c', cin, cout, 3);
    r.temb = declare(d, "temb", 'l', E, cout, 0);
    r.norm2 = declare(d, "norm2", 'n', 0, cout, 0);
    r.conv2 = declare(d, "conv2", 'c', cout, cout, 3);
    if (cin != cout) r.skip = declare(d, "skip", 'c', cin, cout, 1);
    return r;
}

static attnblock declare_attn(decl *d, int c) {
    attnblock a;
    a.c = c;
    a.norm = declare(d, "norm", 'n', 0, c, 0);
    a.qkv = declare(d, "qkv", 'c', c, 3 * c, 1);
    a.proj = declare(d, "proj", 'c', c, c, 1);
    a.ctx = d->text_dim ? declare(d, "ctx", 'l', d->text_dim, 2 * c, 0) : (affine){NULL, NULL};
    return a;
}

#define PREFIX(d, ...) snprintf((d)->prefix, sizeof (d)->prefix, __VA_ARGS__)

static void declare_all(unet_layers *L, const dfs_unet_config *c, dfs_params *p) {
    decl d = {.p = p, .text_dim = c->text.dim};
    const int C = c->base_channels, E = 4 * C;
    d.prefix[0] = 0;
    L->time0 = declare(&d, "time_mlp.0", 'l', C, E, 0);
    L->time2 = declare(&d, "time_mlp.2", 'l', E, E, 0);
    L->class_emb = c->num_classes > 0 ? add(&d, "class_emb.weight", 2, (int[]){c->num_classes + 1, E}) : NULL;
    L->stem = declare(&d, "stem", 'c', c->in_channels, C, 3);

    int skips[DFS_MAX_LEVELS * (MAX_BLOCKS + 1) + 1], ns = 0;
    int ch = C;
    skips[ns++] = ch;
    for (int l = 0; l < c->nlevels; l++) {
        int co = C * c->mult[l];
        for (int b = 0; b < c->enc_blocks; b++) {
            PREFIX(&d, "down.%d.res.%d.", l, b);
            L->down_res[l][b] = declare_res(&d, ch, co, E);
            ch = co;
            if (c->attn[l]) {
                PREFIX(&d, "down.%d.attn.%d.", l, b);
                L->down_attn[l][b] = declare_attn(&d, ch);
            }
            skips[ns++] = ch;
        }
        if (l < c->nlevels - 1) {
            PREFIX(&d, "down.%d.", l);
            L->downsample[l] = declare(&d, "downsample", 'c', ch, ch, 3);
            skips[ns++] = ch;
        }
    }
    PREFIX(&d, "mid.res1.");
    L->mid1 = declare_res(&d, ch, ch, E);
    PREFIX(&d, "mid.attn.");
    L->mid_attn = declare_attn(&d, ch);
    PREFIX(&d, "mid.res2.");
    L->mid2 = declare_res(&d, ch, ch, E);
    for (int l = c->nlevels - 1; l >= 0; l--) {
        int co = C * c->mult[l];
        for (int b = 0; b < c->dec_blocks; b++) {
            int sc = skips[--ns];
            PREFIX(&d, "up.%d.res.%d.", l, b);
            L->up_res[l][b] = declare_res(&d, ch + sc, co, E);
            ch = co;
            if (c->attn[l]) {
                PREFIX(&d, "up.%d.attn.%d.", l, b);
                L->up_attn[l][b] = declare_attn(&d, ch);
            }
        }
        if (l > 0) {
            PREFIX(&d, "up.%d.", l);
            L->upsample[l] = declare(&d, "upsample", 'c', ch, ch, 3);
        }
    }
    DFS_ASSERT(ns == 0);
    d.prefix[0] = 0;
    L->out_norm = declare(&d, "out_norm", 'n', 0, ch, 0);
    L->out_conv = declare(&d, "out_conv", 'c', ch, c->in_channels, 3);
}

/* PyTorch's defaults, so that training from scratch behaves like the reference: Conv2d and
 * Linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a =
 * sqrt(5)), norms weight 1 bias 0, embeddings N(0, 1). */
static void init_params(dfs_params *p, dfs_rng *rng) {
    for (int i = 0; i < p->count; i++) {
        dfs_tensor *t = p->t[i];
        const char *name = t->name;
        size_t len = strlen(name);
        int is_bias = len >= 5 && strcmp(name + len - 5, ".bias") == 0;
        int is_norm = strstr(name, "norm") != NULL;
        if (strcmp(name, "class_emb.weight") == 0) {
            dfs_rng_fill_normal(rng, t->data, t->n);
        } else if (is_norm) {
            for (size_t k = 0; k < t->n; k++) t->data[k] = is_bias ? 0.0f : 1.0f;
        } else {
            /* fan_in from the weight of the same layer: bias follows its weight */
            const dfs_tensor *w = is_bias ? p->t[i - 1] : t;
            size_t fan_in = w->n / (size_t)w->shape[0];
            float bound = 1.0f / sqrtf((float)fan_in);
            for (size_t k = 0; k < t->n; k++) t->data[k] = bound * (2.0f * dfs_rng_uniform(rng) - 1.0f);
        }
    }
}

/* Every parameter declared, none allocated yet (dfs_params_finalize does that). */
static dfs_unet *unet_declare(const dfs_unet_config *c) {
    if (dfs_unet_config_check(c) != DFS_OK) return NULL;
    dfs_unet *u = calloc(1, sizeof *u);
    unet_layers *L = calloc(1, sizeof *L);
    dfs_params *p = dfs_params_new();
    if (!u || !L || !p) {
        free(u), free(L), dfs_params_free(p);
        dfs_set_error("out of memory for the U-Net");
        return NULL;
    }
    u->cfg = *c;
    u->impl = L;
    u->params = p;
    declare_all(L, c, p);
    if (c->text.dim > 0 && !(u->text = unet_text_declare(p, c))) { /* "text.*", "text_proj" last */
        dfs_unet_free(u);
        return NULL;
    }
    return u;
}

dfs_unet *dfs_unet_new(const dfs_unet_config *c, dfs_rng *rng) {
    dfs_unet *u = unet_declare(c);
    if (!u) return NULL;
    dfs_params *p = u->params;
    if (dfs_params_finalize(p) != DFS_OK) {
        dfs_unet_free(u);
        return NULL;
    }
    init_params(p, rng);
    if (u->text) unet_text_init(u->text, rng);
    dfs_params_ema_init(p);
    return u;
}

size_t dfs_unet_param_count(const dfs_unet_config *c) {
    dfs_unet *u = unet_declare(c);
    size_t n = u ? u->params->n : 0;
    dfs_unet_free(u);
    return n;
}

void dfs_unet_free(dfs_unet *u) {
    if (!u) return;
    unet_text_free(u->text);
    dfs_params_free(u->params);
    free(u->impl);
    free(u);
}

/* ---- forward ------------------------------------------------------------------------------- */

typedef struct {
    dfs_graph *g;
    const dfs_unet_config *c;
    dfs_tensor *temb_act; /* SiLU(temb) (N, E), shared by every ResBlock's projection */
    unet_text_fwd *text;  /* text models: the batch's encoded captions, else NULL */
} fwd;

/* ResBlock (docs/CHECKPOINTS.md): h = Conv3(SiLU(GN(x))) + Linear(SiLU(temb));
 * h = Conv3(Dropout(SiLU(GN(h)))); out = h + skip(x). In the decoder x is the concatenation
 * [x, x2] of the previous output and the encoder's skip tensor. Each line is one fused op
 * (dfs_conv2d_fused: the norm, activation, dropout and adds run inside the convolution). */
static dfs_tensor *res_forward(fwd *f, const resblock *r, dfs_tensor *x, dfs_tensor *x2) {
    dfs_graph *g = f->g;
    const int G = f->c->groups;
    dfs_tensor *tp = dfs_linear(g, f->temb_act, r->temb.w, r->temb.b); /* (N, cout) */
    const dfs_conv_fused c1 = {.x2 = x2, .norm = 2, .gamma = r->norm1.w, .beta = r->norm1.b,
                               .groups = G, .eps = 1e-5f, .up = 1, .tadd = tp};
    dfs_tensor *h = dfs_conv2d_fused(g, x, r->conv1.w, r->conv1.b, &c1);
    dfs_tensor_release_dead(g, tp); /* its backward reads no values: only dtadd is written */
    dfs_tensor *s = x;
    if (r->skip.w) {
        const dfs_conv_fused cs = {.x2 = x2, .up = 1};
        s = dfs_conv2d_fused(g, x, r->skip.w, r->skip.b, &cs);
    }
    DFS_ASSERT(s != x || !x2);
    const dfs_conv_fused c2 = {.norm = 2, .gamma = r->norm2.w, .beta = r->norm2.b, .groups = G,
                               .eps = 1e-5f, .dropout = f->c->dropout, .up = 1, .res = s};
    dfs_tensor *out = dfs_conv2d_fused(g, h, r->conv2.w, r->conv2.b, &c2);
    dfs_tensor_release(g, h);
    if (s != x) dfs_tensor_release_dead(g, s); /* only added: no backward reads it */
    return out;
}

/* Single-head self-attention over the H*W positions (Vaswani et al. 2017, eq. 1). */
static dfs_tensor *attn_forward(fwd *f, const attnblock *a, dfs_tensor *x) {
    dfs_graph *g = f->g;
    const int N = x->shape[0], c = a->c, H = x->shape[2], W = x->shape[3], P = H * W;
    const dfs_conv_fused cq = {.norm = 1, .gamma = a->norm.w, .beta = a->norm.b,
                               .groups = f->c->groups, .eps = 1e-5f, .up = 1};
    dfs_tensor *qkv4 = dfs_conv2d_fused(g, x, a->qkv.w, a->qkv.b, &cq);      /* (N, 3c, H, W) */
    dfs_tensor *qkv = dfs_reshape(g, qkv4, 3, (int[]){N, 3 * c, P});
    dfs_tensor *q = dfs_slice(g, qkv, 1, 0, c);                              /* (N, c, P) */
    dfs_tensor *k = dfs_slice(g, qkv, 1, c, c);
    dfs_tensor *v = dfs_slice(g, qkv, 1, 2 * c, c);
    dfs_tensor_release_dead(g, qkv4); /* only sliced */
    if (f->text) unet_text_kv(f->text, g, a->ctx.w, a->ctx.b, &k, &v); /* GLIDE: + words */
    dfs_tensor *qk = dfs_bmm(g, q, k, 1, 0);                                 /* (N, P, P) */
    dfs_tensor_release(g, q);
    dfs_tensor_release(g, k);
    dfs_tensor *s = dfs_scale(g, qk, 1.0f / sqrtf((float)c));
    dfs_tensor_release_dead(g, qk); /* scale's backward reads no values */
    if (f->text) s = unet_text_mask(f->text, g, s); /* padding words: -1e30 */
    dfs_tensor *att = dfs_softmax(g, s);                                      /* over keys j */
    dfs_tensor_release_dead(g, s);  /* softmax's backward reads its output, not its input */
    dfs_tensor *o3 = dfs_bmm(g, v, att, 0, 1);                                /* (N, c, P) */
    dfs_tensor_release(g, v);
    dfs_tensor_release(g, att);
    dfs_tensor *o = dfs_reshape(g, o3, 4, (int[]){N, c, H, W});
    const dfs_conv_fused cp = {.up = 1, .res = x};                            /* x + proj(o) */
    dfs_tensor *out = dfs_conv2d_fused(g, o, a->proj.w, a->proj.b, &cp);
    dfs_tensor_release(g, o3);
    return out;
}

/* The output of one block once the next has consumed it: released without recording (the
 * arena reuses its memory), kept while recording (backward needs it). */
static dfs_tensor *then_release(dfs_graph *g, dfs_tensor *out, dfs_tensor *consumed) {
    dfs_tensor_release(g, consumed);
    return out;
}

dfs_tensor *dfs_unet_forward(dfs_unet *u, dfs_graph *g, dfs_tensor *x, const int *t,
                             const int *labels) {
    const dfs_unet_config *c = &u->cfg;
    unet_layers *L = u->impl;
    const int N = x->shape[0], C = c->base_channels;
    DFS_ASSERT(x->ndim == 4 && x->shape[1] == c->in_channels && x->shape[2] == c->image_size &&
               x->shape[3] == c->image_size);
    fwd f = {.g = g, .c = c};

    /* temb = Linear(SiLU(Linear(sinusoidal(t)))) + class row */
    dfs_tensor *temb = dfs_timestep_embedding(g, t, N, C);
    temb = dfs_linear(g, dfs_silu(g, dfs_linear(g, temb, L->time0.w, L->time0.b)), L->time2.w,
                      L->time2.b);
    if (L->class_emb) {
        int *lab = dfs_graph_alloc(g, (size_t)N * sizeof(int));
        for (int i = 0; i < N; i++) {
            lab[i] = labels ? labels[i] : c->num_classes;
            DFS_ASSERT(lab[i] >= 0 && lab[i] <= c->num_classes);
        }
        temb = dfs_add(g, temb, dfs_embedding(g, L->class_emb, lab, N));
    }
    if (u->text) temb = unet_text_begin(u->text, g, labels, N, temb, &f.text); /* + text_proj */
    f.temb_act = dfs_silu(g, temb);

    dfs_tensor *stack[DFS_MAX_LEVELS * (MAX_BLOCKS + 1) + 1];
    int ns = 0;
    dfs_tensor *h = dfs_conv2d(g, x, L->stem.w, L->stem.b, 1, 1);
    stack[ns++] = h;
    /* Inference releases every tensor once nothing reads it any more: the encoder's outputs
     * (the skip stack) when the decoder has used them, everything else at once. */
    for (int l = 0; l < c->nlevels; l++) {
        for (int b = 0; b < c->enc_blocks; b++) {
            h = res_forward(&f, &L->down_res[l][b], h, NULL);
            if (c->attn[l]) h = then_release(g, attn_forward(&f, &L->down_attn[l][b], h), h);
            stack[ns++] = h;
        }
        if (l < c->nlevels - 1) {
            h = dfs_conv2d(g, h, L->downsample[l].w, L->downsample[l].b, 2, 1);
            stack[ns++] = h;
        }
    }
    h = res_forward(&f, &L->mid1, h, NULL); /* its input stays on the stack */
    h = then_release(g, attn_forward(&f, &L->mid_attn, h), h);
    h = then_release(g, res_forward(&f, &L->mid2, h, NULL), h);
    for (int l = c->nlevels - 1; l >= 0; l--) {
        for (int b = 0; b < c->dec_blocks; b++) {
            dfs_tensor *skip = stack[--ns];
            h = then_release(g, res_forward(&f, &L->up_res[l][b], h, skip), h); /* on [h, skip] */
            dfs_tensor_release(g, skip);
            if (c->attn[l]) h = then_release(g, attn_forward(&f, &L->up_attn[l][b], h), h);
        }
        if (l > 0) {
            const dfs_conv_fused cu = {.up = 2}; /* nearest 2x, then Conv3 */
            h = then_release(g, dfs_conv2d_fused(g, h, L->upsample[l].w, L->upsample[l].b, &cu), h);
        }
    }
    DFS_ASSERT(ns == 0);
    const dfs_conv_fused co = {.norm = 2, .gamma = L->out_norm.w, .beta = L->out_norm.b,
                               .groups = c->groups, .eps = 1e-5f, .up = 1};
    return then_release(g, dfs_conv2d_fused(g, h, L->out_conv.w, L->out_conv.b, &co), h);
}

/* ---- cost ---------------------------------------------------------------------------------- */

static double conv_flops(int ci, int co, int k, int hw) { return 2.0 * ci * co * k * k * hw; }

static double res_flops(int ci, int co, int hw, int E) {
    double f = conv_flops(ci, co, 3, hw) + conv_flops(co, co, 3, hw) + 2.0 * E * co;
    if (ci != co) f += conv_flops(ci, co, 1, hw);
    return f;
}

/* self-attention over hw positions; with a text model (L tokens of width d) also the words'
 * keys and values, Linear(d, 2c) on each token, and L more keys for every query */
static double attn_flops(int c, int hw, int L, int d) {
    return conv_flops(c, 3 * c, 1, hw) + conv_flops(c, c, 1, hw) + 2.0 * 2.0 * c * hw * (hw + L) +
           2.0 * L * d * 2 * c;
}

/* the text encoder (src/nn/text.c) on L tokens: per layer Q, K, V and output projections, the
 * attention scores and sums, and the 4x MLP; then text_proj (d -> E) of the pooled vector */
static double text_flops(const dfs_text_config *t, int E) {
    const double L = t->max_len, d = t->dim;
    return t->layers * (2.0 * L * d * 4 * d + 2.0 * 2.0 * L * L * d + 2.0 * L * d * 8 * d) + 2.0 * d * E;
}

double dfs_unet_flops(const dfs_unet_config *c) {
    const int C = c->base_channels, E = 4 * C;
    double f = 2.0 * C * E + 2.0 * E * E;
    const int L = c->text.dim ? c->text.max_len : 0, d = c->text.dim;
    if (d) f += text_flops(&c->text, E);
    int s = c->image_size, ch = C;
    f += conv_flops(c->in_channels, C, 3, s * s);
    int skips[DFS_MAX_LEVELS * (MAX_BLOCKS + 1) + 1], ns = 0;
    skips[ns++] = ch;
    for (int l = 0; l < c->nlevels; l++) {
        int co = C * c->mult[l];
        for (int b = 0; b < c->enc_blocks; b++) {
            f += res_flops(ch, co, s * s, E);
            ch = co;
            if (c->attn[l]) f += attn_flops(ch, s * s, L, d);
            skips[ns++] = ch;
        }
        if (l < c->nlevels - 1) {
            s /= 2;
            f += conv_flops(ch, ch, 3, s * s);
            skips[ns++] = ch;
        }
    }
    f += 2 * res_flops(ch, ch, s * s, E) + attn_flops(ch, s * s, L, d);
    for (int l = c->nlevels - 1; l >= 0; l--) {
        int co = C * c->mult[l];
        for (int b = 0; b < c->dec_blocks; b++) {
            f += res_flops(ch + skips[--ns], co, s * s, E);
            ch = co;
            if (c->attn[l]) f += attn_flops(ch, s * s, L, d);
        }
        if (l > 0) {
            s *= 2;
            f += conv_flops(ch, ch, 3, s * s);
        }
    }
    f += conv_flops(ch, c->in_channels, 3, s * s);
    return f;
}
