/* test_text_data.c - the data half of text-to-image: captioned folders (metadata.jsonl and
 * .txt), their errors, the word tokenizer (splitting, vocabulary order, encode/decode, unknown
 * words, JSON), fashion-captions attributes, captions and parsing, and the emoji builder
 * (names, captions, colour rendering of single glyphs, ZWJ sequences and flags, counts). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "check.h"
#include "diffuse.h"

#include <float.h>
#include <ft2build.h>
#include FT_FREETYPE_H
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static const char *P(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(s, f);
    fclose(f);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_rf(const char *dir) {
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int err_has(const char *s) {
    return strstr(dfs_last_error(), s) != NULL;
}

/* A small caption set in memory: n RGB images of side s with a pattern per image. */
static void make_set(dfs_caption_set *cs, int n, int s, const char *const *caps, int labelled) {
    memset(cs, 0, sizeof *cs);
    cs->images.n = n;
    cs->images.c = 3;
    cs->images.h = cs->images.w = s;
    cs->images.pixels = malloc((size_t)n * 3 * s * s);
    for (size_t k = 0; k < (size_t)n * 3 * s * s; k++)
        cs->images.pixels[k] = (uint8_t)(k * 37 + k / 7);
    cs->captions = calloc((size_t)n, sizeof(char *));
    cs->names = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        cs->captions[i] = strdup(caps[i]);
        char b[32];
        snprintf(b, sizeof b, "item-%d", i);
        cs->names[i] = strdup(b);
    }
    if (labelled) {
        cs->images.labels = malloc((size_t)n * sizeof(int));
        for (int i = 0; i < n; i++)
            cs->images.labels[i] = (i * 2) % 5;
        cs->images.num_classes = 5;
    }
}

/* ---- folders ------------------------------------------------------------------------------ */

static void test_folder_roundtrip(void) {
    const char *caps[4] = {"a red apple", "Ünïcödé “quoted” text\\with \"escapes\"", "",
                           "line one, then more"};
    dfs_caption_set cs, back;
    make_set(&cs, 4, 6, caps, 1);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", P("built")); // P() reuses its buffers
    CHECK(dfs_captions_write_dir(&cs, dir, NULL, NULL) == DFS_OK, "write_dir: %s",
          dfs_last_error());
    struct stat sb;
    CHECK(stat(P("built/000003.png"), &sb) == 0 && stat(P("built/metadata.jsonl"), &sb) == 0,
          "PNG and metadata files exist");
    dfs_caption_options o;
    dfs_caption_options_default(&o);
    dfs_status st = dfs_captions_load(&back, dir, &o);
    CHECK(st == DFS_OK, "load written folder: %s", dfs_last_error());
    if (st == DFS_OK) {
        CHECK(back.images.n == 4 && back.images.c == 3 && back.images.h == 6 && back.images.w == 6,
              "shape %d x %d x %d x %d", back.images.n, back.images.c, back.images.h,
              back.images.w);
        CHECK(!memcmp(back.images.pixels, cs.images.pixels, 4 * 3 * 36), "pixels round trip");
        for (int i = 0; i < 4; i++)
            CHECK(!strcmp(back.captions[i], caps[i]), "caption %d: '%s' vs '%s'", i,
                  back.captions[i], caps[i]);
        CHECK(!strcmp(back.names[2], "000002.png"), "names are file names: %s", back.names[2]);
        CHECK(back.images.labels && back.images.labels[3] == cs.images.labels[3] &&
                  back.images.num_classes == 5,
              "labels round trip");
        dfs_caption_set_free(&back);
    }
    // limit, size and channel conversion on load
    o.limit = 2;
    o.size = 3;
    o.channels = 1;
    st = dfs_captions_load(&back, dir, &o);
    CHECK(st == DFS_OK && back.images.n == 2 && back.images.c == 1 && back.images.h == 3,
          "limit/size/channels: %s", dfs_last_error());
    if (!st) dfs_caption_set_free(&back);
    dfs_caption_set_free(&cs);

    // the same resampling as dfs_load_png_dir: load one folder both ways at another size
    dfs_dataset d;
    dfs_caption_options_default(&o);
    o.size = 4;
    o.channels = 1;
    CHECK(dfs_load_png_dir(&d, dir, 4, 1) == DFS_OK, "load_png_dir: %s", dfs_last_error());
    st = dfs_captions_load(&back, dir, &o);
    CHECK(st == DFS_OK && d.n == back.images.n &&
              !memcmp(d.pixels, back.images.pixels, (size_t)d.n * 16),
          "resized pixels equal dfs_load_png_dir's");
    if (!st) dfs_caption_set_free(&back);
    dfs_dataset_free(&d);
    // growing too (bilinear branch)
    CHECK(dfs_load_png_dir(&d, dir, 11, 3) == DFS_OK, "load_png_dir 11: %s", dfs_last_error());
    o.size = 11;
    o.channels = 3;
    st = dfs_captions_load(&back, dir, &o);
    CHECK(st == DFS_OK && !memcmp(d.pixels, back.images.pixels, (size_t)d.n * 3 * 121),
          "enlarged pixels equal dfs_load_png_dir's");
    if (!st) dfs_caption_set_free(&back);
    dfs_dataset_free(&d);
    rm_rf(dir);
}

static void test_txt_folder(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", P("txt")); // P() reuses its buffers
    mkdir(dir, 0755);
    uint8_t px[2 * 3 * 3];
    for (int i = 0; i < 18; i++)
        px[i] = (uint8_t)(i * 14);
    dfs_png_write(P("txt/b.png"), px, 1, 3, 3);
    dfs_png_write(P("txt/a.png"), px, 3, 1, 3); // a 1 x 3 RGB image
    write_text(P("txt/a.txt"), "\xEF\xBB\xBF  first caption\r\nsecond line \n");
    write_text(P("txt/b.txt"), "just b");
    write_text(P("txt/notes.txt"), "not a caption of anything");
    dfs_caption_set cs;
    dfs_caption_options o;
    dfs_caption_options_default(&o);
    o.size = 3;
    o.channels = 1;
    dfs_status st = dfs_captions_load(&cs, dir, &o);
    CHECK(st == DFS_OK, ".txt folder loads: %s", dfs_last_error());
    if (!st) {
        CHECK(cs.images.n == 2, "2 images, got %d", cs.images.n);
        CHECK(!strcmp(cs.names[0], "a.png") && !strcmp(cs.names[1], "b.png"), "sorted order");
        CHECK(!strcmp(cs.captions[0], "first caption  second line"), "BOM/trim/newlines: '%s'",
              cs.captions[0]);
        CHECK(!strcmp(cs.captions[1], "just b"), "caption b: '%s'", cs.captions[1]);
        CHECK(!memcmp(cs.images.pixels + 9, px, 9), "gray image b unchanged at its own size");
        CHECK(cs.images.labels == NULL, "no labels");
        dfs_caption_set_free(&cs);
    }
    // size 0 with a non-square first image: a clear error
    dfs_caption_options_default(&o);
    st = dfs_captions_load(&cs, dir, &o);
    CHECK(st == DFS_ERR_SHAPE && err_has("give a size"), "non-square needs a size: %s",
          dfs_last_error());
    // image without caption
    dfs_png_write(P("txt/c.png"), px, 1, 3, 3);
    o.size = 3;
    st = dfs_captions_load(&cs, dir, &o);
    CHECK(st == DFS_ERR_FORMAT && err_has("c.png") && err_has("without caption"),
          "image without caption: %s", dfs_last_error());
    remove(P("txt/c.png"));
    // non-PNG image
    write_text(P("txt/d.jpg"), "not really a jpeg");
    st = dfs_captions_load(&cs, dir, &o);
    CHECK(st == DFS_ERR_FORMAT && err_has("d.jpg") && err_has("only PNG"), "jpg refused: %s",
          dfs_last_error());
    remove(P("txt/d.jpg"));
    // a caption that is not UTF-8 text, and one that is a FIFO
    write_text(P("txt/b.txt"), "dress x\xE2\x80'\xBF");
    st = dfs_captions_load(&cs, dir, &o);
    CHECK(st == DFS_ERR_FORMAT && err_has("b.txt") && err_has("not UTF-8"), "bad UTF-8: %s",
          dfs_last_error());
    remove(P("txt/b.txt"));
    CHECK(mkfifo(P("txt/b.txt"), 0644) == 0, "mkfifo");
    st = dfs_captions_load(&cs, dir, &o);
    CHECK(st != DFS_OK && err_has("b.txt: not a regular file"), "FIFO caption: %s",
          dfs_last_error());
    rm_rf(dir);
}

