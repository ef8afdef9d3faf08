/* train_loop.h - the loop of a training command, written once for 'series train' and 'mol train'
 * (cli/train_loop.c): the steps with their learning rate, metrics.csv, the progress bar,
 * checkpoints every N steps and at the end, Ctrl-C and SIGTERM, --minutes over resumes, and
 * the ranks of an MPI run stopping together. */
#ifndef DFS_CLI_TRAIN_LOOP_H
#define DFS_CLI_TRAIN_LOOP_H

#include "common.h"

struct cJSON; /* <cjson/cJSON.h> */

typedef struct {
    const char *cmd;              /* "series train", "mol train", for messages */
    const char *unit;             /* what a batch holds, for the bar: "windows", "molecules" */
    int resumed;                  /* 1: say first what the resumed run continues with */
    const char *ckpt, *final;     /* RUNDIR/last.safetensors, RUNDIR/model.safetensors */
    const char *csv;              /* RUNDIR/metrics.csv, for messages */
    FILE *metrics;                /* open on rank 0 (a header line already there), else NULL */
    long steps, batch, save_every, log_every;
    double minutes;               /* 0: no limit; else the run's total over resumes */
    double lr;                    /* the peak rate */
    double ema;                   /* the EMA decay, for the message of a resume */
    int warmup;                   /* the optimiser's warm-up steps (metrics.csv shows the ramp) */
    void *user;
    /* one optimiser step at learning rate lr */
    dfs_status (*step)(void *user, float lr, float *loss);
    /* a checkpoint: resumable (full, with the state) or for sampling */
    dfs_status (*save)(void *user, const char *path, int full);
} cli_train_loop;

/* The options every training command shares, and their values. */
typedef struct {
    long steps, batch, seed, save_every, log_every, threads;
    double minutes, lr;
    double ema;     /* the EMA decay of the weights; the command sets its default */
    int resume;
    unsigned given; /* bit k: option CLI_TRAIN_OPT + k was on the command line */
} cli_train_args;

/* Their getopt_long entries (the codes are CLI_TRAIN_OPT + 0..9), for a command's table; clear
 * of the series task options' 1000..1019 (cli/series.h). */
enum { CLI_TRAIN_OPT = 1100 };
#define CLI_TRAIN_OPTIONS                                                                                            \
    {"steps", required_argument, 0, CLI_TRAIN_OPT + 0}, {"minutes", required_argument, 0, CLI_TRAIN_OPT + 1},      \
        {"batch", required_argument, 0, CLI_TRAIN_OPT + 2}, {"lr", required_argument, 0, CLI_TRAIN_OPT + 3},       \
        {"seed", required_argument, 0, CLI_TRAIN_OPT + 4}, {"save-every", required_argument, 0, CLI_TRAIN_OPT + 5}, \
        {"log-every", required_argument, 0, CLI_TRAIN_OPT + 6}, {"resume", no_argument, 0, CLI_TRAIN_OPT + 7},     \
        {"threads", required_argument, 0, CLI_TRAIN_OPT + 8}, {"ema", required_argument, 0, CLI_TRAIN_OPT + 9}

/* Takes option o with its argument when it is one of CLI_TRAIN_OPTIONS: 0 when taken, 2 after
 * a message when the value is bad, -1 when o is not one of them. */
int cli_train_option(int o, const char *arg, cli_train_args *t);

/* The run's record (the "train" JSON of its checkpoints) gets t's settings: batch, lr, ema,
 * steps, minutes (0: no limit), save_every and log_every. 0, or -1 when out of memory. */
int cli_train_record(struct cJSON *rec, const cli_train_args *t);

/* A number of a run's record (key in rec), checked against the range of the option it stands
 * for (the float32 of each bound, as records held float settings, so that --lr 0.99 resumes;
 * a whole number where the option takes one): *out gets it, or keeps its value when the record
 * has no key. 0, or 2 after a message: a hand-edited record is refused, not run. */
int cli_record_number(const struct cJSON *rec, const char *key, double lo, double hi, int whole, double *out);

/* The note of a resume given an --lr other than the run's (as float32, which records held),
 * on rank 0; whether they differ. */
int cli_train_lr_note(double recorded, double given);

/* A resumed run takes its record's settings (json, from its checkpoint): the batch always (a
 * note names a --batch that says otherwise), and lr, ema, steps, minutes, save_every and
 * log_every unless given (a note names a given --lr or --ema that differs: a run whose loss went
 * NaN resumes with a lower --lr). A setting the record lacks (an older run's) keeps the option's value
 * (cli_train_loop_run then says what the run continues with). *rec_out (when rec_out is
 * non-NULL) gets the parsed record, for the command's own settings, to be freed with
 * cJSON_Delete. 0, or 2 after a message: a record that is not a JSON object, or a setting out
 * of its option's range (cli_record_number); without a record the options stand. */
int cli_train_restore(const char *cmd, const char *json, cli_train_args *t, struct cJSON **rec_out);

/* A text setting of a resumed run's record (rec from cli_train_restore) for an option the
 * command line left out (*v NULL; it then points into rec); a given one that differs gets a
 * note, as the run changes with it. */
void cli_train_restore_text(const char *cmd, const struct cJSON *rec, const char *key, const char *opt, const char **v);

/* Whether the folder that will hold run folder out exists and can be written, checked on rank 0
 * before minutes of work (the run folder itself is made later): 0, or 2 after a message. */
int cli_train_out_ok(const char *cmd, const char *out);

/* CSDI's MultiStepLR: lr x0.1 at 75% and again at 90% of the run, the run's progress being
 * the larger of its share of steps and of minutes (so that a run stopped by the clock still
 * anneals). */
float cli_train_lr(const cli_train_loop *L, long step, double minutes);

/* Train from st->step to L->steps (or L->minutes), rank 0 writing and speaking. Returns 0 or
 * the exit status after a message; st->wall_seconds counts the training time. */
int cli_train_loop_run(const cli_train_loop *L, dfs_train_state *st);

#endif
