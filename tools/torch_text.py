"""torch_text.py DUMP - the text encoder of src/text.c rebuilt with torch.nn (LayerNorm, Linear,
GELU tanh, Embedding; attention through tools/torch_attn.py's formula), loaded with the C weights,
run on the same tokens and mask, and compared: per-token output, pooled output and the gradient
of every parameter. Prints "torch_text: N passed, N failed"."""
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
    model = TextEncoder(**cfg).double()
    state = {k[len("text."):]: v.double() for k, v in t.items() if k.startswith("text.")}
    model.load_state_dict(state)
    tokens, mask = t["in.tokens"].long(), t["in.mask"].double()
    x, pooled = model(tokens, mask)
    loss = (x * t["in.R1"].double()).sum() + (pooled * t["in.R2"].double()).sum()
    loss.backward()
    for name, ours, ref in (("tokens", t["out.tokens"], x), ("pooled", t["out.pooled"], pooled)):
        err = (ours.double() - ref.detach()).abs().max().item()
        check(err < 2e-5, f"output {name}: max error {err:.3g}")
    worst, n = 0.0, 0
    for name, p in model.named_parameters():
        ours = t["grad.text." + name].double()
        err = (ours - p.grad).abs().max().item() / max(1.0, p.grad.abs().max().item())
        worst = max(worst, err)
        check(err < 5e-5, f"grad {name}: max relative error {err:.3g}")
        n += 1
    check(n == 2 + 12 * cfg["layers"] + 2, f"{n} parameter tensors compared")
    print(f"text encoder: {n} parameter gradients, worst relative error {worst:.2g}")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_text.py DUMP.safetensors"))
