"""Benchmarks for the CLI spine and the rules engine (run on demand, not in the tests).

    python bench/bench_cli.py            # prints a table; --write records bench/results/cli.md

Measures: `advisor --help` and `advisor recommend` wall time (median of several
process launches), one in-process recommend() (median), and whether importing
advisor.cli pulls in torch or transformers (python -X importtime).
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 9
ROOT = Path(__file__).resolve().parents[1]


def advisor_cmd() -> list[str]:
    exe = shutil.which("advisor")
    return [exe] if exe else [sys.executable, "-m", "advisor"]


def wall(argv: list[str], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def in_process(runs: int = 31) -> float:
    sys.path.insert(0, str(ROOT))
    from advisor.answers import answers_from_dict
    from advisor.engine import recommend
    from advisor.knowledge import load_knowledge

    k = load_knowledge(None)
    a = answers_from_dict({"workload": "rag", "concurrency": 8, "context_tokens": 8192,
                           "hardware": {"gpu": "RTX 4080 Laptop"}})
    recommend(a, knowledge=k)  # rulesets are built once per process
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        recommend(a, knowledge=k)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def one_consultation(runs: int = 31) -> tuple[float, int]:
    """The largest single durable-rules consultation of that recommend(): every candidate fact
    through the rejection rules (median seconds, number of facts)."""
    sys.path.insert(0, str(ROOT))
    from advisor.answers import answers_from_dict
    from advisor.engine import _candidates, _fact
    from advisor.hardware import resolve_hardware
    from advisor.knowledge import load_knowledge
    from advisor.models import resolve_models
    from advisor.rules.engine import consult

    k = load_knowledge(None)
    a = answers_from_dict({"workload": "rag", "concurrency": 8, "context_tokens": 8192,
                           "hardware": {"gpu": "RTX 4080 Laptop"}})
    hw = resolve_hardware(a, k)
    cands = _candidates(k, a, hw, resolve_models(a, k), [])
    facts = [_fact(k, a, hw, i, e) for i, e in enumerate(cands)]
    consult(k, "feasible", facts)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        consult(k, "feasible", facts)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(facts)


def heavy_imports() -> list[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", "import advisor.cli"],
                       capture_output=True, text=True, cwd=ROOT)
    mods = {line.split("|")[-1].strip().split(".")[0] for line in p.stderr.splitlines() if "|" in line}
    return sorted(mods & {"torch", "transformers", "textual", "durable", "pydantic"})


def _aic_on() -> bool:
    from advisor import aiconfigurator

    return aiconfigurator.available()


def main() -> None:
    cmd = advisor_cmd()
    consult_s, consult_n = one_consultation()
    rows = [
        ("advisor --help (median of %d launches)" % RUNS, f"{wall(cmd + ['--help']) * 1e3:.0f} ms", "< 500 ms"),
        ("advisor recommend --format json (median of %d)" % RUNS,
         f"{wall(cmd + ['recommend', '--gpu', 'RTX 4090', '--workload', 'rag', '--concurrency', '8', '--format', 'json']) * 1e3:.0f} ms",
         "< 1000 ms"),
        ("advisor recommend, 64 users on an H100 (vLLM candidates from aiconfigurator's tables: "
         + ("on" if _aic_on() else "extra not installed or off") + f", median of {RUNS})",
         f"{wall(cmd + ['recommend', '--gpu', 'H100 80GB', '--workload', 'chat', '--concurrency', '64', '--format', 'json']) * 1e3:.0f} ms",
         "< 3000 ms"),
        ("recommend() in process, no model named (median of 31)", f"{in_process() * 1e3:.1f} ms", "< 50 ms"),
        ("one consultation: %d candidate facts through the rejection rules (median of 31)" % consult_n,
         f"{consult_s * 1e3:.1f} ms", "< 50 ms"),
        ("heavy modules imported by `import advisor.cli`", ", ".join(heavy_imports()) or "none", "no torch/transformers"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'what'.ljust(width)} | measured | target |", f"|{'-' * (width + 2)}|---|---|"]
    lines += [f"| {a.ljust(width)} | {b} | {c} |" for a, b, c in rows]
    header = (f"Machine: {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}), "
              f"{time.strftime('%Y-%m-%d')}\n\n")
    text = header + "\n".join(lines) + "\n"
    print(text)
    if "--write" in sys.argv:
        out = ROOT / "bench" / "results" / "cli.md"
        out.write_text("# CLI and rules-engine timings\n\n`python bench/bench_cli.py --write`\n\n" + text)
        print(f"written to {out}")


if __name__ == "__main__":
    main()
