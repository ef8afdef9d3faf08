#!/bin/sh
# Runs the test program BUILD/tests/test_X of every tests/unit/test_X.c and every script of
# tests/{unit,parity,cli,build}/*.sh (unit: the library's C tests; parity: against PyTorch; cli:
# the diffuse program; build: the layers, the examples, an install),
# several at a time (DFS_TEST_JOBS, see below), adds up their "N passed, N failed" lines and
# prints the total. Exits non-zero if anything
# failed: a failed check, a missing test program, a program or script that printed no summary
# line, exited non-zero, or (outside the sanitizer run) ran no checks at all.
#
# DFS_SANITIZE=1 (set by 'make test-asan' only) leaves out the PyTorch parity and the slow
# checks. It counts only when BUILD is a sanitizer build, so a stray DFS_SANITIZE in the
# environment cannot make 'make test' skip them and pass; what a sanitizer run skips is listed
# before the total.
# A second argument 'numerics' runs only the test programs and the PyTorch parity scripts (the
# kernels and the numerics), which 'make test-cpus' repeats on the other CPU paths; 'conv' only
# those of them that run the convolution kernels (a program that links dfs_conv2d, a parity
# script that runs one), for the BLAS-kernels pass: DFS_KERNELS changes nothing else.
BUILD=${1:-build}
SET=${2:-all}
case $SET in all|numerics|conv) ;; *) echo "run.sh: unknown set '$SET' (all, numerics or conv)"; exit 2 ;; esac
# whether program $1 holds the convolution (nm lists what the static link pulled in)
has_conv() { nm "$1" 2>/dev/null | grep -q ' T dfs_conv2d$'; }
export DFS_TEST_SET=$SET # test_train leaves its learning checks (minutes, not numerics) to 'all' 
pass=0; fail=0; broken=""
log=$(mktemp) || exit 1
skips=$(mktemp) || exit 1
trap 'rm -f "$log" "$skips"' EXIT
trap 'exit 130' INT TERM
# a sanitizer build calls into libasan or libubsan (tests/lib.sh makes the same test)
if [ -n "${DFS_SANITIZE+set}" ]; then
    if grep -aqs -e __asan_init -e __ubsan_handle "$BUILD/diffuse"; then
        export DFS_SANITIZE=1
        echo "run.sh: sanitizer run: PyTorch parity and slow checks are skipped (listed at the end)"
    else
        echo "run.sh: DFS_SANITIZE='$DFS_SANITIZE' ignored: $BUILD/diffuse is not built with a sanitizer"
        unset DFS_SANITIZE
    fi
fi
failed() { fail=$((fail + 1)); broken="$broken $1"; }
# The jobs (name, kind, path) go to a list, and run DFS_TEST_JOBS at a time (default: the
# number of CPUs, at most 4; most tests use one core most of the time). The slow ones start
# first, so that the short ones fill in around them; the SOLO ones (timed signals to several
# MPI ranks) run alone after the rest. Each job's output is printed whole when it ends.
SLOW="cli.sh test_train cli_text.sh cli_model.sh cli_masks.sh cli_commands.sh test_winograd parity.sh cli_series.sh install.sh test_classifier test_masks test_text_unet"
SOLO="cli_mpi.sh"
jobs=$(mktemp -d) || exit 1
trap 'rm -f "$log" "$skips"; rm -rf "$jobs"' EXIT
: >"$jobs/list"
# one program per tests/unit/test_*.c; a missing one is a failure, not a program less to run
for src in tests/unit/test_*.c; do
    name=$(basename "$src" .c)
    if [ ! -x "$BUILD/tests/$name" ]; then
        echo "$name: $BUILD/tests/$name is missing (make BUILD=$BUILD all builds it)"
        failed "$name"
        continue
    fi
    if [ "$SET" = conv ] && ! has_conv "$BUILD/tests/$name"; then continue; fi
    echo "$name prog $BUILD/tests/$name" >>"$jobs/list"
done
for s in tests/unit/*.sh tests/parity/*.sh tests/cli/*.sh tests/build/*.sh; do
    case $SET:$s in numerics:tests/parity/*|conv:tests/parity/*) ;; numerics:*|conv:*) continue ;; esac
    if [ "$SET" = conv ]; then
        progs=$(grep -o 'BUILD/tests/[a-z_/]*' "$s" | sed "s|^BUILD|$BUILD|" | sort -u)
        any=0
        for p in $progs; do has_conv "$p" && any=1; done
        [ $any = 1 ] || continue
    fi
    if [ ! -f "$s" ]; then echo "run.sh: no test scripts in $(pwd)/tests"; failed run.sh; continue; fi
    echo "$(basename "$s") script $s" >>"$jobs/list"
done
n=${DFS_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $n in ''|*[!0-9]*|0) echo "run.sh: DFS_TEST_JOBS='$n' is not a count of jobs"; exit 2 ;; esac
[ -n "${DFS_TEST_JOBS:-}" ] || [ "$n" -le 4 ] || n=4
: >"$jobs/first"; : >"$jobs/rest"; : >"$jobs/solo"
for w in $SLOW; do grep "^$w " "$jobs/list" >>"$jobs/first"; done
while read -r name kind path; do
    case " $SLOW " in *" $name "*) continue ;; esac
    case " $SOLO " in *" $name "*) echo "$name $kind $path" >>"$jobs/solo"; continue ;; esac
    echo "$name $kind $path" >>"$jobs/rest"
done <"$jobs/list"
# jobs side by side share the cores: OpenMP threads that wait sleep rather than spin (spinning
# took a quarter more time than running the jobs one after another, on 2 cores)
[ "$n" -eq 1 ] || export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
echo "run.sh: $(wc -l <"$jobs/list") programs and scripts, $n at a time"
cat "$jobs/first" "$jobs/rest" | xargs -P "$n" -n 3 sh tests/run_job.sh "$jobs" "$BUILD"
xargs -n 3 sh tests/run_job.sh "$jobs" "$BUILD" <"$jobs/solo"
# the counts of each job, in the list's order
count() {
    name=$1
    cp "$jobs/$name.log" "$log" 2>/dev/null || echo "$name: did not run" >"$log"
    rc=$(cat "$jobs/$name.rc" 2>/dev/null || echo 1)
    line=$(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
    [ -n "$p" ] || { p=0; f=1; echo "$name: printed no summary line"; }
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$name: exited $rc"; fi
    # what a sanitizer run leaves out is listed at the end; elsewhere no checks is a failure
    grep "skipped under" "$log" | sed "s|^|  |" >>"$skips"
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        if [ -z "${DFS_SANITIZE+set}" ]; then f=1; echo "$name: ran no checks"
        elif ! grep -q "skipped under" "$log"; then echo "  $name: ran no checks" >>"$skips"; fi
    fi
    pass=$((pass + p)); fail=$((fail + f))
    [ "$f" -eq 0 ] || broken="$broken $name"
}
while read -r name kind path; do count "$name"; done <"$jobs/list"
if [ -s "$skips" ]; then
    echo "skipped ($(wc -l <"$skips")):"
    cat "$skips"
fi
[ -z "$broken" ] || echo "failing:$broken"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
