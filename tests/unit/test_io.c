/* test_io.c - files: atomic writes, float16, IDX / Fashion-MNIST, PNG, .npy, safetensors.
 * Round trips, known bytes and values, and many corrupt files that must fail cleanly. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "diffuse.h"
#include "check.h"

#include <dirent.h>
#include <ftw.h>
#include <png.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[64];

/* tmpdir/name in a rotating static buffer (8 live at once). */
static const char *P(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

/* Number of entries in dir whose name contains ".tmp." */
static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int err_has(const char *s) { return strstr(dfs_last_error(), s) != NULL; }

/* ---- atomic writes ----------------------------------------------------------------------- */

static void test_atomic(void) {
    const char *p = P("atomic.bin");
    CHECK(dfs_write_atomic(p, "hello", 5) == DFS_OK, "first write: %s", dfs_last_error());
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    CHECK(b && n == 5 && !memcmp(b, "hello", 5), "content after first write (%zu bytes)", n);
    free(b);
    CHECK(dfs_write_atomic(p, "replaced!", 9) == DFS_OK, "second write: %s", dfs_last_error());
    b = read_bytes(p, &n);
    CHECK(b && n == 9 && !memcmp(b, "replaced!", 9), "content replaced (%zu bytes)", n);
    free(b);
    CHECK(dfs_write_atomic(p, NULL, 0) == DFS_OK, "empty write: %s", dfs_last_error());
    b = read_bytes(p, &n);
    CHECK(b && n == 0, "empty file (%zu bytes)", n);
    free(b);
    CHECK(count_tmp_files(tmpdir) == 0, "no temp files left: %d", count_tmp_files(tmpdir));

    // a folder that does not exist
    const char *bad = P("no/such/dir/x.bin");
    CHECK(dfs_write_atomic(bad, "x", 1) == DFS_ERR_IO, "missing folder -> DFS_ERR_IO");
    CHECK(err_has(bad) && err_has("No such file"), "message names path and errno: %s",
          dfs_last_error());
    CHECK(count_tmp_files(tmpdir) == 0, "no stray temp file");

    // a folder, FIFO or device at the path is refused before anything is written (the rename
    // would replace it: as root, even /dev/null)
    const char *d = P("adir");
    mkdir(d, 0755);
    CHECK(dfs_write_atomic(d, "data", 4) == DFS_ERR_IO, "a folder at the path -> DFS_ERR_IO");
    CHECK(err_has("not a regular file"), "message says not a regular file: %s", dfs_last_error());
    const char *fifo = P("afifo");
    struct stat fb;
    CHECK(mkfifo(fifo, 0644) == 0 && dfs_write_atomic(fifo, "data", 4) == DFS_ERR_IO &&
              stat(fifo, &fb) == 0 && S_ISFIFO(fb.st_mode),
          "a FIFO at the path is refused and kept: %s", dfs_last_error());
    remove(fifo);
    struct stat sb;
    CHECK(stat(d, &sb) == 0 && S_ISDIR(sb.st_mode), "folder untouched");
    CHECK(count_tmp_files(tmpdir) == 0, "temp file removed after failed rename: %d",
          count_tmp_files(tmpdir));
    rmdir(d);
    CHECK(dfs_write_atomic(NULL, "x", 1) == DFS_ERR_ARG, "NULL path -> DFS_ERR_ARG");
}

/* ---- float16 ----------------------------------------------------------------------------- */

static float f_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16(void) {
    static const struct {
        float f;
        uint16_t h;
    } known[] = {
        {1.0f, 0x3c00},       {-2.0f, 0xc000},      {65504.0f, 0x7bff},   {65519.0f, 0x7bff},
        {65520.0f, 0x7c00},   {1e6f, 0x7c00},       {-1e6f, 0xfc00},      {0.0f, 0x0000},
        {-0.0f, 0x8000},      {0.5f, 0x3800},       {0.1f, 0x2e66},       {1.0f / 3.0f, 0x3555},
        {6.103515625e-05f, 0x0400},                 /* 2^-14, least normal */
        {5.9604644775390625e-08f, 0x0001},          /* 2^-24, least subnormal */
        {2.98023223876953125e-08f, 0x0000},         /* 2^-25 ties to even: 0 */
        {4.470348358154297e-08f, 0x0001},           /* 1.5 * 2^-25 rounds up */
        {1e-8f, 0x0000},      {-1e-8f, 0x8000},
        {1.00048828125f, 0x3c00},                   /* 1 + 2^-11 ties to even (down) */
        {1.00146484375f, 0x3c02},                   /* 1 + 3 * 2^-11 ties to even (up) */
        {6.1005353927612305e-05f, 0x0400},          /* 1023.5 * 2^-24 ties up to the least normal */
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        uint16_t h = dfs_f32_to_f16(known[i].f);
        CHECK(h == known[i].h, "f32_to_f16(%.9g) = 0x%04x, want 0x%04x", known[i].f, h,
              known[i].h);
    }
    CHECK(dfs_f32_to_f16(f_bits(0x7f800000u)) == 0x7c00, "+inf");
    CHECK(dfs_f32_to_f16(f_bits(0xff800000u)) == 0xfc00, "-inf");
    uint16_t hn = dfs_f32_to_f16(f_bits(0x7fc00000u));
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff), "nan -> 0x%04x", hn);
    hn = dfs_f32_to_f16(f_bits(0x7f800001u)); // signalling nan with only low payload bits
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff), "snan stays nan -> 0x%04x", hn);

    CHECK(dfs_f16_to_f32(0x3c00) == 1.0f, "0x3c00 -> 1");
    CHECK(dfs_f16_to_f32(0x7bff) == 65504.0f, "0x7bff -> 65504");
    CHECK(dfs_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "0x0001 -> 2^-24");
    CHECK(dfs_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24), "0x03ff -> 1023 * 2^-24");
    CHECK(dfs_f16_to_f32(0x8000) == 0.0f && signbit(dfs_f16_to_f32(0x8000)), "-0");
    CHECK(isinf(dfs_f16_to_f32(0xfc00)) && dfs_f16_to_f32(0xfc00) < 0, "-inf");
    CHECK(isnan(dfs_f16_to_f32(0x7e00)), "nan");
    CHECK(dfs_f16_to_f32(0xc518) == -5.09375f, "0xc518 -> -5.09375");

    // every half survives f16 -> f32 -> f16; nans stay nans
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dfs_f16_to_f32((uint16_t)h);
        uint16_t back = dfs_f32_to_f16(f);
        if (isnan(f) ? !((back & 0x7c00) == 0x7c00 && (back & 0x3ff)) : back != h) bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);

    // round to nearest even at every midpoint between neighbouring finite halves
    int badmid = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float a = dfs_f16_to_f32((uint16_t)h), b = dfs_f16_to_f32((uint16_t)(h + 1));
        float mid = 0.5f * (a + b); // exact: halves have 11 significant bits
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (dfs_f32_to_f16(mid) != even) badmid++;
        if (dfs_f32_to_f16(nextafterf(mid, 0.0f)) != h) badmid++;
        if (dfs_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1) badmid++;
        if (dfs_f32_to_f16(-mid) != (even | 0x8000)) badmid++;
    }
    CHECK(badmid == 0, "%d midpoint roundings wrong", badmid);

    // relative error <= 2^-11 in the normal range: round to nearest is within half an ulp, and
    // an ulp of a half in [2^e, 2^(e+1)) is 2^(e-10); max_err keeps a NaN (fmax would drop it)
    dfs_rng r;
    dfs_rng_seed(&r, 7);
    double worst = 0;
    for (int i = 0; i < 100000; i++) {
        float f = ldexpf(1.0f + dfs_rng_uniform(&r), (int)dfs_rng_below(&r, 30) - 14);
        if (f > 65504.0f) continue;
        double e = fabs((double)dfs_f16_to_f32(dfs_f32_to_f16(f)) - f) / f;
        worst = max_err(worst, e);
    }
    CHECK(worst <= ldexp(1.0, -11), "max relative round-trip error %.3g > 2^-11", worst);
}

