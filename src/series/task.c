/* series/task.c - checking a forecasting or imputation task (include/diffuse/series.h). */
#include "diffuse/series.h"

#include <stddef.h>

dfs_status dfs_series_task_check(const dfs_series_task *t) {
    if (!t || !t->s || !t->start || !t->known) {
        dfs_set_error("series task: NULL series, starts or known mask");
        return DFS_ERR_ARG;
    }
    const dfs_series *s = t->s;
    if (t->W < 1 || t->L < 1 || s->n_features < 1 || s->n_steps < t->L) {
        dfs_set_error("series task: %d windows of %d steps over a series of %d steps and %d "
                      "features", t->W, t->L, s->n_steps, s->n_features);
        return DFS_ERR_ARG;
    }
    if (t->train_end < 1 || t->train_end > s->n_steps) {
        dfs_set_error("series task: training span of %d rows outside 1..%d", t->train_end,
                      s->n_steps);
        return DFS_ERR_ARG;
    }
    int K = s->n_features;
    for (int w = 0; w < t->W; w++) {
        if (t->start[w] < 0 || t->start[w] > s->n_steps - t->L) {
            dfs_set_error("series task: window %d starts at row %d, outside 0..%d", w,
                          t->start[w], s->n_steps - t->L);
            return DFS_ERR_ARG;
        }
        const uint8_t *kn = t->known + (size_t)w * t->L * K;
        const uint8_t *ob = s->observed + (size_t)t->start[w] * K;
        for (size_t j = 0; j < (size_t)t->L * K; j++)
            if (kn[j] && !ob[j]) {
                dfs_set_error("series task: window %d gives entry (step %zu, %s), which the "
                              "series does not observe", w, j / K, s->names ? s->names[j % K] : "?");
                return DFS_ERR_ARG;
            }
    }
    return DFS_OK;
}
