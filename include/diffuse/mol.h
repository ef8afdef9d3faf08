/* diffuse/mol.h - molecules: XYZ and SDF files, and EDM's rules for bonds, stability, validity,
 * uniqueness and novelty. Part of diffuse.h.
 *
 * A molecule here is what a 3-D molecule generator produces: atoms (an element and a position
 * in Angstrom each), optionally formal charges and bonds. The rules are those of EDM
 * (Hoogeboom, Satorras, Vignac, Welling 2022, "Equivariant Diffusion for Molecule Generation
 * in 3D", Sec. 5.1; code github.com/ehoogeboom/e3_diffusion_for_molecules, qm9/bond_analyze.py
 * and qm9/analyze.py), re-derived in src/mol/rules.c:
 *
 *   dfs_mol m;                                  // atoms from a sampler or a file
 *   dfs_mol_check c;
 *   dfs_mol_check_edm(&m, &c);                  // bond orders from distances, valences
 *   // atom stability over a set = sum c.n_stable / sum c.n_atoms,
 *   // molecule stability = molecules with c.stable / molecules,
 *   // validity = molecules with c.valid / molecules
 *   dfs_mol_perceive_bonds(&m);                 // m.bonds := EDM's bonds, for SDF and forms
 *   char *form;
 *   dfs_mol_canonical(&m, &form);               // equal <=> isomorphic (but see its limit)
 *   dfs_sdf_write("samples.sdf", &m, 1);
 *
 * Element numbers are atomic numbers 1..DFS_MOL_MAX_Z; every element of the periodic table is
 * read, and a caller that wants QM9's H, C, N, O, F filters after reading.
 */
#ifndef DIFFUSE_MOL_H
#define DIFFUSE_MOL_H

#include "diffuse/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Elements, molecules, sets of molecules (src/mol/mol.c)                                      */
/* ------------------------------------------------------------------------------------------ */

/* Atomic numbers 1 (H) .. 118 (Og). */
#define DFS_MOL_MAX_Z 118
/* Most atoms in one molecule that a reader accepts: a count above it is refused before anything
 * is allocated. (An SDF V2000 molecule has at most 999 atoms and 999 bonds by its format.) */
#define DFS_MOL_MAX_ATOMS 10000
/* Largest file a reader accepts. */
#define DFS_MOL_MAX_BYTES ((int64_t)1 << 30)

/* The symbol of element z ("H", "Cl"), or NULL for z outside 1..DFS_MOL_MAX_Z. */
const char *dfs_element_symbol(int z);
/* The atomic number of the symbol s[0..len) ("C", "Cl"; the case of the letters is ignored:
 * "CL" and "cl" are Cl), or 0 if it is no element. */
int dfs_element_z(const char *s, size_t len);

/* Bond orders as SDF V2000 writes them. Aromatic counts 1.5 toward a valence. */
enum { DFS_BOND_SINGLE = 1, DFS_BOND_DOUBLE = 2, DFS_BOND_TRIPLE = 3, DFS_BOND_AROMATIC = 4 };

typedef struct {
    int a, b;  /* atoms, 0-based, a != b */
    int order; /* DFS_BOND_SINGLE .. DFS_BOND_AROMATIC */
} dfs_mol_bond;

typedef struct dfs_mol {
    int n;               /* atoms */
    int *z;              /* (n) atomic numbers */
    double *pos;         /* (n, 3) positions in Angstrom */
    int *charge;         /* (n) formal charges (0 for XYZ files) */
    int n_bonds;
    dfs_mol_bond *bonds; /* (n_bonds), NULL when n_bonds is 0 */
    char *title;         /* XYZ comment line, SDF first header line; never NULL once made */
} dfs_mol;

/* Make m with n atoms (0 <= n <= DFS_MOL_MAX_ATOMS), every field zero, no bonds, title "".
 * DFS_ERR_ARG, DFS_ERR_NOMEM (m is then empty and safe to free). */
dfs_status dfs_mol_init(dfs_mol *m, int n);
/* Free what m owns and zero it (NULL or zeroed m: nothing). */
void dfs_mol_free(dfs_mol *m);
/* A deep copy of src into dst (dst is overwritten, not freed). */
dfs_status dfs_mol_copy(dfs_mol *dst, const dfs_mol *src);
/* Replace m's title by a copy of title. */
dfs_status dfs_mol_set_title(dfs_mol *m, const char *title);
/* Replace m's bonds by a copy of bonds[0..n). DFS_ERR_ARG (message set) for an atom outside
 * 0..n-1, a bond of an atom to itself, the same pair twice, an order outside 1..4. */
