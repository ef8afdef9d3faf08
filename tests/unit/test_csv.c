/* test_csv.c - timestamped series from CSV (dfs_csv_load_series): round trips of small files,
 * each error with its line number, Debian's real data sets, and hostile inputs. */
#include "diffuse.h"
#include "check.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static const char *P(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static const char *write_text(const char *name, const char *data, size_t n) {
    const char *p = P(name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return p;
}
#define WRITE(name, text) write_text(name, text, strlen(text))

static int err_has(const char *s) { return strstr(dfs_last_error(), s) != NULL; }

static int64_t T(const char *s) {
    int64_t t = -1;
    dfs_csv_parse_time(s, strlen(s), &t);
    return t;
}

/* ---- timestamps -------------------------------------------------------------------------- */

static void test_time(void) {
    CHECK(T("1970-01-01") == 0, "epoch: %lld", (long long)T("1970-01-01"));
    CHECK(T("2012-01-01") == 1325376000, "2012-01-01: %lld", (long long)T("2012-01-01"));
    CHECK(T("2010-01-01 00:00:00") == 1262304000, "%lld", (long long)T("2010-01-01 00:00:00"));
    CHECK(T("2010-01-01T01:02:03Z") == 1262304000 + 3723, "%lld",
          (long long)T("2010-01-01T01:02:03Z"));
    CHECK(T("2010/01/01 01:02") == 1262304000 + 3720, "%lld", (long long)T("2010/01/01 01:02"));
    CHECK(T("20000229") == 951782400, "20000229: %lld", (long long)T("20000229"));
    CHECK(T("1969-12-31 23:59:59") == -1 - 0 && T("1969-12-31") == -86400, "before the epoch");
    const char *bad[] = {"2012-13-01", "2011-02-29", "1900-02-29", "2012-01-32", "2012-1-01",
                         "2012-01-01 24:00", "2012-01-01 00:60", "2012-01-01 00:00:60",
                         "2012/01-01", "2012-01-01X00:00", "2012-01-01 00:00:00+01:00",
                         "2012-01-01 00:00:00.5", "", "Z", "abcd-ef-gh"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t t;
        CHECK(dfs_csv_parse_time(bad[i], strlen(bad[i]), &t) == DFS_ERR_FORMAT,
              "\"%s\" accepted", bad[i]);
    }
}

/* ---- round trips ------------------------------------------------------------------------- */

