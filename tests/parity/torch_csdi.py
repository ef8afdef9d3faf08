"""torch_csdi.py DUMP - the CSDI denoiser of src/nn/csdi.c rebuilt with torch.nn.functional from
the weights csdi_dump.c wrote, run on the same three batches (both transformers; K = 1, no
feature transformer; L = 1, no time transformer) and compared: the output and the gradient of
L = sum R out for every parameter tensor.

The network, channel-last (B, L, K, C):
  x     = ReLU(Linear(cond m, x_t (1 - m)))
  side  = [sinusoidal embedding of the position 0..L-1 (sines, then cosines), calendar values,
           the mask, the learned feature embedding], the order csdi.c builds it in
  e     = SiLU(Linear(SiLU(Linear(sinusoidal(t)))))
  each residual layer: y = x + Linear(e); a post-norm transformer layer across time (over L, per
  window and feature) and one across features (over K); y = Linear(y) + Linear(side);
  sigmoid(y[:C]) tanh(y[C:]); Linear -> residual and skip; x = (x + residual) / sqrt(2)
  out   = Linear(ReLU(Linear(sum skip / sqrt(layers))))
The transformer layer is PyTorch's nn.TransformerEncoderLayer without dropout, with GELU's tanh
form: h = LN(h + attn(h)), h = LN(h + FF(h)), LayerNorm eps 1e-5, attention heads the column
blocks of q, k, v (torch_attn.py's formula). The functional layer is also checked against
nn.TransformerEncoderLayer itself (batch_first, norm_first=False, dropout 0) loaded with the
same weights, in float64.

The reference is float64; each comparison (max |C - ref| over the largest |ref|) must come
within SAFETY times PyTorch float32's own deviation from it on the same inputs, the measure of
how well conditioned that quantity is (torch_parity.py explains SAFETY = 8 and the floor of 4
roundings). A gradient that is zero in the reference (a transformer the batch skips) must be
exactly zero in C. Prints "torch_csdi: N passed, N failed"."""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_attn import attention  # noqa: E402
from torch_check import Checks, run  # noqa: E402
from torch_unet import read_safetensors  # noqa: E402

check = Checks("torch_csdi", quiet=True)
U, SAFETY, FLOOR_U = 2.0 ** -24, 8, 4


def tol_of(dev):
    """The tolerance for a quantity whose float32 deviation from float64 is dev."""
    return SAFETY * max(dev, FLOOR_U * U)


def rel_max(a, ref):
    """max |a - ref| / max |ref| in float64 (NaN if a has a NaN)"""
    return (a.double() - ref.double()).abs().max().item() / ref.double().abs().max().item()


def param_names(cfg):
    """Every parameter csdi.c declares, in its order."""
    lin = lambda p: [p + ".weight", p + ".bias"]  # noqa: E731
    names = lin("input") + lin("step_emb.fc1") + lin("step_emb.fc2")
    if cfg["feature_dim"] > 0:
        names.append("feature_emb.weight")
    for l in range(cfg["layers"]):
        names += lin(f"layers.{l}.step")
        for tf in ("time", "feature"):
            pre = f"layers.{l}.{tf}."
            for n in ("qkv", "attn_out", "fc1", "fc2"):
                names += lin(pre + n)
            names += lin(pre + "ln1") + lin(pre + "ln2")
        names += lin(f"layers.{l}.mid") + lin(f"layers.{l}.cond") + lin(f"layers.{l}.out")
    return names + lin("output.fc1") + lin("output.fc2")


def sinusoidal(pos, dim, dtype):
    """(n, dim): sin(pos f_i) for i < dim/2, then cos, f_i = exp(-ln(10000) i / (dim/2)), a zero
    last column for an odd dim; formed in float64 and rounded once, as dfs_timestep_embedding."""
    h = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(h, dtype=torch.float64) / h)
    arg = pos.double()[:, None] * f[None]
    out = torch.cat([torch.sin(arg), torch.cos(arg), torch.zeros(len(pos), dim - 2 * h,
                                                                  dtype=torch.float64)], 1)
    return out.to(dtype)


