/* sampling.c - the sampling options of diffuse sample and diffuse eval, and the progress line of
 * a sampling run (cli/sampling.h). */
#include "sampling.h"

#include <string.h>

void cli_sampling_init(cli_sampling *o, dfs_sampler_kind sampler, int default_steps) {
    memset(o, 0, sizeof *o);
    o->sampler = o->default_sampler = sampler;
    o->default_steps = default_steps;
    o->steps = -1;
    o->var_tilde = 1;
    o->noise_scale = -1;
    o->guidance = 1.0;
}

const char *cli_noise_note(float s) {
    static char buf[48];
    buf[0] = 0;
    if (s != 1.0f) snprintf(buf, sizeof buf, ", noise scale %g", (double)s);
    return buf;
}

const char *cli_recipe_noise(const dfs_sampling_recipe *r) {
    return cli_noise_note(r->set && r->kind == DFS_SAMPLER_DDPM ? dfs_recipe_noise_scale(r) : 1.0f);
}

int cli_noise_scale(const char *cmd, double given, dfs_sampler_kind kind, const dfs_sampling_recipe *r, float *out) {
    if (given >= 0 && given != 1 && kind != DFS_SAMPLER_DDPM)
        return cli_fail("%s: --noise-scale acts on the ddpm sampler only, not %s", cmd, dfs_sampler_names[kind]);
    *out = given >= 0 ? (float)given : r->set && r->kind == kind ? dfs_recipe_noise_scale(r) : 1.0f;
    return 0;
}

int cli_sampling_option(cli_sampling *o, int opt, const char *arg) {
    switch (opt) {
    case CLI_O_SAMPLER: {
        int k = dfs_sampler_from_name(arg);
        if (k < 0) {
            char names[128] = "";
            for (int i = 0; i < DFS_SAMPLER_COUNT; i++) /* "ddpm, ddim, dpm++2m or heun" */
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         i == 0 ? "" : i == DFS_SAMPLER_COUNT - 1 ? " or " : ", ", dfs_sampler_names[i]);
            return cli_fail("--sampler must be %s, not '%s'", names, arg);
        }
        o->sampler = (dfs_sampler_kind)k;
        o->set_sampler = 1;
        return 0;
    }
    case CLI_O_STEPS: return cli_int("--steps", arg, 1, 100000, &o->steps) ? 2 : 0;
    case CLI_O_ETA: return cli_float("--eta", arg, 0, 10, &o->eta) ? 2 : 0;
    case CLI_O_NOISE: return cli_float("--noise-scale", arg, 0, 1, &o->noise_scale) ? 2 : 0;
    case CLI_O_GUIDANCE:
        if (cli_float("--guidance", arg, -100, 100, &o->guidance)) return 2;
        o->set_guidance = 1;
        return 0;
    case CLI_O_VARIANCE:
        if (!strcmp(arg, "beta-tilde")) o->var_tilde = 1;
        else if (!strcmp(arg, "beta")) o->var_tilde = 0;
        else return cli_fail("--variance must be beta-tilde or beta, not '%s'", arg);
        o->set_variance = 1;
        return 0;
    case CLI_O_DTHR:
        if (cli_float("--dynamic-threshold", arg, 0, 100, &o->dthr)) return 2;
        if (o->dthr <= 0) return cli_fail("--dynamic-threshold expects a percentile in (0, 100], got '%s'", arg);
        return 0;
    case CLI_O_RAW: o->raw = 1; return 0;
    case CLI_O_PRECISION: return cli_precision_option(arg, &o->bf16);
    case CLI_O_CONV: return cli_conv_option(arg);
    default: return -1;
    }
}

