/* crps_dump.c OUT.safetensors - scores fixed random sample forecasts with dfs_forecast_score and
 * writes the inputs (samples, truth with NaNs, mask) and the scores (metadata, "%.17g") for
 * torch_crps.py to recompute as CSDI does, with torch.quantile (tests/parity/parity_crps.sh).
 * Cases: many samples with a mask and NaN truths; 7 integer-valued samples and integer truths
 * (ties, truths on interval ends); 1 and 2 samples; values centred at 1000. */
#include "diffuse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { CASES = 5 };

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: crps_dump OUT.safetensors\n");
        return 2;
    }
    /* W S P */
    const int cs[CASES][3] = {{4, 100, 108}, {3, 7, 50}, {2, 1, 20}, {1, 2, 30}, {5, 20, 24}};
    float *keep[CASES * 2] = {0};
    uint8_t *keep_mask[CASES] = {0};
    dfs_rng rng;
    dfs_rng_seed(&rng, 2021);
    dfs_st_writer *w = dfs_st_writer_new();
    dfs_status st = DFS_OK;
    for (int c = 0; c < CASES; c++) {
        const int W = cs[c][0], S = cs[c][1], P = cs[c][2];
        float *x = malloc((size_t)W * S * P * sizeof *x), *y = malloc((size_t)W * P * sizeof *y);
        uint8_t *mask = malloc((size_t)W * P);
        keep[2 * c] = x, keep[2 * c + 1] = y, keep_mask[c] = mask;
        for (int win = 0; win < W; win++) {
            const double centre = (c == 4 ? 1000 : 0) + 2.0 * win - 3, scale = 0.5 + win;
            for (int p = 0; p < P; p++) {
                const size_t e = (size_t)win * P + p;
                double v = centre + scale * (1.5 * dfs_rng_normal(&rng) + 0.3);
                y[e] = c == 1 ? (float)lround(v) : (float)v;
                mask[e] = c == 0 ? dfs_rng_uniform(&rng) < 0.7f : 1;
                if (c == 0 && p % 17 == 5) y[e] = NAN; /* skipped, masked or not */
                for (int s = 0; s < S; s++) {
                    double u = centre + scale * dfs_rng_normal(&rng);
                    x[((size_t)win * S + s) * P + p] = c == 1 ? (float)lround(u) : (float)u;
                }
            }
        }
        dfs_forecast_scores o;
        if ((st = dfs_forecast_score(x, y, mask, W, S, (size_t)P, &o)) != DFS_OK) break;
        char name[64], val[64];
        snprintf(name, sizeof name, "case%d.samples", c);
        dfs_st_writer_add(w, name, DFS_DT_F32, 3, (int64_t[]){W, S, P}, x);
        snprintf(name, sizeof name, "case%d.truth", c);
        dfs_st_writer_add(w, name, DFS_DT_F32, 2, (int64_t[]){W, P}, y);
        snprintf(name, sizeof name, "case%d.mask", c);
        dfs_st_writer_add(w, name, DFS_DT_U8, 2, (int64_t[]){W, P}, mask);
        const struct {
            const char *n;
            double v;
        } f[] = {{"crps_quantile", o.crps_quantile},
                 {"crps_sample", o.crps_sample},
                 {"ncrps_quantile", o.ncrps_quantile},
                 {"ncrps_sample", o.ncrps_sample},
                 {"mae_median", o.mae_median},
                 {"bias_median", o.bias_median},
                 {"cover50", o.cover50},
                 {"cover90", o.cover90},
                 {"n", (double)o.n}};
        for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
            snprintf(name, sizeof name, "case%d.%s", c, f[i].n);
            snprintf(val, sizeof val, "%.17g", f[i].v);
            dfs_st_writer_meta(w, name, val);
        }
    }
    if (st == DFS_OK) st = dfs_st_writer_write(w, argv[1]);
    dfs_st_writer_free(w);
    for (int c = 0; c < CASES; c++)
        free(keep[2 * c]), free(keep[2 * c + 1]), free(keep_mask[c]);
    if (st != DFS_OK) {
        fprintf(stderr, "crps_dump: %s\n", dfs_last_error());
        return 1;
    }
    return 0;
}
