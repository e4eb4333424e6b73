"""The facts the rules reason over: typed, frozen, one definition each, and how an Estimate becomes one.

A candidate fact carries the numbers (advisor/estimate.py: one field per Estimate figure, under
the same name), the knowledge look-ups (what the tables say of this model, quantization and
engine) and the user's targets; it carries no verdicts. Whether the weights fit, whether the
context is over budget, whether FP16 fits with the margin: those comparisons are the rules'
(rules/*.py). The plan stage adds the figures the winner leans on (stored measurements, probe
readings), the winner's own verdicts, and TR127's slope where it applies.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from advisor import physics
from advisor.answers import load_conflicts
from advisor.domain import Answers, ProbeResult
from advisor.knowledge import GateRow, Knowledge
from advisor.rules.base import Conclusion
from advisor.stages import Estimate

_FROZEN = ConfigDict(frozen=True, extra="forbid")
# durable-rules needs finite numbers: a figure that never settles is held at a number no target passes
NEVER_MS = 1e12
NEVER_S = 1e9


class CandidateFact(BaseModel):
    """One deployment candidate (model x engine x quantization) as the rules see it."""

    model_config = _FROZEN

    kind: Literal["cand", "plan"] = "cand"
    id: str
    # the candidate
    model: str
    params_b: float
    origin: str
    backend: str
    quant: str
    q_bits: float
    # the engine's behaviour (advisor/engines), never its name
    continuous: int  # continuous batching: new requests join the running steps
    slots: int  # fixed slots with an Amdahl share each (Ollama)
    pages_kv: int
    compiled_prefill: int
    prefill_activations: int
    # knowledge look-ups: what the tables say of this combination
    q_min_cc: float  # the compute capability its kernels need (-1: any)
    gpu_cc: float  # this GPU's compute capability (-1: unknown)
    phase: str  # the workload's dominant phase
    mmlu: float
    eff_mmlu: float
    gate_min: float
    gate_name: str
    max_context: int
    # the user's ask
    risk: str
    workload: str
    seqs: int  # sequences each replica runs at once (the load model's)
    os: str
    seq_tokens: int  # prompt + output per sequence
    output: int
    slo_ttft: float
    slo_p95: float
    slo_decode: float
    # 1: the workload's default target (the user left it blank): it ranks plans, it does not block one
    slo_ttft_default: int = 0
    slo_p95_default: int = 0
    requests_per_day: int
    deadline_hours: float
    tied: int = 0  # the user tied backend or quantization (constraints)
    constraints: str = ""  # the ties, as "backend=vllm, quantization=fp16"
    current_backend: str = ""  # what serves the model today (answers.current_backend; "" = nothing yet)
    current_slots: int = 0  # 1: today's engine batches fixed slots (its object's scheduler, e.g. Ollama's)
    users: int = 1  # the closed loop's head count (the load model's demand; not the sequences in flight)
    think_time_s: float = 0.0  # each user's pause between turns (0: agents back to back)
    in_flight_mean: float = -1.0  # the load's mean in-flight count on one replica (-1: it never settles)
    in_flight_high: int = 0  # its high percentile (load.in_flight_percentile), what `seqs` follows
    in_flight_how: str = ""  # advisor/load/inflight.py's words for it
    pool_seqs: int = 0  # sequences of the typical length the KV pool holds
    load_ignored: str = ""  # load inputs the demand does not use, and which wins (advisor/answers.py load_conflicts)
    replicas_used: int = 1  # the replicas the plan runs (advisor/sizing.py)
    tp_for_kv: int = 0  # 1: tensor_parallel is larger than the weights alone need, for the load's KV
    # the numbers (advisor/stages.py Estimate)
    base_gb: float  # weights + fixed overhead per GPU
    weights_gb: float
    usable_gb: float  # per GPU after other tenants
    fp16_gb: float  # the model's FP16 weights
    fp16_need_gb: float  # per GPU, this deployment at 16 bits (weights + overhead + KV for the ask)
    q8_need_gb: float  # the same at 8 bits
    usable_all_gb: float  # usable on every GPU together
    tensor_parallel: int
    gpus: int
    budget_tokens: int  # safe context tokens per sequence
    budget_one: int  # safe context of one sequence alone (a paged pool's longest request)
    pool_tokens: int = 0  # the engine's own KV pool, all sequences together (0: the advisor's margin sizes it)
    attn_n2_mb: float  # MB per token^2 of attention score matrices the budget assumes (0: a linear kernel)
    stored_bound: int  # a stored measurement's safe budget for this very setup (-1: none)
    vram_frac: float
    ttft_p95_ms: float  # p95 TTFT under the described load (steady state)
    e2e_p95_s: float  # p95 end to end
    decode_per_user: float
    # the pessimistic ends of the bands (calibration residuals, else assumed): a target the point
    # estimate misses fails its gate; one met by the point estimate but not the band's far edge is
    # "at risk" (uncertainty is a risk, never an advantage)
    ttft_hi_ms: float
    e2e_p95_hi_s: float
    decode_per_user_lo: float
    band_pct: int  # the prefill band, for the reason's words
    mode: str  # concurrent | rate | batch
    saturated: int  # arrivals outrun what one replica completes: no TTFT or latency settles
    rate_rps: float  # requests per second on one replica
    burst_ttft_ms: float  # the last of N prompts arriving together, shown apart
    capacity_rps: float
    total_tok_s: float
    slot_efficiency: float  # fixed slots: each slot's share of one stream (Amdahl); 1 otherwise
    replicas_needed: int
    replicas_possible: int
    replicas_why: str  # advisor/sizing.py's reason for the replicas it decided

    # the plan stage only: the best-quality candidate that misses nothing but the workload's default
    # targets, when it is a better tier than the plan (advisor/plan.py quality_trade)
    trade: str = ""  # "model on backend at quant"
    trade_quality: float = -1.0
    trade_ttft_ms: float = -1.0
    trade_e2e_s: float = -1.0
    trade_gpus: int = 0  # > 0: the better model needs this many GPUs for the load (replicas x TP)
    trade_why: str = ""  # advisor/sizing.py's reason for those replicas
    quality: float = -1.0  # the plan's served quality (MMLU after the quantization's loss)

    def as_plan(self, constraints: str, **trade) -> CandidateFact:
        return self.model_copy(update={"kind": "plan", "id": "plan", "tied": int(bool(constraints)),
                                       "constraints": constraints, **trade})


class FigureFact(BaseModel):
    """A figure the plan leans on: a stored measurement (judged against the roofline), or a probe's
    reading beside the table's value it replaces."""

    model_config = _FROZEN
    kind: Literal["figure"] = "figure"
    id: str
    what: str
    value: float
    plausible: int
    reason: str = ""
    source: str
    table_value: float = -1
    table_source: str = ""


