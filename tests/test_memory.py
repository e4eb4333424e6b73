"""The memory stage (advisor/memory.py): what one candidate holds on each GPU and the context it affords.

A failure here names the layer: weights, tensor parallel, KV per token, the engine's own pool,
the budget, the need at a load."""

from __future__ import annotations

import pytest

from advisor import physics
from advisor.answers import answers_from_dict
from advisor.engines import engine
from advisor.hardware import resolve_hardware
from advisor.memory import memory, tensor_parallel


def _memory(k, model, backend, quant, gpu="H100 80GB", gpus=1, background=0.0, prompt=4096, seq=4352, os_name="linux"):
    a = answers_from_dict({"hardware": {"gpu": gpu, "gpus": gpus, "os": os_name}})
    hw = resolve_hardware(a, k)
    return memory(k, engine(k, backend), k.model(model), quant, hw, background, prompt, seq, None)


def test_weights_are_parameters_times_bytes_and_tensor_parallel_shards_them(k):
    one = _memory(k, "llama3.1-8b", "vllm", "fp16")
    assert one.tensor_parallel == 1
    assert one.weights_gb == pytest.approx(physics.weights_gb(k, k.model("llama3.1-8b"), "fp16"))
    big = _memory(k, "llama3.1-70b", "vllm", "fp16", gpus=2)
    assert big.tensor_parallel == 2
    assert big.weights_gb == pytest.approx(physics.weights_gb(k, k.model("llama3.1-70b"), "fp16") / 2)
    # KV splits by KV head with the weights: each GPU holds half of every token's KV
    whole = physics.kv_gb_per_token(k.model("llama3.1-70b"), context=4352)
    assert big.kv_gb_per_token == pytest.approx(whole / 2)


def test_an_engine_without_a_planned_split_holds_the_weights_on_one_gpu(k):
    assert tensor_parallel(140.0, 80.0, 1.0, gpus=2, splits=False) == 1
    assert tensor_parallel(140.0, 80.0, 1.0, gpus=2, splits=True) == 2
    assert tensor_parallel(140.0, 80.0, 1.0, gpus=1, splits=True) == 2  # more than it has: the rules say so


def test_the_budget_shrinks_as_more_sequences_share_the_pool_and_the_need_grows_with_them(k):
    m = _memory(k, "llama3.1-8b", "vllm", "fp16")
    assert m.budget(1) > m.budget(8) > m.budget(64) > 0
    assert m.budget(8) == pytest.approx(m.budget(1) / 8, rel=0.01)  # KV is linear in the sequences
    assert m.need_gb(8, 4096, 4352) - m.need_gb(1, 4096, 4352) == pytest.approx(7 * m.kv_gb_per_token * 4352)
    assert m.pool_seqs(4352) >= 8


def test_other_tenants_leave_less_for_the_context(k):
    free = _memory(k, "llama3.1-8b", "vllm", "fp16")
    shared = _memory(k, "llama3.1-8b", "vllm", "fp16", background=20.0)
    assert shared.usable_gb == pytest.approx(free.usable_gb - 20.0)
    assert shared.budget(8) < free.budget(8)


def test_an_engine_that_sizes_its_own_pool_holds_its_claim_whatever_the_load(k):
    m = _memory(k, "llama3.1-8b", "transformers-serve", "bf16")
    assert m.pool_tokens > 0 and m.claim is not None
    assert m.budget(8) == m.pool_tokens // 8
    assert m.held_gb(m.need_gb(1, 512, 640)) == m.held_gb(m.need_gb(64, 4096, 4352)) == m.claim[0]


def test_a_whole_prompt_prefill_on_windows_budgets_the_n_squared_scores(k):
    win = _memory(k, "llama3.2-1b", "transformers", "fp16", gpu="RTX 4080 Laptop", os_name="windows")
    lin = _memory(k, "llama3.2-1b", "transformers", "fp16", gpu="RTX 4080 Laptop", os_name="linux")
    assert win.attention_n2_gb > 0 == lin.attention_n2_gb
    assert win.budget(1) < lin.budget(1) / 2
