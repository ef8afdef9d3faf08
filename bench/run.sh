#!/bin/sh
# bench/run.sh BUILD - diffuse against PyTorch on the reference U-Net (fmnist preset), and
# against the machine's SGEMM peak. See bench/README.md for what each figure means.
#
#   make bench                      (builds BUILD/diffuse, sgemm_peak and fma_peak, then runs this)
#   sh bench/run.sh build            (after make all fma-peak, or make build/diffuse sgemm-peak fma-peak)
#
# Environment: BENCH_ROUNDS (default 3), BENCH_BATCH (64), BENCH_THREADS (2), BENCH_STEPS (5),
# BENCH_BASELINE (path of another diffuse binary, e.g. an older build, timed in every round as a
# third column; unset: none), BENCH_WRAP (a command every benchmark runs under, e.g. one that
# pauses other work on the machine while it runs; unset: none).
# Raw JSON lines and the table are also written to BUILD/bench/. Exits non-zero if any
# command fails or prints something that is not the expected JSON.
set -eu

BUILD=${1:-build}
ROUNDS=${BENCH_ROUNDS:-3}
BATCH=${BENCH_BATCH:-64}
THREADS=${BENCH_THREADS:-2}
STEPS=${BENCH_STEPS:-5}
PY=/usr/bin/python3 # Debian's python3 with python3-torch, not whatever python3 is on PATH
HERE=$(dirname "$0")

BASE=${BENCH_BASELINE:-}
WRAP=${BENCH_WRAP:-}
[ -z "$BASE" ] || [ -x "$BASE" ] || { echo "bench/run.sh: BENCH_BASELINE '$BASE' is not an executable" >&2; exit 2; }
for v in "$ROUNDS" "$BATCH" "$THREADS" "$STEPS"; do
    case $v in '' | *[!0-9]* | 0) echo "bench/run.sh: BENCH_* settings must be positive integers, got '$v'" >&2; exit 2 ;; esac
done
[ -x "$BUILD/diffuse" ] || { echo "bench/run.sh: $BUILD/diffuse not found; run make first" >&2; exit 1; }
[ -x "$PY" ] || { echo "bench/run.sh: $PY not found (apt-get install python3-torch)" >&2; exit 1; }

# The SGEMM yardstick (bench/sgemm_peak.c), built by the Makefile with the library's BLAS.
SGEMM=$BUILD/sgemm_peak
[ -x "$SGEMM" ] || { echo "bench/run.sh: $SGEMM not found; run make BUILD=$BUILD sgemm-peak (make bench does)" >&2; exit 1; }
[ "$SGEMM" -nt "$HERE/sgemm_peak.c" ] || { echo "bench/run.sh: $SGEMM is older than $HERE/sgemm_peak.c; run make BUILD=$BUILD sgemm-peak" >&2; exit 1; }
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    [ -x "$BUILD/fma_peak" ] && [ "$BUILD/fma_peak" -nt "$HERE/fma_peak.c" ] ||
        { echo "bench/run.sh: $BUILD/fma_peak is missing or older than $HERE/fma_peak.c; run make BUILD=$BUILD fma-peak (make bench does)" >&2; exit 1; }
fi

OUT=$BUILD/bench
mkdir -p "$OUT"
LOAD0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
RAW=$OUT/raw.jsonl
: >"$RAW"

# run TAG COMMAND... : run one benchmark, append {"tag": TAG, ...its JSON...} to $RAW
run() {
    tag=$1
    shift
    echo "bench: $tag: $*" >&2
    $WRAP "$@" >"$OUT/last.json"
    "$PY" -c 'import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
d["tag"] = sys.argv[2]
print(json.dumps(d))' "$OUT/last.json" "$tag" >>"$RAW"
}

