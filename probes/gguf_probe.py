"""A local GGUF file's metadata (the gguf package's GGUFReader): no GPU, no weights loaded.

Architecture, layers, heads, KV heads, key/value lengths, context length, embedding length,
vocabulary, experts (count, used, shared, widths, leading dense blocks), latent attention
(kv_lora_rank), sliding window (and its layer pattern), quantization (general.file_type, else
the most common tensor type) and the weights' bytes (the sum of the tensors' stored sizes),
and from them the f16 KV bytes per token as llama.cpp allocates it: per layer,
head_count_kv x (key_length + value_length). For DeepSeek files converted for MLA
(attention.key_length_mla present) that is the compressed latent; older conversions cache
the decompressed per-head K and V, which is what llama.cpp then allocates.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from advisor.domain import ProbeResult
from advisor.errors import ProbeError

# llama.cpp's LLAMA_FTYPE names -> the advisor's quantization vocabulary
FILE_TYPES = {0: "f32", 1: "fp16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1", 10: "q2_k",
              11: "q3_k_s", 12: "q3_k_m", 13: "q3_k_l", 14: "q4_k_s", 15: "q4_k_m", 16: "q5_k_s",
              17: "q5_k_m", 18: "q6_k", 32: "bf16"}


@dataclass
class GgufInfo:
    path: str
    architecture: str
    name: str
    layers: int | None
    heads: int | None
    kv_heads: int | None
    head_dim: int | None
    context_length: int | None
    embedding_length: int | None
    vocab_size: int | None
    quantization: str
    file_type: int | None
    weight_bytes: int
    tensor_count: int
    parameters: int
    feed_forward_length: int | None = None
    tied_embeddings: bool = True  # no separate output.weight: the LM head reuses token_embd
    rope_theta: float | None = None
    key_length: int | None = None  # per KV head, as cached (attention.key_length)
    value_length: int | None = None
    expert_count: int = 0
    expert_used_count: int | None = None
    expert_shared_count: int = 0
    expert_feed_forward_length: int | None = None
    expert_shared_feed_forward_length: int | None = None
    leading_dense_block_count: int = 0
    kv_lora_rank: int = 0
    sliding_window: int = 0
    sliding_layers: int = 0
    unmodelled: str = ""  # metadata of layers no KV formula here holds (state-space, recurrent)

    def kv_bytes_per_token(self, kv_dtype_bytes: float = 2.0) -> float | None:
        """Every layer, every token (the sliding layers uncapped): llama.cpp's K and V rows."""
        if not (self.layers and self.kv_heads and self.head_dim):
            return None
        k = self.key_length or self.head_dim
        v = self.value_length or self.head_dim
        return float(self.layers * self.kv_heads * (k + v) * kv_dtype_bytes)


def _scalar(reader, key: str):
    """A metadata value: a string, a number, or for a per-layer array the largest element (so
    memory is never under-estimated); None when absent or of no type we read."""
    field = reader.get_field(key)
    if field is None or not field.data or not field.types:
        return None
    main, sub = field.types[0].name, field.types[-1].name
    try:
        if main == "STRING" or (main == "ARRAY" and sub == "STRING"):
            return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")
        if main == "ARRAY":
            if len(field.types) > 2:  # nested arrays: no figure of ours is stored that way
                return field.types
            values = [v for i in field.data for v in field.parts[i].tolist()]
            return max(values) if values else None
        return field.parts[field.data[0]].tolist()[0]
    except Exception:
        return None


def _array_values(reader, key: str) -> list | None:
    """A metadata array's elements (one level), or None when absent or not an array."""
    field = reader.get_field(key)
    if field is None or not field.types or field.types[0].name != "ARRAY" or len(field.types) > 2:
        return None
    try:
        return [v for i in field.data for v in field.parts[i].tolist()]
    except Exception:
        return None


