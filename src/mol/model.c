/* model.c - EDM on the diffusion core: molecules as padded rows of atoms, the EGNN denoiser,
 * checkpoints, the training step and sampling with the atom count drawn from the training set
 * and an optional fixed fragment (include/diffuse/mol.h, "Generating molecules").
 *
 * References
 *   EDM   Hoogeboom, Satorras, Vignac, Welling 2022, "Equivariant Diffusion for Molecule
 *         Generation in 3D" (sec. 3: x and h diffused jointly, zero centre of mass; app. B)
 *   DDPM  Ho, Jain, Abbeel 2020 (Algorithm 1, the training step)
 */
#include "diffuse/mol.h"
#include "mol_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#define FORMAT_NAME "diffuse-1"
enum { W = DFS_MOL_WIDTH, F = DFS_MOL_TYPES + 1 };

static const int type_z[DFS_MOL_TYPES] = {1, 6, 7, 8, 9};
static const dfs_com_layout layout = {DFS_MOL_WIDTH, 3};

int dfs_mol_type_z(int k) { return k >= 0 && k < DFS_MOL_TYPES ? type_z[k] : 0; }

int dfs_mol_z_type(int z) {
    for (int k = 0; k < DFS_MOL_TYPES; k++)
        if (type_z[k] == z) return k;
    return -1;
}

/* ---- the model ----------------------------------------------------------------------------- */

void dfs_mol_config_default(dfs_mol_config *c) {
    memset(c, 0, sizeof *c);
    dfs_egnn_config_default(&c->net);
    c->net.features = F;
    c->schedule = DFS_SCHEDULE_POLY2;
    c->T = 1000;
}

void dfs_mol_model_free(dfs_mol_model *m) {
    if (!m) return;
    dfs_egnn_free(m->net);
    dfs_schedule_free(&m->sched);
    free(m->sizes);
    free(m);
}

/* the shell for M atom slots: the size histogram (zeroed), net and schedule */
static dfs_status model_alloc(dfs_mol_model **out, const dfs_mol_config *c, int M, uint64_t seed) {
    *out = NULL;
    dfs_mol_config cc = *c;
    cc.net.features = F;
    if (dfs_egnn_config_check(&cc.net) != DFS_OK) return DFS_ERR_ARG;
    if (M < 1 || M > DFS_MOL_MAX_SLOTS) {
        dfs_set_error("molecule model: %d atom slots outside 1..%d", M, DFS_MOL_MAX_SLOTS);
        return DFS_ERR_ARG;
    }
    dfs_mol_model *m = calloc(1, sizeof *m);
    if (!m || !(m->sizes = calloc((size_t)M + 1, sizeof *m->sizes))) {
        dfs_mol_model_free(m);
        dfs_set_error("molecule model: out of memory");
        return DFS_ERR_NOMEM;
    }
    m->cfg = cc;
    m->M = M;
    m->max_batch = 64;
    dfs_status s = dfs_schedule_init(&m->sched, cc.schedule, cc.T);
    if (s != DFS_OK) {
        dfs_mol_model_free(m);
        return s;
    }
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    if (!(m->net = dfs_egnn_new(&cc.net, &rng))) {
        dfs_mol_model_free(m);
        return DFS_ERR_NOMEM;
    }
    *out = m;
    return DFS_OK;
}

/* DFS_ERR_ARG naming molecule i of the set when it cannot be a training molecule */
static dfs_status check_mol(const dfs_mol *mol, int i, int M) {
    if (mol->n < 1 || mol->n > M) {
        dfs_set_error("molecule %d (%s) has %d atoms, outside 1..%d", i + 1, mol->title ? mol->title : "",
                      mol->n, M);
        return DFS_ERR_ARG;
    }
    for (int a = 0; a < mol->n; a++)
        if (dfs_mol_z_type(mol->z[a]) < 0) {
            const char *sym = dfs_element_symbol(mol->z[a]);
            dfs_set_error("molecule %d (%s): atom %d is %s; the model knows H, C, N, O and F only", i + 1,
                          mol->title ? mol->title : "", a + 1, sym ? sym : "not an element");
            return DFS_ERR_ARG;
        }
    return DFS_OK;
}

dfs_status dfs_mol_model_new(dfs_mol_model **out, const dfs_mol_config *c, const dfs_mol *set,
                             int n, uint64_t seed) {
    *out = NULL;
    if (!c || !set || n < 1) {
        dfs_set_error("molecule model: no training molecules");
        return DFS_ERR_ARG;
    }
    int M = 0;
    for (int i = 0; i < n; i++) {
        dfs_status s = check_mol(&set[i], i, DFS_MOL_MAX_SLOTS);
        if (s != DFS_OK) return s;
        if (set[i].n > M) M = set[i].n;
    }
    dfs_mol_model *m;
    dfs_status s = model_alloc(&m, c, M, seed);
    if (s != DFS_OK) return s;
    for (int i = 0; i < n; i++) m->sizes[set[i].n]++;
    *out = m;
    return DFS_OK;
}

