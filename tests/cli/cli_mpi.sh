#!/bin/sh
# cli_mpi.sh BUILD - diffuse train, series train and mol train over several processes with mpirun
# (docs/DISTRIBUTED.md): 2 ranks of 1 thread against 1 process of 2 threads, bit for bit (the
# losses of metrics.csv and every tensor of the checkpoints, images, time series and molecules),
# 3 ranks against 3 threads, 2 ranks of 2 threads against 4 threads (the same first loss, then
# float rounding), resume across a change in the number of ranks both ways (molecules: 2 ranks
# to 1 process); and the faults: a missing data file on one rank, different data on one rank,
# a rank killed mid-run (the last checkpoint stays whole and resumes), SIGTERM on the launcher
# (rank 0 saves once, at the step of the last metrics row). Without MPI (no mpirun, or a diffuse
# built with DFS_MPI=0) it checks that --help says how to enable it and skips the rest.
#
# The checkpoints are compared by a small standard-library reader ($T/st.py): the tensors'
# bytes and the training state less its wall-clock seconds.
NAME=cli_mpi; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
# CI runs as root; the tests may start more ranks than cores
MPIRUN="mpirun --allow-run-as-root --oversubscribe"
# OpenMPI leaves its plugins' memory to the end of the process (LeakSanitizer cannot even name
# them: dlclose'd): the sanitizer run checks memory errors here, leaks in cli.sh's runs
[ -n "$DFS_SANITIZE" ] && export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

"$D" train --help >"$T/help" 2>&1
if ! command -v mpirun >/dev/null 2>&1 || grep -q "built without MPI" "$T/help"; then
    check "train --help says how to enable MPI" grep -q "libopenmpi-dev" "$T/help"
    "$D" series train --help >"$T/shelp" 2>&1
    check "series train --help says how to enable MPI" grep -q "libopenmpi-dev" "$T/shelp"
    "$D" mol train --help >"$T/mhelp" 2>&1
    check "mol train --help says how to enable MPI" grep -q "libopenmpi-dev" "$T/mhelp"
    if grep -q "built without MPI" "$T/help"; then
        expect_error "a launcher's environment refused by a build without MPI" "built without MPI" \
            env OMPI_COMM_WORLD_SIZE=2 "$D" train --data fashion-mnist --out "$T/x"
        expect_error "and by mol train" "mol train: started by an MPI launcher, but this diffuse is built without MPI" \
            env OMPI_COMM_WORLD_SIZE=2 "$D" mol train --data "$T/none.xyz" --out "$T/x"
    fi
    echo "$NAME: the mpirun checks skipped under a build without MPI (no mpirun, or DFS_MPI=0)"
    summary; exit $?
fi
check "train --help tells how to run over MPI" grep -q "data-parallel over processes" "$T/help"
# the ranks multiply the sanitizer's slowness (about 2 of CI's 20 minutes), so the sanitizer run
# leaves these checks, and with them cli/mpi.c, to 'make test'
skip_under_sanitizer

cat >"$T/st.py" <<'EOF'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', {})
    st = json.loads(meta.get('state', '{}'))
    st.pop('wall_seconds', None)
    return h, b[8 + n:], st
if sys.argv[1] == 'step':
    print(load(sys.argv[2])[2]['step'])
    sys.exit(0)
(ha, da, sa), (hb, db, sb) = load(sys.argv[2]), load(sys.argv[3])
if ha.keys() != hb.keys() or sa != sb:
    print('tensor names or states differ:', sa, sb)
    sys.exit(1)
bad = [k for k in ha if ha[k] != hb[k] or da[slice(*ha[k]['data_offsets'])] != db[slice(*hb[k]['data_offsets'])]]
if bad:
    print('%d of %d tensors differ, e.g. %s' % (len(bad), len(ha), bad[:3]))
