/* seeds.c - writes the seed files of fuzz/corpus that the library itself makes: a safetensors
 * file with every dtype, tiny model checkpoints (class, text with tokenizer; full and float16),
 * a tiny classifier, .npy arrays, PNGs, tokenizer JSON, molecules as XYZ and SDF and a tiny
 * molecule model (full and float16). `make fuzz-seeds` runs it (then
 * fuzz/seeds.py for the formats written byte by byte); the outputs are committed, so this only
 * needs running again when a format changes. Usage: seeds OUTDIR (OUTDIR/<harness>/...). */
#include "diffuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

static const char *out;

static const char *path(const char *harness, const char *name) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", out, harness);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", out, harness, name);
    return p;
}

static void ok(dfs_status s, const char *what) {
    if (s != DFS_OK) {
        fprintf(stderr, "seeds: %s: %s\n", what, dfs_last_error());
        exit(1);
    }
}

static void copy(const char *from_h, const char *from, const char *to_h, const char *to) {
    char src[1024];
    snprintf(src, sizeof src, "%s", path(from_h, from));
    FILE *f = fopen(src, "rb"), *g = fopen(path(to_h, to), "wb");
    if (!f || !g) exit(1);
    int ch;
    while ((ch = getc(f)) != EOF) putc(ch, g);
    fclose(f);
    fclose(g);
}

static void write_text(const char *p, const char *s, size_t n) {
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(s, 1, n, f) != n || fclose(f)) exit(1);
}

