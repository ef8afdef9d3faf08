/* fuzz_csv.c - timestamped CSV series: the same bytes through dfs_csv_load_series with the
 * timestamp column and the step found by the loader, and with both given (header, dates and
 * date-times, numbers, empty fields, gaps, line endings, limits). A successful load must
 * return n_steps x n_features values and masks that agree (NaN exactly where not observed),
 * strictly increasing times on the step, and n_features names (ASan checks the reads). */
#include "diffuse.h"
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>

static void check(const char *what, dfs_status s, const dfs_series *r) {
    FUZZ_REPORT(what, s);
    if (s != DFS_OK) {
        if (r->values || r->observed || r->times || r->names) fuzz_fail("%s failed but returned data", what);
        return;
    }
    if (r->n_steps < 1 || r->n_features < 1) fuzz_fail("%s: %d steps, %d features", what, r->n_steps, r->n_features);
    const size_t n = (size_t)r->n_steps * (size_t)r->n_features;
    for (size_t i = 0; i < n; i++)
        if (!r->observed[i] != !!isnan(r->values[i])) fuzz_fail("%s: entry %zu: mask and NaN disagree", what, i);
    for (int i = 1; i < r->n_steps; i++)
        if (r->times[i] != r->times[i - 1] + r->step || r->step <= 0)
            fuzz_fail("%s: step %d is not %lld s after the one before", what, i, (long long)r->step);
    for (int j = 0; j < r->n_features; j++)
        if (!r->names[j]) fuzz_fail("%s: column %d has no name", what, j);
        else fuzz_touch(r->names[j], 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.csv");
    fuzz_write(path, data, size);
    dfs_series r = {0};
    check("dfs_csv_load_series", dfs_csv_load_series(&r, path, NULL), &r);
    dfs_series_free(&r);
    static const char *const cols[] = {"temp"};
    const dfs_csv_options opt = {.time_column = "date", .columns = cols, .n_columns = 1, .step = 3600};
    dfs_series q = {0};
    check("dfs_csv_load_series (date, temp, 3600 s)", dfs_csv_load_series(&q, path, &opt), &q);
    dfs_series_free(&q);
    return 0;
}
