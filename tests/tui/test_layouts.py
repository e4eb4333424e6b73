"""The screens at the sizes users have: a wide 120x40 terminal uses its room (the whole GPU
catalog, text wrapped at the width), a small 60x20 one degrades cleanly (a step bar that fits,
a headline wrapped at the width, nothing cut mid-word at the edge), and 80x24 shows every risk
tier whole."""

import pytest
from helpers import screen_text, settle, wait_for_text

from advisor.domain import Answers, HardwareAnswers, ModelAnswers
from advisor.tui.base import STEPS, step_line

ANSWERS = Answers(workload="chat", concurrency=8, hardware=HardwareAnswers(gpu="RTX 4090"),
                  model=ModelAnswers(name="llama3.2-1b"))


def test_a_tall_terminal_shows_the_whole_gpu_catalog(make_app, run):
    app = make_app()

    async def go(pilot):
        await settle(pilot)
        text = screen_text(app)
        for g in app.knowledge.gpus:  # H100 and H200 no longer below the fold
            assert f" {g.name} " in text, g.name
        assert "Plan for: RTX 2060 (6 GB)" in text

    run(app, go, size=(120, 40))


def _advice_lines(make_app, run, size, check) -> None:
    """The advice page in a terminal of `size`: check(its lines) once RECOMMENDED is drawn."""
    app = make_app(ANSWERS, start="advice")

    async def go(pilot):
        await settle(pilot, rounds=5)
        check((await wait_for_text(pilot, ["RECOMMENDED"])).splitlines())

    run(app, go, size=size)


def test_a_wide_terminal_wraps_the_advice_at_its_width(make_app, run):
    def check(lines):
        assert max(len(li) for li in lines) > 80  # the room is used
        assert all(len(li) <= 120 for li in lines)
        alts = [li for li in lines if li.lstrip().startswith("▶ alt")]
        assert alts and not any(li.endswith("~") and len(li) < 100 for li in alts)

    _advice_lines(make_app, run, (120, 40), check)


@pytest.mark.parametrize("name", [n for n, _ in STEPS])
def test_a_small_terminal_keeps_the_step_bar_on_one_line(name, make_app, run):
    app = make_app(ANSWERS)

    async def go(pilot):
        await settle(pilot)
        app.goto(name)
        await settle(pilot, rounds=4)
        first = screen_text(app).splitlines()[0]
        assert first.rstrip() == step_line(name, 60).rstrip() and len(first) <= 60
        label = dict(STEPS)[name]
        assert f"[{list(dict(STEPS)).index(name) + 1} {label}]" in first  # where you are, in words

    run(app, go, size=(60, 20))


def test_a_small_terminal_wraps_the_headline_at_its_width(make_app, run):
    def check(lines):
        head = [li for li in lines if li.startswith("RECOMMENDED")][0]
        nxt = lines[lines.index(head) + 1]
        assert len(head) <= 60 and nxt.startswith(" " * 12)  # wrapped under the plan, not mid-word
        assert not any(li.endswith("(physics x") for li in lines)

    _advice_lines(make_app, run, (60, 20), check)


def test_every_risk_tier_is_whole_at_80_columns(make_app, run):
    from advisor.tui.screens.questionnaire import RISK_EXAMPLES

    app = make_app(start="questions")

    async def go(pilot):
        await settle(pilot)
        await pilot.press("ctrl+n")
        text = screen_text(app)
        for tier, example in RISK_EXAMPLES.items():
            assert f"{tier:<9} e.g. {example}" in text, (tier, text)
        assert "…" not in text

    run(app, go)