# llama.cpp's sliding-window layer patterns by architecture (llama-model.cpp set_swa_pattern):
# layer il slides when il % pattern < pattern - 1. Other architectures: no window assumed (an
# upper bound on their KV cache).
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "cohere2": 4}
# Architectures whose layers are not (only) attention: no KV formula here holds.
RECURRENT_ARCHS = {"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7", "jamba", "falcon-h1", "plamo2",
                   "granitehybrid", "nemotron_h", "lfm2", "qwen3next", "kimi-linear"}


def _array_len(reader, key: str) -> int | None:
    field = reader.get_field(key)
    return len(field.data) if field is not None else None


def _short(v: object, limit: int = 40) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


class _Meta:
    """Typed reads of a GGUF file's metadata; a bad value is one line naming the file and the key."""

    def __init__(self, reader, path: str):
        self.reader, self.path = reader, path

    def fail(self, key: str, v: object, expected: str) -> ProbeError:
        return ProbeError(f"--model {self.path!r}: GGUF metadata {key} = {_short(v)} is not allowed; "
                          f"expected {expected}")

    def whole(self, key: str, field: str | None, zero_is_absent: bool = False,
              limits: tuple[float, float] | None = None) -> int | None:
        """A count within the catalog's bounds for `field` (advisor.knowledge.MODEL_LIMITS), or
        within `limits` for a key the catalog has no field for (field=None)."""
        from advisor.knowledge import MODEL_LIMITS

        v = _scalar(self.reader, key)
        if v is None:
            return None
        if not limits:
            assert field is not None, "a key with no catalog field needs its limits"
            limits = MODEL_LIMITS[field]
        lo, hi = limits
        number = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        if number and zero_is_absent and v == 0:
            return None
        if not number or not float(v).is_integer() or not lo <= v <= hi:
            raise self.fail(key, v, f"a whole number from {lo:,} to {hi:,}")
        return int(v)

    def number(self, key: str, field: str) -> float | None:
        from advisor.knowledge import MODEL_LIMITS

        v = _scalar(self.reader, key)
        if v is None:
            return None
        lo, hi = MODEL_LIMITS[field]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise self.fail(key, v, f"a number from {lo:g} to {hi:g}")
        return float(v)

    def text(self, key: str) -> str:
        v = _scalar(self.reader, key)
        if v is None:
            return ""
        if not isinstance(v, str):
            raise self.fail(key, v, "a string")
        return v


