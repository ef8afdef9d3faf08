/* fuzz_series.c - time-series model checkpoints: dfs_series_load on arbitrary bytes (the
 * "csdi", "diffusion" and "series" metadata, the size of the config against the file, every
 * tensor, EMA, moments, state, sampling recipe), then a one-step forecast of one short window
 * with what loaded (every loaded weight is finite; the forecast must be too, or NaN reported). */
#include "diffuse.h"
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.safetensors");
    fuzz_write(path, data, size);
    dfs_series_model *m = NULL;
    dfs_train_state st;
    int has_optim = -1;
    char *train = NULL;
    dfs_status s = dfs_series_load(path, &m, &st, &has_optim, &train);
    FUZZ_REPORT("dfs_series_load", s);
    if (s != DFS_OK) {
        if (m || train) fuzz_fail("series_load failed (%s) but returned a model or train JSON", dfs_status_str(s));
        return 0;
    }
    if (!m || !m->net || m->K < 1 || (has_optim != 0 && has_optim != 1)) fuzz_fail("series_load: OK without a model");
    if (train) fuzz_touch(train, strlen(train));
    for (int k = 0; k < m->K; k++) {
        fuzz_touch(m->names[k], strlen(m->names[k]));
        if (!(m->sd[k] > 0) || !isfinite(m->mean[k])) fuzz_fail("series_load: feature %d normalised by %g, %g", k, m->mean[k], m->sd[k]);
    }
    /* a forecast of 1 step after 3, one sample, one DDIM step, on small models only */
    if (m->K <= 8 && dfs_csdi_params(m->net)->n <= 200000) {
        enum { L = 4 };
        const int K = m->K;
        float *v = malloc(sizeof(float) * L * K), *out = malloc(sizeof(float) * L * K);
        uint8_t *kn = malloc((size_t)L * K);
        int64_t tm[L];
        for (int j = 0; j < L * K; j++) {
            kn[j] = j / K < L - 1;
            v[j] = kn[j] ? (float)m->mean[j % K] : NAN;
        }
        for (int l = 0; l < L; l++) tm[l] = 1262304000 + (int64_t)l * 86400;
        dfs_series_request r;
        dfs_series_request_default(&r);
        r.values = v, r.known = kn, r.times = tm, r.W = 1, r.L = L, r.S = 1;
        r.sampler.kind = DFS_SAMPLER_DDIM;
        r.sampler.steps = 1;
        dfs_rng g;
        dfs_rng_seed(&g, 1);
        s = dfs_series_sample(m, &r, &g, out);
        FUZZ_REPORT("dfs_series_sample", s);
        if (s == DFS_OK)
            for (int j = 0; j < L * K; j++)
                if (!isfinite(out[j])) fuzz_fail("series_sample: OK with a non-finite value");
        free(v), free(out), free(kn);
    }
    free(train);
    dfs_series_model_free(m);
    return 0;
}
