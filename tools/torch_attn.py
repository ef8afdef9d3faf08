"""torch_attn.py DUMP - repeats tools/attn_dump.c's attention cases in PyTorch (autograd over
softmax(Q K^T / sqrt(dh) + mask) V per head, the heads being column blocks) and compares the
output and the gradients of q, k and v. Prints "torch_attn: N passed, N failed"."""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402
from torch_unet import read_safetensors  # noqa: E402

check = Checks("torch_attn", quiet=True)


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
        g = {n: t[f"case{c}.{n}"].double() for n in ("q", "k", "v", "mask", "R", "out", "dq", "dk", "dv")}
        q, k, v = (g[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
        heads = int(meta[f"case{c}.heads"])
        o = attention(q, k, v, heads, g["mask"])
        (o * g["R"]).sum().backward()
        for name, ours, ref in (("out", g["out"], o), ("dq", g["dq"], q.grad), ("dk", g["dk"], k.grad),
                                ("dv", g["dv"], v.grad)):
            err = (ours - ref.detach()).abs().max().item()
            scale = max(1.0, ref.abs().max().item())
            check(err <= 2e-5 * scale, f"case {c} ({heads} heads) {name}: max error {err:.3g}")
        c += 1
    check(c == 3, f"expected 3 cases in the dump, found {c}")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_attn.py DUMP.safetensors"))
