"""Screen 4: the recommendation — headline, predicted figures with their origin,
warnings, alternatives with why they lost, and the trace of rules with sources."""

from __future__ import annotations

import asyncio
import textwrap

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Collapsible, Static

from advisor.domain import Answers, Plan, Recommendation
from advisor.tui.base import AdvisorScreen

WRAP = 74


def headline(p: Plan) -> str:
    from advisor.render import headline as text

    return text(p)


def predicted_rows(p: Plan, answers: Answers | None = None) -> list[tuple[str, str, str, str]]:
    """(figure, value, origin, source) for each predicted figure (an offline batch's batch figures)."""
    from advisor.render import figure_rows  # the one list of figures, with their bands

    pr = p.predicted
    out = []
    for label, value, key in figure_rows(p, answers):
        o = pr.origins.get(key)
        origin = (o.origin + ("*" if o.assumed else "")) if o else "?"  # *: an assumed efficiency
        out.append((label, value, origin, o.source if o else ""))
    return out


def _wrap(text: str, first: str, rest: str, width: int = WRAP) -> str:
    return "\n".join(textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                                   break_on_hyphens=False)) or first


ORIGIN_WORDS = {"probe": "measured here", "knowledge": "stored table", "roofline": "physics x efficiency",
                "aiconfigurator": "NVIDIA's measured tables", "answers": "your answer"}


def predicted_text(p: Plan, width: int = WRAP, answers: Answers | None = None) -> str:
    """The figures' table; the origin's words in brackets where the screen has room for them."""
    from advisor.render import load_lines

    lines = [f"{'predicted':<17}{'value':>19}  {'origin':<10}"]
    for label, value, origin, _source in predicted_rows(p, answers):
        line = f"{label:<17}{value:>19}  {origin:<10}"
        words = ("(physics x assumed efficiency)" if origin.endswith("*")
                 else f"({ORIGIN_WORDS.get(origin, '')})")
        lines.append(line + words if len(line) + len(words) <= width else line.rstrip())
    return "\n".join(lines + load_lines(p, width, answers))


def sources_text(p: Plan, width: int = WRAP) -> str:
    return "\n".join(_wrap(f"{label}: [{origin}] {source or 'no source recorded'}", "* ", "  ", width)
                     for label, _v, origin, source in predicted_rows(p))


