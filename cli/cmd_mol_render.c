/* cmd_mol_render.c - diffuse mol render: molecules from an XYZ or SDF file as a PNG grid of
 * ball-and-stick pictures with captions, or one molecule's trajectory as a row of frames. */
#include "common.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *render_help =
    "usage: diffuse mol render --in FILE.xyz|FILE.sdf --out FILE.png [options]\n"
    "\n"
    "Draw molecules as ball-and-stick pictures in a grid, a caption under each: atoms as balls\n"
    "in their Jmol (CPK) colours (H white, C grey, N blue, O red, F green, S yellow, P orange,\n"
    "Cl green, Br dark red, I violet, any other element blue-grey), bonds as sticks (double and\n"
    "triple bonds as two and three thin ones, aromatic ones with a dashed one beside), shaded\n"
    "and darkened with depth. Each molecule is seen along its principal axes (largest spread\n"
    "across, smallest toward you) and scaled to its panel, a small one no larger than a\n"
    "molecule 4 Angstrom across. Bonds are the file's own (SDF); where a molecule has none (XYZ\n"
    "files) they are found from the distances with EDM's bond-length tables, as 'diffuse mol\n"
    "eval' finds them. Run twice on the same file, it writes the same PNG byte for byte.\n"
    "\n"
    "  --in FILE           the molecules: multi-frame XYZ (.xyz) or SDF V2000 (.sdf, .mol)\n"
    "                      (required)\n"
    "  --out FILE.png      the picture (required)\n"
    "  --cols N            panels per row, 1..1000 (default 4; not with --trajectory)\n"
    "  --size PX           side of each panel in pixels, 32..4096 (default 240)\n"
    "  --max N             draw the first N molecules, 1..100000 (default 16); with\n"
    "                      --trajectory, N frames spread evenly from the first to the last,\n"
    "                      both included (default 8)\n"
    "  --captions KIND     under each panel: formula (Hill order, as C2H6O), index (the\n"
    "                      molecule's or frame's number in the file, from 1), title (its XYZ\n"
    "                      comment line or SDF name line), or none (default formula; with\n"
    "                      --trajectory, index)\n"
    "  --trajectory        the frames of the file are one molecule's trajectory (e.g. the steps\n"
    "                      of a denoising run): one row of panels, every frame seen from the\n"
    "                      view of the last one at one scale that holds them all, so that the\n"
    "                      motion of the atoms shows\n";

enum { CAP_FORMULA, CAP_INDEX, CAP_TITLE, CAP_NONE, CAP_COUNT };
static const char *const CAP_NAMES[CAP_COUNT] = {"formula", "index", "title", "none"};

/* The molecular formula in Hill order (carbon, then hydrogen, then the rest alphabetically;
 * without carbon, all alphabetically), counts of 1 left out, into buf; "no atoms" for none. */
static void hill_formula(const dfs_mol *m, char *buf, size_t cap) {
    int count[DFS_MOL_MAX_Z + 1] = {0}, other = 0;
    for (int i = 0; i < m->n; i++) {
        if (m->z[i] >= 1 && m->z[i] <= DFS_MOL_MAX_Z) count[m->z[i]]++;
        else other++;
    }
    int order[DFS_MOL_MAX_Z], n = 0;
    const int carbon = count[6] > 0;
    if (carbon) order[n++] = 6;
    if (carbon && count[1]) order[n++] = 1;
    /* the rest by symbol: insertion sort of the present elements */
    for (int z = 1; z <= DFS_MOL_MAX_Z; z++) {
        if (!count[z] || (carbon && (z == 6 || z == 1))) continue;
        int j = n;
        while (j > (carbon ? (count[1] ? 2 : 1) : 0) &&
               strcmp(dfs_element_symbol(order[j - 1]), dfs_element_symbol(z)) > 0)
            order[j] = order[j - 1], j--;
        order[j] = z, n++;
    }
    size_t len = 0;
    buf[0] = 0;
    for (int k = 0; k < n && len < cap; k++) {
        int c = count[order[k]];
        int w = c > 1 ? snprintf(buf + len, cap - len, "%s%d", dfs_element_symbol(order[k]), c)
                      : snprintf(buf + len, cap - len, "%s", dfs_element_symbol(order[k]));
        len += w > 0 ? (size_t)w : 0;
    }
    if (other && len < cap) snprintf(buf + len, cap - len, "%s?%d", n ? " " : "", other);
    if (!m->n) snprintf(buf, cap, "no atoms");
}

