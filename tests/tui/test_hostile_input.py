"""What a user can type, paste or do to the terminal, typed into the real screens: numbers past
their bounds, infinities, 300-character paths, a pasted page of text, a kill. Each is one line
on screen naming the field, and the app goes on; the terminal is given back as it was."""

import os

import pytest
from helpers import clear_field, screen_text, settle, to_load_page, type_into, wait_for_text
from textual import events

from advisor.domain import Answers, HardwareAnswers, ModelAnswers

LONG = "x" * 300


@pytest.mark.parametrize("field, text, words", [
    ("q-slo-ttft-ms", "1e16", "TTFT target ms: 1e16 is not a number from 1 to 3,600,000"),
    ("q-slo-ttft-ms", "inf", "TTFT target ms: inf is not a number from 1 to 3,600,000"),
    ("q-slo-ttft-ms", "0.00001", "TTFT target ms: 0.00001 is not a number from 1"),
    ("q-slo-p95-latency-s", "nan", "p95 latency s: nan is not a number from 0.01 to 86,400"),
    ("q-concurrency", "1e3", "concurrency: 1e3 is not a whole number from 1 to 4,096"),
    ("q-deadline-hours", "-Infinity", "deadline hours: -Infinity is not a number from 0 to 8,760"),
])
def test_a_hostile_number_on_the_load_page_is_refused_where_it_is_typed(field, text, words, make_app, run):
    app = make_app(start="questions")

    async def go(pilot):
        await to_load_page(pilot)
        await type_into(pilot, field, text)
        assert "WARN a " in screen_text(app)  # the field's hint says what it allows, as it is typed
        await pilot.press("enter")  # Enter (as Next) stays on the page and names the field
        text_now = await wait_for_text(pilot, [words])
        assert "page 3 of 4" in text_now and f"WARN {words}" in text_now, text_now
        assert app.is_running and app.answers == Answers()  # nothing refused reached the answers

    run(app, go)


@pytest.mark.parametrize("field, text, words", [
    ("hw-hardware-vram-gb", "1e-9", "VRAM GB: 1e-9 is not a number from 1 to 2,048, or empty"),
    ("hw-hardware-vram-gb", "inf", "VRAM GB: inf is not a number from 1 to 2,048, or empty"),
    ("hw-hardware-background-vram-gb", "1e16", "other tenants GB: 1e16 is not a number from 0 to 2,048"),
    ("hw-hardware-gpus", "true", "GPUs: true is not a whole number from 1 to 64"),
])
def test_a_hostile_number_on_the_hardware_screen_is_refused(field, text, words, make_app, run):
    app = make_app()

    async def go(pilot):
        await settle(pilot)
        await type_into(pilot, field, text)
        assert f"WARN {words}" in screen_text(app)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.screen.NAME == "hardware" and f"WARN {words}" in screen_text(app)

    run(app, go)


def test_more_other_tenants_than_vram_is_one_line_on_the_hardware_screen(make_app, run):
    app = make_app()

    async def go(pilot):
        await settle(pilot)  # RTX 2060, 6 GB: the first catalog row
        await type_into(pilot, "hw-hardware-background-vram-gb", "7")
        await pilot.press("ctrl+n")
        await settle(pilot)
        flat = " ".join(screen_text(app).split())
        assert app.screen.NAME == "hardware"
        assert "WARN hardware.background_vram_gb: 7 is not allowed; expected less than the GPU's 6 GB" in flat

    run(app, go)


def test_a_pasted_page_of_text_is_one_short_line(make_app, run):
    app = make_app(start="questions")

    async def go(pilot):
        await to_load_page(pilot)
        field = await clear_field(pilot, "q-slo-ttft-ms")
        field.post_message(events.Paste("9" * 100_000 + "\nsecond line"))
        await pilot.pause(0.2)
        await pilot.press("enter")
        await pilot.pause(0.1)
        text = screen_text(app)
        line = next(li for li in text.splitlines() if li.startswith("WARN TTFT target ms:"))
        # the 100,000 pasted characters are cut to a few; the target may also be left empty (the workload's)
        assert line.startswith("WARN TTFT target ms: 999999999999999… is not a number from 1 to 3,600,000")
        assert len(line) <= 80 and "second line" not in text
        assert app.is_running

    run(app, go)


def test_a_300_character_path_in_save_answers_is_one_line(make_app, run, tmp_path):
    app = make_app()

    async def go(pilot):
        await settle(pilot)
        app.action_save_answers()
        await pilot.pause(0.1)
        await pilot.press("end", "ctrl+u", *list(str(tmp_path / (LONG + ".toml"))))
        await pilot.pause(0.05)
        assert "WARN cannot use that path (File name too long)" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.screen.__class__.__name__ == "PathDialog" and app.is_running
        # a folder that is not there, 300 characters deep
        await pilot.press("ctrl+u", *list(str(tmp_path / "no" / ("y" * 200) / "a.toml")))
        await pilot.press("enter")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "WARN folder '" in text and "does not exist" in text and "Traceback" not in text
        await pilot.press("escape")

    run(app, go)
    assert os.listdir(tmp_path) == []


def test_a_300_character_local_model_path_is_one_line(make_app, run, tmp_path):
    app = make_app(start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")  # the model page
        app.screen.query_one("#model-source").focus()
        await pilot.press("down", "down", "space", "tab", *list(str(tmp_path / LONG)))
        await pilot.pause(0.05)
        flat = " ".join(screen_text(app).split())
        assert "WARN cannot use '" in flat and "(File name too long)" in flat
        await pilot.press("enter")  # Next refuses it, in one line, and the app goes on
        await pilot.pause(0.1)
        assert app.screen.NAME == "questions" and "page 4 of 4" in screen_text(app)

    run(app, go)


def test_an_ollama_tag_the_catalog_does_not_know_is_refused_on_the_questions_page(make_app, run):
    app = make_app(start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        app.screen.query_one("#model-source").focus()
        await pilot.press("down", "down", "down", "space", "tab", *list("mystery:7b"))
        await pilot.press("enter")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert app.screen.NAME == "questions" and "page 4 of 4" in text
        assert "WARN model.name: 'mystery:7b' is not in the catalog" in text
        assert app.answers.model.name == ""

    run(app, go)


def test_a_saved_long_model_path_reloads_without_a_traceback(make_app, run, tmp_path):
    answers = Answers(hardware=HardwareAnswers(gpu="RTX 4090"), model=ModelAnswers(name=str(tmp_path / LONG)))
    app = make_app(answers, start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        await settle(pilot)
        assert "(*) a local HF folder or GGUF file" in screen_text(app)
        app.goto("advice")
        await settle(pilot, rounds=5)
        flat = " ".join(screen_text(app).split())
        assert "FAIL model.name: cannot use" in flat and "File name too long" in flat, flat

    run(app, go)
