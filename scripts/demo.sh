#!/bin/sh
# make demo: show the forward process on a Fashion-MNIST image, then sample a labelled grid of
# all ten classes and a reverse-diffusion trajectory from the shipped model
# (models/fmnist.safetensors), then 100 futures of a week of Seattle's weather from the shipped
# time-series model (models/weather-daily.safetensors) as a fan chart, and the weeks missing from
# Mauna Loa's CO2 record in 1964 filled by models/co2.safetensors. Without a shipped image model
# (or with DEMO_TRAIN=1) it first trains the 'small' U-Net for at most three minutes and samples
# from that. Everything goes to demo/.
set -e
BUILD=${1:-build}
D=$BUILD/diffuse
MODEL=models/fmnist.safetensors
mkdir -p demo
echo "== forward noising of one training image (demo/noising.png)"
$D noise --data fashion-mnist --index 0 --at 0,50,100,200,300,500,700,999 --scale 3 --out demo/noising.png
if [ ! -f "$MODEL" ] || [ -n "${DEMO_TRAIN:-}" ]; then
    echo "== no $MODEL: training the 'small' U-Net on Fashion-MNIST for up to 3 minutes (demo/run)"
    rm -rf demo/run # the demo's own scratch run: a new run refuses a folder that holds one
    $D train --data fashion-mnist --preset small --minutes ${DEMO_MINUTES:-3} --steps 100000 \
        --batch 32 --lr 1e-3 --warmup 100 --sample-every 0 --save-every 200 --out demo/run
    MODEL=demo/run/last.safetensors
fi
echo "== sampling 40 images, 4 of each class, with DPM-Solver++(2M) in 20 steps, guidance 1.2,"
echo "   from $MODEL (demo/samples.png, demo/trajectory.png)"
start=$(date +%s)
$D sample --model "$MODEL" --n 40 --sampler dpm++2m --steps 20 --guidance 1.2 --seed 3 \
    --scale 3 --out demo/samples.png --trajectory demo/trajectory.png
echo "demo: sampling took $(( $(date +%s) - start )) s"
echo "demo: wrote demo/noising.png, demo/samples.png (one column per class, named on top)"
echo "      and demo/trajectory.png (rows: samples; columns: pure noise -> result)"
WEATHER=models/weather-daily.safetensors
if [ -f "$WEATHER" ]; then
    echo "== 100 possible weeks of Seattle's weather after 2015-03-01, from $WEATHER (demo/forecast.png)"
    start=$(date +%s)
    $D series windows --data seattle-weather --columns temp_max,temp_min --from 2015-03-01 --to 2015-03-01 \
        --context 56 --horizon 7 --out demo/weather 2>/dev/null
    $D series forecast --model "$WEATHER" --context demo/weather-context.npy --horizon 7 --samples 100 \
        --seed 1 --out demo/weather-samples.npy 2>/dev/null
    $D series plot --samples demo/weather-samples.npy --context demo/weather-context.npy \
        --truth demo/weather-truth.npy --names "temp_max (C)","temp_min (C)" \
        --xlabel "days from 2015-03-01" --title "Seattle: 100 sampled weeks, 50% and 90% bands, and what happened" \
        --out demo/forecast.png
    echo "demo: the forecast took $(( $(date +%s) - start )) s; wrote demo/forecast.png"
fi
CO2=models/co2.safetensors
if [ -f "$CO2" ]; then
    echo "== the weeks missing from Mauna Loa's CO2 record in 1964, filled 100 ways by $CO2 (demo/co2.png)"
    start=$(date +%s)
    $D series windows --data co2 --columns co2 --from 1963-10-05 --length 64 --windows 1 --hide none \
        --out demo/co2 2>/dev/null
    $D series impute --model "$CO2" --values demo/co2-values.npy --samples 100 --seed 1 \
        --out demo/co2-samples.npy 2>/dev/null
    $D series plot --samples demo/co2-samples.npy --truth demo/co2-truth.npy --names "CO2 (ppm)" \
        --xlabel "weeks from 1963-10-05" --title "Mauna Loa CO2: 100 fillings of the weeks missing in 1964" \
        --out demo/co2.png
    echo "demo: the gap filling took $(( $(date +%s) - start )) s; wrote demo/co2.png"
fi
MOL=models/molecules.safetensors
if [ -f "$MOL" ]; then
    echo "== 8 molecules drawn by $MOL, and one molecule's denoising (demo/molecules.png, demo/mol-trajectory.png)"
    start=$(date +%s)
    $D mol sample --model "$MOL" --n 8 --seed 1 --out demo/molecules.sdf 2>/dev/null
    $D mol render --in demo/molecules.sdf --out demo/molecules.png --cols 4 --size 200
    $D mol sample --model "$MOL" --n 1 --seed 2 --trajectory demo/mol-trajectory.xyz --out demo/mol-one.xyz 2>/dev/null
    $D mol render --in demo/mol-trajectory.xyz --trajectory --out demo/mol-trajectory.png
    $D mol eval --samples demo/molecules.sdf
    echo "demo: the molecules took $(( $(date +%s) - start )) s; wrote demo/molecules.png and demo/mol-trajectory.png"
fi
