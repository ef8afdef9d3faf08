"""rdkit_validity.py MOLECULES.xyz TABLE.csv - diffuse mol eval's validity against RDKit's.

EDM's validity (qm9/rdkit_functions.py) builds an RDKit molecule from the atoms and the bond
orders of EDM's distance rule (build_molecule) and counts it valid when Chem.SanitizeMol
accepts it. This reads the elements from the XYZ file and the bonds from diffuse's --table (the
rule's orders, checked on their own by test_mol_rules), sanitises each molecule with RDKit,
and compares, molecule by molecule:
  valid_edm  with SanitizeMol accepting it;
  valid      with SanitizeMol accepting it and GetMolFrags finding one fragment.
RDKit's clean-up step rewrites a neutral N(=O)=O (nitro) and N=N#N (azide) as charged forms
before checking valences, so it accepts them where diffuse counts the N as over its valence.
Such molecules (SanitizeMol leaves N+ with O- or N-, and no other charge) are counted apart, as
the known difference, and listed.
Prints one line per disagreement and per clean-up, then 'checked N: agree A, clean-up C, disagree D' and exits 1
if D > 0."""
import sys

from rdkit import Chem, RDLogger

RDLogger.DisableLog("rdApp.*")
ORDERS = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}


def read_xyz(path):
    mols, lines, i = [], open(path).read().split("\n"), 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        mols.append([ln.split()[0] for ln in lines[i + 2:i + 2 + n]])
        i += n + 2
    return mols


def rdkit_says(elements, bonds):
    m = Chem.RWMol()
    for e in elements:
        m.AddAtom(Chem.Atom(e))
    for b in bonds.split():
        ij, o = b.split(":")
        i, j = ij.split("-")
        m.AddBond(int(i), int(j), ORDERS[int(o)])
    try:
        Chem.SanitizeMol(m)
    except Exception:
        return False, False, False
    # RDKit's clean-up leaves N+ beside O- (nitro) or N- (azide), and charges nothing else
    charges = [(a.GetSymbol(), a.GetFormalCharge()) for a in m.GetAtoms() if a.GetFormalCharge()]
    cleaned = bool(charges) and all(c in (("N", 1), ("O", -1), ("N", -1)) for c in charges) \
        and ("N", 1) in charges
    return True, len(Chem.GetMolFrags(m)) == 1, cleaned


def main():
    mols = read_xyz(sys.argv[1])
    rows = open(sys.argv[2]).read().split("\n")[1:]
    rows = [r for r in rows if r]
    if len(rows) != len(mols):
        print(f"{len(mols)} molecules but {len(rows)} rows")
        return 1
    agree = cleanup = bad = 0
    for k, (el, row) in enumerate(zip(mols, rows)):
        f = row.split(",")
        valid, valid_edm, bonds = int(f[6]), int(f[7]), f[8]
        ok, one, charged = rdkit_says(el, bonds)
        if (valid_edm, valid) == (int(ok), int(ok and one)):
            agree += 1
        elif ok and charged and not valid_edm:
            cleanup += 1
            print(f"molecule {k}: RDKit's clean-up charged it and accepted it; diffuse counts an N over "
                  f"({''.join(el)}: {bonds})")
        else:
            bad += 1
            print(f"molecule {k}: diffuse valid {valid}, EDM valid {valid_edm}; RDKit sanitises {ok}, "
                  f"one fragment {one} ({''.join(el)}: {bonds})")
    print(f"checked {len(mols)}: agree {agree}, clean-up {cleanup}, disagree {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