/* dfs_utf8_invalid against the well-formed sequences of Unicode's table 3-7, and the
 * tokenizer's refusal of captions that are not UTF-8. */
static void test_utf8(void) {
    struct {
        const char *s;
        long want;
    } cases[] = {
        {"", -1},
        {"plain ascii", -1},
        {"caf\xC3\xA9 \xE2\x80\x99 \xF0\x9F\x8D\x8E \xF4\x8F\xBF\xBF \xEF\xBF\xBF", -1},
        {"\xED\x9F\xBF\xEE\x80\x80", -1}, // U+D7FF and U+E000, either side of the surrogates
        {"ab\xC3", 2},                     // cut short at the end
        {"a\xC0\x80", 1},                  // overlong NUL
        {"\xC1\xBF", 0},                   // overlong
        {"x\xE0\x9F\xBF", 1},              // overlong 3-byte
        {"\xED\xA0\x80", 0},               // a surrogate
        {"\xF0\x8F\xBF\xBF", 0},           // overlong 4-byte
        {"\xF4\x90\x80\x80", 0},           // past U+10FFFF
        {"\xF5\x80\x80\x80", 0},
        {"ok\x80", 2},                      // a stray continuation byte
        {"\xE2\x80'\xBF", 0},               // a continuation replaced by an apostrophe
        {"\xE9t\xE9", 0},                   // Latin-1
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        long got = dfs_utf8_invalid(cases[i].s);
        CHECK(got == cases[i].want, "utf8 case %zu: got %ld, want %ld", i, got, cases[i].want);
    }
    // the tokenizer refuses such a caption: its vocabulary could not be read back
    const char *caps[] = {"a red apple", "dress x\xE2\x80'\xBF"};
    dfs_tokenizer_config c;
    dfs_tokenizer_config_default(&c);
    dfs_tokenizer *t = (dfs_tokenizer *)1;
    dfs_status st = dfs_tokenizer_build(&t, caps, 2, &c);
    CHECK(st == DFS_ERR_FORMAT && err_has("caption 1 is not UTF-8"), "tokenizer: %d %s", st,
          dfs_last_error());
    if (!st) dfs_tokenizer_free(t);
    // dfs_open_read: a FIFO and a folder are refused without waiting, a file opens
    FILE *f = (FILE *)1;
    CHECK(mkfifo(P("fifo"), 0644) == 0, "mkfifo");
    CHECK(dfs_open_read(P("fifo"), &f) == DFS_ERR_IO && !f && err_has("not a regular file"),
          "FIFO: %s", dfs_last_error());
    CHECK(dfs_open_read(tmpdir, &f) == DFS_ERR_IO && err_has("not a regular file"), "folder: %s",
          dfs_last_error());
    CHECK(dfs_open_read(P("missing"), &f) == DFS_ERR_IO && err_has("cannot open"), "missing: %s",
          dfs_last_error());
    write_text(P("file"), "hello");
    char buf[8] = {0};
    CHECK(dfs_open_read(P("file"), &f) == DFS_OK && f && fread(buf, 1, 8, f) == 5 &&
              !strcmp(buf, "hello"),
          "a file reads (blocking mode): %s", dfs_last_error());
    if (f) fclose(f);
    remove(P("fifo"));
    remove(P("file"));
}

