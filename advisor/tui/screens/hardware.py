"""Screen 1: the GPUs we plan for — detected with NVML, or picked from the catalog."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.validation import Integer, Number
from textual.widgets import Button, DataTable, Input, Label, RadioButton, RadioSet, Select, Static

from advisor.domain import Answers, GpuDevice, Hardware, HardwareAnswers
from advisor.tui.base import NEXT, AdvisorScreen, Choice, ChoiceSet
from advisor.tui.sources import tui_words


# what each number field allows, said in words when its value is refused
ALLOWED = {"gpus": "GPUs: a whole number 1-64", "background": "other tenants GB: 0 or more"}


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
            with Horizontal(classes="row"):
                yield Label("GPUs", classes="field")
                yield Input("1", id="gpus", compact=True, validators=[Integer(1, 64)], classes="num")
                yield Label("other tenants GB", classes="field")
                yield Input("0", id="background", compact=True, validators=[Number(0, 4096)], classes="num")
                yield Label("OS", classes="field")
                yield Select([("linux", "linux"), ("windows", "windows")], value="linux", id="os",
                             allow_blank=False, compact=True)
            yield Static("", id="hw-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Next: questions >", id="next", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#devices", Static).display = False
        self.query_one("#catalog", DataTable).display = False
        self.query_one("#target", RadioSet).display = False
        hw = self.advisor.answers.hardware
        self.query_one("#gpus", Input).value = str(hw.gpus)
        self.query_one("#background", Input).value = f"{hw.background_vram_gb:g}"
        self.query_one("#os", Select).value = hw.os
        self.detect()

    @work(thread=True, exclusive=True, group="detect")
    def detect(self) -> None:
        app = self.advisor
        k = app.knowledge  # the catalog; loaded here, off the first paint
        try:
            devices = list(app.detect_gpus(k))
            error = "" if devices else "NVML reports no GPU"
        except Exception as e:  # ProbeError, or a broken NVML install: one line
            devices, error = [], tui_words(str(e).splitlines()[0]) if str(e) else e.__class__.__name__
        app.call_from_thread(self.show_detection, devices, error)

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
            table.update("\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                                    for r in rows))
            table.display = True
            others = max((d.other_processes_gb or 0.0) for d in devices)
            if others and self.advisor.answers.hardware.background_vram_gb == 0:
                self.query_one("#background", Input).value = f"{others:.1f}"
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
        if use_catalog:
            catalog.focus()
        else:
            self.query_one("#next", Button).focus()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set.id == "target":
            self.query_one("#catalog", DataTable).display = event.pressed.id == "use-catalog"
            self.show_picked()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_picked()

    def picked_gpu(self) -> str:
        table = self.query_one("#catalog", DataTable)
        if not table.row_count:
            return ""
        return str(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)

    def show_picked(self) -> None:
        """The choice in words (the table's cursor alone is only a colour)."""
        picked = self.query_one("#picked", Static)
        if not self.detected:
            return
        if self._use_catalog():
            name = self.picked_gpu()
            spec = self.advisor.knowledge.gpu(name) if name else None
            picked.update(f"Plan for: {name} ({spec.vram_gb:g} GB)   (arrows move, ctrl+n next)"
                          if spec else "Plan for: pick a GPU with the arrows")
        else:
            d = self.devices[0]
            picked.update(f"Plan for: this machine, {d.name} ({d.total_gb:.1f} GB)")

    def on_input_changed(self, event: Input.Changed) -> None:
        r = event.validation_result
        err = self.query_one("#hw-error", Static)
        err.update(f"WARN {ALLOWED[event.input.id]}" if r is not None and not r.is_valid else "")

    def first_invalid(self) -> Input | None:
        for wid in ALLOWED:
            inp = self.query_one(f"#{wid}", Input)
            r = inp.validate(inp.value)
            if r is not None and not r.is_valid:
                return inp
        return None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            self.action_next()

    def _use_catalog(self) -> bool:
        return not self.devices or self.query_one("#use-catalog", RadioButton).value

    def apply(self) -> bool:
        """Write the choice into the app's answers (and hardware); False if something is invalid."""
        app = self.advisor
        err = self.query_one("#hw-error", Static)
        if not self.detected:
            err.update("WARN still detecting GPUs; a moment")
            return False
        bad = self.first_invalid()
        if bad is not None:
            err.update(f"WARN {ALLOWED[bad.id]}")
            return False
        try:
            gpus = int(self.query_one("#gpus", Input).value)
            background = float(self.query_one("#background", Input).value)
            os_ = str(self.query_one("#os", Select).value)
            if self._use_catalog():
                hw = HardwareAnswers(gpu=self.picked_gpu(), gpus=gpus, background_vram_gb=background, os=os_)
                hardware = None
            else:
                hw = HardwareAnswers(gpu="auto", gpus=gpus, background_vram_gb=background, os=os_)
                hardware = self._detected_hardware(hw)
            answers = Answers.model_validate({**app.answers.model_dump(), "hardware": hw.model_dump()})
        except Exception as e:
            err.update(f"WARN {str(e).splitlines()[0]}")
            return False
        app.set_answers(answers)
        app.set_hardware(hardware)
        return True

    def _detected_hardware(self, hw: HardwareAnswers) -> Hardware:
        k = self.advisor.knowledge
        first = self.devices[0]
        spec = k.match_gpu(first.name)
        if spec is None:
            raise ValueError(f"{first.name!r} is not in the GPU catalog; pick a catalog GPU instead")
        same = [d for d in self.devices if d.name == first.name][: hw.gpus]
        bg = max(hw.background_vram_gb, first.other_processes_gb or 0.0)
        return Hardware(source="nvml", devices=same, spec=spec, os=hw.os,
                        note=f"detected {len(same)} x {first.name}; {bg:.1f} GB used by other processes")

    def on_screen_suspend(self) -> None:
        # leaving by the palette (or a dialog opening) still records a valid choice
        if self.detected and not self.app._exit:
            self.apply()

    def action_next(self) -> None:
        if self.apply():
            self.advisor.goto("questions")
        elif (bad := self.first_invalid()) is not None:
            bad.focus()
