"""What `advisor recommend` prints: JSON that any JSON parser reads (no bare NaN), and text figures
that never read 0 for a value that is not zero."""

from __future__ import annotations

import json
import math
import tomllib

import pytest

from advisor.answers import answers_from_dict
from advisor.recommend import recommend
from advisor.render import fig, render


@pytest.fixture(scope="module")
def rec():
    return recommend(answers_from_dict({"workload": "chat", "hardware": {"gpu": "RTX 4090"}}))


def _with_figures(rec, **figures):
    plan = rec.recommendation
    return rec.model_copy(update={"recommendation": plan.model_copy(
        update={"predicted": plan.predicted.model_copy(update=figures)})})


def _strict_json(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_never_carries_bare_nan_or_infinity(rec, bad):
    out = render(_with_figures(rec, ttft_ms=bad, total_tok_s=bad), "json")
    data = _strict_json(out)  # raises on NaN / Infinity
    pred = data["recommendation"]["predicted"]
    assert pred["ttft_ms"] is None and pred["total_tok_s"] is None
    assert pred["vram_gb"] == rec.recommendation.predicted.vram_gb  # the finite ones are untouched
    warning = data["warnings"][-1]
    assert "recommendation.predicted.ttft_ms" in warning and "written as null" in warning


def test_toml_leaves_a_non_finite_figure_out_and_says_so(rec):
    data = tomllib.loads(render(_with_figures(rec, vram_gb=math.nan), "toml"))
    assert "vram_gb" not in data["recommendation"]["predicted"]
    assert any("predicted.vram_gb" in w for w in data["warnings"])


def test_text_says_not_a_number_and_warns(rec):
    out = render(_with_figures(rec, decode_tok_s_per_user=math.nan), "text")
    line = next(x for x in out.splitlines() if "decode per user" in x)
    assert "not a number tok/s" in line and "nan" not in line
    assert "could not be computed" in " ".join(out.split())


def test_a_good_recommendation_has_no_such_warning(rec):
    data = _strict_json(render(rec, "json"))
    assert not any("could not be computed" in w for w in data["warnings"])


@pytest.mark.parametrize("figures, shown", [
    ({"vram_gb": 0.0042}, "0.0042 GB"),
    ({"ttft_ms": 0.31}, "0.31 ms"),
    ({"decode_tok_s_per_user": 0.012}, "0.012 tok/s"),
    ({"p95_latency_s": 0.0009}, "0.0009 s"),
    ({"ttft_ms": 1234.4}, "1,234 ms"),
    ({"vram_gb": 0.0}, "0.00 GB"),
])
def test_small_figures_keep_their_significant_digits_in_text(rec, figures, shown):
    out = render(_with_figures(rec, **figures), "text")
    assert shown in out, out


def test_fig_never_rounds_a_nonzero_value_to_zero():
    for x in (1e-9, 3.3e-5, 0.004, -0.004, 0.049):
        for d in (0, 1, 2):
            assert float(fig(x, d).replace(",", "")) != 0, (x, d)
    assert fig(0.0, 2) == "0.00" and fig(12.345, 1) == "12.3" and fig(None, 1) == "n/a"
