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
#include "diffuse/model.h"

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
 * DFS_ERR_ARG for a title with a line break, a non-finite coordinate, a coordinate too large to
 * read back (its "%.6f" longer than 63 characters, about |x| >= 1e55), an unknown element. */
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

/* ------------------------------------------------------------------------------------------ */
/* EDM's rules (src/mol/rules.c)                                                                */
/* ------------------------------------------------------------------------------------------ */

/* EDM's bond order of atoms of elements za and zb at distance d Angstrom (get_bond_order in
 * qm9/bond_analyze.py): with l1, l2, l3 its single, double and triple bond lengths in pm and
 * margins 10, 5, 3 pm, 0 if 100 d >= l1 + 10 or there is no l1 for the pair, else 3 if
 * 100 d < l2 + 5 and 100 d < l3 + 3, else 2 if 100 d < l2 + 5, else 1. As in EDM the double
 * bond length of C and S is looked up from C only: (C, S) can give 2, (S, C) never does.
 * d is used in double precision; EDM's float32 distances can fall on the other side of a
 * threshold when d is within about 1e-7 relative of it. */
int dfs_mol_bond_order(int za, int zb, double d);
/* Whether `valence` (the sum of an atom's bond orders) is allowed for element z by EDM's
 * allowed_bonds: H 1, B 3, C 4, N 3, O 2, F 1, Al 3, Si 4, P 3 or 5, S 4, Cl 1, As 3, Br 1,
 * I 1, Hg 1 or 2, Bi 3 or 5. Elements not in that table allow nothing. */
int dfs_mol_valence_allowed(int z, int valence);

/* Replace m's bonds by EDM's: every pair i < j with dfs_mol_bond_order(z[i], z[j], |p_i - p_j|)
 * > 0 (the order check_stability uses), in that order. */
dfs_status dfs_mol_perceive_bonds(dfs_mol *m);

typedef struct {
    int n_atoms;
    int n_stable;    /* atoms whose valence is allowed */
    int stable;      /* every atom stable (EDM's molecule stability; true for 0 atoms) */
    int n_fragments; /* connected parts of the bond graph */
    int n_over;      /* atoms whose valence is above the largest allowed (or with none allowed) */
    int valid;       /* one fragment, no atom over its valence (at least one atom) */
    int valid_edm;   /* no atom over its valence, any number of fragments (at least one atom) */
} dfs_mol_check;

/* EDM's check_stability (qm9/analyze.py) on m's positions: the valence of an atom is the sum of
 * dfs_mol_bond_order over all other atoms; m->bonds and charges are not used (EDM ignores
 * formal charges, so NH4+ is unstable). Over a set of samples, EDM's atom stability is
 * sum n_stable / sum n_atoms and its molecule stability the share of stable molecules.
 * Validity reads "allowed" as RDKit does, which EDM's validity calls (rdkit_functions.py:
 * build_molecule, then SanitizeMol): an atom may have fewer bonds than its valence, as RDKit
 * completes it with implicit hydrogens, but not more ("Explicit valence ... is greater than
 * permitted"). valid is this project's validity (issue 17): one connected fragment with no atom
 * over. valid_edm is EDM's: no atom over, in any number of fragments (EDM keeps the largest).
 * Not reproduced: RDKit's clean-up, which rewrites a nitro group N(=O)=O or an azide as charged
 * forms and then accepts them; here their N counts as over (valence 5 or 4). A molecule with no
 * atoms is neither. The largest allowed valences (H 1, C 4, N 3, O 2, F 1) are RDKit's for these
 * five elements; for the others EDM's table is used. */
dfs_status dfs_mol_check_edm(const dfs_mol *m, dfs_mol_check *out);
/* The same on m's own bonds (from a file): valences in half units (aromatic 3, single 2, double
 * 4, triple 6), compared with twice the allowed valences. Positions are not used. With aromatic
 * bonds n_over and the validities are not RDKit's reading, which kekulises first: a fused-ring
 * C with three aromatic bonds (4.5) or a pyrrole N-H (3 + 3 + 2) counts as over here. */
dfs_status dfs_mol_check_bonds(const dfs_mol *m, dfs_mol_check *out);

