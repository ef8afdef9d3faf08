"""torch_classifier.py FILE.safetensors - compare diffuse's cross-entropy and classifier with
PyTorch on the cases that `test_classifier --dump-parity FILE` wrote:

  ce.*    logits (6, 10) with a row of +-30 and a row shifted by 500, integer labels, the C loss
          and gradient -> F.cross_entropy (mean reduction) and its autograd gradient;
  net.*   a tiny classifier (its weights under their PyTorch names, config in the "classifier"
          metadata), a batch, its labels; the C logits, features, cross-entropy and the
          gradient of every parameter and of the input -> the same network in torch.nn.

Prints each comparison and ends with "torch_classifier: N passed, N failed"; exits 1 if
anything failed. Run with /usr/bin/python3 (Debian's python3-torch)."""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402

# float32 on both sides; errors are rounding only (~1e-7 relative per op)
TOL_CE = 1e-6     # |loss_c - loss_t| / |loss_t| and max |grad_c - grad_t| (grads are <= 1/N)
TOL_NET = 1e-4    # ||c - torch|| / ||torch|| per tensor (logits, features, every gradient)

DTYPES = {"F32": np.float32, "I64": np.int64}
check = Checks("torch_classifier")


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        b, e = info["data_offsets"]
        arr = np.frombuffer(buf, dtype=dt, count=(e - b) // dt.itemsize, offset=8 + n + b)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).astype(dt.newbyteorder("=")))
    return out, meta


def rel(a, b):
    d = (a.double() - b.double()).norm().item()
    r = b.double().norm().item()
    return d / r if r > 0 else d


class Classifier(nn.Module):
    """include/diffuse.h, "Image classifier": 5 x (conv3x3 -> GroupNorm -> SiLU), strides
    1 2 1 2 2, flatten, Linear(., F) -> SiLU (the features), Linear(F, K)."""

    def __init__(self, cfg, side):
        super().__init__()
        c0, c1, c2 = cfg["channels"]
        chans = [c0, c1, c1, c2, c2]
        self.strides = [1, 2, 1, 2, 2]
        ci = cfg["in_channels"]
        for i, co in enumerate(chans):
            setattr(self, f"conv{i}", nn.Conv2d(ci, co, 3, self.strides[i], 1))
            setattr(self, f"norm{i}", nn.GroupNorm(cfg["groups"], co, eps=1e-5))
            ci = co
        self.feature = nn.Linear(c2 * side * side, cfg["feature_dim"])
        self.head = nn.Linear(cfg["feature_dim"], cfg["num_classes"])

    def forward(self, x):
        h = x
        for i in range(5):
            h = F.silu(getattr(self, f"norm{i}")(getattr(self, f"conv{i}")(h)))
        f = F.silu(self.feature(h.flatten(1)))
        return self.head(f), f


def main(path):
    torch.set_num_threads(1)
    ts, meta = read_safetensors(path)

    # cross-entropy
    z = ts["ce.logits"].clone().requires_grad_(True)
    y = ts["ce.labels"]
    loss = F.cross_entropy(z, y)
    loss.backward()
    lc = ts["ce.loss"][0].item()
    check(abs(lc - loss.item()) <= TOL_CE * abs(loss.item()),
          f"cross-entropy loss: C {lc:.8g}, torch {loss.item():.8g}")
    gd = (ts["ce.grad"] - z.grad).abs().max().item()
    check(gd <= TOL_CE, f"cross-entropy gradient: max |C - torch| = {gd:.3g}")

    # the tiny network
    cfg = json.loads(meta["classifier"])
    side = cfg["image_size"]
    for s in (1, 2, 1, 2, 2):
        side = (side + 2 - 3) // s + 1
    net = Classifier(cfg, side)
    names = [n for n, _ in net.named_parameters()]
    check(all(n in ts for n in names), f"{len(names)} parameter tensors present in the dump")
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(ts[n])
    x = ts["net.x"].clone().requires_grad_(True)
    logits, feats = net(x)
    nloss = F.cross_entropy(logits, ts["net.labels"])
    nloss.backward()
    e = rel(ts["net.logits"], logits.detach())
    check(e <= TOL_NET, f"network logits: relative error {e:.3g}")
    e = rel(ts["net.features"], feats.detach())
    check(e <= TOL_NET, f"network features: relative error {e:.3g}")
    lc = ts["net.loss"][0].item()
    check(abs(lc - nloss.item()) <= TOL_NET * abs(nloss.item()),
          f"network loss: C {lc:.8g}, torch {nloss.item():.8g}")
    worst, worst_name = 0.0, ""
    for n, p in net.named_parameters():
        e = rel(ts["net.grad." + n], p.grad)
        if e > worst:
            worst, worst_name = e, n
        check(e <= TOL_NET, f"gradient of {n}: relative error {e:.3g}")
    e = rel(ts["net.grad.x"], x.grad)
    check(e <= TOL_NET, f"gradient of the input: relative error {e:.3g}")
    print(f"torch_classifier: worst parameter gradient {worst_name} ({worst:.3g})")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_classifier.py DUMP.safetensors"))
