"""Context budget: VRAM minus background use minus weights, over the per-token cost, with the margin."""

from __future__ import annotations

from advisor.rules.base import Rule, cand, plan


def candidates_rules(k) -> list[Rule]:
    margin = k.row("context_safety_margin")
    warn = k.row("vram_alert_warning")
    stop = k.row("vram_alert_hard_stop")
    return [
        Rule("context.weights-do-not-fit", "Appendix P.1 (weights = params x bytes per parameter)", "reject",
             lambda m: cand(m) & (m.base_gb >= m.usable_gb),
             lambda f: (f"weights need {f.weights_gb:.1f} GB per GPU at TP={f.tensor_parallel}, "
                        f"{f.usable_gb:.1f} GB usable on {f.gpus} GPU(s)"),
             sets=("model", "tensor_parallel")),
        Rule("context.model-max-context", "model config.json (max_position_embeddings)", "reject",
             lambda m: cand(m) & (m.seq_tokens > m.max_context),
             lambda f: f"{f.model} was trained for {f.max_context:,} tokens; {f.seq_tokens:,} asked",
             sets=("model", "max_context_tokens")),
        # A paged pool (vLLM, TGI) holds N long sequences or preempts some: tail latency, not an
        # out-of-memory error; only a request longer than the whole pool is refused.
        Rule("context.pool-preempts", "SERVING (vLLM preempts and recomputes when the KV pool runs out)", "gate",
             lambda m: cand(m) & (m.pages_kv == 1) & (m.base_gb < m.usable_gb) & (m.seq_tokens > m.budget_tokens)
             & (m.seq_tokens <= m.budget_one),
             lambda f: (f"{f.seqs} sequences of {f.seq_tokens:,} tokens need more KV than the pool holds "
                        f"({f.budget_tokens:,} tokens "
                        f"each with the margin): {f.backend} preempts and recomputes, and tail latency jumps"),
             sets=("max_context_tokens", "concurrency"), kind="performance"),
        Rule("context.longer-than-pool", margin.source, "reject",
             lambda m: cand(m) & (m.pages_kv == 1) & (m.base_gb < m.usable_gb) & (m.seq_tokens > m.budget_one),
             lambda f: (f"one request of {f.seq_tokens:,} tokens needs more KV than the whole pool holds "
                        f"({f.budget_one:,} tokens with the margin)"),
             sets=("max_context_tokens",)),
        Rule("context.over-budget-linux", margin.source, "reject",
             lambda m: cand(m) & (m.pages_kv == 0) & (m.base_gb < m.usable_gb) & (m.seq_tokens > m.budget_tokens)
             & (m.os == "linux"),
             lambda f: (f"context {f.seq_tokens:,} x {f.seqs} sequences exceeds the safe budget of "
                        f"{f.budget_tokens:,} tokens each ({margin.value:g} margin); on Linux that is an out-of-memory error"),
             sets=("max_context_tokens",)),
        Rule("context.over-budget-windows", margin.source, "reject",
             lambda m: cand(m) & (m.pages_kv == 0) & (m.base_gb < m.usable_gb) & (m.seq_tokens > m.budget_tokens)
             & (m.os == "windows"),
             lambda f: (f"context {f.seq_tokens:,} x {f.seqs} sequences exceeds the safe budget of "
                        f"{f.budget_tokens:,} tokens each; on Windows the driver silently spills to system "
                        f"memory: a 25-105x latency cliff (TR127 §6.3, Appendix H.2)"),
             sets=("max_context_tokens",)),
        Rule("context.vram-hard-stop", stop.source, "gate",
             lambda m: cand(m) & (m.base_gb < m.usable_gb) & (m.vram_frac > stop.value),
             lambda f: f"predicted VRAM {f.vram_frac:.0%} of the GPU passes the {stop.value:.0%} hard stop",
             sets=("max_context_tokens", "concurrency"), kind="performance"),
        Rule("context.vram-alert", warn.source, "penalty",
             lambda m: cand(m) & (m.base_gb < m.usable_gb) & (m.vram_frac > warn.value) & (m.vram_frac <= stop.value),
             lambda f: f"predicted VRAM {f.vram_frac:.0%} passes the {warn.value:.0%} alert line"),
    ]