static void test_folder_errors(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", P("bad")); // P() reuses its buffers
    mkdir(dir, 0755);
    dfs_caption_set cs;
    dfs_status st = dfs_captions_load(&cs, dir, NULL);
    CHECK(st == DFS_ERR_FORMAT && err_has("empty folder"), "empty folder: %s", dfs_last_error());
    CHECK(cs.images.n == 0 && cs.captions == NULL, "set zeroed on error");
    st = dfs_captions_load(&cs, P("nonexistent"), NULL);
    CHECK(st == DFS_ERR_IO && err_has("no such folder"), "missing folder: %s", dfs_last_error());

    uint8_t px[4] = {1, 2, 3, 4};
    dfs_png_write(P("bad/x.png"), px, 1, 2, 2);
    dfs_png_write(P("bad/y.png"), px, 1, 2, 2);
    char meta[512];
    snprintf(meta, sizeof meta, "%s", P("bad/metadata.jsonl")); // P() reuses its buffers
    struct {
        const char *content, *want1, *want2;
        dfs_status st;
    } cases[] = {
        {"{\"file_name\": \"x.png\", \"text\": \"ok\"}\n{\"file_name\": \"y.png\", \"text\": "
         "\"broken\"\n",
         "line 2", "not a JSON object", DFS_ERR_FORMAT},
        {"\n\n{\"file_name\": \"x.png\", \"text\": \"ok\"}\n[1, 2]\n", "line 4", "JSON object",
         DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.png\"}\n", "line 1", "\"text\"", DFS_ERR_FORMAT},
        {"{\"text\": \"no file\"}\n", "line 1", "file_name", DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.png\", \"text\": 5}\n", "line 1", "\"text\"", DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.png\", \"text\": \"a\"}\n{\"file_name\": \"y.png\", \"text\": "
         "\"b\"}\n"
         "{\"file_name\": \"z.png\", \"text\": \"c\"}\n",
         "z.png", "missing file", DFS_ERR_IO},
        {"{\"file_name\": \"x.png\", \"text\": \"a\"}\n", "y.png", "without caption",
         DFS_ERR_FORMAT},
        {"{\"file_name\": \"../x.png\", \"text\": \"a\"}\n", "line 1", "inside the folder",
         DFS_ERR_FORMAT},
        {"{\"file_name\": \"/etc/x.png\", \"text\": \"a\"}\n", "line 1", "inside the folder",
         DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.jpg\", \"text\": \"a\"}\n", "line 1", "only PNG", DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.png\", \"text\": \"a\"}\n{\"file_name\": \"x.png\", \"text\": "
         "\"b\"}\n",
         "x.png", "more than once", DFS_ERR_FORMAT},
        {"\n  \n", "metadata.jsonl", "empty metadata", DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.png\", \"text\": \"a\"} trailing\n", "line 1", "not a JSON object",
         DFS_ERR_FORMAT},
        // a caption that is not UTF-8 would make a checkpoint header that is not UTF-8 JSON
        {"{\"file_name\": \"x.png\", \"text\": \"ok\"}\n{\"file_name\": \"y.png\", \"text\": "
         "\"caf\xE9\"}\n",
         "line 2", "not UTF-8", DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.png\", \"text\": \"\xED\xA0\x80\"}\n", "line 1", "not UTF-8",
         DFS_ERR_FORMAT}, // an encoded surrogate
        // \u0000 would cut the string short in cJSON; "\\u0000" (a backslash, then u0000) is text
        {"{\"file_name\": \"x.png\", \"text\": \"apple\\u0000 secret\"}\n", "line 1", "\\u0000",
         DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.png\\u0000/../y\", \"text\": \"a\"}\n", "line 1", "NUL",
         DFS_ERR_FORMAT},
        {"{\"file_name\": \"x.png\", \"text\": \"\\ud800\"}\n", "line 1", "not valid JSON",
         DFS_ERR_FORMAT}, // a lone surrogate escape
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(meta, cases[i].content);
        st = dfs_captions_load(&cs, dir, NULL);
        CHECK(st == cases[i].st && err_has(cases[i].want1) && err_has(cases[i].want2),
              "case %zu: status %d, message '%s' (want '%s', '%s')", i, st, dfs_last_error(),
              cases[i].want1, cases[i].want2);
        if (!st) dfs_caption_set_free(&cs);
    }
    // an escaped backslash before u0000 is no NUL; control characters become spaces
    write_text(meta, "{\"file_name\": \"x.png\", \"text\": \"a\\\\u0000b\"}\n"
                     "{\"file_name\": \"y.png\", \"text\": \"one\\ntwo\\u001b[31m\\tred\x7f\"}\n");
    st = dfs_captions_load(&cs, dir, NULL);
    CHECK(st == DFS_OK && !strcmp(cs.captions[0], "a\\u0000b") &&
              !strcmp(cs.captions[1], "one two [31m red "),
          "escaped backslash kept, controls blanked: %s / '%s' '%s'", dfs_last_error(),
          st ? "" : cs.captions[0], st ? "" : cs.captions[1]);
    if (!st) dfs_caption_set_free(&cs);
    // a FIFO where a file is expected is refused at once (opening it would wait for a writer)
    remove(meta);
    CHECK(mkfifo(meta, 0644) == 0, "mkfifo");
    st = dfs_captions_load(&cs, dir, NULL);
    CHECK(st == DFS_ERR_IO && err_has("metadata.jsonl: not a regular file"), "FIFO metadata: %s",
          dfs_last_error());
    remove(meta);
    write_text(meta, "{\"file_name\": \"x.png\", \"text\": \"a\"}\n{\"file_name\": \"y.png\", "
                     "\"text\": \"b\"}\n");
    remove(P("bad/y.png"));
    CHECK(mkfifo(P("bad/y.png"), 0644) == 0, "mkfifo");
    st = dfs_captions_load(&cs, dir, NULL);
    CHECK(st == DFS_ERR_IO && err_has("y.png: not a regular file"), "FIFO image: %s",
          dfs_last_error());
    remove(P("bad/y.png"));
    dfs_png_write(P("bad/y.png"), px, 1, 2, 2);
    // an image of another format beside metadata.jsonl is refused, as in a .txt folder
    write_text(P("bad/z.jpg"), "not really a jpeg");
    st = dfs_captions_load(&cs, dir, NULL);
    CHECK(st == DFS_ERR_FORMAT && err_has("z.jpg") && err_has("only PNG"), "unlisted jpg: %s",
          dfs_last_error());
    remove(P("bad/z.jpg"));
    // CRLF line ends and a byte-order mark are fine
    write_text(
        meta,
        "\xEF\xBB\xBF{\"file_name\": \"x.png\", \"text\": \"ex\"}\r\n{\"file_name\": \"y.png\", "
        "\"text\": \"why\"}\r\n");
    st = dfs_captions_load(&cs, dir, NULL);
    CHECK(st == DFS_OK && cs.images.n == 2 && !strcmp(cs.captions[1], "why"), "CRLF and BOM: %s",
          dfs_last_error());
    if (!st) dfs_caption_set_free(&cs);
    // a good one, with a sub-folder path and extra keys, labels partly present -> no labels
    mkdir(P("bad/sub"), 0755);
    dfs_png_write(P("bad/sub/z.png"), px, 1, 2, 2);
    write_text(meta,
               "{\"file_name\": \"sub/z.png\", \"text\": \"zed\", \"label\": 1, \"extra\": [1]}\n"
               "{\"file_name\": \"x.png\", \"text\": \"ex\", \"label\": 0}\n"
               "{\"file_name\": \"y.png\", \"text\": \"why\"}\n");
    st = dfs_captions_load(&cs, dir, NULL);
    CHECK(st == DFS_OK && cs.images.n == 3 && !strcmp(cs.captions[0], "zed") &&
              !strcmp(cs.names[0], "sub/z.png") && cs.images.labels == NULL,
          "sub-folder path, metadata order, partial labels ignored: %s", dfs_last_error());
    if (!st) dfs_caption_set_free(&cs);
    // a corrupt PNG named in the metadata
    write_text(P("bad/x.png"), "not a png");
    st = dfs_captions_load(&cs, dir, NULL);
    CHECK(st == DFS_ERR_FORMAT && err_has("x.png"), "corrupt PNG: %s", dfs_last_error());
    rm_rf(dir);
}

static void test_images_f32(void) {
    dfs_dataset d = {0};
    uint8_t px[8] = {0, 255, 127, 128, 1, 2, 3, 4};
    d.n = 2, d.c = 1, d.h = 2, d.w = 2, d.pixels = px;
    float out[8];
    CHECK(dfs_dataset_images_f32(&d, 0, 2, out) == DFS_OK, "in range");
    /* p / 127.5f - 1 in float: 0 and 255 are exact; for 127 the quotient 0.996 rounds by half an
     * ulp of [0.5, 1), 2^-25, and subtracting 1 is exact (Sterbenz): within 2^-25 of -1/255 */
    CHECK(out[0] == -1.0f && out[1] == 1.0f && fabs(out[2] - (127 / 127.5 - 1)) <= ldexp(1.0, -25),
          "p / 127.5 - 1: %g %g %.9g", out[0], out[1], out[2]);
    CHECK(dfs_dataset_images_f32(&d, 1, 2, out) == DFS_ERR_ARG, "past the end refused");
    CHECK(dfs_dataset_images_f32(&d, -1, 1, out) == DFS_ERR_ARG, "negative refused");
}

