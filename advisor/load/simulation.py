"""The reference for the load model: a seeded discrete-event simulation of one serving replica.

Pure library: no I/O, no torch, nothing from the rest of advisor. The plan's figures come from
the load model (advisor/load/schedulers.py), whose closed forms are fast enough for every
candidate; this simulation is what they are checked against (tests/load, bench/validate/load_model.py),
step by step as an engine schedules: describe the engine as an :class:`ReplicaCosts` and the
traffic as a :class:`Workload`, and read p50/p95 TTFT and end-to-end latency, per-user and total
tok/s from :func:`simulate`; :func:`max_rate` answers "how many requests per second does one
instance hold within the SLO" by bisection over simulations.

The model (docs: /work/shared/SERVING.md, "Modelling load")
-----------------------------------------------------------
Time advances in engine steps (iteration-level scheduling, as vLLM/TGI/llama.cpp do):

* A step decodes one token for every sequence that has finished its prefill, and costs
  ``decode_step_ms(n)`` with n such sequences. With ``chunked_prefill`` the same step also
  carries prefill chunks of admitted requests (FCFS) within ``max_batched_tokens`` minus the n
  decode tokens; each chunk adds its own prefill cost (``prefill(done + c) - prefill(done)``, so
  a prompt's chunks sum to its whole prefill, the floor charged with the first chunk). A long
  prompt therefore slows every running decode by its chunks' cost, and never stalls them.
* Without chunked prefill, a step that admits requests is a prefill-only step: the admitted
  prompts (as many as free slots allow, up to ``max_batched_tokens`` of prompt, at least one)
  are prefilled back to back (their costs add up) while the running sequences wait.
* A request is admitted when a slot is free (at most ``max_seqs`` in flight) at a step boundary,
  first come first served. Its first token comes out of its prefill (TTFT = queue wait + the
  steps until its prefill completes); it then needs ``output - 1`` decode steps.
* One request at a time is max_seqs = 1 without chunking: prefill, decode to the end, next request.
  Fixed slots (Ollama's OLLAMA_NUM_PARALLEL, a few slots then a queue) stall the running slots
  while a new prompt is prefilled; their decode cost follows Amdahl (schedulers.amdahl_step).
* Not modelled: KV-pool preemption (cap ``max_seqs`` at what the pool holds for the workload's
  sequences), prefix caching, speculative decoding, a step cost that grows with the context
  during a request (use the average context when deriving ``decode_step_ms``).

Between events (an arrival that can be admitted, a completion) the batch and the step cost are
constant, so the simulation jumps over many decode steps at once: a few Python iterations per
request, not one per token.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from advisor.load.closed_forms import saturation_rps, service_ms
from advisor.load.replica import ReplicaCosts

Dist = Literal["fixed", "uniform", "exponential"]


@dataclass(frozen=True)
class Workload:
    """The traffic: prompt/output lengths and either a burst or Poisson arrivals.

    burst: N requests all arrive at t = 0 ("N simultaneous users"); the figures are the burst's.
    rate_rps: Poisson arrivals at this mean rate, ``requests`` of them (steady state).
    prompt_dist / output_dist: "fixed" (the given length), "uniform" (integers in
        [1, 2*mean - 1]) or "exponential" (geometric, mean as given, at least 1 token).
    seed: the arrivals and the lengths come from separate seeded streams, so two workloads that
        differ only in rate see the same lengths and the same arrival pattern, scaled.
    """

    prompt_tokens: int
    output_tokens: int
    burst: int | None = None
    rate_rps: float | None = None
    requests: int = 2000
    prompt_dist: Dist = "fixed"
    output_dist: Dist = "fixed"
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.burst is None) == (self.rate_rps is None):
            raise ValueError("give exactly one of burst (simultaneous requests) or rate_rps (arrivals/s)")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")
        if self.rate_rps is not None and not self.rate_rps > 0:
            raise ValueError("rate_rps must be positive")
        if self.prompt_tokens < 1 or self.output_tokens < 1 or self.requests < 1:
            raise ValueError("prompt_tokens, output_tokens and requests must be at least 1")
        for d in (self.prompt_dist, self.output_dist):
            if d not in ("fixed", "uniform", "exponential"):
                raise ValueError(f"unknown length distribution {d!r}")

    @property
    def count(self) -> int:
        return self.burst if self.burst is not None else self.requests

    def draw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(arrival ms, prompt tokens, output tokens), arrivals sorted."""
        n = self.count
        if self.burst is not None:
            arr = np.zeros(n)
        else:
            assert self.rate_rps is not None  # checked at construction: a burst or a rate
            gaps = np.random.default_rng([self.seed, 1]).standard_exponential(n)
            arr = np.cumsum(gaps) * (1e3 / self.rate_rps)
            arr -= arr[0]  # the first request finds an idle server at t = 0
        rng = np.random.default_rng([self.seed, 2])
        return arr, _lengths(rng, self.prompt_tokens, self.prompt_dist, n), \
            _lengths(rng, self.output_tokens, self.output_dist, n)


