# diffuse - build, test, demo. `make demo` and `make test` install what they need first.
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
CPPFLAGS := -Iinclude -Isrc -I/usr/include/$(MULTIARCH)/$(BLAS) $(shell pkg-config --cflags freetype2 harfbuzz 2>/dev/null)
LDLIBS  := -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas -llapacke -lharfbuzz -lfreetype -lpng -lz -lcjson -lm
OMP     := -fopenmp

LIB_SRC  := $(wildcard src/*.c)
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
CLI_SRC  := $(wildcard cli/*.c)
CLI_OBJ  := $(CLI_SRC:cli/%.c=$(BUILD)/cli/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

.PHONY: all setup test test-asan test-cpus demo bench clean format fuzz

all: $(BUILD)/libdiffuse.a $(BUILD)/diffuse $(TEST_BIN) $(TOOL_BIN)

setup:
	@sh tools/setup.sh

$(BUILD)/obj/%.o: src/%.c include/diffuse.h $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -c $< -o $@

$(BUILD)/libdiffuse.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/cli/%.o: cli/%.c include/diffuse.h $(wildcard cli/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -c $< -o $@

$(BUILD)/diffuse: $(CLI_OBJ) $(BUILD)/libdiffuse.a
	$(CC) $(CFLAGS) $(OMP) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/check.h $(BUILD)/libdiffuse.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -o $@ $< $(BUILD)/libdiffuse.a $(LDLIBS)

$(BUILD)/tools/%: tools/%.c $(BUILD)/libdiffuse.a
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -o $@ $< $(BUILD)/libdiffuse.a $(LDLIBS)

# The whole suite: unit tests, PyTorch parity, CLI tests. Prints "N passed, N failed".
test: setup
	@$(MAKE) --no-print-directory all
	@sh tests/run.sh $(BUILD)

# Same tests under AddressSanitizer and UndefinedBehaviorSanitizer (slow parts skipped).
test-asan: setup
	@$(MAKE) --no-print-directory all BUILD=build-asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
	@DFS_SANITIZE=1 ASAN_OPTIONS=detect_leaks=1 sh tests/run.sh build-asan

# The kernels and numerics (test programs, PyTorch parity) on the CPU paths that 'make test'
# on this machine does not take: an AVX2-only build (-march=x86-64-v3) run as an AVX2-only CPU
# (DFS_CPU=avx2; OpenBLAS's Haswell kernels), and the BLAS kernels (DFS_KERNELS=blas).
test-cpus: setup
	@$(MAKE) --no-print-directory all BUILD=build-v3 OPT="-O2 -march=x86-64-v3"
	@echo "== AVX2-only: build-v3, DFS_CPU=avx2 OPENBLAS_CORETYPE=Haswell"
	@DFS_CPU=avx2 OPENBLAS_CORETYPE=Haswell sh tests/run.sh build-v3 numerics
	@$(MAKE) --no-print-directory all
	@echo "== BLAS kernels: $(BUILD), DFS_KERNELS=blas"
	@DFS_KERNELS=blas sh tests/run.sh $(BUILD) numerics

demo: setup
	@$(MAKE) --no-print-directory $(BUILD)/diffuse
	@sh tools/demo.sh $(BUILD)

bench: setup
	@$(MAKE) --no-print-directory $(BUILD)/diffuse
	@sh bench/run.sh $(BUILD)

include fuzz/fuzz.mk

format:
	clang-format -i include/*.h src/*.c src/*.h cli/*.c tests/*.c tests/*.h

# every build folder: build/, build-asan/ and the build-*/ that BUILD=... made (all gitignored)
clean:
	rm -rf build build-*/
