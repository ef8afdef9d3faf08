/* captions.c - captioned image folders, loading captioned data by name, writing folders.
 *
 * A captioned folder follows Hugging Face's imagefolder convention: DIR/metadata.jsonl with
 * one JSON object per line, {"file_name": "0001.png", "text": "a red apple", ...}; other keys
 * are ignored except an integer "label". Without metadata.jsonl, each DIR/NAME.png needs a
 * caption file DIR/NAME.txt. Only PNG images are read (dfs_png_read), and they are resized
 * like dfs_load_png_dir's (the resampling below is the same code path, kept in step by a
 * test that loads one folder both ways). */
#include "diffuse/data.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESIZE_MAX 4096       // largest output side (as dfs_load_png_dir)
#define CAPTION_MAX (1 << 16) // longest .txt caption in bytes
#define METADATA "metadata.jsonl"

/* ---- small helpers ----------------------------------------------------------------------- */

typedef struct {
    char **v;
    int n, cap;
} strvec;

static void strvec_free(strvec *s) {
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Append a copy of str (or take ownership of it with own = 1). 0 when out of memory. */
static int strvec_push(strvec *s, char *str, int own) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            if (own) free(str);
            return 0;
        }
        s->v = v;
        s->cap = cap;
    }
    char *c = own ? str : strdup(str);
    if (!c) return 0;
    s->v[s->n++] = c;
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

static int has_ext(const char *name, const char *ext) {
    size_t n = strlen(name), e = strlen(ext);
    return n > e && !strcasecmp(name + n - e, ext);
}

