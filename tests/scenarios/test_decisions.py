"""Decisions an experienced serving engineer would sign, told as the user's story.

Each test is a situation where the answer is known in the trade: what the plan decides, and
the reason the user reads next to it."""

from __future__ import annotations

import math

import pytest

from advisor.load import Demand, OneAtATime
from advisor.load import closed_forms as cf
from advisor.load.simulation import Workload, simulate
from advisor.answers import answers_from_dict
from advisor.recommend import recommend


def advise(k, **answers):
    return recommend(answers_from_dict(answers), knowledge=k)


def fired(rec) -> dict[str, str]:
    return {f.rule: f.because for f in rec.rules_fired}


# ------------------------------------------------------------------ offline batches
def test_a_nightly_classification_job_on_two_a100s_batches_instead_of_serving_one_at_a_time(k):
    rec = advise(k, workload="classification", requests_per_day=1_000_000, deadline_hours=8,
                 context_tokens=512, output_tokens=5, hardware={"gpu": "A100 80GB", "gpus": 2})
    p = rec.recommendation
    assert p.predicted.load.mode == "batch"
    # throughput-optimal batch, not the interactive default of one request at a time
    assert p.concurrency >= 32 and p.settings["max_num_seqs"].value == p.concurrency
    # the deadline is met: the replicas carry the volume
    need_rps = 1_000_000 / (8 * 3600)
    assert p.predicted.load.capacity_rps * p.replicas >= need_rps
    assert p.replicas <= 2
    # no interactive TTFT target gates an offline job
    assert not any(r.startswith("slo.ttft") for r in fired(rec))


def test_a_batch_that_cannot_meet_its_deadline_says_so_and_what_would(k):
    rec = advise(k, workload="summarization", requests_per_day=2_000_000, deadline_hours=1,
                 context_tokens=8192, output_tokens=300, model={"name": "llama3.1-8b"},
                 hardware={"gpu": "RTX 4090"})
    words = " ".join(rec.warnings)
    assert "replica" in words and "2,000,000 requests in 1 h" in words
    p = rec.recommendation or rec.alternatives[0]
    assert p.predicted.load.mode == "batch" and p.concurrency > 1


def test_batch_exports_carry_the_batch(k, tmp_path):
    from advisor.export import export

    rec = advise(k, workload="classification", requests_per_day=500_000, deadline_hours=8,
                 context_tokens=512, output_tokens=5, hardware={"gpu": "H100 80GB"},
                 constraints={"backend": "vllm"})
    files = export(rec, "vllm").files
    script = next(text for name, text in files.items() if name.endswith(".sh"))
    assert rec.recommendation.concurrency > 1
    assert f"--max-num-seqs {rec.recommendation.concurrency}" in script.replace("=", " ")


# ------------------------------------------------------------------ concurrency
def test_sixty_four_chat_users_on_an_h100_get_continuous_batching(k):
    rec = advise(k, workload="chat", concurrency=64, hardware={"gpu": "H100 80GB"})
    p = rec.recommendation
    assert p.backend in ("vllm", "tgi")
    assert p.settings["max_num_seqs"].value == 64
    # the figures are steady state; the burst is named apart and is far worse
    assert p.predicted.load.mode == "concurrent"
    assert p.predicted.load.burst_last_ttft_ms > p.predicted.ttft_ms
    assert "burst" in fired(rec)["slo.burst"]


def test_a_gaming_gpu_with_many_agents_does_not_get_ollama(k):
    rec = advise(k, workload="rag", concurrency=16, context_tokens=4096, output_tokens=128,
                 hardware={"gpu": "RTX 4090"})
    assert rec.recommendation.backend in ("vllm", "tgi", "llamacpp")


# ------------------------------------------------------------------ precision by headroom
def test_one_rag_user_on_an_h100_keeps_16_bits(k):
    rec = advise(k, workload="rag", concurrency=1, context_tokens=8192, output_tokens=128,
                 hardware={"gpu": "H100 80GB"}, model={"name": "llama3.1-8b"})
    p = rec.recommendation
    assert p.quantization in ("fp16", "bf16")
    assert "quantization.headroom-kept" in fired(rec)


