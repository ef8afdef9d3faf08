/* test_mol_build.c - the molecule set's builder (src/mol/build.c): CML read with libxml2 (the
 * files as chemical-structures and Avogadro write them, 2-D and coordinate-free ones, implicit
 * hydrogens, every refusal with its line number, entities that must not be loaded), the filter
 * on molecules with known answers, and a build over a made-up package tree (a corrupt file, a
 * dummy atom, a repeat across sources, stereoisomers, G2 radicals, a missing package) checked
 * file by file.
 *
 *     test_mol_build              the tests above
 *     test_mol_build --check DIR  check a built set (tests/cli/cli_mol_data.sh): the XYZ and the
 *                                 SDF read back with the library's readers and agree, every
 *                                 molecule passes the filter, no two share a canonical form, and
 *                                 sources.json's counts match the files */
#include "check.h"
#include "diffuse.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];

static const char *P(const char *name) {
    static char buf[4][512];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

/* Write text to tmpdir/name, making its folders. */
static const char *put(const char *name, const char *text) {
    const char *p = P(name);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", p);
    for (char *s = dir + strlen(tmpdir) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(dir, 0777);
        *s = '/';
    }
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text)) {
        perror(p);
        exit(2);
    }
    fclose(f);
    return p;
}

static dfs_status parse(const char *text, dfs_mol *m, dfs_cml_info *info) {
    return dfs_cml_parse("t.cml", text, strlen(text), m, info);
}

/* ---- CML --------------------------------------------------------------------------------- */

/* ethanol as chemical-structures-data writes it (namespaces, properties), cut to its atoms */
static const char *ETHANOL =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<molecule xmlns=\"http://www.xml-cml.org/schema\"\n"
    "          xmlns:cml=\"http://www.xml-cml.org/dict/cml\" id=\"CS_ethanol\">\n"
    "  <formula concise=\" C 2 H 6 O 1 \"/>\n"
    "  <name convention=\"IUPAC\">Ethanol</name>\n"
    "  <atomArray>\n"
    "    <atom id=\"a1\" elementType=\"H\" x3=\"1.626544\" y3=\"-0.037693\" z3=\"0.845612\"/>\n"
    "    <atom id=\"a2\" elementType=\"C\" x3=\"1.011200\" y3=\"-0.045292\" z3=\"-0.062605\"/>\n"
    "    <atom id=\"a3\" elementType=\"H\" x3=\"1.325261\" y3=\"0.803088\" z3=\"-0.684698\"/>\n"
    "    <atom id=\"a4\" elementType=\"H\" x3=\"1.250124\" y3=\"-0.961175\" z3=\"-0.618887\"/>\n"
    "    <atom id=\"a5\" elementType=\"C\" x3=\"-0.462076\" y3=\"0.030628\" z3=\"0.294699\"/>\n"
    "    <atom id=\"a6\" elementType=\"H\" x3=\"-0.758002\" y3=\"-0.826323\" z3=\"0.931560\"/>\n"
    "    <atom id=\"a7\" elementType=\"H\" x3=\"-0.682225\" y3=\"0.953690\" z3=\"0.866556\"/>\n"
    "    <atom id=\"a8\" elementType=\"O\" x3=\"-1.198129\" y3=\"0.018094\" z3=\"-0.907245\"/>\n"
    "    <atom id=\"a9\" elementType=\"H\" x3=\"-2.112696\" y3=\"0.064982\" z3=\"-0.664993\"/>\n"
    "  </atomArray>\n"
    "  <bondArray>\n"
    "    <bond atomRefs2=\"a1 a2\" order=\"1\"/>\n"
    "    <bond atomRefs2=\"a2 a3\" order=\"1\"/>\n"
    "    <bond atomRefs2=\"a2 a4\" order=\"1\"/>\n"
    "    <bond atomRefs2=\"a2 a5\" order=\"1\"/>\n"
    "    <bond atomRefs2=\"a5 a6\" order=\"1\"/>\n"
    "    <bond atomRefs2=\"a5 a7\" order=\"1\"/>\n"
    "    <bond atomRefs2=\"a5 a8\" order=\"1\"/>\n"
    "    <bond atomRefs2=\"a8 a9\" order=\"1\"/>\n"
    "  </bondArray>\n"
    "  <propertyList><property dictRef=\"cml:mp\"><scalar>-114</scalar></property></propertyList>\n"
    "</molecule>\n";

/* A CML document with the given atom and bond elements, one per line: line 3 holds the first
 * atom, and bonds follow the atoms directly. */
static const char *doc(const char *atoms, const char *bonds) {
    static char b[8192];
    snprintf(b, sizeof b,
             "<molecule id=\"m\">\n<atomArray>\n%s</atomArray>\n<bondArray>\n%s"
             "</bondArray>\n</molecule>\n",
             atoms, bonds);
    return b;
}