dfs_status dfs_mol_set_bonds(dfs_mol *m, const dfs_mol_bond *bonds, int n);

/* Molecules in the order of the file. */
typedef struct dfs_mol_set {
    int n;
    dfs_mol *mols; /* (n) */
    int cap;       /* entries allocated (internal) */
} dfs_mol_set;

/* Move *m to the end of s (s owns it afterwards and *m is zeroed); DFS_ERR_NOMEM leaves *m as
 * it was. */
dfs_status dfs_mol_set_push(dfs_mol_set *s, dfs_mol *m);
void dfs_mol_set_free(dfs_mol_set *s);

/* ------------------------------------------------------------------------------------------ */
/* Files (src/mol/xyz.c, src/mol/sdf.c)                                                         */
/* ------------------------------------------------------------------------------------------ */
/*
 * Every reader fills a fresh set (*out is overwritten, not freed; empty on failure) and fails
 * with DFS_ERR_FORMAT and a message "FILE: line N: what is wrong" for: a truncated molecule, a
 * count that does not match the lines that follow, a field that is not a number, a coordinate
 * that is NaN or infinite (nan, inf and hex numbers are not accepted), an unknown element, a
 * count above DFS_MOL_MAX_ATOMS (refused before allocating), a NUL byte. For an end of file
 * inside a molecule N is the line that is missing (one past the last). Lines may end in LF or
 * CRLF; empty lines at the end of the file are ignored, and an empty file is a set of no
 * molecules. DFS_ERR_IO for a file that cannot be read, DFS_ERR_NOMEM. The _parse forms read
 * text[0..len) (no NUL needed at the end) and name it `name` in messages. Writers build the
 * whole file and write it atomically (dfs_write_atomic), so that a reader never sees half a
 * file; DFS_ERR_ARG (message set) for a molecule they cannot write.
 */

/* XYZ, one frame per molecule: a line with the atom count, a comment line (the title), then
 * count lines "Sym x y z" (Sym may also be an atomic number; columns after z are ignored, as
 * in extended XYZ). Frames follow each other with no blank lines between them. */
dfs_status dfs_xyz_read(const char *path, dfs_mol_set *out);
dfs_status dfs_xyz_parse(const char *name, const char *text, size_t len, dfs_mol_set *out);
/* Coordinates with 6 decimals ("%.6f"); charges and bonds are not written (XYZ has neither).
 * DFS_ERR_ARG for a title with a line break, a non-finite coordinate, an unknown element. */
dfs_status dfs_xyz_write(const char *path, const dfs_mol *mols, int n);

/* SDF: MDL V2000 mol blocks (the CTfile format, BIOVIA 2020), each ended by "$$$$" (the last
 * one may end at "M  END" alone, as a .mol file does). Read: the title (first header line),
 * the counts line (fixed columns: atoms 1-3, bonds 4-6; a V3000 block is refused), the atom
 * block (x, y, z in columns 1-30, the symbol in 32-34, the charge code in 37-39: 1..7 = +3,
 * +2, +1, radical (0), -1, -2, -3), the bond block (atoms in 1-3 and 4-6, type in 7-9: 1, 2,
 * 3, 4 = aromatic; the query types 5..8 are refused), and "M  CHG" lines, which replace the
 * atom block's charges as the format says. Other property lines and data items are skipped. */
dfs_status dfs_sdf_read(const char *path, dfs_mol_set *out);
dfs_status dfs_sdf_parse(const char *name, const char *text, size_t len, dfs_mol_set *out);
/* Writes m->bonds (the caller's, e.g. from dfs_mol_perceive_bonds), coordinates with 4 decimals
 * (%10.4f), charges both in the atom block (-3..3) and as "M  CHG" lines. The output does not
 * depend on the time or the machine. DFS_ERR_ARG for more than 999 atoms or bonds, a coordinate
 * that does not fit the 10 columns (outside -9999.9999..99999.9999), a charge outside -15..15,
 * bad bonds (as dfs_mol_set_bonds), a title longer than 80 characters or with a line break. */
dfs_status dfs_sdf_write(const char *path, const dfs_mol *mols, int n);

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_MOL_H */
