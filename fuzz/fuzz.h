/* fuzz.h - helpers shared by the libFuzzer harnesses in fuzz/ (fuzz/README.md).
 *
 * Every harness defines LLVMFuzzerTestOneInput. It is linked either with libFuzzer (clang
 * -fsanitize=fuzzer: `make fuzz`) or with fuzz/replay_main.c (any compiler: `make test` replays
 * the corpus and the regression files through it). The library's parsers take paths, so the
 * harnesses write their input to files in a private temporary folder first. */
#ifndef DFS_FUZZ_H
#define DFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* This process's scratch folder (created on first use under $TMPDIR, else /dev/shm, else
 * /tmp; removed at exit). Aborts if it cannot be made: a harness without files tests nothing. */
const char *fuzz_dir(void);
/* fuzz_dir()/name, in a static buffer of the caller's choosing (out, cap). */
const char *fuzz_path(char *out, size_t cap, const char *name);
/* Write size bytes to path (truncating); aborts on failure. */
void fuzz_write(const char *path, const void *data, size_t size);
/* Remove everything inside fuzz_dir() (not the folder itself). */
void fuzz_clear(void);
/* Read every byte of p[0..n) so that AddressSanitizer checks the range; returns a checksum
 * (use it, so the reads are not optimised away). */
unsigned fuzz_touch(const void *p, size_t n);
/* PNG inputs: recompute the CRC of every complete chunk in place, so that mutations of chunk
 * contents reach the parser instead of stopping at libpng's CRC check. No-op on non-PNG data
 * and on a valid PNG. */
void fuzz_fix_png_crcs(uint8_t *data, size_t size);
/* With FUZZ_VERBOSE=1 in the environment, print one line per parser call: its status
 * (dfs_status_str) and, when it failed, the error message. Quiet otherwise. */
void fuzz_report(const char *call, const char *status, int failed, const char *error);
#define FUZZ_REPORT(call, s) fuzz_report(call, dfs_status_str(s), (s) != DFS_OK, dfs_last_error())
/* Stop with a message: an invariant of the parser's contract was broken (a finding). */
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