#define A_C "<atom id=\"c\" elementType=\"C\" x3=\"0\" y3=\"0\" z3=\"0\"/>\n"
#define A_O "<atom id=\"o\" elementType=\"O\" x3=\"1.2\" y3=\"0\" z3=\"0\"/>\n"

static void test_cml_read(void) {
    dfs_mol m;
    dfs_cml_info info;
    dfs_status st = parse(ETHANOL, &m, &info);
    CHECK(st == DFS_OK, "ethanol: %s", dfs_last_error());
    CHECK(m.n == 9 && m.n_bonds == 8, "ethanol: %d atoms, %d bonds", m.n, m.n_bonds);
    CHECK(m.n == 9 && m.z[0] == 1 && m.z[1] == 6 && m.z[7] == 8, "ethanol: elements in order");
    CHECK(m.n == 9 && m.pos[3 * 8 + 0] == -2.112696 && m.pos[3 * 8 + 2] == -0.664993,
          "ethanol: the last atom's coordinates as written");
    CHECK(m.n_bonds == 8 && m.bonds[7].a == 7 && m.bonds[7].b == 8 &&
              m.bonds[7].order == DFS_BOND_SINGLE,
          "ethanol: bond a8-a9 is atoms 7-8, single");
    CHECK(!strcmp(m.title, "Ethanol"), "title from <name>: \"%s\"", m.title);
    CHECK(info.dim == 3 && info.implicit_h == 0, "dim %d, implicit H %d", info.dim,
          info.implicit_h);
    dfs_mol_free(&m);

    /* no namespace (as 10 of Avogadro's files), no <name>: the id; orders in letters and
     * with spaces; no order at all is single; a charge */
    st = parse("<molecule id=\"CS_x\">\n<atomArray>\n"
               "<atom id=\"n\" elementType=\"N\" x3=\"0\" y3=\"0\" z3=\"0\" formalCharge=\"+1\"/>\n"
               "<atom id=\"c1\" elementType=\"C\" x3=\"1.5\" y3=\"0\" z3=\"0\"/>\n"
               "<atom id=\"c2\" elementType=\"C\" x3=\"2.5\" y3=\"0\" z3=\"0\"/>\n"
               "<atom id=\"c3\" elementType=\"c\" x3=\"3.5\" y3=\"0\" z3=\"0\"/>\n"
               "<atom id=\"c4\" elementType=\"C\" x3=\"4.5\" y3=\"0\" z3=\"0\"/>\n"
               "</atomArray>\n<bondArray>\n"
               "<bond atomRefs2=\" n  c1 \" order=\" 1\"/>\n"
               "<bond atomRefs2=\"c1 c2\" order=\"D\"/>\n"
               "<bond atomRefs2=\"c2 c3\" order=\"T\"/>\n"
               "<bond atomRefs2=\"c3 c4\" order=\"A\"/>\n"
               "<bond atomRefs2=\"c4 n\"/>\n"
               "</bondArray>\n</molecule>\n",
               &m, &info);
    CHECK(st == DFS_OK, "variants: %s", dfs_last_error());
    CHECK(st == DFS_OK && !strcmp(m.title, "CS_x"), "title from the id: \"%s\"", m.title);
    CHECK(st == DFS_OK && m.charge[0] == 1 && m.z[3] == 6, "formalCharge +1, elementType c");
    static const int orders[5] = {1, 2, 3, 4, 1};
    int same = st == DFS_OK && m.n_bonds == 5;
    for (int k = 0; same && k < 5; k++)
        same = m.bonds[k].order == orders[k];
    CHECK(same, "orders 1, D, T, A, none -> 1 2 3 4 1");
    dfs_mol_free(&m);

    /* a <cml> wrapper: the first <molecule> inside */
    st = parse("<cml xmlns=\"http://www.xml-cml.org/schema\"><molecule>\n<atomArray>" A_C
               "</atomArray></molecule><molecule><atomArray>" A_C A_O
               "</atomArray></molecule></cml>",
               &m, &info);
    CHECK(st == DFS_OK && m.n == 1 && m.n_bonds == 0 && !strcmp(m.title, ""),
          "the first molecule of a <cml>: %s", dfs_last_error());
    dfs_mol_free(&m);

    /* 2-D and coordinate-free files are read, and say so */
    st = parse(doc("<atom id=\"c\" elementType=\"C\" x2=\"1\" y2=\"2\"/>\n"
                   "<atom id=\"o\" elementType=\"O\" x2=\"2.2\" y2=\"2\"/>\n",
                   ""),
               &m, &info);
    CHECK(st == DFS_OK && info.dim == 2 && m.pos[0] == 1 && m.pos[1] == 2 && m.pos[2] == 0,
          "2-D: dim %d, %s", info.dim, dfs_last_error());
    dfs_mol_free(&m);
    st = parse(doc("<atom id=\"c\" elementType=\"C\" x3=\"0\" y3=\"0\" z3=\"0\"/>\n"
                   "<atom id=\"o\" elementType=\"O\" x2=\"2.2\" y2=\"2\"/>\n",
                   ""),
               &m, &info);
    CHECK(st == DFS_OK && info.dim == 2, "3-D and 2-D atoms mixed: dim %d", info.dim);
    dfs_mol_free(&m);
    st = parse(doc("<atom id=\"c\" elementType=\"C\"/>\n", ""), &m, &info);
    CHECK(st == DFS_OK && info.dim == 0 && m.n == 1, "no coordinates: dim %d", info.dim);
    dfs_mol_free(&m);
    /* CH4 written as C with hydrogenCount 4 and one explicit H: 3 implicit */
    st = parse(
        doc("<atom id=\"c\" elementType=\"C\" hydrogenCount=\"4\" x3=\"0\" y3=\"0\" z3=\"0\"/>\n"
            "<atom id=\"h\" elementType=\"H\" x3=\"1.09\" y3=\"0\" z3=\"0\"/>\n",
            "<bond atomRefs2=\"c h\" order=\"1\"/>\n"),
        &m, &info);
    CHECK(st == DFS_OK && info.implicit_h == 3, "hydrogenCount 4, one H atom: %d implicit",
          info.implicit_h);
    dfs_mol_free(&m);

    /* dfs_cml_read: a file, and a missing one */
    CHECK(dfs_cml_read(put("ethanol.cml", ETHANOL), &m, NULL) == DFS_OK && m.n == 9,
          "read a file: %s", dfs_last_error());
    dfs_mol_free(&m);
    st = dfs_cml_read(P("none.cml"), &m, &info);
    CHECK(st == DFS_ERR_IO && strstr(dfs_last_error(), "none.cml") && m.n == 0 && !m.z,
          "missing file: %s", dfs_last_error());
}