def test_a_small_card_quantizes_because_memory_demands_it(k):
    rec = advise(k, workload="chat", model={"name": "llama3.1-8b"}, hardware={"gpu": "RTX 4080 Laptop"})
    p = rec.recommendation
    assert p.quantization not in ("fp16", "bf16")
    assert "memory demands it" in fired(rec)["quantization.memory-demands"]


def test_fp8_only_where_the_gpu_has_fp8(k):
    old = advise(k, workload="chat", concurrency=16, hardware={"gpu": "A100 80GB"},
                 constraints={"quantization": "fp8"})
    assert old.recommendation is None or old.recommendation.quantization != "fp8"
    assert any("compute capability 8.9" in w for w in old.warnings)
    new = advise(k, workload="chat", concurrency=16, hardware={"gpu": "H100 80GB"},
                 constraints={"quantization": "fp8"})
    assert new.recommendation.quantization == "fp8"


def test_a_16_bit_plan_runs_in_the_dtype_the_model_ships_in(k):
    rec = advise(k, workload="rag", concurrency=8, hardware={"gpu": "H100 80GB"}, model={"name": "llama3.1-8b"},
                 constraints={"backend": "vllm", "quantization": "fp16"})
    assert rec.recommendation.settings["dtype"].value == "bfloat16"
    turing = advise(k, workload="chat", hardware={"gpu": "RTX 2060"}, model={"name": "qwen2.5-0.5b"},
                    constraints={"backend": "transformers", "quantization": "fp16"})
    assert turing.recommendation.settings["dtype"].value == "float16"  # no bf16 before compute 8.0


# ------------------------------------------------------------------ impossible asks
def test_128k_on_a_12gb_card_through_ollama_gets_the_longest_context_that_fits(k):
    rec = advise(k, workload="summarization", model={"name": "llama3.1-8b"}, context_tokens=128_000,
                 hardware={"gpu": "RTX 4080 Laptop"}, constraints={"backend": "ollama"})
    p = rec.recommendation
    assert p is not None and p.model == "llama3.1-8b" and p.backend == "ollama"
    assert 4096 <= p.max_context_tokens < 128_000
    assert rec.warnings[0].startswith("nearest plan: 128,000 + ")
    assert "KV cache at 8 bits" in rec.warnings[0]


def test_a_request_just_past_the_trained_length_is_clamped_not_refused(k):
    m = k.model("llama3.2-1b")
    rec = advise(k, workload="chat", model={"name": "llama3.2-1b"}, context_tokens=m.max_context - 100,
                 output_tokens=256, hardware={"gpu": "H100 80GB"}, constraints={"backend": "vllm"})
    assert rec.recommendation is not None
    assert "trained for" in rec.warnings[0]


# ------------------------------------------------------------------ decisions inside the noise
def test_a_target_the_point_estimate_meets_but_the_band_does_not_is_at_risk(k):
    """A TTFT target between the prediction and its band's far edge is met, with a warning to
    measure it; a target the prediction itself misses fails, however wide the band: uncertainty
    never rescues a plan."""
    base = dict(workload="chat", concurrency=1, model={"name": "llama3.1-8b"}, context_tokens=4096,
                hardware={"gpu": "H100 80GB"}, constraints={"backend": "vllm", "quantization": "fp16"})
    ttft = advise(k, **base).recommendation.predicted.ttft_ms
    band = advise(k, **base).recommendation.predicted.bands["ttft_ms"]
    at_risk = advise(k, **base, slo={"ttft_ms": ttft * (1 + band / 2)})
    assert any(w.startswith("at risk: predicted p95 TTFT") for w in at_risk.warnings)
    assert "slo.ttft" not in fired(at_risk)
    inside_band = advise(k, **base, slo={"ttft_ms": ttft * (1 - band / 2)})
    assert "slo.ttft" in fired(inside_band)
    assert not any(w.startswith("at risk") for w in inside_band.warnings if "TTFT" in w)


