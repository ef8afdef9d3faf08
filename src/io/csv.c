/* io/csv.c - timestamped series from comma-separated files (include/diffuse/io.h).
 *
 *   date,temp                  a header row of column names
 *   2010-01-01 00:00:00,39.4   a timestamp column and numeric columns; "" is missing
 *
 * The whole file is read into memory (at most DFS_CSV_MAX_BYTES), the rows are parsed in one
 * pass into (time, values) with their line numbers, then the step is fixed (given, or the
 * smallest difference) and the rows are spread onto the regular grid, gaps left missing. */
#include "diffuse/io.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- timestamps -------------------------------------------------------------------------- */

/* n decimal digits at t into *v; 0 if any is not a digit. */
static int digits(const char *t, int n, int *v) {
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9') return 0;
        x = x * 10 + (t[i] - '0');
    }
    *v = x;
    return 1;
}

dfs_status dfs_csv_parse_time(const char *t, size_t n, int64_t *seconds) {
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h = 0, mi = 0, s = 0;
    if (!t || !seconds) return DFS_ERR_ARG;
    if (n && t[n - 1] == 'Z') n--;
    if (n == 8) { // YYYYMMDD, ISO 8601's basic form (statsmodels' co2.csv)
        if (!digits(t, 4, &y) || !digits(t + 4, 2, &mo) || !digits(t + 6, 2, &d))
            return DFS_ERR_FORMAT;
        n = 10;
    } else if (n < 10 || !digits(t, 4, &y) || (t[4] != '-' && t[4] != '/') || t[7] != t[4] ||
               !digits(t + 5, 2, &mo) || !digits(t + 8, 2, &d)) {
        return DFS_ERR_FORMAT;
    }
    if (n > 10) {
        // [T ]HH:MM or [T ]HH:MM:SS
        if ((t[10] != 'T' && t[10] != ' ') || (n != 16 && n != 19)) return DFS_ERR_FORMAT;
        if (!digits(t + 11, 2, &h) || t[13] != ':' || !digits(t + 14, 2, &mi))
            return DFS_ERR_FORMAT;
        if (n == 19 && (t[16] != ':' || !digits(t + 17, 2, &s))) return DFS_ERR_FORMAT;
    } else if (n != 10) {
        return DFS_ERR_FORMAT;
    }
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap)) return DFS_ERR_FORMAT;
    if (h > 23 || mi > 59 || s > 59) return DFS_ERR_FORMAT;
    /* the fields are checked above, so glibc's timegm (UTC, proleptic Gregorian) only adds up */
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    *seconds = (int64_t)timegm(&tm);
    return DFS_OK;
}

/* ---- fields ------------------------------------------------------------------------------ */

typedef struct {
    const char *p;
    size_t n;
} field;

/* Split line[0..n) at commas into f (cap entries); returns the count, or cap + 1 if more. */
static int split(const char *line, size_t n, field *f, int cap) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || line[i] == ',') {
            if (k == cap) return cap + 1;
            f[k].p = line + start;
            f[k].n = i - start;
            k++;
            start = i + 1;
        }
    }
    return k;
}

static void trim(field *f) {
    while (f->n && (f->p[0] == ' ' || f->p[0] == '\t')) f->p++, f->n--;
    while (f->n && (f->p[f->n - 1] == ' ' || f->p[f->n - 1] == '\t')) f->n--;
}

/* A decimal number [+-]digits[.digits][(e|E)[+-]digits] (at least one digit in the mantissa)
 * into *v as float; 0 if the text is anything else or the value is not a finite float. */
