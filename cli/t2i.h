/* t2i.h - command-line helpers shared by diffuse train --text and diffuse sample --prompt
 * (cli/t2i.c): gathering the unknown words of captions and prompts into one warning line. */
#ifndef DFS_CLI_T2I_H
#define DFS_CLI_T2I_H

#include "common.h"

/* Distinct words that encoded as <unk>, in order of first appearance, and how often. */
typedef struct {
    char **seen;
    int n, cap;
    long count; /* occurrences, repeats included */
} cli_words;

/* A dfs_unknown_fn: user is a cli_words. */
void cli_words_add(void *user, const char *word);
/* One line on stderr: "diffuse: warning: unknown words (encoded as <unk>): 'a' 'b'" (the first
 * 20 and a count of the rest); nothing when there are none. */
void cli_words_warn(const cli_words *u);
void cli_words_free(cli_words *u);

#endif
