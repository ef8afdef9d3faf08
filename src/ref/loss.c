/* loss.c - cross-entropy as its definition, term by term, in double, without the max shift:
 * what tests compare dfs_cross_entropy (src/ops/loss.c) to. Exact for logits of moderate size
 * (|z| < ~700); tests use it where that holds and check the stable op alone on large logits. */
#include "ref.h"

#include <math.h>
#include <stddef.h>

double dfs_cross_entropy_reference(double *dz, const float *z, const int *labels, int N, int K) {
    double loss = 0;
    for (int i = 0; i < N; i++) {
        const float *zi = z + (size_t)i * K;
        double s = 0;
        for (int k = 0; k < K; k++)
            s += exp((double)zi[k]);
        loss += -log(exp((double)zi[labels[i]]) / s) / N;
        if (dz)
            for (int k = 0; k < K; k++)
                dz[(size_t)i * K + k] = (exp((double)zi[k]) / s - (k == labels[i])) / N;
    }
    return loss;
}
