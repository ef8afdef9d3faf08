/* fuzz_molckpt.c - molecule-model checkpoints: dfs_mol_load on arbitrary bytes (the "egnn",
 * "molecules" and "diffusion" metadata, the size of the config against the file, the size
 * histogram, every tensor, EMA, moments, state, sampling recipe). A model that loads must have a
 * config in range (dfs_egnn_config_check, 6 features, a schedule of T = 1..100000 steps), 1..
 * DFS_MOL_MAX_SLOTS slots, a size histogram with none of 0 atoms and some molecules, finite
 * weights and EMA, and a recipe (when set) of 1..T steps without guidance. Small models are
 * then saved for sampling and loaded again (the same config, histogram and recipe, the EMA
 * weights as the weights, bit for bit), and draw one molecule with one DDIM step, its size from
 * the histogram: finite positions and H, C, N, O, F atoms, or DFS_ERR_NAN for a diverged net. */
#include "diffuse.h"
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_model(const char *what, const dfs_mol_model *m) {
    const dfs_mol_config *c = &m->cfg;
    if (!m->net || !m->sizes) fuzz_fail("%s: a model without a net or sizes", what);
    if (dfs_egnn_config_check(&c->net) != DFS_OK || c->net.features != DFS_MOL_TYPES + 1)
        fuzz_fail("%s: EGNN config out of range (%d features): %s", what, c->net.features,
                  dfs_last_error());
    if (c->schedule < 0 || c->schedule >= DFS_SCHEDULE_COUNT || c->T < 1 || c->T > 100000 ||
        m->sched.T != c->T)
        fuzz_fail("%s: schedule %d of %d steps (%d built)", what, (int)c->schedule, c->T,
                  m->sched.T);
    if (m->M < 1 || m->M > DFS_MOL_MAX_SLOTS) fuzz_fail("%s: %d atom slots", what, m->M);
    long total = 0;
    for (int a = 0; a <= m->M; a++) {
        if (m->sizes[a] < 0 || (a == 0 && m->sizes[a]))
            fuzz_fail("%s: %ld molecules of %d atoms", what, m->sizes[a], a);
        total += m->sizes[a];
    }
    if (total <= 0) fuzz_fail("%s: no training molecules in the histogram", what);
    const dfs_sampling_recipe *r = &m->sampling;
    if (r->set && (r->kind < 0 || r->kind >= DFS_SAMPLER_COUNT || r->steps < 1 || r->steps > c->T ||
                   r->guidance != 1.0f))
        fuzz_fail("%s: recipe of sampler %d, %d steps, guidance %g", what, (int)r->kind, r->steps,
                  (double)r->guidance);
    const dfs_params *p = dfs_egnn_params(m->net);
    if (p->n != dfs_egnn_param_count(&c->net))
        fuzz_fail("%s: %zu parameters, the config says %zu", what, p->n,
                  dfs_egnn_param_count(&c->net));
    for (size_t i = 0; i < p->n; i++)
        if (!isfinite(p->data[i]) || !isfinite(p->ema[i]))
            fuzz_fail("%s: parameter %zu is not finite", what, i);
}

