"""How one serving replica spends its time: a prefill curve and a decode step per batch size.

The scheduler of each engine builds one (advisor/load/schedulers.py); the closed forms and the
simulation read it. Pure: nothing from the rest of advisor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReplicaCosts:
    """How one replica of an engine spends its time (the scheduler builds it: load/schedulers.py).

    max_seqs: sequences in flight at most (vLLM --max-num-seqs, llama.cpp -np,
        OLLAMA_NUM_PARALLEL); also the cap that keeps the KV pool from preempting.
    prefill_ms: the whole-prompt prefill time, a callable tokens -> ms or coefficients
        (floor_ms, ms_per_token, ms_per_token2): floor + a*t + b*t**2 for t > 0.
    decode_step_ms: one decode step with n sequences in the batch, a callable n -> ms or
        coefficients (fixed_ms, ms_per_seq): fixed + per_seq*n. A bandwidth roofline gives
        fixed = weight bytes / (bw x eff) (+ launch overhead), per_seq = one sequence's KV
        bytes at the average context / (bw x eff); fixed slots take schedulers.amdahl_step.
    chunked_prefill: prefill chunks share steps with running decodes (vLLM V1 default,
        llama-server's batch); otherwise a prefill stalls the running sequences.
    max_batched_tokens: tokens per step (vLLM --max-num-batched-tokens, llama.cpp -b): the
        chunk budget, and the prompt tokens one prefill-only step takes.
    """

    max_seqs: int
    prefill_ms: Callable[[int], float] | tuple[float, float, float]
    decode_step_ms: Callable[[int], float] | tuple[float, float]
    chunked_prefill: bool = False
    max_batched_tokens: int = 2048
    _prefill: Callable[[int], float] = field(init=False, repr=False, compare=False)
    _step: Callable[[int], float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_seqs < 1:
            raise ValueError("max_seqs must be at least 1")
        if self.max_batched_tokens < 1 or (self.chunked_prefill and self.max_batched_tokens <= self.max_seqs):
            raise ValueError("max_batched_tokens must exceed max_seqs with chunked prefill "
                             "(each running sequence takes one token of every step)")
        p, d = self.prefill_ms, self.decode_step_ms
        if callable(p):
            pf = p
        else:
            floor, a, b = (float(x) for x in p)
            def pf(t: int, floor=floor, a=a, b=b) -> float:
                return floor + a * t + b * t * t if t > 0 else 0.0
        if callable(d):
            sf = d
        else:
            fixed, per = (float(x) for x in d)
            def sf(n: int, fixed=fixed, per=per) -> float:
                return fixed + per * n
        object.__setattr__(self, "_prefill", pf)
        object.__setattr__(self, "_step", sf)

    def prefill(self, tokens: int) -> float:
        """Prefill of a whole prompt of ``tokens`` tokens, ms (0 for no tokens)."""
        return float(self._prefill(int(tokens))) if tokens > 0 else 0.0

    def step(self, n: int) -> float:
        """One decode step with ``n`` sequences in the batch, ms."""
        return float(self._step(int(n)))
