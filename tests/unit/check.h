/* check.h - the test harness: checks that count, print what they compared on failure, and a
 * closing "N passed, N failed" line. A test program exits non-zero if any check failed. */
#ifndef DFS_CHECK_H
#define DFS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_pass, check_fail;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (cond) {                                                                           \
            check_pass++;                                                                     \
        } else {                                                                              \
            check_fail++;                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)

/* |a - b| <= atol + rtol |b| */
#define CHECK_CLOSE(a, b, atol, rtol, what)                                                   \
    do {                                                                                      \
        double ca_ = (a), cb_ = (b);                                                          \
        CHECK(fabs(ca_ - cb_) <= (atol) + (rtol)*fabs(cb_) && ca_ == ca_,                     \
              "%s: got %.9g, want %.9g (diff %.3g)", what, ca_, cb_, fabs(ca_ - cb_));        \
    } while (0)

/* The larger of two error magnitudes, where a NaN in either wins: an error maximum kept with
 * fmax(), or with `if (d > m) m = d`, silently drops a NaN and reports a broken output as exact.
 * Use as   worst = max_err(worst, fabs(a - b));   */
static inline double max_err(double m, double d) { return (m != m || d <= m) ? m : d; }

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_pass, check_fail);
    return check_fail ? 1 : 0;
}

#endif
