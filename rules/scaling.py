"""Scaling and sizing: Amdahl per-agent efficiency on Ollama, vLLM batching, replicas, tensor parallel."""

from __future__ import annotations

from advisor.rules.base import Rule, cand, plan

TP_SOURCE = "DESIGN (tensor parallel when weights don't fit one GPU)"
# advisor/sizing.py decides the replicas from the load model; the rules judge and explain its decision
REPLICAS_SOURCE = ("answers: arrival_rate_rps or requests_per_day / deadline_hours; advisor/sizing.py "
                   "(replicas from the load model)")


def candidates_rules(k) -> list[Rule]:
    oll = k.row("ollama_max_agents")
    return [
        Rule("scaling.ollama-agents", oll.source, "penalty",
             lambda m: cand(m) & (m.slots == 1) & (m.seqs > oll.value),
             lambda f: (f"Ollama serves {oll.value:g} agents per GPU well; at N={f.seqs} each gets "
                        f"{f.slot_efficiency:.0%} of a single stream (Amdahl, TR129)"),
             sets=("backend", "concurrency")),
        Rule("scaling.tensor-parallel-too-few-gpus", TP_SOURCE, "reject",
             lambda m: cand(m) & (m.base_gb < m.usable_gb) & (m.tensor_parallel > m.gpus),
             lambda f: f"the weights need tensor parallel {f.tensor_parallel} but only {f.gpus} GPU(s) are available",
             sets=("tensor_parallel",)),
        Rule("scaling.replicas-short", REPLICAS_SOURCE, "gate",
             lambda m: cand(m) & (m.replicas_needed > m.replicas_possible),
             lambda f: (f"the load needs {f.replicas_needed} replica(s); {f.gpus} GPU(s) at TP={f.tensor_parallel} "
                        f"hold {f.replicas_possible} ({f.replicas_why})"),
             sets=("replicas",), kind="performance"),
    ]


def plan_rules(k) -> list[Rule]:
    vmax = k.row("vllm_max_agents")
    return [
        Rule("scaling.single-gpu", TP_SOURCE, "note",
             lambda m: plan(m) & (m.tensor_parallel == 1),
             lambda f: f"weights ({f.weights_gb:.1f} GB) fit one GPU: no tensor parallel",
             sets=("tensor_parallel",)),
        Rule("scaling.tensor-parallel", TP_SOURCE, "note",
             lambda m: plan(m) & (m.tensor_parallel > 1),
             lambda f: f"weights split over TP={f.tensor_parallel} GPUs ({f.weights_gb:.1f} GB each)",
             sets=("tensor_parallel",)),
        Rule("scaling.single-replica", REPLICAS_SOURCE, "note",
             lambda m: plan(m) & (m.replicas_needed <= 1),
             lambda f: f"one replica: {f.replicas_why}",
             sets=("replicas",)),
        Rule("scaling.replicas", REPLICAS_SOURCE, "note",
             lambda m: plan(m) & (m.replicas_needed > 1),
             lambda f: f"{f.replicas_needed} replicas: {f.replicas_why}",
             sets=("replicas",)),
        Rule("scaling.concurrency", "answers: concurrency", "note",
             lambda m: plan(m),
             lambda f: (f"{f.seqs} concurrent sequence(s) on {f.backend}"
                        + (f"; Amdahl per-agent efficiency {f.slot_efficiency:.0%} (TR129)" if f.slots and f.seqs > 1 else "")),
             sets=("concurrency",)),
        Rule("scaling.vllm-agents", vmax.source, "warn",
             lambda m: plan(m) & (m.continuous == 1) & (m.seqs > vmax.value) & (m.mode != "batch"),
             lambda f: f"N={f.seqs} is past the {vmax.value:g} agents per GPU measured for vLLM; latency grows"),
    ]
