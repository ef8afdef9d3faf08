/* test_baselines.c - the forecasting and imputation baselines (src/series/baselines.c): the
 * contract every one keeps (shape, known entries bit for bit, nothing read past the training
 * span but the windows' known entries), hand-checked cases of climatology, seasonal naive and
 * interpolation, the VAR's fit and simulated law against the closed forms of an AR(1) and a
 * VAR(1), the Gaussian's conditional law against an AR(1)'s, and Seattle's weather. */
#include "check.h"
#include "diffuse.h"

#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------------------- */

/* A series of n steps and K features, all observed, zero, times t0 + k step; names NULL. */
static dfs_series make_series(int n, int K, int64_t step, int64_t t0) {
    dfs_series s = {.n_steps = n, .n_features = K, .step = step};
    s.values = calloc((size_t)n * K, sizeof *s.values);
    s.observed = malloc((size_t)n * K);
    s.times = malloc(sizeof *s.times * n);
    if (!s.values || !s.observed || !s.times) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(s.observed, 1, (size_t)n * K);
    for (int k = 0; k < n; k++)
        s.times[k] = t0 + k * step;
    return s;
}

static void unobserve(dfs_series *s, int r, int k) {
    s->observed[(size_t)r * s->n_features + k] = 0;
    s->values[(size_t)r * s->n_features + k] = NAN;
}

static int64_t T(const char *text) {
    int64_t t = 0;
    if (dfs_csv_parse_time(text, strlen(text), &t) != DFS_OK) {
        fprintf(stderr, "bad time %s\n", text);
        exit(2);
    }
    return t;
}

static float *alloc_out(size_t n) {
    float *o = malloc(sizeof *o * (n + 16));
    if (!o) exit(2);
    return o;
}

/* The baselines by number, with the parameters the contract tests use. */
enum { B_CLIM, B_SNAIVE, B_AR, B_INTERP, B_GAUSS, B_COUNT };
static const char *bname[B_COUNT] = {"climatology", "seasonal naive", "ar", "interp", "gaussian"};

static dfs_status run_baseline(int b, const dfs_series_task *t, int S, uint64_t seed, float *out) {
    dfs_rng rng;
    dfs_rng_seed(&rng, seed);
    switch (b) {
    case B_CLIM:
        return dfs_baseline_climatology(t, S, &rng, out);
    case B_SNAIVE:
        return dfs_baseline_seasonal_naive(t, 7, S, &rng, out);
    case B_AR:
        return dfs_baseline_ar(t, 2, S, &rng, out);
    case B_INTERP:
        return dfs_baseline_interp(t, 50, S, &rng, out);
    default:
        return dfs_baseline_gaussian(t, S, &rng, out);
    }
}

/* Known entries of out (W, S, L, K) bit for bit the series', every other entry finite: the
 * number of entries that are not. */
static long check_known(const dfs_series_task *t, int S, const float *out) {
    const int K = t->s->n_features, L = t->L;
    long bad = 0;
    for (int w = 0; w < t->W; w++)
        for (int s = 0; s < S; s++)
            for (int e = 0; e < L * K; e++) {
                float o = out[((size_t)w * S + s) * L * K + e];
                if (t->known[(size_t)w * L * K + e]) {
                    float v = t->s->values[(size_t)t->start[w] * K + e];
                    bad += memcmp(&o, &v, sizeof o) != 0;
                } else {
                    bad += !isfinite(o);
                }
            }
    return bad;
}

static double sq(double x) {
    return x * x;
}

/* ---- the contract ------------------------------------------------------------------------ */

/* K = 2 daily features (a yearly cycle plus an AR(1) wobble), 600 days, training the first 400,
 * with some training entries missing. Four windows of 20 days: a forecast inside the training
 * span, an imputation across its end, and a forecast and an imputation after it (the last
 * with no known entry of feature 1, so the fallbacks to a training mean run too). Every baseline
 * must give the same samples, bit for bit, after every entry past the training span that no window
 * knows is changed (1e30, or made missing), and different ones after the training values are
 * changed (the control: the comparison can fail). */