/* text must be refused with DFS_ERR_FORMAT and a message holding want, m left empty */
static void refuse(const char *what, const char *text, const char *want) {
    dfs_mol m;
    dfs_cml_info info = {3, 1};
    dfs_status st = parse(text, &m, &info);
    const char *e = dfs_last_error();
    CHECK(st == DFS_ERR_FORMAT && strstr(e, want) && !strncmp(e, "t.cml: ", 7) && m.n == 0 &&
              !m.z && !m.title && info.dim == 0 && info.implicit_h == 0,
          "%s: status %d, message \"%s\", want \"%s\"", what, st, e, want);
    dfs_mol_free(&m);
}

static void test_cml_bad(void) {
    refuse("Avogadro's adamantane.cml",
           "<molecule\">\n <atomArray>\n" A_C " </atomArray>\n</molecule>\n",
           "line 1: not well-formed XML");
    refuse("empty", "", "not well-formed XML");
    refuse("truncated", "<molecule>\n<atomArray>\n" A_C, "line 4: not well-formed XML");
    refuse("not CML", "<html>\n<body/>\n</html>\n", "line 1: no <molecule> element");
    refuse("array form",
           "<molecule>\n<atomArray atomID=\"a1 a2\" elementType=\"C C\"/>\n</molecule>",
           "line 2: an atomArray in CML's array form");
    refuse("no id", doc("<atom elementType=\"C\" x3=\"0\" y3=\"0\" z3=\"0\"/>\n", ""),
           "line 3: an atom without an id");
    refuse("id twice", doc(A_C A_C, ""), "atom id \"c\" is used twice");
    refuse("dummy atom",
           doc(A_C "<atom id=\"d\" elementType=\"Du\" x3=\"0\" y3=\"0\" z3=\"1\"/>\n", ""),
           "line 4: atom d: elementType \"Du\" is not an element");
    refuse("no element", doc("<atom id=\"c\" x3=\"0\" y3=\"0\" z3=\"0\"/>\n", ""),
           "line 3: atom c: elementType \"(none)\"");
    refuse("nan", doc("<atom id=\"c\" elementType=\"C\" x3=\"nan\" y3=\"0\" z3=\"0\"/>\n", ""),
           "line 3: atom c: x3=\"nan\" is not a finite number");
    refuse("comma", doc("<atom id=\"c\" elementType=\"C\" x3=\"0\" y3=\"1,5\" z3=\"0\"/>\n", ""),
           "line 3: atom c: y3=\"1,5\" is not a number");
    refuse("x3 y3 without z3", doc("<atom id=\"c\" elementType=\"C\" x3=\"0\" y3=\"0\"/>\n", ""),
           "line 3: atom c has only some of x3, y3, z3");
    refuse(
        "charge",
        doc("<atom id=\"c\" elementType=\"C\" formalCharge=\"one\" x3=\"0\" y3=\"0\" z3=\"0\"/>\n",
            ""),
        "line 3: atom c: formalCharge=\"one\" is not an integer");
    refuse(
        "hydrogenCount",
        doc("<atom id=\"c\" elementType=\"C\" hydrogenCount=\"-1\" x3=\"0\" y3=\"0\" z3=\"0\"/>\n",
            ""),
        "hydrogenCount=\"-1\" is not a count");
    refuse("unknown atom", doc(A_C A_O, "<bond atomRefs2=\"c x\" order=\"1\"/>\n"),
           "line 7: a bond names atom \"x\", which is not in the atomArray");
    refuse("to itself", doc(A_C A_O, "<bond atomRefs2=\"c c\" order=\"1\"/>\n"),
           "line 7: a bond of atom c to itself");
    refuse("three atoms", doc(A_C A_O, "<bond atomRefs2=\"c o c\" order=\"1\"/>\n"),
           "line 7: a bond's atomRefs2=\"c o c\" does not name two atoms");
    refuse("no atomRefs2", doc(A_C A_O, "<bond order=\"1\"/>\n"), "atomRefs2=\"(none)\"");
    refuse("bad order", doc(A_C A_O, "<bond atomRefs2=\"c o\" order=\"5\"/>\n"),
           "line 7: bond order \"5\"");
    refuse("the same bond twice",
           doc(A_C A_O, "<bond atomRefs2=\"c o\" order=\"2\"/>\n"
                        "<bond atomRefs2=\"o c\" order=\"1\"/>\n"),
           "line 8: a second bond between the same two atoms");

    /* entities: an external one is never loaded (no network, no files); a billion laughs is
     * refused or left unexpanded, quickly */
    dfs_mol m;
    dfs_status st = parse("<?xml version=\"1.0\"?>\n<!DOCTYPE molecule [\n"
                          "<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n"
                          "<molecule><name>&x;</name><atomArray>" A_C "</atomArray></molecule>\n",
                          &m, NULL);
    CHECK(st != DFS_OK || (m.title && !strstr(m.title, "root")),
          "an external entity is not loaded: status %d, title \"%s\"", st, m.title ? m.title : "");
    dfs_mol_free(&m);
    char lol[4096] =
        "<?xml version=\"1.0\"?>\n<!DOCTYPE molecule [\n<!ENTITY l0 \"lollollollol\">\n";
    for (int k = 1; k < 10; k++)
        snprintf(lol + strlen(lol), sizeof lol - strlen(lol),
                 "<!ENTITY l%d \"&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;\">\n", k, k - 1,
                 k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1);
    strcat(lol, "]>\n<molecule><name>&l9;</name><atomArray>" A_C "</atomArray></molecule>\n");
    clock_t t0 = clock();
    st = parse(lol, &m, NULL);
    double sec = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK((st == DFS_ERR_FORMAT || (st == DFS_OK && strlen(m.title) < 100000)) && sec < 5,
          "billion laughs: status %d in %.1f s (%s)", st, sec, dfs_last_error());
    dfs_mol_free(&m);
    CHECK(dfs_cml_parse("x", NULL, 0, NULL, NULL) == DFS_ERR_ARG, "NULL molecule");
}

