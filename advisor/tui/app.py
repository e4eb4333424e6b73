"""The advisor TUI: hardware -> questions -> probe -> advice -> playbook -> export.

A thin front end over advisor.engine.recommend(). Start-up imports Textual,
pydantic, the domain types and the knowledge tables (checked before the screen
opens); the engine, NVML, the exporters and (only when a probe starts)
torch/transformers load later.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from advisor.domain import Answers, GpuDevice, Hardware, ProbeResult, Recommendation
from advisor.tui import sources
from advisor.tui.base import STEPS


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
    """State shared by the screens lives here; each screen reads and writes it."""

    CSS_PATH = "advisor.tcss"
    TITLE = "advisor"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, show=True),
    ]

    def __init__(self, answers: Answers | None = None, *, answers_path: str | None = None,
                 detect_gpus=None, run_probe=None, list_ollama_tags=None, export=None,
                 render_snippet=None, knowledge=None, start: str = "hardware"):
        super().__init__()
        self.answers: Answers = answers or Answers()
        self.answers_path = answers_path
        self.loaded_answers = answers is not None
        self.detect_gpus = detect_gpus or sources.detect_gpus
        self.run_probe = run_probe or sources.run_probe
        self.list_ollama_tags = list_ollama_tags or sources.list_ollama_tags
        self.export = export or sources.export_snippet
        self.render_snippet = render_snippet or sources.snippet_text
        self._knowledge = knowledge
        self.start = start
        self.detected: list[GpuDevice] | None = None  # what NVML reported (None: not asked yet)
        self.probe_results: list[ProbeResult] = []
        self.recommendation: Recommendation | None = None
        self.version = 0  # bumped whenever answers, hardware or probes change
        self.recommended_version = -1

    # ------------------------------------------------------------ shared state
    @property
    def knowledge(self):
        if self._knowledge is None:
            from advisor.knowledge import load_knowledge

            self._knowledge = load_knowledge()
        return self._knowledge

    def set_answers(self, answers: Answers) -> None:
        if answers != self.answers:
            self.answers = answers
            self.version += 1

    def detect_devices(self, knowledge=None) -> tuple[list[GpuDevice], str]:
        """The GPUs NVML sees, asked once (in a worker: NVML can be slow): (devices, error line)."""
        if self.detected is not None:
            return self.detected, self._detect_error
        try:
            devices = list(self.detect_gpus(knowledge or self.knowledge))
            error = "" if devices else "NVML reports no GPU"
        except Exception as e:  # ProbeError, or a broken NVML install: one line
            devices, error = [], (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        self.detected, self._detect_error = devices, error
        return devices, error

    def add_probe(self, result: ProbeResult) -> None:
        self.probe_results = [p for p in self.probe_results
                              if (p.backend, p.model) != (result.backend, result.model)] + [result]
        self.version += 1

    def planned_hardware(self) -> Hardware | None:
        """The GPUs the answers resolve to, by the resolver the CLI uses; None when that needs
        NVML not yet asked, or the answers name no usable GPU."""
        from advisor.hardware import resolve_hardware

        auto = self.answers.hardware.gpu.strip().lower() == "auto"
        if auto and self.detected is None:
            return None
        try:
            return resolve_hardware(self.answers, self.knowledge, detected=self.detected if auto else None)
        except Exception:
            return None

    def compute_recommendation(self) -> Recommendation:
        """recommend() for the current state, with the inputs the CLI gathers for the same answers
        (advisor.inputs: the same hardware resolver, this machine's cached probes); raises
        AdvisorError with one line. Runs in a worker (it may ask NVML)."""
        from advisor.inputs import gather

        version = self.version
        auto = self.answers.hardware.gpu.strip().lower() == "auto"
        detected = self.detect_devices()[0] if auto else None
        inputs = gather(self.answers, self.knowledge, probes=self.probe_results, detected=detected)
        rec = inputs.recommend()
        self.recommendation = rec
        self.recommended_version = version
        return rec

    # ------------------------------------------------------------ navigation
    async def on_mount(self) -> None:
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
    app.run()
    return int(app.return_code or 0)


__all__ = ["AdvisorApp", "run"]