static void test_contract(void) {
    const int n = 600, K = 2, L = 20, W = 4, S = 8, TE = 400;
    dfs_series s = make_series(n, K, 86400, T("2000-01-01"));
    dfs_rng g;
    dfs_rng_seed(&g, 1);
    double a = 0, b = 0;
    for (int r = 0; r < n; r++) {
        a = 0.7 * a + dfs_rng_normal(&g);
        b = 0.5 * b + 0.3 * a + dfs_rng_normal(&g);
        s.values[r * K] = (float)(10 * sin(2 * M_PI * r / 365.25) + a);
        s.values[r * K + 1] = (float)(5 * cos(2 * M_PI * r / 365.25) + b);
    }
    for (int r = 3; r < TE; r += 37)
        unobserve(&s, r, r % 2); /* training gaps */
    int start[4] = {100, 390, 450, 560};
    uint8_t *known = calloc((size_t)W * L * K, 1);
    for (int w = 0; w < W; w++)
        for (int i = 0; i < L; i++)
            for (int k = 0; k < K; k++) {
                int kn = w == 1 || w == 3 ? (i * 7 + k * 3 + w) % 5 < 3 : i < 14;
                if (w == 3 && k == 1) kn = 0; /* no known entry: the training-mean fallbacks */
                known[((size_t)w * L + i) * K + k] =
                    (uint8_t)(kn && s.observed[(size_t)(start[w] + i) * K + k]);
            }
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = W, .L = L, .known = known};
    CHECK(dfs_series_task_check(&t) == DFS_OK, "task: %s", dfs_last_error());
    /* which entries some window knows */
    uint8_t *any_known = calloc((size_t)n * K, 1);
    for (int w = 0; w < W; w++)
        for (int e = 0; e < L * K; e++)
            if (known[(size_t)w * L * K + e]) any_known[(size_t)start[w] * K + e] = 1;

    const size_t N = (size_t)W * S * L * K;
    float *ref[B_COUNT], *o = alloc_out(N);
    for (int bl = 0; bl < B_COUNT; bl++) {
        ref[bl] = alloc_out(N);
        /* shape: exactly W S L K floats written; the 16 past them keep a marker */
        for (int j = 0; j < 16; j++)
            ref[bl][N + j] = -12345.0f;
        dfs_status st = run_baseline(bl, &t, S, 7, ref[bl]);
        CHECK(st == DFS_OK, "%s: %s", bname[bl], dfs_last_error());
        long bad = check_known(&t, S, ref[bl]);
        CHECK(bad == 0, "%s: %ld entries not the known value bit for bit, or not finite", bname[bl],
              bad);
        int guard = 1;
        for (int j = 0; j < 16; j++)
            guard &= ref[bl][N + j] == -12345.0f;
        CHECK(guard, "%s wrote past W S L K", bname[bl]);
        /* deterministic: the same seed again */
        run_baseline(bl, &t, S, 7, o);
        CHECK(!memcmp(o, ref[bl], N * sizeof *o), "%s: same seed, different samples", bname[bl]);
    }
    /* Past the training span, change everything no window knows. */
    float *v0 = malloc(sizeof *v0 * n * K);
    uint8_t *o0 = malloc((size_t)n * K);
    memcpy(v0, s.values, sizeof *v0 * n * K);
    memcpy(o0, s.observed, (size_t)n * K);
    int changed = 0;
    for (int r = TE; r < n; r++)
        for (int k = 0; k < K; k++)
            if (!any_known[(size_t)r * K + k]) {
                if ((r + k) % 3)
                    s.values[(size_t)r * K + k] = 1e30f;
                else
                    unobserve(&s, r, k);
                changed++;
            }
    CHECK(changed > 300, "only %d entries past the training span changed", changed);
    for (int bl = 0; bl < B_COUNT; bl++) {
        dfs_status st = run_baseline(bl, &t, S, 7, o);
        CHECK(st == DFS_OK && !memcmp(o, ref[bl], N * sizeof *o),
              "%s: the samples depend on rows past the training span (%s)", bname[bl],
              st == DFS_OK ? "different" : dfs_last_error());
    }
    /* Control: the training values (those no window knows) become 2 x + 1. */
    memcpy(s.values, v0, sizeof *v0 * n * K);
    memcpy(s.observed, o0, (size_t)n * K);
    for (int r = 0; r < TE; r++)
        for (int k = 0; k < K; k++)
            if (!any_known[(size_t)r * K + k]) s.values[(size_t)r * K + k] = 2 * v0[r * K + k] + 1;
    for (int bl = 0; bl < B_COUNT; bl++) {
        dfs_status st = run_baseline(bl, &t, S, 7, o);
        CHECK(st == DFS_OK && memcmp(o, ref[bl], N * sizeof *o),
              "%s: the samples do not change with the training values (%s)", bname[bl],
              st == DFS_OK ? "the same" : dfs_last_error());
    }
    memcpy(s.values, v0, sizeof *v0 * n * K);

    /* Errors: bad parameters, too little training data. */
    dfs_rng rng;
    dfs_rng_seed(&rng, 1);
    struct {
        const char *what;
        dfs_status st;
    } e[] = {
        {"S = 0", dfs_baseline_climatology(&t, 0, &rng, o)},
        {"rng NULL", dfs_baseline_ar(&t, 2, S, NULL, o)},
        {"out NULL", dfs_baseline_gaussian(&t, S, &rng, NULL)},
        {"period 0", dfs_baseline_seasonal_naive(&t, 0, S, &rng, o)},
        {"period L", dfs_baseline_seasonal_naive(&t, L, S, &rng, o)},
        {"lags 0", dfs_baseline_ar(&t, 0, S, &rng, o)},
        {"n_ref 0", dfs_baseline_interp(&t, 0, S, &rng, o)},
    };
    for (size_t j = 0; j < sizeof e / sizeof *e; j++)
        CHECK(e[j].st == DFS_ERR_ARG && dfs_last_error()[0], "%s: status %d", e[j].what,
              (int)e[j].st);
    /* 40 training rows, row 3 with a gap: 17 full windows of 20 rows (starts 4..20), fewer
     * than the 41 a covariance of 40 entries needs. 30 training rows: a VAR(12) on 2 features
     * has 25 coefficients a feature, and 14 rows (16..29) have 12 full rows before them. */
    t.train_end = 40;
    CHECK(dfs_baseline_gaussian(&t, S, &rng, o) == DFS_ERR_ARG &&
              strstr(dfs_last_error(), "more than 40"),
          "gaussian, 21 training windows: %s", dfs_last_error());
    t.train_end = 30;
    CHECK(dfs_baseline_ar(&t, 12, S, &rng, o) == DFS_ERR_ARG, "ar(12), 30 training rows: %s",
          dfs_last_error());
    t.train_end = 10; /* no window of 20 training rows */
    CHECK(dfs_baseline_interp(&t, 50, S, &rng, o) == DFS_ERR_ARG, "interp, 10 rows: %s",
          dfs_last_error());
    t.train_end = TE;
    known[0] = 1; /* window 0's first entry known, and now unobserved: the task check fails */
    unobserve(&s, start[0], 0);
    for (int bl = 0; bl < B_COUNT; bl++)
        CHECK(run_baseline(bl, &t, S, 7, o) == DFS_ERR_ARG, "%s on a bad task", bname[bl]);

    for (int bl = 0; bl < B_COUNT; bl++)
        free(ref[bl]);
    free(o);
    free(v0);
    free(o0);
    free(known);
    free(any_known);
    dfs_series_free(&s);
}

/* ---- climatology ------------------------------------------------------------------------- */

/* Daily, 2001-01-01 to 2004-01-10, training 2001 and 2002 (730 rows). Feature 0 is
 * year * 1000 + day of the year (year 1 for 2001, days from 0), feature 1 the same + 0.5, so a
 * sample names the row it came from; feature 1 is missing on the training rows whose day is a
 * multiple of 5. */
