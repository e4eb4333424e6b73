"""One load model, read by the gates, the report and the exports alike.

Before, the gates read one model's TTFT p95 and latency p95 while the report printed a second
one's ("simulated at this rate": 232 ms against 146 ms on an L40S at 5 requests/s). A user now
reads the same two figures in JSON, text and the TUI, the rules judged those very figures, and
the export carries the sequences and replicas that model was evaluated at."""

from __future__ import annotations

import json

import pytest

from advisor.answers import answers_from_dict, with_workload_defaults
from advisor.export import export
from advisor.recommend import candidates, recommend
from advisor.render import fig, render
from advisor.rules.facts import candidate_fact
from advisor.tui.screens.advice import predicted_text

LOADS = {
    "arrival rate on an L40S": {"workload": "chat", "arrival_rate_rps": 5, "hardware": {"gpu": "L40S"},
                                "model": {"name": "qwen2.5-1.5b"}},
    "sixteen agents on an H100": {"workload": "rag", "concurrency": 16, "hardware": {"gpu": "H100 80GB"},
                                  "model": {"name": "llama3.1-8b"}},
    "people who pause on a 4090": {"workload": "chat", "concurrency": 32, "think_time_s": 20,
                                   "hardware": {"gpu": "RTX 4090"}, "model": {"name": "llama3.2-3b"}},
}


@pytest.mark.parametrize("story", list(LOADS))
def test_the_plans_ttft_and_latency_are_one_figure_everywhere(k, story):
    a = answers_from_dict(LOADS[story])
    rec = recommend(a, knowledge=k)
    p = rec.recommendation
    ld = p.predicted.load
    # JSON: the headline figures are the load's
    data = json.loads(render(rec, "json"))["recommendation"]["predicted"]
    assert data["ttft_ms"] == data["load"]["ttft_p95_ms"] == ld.ttft_p95_ms == p.predicted.ttft_ms
    assert data["p95_latency_s"] == data["load"]["e2e_p95_s"] == ld.e2e_p95_s == p.predicted.p95_latency_s
    assert "simulated" not in data["load"]  # no second model's figures beside them
    # text and TUI: the same numbers, in the figure rows and in the load line
    ttft, e2e = f"{fig(ld.ttft_p95_ms, 0)} ms", f"{fig(ld.e2e_p95_s, 2)} s"
    text = render(rec, "text")
    assert f"TTFT p95 {ttft}, latency p95 {e2e}" in " ".join(text.split())
    assert "Simulated" not in text
    tui = " ".join(predicted_text(p, 80).split())
    assert ttft in tui and e2e in tui
    # the gates: the winner's fact carries the same two figures
    full = with_workload_defaults(a, k)
    est = next(e for e in candidates(k, a) if (e.backend, e.quant) == (p.backend, p.quantization))
    fact = candidate_fact(k, full, 0, est)
    assert round(fact.ttft_p95_ms, 1) == p.predicted.ttft_ms and round(fact.e2e_p95_s, 2) == p.predicted.p95_latency_s
    # the export: the sequences and replicas the load model was evaluated at
    assert p.concurrency == ld.sequences == est.load.seqs and p.replicas == est.replicas.used
    if p.backend == "vllm":
        script = export(rec, "vllm").files["serve.sh"].replace("=", " ")
        assert f"--max-num-seqs {ld.sequences}" in script


def test_the_gate_fires_exactly_where_the_reported_figure_misses_the_target(k):
    """The SLO gate judges the reported TTFT p95 itself (the point estimate; a band never rescues a
    plan, issue 20): a target just under it fails, one just over it passes."""
    ask = LOADS["sixteen agents on an H100"]
    p = recommend(answers_from_dict(ask), knowledge=k).recommendation
    lo = p.predicted.ttft_ms
    fails = recommend(answers_from_dict({**ask, "constraints": {"backend": p.backend, "quantization": p.quantization},
                                         "slo": {"ttft_ms": lo * 0.98}}), knowledge=k)
    passes = recommend(answers_from_dict({**ask, "constraints": {"backend": p.backend, "quantization": p.quantization},
                                          "slo": {"ttft_ms": lo * 1.02}}), knowledge=k)
    assert "slo.ttft" in {f.rule for f in fails.rules_fired}
    assert "slo.ttft" not in {f.rule for f in passes.rules_fired}
