#!/bin/sh
# series_speed.sh OLD NEW [ROUNDS] - time forecast sampling of two diffuse binaries side by side:
# 16 daily forecast windows (56-day context, 7 days) x 100 samples of models/weather-daily, DDIM
# in 10 steps, the two binaries alternating ROUNDS times (default 3), then the ratio of the
# medians. Run it on an idle machine; it names the CPU. OMP_NUM_THREADS as given.
set -u
OLD=${1:?usage: bench/series_speed.sh OLD-diffuse NEW-diffuse [ROUNDS]}
NEW=${2:?usage: bench/series_speed.sh OLD-diffuse NEW-diffuse [ROUNDS]}
ROUNDS=${3:-3}
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
echo "cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores"
"$NEW" series windows --data seattle-weather --columns temp_max,temp_min --from 2015-01-01 --to 2015-01-16 \
    --context 56 --horizon 7 --out "$T/w" >/dev/null 2>&1 || { echo "series_speed.sh: series windows failed"; exit 1; }
run() {
    s=$(date +%s.%N)
    "$1" series forecast --model models/weather-daily.safetensors --context "$T/w-context.npy" --horizon 7 \
        --samples 100 --sampler ddim --steps 10 --out "$T/$2.npy" 2>/dev/null || { echo "$1 failed" >&2; exit 1; }
    echo "$(date +%s.%N) - $s" | bc
}
i=0
while [ $i -lt "$ROUNDS" ]; do
    echo "old $(run "$OLD" old)" >>"$T/times"
    echo "new $(run "$NEW" new)" >>"$T/times"
    i=$((i + 1))
done
cat "$T/times"
med() { grep "^$1 " "$T/times" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
o=$(med old); n=$(med new)
echo "median: old $o s, new $n s: new is $(echo "scale=2; $o / $n" | bc)x as fast"
