"""Servers that trickle, never end, inflate or lie: every probe ends in bounded time with one line.

Real sockets on loopback (hostile.py); the probe code is the real one. Timeouts are short here so
the deadline shows: `timeout` bounds a whole request, not one read.
"""

from __future__ import annotations

import json
import threading
from itertools import chain
import time

import pytest
from hostile import (HostileServer, Reply, forever, gzip_bomb, gzip_json, http_head, json_reply,
                     ollama_routes, openai_routes, sse_reply, timed)
from probe_fakes import probe_once

from advisor.errors import ProbeError
from advisor.probes import ollama
from advisor.probes import openai_compat as oa
from advisor.probes.http import MAX_BODY, MAX_STREAM, BadUrl, HttpClient, normalize_url


def _one_line(err) -> str:
    assert isinstance(err, ProbeError), f"expected a ProbeError, got {err!r}"
    msg = str(err)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400
    return msg


def _ollama_probe(url, timeout=30.0, contexts=(256,)):
    return probe_once(ollama, url, None, contexts, seed=1, timeout=timeout)


def _openai_probe(url, timeout=30.0, contexts=(256,)):
    return probe_once(oa, url, None, contexts, seed=1, timeout=timeout)


# ------------------------------------------------------------------ time
def test_a_trickled_body_ends_at_the_deadline_not_at_the_per_read_timeout():
    head = http_head(200, {"Content-Type": "application/json", "Content-Length": 10_000})
    trickle = Reply(iter([head, b'{"version"', *([b" "] * 10_000)]), pause=0.3)
    with HostileServer(ollama_routes({"/api/version": trickle})) as s:
        _, err, took = timed(_ollama_probe, s.url, timeout=1.5)
    assert "did not answer GET /api/version within 1.5 s" in _one_line(err)
    assert "bytes and kept the connection open" in str(err)
    assert 1.4 < took < 3.0  # every read got a byte within 0.3 s: only an overall deadline ends this


def test_trickled_headers_end_at_the_deadline_too():
    headers = Reply(chain([b"HTTP/1.1 200 OK\r\n"], forever(b"X-Pad: 1\r\n")), pause=0.2)
    with HostileServer(openai_routes({"/v1/models": headers})) as s:
        _, err, took = timed(_openai_probe, s.url, timeout=1.0)
    assert "did not answer GET /v1/models within 1 s" in _one_line(err)
    assert took < 2.5


@pytest.mark.parametrize("events, what", [
    (forever(b": ping\n\n"), "only SSE comments"),
    (iter([b'data: {"choices": [{"text": " a"}]}\n\n']), "one token, then silence without [DONE]"),
])
def test_a_stream_that_never_finishes_ends_at_the_deadline(events, what):
    with HostileServer(openai_routes({"/v1/completions": sse_reply(events, pause=0.1, hold=30)})) as s:
        _, err, took = timed(_openai_probe, s.url, timeout=1.2)
    assert "did not answer POST /v1/completions within 1.2 s" in _one_line(err), what
    assert took < 3.0


def test_a_stream_that_never_stops_talking_is_cut_short():
    chunk = b'data: {"choices": [{"text": " tok"}]}\n\n'
    with HostileServer(openai_routes({"/v1/completions": sse_reply(forever(chunk))})) as s:
        _, err, took = timed(_openai_probe, s.url, timeout=10)
    assert "the server ignores max_tokens" in _one_line(err)
    assert took < 5


def test_cancel_stops_a_waiting_request_within_a_second():
    cancel = threading.Event()
    route = openai_routes({"/v1/completions": sse_reply(forever(b": ping\n\n"), pause=0.1)})
    with HostileServer(route) as s:
        threading.Timer(0.5, cancel.set).start()
        with oa.Client(s.url, timeout=60, cancel=cancel) as c:
            _, err, took = timed(oa.probe, c, "m", contexts=[256])
    assert _one_line(err) == "probe cancelled" and took < 2.0


