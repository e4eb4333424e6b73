#!/usr/bin/env python3
"""Per-tensor quantization layouts as llama-quantize chooses them (no GPU, no real data).

For each model x quantization: write a sparse F16 GGUF (make_gguf.py --sparse: header only,
the data is a hole), run `llama-quantize --dry-run` on it, and keep the type it picks for
every tensor in bench/calibrate/llamacpp/layouts/<model>-<quant>.json. make_gguf.py --layout then
writes a quantized file of exactly those tensor types with random blocks.

  PYTHONPATH=.llama/gguf-py python3 bench/calibrate/llamacpp/make_layouts.py --quantize /path/llama-quantize
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ["qwen2.5-1.5b", "llama3.1-8b", "llama3.2-1b", "qwen2.5-7b"]
QUANTS = {"q8_0": "Q8_0", "q4_k_m": "Q4_K_M", "q6_k": "Q6_K", "q5_k_m": "Q5_K_M", "q3_k_s": "Q3_K_S"}
LINE = re.compile(r"\]\s+(\S+)\s+-\s+\[[^\]]*\],\s+type =\s+(\S+),\s+size =\s+[\d.]+ MiB(?: ->\s+[\d.]+ MiB \((\S+)\))?")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantize", required=True)
    ap.add_argument("--tmp", default="/tmp/gguf-sparse")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--quants", default=",".join(QUANTS))
    a = ap.parse_args()
    Path(a.tmp).mkdir(parents=True, exist_ok=True)
    (HERE / "layouts").mkdir(exist_ok=True)
    summary = {}
    for m in a.models.split(","):
        f16 = Path(a.tmp) / f"{m}-f16.gguf"
        if not f16.exists():
            subprocess.run([sys.executable, str(HERE / "make_gguf.py"), "--model", m, "--type", "f16",
                            "--out", str(f16), "--sparse"], check=True)
        for q in a.quants.split(","):
            p = subprocess.run([a.quantize, "--dry-run", str(f16), QUANTS[q]], capture_output=True, text=True)
            text = p.stdout + p.stderr
            if p.returncode != 0:
                print(text[-3000:])
                raise SystemExit(f"dry run failed for {m} {q}")
            layout = {}
            for mt in LINE.finditer(text):
                name, cur, new = mt.group(1), mt.group(2), mt.group(3)
                layout[name] = (new or cur).upper()
            sz = re.findall(r"quant size\s*=\s*([\d.]+) MiB", text)
            (HERE / "layouts" / f"{m}-{q}.json").write_text(json.dumps(layout, indent=0, sort_keys=True) + "\n")
            counts: dict[str, int] = {}
            for t in layout.values():
                counts[t] = counts.get(t, 0) + 1
            summary[f"{m}-{q}"] = {"tensors": len(layout), "types": counts,
                                   "quant_size_mib": float(sz[-1]) if sz else None}
            print(m, q, summary[f"{m}-{q}"], flush=True)
    (HERE / "layouts" / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
