"""Screen 6: deployment snippets per target; copy (OSC 52, works over SSH), save, save answers."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer
from textual.widgets import Label, Select, Static
from textual.worker import get_current_worker

from advisor.engines import TARGETS, engines
from advisor.tui.base import AdvisorScreen
from advisor.tui.dialogs import save_answers_dialog, save_flow, snippet_targets, write_snippet


def default_target(knowledge, backend: str) -> str:
    """The exporter of the plan's engine (its backends row's export_target)."""
    eng = engines(knowledge).get(backend)
    return eng.export_target if eng is not None else TARGETS[0]


class ExportScreen(AdvisorScreen):
    NAME = "export"
    BINDINGS = [Binding("c", "copy", "Copy"), Binding("s", "save", "Save snippet"),
                Binding("a", "save_answers", "Save answers"), Binding("escape", "back", "Back")]

    def __init__(self):
        super().__init__()
        self.snippet = None
        self.text = ""
        self.target = ""
        self._plan = None  # the recommendation the target was chosen for

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("target", classes="field")
            # blank until the recommendation names its backend: no stale first Changed event
            yield Select([(t, t) for t in TARGETS], id="target-pick", prompt="target", compact=True)
            yield Static("", id="export-for", markup=False)
        yield Static("", id="export-status", markup=False)
        with ScrollableContainer(id="snippet-box"):  # long lines scroll sideways, never wrap
            yield Static("", id="snippet", markup=False)

    def on_mount(self) -> None:
        self.watch(self.app, "state", self.state_changed, init=False)

    def state_changed(self, state) -> None:
        if self.is_current:
            self.present(state)

    def on_screen_resume(self) -> None:
        self.present(self.advisor.state)

    def present(self, state) -> None:
        """The snippet of the current plan; a new plan opens on its own backend's target (not on
        one picked for an earlier plan)."""
        rec = state.recommendation
        if rec is None and not state.error:
            self.query_one("#export-status", Static).update("Computing the recommendation...")
            self.query_one("#snippet", Static).update("")
            self.advisor.request_recommendation()
            return
        if rec is not self._plan:
            self._plan, self.target = rec, ""
        self.refresh_snippet()

    def refresh_snippet(self, target: str | None = None) -> None:
        rec = self.advisor.recommendation
        if rec is None or rec.recommendation is None:
            self.snippet, self.text = None, ""
            self.query_one("#snippet", Static).update("")
            why = self.advisor.state.error or "see the advice screen for why"
            self.query_one("#export-status", Static).update(
                f"WARN no recommendation to export ({why}). a: save the answers")
            return
        sel = self.query_one("#target-pick", Select)
        if target is None:
            target = self.target or default_target(self.advisor.knowledge, rec.recommendation.backend)
            self.target = target  # before the Select changes, so its Changed event is a no-op
            if sel.value != target:
                sel.value = target
        self.query_one("#export-for", Static).update(
            f"for {rec.recommendation.model} on {rec.recommendation.backend} at {rec.recommendation.quantization}")
        self.compute(rec, target)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def compute(self, rec, target: str) -> None:
        """The exporter, off the event loop; a newer request cancels this one, whose answer is
        then dropped."""
        app = self.advisor
        worker = get_current_worker()
        try:
            snippet = app.export(rec, target)
            text = app.render_snippet(snippet)
        except Exception as e:  # AdvisorError from the exporter: one line
            msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            if not worker.is_cancelled:
                app.call_from_thread(self.show_error, msg)
            return
        if not worker.is_cancelled:
            app.call_from_thread(self.show, target, snippet, text)

    def show(self, target: str, snippet, text: str) -> None:
        self.target, self.snippet, self.text = target, snippet, text
        names = ", ".join(getattr(snippet, "files", {}) or {}) or "(no files)"
        status = f"{target}: {names}.  c copy  s save  a save answers"
        widest = max((len(line) for line in text.splitlines()), default=0)
        if widest > self.query_one("#snippet-box").size.width:
            # cut at the right edge otherwise, with only a coloured scrollbar to say so
            status += (f"\nLines up to {widest} columns wide: tab to the snippet, then left/right "
                       "scroll; copy and save keep them whole")
        self.query_one("#export-status", Static).update(status)
        self.query_one("#snippet", Static).update(text)

    def show_error(self, msg: str) -> None:
        self.snippet, self.text = None, ""
        self.query_one("#export-status", Static).update(f"FAIL {msg}")
        self.query_one("#snippet", Static).update("")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "target-pick" and event.value is not Select.NULL and str(event.value) != self.target:
            self.target = str(event.value)
            rec = self.advisor.recommendation
            if rec is not None and rec.recommendation is not None:
                self.compute(rec, self.target)

    def action_copy(self) -> None:
        if not self.text:
            self.app.notify("WARN nothing to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(self.text)
        self.app.notify(f"OK copied the {self.target} snippet ({len(self.text.splitlines())} lines) "
                        "to the clipboard (OSC 52; your terminal must allow it)")

    def action_save(self) -> None:
        files = dict(getattr(self.snippet, "files", {}) or {})
        if not files:
            self.app.notify("WARN nothing to save yet", severity="warning")
            return
        several = len(files) > 1
        default = f"advisor-{self.target}" if several else next(iter(files))

        def write(path: str) -> str:
            written = write_snippet(path, files)
            return "OK saved " + ", ".join(str(p) for p in written)

        title = (f"Save {len(files)} files into the folder:" if several else "Save the snippet to:")
        save_flow(self.app, title, default, lambda path: snippet_targets(path, files), write, dir_ok=True)

    def action_save_answers(self) -> None:
        save_answers_dialog(self.app)

    def action_back(self) -> None:
        self.advisor.goto("advice")