# ------------------------------------------------------------------ memory
def test_a_gzip_bomb_stops_at_the_cap():
    bomb = gzip_bomb(256 * 2**20)  # 256 MiB of zeros in about 256 KB
    reply = Reply([http_head(200, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                   "Content-Length": len(bomb)}) + bomb])
    with HostileServer(ollama_routes({"/api/tags": reply})) as s:
        _, err, took = timed(_ollama_probe, s.url)
    assert f"sent more than {MAX_BODY // 2**20} MiB" in _one_line(err) and took < 5


def test_an_endless_chunked_body_stops_at_the_cap():
    chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
    reply = Reply(chain([http_head(200, {"Transfer-Encoding": "chunked", "Content-Type": "text/event-stream"})],
                        forever(chunk)))
    with HostileServer(openai_routes({"/v1/completions": reply})) as s:
        _, err, took = timed(_openai_probe, s.url)
    msg = _one_line(err)
    assert f"more than {MAX_STREAM // 2**20} MiB" in msg or "streamed a line longer than" in msg
    assert took < 10


def test_a_gzipped_honest_answer_is_still_read():
    data = gzip_json({"version": "0.6.0"})
    reply = Reply([http_head(200, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                   "Content-Length": len(data)}) + data])
    with HostileServer(ollama_routes({"/api/version": reply})) as s:
        r = _ollama_probe(s.url)
    assert r.kv_bytes_per_token == pytest.approx(28672)


def test_an_encoding_the_probe_does_not_read_is_named():
    reply = Reply([http_head(200, {"Content-Encoding": "br", "Content-Length": 4}) + b"\x00\x01\x02\x03"])
    with HostileServer(ollama_routes({"/api/tags": reply})) as s:
        _, err, _ = timed(_ollama_probe, s.url)
    assert "content encoding 'br'" in _one_line(err)


# ------------------------------------------------------------------ lies
_SHOW = {"general.architecture": "qwen2", "qwen2.block_count": 28, "qwen2.attention.head_count": 12,
         "qwen2.attention.head_count_kv": 2, "qwen2.embedding_length": 1536, "qwen2.context_length": 32768}


@pytest.mark.parametrize("path, answer, words", [
    ("/api/show", {"model_info": [1, 2, 3]}, "model_info is a list"),
    ("/api/show", {"model_info": {**_SHOW, "qwen2.attention.head_count_kv": 100_000_000}},
     "qwen2.attention.head_count_kv = 100000000 is not a whole number"),
    ("/api/show", {"model_info": {**_SHOW, "qwen2.block_count": "28"}}, "qwen2.block_count = '28'"),
    ("/api/show", b'{"model_info": {"general.architecture": "qwen2", "qwen2.context_length": 1e400}}',
     "qwen2.context_length = inf"),
    ("/api/ps", b'{"models": [{"name": "m:1b", "size_vram": 1e400}]}', "size_vram = inf"),
    ("/api/ps", {"models": [{"name": "m:1b", "size_vram": -5}]}, "size_vram = -5"),
    ("/api/tags", {"models": [{"name": 5}]}, "models[0].name = 5"),
    ("/api/tags", b"[" * 100_000 + b"]" * 100_000, "did not answer JSON"),
])
def test_an_ollama_that_lies_fails_in_one_line_naming_the_figure(path, answer, words):
    with HostileServer(ollama_routes({path: answer})) as s:
        _, err, _ = timed(_ollama_probe, s.url)
    assert words in _one_line(err)


def test_generate_figures_are_checked():
    def generate(method, path, body):
        if not body.get("prompt"):
            return json_reply({"done": True})
        return json_reply({"done": True, "prompt_eval_count": "many", "prompt_eval_duration": 1,
                           "eval_count": 1, "eval_duration": 1})

    with HostileServer(ollama_routes({"/api/generate": generate})) as s:
        _, err, _ = timed(_ollama_probe, s.url)
    assert "prompt_eval_count = 'many'" in _one_line(err)


