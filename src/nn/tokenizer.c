/* tokenizer.c - a word tokenizer for captions: split, vocabulary, encode/decode, JSON.
 *
 * Splitting (dfs_text_words), byte by byte over UTF-8:
 *   - ASCII letters (lowercased) and digits are word characters;
 *   - bytes >= 0x80 are word characters (other scripts and accented letters stay whole, not
 *     lowercased), except the General Punctuation block U+2000..U+206F (dashes, quotes, ...),
 *     which separates words;
 *   - an apostrophe (' U+0027, ' U+2018 or ' U+2019) between two word characters is dropped and
 *     the word goes on ("o'clock" -> "oclock", "man's" -> "mans"); elsewhere it separates;
 *   - everything else separates: spaces, hyphens ("t-shirt" -> "t" "shirt"), underscores, all
 *     other ASCII punctuation.
 * Token ids: 0 <pad>, 1 <unk>, 2 <bos>, 3 <eos>, then the words of the training captions by
 * count (descending), ties in bytewise (strcmp) order. An encoded caption is
 * <bos> w1 .. wk <eos> <pad>... of exactly max_len ids.
 *
 * JSON form (stored as a checkpoint metadata string):
 *   {"format":"diffuse-words-1","max_len":L,"vocab":["<pad>","<unk>","<bos>","<eos>",...]} */
#include "diffuse/nn.h"
#include "../engine/tape.h"
#include "../io/json.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define TOK_FORMAT "diffuse-words-1"
#define TOK_MAX_VOCAB 1000000
#define TOK_MAX_LEN 4096
/* The longest word in bytes (42 CJK characters, or a word of 128 letters): a longer "word" is
 * not language, and a vocabulary of them would not fit a checkpoint's header. */
#define TOK_MAX_WORD 128
/* The vocabulary's share of a checkpoint header: its JSON is the words plus 3 bytes each
 * (quotes and comma; word bytes need no escapes). The header's reader stops at 100 MB. */
#define TOK_MAX_VOCAB_BYTES (64u << 20)

static const char *const special_names[DFS_TOK_SPECIALS] = {"<pad>", "<unk>", "<bos>", "<eos>"};

struct dfs_tokenizer {
    int n;         /* vocabulary size, specials included */
    char **words;  /* n words; words[0..3] are the special names */
    int max_len;   /* encoded length, <bos> and <eos> included */
    int *slots;    /* open-addressing hash table of ids, -1 = empty */
    size_t nslots; /* a power of two, >= 2 n */
};

/* ---- splitting --------------------------------------------------------------------------- */

/* The well-formed byte sequences of Unicode 15 (chapter 3, table 3-7). */
long dfs_utf8_invalid(const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; s[i];) {
        unsigned char c = s[i];
        int n;              // continuation bytes
        unsigned lo = 0x80, hi = 0xBF; // the range of the first continuation byte
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0) lo = 0xA0;  // overlong
            if (c == 0xED) hi = 0x9F;  // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0) lo = 0x90;  // overlong
            if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
        } else {
            return (long)i;            // 0x80..0xC1, 0xF5..0xFF
        }
        if (s[i + 1] < lo || s[i + 1] > hi) return (long)i;
        for (int k = 2; k <= n; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return (long)i; // a NUL stops here too
        i += (size_t)n + 1;
    }
    return -1;
}

/* 0: separator, 1: word byte, 2: apostrophe, 3: 3-byte punctuation (U+2000..U+206F) that
 * separates. *len gets the byte length of the unit at s. */
static int classify(const unsigned char *s, int *len) {
    unsigned char c = s[0];
    *len = 1;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    if (c == '\'') return 2;
    if (c < 0x80) return 0;
    if (c == 0xE2 && (s[1] == 0x80 || s[1] == 0x81) && s[2] >= 0x80 && s[2] <= 0xBF) {
        *len = 3;
        if (s[1] == 0x80 && (s[2] == 0x98 || s[2] == 0x99)) return 2; // U+2018, U+2019
        return 3;
    }
    return 1;
}

