"""Benchmarks for the load simulation (advisor/load/simulation.py): speed of simulate / max_rate /
best_batch on typical engines, and its accuracy against the closed forms (run on demand, not in
the tests); and the speed of the load model itself (advisor/load/schedulers.py), which every
candidate of a recommend() goes through.

Run from the repository root, with the project installed (`pip install -e .`):

    python -m bench.bench_load            # prints the tables
    python -m bench.bench_load --write    # and records bench/results/load.md

The load model against the simulation, engine by engine: python -m bench.validate.load_model.

The engines are illustrative, of the size the advisor derives from its roofline: Llama-3.1-8B
bf16 on an H100 through vLLM (weights 16 GB at ~2.7 TB/s effective: 6 ms a step; 128 KiB of KV
per token at ~1.2K context: 0.056 ms a sequence; prefill ~0.04 ms a token), the same model at
q4_k_m through Ollama on an RTX 4090 (9 ms a token, Amdahl s = 0.54, 4 slots), and a plain
generate() loop. Exits non-zero when a timing misses its target.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from advisor.load.closed_forms import md1_mean_wait_ms, md1_wait_quantile_ms, saturation_rps, service_ms
from advisor.load.demand import Demand
from advisor.load.replica import ReplicaCosts
from advisor.load.schedulers import ContinuousBatching, FixedSlots, OneAtATime, amdahl_step
from advisor.load.simulation import Workload, best_batch, max_rate, simulate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "load.md"

VLLM = ReplicaCosts(256, (10.0, 0.04, 0.0), (6.0, 0.056), chunked_prefill=True, max_batched_tokens=2048)
OLLAMA = ReplicaCosts(4, (30.0, 0.25, 0.0), amdahl_step(9.0, 0.54))
GENERATE = ReplicaCosts(1, (30.0, 0.05, 0.0), (25.0, 0.0))
PROMPT, OUTPUT = 1024, 256


@dataclass(frozen=True)
class LineCosts:
    """The StepCosts protocol (advisor/load/costs.py) over straight lines: the load model's input."""

    floor_ms: float
    ms_per_token: float
    fixed_ms: float
    ms_per_seq: float

    def prefill_ms(self, tokens: int) -> float:
        return self.floor_ms + self.ms_per_token * tokens

    def step_ms(self, n: int) -> float:
        return self.fixed_ms + self.ms_per_seq * n

    def scaled(self, prefill: float = 1.0, decode: float = 1.0) -> "LineCosts":
        return LineCosts(self.floor_ms * prefill, self.ms_per_token * prefill, self.fixed_ms * decode,
                         self.ms_per_seq * decode)


def median_ms(fn, runs: int) -> float:
    fn()  # warm (first-call caches)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def at(costs: ReplicaCosts, frac: float, prompt: int = PROMPT, **kw) -> Workload:
    return Workload(prompt, OUTPUT, rate_rps=frac * saturation_rps(costs, prompt, OUTPUT), requests=2000, **kw)


