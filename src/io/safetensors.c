/* safetensors.c - reading and writing safetensors files
 * (https://github.com/huggingface/safetensors, "Format"):
 *
 *   N        8 bytes, little-endian uint64: size of the header
 *   header   N bytes of UTF-8 JSON, may be padded with trailing spaces:
 *            {"__metadata__": {"key": "value", ...},
 *             "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 *   data     the rest of the file; offsets are relative to its start
 *
 * The loader trusts nothing: every length and offset is checked against the file size before
 * it is used. Tensor data points into the loaded buffer and may be unaligned in files not
 * written here (use memcpy to read it). */
#include "diffuse/io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER (100u * 1000u * 1000u) // 100 MB, the limit of the reference reader

static const char *const dtype_names[DFS_DT_COUNT] = {"F32", "F16", "I64", "U8"};
static const size_t dtype_size[DFS_DT_COUNT] = {4, 2, 8, 1};

void dfs_st_free(dfs_safetensors *st) {
    if (!st) return;
    if (st->t)
        for (int i = 0; i < st->count; i++) free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    free(st->buf);
    memset(st, 0, sizeof *st);
}

/* A JSON number that is a non-negative integer < 2^53 (exactly representable). */
static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || d != floor(d)) return 0;
    *v = (uint64_t)d;
    return 1;
}

/* The whole file into *buf, after its 8-byte header length (*hlen) is checked against the 100
 * MB limit and the file's size: a large file that is not safetensors is refused before it is
 * read into memory. */
static dfs_status read_file(const char *path, void **buf, size_t *size, uint64_t *hlen) {
    FILE *f;
    if (dfs_open_read(path, &f)) return DFS_ERR_IO; // a FIFO is refused, not waited on
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        dfs_set_error("%s: cannot read its size: %s", path, strerror(errno));
        fclose(f);
        return DFS_ERR_IO;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t len8[8];
    if (n < 8) {
        dfs_set_error("%s: too short for a safetensors file (%zu bytes)", path, n);
        fclose(f);
        return DFS_ERR_FORMAT;
    }
    if (fread(len8, 1, 8, f) != 8) {
        dfs_set_error("%s: read failed: %s", path, ferror(f) ? strerror(errno) : "short read");
        fclose(f);
        return DFS_ERR_IO;
    }
    *hlen = 0;
    for (int i = 7; i >= 0; i--) *hlen = (*hlen << 8) | len8[i];
    if (*hlen > ST_MAX_HEADER || *hlen > n - 8) {
        dfs_set_error("%s: header length %llu %s (%zu bytes)", path, (unsigned long long)*hlen,
                      *hlen > ST_MAX_HEADER ? "exceeds 100 MB" : "runs past the end of the file", n);
        fclose(f);
        return DFS_ERR_FORMAT;
    }
    rewind(f);
    void *b = malloc(n ? n : 1);
    if (!b) {
        dfs_set_error("%s: out of memory for %zu bytes", path, n);
        fclose(f);
        return DFS_ERR_NOMEM;
    }
    if (fread(b, 1, n, f) != n) {
        dfs_set_error("%s: read failed: %s", path, ferror(f) ? strerror(errno) : "short read");
        free(b);
        fclose(f);
        return DFS_ERR_IO;
    }
    fclose(f);
    *buf = b;
    *size = n;
    return DFS_OK;
}

/* Check one tensor entry and fill t. Returns NULL or the reason it is bad. */
static const char *parse_tensor(const cJSON *e, uint64_t data_size, const uint8_t *data,
                                dfs_st_tensor *t) {
    if (!cJSON_IsObject(e)) return "entry is not an object";
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return "missing or non-string \"dtype\"";
    if (!cJSON_IsArray(sh)) return "missing or non-array \"shape\"";
    if (!cJSON_IsArray(off)) return "missing or non-array \"data_offsets\"";
    int d;
    for (d = 0; d < DFS_DT_COUNT; d++)
        if (!strcmp(dt->valuestring, dtype_names[d])) break;
    if (d == DFS_DT_COUNT) return "unsupported dtype (F32, F16, I64, U8 are)";
    t->dtype = (dfs_dtype)d;
    int nd = cJSON_GetArraySize(sh);
    if (nd > DFS_MAXDIM) return "more than 4 dimensions";
    t->ndim = nd;
    uint64_t numel = 1;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, sh) {
        uint64_t v;
        if (!json_uint(x, &v)) return "shape entry is not a non-negative integer";
        if (v && numel > UINT64_MAX / dtype_size[d] / v) return "shape overflows";
        numel *= v;
        t->shape[i++] = (int64_t)v;
    }
    for (; i < DFS_MAXDIM; i++) t->shape[i] = 0;
    if (cJSON_GetArraySize(off) != 2) return "\"data_offsets\" is not [begin, end]";
    uint64_t b, en;
    if (!json_uint(cJSON_GetArrayItem(off, 0), &b) || !json_uint(cJSON_GetArrayItem(off, 1), &en))
        return "\"data_offsets\" are not non-negative integers";
    if (b > en) return "data_offsets begin > end";
    if (en > data_size) return "data_offsets past the end of the file";
    if (en - b != numel * dtype_size[d]) return "data_offsets length does not match shape*dtype";
    t->data = data + b;
    t->nbytes = (size_t)(en - b);
    return NULL;
}