/* ---- IDX --------------------------------------------------------------------------------- */

static size_t idx_images(uint8_t *buf, uint32_t magic, uint32_t n, uint32_t h, uint32_t w,
                         const uint8_t *px) {
    uint32_t v[4] = {magic, n, h, w};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) buf[4 * i + k] = (uint8_t)(v[i] >> (24 - 8 * k));
    size_t np = (size_t)n * h * w;
    if (px) memcpy(buf + 16, px, np);
    return 16 + (px ? np : 0);
}

static size_t idx_labels(uint8_t *buf, uint32_t n, const uint8_t *lab) {
    uint32_t v[2] = {0x801, n};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++) buf[4 * i + k] = (uint8_t)(v[i] >> (24 - 8 * k));
    memcpy(buf + 8, lab, n);
    return 8 + n;
}

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile f = gzopen(path, "wb");
    gzwrite(f, data, (unsigned)n);
    gzclose(f);
}

static void test_idx(void) {
    uint8_t px[3 * 2 * 2], lab[3] = {2, 0, 1}, img[64], lb[16];
    for (int i = 0; i < 12; i++) px[i] = (uint8_t)(i * 20 + 1);
    size_t ni = idx_images(img, 0x803, 3, 2, 2, px), nl = idx_labels(lb, 3, lab);
    write_bytes(P("img.idx"), img, ni);
    write_bytes(P("lab.idx"), lb, nl);
    write_gz(P("img.idx.gz"), img, ni);
    write_gz(P("lab.idx.gz"), lb, nl);
    const char *pairs[2][2] = {{"img.idx", "lab.idx"}, {"img.idx.gz", "lab.idx.gz"}};
    for (int k = 0; k < 2; k++) {
        dfs_dataset d;
        dfs_status st = dfs_load_idx(&d, P(pairs[k][0]), P(pairs[k][1]));
        CHECK(st == DFS_OK, "load %s: %s", pairs[k][0], dfs_last_error());
        if (st) continue;
        CHECK(d.n == 3 && d.c == 1 && d.h == 2 && d.w == 2, "dims %d %d %d %d", d.n, d.c, d.h, d.w);
        CHECK(!memcmp(d.pixels, px, 12), "pixels equal (%s)", pairs[k][0]);
        CHECK(d.labels[0] == 2 && d.labels[1] == 0 && d.labels[2] == 1, "labels");
        CHECK(d.num_classes == 3, "num_classes %d", d.num_classes);
        dfs_dataset_free(&d);
        CHECK(d.pixels == NULL && d.labels == NULL && d.n == 0, "free clears");
    }
    dfs_dataset d;
    CHECK(dfs_load_idx(&d, P("img.idx"), NULL) == DFS_OK && d.labels == NULL &&
              d.num_classes == 0,
          "images only");
    dfs_dataset_free(&d);

    // truncated image files at many lengths: raw and gzip
    int badtr = 0;
    for (size_t len = 0; len < ni; len++) {
        write_bytes(P("tr.idx"), img, len);
        write_gz(P("tr.idx.gz"), img, len);
        if (dfs_load_idx(&d, P("tr.idx"), NULL) != DFS_ERR_FORMAT) badtr++;
        if (d.pixels || d.n) badtr++;
        if (dfs_load_idx(&d, P("tr.idx.gz"), NULL) != DFS_ERR_FORMAT) badtr++;
    }
    CHECK(badtr == 0, "%d truncated IDX files not rejected", badtr);
    write_bytes(P("tr.idx"), img, ni - 5);
    dfs_load_idx(&d, P("tr.idx"), NULL);
    CHECK(err_has("truncated: expected 12 bytes of pixels, got 7"), "message: %s",
          dfs_last_error());
    // a gzip stream cut in the middle
    size_t gzn;
    uint8_t *gz = read_bytes(P("img.idx.gz"), &gzn);
    write_bytes(P("cut.gz"), gz, gzn - 6); // data complete, CRC/size trailer cut
    CHECK(dfs_load_idx(&d, P("cut.gz"), NULL) == DFS_ERR_FORMAT && err_has("cut.gz"),
          "cut gzip trailer: %s", dfs_last_error());
    write_bytes(P("cut.gz"), gz, gzn / 2); // cut in the deflate stream
    CHECK(dfs_load_idx(&d, P("cut.gz"), NULL) == DFS_ERR_FORMAT && err_has("cut.gz"),
          "cut gzip data: %s", dfs_last_error());
    gz[gzn - 3] ^= 1; // corrupt the ISIZE field
    write_bytes(P("cut.gz"), gz, gzn);
    CHECK(dfs_load_idx(&d, P("cut.gz"), NULL) == DFS_ERR_FORMAT && err_has("cut.gz"),
          "gzip size mismatch: %s", dfs_last_error());
    free(gz);

    uint8_t tmp[64];
    size_t n = idx_images(tmp, 0x801, 3, 2, 2, px);
    write_bytes(P("bad.idx"), tmp, n);
    CHECK(dfs_load_idx(&d, P("bad.idx"), NULL) == DFS_ERR_FORMAT && err_has("magic"),
          "wrong magic: %s", dfs_last_error());
    n = idx_images(tmp, 0x803, 0, 2, 2, NULL);
    write_bytes(P("bad.idx"), tmp, n);
    CHECK(dfs_load_idx(&d, P("bad.idx"), NULL) == DFS_ERR_FORMAT, "zero images");
    n = idx_images(tmp, 0x803, 0x7fffffff, 60000, 60000, NULL);
    write_bytes(P("bad.idx"), tmp, n);
    CHECK(dfs_load_idx(&d, P("bad.idx"), NULL) == DFS_ERR_FORMAT, "absurd dims: %s",
          dfs_last_error());
    n = idx_images(tmp, 0x803, 0x7fffffff, 28, 28, NULL);
    write_bytes(P("bad.idx"), tmp, n);
    CHECK(dfs_load_idx(&d, P("bad.idx"), NULL) == DFS_ERR_FORMAT, "huge count: %s",
          dfs_last_error());
    n = idx_images(tmp, 0x803, 3, 2, 2, px);
    tmp[n++] = 0;
    write_bytes(P("bad.idx"), tmp, n);
    CHECK(dfs_load_idx(&d, P("bad.idx"), NULL) == DFS_ERR_FORMAT, "trailing byte");
    n = idx_labels(tmp, 2, lab);
    write_bytes(P("bad.lab"), tmp, n);
    CHECK(dfs_load_idx(&d, P("img.idx"), P("bad.lab")) == DFS_ERR_FORMAT &&
              err_has("2 labels for 3 images"),
          "label count mismatch: %s", dfs_last_error());
    CHECK(d.pixels == NULL && d.n == 0, "failed load leaves an empty dataset");
    write_bytes(P("bad.lab"), tmp, 9);
    CHECK(dfs_load_idx(&d, P("img.idx"), P("bad.lab")) == DFS_ERR_FORMAT, "labels truncated");
    CHECK(dfs_load_idx(&d, P("img.idx"), P("lab.idx")) == DFS_OK, "reload");
    dfs_dataset_free(&d);
    CHECK(dfs_load_idx(&d, P("missing.idx"), NULL) == DFS_ERR_IO && err_has("missing.idx"),
          "missing file -> IO: %s", dfs_last_error());
}