sys.exit(1 if bad else 0)
EOF
# same_ckpt DESC A B: the checkpoints hold the same tensors, bit for bit, and the same state
same_ckpt() {
    if [ ! -s "$2" ] || [ ! -s "$3" ]; then bad "$1: $(nonempty "$2") and $(nonempty "$3")"
    elif out=$($PY "$T/st.py" same "$2" "$3" 2>&1); then ok
    else bad "$1: $out"; fi
}
# losses CSV: the step,loss columns
losses() { cut -d, -f1,2 "$1"; }

IMG="--data fashion-mnist --limit 64 --preset small --batch 8 --log-every 1 --sample-every 0"

# ---- the same numbers ----------------------------------------------------------------------
"$D" train $IMG --steps 6 --threads 2 --out "$T/t2" 2>"$T/t2.err"; rc=$?
check "1 process x 2 threads trains (rc $rc): $(tail -n 1 "$T/t2.err")" [ $rc -eq 0 ]
$MPIRUN -np 2 "$D" train $IMG --steps 6 --threads 1 --out "$T/r2" >"$T/r2.out" 2>"$T/r2.err"; rc=$?
check "2 ranks x 1 thread train (rc $rc): $(tail -n 3 "$T/r2.err")" [ $rc -eq 0 ]
losses "$T/t2/metrics.csv" >"$T/t2.loss"; losses "$T/r2/metrics.csv" >"$T/r2.loss"
same_files "2 ranks x 1 thread: the losses of 1 process x 2 threads" "$T/t2.loss" "$T/r2.loss"
same_ckpt "2 ranks x 1 thread: the weights, EMA, moments and state of 1 process x 2 threads" \
    "$T/t2/last.safetensors" "$T/r2/last.safetensors"
check "rank 0 alone speaks: one 'done' line" [ "$(grep -c '^done: step 6' "$T/r2.err")" -eq 1 ]
check "rank 0 alone speaks: one 'training' line" [ "$(grep -c '^training ' "$T/r2.err")" -eq 1 ]
check "it reports the gradient sum's cost" grep -q "^2 ranks: the gradient sum took .* ms per step" "$T/r2.err"
# --conv winograd keeps it (each worker's graph, a rank's or a thread's, runs the same path on
# the same images; the FAST kernels, where training takes Winograd); --conv auto need not
env -u DFS_CONV DFS_KERNELS=fast "$D" train $IMG --steps 3 --threads 2 --conv winograd --out "$T/t2w" 2>"$T/t2w.err"
env -u DFS_CONV DFS_KERNELS=fast $MPIRUN -np 2 "$D" train $IMG --steps 3 --threads 1 --conv winograd --out "$T/r2w" \
    >/dev/null 2>"$T/r2w.err"; rc=$?
check "2 ranks x 1 thread, --conv winograd, train (rc $rc): $(tail -n 3 "$T/r2w.err")" [ $rc -eq 0 ]
same_ckpt "--conv winograd: 2 ranks x 1 thread give the checkpoint of 1 process x 2 threads" \
    "$T/t2w/last.safetensors" "$T/r2w/last.safetensors"

"$D" train $IMG --steps 4 --threads 3 --out "$T/t3" 2>"$T/t3.err"
$MPIRUN -np 3 "$D" train $IMG --steps 4 --threads 1 --out "$T/r3" >/dev/null 2>"$T/r3.err"; rc=$?
check "3 ranks x 1 thread train (rc $rc): $(tail -n 3 "$T/r3.err")" [ $rc -eq 0 ]
same_ckpt "3 ranks x 1 thread: what 1 process x 3 threads gives" "$T/t3/last.safetensors" "$T/r3/last.safetensors"

