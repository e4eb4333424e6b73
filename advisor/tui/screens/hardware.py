"""Screen 1: the GPUs we plan for — detected with NVML, or picked from the catalog."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.coordinate import Coordinate
from textual.widgets import Button, DataTable, Input, Label, RadioButton, RadioSet, Select, Static

from advisor.domain import GpuDevice
from advisor.errors import AdvisorError
from advisor.fields import field, on_page
from advisor.tui.base import NEXT, AdvisorScreen, Choice, ChoiceSet
from advisor.tui.fields import FieldInput, field_select, get, put, wid
from advisor.tui.sources import tui_words

# the hardware answers this screen asks besides the GPU itself (from the model's fields)
NUMBERS = [f for f in on_page("hardware") if f.widget == "number"]


def _gb(v: float | None) -> str:
    return "?" if v is None else f"{v:.1f} GB"


class HardwareScreen(AdvisorScreen):
    NAME = "hardware"
    BINDINGS = [NEXT]

    def __init__(self):
        super().__init__()
        self.devices: list[GpuDevice] = []
        self.detect_error = ""
        self.detected = False

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static("Hardware: which GPUs do we plan for?", classes="title")
            yield Static("Detecting GPUs with NVML...", id="detect-status", markup=False)
            yield Static("", id="devices", markup=False)
            with ChoiceSet(id="target", compact=True):
                yield Choice("this machine's GPUs", id="use-detected")
                yield Choice("a GPU from the catalog (plan for another machine)", id="use-catalog")
            yield DataTable(id="catalog", cursor_type="row")
            yield Static("", id="picked", markup=False)
            hw = self.advisor.answers
            for pair in (NUMBERS[:2], NUMBERS[2:]):
                with Horizontal(classes="row"):
                    for f in pair:
                        yield Label(f.title, classes="field")
                        yield FieldInput(f, get(hw, f.path), prefix="hw-")
                    if f is NUMBERS[-1]:
                        yield Label(field("hardware.os").title, classes="field")
                        yield field_select("hardware.os", hw.hardware.os, prefix="hw-")
            yield Static("", id="hw-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Next: questions >", id="next", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#devices", Static).display = False
        self.query_one("#catalog", DataTable).display = False
        self.query_one("#target", RadioSet).display = False
        self.watch(self.app, "state", self.state_changed)
        self.advisor.request_detection()

    def state_changed(self, state) -> None:
        """NVML's answer arrives in the shared state: shown once. (This screen is the only one
        that writes the hardware answers, so its fields are what the state holds.)"""
        if state.detected is not None and not self.detected:
            self.show_detection(list(state.detected), tui_words(state.detect_error))

    def show_detection(self, devices: list[GpuDevice], error: str) -> None:
        self.devices, self.detect_error, self.detected = devices, error, True
        k = self.advisor.knowledge
        status = self.query_one("#detect-status", Static)
        table = self.query_one("#devices", Static)
        if devices:
            first = devices[0]
            spec = k.match_gpu(first.name)
            match = f"catalog: {spec.name}" if spec else "WARN not in the catalog"
            status.update(f"OK detected {len(devices)} GPU(s); {match}")
            rows = [(" #", "GPU", "total", "used", "free", "other tenants")]
            rows += [(f"{d.index:>2}", d.name[:28], _gb(d.total_gb), _gb(d.used_gb), _gb(d.free_gb),
                      _gb(d.other_processes_gb)) for d in devices]
            widths = [max(len(r[c]) for r in rows) for c in range(6)]
            table.update("\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                                    for r in rows))
            table.display = True
        else:
            status.update(f"WARN no GPU here ({error}). Plan for a GPU from the catalog:")
        catalog = self.query_one("#catalog", DataTable)
        catalog.add_columns("GPU", "VRAM", "bandwidth", "FP16 dense", "architecture")
        for g in k.gpus:
            catalog.add_row(g.name, f"{g.vram_gb:g} GB", f"{g.bandwidth_gb_s:g} GB/s",
                            f"{g.fp16_tflops:g} TFLOP/s", g.architecture, key=g.name)
        want = self.advisor.answers.hardware.gpu
        use_catalog = not devices or want.strip().lower() != "auto"
        if want.strip().lower() != "auto":
            try:
                catalog.move_cursor(row=catalog.get_row_index(k.gpu(want).name))
            except Exception:
                pass
        target = self.query_one("#target", RadioSet)
        target.display = bool(devices)
        self.query_one("#use-detected", RadioButton).disabled = not devices
        self.query_one("#use-catalog" if use_catalog else "#use-detected", RadioButton).value = True
        catalog.display = use_catalog
        self.show_picked()
        self.show_placeholders()
        if use_catalog:
            catalog.focus()
        else:
            self.query_one("#next", Button).focus()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set.id == "target":
            self.query_one("#catalog", DataTable).display = event.pressed.id == "use-catalog"
            self.show_picked()
            self.show_placeholders()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_picked()
        self.show_placeholders()

    def show_placeholders(self) -> None:
        """What an empty GPUs / VRAM field means for the GPUs chosen now."""
        gpus = self.query_one("#" + wid("hardware.gpus", "hw-"), Input)
        vram = self.query_one("#" + wid("hardware.vram_gb", "hw-"), Input)
        if self._use_catalog():
            spec = self.advisor.knowledge.gpu(self.picked_gpu()) if self.picked_gpu() else None
            gpus.placeholder = "1"
            vram.placeholder = f"{spec.vram_gb:g} catalog" if spec else "catalog"
        else:
            gpus.placeholder = "all"
            vram.placeholder = f"{self.devices[0].total_gb:.1f} NVML"

    def picked_gpu(self) -> str:
        table = self.query_one("#catalog", DataTable)
        if not table.row_count:
            return ""
        return str(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value)

    def show_picked(self) -> None:
        """The choice in words (the table's cursor alone is only a colour)."""
        picked = self.query_one("#picked", Static)
        if not self.detected:
            return
        if self._use_catalog():
            name = self.picked_gpu()
            spec = self.advisor.knowledge.gpu(name) if name else None
            vram = self.typed("hardware.vram_gb") or (spec.vram_gb if spec else 0)
            picked.update(f"Plan for: {name} ({vram:g} GB)   (arrows move, ctrl+n next)"
                          if spec else "Plan for: pick a GPU with the arrows")
        else:
            d = self.devices[0]
            # the plan counts the larger of this and the other tenants answer (as the CLI does)
            seen = max((x.other_processes_gb or 0.0) for x in self.devices)
            others = f", {seen:.1f} GB other tenants" if seen else ""
            picked.update(f"Plan for: this machine, {d.name} ({d.total_gb:.1f} GB{others})")

    def typed(self, path: str):
        """A field's value as typed here; None when empty or not (yet) allowed."""
        inp = self.query_one("#" + wid(path, "hw-"), FieldInput)
        return None if inp.problem() else inp.typed_value()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show_picked()
        r = event.validation_result
        err = self.query_one("#hw-error", Static)
        err.update(f"WARN {'; '.join(r.failure_descriptions)}" if r is not None and not r.is_valid else "")

    def first_invalid(self) -> FieldInput | None:
        return next((inp for inp in self.query(FieldInput) if inp.problem()), None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a field moves on, as Next does."""
        event.stop()
        self.action_next()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a catalog GPU plans for it and moves on."""
        self.action_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            self.action_next()

    def _use_catalog(self) -> bool:
        return not self.devices or self.query_one("#use-catalog", RadioButton).value

    def apply(self) -> bool:
        """Write the choice into the app's answers; False (and one line on screen) if something
        is invalid or the answers name GPUs this plan cannot have. Every hardware answer the
        screen does not show is kept as it was."""
        app = self.advisor
        err = self.query_one("#hw-error", Static)
        if not self.detected:
            err.update("WARN still detecting GPUs; a moment")
            return False
        bad = self.first_invalid()
        if bad is not None:
            err.update(f"WARN {bad.problem()}")
            return False
        data = app.answers.model_dump()
        for inp in self.query(FieldInput):
            put(data, inp.spec.path, inp.typed_value())
        put(data, "hardware.os", str(self.query_one("#" + wid("hardware.os", "hw-"), Select).value))
        put(data, "hardware.gpu", self.picked_gpu() if self._use_catalog() else "auto")
        try:
            from advisor.answers import answers_from_dict
            from advisor.hardware import resolve_hardware

            answers = answers_from_dict(data)
            resolve_hardware(answers, app.knowledge, detected=self.devices)  # the resolver the advice uses
        except AdvisorError as e:
            err.update(f"WARN {e}")
            return False
        app.set_answers(answers)
        return True

    def on_screen_suspend(self) -> None:
        # leaving by the palette (or a dialog opening) still records a valid choice
        if self.detected and not self.app._exit:
            self.apply()

    def action_next(self) -> None:
        if self.apply():
            self.advisor.goto("questions")
        elif (bad := self.first_invalid()) is not None:
            bad.focus()
