"""Helpers for the TUI tests: read the screen as text, stand-ins for GPUs and probes."""
from __future__ import annotations

import html
import re


_SVG_TEXT = re.compile(r'<text [^>]*?x="([0-9.]+)" y="[0-9.]+" textLength="([0-9.]+)" '
                       r'clip-path="url\(#[^)]*?-line-(\d+)\)">(.*?)</text>', re.S)


def screen_text(app) -> str:
    """The current screen as plain text, as a terminal of the app's size shows it (no colour).

    Read from Textual's public App.export_screenshot() (the SVG a user can save with
    ctrl+s / `textual run --screenshot`): each <text> there names its row (its clip path) and its
    column (x over the width of one cell)."""
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    for x, length, row, text in _SVG_TEXT.findall(app.export_screenshot()):
        text = html.unescape(text).replace("\xa0", " ")
        col = round(float(x) / (float(length) / len(text)))
        line = int(row)
        if line >= height:
            continue
        for i, ch in enumerate(text):
            if 0 <= col + i < width:
                rows[line][col + i] = ch
    return "\n".join("".join(r).rstrip() for r in rows)


async def wait_for_text(pilot, wants, timeout: float = 5.0) -> str:
    """The screen text once every string in wants is on it (or after timeout, as it is)."""
    import time

    end = time.monotonic() + timeout
    while True:
        await pilot.pause(0.02)
        text = screen_text(pilot.app)
        if all(w in text for w in wants) or time.monotonic() > end:
            return text


# ------------------------------------------------------------------ stand-ins
from advisor.domain import (  # noqa: E402
    CurveFit, CurvePoint, GpuDevice, ProbeProgress, ProbeResult, TimingPoint,
)
from advisor.errors import ProbeError  # noqa: E402

CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384)
BASE_MB, SLOPE = 2978.0, 0.35


def no_gpu(knowledge):
    raise ProbeError("NVML: no NVIDIA driver on this machine")


def one_4090(knowledge):
    return [GpuDevice(index=0, name="NVIDIA GeForce RTX 4090", total_gb=24.0, free_gb=21.5, used_gb=2.5,
                      other_processes_gb=1.5, driver="550.54", cuda="12.4", catalog_name="RTX 4090")]


def two_4090(knowledge):
    """Two of the same GPU, as NVML lists them on a two-card box."""
    one = one_4090(knowledge)[0]
    return [one, one.model_copy(update={"index": 1})]


def no_tags():
    return []


class StandInProbe:
    """run_probe's signature; emits the steps and curve points a transformers probe would.

    `delay` paces the steps; `gate` (a threading.Event), when given, holds the probe after
    its first curve point until set, so a test can look at a half-finished probe or cancel it.
    """

    def __init__(self, delay: float = 0.0, gate=None, fail: str | None = None):
        self.delay, self.gate, self.fail = delay, gate, fail
        self.calls = []

    def __call__(self, model, backend="transformers", url=None, fresh=False, attention="sdpa",
                 dtype="float16", contexts=None, progress=None, cancel=None, knowledge=None):
        import time

        self.calls.append(dict(model=model, backend=backend, attention=attention, url=url))
        emit = progress or (lambda p: None)
        emit(ProbeProgress(step="load", fraction=0.05, message=f"loading {model}"))
        if self.fail:
            raise ProbeError(self.fail)
        time.sleep(self.delay)
        emit(ProbeProgress(step="load", fraction=0.2, message=f"base {BASE_MB:,.0f} MB"))
        points = []
        for i, n in enumerate(CONTEXTS):
            if cancel is not None and cancel.is_set():
                raise ProbeError("probe cancelled")
            if n > 8192:
                pt = CurvePoint(context_tokens=n, status="skipped", predicted_mb=BASE_MB + SLOPE * n,
                                note="would not fit the safe budget")
            else:
                pt = CurvePoint(context_tokens=n, peak_mb=BASE_MB + SLOPE * n,
                                full_logits_peak_mb=BASE_MB + 0.9 * n)
            points.append(pt)
            emit(ProbeProgress(step="curve", fraction=0.2 + 0.5 * (i + 1) / len(CONTEXTS),
                               message=f"{n:,} tokens", point=pt))
            if i == 0 and self.gate is not None:
                self.gate.wait(10)
            time.sleep(self.delay)
        if cancel is not None and cancel.is_set():
            raise ProbeError("probe cancelled")
        emit(ProbeProgress(step="ttft", fraction=0.85, message="TTFT at 2,048"))
        emit(ProbeProgress(step="decode", fraction=0.95, message="decode 128 tokens"))
        emit(ProbeProgress(step="done", fraction=1.0, message="done"))
        return ProbeResult(
            backend=backend, model=model, gpu="NVIDIA GeForce RTX 4090", attention=attention, dtype=dtype,
            base_vram_mb=BASE_MB, curve=points,
            fit=CurveFit(kind="linear", base_mb=BASE_MB, linear_mb_per_token=SLOPE),
            kv_bytes_per_token=28672.0,
            ttft=[TimingPoint(context_tokens=2048, ttft_ms=41.0, repetitions=5, rep0_ms=44.0)],
            decode_tok_s=88.0, measured_at="2025-01-01T00:00:00Z", duration_s=12.5,
        )


