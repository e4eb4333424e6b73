"""A model the user points at instead of naming from the catalog: a GGUF file or a local HF folder.

The plan must be one the file can actually be served as: a GGUF file runs on the llama.cpp
family at its own quantization (and weighs what its tensors store); a HF folder runs on the
HF-format backends, or is imported by Ollama at the few quantizations `ollama create` makes.
"""

from __future__ import annotations

import json

import pytest
from gguf_files import write_gguf_file

from advisor.answers import answers_from_dict
from advisor.cli import main
from advisor.recommend import recommend


def write_gguf(path, file_type=15, with_output=True):
    """A small but real GGUF file (gguf.GGUFWriter): a llama-style block with its metadata."""

    def setup(w):
        w.add_name("my-finetune")
        w.add_block_count(4)
        w.add_context_length(8192)
        w.add_embedding_length(512)
        w.add_feed_forward_length(1536)
        w.add_head_count(8)
        w.add_head_count_kv(2)
        w.add_file_type(file_type)
        w.add_token_list([f"t{i}" for i in range(1000)])

    tensors = {"token_embd.weight": (1000, 512)}
    for i in range(4):
        tensors[f"blk.{i}.attn_q.weight"] = (512, 512)
        tensors[f"blk.{i}.ffn_up.weight"] = (1536, 512)
    if with_output:
        tensors["output.weight"] = (1000, 512)
    return write_gguf_file(path, tensors, setup=setup)


def hf_folder(tmp_path):
    d = tmp_path / "my-qwen"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
        "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
        "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
        "tie_word_embeddings": True, "hidden_act": "silu"}))
    return str(d)


def plan_for(k, name, **more):
    a = answers_from_dict({"workload": "chat", "model": {"name": name}, "hardware": {"gpu": "RTX 4090"}, **more})
    return recommend(a, knowledge=k)


def test_a_gguf_file_is_served_as_it_is_by_the_llama_cpp_family(k, tmp_path):
    path = write_gguf(tmp_path / "my-finetune.Q4_K_M.gguf")
    rec = plan_for(k, path)
    p = rec.recommendation
    assert p.backend in ("ollama", "llamacpp") and p.quantization == "q4_k_m"
    assert all(a.backend in ("ollama", "llamacpp") and a.quantization == "q4_k_m" for a in rec.alternatives)
    # its weights are the bytes its tensors store, and the figure says so
    vram = p.predicted.origins["vram_gb"].source
    assert "GGUF file's tensors" in vram
    assert "H.4" in {pb.id for pb in rec.playbooks}  # not in the catalog: validate it first
    assert p.settings["local_path"].value == path


def test_a_gguf_file_cannot_be_pinned_to_a_backend_or_quantization_it_is_not(k, tmp_path, capsys):
    path = write_gguf(tmp_path / "m.gguf")
    for flag, value in (("--backend", "vllm"), ("--quantization", "q8_0")):
        code = main(["recommend", "--gpu", "RTX 4090", "--model", path, flag, value])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and "Traceback" not in err
        assert f"constraints.{flag[2:]}: '{value}'" in err and "allowed: ollama at q4_k_m; llamacpp at q4_k_m" in err


def test_a_gguf_quantization_without_tables_is_one_line_not_a_guess(k, tmp_path, capsys):
    path = write_gguf(tmp_path / "m.Q4_0.gguf", file_type=2)  # LLAMA_FTYPE_MOSTLY_Q4_0
    code = main(["recommend", "--gpu", "RTX 4090", "--model", path])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "model.name" in err and "'q4_0'" in err


