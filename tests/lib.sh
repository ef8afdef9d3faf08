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
# A command's exit status goes into a check through a variable set on its own line:
#     "$D" eval ... 2>"$T/e"; rc=$?
#     check "eval exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
# since `check "...$(cmd)..." [ $? -eq 0 ]` reads cmd's status under bash (always 0), not the
# status of the command before it, as dash does.

# same_files DESC A B: A and B exist, are not empty, and are equal (two failed commands that
# wrote nothing do not compare equal)
same_files() {
    if [ ! -s "$2" ] || [ ! -s "$3" ]; then bad "$1: $(nonempty "$2") and $(nonempty "$3")"
    elif cmp -s "$2" "$3"; then ok
    else bad "$1: $2 and $3 differ"; fi
}
# other_files DESC A B: A and B exist, are not empty, and differ
other_files() {
    if [ ! -s "$2" ] || [ ! -s "$3" ]; then bad "$1: $(nonempty "$2") and $(nonempty "$3")"
    elif cmp -s "$2" "$3"; then bad "$1: $2 and $3 are equal"
    else ok; fi
}
nonempty() { if [ -s "$1" ]; then echo "$1 has $(wc -c <"$1") bytes"; elif [ -e "$1" ]; then echo "$1 is empty"; else echo "$1 is missing"; fi; }

# wait_until PID SECONDS CMD...: poll CMD every 0.2 s until it succeeds (status 0), or fail
# (status 1) once SECONDS have passed or process PID has exited
wait_until() {
    wpid=$1; wend=$(( $(date +%s) + $2 )); shift 2
    until "$@"; do
        kill -0 "$wpid" 2>/dev/null || return 1
        [ "$(date +%s)" -lt "$wend" ] || return 1
        sleep 0.2
    done
}
# has_rows CSV: the CSV file has a row under its header
has_rows() { [ -n "$(tail -n +2 "$1" 2>/dev/null)" ]; }
# lacks PATTERN FILE: no line of FILE matches PATTERN
lacks() { ! grep -q -e "$1" "$2"; }

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

# DFS_SANITIZE, set by 'make test-asan' alone, leaves out the PyTorch parity and the slow checks.
# It counts only for a build made with a sanitizer (tests/run.sh does the same), so a stray one in
# the environment cannot leave them out of 'make test' or of a script run by hand.
if [ -n "${DFS_SANITIZE+set}" ] && ! grep -aqs -e __asan_init -e __ubsan_handle "$D"; then
    echo "$NAME: DFS_SANITIZE='$DFS_SANITIZE' ignored: $D is not built with a sanitizer"
    unset DFS_SANITIZE
fi

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

# edit_train SRC DST KEY VALUE: a copy of checkpoint SRC whose "train" record has KEY set to the
# JSON VALUE (or, VALUE "-", deleted; KEY "*" and VALUE "-" delete the whole record); the header
# is JSON after an 8-byte length
edit_train() { # SRC DST KEY VALUE: set (or, VALUE "-", delete) a key of the "train" record
    $PY - "$@" <<'EOF'
import json, struct, sys
src, dst, key, val = sys.argv[1:5]
b = open(src, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); t = json.loads(h["__metadata__"]["train"])
if key == "*" and val == "-": t = None
elif val == "-": del t[key]
else: t[key] = json.loads(val)
if t is None: del h["__metadata__"]["train"]
else: h["__metadata__"]["train"] = json.dumps(t)
s = json.dumps(h).encode(); s += b" " * (-len(s) % 8)
open(dst, "wb").write(struct.pack("<Q", len(s)) + s + b[8 + n:])
EOF
}