/* ---- the filter -------------------------------------------------------------------------- */

/* A molecule from (z, x, y, z) rows. */
static dfs_mol make(int n, const double (*a)[4]) {
    dfs_mol m;
    if (dfs_mol_init(&m, n)) exit(2);
    for (int i = 0; i < n; i++) {
        m.z[i] = (int)a[i][0];
        for (int d = 0; d < 3; d++)
            m.pos[3 * i + d] = a[i][1 + d];
    }
    return m;
}

static dfs_moldrop why_of(dfs_mol *m, int has_bonds) {
    dfs_moldrop why = DFS_MOLDROP_COUNT;
    if (dfs_moldata_filter(m, has_bonds, 9, &why)) return DFS_MOLDROP_COUNT;
    return why;
}

static void test_filter(void) {
    static const double ch4[5][4] = {{6, 0, 0, 0},
                                     {1, 0.629, 0.629, 0.629},
                                     {1, -0.629, -0.629, 0.629},
                                     {1, -0.629, 0.629, -0.629},
                                     {1, 0.629, -0.629, -0.629}};
    dfs_mol m = make(5, ch4);
    dfs_moldrop w = why_of(&m, 0);
    CHECK(w == DFS_MOLDROP_NONE, "methane kept: %s", dfs_moldrop_names[w % DFS_MOLDROP_COUNT]);
    m.z[1] = 17;
    CHECK(why_of(&m, 0) == DFS_MOLDROP_ELEMENT, "CH3Cl: element");
    m.z[1] = 1;
    m.charge[0] = 1;
    CHECK(why_of(&m, 0) == DFS_MOLDROP_CHARGED, "a charge");
    m.charge[0] = 0;
    m.pos[3 * 1 + 0] = 0.1, m.pos[3 * 1 + 1] = 0.1, m.pos[3 * 1 + 2] = 0.1;
    CHECK(why_of(&m, 0) == DFS_MOLDROP_NO_3D, "an H 0.17 A from C: no 3-D");
    memset(m.pos, 0, sizeof *m.pos * 15);
    CHECK(why_of(&m, 1) == DFS_MOLDROP_NO_3D, "every atom at the origin: no 3-D");
    dfs_mol_free(&m);

    /* ten carbons in a row (1.54 A apart): 9 heavy atoms at most */
    double chain[10][4];
    for (int i = 0; i < 10; i++)
        chain[i][0] = 6, chain[i][1] = 1.54 * i, chain[i][2] = chain[i][3] = 0;
    m = make(10, chain);
    CHECK(why_of(&m, 0) == DFS_MOLDROP_HEAVY, "10 heavy atoms");
    dfs_mol_free(&m);
    m = make(9, chain);
    CHECK(why_of(&m, 0) == DFS_MOLDROP_NONE, "9 heavy atoms (radicals are not the filter's)");
    dfs_mol_free(&m);

    /* two waters 3 A apart: two fragments by perception; by a file's bonds it depends on them */
    static const double w2[6][4] = {{8, 0, 0, 0},   {1, 0.96, 0, 0}, {1, -0.24, 0.93, 0},
                                    {8, 0, 0, 3.0}, {1, 0.96, 0, 3}, {1, -0.24, 0.93, 3}};
    m = make(6, w2);
    CHECK(why_of(&m, 0) == DFS_MOLDROP_FRAGMENTS, "two waters: two fragments");
    const dfs_mol_bond b[5] = {{0, 1, 1}, {0, 2, 1}, {3, 4, 1}, {3, 5, 1}, {0, 3, 1}};
    dfs_mol_set_bonds(&m, b, 4);
    CHECK(why_of(&m, 1) == DFS_MOLDROP_FRAGMENTS, "two waters by the file's bonds");
    dfs_mol_set_bonds(&m, b, 5);
    CHECK(why_of(&m, 1) == DFS_MOLDROP_NONE, "joined by a file's bond: one fragment");
    dfs_mol_free(&m);

    m = make(1, ch4);
    CHECK(why_of(&m, 0) == DFS_MOLDROP_NONE, "one atom is one fragment");
    dfs_mol_free(&m);
    m = make(0, ch4);
    CHECK(why_of(&m, 0) == DFS_MOLDROP_FRAGMENTS, "no atoms: no fragment");
    dfs_mol_free(&m);
    dfs_moldrop why;
    CHECK(dfs_moldata_filter(NULL, 0, 9, &why) == DFS_ERR_ARG, "NULL molecule");
}

