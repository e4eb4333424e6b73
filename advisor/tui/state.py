"""What the TUI's screens share, as one typed, frozen model.

A change is a new TuiState set on the app's `state` reactive; screens watch it and repaint what
depends on the part that changed. A change of the inputs (answers, detected GPUs, probe results)
drops the recommendation made for the old ones, so no screen can show a plan for inputs that are
no longer the user's.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from advisor.domain import Answers, GpuDevice, ProbeResult, Recommendation


class TuiState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    answers: Answers = Answers()
    # what NVML reported (None: not asked yet; () with detect_error: asked, nothing there)
    detected: tuple[GpuDevice, ...] | None = None
    detect_error: str = ""
    # probes run in this session (this machine's cached ones are added when planning)
    probes: tuple[ProbeResult, ...] = ()
    # the recommendation for exactly these inputs, or the one line saying why there is none
    recommendation: Recommendation | None = None
    error: str = ""

    @property
    def uses_nvml(self) -> bool:
        return self.answers.hardware.gpu.strip().lower() == "auto"

    @property
    def inputs(self) -> tuple:
        """What the plan depends on; the detected GPUs only when planning for this machine."""
        return (self.answers, self.detected if self.uses_nvml else None, self.probes)

    @property
    def planned(self) -> bool:
        """A recommendation (or its error) exists for the current inputs."""
        return self.recommendation is not None or bool(self.error)

    def changed(self, **changes) -> TuiState:
        """A new state with these changes; new inputs drop the old recommendation."""
        new = self.model_copy(update=changes)
        if new.inputs != self.inputs and "recommendation" not in changes:
            new = new.model_copy(update={"recommendation": None, "error": ""})
        return new

    def with_probe(self, result: ProbeResult) -> TuiState:
        """This probe's result replaces an earlier one of the same model and backend."""
        kept = tuple(p for p in self.probes if (p.backend, p.model) != (result.backend, result.model))
        return self.changed(probes=kept + (result,))
