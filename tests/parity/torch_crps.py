"""torch_crps.py DUMP - recomputes crps_dump.c's forecast scores (dfs_forecast_score) in PyTorch,
float64, the way CSDI's utils.py does (Tashiro et al. 2021, calc_quantile_CRPS: torch.quantile
at numpy.arange(0.05, 1.0, 0.05), twice the pinball loss summed over the evaluated entries, over
sum |y|, averaged over the 19 levels), the sample CRPS by the all-pairs formula, the median and
the 50% and 90% intervals by torch.quantile, and compares each with the C values.

Tolerances are rounding bounds: each term (a pinball loss, a |difference|) takes at most 8
roundings and a sum of m terms adds (m - 1) u times their magnitudes, so two float64
computations differ by at most 4 (m + 16) u mag, mag a bound on every term (2 (max |x| + max |y|)
over the scored entries). numpy.arange's levels differ from the C's l/20 by at most one unit in
the last place, which moves a rank q (S - 1) by (S - 1) u and a quantile by that times a gap
(< 2 max |x|): 4 S more in m. The coverages must agree exactly: the C interpolates as torch.lerp
does, so its quantiles equal torch.quantile's bit for bit, and the cases put truths on the ends
of the intervals. CSDI's code as written rounds its level weights 1{y <= Q} - q to float32 (see
csdi_ncrps): that version must agree within 2^-24 of the value more. Prints "torch_crps: N
passed, N failed"; also, for information, CSDI's own float32 run and CSDI's median (torch.median,
the lower middle sample for even S)."""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_check import Checks, run  # noqa: E402
from torch_unet import read_safetensors  # noqa: E402

check = Checks("torch_crps")
U = 2.0 ** -53
FIELDS = ("crps_quantile", "crps_sample", "ncrps_quantile", "ncrps_sample", "mae_median", "bias_median",
          "cover50", "cover90", "n")


def csdi_ncrps(target, forecast, eval_points, as_written=False):
    """CSDI's calc_quantile_CRPS (no scaler): target, eval_points (W, P); forecast (W, S, P).
    As CSDI writes it, the indicator (target <= q_pred) * 1.0 is a float32 tensor (a bool times a
    Python float takes torch's default dtype), so 1{y <= Q} - q is rounded to float32 even for
    float64 inputs: as_written=True keeps that; otherwise the indicator is made float64."""
    quantiles = np.arange(0.05, 1.0, 0.05)
    denom = torch.sum(torch.abs(target * eval_points))
    crps = 0
    for q in quantiles:
        q_pred = torch.quantile(forecast, float(q), dim=1)
        ind = (target <= q_pred) * 1.0 if as_written else (target <= q_pred).to(target.dtype)
        q_loss = 2 * torch.sum(torch.abs((q_pred - target) * eval_points * (ind - q)))
        crps += q_loss / denom
    return crps.item() / len(quantiles)


