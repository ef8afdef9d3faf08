#!/bin/sh
# cli_commands.sh BUILD - the parts of the command line that every command shares: the table of
# commands (diffuse --help lists each, and each listed command's --help works), every option a
# --help lists is one the command takes, diffuse sample and diffuse eval read the sampling
# options alike (cli/sampling.c: the same messages for the same bad values), and the progress
# line of a sampling run (cli/progress.c): plain lines when stderr is not a terminal, one line
# redrawn in place on a terminal, counting network evaluations (RePaint's steps go back and
# forth, the count does not).
NAME=cli_commands; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
M=models/fmnist.safetensors

# --- the table of commands ----------------------------------------------------------------------
"$D" --help >"$T/top" 2>&1
check "diffuse --help exits 0" [ $? -eq 0 ]
sed -n '/^commands:$/,/^$/p' "$T/top" | sed -n 's/^  \([a-z][a-z]*\)  *.*/\1/p' >"$T/names"
check "diffuse --help lists at least the 10 commands ($(tr '\n' ' ' <"$T/names"))" [ "$(wc -l <"$T/names")" -ge 10 ]
for c in train sample noise info export bench eval classifier data plot; do
    check "diffuse --help lists $c" grep -qx "$c" "$T/names"
done
for c in $(cat "$T/names"); do
    "$D" $c --help >"$T/h" 2>&1; rc=$?
    check "$c --help (listed) exits 0 (got $rc)" [ $rc -eq 0 ]
    check "$c --help prints its usage" grep -q "^usage: diffuse $c" "$T/h"
    "$D" help $c >"$T/h2" 2>&1
    same_files "diffuse help $c is diffuse $c --help" "$T/h" "$T/h2"
done
"$D" help >"$T/h" 2>&1
same_files "diffuse help is diffuse --help" "$T/top" "$T/h"
"$D" >"$T/out" 2>"$T/err"; rc=$?
check "no command: exit 2 (got $rc)" [ $rc -eq 2 ]
check "no command: the usage on stderr" grep -q "^usage: diffuse COMMAND" "$T/err"
expect_error "an unknown command" "unknown command 'frob' (try 'diffuse --help')" "$D" frob
expect_error "help of an unknown command" "help: give one command" "$D" help frob

# --- every option a --help lists is one the command takes -----------------------------------------
# The options at the start of a help line (and after ", " on it): given with a value before
# --help, an option the command does not know is "unknown or incomplete"; a known one is taken
# (and --help exits 0) or its value refused (exit 2 with another message).
for c in train sample noise info export bench eval "classifier train" "classifier eval" "data build" \
         "data show" plot; do
    "$D" $c --help 2>&1 | grep -E '^ +--' | grep -oE '(^ +|, )--[a-zA-Z][a-zA-Z0-9+-]*' | sed 's/^[ ,]*//' \
        | sort -u >"$T/opts"
    check "$c --help lists options" [ -s "$T/opts" -o "$c" = info ]
    unknown=""
    for o in $(cat "$T/opts"); do
        "$D" $c $o 1 --help >"$T/o" 2>&1
        grep -q "unknown or incomplete option" "$T/o" && unknown="$unknown $o"
    done
    check "$c takes every option its --help lists (not:$unknown)" [ -z "$unknown" ]
done

# --- sample and eval read the sampling options alike --------------------------------------------
# the same bad value: the same one-line message and exit status 2 from both
for bad in "--sampler euler" "--steps 0" "--steps x" "--eta -1" "--variance wide" "--guidance 1e9" \
           "--dynamic-threshold 0" "--dynamic-threshold 101"; do
    "$D" sample --model $M --out "$T/x.png" $bad >/dev/null 2>"$T/s.err"; rs=$?
    "$D" eval --fd --model $M $bad >/dev/null 2>"$T/e.err"; re=$?
    check "sample and eval refuse $bad with status 2 (got $rs, $re)" [ $rs -eq 2 -a $re -eq 2 ]
    check "with one line each" [ "$(wc -l <"$T/s.err")" -eq 1 -a "$(wc -l <"$T/e.err")" -eq 1 ]
    same_files "and the same message for $bad ($(cat "$T/s.err"))" "$T/s.err" "$T/e.err"
done
# errors that need the model: the same message but for the command's name
"$D" sample --model $M --out "$T/x.png" --steps 5000 >/dev/null 2>"$T/s.err"
"$D" eval --fd --model $M --steps 5000 >/dev/null 2>"$T/e.err"
sed 's/^diffuse: sample: //' "$T/s.err" >"$T/s.msg"; sed 's/^diffuse: eval: //' "$T/e.err" >"$T/e.msg"
same_files "--steps past T: the same message ($(cat "$T/s.msg"))" "$T/s.msg" "$T/e.msg"
"$D" train --data fashion-mnist --limit 8 --preset small --unconditional --steps 1 --batch 4 --sample-every 0 \
    --threads 1 --out "$T/u" 2>/dev/null
