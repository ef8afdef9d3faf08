#!/bin/sh
# install.sh BUILD - diffuse installs like a C library: `make install PREFIX=P` into a temporary
# prefix, then, against what it installed:
#   - the layout: headers, static and shared libraries with their sonames and links, the
#     pkg-config files, the programs (diffuse, diffuse-nn-eval, diffuse-t2i-eval), the models;
#   - examples/*.c built outside the source tree with `cc $(pkg-config --cflags --libs
#     diffuse-extra)` (shared) and run by tests/build/examples.sh; the same with `pkg-config --static`
#     and the archives; with the core library alone (`pkg-config diffuse`);
#   - the installed programs' --help;
#   - `make uninstall` leaves no file behind; the same again with DESTDIR staging.
# Reuses BUILD's objects: the -fPIC copies of the library objects (BUILD/pic) are the only
# compile. Skipped in the sanitizer run (it checks packaging, not memory).
NAME=install; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
skip_under_sanitizer
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
P=$T/prefix
PCP=$P/lib/pkgconfig
CC=${CC:-cc}
STRICT="-std=c11 -Wall -Wextra -Werror -O2" # the public header on its own: no _GNU_SOURCE
MATH=-lm # the examples' own use of <math.h>

# left_behind DIR: the files and links under DIR (folders do not count)
left_behind() { find "$1" ! -type d 2>/dev/null; }
# matches STRING REGEX: the whole of STRING matches the basic regular expression REGEX
matches() { expr "$1" : "$2\$" >/dev/null; }

start=$(date +%s)
make --no-print-directory -C "$ROOT" -j2 BUILD="$BUILD" PREFIX="$P" install >"$T/install.log" 2>&1; rc=$?
check "make install PREFIX=$P exits 0: $(tail -n 3 "$T/install.log")" [ $rc -eq 0 ]
echo "$NAME: make install took $(( $(date +%s) - start ))s"
[ $rc -eq 0 ] || { summary; exit 1; }

# ---- the layout
for f in include/diffuse.h include/diffuse/base.h include/diffuse/model.h include/diffuse/eval.h \
         lib/libdiffuse.a lib/libdiffuse-extra.a lib/pkgconfig/diffuse.pc \
         lib/pkgconfig/diffuse-extra.pc bin/diffuse bin/diffuse-nn-eval bin/diffuse-t2i-eval \
         share/diffuse/models/fmnist.safetensors share/diffuse/models/classifier.safetensors; do
    check "installed $f" [ -s "$P/$f" ]
done
check "every public header is installed" \
    [ "$(ls "$P"/include/diffuse/*.h | wc -l)" -eq "$(ls "$ROOT"/include/diffuse/*.h | wc -l)" ]
same_files "the installed fmnist model is the shipped one" "$ROOT/models/fmnist.safetensors" \
    "$P/share/diffuse/models/fmnist.safetensors"
