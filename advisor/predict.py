"""Numbers for one candidate deployment (model x backend x quantization) on this hardware.

Each figure is computed from the roofline (physics.py) times an efficiency stored in
knowledge/calibration.toml, or taken from a probe on this machine when one matches;
`Estimate.origins` says which, with the source. The rules judge these numbers; they
never compute them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from advisor import physics
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
    bits: float
    os: str
    origins: dict[str, Provenance] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # figures a probe replaced: name -> (probe value, table/roofline value, its source)
    replaced: dict[str, tuple[float, float, str]] = field(default_factory=dict)


_EFF_CACHE: dict[tuple, tuple[object, tuple[float, str]]] = {}


def _eff(k, b: Backend, kind: str, os_name: str) -> tuple[float, str]:
    """An efficiency from calibration.toml: <engine>.kind[.os], with its source.

    Looked up once per knowledge object: recommend() estimates a few hundred candidates."""
    ck = (id(k), b.name, kind, os_name)
    hit = _EFF_CACHE.get(ck)
    if hit is not None and hit[0] is k:
        return hit[1]
    base = b.calibration_key()
    for key in (f"{base}.{kind}.{os_name}", f"{base}.{kind}"):
        if k.has(key):
            out = k.value(key), f"{key} = {k.value(key):g} ({k.source(key)})"
            _EFF_CACHE[ck] = (k, out)
            return out
    raise KeyError(f"calibration row {base}.{kind} missing")


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
    per_token = physics.kv_gb_per_token(model) / max(tp, 1)
    mem_src = f"roofline: KV = 2 x {model.layers} layers x {model.kv_heads} kv heads x {model.head_dim} x 2 B"
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

    free_for_context = usable - base_gb
    margin = k.value("context_safety_margin")
    # Ollama/llama.cpp and servers reserve KV for every sequence; activations are transient, one prompt at a time.
    denom = per_token * n + activation
    budget = int(margin * free_for_context / denom) if free_for_context > 0 and denom > 0 else 0
    budget = max(budget, 0)
    seq = ctx + answers.output_tokens  # the KV cache holds the prompt and the output
    need_gb = base_gb + per_token * seq * n + activation * ctx
    origins["vram_gb"] = Provenance(
        origin="probe" if mem_src.startswith("probe") else "roofline",
        source=f"weights {weights:.2f} GB ({_weights_src(k, model, quant)}) "
               f"+ overhead ({overhead_src}) + per token ({mem_src})",
    )

    # Prefill (TTFT): FLOPs over the peak this quantization's kernels use, times an efficiency.
    eff, eff_src = _eff(k, b, "prefill_flops_efficiency", os_name)
    flops = physics.prefill_flops(model, ctx)
    peak = physics.math_peak(gpu, quant)
    ttft = flops / (peak * max(tp, 1) * eff) * 1e3
    ttft_src = f"roofline: {flops:.3g} FLOPs / ({peak / 1e12:g} TFLOP/s x {eff_src})"
    if b.compiled_prefill:
        sp = k.value("transformers-compiled.prefill_speedup")
        ttft *= 1 - sp
        ttft_src += f" x (1 - {sp:g}, {k.source('transformers-compiled.prefill_speedup')})"
    ttft_origin = "roofline"
    replaced_ttft = replaced_decode = None
    if probe is not None and probe.ttft:
        got = _probe_ttft(probe, model, ctx)
        if got is not None:
            measured, how = got
            roof = physics.prefill_roofline_ms(model, gpu, quant, ctx)
            if measured >= roof:
                replaced_ttft = (measured, ttft, ttft_src)
                ttft, ttft_origin = measured, "probe"
                ttft_src = f"probe on {probe.gpu or 'this GPU'}: {how}"
            else:
                notes.append(f"probe TTFT {measured:.1f} ms beats the {roof:.1f} ms roofline; not used")
    origins["ttft_ms"] = Provenance(origin=ttft_origin, source=ttft_src)
    ttft_n = ttft * (n + 1) / 2

    # Decode: bytes read per token over bandwidth, times an efficiency.
    bw_eff, bw_src = _eff(k, b, "decode_bw_efficiency", os_name)
    avg_ctx = ctx + answers.output_tokens // 2
    bytes_tok = physics.decode_bytes_per_token(k, model, quant, avg_ctx) / max(tp, 1)
    step_s = bytes_tok / (gpu.bandwidth_gb_s * 1e9 * bw_eff)
    dec_src = f"roofline: {gpu.bandwidth_gb_s:g} GB/s x {bw_src} / {bytes_tok / 1e9:.2f} GB per token"
    floor_key = f"{b.calibration_key()}.decode_overhead_ms_per_layer"
    if k.has(floor_key):  # small models are launch-bound: a measured per-layer cost per token
        floor = model.layers * k.value(floor_key) / 1e3
        if floor > step_s:
            step_s = floor
            dec_src = (f"kernel-launch floor: {model.layers} layers x {k.value(floor_key):g} ms "
                       f"({k.source(floor_key)})")
    single = 1.0 / step_s
    dec_origin = "roofline"
    if probe is not None and probe.decode_tok_s:
        roof = physics.decode_roofline_tok_s(k, model, gpu, quant, avg_ctx) * max(tp, 1)
        if probe.decode_tok_s <= roof:
            replaced_decode = (probe.decode_tok_s, single, dec_src)
            single, dec_origin = probe.decode_tok_s, "probe"
            dec_src = f"probe: decode tok/s measured on {probe.gpu or 'this GPU'}"
        else:
            notes.append(f"probe decode {probe.decode_tok_s:.1f} tok/s beats the {roof:.1f} tok/s roofline; not used")

    amdahl = 1.0
    if b.batching == "slots":
        s_key = f"amdahl_s.{model.id}" if k.has(f"amdahl_s.{model.id}") else "amdahl_s.default"
        s = k.value(s_key)
        amdahl = 1.0 / (s * n + 1 - s)  # per-agent efficiency eta(N) = S(N)/N, Amdahl
        per_user = single * amdahl
        dec_src += f"; x Amdahl eta({n}) = {amdahl:.2f} with s = {s:g} ({k.source(s_key)})"
    elif b.continuous:
        # One decode step reads the weights once for all N sequences plus each one's KV cache.
        kv_bytes = model.kv_bytes_per_token() * avg_ctx / max(tp, 1)
        step_n = (bytes_tok - kv_bytes + kv_bytes * n) / (gpu.bandwidth_gb_s * 1e9 * bw_eff)
        step_1 = bytes_tok / (gpu.bandwidth_gb_s * 1e9 * bw_eff)
        per_user = single * step_1 / step_n
        dec_src += f"; continuous batching: {n} sequences share each weight read"
    else:  # transformers: one request at a time
        per_user = single / n
        dec_src += f"; no batching: {n} requests take turns"
    total = per_user * n
    origins["decode_tok_s_per_user"] = Provenance(origin=dec_origin, source=dec_src)
    origins["total_tok_s"] = Provenance(origin=dec_origin, source=f"{n} users x per-user rate")
    p95 = ttft * n / 1e3 + answers.output_tokens / per_user
    origins["p95_latency_s"] = Provenance(
        origin="roofline", source=f"last of {n} prefills ({n} x TTFT) + {answers.output_tokens} tokens at the per-user rate")

    replicas_possible = max(hw.count // max(tp, 1), 0)
    needed = 1
    if answers.requests_per_day > 0 and answers.deadline_hours > 0:
        req_per_s = answers.requests_per_day / (answers.deadline_hours * 3600)
        per_request_s = ttft_n / 1e3 + answers.output_tokens / per_user
        capacity = n / per_request_s
        needed = max(1, math.ceil(req_per_s / capacity))

    fp16 = physics.weights_gb(k, model, "fp16")
    context_gb = need_gb - base_gb  # KV (and transient activations) for the ask
    fp16_need = fp16 / max(tp, 1) + overhead + context_gb
    q8_need = physics.weights_gb(k, model, "q8_0") / max(tp, 1) + overhead + context_gb
    return Estimate(
        model=model, backend=backend, quant=quant, tp=tp, weights_gb=weights, overhead_gb=overhead,
        per_token_gb=per_token + activation / max(n, 1), usable_gb=usable, total_gb=vram, budget_tokens=budget,
        vram_gb=need_gb, vram_frac=need_gb / vram, ttft_ms=ttft, ttft_at_n_ms=ttft_n,
        decode_single=single, decode_per_user=per_user, total_tok_s=total, p95_s=p95,
        amdahl_eff=amdahl, replicas_needed=needed, replicas_possible=replicas_possible,
        fp16_gb=fp16, fp16_need_gb=fp16_need, q8_need_gb=q8_need,
        bf16_ok=(gpu.compute_capability or 8.0) >= 8.0,
        bits=k.quant[quant].bits_per_weight, os=os_name, origins=origins, notes=notes,
        replaced={name: v for name, v in (("TTFT (ms)", replaced_ttft), ("decode (tok/s, one stream)", replaced_decode))
                  if v is not None},
    )


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
