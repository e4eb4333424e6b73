"""Replicas: decided once, from the load model, for the gates, the report and the exports alike.

An arrival rate needs enough replicas that each stays under the utilisation line
(`load.max_utilisation`) and meets the targets at its share of the rate; an offline batch
enough that their batched throughput finishes the volume within the deadline; N users in a
closed loop are one replica's (they hold themselves to what it completes). Replicas are whole
tensor-parallel groups of the GPUs given; past them, the plan says how many it would need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
        return Replicas(1, possible, 1, "N users in a closed loop hold themselves to one replica's pace")
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
        f = at(r)
        return f.steady and f.ttft_p95_ms <= demand.ttft_slo_ms and f.e2e_p95_s <= demand.e2e_slo_s

    needed = max(1, math.ceil(demand.rate_rps / (capacity * max_utilisation)))
    why = (f"{demand.rate_rps:g} requests/s over {capacity:.2f}/s a replica saturates at, each under "
           f"{max_utilisation:.0%} of it")
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
    return Replicas(r, possible, max(1, min(r, possible)),
                    f"{demand.rate_rps:g} requests/s split {r} ways meets the targets at each replica's share")


def _settled(a: Load, b: Load) -> bool:
    """Splitting the rate further changed nothing that matters: both steady, within 0.1 %."""
    return a.steady and b.steady and abs(a.ttft_p95_ms - b.ttft_p95_ms) <= 1e-3 * a.ttft_p95_ms \
        and abs(a.e2e_p95_s - b.e2e_p95_s) <= 1e-3 * a.e2e_p95_s
