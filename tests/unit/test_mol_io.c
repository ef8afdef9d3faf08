/* test_mol_io.c - molecule files (src/mol): XYZ and SDF round trips (atoms, coordinates to the
 * printed precision, bonds, charges, several molecules), hand-written files as other programs
 * write them (CRLF, charges in the atom block and in M  CHG lines, data items, a .mol file
 * with no "$$$$"), every bad file refused with its file name and line number, and the writers'
 * refusals and atomic writes. */
#include "diffuse.h"
#include "check.h"

#include <dirent.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static const char *P(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static const char *write_text(const char *name, const char *data, size_t n) {
    const char *p = P(name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return p;
}
#define WRITE(name, text) write_text(name, text, strlen(text))

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* A molecule from a list of (z, x, y, z) with a title. */
static dfs_mol make(const char *title, int n, const double (*atoms)[4]) {
    dfs_mol m;
    if (dfs_mol_init(&m, n) || dfs_mol_set_title(&m, title)) {
        fprintf(stderr, "dfs_mol_init: %s\n", dfs_last_error());
        exit(2);
    }
    for (int i = 0; i < n; i++) {
        m.z[i] = (int)atoms[i][0];
        for (int d = 0; d < 3; d++) m.pos[3 * i + d] = atoms[i][1 + d];
    }
    return m;
}

static const double WATER[3][4] = {
    {8, 0.0, 0.0, 0.1173}, {1, 0.0, 0.7572, -0.4692}, {1, 0.0, -0.7572, -0.4692}};
static const double AMMONIUM[5][4] = {{7, 0, 0, 0},
                                      {1, 0.5972, 0.5972, 0.5972},
                                      {1, -0.5972, -0.5972, 0.5972},
                                      {1, -0.5972, 0.5972, -0.5972},
                                      {1, 0.5972, -0.5972, -0.5972}};

/* Same atoms, positions within tol, charges, bonds and title (when with_extra). */
static int same_mol(const dfs_mol *a, const dfs_mol *b, double tol, int with_extra) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
        if (a->z[i] != b->z[i]) return 0;
        for (int d = 0; d < 3; d++)
            if (!(fabs(a->pos[3 * i + d] - b->pos[3 * i + d]) <= tol)) return 0;
    }
    if (!with_extra) return 1;
    if (strcmp(a->title, b->title) || a->n_bonds != b->n_bonds) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->charge[i] != b->charge[i]) return 0;
    for (int j = 0; j < a->n_bonds; j++)
        if (a->bonds[j].a != b->bonds[j].a || a->bonds[j].b != b->bonds[j].b ||
            a->bonds[j].order != b->bonds[j].order)
            return 0;
    return 1;
}

/* Files in tmpdir whose name contains ".tmp." (left over from an atomic write). */
static int leftovers(void) {
    DIR *d = opendir(tmpdir);
    int k = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        k += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return k;
}

/* ---- elements ---------------------------------------------------------------------------- */

static void test_elements(void) {
    CHECK(dfs_element_z("H", 1) == 1 && dfs_element_z("C", 1) == 6 && dfs_element_z("N", 1) == 7 &&
              dfs_element_z("O", 1) == 8 && dfs_element_z("F", 1) == 9,
          "H C N O F");
    CHECK(dfs_element_z("Cl", 2) == 17 && dfs_element_z("CL", 2) == 17 &&
              dfs_element_z("cl", 2) == 17 && dfs_element_z("Xe", 2) == 54 &&
              dfs_element_z("Og", 2) == 118,
          "Cl, CL, cl, Xe, Og");
    CHECK(dfs_element_z("Xx", 2) == 0 && dfs_element_z("", 0) == 0 &&
              dfs_element_z("Cla", 3) == 0 && dfs_element_z("D", 1) == 0,
          "no such elements");
    int ok = 1;
    for (int z = 1; z <= DFS_MOL_MAX_Z; z++) {
        const char *s = dfs_element_symbol(z);
        ok &= s && dfs_element_z(s, strlen(s)) == z;
    }
    CHECK(ok, "symbol and number agree for 1..%d", DFS_MOL_MAX_Z);
    CHECK(!dfs_element_symbol(0) && !dfs_element_symbol(DFS_MOL_MAX_Z + 1), "out of range");
}

