/* emoji.c - the emoji builder: Noto Color Emoji glyphs with their Unicode names.
 *
 * Names: emoji-test.txt (Unicode Technical Standard #51), lines
 *   CODEPOINTS ; STATUS # EMOJI E<version> NAME
 * under "# group: G" and "# subgroup: S" headers; only "fully-qualified" lines are used.
 * Pixels: HarfBuzz shapes the sequence with the font's GSUB ligatures (ZWJ sequences, flags,
 * keycaps and skin tones become one glyph); FreeType loads that glyph from the CBDT table in
 * colour (FT_LOAD_COLOR gives premultiplied BGRA at the font's fixed strike, 136 x 128 for
 * Noto); it is composited on white, centred in a white square and area-averaged to the output
 * size with the same resampling as PNG folders (dfs_image_resize_u8). */
#include "diffuse/data.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <hb-ft.h>
#include <hb.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EMOJI_FONT "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
#define EMOJI_TEST "/usr/share/unicode/emoji/emoji-test.txt"
#define MAX_CPS 16      // code points in one sequence (the longest in Unicode 15 has 10)
#define STRIKE_MAX 1024 // largest bitmap side accepted from the font

/* ---- emoji-test.txt ---------------------------------------------------------------------- */

void dfs_emoji_list_free(dfs_emoji_entry *list, int n) {
    if (!list) return;
    for (int i = 0; i < n; i++) {
        free(list[i].utf8);
        free(list[i].codepoints);
        free(list[i].name);
        free(list[i].group);
        free(list[i].subgroup);
    }
    free(list);
}

