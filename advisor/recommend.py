"""recommend(): answers + hardware + probes + knowledge -> facts -> rules -> Recommendation.

The one call behind both front ends, in one direction: the answers' defaults are filled once
and the demand resolved (advisor/load/demand.py); every candidate (model x engine x
quantization) goes through the stages (advisor/estimate.py: memory, speed, replicas, load) and
becomes a fact; the rules reject, gate, penalise or annotate it; Python only ranks what they left
(advisor/plan.py). The chosen plan (and every figure it leans on) is asserted again for the plan
stage: playbooks, SLO bands, plausibility, the advice its own verdicts call for.
"""

from __future__ import annotations

from advisor.answers import check_names, demand, with_workload_defaults
from advisor.domain import (
    Answers,
    Hardware,
    HardwareSummary,
    ModelSpec,
    PlaybookRef,
    ProbeResult,
    ProbeSummary,
    Recommendation,
    RuleFiring,
)
from advisor.engines import engines
from advisor.errors import AdvisorError
from advisor.estimate import estimate
from advisor.hardware import resolve_hardware
from advisor.knowledge import Knowledge, load_knowledge
from advisor.load import Demand
from advisor.models import resolve_models
from advisor.plan import RANKING_RULE, Ranked, decisions, diverse, plan, quality_trade, rank, ranking_source
from advisor.rules.base import Trace
from advisor.rules.facts import (
    candidate_fact,
    compat_facts,
    figure_facts,
    preference_fact,
    serves_facts,
    tier_facts,
    verdict_facts,
)
from advisor.rules.session import consult, consult_candidates
from advisor.stages import Estimate

ADVICE = "advice."  # rules/advice.py: what the winner's own verdicts mean for the user


def recommend(answers: Answers, hardware: Hardware | None = None, probes: list[ProbeResult] | None = None,
              knowledge=None) -> Recommendation:
    return _advise(answers, hardware, probes, knowledge, nearest=True)[0]


def _advise(answers: Answers, hardware: Hardware | None, probes: list[ProbeResult] | None, knowledge,
            nearest: bool) -> tuple[Recommendation, Ranked | None]:
    """The recommendation, and the ranked candidate it rests on (None when there is none)."""
    k = knowledge or load_knowledge()
    check_names(answers, k)
    answers = with_defaults(answers, k)  # what the user left out: the workload's own, once
    ask = demand(answers)
    hw = hardware or resolve_hardware(answers, k)
    probes = list(probes or [])
    models = resolve_models(answers, k)
    candidates = _candidates(k, answers, ask, hw, models, probes)
    facts = [candidate_fact(k, answers, i, est) for i, est in enumerate(candidates)]
    trace = judge(k, answers, candidates, facts)
    ranked = rank(candidates, trace, k)

    rec = Recommendation(recommendation=None, answers=answers, hardware=HardwareSummary.of(hw),
                         probes=ProbeSummary.of(probes))
    viable = [r for r in ranked if not r.rejects]
    if not viable:
        near = _nearest_plan(k, answers, hw, probes, ranked) if nearest else None
        if near is not None:
            return near, None
        rec.no_plan_because = "nothing can run here for these answers"
        rec.warnings = _nothing_fits(answers, hw, ranked)
        rec.alternatives = [plan(k, answers, r, alt=True) for r in diverse(ranked, None)[:4]]
        return rec, None

    best = viable[0]
    tied = answers.constraints.backend or answers.constraints.quantization
    if best.policy_gates and answers.model.name and not tied:
        return _named_model_breaks_policy(k, answers, hw, probes, rec, best), best
    ties = ", ".join(f"{f}={getattr(answers.constraints, f)}" for f in ("backend", "quantization")
                     if getattr(answers.constraints, f))
    plan_fact = facts[candidates.index(best.est)].as_plan(constraints=ties, **quality_trade(ranked, best,
                                                                                   int(k.value("quality_trade_max_gpus"))))
    plan_trace = consult(k, "plan", [*compat_facts(k, [best.est.model.id]), plan_fact, *verdict_facts(best.conclusions),
                                     *figure_facts(k, best.est, probes)])
    decided = decisions(k, ranked, best)
    rec.recommendation = plan(k, answers, best, plan_trace=plan_trace, decided=decided)
    rec.alternatives = [plan(k, answers, r, alt=True, winner=best) for r in diverse(ranked, best)]
    rec.rules_fired = _fired(k, best, plan_trace, decided)
    rec.warnings = _warnings(best, plan_trace)
    rec.playbooks = _playbooks(k, plan_trace)
    return rec, best


