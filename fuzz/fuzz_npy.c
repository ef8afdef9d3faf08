/* fuzz_npy.c - .npy arrays: the same bytes through dfs_npy_read_u8, _i32, _f32 and _f64 (magic,
 * version 1.0 / 2.0 header, the Python-dict header, shape overflow, file size). A successful
 * read must return exactly prod(shape) elements (ASan checks the reads). */
#include "diffuse.h"
#include "fuzz.h"

#include <stdlib.h>

static void check(const char *what, dfs_status s, void *data, int ndim, const size_t *shape, size_t elsize) {
    FUZZ_REPORT(what, s);
    if (s != DFS_OK) {
        if (data) fuzz_fail("%s failed but returned data", what);
        return;
    }
    if (ndim < 0 || ndim > DFS_MAXDIM) fuzz_fail("%s: ndim %d", what, ndim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    if (!data) fuzz_fail("%s: OK without data", what);
    fuzz_touch(data, n * elsize);
    free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.npy");
    fuzz_write(path, data, size);
    size_t shape[DFS_MAXDIM];
    int ndim = -1;
    uint8_t *u8 = NULL;
    dfs_status s = dfs_npy_read_u8(path, &u8, &ndim, shape);
    check("dfs_npy_read_u8", s, u8, ndim, shape, 1);
    int32_t *i32 = NULL;
    ndim = -1;
    s = dfs_npy_read_i32(path, &i32, &ndim, shape);
    check("dfs_npy_read_i32", s, i32, ndim, shape, 4);
    float *f32 = NULL;
    ndim = -1;
    s = dfs_npy_read_f32(path, &f32, &ndim, shape);
    check("dfs_npy_read_f32", s, f32, ndim, shape, 4);
    double *f64 = NULL;
    ndim = -1;
    s = dfs_npy_read_f64(path, &f64, &ndim, shape);
    check("dfs_npy_read_f64", s, f64, ndim, shape, 8);
    return 0;
}
