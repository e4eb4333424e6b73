"""The durable-rules wrapper: errors surface, consultations never leak, thresholds are data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from advisor.answers import answers_from_dict
from advisor.recommend import recommend
from advisor.knowledge import Knowledge, load_knowledge
from advisor.rules.base import Rule
from advisor.rules.session import RuleError, consult, consult_candidates


def test_an_exception_inside_a_rule_is_reported_not_swallowed(k, base_fact, monkeypatch):
    import advisor.rules.slo as slo
    from advisor.rules.facts import serves_facts

    broken = Rule("slo.broken-on-purpose", "test", "gate", lambda m: m.kind == "cand",
                  lambda f: f.no_such_field_anywhere.upper())
    original = slo.candidates_rules
    monkeypatch.setattr(slo, "candidates_rules", lambda kk: original(kk) + [broken])
    fresh = Knowledge(k.tables)  # a new knowledge object gets freshly built rulesets
    with pytest.raises(RuleError) as e:
        # the backend's rows come first: without them the candidate is rejected before the gates run
        consult_candidates(fresh, [*serves_facts(k, [base_fact.backend]), base_fact])
    assert "slo.broken-on-purpose" in str(e.value)


def test_consecutive_consultations_do_not_leak_into_each_other(k):
    small = answers_from_dict({"workload": "chat", "risk": "high", "hardware": {"gpu": "RTX 2060"}})
    big = answers_from_dict({"workload": "rag", "concurrency": 8, "context_tokens": 16384,
                             "hardware": {"gpu": "H100 80GB"}})
    first = recommend(small, knowledge=k).model_dump()
    recommend(big, knowledge=k)
    again = recommend(small, knowledge=k).model_dump()
    assert first == again


def test_thresholds_are_data_a_user_row_changes_the_advice(tmp_path):
    (tmp_path / "scaling.toml").write_text(
        '[meta]\ntable = "scaling"\n[[rows]]\nkey = "vllm_crossover_n"\nvalue = 16\nunit = "agents"\n'
        'source = "our own benchmark"\n')
    a = answers_from_dict({"workload": "chat", "concurrency": 4, "hardware": {"gpu": "RTX 4090"},
                           "model": {"name": "llama3.2-3b"}})
    stock = recommend(a, knowledge=load_knowledge(None))
    ours = recommend(a, knowledge=load_knowledge(tmp_path))
    assert "backend.crossover" not in {r.rule for r in ours.rules_fired}
    # N=4 is past the stock crossover (4) and short of ours (16): the rules that read it say so
    at_crossover = {"backend.crossover", "backend.continuous-batching", "backend.no-batching-at-high-n"}
    assert at_crossover & {r.rule for r in stock.rules_fired}
    assert not at_crossover & {r.rule for r in ours.rules_fired}


def test_many_consultations_in_one_process():
    # With durable's default host, its dispatch threads raced consultations: after a few
    # dozen, rules stopped firing half-way, then error 307 and a segfault. Every run must
    # give the same complete answer.
    code = ("from advisor.answers import answers_from_dict\nfrom advisor.recommend import recommend\n"
            "a = answers_from_dict({'workload': 'chat', 'risk': 'high', 'hardware': {'gpu': 'RTX 2060'}})\n"
            "first = recommend(a).model_dump()\n"
            "for _ in range(60):\n    assert recommend(a).model_dump() == first\nprint('same')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "error code" not in p.stderr and p.stdout.strip() == "same"
