#!/bin/sh
# mol_cc.sh XYZ... - the C-C distances under 1.7 A of the molecules of each multi-frame XYZ file
# (a folder: its molecules.xyz), as shares of them in bins whose edges are EDM's cut-offs and the
# training set's two peaks: below 1.30, 1.30-1.35, 1.35-1.375, 1.375-1.425 (aromatic),
# 1.425-1.475, 1.475-1.525, 1.525-1.575 (single) and from 1.575 A. EDM's rule reads a C-C pair as
# double under 1.39 A (134 pm + 5) and single under 1.64 A (154 pm + 10). With awk (mawk or gawk).
set -u
[ $# -ge 1 ] || { echo "usage: bench/mol_cc.sh XYZ..." >&2; exit 2; }
printf '%-34s %5s %6s  %s\n' file mols pairs "<1.30 1.30- 1.35- 1.375- 1.425- 1.475- 1.525- 1.575-"
for f in "$@"; do
    [ -d "$f" ] && f=$f/molecules.xyz
    [ -r "$f" ] || { echo "mol_cc.sh: cannot read $f" >&2; exit 2; }
    awk -v name="$f" '
        function flush(   i, j, dx, dy, dz, r, b) {
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) {
                if (el[i] != "C" || el[j] != "C") continue
                dx = x[i] - x[j]; dy = y[i] - y[j]; dz = z[i] - z[j]
                r = sqrt(dx * dx + dy * dy + dz * dz)
                if (r >= 1.7) continue
                for (b = 1; b <= 7 && r >= edge[b]; b++) ;
                h[b]++; pairs++
            }
            k = 0
        }
        BEGIN { split("1.30 1.35 1.375 1.425 1.475 1.525 1.575", edge, " "); for (b = 1; b <= 7; b++) edge[b] += 0 }
        left == 0 { if (NF == 0) next; if ($1 !~ /^[0-9]+$/) { print name ": line " NR ": not an atom count" > "/dev/stderr"; bad = 1; exit 2 }
                    n = $1; left = -1; mols++; next }
        left == -1 { left = n; next }
        { k++; el[k] = $1; x[k] = $2; y[k] = $3; z[k] = $4; if (--left == 0) flush() }
        END {
            if (bad) exit 2
            if (left != 0) { print name ": ends inside a molecule" > "/dev/stderr"; exit 2 }
            printf "%-34s %5d %6d ", name, mols, pairs
            for (b = 1; b <= 8; b++) printf " %5.1f", pairs ? 100 * h[b] / pairs : 0
            printf "\n"
        }' "$f" || exit $?
done
