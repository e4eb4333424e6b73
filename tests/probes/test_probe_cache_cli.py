"""The cache (a second run is instant, --fresh measures again) and `advisor probe` as a user types it."""

from __future__ import annotations

import json
import time

import pynvml
import pytest

from advisor.cli import main
from advisor.domain import ProbeResult
from advisor.probes import cache
from advisor.probes import transformers_probe as tp
from advisor.probes.runner import run_probe


def count_probes(monkeypatch):
    calls = []
    real = tp.probe_transformers

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(tp, "probe_transformers", counted)
    return calls


def test_second_run_is_answered_from_the_cache_and_fresh_measures_again(k, tiny, monkeypatch):
    calls = count_probes(monkeypatch)
    kw = dict(device="cpu", dtype="float32", contexts=[128, 256], knowledge=k)
    first = run_probe(tiny, **kw)
    t0 = time.perf_counter()
    second = run_probe(tiny, **kw)
    assert time.perf_counter() - t0 < 0.5
    assert (first.cached, second.cached, len(calls)) == (False, True, 1)
    assert second.fit == first.fit and second.curve == first.curve
    third = run_probe(tiny, fresh=True, **kw)
    assert not third.cached and len(calls) == 2
    # another attention implementation is another key
    assert not run_probe(tiny, attention="eager", **kw).cached and len(calls) == 3


def test_cached_results_feed_recommend_by_gpu_and_model(k, tiny):
    run_probe(tiny, device="cpu", dtype="float32", contexts=[128, 256], knowledge=k)
    got = cache.cached_results(gpu="cpu", model=tiny)
    assert len(got) == 1 and got[0].cached and got[0].backend == "transformers"
    assert cache.cached_results(gpu="NVIDIA H100 80GB HBM3") == []
    assert cache.cached_results(gpu="cpu", model="llama3.2-1b") == []


def test_catalog_aliases_find_the_same_cached_result(k):
    r = ProbeResult(backend="ollama", model="qwen2.5:1.5b", gpu="NVIDIA GeForce RTX 4090", measured_at="2025-01-01")
    cache.store(cache.make_key(r.gpu, r.model, "ollama", url="http://x"), r)
    assert [x.model for x in cache.cached_results(gpu="NVIDIA GeForce RTX 4090", model="qwen2.5-1.5b")] == ["qwen2.5:1.5b"]


def test_a_damaged_cache_file_is_ignored(k, tiny):
    run_probe(tiny, device="cpu", dtype="float32", contexts=[128, 256], knowledge=k)
    for f in cache.cache_dir().glob("*.json"):
        f.write_text("{ truncated")
    assert cache.cached_results() == []
    assert not run_probe(tiny, device="cpu", dtype="float32", contexts=[128, 256], knowledge=k).cached


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(tmp_path / "a"))
    assert cache.cache_dir() == tmp_path / "a" / "probes"
    monkeypatch.delenv("ADVISOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x" / "advisor" / "probes"


# ------------------------------------------------------------------ the command line
def test_probe_json_is_a_probe_result(tiny, capsys):
    assert main(["probe", "--model", tiny, "--cpu", "--dtype", "float32", "--contexts", "128,256", "--json"]) == 0
    out = capsys.readouterr()
    r = ProbeResult.model_validate(json.loads(out.out))
    assert r.fit is not None and [p.context_tokens for p in r.curve] == [128, 256]
    assert "[100%] done" in out.err  # progress goes to stderr, never into the JSON


def test_probe_text_is_readable_and_a_rerun_says_cached(tiny, capsys):
    args = ["probe", "--model", tiny, "--cpu", "--dtype", "float32", "--contexts", "128,256"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "peak memory" in text and "fit (linear)" in text and "TTFT" in text and "decode" in text
    assert main(args) == 0
    assert "[cached]" in capsys.readouterr().out


def test_ollama_through_the_command_line(ollama, capsys):
    assert main(["probe", "--backend", "ollama", "--url", ollama.url, "--model", "qwen2.5:1.5b",
                 "--contexts", "512", "--json"]) == 0
    r = ProbeResult.model_validate(json.loads(capsys.readouterr().out))
    assert r.backend == "ollama" and r.kv_bytes_per_token == pytest.approx(28672)


@pytest.mark.parametrize("argv, code, words", [
    (["probe", "--backend", "vllm"], 2, "--backend: 'vllm' is not allowed"),
    (["probe", "--contexts", "512,lots"], 2, "--contexts"),
    (["probe", "--contexts", "0"], 2, "--contexts"),
    (["probe", "--model", "qwen2.5-1.5", "--cpu"], 2, "did you mean 'qwen2.5-1.5b'"),
    (["probe", "--backend", "ollama", "--url", "http://127.0.0.1:9"], 4, "cannot reach Ollama"),
    (["probe", "--attention", "flash", "--cpu"], 4, "--attention"),
])
def test_bad_input_is_one_line_and_non_zero(argv, code, words, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_no_gpu_is_one_line_exit_4(monkeypatch, capsys):
    def no_lib():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_lib)
    assert main(["probe", "--model", "qwen2.5-0.5b"]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("advisor: error: no NVIDIA GPU found") and len(err.splitlines()) == 1
    assert main(["probe", "--hardware"]) == 4
