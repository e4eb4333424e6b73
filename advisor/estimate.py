"""One candidate (model x engine x quantization) through the stages: memory, speed, replicas, load.

Each figure comes from the roofline times an efficiency stored in knowledge/calibration.toml,
from NVIDIA's measured tables, or from a probe on this machine when one matches; the Estimate's
`origins` say which, with the source. The rules judge these numbers; they never compute them.
"""

from __future__ import annotations

from advisor.answers import demand, with_workload_defaults
from advisor.domain import Answers, Hardware, ModelSpec, ProbeResult
from advisor.engines import Engine, engine
from advisor.hardware import resolve_hardware
from advisor.knowledge import Knowledge
from advisor.load import Demand, Load
from advisor.memory import memory
from advisor.sizing import replicas
from advisor.speed import speed
from advisor.stages import Estimate


def estimate(k: Knowledge, demand: Demand, hw: Hardware, background_gb: float, model: ModelSpec, eng: Engine,
             quant: str, probes: list[ProbeResult] | None = None) -> Estimate:
    """The Estimate of one candidate for this demand on this hardware."""
    probe = probe_for(probes, model, eng)
    mem = memory(k, eng, model, quant, hw, background_gb, demand.prompt_tokens, demand.seq_tokens, probe)
    tp = mem.tensor_parallel
    spd = speed(k, eng, model, hw.spec, quant, tp, demand.prompt_tokens, demand.mean_context, hw.os, probe)

    # Load as the user described it, on the engine's scheduler: the sequences it runs at once are
    # what its KV pool holds (an arrival rate, an offline batch's best batch) or the N users.
    sched = eng.scheduler(model)
    pool = sched.seqs(mem.pool_seqs(demand.seq_tokens), int(k.value("batch.max_seqs")))
    if demand.mode == "batch":
        seqs = sched.batch_seqs(spd.costs, demand, pool)
    elif demand.mode == "rate":
        seqs = pool
    else:
        seqs = demand.users
    seen: dict[int, Load] = {}

    def figures(r: int) -> Load:  # the one load model, each split of the rate evaluated once
        if r not in seen:
            seen[r] = sched.figures(spd.costs, demand, seqs, r)
        return seen[r]

    reps = replicas(demand, sched, spd.costs, seqs, hw.count // max(tp, 1), k.value("load.max_utilisation"), figures)
    load = figures(reps.used)

    # the KV of every sequence the engine runs at once: N users, what an arrival rate's pool holds, a batch
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
        q8_need_gb=mem.q8_weights_gb + mem.overhead_gb + context_gb)


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