def _sse(*objs) -> Reply:
    return sse_reply([b"data: " + (o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n\n" for o in objs]
                     + [b"data: [DONE]\n\n"])


@pytest.mark.parametrize("route, words", [
    ({"/v1/models": {"data": [{"id": 5}]}}, "data[0].id = 5"),
    ({"/v1/models": {"data": [{"id": "m", "max_model_len": "lots"}]}}, "max_model_len = 'lots'"),
    ({"/v1/models": b'{"data": [{"id": "m", "max_model_len": 1e400}]}'}, "max_model_len = inf"),
    ({"/v1/completions": _sse({"choices": 5})}, "choices is a int, not a list"),
    ({"/v1/completions": _sse({"choices": [{"text": " a"}], "usage": [1, 2]})}, "usage is a list"),
    ({"/v1/completions": _sse({"choices": [{"text": 7}]})}, "the streamed text is a int"),
    ({"/v1/completions": _sse({"choices": [{"text": " a"}], "usage": {"prompt_tokens": -1}})},
     "usage.prompt_tokens = -1"),
    ({"/props": {"default_generation_settings": {"n_ctx": 0}, "total_slots": 1}},
     "default_generation_settings.n_ctx = 0"),
    ({"/props": {"default_generation_settings": {"n_ctx": 2048}, "total_slots": 4},
      "/slots": [{"id": 0, "n_ctx": "2048"}]}, "[0].n_ctx = '2048'"),
])
def test_an_openai_server_that_lies_fails_in_one_line_naming_the_figure(route, words):
    with HostileServer(openai_routes(route)) as s:
        _, err, _ = timed(_openai_probe, s.url)
    assert words in _one_line(err)


def test_a_server_message_with_newlines_stays_one_line():
    route = openai_routes({"/v1/completions": json_reply({"error": {"message": "bad\nthing\r\n\x1b[31mred"}}, 400)})
    with HostileServer(route) as s:
        _, err, _ = timed(_openai_probe, s.url)
    assert "HTTP 400: bad thing [31mred" in _one_line(err) and "\x1b" not in str(err)


# ------------------------------------------------------------------ addresses
@pytest.mark.parametrize("url, words", [
    ("http://[::1", "is not a valid URL (Invalid IPv6 URL)"),
    ("ftp://h", "uses ftp://, which the probes don't speak"),
    ("http://h:99999", "Port out of range"),
    ("http://", "names no host"),
    ("http://a b", "spaces or control characters"),
    ("http://u:p@h", "user name or password"),
])
def test_urls_that_cannot_be_used_are_one_line_exit_2(url, words):
    with pytest.raises(BadUrl) as e:
        normalize_url(url)
    assert words in _one_line(e.value) and e.value.exit_code == 2


def test_bare_host_port_gets_http_and_nothing_else_does():
    assert normalize_url("localhost:11434") == "http://localhost:11434"
    assert normalize_url(" HTTPS://Example.com:8443/v1/ ") == "https://Example.com:8443/v1"
    assert normalize_url("http://[::1]:8000") == "http://[::1]:8000"


def test_https_to_a_plain_http_server_says_tls_not_refused(openai_server):
    url = openai_server.url.replace("http://", "https://")  # http.server: answers the ClientHello with a 400
    _, err, took = timed(_openai_probe, url)
    msg = _one_line(err)
    assert "TLS handshake failed (a plain-HTTP server? try http://)" in msg and "refused" not in msg
    assert took < 5


def test_plain_http_to_a_tls_server_says_so():
    garbage = Reply([b"\x15\x03\x01\x00\x02\x02\x50"])  # a TLS alert record, what an HTTPS port answers
    with HostileServer(lambda m, p, b: garbage) as s:
        _, err, _ = timed(_openai_probe, s.url)
    assert "did not answer in HTTP/1.1" in _one_line(err) and "try https://" in str(err)


def test_a_closed_port_is_refused_and_an_unknown_host_is_named():
    _, err, _ = timed(_openai_probe, "http://127.0.0.1:9")
    assert "connection refused" in _one_line(err)
    _, err, _ = timed(_openai_probe, "http://no-such-host.invalid:8000")
    assert "host 'no-such-host.invalid' unknown" in _one_line(err) or "cannot reach" in str(err)


def test_the_client_itself_bounds_time_and_bytes_for_any_path():
    with HostileServer(lambda m, p, b: sse_reply(forever(b"x" * 1000 + b"\n"))) as s:
        with HttpClient(s.url, "server", timeout=5) as c:
            _, err, took = timed(lambda: list(c.stream("GET", "/").__enter__().lines()))
    assert "more than 16 MiB" in _one_line(err) and took < 5