/* ---- XYZ --------------------------------------------------------------------------------- */

static void test_xyz_round_trip(void) {
    dfs_mol m[3];
    m[0] = make("water, frame 1", 3, WATER);
    m[1] = make("", 5, AMMONIUM);
    m[2] = make("empty frame", 0, NULL);
    m[1].pos[0] = -123.4567891234; /* rounds to 6 decimals */
    m[1].pos[1] = 1e-9;
    const char *p = P("three.xyz");
    CHECK(dfs_xyz_write(p, m, 3) == DFS_OK, "write: %s", dfs_last_error());
    CHECK(leftovers() == 0, "no temporary file is left");
    dfs_mol_set s;
    dfs_status st = dfs_xyz_read(p, &s);
    CHECK(st == DFS_OK && s.n == 3, "read: %s, %d molecules", dfs_last_error(), s.n);
    if (st == DFS_OK && s.n == 3) {
        for (int k = 0; k < 3; k++) {
            CHECK(same_mol(&m[k], &s.mols[k], 5e-7, 0), "frame %d comes back", k);
            CHECK(!strcmp(m[k].title, s.mols[k].title), "title %d: \"%s\"", k,
                  s.mols[k].title);
            CHECK(s.mols[k].n_bonds == 0, "no bonds in XYZ");
        }
        CHECK(s.mols[1].pos[0] == -123.456789 && s.mols[1].pos[1] == 0.0,
              "6 decimals: %.10f %.10g", s.mols[1].pos[0], s.mols[1].pos[1]);
    }
    char *text = read_text(p);
    const char *want = "3\nwater, frame 1\nO  0.000000 0.000000 0.117300\n";
    CHECK(text && !strncmp(text, want, strlen(want)), "the text: %.60s", text ? text : "(none)");
    dfs_mol_set_free(&s);
    for (int k = 0; k < 3; k++) dfs_mol_free(&m[k]);
}

/* An XYZ as other programs write it: CRLF, tabs, atomic numbers, extra columns (extended
 * XYZ), exponents, blank lines at the end. */
static void test_xyz_foreign(void) {
    const char *p = WRITE("foreign.xyz", "2\r\n  comment with  spaces \r\n"
                                         "C\t0.5 -1.0E+0 2e-1\r\n"
                                         "1 +1.0 .5 -0.25 0.1 extra\r\n"
                                         "1\r\n\r\ncl 0 0 0\r\n\r\n\n  \n");
    dfs_mol_set s;
    dfs_status st = dfs_xyz_read(p, &s);
    CHECK(st == DFS_OK && s.n == 2, "read: %s", dfs_last_error());
    if (st == DFS_OK && s.n == 2) {
        const dfs_mol *a = &s.mols[0];
        CHECK(a->n == 2 && a->z[0] == 6 && a->z[1] == 1, "elements %d %d", a->z[0], a->z[1]);
        CHECK(a->pos[0] == 0.5 && a->pos[1] == -1.0 && a->pos[2] == 0.2 && a->pos[3] == 1.0 &&
                  a->pos[4] == 0.5 && a->pos[5] == -0.25,
              "coordinates");
        CHECK(!strcmp(a->title, "  comment with  spaces "), "title \"%s\"", a->title);
        CHECK(s.mols[1].n == 1 && s.mols[1].z[0] == 17 && !strcmp(s.mols[1].title, ""),
              "second frame");
    }
    dfs_mol_set_free(&s);
    /* an empty file is a set of no molecules */
    p = WRITE("empty.xyz", "");
    st = dfs_xyz_read(p, &s);
    CHECK(st == DFS_OK && s.n == 0, "empty file: %s", dfs_last_error());
    dfs_mol_set_free(&s);
    /* the in-memory form, without a NUL at the end */
    const char text[] = "1\nt\nH 0 0 0";
    st = dfs_xyz_parse("mem", text, sizeof text - 1, &s);
    CHECK(st == DFS_OK && s.n == 1 && s.mols[0].z[0] == 1, "parse: %s", dfs_last_error());
    dfs_mol_set_free(&s);
}

