/* test_step.c - the network side of a training step for any denoiser (dfs_step_run,
 * src/model/step.c): with masks, the one-thread and the data-parallel step give the loss and
 * the gradient of the core's masked loss, computed here directly. */
#include "diffuse.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* a denoiser: out = x W^T + b on rows [lo, lo + nb) of a (n, dim) batch */
typedef struct {
    dfs_tensor *w, *b;
    const float *x;
    int dim;
} lin;

static dfs_tensor *lin_rows(void *user, dfs_graph *g, int lo, int nb) {
    lin *l = user;
    dfs_tensor *x = dfs_tensor_wrap(g, (float *)l->x + (size_t)lo * l->dim, 2, (int[]){nb, l->dim});
    return dfs_linear(g, x, l->w, l->b);
}

static void test_masked_step(int threads) {
    const int n = 7, dim = 12;
    dfs_params *p = dfs_params_new();
    lin l = {.dim = dim};
    l.w = dfs_params_add(p, "w", 2, (int[]){dim, dim});
    l.b = dfs_params_add(p, "b", 1, (int[]){dim});
    CHECK(dfs_params_finalize(p) == DFS_OK, "params");
    dfs_rng r;
    dfs_rng_seed(&r, 5);
    float x[7 * 12], target[7 * 12];
    uint8_t present[7 * 12], known[7 * 12];
    for (size_t i = 0; i < p->n; i++) p->data[i] = dfs_rng_normal(&r) * 0.3f;
    for (int j = 0; j < n * dim; j++) {
        x[j] = dfs_rng_normal(&r);
        target[j] = dfs_rng_normal(&r);
        present[j] = dfs_rng_uniform(&r) < 0.8f;
        known[j] = dfs_rng_uniform(&r) < 0.3f;
    }
    /* row 2 has no modelled entry at all: its share is 0 */
    for (int k = 0; k < dim; k++) known[2 * dim + k] = 1;
    l.x = x;
    const dfs_masks m = {.present = present, .known_mask = known};
    /* the reference: out, the masked loss and its gradient by the core, the parameter gradient
     * by hand (dW = dout^T x, db = column sums), all in double */
    double gw[12 * 12] = {0}, gb[12] = {0};
    float outf[7 * 12], dout[7 * 12];
    for (int i = 0; i < n; i++)
        for (int o = 0; o < dim; o++) {
            double s = l.b->data[o];
            for (int k = 0; k < dim; k++) s += (double)l.w->data[o * dim + k] * x[i * dim + k];
            outf[i * dim + o] = (float)s;
        }
    const float want = dfs_masked_mse(&m, outf, target, n, dim, NULL);
    dfs_masked_mse_backward(dout, &m, outf, target, n, dim, 1.0f, NULL);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < dim; o++) {
            gb[o] += dout[i * dim + o];
            for (int k = 0; k < dim; k++) gw[o * dim + k] += (double)dout[i * dim + o] * x[i * dim + k];
        }
    dfs_set_threads(threads);
    dfs_step *st = dfs_step_new();
    const dfs_denoiser d = {p, lin_rows, &l};
    float loss = 0;
    CHECK(dfs_step_run(st, &d, n, dim, target, &m, &r, &loss) == DFS_OK, "step");
    /* the loss: a mean of ~50 squares of O(1) numbers, the same sums in another grouping (the
     * per-thread means weighted by their shares): within 50 u relatively */
    CHECK_CLOSE(loss, want, 0, 50 * 6e-8, threads == 1 ? "masked loss, one thread" : "masked loss, two threads");
    /* the gradients: sums of <= 7 products of O(1) terms, by float GEMMs: within 20 u of
     * sum |terms| (~ 7 * max |dout| |x|, max |dout| ~ 0.1, |x| <= 4) */
    double worst = 0;
    for (int i = 0; i < dim * dim; i++) worst = max_err(worst, fabs(p->grad[i] - gw[i]));
    for (int o = 0; o < dim; o++) worst = max_err(worst, fabs(p->grad[dim * dim + o] - gb[o]));
    CHECK(worst <= 20 * 6e-8 * 7 * 0.4 * 4 + 1e-7, "gradient of the masked loss (%d threads): worst %.3g", threads, worst);
    /* the data-parallel step weights each worker's mean by its share of modelled entries: with
     * equal weights by rows instead, row 2 (nothing modelled) would pull the mean down */

    /* the same batch again gives the same gradient bit for bit: the parameters' gradients,
     * which worker 0 writes directly, are cleared first, not added to; a step whose loss is
     * NaN leaves them as they were (AdamW is refused such a step: nothing reads them) */
    float *g1 = malloc(p->n * sizeof(float));
    memcpy(g1, p->grad, p->n * sizeof(float));
    CHECK(dfs_step_run(st, &d, n, dim, target, &m, &r, &loss) == DFS_OK &&
              memcmp(g1, p->grad, p->n * sizeof(float)) == 0,
          "%d threads: a second step of the same batch, the same gradient bit for bit", threads);
    float bad[7 * 12];
    memcpy(bad, target, sizeof bad);
    bad[0] = NAN; /* row 0: worker 0's rows */
    for (int k = 0; k < dim; k++) known[k] = 0;
    CHECK(dfs_step_run(st, &d, n, dim, bad, &m, &r, &loss) == DFS_OK && isnan(loss) &&
              memcmp(g1, p->grad, p->n * sizeof(float)) == 0,
          "%d threads: a NaN loss (%g) leaves the gradient as it was", threads, (double)loss);
    free(g1);
    dfs_step_free(st);
    dfs_params_free(p);
}

