"""recommend(): answers + hardware + probes + knowledge -> facts -> rules -> Recommendation.

The one call behind both front ends. Stage 1 asserts one fact per candidate
(model x backend x quantization) and lets the rulesets reject, gate, penalise or
annotate it; Python only ranks what the rules left. Stage 2 asserts the chosen
plan (and every figure it leans on) for playbooks, SLO bands and plausibility.
"""

from __future__ import annotations

import math

from advisor.answers import check_names, with_workload_defaults
from advisor.domain import Answers, Hardware, LoadFigures, Plan, PlaybookRef, Predicted, ProbeResult, Recommendation, RuleFiring
from advisor.hardware import resolve_hardware
from advisor.knowledge import load_knowledge
from advisor.errors import AdvisorError
from advisor.models import resolve_models
from advisor.predict import Estimate, estimate
from advisor.backends import backend as backend_of, backends, servable_quantizations
from advisor.rules.base import Conclusion, Trace
from advisor.rules.facts import CandidateFact
from advisor.rules.engine import consult, consult_candidates

RANKING = RuleFiring(
    rule="advisor.ranking",
    source="advisor policy: fewest policy-gate failures (risk tier, quality, compile policy), then fewest "
           "performance-gate failures, then fewest penalties, then the largest model, "
           "then the higher-precision quantization, then the lowest p95 latency",
    because="",
)
ADVICE = "advice."  # rules/advice.py: what the winner's own verdicts mean for the user
HEADLINE = ("backend", "quantization", "model", "max_context_tokens", "concurrency", "replicas", "tensor_parallel")


def recommend(answers: Answers, hardware: Hardware | None = None, probes: list[ProbeResult] | None = None,
              knowledge=None) -> Recommendation:
    return _advise(answers, hardware, probes, knowledge, nearest=True)[0]


def _advise(answers: Answers, hardware: Hardware | None, probes: list[ProbeResult] | None, knowledge,
            nearest: bool) -> tuple[Recommendation, "Ranked | None"]:
    """The recommendation, and the ranked candidate it rests on (None when there is none)."""
    k = knowledge or load_knowledge()
    check_names(answers, k)
    answers = with_workload_defaults(answers, k)
    hw = hardware or resolve_hardware(answers, k)
    probes = list(probes or [])
    models = resolve_models(answers, k)
    candidates = _candidates(k, answers, hw, models, probes)
    facts = [_fact(k, answers, hw, i, est) for i, est in enumerate(candidates)]
    trace = consult_candidates(k, facts)
    ranked = _rank(candidates, trace)

    rec = Recommendation(recommendation=None, answers=answers, hardware=_hardware_summary(hw),
                         probes=_probe_summary(probes))
    viable = [r for r in ranked if not r.rejects]
    if not viable:
        near = _nearest_plan(k, answers, hw, probes, ranked) if nearest else None
        if near is not None:
            return near, None
        rec.no_plan_because = "nothing can run here for these answers"
        rec.warnings = _nothing_fits(answers, hw, ranked)
        rec.alternatives = [_plan(k, answers, r, alt=True) for r in _diverse(ranked, None)[:4]]
        return rec, None

    best = viable[0]
    tied = answers.constraints.backend or answers.constraints.quantization
    if best.policy_gates and answers.model.name and not tied:
        return _named_model_breaks_policy(k, answers, hw, probes, rec, best), best
    ties = ", ".join(f"{f}={getattr(answers.constraints, f)}" for f in ("backend", "quantization")
                     if getattr(answers.constraints, f))
    plan_fact = facts[candidates.index(best.est)].as_plan(constraints=ties)
    plan_trace = consult(k, "plan", [plan_fact] + _verdict_facts(best)
                         + _figure_facts(k, answers, hw, best, probes))
    plan = _plan(k, answers, best, plan_trace=plan_trace)
    rec.recommendation = plan
    rec.alternatives = [_plan(k, answers, r, alt=True, winner=best) for r in _diverse(ranked, best)]
    rec.rules_fired = _fired(best, plan_trace)
    rec.warnings = _warnings(best, plan_trace)
    rec.playbooks = _playbooks(k, plan_trace)
    return rec, best