/* A canonical form of m's labelled bond graph (element and formal charge of each atom, m->bonds
 * with their orders; positions not used) as a malloc'ed string the caller frees: two molecules
 * get the same string exactly when their labelled graphs are isomorphic. It is found by colour
 * refinement (1-dimensional Weisfeiler-Lehman with bond orders) and individualisation, as in
 * McKay's nauty (McKay and Piperno 2014, "Practical graph isomorphism, II"), branching only once
 * over atoms that are interchangeable twins (e.g. the H atoms of one CH3). The string starts
 * with "v1:" and lists the atoms (symbol, charge) in canonical order, then the bonds.
 * Limit: when the search exceeds DFS_MOL_CANON_MAX_NODES (highly symmetric graphs), the string
 * starts with "wl:" and is the refinement's colour history only; isomorphic graphs still get
 * equal strings, but some non-isomorphic ones may too (1-WL cannot tell apart e.g. regular
 * graphs with the same labels, such as cyclohexane and two cyclopropanes).
 * The search is an isomorphism invariant, so two isomorphic graphs always take the same path. */
#define DFS_MOL_CANON_MAX_NODES 20000
dfs_status dfs_mol_canonical(const dfs_mol *m, char **form);

/* EDM's uniqueness and novelty (Sec. 5.1, rdkit_functions.py: over the valid molecules, the
 * share of distinct forms; over those, the share not in the training set), on canonical forms.
 * NULL entries (e.g. invalid molecules) are skipped. *n_unique = distinct non-NULL forms;
 * first (n, may be NULL) gets 1 at the first occurrence of each. */
dfs_status dfs_mol_unique(const char *const *forms, int n, int *n_unique, uint8_t *first);
/* *n_novel = entries of forms (non-NULL, counted with repeats) not among train[0..n_train);
 * novel (n, may be NULL) gets 1 for each of them. */
dfs_status dfs_mol_novel(const char *const *forms, int n, const char *const *train, int n_train,
                         int *n_novel, uint8_t *novel);

/* The root-mean-square deviation in Angstrom of two conformations of the same atoms after
 * centring and the best rotation (Kabsch 1976; reflections are not allowed), the rotation from
 * LAPACK's SVD (src/mol/align.c). permute = 0: atom i of a is atom i of b (their elements must
 * agree); 1: the least RMSD over every matching of b's atoms to a's of the same element (up to
 * a million matchings, in a fixed order: for small molecules). DFS_ERR_ARG for different
 * atom counts or formulas, DFS_ERR_NAN if the SVD fails. */
dfs_status dfs_mol_rmsd(const dfs_mol *a, const dfs_mol *b, int permute, double *rmsd);

/* ------------------------------------------------------------------------------------------ */
/* Generating molecules: EDM on the diffusion core (src/mol/model.c)                            */
/* ------------------------------------------------------------------------------------------ */
/*
 * EDM (Hoogeboom et al. 2022): a molecule of a atoms is a row of M atom slots of
 * DFS_MOL_WIDTH floats each, (x, y, z, h), padded to the model's M by the core's padding mask.
 * x is the position in Angstrom, centred (zero centre of mass, the core's projection
 * dfs_project_zero_com keeps noise and predictions there); h is the one-hot type among H, C,
 * N, O, F times 0.25 and the atomic number times 0.1 (EDM's normalize_factors [1, 4, 10] and
 * its "charges", which for QM9 are the atomic numbers; the formal charges of the training set
 * are all 0 by the filter). Diffusion runs jointly on x and h with eps prediction, EDM's
 * polynomial_2 schedule (poly2, T = 1000) and the EGNN of include/diffuse/nn.h as the denoiser,
 * fed the time (t+1)/T. The number of atoms of a sample is drawn from the training set's
 * histogram. A sample's types are the argmax of the one-hot part.
 */
#define DFS_MOL_TYPES 5               /* H, C, N, O, F */
#define DFS_MOL_WIDTH (3 + DFS_MOL_TYPES + 1)
/* The atomic number of type k (1, 6, 7, 8, 9), and the type of atomic number z (-1 if none). */
int dfs_mol_type_z(int k);
int dfs_mol_z_type(int z);

