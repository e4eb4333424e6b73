"""From ranked candidates to the Plan a user reads: the ranking, the plan's figures, its knobs.

The rules judged each candidate (rules/*.py): rejections, gates, penalties. The ranking orders
what they left; the winner becomes a Plan whose every figure is its Estimate's (the one load
model's, advisor/load), whose replicas are the ones decided once (advisor/sizing.py), and whose
engine knobs come from its engine, given the Sizing record the plan decided.
"""

from __future__ import annotations

import math

from advisor.domain import Answers, Plan, Predicted, RuleFiring
from advisor.engines import Sizing
from advisor.estimate import load_figures, seqs_reason
from advisor.knowledge import Knowledge
from advisor.rules.base import Conclusion, Trace
from advisor.stages import Estimate

RANKING_RULE = "advisor.ranking"
HEADLINE = ("backend", "quantization", "model", "max_context_tokens", "concurrency", "replicas", "tensor_parallel")


def ranking_source(k: Knowledge) -> str:
    """The declared objective, by its terms in the order applied (`advisor knowledge ranking` has each
    term's meaning and source)."""
    return "knowledge/ranking.toml (" + " > ".join(r.term.replace("_", " ") for r in k.ranking) + ")"


def served_quality(e: Estimate, k: Knowledge) -> float:
    """The catalog's quality score after the quantization's loss (MMLU, percentage points); a model
    without a score ranks below every scored one (its quality is not known)."""
    mmlu = e.model.mmlu
    return (mmlu if mmlu is not None else -100.0) - k.quant[e.quant].mmlu_delta_pp


class Ranked:
    """A candidate with the rules' conclusions on it, and the value of each term of the objective."""

    def __init__(self, est: Estimate, conclusions: list[Conclusion], k: Knowledge):
        self.est = est
        self.conclusions = conclusions
        self.rejects = [c for c in conclusions if c.effect == "reject"]
        self.gates = [c for c in conclusions if c.effect == "gate"]
        self.policy_gates = [c for c in self.gates if c.kind == "policy"]
        self.target_gates = [c for c in self.gates if c.kind not in ("policy", "target")]
        self.default_gates = [c for c in self.gates if c.kind == "target"]
        self.penalty = sum(c.weight for c in conclusions if c.effect == "penalty")
        self.quality = served_quality(est, k)
        self.tier = 0  # quality tier: 0 is the best's (set by rank())
        self.margin = 0.0  # the quality margin the tiers were cut with
        self.order = [r.term for r in k.ranking]
        self.short = max(est.replicas.needed - est.replicas.possible, 0)  # replicas short of the load

    def term(self, name: str) -> float | tuple:
        """One term of the objective (knowledge/ranking.toml): lower is better."""
        e = self.est
        if name == "policy":
            return len(self.policy_gates)
        if name == "targets":
            return len(self.target_gates)
        if name == "replicas":
            return self.short
        if name == "default_targets":
            return len(self.default_gates)
        if name == "quality":
            return self.tier
        if name == "gpus":
            return e.tensor_parallel * e.replicas.used
        if name == "preferences":
            return round(self.penalty, 6)
        if name == "certainty":
            assumed = int(e.speed.prefill_assumed) + int(e.speed.decode_assumed)
            return (assumed, round(e.p95_band, 3))
        if name == "speed":
            return speed_s(e)
        raise ValueError(f"unknown ranking term {name!r}")

    def key(self) -> tuple:
        # rejections first (a candidate that cannot run never outranks one that can); then the declared
        # objective; then exact quality and precision, so the order is total and repeatable
        return (len(self.rejects), *(self.term(t) for t in self.order), -self.quality, -self.est.bits,
                self.est.model.id, self.est.backend, self.est.quant)


def speed_s(e: Estimate) -> float:
    """The speed term: p95 latency (inf when the queue never drains)."""
    return e.load.e2e_p95_s if math.isfinite(e.load.e2e_p95_s) else math.inf