int cmd_mol_render(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    long cols = -1, size = 240, max = -1;
    int cap_kind = -1, trajectory = 0;
    enum { O_IN = 256, O_OUT, O_COLS, O_SIZE, O_MAX, O_CAPTIONS, O_TRAJ };
    static const struct option opts[] = {
        {"in", required_argument, 0, O_IN},       {"out", required_argument, 0, O_OUT},
        {"cols", required_argument, 0, O_COLS},   {"size", required_argument, 0, O_SIZE},
        {"max", required_argument, 0, O_MAX},     {"captions", required_argument, 0, O_CAPTIONS},
        {"trajectory", no_argument, 0, O_TRAJ},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h': fputs(render_help, stdout); return 0;
        case O_IN: in = optarg; break;
        case O_OUT: out = optarg; break;
        case O_COLS: if (cli_int("--cols", optarg, 1, 1000, &cols)) return 2; break;
        case O_SIZE:
            if (cli_int("--size", optarg, DFS_MOL_RENDER_MIN_PX, DFS_MOL_RENDER_MAX_PX, &size))
                return 2;
            break;
        case O_MAX: if (cli_int("--max", optarg, 1, 100000, &max)) return 2; break;
        case O_CAPTIONS:
            cap_kind = -1;
            for (int k = 0; k < CAP_COUNT; k++)
                if (!strcmp(optarg, CAP_NAMES[k])) cap_kind = k;
            if (cap_kind < 0)
                return cli_fail("mol render: --captions is formula, index, title or none, not '%s'",
                                optarg);
            break;
        case O_TRAJ: trajectory = 1; break;
        default: return cli_bad_option("mol render", argv);
        }
    }
    if (optind < argc)
        return cli_fail("mol render: unexpected argument '%s' (the molecules come with --in)",
                        argv[optind]);
    if (!in) return cli_fail("mol render: --in FILE.xyz|FILE.sdf is required");
    if (!out || !ends_with(out, ".png")) return cli_fail("mol render: --out FILE.png is required");
    const int xyz = ends_with(in, ".xyz"), sdf = ends_with(in, ".sdf") || ends_with(in, ".mol");
    if (!xyz && !sdf)
        return cli_fail("mol render: --in %s: the name must end in .xyz, .sdf or .mol", in);
    if (trajectory && cols >= 0)
        return cli_fail("mol render: --cols does not apply to --trajectory (one row of frames)");
    if (cli_out_ok("mol render", "--out", out)) return 2;
    if (cap_kind < 0) cap_kind = trajectory ? CAP_INDEX : CAP_FORMULA;
    if (max < 0) max = trajectory ? 8 : 16;
    if (cols < 0) cols = 4;

    dfs_mol_set set = {0};
    dfs_status s = xyz ? dfs_xyz_read(in, &set) : dfs_sdf_read(in, &set);
    if (s) return cli_fail_status(s); /* "FILE: line N: what is wrong" */
    if (set.n == 0) {
        dfs_mol_set_free(&set);
        return cli_fail("mol render: %s: no molecules in the file", in);
    }
    /* the molecules drawn: the first max, or max frames spread evenly over a trajectory */
    const int n = set.n < max ? set.n : (int)max;
    int *pick = malloc(sizeof *pick * (size_t)n);
    dfs_mol *mols = malloc(sizeof *mols * (size_t)n);
    char **caps = calloc((size_t)n, sizeof *caps);
    int rc = 0;
    if (!pick || !mols || !caps) {
        rc = cli_fail("out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        /* frame i of n at round(i (N - 1) / (n - 1)); a single frame is the last one */
        pick[i] = !trajectory ? i
                  : n == 1    ? set.n - 1
                              : (int)(((long long)i * (set.n - 1) * 2 + (n - 1)) / (2LL * (n - 1)));
        mols[i] = set.mols[pick[i]]; /* shallow: the set keeps owning the atoms */
        char text[256];
        if (cap_kind == CAP_FORMULA) hill_formula(&mols[i], text, sizeof text);
        else if (cap_kind == CAP_INDEX)
            snprintf(text, sizeof text, "%s%d", trajectory ? "frame " : "#", pick[i] + 1);
        else if (cap_kind == CAP_TITLE)
            snprintf(text, sizeof text, "%s", mols[i].title ? mols[i].title : "");
        else continue;
        if (!(caps[i] = strdup(text))) {
            rc = cli_fail("out of memory");
            goto done;
        }
    }
    const char *const *captions = cap_kind == CAP_NONE ? NULL : (const char *const *)caps;
    s = trajectory ? dfs_mol_render_trajectory(out, mols, n, captions, (int)size, NULL)
                   : dfs_mol_render_grid(out, mols, n, captions, (int)cols, (int)size, NULL);
    if (s) {
        rc = cli_fail_status(s);
        goto done;
    }
    const int across = trajectory ? n : n < cols ? n : (int)cols;
    const char *what = trajectory ? "frames" : "molecules";
    fprintf(stderr, "wrote %s: %d of the %d %s of %s, %d x %d panels of %ld pixels\n", out, n,
            set.n, what, in, across, (n + across - 1) / across, size);
done:
    if (caps)
        for (int i = 0; i < n; i++) free(caps[i]);
    free(caps), free(mols), free(pick);
    dfs_mol_set_free(&set);
    return rc;
}