static void safetensors(void) {
    dfs_st_writer *w = dfs_st_writer_new();
    float f32[6] = {0, 1, -2.5f, 3e-8f, 1e30f, -0.0f};
    uint16_t f16[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    int64_t i64[3] = {-1, 0, 1LL << 40};
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    ok(dfs_st_writer_add(w, "weights", DFS_DT_F32, 2, (int64_t[]){2, 3}, f32), "add f32");
    ok(dfs_st_writer_add(w, "half", DFS_DT_F16, 1, (int64_t[]){4}, f16), "add f16");
    ok(dfs_st_writer_add(w, "layer.0.ids", DFS_DT_I64, 3, (int64_t[]){1, 3, 1}, i64), "add i64");
    ok(dfs_st_writer_add(w, "bytes", DFS_DT_U8, 4, (int64_t[]){1, 1, 1, 5}, u8), "add u8");
    ok(dfs_st_writer_add(w, "scalar", DFS_DT_F32, 0, NULL, f32 + 2), "add scalar");
    ok(dfs_st_writer_add(w, "empty", DFS_DT_F32, 2, (int64_t[]){0, 3}, f32), "add empty");
    ok(dfs_st_writer_meta(w, "format", "pt"), "meta");
    ok(dfs_st_writer_meta(w, "note", "caf\xc3\xa9 \"quoted\"\n"), "meta");
    ok(dfs_st_writer_write(w, path("safetensors", "dtypes.safetensors")), "write");
    dfs_st_writer_free(w);
    w = dfs_st_writer_new();
    ok(dfs_st_writer_write(w, path("safetensors", "empty.safetensors")), "write empty");
    dfs_st_writer_free(w);
}

/* The tiny model of fuzz_checkpoint.c's init_from (4x4 gray, 2 channels, one level). */
static void tiny_unet(dfs_model_config *mc, int classes) {
    memset(mc, 0, sizeof *mc);
    dfs_unet_config *u = &mc->unet;
    u->image_size = 4, u->in_channels = 1, u->base_channels = 2, u->nlevels = 1;
    u->mult[0] = 1, u->enc_blocks = 1, u->dec_blocks = 2, u->groups = 1, u->num_classes = classes;
    mc->schedule = DFS_SCHEDULE_LINEAR, mc->T = 10, mc->prediction = DFS_PRED_EPS;
}

static void checkpoints(void) {
    dfs_model_config mc;
    tiny_unet(&mc, 2);
    dfs_model *m = dfs_model_new(&mc, 1);
    if (!m) ok(DFS_ERR_ARG, "model");
    dfs_train_state st;
    memset(&st, 0, sizeof st);
    st.step = 12, st.images_seen = 96, st.seed = 7, st.wall_seconds = 1.5;
    dfs_rng_seed(&st.rng, 7);
    dfs_rng_normal(&st.rng); // leaves a spare normal
    ok(dfs_checkpoint_save(path("checkpoint", "tiny-full.safetensors"), m, &st, "{\"steps\":12}", DFS_CKPT_FULL),
       "save full");
    ok(dfs_checkpoint_save(path("checkpoint", "tiny-f16.safetensors"), m, NULL, NULL, DFS_CKPT_SAMPLING_F16),
       "save f16");
    dfs_model_free(m);
    copy("checkpoint", "tiny-f16.safetensors", "safetensors", "checkpoint-f16.safetensors");

    const char *caps[] = {"a red shirt", "blue trousers, long", "a red bag"};
    dfs_tokenizer_config tc;
    dfs_tokenizer_config_default(&tc);
    dfs_tokenizer *tok;
    ok(dfs_tokenizer_build(&tok, caps, 3, &tc), "tokenizer");
    tiny_unet(&mc, 0);
    mc.unet.text.vocab = dfs_tokenizer_vocab_size(tok);
    mc.unet.text.max_len = dfs_tokenizer_max_len(tok);
    mc.unet.text.dim = 4, mc.unet.text.layers = 1, mc.unet.text.heads = 2;
    mc.schedule = DFS_SCHEDULE_COSINE, mc.prediction = DFS_PRED_V;
    if (!(m = dfs_model_new(&mc, 2))) ok(DFS_ERR_ARG, "text model");
    m->tokenizer = tok;
    ok(dfs_checkpoint_save(path("checkpoint", "tiny-text.safetensors"), m, NULL, NULL, DFS_CKPT_SAMPLING),
       "save text");
    char *json = dfs_tokenizer_to_json(tok);
    write_text(path("tokenizer", "built.json"), json, strlen(json));
    // JSON, NUL, a caption: the harness encodes the caption with the tokenizer
    size_t n = strlen(json);
    const char *cap = "A red shirt, and an unknown hat\nblue bag";
    char *both = malloc(n + 1 + strlen(cap));
    memcpy(both, json, n + 1);
    memcpy(both + n + 1, cap, strlen(cap));
    write_text(path("tokenizer", "built-with-text.bin"), both, n + 1 + strlen(cap));
    free(both);
    free(json);
    dfs_model_free(m); // frees tok
}

static void classifier(void) {
    dfs_classifier_config c;
    dfs_classifier_config_default(&c);
    c.image_size = 8, c.num_classes = 3, c.feature_dim = 6, c.groups = 2;
    c.channels[0] = 4, c.channels[1] = 4, c.channels[2] = 8;
    dfs_classifier *cl;
    ok(dfs_classifier_new(&cl, &c, 3), "classifier");
    cl->test_accuracy = 0.5;
    ok(dfs_classifier_save(path("classifier", "tiny.safetensors"), cl, "{\"epochs\":1}"), "save classifier");
    dfs_classifier_free(cl);
}

static void npy(void) {
    uint8_t u8[6] = {0, 1, 2, 253, 254, 255};
    int32_t i32[4] = {0, -1, 9, 1 << 30};
    ok(dfs_npy_write_u8(path("npy", "u8-2x3.npy"), u8, 2, (size_t[]){2, 3}), "npy u8");
    ok(dfs_npy_write_u8(path("npy", "u8-4d.npy"), u8, 4, (size_t[]){1, 2, 1, 3}), "npy u8 4d");
    ok(dfs_npy_write_i32(path("npy", "i32-4.npy"), i32, 1, (size_t[]){4}), "npy i32");
    ok(dfs_npy_write_u8(path("npy", "u8-empty.npy"), u8, 2, (size_t[]){0, 3}), "npy empty");
}

/* A tiny time-series model (2 features), resumable and float16, for fuzz_series.c. */
static void series(void) {
    dfs_series sr = {.n_steps = 12, .n_features = 2, .step = 86400};
    float v[24];
    uint8_t o[24];
    int64_t t[12];
    char n0[] = "tmax", n1[] = "tmin", *names[2] = {n0, n1};
    for (int i = 0; i < 24; i++) v[i] = (float)(i % 5) + (float)(i % 2) * 3, o[i] = 1;
    for (int i = 0; i < 12; i++) t[i] = 1262304000 + (int64_t)i * 86400;
    sr.values = v, sr.observed = o, sr.times = t, sr.names = names;
    dfs_series_config c;
    dfs_series_config_default(&c);
    c.window = 4, c.net.channels = 4, c.net.heads = 2, c.net.layers = 1, c.net.ff = 4;
    c.net.step_dim = 4, c.net.time_dim = 2, c.net.feature_dim = 2;
    dfs_series_model *m;
    ok(dfs_series_model_new(&m, &c, &sr, 12, 1), "series model");
    dfs_train_state st;
    memset(&st, 0, sizeof st);
    st.step = 3, st.images_seen = 12, st.seed = 1;
    dfs_rng_seed(&st.rng, 3);
    ok(dfs_series_save(path("series", "tiny-full.safetensors"), m, &st, "{\"steps\":3}", DFS_CKPT_FULL), "save series");
    ok(dfs_series_save(path("series", "tiny-f16.safetensors"), m, NULL, NULL, DFS_CKPT_SAMPLING_F16), "save series f16");
    dfs_series_model_free(m);
    float f[6] = {1, -2, 0.5f, NAN, 3, 4};
    ok(dfs_npy_write_f32(path("npy", "f32-2x3.npy"), f, 2, (size_t[]){2, 3}), "npy f32");
    double d[2] = {1262304000.0, 0.25};
    ok(dfs_npy_write_f64(path("npy", "f64-2.npy"), d, 1, (size_t[]){2}), "npy f64");
}

static void png(void) {
    uint8_t px[5 * 7 * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37);
    ok(dfs_png_write(path("png", "rgb-7x5.png"), px, 3, 5, 7), "png rgb");
    ok(dfs_png_write(path("png", "gray-4x4.png"), px, 1, 4, 4), "png gray");
}

/* Molecules for fuzz_mol.c (XYZ and SDF) and a tiny molecule model for fuzz_molckpt.c. */
static void molecule(dfs_mol *m, const char *title, int n, const int *z, const double *pos) {
    ok(dfs_mol_init(m, n), "molecule");
    ok(dfs_mol_set_title(m, title), "title");
    memcpy(m->z, z, sizeof *z * (size_t)n);
    memcpy(m->pos, pos, sizeof *pos * 3 * (size_t)n);
    ok(dfs_mol_perceive_bonds(m), "bonds");
}

static void molecules(void) {
    dfs_mol m[3];
    molecule(&m[0], "water", 3, (int[]){8, 1, 1},
             (double[]){0, 0, 0.1173, 0, 0.7572, -0.4692, 0, -0.7572, -0.4692});
    molecule(&m[1], "methanol", 6, (int[]){6, 8, 1, 1, 1, 1},
             (double[]){-0.0467, 0.6636, 0, -0.0467, -0.7591, 0, -1.0856, 0.9762, 0, 0.4340, 1.0770, 0.8873,
                        0.4340, 1.0770, -0.8873, 0.8617, -1.0836, 0});
    molecule(&m[2], "ammonium", 5, (int[]){7, 1, 1, 1, 1},
             (double[]){0, 0, 0, 0.5900, 0.5900, 0.5900, -0.5900, -0.5900, 0.5900, -0.5900, 0.5900, -0.5900,
                        0.5900, -0.5900, -0.5900});
    m[2].charge[0] = 1;
    ok(dfs_xyz_write(path("mol", "water-methanol.xyz"), m, 2), "xyz");
    ok(dfs_sdf_write(path("mol", "water-methanol-ammonium.sdf"), m, 3), "sdf");

    dfs_mol_config c;
    dfs_mol_config_default(&c);
    c.net.hidden = 4, c.net.layers = 1, c.T = 20;
    dfs_mol_model *mm;
    ok(dfs_mol_model_new(&mm, &c, m, 2, 1), "molecule model");
    dfs_train_state st;
    memset(&st, 0, sizeof st);
    st.step = 2, st.images_seen = 4, st.seed = 1;
    dfs_rng_seed(&st.rng, 2);
    ok(dfs_mol_save(path("molckpt", "tiny-full.safetensors"), mm, &st, "{\"steps\":2}", DFS_CKPT_FULL), "save mol");
    mm->sampling = (dfs_sampling_recipe){1, DFS_SAMPLER_DDIM, 5, 1.0f, 0};
    ok(dfs_mol_save(path("molckpt", "tiny-f16.safetensors"), mm, NULL, NULL, DFS_CKPT_SAMPLING_F16), "save mol f16");
    dfs_mol_model_free(mm);
    for (int i = 0; i < 3; i++) dfs_mol_free(&m[i]);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: seeds OUTDIR\n");
        return 2;
    }
    out = argv[1];
    mkdir(out, 0755);
    safetensors();
    checkpoints();
    classifier();
    npy();
    png();
    series();
    molecules();
    return 0;
}