static int parse_number(field f, float *v) {
    char buf[64];
    size_t i = 0, nd = 0;
    if (f.n == 0 || f.n >= sizeof buf) return 0;
    if (f.p[i] == '+' || f.p[i] == '-') i++;
    while (i < f.n && f.p[i] >= '0' && f.p[i] <= '9') i++, nd++;
    if (i < f.n && f.p[i] == '.') {
        i++;
        while (i < f.n && f.p[i] >= '0' && f.p[i] <= '9') i++, nd++;
    }
    if (!nd) return 0;
    if (i < f.n && (f.p[i] == 'e' || f.p[i] == 'E')) {
        i++;
        if (i < f.n && (f.p[i] == '+' || f.p[i] == '-')) i++;
        size_t ne = 0;
        while (i < f.n && f.p[i] >= '0' && f.p[i] <= '9') i++, ne++;
        if (!ne) return 0;
    }
    if (i != f.n) return 0;
    memcpy(buf, f.p, f.n);
    buf[f.n] = 0;
    double d = strtod(buf, NULL);
    if (!isfinite(d) || fabs(d) > 3.4028234663852886e38) return 0;
    *v = (float)d;
    return 1;
}

/* ---- the loader -------------------------------------------------------------------------- */

typedef struct {
    int64_t *t;   // (rows)
    int *line;    // (rows)
    float *v;     // (rows, nf)
    uint8_t *obs; // (rows, nf)
    size_t n, cap;
} rows;

static int rows_push(rows *r, int nf) {
    if (r->n < r->cap) return 1;
    size_t cap = r->cap ? r->cap * 2 : 256;
    if (cap > SIZE_MAX / sizeof(int64_t) / (size_t)(nf + 1)) return 0;
    int64_t *t = realloc(r->t, cap * sizeof *t);
    if (t) r->t = t;
    int *l = realloc(r->line, cap * sizeof *l);
    if (l) r->line = l;
    float *v = realloc(r->v, cap * (size_t)nf * sizeof *v + 1);
    if (v) r->v = v;
    uint8_t *o = realloc(r->obs, cap * (size_t)nf + 1);
    if (o) r->obs = o;
    if (!t || !l || !v || !o) return 0;
    r->cap = cap;
    return 1;
}

void dfs_series_free(dfs_series *s) {
    if (!s) return;
    free(s->values);
    free(s->observed);
    free(s->times);
    if (s->names)
        for (int j = 0; j < s->n_features; j++) free(s->names[j]);
    free(s->names);
    memset(s, 0, sizeof *s);
}

static char *dup_field(field f) {
    char *c = malloc(f.n + 1);
    if (c) {
        memcpy(c, f.p, f.n);
        c[f.n] = 0;
    }
    return c;
}

static int field_is(field f, const char *name) {
    return strlen(name) == f.n && !memcmp(f.p, name, f.n);
}