class VerdictFact(BaseModel):
    """The winner's candidate-stage gate or penalty, asserted again for the plan stage's advice rules."""

    model_config = _FROZEN
    kind: Literal["verdict"] = "verdict"
    id: str
    rule: str
    source: str
    effect: str
    rule_kind: str
    weight: float
    because: str


class PreferenceFact(BaseModel):
    """Appendix F's row for the user's workload, as the rules see it: the backend and quantization
    it recommends below and from `high_n_from` sequences. The preference rules join each candidate
    with it (rules/backend.py, rules/quantization.py): which side of the crossover a candidate is on
    is the rules' decision, made on the candidate's own sequences."""

    model_config = _FROZEN
    kind: Literal["preference"] = "preference"
    id: str = "appendix-f"
    workload: str
    phase: str
    high_n_from: int
    backend_low: str
    backend_high: str
    quant_low: str
    quant_high: str
    source: str


class SlopeFact(BaseModel):
    """TR127's per-token slope for the winner's model, beside its KV and logits bytes."""

    model_config = _FROZEN
    kind: Literal["slope"] = "slope"
    id: str
    model: str
    table_slope: float
    kv_mb: float
    logits_mb: float
    source: str
    n2_bytes: float


class ConcernFact(BaseModel):
    """Asserted by a plan rule (context.near-budget, context.vram-alert-plan) for others to join on."""

    model_config = _FROZEN
    kind: Literal["concern"] = "concern"
    topic: str
    because: str


