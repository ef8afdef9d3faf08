/* fuzz_png.c - PNG files through dfs_png_read (libpng with the library's limits, palette,
 * gray, alpha and 16-bit expansion, interlacing, compositing on white), then the decoded image
 * through dfs_image_resize_u8 as a folder of PNGs would convert it.
 *
 * The harness rewrites every chunk's CRC before writing the file (fuzz_fix_png_crcs), so that a
 * mutated chunk reaches the decoder instead of failing libpng's CRC check. Run it with
 * -rss_limit_mb=2048 -malloc_limit_mb=512 (fuzz/run.sh does): a 64 KB input has no business
 * allocating more, whatever its header declares. */
#include "diffuse.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#define RESIZE_MAX_PIXELS (1 << 22) // resize only images up to 4 Mpixel (the time goes there)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[600];
    if (!path[0]) fuzz_path(path, sizeof path, "input.png");
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) fuzz_fail("out of memory");
    memcpy(copy, data, size);
    fuzz_fix_png_crcs(copy, size);
    fuzz_write(path, copy, size);
    free(copy);
    uint8_t *px = NULL;
    int c = 0, h = 0, w = 0;
    dfs_status s = dfs_png_read(path, &px, &c, &h, &w);
    FUZZ_REPORT("dfs_png_read", s);
    if (s != DFS_OK) {
        if (px) fuzz_fail("png_read failed (%s) but returned pixels", dfs_status_str(s));
        return 0;
    }
    if (!px || (c != 1 && c != 3) || h < 1 || w < 1 || h > 16384 || w > 16384)
        fuzz_fail("png_read: OK with %d x %d x %d", c, h, w);
    fuzz_touch(px, (size_t)c * h * w);
    if ((size_t)h * w <= RESIZE_MAX_PIXELS) {
        // output side 1..32 and channels from bytes of the input (its last byte, its length)
        const int side = 1 + data[size - 1] % 32, oc = size & 1 ? 3 : 1;
        uint8_t *out = malloc((size_t)oc * side * side);
        if (!out) fuzz_fail("out of memory");
        if (dfs_image_resize_u8(px, c, h, w, out, oc, side) != DFS_OK) fuzz_fail("image_resize: %s", dfs_last_error());
        fuzz_touch(out, (size_t)oc * side * side);
        free(out);
    }
    free(px);
    return 0;
}
