/* fuzz_classifier.c - classifier checkpoints: dfs_classifier_load on arbitrary bytes (format,
 * the "classifier" config JSON, every tensor's dtype, shape and values). */
#include "diffuse.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.safetensors");
    fuzz_write(path, data, size);
    dfs_classifier *c = NULL;
    char *train = NULL;
    dfs_status s = dfs_classifier_load(path, &c, &train);
    FUZZ_REPORT("dfs_classifier_load", s);
    if (s == DFS_OK) {
        if (!c || !c->params) fuzz_fail("classifier_load: OK without a classifier");
        if (!(c->test_accuracy == -1.0 || (c->test_accuracy >= 0 && c->test_accuracy <= 1)))
            fuzz_fail("classifier_load: test accuracy %g", c->test_accuracy);
        if (train) fuzz_touch(train, strlen(train));
        dfs_classifier_free(c);
        free(train);
    } else if (c || train) {
        fuzz_fail("classifier_load failed (%s) but returned a classifier or train JSON", dfs_status_str(s));
    }
    return 0;
}
