/* checkpoint.c - models and training state in safetensors files (layout: docs/CHECKPOINTS.md).
 *
 * Tensors: every parameter under its PyTorch name; for resumable checkpoints also "ema.<name>"
 * and the AdamW moments as two flat tensors "optim.m" and "optim.v" in parameter order.
 * Metadata (__metadata__, strings): "format", "unet", "diffusion", "train", "state" (JSON), and
 * for text models "tokenizer" (dfs_tokenizer_to_json). The "unet" object of a text model has a
 * "text" object (vocab, max_len, dim, layers, heads); without it the model has no text. */
#include "diffuse/model.h"
#include "../engine/tape.h"
#include "../io/json.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_NAME "diffuse-1"

char *dfs_unet_config_json(const dfs_unet_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    /* every Add returns NULL when its allocation fails: then no JSON rather than a partial one */
    int ok = cJSON_AddNumberToObject(o, "image_size", c->image_size) &&
             cJSON_AddNumberToObject(o, "in_channels", c->in_channels) &&
             cJSON_AddNumberToObject(o, "base_channels", c->base_channels) &&
             cJSON_AddItemToObject(o, "mult", cJSON_CreateIntArray(c->mult, c->nlevels)) &&
             cJSON_AddItemToObject(o, "attn", cJSON_CreateIntArray(c->attn, c->nlevels)) &&
             cJSON_AddNumberToObject(o, "enc_blocks", c->enc_blocks) &&
             cJSON_AddNumberToObject(o, "dec_blocks", c->dec_blocks) &&
             cJSON_AddNumberToObject(o, "groups", c->groups) &&
             cJSON_AddNumberToObject(o, "dropout", c->dropout) &&
             cJSON_AddNumberToObject(o, "num_classes", c->num_classes);
    if (ok && c->text.dim > 0) {
        cJSON *t = cJSON_AddObjectToObject(o, "text");
        ok = t && cJSON_AddNumberToObject(t, "vocab", c->text.vocab) &&
             cJSON_AddNumberToObject(t, "max_len", c->text.max_len) &&
             cJSON_AddNumberToObject(t, "dim", c->text.dim) &&
             cJSON_AddNumberToObject(t, "layers", c->text.layers) &&
             cJSON_AddNumberToObject(t, "heads", c->text.heads);
    }
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static int get_int(const cJSON *o, const char *key, int *out) {
    return dfs_json_int(cJSON_GetObjectItemCaseSensitive(o, key), out);
}

static int get_int_array(const cJSON *o, const char *key, int *out, int *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a)) return 0;
    int k = cJSON_GetArraySize(a);
    if (k < 1 || k > DFS_MAX_LEVELS || (*n && k != *n)) return 0;
    for (int i = 0; i < k; i++) {
        if (!dfs_json_int(cJSON_GetArrayItem(a, i), &out[i])) return 0;
    }
    *n = k;
    return 1;
}

static dfs_status parse_unet(const char *path, const char *json, dfs_unet_config *c) {
    memset(c, 0, sizeof *c);
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *d = o ? cJSON_GetObjectItemCaseSensitive(o, "dropout") : NULL;
    int ok = o && get_int(o, "image_size", &c->image_size) &&
             get_int(o, "in_channels", &c->in_channels) &&
             get_int(o, "base_channels", &c->base_channels) &&
             get_int_array(o, "mult", c->mult, &c->nlevels) &&
             get_int_array(o, "attn", c->attn, &c->nlevels) &&
             get_int(o, "enc_blocks", &c->enc_blocks) && get_int(o, "dec_blocks", &c->dec_blocks) &&
             get_int(o, "groups", &c->groups) && get_int(o, "num_classes", &c->num_classes) &&
             cJSON_IsNumber(d);
    if (ok) c->dropout = (float)d->valuedouble;
    const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
    if (ok && t) /* absent: no text */
        ok = cJSON_IsObject(t) && get_int(t, "vocab", &c->text.vocab) && get_int(t, "max_len", &c->text.max_len) &&
             get_int(t, "dim", &c->text.dim) && get_int(t, "layers", &c->text.layers) &&
             get_int(t, "heads", &c->text.heads) && c->text.dim > 0;
    cJSON_Delete(o);
    if (!ok) {
        dfs_set_error("%s: missing or malformed \"unet\" metadata", path);
        return DFS_ERR_FORMAT;
    }
    if (dfs_unet_config_check(c) != DFS_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dfs_last_error());
        dfs_set_error("%s: bad model configuration: %s", path, msg);
        return DFS_ERR_FORMAT;
    }
    return DFS_OK;
}

