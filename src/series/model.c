/* series/model.c - CSDI models of time series: normalisation, calendar values, checkpoints,
 * the training step and sampling with the conditioning held (include/diffuse/series.h).
 *
 * This is a thin layer over the core. A window of L steps and K features is one (L K)-vector
 * to the core: training draws t and eps and forms x_t and the target with dfs_draw_t,
 * dfs_draw_noise and dfs_train_inputs, and runs the net through dfs_step_run, with the masks
 *   present = the entries the data observe,   known = the conditioning entries,
 * so that the loss covers the target entries (observed, not conditioning) only, as CSDI's. The
 * samplers hold the known entries (dfs_sample's known_mask); the net itself reads their clean
 * values (dfs_csdi_input.cond), as CSDI's does, so the noisy copies the sampler keeps there are
 * never looked at. */
#include "diffuse/series.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define FORMAT_NAME "diffuse-1"

/* ---- calendar ------------------------------------------------------------------------------ */

void dfs_series_calendar(const int64_t *times, int n, float *out) {
    for (int i = 0; i < n; i++) {
        time_t tt = (time_t)times[i];
        struct tm tm;
        gmtime_r(&tt, &tm);
        const double day = (double)(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) / 86400.0;
        const int leap = (tm.tm_year % 4 == 0 && tm.tm_year % 100 != 0) || (tm.tm_year + 1900) % 400 == 0;
        const double year = (tm.tm_yday + day) / (leap ? 366.0 : 365.0);
        float *o = out + (size_t)i * DFS_SERIES_CALENDAR;
        o[0] = (float)sin(2 * M_PI * day);
        o[1] = (float)cos(2 * M_PI * day);
        o[2] = (float)sin(2 * M_PI * year);
        o[3] = (float)cos(2 * M_PI * year);
    }
}

/* The calendar values of n steps as model m reads them: without the day of the year when its
 * configuration says so. */
static void model_calendar(const dfs_series_model *m, const int64_t *times, int n, float *out) {
    dfs_series_calendar(times, n, out);
    if (m->cfg.no_day_of_year)
        for (int i = 0; i < n; i++) out[(size_t)i * DFS_SERIES_CALENDAR + 2] = out[(size_t)i * DFS_SERIES_CALENDAR + 3] = 0.0f;
}

/* ---- the model ----------------------------------------------------------------------------- */

void dfs_series_config_default(dfs_series_config *c) {
    memset(c, 0, sizeof *c);
    dfs_csdi_config_default(&c->net);
    c->schedule = DFS_SCHEDULE_QUAD;
    c->T = 50;
    c->window = 63;
}

int dfs_series_forecast_max(const dfs_series_config *c) { return c->window * 3 / 10 > 1 ? c->window * 3 / 10 : 1; }

void dfs_series_model_free(dfs_series_model *m) {
    if (!m) return;
    dfs_csdi_free(m->net);
    dfs_schedule_free(&m->sched);
    for (int k = 0; m->names && k < m->K; k++) free(m->names[k]);
    free(m->names);
    free(m->mean);
    free(m->sd);
    free(m);
}

/* the model's shell for K features: names, normalisation arrays, net and schedule */
static dfs_status model_alloc(dfs_series_model **out, const dfs_series_config *c, int K,
                              uint64_t seed) {
    *out = NULL;
    dfs_series_config cc = *c;
    cc.net.features = K;
    cc.net.calendar = DFS_SERIES_CALENDAR;
    if (dfs_csdi_config_check(&cc.net) != DFS_OK) return DFS_ERR_ARG;
    if (cc.window < 1 || cc.window > 100000) {
        dfs_set_error("series model: window of %d steps outside 1..100000", cc.window);
        return DFS_ERR_ARG;
    }
    dfs_series_model *m = calloc(1, sizeof *m);
    if (!m) goto nomem;
    m->cfg = cc;
    m->K = K;
    m->max_batch = 64;
    m->names = calloc((size_t)K, sizeof *m->names);
    m->mean = calloc((size_t)K, sizeof *m->mean);
    m->sd = calloc((size_t)K, sizeof *m->sd);
    if (!m->names || !m->mean || !m->sd) goto nomem;
    dfs_status s = dfs_schedule_init(&m->sched, cc.schedule, cc.T);
    if (s != DFS_OK) {
        dfs_series_model_free(m);
        return s;
    }
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    if (!(m->net = dfs_csdi_new(&cc.net, &rng))) {
        dfs_series_model_free(m);
        return DFS_ERR_NOMEM;
    }
    *out = m;
    return DFS_OK;
nomem:
    dfs_series_model_free(m);
    dfs_set_error("series model: out of memory");
    return DFS_ERR_NOMEM;
}