/* ---- tokenizer ---------------------------------------------------------------------------- */

typedef struct {
    char words[8][32];
    int n;
} collected;

static void collect(void *user, const char *w) {
    collected *c = user;
    if (c->n < 8) snprintf(c->words[c->n], 32, "%s", w);
    c->n++;
}

static void test_words(void) {
    const char *text =
        "Don't stop-the T-Shirt's  caf\xC3\xA9\xE2\x80\x99s \xE2\x80\x9Cx\xE2\x80\x9D 'q' a_b 42";
    char buf[128];
    const char *w[16];
    int n = dfs_text_words(text, buf, sizeof buf, w, 16);
    const char *want[] = {"dont", "stop", "the", "t", "shirts", "caf\xC3\xA9s",
                          "x",    "q",    "a",   "b", "42"};
    int nw = (int)(sizeof want / sizeof *want);
    CHECK(n == nw, "word count %d, want %d", n, nw);
    for (int i = 0; i < n && i < nw; i++)
        CHECK(!strcmp(w[i], want[i]), "word %d: '%s' want '%s'", i, w[i], want[i]);
    CHECK(dfs_text_words("", buf, sizeof buf, w, 16) == 0, "empty text");
    CHECK(dfs_text_words(" -- !! ", buf, sizeof buf, w, 16) == 0, "punctuation only");
    CHECK(dfs_text_words("abcdef", buf, 4, w, 16) == -1, "too small buffer");
    CHECK(dfs_text_words("a b c", buf, sizeof buf, w, 2) == 3, "count beyond max_words");
}

static void test_tokenizer(void) {
    const char *caps[] = {"a red apple", "a green apple", "A RED car", "the car", "zebra"};
    dfs_tokenizer_config c;
    dfs_tokenizer_config_default(&c);
    dfs_tokenizer *t;
    CHECK(dfs_tokenizer_build(&t, caps, 5, &c) == DFS_OK, "build: %s", dfs_last_error());
    // counts: a 3, apple 2, car 2, red 2, green 1, the 1, zebra 1 -> by count, then bytewise
    const char *order[] = {"<pad>", "<unk>", "<bos>", "<eos>", "a",    "apple",
                           "car",   "red",   "green", "the",   "zebra"};
    CHECK(dfs_tokenizer_vocab_size(t) == 11, "vocab size %d", dfs_tokenizer_vocab_size(t));
    for (int i = 0; i < 11; i++)
        CHECK(dfs_tokenizer_word(t, i) && !strcmp(dfs_tokenizer_word(t, i), order[i]),
              "id %d: %s want %s", i, dfs_tokenizer_word(t, i), order[i]);
    CHECK(dfs_tokenizer_max_len(t) == 5, "max_len = longest (3) + 2: %d", dfs_tokenizer_max_len(t));
    CHECK(dfs_tokenizer_id(t, "car") == 6 && dfs_tokenizer_id(t, "bus") == DFS_TOK_UNK &&
              dfs_tokenizer_id(t, "<pad>") == DFS_TOK_UNK,
          "id lookups");

    int ids[8];
    uint8_t mask[8];
    dfs_encode_info info;
    collected u = {0};
    CHECK(dfs_tokenizer_encode(t, "A blue apple, blue car!", 8, ids, mask, &info, collect, &u) ==
              DFS_OK,
          "encode");
    int want[8] = {DFS_TOK_BOS, 4, DFS_TOK_UNK, 5, DFS_TOK_UNK, 6, DFS_TOK_EOS, DFS_TOK_PAD};
    CHECK(!memcmp(ids, want, sizeof want), "ids %d %d %d %d %d %d %d %d", ids[0], ids[1], ids[2],
          ids[3], ids[4], ids[5], ids[6], ids[7]);
    CHECK(mask[6] == 1 && mask[7] == 0 && mask[0] == 1, "mask");
    CHECK(info.length == 7 && info.words == 5 && info.unknown == 2 && info.truncated == 0,
          "info %d %d %d %d", info.length, info.words, info.unknown, info.truncated);
    CHECK(u.n == 2 && !strcmp(u.words[0], "blue") && !strcmp(u.words[1], "blue"),
          "unknown words reported: %d", u.n);
    char *back = dfs_tokenizer_decode(t, ids, 8);
    CHECK(back && !strcmp(back, "a <unk> apple <unk> car"), "decode: '%s'", back);
    free(back);
    // truncation keeps <bos> ... <eos>
    u.n = 0;
    CHECK(dfs_tokenizer_encode(t, "red red red red red red", 5, ids, mask, &info, collect, &u) ==
              DFS_OK,
          "encode long");
    CHECK(ids[0] == DFS_TOK_BOS && ids[1] == 7 && ids[3] == 7 && ids[4] == DFS_TOK_EOS &&
              info.truncated == 3 && info.length == 5 && u.n == 0,
          "truncated to 3 words: truncated %d", info.truncated);
    CHECK(dfs_tokenizer_encode(t, "x", 2, ids, NULL, NULL, NULL, NULL) == DFS_ERR_ARG,
          "max_len 2 refused");
    // empty caption: <bos> <eos>
    CHECK(dfs_tokenizer_encode(t, "", 4, ids, mask, &info, NULL, NULL) == DFS_OK &&
              ids[0] == DFS_TOK_BOS && ids[1] == DFS_TOK_EOS && ids[2] == DFS_TOK_PAD &&
              info.length == 2,
          "empty caption");
    // round trip of known words
    CHECK(dfs_tokenizer_encode(t, "The  ZEBRA-car", 8, ids, NULL, NULL, NULL, NULL) == DFS_OK,
          "encode 3");
    back = dfs_tokenizer_decode(t, ids, 8);
    CHECK(back && !strcmp(back, "the zebra car"), "decode round trip: '%s'", back);
    free(back);

    // JSON round trip
    char *js = dfs_tokenizer_to_json(t);
    CHECK(js && strstr(js, "\"format\":\"diffuse-words-1\""), "json: %s", js ? js : "(null)");
    dfs_tokenizer *t2 = NULL;
    CHECK(js && dfs_tokenizer_from_json(&t2, js) == DFS_OK, "parse: %s", dfs_last_error());
    if (t2) {
        CHECK(dfs_tokenizer_vocab_size(t2) == 11 && dfs_tokenizer_max_len(t2) == 5, "same sizes");
        int ids2[8];
        dfs_tokenizer_encode(t, "a green zebra apple", 8, ids, NULL, NULL, NULL, NULL);
        dfs_tokenizer_encode(t2, "a green zebra apple", 8, ids2, NULL, NULL, NULL, NULL);
        CHECK(!memcmp(ids, ids2, sizeof ids), "same ids after JSON round trip");
        char *js2 = dfs_tokenizer_to_json(t2);
        CHECK(js2 && !strcmp(js, js2), "JSON is stable");
        free(js2);
        dfs_tokenizer_free(t2);
    }
    free(js);

    // corrupt JSON
    const char *bad[] = {
        "",
        "not json",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\",\"a\"]",
        "[1,2,3]",
        "{\"format\":\"other\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<eos>\"]}",
        "{\"format\":\"diffuse-words-1\",\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<eos>\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":2,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5.5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\","
        "\"<eos>\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<unk>\",\"<pad>\",\"<bos>\",\"<"
        "eos>\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\",\"a\",\"a\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\",\"Apple\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\",\"two words\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\",\"\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\",7]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":\"a b c\"}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":1e300,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\"]}", // out of int's range: refused before any cast
        "{\"format\":\"diffuse-words-1\",\"max_len\":-1e300,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5.5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\"]}",
        "{\"format\":\"diffuse-words-1\",\"max_len\":5,\"vocab\":[\"<pad>\",\"<unk>\",\"<bos>\",\"<"
        "eos>\"]}x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        t2 = (dfs_tokenizer *)1;
        dfs_status st = dfs_tokenizer_from_json(&t2, bad[i]);
        CHECK(st == DFS_ERR_FORMAT && t2 == NULL && err_has("tokenizer JSON"),
              "corrupt %zu: status %d '%s'", i, st, dfs_last_error());
    }
    dfs_tokenizer_free(t);

    // max_vocab and min_count
    c.max_vocab = 6;
    CHECK(dfs_tokenizer_build(&t, caps, 5, &c) == DFS_OK && dfs_tokenizer_vocab_size(t) == 6 &&
              !strcmp(dfs_tokenizer_word(t, 5), "apple") &&
              dfs_tokenizer_id(t, "car") == DFS_TOK_UNK,
          "max_vocab keeps the most frequent");
    dfs_tokenizer_free(t);
    c.max_vocab = 0;
    c.min_count = 2;
    CHECK(dfs_tokenizer_build(&t, caps, 5, &c) == DFS_OK && dfs_tokenizer_vocab_size(t) == 8,
          "min_count 2: %d", dfs_tokenizer_vocab_size(t));
    dfs_tokenizer_free(t);
    c.min_count = 1;
    c.max_vocab = 4;
    CHECK(dfs_tokenizer_build(&t, caps, 5, &c) == DFS_ERR_ARG,
          "max_vocab must leave room for words");
}