static void test_fashion_mnist(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char path[256];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    /* make test installs dataset-fashion-mnist, so its absence is a failure, not a skip */
    CHECK(access(path, R_OK) == 0, "%s not installed (Debian dataset-fashion-mnist)", path);
    if (access(path, R_OK) != 0) return;
    unsetenv("DFS_FASHION_MNIST_DIR");
    // the raw bytes, read here independently: header, first label, first image
    uint8_t hdr[9], ihdr[16 + 784];
    gzFile f = gzopen(path, "rb");
    CHECK(f && gzread(f, hdr, 9) == 9, "read raw labels");
    gzclose(f);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    f = gzopen(path, "rb");
    CHECK(f && gzread(f, ihdr, sizeof ihdr) == (int)sizeof ihdr, "read raw images");
    gzclose(f);
    CHECK(hdr[8] == 9, "raw first train label %d, want 9 (Ankle boot)", hdr[8]);

    dfs_dataset d;
    dfs_status st = dfs_load_fashion_mnist(&d, 1);
    CHECK(st == DFS_OK, "load train: %s", dfs_last_error());
    if (!st) {
        CHECK(d.n == 60000 && d.c == 1 && d.h == 28 && d.w == 28, "train dims %d %d %d %d", d.n,
              d.c, d.h, d.w);
        CHECK(d.labels[0] == hdr[8] && d.labels[0] == 9, "first label %d", d.labels[0]);
        CHECK(!memcmp(d.pixels, ihdr + 16, 784), "first image equals the raw bytes");
        int count[10] = {0}, out = 0;
        for (int i = 0; i < d.n; i++) {
            if (d.labels[i] < 0 || d.labels[i] > 9) out++;
            else count[d.labels[i]]++;
        }
        CHECK(out == 0, "%d labels outside 0..9", out);
        for (int k = 0; k < 10; k++) CHECK(count[k] == 6000, "class %d has %d", k, count[k]);
        CHECK(d.num_classes == 10 && d.class_names && !strcmp(d.class_names[9], "Ankle boot") &&
                  !strcmp(d.class_names[0], "T-shirt/top"),
              "class names");
        dfs_dataset_free(&d);
    }
    st = dfs_load_fashion_mnist(&d, 0);
    CHECK(st == DFS_OK && d.n == 10000 && d.h == 28 && d.w == 28 && d.num_classes == 10,
          "test split: %s n %d", dfs_last_error(), d.n);
    dfs_dataset_free(&d);
    setenv("DFS_FASHION_MNIST_DIR", tmpdir, 1);
    CHECK(dfs_load_fashion_mnist(&d, 1) == DFS_ERR_IO && err_has(tmpdir),
          "override folder is used: %s", dfs_last_error());
    unsetenv("DFS_FASHION_MNIST_DIR");
}

/* ---- PNG --------------------------------------------------------------------------------- */

