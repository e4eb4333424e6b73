"""Loopback servers that misbehave on the wire: real sockets, one thread per connection.

A route answers (method, path, body) with a Reply: raw bytes to send, optionally in pieces with a
pause before each, optionally forever. Everything a route sends stops when the server stops, so
no test leaves a thread writing. Used by tests/probes and tests/fuzz.
"""

from __future__ import annotations

import gzip
import itertools
import json
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Reply:
    pieces: Iterable[bytes]     # what to send, in order (may be endless)
    pause: float = 0.0          # before each piece after the first
    hold: float = 0.0           # after the last piece, keep the connection open this long


def http_head(status: int = 200, headers: dict | None = None, reason: str = "OK") -> bytes:
    # The handler answers one request per connection and closes it: saying so keeps a client from
    # reusing a pooled connection the server has already closed (a race that read as a truncated
    # answer to the *next* request, on a loaded machine)
    headers = {"Connection": "close", **(headers or {})}
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_reply(obj, status: int = 200) -> Reply:
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return Reply([http_head(status, {"Content-Type": "application/json", "Content-Length": len(data),
                                     "Connection": "close"}) + data])


def sse_reply(events: Iterable[bytes], pause: float = 0.0, hold: float = 0.0) -> Reply:
    head = http_head(200, {"Content-Type": "text/event-stream", "Connection": "close"})
    return Reply(itertools.chain([head], events), pause=pause, hold=hold)


def gzip_bomb(inflated: int = 2**30) -> bytes:
    """A valid gzip body of `inflated` zero bytes (1 GiB -> about 1 MB on the wire), built fast.

    One MiB of zeros is deflated once and ended with a full flush, which makes it a byte-aligned
    piece that refers to nothing before it: repeating that piece is valid deflate data.
    """
    block = bytes(2**20)
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    n = inflated // len(block)
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    end = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # an empty final block
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = (crc & 0xFFFFFFFF).to_bytes(4, "little") + ((n * len(block)) & 0xFFFFFFFF).to_bytes(4, "little")
    return header + piece * n + end + trailer


def gzip_json(obj) -> bytes:
    return gzip.compress(json.dumps(obj).encode())


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv: HostileServer = self.server  # type: ignore[assignment]
        sock: socket.socket = self.request
        sock.settimeout(5)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = (lines[0].split(" ") + ["", ""])[:3]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            n = int(headers.get("content-length") or 0)
            while len(body) < n:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = {}
            srv.log.append((method, path, parsed))
            reply = srv.route(method, path, parsed)
            for i, piece in enumerate(reply.pieces):
                if i and reply.pause and srv.stopping.wait(reply.pause):
                    return
                if srv.stopping.is_set():
                    return
                sock.sendall(piece)
            if reply.hold:
                srv.stopping.wait(reply.hold)
        except OSError:
            return  # the client hung up: what a bounded client does


class HostileServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, route: Callable[[str, str, dict], Reply]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.route = route
        self.log: list = []
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.shutdown()
        self.server_close()
        return False


def forever(piece: bytes) -> Iterable[bytes]:
    return itertools.repeat(piece)


def timed(fn: Callable, *a, **kw):
    t0 = time.monotonic()
    try:
        return fn(*a, **kw), None, time.monotonic() - t0
    except Exception as e:  # the caller checks what was raised
        return None, e, time.monotonic() - t0


# ------------------------------------------------------------------ well-behaved bases to lie from
GIB = 2**30


def _overridden(o, method: str, path: str, body: dict) -> Reply:
    """A test's override for one path: a Reply, JSON to answer, or a function of the request giving either."""
    o = o(method, path, body) if callable(o) else o
    return o if isinstance(o, Reply) else json_reply(o)


def ollama_routes(overrides: dict | None = None) -> Callable[[str, str, dict], Reply]:
    """A minimal Ollama: every path answers well unless `overrides` (path -> Reply or JSON) says otherwise."""
    state = {"ctx": 2048}
    overrides = overrides if overrides is not None else {}

    def route(method, path, body):
        if path in overrides:
            return _overridden(overrides[path], method, path, body)
        if path == "/api/version":
            return json_reply({"version": "0.6.0"})
        if path == "/api/tags":
            return json_reply({"models": [{"name": "m:1b", "model": "m:1b", "size": GIB}]})
        if path == "/api/ps":
            size = GIB + 28672 * state["ctx"]
            return json_reply({"models": [{"name": "m:1b", "model": "m:1b", "size": size, "size_vram": size}]})
        if path == "/api/show":
            return json_reply({"details": {"quantization_level": "Q4_K_M"},
                               "model_info": {"general.architecture": "qwen2", "qwen2.block_count": 28,
                                              "qwen2.attention.head_count": 12, "qwen2.attention.head_count_kv": 2,
                                              "qwen2.embedding_length": 1536, "qwen2.context_length": 32768}})
        if path == "/api/generate":
            state["ctx"] = (body.get("options") or {}).get("num_ctx", 2048)
            if not body.get("prompt"):
                return json_reply({"model": "m:1b", "response": "", "done": True})
            n = len(str(body["prompt"]).split())
            return json_reply({"model": "m:1b", "response": "x", "done": True, "prompt_eval_count": n,
                               "prompt_eval_duration": n * 100_000, "eval_count": 32, "eval_duration": 32 * 8_000_000})
        return json_reply({"error": "not found"}, 404)

    return route


def openai_routes(overrides: dict | None = None, model: str = "m") -> Callable[[str, str, dict], Reply]:
    """A minimal OpenAI-compatible server (vLLM-like), streaming well unless `overrides` says otherwise."""
    overrides = overrides if overrides is not None else {}

    def route(method, path, body):
        if path in overrides:
            return _overridden(overrides[path], method, path, body)
        if path == "/v1/models":
            return json_reply({"object": "list", "data": [{"id": model, "object": "model", "max_model_len": 32768}]})
        if path in ("/v1/completions", "/v1/chat/completions"):
            n = len(str(body.get("prompt") or body.get("messages")).split())
            chunk = {"choices": [{"index": 0, "text": " tok", "delta": {"content": " tok"}}]}
            usage = {"choices": [], "usage": {"prompt_tokens": n, "completion_tokens": 4}}
            events = [b"data: " + json.dumps(chunk).encode() + b"\n\n"] * 4
            events += [b"data: " + json.dumps(usage).encode() + b"\n\n", b"data: [DONE]\n\n"]
            return sse_reply(events)
        return json_reply({"detail": "Not Found"}, 404)

    return route


@dataclass
class Recorder:
    """Progress reports, for tests that check what a probe says while it runs."""

    seen: list = field(default_factory=list)

    def __call__(self, p):
        self.seen.append(p)
