#!/bin/sh
# mol_jitter.sh [SET] [SIGMAS] - how precise must a molecule's geometry be for EDM's rule? Moves
# every coordinate of the molecules of SET (default wip/molset) by Gaussian noise of each sigma
# (Angstrom; default "0 0.01 0.02 0.03 0.04 0.05"), with awk's random numbers (Box-Muller, seed 1),
# and prints diffuse mol eval's figures for each: atom stability, molecule stability, validity,
# validity (EDM). Environment: DIFFUSE (default build/diffuse).
set -u
D=${DIFFUSE:-build/diffuse}
SET=${1:-wip/molset}
[ -d "$SET" ] && SET=$SET/molecules.xyz
SIGMAS=${2:-"0 0.01 0.02 0.03 0.04 0.05"}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
printf '%-8s %8s %8s %8s %8s\n' sigma atom-st mol-st valid valid-EDM
for s in $SIGMAS; do
    awk -v s="$s" 'BEGIN { srand(1); pi = atan2(0, -1) }
        function g() { return sqrt(-2 * log(1 - rand())) * cos(2 * pi * rand()) }
        left == 0 { print; n = $1; left = -1; next }
        left == -1 { print; left = n; next }
        { printf "%s %.5f %.5f %.5f\n", $1, $2 + s * g(), $3 + s * g(), $4 + s * g(); left--; if (!left) left = 0 }' \
        "$SET" >"$T/j.xyz" || exit 1
    "$D" mol eval --samples "$T/j.xyz" >"$T/o" || exit 1
    printf '%-8s' "$s"
    for k in "atom stability" "molecule stability" "validity  *[0-9]" "validity (EDM)"; do
        printf ' %8s' "$(grep "^$k" "$T/o" | awk '{ print $NF }')"
    done
    echo
done
