/* diffuse/data.h - captioned images for text-to-image models: folders, fashion-captions, emoji. Part of diffuse.h. */
#ifndef DIFFUSE_DATA_H
#define DIFFUSE_DATA_H

#include "diffuse/nn.h"
#include "diffuse/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Captioned images: the data of text-to-image models (docs/TEXT_TO_IMAGE.md; the word        */
/* tokenizer is in diffuse/nn.h). src/data/captions.c (folders, loading by name),              */
/* src/data/fashion_text.c, src/data/emoji.c                                                   */
/* ------------------------------------------------------------------------------------------ */

/* n images, each with one caption. images holds the pixels like every other data set (NCHW,
 * 0..255; training maps them to [-1, 1] by p / 127.5 - 1, see dfs_dataset_images_f32);
 * images.labels is the class for fashion-captions, a folder's integer "label" column when
 * every line has one, else NULL. */
typedef struct {
    dfs_dataset images;
    char **captions;  /* n UTF-8 captions (owned) */
    char **names;     /* n names: file names relative to a folder, or the emoji's code points
                         ("1F34E") / "fashion-mnist-train:INDEX" ("-test:" for the test
                         split) for builders (owned) */
    int skipped;      /* emoji: skin-tone variants left out (see skin_tones) */
    int failed;       /* emoji: emoji left out because they did not render as one glyph */
} dfs_caption_set;


typedef struct {
    int size;           /* output height = width; 0: natural (fashion 28, emoji 32, folders:
                           the first image's, which must then be square) */
    int channels;       /* 1 or 3; 0: natural (fashion 1, emoji 3, folders: the first image's) */
    int test_split;     /* fashion-captions: 0 the 60000 training images, 1 the 10000 test ones */
    int limit;          /* keep the first `limit` items (0 = all); builders make only those */
    uint64_t seed;      /* fashion-captions: picks each image's synonym (with its index) */
    int skin_tones;     /* emoji: 1 keeps the skin-tone variants (default 0 leaves them out) */
    const char *emoji_font; /* NULL: /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf */
    const char *emoji_test; /* NULL: /usr/share/unicode/emoji/emoji-test.txt */
    dfs_progress_fn progress; /* may be NULL */
    void *progress_user;
} dfs_caption_options;

void dfs_caption_options_default(dfs_caption_options *o);
/* 1 if name is a built-in caption builder: "fashion-captions", "fashion-captions-test" (the
 * test split), "emoji". */
int dfs_captions_is_builder(const char *name);
/* Load a builder by name (built in memory, nothing written) or a captioned folder. o may be
 * NULL (defaults). On error *cs is zeroed (untouched for DFS_ERR_ARG) and the message names the
 * file, line or emoji. */
dfs_status dfs_captions_load(dfs_caption_set *cs, const char *spec, const dfs_caption_options *o);
/* A folder of PNGs with captions: DIR/metadata.jsonl, one JSON object per line with string
 * "file_name" (a PNG path relative to DIR) and string "text" (Hugging Face imagefolder), in
 * line order; or, without metadata.jsonl, every DIR/NAME.png (sorted) with DIR/NAME.txt
 * beside it. Images are converted to size/channels as dfs_load_png_dir does. Errors: empty
 * folder, bad JSON line N, missing file, image without caption, non-PNG image. */
dfs_status dfs_captions_load_dir(dfs_caption_set *cs, const char *dir,
                                 const dfs_caption_options *o);
/* Fashion-MNIST with captions (dfs_fashion_caption) and labels. */
dfs_status dfs_captions_fashion(dfs_caption_set *cs, const dfs_caption_options *o);
/* Noto Color Emoji rendered at size x size (RGB unless channels is 1) with names from
 * emoji-test.txt; emoji that do not render are left out and counted in cs->failed (one
 * DFS_LOG_WARN names the first few). */
dfs_status dfs_captions_emoji(dfs_caption_set *cs, const dfs_caption_options *o);
/* Write cs as a folder readable by dfs_captions_load_dir: DIR/NNNNNN.png (6 digits, index
 * order) and DIR/metadata.jsonl ({"file_name", "text", then "label" when labelled, "name"}).
 * Each image is written to a temporary name and renamed into place, the file system is synced
 * once, and metadata.jsonl comes last (dfs_write_atomic): a folder with metadata.jsonl is
 * complete. DIR is created if missing; existing files of the same names are replaced. */
dfs_status dfs_captions_write_dir(const dfs_caption_set *cs, const char *dir,
                                  dfs_progress_fn progress, void *user);
void dfs_caption_set_free(dfs_caption_set *cs);

/* ---- fashion-captions: Fashion-MNIST classes, synonyms and measured attributes ----------- */

/* Brightness and size, each split at per-class terciles of the training images (tables in
 * src/data/fashion_text.c and docs/TEXT_TO_IMAGE.md). The middle third gets no word. */