static void test_errors(void) {
    dfs_step *st = dfs_step_new();
    float t[4] = {0};
    dfs_rng r;
    dfs_rng_seed(&r, 1);
    CHECK(dfs_step_run(st, NULL, 1, 4, t, NULL, &r, NULL) == DFS_ERR_ARG, "NULL denoiser refused");
    dfs_params *p = dfs_params_new();
    dfs_params_finalize(p);
    const dfs_denoiser d = {p, lin_rows, NULL};
    CHECK(dfs_step_run(st, &d, 0, 4, t, NULL, &r, NULL) == DFS_ERR_ARG, "an empty batch refused");
    dfs_params_free(p);
    dfs_step_free(st);
}

/* The reducer's contract without MPI: two processes (fork) summing through pipes, rank 0
 * writing first, give with one thread each what one process of two threads gives, bit for
 * bit: the loss, the gradient and the generator's state after the step. */
typedef struct {
    int rank, rd, wr;
} pipe_reducer;

static int full_io(int fd, void *p, size_t n, int out) {
    char *b = p;
    while (n > 0) {
        ssize_t k = out ? write(fd, b, n) : read(fd, b, n);
        if (k <= 0) return -1;
        b += k, n -= (size_t)k;
    }
    return 0;
}

static dfs_status pipe_sum(void *user, float *buf, size_t n) {
    pipe_reducer *r = user;
    float *other = malloc(n * sizeof(float) + 1);
    if (!other) return DFS_ERR_NOMEM;
    int e = r->rank == 0 ? full_io(r->wr, buf, n * sizeof(float), 1) || full_io(r->rd, other, n * sizeof(float), 0)
                         : full_io(r->rd, other, n * sizeof(float), 0) || full_io(r->wr, buf, n * sizeof(float), 1);
    for (size_t i = 0; !e && i < n; i++) /* (0 + rank 0's) + rank 1's */
        buf[i] = r->rank == 0 ? (0.0f + buf[i]) + other[i] : (0.0f + other[i]) + buf[i];
    free(other);
    return e ? DFS_ERR_IO : DFS_OK;
}

/* one step of the masked linear denoiser from fixed data; *out gets loss, gradient, rng state */
static void reducer_step(float *out, size_t nout) {
    const int n = 7, dim = 12;
    dfs_params *p = dfs_params_new();
    lin l = {.dim = dim};
    l.w = dfs_params_add(p, "w", 2, (int[]){dim, dim});
    l.b = dfs_params_add(p, "b", 1, (int[]){dim});
    dfs_params_finalize(p);
    dfs_rng r;
    dfs_rng_seed(&r, 9);
    static float x[7 * 12], target[7 * 12];
    static uint8_t present[7 * 12], known[7 * 12];
    for (size_t i = 0; i < p->n; i++) p->data[i] = dfs_rng_normal(&r) * 0.3f;
    for (int j = 0; j < n * dim; j++) {
        x[j] = dfs_rng_normal(&r), target[j] = dfs_rng_normal(&r);
        present[j] = dfs_rng_uniform(&r) < 0.8f, known[j] = dfs_rng_uniform(&r) < 0.3f;
    }
    l.x = x;
    const dfs_masks m = {.present = present, .known_mask = known};
    dfs_step *st = dfs_step_new();
    const dfs_denoiser d = {p, lin_rows, &l};
    memset(out, 0xff, nout * sizeof(float));
    if (dfs_step_run(st, &d, n, dim, target, &m, &r, &out[0]) == DFS_OK && 1 + p->n + 8 <= nout) {
        memcpy(out + 1, p->grad, p->n * sizeof(float));
        memcpy(out + 1 + p->n, r.s, sizeof r.s);
    }
    dfs_step_free(st);
    dfs_params_free(p);
}

