"""Every load mode on the one load model: what a user who describes the load one way or another sees.

N agents back to back are all in flight; N people who pause put a binomial count in flight; an
arrival rate a Poisson count (Little's law for its mean); an offline batch its own batch. The KV
pool, the precision's memory, the engine's sequence limit and the context per sequence follow the
count's high percentile (knowledge: load.in_flight_percentile), never a head count or a pool size
the user did not give. The GPUs given are used, and no plan reserves more than a GPU holds.

The model is pinned in each story ({"model": {"name": ...}}) so the stories hold whichever model
the ranking prefers; they assert the load-mode behaviour on the plan or the named candidate."""

from __future__ import annotations

import math

import pytest

from advisor.answers import answers_from_dict, with_workload_defaults
from advisor.export import export
from advisor.recommend import candidates, recommend
from advisor.render import render
from advisor.rules.facts import candidate_fact
from advisor.rules.session import consult


def ask(**answers):
    return answers_from_dict(answers)


def the(k, answers, backend, quant):
    """The named candidate's Estimate (the stages, before the rules)."""
    return next(e for e in candidates(k, answers) if (e.backend, e.quant) == (backend, quant))


def binomial_tail(n: int, p: float, k: int) -> float:
    """P(X > k), X ~ Binomial(n, p), summed from the definition."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k + 1, n + 1))


def poisson_tail(mean: float, k: int) -> float:
    """P(X > k), X ~ Poisson(mean), from the definition."""
    return 1 - sum(math.exp(-mean) * mean ** i / math.factorial(i) for i in range(k + 1))


# ------------------------------------------------------------------ people who pause
PEOPLE = dict(workload="chat", concurrency=100, think_time_s=30, hardware={"gpu": "H100 80GB"},
              model={"name": "llama3.1-8b"}, constraints={"backend": "vllm", "quantization": "fp16"})


def test_a_hundred_people_who_read_for_30_s_are_not_a_hundred_sequences(k):
    """100 people with 30 s between turns keep a handful in flight: the engine's sequence limit,
    its KV and the context per sequence follow the tail of that count, not the 100."""
    a = ask(**PEOPLE)
    e = the(k, a, "vllm", "fp16")
    p = e.load.e2e_mean_s / (e.load.e2e_mean_s + 30)  # each person is in flight this share of the time
    seqs = e.load.seqs
    assert 100 * p <= seqs < 40  # at least the mean, nowhere near the head count
    assert binomial_tail(100, p, seqs) <= 0.01 < binomial_tail(100, p, seqs - 1)  # the p99, no more
    # KV for those sequences only: the context each one gets is what `seqs` leaves, well past 100's share
    assert e.kv_seqs == seqs and e.budget_tokens == e.memory.budget(seqs) > e.memory.budget(100)
    kv_gb = e.need_gb - e.memory.base_gb
    assert kv_gb < 0.5 * (e.memory.need_gb(100, e.demand.prompt_tokens, e.demand.seq_tokens) - e.memory.base_gb)

    rec = recommend(a, knowledge=k)
    plan = rec.recommendation
    assert plan.concurrency == seqs
    script = export(rec, "vllm").files["serve.sh"].replace("=", " ")
    assert f"--max-num-seqs {seqs}" in script
    text = " ".join(render(rec, "text").split())
    assert "100 users pausing 30" in text and "N=100" not in text
    # the reason names the in-flight count, not "answers: concurrency"
    why = next(r for r in rec.rules_fired if r.rule == "scaling.in-flight")
    assert "binomial" in why.because and "answers: concurrency" not in why.source
    assert "scaling.concurrency" not in {r.rule for r in rec.rules_fired}
    # and no "past the 8 agents measured for vLLM": these are people, not agents back to back
    assert not any("agents per GPU" in w or "Appendix J.6" in w for w in rec.warnings)


# ------------------------------------------------------------------ an arrival rate
RATE = dict(workload="chat", arrival_rate_rps=5, hardware={"gpu": "L40S"}, model={"name": "qwen2.5-1.5b"},
            constraints={"backend": "vllm", "quantization": "fp16"})


def test_five_requests_a_second_on_an_l40s_size_for_littles_law_not_for_256(k):
    a = ask(**RATE)
    e = the(k, a, "vllm", "fp16")
    mean = 5 * e.load.e2e_mean_s  # Little's law
    seqs = e.load.seqs
    assert mean <= seqs < 64 and seqs != 256
    assert poisson_tail(mean, seqs) <= 0.01 < poisson_tail(mean, seqs - 1)
    assert e.kv_seqs == seqs

    rec = recommend(a, knowledge=k)
    text = " ".join(render(rec, "text").split())
    assert "N=256" not in text and "256 prompts" not in text and "256 concurrent" not in text
    assert rec.recommendation.concurrency == seqs
    # nobody typed a concurrency: no figure is credited to it
    assert all("answers: concurrency" not in r.source for r in rec.rules_fired if r.rule.startswith("scaling."))
    assert not any("Appendix J.6" in w for w in rec.warnings)  # an arrival rate is not agents back to back
    setting = rec.recommendation.settings["max_num_seqs"]
    assert setting.value == seqs and setting.rule == "scaling.in-flight" and "answers" not in setting.source


def test_a_rate_one_gpu_cannot_carry_says_how_many_it_needs_with_finite_figures(k):
    a = ask(workload="chat", arrival_rate_rps=60, hardware={"gpu": "H100 80GB"}, model={"name": "llama3.1-8b"},
            constraints={"backend": "vllm", "quantization": "fp16"})
    e = the(k, a, "vllm", "fp16")
    assert e.replicas.needed > 1 == e.replicas.used and not e.load.steady
    assert e.load.seqs < 256  # what one replica holds in the plan that can carry it, not the whole pool
    rec = recommend(a, knowledge=k)
    p = rec.recommendation
    assert p.predicted.ttft_ms is None and p.predicted.p95_latency_s is None  # null, never a sentinel
    assert all(x is None or x < 1e9 for x in (p.predicted.vram_gb, p.predicted.total_tok_s,
                                             p.predicted.decode_tok_s_per_user))
    text = " ".join(render(rec, "text").split())
    assert "TTFT p95 saturated" in text and "p95 latency saturated" in text
    assert f"the load needs {e.replicas.needed} replica(s); 1 GPU(s) at TP=1 hold 1" in text


# ------------------------------------------------------------------ conflicting inputs
def test_conflicting_load_inputs_get_one_line_naming_the_winner(k):
    rec = recommend(ask(workload="chat", concurrency=64, think_time_s=10, arrival_rate_rps=5,
                        hardware={"gpu": "L40S"}, model={"name": "qwen2.5-1.5b"}), knowledge=k)
    lines = [w for w in rec.warnings if "conflicting load inputs" in w]
    assert len(lines) == 1
    line = lines[0]
    assert "arrival_rate_rps=5" in line and "wins" in line and "concurrency=64" in line and "think_time_s=10" in line
    assert line.index("wins") < line.index("ignored")
    assert rec.recommendation.predicted.load.mode == "rate"  # and the plan is the arrival rate's


def test_agreeing_inputs_get_no_conflict_line(k):
    rec = recommend(ask(workload="chat", concurrency=16, think_time_s=10, hardware={"gpu": "L40S"},
                        model={"name": "qwen2.5-1.5b"}), knowledge=k)
    assert not any("conflicting" in w or "ignored" in w for w in rec.warnings)


# ------------------------------------------------------------------ GPUs given are used
def test_two_h100s_for_64_agents_use_both(k):
    one = dict(workload="chat", concurrency=64, model={"name": "llama3.1-8b"},
               constraints={"backend": "vllm", "quantization": "fp16"})
    alone = recommend(ask(**one, hardware={"gpu": "H100 80GB"}), knowledge=k).recommendation
    both = recommend(ask(**one, hardware={"gpu": "H100 80GB", "gpus": 2}), knowledge=k)
    p = both.recommendation
    assert p.replicas * p.tensor_parallel == 2  # no idle GPU
    assert p.predicted.p95_latency_s < alone.predicted.p95_latency_s
    assert p.predicted.total_tok_s > alone.predicted.total_tok_s
    if p.replicas == 2:
        assert p.concurrency == 32  # each replica serves its half of the agents
        assert "2 replicas" in render(both, "text")


def test_70b_on_two_h100s_for_64_agents_never_plans_past_the_gpu(k):
    """Tensor parallel counts the KV: at fp16 the weights leave too little for 64 sequences, so the
    plan holds the sequences the pool holds (the rest wait, with a warning) or moves to a smaller
    precision; no plan needs more than a GPU holds."""
    a = ask(workload="chat", concurrency=64, hardware={"gpu": "H100 80GB", "gpus": 2}, model={"name": "llama3.1-70b"})
    for e in candidates(k, a):
        if e.backend in ("vllm", "tgi"):
            assert e.tensor_parallel == 2 and e.need_gb <= e.memory.total_gb, (e.backend, e.quant, e.need_gb)
    fp16 = the(k, a, "vllm", "fp16")
    assert fp16.load.seqs < 64 and fp16.budget_tokens >= fp16.demand.seq_tokens
    rec = recommend(a, knowledge=k)
    p = rec.recommendation
    assert p.predicted.vram_gb <= 80
    tied = recommend(ask(workload="chat", concurrency=64, hardware={"gpu": "H100 80GB", "gpus": 2},
                         model={"name": "llama3.1-70b"}, constraints={"backend": "vllm", "quantization": "fp16"}),
                     knowledge=k)
    assert tied.recommendation.predicted.vram_gb <= 80
    assert any("KV pool holds" in w and "wait for a slot" in w for w in tied.warnings)


# ------------------------------------------------------------------ an offline batch
BATCH = dict(workload="summarization", requests_per_day=100_000, deadline_hours=8, hardware={"gpu": "A100 80GB"},
             model={"name": "llama3.2-3b"})


def test_a_batch_plan_shows_how_long_the_batch_takes_not_an_interactive_ttft(k):
    rec = recommend(ask(**BATCH), knowledge=k)
    text = render(rec, "text")
    block = text.split("Warnings:")[0].split("Alternatives")[0]
    assert "TTFT" not in block and "p95 latency" not in block and "unbounded" not in block
    assert "batch done in" in block and "requests/s" in block and "tokens/s" in block
    p = rec.recommendation
    ld = p.predicted.load
    rps = ld.capacity_rps * p.replicas  # what the replicas together complete
    hours = 100_000 / rps / 3600
    assert f"{hours:.1f} h" in block
    assert hours <= 8  # the plan meets the deadline


# ------------------------------------------------------------------ explanations that are the reason
@pytest.mark.parametrize("seq_over_budget, fires", [(0.95, True), (1.0, True), (2.0, False), (0.5, False)])
def test_near_budget_fires_only_near_the_budget_not_past_it(k, seq_over_budget, fires):
    a = ask(**PEOPLE)
    e = the(k, a, "vllm", "fp16")
    fact = candidate_fact(k, with_workload_defaults(a, k), 0, e)
    budget = int(fact.seq_tokens / seq_over_budget)
    got = {c.rule for c in consult(k, "plan", [fact.model_copy(update={"budget_tokens": budget}).as_plan("")]).conclusions}
    assert ("context.near-budget" in got) is fires


def test_a_paged_pool_has_no_per_sequence_out_of_memory(k):
    a = ask(**PEOPLE)
    vllm = recommend(a, knowledge=k)
    assert "context.linux-oom" not in {r.rule for r in vllm.rules_fired}
    assert "context.paged-pool" in {r.rule for r in vllm.rules_fired}
    ollama = recommend(ask(workload="chat", concurrency=2, hardware={"gpu": "RTX 4090"}, model={"name": "llama3.2-3b"},
                           constraints={"backend": "ollama", "quantization": "q4_k_m"}), knowledge=k)
    assert "context.linux-oom" in {r.rule for r in ollama.rules_fired}
