"""Does the skip rule keep eager llama3.2-1b at 16K (69 GB predicted, OOM on an 80 GB H100) from running?

On the GPU machine, from the repository root with the project installed
(`python3 -m pip install --no-deps --no-build-isolation -e .`):

    python -m bench.validate.probe_oom_check > bench/results/probe-oom-check-h100.txt

Prints the probe's curve (each context ok, oom or skipped) and its warnings as JSON.
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama3.2-1b")
    ap.add_argument("--attention", default="eager")
    ap.add_argument("--contexts", default="2048,8192,16384", help="comma-separated prompt lengths")
    a = ap.parse_args(argv)
    from advisor.knowledge import load_knowledge
    from advisor.probes.transformers_probe import probe_transformers

    k = load_knowledge(None)
    t = time.perf_counter()
    r = probe_transformers(a.model, knowledge=k, attention=a.attention,
                           contexts=[int(x) for x in a.contexts.split(",")], repetitions=1)
    print(json.dumps({"curve": [p.model_dump() for p in r.curve], "warnings": r.warnings,
                      "s": time.perf_counter() - t}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
