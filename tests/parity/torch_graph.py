"""torch_graph.py DUMP - repeats graph_dump.c's EGNN op cases in PyTorch and compares the
outputs and the input gradients (autograd of sum(out * R)). The ops, as EDM (Hoogeboom et al.
2022) writes them on padded batches:
  pair_expand0/1  h[:, :, None, :] / h[:, None, :, :] expanded to (B, M, M, C)
  pair_diff       x[:, :, None, :] - x[:, None, :, :]
  pair_sum        (e * w[..., None]).sum(2), w = 1 when the dump has none
  sum_last        x.sum(-1, keepdim=True)
  sqrt, recip, add_scalar   torch.sqrt(x + eps), 1 / x, x + b
  center_masked   EDM's remove_mean_with_mask, (x - sum(x m) / max(n, 1)) m: EDM's own
                  subtracts mean * m and so assumes the padding of x is already 0, and divides
                  by n = 0 for an empty molecule (NaN); the C op gives 0 on padding whatever
                  x holds there, and 0 for an empty molecule
  egnn            EDM's coordinate update sum_j w_ij phi_ij (x_i - x_j) / (sqrt(d_ij^2 + eps)
                  + 1), phi_ij = h_i . h_j
  pair_silu       F.silu(a[:, :, None] + c[:, None] + e @ w.T): an EGNN edge MLP's first layer
                  from per-atom terms (in EDM's form, F.silu(Linear(cat[h_i, h_j, e_ij])))
  pair_sum_gated  pair_sum(e * s, w)
The reference is float64; each comparison (max |C - ref| over the largest |ref|) must come
within SAFETY times PyTorch float32's own deviation from it on the same inputs, the measure of
how well conditioned that quantity is, and within SAFETY FLOOR_U roundings at least
(torch_parity.py explains SAFETY = 8 and the floor): C and PyTorch float32 round the same
operations, in orders that may differ. The copies (pair_expand and its gradient through
pair_sum's weights of 1) and single float operations come out exact or within one rounding, far
inside the floor. Prints "torch_graph: N passed, N failed"."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402
from torch_unet import read_safetensors  # noqa: E402

check = Checks("torch_graph", quiet=True)
U, SAFETY, FLOOR_U = 2.0 ** -24, 8, 4
CASES = ("pair_expand0", "pair_expand1", "pair_diff", "pair_sum", "pair_sum_nw", "sum_last",
         "sqrt", "recip", "add_scalar", "center_masked", "egnn", "pair_silu", "pair_sum_gated")


def tol_of(dev):
    """The tolerance for a quantity whose float32 deviation from float64 is dev."""
    return SAFETY * max(dev, FLOOR_U * U)


def f32(s):
    """A metadata scalar as the float32 value the C side used."""
    return float(np.float32(float(s)))


def pair_sum(e, w):
    return (e * w[..., None]).sum(2) if w is not None else e.sum(2)


def center_masked(x, m):
    m = m[..., None]                                            # (B, M, 1)
    n = m.sum(1, keepdim=True).clamp(min=1)
    return (x - (x * m).sum(1, keepdim=True) / n) * m


def egnn(x, h, w, eps):
    d = x[:, :, None, :] - x[:, None, :, :]                     # (B, M, M, 3)
    inv = 1 / (torch.sqrt((d * d).sum(-1, keepdim=True) + eps) + 1)
    phi = (h[:, :, None, :] * h[:, None, :, :]).sum(-1, keepdim=True)
    return pair_sum(d * inv * phi, w)


def forward(case, ins, c, meta):
    x = ins[0]
    M = x.shape[1]
    if case == "pair_expand0":
        return x[:, :, None, :].expand(-1, -1, M, -1)
    if case == "pair_expand1":
        return x[:, None, :, :].expand(-1, M, -1, -1)
    if case == "pair_diff":
        return x[:, :, None, :] - x[:, None, :, :]
    if case in ("pair_sum", "pair_sum_nw"):
        return pair_sum(x, c.get("w"))
    if case == "sum_last":
        return x.sum(-1, keepdim=True)
    if case == "sqrt":
        return torch.sqrt(x + f32(meta["sqrt.eps"]))
    if case == "recip":
        return 1 / x
    if case == "add_scalar":
        return x + f32(meta["add_scalar.b"])
    if case == "center_masked":
        return center_masked(x, c["mask"])
    if case == "pair_silu":
        return F.silu(x[:, :, None, :] + ins[1][:, None, :, :] + ins[2] @ ins[3].T)
    if case == "pair_sum_gated":
        return pair_sum(x * ins[1], c["w"])
    return egnn(x, ins[1], c["w"], f32(meta["egnn.eps"]))


def main(path):
    t, meta = read_safetensors(path)
    for case in CASES:
        nin = sum(f"{case}.in{k}" in t for k in range(4))
        r = {}
        for dt in (torch.float64, torch.float32):
            ins = [t[f"{case}.in{k}"].to(dt).clone().requires_grad_(True) for k in range(nin)]
            c = {k: t[f"{case}.{k}"].to(dt) for k in ("w", "mask") if f"{case}.{k}" in t}
            o = forward(case, ins, c, meta)
            (o * t[f"{case}.R"].to(dt)).sum().backward()
            r[dt] = {"out": o.detach().double()}
            for k in range(nin):
                r[dt][f"d{k}"] = ins[k].grad.double()
        for name, ref in r[torch.float64].items():
            got = t[f"{case}.{name}"].double()
            if not check(got.shape == ref.shape, f"{case} {name}: shape {tuple(got.shape)}, "
                         f"want {tuple(ref.shape)}"):
                continue
            scale = ref.abs().max().item()
            if scale == 0:
                check(got.abs().max().item() == 0, f"{case} {name}: want all zeros")
                continue
            err = (got - ref).abs().max().item() / scale
            tol = tol_of((r[torch.float32][name] - ref).abs().max().item() / scale)
            check(err <= tol, f"{case} {name}: max error {err:.3g} of the largest (<= {tol:.3g})")
    # the padding of center_masked's output is exactly 0, and so is an empty molecule's
    m = t["center_masked.mask"]
    out = t["center_masked.out"]
    check(bool((out[m == 0] == 0).all()), "center_masked: every padding output is 0")
    check(bool((m[3] == 0).all()) and bool((out[3] == 0).all()),
          "center_masked: the empty molecule 3 gives zeros")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_graph.py DUMP.safetensors"))