def with_defaults(answers: Answers, k: Knowledge) -> Answers:
    """The answers with the workload's defaults filled, remembering which targets were left blank:
    a default target ranks plans, only a typed one is binding (rules/slo.py)."""
    blank = frozenset(f for f in ("ttft_ms", "p95_latency_s") if getattr(answers.slo, f) is None)
    filled = with_workload_defaults(answers, k)
    if blank:  # a new SLOAnswers object (with_workload_defaults copies it): nothing shared is changed
        filled.slo._defaulted = blank | answers.slo.defaulted
    return filled


def judge(k: Knowledge, answers: Answers, cands: list[Estimate], facts: list | None = None) -> Trace:
    """The candidate stages of the rules over these candidates: the knowledge rows they join on go
    first (a rule that asks that no row matches decides when the candidate arrives): Appendix F's
    preference, P.1's tiers, P.3's verdicts, the backends' quantizations and OSes."""
    facts = facts if facts is not None else [candidate_fact(k, answers, i, e) for i, e in enumerate(cands)]
    rows = [preference_fact(k, answers), *tier_facts(k), *compat_facts(k, [e.model.id for e in cands]),
            *serves_facts(k, [e.backend for e in cands])]
    return consult_candidates(k, [*rows, *facts])


# ------------------------------------------------------------------ candidates
def candidates(k: Knowledge, answers: Answers, hardware: Hardware | None = None,
               models: list[ModelSpec] | None = None, probes: list[ProbeResult] | None = None) -> list[Estimate]:
    """Every candidate the advisor weighs for these answers, through the stages (the rules not yet
    consulted): the answers' defaults filled and the hardware resolved here unless given."""
    answers = with_defaults(answers, k)
    hw = hardware or resolve_hardware(answers, k)
    return _candidates(k, answers, demand(answers), hw, models or resolve_models(answers, k), list(probes or []))


def _candidates(k: Knowledge, answers: Answers, ask: Demand, hw: Hardware, models: list[ModelSpec],
                probes: list[ProbeResult]) -> list[Estimate]:
    """Every model x engine x quantization the constraints allow, through the stages."""
    want_backend = answers.constraints.backend
    want_quant = answers.constraints.quantization
    out = []
    for model in models:
        for name, eng in engines(k).items():
            if want_backend and name != want_backend:
                continue
            # what this engine can serve the model at, in the form it comes in (catalog, HF folder, GGUF)
            servable = eng.servable(model)
            quants: list[str]
            if model.origin == "catalog" and want_quant:
                quants = [want_quant]  # a constraint the backend lacks is judged (and explained) by the rules
            elif want_quant:
                quants = [q for q in servable if q == want_quant]
            else:  # bf16 costs and runs as fp16 does; it is offered only to a user who asks for it
                quants = [q for q in servable if q != "bf16" or model.file_quantization == "bf16"]
            for quant in quants:
                if quant in k.quant:
                    out.append(estimate(k, ask, hw, answers.hardware.background_vram_gb, model, eng, quant, probes))
    if not out and models and models[0].origin != "catalog":
        raise _unservable(k, models[0], want_backend, want_quant)
    return out


def _unservable(k: Knowledge, model: ModelSpec, want_backend: str, want_quant: str) -> AdvisorError:
    """One line: the named file or folder cannot be served the way the constraints (or anything) ask."""
    ways = [f"{name} at {', '.join(qs)}" for name, eng in engines(k).items()
            if (qs := [q for q in eng.servable(model) if q in k.quant])]
    form = (f"the GGUF file ({model.file_quantization or 'unknown quantization'})" if model.origin == "gguf"
            else "the local HF directory")
    if want_backend or want_quant:
        field = "constraints.backend" if want_backend else "constraints.quantization"
        value = want_backend or want_quant
        return AdvisorError(f"{field}: {value!r} is not possible for {form} {model.id!r}; "
                            f"allowed: {'; '.join(ways) or 'nothing the advisor knows'}")
    return AdvisorError(f"model.name: no backend the advisor knows serves {form} {model.id!r}"
                        + (f" (its quantization {model.file_quantization!r} has no table row)"
                           if model.origin == "gguf" else ""))