static void test_climatology_daily(void) {
    const int n = 1105, K = 2, TE = 730, L = 10, S = 3000;
    dfs_series s = make_series(n, K, 86400, T("2001-01-01"));
    for (int r = 0; r < n; r++) {
        time_t tt = (time_t)s.times[r];
        struct tm tm;
        gmtime_r(&tt, &tm);
        s.values[r * K] = (float)((tm.tm_year + 1900 - 2000) * 1000 + tm.tm_yday);
        s.values[r * K + 1] = s.values[r * K] + 0.5f;
        if (r < TE && tm.tm_yday % 5 == 0) unobserve(&s, r, 1);
    }
    int start[2] = {(int)((T("2003-03-01") - s.times[0]) / 86400),
                    (int)((T("2003-12-28") - s.times[0]) / 86400)};
    uint8_t known[2 * 10 * 2] = {0};
    known[0] = known[1] = 1; /* window 0, row 0 (Mar 1): both known */
    known[3] = 1;            /* window 0, row 1 (Mar 2): feature 1 known, feature 0 drawn */
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = 2, .L = L, .known = known};
    float *out = alloc_out((size_t)2 * S * L * K);
    dfs_rng rng;
    dfs_rng_seed(&rng, 3);
    dfs_status st = dfs_baseline_climatology(&t, S, &rng, out);
    CHECK(st == DFS_OK, "climatology: %s", dfs_last_error());
    CHECK(check_known(&t, S, out) == 0, "known entries");
    if (st != DFS_OK) goto done;
    /* Window 0, row 2 (Mar 3, 2003: day 61): pool days 54..68 of 2001 and 2002, both features
     * drawn from one row, so only rows with feature 1 observed: 15 days less 55, 60, 65 = 12 a
     * year, 24 rows. Row 1 (Mar 2, day 60) draws feature 0 alone: days 53..67, all 15, 30 rows.
     * Window 1, row 3 (Dec 31, 2003: day 364): days 357..365 and 0..5 round the 366-day circle;
     * 2001 and 2002 have no day 365: 8 + 6 = 14, less 360, 0, 5 = 11 a year, 22 rows. With
     * S = 3000 draws from 30 rows, a row is left out with probability (29/30)^3000 < 1e-44. */
    struct {
        int w, i, k_only, day, want;
    } c[] = {{0, 2, -1, 61, 24}, {0, 1, 0, 60, 30}, {1, 3, -1, 364, 22}};
    for (int j = 0; j < 3; j++) {
        uint8_t seen[3][366] = {{0}};
        int distinct = 0, bad = 0, wrapped = 0;
        for (int smp = 0; smp < S; smp++) {
            const float *o = out + (((size_t)c[j].w * S + smp) * L + c[j].i) * K;
            int year = (int)o[0] / 1000, day = (int)o[0] % 1000;
            int dd = abs(day - c[j].day);
            if (dd > 183) dd = 366 - dd;
            bad += year < 1 || year > 2 || dd > 7 || (float)(year * 1000 + day) != o[0];
            if (c[j].k_only < 0) bad += o[1] != o[0] + 0.5f || day % 5 == 0;
            if (year >= 1 && year <= 2 && day >= 0 && day < 366 && !seen[year][day]++) distinct++;
            wrapped += day < 7;
        }
        CHECK(bad == 0, "window %d row %d: %d samples from outside the pool or not whole rows",
              c[j].w, c[j].i, bad);
        CHECK(distinct == c[j].want, "window %d row %d: %d distinct rows drawn, want %d", c[j].w,
              c[j].i, distinct, c[j].want);
        if (c[j].day == 364) CHECK(wrapped > 0, "Dec 31 never drew a January day");
    }
done:
    free(out);
    dfs_series_free(&s);
}

/* Hourly, 50 days from 2010-01-01, training the first 40 (960 rows): value day * 100 + hour.
 * A window on day 45 draws hour h from the training rows at hour h in the last 28 days of
 * training: days 12..39 (the span's last time is day 39 23:00; day 11 23:00 is exactly 28 days
 * before it, not within), 28 values. */
static void test_climatology_hourly(void) {
    const int n = 50 * 24, TE = 960, L = 24, S = 2000;
    dfs_series s = make_series(n, 1, 3600, T("2010-01-01"));
    for (int r = 0; r < n; r++)
        s.values[r] = (float)(r / 24 * 100 + r % 24);
    int start[1] = {45 * 24};
    uint8_t known[24] = {0};
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = 1, .L = L, .known = known};
    float *out = alloc_out((size_t)S * L);
    dfs_rng rng;
    dfs_rng_seed(&rng, 4);
    dfs_status st = dfs_baseline_climatology(&t, S, &rng, out);
    CHECK(st == DFS_OK, "hourly climatology: %s", dfs_last_error());
    int bad = 0, lo = 99, hi = -1, distinct_bad = 0;
    for (int i = 0; i < L && st == DFS_OK; i++) {
        uint8_t seen[50] = {0};
        int distinct = 0;
        for (int smp = 0; smp < S; smp++) {
            float v = out[(size_t)smp * L + i];
            int day = (int)v / 100, hour = (int)v % 100;
            bad += hour != i || day < 12 || day > 39 || (float)(day * 100 + hour) != v;
            if (day >= 0 && day < 50 && !seen[day]++) distinct++;
            lo = day < lo ? day : lo;
            hi = day > hi ? day : hi;
        }
        /* 2000 draws from 28: one left out with probability < 28 (27/28)^2000 < 1e-30 */
        distinct_bad += distinct != 28;
    }
    CHECK(bad == 0, "hourly: %d samples not of the same hour in days 12..39", bad);
    CHECK(distinct_bad == 0 && lo == 12 && hi == 39,
          "hourly: %d hours without all 28 days drawn; days drawn %d..%d", distinct_bad, lo, hi);
    free(out);
    dfs_series_free(&s);
}

/* ---- seasonal naive ---------------------------------------------------------------------- */

/* y[t] = {0, 10, 20}[t mod 3] + 2 floor(t / 3) (and 7 - that, for a second feature): every
 * residual y[t] - y[t - 3] is 2 (-2), so the seasonal random walk reproduces the series exactly,
 * forward, backward, whatever the residual stretch. */
