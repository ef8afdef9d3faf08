/* masks.h - small helpers the diffusion files share for padding masks. Not public API. */
#ifndef DFS_DIFFUSION_MASKS_H
#define DFS_DIFFUSION_MASKS_H

#include "diffuse/diffusion.h"

/* v[j] = 0 where present[j] == 0, over N entries; nothing when present is NULL. */
static inline void masks_pad(const uint8_t *present, float *v, size_t N) {
    if (!present) return;
    for (size_t j = 0; j < N; j++)
        if (!present[j]) v[j] = 0.0f;
}

/* Whether entry j is modelled: present and not known. */
static inline int masks_modelled(const dfs_masks *m, size_t j) {
    return !m || ((!m->present || m->present[j]) && (!m->known_mask || !m->known_mask[j]));
}

#endif