def rank(cands: list[Estimate], trace: Trace, k: Knowledge) -> list[Ranked]:
    by_id: dict[str, list[Conclusion]] = {}
    for c in trace.conclusions:
        by_id.setdefault(c.fact_id, []).append(c)
    ranked = [Ranked(e, by_id.get(str(i), []), k) for i, e in enumerate(cands)]
    quality_tiers(ranked, k.value("quality_margin_pp"))
    ranked.sort(key=Ranked.key)
    return ranked


def quality_tiers(ranked: list[Ranked], margin: float) -> None:
    """Scores within `margin` of a tier's best are one tier (its defaults decide inside it): tier 0
    holds the best score and everything within the margin of it, tier 1 the best of the rest..."""
    tier, top = -1, math.inf
    for r in sorted(ranked, key=lambda r: -r.quality):
        if r.quality < top - margin - 1e-9:
            tier, top = tier + 1, r.quality
        r.tier = tier
        r.margin = margin


# gates that say "more replicas": a better model short of GPUs is a trade the user can buy
_MORE_GPUS = ("slo.saturated", "scaling.replicas-short")


def quality_trade(ranked: list[Ranked], best: Ranked, max_gpus: int = 8) -> dict:
    """The best-quality candidate a better tier up that breaks nothing but the workload's default
    targets (which the user left blank) or the GPUs given: the plan stage says what it would cost in
    speed, or how many GPUs it needs."""
    def only_soft(r: Ranked) -> bool:
        return (not r.rejects and not r.policy_gates
                and all(c.rule in _MORE_GPUS for c in r.target_gates)
                and (bool(r.default_gates) or r.short > 0))

    def gpus(r: Ranked) -> int:
        return r.est.replicas.needed * r.est.tensor_parallel

    def overshoot(r: Ranked) -> float:  # how far past the default targets, as a factor
        d, ld = r.est.demand, r.est.load
        return max(ld.ttft_p95_ms / d.ttft_slo_ms, ld.e2e_p95_s / d.e2e_slo_s)

    # another model (a named model's other precisions are the alternatives' business), on at most
    # `max_gpus` GPUs (knowledge: quality_trade_max_gpus)
    better = [r for r in ranked if r.tier < best.tier and only_soft(r) and r.est.model.id != best.est.model.id
              and gpus(r) <= max_gpus]
    if not better:
        return {"quality": round(best.quality, 2)}
    # on the GPUs given: the best tier, closest to the targets; else the upgrade that needs the fewest GPUs
    slower = [r for r in better if r.short == 0]
    t = (min(slower, key=lambda r: (r.tier, overshoot(r))) if slower
         else min(better, key=lambda r: (gpus(r), r.tier, r.term("preferences"), r.term("certainty"), speed_s(r.est))))
    e = t.est
    out = {"quality": round(best.quality, 2), "trade": f"{e.model.id} on {e.backend} at {e.quant}",
           "trade_quality": round(t.quality, 2)}
    if t.short > 0:
        return {**out, "trade_gpus": gpus(t), "trade_why": e.replicas.why}
    return {**out, "trade_ttft_ms": e.load.ttft_p95_ms, "trade_e2e_s": e.load.e2e_p95_s}


def max_context(e: Estimate) -> int:
    return max(min(e.budget_tokens, e.model.max_context), 0)


# For each choice, the rival that differs in it and as little else as possible: the deciding term
# between the winner and that rival is what set the value.
_RIVAL_KEEPS = {"model": (), "backend": ("model", "quant"), "quantization": ("model", "backend")}
_FIELD = {"model": lambda e: e.model.id, "backend": lambda e: e.backend, "quantization": lambda e: e.quant,
          "quant": lambda e: e.quant}