/* ---- rows ----------------------------------------------------------------------------------- */

dfs_status dfs_mol_encode(const dfs_mol_model *m, const dfs_mol *mol, float *row, uint8_t *present) {
    dfs_status s = check_mol(mol, 0, m->M);
    if (s != DFS_OK) return s;
    double c[3] = {0, 0, 0};
    for (int a = 0; a < mol->n; a++)
        for (int d = 0; d < 3; d++) c[d] += mol->pos[3 * a + d];
    for (int d = 0; d < 3; d++) c[d] /= mol->n;
    memset(row, 0, (size_t)m->M * W * sizeof(float));
    memset(present, 0, (size_t)m->M * W);
    for (int a = 0; a < mol->n; a++) {
        float *r = row + (size_t)a * W;
        for (int d = 0; d < 3; d++) r[d] = (float)(mol->pos[3 * a + d] - c[d]);
        r[3 + dfs_mol_z_type(mol->z[a])] = 0.25f;
        r[3 + DFS_MOL_TYPES] = 0.1f * (float)mol->z[a];
        memset(present + (size_t)a * W, 1, W);
    }
    return DFS_OK;
}

dfs_status dfs_mol_decode(const dfs_mol_model *m, const float *row, int atoms, dfs_mol *out) {
    memset(out, 0, sizeof *out);
    if (atoms < 0 || atoms > m->M) {
        dfs_set_error("molecule decode: %d atoms outside 0..%d", atoms, m->M);
        return DFS_ERR_ARG;
    }
    dfs_status s = dfs_mol_init(out, atoms);
    if (s != DFS_OK) return s;
    for (int a = 0; a < atoms; a++) {
        const float *r = row + (size_t)a * W;
        int best = 0;
        for (int k = 1; k < DFS_MOL_TYPES; k++)
            if (r[3 + k] > r[3 + best]) best = k;
        out->z[a] = type_z[best];
        for (int d = 0; d < 3; d++) out->pos[3 * a + d] = r[d];
    }
    return DFS_OK;
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static char *egnn_json(const dfs_mol_model *m) {
    const dfs_egnn_config *c = &m->cfg.net;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "features", c->features);
    cJSON_AddNumberToObject(o, "hidden", c->hidden);
    cJSON_AddNumberToObject(o, "layers", c->layers);
    cJSON_AddNumberToObject(o, "sublayers", c->sublayers);
    cJSON_AddNumberToObject(o, "attention", c->attention);
    cJSON_AddNumberToObject(o, "tanh", c->tanh);
    cJSON_AddNumberToObject(o, "coords_range", c->coords_range);
    cJSON_AddNumberToObject(o, "norm_constant", c->norm_constant);
    cJSON_AddNumberToObject(o, "normalization_factor", c->normalization_factor);
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return j;
}

static char *molecules_json(const dfs_mol_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON *types = cJSON_AddArrayToObject(o, "types");
    for (int k = 0; k < DFS_MOL_TYPES; k++) cJSON_AddItemToArray(types, cJSON_CreateString(dfs_element_symbol(type_z[k])));
    cJSON_AddNumberToObject(o, "slots", m->M);
    cJSON *sizes = cJSON_AddArrayToObject(o, "sizes");
    for (int a = 0; a <= m->M; a++) cJSON_AddItemToArray(sizes, cJSON_CreateNumber((double)m->sizes[a]));
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return j;
}

dfs_status dfs_mol_save(const char *path, const dfs_mol_model *m, const dfs_train_state *st,
                        const char *train_json, dfs_ckpt_kind kind) {
    char *nj = egnn_json(m), *dj = molecules_json(m);
    const char *const meta[2][2] = {{"egnn", nj}, {"molecules", dj}};
    dfs_status s = dfs_checkpoint_save_net(path, "molecule", dfs_egnn_params(m->net), meta, 2, m->cfg.schedule, m->cfg.T, st,
                                           train_json, &m->sampling, kind);
    cJSON_free(nj);
    cJSON_free(dj);
    return s;
}

/* a number member of o, integral when `integral`, in [lo, hi] */
static int get_num(const cJSON *o, const char *key, double lo, double hi, int integral, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || (integral && v->valuedouble != floor(v->valuedouble)) ||
        v->valuedouble < lo || v->valuedouble > hi)
        return 0;
    *out = v->valuedouble;
    return 1;
}

