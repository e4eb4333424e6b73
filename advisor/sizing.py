"""Replicas: decided once, from the load model, for the gates, the report and the exports alike.

An arrival rate needs enough replicas that each stays under the utilisation line
(`load.max_utilisation`) and meets the targets at its share of the rate; an offline batch
enough that their batched throughput finishes the volume within the deadline. N users in a
closed loop are split over the GPUs given when one replica misses the targets or runs past the
utilisation line (agents back to back keep any replica saturated: they take every replica the
GPUs hold, at most one per agent). Replicas are whole tensor-parallel groups of the GPUs given;
past them, the plan says how many it would need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from advisor.load import Demand, Load, Scheduler, StepCosts

MANY = 10**6  # a replica that completes nothing: no number of them is enough


@dataclass(frozen=True)
class Replicas:
    """How many replicas the load needs, how many the GPUs hold, and how many the plan runs."""

    needed: int
    possible: int  # GPUs // tensor parallel
    used: int  # min(needed, possible), at least 1
    why: str


def replicas(demand: Demand, scheduler: Scheduler, costs: StepCosts, seqs: int, possible: int,
             max_utilisation: float, figures: Callable[[int], Load] | None = None) -> Replicas:
    """The replicas this candidate needs for the demand, and those it runs on the GPUs given.
    `figures(r)`: the load model's figures with the rate split r ways (memoised by the caller)."""
    possible = max(int(possible), 0)
    if demand.mode == "concurrent":
        return _closed_loop(demand, scheduler, costs, seqs, possible, max_utilisation, figures)
    capacity = scheduler.capacity_rps(costs, demand, seqs)
    if demand.mode == "batch":
        needed = max(1, math.ceil(demand.rate_rps / capacity)) if capacity > 0 else MANY
        return Replicas(needed, possible, max(1, min(needed, possible)),
                        f"{demand.requests_per_day:,} requests in {demand.deadline_hours:g} h need "
                        f"{demand.rate_rps:.2f}/s; one replica completes {capacity:.2f}/s at batch {seqs}")
    if capacity <= 0:
        return Replicas(MANY, possible, max(1, possible), "one replica completes no requests")
    at = figures or (lambda r: scheduler.figures(costs, demand, seqs, r))

    def meets(r: int) -> bool:
        # the targets, and the utilisation line at the capacity of the sequences the replica really runs
        # (the in-flight percentile's, not the whole pool's: fewer slots complete fewer requests)
        f = at(r)
        return (f.steady and f.ttft_p95_ms <= demand.ttft_slo_ms and f.e2e_p95_s <= demand.e2e_slo_s
                and f.rate_rps <= max_utilisation * f.capacity_rps)

    # a first guess from the whole pool's capacity (the most one replica can complete)
    needed = max(1, math.ceil(demand.rate_rps / (capacity * max_utilisation)))
    why = (f"{demand.rate_rps:g} requests/s over {capacity:.2f}/s a replica saturates at (every sequence its KV "
           f"pool holds busy), each under {max_utilisation:.0%} of it")
    if at(needed).steady and needed < MANY:
        f = at(needed)
        why = (f"{demand.rate_rps:g} requests/s: one replica running {f.seqs} sequences at once completes "
               f"{f.capacity_rps:.2f}/s, and each replica is to stay under {max_utilisation:.0%} of that")
    # more replicas, each at a smaller share, while the targets are missed and the GPUs hold them
    r = needed
    while not meets(r):
        if r >= possible:
            more = max(needed, possible + 1)
            return Replicas(more, possible, max(1, min(needed, possible)),
                            why + f"; the targets want more than the {possible} replica(s) the GPUs hold")
        if r > needed and _settled(at(r - 1), at(r)):  # one request alone misses them: more do not help
            return Replicas(needed, possible, max(1, min(needed, possible)),
                            why + "; no number of replicas meets the targets (one request alone misses them)")
        r += 1
    if r == needed:
        return Replicas(needed, possible, max(1, min(needed, possible)), why)
    f = at(r)
    return Replicas(r, possible, max(1, min(r, possible)),
                    f"{demand.rate_rps:g} requests/s split {r} ways meets the targets at each replica's share, "
                    f"under {max_utilisation:.0%} of the {f.capacity_rps:.2f}/s one completes running {f.seqs} at once")


def _settled(a: Load, b: Load) -> bool:
    """Splitting the rate further changed nothing that matters: both steady, within 0.1 %."""
    return a.steady and b.steady and abs(a.ttft_p95_ms - b.ttft_p95_ms) <= 1e-3 * a.ttft_p95_ms \
        and abs(a.e2e_p95_s - b.e2e_p95_s) <= 1e-3 * a.e2e_p95_s


def users_per_replica(demand: Demand, r: int) -> Demand:
    """The closed loop one of `r` replicas serves: the users split as evenly as they go."""
    return replace(demand, users=max(math.ceil(demand.users / max(r, 1)), 1))


def _closed_loop(demand: Demand, scheduler: Scheduler, costs: StepCosts, seqs: int, possible: int,
                 max_utilisation: float, figures: Callable[[int], Load] | None) -> Replicas:
    """N users split over replicas: the fewest that meet the targets under the utilisation line;
    agents back to back (no pause) keep any replica saturated, so they take every replica the
    GPUs hold (at most one per agent): each added replica adds throughput and cuts the wait."""
    n, agents = demand.users, demand.think_time_s <= 0
    top = max(min(possible, n), 1)

    def at(r: int) -> Load:
        if figures is not None:
            return figures(r)
        d = users_per_replica(demand, r)
        return scheduler.figures(costs, d, min(seqs, d.users))

    def meets(r: int) -> bool:
        f = at(r)
        busy = agents or f.rate_rps <= max_utilisation * f.capacity_rps
        return f.steady and f.ttft_p95_ms <= demand.ttft_slo_ms and f.e2e_p95_s <= demand.e2e_slo_s and busy

    who = "agents back to back" if agents else f"users pausing {demand.think_time_s:g} s"
    if top <= 1:
        return Replicas(1, possible, 1, f"{n} {who} on the one replica the GPUs hold")
    needed = next((r for r in range(1, top + 1) if meets(r)), 0)
    if not needed:  # even split over every replica the GPUs hold the targets are missed: more would help?
        needed = top if top == n or _settled(at(top - 1), at(top)) else top + 1
    used = top if agents else min(needed, top)
    f = at(used)
    if agents and used > 1:
        why = (f"{n} {who} keep any replica saturated: split over the {used} replicas the GPUs hold "
               f"({users_per_replica(demand, used).users} each, p95 latency {f.e2e_p95_s:.3g} s)")
    elif used == 1:
        return Replicas(needed, possible, 1, f"{n} {who}: one replica meets the targets at "
                                             f"{f.rate_rps / f.capacity_rps:.0%} of its capacity")
    else:
        why = (f"{n} {who}: one replica misses the targets or runs past {max_utilisation:.0%} of its capacity; "
               f"{used} replicas of {users_per_replica(demand, used).users} users each meet them")
    if needed > possible:
        why += f"; the targets want more than the {possible} replica(s) the GPUs hold"
    return Replicas(needed, possible, used, why)