static int cmp_range(const void *a, const void *b) {
    const uint64_t *x = a, *y = b; /* by start, then end: an empty tensor before one at its start */
    return x[0] != y[0] ? (x[0] < y[0] ? -1 : 1) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* The format's rule: the tensors' byte ranges tile the data exactly, with no overlap (two
 * tensors sharing bytes) and no hole. 1 with the error set if they do not. */
static int tile_check(const char *path, const dfs_safetensors *st, const uint8_t *data, uint64_t size) {
    uint64_t *r = malloc((st->count ? (size_t)st->count : 1) * 2 * sizeof *r);
    if (!r) {
        dfs_set_error("%s: out of memory", path);
        return 1;
    }
    for (int i = 0; i < st->count; i++) {
        r[2 * i] = (uint64_t)((const uint8_t *)st->t[i].data - data);
        r[2 * i + 1] = r[2 * i] + st->t[i].nbytes;
    }
    qsort(r, (size_t)st->count, 2 * sizeof *r, cmp_range);
    uint64_t at = 0;
    int bad = 0;
    for (int i = 0; i < st->count && !bad; i++) {
        if (r[2 * i] != at) {
            dfs_set_error("%s: tensor data %s at byte %llu of the data (expected %llu)", path,
                          r[2 * i] < at ? "overlaps" : "leaves a hole", (unsigned long long)r[2 * i],
                          (unsigned long long)at);
            bad = 1;
        }
        at = r[2 * i + 1];
    }
    if (!bad && at != size) {
        dfs_set_error("%s: %llu bytes after the last tensor's data", path, (unsigned long long)(size - at));
        bad = 1;
    }
    free(r);
    return bad;
}

dfs_status dfs_st_load(dfs_safetensors *st, const char *path) {
    if (!st || !path) {
        dfs_set_error("st_load: NULL argument");
        return DFS_ERR_ARG;
    }
    memset(st, 0, sizeof *st);
    uint64_t hlen;
    dfs_status s = read_file(path, &st->buf, &st->size, &hlen); // hlen checked there
    if (s) return s;
    const uint8_t *b = st->buf;
    cJSON *root = NULL;
    s = DFS_ERR_FORMAT;
    if (hlen < 2 || b[8] != '{') {
        dfs_set_error("%s: header is not a JSON object", path);
        goto fail;
    }
    const char *hdr = (const char *)b + 8;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        dfs_set_error("%s: header is not a valid JSON object", path);
        goto fail;
    }
    for (const char *p = end; p && p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            dfs_set_error("%s: garbage after the JSON header at byte %td", path, p - hdr + 8);
            goto fail;
        }
    }
    uint64_t data_size = st->size - 8 - hlen;
    const uint8_t *data = b + 8 + hlen;

    int n = 0, nmeta = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e) || nmeta) {
                dfs_set_error("%s: __metadata__ is not an object or appears twice", path);
                goto fail;
            }
            nmeta = cJSON_GetArraySize(e) + 1; // + 1 marks "seen", even when empty
        } else {
            n++;
        }
    }
    st->t = calloc(n ? (size_t)n : 1, sizeof *st->t);
    st->meta_keys = calloc(nmeta ? (size_t)nmeta : 1, sizeof(char *));
    st->meta_vals = calloc(nmeta ? (size_t)nmeta : 1, sizeof(char *));
    if (!st->t || !st->meta_keys || !st->meta_vals) {
        dfs_set_error("%s: out of memory", path);
        s = DFS_ERR_NOMEM;
        goto fail;
    }
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            const cJSON *m;
            cJSON_ArrayForEach(m, e) {
                if (!cJSON_IsString(m)) {
                    dfs_set_error("%s: __metadata__ value for \"%s\" is not a string", path,
                                  m->string);
                    goto fail;
                }
                int k = st->nmeta;
                st->meta_keys[k] = strdup(m->string);
                st->meta_vals[k] = strdup(m->valuestring);
                st->nmeta++;
                if (!st->meta_keys[k] || !st->meta_vals[k]) {
                    dfs_set_error("%s: out of memory", path);
                    s = DFS_ERR_NOMEM;
                    goto fail;
                }
            }
            continue;
        }
        for (int j = 0; j < st->count; j++) {
            if (!strcmp(st->t[j].name, e->string)) {
                dfs_set_error("%s: duplicate tensor \"%s\"", path, e->string);
                goto fail;
            }
        }
        dfs_st_tensor *t = &st->t[st->count];
        const char *why = parse_tensor(e, data_size, data, t);
        if (why) {
            dfs_set_error("%s: tensor \"%s\": %s", path, e->string, why);
            goto fail;
        }
        t->name = strdup(e->string);
        if (!t->name) {
            dfs_set_error("%s: out of memory", path);
            s = DFS_ERR_NOMEM;
            goto fail;
        }
        st->count++;
    }
    if (tile_check(path, st, data, data_size)) goto fail;
    cJSON_Delete(root);
    return DFS_OK;
