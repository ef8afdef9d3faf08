#!/bin/sh
# Installs the Debian packages diffuse needs to build and test, if any are missing.
# Runs apt-get as root, or through sudo.
PKGS="build-essential pkg-config libopenblas-openmp-dev liblapacke-dev zlib1g-dev libpng-dev libcjson-dev libfreetype-dev fonts-dejavu-core libharfbuzz-dev fonts-noto-color-emoji unicode-data dataset-fashion-mnist python3-torch python3-numpy python3-vega-datasets python3-statsmodels clang libclang-rt-dev libopenmpi-dev openmpi-bin chemical-structures-data libavogadro-data python3-ase rdkit-data python3-rdkit openbabel libxml2-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "setup: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "setup: apt-get update failed" >&2; exit 1; }
$SUDO apt-get install -y -qq $missing >/dev/null || { echo "setup: apt-get install failed for:$missing" >&2; exit 1; }
