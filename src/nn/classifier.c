/* classifier.c - a small CNN image classifier, trained with the engine, whose penultimate layer
 * is the feature space for Frechet distances of samples and whose predictions give the class
 * accuracy of class-conditional samples (docs/CLASSIFIER.md).
 *
 * Architecture (include/diffuse/nn.h, "Image classifier"): five 3x3 convolutions, each followed by
 * GroupNorm and SiLU (Wu & He 2018; Elfwing et al. 2018), three of them with stride 2 in place
 * of pooling (Springenberg et al. 2015, "Striving for simplicity"), the 4x4 map flattened into a
 * feature layer Linear(c2 * 16, F) + SiLU, and a Linear(F, K) head. Flattening keeps where
 * things are in the image; with global average pooling in its place the same network reached
 * only 87-89% on Fashion-MNIST in 2-3 epochs instead of 91-92% (docs/CLASSIFIER.md).
 *
 * Parameters are declared in forward order with PyTorch state_dict names ("conv0.weight",
 * "norm0.weight", ..., "feature.weight", "head.weight"), so tests/parity/torch_classifier.py can
 * load a file as it is.
 *
 * Size key: N batch, C channels, S image side, K classes, F features, B training batch. */
#include "diffuse/nn.h"
#include "../engine/tape.h"
#include "../io/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_NAME "diffuse-classifier-1"
#define ARCH_NAME "cnn5-flat"
#define NCONV 5
#define GN_EPS 1e-5f
#define FEATURE_LAYER_DOC                                                                          \
    "features = silu(feature.weight @ flatten(conv stack) + feature.bias), the input of the "      \
    "head (penultimate layer)"

typedef struct {
    dfs_tensor *w, *b;
} affine;

typedef struct {
    affine conv[NCONV], norm[NCONV];
    affine feature, head;
    float *xbuf;   /* (max_batch, C, S, S) floats for forward_u8, allocated on first use */
    float *logits; /* (max_batch, K) for evaluate, allocated on first use */
} layers;

/* stride of conv i: the second, fourth and fifth halve the image (rounding up) */
static const int conv_stride[NCONV] = {1, 2, 1, 2, 2};

/* channels out of conv i */
static int conv_out(const dfs_classifier_config *c, int i) {
    static const int level[NCONV] = {0, 1, 1, 2, 2};
    return c->channels[level[i]];
}

/* side of the last feature map: three stride-2, pad-1 3x3 convs map s to ceil(s / 2) each */
static int final_side(int s) {
    for (int i = 0; i < NCONV; i++)
        if (conv_stride[i] == 2) s = (s + 1) / 2;
    return s;
}

/* ---- configuration ------------------------------------------------------------------------ */

void dfs_classifier_config_default(dfs_classifier_config *c) {
    memset(c, 0, sizeof *c);
    c->image_size = 28;
    c->in_channels = 1;
    c->num_classes = 10;
    c->channels[0] = 16;
    c->channels[1] = 32;
    c->channels[2] = 64;
    c->feature_dim = 128;
    c->groups = 8;
}

dfs_status dfs_classifier_config_check(const dfs_classifier_config *c) {
#define BAD(...)                                                                                   \
    do {                                                                                           \
        dfs_set_error(__VA_ARGS__);                                                                \
        return DFS_ERR_ARG;                                                                        \
    } while (0)
    if (!c) BAD("classifier config is NULL");
    if (c->image_size < 8 || c->image_size > 1024)
        BAD("classifier image size must be 8..1024, not %d", c->image_size);
    if (c->in_channels != 1 && c->in_channels != 3)
        BAD("classifier input channels must be 1 or 3, not %d", c->in_channels);
    if (c->num_classes < 2 || c->num_classes > 10000)
        BAD("classifier classes must be 2..10000, not %d", c->num_classes);
    if (c->feature_dim < 1 || c->feature_dim > 65536)
        BAD("classifier feature size must be 1..65536, not %d", c->feature_dim);
    if (c->groups < 1) BAD("classifier GroupNorm groups must be >= 1, not %d", c->groups);
    for (int l = 0; l < 3; l++) {
        if (c->channels[l] < 1 || c->channels[l] > 4096)
            BAD("classifier channels[%d] must be 1..4096, not %d", l, c->channels[l]);
        if (c->channels[l] % c->groups)
            BAD("classifier channels[%d] = %d is not divisible by %d groups", l, c->channels[l],
                c->groups);
    }
    size_t s3 = (size_t)final_side(c->image_size);
    if ((size_t)c->channels[2] * s3 * s3 * (size_t)c->feature_dim > ((size_t)1 << 28))
        BAD("classifier feature layer too large: %d x %d x %zu x %zu weights", c->feature_dim,
            c->channels[2], s3, s3);
    return DFS_OK;
#undef BAD
}