# ------------------------------------------------------------------ the load model
class _Flat:
    """A prompt of 50 ms whatever its length, and 10 ms a decode step: a textbook server."""

    def prefill_ms(self, tokens: int) -> float:
        return 50.0

    def step_ms(self, n: int) -> float:
        return 10.0

    def scaled(self, prefill: float = 1.0, decode: float = 1.0):
        return self


def test_one_request_at_a_time_waits_as_m_d_1_says_in_the_plan_and_the_simulation():
    costs, sched = _Flat(), OneAtATime()
    service = 50.0 + 10 * 10.0
    rate = 0.3 / service * 1e3
    plan = sched.figures(costs, Demand.of(prompt_tokens=100, output_tokens=11, rate_rps=rate), 1)
    # the plan's p95 is the closed form's, exactly: the wait, then this prompt's own prefill
    assert plan.ttft_p95_ms == pytest.approx(cf.md1_wait_quantile_ms(0.95, rate, service) + 50.0)
    sim = simulate(sched.replica(costs, 1), Workload(prompt_tokens=100, output_tokens=11, rate_rps=rate,
                                                      requests=20_000, seed=3))
    assert sim.wait_mean_ms == pytest.approx(cf.md1_mean_wait_ms(rate, service), rel=0.1)
    assert sim.ttft_p95_ms == pytest.approx(plan.ttft_p95_ms, rel=0.1)


def test_the_plan_says_how_many_requests_per_second_one_replica_holds(k):
    rec = advise(k, workload="chat", concurrency=8, hardware={"gpu": "RTX 4090"}, model={"name": "llama3.1-8b"},
                 constraints={"backend": "llamacpp"}, slo={"ttft_ms": 8000, "p95_latency_s": 60})
    load = rec.recommendation.predicted.load
    assert load.max_rate_rps is not None and 0 < load.max_rate_rps <= load.capacity_rps
    strict = advise(k, workload="chat", concurrency=8, hardware={"gpu": "RTX 4090"}, model={"name": "llama3.1-8b"},
                    constraints={"backend": "llamacpp"}, slo={"ttft_ms": 2000, "p95_latency_s": 30})
    assert strict.recommendation.predicted.load.max_rate_rps < load.max_rate_rps


def test_an_arrival_rate_sizes_the_replicas(k):
    one = advise(k, workload="chat", arrival_rate_rps=0.5, hardware={"gpu": "H100 80GB", "gpus": 8},
                 model={"name": "llama3.1-8b"}, constraints={"backend": "vllm"})
    many = advise(k, workload="chat", arrival_rate_rps=15, hardware={"gpu": "H100 80GB", "gpus": 8},
                  model={"name": "llama3.1-8b"}, constraints={"backend": "vllm"})
    assert one.recommendation.predicted.load.mode == "rate"
    assert many.recommendation.replicas > one.recommendation.replicas
    load = many.recommendation.predicted.load
    assert many.recommendation.replicas >= math.ceil(15 / load.capacity_rps)
    assert load.rate_rps == pytest.approx(15 / many.recommendation.replicas, rel=0.01)  # split across replicas
    # more than eight GPUs hold: said so, not silently under-sized
    flood = advise(k, workload="chat", arrival_rate_rps=500, hardware={"gpu": "H100 80GB", "gpus": 8},
                   model={"name": "llama3.1-8b"}, constraints={"backend": "vllm"})
    assert flood.recommendation.predicted.load.steady is False
    assert any("replica" in w or "TTFT" in w for w in flood.warnings)