def linear(x, p, name):
    return F.linear(x, p[name + ".weight"], p[name + ".bias"])


def transformer(h, p, pre, heads):
    """Post-norm nn.TransformerEncoderLayer on h (N, S, C), no dropout, GELU tanh."""
    C = h.shape[-1]
    q, k, v = linear(h, p, pre + "qkv").chunk(3, dim=-1)
    ones = torch.ones(h.shape[0], h.shape[1], dtype=h.dtype)
    a = linear(attention(q, k, v, heads, ones), p, pre + "attn_out")
    h = F.layer_norm(h + a, (C,), p[pre + "ln1.weight"], p[pre + "ln1.bias"], 1e-5)
    f = linear(F.gelu(linear(h, p, pre + "fc1"), approximate="tanh"), p, pre + "fc2")
    return F.layer_norm(h + f, (C,), p[pre + "ln2.weight"], p[pre + "ln2.bias"], 1e-5)


def torch_layer(p, pre, C, heads, ff):
    """The same layer as torch.nn.TransformerEncoderLayer, float64, loaded with p's weights."""
    m = nn.TransformerEncoderLayer(C, heads, ff, dropout=0.0,
                                   activation=lambda x: F.gelu(x, approximate="tanh"),
                                   layer_norm_eps=1e-5, batch_first=True, norm_first=False)
    m = m.double()
    sd = {"self_attn.in_proj_weight": "qkv.weight", "self_attn.in_proj_bias": "qkv.bias",
          "self_attn.out_proj.weight": "attn_out.weight", "self_attn.out_proj.bias": "attn_out.bias",
          "linear1.weight": "fc1.weight", "linear1.bias": "fc1.bias",
          "linear2.weight": "fc2.weight", "linear2.bias": "fc2.bias",
          "norm1.weight": "ln1.weight", "norm1.bias": "ln1.bias",
          "norm2.weight": "ln2.weight", "norm2.bias": "ln2.bias"}
    m.load_state_dict({k: p[pre + v].detach().double() for k, v in sd.items()})
    return m


def forward(p, cfg, xt, cond, mask, t, cal):
    """The output (B, L, K)."""
    B, L, K = xt.shape
    C, dt = cfg["channels"], xt.dtype
    x = F.relu(linear(torch.stack([cond * mask, xt * (1 - mask)], -1), p, "input"))
    parts = []
    if cfg["time_dim"] > 0:
        te = sinusoidal(torch.arange(L), cfg["time_dim"], dt)
        parts.append(te[None, :, None, :].expand(B, L, K, -1))
    parts.append(cal[:, :, None, :].expand(B, L, K, -1))
    parts.append(mask[..., None])
    if cfg["feature_dim"] > 0:
        parts.append(p["feature_emb.weight"][:K][None, None].expand(B, L, K, -1))
    side = torch.cat(parts, -1)
    e = sinusoidal(t, cfg["step_dim"], dt)
    e = F.silu(linear(F.silu(linear(e, p, "step_emb.fc1")), p, "step_emb.fc2"))
    skip = 0
    for l in range(cfg["layers"]):
        pre = f"layers.{l}."
        h = x + linear(e, p, pre + "step")[:, None, None, :]
        if L > 1:
            ht = h.permute(0, 2, 1, 3).reshape(B * K, L, C)
            ht = transformer(ht, p, pre + "time.", cfg["heads"])
            h = ht.reshape(B, K, L, C).permute(0, 2, 1, 3)
        if K > 1:
            h = transformer(h.reshape(B * L, K, C), p, pre + "feature.", cfg["heads"])
            h = h.reshape(B, L, K, C)
        y = linear(h, p, pre + "mid") + linear(side, p, pre + "cond")
        y = torch.sigmoid(y[..., :C]) * torch.tanh(y[..., C:])
        y = linear(y, p, pre + "out")
        x = (x + y[..., :C]) / math.sqrt(2.0)
        skip = skip + y[..., C:]
    skip = skip / math.sqrt(cfg["layers"])
    return linear(F.relu(linear(skip, p, "output.fc1")), p, "output.fc2")[..., 0]


