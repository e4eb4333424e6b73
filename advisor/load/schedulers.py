"""The load model: what each kind of scheduler makes of the load the user described.

One model, used by the gates, the report and the exports. An engine has one scheduler
(advisor/engines): continuous batching (vLLM, TGI, llama-server, transformers serve: new requests
join the running decode steps, long prompts chunked into them), fixed slots (Ollama: a few
parallel slots, each new prompt stalls the others while it is prefilled, Amdahl per slot, TR129),
or one request at a time (a generate() loop). Given the engine's step costs
(advisor/load/costs.py) and the demand (advisor/load/demand.py), a scheduler gives the figures of
one replica (:class:`Load`): p95 TTFT and latency, per-user and total tok/s, in-flight sequences,
capacity.

The figures are closed forms, fast enough for every candidate:
- time shares: a prompt of P ms of prefill at X requests/s takes X x P of the engine's time, and
  decode steps get the rest, so a sequence decodes a token every step(L) / (1 - X P), L in flight;
- Little's law ties L to the time in system; the fixed point is solved by iteration;
- a prompt queues for the prefill path: M/D/1 with the time it holds it (its prefill, plus the
  decode steps it rides on when it is chunked into them); slots: M/M/c for a free slot;
- a closed loop of N users: its rate solves X = N / (time in system + think time);
- the tail of a request's decode time: prompts that land while it decodes (compound Poisson) and
  the batch size moving with them.
They are checked against the exact closed forms where those exist (M/D/1 for one request at a
time, mean-value analysis, saturation) and against the discrete-event simulation
(advisor/load/simulation.py) over a grid of engines and loads (tests/load, bench/validate/load_model.py).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from advisor.load import closed_forms as cf
from advisor.load.costs import StepCosts
from advisor.load.demand import Demand, Mode
from advisor.load.replica import ReplicaCosts
from advisor.load.simulation import best_batch

Z95 = 1.645  # the standard normal's 95th percentile


@dataclass(frozen=True)
class Load:
    """What the described load does on one replica: the figures the gates, the report and the exports read.

    Times that never settle (arrivals faster than the replica completes) are infinite, with
    `steady` False."""

    mode: Mode
    seqs: int  # sequences the engine runs at once (max_num_seqs / -np / OLLAMA_NUM_PARALLEL)
    rate_rps: float  # requests per second on this replica (concurrent: N / (time in system + think))
    ttft_p95_ms: float
    e2e_p95_s: float
    e2e_mean_s: float  # a request's mean time in system (Little: in flight = rate x this)
    per_user_tok_s: float  # decode tok/s one sequence sees
    total_tok_s: float  # generated tok/s of the replica
    burst_ttft_ms: float  # the last of `seqs` prompts arriving in the same instant
    capacity_rps: float  # requests per second the replica completes at saturation
    in_flight: float  # requests in the system on average, queued or on the engine (Little: rate x time in system)
    steady: bool
    ttft_how: str
    e2e_how: str
    per_user_how: str
    total_how: str


def gamma_p95(mean: float, sd: float) -> float:
    """The 95th percentile of a right-skewed positive quantity with this mean and spread, read as a
    gamma distribution (Wilson and Hilferty's cube-root normal approximation)."""
    if sd <= 0 or mean <= 0:
        return mean
    k = (mean / sd) ** 2  # the gamma's shape
    return mean * max(1 - 1 / (9 * k) + Z95 / (3 * math.sqrt(k)), 0.0) ** 3


def amdahl_step(step1_ms: float, s: float) -> tuple[float, float]:
    """Decode-step coefficients ``(fixed_ms, ms_per_seq)`` of fixed slots with Amdahl serial
    fraction ``s`` (TR129) and one-stream step time ``step1_ms``.

    With n slots active, each sequence runs at eta(n) = 1 / (s*n + 1 - s) of its single-stream
    rate. A step advances every active slot by one token, so it lasts one token at that rate:
    step(n) = step1 * (s*n + 1 - s) = step1*(1 - s) + step1*s*n, a straight line. Total tok/s is
    n / step(n) = S(n) / step1 with S(n) the Amdahl speedup.
    """
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"Amdahl serial fraction must be in [0, 1], got {s}")
    return step1_ms * (1.0 - s), step1_ms * s