int dfs_text_words(const char *text, char *buf, size_t cap, const char **words, int max_words) {
    if (!text || !buf || cap == 0 || (max_words > 0 && !words)) return -1;
    const unsigned char *s = (const unsigned char *)text;
    size_t o = 0;
    int nw = 0, in_word = 0;
    while (*s) {
        int len, k = classify(s, &len);
        if (k == 2 && in_word) { // keep going only if a word character follows
            int l2;
            if (s[len] && classify(s + len, &l2) == 1) {
                s += len;
                continue;
            }
        }
        if (k == 1) {
            if (!in_word) {
                if (nw < max_words) words[nw] = (const char *)buf + o;
                nw++;
                in_word = 1;
            }
            if (o + 1 >= cap) return -1; // room for this byte and the closing NUL
            unsigned char c = *s;
            buf[o++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            s++;
        } else {
            if (in_word) buf[o++] = 0; // o < cap: checked when the last byte was written
            in_word = 0;
            for (int i = 0; i < len && *s; i++)
                s++;
        }
    }
    if (in_word) buf[o++] = 0;
    return nw;
}

/* Split text into a malloc'ed buffer; *words (malloc'ed, *nw entries) points into *buf. */
static dfs_status split_alloc(const char *text, char **buf, const char ***words, int *nw) {
    size_t len = strlen(text);
    *buf = malloc(len + 1);
    *words = malloc((len / 2 + 1) * sizeof(char *)); // words need a separator between them
    if (!*buf || !*words) {
        free(*buf), free(*words);
        *buf = NULL, *words = NULL;
        dfs_set_error("tokenizer: out of memory for a %zu-byte text", len);
        return DFS_ERR_NOMEM;
    }
    *nw = dfs_text_words(text, *buf, len + 1, *words, (int)(len / 2 + 1));
    return DFS_OK;
}

/* ---- hash table -------------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s) { // FNV-1a 64-bit
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot holding word, or the empty slot where it would go. */
static size_t find_slot(const int *slots, size_t nslots, char *const *words, const char *w) {
    size_t i = (size_t)fnv1a(w) & (nslots - 1);
    while (slots[i] >= 0 && strcmp(words[slots[i]], w) != 0)
        i = (i + 1) & (nslots - 1);
    return i;
}

static size_t table_size(int n) {
    size_t s = 16;
    while (s < 2 * (size_t)n)
        s *= 2;
    return s;
}

/* Build t->slots for t->words. Duplicate words: DFS_ERR_FORMAT. */
static dfs_status index_words(dfs_tokenizer *t) {
    t->nslots = table_size(t->n);
    t->slots = malloc(t->nslots * sizeof(int));
    if (!t->slots) {
        dfs_set_error("tokenizer: out of memory");
        return DFS_ERR_NOMEM;
    }
    for (size_t i = 0; i < t->nslots; i++)
        t->slots[i] = -1;
    for (int i = 0; i < t->n; i++) {
        size_t k = find_slot(t->slots, t->nslots, t->words, t->words[i]);
        if (t->slots[k] >= 0) {
            dfs_set_error("tokenizer: word '%s' appears twice in the vocabulary", t->words[i]);
            return DFS_ERR_FORMAT;
        }
        t->slots[k] = i;
    }
    return DFS_OK;
}

void dfs_tokenizer_free(dfs_tokenizer *t) {
    if (!t) return;
    if (t->words)
        for (int i = 0; i < t->n; i++)
            free(t->words[i]);
    free(t->words);
    free(t->slots);
    free(t);
}

/* ---- building ---------------------------------------------------------------------------- */

typedef struct {
    char *w;
    long count;
} word_count;

static int cmp_count(const void *a, const void *b) {
    const word_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->w, y->w);
}

void dfs_tokenizer_config_default(dfs_tokenizer_config *c) {
    c->max_vocab = 0;
    c->min_count = 1;
    c->max_len = 0;
}

