"""A local GGUF file's metadata (the gguf package's GGUFReader): no GPU, no weights loaded.

Architecture, layers, heads, KV heads, context length, embedding length, vocabulary,
quantization (general.file_type, else the most common tensor type) and the weights' bytes
(the sum of the tensors' stored sizes), and from them the f16 KV bytes per token.
"""

from __future__ import annotations

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

    def kv_bytes_per_token(self, kv_dtype_bytes: float = 2.0) -> float | None:
        if not (self.layers and self.kv_heads and self.head_dim):
            return None
        return 2.0 * self.layers * self.kv_heads * self.head_dim * kv_dtype_bytes


def _scalar(reader, key: str):
    field = reader.get_field(key)
    if field is None or not field.data:
        return None
    part = field.parts[field.data[0]]
    try:
        if len(field.types) and field.types[0].name == "STRING":
            return bytes(part).decode("utf-8", errors="replace")
        return part.tolist()[0] if hasattr(part, "tolist") else part
    except Exception:
        return None


def _array_len(reader, key: str) -> int | None:
    field = reader.get_field(key)
    return len(field.data) if field is not None else None


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
        raise ProbeError(f"--model {path!r} is not a readable GGUF file ({str(e).splitlines()[0][:120] if str(e) else e.__class__.__name__})") from None
    arch = _scalar(reader, "general.architecture") or ""
    a = lambda key: _scalar(reader, f"{arch}.{key}")  # noqa: E731
    heads, emb = a("attention.head_count"), a("embedding_length")
    head_dim = a("attention.key_length") or (emb // heads if emb and heads else None)
    vocab = a("vocab_size") or _array_len(reader, "tokenizer.ggml.tokens")
    file_type = _scalar(reader, "general.file_type")
    types = Counter()
    weight_bytes = params = 0
    for t in reader.tensors:
        weight_bytes += int(t.n_bytes)
        params += int(t.n_elements)
        if len(t.shape) >= 2:
            types[t.tensor_type.name.lower()] += int(t.n_bytes)
    if file_type is not None and int(file_type) in FILE_TYPES:
        quant = FILE_TYPES[int(file_type)]
    elif types:
        quant = types.most_common(1)[0][0]
    else:
        quant = ""
    return GgufInfo(path=os.path.abspath(path), architecture=arch, name=_scalar(reader, "general.name") or "",
                    layers=a("block_count"), heads=heads, kv_heads=a("attention.head_count_kv") or heads,
                    head_dim=head_dim, context_length=a("context_length"), embedding_length=emb,
                    vocab_size=vocab, quantization=quant, file_type=file_type, weight_bytes=weight_bytes,
                    tensor_count=len(reader.tensors), parameters=params,
                    feed_forward_length=a("feed_forward_length"),
                    tied_embeddings=not any(t.name == "output.weight" for t in reader.tensors),
                    rope_theta=a("rope.freq_base"))


def to_model_spec(info: GgufInfo):
    """The architecture facts the advisor plans with, from the file's own metadata.

    The weights' bytes are the tensors' stored sizes (the file's real quantization mix), and
    the file's quantization is the only one it can be served at.
    """
    from advisor.domain import ModelSpec
    from advisor.errors import AdvisorError

    need = {"block_count": info.layers, "attention.head_count": info.heads, "embedding_length": info.embedding_length,
            "vocab_size": info.vocab_size}
    missing = [k for k, v in need.items() if not v]
    if missing or not info.parameters:
        raise AdvisorError(f"model.name: GGUF file {info.path!r} lacks {', '.join(missing) or 'tensors'} in its "
                           "metadata; the advisor cannot plan for it")
    emb = int(info.embedding_length)
    return ModelSpec(
        id=os.path.splitext(os.path.basename(info.path))[0], family=info.architecture or "unknown",
        hf_architecture=f"gguf:{info.architecture or 'unknown'}", params_b=info.parameters / 1e9,
        layers=int(info.layers), hidden_size=emb, attention_heads=int(info.heads),
        kv_heads=int(info.kv_heads or info.heads), head_dim=int(info.head_dim or emb // int(info.heads)),
        intermediate_size=int(info.feed_forward_length or 4 * emb), vocab_size=int(info.vocab_size),
        tied_embeddings=info.tied_embeddings, max_context=int(info.context_length or 4096),
        rope_theta=float(info.rope_theta or 0.0), mmlu=None,
        source=f"{info.path} (GGUF metadata)", origin="gguf",
        weight_bytes=float(info.weight_bytes), file_quantization=info.quantization,
    )


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
