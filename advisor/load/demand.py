"""What the user asks of the deployment, as the load model reads it: one record, resolved once.

The answers say it three ways (N users in a closed loop, an arrival rate, an offline batch with a
deadline); the workload's defaults fill what the user left out (answers.with_workload_defaults)
before this record is made, so every stage after it reads the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Mode = Literal["concurrent", "rate", "batch"]


@dataclass(frozen=True)
class Demand:
    """The load on the deployment: how requests arrive, how long they are, and the targets.

    concurrent: `users` people or agents in a closed loop, each sending the next request
        `think_time_s` after the last answer ended (0: agents back to back);
    rate: Poisson arrivals at `rate_rps`;
    batch: `requests_per_day` to finish within `deadline_hours`, at whatever rate the engine holds
        (`rate_rps` is then the rate the deadline needs).
    """

    mode: Mode
    prompt_tokens: int
    output_tokens: int
    users: int = 1
    think_time_s: float = 0.0
    rate_rps: float = 0.0
    requests_per_day: int = 0
    deadline_hours: float = 0.0
    ttft_slo_ms: float = math.inf  # p95 time to first token
    e2e_slo_s: float = math.inf  # p95 of the whole answer

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1 or self.users < 1:
            raise ValueError("prompt_tokens, output_tokens and users must be at least 1")
        if self.mode == "rate" and not self.rate_rps > 0:
            raise ValueError("an arrival rate must be positive")

    @property
    def seq_tokens(self) -> int:
        """What one sequence holds in the KV cache at its end: the prompt and the answer."""
        return self.prompt_tokens + self.output_tokens

    @property
    def mean_context(self) -> int:
        """The context of a decoding sequence on average: the prompt and half the answer."""
        return self.prompt_tokens + self.output_tokens // 2

    @property
    def think_ms(self) -> float:
        return self.think_time_s * 1e3

    @classmethod
    def of(cls, *, prompt_tokens: int, output_tokens: int, users: int = 1, think_time_s: float = 0.0,
           rate_rps: float = 0.0, requests_per_day: int = 0, deadline_hours: float = 0.0,
           ttft_slo_ms: float = math.inf, e2e_slo_s: float = math.inf) -> Demand:
        """The mode the answers give: a batch volume with a deadline first, then an arrival rate,
        else N users."""
        if requests_per_day > 0 and deadline_hours > 0:
            mode: Mode = "batch"
            rate_rps = requests_per_day / (deadline_hours * 3600)
        elif rate_rps > 0:
            mode = "rate"
        else:
            mode, rate_rps = "concurrent", 0.0
        return cls(mode=mode, prompt_tokens=prompt_tokens, output_tokens=output_tokens, users=users,
                   think_time_s=think_time_s, rate_rps=rate_rps, requests_per_day=requests_per_day,
                   deadline_hours=deadline_hours, ttft_slo_ms=ttft_slo_ms, e2e_slo_s=e2e_slo_s)
