#!/bin/sh
# make demo: show the forward process on a Fashion-MNIST image, train a small class-conditional
# model for at most three minutes, then sample a grid of all ten classes and a reverse-diffusion
# trajectory. Everything goes to demo/.
set -e
BUILD=${1:-build}
D=$BUILD/diffuse
mkdir -p demo
echo "== forward noising of one training image (demo/noising.png)"
$D noise --data fashion-mnist --index 0 --at 0,50,100,200,300,500,700,999 --scale 3 --out demo/noising.png
echo "== training the 'small' U-Net on Fashion-MNIST for up to 3 minutes (demo/run)"
$D train --data fashion-mnist --preset small --minutes ${DEMO_MINUTES:-3} --steps 100000 \
    --batch 32 --lr 1e-3 --warmup 100 --sample-every 0 --save-every 200 --out demo/run
echo "== sampling 40 images, 4 of each class, with DDIM in 50 steps (demo/samples.png)"
$D sample --model demo/run/last.safetensors --n 40 --sampler ddim --steps 50 --guidance 2 \
    --scale 2 --out demo/samples.png --trajectory demo/trajectory.png
echo "demo: wrote demo/noising.png, demo/samples.png (columns are the classes"
echo "      T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot)"
echo "      and demo/trajectory.png (rows: samples; columns: pure noise -> result)"
