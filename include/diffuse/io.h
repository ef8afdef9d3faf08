/* diffuse/io.h - files: atomic writes, IDX, PNG, .npy, safetensors, CSV series; image sets.
 * Part of diffuse.h. */
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
/* Images first..first+count-1 of d as floats p / 127.5 - 1 (the training range) into out
 * (count, c, h, w). DFS_ERR_ARG if the range is outside d. */
dfs_status dfs_dataset_images_f32(const dfs_dataset *d, int first, int count, float *out);
/* Resize one image (sc, sh, sw) 8-bit to (oc, size, size) exactly as dfs_load_png_dir does:
 * area averaging when shrinking, half-pixel bilinear when growing, gray -> RGB by copying,
 * RGB -> gray by BT.601 luma. sc, oc in {1, 3}; size <= 4096. */
dfs_status dfs_image_resize_u8(const uint8_t *src, int sc, int sh, int sw, uint8_t *dst, int oc,
                               int size);
/* IDX files (MNIST format), gzip or raw, read with zlib. labels_path may be NULL; with labels,
 * num_classes is the largest label + 1. */
dfs_status dfs_load_idx(dfs_dataset *d, const char *images_path, const char *labels_path);
/* Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, or the folder that
 * DFS_FASHION_MNIST_DIR names): train (60000) or test (10000), with the 10 class names. */
dfs_status dfs_load_fashion_mnist(dfs_dataset *d, int train);
/* A folder of PNGs; sub-folders are classes (sorted by name; loose PNGs beside them are
 * ignored). All images are resized (area averaging when shrinking, bilinear when growing) to
 * size x size, size 1..4096, and converted to `channels` (1 or 3). */
dfs_status dfs_load_png_dir(dfs_dataset *d, const char *dir, int size, int channels);
/* Read one PNG into 8-bit pixels (c, h, w) with c = 1 or 3 (alpha composited on white);
 * *pixels is malloc'ed, the caller frees it. DFS_ERR_SHAPE past 4096 x 4096 pixels. */
dfs_status dfs_png_read(const char *path, uint8_t **pixels, int *c, int *h, int *w);
/* Write an 8-bit PNG atomically (c = 1 or 3, pixels HWC interleaved, h and w <= 65536). */
dfs_status dfs_png_write(const char *path, const uint8_t *pixels, int c, int h, int w);
/* Tile n images (c,h,w in [-1,1], NCHW floats) into a grid with min(cols, n) columns and a
 * 2-pixel mid-gray border, then write it as PNG. */
dfs_status dfs_png_write_grid(const char *path, const float *images, int n, int c, int h,
                              int w, int cols);
/* Whether that grid fits a PNG (65536 pixels a side): DFS_OK, or DFS_ERR_ARG with its size in
 * the error. For a caller to check before making the images. */
dfs_status dfs_png_grid_fits(int n, int h, int w, int cols);

/* Write a uint8 .npy array atomically. */
dfs_status dfs_npy_write_u8(const char *path, const uint8_t *data, int ndim, const size_t *shape);
dfs_status dfs_npy_write_i32(const char *path, const int32_t *data, int ndim,
                             const size_t *shape);
/* Read a uint8 .npy array (version 1.0 or 2.0, C order, at most DFS_MAXDIM dimensions: shape
 * needs room for DFS_MAXDIM entries); *data malloc'ed, the caller frees it. */
dfs_status dfs_npy_read_u8(const char *path, uint8_t **data, int *ndim, size_t *shape);
/* The same for a little-endian int32 ('<i4') array, e.g. the labels diffuse sample writes. */
dfs_status dfs_npy_read_i32(const char *path, int32_t **data, int *ndim, size_t *shape);
/* float32 ('<f4') and float64 ('<f8') arrays: series windows, samples, timestamps. */
dfs_status dfs_npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape);
dfs_status dfs_npy_write_f64(const char *path, const double *data, int ndim, const size_t *shape);
dfs_status dfs_npy_read_f32(const char *path, float **data, int *ndim, size_t *shape);
dfs_status dfs_npy_read_f64(const char *path, double **data, int *ndim, size_t *shape);

/* Write `size` bytes to path atomically: path.tmp.PID, fsync, rename, fsync the directory.
 * DFS_ERR_IO if path exists and is not a regular file. */
dfs_status dfs_write_atomic(const char *path, const void *data, size_t size);
/* Open an existing regular file for reading ("rb") into *f. A FIFO, device or folder is refused
 * with "PATH: not a regular file" instead of being opened (opening a FIFO would wait for a
 * writer forever). DFS_ERR_IO with the error set on failure. */
dfs_status dfs_open_read(const char *path, FILE **f);
/* The whole file at path in a malloc'ed, NUL-terminated buffer (*size bytes before the NUL).
 * A file over max bytes is refused with DFS_ERR_FORMAT, naming what it was to be read as
 * (e.g. "a CSV series"); DFS_ERR_IO (cannot open, seek or read it whole) and DFS_ERR_NOMEM
 * otherwise, with the message set and *buf NULL. */
