"""Numbers for one candidate deployment (model x backend x quantization) on this hardware.

Each figure is computed from the roofline (physics.py) times an efficiency stored in
knowledge/calibration.toml, or taken from a probe on this machine when one matches;
`Estimate.origins` says which, with the source. The rules judge these numbers; they
never compute them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from advisor import load as queue
from advisor import aiconfigurator, physics, speed
from advisor.answers import with_workload_defaults
from advisor.backends import Backend, backend as backend_of
from advisor.domain import Answers, Hardware, ModelSpec, ProbeResult, Provenance


@dataclass
class Estimate:
    model: ModelSpec
    backend: str
    quant: str
    tp: int
    weights_gb: float  # per GPU
    overhead_gb: float
    per_token_gb: float  # per GPU, per context token of one sequence
    usable_gb: float  # per GPU, after other tenants
    total_gb: float  # per GPU
    budget_tokens: int  # safe context per sequence at the asked concurrency
    budget_one: int  # safe context of a single sequence (a paged KV pool's longest request)
    vram_gb: float  # predicted per GPU at the asked context and concurrency
    vram_frac: float
    ttft_ms: float  # one prompt alone
    ttft_at_n_ms: float  # mean when N prompts arrive together (prefill is compute-bound)
    decode_single: float  # tok/s, one stream
    decode_per_user: float
    total_tok_s: float
    p95_s: float
    amdahl_eff: float
    replicas_needed: int
    replicas_possible: int
    fp16_gb: float  # the model's FP16 weights (the high-risk rule compares them with the margin)
    # per GPU, the same deployment (TP, context, concurrency) at 16 and at 8 bits: what precision
    # the memory would allow (rules/quantization.py: precision by headroom)
    fp16_need_gb: float
    q8_need_gb: float
    bf16_ok: bool  # the GPU has bf16 tensor cores (compute capability 8.0+)
    load: "Load"  # the load the figures describe (advisor/load.py's model of the scheduler)
    costs: speed.StepCosts
    attention_n2_gb: float  # GiB per token^2 of score matrices when the kernel builds them (0: linear)
    stored_bound: int  # a stored measurement's safe budget for this very setup (-1: none)
    ttft_band: float  # relative uncertainty of the prefill figures (calibration residuals, else assumed)
    decode_band: float
    bits: float
    os: str
    origins: dict[str, Provenance] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # figures a probe replaced: name -> (probe value, table/roofline value, its source)
    replaced: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    pool_tokens: int = 0  # the engine's own KV pool, all sequences together (0: sized by the advisor's margin)
    pool_source: str = ""


def background_gb(answers: Answers, hw: Hardware) -> float:
    dev = hw.devices[0]
    seen = (dev.other_processes_gb or 0.0) if hw.source == "nvml" else 0.0
    return max(answers.hardware.background_vram_gb, seen)


def tensor_parallel_needed(weights_gb: float, usable_gb: float, overhead_gb: float, gpus: int) -> int:
    """Smallest power of two whose shard of the weights leaves room on each GPU (or gpus+1 if none)."""
    tp = 1
    while tp <= max(gpus, 1):
        if weights_gb / tp + overhead_gb < usable_gb * 0.9:
            return tp
        tp *= 2
    return tp


def estimate(k, answers: Answers, hw: Hardware, model: ModelSpec, backend: str, quant: str,
             probes: list[ProbeResult] | None = None) -> Estimate:
    b = backend_of(k, backend)
    answers = with_workload_defaults(answers, k)  # what the user left out: the workload's own
    gpu = hw.spec
    n = answers.concurrency
    ctx = answers.context_tokens
    os_name = hw.os
    origins: dict[str, Provenance] = {}
    notes: list[str] = []

    vram = hw.vram_gb
    usable = vram - background_gb(answers, hw)
    weights_total = physics.weights_gb(k, model, quant)
    overhead, overhead_src = b.overhead_gb()
    tp = tensor_parallel_needed(weights_total, usable, overhead, hw.count)
    if not b.splits_tensor_parallel:
        tp = 1  # e.g. no llama.cpp layer splits planned: one GPU holds the weights or it does not fit
    weights = weights_total / max(tp, 1)

    # Per-token memory: KV cache, plus whole-prompt activations when transformers prefills at once.
    seq = ctx + answers.output_tokens  # the KV cache holds the prompt and the output
    # KV per token of this sequence length (sliding layers capped), split as TP splits KV heads
    # (an MLA latent is held whole on every rank)
    per_token = physics.kv_gb_per_token(model, context=seq) / model.kv_split(tp)
    mem_src = (f"roofline: KV = {model.layers} layers x {model.kv_bytes_per_layer_token():g} B per token"
               + (f" ({model.sliding_layers} sliding layers capped at {model.sliding_window:,} tokens)"
                  if model.sliding_layers else "") + (" (MLA latent)" if model.is_mla else ""))
    activation = 0.0
    if b.prefill_activations:
        activation = physics.activation_gb_per_token(k, model)
        mem_src += f" + activations ({k.source('runtime.activation_bytes_per_token')})"
    base_gb = weights + overhead
    probe = _probe_for(probes, model, b)
    if probe is not None and probe.fit is not None and b.prefill_activations:
        slope_gb = _probe_slope_mb(probe, ctx) / 1024
        base_gb = probe.fit.base_mb / 1024 + k.value("cuda_context_overhead_gb")
        activation, per_token = max(slope_gb - physics.kv_gb_per_token(model), 0.0), physics.kv_gb_per_token(model)
        mem_src = f"probe: {probe.attention or 'sdpa'} peak-memory fit on {probe.gpu or 'this GPU'}"
    elif probe is not None and probe.kv_bytes_per_token and not b.prefill_activations:
        per_token = probe.kv_bytes_per_token / physics.GIB
        mem_src = f"probe: Ollama /api/ps size_vram at two num_ctx on {probe.gpu or 'this GPU'}"

    # Attention that builds the n x n score matrix (eager, SDPA's math fallback) adds a quadratic
    # term for the prompt being prefilled; flash / memory-efficient kernels do not.
    quad, quad_src = (0.0, "")
    if b.prefill_activations and not (probe is not None and probe.fit is not None):
        quad, quad_src = _attention_quadratic(k, model, hw)
        if quad:
            mem_src += f" + attention {quad_src}"
    free_for_context = usable - base_gb
    margin = k.value("context_safety_margin")
    # Ollama/llama.cpp and servers reserve KV for every sequence; activations are transient, one prompt at a time.
    budget = _budget(margin, free_for_context, per_token, n, activation, quad)
    if model.sliding_layers and not quad:  # KV stops growing at the window: invert it exactly
        budget = model.context_for_budget(margin * free_for_context * physics.GIB * model.kv_split(tp),
                                          sequences=n, extra_bytes_per_token=activation * physics.GIB)
    bound = _stored_bound(k, model, hw, b, usable, margin) if quad_src or b.prefill_activations else None
    if bound is not None and not (probe is not None and probe.fit is not None) and bound[0] < budget:
        budget = bound[0]
        mem_src += f"; bounded by {bound[1]}"
    # An engine that sizes its own KV pool (transformers serve) holds what it holds, not the margin's share.
    pool = b.kv_pool(model, quant, free_for_context, base_gb, vram)
    if pool is not None:
        budget = pool[0] // max(n, 1)
        mem_src += f"; KV pool {pool[0]:,} tokens ({pool[1]})"
    need_gb = base_gb + per_token * seq * n + activation * ctx + quad * ctx * ctx
    origins["vram_gb"] = Provenance(
        origin="probe" if mem_src.startswith("probe") else "roofline",
        source=f"weights {weights:.2f} GB ({_weights_src(k, model, quant)}) "
               f"+ overhead ({overhead_src}) + per token ({mem_src})",
    )

    # Step costs: a prefill curve and a decode step per batch size (advisor/speed.py), from the
    # roofline times calibrated coefficients, or scaled to this machine's probe.
    avg_ctx = ctx + answers.output_tokens // 2
    costs, cost_src = speed.step_costs(k, b, model, gpu, quant, tp, avg_ctx, os_name)
    speed_origin = "roofline"
    measured_tables = aiconfigurator.step_costs(b, model, gpu, quant, tp, avg_ctx) if b.row.aiconfigurator else None
    if measured_tables is not None:  # NVIDIA's measured kernel tables for this engine and GPU
        # the calibrated roofline stays beside it as a cross-check the user can read
        roof = (f"; the calibrated roofline says {costs.prefill_ms(ctx):.0f} ms",
                f"; the calibrated roofline says {1e3 / costs.step_ms(1):.1f} tok/s one stream")
        costs, cost_src = measured_tables
        cost_src = {"prefill": cost_src["prefill"] + roof[0], "decode": cost_src["decode"] + roof[1]}
        speed_origin = "aiconfigurator"
    ttft = costs.prefill_ms(ctx)
    ttft_src = f"{speed_origin}: {cost_src['prefill']}"
    ttft_origin = speed_origin
    replaced_ttft = replaced_decode = None
    if probe is not None and probe.ttft:
        got = _probe_ttft(probe, model, ctx)
        if got is not None:
            measured, how = got
            roof = physics.prefill_roofline_ms(model, gpu, quant, ctx)
            if measured >= roof:
                replaced_ttft = (measured, ttft, ttft_src)
                costs = costs.scaled(prefill=measured / ttft)
                ttft, ttft_origin = measured, "probe"
                ttft_src = f"probe on {probe.gpu or 'this GPU'}: {how}"
            else:
                notes.append(f"probe TTFT {measured:.1f} ms beats the {roof:.1f} ms roofline; not used")
    origins["ttft_ms"] = Provenance(origin=ttft_origin, source=ttft_src)

    single = 1e3 / costs.step_ms(1)
    dec_src = f"{speed_origin}: {cost_src['decode']}"
    dec_origin = speed_origin
    if probe is not None and probe.decode_tok_s:
        roof = physics.decode_roofline_tok_s(k, model, gpu, quant, avg_ctx) * max(tp, 1)
        if probe.decode_tok_s <= roof:
            replaced_decode = (probe.decode_tok_s, single, dec_src)
            f = single / probe.decode_tok_s  # the measured single stream; batching keeps the roofline's shape
            costs = costs.scaled(decode=f)
            single, dec_origin = probe.decode_tok_s, "probe"
            dec_src = f"probe: decode tok/s measured on {probe.gpu or 'this GPU'}"
        else:
            notes.append(f"probe decode {probe.decode_tok_s:.1f} tok/s beats the {roof:.1f} tok/s roofline; not used")
    arch = speed.arch_token(gpu)
    ttft_band, ttft_band_src = _band(k, b, ttft_origin, "prefill", arch, quant)
    dec_band, dec_band_src = _band(k, b, dec_origin, "decode", arch, quant)
    ttft_assumed = ttft_origin == "roofline" and speed.assumed(k, b, "prefill", arch, quant)
    dec_assumed = dec_origin == "roofline" and speed.assumed(k, b, "decode", arch, quant)

    # Load as the user described it: N sequences in flight, an arrival rate, or an offline batch.
    budget_one = pool[0] if pool is not None else _budget(margin, free_for_context, per_token, 1, activation, quad)
    ld = _load(k, answers, b, costs, ctx, n, hw, tp, budget_one=budget_one,
               seq=seq, per_token=per_token, activation=activation, free=free_for_context,
               pool_tokens=pool[0] if pool is not None else 0)
    amdahl = 1.0
    if b.batching == "slots":
        amdahl = 1.0 / (costs.amdahl_s * ld.seqs + 1 - costs.amdahl_s)
    origins["decode_tok_s_per_user"] = Provenance(
        origin=dec_origin, source=f"{dec_src}; {ld.per_user_how}; band {dec_band_src}", assumed=dec_assumed)
    origins["total_tok_s"] = Provenance(origin=dec_origin, source=ld.total_how, assumed=dec_assumed)
    origins["ttft_ms"] = Provenance(origin=ttft_origin, source=f"{ttft_src}; {ld.ttft_how}; band {ttft_band_src}",
                                    assumed=ttft_assumed)
    origins["p95_latency_s"] = Provenance(origin=ttft_origin if ttft_origin == dec_origin else "roofline",
                                          source=ld.p95_how, assumed=ttft_assumed or dec_assumed)
    replicas_possible = max(hw.count // max(tp, 1), 0)
    if ld.seqs != n:  # an offline batch holds its batch's KV, not the user's concurrency
        need_gb = base_gb + per_token * seq * ld.seqs + activation * ctx
        budget = pool[0] // ld.seqs if pool is not None else _budget(margin, free_for_context, per_token, ld.seqs,
                                                                        activation, quad)

    fp16 = physics.weights_gb(k, model, "fp16")
    context_gb = need_gb - base_gb  # KV (and transient activations) for the ask
    fp16_need = fp16 / max(tp, 1) + overhead + context_gb
    q8_need = physics.weights_gb(k, model, "q8_0") / max(tp, 1) + overhead + context_gb
    # What the engine holds: an engine that claims memory up front (transformers serve) holds its claim
    # whatever the load; the rules' memory checks still read what the load needs (vram_frac).
    claim = b.claim_gb(base_gb, usable, vram)
    held_gb = claim[0] if claim is not None else need_gb
    if claim is not None:
        origins["vram_gb"] = Provenance(origin="roofline", source=(
            f"{claim[1]}; the asked load needs {need_gb:.1f} GB of it ({origins['vram_gb'].source})"))
    served = (probe.extra or {}).get("server_vram") if probe is not None and not b.prefill_activations else None
    if isinstance(served, dict) and isinstance(served.get("mib"), (int, float)) and served["mib"] > 0:
        # the running server's own GPU memory (NVML, per process): what this engine really holds
        held_gb = served["mib"] / 1024
        if claim is None:
            need_gb = held_gb
        origins["vram_gb"] = Provenance(origin="probe", source=(
            f"probe: NVML memory of the server process on {probe.gpu or 'this GPU'} "
            f"({served.get('method', 'per process')})"))
    return Estimate(
        model=model, backend=backend, quant=quant, tp=tp, weights_gb=weights, overhead_gb=overhead,
        per_token_gb=per_token + activation / max(n, 1), usable_gb=usable, total_gb=vram, budget_tokens=budget,
        budget_one=budget_one,
        attention_n2_gb=quad, stored_bound=bound[0] if bound else -1,
        vram_gb=held_gb, vram_frac=need_gb / vram, ttft_ms=ttft, ttft_at_n_ms=ld.ttft_p95_ms,
        decode_single=single, decode_per_user=ld.per_user, total_tok_s=ld.total, p95_s=ld.e2e_p95_s,
        amdahl_eff=amdahl, replicas_needed=ld.replicas, replicas_possible=replicas_possible,
        load=ld, costs=costs, ttft_band=ttft_band, decode_band=dec_band,
        fp16_gb=fp16, fp16_need_gb=fp16_need, q8_need_gb=q8_need,
        bf16_ok=(gpu.compute_capability or 8.0) >= 8.0,
        bits=k.quant[quant].bits_per_weight, os=os_name, origins=origins, notes=notes,
        replaced={name: v for name, v in (("TTFT (ms)", replaced_ttft), ("decode (tok/s, one stream)", replaced_decode))
                  if v is not None},
        pool_tokens=pool[0] if pool is not None else 0, pool_source=pool[1] if pool is not None else "",
    )


def _band(k, b: Backend, origin: str, figure: str, arch: str, quant: str) -> tuple[float, str]:
    """How far this figure may be off: a probe's repeatability, aiconfigurator's tables' own
    error, else the engine's calibration residuals (or the assumed band)."""
    key = {"probe": "band.probe", "aiconfigurator": "band.aiconfigurator"}.get(origin)
    if key is None:
        return speed.band(k, b, figure, arch, quant)
    return k.value(key), f"±{k.value(key):.0%} ({k.source(key)})"


