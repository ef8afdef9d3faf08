# diffuse - build, test, demo, install. `make demo` and `make test` install the Debian packages
# they need first (scripts/setup.sh); `make install PREFIX=DIR` installs the library, headers,
# pkg-config files, programs and shipped models (default /usr/local; DESTDIR is honoured).
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2 -march=native
CFLAGS  ?= $(OPT) -g
WARN    := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter
# OpenBLAS built for OpenMP (Debian's libopenblas-openmp-dev) shares libgomp's thread pool with
# our own parallel loops; the default pthread build spins its own threads against OpenMP's.
MULTIARCH := $(shell $(CC) -print-multiarch)
BLAS    ?= openblas-openmp
BLASDIR := /usr/lib/$(MULTIARCH)/$(BLAS)
# The library is two archives (docs/ARCHITECTURE.md): the core, from the engine to models and
# checkpoints, needs BLAS, OpenMP, zlib, libpng and cJSON only; the extra part (text and chart
# rendering, caption data sets, sample-quality metrics) adds FreeType, HarfBuzz and LAPACK, and
# libxml2 for the molecules' CML files (src/mol/build.c).
# src/ref (reference loops that tests compare the fast paths to) is linked into tests only.
LAYERS_CORE  := base io kernels engine ops nn diffusion model
LAYERS_EXTRA := render data eval series mol
INC_EXTRA := $(shell pkg-config --cflags freetype2 harfbuzz libxml-2.0 2>/dev/null)
CPPFLAGS := -Iinclude -I/usr/include/$(MULTIARCH)/$(BLAS)
LIBS_BLAS  := -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas
LIBS_CORE  := $(LIBS_BLAS) -lpng -lz -lcjson -lm
LIBS_EXTRA := -llapacke -lharfbuzz -lfreetype -lxml2
LDLIBS  := $(LIBS_EXTRA) $(LIBS_CORE)
OMP     := -fopenmp

# MPI (docs/DISTRIBUTED.md): where mpicc is found, the CLI's cli/mpi.c is compiled with its flags
# and -DDFS_MPI and the program linked with MPI, so that mpirun -np N diffuse train runs
# data-parallel; DFS_MPI=0 builds without it, as on a machine without OpenMPI (the library itself
# never sees MPI). Switching it needs a BUILD of its own, or make clean.
DFS_MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(DFS_MPI),1)
MPI_CFLAGS := -DDFS_MPI $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile))
MPI_LIBS   := $(shell mpicc --showme:link)
endif

