"""Fixtures for the probe tests: loopback servers and tiny random architectures."""

from __future__ import annotations

import pytest
from probe_fakes import FakeOllama, FakeOpenAI, serve, stop


@pytest.fixture
def ollama():
    s = serve(FakeOllama())
    yield s
    stop(s)


@pytest.fixture
def openai_server():
    s = serve(FakeOpenAI())
    yield s
    stop(s)


def write_tiny(path, arch: str = "qwen2", vocab: int = 512, heads: int = 4, kv_heads: int = 2, layers: int = 2,
               hidden: int = 64, max_pos: int = 32768) -> str:
    """A local HF model directory (config.json only) of a tiny real architecture."""
    from transformers import LlamaConfig, Qwen2Config

    cls, name = {"qwen2": (Qwen2Config, "Qwen2ForCausalLM"), "llama": (LlamaConfig, "LlamaForCausalLM")}[arch]
    cfg = cls(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
              num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_pos)
    cfg.architectures = [name]
    cfg.save_pretrained(str(path))
    return str(path)


@pytest.fixture
def tiny(tmp_path):
    return write_tiny(tmp_path / "tiny-qwen2")


@pytest.fixture
def llama_server():
    """A llama-server started with `-c 8192 -np 4`: 2,048 tokens a slot."""
    s = serve(FakeOpenAI(flavour="llamacpp", n_ctx=8192, parallel=4))
    s.model = "qwen2.5-1.5b-instruct-q4_k_m.gguf"
    yield s
    stop(s)
