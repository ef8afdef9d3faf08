/* io/npy.c - NumPy .npy files, format version 1.0
 * (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
 *
 *   "\x93NUMPY" major minor   6 + 2 bytes
 *   HEADER_LEN                little-endian uint16 (uint32 in version 2.0)
 *   HEADER                    ASCII Python dict literal
 *                             {'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }
 *                             padded with spaces and ended by '\n' so that the data starts
 *                             at a multiple of 64 bytes
 *   data                      C order
 */
#include "diffuse/io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_WRITE_DIMS 32 // NumPy's own NPY_MAXDIMS

static dfs_status npy_write(const char *path, const char *descr, size_t elsize,
                            const void *data, int ndim, const size_t *shape) {
    if (!path || ndim < 0 || ndim > NPY_MAX_WRITE_DIMS || (ndim > 0 && !shape)) {
        dfs_set_error("npy_write: bad arguments (ndim %d)", ndim);
        return DFS_ERR_ARG;
    }
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && numel > SIZE_MAX / elsize / shape[i]) {
            dfs_set_error("npy_write: %s: shape too large", path);
            return DFS_ERR_NOMEM;
        }
        numel *= shape[i];
    }
    if (numel && !data) {
        dfs_set_error("npy_write: %s: NULL data", path);
        return DFS_ERR_ARG;
    }
    // dict text: at most ~64 + 22 chars per dim
    char dict[64 + NPY_MAX_WRITE_DIMS * 24];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descr);
    for (int i = 0; i < ndim; i++)
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%s%zu", i ? ", " : "", shape[i]);
    len += snprintf(dict + len, sizeof dict - (size_t)len, "%s), }", ndim == 1 ? "," : "");
    size_t pre = 10 + (size_t)len + 1;          // magic, version, HEADER_LEN, dict, '\n'
    size_t total_hdr = (pre + 63) / 64 * 64;    // pad to 64-byte alignment
    size_t hlen = total_hdr - 10;               // <= 65535 since the dict is short
    size_t nbytes = numel * elsize;
    if (nbytes > SIZE_MAX - total_hdr) {
        dfs_set_error("npy_write: %s: too large", path);
        return DFS_ERR_NOMEM;
    }
    uint8_t *buf = malloc(total_hdr + nbytes);
    if (!buf) {
        dfs_set_error("npy_write: %s: out of memory", path);
        return DFS_ERR_NOMEM;
    }
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hlen & 0xff);
    buf[9] = (uint8_t)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)len);
    memset(buf + 10 + len, ' ', total_hdr - 10 - (size_t)len - 1);
    buf[total_hdr - 1] = '\n';
    if (nbytes) memcpy(buf + total_hdr, data, nbytes); // host is little-endian (x86/arm64)
    dfs_status st = dfs_write_atomic(path, buf, total_hdr + nbytes);
    free(buf);
    return st;
}

dfs_status dfs_npy_write_u8(const char *path, const uint8_t *data, int ndim, const size_t *shape) {
    return npy_write(path, "|u1", 1, data, ndim, shape);
}

dfs_status dfs_npy_write_i32(const char *path, const int32_t *data, int ndim,
                             const size_t *shape) {
    return npy_write(path, "<i4", 4, data, ndim, shape);
}

dfs_status dfs_npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape) {
    return npy_write(path, "<f4", 4, data, ndim, shape);
}

dfs_status dfs_npy_write_f64(const char *path, const double *data, int ndim, const size_t *shape) {
    return npy_write(path, "<f8", 8, data, ndim, shape);
}

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A single-quoted Python string without escapes, copied into out (cap bytes). */
static int parse_str(cursor *c, char *out, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = 0;
    return 1;
}

static int parse_size(cursor *c, size_t *v) {
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
    size_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        size_t dgt = (size_t)(*c->p - '0');
        if (x > (SIZE_MAX - dgt) / 10) return 0;
        x = x * 10 + dgt;
        c->p++;
    }
    if (c->p < c->end && *c->p == 'L') c->p++; // Python 2 longs
    *v = x;
    return 1;
}

