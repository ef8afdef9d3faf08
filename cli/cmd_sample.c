/* cmd_sample.c - diffuse sample: any of the samplers with classifier-free guidance (the options
 * shared with diffuse eval, cli/sampling.c), to a PNG grid or a .npy array, with an optional
 * reverse-diffusion trajectory picture; for text models from written prompts, with a negative
 * prompt; inpainting (RePaint) and SDEdit from real images. */
#include "common.h"
#include "sampling.h"
#include "t2i.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *sample_help =
    "usage: diffuse sample --model CKPT --out FILE.png|FILE.npy [options]\n"
    "       diffuse sample --model CKPT --prompt TEXT [--negative-prompt TEXT] --guidance W\n"
    "                      --out FILE.png|FILE.npy [options]\n"
    "\n"
    "Draw images from a trained model, starting from Gaussian noise and running the reverse\n"
    "process. Uses the checkpoint's EMA weights when it has them. A progress line counts the\n"
    "network evaluations (on a terminal; elsewhere a line at each tenth of them).\n"
    "\n"
    "  --model CKPT        checkpoint (.safetensors) written by diffuse train or export\n"
    "  --out FILE          FILE.png: a grid; FILE.npy: uint8 array N x H x W x C, and for a\n"
    "                      class model the labels in FILE.labels.npy (for prompts: the\n"
    "                      prompt's index, 0-based, in the order given)\n"
    "  --n N               number of images (default 64); with --prompts, per prompt (default 8)\n"
    "  --class K|all       class to draw (0..classes-1); 'all' cycles through the classes\n"
    "                      (default all for a class model)\n"
    "  --seed S            random seed (default 0)\n"
    "  --threads N         threads (default 2)\n"
    "  --cols N            grid columns (default: the classes of a class model of up to 16\n"
    "                      classes, else 8; with --prompts the rows are the prompts and\n"
    "                      --cols is not used)\n"
    "  --trajectory FILE   also write a PNG whose rows are samples and whose columns are\n"
    "                      x_t at evenly spaced steps from pure noise to the result\n"
    "  --scale N           enlarge each image N times in the PNGs (nearest; default 1)\n"
    "  --class-names LIST  comma-separated names written over the columns of a grid with one\n"
    "                      column per class (default: the names the model was trained with)\n"
    "  --no-labels         no class names over the grid\n";

static const char *sample_help_tail =
    "text models (trained with diffuse train --text):\n"
    "  --prompt TEXT       what to draw, e.g. \"a dark ankle boot\"; words the model's tokenizer\n"
    "                      does not know become <unk> and are named in one warning. Without a\n"
    "                      prompt a text model draws unconditional samples (the empty caption)\n"
    "  --prompts FILE      one prompt per line (blank lines skipped): N samples of each; in the\n"
    "                      PNG one row per prompt, the prompt written on its left\n"
    "  --negative-prompt TEXT  guide away from TEXT: it replaces the empty caption as the\n"
    "                      unconditional half of guidance (needs --guidance other than 1)\n"
    "image to image (docs/DIFFUSION.md):\n"
    "  --inpaint SRC       fill in part of real images: the pixels outside --mask are held\n"
    "                      to the image's (RePaint, Lugmayr et al. 2022) and come back\n"
    "                      unchanged. SRC is a PNG, or fashion-mnist, fashion-mnist-test, a\n"
    "                      PNG folder or an IDX file with --index; images are converted to\n"
    "                      the model's channels and size. --n samples per image\n"
    "  --mask MASK         what to fill: a PNG (white = fill, black = keep; resized to the\n"
    "                      model's size) or left, right, top, bottom or center (a half, or\n"
    "                      the middle half of each side)\n"
    "  --resample R        RePaint: go over each stretch of --jump steps R times, going back\n"
    "                      by the forward process in between (default 5; 1 = replacement only)\n"
    "  --jump J            RePaint's jump length in steps visited (default 5)\n"
    "  --init SRC          SDEdit (Meng et al. 2022): start from SRC's images noised part of\n"
    "                      the way instead of from pure noise; SRC as for --inpaint\n"
    "  --strength S        share of the steps run from the noised image, in (0, 1] (default\n"
    "                      0.6): small keeps the image, 1 nearly ignores it\n"
    "  --index LIST        which images of a data set, comma-separated (default 0)\n"
    "  With --inpaint or --init a class model draws unconditionally unless --class K is\n"
    "  given, and a PNG grid has one row per image: the image, the masked image (--inpaint),\n"
    "  then the samples.\n";

/* Class names from the checkpoint's training record ("class_names"), or from a comma-separated
 * list; NULL unless there are exactly ncls of them. The array and strings are malloc'ed. */
