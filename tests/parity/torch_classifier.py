"""torch_classifier.py FILE.safetensors - compare diffuse's cross-entropy and classifier with
PyTorch on the cases that `test_classifier --dump-parity FILE` wrote:

  ce.*    logits (6, 10) with a row of +-30 and a row shifted by 500, integer labels, the C loss
          and gradient -> F.cross_entropy (mean reduction) and its autograd gradient;
  net.*   a tiny classifier (its weights under their PyTorch names, config in the "classifier"
          metadata), a batch, its labels; the C logits, features, cross-entropy and the
          gradient of every parameter and of the input -> the same network in torch.nn.

The reference is PyTorch in float64; the tolerances come from the conditioning of each
quantity on these inputs, measured as PyTorch float32's own deviation from float64 (see
torch_parity.py): C must come within SAFETY = 8 times it, and 8 times 4 roundings of the
result at least.

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

U = 2.0 ** -24    # float32 unit roundoff
SAFETY = 8        # C's error against float32 PyTorch's, both from float64 (torch_parity.py)
FLOOR_U = 4       # the smallest deviation scale: a few roundings of the result itself


def tol_of(dev):
    """The tolerance for a quantity whose float32 deviation from float64 is dev."""
    return SAFETY * max(dev, FLOOR_U * U)


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
    """||a - b|| / ||b|| in float64 (NaN if a has a NaN)"""
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

    # cross-entropy, in float64 and float32
    y = ts["ce.labels"]
    ce = {}
    for dt in (torch.float64, torch.float32):
        z = ts["ce.logits"].to(dt).clone().requires_grad_(True)
        loss = F.cross_entropy(z, y)
        loss.backward()
        ce[dt] = (loss.item(), z.grad.double())
    (l64, g64), (l32, g32) = ce[torch.float64], ce[torch.float32]
    lc = ts["ce.loss"][0].item()
    err, tol = abs(lc - l64) / abs(l64), tol_of(abs(l32 - l64) / abs(l64))
    check(err <= tol, f"cross-entropy loss: C {lc:.8g}, reference {l64:.8g} (rel {err:.3g} <= {tol:.3g})")
    scale = g64.abs().max().item()
    err = (ts["ce.grad"].double() - g64).abs().max().item() / scale
    tol = tol_of((g32 - g64).abs().max().item() / scale)
    check(err <= tol, f"cross-entropy gradient: max |C - reference| = {err:.3g} of the largest (<= {tol:.3g})")

    # the tiny network
    cfg = json.loads(meta["classifier"])
    side = cfg["image_size"]
    for s in (1, 2, 1, 2, 2):
        side = (side + 2 - 3) // s + 1
    names = [n for n, _ in Classifier(cfg, side).named_parameters()]
    check(all(n in ts for n in names), f"{len(names)} parameter tensors present in the dump")
    r = {}
    for dt in (torch.float64, torch.float32):
        net = Classifier(cfg, side).to(dt)
        with torch.no_grad():
            for n, p in net.named_parameters():
                p.copy_(ts[n])
        x = ts["net.x"].to(dt).clone().requires_grad_(True)
        logits, feats = net(x)
        nloss = F.cross_entropy(logits, ts["net.labels"])
        nloss.backward()
        out = {"net.logits": logits.detach(), "net.features": feats.detach(), "net.grad.x": x.grad}
        out.update({"net.grad." + n: p.grad for n, p in net.named_parameters()})
        r[dt] = (out, nloss.item())
    (o64, l64), (o32, l32) = r[torch.float64], r[torch.float32]
    lc = ts["net.loss"][0].item()
    err, tol = abs(lc - l64) / abs(l64), tol_of(abs(l32 - l64) / abs(l64))
    check(err <= tol, f"network loss: C {lc:.8g}, reference {l64:.8g} (rel {err:.3g} <= {tol:.3g})")
    worst, worst_name = 0.0, ""
    for key in o64:
        e, tol = rel(ts[key], o64[key]), tol_of(rel(o32[key], o64[key]))
        if worst == worst and not e / tol <= worst:  # a NaN stays
            worst, worst_name = e / tol, key
        check(e <= tol, f"{key}: relative error {e:.3g} (<= {tol:.3g})")
    print(f"torch_classifier: worst {worst_name} ({worst:.3g} of its tolerance)")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_classifier.py DUMP.safetensors"))