class StandInSnippet:
    def __init__(self, target, files, notes):
        self.target, self.files, self.notes = target, files, notes


def stand_in_export(rec, target):
    """advisor.export.export's signature; renders the plan's headline fields verbatim."""
    p = rec.recommendation
    if target == "vllm":
        files = {"serve.sh": f"vllm serve {p.model} --max-model-len {p.max_context_tokens} "
                             f"--max-num-seqs {p.concurrency}\n"}
    else:
        files = {f"{target}.conf": f"model = {p.model}\nquantization = {p.quantization}\n",
                 "README.txt": f"{target} for {p.model}\n"}
    return StandInSnippet(target, files, [f"{target}: stand-in snippet"])


# ------------------------------------------------------------------ snapshots
import os  # noqa: E402
import difflib  # noqa: E402
from pathlib import Path  # noqa: E402

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("ADVISOR_UPDATE_SNAPSHOTS") == "1"


def check_snapshot(name: str, text: str) -> None:
    """Compare with tests/tui/snapshots/NAME.txt; ADVISOR_UPDATE_SNAPSHOTS=1 rewrites it."""
    path = SNAPSHOTS / f"{name}.txt"
    if UPDATE or not path.exists():
        if not UPDATE:
            raise AssertionError(f"no golden file {path}; run with ADVISOR_UPDATE_SNAPSHOTS=1, then review it")
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        return
    want = path.read_text(encoding="utf-8").rstrip("\n")
    if want != text:
        diff = "\n".join(difflib.unified_diff(want.splitlines(), text.splitlines(), "golden", "now",
                                              lineterm=""))
        raise AssertionError(f"screen {name} differs from {path} "
                             f"(ADVISOR_UPDATE_SNAPSHOTS=1 to accept, after review):\n{diff}")


async def settle(pilot, rounds: int = 3) -> None:
    """Let workers finish and the screen repaint."""
    from textual.worker import WorkerCancelled

    for _ in range(rounds):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:  # an exclusive worker replaced by a newer one
            pass
        await pilot.pause(0.05)


async def run_probe_page(pilot) -> str:
    """Ctrl+R on a settled probe page: the screen's text once the probe has finished."""
    await settle(pilot)
    await pilot.press("ctrl+r")
    await settle(pilot)
    return screen_text(pilot.app)


async def to_load_page(pilot) -> None:
    """From the first page of the questions, once settled, to page 3 (load: concurrency, SLOs)."""
    await settle(pilot)
    await pilot.press("ctrl+n", "ctrl+n")


async def clear_field(pilot, widget_id: str):
    """Focus the input `#widget_id` and empty it (End, Ctrl+U); returns the widget."""
    field = pilot.app.screen.query_one("#" + widget_id)
    field.focus()
    await pilot.press("end", "ctrl+u")
    return field


async def type_into(pilot, widget_id: str, text: str) -> None:
    """Type `text` into the emptied input `#widget_id`, key by key."""
    await clear_field(pilot, widget_id)
    await pilot.press(*list(text))
    await pilot.pause(0.05)


# ------------------------------------------------------------------ answers
def every_field_changed():
    """Answers in which every field the model defines (advisor.fields, not a hand list) differs
    from its default; names that must exist are catalog names."""
    from advisor.answers import answers_from_dict
    from advisor.fields import answer_fields

    data: dict = {}
    names = {"gpu": "RTX 4090", "model": "llama3.2-1b", "backend": "vllm"}
    for f in answer_fields():
        if f.widget in names:
            value = names[f.widget]
        elif f.kind == "choice":
            value = next(c for c in reversed(f.choices) if c != f.default)
        elif f.kind in ("int", "float"):
            base = f.default if f.default is not None else (f.ge or 0) + 7
            value = base + 1 if f.kind == "int" else base + 1.5
        else:
            raise AssertionError(f"no changed value for {f.path} ({f.kind})")
        assert value != f.default, f.path
        cur = data
        parts = f.path.split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = value
    return answers_from_dict(data)