# ------------------------------------------------------------------ users who read between turns
def test_sixty_four_people_who_read_between_messages_load_the_gpu_less_than_sixty_four_agents(k):
    """64 chat users who each pause 30 s after an answer are not 64 agents firing back to back:
    fewer requests per second, a handful in flight (Little's law), and a shorter wait."""
    ask = dict(workload="chat", concurrency=64, context_tokens=2048, output_tokens=200,
               model={"name": "llama3.1-8b"}, hardware={"gpu": "H100 80GB"},
               constraints={"backend": "vllm", "quantization": "bf16"})
    agents = advise(k, **ask).recommendation.predicted
    people = advise(k, **ask, think_time_s=30).recommendation.predicted
    assert people.load.rate_rps < agents.load.rate_rps / 2
    assert people.ttft_ms < agents.ttft_ms and people.decode_tok_s_per_user > agents.decode_tok_s_per_user
    # Little: the 64 spend most of their time reading; the rate is 64 / (time in system + 30 s)
    assert people.load.think_time_s == 30 and 1 <= people.load.in_flight < 64 / 4
    time_in_system = people.load.in_flight / people.load.rate_rps
    assert people.load.rate_rps == pytest.approx(64 / (time_in_system + 30), rel=0.02)
    assert agents.load.in_flight is None  # back to back: all 64 are in flight


def test_one_person_with_a_one_at_a_time_server_sends_a_request_every_service_plus_pause(k):
    ask = dict(workload="chat", concurrency=1, context_tokens=1024, output_tokens=100,
               model={"name": "qwen2.5-1.5b"}, hardware={"gpu": "RTX 4090"},
               constraints={"backend": "transformers", "quantization": "fp16"})
    alone = advise(k, **ask).recommendation.predicted
    paced = advise(k, **ask, think_time_s=10).recommendation.predicted
    service = 1 / alone.load.rate_rps  # back to back, one user: a request every service time
    assert paced.load.rate_rps == pytest.approx(1 / (service + 10), rel=0.01)
    assert paced.ttft_ms == pytest.approx(alone.ttft_ms, rel=0.01)  # no one ahead of them


def test_a_think_time_the_answers_refuse_is_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "advisor", "recommend", "--gpu", "RTX 4090", "--think-time-s", "-3"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "think" in out.stderr


# ------------------------------------------------------------------ transformers as a server
def _hf_chat(k, backend: str, n: int):
    return advise(k, workload="chat", concurrency=n, model={"name": "qwen2.5-1.5b"},
                  hardware={"gpu": "H100 80GB"}, constraints={"backend": backend})


def test_sixty_four_chat_users_on_transformers_need_its_server_not_a_generate_loop(k):
    """A team tied to transformers puts 64 chat users on one H100. The plain engine runs one generate()
    at a time (transformers serve without --continuous-batching): its 64 users share one stream and wait
    behind each other's answers. transformers serve with continuous batching shares each step: several
    times the tokens, seconds not minutes to a first token, and the memory it claims at start."""
    seq1, seq64 = _hf_chat(k, "transformers", 1), _hf_chat(k, "transformers", 64)
    cb1, cb64 = _hf_chat(k, "transformers-serve", 1), _hf_chat(k, "transformers-serve", 64)
    s1, s64 = seq1.recommendation.predicted, seq64.recommendation.predicted
    c1, c64 = cb1.recommendation.predicted, cb64.recommendation.predicted

    # one request at a time: 64 users get what one user got, split 64 ways, after a long queue
    assert s64.total_tok_s == pytest.approx(s1.total_tok_s, rel=0.05)
    assert s64.decode_tok_s_per_user == pytest.approx(s1.decode_tok_s_per_user / 64, rel=0.1)
    assert s64.load.ttft_p95_ms > 60_000
    assert "backend.no-batching-at-high-n" in fired(seq64)
    assert seq64.recommendation.settings["continuous_batching"].value is False

    # continuous batching: the 64 users' total is many times one user's, each still decoding
    assert c64.total_tok_s > 8 * c1.total_tok_s and c64.total_tok_s > 5 * s64.total_tok_s
    assert c64.decode_tok_s_per_user > 5 * s64.decode_tok_s_per_user
    assert c64.load.ttft_p95_ms < 2_000 and c64.load.steady
    assert cb64.recommendation.settings["continuous_batching"].value is True

    # its paged cache claims 0.9 of the free memory at start, whatever the load: the same VRAM for 1 or 64
    assert c1.vram_gb == c64.vram_gb > 0.85 * 80 > s64.vram_gb
    # and the context each of the 64 users gets is the pool's share, said so
    pool = cb64.recommendation.settings["kv_pool_tokens"].value
    assert cb64.recommendation.max_context_tokens == pool // 64 < cb1.recommendation.max_context_tokens
    assert "context.engine-pool" in fired(cb64) and "context.linux-oom" not in fired(cb64)


