/* io/png.c - PNG reading and writing with libpng, image grids, and folders of PNGs.
 *
 * libpng reports errors by longjmp to the setjmp point of the current read/write. Everything
 * that must survive that jump (buffers, the FILE) lives in a context struct reached through
 * a pointer, so no local variable changes between setjmp and longjmp. */
#include "diffuse/io.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define PNG_MAX_SIDE 16384
/* The most pixels a read decodes: 4096 x 4096. A PNG compresses a blank image about 1000:1, so
 * a 1 MB file can declare 16384 x 16384 RGBA, 1 GiB decoded (a "PNG bomb"); the cap keeps
 * a read under about 200 MB with its resize buffers, and is checked before any pixel buffer
 * is allocated. */
#define PNG_MAX_PIXELS (4096L * 4096L)
#define PNG_DIR_MAX_SIZE 4096 // largest size for dfs_load_png_dir

/* ---- libpng error plumbing --------------------------------------------------------------- */

typedef struct {
    char msg[200];
} png_err_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_err_ctx *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; // the library prints nothing; warnings (bad ancillary chunks) are ignored
}

/* ---- reading ----------------------------------------------------------------------------- */

typedef struct {
    png_err_ctx err;
    FILE *f;
    png_structp png;
    png_infop info;
    uint8_t *raw;        // (h, w, ch) as decoded
    png_bytep *rows;     // h row pointers into raw
} png_read_ctx;

static void read_ctx_free(png_read_ctx *r) {
    if (r->png) png_destroy_read_struct(&r->png, r->info ? &r->info : NULL, NULL);
    if (r->f) fclose(r->f);
    free(r->raw);
    free(r->rows);
}

/* libpng's own allocations, capped. An ancillary chunk (tEXt, iCCP, ...) is read whole, and a
 * length field of 1.4 GB was allocated before libpng found that the data was not there
 * (fuzz/regressions/png/oom-tEXt-*): libpng 1.6.39 reports a chunk over
 * png_set_chunk_malloc_max only as a benign error, a warning when reading. Refused here, the
 * chunk is skipped as one libpng has no memory for. 16 MB holds any real text or colour profile
 * and libpng's row buffers (16384 pixels of 8 bytes); the decoded image is our own allocation. */
#define PNG_LIB_ALLOC_MAX ((png_alloc_size_t)16 << 20)

static png_voidp png_capped_malloc(png_structp png, png_alloc_size_t n) {
    (void)png;
    return n <= PNG_LIB_ALLOC_MAX ? malloc(n) : NULL;
}

static void png_plain_free(png_structp png, png_voidp p) {
    (void)png;
    free(p);
}

/* Decode into r->raw as 8-bit gray, gray+alpha, RGB or RGBA; returns 0, 1 after libpng
 * raised an error (message in r->err.msg), or 2 for more than PNG_MAX_PIXELS pixels (*w, *h
 * set, nothing decoded). */