dfs_status dfs_series_model_new(dfs_series_model **out, const dfs_series_config *c,
                                const dfs_series *s, int train_end, uint64_t seed) {
    *out = NULL;
    if (!c || !s || s->n_features < 1 || train_end < 2 || train_end > s->n_steps) {
        dfs_set_error("series model: a series and a training span of 2..%d rows are needed, not %d",
                      s ? s->n_steps : 0, train_end);
        return DFS_ERR_ARG;
    }
    const int K = s->n_features;
    dfs_series_model *m;
    dfs_status st = model_alloc(&m, c, K, seed);
    if (st != DFS_OK) return st;
    m->step = s->step;
    for (int k = 0; k < K; k++) {
        double sum = 0, sq = 0;
        long n = 0;
        for (int i = 0; i < train_end; i++)
            if (s->observed[(size_t)i * K + k]) {
                double v = s->values[(size_t)i * K + k];
                sum += v;
                n++;
            }
        double mean = n ? sum / n : 0;
        for (int i = 0; i < train_end; i++)
            if (s->observed[(size_t)i * K + k]) {
                double d = s->values[(size_t)i * K + k] - mean;
                sq += d * d;
            }
        double sd = n > 1 ? sqrt(sq / (n - 1)) : 0;
        if (n < 2 || !(sd > 0)) {
            dfs_set_error("series model: feature %s has %ld observed values in the training span "
                          "and a spread of %g; it cannot be normalised", s->names[k], n, sd);
            dfs_series_model_free(m);
            return DFS_ERR_ARG;
        }
        m->mean[k] = mean;
        m->sd[k] = sd;
        if (!(m->names[k] = strdup(s->names[k]))) {
            dfs_series_model_free(m);
            dfs_set_error("series model: out of memory");
            return DFS_ERR_NOMEM;
        }
    }
    *out = m;
    return DFS_OK;
}

dfs_status dfs_series_match(const dfs_series_model *m, const dfs_series *s, int *idx) {
    for (int k = 0; k < m->K; k++) {
        idx[k] = -1;
        for (int j = 0; j < s->n_features; j++)
            if (!strcmp(s->names[j], m->names[k])) idx[k] = j;
        if (idx[k] < 0) {
            dfs_set_error("the data have no column '%s', which the model was trained on",
                          m->names[k]);
            return DFS_ERR_SHAPE;
        }
    }
    return DFS_OK;
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static char *csdi_json(const dfs_series_model *m) {
    const dfs_csdi_config *c = &m->cfg.net;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "features", c->features);
    cJSON_AddNumberToObject(o, "channels", c->channels);
    cJSON_AddNumberToObject(o, "layers", c->layers);
    cJSON_AddNumberToObject(o, "heads", c->heads);
    cJSON_AddNumberToObject(o, "ff", c->ff);
    cJSON_AddNumberToObject(o, "step_dim", c->step_dim);
    cJSON_AddNumberToObject(o, "time_dim", c->time_dim);
    cJSON_AddNumberToObject(o, "feature_dim", c->feature_dim);
    cJSON_AddNumberToObject(o, "calendar", c->calendar);
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return j;
}

static char *series_json(const dfs_series_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON *names = cJSON_AddArrayToObject(o, "names");
    cJSON *mean = cJSON_AddArrayToObject(o, "mean");
    cJSON *sd = cJSON_AddArrayToObject(o, "std");
    for (int k = 0; k < m->K; k++) {
        cJSON_AddItemToArray(names, cJSON_CreateString(m->names[k]));
        cJSON_AddItemToArray(mean, cJSON_CreateNumber(m->mean[k]));
        cJSON_AddItemToArray(sd, cJSON_CreateNumber(m->sd[k]));
    }
    cJSON_AddNumberToObject(o, "step", (double)m->step);
    cJSON_AddNumberToObject(o, "window", m->cfg.window);
    if (m->cfg.no_day_of_year) cJSON_AddNumberToObject(o, "day_of_year", 0); /* absent: 1 */
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return j;
}

dfs_status dfs_series_save(const char *path, const dfs_series_model *m, const dfs_train_state *st,
                           const char *train_json, dfs_ckpt_kind kind) {
    char *nj = csdi_json(m), *dj = series_json(m);
    const char *const meta[2][2] = {{"csdi", nj}, {"series", dj}};
    dfs_status s = dfs_checkpoint_save_net(path, "series", dfs_csdi_params(m->net), meta, 2, m->cfg.schedule, m->cfg.T, st,
                                           train_json, &m->sampling, kind);
    cJSON_free(nj);
    cJSON_free(dj);
    return s;
}