static dfs_status parse_meta(const char *path, const dfs_safetensors *f, dfs_mol_config *c, int *M,
                             cJSON **mols) {
    *mols = NULL;
    const char *fmt = dfs_st_meta(f, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME)) {
        dfs_set_error("%s: not a diffuse checkpoint", path);
        return DFS_ERR_FORMAT;
    }
    if (!dfs_st_meta(f, "molecules")) {
        dfs_set_error("%s: not a molecule model (%s)", path,
                      dfs_st_meta(f, "unet")     ? "it is an image model: use diffuse sample"
                      : dfs_st_meta(f, "series") ? "it is a time-series model: use diffuse series"
                                                 : "no \"molecules\" metadata");
        return DFS_ERR_FORMAT;
    }
    dfs_mol_config_default(c);
    cJSON *n = cJSON_Parse(dfs_st_meta(f, "egnn") ? dfs_st_meta(f, "egnn") : "");
    cJSON *d = cJSON_Parse(dfs_st_meta(f, "diffusion") ? dfs_st_meta(f, "diffusion") : "");
    cJSON *s = cJSON_Parse(dfs_st_meta(f, "molecules"));
    dfs_egnn_config *k = &c->net;
    double v[11];
    int ok = n && d && s && get_num(n, "features", F, F, 1, &v[0]) && get_num(n, "hidden", 1, 4096, 1, &v[1]) &&
             get_num(n, "layers", 1, 64, 1, &v[2]) && get_num(n, "sublayers", 1, 16, 1, &v[3]) &&
             get_num(n, "attention", 0, 1, 1, &v[4]) && get_num(n, "tanh", 0, 1, 1, &v[5]) &&
             get_num(n, "coords_range", 1e-30, 1e30, 0, &v[6]) && get_num(n, "norm_constant", 0, 1e30, 0, &v[7]) &&
             get_num(n, "normalization_factor", 1e-30, 1e30, 0, &v[8]) && get_num(d, "T", 1, 100000, 1, &v[9]) &&
             get_num(s, "slots", 1, DFS_MOL_MAX_SLOTS, 1, &v[10]);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(d, "schedule");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "prediction");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(s, "types");
    int sk = cJSON_IsString(sc) ? dfs_schedule_from_name(sc->valuestring) : -1;
    ok = ok && sk >= 0 && cJSON_IsString(pr) && !strcmp(pr->valuestring, "eps") &&
         cJSON_GetArraySize(types) == DFS_MOL_TYPES;
    for (int t = 0; ok && t < DFS_MOL_TYPES; t++) {
        const cJSON *e = cJSON_GetArrayItem(types, t);
        ok = cJSON_IsString(e) && !strcmp(e->valuestring, dfs_element_symbol(type_z[t]));
    }
    if (ok) {
        k->features = (int)v[0], k->hidden = (int)v[1], k->layers = (int)v[2], k->sublayers = (int)v[3];
        k->attention = (int)v[4], k->tanh = (int)v[5], k->coords_range = (float)v[6];
        k->norm_constant = (float)v[7], k->normalization_factor = (float)v[8];
        c->T = (int)v[9], c->schedule = sk, *M = (int)v[10];
    }
    cJSON_Delete(n);
    cJSON_Delete(d);
    if (!ok) {
        cJSON_Delete(s);
        dfs_set_error("%s: missing or malformed \"egnn\", \"diffusion\" or \"molecules\" metadata", path);
        return DFS_ERR_FORMAT;
    }
    *mols = s;
    return DFS_OK;
}

