"""The questionnaire asks what serves the model today, and offers only quantizations the chosen risk
tier allows: the page that says "q2_k is never allowed" is never followed by a page offering it."""

from helpers import screen_text, settle

from advisor.answers import load_answers, save_answers
from advisor.domain import Answers, ConstraintAnswers


async def _open_quantizations(pilot, risk_key: str) -> str:
    """Questions: choose a risk tier with the keyboard, go on to the model page, open the
    quantization dropdown; the screen as the user then sees it."""
    app = pilot.app
    await settle(pilot)
    await pilot.press("ctrl+n")  # workload -> risk
    await settle(pilot)
    await pilot.press(risk_key, "enter")  # a tier; Enter chooses it and moves on to the load page
    await settle(pilot)
    await pilot.press("ctrl+n")  # load -> model
    await settle(pilot)
    assert "Model" in screen_text(app)
    app.screen.query_one("#q-constraints-quantization").focus()
    await pilot.press("enter")
    await settle(pilot)
    return screen_text(app)


def _offered(text: str) -> set[str]:
    words = {w for line in text.splitlines() for w in line.split()}
    return {q for q in ("fp16", "bf16", "fp8", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_s", "q2_k",
                        "awq", "gptq", "int8", "nf4") if q in words}


def test_a_high_risk_user_is_offered_only_what_high_risk_allows(make_app, run):
    app = make_app(Answers(risk="moderate"), start="questions")

    async def go(pilot):
        text = await _open_quantizations(pilot, "up")  # moderate -> high
        assert app.screen._chosen_risk() == "high"
        offered = _offered(text)
        assert {"fp16", "q8_0"} <= offered, text
        assert not offered & {"q4_k_m", "q3_k_s", "q2_k", "fp8", "awq"}, text

    run(app, go)


def test_no_tier_is_offered_q2k_and_low_risk_gets_q3(make_app, run):
    app = make_app(Answers(risk="moderate"), start="questions")

    async def go(pilot):
        text = await _open_quantizations(pilot, "down")  # moderate -> low
        offered = _offered(text)
        assert {"q4_k_m", "q3_k_s"} <= offered, text
        assert "q2_k" not in offered, text

    run(app, go)


def test_the_risk_page_says_what_each_tier_allows(make_app, run):
    app = make_app(start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n")
        text = " ".join(screen_text(app).split())
        assert "high allows fp16, bf16, q8_0, int8;" in text, text
        assert "low also q3_k_s; q2_k is never allowed." in text, text

    run(app, go)


def test_a_saved_quantization_outside_the_tier_is_shown_not_dropped(make_app, run, tmp_path):
    """Answers saved with q4_k_m at high risk (a file typed by hand): the page shows what the file
    says, and Next keeps it; the advice then says the constraint breaks the tier."""
    path = save_answers(Answers(risk="high", constraints=ConstraintAnswers(quantization="q4_k_m")), tmp_path / "a.toml")
    app = make_app(load_answers(path), answers_path=str(path), start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        await settle(pilot)
        assert "quantization q4_k_m" in " ".join(screen_text(app).split())
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.screen.NAME == "probe" and app.answers.constraints.quantization == "q4_k_m"

    run(app, go)


def test_an_ollama_user_says_so_on_the_model_page_and_it_is_kept(make_app, run, tmp_path):
    app = make_app(start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")
        await settle(pilot)
        text = screen_text(app)
        assert "serving today nothing yet" in " ".join(text.split()), text
        app.screen.query_one("#q-current-backend").focus()
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("down", "enter")  # the first backend after "nothing yet": ollama
        await settle(pilot)
        assert "serving today ollama" in " ".join(screen_text(app).split())
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.screen.NAME == "probe" and app.answers.current_backend == "ollama"

    run(app, go)
