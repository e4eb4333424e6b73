"""The transformers export launches `transformers serve`: serve.sh runs against a stub that records its
argv, and that argv is parsed by transformers' own CLI (the typer options of transformers/cli/serve.py,
5.24), so a flag transformers renamed or dropped fails here, and every value must read back as the
plan's."""

from __future__ import annotations

import pytest

from advisor.answers import answers_from_dict
from advisor.recommend import recommend
from advisor.export import export
from plans import transformers_compiled, transformers_serve_n16, vllm_n8


def serve_params(argv: list[str]) -> dict:
    """What `transformers <argv>` would run Serve with: transformers' own parser, nothing started."""
    import click
    from transformers.cli.transformers import app

    group = app if isinstance(app, click.Group) else __import__("typer").main.get_command(app)
    assert argv[0] == "serve", argv
    return group.commands["serve"].make_context("serve", list(argv[1:])).params


def _launched(run_script, snippet, **env) -> list[dict]:
    run = run_script(snippet.files, env=env)
    assert run.rc == 0, run.stderr
    calls = run.of("transformers")
    assert calls, "serve.sh started no transformers serve"
    return calls


def test_continuous_batching_plan_reads_back_through_the_real_cli(run_script):
    r = transformers_serve_n16()
    s = r.recommendation.settings
    (call,) = _launched(run_script, export(r, "transformers"))
    p = serve_params(call["argv"])
    assert p["force_model"] == s["hf_repo"].value  # pinned: /v1/models lists it under this name
    assert p["continuous_batching"] is True
    assert p["cb_max_memory_percent"] == s["cb_max_memory_percent"].value
    assert p["cb_max_batch_tokens"] == s["cb_max_batch_tokens"].value
    assert p["dtype"] == "bfloat16" and p["attn_implementation"] == "sdpa"
    assert p["host"] == "127.0.0.1" and p["port"] == 8000 and p["compile"] is False


def test_host_comes_from_the_environment(run_script):
    (call,) = _launched(run_script, export(transformers_serve_n16(), "transformers"), HOST="0.0.0.0")
    assert serve_params(call["argv"])["host"] == "0.0.0.0"


def _real_plan(k, backend: str, n: int):
    a = answers_from_dict({"workload": "chat", "concurrency": n, "hardware": {"gpu": "H100 80GB"},
                           "model": {"name": "qwen2.5-1.5b"}, "constraints": {"backend": backend}})
    rec = recommend(a, knowledge=k)
    assert rec.recommendation is not None and rec.recommendation.backend == backend
    return rec


@pytest.mark.parametrize("backend, batching", [("transformers-serve", True), ("transformers", False)])
def test_the_engines_plan_picks_the_server_mode(k, run_script, backend, batching):
    """transformers-serve runs the paged cache; the plain transformers engine (one request at a time) the
    server's generate() path, whose requests take turns: each export says so and launches it so."""
    rec = _real_plan(k, backend, 8)
    snippet = export(rec, "transformers")
    (call,) = _launched(run_script, snippet)
    p = serve_params(call["argv"])
    assert p["continuous_batching"] is batching
    assert p["force_model"] == "Qwen/Qwen2.5-1.5B-Instruct" and p["dtype"] == "bfloat16"
    body = snippet.files["serve.sh"]
    if batching:
        pool = rec.recommendation.settings["kv_pool_tokens"].value
        pct = rec.recommendation.settings["cb_max_memory_percent"].value
        assert p["cb_max_memory_percent"] == pct <= 0.9 and f"holds about {pool:,} tokens" in body
    else:
        assert p["cb_max_memory_percent"] is None and "take turns" in body


@pytest.mark.parametrize("quant, method", [("int8", "bnb-8bit"), ("nf4", "bnb-4bit")])
def test_bitsandbytes_plans_quantize_at_load(run_script, quant, method):
    (call,) = _launched(run_script, export(vllm_n8(quant=quant), "transformers"))
    p = serve_params(call["argv"])
    assert p["quantization"] == method and p["force_model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_a_compiled_prefill_plan_is_served_eagerly_and_says_what_it_costs(run_script):
    """`transformers serve --compile` compiles the decode step (TR126: never); the prefill-only policy
    has no flag, so the server runs eagerly and the note names the TTFT the plan assumed away."""
    snippet = export(transformers_compiled(), "transformers")
    (call,) = _launched(run_script, snippet)
    p = serve_params(call["argv"])
    assert p["compile"] is False and p["continuous_batching"] is False
    assert any("--compile compiles the decode step" in n and "1.32x" in n for n in snippet.notes)


def test_a_plan_for_another_engine_says_where_the_batching_knobs_come_from(run_script):
    snippet = export(vllm_n8(), "transformers")
    (call,) = _launched(run_script, snippet)
    assert serve_params(call["argv"])["continuous_batching"] is True
    assert any(n.startswith("cb_max_memory_percent is not in this plan") and 'backend = "transformers-serve"' in n
               for n in snippet.notes)


def test_replicas_run_one_server_per_gpu_and_port(run_script):
    snippet = export(transformers_serve_n16(replicas=2), "transformers")
    calls = _launched(run_script, snippet)
    got = sorted((c["env"]["CUDA_VISIBLE_DEVICES"], serve_params(c["argv"])["port"]) for c in calls)
    assert got == [("0", 8000), ("1", 8001)]
    assert any("least_conn" in n and "8000" in n and "8001" in n for n in snippet.notes)


def test_clients_are_told_the_endpoint_and_the_chat_template(k):
    snippet = export(transformers_serve_n16(), "transformers")
    body = snippet.files["serve.sh"]
    assert "/v1/chat/completions" in body and "chat template" in body
    assert any("http://127.0.0.1:8000/v1" in n and "Qwen/Qwen2.5-1.5B-Instruct" in n for n in snippet.notes)
