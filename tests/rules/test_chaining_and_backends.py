"""The structure a maintainer relies on: backends are objects built from their knowledge row,
ranking weights are data, conclusions chain inside the engine, and no number the engine
cannot parse ever reaches it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from advisor.answers import answers_from_dict
from advisor.recommend import recommend
from advisor.knowledge import load_knowledge


def _user_dir(tmp_path, table: str, rows: str):
    """A user's knowledge folder holding one table, `ours`, of the given `[[rows]]` TOML."""
    (tmp_path / "mine.toml").write_text(f'[meta]\ntable = "{table}"\ntitle = "ours"\n' + textwrap.dedent(rows))
    return load_knowledge(str(tmp_path))


def test_a_users_own_backend_row_behaves_by_its_engine_not_its_name(tmp_path):
    # A site that runs vLLM under its own name: planned, batched and exported as vLLM.
    k = _user_dir(tmp_path, "backends", """
        [[rows]]
        backend = "site-vllm"
        title = "our vLLM build"
        engine = "vllm"
        batching = "continuous"
        family = "vllm"
        export_target = "vllm"
        probe_kinds = ["openai"]
        calibration = "vllm"
        pages_kv = true
        quantizations = ["fp16"]
        os = ["linux"]
        kv_reserved_at_load = true
        spills_silently_on_windows = false
        source = "our own build"
    """)
    rec = recommend(answers_from_dict({"concurrency": 32, "hardware": {"gpu": "H100 80GB"},
                                       "model": {"name": "llama3.1-8b"}, "current_backend": "ollama",
                                       "constraints": {"backend": "site-vllm"}}), knowledge=k)
    plan = rec.recommendation
    assert plan is not None and plan.backend == "site-vllm"
    assert plan.settings["max_num_seqs"].value == 32  # a vLLM knob, from the vLLM class
    assert "gpu_memory_utilization" in plan.settings
    assert any(p.id == "H.1" for p in rec.playbooks)  # from Ollama today to a site's own batching engine


def test_ranking_weights_are_knowledge_rows(tmp_path):
    a = answers_from_dict({"workload": "chat", "concurrency": 1, "hardware": {"gpu": "RTX 4090"},
                           "model": {"name": "llama3.1-8b"}})
    base = recommend(a)
    assert base.recommendation.backend == "ollama"  # Appendix F's bonus for chat at N=1, inside one quality tier
    # A site that weighs Appendix F's backend preference as a penalty instead gets another backend.
    k = _user_dir(tmp_path, "thresholds", """
        [[rows]]
        key = "weight.backend.workload-preference"
        value = 5.0
        unit = "ranking points"
        source = "our policy"
    """)
    assert recommend(a, knowledge=k).recommendation.backend != "ollama"


def test_a_broken_gate_becomes_the_users_warning_through_the_engine():
    # Tied to vLLM on Windows-free Linux with a 1 ms TTFT target: the SLO gate on the winner is
    # asserted again in the plan stage and the advice rule joins it with the plan.
    rec = recommend(answers_from_dict({"hardware": {"gpu": "RTX 4090"}, "model": {"name": "llama3.1-8b"},
                                       "slo": {"ttft_ms": 1}, "constraints": {"backend": "vllm"}}))
    assert rec.recommendation is not None
    broke = [w for w in rec.warnings if w.startswith("your constraint (backend=vllm) breaks slo.ttft:")]
    assert broke and broke[0].endswith("[answers: slo.ttft_ms]")  # the gate's own source


def test_vram_concerns_chain_into_the_spillover_playbook():
    near = recommend(answers_from_dict({"hardware": {"gpu": "RTX 4090"}, "model": {"name": "llama3.1-8b"},
                                        "context_tokens": 118000, "slo": {"p95_latency_s": 600, "ttft_ms": 60000}}))
    h2 = [f for f in near.rules_fired if f.rule == "playbook.h2-vram"]
    assert [p.id for p in near.playbooks].count("H.2") == 1 and len(h2) == 1
    assert "near the budget" in h2[0].because
    roomy = recommend(answers_from_dict({"hardware": {"gpu": "RTX 4090"}, "model": {"name": "llama3.1-8b"},
                                         "context_tokens": 2000}))
    assert "H.2" not in [p.id for p in roomy.playbooks]


@pytest.mark.parametrize("value", [1e-05, 1e16, 2e16, 1e300, -1e-05, 10**20])
def test_numbers_durable_cannot_parse_never_reach_it(value):
    # durable-rules 2.0.28 segfaults on 1e-05 / 1e+16 written without a decimal point; run in a
    # child so a regression shows as a crash of the child, not of the test session.
    code = textwrap.dedent(f"""
        from advisor.knowledge import load_knowledge
        from advisor.rules.session import consult
        k = load_knowledge()
        t = consult(k, "plan", [{{"kind": "figure", "id": "f", "what": "x", "value": {value!r},
                                  "plausible": 1, "reason": "", "source": "s", "table_value": {value!r},
                                  "table_source": ""}}])
        print("ok", len(t.conclusions))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.startswith("ok")


def test_a_non_finite_figure_is_a_rule_error_not_a_crash():
    from advisor.rules.session import RuleError, engine_safe

    with pytest.raises(RuleError, match="'value'"):
        engine_safe({"value": float("inf")})
    assert json.dumps(engine_safe({"a": 1e-05, "b": 1e16, "c": 0.5})) == '{"a": 0.0, "b": 1000000000000000.0, "c": 0.5}'
