"""Going back and forth as a user does: change an answer after seeing the advice, come back,
recompute; reload saved answers of every model source. Each step must show the new state,
never a traceback."""

import asyncio

import pytest
from helpers import run_probe_page, screen_text, settle, to_load_page, type_into

from advisor.domain import Answers, HardwareAnswers, ModelAnswers


async def advice_bottom(pilot) -> str:
    """The advice screen scrolled to its end, where the alternatives and the trace are."""
    pilot.app.screen.query_one("#body").scroll_end(animate=False)
    await pilot.pause(0.1)
    return screen_text(pilot.app)


def test_advice_shows_the_new_plan_after_the_hardware_changes(make_app, run):
    answers = Answers(workload="chat", hardware=HardwareAnswers(gpu="RTX 4090"),
                      model=ModelAnswers(name="llama3.2-1b"))
    app = make_app(answers, start="advice")

    async def go(pilot):
        await settle(pilot)
        text = screen_text(app)
        assert "RECOMMENDED llama3.2-1b" in text and "(24 GB, linux, catalog)" in text
        assert app.recommendation.rules_fired
        assert (await advice_bottom(pilot)).count("Trace:") == 1
        await pilot.press("r")  # recompute on the spot: the sections are replaced, not doubled
        await settle(pilot)
        assert app.is_running
        assert (await advice_bottom(pilot)).count("Trace:") == 1
        # back to the hardware screen, pick another GPU, and return by the palette
        app.goto("hardware")
        await settle(pilot)
        await pilot.press(*["up"] * 5)  # from RTX 4090 to the first row: RTX 2060, 6 GB
        assert "Plan for: RTX 2060 (6 GB)" in screen_text(app)
        await pilot.press("ctrl+p")
        await pilot.pause(0.1)
        await pilot.press(*list("Go to 4"))
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, rounds=5)
        assert app.is_running and app.screen.NAME == "advice"
        text = screen_text(app)
        assert "for 1 x RTX 2060 (6 GB, linux, catalog)" in text, text
        assert "Traceback" not in text
        assert (await advice_bottom(pilot)).count("Trace:") == 1

    run(app, go)


def test_hardware_refuses_a_bad_number_in_words(make_app, run):
    app = make_app()

    async def go(pilot):
        await settle(pilot)
        app.screen.query_one("#hw-hardware-gpus").focus()
        await pilot.press("end", "ctrl+u", "x")
        refused = "WARN GPUs: x is not a whole number from 1 to 64, or empty"
        assert refused in screen_text(app)  # as you type
        await pilot.press("ctrl+n")
        text = screen_text(app)
        assert app.screen.NAME == "hardware"
        assert refused in text
        assert "invalid literal" not in text and "int()" not in text
        app.screen.query_one("#hw-hardware-gpus").focus()
        await pilot.press("ctrl+u", "2")
        app.screen.query_one("#hw-hardware-background-vram-gb").focus()
        await pilot.press("ctrl+u", "-", "3")
        assert "WARN other tenants GB: -3 is not a number from 0 to 2,048" in screen_text(app)
        await pilot.press("ctrl+n")
        assert app.screen.NAME == "hardware" and app.focused.id == "hw-hardware-background-vram-gb"
        await pilot.press("ctrl+u", "3")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.screen.NAME == "questions"
        assert (app.answers.hardware.gpus, app.answers.hardware.background_vram_gb) == (2, 3.0)

    run(app, go)