def _weights_src(k, model: ModelSpec, quant: str) -> str:
    if model.weight_bytes and quant == model.file_quantization:
        return f"the GGUF file's tensors, {model.weight_bytes / 2**30:.2f} GiB at {quant}"
    return f"{model.params_b:g}B x {k.quant[quant].bits_per_weight:g} bit, {k.quant[quant].source}"


def _probe_for(probes: list[ProbeResult] | None, model: ModelSpec, b: Backend) -> ProbeResult | None:
    """A probe of this model on a backend whose figures transfer to this candidate.

    The transformers plan runs SDPA (settings: attn_implementation), so an SDPA/flash probe is
    preferred; an eager probe's quadratic curve and slower prefill would misstate it.
    """
    found = []
    for p in probes or []:
        if p.model.lower() not in {model.id.lower(), model.ollama_tag.lower(), model.hf_repo.lower()}:
            continue
        if b.takes_probe(p):
            found.append(p)
    found.sort(key=lambda p: p.attention == "eager")  # stable: SDPA/flash first, else the order given
    return found[0] if found else None


def _probe_slope_mb(probe: ProbeResult, ctx: int) -> float:
    """Per-token MB at this context from the fitted curve (secant from 0, so eager's n^2 counts)."""
    fit = probe.fit
    return fit.linear_mb_per_token + fit.quadratic_mb_per_token2 * ctx


