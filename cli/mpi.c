/* mpi.c - the processes of a data-parallel run, over MPI (cli/mpi.h, docs/DISTRIBUTED.md).
 * Compiled with mpicc's flags and -DDFS_MPI when the Makefile finds mpicc; without it the
 * same functions run one process. Every rank runs the whole trainer on the whole batch; the
 * library's dfs_step_run takes this rank's share of the workers and calls mpi_sum (below) for
 * the worker layout, the losses and the gradient. */
#include "mpi.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef DFS_MPI
#include <limits.h>
#include <mpi.h>
#endif

uint64_t cli_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

#ifndef DFS_MPI

const char cli_mpi_help[] =
    "  (this diffuse is built without MPI: install libopenmpi-dev and openmpi-bin, as\n"
    "  scripts/setup.sh does, and rebuild, to train with mpirun -np N; docs/DISTRIBUTED.md)\n";

int cli_mpi_start(const char *cmd) {
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK"))
        return cli_fail("%s: started by an MPI launcher, but this diffuse is built without MPI: install "
                        "libopenmpi-dev and rebuild (docs/DISTRIBUTED.md)", cmd);
    return 0;
}
int cli_mpi_rank(void) { return 0; }
int cli_mpi_ranks(void) { return 1; }
int cli_mpi_agree(int rc) { return rc; }
void cli_mpi_step_agree(int *stop, double *wall) { (void)stop, (void)wall; }
int cli_mpi_same(uint64_t h, const char *what) { return (void)h, (void)what, 0; }
int cli_mpi_abort(int rc) { return rc; }
void cli_mpi_sum_time(double *seconds, double *wait, long *calls) { *seconds = 0, *wait = 0, *calls = 0; }
int cli_mpi_end(int rc) { return rc; }

#else

const char cli_mpi_help[] =
    "  (data-parallel over processes: mpirun -np N diffuse ... splits every batch among the N\n"
    "  ranks and gives what one process of N threads gives; rank 0 writes; docs/DISTRIBUTED.md)\n";

static struct {
    int started, rank, ranks;
    float *recv;      /* (cap) the chunks of the other ranks */
    size_t cap;
    int *cnt, *dsp;   /* (ranks) chunk sizes and offsets */
    double sum_s;     /* time in the gradient sums, less the wait for the slowest rank */
    double wait_s;    /* the wait (a barrier before each gradient sum) */
    long sum_n;
    size_t grad_n;    /* the largest sum seen: the gradient */
} mp = {.rank = 0, .ranks = 1};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The ordered sum of dfs_reducer: a reduce-scatter by hand, then an allgather. Rank r gets
 * chunk r of every rank's buffer (MPI_Alltoallv), adds them in rank order from 0.0f, and
 * MPI_Allgatherv hands every rank every summed chunk. The same bytes on the wire as a ring
 * allreduce, and the order of the additions is fixed, unlike MPI_SUM's. */
static dfs_status mpi_sum(void *user, float *buf, size_t n) {
    (void)user;
    const int R = mp.ranks, me = mp.rank;
    if (n == 0) return DFS_OK;
    if (n > (size_t)INT_MAX) {
        dfs_set_error("a sum of %zu floats is beyond MPI's int counts", n);
        return DFS_ERR_ARG;
    }
    /* the gradient (the largest sum of a step) is timed: the wait for the slowest rank (a
     * barrier, one latency) apart from the sum itself */
    const int timed = n >= mp.grad_n;
    double t0 = now(), waited = 0;
    if (timed) {
        MPI_Barrier(MPI_COMM_WORLD);
        waited = now() - t0;
        t0 = now();
    }
    for (int r = 0; r < R; r++) {
        mp.dsp[r] = (int)((long long)r * (long long)n / R);
        mp.cnt[r] = (int)((long long)(r + 1) * (long long)n / R) - mp.dsp[r];
    }
    const int mine = mp.cnt[me];
    if ((size_t)R * (size_t)mine > mp.cap) {
        float *b = realloc(mp.recv, (size_t)R * (size_t)mine * sizeof(float));
        if (!b) {
            dfs_set_error("out of memory for the sum between processes");
            return DFS_ERR_NOMEM;
        }
        mp.recv = b;
        mp.cap = (size_t)R * (size_t)mine;
    }
    int *rc = mp.cnt + R, *rd = mp.dsp + R; /* what comes in: chunk `me` of every rank */
    for (int r = 0; r < R; r++) rc[r] = mine, rd[r] = r * mine;
    if (MPI_Alltoallv(buf, mp.cnt, mp.dsp, MPI_FLOAT, mp.recv, rc, rd, MPI_FLOAT, MPI_COMM_WORLD) != MPI_SUCCESS) {
        dfs_set_error("MPI_Alltoallv failed");
        return DFS_ERR_IO;
    }
    float *out = buf + mp.dsp[me];
    for (int i = 0; i < mine; i++) {
        float s = 0.0f;
        for (int r = 0; r < R; r++) s += mp.recv[(size_t)r * mine + i];
        out[i] = s;
    }
    if (MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, mp.cnt, mp.dsp, MPI_FLOAT, MPI_COMM_WORLD) !=
        MPI_SUCCESS) {
        dfs_set_error("MPI_Allgatherv failed");
        return DFS_ERR_IO;
    }
    if (timed) {
        if (n > mp.grad_n) mp.sum_s = 0, mp.wait_s = 0, mp.sum_n = 0;
        mp.grad_n = n;
        mp.sum_s += now() - t0;
        mp.wait_s += waited;
        mp.sum_n++;
    }
    return DFS_OK;
}