def decisions(k: Knowledge, ranked: list[Ranked], best: Ranked) -> dict[str, RuleFiring]:
    """What set the winner's model, backend and quantization: the term of the declared objective on
    which it beats the best rival that differs in that choice (the firing names that rival), or, for
    a sourced preference, the preference rule that held on the winner. A choice nothing else could
    take (every rival is rejected, or none exists) is set by the rule that rejected them."""
    rows = {r.term: r for r in k.ranking}
    out: dict[str, RuleFiring] = {}
    for field, keeps in _RIVAL_KEEPS.items():
        mine = _FIELD[field](best.est)
        differs = [r for r in ranked if r is not best and _FIELD[field](r.est) != mine]
        close = [r for r in differs if all(_FIELD[x](r.est) == _FIELD[x](best.est) for x in keeps)]
        if not (close or differs):  # the answers left one choice (a named model, a tied backend): their own rule says so
            continue
        rival = (close or differs)[0]
        term = deciding_term(rival, best)
        who = f"{rival.est.model.id} on {rival.est.backend} at {rival.est.quant}"
        if term in ("runs", "policy", "targets", "default_targets"):
            broke = rival.rejects or rival.policy_gates or rival.target_gates or rival.default_gates
            c = broke[0] if broke else None
            because = (f"{field} {mine}: the best rival, {who}, breaks {c.rule}: {c.because}" if c
                       else f"{field} {mine}: the best rival, {who}, breaks more checks")
            rule = "ranking.runs" if term == "runs" else f"ranking.{term}"
            src = rows[term].source if term in rows else "the rules' rejections (rules/*.py)"
            out[field] = RuleFiring(rule=rule, source=src, because=because)
            continue
        if term == "preferences":
            bonus = next((c for c in best.conclusions if c.effect == "penalty" and c.weight < 0
                          and c.rule not in {x.rule for x in rival.conclusions}), None)
            if bonus is not None and field in bonus.sets:
                out[field] = RuleFiring(rule=bonus.rule, source=bonus.source,
                                        because=f"{field} {mine} over {who} (same quality tier): {bonus.because}")
                continue
        because = (f"{field} {mine} over {who}: " + why_term(term, rival, best, f"{best.est.model.id} on "
                                                              f"{best.est.backend} at {best.est.quant}")
                   if term else f"{field} {mine}: level with {who} on every term")
        out[field] = RuleFiring(rule=f"ranking.{term}" if term else RANKING_RULE,
                                source=rows[term].source if term in rows else ranking_source(k), because=because)
    return out


def plan(k: Knowledge, answers: Answers, r: Ranked, alt: bool = False, plan_trace: Trace | None = None,
         winner: Ranked | None = None, decided: dict[str, RuleFiring] | None = None) -> Plan:
    """The Plan of a ranked candidate: the winner's (with the rule behind each headline field and
    its engine's knobs), or an alternative's (with why it lost)."""
    e = r.est
    ld = e.load
    reps = e.replicas.used
    batch = ld.mode == "batch"
    pred = Predicted(
        # an offline batch has no interactive TTFT or latency to promise: its figures are the batch's (load)
        vram_gb=round(e.vram_gb, 2), ttft_ms=round(ld.ttft_p95_ms, 1) if ld.steady and not batch else None,
        decode_tok_s_per_user=round(ld.per_user_tok_s, 1), total_tok_s=round(ld.total_tok_s * reps, 1),
        p95_latency_s=round(ld.e2e_p95_s, 2) if ld.steady and not batch else None, origins=dict(e.origins),
        bands={"ttft_ms": e.ttft_band, "p95_latency_s": e.p95_band, "decode_tok_s_per_user": e.decode_band,
               "total_tok_s": e.decode_band, "vram_gb": k.value("band.vram")},
        load=load_figures(answers, e, with_max_rate=not alt),  # advisor/estimate.py: the one load model's
    )
    p = Plan(backend=e.backend, quantization=e.quant, model=e.model.id, max_context_tokens=max_context(e),
             concurrency=ld.seqs, replicas=reps, tensor_parallel=e.tensor_parallel, predicted=pred)
    if alt:
        p.lost_because = lost_because(r, winner)
        return p
    # The rule that decided each headline field: the plan stage's explanation first, else a
    # candidate-stage judgement on the winner, else the ranking itself.
    notes = (plan_trace.conclusions if plan_trace else []) + r.conclusions
    p.set_by = {f: next((c.rule for c in notes if f in c.sets), RANKING_RULE) for f in HEADLINE}
    # the choices among candidates: set by the term of the objective that decided them
    p.set_by.update({f: d.rule for f, d in (decided or {}).items()})
    p.settings = e.engine.settings(sizing(k, answers, e, p))
    return p


