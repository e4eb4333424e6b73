"""The load model a user's sizing answer rests on: queue waits a queueing theorist would sign
(M/D/1, Little's law, a burst on a one-at-a-time server), and the engine behaviours a serving
engineer expects (batching holds far more traffic, a burst queues its prefills, Ollama's slots
follow Amdahl, overload is named, the offline batch is as large as pays)."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.load.closed_forms import (
    burst_sequential_ttft_ms,
    md1_mean_wait_ms,
    md1_wait_quantile_ms,
    saturation_rps,
    service_ms,
)
from advisor.load.replica import ReplicaCosts
from advisor.load.schedulers import amdahl_step
from advisor.load.simulation import Workload, best_batch, max_rate, simulate

PROMPT, OUTPUT = 500, 100
PREFILL = (20.0, 0.1, 0.0)  # 70 ms for 500 tokens
SEQ = ReplicaCosts(1, PREFILL, (10.0, 0.0))  # 10 ms a token, one at a time
S = service_ms(SEQ, PROMPT, OUTPUT)  # 70 + 99 x 10 = 1060 ms


def continuous(max_seqs: int = 256, per_seq: float = 0.05, chunked: bool = True) -> ReplicaCosts:
    """Same single-stream costs as SEQ; a step with n sequences costs 10 + per_seq x n ms."""
    return ReplicaCosts(max_seqs, PREFILL, (10.0 - per_seq, per_seq), chunked_prefill=chunked,
                       max_batched_tokens=max(2048, max_seqs + 1))


@pytest.mark.parametrize("rho", [0.3, 0.6])
def test_one_at_a_time_server_waits_as_md1_says(rho):
    lam = rho / S * 1e3
    runs = [simulate(SEQ, Workload(PROMPT, OUTPUT, rate_rps=lam, requests=20000, seed=s)) for s in range(3)]
    mean_wait = sum(r.wait_mean_ms for r in runs) / len(runs)
    p95_wait = sum(r.wait_p95_ms for r in runs) / len(runs)
    assert mean_wait == pytest.approx(md1_mean_wait_ms(lam, S), rel=0.04)
    assert p95_wait == pytest.approx(md1_wait_quantile_ms(0.95, lam, S), rel=0.06)
    # TTFT is the wait plus this prompt's own prefill, nothing else, on a one-at-a-time server
    assert runs[0].ttft_mean_ms == pytest.approx(runs[0].wait_mean_ms + SEQ.prefill(PROMPT))


def test_md1_closed_forms_are_the_textbook_ones():
    lam = 0.5 / S * 1e3  # rho = 0.5
    assert md1_mean_wait_ms(lam, S) == pytest.approx(0.5 * S)  # rho S / (2 (1 - rho))
    assert md1_wait_quantile_ms(0.4, lam, S) == 0.0  # half the arrivals find the server idle
    assert md1_mean_wait_ms(1.2 / S * 1e3, S) == math.inf


@pytest.mark.parametrize("slo_services", [2, 5])
def test_max_rate_of_a_one_at_a_time_server_matches_md1(slo_services):
    """'How many requests per second does one instance hold' for a generate() loop: the rate at
    which the M/D/1 p95 wait plus the prefill meets the TTFT target."""
    slo = SEQ.prefill(PROMPT) + slo_services * S
    lo, hi = 1e-6, 1e3 / S
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if md1_wait_quantile_ms(0.95, mid, S) + SEQ.prefill(PROMPT) <= slo else (lo, mid)
    assert max_rate(SEQ, PROMPT, OUTPUT, slo_ttft_p95_ms=slo) == pytest.approx(lo, rel=0.05)


def test_littles_law_holds_in_flight_and_queued():
    for costs, lam in ((continuous(), 8.0), (ReplicaCosts(4, PREFILL, amdahl_step(10.0, 0.54)), 1.1)):
        r = simulate(costs, Workload(PROMPT, OUTPUT, rate_rps=lam, requests=5000, seed=3))
        assert r.steady and r.wait_mean_ms > 0
        on_engine_s = r.e2e_mean_s - r.wait_mean_ms / 1e3
        assert r.mean_in_flight == pytest.approx(lam * on_engine_s, rel=0.03)
        assert r.max_in_flight <= costs.max_seqs


def test_continuous_batching_holds_far_more_traffic_than_one_at_a_time():
    slo = dict(slo_ttft_p95_ms=1000.0, slo_e2e_p95_s=5.0)
    seq = max_rate(SEQ, PROMPT, OUTPUT, **slo)
    cont = max_rate(continuous(), PROMPT, OUTPUT, **slo)
    assert 0 < seq < 1e3 / S  # under one request per service time
    assert cont > 20 * seq
    r = simulate(continuous(), Workload(PROMPT, OUTPUT, rate_rps=cont, requests=2000))
    assert r.ttft_p95_ms <= 1000.0 and r.e2e_p95_s <= 5.0 and r.steady


def test_a_request_that_misses_the_slo_alone_gets_no_rate():
    assert max_rate(SEQ, PROMPT, OUTPUT, slo_ttft_p95_ms=50.0) == 0.0  # its prefill alone is 70 ms
    assert max_rate(SEQ, PROMPT, OUTPUT, slo_e2e_p95_s=1.0) == 0.0  # the lone request takes 1.06 s


def test_burst_on_a_one_at_a_time_server_is_the_closed_form():
    n = 12
    r = simulate(SEQ, Workload(PROMPT, OUTPUT, burst=n))
    expected = [burst_sequential_ttft_ms(k, SEQ, PROMPT, OUTPUT) for k in range(1, n + 1)]
    assert r.kind == "burst" and r.utilisation is None
    assert r.ttft_mean_ms == pytest.approx(sum(expected) / n)
    assert r.e2e_p95_s * 1e3 <= n * S + 1e-6
    assert r.makespan_s * 1e3 == pytest.approx(n * S)


def test_burst_ttft_grows_linearly_when_prefill_is_compute_bound():
    """N prompts at the same instant are prefilled back to back: the last waits for all N."""
    compute_bound = ReplicaCosts(256, (1.0, 0.5, 0.0), (10.0, 0.05), chunked_prefill=True)
    prefill = compute_bound.prefill(PROMPT)  # 251 ms
    runs = {n: simulate(compute_bound, Workload(PROMPT, OUTPUT, burst=n)) for n in (16, 32, 64)}
    # each extra user adds half a prefill to the mean TTFT, at any burst size
    for a, b in ((16, 32), (32, 64)):
        slope = (runs[b].ttft_mean_ms - runs[a].ttft_mean_ms) / (b - a)
        assert slope == pytest.approx(prefill / 2, rel=0.1)
    # and the 95th percentile user waits for 95 % of the burst's prefills
    for n, r in runs.items():
        assert r.ttft_p95_ms == pytest.approx(0.95 * n * prefill, rel=0.1)


def test_per_user_decode_falls_as_the_step_grows_with_the_batch():
    costs = continuous(per_seq=0.5)  # step(n) = 9.5 + 0.5 n ms
    rates = {n: simulate(costs, Workload(64, 200, burst=n)).decode_tok_s_per_user for n in (1, 8, 64)}
    assert rates[1] > rates[8] > rates[64]
    assert rates[1] == pytest.approx(1e3 / costs.step(1))
    assert rates[64] == pytest.approx(1e3 / costs.step(64), rel=0.05)


def test_ollama_slots_decode_at_amdahl_efficiency():
    step1, s = 10.0, 0.54
    ollama = ReplicaCosts(4, PREFILL, amdahl_step(step1, s))
    r = simulate(ollama, Workload(PROMPT, OUTPUT, burst=4))
    eta = 1 / (s * 4 + 1 - s)
    assert r.decode_tok_s_per_user == pytest.approx(1e3 / step1 * eta)
    assert r.ttft_p95_ms == pytest.approx(4 * ollama.prefill(PROMPT))  # slots prefill before decoding
    # a fifth user waits in the queue for a slot
    assert simulate(ollama, Workload(PROMPT, OUTPUT, burst=5)).wait_p95_ms > 0


def test_overload_is_named_not_averaged():
    sat = saturation_rps(SEQ, PROMPT, OUTPUT)
    short = simulate(SEQ, Workload(PROMPT, OUTPUT, rate_rps=1.2 * sat, requests=500))
    long = simulate(SEQ, Workload(PROMPT, OUTPUT, rate_rps=1.2 * sat, requests=2000))
    assert not short.steady and short.utilisation == pytest.approx(1.2)
    assert long.ttft_p95_ms > 3 * short.ttft_p95_ms  # the queue keeps growing with the run
    assert simulate(SEQ, Workload(PROMPT, OUTPUT, rate_rps=0.5 * sat, requests=500)).steady


def test_best_batch_is_the_largest_that_fits_when_steps_grow_sublinearly():
    def costs_for(n):
        return continuous(max_seqs=n)

    assert best_batch(costs_for, PROMPT, OUTPUT, memory_cap_seqs=200).max_seqs == 200
    capped = best_batch(costs_for, PROMPT, OUTPUT, memory_cap_seqs=48)
    assert capped.max_seqs == 48 and all(n <= 48 for n, _ in capped.curve)
    # a long offline burst through the simulation reaches the throughput best_batch promises
    r = simulate(costs_for(48), Workload(PROMPT, OUTPUT, burst=48 * 40))
    assert r.total_tok_s == pytest.approx(capped.total_tok_s, rel=0.05)


def test_best_batch_stops_where_a_bigger_batch_costs_more_than_it_gives():
    def costs_for(n):  # step(n) = 10 + 0.01 n^2: per-token cost 10/n + 0.01 n is least at n ~ 32
        return ReplicaCosts(n, PREFILL, lambda k: 10.0 + 0.01 * k * k,
                           chunked_prefill=True, max_batched_tokens=4096)

    assert best_batch(costs_for, PROMPT, OUTPUT, memory_cap_seqs=512).max_seqs in (31, 32)
    assert best_batch(costs_for, PROMPT, OUTPUT, memory_cap_seqs=16).max_seqs == 16


def test_same_seed_same_answer_other_seed_other_answer():
    w = dict(prompt_tokens=PROMPT, output_tokens=OUTPUT, rate_rps=6.0, requests=1000,
             prompt_dist="uniform", output_dist="exponential")
    a = simulate(continuous(), Workload(**w, seed=7))
    assert a == simulate(continuous(), Workload(**w, seed=7))
    assert a != simulate(continuous(), Workload(**w, seed=8))


def test_a_few_thousand_requests_simulate_quickly():
    w = Workload(PROMPT, OUTPUT, rate_rps=8.0, requests=2000, output_dist="exponential")
    simulate(continuous(), w)
    t = time.perf_counter()
    simulate(continuous(), w)
    assert time.perf_counter() - t < 2.0  # strict timings: bench/bench_load.py


def test_contradictory_descriptions_are_refused():
    with pytest.raises(ValueError):
        ReplicaCosts(0, PREFILL, (10.0, 0.0))
    with pytest.raises(ValueError):
        ReplicaCosts(64, PREFILL, (10.0, 0.0), chunked_prefill=True, max_batched_tokens=64)
    with pytest.raises(ValueError):
        Workload(PROMPT, OUTPUT, burst=8, rate_rps=2.0)
    with pytest.raises(ValueError):
        Workload(PROMPT, OUTPUT)


@settings(max_examples=25, deadline=None)
@given(batching=st.sampled_from(["continuous", "slots", "sequential"]),
       max_seqs=st.integers(1, 64), chunked=st.booleans(),
       prompt=st.integers(1, 4000), output=st.integers(1, 300),
       rate=st.floats(0.05, 50.0), dist=st.sampled_from(["fixed", "uniform", "exponential"]))
def test_any_engine_any_load_gives_coherent_figures(batching, max_seqs, chunked, prompt, output, rate, dist):
    if batching == "sequential":
        max_seqs, chunked = 1, False
    costs = ReplicaCosts(max_seqs, (5.0, 0.05, 1e-6), (8.0, 0.1),
                         chunked_prefill=chunked and batching == "continuous", max_batched_tokens=512)
    r = simulate(costs, Workload(prompt, output, rate_rps=rate, requests=300, output_dist=dist, prompt_dist=dist))
    assert 1 <= r.max_in_flight <= max_seqs
    assert r.wait_mean_ms <= r.ttft_mean_ms <= r.e2e_mean_s * 1e3 + 1e-9
    assert r.ttft_p50_ms > 0 and r.e2e_p95_s >= r.e2e_p50_s
    assert r.steady == (r.utilisation < 1)
