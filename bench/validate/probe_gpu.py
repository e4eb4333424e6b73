"""Proof of the transformers probe on a real GPU: probe (3 contexts) vs a full sweep.

For each model and attention implementation:
  1. the probe as a user runs it (run_probe, contexts 512/1024/2048, fresh), timed after load;
  2. a sweep of the same model, 512 .. 32K tokens (to OOM, or skipped where the prediction
     says it would not fit), with the same measurement code;
and compares the probe's predictions at 8x its largest context (16K) with the sweep's
measurement: peak VRAM (target within 5 %), TTFT (target within 20 %), and probe time after
load (target < 30 s). Raw JSON goes to --out-json (written after every model, so a timeout
keeps what was measured), the table to --out-md.

Run from the repository root with the project installed (on the GPU machine, offline:
`python3 -m pip install --no-deps --no-build-isolation -e .`; torch and transformers from the image):

    python -m bench.validate.probe_gpu --out-json bench/results/probe-gpu-h100.json --out-md bench/results/probe-gpu-h100.md
    python -m bench.validate.probe_gpu --summarize bench/results/probe-gpu-h100.json   # table from raw results (no GPU)
    python -m bench.validate.probe_gpu --cpu-smoke   # the same pipeline on a tiny model on the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback

MODELS = ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "llama3.2-1b", "llama3.1-8b"]
ATTENTIONS = ["sdpa", "eager"]
PROBE_CONTEXTS = [512, 1024, 2048]
SWEEP_CONTEXTS = [512, 1024, 2048, 4096, 8192, 16384, 32768]
TARGET = 8 * max(PROBE_CONTEXTS)


def _point(result, n):
    return next((p for p in result["curve"] if p["context_tokens"] == n), None)


def _timing(result, n):
    return next((t for t in result["ttft"] if t["context_tokens"] == n), None)


def run(args) -> dict:
    from advisor.knowledge import load_knowledge
    from advisor.probes.runner import run_probe
    from advisor.probes.transformers_probe import probe_transformers

    k = load_knowledge(None)
    raw: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": [], "errors": []}
    device = "cpu" if args.cpu_smoke else None
    try:
        from advisor.probes.hardware import detect_gpus

        raw["gpus"] = [g.model_dump() for g in detect_gpus(k)]
    except Exception as e:
        raw["gpus"] = str(e)
    import torch
    import transformers

    raw["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                       "cuda": str(torch.version.cuda)}
    models = args.models.split(",") if args.models else MODELS
    if args.cpu_smoke and not args.models:
        models = [_tiny_dir()]
    t_all = time.perf_counter()
    for model in models:
        for attn in (args.attentions.split(",") if args.attentions else ATTENTIONS):
            if time.perf_counter() - t_all > args.budget_s:
                raw["errors"].append(f"time budget reached before {model} {attn}")
                continue
            entry = {"model": model, "attention": attn}
            try:
                t0 = time.perf_counter()
                probe = run_probe(model, attention=attn, dtype=args.dtype, contexts=PROBE_CONTEXTS, fresh=True,
                                  knowledge=k, device=device)
                entry["probe_wall_s"] = round(time.perf_counter() - t0, 3)
                entry["probe"] = probe.model_dump(mode="json")
                t0 = time.perf_counter()
                sweep = probe_transformers(model, knowledge=k, attention=attn, dtype=args.dtype,
                                           contexts=SWEEP_CONTEXTS, device=device, repetitions=3)
                entry["sweep_wall_s"] = round(time.perf_counter() - t0, 3)
                entry["sweep"] = sweep.model_dump(mode="json")
            except BaseException as e:  # noqa: BLE001 - keep what the others measured
                entry["error"] = f"{e.__class__.__name__}: {e}"
                entry["traceback"] = traceback.format_exc()[-2000:]
                if isinstance(e, KeyboardInterrupt):
                    raise
            raw["runs"].append(entry)
            print(json.dumps({k_: entry.get(k_) for k_ in ("model", "attention", "probe_wall_s", "sweep_wall_s",
                                                            "error")}), flush=True)
            _write(args.out_json, raw)
    raw["interrupt_check"] = _interrupt_check(k, device)
    raw["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write(args.out_json, raw)
    return raw


def _tiny_dir() -> str:
    import tempfile

    from transformers import Qwen2Config

    d = tempfile.mkdtemp(prefix="tiny-qwen2-")
    cfg = Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768)
    cfg.architectures = ["Qwen2ForCausalLM"]
    cfg.save_pretrained(d)
    return d


def _interrupt_check(k, device) -> dict:
    """Ctrl-C in the middle of a probe: is every byte of GPU memory given back?"""
    import torch

    from advisor.probes.transformers_probe import probe_transformers

    seen = []

    def boom(p):
        seen.append(p.step)
        if p.step == "curve":
            raise KeyboardInterrupt

    out: dict = {}
    if torch.cuda.is_available():
        from advisor.probes.transformers_probe import _release_memory

        _release_memory()
        out["allocated_before_mb"] = torch.cuda.memory_allocated() / 2**20
    try:
        probe_transformers(_tiny_dir() if device == "cpu" else "qwen2.5-0.5b", knowledge=k, attention="sdpa", contexts=PROBE_CONTEXTS,
                           device=device, progress=boom)
        out["interrupted"] = False
    except KeyboardInterrupt:
        out["interrupted"] = True
    if torch.cuda.is_available():
        out["allocated_after_mb"] = torch.cuda.memory_allocated() / 2**20
        out["reserved_after_mb"] = torch.cuda.memory_reserved() / 2**20
    out["steps_seen"] = seen
    return out


def _write(path, raw):
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(raw, f, indent=1)


# ------------------------------------------------------------------ analysis
def analyse(entry: dict) -> dict:
    """Predictions from the probe's three points vs the sweep's measurements."""
    from advisor.domain import CurveFit, ProbeResult, TtftFit
    from advisor.probes.fit import fit_curve, fit_ttft

    probe, sweep = entry["probe"], entry["sweep"]
    attn = entry["attention"]
    q = (probe.get("extra") or {}).get("eager_quadratic_mb_per_token2")
    fit = CurveFit(**probe["fit"]) if probe.get("fit") else None
    pts = [(p["context_tokens"], p["peak_mb"]) for p in probe["curve"] if p["status"] == "ok"]
    two_point = fit_curve([p for p in pts if p[0] in (512, 2048)], attn, method="linear")
    free_quad = fit_curve(pts, attn, method="quadratic") if len(pts) >= 3 else None
    row: dict = {"model": entry["model"], "attention": attn, "base_mb": probe["base_vram_mb"],
                 "load_s": probe["extra"]["load_s"], "probe_s": probe["extra"]["probe_s"],
                 "fit": fit.kind if fit else None, "points": []}
    # the probe's fitted TTFT curve (a field of its own; older results kept it in `extra`, which the model lifts)
    ttft_fit = ProbeResult.model_validate(probe).ttft_fit
    if ttft_fit is None:
        raw = fit_ttft([(t["context_tokens"], t["ttft_ms"]) for t in probe["ttft"]])
        ttft_fit = TtftFit(**raw) if raw else None
    full_fit = probe["extra"].get("full_logits_fit")
    full_fit = CurveFit(**full_fit) if full_fit else None
    for sp in sweep["curve"]:
        n = sp["context_tokens"]
        t = _timing(sweep, n)
        row["points"].append({
            "n": n, "status": sp["status"], "measured_mb": sp["peak_mb"],
            "predicted_mb": fit.predict(n) if fit else None,
            "two_point_line_mb": two_point.predict(n) if two_point else None,
            "free_quadratic_mb": free_quad.predict(n) if free_quad else None,
            "full_measured_mb": sp["full_logits_peak_mb"],
            "full_predicted_mb": full_fit.predict(n) if full_fit else None,
            "ttft_ms": t["ttft_ms"] if t else None,
            "ttft_predicted_ms": ttft_fit.predict_ms(n) if ttft_fit and t else None,
            "ttft_flops_scaled_ms": _flops_scaled(entry["model"], probe, n) if t else None,
        })
    row["decode_tok_s"] = probe["decode_tok_s"]
    row["ttft_form"] = ttft_fit.form if ttft_fit else None
    row["q_known"] = q
    return row


def _flops_scaled(model_id: str, probe: dict, n: int) -> float | None:
    """What the advisor does with a probe that has no fitted TTFT curve (advisor/speed.py _probe_ttft):
    the nearest TTFT, scaled by the FLOPs ratio."""
    import math

    from advisor import physics
    from advisor.knowledge import load_knowledge

    try:
        m = load_knowledge(None).model(model_id)
    except Exception:
        return None
    pts = [t for t in probe["ttft"] if t["ttft_ms"] > 0]
    if not pts:
        return None
    t = min(pts, key=lambda p: abs(math.log(p["context_tokens"] / n)))
    return t["ttft_ms"] * physics.prefill_flops(m, n) / physics.prefill_flops(m, t["context_tokens"])


def _err(pred, meas):
    if pred is None or meas is None:
        return None
    return 100.0 * (pred - meas) / meas


def _fmt_err(e, target):
    if e is None:
        return "n/a"
    return f"{e:+.1f}%" + ("" if abs(e) <= target else " MISS")


def summarize(raw: dict) -> str:
    lines = [f"# Probe vs sweep on {_gpu(raw)}", "",
             f"torch {raw['versions']['torch']}, transformers {raw['versions']['transformers']}, "
             f"CUDA {raw['versions']['cuda']}; fp16, random weights built from the catalog config facts.",
             f"Probe: contexts {', '.join(map(str, PROBE_CONTEXTS))}; predictions at 8x the largest ({TARGET:,} tokens) "
             "checked against a sweep measured with the same code (peak = torch.cuda.max_memory_allocated, "
             "generate()-style prefill with logits_to_keep=1). Targets: peak within 5 %, TTFT within 20 %, "
             "probe < 30 s after load.", "",
             "| model | attn | base MiB | probe s (load s) | peak @16K measured | probe fit | err | 2-point line err "
             "| full-logits @16K meas / fit err | TTFT @16K ms | TTFT fit err | FLOPs-scaled err | decode tok/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    misses = []
    for entry in raw["runs"]:
        if "error" in entry:
            lines.append(f"| {entry['model']} | {entry['attention']} | error: {entry['error'][:80]} |" + " |" * 10)
            misses.append(f"{entry['model']} {entry['attention']}: error")
            continue
        row = analyse(entry)
        p = next((x for x in row["points"] if x["n"] == TARGET), None)
        if p is None or p["status"] != "ok":
            note = f"{p['status']}" if p else "not swept"
            pred = p["predicted_mb"] if p else None
            lines.append(f"| {row['model']} | {row['attention']} | {row['base_mb']:,.0f} | {row['probe_s']:.1f} "
                         f"({row['load_s']:.1f}) | {note} | {pred:,.0f} MiB predicted | n/a | n/a | n/a | n/a | n/a | n/a "
                         f"| {row['decode_tok_s'] or 0:.0f} |" if pred else f"| {row['model']} | {note} |")
            continue
        e_peak = _err(p["predicted_mb"], p["measured_mb"])
        e_line = _err(p["two_point_line_mb"], p["measured_mb"])
        e_full = _err(p["full_predicted_mb"], p["full_measured_mb"])
        e_ttft = _err(p["ttft_predicted_ms"], p["ttft_ms"])
        e_flops = _err(p["ttft_flops_scaled_ms"], p["ttft_ms"])
        full = f"{p['full_measured_mb']:,.0f} / {_fmt_err(e_full, 5)}" if p["full_measured_mb"] else "n/a"
        lines.append(
            f"| {row['model']} | {row['attention']} | {row['base_mb']:,.0f} | {row['probe_s']:.1f} ({row['load_s']:.1f}) "
            f"| {p['measured_mb']:,.0f} | {p['predicted_mb']:,.0f} ({row['fit']}) | {_fmt_err(e_peak, 5)} "
            f"| {_fmt_err(e_line, 1e9)} | {full} | {p['ttft_ms']:.1f} | {_fmt_err(e_ttft, 20)} "
            f"| {_fmt_err(e_flops, 20)} | {row['decode_tok_s'] or 0:.0f} |")
        if e_peak is None or abs(e_peak) > 5:
            misses.append(f"{row['model']} {row['attention']}: peak {e_peak:+.1f}%")
        if e_ttft is None or abs(e_ttft) > 20:
            misses.append(f"{row['model']} {row['attention']}: TTFT {e_ttft:+.1f}%" if e_ttft is not None
                          else f"{row['model']} {row['attention']}: TTFT n/a")
        if row["probe_s"] >= 30:
            misses.append(f"{row['model']} {row['attention']}: probe {row['probe_s']:.1f} s")
    lines += ["", "Every swept context (measured MiB / probe-fit error; TTFT ms / fit error):", ""]
    for entry in raw["runs"]:
        if "error" in entry:
            continue
        row = analyse(entry)
        cells = []
        for p in row["points"]:
            if p["status"] != "ok":
                cells.append(f"{p['n']}: {p['status']} (predicted {p['predicted_mb'] or 0:,.0f})")
            else:
                cells.append(f"{p['n']}: {p['measured_mb']:,.0f} ({_fmt_err(_err(p['predicted_mb'], p['measured_mb']), 5)}); "
                             f"{p['ttft_ms']:.1f} ms ({_fmt_err(_err(p['ttft_predicted_ms'], p['ttft_ms']), 20)})")
        lines.append(f"- {row['model']} {row['attention']}: " + " · ".join(cells))
    ic = raw.get("interrupt_check")
    if ic:
        lines += ["", f"Ctrl-C mid-probe: interrupted={ic.get('interrupted')}, "
                      f"allocated before = {ic.get('allocated_before_mb')} MiB, after = {ic.get('allocated_after_mb')} MiB, reserved after = {ic.get('reserved_after_mb')} MiB."]
    lines += ["", "Targets missed: " + ("; ".join(misses) if misses else "none"), ""]
    return "\n".join(lines)


def _gpu(raw):
    g = raw.get("gpus")
    return g[0]["name"] if isinstance(g, list) and g else "CPU (smoke run)"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-json", default="")
    ap.add_argument("--out-md", default="")
    ap.add_argument("--models", default="")
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--attentions", default="", help="comma-separated (default: sdpa,eager)")
    ap.add_argument("--budget-s", type=float, default=500)
    ap.add_argument("--summarize", default="")
    ap.add_argument("--cpu-smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.summarize:
        raw = json.load(open(args.summarize, encoding="utf-8"))
    else:
        raw = run(args)
    md = summarize(raw)
    print(md)
    if args.out_md:
        with open(args.out_md, "w", encoding="utf-8") as f:
            f.write(md)


if __name__ == "__main__":
    main()
