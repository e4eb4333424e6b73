"""The physics the advice must respect: bytes, FLOPs and the roofline.

Everything here is arithmetic over a model's architecture facts and a GPU's catalog
row; the efficiencies that turn a roofline into a prediction are knowledge rows
(calibration.toml), so every predicted figure can name its source.

Units: memory in GiB ("GB" in the UI, as nvidia-smi means it), time in ms.
"""

from __future__ import annotations

import weakref

from pydantic import BaseModel

from advisor.domain import GpuSpec, ModelSpec
from advisor.knowledge import Knowledge, MeasurementRow  # knowledge imports no physics

GIB = 1024**3
MIB = 1024**2
GGUF_QUANTS = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_s", "q2_k")


# ------------------------------------------------------------------ memory
def bits_per_weight(k: Knowledge, quant: str) -> float:
    return k.quant[quant].bits_per_weight


def weight_bytes(k: Knowledge, model: ModelSpec, quant: str) -> float:
    """Parameters x bytes per parameter (DESIGN: base VRAM = params x bytes/param), with the
    embedding and LM head at the precision the format keeps them (a 4-bit AWQ 8B checkpoint is
    about 5.7 GB, not 4.0); a GGUF file at its own quantization weighs what its tensors store."""
    if model.weight_bytes and quant == model.file_quantization:
        return model.weight_bytes
    q = k.quant[quant]
    embed = model.embedding_params
    head = 0.0 if model.tied_embeddings else embed
    body = max(model.params - embed - head, 0.0)
    return (body * q.bits_per_weight + embed * (q.embedding_bits or q.bits_per_weight)
            + head * (q.head_bits or q.bits_per_weight)) / 8


def weights_gb(k: Knowledge, model: ModelSpec, quant: str) -> float:
    return weight_bytes(k, model, quant) / GIB


def kv_gb_per_token(model: ModelSpec, kv_dtype_bytes: float = 2.0, context: int | None = None) -> float:
    """KV bytes per token in GiB: every layer's K and V (or MLA's latent); with a context, the
    average over a sequence of that length (sliding-window layers stop growing at the window)."""
    return model.kv_bytes_per_token(kv_dtype_bytes, context=context) / GIB


def activation_gb_per_token(k: Knowledge, model: ModelSpec, dtype_bytes: float = 2.0) -> float:
    """Transient MLP activations per prompt token when a whole prompt is prefilled at once
    (transformers generate()); servers prefill in bounded chunks instead."""
    return k.value("runtime.activation_bytes_per_token") * model.intermediate_size * dtype_bytes / GIB


def logits_gb_per_token(model: ModelSpec, dtype_bytes: float = 4.0) -> float:
    """A plain forward keeps vocab logits for every prompt token (TR127's 'KV cost')."""
    return model.vocab_size * dtype_bytes / GIB


# ------------------------------------------------------------------ compute
def prefill_flops(model: ModelSpec, tokens: int, all_logits: bool = False) -> float:
    """2 x non-embedding params per token, causal attention, and the LM head.

    generate() and servers compute logits for the last token only; a plain
    forward pass computes them for every prompt token.
    """
    n = float(tokens)
    dense = 2.0 * model.non_embedding_params * n
    # QK^T and AV over the causal pairs (sliding layers no further than their window; MLA's dims)
    attention = model.attention_flops(tokens)
    head = 2.0 * model.vocab_size * model.hidden_size * (n if all_logits else 1.0)
    return dense + attention + head


def peak_ops(gpu: GpuSpec, quant: str) -> float:
    """The fastest tensor peak this quantization's kernels could use.

    llama.cpp's quantized matmuls run on INT8 tensor cores (MMQ), so a GGUF quant
    gets the INT8 peak; everything else the dense FP16 peak.
    """
    return gpu.peak_ops_any if quant in GGUF_QUANTS else gpu.peak_flops


def math_peak(gpu: GpuSpec, quant: str) -> float:
    """The tensor rate this quantization's kernels really run at, for predictions (the roofline
    above keeps the most generous peak): llama.cpp's quantized matmuls on INT8 tensor cores (MMQ),
    FP8 on FP8 tensor cores where the chip has them, everything else FP16 with FP32 accumulate
    (half the FP16-accumulate rate on GeForce parts)."""
    if quant in GGUF_QUANTS and gpu.int8_tops:
        return gpu.int8_tops * 1e12
    if quant == "fp8" and gpu.fp8_tflops:
        return gpu.fp8_tflops * 1e12
    return gpu.acc32_flops