static char **class_names(const char *tjson, const char *list, int ncls) {
    char **names = calloc((size_t)ncls + 1, sizeof(char *));
    int k = 0;
    if (!names) return NULL;
    if (list) {
        const char *p = list;
        while (k <= ncls) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            names[k++] = strndup(p, len);
            if (!e) break;
            p = e + 1;
        }
    } else if (tjson) {
        cJSON *o = cJSON_Parse(tjson);
        cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, "class_names") : NULL;
        cJSON *it;
        cJSON_ArrayForEach(it, a) {
            if (k > ncls) break;
            names[k++] = strdup(cJSON_IsString(it) ? it->valuestring : "");
        }
        cJSON_Delete(o);
    }
    if (k != ncls) {
        for (int i = 0; i < k; i++) free(names[i]);
        free(names);
        return NULL;
    }
    return names;
}

/* The non-blank lines of a prompt file (trailing white space and \r removed), malloc'ed; *n of
 * them. 0 with a one-line message on errors (unreadable, no prompts). */
static int read_prompts(const char *path, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    FILE *f;
    if (dfs_open_read(path, &f)) return cli_fail("sample: cannot read --prompts: %s", dfs_last_error());
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int cnt = 0, room = 0, ok = 1;
    long bad = 0; /* the first line with a NUL byte or that is not UTF-8 */
    char **list = NULL;
    long lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)len != strlen(line) || dfs_utf8_invalid(line) >= 0) {
            bad = lineno;
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) continue;
        if (cnt == room) {
            room = room ? 2 * room : 16;
            char **l2 = realloc(list, (size_t)room * sizeof *l2);
            if (!l2) {
                ok = 0;
                break;
            }
            list = l2;
        }
        if (!(list[cnt] = strdup(p))) {
            ok = 0;
            break;
        }
        cnt++;
    }
    int err = ferror(f);
    free(line);
    fclose(f);
    if (!ok || err || cnt == 0 || bad) {
        for (int i = 0; i < cnt; i++) free(list[i]);
        free(list);
        if (!ok) return cli_fail("sample: out of memory reading %s", path);
        if (bad) return cli_fail("sample: %s: line %ld is not UTF-8 text (or has a NUL byte)", path, bad);
        if (err) return cli_fail("sample: cannot read --prompts %s", path);
        return cli_fail("sample: %s has no prompts (every line is blank)", path);
    }
    *out = list;
    *n = cnt;
    return 0;
}

#define PROMPT_COL_MAX 480 /* the widest column of prompts; longer prompts are cut at the right */

/* The size of write_prompt_grid's picture (P rows of per images of S x S enlarged scale times,
 * a column of prompts LW wide): DFS_OK if it fits a PNG, else DFS_ERR_ARG with the error set. */
static dfs_status prompt_grid_size(long long P, long long per, int S, int scale, int LW, long long *gw, long long *gh) {
    const long long B = 2, cell = (long long)S * scale + B;
    *gw = LW + per * cell + B;
    *gh = P * cell + B;
    if (*gw > 65535 || *gh > 65535) {
        dfs_set_error("a grid of %lld x %lld pixels is too large for a PNG (at most 65535 a side): fewer samples "
                      "or a smaller --scale", *gw, *gh);
        return DFS_ERR_ARG;
    }
    return DFS_OK;
}

/* A grid with one row per prompt: the prompt written on the left (DejaVu Sans, black on white),
 * then its `per` samples, each enlarged `scale` times, 2-pixel grey borders as in
 * dfs_png_write_grid. Without the font, the grid alone (and a warning). */