def timings() -> tuple[list[tuple[str, str, str]], bool]:
    slo = dict(slo_ttft_p95_ms=1000.0, slo_e2e_p95_s=10.0)
    cases = [
        ("simulate: vLLM 8B/H100, 2000 Poisson requests at 50 % of saturation, exp. output",
         lambda: simulate(VLLM, at(VLLM, 0.5, output_dist="exponential")), 9, 50.0),
        ("simulate: vLLM 8B/H100, 2000 Poisson requests at 90 % of saturation",
         lambda: simulate(VLLM, at(VLLM, 0.9)), 9, 50.0),
        ("simulate: vLLM 8B/H100, 2000 RAG requests (16K prompts, 8 chunks each) at 50 %",
         lambda: simulate(VLLM, at(VLLM, 0.5, prompt=16384)), 5, 200.0),
        ("simulate: vLLM 8B/H100, burst of 64",
         lambda: simulate(VLLM, Workload(PROMPT, OUTPUT, burst=64)), 21, 50.0),
        ("simulate: Ollama 4 slots, 2000 Poisson requests at 70 %",
         lambda: simulate(OLLAMA, at(OLLAMA, 0.7)), 9, 50.0),
        ("simulate: generate() loop, 2000 Poisson requests at 60 %",
         lambda: simulate(GENERATE, at(GENERATE, 0.6)), 9, 50.0),
        ("max_rate: vLLM 8B/H100 (TTFT p95 1 s, e2e p95 10 s)",
         lambda: max_rate(VLLM, PROMPT, OUTPUT, **slo), 3, 500.0),
        ("max_rate: Ollama 4 slots (same SLO)", lambda: max_rate(OLLAMA, PROMPT, OUTPUT, **slo), 3, 500.0),
        ("max_rate: generate() loop (same SLO)", lambda: max_rate(GENERATE, PROMPT, OUTPUT, **slo), 3, 500.0),
        ("best_batch: vLLM 8B/H100, memory cap 256 sequences",
         lambda: best_batch(lambda n: ReplicaCosts(n, (10.0, 0.04, 0.0), (6.0, 0.056),
                                                   chunked_prefill=True, max_batched_tokens=max(2048, n + 1)),
                            PROMPT, OUTPUT, 256), 9, 50.0),
    ]
    # the load model's closed forms: what each of a recommend()'s ~500 candidates pays
    vllm = LineCosts(10.0, 0.04, 6.0, 0.056)
    rate = Demand.of(prompt_tokens=PROMPT, output_tokens=OUTPUT, rate_rps=7.0, ttft_slo_ms=1000.0, e2e_slo_s=10.0)
    users = Demand.of(prompt_tokens=PROMPT, output_tokens=OUTPUT, users=64)
    cb, slots, one = ContinuousBatching(max_batched_tokens=2048), FixedSlots(amdahl_s=0.54), OneAtATime()
    ollama = LineCosts(30.0, 0.25, 9.0, 0.0)
    cases += [
        ("load model: continuous batching, 7 requests/s (one candidate's figures)",
         lambda: cb.figures(vllm, rate, 256), 201, 1.0),
        ("load model: continuous batching, 64 users in a closed loop", lambda: cb.figures(vllm, users, 256), 201, 1.0),
        ("load model: fixed slots (4), 64 users in a closed loop", lambda: slots.figures(ollama, users, 4), 201, 1.0),
        ("load model: one at a time, 64 users in a closed loop",
         lambda: one.figures(LineCosts(30.0, 0.05, 25.0, 0.0), users, 1), 201, 1.0),
        ("load model: max_rate_rps, continuous batching (bisection over the closed forms)",
         lambda: cb.max_rate_rps(vllm, rate, 256), 21, 20.0),
    ]
    rows, ok = [], True
    for name, fn, runs, target in cases:
        ms = median_ms(fn, runs)
        ok &= ms < target
        rows.append((f"{name} (median of {runs})", f"{ms:.1f} ms" if ms >= 1 else f"{ms:.3f} ms", f"< {target:g} ms"))
    return rows, ok


def answers() -> list[tuple[str, str, str]]:
    """What the model answers for those engines (context for the timings, not a claim)."""
    slo = dict(slo_ttft_p95_ms=1000.0, slo_e2e_p95_s=10.0)
    rows = []
    for name, c in (("vLLM 8B/H100", VLLM), ("Ollama 4 slots", OLLAMA), ("generate() loop", GENERATE)):
        lam = max_rate(c, PROMPT, OUTPUT, **slo)
        r = simulate(c, Workload(PROMPT, OUTPUT, rate_rps=lam, requests=2000)) if lam > 0 else None
        b = simulate(c, Workload(PROMPT, OUTPUT, burst=64))
        rows.append((name, f"{saturation_rps(c, PROMPT, OUTPUT):.2f}", f"{lam:.2f}",
                     f"{r.ttft_p95_ms:.0f} / {r.e2e_p95_s:.1f} / {r.mean_in_flight:.1f}" if r else "-",
                     f"{b.ttft_p50_ms:.0f} / {b.ttft_p95_ms:.0f} / {b.decode_tok_s_per_user:.1f}"))
    return rows