/* ---- checking a built set ---------------------------------------------------------------- */

static const char *src_of(const char *title, int *src) {
    const char *sp = strchr(title, ' ');
    *src = sp ? dfs_molsrc_find(title, (size_t)(sp - title)) : -1;
    return sp ? sp + 1 : "";
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

static int json_int(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* Check the set in dir; returns the molecules read (-1 if the files are missing). */
static int check_dir(const char *dir) {
    char px[600], ps[600], pj[600];
    snprintf(px, sizeof px, "%s/molecules.xyz", dir);
    snprintf(ps, sizeof ps, "%s/molecules.sdf", dir);
    snprintf(pj, sizeof pj, "%s/sources.json", dir);
    dfs_mol_set x = {0}, s = {0};
    dfs_status st = dfs_xyz_read(px, &x);
    CHECK(st == DFS_OK, "read %s: %s", px, dfs_last_error());
    st = dfs_sdf_read(ps, &s);
    CHECK(st == DFS_OK, "read %s: %s", ps, dfs_last_error());
    CHECK(x.n == s.n, "%d molecules in the XYZ, %d in the SDF", x.n, s.n);
    int kept[DFS_MOLSRC_COUNT] = {0}, last_src = 0, bad_order = 0;
    char **forms = calloc((size_t)x.n + 1, sizeof *forms);
    for (int i = 0; i < x.n && i < s.n; i++) {
        const dfs_mol *a = &x.mols[i], *b = &s.mols[i];
        int src;
        const char *name = src_of(a->title, &src);
        CHECK(src >= 0 && *name && !strchr(name, ' '),
              "molecule %d: title \"%s\" is not \"SOURCE NAME\"", i, a->title);
        if (src >= 0) kept[src]++;
        if (src >= 0 && src < last_src) bad_order++;
        if (src >= 0) last_src = src;
        CHECK(!strcmp(a->title, b->title), "molecule %d: titles \"%s\" and \"%s\"", i, a->title,
              b->title);
        int same = a->n == b->n;
        double worst = 0;
        for (int k = 0; same && k < a->n; k++) {
            same = a->z[k] == b->z[k];
            for (int d = 0; d < 3; d++)
                worst = max_err(worst, fabs(a->pos[3 * k + d] - b->pos[3 * k + d]));
        }
        /* SDF: 4 decimals, XYZ: 6 */
        CHECK(same && worst <= 0.5e-4 + 0.5e-6 + 1e-12,
              "molecule %d (%s): atoms agree (%d and %d "
              "atoms, coordinates %.2g apart)",
              i, a->title, a->n, b->n, worst);
        /* the filter, on the SDF (charges, its bonds) */
        dfs_moldrop why;
        st = dfs_moldata_filter(b, 1, 9, &why);
        CHECK(st == DFS_OK && why == DFS_MOLDROP_NONE, "molecule %d (%s): filtered out as %s", i,
              b->title, st ? dfs_last_error() : dfs_moldrop_names[why]);
        int heavy = 0;
        for (int k = 0; k < b->n; k++)
            heavy += b->z[k] != 1;
        CHECK(heavy <= 9 && (b->n_bonds > 0) == (b->n > 1), "molecule %d: %d heavy atoms, %d bonds",
              i, heavy, b->n_bonds);
        dfs_mol p;
        if (dfs_mol_copy(&p, a) || dfs_mol_perceive_bonds(&p) || dfs_mol_canonical(&p, &forms[i]))
            CHECK(0, "molecule %d: canonical form: %s", i, dfs_last_error());
        dfs_mol_free(&p);
    }
    CHECK(!bad_order, "%d molecules out of the sources' order", bad_order);
    int n_unique = -1;
    uint8_t *first = calloc((size_t)x.n + 1, 1);
    st = dfs_mol_unique((const char *const *)forms, x.n, &n_unique, first);
    CHECK(st == DFS_OK && n_unique == x.n, "%d distinct canonical forms among %d molecules",
          n_unique, x.n);
    for (int i = 0; i < x.n && n_unique != x.n; i++)
        if (!first[i]) fprintf(stderr, "  repeated: %s\n", x.mols[i].title);
    free(first);
    for (int i = 0; i < x.n; i++)
        free(forms[i]);
    free(forms);

    char *text = slurp(pj);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL, "%s is JSON", pj);
    CHECK(json_int(j, "molecules") == x.n, "sources.json: molecules %d, files %d",
          json_int(j, "molecules"), x.n);
    const cJSON *e, *srcs = cJSON_GetObjectItemCaseSensitive(j, "sources");
    int listed = 0;
    cJSON_ArrayForEach(e, srcs) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        int src =
            cJSON_IsString(nm) ? dfs_molsrc_find(nm->valuestring, strlen(nm->valuestring)) : -1;
        CHECK(src >= 0, "sources.json: a source without a known name");
        if (src < 0) continue;
        listed++;
        const cJSON *dr = cJSON_GetObjectItemCaseSensitive(e, "dropped");
        int sum = 0, read = json_int(e, "read"), filtered = json_int(e, "filtered");
        int k = json_int(e, "kept");
        for (int r = 1; r < DFS_MOLDROP_COUNT; r++)
            sum += json_int(dr, dfs_moldrop_names[r]);
        CHECK(k == kept[src], "sources.json: %s kept %d, the files hold %d", nm->valuestring, k,
              kept[src]);
        CHECK(read == sum + k && filtered == k + json_int(dr, "duplicate") && read >= 0,
              "sources.json: %s: read %d = dropped %d + kept %d, filtered %d = kept + duplicates",
              nm->valuestring, read, sum, k, filtered);
    }
    for (int sidx = 0; sidx < DFS_MOLSRC_COUNT; sidx++)
        listed -= kept[sidx] > 0;
    CHECK(listed >= 0, "a source in the files is not in sources.json");
    cJSON_Delete(j);
    free(text);
    int n = x.n;
    dfs_mol_set_free(&x);
    dfs_mol_set_free(&s);
    return n;
}