dfs_status dfs_mol_load(const char *path, dfs_mol_model **out, dfs_train_state *st, int *has_optim,
                        char **train_json) {
    *out = NULL;
    if (has_optim) *has_optim = 0;
    if (train_json) *train_json = NULL;
    dfs_safetensors f;
    dfs_status s = dfs_st_load(&f, path);
    if (s != DFS_OK) return s;
    dfs_mol_config c;
    cJSON *mj = NULL;
    dfs_mol_model *m = NULL;
    int M = 0;
    s = parse_meta(path, &f, &c, &M, &mj);
    /* a config asking for more weights than the file holds (2 bytes each at least) is refused
     * before the net is allocated */
    if (s == DFS_OK) {
        size_t have = 0;
        for (int i = 0; i < f.count; i++) have += f.t[i].nbytes;
        if (dfs_egnn_config_check(&c.net) != DFS_OK || dfs_egnn_param_count(&c.net) > have / 2) {
            dfs_set_error("%s: its \"egnn\" config (%s) does not fit the %zu bytes of tensors it holds", path,
                          dfs_egnn_config_check(&c.net) != DFS_OK ? "invalid" : "too many parameters", have);
            s = DFS_ERR_FORMAT;
        }
    }
    if (s == DFS_OK && (s = model_alloc(&m, &c, M, 0)) != DFS_OK && s == DFS_ERR_ARG) s = DFS_ERR_FORMAT;
    if (s == DFS_OK) {
        const cJSON *sizes = cJSON_GetObjectItemCaseSensitive(mj, "sizes");
        double total = 0;
        int ok = cJSON_GetArraySize(sizes) == M + 1;
        for (int a = 0; ok && a <= M; a++) {
            const cJSON *e = cJSON_GetArrayItem(sizes, a);
            ok = cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble <= 1e12 &&
                 e->valuedouble == floor(e->valuedouble) && (a > 0 || e->valuedouble == 0);
            if (ok) m->sizes[a] = (long)e->valuedouble, total += e->valuedouble;
        }
        if (!ok || !(total > 0) || total > 2147483647.0) {
            dfs_set_error("%s: malformed \"molecules\" metadata (sizes: %d counts of molecules with 0..%d atoms, "
                          "none with 0, some with more, at most 2^31 - 1 in all)", path, M + 1, M);
            s = DFS_ERR_FORMAT;
        }
    }
    if (s == DFS_OK) s = dfs_params_read(path, &f, dfs_egnn_params(m->net), has_optim);
    const char *state = dfs_st_meta(&f, "state");
    if (s == DFS_OK && st) {
        memset(st, 0, sizeof *st);
        if (state) s = dfs_train_state_parse(path, state, st);
    }
    if (s == DFS_OK) s = dfs_sampling_recipe_parse(path, dfs_st_meta(&f, "sampling"), c.T, &m->sampling);
    if (s == DFS_OK && m->sampling.set && m->sampling.guidance != 1.0f) {
        dfs_set_error("%s: \"sampling\" metadata with guidance %g: a molecule model has none", path,
                      (double)m->sampling.guidance);
        s = DFS_ERR_FORMAT;
    }
    const char *tj = dfs_st_meta(&f, "train");
    if (s == DFS_OK && train_json && tj && !(*train_json = strdup(tj))) s = DFS_ERR_NOMEM;
    cJSON_Delete(mj);
    dfs_st_free(&f);
    if (s != DFS_OK) {
        dfs_mol_model_free(m);
        return s;
    }
    *out = m;
    return DFS_OK;
}

/* ---- training ------------------------------------------------------------------------------ */

void dfs_mol_train_config_default(dfs_mol_train_config *c) {
    memset(c, 0, sizeof *c);
    c->batch = 64;
    dfs_adamw_config_default(&c->opt);
    c->opt.lr = 1e-3f;
    c->opt.warmup = 100;
    c->opt.ema_decay = 0.999f;
}

/* Batches of like sizes. The edges of a batch cost the square of its largest molecule (every
 * molecule is padded to it), so a batch drawn at random from the set pays for about 29 x 29
 * pairs where its molecules have 16 atoms on average. The epoch order is cut into groups of
 * BUCKET batches; each group is sorted by size (then by its order) and cut into its batches, so
 * every molecule is still seen once an epoch, and a batch pads only to its own largest. The
 * group's batches then run in an order drawn for the group (from the seed): in size order,
 * every BUCKET steps would sweep from the smallest molecules to the largest, a periodic drift
 * that Adam's momentum (about 10 steps) would follow (since stop 29). */
enum { BUCKET = 8 };

/* a molecule k, its size and its place: sorted by size, then place */
typedef struct {
    int size, at, k;
} by_size;

struct dfs_mol_trainer {
    dfs_mol_model *m;
    dfs_mol_train_config c;
    dfs_train_state *st;
    dfs_step *step;
    int n;
    float *rows;          /* (n, M W) the encoded training set */
    uint8_t *pres;        /* (n, M W) */
    int *perm;
    long perm_epoch;
    int *size;            /* (n) atoms of each training molecule */
    by_size *grp;         /* (BUCKET B) the molecules of batch group grp_id, by size */
    int grp_order[BUCKET];  /* the order its batches run in */
    long grp_id;
    float *x0, *eps, *xt, *target, *tn; /* (B, M W) and (B) times for the net */
    uint8_t *present, *node;            /* (B, M W), (B, M) */
    int *t;
};

