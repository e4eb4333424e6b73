"""Screen 5: the matching operational playbook (Appendix H), rendered as Markdown."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, Markdown, Select, Static

from advisor.tui.base import AdvisorScreen


def playbook_markdown(row) -> str:
    out = [f"## {row.id} {row.title}", "", f"**When:** {row.when}", ""]
    if row.prerequisites:
        out += [f"**Prerequisites:** {row.prerequisites}", ""]
    out += ["**Steps:**", ""]
    out += [f"{i}. {step}" for i, step in enumerate(row.steps, 1)]
    out.append("")
    if row.correction:
        out += [f"**Correction:** {row.correction}", ""]
    out.append(f"*Source: {row.source}*")
    return "\n".join(out)


class PlaybookScreen(AdvisorScreen):
    NAME = "playbook"
    BINDINGS = [Binding("e", "export", "Export"), Binding("escape", "back", "Back")]

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("playbook", classes="field")
            yield Select([], id="playbook-pick", allow_blank=True, prompt="pick a playbook", compact=True)
        yield Static("", id="playbook-why", markup=False)
        with VerticalScroll(id="body"):
            yield Markdown("", id="playbook-md")

    def on_mount(self) -> None:
        self.watch(self.app, "state", self.state_changed, init=False)

    def state_changed(self, state) -> None:
        if self.is_current:
            self.on_screen_resume()

    def on_screen_resume(self) -> None:
        app = self.advisor
        k = app.knowledge
        rec = app.recommendation
        matched = [pb.id for pb in rec.playbooks] if rec else []
        options = [(f"{pid} {row.title}" + ("  (matches)" if pid in matched else ""), pid)
                   for pid, row in k.playbooks.items()]
        sel = self.query_one("#playbook-pick", Select)
        current = sel.value
        sel.set_options(options)
        if matched and (current is Select.NULL or current not in matched):
            current = matched[0]
        if current is Select.NULL:
            current = next(iter(k.playbooks))
        sel.value = current
        why = self.query_one("#playbook-why", Static)
        if rec is None:
            why.update("No recommendation yet: every playbook is listed. (Advice: palette, Go to 4)")
        elif matched:
            why.update("Matching this recommendation: " + ", ".join(matched))
        else:
            why.update("No playbook matched this recommendation; all are listed.")
        self.show(str(current))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.show(str(event.value))

    def show(self, pid: str) -> None:
        row = self.advisor.knowledge.playbooks.get(pid)
        if row is not None:
            self.query_one("#playbook-md", Markdown).update(playbook_markdown(row))

    def action_export(self) -> None:
        self.advisor.goto("export")

    def action_back(self) -> None:
        self.advisor.goto("advice")
