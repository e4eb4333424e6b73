"""Backend crossover: F.1-F.6 by workload and concurrency, TR130 crossover, TR126 compile policy, OS."""

from __future__ import annotations

from advisor.rules.base import Rule, cand, plan


def candidates_rules(k) -> list[Rule]:
    from durable.lang import c, none

    cross = k.row("vllm_crossover_n")
    adv = k.row("vllm_advantage_n8")
    redirect = k.row("hf_fp16_context_redirect")
    return [
        # a backend's row is facts (rules/facts.py ServesFact, asserted before the candidates): a candidate
        # whose backend has no line for its quantization, or for the OS, cannot run
        Rule("backend.lacks-quantization", "knowledge/backends.toml, Appendix P.1", "reject",
             lambda m: (c.c << cand(m),
                        none((m.kind == "serves") & (m.backend == c.c.backend) & (m.quant == c.c.quant))),
             lambda ctx: f"{ctx.c.backend} cannot serve {ctx.c.quant}", sets=("backend", "quantization"),
             joins=("c",)),
        Rule("backend.os-unsupported", "knowledge/backends.toml", "reject",
             lambda m: (c.c << cand(m), none((m.kind == "runs") & (m.backend == c.c.backend) & (m.os == c.c.os))),
             lambda ctx: (f"{ctx.c.backend} does not run on {ctx.c.os}"
                          + (" (torch.compile's Triton backend is Linux-only, TR126)" if ctx.c.compiled_prefill else "")),
             sets=("backend",), joins=("c",)),
        Rule("backend.compile-prefill-only", "TR126 (Appendix J.4)", "gate",
             lambda m: cand(m) & (m.compiled_prefill == 1) & (m.phase != "prefill"),
             lambda f: f"compiled HF only helps prefill; {f.workload} is {f.phase}-dominated (never compile decode)",
             sets=("backend",), kind="policy"),
        Rule("backend.compile-single-stream", "Appendix F.6 (compiled HF at N=1 only)", "gate",
             lambda m: cand(m) & (m.compiled_prefill == 1) & (m.seqs >= cross.value),
             lambda f: f"compiled HF serves one request at a time; at N={f.seqs} continuous batching wins",
             sets=("backend",), kind="policy"),
        Rule("backend.crossover", cross.source, "penalty",
             lambda m: cand(m) & (m.seqs >= cross.value) & (m.continuous == 0),
             lambda f: (f"N={f.seqs} >= {cross.value:g}: " + (
                 f"{f.backend} batches its slots, but each reserves its full context at load and there is no paged cache"
                 if f.slots else f"{f.backend} serves one request at a time")
                 + f"; continuous batching leads from the crossover (vLLM {adv.value:g}x at N=8, {adv.source})"),
             sets=("backend",)),
        # A bonus (negative penalty) on the one preferred backend: it fires on few candidates,
        # which keeps a consultation fast; the others lose it in the ranking. Appendix F's row is a
        # fact (rules/facts.py PreferenceFact); each side of its crossover is a join on the candidate's
        # own sequences.
        _preference("low"), _preference("high"),
        Rule("backend.hf-long-context", redirect.source, "penalty",
             lambda m: cand(m) & (m.prefill_activations == 1) & (m.seq_tokens > redirect.value),
             lambda f: f"context {f.seq_tokens:,} > {redirect.value:g} on HF: prefill activations grow with the whole prompt",
             sets=("backend",)),
    ]


def _preference(side: str) -> Rule:
    """Appendix F's backend on one side of its crossover: a bonus on the candidates that run it there."""
    return Rule("backend.workload-preference", "Appendix F.1-F.6 (backend by concurrency)", "penalty",
                lambda m: preferred(m, side, "backend"),
                lambda ctx: (f"{ctx.w.workload} ({ctx.w.phase}-dominated) at N={ctx.c.seqs} "
                             f"{'>=' if side == 'high' else '<'} {ctx.w.high_n_from} is served best by "
                             f"{getattr(ctx.w, 'backend_' + side)} ({ctx.w.source})"),
                sets=("backend",), joins=("w", "c"))


def preferred(m, side: str, what: str, extra=None):
    """Join Appendix F's row (c.w) with a candidate (c.c) on its side of the crossover whose backend
    (or quantization) is the row's for that side. Two plain joins, one per side: durable-rules'
    joins under an OR of references match only once."""
    from durable.lang import c

    on_side = (m.seqs >= c.w.high_n_from) if side == "high" else (m.seqs < c.w.high_n_from)
    field = m.backend if what == "backend" else m.quant
    cond = cand(m) & on_side & (field == getattr(c.w, f"{what}_{side}"))
    return (c.w << (m.kind == "preference"), c.c << (cond & extra if extra is not None else cond))


def plan_rules(k) -> list[Rule]:
    cross = k.row("vllm_crossover_n")
    return [
        Rule("backend.continuous-batching", cross.source, "note",
             lambda m: plan(m) & (m.continuous == 1) & (m.seqs >= cross.value),
             lambda f: f"N={f.seqs} >= {cross.value:g}: continuous batching shares each weight read across sequences",
             sets=("backend",)),
        Rule("backend.no-batching-at-high-n", cross.source, "warn",
             lambda m: plan(m) & (m.continuous == 0) & (m.seqs >= cross.value) & (m.mode != "batch"),
             lambda f: (f"N={f.seqs} >= {cross.value:g} on {f.backend}, past the crossover where continuous batching "
                        f"leads: " + ("your constraint keeps it" if f.tied else
                                      "the continuous-batching engines rank below it here (see the alternatives for "
                                      "what each one misses)"))),
        Rule("backend.compile-policy", "TR126 (Appendix J.4)", "note",
             lambda m: plan(m) & (m.compiled_prefill == 1),
             lambda f: f"torch.compile for prefill only, on {f.os}; decode stays eager", sets=("backend",)),
    ]