/* text must be refused with DFS_ERR_FORMAT and a message "PATH: line N: ..." containing want. */
static void bad_file(int sdf, const char *name, const char *text, int line, const char *want) {
    const char *p = WRITE(name, text);
    dfs_mol_set s;
    dfs_status st = sdf ? dfs_sdf_read(p, &s) : dfs_xyz_read(p, &s);
    char head[600];
    snprintf(head, sizeof head, "%s: line %d: ", p, line);
    const char *e = dfs_last_error();
    CHECK(st == DFS_ERR_FORMAT && s.n == 0 && !s.mols, "%s: status %s", name, dfs_status_str(st));
    CHECK(!strncmp(e, head, strlen(head)) && strstr(e, want), "%s: want \"%s...%s\", got \"%s\"",
          name, head, want, e);
    dfs_mol_set_free(&s);
}

static void test_xyz_bad(void) {
    bad_file(0, "b1.xyz", "abc\n", 1, "want the atom count of frame 1, got \"abc\"");
    bad_file(0, "b2.xyz", "20000\nt\n", 1, "atom count 20000 is outside 0..10000");
    bad_file(0, "b3.xyz", "99999999999999999999\n", 1,
             "atom count 99999999999999999999 is outside");
    bad_file(0, "b4.xyz", "-1\nt\n", 1, "atom count -1 is outside");
    bad_file(0, "b5.xyz", "3\n", 2, "the file ends before the comment line of frame 1");
    bad_file(0, "b6.xyz", "3\nt\nC 0 0 0\n", 4,
             "the file ends inside frame 1: atom 2 of the 3 counted on line 1 is missing");
    bad_file(0, "b6b.xyz", "3\nt\nC 0 0 0", 4, "the file ends inside frame 1");
    bad_file(0, "b7.xyz", "1\nt\nC 0 0 0\nH 1 0 0\n", 4,
             "want the atom count of frame 2, got \"H 1 0 0\" (does the count 1 on line 1 match");
    bad_file(0, "b8.xyz", "3\nt\nC 0 0 0\nH 1 0 0\n1\nt\nH 0 0 0\n", 5,
             "want an atom line \"symbol x y z\" (atom 3 of 3 of frame 1, count on line 1)");
    bad_file(0, "b9.xyz", "1\nt\nC 0 x 0\n", 3, "y coordinate \"x\" is not a number");
    bad_file(0, "b10.xyz", "1\nt\nC 0 0 1.0.0\n", 3, "z coordinate \"1.0.0\" is not a number");
    bad_file(0, "b11.xyz", "1\nt\nC nan 0 0\n", 3, "x coordinate \"nan\" is not a finite number");
    bad_file(0, "b12.xyz", "1\nt\nC 0 -Inf 0\n", 3, "y coordinate \"-Inf\" is not a finite");
    bad_file(0, "b13.xyz", "1\nt\nC 0 0 1e999\n", 3, "z coordinate \"1e999\" is not a finite");
    bad_file(0, "b14.xyz", "1\nt\nC 0x1p3 0 0\n", 3, "x coordinate \"0x1p3\" is not a number");
    bad_file(0, "b15.xyz", "2\nt\nC 0 0 0\nXx 0 0 0\n", 4, "unknown element \"Xx\"");
    bad_file(0, "b16.xyz", "1\nt\n200 0 0 0\n", 3, "unknown element \"200\"");
    bad_file(0, "b17.xyz", "1\nt\nC 0 0\n", 3, "want an atom line");
    bad_file(0, "b18.xyz", "1\nt\nC 0 0 0\n\n1\nt\nC 0 0 0\n", 4,
             "want the atom count of frame 2, got \"\"");
    bad_file(0, "b19.xyz", "1\r\nt\r\nC 0 0 0\r\nfoo\r\n", 4, "got \"foo\"");
    /* a NUL byte, reported on its line */
    const char nul[] = "1\nt\nC 0\0 0 0\n";
    const char *p = write_text("b20.xyz", nul, sizeof nul - 1);
    dfs_mol_set s;
    char want[600];
    snprintf(want, sizeof want, "%s: line 3: NUL byte", p);
    CHECK(dfs_xyz_read(p, &s) == DFS_ERR_FORMAT && strstr(dfs_last_error(), want),
          "NUL: %s", dfs_last_error());
    /* files that cannot be read */
    CHECK(dfs_xyz_read(P("missing.xyz"), &s) == DFS_ERR_IO &&
              strstr(dfs_last_error(), "missing.xyz"),
          "missing file: %s", dfs_last_error());
    CHECK(dfs_xyz_read(tmpdir, &s) == DFS_ERR_IO, "a folder: %s", dfs_last_error());
}