diffuse_bench() { # threads [--sample]
    run "diffuse_t$1" "$BUILD/diffuse" bench --preset fmnist --batch "$BATCH" --threads "$1" --steps "$STEPS" --json ${2:-}
}
# diffuse's bf16 training, forward and sampling, where the CPU has AVX512_BF16;
# elsewhere it would run float32 (or, emulated, slower than float32), which times nothing new
BF16=0
grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null && BF16=1
diffuse_bf16() { # threads
    [ "$BF16" -eq 1 ] || return 0
    run "diffusebf16_t$1" env -u DFS_BF16 "$BUILD/diffuse" bench --preset fmnist --batch "$BATCH" --threads "$1" \
        --steps "$STEPS" --json --sample --precision bf16
}
# diffuse fp32 with --conv auto: the forward passes' and sampling's 3x3 convolutions on Winograd
# or the direct kernel, per shape, whichever a timing at its first call found faster
# (training too: the forward, and the backward's input and weight gradients at even sizes)
diffuse_auto() { # threads
    run "diffuseauto_t$1" env -u DFS_CONV "$BUILD/diffuse" bench --preset fmnist --batch "$BATCH" --threads "$1" \
        --steps "$STEPS" --json --sample --conv auto
}
base_bench() { # threads
    run "base_t$1" "$BASE" bench --preset fmnist --batch "$BATCH" --threads "$1" --steps "$STEPS" --json --sample
}
torch_bench() { # threads [bf16]
    if [ "${2:-}" = bf16 ]; then
        run "torchbf16_t$1" "$PY" "$HERE/torch_bench.py" --batch "$BATCH" --threads "$1" --steps "$STEPS" --mode both --dtype bf16
    else
        run "torch_t$1" "$PY" "$HERE/torch_bench.py" --batch "$BATCH" --threads "$1" --steps "$STEPS" --mode both
    fi
}

# Rounds of pairs; the order flips each round so that drift in machine load hits both alike.
r=1
while [ "$r" -le "$ROUNDS" ]; do
    if [ $((r % 2)) -eq 1 ]; then
        diffuse_bench "$THREADS" --sample
        diffuse_auto "$THREADS"
        diffuse_bf16 "$THREADS"
        torch_bench "$THREADS"
        torch_bench "$THREADS" bf16
        [ -z "$BASE" ] || base_bench "$THREADS"
    else
        [ -z "$BASE" ] || base_bench "$THREADS"
        torch_bench "$THREADS" bf16
        torch_bench "$THREADS"
        diffuse_bf16 "$THREADS"
        diffuse_auto "$THREADS"
        diffuse_bench "$THREADS" --sample
    fi
    r=$((r + 1))
done
run "sgemm_t$THREADS" "$SGEMM" "$THREADS"
# OpenBLAS 0.3.21 does not know every AVX-512 CPU (AMD Zen 4/5 get its AVX2 "Haswell" kernel);
# its AVX-512 kernel, forced, gives the machine's real float32 peak.
AVX512=0
grep -qw avx512f /proc/cpuinfo 2>/dev/null && AVX512=1
if [ "$AVX512" -eq 1 ]; then
    OPENBLAS_CORETYPE=SkylakeX run "sgemm512_t$THREADS" "$SGEMM" "$THREADS"
    [ "$THREADS" -eq 1 ] || OPENBLAS_CORETYPE=SkylakeX run sgemm512_t1 "$SGEMM" 1
    # the instruction ceiling (bench/fma_peak.c): register-only FMA and vdpbf16ps loops; the
    # bf16 figures are read against it, as Debian's OpenBLAS has no bf16 GEMM
    run "fma_t$THREADS" "$BUILD/fma_peak" "$THREADS"
fi
# One round at one thread, for the scaling figure (no sampling: it is not needed there).
if [ "$THREADS" -ne 1 ]; then
    run sgemm_t1 "$SGEMM" 1
    diffuse_bench 1
    torch_bench 1
fi
rm -f "$OUT/last.json"

"$PY" - "$RAW" "$THREADS" "$BATCH" "$STEPS" "$LOAD0" "$BASE" >"$OUT/summary.txt" <<'EOF'
import json
import os
import statistics
import sys

raw, threads, batch, steps, load0, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
rows = [json.loads(line) for line in open(raw)]
by = {}
for r in rows:
    by.setdefault(r["tag"], []).append(r)

def med(tag, key):
    return statistics.median(r[key] for r in by[tag])

D, P, PB = f"diffuse_t{threads}", f"torch_t{threads}", f"torchbf16_t{threads}"
nt = f"{threads} thread{'s' if threads != 1 else ''}"
print(f"\nReference U-Net (fmnist preset), batch {batch}, {nt}, {steps} timed steps "
      f"after 2 warm-ups, float32")