fail:
    cJSON_Delete(root);
    dfs_st_free(st);
    return s;
}

const dfs_st_tensor *dfs_st_find(const dfs_safetensors *st, const char *name) {
    if (!st || !name) return NULL;
    for (int i = 0; i < st->count; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *dfs_st_meta(const dfs_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_vals[i];
    return NULL;
}

/* ---- writer ------------------------------------------------------------------------------ */

typedef struct {
    char *name;
    dfs_dtype dtype;
    int ndim;
    int64_t shape[DFS_MAXDIM];
    const void *data; // caller-owned until write
    size_t nbytes;
} st_entry;

struct dfs_st_writer {
    st_entry *e;
    int count, cap;
    char **keys, **vals;
    int nmeta, mcap;
};

dfs_st_writer *dfs_st_writer_new(void) { return calloc(1, sizeof(dfs_st_writer)); }

void dfs_st_writer_free(dfs_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) free(w->e[i].name);
    free(w->e);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->keys[i]);
        free(w->vals[i]);
    }
    free(w->keys);
    free(w->vals);
    free(w);
}

/* Add a tensor; name is copied, data is referenced until dfs_st_writer_write. */
dfs_status dfs_st_writer_add(dfs_st_writer *w, const char *name, dfs_dtype dt, int ndim,
                             const int64_t *shape, const void *data) {
    if (!w || !name) {
        dfs_set_error("st_writer_add: NULL writer or name");
        return DFS_ERR_ARG;
    }
    if (!strcmp(name, "__metadata__")) {
        dfs_set_error("st_writer_add: \"__metadata__\" is reserved");
        return DFS_ERR_ARG;
    }
    if ((int)dt < 0 || dt >= DFS_DT_COUNT) {
        dfs_set_error("st_writer_add: %s: bad dtype %d", name, (int)dt);
        return DFS_ERR_ARG;
    }
    if (ndim < 0 || ndim > DFS_MAXDIM || (ndim && !shape)) {
        dfs_set_error("st_writer_add: %s: bad ndim %d", name, ndim);
        return DFS_ERR_ARG;
    }
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || shape[i] > (int64_t)1 << 53) {
            dfs_set_error("st_writer_add: %s: bad shape[%d] = %lld", name, i,
                          (long long)shape[i]);
            return DFS_ERR_ARG;
        }
        uint64_t v = (uint64_t)shape[i];
        if (v && numel > ((uint64_t)1 << 53) / dtype_size[dt] / v) {
            dfs_set_error("st_writer_add: %s: shape too large", name);
            return DFS_ERR_ARG;
        }
        numel *= v;
    }
    if (numel && !data) {
        dfs_set_error("st_writer_add: %s: NULL data", name);
        return DFS_ERR_ARG;
    }
    for (int i = 0; i < w->count; i++) {
        if (!strcmp(w->e[i].name, name)) {
            dfs_set_error("st_writer_add: duplicate tensor \"%s\"", name);
            return DFS_ERR_ARG;
        }
    }
    if (w->count == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        st_entry *e = realloc(w->e, (size_t)cap * sizeof *e);
        if (!e) goto nomem;
        w->e = e;
        w->cap = cap;
    }
    st_entry *e = &w->e[w->count];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) goto nomem;
    e->dtype = dt;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = (size_t)(numel * dtype_size[dt]);
    w->count++;
    return DFS_OK;