/* ---- a build over a made-up package tree ------------------------------------------------- */

/* A CML file of the given atoms (element, x, y, z) with bonds (1-based pairs and orders). */
static const char *cml(const char *name, const char *atoms, const char *bonds) {
    static char b[8192];
    char a[4096] = "", bb[2048] = "";
    const char *p = atoms;
    char el[4];
    double x, y, z;
    int k = 0, used;
    while (sscanf(p, "%3s %lf %lf %lf%n", el, &x, &y, &z, &used) == 4) {
        snprintf(a + strlen(a), sizeof a - strlen(a),
                 "<atom id=\"a%d\" elementType=\"%s\" x3=\"%.4f\" y3=\"%.4f\" z3=\"%.4f\"/>\n", ++k,
                 el, x, y, z);
        p += used;
    }
    int i, j, o;
    p = bonds;
    while (sscanf(p, "%d %d %d%n", &i, &j, &o, &used) == 3) {
        snprintf(bb + strlen(bb), sizeof bb - strlen(bb),
                 "<bond atomRefs2=\"a%d a%d\" order=\"%d\"/>\n", i, j, o);
        p += used;
    }
    snprintf(b, sizeof b,
             "<molecule xmlns=\"http://www.xml-cml.org/schema\">\n<name>%s</name>\n"
             "<atomArray>\n%s</atomArray>\n<bondArray>\n%s</bondArray>\n</molecule>\n",
             name, a, bb);
    return b;
}