dfs_status dfs_tokenizer_build(dfs_tokenizer **out, const char *const *texts, int n,
                               const dfs_tokenizer_config *cfg) {
    if (!out || (n > 0 && !texts) || n < 0 || !cfg || cfg->max_vocab < 0 ||
        (cfg->max_vocab > 0 && cfg->max_vocab <= DFS_TOK_SPECIALS) ||
        cfg->max_vocab > TOK_MAX_VOCAB || cfg->min_count < 1 || cfg->max_len < 0 ||
        (cfg->max_len > 0 && cfg->max_len < 3) || cfg->max_len > TOK_MAX_LEN) {
        dfs_set_error("tokenizer_build: bad arguments (n %d, max_vocab %d, min_count %d, "
                      "max_len %d; max_vocab must be 0 or > %d, max_len 0 or 3..%d)",
                      n, cfg ? cfg->max_vocab : 0, cfg ? cfg->min_count : 0, cfg ? cfg->max_len : 0,
                      DFS_TOK_SPECIALS, TOK_MAX_LEN);
        return DFS_ERR_ARG;
    }
    *out = NULL;
    dfs_status st = DFS_OK;
    size_t cap = 1024, nwc = 0;
    word_count *wc = malloc(cap * sizeof *wc);
    size_t nslots = 1 << 12;
    int *slots = malloc(nslots * sizeof(int));
    char **keys = malloc(cap * sizeof(char *)); // keys[i] = wc[i].w, for find_slot
    char *buf = NULL;
    const char **words = NULL;
    int longest = 0;
    dfs_tokenizer *t = NULL;
    if (!wc || !slots || !keys) goto nomem;
    for (size_t i = 0; i < nslots; i++)
        slots[i] = -1;
    for (int i = 0; i < n; i++) {
        if (!texts[i]) {
            dfs_set_error("tokenizer_build: caption %d is NULL", i);
            st = DFS_ERR_ARG;
            goto done;
        }
        long bad = dfs_utf8_invalid(texts[i]);
        if (bad >= 0) { // a vocabulary of such words could not be stored and read back
            dfs_set_error("tokenizer_build: caption %d is not UTF-8 (byte %ld)", i, bad);
            st = DFS_ERR_FORMAT;
            goto done;
        }
        int nw;
        if ((st = split_alloc(texts[i], &buf, &words, &nw))) goto done;
        if (nw > longest) longest = nw;
        for (int k = 0; k < nw; k++) {
            size_t wl = strlen(words[k]);
            if (wl > TOK_MAX_WORD) {
                dfs_set_error("tokenizer_build: caption %d has a word of %zu bytes ('%.24s...'); "
                              "the longest allowed is %d",
                              i, wl, words[k], TOK_MAX_WORD);
                st = DFS_ERR_FORMAT;
                goto done;
            }
            size_t s = find_slot(slots, nslots, keys, words[k]);
            if (slots[s] >= 0) {
                wc[slots[s]].count++;
                continue;
            }
            if (nwc == cap) {
                cap *= 2;
                word_count *w2 = realloc(wc, cap * sizeof *wc);
                if (w2) wc = w2;
                char **k2 = realloc(keys, cap * sizeof(char *));
                if (k2) keys = k2;
                if (!w2 || !k2) goto nomem;
            }
            char *dup = strdup(words[k]);
            if (!dup) goto nomem;
            wc[nwc].w = keys[nwc] = dup;
            wc[nwc].count = 1;
            slots[s] = (int)nwc++;
            if (2 * nwc > nslots) { // grow and rehash
                size_t ns = nslots * 2;
                int *s2 = malloc(ns * sizeof(int));
                if (!s2) goto nomem;
                for (size_t j = 0; j < ns; j++)
                    s2[j] = -1;
                for (size_t j = 0; j < nwc; j++)
                    s2[find_slot(s2, ns, keys, keys[j])] = (int)j;
                free(slots);
                slots = s2;
                nslots = ns;
            }
        }
        free(buf), free(words);
        buf = NULL, words = NULL;
    }
    if (nwc > 1) qsort(wc, nwc, sizeof *wc, cmp_count);
    size_t keep = 0;
    while (keep < nwc && wc[keep].count >= cfg->min_count)
        keep++;
    if (cfg->max_vocab > 0 && keep > (size_t)(cfg->max_vocab - DFS_TOK_SPECIALS))
        keep = (size_t)(cfg->max_vocab - DFS_TOK_SPECIALS);
    if (keep > TOK_MAX_VOCAB) {
        dfs_set_error("tokenizer_build: %zu distinct words is more than %d", keep, TOK_MAX_VOCAB);
        st = DFS_ERR_ARG;
        goto done;
    }
    size_t vbytes = 0;
    for (size_t i = 0; i < keep; i++)
        vbytes += strlen(wc[i].w) + 3;
    if (vbytes > TOK_MAX_VOCAB_BYTES) {
        dfs_set_error("tokenizer_build: a vocabulary of %zu words takes %zu bytes, more than the "
                      "%u a checkpoint holds; limit it (max_vocab, min_count)",
                      keep, vbytes, TOK_MAX_VOCAB_BYTES);
        st = DFS_ERR_ARG;
        goto done;
    }
    t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    t->words = calloc(keep + DFS_TOK_SPECIALS, sizeof(char *));
    if (!t->words) goto nomem;
    for (int i = 0; i < DFS_TOK_SPECIALS; i++) {
        if (!(t->words[i] = strdup(special_names[i]))) goto nomem;
        t->n++;
    }
    for (size_t i = 0; i < keep; i++) {
        t->words[t->n++] = wc[i].w; // hand over
        wc[i].w = NULL;
    }
    if (!cfg->max_len)
        longest = longest + 2 < 3 ? 3 : longest + 2 > TOK_MAX_LEN ? TOK_MAX_LEN : longest + 2;
    t->max_len = cfg->max_len ? cfg->max_len : longest;
    if ((st = index_words(t))) goto done;
    *out = t;
    t = NULL;
    goto done;
nomem:
    dfs_set_error("tokenizer_build: out of memory");
    st = DFS_ERR_NOMEM;
done:
    for (size_t i = 0; i < nwc; i++)
        free(wc[i].w);
    free(wc);
    free(keys);
    free(slots);
    free(buf);
    free(words);
    dfs_tokenizer_free(t);
    return st;
}

