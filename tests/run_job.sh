#!/bin/sh
# run_job.sh DIR BUILD NAME KIND PATH - one job of tests/run.sh, which runs several at once:
# runs the test program PATH (KIND prog) or the script PATH with BUILD (KIND script), keeps its
# output in DIR/NAME.log, its exit status in DIR/NAME.rc and its seconds in DIR/NAME.time, then
# prints the output whole, one job at a time (flock on DIR/lock), so that the outputs of jobs
# that run together do not interleave. run.sh reads the counts from the files afterwards.
D=$1 BUILD=$2 name=$3 kind=$4 path=$5
start=$(date +%s)
case $kind in
    prog) "$path" ;;
    script) sh "$path" "$BUILD" ;;
    *) echo "run_job.sh: unknown kind '$kind'"; false ;;
esac >"$D/$name.log" 2>&1 </dev/null
echo $? >"$D/$name.rc"
secs=$(( $(date +%s) - start ))
echo "$secs" >"$D/$name.time"
flock "$D/lock" sh -c 'cat "$1"; echo "-- $2 done in ${3}s"' run_job "$D/$name.log" "$name" "$secs"