def _lengths(rng: np.random.Generator, mean: int, dist: str, n: int) -> np.ndarray:
    if dist == "fixed" or mean == 1:
        return np.full(n, mean, dtype=np.int64)
    if dist == "uniform":
        return rng.integers(1, 2 * mean, size=n)  # [1, 2*mean - 1], mean `mean`
    return rng.geometric(1.0 / mean, size=n)  # support 1.., mean `mean`


@dataclass(frozen=True)
class LoadResult:
    """What one replica gives under the workload. ``kind`` says whether the figures are a
    burst's (everyone arrived at once) or a steady arrival rate's; show them apart.

    TTFT: arrival to first token (queue wait + prefill + the steps shared meanwhile), ms.
    wait: arrival to admission into a slot, ms. e2e: arrival to last token, s.
    decode_tok_s_per_user: mean over requests of (output - 1) / (last token - first token).
    total_tok_s: generated tokens / (last completion - first arrival).
    max_in_flight / mean_in_flight: sequences admitted on the engine (max; time average).
    utilisation: arrival rate / saturation rate (None for a burst); steady is False at >= 1,
        where the queue grows without bound and the percentiles depend on the run's length.
    """

    kind: Literal["burst", "rate"]
    requests: int
    ttft_p50_ms: float
    ttft_p95_ms: float
    ttft_mean_ms: float
    wait_mean_ms: float
    wait_p95_ms: float
    e2e_p50_s: float
    e2e_p95_s: float
    e2e_mean_s: float
    decode_tok_s_per_user: float
    total_tok_s: float
    max_in_flight: int
    mean_in_flight: float
    makespan_s: float
    utilisation: float | None
    steady: bool