/* Write a PNG with any libpng color type / bit depth (rows packed as libpng expects). */
static void raw_png(const char *path, int color, int depth, int w, int h, const uint8_t *data,
                    size_t rowbytes, const png_color *pal, int npal, const uint8_t *trns,
                    int ntrns) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "raw_png failed\n");
        exit(2);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, data + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void test_png(void) {
    // gray round trip
    uint8_t g[7 * 5];
    for (int i = 0; i < 35; i++) g[i] = (uint8_t)(i * 7);
    CHECK(dfs_png_write(P("g.png"), g, 1, 7, 5) == DFS_OK, "write gray: %s", dfs_last_error());
    uint8_t *px;
    int c, h, w;
    CHECK(dfs_png_read(P("g.png"), &px, &c, &h, &w) == DFS_OK, "read gray: %s",
          dfs_last_error());
    CHECK(c == 1 && h == 7 && w == 5 && !memcmp(px, g, 35), "gray round trip");
    free(px);
    // RGB: written HWC, read back CHW
    uint8_t rgb[3 * 4 * 3];
    for (int i = 0; i < 36; i++) rgb[i] = (uint8_t)(i * 7 + 3);
    CHECK(dfs_png_write(P("rgb.png"), rgb, 3, 3, 4) == DFS_OK, "write rgb");
    CHECK(dfs_png_read(P("rgb.png"), &px, &c, &h, &w) == DFS_OK, "read rgb: %s",
          dfs_last_error());
    int bad = c != 3 || h != 3 || w != 4;
    for (int y = 0; !bad && y < 3; y++)
        for (int x = 0; x < 4; x++)
            for (int k = 0; k < 3; k++)
                if (px[(k * 3 + y) * 4 + x] != rgb[(y * 4 + x) * 3 + k]) bad = 1;
    CHECK(!bad, "rgb round trip HWC -> CHW");
    free(px);

    // RGBA composited on white
    uint8_t rgba[4 * 3] = {0, 0, 0, 0, 200, 100, 50, 255, 0, 0, 0, 128};
    raw_png(P("rgba.png"), PNG_COLOR_TYPE_RGBA, 8, 3, 1, rgba, 12, NULL, 0, NULL, 0);
    CHECK(dfs_png_read(P("rgba.png"), &px, &c, &h, &w) == DFS_OK && c == 3 && w == 3,
          "read rgba: %s", dfs_last_error());
    CHECK(px[0] == 255 && px[3] == 255 && px[6] == 255, "transparent -> white");
    CHECK(px[1] == 200 && px[4] == 100 && px[7] == 50, "opaque kept");
    CHECK(px[2] == 127 && px[5] == 127 && px[8] == 127, "half alpha black -> %d", px[2]);
    free(px);
    // 16-bit gray + alpha
    uint8_t ga16[2 * 4] = {0xab, 0xcd, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00};
    raw_png(P("ga16.png"), PNG_COLOR_TYPE_GRAY_ALPHA, 16, 2, 1, ga16, 8, NULL, 0, NULL, 0);
    CHECK(dfs_png_read(P("ga16.png"), &px, &c, &h, &w) == DFS_OK && c == 1 && w == 2,
          "read 16-bit gray+alpha: %s", dfs_last_error());
    CHECK(px[0] == 0xab && px[1] == 255, "16-bit -> 8-bit: %d %d", px[0], px[1]);
    free(px);
    // palette with a transparent entry, 2-bit indices
    png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    uint8_t trns[1] = {0}; // entry 0 transparent
    uint8_t idx[1] = {(1 << 6) | (2 << 4) | (0 << 2)}; // 3 pixels: 1, 2, 0
    raw_png(P("pal.png"), PNG_COLOR_TYPE_PALETTE, 2, 3, 1, idx, 1, pal, 3, trns, 1);
    CHECK(dfs_png_read(P("pal.png"), &px, &c, &h, &w) == DFS_OK && c == 3 && w == 3,
          "read palette: %s", dfs_last_error());
    CHECK(px[0] == 0 && px[3] == 255 && px[6] == 0, "palette green");
    CHECK(px[1] == 0 && px[4] == 0 && px[7] == 255, "palette blue");
    CHECK(px[2] == 255 && px[5] == 255 && px[8] == 255, "palette transparent -> white");
    free(px);
    // 1-bit gray
    uint8_t bits[1] = {0xa0}; // 1 0 1 0
    raw_png(P("g1.png"), PNG_COLOR_TYPE_GRAY, 1, 4, 1, bits, 1, NULL, 0, NULL, 0);
    CHECK(dfs_png_read(P("g1.png"), &px, &c, &h, &w) == DFS_OK && c == 1 && w == 4 &&
              px[0] == 255 && px[1] == 0 && px[2] == 255 && px[3] == 0,
          "1-bit gray: %s", dfs_last_error());
    free(px);

    // truncated / garbage PNGs
    size_t n;
    uint8_t *file = read_bytes(P("rgb.png"), &n);
    int badtr = 0;
    for (size_t len = 0; len < n; len += 3) {
        write_bytes(P("tr.png"), file, len);
        px = (uint8_t *)1;
        if (dfs_png_read(P("tr.png"), &px, &c, &h, &w) != DFS_ERR_FORMAT) badtr++;
        if (px != NULL) badtr++;
    }
    CHECK(badtr == 0, "%d truncated PNGs not rejected", badtr);
    // flipped bytes after the signature: must not crash; a CRC catches most of them
    int flips_ok = 0;
    for (size_t i = 8; i < n; i++) {
        uint8_t save = file[i];
        file[i] ^= 0x5a;
        write_bytes(P("flip.png"), file, n);
        dfs_status st = dfs_png_read(P("flip.png"), &px, &c, &h, &w);
        if (st == DFS_OK) free(px);
        if (st == DFS_OK || st == DFS_ERR_FORMAT) flips_ok++;
        file[i] = save;
    }
    CHECK(flips_ok == (int)(n - 8), "flipped bytes: %d of %zu handled", flips_ok, n - 8);
    free(file);
    write_bytes(P("junk.png"), "this is not a png file at all", 29);
    CHECK(dfs_png_read(P("junk.png"), &px, &c, &h, &w) == DFS_ERR_FORMAT && err_has("junk.png"),
          "garbage -> FORMAT: %s", dfs_last_error());
    CHECK(dfs_png_read(P("nope.png"), &px, &c, &h, &w) == DFS_ERR_IO, "missing -> IO");
    CHECK(dfs_png_write(P("x.png"), g, 2, 7, 5) == DFS_ERR_ARG, "c = 2 rejected");
    CHECK(dfs_png_write(P("nodir/x.png"), g, 1, 7, 5) == DFS_ERR_IO, "write to missing folder");

    // grid: 3 images 1x2x2 in 2 columns -> 10 x 10 with 2-pixel gray borders
    float imgs[3 * 4] = {-1, 1, 0, 0.5f, 2, -3, NAN, -0.5f, 0.25f, 0.25f, 0.25f, 0.25f};
    CHECK(dfs_png_write_grid(P("grid.png"), imgs, 3, 1, 2, 2, 2) == DFS_OK, "grid: %s",
          dfs_last_error());
    CHECK(dfs_png_read(P("grid.png"), &px, &c, &h, &w) == DFS_OK && c == 1 && h == 10 && w == 10,
          "grid size %dx%d", h, w);
    if (h == 10 && w == 10) {
        CHECK(px[0] == 128 && px[1 * 10 + 5] == 128 && px[9 * 10 + 9] == 128, "border gray");
        CHECK(px[2 * 10 + 2] == 0 && px[2 * 10 + 3] == 255 && px[3 * 10 + 2] == 128 &&
                  px[3 * 10 + 3] == 191,
              "image 0: %d %d %d %d", px[22], px[23], px[32], px[33]);
        CHECK(px[2 * 10 + 6] == 255 && px[2 * 10 + 7] == 0 && px[3 * 10 + 6] == 128 &&
                  px[3 * 10 + 7] == 64,
              "image 1 clamped: %d %d %d %d", px[26], px[27], px[36], px[37]);
        CHECK(px[6 * 10 + 2] == 159 && px[7 * 10 + 3] == 159, "image 2 at row 1: %d",
              px[62]);
        CHECK(px[6 * 10 + 6] == 128 && px[7 * 10 + 7] == 128, "empty cell gray");
        CHECK(px[5 * 10 + 2] == 128 && px[4 * 10 + 3] == 128, "border between rows");
    }
    free(px);
    CHECK(dfs_png_write_grid(P("grid.png"), imgs, 0, 1, 2, 2, 2) == DFS_ERR_ARG, "n = 0");
}

