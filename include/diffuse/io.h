/* diffuse/io.h - files: atomic writes, IDX, PNG, .npy, safetensors; image data sets. Part of diffuse.h. */
#ifndef DIFFUSE_IO_H
#define DIFFUSE_IO_H

#include "diffuse/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Data sets and files                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct dfs_dataset {
    int n, c, h, w;
    uint8_t *pixels;  /* n * c * h * w, NCHW, 0..255 */
    int *labels;      /* n labels or NULL */
    int num_classes;  /* 0 if unlabelled */
    char **class_names; /* num_classes names or NULL */
} dfs_dataset;

void dfs_dataset_free(dfs_dataset *d);
/* IDX files (MNIST format), gzip or raw, read with zlib. labels_path may be NULL. */
dfs_status dfs_load_idx(dfs_dataset *d, const char *images_path, const char *labels_path);
/* Debian's dataset-fashion-mnist: train (60000) or test (10000). */
dfs_status dfs_load_fashion_mnist(dfs_dataset *d, int train);
/* A folder of PNGs; sub-folders are classes (sorted by name). All images are resized with
 * box/bilinear filtering to size x size and converted to `channels` (1 or 3). */
dfs_status dfs_load_png_dir(dfs_dataset *d, const char *dir, int size, int channels);
/* Read one PNG into 8-bit pixels (c, h, w) with c = 1 or 3 (alpha composited on white). */
dfs_status dfs_png_read(const char *path, uint8_t **pixels, int *c, int *h, int *w);
/* Write an 8-bit PNG atomically (c = 1 or 3, pixels HWC interleaved). */
dfs_status dfs_png_write(const char *path, const uint8_t *pixels, int c, int h, int w);
/* Tile n images (c,h,w in [-1,1], NCHW floats) into a grid with `cols` columns and a 2-pixel
 * border, then write it as PNG. */
dfs_status dfs_png_write_grid(const char *path, const float *images, int n, int c, int h,
                              int w, int cols);
/* Whether that grid fits a PNG (65536 pixels a side): DFS_OK, or DFS_ERR_ARG with its size in
 * the error. For a caller to check before making the images. */
dfs_status dfs_png_grid_fits(int n, int h, int w, int cols);

/* Write a uint8 .npy array atomically. */
dfs_status dfs_npy_write_u8(const char *path, const uint8_t *data, int ndim, const size_t *shape);
dfs_status dfs_npy_write_i32(const char *path, const int32_t *data, int ndim,
                             const size_t *shape);
/* Read a uint8 .npy array (any shape, C order); *data malloc'ed. */
dfs_status dfs_npy_read_u8(const char *path, uint8_t **data, int *ndim, size_t *shape);
/* Read a little-endian int32 ('<i4') .npy array, e.g. the labels diffuse sample writes. */
dfs_status dfs_npy_read_i32(const char *path, int32_t **data, int *ndim, size_t *shape);

/* Write `size` bytes to path atomically: path.tmp, fsync, rename, fsync the directory. */
dfs_status dfs_write_atomic(const char *path, const void *data, size_t size);
/* Open an existing regular file for reading ("rb") into *f. A FIFO, device or folder is refused
 * with "PATH: not a regular file" instead of being opened (opening a FIFO would wait for a
 * writer forever). DFS_ERR_IO with the error set on failure. */
dfs_status dfs_open_read(const char *path, FILE **f);
/* The same as a file descriptor (for gzdopen and the like): >= 0, or -1 with the error set. */
int dfs_open_read_fd(const char *path);


/* ------------------------------------------------------------------------------------------ */
/* safetensors                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef enum { DFS_DT_F32, DFS_DT_F16, DFS_DT_I64, DFS_DT_U8, DFS_DT_COUNT } dfs_dtype;

typedef struct {
    char *name;
    dfs_dtype dtype;
    int ndim;
    int64_t shape[DFS_MAXDIM];
    const void *data;   /* points into the loaded file buffer */
    size_t nbytes;
} dfs_st_tensor;

typedef struct {
    int count;
    dfs_st_tensor *t;
    int nmeta;
    char **meta_keys, **meta_vals;  /* __metadata__ string map */
    void *buf;          /* whole file */
    size_t size;
} dfs_safetensors;

/* Parse a file, checking the header length, JSON, dtypes, shapes and byte ranges. */
dfs_status dfs_st_load(dfs_safetensors *st, const char *path);
void dfs_st_free(dfs_safetensors *st);
const dfs_st_tensor *dfs_st_find(const dfs_safetensors *st, const char *name);
const char *dfs_st_meta(const dfs_safetensors *st, const char *key);

/* Builder for writing: add tensors (data is referenced, not copied, until write) and
 * metadata, then write atomically. */
typedef struct dfs_st_writer dfs_st_writer;
dfs_st_writer *dfs_st_writer_new(void);
void dfs_st_writer_free(dfs_st_writer *w);
dfs_status dfs_st_writer_add(dfs_st_writer *w, const char *name, dfs_dtype dt, int ndim,
                             const int64_t *shape, const void *data);
dfs_status dfs_st_writer_meta(dfs_st_writer *w, const char *key, const char *val);
dfs_status dfs_st_writer_write(dfs_st_writer *w, const char *path);

/* float16 conversions (round to nearest even). */
uint16_t dfs_f32_to_f16(float f);
float dfs_f16_to_f32(uint16_t h);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_IO_H */