/* ---- fashion-captions --------------------------------------------------------------------- */

static void test_fashion_attributes(void) {
    uint8_t img[28 * 28];
    dfs_fashion_attr a;
    memset(img, 0, sizeof img);
    dfs_fashion_measure(img, 28, 28, 0, &a);
    CHECK(a.brightness == 0 && a.coverage == 0 && a.tone == DFS_TONE_DARK &&
              a.size == DFS_SIZE_SMALL,
          "blank image: %g %g", a.brightness, a.coverage);
    // top half 255, bottom 0: brightness 255, coverage 0.5
    for (int i = 0; i < 28 * 14; i++)
        img[i] = 255;
    dfs_fashion_measure(img, 28, 28, 0, &a);
    /* coverage = (float)(count / n): exact when the quotient is a float (392/784 = 1/2), else
     * rounded once, within half an ulp (u32 relative) of the quotient */
    CHECK(a.brightness == 255 && a.coverage == 0.5f, "half white: %g %g",
          a.brightness, a.coverage);
    CHECK(a.tone == DFS_TONE_LIGHT && a.size == DFS_SIZE_SMALL,
          "t-shirt: light (>186.25), small (<0.5089)");
    dfs_fashion_measure(img, 28, 28, -1, &a);
    CHECK(a.tone == DFS_TONE_LIGHT && a.size == DFS_SIZE_MID, "pooled: light, mid (0.357..0.534)");
    dfs_fashion_measure(img, 28, 28, 5, &a);
    CHECK(a.size == DFS_SIZE_LARGE, "a sandal covering half the image is large");
    // 70% of the pixels at 100, the rest at 32 (not garment: the threshold is > 32)
    for (int i = 0; i < 28 * 28; i++)
        img[i] = i < 549 ? 100 : 32;
    dfs_fashion_measure(img, 28, 28, 4, &a);
    CHECK(a.brightness == 100 && fabs(a.coverage - 549.0 / 784) <= FLT_EPSILON / 2 * (549.0 / 784) &&
              a.tone == DFS_TONE_DARK && a.size == DFS_SIZE_LARGE,
          "dim large coat: %g %g tone %d size %d", a.brightness, a.coverage, a.tone, a.size);
    img[600] = 33;
    dfs_fashion_attr b;
    dfs_fashion_measure(img, 28, 28, 4, &b);
    CHECK(fabs(b.coverage - 550.0 / 784) <= FLT_EPSILON / 2 * (550.0 / 784), "33 counts as garment");
    // a mid-grey garment at the class's median is neither dark nor light
    for (int i = 0; i < 28 * 28; i++)
        img[i] = i < 300 ? 175 : 0; // coverage 0.383, dress terciles
    dfs_fashion_measure(img, 28, 28, 3, &a);
    CHECK(a.tone == DFS_TONE_MID && a.size == DFS_SIZE_MID, "dress in the middle thirds: %d %d",
          a.tone, a.size);
    // the float version quantises like a PNG
    float f[28 * 28];
    for (int i = 0; i < 28 * 28; i++)
        f[i] = img[i] / 127.5f - 1.0f;
    dfs_fashion_measure_f32(f, 28, 28, 3, &b);
    /* exactly: (p / 127.5f - 1 + 1) * 127.5f is within ~255 * 2^-23 = 3e-5 of p, so lrintf gives
     * back every integer p, and the two means are of the same integers */
    CHECK(a.brightness == b.brightness && a.coverage == b.coverage && a.tone == b.tone,
          "f32 agrees: %g vs %g", a.brightness, b.brightness);
    // larger images: coverage is a fraction
    uint8_t big[56 * 56];
    for (int i = 0; i < 56 * 56; i++)
        big[i] = i < 56 * 28 ? 200 : 0;
    dfs_fashion_measure(big, 56, 56, -1, &a);
    CHECK(a.coverage == 0.5f, "coverage is size-free"); /* 1568 / 3136, exact */
}

