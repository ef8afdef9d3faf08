#!/usr/bin/env python3
"""seeds.py - the seed files of fuzz/corpus written byte by byte (PNG variants, IDX from
Fashion-MNIST, .npy version 2.0, tokenizer JSON, captioned-folder archives, CML files from
chemical-structures-data and libavogadro-data) and the hostile regression inputs of issues 14
and 17 in fuzz/regressions. `make fuzz-seeds` runs it after fuzz/seeds.c.
Usage: seeds.py FUZZDIR (fuzz/). Only the standard library (zlib, struct, gzip)."""
import gzip
import os
import struct
import sys
import zlib

FUZZ = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
FMNIST = "/usr/share/datasets/fashion-mnist"
CHEMICAL_STRUCTURES = "/usr/share/chemical-structures"
AVOGADRO = "/usr/share/avogadro2/molecules"


def put(rel, data):
    path = os.path.join(FUZZ, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---- PNG -----------------------------------------------------------------------------------

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w, h, color, depth, rows, interlace=0, extra=(), level=9, idat=None):
    """rows: h bytes objects of packed samples (no filter byte), or for interlace=1 the
    full-image rows, which are split into the seven Adam7 passes here."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    if idat is None:
        if interlace:
            raw = adam7(w, h, color, depth, rows)
        else:
            raw = b"".join(b"\0" + r for r in rows)
        idat = zlib.compress(raw, level)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, data in extra:
        out += chunk(kind, data)
    return out + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def adam7(w, h, color, depth, rows):
    assert depth == 8, "adam7 helper packs 8-bit samples only"
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    out = b""
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)]:
        xs = list(range(x0, w, dx))
        if not xs:
            continue
        for y in range(y0, h, dy):
            out += b"\0" + b"".join(rows[y][x * ch:(x + 1) * ch] for x in xs)
    return out


def gradient(w, h, ch, depth=8):
    rows = []
    for y in range(h):
        if depth == 16:
            rows.append(b"".join(struct.pack(">H", (x * 4099 + y * 777 + k * 50000) & 0xFFFF)
                                 for x in range(w) for k in range(ch)))
        else:
            rows.append(bytes((x * 37 + y * 11 + k * 80) & 0xFF for x in range(w) for k in range(ch)))
    return rows


def pngs():
    put("corpus/png/palette-trns-5x3.png",
        png(5, 3, 3, 8, [bytes([0, 1, 2, 1, 0]), bytes([2, 2, 1, 0, 0]), bytes([1, 0, 2, 2, 1])],
            extra=[(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])), (b"tRNS", bytes([0, 128]))]))
    put("corpus/png/gray-alpha-4x4.png", png(4, 4, 4, 8, gradient(4, 4, 2)))
    put("corpus/png/rgba-3x5.png", png(3, 5, 6, 8, gradient(3, 5, 4),
                                       extra=[(b"tEXt", b"Comment\0fuzz seed"), (b"gAMA", struct.pack(">I", 45455))]))
    put("corpus/png/rgb16-3x2.png", png(3, 2, 2, 16, gradient(3, 2, 3, 16)))
    put("corpus/png/gray1-9x3.png", png(9, 3, 0, 1, [bytes([0b10110010, 0b10000000])] * 3))
    put("corpus/png/gray-trns-3x3.png", png(3, 3, 0, 8, gradient(3, 3, 1), extra=[(b"tRNS", struct.pack(">H", 37))]))
    put("corpus/png/rgb-interlaced-9x9.png", png(9, 9, 2, 8, gradient(9, 9, 3), interlace=1))


# ---- IDX -----------------------------------------------------------------------------------

SEP = b"\n--labels--\n"  # fuzz_idx.c's FUZZ_IDX_SEP


def idx():
    with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
        head = f.read(16)
        n = 3
        images = struct.pack(">IIII", 0x803, n, 28, 28) + f.read(n * 28 * 28)
    assert head[:4] == b"\0\0\x08\x03"
    with gzip.open(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")) as f:
        f.read(8)
        labels = struct.pack(">II", 0x801, n) + f.read(n)
    gz = lambda b: gzip.compress(b, mtime=0)
    put("corpus/idx/fmnist3-images.idx", images)
    put("corpus/idx/fmnist3-images-labels.idx", images + SEP + labels)
    put("corpus/idx/fmnist3-images-labels.idx.gz", gz(images) + SEP + gz(labels))
    small = struct.pack(">IIII", 0x803, 2, 2, 3) + bytes(range(12))
    put("corpus/idx/2x2x3-labels.idx", small + SEP + struct.pack(">II", 0x801, 2) + bytes([4, 1]))
    # issue 14: a raw images header declaring 1 x 65536 x 65536 (4 GiB of pixels) and no data,
    # and the same as gzip. Before b2787b0 the loader allocated 4 GiB before reading any pixel.
    bomb = struct.pack(">IIII", 0x803, 1, 65536, 65536)
    put("regressions/idx/header-1x65536x65536.idx", bomb)
    put("regressions/idx/header-1x65536x65536.idx.gz", gz(bomb))


# ---- .npy ----------------------------------------------------------------------------------

def npy_v2(descr, shape, data):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    pad = (-(12 + len(hdr) + 1)) % 64
    hdr = (hdr + " " * pad + "\n").encode()
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(hdr)) + hdr + data


def npys():
    put("corpus/npy/v2-i32-2x2.npy", npy_v2("<i4", "(2, 2)", struct.pack("<4i", 1, -2, 3, -4)))
    put("corpus/npy/v2-u8-scalar.npy", npy_v2("|u1", "()", b"\x07"))


# ---- tokenizer -----------------------------------------------------------------------------

def tokenizers():
    put("corpus/tokenizer/specials-only.json",
        b'{"format":"diffuse-words-1","max_len":3,"vocab":["<pad>","<unk>","<bos>","<eos>"]}')
    put("corpus/tokenizer/unicode.json",
        '{"format": "diffuse-words-1", "max_len": 8, "vocab": ["<pad>", "<unk>", "<bos>", "<eos>", "caf\u00e9", '
        '"na\\u00efve", "shirt", "42"]}\0Caf\u00e9 na\u00efve T-shirt 42 \u2603'.encode())


# ---- captioned folders (fuzz_captions.c's archive) ------------------------------------------

def entry(name, data):
    return b"==> " + name.encode() + b" <==\n" + data + b"\n"


def captions():
    a = png(4, 4, 0, 8, gradient(4, 4, 1))
    b = png(4, 4, 2, 8, gradient(4, 4, 3))
    c = png(6, 6, 6, 8, gradient(6, 6, 4))
    meta = (b'{"file_name": "a.png", "text": "a gray square", "label": 0}\n'
            b'{"file_name": "img/b.png", "text": "a colour \\"square\\"\\twith a tab", "label": 3}\n')
    put("corpus/captions/metadata.bin", b"size=4 channels=1\n" + entry("metadata.jsonl", meta) + entry("a.png", a)
        + entry("img/b.png", b))
    meta2 = b'\xef\xbb\xbf{"file_name":"c.png","text":"rgba"}\n\n{"file_name":"a.png","text":"caf\xc3\xa9"}\n'
    put("corpus/captions/metadata-natural.bin", entry("metadata.jsonl", meta2) + entry("c.png", c) + entry("a.png", b))
    put("corpus/captions/txt.bin", b"size=3 channels=3 limit=2\n" + entry("x.png", a) + entry("x.txt", b"  a small thing \n")
        + entry("y.png", b) + entry("y.txt", b"\xef\xbb\xbfanother\r\nline") + entry("sub/", b""))


# ---- the PNG bomb (issue 14) ---------------------------------------------------------------

def png_bomb():
    """16384 x 16384 RGBA, 8-bit: 1 GiB of zero rows (filter 0) in about 1 MB of zlib, within
    libpng's 16384-pixel limit a side. Before b2787b0 it decoded in full (1 GiB for the rows and
    768 MB for the planes); since then dfs_png_read refuses more than 4096 x 4096 pixels before
    decoding."""
    w = h = 16384
    z = zlib.compressobj(9)
    row = bytes(1 + 4 * w)
    parts = [z.compress(row) for _ in range(h)]
    parts.append(z.flush())
    put("regressions/png/bomb-16384x16384-rgba.png", png(w, h, 6, 8, None, idat=b"".join(parts)))


# ---- molecules (issue 17) ------------------------------------------------------------------

def copy(src, rel):
    with open(src, "rb") as f:
        put(rel, f.read())


def molecules():
    # CML as the packages ship it: namespaces, a <name>, properties (water); a double bond
    # (formaldehyde); formal charges on nitro groups (TNT); no namespace and padded atomRefs2
    # and orders (Avogadro)
    copy(os.path.join(CHEMICAL_STRUCTURES, "water/water.cml"), "corpus/cml/water.cml")
    copy(os.path.join(CHEMICAL_STRUCTURES, "aldehydes/formaldehyde.cml"), "corpus/cml/formaldehyde.cml")
    copy(os.path.join(CHEMICAL_STRUCTURES, "aromatics/2_4_6-trinitrotoluene.cml"), "corpus/cml/trinitrotoluene.cml")
    copy(os.path.join(AVOGADRO, "coordination/3-trigonal-planar.cml"), "corpus/cml/avogadro-trigonal-planar.cml")
    # what the packages do not show: a <cml> wrapper in a prefixed namespace, 2-D coordinates,
    # hydrogenCount, formalCharge, aromatic and letter orders, an id as the title
    put("corpus/cml/wrapper-2d.cml",
        b'<?xml version="1.0"?>\n<c:cml xmlns:c="http://www.xml-cml.org/schema">\n'
        b'<c:molecule id="pyridinium">\n<c:atomArray>\n'
        b'<c:atom id="n1" elementType="N" formalCharge="+1" hydrogenCount="1" x2="0" y2="1.4"/>\n'
        b'<c:atom id="c2" elementType="C" hydrogenCount="1" x2="1.2" y2="0.7"/>\n'
        b'<c:atom id="c3" elementType="C" hydrogenCount="1" x2="1.2" y2="-0.7"/>\n'
        b'<c:atom id="c4" elementType="C" hydrogenCount="1" x2="0" y2="-1.4"/>\n'
        b'<c:atom id="c5" elementType="C" hydrogenCount="1" x2="-1.2" y2="-0.7"/>\n'
        b'<c:atom id="c6" elementType="C" hydrogenCount="1" x2="-1.2" y2="0.7" x3="-1.2" y3="0.7" z3="0"/>\n'
        b'</c:atomArray>\n<c:bondArray>\n'
        b'<c:bond atomRefs2="n1 c2" order="A"/><c:bond atomRefs2="c2 c3" order="1.5"/>\n'
        b'<c:bond atomRefs2="c3 c4" order="D"/><c:bond atomRefs2="c4 c5" order="S"/>\n'
        b'<c:bond atomRefs2="c5 c6" order="2"/><c:bond atomRefs2="c6 n1"/>\n'
        b'</c:bondArray>\n</c:molecule>\n</c:cml>\n')
    # hostile CML: nested entities that would expand to 1.5 GB in the title ("billion
    # laughs"), and an external entity naming a local file; libxml2 refuses the first
    # (amplification) and, without XML_PARSE_NOENT and DTDLOAD, never loads the second
    ents = b'<!ENTITY a0 "lollollollollol">\n' + b"".join(
        b'<!ENTITY a%d "%s">\n' % (i, b"&a%d;" % (i - 1) * 10) for i in range(1, 9))
    atom = b'<atomArray><atom id="a1" elementType="H" x3="0" y3="0" z3="0"/></atomArray>'
    put("regressions/cml/entities-1.5GB-title.cml",
        b'<?xml version="1.0"?>\n<!DOCTYPE molecule [\n' + ents + b']>\n<molecule id="&a8;"><name>&a8;</name>'
        + atom + b'</molecule>\n')
    put("regressions/cml/external-entity.cml",
        b'<?xml version="1.0"?>\n<!DOCTYPE molecule [\n<!ENTITY x SYSTEM "file:///etc/passwd">\n'
        b'<!ENTITY % d SYSTEM "http://localhost:1/x.dtd">\n%d;\n]>\n<molecule><name>&x;</name>' + atom
        + b'</molecule>\n')
    # hydrogenCount is read up to 1e9 (mol_parse_int): three such counts overflowed the int sum
    # of dfs_cml_info.implicit_h (signed overflow, UBSan); now summed in 64 bits and capped
    put("regressions/cml/hydrogenCount-3x999999999-int-overflow.cml",
        b'<molecule><atomArray><atom id="a" elementType="C" hydrogenCount="999999999"/>'
        b'<atom id="b" elementType="C" hydrogenCount="999999999"/>'
        b'<atom id="c" elementType="C" hydrogenCount="999999999"/></atomArray></molecule>')
    # counts that promise more than the file holds: refused at the end of the file, after
    # allocating at most the DFS_MOL_MAX_ATOMS (XYZ) or 999 (SDF) atoms
    put("regressions/mol/xyz-count-10000-empty.xyz", b"10000\nno atoms follow\n")
    put("regressions/mol/sdf-counts-999-999-empty.sdf",
        b"title\n  diffuse           3D\n\n999999  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n")


if __name__ == "__main__":
    pngs()
    idx()
    npys()
    tokenizers()
    captions()
    png_bomb()
    molecules()
