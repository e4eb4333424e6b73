"""Fuzz: a local model's own metadata, a HF config.json or a GGUF file's key/value table, with any value
in any key, in every form JSON or GGUF can store it.

Either the model is refused in one line naming the file and what is wrong (exit 2; exit 4 from the GGUF
probe), or it is within the catalog's bounds and the advisor's arithmetic on it gives finite figures.
Never a TypeError, ZeroDivisionError, OverflowError or "internal error".
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from gguf_files import write_gguf_file

from advisor.answers import answers_from_dict
from advisor.errors import AdvisorError, ProbeError
from advisor.knowledge import MODEL_LIMITS, ModelRow, load_knowledge
from advisor.models import resolve_models

_SEQ = itertools.count()

QWEN = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
        "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "vocab_size": 151936, "max_position_embeddings": 32768, "tie_word_embeddings": True,
        "rope_theta": 1000000.0, "hidden_act": "silu"}
GPT2 = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
        "n_inner": None, "vocab_size": 50257, "n_positions": 1024}
KEYS = sorted({*QWEN, *GPT2, "head_dim", "text_config", "d_model", "num_layers", "ffn_dim"})

# Raw JSON text for one value. Python's json reads NaN, Infinity and 1e400 (as inf), so they are in.
JSON_NUMBERS = ["0", "-0", "0.0", "1", "-1", "2", "1e-05", "1e+16", "1e+300", "1.5e-05", "5e-324", "1E5",
                "24.0", "24.5", "9223372036854775807", "18446744073709551616", "1" + "0" * 40,
                "NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
JSON_VALUES = st.one_of(
    st.sampled_from(JSON_NUMBERS),
    st.floats().map(lambda x: "NaN" if x != x else "Infinity" if x == math.inf else "-Infinity" if x == -math.inf
                    else repr(x)),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=1, max_value=200_000).map(str),  # plausible sizes, to reach the arithmetic
    st.sampled_from(['"24"', '"abc"', '""', "true", "false", "null", "[]", "[24]", '["X"]', "{}",
                     '{"hidden_size": 64}']),
)


@pytest.fixture(scope="module")
def k():
    return load_knowledge(None)


def _within_catalog_bounds(spec) -> None:
    row = ModelRow.model_validate({**spec.model_dump(), "source": spec.source})  # raises if out of bounds
    assert row.kv_heads <= row.attention_heads
    assert math.isfinite(spec.kv_bytes_per_token()) and spec.kv_bytes_per_token() > 0


def _exercise(k, spec) -> None:
    """Every candidate the advisor would weigh for this model on a 4090 has finite figures."""
    from advisor.recommend import candidates

    answers = answers_from_dict({"workload": "chat", "hardware": {"gpu": "RTX 4090"}})
    try:
        cands = candidates(k, answers, models=[spec])
    except AdvisorError as e:  # e.g. a GGUF quantization no backend serves: one line, exit 2
        assert e.exit_code == 2 and "\n" not in str(e)
        return
    for e in cands:
        figures = {"vram_gb": e.vram_gb, "ttft_p95_ms": e.load.ttft_p95_ms, "per_user_tok_s": e.load.per_user_tok_s,
                   "total_tok_s": e.load.total_tok_s, "e2e_p95_s": e.load.e2e_p95_s}
        for name, value in figures.items():
            assert math.isfinite(value), (e.backend, e.quant, name)


def _resolve(k, name: str):
    return resolve_models(answers_from_dict({"model": {"name": name}}), k)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from([QWEN, GPT2]), changes=st.dictionaries(st.sampled_from(KEYS), JSON_VALUES,
                                                                   min_size=1, max_size=3),
       drop=st.sets(st.sampled_from(sorted(QWEN)), max_size=2))
def test_any_config_json_is_refused_in_one_line_or_planned_with_finite_figures(tmp_path_factory, k, base,
                                                                                 changes, drop):
    d = tmp_path_factory.mktemp(f"cfg{next(_SEQ)}") / "my-model"
    d.mkdir()
    cfg = {key: json.dumps(v) for key, v in base.items() if key not in drop}
    cfg.update(changes)
    (d / "config.json").write_text("{" + ", ".join(f"{json.dumps(key)}: {v}" for key, v in cfg.items()) + "}")
    try:
        [spec] = _resolve(k, str(d))
    except AdvisorError as e:
        event("refused")
        msg = str(e)
        assert e.exit_code == 2 and "\n" not in msg and len(msg) < 400, msg
        assert msg.startswith(f"model.name: {d / 'config.json'}") or "config.json" in msg, msg
        return
    event("planned")
    _within_catalog_bounds(spec)
    _exercise(k, spec)


# ------------------------------------------------------------------ GGUF
GGUF_KEYS = ["llama.block_count", "llama.embedding_length", "llama.attention.head_count",
             "llama.attention.head_count_kv", "llama.attention.key_length", "llama.context_length",
             "llama.feed_forward_length", "llama.vocab_size", "llama.rope.freq_base", "general.file_type",
             "general.architecture", "general.name"]
BASE_GGUF = {"llama.block_count": ("uint32", 4), "llama.embedding_length": ("uint32", 64),
             "llama.attention.head_count": ("uint32", 8), "llama.attention.head_count_kv": ("uint32", 2),
             "llama.vocab_size": ("uint32", 100), "llama.context_length": ("uint32", 4096),
             "general.file_type": ("uint32", 7)}
RANGES = {"uint8": (0, 2**8 - 1), "int8": (-(2**7), 2**7 - 1), "uint16": (0, 2**16 - 1),
          "int16": (-(2**15), 2**15 - 1), "uint32": (0, 2**32 - 1), "int32": (-(2**31), 2**31 - 1),
          "uint64": (0, 2**64 - 1), "int64": (-(2**63), 2**63 - 1)}


@st.composite
def gguf_value(draw):
    """(GGUFWriter add_ kind, value): every type a GGUF key/value can have."""
    kind = draw(st.sampled_from([*RANGES, "float32", "float64", "bool", "string", "array"]))
    if kind in RANGES:
        lo, hi = RANGES[kind]
        return kind, draw(st.one_of(st.sampled_from([lo, hi, 0, 1]), st.integers(lo, hi),
                                    st.integers(max(lo, 1), min(hi, 100_000))))
    if kind in ("float32", "float64"):
        return kind, draw(st.one_of(st.floats(width=32 if kind == "float32" else 64),
                                    st.sampled_from([1e-05, 1e16, 64.0, 64.5, 0.0, -0.0]).map(float)))
    if kind == "bool":
        return kind, draw(st.booleans())
    if kind == "string":
        return kind, draw(st.one_of(st.sampled_from(["64", "abc", "", "llama", "1e5"]), st.text(max_size=20)))
    return kind, draw(st.one_of(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=4),
                                st.lists(st.sampled_from(["a", "64"]), min_size=1, max_size=3)))


def _write_gguf(path: Path, meta: dict) -> str:
    # general.architecture in `meta` replaces the writer's own
    return write_gguf_file(path, {"token_embd.weight": (100, 64), "blk.0.attn_q.weight": (64, 64)}, meta=meta)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(GGUF_KEYS), gguf_value(), min_size=1, max_size=3),
       drop=st.sets(st.sampled_from(sorted(BASE_GGUF)), max_size=2))
def test_any_gguf_metadata_is_refused_in_one_line_or_planned_with_finite_figures(tmp_path_factory, k, changes, drop):
    import warnings

    from advisor.probes.gguf_probe import probe_gguf

    meta = {key: v for key, v in BASE_GGUF.items() if key not in drop}
    meta.update(changes)
    path = tmp_path_factory.mktemp(f"gguf{next(_SEQ)}") / "m.gguf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the writer warns when general.architecture is replaced
        _write_gguf(path, meta)
    # the probe: its figures, or one line with exit 4
    try:
        r = probe_gguf(str(path))
    except ProbeError as e:
        assert e.exit_code == 4 and "\n" not in str(e) and str(path) in str(e), str(e)
    else:
        assert r.kv_bytes_per_token is None or math.isfinite(r.kv_bytes_per_token)
        json.dumps(r.model_dump(mode="json"), allow_nan=False)
    # the plan: a model within the catalog's bounds, or one line with exit 2
    try:
        [spec] = _resolve(k, str(path))
    except AdvisorError as e:
        event("refused")
        msg = str(e)
        assert e.exit_code == 2 and "\n" not in msg and msg.startswith("model.name: ") and len(msg) < 400, msg
        return
    event("planned")
    _within_catalog_bounds(spec)
    assert spec.max_context <= MODEL_LIMITS["max_context"][1]
    _exercise(k, spec)
