#!/usr/bin/python3
"""layers.py - check that the library's folders form layers, and draw them.

    layers.py [--root DIR] [--obj BUILD/obj] [--svg OUT.svg] [--table]

The order of the layers is src/LAYERS (bottom first). A file in src/L may include
  "diffuse/M.h"   the public header of layer M,
  "name.h"        a private header of its own folder,
  "../M/name.h"   a private header of folder M,
and include/diffuse/L.h may include "diffuse/M.h", each only where M is L or comes before it.
Including the umbrella "diffuse.h" from src/ is refused: it would hide which layers a file
uses. With --obj, every global symbol that an object of src/L uses and an object of another
folder M defines (nm) must also have M before L: that covers calls that no include shows.
Since every folder has its own place in the order, a cycle between folders always contains an
upward step, so no cycle can pass either check.

Exit status 0 when everything points downward, 1 with one line per violation otherwise (2 for
a broken setup). --svg writes a picture of the layers with an arrow for each pair of folders
that depend on each other, from the objects; --table prints the same as text.
"""
import argparse
import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def read_layers(root):
    """[(name, description, extra)] from src/LAYERS, bottom first."""
    layers, extra = [], False
    path = os.path.join(root, "src", "LAYERS")
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("---"):
                extra = True
                continue
            name, _, desc = line.partition(" ")
            layers.append((name, desc.strip(), extra))
    return layers


def check_includes(root, rank):
    errors = []
    src = os.path.join(root, "src")
    for d in sorted(os.listdir(src)):
        full = os.path.join(src, d)
        if not os.path.isdir(full):
            continue
        if d not in rank:
            errors.append(f"src/{d}/: folder not listed in src/LAYERS")
            continue
        for fn in sorted(os.listdir(full)):
            if not fn.endswith((".c", ".h")):
                continue
            rel = f"src/{d}/{fn}"
            with open(os.path.join(full, fn), errors="replace") as f:
                text = f.read()
            for inc in INCLUDE.findall(text):
                errors += judge(rel, d, inc, rank, lambda name: os.path.exists(os.path.join(full, name)))
    inc_dir = os.path.join(root, "include", "diffuse")
    for fn in sorted(os.listdir(inc_dir)):
        if not fn.endswith(".h"):
            continue
        layer = fn[:-2]
        rel = f"include/diffuse/{fn}"
        if layer not in rank:
            errors.append(f"{rel}: no layer '{layer}' in src/LAYERS")
            continue
        with open(os.path.join(inc_dir, fn)) as f:
            for inc in INCLUDE.findall(f.read()):
                m = re.fullmatch(r"diffuse/(\w+)\.h", inc)
                if not m:
                    errors.append(f'{rel}: includes "{inc}": a public header includes only other public headers')
                elif m.group(1) not in rank:
                    errors.append(f'{rel}: includes "{inc}": no such layer')
                elif rank[m.group(1)] > rank[layer]:
                    errors.append(f'{rel}: includes "{inc}": {m.group(1)} is above {layer} (upward include)')
    return errors


def judge(rel, layer, inc, rank, exists_here):
    if inc == "diffuse.h":
        return [f'{rel}: includes "diffuse.h": include the headers of the layers it uses (diffuse/LAYER.h)']
    m = re.fullmatch(r"diffuse/(\w+)\.h", inc) or re.fullmatch(r"\.\./(\w+)/[\w.]+\.h", inc)
    if m:
        target = m.group(1)
    elif re.fullmatch(r"[\w.]+\.h", inc):
        if not exists_here(inc):
            return [f'{rel}: includes "{inc}", which is not in src/{layer}/']
        return []
    else:
        return [f'{rel}: includes "{inc}": not a layer header ("diffuse/L.h", "name.h" or "../L/name.h")']
    if target not in rank:
        return [f'{rel}: includes "{inc}": no layer "{target}" in src/LAYERS']
    if rank[target] > rank[layer]:
        return [f'{rel}: includes "{inc}": {target} is above {layer} (upward include)']
    return []