static int png_decode(png_read_ctx *r, int *ch, int *h, int *w) {
    if (setjmp(png_jmpbuf(r->png))) return 1;
    png_init_io(r->png, r->f);
    png_set_sig_bytes(r->png, 8);
    png_set_user_limits(r->png, PNG_MAX_SIDE, PNG_MAX_SIDE);
    png_read_info(r->png, r->info);
    int bit_depth = png_get_bit_depth(r->png, r->info);
    int color = png_get_color_type(r->png, r->info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
    if (color == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(r->png);
    if (png_get_valid(r->png, r->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(r->png);
    if (bit_depth == 16) png_set_strip_16(r->png);
    png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    *w = (int)png_get_image_width(r->png, r->info);
    *h = (int)png_get_image_height(r->png, r->info);
    *ch = png_get_channels(r->png, r->info);
    if ((long)*w * *h > PNG_MAX_PIXELS) return 2;
    if (png_get_bit_depth(r->png, r->info) != 8 || *ch < 1 || *ch > 4)
        png_error(r->png, "unsupported pixel layout");
    size_t rowbytes = png_get_rowbytes(r->png, r->info);
    if (rowbytes != (size_t)*w * (size_t)*ch) png_error(r->png, "unexpected row size");
    r->raw = malloc(rowbytes * (size_t)*h);
    r->rows = malloc((size_t)*h * sizeof(png_bytep));
    if (!r->raw || !r->rows) png_error(r->png, "out of memory");
    for (int y = 0; y < *h; y++) r->rows[y] = r->raw + (size_t)y * rowbytes;
    png_read_image(r->png, r->rows);
    png_read_end(r->png, NULL);
    return 0;
}

/* Read a PNG into *pixels (c, h, w) planar, c = 1 (gray sources) or 3 (color sources); alpha is
 * composited on white. *pixels is malloc'ed; the caller frees it. */
dfs_status dfs_png_read(const char *path, uint8_t **pixels, int *c, int *h, int *w) {
    if (!path || !pixels || !c || !h || !w) {
        dfs_set_error("png_read: NULL argument");
        return DFS_ERR_ARG;
    }
    *pixels = NULL;
    png_read_ctx r;
    memset(&r, 0, sizeof r);
    if (dfs_open_read(path, &r.f)) return DFS_ERR_IO;
    uint8_t sig[8];
    if (fread(sig, 1, 8, r.f) != 8 || png_sig_cmp(sig, 0, 8)) {
        dfs_set_error("%s: not a PNG file", path);
        read_ctx_free(&r);
        return DFS_ERR_FORMAT;
    }
    r.png = png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &r.err, png_on_error, png_on_warning,
                                     NULL, png_capped_malloc, png_plain_free);
    if (r.png) r.info = png_create_info_struct(r.png);
    if (!r.png || !r.info) {
        dfs_set_error("%s: out of memory", path);
        read_ctx_free(&r);
        return DFS_ERR_NOMEM;
    }
    int ch = 0, hh = 0, ww = 0;
    int rc = png_decode(&r, &ch, &hh, &ww);
    if (rc == 2)
        dfs_set_error("%s: the image is %d x %d pixels; diffuse reads at most %ld pixels (4096 x "
                      "4096): shrink it first",
                      path, ww, hh, PNG_MAX_PIXELS);
    else if (rc)
        dfs_set_error("%s: corrupt PNG: %s", path, r.err.msg);
    if (rc) {
        read_ctx_free(&r);
        return rc == 2 ? DFS_ERR_SHAPE : DFS_ERR_FORMAT;
    }
    int oc = ch <= 2 ? 1 : 3;      // gray(+alpha) -> 1, RGB(A) -> 3
    int has_alpha = ch == 2 || ch == 4;
    size_t plane = (size_t)hh * (size_t)ww;
    uint8_t *out = malloc(plane * (size_t)oc); // (oc, h, w)
    if (!out) {
        dfs_set_error("%s: out of memory", path);
        read_ctx_free(&r);
        return DFS_ERR_NOMEM;
    }
    for (size_t i = 0; i < plane; i++) {
        const uint8_t *px = r.raw + i * (size_t)ch;
        unsigned a = has_alpha ? px[ch - 1] : 255;
        for (int k = 0; k < oc; k++) {
            // "over" a white background: v a + 255 (1 - a), in 0..255 fixed point, rounded
            unsigned v = ((unsigned)px[k] * a + 255u * (255u - a) + 127u) / 255u;
            out[(size_t)k * plane + i] = (uint8_t)v;
        }
    }
    read_ctx_free(&r);
    *pixels = out;
    *c = oc;
    *h = hh;
    *w = ww;
    return DFS_OK;
}

/* ---- writing ----------------------------------------------------------------------------- */

typedef struct {
    png_err_ctx err;
    png_structp png;
    png_infop info;
    uint8_t *buf; // the encoded file, grown by mem_write
    size_t len, cap;
    png_bytep *rows;
} png_write_ctx;

static void mem_write(png_structp png, png_bytep data, png_size_t n) {
    png_write_ctx *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n) cap *= 2;
        uint8_t *b = realloc(m->buf, cap);
        if (!b) png_error(png, "out of memory");
        m->buf = b;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

static int png_encode(png_write_ctx *m, const uint8_t *pixels, int c, int h, int w) {
    if (setjmp(png_jmpbuf(m->png))) return 1;
    png_set_write_fn(m->png, m, mem_write, mem_flush);
    png_set_IHDR(m->png, m->info, (png_uint_32)w, (png_uint_32)h, 8,
                 c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(m->png, m->info);
    m->rows = malloc((size_t)h * sizeof(png_bytep));
    if (!m->rows) png_error(m->png, "out of memory");
    for (int y = 0; y < h; y++) m->rows[y] = (png_bytep)(pixels + (size_t)y * (size_t)w * c);
    png_write_image(m->png, m->rows);
    png_write_end(m->png, NULL);
    return 0;
}

/* Encode pixels (h, w, c) interleaved, c = 1 or 3, in memory, then write atomically. */
dfs_status dfs_png_write(const char *path, const uint8_t *pixels, int c, int h, int w) {
    if (!path || !pixels || (c != 1 && c != 3) || h <= 0 || w <= 0 || h > PNG_MAX_SIDE * 4 ||
        w > PNG_MAX_SIDE * 4) {
        dfs_set_error("png_write: bad arguments (c %d, h %d, w %d)", c, h, w);
        return DFS_ERR_ARG;
    }
    png_write_ctx m;
    memset(&m, 0, sizeof m);
    m.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &m.err, png_on_error, png_on_warning);
    if (m.png) m.info = png_create_info_struct(m.png);
    dfs_status st = DFS_OK;
    if (!m.png || !m.info) {
        dfs_set_error("%s: out of memory", path);
        st = DFS_ERR_NOMEM;
    } else if (png_encode(&m, pixels, c, h, w)) {
        dfs_set_error("%s: PNG encoding failed: %s", path, m.err.msg);
        st = DFS_ERR_NOMEM; // the only runtime failure of an in-memory encode
    }
    if (m.png) png_destroy_write_struct(&m.png, m.info ? &m.info : NULL);
    if (!st) st = dfs_write_atomic(path, m.buf, m.len);
    free(m.rows);
    free(m.buf);
    return st;
}

dfs_status dfs_png_grid_fits(int n, int h, int w, int cols) {
    const long long B = 2, cc = cols < n ? cols : n, rows = cc > 0 ? (n + cc - 1) / cc : 0;
    const long long gw = cc * (w + B) + B, gh = rows * (h + B) + B;
    if (gw > PNG_MAX_SIDE * 4 || gh > PNG_MAX_SIDE * 4) {
        dfs_set_error("a grid of %lld x %lld pixels is too large for a PNG (at most %d a side): fewer images or "
                      "a smaller --scale", gw, gh, PNG_MAX_SIDE * 4);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

/* Tile n images (c, h, w) in [-1, 1] into rows of min(cols, n) images, separated and framed
 * by a 2-pixel mid-gray (128) border; empty cells of the last row are gray too. Values map
 * by round((clamp(x, -1, 1) + 1) * 127.5); NaN maps to 128. */
dfs_status dfs_png_write_grid(const char *path, const float *images, int n, int c, int h,
                              int w, int cols) {
    if (!path || !images || n <= 0 || (c != 1 && c != 3) || h <= 0 || w <= 0 || cols <= 0) {
        dfs_set_error("png_write_grid: bad arguments (n %d, c %d, h %d, w %d, cols %d)", n, c,
                      h, w, cols);
        return DFS_ERR_ARG;
    }
    const int B = 2; // border width
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    long long gw = (long long)cols * (w + B) + B, gh = (long long)rows * (h + B) + B;
    if (dfs_png_grid_fits(n, h, w, cols)) return DFS_ERR_ARG;
    size_t gsz = (size_t)gw * (size_t)gh * (size_t)c;
    uint8_t *g = malloc(gsz); // (gh, gw, c) interleaved
    if (!g) {
        dfs_set_error("png_write_grid: %s: out of memory", path);
        return DFS_ERR_NOMEM;
    }
    memset(g, 128, gsz);
    size_t plane = (size_t)h * (size_t)w;
    for (int i = 0; i < n; i++) {
        const float *img = images + (size_t)i * (size_t)c * plane; // (c, h, w)
        size_t x0 = (size_t)(i % cols) * (size_t)(w + B) + B;
        size_t y0 = (size_t)(i / cols) * (size_t)(h + B) + B;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                uint8_t *dst = g + ((y0 + (size_t)y) * (size_t)gw + x0 + (size_t)x) * (size_t)c;
                for (int k = 0; k < c; k++) {
                    float v = img[(size_t)k * plane + (size_t)y * (size_t)w + (size_t)x];
                    if (v != v) v = 0.0f;
                    v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
                    dst[k] = (uint8_t)lrintf((v + 1.0f) * 127.5f);
                }
            }
        }
    }
    dfs_status st = dfs_png_write(path, g, c, (int)gh, (int)gw);
    free(g);
    return st;
}

/* ---- folders of PNGs --------------------------------------------------------------------- */

typedef struct {
    char **v;
    int n, cap;
} strvec;

static void strvec_free(strvec *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int strvec_push(strvec *s, const char *str) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n] = strdup(str);
    if (!s->v[s->n]) return 0;
    s->n++;
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static int has_png_ext(const char *name) {
    size_t n = strlen(name);
    return n > 4 && !strcasecmp(name + n - 4, ".png");
}

/* List dir: names of sub-folders and of .png files (hidden entries skipped), each sorted
 * bytewise so the order is the same on every machine. */
static dfs_status list_dir(const char *dir, strvec *subdirs, strvec *pngs) {
    DIR *dp = opendir(dir);
    if (!dp) {
        dfs_set_error("%s: cannot open folder: %s", dir, strerror(errno));
        return DFS_ERR_IO;
    }
    dfs_status st = DFS_OK;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        char *p = join(dir, de->d_name);
        struct stat sb;
        if (!p) {
            st = DFS_ERR_NOMEM;
            break;
        }
        int ok = 1;
        struct stat lsb;
        if (lstat(p, &lsb) == 0 && S_ISLNK(lsb.st_mode) && stat(p, &sb) == 0 &&
            S_ISDIR(sb.st_mode)) {
            // not followed, as find(1) and os.walk() do not: a link to its own folder would be
            // a class of its own, and self/self/a.png the same image under another name
            dfs_set_error("%s: a link to a folder, which diffuse does not follow (copy the "
                          "folder, or link the files)", p);
            free(p);
            st = DFS_ERR_FORMAT;
            break;
        }
        if (stat(p, &sb) == 0) {
            if (S_ISDIR(sb.st_mode) && subdirs) ok = strvec_push(subdirs, de->d_name);
            else if (S_ISREG(sb.st_mode) && has_png_ext(de->d_name))
                ok = strvec_push(pngs, de->d_name);
        }
        free(p);
        if (!ok) {
            st = DFS_ERR_NOMEM;
            break;
        }
    }
    closedir(dp);
    if (st == DFS_ERR_NOMEM) dfs_set_error("%s: out of memory listing the folder", dir);
    if (st) return st; // the caller frees what was listed
    if (subdirs && subdirs->n) qsort(subdirs->v, (size_t)subdirs->n, sizeof(char *), cmp_str);
    if (pngs->n) qsort(pngs->v, (size_t)pngs->n, sizeof(char *), cmp_str);
    return DFS_OK;
}

/* Resample one line of n_in values (stride si) to n_out values (stride so).
 * Shrinking (n_out < n_in): area averaging; output i averages the input over
 *   [i s, (i+1) s), s = n_in / n_out, weighting partly covered pixels by their overlap.
 * Growing or equal: bilinear with pixel centres at i + 0.5 (half-pixel, as in
 *   OpenCV INTER_LINEAR / PyTorch align_corners=False), edges clamped; equal sizes copy. */
static void resample_line(const float *in, int n_in, size_t si, float *out, int n_out,
                          size_t so) {
    double s = (double)n_in / n_out;
    if (n_out < n_in) {
        for (int i = 0; i < n_out; i++) {
            double a = i * s, b = (i + 1) * s, acc = 0.0;
            for (int j = (int)a; j < n_in && j < b; j++) {
                double lo = j > a ? j : a, hi = j + 1 < b ? j + 1 : b;
                acc += (hi - lo) * in[(size_t)j * si];
            }
            out[(size_t)i * so] = (float)(acc / s);
        }
    } else {
        for (int i = 0; i < n_out; i++) {
            double x = (i + 0.5) * s - 0.5;
            if (x < 0) x = 0;
            int j0 = (int)x;
            if (j0 > n_in - 1) j0 = n_in - 1;
            int j1 = j0 + 1 < n_in ? j0 + 1 : n_in - 1;
            double f = x - j0;
            out[(size_t)i * so] = (float)((1 - f) * in[(size_t)j0 * si] + f * in[(size_t)j1 * si]);
        }
    }
}

/* Convert one decoded image (sc, sh, sw) to (oc, size, size) 8-bit into dst. Gray -> RGB
 * copies the plane; RGB -> gray uses ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B.
 * tmp holds sc*sh*sw + sh*size floats. */
static void convert_image(const uint8_t *src, int sc, int sh, int sw, uint8_t *dst, int oc,
                          int size, float *tmp) {
    size_t splane = (size_t)sh * (size_t)sw;
    float *chan = tmp;                  // (sh, sw) one output channel before resizing
    float *half = tmp + splane;         // (sh, size) after the horizontal pass
    for (int k = 0; k < oc; k++) {
        for (size_t i = 0; i < splane; i++) {
            if (sc == oc) chan[i] = src[(size_t)k * splane + i];
            else if (sc == 1) chan[i] = src[i];
            else
                chan[i] = 0.299f * src[i] + 0.587f * src[splane + i] + 0.114f * src[2 * splane + i];
        }
        for (int y = 0; y < sh; y++)
            resample_line(chan + (size_t)y * sw, sw, 1, half + (size_t)y * size, size, 1);
        uint8_t *d = dst + (size_t)k * size * size;
        float col[PNG_DIR_MAX_SIZE]; // (size)
        for (int x = 0; x < size; x++) {
            resample_line(half + x, sh, (size_t)size, col, size, 1);
            for (int y = 0; y < size; y++) {
                float v = col[y] < 0 ? 0 : col[y] > 255 ? 255 : col[y];
                d[(size_t)y * size + x] = (uint8_t)lrintf(v);
            }
        }
    }
}

dfs_status dfs_image_resize_u8(const uint8_t *src, int sc, int sh, int sw, uint8_t *dst, int oc,
                               int size) {
    if (!src || !dst || (sc != 1 && sc != 3) || (oc != 1 && oc != 3) || sh <= 0 || sw <= 0 ||
        size <= 0 || size > PNG_DIR_MAX_SIZE || sh > 65536 || sw > 65536) {
        dfs_set_error("image_resize: bad arguments (%d x %d x %d to %d x %d x %d)", sc, sh, sw, oc,
                      size, size);
        return DFS_ERR_ARG;
    }
    float *tmp = malloc(((size_t)sh * sw + (size_t)sh * size) * sizeof(float));
    if (!tmp) {
        dfs_set_error("image_resize: out of memory for a %d x %d image", sh, sw);
        return DFS_ERR_NOMEM;
    }
    convert_image(src, sc, sh, sw, dst, oc, size, tmp);
    free(tmp);
    return DFS_OK;
}

/* Load a folder of PNGs (see diffuse.h). With sub-folders, each is a class, in sorted order,
 * and loose PNGs beside them are ignored; without, the PNGs are unlabelled. */
dfs_status dfs_load_png_dir(dfs_dataset *d, const char *dir, int size, int channels) {
    if (!d || !dir || size <= 0 || size > PNG_DIR_MAX_SIZE || (channels != 1 && channels != 3)) {
        dfs_set_error("load_png_dir: bad arguments (size %d, channels %d)", size, channels);
        return DFS_ERR_ARG;
    }
    memset(d, 0, sizeof *d);
    strvec classes = {0}, top = {0}, files = {0};
    int *labels = NULL;
    float *tmp = NULL;
    size_t tmpcap = 0;
    dfs_status st = list_dir(dir, &classes, &top);
    if (st) goto done;
    if (classes.n == 0) {
        for (int i = 0; i < top.n; i++) {
            char *p = join(dir, top.v[i]);
            if (!p || !strvec_push(&files, p)) {
                free(p);
                st = DFS_ERR_NOMEM;
                goto nomem;
            }
            free(p);
        }
    } else {
        labels = malloc(sizeof(int)); // grown below
        int lcap = 1;
        if (!labels) goto nomem;
        for (int k = 0; k < classes.n; k++) {
            char *cdir = join(dir, classes.v[k]);
            strvec pngs = {0};
            if (!cdir) {
                st = DFS_ERR_NOMEM;
                goto nomem;
            }
            st = list_dir(cdir, NULL, &pngs);
            if (!st && pngs.n == 0) {
                dfs_set_error("%s: class folder has no .png files", cdir);
                st = DFS_ERR_FORMAT;
            }
            for (int i = 0; !st && i < pngs.n; i++) {
                char *p = join(cdir, pngs.v[i]);
                if (!p || !strvec_push(&files, p)) {
                    dfs_set_error("%s: out of memory", cdir);
                    st = DFS_ERR_NOMEM;
                }
                free(p);
                if (!st && files.n > lcap) {
                    lcap *= 2;
                    int *l = realloc(labels, (size_t)lcap * sizeof(int));
                    if (!l) {
                        dfs_set_error("%s: out of memory", cdir);
                        st = DFS_ERR_NOMEM;
                    } else {
                        labels = l;
                    }
                }
                if (!st) labels[files.n - 1] = k;
            }
            strvec_free(&pngs);
            free(cdir);
            if (st) goto done;
        }
    }
    if (files.n == 0) {
        dfs_set_error("%s: no .png files or class sub-folders", dir);
        st = DFS_ERR_FORMAT;
        goto done;
    }
    size_t per = (size_t)channels * (size_t)size * (size_t)size;
    d->pixels = malloc((size_t)files.n * per);
    if (!d->pixels) goto nomem;
    d->n = files.n;
    d->c = channels;
    d->h = d->w = size;
    for (int i = 0; i < files.n; i++) {
        uint8_t *px;
        int sc, sh, sw;
        st = dfs_png_read(files.v[i], &px, &sc, &sh, &sw); // its message names the file
        if (st) goto done;
        size_t need = (size_t)sh * (size_t)sw + (size_t)sh * (size_t)size;
        if (need > tmpcap) {
            float *t = realloc(tmp, need * sizeof(float));
            if (!t) {
                free(px);
                goto nomem;
            }
            tmp = t;
            tmpcap = need;
        }
        convert_image(px, sc, sh, sw, d->pixels + (size_t)i * per, channels, size, tmp);
        free(px);
    }
    if (classes.n) {
        d->labels = labels;
        labels = NULL;
        d->num_classes = classes.n;
        d->class_names = classes.v; // hand the sorted names over
        memset(&classes, 0, sizeof classes);
    }
    st = DFS_OK;
    goto done;
nomem:
    dfs_set_error("%s: out of memory", dir);
    st = DFS_ERR_NOMEM;
done:
    if (st) dfs_dataset_free(d);
    strvec_free(&classes);
    strvec_free(&top);
    strvec_free(&files);
    free(labels);
    free(tmp);
    return st;
}