dfs_status dfs_read_file(const char *path, int64_t max, const char *what, char **buf, size_t *size);
/* The same as a file descriptor (for gzdopen and the like): >= 0, or -1 with the error set. */
int dfs_open_read_fd(const char *path);


/* ------------------------------------------------------------------------------------------ */
/* Time series from CSV                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* A regular time series: step k is at times[k] = times[0] + k * step. Missing entries (an empty
 * field, or a step with no row at all) are NaN in values and 0 in observed. */
typedef struct dfs_series {
    int n_steps, n_features;
    float *values;     /* (n_steps, n_features), NaN where missing */
    uint8_t *observed; /* (n_steps, n_features), 1 observed, 0 missing */
    int64_t *times;    /* n_steps, seconds since 1970-01-01 00:00:00 UTC */
    int64_t step;      /* seconds between steps; 0 when the file has a single row */
    char **names;      /* n_features column names, in the order of values' columns */
} dfs_series;

typedef struct dfs_csv_options {
    /* The timestamp column's name; NULL: the first column whose field in the first data row
     * is a date or date-time. */
    const char *time_column;
    /* The value columns by name, in the order wanted (n_columns of them); NULL: every column
     * but the timestamp column, in file order (each must then be numeric). */
    const char *const *columns;
    int n_columns;
    /* The step in seconds; 0: the smallest difference between consecutive timestamps. */
    int64_t step;
} dfs_csv_options;

/* Largest CSV file, line, and output (n_steps * n_features) that dfs_csv_load_series accepts. */
#define DFS_CSV_MAX_BYTES ((int64_t)1 << 28)
#define DFS_CSV_MAX_LINE 65536
#define DFS_CSV_MAX_CELLS ((int64_t)1 << 26)

/* Read a comma-separated file with a header row into a regular series (opt may be NULL for the
 * defaults above). Timestamps are ISO dates "2012-01-01" or date-times "2010-01-01 00:00:00"
 * (or with 'T', seconds optional, an optional 'Z'), years 0000-9999, all read as UTC: no time
 * zones, so a daylight-saving jump is simply a gap. The date may also be written 2012/01/01 (as
 * Debian's vega-datasets copies are) or 20120101. Rows must be strictly increasing in time,
 * each difference a whole multiple of the step; the missing steps become rows of NaN with
 * observed 0. Numbers are decimal ([+-]digits[.digits][e[+-]digits]; no nan, inf or hex);
 * an empty field is missing. Lines end in LF or CRLF; a UTF-8 byte order mark is skipped.
 * Quoted fields (RFC 4180) are not supported: a '"' is an error. Errors (DFS_ERR_FORMAT, with
 * "PATH: line N: why" in dfs_last_error) for a ragged row, a bad number or timestamp, a
 * duplicate or backward timestamp, an unknown column, a step that is not a multiple, a NUL
 * byte, or a line, file or output over the limits. On error *s is zeroed; on success the
 * caller frees it with dfs_series_free. */
dfs_status dfs_csv_load_series(dfs_series *s, const char *path, const dfs_csv_options *opt);
void dfs_series_free(dfs_series *s);
/* Seconds since the Unix epoch (UTC) of an ISO date or date-time as above, the whole of
 * text[0..len); DFS_ERR_FORMAT (no error message set) if it is not one. */
dfs_status dfs_csv_parse_time(const char *text, size_t len, int64_t *seconds);

/* ------------------------------------------------------------------------------------------ */
/* safetensors                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef enum { DFS_DT_F32, DFS_DT_F16, DFS_DT_I64, DFS_DT_U8, DFS_DT_COUNT } dfs_dtype;

typedef struct {
    char *name;
    dfs_dtype dtype;
    int ndim;
    int64_t shape[DFS_MAXDIM];
    const void *data;   /* points into buf; may be unaligned (read it with memcpy) */
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

/* Read a whole file and parse it, checking the header length (at most 100 MB), JSON, dtypes,
 * shapes and byte ranges (they must tile the data). On error *st is zeroed. */
dfs_status dfs_st_load(dfs_safetensors *st, const char *path);
void dfs_st_free(dfs_safetensors *st);
/* A tensor or a metadata value by name; NULL if absent. Valid until dfs_st_free. */
const dfs_st_tensor *dfs_st_find(const dfs_safetensors *st, const char *name);
const char *dfs_st_meta(const dfs_safetensors *st, const char *key);

/* Builder for writing: add tensors (names copied; data referenced, not copied, until write)
 * and metadata (copied; a repeated key replaces the value), then write atomically. */
typedef struct dfs_st_writer dfs_st_writer;
dfs_st_writer *dfs_st_writer_new(void);
void dfs_st_writer_free(dfs_st_writer *w);
dfs_status dfs_st_writer_add(dfs_st_writer *w, const char *name, dfs_dtype dt, int ndim,
                             const int64_t *shape, const void *data);
dfs_status dfs_st_writer_meta(dfs_st_writer *w, const char *key, const char *val);
dfs_status dfs_st_writer_write(dfs_st_writer *w, const char *path);

/* float16 conversions (to f16: round to nearest even; to f32: exact). */
uint16_t dfs_f32_to_f16(float f);
float dfs_f16_to_f32(uint16_t h);


#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_IO_H */
