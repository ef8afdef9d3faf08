/* fuzz_tokenizer.c - the word tokenizer's JSON (dfs_tokenizer_from_json), as a text model's
 * checkpoint stores it.
 *
 * Input: JSON, then optionally a NUL byte and text. The JSON goes to dfs_tokenizer_from_json;
 * a tokenizer it accepts must survive dfs_tokenizer_to_json -> from_json unchanged, find each of
 * its words at its own id, and encode and decode the text. The text's lines also go to
 * dfs_tokenizer_build, whose tokenizer must round-trip through JSON the same way. */
#include "diffuse.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static void use(const dfs_tokenizer *t, const char *text, const char *what) {
    int n = dfs_tokenizer_vocab_size(t), L = dfs_tokenizer_max_len(t);
    if (n < DFS_TOK_SPECIALS || L < 3) fuzz_fail("%s: %d words, max_len %d", what, n, L);
    for (int i = DFS_TOK_SPECIALS; i < n; i++)
        if (dfs_tokenizer_id(t, dfs_tokenizer_word(t, i)) != i) fuzz_fail("%s: word %d is not found at its id", what, i);
    if (dfs_tokenizer_word(t, n) || dfs_tokenizer_word(t, -1)) fuzz_fail("%s: a word past the vocabulary", what);
    char *json = dfs_tokenizer_to_json(t);
    if (!json) fuzz_fail("%s: to_json: %s", what, dfs_last_error());
    dfs_tokenizer *back = NULL;
    if (dfs_tokenizer_from_json(&back, json) != DFS_OK) fuzz_fail("%s: its own JSON does not parse: %s", what, dfs_last_error());
    char *again = dfs_tokenizer_to_json(back);
    if (!again || strcmp(json, again) != 0) fuzz_fail("%s: JSON changes on a round trip", what);
    free(again);
    dfs_tokenizer_free(back);
    free(json);
    if (!text) return;
    int *ids = malloc((size_t)L * sizeof(int));
    uint8_t *mask = malloc((size_t)L);
    if (!ids || !mask) fuzz_fail("out of memory");
    dfs_encode_info info;
    if (dfs_tokenizer_encode(t, text, L, ids, mask, &info, NULL, NULL) == DFS_OK) {
        if (info.length < 2 || info.length > L) fuzz_fail("%s: encoded length %d of %d", what, info.length, L);
        for (int i = 0; i < L; i++)
            if (ids[i] < 0 || ids[i] >= n || mask[i] != (i < info.length)) fuzz_fail("%s: id %d or mask %d at %d", what, ids[i], mask[i], i);
        char *dec = dfs_tokenizer_decode(t, ids, L);
        if (!dec) fuzz_fail("%s: decode: %s", what, dfs_last_error());
        free(dec);
    }
    free(ids);
    free(mask);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 2); // JSON NUL text NUL
    if (!s) fuzz_fail("out of memory");
    memcpy(s, data, size);
    s[size] = 0, s[size + 1] = 0;
    size_t jl = strlen(s);
    const char *text = jl < size ? s + jl + 1 : NULL;
    dfs_tokenizer *t = NULL;
    dfs_status st = dfs_tokenizer_from_json(&t, s);
    FUZZ_REPORT("dfs_tokenizer_from_json", st);
    if (st == DFS_OK) {
        if (!t) fuzz_fail("from_json: OK without a tokenizer");
        use(t, text, "from_json");
        dfs_tokenizer_free(t);
    } else if (t) {
        fuzz_fail("from_json failed but returned a tokenizer");
    }
    if (text && dfs_utf8_invalid(text) < 0) { // captions must be UTF-8 (diffuse.h)
        char *copy = strdup(text);
        const char *lines[64];
        int n = 0;
        for (char *p = copy, *e; p && n < 64; p = e ? e + 1 : NULL) {
            e = strchr(p, '\n');
            if (e) *e = 0;
            lines[n++] = p;
        }
        dfs_tokenizer_config c;
        dfs_tokenizer_config_default(&c);
        st = dfs_tokenizer_build(&t, lines, n, &c);
        FUZZ_REPORT("dfs_tokenizer_build", st);
        if (st == DFS_OK) {
            use(t, text, "build");
            dfs_tokenizer_free(t);
        }
        free(copy);
    }
    free(s);
    return 0;
}
