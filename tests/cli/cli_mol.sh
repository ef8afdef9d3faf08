#!/bin/sh
# cli_mol.sh BUILD - diffuse mol train, sample and eval: a tiny model trained on three molecules
# (metrics, checkpoints, resume to the same weights as one run, SIGTERM saving once), samples
# as XYZ and SDF (sizes from the training set or --atoms, the same file twice from one seed, a
# fragment that comes back unchanged, the trajectory), eval's figures against numbers worked
# out by hand (EDM's rule on water, methane, a broken water and a stretched methane), and bad
# input refused with one line: a missing or corrupt set, an element the model does not know,
# another kind of checkpoint, bad options.
NAME=cli_mol; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"

"$D" mol --help >"$T/h" 2>&1; check "mol --help exits 0" [ $? -eq 0 ]
for sub in train sample eval render; do
    check "mol --help lists $sub" grep -q "^  $sub " "$T/h"
    "$D" mol $sub --help >"$T/h_$sub" 2>&1; check "mol $sub --help exits 0" [ $? -eq 0 ]
done
check "train --help names every option" sh -c 'for o in --data --out --hidden --layers --sublayers --attention --T --schedule --steps --minutes --batch --lr --ema --seed --save-every --log-every --resume --threads; do grep -q -e "$o" "$1" || exit 1; done' - "$T/h_train"
check "sample --help names every option" sh -c 'for o in --model --out --n --atoms --fragment --resample --jump --sampler --steps --eta --variance --noise-scale --trajectory --seed --raw --threads; do grep -q -e "$o" "$1" || exit 1; done' - "$T/h_sample"
check "eval --help names every option" sh -c 'for o in --samples --train --json --table "validity (EDM)"; do grep -q -e "$o" "$1" || exit 1; done' - "$T/h_eval"

