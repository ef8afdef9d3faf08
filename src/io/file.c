/* io/file.c - opening files to read, atomic file writes, IEEE 754 half-precision conversions. */
#include "diffuse/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- opening to read --------------------------------------------------------------------- */

/* O_NONBLOCK makes the open of a FIFO return at once, so that fstat can refuse it; it is then
 * cleared, for the blocking reads that every reader expects. */
int dfs_open_read_fd(const char *path) {
    if (!path || !*path) {
        dfs_set_error("open: empty path");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        dfs_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    int fl;
    int bad = fstat(fd, &sb) != 0 ? errno : 0;
    if (bad || !S_ISREG(sb.st_mode)) {
        dfs_set_error("%s: %s", path, bad ? strerror(bad) : "not a regular file");
        close(fd);
        return -1;
    }
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        dfs_set_error("%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

dfs_status dfs_open_read(const char *path, FILE **f) {
    *f = NULL;
    int fd = dfs_open_read_fd(path);
    if (fd < 0) return DFS_ERR_IO;
    if (!(*f = fdopen(fd, "rb"))) {
        dfs_set_error("%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return DFS_ERR_IO;
    }
    return DFS_OK;
}

/* ---- atomic write ------------------------------------------------------------------------ */

/* fsync the folder holding path, so that the rename itself survives a crash. Returns 0 or
 * an errno value. File systems that cannot fsync a folder (EINVAL) count as success. */
static int fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = strdup(".");
    } else if (slash == path) {
        dir = strdup("/");
    } else {
        dir = strndup(path, (size_t)(slash - path));
    }
    if (!dir) return ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    free(dir);
    if (fd < 0) return errno;
    int err = 0;
    if (fsync(fd) != 0 && errno != EINVAL) err = errno;
    close(fd);
    return err;
}

/* Write size bytes to path.tmp.<pid>, fflush + fsync it, rename it over path, then fsync the
 * folder. On any failure before the rename the temporary file is removed and an existing
 * file at path is left as it was. */
dfs_status dfs_write_atomic(const char *path, const void *data, size_t size) {
    if (!path || !*path) {
        dfs_set_error("write_atomic: empty path");
        return DFS_ERR_ARG;
    }
    if (!data && size) {
        dfs_set_error("write_atomic: %s: NULL data with %zu bytes", path, size);
        return DFS_ERR_ARG;
    }
    struct stat sb; // the rename would replace a device, FIFO or folder (as root, even /dev/null)
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        dfs_set_error("write_atomic: %s exists and is not a regular file", path);
        return DFS_ERR_IO;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        dfs_set_error("write_atomic: %s: out of memory", path);
        return DFS_ERR_NOMEM;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());

    // each step names itself in `what`; the first one to fail ends the sequence
    const char *what = "open";
    int ok = 0, err = 0;
    FILE *f = fopen(tmp, "wb");
    if (f) {
        ok = 1;
        if (ok && size && fwrite(data, 1, size, f) != size) ok = 0, what = "write";
        if (ok && fflush(f) != 0) ok = 0, what = "flush";
        if (ok && fsync(fileno(f)) != 0) ok = 0, what = "fsync";
        if (!ok) err = errno;
        if (fclose(f) != 0 && ok) ok = 0, what = "close", err = errno;
        if (ok && rename(tmp, path) != 0) ok = 0, what = "rename", err = errno;
        if (!ok) remove(tmp); // leaves any existing file at path as it was
    } else {
        err = errno;
    }
    free(tmp);
    if (!ok) {
        dfs_set_error("write_atomic: %s: %s failed: %s", path, what, strerror(err));
        return DFS_ERR_IO;
    }
    err = fsync_parent_dir(path);
    if (err) {
        dfs_set_error("write_atomic: %s: written, but fsync of its folder failed: %s", path,
                      strerror(err));
        return DFS_ERR_IO;
    }
    return DFS_OK;
}

/* ---- float16 ----------------------------------------------------------------------------- */
/* IEEE 754-2008 binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits. */

uint16_t dfs_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) { // inf or nan; keep a nan a (quiet) nan with the top payload bits
        if (ax == 0x7f800000u) return sign | 0x7c00u;
        return sign | 0x7e00u | (uint16_t)((ax >> 13) & 0x3ffu);
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00u; // >= 65520 rounds (to even) to inf
    if (ax >= 0x38800000u) {                      // normal half: |f| >= 2^-14
        uint32_t h = (ax >> 13) - (112u << 10);   // rebias exponent 127 -> 15
        uint32_t rem = ax & 0x1fffu;              // the 13 dropped bits
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; // carry may bump exponent
        return sign | (uint16_t)h;
    }
    if (ax <= 0x33000000u) return sign; // <= 2^-25: rounds to (signed) zero, ties to even
    // subnormal half: value / 2^-24 rounded to nearest even
    uint32_t e = ax >> 23;
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; // 14..24
    uint32_t h = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u))) h++; // may become 0x400, the least normal
    return sign | (uint16_t)h;
}

float dfs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if (e == 0) {
        if (mant == 0) {
            x = sign;
        } else { // subnormal: mant * 2^-24, normalise into a float
            int shift = 0;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                shift++;
            }
            mant &= 0x3ffu;
            x = sign | ((uint32_t)(113 - shift) << 23) | (mant << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | ((e + 112u) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

dfs_status dfs_read_file(const char *path, int64_t max, const char *what, char **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    FILE *f;
    if (dfs_open_read(path, &f)) return DFS_ERR_IO;
    dfs_status st = DFS_ERR_IO;
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        dfs_set_error("%s: cannot seek: %s", path, strerror(errno));
        goto done;
    }
    if ((int64_t)sz > max) {
        dfs_set_error("%s: %ld bytes, more than the %lld %s may have", path, sz, (long long)max, what);
        st = DFS_ERR_FORMAT;
        goto done;
    }
    *buf = malloc((size_t)sz + 1);
    if (!*buf) {
        dfs_set_error("%s: out of memory (%ld bytes)", path, sz);
        st = DFS_ERR_NOMEM;
        goto done;
    }
    *size = fread(*buf, 1, (size_t)sz, f);
    if (*size != (size_t)sz) {
        dfs_set_error("%s: short read (%zu of %ld bytes)", path, *size, sz);
        free(*buf);
        *buf = NULL;
        *size = 0;
        goto done;
    }
    (*buf)[*size] = 0;
    st = DFS_OK;
done:
    fclose(f);
    return st;
}
