"""Fuzz: the server probes against loopback servers that trickle, never end, inflate or lie.

What must hold for every reply a server can make:
- the probe returns a result or raises ProbeError with one line: never another exception, never
  "internal error" (exit 70);
- it ends in bounded time (the request deadline, not the server, decides);
- through the command line (`python -m advisor probe ...` in a subprocess): exit 4, exactly one
  line on stderr, no traceback, and memory bounded (a 1 GiB gzip bomb or an endless chunked body
  costs the process tens of MB, not GB).

Hypothesis draws the JSON the servers answer with (numbers in every form JSON can write: 1e400,
-0, huge integers, NaN/Infinity literals, strings and lists where numbers belong). Examples are
bounded so the suite takes well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from itertools import chain
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "probes"))
from hostile import (HostileServer, Reply, forever, gzip_bomb, http_head, ollama_routes,  # noqa: E402
                     openai_routes, sse_reply)
from probe_fakes import probe_once  # noqa: E402

from advisor.domain import ProbeResult  # noqa: E402
from advisor.errors import ProbeError  # noqa: E402
from advisor.probes import ollama  # noqa: E402
from advisor.probes import openai_compat as oa  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROBE_LIMIT_S = 4.0  # a request's deadline in these tests; a whole probe must end well inside 3x that


# ------------------------------------------------------------------ JSON in every form a server can write
class Raw(str):
    """A JSON token written verbatim (1e400, NaN, a 400-digit integer)."""


def encode(v) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + encode(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(encode(x) for x in v) + "]"
    return json.dumps(v)


raw_numbers = st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "-0", "1" * 400,
                               "2e9", "1.5", "0", "-1", "1e8", "100000000"]).map(Raw)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20), raw_numbers)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
plausible_count = st.one_of(st.integers(1, 64), values)


def _outcome(fn, *a, **kw):
    t0 = time.monotonic()
    try:
        out = fn(*a, **kw)
    except ProbeError as e:
        out = e
    took = time.monotonic() - t0
    if isinstance(out, ProbeError):
        msg = str(out)
        assert msg and "\n" not in msg and len(msg) < 500, msg
    else:
        assert isinstance(out, ProbeResult)
    assert took < 3 * PROBE_LIMIT_S, f"took {took:.1f} s"
    return out


def _ollama(url):
    return probe_once(ollama, url, None, [64], seed=1, timeout=PROBE_LIMIT_S)


def _openai(url):
    return probe_once(oa, url, None, [64], seed=1, timeout=PROBE_LIMIT_S)


def _liar(routes):
    """A hostile server on `routes`, its `overrides` (path -> answer) for each test to set."""
    overrides: dict = {}
    with HostileServer(routes(overrides)) as s:
        s.overrides = overrides
        yield s


@pytest.fixture(scope="module")
def ollama_liar():
    yield from _liar(ollama_routes)


@pytest.fixture(scope="module")
def openai_liar():
    yield from _liar(openai_routes)


def _json(obj) -> bytes:
    return encode(obj).encode()


# ------------------------------------------------------------------ Ollama replies
@FUZZ
@given(info=st.dictionaries(st.sampled_from(["general.architecture", "qwen2.block_count", "qwen2.attention.head_count",
                                             "qwen2.attention.head_count_kv", "qwen2.embedding_length",
                                             "qwen2.attention.key_length", "qwen2.context_length",
                                             "general.parameter_count"]), plausible_count, max_size=8),
       details=values, whole=st.booleans())
def test_ollama_show_in_any_shape(ollama_liar, info, details, whole):
    info.setdefault("general.architecture", "qwen2")
    show = {"model_info": info, "details": details} if whole else info
    ollama_liar.overrides.clear()
    ollama_liar.overrides["/api/show"] = _json(show)
    _outcome(_ollama, ollama_liar.url)


@FUZZ
@given(ps=st.one_of(values, st.fixed_dictionaries({"models": st.lists(st.fixed_dictionaries(
    {"name": st.just("m:1b"), "size_vram": plausible_count, "size": plausible_count}), max_size=2)})),
    generate=st.fixed_dictionaries({"done": st.one_of(st.just(True), values), "prompt_eval_count": plausible_count,
                                    "prompt_eval_duration": plausible_count, "eval_count": plausible_count,
                                    "eval_duration": plausible_count}))
def test_ollama_ps_and_generate_in_any_shape(ollama_liar, ps, generate):
    ollama_liar.overrides.clear()
    ollama_liar.overrides["/api/ps"] = _json(ps)
    ollama_liar.overrides["/api/generate"] = _json(generate)
    _outcome(_ollama, ollama_liar.url)


@FUZZ
@given(tags=values, version=values)
def test_ollama_tags_and_version_in_any_shape(ollama_liar, tags, version):
    ollama_liar.overrides.clear()
    ollama_liar.overrides["/api/tags"] = _json(tags)
    ollama_liar.overrides["/api/version"] = _json(version)
    _outcome(_ollama, ollama_liar.url)


# ------------------------------------------------------------------ OpenAI-compatible replies
def _stream(chunks) -> Reply:
    return sse_reply([b"data: " + _json(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"])


@FUZZ
@given(models=st.one_of(values, st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries(
    {"id": st.one_of(st.just("m"), values), "max_model_len": plausible_count, "meta": values}), max_size=2)})),
    props=values, slots=values)
def test_openai_models_props_slots_in_any_shape(openai_liar, models, props, slots):
    openai_liar.overrides.clear()
    openai_liar.overrides.update({"/v1/models": _json(models), "/props": _json(props), "/slots": _json(slots)})
    _outcome(_openai, openai_liar.url)


@FUZZ
@given(chunks=st.lists(st.one_of(values, st.fixed_dictionaries({"choices": st.one_of(values, st.lists(
    st.fixed_dictionaries({"text": st.one_of(st.just(" tok"), values), "delta": values}), max_size=2)),
    "usage": st.one_of(st.none(), values, st.fixed_dictionaries({"prompt_tokens": plausible_count,
                                                                  "completion_tokens": plausible_count}))})),
    min_size=1, max_size=6))
def test_openai_stream_chunks_in_any_shape(openai_liar, chunks):
    openai_liar.overrides.clear()
    openai_liar.overrides["/v1/completions"] = _stream(chunks)
    _outcome(_openai, openai_liar.url)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=200),
                     st.builds(lambda status, head, body: f"HTTP/1.1 {status} X\r\n{head}\r\n\r\n".encode() + body,
                               st.integers(0, 999), st.text("abcXYZ:-; 0123456789\r\n", max_size=60),
                               st.binary(max_size=100))))
def test_any_bytes_on_the_wire(openai_liar, raw):
    openai_liar.overrides.clear()
    openai_liar.overrides["/v1/models"] = Reply([raw])
    _outcome(_openai, openai_liar.url)


# ------------------------------------------------------------------ the command line, in a subprocess
_WRAPPER = """
import os, resource, sys
from advisor.cli import main
code = main(sys.argv[1:])
with open(os.environ["ADVISOR_FUZZ_RSS"], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(code)
"""
RSS_BUDGET_MB = 100  # over the same command against a closed port (measured: +8 to +16 MB)


def _cli(args: list[str], tmp_path, wrapper: bool = False) -> tuple[int, list[str], float, float]:
    """(exit code, stderr lines, seconds, max RSS in MB or 0) of `python -m advisor probe ...`."""
    rss = tmp_path / f"rss-{time.monotonic_ns()}"
    env = dict(os.environ, ADVISOR_FUZZ_RSS=str(rss), PYTHONPATH=str(ROOT))

    def limit():  # a regression must fail this test, not take the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    cmd = [sys.executable, "-c", _WRAPPER] if wrapper else [sys.executable, "-m", "advisor"]
    t0 = time.monotonic()
    p = subprocess.run(cmd + ["probe", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
                       preexec_fn=limit if hasattr(resource, "RLIMIT_AS") else None)
    took = time.monotonic() - t0
    mb = int(rss.read_text()) / 1024 if wrapper and rss.exists() else 0.0
    return p.returncode, p.stderr.splitlines(), took, mb


TRICKLE_HEADERS = Reply(chain([b"HTTP/1.1 200 OK\r\n"], forever(b"X-Pad: 1\r\n")), pause=0.3)
PINGS = sse_reply(forever(b": ping\n\n"), pause=0.2)
NO_DONE = sse_reply([b'data: {"choices": [{"text": " a"}]}\n\n'], hold=60)


@pytest.mark.parametrize("backend, route, words", [
    ("openai", openai_routes({"/v1/models": TRICKLE_HEADERS}), "did not answer GET /v1/models within 2 s"),
    ("openai", openai_routes({"/v1/completions": PINGS}), "did not answer POST /v1/completions within 2 s"),
    ("openai", openai_routes({"/v1/completions": NO_DONE}), "did not answer POST /v1/completions within 2 s"),
    ("ollama", ollama_routes({"/api/show": b'{"model_info": [1, 2]}'}), "model_info is a list"),
    ("openai", openai_routes({"/v1/models": b'{"data": [{"id": 5}]}'}), "data[0].id = 5"),
])
def test_cli_exits_4_with_one_line(backend, route, words, tmp_path):
    with HostileServer(route) as s:
        code, err, took, _ = _cli(["--backend", backend, "--url", s.url, "--timeout", "2", "--contexts", "64"],
                                  tmp_path)
    assert code == 4 and len(err) == 1, err
    assert err[0].startswith("advisor: error: ") and words in err[0] and "Traceback" not in err[0]
    assert took < 30


def _bomb_reply() -> Reply:
    bomb = gzip_bomb(2**30)  # 1 GiB inflated, about 1 MB on the wire
    return Reply([http_head(200, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                  "Content-Length": len(bomb)}) + bomb])


ENDLESS_CHUNKS = Reply(chain([http_head(200, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})],
                             forever(b"10000\r\n" + b"[" * 0x10000 + b"\r\n")))


@pytest.mark.parametrize("what", ["gzip bomb", "endless chunked body"])
def test_cli_memory_stays_bounded(what, tmp_path):
    _, _, _, base_mb = _cli(["--backend", "ollama", "--url", "http://127.0.0.1:9", "--timeout", "5"], tmp_path,
                            wrapper=True)
    reply = _bomb_reply() if what == "gzip bomb" else ENDLESS_CHUNKS
    with HostileServer(ollama_routes({"/api/tags": reply})) as s:
        code, err, took, mb = _cli(["--backend", "ollama", "--url", s.url, "--timeout", "20"], tmp_path, wrapper=True)
    assert code == 4 and len(err) == 1 and "sent more than 8 MiB" in err[0], err
    assert base_mb > 0 and mb - base_mb < RSS_BUDGET_MB, f"{what}: {mb - base_mb:.0f} MB over the baseline"
    assert took < 30