static void test_snaive_exact(void) {
    const int n = 60, K = 2, TE = 40, L = 10, S = 50, P = 3;
    dfs_series s = make_series(n, K, 86400, 0);
    for (int r = 0; r < n; r++) {
        s.values[r * K] = (float)((r % 3) * 10 + 2 * (r / 3));
        s.values[r * K + 1] = 7 - s.values[r * K];
    }
    int start[3] = {45, 48, 50};
    uint8_t known[3 * 10 * 2] = {0};
    for (int i = 0; i < 4; i++)
        known[(0 * L + i) * K] = known[(0 * L + i) * K + 1] = 1; /* forecast */
    for (int i = 6; i < 10; i++)
        known[(1 * L + i) * K] = known[(1 * L + i) * K + 1] = 1; /* backcast */
    known[(2 * L + 4) * K] = 1; /* window 2, feature 0: row 4 only; feature 1: nothing */
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = 3, .L = L, .known = known};
    float *out = alloc_out((size_t)3 * S * L * K);
    dfs_rng rng;
    dfs_rng_seed(&rng, 5);
    dfs_status st = dfs_baseline_seasonal_naive(&t, P, S, &rng, out);
    CHECK(st == DFS_OK, "seasonal naive: %s", dfs_last_error());
    int bad = 0;
    for (int w = 0; w < 2 && st == DFS_OK; w++)
        for (int smp = 0; smp < S; smp++)
            for (int e = 0; e < L * K; e++)
                bad += out[((size_t)w * S + smp) * L * K + e] != s.values[start[w] * K + e];
    CHECK(bad == 0, "seasonal naive forward and backward: %d entries off the series", bad);
    /* Window 2 (rows 50..59), feature 0, known only at row 4: rows 1 and 7 share its phase and
     * walk from it (row 1 backward, row 7 forward) onto the series; the other phases have no
     * known entry and start from the nearest known entry of the feature, row 4 for all of
     * them, plus one residual (2): y[4] + 2. Feature 1 has no known entry in the window: its
     * training mean (summed in double in row order, as the baseline does) plus -2. */
    double m1 = 0;
    for (int r = 0; r < TE; r++)
        m1 += s.values[r * K + 1];
    m1 /= TE;
    const float *x = s.values + start[2] * K;
    int bad2 = 0;
    for (int smp = 0; smp < S && st == DFS_OK; smp++) {
        const float *o = out + ((size_t)2 * S + smp) * L * K;
        bad2 += o[1 * K] != x[1 * K] || o[7 * K] != x[7 * K] || o[4 * K] != x[4 * K];
        for (int i = 0; i < L; i++) {
            if (i % 3 != 1) bad2 += o[i * K] != x[4 * K] + 2;
            bad2 += o[i * K + 1] != (float)(m1 - 2);
        }
    }
    CHECK(bad2 == 0, "seasonal naive fallbacks: %d entries off the hand-worked values", bad2);
    free(out);
    dfs_series_free(&s);
}

/* Period 1 (persistence): training y[t] = t^2, t < 30, so the residuals y[t] - y[t - 1] are the
 * odd numbers 2 j + 1, j = t - 1 = 0..28. A sample path's increments must be one stretch of
 * them, consecutive round the circle of 29 (28 is followed by 0), every start appearing. The
 * second window knows only its row 2: rows 0 and 1 walk backwards from it (y[i] = y[i + 1] -
 * r[i + 1]) and rows 3..5 forwards, and the increments of rows 1..5 must still be one stretch:
 * a backward step that took r[i] instead of r[i + 1] would leave a gap at row 3. */
static void test_snaive_blocks(void) {
    const int n = 40, TE = 30, L = 6, S = 2000, nr = 29;
    dfs_series s = make_series(n, 1, 3600, 0);
    for (int r = 0; r < n; r++)
        s.values[r] = (float)(r * r);
    s.values[32] = 5;
    s.values[33] = -4; /* known context after training: any values */
    int start[2] = {32, 31};
    uint8_t known[12] = {1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = 2, .L = L, .known = known};
    float *out = alloc_out((size_t)2 * S * L);
    dfs_rng rng;
    dfs_rng_seed(&rng, 6);
    dfs_status st = dfs_baseline_seasonal_naive(&t, 1, S, &rng, out);
    CHECK(st == DFS_OK, "persistence: %s", dfs_last_error());
    int bad = 0, wraps = 0;
    uint8_t seen[29] = {0};
    for (int smp = 0; smp < 2 * S && st == DFS_OK; smp++) {
        const float *o = out + (size_t)smp * L;
        int prev = -1;
        for (int i = smp < S ? 2 : 1; i < L; i++) {
            double d = (double)o[i] - o[i - 1];
            int j = (int)((d - 1) / 2);
            if (d != 2 * j + 1 || j < 0 || j >= nr) {
                bad++;
                break;
            }
            if (prev >= 0 && j != (prev + 1) % nr) bad++;
            if (prev == nr - 1) wraps++;
            if (i == 2 && smp < S) seen[j] = 1;
            prev = j;
        }
    }
    int starts = 0;
    for (int j = 0; j < nr; j++)
        starts += seen[j];
    CHECK(bad == 0, "persistence: %d paths whose increments are not a circular stretch", bad);
    /* 2000 draws of 29 starts: one left out with probability < 29 (28/29)^2000 < 1e-28 */
    CHECK(starts == nr && wraps > 0, "persistence: %d of %d starts drawn, %d wraps", starts, nr,
          wraps);
    free(out);
    dfs_series_free(&s);
}

/* ---- ar ---------------------------------------------------------------------------------- */

/* AR(1) x[t] = phi x[t-1] + e, e ~ N(0, 1), N = 20000 rows, all training but a window after
 * them whose only known entry is x = 3 at row 0; S = 20000 paths. Closed forms: the
 * h-step-ahead law given x is N(phi^h x, (1 - phi^2h) / (1 - phi^2)).
 *
 * Tolerances (5 standard deviations each, the deviations below; the seed is fixed, so they are
 * margins, not a false-failure rate): the simulated mean at horizon h is c^ (1 + ... +
 * phi^^(h-1)) + phi^^h x plus the mean of the drawn residuals. Least squares with an intercept
 * on a stationary AR(1) (mean 0) has var(c^) = sigma^2 / N and var(phi^) = (1 - phi^2) / N,
 * uncorrelated (Hamilton 1994, "Time series analysis", sec. 8.2), so by the delta method
 *   sd_fit(h)^2 = ((1 - phi^h) / (1 - phi))^2 / N + (h phi^(h-1) x)^2 (1 - phi^2) / N,
 * and the Monte-Carlo mean adds v_h / S, v_h the h-step variance. The sample variance's
 * deviations: Monte Carlo v_h sqrt(2 / S) (Gaussian residuals, kurtosis 3), the residual
 * variance's estimate v_h sqrt(2 / N), and phi^'s through f(phi) = (1 - phi^2h) / (1 - phi^2):
 * |f'(phi)| sqrt((1 - phi^2) / N). */