dfs_status dfs_csv_load_series(dfs_series *s, const char *path, const dfs_csv_options *opt) {
    if (!s || !path) {
        dfs_set_error("dfs_csv_load_series: NULL argument");
        return DFS_ERR_ARG;
    }
    memset(s, 0, sizeof *s);
    dfs_csv_options o = {0};
    if (opt) o = *opt;
    if (o.step < 0 || o.n_columns < 0 || (o.n_columns > 0 && !o.columns)) {
        dfs_set_error("dfs_csv_load_series: %s: bad options (step %lld, %d columns)", path,
                      (long long)o.step, o.n_columns);
        return DFS_ERR_ARG;
    }
    if (o.columns)
        for (int j = 0; j < o.n_columns; j++)
            if (!o.columns[j]) {
                dfs_set_error("dfs_csv_load_series: %s: column name %d is NULL", path, j);
                return DFS_ERR_ARG;
            }
    char *buf = NULL;
    size_t size = 0;
    dfs_status st = dfs_read_file(path, DFS_CSV_MAX_BYTES, "a CSV series", &buf, &size);
    if (st) return st;
    st = DFS_ERR_FORMAT;
    field *hdr = NULL, *fl = NULL;
    int *col = NULL; // (nf) header index of each feature
    rows r = {0};
    int nh = 0, nf = 0, tcol = -1, lineno = 0;
    const char *p = buf, *end = buf + size;
    if (size >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;
    int cap = DFS_CSV_MAX_LINE / 2 + 1; // the most fields a line can hold
    hdr = malloc(sizeof *hdr * (size_t)cap);
    fl = malloc(sizeof *fl * (size_t)cap);
    if (!hdr || !fl) goto nomem;
    while (p < end) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *line = p;
        p = nl ? nl + 1 : end;
        if (n && line[n - 1] == '\r') n--;
        if (n > DFS_CSV_MAX_LINE) {
            dfs_set_error("%s: line %d: longer than %d bytes", path, lineno, DFS_CSV_MAX_LINE);
            goto fail;
        }
        if (memchr(line, 0, n)) {
            dfs_set_error("%s: line %d: NUL byte (not a text file?)", path, lineno);
            goto fail;
        }
        if (memchr(line, '"', n)) {
            dfs_set_error("%s: line %d: quoted fields are not supported", path, lineno);
            goto fail;
        }
        if (n == 0) {
            // Blank lines are allowed only at the end of the file.
            while (p < end && (*p == '\n' || *p == '\r')) p++;
            if (p == end && lineno > 1) break;
            dfs_set_error("%s: line %d: empty line", path, lineno);
            goto fail;
        }
        if (lineno == 1) {
            nh = split(line, n, hdr, cap);
            for (int i = 0; i < nh; i++) trim(&hdr[i]);
            continue;
        }
        int k = split(line, n, fl, cap);
        if (k != nh) {
            dfs_set_error("%s: line %d: %d fields, the header has %d", path, lineno, k, nh);
            goto fail;
        }
        for (int i = 0; i < k; i++) trim(&fl[i]);
        if (!col) {
            // First data row: choose the time column and the features.
            int64_t tt;
            if (o.time_column) {
                for (int i = 0; i < nh && tcol < 0; i++)
                    if (field_is(hdr[i], o.time_column)) tcol = i;
                if (tcol < 0) {
                    dfs_set_error("%s: line 1: no time column \"%s\"", path, o.time_column);
                    goto fail;
                }
            } else {
                for (int i = 0; i < nh && tcol < 0; i++)
                    if (dfs_csv_parse_time(fl[i].p, fl[i].n, &tt) == DFS_OK) tcol = i;
                if (tcol < 0) {
                    dfs_set_error("%s: line %d: no field is a date or date-time", path, lineno);
                    goto fail;
                }
            }
            nf = o.columns ? o.n_columns : nh - 1;
            if (nf == 0) {
                dfs_set_error("%s: line 1: no value columns", path);
                goto fail;
            }
            col = malloc(sizeof *col * (size_t)nf);
            if (!col) goto nomem;
            for (int j = 0, i = 0; j < nf; j++) {
                if (!o.columns) {
                    col[j] = i == tcol ? ++i : i;
                    i++;
                    continue;
                }
                col[j] = -1;
                for (int h = 0; h < nh; h++) {
                    if (!field_is(hdr[h], o.columns[j])) continue;
                    if (col[j] >= 0) {
                        dfs_set_error("%s: line 1: column \"%s\" appears twice", path,
                                      o.columns[j]);
                        goto fail;
                    }
                    col[j] = h;
                }
                if (col[j] < 0 || col[j] == tcol) {
                    dfs_set_error("%s: line 1: %s column \"%s\"", path,
                                  col[j] < 0 ? "no" : "the time column is not a value",
                                  o.columns[j]);
                    goto fail;
                }
            }
        }
        if (!rows_push(&r, nf)) goto nomem;
        int64_t t;
        field tf = fl[tcol];
        if (dfs_csv_parse_time(tf.p, tf.n, &t)) {
            dfs_set_error("%s: line %d: bad timestamp \"%.*s\" (want YYYY-MM-DD[ HH:MM[:SS]])",
                          path, lineno, (int)(tf.n > 40 ? 40 : tf.n), tf.p);
            goto fail;
        }
        if (r.n && t <= r.t[r.n - 1]) {
            dfs_set_error("%s: line %d: timestamp \"%.*s\" %s line %d's", path, lineno,
                          (int)tf.n, tf.p, t == r.t[r.n - 1] ? "repeats" : "is before",
                          r.line[r.n - 1]);
            goto fail;
        }
        float *v = r.v + r.n * (size_t)nf;
        uint8_t *ob = r.obs + r.n * (size_t)nf;
        for (int j = 0; j < nf; j++) {
            field f = fl[col[j]];
            ob[j] = f.n > 0;
            v[j] = NAN;
            if (f.n && !parse_number(f, &v[j])) {
                dfs_set_error("%s: line %d: column \"%.*s\": \"%.*s\" is not a number", path,
                              lineno, (int)hdr[col[j]].n, hdr[col[j]].p,
                              (int)(f.n > 40 ? 40 : f.n), f.p);
                goto fail;
            }
        }
        r.t[r.n] = t;
        r.line[r.n] = lineno;
        r.n++;
    }
    if (!r.n) {
        dfs_set_error("%s: no data rows", path);
        goto fail;
    }
    // The step: given, or the smallest difference; every difference a whole multiple of it.
    int64_t step = o.step;
    if (!step)
        for (size_t i = 1; i < r.n; i++)
            if (!step || r.t[i] - r.t[i - 1] < step) step = r.t[i] - r.t[i - 1];
    int64_t n_steps = 1;
    for (size_t i = 1; i < r.n; i++) {
        int64_t dt = r.t[i] - r.t[i - 1];
        if (dt % step) {
            dfs_set_error("%s: line %d: %lld s after line %d, not a multiple of the %lld s step",
                          path, r.line[i], (long long)dt, r.line[i - 1], (long long)step);
            goto fail;
        }
        n_steps += dt / step;
        if (n_steps * nf > DFS_CSV_MAX_CELLS) {
            dfs_set_error("%s: line %d: the series has more than %lld entries (%lld steps of %d)",
                          path, r.line[i], (long long)DFS_CSV_MAX_CELLS, (long long)n_steps, nf);
            goto fail;
        }
    }
    size_t ns = (size_t)n_steps, cells = ns * (size_t)nf;
    s->values = malloc(cells * sizeof(float));
    s->observed = calloc(cells, 1);
    s->times = malloc(ns * sizeof(int64_t));
    s->names = calloc((size_t)nf, sizeof(char *));
    if (!s->values || !s->observed || !s->times || !s->names) goto nomem;
    s->n_steps = (int)n_steps;
    s->n_features = nf;
    s->step = r.n > 1 ? step : o.step;
    for (int j = 0; j < nf; j++)
        if (!(s->names[j] = dup_field(hdr[col[j]]))) goto nomem;
    for (size_t k = 0; k < ns; k++) s->times[k] = r.t[0] + (int64_t)k * step;
    for (size_t c = 0; c < cells; c++) s->values[c] = NAN;
    for (size_t i = 0; i < r.n; i++) {
        size_t k = (size_t)((r.t[i] - r.t[0]) / (step ? step : 1));
        memcpy(s->values + k * (size_t)nf, r.v + i * (size_t)nf, sizeof(float) * (size_t)nf);
        memcpy(s->observed + k * (size_t)nf, r.obs + i * (size_t)nf, (size_t)nf);
    }
    st = DFS_OK;
    goto done;
nomem:
    dfs_set_error("%s: out of memory", path);
    st = DFS_ERR_NOMEM;
fail:
    dfs_series_free(s);
done:
    free(buf);
    free(hdr);
    free(fl);
    free(col);
    free(r.t);
    free(r.line);
    free(r.v);
    free(r.obs);
    return st;
}