# water, methane and ethanol (ethanol: the largest, 9 atoms)
cp "$(dirname "$0")/../data/water-methane-ethanol.xyz" "$T/set.xyz"
TINY="--hidden 16 --layers 1 --T 20 --batch 4 --threads 2"
"$D" mol train --data "$T/set.xyz" --out "$T/run" $TINY --steps 6 --save-every 3 --log-every 2 2>"$T/e"; rc=$?
check "train exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
check "train says what it trains" grep -q "3 molecules of up to 9 atoms" "$T/e"
check "train writes last and model" [ -s "$T/run/last.safetensors" ] && [ -s "$T/run/model.safetensors" ]
check "metrics.csv has a header and 3 rows" [ "$(wc -l <"$T/run/metrics.csv")" -eq 4 ]
check "metrics.csv counts molecules" grep -q "^6,.*,24," "$T/run/metrics.csv"
# resume: 3 + 3 steps give the weights of one run of 6
"$D" mol train --data "$T/set.xyz" --out "$T/r2" $TINY --steps 3 --save-every 3 --log-every 2 2>"$T/e"
"$D" mol train --data "$T/set.xyz" --out "$T/r2" $TINY --steps 6 --save-every 3 --log-every 2 --resume 2>"$T/e"; rc=$?
check "resume exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
same_files "3 + 3 resumed steps give the model of 6 steps" "$T/run/model.safetensors" "$T/r2/model.safetensors"
# --resume alone takes the run's own data, batch and lr (its schedule), and its steps and log
# interval unless given: 3 + 3 steps at lr 3e-3 give the model of one run of 6 at 3e-3
"$D" mol train --data "$T/set.xyz" --out "$T/r3" $TINY --steps 6 --lr 3e-3 --log-every 1 2>/dev/null
"$D" mol train --data "$T/set.xyz" --out "$T/r4" $TINY --steps 3 --lr 3e-3 --log-every 1 2>/dev/null
"$D" mol train --out "$T/r4" --resume --steps 6 --threads 2 2>"$T/e4"; rc=$?
check "a resume given only --steps exits 0: $(tail -n 1 "$T/e4")" [ $rc -eq 0 ]
check "and says what it continues with" grep -q "^mol train: resuming with batch 4, lr 0.003, ema 0.999, steps 6, no time limit, save every 500, log every 1 " "$T/e4"
check "and reads the run's data" grep -q "3 molecules of up to 9 atoms from $T/set.xyz" "$T/e4"
same_files "3 + 3 steps resumed with the run's own settings give the model of 6" "$T/r3/model.safetensors" "$T/r4/model.safetensors"
check "metrics.csv logs every step" [ "$(tail -n +2 "$T/r4/metrics.csv" | cut -d, -f1 | tr '\n' ' ')" = "1 2 3 4 5 6 " ]
"$D" mol train --out "$T/r4" --resume --batch 8 --lr 1e-4 --threads 2 2>"$T/e5"; rc=$?
check "a resume past the recorded --steps 6 trains nothing (exit $rc)" grep -q "is already at step 6 (--steps 6): nothing to train" "$T/e5"
check "a given --batch is named as ignored" grep -q "note: --batch ignored; the resumed run keeps its 4" "$T/e5"
check "a given --lr is named as taken" grep -q "note: the run trained at --lr 0.003; it continues at 0.0001" "$T/e5"
# --ema: recorded and resumed; a given one is named; 0 makes model.safetensors the last
# weights (before stop 33 it held the first), so it samples as the raw weights do
"$D" mol train --data "$T/set.xyz" --out "$T/r8" $TINY --steps 2 --ema 0.9 2>/dev/null
"$D" mol train --out "$T/r8" --resume --steps 3 2>"$T/e8"; rc=$?
check "a resume keeps the run's --ema 0.9 (exit $rc)" grep -q "^mol train: resuming with batch 4, lr 0.001, ema 0.9, steps 3," "$T/e8"
"$D" mol train --out "$T/r8" --resume --steps 4 --ema 0.5 2>"$T/e8"; rc=$?
check "a given --ema is named as taken (exit $rc)" grep -q "note: the run kept an EMA of decay 0.9; it continues with 0.5" "$T/e8"
"$D" mol train --data "$T/set.xyz" --out "$T/r9" $TINY --steps 3 --ema 0 2>/dev/null
"$D" mol sample --model "$T/r9/model.safetensors" --n 2 --steps 20 --out "$T/r9-ema.xyz" 2>/dev/null
"$D" mol sample --model "$T/r9/last.safetensors" --raw --n 2 --steps 20 --out "$T/r9-raw.xyz" 2>/dev/null
same_files "--ema 0: the sampling model is the last weights" "$T/r9-ema.xyz" "$T/r9-raw.xyz"
"$D" mol sample --model "$T/r9/last.safetensors" --n 2 --steps 20 --out "$T/r9-init.xyz" 2>/dev/null
check "and its EMA copy in last.safetensors too" cmp -s "$T/r9-ema.xyz" "$T/r9-init.xyz"
"$D" mol train --data "$T/set.xyz" --out "$T/r10" $TINY --steps 1 --ema 0.999999 2>/dev/null
"$D" mol train --out "$T/r10" --resume --steps 2 2>"$T/e10"; rc=$?
check "a run at the largest --ema, 0.999999, resumes (exit $rc): $(tail -n 1 "$T/e10")" \
    sh -c '[ $0 -eq 0 ] && grep -q "lr 0.001, ema 0.999999, steps 2," "$1"' $rc "$T/e10"
expect_error "--ema 1 refused" "--ema" "$D" mol train --data "$T/set.xyz" --out "$T/x" $TINY --ema 1
expect_error "--ema -0.1 refused" "--ema" "$D" mol train --data "$T/set.xyz" --out "$T/x" $TINY --ema -0.1
# bench/mol_cc.sh, the C-C distance table of docs/MOLECULES.md: two C-C pairs, 1.33 and 1.54 A (and
# a C-H pair, not counted), fall in their bins; a file that ends inside a molecule is refused
printf '3\nethene part\nC 0 0 0\nC 1.33 0 0\nH 0 1.08 0\n2\nethane part\nC 0 0 0\nC 0 0 1.54\n' >"$T/cc.xyz"
sh "$(dirname "$0")/../../bench/mol_cc.sh" "$T/cc.xyz" >"$T/cc.out" 2>&1
check "mol_cc.sh bins 1.33 and 1.54 A: $(tail -n 1 "$T/cc.out")" \
    sh -c 'tail -n 1 "$0" | awk "{ exit !(\$2 == 2 && \$3 == 2 && \$5 == 50 && \$10 == 50 && \$4 + \$6 + \$7 + \$8 + \$9 + \$11 == 0) }"' "$T/cc.out"
