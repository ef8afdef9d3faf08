"""torch_unet.py - the diffuse U-Net in PyTorch, for parity checks and for loading checkpoints.

The module mirrors src/nn/unet.c layer for layer, with the same state_dict names (see
docs/CHECKPOINTS.md and /work/shared/REFERENCE_UNET.md). It is the DDPM U-Net of Ho et al.
2020 (appendix B), without the layers src/nn/unet.c does not have.

    from torch_unet import load_unet
    model, meta = load_unet("runs/fmnist/ckpt.safetensors")          # weights
    ema, _ = load_unet("runs/fmnist/ckpt.safetensors", prefix="ema.")  # EMA weights
    eps = model(x, t, labels)   # x (N, C, H, W) float32, t (N,) int64, labels (N,) int64 or None
    model.double()(x.double(), t, labels)   # the same in float64 (torch_parity.py's reference)

A text model (the checkpoint's "unet" has a "text" object, src/nn/unet_text.c) takes a caption table
first, and labels are its rows (rows = the empty caption):
    model.set_context(tokens, mask)   # (rows, L) int64 each, mask 1 for real tokens

Run with Debian's /usr/bin/python3 (python3-torch); the `safetensors` package is not needed.
"""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST_PARAMS = 1624577           # REFERENCE_UNET.md, with the class embedding
FMNIST_PARAMS_UNCOND = 1623169    # without it

# The fmnist preset, as dfs_unet_config_preset(&c, "fmnist") fills it.
FMNIST = dict(image_size=28, in_channels=1, base_channels=32, mult=[1, 2, 2], attn=[0, 0, 1],
              enc_blocks=2, dec_blocks=3, groups=8, dropout=0.1, num_classes=10)

GN_EPS = 1e-5


