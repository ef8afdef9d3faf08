/* peak_args.h - the command line of bench/sgemm_peak.c and bench/fma_peak.c: `PROG [threads]`,
 * threads an integer in 1..256 (default 2). Returns the thread count, or -1 after printing
 * why not (the caller exits with 2). */
#ifndef DFS_BENCH_PEAK_ARGS_H
#define DFS_BENCH_PEAK_ARGS_H

#include <stdio.h>
#include <stdlib.h>

static int peak_threads_arg(const char *prog, int argc, char **argv) {
    if (argc > 2) {
        fprintf(stderr, "usage: %s [threads]\n", prog);
        return -1;
    }
    if (argc < 2) return 2;
    char *end;
    const long v = strtol(argv[1], &end, 10);
    if (end == argv[1] || *end || v < 1 || v > 256) {
        fprintf(stderr, "%s: threads must be an integer in 1..256, not '%s'\n", prog, argv[1]);
        return -1;
    }
    return (int)v;
}

#endif