def _probe_ttft(probe: ProbeResult, model: ModelSpec, ctx: int) -> tuple[float, str] | None:
    """TTFT at ctx from the probe, and how it was got.

    The probe's fitted TTFT curve (`extra.ttft_fit`: launch floor, linear and attention terms
    from batched prefills) extrapolates within 5-9 % at 8x on an H100; scaling the nearest short
    prompt by FLOPs was off by up to +513 % because short prompts are launch-bound
    (bench/results/probe-gpu-h100.md). The FLOPs scaling stays as the fallback for results
    without a fit (older caches, servers).
    """
    fit = (probe.extra or {}).get("ttft_fit")
    if fit:
        from advisor.probes.fit import predict_ttft_ms  # numpy only; imported when a probe is used

        try:
            ms = predict_ttft_ms(fit, ctx)
        except (KeyError, TypeError):
            ms = None
        if ms is not None and ms > 0:
            return ms, f"fitted TTFT curve (floor + linear + attention n^2) at {ctx:,} tokens"
    pts = [t for t in probe.ttft if t.ttft_ms > 0]
    if not pts:
        return None
    t = min(pts, key=lambda p: abs(math.log(p.context_tokens / ctx)))
    ms = t.ttft_ms * physics.prefill_flops(model, ctx) / physics.prefill_flops(model, t.context_tokens)
    return ms, f"median TTFT at {t.context_tokens:,} tokens, scaled by FLOPs to {ctx:,} tokens"


