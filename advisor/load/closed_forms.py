"""Closed forms of queueing on one replica: the load model's building blocks and its checks.

M/D/1 (a one-at-a-time server under Poisson arrivals: Pollaczek-Khinchine's mean and the
Erlang-Crommelin distribution of the wait), a burst on a one-at-a-time server, saturation, and
mean-value analysis of N users who pause between requests. Pure: nothing from the rest of advisor.
"""

from __future__ import annotations

import functools
import math

from advisor.load.replica import ReplicaCosts


def service_ms(costs: ReplicaCosts, prompt_tokens: int, output_tokens: int, batch: int = 1) -> float:
    """Engine time one request takes when ``batch`` sequences share the decode steps:
    its prefill + (output - 1) decode steps of step(batch) / batch each. With batch = 1 it is
    the deterministic service time of a one-at-a-time server."""
    return costs.prefill(prompt_tokens) + (output_tokens - 1) * costs.step(batch) / batch


def saturation_rps(costs: ReplicaCosts, prompt_tokens: float, output_tokens: float,
                   _mean_prefill_ms: float | None = None) -> float:
    """The most requests per second the replica completes, every slot busy: each request costs
    its prefill plus its share of the full-batch decode steps (prefills and decodes add up in
    both the chunked and the stalling model)."""
    m = costs.max_seqs
    pf = costs.prefill(int(round(prompt_tokens))) if _mean_prefill_ms is None else _mean_prefill_ms
    per_req = pf + max(output_tokens - 1, 0) * costs.step(m) / m
    return math.inf if per_req <= 0 else 1e3 / per_req


def md1_mean_wait_ms(rate_rps: float, service: float) -> float:
    """M/D/1 (Pollaczek-Khinchine) mean queue wait, ms: rho * S / (2 (1 - rho))."""
    rho = rate_rps * service / 1e3
    return math.inf if rho >= 1 else rho * service / (2 * (1 - rho))


def md1_wait_cdf(x_ms: float, rate_rps: float, service: float) -> float:
    """P(W <= x) for the M/D/1 queue wait (Erlang 1909, Crommelin 1932):
    (1 - rho) * sum_{k=0}^{floor(x/S)} (lam (kS - x))^k / k! * exp(-lam (kS - x)).
    An alternating sum: exact to float precision for x up to a few tens of S."""
    lam, s = rate_rps / 1e3, service
    rho = lam * s
    if rho >= 1:
        return 0.0
    if x_ms < 0:
        return 0.0
    total = 0.0
    for k in range(int(x_ms // s) + 1):
        u = lam * (k * s - x_ms)  # <= 0
        total += (u ** k) / math.factorial(k) * math.exp(-u)
    return min(max((1 - rho) * total, 0.0), 1.0)


@functools.lru_cache(maxsize=8192)
def md1_wait_quantile_ms(q: float, rate_rps: float, service: float) -> float:
    """The q-quantile of the M/D/1 queue wait, ms (0 when q <= P(no wait) = 1 - rho), to a
    millionth of the service time."""
    rho = rate_rps * service / 1e3
    if rho >= 1:
        return math.inf
    if q <= 1 - rho:
        return 0.0
    lo, hi = 0.0, service
    while md1_wait_cdf(hi, rate_rps, service) < q:
        lo, hi = hi, hi * 2
        if hi > 60 * service:  # past where the alternating sum stays accurate
            return math.nan
    while hi - lo > 1e-6 * service:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if md1_wait_cdf(mid, rate_rps, service) < q else (lo, mid)
    return hi


def burst_sequential_ttft_ms(k: int, costs: ReplicaCosts, prompt_tokens: int, output_tokens: int) -> float:
    """TTFT of the k-th (1-based) of a burst on a one-at-a-time server: the k-1 before it are
    served whole, then its own prefill: k x prefill + (k-1) x (output-1) x step(1)."""
    return k * costs.prefill(prompt_tokens) + (k - 1) * (output_tokens - 1) * costs.step(1)


def md1_wait_p95_ms(rate_rps: float, service: float) -> float:
    """p95 queue wait of an M/D/1 queue: exact where the alternating series converges (rho < 0.9);
    past it, the exponential tail of the conditional wait (mean W / rho); inf when the queue never
    drains, 0 below 5 % utilisation (fewer than one request in twenty waits at all)."""
    rho = rate_rps * service / 1e3
    if rho >= 1:
        return math.inf
    if rho <= 0.05:
        return 0.0
    got = md1_wait_quantile_ms(0.95, rate_rps, service) if rho < 0.9 else math.nan
    if math.isfinite(got):
        return got
    return md1_mean_wait_ms(rate_rps, service) / rho * math.log(rho / 0.05)


def mva_one_server(users: int, service: float, think: float) -> tuple[float, float]:
    """Mean-value analysis of `users` who each send a request `think` ms after their last answer,
    to one server of `service` ms a request: (throughput per ms, mean time in system, ms). Exact
    for exponential times (Reiser and Lavenberg 1980), a close approximation for fixed ones."""
    q = 0.0
    x = r = 0.0
    for i in range(1, max(int(users), 1) + 1):
        r = service * (1 + q)
        x = i / (r + think) if r + think > 0 else math.inf
        q = x * r
    return x, r


def mmc_wait(rate_rps: float, service: float, servers: int) -> tuple[float, float]:
    """(mean, p95) wait, ms, for one of `servers` busy servers under Poisson arrivals (M/M/c:
    Erlang C's probability of waiting, an exponential tail at rate c mu - lambda). inf when the
    servers cannot keep up."""
    c = max(int(servers), 1)
    lam = rate_rps / 1e3
    a = lam * service  # offered load in servers
    if a >= c:
        return math.inf, math.inf
    if a <= 0:
        return 0.0, 0.0
    b = 1.0
    for k in range(1, c + 1):  # Erlang B by its stable recurrence, then Erlang C
        b = a * b / (k + a * b)
    rho = a / c
    p_wait = b / (1 - rho + rho * b)
    drain = c / service - lam  # per ms
    return p_wait / drain, (math.log(p_wait / 0.05) / drain if p_wait > 0.05 else 0.0)