head -n 4 "$T/cc.xyz" >"$T/cc-cut.xyz"
sh "$(dirname "$0")/../../bench/mol_cc.sh" "$T/cc-cut.xyz" >/dev/null 2>"$T/cc.err"; rc=$?
check "and refuses a file cut inside a molecule (exit $rc)" sh -c '[ $0 -ne 0 ] && grep -q "ends inside a molecule" "$1"' $rc "$T/cc.err"
# a recorded --minutes goes on, and --minutes 0 lifts it
"$D" mol train --data "$T/set.xyz" --out "$T/r6" $TINY --steps 2 --minutes 1000 2>/dev/null
"$D" mol train --out "$T/r6" --resume --steps 3 2>"$T/e6"; rc=$?
check "a resume of a run of --minutes 1000 exits 0 ($rc) and keeps the limit" grep -q "^mol train: resuming with batch 4, lr 0.001, ema 0.999, steps 3, minutes 1000," "$T/e6"
"$D" mol train --out "$T/r6" --resume --steps 4 --minutes 0 2>"$T/e6"; rc=$?
check "--minutes 0 lifts it (exit $rc)" grep -q "^mol train: resuming with batch 4, lr 0.001, ema 0.999, steps 4, no time limit," "$T/e6"
# a checkpoint without a training record (optional, docs/CHECKPOINTS.md) resumes with the options
mkdir -p "$T/r7"; edit_train "$T/r4/last.safetensors" "$T/r7/last.safetensors" "*" -
"$D" mol train --out "$T/r7" --resume --data "$T/set.xyz" --batch 4 --steps 7 2>"$T/e7"; rc=$?
check "a checkpoint without a record resumes with --data and --batch given (exit $rc): $(tail -n 1 "$T/e7")" [ $rc -eq 0 ]
check "and says what it continues with" grep -q "^mol train: resuming with batch 4, lr 0.001, ema 0.999, steps 7, no time limit, save every 500, log every 10 " "$T/e7"
edit_train "$T/r4/last.safetensors" "$T/r5.safetensors" lr 7
mkdir -p "$T/r5"; cp "$T/r5.safetensors" "$T/r5/last.safetensors"
expect_error "a resumed record with lr 7" '"lr" is not a number in \[1e-08, 0.999\]' "$D" mol train --out "$T/r5" --resume --steps 9
edit_train "$T/r4/last.safetensors" "$T/r5/last.safetensors" data -
expect_error "a resumed record without data" "names no training data; give --data" "$D" mol train --out "$T/r5" --resume --steps 9
expect_error "a second run into the same folder refused" "already holds a run" \
    "$D" mol train --data "$T/set.xyz" --out "$T/run" $TINY --steps 6
# SIGTERM saves once and exits 0
"$D" mol train --data "$T/set.xyz" --out "$T/sig" $TINY --steps 100000 --save-every 100000 --log-every 1 2>"$T/e_sig" &
pid=$!
wait_until $pid 60 has_rows "$T/sig/metrics.csv"
kill -TERM $pid; wait $pid; rc=$?
check "SIGTERM: exit 0 ($rc): $(tail -n 1 "$T/e_sig")" [ $rc -eq 0 ]
check "SIGTERM: says interrupted and saves" grep -q "^interrupted at step" "$T/e_sig"
"$D" mol sample --model "$T/sig/last.safetensors" --n 1 --steps 2 --out "$T/sig.xyz" 2>"$T/e"; rc=$?
check "SIGTERM: the checkpoint is whole (it samples): $(tail -n 1 "$T/e")" [ $rc -eq 0 ]