int cli_precision_option(const char *arg, dfs_bf16_mode *mode) {
    if (!strcmp(arg, "fp32")) *mode = dfs_set_bf16(0);
    else if (!strcmp(arg, "bf16")) {
        *mode = dfs_set_bf16(1);
        if (*mode == DFS_BF16_OFF)
            fprintf(stderr, "diffuse: --precision bf16: %s, so this runs in float32%s\n",
                    dfs_get_kernels() != DFS_KERNELS_FAST ? "the BLAS kernels have no bf16 path"
                                                          : "this CPU has no AVX512_BF16",
                    dfs_get_kernels() != DFS_KERNELS_FAST ? ""
                        : " (DFS_BF16=emulate gives bf16's results without it, more slowly than float32)");
        else if (*mode == DFS_BF16_EMULATED)
            fprintf(stderr, "diffuse: --precision bf16 emulated (DFS_BF16=emulate): bf16's results, "
                            "more slowly than float32\n");
    } else
        return cli_fail("--precision must be fp32 or bf16, not '%s'", arg);
    return 0;
}

int cli_conv_option(const char *arg) {
    for (int a = 0; a < 3; a++)
        if (!strcmp(arg, dfs_conv_algo_names[a])) {
            dfs_set_conv_algo((dfs_conv_algo)a);
            return 0;
        }
    return cli_fail("--conv must be direct, winograd or auto, not '%s'", arg);
}

void cli_conv_help(FILE *f) {
    fprintf(f, "  --conv NAME         3x3 convolutions of the network's forward passes: direct\n"
               "                      (the default), winograd (Winograd F(4x4,3x3) with AVX-512, else\n"
               "                      F(2x2,3x3): fewer multiplies, slower with few input channels)\n"
               "                      or auto (each shape's first call times\n"
               "                      both and keeps the faster, like PyTorch's cudnn.benchmark:\n"
               "                      faster, but two runs may round differently). float32 only;\n"
               "                      the environment's DFS_CONV sets the default\n");
}

const char *cli_precision_name(dfs_bf16_mode mode) {
    return mode == DFS_BF16_NATIVE ? "bf16" : mode == DFS_BF16_EMULATED ? "bf16 (emulated)" : "fp32";
}

void cli_precision_help(FILE *f) {
    fprintf(f, "  --precision NAME    fp32 (default) or bf16: the stride-1 convolutions take bfloat16\n"
               "                      inputs and weights and sum in float32 (AVX512_BF16); norms,\n"
               "                      attention, linear layers and the sampler stay float32.\n"
               "                      In eval it covers drawing the samples; the metrics stay float32.\n"
               "                      Without AVX512_BF16 it says so and runs float32;\n"
               "                      DFS_BF16=emulate then gives bf16's results, more slowly\n");
}

void cli_sampling_help(FILE *f, const cli_sampling *o) {
    fprintf(f,
            "sampler (the same options in diffuse sample and diffuse eval):\n"
            "  --sampler NAME      ddpm (ancestral), ddim, dpm++2m or heun (default %s). A model\n"
            "                      that records the settings it samples best with (diffuse export\n"
            "                      --sampler; diffuse info shows them) uses them for --sampler,\n"
            "                      --steps and --guidance when they are not given\n"
            "  --steps N           timesteps visited (default: T for ddpm, else %d), evenly spaced\n"
            "                      over 0..T-1 (docs/DIFFUSION.md); one network evaluation each\n"
            "                      (heun: 2 steps - 1)\n"
            "  --guidance W        classifier-free guidance: eps = eps_u + W (eps_c - eps_u);\n"
            "                      1 = conditional only (default), 0 = unconditional; eps_u is the\n"
            "                      null class's, for a text model the empty caption's (or the\n"
            "                      negative prompt's)\n"
            "  --eta E             DDIM noise (0 = deterministic, default)\n"
            "  --variance NAME     DDPM variance: beta-tilde or beta (default: the model's\n"
            "                      recommendation, else beta-tilde)\n"
            "  --noise-scale S     DDPM: multiply the noise each step adds by S in [0, 1]\n"
            "                      (default: the model's recommendation, else 1); below 1 a\n"
            "                      lower-temperature sampler: less varied samples\n"
            "  --dynamic-threshold P   Imagen's dynamic thresholding (Saharia et al. 2022, sec. 2.3):\n"
            "                      at every step s = the P-th percentile of |x0| of each sample,\n"
            "                      s = max(s, 1), x0 = clip(x0, -s, s) / s, instead of clipping x0 to\n"
            "                      [-1, 1]; P in (0, 100], e.g. 99.5. Any model, any sampler\n"
            "  --raw               use the raw weights instead of the EMA weights\n",
            dfs_sampler_names[o->default_sampler], o->default_steps);
    cli_precision_help(f);
    cli_conv_help(f);
}

