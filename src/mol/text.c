/* mol/text.c - reading a molecule file whole, walking its lines, strict numbers, and the text
 * buffer the writers fill before one atomic write. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mol_internal.h"

/* ---- lines ------------------------------------------------------------------------------- */

void mol_lines_init(mol_lines *L, const char *text, size_t len) {
    L->p = text;
    L->end = text + len;
    L->lineno = 0;
}

int mol_next_line(mol_lines *L, const char **s, size_t *n) {
    if (L->p >= L->end) return 0;
    const char *nl = memchr(L->p, '\n', (size_t)(L->end - L->p));
    size_t k = nl ? (size_t)(nl - L->p) : (size_t)(L->end - L->p);
    *s = L->p;
    if (k && L->p[k - 1] == '\r') k--;
    *n = k;
    L->p = nl ? nl + 1 : L->end;
    L->lineno++;
    return 1;
}

int mol_rest_blank(const mol_lines *L) {
    for (const char *q = L->p; q < L->end; q++)
        if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') return 0;
    return 1;
}

int mol_line_of(const char *text, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += text[i] == '\n';
    return line;
}

/* ---- fields ------------------------------------------------------------------------------ */

void mol_trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

static int digit(char c) { return c >= '0' && c <= '9'; }

int mol_parse_double(const char *s, size_t n, double *out, int *finite) {
    mol_trim(&s, &n);
    /* [+-]nan, inf, infinity: a number, but not a finite one */
    size_t w = n && (s[0] == '+' || s[0] == '-');
    if (((n - w == 3 && (!strncasecmp(s + w, "nan", 3) || !strncasecmp(s + w, "inf", 3))) ||
         (n - w == 8 && !strncasecmp(s + w, "infinity", 8)))) {
        *out = NAN;
        *finite = 0;
        return 1;
    }
    /* check the grammar first: strtod alone would take "nan", "inf" and hex */
    size_t i = 0, d = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    while (i < n && digit(s[i])) i++, d++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && digit(s[i])) i++, d++;
    }
    if (!d) return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t e = 0;
        while (i < n && digit(s[i])) i++, e++;
        if (!e) return 0;
    }
    if (i != n || n > 63) return 0;
    char tmp[64];
    memcpy(tmp, s, n);
    tmp[n] = 0;
    *out = strtod(tmp, NULL);
    *finite = isfinite(*out) != 0;
    return 1;
}

int mol_parse_int(const char *s, size_t n, int *out) {
    mol_trim(&s, &n);
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == n) return 0;
    long v = 0;
    for (; i < n; i++) {
        if (!digit(s[i])) return 0;
        v = v * 10 + (s[i] - '0');
        if (v >= 1000000000L) return 0;
    }
    *out = (int)(neg ? -v : v);
    return 1;
}

const char *mol_quote(const char *s, size_t n, int slot) {
    static _Thread_local char q[2][64];
    char *b = q[slot & 1];
    size_t max = 40, k = n < max ? n : max;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        b[i] = c < 32 || c == 127 ? '?' : (char)c;
    }
    if (n > max) memcpy(b + k, "...", 3), k += 3;
    b[k] = 0;
    return b;
}

/* ---- writing ----------------------------------------------------------------------------- */

void mol_buf_printf(mol_buf *b, const char *fmt, ...) {
    if (b->err) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->err = 1;
            return;
        }
        if ((size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n <= (size_t)k) {
            if (cap > SIZE_MAX / 2) {
                b->err = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

dfs_status mol_buf_write(mol_buf *b, const char *path) {
    dfs_status st;
    if (b->err) {
        dfs_set_error("%s: out of memory building the file", path);
        st = DFS_ERR_NOMEM;
    } else {
        st = dfs_write_atomic(path, b->p ? b->p : "", b->n);
    }
    free(b->p);
    memset(b, 0, sizeof *b);
    return st;
}
