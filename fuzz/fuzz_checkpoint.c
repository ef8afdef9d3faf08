/* fuzz_checkpoint.c - model checkpoints: dfs_checkpoint_load on arbitrary bytes (metadata
 * JSON, the config-versus-file size check, every tensor, EMA, optimiser moments, state and
 * tokenizer), then dfs_checkpoint_init_from into a fixed tiny model (name and shape matching,
 * float16 conversion). */
#include "diffuse.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

/* The smallest U-Net the config check allows with one level: 4x4 gray images, 2 channels. */
static dfs_model *tiny_model(void) {
    static dfs_model *m;
    if (m) return m;
    dfs_model_config mc;
    memset(&mc, 0, sizeof mc);
    dfs_unet_config *u = &mc.unet;
    u->image_size = 4, u->in_channels = 1, u->base_channels = 2, u->nlevels = 1;
    u->mult[0] = 1, u->enc_blocks = 1, u->dec_blocks = 2, u->groups = 1, u->num_classes = 2;
    mc.schedule = DFS_SCHEDULE_LINEAR, mc.T = 10, mc.prediction = DFS_PRED_EPS;
    if (!(m = dfs_model_new(&mc, 1))) fuzz_fail("tiny model: %s", dfs_last_error());
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.safetensors");
    fuzz_write(path, data, size);
    dfs_model *m = NULL;
    dfs_train_state st;
    int has_optim = -1;
    char *train = NULL;
    dfs_status s = dfs_checkpoint_load(path, &m, &st, &has_optim, &train);
    FUZZ_REPORT("dfs_checkpoint_load", s);
    if (s == DFS_OK) {
        if (!m || !m->net || (has_optim != 0 && has_optim != 1)) fuzz_fail("checkpoint_load: OK without a model");
        if (train) fuzz_touch(train, strlen(train));
        dfs_model_free(m);
        free(train);
    } else if (m || train) {
        fuzz_fail("checkpoint_load failed (%s) but returned a model or train JSON", dfs_status_str(s));
    }
    int loaded = -1, total = -1;
    char *fresh = NULL;
    s = dfs_checkpoint_init_from(tiny_model(), path, &loaded, &total, &fresh);
    FUZZ_REPORT("dfs_checkpoint_init_from", s);
    if (s == DFS_OK && (!fresh || loaded < 1 || loaded > total)) fuzz_fail("init_from: %d of %d loaded", loaded, total);
    free(fresh);
    return 0;
}