/* m saved for sampling and loaded again */
static void save_load(dfs_mol_model *m) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "saved.safetensors");
    dfs_status s = dfs_mol_save(path, m, NULL, "{\"fuzz\":1}", DFS_CKPT_SAMPLING);
    FUZZ_REPORT("dfs_mol_save", s);
    if (s != DFS_OK) fuzz_fail("a loaded model cannot be saved: %s", dfs_last_error());
    dfs_mol_model *b = NULL;
    dfs_train_state st;
    char *train = NULL;
    s = dfs_mol_load(path, &b, &st, NULL, &train);
    FUZZ_REPORT("dfs_mol_load (saved again)", s);
    if (s != DFS_OK) fuzz_fail("a saved model does not load: %s", dfs_last_error());
    check_model("dfs_mol_load (saved again)", b);
    if (!train || strcmp(train, "{\"fuzz\":1}"))
        fuzz_fail("saved again: train JSON \"%s\"", train ? train : "(none)");
    const dfs_egnn_config *x = &m->cfg.net, *y = &b->cfg.net;
    if (x->hidden != y->hidden || x->layers != y->layers || x->sublayers != y->sublayers ||
        x->attention != y->attention || x->tanh != y->tanh || x->coords_range != y->coords_range ||
        x->norm_constant != y->norm_constant ||
        x->normalization_factor != y->normalization_factor || m->cfg.schedule != b->cfg.schedule ||
        m->cfg.T != b->cfg.T || m->M != b->M)
        fuzz_fail("saved again: the config changed");
    if (memcmp(m->sizes, b->sizes, sizeof *m->sizes * (size_t)(m->M + 1)))
        fuzz_fail("saved again: sizes changed");
    const dfs_sampling_recipe *r = &m->sampling, *q = &b->sampling;
    if (r->set != q->set ||
        (r->set && (r->kind != q->kind || r->steps != q->steps || r->var_beta != q->var_beta)))
        fuzz_fail("saved again: the recipe changed");
    const dfs_params *pm = dfs_egnn_params(m->net), *pb = dfs_egnn_params(b->net);
    if (pm->n != pb->n || memcmp(pm->ema, pb->data, pm->n * sizeof(float)))
        fuzz_fail("saved again: the weights are not the EMA weights saved");
    free(train);
    dfs_mol_model_free(b);
}

static void sample_one(dfs_mol_model *m) {
    dfs_mol_request r;
    dfs_mol_request_default(&r);
    r.sampler.kind = DFS_SAMPLER_DDIM;
    r.sampler.steps = 1;
    int size = -1;
    r.sizes = &size;
    dfs_rng g;
    dfs_rng_seed(&g, 1);
    dfs_mol out;
    memset(&out, 0, sizeof out);
    dfs_status s = dfs_mol_sample(m, &r, &g, &out);
    FUZZ_REPORT("dfs_mol_sample", s);
    if (s == DFS_OK) {
        if (size < 1 || size > m->M || !m->sizes[size] || out.n != size)
            fuzz_fail("mol_sample: %d atoms drawn, %d made (%d slots)", size, out.n, m->M);
        for (int a = 0; a < out.n; a++) {
            if (dfs_mol_z_type(out.z[a]) < 0)
                fuzz_fail("mol_sample: atom %d is element %d", a, out.z[a]);
            for (int d = 0; d < 3; d++)
                if (!isfinite(out.pos[3 * a + d]))
                    fuzz_fail("mol_sample: OK with a non-finite position");
        }
    } else if (s != DFS_ERR_NAN) {
        fuzz_fail("mol_sample: %s: %s", dfs_status_str(s), dfs_last_error());
    }
    dfs_mol_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.safetensors");
    fuzz_write(path, data, size);
    dfs_mol_model *m = NULL;
    dfs_train_state st;
    int has_optim = -1;
    char *train = NULL;
    dfs_status s = dfs_mol_load(path, &m, &st, &has_optim, &train);
    FUZZ_REPORT("dfs_mol_load", s);
    if (s != DFS_OK) {
        if (m || train)
            fuzz_fail("mol_load failed (%s) but returned a model or train JSON", dfs_status_str(s));
        return 0;
    }
    if (!m || (has_optim != 0 && has_optim != 1)) fuzz_fail("mol_load: OK without a model");
    check_model("dfs_mol_load", m);
    if (train) fuzz_touch(train, strlen(train));
    /* small models only: the net's cost grows with the slots squared */
    if (m->M <= 32 && dfs_egnn_params(m->net)->n <= 50000) {
        save_load(m);
        sample_one(m);
    }
    free(train);
    dfs_mol_model_free(m);
    return 0;
}