def test_with_no_tie_sixty_four_users_are_never_planned_on_a_generate_loop(k):
    rec = advise(k, workload="chat", concurrency=64, model={"name": "qwen2.5-1.5b"}, hardware={"gpu": "H100 80GB"})
    assert rec.recommendation.backend not in ("transformers", "transformers-compiled")
    assert rec.recommendation.predicted.total_tok_s > 5 * _hf_chat(k, "transformers", 64).recommendation.predicted.total_tok_s


def test_one_user_of_a_one_at_a_time_engine_is_a_steady_state_not_an_overload(k):
    """A closed loop never asks more than the engine completes: one user on a generate() loop
    keeps it busy, and that is a finite TTFT, not 'unbounded' or 'more than one replica completes'."""
    from advisor.render import load_lines, predicted_lines

    for users in (1, 4):
        rec = advise(k, workload="chat", concurrency=users, model={"name": "qwen2.5-1.5b"},
                     hardware={"gpu": "H100 80GB"}, constraints={"backend": "transformers", "quantization": "fp16"})
        p = rec.recommendation
        assert p.predicted.load.steady and math.isfinite(p.predicted.ttft_ms)
        text = "\n".join(predicted_lines(p) + load_lines(p))
        assert "unbounded" not in text and "saturated" not in text and "more than one replica completes" not in text
        assert p.predicted.load.rate_rps == pytest.approx(p.predicted.load.capacity_rps, rel=0.01)


def test_a_rate_above_what_one_gpu_completes_is_said_plainly_with_the_gpus_it_needs(k):
    """20 chat requests/s on one RTX 4090: no model there keeps up. The plan says the queue never
    drains (no TTFT stand-in like 1e12 ms, no 0.0 tok/s), how many replicas the rate needs, and picks
    the candidate that comes closest: the fewest replicas short of the load."""
    from advisor.render import render

    rec = advise(k, workload="chat", arrival_rate_rps=20, hardware={"gpu": "RTX 4090"})
    p = rec.recommendation
    assert p.predicted.ttft_ms is None and p.predicted.p95_latency_s is None and not p.predicted.load.steady
    assert p.predicted.decode_tok_s_per_user > 0 and p.predicted.total_tok_s > 0  # the replica runs saturated
    text = render(rec, "text")
    assert "saturated" in text and "unbounded" not in text and "1,000,000,000" not in text
    assert "slo.saturated" in fired(rec) and "slo.ttft" not in fired(rec)
    short = fired(rec)["scaling.replicas-short"]
    assert "requests/s" in short and "0 requests in 0 h" not in short
    # no candidate needs fewer replicas than the one chosen
    from advisor.answers import answers_from_dict
    from advisor.recommend import candidates

    fewest = min(e.replicas.needed for e in candidates(k, answers_from_dict(
        {"workload": "chat", "arrival_rate_rps": 20, "hardware": {"gpu": "RTX 4090"}})))
    assert p.replicas == 1 and p.model in {e.model.id for e in candidates(k, answers_from_dict(
        {"workload": "chat", "arrival_rate_rps": 20, "hardware": {"gpu": "RTX 4090"}})) if e.replicas.needed == fewest}
