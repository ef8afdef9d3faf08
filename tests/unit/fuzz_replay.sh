#!/bin/sh
# fuzz_replay: every file that ever failed a fuzzer (fuzz/regressions/) and the seed corpora
# (fuzz/corpus/), replayed through the harnesses built with this build's compiler and flags.
exec sh "$(dirname "$0")/../../fuzz/replay.sh" "${1:-build}"