static void test_xyz_write_bad(void) {
    dfs_mol m = make("two\nlines", 3, WATER);
    const char *p = P("bad_out.xyz");
    CHECK(dfs_xyz_write(p, &m, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "line break"),
          "title with a newline: %s", dfs_last_error());
    dfs_mol_set_title(&m, "ok");
    m.pos[4] = NAN;
    CHECK(dfs_xyz_write(p, &m, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "not finite"),
          "NaN coordinate: %s", dfs_last_error());
    m.pos[4] = 0;
    m.z[2] = 0;
    CHECK(dfs_xyz_write(p, &m, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "no element"),
          "z = 0: %s", dfs_last_error());
    CHECK(access(p, F_OK) != 0 && leftovers() == 0, "nothing written");
    dfs_mol_free(&m);
}

/* ---- SDF --------------------------------------------------------------------------------- */

static void test_sdf_round_trip(void) {
    dfs_mol m[3];
    m[0] = make("water", 3, WATER);
    dfs_mol_bond wb[2] = {{0, 1, 1}, {0, 2, 1}};
    CHECK(dfs_mol_set_bonds(&m[0], wb, 2) == DFS_OK, "bonds: %s", dfs_last_error());
    m[1] = make("ammonium", 5, AMMONIUM);
    dfs_mol_bond ab[4] = {{0, 1, 1}, {2, 0, 1}, {0, 3, 1}, {4, 0, 1}};
    dfs_mol_set_bonds(&m[1], ab, 4);
    m[1].charge[0] = 1;
    /* charges the atom block cannot hold (+5, -4) and every bond order; a position at each
     * end of the range V2000's 10 columns hold */
    static const double odd[4][4] = {
        {6, 99999.9999, 0, 0}, {6, -9999.9999, 1, 2}, {8, 0.00005, -0.00004, 3}, {7, 1, 2, 3}};
    m[2] = make("", 4, odd);
    m[2].charge[0] = 5;
    m[2].charge[1] = -4;
    m[2].charge[2] = -1;
    m[2].charge[3] = 3;
    dfs_mol_bond ob[3] = {{0, 1, 2}, {1, 2, 3}, {2, 3, 4}};
    dfs_mol_set_bonds(&m[2], ob, 3);
    const char *p = P("three.sdf");
    CHECK(dfs_sdf_write(p, m, 3) == DFS_OK, "write: %s", dfs_last_error());
    CHECK(leftovers() == 0, "no temporary file is left");
    dfs_mol_set s;
    dfs_status st = dfs_sdf_read(p, &s);
    CHECK(st == DFS_OK && s.n == 3, "read: %s, %d molecules", dfs_last_error(), s.n);
    if (st == DFS_OK && s.n == 3)
        for (int k = 0; k < 3; k++)
            CHECK(same_mol(&m[k], &s.mols[k], 5.000001e-5, 1), "molecule %d comes back", k);
    dfs_mol_set_free(&s);
    /* the text of the water block, column for column (the layout of RDKit's writer) */
    char *text = read_text(p);
    const char *want = "water\n  diffuse           3D\n\n"
                       "  3  2  0  0  0  0  0  0  0  0999 V2000\n"
                       "    0.0000    0.0000    0.1173 O   0  0  0  0  0  0  0  0  0  0  0  0\n"
                       "    0.0000    0.7572   -0.4692 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
                       "    0.0000   -0.7572   -0.4692 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
                       "  1  2  1  0\n  1  3  1  0\nM  END\n$$$$\nammonium\n";
    CHECK(text && !strncmp(text, want, strlen(want)), "water block:\n%s", text ? text : "");
    CHECK(text && strstr(text, "    0.0000    0.0000    0.0000 N   0  3  0") &&
              strstr(text, "M  CHG  1   1   1\n"),
          "ammonium's charge in the atom block (code 3 = +1) and in M  CHG");
    CHECK(text && strstr(text, "M  CHG  4   1   5   2  -4   3  -1   4   3\n"),
          "charges beyond +-3 as M  CHG only");
    /* the same molecules again give the same bytes */
    const char *p2 = P("again.sdf");
    dfs_sdf_write(p2, m, 3);
    char first[1 << 14];
    snprintf(first, sizeof first, "%s", text ? text : "");
    char *again = read_text(p2);
    CHECK(again && !strcmp(first, again), "the output depends on the molecules only");
    for (int k = 0; k < 3; k++) dfs_mol_free(&m[k]);
}

