/* io/idx.c - IDX files (the MNIST format), gzip-compressed or raw, and Fashion-MNIST.
 *
 * IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian header
 *   magic = 0x0000 | type | ndim   (type 0x08 = unsigned byte)
 *   ndim big-endian uint32 sizes
 * followed by the data in C order. Images: magic 0x00000803, sizes n, rows, cols.
 * Labels: magic 0x00000801, size n. zlib's gzread reads gzip files and passes raw files
 * through unchanged, so both work. */
#include "diffuse/io.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAGIC_U8_1D 0x00000801u
#define IDX_MAGIC_U8_3D 0x00000803u
#define IDX_MAX_SIDE 65536            // rows, cols
#define IDX_MAX_BYTES ((size_t)1 << 34) // 16 GiB of pixels is surely a corrupt header

void dfs_dataset_free(dfs_dataset *d) {
    if (!d) return;
    free(d->pixels);
    free(d->labels);
    if (d->class_names) {
        for (int i = 0; i < d->num_classes; i++) free(d->class_names[i]);
        free(d->class_names);
    }
    memset(d, 0, sizeof *d);
}

/* zlib's message without the "<fd:N>: " that gzdopen puts in front of it (the caller names
 * the file). */
static const char *gz_reason(const char *msg) {
    if (msg && !strncmp(msg, "<fd:", 4)) {
        const char *p = strstr(msg, ": ");
        if (p) return p + 2;
    }
    return msg ? msg : "unknown zlib error";
}

/* Read up to len bytes; returns the count read, or -1 on a zlib error (message set). */
static long long gz_read_all(gzFile f, const char *path, void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        size_t chunk = len - got;
        if (chunk > (1u << 30)) chunk = 1u << 30;
        int r = gzread(f, (char *)buf + got, (unsigned)chunk);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            dfs_set_error("%s: corrupt gzip data: %s", path,
                          zerr == Z_ERRNO ? strerror(errno) : gz_reason(msg));
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

/* Open path for gzread; *fsize gets the file's length on disk. */
static dfs_status gz_open(gzFile *f, const char *path, uint64_t *fsize) {
    int fd = dfs_open_read_fd(path); // refuses a FIFO that gzopen would wait on
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0) {
            dfs_set_error("%s: %s", path, strerror(errno));
            close(fd);
        }
        *f = NULL;
        return DFS_ERR_IO;
    }
    *fsize = (uint64_t)sb.st_size;
    *f = gzdopen(fd, "rb");
    if (!*f) {
        close(fd);
        dfs_set_error("%s: cannot open: out of memory", path);
        return DFS_ERR_IO;
    }
    gzbuffer(*f, 1 << 18);
    return DFS_OK;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Read a header of 4 + 4 * ndim bytes; check the magic. */
static dfs_status read_header(gzFile f, const char *path, uint32_t magic, int ndim,
                              uint32_t *dims) {
    uint8_t hdr[16];
    size_t len = 4 + 4 * (size_t)ndim;
    long long got = gz_read_all(f, path, hdr, len);
    if (got < 0) return DFS_ERR_FORMAT;
    if ((size_t)got < len) {
        dfs_set_error("%s: truncated: expected a %zu-byte IDX header, got %lld bytes", path,
                      len, got);
        return DFS_ERR_FORMAT;
    }
    uint32_t m = be32(hdr);
    if (m != magic) {
        dfs_set_error("%s: bad IDX magic 0x%08x, expected 0x%08x", path, m, magic);
        return DFS_ERR_FORMAT;
    }
    for (int i = 0; i < ndim; i++) dims[i] = be32(hdr + 4 + 4 * i);
    return DFS_OK;
}

/* Read exactly `len` bytes of data into *out (malloc'ed; the caller frees it, also on error)
 * and make sure nothing follows them. The header's sizes are not trusted with memory: a raw
 * file's length is checked against them before anything is allocated, and a gzip stream's
 * buffer grows with the data that actually arrives (a 32-byte .gz can declare 4 GiB). */