"$D" info "$T/run/last.safetensors" >"$T/info" 2>&1; rc=$?
check "info reads a molecule model: $(head -n 2 "$T/info" | tail -n 1)" [ $rc -eq 0 ]
check "info shows the EGNN, the sizes and the state" sh -c 'grep -q "^model: *EDM molecules, EGNN 16 features, 1 blocks" "$1" && grep -q "sizes 3:1 5:1 9:1$" "$1" && grep -q "^step: *6$" "$1"' - "$T/info"
"$D" export --model "$T/run/last.safetensors" --out "$T/exp.safetensors" --sampler ddim --steps 5 2>"$T/e"; rc=$?
check "export writes a molecule model with a recipe: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
"$D" info "$T/exp.safetensors" >"$T/info2" 2>&1
check "the recipe and float16 weights go with it" sh -c 'grep -q "^sampling: *ddim, 5 steps (recommended)" "$1" && grep -q "sampling weights" "$1"' - "$T/info2"
"$D" mol sample --model "$T/exp.safetensors" --n 2 --out "$T/rec.xyz" 2>"$T/e"; rc=$?
check "mol sample uses the recipe: $(grep 'mol sample:' "$T/e")" sh -c '[ $0 -eq 0 ] && grep -q "ddim, 5 steps" "$1"' $rc "$T/e"
expect_error "export refuses --guidance for a molecule model" "molecule model: no --guidance" \
    "$D" export --model "$T/run/last.safetensors" --out "$T/exp2.safetensors" --sampler ddim --steps 5 --guidance 2
# a recorded noise scale: info shows it, a plain sample uses it (the same file as the explicit
# option), and an explicit --noise-scale 1 returns to the plain ancestral sampler
"$D" export --model "$T/run/last.safetensors" --out "$T/expn.safetensors" --f32 --sampler ddpm --steps 10 --noise-scale 0.5 2>"$T/e"; rc=$?
check "export --noise-scale 0.5 with ddpm: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
"$D" info "$T/expn.safetensors" >"$T/infon" 2>&1
check "info shows the recorded noise scale" grep -q "^sampling: *ddpm, 10 steps, noise scale 0.5 (recommended)" "$T/infon"
"$D" mol sample --model "$T/expn.safetensors" --n 3 --seed 2 --out "$T/n-rec.xyz" 2>"$T/e"
check "mol sample says it: $(grep 'mol sample:' "$T/e")" grep -q "ddpm, 10 steps, noise scale 0.5" "$T/e"
"$D" mol sample --model "$T/run/model.safetensors" --n 3 --seed 2 --steps 10 --noise-scale 0.5 --out "$T/n-exp.xyz" 2>/dev/null
same_files "the recorded noise scale samples as --noise-scale 0.5" "$T/n-rec.xyz" "$T/n-exp.xyz"
"$D" mol sample --model "$T/expn.safetensors" --n 3 --seed 2 --noise-scale 1 --out "$T/n-one.xyz" 2>/dev/null
"$D" mol sample --model "$T/run/model.safetensors" --n 3 --seed 2 --steps 10 --out "$T/n-plain.xyz" 2>/dev/null
same_files "--noise-scale 1 is the plain sampler" "$T/n-one.xyz" "$T/n-plain.xyz"
other_files "and 0.5 differs from it" "$T/n-rec.xyz" "$T/n-plain.xyz"
expect_error "export refuses --noise-scale with ddim" "noise-scale is ddpm's" \
    "$D" export --model "$T/run/last.safetensors" --out "$T/exp3.safetensors" --sampler ddim --steps 5 --noise-scale 0.5
expect_error "export refuses --noise-scale 0" "must be in (0, 1]" \
    "$D" export --model "$T/run/last.safetensors" --out "$T/exp3.safetensors" --sampler ddpm --steps 5 --noise-scale 0
expect_error "mol sample refuses --noise-scale with ddim" "ddpm sampler only, not ddim" \
    "$D" mol sample --model "$T/run/model.safetensors" --sampler ddim --steps 5 --noise-scale 0.5 --out "$T/x.xyz"
expect_error "mol sample refuses --noise-scale 1.5" "noise-scale" \
    "$D" mol sample --model "$T/run/model.safetensors" --noise-scale 1.5 --out "$T/x.xyz"