#define WATER "O 0 0 0  H 0.96 0 0  H -0.24 0.93 0", "1 2 1  1 3 1"
#define METHANOL                                                                                   \
    "C 0 0 0  O 1.43 0 0  H 1.75 0.9 0  H -0.36 1.03 0  H -0.36 -0.51 0.89  H -0.36 -0.51 -0.89",  \
        "1 2 1  2 3 1  1 4 1  1 5 1  1 6 1"
/* trans- and cis-difluorodiazene (FN=NF): one bond graph */
#define N2F2_E "N 0 0 0  N 1.23 0 0  F -0.6 1.2 0  F 1.83 -1.2 0", "1 2 2  1 3 1  2 4 1"
#define N2F2_Z "N 0 0 0  N 1.23 0 0  F -0.6 1.2 0  F 1.83 1.2 0", "1 2 2  1 3 1  2 4 1"

static void test_build(void) {
    char root[600];
    snprintf(root, sizeof root, "%s/root", tmpdir);
    put("root/usr/share/chemical-structures/a/water.cml", cml("water", WATER));
    put("root/usr/share/chemical-structures/a/methanol.cml", cml("methanol", METHANOL));
    put("root/usr/share/chemical-structures/b/E-N2F2.cml", cml("E", N2F2_E));
    put("root/usr/share/chemical-structures/b/Z-N2F2.cml", cml("Z", N2F2_Z));
    put("root/usr/share/chemical-structures/b/broken.cml", "<molecule>\n<atomArray>\n");
    put("root/usr/share/chemical-structures/b/salt.cml",
        cml("HCl", "Cl 0 0 0  H 1.27 0 0", "1 2 1"));
    put("root/usr/share/chemical-structures/top.cml", cml("not GROUP/NAME", WATER));
    put("root/usr/share/chemical-structures/b/notes.txt", "not a molecule\n");
    put("root/usr/share/avogadro2/molecules/water.cml", cml("water again", WATER));
    put("root/usr/share/avogadro2/molecules/x/y/hf.cml", cml("HF", "F 0 0 0  H 0.92 0 0", "1 2 1"));
    put("root/usr/share/avogadro2/molecules/x/flat.cml",
        "<molecule><atomArray><atom id=\"a\" elementType=\"O\" x2=\"0\" y2=\"0\"/>"
        "<atom id=\"b\" elementType=\"H\" x2=\"0.96\" y2=\"0\"/></atomArray>"
        "<bondArray><bond atomRefs2=\"a b\" order=\"1\"/></bondArray></molecule>");
    put("root/usr/lib/python3/dist-packages/ase/collections/g2.json",
        "{\"1\": {\"numbers\": [8, 1, 1], \"positions\": [[0, 0, 0.119], [0, 0.763, -0.477], "
        "[0, -0.763, -0.477]], \"key_value_pairs\": {\"name\": \"H2O\"}},\n"
        "\"2\": {\"numbers\": [7, 1, 1, 1], \"positions\": [[0, 0, 0.116], [0, 0.939, -0.271], "
        "[0.813, -0.469, -0.271], [-0.813, -0.469, -0.271]], \"key_value_pairs\": {\"name\": "
        "\"NH3\"}},\n"
        "\"3\": {\"numbers\": [8, 1], \"positions\": [[0, 0, 0.108], [0, 0, -0.865]], "
        "\"initial_magmoms\": [0.5, 0.5], \"key_value_pairs\": {\"name\": \"OH\"}},\n"
        "\"4\": {\"numbers\": [8, 1], \"positions\": [[0, 0, 0]]},\n"
        "\"ids\": [1, 2, 3, 4], \"nextid\": 5}\n");

    dfs_moldata_options o;
    dfs_moldata_options_default(&o);
    o.root = root;
    o.sources = 7; /* no NCI: obabel is tested by tests/cli/cli_mol_data.sh */
    dfs_moldata d;
    dfs_status st = dfs_moldata_build(&d, &o);
    CHECK(st == DFS_OK, "build: %s", dfs_last_error());
    if (st) return;
    const dfs_molsrc_count *cs = &d.count[DFS_MOLSRC_CHEMICAL_STRUCTURES];
    const dfs_molsrc_count *av = &d.count[DFS_MOLSRC_AVOGADRO], *g2 = &d.count[DFS_MOLSRC_G2];
    CHECK(cs->read == 6 && cs->dropped[DFS_MOLDROP_UNREADABLE] == 1 &&
              cs->dropped[DFS_MOLDROP_ELEMENT] == 1 && cs->filtered == 4 &&
              cs->dropped[DFS_MOLDROP_DUPLICATE] == 1 && cs->kept == 3 && cs->file_bonds == 3,
          "chemical-structures: read %d (GROUP/NAME.cml only), unreadable %d, element %d, "
          "filtered %d, duplicate %d (Z of E), kept %d",
          cs->read, cs->dropped[DFS_MOLDROP_UNREADABLE], cs->dropped[DFS_MOLDROP_ELEMENT],
          cs->filtered, cs->dropped[DFS_MOLDROP_DUPLICATE], cs->kept);
    CHECK(av->read == 3 && av->dropped[DFS_MOLDROP_NO_3D] == 1 &&
              av->dropped[DFS_MOLDROP_DUPLICATE] == 1 && av->kept == 1,
          "avogadro: read %d, no-3d %d, duplicate %d, kept %d", av->read,
          av->dropped[DFS_MOLDROP_NO_3D], av->dropped[DFS_MOLDROP_DUPLICATE], av->kept);
    CHECK(g2->read == 4 && g2->dropped[DFS_MOLDROP_UNREADABLE] == 1 &&
              g2->dropped[DFS_MOLDROP_OPEN_SHELL] == 1 && g2->dropped[DFS_MOLDROP_DUPLICATE] == 1 &&
              g2->kept == 1 && g2->file_bonds == 0,
          "g2: read %d, unreadable %d, open-shell %d, duplicate %d (water), kept %d", g2->read,
          g2->dropped[DFS_MOLDROP_UNREADABLE], g2->dropped[DFS_MOLDROP_OPEN_SHELL],
          g2->dropped[DFS_MOLDROP_DUPLICATE], g2->kept);
    /* titles are "SOURCE PATH-below-the-package-folder" (not the CML's <name>), files in
     * sorted order folder by folder; Avogadro's water repeats chemical-structures' */
    static const char *const titles[] = {
        "chemical-structures a/methanol", "chemical-structures a/water",
        "chemical-structures b/E-N2F2", "avogadro x/y/hf", "g2 NH3"};
    int n = d.mols.n == 5;
    for (int i = 0; n && i < 5; i++)
        n = !strcmp(d.mols.mols[i].title, titles[i]);
    CHECK(n, "titles and order (%d molecules; first \"%s\")", d.mols.n,
          d.mols.n ? d.mols.mols[0].title : "");
    CHECK(d.mols.n == 5 && d.mols.mols[4].n_bonds == 3, "g2 NH3 gets EDM's 3 bonds: %d",
          d.mols.n == 5 ? d.mols.mols[4].n_bonds : -1);
    st = dfs_moldata_write(&d, P("out"));
    CHECK(st == DFS_OK, "write: %s", dfs_last_error());
    CHECK(check_dir(P("out")) == 5, "the written set reads back");
    dfs_moldata_free(&d);
    CHECK(d.mols.n == 0 && !d.forms, "free zeroes");
}

