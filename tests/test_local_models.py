"""A model the user points at instead of naming from the catalog: a GGUF file or a local HF folder.

The plan must be one the file can actually be served as: a GGUF file runs on the llama.cpp
family at its own quantization (and weighs what its tensors store); a HF folder runs on the
HF-format backends, or is imported by Ollama at the few quantizations `ollama create` makes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.answers import answers_from_dict
from advisor.cli import main
from advisor.engine import recommend


def write_gguf(path, file_type=15, with_output=True):
    """A small but real GGUF file (gguf.GGUFWriter): a llama-style block with its metadata."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("my-finetune")
    w.add_block_count(4)
    w.add_context_length(8192)
    w.add_embedding_length(512)
    w.add_feed_forward_length(1536)
    w.add_head_count(8)
    w.add_head_count_kv(2)
    w.add_file_type(file_type)
    w.add_token_list([f"t{i}" for i in range(1000)])
    w.add_tensor("token_embd.weight", np.zeros((1000, 512), dtype=np.float16))
    for i in range(4):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((512, 512), dtype=np.float16))
        w.add_tensor(f"blk.{i}.ffn_up.weight", np.zeros((1536, 512), dtype=np.float16))
    if with_output:
        w.add_tensor("output.weight", np.zeros((1000, 512), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


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
    import gguf

    path = tmp_path / "bare.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("token_embd.weight", np.zeros((10, 8), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
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
