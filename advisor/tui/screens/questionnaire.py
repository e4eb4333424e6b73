"""Screen 2: the questionnaire, four short pages with Back/Next, validated as you type."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.validation import Function, ValidationResult, Validator
from textual.widgets import Button, ContentSwitcher, Input, Label, RadioButton, RadioSet, Select, Static

from advisor.errors import AdvisorError
from advisor.fields import field, on_page
from advisor.tui.base import NEXT, AdvisorScreen, Choice, ChoiceSet
from advisor.tui.fields import FieldInput, field_select, get, put, wid

# Appendix P.1: the risk tiers, with the examples the decision tree gives for each
RISK_EXAMPLES = {
    "high": "medical, legal, financial or safety-critical",
    "moderate": "customer-facing chat, QA pipelines, documents",
    "low": "internal tools, development, prototyping",
}
PAGES = ("page-workload", "page-risk", "page-load", "page-model")
PAGE_TITLES = ("Workload", "Risk tier", "Load and service levels", "Model")
WORKLOADS = field("workload").choices
RISKS = field("risk").choices
# the number fields of the load page and the constraint dropdowns of the model page, from the model
NUMBERS = on_page("load")
CONSTRAINTS = [f for f in on_page("model") if f.widget in ("choice", "backend") and f.table == "constraints"]
# what serves the model today (H.1, moving off Ollama, is for the users on Ollama): its own row
TODAY = field("current_backend")
LABEL_WIDTH = 17
MODEL_SOURCES = (("auto", "let the advisor pick"), ("catalog", "from the catalog"),
                 ("path", "a local HF folder or GGUF file"), ("tag", "an Ollama tag"))


def model_source(name: str, knowledge) -> str:
    """Which of MODEL_SOURCES a saved model name came from, so a reload shows it as it was typed.

    A catalog id is the catalog; an Ollama tag (even one the catalog knows, e.g. llama3.2:1b)
    stays an Ollama tag; a Hugging Face repo id the catalog knows is that catalog model.
    """
    name = name.strip()
    if not name:
        return "auto"
    p = Path(name).expanduser()
    try:
        if p.suffix.lower() == ".gguf" or p.is_dir():
            return "path"
    except (OSError, ValueError):  # a path the OS refuses is still a path the user typed
        return "path"
    try:
        spec = knowledge.model(name)
    except Exception:
        spec = None
    if spec is not None and name.lower() == spec.id.lower():
        return "catalog"
    if ":" in name or (spec is not None and spec.ollama_tag and name.lower() == spec.ollama_tag.lower()):
        return "tag"
    if spec is not None:
        return "catalog"
    return "path" if "/" in name or name.startswith((".", "~")) else "tag"


def allowed_quantizations(knowledge, risk: str) -> set[str]:
    """The quantizations Appendix P.1 allows at this risk tier (knowledge/quantization.toml)."""
    return {q for q, row in knowledge.quant.items() if risk in row.risk_tiers}


def risk_note(knowledge) -> str:
    """What each tier allows, from the same rows the rules read: 'high allows fp16, ...; moderate
    also ...; low also ...; q2_k is never allowed.'"""
    parts: list[str] = []
    seen: set[str] = set()
    for tier in RISKS:
        allowed = allowed_quantizations(knowledge, tier)
        new = [q for q in knowledge.quant if q in allowed - seen]
        if new:
            parts.append(f"{tier} {'allows' if not seen else 'also'} {', '.join(new)}")
        seen |= allowed
    never = [q for q, row in knowledge.quant.items() if not row.risk_tiers]
    return "; ".join(parts) + (f"; {', '.join(never)} {'is' if len(never) == 1 else 'are'} never allowed."
                               if never else ".")


