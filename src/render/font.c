/* font.c - text on pictures: a line of text rendered with FreeType, and an image grid with a
 * caption above each column (the class names over a grid of samples).
 *
 * FreeType does the rasterising (FT_Load_Char with FT_LOAD_RENDER gives an 8-bit coverage
 * bitmap per glyph); this file only places the glyphs on a baseline, left to right, with the
 * font's advances (no kerning, no shaping: captions are short Latin words). UTF-8 is decoded
 * here; invalid bytes become U+FFFD. */
#include "diffuse/render.h"

#include <ft2build.h>
#include FT_FREETYPE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Next code point of a UTF-8 string; advances *s. Invalid sequences give U+FFFD. */
static unsigned long utf8_next(const unsigned char **s) {
    const unsigned char *p = *s;
    unsigned long cp;
    int extra;
    if (p[0] < 0x80) cp = p[0], extra = 0;
    else if ((p[0] & 0xe0) == 0xc0) cp = p[0] & 0x1f, extra = 1;
    else if ((p[0] & 0xf0) == 0xe0) cp = p[0] & 0x0f, extra = 2;
    else if ((p[0] & 0xf8) == 0xf0) cp = p[0] & 0x07, extra = 3;
    else {
        *s = p + 1;
        return 0xfffd;
    }
    for (int i = 1; i <= extra; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *s = p + i;
            return 0xfffd;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    *s = p + 1 + extra;
    return cp;
}

typedef struct {
    FT_Library lib;
    FT_Face face;
} font;

static dfs_status font_open(font *f, const char *path, int px) {
    memset(f, 0, sizeof *f);
    if (FT_Init_FreeType(&f->lib)) {
        dfs_set_error("FreeType failed to initialise");
        return DFS_ERR_IO;
    }
    FT_Error e = FT_New_Face(f->lib, path, 0, &f->face);
    if (e) {
        FT_Done_FreeType(f->lib);
        f->lib = NULL;
        dfs_set_error("%s: cannot load the font (FreeType error %d)", path, e);
        return e == FT_Err_Cannot_Open_Resource ? DFS_ERR_IO : DFS_ERR_FORMAT;
    }
    if (FT_Set_Pixel_Sizes(f->face, 0, (FT_UInt)px)) {
        FT_Done_Face(f->face);
        FT_Done_FreeType(f->lib);
        f->lib = NULL;
        dfs_set_error("%s: the font has no %d-pixel size", path, px);
        return DFS_ERR_FORMAT;
    }
    return DFS_OK;
}

static void font_close(font *f) {
    if (f->face) FT_Done_Face(f->face);
    if (f->lib) FT_Done_FreeType(f->lib);
    memset(f, 0, sizeof *f);
}

/* Width in pixels of text at the face's size (sum of advances). */
static int text_width(font *f, const char *text) {
    const unsigned char *p = (const unsigned char *)text;
    long w = 0;
    while (*p) {
        unsigned long cp = utf8_next(&p);
        if (FT_Load_Char(f->face, cp, FT_LOAD_DEFAULT)) continue;
        w += f->face->glyph->advance.x >> 6;
    }
    return (int)w;
}

/* Blend text into an (H, W, c) 8-bit image at pen position (x, baseline y) in colour ink (a
 * grey level), clipped to the rectangle [x0, x1) x [0, H). */
static void draw_text(font *f, const char *text, uint8_t *img, int H, int W, int c, int x, int y, int x0, int x1,
                      uint8_t ink) {
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        unsigned long cp = utf8_next(&p);
        if (FT_Load_Char(f->face, cp, FT_LOAD_RENDER)) continue;
        FT_GlyphSlot gs = f->face->glyph;
        const FT_Bitmap *b = &gs->bitmap;
        for (unsigned r = 0; r < b->rows; r++)
            for (unsigned q = 0; q < b->width; q++) {
                int px = x + gs->bitmap_left + (int)q, py = y - gs->bitmap_top + (int)r;
                if (px < x0 || px >= x1 || px < 0 || px >= W || py < 0 || py >= H) continue;
                int a = b->buffer[(int)r * b->pitch + (int)q];
                for (int k = 0; k < c; k++) {
                    uint8_t *d = img + ((size_t)py * W + px) * c + k;
                    *d = (uint8_t)((*d * (255 - a) + ink * a + 127) / 255);
                }
            }
        x += gs->advance.x >> 6;
    }
}