# 2 ranks of 2 threads: the gradients of a rank are summed before the ranks' sums, so only
# the first loss (before any update) is the same bit for bit; after 4 steps the losses agree
# to 1e-4 (relative)
"$D" train $IMG --steps 4 --threads 4 --out "$T/t4" 2>"$T/t4.err"
$MPIRUN -np 2 "$D" train $IMG --steps 4 --threads 2 --out "$T/r22" >/dev/null 2>"$T/r22.err"; rc=$?
check "2 ranks x 2 threads train (rc $rc): $(tail -n 3 "$T/r22.err")" [ $rc -eq 0 ]
l4=$(sed -n 2p "$T/t4/metrics.csv" | cut -d, -f2); l22=$(sed -n 2p "$T/r22/metrics.csv" | cut -d, -f2)
check "2 ranks x 2 threads: the first loss of 4 threads ($l4 vs $l22)" [ -n "$l4" ] && [ "$l4" = "$l22" ]
l4=$(sed -n 5p "$T/t4/metrics.csv" | cut -d, -f2); l22=$(sed -n 5p "$T/r22/metrics.csv" | cut -d, -f2)
check "2 ranks x 2 threads: the 4th loss of 4 threads within 1e-4 ($l4 vs $l22)" \
    awk -v a="$l4" -v b="$l22" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1e-4 * (a < 0 ? -a : a)) }'

# resume across a change in the number of ranks: 3 steps one way, 3 the other, against 6 at once
"$D" train $IMG --steps 3 --threads 2 --out "$T/g1" 2>/dev/null
$MPIRUN -np 2 "$D" train --resume "$T/g1/last.safetensors" --steps 6 --threads 1 --log-every 1 --sample-every 0 \
    --out "$T/g1" >/dev/null 2>"$T/g1.err"; rc=$?
check "1 process's checkpoint resumed on 2 ranks (rc $rc): $(tail -n 2 "$T/g1.err")" [ $rc -eq 0 ]
same_ckpt "resumed on 2 ranks: what 6 steps at once give" "$T/t2/last.safetensors" "$T/g1/last.safetensors"
$MPIRUN -np 2 "$D" train $IMG --steps 3 --threads 1 --out "$T/g2" >/dev/null 2>&1
"$D" train --resume "$T/g2/last.safetensors" --steps 6 --threads 2 --log-every 1 --sample-every 0 \
    --out "$T/g2" 2>"$T/g2.err"; rc=$?
check "2 ranks' checkpoint resumed by 1 process (rc $rc): $(tail -n 1 "$T/g2.err")" [ $rc -eq 0 ]
same_ckpt "resumed by 1 process: what 6 steps at once give" "$T/t2/last.safetensors" "$T/g2/last.safetensors"
losses "$T/g2/metrics.csv" >"$T/g2.loss"
same_files "resumed: the losses of 6 steps at once" "$T/t2.loss" "$T/g2.loss"

# time series
SER="--data seattle-weather --columns temp_max,temp_min --until 2014-12-31 --window 12 --channels 8 --heads 2
     --layers 1 --time-dim 8 --batch 4 --steps 8 --log-every 1"
"$D" series train $SER --threads 2 --out "$T/s2" 2>"$T/s2.err"; rc=$?
check "series: 1 process x 2 threads trains (rc $rc): $(tail -n 1 "$T/s2.err")" [ $rc -eq 0 ]
$MPIRUN -np 2 "$D" series train $SER --threads 1 --out "$T/sr2" >/dev/null 2>"$T/sr2.err"; rc=$?
check "series: 2 ranks x 1 thread train (rc $rc): $(tail -n 3 "$T/sr2.err")" [ $rc -eq 0 ]
losses "$T/s2/metrics.csv" >"$T/s2.loss"; losses "$T/sr2/metrics.csv" >"$T/sr2.loss"
same_files "series, 2 ranks x 1 thread: the losses of 2 threads" "$T/s2.loss" "$T/sr2.loss"
same_ckpt "series, 2 ranks x 1 thread: the checkpoint of 2 threads" "$T/s2/last.safetensors" "$T/sr2/last.safetensors"
check "series: rank 0 alone speaks" [ "$(grep -c '^done at step 8' "$T/sr2.err")" -eq 1 ]