static void rng_to_json(cJSON *o, const dfs_rng *r) {
    char buf[8][24];
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 4; i++) {
        snprintf(buf[i], sizeof buf[i], "%016" PRIx64, r->s[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(buf[i]));
    }
    cJSON_AddItemToObject(o, "rng", a);
    uint32_t bits;
    memcpy(&bits, &r->spare, 4);
    snprintf(buf[4], sizeof buf[4], "%d:%08" PRIx32, r->has_spare, bits);
    cJSON_AddStringToObject(o, "rng_spare", buf[4]);
}

/* xoshiro256** never leaves the all-zero state (it would draw 0 forever, and a resumed run
 * hang in rejection sampling): such a state was never seeded, and is neither saved nor loaded. */
static int rng_seeded(const dfs_rng *r) { return (r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0; }

dfs_status dfs_params_write(dfs_st_writer *w, const dfs_params *p, dfs_ckpt_kind kind,
                            uint16_t **half_out, const char *path) {
    *half_out = NULL;
    uint16_t *half = NULL;
    dfs_status s = DFS_OK;
    /* sampling checkpoints store the EMA weights under the plain names */
    const float *weights = kind == DFS_CKPT_FULL ? p->data : p->ema;
    if (kind == DFS_CKPT_SAMPLING_F16) {
        half = malloc(p->n * sizeof *half);
        if (!half) {
            dfs_set_error("out of memory");
            return DFS_ERR_NOMEM;
        }
        for (size_t i = 0; i < p->n; i++) {
            if (!(fabsf(weights[i]) <= 65504.0f)) { /* would become inf, which load refuses */
                dfs_set_error("checkpoint_save: %s: a weight of %g is outside float16's range (65504); save it as "
                              "float32", path, weights[i]);
                free(half);
                return DFS_ERR_ARG;
            }
            half[i] = dfs_f32_to_f16(weights[i]);
        }
    }
    *half_out = half;
    size_t off = 0;
    for (int i = 0; i < p->count && s == DFS_OK; i++) {
        const dfs_tensor *t = p->t[i];
        int64_t shape[DFS_MAXDIM];
        for (int k = 0; k < t->ndim; k++) shape[k] = t->shape[k];
        if (half) s = dfs_st_writer_add(w, t->name, DFS_DT_F16, t->ndim, shape, half + off);
        else s = dfs_st_writer_add(w, t->name, DFS_DT_F32, t->ndim, shape, weights + off);
        off += t->n;
    }
    if (kind == DFS_CKPT_FULL) {
        char name[320];
        off = 0;
        for (int i = 0; i < p->count && s == DFS_OK; i++) {
            const dfs_tensor *t = p->t[i];
            int64_t shape[DFS_MAXDIM];
            for (int k = 0; k < t->ndim; k++) shape[k] = t->shape[k];
            snprintf(name, sizeof name, "ema.%s", t->name);
            s = dfs_st_writer_add(w, name, DFS_DT_F32, t->ndim, shape, p->ema + off);
            off += t->n;
        }
        int64_t flat = (int64_t)p->n;
        if (s == DFS_OK) s = dfs_st_writer_add(w, "optim.m", DFS_DT_F32, 1, &flat, p->m);
        if (s == DFS_OK) s = dfs_st_writer_add(w, "optim.v", DFS_DT_F32, 1, &flat, p->v);
    }
    return s;
}

char *dfs_train_state_json(const dfs_train_state *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "images_seen", (double)st->images_seen);
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, st->seed);
    cJSON_AddStringToObject(o, "seed", seed);
    cJSON_AddNumberToObject(o, "wall_seconds", st->wall_seconds);
    rng_to_json(o, &st->rng);
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return j;
}