def _budget(margin: float, free_gb: float, per_token_gb: float, n: int, activation_gb: float,
            quad_gb: float = 0.0) -> int:
    """Safe context tokens per sequence with n sequences' KV reserved (activations and a quadratic
    attention term for one prompt at a time): the root of margin x free = b L + q L^2."""
    lin = per_token_gb * n + activation_gb
    room = margin * free_gb
    if room <= 0 or (lin <= 0 and quad_gb <= 0):
        return 0
    if quad_gb <= 0:
        return max(int(room / lin), 0)
    return max(int((-lin + math.sqrt(lin * lin + 4 * quad_gb * room)) / (2 * quad_gb)), 0)


def _attention_quadratic(k, model: ModelSpec, hw: Hardware) -> tuple[float, str]:
    """GiB per token^2 of the n x n score matrices when the setup's attention builds them, and why.

    SDPA with a flash or memory-efficient kernel keeps peak memory linear (H100, DESIGN); TR127's
    Windows curves are quadratic (SDPA's math fallback on Windows builds), and a GPU whose kernels
    can't be known is budgeted for the costly case; a probe on the machine settles it."""
    cc = hw.compute_capability
    if hw.os == "windows":
        key, why = "attention.n2_bytes_per_head.math", "(Windows builds fall back to SDPA's math kernel, TR127)"
    elif cc is None:
        key, why = "attention.n2_bytes_per_head.math", "(the GPU's kernels are unknown: the costly case; a probe settles it)"
    elif cc < k.value("attention.linear_min_compute_capability"):
        key, why = "attention.n2_bytes_per_head.math", f"(compute capability {cc:g} has no memory-efficient SDPA kernel)"
    else:
        return 0.0, ""
    c = k.value(key)
    return c * model.attention_heads / physics.GIB, f"{c:g} B x {model.attention_heads} heads x n^2 {why} ({k.source(key)})"