static void test_roundtrip(void) {
    // Daily, CRLF, a missing field, a gap of two days, the time column second, spaces.
    const char *p = WRITE("a.csv", "x,date,y\r\n1.5,2012-01-01,-2\r\n,2012-01-02, 3e2 \r\n"
                                   "4,2012-01-05,\r\n");
    dfs_series s;
    dfs_status st = dfs_csv_load_series(&s, p, NULL);
    CHECK(st == DFS_OK, "load: %s", dfs_last_error());
    if (st == DFS_OK) {
        CHECK(s.n_steps == 5 && s.n_features == 2 && s.step == 86400, "shape %d x %d step %lld",
              s.n_steps, s.n_features, (long long)s.step);
        CHECK(!strcmp(s.names[0], "x") && !strcmp(s.names[1], "y"), "names %s %s", s.names[0],
              s.names[1]);
        const uint8_t want_obs[10] = {1, 1, 0, 1, 0, 0, 0, 0, 1, 0};
        const float want_v[10] = {1.5f, -2, NAN, 300, NAN, NAN, NAN, NAN, 4, NAN};
        for (int i = 0; i < 10; i++) {
            CHECK(s.observed[i] == want_obs[i], "observed[%d] = %d", i, s.observed[i]);
            CHECK(want_obs[i] ? s.values[i] == want_v[i] : isnan(s.values[i]),
                  "values[%d] = %g, want %g", i, s.values[i], want_v[i]);
        }
        for (int k = 0; k < s.n_steps; k++)
            CHECK(s.times[k] == 1325376000 + k * 86400, "times[%d] = %lld", k,
                  (long long)s.times[k]);
        dfs_series_free(&s);
        CHECK(!s.values && !s.names && s.n_steps == 0, "free zeroes the struct");
    }
    // Columns by name in another order, the time column named, a given step (a 30 s grid).
    const char *cols[] = {"b", "a"};
    dfs_csv_options o = {.time_column = "when", .columns = cols, .n_columns = 2, .step = 30};
    p = WRITE("b.csv", "\xEF\xBB\xBF" "a,when,b,c\n1,2010-01-01T00:00:00Z,2,x\n"
                       "3,2010-01-01T00:01:00Z,4,y");
    st = dfs_csv_load_series(&s, p, &o);
    CHECK(st == DFS_OK, "load with options: %s", dfs_last_error());
    if (st == DFS_OK) {
        CHECK(s.n_steps == 3 && s.n_features == 2 && s.step == 30, "shape %d x %d step %lld",
              s.n_steps, s.n_features, (long long)s.step);
        CHECK(!strcmp(s.names[0], "b") && !strcmp(s.names[1], "a"), "names %s %s", s.names[0],
              s.names[1]);
        CHECK(s.values[0] == 2 && s.values[1] == 1 && s.values[4] == 4 && s.values[5] == 3 &&
                  !s.observed[2] && !s.observed[3] && isnan(s.values[2]),
              "values %g %g %g %g", s.values[0], s.values[1], s.values[4], s.values[5]);
        CHECK(s.times[2] == 1262304060, "last time %lld", (long long)s.times[2]);
        dfs_series_free(&s);
    }
    // One row: step 0; blank lines at the end are fine.
    p = WRITE("c.csv", "t,v\n2012-01-01 10:00,7\n\n\n");
    st = dfs_csv_load_series(&s, p, NULL);
    CHECK(st == DFS_OK && s.n_steps == 1 && s.step == 0 && s.values[0] == 7,
          "one row: %s", dfs_last_error());
    dfs_series_free(&s);
}

/* ---- errors ------------------------------------------------------------------------------ */

typedef struct {
    const char *text, *want;
} bad_case;