# sampling
M="$T/run/model.safetensors"
"$D" mol sample --model "$M" --n 5 --steps 10 --out "$T/a.xyz" --seed 3 2>"$T/e"; rc=$?
check "sample exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
check "5 frames" [ "$(grep -c '^sample ' "$T/a.xyz")" -eq 5 ]
check "sizes from the training set (3, 5 or 9 atoms)" sh -c '! grep -E "^[0-9]+$" "$1" | grep -qvxE "3|5|9"' - "$T/a.xyz"
"$D" mol sample --model "$M" --n 5 --steps 10 --out "$T/b.xyz" --seed 3 2>"$T/e"
same_files "one seed gives the same file" "$T/a.xyz" "$T/b.xyz"
"$D" mol sample --model "$M" --n 3 --atoms 7 --steps 10 --out "$T/c.sdf" --trajectory "$T/traj.xyz" 2>"$T/e"; rc=$?
check "sample --atoms 7 to SDF with a trajectory exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
check "every SDF molecule has 7 atoms" [ "$(grep -c '^  7 .*V2000' "$T/c.sdf")" -eq 3 ]
check "the trajectory has 10 frames of 7 atoms" [ "$(grep -cx ' *7' "$T/traj.xyz")" -eq 10 ]
check "the trajectory ends at the last step" grep -q "step 10 of 10" "$T/traj.xyz"
"$D" mol render --in "$T/traj.xyz" --trajectory --out "$T/traj.png" --size 64 2>"$T/e"
check "the trajectory renders" [ -s "$T/traj.png" ]
# a fragment: water's O-H, far from the origin
printf '2\nfragment\nO 10.000000 -3.000000 2.500000\nH 10.759000 -2.412400 2.500000\n' >"$T/frag.xyz"
"$D" mol sample --model "$M" --n 3 --atoms 5 --steps 10 --fragment "$T/frag.xyz" --out "$T/f.xyz" 2>"$T/e"; rc=$?
check "sample --fragment exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
check "the fragment's two atoms come back in every sample" [ "$(grep -c '^O  *10.000000 -3.000000 2.500000$' "$T/f.xyz")" -eq 3 ] && [ "$(grep -c '^H  *10.759000 -2.412400 2.500000$' "$T/f.xyz")" -eq 3 ]
"$D" mol sample --model "$M" --n 2 --atoms 5 --steps 10 --fragment "$T/frag.xyz" --resample 3 --jump 2 --out "$T/f3.xyz" 2>"$T/e"; rc=$?
check "sample --fragment --resample 3 exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
check "with resampling the fragment comes back too" [ "$(grep -c '^O  *10.000000 -3.000000 2.500000$' "$T/f3.xyz")" -eq 2 ]
expect_error "--resample without a fragment refused" "needs --fragment" \
    "$D" mol sample --model "$M" --n 1 --resample 3 --out "$T/x.xyz"
expect_error "--atoms fewer than the fragment refused" "fewer than the fragment" \
    "$D" mol sample --model "$M" --n 1 --atoms 1 --fragment "$T/frag.xyz" --out "$T/x.xyz"
expect_error "--atoms above the slots refused" "more than the model's 9 atom slots" \
    "$D" mol sample --model "$M" --n 1 --atoms 12 --out "$T/x.xyz"
expect_error "--out of another kind refused" "must end in .xyz or .sdf" "$D" mol sample --model "$M" --out "$T/x.png"
expect_error "--steps above T refused" "more than the model's T = 20" "$D" mol sample --model "$M" --steps 50 --out "$T/x.xyz"
expect_error "an unknown sampler refused" "must be ddpm, ddim" "$D" mol sample --model "$M" --sampler euler --out "$T/x.xyz"