# ------------------------------------------------------------------ candidates and facts
def _candidates(k, answers: Answers, hw: Hardware, models, probes) -> list[Estimate]:
    want_backend = answers.constraints.backend
    want_quant = answers.constraints.quantization
    out = []
    for model in models:
        for backend, b in backends(k).items():
            if want_backend and backend != want_backend:
                continue
            # what this backend can serve the model at, in the form it comes in (catalog, HF folder, GGUF)
            servable = servable_quantizations(model, b)
            if model.origin == "catalog" and want_quant:
                quants = [want_quant]  # a constraint the backend lacks is judged (and explained) by the rules
            elif want_quant:
                quants = [q for q in servable if q == want_quant]
            else:  # bf16 costs and runs as fp16 does; it is offered only to a user who asks for it
                quants = [q for q in servable if q != "bf16" or model.file_quantization == "bf16"]
            for quant in quants:
                if quant in k.quant:
                    out.append(estimate(k, answers, hw, model, backend, quant, probes))
    if not out and models and models[0].origin != "catalog":
        raise _unservable(k, models[0], want_backend, want_quant)
    return out


def _unservable(k, model, want_backend: str, want_quant: str) -> AdvisorError:
    """One line: the named file or folder cannot be served the way the constraints (or anything) ask."""
    ways = [f"{name} at {', '.join(qs)}" for name, b in backends(k).items()
            if (qs := [q for q in servable_quantizations(model, b) if q in k.quant])]
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


def _gate_for(k, answers: Answers):
    """P.2: the medical-legal gate for high risk, else the workload's application gate."""
    for g in k.gates:
        if answers.risk == "high" and g.risk == "high":
            return g
    for g in k.gates:
        if answers.workload in g.workloads:
            return g
    return None


def _fact(k, answers: Answers, hw: Hardware, i: int, e: Estimate) -> CandidateFact:
    answers = with_workload_defaults(answers, k)
    m, q, b = e.model, k.quant[e.quant], backend_of(k, e.backend)
    w = k.workloads[answers.workload]
    n = e.load.seqs  # sequences in flight: the user's concurrency, or an offline batch's size
    high = n >= w.high_n_from
    compat = k.compat.get(m.id)
    gate = _gate_for(k, answers)
    mmlu = m.mmlu if m.mmlu is not None else -1.0
    return CandidateFact(
        id=str(i), model=m.id, params_b=m.params_b, origin=m.origin,
        backend=e.backend, quant=e.quant, q_bits=q.bits_per_weight,
        batching=b.batching, continuous=int(b.continuous), pages_kv=int(b.pages_kv),
        compiled_prefill=int(b.compiled_prefill), prefill_activations=int(b.prefill_activations),
        q_risk_ok=int(answers.risk in q.risk_tiers),
        q_backend_ok=int(e.quant in b.row.quantizations),
        q_min_cc=q.min_compute_capability if q.min_compute_capability is not None else -1.0,
        gpu_cc=hw.compute_capability if hw.compute_capability is not None else -1.0,
        os_ok=int(hw.os in b.row.os),
        in_compat=int(compat is not None and e.quant in compat.passes),
        compat_fail=int(compat is not None and e.quant in compat.fails),
        pref_backend=w.backend_high_n if high else w.backend_low_n,
        pref_quant=w.quant_high_n if high else w.quant_low_n, phase=w.dominant_phase,
        mmlu=mmlu, eff_mmlu=round(mmlu - q.mmlu_delta_pp, 2) if mmlu >= 0 else -1.0,
        gate_min=gate.min_mmlu if gate is not None and gate.min_mmlu is not None else -1.0,
        gate_name=gate.application if gate is not None else "none", max_context=m.max_context,
        risk=answers.risk, workload=answers.workload, n=n, os=hw.os,
        context=answers.context_tokens + answers.output_tokens, output=answers.output_tokens,
        slo_ttft=answers.slo.ttft_ms, slo_p95=answers.slo.p95_latency_s,
        slo_decode=answers.slo.min_decode_tok_s,
        requests_per_day=answers.requests_per_day, deadline_hours=answers.deadline_hours,
        need_gb=e.weights_gb + e.overhead_gb, weights_gb=e.weights_gb, usable_gb=e.usable_gb,
        fp16_gb=e.fp16_gb, fp16_need_gb=e.fp16_need_gb, q8_need_gb=e.q8_need_gb, usable_all_gb=e.usable_gb * hw.count, tp=e.tp, gpus=hw.count,
        budget=e.budget_tokens, budget_one=e.budget_one, pool_tokens=e.pool_tokens, attn_n2_mb=e.attention_n2_gb * 1024,
        stored_bound=e.stored_bound, vram_frac=e.vram_frac, ttft_n_ms=e.ttft_at_n_ms, p95_s=e.p95_s,
        ttft_lo_ms=e.ttft_at_n_ms * (1 - e.ttft_band), p95_lo_s=e.p95_s * (1 - max(e.ttft_band, e.decode_band)),
        decode_hi=e.decode_per_user * (1 + e.decode_band), band_pct=round(100 * e.ttft_band),
        mode=e.load.mode, burst_ttft_ms=e.load.burst_ttft_ms, capacity_rps=e.load.capacity_rps,
        decode_pu=e.decode_per_user, total=e.total_tok_s, amdahl=e.amdahl_eff,
        replicas_needed=e.replicas_needed, replicas_possible=e.replicas_possible,
    )