def _stored_bound(k, model: ModelSpec, hw: Hardware, b: Backend, usable_gb: float, margin: float) -> tuple[int, str] | None:
    """A stored measurement of this very setup (model, GPU, OS, engine family) bounds the budget:
    TR127's safe context (usable - base) / slope x margin (TR127 §14.3), measured on its laptop."""
    row = k.context.get(model.id)
    if row is None or hw.os != "windows" or k.gpu(row.gpu).name != hw.spec.name:
        return None
    from advisor.backends import backend as backend_of

    if backend_of(k, row.backend).family != b.family:
        return None
    safe = int((usable_gb * 1024 - row.base_mb) / row.slope_mb_per_token * margin)
    return max(safe, 0), (f"TR127's measured safe budget on this setup: ({usable_gb:.1f} GB - {row.base_mb:g} MB) / "
                          f"{row.slope_mb_per_token:g} MB/token x {margin:g} ({row.source}, §14.3)")


@dataclass(frozen=True)
class Load:
    """What the described load does on one replica; the figures the gates read."""

    mode: str  # concurrent (N sequences in flight) | rate (arrivals per second) | batch (offline)
    seqs: int  # sequences the engine runs at once (max_num_seqs / -np / OLLAMA_NUM_PARALLEL)
    rate_rps: float  # arrivals per second on this replica (concurrent: N / time in system, Little)
    ttft_p95_ms: float
    e2e_p95_s: float
    per_user: float  # decode tok/s one sequence sees
    total: float  # generated tok/s of the replica
    burst_ttft_ms: float  # the last of N prompts arriving in the same instant
    capacity_rps: float  # requests per second one replica completes at saturation
    replicas: int  # replicas the load needs
    steady: bool
    ttft_how: str
    p95_how: str
    per_user_how: str
    total_how: str
    e2e_mean_s: float = 0.0  # a request's mean time in system (Little: in flight = rate x this)