static void test_build_bad(void) {
    dfs_moldata_options o;
    dfs_moldata_options_default(&o);
    char root[600];
    snprintf(root, sizeof root, "%s/nothing", tmpdir);
    o.root = root;
    dfs_moldata d;
    for (int s = 0; s < DFS_MOLSRC_COUNT; s++) {
        o.sources = 1u << s;
        dfs_status st = dfs_moldata_build(&d, &o);
        CHECK(st == DFS_ERR_IO && strstr(dfs_last_error(), dfs_molsrc_packages[s]) &&
                  strstr(dfs_last_error(), root) && d.mols.n == 0,
              "%s missing: %s", dfs_molsrc_names[s], dfs_last_error());
    }
    o.sources = 1u << DFS_MOLSRC_COUNT;
    CHECK(dfs_moldata_build(&d, &o) == DFS_ERR_ARG, "an unknown source bit");
    o.sources = 0;
    CHECK(dfs_moldata_build(&d, &o) == DFS_OK && d.mols.n == 0, "no sources: an empty set");
    dfs_moldata_free(&d);
    /* a G2 file that is not JSON fails the build (a broken package, not one bad entry) */
    put("bad/usr/lib/python3/dist-packages/ase/collections/g2.json",
        "{\"1\": {\n\"numbers\": [1,\n");
    snprintf(root, sizeof root, "%s/bad", tmpdir);
    o.sources = 1u << DFS_MOLSRC_G2;
    dfs_status st = dfs_moldata_build(&d, &o);
    CHECK(st == DFS_ERR_FORMAT && strstr(dfs_last_error(), "g2.json: line 2: not valid JSON"),
          "corrupt g2.json: %s", dfs_last_error());
    CHECK(dfs_moldata_write(NULL, "x") == DFS_ERR_ARG, "write NULL");
    CHECK(dfs_molsrc_find("g2", 2) == DFS_MOLSRC_G2 && dfs_molsrc_find("g", 1) < 0 &&
              dfs_molsrc_find("nci,", 4) < 0,
          "dfs_molsrc_find");
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--check")) {
        int n = check_dir(argv[2]);
        printf("test_mol_build --check %s: %d molecules\n", argv[2], n);
        return check_summary("test_mol_build --check");
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfs_mol_build_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_cml_read();
    test_cml_bad();
    test_filter();
    test_build();
    test_build_bad();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_mol_build");
}