class Ranked:
    def __init__(self, est: Estimate, conclusions: list[Conclusion]):
        self.est = est
        self.conclusions = conclusions
        self.rejects = [c for c in conclusions if c.effect == "reject"]
        self.gates = [c for c in conclusions if c.effect == "gate"]
        # Breaking policy (risk tier, quality, compile policy) is worse than missing a
        # performance target: when nothing passes everything, keep the policy.
        self.policy_gates = [c for c in self.gates if c.kind == "policy"]
        self.penalty = sum(c.weight for c in conclusions if c.effect == "penalty")

    def key(self):
        e = self.est
        return (len(self.rejects), len(self.policy_gates), len(self.gates), self.penalty,
                -_effective_size(e.model), -e.bits, e.p95_s)


def _rank(cands: list[Estimate], trace: Trace) -> list[Ranked]:
    by_id: dict[str, list[Conclusion]] = {}
    for c in trace.conclusions:
        by_id.setdefault(c.fact_id, []).append(c)
    ranked = [Ranked(e, by_id.get(str(i), [])) for i, e in enumerate(cands)]
    ranked.sort(key=Ranked.key)
    return ranked


# ------------------------------------------------------------------ the plan
def _max_ctx(r: Ranked) -> int:
    return max(min(r.est.budget_tokens, r.est.model.max_context), 0)


def _effective_size(m) -> float:
    """The size the ranking prefers: a dense model's parameters; a mixture of experts' geometric
    mean of total and active (a common rule of thumb for MoE quality: Mixtral 8x7B ~ 24B dense)."""
    return math.sqrt(m.params * m.active_params) if m.experts else m.params


def _plan(k, answers: Answers, r: Ranked, alt: bool = False, plan_trace: Trace | None = None,
          winner: Ranked | None = None) -> Plan:
    e = r.est
    load = _load_figures(answers, e, simulate=not alt)
    needed = e.replicas_needed
    if load.mode == "rate" and load.max_rate_rps:  # the simulated SLO capacity sizes the replicas
        needed = max(needed, math.ceil(answers.arrival_rate_rps / load.max_rate_rps))
    replicas = max(1, min(needed, max(e.replicas_possible, 1)))
    if load.mode == "rate" and replicas != max(1, min(e.replicas_needed, max(e.replicas_possible, 1))):
        # each replica now carries less than the figures assumed: they stay a safe upper bound
        load.rate_rps = round(answers.arrival_rate_rps / replicas, 3)
    origins = dict(e.origins)
    pred = Predicted(
        vram_gb=round(e.vram_gb, 2), ttft_ms=round(e.ttft_at_n_ms, 1),
        decode_tok_s_per_user=round(e.decode_per_user, 1), total_tok_s=round(e.total_tok_s * replicas, 1),
        p95_latency_s=round(e.p95_s, 2), origins=origins,
        bands={"ttft_ms": e.ttft_band, "p95_latency_s": max(e.ttft_band, e.decode_band),
               "decode_tok_s_per_user": e.decode_band, "total_tok_s": e.decode_band,
               "vram_gb": k.value("band.vram")},
        load=load,
    )
    plan = Plan(
        backend=e.backend, quantization=e.quant, model=e.model.id, max_context_tokens=_max_ctx(r),
        concurrency=e.load.seqs, replicas=replicas, tensor_parallel=e.tp, predicted=pred,
    )
    if alt:
        plan.lost_because = _lost_because(r, winner)
        return plan
    # The rule that decided each headline field: the plan stage's explanation first, else a
    # candidate-stage judgement on the winner, else the ranking itself.
    decided = (plan_trace.conclusions if plan_trace else []) + r.conclusions
    plan.set_by = {f: next((c.rule for c in decided if f in c.sets), RANKING.rule) for f in HEADLINE}
    plan.settings = backend_of(k, e.backend).settings(answers, e, plan.max_context_tokens)
    return plan


