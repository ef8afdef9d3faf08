"""torch_parity.py OUT.safetensors - compare the C U-Net with PyTorch on the batch that
tools/parity_dump.c wrote: parameter count and names, forward output, every parameter's
gradient, and the losses and weight updates of K AdamW steps. For a text-conditioned U-Net
(parity_dump --text) also the caption table, a ctx layer in every attention block and the
gradients of the text encoder, text_proj and ctx layers as groups. Prints each comparison and
ends with "torch_parity: N passed, N failed"; exits 1 if anything failed.

Run with /usr/bin/python3 (Debian's python3-torch)."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402
from torch_unet import (FMNIST_PARAMS, FMNIST_PARAMS_UNCOND, build_unet,  # noqa: E402
                        config_from_meta, load_state, param_names, read_safetensors)

TOL_OUT = 1e-3    # max |c - torch| / max |torch| of the output
TOL_GRAD = 1e-3   # ||c - torch|| / ||torch|| per gradient tensor
TOL_LOSS = 1e-3   # |c - torch| / |torch| per training loss
TOL_STEP = 2e-4   # ||dw_c - dw_torch|| / ||dw_torch|| of all K updates (no weight decay: 1e-3)

check = Checks("torch_parity")


def rel_norm(a, b):
    d = (a.double() - b.double()).norm().item()
    r = b.double().norm().item()
    return d / r if r > 0 else (0.0 if d == 0 else float("inf"))


def main(path):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    ts, meta = read_safetensors(path)
    cfg = config_from_meta(meta)
    print(f"torch_parity: {path}: config {meta['unet']}")

    text = "text" in cfg
    check(text == ("input.tokens" in ts), f"the caption table is there exactly when the config has text ({text})")
    model = build_unet(cfg)  # asserts 1,624,577 parameters for the fmnist preset
    names = param_names(cfg)
    n = sum(p.numel() for p in model.parameters())
    fm = model.cfg_is_fmnist()
    want = (FMNIST_PARAMS if cfg["num_classes"] > 0 else FMNIST_PARAMS_UNCOND) if fm else n
    check(n == want, f"parameter count {n} (want {want})")
    in_file = sorted(k for k in ts if "." in k and k.split(".")[0] not in
                     ("input", "grad", "final", "train"))
    check(in_file == sorted(names) and len(names) == len(model.state_dict()),
          f"{len(in_file)} parameter tensors in the file, {len(names)} in the model, same names: "
          f"{in_file == sorted(names)}")
    if text:
        ctx = [k for k in names if ".ctx." in k]
        qkv = sum(1 for k in names if k.endswith(".qkv.weight") and not k.startswith("text."))
        check(len(ctx) > 0 and len(ctx) == 2 * qkv, f"a ctx layer in each of the {len(ctx) // 2} attention blocks")
    nc = sum(ts[k].numel() for k in names if k in ts)
    check(nc == n, f"C parameter count {nc} (torch {n})")
    load_state(model, ts)
    model.train()  # dropout is 0 in the dump, so train mode is deterministic

    x, t = ts["input.x"].float(), ts["input.t"].long()
    labels, target = ts["input.labels"].long(), ts["input.target"].float()
    if text:
        model.set_context(ts["input.tokens"], ts["input.mask"])
        rows = ts["input.tokens"].shape[0]
        check(int(labels.max()) == rows, f"the batch includes the empty caption (label {rows})")

    # Forward and loss.
    out = model(x, t, labels)
    loss = F.mse_loss(out, target)
    c_out = ts["output"]
    err = (c_out - out.detach()).abs().max().item() / out.detach().abs().max().item()
    check(err <= TOL_OUT, f"output max rel error {err:.3e} (<= {TOL_OUT:g})")
    c_loss = ts["loss"].reshape(()).item()
    err = abs(c_loss - loss.item()) / abs(loss.item())
    check(err <= TOL_LOSS, f"loss C {c_loss:.6f} torch {loss.item():.6f} rel {err:.3e}")

    # Gradients, per tensor.
    model.zero_grad()
    loss.backward()
    params = dict(model.named_parameters())
    errs = sorted(((rel_norm(ts["grad." + k], params[k].grad), k) for k in names),
                  reverse=True)
    bad = [(e, k) for e, k in errs if not e <= TOL_GRAD]
    for e, k in errs[:5]:
        print(f"     grad {k}: rel error {e:.3e} (|grad| {params[k].grad.norm().item():.3e})")
    groups = (("text.*", lambda k: k.startswith("text.")), ("text_proj", lambda k: k.startswith("text_proj")),
              ("ctx", lambda k: ".ctx." in k))
    for group, pick in groups if text else ():
        ge = [e for e, k in errs if pick(k)]
        check(len(ge) > 0 and max(ge) <= TOL_GRAD, f"{len(ge)} {group} gradients, worst rel error {max(ge):.3e}")
    check(not bad, f"{len(errs)} gradients, worst rel error {errs[0][0]:.3e} "
          f"({errs[0][1]}), {len(bad)} over {TOL_GRAD:g}")
    for e, k in bad[:20]:
        print(f"     over tolerance: grad {k}: {e:.3e}")

    # K AdamW steps on the same batch, as parity_dump.c: clip at global norm 1, then AdamW.
    c_losses = ts["train.losses"].tolist()
    w0 = {k: v.detach().clone() for k, v in params.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    for k, cl in enumerate(c_losses):
        opt.zero_grad()
        l = F.mse_loss(model(x, t, labels), target)
        l.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        err = abs(cl - l.item()) / abs(l.item())
        check(err <= TOL_LOSS, f"train step {k + 1}: loss C {cl:.6f} torch {l.item():.6f} "
              f"rel {err:.3e}")

    # The weights after training: compare the updates w_K - w_0 (all tensors together).
    check(all(("final." + k) in ts for k in names), "the file has the weights after training")
    if all(("final." + k) in ts for k in names):
        dc = torch.cat([(ts["final." + k] - w0[k]).flatten() for k in names])
        dt = torch.cat([(params[k].detach() - w0[k]).flatten() for k in names])
        err = rel_norm(dc, dt)
        check(err <= TOL_STEP, f"weight update after {len(c_losses)} steps: rel error "
              f"{err:.3e} (<= {TOL_STEP:g}, |dw| {dt.norm().item():.3e})")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_parity.py DUMP.safetensors"))
