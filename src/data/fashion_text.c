/* fashion_text.c - fashion-captions: Fashion-MNIST (Xiao et al. 2017) with captions made from
 * the class name, a synonym, and two attributes measured from the pixels.
 *
 * Garment pixels: value > DFS_FASHION_FG (32 of 255), which leaves out the faint rim (of the
 * training pixels, 50.2% are 0, 5.4% are in 1..32, mostly at the garment's edge, 44.4% > 32).
 *   brightness = mean value of the garment pixels (0 when there are none)
 *   coverage   = garment pixels / all pixels
 * Each is compared with the terciles of its class over the 60000 training images (numpy's
 * linear-interpolation percentiles at 100/3 and 200/3; table below): below the lower tercile
 * "dark" / "small", above the upper "light" / "large", in between no word. Per-class terciles
 * keep the attribute independent of the class (globally, almost every sandal would be "dark"
 * and every coat "large") and give each word a third of every class. */
#include "diffuse/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NCLS 10

const char *const dfs_fashion_tone_words[DFS_TONE_COUNT] = {"dark", "", "light"};
const char *const dfs_fashion_size_words[DFS_SIZE_COUNT] = {"small", "", "large"};

/* Per class (row 10: all classes pooled): brightness terciles lo, hi; coverage terciles lo, hi.
 * Measured on train-images-idx3-ubyte.gz (tests/unit/test_text_data.c checks each third holds
 * 30-37% of every class). */
static const float terciles[NCLS + 1][4] = {
    {134.73f, 186.25f, 0.5089f, 0.5604f}, // T-shirt/top
    {162.18f, 193.01f, 0.3010f, 0.3304f}, // Trouser
    {135.31f, 190.23f, 0.5689f, 0.6365f}, // Pullover
    {153.93f, 195.33f, 0.3495f, 0.4209f}, // Dress
    {168.12f, 197.26f, 0.5383f, 0.5982f}, // Coat
    {123.54f, 148.37f, 0.1977f, 0.2768f}, // Sandal
    {119.25f, 176.58f, 0.5383f, 0.6161f}, // Shirt
    {140.52f, 165.95f, 0.2526f, 0.2985f}, // Sneaker
    {160.92f, 187.19f, 0.4796f, 0.5765f}, // Bag
    {169.56f, 189.70f, 0.3954f, 0.4605f}, // Ankle boot
    {145.85f, 184.94f, 0.3571f, 0.5344f}, // all
};

/* Synonyms used in captions (the first is the class's own name); plural ones take no article. */
static const char *const synonyms[NCLS][3] = {
    {"t-shirt", "tee", "top"},    {"trousers", "pants", NULL},  {"pullover", "sweater", "jumper"},
    {"dress", NULL, NULL},        {"coat", "jacket", NULL},     {"sandal", NULL, NULL},
    {"shirt", "blouse", NULL},    {"sneaker", "trainer", NULL}, {"bag", "handbag", NULL},
    {"ankle boot", "boot", NULL},
};
/* Extra spellings accepted only when parsing prompts. */
static const char *const parse_extra[NCLS][2] = {
    {"tshirt", NULL}, {"trouser", NULL}, {NULL, NULL}, {NULL, NULL}, {NULL, NULL},
    {NULL, NULL},     {NULL, NULL},      {NULL, NULL}, {NULL, NULL}, {NULL, NULL},
};

int dfs_fashion_synonym_count(int cls) {
    if (cls < 0 || cls >= NCLS) return 0;
    int n = 0;
    while (n < 3 && synonyms[cls][n])
        n++;
    return n;
}

const char *dfs_fashion_synonym(int cls, int k) {
    return k >= 0 && k < dfs_fashion_synonym_count(cls) ? synonyms[cls][k] : NULL;
}

static void classify(dfs_fashion_attr *a, int cls) {
    const float *t = terciles[cls >= 0 && cls < NCLS ? cls : NCLS];
    a->tone = a->brightness < t[0]   ? DFS_TONE_DARK
              : a->brightness > t[1] ? DFS_TONE_LIGHT
                                     : DFS_TONE_MID;
    a->size = a->coverage < t[2]   ? DFS_SIZE_SMALL
              : a->coverage > t[3] ? DFS_SIZE_LARGE
                                   : DFS_SIZE_MID;
}

void dfs_fashion_measure(const uint8_t *gray, int h, int w, int cls, dfs_fashion_attr *a) {
    size_t n = (size_t)h * w, count = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        if (gray[i] > DFS_FASHION_FG) count++, sum += gray[i];
    a->brightness = count ? (float)(sum / count) : 0.0f;
    a->coverage = n ? (float)((double)count / n) : 0.0f;
    classify(a, cls);
}

void dfs_fashion_measure_f32(const float *gray, int h, int w, int cls, dfs_fashion_attr *a) {
    size_t n = (size_t)h * w, count = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        float v = gray[i];
        if (v != v) v = 0.0f;
        v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
        long q = lrintf((v + 1.0f) * 127.5f); // as dfs_png_write_grid
        if (q > DFS_FASHION_FG) count++, sum += (double)q;
    }
    a->brightness = count ? (float)(sum / count) : 0.0f;
    a->coverage = n ? (float)((double)count / n) : 0.0f;
    classify(a, cls);
}