dfs_status dfs_checkpoint_save(const char *path, const dfs_model *m, const dfs_train_state *st,
                               const char *train_json, dfs_ckpt_kind kind) {
    if (kind < 0 || kind >= DFS_CKPT_COUNT) {
        dfs_set_error("unknown checkpoint kind %d", (int)kind);
        return DFS_ERR_ARG;
    }
    /* what load refuses is not written: moments without a state, a generator never seeded */
    if (kind == DFS_CKPT_FULL && !st) {
        dfs_set_error("checkpoint_save: %s: a full checkpoint needs the training state", path);
        return DFS_ERR_ARG;
    }
    if (st && !rng_seeded(&st->rng)) {
        dfs_set_error("checkpoint_save: %s: the state's generator is all zero (never seeded: dfs_rng_seed)", path);
        return DFS_ERR_ARG;
    }
    dfs_st_writer *w = dfs_st_writer_new();
    uint16_t *half = NULL;
    char *ujson = NULL, *djson = NULL, *sjson = NULL, *tokjson = NULL;
    if (!w) {
        dfs_set_error("out of memory");
        return DFS_ERR_NOMEM;
    }
    dfs_status s = dfs_params_write(w, m->net->params, kind, &half, path);
    ujson = dfs_unet_config_json(&m->cfg.unet);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "schedule", dfs_schedule_names[m->cfg.schedule]);
    cJSON_AddNumberToObject(d, "T", m->cfg.T);
    cJSON_AddStringToObject(d, "prediction", dfs_prediction_names[m->cfg.prediction]);
    djson = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (st) sjson = dfs_train_state_json(st);
    if (s == DFS_OK) s = dfs_st_writer_meta(w, "format", FORMAT_NAME);
    if (s == DFS_OK) s = dfs_st_writer_meta(w, "unet", ujson);
    if (s == DFS_OK) s = dfs_st_writer_meta(w, "diffusion", djson);
    if (s == DFS_OK && sjson) s = dfs_st_writer_meta(w, "state", sjson);
    if (s == DFS_OK && train_json) s = dfs_st_writer_meta(w, "train", train_json);
    if (s == DFS_OK && m->sampling.set) {
        char rec[DFS_RECIPE_JSON];
        dfs_sampling_recipe_json(&m->sampling, rec);
        s = dfs_st_writer_meta(w, "sampling", rec);
    }
    if (s == DFS_OK && m->tokenizer) {
        if (!(tokjson = dfs_tokenizer_to_json(m->tokenizer))) {
            dfs_set_error("out of memory for the tokenizer's JSON");
            s = DFS_ERR_NOMEM;
        }
        if (s == DFS_OK) s = dfs_st_writer_meta(w, "tokenizer", tokjson);
    }
    if (s == DFS_OK) s = dfs_st_writer_write(w, path);
    dfs_st_writer_free(w);
    free(half);
    cJSON_free(ujson);
    cJSON_free(djson);
    cJSON_free(sjson);
    free(tokjson);
    return s;
}

