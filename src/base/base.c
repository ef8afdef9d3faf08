/* base.c - status codes and errors, logging, assertions, threads, the random generator. */
#include "diffuse/base.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- status, errors, logging ------------------------------------------------------------ */

static const char *const status_names[DFS_STATUS_COUNT] = {
    "ok", "bad argument", "i/o error", "bad file format", "shape mismatch",
    "out of memory", "not a number", "interrupted",
};

const char *dfs_status_str(dfs_status s) {
    return (s >= 0 && s < DFS_STATUS_COUNT) ? status_names[s] : "unknown status";
}

static _Thread_local char last_error[512];

void dfs_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *dfs_last_error(void) { return last_error; }

static dfs_log_fn log_fn;
static void *log_user;

void dfs_set_log(dfs_log_fn fn, void *user) {
    log_fn = fn;
    log_user = user;
}

void dfs_log(dfs_log_level level, const char *fmt, ...) {
    if (!log_fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(level, buf, log_user);
}

void dfs_assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "diffuse: assertion failed at %s:%d: %s\n", file, line, expr);
    abort();
}

/* ---- threads ------------------------------------------------------------------------------ */

static int n_threads = 1;

void dfs_set_threads(int n) {
    if (n < 1) n = 1;
    n_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

int dfs_get_threads(void) { return n_threads; }

int dfs_op_threads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- random numbers: xoshiro256** (Blackman & Vigna 2018), seeded with splitmix64 -------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dfs_rng_seed(dfs_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
    r->has_spare = 0;
    r->spare = 0.0f;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dfs_rng_u64(dfs_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float dfs_rng_uniform(dfs_rng *r) { return (float)(dfs_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

uint32_t dfs_rng_below(dfs_rng *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection: exactly uniform. */
    uint64_t m = (uint64_t)(uint32_t)(dfs_rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t thresh = (uint32_t)(-n) % n;
        while (lo < thresh) {
            m = (uint64_t)(uint32_t)(dfs_rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float dfs_rng_normal(dfs_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    /* Box-Muller (1958): two uniforms give two independent standard normals. */
    double u1 = ((double)(dfs_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0,1] */
    double u2 = (double)(dfs_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    double rad = sqrt(-2.0 * log(u1));
    r->spare = (float)(rad * sin(2.0 * M_PI * u2));
    r->has_spare = 1;
    return (float)(rad * cos(2.0 * M_PI * u2));
}

void dfs_rng_fill_normal(dfs_rng *r, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = dfs_rng_normal(r);
}

void dfs_epoch_order(int *perm, int n, uint64_t seed, long epoch) {
    dfs_rng r;
    dfs_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(epoch + 1)));
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)dfs_rng_below(&r, (uint32_t)i + 1);
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