def accuracy() -> list[tuple[str, str, str, str]]:
    seq = ReplicaCosts(1, (20.0, 0.1, 0.0), (10.0, 0.0))
    p, o = 500, 100
    s = service_ms(seq, p, o)
    rows = []
    for rho in (0.3, 0.6, 0.8):
        lam = rho / s * 1e3
        runs = [simulate(seq, Workload(p, o, rate_rps=lam, requests=20000, seed=k)) for k in range(3)]
        mean = statistics.mean(r.wait_mean_ms for r in runs)
        p95 = statistics.mean(r.wait_p95_ms for r in runs)
        cm, cp = md1_mean_wait_ms(lam, s), md1_wait_quantile_ms(0.95, lam, s)
        rows.append((f"M/D/1 mean wait, rho = {rho} (3 seeds x 20000)", f"{mean:.0f} ms", f"{cm:.0f} ms",
                     f"{mean / cm - 1:+.1%}"))
        rows.append((f"M/D/1 p95 wait, rho = {rho} (3 seeds x 20000)", f"{p95:.0f} ms", f"{cp:.0f} ms",
                     f"{p95 / cp - 1:+.1%}"))
    pf = seq.prefill(p)
    for mult in (1, 2, 5, 10, 20):
        slo = pf + mult * s
        lo, hi = 1e-9, 1e3 / s
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if md1_wait_quantile_ms(0.95, mid, s) + pf <= slo else (lo, mid)
        got = max_rate(seq, p, o, slo_ttft_p95_ms=slo)
        rows.append((f"max_rate, one-at-a-time server, TTFT p95 <= prefill + {mult} S (2000 req.)",
                     f"{got * s / 1e3:.3f} rho", f"{lo * s / 1e3:.3f} rho", f"{got / lo - 1:+.1%}"))
    for name, c, lam in (("vLLM 8B/H100", VLLM, 0.7 * saturation_rps(VLLM, PROMPT, OUTPUT)),
                         ("Ollama 4 slots", OLLAMA, 0.8 * saturation_rps(OLLAMA, PROMPT, OUTPUT))):
        r = simulate(c, Workload(PROMPT, OUTPUT, rate_rps=lam, requests=5000, output_dist="exponential"))
        little = lam * (r.e2e_mean_s - r.wait_mean_ms / 1e3)
        rows.append((f"Little's law, {name}: time-averaged in flight vs lambda x time on engine",
                     f"{r.mean_in_flight:.2f}", f"{little:.2f}", f"{r.mean_in_flight / little - 1:+.1%}"))
    return rows


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"record {OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    t_rows, ok = timings()
    text = (f"Machine: {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}), "
            f"{time.strftime('%Y-%m-%d')}\n\n## Timings\n\n"
            + table(("what", "measured", "target"), t_rows)
            + "\n## Accuracy against closed forms\n\n"
            + table(("what", "simulation", "closed form", "difference"), accuracy())
            + f"\n## What it answers (prompt {PROMPT}, output {OUTPUT}; SLO TTFT p95 1 s, e2e p95 10 s)\n\n"
            + table(("engine", "saturation (req/s)", "max_rate (req/s)",
                     "at max_rate: TTFT p95 ms / e2e p95 s / in flight",
                     "burst of 64: TTFT p50 / p95 ms / per-user tok/s"), answers()))
    print(text)
    if args.write:
        OUT.write_text("# Load model timings and accuracy\n\n`python -m bench.bench_load --write`\n\n" + text)
        print(f"written to {OUT.relative_to(ROOT)}")
    if not ok:
        print("a timing missed its target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
