"""The OpenAI-compatible probe reads the server's limits first and measures inside them (issue 12 item 5).

The loopback llama-server answers /props, /slots and /v1/models in llama.cpp's shapes and rejects a
prompt longer than its slot with HTTP 400, as the real one started with `-c 8192 -np 4` did.
"""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import httpx
import pynvml
import pytest
from hostile import HostileServer, openai_routes
from probe_fakes import probe_once

from advisor.probes import hardware
from advisor.probes import openai_compat as oa
from advisor.probes.cli import render_text
from advisor.probes.runner import run_probe


def _probe(server, contexts=(512, 2048), **kw):
    return probe_once(oa, server.url, None, contexts, seed=3, **kw)


def test_the_trap_is_real_a_2048_word_prompt_does_not_fit_a_2048_token_slot(llama_server):
    body = {"model": llama_server.model, "prompt": "word " * 2048, "max_tokens": 32, "stream": True}
    r = httpx.post(llama_server.url + "/v1/completions", json=body)
    assert r.status_code == 400
    assert "request (2053 tokens) exceeds the available context size (2048 tokens)" in r.json()["error"]["message"]


def test_llama_server_limits_are_read_and_every_prompt_fits_its_slot(llama_server):
    r = _probe(llama_server)
    assert llama_server.rejected == []  # no request was refused
    lim = r.server_limits
    assert lim["slots"] == 4 and lim["n_ctx_per_slot"] == [2048] * 4 and lim["props_n_ctx"] == 2048
    assert lim["n_ctx_train"] == 32768 and lim["limit"] == 2048
    assert r.max_model_len == 2048  # the longest request this server takes, not the model's 32K
    small, big = r.ttft
    assert small.context_tokens == 512 - 2 + 5  # "Note <nonce>:" + 508 words, as the server counts them
    assert 1800 < big.context_tokens < 2048 - 32  # as large as fits, with room for the 32 output tokens
    assert any("2,048 tokens do not fit the server's context per slot (2,048 tokens in each of 4 slots"
               in w for w in r.warnings)
    assert r.extra["prompt_tokens_per_word"] == pytest.approx(1.0) and r.extra["prompt_overhead_tokens"] == 3  # 5 extra, "Note <nonce>:" 2 fewer
    assert r.server == "llama-server"  # its figures feed the llamacpp plan, not vLLM's
    assert "max context              2,048 tokens a request (the server's context per slot" in render_text(r)


def test_every_request_sends_a_prompt_of_its_own(llama_server):
    _probe(llama_server)
    prompts = llama_server.prompts
    assert len(prompts) == 2 + 2 * 4  # two warm-ups, four repetitions at two sizes
    assert len(set(prompts)) == len(prompts)
    assert len({p.split()[1] for p in prompts}) == len(prompts)  # they differ from the second word on


def test_a_tokenizer_that_counts_more_than_usage_says_is_retried_once_smaller(llama_server):
    llama_server.usage = False  # no usage figures: the probe can't learn tokens per word
    llama_server.tokens_per_word = 1.5
    r = _probe(llama_server, contexts=[2048])
    assert len(llama_server.rejected) == 1  # one refusal, then a prompt sized from the server's own numbers
    (t,) = r.ttft
    assert t.repetitions == 3 and t.context_tokens < 2048 / 1.5
    assert any("the server allows 2,048 tokens a request and counted" in w for w in r.warnings)


def test_a_single_slot_server_gives_the_whole_context(llama_server):
    llama_server.parallel = 1
    r = _probe(llama_server)
    assert r.server_limits["limit"] == 8192 and [t.context_tokens for t in r.ttft] == [515, 2051]
    assert not r.warnings


def test_vllm_max_model_len_bounds_the_prompts(openai_server):
    openai_server.max_model_len = 1024
    r = _probe(openai_server)
    assert r.max_model_len == 1024 and r.server_limits == {"max_model_len": 1024, "limit": 1024,
                                                                     "why": "the server's max_model_len 1,024"}
    assert max(t.context_tokens for t in r.ttft) <= 1024 - 32


def test_tgi_info_limits_bound_the_prompts():
    info = {"model_id": "m", "max_input_tokens": 1000, "max_total_tokens": 1100, "max_concurrent_requests": 128}
    with HostileServer(openai_routes({"/info": info})) as s:
        r = _probe(s)
    lim = r.server_limits
    assert (lim["max_input_tokens"], lim["max_total_tokens"], lim["limit"]) == (1000, 1100, 1032)
    assert "max_input_tokens 1,000" in lim["why"] and max(t.context_tokens for t in r.ttft) <= 1000
    assert r.server == "tgi"


def test_without_nvml_the_result_says_the_server_memory_was_not_measured(llama_server, monkeypatch):
    def no_lib():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_lib)
    r = _probe(llama_server, contexts=[256])
    assert r.server_vram.mib is None
    assert r.server_vram.why.startswith("no NVIDIA GPU found")
    assert "server GPU memory        not measured: no NVIDIA GPU found" in render_text(r)


def _fake_nvml(monkeypatch, procs):
    mib = 2**20
    fake = {"nvmlInit": lambda: None, "nvmlShutdown": lambda: None, "nvmlDeviceGetCount": lambda: 1,
            "nvmlDeviceGetHandleByIndex": lambda i: "h0", "nvmlDeviceGetName": lambda h: b"NVIDIA H100 80GB HBM3",
            "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(total=81559 * mib, free=70000 * mib, used=11559 * mib),
            "nvmlDeviceGetGraphicsRunningProcesses": lambda h: [],
            "nvmlDeviceGetComputeRunningProcesses": lambda h: [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in procs]}
    for name, fn in fake.items():
        monkeypatch.setattr(pynvml, name, fn)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="Linux /proc")
def test_a_local_server_gpu_memory_is_its_own_process_figure(llama_server, monkeypatch):
    # The loopback server runs in this process: NVML's figure for this pid is the server's.
    _fake_nvml(monkeypatch, [(os.getpid(), 3 * 2**30), (999_999_999, 7 * 2**30)])
    r = run_probe(backend="openai", url=llama_server.url, contexts=[256])
    vram = r.server_vram
    assert vram.mib == 3072.0 and vram.model_extra["pids"] == [os.getpid()]
    assert f"listening on port {llama_server.server_address[1]}" in vram.method
    assert "server GPU memory        3,072 MiB" in render_text(r)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="Linux /proc")
def test_listening_pids_finds_the_socket_owner_and_nothing_for_a_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert hardware.listening_pids(port) == {os.getpid()}
    assert hardware.listening_pids(port) == set()


def test_in_a_container_the_only_gpu_process_is_taken_and_said_so(monkeypatch):
    _fake_nvml(monkeypatch, [(4242, 5 * 2**30)])
    got = hardware.server_gpu_memory(1)  # nothing here listens on port 1
    assert got["mib"] == 5120.0 and "the only process using a GPU" in got["method"]
    _fake_nvml(monkeypatch, [(4242, 2**30), (4343, 2**30)])
    got = hardware.server_gpu_memory(1)
    assert got["mib"] is None and "no process listens on port 1" in got["why"]
