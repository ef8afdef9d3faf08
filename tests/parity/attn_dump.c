/* attn_dump.c OUT.safetensors - runs dfs_attention forward and backward on fixed random inputs
 * (several shapes, heads and masks) and writes inputs, outputs and gradients for
 * torch_attn.py to repeat in PyTorch (tests/parity/parity_attn.sh). */
#include "diffuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CASES = 3, MAXT = 9 };
static float *keep[CASES * MAXT * 2];
static int nkeep;

static float *randn(dfs_rng *r, size_t n) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = dfs_rng_normal(r);
    return keep[nkeep++] = p;
}

static float *copy(const float *s, size_t n) {
    float *p = malloc(n * sizeof(float));
    memcpy(p, s, n * sizeof(float));
    return keep[nkeep++] = p;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: attn_dump OUT.safetensors\n");
        return 2;
    }
    const int cs[CASES][6] = {{2, 5, 7, 8, 12, 2}, {3, 6, 6, 12, 12, 3}, {1, 49, 9, 32, 32, 1}}; /* N Lq Lk D Dv h */
    dfs_rng rng;
    dfs_rng_seed(&rng, 77);
    dfs_st_writer *w = dfs_st_writer_new();
    for (int c = 0; c < CASES; c++) {
        const int N = cs[c][0], Lq = cs[c][1], Lk = cs[c][2], D = cs[c][3], Dv = cs[c][4], h = cs[c][5];
        dfs_graph *g = dfs_graph_new();
        float *qd = randn(&rng, (size_t)N * Lq * D), *kd = randn(&rng, (size_t)N * Lk * D),
              *vd = randn(&rng, (size_t)N * Lk * Dv), *R = randn(&rng, (size_t)N * Lq * Dv);
        float *maskf = randn(&rng, (size_t)N * Lk);
        uint8_t *mask = malloc((size_t)N * Lk);
        for (int i = 0; i < N * Lk; i++) {
            mask[i] = c == 1 ? 1 : (i % Lk == 0 || maskf[i] > -0.5f); /* keep key 0: no empty rows */
            maskf[i] = mask[i];
        }
        dfs_tensor *q = dfs_tensor_wrap(g, qd, 3, (int[]){N, Lq, D}), *k = dfs_tensor_wrap(g, kd, 3, (int[]){N, Lk, D}),
                   *v = dfs_tensor_wrap(g, vd, 3, (int[]){N, Lk, Dv});
        q->requires_grad = k->requires_grad = v->requires_grad = 1;
        dfs_tensor *o = dfs_attention(g, q, k, v, h, mask);
        dfs_backward_grad(g, o, R);
        char name[64];
        const struct {
            const char *n;
            float *d;
            int nd;
            int64_t sh[3];
        } t[] = {{"q", qd, 3, {N, Lq, D}},          {"k", kd, 3, {N, Lk, D}},
                 {"v", vd, 3, {N, Lk, Dv}},         {"mask", maskf, 2, {N, Lk, 0}},
                 {"R", R, 3, {N, Lq, Dv}},          {"out", copy(o->data, o->n), 3, {N, Lq, Dv}},
                 {"dq", copy(q->grad, q->n), 3, {N, Lq, D}}, {"dk", copy(k->grad, k->n), 3, {N, Lk, D}},
                 {"dv", copy(v->grad, v->n), 3, {N, Lk, Dv}}};
        for (int i = 0; i < MAXT; i++) {
            snprintf(name, sizeof name, "case%d.%s", c, t[i].n);
            dfs_st_writer_add(w, name, DFS_DT_F32, t[i].nd, t[i].sh, t[i].d);
        }
        snprintf(name, sizeof name, "%d", h);
        char key[32];
        snprintf(key, sizeof key, "case%d.heads", c);
        dfs_st_writer_meta(w, key, name);
        free(mask);
        dfs_graph_free(g);
    }
    dfs_status s = dfs_st_writer_write(w, argv[1]);
    dfs_st_writer_free(w);
    for (int i = 0; i < nkeep; i++) free(keep[i]);
    if (s != DFS_OK) {
        fprintf(stderr, "attn_dump: %s\n", dfs_last_error());
        return 1;
    }
    return 0;
}
