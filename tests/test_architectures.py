"""Architectures beyond a dense transformer: mixture of experts, latent attention, sliding windows.

The config folders in tests/fixtures/configs/ are the published config.json files of DeepSeek-V3
(671B MoE with MLA), Mixtral-8x7B (46.7B MoE), Gemma-2-9B and Gemma-3-12B (sliding-window hybrid
layers). What a user would notice: the parameter count the plan's weights come from, the KV cache
per token the context budget divides by, the bytes each decoded token reads, and a plan that fits
the hardware (or says it cannot) instead of a 671B model planned as a 38B dense one on one GPU.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from gguf_files import write_gguf_file

from advisor import physics
from advisor.answers import answers_from_dict
from advisor.cli import main
from advisor.recommend import recommend
from advisor.models import from_hf_directory

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
GIB = 2**30


def spec(name: str):
    return from_hf_directory(CONFIGS / name)


def recommend_for(k, model: str, gpu: str, gpus: int = 1, **more):
    a = answers_from_dict({"workload": "chat", "model": {"name": model}, "hardware": {"gpu": gpu, "gpus": gpus},
                           **more})
    return recommend(a, knowledge=k)


# ------------------------------------------------------------------ parameter counts vs published
@pytest.mark.parametrize("name, total_b, active_b, why", [
    # DeepSeek-V3 README_WEIGHTS.md: 671B main model, 36.7B activated (0.9B embedding + 0.9B head included)
    ("deepseek-v3", 671.0, 36.7, "README_WEIGHTS.md"),
    # Mixtral paper (arXiv 2401.04088): 47B total ("46.7B" on the model card), 13B active
    ("mixtral-8x7b", 46.7, 12.9, "Mixtral of Experts"),
    # Gemma 2 report: 917,504,000 embedding + 8,324,201,984 non-embedding parameters
    ("gemma-2-9b", 9.2417, 9.2417, "Gemma 2 report, table 2"),
    # Gemma 3 report: 1,012M embedding + 10,759M non-embedding (the 417M vision encoder apart)
    ("gemma-3-12b", 11.771, 11.771, "Gemma 3 report, table 1"),
])
def test_parameter_counts_match_the_published_figures(name, total_b, active_b, why):
    m = spec(name)
    assert m.params / 1e9 == pytest.approx(total_b, rel=0.01), why
    assert m.active_params / 1e9 == pytest.approx(active_b, rel=0.03), why


def test_a_mixture_of_experts_computes_and_reads_only_its_active_experts():
    m = spec("mixtral-8x7b")
    assert m.experts == 8 and m.experts_active == 2
    # what a prompt token multiplies through and a decoded token reads: 2 of the 8 experts
    assert m.non_embedding_params / 1e9 == pytest.approx(12.62, rel=0.01)
    assert m.decode_read_params / 1e9 == pytest.approx(12.75, rel=0.01)
    # a batch of decodes touches more experts: every one of the 8 at a batch of 64
    assert m.decode_step_read_params(64) == pytest.approx(m.params - m.embedding_params, rel=0.01)
    assert m.decode_step_read_params(1) == m.decode_read_params


def test_deepseek_counts_its_dense_layers_shared_expert_and_latent_attention():
    m = spec("deepseek-v3")
    assert (m.experts, m.experts_active, m.dense_layers) == (256, 8, 3)
    assert m.moe_intermediate_size == 2048 and m.shared_intermediate_size == 2048
    assert (m.kv_lora_rank, m.q_lora_rank, m.qk_rope_head_dim) == (512, 1536, 64)
    assert m.file_quantization == "fp8"  # quantization_config: the checkpoint ships in FP8


def test_the_catalog_mixtral_is_the_config_folder_mixtral(k):
    row, local = k.model("mixtral-8x7b"), spec("mixtral-8x7b")
    assert row.params_b == pytest.approx(local.params_b, rel=1e-3)
    assert row.active_params == pytest.approx(local.active_params, rel=1e-3)
    assert row.kv_bytes_per_token() == local.kv_bytes_per_token()


# ------------------------------------------------------------------ KV cache per token
def test_latent_attention_caches_the_compressed_latent_not_the_heads():
    m = spec("deepseek-v3")
    # 61 layers x (kv_lora_rank 512 + rope 64) x 2 B; 128 heads x (192 + 128) would be 71x more
    assert m.kv_bytes_per_token() == 61 * (512 + 64) * 2 == 70_272
    assert m.kv_bytes_for(32_768) / GIB == pytest.approx(2.145, abs=0.001)


def test_grouped_query_attention_kv_per_token():
    assert spec("mixtral-8x7b").kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2 == 131_072


@pytest.mark.parametrize("name, window, sliding, at_4k_gib, at_32k_gib, uncapped_32k_gib", [
    # Gemma 2 9B: 21 of 42 layers slide over 4,096 tokens; 8 KV heads x 256 x 2 (K, V) x 2 B per layer
    ("gemma-2-9b", 4096, 21, 1.3125, 5.90625, 10.5),
    # Gemma 3 12B: 40 of 48 layers slide over 1,024 tokens
    ("gemma-3-12b", 1024, 40, 0.5625, 2.3125, 12.0),
])
def test_sliding_layers_cap_their_kv_at_the_window(name, window, sliding, at_4k_gib, at_32k_gib, uncapped_32k_gib):
    m = spec(name)
    assert (m.sliding_window, m.sliding_layers) == (window, sliding)
    assert m.kv_bytes_for(4096) / GIB == pytest.approx(at_4k_gib)
    assert m.kv_bytes_for(32_768) / GIB == pytest.approx(at_32k_gib)
    # without a context the figure is every layer for every token: an upper bound
    assert m.kv_bytes_per_token() * 32_768 / GIB == pytest.approx(uncapped_32k_gib)
    assert m.kv_bytes_per_token(context=32_768) * 32_768 == pytest.approx(m.kv_bytes_for(32_768))


def test_sliding_layers_attend_to_fewer_pairs_in_a_long_prefill():
    m = spec("gemma-3-12b")
    short, long = m.attention_flops(1024), m.attention_flops(32_768)
    assert short == pytest.approx(2 * 16 * 512 * 48 * 1024**2 / 2)  # inside the window: every layer full
    # at 32K the 40 sliding layers attend to at most 1,024 keys each (1/16 of a full layer's pairs):
    # the prefill's attention costs about a fifth of 48 full layers'
    full = 2 * 16 * 512 * 48 * 32_768**2 / 2
    sliding_share = (1024**2 / 2 + (32_768 - 1024) * 1024) / (32_768**2 / 2)
    assert long / full == pytest.approx((8 + 40 * sliding_share) / 48)
    assert long / full < 0.22


def test_mistral_v03s_null_window_and_qwens_unused_window_cap_nothing(tmp_path):
    for cfg in ({"model_type": "mistral", "sliding_window": None}, {"model_type": "qwen2", "sliding_window": 32768,
                                                                    "use_sliding_window": False}):
        d = _folder(tmp_path / cfg["model_type"], {**DENSE, **cfg})
        m = from_hf_directory(d)
        assert m.sliding_layers == 0 and m.kv_bytes_for(65_536) == m.kv_bytes_per_token() * 65_536


def test_mistral_v01s_window_applies_to_every_layer_by_default(tmp_path):
    d = _folder(tmp_path / "mistral", {**DENSE, "model_type": "mistral"})  # no sliding_window key: 4,096
    m = from_hf_directory(d)
    assert (m.sliding_window, m.sliding_layers) == (4096, m.layers)
    assert "sliding window 4,096" in m.source


# ------------------------------------------------------------------ what the plan does with them
def test_deepseek_v3_is_not_planned_on_one_h100(k):
    rec = recommend_for(k, str(CONFIGS / "deepseek-v3"), "H100 80GB")
    plan = rec.recommendation
    assert plan is None or plan.model != "deepseek-v3"
    said = " ".join(rec.warnings) + rec.no_plan_because
    assert "deepseek-v3" in said and "cannot run here" in said


def test_deepseek_v3_on_eight_h200s_is_tensor_parallel_fp8(k):
    rec = recommend_for(k, str(CONFIGS / "deepseek-v3"), "H200 141GB", gpus=8)
    plan = rec.recommendation
    assert plan.model == "deepseek-v3" and plan.tensor_parallel == 8
    assert plan.quantization == "fp8" and plan.predicted.vram_gb <= 141
    # the weights are the 671B total at one byte each, split 8 ways
    assert plan.predicted.vram_gb > 671e9 / 8 / GIB


def test_deepseek_v3_on_eight_h100s_needs_more_than_fp8(k):
    rec = recommend_for(k, str(CONFIGS / "deepseek-v3"), "H100 80GB", gpus=8)
    plan = rec.recommendation
    if plan is not None and plan.model == "deepseek-v3":
        assert plan.tensor_parallel == 8 and plan.quantization not in ("fp16", "bf16", "fp8")
        assert plan.predicted.vram_gb <= 80


def test_mixtral_weighs_its_total_and_decodes_at_its_active_size(k):
    m = k.model("mixtral-8x7b")
    dense_like = m.model_copy(update={"experts": 0, "experts_active": 0})  # the same weights, all read
    assert physics.weights_gb(k, m, "q8_0") == pytest.approx(physics.weights_gb(k, dense_like, "q8_0"))
    ratio = physics.decode_roofline_tok_s(k, m, k.gpu("H100 80GB"), "q8_0", 1) / \
        physics.decode_roofline_tok_s(k, dense_like, k.gpu("H100 80GB"), "q8_0", 1)
    assert ratio == pytest.approx(46.7 / 12.9, rel=0.05)


def test_mixtral_on_one_h100_is_planned_at_its_total_size(k):
    rec = recommend_for(k, str(CONFIGS / "mixtral-8x7b"), "H100 80GB")
    plan = rec.recommendation
    assert plan.model == "mixtral-8x7b"
    assert plan.predicted.vram_gb > 46.7e9 * 4 / 8 / GIB  # at least 4 bits for each of the 46.7B


def test_gemma_3_plans_a_long_context_on_a_24gb_card(k):
    rec = recommend_for(k, str(CONFIGS / "gemma-3-12b"), "RTX 4090", context_tokens=32_000)
    plan = rec.recommendation
    assert plan.model == "gemma-3-12b" and plan.max_context_tokens >= 32_000


# ------------------------------------------------------------------ what it cannot model: one line
DENSE = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 1024, "intermediate_size": 2816,
         "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 4, "vocab_size": 32000,
         "max_position_embeddings": 8192, "hidden_act": "silu"}


def _folder(d: Path, cfg: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _one_line_error(capsys, d: Path) -> str:
    code = main(["recommend", "--gpu", "H100 80GB", "--model", str(d), "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert f"model.name: {d / 'config.json'}" in err, err
    return err


@pytest.mark.parametrize("change, words", [
    ({"model_type": "phimoe", "num_local_experts": 16, "num_experts_per_tok": 2},
     "model_type 'phimoe' has mixture-of-experts keys (num_local_experts = 16, num_experts_per_tok = 2)"),
    ({"model_type": "jamba", "num_experts": 16, "mamba_d_state": 16},
     "mamba_d_state = 16: model_type 'jamba' has layers other than attention"),
    ({"model_type": "qwen3_next", "layer_types": ["linear_attention"] * 6 + ["full_attention"] * 2},
     "layer_types has 'linear_attention' layers, which the advisor cannot model"),
    ({"model_type": "mymla", "kv_lora_rank": 512}, "model_type 'mymla' has latent-attention keys (kv_lora_rank = 512)"),
    ({"model_type": "mixtral"}, "lacks num_local_experts (or num_experts); a mixtral model is a mixture of experts"),
    ({"model_type": "mixtral", "num_local_experts": 8}, "lacks num_experts_per_tok"),
    ({"model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 9},
     "experts_active (9) must be 1 to experts (8)"),
    ({"model_type": "gemma2", "layer_types": ["sliding_attention"] * 3}, "layer_types lists 3 layers; expected"),
])
def test_an_architecture_it_cannot_count_is_refused_in_one_line(tmp_path, capsys, change, words):
    err = _one_line_error(capsys, _folder(tmp_path / "m", {**DENSE, **change}))
    assert words in err, err


@pytest.mark.parametrize("drop", ["kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "n_routed_experts",
                                  "moe_intermediate_size", "num_experts_per_tok"])
def test_a_deepseek_config_missing_an_expert_or_mla_key_names_it(tmp_path, capsys, drop):
    cfg = json.loads((CONFIGS / "deepseek-v3" / "config.json").read_text())
    del cfg[drop]
    err = _one_line_error(capsys, _folder(tmp_path / "ds", cfg))
    assert f"lacks {drop}" in err and "deepseek_v3" in err, err


def test_a_deepseek_v2_lite_full_rank_query_is_counted(tmp_path):
    cfg = json.loads((CONFIGS / "deepseek-v3" / "config.json").read_text())
    cfg.update(model_type="deepseek_v2", q_lora_rank=None)  # V2-Lite writes null: a full q_proj
    m = from_hf_directory(_folder(tmp_path / "lite", cfg))
    assert m.q_lora_rank == 0 and m.attention_params_per_layer > spec("deepseek-v3").attention_params_per_layer


# ------------------------------------------------------------------ tied embeddings per family
@pytest.mark.parametrize("model_type, tied", [("llama", False), ("qwen2", False), ("mistral", False),
                                              ("gemma2", True), ("gpt2", True), ("somethingnew", False)])
def test_tie_word_embeddings_left_out_takes_the_familys_default(tmp_path, model_type, tied):
    m = from_hf_directory(_folder(tmp_path / model_type, {**DENSE, "model_type": model_type}))
    assert m.tied_embeddings is tied
    assert ("tie_word_embeddings" in m.source)


# ------------------------------------------------------------------ exact weights from safetensors headers
def _safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> int:
    """A real safetensors file: 8-byte header length, the JSON header, then the (zero) data."""
    sizes = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "I32": 4}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = int(np.prod(shape)) * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * offset)
    return offset


def test_weight_bytes_come_from_the_safetensors_headers(tmp_path, k):
    d = _folder(tmp_path / "tiny", {**DENSE, "torch_dtype": "bfloat16"})
    a = _safetensors(d / "model-00001-of-00002.safetensors",
                     {"model.embed_tokens.weight": ("BF16", [32000, 1024]),
                      "model.layers.0.mlp.up_proj.weight": ("BF16", [2816, 1024])})
    b = _safetensors(d / "model-00002-of-00002.safetensors",
                     {"lm_head.weight": ("BF16", [32000, 1024]), "model.norm.weight": ("F32", [1024])})
    m = from_hf_directory(d)
    assert m.weight_bytes == a + b and m.file_quantization == "bf16"
    assert "2 safetensors header(s)" in m.source
    assert physics.weight_bytes(k, m, "bf16") == a + b  # the plan's weights are the files' bytes


def test_fp8_files_are_fp8_and_the_mtp_layer_is_left_out(tmp_path):
    d = _folder(tmp_path / "fp8", {**DENSE, "num_hidden_layers": 1})
    kept = _safetensors(d / "model.safetensors",
                        {"model.layers.0.mlp.up_proj.weight": ("F8_E4M3", [2816, 1024]),
                         "model.layers.0.mlp.up_proj.weight_scale_inv": ("F32", [22, 8])})
    _safetensors(d / "mtp.safetensors", {"model.layers.1.mlp.up_proj.weight": ("F8_E4M3", [2816, 1024])})
    m = from_hf_directory(d)
    assert m.weight_bytes == kept and m.file_quantization == "fp8"
    assert "left out (MTP)" in m.source


def test_a_broken_safetensors_header_is_one_line(tmp_path, capsys):
    d = _folder(tmp_path / "broken", DENSE)
    (d / "model.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    code = main(["recommend", "--gpu", "H100 80GB", "--model", str(d), "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "not a safetensors file" in err and "model.safetensors" in err


# ------------------------------------------------------------------ GGUF metadata
def _gguf(path: Path, arch: str, meta: dict, tensors: dict[str, tuple[int, ...]]) -> str:
    return write_gguf_file(path, tensors, arch=arch, meta=meta)


def _base(arch: str) -> dict:
    return {f"{arch}.block_count": ("uint32", 4), f"{arch}.embedding_length": ("uint32", 64),
            f"{arch}.attention.head_count": ("uint32", 4), f"{arch}.attention.head_count_kv": ("uint32", 2),
            f"{arch}.vocab_size": ("uint32", 100), f"{arch}.context_length": ("uint32", 8192),
            f"{arch}.feed_forward_length": ("uint32", 128), "general.file_type": ("uint32", 1)}


def _gguf_spec(tmp_path, arch: str, extra: dict):
    """The ModelSpec read from a one-tensor GGUF of `arch` with the base metadata and `extra`."""
    from advisor.probes.gguf_probe import read_gguf, to_model_spec

    return to_model_spec(read_gguf(_gguf(tmp_path / "m.gguf", arch, {**_base(arch), **extra},
                                         {"token_embd.weight": (100, 64)})))


def test_a_gguf_mixture_of_experts_reads_its_expert_counts(tmp_path):
    from advisor.probes.gguf_probe import read_gguf, to_model_spec

    meta = {**_base("llama"), "llama.expert_count": ("uint32", 8), "llama.expert_used_count": ("uint32", 2)}
    tensors = {"token_embd.weight": (100, 64), "output.weight": (100, 64)}
    tensors.update({f"blk.{i}.ffn_up_exps.weight": (8, 128, 64) for i in range(4)})
    m = to_model_spec(read_gguf(_gguf(tmp_path / "moe.gguf", "llama", meta, tensors)))
    assert (m.experts, m.experts_active) == (8, 2)
    assert m.active_params < m.params


@pytest.mark.parametrize("arch, extra, words", [
    ("llama", {"llama.expert_count": ("uint32", 8)}, "expert_used_count"),  # experts, but not how many run
    ("mamba", {"mamba.ssm.state_size": ("uint32", 16)}, "cannot model"),  # a state-space model
])
def test_a_gguf_the_advisor_cannot_model_is_refused_in_one_line(tmp_path, capsys, arch, extra, words):
    path = _gguf(tmp_path / "m.gguf", arch, {**_base(arch), **extra}, {"token_embd.weight": (100, 64)})
    code = main(["recommend", "--gpu", "RTX 4090", "--model", path, "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err


def test_a_gguf_gemma2_caps_its_sliding_layers(tmp_path):
    m = _gguf_spec(tmp_path, "gemma2", {"gemma2.attention.sliding_window": ("uint32", 1024)})
    assert (m.sliding_window, m.sliding_layers) == (1024, 2)  # llama.cpp: layers 0 and 2 of 4
    assert m.kv_bytes_for(8192) < m.kv_bytes_per_token() * 8192


def test_a_gguf_mla_file_caches_what_llama_cpp_allocates(tmp_path):
    m = _gguf_spec(tmp_path, "deepseek2", {
        "deepseek2.attention.head_count_kv": ("uint32", 1), "deepseek2.attention.kv_lora_rank": ("uint32", 32),
        "deepseek2.attention.key_length": ("uint32", 40), "deepseek2.attention.value_length": ("uint32", 32),
        "deepseek2.attention.key_length_mla": ("uint32", 24), "deepseek2.attention.value_length_mla": ("uint32", 16)})
    assert m.kv_bytes_per_token() == 4 * 1 * (40 + 32) * 2  # layers x head_count_kv x (key + value) x 2 B


def test_mistrals_consolidated_copy_is_not_counted_twice(tmp_path):
    d = _folder(tmp_path / "mistral", {**DENSE, "model_type": "mistral", "sliding_window": None})
    one = _safetensors(d / "model-00001-of-00001.safetensors", {"model.embed_tokens.weight": ("BF16", [32000, 1024])})
    _safetensors(d / "consolidated.safetensors", {"tok_embeddings.weight": ("BF16", [32000, 1024])})
    assert from_hf_directory(d).weight_bytes == one


def test_the_index_names_the_files_that_are_the_checkpoint(tmp_path):
    d = _folder(tmp_path / "indexed", DENSE)
    one = _safetensors(d / "model-00001-of-00001.safetensors", {"lm_head.weight": ("BF16", [32000, 1024])})
    _safetensors(d / "stale.safetensors", {"lm_head.weight": ("BF16", [32000, 1024])})
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"lm_head.weight": "model-00001-of-00001.safetensors"}}))
    assert from_hf_directory(d).weight_bytes == one


def test_per_layer_attention_shapes_are_refused(tmp_path, capsys):
    err = _one_line_error(capsys, _folder(tmp_path / "g4", {**DENSE, "model_type": "gemma4_text",
                                                           "global_head_dim": 512}))
    assert "global_head_dim = 512" in err and "attention layers of different shapes" in err


def test_a_kv_budget_buys_far_more_context_on_a_sliding_window_model():
    g = spec("gemma-3-12b")
    budget = 4 * GIB  # what is left for the KV cache after the weights
    n = g.context_for_budget(budget)
    assert g.kv_bytes_for(n) <= budget < g.kv_bytes_for(n + 1)
    assert n > 5 * budget / g.kv_bytes_per_token()  # every layer full would allow ~10.9K; capped ~60K
    dense = spec("mixtral-8x7b")
    assert dense.context_for_budget(budget, sequences=4) == budget // (4 * dense.kv_bytes_per_token())


def test_tensor_parallel_splits_kv_heads_but_not_the_mla_latent():
    assert spec("mixtral-8x7b").kv_split(8) == 8 and spec("mixtral-8x7b").kv_split(16) == 8  # 8 KV heads
    assert spec("deepseek-v3").kv_split(8) == 1  # every rank holds the whole latent