/* ---- construction -------------------------------------------------------------------------- */

static affine declare(dfs_params *p, const char *name, int ndim, const int *wshape, int co) {
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    affine a;
    a.w = dfs_params_add(p, w, ndim, wshape);
    a.b = dfs_params_add(p, b, 1, (int[]){co});
    return a;
}

/* PyTorch's defaults (torch.nn.Conv2d / Linear reset_parameters: kaiming_uniform with a =
 * sqrt(5), i.e. weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); GroupNorm weight 1,
 * bias 0). */
static void init_affine(affine a, dfs_rng *rng) {
    size_t fan_in = a.w->n / (size_t)a.w->shape[0];
    float bound = 1.0f / sqrtf((float)fan_in);
    for (size_t k = 0; k < a.w->n; k++)
        a.w->data[k] = bound * (2.0f * dfs_rng_uniform(rng) - 1.0f);
    for (size_t k = 0; k < a.b->n; k++)
        a.b->data[k] = bound * (2.0f * dfs_rng_uniform(rng) - 1.0f);
}

void dfs_classifier_free(dfs_classifier *c) {
    if (!c) return;
    layers *L = c->impl;
    if (L) {
        free(L->xbuf);
        free(L->logits);
        free(L);
    }
    dfs_params_free(c->params);
    dfs_graph_free(c->g);
    free(c);
}

dfs_status dfs_classifier_new(dfs_classifier **out, const dfs_classifier_config *cfg,
                              uint64_t seed) {
    if (!out) {
        dfs_set_error("dfs_classifier_new: out is NULL");
        return DFS_ERR_ARG;
    }
    *out = NULL;
    dfs_status s = dfs_classifier_config_check(cfg);
    if (s != DFS_OK) return s;
    dfs_classifier *c = calloc(1, sizeof *c);
    layers *L = calloc(1, sizeof *L);
    if (!c || !L) {
        free(c), free(L);
        dfs_set_error("out of memory for the classifier");
        return DFS_ERR_NOMEM;
    }
    c->cfg = *cfg;
    c->impl = L;
    c->max_batch = 64;
    c->test_accuracy = -1.0;
    c->params = dfs_params_new();
    c->g = dfs_graph_new();
    if (!c->params || !c->g) {
        dfs_classifier_free(c);
        dfs_set_error("out of memory for the classifier");
        return DFS_ERR_NOMEM;
    }
    dfs_params *p = c->params;
    char name[32];
    int ci = cfg->in_channels;
    for (int i = 0; i < NCONV; i++) {
        int co = conv_out(cfg, i);
        snprintf(name, sizeof name, "conv%d", i);
        L->conv[i] = declare(p, name, 4, (int[]){co, ci, 3, 3}, co);
        snprintf(name, sizeof name, "norm%d", i);
        L->norm[i] = declare(p, name, 1, (int[]){co}, co);
        ci = co;
    }
    const int s3 = final_side(cfg->image_size);
    L->feature =
        declare(p, "feature", 2, (int[]){cfg->feature_dim, ci * s3 * s3}, cfg->feature_dim);
    L->head = declare(p, "head", 2, (int[]){cfg->num_classes, cfg->feature_dim}, cfg->num_classes);
    if ((s = dfs_params_finalize(p)) != DFS_OK) {
        dfs_classifier_free(c);
        return s;
    }
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    for (int i = 0; i < NCONV; i++) {
        init_affine(L->conv[i], &rng);
        for (size_t k = 0; k < L->norm[i].w->n; k++)
            L->norm[i].w->data[k] = 1.0f;
        memset(L->norm[i].b->data, 0, L->norm[i].b->n * sizeof(float));
    }
    init_affine(L->feature, &rng);
    init_affine(L->head, &rng);
    *out = c;
    return DFS_OK;
}

/* ---- forward -------------------------------------------------------------------------------- */

