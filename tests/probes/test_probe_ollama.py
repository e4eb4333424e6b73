"""The Ollama probe against a loopback server speaking Ollama's native API."""

from __future__ import annotations

import httpx
import pytest
from probe_fakes import failure_line, probe_once

from advisor.errors import ProbeError
from advisor.probes import ollama
from advisor.probes.runner import run_probe


def _probe(server, model="qwen2.5:1.5b", contexts=(512, 2048), timeout=30.0):
    return probe_once(ollama, server.url, model, contexts, seed=1, timeout=timeout)


def test_kv_cost_per_token_comes_from_two_loads_at_different_num_ctx(ollama):
    r = _probe(ollama)
    assert r.kv_bytes_per_token == pytest.approx(28672, rel=1e-6)
    lo, hi = r.extra["num_ctx"]
    assert lo < hi
    loads = [b["options"]["num_ctx"] for m, p, b in ollama.log if p == "/api/generate" and b.get("prompt") == ""]
    assert loads == [lo, hi]
    assert r.versions == {"ollama": "0.5.7"} and r.max_model_len == 32768
    assert r.extra["model_facts"]["kv_bytes_per_token_f16"] == 2 * 28 * 2 * 128 * 2


def test_parallel_slots_show_in_the_kv_cost_and_are_explained(ollama):
    ollama.parallel = 4
    r = _probe(ollama)
    assert r.kv_bytes_per_token == pytest.approx(4 * 28672, rel=1e-6)
    assert any("OLLAMA_NUM_PARALLEL" in w for w in r.warnings)


def test_unique_prompts_defeat_the_prompt_cache_trap(ollama):
    # The server, like llama.cpp, only evaluates what is not a cached prefix: show the trap is live...
    c = httpx.Client(base_url=ollama.url)
    body = {"model": "qwen2.5:1.5b", "prompt": "word " * 2000, "raw": True, "stream": False,
            "options": {"num_ctx": 4096}}
    c.post("/api/generate", json=body)
    repeat = c.post("/api/generate", json=body).json()
    c.close()
    assert repeat["prompt_eval_duration"] / 1e6 < 1.0  # a repeated prompt "prefills" 2,000 tokens in < 1 ms
    # ...and that the probe's prompts never share a prefix, so its prefill is the real one.
    r = _probe(ollama)
    sent = [p for p in ollama.prompts if len(p.split()) > 100 and not p.startswith("word")]
    assert len(sent) == len(set(sent)) == 8
    assert len({p.split()[1] for p in sent}) == 8  # different from the second token on
    t2048 = next(t for t in r.ttft if t.context_tokens > 1000)
    assert t2048.ttft_ms == pytest.approx(t2048.context_tokens * 0.15, rel=0.01)  # 0.15 ms per token: real
    assert t2048.repetitions == 3


def test_repetition_zero_is_reported_apart(ollama):
    r = _probe(ollama)
    first = r.ttft[0]
    assert first.rep0_ms > first.ttft_ms + 300  # the cold first request (400 ms extra) is not in the median
    assert r.decode_tok_s == pytest.approx(125.0, rel=1e-6)  # 32 tokens / (32 x 8 ms)


def test_runner_caches_and_fresh_measures_again(ollama, k):
    first = run_probe("qwen2.5:1.5b", backend="ollama", url=ollama.url, contexts=[512], knowledge=k)
    generated = len([1 for m, p, b in ollama.log if p == "/api/generate"])
    again = run_probe("qwen2.5:1.5b", backend="ollama", url=ollama.url, contexts=[512], knowledge=k)
    assert again.cached and not first.cached
    assert len([1 for m, p, b in ollama.log if p == "/api/generate"]) == generated  # nothing measured
    fresh = run_probe("qwen2.5:1.5b", backend="ollama", url=ollama.url, contexts=[512], knowledge=k, fresh=True)
    assert not fresh.cached and len([1 for m, p, b in ollama.log if p == "/api/generate"]) > generated


def test_default_model_is_a_loaded_one_else_the_first_listed(ollama):
    from advisor.probes import ollama as mod

    c = mod.Client(ollama.url)
    assert mod.identify(c, None)[0] == "qwen2.5:1.5b"
    ollama.loaded["llama3.2:1b"] = 2048
    assert mod.identify(c, None)[0] == "llama3.2:1b"
    c.close()


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_refused_connection(k):
    with pytest.raises(ProbeError) as e:
        run_probe("qwen2.5:1.5b", backend="ollama", url="http://127.0.0.1:9", knowledge=k)
    assert "cannot reach Ollama" in _one_line(e) and "ollama serve" in str(e.value)


@pytest.mark.parametrize("mode, words", [
    ("not_ollama", "does not look like an Ollama server"),
    ("malformed", "did not answer JSON"),
    ("truncated", "truncated"),
    ("http_error", "HTTP 500: llama runner process has terminated"),
    ("missing_fields", "without prompt_eval_duration"),
])
def test_every_server_failure_is_one_clear_line(ollama, mode, words):
    assert words in failure_line(ollama, mode, _probe)


def test_timeout_is_one_line(ollama):
    ollama.mode = "slow"
    with pytest.raises(ProbeError) as e:
        _probe(ollama, timeout=0.3)
    assert "did not answer" in _one_line(e) and "0.3 s" in str(e.value)


def test_unknown_model_names_what_is_there(ollama):
    with pytest.raises(ProbeError) as e:
        _probe(ollama, model="mistral:7b")
    assert "qwen2.5:1.5b" in _one_line(e) and "ollama pull mistral:7b" in str(e.value)


def test_an_openai_server_is_not_ollama(openai_server):
    with pytest.raises(ProbeError) as e:
        _probe(openai_server)
    assert "does not look like an Ollama server" in _one_line(e)