/* an integer member of o in [lo, hi] */
static int get_int(const cJSON *o, const char *key, int lo, int hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

static dfs_status parse_meta(const char *path, const dfs_safetensors *f, dfs_series_config *c,
                             cJSON **series) {
    *series = NULL;
    const char *fmt = dfs_st_meta(f, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME)) {
        dfs_set_error("%s: not a diffuse checkpoint", path);
        return DFS_ERR_FORMAT;
    }
    if (!dfs_st_meta(f, "series")) {
        dfs_set_error("%s: not a time-series model (%s)", path,
                      dfs_st_meta(f, "unet") ? "it is an image model: use diffuse sample" : "no \"series\" metadata");
        return DFS_ERR_FORMAT;
    }
    dfs_series_config_default(c);
    cJSON *n = cJSON_Parse(dfs_st_meta(f, "csdi") ? dfs_st_meta(f, "csdi") : "");
    cJSON *d = cJSON_Parse(dfs_st_meta(f, "diffusion") ? dfs_st_meta(f, "diffusion") : "");
    cJSON *s = cJSON_Parse(dfs_st_meta(f, "series"));
    dfs_csdi_config *k = &c->net;
    int ok = n && d && s && get_int(n, "features", 1, 4096, &k->features) &&
             get_int(n, "channels", 1, 4096, &k->channels) && get_int(n, "layers", 1, 64, &k->layers) &&
             get_int(n, "heads", 1, 4096, &k->heads) && get_int(n, "ff", 1, 16384, &k->ff) &&
             get_int(n, "step_dim", 2, 4096, &k->step_dim) && get_int(n, "time_dim", 0, 4096, &k->time_dim) &&
             get_int(n, "feature_dim", 0, 4096, &k->feature_dim) &&
             get_int(n, "calendar", DFS_SERIES_CALENDAR, DFS_SERIES_CALENDAR, &k->calendar) &&
             get_int(d, "T", 1, 100000, &c->T) && get_int(s, "window", 1, 100000, &c->window);
    int doy = 1;
    if (ok && cJSON_GetObjectItemCaseSensitive(s, "day_of_year")) ok = get_int(s, "day_of_year", 0, 1, &doy);
    c->no_day_of_year = !doy;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(d, "schedule");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "prediction");
    int sk = cJSON_IsString(sc) ? dfs_schedule_from_name(sc->valuestring) : -1;
    ok = ok && sk >= 0 && cJSON_IsString(pr) && !strcmp(pr->valuestring, "eps");
    if (ok) c->schedule = sk;
    cJSON_Delete(n);
    cJSON_Delete(d);
    if (!ok) {
        cJSON_Delete(s);
        dfs_set_error("%s: missing or malformed \"csdi\", \"diffusion\" or \"series\" metadata", path);
        return DFS_ERR_FORMAT;
    }
    *series = s;
    return DFS_OK;
}

dfs_status dfs_series_load(const char *path, dfs_series_model **out, dfs_train_state *st,
                           int *has_optim, char **train_json) {
    *out = NULL;
    if (has_optim) *has_optim = 0;
    if (train_json) *train_json = NULL;
    dfs_safetensors f;
    dfs_status s = dfs_st_load(&f, path);
    if (s != DFS_OK) return s;
    dfs_series_config c;
    cJSON *sj = NULL;
    dfs_series_model *m = NULL;
    s = parse_meta(path, &f, &c, &sj);
    const int K = c.net.features;
    /* the weights are at least 2 bytes each (float16): a config asking for more than the file
     * holds is refused before the net, which could be gigabytes, is allocated */
    if (s == DFS_OK) {
        dfs_csdi_config cc = c.net;
        size_t have = 0;
        for (int i = 0; i < f.count; i++) have += f.t[i].nbytes;
        if (dfs_csdi_config_check(&cc) != DFS_OK || dfs_csdi_param_count(&cc) > have / 2) {
            dfs_set_error("%s: its \"csdi\" config (%s) does not fit the %zu bytes of tensors it holds", path,
                          dfs_csdi_config_check(&cc) != DFS_OK ? "invalid" : "too many parameters", have);
            s = DFS_ERR_FORMAT;
        }
    }
    if (s == DFS_OK && (s = model_alloc(&m, &c, K, 0)) != DFS_OK && s == DFS_ERR_ARG) s = DFS_ERR_FORMAT;
    if (s == DFS_OK) {
        const cJSON *names = cJSON_GetObjectItemCaseSensitive(sj, "names");
        const cJSON *mean = cJSON_GetObjectItemCaseSensitive(sj, "mean");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(sj, "std");
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(sj, "step");
        int ok = cJSON_GetArraySize(names) == K && cJSON_GetArraySize(mean) == K &&
                 cJSON_GetArraySize(sd) == K && cJSON_IsNumber(step) && step->valuedouble >= 0 &&
                 step->valuedouble < 1e15;
        for (int k = 0; ok && k < K; k++) {
            const cJSON *nm = cJSON_GetArrayItem(names, k), *mu = cJSON_GetArrayItem(mean, k),
                        *sg = cJSON_GetArrayItem(sd, k);
            ok = cJSON_IsString(nm) && cJSON_IsNumber(mu) && cJSON_IsNumber(sg) &&
                 isfinite(mu->valuedouble) && isfinite(sg->valuedouble) && sg->valuedouble > 0 &&
                 (m->names[k] = strdup(nm->valuestring)) != NULL;
            if (ok) m->mean[k] = mu->valuedouble, m->sd[k] = sg->valuedouble;
        }
        if (ok) m->step = (int64_t)step->valuedouble;
        else {
            dfs_set_error("%s: malformed \"series\" metadata (names, mean, std of %d features, step)", path, K);
            s = DFS_ERR_FORMAT;
        }
    }
    if (s == DFS_OK) s = dfs_params_read(path, &f, dfs_csdi_params(m->net), has_optim);
    const char *state = dfs_st_meta(&f, "state");
    if (s == DFS_OK && st) {
        memset(st, 0, sizeof *st);
        if (state) s = dfs_train_state_parse(path, state, st);
    }
    if (s == DFS_OK) s = dfs_sampling_recipe_parse(path, dfs_st_meta(&f, "sampling"), c.T, &m->sampling);
    if (s == DFS_OK && m->sampling.set && m->sampling.guidance != 1.0f) {
        dfs_set_error("%s: \"sampling\" metadata with guidance %g: a series model has none", path,
                      (double)m->sampling.guidance);
        s = DFS_ERR_FORMAT;
    }
    const char *tj = dfs_st_meta(&f, "train");
    if (s == DFS_OK && train_json && tj) *train_json = strdup(tj);
    cJSON_Delete(sj);
    dfs_st_free(&f);
    if (s != DFS_OK) {
        dfs_series_model_free(m);
        return s;
    }
    *out = m;
    return DFS_OK;
}

