#!/bin/sh
# cli_mol_data.sh BUILD - diffuse data build molecules: the help, one-line refusals (an unknown
# source, a non-empty --out, a missing package, the image builders' options), a fast subset of
# all four sources (a copy of a few package folders under --root, with two corrupt CML files
# and the first 40 SMILES) and the three sources that need no obabel in full, each checked with
# the library's readers (test_mol_build --check: the filter, no repeated canonical form, XYZ
# and SDF agreeing, sources.json's counts against the files), the table on stdout against
# sources.json, the same files from two builds, and obabel's failures through PATH: missing,
# exiting non-zero, killed, printing no version, converting nothing, numbering molecules it was
# not sent, and Open Babel 3.1.1's --gen3d fastest (every coordinate 0, so no-3d).
NAME=cli_mol_data.sh; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
CHECK_SET=$BUILD/tests/test_mol_build

# help
"$D" data --help >"$T/h" 2>&1; check "data --help exits 0" [ $? -eq 0 ]
check "help names the molecules builder" grep -q "diffuse data build molecules --out DIR" "$T/h"
for w in chemical-structures avogadro g2 nci "--sources LIST" "--root DIR" molecules.sdf sources.json; do
    check "help names $w" grep -q -e "$w" "$T/h"
done
"$D" --help >"$T/h2"; check "top-level help names molecules" grep -q "^  data .*molecules" "$T/h2"

# refusals, before anything is read or written
expect_error "unknown source" "--sources: unknown source 'qm9' (chemical-structures, avogadro, g2, nci)" \
    "$D" data build molecules --sources g2,qm9 --out "$T/x"
expect_error "an empty source name" "--sources: unknown source ''" "$D" data build molecules --sources g2, --out "$T/x"
expect_error "--sources for emoji" "--sources and --root apply to molecules only" "$D" data build emoji --sources g2 --out "$T/x"
expect_error "--split for molecules" "are for the image builders" "$D" data build molecules --split test --out "$T/x"
expect_error "show molecules" "molecules is built, not shown" "$D" data show molecules
expect_error "an empty --root" "--root is empty" "$D" data build molecules --root "" --out "$T/x"
expect_error "a bad --limit" "--limit expects an integer" "$D" data build molecules --limit -1 --out "$T/x"
mkdir -p "$T/full"; echo x >"$T/full/keep"
expect_error "non-empty --out" "exists and is not empty" "$D" data build molecules --sources g2 --out "$T/full"
for s in chemical-structures:chemical-structures-data avogadro:libavogadro-data g2:python3-ase nci:rdkit-data; do
    expect_error "${s%%:*} missing" "install the Debian package ${s#*:}" \
        "$D" data build molecules --sources "${s%%:*}" --root "$T/nothing" --out "$T/x"
done
check "no output after the refusals" [ ! -e "$T/x" ]

# the packages (make setup installs them)
CS=/usr/share/chemical-structures; AV=/usr/share/avogadro2/molecules
G2=/usr/lib/python3/dist-packages/ase/collections/g2.json; SMI=/usr/share/RDKit/Data/NCI/first_5K.smi
for f in "$CS/alcohols" "$AV/alcohols" "$G2" "$SMI" /usr/bin/obabel "$CHECK_SET"; do
    if [ ! -e "$f" ]; then bad "$f is missing (make setup installs the packages, make all the checker)"; summary; exit 1; fi
done