/* The library's notes and warnings come from every rank alike: rank 0 says them. */
static void rank_log(dfs_log_level level, const char *msg, void *user) {
    if (mp.rank == 0) cli_log(level, msg, user);
}

int cli_mpi_start(const char *cmd) {
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK")) return 0;
    int provided = 0;
    /* MPI_THREAD_FUNNELED: only the thread that runs the step calls MPI (the OpenMP workers never) */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return cli_fail("%s: MPI_Init failed", cmd);
    mp.started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &mp.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mp.ranks);
    if (mp.ranks > 1) snprintf(cli_who, sizeof cli_who, "rank %d: ", mp.rank);
    mp.cnt = malloc(4 * (size_t)mp.ranks * sizeof(int));
    if (!mp.cnt) return cli_fail("%s: out of memory", cmd);
    mp.dsp = mp.cnt + 2 * mp.ranks;
    dfs_set_log(rank_log, NULL);
    const dfs_reducer red = {.rank = mp.rank, .ranks = mp.ranks, .sum = mpi_sum};
    if (dfs_set_reducer(&red) != DFS_OK) return cli_fail_status(DFS_ERR_ARG);
    return 0;
}

int cli_mpi_rank(void) { return mp.rank; }
int cli_mpi_ranks(void) { return mp.ranks; }

int cli_mpi_agree(int rc) {
    if (!mp.started) return rc;
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

void cli_mpi_step_agree(int *stop, double *wall) {
    if (!mp.started) return;
    double v[2] = {(double)*stop, *wall}, all[2];
    MPI_Allreduce(v, all, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    *stop = (int)all[0];
    *wall = all[1];
}

int cli_mpi_same(uint64_t h, const char *what) {
    if (!mp.started || mp.ranks < 2) return 0;
    uint64_t *all = malloc((size_t)mp.ranks * sizeof *all);
    if (!all) return cli_mpi_abort(cli_fail("out of memory"));
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    int bad = -1;
    for (int r = 1; r < mp.ranks && bad < 0; r++)
        if (all[r] != all[0]) bad = r;
    free(all);
    if (bad < 0) return 0;
    if (mp.rank == 0)
        fprintf(stderr, "diffuse: rank %d's %s differ from rank 0's: every rank must read the same data and "
                "checkpoint with the same options\n", bad, what);
    return 2;
}

int cli_mpi_abort(int rc) {
    if (mp.started && mp.ranks > 1) {
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    return rc;
}

void cli_mpi_sum_time(double *seconds, double *wait, long *calls) {
    *seconds = mp.sum_s;
    *wait = mp.wait_s;
    *calls = mp.sum_n;
}

int cli_mpi_end(int rc) {
    if (mp.started) {
        dfs_set_reducer(NULL);
        MPI_Finalize();
        mp.started = 0;
    }
    free(mp.cnt);
    free(mp.recv);
    mp.cnt = NULL, mp.recv = NULL;
    return rc;
}

#endif
