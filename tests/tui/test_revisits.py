"""Going back and forth as a user does: change an answer after seeing the advice, come back,
recompute; reload saved answers of every model source. Each step must show the new state,
never a traceback."""

from helpers import screen_text, settle

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
        app.screen.query_one("#gpus").focus()
        await pilot.press("end", "ctrl+u", "x")
        assert "WARN GPUs: a whole number 1-64" in screen_text(app)  # as you type
        await pilot.press("ctrl+n")
        text = screen_text(app)
        assert app.screen.NAME == "hardware"
        assert "WARN GPUs: a whole number 1-64" in text
        assert "invalid literal" not in text and "int()" not in text
        await pilot.press("ctrl+u", "2", "tab", "ctrl+u", "-", "3")
        assert "WARN other tenants GB: 0 or more" in screen_text(app)
        await pilot.press("ctrl+n")
        assert app.screen.NAME == "hardware" and app.focused.id == "background"
        await pilot.press("ctrl+u", "3")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.screen.NAME == "questions"
        assert (app.answers.hardware.gpus, app.answers.hardware.background_vram_gb) == (2, 3.0)

    run(app, go)
