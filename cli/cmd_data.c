/* cmd_data.c - diffuse data: build captioned image folders (fashion-captions, emoji) and show
 * what a captioned data set holds; build the molecule set (molecules). */
#include "common.h"
#include "progress.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *data_help =
    "usage: diffuse data build NAME --out DIR [options]\n"
    "       diffuse data build molecules --out DIR [--sources LIST] [--limit N] [--root DIR]\n"
    "       diffuse data show DIR|NAME [options]\n"
    "\n"
    "Captioned images for text-to-image training (docs/TEXT_TO_IMAGE.md), and a QM9-like set\n"
    "of small molecules for 3-D molecule generation.\n"
    "\n"
    "build writes DIR/000000.png, ... and DIR/metadata.jsonl, one line per image:\n"
    "{\"file_name\": \"000000.png\", \"text\": CAPTION, ...} (the Hugging Face imagefolder\n"
    "layout), each file written atomically. DIR must be new or empty. NAME is\n"
    "  fashion-captions   Fashion-MNIST (Debian's dataset-fashion-mnist), 28x28 gray, captions\n"
    "                     such as \"a small dark sweater\" from the class, a synonym and the\n"
    "                     brightness and size measured from the pixels\n"
    "  emoji              Noto Color Emoji (fonts-noto-color-emoji), 32x32 RGB on white, with\n"
    "                     the names of emoji-test.txt (unicode-data): \"red apple, food drink,\n"
    "                     food fruit\"; skin-tone variants left out unless --skin-tones\n"
    "  molecules          molecules from four Debian packages with H, C, N, O, F only, at most\n"
    "                     9 heavy atoms, no charges, one fragment, explicit hydrogens and 3-D\n"
    "                     coordinates, each bond graph once (the first source wins):\n"
    "                       chemical-structures  chemical-structures-data, CML files\n"
    "                       avogadro             libavogadro-data, CML files\n"
    "                       g2                   python3-ase, the G2 set (closed shells only)\n"
    "                       nci                  rdkit-data, the SMILES of NCI's first_5K.smi\n"
    "                                            made 3-D by obabel --gen3d (openbabel; minutes,\n"
    "                                            and the coordinates differ between builds)\n"
    "                     It writes DIR/molecules.xyz, DIR/molecules.sdf (with bonds) and\n"
    "                     DIR/sources.json, and prints the counts per source on stdout.\n"
    "\n"
    "show prints the counts, the vocabulary size of a word tokenizer built from the captions\n"
    "and the first captions of a folder (metadata.jsonl, or NAME.txt beside each NAME.png) or of\n"
    "a builder (made in memory, nothing written).\n"
    "\n"
    "options:\n"
    "  --out DIR           build: the folder to write (created if missing)\n"
    "  --split S           fashion-captions: train (60000 images, default) or test (10000)\n"
    "  --limit N           only the first N images (molecules: files, entries or SMILES lines\n"
    "                      per source)\n"
    "  --sources LIST      molecules: the sources to read, comma-separated (default all four)\n"
    "  --root DIR          molecules: read the packages' files under DIR instead of / (a copy)\n"
    "  --seed S            fashion-captions: seed of the synonym choice (default 0)\n"
    "  --size N            image height = width (default: 28 fashion, 32 emoji; folders: the\n"
    "                      first image's)\n"
    "  --channels N        1 or 3 (default: 1 fashion, 3 emoji; folders: the first image's)\n"
    "  --skin-tones        emoji: keep the skin-tone variants too\n"
    "  --n N               show: how many captions to print (default 8)\n"
    "  --max-vocab N       show: cap the vocabulary (default: every word)\n"
    "  --encode TEXT       show: tokenize TEXT with that vocabulary and print the ids\n"
    "  --grid FILE.png     show: also write the first --n images (at most 256) as a grid\n";

/* The library's progress callback of a build or a load: the progress line on a terminal,
 * nothing elsewhere (the builders take seconds; their closing lines say what was made). The
 * first call of a phase starts its clock. */