/* ---- training ------------------------------------------------------------------------------ */

void dfs_series_train_config_default(dfs_series_train_config *c) {
    memset(c, 0, sizeof *c);
    c->batch = 16;
    dfs_adamw_config_default(&c->opt);
    c->opt.lr = 1e-3f;
    c->opt.warmup = 100;
    c->opt.ema_decay = 0.999f;
    c->opt.weight_decay = 1e-6f;
    c->p_random = 0.3f;
    c->p_forecast = 0.3f;
    c->p_block = 0.25f;
    c->p_history = 0.15f;
}

struct dfs_series_trainer {
    dfs_series_model *m;
    dfs_series_train_config c;
    dfs_train_state *st;
    dfs_step *step;
    int L, K, nwin;
    int *starts;          /* (nwin) window starts */
    int *perm;
    long perm_epoch;
    float *data;          /* (train_end, K) normalised, 0 where missing */
    uint8_t *obs;         /* (train_end, K) */
    float *cal;           /* (train_end, 4) */
    float *x0, *eps, *xt, *target, *wcal; /* (B, L, K) and (B, L, 4) */
    uint8_t *present, *known;
    int *t;
};

void dfs_series_trainer_free(dfs_series_trainer *t) {
    if (!t) return;
    dfs_step_free(t->step);
    free(t->starts);
    free(t->perm);
    free(t->data);
    free(t->obs);
    free(t->cal);
    free(t->x0);
    free(t->eps);
    free(t->xt);
    free(t->target);
    free(t->wcal);
    free(t->present);
    free(t->known);
    free(t->t);
    free(t);
}

int dfs_series_trainer_windows(const dfs_series_trainer *t) { return t->nwin; }

void dfs_series_trainer_set_lr(dfs_series_trainer *t, float lr) {
    if (lr > 0.0f && lr < 1.0f) t->c.opt.lr = lr;
}