# ------------------------------------------------------------------ from an Estimate
def gate_for(k: Knowledge, answers: Answers) -> GateRow | None:
    """P.2: the medical-legal gate for high risk, else the workload's application gate."""
    for g in k.gates:
        if answers.risk == "high" and g.risk == "high":
            return g
    for g in k.gates:
        if answers.workload in g.workloads:
            return g
    return None


def candidate_fact(k: Knowledge, answers: Answers, fact_id: int, e: Estimate) -> CandidateFact:
    """The candidate as the rules see it. `answers` have their workload defaults filled."""
    m, q, eng = e.model, k.quant[e.quant], e.engine
    w = k.workloads[answers.workload]
    ld, mem = e.load, e.memory
    sched = e.scheduler
    gate = gate_for(k, answers)
    mmlu = m.mmlu if m.mmlu is not None else -1.0
    hw = e.hardware
    ttft = min(ld.ttft_p95_ms, NEVER_MS) if math.isfinite(ld.ttft_p95_ms) else NEVER_MS
    e2e = min(ld.e2e_p95_s, NEVER_S) if math.isfinite(ld.e2e_p95_s) else NEVER_S
    return CandidateFact(
        id=str(fact_id), model=m.id, params_b=m.params_b, origin=m.origin,
        backend=e.backend, quant=e.quant, q_bits=q.bits_per_weight,
        continuous=int(sched.continuous), slots=int(sched.fixed_slots), pages_kv=int(eng.pages_kv),
        compiled_prefill=int(eng.compiled_prefill), prefill_activations=int(eng.prefill_activations),
        q_min_cc=q.min_compute_capability if q.min_compute_capability is not None else -1.0,
        gpu_cc=hw.compute_capability if hw.compute_capability is not None else -1.0,
        phase=w.dominant_phase,
        mmlu=mmlu, eff_mmlu=round(mmlu - q.mmlu_delta_pp, 2) if mmlu >= 0 else -1.0,
        gate_min=gate.min_mmlu if gate is not None and gate.min_mmlu is not None else -1.0,
        gate_name=gate.application if gate is not None else "none", max_context=m.max_context,
        risk=answers.risk, workload=answers.workload, seqs=ld.seqs, os=hw.os,
        seq_tokens=e.demand.seq_tokens, output=e.demand.output_tokens,
        slo_ttft=e.demand.ttft_slo_ms, slo_p95=e.demand.e2e_slo_s, slo_decode=answers.slo.min_decode_tok_s,
        slo_ttft_default=int("ttft_ms" in answers.slo.defaulted),
        slo_p95_default=int("p95_latency_s" in answers.slo.defaulted),
        requests_per_day=answers.requests_per_day, deadline_hours=answers.deadline_hours,
        current_backend=answers.current_backend, current_slots=_fixed_slots(k, answers.current_backend, m),
        users=e.demand.users, think_time_s=e.demand.think_time_s,
        in_flight_mean=(round(e.in_flight.mean, 3) if e.in_flight is not None and math.isfinite(e.in_flight.mean)
                        else -1.0),
        in_flight_high=e.in_flight.high if e.in_flight is not None else 0,
        in_flight_how=e.in_flight.how if e.in_flight is not None else "", pool_seqs=e.pool_seqs,
        load_ignored="; ".join(load_conflicts(answers)),
        replicas_used=e.replicas.used, tp_for_kv=int(e.tensor_parallel > e.tp_weights),
        base_gb=mem.weights_gb + mem.overhead_gb, weights_gb=mem.weights_gb, usable_gb=mem.usable_gb,
        fp16_gb=mem.fp16_gb, fp16_need_gb=e.fp16_need_gb, q8_need_gb=e.q8_need_gb,
        usable_all_gb=mem.usable_gb * hw.count, tensor_parallel=e.tensor_parallel, gpus=hw.count,
        budget_tokens=e.budget_tokens, budget_one=e.budget_one, pool_tokens=mem.pool_tokens,
        attn_n2_mb=mem.attention_n2_gb * 1024, stored_bound=mem.stored_bound, vram_frac=e.vram_frac,
        ttft_p95_ms=ttft, e2e_p95_s=e2e, decode_per_user=ld.per_user_tok_s,
        ttft_hi_ms=ttft * (1 + e.ttft_band), e2e_p95_hi_s=e2e * (1 + e.p95_band),
        decode_per_user_lo=ld.per_user_tok_s * (1 - e.decode_band), band_pct=round(100 * e.ttft_band),
        mode=ld.mode, saturated=int(not ld.steady), rate_rps=ld.rate_rps, burst_ttft_ms=ld.burst_ttft_ms,
        capacity_rps=ld.capacity_rps, total_tok_s=ld.total_tok_s,
        slot_efficiency=sched.efficiency(ld.seqs),
        replicas_needed=e.replicas.needed, replicas_possible=e.replicas.possible, replicas_why=e.replicas.why,
    )


