/* sampling.h - the sampling options that diffuse sample and diffuse eval share, written once
 * (cli/sampling.c): their parsing, their help lines, the model's recommended settings for what
 * the user did not give, the dfs_sample_request they make, and the progress line over the
 * network evaluations of a run.
 *
 * A command adds CLI_SAMPLING_LONGOPTS to its getopt_long table, hands every option to
 * cli_sampling_option first, prints cli_sampling_help in its --help, and once the model is
 * loaded calls cli_sampling_resolve. */
#ifndef DFS_CLI_SAMPLING_H
#define DFS_CLI_SAMPLING_H

#include "common.h"
#include "progress.h"

#include <getopt.h>

/* getopt_long values of the shared options: below the commands' own (256 and up) */
enum { CLI_O_SAMPLER = 200, CLI_O_STEPS, CLI_O_ETA, CLI_O_VARIANCE, CLI_O_GUIDANCE, CLI_O_DTHR, CLI_O_RAW,
       CLI_O_PRECISION, CLI_O_CONV, CLI_O_NOISE };

#define CLI_SAMPLING_LONGOPTS                                                                              \
    {"sampler", required_argument, 0, CLI_O_SAMPLER}, {"steps", required_argument, 0, CLI_O_STEPS},       \
        {"eta", required_argument, 0, CLI_O_ETA}, {"variance", required_argument, 0, CLI_O_VARIANCE},     \
        {"guidance", required_argument, 0, CLI_O_GUIDANCE},                                               \
        {"dynamic-threshold", required_argument, 0, CLI_O_DTHR}, {"raw", no_argument, 0, CLI_O_RAW},    \
        {"precision", required_argument, 0, CLI_O_PRECISION}, {"conv", required_argument, 0, CLI_O_CONV},     \
        {"noise-scale", required_argument, 0, CLI_O_NOISE}

typedef struct {
    dfs_sampler_kind sampler;
    long steps;            /* -1 until given or resolved */
    double eta;            /* DDIM noise */
    int var_tilde;         /* DDPM variance: 1 beta-tilde, 0 beta */
    double noise_scale;    /* DDPM noise scale in [0, 1]; -1 until given or resolved */
    double guidance;
    double dthr;           /* dynamic thresholding percentile; 0 = off */
    int raw;               /* the live weights instead of the EMA weights */
    dfs_bf16_mode bf16;    /* --precision bf16: what runs (OFF: float32) */
    int set_sampler, set_guidance, set_variance; /* given on the command line */
    int used_recipe;       /* cli_sampling_resolve took the model's recommended settings */
    /* the command's defaults, for cli_sampling_resolve and the help */
    dfs_sampler_kind default_sampler;
    int default_steps;     /* for every sampler but ddpm (which visits all T steps): min(T, this) */
} cli_sampling;

/* --precision NAME (sample, eval, bench): "fp32" or "bf16" (dfs_set_bf16, process-wide). bf16
 * on a CPU without AVX512_BF16 says on stderr that float32 runs instead (or, under
 * DFS_BF16=emulate, that bf16 is emulated). The mode in force goes to *mode. 0, or 2 after a
 * one-line message when NAME is neither. */
int cli_precision_option(const char *arg, dfs_bf16_mode *mode);
/* "fp32", "bf16" or "bf16 (emulated)": for JSON and the run's summary. */
const char *cli_precision_name(dfs_bf16_mode mode);
/* The help lines of --precision. */
void cli_precision_help(FILE *f);
/* --conv NAME (sample, eval, bench): "direct", "winograd" or "auto" (dfs_set_conv_algo,
 * process-wide); 0, or 2 after a one-line message. */
int cli_conv_option(const char *arg);
/* The help lines of --conv. */
void cli_conv_help(FILE *f);

/* ", noise scale S" when a recipe records a noise scale other than 1, else "" (a static buffer:
 * one call per printf). */
const char *cli_recipe_noise(const dfs_sampling_recipe *r);
/* ", noise scale S" for a sampler's scale S other than 1, else "" (the same static buffer). */
const char *cli_noise_note(float s);
/* The noise scale to sample with: `given` (>= 0, from --noise-scale), else the recipe's when the
 * sampler is the recipe's, else 1. A given scale other than 1 with a sampler other than ddpm:
 * 2 after a one-line message naming cmd, else 0 with *out set. */
int cli_noise_scale(const char *cmd, double given, dfs_sampler_kind kind, const dfs_sampling_recipe *r, float *out);

/* The options' defaults, and the command's own sampler and step count. */
void cli_sampling_init(cli_sampling *o, dfs_sampler_kind sampler, int default_steps);
/* One option from getopt_long: 0 when it was a sampling option and is taken, 2 after a
 * one-line message when its value is bad, -1 when it is not a sampling option. */
int cli_sampling_option(cli_sampling *o, int opt, const char *arg);
/* The help lines of the shared options, with the command's defaults. */
void cli_sampling_help(FILE *f, const cli_sampling *o);
/* Once the model is loaded. When `sampling` (the command draws samples this run): --guidance
 * is refused for an unconditional model, with "CMD: MODEL is unconditional; ...". Always:
 * --steps past the model's T is refused. Then, when sampling, the model's recommended settings
 * (m->sampling) fill in what was not given: the sampler, its steps when the sampler is the
 * recommended one, and the guidance when `conditioned` (the samples have a condition for it to
 * act on); last, the command's default steps. 0, or 2 after a one-line message. */
int cli_sampling_resolve(cli_sampling *o, const char *cmd, const char *model_path, const dfs_model *m,
                         int sampling, int unconditional, int conditioned);
/* "the model's recommended settings: ..." on stderr, when cli_sampling_resolve used them. */
void cli_sampling_say_recipe(const cli_sampling *o, const dfs_model *m);
/* A request for n samples with labels (may be NULL) under these options: the sampler's
 * settings and the weights (raw or EMA). The caller adds known entries, an initial image, a
 * null label (a negative prompt) or a callback. */
void cli_sampling_request(const cli_sampling *o, dfs_sample_request *r, const int *labels, int n);

/* The progress line of a sampling run, over its network evaluations (dfs_sampler_evals):
 * RePaint's resampling steps back and forth, the count does not. */
typedef struct {
    cli_progress bar;
    long calls;             /* steps done */
    int per;                /* network evaluations per step: 2 for heun (1 on its last step) */
    dfs_sample_cb next;     /* the request's own callback, called first (sample's --trajectory) */
    void *next_user;
} cli_sample_progress;

/* Put the progress line in r's callback, chained before the callback r had (if any). Call it
 * last, once the request's sampler settings are final; sp must outlive the run. */
void cli_sample_progress_attach(cli_sample_progress *sp, dfs_sample_request *r);
/* End the progress line (before the next message). */
void cli_sample_progress_end(cli_sample_progress *sp);

#endif
