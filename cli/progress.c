/* progress.c - the progress line of the diffuse commands, and their time format (cli/progress.h). */
#include "progress.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 24
#define REDRAW_S 0.1 /* a terminal line is redrawn at most 10 times a second */

void cli_fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "--"); /* NaN too */
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

void cli_progress_start(cli_progress *p, const char *what, long total, long done0, int lines) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->done0 = done0;
    p->tty = isatty(2);
    p->every = lines > 0 ? (total / lines > 0 ? total / lines : 1) : 0;
    p->prev = done0;
    p->t0 = cli_now();
}

void cli_progress_update(cli_progress *p, long done, double eta, const char *fmt, ...) {
    const double now = cli_now(), el = now - p->t0;
    const int end = done >= p->total;
    if (p->tty) {
        if (p->drawn && !end && now - p->last < REDRAW_S) return;
    } else { /* a line where the count passes a multiple of `every` (in steps of 1: reaches it) */
        const long prev = done < p->prev ? 0 : p->prev; /* a count that starts again: an epoch */
        p->prev = done;
        if (!p->every || (!end && done / p->every == prev / p->every)) return;
    }
    p->last = now;
    p->drawn = 1;
    if (eta == CLI_ETA_AUTO)
        eta = done > p->done0 && el > 0 ? el * (double)(p->total - done) / (double)(done - p->done0) : -1;
    char bar[BAR_WIDTH + 1], extra[256] = "", e[16], t[16];
    int fill = p->total > 0 ? (int)((double)BAR_WIDTH * done / p->total) : 0;
    fill = fill < 0 ? 0 : fill > BAR_WIDTH ? BAR_WIDTH : fill;
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[BAR_WIDTH] = 0;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        extra[0] = ' ';
        vsnprintf(extra + 1, sizeof extra - 1, fmt, ap);
        va_end(ap);
    }
    cli_fmt_time(t, sizeof t, el);
    cli_fmt_time(e, sizeof e, eta);
    char line[512];
    int len = snprintf(line, sizeof line, "%s %ld/%ld [%s]%s | %s elapsed | ETA %s", p->what, done, p->total, bar,
                       extra, t, e);
    if (len >= (int)sizeof line) len = (int)sizeof line - 1;
    if (p->tty) { /* in place; blanks what is left of a longer line before it */
        fprintf(stderr, "\r%s%*s", line, p->width > len ? p->width - len : 0, "");
        p->open = 1;
        p->width = len;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (!p->open) return;
    fputc('\n', stderr);
    fflush(stderr);
    p->open = 0;
    p->width = 0;
}