static void test_png_dir(void) {
    mkdir(P("pd"), 0755);
    mkdir(P("pd/classB"), 0755);
    mkdir(P("pd/classA"), 0755);
    // classA/b.png: 8x8 gray, 2x2 blocks of 20 y' + 5 x' -> 4x4 area average is exact
    uint8_t big[64];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) big[y * 8 + x] = (uint8_t)(20 * (y / 2) + 5 * (x / 2));
    dfs_png_write(P("pd/classA/b.png"), big, 1, 8, 8);
    // classA/a.png: 2x2 RGB, grown to 4x4 bilinear; red row gradient
    uint8_t small[2 * 2 * 3] = {0, 0, 0, 100, 100, 100, 0, 0, 0, 100, 100, 100};
    dfs_png_write(P("pd/classA/a.png"), small, 3, 2, 2);
    // classB/c.png: 3x3, bright corner and a centre pixel that every 2x2 output covers by 1/4
    uint8_t c3[9] = {255, 0, 0, 0, 90, 0, 0, 0, 0};
    dfs_png_write(P("pd/classB/c.png"), c3, 1, 3, 3);
    write_bytes(P("pd/classB/.hidden.png"), "junk", 4);
    write_bytes(P("pd/classB/notes.txt"), "hello", 5);

    dfs_dataset d;
    dfs_status st = dfs_load_png_dir(&d, P("pd"), 4, 1);
    CHECK(st == DFS_OK, "load png dir: %s", dfs_last_error());
    if (!st) {
        CHECK(d.n == 3 && d.c == 1 && d.h == 4 && d.w == 4, "dims n %d", d.n);
        CHECK(d.num_classes == 2 && !strcmp(d.class_names[0], "classA") &&
                  !strcmp(d.class_names[1], "classB"),
              "class names sorted");
        CHECK(d.labels[0] == 0 && d.labels[1] == 0 && d.labels[2] == 1, "labels %d %d %d",
              d.labels[0], d.labels[1], d.labels[2]);
        // image 0 = a.png (sorted): bilinear 2 -> 4 along x: 0, 25, 75, 100 on every row
        const uint8_t *a = d.pixels;
        CHECK(a[0] == 0 && a[1] == 25 && a[2] == 75 && a[3] == 100 && a[12] == 0 && a[15] == 100,
              "bilinear grow: %d %d %d %d", a[0], a[1], a[2], a[3]);
        const uint8_t *b = d.pixels + 16;
        int bad = 0;
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                if (b[y * 4 + x] != 20 * y + 5 * x) bad++;
        CHECK(bad == 0, "area shrink 8 -> 4 exact (%d wrong)", bad);
        const uint8_t *cc = d.pixels + 32;
        // bilinear 3 -> 4: sample points x = (i + 0.5) * 3/4 - 0.5 = 0 (clamped), 0.625, 1.375,
        // 2 (clamped): (0,1) = .375 * 255 = 95.6; (1,1) = .375^2 255 + .625^2 90 = 71.0;
        // (2,2) = .625^2 90 = 35.2
        CHECK(cc[0] == 255 && cc[1] == 96 && cc[4] == 96 && cc[5] == 71 && cc[10] == 35 &&
                  cc[15] == 0,
              "bilinear grow 3 -> 4: %d %d %d %d %d", cc[0], cc[1], cc[4], cc[5], cc[10]);
        dfs_dataset_free(&d);
    }
    st = dfs_load_png_dir(&d, P("pd"), 2, 3);
    CHECK(st == DFS_OK && d.c == 3 && d.n == 3, "load as RGB: %s", dfs_last_error());
    if (!st) {
        // c.png 3 -> 2 by area: output (0,0) covers [0,1.5)^2: all of the corner pixel and a
        // quarter of the centre: (255 + 90 / 4) / 2.25 = 123.3; the others get 90 / 4 / 2.25 =
        // 10; gray replicated in all three channels
        const uint8_t *cc = d.pixels + 2 * 12;
        CHECK(cc[0] == 123 && cc[4] == 123 && cc[8] == 123 && cc[1] == 10 && cc[3] == 10,
              "area 3 -> 2, gray -> rgb: %d %d %d %d", cc[0], cc[4], cc[1], cc[3]);
        dfs_dataset_free(&d);
    }
    // RGB -> gray by BT.601 luma
    mkdir(P("flat"), 0755);
    uint8_t red[3] = {255, 0, 0};
    dfs_png_write(P("flat/r.png"), red, 3, 1, 1);
    st = dfs_load_png_dir(&d, P("flat"), 1, 1);
    CHECK(st == DFS_OK && d.n == 1 && d.labels == NULL && d.num_classes == 0 && d.pixels[0] == 76,
          "flat folder, red -> luma 76: %s", dfs_last_error());
    dfs_dataset_free(&d);

    // errors
    mkdir(P("empty"), 0755);
    CHECK(dfs_load_png_dir(&d, P("empty"), 4, 1) == DFS_ERR_FORMAT && err_has("empty"),
          "empty folder: %s", dfs_last_error());
    mkdir(P("pd/classC"), 0755);
    CHECK(dfs_load_png_dir(&d, P("pd"), 4, 1) == DFS_ERR_FORMAT && err_has("classC"),
          "empty class folder: %s", dfs_last_error());
    rmdir(P("pd/classC"));
    write_bytes(P("pd/classB/d.png"), "\x89PNG\r\n\x1a\nbroken", 14);
    CHECK(dfs_load_png_dir(&d, P("pd"), 4, 1) == DFS_ERR_FORMAT && err_has("d.png") &&
              d.pixels == NULL,
          "corrupt file named: %s", dfs_last_error());
    CHECK(dfs_load_png_dir(&d, P("nosuch"), 4, 1) == DFS_ERR_IO, "missing folder");
    CHECK(dfs_load_png_dir(&d, P("pd"), 4, 2) == DFS_ERR_ARG, "channels 2 rejected");
}

/* ---- npy --------------------------------------------------------------------------------- */

static void npy_file(const char *path, const char *dict, size_t ndata, int extra_pad) {
    uint8_t buf[512];
    size_t len = strlen(dict), tot = (10 + len + 1 + 63) / 64 * 64;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)((tot - 10) & 0xff);
    buf[9] = (uint8_t)((tot - 10) >> 8);
    memcpy(buf + 10, dict, len);
    memset(buf + 10 + len, ' ', tot - 11 - len);
    buf[tot - 1] = extra_pad ? ' ' : '\n';
    memset(buf + tot, 7, ndata);
    write_bytes(path, buf, tot + ndata);
}

