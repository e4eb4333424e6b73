"""The one load model (advisor/load/schedulers.py): the figures the gates, the report and the exports
read. Where a closed form is exact (one request at a time: M/D/1; N users always waiting) the
model is that closed form; elsewhere it tracks the discrete-event simulation of the same
scheduler within a stated tolerance (bench/validate/load_model.py prints the whole grid)."""

from __future__ import annotations

import math

import pytest

from advisor.load import ContinuousBatching, Demand, FixedSlots, OneAtATime
from advisor.load import closed_forms as cf
from advisor.load.simulation import Workload, simulate
from tests.load.costs import A100_70B, H100_8B, L40S_1B, Linear


def rate(prompt: int, output: int, rps: float, **slo) -> Demand:
    return Demand.of(prompt_tokens=prompt, output_tokens=output, rate_rps=rps, **slo)


def users(prompt: int, output: int, n: int, think: float = 0.0) -> Demand:
    return Demand.of(prompt_tokens=prompt, output_tokens=output, users=n, think_time_s=think)


# ------------------------------------------------------------------ exact where the closed forms are
@pytest.mark.parametrize("rho", [0.2, 0.5, 0.8])
def test_one_request_at_a_time_under_poisson_arrivals_is_m_d_1(rho):
    costs, sched = Linear(20.0, 0.1, 10.0, 0.0), OneAtATime()
    service = costs.prefill_ms(500) + 99 * costs.step_ms(1)
    lam = rho / service * 1e3
    f = sched.figures(costs, rate(500, 100, lam), 1)
    wait95 = cf.md1_wait_quantile_ms(0.95, lam, service)
    assert f.ttft_p95_ms == pytest.approx(wait95 + costs.prefill_ms(500))
    assert f.e2e_p95_s == pytest.approx((wait95 + service) / 1e3)
    assert f.capacity_rps == pytest.approx(1e3 / service)


def test_n_agents_back_to_back_on_a_one_at_a_time_server_wait_for_the_n_minus_one_ahead():
    costs, sched = Linear(20.0, 0.1, 10.0, 0.0), OneAtATime()
    service = costs.prefill_ms(500) + 99 * costs.step_ms(1)
    f = sched.figures(costs, users(500, 100, 8), 8)
    assert f.ttft_p95_ms == pytest.approx(7 * service + costs.prefill_ms(500))
    assert f.e2e_p95_s == pytest.approx(8 * service / 1e3)
    assert f.rate_rps == pytest.approx(1e3 / service)


def test_people_who_pause_between_requests_follow_mean_value_analysis():
    costs, sched = Linear(20.0, 0.1, 10.0, 0.0), OneAtATime()
    service = costs.prefill_ms(500) + 99 * costs.step_ms(1)
    f = sched.figures(costs, users(500, 100, 16, think=10.0), 16)
    x, r = cf.mva_one_server(16, service, 10_000.0)
    assert f.rate_rps == pytest.approx(x * 1e3)
    assert f.in_flight == pytest.approx(x * r)  # Little's law
    assert f.in_flight < 16  # people who read put fewer requests in flight than agents


# ------------------------------------------------------------------ close to the simulation elsewhere
def _simulated(sched, costs, demand, seqs):
    return simulate(sched.replica(costs, seqs), Workload(demand.prompt_tokens, demand.output_tokens,
                                                         rate_rps=demand.rate_rps, requests=3000, seed=0))


@pytest.mark.parametrize("costs, prompt, output", [(H100_8B, 1024, 256), (L40S_1B, 4096, 200), (A100_70B, 2048, 300)])
@pytest.mark.parametrize("rho", [0.2, 0.5, 0.8])
def test_continuous_batching_tracks_the_simulation_of_its_scheduler(costs, prompt, output, rho):
    sched, seqs = ContinuousBatching(max_batched_tokens=2048), 256
    lam = rho * sched.capacity_rps(costs, rate(prompt, output, 1.0), seqs)
    d = rate(prompt, output, lam)
    f, sim = sched.figures(costs, d, seqs), _simulated(sched, costs, d, seqs)
    assert f.steady and sim.steady
    assert f.in_flight == pytest.approx(sim.mean_in_flight, rel=0.15)
    assert f.e2e_p95_s == pytest.approx(sim.e2e_p95_s, rel=0.30)
    assert f.ttft_p95_ms == pytest.approx(sim.ttft_p95_ms, rel=0.50)