def _load_figures(answers: Answers, e: Estimate, simulate: bool) -> LoadFigures:
    """The load's figures; for the plan itself also the scheduler simulation (advisor/load.py)
    at this rate and the largest rate one replica holds within the SLO."""
    ld = e.load
    fig = LoadFigures(mode=ld.mode, sequences=ld.seqs, rate_rps=round(ld.rate_rps, 3),
                      ttft_p95_ms=round(ld.ttft_p95_ms, 1), e2e_p95_s=round(ld.e2e_p95_s, 2),
                      burst_last_ttft_ms=round(ld.burst_ttft_ms, 1), capacity_rps=round(ld.capacity_rps, 3),
                      steady=ld.steady)
    if ld.mode == "concurrent" and answers.think_time_s > 0:
        fig.think_time_s = answers.think_time_s
        fig.in_flight = round(min(ld.rate_rps * ld.e2e_mean_s, ld.seqs), 2)
    if not simulate or ld.mode == "batch":
        return fig
    from advisor import load as queue

    ctx, out = answers.context_tokens, answers.output_tokens
    eng = e.costs.engine(ld.seqs)
    fig.max_rate_rps = round(queue.max_rate(eng, ctx, out, slo_ttft_p95_ms=answers.slo.ttft_ms,
                                            slo_e2e_p95_s=answers.slo.p95_latency_s, requests=500,
                                            rel_tol=0.03), 3)
    if ld.mode == "rate" and ld.steady:
        sim = queue.simulate(eng, queue.Workload(prompt_tokens=ctx, output_tokens=out, rate_rps=ld.rate_rps,
                                                 requests=1000, seed=0))
        fig.simulated = {"ttft_p50_ms": round(sim.ttft_p50_ms, 1), "ttft_p95_ms": round(sim.ttft_p95_ms, 1),
                         "e2e_p50_s": round(sim.e2e_p50_s, 2), "e2e_p95_s": round(sim.e2e_p95_s, 2)}
    return fig


def _lost_because(r: Ranked, winner: Ranked | None) -> list[str]:
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
    if _effective_size(e.model) < _effective_size(w.model):
        return [f"smaller model ({_effective_size(e.model) / 1e9:.3g}B vs {_effective_size(w.model) / 1e9:.3g}B"
                f"{' effective' if e.model.experts or w.model.experts else ''}) with the same checks passed"]
    if e.bits < w.bits:
        return [f"lower precision ({e.quant} vs {w.quant}) with the same checks passed"]
    return [f"slower: p95 {e.p95_s:.1f} s vs {w.p95_s:.1f} s"]


def _diverse(ranked: list[Ranked], best: Ranked | None, limit: int = 5) -> list[Ranked]:
    """The best candidate per backend, then the next-best quantization of the winner's backend."""
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


def _figure_facts(k, answers: Answers, hw: Hardware, r: Ranked, probes: list[ProbeResult]) -> list[dict]:
    """Figures the plan leans on: stored measurements of this model/backend, and probe results."""
    facts = []
    e = r.est
    groups: dict[tuple, list] = {}
    for m, v in zip(k.measurements, physics.verdicts(k)):
        if m.model == e.model.id and _family(k, m.backend) == _family(k, e.backend) and not v.plausible:
            groups.setdefault((m.kind, m.backend, m.source), []).append((m, v))
    for i, ((kind, backend, source), rows) in enumerate(groups.items()):
        # One warning per stored series: the longest context shows the gap best.
        m, v = max(rows, key=lambda mv: mv[0].context_tokens)
        lo, hi = min(r[0].context_tokens for r in rows), m.context_tokens
        facts.append({"kind": "figure", "id": f"m{i}", "plausible": 0, "source": source, "value": m.value,
                      "what": f"{len(rows)} {backend} {kind} figure(s) for {m.model} at {lo:,}-{hi:,} tokens",
                      "reason": v.reason, "table_value": -1, "table_source": ""})
    for j, p in enumerate(probes):
        for what, measured, table, src in _probe_vs_table(k, e, p):
            facts.append({"kind": "figure", "id": f"p{j}{what}", "what": what, "value": measured,
                          "plausible": 1, "reason": "", "source": f"probe on {p.gpu or 'this GPU'}",
                          "table_value": table, "table_source": src})
    for what, (measured, table, src) in e.replaced.items():
        facts.append({"kind": "figure", "id": f"r{what}", "what": what, "value": measured, "plausible": 1,
                      "reason": "", "source": "probe on this GPU", "table_value": table, "table_source": src})
    row = k.context.get(e.model.id)
    if row is not None and backend_of(k, e.backend).family == _family(k, row.backend):
        from advisor import physics

        kv_mb = e.model.kv_bytes_per_token() / physics.MIB
        logits_mb = physics.logits_gb_per_token(e.model) * 1024
        facts.append({"kind": "slope", "id": "tr127", "model": e.model.id, "table_slope": row.slope_mb_per_token,
                      "kv_mb": round(kv_mb, 3), "logits_mb": round(logits_mb, 3), "source": row.source,
                      "n2_bytes": k.value("attention.n2_bytes_per_head.math")})
    for n_, note in enumerate(e.notes):
        facts.append({"kind": "figure", "id": f"n{n_}", "what": "probe figure", "value": 0, "plausible": 0,
                      "reason": note, "source": "probe", "table_value": -1, "table_source": ""})
    return facts