static void test_npy(void) {
    uint8_t a[6] = {1, 2, 3, 250, 251, 252};
    size_t shape[4] = {2, 3};
    CHECK(dfs_npy_write_u8(P("a.npy"), a, 2, shape) == DFS_OK, "write npy: %s",
          dfs_last_error());
    size_t n;
    uint8_t *f = read_bytes(P("a.npy"), &n);
    // the bytes numpy.save writes for np.array([[1,2,3],[250,251,252]], np.uint8)
    const char *dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }";
    int hdr_ok = f && n == 128 + 6 && !memcmp(f, "\x93NUMPY\x01\x00\x76\x00", 10) &&
                 !memcmp(f + 10, dict, strlen(dict)) && f[127] == '\n' && f[126] == ' ' &&
                 f[10 + strlen(dict)] == ' ' && !memcmp(f + 128, a, 6);
    CHECK(hdr_ok, "npy bytes as numpy writes them (%zu bytes)", n);
    free(f);
    uint8_t *back;
    int nd;
    size_t shp[4];
    CHECK(dfs_npy_read_u8(P("a.npy"), &back, &nd, shp) == DFS_OK && nd == 2 && shp[0] == 2 &&
              shp[1] == 3 && !memcmp(back, a, 6),
          "npy round trip: %s", dfs_last_error());
    free(back);
    size_t s1[1] = {6};
    dfs_npy_write_u8(P("b.npy"), a, 1, s1);
    f = read_bytes(P("b.npy"), &n);
    CHECK(f && strstr((char *)f + 10, "'shape': (6,), }"), "1-d shape has a trailing comma");
    free(f);
    CHECK(dfs_npy_read_u8(P("b.npy"), &back, &nd, shp) == DFS_OK && nd == 1 && shp[0] == 6,
          "1-d read");
    free(back);
    CHECK(dfs_npy_write_u8(P("s.npy"), a, 0, NULL) == DFS_OK &&
              dfs_npy_read_u8(P("s.npy"), &back, &nd, shp) == DFS_OK && nd == 0 && back[0] == 1,
          "0-d scalar: %s", dfs_last_error());
    free(back);
    int32_t iv[3] = {1, -2, 0x01020304};
    size_t s3[1] = {3};
    CHECK(dfs_npy_write_i32(P("i.npy"), iv, 1, s3) == DFS_OK, "write i32");
    f = read_bytes(P("i.npy"), &n);
    CHECK(f && n == 128 + 12 && memmem(f, n, "'descr': '<i4'", 14) && f[127] == '\n' &&
              f[128] == 1 && f[132] == 0xfe && f[135] == 0xff && f[136] == 4 && f[139] == 1,
          "i32 npy little-endian bytes");
    free(f);
    CHECK(dfs_npy_read_u8(P("i.npy"), &back, &nd, shp) == DFS_ERR_FORMAT && err_has("uint8"),
          "i4 rejected by the u8 reader: %s", dfs_last_error());
    int32_t *iback = NULL;
    CHECK(dfs_npy_read_i32(P("i.npy"), &iback, &nd, shp) == DFS_OK && nd == 1 && shp[0] == 3 && iback &&
              iback[0] == 1 && iback[1] == -2 && iback[2] == 0x01020304,
          "i32 round trip");
    free(iback);
    iback = NULL;
    CHECK(dfs_npy_read_i32(P("a.npy"), &iback, &nd, shp) == DFS_ERR_FORMAT && err_has("int32") && !iback,
          "u1 rejected by the i32 reader: %s", dfs_last_error());
    f = read_bytes(P("i.npy"), &n);
    CHECK(f != NULL, "i32 npy read back");
    if (f) write_bytes(P("it.npy"), f, n - 2);
    free(f);
    CHECK(dfs_npy_read_i32(P("it.npy"), &iback, &nd, shp) == DFS_ERR_FORMAT && err_has("truncated"),
          "truncated i32 npy rejected: %s", dfs_last_error());

    static const struct {
        const char *dict;
        size_t ndata;
        int pad;
        const char *what;
    } bad[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, 0, "float dtype"},
        {"{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3), }", 6, 0, "fortran"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", 5, 0, "truncated"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", 7, 0, "trailing"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (1,1,1,1,1), }", 1, 0, "5 dims"},
        {"{'descr': '|u1', 'shape': (2,), }", 2, 0, "missing key"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (-2,), }", 2, 0, "negative"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (2,), 'x': 1}", 2, 0, "extra key"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", 2, 1, "no newline"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999999,), }", 2, 0,
         "overflow"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 2, 0,
         "product overflow"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (2,) ", 2, 0, "unclosed"},
        {"['descr', '|u1']", 2, 0, "not a dict"},
        {"{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", 2, 0,
         "duplicate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        npy_file(P("bad.npy"), bad[i].dict, bad[i].ndata, bad[i].pad);
        back = (uint8_t *)1;
        dfs_status st = dfs_npy_read_u8(P("bad.npy"), &back, &nd, shp);
        CHECK(st == DFS_ERR_FORMAT && back == NULL, "bad npy (%s) -> %d: %s", bad[i].what, st,
              dfs_last_error());
    }
    npy_file(P("ok.npy"), "{'fortran_order': False, 'shape': (2,), 'descr': '|u1'}", 2, 0);
    CHECK(dfs_npy_read_u8(P("ok.npy"), &back, &nd, shp) == DFS_OK && nd == 1 && back[1] == 7,
          "keys in another order accepted: %s", dfs_last_error());
    free(back);
    write_bytes(P("bad.npy"), "\x93NUMPY\x03\x00\x10\x00", 10);
    CHECK(dfs_npy_read_u8(P("bad.npy"), &back, &nd, shp) == DFS_ERR_FORMAT, "version 3");
    write_bytes(P("bad.npy"), "\x93NUMPY\x01\x00\xff\x00{", 11);
    CHECK(dfs_npy_read_u8(P("bad.npy"), &back, &nd, shp) == DFS_ERR_FORMAT, "short header");
    write_bytes(P("bad.npy"), "PK\x03\x04", 4);
    CHECK(dfs_npy_read_u8(P("bad.npy"), &back, &nd, shp) == DFS_ERR_FORMAT, "not npy");
    CHECK(dfs_npy_write_u8(P("nodir/a.npy"), a, 2, shape) == DFS_ERR_IO, "missing folder");
}

/* ---- safetensors ------------------------------------------------------------------------- */

static void st_file(const char *path, const char *json, const void *data, size_t ndata) {
    size_t jl = strlen(json);
    uint8_t *b = malloc(8 + jl + ndata);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)jl >> (8 * i));
    memcpy(b + 8, json, jl);
    if (ndata) memcpy(b + 8 + jl, data, ndata);
    write_bytes(path, b, 8 + jl + ndata);
    free(b);
}