void dfs_mol_trainer_free(dfs_mol_trainer *t) {
    if (!t) return;
    dfs_step_free(t->step);
    free(t->rows), free(t->pres), free(t->perm), free(t->size), free(t->grp);
    free(t->x0), free(t->eps), free(t->xt), free(t->target), free(t->tn);
    free(t->present), free(t->node), free(t->t);
    free(t);
}

void dfs_mol_trainer_set_lr(dfs_mol_trainer *t, float lr) {
    if (lr > 0.0f && lr < 1.0f) t->c.opt.lr = lr;
}

dfs_status dfs_mol_trainer_new(dfs_mol_trainer **out, dfs_mol_model *m, const dfs_mol_train_config *c,
                               const dfs_mol *set, int n, dfs_train_state *st) {
    *out = NULL;
    if (c->batch < 1 || c->batch > 4096 || !(c->opt.lr > 0.0f) || !(c->opt.lr < 1.0f) || !set || n < 1) {
        dfs_set_error("batch must be 1..4096, the learning rate in (0, 1) and the set not empty (batch %d, lr %g, "
                      "%d molecules)", c->batch, c->opt.lr, n);
        return DFS_ERR_ARG;
    }
    dfs_mol_trainer *t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    t->m = m, t->c = *c, t->st = st, t->n = n, t->perm_epoch = -1, t->grp_id = -1;
    const size_t B = (size_t)c->batch, D = (size_t)m->M * W;
    t->step = dfs_step_new();
    t->rows = malloc((size_t)n * D * sizeof(float));
    t->pres = malloc((size_t)n * D);
    t->perm = malloc((size_t)n * sizeof(int));
    t->size = malloc((size_t)n * sizeof(int));
    t->grp = malloc(B * BUCKET * sizeof *t->grp);
    t->x0 = malloc(B * D * sizeof(float));
    t->eps = malloc(B * D * sizeof(float));
    t->xt = malloc(B * D * sizeof(float));
    t->target = malloc(B * D * sizeof(float));
    t->tn = malloc(B * sizeof(float));
    t->present = malloc(B * D);
    t->node = malloc(B * (size_t)m->M);
    t->t = malloc(B * sizeof(int));
    if (!t->step || !t->rows || !t->pres || !t->perm || !t->size || !t->grp || !t->x0 || !t->eps || !t->xt || !t->target || !t->tn ||
        !t->present || !t->node || !t->t)
        goto nomem;
    for (int i = 0; i < n; i++) {
        dfs_status s = check_mol(&set[i], i, m->M);
        if (s == DFS_OK) s = dfs_mol_encode(m, &set[i], t->rows + (size_t)i * D, t->pres + (size_t)i * D);
        t->size[i] = set[i].n;
        if (s != DFS_OK) {
            dfs_mol_trainer_free(t);
            return s;
        }
    }
    *out = t;
    return DFS_OK;
nomem:
    dfs_mol_trainer_free(t);
    dfs_set_error("out of memory for the molecule trainer");
    return DFS_ERR_NOMEM;
}

/* what the denoiser's rows read: the batch's x_t, times and node mask */
typedef struct {
    dfs_egnn *net;
    int M;
    const float *xt, *tn;
    const uint8_t *node;
} rows_in;

static dfs_tensor *egnn_rows(void *user, dfs_graph *g, int lo, int nb) {
    const rows_in *r = user;
    const size_t D = (size_t)r->M * W;
    dfs_egnn_input in = {.B = nb, .M = r->M, .xh = r->xt + (size_t)lo * D, .t = r->tn + lo,
                         .node_mask = r->node + (size_t)lo * r->M};
    return dfs_egnn_forward(r->net, g, &in);
}

/* the node mask (rows, M) of a padding mask (rows, M W) */
static void node_mask(const uint8_t *present, int rows, int M, uint8_t *node) {
    for (size_t a = 0; a < (size_t)rows * M; a++) node[a] = present[a * W] != 0;
}

static int cmp_size(const void *a, const void *b) {
    const by_size *x = a, *y = b;
    return x->size != y->size ? (x->size > y->size) - (x->size < y->size) : (x->at > y->at) - (x->at < y->at);
}

/* the molecule at position pos of the epoch orders (epoch pos / n, place pos % n) */
static int at_position(dfs_mol_trainer *t, long pos) {
    const long epoch = pos / t->n;
    if (epoch != t->perm_epoch) {
        dfs_epoch_order(t->perm, t->n, t->st->seed, epoch);
        t->perm_epoch = epoch;
    }
    return t->perm[pos % t->n];
}

