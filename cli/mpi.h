/* mpi.h - diffuse train and diffuse series train over several processes (docs/DISTRIBUTED.md).
 * The library knows no network: cli/mpi.c hands it an ordered sum over MPI (dfs_set_reducer)
 * and gives the commands the few agreements a run needs. Built without MPI (make DFS_MPI=0,
 * or no mpicc), the same functions run one process and cost nothing. */
#ifndef DFS_CLI_MPI_H
#define DFS_CLI_MPI_H

#include "diffuse.h"

/* A line for the commands' --help: how to run under mpirun, or how to build for it. */
extern const char cli_mpi_help[];
/* MPI_Init when this process was started by an MPI launcher (mpirun, mpiexec, srun: it sets
 * OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK), then the ordered sum as the library's reducer
 * and a log that keeps the library's notes to rank 0. Else one process, as without MPI. 0, or
 * 2 after a message (a launcher but a build without MPI, or MPI_Init failed). */
int cli_mpi_start(const char *cmd);
/* This process and the number of them (0 and 1 without a launcher). */
int cli_mpi_rank(void);
int cli_mpi_ranks(void);
/* The largest of every rank's rc: a setup that failed on one rank (which said why) stops all. */
int cli_mpi_agree(int rc);
/* Once per step, before it: *stop (a reason to stop, e.g. 1 for --minutes, 2 for a signal)
 * and *wall (the run's seconds) become the largest over the ranks, so that every rank stops at the same step and a schedule on the
 * clock sees the same time everywhere. */
void cli_mpi_step_agree(int *stop, double *wall);
/* 0 when every rank has the same value h of what (a checksum of the model, state and data),
 * else 2 after one message from rank 0 naming the first rank that differs. */
int cli_mpi_same(uint64_t h, const char *what);
/* A failure on this rank alone in the middle of a run (the others wait in the next step's
 * sum): after its message, MPI_Abort ends every rank with status rc. Returns rc without MPI. */
int cli_mpi_abort(int rc);
/* For the closing line: the seconds spent in the gradient sums, those spent before them
 * waiting for the slowest rank, and the number of sums. */
void cli_mpi_sum_time(double *seconds, double *wait, long *calls);
/* MPI_Finalize when MPI was started; returns rc. */
int cli_mpi_end(int rc);
/* FNV-1a over n bytes, continued from h (start with CLI_FNV_SEED). */
#define CLI_FNV_SEED 0xcbf29ce484222325ULL
uint64_t cli_fnv(uint64_t h, const void *p, size_t n);

#endif
