"""Keyboard reach (palette to every screen, Ctrl+Q from anywhere), probe cancel and failure,
the text plot, and the real exporters when they are installed."""

import threading

import pytest
from helpers import StandInProbe, one_4090, run_probe_page, screen_text, settle
from textual.widgets import Input

from advisor.domain import CurveFit, CurvePoint
from advisor.tui.base import STEPS
from advisor.tui.plot import render_plot, safe_budget_mb


@pytest.mark.parametrize("index,name", [(i, n) for i, (n, _) in enumerate(STEPS, 1)])
def test_command_palette_reaches_every_screen(index, name, make_app, run):
    app = make_app()
    start = "playbook" if name == "hardware" else "hardware"
    app.start = start

    async def go(pilot):
        await pilot.press("ctrl+p")
        await pilot.pause(0.1)
        await pilot.press(*list(f"Go to {index}"))
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.NAME == name
        assert f"[{index} {dict(STEPS)[name]}]" in screen_text(app).splitlines()[0]

    run(app, go)


@pytest.mark.parametrize("where", ["hardware", "questions-input", "probe-input", "advice", "dialog"])
def test_ctrl_q_quits_from_anywhere(where, make_app, run):
    app = make_app()

    async def go(pilot):
        if where == "questions-input":
            app.goto("questions")
            await settle(pilot)
            await pilot.press("ctrl+n", "ctrl+n")  # page 3, an Input has focus
            assert isinstance(app.focused, Input)
        elif where == "probe-input":
            app.goto("probe")
            await settle(pilot)
            app.screen.query_one("#probe-model").focus()
        elif where == "advice":
            app.goto("advice")
            await settle(pilot)
        elif where == "dialog":
            app.action_save_answers()
            await pilot.pause(0.1)
            assert app.screen.__class__.__name__ == "PathDialog"
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        assert app._exit

    run(app, go)


def test_probe_cancel_uses_nothing(make_app, run):
    gate = threading.Event()
    app = make_app(detect_gpus=one_4090, run_probe=StandInProbe(gate=gate))

    async def go(pilot):
        app.goto("probe")
        await settle(pilot)
        await pilot.press("ctrl+r")
        for _ in range(50):  # until the first curve point is on the plot
            await pilot.pause(0.02)
            if app.screen.points:
                break
        text = screen_text(app)
        assert "Running: qwen2.5-1.5b on transformers" in text
        assert "OK done" in text  # the load step finished; its bar is full
        assert "*" in text.split("peak VRAM vs context")[1]  # the live point
        await pilot.press("ctrl+x")
        gate.set()
        await settle(pilot)
        text = screen_text(app)
        assert "Cancelled: nothing measured is used" in text
        assert app.probe_results == []

    run(app, go)


def test_probe_failure_is_one_line(make_app, run):
    app = make_app(run_probe=StandInProbe(fail="no CUDA device: torch.cuda.is_available() is False"))

    async def go(pilot):
        app.goto("probe")
        text = await run_probe_page(pilot)
        assert "FAIL no CUDA device: torch.cuda.is_available() is False" in text
        assert "Traceback" not in text
        assert app.probe_results == []

    run(app, go)


def test_probe_backend_choice_reaches_the_runner(make_app, run):
    probe = StandInProbe()
    app = make_app(run_probe=probe)

    async def go(pilot):
        app.goto("probe")
        await settle(pilot)
        app.screen.query_one("#probe-backend").value = "ollama"
        await settle(pilot)
        assert "server URL" in screen_text(app)
        assert "ollama" in screen_text(app)  # its single step row
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert probe.calls[-1]["backend"] == "ollama"
        assert probe.calls[-1]["url"].startswith("http")

    run(app, go)