def _load(k, answers: Answers, b: Backend, costs: "speed.StepCosts", ctx: int, n: int, hw: Hardware, tp: int,
          budget_one: int, seq: int, per_token: float, activation: float, free: float, pool_tokens: int = 0) -> Load:
    out = answers.output_tokens
    prefill = costs.prefill_ms(ctx)
    rate_asked = answers.arrival_rate_rps
    think = answers.think_time_s * 1e3  # ms each user waits before the next request
    batch_job = answers.requests_per_day > 0 and answers.deadline_hours > 0
    # What the KV pool holds (margin applied, or the engine's own pool): the most sequences it runs at once.
    cap = max(int(k.value("context_safety_margin") * free / (per_token * seq + activation)), 1) \
        if free > 0 and per_token > 0 else 1
    if pool_tokens:
        cap = max(pool_tokens // max(seq, 1), 1)
    cap = 1 if b.batching == "sequential" else min(cap, int(k.value("batch.max_seqs")))
    if batch_job:
        # Offline: the throughput-optimal batch within what the pool holds.
        choice = queue.best_batch(costs.engine, ctx, out, cap)
        seqs = choice.max_seqs
        eng = costs.engine(seqs)
        capacity = queue.saturation_rps(eng, ctx, out)
        need_rps = answers.requests_per_day / (answers.deadline_hours * 3600)
        replicas = max(1, math.ceil(need_rps / capacity)) if capacity > 0 else 10**6
        per_user = 1e3 / costs.step_ms(seqs) if b.batching != "sequential" else 1e3 / costs.step_ms(1)
        total = out * capacity
        e2e = (prefill + (out - 1) * costs.step_ms(seqs)) / 1e3  # one request, start to end, in the batch
        return Load(
            mode="batch", seqs=seqs, rate_rps=need_rps, ttft_p95_ms=prefill, e2e_p95_s=e2e,
            per_user=per_user, total=total, burst_ttft_ms=prefill * seqs, capacity_rps=capacity,
            replicas=replicas, steady=need_rps <= capacity * max(hw.count // max(tp, 1), 1),
            ttft_how=f"offline batch: one prompt's prefill ({ctx:,} tokens); no interactive TTFT target",
            p95_how=f"offline batch: a request's time on the engine at batch {seqs}",
            per_user_how=f"batch of {seqs} (the throughput-optimal batch within the KV pool's {cap} sequences)",
            total_how=(f"{capacity:.2f} requests/s x {out} tokens at batch {seqs}: "
                       f"{answers.requests_per_day:,} requests in {answers.deadline_hours:g} h need "
                       f"{need_rps:.2f}/s"))
    # N users: N sequences in flight. An arrival rate: the engine runs what its pool holds.
    seqs = cap if rate_asked > 0 else max(n, 1)
    eng = costs.engine(seqs)
    capacity = queue.saturation_rps(eng, ctx, out)
    replicas = 1
    if rate_asked > 0:
        # replicas to keep each under the utilisation line; the load splits evenly across those
        # the GPUs hold (past that, each replica is over capacity and the gate says so)
        replicas = max(1, math.ceil(rate_asked / (capacity * k.value("load.max_utilisation")))) \
            if capacity > 0 else 10**6
        rate_asked = rate_asked / max(min(replicas, hw.count // max(tp, 1)), 1)
    mean_ms = None
    if b.batching == "sequential":
        step1 = costs.step_ms(1)
        service = prefill + (out - 1) * step1
        if rate_asked > 0:
            rate, mode = rate_asked, "rate"
            wait = _wait_p95(rate, service)
            ttft95, e2e95 = wait + prefill, (wait + service) / 1e3
            total = min(rate, capacity) * out
        elif think <= 0:  # N users always waiting: each request waits for the N - 1 before it
            mode, rate = "concurrent", 1e3 / service
            ttft95, e2e95 = (seqs - 1) * service + prefill, seqs * service / 1e3
            total = 1e3 / step1 * (out - 1) * step1 / service if out > 1 else 0.0
        else:  # N users who pause between requests: mean-value analysis of one server, N users
            mode = "concurrent"
            q = 0.0
            for i in range(1, seqs + 1):
                r = service * (1 + q)
                x = i / (r + think)
                q = x * r
            rate = x * 1e3
            wait95 = min(_wait_p95(rate, service), (seqs - 1) * service)
            ttft95, e2e95 = wait95 + prefill, (wait95 + service) / 1e3
            total = rate * out
            mean_ms = r
        # while its request is served a user gets the whole engine; N back-to-back users share it
        per_user = 1e3 / step1 / (seqs if mode == "concurrent" and think <= 0 else 1)
        ttft_how = f"one request at a time: waits for the requests ahead ({service:,.0f} ms each)"
        live = 1.0
    else:
        # The GPU's time splits between prefill (compute-bound, one prompt's worth per request)
        # and decode steps; what prefill takes, decode loses: with X requests/s, each sequence
        # gets (1 - X x prefill) / step(L) tokens per second, L sequences in flight.
        out1 = max(out - 1, 0)

        def per_user_at(x_per_ms: float, live: float) -> float:  # tokens per ms
            share = 1 - x_per_ms * prefill
            return share / costs.step_ms(max(int(round(live)), 1)) if share > 0 else 0.0

        if rate_asked > 0:
            mode, x = "rate", rate_asked / 1e3
            live = float(seqs)
            for _ in range(20):  # in flight = rate x time in system (Little), at most the slots
                pu = per_user_at(x, live)
                r = prefill + (out1 / pu if pu > 0 else math.inf)
                live = min(max(x * r, 1.0), float(seqs))
        else:
            # A closed loop of N users, each sending the next request `think` ms after the last
            # one ended: throughput X solves X = N / (time in system + think), the time in system
            # being prefill + decode at the share prefill leaves, with X x time in system of the
            # N in flight at once (Little).
            mode = "concurrent"
            lo, hi = 0.0, 1 / prefill

            def in_system(x: float) -> tuple[float, float]:
                live = float(seqs)
                for _ in range(1 if think <= 0 else 30):
                    pu = per_user_at(x, live)
                    r = prefill + (out1 / pu if pu > 0 else math.inf)
                    if think <= 0 or not math.isfinite(r):
                        break
                    live = min(max(x * r, 1.0), float(seqs))
                return r, live

            for _ in range(40):  # to 1e-12 of the prefill-bound rate
                x = (lo + hi) / 2
                r, live = in_system(x)
                lo, hi = (x, hi) if x * (r + think) < seqs else (lo, x)
            x = lo
            live = in_system(x)[1]
        rate = x * 1e3
        pu = per_user_at(x, live)
        per_user = pu * 1e3
        wait95 = min(_wait_p95(rate, prefill), (seqs - 1) * prefill) if mode == "concurrent" else _wait_p95(rate, prefill)
        ttft95 = prefill + wait95
        e2e95 = (ttft95 + (out1 / pu if pu > 0 else math.inf)) / 1e3
        mean_ms = prefill + (out1 / pu if pu > 0 else math.inf)
        total = rate * out if math.isfinite(e2e95) else 0.0
        ttft_how = ((f"p95 with {rate:g} requests/s arriving" if mode == "rate" else
                     f"p95 with {seqs} users in a closed loop"
                     + (f", each pausing {answers.think_time_s:g} s between requests" if think > 0 else "")
                     + f" ({rate:.2f} requests/s)")
                    + ": prefill + queueing for the engine's prefill (M/D/1)")
    util = rate / capacity if capacity > 0 else math.inf
    # A closed loop holds itself to what the engine completes (its N users wait for their answers):
    # it is always a steady state, a busy one-at-a-time server included; arrivals are not.
    steady = (util < 1 or mode == "concurrent") and math.isfinite(ttft95)
    burst = seqs * prefill if b.batching != "sequential" else seqs * (prefill + (out - 1) * costs.step_ms(1)) - (out - 1) * costs.step_ms(1)
    return Load(
        mode=mode, seqs=seqs, rate_rps=rate, ttft_p95_ms=min(ttft95, 1e12), e2e_p95_s=min(e2e95, 1e9),
        per_user=per_user, total=total, burst_ttft_ms=burst, capacity_rps=capacity, replicas=replicas,
        steady=steady, ttft_how=ttft_how,
        p95_how=f"p95 end to end: TTFT p95 + {out:,} tokens at the per-user rate",
        per_user_how=(f"{b.batching} batching at {seqs} sequences" if b.batching != "sequential"
                      else f"no batching: {seqs} requests take turns"),
        total_how=f"{b.batching} batching: generated tokens per second of one replica",
        e2e_mean_s=min(mean_ms / 1e3, 1e9) if mean_ms is not None else 0.0)


def _wait_p95(rate_rps: float, service_ms: float) -> float:
    """p95 queue wait of an M/D/1 queue (exact where the series converges; past it, the
    exponential tail of the conditional wait, mean W/rho); inf when the queue never drains."""
    rho = rate_rps * service_ms / 1e3
    if rho >= 1:
        return math.inf
    if rho <= 0.05:
        return 0.0
    got = queue.md1_wait_quantile_ms(0.95, rate_rps, service_ms) if rho < 0.9 else math.nan
    if math.isfinite(got):
        return got
    return queue.md1_mean_wait_ms(rate_rps, service_ms) / rho * math.log(rho / 0.05)