static void bar(void *user, long done, long total) {
    cli_progress *p = user;
    if (p->total != total) cli_progress_start(p, p->what, total, 0, 0);
    double el = cli_now() - p->t0;
    cli_progress_update(p, done, CLI_ETA_AUTO, "%.0f/s", el > 0 ? done / el : 0.0);
    if (done >= total) cli_progress_end(p);
}

/* 1 if dir does not exist or has no entries besides . and .. */
static int dir_is_new_or_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

typedef struct {
    char **seen; /* distinct unknown words, for one warning line */
    int n, cap;
} unknown_words;

static void on_unknown(void *user, const char *w) {
    unknown_words *u = user;
    for (int i = 0; i < u->n; i++)
        if (!strcmp(u->seen[i], w)) return;
    if (u->n == u->cap) {
        int cap = u->cap ? 2 * u->cap : 8;
        char **s = realloc(u->seen, (size_t)cap * sizeof *s);
        if (!s) return;
        u->seen = s;
        u->cap = cap;
    }
    if ((u->seen[u->n] = strdup(w))) u->n++;
}

static int show(const dfs_caption_set *cs, const char *src, long nshow, long max_vocab,
                const char *encode, const char *grid) {
    const dfs_dataset *d = &cs->images;
    printf("data:         %s\n", src);
    printf("images:       %d (%d x %d x %d)%s\n", d->n, d->c, d->h, d->w,
           d->labels ? ", labelled" : "");
    if (cs->skipped || cs->failed)
        printf("emoji:        %d skin-tone variants left out, %d failed to render\n", cs->skipped,
               cs->failed);
    dfs_tokenizer_config tc;
    dfs_tokenizer_config_default(&tc);
    tc.max_vocab = (int)max_vocab;
    dfs_tokenizer *tok;
    dfs_status s = dfs_tokenizer_build(&tok, (const char *const *)cs->captions, d->n, &tc);
    if (s) return cli_fail_status(s);
    long words = 0, minw = -1, maxw = 0;
    size_t cap = 1;
    for (int i = 0; i < d->n; i++) {
        size_t l = strlen(cs->captions[i]) + 1;
        if (l > cap) cap = l;
    }
    char *buf = malloc(cap);
    if (!buf) {
        dfs_tokenizer_free(tok);
        return cli_fail("out of memory");
    }
    for (int i = 0; i < d->n; i++) {
        long nw = dfs_text_words(cs->captions[i], buf, cap, NULL, 0);
        words += nw;
        if (minw < 0 || nw < minw) minw = nw;
        if (nw > maxw) maxw = nw;
    }
    free(buf);
    printf("vocabulary:   %d tokens (4 special + %d words)%s\n", dfs_tokenizer_vocab_size(tok),
           dfs_tokenizer_vocab_size(tok) - DFS_TOK_SPECIALS, max_vocab ? " (capped by --max-vocab)" : "");
    printf("words:        %ld..%ld per caption, mean %.2f\n", minw, maxw, d->n ? (double)words / d->n : 0.0);
    printf("most common: ");
    for (int i = DFS_TOK_SPECIALS; i < dfs_tokenizer_vocab_size(tok) && i < DFS_TOK_SPECIALS + 12; i++)
        printf(" %s", dfs_tokenizer_word(tok, i));
    printf("\n");
    for (int i = 0; i < d->n && i < nshow; i++)
        printf("  %-8d %-22s %s\n", i, cs->names ? cs->names[i] : "", cs->captions[i]);
    int rc = 0;
    if (encode) {
        int L = dfs_tokenizer_max_len(tok);
        int *ids = malloc((size_t)L * sizeof(int));
        unknown_words u = {0};
        dfs_encode_info info;
        if (!ids) rc = cli_fail("out of memory");
        else if ((s = dfs_tokenizer_encode(tok, encode, L, ids, NULL, &info, on_unknown, &u)))
            rc = cli_fail_status(s);
        else {
            if (u.n) {
                fprintf(stderr, "diffuse: warning: unknown word%s (encoded as <unk>):", u.n > 1 ? "s" : "");
                for (int i = 0; i < u.n; i++) fprintf(stderr, " '%s'", u.seen[i]);
                fputc('\n', stderr);
            }
            if (info.truncated)
                fprintf(stderr, "diffuse: warning: %d word%s past the %d-token limit dropped\n",
                        info.truncated, info.truncated > 1 ? "s" : "", L);
            printf("encoded:     ");
            for (int i = 0; i < L; i++) printf(" %d", ids[i]);
            char *back = dfs_tokenizer_decode(tok, ids, L);
            printf("\ndecoded:      %s\n", back ? back : "");
            free(back);
        }
        for (int i = 0; i < u.n; i++) free(u.seen[i]);
        free(u.seen);
        free(ids);
    }
    dfs_tokenizer_free(tok);
    if (!rc && grid) {
        int n = (int)(nshow < d->n ? nshow : d->n);
        if (n > 256) n = 256;
        size_t dim = (size_t)d->c * d->h * d->w;
        float *x = malloc((size_t)n * dim * sizeof(float));
        if (!x) return cli_fail("out of memory for the grid");
        dfs_dataset_images_f32(d, 0, n, x);
        s = dfs_png_write_grid(grid, x, n, d->c, d->h, d->w, n < 8 ? n : 8);
        free(x);
        if (s) return cli_fail_status(s);
        fprintf(stderr, "wrote %s: the first %d images\n", grid, n);
    }
    return rc;
}