dfs_status dfs_series_trainer_new(dfs_series_trainer **out, dfs_series_model *m,
                                  const dfs_series_train_config *c, const dfs_series *s,
                                  int train_end, dfs_train_state *st) {
    *out = NULL;
    const int L = m->cfg.window, K = m->K;
    if (c->batch < 1 || c->batch > 4096 || !(c->opt.lr > 0.0f) || !(c->opt.lr < 1.0f)) {
        dfs_set_error("batch must be 1..4096 and the learning rate in (0, 1) (batch %d, lr %g)",
                      c->batch, c->opt.lr);
        return DFS_ERR_ARG;
    }
    float psum = c->p_random + c->p_forecast + c->p_block + c->p_history;
    if (!(c->p_random >= 0 && c->p_forecast >= 0 && c->p_block >= 0 && c->p_history >= 0 && psum > 0)) {
        dfs_set_error("the training masks' shares must be >= 0 with a positive sum");
        return DFS_ERR_ARG;
    }
    if (train_end < L || train_end > s->n_steps) {
        dfs_set_error("the training span has %d steps, fewer than one window of %d", train_end, L);
        return DFS_ERR_ARG;
    }
    int idx[4096];
    if (K > 4096) return DFS_ERR_ARG;
    dfs_status ms = dfs_series_match(m, s, idx);
    if (ms != DFS_OK) return ms;
    dfs_series_trainer *t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    t->m = m, t->c = *c, t->st = st, t->L = L, t->K = K, t->perm_epoch = -1;
    const size_t B = (size_t)c->batch, D = (size_t)L * K;
    t->step = dfs_step_new();
    t->starts = malloc((size_t)(train_end - L + 1) * sizeof(int));
    t->perm = malloc((size_t)(train_end - L + 1) * sizeof(int));
    t->data = malloc((size_t)train_end * K * sizeof(float));
    t->obs = malloc((size_t)train_end * K);
    t->cal = malloc((size_t)train_end * DFS_SERIES_CALENDAR * sizeof(float));
    t->x0 = malloc(B * D * sizeof(float));
    t->eps = malloc(B * D * sizeof(float));
    t->xt = malloc(B * D * sizeof(float));
    t->target = malloc(B * D * sizeof(float));
    t->wcal = malloc(B * L * DFS_SERIES_CALENDAR * sizeof(float));
    t->present = malloc(B * D);
    t->known = malloc(B * D);
    t->t = malloc(B * sizeof(int));
    if (!t->step || !t->starts || !t->perm || !t->data || !t->obs || !t->cal || !t->x0 || !t->eps ||
        !t->xt || !t->target || !t->wcal || !t->present || !t->known || !t->t)
        goto nomem;
    for (int i = 0; i < train_end; i++)
        for (int k = 0; k < K; k++) {
            const size_t j = (size_t)i * s->n_features + idx[k];
            const int o = s->observed[j] != 0;
            t->obs[(size_t)i * K + k] = (uint8_t)o;
            t->data[(size_t)i * K + k] = o ? (float)((s->values[j] - m->mean[k]) / m->sd[k]) : 0.0f;
        }
    model_calendar(m, s->times, train_end, t->cal);
    for (int w = 0; w + L <= train_end; w++) {
        int any = 0;
        for (size_t j = 0; j < D && !any; j++) any = t->obs[(size_t)w * K + j];
        if (any) t->starts[t->nwin++] = w;
    }
    if (t->nwin < 1) {
        dfs_series_trainer_free(t);
        dfs_set_error("no window of the training span has an observed value");
        return DFS_ERR_ARG;
    }
    *out = t;
    return DFS_OK;
nomem:
    dfs_series_trainer_free(t);
    dfs_set_error("out of memory for the series trainer");
    return DFS_ERR_NOMEM;
}

/* the data order of an epoch: a shuffle seeded by (run seed, epoch), as the image trainer's */
static int next_window(dfs_series_trainer *t, long seen) {
    long n = t->nwin, epoch = seen / n;
    if (epoch != t->perm_epoch) {
        dfs_epoch_order(t->perm, (int)n, t->st->seed, epoch);
        t->perm_epoch = epoch;
    }
    return t->starts[t->perm[seen % n]];
}

/* The conditioning entries of one window (known, L K) from its observed ones, by one of the
 * four strategies. */
static void training_mask(dfs_series_trainer *t, const uint8_t *obs, uint8_t *known, dfs_rng *rng) {
    const int L = t->L, K = t->K;
    const size_t D = (size_t)L * K;
    const dfs_series_train_config *c = &t->c;
    const float psum = c->p_random + c->p_forecast + c->p_block + c->p_history;
    float u = dfs_rng_uniform(rng) * psum;
    if (u >= c->p_random + c->p_forecast + c->p_block) { /* historical */
        int other = t->starts[dfs_rng_below(rng, (uint32_t)t->nwin)];
        const uint8_t *pat = t->obs + (size_t)other * K;
        size_t hidden = 0;
        for (size_t j = 0; j < D; j++) {
            known[j] = obs[j] && pat[j];
            hidden += obs[j] && !pat[j];
        }
        if (hidden > 0) return;
        u = 0; /* nothing hidden: random instead */
    }
    if (u < c->p_random) { /* random: each observed entry hidden with probability r */
        const float r = dfs_rng_uniform(rng);
        for (size_t j = 0; j < D; j++) known[j] = obs[j] && dfs_rng_uniform(rng) >= r;
    } else if (u < c->p_random + c->p_forecast) { /* forecast: the last H steps */
        const int hmax = dfs_series_forecast_max(&t->m->cfg);
        const int H = 1 + (int)dfs_rng_below(rng, (uint32_t)hmax);
        for (int l = 0; l < L; l++)
            for (int k = 0; k < K; k++) known[(size_t)l * K + k] = obs[(size_t)l * K + k] && l < L - H;
    } else { /* a gap per feature */
        const int gmax = L / 4 > 1 ? L / 4 : 1;
        memcpy(known, obs, D);
        for (int k = 0; k < K; k++) {
            const int len = 1 + (int)dfs_rng_below(rng, (uint32_t)gmax);
            const int at = (int)dfs_rng_below(rng, (uint32_t)(L - len + 1));
            for (int l = at; l < at + len; l++) known[(size_t)l * K + k] = 0;
        }
    }
}