static size_t utf8_put(char *out, unsigned long cp) {
    if (cp < 0x80) return out[0] = (char)cp, 1;
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static char *trim_dup(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    return strndup(s, n);
}

/* Parse one data line; 1 if it is fully-qualified (fields filled), 0 if it is another status,
 * -1 if malformed. *skin gets whether it has a skin-tone modifier. */
static int parse_line(const char *line, dfs_emoji_entry *e, int *skin) {
    const char *semi = strchr(line, ';'), *hash = semi ? strchr(semi, '#') : NULL;
    if (!semi || !hash) return -1;
    char *status = trim_dup(semi + 1, (size_t)(hash - semi - 1));
    if (!status) return -1;
    int fq = !strcmp(status, "fully-qualified");
    free(status);
    if (!fq) return 0;
    char utf8[MAX_CPS * 4 + 1], cps[MAX_CPS * 9 + 1];
    size_t ul = 0, cl = 0;
    int ncp = 0;
    *skin = 0;
    for (const char *p = line; p < semi;) {
        while (p < semi && *p == ' ')
            p++;
        if (p >= semi) break;
        char *end;
        unsigned long cp = strtoul(p, &end, 16);
        if (end == p || end > semi || cp == 0 || cp > 0x10FFFF || ncp == MAX_CPS) return -1;
        if (cp >= 0x1F3FB && cp <= 0x1F3FF) *skin = 1;
        ul += utf8_put(utf8 + ul, cp);
        cl += (size_t)snprintf(cps + cl, sizeof cps - cl, "%s%lX", ncp ? " " : "", cp);
        ncp++;
        p = end;
    }
    if (ncp == 0) return -1;
    utf8[ul] = 0;
    // "# 🍎 E0.6 red apple": skip the emoji and the version
    const char *p = hash + 1;
    while (*p == ' ')
        p++;
    while (*p && *p != ' ')
        p++;
    while (*p == ' ')
        p++;
    if (*p != 'E') return -1;
    while (*p && *p != ' ')
        p++;
    char *name = trim_dup(p, strlen(p));
    if (!name || !*name) {
        free(name);
        return -1;
    }
    e->name = name;
    e->utf8 = strdup(utf8);
    e->codepoints = strdup(cps);
    return e->utf8 && e->codepoints ? 1 : -1;
}

dfs_status dfs_emoji_list(const char *path, int skin_tones, dfs_emoji_entry **list, int *n) {
    if (!list || !n) {
        dfs_set_error("emoji_list: NULL argument");
        return DFS_ERR_ARG;
    }
    *list = NULL;
    *n = 0;
    if (!path) path = EMOJI_TEST;
    FILE *f;
    if (dfs_open_read(path, &f)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", dfs_last_error());
        dfs_set_error("%s (Debian package unicode-data)", msg);
        return DFS_ERR_IO;
    }
    dfs_status st = DFS_OK;
    char *line = NULL, *group = NULL, *subgroup = NULL;
    size_t lcap = 0;
    long lineno = 0;
    int cap = 0;
    dfs_emoji_entry *v = NULL;
    while (getline(&line, &lcap, f) >= 0) {
        lineno++;
        char **hdr = !strncmp(line, "# group:", 8)       ? &group
                     : !strncmp(line, "# subgroup:", 11) ? &subgroup
                                                         : NULL;
        if (hdr) {
            const char *s = strchr(line, ':') + 1;
            free(*hdr);
            if (!(*hdr = trim_dup(s, strlen(s)))) goto nomem;
            continue;
        }
        if (line[0] == '#' || line[0] == '\n' || line[0] == '\r' || !line[0]) continue;
        dfs_emoji_entry e = {0};
        int skin = 0, r = parse_line(line, &e, &skin);
        if (r < 0 || (r == 1 && (!group || !subgroup))) {
            free(e.utf8), free(e.codepoints), free(e.name);
            dfs_set_error("%s: line %ld: malformed emoji line", path, lineno);
            st = DFS_ERR_FORMAT;
            break;
        }
        if (r == 0 || (skin && !skin_tones)) {
            free(e.utf8), free(e.codepoints), free(e.name);
            continue;
        }
        e.skin_tone = skin;
        e.group = strdup(group);
        e.subgroup = strdup(subgroup);
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            dfs_emoji_entry *v2 = realloc(v, (size_t)cap * sizeof *v);
            if (!v2) {
                free(e.utf8), free(e.codepoints), free(e.name), free(e.group), free(e.subgroup);
                goto nomem;
            }
            v = v2;
        }
        v[(*n)++] = e;
        if (!e.group || !e.subgroup) goto nomem;
    }
    goto done;
nomem:
    dfs_set_error("%s: out of memory", path);
    st = DFS_ERR_NOMEM;
done:
    if (!st && ferror(f)) {
        dfs_set_error("%s: read error", path);
        st = DFS_ERR_IO;
    }
    if (!st && *n == 0) {
        dfs_set_error("%s: no fully-qualified emoji found", path);
        st = DFS_ERR_FORMAT;
    }
    fclose(f);
    free(line);
    free(group);
    free(subgroup);
    if (st) {
        dfs_emoji_list_free(v, *n);
        *n = 0;
    } else {
        *list = v;
    }
    return st;
}

/* ---- captions ---------------------------------------------------------------------------- */

/* ASCII letters for U+00C0..U+00FF (Latin-1 Supplement letters; 0 = drop). */
static const char latin1_fold[65] =
    "AAAAAAACEEEEIIIIDNOOOOO\0OUUUUYTsaaaaaaaceeeeiiiidnooooo\0ouuuuyty";

/* Append s to buf[*len..cap-1] lowercased and folded (see dfs_emoji_caption); hyphens become
 * spaces when dehyphen; runs of spaces collapse to one. */
static void put_norm(char *buf, size_t cap, size_t *len, const char *s, int dehyphen) {
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        char out[5] = {0};
        size_t adv = 1;
        if (p[0] == 0xC3 && p[1] >= 0x80 && p[1] <= 0xBF) { // U+00C0..U+00FF
            out[0] = latin1_fold[p[1] - 0x80];
            adv = 2;
        } else if (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0x98 || p[2] == 0x99)) {
            out[0] = '\''; // curly single quotes
            adv = 3;
        } else if (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0x9C || p[2] == 0x9D)) {
            adv = 3; // curly double quotes: dropped
        } else if (p[0] == '&' || p[0] == '"') {
            out[0] = ' ';
        } else if (p[0] == '-' && dehyphen) {
            out[0] = ' ';
        } else {
            out[0] = (char)(p[0] >= 'A' && p[0] <= 'Z' ? p[0] - 'A' + 'a' : p[0]);
        }
        if (out[0] >= 'A' && out[0] <= 'Z') out[0] = (char)(out[0] - 'A' + 'a');
        for (int k = 0; out[k]; k++) {
            if (out[k] == ' ' && (*len == 0 || buf[*len - 1] == ' ')) continue;
            if (*len + 1 < cap) buf[(*len)++] = out[k];
        }
        for (size_t k = 0; k < adv && *p; k++)
            p++;
    }
    while (*len && buf[*len - 1] == ' ')
        (*len)--;
    if (cap) buf[*len < cap ? *len : cap - 1] = 0;
}

