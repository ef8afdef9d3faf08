#!/bin/sh
# bench/winograd.sh [BUILD] [B] [R] [THREADS] - direct kernel against Winograd F(2x2,3x3) and
# F(4x4,3x3) (AVX-512 only) on each stride-1 3x3 convolution shape of the reference U-Net
# (bench/winograd.c), in one run,
# with the CPU model. Needs `make all` in BUILD first. A loaded machine gives noisy figures:
# read the ratios, not the milliseconds, and rerun on an idle machine before deciding.
set -eu
BUILD=${1:-build}
HERE=$(dirname "$0")
[ -f "$BUILD/libdiffuse.a" ] || { echo "bench/winograd.sh: $BUILD/libdiffuse.a not found; run make all" >&2; exit 1; }
ARCH=$(cc -print-multiarch)
BLASDIR=/usr/lib/$ARCH/openblas-openmp
mkdir -p "$BUILD/bench"
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -march=native -fopenmp -Iinclude -Isrc \
   -I/usr/include/$ARCH/openblas-openmp -o "$BUILD/bench/winograd" "$HERE/winograd.c" \
   "$BUILD/libdiffuse.a" -L"$BLASDIR" -Wl,-rpath,"$BLASDIR" -lopenblas -lpng -lz -lcjson -lm
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) logical CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/winograd" "${2:-64}" "${3:-5}" "${4:-2}"
