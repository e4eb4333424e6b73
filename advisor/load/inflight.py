"""How many requests are in flight at once, as a distribution, and the high percentile that sizes
the engine (its KV pool, the precision's memory, --max-num-seqs / -np / OLLAMA_NUM_PARALLEL, the
context per sequence).

- N agents back to back: all N are in flight, always (the head count is the distribution);
- N people who pause Z seconds between turns: each is in flight with probability T / (T + Z)
  (T: the time in system), independently enough that the count is binomial (Engset's finite-source
  model with a slot for everyone);
- Poisson arrivals at rate X: the count is Poisson with mean X x T (Little's law for the mean,
  M/G/infinity for the shape);
- an offline batch: the batch the scheduler keeps in flight.

Pure: nothing from the rest of advisor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from advisor.load.demand import Demand


@dataclass(frozen=True)
class InFlight:
    """The in-flight count of the load: its mean, the high percentile that sizes the engine, and why."""

    mean: float
    high: int  # the count at the percentile `q` (the engine's sequence limit and KV are sized for it)
    q: float
    how: str  # in words, with the numbers, for the reason the user reads


def poisson_quantile(mean: float, q: float) -> int:
    """The smallest k with P(X <= k) >= q for X ~ Poisson(mean)."""
    if mean <= 0:
        return 0
    if mean > 500:  # the normal approximation with a continuity correction, to a count
        return max(int(math.ceil(mean + _z(q) * math.sqrt(mean) - 0.5)), 0)
    term = total = math.exp(-mean)
    k = 0
    while total < q and k < 100_000:
        k += 1
        term *= mean / k
        total += term
    return k


def binomial_quantile(n: int, p: float, q: float) -> int:
    """The smallest k with P(X <= k) >= q for X ~ Binomial(n, p)."""
    n = max(int(n), 0)
    if p <= 0 or n == 0:
        return 0
    if p >= 1:
        return n
    # sum the pmf by its ratio, in logs at the start so a large n does not underflow
    log_pmf = n * math.log1p(-p)
    total = 0.0
    for k in range(n + 1):
        if k:
            log_pmf += math.log((n - k + 1) / k) + math.log(p) - math.log1p(-p)
        total += math.exp(log_pmf)
        if total >= q:
            return k
    return n


def _z(q: float) -> float:
    """The standard normal's q-quantile (Acklam's rational approximation is more than this needs:
    bisection on erf)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            lo = mid
        else:
            hi = mid
    return hi


def in_flight(demand: Demand, time_in_system_s: float, q: float, batch_seqs: int = 1) -> InFlight:
    """The in-flight count of the demand when a request spends `time_in_system_s` seconds in the
    system (queued or on the engine); `batch_seqs`: an offline batch's own batch."""
    pct = f"p{q * 100:g}"
    if demand.mode == "batch":
        n = max(int(batch_seqs), 1)
        return InFlight(float(n), n, q, f"an offline batch keeps its {n} sequences in flight")
    t = time_in_system_s
    if demand.mode == "rate":
        if not math.isfinite(t):
            return InFlight(math.inf, 0, q, f"{demand.rate_rps:g} requests/s never settle: the in-flight count grows "
                                            f"without end")
        mean = demand.rate_rps * t
        high = max(poisson_quantile(mean, q), 1)
        return InFlight(mean, high, q, f"{demand.rate_rps:g} requests/s x {t:.3g} s in the system = {mean:.3g} in flight "
                                       f"on average (Little's law); {pct} of a Poisson count: {high}")
    n = demand.users
    if demand.think_time_s <= 0:
        return InFlight(float(n), n, q, f"{n} agents back to back: all {n} in flight")
    if not math.isfinite(t):
        return InFlight(float(n), n, q, f"{n} users whose requests never end: all {n} in flight")
    p = t / (t + demand.think_time_s)
    high = max(binomial_quantile(n, p, q), 1)
    return InFlight(n * p, high, q, f"{n} users each in flight {p:.1%} of the time ({t:.3g} s in the system, "
                                    f"{demand.think_time_s:g} s pause) = {n * p:.3g} on average; {pct} of a binomial "
                                    f"count: {high}")