static dfs_status write_prompt_grid(const char *path, const float *x, int P, int per, int C, int S, int scale,
                                    char *const *prompts) {
    const int B = 2, h = S * scale, w = S * scale;
    int px = h / 2 < 9 ? 9 : h / 2 > 16 ? 16 : h / 2;
    uint8_t **cov = calloc((size_t)P, sizeof *cov);
    int *cw = calloc((size_t)P, sizeof(int)), *ch = calloc((size_t)P, sizeof(int));
    if (!cov || !cw || !ch) {
        free(cov), free(cw), free(ch);
        dfs_set_error("out of memory for the prompt grid");
        return DFS_ERR_NOMEM;
    }
    int LW = 0, fonts = 1;
    for (int p = 0; p < P && fonts; p++) {
        if (dfs_text_render(DFS_DEFAULT_FONT, prompts[p], px, &cov[p], &cw[p], &ch[p]) != DFS_OK) {
            fprintf(stderr, "diffuse: warning: no prompts on the grid: %s\n", dfs_last_error());
            fonts = 0;
        } else if (cw[p] + 8 > LW) {
            LW = cw[p] + 8;
        }
    }
    if (!fonts) LW = 0;
    if (LW > PROMPT_COL_MAX) LW = PROMPT_COL_MAX;
    long long gw, gh;
    uint8_t *g = NULL;
    dfs_status st = prompt_grid_size(P, per, S, scale, LW, &gw, &gh);
    if (st == DFS_OK && !(g = malloc((size_t)gw * (size_t)gh * (size_t)C))) {
        dfs_set_error("out of memory for the prompt grid");
        st = DFS_ERR_NOMEM;
    }
    if (st == DFS_OK) {
        memset(g, 128, (size_t)gw * (size_t)gh * (size_t)C);
        for (long long y = 0; y < gh; y++) memset(g + (size_t)y * gw * C, 255, (size_t)LW * C); /* paper */
        const size_t plane = (size_t)S * S;
        for (int p = 0; p < P; p++) {
            const long long y0 = (long long)p * (h + B) + B;
            if (fonts && cov[p]) { /* ink = coverage, clipped to the row and the margin */
                const int top = ch[p] < h ? (h - ch[p]) / 2 : 0;
                for (int yy = 0; yy < ch[p] && yy < h; yy++)
                    for (int xx = 0; xx < cw[p] && 4 + xx < LW; xx++)
                        for (int k = 0; k < C; k++)
                            g[((size_t)(y0 + top + yy) * gw + 4 + xx) * C + k] = (uint8_t)(255 - cov[p][(size_t)yy * cw[p] + xx]);
            }
            for (int j = 0; j < per; j++) {
                const float *img = x + (size_t)(p * per + j) * C * plane; /* (C, S, S) */
                const long long x0 = LW + (long long)j * (w + B) + B;
                for (int yy = 0; yy < h; yy++)
                    for (int xx = 0; xx < w; xx++)
                        for (int k = 0; k < C; k++) {
                            float v = img[(size_t)k * plane + (size_t)(yy / scale) * S + xx / scale];
                            v = v != v ? 0.0f : v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
                            g[((size_t)(y0 + yy) * gw + (size_t)(x0 + xx)) * C + k] = (uint8_t)((v + 1.0f) * 127.5f + 0.5f);
                        }
            }
        }
        st = dfs_png_write(path, g, C, (int)gh, (int)gw);
    }
    free(g);
    for (int p = 0; p < P; p++) free(cov[p]);
    free(cov), free(cw), free(ch);
    return st;
}

#define TRAJ_COLS 10
#define TRAJ_ROWS 8

typedef struct {
    float *frames; /* (TRAJ_COLS, rows, dim) */
    int rows, ncap, steps;
    size_t dim;
} traj;

static void traj_cb(void *user, int i, int steps, int t, const float *x, int n) {
    traj *tr = user;
    (void)t;
    (void)n;
    /* column c (1..TRAJ_COLS-1) shows the step i closest to c/(TRAJ_COLS-1) of the way */
    for (int c = 1; c < TRAJ_COLS; c++) {
        int at = (int)((double)c * steps / (TRAJ_COLS - 1) + 0.5) - 1;
        if (at < 0) at = 0;
        if (at == i) memcpy(tr->frames + (size_t)c * tr->rows * tr->dim, x, (size_t)tr->rows * tr->dim * sizeof(float));
    }
}

/* The images of --inpaint / --init: SRC a PNG (one image) or a data set with --index LIST,
 * converted to C channels of S x S, as floats in [-1, 1], (ni, C, S, S) malloc'ed in *out.
 * 0, or 2 after a one-line message. */
static int load_sources(const char *opt, const char *src, const char *index_list, int C, int S,
                        float **out, int *ni) {
    *out = NULL;
    *ni = 0;
    const size_t dim = (size_t)C * S * S;
    uint8_t *px = NULL, *one = malloc(dim);
    int rc = 0;
    if (!one) return cli_fail("out of memory");
    if (ends_with(src, ".png")) {
        int sc, sh, sw;
        if (index_list) {
            free(one);
            return cli_fail("sample: --index picks images of a data set, not of the PNG %s", src);
        }
        dfs_status s = dfs_png_read(src, &px, &sc, &sh, &sw);
        if (s == DFS_OK) s = dfs_image_resize_u8(px, sc, sh, sw, one, C, S);
        free(px);
        if (s != DFS_OK || !(*out = malloc(dim * sizeof(float)))) {
            free(one);
            return s != DFS_OK ? cli_fail("sample: %s: %s", opt, dfs_last_error()) : cli_fail("out of memory");
        }
        for (size_t j = 0; j < dim; j++) (*out)[j] = one[j] / 127.5f - 1.0f;
        *ni = 1;
        free(one);
        return 0;
    }
    dfs_dataset d;
    dfs_status s = cli_load_data(&d, src, NULL, S, C, 0);
    if (s != DFS_OK) {
        free(one);
        return cli_fail("sample: %s: %s", opt, dfs_last_error());
    }
    const char *p = index_list ? index_list : "0";
    int cap = 0;
    while (!rc && *p) {
        char *end;
        errno = 0;
        long k = strtol(p, &end, 10);
        if (end == p || errno || k < 0 || k >= d.n || (*end && *end != ',')) {
            rc = cli_fail("sample: --index must list images 0..%d of %s, comma-separated: '%s'", d.n - 1,
                          src, index_list);
            break;
        }
        if (*ni == cap) {
            cap = cap ? 2 * cap : 16;
            float *grown = cap <= 100000 ? realloc(*out, (size_t)cap * dim * sizeof(float)) : NULL;
            if (!grown) {
                rc = cli_fail("sample: --index: too many images");
                break;
            }
            *out = grown;
        }
        const size_t per = (size_t)d.c * d.h * d.w;
        s = dfs_image_resize_u8(d.pixels + (size_t)k * per, d.c, d.h, d.w, one, C, S);
        if (s != DFS_OK) {
            rc = cli_fail("sample: %s: %s", opt, dfs_last_error());
            break;
        }
        for (size_t j = 0; j < dim; j++) (*out)[(size_t)*ni * dim + j] = one[j] / 127.5f - 1.0f;
        (*ni)++;
        p = *end ? end + 1 : end;
    }
    dfs_dataset_free(&d);
    free(one);
    if (rc) {
        free(*out);
        *out = NULL;
        *ni = 0;
    }
    return rc;
}