def main(path):
    t, meta = read_safetensors(path)
    c = 0
    while f"case{c}.samples" in t:
        x, y, mask = t[f"case{c}.samples"], t[f"case{c}.truth"], t[f"case{c}.mask"]
        got = {k: float(meta[f"case{c}.{k}"]) for k in FIELDS}
        W, S, P = x.shape
        scored = (mask != 0) & ~torch.isnan(y)
        n = int(scored.sum())
        ep = scored.double()
        # CSDI's truths are 0 where not evaluated
        target = torch.where(scored, y, torch.zeros_like(y)).double()
        forecast = x.double()
        sum_y = torch.sum(torch.abs(target * ep)).item()
        mag = 2 * (forecast.abs().amax(dim=1)[scored].max().item() + target.abs().max().item())
        name = f"case {c} (W {W}, S {S}, P {P}, {n} scored)"
        check(got["n"] == n, f"{name}: n {got['n']:.0f}, want {n}")

        ncrps_q = csdi_ncrps(target, forecast, ep)
        tol = 4 * (19 * n + 16 + 4 * S) * U * mag
        check(abs(got["crps_quantile"] - ncrps_q * sum_y / n) <= tol,
              f"{name}: crps_quantile {got['crps_quantile']:.17g} vs {ncrps_q * sum_y / n:.17g} "
              f"(tol {tol:.2g})")
        check(abs(got["ncrps_quantile"] - ncrps_q) <= tol * n / sum_y,
              f"{name}: ncrps_quantile (CSDI's CRPS) {got['ncrps_quantile']:.17g} "
              f"vs {ncrps_q:.17g}")

        # sample CRPS: (1/S) sum |x - y| - (1/(2 S^2)) sum over all S^2 pairs |x_i - x_j|
        dev = (forecast - target[:, None, :]).abs().sum(dim=1) / S
        diffs = forecast[:, :, None, :] - forecast[:, None, :, :]  # (W, S, S, P)
        pairs = diffs.abs().sum(dim=(1, 2)) / (2 * S * S)
        crps = ((dev - pairs) * ep).sum().item()
        tol = 4 * (S * S * n + 16) * U * mag
        check(abs(got["crps_sample"] - crps / n) <= tol,
              f"{name}: crps_sample {got['crps_sample']:.17g} vs {crps / n:.17g} (tol {tol:.2g})")
        check(abs(got["ncrps_sample"] - crps / sum_y) <= tol * n / sum_y,
              f"{name}: ncrps_sample {got['ncrps_sample']:.17g} vs {crps / sum_y:.17g}")

        q = {lv: torch.quantile(forecast, lv / 20, dim=1) for lv in (1, 5, 10, 15, 19)}
        mae = ((q[10] - target).abs() * ep).sum().item() / n
        tol = 4 * (n + 16) * U * mag
        check(abs(got["mae_median"] - mae) <= tol,
              f"{name}: mae_median {got['mae_median']:.17g} vs {mae:.17g}")
        bias = ((q[10] - target) * ep).sum().item() / n
        check(abs(got["bias_median"] - bias) <= tol,
              f"{name}: bias_median {got['bias_median']:.17g} vs {bias:.17g}")
        in50 = (scored & (q[5] <= target) & (target <= q[15])).sum().item()
        in90 = (scored & (q[1] <= target) & (target <= q[19])).sum().item()
        check(got["cover50"] == in50 / n and got["cover90"] == in90 / n,
              f"{name}: coverage {got['cover50']:.17g} {got['cover90']:.17g} "
              f"vs {in50 / n:.17g} {in90 / n:.17g}")

        # CSDI's code as written: the level weights 1{y <= Q} - q in float32, each term off by at
        # most 2^-24 relative, so the whole by 2^-24 of its value, besides the rounding above
        written = csdi_ncrps(target, forecast, ep, as_written=True)
        tol = 2.0 ** -24 * ncrps_q + 4 * (19 * n + 16 + 4 * S) * U * mag * n / sum_y
        check(abs(got["ncrps_quantile"] - written) <= tol,
              f"{name}: ncrps_quantile {got['ncrps_quantile']:.17g} "
              f"vs CSDI as written {written:.17g} "
              f"(rel. diff {abs(got['ncrps_quantile'] - written) / written:.2g})")

        # for information: CSDI's own float32 run, and its median
        f32 = csdi_ncrps(target.float(), x, ep.float(), as_written=True)
        lower = ((forecast.median(dim=1).values - target).abs() * ep).sum().item() / n
        print(f"     {name}: CSDI float32 CRPS {f32:.9g} (C {got['ncrps_quantile']:.9g}, "
              f"rel. diff {abs(f32 - got['ncrps_quantile']) / got['ncrps_quantile']:.2g}); "
              f"MAE with torch.median {lower:.9g}, with the 0.5 quantile {got['mae_median']:.9g}")
        c += 1
    check(c == 5, f"{c} cases in the dump, want 5")


if __name__ == "__main__":
    sys.exit(run(check, main, "usage: torch_crps.py DUMP"))