# ------------------------------------------------------------------ simulation
def simulate(costs: ReplicaCosts, workload: Workload) -> LoadResult:
    """Run the workload through one replica (see the module docstring for the model)."""
    arr_np, pl_np, ol_np = workload.draw()
    n = len(arr_np)
    arr = arr_np.tolist()
    pl = pl_np.tolist()
    ol = ol_np.tolist()
    m = costs.max_seqs
    budget = costs.max_batched_tokens
    chunked = costs.chunked_prefill
    steps = [0.0] + [costs.step(i) for i in range(1, m + 1)]
    pcache: dict[int, float] = {}

    def pf(t: int) -> float:
        v = pcache.get(t)
        if v is None:
            v = pcache[t] = costs.prefill(t)
        return v

    admit = [0.0] * n
    first = [0.0] * n
    finish = [0.0] * n
    t = 0.0
    D = 0  # decode steps run so far: a sequence finishes when D reaches its target
    heap: list[tuple[int, int]] = []  # (target D, request)
    prefilling: list[list[int]] = []  # [request, prompt tokens done] (chunked only), FCFS
    ia = 0  # requests [0, ia) have arrived
    iq = 0  # requests [iq, ia) wait for a slot; [0, iq) were admitted
    done = 0
    max_fl = 0
    area = 0.0  # integral of sequences in flight over time
    heappush, heappop = heapq.heappush, heapq.heappop

    def complete_until(d: int, now: float) -> int:
        c = 0
        while heap and heap[0][0] <= d:
            finish[heappop(heap)[1]] = now
            c += 1
        return c

    while done < n:
        while ia < n and arr[ia] <= t:
            ia += 1
        in_flight = len(heap) + len(prefilling)
        free = m - in_flight
        waiting = ia - iq
        if in_flight == 0 and waiting == 0:
            t = arr[ia]  # idle until the next arrival
            continue
        if (waiting and free) or prefilling:
            nd = len(heap)
            if chunked:
                left = budget - nd
                dt = steps[nd]
                joined = []
                for pr in prefilling:  # requests already part-way through their prompt first
                    if left <= 0:
                        break
                    r, got = pr
                    c = min(left, pl[r] - got)
                    dt += pf(got + c) - pf(got)
                    pr[1] = got + c
                    left -= c
                while left > 0 and free > 0 and iq < ia:
                    r = iq
                    iq += 1
                    free -= 1
                    admit[r] = t
                    c = min(left, pl[r])
                    dt += pf(c)
                    prefilling.append([r, c])
                    left -= c
                in_flight = m - free
                if in_flight > max_fl:
                    max_fl = in_flight
                area += in_flight * dt
                t += dt
                if nd:
                    D += 1
                still = []
                for pr in prefilling:
                    r = pr[0]
                    if pr[1] >= pl[r]:
                        joined.append(r)
                    else:
                        still.append(pr)
                prefilling = still
            else:  # prefill-only step: the running sequences wait
                dt = 0.0
                toks = 0
                joined = []
                while free > 0 and iq < ia and (not joined or toks + pl[iq] <= budget):
                    r = iq
                    iq += 1
                    free -= 1
                    admit[r] = t
                    toks += pl[r]
                    dt += pf(pl[r])
                    joined.append(r)
                in_flight = m - free
                if in_flight > max_fl:
                    max_fl = in_flight
                area += in_flight * dt
                t += dt
            for r in joined:
                first[r] = t
                if ol[r] <= 1:
                    finish[r] = t
                    done += 1
                else:
                    heappush(heap, (D + ol[r] - 1, r))
            done += complete_until(D, t)
            continue
        # Only decodes until the next completion, or until a step boundary at or after the next
        # arrival when a slot is free for it: the batch and the step cost hold until then.
        nd = len(heap)
        dt = steps[nd]
        k = heap[0][0] - D
        if free > 0 and ia < n:
            ka = math.ceil((arr[ia] - t) / dt) if dt > 0 else 1
            if ka < 1:
                ka = 1
            if ka < k:
                k = ka
        area += nd * dt * k
        t += dt * k
        D += k
        done += complete_until(D, t)

    a = arr_np
    ad = np.asarray(admit)
    fi = np.asarray(first)
    fn = np.asarray(finish)
    ttft = fi - a
    wait = ad - a
    e2e = (fn - a) / 1e3
    multi = ol_np > 1
    if multi.any():
        per_user = float(np.mean((ol_np[multi] - 1) / np.maximum((fn - fi)[multi], 1e-12) * 1e3))
    else:
        per_user = 0.0
    makespan = float(fn.max() - a.min())
    total = float(ol_np.sum()) / (makespan / 1e3) if makespan > 0 else math.inf
    if workload.rate_rps is not None:
        mean_pf = float(np.mean([pf(int(x)) for x in pl_np])) if workload.prompt_dist != "fixed" else None
        sat = saturation_rps(costs, float(pl_np.mean()), float(ol_np.mean()), mean_pf)
        util = workload.rate_rps / sat
        kind: Literal["burst", "rate"] = "rate"
    else:
        util, kind = None, "burst"
    return LoadResult(
        kind=kind, requests=n,
        ttft_p50_ms=float(np.percentile(ttft, 50)), ttft_p95_ms=float(np.percentile(ttft, 95)),
        ttft_mean_ms=float(ttft.mean()),
        wait_mean_ms=float(wait.mean()), wait_p95_ms=float(np.percentile(wait, 95)),
        e2e_p50_s=float(np.percentile(e2e, 50)), e2e_p95_s=float(np.percentile(e2e, 95)),
        e2e_mean_s=float(e2e.mean()),
        decode_tok_s_per_user=per_user, total_tok_s=total,
        max_in_flight=max_fl, mean_in_flight=area / makespan if makespan > 0 else float(max_fl),
        makespan_s=makespan / 1e3, utilisation=util, steady=util is None or util < 1.0,
    )