/* --mask: which pixels to fill (1) in an S x S plane. 0, or 2 after a message. */
static int make_mask(const char *spec, int S, uint8_t *fill) {
    const int h = S / 2, q = S / 4;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int f;
            if (!strcmp(spec, "left")) f = x < h;
            else if (!strcmp(spec, "right")) f = x >= S - h;
            else if (!strcmp(spec, "top")) f = y < h;
            else if (!strcmp(spec, "bottom")) f = y >= S - h;
            else if (!strcmp(spec, "center")) f = x >= q && x < S - q && y >= q && y < S - q;
            else goto png;
            fill[y * S + x] = (uint8_t)f;
        }
    return 0;
png:
    if (!ends_with(spec, ".png"))
        return cli_fail("sample: --mask must be a PNG or left, right, top, bottom or center, not '%s'", spec);
    uint8_t *px = NULL;
    int sc, sh, sw;
    dfs_status s = dfs_png_read(spec, &px, &sc, &sh, &sw);
    if (s == DFS_OK) s = dfs_image_resize_u8(px, sc, sh, sw, fill, 1, S);
    free(px);
    if (s != DFS_OK) return cli_fail("sample: --mask: %s", dfs_last_error());
    long nfill = 0;
    for (int j = 0; j < S * S; j++) nfill += fill[j] = fill[j] >= 128;
    if (nfill == 0) return cli_fail("sample: --mask %s is black everywhere: nothing to fill", spec);
    return 0;
}