# molecules (mol train: EDM's EGNN): water, methane and ethanol, a tiny model. The losses, the
# checkpoint, and a resume across a change in the number of ranks: 2 steps on 2 ranks, then 1
# process of 2 threads to step 4, against 4 steps at once. (1 thread differs from 2 from the
# second step on, so this compares the split of the batch, not one worker's numbers twice.)
cp "$(dirname "$0")/../data/water-methane-ethanol.xyz" "$T/mol.xyz"
MOL="--data $T/mol.xyz --hidden 16 --layers 1 --T 20 --batch 4 --log-every 1 --save-every 2"
"$D" mol train $MOL --steps 4 --threads 2 --out "$T/m2" 2>"$T/m2.err"; rc=$?
check "mol: 1 process x 2 threads trains (rc $rc): $(tail -n 1 "$T/m2.err")" [ $rc -eq 0 ]
$MPIRUN -np 2 "$D" mol train $MOL --steps 4 --threads 1 --out "$T/mr2" >/dev/null 2>"$T/mr2.err"; rc=$?
check "mol: 2 ranks x 1 thread train (rc $rc): $(tail -n 3 "$T/mr2.err")" [ $rc -eq 0 ]
losses "$T/m2/metrics.csv" >"$T/m2.loss"; losses "$T/mr2/metrics.csv" >"$T/mr2.loss"
same_files "mol, 2 ranks x 1 thread: the losses of 2 threads" "$T/m2.loss" "$T/mr2.loss"
same_ckpt "mol, 2 ranks x 1 thread: the weights, EMA, moments and state of 2 threads" \
    "$T/m2/last.safetensors" "$T/mr2/last.safetensors"
check "mol: rank 0 alone speaks" [ "$(grep -c '^done at step 4' "$T/mr2.err")" -eq 1 ]
$MPIRUN -np 2 "$D" mol train $MOL --steps 2 --threads 1 --out "$T/mg" >/dev/null 2>"$T/mg.err"; rc=$?
check "mol: 2 ranks x 1 thread, 2 steps (rc $rc): $(tail -n 3 "$T/mg.err")" [ $rc -eq 0 ]
"$D" mol train $MOL --steps 4 --threads 2 --resume --out "$T/mg" 2>"$T/mg2.err"; rc=$?
check "mol: 2 ranks' checkpoint resumed by 1 process (rc $rc): $(tail -n 1 "$T/mg2.err")" [ $rc -eq 0 ]
same_ckpt "mol, resumed by 1 process: what 4 steps at once give" "$T/m2/last.safetensors" "$T/mg/last.safetensors"
losses "$T/mg/metrics.csv" >"$T/mg.loss"
same_files "mol, resumed: the losses of 4 steps at once" "$T/m2.loss" "$T/mg.loss"

# ---- faults --------------------------------------------------------------------------------
ONE="--preset small --batch 8 --steps 4 --sample-every 0 --threads 1"
# a data file missing on rank 1 (two programs under one mpirun: rank 0 and rank 1)
$MPIRUN -np 1 "$D" train --data fashion-mnist --limit 64 $ONE --out "$T/f1" : \
    -np 1 "$D" train --data "$T/missing.idx" --limit 64 $ONE --out "$T/f1" >/dev/null 2>"$T/f1.err"; rc=$?
check "a data file missing on one rank: non-zero exit ($rc)" [ $rc -ne 0 ]
check "one message, from rank 1: $(grep '^diffuse' "$T/f1.err")" [ "$(grep -c '^diffuse' "$T/f1.err")" -eq 1 ]
check "it names the rank and the file" grep -q "^diffuse: rank 1: --data $T/missing.idx: no such file" "$T/f1.err"
check "no checkpoint" [ ! -e "$T/f1/last.safetensors" ]
# a run folder that holds a run: rank 0 alone looks, and all stop
$MPIRUN -np 2 "$D" train $IMG --steps 2 --threads 1 --out "$T/r2" >/dev/null 2>"$T/f0.err"; rc=$?
check "an --out that holds a run: non-zero exit ($rc)" [ $rc -ne 0 ]
check "one message, from rank 0: $(grep '^diffuse' "$T/f0.err")" \
    [ "$(grep -c '^diffuse: rank 0: train: .* already holds a run' "$T/f0.err")" -eq 1 ]
