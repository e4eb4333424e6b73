"""What every screen shares: the step bar at the top, the footer of keys, navigation."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, RadioButton, RadioSet, Static

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


def step_line(current: str, width: int = 80) -> str:
    """'advisor  1 Hardware  [2 Questions]  3 Probe ...': the current step in brackets. Narrower
    than that, only the current step keeps its name: 'advisor  1  [2 Questions]  3   4 ...'."""
    parts = []
    for i, (name, label) in enumerate(STEPS, 1):
        text = f"{i} {label}"
        parts.append(f"[{text}]" if name == current else f" {text} ")
    line = "advisor " + " ".join(parts)
    if len(line) <= width:
        return line
    short = "advisor " + " ".join(f"[{i} {label}]" if name == current else f" {i} "
                                  for i, (name, label) in enumerate(STEPS, 1))
    return short if len(short) <= width else f"advisor {dict(STEPS).get(current, '')}"[:width]


class StepBar(Static):
    """One line naming every screen; the current one is bracketed (not only highlighted)."""

    def __init__(self, current: str):
        super().__init__(step_line(current), id="stepbar", markup=False)
        self.current = current

    def on_resize(self) -> None:
        self.update(step_line(self.current, self.size.width or 80))


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
    """A radio button whose state is in the text, "(*)" or "( )", not only in its colour;
    in a focused ChoiceSet the arrow keys' cursor is a ">" before it, not only a highlight."""

    @property
    def _button(self) -> Content:
        parent = self.parent
        cursor = self.has_class("-selected") and isinstance(parent, Widget) and parent.has_focus
        return Content.assemble((">" if cursor else " ", ""), " ",
                                ("(*)" if self.value else "( )", self.get_visual_style("toggle--button")))


class ChoiceSet(RadioSet):
    """A RadioSet that says where its cursor is: a ">" marker and a Highlighted message; Enter
    chooses the button under the cursor and says so (Chosen: a page can move on), space only
    chooses."""

    BINDINGS = [Binding("enter", "choose", "Choose", show=False)]

    class Chosen(Message):
        def __init__(self, choice_set: ChoiceSet) -> None:
            super().__init__()
            self.choice_set = choice_set

        @property
        def control(self) -> ChoiceSet:
            return self.choice_set

    def action_choose(self) -> None:
        self.action_toggle_button()
        self.post_message(self.Chosen(self))

    class Highlighted(Message):
        def __init__(self, choice_set: ChoiceSet, button: RadioButton) -> None:
            super().__init__()
            self.choice_set, self.button = choice_set, button

        @property
        def control(self) -> ChoiceSet:
            return self.choice_set

    def watch__selected(self) -> None:
        super().watch__selected()
        self._repaint_marker()
        if self._selected is not None:
            button = self._nodes[self._selected]
            assert isinstance(button, RadioButton)  # a RadioSet holds only RadioButtons (as textual asserts)
            self.post_message(self.Highlighted(self, button))

    def _repaint_marker(self) -> None:
        for button in self.query(RadioButton):
            button.refresh(layout=True)

    def on_focus(self) -> None:
        self._repaint_marker()

    def on_blur(self) -> None:
        self._repaint_marker()