class _Steps:
    """step(n) of a scheduler over one candidate's costs, each batch size computed once."""

    __slots__ = ("_f", "_memo")

    def __init__(self, f: Callable[[int], float]):
        self._f = f
        self._memo: dict[int, float] = {}

    def __call__(self, n: float) -> float:
        i = max(int(round(n)), 1)
        got = self._memo.get(i)
        if got is None:
            got = self._memo[i] = float(self._f(i))
        return got


@dataclass(frozen=True)
class Scheduler(ABC):
    """How an engine admits requests and shares its steps; the load model's figures for it."""

    kind: ClassVar[str]  # the backends row's `batching` value that picks it
    label: ClassVar[str]  # in words, for the reasons the user reads
    batches: ClassVar[bool] = True  # sequences share each decode step
    continuous: ClassVar[bool] = False  # continuous batching: new requests join the running steps
    fixed_slots: ClassVar[bool] = False  # a few slots, each at an Amdahl share of one stream (Ollama)

    # ------------------------------------------------------------ the engine's view
    def seqs(self, pool_seqs: int, ceiling: int) -> int:
        """Sequences it runs at once, given what the KV pool holds and the engine's own ceiling."""
        return max(min(int(pool_seqs), int(ceiling)), 1)

    @abstractmethod
    def step_ms(self, costs: StepCosts, n: int) -> float:
        """One decode step with n sequences on this scheduler."""

    @abstractmethod
    def replica(self, costs: StepCosts, seqs: int) -> ReplicaCosts:
        """The replica as the simulation and the closed forms see it."""

    def efficiency(self, n: int) -> float:
        """Each sequence's share of a single stream with n running (1 but for fixed slots)."""
        return 1.0

    @property
    def note(self) -> str:
        """What the scheduler adds to a figure's source (fixed slots: the Amdahl fraction's)."""
        return ""

    def capacity_rps(self, costs: StepCosts, demand: Demand, seqs: int) -> float:
        """Requests per second one replica completes with every slot busy."""
        return cf.saturation_rps(self.replica(costs, seqs), demand.prompt_tokens, demand.output_tokens)

    # ------------------------------------------------------------ the load model
    def figures(self, costs: StepCosts, demand: Demand, seqs: int, replicas: int = 1) -> Load:
        """The figures of one replica under the demand (an arrival rate split over `replicas`)."""
        if demand.mode == "batch":
            return self._batch(costs, demand, seqs, replicas)
        if demand.mode == "rate":
            return self._open(costs, demand, seqs, demand.rate_rps / max(replicas, 1))
        return self._closed(costs, demand, seqs)

    def batch_seqs(self, costs: StepCosts, demand: Demand, pool_seqs: int) -> int:
        """An offline job's throughput-optimal batch within what the pool holds."""
        return best_batch(lambda n: self.replica(costs, n), demand.prompt_tokens, demand.output_tokens,
                          max(int(pool_seqs), 1)).max_seqs

    def _batch(self, costs: StepCosts, demand: Demand, seqs: int, replicas: int) -> Load:
        c, o = demand.prompt_tokens, demand.output_tokens
        prefill = costs.prefill_ms(c)
        step = self.step_ms(costs, seqs)
        capacity = self.capacity_rps(costs, demand, seqs)
        e2e = (prefill + (o - 1) * step) / 1e3  # one request, start to end, inside the batch
        return Load(
            mode="batch", seqs=seqs, rate_rps=demand.rate_rps, ttft_p95_ms=prefill, e2e_p95_s=e2e, e2e_mean_s=e2e,
            per_user_tok_s=1e3 / step if step > 0 else math.inf, total_tok_s=o * capacity,
            burst_ttft_ms=self.burst_ttft_ms(costs, demand, seqs), capacity_rps=capacity, in_flight=float(seqs),
            steady=demand.rate_rps <= capacity * max(replicas, 1),
            ttft_how=f"offline batch: one prompt's prefill ({c:,} tokens); no interactive TTFT target",
            e2e_how=f"offline batch: a request's time on the engine at batch {seqs}",
            per_user_how=f"a batch of {seqs} (the throughput-optimal batch within the KV pool)",
            total_how=(f"{capacity:.2f} requests/s x {o} tokens at batch {seqs}: {demand.requests_per_day:,} "
                       f"requests in {demand.deadline_hours:g} h need {demand.rate_rps:.2f}/s"))

    @abstractmethod
    def _open(self, costs: StepCosts, demand: Demand, seqs: int, rate_rps: float) -> Load:
        """Poisson arrivals at rate_rps."""

    @abstractmethod
    def _closed(self, costs: StepCosts, demand: Demand, seqs: int) -> Load:
        """`demand.users` in a closed loop, pausing `demand.think_time_s` between requests."""

    @abstractmethod
    def burst_ttft_ms(self, costs: StepCosts, demand: Demand, seqs: int) -> float:
        """The last TTFT if `seqs` prompts arrived in the same instant."""

    def max_rate_rps(self, costs: StepCosts, demand: Demand, seqs: int, rel_tol: float = 0.01) -> float:
        """The largest arrival rate one replica holds with its p95 TTFT and latency within the
        demand's targets (and steady): bisection over this very model. 0 when even one request
        alone misses them."""
        def ok(rate: float) -> bool:
            f = self._open(costs, demand, seqs, rate)
            return f.steady and f.ttft_p95_ms <= demand.ttft_slo_ms and f.e2e_p95_s <= demand.e2e_slo_s

        hi = self.capacity_rps(costs, demand, seqs)
        if not (hi > 0 and math.isfinite(hi)) or not ok(hi * 1e-6):
            return 0.0
        lo = hi * 1e-6
        while hi - lo > rel_tol * hi:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        return lo