for l in libdiffuse libdiffuse-extra; do
    real=$(ls "$P/lib/$l.so".[0-9]*.[0-9]*.[0-9]* 2>/dev/null | head -n 1)
    check "$l.so.MAJOR.MINOR.PATCH is installed" [ -f "$real" ]
    soname=$(readelf -d "$real" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    check "$l's soname is $l.so.MAJOR, not '$soname'" matches "$soname" "$l\.so\.[0-9][0-9]*"
    check "$P/lib/$soname links to $(basename "$real")" \
        [ -L "$P/lib/$soname" -a "$(readlink "$P/lib/$soname")" = "$(basename "$real")" ]
    check "$P/lib/$l.so links to $soname" [ "$(readlink "$P/lib/$l.so")" = "$soname" ]
done
check "libdiffuse-extra.so needs libdiffuse.so.0" \
    sh -c "readelf -d '$P/lib/libdiffuse-extra.so' | grep -q 'NEEDED.*\[libdiffuse\.so\.0\]'"
check "libdiffuse.so finds OpenBLAS's OpenMP build through its runpath" \
    sh -c "readelf -d '$P/lib/libdiffuse.so' | grep -q 'RUNPATH.*openblas-openmp'"

# ---- building against it with pkg-config, outside the source tree
export PKG_CONFIG_PATH="$PCP"
check "pkg-config knows diffuse-extra" pkg-config --exists diffuse-extra
cflags=$(pkg-config --cflags diffuse-extra)
check "pkg-config --cflags is the install's include folder only, not '$cflags'" \
    [ "$(echo $cflags)" = "-I$P/include" ]
mkdir -p "$T/shared" "$T/static" "$T/core"
for src in "$ROOT"/examples/*.c; do
    p=$(basename "$src" .c)
    # shellcheck disable=SC2046 # pkg-config's flags are words
    $CC $STRICT -o "$T/shared/$p" "$src" $(pkg-config --cflags --libs diffuse-extra) $MATH 2>"$T/cc.err"; rc=$?
    check "examples/$p.c builds against the installed shared libraries: $(head -n 3 "$T/cc.err")" [ $rc -eq 0 ]
    check "$p is linked to libdiffuse.so.0, not the archive" \
        sh -c "readelf -d '$T/shared/$p' | grep -q 'NEEDED.*\[libdiffuse\(-extra\)\?\.so\.0\]'"
    # static: the archives in place of -ldiffuse-extra -ldiffuse, and Libs.private for the rest
    libs=$(pkg-config --static --libs diffuse-extra | sed "s#-ldiffuse-extra #$P/lib/libdiffuse-extra.a #; s#-ldiffuse #$P/lib/libdiffuse.a #")
    # shellcheck disable=SC2086
    $CC $STRICT -o "$T/static/$p" "$src" $(pkg-config --cflags diffuse-extra) $libs $MATH 2>"$T/cc.err"; rc=$?
    check "examples/$p.c builds against the installed archives: $(head -n 3 "$T/cc.err")" [ $rc -eq 0 ]
    check "the static $p needs no libdiffuse.so" \
        sh -c "! readelf -d '$T/static/$p' | grep -q 'NEEDED.*libdiffuse'"
done
# neither example uses the extra layers (render, data, eval)
for src in "$ROOT"/examples/*.c; do
    p=$(basename "$src" .c)
    # shellcheck disable=SC2046
    $CC $STRICT -o "$T/core/$p" "$src" $(pkg-config --cflags --libs diffuse) $MATH 2>"$T/cc.err"; rc=$?
    check "examples/$p.c builds with the core library alone: $(head -n 3 "$T/cc.err")" [ $rc -eq 0 ]
done
check "engine on the core library alone runs" sh -c "LD_LIBRARY_PATH='$P/lib' '$T/core/engine' >/dev/null"
unset PKG_CONFIG_PATH
LD_LIBRARY_PATH="$P/lib" sh "$ROOT/tests/build/examples.sh" "$BUILD" "$T/shared" >"$T/ex.out" 2>&1; rc=$?
check "tests/build/examples.sh passes on the shared builds: $(grep FAIL "$T/ex.out" | head -n 3)" [ $rc -eq 0 ]
sh "$ROOT/tests/build/examples.sh" "$BUILD" "$T/static" >"$T/ex.out" 2>&1; rc=$?
check "tests/build/examples.sh passes on the static builds: $(grep FAIL "$T/ex.out" | head -n 3)" [ $rc -eq 0 ]

# ---- the installed programs
for p in diffuse diffuse-nn-eval diffuse-t2i-eval; do
    "$P/bin/$p" --help >"$T/help.out" 2>&1; rc=$?
    check "$p --help exits 0: rc=$rc" [ $rc -eq 0 ]
    check "$p --help names the program as installed: $(head -n 1 "$T/help.out")" \
        grep -q "^usage: $p " "$T/help.out"
done
"$P/bin/diffuse" info "$P/share/diffuse/models/fmnist.safetensors" >"$T/info.out" 2>&1; rc=$?
check "the installed diffuse reads the installed model: $(tail -n 1 "$T/info.out")" [ $rc -eq 0 ]

# ---- uninstall leaves nothing
make --no-print-directory -C "$ROOT" BUILD="$BUILD" PREFIX="$P" uninstall >"$T/uninstall.log" 2>&1; rc=$?
check "make uninstall exits 0: $(tail -n 2 "$T/uninstall.log")" [ $rc -eq 0 ]
check "after make uninstall, $P holds no files: $(left_behind "$P" | head -n 5)" [ -z "$(left_behind "$P")" ]

# ---- DESTDIR: a staged install under the real prefix, and its uninstall
S=$T/stage
make --no-print-directory -C "$ROOT" BUILD="$BUILD" PREFIX=/opt/diffuse DESTDIR="$S" install >"$T/stage.log" 2>&1; rc=$?
check "make install DESTDIR=... exits 0: $(tail -n 2 "$T/stage.log")" [ $rc -eq 0 ]
check "DESTDIR: the files are staged under DESTDIR/PREFIX" [ -s "$S/opt/diffuse/lib/libdiffuse.a" ]
check "DESTDIR: diffuse.pc names the real prefix" grep -qx "prefix=/opt/diffuse" "$S/opt/diffuse/lib/pkgconfig/diffuse.pc"
make --no-print-directory -C "$ROOT" BUILD="$BUILD" PREFIX=/opt/diffuse DESTDIR="$S" uninstall >"$T/stage.log" 2>&1; rc=$?
check "make uninstall DESTDIR=... exits 0: $(tail -n 2 "$T/stage.log")" [ $rc -eq 0 ]
check "make uninstall DESTDIR=... leaves no files: $(left_behind "$S" | head -n 5)" [ -z "$(left_behind "$S")" ]

echo "$NAME: took $(( $(date +%s) - start ))s"
summary