static void test_ar1(void) {
    const int N = 20000, TE = 19900, L = 6, S = 20000;
    const double phi = 0.8, x = 3;
    dfs_series s = make_series(N, 1, 86400, 0);
    dfs_rng g;
    dfs_rng_seed(&g, 11);
    double v = dfs_rng_normal(&g) / sqrt(1 - phi * phi);
    for (int r = 0; r < N; r++) {
        v = phi * v + dfs_rng_normal(&g);
        s.values[r] = (float)v;
    }
    s.values[TE + 10] = (float)x;
    int start[1] = {TE + 10};
    uint8_t known[6] = {1, 0, 0, 0, 0, 0};
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = 1, .L = L, .known = known};
    float *out = alloc_out((size_t)S * L);
    dfs_rng rng;
    dfs_rng_seed(&rng, 12);
    dfs_status st = dfs_baseline_ar(&t, 1, S, &rng, out);
    CHECK(st == DFS_OK, "ar(1): %s", dfs_last_error());
    const int hs[2] = {1, 5};
    for (int j = 0; j < 2 && st == DFS_OK; j++) {
        int h = hs[j];
        double m = 0, m2 = 0;
        for (int smp = 0; smp < S; smp++)
            m += out[(size_t)smp * L + h];
        m /= S;
        for (int smp = 0; smp < S; smp++)
            m2 += sq(out[(size_t)smp * L + h] - m);
        double var = m2 / (S - 1);
        double ph = pow(phi, h), vh = (1 - ph * ph) / (1 - phi * phi);
        double sd_mean = sqrt(sq((1 - ph) / (1 - phi)) / N +
                              sq(h * pow(phi, h - 1) * x) * (1 - phi * phi) / N + vh / S);
        double eps = 1e-6, fp = ((1 - pow(phi + eps, 2 * h)) / (1 - sq(phi + eps)) -
                                 (1 - pow(phi - eps, 2 * h)) / (1 - sq(phi - eps))) /
                                (2 * eps);
        double sd_var = sqrt(sq(vh) * 2.0 / S + sq(vh) * 2.0 / N + sq(fp) * (1 - phi * phi) / N);
        char what[64];
        snprintf(what, sizeof what, "ar(1) mean at horizon %d", h);
        CHECK_CLOSE(m, ph * x, 5 * sd_mean, 0, what);
        snprintf(what, sizeof what, "ar(1) variance at horizon %d", h);
        CHECK_CLOSE(var, vh, 5 * sd_var, 0, what);
        printf("test_baselines: ar(1) h=%d: mean %.4f (truth %.4f, tol %.4f), var %.4f (truth "
               "%.4f, tol %.4f)\n",
               h, m, ph * x, 5 * sd_mean, var, vh, 5 * sd_var);
    }
    free(out);
    dfs_series_free(&s);
}

/* VAR(1) y[t] = A y[t-1] + e, A = [[0.5, 0.3], [-0.2, 0.6]], e ~ N(0, [[1, rho], [rho, 1]]),
 * rho = 0.6. One step ahead of y = (2, -1) the law is N(A y, Sigma_e). The mean's deviation is
 * sd_fit^2 = sigma^2 (1 + y' G^-1 y) / N (the least-squares prediction variance; G the
 * stationary covariance, G = A G A' + Sigma_e, summed as sum_j A^j Sigma_e A'^j) plus the
 * Monte-Carlo sigma^2 / S; the sample correlation of the two features at horizon 1 (whole
 * residual rows drawn: rho, not 0) has deviation about (1 - rho^2) / sqrt(S) from Monte Carlo
 * and the same / sqrt(N) from the residuals' estimate. 5 deviations each. */
static void test_var1(void) {
    const int N = 20000, TE = 19900, K = 2, L = 2, S = 20000;
    const double A[2][2] = {{0.5, 0.3}, {-0.2, 0.6}}, rho = 0.6, y0[2] = {2, -1};
    dfs_series s = make_series(N, K, 3600, 0);
    dfs_rng g;
    dfs_rng_seed(&g, 21);
    double y[2] = {0, 0};
    for (int r = -100; r < N; r++) {
        double z0 = dfs_rng_normal(&g), z1 = dfs_rng_normal(&g);
        double e0 = z0, e1 = rho * z0 + sqrt(1 - rho * rho) * z1;
        double n0 = A[0][0] * y[0] + A[0][1] * y[1] + e0, n1 = A[1][0] * y[0] + A[1][1] * y[1] + e1;
        y[0] = n0, y[1] = n1;
        if (r >= 0) s.values[r * K] = (float)n0, s.values[r * K + 1] = (float)n1;
    }
    s.values[(TE + 5) * K] = (float)y0[0];
    s.values[(TE + 5) * K + 1] = (float)y0[1];
    int start[1] = {TE + 5};
    uint8_t known[4] = {1, 1, 0, 0};
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = 1, .L = L, .known = known};
    float *out = alloc_out((size_t)S * L * K);
    dfs_rng rng;
    dfs_rng_seed(&rng, 22);
    dfs_status st = dfs_baseline_ar(&t, 1, S, &rng, out);
    CHECK(st == DFS_OK, "var(1): %s", dfs_last_error());
    /* G = sum_j A^j Se A'^j */
    double G[2][2] = {{0}}, P[2][2] = {{1, 0}, {0, 1}}, Se[2][2] = {{1, rho}, {rho, 1}};
    for (int it = 0; it < 200; it++) {
        double PS[2][2], T2[2][2];
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                PS[a][b] = P[a][0] * Se[0][b] + P[a][1] * Se[1][b];
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                G[a][b] += PS[a][0] * P[b][0] + PS[a][1] * P[b][1];
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                T2[a][b] = A[a][0] * P[0][b] + A[a][1] * P[1][b];
        memcpy(P, T2, sizeof P);
    }
    double det = G[0][0] * G[1][1] - G[0][1] * G[1][0];
    double q =
        (G[1][1] * y0[0] * y0[0] - 2 * G[0][1] * y0[0] * y0[1] + G[0][0] * y0[1] * y0[1]) / det;
    double sd = sqrt((1 + q) / N + 1.0 / S);
    double m[2] = {0, 0}, c[3] = {0, 0, 0};
    for (int smp = 0; smp < S && st == DFS_OK; smp++)
        for (int k = 0; k < K; k++)
            m[k] += out[((size_t)smp * L + 1) * K + k];
    m[0] /= S, m[1] /= S;
    for (int smp = 0; smp < S && st == DFS_OK; smp++) {
        double d0 = out[((size_t)smp * L + 1) * K] - m[0],
               d1 = out[((size_t)smp * L + 1) * K + 1] - m[1];
        c[0] += d0 * d0, c[1] += d1 * d1, c[2] += d0 * d1;
    }
    double corr = c[2] / sqrt(c[0] * c[1]);
    for (int k = 0; k < K && st == DFS_OK; k++) {
        char what[64];
        snprintf(what, sizeof what, "var(1) one-step mean, feature %d", k);
        CHECK_CLOSE(m[k], A[k][0] * y0[0] + A[k][1] * y0[1], 5 * sd, 0, what);
    }
    if (st == DFS_OK)
        CHECK_CLOSE(corr, rho, 5 * (1 - rho * rho) * sqrt(1.0 / S + 1.0 / N), 0,
                    "var(1) one-step correlation of the features");
    free(out);
    dfs_series_free(&s);
}