size_t dfs_emoji_caption(const dfs_emoji_entry *e, char *buf, size_t cap) {
    if (!buf || cap == 0) return 0;
    char name[256], group[128], sub[128];
    size_t a = 0, b = 0, c = 0;
    const char *nm = !strcmp(e->name, "keycap: #")   ? "keycap: number sign"
                     : !strcmp(e->name, "keycap: *") ? "keycap: asterisk"
                                                     : e->name;
    put_norm(name, sizeof name, &a, nm, 0);
    put_norm(group, sizeof group, &b, e->group, 1);
    put_norm(sub, sizeof sub, &c, e->subgroup, 1);
    int len = snprintf(buf, cap, "%s, %s, %s", name, group, sub);
    return len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
}

/* ---- rendering --------------------------------------------------------------------------- */

struct dfs_emoji_font {
    FT_Library lib;
    FT_Face face;
    hb_font_t *hb;
    hb_buffer_t *buf;
    uint8_t *canvas; // (3, S, S) planar, S = largest bitmap side so far
    size_t canvas_cap;
};

void dfs_emoji_font_close(dfs_emoji_font *f) {
    if (!f) return;
    if (f->buf) hb_buffer_destroy(f->buf);
    if (f->hb) hb_font_destroy(f->hb);
    if (f->face) FT_Done_Face(f->face);
    if (f->lib) FT_Done_FreeType(f->lib);
    free(f->canvas);
    free(f);
}

dfs_status dfs_emoji_font_open(dfs_emoji_font **out, const char *path) {
    if (!out) {
        dfs_set_error("emoji_font_open: NULL argument");
        return DFS_ERR_ARG;
    }
    *out = NULL;
    if (!path) path = EMOJI_FONT;
    dfs_emoji_font *f = calloc(1, sizeof *f);
    if (!f) {
        dfs_set_error("emoji_font_open: out of memory");
        return DFS_ERR_NOMEM;
    }
    FT_Error err = FT_Init_FreeType(&f->lib);
    if (err) {
        free(f);
        dfs_set_error("emoji_font_open: FreeType initialisation failed (error %d)", err);
        return DFS_ERR_NOMEM;
    }
    dfs_status st = DFS_OK;
    if ((err = FT_New_Face(f->lib, path, 0, &f->face))) {
        f->face = NULL;
        FILE *t = fopen(path, "rb");
        if (!t) {
            dfs_set_error("%s: cannot open: %s (Debian package fonts-noto-color-emoji)", path,
                          strerror(errno));
            st = DFS_ERR_IO;
        } else {
            fclose(t);
            dfs_set_error("%s: not a font FreeType can read (error %d)", path, err);
            st = DFS_ERR_FORMAT;
        }
    } else if (!FT_HAS_COLOR(f->face) || f->face->num_fixed_sizes < 1) {
        dfs_set_error("%s: not a colour bitmap font (no colour table or fixed sizes)", path);
        st = DFS_ERR_FORMAT;
    } else if ((err = FT_Select_Size(f->face, 0))) {
        dfs_set_error("%s: cannot select its bitmap size (error %d)", path, err);
        st = DFS_ERR_FORMAT;
    } else {
        f->hb = hb_ft_font_create_referenced(f->face);
        f->buf = hb_buffer_create();
        if (!f->hb || !hb_buffer_allocation_successful(f->buf)) {
            dfs_set_error("%s: out of memory", path);
            st = DFS_ERR_NOMEM;
        }
    }
    if (st) {
        dfs_emoji_font_close(f);
        return st;
    }
    *out = f;
    return DFS_OK;
}