def _unsteady(mode: Mode, seqs: int, rate: float, capacity: float, burst: float, how: str, per_user: float,
              output_tokens: int) -> Load:
    """Arrivals faster than the replica completes: the queue grows without end, so no TTFT or latency
    settles (infinite, never a stand-in number); the replica itself runs saturated, every slot busy,
    and its decode rates are those of that full batch."""
    return Load(mode=mode, seqs=seqs, rate_rps=rate, ttft_p95_ms=math.inf, e2e_p95_s=math.inf, e2e_mean_s=math.inf,
                per_user_tok_s=per_user, total_tok_s=capacity * output_tokens, burst_ttft_ms=burst,
                capacity_rps=capacity, in_flight=float(seqs), steady=False, ttft_how=how, e2e_how=how,
                per_user_how=f"saturated: {seqs} sequences decoding at once", total_how=f"saturated: {capacity:.3g} "
                f"requests/s completed, {output_tokens} tokens each")


@dataclass(frozen=True)
class _SharedSteps(Scheduler):
    """Sequences decode together, one token each per step; prompts are prefilled between or inside
    the steps. The model common to continuous batching and fixed slots."""

    @abstractmethod
    def _prefill_steps(self, prompt_tokens: int, decoding: float) -> tuple[float, int]:
        """(share of the prefill path's steps a prompt takes, decode steps it rides on before its
        first token): (0, 0) for a prefill-only step."""

    def capacity_rps(self, costs: StepCosts, demand: Demand, seqs: int) -> float:
        """Requests per second one replica completes with every slot busy: the decode steps' share
        (saturation), or the prefill path's, whichever binds first."""
        sat = cf.saturation_rps(self.replica(costs, seqs), demand.prompt_tokens, demand.output_tokens)
        share, _ = self._prefill_steps(demand.prompt_tokens, seqs)
        path = costs.prefill_ms(demand.prompt_tokens) + share * self.step_ms(costs, seqs)
        return min(sat, 1e3 / path) if path > 0 else sat

    def _state(self, steps: _Steps, prefill: float, demand: Demand, lam: float, live: float,
               seqs: int, cap: float, open_loop: bool = True) -> _State:
        """The replica at `lam` requests per ms with `live` sequences in flight on average. A request
        decodes beside the others in flight and itself: arrivals see the time average (Poisson
        arrivals see time averages), plus one. Only open arrivals wait for a slot: N users in a
        closed loop have one each."""
        s = steps(min(live + 1, cap))
        share, rides = self._prefill_steps(demand.prompt_tokens, live)
        busy = prefill + share * s  # the prefill path's time per prompt: what queues the next prompt
        own = prefill + rides * s  # one prompt's own time from admission to its first token
        left = 1 - lam * prefill  # what prefill leaves the decode steps
        tau = s / left if left > 0 else math.inf
        wait = cf.md1_mean_wait_ms(lam * 1e3, busy)
        service = own + s / 2 + max(demand.output_tokens - 1, 0) * tau
        slot = self._slot_wait(lam, service, seqs)[0] if open_loop else 0.0
        return _State(s, busy, own, tau, wait, slot, slot + wait + service)

    @staticmethod
    def _slot_wait(lam: float, service: float, seqs: int) -> tuple[float, float]:
        """(mean, p95) wait for a free slot when every one of `seqs` is taken (M/M/c: a slot is
        held for a time that varies with the load); 0 while fewer than a third are busy on
        average, where it is negligible."""
        if not math.isfinite(service) or lam * service < seqs / 3:
            return 0.0, 0.0
        return cf.mmc_wait(lam * 1e3, service, seqs)

    def _in_system(self, steps: _Steps, prefill: float, demand: Demand, lam: float, seqs: int,
                   cap: float, open_loop: bool = True) -> tuple[float, float]:
        """(mean time in system, sequences in flight) at `lam` requests per ms: Little's law
        (in flight = rate x time in system, at most `cap`) solved by damped iteration."""
        live = 0.0
        total = math.inf
        damp = 1.0  # undamped while it converges; halved each time it overshoots back and forth
        last_step = 0.0
        for _ in range(60):
            total = self._state(steps, prefill, demand, lam, live, seqs, cap, open_loop).total
            nxt = min(lam * total, cap) if math.isfinite(total) else cap
            step = nxt - live
            if abs(step) < 1e-3 * max(live, 1.0):
                live = nxt
                break
            if step * last_step < 0:
                damp /= 2
            live, last_step = live + damp * step, step
        return total, live

    def _figures_at(self, costs: StepCosts, steps: _Steps, demand: Demand, seqs: int, lam: float, live: float,
                    mode: Mode, queue_cap: float, cap: float) -> Load:
        """The figures once the rate (`lam` per ms) and the sequences in flight are known."""
        open_loop = mode == "rate"
        out1 = max(demand.output_tokens - 1, 0)
        prefill = costs.prefill_ms(demand.prompt_tokens)
        capacity = self.capacity_rps(costs, demand, seqs)
        burst = self.burst_ttft_ms(costs, demand, seqs)
        st = self._state(steps, prefill, demand, lam, live, seqs, cap, open_loop)
        rate = lam * 1e3
        if not math.isfinite(st.tau) or not math.isfinite(st.total) or lam * st.busy >= 1 \
                or (open_loop and rate >= capacity):
            share = 1 - capacity / 1e3 * prefill  # at saturation, what prefill leaves the full batch's steps
            full = 1e3 * share / steps(seqs) if share > 0 else 0.0
            return _unsteady(mode, seqs, rate, capacity, burst,
                             f"{rate:.3g} requests/s is more than one replica completes ({capacity:.3g}/s)", full,
                             demand.output_tokens)
        wait_mean = cf.md1_mean_wait_ms(rate, st.busy)
        wait95 = min(cf.md1_wait_p95_ms(rate, st.busy), queue_cap * st.busy)
        decode = out1 * st.tau
        slot_mean, slot95 = self._slot_wait(lam, st.own + st.step / 2 + decode, seqs) if open_loop else (0.0, 0.0)
        shared = self._shared_step_ttft(prefill, st.step, lam, demand.prompt_tokens, live) if open_loop else None
        if shared is not None:  # short prompts: they share the steps they land in, several a step
            ttft_mean, ttft_sd = shared
            ttft95 = slot95 + gamma_p95(ttft_mean, ttft_sd)
            ttft_mean += slot_mean
        else:  # a prompt fills the step's budget: prompts queue for the prefill path one after another
            residual = st.step / 2  # an arrival waits for the step under way to end
            ttft_mean = slot_mean + wait_mean + st.own + residual
            ttft95 = slot95 + wait95 + st.own + residual
        # A request's decode time varies with the prompts that land while it decodes: each takes its
        # prefill out of the steps, and the prompts landing meanwhile lengthen it further, as a busy
        # period of an M/D/1 queue started by its own decode work d0 (variance lam d0 P^2 / (1 - u)^3);
        # and with the batch moving with them (the time-average of M/G/inf occupancy over the window).
        # Users in a closed loop send one prompt per answer: back to back, the prompts land like
        # clockwork and the batch holds still; pausing users randomise them in proportion to the pause.
        left = 1 - lam * prefill
        d_step = steps(min(live + 2, cap + 1)) - steps(min(live + 1, cap))
        random = 1.0 if open_loop else demand.think_ms / (demand.think_ms + st.total)
        var = random * (lam * out1 * st.step * prefill ** 2 / left ** 3 + (out1 * d_step / left) ** 2 * (2 / 3) * live)
        e2e_mean = ttft_mean + decode
        e2e95 = e2e_mean + math.sqrt((ttft95 - ttft_mean) ** 2 + (Z95 ** 2) * var)
        return Load(
            mode=mode, seqs=seqs, rate_rps=rate, ttft_p95_ms=ttft95, e2e_p95_s=e2e95 / 1e3, e2e_mean_s=e2e_mean / 1e3,
            per_user_tok_s=1e3 / st.tau, total_tok_s=rate * demand.output_tokens, burst_ttft_ms=burst,
            capacity_rps=capacity, in_flight=live, steady=True, ttft_how="",
            e2e_how=f"p95 end to end: TTFT and {demand.output_tokens:,} tokens at the per-user rate, with the "
                    f"spread of the prompts that land meanwhile",
            per_user_how=f"{self.label} at {live:.3g} sequences in flight (up to {seqs})",
            total_how=f"{self.label}: generated tokens per second of one replica")

    def _shared_step_ttft(self, prefill: float, step: float, lam: float, prompt_tokens: int,
                          decoding: float) -> tuple[float, float] | None:
        """(mean, standard deviation) of TTFT when several prompts fit one step (Poisson arrivals):
        a prompt waits out the step under way, then joins the next with every prompt that arrived
        meanwhile, and its first token comes when that step ends. Steps last s + P x (prompts in
        them): a renewal whose length an arrival sees length-biased. None where a prompt takes at
        least half a step's budget (then prompts queue one after another: M/D/1)."""
        return None

    def _open(self, costs: StepCosts, demand: Demand, seqs: int, rate_rps: float) -> Load:
        steps = _Steps(lambda n: self.step_ms(costs, n))
        lam = rate_rps / 1e3
        prefill = costs.prefill_ms(demand.prompt_tokens)
        live = self._in_system(steps, prefill, demand, lam, seqs, float(seqs))[1]
        f = self._figures_at(costs, steps, demand, seqs, lam, live, "rate", math.inf, float(seqs))
        how = f"p95 with {rate_rps:.3g} requests/s arriving: prefill + the steps it rides + queueing for the prefill path"
        return f if not f.steady else _with(f, ttft_how=how)

    def _closed(self, costs: StepCosts, demand: Demand, seqs: int) -> Load:
        steps = _Steps(lambda n: self.step_ms(costs, n))
        n, think = demand.users, demand.think_ms
        cap = float(min(n, seqs))
        prefill = costs.prefill_ms(demand.prompt_tokens)
        top = self.capacity_rps(costs, demand, max(min(n, seqs), 1)) / 1e3
        if think > 0:
            def in_system(x: float) -> float:
                return self._in_system(steps, prefill, demand, x, seqs, cap, False)[0]
        else:  # all N in flight: only the queue for the prefill path and the decode share move with the rate
            st = self._state(steps, prefill, demand, 0.0, cap, seqs, cap, False)
            fixed = st.own + st.step / 2
            per_token = max(demand.output_tokens - 1, 0) * st.step

            def in_system(x: float) -> float:
                left = 1 - x * prefill
                return fixed + cf.md1_mean_wait_ms(x * 1e3, st.busy) + (per_token / left if left > 0 else math.inf)
        lo, hi = 0.0, top
        while hi - lo > 1e-5 * top:  # the rate that solves X (time in system + think) = N
            x = (lo + hi) / 2
            total = in_system(x)
            lo, hi = (x, hi) if math.isfinite(total) and x * (total + think) < n else (lo, x)
        x = lo
        live = self._in_system(steps, prefill, demand, x, seqs, cap, False)[1] if think > 0 else cap
        # N users never queue more than N - 1 prompts ahead of one, nor decode beside more than N - 1
        f = self._figures_at(costs, steps, demand, seqs, x, live, "concurrent", max(n - 1, 0), cap)
        how = (f"p95 with {n} users in a closed loop" + (f", each pausing {demand.think_time_s:g} s" if think > 0 else "")
               + f" ({x * 1e3:.2f} requests/s): prefill + the steps it rides + queueing for the prefill path")
        if seqs < n and x > 0:
            # fewer sequences than users (the KV pool holds no more): the others wait for a slot. Every
            # user is thinking, waiting or on the engine, so the wait is what the cycle N / X leaves
            wait = max(n / x - think - f.e2e_mean_s * 1e3, 0.0)
            how += f"; {n - seqs} of the {n} wait for one of the {seqs} sequence slots ({wait:,.0f} ms on average)"
            f = _with(f, ttft_p95_ms=f.ttft_p95_ms + wait, e2e_p95_s=f.e2e_p95_s + wait / 1e3,
                      e2e_mean_s=f.e2e_mean_s + wait / 1e3)
        return _with(f, ttft_how=how, steady=True)  # a closed loop holds itself to what the engine completes