/* ---- gaussian ---------------------------------------------------------------------------- */

/* Solve the n x n system M a = b in place (Gaussian elimination with partial pivoting). */
static void solve(int n, double *M, double *b) {
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(M[r * n + c]) > fabs(M[p * n + c])) p = r;
        for (int j = 0; j < n; j++) {
            double tmp = M[c * n + j];
            M[c * n + j] = M[p * n + j];
            M[p * n + j] = tmp;
        }
        double tb = b[c];
        b[c] = b[p];
        b[p] = tb;
        for (int r = c + 1; r < n; r++) {
            double f = M[r * n + c] / M[c * n + c];
            for (int j = c; j < n; j++)
                M[r * n + j] -= f * M[c * n + j];
            b[r] -= f * b[c];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        for (int j = c + 1; j < n; j++)
            b[c] -= M[c * n + j] * b[j];
        b[c] /= M[c * n + c];
    }
}

/* A stationary Gaussian AR(1) (phi = 0.7, sigma = 1), N = 20000 rows, windows of 5; the window
 * after training knows rows 0, 1, 3, 4 = (0.5, 1.5, ., -0.5, 0.2). By the Markov property the
 * hidden x2 given the rest depends on x1 = a, x3 = b only: N(phi (a + b) / (1 + phi^2),
 * sigma^2 / (1 + phi^2)).
 *
 * Tolerances: the Gaussian's conditional mean under the sample covariance is exactly the
 * least-squares regression of the middle entry on the four others with an intercept, over the
 * N - 4 training windows (the ridge, 1e-6 of the mean variance, moves it by ~1e-6). Its
 * prediction deviation is sigma_c sqrt((1 + z' G^-1 z) / N) (z the known entries, G their
 * stationary covariance, phi^|i-j| / (1 - phi^2)); the regression errors of neighbouring windows
 * are correlated, with lag-1 correlation -phi / (1 + phi^2) and none beyond (the inverse
 * autocorrelation of an AR(1)), which for regressors with positive autocorrelation shrinks that
 * variance (factor 1 - 2 phi^2 / (1 + phi^2) < 1), so the i.i.d. formula is an upper bound.
 * Monte Carlo adds sigma_c^2 / S. The sample variance: Monte Carlo sigma_c^2 sqrt(2 / S), the
 * estimate's sigma_c^2 sqrt(2 (1 + 2 phi^2 / (1 + phi^2)^2) / N) (those correlated errors,
 * squared), and the ridge, 1e-6 of the variance 1 / (1 - phi^2), a bias. 5 deviations. */
static void test_gaussian_ar1(void) {
    const int N = 20000, TE = 19900, L = 5, S = 20000;
    const double phi = 0.7;
    dfs_series s = make_series(N, 1, 86400, 0);
    dfs_rng g;
    dfs_rng_seed(&g, 31);
    double v = dfs_rng_normal(&g) / sqrt(1 - phi * phi);
    for (int r = 0; r < N; r++) {
        v = phi * v + dfs_rng_normal(&g);
        s.values[r] = (float)v;
    }
    const float xs[5] = {0.5f, 1.5f, 99.0f, -0.5f, 0.2f}; /* 99: the hidden truth, unread */
    memcpy(s.values + TE + 20, xs, sizeof xs);
    int start[1] = {TE + 20};
    uint8_t known[5] = {1, 1, 0, 1, 1};
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = 1, .L = L, .known = known};
    float *out = alloc_out((size_t)S * L);
    dfs_rng rng;
    dfs_rng_seed(&rng, 32);
    dfs_status st = dfs_baseline_gaussian(&t, S, &rng, out);
    CHECK(st == DFS_OK, "gaussian: %s", dfs_last_error());
    if (st == DFS_OK) {
        double m = 0, m2 = 0;
        for (int smp = 0; smp < S; smp++)
            m += out[(size_t)smp * L + 2];
        m /= S;
        for (int smp = 0; smp < S; smp++)
            m2 += sq(out[(size_t)smp * L + 2] - m);
        double var = m2 / (S - 1);
        double a = xs[1], b = xs[3], vc = 1 / (1 + phi * phi);
        const int idx[4] = {0, 1, 3, 4};
        double G[16], z[4], w[4];
        for (int i = 0; i < 4; i++) {
            z[i] = w[i] = xs[idx[i]];
            for (int j = 0; j < 4; j++)
                G[i * 4 + j] = pow(phi, abs(idx[i] - idx[j])) / (1 - phi * phi);
        }
        solve(4, G, w);
        double q = z[0] * w[0] + z[1] * w[1] + z[2] * w[2] + z[3] * w[3];
        double sd_mean = sqrt(vc * (1 + q) / N + vc / S);
        double sd_var =
            sqrt(sq(vc) * 2.0 / S + sq(vc) * 2 * (1 + 2 * sq(phi / (1 + phi * phi))) / N);
        double bias = 1e-6 / (1 - phi * phi);
        CHECK_CLOSE(m, phi * (a + b) / (1 + phi * phi), 5 * sd_mean, 0,
                    "gaussian conditional mean of a hidden AR(1) entry");
        CHECK_CLOSE(var, vc, 5 * sd_var + bias, 0,
                    "gaussian conditional variance of a hidden AR(1) entry");
        printf("test_baselines: gaussian AR(1) interior: mean %.4f (truth %.4f, tol %.4f), var "
               "%.4f (truth %.4f, tol %.4f)\n",
               m, phi * (a + b) / (1 + phi * phi), 5 * sd_mean, var, vc, 5 * sd_var + bias);
    }
    free(out);
    dfs_series_free(&s);
}

