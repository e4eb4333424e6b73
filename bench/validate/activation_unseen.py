"""The no-probe memory model, with the fitted activation constant, against sweeps it was not fitted to.

Run from the repository root, with the project installed (`pip install -e .`):

    python -m bench.validate.activation_unseen            # prints the table
    python -m bench.validate.activation_unseen --write    # and records bench/results/<sweeps>-activation-check.md
    python -m bench.validate.activation_unseen --sweeps bench/results/probe-gpu-h100-large.json

runtime.activation_bytes_per_token was fitted to five 0.5-8B models (python -m
bench.calibrate.activation); this predicts the peak of the catalog's larger models (14B, 24B,
32B, swept on the H100 by python -m bench.validate.probe_gpu) as a plan without a probe does:
catalog weights (params x 2 B) + KV x n + A x 2 x intermediate x n.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.calibrate.activation import line

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = ROOT / "bench" / "results" / "probe-gpu-h100-large.json"
MIB = 2**20


def _shown(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def table(k, src: Path) -> str:
    a = k.value("runtime.activation_bytes_per_token")
    data = json.loads(src.read_text())
    lines = ["# The memory model without a probe, on models the activation fit never saw", "",
             f"Source: `{_shown(src)}` ({data['gpus'][0]['name']}, torch {data['versions']['torch']}, "
             f"transformers {data['versions']['transformers']}; fp16, SDPA; peak = torch.cuda.max_memory_allocated). "
             f"`python -m bench.validate.activation_unseen --sweeps {_shown(src)} --write`.", "",
             f"Predicted peak = catalog weights (params x 2 B) + KV x n + A x 2 x intermediate x n, A = {a:g} "
             "(runtime.activation_bytes_per_token, fitted to five models of 0.5-8B).", "",
             "| model | params | context | measured MiB | predicted MiB | error | measured slope / (2 x intermediate) |",
             "|---|---|---|---|---|---|---|"]
    worst = 0.0
    for run in data["runs"]:
        sweep = run.get("sweep") or {}
        if run.get("attention") != "sdpa" or not sweep:
            continue
        m = k.model(run["model"])
        kv, base = sweep["kv_bytes_per_token"], sweep["base_vram_mb"]
        pts = [(p["context_tokens"], p["peak_mb"]) for p in sweep["curve"] if p["status"] == "ok" and p["peak_mb"]]
        _, slope = line([n for n, _ in pts], [((pk - base) * MIB - kv * n) for n, pk in pts])
        for n, peak in pts:
            pred = m.params * 2 / MIB + (kv + a * 2 * m.intermediate_size) * n / MIB
            err = pred / peak - 1
            if n >= 8192:
                worst = max(worst, abs(err))
            if n in (2048, 8192, 16384, 32768):
                lines.append(f"| {m.id} | {m.params_b:g} B | {n:,} | {peak:,.0f} | {pred:,.0f} | {err:+.1%} | "
                             f"{slope / (2 * m.intermediate_size):.2f} |")
    lines += ["", f"Largest |error| at 8K-32K: {worst:.1%}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=Path, default=SWEEPS, help="probe_gpu.py's raw results of models the fit never saw")
    ap.add_argument("--write", action="store_true", help="record bench/results/<sweeps>-activation-check.md")
    a = ap.parse_args(argv)
    from advisor.knowledge import load_knowledge

    text = table(load_knowledge(), a.sweeps)
    print(text, end="")
    if a.write:
        out = ROOT / "bench" / "results" / (a.sweeps.stem + "-activation-check.md")
        out.write_text(text)
        print(f"wrote {_shown(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
