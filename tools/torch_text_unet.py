"""torch_text_unet.py OUT.safetensors - compare the text-conditioned C U-Net (src/unet_text.c) with
PyTorch (tools/torch_unet.py's UNet with its text path) on the batch tools/text_unet_dump.c wrote:
parameter names and count, forward output, every parameter's gradient (text encoder, text_proj
and every block's ctx included), and the losses and weight updates of K AdamW steps, with the
tolerances of tools/torch_parity.py. Prints each comparison and ends with
"torch_text_unet: N passed, N failed"; exits 1 if anything failed.

Run with /usr/bin/python3 (Debian's python3-torch)."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_parity import TOL_GRAD, TOL_LOSS, TOL_OUT, TOL_STEP, rel_norm  # noqa: E402
from torch_unet import build_unet, config_from_meta, load_state, param_names, read_safetensors  # noqa: E402

passed = failed = 0


def check(ok, msg):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(("ok   " if ok else "FAIL ") + msg)


def main(path):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    ts, meta = read_safetensors(path)
    cfg = config_from_meta(meta)
    print(f"torch_text_unet: {path}: config {meta['unet']}")
    check("text" in cfg, "the config has a text encoder")

    model = build_unet(cfg)
    names = param_names(cfg)
    n = sum(p.numel() for p in model.parameters())
    in_file = sorted(k for k in ts if "." in k and k.split(".")[0] not in
                     ("input", "grad", "final", "train"))
    check(in_file == sorted(names) and len(names) == len(model.state_dict()),
          f"{len(in_file)} parameter tensors in the file, {len(names)} in the model, same names: "
          f"{in_file == sorted(names)}")
    ctx = [k for k in names if ".ctx." in k]
    check(len(ctx) > 0 and len(ctx) == 2 * sum(1 for k in names if k.endswith(".qkv.weight")
                                                and not k.startswith("text.")),
          f"a ctx layer in each of the {len(ctx) // 2} attention blocks")
    nc = sum(ts[k].numel() for k in names if k in ts)
    check(nc == n, f"C parameter count {nc} (torch {n})")
    load_state(model, ts)
    model.train()  # dropout is 0 in the dump
    model.set_context(ts["input.tokens"], ts["input.mask"])
    rows = ts["input.tokens"].shape[0]

    x, t = ts["input.x"].float(), ts["input.t"].long()
    labels, target = ts["input.labels"].long(), ts["input.target"].float()
    check(int(labels.max()) == rows, f"the batch includes the empty caption (label {rows})")

    out = model(x, t, labels)
    loss = F.mse_loss(out, target)
    c_out = ts["output"]
    err = (c_out - out.detach()).abs().max().item() / out.detach().abs().max().item()
    check(err <= TOL_OUT, f"output max rel error {err:.3e} (<= {TOL_OUT:g})")
    c_loss = ts["loss"].reshape(()).item()
    err = abs(c_loss - loss.item()) / abs(loss.item())
    check(err <= TOL_LOSS, f"loss C {c_loss:.6f} torch {loss.item():.6f} rel {err:.3e}")

    model.zero_grad()
    loss.backward()
    params = dict(model.named_parameters())
    errs = sorted(((rel_norm(ts["grad." + k], params[k].grad), k) for k in names), reverse=True)
    bad = [(e, k) for e, k in errs if not e <= TOL_GRAD]
    for e, k in errs[:5]:
        print(f"     grad {k}: rel error {e:.3e} (|grad| {params[k].grad.norm().item():.3e})")
    for group, pick in (("text.*", lambda k: k.startswith("text.")), ("text_proj", lambda k: k.startswith("text_proj")),
                        ("ctx", lambda k: ".ctx." in k)):
        ge = [e for e, k in errs if pick(k)]
        check(len(ge) > 0 and max(ge) <= TOL_GRAD, f"{len(ge)} {group} gradients, worst rel error {max(ge):.3e}")
    check(not bad, f"{len(errs)} gradients, worst rel error {errs[0][0]:.3e} ({errs[0][1]}), {len(bad)} over "
          f"{TOL_GRAD:g}")
    for e, k in bad[:20]:
        print(f"     over tolerance: grad {k}: {e:.3e}")

    c_losses = ts["train.losses"].tolist()
    w0 = {k: v.detach().clone() for k, v in params.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    for k, cl in enumerate(c_losses):
        opt.zero_grad()
        l = F.mse_loss(model(x, t, labels), target)
        l.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        err = abs(cl - l.item()) / abs(l.item())
        check(err <= TOL_LOSS, f"train step {k + 1}: loss C {cl:.6f} torch {l.item():.6f} rel {err:.3e}")
    dc = torch.cat([(ts["final." + k] - w0[k]).flatten() for k in names])
    dt = torch.cat([(params[k].detach() - w0[k]).flatten() for k in names])
    err = rel_norm(dc, dt)
    check(err <= TOL_STEP, f"weight update after {len(c_losses)} steps: rel error {err:.3e} (<= {TOL_STEP:g})")

    print(f"torch_text_unet: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: torch_text_unet.py OUT.safetensors", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1]))
    except Exception as e:  # a broken file or model counts as a failure, with a summary line
        import traceback
        traceback.print_exc()
        print(f"torch_text_unet: error: {e}")
        print(f"torch_text_unet: {passed} passed, {failed + 1} failed")
        sys.exit(1)