static void test_errors(void) {
    const bad_case cases[] = {
        {"date,v\n2012-01-01,1\n2012-01-02,1,2\n", "line 3: 3 fields, the header has 2"},
        {"date,v\n2012-01-01,1\n2012-01-02\n", "line 3: 1 fields"},
        {"date,v\n2012-01-01,1\n2012-01-02,abc\n", "line 3: column \"v\": \"abc\" is not a number"},
        {"date,v\n2012-01-01,nan\n", "line 2: column \"v\": \"nan\" is not a number"},
        {"date,v\n2012-01-01,1e999\n", "line 2: column \"v\""},
        {"date,v\n2012-01-01,0x10\n", "line 2: column \"v\""},
        {"date,v\n2012-01-01,1\n2012-01-01,2\n", "line 3: timestamp \"2012-01-01\" repeats line 2"},
        {"date,v\n2012-01-02,1\n2012-01-01,2\n", "line 3: timestamp \"2012-01-01\" is before line 2"},
        {"date,v\n2012-01-01,1\n2012-01-03,2\n2012-01-06,3\n",
         "line 4: 259200 s after line 3, not a multiple of the 172800 s step"},
        {"date,v\n2012-01-01 00:00,1\n2012-01-01 00:02,2\n2012-01-01 00:05,3\n",
         "line 4: 180 s after line 3, not a multiple of the 120 s step"},
        {"date,v\n2012-01-01,1\n2012-02-30,2\n", "line 3: bad timestamp \"2012-02-30\""},
        {"a,b\n1,2\n", "line 2: no field is a date"},
        {"date,v\n2012-01-01,\"1\"\n", "line 2: quoted fields are not supported"},
        {"date,v\n\n2012-01-01,1\n", "line 2: empty line"},
        {"date,v\n", "no data rows"},
        {"", "no data rows"},
        {"date\n2012-01-01\n", "line 1: no value columns"},
        {"date,v\n2012-01-01,1\n1970-01-01,1\n", "is before line 2"},
        {"date,v\n0000-01-01 00:00:00,1\n0000-01-01 00:00:01,1\n9999-12-31 23:59:59,1\n",
         "line 4: the series has more"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *p = WRITE("err.csv", cases[i].text);
        dfs_series s;
        dfs_status st = dfs_csv_load_series(&s, p, NULL);
        CHECK(st == DFS_ERR_FORMAT && err_has(cases[i].want) && err_has(p) && !s.values &&
                  !s.names,
              "case %zu: status %s, error \"%s\", want \"%s\"", i, dfs_status_str(st),
              dfs_last_error(), cases[i].want);
    }
    // Options: an unknown column, the time column as a value, a given step that does not fit.
    const char *p = WRITE("opt.csv", "date,v,w\n2012-01-01,1,2\n2012-01-03,1,2\n");
    dfs_series s;
    const char *unknown[] = {"v", "nope"}, *timecol[] = {"date"};
    dfs_csv_options o = {.columns = unknown, .n_columns = 2};
    CHECK(dfs_csv_load_series(&s, p, &o) == DFS_ERR_FORMAT && err_has("line 1: no column \"nope\""),
          "unknown column: %s", dfs_last_error());
    o = (dfs_csv_options){.columns = timecol, .n_columns = 1};
    CHECK(dfs_csv_load_series(&s, p, &o) == DFS_ERR_FORMAT && err_has("time column"),
          "time column as value: %s", dfs_last_error());
    o = (dfs_csv_options){.time_column = "when"};
    CHECK(dfs_csv_load_series(&s, p, &o) == DFS_ERR_FORMAT && err_has("no time column \"when\""),
          "unknown time column: %s", dfs_last_error());
    o = (dfs_csv_options){.step = 5 * 3600};
    CHECK(dfs_csv_load_series(&s, p, &o) == DFS_ERR_FORMAT &&
              err_has("line 3: 172800 s after line 2, not a multiple of the 18000 s step"),
          "given step: %s", dfs_last_error());
    o = (dfs_csv_options){.step = -1};
    CHECK(dfs_csv_load_series(&s, p, &o) == DFS_ERR_ARG, "negative step: %s", dfs_last_error());
    CHECK(dfs_csv_load_series(&s, P("missing.csv"), NULL) == DFS_ERR_IO && err_has("missing.csv"),
          "missing file: %s", dfs_last_error());
    CHECK(dfs_csv_load_series(&s, tmpdir, NULL) == DFS_ERR_IO, "a folder: %s", dfs_last_error());
}

/* ---- hostile inputs ---------------------------------------------------------------------- */

static void test_hostile(void) {
    dfs_series s;
    // NUL byte in a data line.
    const char nul[] = "date,v\n2012-01-01,1\n2012-01-02,\0" "2\n";
    const char *p = write_text("nul.csv", nul, sizeof nul - 1);
    CHECK(dfs_csv_load_series(&s, p, NULL) == DFS_ERR_FORMAT && err_has("line 3: NUL byte"),
          "NUL: %s", dfs_last_error());
    // A line longer than the limit, and a header of 30000 columns (within it) that is ragged.
    size_t n = DFS_CSV_MAX_LINE + 100;
    char *big = malloc(n + 64);
    memcpy(big, "date,v\n2012-01-01,", 18);
    memset(big + 18, '1', n);
    strcpy(big + 18 + n, "\n");
    p = write_text("long.csv", big, strlen(big));
    CHECK(dfs_csv_load_series(&s, p, NULL) == DFS_ERR_FORMAT &&
              err_has("line 2: longer than 65536 bytes"),
          "long line: %s", dfs_last_error());
    size_t k = 0;
    for (int i = 0; i < 30000; i++) big[k++] = i ? ',' : 'd';
    memcpy(big + k, "\n2012-01-01,1\n", 15);
    p = write_text("wide.csv", big, strlen(big));
    CHECK(dfs_csv_load_series(&s, p, NULL) == DFS_ERR_FORMAT && err_has("line 2: 2 fields"),
          "wide header: %s", dfs_last_error());
    // Only commas; only a CR; binary garbage.
    p = WRITE("commas.csv", ",,,\n,,,\n");
    CHECK(dfs_csv_load_series(&s, p, NULL) == DFS_ERR_FORMAT, "commas: %s", dfs_last_error());
    p = WRITE("cr.csv", "\r");
    CHECK(dfs_csv_load_series(&s, p, NULL) == DFS_ERR_FORMAT, "CR: %s", dfs_last_error());
    for (int i = 0; i < 4096; i++) big[i] = (char)(i * 131 + 7);
    p = write_text("garbage.csv", big, 4096);
    CHECK(dfs_csv_load_series(&s, p, NULL) != DFS_OK, "garbage loaded");
    free(big);
    // A file over the size limit (sparse, so it costs no disk).
    p = P("huge.csv");
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs("date,v\n", f);
        fseek(f, (long)DFS_CSV_MAX_BYTES, SEEK_SET);
        fputs("\n", f);
        fclose(f);
        CHECK(dfs_csv_load_series(&s, p, NULL) == DFS_ERR_FORMAT && err_has("more than"),
              "huge: %s", dfs_last_error());
        remove(p);
    }
    // A gap that would need too many steps (every second of 10 years).
    p = WRITE("gap.csv", "date,v\n2000-01-01 00:00:00,1\n2000-01-01 00:00:01,1\n"
                         "2010-01-01 00:00:00,1\n");
    CHECK(dfs_csv_load_series(&s, p, NULL) == DFS_ERR_FORMAT &&
              err_has("line 4: the series has more than"),
          "gap: %s", dfs_last_error());
}