dfs_status dfs_checkpoint_save_net(const char *path, const char *who, const dfs_params *p,
                                   const char *const (*meta)[2], int n_meta, int schedule, int T,
                                   const dfs_train_state *st, const char *train_json,
                                   const dfs_sampling_recipe *sampling, dfs_ckpt_kind kind) {
    if (kind < 0 || kind >= DFS_CKPT_COUNT || (kind == DFS_CKPT_FULL && !st)) {
        dfs_set_error("%s save: %s: bad kind %d, or a full checkpoint without the state", who, path, (int)kind);
        return DFS_ERR_ARG;
    }
    if (st && !rng_seeded(&st->rng)) {
        dfs_set_error("%s save: %s: the state's generator is all zero (never seeded: dfs_rng_seed)", who, path);
        return DFS_ERR_ARG;
    }
    for (int i = 0; i < n_meta; i++)
        if (!meta[i][1]) {
            dfs_set_error("out of memory");
            return DFS_ERR_NOMEM;
        }
    dfs_st_writer *w = dfs_st_writer_new();
    char *stj = st ? dfs_train_state_json(st) : NULL;
    if (!w || (st && !stj)) {
        dfs_st_writer_free(w);
        cJSON_free(stj);
        dfs_set_error("out of memory");
        return DFS_ERR_NOMEM;
    }
    uint16_t *half = NULL;
    char diff[160];
    dfs_status s = dfs_params_write(w, p, kind, &half, path);
    snprintf(diff, sizeof diff, "{\"schedule\":\"%s\",\"T\":%d,\"prediction\":\"eps\"}", dfs_schedule_names[schedule], T);
    if (s == DFS_OK) s = dfs_st_writer_meta(w, "format", FORMAT_NAME);
    for (int i = 0; i < n_meta && s == DFS_OK; i++) s = dfs_st_writer_meta(w, meta[i][0], meta[i][1]);
    if (s == DFS_OK) s = dfs_st_writer_meta(w, "diffusion", diff);
    if (s == DFS_OK && stj) s = dfs_st_writer_meta(w, "state", stj);
    if (s == DFS_OK && train_json) s = dfs_st_writer_meta(w, "train", train_json);
    if (s == DFS_OK && sampling && sampling->set) {
        char rec[DFS_RECIPE_JSON];
        dfs_sampling_recipe r = *sampling;
        r.guidance = 1.0f; /* these networks take no guidance */
        dfs_sampling_recipe_json(&r, rec);
        s = dfs_st_writer_meta(w, "sampling", rec);
    }
    if (s == DFS_OK) s = dfs_st_writer_write(w, path);
    dfs_st_writer_free(w);
    free(half);
    cJSON_free(stj);
    return s;
}

void dfs_sampling_recipe_json(const dfs_sampling_recipe *r, char *buf) {
    char ns[48] = "";
    if (r->kind == DFS_SAMPLER_DDPM && dfs_recipe_noise_scale(r) != 1.0f)
        snprintf(ns, sizeof ns, ",\"noise_scale\":%.9g", (double)r->noise_scale);
    snprintf(buf, DFS_RECIPE_JSON, "{\"sampler\":\"%s\",\"steps\":%d,\"guidance\":%.9g%s%s}",
             dfs_sampler_names[r->kind], r->steps, (double)r->guidance, r->var_beta ? ",\"variance\":\"beta\"" : "", ns);
}

dfs_status dfs_sampling_recipe_parse(const char *path, const char *json, int T, dfs_sampling_recipe *r) {
    memset(r, 0, sizeof *r);
    if (!json) return DFS_OK;
    cJSON *o = cJSON_Parse(json);
    const cJSON *sm = cJSON_GetObjectItemCaseSensitive(o, "sampler");
    const cJSON *gw = cJSON_GetObjectItemCaseSensitive(o, "guidance");
    const cJSON *var = cJSON_GetObjectItemCaseSensitive(o, "variance");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(o, "noise_scale");
    int kind = cJSON_IsString(sm) ? dfs_sampler_from_name(sm->valuestring) : -1, steps = 0;
    const int beta = cJSON_IsString(var) && !strcmp(var->valuestring, "beta");
    int ok = cJSON_IsObject(o) && kind >= 0 && get_int(o, "steps", &steps) && steps >= 1 && steps <= T &&
             cJSON_IsNumber(gw) && isfinite(gw->valuedouble) && fabs(gw->valuedouble) <= 100 &&
             (!var || beta || (cJSON_IsString(var) && !strcmp(var->valuestring, "beta-tilde"))) &&
             (!ns || (kind == DFS_SAMPLER_DDPM && cJSON_IsNumber(ns) && ns->valuedouble > 0 && ns->valuedouble <= 1)) &&
             cJSON_GetArraySize(o) == 3 + (var != NULL) + (ns != NULL);
    if (ok)
        *r = (dfs_sampling_recipe){1, (dfs_sampler_kind)kind, steps, (float)gw->valuedouble, beta,
                                   ns ? (float)ns->valuedouble : 1.0f};
    cJSON_Delete(o);
    if (!ok) {
        dfs_set_error("%s: malformed \"sampling\" metadata (a sampler name, steps in 1..%d, a "
                      "guidance in [-100, 100], a variance beta or beta-tilde, a noise scale in (0, 1] with ddpm)", path, T);
        return DFS_ERR_FORMAT;
    }
    return DFS_OK;
}