class TierFact(BaseModel):
    """One row of Appendix P.1 as the rules see it: which risk tiers a quantization is allowed for.
    The risk-tier gate joins each candidate with its quantization's row (rules/quantization.py)."""

    model_config = _FROZEN
    kind: Literal["tier"] = "tier"
    id: str
    quant: str
    high: int
    moderate: int
    low: int
    tier: str
    source: str


class ServesFact(BaseModel):
    """One line of a backend's row (knowledge/backends.toml): it serves a quantization, or runs on an
    OS. The rejections ask that no such line exists for a candidate (rules/backend.py)."""

    model_config = _FROZEN
    kind: Literal["serves", "runs"]
    id: str
    backend: str
    quant: str = ""
    os: str = ""


def serves_facts(k: Knowledge, backends) -> list[ServesFact]:
    """The quantizations and OSes of the backends weighed, from their knowledge rows."""
    out = []
    for name in dict.fromkeys(backends):
        row = k.backends[name]
        out += [ServesFact(kind="serves", id=f"serves:{name}:{q}", backend=name, quant=q) for q in row.quantizations]
        out += [ServesFact(kind="runs", id=f"runs:{name}:{o}", backend=name, os=o) for o in row.os]
    return out


def tier_facts(k: Knowledge) -> list[TierFact]:
    return [TierFact(id=f"tier:{q.quant}", quant=q.quant, tier=q.tier, source=q.source, high=int("high" in q.risk_tiers),
                     moderate=int("moderate" in q.risk_tiers), low=int("low" in q.risk_tiers))
            for q in k.quant.values()]


class CompatFact(BaseModel):
    """One verdict of Appendix P.3 (knowledge/quant_compat.toml): a model at a quantization passed or
    failed the quality check. The P.3 rules join candidates (and the plan) with these."""

    model_config = _FROZEN
    kind: Literal["compat"] = "compat"
    id: str
    model: str
    quant: str
    verdict: Literal["pass", "fail"]
    source: str


def compat_facts(k: Knowledge, model_ids) -> list[CompatFact]:
    """P.3's verdicts for the models weighed, under each model's own id (the table's look-up folds case)."""
    out = []
    for mid in dict.fromkeys(model_ids):
        row = k.compat.get(mid)
        if row is None:
            continue
        verdicts: tuple[tuple[Literal["pass", "fail"], list[str]], ...] = (("pass", list(row.passes)),
                                                                          ("fail", list(row.fails)))
        for verdict, quants in verdicts:
            out += [CompatFact(id=f"p3:{mid}:{q}:{verdict}", model=mid, quant=q, verdict=verdict, source=row.source)
                    for q in quants]
    return out


