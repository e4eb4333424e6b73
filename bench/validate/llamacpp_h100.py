"""The plan's llama.cpp figures against the H100 measurements (bench/results/llamacpp-h100.json).

Run from the repository root (no GPU), with the project installed (`pip install -e .`):

    python -m bench.validate.llamacpp_h100            # prints the summary
    python -m bench.validate.llamacpp_h100 --write    # and records bench/results/llamacpp-h100-predicted.md

For every measured prefill, decode and batched point, the advisor's step costs for the candidate
(advisor/estimate.py estimate_for: llama.cpp's calibrated roofline, advisor/engines/roofline.py,
with knowledge/calibration.toml's llamacpp rows) predict the same figure. The measurement itself:
bench/calibrate/llamacpp/README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from advisor.answers import answers_from_dict
from advisor.estimate import estimate_for
from advisor.knowledge import load_knowledge

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ROOT / "bench" / "results" / "llamacpp-h100.json"
OUT = ROOT / "bench" / "results" / "llamacpp-h100-predicted.md"
QUANT = {"f16": "fp16"}


def costs(k, model: str, quant: str, ctx: int):
    a = answers_from_dict({"hardware": {"gpu": "H100 80GB"}, "context_tokens": max(ctx, 1), "output_tokens": 2})
    return estimate_for(k, a, model, "llamacpp", quant).speed.costs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measured", type=Path, default=MEASURED, help="the fit's results JSON (its raw rows)")
    ap.add_argument("--write", action="store_true", help=f"record {OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    k = load_knowledge()
    rows = json.loads(args.measured.read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    out, errs = [], {"prefill": [], "decode": [], "batched": []}
    for r in rows:
        test, model = r.get("test"), r.get("model")
        quant = QUANT.get(r.get("quant"), r.get("quant"))
        if model not in k.models or quant not in k.quant:
            continue
        if test == "prefill" and r.get("n_prompt"):
            n = int(r["n_prompt"])
            pred = n / costs(k, model, quant, n).prefill_ms(n) * 1e3
            kind = "prefill"
        elif test == "decode":
            d = int(r.get("depth") or 0)
            pred = 1e3 / costs(k, model, quant, d + 64).step_ms(1)
            kind = "decode"
        elif test == "batched" and r.get("N") and int(r["N"]) <= 16 and not r.get("first_use"):
            n, pp, tg = int(r["N"]), int(r["n_prompt"]), int(r.get("n_gen") or 128)
            c = costs(k, model, quant, pp + tg // 2)
            total_s = (n * c.prefill_ms(pp) + tg * c.step_ms(n)) / 1e3
            pred = n * (pp + tg) / total_s
            kind = "batched"
        else:
            continue
        meas = float(r.get("tok_s_median") or r["tok_s"])
        err = pred / meas - 1
        errs[kind].append(abs(err))
        out.append(f"| {model} | {quant} | {kind} | {r.get('n_prompt', '')} | {r.get('depth', '')} | "
                   f"{r.get('N', '')} | {meas:,.1f} | {pred:,.1f} | {err:+.1%} |")
    head = ["# llama.cpp on the H100: the advisor's prediction vs the measurement", "",
            "python -m bench.validate.llamacpp_h100 --write (no GPU needed; measurements from "
            "bench/results/llamacpp-h100.json, coefficients from knowledge/calibration.toml's llamacpp rows)", ""]
    for kind, e in errs.items():
        if e:
            e.sort()
            head.append(f"- {kind}: {len(e)} points, median |error| {e[len(e) // 2]:.1%}, max {e[-1]:.1%}, "
                        f"within 25 %: {sum(x <= 0.25 for x in e)}/{len(e)}")
    head += ["", "| model | quant | figure | prompt | depth | N | measured tok/s | predicted tok/s | error |",
             "|---|---|---|---|---|---|---|---|---|"]
    text = "\n".join(head + out) + "\n"
    if args.write:
        OUT.write_text(text)
        print(f"wrote {OUT.relative_to(ROOT)}")
    print("\n".join(head[:8]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