static void test_reducer(void) {
    enum { NOUT = 1 + 12 * 12 + 12 + 8 };
    static float want[NOUT], got[NOUT], child[NOUT];
    dfs_set_threads(2);
    reducer_step(want, NOUT);
    int a[2], b[2], res[2];
    if (pipe(a) || pipe(b) || pipe(res)) {
        CHECK(0, "pipes for the two processes");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* rank 1: reads a, writes b; its result back through res */
        dfs_set_threads(1);
        pipe_reducer pr = {1, a[0], b[1]};
        dfs_reducer red = {.rank = 1, .ranks = 2, .sum = pipe_sum, .user = &pr};
        dfs_set_reducer(&red);
        reducer_step(child, NOUT);
        _exit(full_io(res[1], child, sizeof child, 1) ? 1 : 0);
    }
    CHECK(pid > 0, "fork");
    if (pid < 0) return;
    dfs_set_threads(1);
    pipe_reducer pr = {0, b[0], a[1]};
    dfs_reducer red = {.rank = 0, .ranks = 2, .sum = pipe_sum, .user = &pr};
    CHECK(dfs_set_reducer(&red) == DFS_OK, "a reducer of 2 ranks");
    reducer_step(got, NOUT);
    dfs_set_reducer(NULL);
    int rc = full_io(res[0], child, sizeof child, 0), status = 0;
    waitpid(pid, &status, 0);
    CHECK(rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "rank 1 ran its step");
    CHECK(memcmp(got, want, sizeof want) == 0, "rank 0 of 2, one thread each: the loss (%.9g vs %.9g), gradient "
          "and generator of one process of two threads, bit for bit", got[0], want[0]);
    CHECK(memcmp(child, want, sizeof want) == 0, "rank 1 of 2: the same, bit for bit (loss %.9g)", child[0]);
    for (int k = 0; k < 2; k++) close(a[k]), close(b[k]), close(res[k]);
    dfs_reducer bad = {.rank = 2, .ranks = 2, .sum = pipe_sum};
    CHECK(dfs_set_reducer(&bad) == DFS_ERR_ARG, "rank 2 of 2 refused");
    bad = (dfs_reducer){.rank = 0, .ranks = 2, .sum = NULL};
    CHECK(dfs_set_reducer(&bad) == DFS_ERR_ARG, "a reducer without a sum refused");
}

/* The EMA of dfs_adamw_step: with its warm-up, e_s = d e_{s-1} + (1 - d) w_s where
 * d = min(decay, (1 + s) / (10 + s)), to 4 float ulps of its two terms' sizes (a compiler may
 * fuse the multiply-add, which moves the result by under 1 ulp); decay 0 makes it (a copy, bit
 * for bit) the weights themselves (before stop 33 the EMA was left at the first weights, so that a
 * sampling checkpoint of a run with --ema 0 held its initialisation). */
static void test_ema(void) {
    const float decays[3] = {0.0f, 0.9f, 0.05f};
    for (int k = 0; k < 3; k++) {
        dfs_params *p = dfs_params_new();
        dfs_tensor *t = dfs_params_add(p, "w", 1, (int[]){5});
        CHECK(t && dfs_params_finalize(p) == DFS_OK, "params");
        if (!t) {
            dfs_params_free(p);
            return;
        }
        for (int i = 0; i < 5; i++) p->data[i] = 0.25f * (float)(i - 2);
        dfs_params_ema_init(p);
        dfs_adamw_config c;
        dfs_adamw_config_default(&c);
        c.ema_decay = decays[k];
        c.warmup = 0;
        c.lr = 0.1f;
        int same = 1;
        for (long s = 1; s <= 30; s++) {
            float before[5];
            memcpy(before, p->ema, sizeof before);
            for (int i = 0; i < 5; i++) p->grad[i] = (float)((i + s) % 3) - 1.0f;
            CHECK(dfs_adamw_step(p, &c, s, NULL) == DFS_OK, "step %ld", s);
            float d = (1.0f + (float)s) / (10.0f + (float)s);
            if (decays[k] < d) d = decays[k];
            for (int i = 0; i < 5; i++) {
                if (decays[k] <= 0) {
                    same &= memcmp(&p->data[i], &p->ema[i], sizeof(float)) == 0;
                    continue;
                }
                const double a = (double)d * before[i], b = (1.0 - (double)d) * p->data[i];
                same &= fabs(p->ema[i] - (a + b)) <= ldexp(fabs(a) + fabs(b), -21);
            }
        }
        int moved = p->data[0] != -0.5f;
        CHECK(same && moved, "EMA of decay %g: the warm-up formula over 30 steps (weights moved: %d)",
              (double)decays[k], moved);
        dfs_params_free(p);
    }
}

int main(void) {
    test_reducer(); /* first, before other tests leave work to OpenMP (its child runs one-thread teams only) */
    test_ema();
    test_masked_step(1);
    test_masked_step(2);
    test_errors();
    return check_summary("test_step");
}