def preference_fact(k: Knowledge, answers: Answers) -> PreferenceFact:
    w = k.workloads[answers.workload]
    return PreferenceFact(workload=w.workload, phase=w.dominant_phase, high_n_from=w.high_n_from,
                          backend_low=w.backend_low_n, backend_high=w.backend_high_n, quant_low=w.quant_low_n,
                          quant_high=w.quant_high_n, source=f"Appendix {w.section}")


def _fixed_slots(k: Knowledge, backend: str, model) -> int:
    """Whether an engine the user runs today batches fixed slots (asked of its object, not its name)."""
    if backend not in k.backends:
        return 0  # nothing yet, or "other"
    from advisor.engines import engine

    return int(engine(k, backend).scheduler(model).fixed_slots)


def verdict_facts(conclusions: list[Conclusion]) -> list[VerdictFact]:
    """The winner's candidate-stage verdicts, asserted again for the plan stage: the warning rules
    (rules/advice.py) join the plan on them."""
    return [VerdictFact(id=f"v{i}", rule=c.rule, source=c.source, effect=c.effect, rule_kind=c.kind,
                        weight=c.weight, because=c.because)
            for i, c in enumerate(conclusions) if c.effect in ("gate", "penalty")]


def figure_facts(k: Knowledge, e: Estimate, probes: list[ProbeResult]) -> list[FigureFact | SlopeFact]:
    """Figures the plan leans on: stored measurements of this model and engine family that break the
    roofline, probe readings beside the tables, and TR127's slope for the model."""
    facts: list[FigureFact | SlopeFact] = []
    groups: dict[tuple, list] = {}
    for m, v in zip(k.measurements, physics.verdicts(k), strict=True):
        if m.model == e.model.id and _family(k, m.backend) == e.engine.family and not v.plausible:
            groups.setdefault((m.kind, m.backend, m.source), []).append((m, v))
    for i, ((kind, backend, source), rows) in enumerate(groups.items()):
        # One warning per stored series: the longest context shows the gap best.
        m, v = max(rows, key=lambda mv: mv[0].context_tokens)
        lo, hi = min(r[0].context_tokens for r in rows), m.context_tokens
        facts.append(FigureFact(id=f"m{i}", plausible=0, source=source, value=m.value, reason=v.reason,
                                what=f"{len(rows)} {backend} {kind} figure(s) for {m.model} at {lo:,}-{hi:,} tokens"))
    for j, p in enumerate(probes):
        for what, measured, table, src in _probe_vs_table(k, e, p):
            facts.append(FigureFact(id=f"p{j}{what}", what=what, value=measured, plausible=1,
                                    source=f"probe on {p.gpu or 'this GPU'}", table_value=table, table_source=src))
    for what, measured, table, src in e.speed.replaced:
        facts.append(FigureFact(id=f"r{what}", what=what, value=measured, plausible=1, source="probe on this GPU",
                                table_value=table, table_source=src))
    row = k.context.get(e.model.id)
    if row is not None and e.engine.family == _family(k, row.backend):
        facts.append(SlopeFact(id="tr127", model=e.model.id, table_slope=row.slope_mb_per_token,
                               kv_mb=round(e.model.kv_bytes_per_token() / physics.MIB, 3),
                               logits_mb=round(physics.logits_gb_per_token(e.model) * 1024, 3), source=row.source,
                               n2_bytes=k.value("attention.n2_bytes_per_head.math")))
    for n_, note in enumerate(e.speed.notes):
        facts.append(FigureFact(id=f"n{n_}", what="probe figure", value=0, plausible=0, reason=note, source="probe"))
    return facts


def _family(k: Knowledge, backend: str) -> str:
    """The engine family a stored measurement's backend belongs to (ollama and llama.cpp are one)."""
    row = k.backends.get(backend)
    return row.family if row is not None else backend


def _probe_vs_table(k: Knowledge, e: Estimate, p: ProbeResult) -> list[tuple[str, float, float, str]]:
    """(what, measured, table value, table source) pairs to compare, for this candidate's model."""
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