/* Files as other programs write them. */
static void test_sdf_foreign(void) {
    /* CRLF; charges in the atom block only (code 5 = -1); data items; a blank title; then a
     * block whose M  CHG replaces its atom block's charges; short atom lines (no fields past the
     * symbol); a final .mol block with no "$$$$" */
    const char *text =
        "\r\n  OpenBabel\r\n\r\n"
        "  2  1  0  0  0  0  0  0  0  0999 V2000\r\n"
        "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\r\n"
        "    1.4300    0.0000    0.0000 O   0  5  0  0  0  0  0  0  0  0  0  0\r\n"
        "  1  2  1  0  0  0  0\r\n"
        "M  END\r\n"
        "> <NAME>\r\nmethoxide\r\n\r\n> <$$$$ not an end>\r\nx\r\n\r\n$$$$\r\n"
        "second\nprog\ncomment\n"
        "  3  2  0  0  0  0  0  0  0  0999 V2000\n"
        "    0.0000    0.0000    0.0000 N   0  3\n"
        "    1.0000    0.0000    0.0000 H\n"
        "   -1.0000    0.0000    0.0000 Cl  0  0\n"
        "  1  2  1\n"
        "  1  3  4\n"
        "M  ISO  1   1  15\n"
        "M  CHG  1   3  -1\n"
        "M  CHG  1   2   1\n"
        "M  END\n"
        "$$$$\n"
        "third\n\n\n"
        "  1  0  0  0  0  0  0  0  0  0999 V2000\n"
        "   10.0000   -2.5000    0.1250 F   0  0\n"
        "M  END\n\n";
    const char *p = WRITE("foreign.sdf", text);
    dfs_mol_set s;
    dfs_status st = dfs_sdf_read(p, &s);
    CHECK(st == DFS_OK && s.n == 3, "read: %s (%d molecules)", dfs_last_error(), s.n);
    if (st == DFS_OK && s.n == 3) {
        const dfs_mol *a = &s.mols[0], *b = &s.mols[1], *c = &s.mols[2];
        CHECK(a->n == 2 && a->z[0] == 6 && a->z[1] == 8 && a->pos[3] == 1.43, "methoxide atoms");
        CHECK(a->charge[0] == 0 && a->charge[1] == -1, "charge code 5 = -1: %d", a->charge[1]);
        CHECK(a->n_bonds == 1 && a->bonds[0].a == 0 && a->bonds[0].b == 1 &&
                  a->bonds[0].order == 1,
              "methoxide bond");
        CHECK(!strcmp(a->title, ""), "blank title \"%s\"", a->title);
        CHECK(!strcmp(b->title, "second") && b->n == 3 && b->z[2] == 17, "second molecule");
        CHECK(b->charge[0] == 0 && b->charge[1] == 1 && b->charge[2] == -1,
              "M  CHG replaces the atom block's +1: %d %d %d", b->charge[0], b->charge[1],
              b->charge[2]);
        CHECK(b->n_bonds == 2 && b->bonds[1].order == DFS_BOND_AROMATIC, "aromatic bond");
        CHECK(c->n == 1 && c->z[0] == 9 && c->pos[0] == 10 && c->pos[1] == -2.5 &&
                  c->pos[2] == 0.125 && c->n_bonds == 0,
              "a .mol block with no $$$$");
    }
    dfs_mol_set_free(&s);
}

