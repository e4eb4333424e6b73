"""Scaling and sizing: Amdahl per-agent efficiency on Ollama, vLLM batching, replicas, tensor parallel."""

from __future__ import annotations

from advisor.answers import LOAD_PRECEDENCE
from advisor.rules.base import Rule, cand, plan

TP_SOURCE = "DESIGN (tensor parallel when weights don't fit one GPU)"
# advisor/sizing.py decides the replicas from the load model; the rules judge and explain its decision
REPLICAS_SOURCE = "advisor/sizing.py (replicas from the load model, for the load the user described, and the GPUs given)"
BATCH_SOURCE = "offline batch: the throughput-optimal batch within the KV pool (advisor/load/schedulers.py)"
PRECEDENCE_SOURCE = f"advisor/load/demand.py Demand.of: {LOAD_PRECEDENCE}"


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
    pct = k.row("load.in_flight_percentile")
    return [
        Rule("scaling.single-gpu", TP_SOURCE, "note",
             lambda m: plan(m) & (m.tensor_parallel == 1),
             lambda f: f"weights ({f.weights_gb:.1f} GB) fit one GPU: no tensor parallel",
             sets=("tensor_parallel",)),
        Rule("scaling.tensor-parallel", TP_SOURCE, "note",
             lambda m: plan(m) & (m.tensor_parallel > 1) & (m.tp_for_kv == 0),
             lambda f: f"weights split over TP={f.tensor_parallel} GPUs ({f.weights_gb:.1f} GB each)",
             sets=("tensor_parallel",)),
        Rule("scaling.tensor-parallel-for-kv", TP_SOURCE + "; the KV the load keeps in flight counts too", "note",
             lambda m: plan(m) & (m.tp_for_kv == 1),
             lambda f: (f"TP={f.tensor_parallel}, more than the weights alone need: the KV of {f.seqs} "
                        f"sequences of {f.seq_tokens:,} tokens does not fit beside the weights on fewer GPUs "
                        f"({f.weights_gb:.1f} GB of weights per GPU now)"),
             sets=("tensor_parallel",)),
        Rule("scaling.single-replica", REPLICAS_SOURCE, "note",
             lambda m: plan(m) & (m.replicas_needed <= 1) & (m.replicas_used <= 1),
             lambda f: f"one replica: {f.replicas_why}",
             sets=("replicas",)),
        Rule("scaling.replicas", REPLICAS_SOURCE, "note",
             lambda m: plan(m) & ((m.replicas_needed > 1) | (m.replicas_used > 1)),
             lambda f: f"{f.replicas_used} replica(s) of {f.replicas_needed} needed: {f.replicas_why}",
             sets=("replicas",)),
        # the sequences each replica runs at once: the user's head count only where it is the
        # in-flight count (agents back to back); else the in-flight count's high percentile
        Rule("scaling.concurrency", "answers: concurrency", "note",
             lambda m: plan(m) & (m.mode == "concurrent") & (m.think_time_s == 0),
             lambda f: (f"{f.seqs} concurrent sequence(s) on {f.backend}"
                        + (f" per replica ({f.users} agents over {f.replicas_used})" if f.replicas_used > 1 else "")
                        + (f"; Amdahl per-agent efficiency {f.slot_efficiency:.0%} (TR129)" if f.slots and f.seqs > 1
                           else "")),
             sets=("concurrency",)),
        Rule("scaling.in-flight", pct.source, "note",
             lambda m: plan(m) & (((m.mode == "concurrent") & (m.think_time_s > 0)) | (m.mode == "rate")),
             lambda f: (f"{f.seqs} sequence(s) at once on {f.backend}"
                        + (f" per replica (of {f.replicas_used})" if f.replicas_used > 1 else "")
                        + f", the in-flight count's p{pct.value * 100:g}, not a head count: {f.in_flight_how}"
                        + (f"; capped at the {f.pool_seqs} the KV pool holds, the rest wait for a slot"
                           if f.in_flight_high > f.seqs else "")),
             sets=("concurrency",)),
        Rule("scaling.batch-seqs", BATCH_SOURCE, "note",
             lambda m: plan(m) & (m.mode == "batch"),
             lambda f: f"{f.seqs} sequence(s) at once on {f.backend}: the batch that completes the most requests/s",
             sets=("concurrency",)),
        Rule("scaling.pool-holds-fewer", "SERVING (vLLM: a paged KV pool shared by all running sequences; "
                                         "requests beyond it wait)", "warn",
             lambda m: plan(m) & (m.mode != "batch") & (m.in_flight_high > m.seqs),
             lambda f: (f"the KV pool holds {f.seqs} sequences of {f.seq_tokens:,} tokens, fewer than the "
                        f"{f.in_flight_high} the load keeps in flight: the rest wait for a slot (TTFT and latency "
                        f"include the wait); more GPUs, a smaller precision or shorter contexts hold them all")),
        Rule("scaling.load-precedence", PRECEDENCE_SOURCE, "warn",
             lambda m: plan(m) & (m.load_ignored != ""),
             lambda f: f.load_ignored),
        # Appendix J.6 measured vLLM up to 8 agents back to back per GPU: past it, the figures are the
        # load model's alone (people who pause and arrival rates were never what it measured)
        Rule("scaling.vllm-agents", vmax.source, "warn",
             lambda m: plan(m) & (m.continuous == 1) & (m.mode == "concurrent") & (m.think_time_s == 0)
             & (m.seqs > vmax.value),
             lambda f: (f"{-(-f.users // max(f.replicas_used, 1))} agents back to back per replica is past the "
                        f"{vmax.value:g} per GPU Appendix J.6 "
                        f"measured for vLLM: the latency figures beyond it are the load model's, not measured")),
    ]