typedef struct {
    dfs_egnn_config net;        /* features = DFS_MOL_TYPES + 1 (set by the model) */
    dfs_schedule_kind schedule; /* poly2 */
    int T;                      /* 1000 */
} dfs_mol_config;
void dfs_mol_config_default(dfs_mol_config *c);

typedef struct {
    dfs_mol_config cfg;
    int M;                   /* atom slots: the largest training molecule */
    long *sizes;             /* (M + 1): training molecules with each number of atoms */
    dfs_egnn *net;
    dfs_schedule sched;
    dfs_sampling_recipe sampling; /* .set = 0: ancestral sampling, all T steps */
    int max_batch;           /* molecules per forward pass per thread (64) */
} dfs_mol_model;

/* A fresh model for the training molecules set[0..n): every atom H, C, N, O or F, 1..
 * DFS_MOL_MAX_SLOTS atoms each (DFS_ERR_ARG naming the molecule otherwise). */
#define DFS_MOL_MAX_SLOTS 256
dfs_status dfs_mol_model_new(dfs_mol_model **out, const dfs_mol_config *c, const dfs_mol *set,
                             int n, uint64_t seed);
void dfs_mol_model_free(dfs_mol_model *m);
/* Checkpoints: the format and checks of dfs_checkpoint_save / _load with "egnn" and
 * "molecules" metadata; a file of another kind of model is refused with DFS_ERR_FORMAT and a
 * message that says what it is. */
dfs_status dfs_mol_save(const char *path, const dfs_mol_model *m, const dfs_train_state *st,
                        const char *train_json, dfs_ckpt_kind kind);
dfs_status dfs_mol_load(const char *path, dfs_mol_model **m, dfs_train_state *st,
                        int *has_optim, char **train_json);

/* One molecule as a model row (M * DFS_MOL_WIDTH floats) and its padding mask (the same
 * count of bytes): positions centred on their mean, types encoded as above, padding 0.
 * DFS_ERR_ARG for an element other than H, C, N, O, F or more than M atoms. */
dfs_status dfs_mol_encode(const dfs_mol_model *m, const dfs_mol *mol, float *row, uint8_t *present);
/* The first `atoms` slots of a row as a molecule (out is made here; free with dfs_mol_free):
 * the positions, each atom's type the largest of its one-hot values. */
dfs_status dfs_mol_decode(const dfs_mol_model *m, const float *row, int atoms, dfs_mol *out);

/* Training: EDM's loss (the mean squared error of the predicted eps over the present entries,
 * x and h together), AdamW with EMA; molecules in a shuffled order per epoch, as the image
 * trainer. The trainer keeps references to m, set and st. */
typedef struct {
    int batch;            /* molecules per step (64) */
    dfs_adamw_config opt; /* lr 1e-3, warm-up 100, EMA 0.999, clip 1 */
} dfs_mol_train_config;
void dfs_mol_train_config_default(dfs_mol_train_config *c);
typedef struct dfs_mol_trainer dfs_mol_trainer;
dfs_status dfs_mol_trainer_new(dfs_mol_trainer **out, dfs_mol_model *m, const dfs_mol_train_config *c,
                               const dfs_mol *set, int n, dfs_train_state *st);
void dfs_mol_trainer_free(dfs_mol_trainer *t);
void dfs_mol_trainer_set_lr(dfs_mol_trainer *t, float lr);
/* One step; *loss (may be NULL) gets the loss. Statuses as dfs_trainer_step. */
dfs_status dfs_mol_trainer_step(dfs_mol_trainer *t, float *loss);

/* Sampling n molecules. With a fragment, its atoms fill the first slots of every sample and are
 * held fixed through the core's known entries (positions and types; DiffSBDD's and DiffLinker's
 * conditioning), the model adding the rest: the fragment is centred for sampling and every
 * sample moved back, its fragment atoms copied from the fragment exactly. */