same_ckpt "and the run is untouched" "$T/t2/last.safetensors" "$T/r2/last.safetensors"
# other data on rank 1
$MPIRUN -np 1 "$D" train --data fashion-mnist --limit 64 $ONE --out "$T/f2" : \
    -np 1 "$D" train --data fashion-mnist --limit 32 $ONE --out "$T/f2" >/dev/null 2>"$T/f2.err"; rc=$?
check "other data on one rank: non-zero exit ($rc)" [ $rc -ne 0 ]
check "one message from rank 0: $(grep '^diffuse' "$T/f2.err")" \
    [ "$(grep -c "^diffuse: rank 1's weights, training state or data differ from rank 0's" "$T/f2.err")" -eq 1 ]

LONG="--data fashion-mnist --limit 64 --preset small --batch 8 --steps 100000 --log-every 1 --sample-every 0 --threads 1"
# rank_pid MPIRUN_PID RANK: the process of that rank (the launcher's child with its rank)
# (read from /proc: procps may be missing)
rank_pid() {
    for c in /proc/[0-9]*; do
        [ "$(sed -E 's/^.*\) [A-Za-z] ([0-9]+) .*/\1/' "$c/stat" 2>/dev/null)" = "$1" ] || continue
        tr '\0' '\n' <"$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && echo "${c#/proc/}"
    done
}
# a rank killed mid-run: every rank stops, non-zero; the last checkpoint is whole and resumes
$MPIRUN -np 2 "$D" train $LONG --save-every 2 --out "$T/k" >/dev/null 2>"$T/k.err" &
mp=$!
wait_until $mp 60 test -s "$T/k/last.safetensors"
sleep 0.5
r1=$(rank_pid $mp 1)
check "rank 1 found ($r1)" [ -n "$r1" ]
[ -n "$r1" ] && kill -KILL "$r1"
wait $mp; rc=$?
check "a killed rank stops them all, non-zero ($rc)" [ $rc -ne 0 ]
check "the launcher names the killed rank" grep -q "rank 1 .*signal 9" "$T/k.err"
ks=$($PY "$T/st.py" step "$T/k/last.safetensors" 2>&1)
check "the last checkpoint is whole (step $ks)" [ "$ks" -ge 2 ] 2>/dev/null
"$D" train --resume "$T/k/last.safetensors" --steps $((ks + 1)) --threads 2 --out "$T/k" 2>"$T/k2.err"; rc=$?
check "and resumes (rc $rc): $(tail -n 1 "$T/k2.err")" [ $rc -eq 0 ]

# SIGTERM on the launcher: rank 0 saves once, at the step of the last metrics row. mpirun
# forwards the signal and kills what is left after odls_base_sigkill_timeout seconds (1 by
# default; 3 here, for a loaded machine; it waits that long in any case)
OMPI_MCA_odls_base_sigkill_timeout=3 $MPIRUN -np 2 "$D" train $LONG --save-every 100000 --out "$T/s" >/dev/null 2>"$T/s.err" &
mp=$!
wait_until $mp 60 has_rows "$T/s/metrics.csv"
sleep 0.5
kill -TERM $mp
wait $mp
check "SIGTERM: one 'interrupted' line from rank 0" [ "$(grep -c '^interrupted at step' "$T/s.err")" -eq 1 ]
ss=$($PY "$T/st.py" step "$T/s/last.safetensors" 2>&1); ms=$(tail -n 1 "$T/s/metrics.csv" | cut -d, -f1)
check "SIGTERM: the checkpoint is at the last metrics row (step $ss, row $ms)" [ -n "$ms" ] && [ "$ss" = "$ms" ]
check "SIGTERM: every rank has stopped" [ -z "$(rank_pid $mp 1)$(rank_pid $mp 0)" ]

summary