/* The "tokenizer" metadata of a text model: parsed, and its vocabulary and length checked
 * against the encoder's. A tokenizer without a text model is a corrupt file. */
static dfs_status load_tokenizer(const char *path, const dfs_safetensors *f, dfs_model *m) {
    const char *json = dfs_st_meta(f, "tokenizer");
    const dfs_text_config *tc = &m->cfg.unet.text;
    if (!json) return DFS_OK;
    if (tc->dim == 0) {
        dfs_set_error("%s: \"tokenizer\" metadata but no text encoder in \"unet\"", path);
        return DFS_ERR_FORMAT;
    }
    dfs_tokenizer *tok;
    if (dfs_tokenizer_from_json(&tok, json) != DFS_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dfs_last_error());
        dfs_set_error("%s: %s", path, msg);
        return DFS_ERR_FORMAT;
    }
    if (dfs_tokenizer_vocab_size(tok) != tc->vocab || dfs_tokenizer_max_len(tok) != tc->max_len) {
        dfs_set_error("%s: the tokenizer has %d words and length %d, the text encoder %d and %d", path,
                      dfs_tokenizer_vocab_size(tok), dfs_tokenizer_max_len(tok), tc->vocab, tc->max_len);
        dfs_tokenizer_free(tok);
        return DFS_ERR_FORMAT;
    }
    m->tokenizer = tok;
    return DFS_OK;
}

/* The first tensor of f that is neither a parameter of p, its ema.* copy, nor optim.m / v. */
static dfs_status unexpected_tensor(const char *path, const dfs_safetensors *f, const dfs_params *p) {
    for (int i = 0; i < f->count; i++) {
        const char *nm = f->t[i].name;
        const char *base = strncmp(nm, "ema.", 4) ? nm : nm + 4;
        int known = !strcmp(nm, "optim.m") || !strcmp(nm, "optim.v");
        for (int k = 0; k < p->count && !known; k++) known = !strcmp(p->t[k]->name, base);
        if (!known) {
            dfs_set_error("%s: tensor %s is not part of the model its config describes", path, nm);
            return DFS_ERR_FORMAT;
        }
    }
    dfs_set_error("%s: %d tensors, the model has %d", path, f->count, p->count); // not reached
    return DFS_ERR_FORMAT;
}

/* Copy a stored tensor (F32 or F16) of exactly the expected shape into dst. Every value must
 * be finite: a NaN weight would only show later, as black samples or a NaN loss. */
