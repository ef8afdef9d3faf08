"""torch_attn.py DUMP - repeats attn_dump.c's attention cases in PyTorch (autograd over
softmax(Q K^T / sqrt(dh) + mask) V per head, the heads being column blocks) and compares the
output and the gradients of q, k and v. The reference is float64; each comparison (max |C - ref|
over the largest |ref|) must come within SAFETY times PyTorch float32's own deviation from it
on the same inputs, the measure of how well conditioned that quantity is (torch_parity.py
explains SAFETY = 8 and the floor of 4 roundings). Prints "torch_attn: N passed, N failed"."""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402
from torch_unet import read_safetensors  # noqa: E402

check = Checks("torch_attn", quiet=True)
U, SAFETY, FLOOR_U = 2.0 ** -24, 8, 4


def tol_of(dev):
    """The tolerance for a quantity whose float32 deviation from float64 is dev."""
    return SAFETY * max(dev, FLOOR_U * U)


def attention(q, k, v, heads, mask):
    N, Lq, D = q.shape
    Dv = v.shape[2]
    dh, dvh = D // heads, Dv // heads
    qh = q.reshape(N, Lq, heads, dh).transpose(1, 2)            # (N, h, Lq, dh)
    kh = k.reshape(N, -1, heads, dh).transpose(1, 2)
    vh = v.reshape(N, -1, heads, dvh).transpose(1, 2)
    s = qh @ kh.transpose(2, 3) / math.sqrt(dh)                 # (N, h, Lq, Lk)
    s = s.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    o = torch.softmax(s, dim=-1) @ vh                           # (N, h, Lq, dvh)
    return o.transpose(1, 2).reshape(N, Lq, Dv)


def main(path):
    t, meta = read_safetensors(path)
    c = 0
    while f"case{c}.q" in t:
        heads = int(meta[f"case{c}.heads"])
        r = {}
        for dt in (torch.float64, torch.float32):
            g = {n: t[f"case{c}.{n}"].to(dt) for n in ("q", "k", "v", "mask", "R")}
            q, k, v = (g[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
            o = attention(q, k, v, heads, g["mask"])
            (o * g["R"]).sum().backward()
            r[dt] = {"out": o.detach().double(), "dq": q.grad.double(), "dk": k.grad.double(),
                     "dv": v.grad.double()}
        for name in ("out", "dq", "dk", "dv"):
            ref = r[torch.float64][name]
            scale = ref.abs().max().item()
            err = (t[f"case{c}.{name}"].double() - ref).abs().max().item() / scale
            tol = tol_of((r[torch.float32][name] - ref).abs().max().item() / scale)
            check(err <= tol, f"case {c} ({heads} heads) {name}: max error {err:.3g} of the largest "
                  f"(<= {tol:.3g})")
        c += 1
    check(c == 3, f"expected 3 cases in the dump, found {c}")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_attn.py DUMP.safetensors"))