CORE_SRC  := $(foreach l,$(LAYERS_CORE),$(wildcard src/$(l)/*.c))
EXTRA_SRC := $(foreach l,$(LAYERS_EXTRA),$(wildcard src/$(l)/*.c))
REF_SRC   := $(wildcard src/ref/*.c)
LIB_SRC   := $(CORE_SRC) $(EXTRA_SRC)
PUB_HDR   := include/diffuse.h $(wildcard include/diffuse/*.h)
LIB_HDR   := $(PUB_HDR) $(wildcard src/*/*.h)
obj = $(1:src/%.c=$(BUILD)/obj/%.o)
LIB_CORE  := $(BUILD)/libdiffuse.a
LIB_EXTRA := $(BUILD)/libdiffuse-extra.a
LIB_REF   := $(BUILD)/libdiffuse-ref.a
# What a program that uses everything links, in link order.
LIBS      := $(LIB_EXTRA) $(LIB_CORE)
CLI_SRC  := $(wildcard cli/*.c)
CLI_OBJ  := $(CLI_SRC:cli/%.c=$(BUILD)/cli/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Programs for the PyTorch parity tests (tests/parity*.sh), next to their Python halves.
PARITY_SRC := $(wildcard tests/parity/*.c)
PARITY_BIN := $(PARITY_SRC:tests/parity/%.c=$(BUILD)/tests/parity/%)
# Programs a user runs (installed as diffuse-nn-eval, diffuse-t2i-eval).
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)
# The smallest programs that show the API; they see <diffuse.h> only (tests/build/examples.sh runs them).
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

# The sub-makes of test, test-asan, test-cpus, demo and bench build on every core, unless this
# make already runs in parallel (make -jN test), whose job slots they then share.
JOBS = $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(shell nproc))

.PHONY: all setup test test-asan test-cpus demo bench sgemm-peak fma-peak shared install uninstall \
        clean format fuzz

all: $(LIBS) $(LIB_REF) $(BUILD)/diffuse $(TEST_BIN) $(PARITY_BIN) $(TOOL_BIN) $(EXAMPLE_BIN) \
     $(BUILD)/sgemm_peak

setup:
	@sh scripts/setup.sh

# Library objects see the public headers and their own layer's private ones (by relative path).
$(BUILD)/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) $(if $(filter render/% data/% eval/% series/% mol/%,$*),$(INC_EXTRA)) -c $< -o $@

$(LIB_CORE): $(call obj,$(CORE_SRC))
	@rm -f $@
	ar rcs $@ $^

$(LIB_EXTRA): $(call obj,$(EXTRA_SRC))
	@rm -f $@
	ar rcs $@ $^

$(LIB_REF): $(call obj,$(REF_SRC))
	@rm -f $@
	ar rcs $@ $^

# The command line sees the public headers only.
$(BUILD)/cli/%.o: cli/%.c $(PUB_HDR) $(wildcard cli/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) $(if $(filter mpi,$*),$(MPI_CFLAGS)) -c $< -o $@

$(BUILD)/diffuse: $(CLI_OBJ) $(LIBS)
	$(CC) $(CFLAGS) $(OMP) -o $@ $^ $(LDLIBS) $(MPI_LIBS)

# Tests may use the private headers (-Isrc: "engine/tape.h") and the reference loops.
$(BUILD)/tests/%: tests/unit/%.c tests/unit/check.h $(LIB_HDR) $(LIBS) $(LIB_REF)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -Isrc $(INC_EXTRA) -o $@ $< $(LIB_REF) $(LIBS) $(LDLIBS)

$(BUILD)/tests/parity/%: tests/parity/%.c $(PUB_HDR) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

$(BUILD)/tools/%: tools/%.c $(PUB_HDR) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(PUB_HDR) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# The machine's SGEMM peak through the same OpenBLAS, the yardstick of bench/run.sh.
sgemm-peak: $(BUILD)/sgemm_peak
$(BUILD)/sgemm_peak: bench/sgemm_peak.c bench/peak_args.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -o $@ $< $(LIBS_BLAS)

# The CPU's float32 FMA and bfloat16 (vdpbf16ps) instruction peaks, register-only loops
# (bench/fma_peak.c; x86-64 with AVX-512: bench/run.sh runs it only there).
fma-peak: $(BUILD)/fma_peak
$(BUILD)/fma_peak: bench/fma_peak.c bench/peak_args.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) -o $@ $<

# The whole suite: unit tests, PyTorch parity, CLI tests, the examples, an install into a
# temporary prefix (tests/build/install.sh). Prints "N passed, N failed".
test: setup
	@$(MAKE) --no-print-directory $(JOBS) all
	@sh tests/run.sh $(BUILD)

# Same tests under AddressSanitizer and UndefinedBehaviorSanitizer (slow parts skipped).
test-asan: setup
	@$(MAKE) --no-print-directory $(JOBS) all BUILD=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
	@DFS_SANITIZE=1 ASAN_OPTIONS=detect_leaks=1 sh tests/run.sh build-asan

# The kernels and numerics (test programs, PyTorch parity) on the CPU paths that 'make test'
# on this machine does not take: an AVX2-only build (-march=x86-64-v3) run as an AVX2-only CPU
# (DFS_CPU=avx2; OpenBLAS's Haswell kernels), and the BLAS kernels (DFS_KERNELS=blas) on the
# programs that run convolutions (run.sh's "conv" set: the switch changes nothing else).
test-cpus: setup
	@$(MAKE) --no-print-directory $(JOBS) all BUILD=build-v3 OPT="-O2 -march=x86-64-v3"
	@echo "== AVX2-only: build-v3, DFS_CPU=avx2 OPENBLAS_CORETYPE=Haswell"
	@DFS_CPU=avx2 OPENBLAS_CORETYPE=Haswell sh tests/run.sh build-v3 numerics
	@$(MAKE) --no-print-directory $(JOBS) all
	@echo "== BLAS kernels: $(BUILD), DFS_KERNELS=blas"
	@DFS_KERNELS=blas sh tests/run.sh $(BUILD) conv

demo: setup
	@$(MAKE) --no-print-directory $(JOBS) $(BUILD)/diffuse
	@sh scripts/demo.sh $(BUILD)

bench: setup
	@$(MAKE) --no-print-directory $(JOBS) $(BUILD)/diffuse $(BUILD)/sgemm_peak $(BUILD)/fma_peak
	@sh bench/run.sh $(BUILD)

# ---- Shared libraries and installation ---------------------------------------------------------
# The shared libraries are built from position-independent copies of the library objects in
# BUILD/pic (the static archives, the CLI and the tests keep their own objects), each with a
# soname: libdiffuse.so.0 -> libdiffuse.so.0.1.0. The extra library links against the core one.
# Only `make shared` and `make install` build them.
VERSION   := 0.1.0
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
pic = $(1:src/%.c=$(BUILD)/pic/%.o)
SO_CORE   := $(BUILD)/libdiffuse.so.$(VERSION)
SO_EXTRA  := $(BUILD)/libdiffuse-extra.so.$(VERSION)
SO_LDFLAGS = -shared -Wl,-soname,$(notdir $(@:.so.$(VERSION)=.so.$(SOVERSION))) -Wl,--no-undefined \
             -Wl,--as-needed

$(BUILD)/pic/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -fPIC $(OMP) $(CPPFLAGS) $(if $(filter render/% data/% eval/% series/% mol/%,$*),$(INC_EXTRA)) -c $< -o $@

$(SO_CORE): $(call pic,$(CORE_SRC))
	$(CC) $(CFLAGS) $(OMP) $(SO_LDFLAGS) -o $@ $^ $(LIBS_CORE)

$(SO_EXTRA): $(call pic,$(EXTRA_SRC)) $(SO_CORE)
	$(CC) $(CFLAGS) $(OMP) $(SO_LDFLAGS) -o $@ $^ $(LIBS_EXTRA) $(LIBS_CORE)

shared: $(SO_CORE) $(SO_EXTRA)

# Where `make install` puts things (GNU names; DESTDIR is prepended to every path it writes).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR    ?= $(PREFIX)/share/diffuse
PCDIR      ?= $(LIBDIR)/pkgconfig
MODELS     := $(wildcard models/*.safetensors)
# tools/nn_eval.c is installed as diffuse-nn-eval, and so on
tool_name   = diffuse-$(subst _,-,$(notdir $(1)))
INSTALL_BIN := diffuse $(foreach t,$(TOOL_BIN),$(call tool_name,$(t)))
INSTALL_HDR := diffuse.h $(patsubst include/%,%,$(wildcard include/diffuse/*.h))
INSTALL_LIB := libdiffuse.a libdiffuse-extra.a \
               $(foreach l,libdiffuse libdiffuse-extra,$(l).so.$(VERSION) $(l).so.$(SOVERSION) $(l).so)

# pkg-config files. Libs.private is what a static link adds: the libraries this Makefile links
# the programs with (LIBS_CORE, LIBS_EXTRA), as -l flags rather than Requires.private, because
# pkgconf puts a private requirement's Cflags into everyone's --cflags (glib's, through
# HarfBuzz) and the public headers include no header of theirs; and OpenBLAS by its folder
# (BLASDIR, with an rpath), because Debian's openblas.pc is whichever variant the alternatives
# system picked, and diffuse wants the OpenMP one. A shared link needs none of it: the .so files
# carry their own NEEDED entries and OpenBLAS's runpath.
define DIFFUSE_PC
prefix=$(PREFIX)
libdir=$(LIBDIR)
includedir=$(INCLUDEDIR)

Name: diffuse
Description: Denoising diffusion models in C: engine, U-Net, samplers, training, checkpoints
Version: $(VERSION)
Cflags: -I$${includedir}
Libs: -L$${libdir} -ldiffuse
Libs.private: $(LIBS_CORE) $(OMP)
endef
define DIFFUSE_EXTRA_PC
prefix=$(PREFIX)
libdir=$(LIBDIR)
includedir=$(INCLUDEDIR)

Name: diffuse-extra
Description: diffuse's text and chart rendering, captioned data sets and sample-quality metrics
Version: $(VERSION)
Requires: diffuse = $(VERSION)
Cflags: -I$${includedir}
Libs: -L$${libdir} -ldiffuse-extra
Libs.private: $(LIBS_EXTRA)
endef
export DIFFUSE_PC DIFFUSE_EXTRA_PC

install: $(LIBS) $(SO_CORE) $(SO_EXTRA) $(BUILD)/diffuse $(TOOL_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR) \
	  $(DESTDIR)$(INCLUDEDIR)/diffuse $(DESTDIR)$(DATADIR)/models
	install -m 644 include/diffuse.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(wildcard include/diffuse/*.h) $(DESTDIR)$(INCLUDEDIR)/diffuse/
	install -m 644 $(LIBS) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SO_CORE) $(SO_EXTRA) $(DESTDIR)$(LIBDIR)/
	for l in libdiffuse libdiffuse-extra; do \
	  ln -sf $$l.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$$l.so.$(SOVERSION) && \
	  ln -sf $$l.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/$$l.so || exit 1; \
	done
	printf '%s\n' "$$DIFFUSE_PC" >$(DESTDIR)$(PCDIR)/diffuse.pc
	printf '%s\n' "$$DIFFUSE_EXTRA_PC" >$(DESTDIR)$(PCDIR)/diffuse-extra.pc
	install -m 755 $(BUILD)/diffuse $(DESTDIR)$(BINDIR)/
	$(foreach t,$(TOOL_BIN),install -m 755 $(t) $(DESTDIR)$(BINDIR)/$(call tool_name,$(t)) &&) true
	install -m 644 $(MODELS) $(DESTDIR)$(DATADIR)/models/

# Removes exactly what install put there, then the folders of diffuse's own that are left empty.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(INSTALL_BIN)) \
	  $(addprefix $(DESTDIR)$(LIBDIR)/,$(INSTALL_LIB)) \
	  $(DESTDIR)$(PCDIR)/diffuse.pc $(DESTDIR)$(PCDIR)/diffuse-extra.pc \
	  $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(INSTALL_HDR)) \
	  $(addprefix $(DESTDIR)$(DATADIR)/models/,$(notdir $(MODELS)))
	rmdir $(DESTDIR)$(INCLUDEDIR)/diffuse $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DATADIR) 2>/dev/null || true

include fuzz/fuzz.mk

format:
	clang-format -i include/*.h include/diffuse/*.h src/*/*.c src/*/*.h cli/*.c tests/unit/*.c tests/unit/*.h \
	  tests/parity/*.c tools/*.c examples/*.c

# every build folder: build/, build-asan/ and the build-*/ that BUILD=... made (all gitignored)
clean:
	rm -rf build build-*/