static dfs_status load_tensor(const char *path, const dfs_st_tensor *st, const dfs_tensor *t,
                              const char *name, float *dst) {
    int same = st->ndim == t->ndim;
    for (int k = 0; same && k < t->ndim; k++) same = st->shape[k] == t->shape[k];
    if (!same) {
        char want[64], got[64];
        int a = 0, b = 0;
        for (int k = 0; k < t->ndim; k++) a += snprintf(want + a, sizeof want - a, "%s%d", k ? "x" : "", t->shape[k]);
        for (int k = 0; k < st->ndim; k++) b += snprintf(got + b, sizeof got - b, "%s%" PRId64, k ? "x" : "", st->shape[k]);
        dfs_set_error("%s: tensor %s has shape %s, the model needs %s", path, name, st->ndim ? got : "()", want);
        return DFS_ERR_SHAPE;
    }
    if (st->dtype == DFS_DT_F32) {
        memcpy(dst, st->data, t->n * sizeof(float));
    } else if (st->dtype == DFS_DT_F16) {
        const unsigned char *src = st->data;
        for (size_t i = 0; i < t->n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = dfs_f16_to_f32(h);
        }
    } else {
        dfs_set_error("%s: tensor %s must be F32 or F16", path, name);
        return DFS_ERR_FORMAT;
    }
    for (size_t i = 0; i < t->n; i++)
        if (!isfinite(dst[i])) {
            dfs_set_error("%s: tensor %s holds a non-finite value (%g at index %zu)", path, name, dst[i], i);
            return DFS_ERR_FORMAT;
        }
    return DFS_OK;
}

/* A whole string of digits (base 10 or 16; no sign, no space) that fits in 64 bits. */
static int parse_u64(const char *s, int base, uint64_t *out) {
    if (!*s || !(base == 16 ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s))) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

dfs_status dfs_train_state_parse(const char *path, const char *json, dfs_train_state *st) {
    cJSON *o = cJSON_Parse(json);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
    const cJSON *seen = cJSON_GetObjectItemCaseSensitive(o, "images_seen");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, "seed");
    const cJSON *wall = cJSON_GetObjectItemCaseSensitive(o, "wall_seconds");
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(o, "rng");
    const cJSON *spare = cJSON_GetObjectItemCaseSensitive(o, "rng_spare");
    int ok = cJSON_IsNumber(step) && cJSON_IsNumber(seen) && cJSON_IsString(seed) &&
             cJSON_IsNumber(wall) && cJSON_IsArray(rng) && cJSON_GetArraySize(rng) == 4 &&
             cJSON_IsString(spare) && step->valuedouble >= 0 && seen->valuedouble >= 0 &&
             step->valuedouble < 9e15 && seen->valuedouble < 9e15; // within long, exactly
    if (ok) {
        memset(st, 0, sizeof *st);
        st->step = (long)step->valuedouble;
        st->images_seen = (long)seen->valuedouble;
        st->wall_seconds = wall->valuedouble;
        ok = step->valuedouble == floor(step->valuedouble) && seen->valuedouble == floor(seen->valuedouble) &&
             parse_u64(seed->valuestring, 10, &st->seed);
        for (int i = 0; ok && i < 4; i++) {
            const cJSON *v = cJSON_GetArrayItem(rng, i);
            ok = cJSON_IsString(v) && parse_u64(v->valuestring, 16, &st->rng.s[i]);
        }
        if (ok) ok = rng_seeded(&st->rng);
        uint64_t bits = 0;
        const char *sp = spare->valuestring;
        if (ok) ok = (sp[0] == '0' || sp[0] == '1') && sp[1] == ':' && parse_u64(sp + 2, 16, &bits) &&
                     bits <= 0xFFFFFFFFu;
        if (ok) {
            uint32_t b32 = (uint32_t)bits;
            st->rng.has_spare = sp[0] - '0';
            memcpy(&st->rng.spare, &b32, 4);
        }
    }
    cJSON_Delete(o);
    if (!ok) {
        dfs_set_error("%s: malformed \"state\" metadata", path);
        return DFS_ERR_FORMAT;
    }
    return DFS_OK;
}