def _family(k, backend: str) -> str:
    """The engine family a stored measurement's backend belongs to (ollama and llama.cpp are one)."""
    b = backends(k).get(backend)
    return b.family if b is not None else backend


def _verdict_facts(r: "Ranked") -> list[dict]:
    """The winner's candidate-stage verdicts, asserted again for the plan stage: the warning
    rules (rules/advice.py) join the plan on them."""
    return [{"kind": "verdict", "id": f"v{i}", "rule": c.rule, "source": c.source, "effect": c.effect,
             "rule_kind": c.kind, "weight": c.weight, "because": c.because}
            for i, c in enumerate(r.conclusions) if c.effect in ("gate", "penalty")]


def _probe_vs_table(k, e: Estimate, p: ProbeResult):
    """(what, measured, table value, table source) pairs to compare, for this candidate's model."""
    from advisor import physics

    if p.model.lower() not in {e.model.id, e.model.ollama_tag.lower(), e.model.hf_repo.lower()}:
        return []
    out = []
    if p.base_vram_mb:
        table = physics.weights_gb(k, e.model, "fp16" if p.dtype in ("float16", "fp16", "") else "bf16") * 1024
        out.append(("base VRAM (MB)", p.base_vram_mb, table, "weights = params x 2 B (catalog)"))
    if p.kv_bytes_per_token:
        out.append(("KV bytes per token", p.kv_bytes_per_token, e.model.kv_bytes_per_token(),
                    "2 x layers x kv_heads x head_dim x 2 B (catalog)"))
    return out


# ------------------------------------------------------------------ trace, warnings, playbooks
def _fired(r: Ranked, plan_trace: Trace) -> list[RuleFiring]:
    out = [RuleFiring(rule=c.rule, source=c.source, because=c.because)
           for c in r.conclusions + plan_trace.conclusions if c.effect != "playbook"]
    e = r.est
    out.append(RuleFiring(rule=RANKING.rule, source=RANKING.source,
                          because=f"{e.model.id} on {e.backend} at {e.quant} ranked first"))
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
    rec.alternatives.append(_plan(k, answers, best, alt=True, winner=None))
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
    out = answers.output_tokens
    fits = [r for r in ranked if r.rejects and all(c.rule in CONTEXT_REJECTS for c in r.rejects)]
    fits = [r for r in fits if not r.policy_gates] or fits  # within policy (risk tier, quality) when it can
    floor = min(answers.context_tokens, int(k.value("nearest.min_context_tokens")))
    held = sorted({min(r.est.budget_tokens if not backend_of(k, r.est.backend).pages_kv else r.est.budget_one,
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
    smallest = min((r.est for r in ranked), key=lambda e: e.weights_gb * e.tp, default=None)
    if smallest is None:
        return ""
    total = smallest.weights_gb * smallest.tp + smallest.overhead_gb
    need = 1
    while need < 64 and total / need + smallest.overhead_gb >= smallest.usable_gb * k.value("vram_alert_warning"):
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


def _hardware_summary(hw: Hardware) -> dict:
    return {
        "source": hw.source, "gpu": hw.spec.name, "count": hw.count, "vram_gb": hw.vram_gb, "os": hw.os,
        "bandwidth_gb_s": hw.spec.bandwidth_gb_s, "fp16_tflops": hw.spec.fp16_tflops,
        "catalog_source": hw.spec.source, "note": hw.note,
        "devices": [d.model_dump() for d in hw.devices],
    }


def _probe_summary(probes: list[ProbeResult]) -> dict | None:
    if not probes:
        return None
    return {"results": [p.model_dump(exclude={"curve"}) for p in probes]}
