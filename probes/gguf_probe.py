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
                    tensor_count=len(reader.tensors), parameters=params)


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