@pytest.mark.parametrize("rho", [0.2, 0.5])
def test_fixed_slots_track_the_simulation_of_their_scheduler(rho):
    sched, seqs = FixedSlots(amdahl_s=0.3), 8
    lam = rho * sched.capacity_rps(H100_8B, rate(1024, 256, 1.0), seqs)
    d = rate(1024, 256, lam)
    f, sim = sched.figures(H100_8B, d, seqs), _simulated(sched, H100_8B, d, seqs)
    assert f.in_flight == pytest.approx(sim.mean_in_flight, rel=0.25)
    assert f.e2e_p95_s == pytest.approx(sim.e2e_p95_s, rel=0.30)
    assert f.ttft_p95_ms == pytest.approx(sim.ttft_p95_ms, rel=0.30)


# ------------------------------------------------------------------ what a user relies on
def test_more_traffic_never_makes_a_replica_faster():
    sched, d0 = ContinuousBatching(), rate(2048, 200, 1.0)
    cap = sched.capacity_rps(H100_8B, d0, 256)
    prev = None
    for frac in (0.1, 0.3, 0.5, 0.7, 0.9):
        f = sched.figures(H100_8B, rate(2048, 200, frac * cap), 256)
        if prev is not None:
            assert f.ttft_p95_ms >= prev.ttft_p95_ms and f.e2e_p95_s >= prev.e2e_p95_s
            assert f.per_user_tok_s <= prev.per_user_tok_s
        prev = f


@pytest.mark.parametrize("sched", [ContinuousBatching(), FixedSlots(amdahl_s=0.3), OneAtATime()])
def test_arrivals_past_what_a_replica_completes_never_settle_and_say_so(sched):
    cap = sched.capacity_rps(H100_8B, rate(1024, 128, 1.0), 64)
    f = sched.figures(H100_8B, rate(1024, 128, cap * 1.1), 64)
    assert not f.steady
    assert math.isinf(f.ttft_p95_ms) and math.isinf(f.e2e_p95_s)  # no finite stand-in for "never"


def test_a_replica_holds_its_max_rate_within_the_targets_and_not_much_more():
    sched = ContinuousBatching()
    d = rate(2048, 200, 1.0, ttft_slo_ms=500.0, e2e_slo_s=8.0)
    best = sched.max_rate_rps(H100_8B, d, 256)
    assert 0 < best < sched.capacity_rps(H100_8B, d, 256)
    at = sched.figures(H100_8B, rate(2048, 200, best, ttft_slo_ms=500.0, e2e_slo_s=8.0), 256)
    assert at.ttft_p95_ms <= 500.0 and at.e2e_p95_s <= 8.0
    over = sched.figures(H100_8B, rate(2048, 200, best * 1.05), 256)
    assert over.ttft_p95_ms > 500.0 or over.e2e_p95_s > 8.0 or not over.steady


def test_a_long_prompt_rides_the_running_decodes_in_chunks_of_the_step_budget():
    """Chunked prefill: a prompt longer than a step's token budget spans several steps, each with
    the running decodes, so its TTFT grows with a smaller budget even when nothing else queues."""
    d = rate(8192, 128, 0.05)
    small = ContinuousBatching(max_batched_tokens=1024).figures(H100_8B, d, 64)
    large = ContinuousBatching(max_batched_tokens=8192).figures(H100_8B, d, 64)
    assert small.ttft_p95_ms > large.ttft_p95_ms + 6 * H100_8B.step_ms(1)


def test_people_who_pause_load_the_engine_less_than_agents_back_to_back():
    sched = ContinuousBatching()
    agents = sched.figures(H100_8B, users(2048, 200, 64), 64)
    people = sched.figures(H100_8B, users(2048, 200, 64, think=30.0), 64)
    assert people.in_flight < agents.in_flight == 64
    assert people.ttft_p95_ms < agents.ttft_p95_ms
    assert people.rate_rps == pytest.approx(64 / (people.e2e_mean_s + 30.0), rel=0.02)  # X = N / (R + Z)
