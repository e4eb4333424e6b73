"""The probe kinds as one table, and where a server probe looks when no --url is given."""

from __future__ import annotations

import pytest

from advisor.cli import main
from advisor.domain import ProbeProgress
from advisor.probes import ollama
from advisor.probes.runner import BACKENDS, KINDS, run_probe


@pytest.mark.parametrize("env, url", [
    ("", "http://127.0.0.1:11434"),
    ("0.0.0.0", "http://127.0.0.1:11434"),            # the bind-all address the FAQ suggests
    ("0.0.0.0:8080", "http://127.0.0.1:8080"),
    (":9999", "http://127.0.0.1:9999"),
    ("example.org", "http://example.org:11434"),
    ("http://example.org", "http://example.org:80"),   # a scheme without a port: the scheme's port
    ("https://example.org/ollama/", "https://example.org:443/ollama"),
    ("[::]:11434", "http://[::1]:11434"),
    ("::1", "http://[::1]:11434"),
    ("'127.0.0.1:1234'", "http://127.0.0.1:1234"),    # quoted, as some service files write it
    ("host:notaport", "http://host:11434"),
])
def test_default_url_reads_ollama_host_as_ollama_does(env, url):
    assert ollama.default_url(env) == url


def test_the_runner_finds_ollama_through_ollama_host(ollama, monkeypatch, k):
    from advisor.probes import ollama as mod

    monkeypatch.setenv("OLLAMA_HOST", ollama.url.replace("http://", ""))
    r = run_probe("qwen2.5:1.5b", backend="ollama", contexts=[256], knowledge=k)
    assert r.extra["url"] == ollama.url and mod.list_tags() == ["llama3.2:1b", "qwen2.5:1.5b"]


def test_a_bad_ollama_host_names_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("OLLAMA_HOST", "ftp://somewhere")
    assert main(["probe", "--backend", "ollama"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("advisor: error: OLLAMA_HOST: 'ftp://somewhere:11434' uses ftp://") and err.count("\n") == 1


def test_tiny_contexts_load_at_two_different_sizes(ollama):
    """--contexts 100: both loads used to round to num_ctx=256 and the KV slope divided by zero."""
    r = run_probe("qwen2.5:1.5b", backend="ollama", url=ollama.url, contexts=[100])
    lo, hi = r.extra["num_ctx"]
    assert lo < hi and r.kv_bytes_per_token == pytest.approx(28672)


def test_contexts_beyond_the_model_are_measured_at_what_fits(ollama):
    r = run_probe("qwen2.5:1.5b", backend="ollama", url=ollama.url, contexts=[512, 100_000])
    assert r.extra["num_ctx"][1] == 32768  # the model's context_length, not 130K
    assert max(t.context_tokens for t in r.ttft) < 32768
    assert any("100,000 tokens do not fit qwen2.5:1.5b's context_length 32,768" in w for w in r.warnings)


@pytest.mark.parametrize("backend, fixture", [("ollama", "ollama"), ("openai", "openai_server")])
def test_every_progress_step_is_one_its_kind_declares(backend, fixture, request, k):
    server = request.getfixturevalue(fixture)
    seen: list[ProbeProgress] = []
    run_probe(backend=backend, url=server.url, contexts=[256], knowledge=k, progress=seen.append)
    steps = {p.step for p in seen}
    assert steps and steps <= set(KINDS[backend].steps) | {"done"}
    assert seen[-1].fraction == 1.0


def test_the_command_line_takes_its_backends_and_url_rules_from_the_table(capsys):
    assert BACKENDS == tuple(KINDS) and {"transformers", "ollama", "openai"} <= set(BACKENDS)
    assert main(["probe", "--backend", "transformers", "--url", "http://x"]) == 2
    servers = [n for n, kd in KINDS.items() if kd.needs_url != "no"]
    assert f"--url: only with --backend {' or '.join(servers)}" in capsys.readouterr().err
    required = [n for n, kd in KINDS.items() if kd.needs_url == "required"]
    for name in required:
        assert main(["probe", "--backend", name]) == 4
        assert "--url is required" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e400", "soon"])
def test_timeout_flag_is_checked(value, capsys):
    assert main(["probe", "--backend", "openai", "--url", "http://127.0.0.1:9", "--timeout", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("advisor: error: --timeout:") and err.count("\n") == 1