static dfs_tensor *csdi_rows(void *user, dfs_graph *g, int lo, int nb) {
    dfs_series_trainer *t = user;
    const size_t D = (size_t)t->L * t->K;
    dfs_csdi_input in = {
        .B = nb, .L = t->L, .K = t->K,
        .xt = t->xt + (size_t)lo * D,
        .cond = t->x0 + (size_t)lo * D,
        .cond_mask = t->known + (size_t)lo * D,
        .t = t->t + lo,
        .calendar = t->wcal + (size_t)lo * t->L * DFS_SERIES_CALENDAR,
    };
    return dfs_csdi_forward(t->m->net, g, &in);
}

dfs_status dfs_series_trainer_step(dfs_series_trainer *t, float *loss) {
    dfs_series_model *m = t->m;
    dfs_rng *rng = &t->st->rng;
    const int B = t->c.batch, L = t->L, K = t->K;
    const size_t D = (size_t)L * K;
    for (int i = 0; i < B; i++) {
        const int w = next_window(t, t->st->images_seen + i);
        memcpy(t->x0 + i * D, t->data + (size_t)w * K, D * sizeof(float));
        memcpy(t->present + i * D, t->obs + (size_t)w * K, D);
        memcpy(t->wcal + (size_t)i * L * DFS_SERIES_CALENDAR, t->cal + (size_t)w * DFS_SERIES_CALENDAR,
               (size_t)L * DFS_SERIES_CALENDAR * sizeof(float));
        training_mask(t, t->present + i * D, t->known + i * D, rng);
        t->t[i] = dfs_draw_t(&m->sched, rng);
    }
    /* the core: eps on the observed entries, x_t and the target; the loss on the targets */
    const dfs_masks mk = {.present = t->present, .known_mask = t->known};
    dfs_draw_noise(&mk, rng, t->eps, B, D);
    dfs_train_inputs(&m->sched, DFS_PRED_EPS, &mk, t->t, t->x0, t->eps, B, D, t->xt, t->target);
    dfs_params *p = dfs_csdi_params(m->net);
    const dfs_denoiser den = {p, csdi_rows, t};
    float Lv = NAN;
    dfs_status s = dfs_step_run(t->step, &den, B, D, t->target, &mk, rng, &Lv);
    if (s != DFS_OK) return s;
    if (loss) *loss = Lv;
    if (!isfinite(Lv)) {
        dfs_set_error("loss is %g at step %ld", Lv, t->st->step + 1);
        return DFS_ERR_NAN;
    }
    s = dfs_adamw_step(p, &t->c.opt, t->st->step + 1, NULL);
    if (s != DFS_OK) return s;
    t->st->step++;
    t->st->images_seen += B;
    return DFS_OK;
}

/* ---- sampling ------------------------------------------------------------------------------ */

void dfs_series_request_default(dfs_series_request *r) {
    memset(r, 0, sizeof *r);
    dfs_sampler_config_default(&r->sampler);
    r->S = 100;
}

/* What the samplers' model function reads: rows are (window, sample) pairs, window = row / S
 * within the current group. */
typedef struct {
    dfs_series_model *m;
    int L, K, S;
    const float *cond;     /* (group windows, L K) normalised */
    const uint8_t *known;  /* (group windows, L K) */
    const float *side;     /* (group windows, dfs_csdi_side_floats): the side projections */
    size_t side_n;         /* floats per window there */
    struct pred_worker {   /* one per thread, made once per dfs_series_sample call */
        dfs_graph *g;
        float *cbuf;          /* a pass's conditioning values */
        uint8_t *kbuf;        /* its mask */
        const float **sbuf;   /* and its windows' side projections */
    } *w;
    int ng;
    char err[256];
} predictor;