class AdviceScreen(AdvisorScreen):
    NAME = "advice"
    BINDINGS = [Binding("p", "playbook", "Playbook"), Binding("e", "export", "Export"),
                Binding("r", "recompute", "Recompute"), Binding("escape", "back", "Back")]

    def __init__(self):
        super().__init__()
        # one repaint at a time: the old sections are removed (awaited) before new ones mount
        self._painting = asyncio.Lock()
        self._shown: Recommendation | None = None  # the recommendation on screen

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static("Computing the recommendation...", id="headline", markup=False)
            yield Static("", id="hardware-line", markup=False)
            yield Static("", id="predicted", markup=False)
            yield Vertical(id="sources")
            yield Static("", id="warnings", markup=False)
            yield Static("", id="playbooks", markup=False)
            yield Vertical(id="alternatives")
            yield Vertical(id="trace")

    @property
    def wrap(self) -> int:
        """Columns the text is wrapped at: the screen's width (less the scrollbar), 40 to 116."""
        width = self.size.width or 80
        return max(40, min(width - 6, 116))

    def on_mount(self) -> None:
        self.watch(self.app, "state", self.state_changed, init=False)
        self._wrapped_at = self.wrap

    async def on_resize(self) -> None:
        """A wider or narrower terminal rewraps the plan shown (not only cuts or soft-wraps it)."""
        if self.wrap != getattr(self, "_wrapped_at", None) and self._shown is not None:
            self._wrapped_at = self.wrap
            rec, self._shown = self._shown, None
            await self.show(rec)

    async def state_changed(self, state) -> None:
        if self.is_current:
            await self.present(state)

    async def on_screen_resume(self) -> None:
        await self.present(self.advisor.state)

    async def present(self, state) -> None:
        """The plan for the current inputs; asked for (in a worker) when there is none yet."""
        if state.recommendation is not None:
            if state.recommendation is not self._shown:
                await self.show(state.recommendation)
        elif state.error:
            await self.show_error(state.error)
        else:
            self.query_one("#headline", Static).update("Computing the recommendation...")
            self.advisor.request_recommendation()

    def action_recompute(self) -> None:
        self.advisor.update_state(recommendation=None, error="")
        if not self.is_current:
            self.advisor.request_recommendation()

    async def _clear_sections(self) -> None:
        for wid in ("#sources", "#alternatives", "#trace"):
            await self.query_one(wid, Vertical).remove_children()

    def _set(self, wid: str, text: str) -> None:
        """Update a text section; an empty one takes no room (no stray blank lines)."""
        w = self.query_one(wid, Static)
        w.update(text)
        w.display = bool(text)

    async def show_error(self, msg: str) -> None:
        async with self._painting:
            self.query_one("#headline", Static).update(
                _wrap(f"FAIL {msg}", "", "     ", self.wrap)
                + "\nFix it on the hardware or questions screen (Esc goes back).")
            for wid in ("#hardware-line", "#predicted", "#warnings", "#playbooks"):
                self._set(wid, "")
            await self._clear_sections()
            self._shown = None
            self.query_one("#body", VerticalScroll).scroll_home(animate=False)

    async def show(self, rec: Recommendation) -> None:
        async with self._painting:
            new = rec is not self._shown
            await self._clear_sections()
            await self._show(rec)
            self._shown = rec
            if new:  # a new plan starts at its headline, not where the old one was scrolled to
                self.query_one("#body", VerticalScroll).scroll_home(animate=False)

    async def _show(self, rec: Recommendation) -> None:
        p = rec.recommendation
        hw = rec.hardware
        head = self.query_one("#headline", Static)
        if p is None:
            head.update(f"NO RECOMMENDATION: {rec.no_plan_because or 'nothing can run here for these answers'}.")
            self._set("#predicted", "")
        else:
            head.update(_wrap(headline(p), "RECOMMENDED ", "            ", self.wrap))
            self._set("#predicted", predicted_text(p, self.wrap, rec.answers))
        box = self.query_one("#sources", Vertical)
        if p is not None:
            await box.mount(Collapsible(Static(sources_text(p, self.wrap - 2), markup=False), collapsed=True,
                                        title="Where each figure comes from (sources)"))
        self._set("#hardware-line",
                  f"for {hw.count} x {hw.gpu} ({hw.vram_gb:g} GB, {hw.os}, {hw.source})"
                  + ("; with probe results" if rec.probes else "; no probe (tables)") if hw is not None else "")
        warn = "\n".join(_wrap(w, "WARN ", "     ", self.wrap) for w in rec.warnings)
        self._set("#warnings", warn)
        self._set("#playbooks", ("Playbooks (p): " + "; ".join(f"{pb.id} {pb.title}" for pb in rec.playbooks))
                  if rec.playbooks else "")

        alts = self.query_one("#alternatives", Vertical)
        items = []
        for i, a in enumerate(rec.alternatives, 1):
            title = f"alt {i}: {a.model} on {a.backend} at {a.quantization}"
            if a.lost_because:
                room = self.wrap - len(title) - 3
                first = a.lost_because[0]
                title += ": " + (first if len(first) <= room else first[:max(room - 1, 0)] + "~")
            why = "\n".join(_wrap(w, "- ", "  ", self.wrap - 2) for w in a.lost_because) or "- ranked lower"
            items.append(Collapsible(Static(why, markup=False), title=title, collapsed=True))
        if items:
            await alts.mount(Static(f"Alternatives and why they lost ({len(items)}; Enter expands):",
                                    markup=False))
            await alts.mount_all(items)

        trace = self.query_one("#trace", Vertical)
        if rec.rules_fired:
            lines = []
            for r in rec.rules_fired:
                lines.append(_wrap(f"{r.rule}: {r.because}", "* ", "  ", self.wrap - 2))
                lines.append(_wrap(f"source: {r.source}", "    ", "    ", self.wrap - 2))
            await trace.mount(Collapsible(Static("\n".join(lines), markup=False),
                                          title=f"Trace: {len(rec.rules_fired)} rules fired, each with its source",
                                          collapsed=True, id="trace-box"))

    def action_playbook(self) -> None:
        self.advisor.goto("playbook")

    def action_export(self) -> None:
        self.advisor.goto("export")

    def action_back(self) -> None:
        self.advisor.goto("probe")
