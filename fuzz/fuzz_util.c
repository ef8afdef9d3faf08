/* fuzz_util.c - scratch files and small helpers for the harnesses (fuzz/fuzz.h). */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char scratch[512];
static pid_t owner; // the process that made scratch (a forked child must not remove it)

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    if (ftw->level == 0) return 0; // keep the folder itself
    if (remove(path) != 0 && errno != ENOENT) fuzz_fail("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

void fuzz_clear(void) {
    if (!scratch[0]) return;
    nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_scratch(void) {
    if (!scratch[0] || getpid() != owner) return;
    fuzz_clear();
    rmdir(scratch);
}

const char *fuzz_dir(void) {
    if (scratch[0]) return scratch;
    const char *base = getenv("TMPDIR");
    struct stat sb;
    if (!base || !*base) base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0
                                    ? "/dev/shm"
                                    : "/tmp";
    char tmpl[sizeof scratch];
    snprintf(tmpl, sizeof tmpl, "%s/dfs-fuzz-XXXXXX", base);
    if (!mkdtemp(tmpl)) fuzz_fail("cannot make a scratch folder in %s: %s", base, strerror(errno));
    memcpy(scratch, tmpl, sizeof scratch);
    owner = getpid();
    atexit(remove_scratch);
    return scratch;
}

const char *fuzz_path(char *out, size_t cap, const char *name) {
    if ((size_t)snprintf(out, cap, "%s/%s", fuzz_dir(), name) >= cap) fuzz_fail("path too long: %s", name);
    return out;
}

void fuzz_write(const char *path, const void *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fuzz_fail("cannot write %s: %s", path, strerror(errno));
    const char *p = data;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fuzz_fail("cannot write %s: %s", path, strerror(errno));
        p += w;
        size -= (size_t)w;
    }
    if (close(fd) != 0) fuzz_fail("cannot write %s: %s", path, strerror(errno));
}

unsigned fuzz_touch(const void *p, size_t n) {
    const volatile unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s = s * 31u + b[i];
    return s;
}

void fuzz_fix_png_crcs(uint8_t *d, size_t n) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 || memcmp(d, sig, 8) != 0) return;
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = ((uint32_t)d[pos] << 24) | ((uint32_t)d[pos + 1] << 16) | ((uint32_t)d[pos + 2] << 8) | d[pos + 3];
        if (len > n - pos - 12) break; // a chunk that runs past the end: leave it to the parser
        uLong crc = crc32(0L, d + pos + 4, (uInt)(len + 4));
        uint8_t *c = d + pos + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16), c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
        pos += 12 + (size_t)len;
    }
}

void fuzz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void fuzz_report(const char *call, const char *status, int failed, const char *error) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") && atoi(getenv("FUZZ_VERBOSE")) > 0;
    if (!verbose) return;
    if (failed) fprintf(stderr, "%s: %s: %s\n", call, status, error);
    else fprintf(stderr, "%s: %s\n", call, status);
}
