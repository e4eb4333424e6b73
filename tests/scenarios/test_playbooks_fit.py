"""Playbooks and notes that fit the user: each story is who the user is and what they would
notice in the advice — a migration guide they never needed, agent advice for a batch job, the
same line twice. Which model wins is the ranking's business; these stories hold for any winner."""

from __future__ import annotations

import collections
import re

import pytest

from advisor.answers import answers_from_dict
from advisor.cli import main
from advisor.recommend import recommend


def advise(k, **answers):
    return recommend(answers_from_dict(answers), knowledge=k)


def playbooks(rec) -> set[str]:
    return {pb.id for pb in rec.playbooks}


def fired(rec) -> dict[str, str]:
    return {r.rule: r.because for r in rec.rules_fired}


BATCH = dict(workload="summarization", requests_per_day=100_000, deadline_hours=8.0,
             hardware={"gpu": "A100 80GB"})


# ------------------------------------------------------------------ H.1: only for Ollama users
@pytest.mark.parametrize("gpu", ["RTX 4090", "H100 80GB"])
@pytest.mark.parametrize("n", [1, 16, 64])
def test_a_team_that_serves_nothing_yet_is_never_told_how_to_leave_ollama(k, gpu, n):
    rec = advise(k, workload="chat", concurrency=n, hardware={"gpu": gpu})
    assert rec.recommendation is not None
    assert "H.1" not in playbooks(rec), (gpu, n, rec.recommendation.backend)


def test_a_vllm_shop_with_16_agents_is_not_told_to_upgrade_to_vllm(k):
    rec = advise(k, workload="chat", concurrency=16, current_backend="vllm", hardware={"gpu": "H100 80GB"})
    assert "H.1" not in playbooks(rec)


def test_an_ollama_shop_with_16_agents_is_shown_how_to_move_off_it(k):
    rec = advise(k, workload="chat", concurrency=16, current_backend="ollama", hardware={"gpu": "H100 80GB"})
    plan = rec.recommendation
    # 16 agents are four times the TR130 crossover: the plan batches them on another engine
    assert plan.backend != "ollama"
    assert "H.1" in playbooks(rec)
    why = fired(rec)["playbook.h1-move-off-ollama"]
    assert "ollama today" in why.lower() and plan.backend in why  # the reason is the user's own situation


def test_an_ollama_user_tied_to_ollama_is_not_handed_a_migration(k):
    rec = advise(k, workload="chat", concurrency=8, current_backend="ollama", hardware={"gpu": "RTX 4090"},
                 constraints={"backend": "ollama"})
    assert rec.recommendation.backend == "ollama"
    assert "H.1" not in playbooks(rec)


# ------------------------------------------------------------------ H.5: only for agents, 2 to 8, one GPU
@pytest.mark.parametrize("n", [2, 4, 8])
def test_agents_back_to_back_on_one_gpu_get_the_scaling_playbook(k, n):
    rec = advise(k, workload="chat", concurrency=n, hardware={"gpu": "RTX 4090"})
    assert "H.5" in playbooks(rec)
    assert f"{n} agents" in fired(rec)["playbook.h5-agents"]


@pytest.mark.parametrize("story, answers", [
    ("a batch job", BATCH),
    ("100 people who read for 30 s between turns",
     dict(workload="chat", concurrency=100, think_time_s=30.0, hardware={"gpu": "H100 80GB"})),
    ("5 requests a second arriving", dict(workload="chat", arrival_rate_rps=5.0, hardware={"gpu": "L40S"})),
    ("one user", dict(workload="chat", concurrency=1, hardware={"gpu": "RTX 4090"})),
    ("16 agents, past what H.5 covers", dict(workload="chat", concurrency=16, hardware={"gpu": "H100 80GB"})),
    ("4 agents on two GPUs", dict(workload="chat", concurrency=4, hardware={"gpu": "RTX 4090", "gpus": 2})),
])
def test_loads_that_are_not_one_to_eight_agents_on_one_gpu_never_get_the_agent_playbook(k, story, answers):
    rec = advise(k, **answers)
    assert rec.recommendation is not None, story
    assert "H.5" not in playbooks(rec), story
    assert not any("agents" in r.because for r in rec.rules_fired if r.rule.startswith("playbook.")), story