/* ---- queries, encode, decode ------------------------------------------------------------- */

int dfs_tokenizer_vocab_size(const dfs_tokenizer *t) {
    return t->n;
}
int dfs_tokenizer_max_len(const dfs_tokenizer *t) {
    return t->max_len;
}

const char *dfs_tokenizer_word(const dfs_tokenizer *t, int id) {
    return id >= 0 && id < t->n ? t->words[id] : NULL;
}

int dfs_tokenizer_id(const dfs_tokenizer *t, const char *word) {
    if (!word) return DFS_TOK_UNK;
    int i = t->slots[find_slot(t->slots, t->nslots, t->words, word)];
    return i >= DFS_TOK_SPECIALS ? i : DFS_TOK_UNK; // special names are not words
}

dfs_status dfs_tokenizer_encode(const dfs_tokenizer *t, const char *text, int max_len, int *ids,
                                uint8_t *mask, dfs_encode_info *info, dfs_unknown_fn on_unknown,
                                void *user) {
    if (!t || !text || !ids || max_len < 3 || max_len > TOK_MAX_LEN) {
        dfs_set_error("tokenizer_encode: bad arguments (max_len %d must be in 3..%d)", max_len,
                      TOK_MAX_LEN);
        return DFS_ERR_ARG;
    }
    char *buf;
    const char **words;
    int nw;
    dfs_status st = split_alloc(text, &buf, &words, &nw);
    if (st) return st;
    int room = max_len - 2, used = nw < room ? nw : room, unknown = 0;
    ids[0] = DFS_TOK_BOS;
    for (int k = 0; k < used; k++) {
        int id = dfs_tokenizer_id(t, words[k]);
        if (id == DFS_TOK_UNK) {
            unknown++;
            if (on_unknown) on_unknown(user, words[k]);
        }
        ids[1 + k] = id;
    }
    ids[1 + used] = DFS_TOK_EOS;
    for (int k = used + 2; k < max_len; k++)
        ids[k] = DFS_TOK_PAD;
    if (mask)
        for (int k = 0; k < max_len; k++)
            mask[k] = k < used + 2;
    if (info) {
        info->length = used + 2;
        info->words = nw;
        info->unknown = unknown;
        info->truncated = nw - used;
    }
    free(buf);
    free(words);
    return DFS_OK;
}

char *dfs_tokenizer_decode(const dfs_tokenizer *t, const int *ids, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id == DFS_TOK_PAD || id == DFS_TOK_BOS || id == DFS_TOK_EOS) continue;
        const char *w = id >= 0 && id < t->n ? t->words[id] : special_names[DFS_TOK_UNK];
        len += strlen(w) + 1;
    }
    char *s = malloc(len), *p = s;
    if (!s) {
        dfs_set_error("tokenizer_decode: out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id == DFS_TOK_PAD || id == DFS_TOK_BOS || id == DFS_TOK_EOS) continue;
        const char *w = id >= 0 && id < t->n ? t->words[id] : special_names[DFS_TOK_UNK];
        if (p != s) *p++ = ' ';
        size_t l = strlen(w);
        memcpy(p, w, l);
        p += l;
    }
    *p = 0;
    return s;
}

