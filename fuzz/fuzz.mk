# fuzz.mk - libFuzzer harnesses for every file parser (fuzz/README.md). Included by the Makefile.
#
#   make fuzz FUZZ_SECONDS=N   builds each harness with clang, ASan and UBSan in $(FUZZ_BUILD)
#                              and runs it N seconds (default 60); fails on any finding
#   make fuzz FUZZ_ONLY="png idx"   only those harnesses
#   sh fuzz/replay.sh BUILD    replays fuzz/regressions and fuzz/corpus through the gcc builds
#                              $(BUILD)/fuzz/replay_NAME (built with `all`; no clang needed)

FUZZ_NAMES   := safetensors checkpoint classifier npy idx png tokenizer captions csv series mol cml \
                molckpt
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_ONLY    ?= $(FUZZ_NAMES)
FUZZ_CFLAGS  ?= -O1 -g
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# The library without OpenMP: its omp_* calls are all under #ifdef _OPENMP, the parsers run on
# one thread, and clang's libomp next to the libgomp that OpenBLAS brings would be two runtimes.
# Without -Werror: a new clang-only warning in src/ must not stop the fuzzers being built.
FUZZ_LIBWARN := $(filter-out -Werror,$(WARN)) -Wno-unknown-pragmas -Wno-source-uses-openmp \
                -Wno-unused-variable -Wno-unused-function # thread counts unused without OpenMP
FUZZ_COMMON  := fuzz/fuzz_util.c fuzz/fuzz.h
FUZZ_LIB_OBJ := $(LIB_SRC:src/%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_REPLAY  := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)

.PHONY: fuzz-build fuzz-replay

fuzz: setup
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_ONLY="$(FUZZ_ONLY)" sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-build: $(FUZZ_BIN)

$(FUZZ_BUILD)/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIBWARN) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(CPPFLAGS) $(INC_EXTRA) -c $< -o $@

# The compute kernels (AVX-512 intrinsics, unrolled tiles) are not parser code, and clang at -O1
# with ASan and UBSan takes minutes over them (src/kernels/bf16.c 144 s, igemm.c 57 s, against
# about 1 s each at -O0, on a 2-core Zen 4): they are built at -O0, still sanitized.
$(FUZZ_BUILD)/obj/kernels/%.o: FUZZ_CFLAGS = -O0 -g

$(FUZZ_BUILD)/libdiffuse.a: $(FUZZ_LIB_OBJ)
	@rm -f $@ # ar adds to an old archive: members of files since moved or removed would stay
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_COMMON) $(FUZZ_BUILD)/libdiffuse.a
	$(FUZZ_CC) $(WARN) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer $(CPPFLAGS) -o $@ $< fuzz/fuzz_util.c \
	  $(FUZZ_BUILD)/libdiffuse.a $(LDLIBS)

# Replay builds: the same harnesses with the Makefile's compiler and flags and a plain main
# (fuzz/replay_main.c). Part of `all`, so test-asan builds them with its sanitizer flags.
all: $(FUZZ_REPLAY)
fuzz-replay: $(FUZZ_REPLAY)

$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay_main.c $(FUZZ_COMMON) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -o $@ $< fuzz/fuzz_util.c fuzz/replay_main.c \
	  $(LIBS) $(LDLIBS)

# The seed corpus (committed; rerun after a format change): files the library writes, then
# files written byte by byte (fuzz/seeds.py, which also writes the hostile regression inputs).
.PHONY: fuzz-seeds
fuzz-seeds: $(BUILD)/fuzz/seeds
	$(BUILD)/fuzz/seeds fuzz/corpus
	python3 fuzz/seeds.py fuzz

$(BUILD)/fuzz/seeds: fuzz/seeds.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(OMP) $(CPPFLAGS) -o $@ $< $(LIBS) $(LDLIBS)