class _LocalModel(Validator):
    def validate(self, value: str) -> ValidationResult:
        from advisor.fields import shorten_path

        p = Path(value.strip()).expanduser()
        shown = repr(shorten_path(p, 40))
        if not value.strip():
            return self.failure("type a path")
        try:
            if p.suffix.lower() == ".gguf":
                return self.success() if p.is_file() else self.failure(f"no GGUF file at {shown}")
            if p.is_dir():
                return self.success() if (p / "config.json").exists() else self.failure("folder has no config.json")
        except (OSError, ValueError) as e:  # too long, no permission, a NUL: the OS's reason
            return self.failure(f"cannot use {shown} ({getattr(e, 'strerror', None) or 'not a usable path'})")
        return self.failure(f"{shown} is neither a folder nor a .gguf file")


class QuestionnaireScreen(AdvisorScreen):
    NAME = "questions"
    BINDINGS = [NEXT, Binding("escape", "back", "Back"), Binding("pagedown", "next", show=False),
                Binding("pageup", "back", show=False)]

    def __init__(self):
        super().__init__()
        self.page = 0
        self.tags: list[str] = []

    def compose_body(self) -> ComposeResult:
        yield Static("", id="page-title", classes="title", markup=False)
        with ContentSwitcher(initial=PAGES[0], id="pages"):
            with Vertical(id="page-workload"):
                yield Static("What will the model mostly do?  (Appendix F; arrows move, Enter chooses)",
                             markup=False)
                with ChoiceSet(id="workload"):
                    for w in WORKLOADS:
                        yield Choice(w, id=f"w-{w}")
                yield Static("", id="workload-profile", markup=False)
            with Vertical(id="page-risk"):
                yield Static("How bad is a wrong answer?  (Appendix P.1 risk tiers)", markup=False)
                with ChoiceSet(id="risk"):
                    for r in RISKS:
                        yield Choice(f"{r:<9} e.g. {RISK_EXAMPLES[r]}", id=f"r-{r}")
                yield Static(risk_note(self.advisor.knowledge), id="risk-note", markup=False)
            with VerticalScroll(id="page-load"):
                for f in NUMBERS:
                    with Horizontal(classes="row"):
                        yield Label(f"{f.title:<{LABEL_WIDTH}}", classes="field")
                        yield FieldInput(f)
                        yield Static(f.ask.help, classes="hint", id=wid(f.path) + "-hint", markup=False)
                yield Static("", id="load-typical", markup=False)
            with Vertical(id="page-model"):
                yield Static("Which model?", markup=False)
                with ChoiceSet(id="model-source", compact=True):
                    for key, label in MODEL_SOURCES:
                        yield Choice(label, id=f"m-{key}")
                yield Select([], id="catalog-model", prompt="pick a catalog model", compact=True)
                yield Input(id="model-path", compact=True, placeholder="/models/qwen2.5-1.5b or model.gguf",
                            validators=[_LocalModel()])
                yield Select([], id="ollama-tag", prompt="pick an Ollama tag", compact=True)
                yield Input(id="ollama-typed", compact=True, placeholder="tag, e.g. llama3.2:1b",
                            validators=[Function(lambda v: bool(v.strip()), "type a tag")])
                yield Static("", id="model-hint", markup=False)
                with Horizontal(classes="row", id="constraints"):
                    for f in CONSTRAINTS:
                        yield Label(f.title, classes="field")
                        yield field_select(f.path, f.default, choices=self._choices(f))
                with Horizontal(classes="row", id="serving-today"):
                    yield Label(TODAY.title, classes="field")
                    yield field_select(TODAY.path, TODAY.default, any_label=TODAY.ask.empty)
        yield Static("", id="q-error", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("< Back", id="back")
            yield Button("Next >", id="next", variant="primary")

    def _choices(self, f, risk: str | None = None, keep: str = "") -> tuple[str, ...]:
        """A dropdown's values: the field's own, or for the backend the knowledge's backends; for the
        quantization only those the risk tier allows (P.1: never q2_k), and `keep`, a value the answers
        already hold, so a saved answer is shown as it is rather than dropped."""
        if f.widget == "backend":
            return ("",) + tuple(self.advisor.knowledge.backends)
        if f.path != "constraints.quantization":
            return f.choices
        allowed = allowed_quantizations(self.advisor.knowledge, risk or self.advisor.answers.risk)
        return tuple(c for c in f.choices if c == "" or c in allowed or c == keep)

    def refresh_quantizations(self) -> None:
        """The quantization dropdown follows the risk tier chosen on the page before."""
        sel = self.query_one("#" + wid("constraints.quantization"), Select)
        current = "" if sel.value is Select.NULL else str(sel.value)
        self.refresh_quantizations_for(current)
        sel.value = current

    # ------------------------------------------------------------ fill from the answers
    def on_mount(self) -> None:
        self.fill()
        self.show_page(0)
        self.load_model_choices()

    def on_screen_resume(self) -> None:
        self.fill()
        self.show_page(self.page)

    def on_screen_suspend(self) -> None:
        self.collect(strict=False)  # leaving by the palette keeps what is valid

    def fill(self) -> None:
        a = self.advisor.answers
        self.query_one(f"#w-{a.workload}", RadioButton).value = True
        self.query_one(f"#r-{a.risk}", RadioButton).value = True
        for f in NUMBERS:
            self.query_one("#" + wid(f.path), Input).value = f.format(get(a, f.path))
        self.refresh_quantizations_for(get(a, "constraints.quantization"))
        for f in CONSTRAINTS:
            self.query_one("#" + wid(f.path), Select).value = get(a, f.path)
        self.query_one("#" + wid(TODAY.path), Select).value = a.current_backend
        self.show_profile(a.workload)
        name = a.model.name.strip()
        source = model_source(name, self.advisor.knowledge)
        if source == "path":
            self.query_one("#model-path", Input).value = name
        elif source == "catalog":
            self._catalog_value = self.advisor.knowledge.model(name).id
        elif source == "tag":
            self.query_one("#ollama-typed", Input).value = name
            if name in self.tags:
                self.query_one("#ollama-tag", Select).value = name
        self.query_one(f"#m-{source}", RadioButton).value = True
        self.show_model_source(source)

    @work(thread=True, exclusive=True, group="models")
    def load_model_choices(self) -> None:
        app = self.advisor
        k = app.knowledge
        catalog = [(f"{m.id}  ({m.params_b:g}B, {m.family})", m.id) for m in k.models.values()]
        app.call_from_thread(self._set_catalog, catalog)
        try:
            tags = list(app.list_ollama_tags())
        except Exception:
            tags = []
        app.call_from_thread(self._set_tags, tags)

    def _set_catalog(self, options) -> None:
        sel = self.query_one("#catalog-model", Select)
        sel.set_options(options)
        want = getattr(self, "_catalog_value", None)
        if want:
            sel.value = want

    def _set_tags(self, tags: list[str]) -> None:
        self.tags = tags
        sel = self.query_one("#ollama-tag", Select)
        sel.set_options([(t, t) for t in tags])
        typed = self.query_one("#ollama-typed", Input).value.strip()
        if typed in tags:
            sel.value = typed
        if self.current_source() == "tag":
            self.show_model_source("tag")

    # ------------------------------------------------------------ live feedback
    def show_profile(self, workload: str, typical_too: bool = True) -> None:
        """The workload's Appendix F profile (for the one under the cursor, as it moves);
        typical_too: also the typical sizes the load page shows (for the chosen one)."""
        row = self.advisor.knowledge.workloads.get(workload)
        text = (f"{row.section} {workload}: {row.profile}.\n"
                f"Typical context {row.typical_context_min:,}-{row.typical_context_max:,} tokens, "
                f"output {row.typical_output_min:,}-{row.typical_output_max:,}.") if row else ""
        self.query_one("#workload-profile", Static).update(text)
        if not typical_too:
            return
        typical = (f"Typical for {workload} ({row.section}): context {row.typical_context_min:,}-"
                   f"{row.typical_context_max:,}, output {row.typical_output_min:,}-"
                   f"{row.typical_output_max:,} tokens.") if row else ""
        self.query_one("#load-typical", Static).update(typical)
        self.show_workload_defaults(row)

    def show_workload_defaults(self, row) -> None:
        """An empty field means the workload's own value: show it greyed in the field itself."""
        defaults = {"output_tokens": row.default_output_tokens, "slo.ttft_ms": row.default_ttft_ms,
                    "slo.p95_latency_s": row.default_p95_latency_s} if row else {}
        for path, value in defaults.items():
            for inp in self.query("#" + wid(path)).results(Input):
                inp.placeholder = f"{value:g} ({row.workload})"

    def current_source(self) -> str:
        for key, _ in MODEL_SOURCES:
            if self.query_one(f"#m-{key}", RadioButton).value:
                return key
        return "auto"

    def show_model_source(self, source: str) -> None:
        self.query_one("#catalog-model").display = source == "catalog"
        self.query_one("#model-path").display = source == "path"
        has_tags = bool(self.tags)
        self.query_one("#ollama-tag").display = source == "tag" and has_tags
        self.query_one("#ollama-typed").display = source == "tag" and not has_tags
        from advisor.tui.sources import ollama_url

        hints = {
            "auto": "The advisor considers every catalog model that fits and passes the quality gates.",
            "catalog": "A model from the catalog (advisor knowledge models lists them with sources).",
            "path": "A Hugging Face model folder (config.json is read, no weights) or a GGUF file.",
            "tag": (f"Tags served by Ollama at {ollama_url()}." if has_tags else
                       f"No Ollama server answered at {ollama_url()}; type the tag."),
        }
        self.query_one("#model-hint", Static).update(hints[source])

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        rid = event.pressed.id or ""
        if event.radio_set.id == "workload":
            self.show_profile(rid.removeprefix("w-"))
        elif event.radio_set.id == "model-source":
            self.query_one("#q-error", Static).update("")  # a complaint about the other source is stale
            self.show_model_source(rid.removeprefix("m-"))

    def on_choice_set_chosen(self, event: ChoiceSet.Chosen) -> None:
        """Enter on a workload or a risk tier chooses it and moves on (space only chooses)."""
        if event.choice_set.id in ("workload", "risk"):
            self.call_after_refresh(self.action_next)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a field moves on, as Next does (and stays, naming the field, if it is refused)."""
        event.stop()
        self.action_next()

    def on_choice_set_highlighted(self, event: ChoiceSet.Highlighted) -> None:
        """Arrowing through the workloads shows each one's profile before it is chosen."""
        if event.choice_set.id == "workload" and event.choice_set.has_focus:
            self.show_profile((event.button.id or "").removeprefix("w-"), typical_too=False)

    def on_descendant_blur(self, event) -> None:
        if getattr(event.widget, "id", "") == "workload":  # leaving the list: the chosen one's profile
            self.show_profile(self._chosen_workload(), typical_too=False)

    def _chosen_risk(self) -> str:
        return next((r for r in RISKS if self.query_one(f"#r-{r}", RadioButton).value), self.advisor.answers.risk)

    def refresh_quantizations_for(self, value: str) -> None:
        """The tier's quantizations, and `value` (the one the answers hold) so it can be shown."""
        f = field("constraints.quantization")
        sel = self.query_one("#" + wid(f.path), Select)
        sel.set_options([(c or "any", c) for c in self._choices(f, risk=self._chosen_risk(), keep=value)])

    def _chosen_workload(self) -> str:
        return next((w for w in WORKLOADS if self.query_one(f"#w-{w}", RadioButton).value), WORKLOADS[0])

    def on_input_changed(self, event: Input.Changed) -> None:
        self._report(event.input, event.validation_result)

    def _report(self, inp: Input, result) -> None:
        hint = self.query("#" + (inp.id or "") + "-hint")
        bad = result is not None and not result.is_valid
        if hint and isinstance(inp, FieldInput):
            hint.first(Static).update(f"WARN {inp.spec.allowed(unit=False)}" if bad else inp.spec.ask.help)
        err = self.query_one("#q-error", Static)
        err.update(f"WARN {'; '.join(result.failure_descriptions)}" if bad and not hint else "")

    # ------------------------------------------------------------ pages
    def show_page(self, page: int) -> None:
        self.page = page
        self.query_one("#pages", ContentSwitcher).current = PAGES[page]
        self.query_one("#page-title", Static).update(
            f"Questions, page {page + 1} of {len(PAGES)}: {PAGE_TITLES[page]}")
        self.query_one("#next", Button).label = "Next: probe >" if page == len(PAGES) - 1 else "Next >"
        self.query_one("#back", Button).label = "< Back: hardware" if page == 0 else "< Back"
        self.query_one("#q-error", Static).update("")
        if page == PAGES.index("page-model"):
            self.refresh_quantizations()
        first = {0: "#workload", 1: "#risk", 2: "#" + wid(NUMBERS[0].path), 3: "#model-source"}[page]
        self.query_one(first).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            self.action_next()
        elif event.button.id == "back":
            self.action_back()

    def action_back(self) -> None:
        if self.page == 0:
            self.collect(strict=False)
            self.advisor.goto("hardware")
        else:
            self.show_page(self.page - 1)

    def action_next(self) -> None:
        if not self.page_valid(self.page):
            return
        if self.page < len(PAGES) - 1:
            self.show_page(self.page + 1)
            return
        if self.collect(strict=True):
            self.advisor.goto("probe")

    def page_valid(self, page: int) -> bool:
        inputs: list[Input] = []
        if page == 2:
            inputs = list(self.query(FieldInput))
        elif page == 3:
            src = self.current_source()
            if src == "catalog" and self.query_one("#catalog-model", Select).is_blank():
                self.query_one("#q-error", Static).update("WARN pick a catalog model (or let the advisor pick)")
                self.query_one("#catalog-model").focus()
                return False
            if src == "path":
                inputs = [self.query_one("#model-path", Input)]
            if src == "tag":
                if self.tags:
                    if self.query_one("#ollama-tag", Select).is_blank():
                        self.query_one("#q-error", Static).update("WARN pick an Ollama tag")
                        return False
                else:
                    inputs = [self.query_one("#ollama-typed", Input)]
        for inp in inputs:
            result = inp.validate(inp.value)
            if result is not None and not result.is_valid:
                self._report(inp, result)
                if isinstance(inp, FieldInput):  # the number pages: the model's one line
                    self.query_one("#q-error", Static).update(f"WARN {inp.problem()}")
                inp.focus()
                return False
        if page == 3:  # a name the advice could not plan for is refused here, where it is typed
            from advisor.answers import check_model_name

            try:
                check_model_name(self.model_name(), self.advisor.knowledge)
            except AdvisorError as e:
                self.query_one("#q-error", Static).update(f"WARN {e}")
                return False
        return True

    def model_name(self) -> str:
        src = self.current_source()
        if src == "catalog":
            v = self.query_one("#catalog-model", Select).value
            return "" if v is Select.NULL else str(v)
        if src == "path":
            return self.query_one("#model-path", Input).value.strip()
        if src == "tag":
            if self.tags:
                v = self.query_one("#ollama-tag", Select).value
                return "" if v is Select.NULL else str(v)
            return self.query_one("#ollama-typed", Input).value.strip()
        return ""

    def collect(self, strict: bool) -> bool:
        """Build Answers from the widgets; keep what is valid when not strict (going back).
        Every answer this screen does not show (hardware, ...) is kept as it was."""
        from advisor.answers import answers_from_dict

        a = self.advisor.answers.model_dump()
        a["workload"] = next(w for w in WORKLOADS if self.query_one(f"#w-{w}", RadioButton).value)
        a["risk"] = next(r for r in RISKS if self.query_one(f"#r-{r}", RadioButton).value)
        for inp in self.query(FieldInput):
            try:
                put(a, inp.spec.path, inp.typed_value())
            except AdvisorError:
                if strict:
                    return False
        for f in (*CONSTRAINTS, TODAY):
            put(a, f.path, str(self.query_one("#" + wid(f.path), Select).value))
        put(a, "model.name", self.model_name())
        try:
            answers = answers_from_dict(a)
        except AdvisorError as e:
            self.query_one("#q-error", Static).update(f"WARN {e}")
            return False
        self.advisor.set_answers(answers)
        return True
