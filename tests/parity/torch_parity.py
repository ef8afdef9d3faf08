"""torch_parity.py OUT.safetensors [OUT2.safetensors ...] - compare the C U-Net with PyTorch on
the batch that parity_dump.c wrote: parameter count and names, forward output, every
parameter's gradient, and the losses and weight updates of K AdamW steps. For a
text-conditioned U-Net (parity_dump --text) also the caption table, a ctx layer in every
attention block and the gradients of the text encoder, text_proj and ctx layers as groups.
Without --text also the ops a CSDI denoiser adds and the U-Net does not use (sigmoid, tanh,
relu, permute), each alone: output and input gradient (compare_ops).
Several dumps of the same model and batch (tests/parity/parity.sh: the fast kernels and BLAS) share one
reference. Prints each comparison and ends with "torch_parity: N passed, N failed"; exits 1 if
anything failed.

The reference is PyTorch in float64: to float32's precision the exact result. The tolerances
come from how well conditioned each quantity is on these very inputs, measured: the same run in
PyTorch float32 errs from float64 by what float32 rounding alone does to it (its summation
orders differ from C's, its rounding is of the same kind). C, a float32 computation too, must
come within SAFETY times that of the float64 result, and within SAFETY FLOOR_U units of
roundoff at least:
  output          max |c - ref| / max |ref|;
  loss            |c - ref| / |ref|, for the forward's loss and each training step's; the scale
                  is the largest float32 deviation of all those losses, or twice the output's
                  deviation in norm relative to ||out - target|| (what it does to a mean of
                  squares), whichever is larger;
  gradients       ||c - ref|| / ||ref|| per tensor, each with its own float32 deviation;
  weight updates  each element on its own, against a bound from Adam's conditioning (see
                  adam_bounds): an update is well determined where the gradient stands clear
                  of its float32 noise and may go either way where it does not.
SAFETY = 8: on the fmnist and text U-Nets, with the fast and the BLAS kernels, C's error is at
most 2.7 times PyTorch float32's for every tensor (other summation orders and blockings, the
same kind of rounding), and these errors are maxima or norms over many elements, stable to a
factor ~2 from one machine's orders to another's.

Run with /usr/bin/python3 (Debian's python3-torch)."""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402
from torch_unet import (FMNIST_PARAMS, FMNIST_PARAMS_UNCOND, build_unet,  # noqa: E402
                        config_from_meta, load_state, param_names, read_safetensors)

U = 2.0 ** -24    # float32 unit roundoff
SAFETY = 8        # C's error against float32 PyTorch's, both from float64 (see above)
FLOOR_U = 4       # the smallest deviation scale: a few roundings of the result itself
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.999), 1e-8, 0.01   # parity_dump.c's AdamW

check = Checks("torch_parity")


def rel_norm(a, b):
    """||a - b|| / ||b|| in float64; inf when b is 0 and a is not; NaN if a has a NaN."""
    d = (a.double() - b.double()).norm().item()
    r = b.double().norm().item()
    if d != d:
        return d
    return d / r if r > 0 else (0.0 if d == 0 else float("inf"))


def tol_of(dev):
    """The tolerance for a quantity whose float32 deviation from float64 is dev."""
    return SAFETY * max(dev, FLOOR_U * U)


