"""Fit transformers serve's speed model to the H100 measurements (bench/results/transformers-serve-h100.json).

Run from the repository root, with the project installed (`pip install -e .`):

    python -m bench.calibrate.transformers_serve.fit            # print the rows
    python -m bench.calibrate.transformers_serve.fit --write    # and write bench/results/transformers-serve-h100-fit.toml
                                                                # and the rows into knowledge/calibration.toml
    python -m bench.calibrate.transformers_serve.fit --check    # exit 1 when calibration.toml's rows are not the fit's

The measurements come from run_bench.py on the GPU machine (README.md in this folder).

The model is the advisor's own (advisor/engines/roofline.py RooflineCosts), with these coefficients:

  prefill(n)   = prefill_floor_ms + matmul FLOPs(n) / (math peak x prefill_flops_efficiency)
                 + attention FLOPs(n) / (FP16 peak x prefill_attention_efficiency)
                 fitted to every TTFT median (the bench's single requests and the advisor probe's),
                 least squares in relative error;
  decode step  = layers x decode_overhead_ms_per_layer x batch_step_multiplier.nN (+ the KV reads)
                 the server is bound by one CPU thread (the GPU 8-50 % busy, the server's busiest
                 thread at 99 % of a core), so a step's time follows the layers (Python per module)
                 and grows with the sequences in it: the per-layer cost is the geometric mean over
                 the N=1 runs, each multiplier the geometric mean of step(N) / step(1) over both
                 models and every run, made non-decreasing in N (pool-adjacent-violators: a step
                 never gets cheaper with more sequences in it).
The first long decode of a fresh server (its first 256 tokens, or its first N=1 load) ran 1.5-3x
slower, in every run: a warm-up, left out of the fit and shown apart.

Bands: the largest relative residual of each fit, rounded up to the next 5 %.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from bench.calibrate import rows as rw

REPO = rw.REPO
RESULTS = REPO / "bench" / "results" / "transformers-serve-h100.json"
FIT = REPO / "bench" / "results" / "transformers-serve-h100-fit.toml"
COMMAND = "python -m bench.calibrate.transformers_serve.fit --write"
TITLE = "transformers serve's speed on the H100"  # the block's BEGIN marker in knowledge/calibration.toml
WHAT = "transformers-serve rows"  # its END marker
NS = (2, 4, 8, 16, 32, 64)
PROVENANCE = ("transformers 5.24.0 `transformers serve --continuous-batching --dtype bfloat16 --attn-implementation "
              "sdpa` measured on an NVIDIA H100 80GB HBM3 (driver 580.159.04, torch 2.11.0+cu130), 2026-11-25, "
              "random-weight qwen2.5-1.5b and llama3.1-8b; bench/calibrate/transformers_serve/run_bench.py (three "
              "calls), fit by bench/calibrate/transformers_serve/fit.py (bench/results/transformers-serve-h100.md)")


def load_points(path: Path = RESULTS) -> dict:
    """TTFT points, decode steps (warm-ups apart) and loads, from the raw rows of every call."""
    data = json.loads(path.read_text())
    ttft, steps, warmups, loads, mem = [], [], [], [], []
    for call in data["calls"]:
        c = call["call"]
        seen_decode: set[tuple[str, str]] = set()  # (model, server command): its first long decode is a warm-up
        for r in call["rows"]:
            if r.get("engine") == "sequential" or r["test"] in ("env", "build", "error", "serve"):
                continue
            m, srv = r.get("model"), r.get("command", "")
            if r["test"] == "ttft":
                for p in r["points"]:
                    reps = [x for x in p["ttft_ms"][1:] if x is not None]
                    ttft.append({"model": m, "tokens": p["prompt_tokens"], "ms": statistics.median(reps),
                                 "call": c, "how": f"{len(reps)} single requests, median (rep 0 apart)"})
            elif r["test"] == "probe" and r.get("result"):
                for t in r["result"]["ttft"]:
                    ttft.append({"model": m, "tokens": t["context_tokens"], "ms": t["ttft_ms"], "call": c,
                                 "how": "advisor probe --backend openai, median of 3"})
            elif r["test"] == "decode":
                for run in r["runs"]:
                    pt = {"model": m, "n": 1, "ms": run["step_ms_median"], "call": c, "how": "one stream, 256 tokens"}
                    (warmups if (m, srv) not in seen_decode else steps).append(pt)
                    seen_decode.add((m, srv))
            elif r["test"] == "load":
                pt = {"model": m, "n": r["n"], "ms": r["step_ms_median"], "call": c,
                      "how": f"{r['n']} users, closed loop, {r['requests']} requests of {r['max_tokens']} tokens"}
                if r["n"] == 1 and (m, srv) not in seen_decode:
                    warmups.append(pt)
                else:
                    steps.append(pt)
                seen_decode.add((m, srv))
                loads.append({**{k: r[k] for k in ("n", "rounds", "requests", "wall_s", "tokens", "aggregate_tok_s",
                                                   "per_user_tok_s_median", "step_ms_median", "ttft_ms_median",
                                                   "ttft_ms_p95", "prompt_tokens_median", "max_tokens")},
                              "model": m, "call": c, "pct": r.get("cb_max_memory_percent"),
                              "during": r.get("during"), "warmup": pt in warmups})
            elif r["test"] == "mem":
                mem.append({"model": m, "call": c, "when": r["when"], "pct": r.get("cb_max_memory_percent", 0.9),
                            "server_mib": (r.get("server") or {}).get("mib"), "cb": r.get("cb") or {},
                            "device": r.get("device") or {}, "before": r.get("before_device") or {}})
    return {"ttft": ttft, "steps": steps, "warmups": warmups, "loads": loads, "mem": mem}


def _model(k, model_id):
    return k.model(model_id, field="--model")


def fit_prefill(k, gpu, pts) -> tuple[float, float, float, float]:
    """(floor ms, matmul efficiency, attention efficiency, largest relative residual): least squares
    in relative error. The matmuls are capped at what vLLM's cuBLAS GEMMs reach on this architecture
    (vllm.prefill_flops_efficiency.bf16.sm90, fitted to NVIDIA's tables): the TTFT medians jitter by
    50-100 ms and alone cannot tell the two rates apart, and transformers runs the same GEMMs."""
    from advisor import physics

    peak = physics.math_peak(gpu, "bf16")
    cap = k.value("vllm.prefill_flops_efficiency.bf16.sm90") if k.has("vllm.prefill_flops_efficiency.bf16.sm90") else 1.0
    xs = []
    for p in pts:
        m = _model(k, p["model"])
        attn = m.attention_flops(p["tokens"])
        xs.append(((physics.prefill_flops(m, p["tokens"]) - attn) / peak * 1e3, attn / gpu.acc32_flops * 1e3, p["ms"]))
    best = None
    for i in range(1, 201):
        eff = cap * i / 200
        for j in range(1, 201):
            att = eff * j / 200
            # for fixed rates the floor minimising sum((floor + w/eff + a/att - y)^2 / y^2) is closed-form
            num = sum((y - w / eff - a / att) / y**2 for w, a, y in xs)
            den = sum(1 / y**2 for _, _, y in xs)
            floor = max(num / den, 0.0)
            err = sum(((floor + w / eff + a / att) - y) ** 2 / y**2 for w, a, y in xs)
            if best is None or err < best[0]:
                best = (err, floor, eff, att)
    _, floor, eff, att = best
    worst = max(abs(floor + w / eff + a / att - y) / y for w, a, y in xs)
    return floor, eff, att, worst


def _pava(vals: list[tuple[int, float, int]]) -> list[float]:
    """Non-decreasing fit of (n, value, weight) sorted by n: pool adjacent violators (in log space)."""
    blocks = [[v, w, [n]] for n, v, w in vals]
    i = 0
    while i < len(blocks) - 1:
        if blocks[i][0] > blocks[i + 1][0]:
            v = (blocks[i][0] * blocks[i][1] + blocks[i + 1][0] * blocks[i + 1][1]) / (blocks[i][1] + blocks[i + 1][1])
            blocks[i:i + 2] = [[v, blocks[i][1] + blocks[i + 1][1], blocks[i][2] + blocks[i + 1][2]]]
            i = max(i - 1, 0)
        else:
            i += 1
    return [b[0] for b in blocks for _ in b[2]]


def fit_decode(k, pts) -> tuple[float, dict[int, float], float]:
    """(ms per layer, {N: multiplier}, largest relative residual of the step)."""
    one = [p for p in pts if p["n"] == 1]
    per_layer = math.exp(statistics.fmean(math.log(p["ms"] / _model(k, p["model"]).layers) for p in one))
    base = {p["model"]: _model(k, p["model"]).layers * per_layer for p in pts}
    raw = []
    for n in NS:
        at = [math.log(p["ms"] / base[p["model"]]) for p in pts if p["n"] == n]
        if at:
            raw.append((n, statistics.fmean(at), len(at)))
    mono = _pava(raw)
    mult = {n: round(max(math.exp(v), 1.0), 4) for (n, _, _), v in zip(raw, mono)}
    worst = max(abs(base[p["model"]] * mult.get(p["n"], 1.0) - p["ms"]) / p["ms"] for p in pts)
    return per_layer, mult, worst


def band(x: float) -> float:
    return min(math.ceil(x * 20) / 20, 0.95)


def rows(k, gpu, path: Path = RESULTS) -> tuple[list[rw.Row], dict]:
    """The transformers-serve.* and band.transformers-serve.* rows (values rounded here), and the fit."""
    pts = load_points(path)
    floor, eff, att, wp = fit_prefill(k, gpu, pts["ttft"])
    per_layer, mult, wd = fit_decode(k, pts["steps"])
    n1 = [p["ms"] for p in pts["steps"] if p["n"] == 1]
    out = [
        ("transformers-serve.prefill_flops_efficiency", round(eff, 4), "fraction of the math peak",
         f"{PROVENANCE}; FLOPs / (BF16 peak x efficiency) + a floor, least squares over {len(pts['ttft'])} TTFT medians "
         f"(504-8,198 prompt tokens, client-side: request sent -> first text chunk)"),
        ("transformers-serve.prefill_attention_efficiency", round(att, 4), "fraction of the FP16 peak",
         f"{PROVENANCE}; the prompt's attention at its own rate (transformers' paged SDPA, not a flash kernel), "
         f"fitted with the matmuls (capped at vLLM's GEMM efficiency on Hopper) and the floor: what makes a "
         f"long prompt slower than its matmuls alone"),
        ("transformers-serve.prefill_floor_ms", round(floor, 1), "ms per prompt",
         f"{PROVENANCE}; the TTFT a short prompt pays before any FLOP counts: HTTP, tokenising, scheduling, one "
         f"Python-bound forward"),
        ("transformers-serve.decode_overhead_ms_per_layer", round(per_layer, 3), "ms per layer per decode step",
         f"{PROVENANCE}; one stream, after the warm-up: {min(n1):.1f}-{max(n1):.1f} ms a token for 28 and 32 layers "
         f"(geometric mean per layer); the server is bound by one CPU thread (its busiest at 99 % of a core, the GPU "
         f"8-33 % busy), so a step costs its Python, per module, not its weight reads"),
    ]
    for n, v in mult.items():
        out.append((f"transformers-serve.batch_step_multiplier.n{n}", v, "x the one-sequence decode step",
                    f"{PROVENANCE}; per-user step at {n} users over the one-user step, geometric mean of both models "
                    f"and every run, non-decreasing in N"))
    out += [
        ("band.transformers-serve.prefill", band(wp), "relative",
         f"{PROVENANCE}; prefill residuals: largest {wp:.0%} over {len(pts['ttft'])} TTFT medians (the server's "
         f"TTFT jitters by 50-100 ms between identical requests: one CPU thread runs the HTTP side and the batch loop)"),
        ("band.transformers-serve.decode", band(wd), "relative",
         f"{PROVENANCE}; decode residuals: largest {wd:.0%} over {len(pts['steps'])} per-user steps at N=1..64 "
         f"(the first 256 tokens of a fresh server ran 1.5-3x slower and are left out: warm it up before timing)"),
    ]
    return [rw.Row(*r) for r in out], {"floor": floor, "eff": eff, "att": att, "per_layer": per_layer, "mult": mult, "worst_prefill": wp,
                 "worst_decode": wd, "points": pts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true",
                    help=f"write {FIT.relative_to(REPO)} and the rows into the knowledge file")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 (printing the diff) when the knowledge file's rows are not the fit's")
    ap.add_argument("--results-json", type=Path, default=RESULTS, help="the measurements (run_bench.py's rows, merged)")
    ap.add_argument("--knowledge", type=Path, default=rw.CALIBRATION, help="the table the rows live in")
    ap.add_argument("--fit-toml", type=Path, default=FIT, help="where --write puts the fit's own TOML")
    a = ap.parse_args(argv)
    from advisor.knowledge import load_knowledge

    k = load_knowledge()
    gpu = k.gpu("H100 80GB")
    rs, info = rows(k, gpu, a.results_json)
    text = rw.render(rs)
    print(text)
    print(f"# prefill: floor {info['floor']:.1f} ms, efficiency {info['eff']:.3f}, attention {info['att']:.3f}, worst {info['worst_prefill']:.1%}; "
          f"decode: {info['per_layer']:.3f} ms/layer, multipliers {info['mult']}, worst {info['worst_decode']:.1%}",
          file=sys.stderr)
    if a.write:
        a.fit_toml.write_text("# transformers serve's speed model on the H100, written by "
                              "bench/calibrate/transformers_serve/fit.py\n"
                              "[meta]\ntable = \"calibration\"\ntitle = \"transformers serve H100 fit\"\n"
                              "description = \"\"\nunits = {}\n\n" + text)
        print(f"wrote {rw.shown(a.fit_toml)}", file=sys.stderr)
    return rw.apply(a.knowledge, rw.Block(TITLE, COMMAND, WHAT, tuple(rs)), write_it=a.write, check=a.check)


if __name__ == "__main__":
    raise SystemExit(main())
