"""The load model's closed forms (advisor/load/schedulers.py) against the discrete-event simulation.

Run from the repository root, with the project installed (`pip install -e .`):

    python -m bench.validate.load_model            # prints the tables
    python -m bench.validate.load_model --write    # and records bench/results/load-model-vs-simulation.md

Every plan's TTFT, latency and in-flight figures come from the load model, closed forms fast
enough for every candidate; advisor/load/simulation.py simulates the same replica step by step
(iteration-level scheduling, chunked prefill, slots, one request at a time). Here both are run on
real catalog candidates: each candidate's step costs and scheduler come from
advisor.estimate.estimate_for (with ADVISOR_AICONFIGURATOR=off, so the figures do not depend on
whether the extra is installed), the sequences it runs at once are the plan's (the KV pool's, for
an arrival rate), and Poisson arrivals come at 20 %, 50 % and 80 % of one replica's capacity
(scheduler.capacity_rps):

  model      scheduler.figures(costs, Demand.of(prompt, output, rate_rps=rate, SLOs), seqs)
  simulated  simulate(scheduler.replica(costs, seqs), Workload(prompt, output, rate_rps=rate,
             requests=4000, seed=0))

A second section checks the one-at-a-time scheduler against the M/D/1 closed forms, which are
exact for it (Pollaczek-Khinchine's mean wait, the Erlang-Crommelin wait distribution). The end
of the file summarises the median and largest |error| per kind of scheduler.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "load-model-vs-simulation.md"
UTILISATIONS = (0.2, 0.5, 0.8)
REQUESTS = 4000
# (label, model, GPU, engine, quantization, answers beyond the GPU)
CASES = [
    ("qwen2.5-1.5b, L40S, vLLM fp16, chat 1K", "qwen2.5-1.5b", "L40S", "vllm", "fp16",
     {"workload": "chat", "context_tokens": 1024}),
    ("llama3.1-8b, H100, vLLM fp16, chat 1K", "llama3.1-8b", "H100 80GB", "vllm", "fp16",
     {"workload": "chat", "context_tokens": 1024}),
    ("llama3.1-8b, H100, vLLM fp16, RAG 8K", "llama3.1-8b", "H100 80GB", "vllm", "fp16",
     {"workload": "rag", "context_tokens": 8192}),
    ("qwen2.5-14b, A100 80GB, vLLM fp16, chat 1K", "qwen2.5-14b", "A100 80GB", "vllm", "fp16",
     {"workload": "chat", "context_tokens": 1024}),
    ("llama3.1-8b, RTX 4090, Ollama q4_k_m, chat 1K", "llama3.1-8b", "RTX 4090", "ollama", "q4_k_m",
     {"workload": "chat", "context_tokens": 1024}),
    ("qwen2.5-1.5b, RTX 4090, transformers fp16, chat 1K", "qwen2.5-1.5b", "RTX 4090", "transformers", "fp16",
     {"workload": "chat", "context_tokens": 1024}),
]
MD1_UTILISATIONS = (0.2, 0.5, 0.8, 0.9, 0.95)


def _err(model: float, sim: float) -> float:
    return model / sim - 1 if sim > 0 and math.isfinite(model) and math.isfinite(sim) else math.nan


def _pct(e: float) -> str:
    return "n/a" if math.isnan(e) else f"{e:+.1%}"


def _num(x: float, fmt: str) -> str:
    return format(x, fmt) if math.isfinite(x) else "inf"


def estimates(k):
    """(label, Estimate) of every case, the answers in arrival-rate mode (the plan's sequences: its pool)."""
    from advisor.answers import answers_from_dict
    from advisor.estimate import estimate_for

    out = []
    for label, model, gpu, backend, quant, extra in CASES:
        a = answers_from_dict({**extra, "arrival_rate_rps": 1.0, "hardware": {"gpu": gpu}})
        out.append((label, estimate_for(k, a, model, backend, quant)))
    return out


def grid(k) -> list[dict]:
    """The load model and the simulation on every case at every utilisation."""
    from advisor.load.demand import Demand
    from advisor.load.simulation import Workload, simulate

    rows = []
    for label, e in estimates(k):
        d, sched, costs, seqs = e.demand, e.scheduler, e.speed.costs, e.load.seqs
        cap = sched.capacity_rps(costs, d, seqs)
        replica = sched.replica(costs, seqs)
        for u in UTILISATIONS:
            rate = u * cap
            ask = Demand.of(prompt_tokens=d.prompt_tokens, output_tokens=d.output_tokens, rate_rps=rate,
                            ttft_slo_ms=d.ttft_slo_ms, e2e_slo_s=d.e2e_slo_s)
            m = sched.figures(costs, ask, seqs)
            t = time.perf_counter()
            s = simulate(replica, Workload(d.prompt_tokens, d.output_tokens, rate_rps=rate, requests=REQUESTS, seed=0))
            rows.append({"label": label, "kind": sched.kind, "seqs": seqs, "u": u, "rate": rate, "cap": cap,
                         "prompt": d.prompt_tokens, "output": d.output_tokens,
                         "m_ttft": m.ttft_p95_ms, "s_ttft": s.ttft_p95_ms, "e_ttft": _err(m.ttft_p95_ms, s.ttft_p95_ms),
                         "m_e2e": m.e2e_p95_s, "s_e2e": s.e2e_p95_s, "e_e2e": _err(m.e2e_p95_s, s.e2e_p95_s),
                         "m_fly": m.in_flight, "s_fly": s.mean_in_flight, "e_fly": _err(m.in_flight, s.mean_in_flight),
                         "m_sys": rate * m.e2e_mean_s, "s_sys": rate * s.e2e_mean_s,
                         "e_sys": _err(rate * m.e2e_mean_s, rate * s.e2e_mean_s),
                         "steady": m.steady and s.steady, "sim_s": time.perf_counter() - t})
    return rows


def md1(k) -> list[dict]:
    """The one-at-a-time scheduler's figures against the M/D/1 closed forms, computed here from
    the service time (and the simulation beside them)."""
    from advisor.load import closed_forms as cf
    from advisor.load.demand import Demand
    from advisor.load.simulation import Workload, simulate

    rows = []
    for label, e in estimates(k):
        sched = e.scheduler
        if sched.kind != "sequential":
            continue
        d, costs = e.demand, e.speed.costs
        prefill, step1 = costs.prefill_ms(d.prompt_tokens), costs.step_ms(1)
        service = prefill + (d.output_tokens - 1) * step1  # ms, deterministic
        for u in MD1_UTILISATIONS:
            rate = u / service * 1e3
            ask = Demand.of(prompt_tokens=d.prompt_tokens, output_tokens=d.output_tokens, rate_rps=rate)
            m = sched.figures(costs, ask, 1)
            w95 = cf.md1_wait_quantile_ms(0.95, rate, service)  # the exact quantile (alternating series)
            wmean = cf.md1_mean_wait_ms(rate, service)
            s = simulate(sched.replica(costs, 1), Workload(d.prompt_tokens, d.output_tokens, rate_rps=rate,
                                                           requests=REQUESTS, seed=0))
            rows.append({"label": label, "u": u, "rate": rate, "service": service,
                         "m_ttft": m.ttft_p95_ms, "c_ttft": prefill + w95, "s_ttft": s.ttft_p95_ms,
                         "m_e2e": m.e2e_p95_s, "c_e2e": (w95 + service) / 1e3, "s_e2e": s.e2e_p95_s,
                         "m_mean": m.e2e_mean_s, "c_mean": (wmean + service) / 1e3, "s_mean": s.e2e_mean_s,
                         "m_fly": m.in_flight, "c_fly": rate * (wmean + service) / 1e3, "s_fly": s.mean_in_flight})
    return rows


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> list[tuple[str, ...]]:
    out = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        cells = [kind, str(len(mine))]
        for key in ("e_ttft", "e_e2e", "e_fly", "e_sys"):
            errs = [abs(r[key]) for r in mine if not math.isnan(r[key])]
            cells.append(f"{statistics.median(errs):.1%} / {max(errs):.1%}" if errs else "n/a")
        out.append(tuple(cells))
    return out


def report(k, rows: list[dict], exact: list[dict]) -> str:
    from advisor.load.schedulers import SCHEDULERS

    labels = {kind: cls.label for kind, cls in SCHEDULERS.items()}
    lines = [f"Machine: {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}), "
             f"{time.strftime('%Y-%m-%d')}; ADVISOR_AICONFIGURATOR=off (the calibrated roofline's step costs).", "",
             f"Each row: one candidate as `advisor.estimate.estimate_for` builds it (its step costs, scheduler and "
             f"the sequences it runs at once: the KV pool's, capped by the engine), Poisson arrivals at a share of "
             f"its capacity (`scheduler.capacity_rps`). Model: `scheduler.figures(...)`; simulated: `simulate(...)` "
             f"with {REQUESTS} requests, seed 0, fixed lengths. Error = model / simulated - 1 (the simulation is "
             f"the reference; its own sampling noise at {REQUESTS} requests is a few per cent on a p95).", "",
             "## The load model against the simulation", ""]
    cand = []
    for label in dict.fromkeys(r["label"] for r in rows):
        r = next(x for x in rows if x["label"] == label)
        cand.append((label, labels.get(r["kind"], r["kind"]), str(r["seqs"]), f"{r['prompt']:,} / {r['output']:,}",
                     f"{r['cap']:.3g}"))
    lines.append(table(("candidate", "scheduler", "sequences at once", "prompt / output tokens",
                        "capacity (req/s, one replica)"), cand))
    body = []
    for r in rows:
        body.append((r["label"], f"{r['u']:.0%}", f"{r['rate']:.3g}",
                     _num(r["m_ttft"], ",.0f"), _num(r["s_ttft"], ",.0f"), _pct(r["e_ttft"]),
                     _num(r["m_e2e"], ".2f"), _num(r["s_e2e"], ".2f"), _pct(r["e_e2e"]),
                     _num(r["m_fly"], ".1f"), _num(r["s_fly"], ".1f"), _pct(r["e_fly"]),
                     _num(r["m_sys"], ".1f"), _num(r["s_sys"], ".1f"), _pct(r["e_sys"]))
                    + (() if r["steady"] else ("(not steady)",)))
    lines.append(table(("candidate", "utilisation", "rate (req/s)", "TTFT p95 ms, model", "simulated", "error",
                        "latency p95 s, model", "simulated", "error", "in flight, model", "simulated", "error",
                        "in system, model", "simulated", "error"), body))
    lines += ["In flight: the model's `Load.in_flight` against the simulation's time-averaged sequences admitted on "
              "the engine (`LoadResult.mean_in_flight`). In system: rate x mean latency (Little's law: requests "
              "queued or on the engine), the model's `e2e_mean_s` against the simulation's. The one-at-a-time "
              "model's `in_flight` is rate x (wait + S), the requests in the system, queue included; the others' "
              "is the sequences decoding.", ""]
    lines += ["## One request at a time against M/D/1", "",
              "A generate() loop serves one request at a time, each for a fixed service time S = prefill + "
              "(output - 1) x step(1): an M/D/1 queue under Poisson arrivals, whose closed forms are exact. "
              "Closed form: TTFT p95 = prefill + the 0.95 quantile of the wait (Erlang-Crommelin); latency p95 = "
              "that wait + S; mean latency = Pollaczek-Khinchine's mean wait + S; in flight = rate x mean "
              "latency (Little). The model keeps the exact quantile while the series converges (utilisation "
              "< 0.9) and an exponential tail past it. The simulated column is for reference: at 90-95 % the "
              f"queue's tail needs far more than {REQUESTS} requests to settle.", ""]
    body = []
    for r in exact:
        body.append((r["label"], f"{r['u']:.0%}", f"{r['service']:,.0f}",
                     _num(r["m_ttft"], ",.1f"), _num(r["c_ttft"], ",.1f"), _pct(_err(r["m_ttft"], r["c_ttft"])),
                     _num(r["s_ttft"], ",.1f"),
                     _num(r["m_e2e"], ".3f"), _num(r["c_e2e"], ".3f"), _pct(_err(r["m_e2e"], r["c_e2e"])),
                     _num(r["m_mean"], ".3f"), _num(r["c_mean"], ".3f"), _pct(_err(r["m_mean"], r["c_mean"])),
                     _num(r["m_fly"], ".3f"), _num(r["c_fly"], ".3f"), _num(r["s_fly"], ".3f")))
    lines.append(table(("candidate", "utilisation", "S ms", "TTFT p95 ms, model", "M/D/1", "difference", "simulated",
                        "latency p95 s, model", "M/D/1", "difference", "mean latency s, model", "M/D/1",
                        "difference", "in flight, model", "Little", "simulated"), body))
    lines += ["## Summary: |error| of the model against the simulation, median / largest", ""]
    lines.append(table(("scheduler", "rows", "TTFT p95", "latency p95", "in flight", "in system"), summary(rows)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"record {OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    os.environ["ADVISOR_AICONFIGURATOR"] = "off"  # read at each candidate's speed: before any estimate
    from advisor.knowledge import load_knowledge

    k = load_knowledge()
    rows, exact = grid(k), md1(k)
    text = report(k, rows, exact)
    print(text)
    if args.write:
        OUT.write_text("# The load model against the simulation\n\n`python -m bench.validate.load_model --write`\n\n"
                       + text)
        print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