def test_plot_marks_and_lines():
    pts = [CurvePoint(context_tokens=n, peak_mb=1000 + n * 0.5) for n in (512, 2048, 8192)]
    pts.append(CurvePoint(context_tokens=32768, status="oom"))
    text = render_plot(pts, ceiling_mb=12288, safe_mb=safe_budget_mb(12288, 0, 1000),
                       fit=CurveFit(kind="linear", base_mb=1000, linear_mb_per_token=0.5), width=60, height=9)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert any(line.startswith(" 12.0G|===") for line in lines)
    safe = safe_budget_mb(12288, 0, 1000)
    assert abs(safe - (1000 + 0.8 * 11288)) < 1e-6
    assert any(line.startswith(f"{safe / 1024:>5.1f}G|") and "-" in line for line in lines)
    assert text.count("*") == 3 and text.count("x") == 1
    assert lines[-1].split() == ["512", "2K", "8K", "32K"]
    assert safe_budget_mb(10000, 2000) == pytest.approx(6400)


def test_real_exporters_render_on_the_export_screen(make_app, run):
    export = pytest.importorskip("advisor.export")
    if not hasattr(export, "export") or not hasattr(export, "render_text"):
        pytest.skip("advisor.export has no export()/render_text() yet")
    from advisor.domain import Answers, HardwareAnswers, ModelAnswers

    answers = Answers(workload="chat", concurrency=1, hardware=HardwareAnswers(gpu="RTX 4090"),
                      model=ModelAnswers(name="qwen2.5-1.5b"))
    app = make_app(answers, export=export.export, render_snippet=export.render_text, start="export")

    async def go(pilot):
        await settle(pilot, rounds=5)
        screen = app.screen
        assert screen.text, screen_text(app)
        assert screen.text == export.render_text(export.export(app.recommendation, screen.target))
        assert "FAIL" not in screen_text(app)

    run(app, go)


def test_model_page_offers_ollama_tags_and_checks_local_paths(make_app, run, tmp_path):
    app = make_app(list_ollama_tags=lambda: ["llama3.2:1b", "qwen2.5:1.5b"], start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        assert "page 4 of 4" in screen_text(app)
        await pilot.press("down", "down", "enter")  # a local path
        await pilot.press("tab", *list(str(tmp_path / "nothing.gguf")))
        assert "WARN no GGUF file at" in screen_text(app)  # judged as you type
        await pilot.press("ctrl+n")
        assert app.screen.NAME == "questions" and "page 4 of 4" in screen_text(app)  # Next refused
        app.screen.query_one("#model-source").focus()
        await pilot.press("down", "enter")  # an Ollama tag: the server's list
        await pilot.pause(0.05)
        assert "Tags served by Ollama at http" in screen_text(app)
        app.screen.query_one("#ollama-tag").value = "llama3.2:1b"
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.answers.model.name == "llama3.2:1b"
        assert app.screen.NAME == "probe"

    run(app, go)


def test_ctrl_q_during_a_probe_asks_it_to_stop(make_app, run):
    gate = threading.Event()
    app = make_app(run_probe=StandInProbe(gate=gate))

    async def go(pilot):
        app.goto("probe")
        await settle(pilot)
        screen = app.screen
        await pilot.press("ctrl+r")
        for _ in range(50):
            await pilot.pause(0.02)
            if screen.points:
                break
        await pilot.press("ctrl+q")
        assert screen.cancel_event.is_set()
        gate.set()

    run(app, go)


def test_probe_before_any_gpu_is_chosen_draws_no_made_up_ceiling(make_app, run):
    """gpu = auto and nothing detected yet: the plot has no VRAM line to draw, and says where to pick one."""
    app = make_app()
    app.start = "probe"

    async def go(pilot):
        text = await run_probe_page(pilot)
        assert "no ceiling: choose the GPU on 1 Hardware" in text
        assert "|=====" not in text and "safe budget 1" not in text and "ceiling 2" not in text
        assert "*" in text  # the measured points are still drawn

    run(app, go)


def test_plot_without_a_ceiling_scales_to_the_points():
    pts = [CurvePoint(context_tokens=n, peak_mb=1000 + n * 0.5) for n in (512, 2048, 8192)]
    text = render_plot(pts, ceiling_mb=None, width=60, height=9)
    lines = text.splitlines()
    assert "=" not in text and text.count("*") == 3
    assert lines[0].startswith("  5.0G|") or any(line.lstrip().startswith("5.0G|") for line in lines)