# json FILE SOURCE KEY: a source's count in sources.json (python3 only reads the JSON)
json() { "$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
s = [e for e in d["sources"] if e["name"] == sys.argv[2]][0]
print(s["dropped"][sys.argv[3]] if sys.argv[3] in s["dropped"] else s[sys.argv[3]])' "$@"; }

# a subset of every source, copied under --root, with two corrupt CML files
R=$T/root
mkdir -p "$R$CS" "$R$AV" "$R$(dirname "$G2")" "$R$(dirname "$SMI")"
cp -r "$CS/alcohols" "$CS/amines" "$R$CS/"; cp -r "$AV/alcohols" "$AV/nitriles" "$R$AV/"
cp "$G2" "$R$G2"; head -n 40 "$SMI" >"$R$SMI"
printf '<molecule>\n <atomArray>\n  <atom id="a1" elementType="C" x3="0" y3="0" z3="0"/>\n' >"$R$CS/amines/zz-truncated.cml"
printf '<molecule>\n <atomArray>\n  <atom id="a1" elementType="C" x3="0" y3="0" z3="oops"/>\n </atomArray>\n</molecule>\n' \
    >"$R$CS/amines/zz-nan.cml"
"$D" data build molecules --root "$R" --out "$T/sub" >"$T/sub.out" 2>"$T/sub.err"; rc=$?
check "the subset builds: $(tail -n 1 "$T/sub.err")" [ $rc -eq 0 ]
check "the truncated file is named with its line" grep -q "warning: chemical-structures: .*amines/zz-truncated.cml: line 4: not well-formed XML" "$T/sub.err"
check "the bad number is named with its line" grep -q "zz-nan.cml: line 3: atom a1: z3=\"oops\" is not a number" "$T/sub.err"
check "both counted unreadable" [ "$(json "$T/sub/sources.json" chemical-structures unreadable)" = 2 ]
"$CHECK_SET" --check "$T/sub" >"$T/chk" 2>&1; rc=$?
check "the subset passes the checks: $(grep -m 3 FAIL "$T/chk")" [ $rc -eq 0 ]
n=$(sed -n 's/.*: \([0-9]*\) molecules$/\1/p' "$T/chk")
check "the subset has molecules ($n)" [ "${n:-0}" -gt 0 ]
for s in chemical-structures avogadro g2 nci; do
    row=$(awk -v s=$s '$1 == s { print $2, $3, $4, $5 }' "$T/sub.out")
    want="$(json "$T/sub/sources.json" $s read) $(json "$T/sub/sources.json" $s filtered) $(json "$T/sub/sources.json" $s duplicate) $(json "$T/sub/sources.json" $s kept)"
    check "table row $s ($row) is sources.json's ($want)" [ "$row" = "$want" ]
    check "$s kept some" [ "$(json "$T/sub/sources.json" $s kept)" -gt 0 ]
done
check "the total row counts the molecules" [ "$(awk '$1 == "total" { print $5 }' "$T/sub.out")" = "$n" ]
check "NCI read 40 SMILES" [ "$(json "$T/sub/sources.json" nci read)" = 40 ]
check "sources.json names obabel's version" grep -q '"obabel":.*"Open Babel' "$T/sub/sources.json"
check "the report says NCI's coordinates differ between builds" grep -q "seeded from the clock" "$T/sub.err"
check "every NCI title is nci ID:SMILES" [ -z "$(grep '^nci ' "$T/sub/molecules.xyz" | grep -v '^nci [0-9][0-9]*:[^ ]*$')" ]
check "no temporary files left" [ "$(ls "$T/sub" | tr '\n' ' ')" = "molecules.sdf molecules.xyz sources.json " ]

# the three sources without obabel, in full: checked, and the same files twice
"$D" data build molecules --sources g2,avogadro,chemical-structures --out "$T/a" >"$T/a.out" 2>"$T/a.err"; rc=$?
check "three sources build: $(tail -n 1 "$T/a.err")" [ $rc -eq 0 ]
"$CHECK_SET" --check "$T/a" >"$T/chk" 2>&1; rc=$?
check "three sources pass the checks: $(grep -m 3 FAIL "$T/chk")" [ $rc -eq 0 ]
check "--sources order does not change the reading order" [ "$(head -n 2 "$T/a/molecules.xyz" | tail -n 1 | cut -d' ' -f1)" = chemical-structures ]
"$D" data build molecules --sources chemical-structures,avogadro,g2 --out "$T/b" >/dev/null 2>&1
same_files "molecules.xyz is the same twice" "$T/a/molecules.xyz" "$T/b/molecules.xyz"
same_files "molecules.sdf is the same twice" "$T/a/molecules.sdf" "$T/b/molecules.sdf"
same_files "sources.json is the same twice" "$T/a/sources.json" "$T/b/sources.json"
"$D" data build molecules --sources g2 --limit 10 --out "$T/l" >"$T/l.out" 2>&1
check "--limit 10 reads 10 G2 entries" [ "$(json "$T/l/sources.json" g2 read)" = 10 ]

# obabel's failures, through PATH
NCI="data build molecules --sources nci --root $R --out $T/x"
expect_error "obabel missing" "obabel: not found in PATH (install the Debian package openbabel)" env PATH=/nonexistent "$D" $NCI
mkdir "$T/bin"
fake() { printf '#!/bin/sh\n%s\n' "$1" >"$T/bin/obabel"; chmod +x "$T/bin/obabel"; }
fake 'echo "obabel: boom" >&2; exit 3'
expect_error "obabel exits 3" "obabel exited with status 3: obabel: boom" env PATH="$T/bin:$PATH" "$D" $NCI
fake 'kill -9 $$'
expect_error "obabel killed" "obabel was killed by signal 9" env PATH="$T/bin:$PATH" "$D" $NCI
fake 'exit 0'
expect_error "obabel prints no version" "obabel -V printed no version: is it Open Babel" env PATH="$T/bin:$PATH" "$D" $NCI
fake 'case "$1" in -V) echo "Open Babel 0.0";; *) cat >/dev/null; printf "*** Open Babel Error\n  cannot parse\n0 molecules converted\n" >&2;; esac'
expect_error "obabel converts nothing" "obabel converted none of the 40 SMILES of .*first_5K.smi: cannot parse" env PATH="$T/bin:$PATH" "$D" $NCI
fake 'case "$1" in -V) echo "Open Babel 0.0";; *) cat >/dev/null; printf "999\n\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n\$\$\$\$\n";; esac'
expect_error "obabel numbers a molecule it was not sent" "its output has a molecule titled \"999\", which is not one of the 40 sent" env PATH="$T/bin:$PATH" "$D" $NCI
check "no output after obabel's failures" [ ! -e "$T/x" ]
# Open Babel 3.1.1's --gen3d fastest returns before copying the coordinates: all 0, refused
fake 'case " $* " in *" --gen3d "*) exec /usr/bin/obabel $(echo "$*" | sed "s/ med/ fastest/");; *) exec /usr/bin/obabel "$@";; esac'
env PATH="$T/bin:$PATH" "$D" $NCI >"$T/f.out" 2>"$T/f.err"; rc=$?
check "gen3d fastest builds: $(tail -n 1 "$T/f.err")" [ $rc -eq 0 ]
f3=$(json "$T/x/sources.json" nci no-3d)
check "gen3d fastest: survivors dropped as no-3d ($f3)" [ "${f3:-0}" -gt 0 ]
check "gen3d fastest: none kept" [ "$(json "$T/x/sources.json" nci kept)" = 0 ]

summary
