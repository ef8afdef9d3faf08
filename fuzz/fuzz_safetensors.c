/* fuzz_safetensors.c - dfs_st_load on arbitrary bytes, then every accessor on what it returns:
 * each tensor's data must lie inside the buffer (ASan checks the reads), each name must be found
 * again by dfs_st_find, each metadata key by dfs_st_meta. */
#include "diffuse.h"
#include "fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.safetensors");
    fuzz_write(path, data, size);
    dfs_safetensors st;
    unsigned sum = 0;
    dfs_status s = dfs_st_load(&st, path);
    FUZZ_REPORT("dfs_st_load", s);
    if (s != DFS_OK) {
        if (!dfs_last_error()[0]) fuzz_fail("dfs_st_load failed without an error message");
        return 0;
    }
    static const size_t dtype_size[DFS_DT_COUNT] = {4, 2, 8, 1};
    for (int i = 0; i < st.count; i++) {
        const dfs_st_tensor *t = &st.t[i];
        if ((int)t->dtype < 0 || t->dtype >= DFS_DT_COUNT || t->ndim < 0 || t->ndim > DFS_MAXDIM)
            fuzz_fail("tensor %d: dtype %d, ndim %d", i, (int)t->dtype, t->ndim);
        size_t numel = 1;
        for (int k = 0; k < t->ndim; k++) numel *= (size_t)t->shape[k];
        if (numel * dtype_size[t->dtype] != t->nbytes)
            fuzz_fail("tensor %s: %zu bytes for %zu elements", t->name, t->nbytes, numel);
        const uint8_t *b = st.buf, *p = t->data;
        if (t->nbytes && (p < b || p + t->nbytes > b + st.size))
            fuzz_fail("tensor %s: data outside the file buffer", t->name);
        sum += fuzz_touch(t->data, t->nbytes);
        const dfs_st_tensor *f = dfs_st_find(&st, t->name);
        if (!f || strcmp(f->name, t->name) != 0) fuzz_fail("dfs_st_find does not find tensor %s", t->name);
    }
    for (int i = 0; i < st.nmeta; i++) {
        const char *v = dfs_st_meta(&st, st.meta_keys[i]);
        if (!v) fuzz_fail("dfs_st_meta does not find key %s", st.meta_keys[i]);
        sum += fuzz_touch(v, strlen(v));
    }
    dfs_st_free(&st);
    (void)sum; // fuzz_touch reads through a volatile pointer: the reads stay
    return 0;
}