/* Render into dst (oc, size, size). */
static dfs_status render(dfs_emoji_font *f, const char *utf8, int size, int oc, uint8_t *dst) {
    hb_buffer_clear_contents(f->buf);
    hb_buffer_add_utf8(f->buf, utf8, -1, 0, -1);
    hb_buffer_guess_segment_properties(f->buf);
    hb_buffer_set_flags(f->buf, HB_BUFFER_FLAG_REMOVE_DEFAULT_IGNORABLES);
    hb_shape(f->hb, f->buf, NULL, 0);
    unsigned ng = 0;
    hb_glyph_info_t *gi = hb_buffer_get_glyph_infos(f->buf, &ng);
    if (ng != 1) {
        dfs_set_error("shapes into %u glyphs, not one", ng);
        return DFS_ERR_FORMAT;
    }
    if (gi[0].codepoint == 0) {
        dfs_set_error("has no glyph in the font");
        return DFS_ERR_FORMAT;
    }
    FT_Error err = FT_Load_Glyph(f->face, gi[0].codepoint, FT_LOAD_COLOR);
    if (err) {
        dfs_set_error("glyph %u does not load (FreeType error %d)", gi[0].codepoint, err);
        return DFS_ERR_FORMAT;
    }
    FT_GlyphSlot g = f->face->glyph;
    if (g->format != FT_GLYPH_FORMAT_BITMAP && (err = FT_Render_Glyph(g, FT_RENDER_MODE_NORMAL))) {
        dfs_set_error("glyph %u does not render (FreeType error %d)", gi[0].codepoint, err);
        return DFS_ERR_FORMAT;
    }
    const FT_Bitmap *b = &g->bitmap;
    int w = (int)b->width, h = (int)b->rows;
    if (b->pixel_mode != FT_PIXEL_MODE_BGRA || w <= 0 || h <= 0 || w > STRIKE_MAX ||
        h > STRIKE_MAX || !b->buffer) {
        dfs_set_error("glyph %u is not a colour bitmap (mode %d, %d x %d)", gi[0].codepoint,
                      b->pixel_mode, w, h);
        return DFS_ERR_FORMAT;
    }
    int S = w > h ? w : h, x0 = (S - w) / 2, y0 = (S - h) / 2;
    size_t plane = (size_t)S * S;
    if (3 * plane > f->canvas_cap) {
        uint8_t *c = realloc(f->canvas, 3 * plane);
        if (!c) {
            dfs_set_error("out of memory");
            return DFS_ERR_NOMEM;
        }
        f->canvas = c;
        f->canvas_cap = 3 * plane;
    }
    memset(f->canvas, 255, 3 * plane); // white
    int pitch = b->pitch;
    for (int y = 0; y < h; y++) {
        const uint8_t *row =
            b->buffer + (pitch >= 0 ? (size_t)y * pitch : (size_t)(h - 1 - y) * (size_t)(-pitch));
        for (int x = 0; x < w; x++) {
            const uint8_t *px = row + 4 * (size_t)x; // B, G, R, A premultiplied by A
            unsigned a = px[3];
            size_t o = (size_t)(y0 + y) * S + (size_t)(x0 + x);
            for (int k = 0; k < 3; k++) { // "over" white: c + 255 (1 - a/255) = c + 255 - a
                unsigned v = (unsigned)px[2 - k] + 255u - a;
                f->canvas[(size_t)k * plane + o] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
    return dfs_image_resize_u8(f->canvas, 3, S, S, dst, oc, size);
}

dfs_status dfs_emoji_render(dfs_emoji_font *f, const char *utf8, int size, uint8_t *out) {
    if (!f || !utf8 || !out || size <= 0 || size > 4096) {
        dfs_set_error("emoji_render: bad arguments (size %d)", size);
        return DFS_ERR_ARG;
    }
    dfs_status st = render(f, utf8, size, 3, out);
    if (st) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", dfs_last_error());
        dfs_set_error("emoji '%s': %s", utf8, msg);
    }
    return st;
}

/* ---- the builder ------------------------------------------------------------------------- */

dfs_status dfs_captions_emoji(dfs_caption_set *cs, const dfs_caption_options *o) {
    dfs_caption_options def;
    if (!o) dfs_caption_options_default(&def), o = &def;
    if (!cs || o->size < 0 || o->size > 4096 || o->limit < 0 ||
        (o->channels != 0 && o->channels != 1 && o->channels != 3)) {
        dfs_set_error("emoji: bad arguments (size %d, channels %d, limit %d)", o ? o->size : 0,
                      o ? o->channels : 0, o ? o->limit : 0);
        return DFS_ERR_ARG;
    }
    memset(cs, 0, sizeof *cs);
    dfs_emoji_entry *list = NULL;
    int n = 0, all = 0;
    dfs_status st = dfs_emoji_list(o->emoji_test, 1, &list, &all);
    if (st) return st;
    dfs_emoji_font *font = NULL;
    if ((st = dfs_emoji_font_open(&font, o->emoji_font))) {
        dfs_emoji_list_free(list, all);
        return st;
    }
    int size = o->size ? o->size : 32, ch = o->channels ? o->channels : 3;
    int want = 0; // emoji asked for: all but the skipped skin tones
    for (int i = 0; i < all; i++) {
        if (list[i].skin_tone && !o->skin_tones)
            cs->skipped++;
        else
            want++;
    }
    int total = o->limit > 0 && o->limit < want ? o->limit : want;
    if (total == 0) {
        dfs_emoji_font_close(font);
        dfs_emoji_list_free(list, all);
        dfs_set_error("emoji: every emoji in the list is a skin-tone variant (use skin_tones)");
        memset(cs, 0, sizeof *cs);
        return DFS_ERR_FORMAT;
    }
    size_t per = (size_t)ch * size * size;
    dfs_dataset *d = &cs->images;
    d->pixels = malloc((size_t)total * per);
    cs->captions = calloc((size_t)total, sizeof(char *));
    cs->names = calloc((size_t)total, sizeof(char *));
    char failed_names[300] = "";
    size_t fl = 0;
    if (!d->pixels || !cs->captions || !cs->names) {
        dfs_set_error("emoji: out of memory for %d images", total);
        st = DFS_ERR_NOMEM;
    }
    d->c = ch;
    d->h = d->w = size;
    for (int i = 0; i < all && !st && n < total; i++) {
        if (list[i].skin_tone && !o->skin_tones) continue;
        dfs_status r = render(font, list[i].utf8, size, ch, d->pixels + (size_t)n * per);
        if (r == DFS_ERR_NOMEM) {
            st = r;
            break;
        }
        if (r) {
            if (cs->failed < 4 && fl < sizeof failed_names)
                fl += (size_t)snprintf(failed_names + fl, sizeof failed_names - fl, "%s%s (%s: %s)",
                                       fl ? ", " : "", list[i].name, list[i].codepoints,
                                       dfs_last_error());
            cs->failed++;
            continue;
        }
        char cap[512];
        dfs_emoji_caption(&list[i], cap, sizeof cap);
        cs->captions[n] = strdup(cap);
        cs->names[n] = strdup(list[i].codepoints);
        if (!cs->captions[n] || !cs->names[n]) {
            n++;
            dfs_set_error("emoji: out of memory");
            st = DFS_ERR_NOMEM;
            break;
        }
        n++;
        d->n = n;
        if (o->progress) o->progress(o->progress_user, n, total);
    }
    d->n = n;
    dfs_emoji_font_close(font);
    dfs_emoji_list_free(list, all);
    if (!st && n == 0) {
        dfs_set_error("emoji: none of the emoji rendered (%d failed: %s)", cs->failed,
                      failed_names);
        st = DFS_ERR_FORMAT;
    }
    if (st) {
        dfs_caption_set_free(cs);
        return st;
    }
    if (cs->failed)
        dfs_log(DFS_LOG_WARN, "emoji: %d emoji did not render and were left out: %s%s", cs->failed,
                failed_names, cs->failed > 4 ? ", ..." : "");
    return DFS_OK;
}
