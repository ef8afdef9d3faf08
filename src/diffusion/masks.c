/* masks.c - padding masks, noise draws and the zero-centre-of-mass projection: what lets one
 * diffusion core serve images, series and molecules (docs/DIFFUSION.md, "Masks and
 * projections").
 *
 * References
 *   EDM-mol  Hoogeboom, Satorras, Vignac, Welling 2022, "Equivariant Diffusion for Molecule
 *            Generation in 3D", sec. 3 (the positions' zero centre-of-mass subspace) */
#include "masks.h"

#include <stdlib.h>

size_t dfs_masks_count(const dfs_masks *m, int n, size_t dim) {
    const size_t N = (size_t)n * dim;
    if (!m || (!m->present && !m->known_mask)) return N;
    size_t c = 0;
    for (size_t j = 0; j < N; j++) c += (size_t)masks_modelled(m, j);
    return c;
}

/* Padded entries take no random numbers: the normals of the present entries are drawn in a
 * row into the front of z and then moved to their places, from the back, so that no value is
 * overwritten before it is moved (the k-th present entry sits at an index >= k). */
void dfs_draw_noise(const dfs_masks *m, dfs_rng *rng, float *z, int n, size_t dim) {
    const size_t N = (size_t)n * dim;
    const uint8_t *present = m ? m->present : NULL;
    if (!present) {
        dfs_rng_fill_normal(rng, z, N);
    } else {
        size_t k = 0;
        for (size_t j = 0; j < N; j++) k += present[j] != 0;
        dfs_rng_fill_normal(rng, z, k);
        for (size_t j = N; j-- > 0;) z[j] = present[j] ? z[--k] : 0.0f;
    }
    if (m && m->project) {
        m->project(m->project_user, z, present, n, dim);
        masks_pad(present, z, N);
    }
}

/* EDM-mol sec. 3: P x = x - 1 mean_a(x_a), per coordinate, over the present atoms. As a
 * matrix on one coordinate's m present atoms P = I - 11^T / m: symmetric and idempotent, so
 * an orthogonal projector; padded entries map to 0, features to themselves. */
void dfs_project_zero_com(void *user, float *v, const uint8_t *present, int n, size_t dim) {
    const dfs_com_layout def = {3, 3};
    const dfs_com_layout *L = user ? user : &def;
    DFS_ASSERT(L->coords >= 1 && L->width >= L->coords && dim % (size_t)L->width == 0);
    const size_t atoms = dim / (size_t)L->width, w = (size_t)L->width;
    for (int i = 0; i < n; i++) {
        float *vi = v + (size_t)i * dim;
        const uint8_t *pi = present ? present + (size_t)i * dim : NULL;
        for (int c = 0; c < L->coords; c++) {
            double sum = 0;
            size_t cnt = 0;
            for (size_t a = 0; a < atoms; a++) {
                const size_t j = a * w + (size_t)c;
                if (pi && !pi[j]) continue;
                sum += vi[j];
                cnt++;
            }
            const double mean = cnt ? sum / (double)cnt : 0.0;
            for (size_t a = 0; a < atoms; a++) {
                const size_t j = a * w + (size_t)c;
                vi[j] = pi && !pi[j] ? 0.0f : (float)(vi[j] - mean);
            }
        }
        masks_pad(pi, vi, dim); /* the features' padded entries */
    }
}