def nm(path, *flags):
    out = subprocess.run(["nm", *flags, path], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def symbol_graph(obj, rank):
    """defs: symbol -> (layer, object); uses: [(layer, object, symbol)]."""
    defs, uses = {}, []
    for d in sorted(os.listdir(obj)):
        full = os.path.join(obj, d)
        if not os.path.isdir(full):
            continue
        if d not in rank:
            raise SystemExit(f"layers.py: {obj}/{d}: folder not listed in src/LAYERS")
        for fn in sorted(os.listdir(full)):
            if not fn.endswith(".o"):
                continue
            o = os.path.join(full, fn)
            for line in nm(o, "--defined-only", "-g"):
                parts = line.split()
                if len(parts) == 3 and parts[1] in "TDBRCVW":
                    defs[parts[2]] = (d, fn)
            for line in nm(o, "-u"):
                parts = line.split()
                if parts:
                    uses.append((d, fn, parts[-1]))
    return defs, uses


def check_symbols(obj, rank):
    errors, edges = [], {}
    defs, uses = symbol_graph(obj, rank)
    for layer, fn, sym in uses:
        if sym not in defs:
            continue
        target, tfn = defs[sym]
        if target == layer:
            continue
        edges.setdefault((layer, target), set()).add(sym)
        if rank[target] > rank[layer]:
            errors.append(f"src/{layer}/{fn[:-2]}.c uses {sym}, defined in src/{target}/{tfn[:-2]}.c: "
                          f"{target} is above {layer} (upward call)")
    return errors, edges


def table(layers, edges):
    lines = []
    for name, desc, extra in reversed(layers):
        below = sorted({t for (a, t) in edges if a == name}, key=lambda t: -[l[0] for l in layers].index(t))
        lines.append(f"{name:10s} {'(extra) ' if extra else ''}uses: {', '.join(below) if below else '-'}")
    return "\n".join(lines)


def svg(layers, edges, files):
    """Boxes bottom-up (top of the picture = top layer), an arc on the right per dependency."""
    names = [l[0] for l in layers]
    n = len(layers)
    box_w, box_h, gap, left = 780, 44, 14, 20
    top = 56
    y = {name: top + (n - 1 - i) * (box_h + gap) for i, name in enumerate(names)}
    pairs = sorted((e for e in edges if e[1] != "base"), key=lambda e: (names.index(e[0]) - names.index(e[1]), names.index(e[1])))
    width = left + box_w + 40 + 14 * len(pairs) + 20
    height = top + n * (box_h + gap) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="DejaVu Sans, sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">diffuse: the layers of src/ '
           f'(src/LAYERS), each using only those below it</text>',
           f'<text x="{left}" y="42" fill="#555">An arrow for each folder that another one calls '
           f'(from nm of the objects); every folder calls base, which is not drawn.</text>',
           '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>']
    for name, desc, extra in layers:
        fill = "#fdf0d5" if extra else ("#e8eef7" if name != "ref" else "#eeeeee")
        yy = y[name]
        out.append(f'<rect x="{left}" y="{yy}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" stroke="#444"/>')
        out.append(f'<text x="{left + 10}" y="{yy + 18}" font-weight="bold">src/{name}</text>')
        out.append(f'<text x="{left + 110}" y="{yy + 18}">{esc(desc)}</text>')
        out.append(f'<text x="{left + 110}" y="{yy + 35}" fill="#555">{esc(", ".join(files.get(name, [])))}</text>')
    for k, (a, b) in enumerate(pairs):
        x = left + box_w + 30 + 14 * k
        ya, yb = y[a] + box_h / 2 + 4 - 8 * ((k % 3) - 1) / 2, y[b] + box_h / 2 - 4 + 8 * ((k % 3) - 1) / 2
        out.append(f'<path d="M{left + box_w},{ya:.0f} H{x} V{yb:.0f} H{left + box_w + 2}" fill="none" '
                   f'stroke="#555" stroke-width="1" marker-end="url(#a)"/>')
    out.append(f'<text x="{left}" y="{height - 10}" fill="#555">blue: libdiffuse.a (BLAS, OpenMP, zlib, libpng, '
               f'cJSON); orange: libdiffuse-extra.a (FreeType, HarfBuzz, LAPACK); grey: tests only. '
               f'Made by tests/build/layers.py --svg.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=".")
    ap.add_argument("--obj")
    ap.add_argument("--svg")
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    try:
        layers = read_layers(a.root)
    except OSError as e:
        print(f"layers.py: {e}", file=sys.stderr)
        return 2
    rank = {name: i for i, (name, _, _) in enumerate(layers)}
    errors = check_includes(a.root, rank)
    edges = {}
    if a.obj:
        e, edges = check_symbols(a.obj, rank)
        errors += e
    for e in errors:
        print(f"layers: {e}")
    if a.table:
        print(table(layers, edges))
    if a.svg:
        files = {}
        for name, _, _ in layers:
            d = os.path.join(a.root, "src", name)
            files[name] = sorted(f for f in os.listdir(d) if f.endswith(".c")) if os.path.isdir(d) else []
        with open(a.svg, "w") as f:
            f.write(svg(layers, edges, files))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
