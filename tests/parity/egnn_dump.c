/* egnn_dump.c OUT.safetensors - builds two small EGNN denoisers (src/nn/egnn.c): net 0 with
 * attention, tanh and two GCLs per block, net 1 without attention or tanh, one GCL per block
 * and EDM's norm_constant 0 of models.py; every weight random (the coordinate heads' last layer
 * too, which starts 1000 times smaller). Runs each forward and backward (L = sum R out, R fixed
 * random) through dfs_egnn_apply on two padded batches, and writes the weights, the inputs, the
 * outputs, every parameter gradient and the gradient of the input xh, for torch_egnn.py to
 * repeat in PyTorch (tests/parity/parity_egnn.sh).
 *
 * Names: "nN.param.<name>" the weights (EDM's names, egnn.c's), "nN.caseI.<x>" the inputs xh,
 * t, mask (0/1 as float), R, the output "nN.caseI.out", "nN.caseI.grad.<name>" and
 * "nN.caseI.grad_xh"; metadata "nN.egnn" the config as JSON, "nN.caseI.shape" "B M". */
#include "diffuse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NETS = 2, CASES = 2, MAXKEEP = 1024 };
static void *keep[MAXKEEP];
static int nkeep;

static void *kept(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p || nkeep == MAXKEEP) {
        fprintf(stderr, "egnn_dump: out of memory\n");
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

static void add(dfs_st_writer *w, const char *name, int ndim, const int *shape, const float *d) {
    int64_t sh[DFS_MAXDIM];
    for (int k = 0; k < ndim; k++)
        sh[k] = shape[k];
    dfs_st_writer_add(w, name, DFS_DT_F32, ndim, sh, d);
}

/* molecule m of case ci: which slots hold atoms */
static int present(int ci, int m, int i, int M) {
    if (ci == 0) /* 6 slots: full; 4 atoms scattered; 1 atom; 2 atoms at the end */
        return m == 0 || (m == 1 && i % 3 != 1) || (m == 2 && i == 2) || (m == 3 && i >= M - 2);
    return m == 0 ? i != 1 : 1; /* 5 slots: one padded slot; full */
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: egnn_dump OUT.safetensors\n");
        return 2;
    }
    dfs_rng rng;
    dfs_rng_seed(&rng, 2022);
    dfs_st_writer *w = dfs_st_writer_new();
    char name[320];
    for (int ni = 0; ni < NETS; ni++) {
        dfs_egnn_config c;
        dfs_egnn_config_default(&c);
        c.features = 5, c.hidden = 8, c.layers = 2;
        if (ni == 0) {
            c.sublayers = 2, c.coords_range = 3.0f, c.normalization_factor = 3.0f;
        } else {
            c.attention = 0, c.tanh = 0, c.norm_constant = 0.0f, c.normalization_factor = 2.0f;
        }
        dfs_egnn *n = dfs_egnn_new(&c, &rng);
        if (!n) {
            fprintf(stderr, "egnn_dump: %s\n", dfs_last_error());
            return 1;
        }
        dfs_params *p = dfs_egnn_params(n);
        for (int i = 0; i < p->count; i++) {
            dfs_tensor *t = p->t[i];
            if (!strstr(t->name, "coord_mlp.4")) continue;
            for (size_t k = 0; k < t->n; k++)
                t->data[k] = unif(&rng) / sqrtf((float)c.hidden);
        }
        for (int i = 0; i < p->count; i++) {
            snprintf(name, sizeof name, "n%d.param.%s", ni, p->t[i]->name);
            add(w, name, p->t[i]->ndim, p->t[i]->shape, copy(p->t[i]->data, p->t[i]->n));
        }
        const int D = 3 + c.features;
        for (int ci = 0; ci < CASES; ci++) {
            const int B = ci == 0 ? 4 : 2, M = ci == 0 ? 6 : 5, S = B * M;
            float *xh = kept(sizeof(float) * S * D), *t = kept(sizeof(float) * B);
            float *maskf = kept(sizeof(float) * S), *R = kept(sizeof(float) * S * D);
            uint8_t *mask = kept(S);
            for (int m = 0; m < B; m++) {
                t[m] = dfs_rng_uniform(&rng);
                for (int i = 0; i < M; i++)
                    mask[m * M + i] = (uint8_t)present(ci, m, i, M),
                                 maskf[m * M + i] = mask[m * M + i];
            }
            /* positions N(0, 1.2^2), features U(-1, 1); padded slots hold finite garbage */
            for (int s = 0; s < S; s++)
                for (int k = 0; k < D; k++)
                    xh[(size_t)s * D + k] = !mask[s] ? 5.0f + k
                                            : k < 3  ? 1.2f * dfs_rng_normal(&rng)
                                                     : unif(&rng);
            for (int s = 0; s < S * D; s++)
                R[s] = dfs_rng_normal(&rng);
            dfs_graph *g = dfs_graph_new();
            dfs_tensor *x = dfs_tensor_new(g, 3, (int[]){B, M, D});
            memcpy(x->data, xh, sizeof(float) * S * D);
            x->requires_grad = 1;
            dfs_params_zero_grad(p);
            dfs_tensor *o = dfs_egnn_apply(n, g, x, t, mask);
            dfs_backward_grad(g, o, R);
            const struct {
                const char *n;
                const float *d;
                int nd, sh[3];
            } io[] = {{"xh", xh, 3, {B, M, D}},
                      {"t", t, 1, {B}},
                      {"mask", maskf, 2, {B, M}},
                      {"R", R, 3, {B, M, D}},
                      {"out", copy(o->data, o->n), 3, {B, M, D}},
                      {"grad_xh", copy(x->grad, x->n), 3, {B, M, D}}};
            for (size_t i = 0; i < sizeof io / sizeof io[0]; i++) {
                snprintf(name, sizeof name, "n%d.case%d.%s", ni, ci, io[i].n);
                add(w, name, io[i].nd, io[i].sh, io[i].d);
            }
            for (int i = 0; i < p->count; i++) {
                const dfs_tensor *pt = p->t[i];
                snprintf(name, sizeof name, "n%d.case%d.grad.%s", ni, ci, pt->name);
                add(w, name, pt->ndim, pt->shape, copy(pt->grad, pt->n));
            }
            char key[64], val[64];
            snprintf(key, sizeof key, "n%d.case%d.shape", ni, ci);
            snprintf(val, sizeof val, "%d %d", B, M);
            dfs_st_writer_meta(w, key, val);
            dfs_graph_free(g);
        }
        char key[32], cj[512];
        snprintf(key, sizeof key, "n%d.egnn", ni);
        snprintf(cj, sizeof cj,
                 "{\"features\":%d,\"hidden\":%d,\"layers\":%d,\"sublayers\":%d,\"attention\":%d,"
                 "\"tanh\":%d,\"coords_range\":%.9g,\"norm_constant\":%.9g,"
                 "\"normalization_factor\":%.9g}",
                 c.features, c.hidden, c.layers, c.sublayers, c.attention, c.tanh,
                 (double)c.coords_range, (double)c.norm_constant, (double)c.normalization_factor);
        dfs_st_writer_meta(w, key, cj);
        /* the parameter order, for the check that it is EDM's */
        char *order = kept((size_t)p->count * 64 + 1);
        order[0] = 0;
        for (int i = 0; i < p->count; i++) {
            strcat(order, p->t[i]->name);
            if (i + 1 < p->count) strcat(order, " ");
        }
        snprintf(key, sizeof key, "n%d.order", ni);
        dfs_st_writer_meta(w, key, order);
        dfs_egnn_free(n);
    }
    dfs_status s = dfs_st_writer_write(w, argv[1]);
    dfs_st_writer_free(w);
    for (int i = 0; i < nkeep; i++)
        free(keep[i]);
    if (s != DFS_OK) {
        fprintf(stderr, "egnn_dump: %s\n", dfs_last_error());
        return 1;
    }
    return 0;
}