dfs_tensor *dfs_classifier_graph(dfs_classifier *c, dfs_graph *g, dfs_tensor *x,
                                 dfs_tensor **features) {
    const dfs_classifier_config *cfg = &c->cfg;
    DFS_ASSERT(x && x->ndim == 4 && x->shape[1] == cfg->in_channels &&
               x->shape[2] == cfg->image_size && x->shape[3] == cfg->image_size);
    layers *L = c->impl;
    dfs_tensor *h = x; // (N, C, S, S)
    for (int i = 0; i < NCONV; i++) {
        h = dfs_conv2d(g, h, L->conv[i].w, L->conv[i].b, conv_stride[i], 1);
        h = dfs_group_norm_silu(g, h, L->norm[i].w, L->norm[i].b, cfg->groups, GN_EPS);
    }
    const int N = x->shape[0], s3 = final_side(cfg->image_size);
    h = dfs_reshape(g, h, 2, (int[]){N, cfg->channels[2] * s3 * s3});          // (N, c2 S3 S3)
    dfs_tensor *f = dfs_silu(g, dfs_linear(g, h, L->feature.w, L->feature.b)); // (N, F)
    if (features) *features = f;
    return dfs_linear(g, f, L->head.w, L->head.b); // (N, K)
}

static size_t image_dim(const dfs_classifier_config *c) {
    return (size_t)c->in_channels * c->image_size * c->image_size;
}

/* One no-grad pass over nb <= max_batch images at x. DFS_ERR_NOMEM (with the error set) when
 * the activations do not fit: the allocation jumps back here. */
static dfs_status forward_chunk(dfs_classifier *c, const float *x, int nb, float *logits,
                                float *features) {
    const dfs_classifier_config *cfg = &c->cfg;
    dfs_graph *g = c->g;
    dfs_graph_reset(g);
    jmp_buf jb;
    DFS_RETURN_ON_OOM(g, jb);
    dfs_graph_set_grad(g, 0);
    dfs_graph_set_training(g, 0, NULL);
    dfs_tensor *xt = dfs_tensor_wrap(
        g, (float *)x, 4, (int[]){nb, cfg->in_channels, cfg->image_size, cfg->image_size});
    dfs_tensor *f = NULL;
    dfs_tensor *y = dfs_classifier_graph(c, g, xt, &f);
    if (logits) memcpy(logits, y->data, (size_t)nb * cfg->num_classes * sizeof(float));
    if (features) memcpy(features, f->data, (size_t)nb * cfg->feature_dim * sizeof(float));
    dfs_graph_set_oom_jump(g, NULL);
    return DFS_OK;
}