def prefill_roofline_ms(model: ModelSpec, gpu: GpuSpec, quant: str, tokens: int) -> float:
    """No implementation can prefill faster than this."""
    return prefill_flops(model, tokens) / peak_ops(gpu, quant) * 1e3


def decode_bytes_per_token(k: Knowledge, model: ModelSpec, quant: str, context: int) -> float:
    """Weights read once per token (all but an untied input embedding, a row lookup), plus the
    KV cache of the context so far."""
    weights = weight_bytes(k, model, quant) * model.decode_read_params / model.params
    return weights + model.kv_bytes_for(context)


def decode_roofline_tok_s(k: Knowledge, model: ModelSpec, gpu: GpuSpec, quant: str, context: int) -> float:
    """No implementation can decode one sequence faster than bandwidth / bytes per token."""
    return gpu.bandwidth_gb_s * 1e9 / decode_bytes_per_token(k, model, quant, context)


# ------------------------------------------------------------------ plausibility
class Verdict(BaseModel):
    plausible: bool
    reason: str
    bound: float | None = None  # the roofline limit in the row's unit


def _against(broken: bool, bound: float, digits: int, broken_why, holds_why: str) -> Verdict:
    """A measurement against its roofline `bound` (rounded to `digits`): implausible when `broken`,
    with `broken_why()` as the reason; else plausible, with `holds_why`."""
    if broken:
        return Verdict(plausible=False, bound=round(bound, digits), reason=broken_why())
    return Verdict(plausible=True, bound=round(bound, digits), reason=holds_why)


_VERDICTS: weakref.WeakKeyDictionary[Knowledge, list[Verdict]] = weakref.WeakKeyDictionary()


def verdicts(k: Knowledge) -> list[Verdict]:
    """Each stored measurement's verdict against its roofline, in the measurements' order (once per
    knowledge object)."""
    got = _VERDICTS.get(k)
    if got is None:
        got = _VERDICTS[k] = [judge_measurement(k, m) for m in k.measurements]
    return got


def judge_measurement(k: Knowledge, m: MeasurementRow) -> Verdict:
    """Does a stored figure respect the roofline of the GPU it was measured on?"""

    model = k.models.get(m.model)
    try:
        gpu = k.gpu(m.gpu)
    except Exception:
        gpu = None
    if model is None or gpu is None or m.quant not in k.quant:
        return Verdict(plausible=True, reason="not checked: model, GPU or quantization not in the catalog")
    if m.kind == "prefill_ms":
        bound = prefill_roofline_ms(model, gpu, m.quant, m.context_tokens)
        peak = peak_ops(gpu, m.quant) / 1e12
        return _against(m.value < bound, bound, 2, lambda: (
            f"{m.value:g} ms for {m.context_tokens:,} tokens beats the roofline: "
            f"{prefill_flops(model, m.context_tokens):.3g} FLOPs at {peak:g} TFLOP/s peak "
            f"needs >= {bound:.1f} ms; a repeated prompt measures the prompt cache, not prefill"
        ), f"above the {bound:.1f} ms roofline")
    if m.kind == "decode_tok_s":
        bound = decode_roofline_tok_s(k, model, gpu, m.quant, m.context_tokens)
        return _against(m.value > bound, bound, 1, lambda: (
            f"{m.value:g} tok/s beats the memory roofline: {gpu.bandwidth_gb_s:g} GB/s / "
            f"{decode_bytes_per_token(k, model, m.quant, m.context_tokens) / 1e9:.2f} GB per token "
            f"= {bound:.1f} tok/s"
        ), f"below the {bound:.1f} tok/s roofline")
    if m.kind == "peak_vram_mb":
        bound = weights_gb(k, model, m.quant) * 1024
        return _against(m.value < bound, bound, 1,
                        lambda: f"{m.value:g} MB is less than the weights alone ({bound:.0f} MB)",
                        f"holds the {bound:.0f} MB of weights")
    return Verdict(plausible=True, reason=f"not checked: no roofline for kind {m.kind!r}")
