/*
 * diffuse.h - denoising diffusion models in C: everything, one header per layer.
 *
 * diffuse trains denoising diffusion models (Ho et al. 2020) and samples from them. The
 * library is built in layers; each layer uses only the ones above it in this list, and a test
 * (tests/build/layers.sh) checks that of every include and every call. docs/ARCHITECTURE.md has the
 * picture and the path of one training step through the files.
 *
 *   libdiffuse (BLAS, OpenMP, zlib, libpng, cJSON)
 *     base       status codes, errors, logging, assertions, threads, random numbers  src/base
 *     io         atomic writes, IDX, PNG, .npy, safetensors; image data sets        src/io
 *     kernels    compute kernels (AVX-512 implicit GEMM), and the choice of them   src/kernels
 *     ref        plain reference loops that tests compare the fast paths to         src/ref
 *                (linked into the tests only, not into libdiffuse)
 *     engine     tensors, arena, tape, reverse-mode gradients                       src/engine
 *     ops        differentiable ops on the tape                                     src/ops
 *     nn         parameters, AdamW/EMA, U-Net, text encoder, tokenizer, classifier  src/nn
 *     diffusion  schedules, parameterisations, samplers, guidance, known entries,   src/diffusion
 *                the variational bound: on any tensor, through a dfs_model_fn
 *     model      a network with its diffusion settings: sampling, checkpoints,       src/model
 *                training
 *   libdiffuse-extra (FreeType, HarfBuzz, LAPACK)
 *     render     text and line charts in PNGs                                       src/render
 *     data       captioned image sets for text-to-image models                      src/data
 *     eval       feature statistics, Frechet distance, nearest neighbours, CRPS      src/eval
 *     series     time series: windows, CSDI models, forecasts, imputation, baselines src/series
 *     mol        molecules: XYZ and SDF files, EDM's bond and stability rules,     src/mol
 *                canonical forms for uniqueness and novelty
 *
 * kernels has no public header beyond the kernel choice (diffuse/kernels.h); ref has none.
 * examples/ has programs that use this header, built and run by make test.
 *
 * Conventions
 * - Every public name starts with dfs_ / DFS_.
 * - Shapes are row-major; images are NCHW (N = batch, C = channels, H = height, W = width).
 * - Programmer errors (wrong shapes passed to an op; also malloc failing in dfs_params_add)
 *   stop the program at DFS_ASSERT, which prints the file and line on stderr and calls
 *   abort(). The one other place the library ends the process: memory for activations running
 *   out in a graph with no recovery point (dfs_graph_alloc, diffuse/engine.h) prints one line
 *   on stderr and calls exit(2); the library's own functions that run graphs set one and
 *   return DFS_ERR_NOMEM. Other errors a caller can handle (files, arguments, data, memory)
 *   return a dfs_status, and dfs_last_error() holds a one-line description.
 * - The library prints only through the log callback (dfs_set_log), except those two lines on
 *   stderr.
 * - Randomness comes only from an explicit dfs_rng.
 */
#ifndef DIFFUSE_H
#define DIFFUSE_H

#include "diffuse/base.h"
#include "diffuse/io.h"
#include "diffuse/kernels.h"
#include "diffuse/engine.h"
#include "diffuse/ops.h"
#include "diffuse/nn.h"
#include "diffuse/diffusion.h"
#include "diffuse/model.h"
#include "diffuse/render.h"
#include "diffuse/data.h"
#include "diffuse/eval.h"
#include "diffuse/series.h"
#include "diffuse/mol.h"

#endif /* DIFFUSE_H */
