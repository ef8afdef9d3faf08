/* t2i.c - command-line helpers for text-to-image (cli/t2i.h). */
#include "t2i.h"

#include <stdlib.h>
#include <string.h>

void cli_words_add(void *user, const char *word) {
    cli_words *u = user;
    u->count++;
    for (int i = 0; i < u->n; i++)
        if (!strcmp(u->seen[i], word)) return;
    if (u->n == u->cap) {
        int cap = u->cap ? 2 * u->cap : 8;
        char **s = realloc(u->seen, (size_t)cap * sizeof *s);
        if (!s) return; /* out of memory: the word is counted, not named */
        u->seen = s;
        u->cap = cap;
    }
    if ((u->seen[u->n] = strdup(word))) u->n++;
}

void cli_words_warn(const cli_words *u) {
    if (u->n == 0) return;
    fputs("diffuse: warning: unknown words (encoded as <unk>):", stderr);
    for (int i = 0; i < u->n && i < 20; i++) fprintf(stderr, " '%s'", u->seen[i]);
    if (u->n > 20) fprintf(stderr, " and %d more", u->n - 20);
    fputc('\n', stderr);
}

void cli_words_free(cli_words *u) {
    for (int i = 0; i < u->n; i++) free(u->seen[i]);
    free(u->seen);
    memset(u, 0, sizeof *u);
}