# ----------------------------------------------------------------------------------------------
# safetensors (https://github.com/huggingface/safetensors, "Format"): 8-byte little-endian
# header length n, n bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, and an
# optional "__metadata__": {str: str}}, then the data; offsets are relative to the data start.

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
           "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    """Return ({name: torch.Tensor}, {metadata key: str}). Tensors are copies (writable)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", buf[:8])
    if 8 + hlen > len(buf):
        raise ValueError(f"{path}: header length {hlen} past end of file ({len(buf)} bytes)")
    header = json.loads(buf[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    base = 8 + hlen
    tensors = {}
    for name, info in header.items():
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = [int(s) for s in info["shape"]]
        count = int(np.prod(shape)) if shape else 1
        if begin < 0 or end < begin or base + end > len(buf) or \
                end - begin != count * np.dtype(dt).itemsize:
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {begin}..{end}")
        arr = np.frombuffer(buf, dtype=np.dtype(dt).newbyteorder("<"), count=count,
                            offset=base + begin).reshape(shape)
        tensors[name] = torch.from_numpy(arr.astype(dt, copy=True))
    return tensors, meta


def config_from_meta(meta):
    """The U-Net config (a dict) from a file's __metadata__ "unet" JSON string."""
    if "unet" not in meta:
        raise ValueError("no 'unet' key in the safetensors __metadata__")
    cfg = json.loads(meta["unet"])
    out = dict(FMNIST)
    out.update(cfg)
    n = len(out["mult"])
    out["attn"] = [int(a) for a in out["attn"]][:n]
    return out


# ----------------------------------------------------------------------------------------------
# The network. C = base channels, E = 4C (time embedding width), N batch, H W image size.

def timestep_embedding(t, dim):
    """(N,) integer steps -> (N, dim): [sin(t f_i), cos(t f_i)], f_i = exp(-ln(10000) i/(dim/2))
    (Ho et al. 2020 appendix B, after Vaswani et al. 2017 sec. 3.5). Computed in float64."""
    half = dim // 2
    i = torch.arange(half, dtype=torch.float64)
    f = torch.exp(-math.log(10000.0) * i / half)
    arg = t.to(torch.float64)[:, None] * f[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1).to(torch.float32)


class ResBlock(nn.Module):
    """GN, SiLU, Conv3, + Linear(SiLU(temb)), GN, SiLU, Dropout, Conv3, + skip (DDPM app. B)."""

    def __init__(self, cin, cout, temb_dim, groups, dropout):
        super().__init__()
        self.groups = groups
        self.norm1 = nn.GroupNorm(groups, cin, eps=GN_EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=GN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + (self.skip(x) if self.skip is not None else x)


class Attention(nn.Module):
    """One-head self-attention over the H*W positions (DDPM app. B; Vaswani et al. 2017 eq. 1):
    q, k, v = split(Conv1(GN(x))); out = x + Conv1(softmax_j(q_i . k_j / sqrt(c)) v_j).
    With text_dim > 0 (a text model) also a Linear "ctx" (text_dim -> 2c) whose output on the
    caption's tokens gives keys and values appended to the image's (GLIDE, Nichol et al. 2022
    sec. 4.1); padding tokens are hidden."""

    def __init__(self, c, groups, text_dim=0):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=GN_EPS)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        if text_dim:
            self.ctx = nn.Linear(text_dim, 2 * c)

    def forward(self, x, text=None):
        """text: None, or (tokens (N, Lt, d), mask (N, Lt)) of a text model."""
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3 * c, h * w)
        q, k, v = qkv[:, :c], qkv[:, c:2 * c], qkv[:, 2 * c:]          # (N, c, L) each
        if text is not None:
            tok, mask = text
            kv = self.ctx(tok).transpose(1, 2)                          # (N, 2c, Lt)
            k = torch.cat([k, kv[:, :c]], dim=2)                        # (N, c, L + Lt)
            v = torch.cat([v, kv[:, c:]], dim=2)
            s = torch.bmm(q.transpose(1, 2), k) / math.sqrt(c)          # (N, L, L + Lt)
            keep = torch.cat([torch.ones(n, h * w, dtype=torch.bool), mask > 0], dim=1)
            a = torch.softmax(s.masked_fill(~keep[:, None, :], float("-inf")), dim=-1)
            o = torch.bmm(v, a.transpose(1, 2)).reshape(n, c, h, w)
            return x + self.proj(o)
        a = torch.softmax(torch.bmm(q.transpose(1, 2), k) / math.sqrt(c), dim=-1)  # (N, L, L)
        o = torch.bmm(v, a.transpose(1, 2)).reshape(n, c, h, w)       # o_i = sum_j a_ij v_j
        return x + self.proj(o)


class Level(nn.Module):
    """The blocks of one encoder or decoder level: res.{b}, attn.{b}, then down/upsample."""

    def __init__(self, res, attn, resample_name=None, resample=None):
        super().__init__()
        self.res = nn.ModuleList(res)
        if attn:
            self.attn = nn.ModuleList(attn)
        if resample is not None:
            setattr(self, resample_name, resample)


class Mid(nn.Module):
    def __init__(self, c, temb_dim, groups, dropout, text_dim=0):
        super().__init__()
        self.res1 = ResBlock(c, c, temb_dim, groups, dropout)
        self.attn = Attention(c, groups, text_dim)
        self.res2 = ResBlock(c, c, temb_dim, groups, dropout)


class UNet(nn.Module):
    def __init__(self, image_size=28, in_channels=1, base_channels=32, mult=(1, 2, 2),
                 attn=(0, 0, 1), enc_blocks=2, dec_blocks=3, groups=8, dropout=0.1,
                 num_classes=10, text=None):
        super().__init__()
        C, E = base_channels, 4 * base_channels
        L = len(mult)
        attn = [int(a) for a in attn][:L] + [0] * max(0, L - len(attn))
        if dec_blocks != enc_blocks + 1:
            raise ValueError("dec_blocks must be enc_blocks + 1 (every skip is popped once)")
        self.cfg = dict(image_size=image_size, in_channels=in_channels, base_channels=C,
                        mult=list(mult), attn=attn, enc_blocks=enc_blocks,
                        dec_blocks=dec_blocks, groups=groups, dropout=dropout,
                        num_classes=num_classes)
        self.num_classes = num_classes
        self.C = C
        td = 0
        if text:  # a text model (src/nn/unet_text.c): encoder "text.*", "text_proj", "<attn>.ctx"
            from torch_text import TextEncoder  # noqa: E402 (torch_text imports this module)
            text = {k: int(text[k]) for k in ("vocab", "max_len", "dim", "layers", "heads")}
            self.cfg["text"] = text
            td = text["dim"]
            self.ctx_tokens = torch.zeros(0, text["max_len"], dtype=torch.long)
            self.ctx_mask = torch.zeros(0, text["max_len"], dtype=torch.long)
        self.text_dim = td

        self.time_mlp = nn.Sequential(nn.Linear(C, E), nn.SiLU(), nn.Linear(E, E))
        if num_classes > 0:
            self.class_emb = nn.Embedding(num_classes + 1, E)
        self.stem = nn.Conv2d(in_channels, C, 3, padding=1)

        skips = [C]  # channels of the tensors pushed on the skip stack
        ch = C
        down = []
        for l in range(L):
            cout = C * mult[l]
            res, att = [], []
            for b in range(enc_blocks):
                res.append(ResBlock(ch, cout, E, groups, dropout))
                ch = cout
                if attn[l]:
                    att.append(Attention(ch, groups, td))
                skips.append(ch)
            ds = None
            if l < L - 1:
                ds = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
                skips.append(ch)
            down.append(Level(res, att, "downsample", ds))
        self.down = nn.ModuleList(down)

        self.mid = Mid(ch, E, groups, dropout, td)

        # ModuleDict keeps insertion order, so up.{L-1} ... up.0 appear in forward order.
        up = {}
        for l in reversed(range(L)):
            cout = C * mult[l]
            res, att = [], []
            for b in range(dec_blocks):
                res.append(ResBlock(ch + skips.pop(), cout, E, groups, dropout))
                ch = cout
                if attn[l]:
                    att.append(Attention(ch, groups, td))
            us = nn.Conv2d(ch, ch, 3, padding=1) if l > 0 else None
            up[str(l)] = Level(res, att, "upsample", us)
        assert not skips
        self.up = nn.ModuleDict(up)

        self.out_norm = nn.GroupNorm(groups, ch, eps=GN_EPS)
        self.out_conv = nn.Conv2d(ch, in_channels, 3, padding=1)
        if td:
            self.text = TextEncoder(**text)
            self.text_proj = nn.Linear(td, E)

        if self.cfg_is_fmnist():
            want = FMNIST_PARAMS if num_classes > 0 else FMNIST_PARAMS_UNCOND
            got = sum(p.numel() for p in self.parameters())
            assert got == want, f"fmnist U-Net has {got} parameters, want {want}"

    def cfg_is_fmnist(self):
        a = {k: v for k, v in self.cfg.items() if k not in ("dropout", "num_classes")}
        b = {k: v for k, v in FMNIST.items() if k not in ("dropout", "num_classes")}
        return a == b and self.cfg["num_classes"] in (0, 10)

    def set_context(self, tokens, mask):
        """The caption table of a text model: tokens, mask (rows, L); labels are its rows."""
        self.ctx_tokens = tokens.long()
        self.ctx_mask = mask.long()

    def encode_text(self, tokens, mask):
        """src/nn/text.c on (N, L) tokens: per-token features (N, L, d) and the masked mean (N, d),
        0 for a caption with no real token (the empty caption). There C's attention gives each
        query zeros; here such a row attends to all its keys instead (a masked softmax over
        nothing is undefined in PyTorch) - its tokens are hidden from the U-Net and its pooled
        vector is 0, so nothing downstream sees the difference."""
        te = self.text
        L = tokens.shape[1]
        x = te.tok_emb(tokens) + te.pos_emb(torch.arange(L))[None]
        some = mask.sum(1, keepdim=True) > 0
        amask = torch.where(some, mask, torch.ones_like(mask)).to(x.dtype)
        for layer in te.layers:
            x = layer(x, amask)
        x = te.ln_final(x)
        m = mask.to(x.dtype)
        pooled = (x * m[:, :, None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        return x, pooled

    def forward(self, x, t, labels=None):
        """x (N, in, H, W), t (N,) integer steps, labels (N,) in 0..num_classes (num_classes =
        no class) or None (all no-class) -> predicted noise (N, in, H, W). A text model's
        labels are rows of the caption table (set_context), rows = the empty caption."""
        temb = self.time_mlp(timestep_embedding(t, self.C).to(x.dtype))  # (N, E); float32 values,
        # as C rounds them, also in a float64 model
        if self.num_classes > 0:
            if labels is None:
                labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long)
            temb = temb + self.class_emb(labels.long())
        text = None
        if self.text_dim:
            rows, L = self.ctx_tokens.shape
            if labels is None:
                labels = torch.full((x.shape[0],), rows, dtype=torch.long)
            pad = torch.zeros(1, L, dtype=torch.long)
            tokens = torch.cat([self.ctx_tokens, pad])[labels.long()]    # (N, L)
            mask = torch.cat([self.ctx_mask, pad])[labels.long()]
            tok, pooled = self.encode_text(tokens, mask)
            temb = temb + self.text_proj(pooled)
            text = (tok, mask)

        h = self.stem(x)
        stack = [h]
        for lvl in self.down:
            for b, res in enumerate(lvl.res):
                h = res(h, temb)
                if hasattr(lvl, "attn"):
                    h = lvl.attn[b](h, text)
                stack.append(h)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
                stack.append(h)

        h = self.mid.res1(h, temb)
        h = self.mid.attn(h, text)
        h = self.mid.res2(h, temb)

        for lvl in self.up.values():
            for b, res in enumerate(lvl.res):
                h = res(torch.cat([h, stack.pop()], dim=1), temb)
                if hasattr(lvl, "attn"):
                    h = lvl.attn[b](h, text)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))


