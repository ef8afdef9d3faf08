/*
 * diffuse.h - denoising diffusion models in C: everything, one header per layer.
 *
 * diffuse trains denoising diffusion models (Ho et al. 2020) and samples from them. The
 * library is built in layers; each layer uses only the ones above it in this list, and a test
 * (tests/layers.sh) checks that of every include and every call. docs/ARCHITECTURE.md has the
 * picture and the path of one training step through the files.
 *
 *   libdiffuse (BLAS, OpenMP, zlib, libpng, cJSON)
 *     base       status codes, errors, logging, assertions, threads, random numbers  src/base
 *     io         atomic writes, IDX, PNG, .npy, safetensors; image data sets        src/io
 *     kernels    compute kernels (AVX-512 implicit GEMM), and the choice of them   src/kernels
 *     ref        plain reference loops that tests compare the fast paths to         src/ref
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
 *     eval       feature statistics, Frechet distance, nearest neighbours            src/eval
 *
 * kernels and ref have no public header beyond the kernel choice (diffuse/kernels.h).
 * examples/ has programs that use this header, built and run by make test.
 *
 * Conventions
 * - Every public name starts with dfs_ / DFS_.
 * - Shapes are row-major; images are NCHW (N = batch, C = channels, H = height, W = width).
 * - Programmer errors (wrong shapes passed to an op) stop the program at DFS_ASSERT, which
 *   names the file and line (the one place the library ends the process). Errors a caller can
 *   handle (files, arguments, data, memory for activations) return a dfs_status, and
 *   dfs_last_error() holds a one-line description.
 * - The library prints only through the log callback (dfs_set_log), except DFS_ASSERT's
 *   message on stderr.
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

#endif /* DIFFUSE_H */
