"""The advisor TUI: hardware -> questions -> probe -> advice -> playbook -> export.

A thin front end over advisor.recommend.recommend(). Start-up imports Textual,
pydantic, the domain types and the knowledge tables (checked before the screen
opens); the engine, NVML, the exporters and (only when a probe starts)
torch/transformers load later.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import get_current_worker

from advisor.domain import Answers, GpuDevice, Hardware, ProbeResult, Recommendation
from advisor.tui import sources
from advisor.tui.base import STEPS
from advisor.tui.state import TuiState


def _screens():
    from advisor.tui.screens.advice import AdviceScreen
    from advisor.tui.screens.export import ExportScreen
    from advisor.tui.screens.hardware import HardwareScreen
    from advisor.tui.screens.playbook import PlaybookScreen
    from advisor.tui.screens.probe import ProbeScreen
    from advisor.tui.screens.questionnaire import QuestionnaireScreen

    return {"hardware": HardwareScreen, "questions": QuestionnaireScreen, "probe": ProbeScreen,
            "advice": AdviceScreen, "playbook": PlaybookScreen, "export": ExportScreen}


class AdvisorApp(App):
    """The screens share one typed state (advisor.tui.state.TuiState) in the `state` reactive:
    a screen changes it with update_state() and watches it to repaint; none keeps its own copy
    of the answers, the GPUs or the plan."""

    CSS_PATH = "advisor.tcss"
    TITLE = "advisor"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, show=True),
    ]
    state: reactive[TuiState] = reactive(TuiState, always_update=False)
    # screen classes by terminal size, for the layouts in advisor.tcss (80x24 is "-normal -short")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-normal"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]

    def __init__(self, answers: Answers | None = None, *, answers_path: str | None = None,
                 detect_gpus=None, run_probe=None, list_ollama_tags=None, export=None,
                 render_snippet=None, knowledge=None, start: str = "hardware"):
        super().__init__()
        self.set_reactive(AdvisorApp.state, TuiState(answers=answers or Answers()))
        self.answers_path = answers_path
        self.loaded_answers = answers is not None
        self.detect_gpus = detect_gpus or sources.detect_gpus
        self.run_probe = run_probe or sources.run_probe
        self.list_ollama_tags = list_ollama_tags or sources.list_ollama_tags
        self.export = export or sources.export_snippet
        self.render_snippet = render_snippet or sources.snippet_text
        self._knowledge = knowledge
        self.start = start

    # ------------------------------------------------------------ shared state
    @property
    def knowledge(self):
        if self._knowledge is None:
            from advisor.knowledge import load_knowledge

            self._knowledge = load_knowledge()
        return self._knowledge

    def update_state(self, **changes) -> None:
        """Change the shared state; watchers (the screens) see the new one. New inputs drop the
        recommendation made for the old ones."""
        new = self.state.changed(**changes)
        if new == self.state:
            return
        if self.is_running:
            self.state = new
        else:  # before the app runs (a test, a script): no watcher to call yet
            self.set_reactive(AdvisorApp.state, new)

    @property
    def answers(self) -> Answers:
        return self.state.answers

    @property
    def probe_results(self) -> list[ProbeResult]:
        return list(self.state.probes)

    @property
    def recommendation(self) -> Recommendation | None:
        return self.state.recommendation

    def set_answers(self, answers: Answers) -> None:
        self.update_state(answers=answers)

    def add_probe(self, result: ProbeResult) -> None:
        self.state = self.state.with_probe(result)

    def _detect(self) -> tuple[tuple[GpuDevice, ...], str]:
        """Ask NVML (or the stand-in) once: (devices, one-line error). Blocking: call from a worker."""
        try:
            devices = tuple(self.detect_gpus(self.knowledge))
            error = "" if devices else "NVML reports no GPU"
        except Exception as e:  # ProbeError, or a broken NVML install: one line
            devices, error = (), (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        return devices, error

    @work(thread=True, exclusive=True, group="detect", exit_on_error=False)
    def request_detection(self) -> None:
        """Detect the GPUs once, off the event loop; the result lands in state.detected."""
        if self.state.detected is not None:
            return
        devices, error = self._detect()
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self.update_state, detected=devices, detect_error=error)

    def request_recommendation(self) -> None:
        """Plan for the current inputs unless that is done; the plan (or its one-line error)
        arrives in state.recommendation / state.error. A newer request cancels an older one."""
        if not self.state.planned:
            self._recommend(self.state)

    @work(thread=True, exclusive=True, group="recommend", exit_on_error=False)
    def _recommend(self, basis: TuiState) -> None:
        """recommend() with the inputs the CLI gathers for the same answers (advisor.inputs: the
        same hardware resolver, this machine's cached probes)."""
        from advisor.inputs import gather

        worker = get_current_worker()
        if basis.uses_nvml and basis.detected is None:
            devices, error = self._detect()
            self.call_from_thread(self.update_state, detected=devices, detect_error=error)
            basis = basis.changed(detected=devices, detect_error=error)
        try:
            detected = None
            if basis.uses_nvml:
                assert basis.detected is not None  # detected just above when it was not yet
                detected = list(basis.detected)
            rec = gather(basis.answers, self.knowledge, probes=basis.probes, detected=detected).recommend()
            error = ""
        except Exception as e:  # AdvisorError: one line naming the field
            rec, error = None, (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        if not worker.is_cancelled:
            self.call_from_thread(self._planned, basis, rec, error)

    def _planned(self, basis: TuiState, rec: Recommendation | None, error: str) -> None:
        if basis.inputs == self.state.inputs:  # else the inputs changed meanwhile: a newer plan comes
            self.update_state(recommendation=rec, error=error)

    def compute_recommendation(self) -> Recommendation:
        """recommend() for the current state, blocking (for scripts and tests); AdvisorError on
        a problem. Screens use request_recommendation() and watch the state instead."""
        from advisor.inputs import gather

        state = self.state
        detected = None
        if state.uses_nvml:
            detected = list(state.detected) if state.detected is not None else list(self._detect()[0])
        return gather(state.answers, self.knowledge, probes=state.probes, detected=detected).recommend()

    def planned_hardware(self) -> Hardware | None:
        """The GPUs the answers resolve to, by the resolver the CLI uses; None when that needs
        NVML not yet asked, or the answers name no usable GPU."""
        from advisor.hardware import resolve_hardware

        state = self.state
        auto = state.uses_nvml
        if auto and state.detected is None:
            return None
        try:
            return resolve_hardware(state.answers, self.knowledge,  # (auto: detected, as checked above)
                                    detected=list(state.detected) if auto and state.detected is not None else None)
        except Exception:
            return None

    # ------------------------------------------------------------ navigation
    async def on_mount(self) -> None:
        # kill / a closed terminal: leave as ctrl+q does, so the terminal is given back as it was
        import asyncio
        import functools
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, functools.partial(self.exit, return_code=128 + sig))
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                pass
        for name, cls in _screens().items():
            self.install_screen(cls(), name)
        await self.push_screen(self.start)
        if self.loaded_answers and self.answers_path:  # on the first screen, once it shows
            self.notify(f"OK loaded the answers from {self.answers_path}; ctrl+n walks through them, "
                        "or ctrl+p: Go to 4 Advice", timeout=10)

    def goto(self, name: str) -> None:
        while len(self.screen_stack) > 2 and not getattr(self.screen, "NAME", ""):
            self.pop_screen()  # close a dialog first
        if getattr(self.screen, "NAME", "") != name:
            self.switch_screen(name)

    async def action_quit(self) -> None:
        """Ctrl+Q: ask a running probe to stop at its next safe point, then leave."""
        for screen in self._installed_screens.values():
            event = getattr(screen, "cancel_event", None)
            if event is not None and getattr(screen, "running", False):
                event.set()
        await super().action_quit()

    def action_goto(self, name: str) -> None:
        self.goto(name)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for i, (name, label) in enumerate(STEPS, 1):
            yield SystemCommand(f"Go to {i} {label}", f"Open the {label.lower()} screen",
                                lambda n=name: self.goto(n))
        yield SystemCommand("Save answers", "Save the answers as TOML (reload with advisor --answers FILE)",
                            self.action_save_answers)
        yield from super().get_system_commands(screen)

    def copy_to_clipboard(self, text: str) -> None:
        """OSC 52, as Textual sends it (tmux forwards it: set-clipboard external). GNU screen drops
        a bare OSC 52, so inside screen ($STY) it goes again in screen's DCS passthrough, in chunks
        short enough for screen's string buffer; whichever form a multiplexer cannot use, it drops."""
        super().copy_to_clipboard(text)
        import os

        if not os.environ.get("STY") or self._driver is None:
            return
        import base64

        data = base64.b64encode(text.encode("utf-8")).decode("ascii")
        chunks = [data[i:i + 76] for i in range(0, len(data), 76)] or [""]
        self._driver.write("\x1bP\x1b]52;c;" + "\x1b\\\x1bP".join(chunks) + "\x07\x1b\\")

    def action_save_answers(self) -> None:
        from advisor.tui.dialogs import save_answers_dialog

        save_answers_dialog(self)


def run(answers_path: str | None = None) -> int:
    """`advisor` with no command. A bad answers file, or a broken table among the user's own
    knowledge files, is one line before the app starts (inside it, a worker would die with a
    traceback). Loading the tables here costs about 0.1 s of first paint; see bench/."""
    from advisor.errors import AdvisorError

    answers = None
    try:
        if answers_path:
            from advisor.answers import load_answers

            answers = load_answers(answers_path)
        from advisor.knowledge import load_knowledge

        knowledge = load_knowledge()
    except AdvisorError as e:
        sys.stderr.write(f"advisor: error: {e}\n")
        return e.exit_code
    app = AdvisorApp(answers, answers_path=answers_path, knowledge=knowledge)
    try:
        app.run()
    except BaseException:
        restore_terminal()
        raise
    if app.return_code not in (0, None):
        restore_terminal()
    return int(app.return_code or 0)


# what a full-screen app turns on, turned off: mouse reporting (all modes), bracketed paste,
# focus events; the cursor shown; the alternate screen left
RESTORE = ("\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l\x1b[?2004l\x1b[?1004l"
           "\x1b[?25h\x1b[?1049l")


def restore_terminal(stream=None) -> None:
    """After a fatal error the terminal must be usable again, whatever state the app left it in
    (sending these twice is harmless)."""
    stream = stream or sys.__stdout__
    try:
        if stream is not None and stream.isatty():
            stream.write(RESTORE)
            stream.flush()
    except (OSError, ValueError):
        pass


__all__ = ["AdvisorApp", "run"]