def reference(cfg, ts, dtype, K):
    """PyTorch's forward, backward and K AdamW steps in dtype. Returns the output, the loss,
    the first gradients, the training losses, each step's gradient as Adam sees it (after
    clipping; flat, in param_names order) and the weight update w_K - w_0 (flat)."""
    names = param_names(cfg)
    model = build_unet(cfg)
    load_state(model, ts)
    model = model.to(dtype)
    model.train()  # dropout is 0 in the dump, so train mode is deterministic
    x, t = ts["input.x"].to(dtype), ts["input.t"].long()
    labels, target = ts["input.labels"].long(), ts["input.target"].to(dtype)
    if "text" in cfg:
        model.set_context(ts["input.tokens"], ts["input.mask"])
    params = dict(model.named_parameters())
    out = model(x, t, labels)
    loss = F.mse_loss(out, target)
    model.zero_grad()
    loss.backward()
    grads = {k: params[k].grad.detach().clone() for k in names}
    w0 = torch.cat([params[k].detach().flatten() for k in names]).double()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    losses, steps = [], []
    for _ in range(K):
        opt.zero_grad()
        l = F.mse_loss(model(x, t, labels), target)
        l.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        steps.append(torch.cat([params[k].grad.detach().flatten() for k in names]).double())
        opt.step()
        losses.append(l.item())
    dw = torch.cat([params[k].detach().flatten() for k in names]).double() - w0
    return dict(out=out.detach().double(), loss=loss.item(), grads=grads, losses=losses,
                steps=steps, dw=dw, w0=w0, target=target.double())


def adam_bounds(r64, r32, sizes):
    """Per element, how far a float32 run of the K AdamW steps may end from the float64 one.
    Step t moves w by lr u_t (and the decay lr wd w), u_t = mhat_t / (sqrt(vhat_t) + eps),
    mhat_t and vhat_t being bias-corrected exponential means of g and g^2. If every gradient
    the step has seen is off by at most d, mhat moves by at most d (a weighted mean) and
    sqrt(vhat) by at most d (a weighted RMS), so u_t by at most
        d (1 + |u_t|) / (sqrt(vhat_t) + eps - d),
    and never by more than 2 max|u_t|, max|u_t| = sqrt(sum_s a_s^2 / b_s) for the weights a, b
    of mhat and vhat (Cauchy-Schwarz): the full swing of an element whose gradient is lost in
    its noise. The gradient's noise d, per tensor and step: SAFETY times the largest
    difference between PyTorch float32's and float64's gradients at that step (rounding, and
    the effect of the weights float32 rounding moved in the steps before). Plus the rounding of
    the float32 weight itself, u |w| per step. m, v and u come from the float64 run."""
    K = len(r64["steps"])
    b1, b2 = BETAS
    m = torch.zeros_like(r64["w0"])
    v = torch.zeros_like(m)
    bound = K * U * r64["w0"].abs()
    for t in range(1, K + 1):
        g = r64["steps"][t - 1]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        mh, sv = m / bc1, (v / bc2).sqrt()
        u = mh / (sv + EPS)
        a = [(1 - b1) * b1 ** (t - s) / bc1 for s in range(1, t + 1)]
        b = [(1 - b2) * b2 ** (t - s) / bc2 for s in range(1, t + 1)]
        umax = math.sqrt(sum(x * x / y for x, y in zip(a, b)))
        noise = (r32["steps"][t - 1] - g).abs()
        d = torch.cat([SAFETY * n.max().expand(n.numel()) if n.numel() else n
                       for n in torch.split(noise, sizes)])
        du = d * (1 + u.abs()) / (sv + EPS - d).clamp(min=1e-300)
        bound += LR * torch.minimum(du, torch.full_like(du, 2 * umax))
    return bound


def compare_ops(c):
    """The single ops of parity_dump.c's dump_ops: op(ops.x) and the gradient of sum(R op(x))
    against autograd in float64, as the output above: max |c - ref| / max |ref| within
    tol_of(PyTorch float32's own deviation). relu and permute copy or zero values (and their
    gradients R's): those must be exact."""
    names = sorted({k.split(".")[1] for k in c if k.startswith("ops.") and k != "ops.x"})
    check(set(names) == {"sigmoid", "tanh", "relu", "permute_0213", "permute_3102"},
          f"the dump has the single ops: {', '.join(names)}")
    for name in names:
        def op(x):
            if name.startswith("permute_"):
                return x.permute(*c[f"ops.{name}.perm"].tolist())
            return getattr(torch, name)(x)
        ref = {}
        for dtype in (torch.float64, torch.float32):
            x = c["ops.x"].to(dtype, copy=True).requires_grad_()  # a leaf of its own
            y = op(x)
            y.backward(c[f"ops.{name}.R"].to(dtype))
            ref[dtype] = (y.detach().double(), x.grad.double())
        exact = name == "relu" or name.startswith("permute_")
        for i, what in enumerate(("out", "dx")):
            want, f32 = ref[torch.float64][i], ref[torch.float32][i]
            scale = want.abs().max().item()
            got = c[f"ops.{name}.{what}"].double()
            err = (got - want).abs().max().item() / scale if got.shape == want.shape else math.inf
            tol = 0.0 if exact else tol_of((f32 - want).abs().max().item() / scale)
            check(err <= tol, f"ops {name} {what}: max rel error {err:.3e} (<= {tol:.3g}"
                  f"{', exact' if exact else ''})")


