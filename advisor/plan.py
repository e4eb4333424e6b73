"""From ranked candidates to the Plan a user reads: the ranking, the plan's figures, its knobs.

The rules judged each candidate (rules/*.py): rejections, gates, penalties. The ranking orders
what they left; the winner becomes a Plan whose every figure is its Estimate's (the one load
model's, advisor/load), whose replicas are the ones decided once (advisor/sizing.py), and whose
engine knobs come from its engine, given the Sizing record the plan decided.
"""

from __future__ import annotations

import math

from advisor.domain import Answers, LoadFigures, Plan, Predicted, RuleFiring
from advisor.engines import Sizing
from advisor.knowledge import Knowledge
from advisor.rules.base import Conclusion, Trace
from advisor.stages import Estimate

RANKING = RuleFiring(
    rule="advisor.ranking",
    source="advisor policy: fewest policy-gate failures (risk tier, quality, compile policy), then fewest "
           "performance-gate failures, then the fewest replicas short of the load, then fewest penalties, "
           "then the largest model, "
           "then the higher-precision quantization, then the lowest p95 latency",
    because="",
)
HEADLINE = ("backend", "quantization", "model", "max_context_tokens", "concurrency", "replicas", "tensor_parallel")


class Ranked:
    """A candidate with the rules' conclusions on it, in the order the ranking reads them."""

    def __init__(self, est: Estimate, conclusions: list[Conclusion]):
        self.est = est
        self.conclusions = conclusions
        self.rejects = [c for c in conclusions if c.effect == "reject"]
        self.gates = [c for c in conclusions if c.effect == "gate"]
        # Breaking policy (risk tier, quality, compile policy) is worse than missing a
        # performance target: when nothing passes everything, keep the policy.
        self.policy_gates = [c for c in self.gates if c.kind == "policy"]
        self.penalty = sum(c.weight for c in conclusions if c.effect == "penalty")

    def key(self) -> tuple:
        e = self.est
        short = max(e.replicas.needed - e.replicas.possible, 0)  # GPUs' worth of replicas the load lacks
        return (len(self.rejects), len(self.policy_gates), len(self.gates), short, self.penalty,
                -effective_size(e), -e.bits, e.load.e2e_p95_s)


def rank(cands: list[Estimate], trace: Trace) -> list[Ranked]:
    by_id: dict[str, list[Conclusion]] = {}
    for c in trace.conclusions:
        by_id.setdefault(c.fact_id, []).append(c)
    ranked = [Ranked(e, by_id.get(str(i), [])) for i, e in enumerate(cands)]
    ranked.sort(key=Ranked.key)
    return ranked


def effective_size(e: Estimate) -> float:
    """The size the ranking prefers: a dense model's parameters; a mixture of experts' geometric
    mean of total and active (a common rule of thumb for MoE quality: Mixtral 8x7B ~ 24B dense)."""
    m = e.model
    return math.sqrt(m.params * m.active_params) if m.experts else m.params


def max_context(e: Estimate) -> int:
    return max(min(e.budget_tokens, e.model.max_context), 0)


def plan(k: Knowledge, answers: Answers, r: Ranked, alt: bool = False, plan_trace: Trace | None = None,
         winner: Ranked | None = None) -> Plan:
    """The Plan of a ranked candidate: the winner's (with the rule behind each headline field and
    its engine's knobs), or an alternative's (with why it lost)."""
    e = r.est
    ld = e.load
    reps = e.replicas.used
    pred = Predicted(
        vram_gb=round(e.vram_gb, 2), ttft_ms=round(ld.ttft_p95_ms, 1) if ld.steady else None,
        decode_tok_s_per_user=round(ld.per_user_tok_s, 1), total_tok_s=round(ld.total_tok_s * reps, 1),
        p95_latency_s=round(ld.e2e_p95_s, 2) if ld.steady else None, origins=dict(e.origins),
        bands={"ttft_ms": e.ttft_band, "p95_latency_s": e.p95_band, "decode_tok_s_per_user": e.decode_band,
               "total_tok_s": e.decode_band, "vram_gb": k.value("band.vram")},
        load=load_figures(answers, e, with_max_rate=not alt),
    )
    p = Plan(backend=e.backend, quantization=e.quant, model=e.model.id, max_context_tokens=max_context(e),
             concurrency=ld.seqs, replicas=reps, tensor_parallel=e.tensor_parallel, predicted=pred)
    if alt:
        p.lost_because = lost_because(r, winner)
        return p
    # The rule that decided each headline field: the plan stage's explanation first, else a
    # candidate-stage judgement on the winner, else the ranking itself.
    decided = (plan_trace.conclusions if plan_trace else []) + r.conclusions
    p.set_by = {f: next((c.rule for c in decided if f in c.sets), RANKING.rule) for f in HEADLINE}
    p.settings = e.engine.settings(sizing(answers, e, p))
    return p