def main(path):
    t, meta = read_safetensors(path)
    cfg = json.loads(meta["csdi"])
    names = param_names(cfg)
    have = sorted(k[len("param."):] for k in t if k.startswith("param."))
    check(have == sorted(names), f"the dump's parameters are csdi.c's {len(names)}: "
          f"extra {sorted(set(have) - set(names))}, missing {sorted(set(names) - set(have))}")

    # the functional transformer layer is nn.TransformerEncoderLayer's computation
    p64 = {n: t["param." + n].double() for n in names}
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(5, 7, cfg["channels"], generator=gen, dtype=torch.float64)
    for pre in ("layers.0.time.", "layers.1.feature."):
        ref = torch_layer(p64, pre, cfg["channels"], cfg["heads"], cfg["ff"])(h)
        err = rel_max(transformer(h, p64, pre, cfg["heads"]), ref.detach())
        check(err <= 1e-12, f"{pre[:-1]}: the functional layer is nn.TransformerEncoderLayer "
              f"(float64 difference {err:.3g} of the largest)")

    c = 0
    ratios = []  # err / tol of every comparison
    while f"case{c}.out" in t:
        B, L, K = (int(v) for v in meta[f"case{c}.shape"].split())
        r = {}
        for dt in (torch.float64, torch.float32):
            p = {n: t["param." + n].to(dt).clone().requires_grad_(True) for n in names}
            inp = [t[f"case{c}.{n}"].to(dt) for n in ("xt", "cond", "mask")]
            out = forward(p, cfg, *inp, t[f"case{c}.t"].long(), t[f"case{c}.calendar"].to(dt))
            (out * t[f"case{c}.R"].to(dt)).sum().backward()
            r[dt] = {"out": out.detach()}
            r[dt].update({"grad." + n: (p[n].grad if p[n].grad is not None else torch.zeros_like(p[n]))
                          for n in names})
        r64, r32 = r[torch.float64], r[torch.float32]
        what = f"case {c} (B {B}, L {L}, K {K})"
        err, tol = rel_max(t[f"case{c}.out"], r64["out"]), tol_of(rel_max(r32["out"], r64["out"]))
        check(err <= tol, f"{what} output: max error {err:.3g} of the largest (<= {tol:.3g})")
        ratios.append(err / tol)
        zeros = 0
        for n in names:
            key, ref = "grad." + n, r64["grad." + n]
            cg = t[f"case{c}.grad.{n}"]
            if ref.abs().max().item() == 0:
                zeros += 1
                check(cg.abs().max().item() == 0, f"{what} {key}: zero in PyTorch, "
                      f"{cg.abs().max().item():.3g} in C")
                continue
            err, tol = rel_max(cg, ref), tol_of(rel_max(r32[key], ref))
            check(err <= tol, f"{what} {key}: max error {err:.3g} of the largest (<= {tol:.3g})")
            ratios.append(err / tol)
        skipped = 12 * cfg["layers"] * ((L == 1) + (K == 1))
        check(zeros == skipped, f"{what}: {zeros} parameter tensors without gradient, "
              f"want {skipped} (the skipped transformers')")
        # the feature embedding's rows past K get nothing; the others something
        fe = t[f"case{c}.grad.feature_emb.weight"]
        check(fe[K:].abs().max().item() == 0 and fe[:K].abs().min().item() > 0,
              f"{what}: feature embedding gradient in rows < K only")
        c += 1
    check(c == 3, f"expected 3 cases in the dump, found {c}")
    worst = float("nan") if any(v != v for v in ratios) else max(ratios, default=0.0)
    print(f"csdi: {c} cases, {len(ratios)} comparisons, worst {worst:.2g} of its tolerance")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_csdi.py DUMP.safetensors"))