typedef enum { DFS_TONE_DARK, DFS_TONE_MID, DFS_TONE_LIGHT, DFS_TONE_COUNT } dfs_fashion_tone;
typedef enum { DFS_SIZE_SMALL, DFS_SIZE_MID, DFS_SIZE_LARGE, DFS_SIZE_COUNT } dfs_fashion_size;
extern const char *const dfs_fashion_tone_words[DFS_TONE_COUNT]; /* "dark", "", "light" */
extern const char *const dfs_fashion_size_words[DFS_SIZE_COUNT]; /* "small", "", "large" */
/* A pixel belongs to the garment when its value is > this (of 255). */
#define DFS_FASHION_FG 32

typedef struct {
    float brightness;      /* mean value (0..255) of the garment pixels; 0 if none */
    float coverage;        /* garment pixels / all pixels */
    dfs_fashion_tone tone; /* brightness against the class's terciles */
    dfs_fashion_size size; /* coverage against the class's terciles */
} dfs_fashion_attr;

/* Measure a gray image (h, w) of 8-bit pixels for class cls (0..9; -1 uses the terciles of all
 * classes pooled). */
void dfs_fashion_measure(const uint8_t *gray, int h, int w, int cls, dfs_fashion_attr *a);
/* The same for a float image in [-1, 1] (a model's output), quantised as a PNG would be:
 * round((clamp(x, -1, 1) + 1) * 127.5). */
void dfs_fashion_measure_f32(const float *gray, int h, int w, int cls, dfs_fashion_attr *a);
/* The synonyms of class cls (0..9), e.g. {"t-shirt", "tee", "top"}: count, and the k-th. */
int dfs_fashion_synonym_count(int cls);
const char *dfs_fashion_synonym(int cls, int k);
/* Caption "a|an [small|large] [dark|light] SYNONYM" (plural synonyms take no article) with the
 * synonym picked from (seed, index), into buf (cap >= 64 is always enough). */
void dfs_fashion_caption(char *buf, size_t cap, int cls, const dfs_fashion_attr *a,
                         uint64_t seed, long index);
/* Read a caption or prompt back: *cls the class named first (longest phrase wins: "ankle boot"
 * before "boot", "t-shirt" before "shirt"; simple plurals accepted) or -1; *tone and *size the
 * attribute named (DFS_TONE_DARK/LIGHT, DFS_SIZE_SMALL/LARGE) or -1. Returns *cls. */
int dfs_fashion_parse(const char *text, int *cls, int *tone, int *size);

/* ---- emoji: Noto Color Emoji through HarfBuzz and FreeType --------------------------------- */

typedef struct {
    char *utf8;       /* the sequence as UTF-8 */
    char *codepoints; /* "1F3F3 FE0F 200D 1F308" as in emoji-test.txt */
    char *name;       /* "rainbow flag" */
    char *group;      /* "Flags" */
    char *subgroup;   /* "flag" */
    int skin_tone;    /* 1 if it has a skin-tone modifier (U+1F3FB..U+1F3FF) */
} dfs_emoji_entry;

/* The fully-qualified lines of emoji-test.txt (NULL: /usr/share/unicode/emoji/emoji-test.txt)
 * in file order (skin-tone variants, those with U+1F3FB..U+1F3FF, only with skin_tones). *list
 * malloc'ed; free with dfs_emoji_list_free. */
dfs_status dfs_emoji_list(const char *emoji_test, int skin_tones, dfs_emoji_entry **list, int *n);
void dfs_emoji_list_free(dfs_emoji_entry *list, int n);
/* Caption: "NAME, GROUP WORDS, SUBGROUP WORDS", lowercased, Latin-1 letters folded to ASCII
 * ("curaçao" -> "curacao"), curly apostrophes made straight ("o’clock" -> "o'clock"), "&" and
 * double quotes dropped, keycap symbols spelled ("keycap: number sign"), hyphens of the group
 * and subgroup as spaces: "red apple, food drink, food fruit". Into buf; returns the length
 * (truncated at cap - 1). */
size_t dfs_emoji_caption(const dfs_emoji_entry *e, char *buf, size_t cap);

typedef struct dfs_emoji_font dfs_emoji_font;
/* Open a colour bitmap (CBDT) font at its first fixed size. NULL path: Noto's. */
dfs_status dfs_emoji_font_open(dfs_emoji_font **f, const char *path);
void dfs_emoji_font_close(dfs_emoji_font *f);
/* Shape utf8 with HarfBuzz; it must become exactly one glyph (not .notdef), which is loaded
 * in colour (FT_LOAD_COLOR, premultiplied BGRA), composited on white (c + 255 - a), centred
 * in a square and resized as dfs_image_resize_u8 does (area averaging when shrinking) to out
 * (3, size, size), size 1..4096. DFS_ERR_FORMAT if it does not become one colour glyph. */
dfs_status dfs_emoji_render(dfs_emoji_font *f, const char *utf8, int size, uint8_t *out);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_DATA_H */