static void test_fashion_captions_text(void) {
    char buf[96];
    dfs_fashion_attr a = {200, 0.7f, DFS_TONE_LIGHT, DFS_SIZE_LARGE};
    // the synonym depends on (seed, index); find an index for each synonym of class 9
    int seen[3] = {0, 0, 0};
    for (long i = 0; i < 64; i++) {
        dfs_fashion_caption(buf, sizeof buf, 9, &a, 7, i);
        if (!strcmp(buf, "a large light ankle boot"))
            seen[0]++;
        else if (!strcmp(buf, "a large light boot"))
            seen[1]++;
        else
            CHECK(0, "unexpected caption '%s'", buf);
    }
    CHECK(seen[0] > 10 && seen[1] > 10, "both synonyms used: %d %d", seen[0], seen[1]);
    dfs_fashion_caption(buf, sizeof buf, 9, &a, 7, 3);
    char again[96];
    dfs_fashion_caption(again, sizeof again, 9, &a, 7, 3);
    CHECK(!strcmp(buf, again), "deterministic");
    dfs_fashion_attr mid = {150, 0.4f, DFS_TONE_MID, DFS_SIZE_MID};
    int an = 0, plural = 0;
    for (long i = 0; i < 32; i++) {
        dfs_fashion_caption(buf, sizeof buf, 9, &mid, 0, i);
        an += !strcmp(buf, "an ankle boot");
        dfs_fashion_caption(buf, sizeof buf, 1, &mid, 0, i);
        plural += !strcmp(buf, "trousers") || !strcmp(buf, "pants");
    }
    CHECK(an > 0, "'an' before a vowel");
    CHECK(plural == 32, "plural nouns take no article (%d of 32)", plural);
    dfs_fashion_attr dk = {90, 0.1f, DFS_TONE_DARK, DFS_SIZE_SMALL};
    dfs_fashion_caption(buf, sizeof buf, 1, &dk, 0, 0);
    CHECK(!strcmp(buf, "small dark trousers") || !strcmp(buf, "small dark pants"), "'%s'", buf);

    // every class, synonym and attribute parses back
    for (int c = 0; c < 10; c++)
        for (int t = 0; t < DFS_TONE_COUNT; t++)
            for (int s = 0; s < DFS_SIZE_COUNT; s++)
                for (long i = 0; i < 12; i++) {
                    dfs_fashion_attr x = {0, 0, (dfs_fashion_tone)t, (dfs_fashion_size)s};
                    dfs_fashion_caption(buf, sizeof buf, c, &x, 1, i);
                    int pc, pt, ps;
                    dfs_fashion_parse(buf, &pc, &pt, &ps);
                    int wt = t == DFS_TONE_MID ? -1 : t, ws = s == DFS_SIZE_MID ? -1 : s;
                    if (pc != c || pt != wt || ps != ws)
                        CHECK(0, "'%s' parsed as %d %d %d, want %d %d %d", buf, pc, pt, ps, c, wt,
                              ws);
                }
    struct {
        const char *text;
        int cls, tone, size;
    } prompts[] = {
        {"a dark ankle boot", 9, DFS_TONE_DARK, -1},
        {"Small LIGHT T-shirts", 0, DFS_TONE_LIGHT, DFS_SIZE_SMALL},
        {"a shirt", 6, -1, -1},
        {"two blouses", 6, -1, -1},
        {"white sneakers, large", 7, -1, DFS_SIZE_LARGE},
        {"a tshirt", 0, -1, -1},
        {"a boot", 9, -1, -1},
        {"one trouser", 1, -1, -1},
        {"dresses", 3, -1, -1},
        {"a big red hat", -1, -1, -1},
        {"bootleg shirtless topaz", -1, -1, -1},
        {"a coat and a bag", 4, -1, -1},
        {"", -1, -1, -1},
    };
    for (size_t i = 0; i < sizeof prompts / sizeof *prompts; i++) {
        int pc, pt, ps;
        int r = dfs_fashion_parse(prompts[i].text, &pc, &pt, &ps);
        CHECK(r == pc && pc == prompts[i].cls && pt == prompts[i].tone && ps == prompts[i].size,
              "parse '%s' = %d %d %d, want %d %d %d", prompts[i].text, pc, pt, ps, prompts[i].cls,
              prompts[i].tone, prompts[i].size);
    }
    CHECK(dfs_fashion_synonym_count(0) == 3 && !strcmp(dfs_fashion_synonym(2, 1), "sweater") &&
              dfs_fashion_synonym(3, 1) == NULL && dfs_fashion_synonym_count(10) == 0,
          "synonym tables");
}

static void test_fashion_real(void) {
    dfs_caption_set cs;
    dfs_caption_options o;
    dfs_caption_options_default(&o);
    dfs_status st = dfs_captions_load(&cs, "fashion-captions", &o);
    CHECK(st == DFS_OK, "fashion-captions: %s", dfs_last_error());
    if (st) return;
    CHECK(cs.images.n == 60000 && cs.images.c == 1 && cs.images.h == 28 && cs.images.labels,
          "60000 labelled");
    // every caption names its class and states the measured attributes
    int bad = 0, counts[10][4] = {{0}}, total[10] = {0}, nsyn[10][3] = {{0}};
    for (int i = 0; i < cs.images.n; i++) {
        int lab = cs.images.labels[i], pc, pt, ps;
        dfs_fashion_attr a;
        dfs_fashion_measure(cs.images.pixels + (size_t)i * 784, 28, 28, lab, &a);
        dfs_fashion_parse(cs.captions[i], &pc, &pt, &ps);
        if (pc != lab || pt != (a.tone == DFS_TONE_MID ? -1 : (int)a.tone) ||
            ps != (a.size == DFS_SIZE_MID ? -1 : (int)a.size)) {
            if (bad++ < 3) CHECK(0, "image %d (class %d): '%s'", i, lab, cs.captions[i]);
        }
        for (int k = 0; k < dfs_fashion_synonym_count(lab); k++)
            if (strstr(cs.captions[i], dfs_fashion_synonym(lab, k))) nsyn[lab][k]++;
        total[lab]++;
        counts[lab][0] += a.tone == DFS_TONE_DARK;
        counts[lab][1] += a.tone == DFS_TONE_LIGHT;
        counts[lab][2] += a.size == DFS_SIZE_SMALL;
        counts[lab][3] += a.size == DFS_SIZE_LARGE;
    }
    CHECK(bad == 0, "%d captions disagree with their label or measured attributes", bad);
    // the stored thresholds are the training set's per-class terciles: integer counts of fixed
    // data (no rounding enters: brightness is a mean of integers rounded once, the same on any
    // machine), so a third of each class up to the images tied at a threshold (brightness and
    // coverage take few distinct values near a tercile), hence 0.30 .. 0.37
    for (int c = 0; c < 10; c++)
        for (int k = 0; k < 4; k++) {
            double f = (double)counts[c][k] / total[c];
            CHECK(f > 0.30 && f < 0.37, "class %d attribute %d holds %.3f of the class", c, k, f);
        }
    // synonyms are spread (class 2 has three)
    CHECK(nsyn[2][0] > 1500 && nsyn[2][1] > 1500 && nsyn[2][2] > 1500,
          "pullover/sweater/jumper %d %d %d", nsyn[2][0], nsyn[2][1], nsyn[2][2]);
    CHECK(!strcmp(cs.names[5], "fashion-mnist-train:5"), "names: %s", cs.names[5]);
    // a few captions by hand: image 0 of the training set is an ankle boot
    CHECK(strstr(cs.captions[0], "boot") != NULL, "image 0: '%s'", cs.captions[0]);
    dfs_caption_set_free(&cs);

    // another seed changes synonyms, not classes; test split and limit and resizing
    o.seed = 99;
    o.test_split = 1;
    o.limit = 100;
    o.size = 14;
    o.channels = 3;
    st = dfs_captions_load(&cs, "fashion-captions", &o);
    CHECK(st == DFS_OK && cs.images.n == 100 && cs.images.c == 3 && cs.images.h == 14 &&
              !strcmp(cs.names[0], "fashion-mnist-test:0"),
          "test split, limit, resize: %s", dfs_last_error());
    dfs_caption_set other;
    o.seed = 0;
    if (!st && dfs_captions_load(&other, "fashion-captions-test", &o) == DFS_OK) {
        int diff = 0;
        for (int i = 0; i < 100; i++) {
            diff += strcmp(cs.captions[i], other.captions[i]) != 0;
            CHECK(dfs_fashion_parse(cs.captions[i], NULL, NULL, NULL) ==
                      dfs_fashion_parse(other.captions[i], NULL, NULL, NULL),
                  "same class under both seeds");
        }
        CHECK(diff > 20, "seed changes synonyms: %d of 100 differ", diff);
        dfs_caption_set_free(&other);
    }
    if (!st) dfs_caption_set_free(&cs);
}