static dfs_status read_body(gzFile f, const char *path, const char *what, uint8_t **out,
                            size_t len, size_t hdr, uint64_t fsize) {
    *out = NULL;
    if (gzdirect(f) && fsize < hdr + len) {
        dfs_set_error("%s: truncated: expected %zu bytes of %s, got %llu", path, len, what,
                      (unsigned long long)(fsize - hdr));
        return DFS_ERR_FORMAT;
    }
    if (gzdirect(f) && fsize > hdr + len) {
        dfs_set_error("%s: unexpected data after %zu bytes of %s", path, len, what);
        return DFS_ERR_FORMAT;
    }
    size_t cap = len < ((size_t)1 << 20) ? len : (size_t)1 << 20, got = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    for (;;) {
        if (!buf) {
            dfs_set_error("%s: out of memory for %zu bytes of %s", path, cap, what);
            return DFS_ERR_NOMEM;
        }
        *out = buf;
        long long r = gz_read_all(f, path, buf + got, cap - got);
        if (r < 0) return DFS_ERR_FORMAT;
        got += (size_t)r;
        if (got < cap || cap == len) break; // the stream ended, or all the data is in
        cap = len - cap < cap ? len : 2 * cap;
        buf = realloc(buf, cap);
    }
    if (got != len) {
        dfs_set_error("%s: truncated: expected %zu bytes of %s, got %zu", path, len, what, got);
        return DFS_ERR_FORMAT;
    }
    uint8_t extra[64];
    long long more = gz_read_all(f, path, extra, sizeof extra);
    if (more < 0) return DFS_ERR_FORMAT;
    if (more > 0) {
        dfs_set_error("%s: unexpected data after %zu bytes of %s", path, len, what);
        return DFS_ERR_FORMAT;
    }
    // gzread treats a stream cut short as non-fatal (Z_BUF_ERROR), e.g. a missing trailer
    int zerr;
    const char *msg = gzerror(f, &zerr);
    if (zerr != Z_OK) {
        dfs_set_error("%s: corrupt or truncated gzip data: %s", path, gz_reason(msg));
        return DFS_ERR_FORMAT;
    }
    return DFS_OK;
}

static dfs_status load_images(dfs_dataset *d, const char *path) {
    gzFile f;
    uint64_t fsize;
    dfs_status st = gz_open(&f, path, &fsize);
    if (st) return st;
    uint32_t dims[3];
    st = read_header(f, path, IDX_MAGIC_U8_3D, 3, dims);
    if (st) goto done;
    if (dims[0] == 0 || dims[1] == 0 || dims[2] == 0 || dims[0] > INT_MAX ||
        dims[1] > IDX_MAX_SIDE || dims[2] > IDX_MAX_SIDE) {
        dfs_set_error("%s: bad IDX image dimensions %u x %u x %u", path, dims[0], dims[1],
                      dims[2]);
        st = DFS_ERR_FORMAT;
        goto done;
    }
    size_t plane = (size_t)dims[1] * dims[2]; // <= 2^32, no overflow in size_t (64-bit)
    if (plane > IDX_MAX_BYTES / dims[0]) {
        dfs_set_error("%s: IDX image dimensions %u x %u x %u are absurdly large", path,
                      dims[0], dims[1], dims[2]);
        st = DFS_ERR_FORMAT;
        goto done;
    }
    d->n = (int)dims[0];
    d->c = 1;
    d->h = (int)dims[1];
    d->w = (int)dims[2];
    st = read_body(f, path, "pixels", &d->pixels, plane * dims[0], 16, fsize);
done:
    gzclose(f);
    return st;
}