/* The sources of --sources LIST ("g2,nci") as a mask, or -1 after the message. */
static long parse_sources(const char *list) {
    unsigned mask = 0;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        int s = dfs_molsrc_find(p, n);
        if (s < 0) {
            char names[128] = "";
            for (int k = 0; k < DFS_MOLSRC_COUNT; k++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         k ? ", " : "", dfs_molsrc_names[k]);
            cli_fail("--sources: unknown source '%.*s' (%s)", (int)n, p, names);
            return -1;
        }
        mask |= 1u << s;
        if (!p[n]) break;
        p += n + 1;
    }
    return mask;
}

/* diffuse data build molecules: the set built, written, and its counts as a table. */
static int build_molecules(const char *out, long limit, unsigned sources, const char *root) {
    dfs_moldata_options o;
    dfs_moldata_options_default(&o);
    o.sources = sources;
    o.limit = (int)limit;
    o.root = root;
    cli_progress b;
    cli_progress_start(&b, "obabel --gen3d", -1, 0, 0);
    o.progress = bar;
    o.progress_user = &b;
    dfs_moldata d;
    double t0 = cli_now();
    dfs_status s = dfs_moldata_build(&d, &o);
    cli_progress_end(&b);
    if (s) return cli_fail_status(s);
    if ((s = dfs_moldata_write(&d, out))) {
        dfs_moldata_free(&d);
        return cli_fail_status(s);
    }
    printf("%-20s %6s %9s %10s %6s %8s  %s\n", "source", "read", "filtered", "duplicate", "kept",
           "time", "left out by the filter");
    dfs_molsrc_count tot = {0};
    for (int k = 0; k < DFS_MOLSRC_COUNT; k++) {
        if (!(sources >> k & 1)) continue;
        const dfs_molsrc_count *c = &d.count[k];
        printf("%-20s %6d %9d %10d %6d %6.1f s ", dfs_molsrc_names[k], c->read, c->filtered,
               c->dropped[DFS_MOLDROP_DUPLICATE], c->kept, c->seconds);
        int any = 0;
        for (int r = 1; r < DFS_MOLDROP_DUPLICATE; r++)
            if (c->dropped[r]) printf("%s %s %d", any++ ? "," : "", dfs_moldrop_names[r], c->dropped[r]);
        printf("%s\n", any ? "" : " none");
        tot.read += c->read, tot.filtered += c->filtered, tot.kept += c->kept;
        tot.dropped[DFS_MOLDROP_DUPLICATE] += c->dropped[DFS_MOLDROP_DUPLICATE];
    }
    printf("%-20s %6d %9d %10d %6d %6.1f s\n", "total", tot.read, tot.filtered,
           tot.dropped[DFS_MOLDROP_DUPLICATE], tot.kept, cli_now() - t0);
    fprintf(stderr, "wrote %s: %d molecules in molecules.xyz and molecules.sdf, counts in "
            "sources.json (%.1f s)\n", out, d.mols.n, cli_now() - t0);
    if (d.obabel_version)
        fprintf(stderr, "nci: 3-D coordinates by %s, --gen3d %s (seeded from the clock: they "
                "differ between builds)\n", d.obabel_version, d.gen3d);
    dfs_moldata_free(&d);
    return 0;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) return cli_fail("data: give 'build NAME --out DIR' or 'show DIR|NAME' (see diffuse data --help)");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(data_help, stdout);
        return 0;
    }
    int build = !strcmp(sub, "build");
    if (!build && strcmp(sub, "show")) return cli_fail("data: unknown subcommand '%s' (build or show)", sub);
    const char *out = NULL, *split = NULL, *encode = NULL, *grid = NULL, *sources = NULL,
               *root = NULL;
    long limit = 0, size = 0, channels = 0, nshow = 8, max_vocab = 0;
    uint64_t seed = 0;
    int skin = 0, set_seed = 0;
    enum { O_OUT = 256, O_SPLIT, O_LIMIT, O_SEED, O_SIZE, O_CH, O_SKIN, O_N, O_VOCAB, O_ENC, O_GRID,
           O_SOURCES, O_ROOT };
    static const struct option opts[] = {
        {"out", required_argument, 0, O_OUT},       {"split", required_argument, 0, O_SPLIT},
        {"limit", required_argument, 0, O_LIMIT},   {"seed", required_argument, 0, O_SEED},
        {"size", required_argument, 0, O_SIZE},     {"channels", required_argument, 0, O_CH},
        {"skin-tones", no_argument, 0, O_SKIN},     {"n", required_argument, 0, O_N},
        {"max-vocab", required_argument, 0, O_VOCAB}, {"encode", required_argument, 0, O_ENC},
        {"grid", required_argument, 0, O_GRID},     {"sources", required_argument, 0, O_SOURCES},
        {"root", required_argument, 0, O_ROOT},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int o;
    optind = 1; // argv[0] is the subcommand
    opterr = 0;
    while ((o = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h': fputs(data_help, stdout); return 0;
        case O_OUT: out = optarg; break;
        case O_SPLIT: split = optarg; break;
        case O_ENC: encode = optarg; break;
        case O_GRID: grid = optarg; break;
        case O_SOURCES: sources = optarg; break;
        case O_ROOT: root = optarg; break;
        case O_SKIN: skin = 1; break;
        case O_LIMIT: if (cli_int("--limit", optarg, 1, 1000000000, &limit)) return 2; break;
        case O_SIZE: if (cli_int("--size", optarg, 1, 4096, &size)) return 2; break;
        case O_CH:
            if (strcmp(optarg, "1") && strcmp(optarg, "3")) return cli_fail("--channels must be 1 or 3, not '%s'", optarg);
            channels = optarg[0] - '0';
            break;
        case O_N: if (cli_int("--n", optarg, 0, 1000000000, &nshow)) return 2; break;
        case O_VOCAB: if (cli_int("--max-vocab", optarg, DFS_TOK_SPECIALS + 1, 1000000, &max_vocab)) return 2; break;
        case O_SEED: if (cli_u64("--seed", optarg, &seed)) return 2; set_seed = 1; break;
        default: {
            char cmd[32];
            snprintf(cmd, sizeof cmd, "data %s", sub);
            return cli_bad_option(cmd, argv + 1); /* getopt ran over argv + 1 */
        }
        }
    }
    int nargs = argc - 1 - optind;
    if (nargs < 1) return cli_fail("data %s: give %s", sub, build ? "a builder: fashion-captions, emoji or molecules" : "a folder or a builder name");
    if (nargs > 1) return cli_fail("data %s: unexpected argument '%s'", sub, argv[1 + optind + 1]);
    const char *src = argv[1 + optind];

    int is_fashion = !strcmp(src, "fashion-captions") || !strcmp(src, "fashion-captions-test");
    int is_emoji = !strcmp(src, "emoji");
    int is_mol = !strcmp(src, "molecules");
    if (build && !is_fashion && !is_emoji && !is_mol)
        return cli_fail("data build: unknown builder '%s' (fashion-captions, emoji or molecules)", src);
    if (!build && is_mol)
        return cli_fail("data show: molecules is built, not shown (its counts are in DIR/sources.json)");
    if ((sources || root) && !is_mol) return cli_fail("--sources and --root apply to molecules only");
    if (is_mol && (split || set_seed || skin || size || channels))
        return cli_fail("data build molecules: --split, --seed, --skin-tones, --size and --channels "
                        "are for the image builders");
    if (build && !out) return cli_fail("data build: --out DIR is required");
    if (!build && (out)) return cli_fail("data show: --out is for build (show writes only --grid)");
    if (build && (encode || grid || max_vocab))
        return cli_fail("data build: --encode, --grid and --max-vocab are for show");
    if (split && !is_fashion) return cli_fail("--split applies to fashion-captions only");
    if (split && strcmp(split, "train") && strcmp(split, "test"))
        return cli_fail("--split must be train or test, not '%s'", split);
    if (set_seed && !is_fashion) return cli_fail("--seed applies to fashion-captions only");
    if (skin && !is_emoji) return cli_fail("--skin-tones applies to emoji only");
    if (grid && !ends_with(grid, ".png")) return cli_fail("--grid must name a .png file, not '%s'", grid);
    if (grid && nshow == 0) return cli_fail("data show: --grid draws the first --n images; --n 0 draws none");
    if (build && !*out) return cli_fail("data build: --out is empty");
    if (build && !dir_is_new_or_empty(out))
        return cli_fail("data build: %s exists and is not empty (choose a new folder)", out);
    if (is_mol) {
        long mask = sources ? parse_sources(sources) : (1L << DFS_MOLSRC_COUNT) - 1;
        if (mask < 0) return 2;
        if (root && !*root) return cli_fail("--root is empty");
        return build_molecules(out, limit, (unsigned)mask, root);
    }

    dfs_caption_options co;
    dfs_caption_options_default(&co);
    co.size = (int)size;
    co.channels = (int)channels;
    co.limit = (int)limit;
    co.seed = seed;
    co.skin_tones = skin;
    co.test_split = split && !strcmp(split, "test");
    cli_progress b;
    cli_progress_start(&b, is_emoji ? "rendering" : is_fashion ? "captioning" : "reading", -1, 0, 0);
    co.progress = bar;
    co.progress_user = &b;
    dfs_caption_set cs;
    double t0 = cli_now();
    dfs_status s = dfs_captions_load(&cs, src, &co);
    cli_progress_end(&b);
    if (s) return cli_fail_status(s);
    double t_load = cli_now() - t0;
    int rc = 0;
    if (build) {
        cli_progress_start(&b, "writing", -1, 0, 0);
        const double t_write = cli_now();
        s = dfs_captions_write_dir(&cs, out, bar, &b);
        cli_progress_end(&b);
        if (s) rc = cli_fail_status(s);
        else {
            fprintf(stderr, "wrote %s: %d images (%d x %d x %d) and metadata.jsonl in %.1f s (%.1f s to make, "
                    "%.1f s to write)\n", out, cs.images.n, cs.images.c, cs.images.h, cs.images.w,
                    cli_now() - t0, t_load, cli_now() - t_write);
            if (is_emoji)
                fprintf(stderr, "emoji: %d rendered, %d failed, %d skin-tone variants left out\n",
                        cs.images.n, cs.failed, cs.skipped);
        }
    } else {
        rc = show(&cs, src, nshow, max_vocab, encode, grid);
    }
    dfs_caption_set_free(&cs);
    return rc;
}