/* ---- emoji -------------------------------------------------------------------------------- */

/* Count the fully-qualified lines of emoji-test.txt directly (no parsing of names). */
static void count_file(int *all, int *no_skin) {
    *all = *no_skin = 0;
    FILE *f = fopen("/usr/share/unicode/emoji/emoji-test.txt", "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || !strstr(line, "; fully-qualified")) continue;
        (*all)++;
        const char *semi = strchr(line, ';');
        int skin = 0;
        for (const char *p = line; p < semi; p++)
            if (!strncmp(p, "1F3FB", 5) || !strncmp(p, "1F3FC", 5) || !strncmp(p, "1F3FD", 5) ||
                !strncmp(p, "1F3FE", 5) || !strncmp(p, "1F3FF", 5))
                skin = 1;
        *no_skin += !skin;
    }
    if (f) fclose(f);
}

/* Fractions of pixels of an RGB image (3, s, s) that are red-ish and non-white. */
static void colour_stats(const uint8_t *im, int s, double *red, double *ink) {
    size_t p = (size_t)s * s, r = 0, k = 0;
    for (size_t i = 0; i < p; i++) {
        int R = im[i], G = im[p + i], B = im[2 * p + i];
        r += R > 150 && G < 110 && B < 110;
        k += R < 235 || G < 235 || B < 235;
    }
    *red = (double)r / p;
    *ink = (double)k / p;
}

/* An independent reference for the compositing: load U+1F34E's bitmap with FreeType here,
 * un-premultiply it (C = c / alpha), put it "over" white with straight alpha,
 * C alpha + 255 (1 - alpha), centred in a square of the bitmap's larger side, and compare with
 * dfs_emoji_render at that same size (no resampling). Returns the largest difference, or -1. */
static int reference_diff(dfs_emoji_font *font, int *side) {
    FT_Library lib;
    FT_Face face;
    int worst = -1;
    if (FT_Init_FreeType(&lib)) return -1;
    if (!FT_New_Face(lib, "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", 0, &face)) {
        FT_Select_Size(face, 0);
        FT_UInt gi = FT_Get_Char_Index(face, 0x1F34E);
        if (gi && !FT_Load_Glyph(face, gi, FT_LOAD_COLOR) &&
            face->glyph->bitmap.pixel_mode == FT_PIXEL_MODE_BGRA) {
            const FT_Bitmap *b = &face->glyph->bitmap;
            int w = (int)b->width, h = (int)b->rows, S = w > h ? w : h;
            *side = S;
            uint8_t *mine = malloc((size_t)3 * S * S);
            if (mine && dfs_emoji_render(font, "\xF0\x9F\x8D\x8E", S, mine) == DFS_OK) {
                worst = 0;
                for (int y = 0; y < S; y++)
                    for (int x = 0; x < S; x++) {
                        int by = y - (S - h) / 2, bx = x - (S - w) / 2;
                        for (int k = 0; k < 3; k++) {
                            double want = 255;
                            if (by >= 0 && by < h && bx >= 0 && bx < w) {
                                const uint8_t *px =
                                    b->buffer + (size_t)by * b->pitch + 4 * (size_t)bx;
                                double al = px[3] / 255.0,
                                       straight = al > 0 ? px[2 - k] / al : 0; // BGRA
                                want = straight * al + 255 * (1 - al);
                            }
                            int d =
                                abs((int)lrint(want) - mine[(size_t)k * S * S + (size_t)y * S + x]);
                            if (d > worst) worst = d;
                        }
                    }
            }
            free(mine);
        }
        FT_Done_Face(face);
    }
    FT_Done_FreeType(lib);
    return worst;
}

static const dfs_emoji_entry *find_emoji(const dfs_emoji_entry *l, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i].name, name)) return &l[i];
    return NULL;
}

