"""The plan's transformers-serve figures against the H100 measurements (bench/results/transformers-serve-h100.json).

Run from the repository root (no GPU), with the project installed (`pip install -e .`):

    python -m bench.validate.transformers_serve_h100            # prints the summary
    python -m bench.validate.transformers_serve_h100 --write    # and records bench/results/transformers-serve-h100-predicted.md

Every figure is the advisor's own (advisor/estimate.py estimate_for, backend transformers-serve, with
knowledge/calibration.toml's transformers-serve rows), for the GPU, model and load of the measurement:
  - TTFT of one request (prompt tokens as the server counted them),
  - the per-user decode step at N users,
  - the plan for N users in a closed loop (per-user and total tok/s),
  - memory: the pages of the pool, the memory held after the first request and at most.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from advisor.answers import answers_from_dict
from advisor.engines import engine
from advisor.estimate import estimate_for
from advisor.hardware import resolve_hardware
from advisor.knowledge import load_knowledge
from bench.calibrate.transformers_serve.fit import RESULTS, load_points

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench/results/transformers-serve-h100-predicted.md"
MIB = 2**20


def plan(k, model: str, ctx: int, out: int, n: int):
    a = answers_from_dict({"hardware": {"gpu": "H100 80GB"}, "workload": "chat", "context_tokens": max(ctx, 1),
                           "output_tokens": out, "concurrency": n})
    return estimate_for(k, a, model, "transformers-serve", "bf16")


def _stats(name: str, errs: list[float]) -> str:
    e = sorted(abs(x) for x in errs)
    return (f"- {name}: {len(e)} points, median |error| {e[len(e) // 2]:.1%}, max {e[-1]:.1%}, "
            f"within the band: {sum(x <= b for x, b in zip(e, [BANDS[name]] * len(e)))}/{len(e)}")


BANDS: dict[str, float] = {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measured", type=Path, default=RESULTS, help="the H100 runs (run_bench.py's rows, merged)")
    ap.add_argument("--write", action="store_true", help=f"record {OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    k = load_knowledge()
    BANDS.update({"TTFT, one request": k.value("band.transformers-serve.prefill"),
                  "decode step at N users": k.value("band.transformers-serve.decode"),
                  "per-user tok/s, N users": k.value("band.transformers-serve.decode"),
                  "total tok/s, N users": k.value("band.transformers-serve.decode")})
    pts = load_points(args.measured)
    errs: dict[str, list[float]] = {name: [] for name in BANDS}
    t_rows, d_rows, l_rows, m_rows, w_rows = [], [], [], [], []
    for p in sorted(pts["ttft"], key=lambda p: (p["model"], p["tokens"], p["call"])):
        pred = plan(k, p["model"], p["tokens"], 1, 1).speed.costs.prefill_ms(p["tokens"])
        e = pred / p["ms"] - 1
        errs["TTFT, one request"].append(e)
        t_rows.append(f"| {p['model']} | {p['tokens']:,} | {p['call']} | {p['how']} | {p['ms']:,.1f} | {pred:,.1f} | {e:+.1%} |")
    for p in sorted(pts["steps"], key=lambda p: (p["model"], p["n"], p["call"])):
        pred = plan(k, p["model"], 506, 128, p["n"]).speed.costs.step_ms(p["n"])
        e = pred / p["ms"] - 1
        errs["decode step at N users"].append(e)
        d_rows.append(f"| {p['model']} | {p['n']} | {p['call']} | {p['how']} | {p['ms']:,.1f} | {pred:,.1f} | {e:+.1%} |")
    for p in pts["warmups"]:
        pred = plan(k, p["model"], 506, 128, p["n"]).speed.costs.step_ms(p["n"])
        w_rows.append(f"| {p['model']} | {p['n']} | {p['call']} | {p['how']} | {p['ms']:,.1f} | {pred:,.1f} | "
                      f"{pred / p['ms'] - 1:+.1%} |")
    for r in sorted(pts["loads"], key=lambda r: (r["model"], r["n"], r["call"])):
        if r["warmup"]:
            continue
        est = plan(k, r["model"], int(r["prompt_tokens_median"]), r["max_tokens"], r["n"])
        e_pu = est.load.per_user_tok_s / r["per_user_tok_s_median"] - 1
        e_tot = est.load.total_tok_s / r["aggregate_tok_s"] - 1
        errs["per-user tok/s, N users"].append(e_pu)
        errs["total tok/s, N users"].append(e_tot)
        how = f"{r['rounds']} round{'s' if r['rounds'] > 1 else ''}" + (" (all at once)" if r["rounds"] == 1 else "")
        pct = f", --cb-max-memory-percent {r['pct']}" if r.get("pct") else ""
        l_rows.append(f"| {r['model']} | {r['n']} | {r['call']} | {how}{pct} | {r['per_user_tok_s_median']:.1f} | "
                      f"{est.load.per_user_tok_s:.1f} | {e_pu:+.1%} | {r['aggregate_tok_s']:,.1f} | {est.load.total_tok_s:,.1f} | "
                      f"{e_tot:+.1%} | {r['ttft_ms_p95']:,.0f} | {est.load.ttft_p95_ms:,.0f} |")
    ts = engine(k, "transformers-serve")
    base_of = {}
    for m in pts["mem"]:
        if m["when"] == "loaded, no request yet":
            base_of[(m["model"], m["call"])] = m["server_mib"]
    for m in pts["mem"]:
        cb = m["cb"]
        base = base_of.get((m["model"], m["call"]))
        if not cb.get("available_mb") or base is None:
            continue
        g = ts.pool_geometry(k.model(m["model"]), 2, int(cb["available_mb"]) * MIB + MIB // 2)
        first = base + (g.cache_bytes + g.mask_bytes) / MIB
        claim = base + int(cb["available_mb"])
        pred = first if m["when"] == "after first request" else claim
        m_rows.append(f"| {m['model']} | {m['call']} | {m['pct']} | {m['when']} | {cb['num_sectors']} | {g.pages} | "
                      f"{m['server_mib']:,.0f} | {pred:,.0f} ({'cache + mask' if pred == first else 'the claim'}) | "
                      f"{m['server_mib'] / pred - 1:+.1%} |")
    a = answers_from_dict({"hardware": {"gpu": "H100 80GB"}, "workload": "chat", "concurrency": 16})
    hw = resolve_hardware(a, k)
    plans = {m: estimate_for(k, a, m, "transformers-serve", "bf16", hardware=hw) for m in ("qwen2.5-1.5b", "llama3.1-8b")}
    head = ["# transformers serve on the H100: the advisor's prediction vs the measurement", "",
            "python -m bench.validate.transformers_serve_h100 --write (no GPU needed; measurements from "
            "bench/results/transformers-serve-h100.json, coefficients from knowledge/calibration.toml's "
            "transformers-serve rows, fitted by python -m bench.calibrate.transformers_serve.fit)", ""]
    head += [_stats(name, e) for name, e in errs.items() if e]
    head += ["", "Bands: " + ", ".join(f"{n} ±{b:.0%}" for n, b in BANDS.items()) + ".",
             "The plan for a catalog H100 80GB (80 GiB, nothing else on it): "
             + "; ".join(f"{m}: VRAM {e.vram_gb:.1f} GiB, pool {e.memory.pool_tokens:,} tokens" for m, e in plans.items())
             + " (the runs' GPU had 79.6 GiB).", "",
            "## TTFT of one request", "",
            "| model | prompt tokens | call | how | measured ms | predicted ms | error |", "|---|---|---|---|---|---|---|",
            *t_rows, "", "## Decode step per user at N users (ms)", "",
            "| model | N | call | how | measured | predicted | error |", "|---|---|---|---|---|---|---|", *d_rows, "",
            "A fresh server's first long decode (left out of the fit, shown apart):", "",
            "| model | N | call | how | measured | predicted | error |", "|---|---|---|---|---|---|---|", *w_rows, "",
            "## N users in a closed loop: the plan (advisor/estimate.py, the load model) vs the run", "",
            "A round of one request per user is a burst (all prompts at once); the plan's TTFT p95 is the "
            "steady state's, so the TTFT columns compare only where rounds = 2.", "",
            "| model | N | call | run | per-user tok/s measured | plan | error | total tok/s measured | plan | error | "
            "TTFT p95 ms measured | plan |", "|---|---|---|---|---|---|---|---|---|---|---|---|", *l_rows, "",
            "## Memory (MiB): the pool's pages and what the server process holds (NVML)", "",
            "After the first request the server holds its weights and runtime (as loaded), the cache and SDPA's "
            "attention mask; under load it grows towards the whole share it took (the claim: loaded + "
            "max_memory_percent x free), which the plan reports as its VRAM.", "",
            "| model | call | max_memory_percent | when | pages (server's log) | pages (advisor) | held | predicted | error |",
            "|---|---|---|---|---|---|---|---|---|", *m_rows]
    text = "\n".join(head) + "\n"
    if args.write:
        OUT.write_text(text)
        print(f"wrote {OUT.relative_to(ROOT)}")
    print("\n".join(head[:10]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