/* SplitMix64's finaliser (Steele et al. 2014) of seed ^ index * golden ratio. */
static uint64_t mix(uint64_t seed, long index) {
    uint64_t z = seed ^ ((uint64_t)index * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void dfs_fashion_caption(char *buf, size_t cap, int cls, const dfs_fashion_attr *a, uint64_t seed,
                         long index) {
    if (!buf || cap == 0) return;
    int ns = dfs_fashion_synonym_count(cls);
    if (ns == 0) {
        buf[0] = 0;
        return;
    }
    const char *noun = synonyms[cls][mix(seed, index) % (uint64_t)ns];
    const char *sz = a ? dfs_fashion_size_words[a->size] : "";
    const char *tn = a ? dfs_fashion_tone_words[a->tone] : "";
    const char *first = *sz ? sz : *tn ? tn : noun;
    int plural = noun[strlen(noun) - 1] == 's' && strcmp(noun, "dress") != 0;
    const char *art = plural ? "" : strchr("aeiou", first[0]) ? "an " : "a ";
    snprintf(buf, cap, "%s%s%s%s%s%s", art, sz, *sz ? " " : "", tn, *tn ? " " : "", noun);
}

/* Does the phrase (words separated by single spaces or hyphens) match the words at w[0..]?
 * The last word may carry a plural "s" or "es". Returns the number of words matched or 0. */
static int match_phrase(const char *phrase, const char *const *w, int nw) {
    char tmp[64];
    const char *pw[4];
    int np = dfs_text_words(phrase, tmp, sizeof tmp, pw, 4);
    if (np < 1 || np > 4 || np > nw) return 0;
    for (int k = 0; k < np; k++) {
        size_t l = strlen(pw[k]);
        if (strncmp(w[k], pw[k], l) != 0) return 0;
        const char *rest = w[k] + l;
        int last = k == np - 1;
        if (*rest && !(last && (!strcmp(rest, "s") || !strcmp(rest, "es")))) return 0;
    }
    return np;
}

int dfs_fashion_parse(const char *text, int *cls, int *tone, int *size) {
    int c = -1, t = -1, s = -1;
    size_t len = text ? strlen(text) : 0;
    char *buf = malloc(len + 1);
    const char **w = malloc((len / 2 + 1) * sizeof(char *));
    int nw = buf && w ? dfs_text_words(text, buf, len + 1, w, (int)(len / 2 + 1)) : 0;
    for (int i = 0; i < nw; i++) {
        if (t < 0 && !strcmp(w[i], "dark")) t = DFS_TONE_DARK;
        if (t < 0 && !strcmp(w[i], "light")) t = DFS_TONE_LIGHT;
        if (s < 0 && !strcmp(w[i], "small")) s = DFS_SIZE_SMALL;
        if (s < 0 && !strcmp(w[i], "large")) s = DFS_SIZE_LARGE;
        if (c >= 0) continue;
        int best = 0;
        for (int k = 0; k < NCLS; k++) {
            for (int j = 0; j < 5; j++) {
                const char *p = j < 3 ? synonyms[k][j] : parse_extra[k][j - 3];
                if (!p) continue;
                int m = match_phrase(p, w + i, nw - i);
                if (m > best) best = m, c = k;
            }
        }
    }
    free(buf);
    free(w);
    if (cls) *cls = c;
    if (tone) *tone = t;
    if (size) *size = s;
    return c;
}

/* ---- the builder ------------------------------------------------------------------------- */

dfs_status dfs_captions_fashion(dfs_caption_set *cs, const dfs_caption_options *o) {
    dfs_caption_options def;
    if (!o) dfs_caption_options_default(&def), o = &def;
    if (!cs || o->size < 0 || o->size > 4096 || o->limit < 0 ||
        (o->channels != 0 && o->channels != 1 && o->channels != 3)) {
        dfs_set_error("fashion-captions: bad arguments (size %d, channels %d, limit %d)", o->size,
                      o->channels, o->limit);
        return DFS_ERR_ARG;
    }
    memset(cs, 0, sizeof *cs);
    dfs_dataset *d = &cs->images;
    dfs_status st = dfs_load_fashion_mnist(d, !o->test_split);
    if (st) return st;
    if (o->limit > 0 && o->limit < d->n) d->n = o->limit;
    int n = d->n;
    cs->captions = calloc((size_t)n, sizeof(char *));
    cs->names = calloc((size_t)n, sizeof(char *));
    if (!cs->captions || !cs->names) goto nomem;
    size_t plane = (size_t)d->h * d->w;
    for (int i = 0; i < n; i++) {
        dfs_fashion_attr a;
        int cls = d->labels[i];
        dfs_fashion_measure(d->pixels + (size_t)i * plane, d->h, d->w, cls, &a);
        char buf[96];
        dfs_fashion_caption(buf, sizeof buf, cls, &a, o->seed, i);
        cs->captions[i] = strdup(buf);
        snprintf(buf, sizeof buf, "fashion-mnist-%s:%d", o->test_split ? "test" : "train", i);
        cs->names[i] = strdup(buf);
        if (!cs->captions[i] || !cs->names[i]) goto nomem;
        if (o->progress && ((i + 1) % 1000 == 0 || i + 1 == n) && !(o->size || o->channels > 1))
            o->progress(o->progress_user, i + 1, n);
    }
    int size = o->size ? o->size : d->h, ch = o->channels ? o->channels : 1;
    if (size != d->h || ch != d->c) {
        size_t per = (size_t)ch * size * size;
        uint8_t *px = malloc((size_t)n * per);
        if (!px) goto nomem;
        for (int i = 0; i < n; i++) {
            dfs_image_resize_u8(d->pixels + (size_t)i * plane, 1, d->h, d->w, px + (size_t)i * per,
                                ch, size); // arguments checked above: cannot fail
            if (o->progress && ((i + 1) % 1000 == 0 || i + 1 == n))
                o->progress(o->progress_user, i + 1, n);
        }
        free(d->pixels);
        d->pixels = px;
        d->c = ch;
        d->h = d->w = size;
    }
    return DFS_OK;
nomem:
    dfs_set_error("fashion-captions: out of memory");
    dfs_caption_set_free(cs);
    return DFS_ERR_NOMEM;
}
