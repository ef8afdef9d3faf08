#!/bin/sh
# layers.sh BUILD - the library's folders are layers (src/LAYERS): every include and every call
# points down (tests/build/layers.py). Then the check itself is shown to catch what it is for: an
# upward include added to a copy of the tree, an include of the umbrella header, and an upward
# call between two object files compiled for the purpose.
NAME=layers; BUILD=${1:-build}; . "$(dirname "$0")/../lib.sh"
L=tests/build/layers.py

"$PY" $L --obj "$BUILD/obj" >"$T/out" 2>&1; rc=$?
check "the tree's includes and calls point down: $(cat "$T/out")" [ $rc -eq 0 ]
[ -d "$BUILD/obj/model" ] && [ -d "$BUILD/obj/base" ]
check "$BUILD/obj holds the layer folders' objects (make BUILD=$BUILD all)" [ $? -eq 0 ]

# a copy of the sources with one change each; expect exit 1 and a line naming the file and layer
copy() { rm -rf "$T/tree"; mkdir -p "$T/tree"; cp -r src include "$T/tree/"; }
fails_with() { # DESC PATTERN: the check on $T/tree exits 1 with a line matching PATTERN
    "$PY" $L --root "$T/tree" >"$T/out" 2>&1; rc=$?
    if [ $rc -eq 1 ] && grep -q -e "$2" "$T/out"; then ok; else bad "$1: rc=$rc: $(cat "$T/out")"; fi
}
copy
"$PY" $L --root "$T/tree" >"$T/out" 2>&1; rc=$?
check "an unchanged copy passes: $(cat "$T/out")" [ $rc -eq 0 ]

copy
sed -i '0,/^#include "diffuse\/base.h"/s//#include "diffuse\/base.h"\n#include "diffuse\/model.h"/' "$T/tree/src/base/base.c"
fails_with "base.c including diffuse/model.h" 'src/base/base.c: includes "diffuse/model.h": model is above base (upward include)'

copy
printf '#include "../nn/unet_text.h"\n' >>"$T/tree/src/io/png.c"
fails_with "io/png.c including a private nn header" 'src/io/png.c: includes "../nn/unet_text.h": nn is above io'

copy
printf '#include "diffuse.h"\n' >>"$T/tree/src/ops/conv.c"
fails_with "ops/conv.c including the umbrella header" 'src/ops/conv.c: includes "diffuse.h"'

copy
printf '#include "diffuse/eval.h"\n' >>"$T/tree/include/diffuse/nn.h"
fails_with "the public nn.h including eval.h" 'include/diffuse/nn.h: includes "diffuse/eval.h": eval is above nn'

copy
mkdir "$T/tree/src/plugins"
fails_with "a folder missing from src/LAYERS" 'src/plugins/: folder not listed'

# an upward call that no include shows: base/a.o calls a function that model/b.o defines
mkdir -p "$T/obj/base" "$T/obj/model"
printf 'int dfs_layer_probe(void);\nint dfs_layer_caller(void) { return dfs_layer_probe(); }\n' >"$T/a.c"
printf 'int dfs_layer_probe(void) { return 1; }\n' >"$T/b.c"
gcc -c "$T/a.c" -o "$T/obj/base/a.o" && gcc -c "$T/b.c" -o "$T/obj/model/b.o"
check "the probe objects compile" [ $? -eq 0 ]
copy
"$PY" $L --root "$T/tree" --obj "$T/obj" >"$T/out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q 'src/base/a.c uses dfs_layer_probe, defined in src/model/b.c: model is above base (upward call)' "$T/out"
then ok; else bad "an upward call between objects: rc=$rc: $(cat "$T/out")"; fi
# and the same call downward passes
rm -rf "$T/obj"; mkdir -p "$T/obj/base" "$T/obj/model"
gcc -c "$T/a.c" -o "$T/obj/model/a.o" && gcc -c "$T/b.c" -o "$T/obj/base/b.o"
"$PY" $L --root "$T/tree" --obj "$T/obj" >"$T/out" 2>&1; rc=$?
check "a downward call between objects passes: $(cat "$T/out")" [ $rc -eq 0 ]

# the picture in docs/ARCHITECTURE.md is the one the objects give now
"$PY" $L --obj "$BUILD/obj" --svg "$T/layers.svg" >/dev/null 2>&1
same_files "docs/images/layers.svg is up to date (python3 tests/build/layers.py --obj build/obj --svg docs/images/layers.svg)" \
    "$T/layers.svg" docs/images/layers.svg
summary
