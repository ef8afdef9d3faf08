/* progress.h - the progress line every diffuse command shows, and its time format (cli/progress.c).
 *
 * On a terminal (stderr is a tty) one line is redrawn in place, at most 10 times a second and
 * always at the end:
 *     step 120/1000 [==>                     ] loss 0.0412 | 51.3 img/s | 0m21s elapsed | ETA 2m51s
 * When stderr is not a terminal (a log file, a pipe) the same text goes out as plain lines, about
 * `lines` of them over the run (where the count passes a multiple of total/lines, and at the
 * end), or none. */
#ifndef DFS_CLI_PROGRESS_H
#define DFS_CLI_PROGRESS_H

#include "common.h"

/* "3m07s" under an hour, "1h02m" from an hour; "--" for a negative (unknown) or absurd time. */
void cli_fmt_time(char *buf, size_t n, double seconds);

#define CLI_ETA_AUTO (-2.0) /* cli_progress_update: the ETA from the rate since the start */

typedef struct {
    const char *what; /* before the count: "step", "network evaluations", ...; may be changed
                         between updates (the epoch of "epoch 2/3 step") */
    long total;
    long done0;       /* the count at the start (a resumed run): the rate counts from here */
    long every;       /* not a terminal: a line each time the count passes a multiple of every,
                         and at the end; 0: none */
    long prev;        /* the count of the previous update */
    int tty;          /* stderr is a terminal */
    int drawn;        /* a line has been shown */
    int open;         /* a redrawn line is on the terminal, not yet ended by a newline */
    int width;        /* its length, to blank a longer one it replaces */
    double t0, last;  /* the start, the last line (cli_now) */
} cli_progress;

/* A run of `total` counts that starts at done0 (0, or the step a run resumes at). lines: about
 * how many plain lines it prints when stderr is not a terminal (a line every total/lines
 * counts, at least 1; 0: none). The clock starts now. */
void cli_progress_start(cli_progress *p, const char *what, long total, long done0, int lines);
/* Show `done` of total: "WHAT DONE/TOTAL [bar] EXTRA | ELAPSED elapsed | ETA T", where EXTRA is
 * printf(fmt, ...) (fmt may be NULL) and eta is in seconds: CLI_ETA_AUTO to compute it from the
 * rate since the start, a negative value when unknown. Does nothing when it is not the time
 * for a line (see above), before the text is formatted. */
void cli_progress_update(cli_progress *p, long done, double eta, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* End the redrawn line with a newline, if one is showing: before any other output (a message,
 * an error) and at the end of the run. Safe to call more than once. */
void cli_progress_end(cli_progress *p);

#endif