print(f"params: diffuse {by[D][0]['params']}, PyTorch {by[P][0]['params']}")
# the CPU every figure below comes from, the features the kernels care about, and the path taken
cpu, flags = "unknown CPU", set()
try:
    for ln in open("/proc/cpuinfo"):
        k, _, v = ln.partition(":")
        if k.strip() == "model name" and cpu == "unknown CPU":
            cpu = v.strip()
        elif k.strip() == "flags" and not flags:
            flags = set(v.split())
except OSError:
    pass
want = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_bf16"]
print(f"CPU: {cpu}, {os.cpu_count()} logical CPUs; features: "
      + " ".join(f if f in flags else f"-{f}" for f in want))
print(f"diffuse kernels: {by[D][0]['kernels']} ({by[D][0].get('path', '?')}); "
      "-f: the CPU lacks f\n")
hdr = f"{'round':>6} | {'diffuse train':>13} {'forward':>9} {'DDIM-50 s':>9} {'RSS MB':>7} | " \
      f"{'torch train':>11} {'forward':>9} {'RSS MB':>7} | {'torch bf16 train':>16} {'forward':>9}"
print(hdr)
print("-" * len(hdr))
for i, (d, p, pb) in enumerate(zip(by[D], by[P], by[PB])):
    print(f"{i + 1:>6} | {d['train_img_per_s']:>13.2f} {d['forward_img_per_s']:>9.2f} "
          f"{d['ddim50_sample_s']:>9.2f} {d['peak_rss_mb']:>7.1f} | {p['train_img_per_s']:>11.2f} "
          f"{p['forward_img_per_s']:>9.2f} {p['peak_rss_mb']:>7.1f} | {pb['train_img_per_s']:>16.2f} "
          f"{pb['forward_img_per_s']:>9.2f}")
print(f"{'median':>6} | {med(D, 'train_img_per_s'):>13.2f} {med(D, 'forward_img_per_s'):>9.2f} "
      f"{med(D, 'ddim50_sample_s'):>9.2f} {med(D, 'peak_rss_mb'):>7.1f} | "
      f"{med(P, 'train_img_per_s'):>11.2f} {med(P, 'forward_img_per_s'):>9.2f} "
      f"{med(P, 'peak_rss_mb'):>7.1f} | {med(PB, 'train_img_per_s'):>16.2f} "
      f"{med(PB, 'forward_img_per_s'):>9.2f}")
print("(img/s; RSS is each process's peak over its whole run: diffuse = train + forward + "
      "sampling, PyTorch = train + forward; torch bf16 = torch.autocast(\"cpu\", bfloat16) with "
      "GroupNorm in float32, " + ("on the CPU's AVX512_BF16" if by[PB][0].get("cpu_bf16")
                                  else "emulated by oneDNN: this CPU has no AVX512_BF16") + ")\n")
B = f"base_t{threads}"
if base and B in by:
    print(f"baseline {base} in the same rounds:")
    for i, b in enumerate(by[B]):
        print(f"{i + 1:>6} | {b['train_img_per_s']:>13.2f} {b['forward_img_per_s']:>9.2f} "
              f"{b['ddim50_sample_s']:>9.2f} {b['peak_rss_mb']:>7.1f}")
    print(f"{'median':>6} | {med(B, 'train_img_per_s'):>13.2f} {med(B, 'forward_img_per_s'):>9.2f} "
          f"{med(B, 'ddim50_sample_s'):>9.2f} {med(B, 'peak_rss_mb'):>7.1f}")
    print(f"diffuse / baseline: train {med(D, 'train_img_per_s') / med(B, 'train_img_per_s'):.2f}x, "
          f"forward {med(D, 'forward_img_per_s') / med(B, 'forward_img_per_s'):.2f}x, DDIM-50 "
          f"{med(B, 'ddim50_sample_s') / med(D, 'ddim50_sample_s'):.2f}x faster\n")

peak = by[f"sgemm_t{threads}"][0]["sgemm_gflops"]
peak1 = by["sgemm_t1"][0]["sgemm_gflops"]
# the machine's peak: OpenBLAS's AVX-512 kernel where the CPU has AVX-512 and it is faster
k512 = f"sgemm512_t{threads}"
default_peak = peak
if k512 in by and by[k512][0]["sgemm_gflops"] > peak:
    peak = by[k512][0]["sgemm_gflops"]
    peak1 = max(peak1, by["sgemm512_t1"][0]["sgemm_gflops"] if "sgemm512_t1" in by else peak1)