/* the molecule at position pos, once its group is sorted by size */
static int bucketed(dfs_mol_trainer *t, long pos) {
    const long G = (long)t->c.batch * BUCKET, id = pos / G;
    if (id != t->grp_id) {
        for (long i = 0; i < G; i++) {
            const int k = at_position(t, id * G + i);
            t->grp[i] = (by_size){t->size[k], (int)i, k};
        }
        qsort(t->grp, (size_t)G, sizeof *t->grp, cmp_size);
        dfs_epoch_order(t->grp_order, BUCKET, t->st->seed ^ 0x5bd1e995u, id);
        t->grp_id = id;
    }
    const long B = t->c.batch, o = pos % G;
    return t->grp[t->grp_order[o / B] * B + o % B].k;
}

int dfs_mol_trainer_batch(dfs_mol_trainer *t, long seen, int *k) {
    int M = 1;
    for (int i = 0; i < t->c.batch; i++) {
        k[i] = bucketed(t, seen + i);
        if (t->size[k[i]] > M) M = t->size[k[i]];
    }
    return M;
}

dfs_status dfs_mol_trainer_step(dfs_mol_trainer *t, float *loss) {
    dfs_mol_model *m = t->m;
    dfs_rng *rng = &t->st->rng;
    const int B = t->c.batch;
    const size_t Dfull = (size_t)m->M * W;
    int k[4096];
    /* the batch's rows hold its largest molecule's atoms: the first M slots of each */
    const int M = dfs_mol_trainer_batch(t, t->st->images_seen, k);
    const size_t D = (size_t)M * W;
    for (int i = 0; i < B; i++) {
        memcpy(t->x0 + i * D, t->rows + (size_t)k[i] * Dfull, D * sizeof(float));
        memcpy(t->present + i * D, t->pres + (size_t)k[i] * Dfull, D);
        t->t[i] = dfs_draw_t(&m->sched, rng);
        t->tn[i] = (float)(t->t[i] + 1) / (float)m->cfg.T;
    }
    node_mask(t->present, B, M, t->node);
    /* the core: eps on the atoms present, projected to zero centre of mass; x_t; the loss on
     * every present entry, x and h together */
    const dfs_masks mk = {.present = t->present, .project = dfs_project_zero_com, .project_user = (void *)&layout};
    dfs_draw_noise(&mk, rng, t->eps, B, D);
    dfs_train_inputs(&m->sched, DFS_PRED_EPS, &mk, t->t, t->x0, t->eps, B, D, t->xt, t->target);
    dfs_params *p = dfs_egnn_params(m->net);
    rows_in ri = {m->net, M, t->xt, t->tn, t->node};
    const dfs_denoiser den = {p, egnn_rows, &ri};
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

void dfs_mol_request_default(dfs_mol_request *r) {
    memset(r, 0, sizeof *r);
    dfs_sampler_config_default(&r->sampler);
    r->n = 1;
}

typedef struct {
    dfs_mol_model *m;
    const uint8_t *node; /* (rows, M) */
    dfs_graph **g;       /* one per thread */
    int ng;
    char err[256];
} predictor;

static dfs_status predict_rows(predictor *P, dfs_graph *g, const float *x, const int *t, int lo, int hi,
                               float *out) {
    const int M = P->m->M, pass = P->m->max_batch;
    const size_t D = (size_t)M * W;
    jmp_buf jb;
    if (setjmp(jb)) {
        dfs_graph_set_oom_jump(g, NULL);
        dfs_graph_reset(g);
        return DFS_ERR_NOMEM;
    }
    dfs_graph_set_oom_jump(g, &jb);
    dfs_graph_set_grad(g, 0);
    dfs_graph_set_training(g, 0, NULL);
    float tn[4096];
    for (int i = lo; i < hi; i += pass) {
        const int nb = hi - i < pass ? hi - i : pass;
        for (int r = 0; r < nb; r++) tn[r] = (float)(t[i + r] + 1) / (float)P->m->cfg.T;
        dfs_graph_reset(g);
        /* the pass pads to its largest molecule, not to the model's M slots (atoms fill the
         * first slots of a row): the edges cost the square of it */
        int Mp = 1;
        for (int r = 0; r < nb; r++)
            for (int a = Mp; a < M; a++)
                if (P->node[(size_t)(i + r) * M + a]) Mp = a + 1;
        const size_t Dp = (size_t)Mp * W;
        float *xp = dfs_graph_alloc(g, (size_t)nb * Dp * sizeof(float));
        uint8_t *np = dfs_graph_alloc(g, (size_t)nb * Mp);
        for (int r = 0; r < nb; r++) {
            memcpy(xp + r * Dp, x + (size_t)(i + r) * D, Dp * sizeof(float));
            memcpy(np + (size_t)r * Mp, P->node + (size_t)(i + r) * M, (size_t)Mp);
        }
        dfs_egnn_input in = {.B = nb, .M = Mp, .xh = xp, .t = tn, .node_mask = np};
        dfs_tensor *y = dfs_egnn_forward(P->m->net, g, &in);
        for (int r = 0; r < nb; r++) {
            float *o = out + (size_t)(i + r) * D;
            memcpy(o, y->data + r * Dp, Dp * sizeof(float));
            memset(o + Dp, 0, (D - Dp) * sizeof(float));
        }
    }
    dfs_graph_set_oom_jump(g, NULL);
    return DFS_OK;
}

/* The rows in passes of SAMPLE_PASS molecules, the passes shared out among the threads as they
 * come free, the last (largest, as the rows run smallest first) first. The passes are the same
 * whatever the thread count, and so are the results. */
enum { SAMPLE_PASS = 32 };

static dfs_status mol_predict(void *user, const float *x, const int *t, const int *labels, int n, float *out) {
    (void)labels;
    predictor *P = user;
    const int np = (n + SAMPLE_PASS - 1) / SAMPLE_PASS;
    const int nt = P->ng < np ? P->ng : np;
    dfs_status status = DFS_OK;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
    for (int q = np - 1; q >= 0; q--) {
        int k = 0;
#ifdef _OPENMP
        k = omp_get_thread_num();
#endif
        const int lo = q * SAMPLE_PASS, hi = lo + SAMPLE_PASS < n ? lo + SAMPLE_PASS : n;
        dfs_status s = predict_rows(P, P->g[k], x, t, lo, hi, out);
        if (s != DFS_OK) {
#pragma omp critical(dfs_mol_predict)
            {
                status = s;
                snprintf(P->err, sizeof P->err, "%s", s == DFS_ERR_NOMEM ? "out of memory for the activations" : dfs_last_error());
            }
        }
    }
    if (status != DFS_OK) dfs_set_error("molecule sampling: %s", P->err);
    return status;
}

/* the user's callback with the group's first molecule */
typedef struct {
    const dfs_mol_request *r;
    int first;
} group_cb;

static void on_step(void *user, int i, int steps, int t, const float *x, int n) {
    (void)t;
    const group_cb *c = user;
    c->r->cb(c->r->cb_user, c->first, i, steps, x, n);
}

dfs_status dfs_mol_sample(dfs_mol_model *m, const dfs_mol_request *r, dfs_rng *rng, dfs_mol *out) {
    const dfs_mol *fr = r ? r->fragment : NULL;
    const int M = m ? m->M : 0;
    if (!m || !r || !rng || !out || r->n < 1 || r->n > 10000000 || r->atoms < 0 || r->atoms > M || r->group < 0) {
        dfs_set_error("molecule sampling: NULL arguments, or n = %d, atoms = %d (the model has %d slots)",
                      r ? r->n : 0, r ? r->atoms : 0, M);
        return DFS_ERR_ARG;
    }
    if (fr) {
        dfs_status s = check_mol(fr, 0, M);
        if (s != DFS_OK) {
            dfs_set_error("molecule sampling: the fragment: %s", dfs_last_error());
            return s;
        }
        if (r->atoms && r->atoms < fr->n) {
            dfs_set_error("molecule sampling: %d atoms asked for, fewer than the fragment's %d", r->atoms, fr->n);
            return DFS_ERR_ARG;
        }
    }
    const int n = r->n, G = r->group ? r->group : 256;
    const size_t D = (size_t)M * W;
    /* the sizes: fixed, or drawn from the training histogram (at least the fragment's) */
    int *sizes = malloc((size_t)n * sizeof(int));
    if (!sizes) return DFS_ERR_NOMEM;
    long total = 0;
    const int least = fr ? fr->n : 1;
    for (int a = least; a <= M; a++) total += m->sizes[a];
    if (!r->atoms && total <= 0) {
        free(sizes);
        dfs_set_error("molecule sampling: no training molecule has %d or more atoms; give the size", least);
        return DFS_ERR_ARG;
    }
    for (int i = 0; i < n; i++) {
        if (r->atoms) {
            sizes[i] = r->atoms;
            continue;
        }
        long u = (long)dfs_rng_below(rng, (uint32_t)total);
        int a = least;
        while (u >= m->sizes[a]) u -= m->sizes[a++];
        sizes[i] = a;
    }
    if (r->sizes) memcpy(r->sizes, sizes, (size_t)n * sizeof(int));
    /* the order the molecules are sampled in: molecule 0 first (a trajectory follows the first
     * row of the first group), then the rest smallest first, so that groups and their passes
     * hold like sizes and pad less (predict_rows); out[] keeps the order they were drawn in */
    int *order = malloc((size_t)n * sizeof(int));
    by_size *v = malloc((size_t)n * sizeof *v);
    if (!order || !v) {
        free(sizes), free(order), free(v);
        dfs_set_error("molecule sampling: out of memory");
        return DFS_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) v[i] = (by_size){i ? sizes[i] : 0, i, i};
    qsort(v, (size_t)n, sizeof *v, cmp_size);
    for (int i = 0; i < n; i++) order[i] = v[i].k;
    free(v);
    /* the fragment, centred, as the known entries of its slots */
    float *frow = NULL;
    uint8_t *fpres = NULL;
    double fc[3] = {0, 0, 0};
    if (fr) {
        frow = malloc(D * sizeof(float));
        fpres = malloc(D);
        if (!frow || !fpres || dfs_mol_encode(m, fr, frow, fpres) != DFS_OK) {
            free(sizes), free(order), free(frow), free(fpres);
            return DFS_ERR_NOMEM;
        }
        for (int a = 0; a < fr->n; a++)
            for (int d = 0; d < 3; d++) fc[d] += fr->pos[3 * a + d] / fr->n;
    }
    dfs_sampler_config sc = r->sampler;
    sc.clip_x0 = 0;
    sc.prediction = DFS_PRED_EPS;
    sc.guidance = 1.0f;
    sc.project = dfs_project_zero_com;
    sc.project_user = (void *)&layout;
    const int rows = n < G ? n : G;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#endif
    predictor P = {.m = m, .ng = nt};
    float *x = malloc((size_t)rows * D * sizeof(float));
    float *kv = fr ? calloc((size_t)rows * D, sizeof(float)) : NULL;
    uint8_t *km = fr ? calloc((size_t)rows * D, 1) : NULL;
    uint8_t *pres = malloc((size_t)rows * D), *node = malloc((size_t)rows * M);
    P.g = calloc((size_t)nt, sizeof *P.g);
    dfs_status s = x && pres && node && P.g && (!fr || (kv && km)) ? DFS_OK : DFS_ERR_NOMEM;
    for (int i = 0; s == DFS_OK && i < nt; i++)
        if (!(P.g[i] = dfs_graph_new())) s = DFS_ERR_NOMEM;
    if (s != DFS_OK) dfs_set_error("molecule sampling: out of memory");
    dfs_params *p = dfs_egnn_params(m->net);
    if (!r->raw) dfs_params_swap_ema(p);
    for (int i0 = 0; s == DFS_OK && i0 < n; i0 += G) {
        const int gn = n - i0 < G ? n - i0 : G;
        memset(pres, 0, (size_t)gn * D);
        for (int i = 0; i < gn; i++) {
            memset(pres + (size_t)i * D, 1, (size_t)sizes[order[i0 + i]] * W);
            if (fr) {
                memcpy(kv + (size_t)i * D, frow, D * sizeof(float));
                memcpy(km + (size_t)i * D, fpres, D);
            }
        }
        node_mask(pres, gn, M, node);
        P.node = node;
        sc.present = pres;
        sc.known = kv;
        sc.known_mask = km;
        group_cb gc = {r, i0};
        s = dfs_sample(&m->sched, &sc, mol_predict, &P, NULL, gn, D, rng, x, r->cb ? on_step : NULL, &gc);
        for (int i = 0; s == DFS_OK && i < gn; i++) {
            dfs_mol *o = &out[order[i0 + i]];
            s = dfs_mol_decode(m, x + (size_t)i * D, sizes[order[i0 + i]], o);
            /* the sampler moved the fragment with the molecule (its known values follow the
             * projection): the translation it ended with is where the fragment's atoms are
             * against where they were given (their mean, the same for each up to rounding) */
            double sh[3] = {0, 0, 0};
            for (int a = 0; s == DFS_OK && fr && a < fr->n; a++)
                for (int d = 0; d < 3; d++) sh[d] += ((double)x[(size_t)i * D + (size_t)a * W + d] - frow[a * W + d]) / fr->n;
            for (int a = 0; s == DFS_OK && a < o->n; a++)
                for (int d = 0; d < 3; d++)
                    o->pos[3 * a + d] = fr && a < fr->n ? fr->pos[3 * a + d] : o->pos[3 * a + d] - sh[d] + fc[d];
        }
    }
    if (!r->raw) dfs_params_swap_ema(p);
    for (int i = 0; P.g && i < nt; i++) dfs_graph_free(P.g[i]);
    free(P.g);
    free(x), free(kv), free(km), free(pres), free(node), free(frow), free(fpres), free(sizes), free(order);
    return s;
}
