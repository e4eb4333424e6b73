"""The OpenAI-compatible probe against a loopback server streaming vLLM's SSE format."""

from __future__ import annotations

import pytest
from probe_fakes import failure_line, probe_once

from advisor.errors import ProbeError
from advisor.probes import openai_compat as oa
from advisor.probes.runner import run_probe


def _probe(server, model=None, contexts=(512, 2048)):
    return probe_once(oa, server.url, model, contexts, seed=2)


def test_streaming_ttft_inter_token_latency_and_server_facts(openai_server):
    r = _probe(openai_server)
    assert r.model == "Qwen/Qwen2.5-1.5B-Instruct" and r.max_model_len == 32768
    assert r.versions == {"server": "0.6.3"}
    t512, t2048 = r.ttft
    assert t2048.context_tokens > 1000 and t2048.repetitions == 3
    # the server prefills 10 us per token + 4 ms: the client-side TTFT sees it grow with the prompt
    assert t2048.ttft_ms > t512.ttft_ms + 10
    assert 2.0 <= r.inter_token_ms_median < 10.0
    assert 100 < r.decode_tok_s <= 500  # one token per 2 ms on the wire
    m = r.extra["vllm_metrics"]
    assert m["kv_capacity_tokens"] == 27000 * 16 and m["block_size"] == "16"
    assert r.server == "vllm"  # from its metrics: the figures describe vLLM's plans only


def test_unique_prompts_so_the_prefix_cache_cannot_fake_ttft(openai_server):
    r = _probe(openai_server)
    long = [p for p in openai_server.prompts if len(p.split()) > 1000]
    assert len(long) == len(set(long)) == 4
    assert len({p.split()[1] for p in long}) == 4
    t2048 = r.ttft[1]
    assert t2048.ttft_ms >= 4 + 0.8 * t2048.context_tokens * 0.010  # the real prefill, not a cache hit


def test_chat_endpoint_when_completions_is_missing(openai_server):
    openai_server.mode = "chat_only"
    r = _probe(openai_server, contexts=[256])
    assert r.extra["endpoint"] == "chat" and r.ttft[0].ttft_ms > 0


def test_contexts_beyond_max_model_len_are_skipped_with_a_reason(openai_server):
    openai_server.max_model_len = 1024
    r = _probe(openai_server, contexts=[512, 2048])
    assert [t.context_tokens for t in r.ttft] and all(t.context_tokens < 1024 for t in r.ttft)
    assert any("max_model_len 1,024" in w for w in r.warnings)


@pytest.mark.parametrize("mode, words", [
    ("truncated_stream", "truncated"),
    ("malformed_stream", "not JSON"),
    ("http_error", "HTTP 400: This model's maximum context length"),
    ("malformed_models", "did not answer JSON"),
])
def test_every_server_failure_is_one_clear_line(openai_server, mode, words):
    assert words in failure_line(openai_server, mode, _probe)


def test_an_ollama_server_is_not_openai(ollama, k):
    with pytest.raises(ProbeError) as e:
        run_probe(backend="openai", url=ollama.url, knowledge=k)
    assert "/v1/models" in str(e.value) and "\n" not in str(e.value)


def test_refused_and_missing_url(k):
    with pytest.raises(ProbeError, match="cannot reach"):
        run_probe(backend="openai", url="http://127.0.0.1:9", knowledge=k)
    with pytest.raises(ProbeError, match="--url is required"):
        run_probe(backend="openai", knowledge=k)


def test_metrics_parser_reads_vllm_prometheus_text():
    text = ('vllm:cache_config_info{block_size="16",cache_dtype="auto",num_gpu_blocks="1000"} 1.0\n'
            'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\n')
    m = oa.parse_metrics(text)
    assert m["kv_capacity_tokens"] == 16000 and m["kv_cache_usage_perc"] == 0.25