def param_names(cfg):
    """State_dict names in the order src/nn/unet.c declares them (= forward order), which is also
    the order of the flat "optim.m" / "optim.v" tensors of a checkpoint. (The module's own
    state_dict lists res.* of a level before attn.*; the set of names is the same.)"""
    C, L = cfg["base_channels"], len(cfg["mult"])
    attn = cfg["attn"]
    names = []

    def lin(p):
        names.extend([p + ".weight", p + ".bias"])

    def res(p, cin, cout):
        for s in ("norm1", "conv1", "temb", "norm2", "conv2"):
            lin(f"{p}.{s}")
        if cin != cout:
            lin(p + ".skip")

    text = cfg.get("text")

    def att(p):
        for s in ("norm", "qkv", "proj") + (("ctx",) if text else ()):
            lin(f"{p}.{s}")

    lin("time_mlp.0")
    lin("time_mlp.2")
    if cfg["num_classes"] > 0:
        names.append("class_emb.weight")
    lin("stem")
    skips, ch = [C], C
    for l in range(L):
        cout = C * cfg["mult"][l]
        for b in range(cfg["enc_blocks"]):
            res(f"down.{l}.res.{b}", ch, cout)
            ch = cout
            if attn[l]:
                att(f"down.{l}.attn.{b}")
            skips.append(ch)
        if l < L - 1:
            lin(f"down.{l}.downsample")
            skips.append(ch)
    res("mid.res1", ch, ch)
    att("mid.attn")
    res("mid.res2", ch, ch)
    for l in reversed(range(L)):
        cout = C * cfg["mult"][l]
        for b in range(cfg["dec_blocks"]):
            res(f"up.{l}.res.{b}", ch + skips.pop(), cout)
            ch = cout
            if attn[l]:
                att(f"up.{l}.attn.{b}")
        if l > 0:
            lin(f"up.{l}.upsample")
    lin("out_norm")
    lin("out_conv")
    if text:  # src/nn/unet_text.c declares the encoder (src/nn/text.c's order), then text_proj
        names.extend(["text.tok_emb.weight", "text.pos_emb.weight"])
        for i in range(int(text["layers"])):
            for s in ("ln1", "qkv", "out", "ln2", "fc1", "fc2"):
                lin(f"text.layers.{i}.{s}")
        lin("text.ln_final")
        lin("text_proj")
    return names