def test_a_gguf_file_without_architecture_metadata_is_one_line(k, tmp_path, capsys):
    path = write_gguf_file(tmp_path / "bare.gguf", {"token_embd.weight": (10, 8)})
    code = main(["recommend", "--gpu", "RTX 4090", "--model", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "model.name" in err and "block_count" in err


def test_a_local_hf_folder_is_never_planned_on_llama_cpp_or_at_a_quantization_ollama_cannot_create(k, tmp_path):
    rec = plan_for(k, hf_folder(tmp_path))
    plans = [rec.recommendation] + rec.alternatives
    assert all(p.backend != "llamacpp" for p in plans)  # needs a GGUF conversion first
    for p in plans:
        if p.backend == "ollama":
            assert p.quantization in ("fp16", "q8_0", "q4_k_m")
    assert rec.recommendation.settings["local_path"].value.endswith("my-qwen")


@pytest.mark.parametrize("backend", ["vllm", "ollama", "transformers"])
def test_a_local_hf_folder_can_be_pinned_to_a_backend_that_takes_it(k, tmp_path, backend):
    rec = plan_for(k, hf_folder(tmp_path), constraints={"backend": backend})
    assert rec.recommendation is not None and rec.recommendation.backend == backend


# ------------------------------------------------------------------ bad metadata is one line (issue 15)
QWEN_CFG = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
            "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
            "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768}


@pytest.mark.parametrize("change, words", [
    ({"num_hidden_layers": -3}, "num_hidden_layers = -3 is not allowed; expected a whole number from 1 to"),
    ({"num_hidden_layers": "24"}, "num_hidden_layers = '24' is not allowed"),
    ({"num_hidden_layers": 24.5}, "num_hidden_layers = 24.5 is not allowed"),
    ({"num_hidden_layers": True}, "num_hidden_layers = True is not allowed"),
    ({"num_key_value_heads": 1e8}, "num_key_value_heads = 100000000.0 is not allowed"),
    ({"num_key_value_heads": 28}, "num_key_value_heads = 28 is not allowed; expected at most num_attention_heads (14)"),
    ({"vocab_size": None}, "lacks vocab_size"),
    ({"num_attention_heads": 0}, "num_attention_heads = 0 is not allowed"),
    ({"hidden_size": 2}, "hidden_size = 2 is smaller than num_attention_heads = 14"),
    ({"max_position_embeddings": -1}, "max_position_embeddings = -1"),
    ({"rope_theta": "1e6"}, "rope_theta = '1e6' is not allowed; expected a number"),
    ({"tie_word_embeddings": "false"}, "tie_word_embeddings = 'false' is not allowed; expected true or false"),
    ({"architectures": "Qwen2ForCausalLM"}, "architectures = 'Qwen2ForCausalLM' is not allowed"),
    ({"model_type": 7}, "model_type = 7 is not allowed; expected a string"),
    ({"text_config": 5}, "text_config = 5 is not allowed"),
    ({"text_config": {"hidden_size": 896}}, "(text_config): lacks num_hidden_layers"),
    ({"hidden_size": 2**20, "intermediate_size": 2**24, "num_hidden_layers": 4096, "vocab_size": 2**24},
     "B parameters; expected"),
])
def test_bad_local_config_json_is_one_line_naming_file_and_key(tmp_path, capsys, change, words):
    d = tmp_path / "m"
    d.mkdir()
    cfg = {**QWEN_CFG, **change}
    (d / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if v is not None}))
    code = main(["recommend", "--gpu", "RTX 4090", "--model", str(d), "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal error" not in err
    assert f"model.name: {d / 'config.json'}" in err and words in err, err


@pytest.mark.parametrize("text, words", [
    ("[1, 2]", "expected a JSON object, found list"),
    (json.dumps(QWEN_CFG)[:-1] + ', "num_hidden_layers": 1e400}', "num_hidden_layers = inf is not allowed"),
    (json.dumps(QWEN_CFG)[:-1] + ', "num_hidden_layers": NaN}', "num_hidden_layers = nan is not allowed"),
    ("[" * 100_000 + "]" * 100_000, "not readable JSON"),
    ('{"a": ', "not readable JSON"),
])
def test_config_json_that_is_not_a_config_is_one_line(tmp_path, capsys, text, words):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(text)
    assert main(["recommend", "--gpu", "RTX 4090", "--model", str(d), "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_text_config_null_reads_the_top_level(k, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({**QWEN_CFG, "text_config": None}))
    rec = plan_for(k, str(d))
    assert rec.recommendation is not None and rec.recommendation.model == "m"


def test_a_config_json_that_is_a_fifo_does_not_hang(tmp_path):
    import os
    import subprocess
    import sys

    d = tmp_path / "m"
    d.mkdir()
    os.mkfifo(d / "config.json")
    r = subprocess.run([sys.executable, "-m", "advisor", "recommend", "--gpu", "RTX 4090", "--model", str(d),
                        "--no-cache"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a regular file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _gguf_with(path, meta):
    """A real GGUF file whose metadata is exactly `meta` (key -> (GGUFWriter add_ kind, value))."""
    return write_gguf_file(path, {"token_embd.weight": (100, 64)}, meta=meta)


GGUF_META = {"llama.block_count": ("uint32", 4), "llama.embedding_length": ("uint32", 64),
             "llama.attention.head_count": ("uint32", 8), "llama.attention.head_count_kv": ("uint32", 2),
             "llama.vocab_size": ("uint32", 100), "llama.context_length": ("uint32", 4096),
             "general.file_type": ("uint32", 7)}


@pytest.mark.parametrize("change, words", [
    ({"llama.block_count": ("int32", -3)}, "llama.block_count = -3 is not allowed"),
    ({"llama.block_count": ("string", "abc")}, "llama.block_count = 'abc' is not allowed"),
    ({"llama.block_count": ("bool", True)}, "llama.block_count = True is not allowed"),
    ({"llama.attention.head_count_kv": ("uint32", 100_000_000)}, "llama.attention.head_count_kv = 100000000"),
    ({"llama.attention.head_count_kv": ("uint32", 16)}, "expected at most llama.attention.head_count (8)"),
    ({"llama.embedding_length": ("float32", 64.5)}, "llama.embedding_length = 64.5 is not allowed"),
    ({"llama.rope.freq_base": ("float32", float("nan"))}, "llama.rope.freq_base = nan is not allowed"),
    ({"llama.context_length": ("int64", -(2**40))}, "llama.context_length = -1099511627776"),
    ({"general.file_type": ("int32", -1)}, "general.file_type = -1 is not allowed"),
])
def test_bad_gguf_metadata_is_one_line_naming_file_and_key(tmp_path, capsys, change, words):
    path = _gguf_with(tmp_path / "m.gguf", {**GGUF_META, **change})
    code = main(["recommend", "--gpu", "RTX 4090", "--model", path, "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and f"model.name: {path!r}: GGUF metadata" in err and words in err, err


def test_a_per_layer_kv_head_array_plans_with_the_largest(k, tmp_path):
    from advisor.probes.gguf_probe import read_gguf, to_model_spec

    path = _gguf_with(tmp_path / "m.gguf", {**GGUF_META, "llama.attention.head_count_kv": ("array", [1, 2, 4])})
    spec = to_model_spec(read_gguf(path))
    assert spec.kv_heads == 4 and spec.kv_bytes_per_token() == 2 * 4 * 4 * 8 * 2  # layers 4, head_dim 64/8