static int is_other_image(const char *name) {
    static const char *const ext[] = {".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (has_ext(name, ext[i])) return 1;
    return 0;
}

void dfs_caption_options_default(dfs_caption_options *o) {
    memset(o, 0, sizeof *o);
}

void dfs_caption_set_free(dfs_caption_set *cs) {
    if (!cs) return;
    int n = cs->images.n;
    if (cs->captions)
        for (int i = 0; i < n; i++)
            free(cs->captions[i]);
    if (cs->names)
        for (int i = 0; i < n; i++)
            free(cs->names[i]);
    free(cs->captions);
    free(cs->names);
    dfs_dataset_free(&cs->images);
    memset(cs, 0, sizeof *cs);
}

/* Resizing is dfs_image_resize_u8 (io/png.c), the arithmetic of PNG folders. */

/* ---- reading a folder -------------------------------------------------------------------- */

/* The whole of a small text file, NUL-terminated; *len its length. NULL with the error set. */
static char *read_text(const char *path, size_t max, size_t *len) {
    FILE *f;
    if (dfs_open_read(path, &f)) return NULL;
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        dfs_set_error("%s: out of memory", path);
        return NULL;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > max) {
        free(buf);
        if (err)
            dfs_set_error("%s: read error", path);
        else
            dfs_set_error("%s: longer than %zu bytes", path, max);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Control characters (C0 and DEL: line breaks, tabs, terminal escapes) become spaces, as they
 * would only break the one-caption-per-line listings (samples-captions.txt, data show). */
static void blank_controls(char *s) {
    for (unsigned char *q = (unsigned char *)s; *q; q++)
        if (*q < 0x20 || *q == 0x7F) *q = ' ';
}

/* Whether a JSON line has the escape \u0000 in a string: cJSON would decode it to a NUL and
 * quietly cut the string there. Backslashes only occur in strings of valid JSON. */
static int json_has_nul_escape(const char *p) {
    for (; *p; p++)
        if (*p == '\\') {
            if (p[1] == 'u' && !strncmp(p + 2, "0000", 4)) return 1;
            if (p[1]) p++; // the escaped character, so that \\u0000 is a backslash and "u0000"
        }
    return 0;
}

/* A caption from a .txt file: UTF-8 BOM dropped, surrounding whitespace trimmed, control
 * characters inside (line breaks, tabs) turned into spaces. It must be UTF-8. */
static char *read_caption_txt(const char *path) {
    size_t n;
    char *s = read_text(path, CAPTION_MAX, &n);
    if (!s) return NULL;
    if (strlen(s) != n) {
        free(s);
        dfs_set_error("%s: caption contains a NUL byte", path);
        return NULL;
    }
    char *p = s;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    size_t l = strlen(p);
    while (l && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\r' || p[l - 1] == '\n'))
        l--;
    memmove(s, p, l);
    s[l] = 0;
    long bad = dfs_utf8_invalid(s);
    if (bad >= 0) {
        free(s);
        dfs_set_error("%s: caption is not UTF-8 text (byte %ld)", path, bad);
        return NULL;
    }
    blank_controls(s);
    return s;
}

/* file_name must stay inside the folder: relative, no "." or ".." components. */
static int safe_relpath(const char *p) {
    if (!*p || p[0] == '/') return 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == 0 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.')) return 0;
        s += l + (e ? 1 : 0);
        if (e && !*s) return 0; // trailing slash
    }
    return 1;
}

/* Whether a folder on the way from dir to dir/rel (not dir itself, not the file) is a symbolic
 * link. Links to folders are not followed, as find(1) and os.walk() do not follow them: a link
 * to its own folder would make "self/a.png" and "a.png" the same image under two names. */
static int through_dir_link(const char *dir, const char *rel) {
    char *p = join(dir, rel);
    if (!p) return 0;
    int found = 0;
    for (char *s = p + strlen(dir) + 1; !found && (s = strchr(s, '/')); s++) {
        struct stat sb;
        *s = 0;
        found = lstat(p, &sb) == 0 && S_ISLNK(sb.st_mode);
        *s = '/';
    }
    free(p);
    return found;
}

/* Parse DIR/metadata.jsonl into files/captions (and labels when every line has one). */
static dfs_status read_metadata(const char *mpath, strvec *files, strvec *captions, int **labels) {
    FILE *f;
    if (dfs_open_read(mpath, &f)) return DFS_ERR_IO;
    dfs_status st = DFS_OK;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long lineno = 0;
    int *lab = NULL, all_labelled = 1, labcap = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        if ((size_t)len != strlen(line)) {
            dfs_set_error("%s: line %ld: contains a NUL byte", mpath, lineno);
            st = DFS_ERR_FORMAT;
            break;
        }
        const char *p = line;
        if (lineno == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
            (unsigned char)p[2] == 0xBF)
            p += 3;
        const char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (!*q) continue;                          // blank line
        if (json_has_nul_escape(p)) {
            dfs_set_error("%s: line %ld: a string contains \\u0000 (a NUL character)", mpath,
                          lineno);
            st = DFS_ERR_FORMAT;
            break;
        }
        long bad = dfs_utf8_invalid(p);
        if (bad >= 0) {
            dfs_set_error("%s: line %ld: not UTF-8 text (byte %ld)", mpath, lineno, bad);
            st = DFS_ERR_FORMAT;
            break;
        }
        cJSON *o = cJSON_ParseWithOpts(p, NULL, 1); // nothing may follow the object
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(o, "file_name");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(o, "text");
        const cJSON *lb = cJSON_GetObjectItemCaseSensitive(o, "label");
        if (!cJSON_IsObject(o)) {
            dfs_set_error("%s: line %ld: not a JSON object (or not valid JSON)", mpath, lineno);
            st = DFS_ERR_FORMAT;
        } else if (!cJSON_IsString(fn)) {
            dfs_set_error("%s: line %ld: no string \"file_name\"", mpath, lineno);
            st = DFS_ERR_FORMAT;
        } else if (!cJSON_IsString(tx)) {
            dfs_set_error("%s: line %ld: no string \"text\" (the caption of %s)", mpath, lineno,
                          fn->valuestring);
            st = DFS_ERR_FORMAT;
        } else if (!safe_relpath(fn->valuestring)) {
            dfs_set_error("%s: line %ld: file_name '%s' must be a path inside the folder", mpath,
                          lineno, fn->valuestring);
            st = DFS_ERR_FORMAT;
        } else if (strlen(tx->valuestring) > CAPTION_MAX) {
            dfs_set_error("%s: line %ld: the caption of %s is %zu bytes; the longest allowed is "
                          "%d", mpath, lineno, fn->valuestring, strlen(tx->valuestring),
                          CAPTION_MAX);
            st = DFS_ERR_FORMAT;
        } else if (!has_ext(fn->valuestring, ".png")) {
            dfs_set_error("%s: line %ld: %s: only PNG images are supported", mpath, lineno,
                          fn->valuestring);
            st = DFS_ERR_FORMAT;
        }
        if (!st) {
            if (!strvec_push(files, fn->valuestring, 0) ||
                !strvec_push(captions, tx->valuestring, 0))
                st = DFS_ERR_NOMEM;
            else
                blank_controls(captions->v[captions->n - 1]);
            if (!st && all_labelled) {
                if (cJSON_IsNumber(lb) && lb->valuedouble >= 0 && lb->valuedouble < 1e6 &&
                    lb->valuedouble == (double)(int)lb->valuedouble) {
                    if (files->n > labcap) {
                        labcap = labcap ? 2 * labcap : 256;
                        int *l2 = realloc(lab, (size_t)labcap * sizeof(int));
                        if (!l2)
                            st = DFS_ERR_NOMEM;
                        else
                            lab = l2;
                    }
                    if (!st) lab[files->n - 1] = (int)lb->valuedouble;
                } else {
                    all_labelled = 0;
                }
            }
            if (st) dfs_set_error("%s: out of memory", mpath);
        }
        cJSON_Delete(o);
        if (st) break;
    }
    if (!st && ferror(f)) {
        dfs_set_error("%s: read error", mpath);
        st = DFS_ERR_IO;
    }
    free(line);
    fclose(f);
    if (!st && files->n == 0) {
        dfs_set_error("%s: no images listed (empty metadata)", mpath);
        st = DFS_ERR_FORMAT;
    }
    if (!st) { // duplicates
        char **sorted = malloc((size_t)files->n * sizeof(char *));
        if (!sorted) {
            dfs_set_error("%s: out of memory", mpath);
            st = DFS_ERR_NOMEM;
        } else {
            memcpy(sorted, files->v, (size_t)files->n * sizeof(char *));
            qsort(sorted, (size_t)files->n, sizeof(char *), cmp_str);
            for (int i = 1; i < files->n && !st; i++)
                if (!strcmp(sorted[i - 1], sorted[i])) {
                    dfs_set_error("%s: %s is listed more than once", mpath, sorted[i]);
                    st = DFS_ERR_FORMAT;
                }
            free(sorted);
        }
    }
    if (!st && all_labelled)
        *labels = lab;
    else
        free(lab);
    return st;
}

/* Every DIR/NAME.png with DIR/NAME.txt. */
static dfs_status read_txt_folder(const char *dir, strvec *files, strvec *captions) {
    DIR *dp = opendir(dir);
    if (!dp) {
        dfs_set_error("%s: cannot open folder: %s", dir, strerror(errno));
        return DFS_ERR_IO;
    }
    dfs_status st = DFS_OK;
    struct dirent *de;
    while (!st && (de = readdir(dp))) {
        const char *nm = de->d_name;
        if (nm[0] == '.') continue;
        if (is_other_image(nm)) {
            dfs_set_error("%s/%s: only PNG images are supported", dir, nm);
            st = DFS_ERR_FORMAT;
        } else if (has_ext(nm, ".png")) {
            if (!strvec_push(files, (char *)nm, 0)) {
                dfs_set_error("%s: out of memory", dir);
                st = DFS_ERR_NOMEM;
            }
        }
    }
    closedir(dp);
    if (st) return st;
    if (files->n == 0) {
        dfs_set_error("%s: empty folder: no %s and no .png images", dir, METADATA);
        return DFS_ERR_FORMAT;
    }
    qsort(files->v, (size_t)files->n, sizeof(char *), cmp_str);
    for (int i = 0; i < files->n; i++) {
        char *p = join(dir, files->v[i]);
        if (!p) {
            dfs_set_error("%s: out of memory", dir);
            return DFS_ERR_NOMEM;
        }
        strcpy(p + strlen(p) - 4, ".txt");
        struct stat sb;
        if (stat(p, &sb) != 0) {
            dfs_set_error("%s/%s: image without caption (no %s and no %s)", dir, files->v[i],
                          METADATA, p);
            free(p);
            return DFS_ERR_FORMAT;
        }
        char *cap = read_caption_txt(p);
        free(p);
        if (!cap) return DFS_ERR_FORMAT;
        if (!strvec_push(captions, cap, 1)) {
            dfs_set_error("%s: out of memory", dir);
            return DFS_ERR_NOMEM;
        }
    }
    return DFS_OK;
}

/* PNGs directly in dir that metadata does not name ("image without caption"), and images of
 * other formats (refused as in a folder of .txt captions, rather than quietly left out). */
static dfs_status check_unlisted(const char *dir, const strvec *files) {
    DIR *dp = opendir(dir);
    if (!dp) {
        dfs_set_error("%s: cannot open folder: %s", dir, strerror(errno));
        return DFS_ERR_IO;
    }
    char **sorted = malloc((size_t)files->n * sizeof(char *));
    if (!sorted) {
        closedir(dp);
        dfs_set_error("%s: out of memory", dir);
        return DFS_ERR_NOMEM;
    }
    memcpy(sorted, files->v, (size_t)files->n * sizeof(char *));
    qsort(sorted, (size_t)files->n, sizeof(char *), cmp_str);
    dfs_status st = DFS_OK;
    struct dirent *de;
    while ((de = readdir(dp))) {
        const char *nm = de->d_name;
        if (nm[0] != '.' && is_other_image(nm)) {
            dfs_set_error("%s/%s: only PNG images are supported", dir, nm);
            st = DFS_ERR_FORMAT;
            break;
        }
        if (nm[0] == '.' || !has_ext(nm, ".png")) continue;
        if (!bsearch(&nm, sorted, (size_t)files->n, sizeof(char *), cmp_str)) {
            dfs_set_error("%s/%s: image without caption (not in %s)", dir, nm, METADATA);
            st = DFS_ERR_FORMAT;
            break;
        }
    }
    closedir(dp);
    free(sorted);
    return st;
}

dfs_status dfs_captions_load_dir(dfs_caption_set *cs, const char *dir,
                                 const dfs_caption_options *o) {
    dfs_caption_options def;
    if (!o) dfs_caption_options_default(&def), o = &def;
    if (!cs || !dir || o->size < 0 || o->size > RESIZE_MAX || o->limit < 0 ||
        (o->channels != 0 && o->channels != 1 && o->channels != 3)) {
        dfs_set_error("captions_load_dir: bad arguments (size %d, channels %d, limit %d)", o->size,
                      o->channels, o->limit);
        return DFS_ERR_ARG;
    }
    memset(cs, 0, sizeof *cs);
    strvec files = {0}, captions = {0};
    int *labels = NULL;
    dfs_status st;
    struct stat sb;
    char *mpath = join(dir, METADATA);
    if (!mpath) {
        dfs_set_error("%s: out of memory", dir);
        return DFS_ERR_NOMEM;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        dfs_set_error("%s: no such folder", dir);
        st = DFS_ERR_IO;
    } else if (lstat(mpath, &sb) == 0) {
        // lstat: a metadata file that exists but cannot be read (a broken or looping link, a
        // folder) is an error from read_metadata, not a quiet switch to .txt captions
        st = read_metadata(mpath, &files, &captions, &labels);
        if (!st) st = check_unlisted(dir, &files);
    } else {
        st = read_txt_folder(dir, &files, &captions);
    }
    free(mpath);
    int n = files.n;
    if (!st && o->limit > 0 && o->limit < n) n = o->limit;
    dfs_dataset *d = &cs->images;
    uint8_t *px = NULL;
    for (int i = 0; !st && i < n; i++) {
        char *path = join(dir, files.v[i]);
        int sc, sh, sw;
        if (!path) {
            dfs_set_error("%s: out of memory", dir);
            st = DFS_ERR_NOMEM;
            break;
        }
        if (stat(path, &sb) != 0) {
            dfs_set_error("%s: missing file named in %s", path, METADATA);
            st = DFS_ERR_IO;
        } else if (through_dir_link(dir, files.v[i])) {
            dfs_set_error("%s: the path goes through a link to a folder, which diffuse does not "
                          "follow (copy the folder, or link the files)", path);
            st = DFS_ERR_FORMAT;
        } else {
            st = dfs_png_read(path, &px, &sc, &sh, &sw); // its message names the file
        }
        if (!st && i == 0) { // the first image fixes what 0 (natural) means
            d->c = o->channels ? o->channels : sc;
            if (o->size)
                d->h = d->w = o->size;
            else if (sh != sw || sh > RESIZE_MAX) {
                dfs_set_error("%s: image is %d x %d; give a size to resize the folder to", path, sw,
                              sh);
                st = DFS_ERR_SHAPE;
            } else {
                d->h = d->w = sh;
            }
            size_t per = (size_t)d->c * d->h * d->w;
            if (!st && !(d->pixels = malloc((size_t)n * per))) {
                dfs_set_error("%s: out of memory for %d images", dir, n);
                st = DFS_ERR_NOMEM;
            }
        }
        if (!st) {
            size_t per = (size_t)d->c * d->h * d->w;
            st = dfs_image_resize_u8(px, sc, sh, sw, d->pixels + (size_t)i * per, d->c, d->h);
        }
        free(px);
        px = NULL;
        free(path);
        if (!st) d->n = i + 1;
        if (!st && o->progress) o->progress(o->progress_user, i + 1, n);
    }
    if (!st) {
        cs->captions = captions.v;
        cs->names = files.v;
        for (int i = n; i < files.n; i++)
            free(files.v[i]), free(captions.v[i]);
        memset(&captions, 0, sizeof captions);
        memset(&files, 0, sizeof files);
        if (labels) {
            int maxl = 0;
            for (int i = 0; i < n; i++)
                if (labels[i] > maxl) maxl = labels[i];
            d->labels = labels;
            d->num_classes = maxl + 1;
            labels = NULL;
        }
    } else {
        dfs_dataset_free(d);
        memset(cs, 0, sizeof *cs);
    }
    strvec_free(&files);
    strvec_free(&captions);
    free(labels);
    return st;
}

/* ---- by name ------------------------------------------------------------------------------ */

int dfs_captions_is_builder(const char *name) {
    return name && (!strcmp(name, "fashion-captions") || !strcmp(name, "fashion-captions-test") ||
                    !strcmp(name, "emoji"));
}

dfs_status dfs_captions_load(dfs_caption_set *cs, const char *spec, const dfs_caption_options *o) {
    dfs_caption_options def;
    if (!o) dfs_caption_options_default(&def), o = &def;
    if (!cs || !spec) {
        dfs_set_error("captions_load: NULL argument");
        return DFS_ERR_ARG;
    }
    if (!strcmp(spec, "fashion-captions") || !strcmp(spec, "fashion-captions-test")) {
        dfs_caption_options oo = *o;
        if (!strcmp(spec, "fashion-captions-test")) oo.test_split = 1;
        return dfs_captions_fashion(cs, &oo);
    }
    if (!strcmp(spec, "emoji")) return dfs_captions_emoji(cs, o);
    struct stat sb;
    if (stat(spec, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        memset(cs, 0, sizeof *cs);
        dfs_set_error("%s: no such folder (captioned data is fashion-captions, "
                      "fashion-captions-test, emoji or a folder)",
                      spec);
        return DFS_ERR_IO;
    }
    return dfs_captions_load_dir(cs, spec, o);
}

/* ---- writing a folder --------------------------------------------------------------------- */

/* Encode (h, w, c) interleaved 8-bit pixels as PNG into *buf (grown to fit; *cap its size),
 * with libpng's simplified API. */
static dfs_status png_to_memory(const uint8_t *hwc, int c, int h, int w, uint8_t **buf, size_t *cap,
                                size_t *len) {
    if (!*buf) { // libpng only measures when given no buffer
        size_t guess = (size_t)c * h * w + 1024;
        if (!(*buf = malloc(guess))) {
            dfs_set_error("PNG encoding: out of memory");
            return DFS_ERR_NOMEM;
        }
        *cap = guess;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        png_image im;
        memset(&im, 0, sizeof im);
        im.version = PNG_IMAGE_VERSION;
        im.width = (png_uint_32)w;
        im.height = (png_uint_32)h;
        im.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
        png_alloc_size_t size = *cap;
        if (png_image_write_to_memory(&im, *buf, &size, 0, hwc, 0, NULL)) {
            *len = size;
            return DFS_OK;
        }
        if (size <= *cap) { // a real failure, not a small buffer
            dfs_set_error("PNG encoding failed: %s", im.message);
            png_image_free(&im);
            return DFS_ERR_NOMEM;
        }
        png_image_free(&im);
        uint8_t *b = realloc(*buf, size);
        if (!b) break;
        *buf = b;
        *cap = size;
    }
    dfs_set_error("PNG encoding: out of memory");
    return DFS_ERR_NOMEM;
}

/* Write path.tmp.PID and rename it over path: readers see the whole file or none. Not
 * fsync'd: dfs_captions_write_dir syncs the file system once, before the metadata. */
static dfs_status write_renamed(const char *path, char *tmp, size_t tcap, const void *data,
                                size_t n) {
    snprintf(tmp, tcap, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    const char *what = "open";
    int ok = f != NULL, err = errno;
    if (ok && fwrite(data, 1, n, f) != n) ok = 0, what = "write", err = errno;
    if (f && fclose(f) != 0 && ok) ok = 0, what = "close", err = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, what = "rename", err = errno;
    if (!ok) {
        if (f) remove(tmp);
        dfs_set_error("%s: %s failed: %s", path, what, strerror(err));
        return DFS_ERR_IO;
    }
    return DFS_OK;
}

/* Images first (each renamed into place), then one syncfs, then metadata.jsonl with
 * dfs_write_atomic (fsync'd): a folder that has metadata.jsonl has all its images, even after
 * a crash, without paying an fsync per image (60000 fsyncs took 7 minutes here). */
dfs_status dfs_captions_write_dir(const dfs_caption_set *cs, const char *dir,
                                  dfs_progress_fn progress, void *user) {
    const dfs_dataset *d = cs ? &cs->images : NULL;
    if (!cs || !dir || !*dir || d->n <= 0 || !d->pixels || !cs->captions ||
        (d->c != 1 && d->c != 3) || d->h <= 0 || d->w <= 0 || d->h > 65536 || d->w > 65536) {
        dfs_set_error("captions_write_dir: nothing to write or bad arguments");
        return DFS_ERR_ARG;
    }
    if (d->n > 999999) {
        dfs_set_error("captions_write_dir: %d images is more than 6-digit names allow", d->n);
        return DFS_ERR_ARG;
    }
    struct stat sb;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        dfs_set_error("%s: cannot create folder: %s", dir, strerror(errno));
        return DFS_ERR_IO;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        dfs_set_error("%s: exists and is not a folder", dir);
        return DFS_ERR_IO;
    }
    size_t plane = (size_t)d->h * d->w, per = plane * d->c;
    size_t plen = strlen(dir) + 64;
    char *path = malloc(plen), *tmp = malloc(plen);
    uint8_t *hwc = malloc(per), *png = NULL;
    size_t pcap = 0, plen_out = 0;
    char *meta = NULL;
    size_t mlen = 0, mcap = 0;
    dfs_status st = DFS_OK;
    if (!path || !tmp || !hwc) goto nomem;
    for (int i = 0; i < d->n && !st; i++) {
        const uint8_t *img = d->pixels + (size_t)i * per; // (c, h, w) -> (h, w, c)
        for (size_t p = 0; p < plane; p++)
            for (int k = 0; k < d->c; k++)
                hwc[p * d->c + k] = img[(size_t)k * plane + p];
        char fname[16];
        snprintf(fname, sizeof fname, "%06d.png", i);
        snprintf(path, plen, "%s/%s", dir, fname);
        st = png_to_memory(hwc, d->c, d->h, d->w, &png, &pcap, &plen_out);
        if (!st) st = write_renamed(path, tmp, plen, png, plen_out);
        if (st) break;
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "file_name", fname) &&
                 cJSON_AddStringToObject(o, "text", cs->captions[i] ? cs->captions[i] : "");
        if (ok && d->labels) ok = cJSON_AddNumberToObject(o, "label", d->labels[i]) != NULL;
        if (ok && cs->names && cs->names[i])
            ok = cJSON_AddStringToObject(o, "name", cs->names[i]) != NULL;
        char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!line) goto nomem;
        size_t l = strlen(line);
        if (mlen + l + 2 > mcap) {
            size_t nc = mcap ? mcap : 1 << 16;
            while (nc < mlen + l + 2)
                nc *= 2;
            char *m2 = realloc(meta, nc);
            if (!m2) {
                free(line);
                goto nomem;
            }
            meta = m2;
            mcap = nc;
        }
        memcpy(meta + mlen, line, l);
        mlen += l;
        meta[mlen++] = '\n';
        free(line);
        if (progress) progress(user, i + 1, d->n);
    }
    if (!st) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY);
        if (fd < 0 || syncfs(fd) != 0) {
            dfs_set_error("%s: syncing the images to disk failed: %s", dir, strerror(errno));
            st = DFS_ERR_IO;
        }
        if (fd >= 0) close(fd);
    }
    if (!st) {
        snprintf(path, plen, "%s/%s", dir, METADATA);
        st = dfs_write_atomic(path, meta, mlen);
    }
    goto done;
nomem:
    dfs_set_error("%s: out of memory", dir);
    st = DFS_ERR_NOMEM;
done:
    free(path);
    free(tmp);
    free(hwc);
    free(png);
    free(meta);
    return st;
}