def build_unet(cfg):
    keys = ("image_size", "in_channels", "base_channels", "mult", "attn", "enc_blocks",
            "dec_blocks", "groups", "dropout", "num_classes")
    return UNet(**{k: cfg[k] for k in keys}, text=cfg.get("text"))


def load_state(model, tensors, prefix=""):
    """Copy tensors[prefix + name] into every parameter; all must be present, shapes equal."""
    sd = {}
    for name, p in model.state_dict().items():
        key = prefix + name
        if key not in tensors:
            raise KeyError(f"tensor {key} missing from the file")
        src = tensors[key]
        if tuple(src.shape) != tuple(p.shape):
            raise ValueError(f"{key}: shape {tuple(src.shape)} in the file, model wants "
                             f"{tuple(p.shape)}")
        sd[name] = src.to(torch.float32)
    model.load_state_dict(sd, strict=True)
    return model


def load_unet(path, prefix=""):
    """Build the U-Net described by a checkpoint's "unet" metadata and load its weights
    (prefix "ema." for the EMA weights). Returns (model, metadata)."""
    tensors, meta = read_safetensors(path)
    model = build_unet(config_from_meta(meta))
    load_state(model, tensors, prefix)
    return model, meta


if __name__ == "__main__":
    # Standalone self-check: parameter counts, names, and a forward pass of the fmnist preset.
    torch.manual_seed(0)
    for nc, want in ((10, FMNIST_PARAMS), (0, FMNIST_PARAMS_UNCOND)):
        cfg = dict(FMNIST, num_classes=nc)
        m = build_unet(cfg)
        n = sum(p.numel() for p in m.parameters())
        names = param_names(cfg)
        sd = m.state_dict()
        assert sorted(names) == sorted(sd.keys()) and len(names) == len(sd), "names differ"
        print(f"fmnist num_classes={nc}: {n} parameters (want {want}), {len(names)} tensors")
        assert n == want
    x = torch.randn(4, 1, 28, 28)
    out = m(x, torch.tensor([0, 17, 500, 999]))
    assert out.shape == x.shape
    print("forward", tuple(out.shape), "ok")