static dfs_status load_labels(dfs_dataset *d, const char *path) {
    gzFile f;
    uint64_t fsize;
    dfs_status st = gz_open(&f, path, &fsize);
    if (st) return st;
    uint32_t n;
    uint8_t *raw = NULL;
    st = read_header(f, path, IDX_MAGIC_U8_1D, 1, &n);
    if (st) goto done;
    if (n != (uint32_t)d->n) {
        dfs_set_error("%s: %u labels for %d images", path, n, d->n);
        st = DFS_ERR_FORMAT;
        goto done;
    }
    st = read_body(f, path, "labels", &raw, n, 8, fsize);
    if (st) goto done;
    d->labels = malloc(n * sizeof(int));
    if (!d->labels) {
        dfs_set_error("%s: out of memory for %u labels", path, n);
        st = DFS_ERR_NOMEM;
        goto done;
    }
    int maxl = 0;
    for (uint32_t i = 0; i < n; i++) {
        d->labels[i] = raw[i];
        if (raw[i] > maxl) maxl = raw[i];
    }
    d->num_classes = maxl + 1;
done:
    free(raw);
    gzclose(f);
    return st;
}

dfs_status dfs_load_idx(dfs_dataset *d, const char *images_path, const char *labels_path) {
    if (!d || !images_path) {
        dfs_set_error("load_idx: NULL dataset or image path");
        return DFS_ERR_ARG;
    }
    memset(d, 0, sizeof *d);
    dfs_status st = load_images(d, images_path);
    if (!st && labels_path) st = load_labels(d, labels_path);
    if (st) dfs_dataset_free(d);
    return st;
}

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

/* Debian's dataset-fashion-mnist installs the four gzipped IDX files (Xiao et al. 2017) in
 * /usr/share/datasets/fashion-mnist; DFS_FASHION_MNIST_DIR overrides the folder. */
dfs_status dfs_load_fashion_mnist(dfs_dataset *d, int train) {
    if (!d) {
        dfs_set_error("load_fashion_mnist: NULL dataset");
        return DFS_ERR_ARG;
    }
    const char *dir = getenv("DFS_FASHION_MNIST_DIR");
    if (!dir || !*dir) dir = "/usr/share/datasets/fashion-mnist";
    const char *split = train ? "train" : "t10k";
    size_t len = strlen(dir) + 64;
    char *img = malloc(len), *lab = malloc(len);
    if (!img || !lab) {
        free(img);
        free(lab);
        memset(d, 0, sizeof *d);
        dfs_set_error("load_fashion_mnist: out of memory");
        return DFS_ERR_NOMEM;
    }
    snprintf(img, len, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lab, len, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    dfs_status st = dfs_load_idx(d, img, lab);
    if (!st && d->num_classes > 10) {
        dfs_set_error("%s: label %d out of range for Fashion-MNIST's 10 classes", lab,
                      d->num_classes - 1);
        dfs_dataset_free(d);
        st = DFS_ERR_FORMAT;
    }
    if (!st) {
        d->num_classes = 10;
        d->class_names = calloc(10, sizeof(char *));
        for (int i = 0; d->class_names && i < 10; i++) {
            d->class_names[i] = strdup(fashion_names[i]);
            if (!d->class_names[i]) {
                dfs_dataset_free(d); // frees the names made so far (calloc'ed array)
                break;
            }
        }
        if (!d->class_names) {
            dfs_dataset_free(d);
            dfs_set_error("load_fashion_mnist: out of memory");
            st = DFS_ERR_NOMEM;
        }
    }
    free(img);
    free(lab);
    return st;
}

dfs_status dfs_dataset_images_f32(const dfs_dataset *d, int first, int count, float *out) {
    if (!d || !out || first < 0 || count < 0 || first > d->n || count > d->n - first) {
        dfs_set_error("dataset_images_f32: images %d..%d are outside the %d images", first,
                      first + count - 1, d ? d->n : 0);
        return DFS_ERR_ARG;
    }
    size_t dim = (size_t)d->c * d->h * d->w;
    const uint8_t *p = d->pixels + (size_t)first * dim;
    for (size_t k = 0; k < (size_t)count * dim; k++)
        out[k] = p[k] / 127.5f - 1.0f; // as train.c
    return DFS_OK;
}