static void test_safetensors(void) {
    float f32[6] = {1, -2, 3.5f, 1e-3f, 1e30f, -0.0f};
    uint16_t f16[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    int64_t i64[4] = {1, -1, INT64_MAX, INT64_MIN};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    float scalar = 42.0f;
    dfs_st_writer *w = dfs_st_writer_new();
    CHECK(dfs_st_writer_add(w, "u8", DFS_DT_U8, 1, (int64_t[]){5}, u8) == DFS_OK, "add u8");
    CHECK(dfs_st_writer_add(w, "w.f32", DFS_DT_F32, 2, (int64_t[]){2, 3}, f32) == DFS_OK, "f32");
    CHECK(dfs_st_writer_add(w, "h", DFS_DT_F16, 1, (int64_t[]){4}, f16) == DFS_OK, "f16");
    CHECK(dfs_st_writer_add(w, "step", DFS_DT_I64, 2, (int64_t[]){2, 2}, i64) == DFS_OK, "i64");
    CHECK(dfs_st_writer_add(w, "scalar", DFS_DT_F32, 0, NULL, &scalar) == DFS_OK, "scalar");
    CHECK(dfs_st_writer_add(w, "empty", DFS_DT_F32, 2, (int64_t[]){0, 3}, NULL) == DFS_OK,
          "empty");
    CHECK(dfs_st_writer_add(w, "h", DFS_DT_F16, 1, (int64_t[]){4}, f16) == DFS_ERR_ARG, "dup");
    CHECK(dfs_st_writer_add(w, "__metadata__", DFS_DT_U8, 1, (int64_t[]){5}, u8) == DFS_ERR_ARG,
          "reserved name");
    CHECK(dfs_st_writer_add(w, "x", DFS_DT_COUNT, 1, (int64_t[]){5}, u8) == DFS_ERR_ARG, "dtype");
    CHECK(dfs_st_writer_add(w, "x", DFS_DT_U8, 5, (int64_t[]){1, 1, 1, 1, 1}, u8) == DFS_ERR_ARG,
          "5 dims");
    CHECK(dfs_st_writer_add(w, "x", DFS_DT_U8, 1, (int64_t[]){-1}, u8) == DFS_ERR_ARG, "neg");
    CHECK(dfs_st_writer_meta(w, "format", "pt") == DFS_OK, "meta");
    CHECK(dfs_st_writer_meta(w, "config", "{\"a\": \"b\\\"c\"}") == DFS_OK, "meta json");
    CHECK(dfs_st_writer_meta(w, "format", "diffuse") == DFS_OK, "meta replace");
    const char *path = P("m.safetensors");
    CHECK(dfs_st_writer_write(w, path) == DFS_OK, "write: %s", dfs_last_error());
    dfs_st_writer_free(w);

    size_t n;
    uint8_t *raw = read_bytes(path, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
    size_t ndata = 5 + 24 + 8 + 32 + 4;
    CHECK(hl % 8 == 0 && n == 8 + hl + ndata, "layout: header %llu, file %zu",
          (unsigned long long)hl, n);
    CHECK(raw[8] == '{' && (raw[8 + hl - 1] == '}' || raw[8 + hl - 1] == ' '), "header padding");
    CHECK(!memcmp(raw + n - 4, &scalar, 4), "last tensor at the end");

    dfs_safetensors st;
    dfs_status s = dfs_st_load(&st, path);
    CHECK(s == DFS_OK, "load: %s", dfs_last_error());
    if (!s) {
        CHECK(st.count == 6, "count %d", st.count);
        const char *order[6] = {"u8", "w.f32", "h", "step", "scalar", "empty"};
        for (int i = 0; i < st.count && i < 6; i++)
            CHECK(!strcmp(st.t[i].name, order[i]), "order %d: %s", i, st.t[i].name);
        for (int i = 0; i + 1 < st.count; i++)
            CHECK((const uint8_t *)st.t[i].data + st.t[i].nbytes ==
                      (const uint8_t *)st.t[i + 1].data,
                  "contiguous %d", i);
        const dfs_st_tensor *t = dfs_st_find(&st, "w.f32");
        float fb[6];
        CHECK(t && t->dtype == DFS_DT_F32 && t->ndim == 2 && t->shape[0] == 2 &&
                  t->shape[1] == 3 && t->nbytes == 24,
              "f32 header");
        if (t) memcpy(fb, t->data, 24); // unaligned after the 5-byte u8 tensor
        CHECK(t && !memcmp(fb, f32, 24), "f32 data");
        t = dfs_st_find(&st, "h");
        CHECK(t && t->dtype == DFS_DT_F16 && t->nbytes == 8 && !memcmp(t->data, f16, 8), "f16");
        t = dfs_st_find(&st, "step");
        CHECK(t && t->dtype == DFS_DT_I64 && t->shape[1] == 2 && !memcmp(t->data, i64, 32),
              "i64");
        t = dfs_st_find(&st, "u8");
        CHECK(t && t->dtype == DFS_DT_U8 && t->nbytes == 5 && !memcmp(t->data, u8, 5), "u8");
        t = dfs_st_find(&st, "scalar");
        CHECK(t && t->ndim == 0 && t->nbytes == 4 && !memcmp(t->data, &scalar, 4), "scalar");
        t = dfs_st_find(&st, "empty");
        CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->nbytes == 0, "empty tensor");
        CHECK(dfs_st_find(&st, "nope") == NULL, "find missing");
        CHECK(st.nmeta == 2 && dfs_st_meta(&st, "format") &&
                  !strcmp(dfs_st_meta(&st, "format"), "diffuse"),
              "meta format");
        CHECK(dfs_st_meta(&st, "config") &&
                  !strcmp(dfs_st_meta(&st, "config"), "{\"a\": \"b\\\"c\"}"),
              "meta with quotes survives");
        CHECK(dfs_st_meta(&st, "nope") == NULL, "meta missing");
        dfs_st_free(&st);
        CHECK(st.buf == NULL && st.count == 0, "free clears");
    }

    // a file as the reference implementation writes it (safetensors README example layout)
    int64_t ref[4] = {0, 1, 2, 3};
    st_file(P("ref.st"),
            "{\"test\":{\"dtype\":\"I64\",\"shape\":[2,2],\"data_offsets\":[0,32]},"
            "\"__metadata__\":{\"k\":\"v\"}}   ",
            ref, 32);
    s = dfs_st_load(&st, P("ref.st"));
    CHECK(s == DFS_OK && st.count == 1 && st.t[0].shape[0] == 2 &&
              !memcmp(st.t[0].data, ref, 32) && !strcmp(dfs_st_meta(&st, "k"), "v"),
          "reference file: %s", dfs_last_error());
    dfs_st_free(&st);

    // every 7th truncation of the written file
    int badtr = 0;
    for (size_t len = 0; len < n; len += 7) {
        write_bytes(P("tr.st"), raw, len);
        s = dfs_st_load(&st, P("tr.st"));
        if (s != DFS_ERR_FORMAT || st.buf || st.t) badtr++;
    }
    CHECK(badtr == 0, "%d truncated safetensors accepted", badtr);
    write_bytes(P("tr.st"), raw, n - 1);
    CHECK(dfs_st_load(&st, P("tr.st")) == DFS_ERR_FORMAT && err_has("tr.st") &&
              err_has("scalar"),
          "last tensor cut: %s", dfs_last_error());

    // random byte flips in the header: never a crash, OK or FORMAT
    dfs_rng r;
    dfs_rng_seed(&r, 1);
    int fl = 0, nfl = 400;
    for (int i = 0; i < nfl; i++) {
        size_t pos = dfs_rng_below(&r, (uint32_t)(8 + hl));
        uint8_t save = raw[pos];
        raw[pos] = (uint8_t)dfs_rng_below(&r, 256);
        write_bytes(P("flip.st"), raw, n);
        s = dfs_st_load(&st, P("flip.st"));
        if (s == DFS_OK || s == DFS_ERR_FORMAT) fl++;
        dfs_st_free(&st);
        raw[pos] = save;
    }
    CHECK(fl == nfl, "byte flips: %d of %d handled", fl, nfl);

    // header length fields
    uint8_t hdr[16];
    memcpy(hdr, raw, 16);
    hdr[5] = 1; // 2^40
    write_bytes(P("big.st"), hdr, 16);
    CHECK(dfs_st_load(&st, P("big.st")) == DFS_ERR_FORMAT && err_has("100 MB"), "huge: %s",
          dfs_last_error());
    uint64_t hl2 = 100000001;
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)(hl2 >> (8 * i));
    write_bytes(P("big.st"), hdr, 16);
    CHECK(dfs_st_load(&st, P("big.st")) == DFS_ERR_FORMAT, "100 MB + 1");
    hl2 = 1000;
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)(hl2 >> (8 * i));
    write_bytes(P("big.st"), hdr, 16);
    CHECK(dfs_st_load(&st, P("big.st")) == DFS_ERR_FORMAT && err_has("past the end"),
          "past EOF: %s", dfs_last_error());
    memset(hdr, 0, 8);
    write_bytes(P("big.st"), hdr, 8);
    CHECK(dfs_st_load(&st, P("big.st")) == DFS_ERR_FORMAT, "zero header");
    free(raw);

    uint8_t d16[16] = {0};
    static const struct {
        const char *json;
        const char *what;
    } bad[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", "bad JSON"},
        {"[1, 2, 3]", "root array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", "garbage after"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", "offset past end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", "begin past end"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", "F64 dtype"},
        {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", "BF16 dtype"},
        {"{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", "numeric dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "shape mismatch"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", "shape mismatch 2"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "begin > end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "negative dim"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", "fractional dim"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", "5 dims"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,0]}}",
         "numel overflow"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":2,\"data_offsets\":[0,2]}}", "shape not array"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1,2]}}", "3 offsets"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,\"2\"]}}", "string offset"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2]}}", "no offsets"},
        {"{\"a\":[1,2]}", "entry not object"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
         "duplicate"},
        {"{\"__metadata__\":{\"k\":1}}", "non-string metadata"},
        {"{\"__metadata__\":[\"k\"]}", "metadata array"},
        {"{\"__metadata__\":{},\"__metadata__\":{\"a\":\"b\"}}", "metadata twice"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", "huge offset"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[-1,1]}}", "negative offset"},
        {"  {}", "leading space"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st_file(P("bad.st"), bad[i].json, d16, 16);
        s = dfs_st_load(&st, P("bad.st"));
        CHECK(s == DFS_ERR_FORMAT && err_has("bad.st") && st.buf == NULL,
              "bad safetensors (%s) -> %d: %s", bad[i].what, s, dfs_last_error());
    }
    // the byte ranges must tile the data: no overlap, no hole, nothing after (the format's rule)
    static const struct {
        const char *json, *want;
    } tiles[] = {
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[12],\"data_offsets\":[4,16]}}",
         "overlaps at byte 4"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[8,16]}}",
         "leaves a hole at byte 8"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]}}",
         "overlaps at byte 0"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", "8 bytes after"},
    };
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        st_file(P("tile.st"), tiles[i].json, d16, 16);
        s = dfs_st_load(&st, P("tile.st"));
        CHECK(s == DFS_ERR_FORMAT && err_has(tiles[i].want) && st.buf == NULL, "tiling case %zu -> %d: %s", i,
              s, dfs_last_error());
    }
    st_file(P("tile.st"),
            "{\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[8,16]},"
            "\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
            d16, 16);
    s = dfs_st_load(&st, P("tile.st"));
    CHECK(s == DFS_OK && st.count == 2, "ranges in any order that tile the data load: %s", dfs_last_error());
    if (s == DFS_OK) dfs_st_free(&st);
    st_file(P("tile.st"),
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
            "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
            "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[16,16]}}",
            d16, 16);
    s = dfs_st_load(&st, P("tile.st"));
    CHECK(s == DFS_OK && st.count == 3, "empty tensors at the start and end of another's bytes: %s", dfs_last_error());
    if (s == DFS_OK) dfs_st_free(&st);
    st_file(P("ok.st"), "{}", NULL, 0);
    CHECK(dfs_st_load(&st, P("ok.st")) == DFS_OK && st.count == 0, "empty header ok: %s",
          dfs_last_error());
    dfs_st_free(&st);
    CHECK(dfs_st_load(&st, P("none.st")) == DFS_ERR_IO, "missing file -> IO");
    w = dfs_st_writer_new();
    dfs_st_writer_add(w, "u8", DFS_DT_U8, 1, (int64_t[]){5}, u8);
    CHECK(dfs_st_writer_write(w, P("nodir/m.st")) == DFS_ERR_IO, "write to missing folder");
    dfs_st_writer_free(w);
    CHECK(count_tmp_files(tmpdir) == 0, "no temp files left");
}

