#!/bin/sh
# cli_mol_rdkit.sh BUILD - diffuse mol eval's validity against RDKit, whose SanitizeMol is EDM's
# own validity check (qm9/rdkit_functions.py). The molecules: the three sources of 'data build
# molecules' that need no obabel, as built, and four copies of them with every coordinate moved
# by Gaussian noise of 0.04 to 0.16 A (a fixed seed), which breaks and adds bonds and puts atoms
# under and over their valences. tests/cli/rdkit_validity.py rebuilds each molecule from the
# elements and diffuse's bonds (--table) and compares diffuse's two validities with RDKit's,
# molecule by molecule. The one known difference, RDKit's clean-up of nitro and azide groups,
# is counted apart. A table with one flag flipped must be caught (the check can fail).
NAME=cli_mol_rdkit; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
skip_under_sanitizer
if ! "$PY" -c "import rdkit, numpy" >/dev/null 2>&1; then
    bad "$PY cannot import rdkit and numpy; install python3-rdkit python3-numpy (make setup does)"
    summary; exit 1
fi
CMP=$(dirname "$0")/rdkit_validity.py

"$D" data build molecules --sources g2,chemical-structures,avogadro --out "$T/set" >/dev/null 2>"$T/e"
check "the set builds: $(tail -n 1 "$T/e")" [ -s "$T/set/molecules.xyz" ]
"$PY" - "$T/set/molecules.xyz" "$T/jit.xyz" <<'PYEOF'
import sys
import numpy as np
src, out = sys.argv[1], sys.argv[2]
lines = open(src).read().split("\n")
mols, i = [], 0
while i < len(lines) and lines[i].strip():
    n = int(lines[i])
    mols.append([(l.split()[0], [float(v) for v in l.split()[1:4]]) for l in lines[i + 2:i + 2 + n]])
    i += n + 2
rng = np.random.default_rng(17)
with open(out, "w") as f:
    for sigma in (0.04, 0.08, 0.12, 0.16):
        for k, m in enumerate(mols):
            f.write(f"{len(m)}\njittered {k} sigma {sigma}\n")
            for e, p in m:
                q = np.array(p) + rng.normal(0, sigma, 3)
                f.write(f"{e} {q[0]:.5f} {q[1]:.5f} {q[2]:.5f}\n")
PYEOF
check "the jittered copies are written" [ -s "$T/jit.xyz" ]

for s in set/molecules jit; do
    "$D" mol eval --samples "$T/$s.xyz" --table "$T/$s.csv" >"$T/$s.out" 2>"$T/e"; rc=$?
    check "mol eval --table on $s exits 0: $(tail -n 1 "$T/e")" [ $rc -eq 0 ]
    "$PY" "$CMP" "$T/$s.xyz" "$T/$s.csv" >"$T/$s.cmp"; rc=$?
    cat "$T/$s.cmp" | tail -n 5
    check "$s: every molecule's validity agrees with RDKit's" [ $rc -eq 0 ]
    check "$s: fewer than 10 molecules differ only by RDKit's clean-up" grep -q "clean-up [0-9], disagree" "$T/$s.cmp"
done
# the jittered set must hold every case: valid, valid but not stable (under a valence: where
# this validity and the old "stable and one fragment" differ), over, in pieces
awk -F, 'NR > 1 { v += $7; e += $8; o += ($6 > 0); f += ($8 && !$7); u += ($7 && !$4); n++ }
         END { printf "%d %d %d %d %d %d\n", n, v, e, o, f, u }' "$T/jit.csv" >"$T/counts"
read n v e o f u <"$T/counts"
echo "$NAME: jittered: $n molecules, valid $v (not stable $u), EDM-valid $e, with an atom over $o, EDM-valid in pieces $f"
mixed() { [ "${n:-0}" -gt 0 ] && [ "$v" -ge $((n / 10)) ] && [ "$o" -ge $((n / 10)) ] && [ "$f" -ge 10 ] && [ "$u" -ge 10 ]; }
check "the jittered set mixes the cases (valid, not stable, over, in pieces: $v, $u, $o, $f of $n)" mixed
# the printed validity is the table's
pv=$(awk -v v="${v:-0}" -v n="${n:-0}" 'BEGIN { if (n > 0) printf "%.1f%%", 100 * v / n; else print "none" }')
check "mol eval prints validity $pv" grep -q "^validity  *$pv" "$T/jit.out"
# a flipped flag is caught: the first molecule both sides agree on, its EDM validity flipped
k=$(awk -F, 'NR > 1 && $8 == $7 { print NR; exit }' "$T/jit.csv")
awk -F, -v OFS=, -v k="$k" 'NR == k { $8 = 1 - $8 } { print }' "$T/jit.csv" >"$T/flip.csv"
"$PY" "$CMP" "$T/jit.xyz" "$T/flip.csv" >"$T/flip.cmp"; rc=$?
check "a table with one EDM-validity flag flipped is caught (exit $rc)" [ $rc -eq 1 ]
check "... as one disagreement" grep -q "disagree 1$" "$T/flip.cmp"
summary
