"""The screens share one typed state and react to its changes: a new answer repaints the advice
and export screens on the spot, a plan never outlives the inputs it was made for, and a newer
request replaces an older one (exclusive workers)."""

from helpers import screen_text, settle, wait_for_text

from advisor.domain import Answers, HardwareAnswers, ModelAnswers
from advisor.tui.state import TuiState

ANSWERS = Answers(workload="chat", hardware=HardwareAnswers(gpu="RTX 4090"), model=ModelAnswers(name="llama3.2-1b"))


def test_new_inputs_drop_the_plan_made_for_the_old_ones():
    from advisor.domain import Recommendation

    rec = Recommendation(recommendation=None, no_plan_because="x")
    s = TuiState(answers=ANSWERS).changed(recommendation=rec)
    assert s.recommendation is rec and s.planned
    assert s.changed(answers=ANSWERS.model_copy(update={"concurrency": 4})).recommendation is None
    # NVML's answer is no input while the plan is for a catalog GPU
    assert s.changed(detected=()).recommendation is rec
    auto = TuiState().changed(recommendation=rec)
    assert auto.changed(detected=()).recommendation is None


def test_the_advice_on_screen_follows_a_change_of_the_answers(make_app, run):
    app = make_app(ANSWERS, start="advice")

    async def go(pilot):
        await settle(pilot, rounds=5)
        assert "for 1 x RTX 4090 (24 GB, linux, catalog)" in screen_text(app)
        # another screen (or a script) changes the hardware answer; nobody presses anything here
        app.set_answers(ANSWERS.model_copy(update={"hardware": HardwareAnswers(gpu="RTX 4090", vram_gb=12)}))
        text = await wait_for_text(pilot, ["(12 GB, linux, catalog)"])
        assert "for 1 x RTX 4090 (12 GB, linux, catalog)" in text
        assert app.recommendation.hardware.vram_gb == 12

    run(app, go)


def test_the_export_screen_opens_on_the_new_plans_target(make_app, run):
    app = make_app(ANSWERS.model_copy(update={"concurrency": 1}), start="export")

    async def go(pilot):
        await settle(pilot, rounds=5)
        first = app.recommendation.recommendation.backend
        app.screen.query_one("#target-pick").value = "tgi" if first != "tgi" else "vllm"
        await settle(pilot)
        picked = app.screen.target
        assert picked != first
        # a new plan (N=16 serves on another backend): the export opens on that plan's target
        app.set_answers(app.answers.model_copy(update={"concurrency": 16}))
        await settle(pilot, rounds=5)
        backend = app.recommendation.recommendation.backend
        from advisor.tui.screens.export import default_target

        assert app.screen.target == default_target(app.knowledge, backend)
        assert f"on {backend} at" in screen_text(app)

    run(app, go)