dfs_status dfs_text_render(const char *font_path, const char *text, int px, uint8_t **out, int *w, int *h) {
    *out = NULL;
    *w = *h = 0;
    if (!font_path || !text || px < 4 || px > 512) {
        dfs_set_error("text_render: bad arguments (size %d)", px);
        return DFS_ERR_ARG;
    }
    font f;
    dfs_status s = font_open(&f, font_path, px);
    if (s != DFS_OK) return s;
    const int asc = (int)(f.face->size->metrics.ascender >> 6), desc = (int)(-f.face->size->metrics.descender >> 6);
    int W = text_width(&f, text), H = asc + desc;
    if (W < 1) W = 1;
    uint8_t *img = malloc((size_t)W * H);
    if (!img) {
        font_close(&f);
        dfs_set_error("text_render: out of memory");
        return DFS_ERR_NOMEM;
    }
    memset(img, 0, (size_t)W * H);
    draw_text(&f, text, img, H, W, 1, 0, asc, 0, W, 255); /* coverage: ink 255 on 0 */
    font_close(&f);
    *out = img;
    *w = W;
    *h = H;
    return DFS_OK;
}

dfs_status dfs_png_write_grid_labeled(const char *path, const float *images, int n, int c, int h, int w, int cols,
                                      const char *const *labels, const char *font_path, int px) {
    if (!path || !images || n <= 0 || (c != 1 && c != 3) || h <= 0 || w <= 0 || cols <= 0 || !labels ||
        px < 4 || px > 256) {
        dfs_set_error("png_write_grid_labeled: bad arguments (n %d, c %d, h %d, w %d, cols %d, px %d)", n, c, h,
                      w, cols, px);
        return DFS_ERR_ARG;
    }
    const int B = 2; /* border, as dfs_png_write_grid */
    if (cols > n) cols = n;
    const int rows = (n + cols - 1) / cols;
    font f;
    dfs_status s = font_open(&f, font_path, px);
    if (s != DFS_OK) return s;
    const int asc = (int)(f.face->size->metrics.ascender >> 6), desc = (int)(-f.face->size->metrics.descender >> 6);
    const int band = asc + desc + 2 * B;
    long long gw = (long long)cols * (w + B) + B, gh = (long long)rows * (h + B) + B + band;
    if (gw > 65536 || gh > 65536) {
        font_close(&f);
        dfs_set_error("png_write_grid_labeled: %s: grid %lld x %lld is too large", path, gw, gh);
        return DFS_ERR_ARG;
    }
    const size_t GW = (size_t)gw, GH = (size_t)gh;
    uint8_t *g = malloc(GW * GH * c);
    if (!g) {
        font_close(&f);
        dfs_set_error("png_write_grid_labeled: %s: out of memory", path);
        return DFS_ERR_NOMEM;
    }
    memset(g, 255, GW * band * c);                   /* white caption band */
    memset(g + GW * band * c, 128, GW * (GH - band) * c); /* grey borders, as the plain grid */
    const size_t plane = (size_t)h * w;
    for (int i = 0; i < n; i++) {
        const float *img = images + (size_t)i * c * plane; /* (c, h, w) */
        size_t x0 = (size_t)(i % cols) * (w + B) + B, y0 = (size_t)band + (size_t)(i / cols) * (h + B) + B;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++) {
                    float v = img[(size_t)k * plane + (size_t)y * w + x];
                    if (v != v) v = 0.0f;
                    v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
                    g[((y0 + y) * GW + x0 + x) * c + k] = (uint8_t)lrintf((v + 1.0f) * 127.5f);
                }
    }
    /* each caption centred over its column; a caption wider than the column is clipped to it */
    for (int j = 0; j < cols; j++) {
        if (!labels[j] || !labels[j][0]) continue;
        int tw = text_width(&f, labels[j]);
        int cx0 = j * (w + B) + B, cx1 = cx0 + w;
        int x = tw <= w ? cx0 + (w - tw) / 2 : cx0;
        draw_text(&f, labels[j], g, (int)GH, (int)GW, c, x, B + asc, cx0, cx1, 0);
    }
    font_close(&f);
    s = dfs_png_write(path, g, c, (int)GH, (int)GW);
    free(g);
    return s;
}
