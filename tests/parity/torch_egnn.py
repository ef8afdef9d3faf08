"""torch_egnn.py DUMP - the EGNN denoiser of src/nn/egnn.c rebuilt in PyTorch from the weights
egnn_dump.c wrote, run on the same padded batches, and compared: the output, the gradient of
L = sum R out for every parameter tensor, and the gradient with respect to the input xh.

The network is written here from the papers (Satorras et al. 2021, eqs. 3-6; Hoogeboom et al.
2022, app. B) in the form of EDM's egnn_new.py and EGNN_dynamics_QM9: nn.Modules named as EDM's
(embedding, e_block_L.gcl_S.{edge_mlp, node_mlp, att_mlp}, e_block_L.gcl_equiv.coord_mlp,
embedding_out), the C weights loaded with load_state_dict(strict=True), so that names, shapes and
the order of the parameters must be EDM's; and on a list of edges as EDM runs it (every ordered
pair of slots of a molecule, gathered with h[row], h[col] and summed back with index_add_), not
on the dense per-atom decomposition of the C code:
  xh masked; h = embedding([h, t]); r0_ij = |x_i - x_j|^2 of the input positions
  per block: r_ij = |x_i - x_j|^2, d_ij = (x_i - x_j) / (sqrt(r_ij + 1e-8) + norm_constant),
    e_ij = [r_ij, r0_ij]; per GCL m_ij = edge_mlp([h_i, h_j, e_ij]) (* att_mlp(m_ij)),
    times the edge mask, h_i += node_mlp([h_i, sum_j m_ij / normalization_factor]), h *= mask;
    phi_ij = coord_mlp([h_i, h_j, e_ij]) (coords_range tanh(phi) with tanh),
    x_i += sum_j d_ij phi_ij edge_mask_ij / normalization_factor, x *= mask
  out = [remove_mean_with_mask((x - x0) mask), embedding_out(h)[:, :F] mask]

The reference is float64; each comparison (max |C - ref| over the largest |ref|) must come
within SAFETY times PyTorch float32's own deviation from it on the same inputs, and within
SAFETY FLOOR_U roundings at least (torch_parity.py explains SAFETY = 8 and the floor). The
gradient of a padded slot of xh must be exactly zero in C, as it is in the reference. Prints
"torch_egnn: N passed, N failed"."""
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402
from torch_unet import read_safetensors  # noqa: E402

check = Checks("torch_egnn", quiet=True)
U, SAFETY, FLOOR_U = 2.0 ** -24, 8, 4


def tol_of(dev):
    """The tolerance for a quantity whose float32 deviation from float64 is dev."""
    return SAFETY * max(dev, FLOOR_U * U)


def rel_max(a, ref):
    """max |a - ref| / max |ref| in float64 (NaN if a has a NaN)"""
    return (a.double() - ref.double()).abs().max().item() / ref.double().abs().max().item()


class GCL(nn.Module):
    """EGNN eqs. 3, 5, 6 with EDM's attention gate and masks; the residual is added outside."""

    def __init__(self, nf, attention):
        super().__init__()
        self.edge_mlp = nn.Sequential(nn.Linear(2 * nf + 2, nf), nn.SiLU(), nn.Linear(nf, nf),
                                      nn.SiLU())
        self.node_mlp = nn.Sequential(nn.Linear(2 * nf, nf), nn.SiLU(), nn.Linear(nf, nf))
        self.att_mlp = nn.Sequential(nn.Linear(nf, 1), nn.Sigmoid()) if attention else None

    def forward(self, h, row, col, ea, edge_mask, node_mask, norm):
        m = self.edge_mlp(torch.cat([h[row], h[col], ea], 1))
        if self.att_mlp is not None:
            m = m * self.att_mlp(m)
        m = m * edge_mask
        agg = torch.zeros_like(h).index_add_(0, row, m) / norm
        return (h + self.node_mlp(torch.cat([h, agg], 1))) * node_mask


class CoordUpdate(nn.Module):
    """EGNN eq. 4 in EDM's form: a bounded (tanh) step along normalised differences."""

    def __init__(self, nf):
        super().__init__()
        self.coord_mlp = nn.Sequential(nn.Linear(2 * nf + 2, nf), nn.SiLU(), nn.Linear(nf, nf),
                                       nn.SiLU(), nn.Linear(nf, 1, bias=False))

    def forward(self, h, x, row, col, d, ea, edge_mask, node_mask, cfg):
        phi = self.coord_mlp(torch.cat([h[row], h[col], ea], 1))
        if cfg["tanh"]:
            phi = torch.tanh(phi) * cfg["coords_range"]
        trans = d * phi * edge_mask
        x = x + torch.zeros_like(x).index_add_(0, row, trans) / cfg["normalization_factor"]
        return x * node_mask


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        for s in range(cfg["sublayers"]):
            self.add_module(f"gcl_{s}", GCL(cfg["hidden"], cfg["attention"]))
        self.gcl_equiv = CoordUpdate(cfg["hidden"])


