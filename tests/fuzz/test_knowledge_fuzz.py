"""Fuzz: a user's knowledge override with any value in any field, in every form TOML can write a number.

Either the file is refused in one line naming the file, the row and the field (KnowledgeError, exit 3),
or the value is in range and the advisor's arithmetic on it (every backend and quantization for the
row's GPU or model) gives finite figures. A few end-to-end CLI runs check the same from the outside.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from advisor.answers import answers_from_dict
from advisor.errors import KnowledgeError
from advisor.knowledge import SCHEMAS, load_knowledge, value_bound

NUMBER_SPELLINGS = [
    "0", "-0", "0.0", "-0.0", "1", "-1", "1e-05", "1e+16", "2e+16", "1e+300", "1E5", "1.5e-05", "1.5e+16",
    "5e-324", "1e-320", "1_000", "0.000001", "123456789012345678", "9223372036854775807",
    "-9223372036854775808", "0x10", "0o17", "0b101", "inf", "+inf", "-inf", "nan", "+nan", "-nan",
]
HOSTILE = st.one_of(
    st.sampled_from(NUMBER_SPELLINGS),
    st.floats().map(repr),  # repr is valid TOML for every float: 1e-05, inf, nan, -0.0
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.sampled_from(['"0.5"', '"abc"', '""', "true", "false", "[1.0, 2.0]", "[]", "{ v = 1 }", "1979-05-27"]),
)
PLAUSIBLE = st.one_of(  # in range often enough to reach the arithmetic
    st.floats(min_value=0, max_value=2).map(repr),
    st.integers(min_value=0, max_value=4096).map(str),
    st.floats(min_value=1, max_value=1e5).map(repr),
)
TOML_VALUES = st.one_of(HOSTILE, PLAUSIBLE)

_SEQ = itertools.count()


@pytest.fixture(scope="module")
def stock():
    return load_knowledge(None)


@pytest.fixture(scope="module")
def base_rows(stock):
    """Every real row of every table, as plain data, with the name of the table's key field."""
    return {name: ([r.model_dump(exclude_none=True) for r in stock.tables[name].rows], key)
            for name, (_model, key) in SCHEMAS.items()}


def _toml(v) -> str:
    if isinstance(v, bool) or isinstance(v, str) or isinstance(v, list):
        return json.dumps(v)  # JSON strings, booleans and arrays of strings are TOML too
    return repr(v)


def _file(table: str, row: dict, field: str, literal: str) -> str:
    lines = ["[meta]", f'table = "{table}"', "", "[[rows]]", f"{field} = {literal}"]
    lines += [f"{k} = {_toml(v)}" for k, v in row.items() if k != field and not isinstance(v, dict)]
    return "\n".join(lines) + "\n"


def _numeric_fields(row: dict) -> list[str]:
    return sorted(k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool))


def _exercise(k, table: str, row: dict) -> None:
    """The arithmetic the advice does with the row: every candidate for its GPU or model must be finite."""
    from advisor.recommend import candidates

    gpu = row["name"] if table == "gpus" else "RTX 4090"
    model = row["id"] if table == "models" else "llama3.2-1b"
    for workload, n in (("chat", 1), ("rag", 8)):
        answers = answers_from_dict({"workload": workload, "concurrency": n, "hardware": {"gpu": gpu},
                                     "model": {"name": model}})
        cands = candidates(k, answers, models=[k.model(model)])
        assert cands
        for e in cands:
            figures = {"vram_gb": e.vram_gb, "prefill_ms": e.speed.costs.prefill_ms(e.demand.prompt_tokens),
                       "ttft_p95_ms": e.load.ttft_p95_ms, "per_user_tok_s": e.load.per_user_tok_s,
                       "total_tok_s": e.load.total_tok_s, "e2e_p95_s": e.load.e2e_p95_s}
            for name, value in figures.items():
                assert math.isfinite(value) or not e.load.steady and name in ("ttft_p95_ms", "e2e_p95_s"), \
                    (e.backend, e.quant, name, value)
            assert e.budget_tokens >= 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_in_any_field_is_refused_in_one_line_or_safe_to_use(tmp_path_factory, base_rows, data):
    table = data.draw(st.sampled_from(sorted(base_rows)), label="table")
    rows, key = base_rows[table]
    row = data.draw(st.sampled_from(rows), label="row")
    numeric = _numeric_fields(row)
    numeric_field = numeric and data.draw(st.integers(0, 3)) > 0  # mostly a number's field
    field = data.draw(st.sampled_from(numeric if numeric_field else sorted(row)), label="field")
    literal = data.draw(TOML_VALUES, label="literal")
    d = tmp_path_factory.mktemp(f"k{next(_SEQ)}")
    (d / "bad.toml").write_text(_file(table, row, field, literal), encoding="utf-8")
    try:
        k = load_knowledge(d)
    except KnowledgeError as e:
        event("refused")
        msg = str(e)
        assert e.exit_code == 3 and "\n" not in msg and len(msg) < 400, msg
        assert "bad.toml" in msg, msg
        if "not valid TOML" not in msg:
            # the field, or for a cross-field check (kv_heads <= attention_heads) the field it is checked against
            assert f"table '{table}' row 1" in msg and (field in msg or "repeats" in msg), msg
        return
    event(f"accepted: {table}")
    loaded = k.tables[table].rows
    got = next(r for r in loaded if getattr(r, key, None) == row.get(key)) if key else loaded[-1]
    value = getattr(got, field)
    if isinstance(value, float):
        assert math.isfinite(value)
    if table in ("thresholds", "calibration", "scaling"):
        assert value_bound(got.key).ok(got.value)
    if table in ("gpus", "models", "calibration", "thresholds", "scaling", "quantization"):
        _exercise(k, table, row)


# ------------------------------------------------------------------ the same from the outside
CLI_CASES = [
    # (table, key or GPU name, field, literal, expected exit code)
    ("calibration", "vllm.decode_bw_efficiency", "value", "0", 3),  # divided by zero before
    ("calibration", "ollama.decode_bw_efficiency", "value", "1e-05", 3),
    ("thresholds", "context_safety_margin", "value", "nan", 3),
    ("thresholds", "cuda_context_overhead_gb", "value", "-2.0", 3),  # negative VRAM before
    ("gpus", "RTX 4090", "bandwidth_gb_s", "inf", 3),
    ("gpus", "RTX 4090", "fp16_tflops", "1.5e+16", 3),
    ("thresholds", "ttft_good_ms", "value", "1500.0", 0),
    ("gpus", "RTX 4090", "bandwidth_gb_s", "1.2e+3", 0),
]


@pytest.mark.parametrize("table, name, field, literal, code", CLI_CASES)
def test_the_cli_with_a_hostile_knowledge_dir_exits_as_documented(tmp_path, stock, table, name, field, literal, code):
    row = (stock.gpu(name) if table == "gpus" else stock.row(name)).model_dump(exclude_none=True)
    (tmp_path / "override.toml").write_text(_file(table, row, field, literal))
    env = {**os.environ, "ADVISOR_KNOWLEDGE_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "advisor", "recommend", "--gpu", "RTX 4090", "--format", "json",
                        "--no-cache"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    if code:
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and "override.toml" in err and f"field '{field}'" in err, err
    else:
        out = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))
        assert out["recommendation"] is not None