/* An hourly window of 240 steps x 2 features (480 entries, the size the docs promise), the
 * last 48 steps to forecast, three windows sharing one pattern (one factorisation). Feature 0
 * is a daily cycle 10 sin(2 pi r / 24) plus an AR(1) wobble a (phi 0.9, innovations N(0, 1)),
 * feature 1 half of feature 0 plus N(0, 1) noise. One step past the context, feature 0's law
 * given the past is N(10 sin(2 pi (t + 1) / 24) + 0.9 a_t, 1), a_t read off the context.
 *
 * Tolerance: the Gaussian's conditional mean is the least-squares regression of that entry on
 * the p = 192 x 2 = 384 known entries over the n = 2161 training windows; its errors are the
 * wobble's innovations, independent from window to window, so its prediction variance at a
 * typical z is about sigma^2 p / (n - p - 1) (E z' (X'X)^-1 z for z from the same law), 0.216;
 * Monte Carlo adds sigma^2 / S. 5 deviations: 5 sqrt(0.216 + 1 / 2000) = 2.3, against a
 * cycle of amplitude 10 (the plain training mean, about 0, is off by up to 10 + |0.9 a|). */
static void test_gaussian_480(void) {
    const int n = 3000, K = 2, L = 240, S = 2000, W = 3, TE = 2400, C = L - 48;
    dfs_series s = make_series(n, K, 3600, T("2010-01-01"));
    dfs_rng g;
    dfs_rng_seed(&g, 41);
    double a = 0;
    for (int r = 0; r < n; r++) {
        a = 0.9 * a + dfs_rng_normal(&g);
        s.values[r * K] = (float)(10 * sin(2 * M_PI * r / 24) + a);
        s.values[r * K + 1] = (float)(0.5 * s.values[r * K] + dfs_rng_normal(&g));
    }
    int start[3] = {2400, 2550, 2700};
    uint8_t *known = calloc((size_t)W * L * K, 1);
    for (int w = 0; w < W; w++)
        for (int e = 0; e < C * K; e++)
            known[(size_t)w * L * K + e] = 1;
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = W, .L = L, .known = known};
    float *out = alloc_out((size_t)W * S * L * K);
    dfs_rng rng;
    dfs_rng_seed(&rng, 42);
    dfs_status st = dfs_baseline_gaussian(&t, S, &rng, out);
    CHECK(st == DFS_OK, "gaussian, 480 entries: %s", dfs_last_error());
    CHECK(st == DFS_OK && check_known(&t, S, out) == 0, "gaussian, 480 entries: known/finite");
    const double p = C * K, nw = TE - L + 1, tol = 5 * sqrt(p / (nw - p - 1) + 1.0 / S);
    for (int w = 0; w < W && st == DFS_OK; w++) {
        int r = start[w] + C - 1; /* the last context row */
        double at = s.values[r * K] - 10 * sin(2 * M_PI * r / 24);
        double truth = 10 * sin(2 * M_PI * (r + 1) / 24) + 0.9 * at, m = 0, v = 0;
        for (int smp = 0; smp < S; smp++)
            m += out[((size_t)w * S + smp) * L * K + C * K];
        m /= S;
        for (int smp = 0; smp < S; smp++)
            v += sq(out[((size_t)w * S + smp) * L * K + C * K] - m);
        v /= S - 1;
        char what[80];
        snprintf(what, sizeof what, "gaussian, 480 entries, window %d: one-step mean", w);
        CHECK_CLOSE(m, truth, tol, 0, what);
        printf("test_baselines: gaussian 480, window %d, one step ahead: mean %.3f (truth %.3f, "
               "tol %.3f), variance %.3f (innovations 1; in-sample residuals (n-p-1)/(n-1) = "
               "%.3f)\n",
               w, m, truth, tol, v, (nw - p - 1) / (nw - 1));
    }
    free(out);
    free(known);
    dfs_series_free(&s);
}

/* ---- interp ------------------------------------------------------------------------------ */

/* A linear series, y0 = 10 + 2 t, y1 = 5 - 3 t (integers, exact in float), training the first
 * 200 rows. Interpolation is exact inside the known entries; beyond them, constant extrapolation
 * misses by slope x distance, and the training windows' errors under the same mask are exactly
 * that miss, so every sample is the series exactly. (The arithmetic is in double on integers
 * below 2^10: the products and the division by b - a are exact, or off by an ulp of a double,
 * far under half an ulp of the float the integer rounds to; so equality, not a tolerance.) A
 * feature with no known entry in the window takes the training mean plus a training window's
 * deviation from it: the sample is that training window's value, 5 - 3 (r + i) for one r in
 * 0..188, the same r for every step of one sample (one error pattern a path). */