/* rows [lo, hi) through graph g in passes of at most `pass` rows */
static dfs_status predict_rows(predictor *P, struct pred_worker *wk, const float *x, const int *t, int lo,
                               int hi, int pass, float *out) {
    dfs_graph *g = wk->g;
    const int L = P->L, K = P->K;
    const size_t D = (size_t)L * K;
    jmp_buf jb;
    if (setjmp(jb)) {
        dfs_graph_set_oom_jump(g, NULL);
        dfs_graph_reset(g);
        return DFS_ERR_NOMEM;
    }
    dfs_graph_set_oom_jump(g, &jb);
    dfs_graph_set_grad(g, 0);
    dfs_graph_set_training(g, 0, NULL);
    for (int i = lo; i < hi; i += pass) {
        const int nb = hi - i < pass ? hi - i : pass;
        for (int r = 0; r < nb; r++) {
            const int w = (i + r) / P->S;
            memcpy(wk->cbuf + r * D, P->cond + w * D, D * sizeof(float));
            memcpy(wk->kbuf + r * D, P->known + w * D, D);
            wk->sbuf[r] = P->side + (size_t)w * P->side_n;
        }
        dfs_graph_reset(g);
        dfs_csdi_input in = {.B = nb, .L = L, .K = K, .xt = x + (size_t)i * D, .cond = wk->cbuf,
                             .cond_mask = wk->kbuf, .t = t + i, .side = wk->sbuf};
        dfs_tensor *y = dfs_csdi_forward(P->m->net, g, &in);
        memcpy(out + (size_t)i * D, y->data, (size_t)nb * D * sizeof(float));
    }
    dfs_graph_set_oom_jump(g, NULL);
    return DFS_OK;
}

static dfs_status series_predict(void *user, const float *x, const int *t, const int *labels, int n,
                                 float *out) {
    (void)labels;
    predictor *P = user;
    const int pass = P->m->max_batch;
    int nt = P->ng < n ? P->ng : n;
    dfs_status status = DFS_OK;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int k = 0, team = 1;
#ifdef _OPENMP
        k = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        const int lo = (int)((long)k * n / team), hi = (int)((long)(k + 1) * n / team);
        struct pred_worker *wk = &P->w[k];
        dfs_status s = DFS_OK;
        if (hi > lo) s = predict_rows(P, wk, x, t, lo, hi, pass, out);
        if (s != DFS_OK) {
#pragma omp critical(dfs_series_predict)
            {
                status = s;
                snprintf(P->err, sizeof P->err, "%s", s == DFS_ERR_NOMEM ? "out of memory for the activations" : dfs_last_error());
            }
        }
    }
    if (status != DFS_OK) dfs_set_error("series sampling: %s", P->err);
    return status;
}

/* The side projections of W windows (dfs_csdi_side_cache), in passes of max_batch windows */
static dfs_status side_projections(dfs_series_model *m, dfs_graph *g, int W, int L, int K,
                                   const uint8_t *known, const float *cal, float *out) {
    const size_t D = (size_t)L * K, n = dfs_csdi_side_floats(m->net, L, K);
    jmp_buf jb;
    if (setjmp(jb)) {
        dfs_graph_set_oom_jump(g, NULL);
        dfs_graph_reset(g);
        dfs_set_error("series sampling: out of memory for the side information");
        return DFS_ERR_NOMEM;
    }
    dfs_graph_set_oom_jump(g, &jb);
    for (int i = 0; i < W; i += m->max_batch) {
        const int nb = W - i < m->max_batch ? W - i : m->max_batch;
        dfs_graph_reset(g);
        dfs_csdi_input in = {.B = nb, .L = L, .K = K, .cond_mask = known + (size_t)i * D,
                             .calendar = cal + (size_t)i * L * DFS_SERIES_CALENDAR};
        dfs_csdi_side_cache(m->net, g, &in, out + (size_t)i * n);
    }
    dfs_graph_reset(g);
    dfs_graph_set_oom_jump(g, NULL);
    return DFS_OK;
}

int dfs_series_group_windows(const dfs_series_model *m, int W, int L, int S) {
    const size_t side_n = dfs_csdi_side_floats(m->net, L, m->K);
    int G = S > 0 ? (int)(4096 / S) : 1;
    if ((size_t)G * side_n > ((size_t)64 << 20)) G = (int)(((size_t)64 << 20) / side_n); /* 256 MiB */
    if (G < 1) G = 1;
    if (G > W) G = W;
    return G < 1 ? 1 : G;
}

