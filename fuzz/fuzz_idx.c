/* fuzz_idx.c - IDX image and label files (MNIST format), raw and gzip, through dfs_load_idx.
 *
 * Input: the images file, then optionally the separator FUZZ_IDX_SEP and the labels file; each
 * part is written as it is (so a part may be raw IDX or a gzip of it: zlib reads both). When
 * neither part is gzip already, the harness also gzips both parts itself and loads them again:
 * raw and gzip must give the same status and the same data set. */
#include "diffuse.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FUZZ_IDX_SEP "\n--labels--\n"
#define GZ_MAX_IN (1u << 20) // gzip parts up to 1 MB (the fuzzer's inputs are smaller)

static int is_gzip(const uint8_t *p, size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }

/* gzip (deflate with a gzip wrapper) of p[0..n) into a malloc'ed buffer. */
static uint8_t *gzip_bytes(const uint8_t *p, size_t n, size_t *out_n) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) fuzz_fail("deflateInit2");
    size_t cap = deflateBound(&z, (uLong)n) + 32;
    uint8_t *out = malloc(cap);
    if (!out) fuzz_fail("out of memory");
    z.next_in = (Bytef *)p, z.avail_in = (uInt)n, z.next_out = out, z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) fuzz_fail("deflate");
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static void check_dataset(const dfs_dataset *d, int with_labels) {
    if (d->n < 1 || d->c != 1 || d->h < 1 || d->w < 1 || !d->pixels) fuzz_fail("load_idx: OK with %d x %d x %d x %d", d->n, d->c, d->h, d->w);
    fuzz_touch(d->pixels, (size_t)d->n * d->c * d->h * d->w);
    if (!with_labels) {
        if (d->labels) fuzz_fail("load_idx: labels without a labels file");
        return;
    }
    if (!d->labels || d->num_classes < 1 || d->num_classes > 256) fuzz_fail("load_idx: %d classes", d->num_classes);
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= d->num_classes) fuzz_fail("load_idx: label %d of %d classes", d->labels[i], d->num_classes);
}

static int same_dataset(const dfs_dataset *a, const dfs_dataset *b) {
    if (a->n != b->n || a->c != b->c || a->h != b->h || a->w != b->w || a->num_classes != b->num_classes ||
        !a->labels != !b->labels)
        return 0;
    if (memcmp(a->pixels, b->pixels, (size_t)a->n * a->c * a->h * a->w)) return 0;
    return !a->labels || !memcmp(a->labels, b->labels, (size_t)a->n * sizeof(int));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char img[600], lab[600];
    if (!img[0]) fuzz_path(img, sizeof img, "images.idx"), fuzz_path(lab, sizeof lab, "labels.idx");
    const size_t sl = sizeof FUZZ_IDX_SEP - 1;
    const uint8_t *sep = size >= sl ? memmem(data, size, FUZZ_IDX_SEP, sl) : NULL;
    size_t ni = sep ? (size_t)(sep - data) : size, nl = sep ? size - ni - sl : 0;
    const uint8_t *lp = sep ? sep + sl : NULL;
    fuzz_write(img, data, ni);
    if (sep) fuzz_write(lab, lp, nl);
    dfs_dataset raw;
    dfs_status s = dfs_load_idx(&raw, img, sep ? lab : NULL);
    FUZZ_REPORT("dfs_load_idx", s);
    if (s == DFS_OK) check_dataset(&raw, sep != NULL);
    else if (raw.pixels || raw.labels || raw.n) fuzz_fail("load_idx failed (%s) but left data", dfs_status_str(s));
    if (!is_gzip(data, ni) && !(sep && is_gzip(lp, nl)) && ni <= GZ_MAX_IN && nl <= GZ_MAX_IN) {
        size_t gi, gl = 0;
        uint8_t *zi = gzip_bytes(data, ni, &gi), *zl = sep ? gzip_bytes(lp, nl, &gl) : NULL;
        fuzz_write(img, zi, gi);
        if (sep) fuzz_write(lab, zl, gl);
        free(zi);
        free(zl);
        dfs_dataset gz;
        dfs_status s2 = dfs_load_idx(&gz, img, sep ? lab : NULL);
        FUZZ_REPORT("dfs_load_idx (gzipped by the harness)", s2);
        if (s2 != s) fuzz_fail("load_idx: %s raw but %s gzipped", dfs_status_str(s), dfs_status_str(s2));
        if (s == DFS_OK && !same_dataset(&raw, &gz)) fuzz_fail("load_idx: raw and gzipped files load differently");
        dfs_dataset_free(&gz);
    }
    dfs_dataset_free(&raw);
    return 0;
}
