"""What every screen shares: the step bar at the top, the footer of keys, navigation."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.content import Content
from textual.widgets import Footer, RadioButton, Static

# (screen name, label) in the order of the story
STEPS = (
    ("hardware", "Hardware"),
    ("questions", "Questions"),
    ("probe", "Probe"),
    ("advice", "Advice"),
    ("playbook", "Playbook"),
    ("export", "Export"),
)
LABELS = dict(STEPS)


def step_line(current: str) -> str:
    """'advisor  1 Hardware  [2 Questions]  3 Probe ...': the current step in brackets."""
    parts = []
    for i, (name, label) in enumerate(STEPS, 1):
        text = f"{i} {label}"
        parts.append(f"[{text}]" if name == current else f" {text} ")
    return "advisor " + " ".join(parts)


class StepBar(Static):
    """One line naming every screen; the current one is bracketed (not only highlighted)."""

    def __init__(self, current: str):
        super().__init__(step_line(current), id="stepbar", markup=False)


class AdvisorScreen(Screen):
    """A screen of the story. Subclasses set NAME and implement compose_body()."""

    NAME = ""

    def compose(self) -> ComposeResult:
        yield StepBar(self.NAME)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:  # pragma: no cover - abstract
        yield from ()

    @property
    def advisor(self):
        """The AdvisorApp (typed loosely so screens import no app module)."""
        return self.app


NEXT = Binding("ctrl+n", "next", "Next", priority=True)
BACK = Binding("escape", "back", "Back")


class Choice(RadioButton):
    """A radio button whose state is in the text, "(*)" or "( )", not only in its colour."""

    @property
    def _button(self) -> Content:
        return Content.assemble(("(*)" if self.value else "( )", self.get_visual_style("toggle--button")))