typedef struct {
    int n;                      /* molecules */
    int atoms;                  /* atoms per molecule, 1..M; 0: drawn from the training sizes
                                   (at least the fragment's) */
    dfs_sampler_config sampler; /* kind, steps, eta, variance; the rest is set here */
    const dfs_mol *fragment;    /* NULL, or atoms of H, C, N, O, F held fixed */
    int raw;                    /* 1: the raw weights instead of the EMA ones */
    int group;                  /* molecules per sampler run (0: 256) */
    int *sizes;                 /* NULL, or (n): gets the atom counts before the first run */
    /* called after each step of each group with the rows x (group, M * DFS_MOL_WIDTH) and the
     * group's first position in the run (for progress): molecule 0 is the first row of the
     * group at position 0 (for trajectories); the others run smallest first, so a group's rows
     * are not out[first..] */
    void (*cb)(void *user, int first, int i, int steps, const float *x, int rows);
    void *cb_user;
} dfs_mol_request;
void dfs_mol_request_default(dfs_mol_request *r);
/* out (r->n, zeroed) gets the molecules. Random
 * stream: the sizes first (one dfs_rng_below per molecule), then each group's sampler run.
 * DFS_ERR_ARG for a bad request; DFS_ERR_NOMEM; DFS_ERR_NAN when a sample is not finite. */
dfs_status dfs_mol_sample(dfs_mol_model *m, const dfs_mol_request *r, dfs_rng *rng, dfs_mol *out);

/* ------------------------------------------------------------------------------------------ */
/* Pictures: ball and stick (src/mol/render.c)                                                 */
/* ------------------------------------------------------------------------------------------ */
/*
 * Molecules drawn with the render layer's scene rasteriser (dfs_scene_render): every atom a
 * ball in its Jmol (CPK) colour, every bond a stick coloured half by half after its atoms
 * (double and triple bonds as two and three thinner parallel sticks side by side on screen,
 * aromatic ones as a stick with a dashed one beside it), shaded, antialiased and darkened with
 * depth. Bonds are m->bonds, or EDM's bonds from the distances (dfs_mol_perceive_bonds) when a
 * molecule has none. Each molecule is seen along its principal axes (dfs_mol_view_axes) and
 * scaled to fill its panel, but never beyond DFS_MOL_RENDER_MIN_SPAN, so that a water
 * molecule is not drawn as large as a sugar. Pictures are deterministic: the same molecules
 * give the same PNG bytes.
 *
 *   dfs_mol_render_grid("mols.png", set.mols, set.n, NULL, 4, 240, NULL);
 */

/* The Jmol colour of element z in rgb and its ball radius in Angstrom (0.23 of its van der
 * Waals radius, Bondi 1964): H white, C grey, N blue, O red, F green, S yellow, P orange,
 * Cl green, Br dark red, I violet; any other element (or z outside 1..DFS_MOL_MAX_Z) a
 * blue-grey ball of radius 0.40. */
float dfs_mol_atom_style(int z, uint8_t rgb[3]);
/* The least a panel spans inside its margins, in Angstrom: a molecule smaller than that is
 * drawn at the scale of one that size instead of filling the panel. */
#define DFS_MOL_RENDER_MIN_SPAN 4.0f
/* Smallest and largest panel side in pixels. */
#define DFS_MOL_RENDER_MIN_PX 32
#define DFS_MOL_RENDER_MAX_PX 4096
/* The view along m's principal axes, as a rotation for dfs_scene_view.rot (row-major): its rows
 * are the eigenvectors of the covariance of the atom positions, largest spread first (screen
 * x), smallest last (toward the viewer), the third row the cross product of the first two so
 * that rot is a proper rotation (a mirror would show the other enantiomer). Each of the first
 * two rows has its largest component positive, so the view does not depend on the eigensolver's
 * signs. Fewer than 2 atoms, or non-finite positions: the identity. */
void dfs_mol_view_axes(const dfs_mol *m, float rot[9]);
/* Draw m into one square panel rgb (px, px, 3), row-major, the caller's: seen through rot (NULL:
 * dfs_mol_view_axes(m)), centred and scaled to fit with a margin of px / 16. xy (m->n, 2), if
 * not NULL, gets the pixel position of each atom's centre (x right, y down; pixel (i, j) covers
 * [i, i+1) x [j, j+1)). A molecule with no atoms is an empty panel. DFS_ERR_ARG (message set)
 * for px outside DFS_MOL_RENDER_MIN_PX..DFS_MOL_RENDER_MAX_PX, a position that is not finite;
 * DFS_ERR_NOMEM. */
