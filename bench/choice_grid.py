"""The plan's choice over the cases issue 20 names: model, engine, precision, sequences, replicas, TP,
and the figures, one line each (results: bench/results/choice-grid.md). Run from the repository root
with the project installed: python bench/choice_grid.py [filter ...]"""

from __future__ import annotations

import sys
import time

from advisor.answers import answers_from_dict
from advisor.knowledge import load_knowledge
from advisor.recommend import recommend

CASES = [
    ("1 chat user, H100 80GB", {"workload": "chat", "hardware": {"gpu": "H100 80GB"}}),
    ("1 chat user, A100 80GB", {"workload": "chat", "hardware": {"gpu": "A100 80GB"}}),
    ("1 chat user, L40S", {"workload": "chat", "hardware": {"gpu": "L40S"}}),
    ("1 chat user, RTX 4090", {"workload": "chat", "hardware": {"gpu": "RTX 4090"}}),
    ("64 chat agents, RTX 4080", {"workload": "chat", "concurrency": 64, "hardware": {"gpu": "RTX 4080"}}),
    ("8 RAG agents, 12 GB laptop", {"workload": "rag", "concurrency": 8, "hardware": {"gpu": "RTX 4080 Laptop"}}),
    ("8 RAG agents, 8K, RTX 4090", {"workload": "rag", "concurrency": 8, "context_tokens": 8192,
                                    "hardware": {"gpu": "RTX 4090"}}),
    ("100 people, 30 s think, H100", {"workload": "chat", "concurrency": 100, "think_time_s": 30,
                                      "hardware": {"gpu": "H100 80GB"}}),
    ("5 req/s, L40S", {"workload": "chat", "arrival_rate_rps": 5, "hardware": {"gpu": "L40S"}}),
    ("20 req/s, H100", {"workload": "chat", "arrival_rate_rps": 20, "hardware": {"gpu": "H100 80GB"}}),
    ("64 chat agents, 2 x H100", {"workload": "chat", "concurrency": 64, "hardware": {"gpu": "H100 80GB", "gpus": 2}}),
    ("llama3.1-70b, 64 agents, 2 x H100", {"workload": "chat", "concurrency": 64, "model": {"name": "llama3.1-70b"},
                                           "hardware": {"gpu": "H100 80GB", "gpus": 2}}),
    ("100,000 summaries in 8 h, A100", {"workload": "summarization", "requests_per_day": 100_000, "deadline_hours": 8,
                                        "hardware": {"gpu": "A100 80GB"}}),
]


def main(filters: list[str]) -> None:
    k = load_knowledge(None)
    for name, answers in CASES:
        if filters and not any(f in name for f in filters):
            continue
        t = time.perf_counter()
        rec = recommend(answers_from_dict(answers), knowledge=k)
        p = rec.recommendation
        if p is None:
            print(f"{name:36s} no plan: {rec.no_plan_because}")
            continue
        pr = p.predicted
        q = k.model(p.model).mmlu - k.quant[p.quantization].mmlu_delta_pp if k.model(p.model) else float("nan")
        print(f"{name:36s} {p.model} {p.backend} {p.quantization} (quality {q:.1f}) N={p.concurrency} "
              f"replicas={p.replicas} tp={p.tensor_parallel} vram={pr.vram_gb} GB ttft={pr.ttft_ms} ms "
              f"p95={pr.p95_latency_s} s  [{time.perf_counter() - t:.1f} s]")
        for w in rec.warnings:
            if w.startswith("a better model"):
                print(f"{'':36s} ! {w.split(' [')[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