int cli_sampling_resolve(cli_sampling *o, const char *cmd, const char *model_path, const dfs_model *m,
                         int sampling, int unconditional, int conditioned) {
    if (sampling && unconditional && o->guidance != 1.0)
        return cli_fail("%s: %s is unconditional; --guidance needs a class-conditional model", cmd, model_path);
    if (o->steps > m->cfg.T) return cli_fail("%s: --steps %ld is more than the model's T = %d", cmd, o->steps, m->cfg.T);
    const dfs_sampling_recipe *r = &m->sampling;
    if (sampling && r->set) { /* the model's recommended settings, for what was not given */
        if (!o->set_sampler) o->sampler = r->kind;
        if (o->steps < 0 && o->sampler == r->kind) o->steps = r->steps;
        if (!o->set_guidance && conditioned) o->guidance = r->guidance;
        if (!o->set_variance && o->sampler == r->kind) o->var_tilde = !r->var_beta;
        o->used_recipe = !o->set_sampler || !o->set_guidance;
    }
    float ns;
    if (cli_noise_scale(cmd, o->noise_scale, o->sampler, sampling ? r : &(dfs_sampling_recipe){0}, &ns)) return 2;
    o->noise_scale = ns;
    if (o->steps < 0)
        o->steps = o->sampler == DFS_SAMPLER_DDPM ? m->cfg.T : (m->cfg.T < o->default_steps ? m->cfg.T : o->default_steps);
    return 0;
}

void cli_sampling_say_recipe(const cli_sampling *o, const dfs_model *m) {
    if (!o->used_recipe) return;
    fprintf(stderr, "the model's recommended settings: %s, %d steps, guidance %g%s%s (--sampler, --steps, "
                    "--guidance, --variance and --noise-scale change them)\n",
            dfs_sampler_names[m->sampling.kind], m->sampling.steps, (double)m->sampling.guidance,
            m->sampling.var_beta ? ", variance beta" : "", cli_recipe_noise(&m->sampling));
}

void cli_sampling_request(const cli_sampling *o, dfs_sample_request *r, const int *labels, int n) {
    dfs_sample_request_default(r);
    r->sampler.kind = o->sampler;
    r->sampler.steps = (int)o->steps;
    r->sampler.eta = (float)o->eta;
    r->sampler.var_beta_tilde = o->var_tilde;
    r->sampler.noise_scale = o->noise_scale >= 0 ? (float)o->noise_scale : 1.0f;
    r->sampler.guidance = (float)o->guidance;
    r->sampler.dynamic_threshold = (float)o->dthr;
    r->labels = labels;
    r->n = n;
    r->raw = o->raw;
}

static void sample_progress_cb(void *user, int i, int steps, int t, const float *x, int n) {
    cli_sample_progress *sp = user;
    if (sp->next) sp->next(sp->next_user, i, steps, t, x, n);
    sp->calls++;
    long done = sp->calls * sp->per;
    cli_progress_update(&sp->bar, done < sp->bar.total ? done : sp->bar.total, CLI_ETA_AUTO, NULL);
}

void cli_sample_progress_attach(cli_sample_progress *sp, dfs_sample_request *r) {
    memset(sp, 0, sizeof *sp);
    sp->per = r->sampler.kind == DFS_SAMPLER_HEUN ? 2 : 1;
    sp->next = r->cb;
    sp->next_user = r->cb_user;
    cli_progress_start(&sp->bar, "network evaluations", dfs_sampler_evals(&r->sampler), 0, 10);
    r->cb = sample_progress_cb;
    r->cb_user = sp;
}

void cli_sample_progress_end(cli_sample_progress *sp) { cli_progress_end(&sp->bar); }