def plan_rules(k) -> list[Rule]:
    near = k.row("context_near_budget")
    warn = k.row("vram_alert_warning")
    return [
        # near the budget, not past it: past it the candidate stage rejected or gated the plan already
        Rule("context.near-budget", near.source, "warn",
             lambda m: plan(m) & (m.seq_tokens >= m.budget_tokens * near.value) & (m.seq_tokens <= m.budget_tokens),
             lambda f: (f"the typical context {f.seq_tokens:,} is within {1 - near.value:.0%} of the safe budget "
                        f"{f.budget_tokens:,}; truncate or reject longer requests (H.2)"),
             asserts=lambda f: {"kind": "concern", "topic": "vram",
                                "because": f"context {f.seq_tokens:,} near the budget {f.budget_tokens:,}"}),
        Rule("context.attention-quadratic", k.row("attention.n2_bytes_per_head.math").source, "warn",
             lambda m: plan(m) & (m.prefill_activations == 1) & (m.attn_n2_mb > 0),
             lambda f: (f"the budget assumes attention builds the n x n score matrix on this setup "
                        f"({f.attn_n2_mb * 2**20:,.0f} B per token^2: {f.attn_n2_mb * f.seq_tokens ** 2 / 1024:.1f} GB at "
                        f"{f.seq_tokens:,} tokens); run `advisor probe` here to measure which kernel runs"),
             sets=("max_context_tokens",)),
        Rule("context.stored-bound", "TR127 §14.3 (safe context = (VRAM - base) / slope x 0.8)", "note",
             lambda m: plan(m) & (m.stored_bound >= 0) & (m.budget_tokens <= m.stored_bound),
             lambda f: (f"budget {f.budget_tokens:,} tokens: bounded by the safe context measured on this very setup "
                        f"({f.model} on {f.os}, TR127)"),
             sets=("max_context_tokens",)),
        Rule("context.windows-spill", "TR127 §6.3; DESIGN (Windows system-memory fallback)", "note",
             lambda m: plan(m) & (m.os == "windows"),
             lambda f: ("Windows: past the budget the driver spills to system memory silently (latency cliff, "
                        "no error); watch VRAM, not errors")),
        # a per-sequence allocation that can fail: only engines without a shared paged pool
        Rule("context.linux-oom", "DESIGN (Linux has no system-memory fallback)", "note",
             lambda m: plan(m) & (m.os == "linux") & (m.pool_tokens == 0) & (m.pages_kv == 0),
             lambda f: f"Linux: past {f.budget_tokens:,} tokens per sequence the allocation fails with out-of-memory"),
        # a shared paged pool (vLLM, TGI, transformers serve): the limit is the pool, not a sequence
        Rule("context.paged-pool", "SERVING (vLLM: a paged KV pool shared by all running sequences; when it runs "
                                   "out, requests are preempted and recomputed)", "note",
             lambda m: plan(m) & (m.pages_kv == 1),
             lambda f: (f"{f.backend} shares one paged KV pool: {f.seqs} sequences of {f.budget_tokens:,} tokens fit "
                        f"together; past that it preempts and recomputes (tail latency, not an out-of-memory "
                        f"error), and a single request longer than {f.budget_one:,} tokens is refused"),
             sets=("max_context_tokens",)),
        # An engine that sizes its own pool (transformers serve) never grows past it: requests wait for pages.
        Rule("context.engine-pool", "transformers 5.24 continuous batching (scheduler.py: a request is "
                                    "scheduled when its pages fit; cache.py: the pool's size)", "note",
             lambda m: plan(m) & (m.pool_tokens > 0),
             lambda f: (f"{f.backend} sizes its own KV pool at start: {f.pool_tokens:,} tokens for all sequences, "
                        f"{f.budget_tokens:,} each at N={f.seqs}; past it, requests wait for pages instead of failing"),
             sets=("max_context_tokens",)),
        Rule("context.budget", k.row("context_safety_margin").source, "note",
             lambda m: plan(m) & (m.pool_tokens == 0),
             lambda f: (f"safe context {f.budget_tokens:,} tokens per sequence = {k.value('context_safety_margin'):g} x "
                        f"({f.usable_gb:.1f} GB usable - {f.weights_gb:.2f} GB weights - overhead) / per-token cost"),
             sets=("max_context_tokens",)),
        Rule("context.vram-alert-plan", warn.source, "warn",
             lambda m: plan(m) & (m.vram_frac > warn.value),
             lambda f: f"predicted VRAM {f.vram_frac:.0%} is above the {warn.value:.0%} alert line; see H.2",
             asserts=lambda f: {"kind": "concern", "topic": "vram",
                                "because": f"predicted VRAM {f.vram_frac:.0%} (alert {warn.value:.0%})"}),
    ]
