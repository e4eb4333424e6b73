"""The knowledge base: every table loads, every row has a source, bad files fail with file/row/field."""

from __future__ import annotations

import pytest

from advisor.errors import KnowledgeError
from advisor.knowledge import load_knowledge

REQUIRED_MODELS = ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "llama3.2-1b", "llama3.2-3b",
                   "llama3.1-8b", "phi-2", "gpt2", "mistral-7b"]
REQUIRED_GPUS = ["RTX 2060", "RTX 3060", "RTX 4060", "RTX 4080", "RTX 4080 Laptop", "RTX 4090", "L4", "A10",
                 "A100 40GB", "A100 80GB", "H100 80GB", "H200 141GB"]


def test_every_row_of_every_table_names_its_source(k):
    for name, table in k.tables.items():
        assert table.rows, name
        for row in table.rows:
            assert row.source.strip(), f"{name}: {row}"


def test_catalogs_cover_the_models_and_gpus_users_ask_for(k):
    for m in REQUIRED_MODELS:
        spec = k.model(m)
        assert spec.layers > 0 and spec.kv_heads <= spec.attention_heads
    for g in REQUIRED_GPUS:
        assert k.gpu(g).bandwidth_gb_s > 0


def test_model_parameter_counts_agree_with_their_architecture(k):
    # The stored params_b must match what the config facts imply (within 3 %), or the
    # weights, FLOPs and bandwidth maths all inherit the error.
    from advisor.models import from_hf_directory  # noqa: F401  (same arithmetic as a local config)
    for m in k.models.values():
        attn = m.hidden_size * m.attention_heads * m.head_dim * 2 + m.hidden_size * m.kv_heads * m.head_dim * 2
        mlp = m.hidden_size * m.intermediate_size * (2 if m.family in ("gpt2", "phi") else 3)
        params = m.layers * (attn + mlp) + m.vocab_size * m.hidden_size * (1 if m.tied_embeddings else 2)
        assert params / 1e9 == pytest.approx(m.params_b, rel=0.03), m.id


def test_gpu_lookup_accepts_nvml_names_and_suggests_close_matches(k):
    assert k.match_gpu("NVIDIA H100 80GB HBM3").name == "H100 80GB"
    assert k.match_gpu("NVIDIA GeForce RTX 4090").name == "RTX 4090"
    with pytest.raises(Exception) as e:
        k.gpu("RTX 4091")
    assert "did you mean" in str(e.value)


def _write(d, name, text):
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")


def test_user_rows_override_bundled_rows_by_key(tmp_path):
    _write(tmp_path, "thresholds.toml", """
[meta]
table = "thresholds"
[[rows]]
key = "vram_alert_warning"
value = 0.7
unit = "fraction"
source = "our SRE policy"
""")
    k = load_knowledge(tmp_path)
    assert k.value("vram_alert_warning") == 0.7
    assert k.source("vram_alert_warning") == "our SRE policy"
    assert k.value("vram_alert_hard_stop") == 0.90  # untouched rows stay


def test_user_can_add_a_table_of_their_own(tmp_path):
    _write(tmp_path, "prices.toml", """
[meta]
table = "gpu_prices"
title = "What our GPUs cost"
[[rows]]
gpu = "RTX 4090"
usd_per_hour = 0.6
source = "our cloud bill, 2026-10"
""")
    k = load_knowledge(tmp_path)
    assert k.tables["gpu_prices"].rows[0].usd_per_hour == 0.6


@pytest.mark.parametrize("text, expected", [
    ('[meta]\ntable = "gpus"\n[[rows]]\nname = "X"\nvram_gb = -1\nbandwidth_gb_s = 1\nfp16_tflops = 1\nsource = "s"\n',
     "table 'gpus' row 1 (name='X'): field 'vram_gb'"),
    ('[meta]\ntable = "gpus"\n[[rows]]\nname = "X"\nvram_gb = 8\nbandwidth_gb_s = 1\nfp16_tflops = 1\n',
     "field 'source'"),
    ('[meta]\ntable = "mine"\n[[rows]]\nx = 1\n', "table 'mine' row 1: field 'source'"),
    ('[meta\ntable = "gpus"\n', "not valid TOML"),
    ('[[rows]]\nx = 1\n', "missing [meta]"),
])
def test_a_malformed_user_file_fails_naming_file_row_and_field(tmp_path, text, expected):
    _write(tmp_path, "bad.toml", text)
    with pytest.raises(KnowledgeError) as e:
        load_knowledge(tmp_path)
    msg = str(e.value)
    assert "bad.toml" in msg and expected in msg
    assert "\n" not in msg
