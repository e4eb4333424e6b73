#!/usr/bin/env python3
"""Write a random-weight GGUF of a catalog architecture (knowledge/models.toml) for llama.cpp.

Speed and memory of llama.cpp do not depend on the weights' values, only on the tensor
shapes and types, so the weights are random (never all zeros) and the tokenizer is the real
one, copied from llama.cpp's vocab-only GGUFs (models/ggml-vocab-llama-bpe.gguf for llama3,
models/ggml-vocab-qwen2.gguf for qwen2.5).

Two ways to get a quantized file:

  * standard:  --type f16, then `llama-quantize model-f16.gguf model-q4_k_m.gguf Q4_K_M`
  * direct:    --type q4_k_m --layout bench/calibrate/llamacpp/layouts/<model>-q4_k_m.json
               writes the quantized file directly, with the per-tensor types that
               `llama-quantize --dry-run` chose for that model and quantization (the layout
               files are made by make_layouts.py from a sparse F16 file), filling every block
               with random bytes whose fp16 scale fields are set to small finite values.
               Same tensor names, shapes and types as llama-quantize's output, so the same
               bytes on the GPU and the same kernels; it saves the F16 write and the
               quantization pass on the GPU machine.

--sparse writes the header and seeks over the data (a sparse file): only for --dry-run
layout extraction, never for timing.

Usage:
  PYTHONPATH=.llama/gguf-py python3 bench/calibrate/llamacpp/make_gguf.py --model qwen2.5-1.5b \
      --type f16 --out /tmp/m/qwen2.5-1.5b-f16.gguf
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

try:
    import tomllib
except ImportError:  # pragma: no cover
    import tomli as tomllib  # type: ignore

import gguf  # from llama.cpp's gguf-py (PYTHONPATH)
from gguf import GGMLQuantizationType as T

REPO = Path(__file__).resolve().parents[3]

VOCAB = {"llama": "ggml-vocab-llama-bpe.gguf", "qwen2": "ggml-vocab-qwen2.gguf"}
ARCH = {"llama": "llama", "qwen2": "qwen2"}

# llama_ftype numbers (include/llama.h) for general.file_type
FTYPE = {"f16": 1, "q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18, "q4_0": 2, "q3_k_s": 11}

# byte offsets of the fp16 scale fields inside one block, per type (ggml-common.h)
FP16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0],
}


def load_model(model_id: str) -> dict:
    with open(REPO / "knowledge" / "models.toml", "rb") as f:
        rows = tomllib.load(f)["rows"]
    for r in rows:
        if r["id"] == model_id:
            return r
    raise SystemExit(f"model {model_id!r} not in knowledge/models.toml")


def tensor_plan(m: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(gguf name, ggml ne (fastest dim first), role) for every tensor llama.cpp loads."""
    E, L, H, KV, D, F, V = (m["hidden_size"], m["layers"], m["attention_heads"], m["kv_heads"],
                            m["head_dim"], m["intermediate_size"], m["vocab_size"])
    qwen = m["family"] == "qwen2"
    out = [("token_embd.weight", (E, V), "w")]
    for i in range(L):
        p = f"blk.{i}."
        out += [
            (p + "attn_norm.weight", (E,), "norm"),
            (p + "attn_q.weight", (E, H * D), "w"),
            (p + "attn_k.weight", (E, KV * D), "w"),
            (p + "attn_v.weight", (E, KV * D), "w"),
        ]
        if qwen:
            out += [(p + "attn_q.bias", (H * D,), "bias"), (p + "attn_k.bias", (KV * D,), "bias"),
                    (p + "attn_v.bias", (KV * D,), "bias")]
        out += [
            (p + "attn_output.weight", (H * D, E), "w"),
            (p + "ffn_norm.weight", (E,), "norm"),
            (p + "ffn_gate.weight", (E, F), "w"),
            (p + "ffn_up.weight", (E, F), "w"),
            (p + "ffn_down.weight", (F, E), "w"),
        ]
    out.append(("output_norm.weight", (E,), "norm"))
    if not m["tied_embeddings"]:
        out.append(("output.weight", (E, V), "w"))
    return out


def nbytes_of(ne: tuple[int, ...], t: T) -> int:
    blk, size = gguf.GGML_QUANT_SIZES[t]
    n = int(np.prod(ne))
    assert ne[0] % blk == 0, (ne, t)
    return n // blk * size


