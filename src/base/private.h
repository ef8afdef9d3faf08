/* private.h - what the layers above need from base beyond the public diffuse/base.h. Not
 * public API. */
#ifndef DFS_BASE_PRIVATE_H
#define DFS_BASE_PRIVATE_H

/* Threads an op may use: 1 inside a parallel region (no nesting), else the OpenMP maximum. */
int dfs_op_threads(void);

#endif