def read_gguf(path: str) -> GgufInfo:
    if not os.path.isfile(path):
        raise ProbeError(f"--model {path!r}: no such GGUF file")
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ProbeError("reading GGUF files needs the gguf package: pip install 'advisor[probe]'") from None
    try:
        reader = GGUFReader(path, "r")
    except Exception as e:
        why = str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__
        raise ProbeError(f"--model {path!r} is not a readable GGUF file ({why})") from None
    meta = _Meta(reader, path)
    arch = meta.text("general.architecture")
    p = f"{arch}." if arch else "\x00none."  # no architecture: no key of it can match
    heads = meta.whole(p + "attention.head_count", "attention_heads", zero_is_absent=True)
    kv_heads = meta.whole(p + "attention.head_count_kv", "kv_heads", zero_is_absent=True)
    emb = meta.whole(p + "embedding_length", "hidden_size")
    key_length = meta.whole(p + "attention.key_length", "head_dim", zero_is_absent=True)
    if heads and kv_heads and kv_heads > heads:
        raise meta.fail(p + "attention.head_count_kv", kv_heads, f"at most {p}attention.head_count ({heads})")
    if heads and emb and not key_length and emb < heads:
        raise meta.fail(p + "embedding_length", emb, f"at least {p}attention.head_count ({heads}), or a key_length")
    head_dim = key_length or (emb // heads if emb and heads else None)
    vocab = meta.whole(p + "vocab_size", "vocab_size")
    if vocab is None:
        n = _array_len(reader, "tokenizer.ggml.tokens")
        vocab = n or None
    file_type = meta.whole("general.file_type", None, limits=(0, 65535))
    types: Counter[str] = Counter()
    weight_bytes = params = 0
    try:
        for t in reader.tensors:
            weight_bytes += int(t.n_bytes)
            params += int(t.n_elements)
            if len(t.shape) >= 2:
                types[t.tensor_type.name.lower()] += int(t.n_bytes)
        tied = not any(t.name == "output.weight" for t in reader.tensors)
    except Exception as e:
        raise ProbeError(f"--model {path!r}: its tensor table is unreadable ({e.__class__.__name__})") from None
    if file_type is not None and file_type in FILE_TYPES:
        quant = FILE_TYPES[file_type]
    elif types:
        quant = types.most_common(1)[0][0]
        quant = {"f16": "fp16"}.get(quant, quant)  # ggml's tensor type name -> the advisor's word
    else:
        quant = ""
    name = _scalar(reader, "general.name")
    layers = meta.whole(p + "block_count", "layers")
    # MLA conversions cache the latent: key_length = kv_lora_rank + rope dims, value_length = kv_lora_rank
    value_length = meta.whole(p + "attention.value_length", "head_dim", zero_is_absent=True)
    experts = meta.whole(p + "expert_count", "experts") or 0
    unmodelled = ""
    if arch in RECURRENT_ARCHS:
        unmodelled = f"general.architecture = {arch!r}"
    else:
        for field in reader.fields:
            if field.startswith((p + "ssm.", p + "wkv.", p + "shortconv.")):
                unmodelled = field
                break
    window = meta.whole(p + "attention.sliding_window", "sliding_window", zero_is_absent=True) or 0
    sliding_layers = 0
    if window and layers:
        flags = _array_values(reader, p + "attention.sliding_window_pattern")
        if flags is not None and len(flags) == layers and all(isinstance(f, bool) for f in flags):
            sliding_layers = sum(flags)
        else:
            pattern = meta.whole(p + "attention.sliding_window_pattern", None, zero_is_absent=True,
                                 limits=(1, 4096)) if flags is None else None
            pattern = pattern or SWA_PATTERNS.get(arch)
            if pattern:
                sliding_layers = layers - layers // pattern
    return GgufInfo(path=os.path.abspath(path), architecture=arch, name=name if isinstance(name, str) else "",
                    layers=layers, heads=heads, kv_heads=kv_heads or heads,
                    head_dim=head_dim, context_length=meta.whole(p + "context_length", "max_context"),
                    embedding_length=emb, vocab_size=vocab, quantization=quant, file_type=file_type,
                    weight_bytes=weight_bytes, tensor_count=len(reader.tensors), parameters=params,
                    feed_forward_length=meta.whole(p + "feed_forward_length", "intermediate_size"),
                    tied_embeddings=tied, rope_theta=meta.number(p + "rope.freq_base", "rope_theta"),
                    key_length=key_length, value_length=value_length, expert_count=experts,
                    expert_used_count=meta.whole(p + "expert_used_count", "experts_active", zero_is_absent=True),
                    expert_shared_count=meta.whole(p + "expert_shared_count", "experts") or 0,
                    expert_feed_forward_length=meta.whole(p + "expert_feed_forward_length", "moe_intermediate_size",
                                                          zero_is_absent=True),
                    expert_shared_feed_forward_length=meta.whole(p + "expert_shared_feed_forward_length",
                                                                 "shared_intermediate_size", zero_is_absent=True),
                    leading_dense_block_count=meta.whole(p + "leading_dense_block_count", "dense_layers") or 0,
                    kv_lora_rank=meta.whole(p + "attention.kv_lora_rank", "kv_lora_rank") or 0,
                    sliding_window=window if sliding_layers else 0, sliding_layers=sliding_layers,
                    unmodelled=unmodelled)


def to_model_spec(info: GgufInfo):
    """The architecture facts the advisor plans with, from the file's own metadata.

    The weights' bytes are the tensors' stored sizes (the file's real quantization mix), and
    the file's quantization is the only one it can be served at. read_gguf has range-checked
    every figure; what is missing, or a total out of range, is one line here.
    """
    from pydantic import ValidationError

    from advisor.domain import ModelSpec
    from advisor.errors import AdvisorError
    from advisor.knowledge import MODEL_LIMITS, ModelRow

    need = {"block_count": info.layers, "attention.head_count": info.heads, "embedding_length": info.embedding_length,
            "vocab_size": info.vocab_size}
    missing = [k for k, v in need.items() if not v]
    if info.expert_count and not info.expert_used_count:
        missing.append("expert_used_count (it has expert_count)")
    if info.unmodelled:
        raise AdvisorError(f"model.name: GGUF file {info.path!r}: {info.unmodelled}: its layers are not all attention "
                           "(state-space, linear or recurrent), which the advisor cannot model")
    if missing or not info.parameters:
        raise AdvisorError(f"model.name: GGUF file {info.path!r} lacks {', '.join(missing) or 'tensors'} in its "
                           "metadata; the advisor cannot plan for it")
    # what `missing` checked above (mypy cannot see it through the dict)
    assert info.layers and info.heads and info.embedding_length and info.vocab_size
    lo, hi = MODEL_LIMITS["params_b"]
    if not lo <= info.parameters / 1e9 <= hi or not 1 <= info.weight_bytes <= MODEL_LIMITS["weight_bytes"][1]:
        raise AdvisorError(f"model.name: GGUF file {info.path!r}: its tensors hold {info.parameters:,} parameters in "
                           f"{info.weight_bytes:,} bytes; expected {lo:g} to {hi:,} B parameters")
    emb = int(info.embedding_length)
    heads = int(info.heads)
    # the KV rows llama.cpp allocates per KV head: key_length + value_length (MLA conversions: the latent)
    k_len = info.key_length or info.head_dim or emb // heads
    v_len = info.value_length or k_len
    extra: dict = {}
    if info.expert_count:
        assert info.expert_used_count  # else it is in `missing` above
        width = info.expert_feed_forward_length or info.feed_forward_length or 4 * emb
        shared = info.expert_shared_count
        if info.expert_shared_feed_forward_length and not shared:
            shared = 1  # Qwen2-MoE: one shared expert of its own width
        shared_width = shared * (info.expert_shared_feed_forward_length or width)
        extra = dict(experts=info.expert_count, experts_active=int(info.expert_used_count),
                     moe_intermediate_size=width if info.expert_feed_forward_length else 0,
                     shared_intermediate_size=shared_width, dense_layers=info.leading_dense_block_count)
    if info.sliding_layers:
        extra.update(sliding_window=info.sliding_window, sliding_layers=info.sliding_layers)
    try:
        row = ModelRow(
            id=os.path.splitext(os.path.basename(info.path))[0], family=info.architecture or "unknown",
            hf_architecture=f"gguf:{info.architecture or 'unknown'}", params_b=info.parameters / 1e9,
            layers=int(info.layers), hidden_size=emb, attention_heads=heads,
            kv_heads=int(info.kv_heads or heads), head_dim=(k_len + v_len + 1) // 2,
            intermediate_size=int(info.feed_forward_length or 4 * emb), vocab_size=int(info.vocab_size),
            tied_embeddings=info.tied_embeddings, max_context=int(info.context_length or 4096),
            rope_theta=float(info.rope_theta or 0.0), mmlu=None,
            source=f"{info.path} (GGUF metadata)", origin="gguf",
            weight_bytes=float(info.weight_bytes), file_quantization=info.quantization, **extra,
        )
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"])) or "metadata"
        raise AdvisorError(f"model.name: GGUF file {info.path!r}: {where}: "
                           f"{err['msg'].removeprefix('Value error, ')}") from None
    return ModelSpec(**row.model_dump())


def probe_gguf(path: str, knowledge=None) -> ProbeResult:
    t0 = time.perf_counter()
    info = read_gguf(path)
    warnings = []
    if not info.architecture:
        warnings.append("the file names no general.architecture")
    kv = info.kv_bytes_per_token()
    return ProbeResult(backend="gguf", model=info.path, dtype=info.quantization,
                       kv_bytes_per_token=kv, max_model_len=info.context_length, warnings=warnings,
                       measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       duration_s=round(time.perf_counter() - t0, 3),
                       extra={"gguf": asdict(info), "weights_mib": round(info.weight_bytes / 2**20, 3)})