tr, fw = med(D, "train_gflops"), med(D, "forward_gflops")

def line(label, text):
    print(f"{label + ':':<36}{text}")

line("diffuse / PyTorch, train img/s",
     f"{med(D, 'train_img_per_s') / med(P, 'train_img_per_s'):.2f}x")
line("diffuse / PyTorch, forward img/s",
     f"{med(D, 'forward_img_per_s') / med(P, 'forward_img_per_s'):.2f}x")
line("diffuse / PyTorch bf16, train, fwd",
     f"{med(D, 'train_img_per_s') / med(PB, 'train_img_per_s'):.2f}x, "
     f"{med(D, 'forward_img_per_s') / med(PB, 'forward_img_per_s'):.2f}x "
     f"(PyTorch bf16 / fp32: {med(PB, 'train_img_per_s') / med(P, 'train_img_per_s'):.2f}x, "
     f"{med(PB, 'forward_img_per_s') / med(P, 'forward_img_per_s'):.2f}x)")
if peak != default_peak:
    line("SGEMM peak (OpenBLAS AVX-512 kernel)", f"{peak:.1f} GFLOP/s at {nt}, {peak1:.1f} at 1 thread "
         f"(OPENBLAS_CORETYPE=SkylakeX; the kernel OpenBLAS picks here reaches {default_peak:.1f})")
else:
    line("SGEMM peak (OpenBLAS)", f"{peak:.1f} GFLOP/s at {nt}, {peak1:.1f} at 1 thread")
FM = f"fma_t{threads}"
fpk, bpk = (by[FM][0]["fma_gflops"], by[FM][0]["bf16_gflops"]) if FM in by else (0.0, 0.0)
if fpk:
    line("instruction peak (registers only)", f"float32 FMA {fpk:.1f} GFLOP/s, bf16 vdpbf16ps "
         + (f"{bpk:.1f}" if bpk else "- (no AVX512_BF16)") + f" at {nt} (bench/fma_peak.c); "
         f"OpenBLAS SGEMM reaches {100 * peak / fpk:.0f}% of the float32 one")
line("diffuse train GFLOP/s", f"{tr:.1f} = {100 * tr / peak:.0f}% of the SGEMM peak "
     f"({by[D][0]['gflop_per_image_forward']:.4f} GFLOP/image forward, x3 per training step)")
line("diffuse forward GFLOP/s", f"{fw:.1f} = {100 * fw / peak:.0f}% of the SGEMM peak")
gpi = by[D][0]["gflop_per_image_forward"]
ptr, pfw = med(P, "train_img_per_s") * 3 * gpi, med(P, "forward_img_per_s") * gpi
line("PyTorch train / forward GFLOP/s", f"{ptr:.1f} / {pfw:.1f} = {100 * ptr / peak:.0f}% / "
     f"{100 * pfw / peak:.0f}% of the SGEMM peak (same FLOP count)")
if threads != 1:
    d1, p1 = by["diffuse_t1"][0], by["torch_t1"][0]
    line("diffuse train GFLOP/s at 1 thread", f"{d1['train_gflops']:.1f} = "
         f"{100 * d1['train_gflops'] / peak1:.0f}% of the 1-thread SGEMM peak")
    line(f"{threads}-thread / 1-thread scaling",
         f"diffuse train {med(D, 'train_img_per_s') / d1['train_img_per_s']:.2f}x, forward "
         f"{med(D, 'forward_img_per_s') / d1['forward_img_per_s']:.2f}x; PyTorch train "
         f"{med(P, 'train_img_per_s') / p1['train_img_per_s']:.2f}x, forward "
         f"{med(P, 'forward_img_per_s') / p1['forward_img_per_s']:.2f}x")
    if min(med(D, "train_img_per_s") / d1["train_img_per_s"], med(P, "train_img_per_s") / p1["train_img_per_s"],
           med(D, "forward_img_per_s") / d1["forward_img_per_s"],
           med(P, "forward_img_per_s") / p1["forward_img_per_s"]) < 1:
        print("warning: more threads ran slower: other processes were competing for the cores, "
              "so these figures are disturbed")