/* Text through FreeType and the labelled grid. */
static void test_font(void) {
    uint8_t *a = NULL, *b = NULL;
    int wa = 0, ha = 0, wb = 0, hb = 0;
    CHECK(dfs_text_render(DFS_DEFAULT_FONT, "Bag", 12, &a, &wa, &ha) == DFS_OK && a, "render 'Bag': %s",
          dfs_last_error());
    CHECK(dfs_text_render(DFS_DEFAULT_FONT, "Ankle boot", 12, &b, &wb, &hb) == DFS_OK && b, "render 'Ankle boot'");
    CHECK(wa > 10 && wb > 2 * wa && ha == hb && ha >= 12 && ha <= 20, "text sizes: Bag %dx%d, Ankle boot %dx%d", wa,
          ha, wb, hb);
    long ink = 0;
    for (int i = 0; a && i < wa * ha; i++) ink += a[i] > 128;
    CHECK(ink > 15 && ink < wa * ha / 2, "'Bag' has some ink and mostly paper (%ld of %d pixels)", ink, wa * ha);
    free(a);
    free(b);
    CHECK(dfs_text_render(P("no-such-font.ttf"), "x", 12, &a, &wa, &ha) == DFS_ERR_IO && !a && err_has("font"),
          "missing font: %s", dfs_last_error());
    write_bytes(P("bad.ttf"), "not a font at all", 17);
    CHECK(dfs_text_render(P("bad.ttf"), "x", 12, &a, &wa, &ha) == DFS_ERR_FORMAT, "corrupt font: %s",
          dfs_last_error());

    /* 2 x 3 grid of 8x8 images: caption band on top, the grid below as in the plain writer */
    float img[6 * 64];
    for (int i = 0; i < 6 * 64; i++) img[i] = -1.0f; /* black images */
    const char *labels[3] = {"A", NULL, "Coat"};
    CHECK(dfs_png_write_grid_labeled(P("lab.png"), img, 6, 1, 8, 8, 3, labels, DFS_DEFAULT_FONT, 10) == DFS_OK,
          "labelled grid written: %s", dfs_last_error());
    uint8_t *px = NULL;
    int c = 0, h = 0, w = 0;
    CHECK(dfs_png_read(P("lab.png"), &px, &c, &h, &w) == DFS_OK && c == 1, "labelled grid read back");
    CHECK(w == 3 * 10 + 2 && h > 2 * 10 + 2 + 10, "labelled grid %dx%d: plain grid 32x22 plus a band", w, h);
    if (px && w == 32) {
        int band = h - 22, ink0 = 0, ink1 = 0;
        for (int y = 0; y < band; y++) {
            for (int x = 2; x < 10; x++) ink0 += px[y * w + x] < 128;
            for (int x = 12; x < 20; x++) ink1 += px[y * w + x] < 128;
        }
        CHECK(ink0 > 0 && ink1 == 0, "caption over column 0 (%d dark pixels), none over the blank column (%d)", ink0,
              ink1);
        CHECK(px[(band + 3) * w + 3] == 0 && px[(band + 1) * w + 1] == 128 && px[0] == 255,
              "black image, grey border and white band in their places");
    }
    free(px);
    CHECK(dfs_png_write_grid_labeled(P("lab2.png"), img, 6, 1, 8, 8, 3, labels, P("no-such-font.ttf"), 10) ==
                  DFS_ERR_IO,
          "labelled grid without a font fails cleanly");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfs_test_io_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_atomic();
    test_f16();
    test_idx();
    test_fashion_mnist();
    test_png();
    test_png_dir();
    test_npy();
    test_safetensors();
    test_font();
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary("test_io");
}
