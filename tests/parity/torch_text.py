"""torch_text.py DUMP - the text encoder of src/nn/text.c rebuilt with torch.nn (LayerNorm, Linear,
GELU tanh, Embedding; attention through torch_attn.py's formula), loaded with the C weights,
run on the same tokens and mask, and compared: per-token output, pooled output and the gradient
of every parameter. The reference is float64; each comparison (max |C - ref| over the largest
|ref|) must come within SAFETY times PyTorch float32's own deviation from it on the same inputs
(torch_parity.py explains SAFETY = 8 and the floor of 4 roundings). Prints "torch_text: N
passed, N failed"."""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402
from torch_attn import attention  # noqa: E402
from torch_unet import read_safetensors  # noqa: E402

check = Checks("torch_text", quiet=True)
U, SAFETY, FLOOR_U = 2.0 ** -24, 8, 4


def tol_of(dev):
    """The tolerance for a quantity whose float32 deviation from float64 is dev."""
    return SAFETY * max(dev, FLOOR_U * U)


def rel_max(a, ref):
    """max |a - ref| / max |ref| in float64 (NaN if a has a NaN)"""
    return (a.double() - ref.double()).abs().max().item() / ref.double().abs().max().item()


class Layer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, mask):
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=2)
        x = x + self.out(attention(q, k, v, self.heads, mask))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))


class TextEncoder(nn.Module):
    def __init__(self, vocab, max_len, dim, layers, heads):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, dim), nn.Embedding(max_len, dim)
        self.layers = nn.ModuleList(Layer(dim, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(dim)

    def forward(self, tokens, mask):
        L = tokens.shape[1]
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(L))[None]
        for layer in self.layers:
            x = layer(x, mask)
        x = self.ln_final(x)
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
        return x, pooled


def main(path):
    t, meta = read_safetensors(path)
    cfg = json.loads(meta["text"])
    r = {}
    for dt in (torch.float64, torch.float32):
        model = TextEncoder(**cfg).to(dt)
        state = {k[len("text."):]: v.to(dt) for k, v in t.items() if k.startswith("text.")}
        model.load_state_dict(state)
        tokens, mask = t["in.tokens"].long(), t["in.mask"].to(dt)
        x, pooled = model(tokens, mask)
        loss = (x * t["in.R1"].to(dt)).sum() + (pooled * t["in.R2"].to(dt)).sum()
        loss.backward()
        out = {"tokens": x.detach(), "pooled": pooled.detach()}
        out.update({"grad.text." + n: p.grad for n, p in model.named_parameters()})
        r[dt] = out
    r64, r32 = r[torch.float64], r[torch.float32]
    for name in ("tokens", "pooled"):
        err, tol = rel_max(t["out." + name], r64[name]), tol_of(rel_max(r32[name], r64[name]))
        check(err <= tol, f"output {name}: max error {err:.3g} of the largest (<= {tol:.3g})")
    worst, n = 0.0, 0
    for key in r64:
        if not key.startswith("grad."):
            continue
        err, tol = rel_max(t[key], r64[key]), tol_of(rel_max(r32[key], r64[key]))
        if worst == worst and not err / tol <= worst:  # a NaN stays
            worst = err / tol
        check(err <= tol, f"{key}: max error {err:.3g} of the largest (<= {tol:.3g})")
        n += 1
    check(n == 2 + 12 * cfg["layers"] + 2, f"{n} parameter tensors compared")
    print(f"text encoder: {n} parameter gradients, worst {worst:.2g} of its tolerance")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_text.py DUMP.safetensors"))