dfs_status dfs_params_read(const char *path, const dfs_safetensors *f, dfs_params *p, int *has_optim) {
    dfs_status s = DFS_OK;
    if (has_optim) *has_optim = 0;
    char name[320];
    int n_ema = 0;
    for (int i = 0; i < p->count && s == DFS_OK; i++) {
        dfs_tensor *t = p->t[i];
        const dfs_st_tensor *w = dfs_st_find(f, t->name);
        if (!w) {
            dfs_set_error("%s: tensor %s is missing", path, t->name);
            s = DFS_ERR_FORMAT;
            break;
        }
        s = load_tensor(path, w, t, t->name, t->data);
        snprintf(name, sizeof name, "ema.%s", t->name);
        const dfs_st_tensor *e = dfs_st_find(f, name);
        if (s == DFS_OK && e) s = load_tensor(path, e, t, name, p->ema + (t->data - p->data));
        if (e) n_ema++;
    }
    /* EMA: all of it or none (then it starts from the weights); a part would be lost */
    if (s == DFS_OK && n_ema > 0 && n_ema < p->count) {
        dfs_set_error("%s: %d of the %d ema.* tensors are missing", path, p->count - n_ema, p->count);
        s = DFS_ERR_FORMAT;
    }
    if (s == DFS_OK && n_ema == 0) dfs_params_ema_init(p);
    const dfs_st_tensor *om = dfs_st_find(f, "optim.m"), *ov = dfs_st_find(f, "optim.v");
    if (s == DFS_OK && !om != !ov) {
        dfs_set_error("%s: %s without %s", path, om ? "optim.m" : "optim.v", om ? "optim.v" : "optim.m");
        s = DFS_ERR_FORMAT;
    }
    /* nothing else: a tensor the config does not use means config and weights disagree
     * (dropping it, and then losing it in the next save or export, would be silent) */
    int want = p->count + n_ema + (om && ov ? 2 : 0);
    if (s == DFS_OK && f->count != want) s = unexpected_tensor(path, f, p);
    if (s == DFS_OK && om && ov) {
        dfs_tensor flat = {.ndim = 1, .shape = {(int)p->n}, .n = p->n};
        s = load_tensor(path, om, &flat, "optim.m", p->m);
        if (s == DFS_OK) s = load_tensor(path, ov, &flat, "optim.v", p->v);
        if (s == DFS_OK && has_optim) *has_optim = 1;
    }
    return s;
}

dfs_status dfs_checkpoint_load(const char *path, dfs_model **out, dfs_train_state *st,
                               int *has_optim, char **train_json) {
    *out = NULL;
    if (has_optim) *has_optim = 0;
    if (train_json) *train_json = NULL;
    dfs_safetensors f;
    dfs_status s = dfs_st_load(&f, path);
    if (s != DFS_OK) return s;
    dfs_model_config mc;
    memset(&mc, 0, sizeof mc);
    const char *fmt = dfs_st_meta(&f, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0) {
        dfs_set_error("%s: not a diffuse checkpoint (metadata \"format\" is %s%s%s)", path,
                      fmt ? "\"" : "missing", fmt ? fmt : "", fmt ? "\"" : "");
        dfs_st_free(&f);
        return DFS_ERR_FORMAT;
    }
    s = parse_unet(path, dfs_st_meta(&f, "unet"), &mc.unet);
    if (s == DFS_OK) {
        cJSON *d = cJSON_Parse(dfs_st_meta(&f, "diffusion") ? dfs_st_meta(&f, "diffusion") : "");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(d, "schedule");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "prediction");
        int T = 0;
        int sk = cJSON_IsString(sc) ? dfs_schedule_from_name(sc->valuestring) : -1;
        int pk = cJSON_IsString(pr) ? dfs_prediction_from_name(pr->valuestring) : -1;
        if (!d || sk < 0 || pk < 0 || !get_int(d, "T", &T) || T < 1 || T > 100000) {
            dfs_set_error("%s: missing or malformed \"diffusion\" metadata", path);
            s = DFS_ERR_FORMAT;
        }
        mc.schedule = sk, mc.prediction = pk, mc.T = T;
        cJSON_Delete(d);
    }
    /* The weights are at least 2 bytes each (F16): a config that asks for more than the file
     * holds is refused before the model, which can be gigabytes, is allocated for it. */
    if (s == DFS_OK) {
        size_t need = dfs_unet_param_count(&mc.unet), have = 0;
        for (int i = 0; i < f.count; i++) have += f.t[i].nbytes;
        if (need > have / 2) {
            dfs_set_error("%s: its \"unet\" config has %zu parameters, but the file holds only %zu "
                          "bytes of tensors", path, need, have);
            s = DFS_ERR_FORMAT;
        }
    }
    dfs_model *m = NULL;
    if (s == DFS_OK && !(m = dfs_model_new(&mc, 0))) s = DFS_ERR_ARG;
    if (s == DFS_OK) {
        s = dfs_params_read(path, &f, m->net->params, has_optim);
        const int om = dfs_st_find(&f, "optim.m") != NULL;
        const char *state = dfs_st_meta(&f, "state");
        if (s == DFS_OK && om && !state) { // diffuse train writes both or neither
            dfs_set_error("%s: optimiser moments but no \"state\" metadata to resume from", path);
            s = DFS_ERR_FORMAT;
        }
        if (s == DFS_OK && st) {
            memset(st, 0, sizeof *st);
            if (state) s = dfs_train_state_parse(path, state, st);
        }
        if (s == DFS_OK) s = load_tokenizer(path, &f, m);
        if (s == DFS_OK) s = dfs_sampling_recipe_parse(path, dfs_st_meta(&f, "sampling"), m->cfg.T, &m->sampling);
        const char *tj = dfs_st_meta(&f, "train");
        if (s == DFS_OK && train_json && tj) *train_json = strdup(tj);
    }
    dfs_st_free(&f);
    if (s != DFS_OK) {
        dfs_model_free(m);
        return s;
    }
    *out = m;
    return DFS_OK;
}

