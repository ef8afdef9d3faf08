/* fuzz_captions.c - captioned image folders through dfs_captions_load_dir: metadata.jsonl
 * (Hugging Face imagefolder lines) or NAME.png with NAME.txt beside it, sub-folders, other
 * image types, and the PNGs themselves.
 *
 * Input: a small archive that the harness unpacks into an empty folder, so that the fuzzer
 * decides the layout. Before the first entry, an optional line of options
 * ("size=N channels=N limit=N"; absent: 0, the natural size and channels, no limit); then
 * entries, each a line "==> NAME <==" followed by the file's bytes up to the newline before the
 * next such line (or the end). NAME is a relative path ([A-Za-z0-9._ -] components, no . or
 * .., at most 4 deep); its folders are made as needed; a NAME ending in / makes a folder. An
 * entry whose name is bad or cannot be made is skipped. PNG entries get their chunk CRCs
 * fixed (fuzz_fix_png_crcs). fuzz/corpus/captions holds examples. */
#include "diffuse.h"
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ENTRIES 16
#define MAX_NAME 96
#define MARK "==> "
#define MARK_END " <==\n"

/* A relative path of plain components. */
static int good_name(const char *n, size_t len) {
    if (len == 0 || len > MAX_NAME || n[0] == '/') return 0;
    int depth = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && n[j] != '/') {
            char ch = n[j];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                  ch == '_' || ch == '-' || ch == ' '))
                return 0;
            j++;
        }
        size_t l = j - i;
        if (l == 0 && j < len) return 0; // "//"
        if ((l == 1 && n[i] == '.') || (l == 2 && n[i] == '.' && n[i + 1] == '.')) return 0;
        if (++depth > 4) return 0;
        i = j + 1;
    }
    return 1;
}

/* Make the folders of root/name (and root/name itself when it ends in /); 0 if one cannot be
 * made (a file is in the way). */
static int make_parents(char *full, size_t root_len) {
    for (char *p = full + root_len + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        int ok = mkdir(full, 0700) == 0 || errno == EEXIST;
        struct stat sb;
        ok = ok && stat(full, &sb) == 0 && S_ISDIR(sb.st_mode);
        *p = '/';
        if (!ok) return 0;
    }
    return 1;
}

static void put_file(const char *path, const uint8_t *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return; // a folder of that name: skipped
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) fuzz_fail("out of memory");
    memcpy(copy, data, size);
    size_t n = strlen(path);
    if (n > 4 && !strcasecmp(path + n - 4, ".png")) fuzz_fix_png_crcs(copy, size);
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, copy + done, size - done);
        if (w <= 0) fuzz_fail("cannot write %s: %s", path, strerror(errno));
        done += (size_t)w;
    }
    free(copy);
    close(fd);
}

static int option(const char *opts, size_t len, const char *key, int lo, int hi) {
    char buf[128];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, opts, len);
    buf[len] = 0;
    const char *p = strstr(buf, key);
    int v = 0;
    if (!p || sscanf(p + strlen(key), "%d", &v) != 1 || v < lo || v > hi) return 0;
    return v;
}

static void check_set(const dfs_caption_set *cs) {
    const dfs_dataset *d = &cs->images;
    if (d->n < 1 || (d->c != 1 && d->c != 3) || d->h < 1 || d->h != d->w || !d->pixels || !cs->captions || !cs->names)
        fuzz_fail("captions_load_dir: OK with %d x %d x %d x %d", d->n, d->c, d->h, d->w);
    fuzz_touch(d->pixels, (size_t)d->n * d->c * d->h * d->w);
    for (int i = 0; i < d->n; i++) {
        if (!cs->captions[i] || !cs->names[i]) fuzz_fail("captions_load_dir: item %d without caption or name", i);
        if (dfs_utf8_invalid(cs->captions[i]) >= 0) fuzz_fail("captions_load_dir: caption %d is not UTF-8", i);
        if (d->labels && (d->labels[i] < 0 || d->labels[i] >= d->num_classes))
            fuzz_fail("captions_load_dir: label %d of %d classes", d->labels[i], d->num_classes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char root[600];
    if (!root[0]) fuzz_path(root, sizeof root, "set");
    fuzz_clear();
    if (mkdir(root, 0700) != 0) fuzz_fail("cannot make %s: %s", root, strerror(errno));
    const size_t root_len = strlen(root), ml = strlen(MARK), el = strlen(MARK_END);
    // entries start at the beginning or after a newline
    const uint8_t *end = data + size, *first = NULL;
    if (size >= ml && !memcmp(data, MARK, ml)) first = data;
    else if (size > ml) first = memmem(data, size, "\n" MARK, ml + 1), first = first ? first + 1 : NULL;
    const uint8_t *pre_end = first ? first : end;
    dfs_caption_options o;
    dfs_caption_options_default(&o);
    o.size = option((const char *)data, (size_t)(pre_end - data), "size=", 0, 64);
    o.channels = option((const char *)data, (size_t)(pre_end - data), "channels=", 0, 3);
    if (o.channels == 2) o.channels = 0;
    o.limit = option((const char *)data, (size_t)(pre_end - data), "limit=", 0, 16);
    int entries = 0;
    for (const uint8_t *p = first; p && entries < MAX_ENTRIES; entries++) {
        const uint8_t *name = p + ml;
        const uint8_t *ne = memmem(name, (size_t)(end - name), MARK_END, el);
        if (!ne) break;
        const uint8_t *body = ne + el;
        const uint8_t *next = memmem(body, (size_t)(end - body), "\n" MARK, ml + 1);
        const uint8_t *body_end = next ? next : end;
        p = next ? next + 1 : NULL;
        size_t nl = (size_t)(ne - name);
        if (!good_name((const char *)name, nl)) continue;
        char full[800];
        snprintf(full, sizeof full, "%s/%.*s", root, (int)nl, (const char *)name);
        if (!make_parents(full, root_len)) continue;
        if (full[strlen(full) - 1] != '/') put_file(full, body, (size_t)(body_end - body));
    }
    dfs_caption_set cs;
    dfs_status s = dfs_captions_load_dir(&cs, root, &o);
    FUZZ_REPORT("dfs_captions_load_dir", s);
    if (s == DFS_OK) {
        check_set(&cs);
        dfs_caption_set_free(&cs);
    } else if (cs.captions || cs.names || cs.images.pixels) {
        fuzz_fail("captions_load_dir failed (%s) but left data", dfs_status_str(s));
    }
    return 0;
}