static const char *HEAD = "t\np\nc\n";

static void test_sdf_bad(void) {
    char f[4096];
    const char *C = "  2  1  0  0  0  0  0  0  0  0999 V2000\n";
    const char *A1 = "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n";
    const char *A2 = "    1.2000    0.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n";
    const char *B = "  1  2  2  0\n";
#define SDF(...) (snprintf(f, sizeof f, __VA_ARGS__), f)
    bad_file(1, "s1.sdf", "t\np\n", 3, "the file ends inside the header of molecule 1");
    bad_file(1, "s2.sdf", "t\np\nc\n", 4, "the file ends inside the header (counts line)");
    bad_file(1, "s3.sdf", SDF("%s%s%s", HEAD, C, A1), 6,
             "the file ends inside the atom block (atom 2 of 2) of molecule 1");
    bad_file(1, "s4.sdf", SDF("%s%s%s%s", HEAD, C, A1, A2), 7,
             "the file ends inside the bond block (bond 1 of 1)");
    bad_file(1, "s5.sdf", SDF("%s%s%s%s%s", HEAD, C, A1, A2, B), 8,
             "the file ends inside the properties block (no \"M  END\")");
    bad_file(1, "s6.sdf", SDF("%s%s%s%s%s$$$$\n", HEAD, C, A1, A2, B), 8,
             "\"$$$$\" before the \"M  END\" of molecule 1");
    /* the second molecule truncated: the line numbers run on through the file */
    bad_file(1, "s7.sdf", SDF("%s%s%s%s%sM  END\n$$$$\n%s%s%s", HEAD, C, A1, A2, B, HEAD, C, A1),
             15, "inside the atom block (atom 2 of 2) of molecule 2");
    /* counts that do not match the blocks */
    bad_file(1, "s8.sdf",
             SDF("%s  3  1  0  0  0  0  0  0  0  0999 V2000\n%s%s%sM  END\n", HEAD, A1, A2, B), 7,
             "atom 3 of 3 (counts line 4): the line is too short for an atom");
    bad_file(1, "s9.sdf",
             SDF("%s  1  1  0  0  0  0  0  0  0  0999 V2000\n%s%s%sM  END\n", HEAD, A1, A2, B), 6,
             "bond 1 of 1 (counts line 4): first atom \"   \" (columns 1-3) is not a number");
    bad_file(1, "s10.sdf",
             SDF("%s  2  2  0  0  0  0  0  0  0  0999 V2000\n%s%s%sM  END\n", HEAD, A1, A2, B), 8,
             "bond 2 of 2 (counts line 4): first atom \"M  \"");
    bad_file(1, "s11.sdf", SDF("%sxx  1\n", HEAD), 4, "bad counts line \"xx  1\"");
    bad_file(1, "s12.sdf", SDF("%s  0  0  0  0  0  0  0  0  0  0999 V3000\nM  END\n", HEAD), 4,
             "a V3000 mol block");
    /* bad fields */
    bad_file(1, "s13.sdf",
             SDF("%s%s    0.0000    abcdef    0.0000 C   0  0\n%s%sM  END\n", HEAD, C, A2, B), 5,
             "y coordinate \"    abcdef\" (columns 11-20) is not a number");
    bad_file(1, "s14.sdf", SDF("%s%s       nan    0.0000    0.0000 C   0  0\n%s%sM  END\n", HEAD,
                               C, A2, B),
             5, "x coordinate \"       nan\" is not a finite number");
    bad_file(1, "s15.sdf",
             SDF("%s%s    0.0000    0.0000    0.0000 Xx  0  0\n%s%sM  END\n", HEAD, C, A2, B), 5,
             "unknown element \"Xx\" (columns 32-34)");
    bad_file(1, "s16.sdf",
             SDF("%s%s    0.0000    0.0000    0.0000 C   0  9\n%s%sM  END\n", HEAD, C, A2, B), 5,
             "charge code \"9\" (columns 37-39) is not 0..7");
    bad_file(1, "s17.sdf", SDF("%s%s%s%s  1  3  1  0\nM  END\n", HEAD, C, A1, A2), 7,
             "bond 1 joins atoms 1 and 3 (want two different atoms of 1..2)");
    bad_file(1, "s18.sdf", SDF("%s%s%s%s  2  2  1  0\nM  END\n", HEAD, C, A1, A2), 7,
             "bond 1 joins atoms 2 and 2");
    bad_file(1, "s19.sdf", SDF("%s%s%s%s  1  2  8  0\nM  END\n", HEAD, C, A1, A2), 7,
             "bond type 8 is not supported");
    bad_file(1, "s20.sdf",
             SDF("%s  2  2  0  0  0  0  0  0  0  0999 V2000\n%s%s%s  2  1  1  0\nM  END\n", HEAD,
                 A1, A2, B),
             8, "bond 2 joins atoms 2 and 1 a second time");
    bad_file(1, "s21.sdf", SDF("%s%s%s%s%sM  CHG  2   1   1\nM  END\n", HEAD, C, A1, A2, B), 8,
             "bad M  CHG line");
    bad_file(1, "s22.sdf", SDF("%s%s%s%s%sM  CHG  1   3   1\nM  END\n", HEAD, C, A1, A2, B), 8,
             "M  CHG: atom 3 with charge 1 (want atoms 1..2");
    bad_file(1, "s23.sdf", SDF("%s%s%s%s%sM  CHG  1   1  16\nM  END\n", HEAD, C, A1, A2, B), 8,
             "charges -15..15");
    bad_file(1, "s24.sdf", SDF("%s%s%s%s%sM  CHG  1   1   x\nM  END\n", HEAD, C, A1, A2, B), 8,
             "bad M  CHG line");
    /* CRLF counts the same lines */
    bad_file(1, "s25.sdf", "t\r\np\r\nc\r\n  1  0\r\n    0.0000    0.0000    0.0000 Q   0  0\r\n",
             5, "unknown element \"Q\"");
#undef SDF
    dfs_mol_set s;
    CHECK(dfs_sdf_read(P("missing.sdf"), &s) == DFS_ERR_IO &&
              strstr(dfs_last_error(), "missing.sdf"),
          "missing file: %s", dfs_last_error());
    const char nul[] = "t\np\0\nc\n";
    const char *p = write_text("nul.sdf", nul, sizeof nul - 1);
    CHECK(dfs_sdf_read(p, &s) == DFS_ERR_FORMAT && strstr(dfs_last_error(), ": line 2: NUL"),
          "NUL: %s", dfs_last_error());
}