dfs_status dfs_checkpoint_init_from(dfs_model *m, const char *path, int *loaded, int *total, char **fresh) {
    if (loaded) *loaded = 0;
    if (total) *total = 0;
    if (fresh) *fresh = NULL;
    if (!m || !path) {
        dfs_set_error("checkpoint_init_from: bad arguments");
        return DFS_ERR_ARG;
    }
    dfs_safetensors f;
    dfs_status s = dfs_st_load(&f, path);
    if (s != DFS_OK) return s;
    const char *fmt = dfs_st_meta(&f, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0) {
        dfs_set_error("%s: not a diffuse checkpoint", path);
        dfs_st_free(&f);
        return DFS_ERR_FORMAT;
    }
    dfs_params *p = m->net->params;
    char name[320];
    size_t cap = 1, len = 0;
    char *list = calloc(1, cap);
    int n = 0;
    for (int i = 0; i < p->count && s == DFS_OK && list; i++) {
        dfs_tensor *t = p->t[i];
        snprintf(name, sizeof name, "ema.%s", t->name);
        const dfs_st_tensor *w = dfs_st_find(&f, name);
        if (!w) w = dfs_st_find(&f, t->name);
        int same = w && w->ndim == t->ndim;
        for (int k = 0; same && k < t->ndim; k++) same = w->shape[k] == t->shape[k];
        if (same && (w->dtype == DFS_DT_F32 || w->dtype == DFS_DT_F16)) {
            s = load_tensor(path, w, t, t->name, t->data);
            n++;
            continue;
        }
        size_t need = len + strlen(t->name) + 2;
        if (need > cap) {
            char *nl = realloc(list, cap = need * 2);
            if (!nl) {
                free(list);
                list = NULL;
                break;
            }
            list = nl;
        }
        len += (size_t)sprintf(list + len, "%s%s", len ? "," : "", t->name);
    }
    dfs_st_free(&f);
    if (!list) {
        dfs_set_error("checkpoint_init_from: out of memory");
        return DFS_ERR_NOMEM;
    }
    if (s == DFS_OK && n == 0) {
        dfs_set_error("%s: none of its tensors has the name and shape of one of this model's", path);
        s = DFS_ERR_SHAPE;
    }
    if (s == DFS_OK) dfs_params_ema_init(p);
    if (loaded) *loaded = n;
    if (total) *total = p->count;
    if (fresh && s == DFS_OK) *fresh = list;
    else free(list);
    return s;
}