static void test_interp(void) {
    const int n = 300, K = 2, TE = 200, L = 12, S = 400;
    dfs_series s = make_series(n, K, 86400, 0);
    for (int r = 0; r < n; r++) {
        s.values[r * K] = (float)(10 + 2 * r);
        s.values[r * K + 1] = (float)(5 - 3 * r);
    }
    int start[2] = {150, 250};
    uint8_t known[2 * 12 * 2] = {0};
    const int rows0[3] = {2, 5, 9};
    for (int w = 0; w < 2; w++)
        for (int j = 0; j < 3; j++)
            known[(w * L + rows0[j]) * K] = 1;
    known[(0 * L + 0) * K + 1] = known[(0 * L + 11) * K + 1] = 1; /* window 1: feature 1 none */
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = 2, .L = L, .known = known};
    float *out = alloc_out((size_t)2 * S * L * K);
    dfs_rng rng;
    dfs_rng_seed(&rng, 51);
    dfs_status st = dfs_baseline_interp(&t, 200, S, &rng, out);
    CHECK(st == DFS_OK, "interp: %s", dfs_last_error());
    int bad = 0, bad_fill = 0, rs_seen = 0;
    uint8_t seen[200] = {0};
    for (int smp = 0; smp < S && st == DFS_OK; smp++) {
        for (int w = 0; w < 2; w++)
            for (int i = 0; i < L; i++)
                for (int k = 0; k < K; k++) {
                    if (w == 1 && k == 1) continue;
                    bad += out[(((size_t)w * S + smp) * L + i) * K + k] !=
                           s.values[(start[w] + i) * K + k];
                }
        int r0 = -1;
        for (int i = 0; i < L; i++) {
            float o = out[(((size_t)1 * S + smp) * L + i) * K + 1];
            double r = (5 - (double)o) / 3 - i;
            if (r != floor(r) || r < 0 || r > TE - L || (r0 >= 0 && r != r0))
                bad_fill++;
            else
                r0 = (int)r;
        }
        if (r0 >= 0 && !seen[r0]++) rs_seen++;
    }
    CHECK(bad == 0, "interp on a line: %d entries not exact", bad);
    CHECK(bad_fill == 0, "interp, no known entry: %d entries not one training window's value",
          bad_fill);
    CHECK(rs_seen > 20, "interp: only %d reference windows drawn", rs_seen);
    free(out);
    dfs_series_free(&s);
}

/* ---- real data --------------------------------------------------------------------------- */

#define SEATTLE "/usr/lib/python3/dist-packages/vega_datasets/_data/seattle-weather.csv"

/* The sample CRPS of one entry, (1/S) sum |x_i - y| - (1/(2 S^2)) sum |x_i - x_j|. */
static double crps1(const float *x, size_t stride, int S, double y) {
    double a = 0, b = 0;
    for (int i = 0; i < S; i++) {
        a += fabs(x[i * stride] - y);
        for (int j = 0; j < S; j++)
            b += fabs(x[i * stride] - x[j * stride]);
    }
    return a / S - b / (2.0 * S * S);
}

/* Seattle's daily temp_max and temp_min, training 2012-2014 (1096 days), forecasts of 7 days
 * from 56 days of context, one a week through 2015: every baseline runs and gives finite
 * samples with the context kept. The scores are printed, not checked (a record of how the
 * baselines compare, not a claim). */
static void test_seattle(void) {
    if (access(SEATTLE, R_OK) != 0) {
        printf("test_baselines: %s absent (scripts/setup.sh installs it); skipped\n", SEATTLE);
        return;
    }
    const char *cols[] = {"temp_max", "temp_min"};
    dfs_csv_options opt = {.columns = cols, .n_columns = 2};
    dfs_series s;
    dfs_status st = dfs_csv_load_series(&s, SEATTLE, &opt);
    CHECK(st == DFS_OK, "seattle: %s", dfs_last_error());
    if (st != DFS_OK) return;
    const int K = 2, L = 63, H = 7, S = 50;
    int TE = (int)((T("2015-01-01") - s.times[0]) / s.step);
    CHECK(TE == 1096 && s.step == 86400, "seattle: training rows %d, step %lld", TE,
          (long long)s.step);
    int W = 0, start[64];
    for (int st0 = TE - (L - H); st0 + L <= s.n_steps && W < 64; st0 += 7)
        start[W++] = st0;
    uint8_t *known = calloc((size_t)W * L * K, 1);
    for (int w = 0; w < W; w++)
        for (int e = 0; e < (L - H) * K; e++)
            known[(size_t)w * L * K + e] = 1;
    dfs_series_task t = {.s = &s, .train_end = TE, .start = start, .W = W, .L = L, .known = known};
    float *out = alloc_out((size_t)W * S * L * K);
    const char *names[6] = {"climatology", "seasonal naive 7", "persistence",
                            "ar(7)",       "interp",           "gaussian"};
    for (int b = 0; b < 6; b++) {
        dfs_rng rng;
        dfs_rng_seed(&rng, 100 + b);
        switch (b) {
        case 0:
            st = dfs_baseline_climatology(&t, S, &rng, out);
            break;
        case 1:
            st = dfs_baseline_seasonal_naive(&t, 7, S, &rng, out);
            break;
        case 2:
            st = dfs_baseline_seasonal_naive(&t, 1, S, &rng, out);
            break;
        case 3:
            st = dfs_baseline_ar(&t, 7, S, &rng, out);
            break;
        case 4:
            st = dfs_baseline_interp(&t, 200, S, &rng, out);
            break;
        default:
            st = dfs_baseline_gaussian(&t, S, &rng, out);
            break;
        }
        CHECK(st == DFS_OK, "seattle %s: %s", names[b], dfs_last_error());
        if (st != DFS_OK) continue;
        long bad = check_known(&t, S, out);
        CHECK(bad == 0, "seattle %s: %ld entries not finite or not the context", names[b], bad);
        double crps = 0, mae = 0;
        long cnt = 0, in90 = 0;
        for (int w = 0; w < W; w++)
            for (int i = L - H; i < L; i++)
                for (int k = 0; k < K; k++) {
                    const float *x = out + ((size_t)w * S * L + i) * K + k;
                    double y = s.values[(size_t)(start[w] + i) * K + k], m = 0;
                    int below = 0;
                    for (int smp = 0; smp < S; smp++) {
                        m += x[(size_t)smp * L * K];
                        below += x[(size_t)smp * L * K] < y;
                    }
                    in90 += below >= S / 20 && below <= S - S / 20; /* rank in the middle 90% */
                    crps += crps1(x, (size_t)L * K, S, y);
                    mae += fabs(m / S - y);
                    cnt++;
                }
        printf("test_baselines: seattle 2015, %d weekly 7-day forecasts: %-16s CRPS %.3f, MAE of "
               "the mean %.3f (deg C), truth inside the middle 90%% %.2f\n",
               W, names[b], crps / cnt, mae / cnt, (double)in90 / cnt);
    }
    free(out);
    free(known);
    dfs_series_free(&s);
}

int main(void) {
    test_contract();
    test_climatology_daily();
    test_climatology_hourly();
    test_snaive_exact();
    test_snaive_blocks();
    test_ar1();
    test_var1();
    test_gaussian_ar1();
    test_gaussian_480();
    test_interp();
    test_seattle();
    return check_summary("test_baselines");
}