def main(paths):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    ts, meta = read_safetensors(paths[0])
    cfg = config_from_meta(meta)
    print(f"torch_parity: {', '.join(paths)}: config {meta['unet']}")
    text = "text" in cfg
    check(text == ("input.tokens" in ts),
          f"the caption table is there exactly when the config has text ({text})")
    model = build_unet(cfg)  # asserts 1,624,577 parameters for the fmnist preset
    names = param_names(cfg)
    n = sum(p.numel() for p in model.parameters())
    fm = model.cfg_is_fmnist()
    want = (FMNIST_PARAMS if cfg["num_classes"] > 0 else FMNIST_PARAMS_UNCOND) if fm else n
    check(n == want, f"parameter count {n} (want {want})")
    if text:
        ctx = [k for k in names if ".ctx." in k]
        qkv = sum(1 for k in names if k.endswith(".qkv.weight") and not k.startswith("text."))
        check(len(ctx) > 0 and len(ctx) == 2 * qkv,
              f"a ctx layer in each of the {len(ctx) // 2} attention blocks")
        rows = ts["input.tokens"].shape[0]
        check(int(ts["input.labels"].max()) == rows,
              f"the batch includes the empty caption (label {rows})")
    K = len(ts["train.losses"].tolist())

    # The reference (float64) and the measure of conditioning (float32, its deviation).
    r64 = reference(cfg, ts, torch.float64, K)
    r32 = reference(cfg, ts, torch.float32, K)
    scale_out = r64["out"].abs().max().item()
    dev_out = (r32["out"].double() - r64["out"]).abs().max().item() / scale_out
    res = (r64["out"] - r64["target"]).norm().item()
    dev_loss = max([abs(r32["loss"] - r64["loss"]) / abs(r64["loss"])] +
                   [abs(a - b) / abs(b) for a, b in zip(r32["losses"], r64["losses"])] +
                   [2 * (r32["out"].double() - r64["out"]).norm().item() / res])
    dev_grad = {k: rel_norm(r32["grads"][k], r64["grads"][k]) for k in names}
    sizes = [r64["grads"][k].numel() for k in names]
    bound = adam_bounds(r64, r32, sizes)
    print(f"torch_parity: float32 PyTorch against float64: output {dev_out:.2e}, losses "
          f"{dev_loss:.2e}, gradients up to {max(dev_grad.values()):.2e}, weight update "
          f"{rel_norm(r32['dw'], r64['dw']):.2e} (norm)")
    # The bound must hold for PyTorch float32 itself, the run it was measured on.
    r32_ratio = ((r32["dw"] - r64["dw"]).abs() / bound).max().item()
    check(r32_ratio <= 1, f"PyTorch float32's own updates within the Adam bounds "
          f"({r32_ratio:.3g} of them)")

    for path in paths:
        c, cmeta = read_safetensors(path)
        print(f"torch_parity: {path}")
        in_file = sorted(k for k in c if "." in k and k.split(".")[0] not in
                         ("input", "grad", "final", "train", "ops"))
        check(in_file == sorted(names) and len(names) == len(model.state_dict()),
              f"{len(in_file)} parameter tensors in the file, {len(names)} in the model, same "
              f"names: {in_file == sorted(names)}")
        nc = sum(c[k].numel() for k in names if k in c)
        check(nc == n, f"C parameter count {nc} (torch {n})")
        same = cmeta.get("unet") == meta.get("unet") and all(
            torch.equal(c[k], ts[k]) for k in names + ["input.x", "input.t", "input.labels",
                                                          "input.target"] if k in c)
        check(same, "the same model, weights and batch as the reference")

        # The single ops (parity_dump.c without --text).
        check(text or "ops.x" in c, "the dump has the single ops (ops.*) unless --text")
        if "ops.x" in c:
            compare_ops(c)

        # Forward and loss.
        err = (c["output"].double() - r64["out"]).abs().max().item() / scale_out
        tol = tol_of(dev_out)
        check(err <= tol, f"output max rel error {err:.3e} (<= {tol:.3g})")
        c_loss = c["loss"].reshape(()).item()
        err = abs(c_loss - r64["loss"]) / abs(r64["loss"])
        tol = tol_of(dev_loss)
        check(err <= tol, f"loss C {c_loss:.6f} reference {r64['loss']:.6f} rel {err:.3e} "
              f"(<= {tol:.3g})")

        # Gradients, per tensor, each against its own conditioning.
        errs = sorted(((rel_norm(c["grad." + k], r64["grads"][k]) / tol_of(dev_grad[k]), k)
                       for k in names), key=lambda e: -e[0] if e[0] == e[0] else -math.inf)
        bad = [(e, k) for e, k in errs if not e <= 1]
        for e, k in errs[:5]:
            print(f"     grad {k}: rel error {e * tol_of(dev_grad[k]):.3e}, {e:.3f} of its "
                  f"tolerance {tol_of(dev_grad[k]):.2e} (|grad| {r64['grads'][k].norm().item():.3e})")
        groups = (("text.*", lambda k: k.startswith("text.")),
                  ("text_proj", lambda k: k.startswith("text_proj")),
                  ("ctx", lambda k: ".ctx." in k))
        for group, pick in groups if text else ():
            ge = [e for e, k in errs if pick(k)]
            worst = max(ge, key=lambda e: math.inf if e != e else e) if ge else math.nan
            check(len(ge) > 0 and worst <= 1,
                  f"{len(ge)} {group} gradients, worst {worst:.3f} of its tolerance")
        check(not bad and errs[0][0] <= 1,
              f"{len(errs)} gradients, worst {errs[0][0]:.3f} of its tolerance ({errs[0][1]}), "
              f"{len(bad)} over")
        for e, k in bad[:20]:
            print(f"     over tolerance: grad {k}: {e:.3f} of it")

        # K AdamW steps on the same batch, as parity_dump.c: clip at global norm 1, then AdamW.
        tol = tol_of(dev_loss)
        for k, (cl, rl) in enumerate(zip(c["train.losses"].tolist(), r64["losses"])):
            err = abs(cl - rl) / abs(rl)
            check(err <= tol, f"train step {k + 1}: loss C {cl:.6f} reference {rl:.6f} "
                  f"rel {err:.3e} (<= {tol:.3g})")

        # The weights after training: each element's update within its Adam bound.
        have = all(("final." + k) in c for k in names)
        check(have, "the file has the weights after training")
        if have:
            dc = torch.cat([(c["final." + k].double() - c[k].double()).flatten() for k in names])
            ratio = (dc - r64["dw"]).abs() / bound
            worst = ratio.max().item() if not ratio.isnan().any() else math.nan
            loose = (bound > 0.1 * r64["dw"].abs()).sum().item()
            check(worst <= 1, f"weight update after {K} steps: every element within its Adam "
                  f"bound (worst {worst:.3g} of it; norm rel error {rel_norm(dc, r64['dw']):.2e}, "
                  f"|dw| {r64['dw'].norm().item():.3e}; {loose} of {dc.numel()} elements have a "
                  f"gradient too close to its noise to fix their update within 10%)")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_parity.py DUMP.safetensors [DUMP2 ...]", many=True))
