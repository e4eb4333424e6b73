"""The memory stage: what one candidate holds on each GPU, and the context it can afford.

weights (params x bytes, sharded by tensor parallel) + the engine's fixed buffers + per token of
each sequence (KV, split as tensor parallel splits KV heads; sliding layers capped at their
window) + what a whole-prompt prefill holds (transformers: activations, and n x n score matrices
where the attention kernel builds them). A probe on this machine replaces the table's figures
where it measured them. The safe budget keeps `context_safety_margin` of the free memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from advisor import physics
from advisor.domain import Hardware, ModelSpec, ProbeResult, Provenance
from advisor.engines import Engine
from advisor.knowledge import Knowledge


@dataclass(frozen=True)
class Memory:
    """Per GPU (GiB) and per sequence (tokens): what the candidate holds and can afford."""

    model: ModelSpec
    tensor_parallel: int
    weights_gb: float  # per GPU
    overhead_gb: float  # the CUDA context and the engine's buffers
    base_gb: float  # weights + runtime (a probe's measured base where it has one)
    kv_gb_per_token: float  # per GPU, per token of one sequence
    activation_gb_per_token: float  # one prompt's transient activations (whole-prompt prefill)
    attention_n2_gb: float  # GiB per token^2 of score matrices when the kernel builds them (0: linear)
    usable_gb: float  # per GPU, after other tenants
    total_gb: float  # per GPU
    margin: float  # context_safety_margin
    sliding_exact: bool  # invert the sliding-window KV exactly (no quadratic term, no probe slope)
    stored_bound: int  # a stored measurement's safe budget for this very setup (-1: none)
    pool_tokens: int  # the engine's own KV pool, all sequences together (0: the margin sizes it)
    pool_source: str
    claim: tuple[float, str] | None  # what an engine claims up front, whatever the load
    served_gb: float | None  # what a probe saw the running server hold (NVML, per process)
    fp16_gb: float  # the model's FP16 weights, whole
    fp16_weights_gb: float  # per GPU at this tensor parallel
    q8_weights_gb: float
    source: str  # how the per-GPU figure was worked out (weights, overhead, per token)
    measured: bool  # a probe on this machine measured part of it
    served_source: str = ""  # how the probe saw the server's memory

    @property
    def free_gb(self) -> float:
        return self.usable_gb - self.base_gb

    def budget(self, seqs: int) -> int:
        """Safe context tokens per sequence with `seqs` sequences' KV reserved."""
        if self.pool_tokens:
            return self.pool_tokens // max(int(seqs), 1)
        got = _budget(self.margin, self.free_gb, self.kv_gb_per_token, seqs, self.activation_gb_per_token,
                      self.attention_n2_gb)
        if self.sliding_exact:  # KV stops growing at the window: invert it exactly
            got = self.model.context_for_budget(self.margin * self.free_gb * physics.GIB
                                                * self.model.kv_split(self.tensor_parallel), sequences=seqs,
                                                extra_bytes_per_token=self.activation_gb_per_token * physics.GIB)
        return min(got, self.stored_bound) if self.stored_bound >= 0 else got

    def budget_one(self) -> int:
        """The longest single sequence: a paged pool's longest request."""
        if self.pool_tokens:
            return self.pool_tokens
        return _budget(self.margin, self.free_gb, self.kv_gb_per_token, 1, self.activation_gb_per_token,
                       self.attention_n2_gb)

    def pool_seqs(self, seq_tokens: int) -> int:
        """How many sequences of `seq_tokens` the KV pool holds at once (the margin applied)."""
        if self.pool_tokens:
            return max(self.pool_tokens // max(seq_tokens, 1), 1)
        per = self.kv_gb_per_token * seq_tokens + self.activation_gb_per_token
        if self.free_gb <= 0 or self.kv_gb_per_token <= 0:
            return 1
        return max(int(self.margin * self.free_gb / per), 1)

    def need_gb(self, seqs: int, prompt_tokens: int, seq_tokens: int) -> float:
        """Per GPU, what `seqs` sequences of `seq_tokens` need: weights, runtime, their KV and one prompt's
        prefill (activations and score matrices)."""
        return (self.base_gb + self.kv_gb_per_token * seq_tokens * seqs
                + self.activation_gb_per_token * prompt_tokens + self.attention_n2_gb * prompt_tokens ** 2)

    def held_gb(self, need_gb: float) -> float:
        """What the engine holds: what a probe saw the running server hold, else its up-front claim,
        else what the load needs."""
        if self.served_gb is not None:
            return self.served_gb
        return self.claim[0] if self.claim is not None else need_gb

    def provenance(self, need_gb: float) -> Provenance:
        """Where the per-GPU figure came from, for the load that needs `need_gb`."""
        if self.served_gb is not None:  # the running server's own GPU memory: what this engine really holds
            return Provenance(origin="probe", source=self.served_source)
        if self.claim is not None:
            return Provenance(origin="roofline", source=f"{self.claim[1]}; the asked load needs {need_gb:.1f} GB "
                                                        f"of it ({self.source})")
        return Provenance(origin="probe" if self.measured else "roofline", source=self.source)


def background_gb(answered_gb: float, hw: Hardware) -> float:
    """Memory other tenants use: the user's figure, or what NVML sees other processes hold."""
    dev = hw.devices[0]
    seen = (dev.other_processes_gb or 0.0) if hw.source == "nvml" else 0.0
    return max(answered_gb, seen)


def tensor_parallel(weights_gb: float, usable_gb: float, overhead_gb: float, gpus: int, splits: bool) -> int:
    """Smallest power of two whose shard of the weights leaves room on each GPU (or gpus+1 if none);
    1 for an engine the advisor plans no split for (one GPU holds the weights or it does not fit)."""
    if not splits:
        return 1
    tp = 1
    while tp <= max(gpus, 1):
        if weights_gb / tp + overhead_gb < usable_gb * 0.9:
            return tp
        tp *= 2
    return tp


def memory(k: Knowledge, eng: Engine, model: ModelSpec, quant: str, hw: Hardware, background: float,
           prompt_tokens: int, seq_tokens: int, probe: ProbeResult | None, tp: int | None = None) -> Memory:
    """The memory stage for one candidate (model x engine x quantization) on this hardware; `tp`:
    a tensor parallel chosen for the KV too (advisor/estimate.py), else the smallest the weights need."""
    total = hw.vram_gb
    usable = total - background_gb(background, hw)
    weights_total = physics.weights_gb(k, model, quant)
    overhead, overhead_src = eng.overhead_gb()
    if tp is None or not eng.splits_tensor_parallel:
        tp = tensor_parallel(weights_total, usable, overhead, hw.count, eng.splits_tensor_parallel)
    weights = weights_total / max(tp, 1)

    # KV per token of this sequence length (sliding layers capped), split as TP splits KV heads
    # (an MLA latent is held whole on every rank)
    per_token = physics.kv_gb_per_token(model, context=seq_tokens) / model.kv_split(tp)
    src = (f"roofline: KV = {model.layers} layers x {model.kv_bytes_per_layer_token():g} B per token"
           + (f" ({model.sliding_layers} sliding layers capped at {model.sliding_window:,} tokens)"
              if model.sliding_layers else "") + (" (MLA latent)" if model.is_mla else ""))
    activation = 0.0
    if eng.prefill_activations:  # transformers prefills the whole prompt at once and holds its activations
        activation = physics.activation_gb_per_token(k, model)
        src += f" + activations ({k.source('runtime.activation_bytes_per_token')})"
    base = weights + overhead
    fit = probe.fit if probe is not None and eng.prefill_activations else None
    fitted = fit is not None
    if fit is not None and probe is not None:
        slope_gb = (fit.linear_mb_per_token + fit.quadratic_mb_per_token2 * prompt_tokens) / 1024
        base = fit.base_mb / 1024 + k.value("cuda_context_overhead_gb")
        activation, per_token = max(slope_gb - physics.kv_gb_per_token(model), 0.0), physics.kv_gb_per_token(model)
        src = f"probe: {probe.attention or 'sdpa'} peak-memory fit on {probe.gpu or 'this GPU'}"
    elif probe is not None and probe.kv_bytes_per_token and not eng.prefill_activations:
        per_token = probe.kv_bytes_per_token / physics.GIB
        src = f"probe: Ollama /api/ps size_vram at two num_ctx on {probe.gpu or 'this GPU'}"

    # Attention that builds the n x n score matrix (eager, SDPA's math fallback) adds a quadratic
    # term for the prompt being prefilled; flash / memory-efficient kernels do not.
    quad, quad_src = (0.0, "")
    if eng.prefill_activations and not fitted:
        quad, quad_src = _attention_quadratic(k, model, hw)
        if quad:
            src += f" + attention {quad_src}"
    margin = k.value("context_safety_margin")
    bound = _stored_bound(k, model, hw, eng, usable, margin) if eng.prefill_activations and not fitted else None
    free = usable - base
    # An engine that sizes its own KV pool (transformers serve) holds what it holds, not the margin's share.
    pool = eng.kv_pool(model, free, base, total)
    if bound is not None:
        src += f"; bounded by {bound[1]}"
    if pool is not None:
        src += f"; KV pool {pool[0]:,} tokens ({pool[1]})"
    served = probe.server_vram.mib if probe is not None and probe.server_vram is not None \
        and not eng.prefill_activations else None
    claim = eng.claim_gb(base, usable, total)
    return Memory(
        model=model, tensor_parallel=tp, weights_gb=weights, overhead_gb=overhead, base_gb=base,
        kv_gb_per_token=per_token, activation_gb_per_token=activation, attention_n2_gb=quad, usable_gb=usable,
        total_gb=total, margin=margin, sliding_exact=bool(model.sliding_layers) and not quad,
        stored_bound=bound[0] if bound is not None else -1, pool_tokens=pool[0] if pool is not None else 0,
        pool_source=pool[1] if pool is not None else "", claim=claim,
        served_gb=served / 1024 if served is not None else None,
        fp16_gb=physics.weights_gb(k, model, "fp16"),
        fp16_weights_gb=physics.weights_gb(k, model, "fp16") / max(tp, 1),
        q8_weights_gb=physics.weights_gb(k, model, "q8_0") / max(tp, 1),
        source=f"weights {weights:.2f} GB ({_weights_src(k, model, quant)}) + overhead ({overhead_src}) "
               f"+ per token ({src})",
        measured=src.startswith("probe"),
        served_source=(f"probe: NVML memory of the server process on {probe.gpu or 'this GPU'} "
                       f"({probe.server_vram.method or 'per process'})") if served is not None and probe is not None
        and probe.server_vram is not None else "")


def _budget(margin: float, free_gb: float, per_token_gb: float, n: int, activation_gb: float,
            quad_gb: float = 0.0) -> int:
    """Safe context tokens per sequence with n sequences' KV reserved (activations and a quadratic
    attention term for one prompt at a time): the root of margin x free = b L + q L^2."""
    lin = per_token_gb * max(int(n), 1) + activation_gb
    room = margin * free_gb
    if room <= 0 or (lin <= 0 and quad_gb <= 0):
        return 0
    if quad_gb <= 0:
        return max(int(room / lin), 0)
    return max(int((-lin + math.sqrt(lin * lin + 4 * quad_gb * room)) / (2 * quad_gb)), 0)


def _attention_quadratic(k: Knowledge, model: ModelSpec, hw: Hardware) -> tuple[float, str]:
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


def _stored_bound(k: Knowledge, model: ModelSpec, hw: Hardware, eng: Engine, usable_gb: float,
                  margin: float) -> tuple[int, str] | None:
    """A stored measurement of this very setup (model, GPU, OS, engine family) bounds the budget:
    TR127's safe context (usable - base) / slope x margin (TR127 §14.3), measured on its laptop."""
    row = k.context.get(model.id)
    if row is None or hw.os != "windows" or k.gpu(row.gpu).name != hw.spec.name:
        return None
    other = k.backends.get(row.backend)
    if (other.family if other is not None else row.backend) != eng.family:
        return None
    safe = int((usable_gb * 1024 - row.base_mb) / row.slope_mb_per_token * margin)
    return max(safe, 0), (f"TR127's measured safe budget on this setup: ({usable_gb:.1f} GB - {row.base_mb:g} MB) / "
                          f"{row.slope_mb_per_token:g} MB/token x {margin:g} ({row.source}, §14.3)")


def _weights_src(k: Knowledge, model: ModelSpec, quant: str) -> str:
    if model.weight_bytes and quant == model.file_quantization:
        return f"the GGUF file's tensors, {model.weight_bytes / 2**30:.2f} GiB at {quant}"
    return f"{model.params_b:g}B x {k.quant[quant].bits_per_weight:g} bit, {k.quant[quant].source}"