static void test_emoji(void) {
    int all, no_skin;
    count_file(&all, &no_skin);
    dfs_emoji_entry *l;
    int n;
    dfs_status st = dfs_emoji_list(NULL, 0, &l, &n);
    CHECK(st == DFS_OK, "emoji_list: %s", dfs_last_error());
    if (st) return;
    CHECK(n == no_skin && n > 1000, "%d fully-qualified emoji without skin tones, the file has %d",
          n, no_skin);
    printf("emoji-test.txt: %d fully-qualified, %d without skin tones\n", all, no_skin);
    char buf[256];
    const dfs_emoji_entry *apple = find_emoji(l, n, "red apple");
    CHECK(apple && !strcmp(apple->codepoints, "1F34E") &&
              !strcmp(apple->utf8, "\xF0\x9F\x8D\x8E") && !strcmp(apple->group, "Food & Drink") &&
              !strcmp(apple->subgroup, "food-fruit"),
          "red apple entry");
    if (apple) {
        dfs_emoji_caption(apple, buf, sizeof buf);
        CHECK(!strcmp(buf, "red apple, food drink, food fruit"), "caption '%s'", buf);
    }
    struct {
        const char *name, *caption;
    } caps[] = {
        {"keycap: #", "keycap: number sign, symbols, keycap"},
        {"flag: C\xC3\xB4te d\xE2\x80\x99Ivoire", "flag: cote d'ivoire, flags, country flag"},
        {"Japanese \xE2\x80\x9Chere\xE2\x80\x9D button", "japanese here button, symbols, alphanum"},
        {"pi\xC3\xB1"
         "ata",
         "pinata, activities, game"},
        {"flag: Antigua & Barbuda", "flag: antigua barbuda, flags, country flag"},
    };
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
        const dfs_emoji_entry *e = find_emoji(l, n, caps[i].name);
        if (!e) {
            CHECK(0, "no emoji named '%s'", caps[i].name);
            continue;
        }
        dfs_emoji_caption(e, buf, sizeof buf);
        CHECK(!strcmp(buf, caps[i].caption), "caption '%s', want '%s'", buf, caps[i].caption);
    }
    CHECK(find_emoji(l, n, "waving hand: light skin tone") == NULL, "skin tones left out");
    dfs_emoji_list_free(l, n);
    st = dfs_emoji_list(NULL, 1, &l, &n);
    CHECK(st == DFS_OK && n == all, "with skin tones: %d of %d", n, all);
    if (!st) {
        const dfs_emoji_entry *w = find_emoji(l, n, "waving hand: light skin tone");
        CHECK(w && w->skin_tone, "skin-tone entry flagged");
        dfs_emoji_list_free(l, n);
    }

    dfs_emoji_font *font;
    st = dfs_emoji_font_open(&font, NULL);
    CHECK(st == DFS_OK, "font: %s", dfs_last_error());
    if (st) return;
    uint8_t im[3 * 32 * 32];
    double red, ink;
    CHECK(dfs_emoji_render(font, "\xF0\x9F\x8D\x8E", 32, im) == DFS_OK, "red apple renders: %s",
          dfs_last_error());
    colour_stats(im, 32, &red, &ink);
    CHECK(red > 0.3 && ink > 0.4, "red apple is mostly red: red %.2f, non-white %.2f", red, ink);
    CHECK(im[0] == 255 && im[1024] == 255 && im[2048] == 255, "corner is white background");
    // blue heart: blue, so the channels are not swapped (BGRA -> RGB)
    CHECK(dfs_emoji_render(font, "\xF0\x9F\x92\x99", 32, im) == DFS_OK, "blue heart");
    colour_stats(im, 32, &red, &ink);
    long sr = 0, sb = 0;
    for (int i = 0; i < 1024; i++)
        sr += im[i], sb += im[2048 + i];
    CHECK(sb > sr + 1024 * 40 && red < 0.01, "blue heart: mean B %ld > mean R %ld", sb / 1024,
          sr / 1024);
    // 8-bit levels: the library and this reference each round their own (differently ordered)
    // composite to the nearest level, so each is within 0.5 of the exact value plus a rounding
    // far below a level, and the two differ by at most 1
    int side = 0, worst = reference_diff(font, &side);
    CHECK(worst >= 0 && worst <= 1 && side > 32,
          "compositing matches un-premultiplied 'over' white at %d px: "
          "largest difference %d",
          side, worst);
    // one glyph for a ZWJ sequence, a flag, a keycap and a skin tone
    const char *seqs[][2] = {
        {"\xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F\x8C\x88", "rainbow flag (ZWJ)"},
        {"\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
         "family: man, woman, girl (ZWJ)"},
        {"\xF0\x9F\x87\xAF\xF0\x9F\x87\xB5", "flag: Japan"},
        {"#\xEF\xB8\x8F\xE2\x83\xA3", "keycap: #"},
        {"\xF0\x9F\x91\x8B\xF0\x9F\x8F\xBF", "waving hand: dark skin tone"},
    };
    for (int i = 0; i < 5; i++) {
        st = dfs_emoji_render(font, seqs[i][0], 32, im);
        colour_stats(im, 32, &red, &ink);
        CHECK(st == DFS_OK && ink > 0.2, "%s renders as one non-blank glyph: %s, non-white %.2f",
              seqs[i][1], st ? dfs_last_error() : "ok", ink);
    }
    dfs_emoji_render(font, "\xF0\x9F\x87\xAF\xF0\x9F\x87\xB5", 32,
                     im); // Japan: a red disc on white
    colour_stats(im, 32, &red, &ink);
    CHECK(red > 0.05, "flag of Japan has red: %.2f", red);
    // two emoji that form no ligature are two glyphs: refused, not mixed
    st = dfs_emoji_render(font, "\xF0\x9F\x8D\x8E\xE2\x80\x8D\xF0\x9F\x90\x8D", 32, im);
    CHECK(st == DFS_ERR_FORMAT && err_has("2 glyphs"), "apple ZWJ snake: %s", dfs_last_error());
    st = dfs_emoji_render(font, "\xF0\x9F\x8D\x8E\xF0\x9F\x8D\x8E", 32, im);
    CHECK(st == DFS_ERR_FORMAT, "two apples refused");
    st = dfs_emoji_render(font, "\xEF\xBF\xBF", 32, im); // U+FFFF, a noncharacter
    CHECK(st == DFS_ERR_FORMAT, "no glyph: %s", dfs_last_error());
    dfs_emoji_font_close(font);
    dfs_emoji_font *nf;
    st = dfs_emoji_font_open(&nf, P("no-such-font.ttf"));
    CHECK(st == DFS_ERR_IO && err_has("no-such-font") && nf == NULL, "missing font: %s",
          dfs_last_error());
    write_text(P("fake.ttf"), "not a font at all");
    st = dfs_emoji_font_open(&nf, P("fake.ttf"));
    CHECK(st == DFS_ERR_FORMAT && err_has("fake.ttf"), "not a font: %s", dfs_last_error());
    st = dfs_emoji_font_open(&nf, "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    if (access("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", R_OK) == 0)
        CHECK(st == DFS_ERR_FORMAT && err_has("colour"), "outline font refused: %s",
              dfs_last_error());
    else if (!st)
        dfs_emoji_font_close(nf);

    // the builder: first 20, then (not under sanitizers) all of them
    dfs_caption_set cs;
    dfs_caption_options o;
    dfs_caption_options_default(&o);
    o.limit = 20;
    st = dfs_captions_load(&cs, "emoji", &o);
    CHECK(st == DFS_OK && cs.images.n == 20 && cs.images.c == 3 && cs.images.h == 32 &&
              cs.failed == 0 && cs.skipped == all - no_skin &&
              !strcmp(cs.captions[0], "grinning face, smileys emotion, face smiling") &&
              !strcmp(cs.names[0], "1F600"),
          "emoji --limit 20: %s (n %d, failed %d, skipped %d)", dfs_last_error(), cs.images.n,
          cs.failed, cs.skipped);
    if (!st) dfs_caption_set_free(&cs);
    o.emoji_test = P("missing-emoji-test.txt");
    st = dfs_captions_load(&cs, "emoji", &o);
    CHECK(st == DFS_ERR_IO && err_has("missing-emoji-test.txt"), "missing emoji-test: %s",
          dfs_last_error());
    write_text(P("broken-test.txt"), "# group: G\n# subgroup: s\n1F600 ; fully-qualified # x\n");
    o.emoji_test = P("broken-test.txt");
    st = dfs_captions_load(&cs, "emoji", &o);
    CHECK(st == DFS_ERR_FORMAT && err_has("line 3"), "malformed line: %s", dfs_last_error());
    if (!getenv("DFS_SANITIZE")) {
        dfs_caption_options_default(&o);
        st = dfs_captions_load(&cs, "emoji", &o);
        CHECK(st == DFS_OK && cs.images.n == no_skin && cs.failed == 0,
              "every emoji renders: %d of %d, %d failed", cs.images.n, no_skin, cs.failed);
        if (!st) {
            printf("emoji: %d rendered, %d failed, %d skin-tone variants left out\n", cs.images.n,
                   cs.failed, cs.skipped);
            dfs_caption_set_free(&cs);
        }
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfs_text_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_folder_roundtrip();
    test_txt_folder();
    test_folder_errors();
    test_images_f32();
    test_utf8();
    test_words();
    test_tokenizer();
    test_fashion_attributes();
    test_fashion_captions_text();
    test_fashion_real();
    test_emoji();
    rm_rf(tmpdir);
    return check_summary("test_text_data");
}
