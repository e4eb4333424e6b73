"""Replicas, decided once (advisor/sizing.py), from the same load model the gates and the report read."""

from __future__ import annotations

import math

from advisor.load import ContinuousBatching, Demand, OneAtATime
from advisor.sizing import replicas
from tests.load.costs import H100_8B


def _rate(rps, ttft=math.inf, e2e=math.inf):
    return Demand.of(prompt_tokens=2048, output_tokens=200, rate_rps=rps, ttft_slo_ms=ttft, e2e_slo_s=e2e)


def test_agents_back_to_back_take_every_replica_the_gpus_hold():
    """64 agents keep any replica saturated: a second, third, fourth GPU each add throughput and cut
    every agent's wait, so none is left idle (before: one replica, three GPUs idle)."""
    d = Demand.of(prompt_tokens=2048, output_tokens=200, users=64)
    one = replicas(d, ContinuousBatching(), H100_8B, 64, possible=1, max_utilisation=0.8)
    four = replicas(d, ContinuousBatching(), H100_8B, 64, possible=4, max_utilisation=0.8)
    assert one.used == 1 and four.used == 4 and "16 each" in four.why
    # never more replicas than agents
    assert replicas(Demand.of(prompt_tokens=2048, output_tokens=200, users=2), ContinuousBatching(), H100_8B, 2,
                    possible=4, max_utilisation=0.8).used == 2


def test_people_who_pause_use_one_replica_while_it_meets_the_targets_and_more_when_it_does_not():
    calm = Demand.of(prompt_tokens=2048, output_tokens=200, users=64, think_time_s=60)
    r = replicas(calm, ContinuousBatching(), H100_8B, 64, possible=4, max_utilisation=0.8)
    assert (r.needed, r.used) == (1, 1)
    sched = ContinuousBatching()
    alone = sched.figures(H100_8B, Demand.of(prompt_tokens=2048, output_tokens=200, users=1), 1).e2e_p95_s
    one = sched.figures(H100_8B, calm, 64).e2e_p95_s
    tight = Demand.of(prompt_tokens=2048, output_tokens=200, users=64, think_time_s=60,
                      e2e_slo_s=(alone + one) / 2)  # between one user's latency and 64 users' on one replica
    r = replicas(tight, sched, H100_8B, 64, possible=4, max_utilisation=0.8)
    assert r.used > 1 and r.needed == r.used


def test_an_arrival_rate_gets_enough_replicas_to_stay_under_the_utilisation_line():
    sched = ContinuousBatching()
    cap = sched.capacity_rps(H100_8B, _rate(1.0), 256)
    r = replicas(_rate(2.5 * cap), sched, H100_8B, 256, possible=8, max_utilisation=0.8)
    assert r.needed == math.ceil(2.5 / 0.8) and r.used == r.needed


def test_a_tight_target_takes_more_replicas_than_utilisation_alone():
    sched = ContinuousBatching()
    cap = sched.capacity_rps(H100_8B, _rate(1.0), 256)
    loose = replicas(_rate(0.7 * cap), sched, H100_8B, 256, possible=16, max_utilisation=0.8)
    # a TTFT target the replica meets only at a fraction of its capacity
    alone = sched.figures(H100_8B, _rate(0.01), 256).ttft_p95_ms
    tight = replicas(_rate(0.7 * cap, ttft=alone * 1.3), sched, H100_8B, 256, possible=16, max_utilisation=0.8)
    assert loose.needed == 1 < tight.needed
    each = sched.figures(H100_8B, _rate(0.7 * cap, ttft=alone * 1.3), 256, tight.used)
    assert each.ttft_p95_ms <= alone * 1.3


def test_past_the_gpus_given_the_plan_runs_what_it_has_and_says_what_it_needs():
    sched = OneAtATime()
    cap = sched.capacity_rps(H100_8B, _rate(1.0), 1)
    r = replicas(_rate(10 * cap), sched, H100_8B, 1, possible=2, max_utilisation=0.8)
    assert r.used == 2 and r.needed > 2


def test_a_target_no_replica_can_meet_ends_the_search():
    sched = ContinuousBatching()
    alone = sched.figures(H100_8B, _rate(0.01), 256).ttft_p95_ms
    r = replicas(_rate(1.0, ttft=alone / 2), sched, H100_8B, 256, possible=64, max_utilisation=0.8)
    assert r.used == 1 and "no number of replicas" in r.why