/* ---- real data --------------------------------------------------------------------------- */

#define VEGA "/usr/lib/python3/dist-packages/vega_datasets/_data/"
#define CO2 "/usr/lib/python3/dist-packages/statsmodels/datasets/co2/co2.csv"

static int present(const char *p) {
    if (access(p, R_OK) == 0) return 1;
    printf("test_csv: %s absent (scripts/setup.sh installs it); skipped\n", p);
    return 0;
}

static int count_missing(const dfs_series *s, int j) {
    int m = 0;
    for (int k = 0; k < s->n_steps; k++) m += !s->observed[k * s->n_features + j];
    return m;
}

static void test_real(void) {
    dfs_series s;
    const char *wcols[] = {"precipitation", "temp_max", "temp_min", "wind"};
    dfs_csv_options o = {.columns = wcols, .n_columns = 4};
    if (present(VEGA "seattle-weather.csv")) {
        dfs_status st = dfs_csv_load_series(&s, VEGA "seattle-weather.csv", &o);
        CHECK(st == DFS_OK, "seattle-weather: %s", dfs_last_error());
        if (st == DFS_OK) {
            CHECK(s.n_steps == 1461 && s.n_features == 4 && s.step == 86400,
                  "seattle-weather: %d x %d, step %lld", s.n_steps, s.n_features,
                  (long long)s.step);
            CHECK(s.times[0] == T("2012-01-01") && s.times[s.n_steps - 1] == T("2015-12-31"),
                  "seattle-weather: first %lld last %lld", (long long)s.times[0],
                  (long long)s.times[s.n_steps - 1]);
            CHECK(s.values[1] == 12.8f && s.values[0] == 0.0f && s.values[3] == 4.7f,
                  "seattle-weather: first row temp_max %g", s.values[1]);
            CHECK(count_missing(&s, 0) + count_missing(&s, 3) == 0, "seattle-weather: missing");
            dfs_series_free(&s);
        }
        // Every column but the date: the text column "weather" is not a number.
        CHECK(dfs_csv_load_series(&s, VEGA "seattle-weather.csv", NULL) == DFS_ERR_FORMAT &&
                  err_has("line 2: column \"weather\": \"drizzle\" is not a number"),
              "seattle-weather, all columns: %s", dfs_last_error());
    }
    if (present(VEGA "seattle-temps.csv")) {
        dfs_status st = dfs_csv_load_series(&s, VEGA "seattle-temps.csv", NULL);
        CHECK(st == DFS_OK, "seattle-temps: %s", dfs_last_error());
        if (st == DFS_OK) {
            CHECK(s.n_steps == 8760 && s.n_features == 1 && s.step == 3600,
                  "seattle-temps: %d x %d, step %lld", s.n_steps, s.n_features,
                  (long long)s.step);
            CHECK(count_missing(&s, 0) == 1, "seattle-temps: %d missing", count_missing(&s, 0));
            int gap = -1;
            for (int k = 0; k < s.n_steps; k++)
                if (!s.observed[k]) gap = k;
            CHECK(gap >= 0 && s.times[gap] == T("2010-03-14 03:00") && isnan(s.values[gap]),
                  "seattle-temps: gap at step %d (%lld), want 2010-03-14 03:00", gap,
                  gap >= 0 ? (long long)s.times[gap] : -1LL);
            CHECK(s.values[0] == 39.4f, "seattle-temps: first %g", s.values[0]);
            dfs_series_free(&s);
        }
    }
    if (present(VEGA "sf-temps.csv")) {
        dfs_status st = dfs_csv_load_series(&s, VEGA "sf-temps.csv", NULL);
        CHECK(st == DFS_OK, "sf-temps: %s", dfs_last_error());
        if (st == DFS_OK) {
            // 8759 rows: 2010-03-14 03:00 is missing, as in seattle-temps.
            CHECK(s.n_steps == 8760 && s.n_features == 1 && s.step == 3600 &&
                      !strcmp(s.names[0], "temp"),
                  "sf-temps: %d x %d, step %lld, %s", s.n_steps, s.n_features,
                  (long long)s.step, s.names[0]);
            CHECK(s.values[0] == 47.8f && s.times[0] == T("2010-01-01") &&
                      s.values[s.n_steps - 1] == 48.3f &&
                      s.times[s.n_steps - 1] == T("2010-12-31 23:00"),
                  "sf-temps: first %g last %g", s.values[0], s.values[s.n_steps - 1]);
            CHECK(count_missing(&s, 0) == 1 && !s.observed[1731] &&
                      s.times[1731] == T("2010-03-14 03:00"),
                  "sf-temps: %d missing", count_missing(&s, 0));
            dfs_series_free(&s);
        }
    }
    if (present(CO2)) {
        dfs_status st = dfs_csv_load_series(&s, CO2, NULL);
        CHECK(st == DFS_OK, "co2: %s", dfs_last_error());
        if (st == DFS_OK) {
            CHECK(s.n_steps == 2284 && s.step == 7 * 86400 && s.times[0] == T("1958-03-29"),
                  "co2: %d steps, step %lld", s.n_steps, (long long)s.step);
            CHECK(s.values[0] == 316.1f && !s.observed[6] && isnan(s.values[6]),
                  "co2: first %g, 1958-05-10 observed %d", s.values[0], s.observed[6]);
            printf("test_csv: co2 %d weeks, %d missing\n", s.n_steps, count_missing(&s, 0));
            dfs_series_free(&s);
        }
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfs_csv_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_time();
    test_roundtrip();
    test_errors();
    test_hostile();
    test_real();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_csv");
}