dfs_status dfs_mol_render_panel(const dfs_mol *m, const float *rot, int px, uint8_t *rgb,
                                float *xy);
/* Write mols[0..n) as one PNG (atomically): a grid of min(cols, n) columns and as many rows as
 * needed of px x px panels, in order along the rows, on white with 1-pixel light grey frames.
 * captions NULL: no captions; else n strings (NULL or "" leaves a panel's blank), each set in
 * font (NULL: DFS_DEFAULT_FONT of diffuse/render.h) centred in a strip under its panel, in a
 * smaller size where it would be wider than the panel and clipped if still too wide.
 * DFS_ERR_ARG (message set, no file written) for n < 1, cols < 1, px out of range, a grid
 * larger than a PNG allows (65536 pixels a side), a position that is not finite; DFS_ERR_IO
 * or DFS_ERR_FORMAT from the font (missing, unusable) or the write; DFS_ERR_NOMEM. */
dfs_status dfs_mol_render_grid(const char *path, const dfs_mol *mols, int n,
                               const char *const *captions, int cols, int px, const char *font);
/* One molecule's trajectory (e.g. the states of a denoising run) as one row of panels: every
 * frame is seen through the same view, dfs_mol_view_axes of the last frame (the finished
 * molecule), at the same scale and centre, fitted to hold all the frames; so a change between
 * two panels is a motion of the atoms. Bonds are each frame's own, or perceived per frame
 * (they appear as the atoms settle). Frames may differ in atoms and elements. captions, font,
 * px, errors: as dfs_mol_render_grid. */
dfs_status dfs_mol_render_trajectory(const char *path, const dfs_mol *frames, int nframes,
                                     const char *const *captions, int px, const char *font);

/* ------------------------------------------------------------------------------------------ */
/* A QM9-like training set from Debian packages (src/mol/build.c; issue 17)                     */
/* ------------------------------------------------------------------------------------------ */
/*
 * No Debian package ships QM9 (Ramakrishnan et al. 2014), so dfs_moldata_build gathers small
 * molecules with 3-D coordinates from four packages, keeps those a QM9-like model can learn
 * and drops repeats:
 *
 *   dfs_moldata_options o;
 *   dfs_moldata_options_default(&o);            // every source, obabel from PATH
 *   dfs_moldata d;
 *   dfs_moldata_build(&d, &o);                  // minutes: obabel --gen3d for the SMILES
 *   dfs_moldata_write(&d, "data/molecules");    // molecules.xyz, molecules.sdf, sources.json
 *   dfs_moldata_free(&d);
 *
 * The filter (dfs_moldata_filter): only H, C, N, O, F; at most 9 heavy atoms; every formal
 * charge 0; one fragment (the source's bonds where it has them, else EDM's perceived ones);
 * hydrogens explicit and coordinates in 3-D. Repeats are found by dfs_mol_canonical on EDM's
 * perceived bonds (the form that novelty uses), and the first molecule of a form is kept, in
 * the order of the sources below and, within one, of its files (sorted by path) or entries.
 */

/* CML (Chemical Markup Language, Murray-Rust and Rzepa 1999, xml-cml.org/schema) as
 * chemical-structures-data and Avogadro write it, read with libxml2: the first <molecule>
 * element (the root or its first descendant of that name, in any or no namespace), its
 * atomArray/atom elements (id, elementType, x3 y3 z3 or else x2 y2, formalCharge,
 * hydrogenCount) and bondArray/bond elements (atomRefs2 "id1 id2"; order 1|S, 2|D, 3|T, A for
 * aromatic, none read as single). The title is the <molecule>'s <name>, else its id, else "".
 * Refused with DFS_ERR_FORMAT and "FILE: line N: ...": XML that is not well-formed (libxml2's
 * message), no <molecule>, an atomArray in CML's array form, an atom without id or with an id
 * used twice, an elementType that is no element (such as the dummy "Du"), coordinates that
 * are not finite numbers or only some of x3/y3/z3, a bond to an unknown id or to itself, the
 * same bond twice, an unknown order, more than DFS_MOL_MAX_ATOMS atoms. The network and
 * external entities are never loaded. DFS_ERR_IO for a file that cannot be read. */