def sizing(answers: Answers, e: Estimate, p: Plan) -> Sizing:
    """What the plan decided, for the engine's knobs."""
    mem = e.memory
    return Sizing(
        model=e.model, quant=e.quant, local_path=answers.model.name if e.model.origin != "catalog" else "",
        tensor_parallel=p.tensor_parallel, replicas=p.replicas, seqs=p.concurrency, mode=e.load.mode,
        prompt_tokens=e.demand.prompt_tokens, output_tokens=e.demand.output_tokens,
        max_context_tokens=p.max_context_tokens, budget_one=e.budget_one,
        base_gb=mem.weights_gb + mem.overhead_gb, usable_gb=mem.usable_gb, total_gb=mem.total_gb,
        bf16_ok=(e.hardware.spec.compute_capability or 8.0) >= 8.0, pool_tokens=mem.pool_tokens,
        pool_source=mem.pool_source)


def load_figures(answers: Answers, e: Estimate, with_max_rate: bool) -> LoadFigures:
    """The load's figures (the one load model's); for the plan itself also the largest arrival
    rate one replica holds within the targets, by the same model."""
    ld = e.load
    fig = LoadFigures(mode=ld.mode, sequences=ld.seqs, rate_rps=round(ld.rate_rps, 3),
                      ttft_p95_ms=round(ld.ttft_p95_ms, 1) if ld.steady else None,
                      e2e_p95_s=round(ld.e2e_p95_s, 2) if ld.steady else None,
                      burst_last_ttft_ms=round(ld.burst_ttft_ms, 1), capacity_rps=round(ld.capacity_rps, 3),
                      steady=ld.steady)
    if ld.mode == "concurrent" and answers.think_time_s > 0:
        fig.think_time_s = answers.think_time_s
        fig.in_flight = round(min(ld.in_flight, ld.seqs), 2)
    if with_max_rate and ld.mode != "batch":
        fig.max_rate_rps = round(e.scheduler.max_rate_rps(e.speed.costs, e.demand, ld.seqs), 3)
    return fig


def lost_because(r: Ranked, winner: Ranked | None) -> list[str]:
    """Why an alternative ranks below the winner: its rejections and gates, the winner's
    bonuses it lacks, its own penalties, else the tie-breaker that separated them."""
    out = [c.because for c in r.rejects + r.gates]
    mine = {c.rule for c in r.conclusions}
    if winner is not None:
        out += [f"the winner's edge: {c.because}" for c in winner.conclusions
                if c.effect == "penalty" and c.weight < 0 and c.rule not in mine]
    out += [c.because for c in r.conclusions if c.effect == "penalty" and c.weight > 0]
    if out or winner is None:
        return out
    w, e = winner.est, r.est
    if effective_size(e) < effective_size(w):
        return [f"smaller model ({effective_size(e) / 1e9:.3g}B vs {effective_size(w) / 1e9:.3g}B"
                f"{' effective' if e.model.experts or w.model.experts else ''}) with the same checks passed"]
    if e.bits < w.bits:
        return [f"lower precision ({e.quant} vs {w.quant}) with the same checks passed"]
    return [f"slower: p95 {e.load.e2e_p95_s:.1f} s vs {w.load.e2e_p95_s:.1f} s"]


def diverse(ranked: list[Ranked], best: Ranked | None, limit: int = 5) -> list[Ranked]:
    """The best candidate per engine, then the next-best quantization of the winner's engine."""
    out: list[Ranked] = []
    seen = {best.est.backend} if best else set()
    for r in ranked:
        if r is best or r.est.backend in seen:
            continue
        seen.add(r.est.backend)
        out.append(r)
    if best is not None:
        for r in ranked:
            if r is not best and r.est.backend == best.est.backend and not r.rejects and r not in out:
                out.insert(0, r)
                break
    return out[:limit]
