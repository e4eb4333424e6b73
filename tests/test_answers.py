"""Answers: files and flags validate to one clear line; saved answers reload unchanged."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.answers import answers_from_dict, answers_to_toml, load_answers, merge_flags, save_answers
from advisor.domain import Answers
from advisor.errors import AdvisorError


@pytest.mark.parametrize("data, field, hint", [
    ({"workload": "ragg"}, "workload", "did you mean 'rag'"),
    ({"risk": "extreme"}, "risk", "high, moderate, low"),
    ({"concurrency": -1}, "concurrency", ">= 1"),
    ({"concurrency": 0}, "concurrency", ">= 1"),
    ({"concurrency": "eight"}, "concurrency", "whole number"),
    ({"hardware": {"vram_gb": 0}}, "hardware.vram_gb", "> 0"),
    ({"hardware": {"os": "macos"}}, "hardware.os", "linux, windows"),
    ({"hardware": {"gpuu": "RTX 4090"}}, "hardware.gpuu", "did you mean 'gpu'"),
    ({"slo": {"ttft_ms": float("inf")}}, "slo.ttft_ms", "finite"),
    ({"wrkload": "rag"}, "wrkload", "did you mean 'workload'"),
])
def test_bad_answers_name_the_field_and_what_is_allowed(data, field, hint):
    with pytest.raises(AdvisorError) as e:
        answers_from_dict(data)
    msg = str(e.value)
    assert msg.startswith(field + ":") and hint in msg and "\n" not in msg


def test_missing_fields_get_the_stated_defaults():
    a = answers_from_dict({"workload": "rag"})
    assert (a.risk, a.concurrency, a.hardware.gpu, a.hardware.os, a.slo.ttft_ms) == ("moderate", 1, "auto", "linux", 1000)


def test_flags_override_the_file(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('workload = "rag"\nconcurrency = 2\n[hardware]\ngpu = "RTX 4090"\n')
    a = merge_flags(load_answers(f), {"concurrency": "8", "hardware.os": "windows"})
    assert (a.workload, a.concurrency, a.hardware.gpu, a.hardware.os) == ("rag", 8, "RTX 4090", "windows")


def test_a_malformed_file_is_one_line_naming_the_file(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('workload = "rag\n')
    with pytest.raises(AdvisorError) as e:
        load_answers(f)
    assert str(f) in str(e.value) and "not valid TOML" in str(e.value)
    with pytest.raises(AdvisorError, match="not found"):
        load_answers(tmp_path / "missing.toml")


def test_saved_answers_reload_identically_and_never_overwrite(tmp_path):
    a = answers_from_dict({"workload": "codegen", "concurrency": 4, "hardware": {"gpu": "L4", "os": "windows"},
                           "model": {"name": 'we"ird\\name'}, "slo": {"ttft_ms": 250.5}})
    path = save_answers(a, tmp_path / "mine.toml")
    assert load_answers(path) == a
    with pytest.raises(AdvisorError, match="already exists"):
        save_answers(Answers(), path)
    assert load_answers(path) == a  # what the user saved is still there


# No None: TOML has no null. Drawn directly rather than filtered out (filtering tripped
# hypothesis' filter_too_much health check on a loaded CI machine).
_scalars = st.one_of(st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
_keys = st.sampled_from(["workload", "risk", "concurrency", "context_tokens", "output_tokens", "hardware",
                         "model", "slo", "constraints", "gpu", "vram_gb", "os", "name", "ttft_ms", "x"])
_docs = st.recursive(_scalars, lambda inner: st.dictionaries(_keys, inner, max_size=5),
                     max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _docs, max_size=6))
def test_no_answers_document_produces_anything_but_answers_or_one_line(doc):
    try:
        a = answers_from_dict(doc)
    except AdvisorError as e:
        assert "\n" not in str(e) and ":" in str(e)
    else:
        assert isinstance(a, Answers)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable, max_size=200))
def test_no_answers_file_content_produces_a_traceback(tmp_path_factory, text):
    f = tmp_path_factory.mktemp("h") / "a.toml"
    f.write_text(text)
    try:
        load_answers(f)
    except AdvisorError as e:
        assert "\n" not in str(e)