@dataclass(frozen=True)
class _State:
    step: float  # the decode step a request runs in
    busy: float  # the prefill path's time per prompt
    own: float  # a prompt's own time from admission to its first token
    tau: float  # ms per decoded token
    wait: float  # mean wait for the prefill path
    slot: float  # mean wait for a free slot
    total: float  # mean time in system


def _with(f: Load, **changes) -> Load:
    return replace(f, **changes)


@dataclass(frozen=True)
class ContinuousBatching(_SharedSteps):
    """vLLM, TGI, llama-server, transformers serve: requests join the running steps; a long prompt
    is cut into chunks of the step's token budget that ride along with the decodes."""

    max_batched_tokens: int = 2048  # tokens per step (vLLM --max-num-batched-tokens, llama.cpp -b)
    kind: ClassVar[str] = "continuous"
    label: ClassVar[str] = "continuous batching"
    continuous: ClassVar[bool] = True

    def step_ms(self, costs: StepCosts, n: int) -> float:
        return costs.step_ms(n)

    def _prefill_steps(self, prompt_tokens: int, decoding: float) -> tuple[float, int]:
        # each step carries the decodes and as many prompt tokens as the budget leaves
        room = max(self.max_batched_tokens - int(round(decoding)), 1)
        return prompt_tokens / room, -(-int(prompt_tokens) // room)

    def _shared_step_ttft(self, prefill: float, step: float, lam: float, prompt_tokens: int,
                          decoding: float) -> tuple[float, float] | None:
        room = self.max_batched_tokens - int(round(decoding))
        if prompt_tokens * 2 > room or lam * prefill >= 1:
            return None
        mean_d = step / (1 - lam * prefill)  # E[D] = s + P lam E[D]
        var_d = prefill ** 2 * lam * mean_d / (1 - (lam * prefill) ** 2)  # Var D = P^2 (lam E[D] + lam^2 Var D)
        shape, scale = (mean_d ** 2 / var_d, var_d / mean_d) if var_d > 0 else (math.inf, 0.0)
        m3 = shape * (shape + 1) * (shape + 2) * scale ** 3 if var_d > 0 else mean_d ** 3  # E[D^3], gamma
        biased = mean_d + var_d / mean_d  # the step an arrival lands in: E[D^2] / E[D]
        biased2 = m3 / mean_d  # its second moment: E[D^3] / E[D]
        var_b = max(biased2 - biased ** 2, 0.0)
        residual_var = biased2 / 3 - (biased / 2) ** 2  # R = U x D_b, U uniform on [0, 1]
        joined_var = prefill ** 2 * (lam * biased + lam ** 2 * var_b)  # the prompts that join it
        cov = lam * prefill * var_b / 2
        mean = biased / 2 + step + prefill * (1 + lam * biased)
        return mean, math.sqrt(max(residual_var + joined_var + 2 * cov, 0.0))

    def replica(self, costs: StepCosts, seqs: int) -> ReplicaCosts:
        seqs = max(int(seqs), 1)
        # the engine refuses a token budget below its sequence limit: it grows with it
        return ReplicaCosts(max_seqs=seqs, prefill_ms=costs.prefill_ms, decode_step_ms=costs.step_ms,
                            chunked_prefill=True, max_batched_tokens=max(self.max_batched_tokens, seqs + 1))

    def burst_ttft_ms(self, costs: StepCosts, demand: Demand, seqs: int) -> float:
        return seqs * costs.prefill_ms(demand.prompt_tokens)


@dataclass(frozen=True)
class FixedSlots(_SharedSteps):
    """Ollama: OLLAMA_NUM_PARALLEL slots decode together, a new prompt stalls them while it is
    prefilled, each slot at an Amdahl share of one stream (TR129); past the slots, a queue."""

    amdahl_s: float = 0.0  # serial fraction across slots (knowledge: amdahl_s.<model>)
    source: str = ""  # where the serial fraction came from
    kind: ClassVar[str] = "slots"
    label: ClassVar[str] = "fixed slots"
    fixed_slots: ClassVar[bool] = True

    def step_ms(self, costs: StepCosts, n: int) -> float:
        fixed, per = amdahl_step(costs.step_ms(1), self.amdahl_s)
        return fixed + per * max(int(n), 1)

    def _prefill_steps(self, prompt_tokens: int, decoding: float) -> tuple[float, int]:
        return 0.0, 0  # a prefill-only step: the running slots wait

    def replica(self, costs: StepCosts, seqs: int) -> ReplicaCosts:
        return ReplicaCosts(max_seqs=max(int(seqs), 1), prefill_ms=costs.prefill_ms,
                            decode_step_ms=amdahl_step(costs.step_ms(1), self.amdahl_s))

    @property
    def note(self) -> str:
        return self.source

    def efficiency(self, n: int) -> float:
        """Each slot's share of a single stream with n slots busy (Amdahl, TR129)."""
        return 1.0 / (self.amdahl_s * max(int(n), 1) + 1 - self.amdahl_s)

    def burst_ttft_ms(self, costs: StepCosts, demand: Demand, seqs: int) -> float:
        return seqs * costs.prefill_ms(demand.prompt_tokens)


@dataclass(frozen=True)
class OneAtATime(Scheduler):
    """A generate() loop (transformers serve without continuous batching): one request is prefilled
    and decoded to its end before the next begins; the others wait in line."""

    kind: ClassVar[str] = "sequential"
    label: ClassVar[str] = "one request at a time"
    batches: ClassVar[bool] = False

    def seqs(self, pool_seqs: int, ceiling: int) -> int:
        return 1

    def step_ms(self, costs: StepCosts, n: int) -> float:
        return costs.step_ms(1)

    def replica(self, costs: StepCosts, seqs: int) -> ReplicaCosts:
        return ReplicaCosts(max_seqs=1, prefill_ms=costs.prefill_ms, decode_step_ms=(costs.step_ms(1), 0.0))

    def batch_seqs(self, costs: StepCosts, demand: Demand, pool_seqs: int) -> int:
        return 1

    def _service(self, costs: StepCosts, demand: Demand) -> tuple[float, float, float]:
        prefill = costs.prefill_ms(demand.prompt_tokens)
        step1 = costs.step_ms(1)
        return prefill, step1, prefill + (demand.output_tokens - 1) * step1

    def burst_ttft_ms(self, costs: StepCosts, demand: Demand, seqs: int) -> float:
        return cf.burst_sequential_ttft_ms(seqs, self.replica(costs, 1), demand.prompt_tokens, demand.output_tokens)

    def _open(self, costs: StepCosts, demand: Demand, seqs: int, rate_rps: float) -> Load:
        prefill, step1, service = self._service(costs, demand)
        capacity = 1e3 / service
        burst = self.burst_ttft_ms(costs, demand, seqs)
        if rate_rps * service / 1e3 >= 1:
            return _unsteady("rate", 1, rate_rps, capacity, burst,
                             f"{rate_rps:.3g} requests/s is more than one request at a time completes ({capacity:.3g}/s)",
                             1e3 / step1, demand.output_tokens)
        wait95 = cf.md1_wait_p95_ms(rate_rps, service)
        wait = cf.md1_mean_wait_ms(rate_rps, service)
        return Load(
            mode="rate", seqs=1, rate_rps=rate_rps, ttft_p95_ms=wait95 + prefill, e2e_p95_s=(wait95 + service) / 1e3,
            e2e_mean_s=(wait + service) / 1e3, per_user_tok_s=1e3 / step1, total_tok_s=rate_rps * demand.output_tokens,
            burst_ttft_ms=burst, capacity_rps=capacity, in_flight=rate_rps * (wait + service) / 1e3, steady=True,
            ttft_how=f"p95 with {rate_rps:.3g} requests/s arriving: waits for the requests ahead ({service:,.0f} ms "
                     f"each; M/D/1)",
            e2e_how="p95 end to end: the wait and the whole request", per_user_how=f"{self.label}: a whole stream",
            total_how="one request at a time: generated tokens per second")

    def _closed(self, costs: StepCosts, demand: Demand, seqs: int) -> Load:
        prefill, step1, service = self._service(costs, demand)
        n, think = demand.users, demand.think_ms
        capacity = 1e3 / service
        burst = self.burst_ttft_ms(costs, demand, n)
        if think <= 0:  # N users always waiting: each request waits for the N - 1 before it
            rate = capacity
            ttft95, e2e95, e2e_mean = (n - 1) * service + prefill, n * service, n * service
            # while its request is served a user gets the whole engine; over time, 1/N of it
            per_user = 1e3 / step1 / n
            total = 1e3 / step1 * (demand.output_tokens - 1) * step1 / service if demand.output_tokens > 1 else 0.0
            live = float(n)
        else:  # N users who pause between requests: mean-value analysis of one server
            x, r = cf.mva_one_server(n, service, think)
            rate = x * 1e3
            wait95 = min(cf.md1_wait_p95_ms(rate, service), (n - 1) * service)
            ttft95, e2e95, e2e_mean = wait95 + prefill, wait95 + service, r
            per_user = 1e3 / step1
            total = rate * demand.output_tokens
            live = x * r
        return Load(
            mode="concurrent", seqs=n, rate_rps=rate, ttft_p95_ms=ttft95, e2e_p95_s=e2e95 / 1e3, e2e_mean_s=e2e_mean / 1e3,
            per_user_tok_s=per_user, total_tok_s=total, burst_ttft_ms=burst, capacity_rps=capacity, in_flight=live,
            steady=True,
            ttft_how=(f"p95 with {n} users in a closed loop" + (f", each pausing {demand.think_time_s:g} s" if think > 0
                                                               else "")
                      + f": one request at a time, each waits for the requests ahead ({service:,.0f} ms each)"),
            e2e_how="p95 end to end: the wait and the whole request",
            per_user_how=f"no batching: {n} requests take turns", total_how="one request at a time: generated tokens per second")


SCHEDULERS: dict[str, type[Scheduler]] = {s.kind: s for s in (ContinuousBatching, FixedSlots, OneAtATime)}
