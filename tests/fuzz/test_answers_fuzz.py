"""Hypothesis over answers as flags and as TOML, numbers in every form JSON, Python and people
write them: every value is either an Answers whose numbers are finite and inside their field's
bounds (and survive a save and reload), or one line naming the field, never longer than a line
should be, never a traceback."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.answers import answers_from_dict, answers_to_toml, merge_flags
from advisor.domain import Answers
from advisor.errors import AdvisorError
from advisor.fields import answer_fields

NUMBERS = [f for f in answer_fields() if f.kind in ("int", "float")]

_floats = st.floats(allow_nan=True, allow_infinity=True)
_float_text = st.one_of(
    _floats.map(json.dumps),                      # 1e-05, 1e+16, Infinity, NaN
    _floats.map(repr),                            # 1e-05, inf, nan
    _floats.map(lambda x: f"{x:e}"),              # 1.000000e+16
    _floats.map(lambda x: f"{x:g}"),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.sampled_from(["1e16", "1E16", "+1e16", " 1e16 ", "1_000", "0x10", "1e", "", " ", "true",
                     "-0", "-0.0", "1e-9", "0.00001", "inf", "-inf", "Infinity", "nan", "1e308", "1e309",
                     "٣", "1" * 5000]),
)


def _check(answers_or_error, path: str) -> None:
    if isinstance(answers_or_error, AdvisorError):
        msg = str(answers_or_error)
        assert "\n" not in msg and len(msg) < 400, msg
        if msg.startswith("answers file"):  # the file's name first, then the field (or why it is no TOML)
            msg = msg.split("': ", 1)[1]
            if msg.startswith(("not valid TOML", "a value TOML cannot hold")):
                return
        assert msg.startswith(path + ":"), msg
        return
    a: Answers = answers_or_error
    f = next(x for x in answer_fields() if x.path == path)
    value = a
    for part in path.split("."):
        value = getattr(value, part)
    if value is None:
        assert f.optional
        return
    assert not isinstance(value, bool) and math.isfinite(value), (path, value)
    assert f.ge is None or value >= f.ge
    assert f.gt is None or value > f.gt
    assert f.le is None or value <= f.le
    assert f.lt is None or value < f.lt
    assert isinstance(value, int if f.kind == "int" else (int, float))
    import tomllib

    assert answers_from_dict(tomllib.loads(answers_to_toml(a))) == a  # what is accepted also saves


def _attempt(fn):
    try:
        return fn()
    except AdvisorError as e:
        return e


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NUMBERS), _float_text)
def test_a_number_flag_is_a_valid_answer_or_one_line(f, text):
    _check(_attempt(lambda: merge_flags(None, {f.path: text})), f.path)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NUMBERS), _float_text)
def test_a_number_in_a_toml_file_is_a_valid_answer_or_one_line(tmp_path_factory, f, text):
    from advisor.answers import load_answers

    table = f"[{f.table}]\n" if f.table else ""
    path = tmp_path_factory.mktemp("fuzz") / "a.toml"
    path.write_text(f"{table}{f.key} = {text}\n", encoding="utf-8")
    _check(_attempt(lambda: load_answers(path)), f.path)


_values = st.one_of(st.booleans(), st.none(), _floats, st.integers(min_value=-10**40, max_value=10**40),
                    st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                             st.integers(), max_size=2))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(answer_fields()), _values)
def test_any_python_value_in_any_field_is_a_valid_answer_or_one_line(f, value):
    data: dict = {}
    cur = data
    parts = f.path.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
    result = _attempt(lambda: answers_from_dict(data))
    if f.kind in ("int", "float"):
        _check(result, f.path)
    elif isinstance(result, AdvisorError):
        assert "\n" not in str(result) and str(result).startswith(f.path + ":") and len(str(result)) < 400