def random_buffer(t: T, nbytes: int, rng: np.random.Generator) -> bytes:
    """A buffer of valid random data of type t (a whole number of blocks)."""
    if t == T.F16:
        return (rng.standard_normal(nbytes // 2, dtype=np.float32) * 0.02).astype(np.float16).tobytes()
    if t == T.F32:
        return (rng.standard_normal(nbytes // 4, dtype=np.float32) * 0.02).tobytes()
    if t == T.BF16:
        f = (rng.standard_normal(nbytes // 2, dtype=np.float32) * 0.02)
        return (f.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    if t not in FP16_FIELDS:
        raise SystemExit(f"no random-block recipe for {t.name}")
    _, size = gguf.GGML_QUANT_SIZES[t]
    nb = nbytes // size
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for off in FP16_FIELDS[t]:
        d = rng.uniform(2e-4, 2e-3, size=nb).astype(np.float16)
        raw[:, off:off + 2] = d.view(np.uint8).reshape(nb, 2)
    return raw.tobytes()


def tokenizer_fields(vocab_path: Path) -> list:
    """[key, value, type, sub_type] for every tokenizer.* field of a vocab-only GGUF.
    GGUFReader is slow on 150K-280K strings, so the fields are cached as JSON next to it."""
    cache = vocab_path.with_suffix(".tokenizer.json")
    if cache.exists():
        return json.loads(cache.read_text())
    r = gguf.GGUFReader(vocab_path)
    out = []
    for key, field in r.fields.items():
        if key.startswith("tokenizer."):
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            val = field.contents()
            out.append([key, val, int(vtype), int(sub) if sub is not None else None])
    try:
        cache.write_text(json.dumps(out))
    except OSError:
        pass
    return out


def copy_tokenizer(w: gguf.GGUFWriter, vocab_path: Path, n_vocab: int) -> None:
    for key, val, vtype, sub in tokenizer_fields(vocab_path):
        vtype = gguf.GGUFValueType(vtype)
        sub = gguf.GGUFValueType(sub) if sub is not None else None
        if key == "tokenizer.ggml.tokens" and len(val) < n_vocab:
            # the checkpoint's embedding is padded past the tokenizer (qwen2.5-7b: 152064 vs
            # 151936); convert_hf_to_gguf pads the token list the same way
            val = val + [f"[PAD{i}]" for i in range(len(val), n_vocab)]
        if key == "tokenizer.ggml.token_type" and len(val) < n_vocab:
            val = list(val) + [int(gguf.TokenType.UNUSED)] * (n_vocab - len(val))
        w.add_key_value(key, val, vtype, sub_type=sub)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="id in knowledge/models.toml")
    ap.add_argument("--type", default="f16", help="f16, or a quantization with --layout")
    ap.add_argument("--layout", help="json {tensor name: ggml type name} from llama-quantize --dry-run")
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-dir", default=str(REPO / ".llama" / "models"))
    ap.add_argument("--sparse", action="store_true", help="seek over tensor data (layout extraction only)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    m = load_model(a.model)
    fam = m["family"]
    arch = ARCH[fam]
    qtype = a.type.lower()
    layout = json.loads(Path(a.layout).read_text()) if a.layout else None
    if qtype != "f16" and layout is None:
        raise SystemExit("a quantized type needs --layout (or write f16 and run llama-quantize)")

    t0 = time.time()
    w = gguf.GGUFWriter(a.out, arch)
    w.add_name(f"{m['id']} (random weights, advisor bench)")
    w.add_context_length(m["max_context"])
    w.add_embedding_length(m["hidden_size"])
    w.add_block_count(m["layers"])
    w.add_feed_forward_length(m["intermediate_size"])
    w.add_head_count(m["attention_heads"])
    w.add_head_count_kv(m["kv_heads"])
    w.add_rope_dimension_count(m["head_dim"])
    w.add_key_length(m["head_dim"])
    w.add_value_length(m["head_dim"])
    w.add_rope_freq_base(float(m["rope_theta"]))
    w.add_layer_norm_rms_eps(1e-5 if fam == "llama" else 1e-6)
    w.add_vocab_size(m["vocab_size"])
    w.add_file_type(FTYPE.get(qtype, 1))
    if qtype != "f16":
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    copy_tokenizer(w, Path(a.vocab_dir) / VOCAB[fam], m["vocab_size"])

    plan = []
    for name, ne, role in tensor_plan(m):
        if role in ("norm", "bias"):
            t = T.F32
        elif layout is not None:
            t = T[layout[name]]
        else:
            t = T.F16
        nb = nbytes_of(ne, t)
        plan.append((name, ne, role, t, nb))
        # gguf-py takes numpy-order shapes (slowest first) and reverses them
        w.add_tensor_info(name, tuple(reversed(ne)), np.float32, nb, raw_dtype=t)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    fout = w.fout[0]
    align = w.data_alignment
    fout.flush()
    fd = fout.fileno()

    def pad_to_align():
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        pad = (-pos) % align
        if pad:
            os.write(fd, b"\0" * pad)

    rng = np.random.default_rng(a.seed)
    CHUNK = 64 << 20  # one 64 MiB random buffer per type, tiled (values don't matter, only != 0)
    bufs: dict[T, bytes] = {}
    total = 0
    for name, ne, role, t, nb in plan:
        pad_to_align()
        if a.sparse:
            os.lseek(fd, nb, os.SEEK_CUR)
        elif role == "norm":
            os.write(fd, (1.0 + 0.01 * rng.standard_normal(nb // 4, dtype=np.float32)).astype(np.float32).tobytes())
        elif role == "bias":
            os.write(fd, random_buffer(T.F32, nb, rng))
        else:
            _, size = gguf.GGML_QUANT_SIZES[t]
            if t not in bufs:
                bufs[t] = random_buffer(t, CHUNK // size * size, rng)
            buf = memoryview(bufs[t])
            left = nb
            while left > 0:
                n = min(left, len(buf))
                os.write(fd, buf[:n])
                left -= n
        total += nb
    pad_to_align()
    if a.sparse:
        os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))
    fout.close()
    size = os.path.getsize(a.out)
    print(json.dumps({"model": m["id"], "type": qtype, "out": a.out, "file_bytes": size,
                      "tensor_bytes": total, "n_tensors": len(plan), "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