def sizing(k: Knowledge, answers: Answers, e: Estimate, p: Plan) -> Sizing:
    """What the plan decided, for the engine's knobs."""
    mem = e.memory
    seqs_rule, seqs_why = seqs_reason(k, e)
    return Sizing(seqs_rule=seqs_rule, seqs_why=seqs_why,
        model=e.model, quant=e.quant, local_path=answers.model.name if e.model.origin != "catalog" else "",
        tensor_parallel=p.tensor_parallel, replicas=p.replicas, seqs=p.concurrency, mode=e.load.mode,
        prompt_tokens=e.demand.prompt_tokens, output_tokens=e.demand.output_tokens,
        max_context_tokens=p.max_context_tokens, budget_one=e.budget_one,
        base_gb=mem.weights_gb + mem.overhead_gb, usable_gb=mem.usable_gb, total_gb=mem.total_gb,
        bf16_ok=(e.hardware.spec.compute_capability or 8.0) >= 8.0, pool_tokens=mem.pool_tokens,
        pool_source=mem.pool_source)


def deciding_term(a: Ranked, b: Ranked) -> str:
    """The first term of the objective on which two candidates differ ("" when none does)."""
    if len(a.rejects) != len(b.rejects):
        return "runs"
    return next((t for t in a.order if a.term(t) != b.term(t)), "")


def why_term(term: str, r: Ranked, w: Ranked, winner: str = "the winner") -> str:
    """How `w` beats `r` on one term of the objective, in the user's words with both figures."""
    e, we = r.est, w.est
    if term == "replicas":
        return (f"needs {e.replicas.needed} replica(s) where the GPUs hold {e.replicas.possible}; {winner} needs "
                f"{we.replicas.needed}")
    if term == "quality":
        return (f"lower served quality: {e.model.id} at {e.quant} scores MMLU {r.quality:.1f} vs "
                f"{we.model.id} at {we.quant} {w.quality:.1f} (a lower tier; tiers are {r.margin:g} pp wide)")
    if term == "gpus":
        return f"uses {r.term('gpus')} GPUs where {winner} uses {w.term('gpus')}"
    if term == "certainty":
        return (f"its figures are less certain ({_certainty(r)}) than those of {winner} ({_certainty(w)}), "
                f"in the same quality tier")
    if term == "speed":
        return f"slower: p95 {_secs(speed_s(e))} vs {_secs(speed_s(we))}"
    if term == "preferences":
        mine = {c.rule for c in r.conclusions}
        edge = [f"{winner} has the preference: {c.because}" for c in w.conclusions
                if c.effect == "penalty" and c.weight < 0 and c.rule not in mine]
        theirs = {c.rule for c in w.conclusions}
        own = [c.because for c in r.conclusions if c.effect == "penalty" and c.weight > 0 and c.rule not in theirs]
        return "; ".join(edge + own) or f"the sourced preferences weigh {r.penalty:g} against {w.penalty:g} for {winner}"
    return ""


def _certainty(r: Ranked) -> str:
    s = r.est.speed
    assumed = [n for n, a in (("prefill", s.prefill_assumed), ("decode", s.decode_assumed)) if a]
    return (f"{' and '.join(assumed)} assumed" if assumed else "calibrated") + f", band ±{r.est.p95_band:.0%}"


def _secs(v: float) -> str:
    return "saturated" if not math.isfinite(v) else (f"{v:.3g} s" if v >= 0.01 else f"{v * 1e3:.3g} ms")


def lost_because(r: Ranked, winner: Ranked | None) -> list[str]:
    """Why an alternative ranks below the winner: its rejections and gates, then the term of the
    declared objective (knowledge/ranking.toml) that separated them, with both figures."""
    out = [c.because for c in r.rejects + r.gates]
    if winner is None:
        return out
    term = deciding_term(r, winner)
    if term in ("runs", "policy", "targets", "default_targets") and out:
        return list(dict.fromkeys(out))
    line = why_term(term, r, winner) if term else "ranks level with the winner on every term; the order is by name"
    return list(dict.fromkeys(out + [line]))


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
