/* csdi_dump.c OUT.safetensors - builds a small CSDI denoiser (src/nn/csdi.c) with every weight
 * random (the LayerNorms off 1 and 0, the last projection, which starts at zero, random too),
 * runs it forward and backward (L = sum R out, R fixed random) on three batches: both
 * transformers, K = 1 (no feature transformer) and L = 1 (no time transformer), and writes the
 * weights, the inputs, the outputs and every parameter gradient for torch_csdi.py to repeat in
 * PyTorch (tests/parity/parity_csdi.sh).
 *
 * Names: "param.<name>" the weights (PyTorch-style names, csdi.c's), "caseI.<x>" the inputs
 * xt, cond, mask (0/1 as float), t (int64), calendar, R, the output "caseI.out" and
 * "caseI.grad.<name>"; metadata "csdi" the config as JSON, "caseI.shape" "B L K". */
#include "diffuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CASES = 3, MAXKEEP = 512 };
static void *keep[MAXKEEP];
static int nkeep;

static void *kept(size_t bytes) {
    void *p = malloc(bytes);
    if (!p || nkeep == MAXKEEP) {
        fprintf(stderr, "csdi_dump: out of memory\n");
        exit(1);
    }
    return keep[nkeep++] = p;
}

static float *copy(const float *s, size_t n) {
    float *p = kept(n * sizeof(float));
    memcpy(p, s, n * sizeof(float));
    return p;
}

static float unif(dfs_rng *r) {
    return 2.0f * dfs_rng_uniform(r) - 1.0f;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: csdi_dump OUT.safetensors\n");
        return 2;
    }
    /* 4 heads of 4 channels; 5 feature-embedding rows for windows of up to 4 features */
    dfs_csdi_config c;
    dfs_csdi_config_default(&c);
    c.features = 5, c.channels = 16, c.layers = 2, c.heads = 4, c.ff = 24;
    c.step_dim = 12, c.time_dim = 10, c.feature_dim = 4, c.calendar = 3;
    dfs_rng rng;
    dfs_rng_seed(&rng, 31);
    dfs_csdi *n = dfs_csdi_new(&c, &rng);
    if (!n) {
        fprintf(stderr, "csdi_dump: %s\n", dfs_last_error());
        return 1;
    }
    dfs_params *p = dfs_csdi_params(n);
    for (int i = 0; i < p->count; i++) {
        dfs_tensor *t = p->t[i];
        if (strstr(t->name, ".ln")) {
            const float base = strstr(t->name, "weight") ? 1.0f : 0.0f;
            for (size_t k = 0; k < t->n; k++)
                t->data[k] = base + 0.3f * dfs_rng_normal(&rng);
        } else if (strncmp(t->name, "output.fc2.", 11) == 0) {
            for (size_t k = 0; k < t->n; k++)
                t->data[k] = 0.25f * unif(&rng); /* U(+-1/sqrt(C)) */
        }
    }
    dfs_st_writer *w = dfs_st_writer_new();
    char name[256];
    for (int i = 0; i < p->count; i++) {
        const dfs_tensor *t = p->t[i];
        int64_t shape[DFS_MAXDIM];
        for (int d = 0; d < t->ndim; d++)
            shape[d] = t->shape[d];
        snprintf(name, sizeof name, "param.%s", t->name);
        dfs_st_writer_add(w, name, DFS_DT_F32, t->ndim, shape, t->data);
    }
    const int cs[CASES][3] = {{3, 7, 4}, {2, 6, 1}, {2, 1, 4}}; /* B L K */
    for (int ci = 0; ci < CASES; ci++) {
        const int B = cs[ci][0], L = cs[ci][1], K = cs[ci][2], NC = c.calendar;
        const size_t nv = (size_t)B * L * K;
        float *xt = kept(nv * sizeof(float)), *cond = kept(nv * sizeof(float));
        float *maskf = kept(nv * sizeof(float)), *R = kept(nv * sizeof(float));
        float *cal = kept((size_t)B * L * NC * sizeof(float));
        uint8_t *mask = kept(nv);
        int *t = kept((size_t)B * sizeof(int));
        int64_t *t64 = kept((size_t)B * sizeof(int64_t));
        for (size_t i = 0; i < nv; i++) {
            xt[i] = dfs_rng_normal(&rng);
            cond[i] = dfs_rng_normal(&rng);
            mask[i] = dfs_rng_uniform(&rng) < 0.4f;
            maskf[i] = mask[i];
            R[i] = dfs_rng_normal(&rng);
        }
        for (size_t i = 0; i < (size_t)B * L * NC; i++)
            cal[i] = unif(&rng);
        for (int b = 0; b < B; b++)
            t64[b] = t[b] = (int)dfs_rng_below(&rng, 50);
        dfs_csdi_input in = {B, L, K, xt, cond, mask, t, cal, NULL};
        dfs_graph *g = dfs_graph_new();
        dfs_params_zero_grad(p);
        dfs_tensor *o = dfs_csdi_forward(n, g, &in);
        dfs_backward_grad(g, o, R);
        const struct {
            const char *n;
            const void *d;
            dfs_dtype dt;
            int nd;
            int64_t sh[3];
        } io[] = {{"xt", xt, DFS_DT_F32, 3, {B, L, K}},
                  {"cond", cond, DFS_DT_F32, 3, {B, L, K}},
                  {"mask", maskf, DFS_DT_F32, 3, {B, L, K}},
                  {"t", t64, DFS_DT_I64, 1, {B}},
                  {"calendar", cal, DFS_DT_F32, 3, {B, L, NC}},
                  {"R", R, DFS_DT_F32, 3, {B, L, K}},
                  {"out", copy(o->data, o->n), DFS_DT_F32, 3, {B, L, K}}};
        for (size_t i = 0; i < sizeof io / sizeof io[0]; i++) {
            snprintf(name, sizeof name, "case%d.%s", ci, io[i].n);
            dfs_st_writer_add(w, name, io[i].dt, io[i].nd, io[i].sh, io[i].d);
        }
        for (int i = 0; i < p->count; i++) {
            const dfs_tensor *pt = p->t[i];
            int64_t shape[DFS_MAXDIM];
            for (int d = 0; d < pt->ndim; d++)
                shape[d] = pt->shape[d];
            snprintf(name, sizeof name, "case%d.grad.%s", ci, pt->name);
            dfs_st_writer_add(w, name, DFS_DT_F32, pt->ndim, shape, copy(pt->grad, pt->n));
        }
        char key[32], val[64];
        snprintf(key, sizeof key, "case%d.shape", ci);
        snprintf(val, sizeof val, "%d %d %d", B, L, K);
        dfs_st_writer_meta(w, key, val);
        dfs_graph_free(g);
    }
    char cj[512];
    snprintf(
        cj, sizeof cj,
        "{\"features\":%d,\"channels\":%d,\"layers\":%d,\"heads\":%d,\"ff\":%d,\"step_dim\":%d,"
        "\"time_dim\":%d,\"feature_dim\":%d,\"calendar\":%d}",
        c.features, c.channels, c.layers, c.heads, c.ff, c.step_dim, c.time_dim, c.feature_dim,
        c.calendar);
    dfs_st_writer_meta(w, "csdi", cj);
    dfs_status s = dfs_st_writer_write(w, argv[1]);
    dfs_st_writer_free(w);
    dfs_csdi_free(n);
    for (int i = 0; i < nkeep; i++)
        free(keep[i]);
    if (s != DFS_OK) {
        fprintf(stderr, "csdi_dump: %s\n", dfs_last_error());
        return 1;
    }
    return 0;
}