typedef struct {
    int dim;        /* 3: every atom has x3 y3 z3; 2: x2 y2 only (z = 0); 0: no coordinates */
    int implicit_h; /* hydrogens declared by hydrogenCount beyond the explicit H atoms bonded
                       (capped at INT_MAX) */
} dfs_cml_info;
dfs_status dfs_cml_read(const char *path, dfs_mol *m, dfs_cml_info *info);
dfs_status dfs_cml_parse(const char *name, const char *text, size_t len, dfs_mol *m,
                         dfs_cml_info *info);

/* The sources, in the order in which they are read and deduplicated. */
typedef enum {
    DFS_MOLSRC_CHEMICAL_STRUCTURES, /* chemical-structures-data: every GROUP/NAME.cml in
                                       /usr/share/chemical-structures */
    DFS_MOLSRC_AVOGADRO,            /* libavogadro-data: every .cml at any depth in
                                       /usr/share/avogadro2/molecules */
    DFS_MOLSRC_G2,                  /* python3-ase: the G2 set (Curtiss et al. 1997), ASE's
                                       /usr/lib/python3/dist-packages/ase/collections/g2.json;
                                       no bonds, so EDM's perceived ones */
    DFS_MOLSRC_NCI,                 /* rdkit-data: /usr/share/RDKit/Data/NCI/first_5K.smi,
                                       SMILES made 3-D by obabel --gen3d */
    DFS_MOLSRC_COUNT
} dfs_molsrc;
/* "chemical-structures", "avogadro", "g2", "nci" */
extern const char *const dfs_molsrc_names[DFS_MOLSRC_COUNT];
/* The Debian package of each ("chemical-structures-data", ...). */
extern const char *const dfs_molsrc_packages[DFS_MOLSRC_COUNT];
/* The source named name[0..len), or -1. */
int dfs_molsrc_find(const char *name, size_t len);

/* Why a molecule is not in the set; the first reason that applies, in this order. */
typedef enum {
    DFS_MOLDROP_NONE = 0,   /* kept by the filter */
    DFS_MOLDROP_UNREADABLE, /* the file, entry or SMILES could not be read (a warning says why) */
    DFS_MOLDROP_ELEMENT,    /* an element other than H, C, N, O, F */
    DFS_MOLDROP_HEAVY,      /* more than max_heavy atoms other than H */
    DFS_MOLDROP_CHARGED,    /* a formal charge other than 0 */
    DFS_MOLDROP_NO_3D,      /* no 3-D coordinates: 2-D or none in the file, obabel's --gen3d
                               left every atom at the origin, or two atoms closer than 0.5 A */
    DFS_MOLDROP_IMPLICIT_H, /* hydrogens counted but not given as atoms (CML hydrogenCount) */
    DFS_MOLDROP_FRAGMENTS,  /* more than one fragment (or no atoms) */
    DFS_MOLDROP_OPEN_SHELL, /* g2: a radical or a lone atom, which ASE marks with magnetic
                               moments (initial_magmoms); QM9 has closed shells only */
    DFS_MOLDROP_DUPLICATE,  /* the form of a molecule kept before */
    DFS_MOLDROP_COUNT
} dfs_moldrop;
/* "kept", "unreadable", "element", "heavy-atoms", "charged", "no-3d", "implicit-h",
 * "fragments", "open-shell", "duplicate" */
extern const char *const dfs_moldrop_names[DFS_MOLDROP_COUNT];

/* The filter on one molecule: *why = DFS_MOLDROP_NONE, or the first of ELEMENT, HEAVY, CHARGED,
 * NO_3D (two atoms closer than 0.5 A, which includes every atom at the origin), FRAGMENTS that
 * applies. Fragments are counted on m->bonds when has_bonds (a file's bonds), else on EDM's
 * perceived bonds (dfs_mol_check_edm); one atom is one fragment, no atoms none. DFS_ERR_ARG
 * (bad bonds), DFS_ERR_NOMEM. */