def test_workload_cursor_is_marked_and_shows_each_profile(make_app, run):
    app = make_app(start="questions")

    async def go(pilot):
        await settle(pilot)
        text = screen_text(app)
        assert "> (*) chat" in text and "F.3 chat:" in text
        await pilot.press("down")  # the cursor moves; the choice does not
        text = screen_text(app)
        assert "> ( ) balanced" in text and "  (*) chat" in text
        assert "F.4 balanced: Equal prompt and generation" in text
        await pilot.press("tab")  # leaving the list: the chosen workload's profile again
        text = screen_text(app)
        assert ">" not in text.split("Workload")[1].split("F.3")[0] and "F.3 chat:" in text
        await pilot.press("shift+tab", "space")  # back in the list, the cursor is where it was
        assert "> (*) balanced" in screen_text(app)
        await pilot.press("enter")  # Enter chooses and moves on to the risk tier
        await pilot.pause(0.05)
        assert "page 2 of 4: Risk tier" in screen_text(app)
        await pilot.press("ctrl+n")
        assert "Typical for balanced (F.4)" in screen_text(app)

    run(app, go)


def test_load_page_names_the_refused_field_by_its_label(make_app, run):
    app = make_app(start="questions")

    async def go(pilot):
        await to_load_page(pilot)
        await type_into(pilot, "q-slo-ttft-ms", "-5")
        await pilot.press("ctrl+n")
        text = screen_text(app)
        assert "page 3 of 4" in text
        assert "WARN TTFT target ms: -5 is not a number from 1 to 3,600,000" in text

    run(app, go)


