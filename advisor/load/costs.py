"""What the load model needs of an engine's speed: one Protocol, two implementations.

An engine's step costs come from its calibrated roofline (advisor/engines/roofline.py) or from
NVIDIA's measured kernel tables (advisor/engines/aiconfigurator.py); a probe on this machine
rescales either. The schedulers (advisor/load/schedulers.py) read only this interface.
"""

from __future__ import annotations

from typing import Protocol


class StepCosts(Protocol):
    """A prefill curve and a decode step per batch size, in ms, on one replica (its TP group)."""

    def prefill_ms(self, tokens: int) -> float:
        """One prompt of `tokens` tokens, prefilled alone."""
        ...

    def step_ms(self, n: int) -> float:
        """One decode step with `n` sequences sharing it (the engine's batched kernels)."""
        ...

    def scaled(self, prefill: float = 1.0, decode: float = 1.0) -> StepCosts:
        """The same curves scaled to a measurement (a probe on this machine)."""
        ...