/* Parse the header dict; shape gets up to DFS_MAXDIM entries. Returns NULL or a reason. */
static const char *want_error(const char *want) {
    if (!strcmp(want, "u1")) return "dtype is not uint8 ('|u1')";
    if (!strcmp(want, "i4")) return "dtype is not little-endian int32 ('<i4')";
    if (!strcmp(want, "f4")) return "dtype is not little-endian float32 ('<f4')";
    return "dtype is not little-endian float64 ('<f8')";
}

static const char *parse_header(cursor *c, const char *want, int *ndim, size_t *shape) {
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!eat(c, '{')) return "header is not a dict";
    for (;;) {
        if (eat(c, '}')) break;
        char key[32];
        if (!parse_str(c, key, sizeof key)) return "bad dict key";
        if (!eat(c, ':')) return "missing ':' in header";
        if (!strcmp(key, "descr")) {
            char descr[32];
            if (have_descr++) return "duplicate 'descr'";
            if (!parse_str(c, descr, sizeof descr)) return "bad 'descr' value";
            /* want is "u1", "i4", "f4" or "f8": little-endian ('<'), or '|' and '>' for a byte */
            const char *d = descr;
            if (*d == '<' || (want[1] == '1' && (*d == '|' || *d == '>'))) d++;
            if (strcmp(d, want)) return want_error(want);
        } else if (!strcmp(key, "fortran_order")) {
            if (have_order++) return "duplicate 'fortran_order'";
            skip_ws(c);
            if ((size_t)(c->end - c->p) >= 5 && !memcmp(c->p, "False", 5)) {
                c->p += 5;
            } else if ((size_t)(c->end - c->p) >= 4 && !memcmp(c->p, "True", 4)) {
                return "fortran_order True is not supported";
            } else {
                return "bad 'fortran_order' value";
            }
        } else if (!strcmp(key, "shape")) {
            if (have_shape++) return "duplicate 'shape'";
            if (!eat(c, '(')) return "bad 'shape' value";
            int n = 0;
            for (;;) {
                if (eat(c, ')')) break;
                size_t v;
                if (!parse_size(c, &v)) return "bad number in 'shape'";
                if (n >= DFS_MAXDIM) return "more than 4 dimensions";
                shape[n++] = v;
                if (eat(c, ',')) continue;
                if (eat(c, ')')) break;
                return "bad 'shape' tuple";
            }
            *ndim = n;
        } else {
            return "unknown key in header";
        }
        if (eat(c, ',')) continue;
        if (eat(c, '}')) break;
        return "bad header dict";
    }
    if (!have_descr || !have_order || !have_shape) return "header lacks descr/fortran_order/shape";
    skip_ws(c);
    if (c->p != c->end - 1 || *c->p != '\n') return "header does not end with a newline";
    return NULL;
}

/* Read a uint8 (elsize 1) or little-endian int32 (elsize 4) .npy file (versions 1.0 and 2.0).
 * *data is malloc'ed (the caller frees it); shape must have room for DFS_MAXDIM entries. */