def test_switching_model_source_drops_the_other_sources_complaint(make_app, run, tmp_path):
    app = make_app(start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        await pilot.press("down", "down", "enter", "tab", *list(str(tmp_path / "nothing.gguf")))
        assert "WARN no GGUF file at" in screen_text(app)
        app.screen.query_one("#model-source").focus()
        await pilot.press("down", "enter")  # an Ollama tag
        await pilot.pause(0.05)
        text = screen_text(app)
        assert "(*) an Ollama tag" in text and "GGUF" not in text.split("type the tag.")[1]

    run(app, go)


def test_reload_keeps_each_model_source_as_saved(make_app, run, tmp_path):
    from advisor.answers import load_answers, save_answers

    cases = {"llama3.2:1b": "(*) an Ollama tag", "qwen2.5-1.5b": "(*) from the catalog",
             "": "(*) let the advisor pick"}
    for name, line in cases.items():
        path = save_answers(Answers(model=ModelAnswers(name=name)), tmp_path / "a.toml", overwrite=True)
        app = make_app(load_answers(path), answers_path=str(path), start="questions")

        async def go(pilot, name=name, line=line):
            await settle(pilot)
            await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
            await settle(pilot)
            text = screen_text(app)
            assert line in text, (name, text)
            if name:
                assert name in text
            await pilot.press("ctrl+n")  # nothing to fix: on to the probe, with the name unchanged
            await settle(pilot)
            assert app.screen.NAME == "probe" and app.answers.model.name == name

        run(app, go)


def test_probe_follows_the_answers_model_and_its_backend(make_app, run):
    from helpers import StandInProbe

    probe = StandInProbe()
    app = make_app(Answers(model=ModelAnswers(name="llama3.2:1b")), run_probe=probe, start="probe")

    async def go(pilot):
        await settle(pilot)
        text = screen_text(app)
        # an Ollama tag is probed through the Ollama server, whose address is filled in
        assert "model llama3.2:1b" in text and "backend ollama" in text
        assert "server URL" in text and "http://" in text
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert probe.calls[-1]["backend"] == "ollama" and probe.calls[-1]["model"] == "llama3.2:1b"
        # a new model in the answers replaces the one this screen filled in
        app.set_answers(Answers(model=ModelAnswers(name="qwen2.5-1.5b")))
        app.goto("questions")
        await settle(pilot)
        app.goto("probe")
        await settle(pilot)
        text = screen_text(app)
        assert "model qwen2.5-1.5b" in text and "backend transformers" in text
        # a model the user typed here is kept
        app.screen.query_one("#probe-model").value = "phi-2"
        app.goto("questions")
        await settle(pilot)
        app.goto("probe")
        await settle(pilot)
        assert "model phi-2" in screen_text(app)

    run(app, go)


def test_probe_without_a_gpu_says_what_to_do_here(make_app, run):
    from advisor.errors import ProbeError

    no_gpu = ("no NVIDIA GPU found (NVML: NVML Shared Library Not Found); "
              "plan for a catalog GPU with --gpu NAME")

    def fails_at_once(model, **kw):  # as the real probe does: before its first progress report
        raise ProbeError(no_gpu)

    app = make_app(run_probe=fails_at_once, start="probe")

    async def go(pilot):
        text = await run_probe_page(pilot)
        assert "FAIL no NVIDIA GPU found (NVML: NVML Shared Library Not Found)" in text
        assert "--gpu" not in text and "Traceback" not in text
        assert "ctrl+n: the advice from the tables" in text
        assert any(line.startswith("load") and line.endswith("FAIL") for line in text.splitlines())
        assert not any(line.endswith("waiting") for line in text.splitlines() if line.startswith("load"))

    run(app, go)


def test_hardware_without_a_gpu_does_not_send_the_user_to_a_cli_flag(make_app, run):
    from advisor.errors import ProbeError

    def nvml_missing(knowledge):
        raise ProbeError("no NVIDIA GPU found (NVML: NVML Shared Library Not Found); "
                         "plan for a catalog GPU with --gpu NAME")

    app = make_app(detect_gpus=nvml_missing)

    async def go(pilot):
        await settle(pilot)
        text = screen_text(app)
        assert "WARN no GPU here (no NVIDIA GPU found (NVML: NVML Shared Library Not Found))" in text
        assert "Plan for a GPU from the catalog:" in text and "--gpu" not in text

    run(app, go)


def test_export_says_long_lines_scroll_and_saves_runnable_scripts(make_app, run, tmp_path):
    import os

    import pytest

    export = pytest.importorskip("advisor.export")
    answers = Answers(workload="chat", hardware=HardwareAnswers(gpu="RTX 4090"),
                      model=ModelAnswers(name="llama3.2-1b"))
    app = make_app(answers, export=export.export, render_snippet=export.render_text, start="export")
    out = tmp_path / "deploy"

    async def go(pilot):
        await settle(pilot, rounds=5)
        screen = app.screen
        app.screen.query_one("#target-pick").value = "ollama"
        await settle(pilot)
        files = screen.snippet.files
        assert len(files) > 1 and any(n.endswith(".sh") for n in files)
        widest = max(len(line) for line in screen.text.splitlines())
        assert widest > 80
        assert f"Lines up to {widest} columns wide: tab to the snippet" in screen_text(app)
        await pilot.press("s", "end", "ctrl+u", *list(str(out)), "enter")
        await settle(pilot)
        for name in files:
            assert (out / name).exists(), name
            assert os.access(out / name, os.X_OK) == name.endswith(".sh"), name
        await pilot.press("s", "end", "ctrl+u", *list(str(out)), "enter")
        await pilot.pause(0.1)
        assert f"{len(files)} files already exist" in screen_text(app)
        assert "Overwrite them?" in screen_text(app)
        await pilot.press("n")

    run(app, go)


def test_reloaded_answers_are_announced(make_app, run, tmp_path):
    from advisor.answers import load_answers, save_answers

    path = save_answers(Answers(workload="rag", hardware=HardwareAnswers(gpu="A10")), tmp_path / "a.toml")
    app = make_app(load_answers(path), answers_path=str(path))

    async def go():
        async with app.run_test(size=(80, 24), notifications=True) as pilot:  # toasts drawn
            await settle(pilot)
            text = screen_text(app)
            assert "OK loaded the answers from" in text and "Plan for: A10 (24 GB)" in text

    asyncio.run(go())


def test_a_broken_user_table_is_one_line_before_the_screen_opens(tmp_path, capsys, monkeypatch):
    from advisor.tui import app as tui

    (tmp_path / "gpus.toml").write_text("this is = = not toml\n")
    monkeypatch.setenv("ADVISOR_KNOWLEDGE_DIR", str(tmp_path))
    monkeypatch.setattr(tui.AdvisorApp, "run", lambda self: (_ for _ in ()).throw(AssertionError("started")))
    code = tui.run()
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("advisor: error: knowledge: ") and "gpus.toml" in err


def test_probe_errors_name_the_screens_fields_not_cli_flags(make_app, run, monkeypatch):
    """The real Ollama probe against a loopback port nobody listens on: its own message (written
    for the CLI, '--url') reaches the screen in the screen's words."""
    import socket

    from advisor.errors import ProbeError
    from advisor.tui.sources import run_probe as real_probe

    with socket.socket() as s:  # a free port, closed again: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{port}")
    app = make_app(Answers(model=ModelAnswers(name="llama3.2:1b")), run_probe=real_probe, start="probe")

    async def go(pilot):
        await settle(pilot)
        with pytest.raises(ProbeError) as cli:  # what the CLI user reads: it names the flag
            real_probe("llama3.2:1b", backend="ollama", url=f"http://127.0.0.1:{port}")
        assert "--url" in str(cli.value)
        await pilot.press("ctrl+r")
        await settle(pilot)
        text = screen_text(app)
        assert f"FAIL cannot reach Ollama at http://127.0.0.1:{port}" in text
        assert "set the server URL" in text and "--url" not in text
        assert "server URL http://" in text  # the field it means is on the screen

    run(app, go)


def test_copy_reaches_the_terminal_through_gnu_screen(make_app, run, monkeypatch):
    """Inside GNU screen ($STY) a bare OSC 52 is dropped; the copy also goes in screen's DCS
    passthrough, and what the outer terminal gets decodes to the snippet shown."""
    import base64
    import re

    monkeypatch.setenv("STY", "1234.pts-0.host")
    answers = Answers(workload="chat", hardware=HardwareAnswers(gpu="RTX 4090"),
                      model=ModelAnswers(name="llama3.2-1b"))
    app = make_app(answers, start="export")

    async def go(pilot):
        await settle(pilot, rounds=5)
        written = []
        monkeypatch.setattr(app._driver, "write", written.append)
        await pilot.press("c")
        out = "".join(written)
        bare = re.search(r"(?<!\x1bP)\x1b\]52;c;([A-Za-z0-9+/=]*)\x07", out)
        assert bare and base64.b64decode(bare.group(1)).decode() == app.screen.text
        wrapped = re.search(r"\x1bP\x1b\]52;c;(.*?)\x07\x1b\\", out, re.S)
        assert wrapped, out[:200]
        chunks = wrapped.group(1).split("\x1b\\\x1bP")
        assert all(len(c) <= 76 for c in chunks)
        assert base64.b64decode("".join(chunks)).decode() == app.screen.text

    run(app, go)


def test_an_empty_field_shows_the_workload_value_it_stands_for(make_app, run):
    """Left empty, the output length and the SLO targets are the workload's own (knowledge/
    workloads.toml): the field says which value that is, and follows a change of workload."""
    app = make_app(Answers(workload="classification", hardware=HardwareAnswers(gpu="RTX 4090")), start="questions")

    async def go(pilot):
        await to_load_page(pilot)
        k = app.knowledge
        cls, chat = k.workloads["classification"], k.workloads["chat"]
        out = app.screen.query_one("#q-output-tokens")
        assert out.value == "" and out.placeholder == f"{cls.default_output_tokens:g} (classification)"
        ttft = app.screen.query_one("#q-slo-ttft-ms")
        assert ttft.value == "" and ttft.placeholder == f"{cls.default_ttft_ms:g} (classification)"
        await pilot.press("pageup", "pageup")  # back to the workloads, choose chat
        await settle(pilot)
        app.screen.query_one("#w-chat").value = True
        await settle(pilot)
        assert out.placeholder == f"{chat.default_output_tokens:g} (chat)"
        assert chat.default_output_tokens != cls.default_output_tokens

    run(app, go)
