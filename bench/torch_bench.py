"""torch_bench.py - PyTorch timing of the reference U-Net, for comparison with `diffuse bench`.

Runs the network of tests/parity/torch_unet.py with the fmnist preset
(/work/shared/REFERENCE_UNET.md) on random data on the CPU, in float32 or (--dtype bf16) in
bfloat16 mixed precision, and prints one JSON line with the keys `diffuse bench --json` uses:

    train_img_per_s    images/s over K full training steps (forward, MSE, backward, AdamW,
                       zero_grad) after 2 warm-up steps
    forward_img_per_s  images/s over K no-grad forward passes in eval mode after 2 warm-ups
    params             parameter count (1,624,577 for the fmnist preset)
    peak_rss_mb        peak resident set size of this process (getrusage ru_maxrss), i.e. over
                       everything this process ran (--mode both: training and forward)

    /usr/bin/python3 bench/torch_bench.py --batch 64 --threads 2 --steps 5 --mode both [--dtype bf16]

bf16 is the mixed precision that GPU training uses, through PyTorch's own CPU autocast:
torch.autocast("cpu", dtype=torch.bfloat16) around the forward pass, so that convolutions and
matmuls take bfloat16 inputs and weights (oneDNN accumulates in float32). The parameters, the
AdamW state and the loss stay float32. PyTorch 1.13's CPU autocast has no bfloat16 GroupNorm,
so GroupNorm runs in float32 inside it (its input cast up, autocast off), as mixed precision
does. On a CPU without AVX512_BF16, oneDNN emulates the bfloat16 products, usually slower
than float32; the JSON's "cpu_bf16" says which it was.

Run with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import os
import resource
import sys
import time

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "parity"))
from torch_unet import FMNIST, build_unet  # noqa: E402

WARMUP = 2


def group_norm_fp32(self, x):
    """nn.GroupNorm.forward in float32 inside bf16 autocast (1.13 has no bf16 GroupNorm)."""
    with torch.autocast("cpu", enabled=False):
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps)


def precision(dtype):
    """The context every forward pass runs in: nothing for fp32, CPU autocast for bf16."""
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def random_batch(n, cfg, gen):
    """x (N, C, H, W), t (N,) in 0..999, labels (N,) in 0..num_classes-1."""
    c, s = cfg["in_channels"], cfg["image_size"]
    x = torch.randn(n, c, s, s, generator=gen)
    t = torch.randint(0, 1000, (n,), generator=gen)
    labels = torch.randint(0, cfg["num_classes"], (n,), generator=gen) if cfg["num_classes"] else None
    return x, t, labels


def bench_train(model, cfg, batch, steps, gen, dtype):
    """Seconds per training step: forward, MSE against a random target, backward, AdamW."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.0)
    x, t, labels = random_batch(batch, cfg, gen)
    target = torch.randn(x.shape, generator=gen)

    def step():
        with precision(dtype):
            y = model(x, t, labels)
        loss = F.mse_loss(y.float(), target)  # the loss in float32, outside autocast
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(WARMUP):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def bench_forward(model, cfg, batch, steps, gen, dtype):
    """Seconds per no-grad forward pass in eval mode (dropout off)."""
    model.eval()
    x, t, labels = random_batch(batch, cfg, gen)
    with torch.no_grad(), precision(dtype):
        for _ in range(WARMUP):
            model(x, t, labels)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x, t, labels)
        return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--mode", choices=("train", "forward", "both"), default="both")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: CPU autocast to bfloat16, GroupNorm in float32 (default fp32)")
    a = ap.parse_args()
    if a.batch < 1 or a.threads < 1 or a.steps < 1:
        ap.error("--batch, --threads and --steps must be >= 1")

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    cfg = dict(FMNIST)
    model = build_unet(cfg)  # asserts the fmnist parameter count
    if a.dtype == "bf16":
        nn.GroupNorm.forward = group_norm_fp32
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next(ln for ln in f if ln.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        pass
    out = {"impl": "pytorch", "torch": torch.__version__, "preset": "fmnist", "batch": a.batch,
           "dtype": a.dtype, "cpu_bf16": "avx512_bf16" in flags,
           "threads": torch.get_num_threads(), "mode": a.mode,
           "params": sum(p.numel() for p in model.parameters())}
    if a.mode in ("train", "both"):
        out["train_img_per_s"] = round(a.batch / bench_train(model, cfg, a.batch, a.steps, gen, a.dtype), 3)
    if a.mode in ("forward", "both"):
        out["forward_img_per_s"] = round(a.batch / bench_forward(model, cfg, a.batch, a.steps, gen, a.dtype), 3)
    # ru_maxrss is in kilobytes on Linux
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