# ------------------------------------------------------------------ trace, warnings, playbooks
def _fired(k: Knowledge, r: Ranked, plan_trace: Trace, decided: dict[str, RuleFiring]) -> list[RuleFiring]:
    out = [RuleFiring(rule=c.rule, source=c.source, because=c.because)
           for c in r.conclusions + plan_trace.conclusions if c.effect != "playbook"]
    e = r.est
    out.append(RuleFiring(rule=RANKING_RULE, source=ranking_source(k),
                          because=f"{e.model.id} on {e.backend} at {e.quant} ranked first"))
    out += list(decided.values())  # what set each choice: the deciding term against the best rival
    out += [RuleFiring(rule=c.rule, source=c.source, because=c.because)
            for c in plan_trace.conclusions if c.effect == "playbook"]
    return list({(f.rule, f.because): f for f in out}.values())


def _warnings(best: Ranked, plan_trace: Trace) -> list[str]:
    """The plan stage's warnings: the winner's broken gates and constraints first (rules/advice.py),
    in the order the candidate stage found them, then the rest."""
    order = {c.because: i for i, c in enumerate(best.conclusions)}
    warns = [c for c in plan_trace.conclusions if c.effect == "warn"]
    warns.sort(key=lambda c: (not c.rule.startswith(ADVICE),
                              next((i for why, i in order.items() if c.because.endswith(why)), 0)))
    return list(dict.fromkeys(f"{c.because} [{c.source}]" for c in warns))


def _named_model_breaks_policy(k, answers, hw, probes, rec: Recommendation, best: Ranked) -> Recommendation:
    """The model the user named only runs here by breaking policy (risk tier, quality):
    say so, and offer what the catalog would pick instead."""
    e = best.est
    rec.warnings = [f"{e.model.id} cannot run on {hw.count} x {hw.spec.name} within {answers.risk}-risk policy: "
                    + "; ".join(f"{c.because} [{c.source}]" for c in best.policy_gates)]
    other = recommend(answers.model_copy(update={"model": answers.model.model_copy(update={"name": ""})}),
                      hardware=hw, probes=probes, knowledge=k)
    rec.no_plan_because = (f"{e.model.id} breaks {answers.risk}-risk policy on {hw.count} x {hw.spec.name}"
                           + ("; the first alternative is the catalog's pick instead"
                              if other.recommendation is not None else "; nothing in the catalog passes either"))
    if other.recommendation is not None:
        alt = other.recommendation.model_copy(update={"lost_because": [
            f"not the model you named; the catalog's best fit for {answers.workload} at {answers.risk} risk here"]})
        rec.alternatives = [alt]
        rec.warnings.append(f"the catalog's pick instead: {alt.model} on {alt.backend} at {alt.quantization}")
    rec.alternatives.append(plan(k, answers, best, alt=True, winner=None))
    return rec


# Rejections the nearest plan can give up: the context asked, or the user's ties.
CONTEXT_REJECTS = ("context.over-budget-linux", "context.over-budget-windows", "context.model-max-context",
                   "context.longer-than-pool")