dfs_status dfs_series_sample(dfs_series_model *m, const dfs_series_request *r, dfs_rng *rng,
                             float *out) {
    if (!m || !r || !rng || !out || !r->values || !r->known || !r->times || r->W < 1 || r->L < 1 ||
        r->S < 1 || (long)r->W * r->S > 100000000L) {
        dfs_set_error("series sampling: NULL arrays, or W = %d, L = %d, S = %d", r ? r->W : 0,
                      r ? r->L : 0, r ? r->S : 0);
        return DFS_ERR_ARG;
    }
    const int W = r->W, L = r->L, K = m->K, S = r->S;
    const size_t D = (size_t)L * K;
    for (size_t j = 0; j < (size_t)W * D; j++)
        if (r->known[j] && !isfinite(r->values[j])) {
            dfs_set_error("series sampling: window %zu, step %zu, feature %s is marked known but is %g",
                          j / D, j % D / K, m->names[j % K], r->values[j]);
            return DFS_ERR_ARG;
        }
    dfs_sampler_config sc = r->sampler;
    sc.clip_x0 = 0;
    sc.prediction = DFS_PRED_EPS;
    sc.guidance = 1.0f;
    /* windows go through the sampler in groups, so that memory stays bounded and the
     * progress callback sees each group */
    const size_t side_n = dfs_csdi_side_floats(m->net, L, K);
    const int G = dfs_series_group_windows(m, W, L, S);
    const size_t rows = (size_t)G * S;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
    predictor P = {.m = m, .L = L, .K = K, .S = S, .ng = nt, .side_n = side_n};
    float *cond = malloc((size_t)G * D * sizeof(float));
    uint8_t *known = malloc((size_t)G * D);
    float *cal = malloc((size_t)G * L * DFS_SERIES_CALENDAR * sizeof(float));
    float *kv = malloc(rows * D * sizeof(float));
    uint8_t *km = malloc(rows * D);
    float *x = malloc(rows * D * sizeof(float));
    float *side = malloc((size_t)G * side_n * sizeof(float));
    P.w = calloc((size_t)nt, sizeof *P.w);
    dfs_status s = cond && known && cal && kv && km && x && side && P.w ? DFS_OK : DFS_ERR_NOMEM;
    const size_t pass = (size_t)m->max_batch;
    for (int i = 0; s == DFS_OK && i < nt; i++) {
        struct pred_worker *wk = &P.w[i];
        wk->g = dfs_graph_new();
        wk->cbuf = malloc(pass * D * sizeof(float));
        wk->kbuf = malloc(pass * D);
        wk->sbuf = malloc(pass * sizeof *wk->sbuf);
        if (!wk->g || !wk->cbuf || !wk->kbuf || !wk->sbuf) s = DFS_ERR_NOMEM;
    }
    if (s != DFS_OK) dfs_set_error("series sampling: out of memory");
    dfs_params *p = dfs_csdi_params(m->net);
    if (!r->raw) dfs_params_swap_ema(p);
    for (int w0 = 0; s == DFS_OK && w0 < W; w0 += G) {
        const int gw = W - w0 < G ? W - w0 : G;
        for (int w = 0; w < gw; w++) {
            const float *v = r->values + (size_t)(w0 + w) * D;
            const uint8_t *kn = r->known + (size_t)(w0 + w) * D;
            for (size_t j = 0; j < D; j++) {
                known[w * D + j] = kn[j] != 0;
                cond[w * D + j] = kn[j] ? (float)((v[j] - m->mean[j % K]) / m->sd[j % K]) : 0.0f;
                if (!isfinite(cond[w * D + j])) {
                    dfs_set_error("series sampling: window %d, step %zu, feature %s: %g is out of range for the "
                                  "model's normalisation (mean %g, sd %g)", w0 + w, j / K, m->names[j % K], v[j],
                                  m->mean[j % K], m->sd[j % K]);
                    s = DFS_ERR_ARG;
                }
            }
            model_calendar(m, r->times + (size_t)(w0 + w) * L, L, cal + (size_t)w * L * DFS_SERIES_CALENDAR);
            for (int q = 0; q < S; q++) {
                memcpy(kv + ((size_t)w * S + q) * D, cond + w * D, D * sizeof(float));
                memcpy(km + ((size_t)w * S + q) * D, known + w * D, D);
            }
        }
        if (s != DFS_OK) break;
        s = side_projections(m, P.w[0].g, gw, L, K, known, cal, side);
        if (s != DFS_OK) break;
        P.cond = cond, P.known = known, P.side = side;
        sc.known = kv;
        sc.known_mask = km;
        s = dfs_sample(&m->sched, &sc, series_predict, &P, NULL, gw * S, D, rng, x, r->cb, r->cb_user);
        if (s != DFS_OK) break;
        for (int w = 0; w < gw; w++)
            for (int q = 0; q < S; q++) {
                const float *xs = x + ((size_t)w * S + q) * D;
                const float *v = r->values + (size_t)(w0 + w) * D;
                const uint8_t *kn = r->known + (size_t)(w0 + w) * D;
                float *o = out + (((size_t)(w0 + w)) * S + q) * D;
                for (size_t j = 0; j < D; j++)
                    o[j] = kn[j] ? v[j] : (float)(xs[j] * m->sd[j % K] + m->mean[j % K]);
            }
    }
    if (!r->raw) dfs_params_swap_ema(p);
    for (int i = 0; P.w && i < nt; i++) {
        dfs_graph_free(P.w[i].g);
        free(P.w[i].cbuf), free(P.w[i].kbuf), free(P.w[i].sbuf);
    }
    free(P.w);
    free(cond);
    free(known);
    free(cal);
    free(side);
    free(kv);
    free(km);
    free(x);
    return s;
}