/* ---- JSON -------------------------------------------------------------------------------- */

char *dfs_tokenizer_to_json(const dfs_tokenizer *t) {
    cJSON *o = cJSON_CreateObject(), *arr = NULL;
    int ok = o && cJSON_AddStringToObject(o, "format", TOK_FORMAT) &&
             cJSON_AddNumberToObject(o, "max_len", t->max_len) &&
             (arr = cJSON_AddArrayToObject(o, "vocab"));
    for (int i = 0; ok && i < t->n; i++) {
        cJSON *s = cJSON_CreateString(t->words[i]);
        ok = s && cJSON_AddItemToArray(arr, s);
        if (!ok) cJSON_Delete(s);
    }
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) dfs_set_error("tokenizer_to_json: out of memory");
    return s;
}

/* A stored word must be what splitting makes of it: one word, unchanged. */
static int is_plain_word(const char *w) {
    size_t l = strlen(w);
    char *tmp = malloc(l + 1);
    const char *one[2];
    int ok = tmp && l > 0 && dfs_text_words(w, tmp, l + 1, one, 2) == 1 && strcmp(one[0], w) == 0;
    free(tmp);
    return ok;
}

dfs_status dfs_tokenizer_from_json(dfs_tokenizer **out, const char *json) {
    if (!out || !json) {
        dfs_set_error("tokenizer_from_json: NULL argument");
        return DFS_ERR_ARG;
    }
    *out = NULL;
    dfs_status st = DFS_ERR_FORMAT;
    cJSON *o = cJSON_ParseWithOpts(json, NULL, 1);
    dfs_tokenizer *t = NULL;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(o, "max_len");
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(o, "vocab");
    if (!o || !cJSON_IsObject(o)) {
        dfs_set_error("tokenizer JSON: not a JSON object");
        goto done;
    }
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, TOK_FORMAT) != 0) {
        dfs_set_error("tokenizer JSON: \"format\" is not \"%s\"", TOK_FORMAT);
        goto done;
    }
    int max_len = 0;
    if (!dfs_json_int(ml, &max_len) || max_len < 3 || max_len > TOK_MAX_LEN) {
        dfs_set_error("tokenizer JSON: \"max_len\" must be an integer in 3..%d", TOK_MAX_LEN);
        goto done;
    }
    int n = cJSON_IsArray(voc) ? cJSON_GetArraySize(voc) : -1;
    if (n < DFS_TOK_SPECIALS || n > TOK_MAX_VOCAB + DFS_TOK_SPECIALS) {
        dfs_set_error("tokenizer JSON: \"vocab\" must be an array of %d to %d strings",
                      DFS_TOK_SPECIALS, TOK_MAX_VOCAB + DFS_TOK_SPECIALS);
        goto done;
    }
    t = calloc(1, sizeof *t);
    if (t) t->words = calloc((size_t)n, sizeof(char *));
    if (!t || !t->words) {
        dfs_set_error("tokenizer JSON: out of memory");
        st = DFS_ERR_NOMEM;
        goto done;
    }
    t->max_len = max_len;
    int i = 0;
    for (const cJSON *e = voc->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) {
            dfs_set_error("tokenizer JSON: vocab entry %d is not a string", i);
            goto done;
        }
        const char *w = e->valuestring;
        if (i < DFS_TOK_SPECIALS ? strcmp(w, special_names[i]) != 0
                                 : strlen(w) > TOK_MAX_WORD || !is_plain_word(w)) {
            dfs_set_error("tokenizer JSON: vocab entry %d '%.40s' is not %s", i, w,
                          i < DFS_TOK_SPECIALS ? special_names[i]
                                               : "a lowercase word of at most 128 bytes");
            goto done;
        }
        if (!(t->words[i] = strdup(w))) {
            dfs_set_error("tokenizer JSON: out of memory");
            st = DFS_ERR_NOMEM;
            goto done;
        }
        t->n = i + 1;
    }
    if ((st = index_words(t))) { // rejects duplicates
        char msg[400];
        snprintf(msg, sizeof msg, "%s", dfs_last_error());
        dfs_set_error("tokenizer JSON: %s", msg);
        goto done;
    }
    *out = t;
    t = NULL;
    st = DFS_OK;
done:
    cJSON_Delete(o);
    dfs_tokenizer_free(t);
    return st;
}