DA = f"diffuseauto_t{threads}"
if DA in by:
    fa, ta = med(DA, "forward_img_per_s"), med(DA, "train_img_per_s")
    line("diffuse fp32 --conv auto, train", f"{ta:.2f} img/s = {ta / med(D, 'train_img_per_s'):.2f}x diffuse "
         f"fp32 direct, {ta / med(P, 'train_img_per_s'):.2f}x PyTorch fp32 (rounds: "
         + ", ".join(f"{r['train_img_per_s']:.1f}" for r in by[DA]) + ")")
    line("diffuse fp32 --conv auto, forward", f"{fa:.2f} img/s = {fa / med(D, 'forward_img_per_s'):.2f}x diffuse "
         f"fp32 direct, {fa / med(P, 'forward_img_per_s'):.2f}x PyTorch fp32 ({100 * med(DA, 'forward_gflops') / peak:.0f}% "
         "of the SGEMM peak, counting direct FLOPs; rounds: " + ", ".join(f"{r['forward_img_per_s']:.1f}" for r in by[DA])
         + "; 3x3 shapes on Winograd / direct: " + ", ".join(f"{r['auto_winograd_shapes']}/{r['auto_direct_shapes']}" for r in by[DA]) + ")")
    line("diffuse fp32 --conv auto, DDIM-50", f"{med(DA, 'ddim50_sample_s'):.2f} s against {med(D, 'ddim50_sample_s'):.2f} "
         f"direct ({med(D, 'ddim50_sample_s') / med(DA, 'ddim50_sample_s'):.2f}x faster); peak RSS "
         f"{med(DA, 'peak_rss_mb'):.1f} MB")
DB = f"diffusebf16_t{threads}"
if DB in by:
    fb, tb = med(DB, "forward_img_per_s"), med(DB, "train_img_per_s")
    line("diffuse bf16 train img/s", f"{tb:.2f} = {tb / med(D, 'train_img_per_s'):.2f}x diffuse fp32, "
         f"{tb / med(P, 'train_img_per_s'):.2f}x PyTorch fp32, {tb / med(PB, 'train_img_per_s'):.2f}x PyTorch bf16 "
         "(rounds: " + ", ".join(f"{r['train_img_per_s']:.1f}" for r in by[DB]) + ")")
    line("diffuse bf16 forward img/s", f"{fb:.2f} = {fb / med(D, 'forward_img_per_s'):.2f}x diffuse fp32, "
         f"{fb / med(P, 'forward_img_per_s'):.2f}x PyTorch fp32, {fb / med(PB, 'forward_img_per_s'):.2f}x "
         f"PyTorch bf16 (path {by[DB][0]['path']}, precision {by[DB][0]['precision']}; rounds: "
         + ", ".join(f"{r['forward_img_per_s']:.1f}" for r in by[DB]) + ")")
    if bpk:
        line("diffuse bf16 GFLOP/s", f"train {med(DB, 'train_gflops'):.1f}, forward {med(DB, 'forward_gflops'):.1f} = "
             f"{100 * med(DB, 'train_gflops') / bpk:.0f}%, {100 * med(DB, 'forward_gflops') / bpk:.0f}% of the "
             "bf16 instruction peak (fp32: " f"{100 * tr / fpk:.0f}%, {100 * fw / fpk:.0f}% of the FMA one)")
    line("diffuse bf16 DDIM-50 sampling", f"{med(DB, 'ddim50_sample_s'):.2f} s against {med(D, 'ddim50_sample_s'):.2f} "
         f"in fp32 ({med(D, 'ddim50_sample_s') / med(DB, 'ddim50_sample_s'):.2f}x faster); peak RSS "
         f"{med(DB, 'peak_rss_mb'):.1f} MB")
else:
    line("diffuse bf16", "not timed: this CPU has no AVX512_BF16 (DFS_BF16=emulate checks results, not speed)")
line("peak RSS (median)", f"diffuse {med(D, 'peak_rss_mb'):.1f} MB, PyTorch {med(P, 'peak_rss_mb'):.1f} MB "
     f"(bf16 {med(PB, 'peak_rss_mb'):.1f} MB)")
line(f"DDIM-50 sampling, {batch} images", f"{med(D, 'ddim50_sample_s'):.2f} s (diffuse, median)")
line("1-minute load average at the start", f"{load0} (on {os.cpu_count()} cores; other work "
     "running then disturbs the figures)")
EOF
cat "$OUT/summary.txt"
echo "bench: raw results in $RAW, table in $OUT/summary.txt" >&2