# eval: EDM's rule by hand. water and methane are stable; "broken water" has an H 2 A from O
# (the O has one bond: unstable; the bonded H stable, the far one not: 1 of 3, two fragments);
# a stretched methane's C-H 1.5 A bonds none (0 of 5)
cat >"$T/ev.xyz" <<'EOF'
3
water
O 0.000 0.000 0.000
H 0.757 0.586 0.000
H -0.757 0.586 0.000
5
methane
C 0.000 0.000 0.000
H 0.629 0.629 0.629
H -0.629 -0.629 0.629
H -0.629 0.629 -0.629
H 0.629 -0.629 -0.629
3
broken water
O 0.000 0.000 0.000
H 0.757 0.586 0.000
H -2.000 0.000 0.000
5
stretched methane
C 0.000 0.000 0.000
H 0.866 0.866 0.866
H -0.866 -0.866 0.866
H -0.866 0.866 -0.866
H 0.866 -0.866 -0.866
3
water again
O 1.000 1.000 1.000
H 1.757 1.586 1.000
H 0.243 1.586 1.000
EOF
"$D" mol eval --samples "$T/ev.xyz" --train "$T/set.xyz" --json "$T/ev.json" >"$T/o" 2>"$T/e"; rc=$?
check "eval exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
# atoms: 3 + 5 + 1 + 0 + 3 = 12 stable of 19
check "atom stability 12/19 = 63.2%" grep -q "^atom stability *63.2%" "$T/o"
check "molecule stability 3/5 = 60.0%" grep -q "^molecule stability *60.0%" "$T/o"
check "validity 3/5 = 60.0% (broken water and stretched methane are in pieces)" grep -q "^validity *60.0%" "$T/o"
check "validity (EDM) 5/5: no atom over its valence; pieces allowed" grep -q "^validity (EDM) *100.0%" "$T/o"
check "uniqueness 2/3 = 66.7% (water twice)" grep -q "^uniqueness (of valid) *66.7%" "$T/o"
check "novelty 0/2 (water and methane are in the set)" grep -q "^novelty (of unique) *0.0%" "$T/o"
check "the training set scored beside (3 of 3 stable)" grep -q "^molecule stability *60.0% *100.0%" "$T/o"
check "the JSON has the figures" grep -q '"validity":	0.6' "$T/ev.json"
check "the JSON has EDM's validity" grep -q '"validity_edm":	1' "$T/ev.json"
"$D" mol eval --samples "$T/ev.xyz" --train "$T/ev.xyz" >"$T/o2" 2>"$T/e"
check "against itself nothing is novel" grep -q "^novelty (of unique) *0.0%" "$T/o2"
printf '3\nformaldehyde-ish\nC 0 0 0\nO 1.21 0 0\nH -0.55 0.95 0\n' >"$T/new.xyz"
"$D" mol eval --samples "$T/ev.xyz" --train "$T/new.xyz" >"$T/o3" 2>"$T/e"
check "against another set both are novel (100%)" grep -q "^novelty (of unique) *100.0%" "$T/o3"

# bad input
expect_error "a missing set refused" "molecules.xyz\|No such file\|cannot" "$D" mol train --data "$T/none" --out "$T/x"
printf '3\nbad\nO 0 0 0\nH 1 x 0\n' >"$T/bad.xyz"
expect_error "a corrupt XYZ refused with its line" "bad.xyz: line 4" "$D" mol train --data "$T/bad.xyz" --out "$T/x"
printf '2\nHCl\nCl 0 0 0\nH 1.27 0 0\n' >"$T/cl.xyz"
expect_error "an element the model does not know refused" "atom 1 is Cl" "$D" mol train --data "$T/cl.xyz" --out "$T/x"
: >"$T/empty.xyz"
expect_error "an empty set refused" "holds no molecules" "$D" mol train --data "$T/empty.xyz" --out "$T/x"
expect_error "train without --data refused" "--data" "$D" mol train --out "$T/x"
expect_error "a series checkpoint is not a molecule model" "not a molecule model" \
    "$D" mol sample --model models/weather-daily.safetensors --out "$T/x.xyz"
expect_error "eval without --samples refused" "--samples" "$D" mol eval
expect_error "eval --table into a missing folder refused" "--table" "$D" mol eval --samples "$T/ev.xyz" --table "$T/no/t.csv"
expect_error "an unknown subcommand refused" "unknown subcommand" "$D" mol frobnicate
summary