# ------------------------------------------------------------------ sizing
def max_rate(costs: ReplicaCosts, prompt_tokens: int, output_tokens: int,
             slo_ttft_p95_ms: float = math.inf, slo_e2e_p95_s: float = math.inf, *,
             requests: int = 2000, seed: int = 0, rel_tol: float = 0.01,
             max_iter: int = 20) -> float:
    """The largest Poisson arrival rate (requests/s) one replica holds with p95 TTFT and p95
    end-to-end latency within the SLOs: bisection over :func:`simulate` (same seed every probe,
    so the arrivals only scale), at most ``max_iter`` probes, capped below the saturation rate.
    0.0 when even a lone request misses the SLO."""
    lone_ttft = costs.prefill(prompt_tokens)
    if lone_ttft > slo_ttft_p95_ms or service_ms(costs, prompt_tokens, output_tokens) / 1e3 > slo_e2e_p95_s:
        return 0.0
    sat = saturation_rps(costs, prompt_tokens, output_tokens)
    if not math.isfinite(sat):
        raise ValueError("zero-cost engine: no saturation rate")

    def ok(rate: float) -> bool:
        r = simulate(costs, Workload(prompt_tokens, output_tokens, rate_rps=rate, requests=requests, seed=seed))
        return r.steady and r.ttft_p95_ms <= slo_ttft_p95_ms and r.e2e_p95_s <= slo_e2e_p95_s

    lo, hi = 0.0, sat
    # Tight SLOs put the answer far below saturation: until a probe passes, each probe is a
    # quarter of the last failed one (a few probes bracket it), then bisection closes the bracket.
    for i in range(max_iter):
        if lo > 0 and hi - lo <= rel_tol * hi:
            break
        probe = (lo + hi) / 2 if lo > 0 or i == 0 else hi / 4
        if ok(probe):
            lo = probe
        else:
            hi = probe
    return lo


@dataclass(frozen=True)
class BatchChoice:
    """Throughput-optimal max_seqs for an offline job: the one with the highest saturated
    total tok/s (ties go to the smaller batch), and the curve it was picked from."""

    max_seqs: int
    total_tok_s: float
    per_user_tok_s: float
    curve: tuple[tuple[int, float], ...]


def best_batch(costs_for: Callable[[int], ReplicaCosts], prompt_tokens: int, output_tokens: int,
               memory_cap_seqs: int) -> BatchChoice:
    """The max_seqs in 1..memory_cap_seqs that maximises steady total tok/s of a deep offline
    queue (every slot busy: output x :func:`saturation_rps`, which a long burst through
    :func:`simulate` reproduces). ``costs_for(n)`` is the engine with max_seqs = n. Every size
    up to 64 is tried, then sizes ~5 % apart, and the cap itself."""
    if memory_cap_seqs < 1:
        raise ValueError("memory_cap_seqs must be at least 1")
    sizes = set(range(1, min(memory_cap_seqs, 64) + 1))
    x = 64.0
    while x < memory_cap_seqs:
        sizes.add(int(x))
        x *= 1.05
    sizes.add(memory_cap_seqs)
    curve = []
    for size in sorted(sizes):
        c = costs_for(size)
        curve.append((size, output_tokens * saturation_rps(c, prompt_tokens, output_tokens)))
    best_n, best_t = max(curve, key=lambda p: (p[1], -p[0]))
    c = costs_for(best_n)
    per_user = 1e3 / c.step(best_n) if c.step(best_n) > 0 else math.inf
    return BatchChoice(max_seqs=best_n, total_tok_s=best_t, per_user_tok_s=per_user, curve=tuple(curve))