def _nearest_plan(k, answers: Answers, hw: Hardware, probes, ranked: list[Ranked]) -> Recommendation | None:
    """Nothing runs as asked: the closest plan that does, and what it gives up.

    First the context (the largest any candidate holds: its KV budget, the length it was
    trained for), then the user's ties to a backend or quantization, then the named model.
    Never a null recommendation while something can run."""
    reasons = list(dict.fromkeys(f"{r.est.model.id} on {r.est.backend} at {r.est.quant}: {c.because}"
                                 for r in ranked[:6] for c in r.rejects))[:3]
    out = answers.output_tokens or 0  # filled by with_workload_defaults
    fits = [r for r in ranked if r.rejects and all(c.rule in CONTEXT_REJECTS for c in r.rejects)]
    fits = [r for r in fits if not r.policy_gates] or fits  # within policy (risk tier, quality) when it can
    floor = min(answers.context_tokens, int(k.value("nearest.min_context_tokens")))
    held = sorted({min(r.est.budget_tokens if not r.est.engine.pages_kv else r.est.budget_one,
                       r.est.model.max_context) - out for r in fits}, reverse=True)
    # the longest context a candidate holds, trying shorter ones while the winner would break policy
    kv = k.row("kv_cache_q8_context_gain")
    shorter = None  # a shorter-context plan whose winner breaks policy: the last resort
    for best_ctx in [c for c in held if c >= floor][:4]:
        rec, won = _advise(answers.model_copy(update={"context_tokens": best_ctx}), hw, probes, k, nearest=False)
        if rec.recommendation is None:
            continue
        rec.warnings.insert(0, (
            f"nearest plan: {answers.context_tokens:,} + {out:,} tokens cannot run here ({'; '.join(reasons)}); "
            f"this plan serves {best_ctx:,} prompt tokens. To keep the whole context: a KV cache at 8 bits "
            f"(llama.cpp/Ollama q8_0, vLLM fp8) holds about {kv.value:g}x the tokens ({kv.source}); split the "
            f"input into chunks (map-reduce); a model trained for longer contexts; or more GPU memory"))
        rec.answers = answers
        if won is not None and not won.policy_gates:
            return rec
        shorter = shorter or rec
    tied = answers.constraints.backend or answers.constraints.quantization
    if tied:
        free = answers.model_copy(update={"constraints": answers.constraints.model_copy(
            update={"backend": "", "quantization": ""})})
        rec = recommend(free, hardware=hw, probes=probes, knowledge=k)
        if rec.recommendation is not None:
            ties = ", ".join(f"{f}={getattr(answers.constraints, f)}" for f in ("backend", "quantization")
                             if getattr(answers.constraints, f))
            rec.warnings.insert(0, f"nearest plan: your constraint ({ties}) cannot run here "
                                   f"({'; '.join(reasons)}); this plan drops it")
            rec.answers = answers
            return rec
    if answers.model.name:
        rec = recommend(answers.model_copy(update={"model": answers.model.model_copy(update={"name": ""})}),
                        hardware=hw, probes=probes, knowledge=k)
        if rec.recommendation is not None:
            gpus = _gpus_for(k, ranked, hw)
            rec.warnings.insert(0, f"nearest plan: {answers.model.name} cannot run here ({'; '.join(reasons)}); "
                                   f"this plan picks another model" + (f"; {gpus}" if gpus else ""))
            rec.answers = answers
            return rec
    return shorter


def _gpus_for(k, ranked: list[Ranked], hw: Hardware) -> str:
    """What more GPUs would let the named model run (tensor parallel of the smallest weights)."""
    smallest = min((r.est for r in ranked), key=lambda e: e.memory.weights_gb * e.tensor_parallel, default=None)
    if smallest is None:
        return ""
    mem = smallest.memory
    total = mem.weights_gb * smallest.tensor_parallel + mem.overhead_gb
    need = 1
    while need < 64 and total / need + mem.overhead_gb >= mem.usable_gb * k.value("vram_alert_warning"):
        need *= 2
    return (f"{smallest.model.id} at {smallest.quant} ({total:.0f} GB of weights) would need {need} x "
            f"{hw.spec.name} with tensor parallel") if need > hw.count else ""


def _nothing_fits(answers: Answers, hw: Hardware, ranked: list[Ranked]) -> list[str]:
    reasons = []
    for r in ranked[:20]:
        for c in r.rejects:
            reasons.append(f"{r.est.model.id} on {r.est.backend} at {r.est.quant}: {c.because} [{c.source}]")
    head = (f"nothing can run: every candidate on {hw.count} x {hw.spec.name} ({round(hw.vram_gb, 1):g} GB) "
            f"is rejected for these answers; the reasons:")
    return [head] + list(dict.fromkeys(reasons))[:5]


def _playbooks(k, plan_trace: Trace) -> list[PlaybookRef]:
    ids = sorted({c.value for c in plan_trace.conclusions if c.effect == "playbook"})
    return [PlaybookRef(id=i, title=k.playbooks[i].title) for i in ids]
