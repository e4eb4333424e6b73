"""One candidate (model x engine x quantization) through the stages: memory, speed, replicas, load.

Each figure comes from the roofline times an efficiency stored in knowledge/calibration.toml,
from NVIDIA's measured tables, or from a probe on this machine when one matches; the Estimate's
`origins` say which, with the source. The rules judge these numbers; they never compute them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

from advisor.answers import demand, with_workload_defaults
from advisor.domain import Answers, Hardware, LoadFigures, ModelSpec, ProbeResult
from advisor.engines import Engine, engine
from advisor.hardware import resolve_hardware
from advisor.knowledge import Knowledge
from advisor.load import Demand, Load, Scheduler, StepCosts
from advisor.load.inflight import InFlight, in_flight
from advisor.memory import memory
from advisor.sizing import MANY, replicas, users_per_replica
from advisor.speed import speed
from advisor.stages import Estimate


def estimate(k: Knowledge, demand: Demand, hw: Hardware, background_gb: float, model: ModelSpec, eng: Engine,
             quant: str, probes: list[ProbeResult] | None = None) -> Estimate:
    """The Estimate of one candidate for this demand on this hardware.

    Tensor parallel counts the KV of the load as well as the weights: the smallest split whose
    weights fit is tried first, and a larger one (while the GPUs given hold it) when the KV the
    load keeps in flight does not fit beside the weights on each GPU."""
    probe = probe_for(probes, model, eng)
    first = _at_tp(k, demand, hw, background_gb, model, eng, quant, probe, None)
    est, tp = first, first.tensor_parallel
    while eng.splits_tensor_parallel and not _kv_fits(k, est) and tp * 2 <= hw.count:
        tp *= 2
        est = _at_tp(k, demand, hw, background_gb, model, eng, quant, probe, tp)
    # the largest split the GPUs hold when none fits: the rules say what it lacks
    return est if est is first else dataclasses.replace(est, tp_weights=first.tensor_parallel)


def _kv_fits(k: Knowledge, e: Estimate) -> bool:
    """The weights, the runtime and the KV of the sequences the load keeps in flight fit each GPU
    (the context budget's margin and the VRAM hard stop), none of them held back for want of KV."""
    wanted = e.in_flight.high if e.in_flight is not None and e.demand.mode == "concurrent" else 0
    return (e.memory.base_gb < e.memory.usable_gb and e.budget_tokens >= e.demand.seq_tokens
            and e.need_gb <= e.memory.total_gb * k.value("vram_alert_hard_stop") and e.kv_seqs >= wanted)


def _at_tp(k: Knowledge, demand: Demand, hw: Hardware, background_gb: float, model: ModelSpec, eng: Engine,
           quant: str, probe: ProbeResult | None, tp: int | None) -> Estimate:
    """The candidate at one tensor parallel (None: the smallest the weights need)."""
    mem = memory(k, eng, model, quant, hw, background_gb, demand.prompt_tokens, demand.seq_tokens, probe, tp)
    tp = mem.tensor_parallel
    spd = speed(k, eng, model, hw.spec, quant, tp, demand.prompt_tokens, demand.mean_context, hw.os, probe)

    # The sequences each replica runs at once (the engine's --max-num-seqs / -np / slots): the high
    # percentile of the load's in-flight count (advisor/load/inflight.py), never a pool size the user
    # did not give; an offline batch keeps its throughput-optimal batch within what the KV pool holds.
    sched = eng.scheduler(model)
    q = k.value("load.in_flight_percentile")
    util = k.value("load.max_utilisation")
    pool = sched.seqs(mem.pool_seqs(demand.seq_tokens), int(k.value("batch.max_seqs")))
    batch = sched.batch_seqs(spd.costs, demand, pool) if demand.mode == "batch" else 0
    seen: dict[int, tuple[Load, InFlight]] = {}

    def sized(r: int) -> tuple[Load, InFlight]:  # the one load model at r replicas, each r evaluated once
        if r not in seen:
            seen[r] = _sized(sched, spd.costs, demand, r, pool, batch, q, cap, util)
        return seen[r]

    # a paged pool runs the users' sequences it holds and queues the rest (vLLM admits by free blocks):
    # a closed loop larger than the pool gets the pool's count, and waits for a slot in the figures
    cap = max(mem.pool_seqs(demand.seq_tokens), 1) if eng.pages_kv else 0
    reps = replicas(demand, sched, spd.costs, batch or pool, hw.count // max(tp, 1), k.value("load.max_utilisation"),
                    lambda r: sized(r)[0])
    load, flight = sized(reps.used)
    if not load.steady and demand.mode == "rate" and reps.used < reps.needed < MANY:
        # the GPUs given cannot carry the rate: each replica runs what one holds in the plan that can
        # (the replicas it needs), saturated here, never the whole pool's worth of slots
        load, flight = sized(reps.needed)
        load = sched.figures(spd.costs, demand, load.seqs, reps.used)

    # the KV of every sequence the engine runs at once
    kv_seqs = load.seqs
    need = mem.need_gb(kv_seqs, demand.prompt_tokens, demand.seq_tokens)
    context_gb = need - mem.base_gb  # KV (and transient activations) for the ask
    if mem.served_gb is not None and mem.claim is None:  # the running server's own reading is the need
        need = mem.served_gb
    budget = mem.budget(kv_seqs)

    return Estimate(
        model=model, engine=eng, quant=quant, bits=k.quant[quant].bits_per_weight, hardware=hw, demand=demand,
        memory=mem, speed=spd, scheduler=sched, load=load, replicas=reps, kv_seqs=kv_seqs, budget_tokens=budget,
        budget_one=mem.budget_one(), need_gb=need, vram_gb=mem.held_gb(need), vram_frac=need / mem.total_gb,
        fp16_need_gb=mem.fp16_weights_gb + mem.overhead_gb + context_gb,
        q8_need_gb=mem.q8_weights_gb + mem.overhead_gb + context_gb, in_flight=flight, pool_seqs=pool, tp_weights=tp)


def _sized(sched: Scheduler, costs: StepCosts, demand: Demand, r: int, pool: int, batch: int,
           q: float, cap: int = 0, util: float = 1.0) -> tuple[Load, InFlight]:
    """One replica's figures at r replicas, its sequence limit at the in-flight count's q-quantile.

    The time in system depends on the limit and the limit on the time in system: a few rounds
    settle it (the limit only grows, so they end)."""
    if demand.mode == "batch":
        load = sched.figures(costs, demand, batch, r)
        return load, in_flight(demand, load.e2e_mean_s, q, batch)
    if demand.mode == "rate":  # each replica's share of the rate; queued requests wait for a slot
        share = replace(demand, rate_rps=demand.rate_rps / max(r, 1))
        load = sched.figures(costs, demand, pool, r)
        flight = in_flight(share, load.e2e_mean_s, q)
        if not load.steady:  # the queue never drains: every slot the pool holds is busy
            return load, flight
        load, flight, seqs = _settle(sched, lambda n: sched.figures(costs, demand, n, r), share, load, flight, pool, q)
        # more sequences at once raise what a replica completes: where the in-flight percentile's count
        # leaves the replica past the utilisation line and the KV pool holds more, the engine runs more
        while load.steady and load.rate_rps > util * load.capacity_rps and seqs < pool:
            more = sched.seqs(min(pool, max(seqs + 1, int(seqs * 1.25))), pool)
            if more <= seqs:
                break
            seqs = more
            load = sched.figures(costs, demand, seqs, r)
            flight = in_flight(share, load.e2e_mean_s, q)
        return load, flight
    mine = users_per_replica(demand, r)  # N users: the replica's share of them
    most = min(mine.users, cap) if cap else mine.users  # `cap`: what a paged KV pool holds
    if mine.think_time_s <= 0:  # agents back to back: all in flight, always
        seqs = sched.seqs(most, most)
        load = sched.figures(costs, mine, seqs)
        return load, in_flight(mine, load.e2e_mean_s, q)
    load = sched.figures(costs, mine, sched.seqs(most, most))
    flight = in_flight(mine, load.e2e_mean_s, q)
    load, flight, _ = _settle(sched, lambda n: sched.figures(costs, mine, n), mine, load, flight, most, q)
    return load, flight


def _settle(sched: Scheduler, figures, demand: Demand, load: Load, flight: InFlight, limit: int,
            q: float) -> tuple[Load, InFlight, int]:
    """The sequence limit at the in-flight count's q-quantile, and the figures at it: the time in
    system depends on the limit and the limit on the time in system, so a few rounds settle it
    (the limit only grows, so they end)."""
    seqs = 0
    for _ in range(4):
        want = sched.seqs(min(flight.high, limit), limit)
        if want <= seqs:
            break
        seqs = want
        load = figures(seqs)
        flight = in_flight(demand, load.e2e_mean_s, q)
    return load, flight, seqs


def probe_for(probes: list[ProbeResult] | None, model: ModelSpec, eng: Engine) -> ProbeResult | None:
    """A probe of this model on an engine whose figures transfer to this candidate.

    The transformers plan runs SDPA (settings: attn_implementation), so an SDPA/flash probe is
    preferred; an eager probe's quadratic curve and slower prefill would misstate it.
    """
    names = {model.id.lower(), model.ollama_tag.lower(), model.hf_repo.lower()}
    found = [p for p in probes or [] if p.model.lower() in names and eng.takes_probe(p)]
    found.sort(key=lambda p: p.attention == "eager")  # stable: SDPA/flash first, else the order given
    return found[0] if found else None


def estimate_for(k: Knowledge, answers: Answers, model: ModelSpec | str, backend: str, quant: str,
                 probes: list[ProbeResult] | None = None, hardware: Hardware | None = None) -> Estimate:
    """One candidate straight from the answers (their workload defaults filled here, the hardware
    resolved from them unless given): the stages without the rules, for tests and benches."""
    answers = with_workload_defaults(answers, k)
    hw = hardware or resolve_hardware(answers, k)
    spec = k.model(model) if isinstance(model, str) else model
    return estimate(k, demand(answers), hw, answers.hardware.background_vram_gb, spec, engine(k, backend), quant,
                    probes)


def load_figures(answers: Answers, e: Estimate, with_max_rate: bool) -> LoadFigures:
    """The load's figures for a Plan (the one load model's), with the load as the user gave it
    (N users over the replicas, the in-flight percentile the sequences follow) and, for an offline
    batch, what the plan's replicas complete: the whole batch's time, requests/s and tokens/s.
    For the plan itself also the largest arrival rate one replica holds within the targets."""
    ld = e.load
    fig = LoadFigures(mode=ld.mode, sequences=ld.seqs, rate_rps=round(ld.rate_rps, 3),
                      ttft_p95_ms=round(ld.ttft_p95_ms, 1) if ld.steady else None,
                      e2e_p95_s=round(ld.e2e_p95_s, 2) if ld.steady else None,
                      burst_last_ttft_ms=round(ld.burst_ttft_ms, 1), capacity_rps=round(ld.capacity_rps, 3),
                      steady=ld.steady)
    if ld.mode == "concurrent":
        fig.users = e.demand.users
        if e.demand.think_time_s > 0:
            fig.think_time_s = e.demand.think_time_s
            fig.in_flight = round(min(ld.in_flight, ld.seqs), 2)
    if e.in_flight is not None and ld.mode != "batch" and e.in_flight.high:
        fig.in_flight_high = e.in_flight.high
    if ld.mode == "batch":
        reps = max(e.replicas.used, 1)
        done = ld.capacity_rps * reps
        fig.batch_requests, fig.deadline_hours = e.demand.requests_per_day, e.demand.deadline_hours
        fig.batch_requests_per_s = round(done, 3)
        fig.batch_tokens_per_s = round(done * e.demand.output_tokens, 1)
        fig.batch_hours = round(e.demand.requests_per_day / done / 3600, 3) if done > 0 else None
    if with_max_rate and ld.mode != "batch":
        fig.max_rate_rps = round(e.scheduler.max_rate_rps(e.speed.costs, e.demand, ld.seqs), 3)
    return fig


def seqs_reason(k: Knowledge, e: Estimate) -> tuple[str, str]:
    """(rule, source) behind the sequences each replica runs at once, for the engine's knob
    (Sizing.seqs_rule / seqs_why): the head count only for agents back to back."""
    d = e.demand
    if d.mode == "batch":
        return "scaling.batch-seqs", "offline batch: the throughput-optimal batch within the KV pool (advisor/load/schedulers.py)"
    if d.mode == "concurrent" and d.think_time_s <= 0:
        return "scaling.concurrency", "answers: concurrency (agents back to back: all in flight)"
    how = e.in_flight.how if e.in_flight is not None else ""
    return "scaling.in-flight", f"{how} ({k.source('load.in_flight_percentile')})"