int cmd_sample(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *traj_path = NULL, *cls = "all", *names_list = NULL;
    int no_labels = 0;
    char *tjson = NULL, **names = NULL;
    long n = 64, threads = 2, cols = 0, scale = 1;
    uint64_t seed = 0;
    cli_sampling so; /* --sampler, --steps, --guidance, ... as diffuse eval reads them */
    cli_sampling_init(&so, DFS_SAMPLER_DDPM, 50);
    enum { O_MODEL = 256, O_OUT, O_N, O_CLASS, O_SEED, O_THREADS, O_TRAJ, O_COLS, O_SCALE, O_NAMES, O_NOLABELS,
           O_PROMPT, O_PROMPTS, O_NEG, O_INPAINT, O_MASK, O_RESAMPLE, O_JUMP, O_INIT, O_STRENGTH, O_INDEX };
    const char *inpaint = NULL, *mask_spec = NULL, *init_src = NULL, *index_list = NULL;
    long resample = 5, jump = 5;
    double strength = 0.6;
    int set_repaint = 0, set_strength = 0;
    const char *prompt = NULL, *prompts_file = NULL, *negative = NULL;
    int set_n = 0, P = 0; /* P: prompts */
    char **plist = NULL;
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL}, {"out", required_argument, 0, O_OUT},
        {"n", required_argument, 0, O_N}, {"class", required_argument, 0, O_CLASS},
        {"seed", required_argument, 0, O_SEED}, {"threads", required_argument, 0, O_THREADS},
        {"trajectory", required_argument, 0, O_TRAJ}, {"cols", required_argument, 0, O_COLS},
        {"scale", required_argument, 0, O_SCALE}, {"class-names", required_argument, 0, O_NAMES},
        {"no-labels", no_argument, 0, O_NOLABELS},
        {"prompt", required_argument, 0, O_PROMPT}, {"prompts", required_argument, 0, O_PROMPTS},
        {"negative-prompt", required_argument, 0, O_NEG},
        {"inpaint", required_argument, 0, O_INPAINT}, {"mask", required_argument, 0, O_MASK},
        {"resample", required_argument, 0, O_RESAMPLE}, {"jump", required_argument, 0, O_JUMP},
        {"init", required_argument, 0, O_INIT}, {"strength", required_argument, 0, O_STRENGTH},
        {"index", required_argument, 0, O_INDEX}, CLI_SAMPLING_LONGOPTS,
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int taken = cli_sampling_option(&so, o, optarg);
        if (taken >= 0) {
            if (taken) return taken;
            continue;
        }
        switch (o) {
        case 'h':
            fputs(sample_help, stdout);
            cli_sampling_help(stdout, &so);
            fputs(sample_help_tail, stdout);
            return 0;
        case O_MODEL: model = optarg; break;
        case O_OUT: out = optarg; break;
        case O_TRAJ: traj_path = optarg; break;
        case O_CLASS: cls = optarg; break;
        case O_NAMES: names_list = optarg; break;
        case O_NOLABELS: no_labels = 1; break;
        case O_N: if (cli_int("--n", optarg, 1, 1000000, &n)) return 2; set_n = 1; break;
        case O_PROMPT: prompt = optarg; break;
        case O_PROMPTS: prompts_file = optarg; break;
        case O_NEG: negative = optarg; break;
        case O_INPAINT: inpaint = optarg; break;
        case O_MASK: mask_spec = optarg; break;
        case O_INIT: init_src = optarg; break;
        case O_INDEX: index_list = optarg; break;
        case O_RESAMPLE: if (cli_int("--resample", optarg, 1, 1000, &resample)) return 2; set_repaint = 1; break;
        case O_JUMP: if (cli_int("--jump", optarg, 1, 100000, &jump)) return 2; set_repaint = 1; break;
        case O_STRENGTH:
            if (cli_float("--strength", optarg, 0, 1, &strength)) return 2;
            if (strength <= 0) return cli_fail("--strength must be in (0, 1], got '%s'", optarg);
            set_strength = 1;
            break;
        case O_THREADS: if (cli_int("--threads", optarg, 1, 256, &threads)) return 2; break;
        case O_COLS: if (cli_int("--cols", optarg, 1, 1000, &cols)) return 2; break;
        case O_SCALE: if (cli_int("--scale", optarg, 1, 16, &scale)) return 2; break;
        case O_SEED: if (cli_u64("--seed", optarg, &seed)) return 2; break;
        default: return cli_bad_option("sample", argv);
        }
    }
    if (optind < argc) return cli_fail("sample: unexpected argument '%s'", argv[optind]);
    if (!model) return cli_fail("sample: --model CKPT is required");
    if (!out) return cli_fail("sample: --out FILE.png or FILE.npy is required");
    int as_npy = ends_with(out, ".npy");
    if (!as_npy && !ends_with(out, ".png")) return cli_fail("sample: --out must end in .png or .npy: '%s'", out);
    if (traj_path && !ends_with(traj_path, ".png")) return cli_fail("sample: --trajectory must end in .png");
    if (traj_path && !strcmp(traj_path, out)) return cli_fail("sample: --trajectory and --out name the same file");
    if (cli_out_ok("sample", "--out", out) || (traj_path && cli_out_ok("sample", "--trajectory", traj_path))) return 2;
    if (prompt && prompts_file) return cli_fail("sample: give --prompt or --prompts, not both");
    if (prompt && !prompt[strspn(prompt, " \t")])
        return cli_fail("sample: --prompt is empty (leave it out for unconditional samples)");
    if (negative && !prompt && !prompts_file) return cli_fail("sample: --negative-prompt needs --prompt or --prompts");
    if (negative && so.guidance == 1.0)
        return cli_fail("sample: --negative-prompt acts through guidance; give --guidance W other than 1 (e.g. 3)");
    if (inpaint && init_src) return cli_fail("sample: give --inpaint or --init, not both");
    if (inpaint && !mask_spec) return cli_fail("sample: --inpaint needs --mask (a PNG, or left, right, top, bottom, center)");
    if (mask_spec && !inpaint) return cli_fail("sample: --mask goes with --inpaint");
    if (set_repaint && !inpaint) return cli_fail("sample: --resample and --jump go with --inpaint");
    if (set_strength && !init_src) return cli_fail("sample: --strength goes with --init");
    if (index_list && !inpaint && !init_src) return cli_fail("sample: --index goes with --inpaint or --init");
    if ((inpaint || init_src) && (prompts_file || traj_path))
        return cli_fail("sample: --%s does not go with --%s yet", inpaint ? "inpaint" : "init",
                        prompts_file ? "prompts" : "trajectory");
    if (prompt && dfs_utf8_invalid(prompt) >= 0) return cli_fail("sample: --prompt is not UTF-8 text");
    if (negative && dfs_utf8_invalid(negative) >= 0) return cli_fail("sample: --negative-prompt is not UTF-8 text");
    dfs_set_threads((int)threads);

    dfs_model *m = NULL;
    dfs_status s = dfs_checkpoint_load(model, &m, NULL, NULL, &tjson);
    if (s != DFS_OK) return cli_fail_status(s);
    const dfs_unet_config *u = &m->cfg.unet;
    const int ncls = u->num_classes, C = u->in_channels, S = u->image_size, text = u->text.dim > 0;
    const size_t dim = (size_t)C * S * S;
    int rc = 0;
    int *labels = NULL;
    float *x = NULL;
    traj tr = {0};
    float *src = NULL, *cond = NULL; /* --inpaint / --init images, and one per sample */
    uint8_t *fill = NULL, *kmask = NULL;
    int ni = 0;
    long per_img = n;
    if (ncls > 0 && !no_labels) names = class_names(tjson, names_list, ncls);
    if (names_list && !names && !no_labels) {
        rc = cli_fail("sample: --class-names needs %d comma-separated names for the model's classes", ncls);
        goto done;
    }
    if (!text && (prompt || prompts_file || negative)) {
        rc = cli_fail("sample: %s has no text encoder; --%s needs a model trained with diffuse train --text", model,
                      prompt ? "prompt" : prompts_file ? "prompts" : "negative-prompt");
        goto done;
    }
    if (text && strcmp(cls, "all") != 0) {
        rc = cli_fail("sample: %s is a text model; ask with --prompt instead of --class", model);
        goto done;
    }
    if (text && so.guidance != 1.0 && !prompt && !prompts_file) {
        rc = cli_fail("sample: --guidance needs --prompt or --prompts for a text model");
        goto done;
    }
    if (text && (prompt || prompts_file) && !m->tokenizer) {
        rc = cli_fail("sample: %s has no tokenizer to read prompts with", model);
        goto done;
    }
    if (ncls == 0 && !text && strcmp(cls, "all") != 0) {
        rc = cli_fail("sample: %s is unconditional; --class needs a class-conditional model", model);
        goto done;
    }
    /* guidance acts where there is a condition: a class (not the null class that image
     * conditioning draws with by default) or a prompt */
    const int conditioned = (ncls > 0 && !((inpaint || init_src) && !strcmp(cls, "all"))) || prompt || prompts_file;
    if (cli_sampling_resolve(&so, "sample", model, m, 1, ncls == 0 && !text, conditioned)) {
        rc = 2;
        goto done;
    }
    if (prompts_file && read_prompts(prompts_file, &plist, &P)) {
        rc = 2;
        goto done;
    }
    if (prompt) {
        plist = malloc(sizeof *plist);
        if (!plist || !(plist[0] = strdup(prompt))) {
            rc = cli_fail("out of memory");
            goto done;
        }
        P = 1;
    }
    long per = n; /* samples per prompt */
    if (P > 0) {
        if (prompts_file && !set_n) per = 8;
        if (per * P > 1000000) {
            rc = cli_fail("sample: %d prompts x %ld samples is more than 1000000 images", P, per);
            goto done;
        }
        n = per * P;
        /* the table: the prompts, then the negative prompt; label P is the negative prompt or,
         * without one, the empty caption: guidance's unconditional half either way */
        const char **texts = malloc((size_t)(P + 1) * sizeof *texts);
        if (!texts) {
            rc = cli_fail("out of memory");
            goto done;
        }
        for (int k = 0; k < P; k++) texts[k] = plist[k];
        if (negative) texts[P] = negative;
        cli_words uw = {0};
        int truncated = 0;
        s = dfs_model_set_prompts(m, texts, P + (negative != NULL), cli_words_add, &uw, &truncated);
        free(texts);
        if (s != DFS_OK) {
            cli_words_free(&uw);
            rc = cli_fail_status(s);
            goto done;
        }
        cli_words_warn(&uw);
        cli_words_free(&uw);
        if (truncated > 0)
            fprintf(stderr, "diffuse: warning: %d words past the model's %d tokens were dropped from the prompts\n",
                    truncated, u->text.max_len);
    }
    /* --inpaint / --init: ni source images, `per_img` samples of each */
    per_img = n;
    if (inpaint || init_src) {
        if (load_sources(inpaint ? "--inpaint" : "--init", inpaint ? inpaint : init_src, index_list, C, S, &src,
                         &ni)) {
            rc = 2;
            goto done;
        }
        if (per_img * ni > 1000000) {
            rc = cli_fail("sample: %d images x %ld samples is more than 1000000 images", ni, per_img);
            goto done;
        }
        n = per_img * ni;
        if (inpaint) {
            fill = malloc((size_t)S * S);
            if (!fill) {
                rc = cli_fail("out of memory");
                goto done;
            }
            if (make_mask(mask_spec, S, fill)) {
                rc = 2;
                goto done;
            }
        }
    }
    /* the pictures' sizes are known now: refuse one too large before sampling, not after */
    long long gw, gh;
    const int img_cols = (int)per_img + (inpaint ? 2 : 1); /* the image, the masked image, samples */
    if (!as_npy && ni > 0) {
        if ((s = cli_grid_fits(ni * img_cols, S, S, img_cols, (int)scale)) != DFS_OK) {
            rc = cli_fail("sample: %s, or write FILE.npy", dfs_last_error());
            goto done;
        }
    } else if (!as_npy && prompts_file && prompt_grid_size(P, per, S, (int)scale, PROMPT_COL_MAX, &gw, &gh)) {
        rc = cli_fail("sample: %s, or write FILE.npy", dfs_last_error());
        goto done;
    } else if (!as_npy && !prompts_file) {
        long gc = cols > 0 ? cols : (ncls > 0 && ncls <= 16 ? ncls : 8);
        if ((s = cli_grid_fits((int)n, S, S, (int)gc, (int)scale)) != DFS_OK) {
            rc = cli_fail("sample: %s, or write FILE.npy", dfs_last_error());
            goto done;
        }
    }
    if (traj_path && (s = cli_grid_fits(TRAJ_COLS * (n < TRAJ_ROWS ? (int)n : TRAJ_ROWS), S, S, TRAJ_COLS, (int)scale))) {
        rc = cli_fail("sample: --trajectory: %s", dfs_last_error());
        goto done;
    }
    labels = malloc((size_t)n * sizeof(int));
    x = malloc((size_t)n * dim * sizeof(float));
    if (!labels || !x) {
        rc = cli_fail("out of memory for %ld images", n);
        goto done;
    }
    if (ncls > 0) {
        long k = -1;
        if (strcmp(cls, "all") != 0 && cli_int("--class", cls, 0, ncls - 1, &k)) {
            rc = 2;
            goto done;
        }
        for (long i = 0; i < n; i++) labels[i] = k >= 0 ? (int)k : (int)(i % ncls);
    }
    for (long i = 0; P > 0 && i < n; i++) labels[i] = (int)(i / per); /* rows of the prompt table */
    if (ni > 0 && P == 0 && ncls > 0 && !strcmp(cls, "all"))
        for (long i = 0; i < n; i++) labels[i] = ncls; /* no class: draw what fits the image */
    if (ni > 0 && P > 0)
        for (long i = 0; i < n; i++) labels[i] = 0; /* the one prompt */
    if (ni > 0) {
        cond = malloc((size_t)n * dim * sizeof(float));
        if (inpaint) kmask = malloc((size_t)n * dim);
        if (!cond || (inpaint && !kmask)) {
            rc = cli_fail("out of memory for %ld images", n);
            goto done;
        }
        for (long i = 0; i < n; i++) {
            memcpy(cond + (size_t)i * dim, src + (size_t)(i / per_img) * dim, dim * sizeof(float));
            for (size_t j = 0; inpaint && j < dim; j++) kmask[(size_t)i * dim + j] = !fill[j % ((size_t)S * S)];
        }
    }
    const int conditional = ncls > 0 || P > 0;
    dfs_sample_request rq;
    cli_sampling_request(&so, &rq, conditional ? labels : NULL, (int)n);
    /* text: the unconditional half of guidance is the model's own, the empty caption (the row
     * after the prompts), unless a negative prompt took that row's place: row P */
    if (negative) rq.null_label = P;
    if (inpaint) {
        rq.sampler.known = cond;
        rq.sampler.known_mask = kmask;
        rq.sampler.resample = (int)resample;
        rq.sampler.jump = (int)jump < rq.sampler.steps ? (int)jump : rq.sampler.steps;
    } else if (init_src) {
        rq.sampler.init = cond;
        rq.sampler.strength = (float)strength;
    }
    if (traj_path) {
        tr.rows = n < TRAJ_ROWS ? (int)n : TRAJ_ROWS;
        tr.dim = dim;
        tr.frames = malloc((size_t)TRAJ_COLS * tr.rows * dim * sizeof(float));
        if (!tr.frames) {
            rc = cli_fail("out of memory");
            goto done;
        }
        rq.cb = traj_cb;
        rq.cb_user = &tr;
    }
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    if (traj_path) {
        /* column 0 is the starting noise: the sampler draws it first from the same generator */
        dfs_rng peek = rng;
        dfs_rng_fill_normal(&peek, tr.frames, (size_t)tr.rows * dim);
    }
    cli_sampling_say_recipe(&so, m);
    const char *kind = dfs_sampler_names[so.sampler];
    if (P > 0)
        fprintf(stderr, "sampling %ld images (%ld for each of %d prompt%s) with %s in %d steps, guidance %g%s\n", n, per,
                P, P > 1 ? "s" : "", kind, rq.sampler.steps, so.guidance,
                negative ? " away from the negative prompt" : "");
    else if (ni > 0)
        fprintf(stderr, "sampling %ld images (%ld for each of %d) with %s: %ld network evaluations (%s)\n", n, per_img,
                ni, kind, dfs_sampler_evals(&rq.sampler), inpaint ? "RePaint" : "SDEdit");
    else
        fprintf(stderr, "sampling %ld images with %s in %d steps%s\n", n, kind, rq.sampler.steps,
                ncls ? "" : " (unconditional)");
    cli_sample_progress bar; /* chained after --trajectory's frames */
    cli_sample_progress_attach(&bar, &rq);
    double t0 = cli_now();
    s = dfs_model_sample(m, &rq, &rng, x);
    cli_sample_progress_end(&bar);
    if (s != DFS_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    fprintf(stderr, "done in %.1f s\n", cli_now() - t0);
    if (as_npy) {
        uint8_t *px = malloc((size_t)n * dim);
        if (!px) {
            rc = cli_fail("out of memory");
            goto done;
        }
        /* NCHW floats in [-1, 1] -> N x H x W x C bytes */
        for (long i = 0; i < n; i++)
            for (int c = 0; c < C; c++)
                for (int p = 0; p < S * S; p++) {
                    float v = (x[(size_t)i * dim + (size_t)c * S * S + p] + 1.0f) * 127.5f;
                    v = v >= 0 ? (v > 255 ? 255 : v) : 0; /* NaN too */
                    px[(size_t)i * dim + (size_t)p * C + c] = (uint8_t)(v + 0.5f);
                }
        size_t shape[4] = {(size_t)n, (size_t)S, (size_t)S, (size_t)C};
        s = cli_write_npy_pair(out, px, shape, conditional && ni == 0 ? labels : NULL); /* never new images, old labels */
        free(px);
    } else if (ni > 0) {
        /* one row per image: the image, the masked image (gray where filled), the samples */
        float *grid = malloc((size_t)ni * img_cols * dim * sizeof(float));
        if (!grid) {
            rc = cli_fail("out of memory");
            goto done;
        }
        for (int r = 0; r < ni; r++) {
            float *row = grid + (size_t)r * img_cols * dim;
            memcpy(row, src + (size_t)r * dim, dim * sizeof(float));
            int c0 = 1;
            if (inpaint) {
                for (size_t j = 0; j < dim; j++) row[dim + j] = fill[j % ((size_t)S * S)] ? 0.0f : src[(size_t)r * dim + j];
                c0 = 2;
            }
            memcpy(row + (size_t)c0 * dim, x + (size_t)r * per_img * dim, (size_t)per_img * dim * sizeof(float));
        }
        s = cli_write_grid(out, grid, ni * img_cols, C, S, S, img_cols, (int)scale);
        free(grid);
    } else if (prompts_file) {
        s = write_prompt_grid(out, x, P, (int)per, C, S, (int)scale, plist);
    } else {
        int gc = cols > 0 ? (int)cols : (ncls > 0 && ncls <= 16 ? ncls : 8);
        /* class names over the columns when each column is one class */
        int labelled = names && !strcmp(cls, "all") && gc == ncls;
        s = cli_write_grid_labeled(out, x, (int)n, C, S, S, gc, (int)scale,
                                   labelled ? (const char *const *)names : NULL);
    }
    if (s != DFS_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    if (traj_path) {
        /* frames (col, row) -> grid order (row, col) */
        float *grid = malloc((size_t)TRAJ_COLS * tr.rows * dim * sizeof(float));
        if (!grid) {
            rc = cli_fail("out of memory");
            goto done;
        }
        for (int r = 0; r < tr.rows; r++)
            for (int c = 0; c < TRAJ_COLS; c++)
                memcpy(grid + ((size_t)r * TRAJ_COLS + c) * dim, tr.frames + ((size_t)c * tr.rows + r) * dim, dim * sizeof(float));
        s = cli_write_grid(traj_path, grid, TRAJ_COLS * tr.rows, C, S, S, TRAJ_COLS, (int)scale);
        free(grid);
        if (s != DFS_OK) rc = cli_fail_status(s);
    }
    if (rc == 0) fprintf(stderr, "wrote %s%s%s\n", out, traj_path ? " and " : "", traj_path ? traj_path : "");
done:
    for (int k = 0; names && k < ncls; k++) free(names[k]);
    free(names);
    free(tjson);
    for (int k = 0; k < P; k++) free(plist[k]);
    free(plist);
    free(tr.frames);
    free(src);
    free(cond);
    free(fill);
    free(kmask);
    free(labels);
    free(x);
    dfs_model_free(m);
    return rc;
}