nomem:
    dfs_set_error("st_writer_add: out of memory");
    return DFS_ERR_NOMEM;
}

/* Set a metadata string (both copied); a repeated key replaces the value. */
dfs_status dfs_st_writer_meta(dfs_st_writer *w, const char *key, const char *val) {
    if (!w || !key || !val) {
        dfs_set_error("st_writer_meta: NULL argument");
        return DFS_ERR_ARG;
    }
    char *v = strdup(val);
    if (!v) goto nomem;
    for (int i = 0; i < w->nmeta; i++) {
        if (!strcmp(w->keys[i], key)) {
            free(w->vals[i]);
            w->vals[i] = v;
            return DFS_OK;
        }
    }
    if (w->nmeta == w->mcap) {
        int cap = w->mcap ? 2 * w->mcap : 8;
        char **k = realloc(w->keys, (size_t)cap * sizeof *k);
        if (k) w->keys = k;
        char **vv = k ? realloc(w->vals, (size_t)cap * sizeof *vv) : NULL;
        if (!vv) {
            free(v);
            goto nomem;
        }
        w->vals = vv;
        w->mcap = cap;
    }
    w->keys[w->nmeta] = strdup(key);
    if (!w->keys[w->nmeta]) {
        free(v);
        goto nomem;
    }
    w->vals[w->nmeta++] = v;
    return DFS_OK;
nomem:
    dfs_set_error("st_writer_meta: out of memory");
    return DFS_ERR_NOMEM;
}

/* The header JSON: __metadata__ first (if any), then tensors in insertion order with
 * contiguous data offsets. Returns a malloc'ed string or NULL. */
static char *writer_header(const dfs_st_writer *w) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    if (w->nmeta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < w->nmeta; i++)
            if (!cJSON_AddStringToObject(m, w->keys[i], w->vals[i])) m = NULL;
        if (!m) goto fail;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->count; i++) {
        const st_entry *e = &w->e[i];
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        if (!t || !cJSON_AddStringToObject(t, "dtype", dtype_names[e->dtype])) goto fail;
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        if (!sh) goto fail;
        for (int d = 0; d < e->ndim; d++) {
            cJSON *num = cJSON_CreateNumber((double)e->shape[d]);
            if (!num || !cJSON_AddItemToArray(sh, num)) goto fail;
        }
        cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
        if (!of) goto fail;
        cJSON *b = cJSON_CreateNumber((double)off);
        if (!b || !cJSON_AddItemToArray(of, b)) goto fail;
        off += e->nbytes;
        cJSON *en = cJSON_CreateNumber((double)off);
        if (!en || !cJSON_AddItemToArray(of, en)) goto fail;
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
fail:
    cJSON_Delete(root);
    return NULL;
}

dfs_status dfs_st_writer_write(dfs_st_writer *w, const char *path) {
    if (!w || !path) {
        dfs_set_error("st_writer_write: NULL argument");
        return DFS_ERR_ARG;
    }
    char *json = writer_header(w);
    if (!json) {
        dfs_set_error("st_writer_write: %s: out of memory building the header", path);
        return DFS_ERR_NOMEM;
    }
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) / 8 * 8; // pad with spaces so the data starts 8-byte aligned
    if (hlen > ST_MAX_HEADER) { // never write what dfs_st_load (and the reference reader) refuse
        free(json);
        dfs_set_error("st_writer_write: %s: a header of %zu bytes exceeds the 100 MB that readers "
                      "accept; nothing was written",
                      path, hlen);
        return DFS_ERR_FORMAT;
    }
    size_t data = 0;
    for (int i = 0; i < w->count; i++) data += w->e[i].nbytes;
    size_t total = 8 + hlen + data;
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(json);
        dfs_set_error("st_writer_write: %s: out of memory for %zu bytes", path, total);
        return DFS_ERR_NOMEM;
    }
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, json, jlen);
    memset(buf + 8 + jlen, ' ', hlen - jlen);
    free(json);
    uint8_t *p = buf + 8 + hlen;
    for (int i = 0; i < w->count; i++) {
        if (w->e[i].nbytes) memcpy(p, w->e[i].data, w->e[i].nbytes); // little-endian host
        p += w->e[i].nbytes;
    }
    dfs_status s = dfs_write_atomic(path, buf, total);
    free(buf);
    return s;
}