static dfs_status npy_read(const char *path, const char *want, size_t elsize, void **data, int *ndim,
                           size_t *shape) {
    if (!path || !data || !ndim || !shape) {
        dfs_set_error("npy_read: NULL argument");
        return DFS_ERR_ARG;
    }
    *data = NULL;
    *ndim = 0;
    FILE *f;
    if (dfs_open_read(path, &f)) return DFS_ERR_IO;
    dfs_status st = DFS_ERR_FORMAT;
    char *hdr = NULL;
    uint8_t *buf = NULL;
    uint8_t pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        dfs_set_error("%s: not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hlen, hstart;
    if (pre[6] == 1 && pre[7] == 0) {
        hlen = pre[8] | ((size_t)pre[9] << 8);
        hstart = 10;
    } else if (pre[6] == 2 && pre[7] == 0) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            dfs_set_error("%s: truncated .npy header", path);
            goto done;
        }
        hlen = pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) | ((size_t)pre[11] << 24);
        hstart = 12;
    } else {
        dfs_set_error("%s: unsupported .npy version %d.%d", path, pre[6], pre[7]);
        goto done;
    }
    if (hlen == 0 || hlen > (1u << 20)) {
        dfs_set_error("%s: bad .npy header length %zu", path, hlen);
        goto done;
    }
    hdr = malloc(hlen);
    if (!hdr) {
        dfs_set_error("%s: out of memory", path);
        st = DFS_ERR_NOMEM;
        goto done;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        dfs_set_error("%s: truncated .npy header (%zu bytes expected)", path, hlen);
        goto done;
    }
    cursor c = {hdr, hdr + hlen};
    size_t shp[DFS_MAXDIM];
    int nd = 0;
    const char *why = parse_header(&c, want, &nd, shp);
    if (why) {
        dfs_set_error("%s: bad .npy header: %s", path, why);
        goto done;
    }
    size_t numel = 1;
    for (int i = 0; i < nd; i++) {
        if (shp[i] && numel > SIZE_MAX / shp[i]) {
            dfs_set_error("%s: .npy shape overflows", path);
            goto done;
        }
        numel *= shp[i];
    }
    if (numel > SIZE_MAX / elsize) {
        dfs_set_error("%s: .npy shape overflows", path);
        goto done;
    }
    numel *= elsize; /* bytes from here on */
    // Check the file size before allocating, so a lying header cannot make us malloc 1 EB.
    long pos = ftell(f);
    if (pos < 0 || fseek(f, 0, SEEK_END) != 0) {
        dfs_set_error("%s: cannot seek: %s", path, strerror(errno));
        st = DFS_ERR_IO;
        goto done;
    }
    long fsize = ftell(f);
    if (fsize < 0 || fseek(f, pos, SEEK_SET) != 0) {
        dfs_set_error("%s: cannot seek: %s", path, strerror(errno));
        st = DFS_ERR_IO;
        goto done;
    }
    size_t avail = (size_t)(fsize - pos);
    if (avail != numel) {
        dfs_set_error("%s: %s: expected %zu bytes of data after the %zu-byte header, found %zu",
                      path, avail < numel ? "truncated" : "trailing data", numel, hstart + hlen,
                      avail);
        goto done;
    }
    buf = malloc(numel ? numel : 1);
    if (!buf) {
        dfs_set_error("%s: out of memory for %zu bytes", path, numel);
        st = DFS_ERR_NOMEM;
        goto done;
    }
    if (fread(buf, 1, numel, f) != numel) {
        dfs_set_error("%s: read failed: %s", path, ferror(f) ? strerror(errno) : "short read");
        st = DFS_ERR_IO;
        goto done;
    }
    // '<i4' data is used as is: the host is little-endian (x86/arm64), as in npy_write
    *data = buf;
    buf = NULL;
    *ndim = nd;
    for (int i = 0; i < nd; i++) shape[i] = shp[i];
    st = DFS_OK;
done:
    free(buf);
    free(hdr);
    fclose(f);
    return st;
}

dfs_status dfs_npy_read_u8(const char *path, uint8_t **data, int *ndim, size_t *shape) {
    void *p = NULL;
    dfs_status st = npy_read(path, "u1", 1, &p, ndim, shape);
    *data = p;
    return st;
}

dfs_status dfs_npy_read_i32(const char *path, int32_t **data, int *ndim, size_t *shape) {
    void *p = NULL;
    dfs_status st = npy_read(path, "i4", 4, &p, ndim, shape);
    *data = p;
    return st;
}

dfs_status dfs_npy_read_f32(const char *path, float **data, int *ndim, size_t *shape) {
    void *p = NULL;
    dfs_status st = npy_read(path, "f4", 4, &p, ndim, shape);
    *data = p;
    return st;
}

dfs_status dfs_npy_read_f64(const char *path, double **data, int *ndim, size_t *shape) {
    void *p = NULL;
    dfs_status st = npy_read(path, "f8", 8, &p, ndim, shape);
    *data = p;
    return st;
}