# ------------------------------------------------------------------ batch work gets batch advice
def test_a_batch_job_reads_batch_advice_not_interactive_notes(k):
    rec = advise(k, **BATCH)
    why = fired(rec)
    batch = why["playbook.batch-throughput"]
    # what keeps the engine's batch full, for the batch this plan runs
    assert "queued" in batch and f"the {rec.recommendation.concurrency} {rec.recommendation.backend}" in batch
    assert not playbooks(rec) & {"H.1", "H.5"}
    # nobody waits for a first token in a batch: no TTFT bands, no burst of prompts, no p95 at risk
    assert not [r for r in why if r.startswith(("slo.ttft-band", "slo.burst", "slo.ttft-at-risk", "slo.p95-at-risk"))]


def test_only_a_batch_job_gets_the_batch_note(k):
    rec = advise(k, workload="summarization", concurrency=8, hardware={"gpu": "A100 80GB"})
    assert "playbook.batch-throughput" not in fired(rec)


# ------------------------------------------------------------------ no line twice, no playbook everywhere
ANSWERS = [
    ["--gpu", "A100 80GB", "--workload", "summarization", "--requests-per-day", "100000", "--deadline-hours", "8"],
    ["--gpu", "H100 80GB", "--workload", "chat"],
    ["--gpu", "H100 80GB", "--workload", "rag", "--concurrency", "8", "--context-tokens", "8192",
     "--current-backend", "ollama"],
    ["--gpu", "RTX 4090", "--workload", "chat", "--concurrency", "16", "--current-backend", "ollama"],
    ["--gpu", "RTX 4080", "--workload", "chat", "--concurrency", "64"],
    ["--gpu", "L40S", "--workload", "chat", "--arrival-rate-rps", "5"],
    ["--gpu", "H100 80GB", "--workload", "chat", "--concurrency", "100", "--think-time-s", "30"],
    ["--gpu", "RTX 2060", "--workload", "chat", "--risk", "high"],
    ["--gpu", "RTX 4090", "--workload", "chat", "--concurrency", "8", "--backend", "ollama",
     "--current-backend", "ollama"],
]


def _sections(text: str) -> dict[str, list[str]]:
    """The text output's items per section (an alternative is its own section), each item with its
    wrapped continuation lines joined: what a reader sees as one line."""
    out: dict[str, list[str]] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        item = line.strip()
        if indent == 0 or (indent == 2 and re.match(r"\d+\. ", item)):
            key = item
            out.setdefault(key, [])
        elif item.startswith(("- ", "! ")) or indent <= 2 or not out.get(key):
            out.setdefault(key, []).append(item)
        else:
            out[key][-1] += " " + item
    return out


def test_no_line_is_printed_twice_in_a_section(capsys):
    for argv in ANSWERS:
        assert main(["recommend", *argv, "--format", "text"]) == 0, argv
        text = capsys.readouterr().out
        for section, items in _sections(text).items():
            twice = [item for item, n in collections.Counter(items).items() if n > 1]
            assert not twice, (argv, section, twice)


def test_no_playbook_is_attached_to_every_plan(capsys):
    import json

    seen: collections.Counter[str] = collections.Counter()
    for argv in ANSWERS:
        assert main(["recommend", *argv, "--format", "json"]) == 0, argv
        d = json.loads(capsys.readouterr().out)
        seen.update({pb["id"] for pb in d["playbooks"]})
        # the lists a user reads hold each line once
        for name in ("warnings", "rules_fired"):
            items = [json.dumps(x, sort_keys=True) for x in d[name]]
            assert len(items) == len(set(items)), (argv, name)
    assert seen and all(n < len(ANSWERS) for n in seen.values()), seen


# ------------------------------------------------------------------ no unsupported claim about an engine
def _read(rec) -> list[str]:
    return rec.warnings + [r.because for r in rec.rules_fired] + [w for a in rec.alternatives for w in a.lost_because]


def test_an_ollama_plan_past_the_crossover_never_says_ollama_cannot_batch(k):
    rec = advise(k, workload="chat", concurrency=8, current_backend="ollama", hardware={"gpu": "RTX 4090"},
                 constraints={"backend": "ollama"})
    assert rec.recommendation.backend == "ollama"
    assert not [x for x in _read(rec) if "lacks continuous batching" in x and "ollama" in x.lower()]


def test_a_transformers_plan_is_never_said_to_batch_slots(k):
    """transformers' generate() loop serves one request at a time (knowledge/backends.toml): it has no slots."""
    rec = advise(k, workload="chat", concurrency=8, hardware={"gpu": "RTX 4090"},
                 constraints={"backend": "transformers"})
    assert rec.recommendation.backend == "transformers"
    assert not [x for x in _read(rec) if "transformers batches" in x]
    assert [x for x in _read(rec) if "transformers serves one request at a time" in x]