static dfs_status check_forward_args(dfs_classifier *c, const void *x, int n, float *logits,
                                     float *features) {
    if (!c || n < 0 || (n > 0 && !x) || (!logits && !features)) {
        dfs_set_error("classifier forward: bad arguments (n = %d, %s)", n,
                      !logits && !features ? "no output asked for" : "NULL input");
        return DFS_ERR_ARG;
    }
    if (c->max_batch < 1) {
        dfs_set_error("classifier forward: max_batch must be >= 1, not %d", c->max_batch);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

dfs_status dfs_classifier_forward(dfs_classifier *c, const float *x, int n, float *logits,
                                  float *features) {
    dfs_status s = check_forward_args(c, x, n, logits, features);
    if (s != DFS_OK) return s;
    const size_t dim = image_dim(&c->cfg);
    const int K = c->cfg.num_classes, F = c->cfg.feature_dim;
    for (int i = 0; i < n && s == DFS_OK; i += c->max_batch) {
        int nb = n - i < c->max_batch ? n - i : c->max_batch;
        s = forward_chunk(c, x + (size_t)i * dim, nb, logits ? logits + (size_t)i * K : NULL,
                          features ? features + (size_t)i * F : NULL);
    }
    dfs_graph_reset(c->g);
    return s;
}

dfs_status dfs_classifier_forward_u8(dfs_classifier *c, const uint8_t *pixels, int n, float *logits,
                                     float *features) {
    dfs_status s = check_forward_args(c, pixels, n, logits, features);
    if (s != DFS_OK) return s;
    layers *L = c->impl;
    const size_t dim = image_dim(&c->cfg);
    const int K = c->cfg.num_classes, F = c->cfg.feature_dim;
    if (!L->xbuf && !(L->xbuf = malloc((size_t)c->max_batch * dim * sizeof(float)))) {
        dfs_set_error("out of memory for a batch of %d images", c->max_batch);
        return DFS_ERR_NOMEM;
    }
    for (int i = 0; i < n && s == DFS_OK; i += c->max_batch) {
        int nb = n - i < c->max_batch ? n - i : c->max_batch;
        const uint8_t *p = pixels + (size_t)i * dim;
        for (size_t k = 0; k < (size_t)nb * dim; k++)
            L->xbuf[k] = p[k] / 127.5f - 1.0f;
        s = forward_chunk(c, L->xbuf, nb, logits ? logits + (size_t)i * K : NULL,
                          features ? features + (size_t)i * F : NULL);
    }
    dfs_graph_reset(c->g);
    return s;
}

/* The data set fits the model and its labels are in [0, K). */
static dfs_status check_data(const dfs_classifier *c, const dfs_dataset *d, const char *what) {
    const dfs_classifier_config *cfg = &c->cfg;
    if (!d || d->n < 1 || !d->pixels) {
        dfs_set_error("%s: the data set is empty", what);
        return DFS_ERR_ARG;
    }
    if (d->c != cfg->in_channels || d->h != cfg->image_size || d->w != cfg->image_size) {
        dfs_set_error("%s: data are %dx%dx%d images but the classifier takes %dx%dx%d", what, d->c,
                      d->h, d->w, cfg->in_channels, cfg->image_size, cfg->image_size);
        return DFS_ERR_SHAPE;
    }
    if (!d->labels) {
        dfs_set_error("%s: the data set has no labels", what);
        return DFS_ERR_ARG;
    }
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= cfg->num_classes) {
            dfs_set_error("%s: image %d has label %d, outside the classifier's 0..%d", what, i,
                          d->labels[i], cfg->num_classes - 1);
            return DFS_ERR_ARG;
        }
    return DFS_OK;
}

static int argmax(const float *z, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

dfs_status dfs_classifier_evaluate(dfs_classifier *c, const dfs_dataset *d, double *accuracy,
                                   int *confusion) {
    if (!c) {
        dfs_set_error("classifier evaluate: NULL classifier");
        return DFS_ERR_ARG;
    }
    dfs_status s = check_data(c, d, "classifier evaluate");
    if (s != DFS_OK) return s;
    layers *L = c->impl;
    const int K = c->cfg.num_classes;
    const size_t dim = image_dim(&c->cfg);
    if (!L->logits && !(L->logits = malloc((size_t)c->max_batch * K * sizeof(float)))) {
        dfs_set_error("out of memory for logits");
        return DFS_ERR_NOMEM;
    }
    if (confusion) memset(confusion, 0, (size_t)K * K * sizeof(int));
    long correct = 0;
    for (int i = 0; i < d->n; i += c->max_batch) {
        int nb = d->n - i < c->max_batch ? d->n - i : c->max_batch;
        s = dfs_classifier_forward_u8(c, d->pixels + (size_t)i * dim, nb, L->logits, NULL);
        if (s != DFS_OK) return s;
        for (int j = 0; j < nb; j++) {
            int pred = argmax(L->logits + (size_t)j * K, K), truth = d->labels[i + j];
            correct += pred == truth;
            if (confusion) confusion[truth * K + pred]++;
        }
    }
    if (accuracy) *accuracy = (double)correct / d->n;
    return DFS_OK;
}

/* ---- files ---------------------------------------------------------------------------------- */

static char *config_json(const dfs_classifier_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arch", ARCH_NAME);
    cJSON_AddNumberToObject(o, "image_size", c->image_size);
    cJSON_AddNumberToObject(o, "in_channels", c->in_channels);
    cJSON_AddNumberToObject(o, "num_classes", c->num_classes);
    cJSON_AddItemToObject(o, "channels", cJSON_CreateIntArray(c->channels, 3));
    cJSON_AddNumberToObject(o, "feature_dim", c->feature_dim);
    cJSON_AddNumberToObject(o, "groups", c->groups);
    cJSON_AddStringToObject(o, "input", "pixel / 127.5 - 1");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int json_int(const cJSON *o, const char *key, int *out) {
    return dfs_json_int(cJSON_GetObjectItemCaseSensitive(o, key), out);
}

static dfs_status parse_config(const char *path, const char *json, dfs_classifier_config *c) {
    memset(c, 0, sizeof *c);
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *arch = o ? cJSON_GetObjectItemCaseSensitive(o, "arch") : NULL;
    const cJSON *ch = o ? cJSON_GetObjectItemCaseSensitive(o, "channels") : NULL;
    int ok = o && cJSON_IsString(arch) && json_int(o, "image_size", &c->image_size) &&
             json_int(o, "in_channels", &c->in_channels) &&
             json_int(o, "num_classes", &c->num_classes) &&
             json_int(o, "feature_dim", &c->feature_dim) && json_int(o, "groups", &c->groups) &&
             cJSON_IsArray(ch) && cJSON_GetArraySize(ch) == 3;
    for (int l = 0; ok && l < 3; l++) {
        ok = dfs_json_int(cJSON_GetArrayItem(ch, l), &c->channels[l]);
    }
    int arch_ok = ok && strcmp(arch->valuestring, ARCH_NAME) == 0;
    char arch_name[64] = "";
    if (ok && !arch_ok) snprintf(arch_name, sizeof arch_name, "%s", arch->valuestring);
    cJSON_Delete(o);
    if (!ok) {
        dfs_set_error("%s: missing or malformed \"classifier\" metadata", path);
        return DFS_ERR_FORMAT;
    }
    if (!arch_ok) {
        dfs_set_error("%s: unknown classifier architecture \"%s\" (this build knows %s)", path,
                      arch_name, ARCH_NAME);
        return DFS_ERR_FORMAT;
    }
    if (dfs_classifier_config_check(c) != DFS_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dfs_last_error());
        dfs_set_error("%s: bad classifier configuration: %s", path, msg);
        return DFS_ERR_FORMAT;
    }
    return DFS_OK;
}

dfs_status dfs_classifier_save(const char *path, const dfs_classifier *c, const char *train_json) {
    if (!path || !c) {
        dfs_set_error("classifier save: NULL %s", path ? "classifier" : "path");
        return DFS_ERR_ARG;
    }
    const dfs_params *p = c->params;
    dfs_st_writer *w = dfs_st_writer_new();
    if (!w) {
        dfs_set_error("out of memory");
        return DFS_ERR_NOMEM;
    }
    dfs_status s = DFS_OK;
    for (int i = 0; i < p->count && s == DFS_OK; i++) {
        const dfs_tensor *t = p->t[i];
        int64_t shape[DFS_MAXDIM];
        for (int k = 0; k < t->ndim; k++)
            shape[k] = t->shape[k];
        s = dfs_st_writer_add(w, t->name, DFS_DT_F32, t->ndim, shape, t->data);
    }
    char *cj = config_json(&c->cfg);
    char acc[32];
    if (s == DFS_OK) s = dfs_st_writer_meta(w, "format", FORMAT_NAME);
    if (s == DFS_OK) s = cj ? dfs_st_writer_meta(w, "classifier", cj) : DFS_ERR_NOMEM;
    if (s == DFS_OK) s = dfs_st_writer_meta(w, "feature_layer", FEATURE_LAYER_DOC);
    if (s == DFS_OK && c->test_accuracy >= 0) {
        snprintf(acc, sizeof acc, "%.4f", c->test_accuracy);
        s = dfs_st_writer_meta(w, "test_accuracy", acc);
    }
    if (s == DFS_OK && train_json) s = dfs_st_writer_meta(w, "train", train_json);
    if (s == DFS_OK)
        s = dfs_st_writer_write(w, path);
    else if (s == DFS_ERR_NOMEM)
        dfs_set_error("out of memory");
    cJSON_free(cj);
    dfs_st_writer_free(w);
    return s;
}

dfs_status dfs_classifier_load(const char *path, dfs_classifier **out, char **train_json) {
    if (!path || !out) {
        dfs_set_error("classifier load: NULL argument");
        return DFS_ERR_ARG;
    }
    *out = NULL;
    if (train_json) *train_json = NULL;
    dfs_safetensors f;
    dfs_status s = dfs_st_load(&f, path);
    if (s != DFS_OK) return s;
    const char *fmt = dfs_st_meta(&f, "format");
    dfs_classifier_config cfg;
    dfs_classifier *c = NULL;
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0) {
        dfs_set_error("%s: not a diffuse classifier (metadata \"format\" is %s%s%s, want \"%s\")",
                      path, fmt ? "\"" : "missing", fmt ? fmt : "", fmt ? "\"" : "", FORMAT_NAME);
        s = DFS_ERR_FORMAT;
    }
    if (s == DFS_OK) s = parse_config(path, dfs_st_meta(&f, "classifier"), &cfg);
    if (s == DFS_OK) s = dfs_classifier_new(&c, &cfg, 0);
    if (s == DFS_OK && f.count != c->params->count) {
        dfs_set_error("%s: %d tensors, the classifier has %d", path, f.count, c->params->count);
        s = DFS_ERR_FORMAT;
    }
    for (int i = 0; s == DFS_OK && i < c->params->count; i++) {
        dfs_tensor *t = c->params->t[i];
        const dfs_st_tensor *st = dfs_st_find(&f, t->name);
        if (!st) {
            dfs_set_error("%s: tensor %s is missing", path, t->name);
            s = DFS_ERR_FORMAT;
            break;
        }
        if (st->dtype != DFS_DT_F32) {
            dfs_set_error("%s: tensor %s must be F32", path, t->name);
            s = DFS_ERR_FORMAT;
            break;
        }
        int same = st->ndim == t->ndim;
        for (int k = 0; same && k < t->ndim; k++)
            same = st->shape[k] == t->shape[k];
        if (!same || st->nbytes != t->n * sizeof(float)) {
            dfs_set_error("%s: tensor %s has the wrong shape for the configuration", path, t->name);
            s = DFS_ERR_SHAPE;
            break;
        }
        memcpy(t->data, st->data, st->nbytes);
        for (size_t k = 0; k < t->n; k++)
            if (!isfinite(t->data[k])) {
                dfs_set_error("%s: tensor %s holds a non-finite value at %zu", path, t->name, k);
                s = DFS_ERR_FORMAT;
                break;
            }
    }
    if (s == DFS_OK) {
        const char *acc = dfs_st_meta(&f, "test_accuracy");
        char *end = NULL;
        double a = acc ? strtod(acc, &end) : -1.0;
        c->test_accuracy = acc && end != acc && *end == 0 && a >= 0 && a <= 1 ? a : -1.0;
        const char *tj = dfs_st_meta(&f, "train");
        if (train_json && tj && !(*train_json = strdup(tj))) {
            dfs_set_error("out of memory");
            s = DFS_ERR_NOMEM;
        }
    }
    dfs_st_free(&f);
    if (s != DFS_OK) {
        dfs_classifier_free(c);
        return s;
    }
    *out = c;
    return DFS_OK;
}

/* ---- training ------------------------------------------------------------------------------- */

void dfs_classifier_train_config_default(dfs_classifier_train_config *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 3;
    c->batch = 128;
    c->lr = 3e-3f;
    c->weight_decay = 5e-4f;
    c->warmup = 100;
    c->clip = 5.0f;
    c->seed = 0;
}

/* Learning rate at step t (1-based) of `total`: linear warm-up over `warmup` steps (Goyal et al.
 * 2017), then cosine decay to 0 at the last step (SGDR without restarts, Loshchilov & Hutter
 * 2017, eq. 5). */
static float lr_at(const dfs_classifier_train_config *tc, long t, long total) {
    if (tc->warmup > 0 && t <= tc->warmup) return tc->lr * (float)t / (float)tc->warmup;
    long span = total - (tc->warmup > 0 ? tc->warmup : 0);
    if (span <= 0) return tc->lr;
    double frac = (double)(t - (tc->warmup > 0 ? tc->warmup : 0)) / (double)span;
    return (float)(0.5 * tc->lr * (1.0 + cos(M_PI * frac)));
}

/* Fisher-Yates order of epoch e, drawn from (seed, e) alone (as src/model/train.c). */
static void epoch_order(int *perm, int n, uint64_t seed, int epoch) {
    dfs_rng r;
    dfs_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(epoch + 1)));
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)dfs_rng_below(&r, (uint32_t)i + 1);
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

