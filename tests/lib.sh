# lib.sh - what the shell tests share; not a test itself (tests/run.sh skips it). A script sets
# NAME (its summary-line name) and BUILD, then sources this file:
#     NAME=cli_data; BUILD=${1:-build}; . "$(dirname "$0")/lib.sh"
# and ends with `summary`. It gets $D (the diffuse program), $T (a temporary folder removed on
# exit) and the checks below, each counting into the closing "NAME: N passed, N failed" line.
D=$BUILD/diffuse
PY=/usr/bin/python3
T=$(mktemp -d "/tmp/dfs_${NAME}_XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# check DESC CMD...: CMD succeeds
check() { desc=$1; shift; if "$@"; then ok; else bad "$desc"; fi; }

# expect_error DESC PATTERN CMD...: exit status 2, exactly one line on stderr matching PATTERN
expect_error() {
    desc=$1; pat=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -e "$pat" "$T/err"; then ok
    else bad "$desc: rc=$rc, stderr: $(cat "$T/err")"; fi
}

# the closing line; the script's exit status
summary() {
    echo "$NAME: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}

# skip_under_sanitizer: PyTorch parity runs in 'make test', not in the sanitizer run
skip_under_sanitizer() {
    [ -z "$DFS_SANITIZE" ] && return 0
    echo "$NAME: skipped under the sanitizer run (it runs in 'make test')"
    summary
    exit 0
}

# parity PYSCRIPT CMD...: run the C side, CMD... $T/parity.safetensors, which writes its
# results there, then PYSCRIPT on that file, which compares them with PyTorch and prints its own
# summary line; exits the script with the result. A missing torch, a missing CMD or a failed C
# side is one failure.
parity() {
    py=$1; shift
    skip_under_sanitizer
    if ! "$PY" -c "import torch, numpy" >/dev/null 2>&1; then
        bad "$PY cannot import torch and numpy; install python3-torch python3-numpy (make setup does)"
        summary; exit 1
    fi
    if [ ! -x "$1" ]; then bad "$1 is missing (run make first)"; summary; exit 1; fi
    if ! "$@" "$T/parity.safetensors"; then bad "$* failed"; summary; exit 1; fi
    "$PY" "$py" "$T/parity.safetensors"
    rc=$?
    [ $rc -le 1 ] || { bad "$py exited $rc"; summary; }
    exit $rc
}