check "a tiny unconditional model trains" [ -s "$T/u/last.safetensors" ]
"$D" sample --model "$T/u/last.safetensors" --out "$T/x.png" --guidance 2 >/dev/null 2>"$T/s.err"
"$D" eval --fd --model "$T/u/last.safetensors" --guidance 2 >/dev/null 2>"$T/e.err"
sed 's/^diffuse: sample: //' "$T/s.err" >"$T/s.msg"; sed 's/^diffuse: eval: //' "$T/e.err" >"$T/e.msg"
check "--guidance of an unconditional model is refused" grep -q "is unconditional; --guidance needs a class-conditional model" "$T/s.msg"
same_files "by sample and eval alike" "$T/s.msg" "$T/e.msg"
# the help of the shared options: the same options in both, with each command's defaults
for c in sample eval; do
    "$D" $c --help | sed -n '/^sampler (the same options/,/^[a-z]/p' | grep -oE '^  --[a-z-]+' >"$T/$c.shared"
done
check "sample --help has the shared sampler options" [ "$(wc -l <"$T/sample.shared")" -ge 7 ]
same_files "sample and eval list the same sampler options" "$T/sample.shared" "$T/eval.shared"
check "sample's default sampler is ddpm" sh -c "'$D' sample --help | grep -q 'or heun (default ddpm)'"
check "eval's default sampler is ddim" sh -c "'$D' eval --help | grep -q 'or heun (default ddim)'"

# --- the progress line when stderr is not a terminal -----------------------------------------------
# a line at each tenth of the network evaluations, no carriage returns; the messages around it
# (all the settings given: no line about the model's recommended ones)
"$D" sample --model $M --n 2 --sampler ddim --steps 20 --guidance 1 --seed 1 --out "$T/p.npy" 2>"$T/p.err"
check "sample exits 0" [ $? -eq 0 ]
check "no carriage returns when stderr is a file" sh -c "! grep -q \"\$(printf '\r')\" '$T/p.err'"
grep '^network evaluations ' "$T/p.err" | cut -d' ' -f3 | tr '\n' ' ' >"$T/counts"
check "10 progress lines, at every 2 of 20 evaluations (got $(cat "$T/counts"))" \
    [ "$(cat "$T/counts")" = "2/20 4/20 6/20 8/20 10/20 12/20 14/20 16/20 18/20 20/20 " ]
check "the last one full, with the elapsed time and ETA" \
    grep -q '^network evaluations 20/20 \[========================\] | [0-9]*m[0-9]*s elapsed | ETA 0m00s$' "$T/p.err"
check "the lines sit between 'sampling' and 'done in'" \
    sh -c "grep -v '^network evaluations' '$T/p.err' | head -n 2 | tr '\n' '|' | grep -q '^sampling 2 images with ddim in 20 steps|done in '"
# heun: 2 steps - 1 evaluations, two a step and one on the last
"$D" sample --model $M --n 1 --sampler heun --steps 4 --out "$T/h.npy" 2>"$T/h.err"
grep '^network evaluations ' "$T/h.err" | cut -d' ' -f3 | tr '\n' ' ' >"$T/counts"
check "heun in 4 steps counts 7 evaluations (got $(cat "$T/counts"))" [ "$(cat "$T/counts")" = "2/7 4/7 6/7 7/7 " ]
# RePaint: the steps go back at every jump; the count of evaluations only forward, to the total
"$D" sample --model $M --inpaint fashion-mnist-test --mask left --n 1 --sampler ddim --steps 6 --resample 3 \
    --jump 2 --out "$T/r.npy" 2>"$T/r.err"
check "inpainting exits 0" [ $? -eq 0 ]
total=$(sed -n 's/.*: \([0-9]*\) network evaluations (RePaint)$/\1/p' "$T/r.err")
grep '^network evaluations ' "$T/r.err" | cut -d' ' -f3 | cut -d/ -f1 >"$T/counts"
check "RePaint's count rises by one each step ($(tr '\n' ' ' <"$T/counts"))" \
    [ "$(tr '\n' ' ' <"$T/counts")" = "$(seq -s ' ' 1 "${total:-0}") " ]
check "to the total the start line gives ($total)" grep -q "^network evaluations $total/$total " "$T/r.err"
# eval's sampling shows the same line
"$D" eval --acc --model $M --n 4 --sampler ddim --steps 3 >/dev/null 2>"$T/e.err"
check "eval --acc exits 0" [ $? -eq 0 ]
check "eval's sampling shows the progress line" grep -q '^network evaluations 3/3 \[' "$T/e.err"

# --- the progress line on a terminal (script(1) gives the program one) ----------------------------
if command -v script >/dev/null 2>&1; then
    script -qec "'$D' sample --model $M --n 2 --sampler ddim --steps 20 --guidance 1 --seed 1 --out '$T/t.npy'" /dev/null >"$T/tty.out" 2>&1
    check "on a terminal the line is redrawn in place" grep -q "$(printf '\r')network evaluations" "$T/tty.out"
    check "and ends full, then a newline before 'done in'" \
        sh -c "tr -d '\r' <'$T/tty.out' | grep -q 'network evaluations 20/20 \[=*\] | .*ETA 0m00s *\$'"
    check "its lines are not printed one under another" [ "$(tr -d '\r' <"$T/tty.out" | grep -c '^network evaluations')" -eq 1 ]
    same_files "the samples are those of a run without a terminal" "$T/p.npy" "$T/t.npy"
else
    echo "$NAME: no script(1) (util-linux): the terminal's progress line is not checked"
fi
summary
