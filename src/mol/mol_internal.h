/* mol/mol_internal.h - what the molecule files share: reading a whole file, walking its lines,
 * strict numbers, and a growing text buffer for the writers. Private to src/mol. */
#ifndef DFS_MOL_INTERNAL_H
#define DFS_MOL_INTERNAL_H

#include <stdarg.h>

#include "diffuse/mol.h"

/* Read path into a malloc'ed, NUL-terminated buffer of *size bytes (at most
 * DFS_MOL_MAX_BYTES). DFS_ERR_IO, DFS_ERR_FORMAT (too large), DFS_ERR_NOMEM. */

/* Lines of a text, each without its "\n" or "\r\n". */
typedef struct {
    const char *p, *end;
    int lineno; /* number of the line last returned (1-based) */
} mol_lines;

void mol_lines_init(mol_lines *L, const char *text, size_t len);
/* The next line in *s (not NUL-terminated), *n bytes; 0 at the end of the text. */
int mol_next_line(mol_lines *L, const char **s, size_t *n);
/* Whether every line from the current position on is blank (spaces, tabs). */
int mol_rest_blank(const mol_lines *L);
/* The number of the line holding text[off] (1-based). */
int mol_line_of(const char *text, size_t off);

/* s[0..n) with spaces and tabs trimmed off both ends. */
void mol_trim(const char **s, size_t *n);
/* A decimal number [+-]digits[.digits][(e|E)[+-]digits] (or .digits) filling the trimmed
 * s[0..n): 1 with *out set, 0 when it is not one (hex, empty, trailing text). *finite is 0
 * when it overflows a double, or for nan, inf and infinity (any case, with a sign), which
 * return 1 so that the caller can say "not a finite number". */
int mol_parse_double(const char *s, size_t n, double *out, int *finite);
/* [+-]digits filling the trimmed s[0..n), |value| < 1e9: 1 with *out set, else 0. */
int mol_parse_int(const char *s, size_t n, int *out);
/* At most max bytes of s[0..n) for a message, with "..." when cut: a static buffer per thread
 * and slot (slot 0 or 1, so that one message may quote two fields). */
const char *mol_quote(const char *s, size_t n, int slot);

/* Check bonds[0..nb) of an n-atom molecule: DFS_ERR_ARG with *bad = the first bond with an
 * atom outside 0..n-1, a loop or an order outside 1..4, or *dup = the later of the first two
 * bonds found on the same pair; DFS_ERR_NOMEM. No message is set. */
dfs_status mol_bonds_check(const dfs_mol_bond *bonds, int nb, int n, int *bad, int *dup);

/* A growing text; err is set (and later writes ignored) once an allocation fails. */
typedef struct {
    char *p;
    size_t n, cap;
    int err;
} mol_buf;

void mol_buf_printf(mol_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write b to path atomically, then free it; DFS_ERR_NOMEM when an append failed. */
dfs_status mol_buf_write(mol_buf *b, const char *path);

/* The training molecules (k, the trainer's batch of them) of the batch that starts at position
 * `seen` of the epoch orders, and the slots it pads to: its largest molecule's atoms. Batches
 * come from groups of like sizes (src/mol/model.c); exposed for the tests. */
int dfs_mol_trainer_batch(dfs_mol_trainer *t, long seen, int *k);

#endif