/* Forward, loss and (if the loss is finite) backward of nb images in graph g; the loss to *L.
 * DFS_ERR_NOMEM (with the error set) when the activations do not fit: the allocation jumps
 * back here. */
static dfs_status train_pass(dfs_classifier *c, dfs_graph *g, float *xb, const int *yb, int nb, float *L) {
    const dfs_classifier_config *cfg = &c->cfg;
    dfs_graph_reset(g);
    jmp_buf jb;
    DFS_RETURN_ON_OOM(g, jb);
    dfs_graph_set_grad(g, 1);
    dfs_graph_set_training(g, 0, NULL); /* no dropout in this network */
    dfs_tensor *x = dfs_tensor_wrap(g, xb, 4, (int[]){nb, cfg->in_channels, cfg->image_size, cfg->image_size});
    dfs_tensor *loss = dfs_cross_entropy(g, dfs_classifier_graph(c, g, x, NULL), yb);
    *L = loss->data[0];
    if (isfinite(*L)) {
        dfs_params_zero_grad(c->params);
        dfs_backward(g, loss);
    }
    dfs_graph_set_oom_jump(g, NULL);
    return DFS_OK;
}

dfs_status dfs_classifier_train(dfs_classifier *c, const dfs_dataset *d,
                                const dfs_classifier_train_config *tc, dfs_classifier_step_fn cb,
                                void *user) {
    if (!c || !tc) {
        dfs_set_error("classifier train: NULL %s", c ? "config" : "classifier");
        return DFS_ERR_ARG;
    }
    if (tc->epochs < 1 || tc->epochs > 100000) {
        dfs_set_error("epochs must be 1..100000, not %d", tc->epochs);
        return DFS_ERR_ARG;
    }
    if (tc->batch < 1 || tc->batch > 4096) {
        dfs_set_error("batch size must be 1..4096, not %d", tc->batch);
        return DFS_ERR_ARG;
    }
    if (!(tc->lr > 0.0f && tc->lr < 1.0f)) {
        dfs_set_error("learning rate must be in (0, 1), not %g", tc->lr);
        return DFS_ERR_ARG;
    }
    if (!(tc->weight_decay >= 0.0f && tc->weight_decay <= 10.0f) || tc->warmup < 0 ||
        !(tc->clip == tc->clip)) {
        dfs_set_error("weight decay must be in [0, 10] and warm-up >= 0");
        return DFS_ERR_ARG;
    }
    dfs_status s = check_data(c, d, "classifier train");
    if (s != DFS_OK) return s;

    const dfs_classifier_config *cfg = &c->cfg;
    const size_t dim = image_dim(cfg);
    const int B = tc->batch < d->n ? tc->batch : d->n;
    const long spe = (d->n + B - 1) / B, total = spe * tc->epochs;
    int *perm = malloc((size_t)d->n * sizeof(int));
    int *yb = malloc((size_t)B * sizeof(int));
    float *xb = malloc((size_t)B * dim * sizeof(float));
    dfs_graph *g = dfs_graph_new();
    if (!perm || !yb || !xb || !g) {
        free(perm), free(yb), free(xb), dfs_graph_free(g);
        dfs_set_error("out of memory for classifier training");
        return DFS_ERR_NOMEM;
    }
    dfs_params *p = c->params;
    /* a fresh optimiser: AdamW moments from zero, steps counted from 1 */
    memset(p->m, 0, p->n * sizeof(float));
    memset(p->v, 0, p->n * sizeof(float));
    dfs_adamw_config opt;
    dfs_adamw_config_default(&opt);
    opt.weight_decay = tc->weight_decay;
    opt.warmup = 0; /* the schedule is lr_at's */
    opt.clip = tc->clip;
    opt.ema_decay = 0.0f; /* no EMA */

    long t = 0;
    for (int e = 0; e < tc->epochs && s == DFS_OK; e++) {
        epoch_order(perm, d->n, tc->seed, e);
        for (long k = 0; k < spe && s == DFS_OK; k++) {
            int i0 = (int)(k * B), nb = d->n - i0 < B ? d->n - i0 : B;
            for (int j = 0; j < nb; j++) {
                int idx = perm[i0 + j];
                const uint8_t *px = d->pixels + (size_t)idx * dim;
                float *x = xb + (size_t)j * dim;
                for (size_t q = 0; q < dim; q++)
                    x[q] = px[q] / 127.5f - 1.0f;
                yb[j] = d->labels[idx];
            }
            float L = 0.0f;
            if ((s = train_pass(c, g, xb, yb, nb, &L)) != DFS_OK) break;
            if (!isfinite(L)) {
                dfs_set_error("classifier loss is %g at step %ld", L, t + 1);
                s = DFS_ERR_NAN;
                break;
            }
            t++;
            opt.lr = lr_at(tc, t, total);
            if ((s = dfs_adamw_step(p, &opt, t, NULL)) != DFS_OK) break;
            if (cb && cb(user, e, k + 1, spe, L)) {
                dfs_set_error("classifier training stopped at step %ld", t);
                s = DFS_ERR_INTERRUPTED;
            }
        }
    }
    dfs_graph_free(g);
    free(perm);
    free(yb);
    free(xb);
    return s;
}