static void test_sdf_write_bad(void) {
    const char *p = P("keep.sdf");
    dfs_mol good = make("good", 3, WATER);
    CHECK(dfs_sdf_write(p, &good, 1) == DFS_OK, "write: %s", dfs_last_error());
    char before[4096];
    snprintf(before, sizeof before, "%s", read_text(p));
    dfs_mol m = make("w", 3, WATER);
    m.pos[0] = 100000.0;
    CHECK(dfs_sdf_write(p, &m, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "10 columns"),
          "coordinate too large: %s", dfs_last_error());
    m.pos[0] = -10000.0;
    CHECK(dfs_sdf_write(p, &m, 1) == DFS_ERR_ARG, "coordinate too small");
    m.pos[0] = INFINITY;
    CHECK(dfs_sdf_write(p, &m, 1) == DFS_ERR_ARG, "infinite coordinate");
    m.pos[0] = 0;
    m.charge[1] = 16;
    CHECK(dfs_sdf_write(p, &m, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "charge 16"),
          "charge 16: %s", dfs_last_error());
    m.charge[1] = 0;
    char longt[100];
    memset(longt, 'a', 81);
    longt[81] = 0;
    dfs_mol_set_title(&m, longt);
    CHECK(dfs_sdf_write(p, &m, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "80"),
          "81-character title: %s", dfs_last_error());
    dfs_mol_set_title(&m, "w");
    m.bonds = malloc(sizeof *m.bonds);
    m.bonds[0] = (dfs_mol_bond){0, 3, 1};
    m.n_bonds = 1;
    CHECK(dfs_sdf_write(p, &m, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "bond 0"),
          "bond to atom 3 of 3: %s", dfs_last_error());
    dfs_mol_free(&m);
    dfs_mol big;
    dfs_mol_init(&big, 1000);
    for (int i = 0; i < 1000; i++) big.z[i] = 1;
    CHECK(dfs_sdf_write(p, &big, 1) == DFS_ERR_ARG && strstr(dfs_last_error(), "0..999"),
          "1000 atoms: %s", dfs_last_error());
    CHECK(dfs_xyz_write(P("big.xyz"), &big, 1) == DFS_OK, "1000 atoms fit XYZ");
    dfs_mol_free(&big);
    char *after = read_text(p);
    CHECK(after && !strcmp(before, after) && leftovers() == 0,
          "a refused write leaves the file as it was");
    dfs_mol_free(&good);
    /* bonds are checked when set */
    dfs_mol w = make("w", 3, WATER);
    dfs_mol_bond dup[2] = {{0, 1, 1}, {1, 0, 2}}, loop[1] = {{1, 1, 1}}, ord[1] = {{0, 1, 5}};
    CHECK(dfs_mol_set_bonds(&w, dup, 2) == DFS_ERR_ARG && strstr(dfs_last_error(), "second time"),
          "the same pair twice: %s", dfs_last_error());
    CHECK(dfs_mol_set_bonds(&w, loop, 1) == DFS_ERR_ARG, "a loop");
    CHECK(dfs_mol_set_bonds(&w, ord, 1) == DFS_ERR_ARG, "order 5");
    CHECK(w.n_bonds == 0 && !w.bonds, "refused bonds leave none");
    dfs_mol c;
    dfs_mol_set_bonds(&w, dup, 1);
    CHECK(dfs_mol_copy(&c, &w) == DFS_OK && same_mol(&c, &w, 0, 1), "copy");
    dfs_mol_free(&c);
    dfs_mol_free(&w);
    CHECK(dfs_mol_init(&c, DFS_MOL_MAX_ATOMS + 1) == DFS_ERR_ARG && c.n == 0 && !c.z,
          "too many atoms");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfs_mol_io_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_elements();
    test_xyz_round_trip();
    test_xyz_foreign();
    test_xyz_bad();
    test_xyz_write_bad();
    test_sdf_round_trip();
    test_sdf_foreign();
    test_sdf_bad();
    test_sdf_write_bad();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_mol_io");
}
