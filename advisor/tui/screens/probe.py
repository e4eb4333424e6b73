"""Screen 3: measure this machine in a background worker, with a bar per step and a live plot.

The probe itself comes from app.run_probe (probes.runner.run_probe by default;
a stand-in in tests). torch/transformers are imported inside it, so only when
the user starts a probe.
"""

from __future__ import annotations

import threading

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, ProgressBar, Select, Static

from advisor.domain import CurvePoint, ProbeProgress, ProbeResult
from advisor.tui.base import AdvisorScreen
from advisor.tui.plot import LEGEND, render_plot, safe_budget_mb
from advisor.tui.sources import tui_words

BACKENDS = ("transformers", "ollama", "openai")
# what the probe measures through a server (with a URL), and which of those Ollama serves at its own address
SERVERS = BACKENDS[1:]
OLLAMA = BACKENDS[1]
STEPS_BY_BACKEND = {"transformers": ("load", "curve", "ttft", "decode"), "ollama": ("ollama",),
                    "openai": ("openai",)}
# rough share of the whole probe each step takes; only to pace its bar until the step ends
STEP_SHARE = {"load": 0.2, "curve": 0.5, "ttft": 0.15, "decode": 0.15, "ollama": 1.0, "openai": 1.0}
AXIS_CONTEXTS = (512, 32768)
PLOT_HEIGHT = 7


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else e.__class__.__name__


class StepRow(Horizontal):
    """One probe step: its name, its own progress bar, and its latest message (OK/FAIL in words)."""

    def __init__(self, step: str):
        super().__init__(classes="step")
        self.step = step
        self.bar = ProgressBar(total=1.0, show_eta=False)
        self.msg = Static("waiting", classes="step-msg", markup=False)

    def compose(self) -> ComposeResult:
        yield Label(f"{self.step:<7}", classes="step-name")
        yield self.bar
        yield self.msg


