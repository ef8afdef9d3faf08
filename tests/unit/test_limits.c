/* test_limits.c - the writers never write what the readers refuse (issue 14): a safetensors
 * header past the readers' 100 MB, a tokenizer word past 128 bytes. The folder- and file-level
 * cases (IDX and PNG bombs, links, long captions) are in tests/cli/cli_hostile.sh. */
#include "check.h"
#include "diffuse.h"

#include <string.h>
#include <unistd.h>

static int file_equals(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[64];
    size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return got == n && memcmp(buf, data, n) == 0;
}

static void test_header_limit(void) {
    char path[] = "/tmp/dfs_limits_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    const char old[] = "the file before the write";
    CHECK(write(fd, old, sizeof old) == (ssize_t)sizeof old, "write the old file");
    close(fd);

    float x[2] = {1, 2};
    int64_t shape[1] = {2};
    // a header just over the limit: one metadata value of 100,000,000 bytes
    size_t big = 100u * 1000u * 1000u;
    char *val = malloc(big + 1);
    CHECK(val != NULL, "malloc");
    if (!val) return;
    memset(val, 'a', big);
    val[big] = 0;
    dfs_st_writer *w = dfs_st_writer_new();
    CHECK(dfs_st_writer_add(w, "x", DFS_DT_F32, 1, shape, x) == DFS_OK, "add");
    CHECK(dfs_st_writer_meta(w, "big", val) == DFS_OK, "meta");
    dfs_status st = dfs_st_writer_write(w, path);
    CHECK(st == DFS_ERR_FORMAT, "a header over 100 MB is refused (status %d)", st);
    CHECK(strstr(dfs_last_error(), "exceeds the 100 MB that readers accept") != NULL,
          "message: %s", dfs_last_error());
    CHECK(file_equals(path, old, sizeof old), "the old file is untouched");
    dfs_st_writer_free(w);

    // 99,999,000 bytes of value: the header (with its keys and the tensor entry) fits; the
    // written file loads back, so the reader's and the writer's limits are the same one
    val[big - 1000] = 0;
    w = dfs_st_writer_new();
    CHECK(dfs_st_writer_add(w, "x", DFS_DT_F32, 1, shape, x) == DFS_OK, "add");
    CHECK(dfs_st_writer_meta(w, "big", val) == DFS_OK, "meta");
    st = dfs_st_writer_write(w, path);
    CHECK(st == DFS_OK, "a header under 100 MB is written: %s", dfs_last_error());
    dfs_st_writer_free(w);
    dfs_safetensors f;
    st = dfs_st_load(&f, path);
    CHECK(st == DFS_OK, "and reads back: %s", dfs_last_error());
    if (!st) {
        const char *m = dfs_st_meta(&f, "big");
        CHECK(m && strlen(m) == big - 1000, "the value is whole");
        dfs_st_free(&f);
    }
    free(val);
    unlink(path);
}

static void test_word_limit(void) {
    dfs_tokenizer_config cfg;
    dfs_tokenizer_config_default(&cfg);
    char cap[300];
    memcpy(cap, "a red ", 6);
    memset(cap + 6, 'w', 129);
    cap[6 + 129] = 0;
    const char *texts[1] = {cap};
    dfs_tokenizer *t = NULL;
    dfs_status st = dfs_tokenizer_build(&t, texts, 1, &cfg);
    CHECK(st == DFS_ERR_FORMAT && !t, "a 129-byte word is refused (status %d)", st);
    CHECK(strstr(dfs_last_error(), "caption 0 has a word of 129 bytes") != NULL, "message: %s",
          dfs_last_error());
    cap[6 + 128] = 0; // 128 bytes: the longest allowed, and its JSON reads back
    st = dfs_tokenizer_build(&t, texts, 1, &cfg);
    CHECK(st == DFS_OK && t, "a 128-byte word is kept: %s", dfs_last_error());
    if (!t) return;
    char *json = dfs_tokenizer_to_json(t);
    dfs_tokenizer *back = NULL;
    CHECK(json && dfs_tokenizer_from_json(&back, json) == DFS_OK, "round trip: %s",
          dfs_last_error());
    CHECK(back && dfs_tokenizer_vocab_size(back) == dfs_tokenizer_vocab_size(t), "same vocabulary");
    dfs_tokenizer_free(back);
    back = NULL;
    // the reader refuses a 129-byte word that the builder would not have made
    char bad[400];
    char word[130];
    memset(word, 'w', 129);
    word[129] = 0;
    snprintf(bad, sizeof bad,
             "{\"format\":\"diffuse-words-1\",\"max_len\":8,\"vocab\":[\"<pad>\",\"<unk>\","
             "\"<bos>\",\"<eos>\",\"%s\"]}",
             word);
    st = dfs_tokenizer_from_json(&back, bad);
    CHECK(st == DFS_ERR_FORMAT && !back, "a stored 129-byte word is refused (status %d)", st);
    CHECK(strstr(dfs_last_error(), "a lowercase word of at most 128 bytes") != NULL,
          "message: %s", dfs_last_error());
    free(json);
    dfs_tokenizer_free(t);
}

int main(void) {
    test_header_limit();
    test_word_limit();
    return check_summary("test_limits");
}
