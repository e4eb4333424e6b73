"""Calibrate runtime.activation_bytes_per_token from the H100 peak-memory sweeps (issue 13 item 5).

Run from the repository root, with the project installed (`pip install -e .`):

    python -m bench.calibrate.activation            # print the fit and the row
    python -m bench.calibrate.activation --write    # and write bench/results/activation-fit.md and the
                                                    # row into knowledge/calibration.toml
    python -m bench.calibrate.activation --check    # exit 1 when calibration.toml's row is not the fit's

The same constant on models the fit never saw: python -m bench.validate.activation_unseen.

Without a probe, the memory model (advisor/physics.py activation_gb_per_token) budgets a
transformers prefill (SDPA) as

    peak = weights + KV bytes/token x n + A x intermediate_size x 2 B x n

where A is the calibration row runtime.activation_bytes_per_token. The sweeps in
bench/results/probe-gpu-h100.json measured the allocator's peak (torch.cuda.max_memory_allocated,
generate()-style prefill: last-token logits only, fp16, SDPA) at 512 .. 32,768 tokens for five
catalog models. For each SDPA sweep this script takes the part of the peak that is neither the
loaded weights (the sweep's base_vram_mb) nor the theoretical KV cache, fits it as
intercept + slope x n, and expresses the slope in units of intermediate_size x 2 bytes. A is the
least-squares fit of the slopes against 2 x intermediate_size across the models (through the
origin, as the memory model applies it), rounded up to the next tenth; the residuals are the
predicted peak against the measured one at every swept context, with the measured base and with
the catalog's weights (params x 2 B, what a plan without a probe uses).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# tests/test_knowledge.py loads this file by its path for SRC and line(): nothing but the standard
# library at import (the row writer is imported where a row is written)
ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "bench" / "results" / "probe-gpu-h100.json"
OUT = ROOT / "bench" / "results" / "activation-fit.md"
SCRIPT = "bench/calibrate/activation.py"
COMMAND = "python -m bench.calibrate.activation --write"
TITLE = "activation bytes per prompt token"  # the block's BEGIN marker in knowledge/calibration.toml
WHAT = "activation row"  # its END marker
KEY = "runtime.activation_bytes_per_token"
UNIT = ("x intermediate_size x dtype bytes per prompt token at peak (MLP gate/up/act transients, residual stream, "
        "SDPA workspace)")
MIB = 2**20
OLD = 6.0  # runtime.activation_bytes_per_token before this fit


def line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - slope * mx, slope


def fit(k, data: dict) -> dict:
    """Per-sweep slopes, A, the value the knowledge keeps (A rounded up to a tenth), and the residuals."""
    rows = []
    for run in data["runs"]:
        sweep = run.get("sweep") or {}
        if run.get("attention") != "sdpa" or sweep.get("dtype") != "float16":
            continue  # eager attention is quadratic: its n^2 term is calibrated elsewhere
        model = k.model(run["model"])
        base_mb, kv = sweep["base_vram_mb"], sweep["kv_bytes_per_token"]
        pts = [(p["context_tokens"], p["peak_mb"]) for p in sweep["curve"] if p["status"] == "ok" and p["peak_mb"]]
        extra = [((peak - base_mb) * MIB - kv * n) for n, peak in pts]  # bytes beyond weights + KV
        intercept, slope = line([n for n, _ in pts], extra)
        rows.append({"model": model, "base_mb": base_mb, "kv": kv, "pts": pts, "intercept": intercept,
                     "slope": slope, "a": slope / (2 * model.intermediate_size)})
    # A: slopes ~ A x (2 x intermediate), least squares through the origin
    num = sum(r["slope"] * 2 * r["model"].intermediate_size for r in rows)
    den = sum((2 * r["model"].intermediate_size) ** 2 for r in rows)
    a = num / den
    used = math.ceil(a * 10) / 10  # what knowledge/calibration.toml keeps: the fit rounded up
    residuals, worst, worst_before = [], {}, 0.0
    for r in rows:
        m = r["model"]
        w_cat = m.params * 2 / MIB
        for n, peak in r["pts"]:
            per = (r["kv"] + used * 2 * m.intermediate_size) * n / MIB
            p1, p2 = r["base_mb"] + per, w_cat + per
            e1, e2 = p1 / peak - 1, p2 / peak - 1
            before = (w_cat + (r["kv"] + OLD * 2 * m.intermediate_size) * n / MIB) / peak - 1
            if n >= 8192:
                worst[m.id] = max(worst.get(m.id, 0.0), abs(e1), abs(e2))
                worst_before = max(worst_before, abs(before))
            residuals.append((m.id, n, peak, p1, e1, p2, e2, before))
    return {"rows": rows, "a": a, "used": used, "residuals": residuals, "worst": worst, "worst_before": worst_before}


def row(f: dict, src: Path = SRC):
    """The knowledge row (bench.calibrate.rows.Row) of the fit."""
    from bench.calibrate import rows as rw

    spread = [r["a"] for r in f["rows"]]
    ctx = sorted({n for r in f["rows"] for n, _ in r["pts"]})
    return rw.Row(KEY, f["used"], UNIT, (
        f"fit to the H100 SDPA sweeps ({rw.shown(src)}, {len(f['rows'])} models x {ctx[0]}-{ctx[-1]:,} tokens): "
        f"(peak - weights - KV) per token = {min(spread):.2f}-{max(spread):.2f} x intermediate x 2 B, least squares "
        f"{f['a']:.2f}, rounded up to {f['used']:.1f}; predicted peaks then within {max(f['worst'].values()) * 100:.1f} % "
        f"of measured at 8K-32K, where {OLD:.1f} over-predicted by up to {f['worst_before'] * 100:.0f} % "
        f"({SCRIPT}, {rw.shown(OUT)})"))


def report(f: dict, data: dict, src: Path) -> str:
    from bench.calibrate import rows as rw

    rows, a, used = f["rows"], f["a"], f["used"]
    out = ["# Activation bytes per prompt token, fitted to the H100 sweeps", "",
           f"Source: `{rw.shown(src)}` ({data['gpus'][0]['name']}, torch {data['versions']['torch']}, "
           f"transformers {data['versions']['transformers']}; fp16, SDPA, generate()-style prefill with "
           f"last-token logits; peak = torch.cuda.max_memory_allocated). Script: `{COMMAND}`.", "",
           "Per sweep: (peak - loaded weights - theoretical KV x n) = intercept + slope x n over the seven "
           "contexts 512-32,768; slope in units of intermediate_size x 2 B:", "",
           "| model | intermediate | KV B/token | intercept MiB | slope B/token | slope / (2 x intermediate) |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        m = r["model"]
        out.append(f"| {m.id} | {m.intermediate_size:,} | {r['kv']:,.0f} | {r['intercept'] / MIB:,.1f} | "
                   f"{r['slope']:,.0f} | {r['a']:.3f} |")
    spread = [r["a"] for r in rows]
    out += ["", f"**Fit: A = {a:.2f}** (least squares of the slopes against 2 x intermediate_size, through "
            f"the origin; per-model values {min(spread):.2f}-{max(spread):.2f}). The value in use before was "
            "6.0, about 1.5x the measured slope; the source text's '3 x intermediate' (gate, up and their "
            "product) is the MLP part alone: the residual stream, attention projections and SDPA "
            "workspace add the rest. knowledge/calibration.toml keeps "
            f"runtime.activation_bytes_per_token = {used:g} (the fit rounded up to the next "
            "tenth); the residuals below use that value.", "",
            f"Residuals: predicted peak = weights + KV x n + {used:g} x 2 x intermediate x n (no intercept, as "
            "the memory model budgets it) against the measured peak. 'measured base' uses the sweep's "
            "weights after load; 'catalog weights' uses params x 2 B from knowledge/models.toml, what a "
            "plan without a probe has.", "",
            "| model | context | measured MiB | predicted (measured base) | err | predicted (catalog weights) | err "
            "| err with A = 6.0 (before) |",
            "|---|---|---|---|---|---|---|---|"]
    for mid, n, peak, p1, e1, p2, e2, before in f["residuals"]:
        if n in (2048, 8192, 32768):
            out.append(f"| {mid} | {n:,} | {peak:,.0f} | {p1:,.0f} | {e1:+.1%} | {p2:,.0f} | {e2:+.1%} "
                       f"| {before:+.1%} |")
    out += ["", "Largest |error| at 8K-32K per model (either weights column): "
            + ", ".join(f"{mid} {v:.1%}" for mid, v in f["worst"].items()) + ".", "",
            "At short contexts the fixed intercept (logits of the last token, SDPA and cuBLAS workspace: "
            "the intercepts above) is a larger share and the no-intercept prediction is low by up to the "
            "intercept; the CUDA context and the allocator's reserve are budgeted separately "
            "(thresholds cuda_context_overhead_gb)."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench.calibrate import rows as rw

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true",
                    help=f"write {rw.shown(OUT)} and the row into the knowledge file")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 (printing the diff) when the knowledge file's row is not the fit's")
    ap.add_argument("--sweeps", type=Path, default=SRC, help="probe_gpu.py's raw results (SDPA fp16 sweeps)")
    ap.add_argument("--knowledge", type=Path, default=rw.CALIBRATION, help="the table the row lives in")
    ap.add_argument("--out", type=Path, default=OUT, help="where --write puts the report")
    a = ap.parse_args(argv)
    from advisor.knowledge import load_knowledge

    k = load_knowledge()
    data = json.loads(a.sweeps.read_text())
    f = fit(k, data)
    text = report(f, data, a.sweeps)
    print(text)
    r = row(f, a.sweeps)
    print(r.toml() + "\n")
    if a.write:
        a.out.write_text(text)
        print(f"wrote {rw.shown(a.out)}")
    return rw.apply(a.knowledge, rw.Block(TITLE, COMMAND, WHAT, (r,)), write_it=a.write, check=a.check)


if __name__ == "__main__":
    raise SystemExit(main())