class ProbeScreen(AdvisorScreen):
    NAME = "probe"
    BINDINGS = [Binding("ctrl+r", "run", "Run probe", priority=True),
                Binding("ctrl+x", "cancel", "Cancel", priority=True),
                Binding("ctrl+n", "next", "Next: advice", priority=True),
                Binding("escape", "back", "Back")]

    def __init__(self):
        super().__init__()
        self.cancel_event = threading.Event()
        self.running = False
        self.points: list[CurvePoint] = []
        self.result: ProbeResult | None = None
        self.step_start: dict[str, float] = {}
        self.current_step = ""
        self._filled = ""  # the model name this screen filled in from the answers (not typed)

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static("Probe: measure this GPU and model (optional; about a minute)", classes="title")
            with Horizontal(classes="row"):
                yield Label("model", classes="field")
                yield Input(id="probe-model", compact=True, placeholder="catalog id, HF folder or tag")
                yield Label("backend", classes="field")
                yield Select([(b, b) for b in BACKENDS], value="transformers", id="probe-backend",
                             allow_blank=False, compact=True)
                yield Label("attention", classes="field")
                yield Select([("sdpa", "sdpa"), ("eager", "eager")], value="sdpa", id="probe-attention",
                             allow_blank=False, compact=True)
            with Horizontal(classes="row", id="url-row"):
                yield Label("server URL", classes="field")
                yield Input(id="probe-url", compact=True, placeholder="http://localhost:11434")
            yield Static("Not started. ctrl+r runs the probe; ctrl+n skips to the advice.",
                         id="probe-status", markup=False)
            yield Vertical(id="steps")
            yield Static("", id="plot", markup=False)
            yield Static(LEGEND, id="legend", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Run probe", id="run", variant="primary")
                yield Button("Cancel", id="cancel", disabled=True)
                yield Button("Next: advice >", id="next")

    def on_mount(self) -> None:
        self.query_one("#url-row").display = False

    async def on_screen_resume(self) -> None:
        if self.running:
            return
        model = self.query_one("#probe-model", Input)
        if not model.value or model.value == self._filled:  # not typed by the user: follow the answers
            from advisor.tui.screens.questionnaire import model_source

            app = self.advisor
            rec = app.recommendation.recommendation if app.recommendation else None
            name = app.answers.model.name or (rec.model if rec else "") or "qwen2.5-1.5b"
            model.value = self._filled = name
            # an Ollama tag is measured through the Ollama server, anything else with transformers
            backend = OLLAMA if model_source(name, app.knowledge) == "tag" else BACKENDS[0]
            if backend != self.backend():
                self.query_one("#probe-backend", Select).value = backend
                await self.show_backend(backend)
                return
        await self.make_steps(self.backend())
        self.redraw_plot()

    # ------------------------------------------------------------ state shown
    def backend(self) -> str:
        return str(self.query_one("#probe-backend", Select).value)

    async def make_steps(self, backend: str) -> None:
        box = self.query_one("#steps", Vertical)
        await box.remove_children()
        await box.mount_all([StepRow(s) for s in STEPS_BY_BACKEND.get(backend, ())])

    def row(self, step: str) -> StepRow | None:
        return next((r for r in self.query(StepRow) if r.step == step), None)

    async def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "probe-backend" and not self.running:
            await self.show_backend(str(event.value))

    async def show_backend(self, b: str) -> None:
        """The URL row for a server backend (Ollama's own address filled in) and the backend's steps."""
        self.query_one("#url-row").display = b in SERVERS
        url = self.query_one("#probe-url", Input)
        if b == OLLAMA and not url.value:
            from advisor.tui.sources import ollama_url

            url.value = ollama_url()
        await self.make_steps(b)
        self.redraw_plot()

    def ceiling(self) -> tuple[float | None, float]:
        """(VRAM ceiling MB, other tenants MB) of the GPU we plan for; None when no GPU is chosen
        yet (gpu = auto, not detected): the plot then draws no ceiling rather than a made-up one."""
        hw = self.advisor.planned_hardware()
        if hw is None:
            return None, 0.0
        d = hw.devices[0]
        return d.total_gb * 1024, (d.other_processes_gb or 0.0) * 1024

    def redraw_plot(self) -> None:
        ceiling, other = self.ceiling()
        base = self.result.base_vram_mb if self.result else None
        try:
            margin = self.advisor.knowledge.value("context_safety_margin")
        except Exception:
            margin = 0.8
        safe = safe_budget_mb(ceiling, other, base, margin) if ceiling is not None else None
        contexts = list(AXIS_CONTEXTS) + [p.context_tokens for p in self.points]
        width = max(min(self.size.width - 2, 118), 40) if self.size.width else 76
        text = render_plot(self.points, ceiling, safe, contexts=contexts,
                           fit=self.result.fit if self.result else None, width=width, height=PLOT_HEIGHT)
        if ceiling is None or safe is None:  # (safe is None only when ceiling is)
            head = "peak VRAM vs context   no ceiling: choose the GPU on 1 Hardware"
        else:
            head = f"peak VRAM vs context   ceiling {ceiling / 1024:.1f} GB, safe budget {safe / 1024:.1f} GB"
        self.query_one("#plot", Static).update(head + "\n" + text)

    def set_status(self, text: str) -> None:
        self.query_one("#probe-status", Static).update(text)

    # ------------------------------------------------------------ running
    async def action_run(self) -> None:
        if self.running:
            return
        model = self.query_one("#probe-model", Input).value.strip()
        if not model:
            self.set_status("WARN type the model to probe")
            self.query_one("#probe-model").focus()
            return
        backend = self.backend()
        attention = str(self.query_one("#probe-attention", Select).value)
        url = self.query_one("#probe-url", Input).value.strip() or None
        self.points, self.result, self.step_start, self.current_step = [], None, {}, ""
        self.cancel_event = threading.Event()
        self.running = True
        await self.make_steps(backend)
        self.redraw_plot()
        self.set_status(f"Running: {model} on {backend} ({attention})... ctrl+x cancels")
        self.query_one("#run", Button).disabled = True
        self.query_one("#cancel", Button).disabled = False
        self.probe(model, backend, url, attention, self.cancel_event)

    @work(thread=True, exclusive=True, group="probe")
    def probe(self, model: str, backend: str, url: str | None, attention: str, cancel: threading.Event) -> None:
        app = self.advisor

        def progress(p: ProbeProgress) -> None:
            if not cancel.is_set():
                app.call_from_thread(self.on_progress, p)

        try:
            result = app.run_probe(model, backend=backend, url=url, attention=attention,
                                   progress=progress, cancel=cancel, knowledge=app.knowledge)
        except Exception as e:  # ProbeError, OOM, a missing module: one line
            app.call_from_thread(self.finished, None, _one_line(e), cancel.is_set())
            return
        app.call_from_thread(self.finished, result, "", cancel.is_set())

    def on_progress(self, p: ProbeProgress) -> None:
        step = p.step
        if step != self.current_step:
            if self.current_step:
                self._bar(self.current_step, 1.0, None)
            if step != "done":
                self.step_start.setdefault(step, p.fraction)
                if self.row(step) is None:
                    self.query_one("#steps", Vertical).mount(StepRow(step))
            self.current_step = step
        if step != "done":
            share = STEP_SHARE.get(step, 0.3)
            within = (p.fraction - self.step_start.get(step, 0.0)) / share if share else 0.0
            self._bar(step, min(max(within, 0.0), 0.99), p.message)
        if p.point is not None:
            self.points = [q for q in self.points if q.context_tokens != p.point.context_tokens] + [p.point]
            self.points.sort(key=lambda q: q.context_tokens)
            self.redraw_plot()

    def _bar(self, step: str, value: float, message: str | None) -> None:
        row = self.row(step)
        if row is None or not row.is_mounted:
            return
        row.bar.update(progress=value)
        if message is not None:
            row.msg.update(message[:40])
        elif value >= 1.0:
            row.msg.update("OK done")

    def finished(self, result: ProbeResult | None, error: str, cancelled: bool) -> None:
        self.running = False
        self.query_one("#run", Button).disabled = False
        self.query_one("#cancel", Button).disabled = True
        if cancelled:
            self.set_status("Cancelled: nothing measured is used. ctrl+r runs it again.")
            if self.current_step:
                self._bar(self.current_step, 0.0, "cancelled")
            return
        if result is None:
            self.set_status(f"FAIL {tui_words(error)}\n"
                            "Nothing was measured. ctrl+n: the advice from the tables, without a probe.")
            rows = list(self.query(StepRow))
            step = self.current_step or (rows[0].step if rows else "")
            if step:  # the step that failed says so, even when it failed before its first report
                self._bar(step, 0.0, "FAIL")
            return
        for row in self.query(StepRow):
            self._bar(row.step, 1.0, None)
        self.result = result
        self.points = sorted(result.curve or self.points, key=lambda q: q.context_tokens)
        self.advisor.add_probe(result)
        self.redraw_plot()
        self.set_status(self.summary(result))

    @staticmethod
    def summary(r: ProbeResult) -> str:
        parts = [f"OK {r.model} on {r.backend}" + (" (cached)" if r.cached else "")]
        if r.base_vram_mb is not None:
            parts.append(f"base {r.base_vram_mb:,.0f} MB")
        if r.fit is not None:
            parts.append(f"{r.fit.kind} fit {r.fit.linear_mb_per_token:.3f} MB/token")
        if r.ttft:
            t = r.ttft[-1]
            parts.append(f"TTFT {t.ttft_ms:,.0f} ms at {t.context_tokens:,}")
        if r.decode_tok_s is not None:
            parts.append(f"decode {r.decode_tok_s:,.1f} tok/s")
        text = "; ".join(parts) + ". ctrl+n: the advice uses it."
        for w in r.warnings[:2]:
            text += f"\nWARN {w}"
        return text

    def action_cancel(self) -> None:
        if self.running:
            self.cancel_event.set()
            self.set_status("Cancelling... (the probe stops at its next safe point)")

    def action_next(self) -> None:
        self.advisor.goto("advice")

    def action_back(self) -> None:
        if not self.running:
            self.advisor.goto("questions")

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            await self.action_run()
        elif event.button.id == "cancel":
            self.action_cancel()
        elif event.button.id == "next":
            self.action_next()
