"""Fit the advisor's vLLM speed model, per GPU architecture, to NVIDIA aiconfigurator-core's tables.

Run from the repository root, with the project installed (needs the `aiconfigurator` extra):

  pip install -e '.[aiconfigurator]'                           # or the test extra
  python -m bench.calibrate.aiconfigurator_vllm                # fit, print the errors per architecture
  python -m bench.calibrate.aiconfigurator_vllm --write        # and write bench/results/aiconfigurator-vllm.{json,md}
                                                               # and the vllm.*.<arch> rows of knowledge/calibration.toml
  python -m bench.calibrate.aiconfigurator_vllm --check        # exit 1 when calibration.toml's rows are not the fit's
  python -m bench.calibrate.aiconfigurator_vllm --from-results bench/results/aiconfigurator-vllm.json --check
                                                               # the stored fit, no refit (no extra needed)

vLLM can't be installed on the GPU machine (no network, wheels too large to carry), so its speed
can't be measured there. aiconfigurator-core ships kernel times NVIDIA measured under vLLM 0.24
(0.14 on A100) on H100 SXM, H200 SXM, L40S and A100 SXM, composed into a prefill and a decode step
per model. This script samples those compositions for every catalog model aiconfigurator can
compose that fits the GPU (prompts of 256-32K tokens; decode steps of 1-128 sequences at 512-8K
tokens of context), and fits the coefficients of the calibrated roofline
(advisor/engines/roofline.py) to them by least squares on the log ratio, one set per architecture
(sm90 from H100 + H200, sm89 from L40S, sm80 from A100), so that a vLLM plan without the extra
(and on other parts of those architectures: H100 PCIe/NVL, RTX 4090, A100 PCIe, ...) is no longer
an assumed efficiency. The rows' band is the fit's 95th-percentile error against the tables and
band.aiconfigurator (the tables' own error against a live server, assumed), added in quadrature.
What was evaluated and how the advisor uses it: bench/calibrate/aiconfigurator_vllm.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path

from advisor import physics
from advisor.engines import aiconfigurator as aic
from advisor.engines import engine
from advisor.engines.roofline import Calibration, roofline_costs
from advisor.knowledge import load_knowledge
from bench.calibrate import rows as rw

REPO = rw.REPO
RES = REPO / "bench" / "results"
SCRIPT = "bench/calibrate/aiconfigurator_vllm.py"
COMMAND = "python -m bench.calibrate.aiconfigurator_vllm --write"
TITLE = "vLLM per GPU architecture"  # the block's BEGIN marker in knowledge/calibration.toml
WHAT = "vLLM rows"  # its END marker
ARCHES = {"sm90": ["h100_sxm", "h200_sxm"], "sm89": ["l40s"], "sm80": ["a100_sxm"]}
PROMPTS = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128]
CONTEXTS = [512, 2048, 8192]
QUANTS = ["bf16", "fp8"]


class Override:
    """The bundled knowledge with some calibration values replaced (the fit's trial values)."""

    def __init__(self, k, values: dict[str, float]):
        self._k, self._v = k, values

    def __getattr__(self, name):
        return getattr(self._k, name)

    def has(self, key):
        return key in self._v or self._k.has(key)

    def value(self, key):
        return self._v[key] if key in self._v else self._k.value(key)

    def source(self, key):
        return "trial value of the fit" if key in self._v else self._k.source(key)


def sample(k, backend: str) -> tuple[list[dict], dict[str, str]]:
    """Every point aiconfigurator gives, per architecture: (kind, gpu, model, quant, x, ctx, ms), and
    the vLLM version of each architecture's tables."""
    pts, versions = [], {}
    for arch, systems in ARCHES.items():
        for system in systems:
            gpu = next(g for g in k.gpus if g.aiconfigurator_system == system)
            for model in k.models.values():
                if aic.hf_config(model) is None or model.experts:
                    continue
                for quant in QUANTS:
                    if quant == "fp8" and not gpu.fp8_tflops:
                        continue
                    weights = physics.weights_gb(k, model, quant)
                    if weights > 0.7 * gpu.vram_gb:
                        continue
                    got = aic.step_costs(backend, model, gpu, quant, 1, 2048)
                    if got is None:
                        continue
                    versions.setdefault(arch, got[0].backend_version)
                    for n in PROMPTS:
                        if n <= model.max_context:
                            pts.append(dict(arch=arch, system=system, gpu=gpu.name, model=model.id, quant=quant,
                                            kind="prefill", x=n, ctx=n, aic_ms=got[0].prefill_ms(n)))
                    free = (0.9 * gpu.vram_gb - weights) * physics.GIB
                    for ctx in CONTEXTS:
                        at = aic.step_costs(backend, model, gpu, quant, 1, ctx)[0]  # a decode step at this context
                        for bs in BATCHES:
                            if ctx <= model.max_context and bs * model.kv_bytes_for(ctx) <= free:
                                pts.append(dict(arch=arch, system=system, gpu=gpu.name, model=model.id, quant=quant,
                                                kind="decode", x=bs, ctx=ctx, aic_ms=at.step_ms(bs)))
    return pts, versions


def predict(k, cal: Calibration, values: dict, p: dict) -> float:
    trial = replace(cal, k=Override(k, values))
    costs, _ = roofline_costs(trial, k.model(p["model"]), k.gpu(p["gpu"]), p["quant"], 1, p["ctx"], "linux")
    return costs.prefill_ms(p["x"]) if p["kind"] == "prefill" else costs.step_ms(p["x"])


def fit_arch(k, cal: Calibration, arch: str, pts: list[dict]) -> tuple[dict, dict]:
    import numpy as np
    from scipy.optimize import least_squares

    quants = sorted({p["quant"] for p in pts})
    pre = [p for p in pts if p["kind"] == "prefill"]
    dec = [p for p in pts if p["kind"] == "decode"]
    # prefill: a floor and a cost per layer once per prompt, the matmuls' efficiency per
    # quantization (or reading the weights once, whichever is longer), attention's own efficiency
    pnames = [f"vllm.prefill_floor_ms.{arch}", f"vllm.prefill_ms_per_layer.{arch}",
              f"vllm.prefill_attention_efficiency.{arch}"] + [f"vllm.prefill_flops_efficiency.{q}.{arch}" for q in quants]
    x0, lo, hi = [1.0, 0.02, 0.4] + [0.5] * len(quants), [0.0, 0.0, 0.02] + [0.02] * len(quants), \
        [200.0, 5.0, 1.0] + [1.0] * len(quants)

    def res_pre(x):
        v = dict(zip(pnames, x))
        return [math.log(predict(k, cal, v, p) / p["aic_ms"]) for p in pre]

    fp = least_squares(res_pre, x0, bounds=(lo, hi), x_scale="jac")
    values = dict(zip(pnames, fp.x))
    # decode: weights at an efficiency per quantization, a cost per layer per step, each
    # sequence's KV at its own efficiency plus a cost per sequence
    dnames = [f"vllm.decode_ms_per_layer.{arch}", f"vllm.decode_kv_bw_efficiency.{arch}",
              f"vllm.decode_ms_per_seq.{arch}"] + [f"vllm.decode_bw_efficiency.{q}.{arch}" for q in quants]
    x0, lo, hi = [0.02, 0.6, 0.01] + [0.7] * len(quants), [0.0, 0.05, 0.0] + [0.05] * len(quants), \
        [5.0, 1.0, 5.0] + [1.0] * len(quants)

    def res_dec(x):
        v = {**values, **dict(zip(dnames, x))}
        return [math.log(predict(k, cal, v, p) / p["aic_ms"]) for p in dec]

    fd = least_squares(res_dec, x0, bounds=(lo, hi), x_scale="jac")
    values.update(zip(dnames, fd.x))
    for p in pts:
        p["advisor_ms"] = predict(k, cal, values, p)
        p["error"] = p["advisor_ms"] / p["aic_ms"] - 1
    stats = {}
    for kind in ("prefill", "decode"):
        errs = np.abs([p["error"] for p in pts if p["kind"] == kind])
        stats[kind] = dict(points=len(errs), median=float(np.median(errs)), p95=float(np.percentile(errs, 95)),
                           max=float(errs.max()), within_25=int((errs <= 0.25).sum()))
    return {key: float(v) for key, v in values.items()}, stats


def rows(k, fits: dict, meta: dict) -> list[rw.Row]:
    """The vllm.* and band.vllm.* rows of the fit (four significant digits; bands to the hundredth)."""
    out: list[rw.Row] = []
    extra = k.value("band.aiconfigurator")
    for arch, (values, stats) in fits.items():
        systems = "+".join(ARCHES[arch])
        how = (f"fit by {SCRIPT} to aiconfigurator-core {meta['aic']} (NVIDIA's vLLM kernel "
               f"tables measured on {systems}, vLLM {meta['versions'][arch]}), {meta['date']}")
        for key, v in values.items():
            n = stats["prefill" if ".prefill" in key else "decode"]
            out.append(rw.Row(key, v, _unit(key), f"{how}: {n['points']} points, median error {n['median']:.1%}, "
                                                  f"p95 {n['p95']:.1%}", digits=4))
            if ".bf16." in key:  # fp16 runs the same kernels at the same tensor-core rate
                out.append(rw.Row(key.replace(".bf16.", ".fp16."), v, _unit(key),
                                  f"as {key}: fp16 runs the bf16 kernels at the same tensor-core rate "
                                  f"(aiconfigurator times both with its bfloat16 tables); {how}", digits=4))
        quants = sorted({key.split(".")[-2] for key in values if key.count(".") == 3})
        for kind, q in ((kind, q) for kind in ("prefill", "decode") for q in quants + (["fp16"] if "bf16" in quants else [])):
            n = stats[kind]
            band = min(0.95, round(math.hypot(n["p95"], extra), 2))  # independent errors add in quadrature
            out.append(rw.Row(f"band.vllm.{kind}.{q}.{arch}", band, "relative",
                              f"{how}: the fit's p95 error against the tables ({n['p95']:.1%}) and band.aiconfigurator "
                              f"({extra:.0%}, the tables' own error against a live vLLM, assumed), added in quadrature",
                              digits=6))
    return out


def block(k, fits: dict, meta: dict) -> rw.Block:
    return rw.Block(TITLE, COMMAND, WHAT, tuple(rows(k, fits, meta)))


def _unit(key: str) -> str:
    if "efficiency" in key:
        return "fraction of the peak (FLOP/s or bandwidth) of this GPU"
    return "ms"


def report(pts, fits, meta) -> str:
    lines = ["# vLLM speed model vs aiconfigurator-core's measured tables", "",
             f"`{COMMAND}` on {meta['date']}: aiconfigurator-core {meta['aic']}, "
             "vLLM tables " + ", ".join(f"{a}: {', '.join(ARCHES[a])} (vLLM {meta['versions'][a]})" for a in ARCHES) + ".",
             "", "The advisor's model (advisor/engines/roofline.py) with the fitted rows, against the tables it was "
             "fitted to.",
             "Prefill: one prompt of n tokens. Decode: one step of N sequences at a context of c tokens.", "",
             "| arch | figure | points | within 25 % | median error | p95 | max |", "|---|---|---|---|---|---|---|"]
    for arch, (_, st) in fits.items():
        for kind in ("prefill", "decode"):
            s = st[kind]
            lines.append(f"| {arch} | {kind} | {s['points']} | {s['within_25']} | {s['median']:.1%} | {s['p95']:.1%} | "
                         f"{s['max']:.1%} |")
    lines += ["", "## Fitted rows", ""]
    for arch, (values, _) in fits.items():
        lines += [f"- {arch}: " + ", ".join(f"`{k_.split('vllm.')[1]}` = {v:.4g}" for k_, v in values.items())]
    lines += ["", "## Worst points per architecture", "", "| arch | gpu | model | quant | figure | n or N | context | "
              "tables ms | advisor ms | error |", "|---|---|---|---|---|---|---|---|---|---|"]
    for arch in fits:
        worst = sorted((p for p in pts if p["arch"] == arch), key=lambda p: -abs(p["error"]))[:6]
        for p in worst:
            lines.append(f"| {arch} | {p['gpu']} | {p['model']} | {p['quant']} | {p['kind']} | {p['x']} | {p['ctx']} | "
                         f"{p['aic_ms']:.2f} | {p['advisor_ms']:.2f} | {p['error']:+.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true",
                    help="write bench/results/aiconfigurator-vllm.{json,md} and the rows into the knowledge file")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 (printing the diff) when the knowledge file's rows are not the fit's")
    ap.add_argument("--from-results", type=Path, metavar="JSON",
                    help="take the fit from a results file this script wrote (no refit, no extra needed)")
    ap.add_argument("--knowledge", type=Path, default=rw.CALIBRATION, help="the table the rows live in")
    ap.add_argument("--results", type=Path, default=RES, help="where --write puts the results files")
    ap.add_argument("--date", default=dt.date.today().isoformat(),
                    help="the date the rows cite (default today; a refit keeps the stored one with --from-results)")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    k = load_knowledge()
    if args.from_results:
        stored = json.loads(args.from_results.read_text())
        meta, pts = stored["meta"], stored["points"]
        fits = {a: (stored["fits"][a], stored["stats"][a]) for a in stored["fits"]}
    else:
        if not aic.available():
            print("aiconfigurator-core is not installed (or ADVISOR_AICONFIGURATOR is off): "
                  "pip install -e '.[aiconfigurator]'", file=sys.stderr)
            return 2
        vllm = engine(k, "vllm")
        # the trial values override the fitted rows only; every other row is the bundled one
        pts, versions = sample(k, vllm.row.aiconfigurator)
        meta = {"aic": aic.version(), "date": args.date, "versions": {a: versions[a] for a in ARCHES}}
        fits = {}
        for arch in ARCHES:
            fits[arch] = fit_arch(k, vllm.calibration, arch, [p for p in pts if p["arch"] == arch])
    for arch, (_, st) in fits.items():
        print(arch, json.dumps(st))
    if args.write and not args.from_results:
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "aiconfigurator-vllm.json").write_text(json.dumps(
            {"meta": meta, "fits": {a: f[0] for a, f in fits.items()}, "stats": {a: f[1] for a, f in fits.items()},
             "points": pts}, indent=1))
        (args.results / "aiconfigurator-vllm.md").write_text(report(pts, fits, meta))
        print(f"wrote {rw.shown(args.results / 'aiconfigurator-vllm.md')} and .json")
    return rw.apply(args.knowledge, block(k, fits, meta), write_it=args.write, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