dfs_status dfs_moldata_filter(const dfs_mol *m, int has_bonds, int max_heavy, dfs_moldrop *why);

typedef struct {
    unsigned sources;   /* bit (1u << s) for each dfs_molsrc s to read; 0 reads none */
    int limit;          /* per source: only the first `limit` files, entries or SMILES lines
                           (0 = all) */
    int max_heavy;      /* 9 */
    const char *root;   /* prepended to the packages' paths (a test's copy); NULL or "" = "" */
    const char *obabel; /* the program run for the SMILES; "obabel" (found through PATH) */
    const char *gen3d;  /* obabel's --gen3d speed; "med" (Open Babel 3.1.1's "fast" and
                           "fastest" return before copying the coordinates: all zeros) */
    dfs_progress_fn progress; /* the gen3d pass: molecules done of those sent; may be NULL */
    void *progress_user;
} dfs_moldata_options;
void dfs_moldata_options_default(dfs_moldata_options *o);

typedef struct {
    int read;                        /* files, entries or SMILES lines read */
    int dropped[DFS_MOLDROP_COUNT];  /* by reason; dropped[DFS_MOLDROP_NONE] is unused (0) */
    int filtered;                    /* passed the filter: read - unreadable - the filter's drops */
    int kept;                        /* in the set: filtered - duplicates */
    int file_bonds;                  /* of kept, how many carry the source's bonds (the rest
                                        EDM's perceived ones) */
    double seconds;                  /* time spent on this source */
} dfs_molsrc_count;

typedef struct {
    dfs_mol_set mols;  /* the set, titles "SOURCE NAME" (NAME has no spaces, and the title at
                          most 80 characters: a CML file's path below the package folder
                          without .cml, G2's name, "ID:SMILES" for NCI with the line's ID) */
    int *source;       /* (mols.n) the dfs_molsrc of each */
    char **forms;      /* (mols.n) dfs_mol_canonical on EDM's perceived bonds, all distinct */
    dfs_molsrc_count count[DFS_MOLSRC_COUNT];
    unsigned sources;  /* the sources read (the options' mask) */
    int max_heavy;
    char *root;        /* the options' root, or NULL */
    char *obabel_version; /* `obabel -V`'s first line when NCI was read, else NULL */
    char *gen3d;          /* the --gen3d speed used when NCI was read, else NULL */
} dfs_moldata;

/* Build the set. Each source's files are read from the packages' paths under o->root; a
 * source whose file or folder is missing fails with DFS_ERR_IO naming the path and the Debian
 * package to install. A file that cannot be read is counted (DFS_MOLDROP_UNREADABLE) and its
 * message logged as a warning, once per file. NCI: the SMILES lines go through one obabel pass
 * without coordinates (-h: explicit hydrogens) that the filter sees, then the survivors through
 * `obabel --gen3d SPEED -h`; obabel missing (DFS_ERR_IO, naming the package openbabel), killed
 * or exiting non-zero (DFS_ERR_IO with its last message), or writing what the SDF reader
 * refuses for every molecule, fails the build. Open Babel 3.1.1 seeds --gen3d from the clock
 * (rand.cpp, OBRandom::TimeSeed) and has no option to fix it, so NCI's coordinates, unlike
 * everything else here, differ between builds. *d is zeroed on failure. DFS_ERR_ARG for bad
 * options; DFS_ERR_NOMEM. */
dfs_status dfs_moldata_build(dfs_moldata *d, const dfs_moldata_options *o);
/* Write DIR/molecules.xyz (one frame per molecule, the title as comment), DIR/molecules.sdf
 * (V2000, with the source's bonds or EDM's perceived ones) and, last, DIR/sources.json (the
 * filter, and each source's package, counts and drops by reason), each atomically. DIR is
 * created if missing (not its parents); existing files of those names are replaced. */
dfs_status dfs_moldata_write(const dfs_moldata *d, const char *dir);
void dfs_moldata_free(dfs_moldata *d);

#ifdef __cplusplus
}
#endif
#endif /* DIFFUSE_MOL_H */
