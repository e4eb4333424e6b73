"""Step costs for load-model tests: linear curves of the shapes the engines' models produce."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Linear:
    """Step costs of the usual shape: a prompt's floor plus a cost per token; a decode step's fixed
    weight read plus a cost per sequence in the batch."""

    floor: float
    per_token: float
    fixed: float
    per_seq: float

    def prefill_ms(self, tokens: int) -> float:
        return self.floor + self.per_token * tokens if tokens > 0 else 0.0

    def step_ms(self, n: int) -> float:
        return self.fixed + self.per_seq * n

    def scaled(self, prefill: float = 1.0, decode: float = 1.0) -> "Linear":
        return Linear(self.floor * prefill, self.per_token * prefill, self.fixed * decode, self.per_seq * decode)


# an 8B model on an H100-like GPU; a 1.5B model on an L40S-like one; 70B on two A100-like ones
H100_8B = Linear(10.0, 0.04, 6.0, 0.056)
L40S_1B = Linear(1.0, 65.8 / 4096, 5.0, 0.185)
A100_70B = Linear(30.0, 0.5, 40.0, 0.3)