class EGNN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Linear(cfg["features"] + 1, cfg["hidden"])
        self.embedding_out = nn.Linear(cfg["hidden"], cfg["features"] + 1)
        for l in range(cfg["layers"]):
            self.add_module(f"e_block_{l}", Block(cfg))

    def forward(self, xh, t, mask):
        """xh (B, M, 3 + F), t (B), mask (B, M) of 0/1 -> (B, M, 3 + F)"""
        cfg = self.cfg
        B, M, D = xh.shape
        F = D - 3
        idx = torch.arange(B * M).view(B, M)
        row = idx[:, :, None].expand(B, M, M).reshape(-1)  # edge (b, i, j): i -> j
        col = idx[:, None, :].expand(B, M, M).reshape(-1)
        eye = torch.eye(M, dtype=xh.dtype)
        edge_mask = (mask[:, :, None] * mask[:, None, :] * (1 - eye)).reshape(-1, 1)
        node_mask = mask.reshape(B * M, 1)
        xh = xh.reshape(B * M, D) * node_mask
        x0, h = xh[:, :3], xh[:, 3:]
        h = torch.cat([h, t.repeat_interleave(M)[:, None]], 1)
        r0 = ((x0[row] - x0[col]) ** 2).sum(1, keepdim=True)
        h = self.embedding(h)
        x = x0
        norm = cfg["normalization_factor"]
        for l in range(cfg["layers"]):
            block = getattr(self, f"e_block_{l}")
            diff = x[row] - x[col]
            r = (diff ** 2).sum(1, keepdim=True)
            d = diff / (torch.sqrt(r + 1e-8) + cfg["norm_constant"])
            ea = torch.cat([r, r0], 1)
            for s in range(cfg["sublayers"]):
                h = getattr(block, f"gcl_{s}")(h, row, col, ea, edge_mask, node_mask, norm)
            x = block.gcl_equiv(h, x, row, col, d, ea, edge_mask, node_mask, cfg)
            h = h * node_mask
        h = (self.embedding_out(h) * node_mask)[:, :F]
        vel = ((x - x0) * node_mask).view(B, M, 3)
        m3 = mask[:, :, None]
        n = m3.sum(1, keepdim=True)
        vel = vel - vel.sum(1, keepdim=True) / n * m3  # EDM's remove_mean_with_mask
        return torch.cat([vel, h.view(B, M, F)], 2)


def main(path):
    t, meta = read_safetensors(path)
    nets = 0
    ratios = []
    while f"n{nets}.egnn" in meta:
        pre = f"n{nets}."
        cfg = json.loads(meta[pre + "egnn"])
        order = meta[pre + "order"].split()
        model = EGNN(cfg)
        names = list(model.state_dict().keys())
        check(order == names, f"net {nets}: the C parameters are EDM's, in its order "
              f"(C {len(order)}, PyTorch {len(names)}; first difference "
              f"{next(((a, b) for a, b in zip(order, names) if a != b), None)})")
        state = {n: t[pre + "param." + n] for n in order}
        c = 0
        while f"{pre}case{c}.out" in t:
            cp = f"{pre}case{c}."
            B, M = (int(v) for v in meta[cp + "shape"].split())
            r = {}
            for dt in (torch.float64, torch.float32):
                m = EGNN(cfg).to(dt)
                m.load_state_dict({k: v.to(dt) for k, v in state.items()}, strict=True)
                xh = t[cp + "xh"].to(dt).clone().requires_grad_(True)
                out = m(xh, t[cp + "t"].to(dt), t[cp + "mask"].to(dt))
                (out * t[cp + "R"].to(dt)).sum().backward()
                grads = dict(m.named_parameters())
                r[dt] = {"out": out.detach(), "grad_xh": xh.grad}
                r[dt].update({"grad." + n: grads[n].grad for n in names})
            r64, r32 = r[torch.float64], r[torch.float32]
            what = f"net {nets} case {c} (B {B}, M {M})"
            for key in ["out", "grad_xh"] + ["grad." + n for n in names]:
                ref, got = r64[key], t[cp + key]
                if not check(got.shape == ref.shape, f"{what} {key}: shape {tuple(got.shape)}, "
                             f"want {tuple(ref.shape)}"):
                    continue
                err, tol = rel_max(got, ref), tol_of(rel_max(r32[key], ref))
                check(err <= tol, f"{what} {key}: max error {err:.3g} of the largest "
                      f"(<= {tol:.3g})")
                ratios.append(err / tol)
            pad = t[cp + "mask"].reshape(-1) == 0
            gx = t[cp + "grad_xh"].reshape(B * M, -1)
            check(bool((gx[pad] == 0).all()) and bool((r64["grad_xh"].reshape(B * M, -1)[pad]
                                                       == 0).all()),
                  f"{what}: padded slots of xh get exactly zero gradient")
            out = t[cp + "out"].reshape(B * M, -1)
            check(bool((out[pad] == 0).all()), f"{what}: padded slots predict exactly 0")
            c += 1
        check(c == 2, f"net {nets}: expected 2 cases in the dump, found {c}")
        nets += 1
    check(nets == 2, f"expected 2 nets in the dump, found {nets}")
    worst = float("nan") if any(v != v for v in ratios) else max(ratios, default=0.0)
    print(f"egnn: {nets} nets, {len(ratios)} comparisons, worst {worst:.2g} of its tolerance")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_egnn.py DUMP.safetensors"))
