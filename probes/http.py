"""One HTTP client for the server probes: bounded in time and memory, every failure one line.

- **Time.** `timeout` bounds a whole request: connecting, the headers and the body, however the
  server dribbles them out. A server that trickles a byte every 2 s, a stream that never sends
  `[DONE]`, or one that only sends `: ping` comments ends at the deadline, not never. The limit
  lives in the network layer (every socket read waits at most what is left of the deadline), so
  it also holds while the headers arrive. A `cancel` event is checked at least twice a second.
- **Memory.** Every body is read by this module, never whole by httpx: at most `MAX_BODY` bytes
  of JSON, `MAX_STREAM` bytes of a streamed answer, one line at most `MAX_LINE`, counted both on
  the wire (compressed, chunked) and after inflating gzip/deflate (a 1 MB gzip bomb stops at the
  cap, not at 1 GiB). Other content encodings are refused.
- **Errors.** ProbeError with one line (exit 4): what the server did, in words a user can act on
  (refused, unknown host, TLS to a plain-HTTP port, not HTTP, HTTP 4xx/5xx with the server's
  message, too slow, too large, not JSON). A URL that can't be used is BadUrl (exit 2).
- **Figures.** `number()` checks one figure a server reported (type, finite, range) and names it.
"""

from __future__ import annotations

import json
import math
import re
import socket
import ssl
import threading
import time
import zlib
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import httpcore
import httpx

from advisor.errors import ProbeError

MAX_BODY = 8 * 2**20     # a JSON/text answer, inflated
MAX_STREAM = 16 * 2**20  # one streamed answer, inflated
MAX_LINE = 2**20         # one line of a stream
MAX_ERROR_BODY = 64 * 2**10
SLICE_S = 0.5            # how often a blocked read looks at the deadline and the cancel event


class BadUrl(ProbeError):
    """--url can't be used as given: bad input, not a server failure."""

    exit_code = 2


def one_line(text: object, limit: int = 160) -> str:
    """A server's words fit for one line: control characters and runs of space collapsed, cut short."""
    s = re.sub(r"[\x00-\x20\x7f-\x9f\u2028\u2029]+", " ", str(text)).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


def normalize_url(url: str, field: str = "--url") -> str:
    """http(s)://host[:port][/path] without a trailing slash; a bare host:port gets http://."""
    raw = str(url)
    shown = one_line(raw, 80)
    text = raw.strip()
    if not text:
        raise BadUrl(f"{field}: empty; expected a server address like http://localhost:8000")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadUrl(f"{field}: {shown!r} has spaces or control characters; expected a URL like http://localhost:8000")
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if m:
        scheme = m.group(1).lower()
        if scheme not in ("http", "https"):
            raise BadUrl(f"{field}: {shown!r} uses {scheme}://, which the probes don't speak; "
                         "expected http:// or https://")
        text = scheme + text[len(m.group(1)):]
    elif "://" in text or text.startswith("/"):
        raise BadUrl(f"{field}: {shown!r} is not a URL; expected http://HOST:PORT")
    else:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
        host = parts.hostname
    except ValueError as e:
        raise BadUrl(f"{field}: {shown!r} is not a valid URL ({one_line(e, 60)}); expected http://HOST:PORT") from None
    if not host:
        raise BadUrl(f"{field}: {shown!r} names no host; expected http://HOST:PORT")
    if parts.username or parts.password:
        raise BadUrl(f"{field}: {shown!r} carries a user name or password; expected http://HOST:PORT")
    if port == 0:
        raise BadUrl(f"{field}: {shown!r} has port 0; expected a port 1-65535")
    base = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
    try:
        httpx.URL(base)
    except (httpx.InvalidURL, ValueError, TypeError) as e:
        raise BadUrl(f"{field}: {shown!r} is not a valid URL ({one_line(e, 60)}); expected http://HOST:PORT") from None
    return base


def host_of(base: str) -> str:
    return urlsplit(base).hostname or ""


def is_loopback(base: str) -> bool:
    host = host_of(base).lower()
    return host in ("localhost", "::1", "0.0.0.0", "::") or host.startswith("127.") or host.endswith(".localhost")


# ------------------------------------------------------------------ the bounded network layer
class _Budget:
    """What one request may still spend: a deadline, wire bytes, a cancel event. One per client."""

    def __init__(self, cancel: threading.Event | None):
        self.cancel = cancel
        self.deadline: float | None = None
        self.raw = 0
        self.raw_cap = MAX_STREAM
        self.tripped = ""  # "deadline" | "size" | "cancel": why the network layer stopped a request

    def start(self, seconds: float, raw_cap: int) -> None:
        self.deadline = time.monotonic() + seconds
        self.raw, self.raw_cap, self.tripped = 0, raw_cap, ""

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def check(self, error) -> None:
        if self.cancel is not None and self.cancel.is_set():
            self.tripped = "cancel"
            raise error("probe cancelled")
        if self.left() <= 0:
            self.tripped = "deadline"
            raise error("deadline passed")

    def clamp(self, timeout: float | None, error) -> float:
        self.check(error)
        left = self.left()
        return left if timeout is None else max(min(timeout, left), 0.001)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, budget: _Budget):
        self.inner, self.budget = inner, budget

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        b = self.budget
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            b.check(httpcore.ReadTimeout)
            wait = min(b.left(), SLICE_S, math.inf if until is None else until - time.monotonic())
            try:
                data = self.inner.read(max_bytes, max(wait, 0.001))
            except httpcore.ReadTimeout:
                if until is not None and time.monotonic() >= until:
                    raise
                continue  # a slice ended: look at the deadline and the cancel event, then wait on
            b.raw += len(data)
            if b.raw > b.raw_cap:
                b.tripped = "size"
                raise httpcore.ReadError("answer larger than the cap")
            return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.budget.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        tls = self.inner.start_tls(ssl_context, server_hostname, self.budget.clamp(timeout, httpcore.ConnectTimeout))
        return _Stream(tls, self.budget)

    def get_extra_info(self, info: str):
        return self.inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, budget: _Budget):
        self.inner, self.budget = httpcore.SyncBackend(), budget

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        t = self.budget.clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self.inner.connect_tcp(host, port, t, local_address, socket_options), self.budget)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):  # pragma: no cover - not used
        t = self.budget.clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self.inner.connect_unix_socket(path, t, socket_options), self.budget)

    def sleep(self, seconds: float) -> None:  # pragma: no cover - retries are off
        self.inner.sleep(min(seconds, max(self.budget.left(), 0)))


def _transport(budget: _Budget) -> httpx.HTTPTransport:
    t = httpx.HTTPTransport(retries=0)
    pool = getattr(t, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):  # pragma: no cover - httpx internals moved
        raise RuntimeError("httpx/httpcore changed: the probes' bounded network layer needs updating")
    pool._network_backend = _Backend(budget)
    return t


# ------------------------------------------------------------------ bodies: bounded, inflated here
class _Inflate:
    """gzip/deflate/identity, never more than the room left (zlib's max_length)."""

    def __init__(self, encoding: str, where: str):
        enc = [e.strip().lower() for e in (encoding or "").split(",") if e.strip() and e.strip().lower() != "identity"]
        if len(enc) > 1 or (enc and enc[0] not in ("gzip", "x-gzip", "deflate")):
            raise ProbeError(f"{where} answered in content encoding {one_line(encoding, 40)!r}, which the probe "
                             "does not read (expected gzip, deflate or none)")
        self.kind = enc[0] if enc else ""
        self.where = where
        self.d = None
        if self.kind in ("gzip", "x-gzip"):
            self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.kind == "deflate":
            self.d = zlib.decompressobj(zlib.MAX_WBITS)
            self._first = True

    def feed(self, data: bytes, room: int) -> bytes:
        if self.d is None:
            return data[: room + 1]
        if self.d.eof:
            return b""
        try:
            out = self.d.decompress(data, room + 1)
        except zlib.error:
            if self.kind == "deflate" and getattr(self, "_first", False):  # raw deflate, no zlib header
                self.d, self._first = zlib.decompressobj(-zlib.MAX_WBITS), False
                return self.feed(data, room)
            raise ProbeError(f"{self.where} sent a damaged {self.kind} body") from None
        self._first = False
        return out


class HttpClient:
    """`timeout`: the most one request may take, start to last byte (None: 30 s)."""

    def __init__(self, base: str, what: str, timeout: float | None = 30.0, hint: str = "",
                 cancel: threading.Event | None = None):
        self.base = normalize_url(base)
        self.what, self.hint = what, hint
        t = 30.0 if timeout is None else float(timeout)
        if not (math.isfinite(t) and t > 0):
            raise BadUrl(f"--timeout: {timeout!r} is not allowed; expected a number of seconds > 0")
        self.timeout = t
        self._budget = _Budget(cancel)
        self._c = httpx.Client(base_url=self.base, transport=_transport(self._budget),
                               timeout=httpx.Timeout(t, connect=min(t, 10.0)),
                               headers={"Accept-Encoding": "identity", "User-Agent": "advisor-probe"})

    def close(self) -> None:
        self._c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -------------------------------------------------------------- errors in words
    def _where(self) -> str:
        return f"{self.what} at {self.base}"

    def _fail(self, method: str, path: str, e: Exception, limit: float, got: int = 0) -> ProbeError:
        where = self._where()
        tripped = self._budget.tripped
        if tripped == "cancel":
            return ProbeError("probe cancelled")
        if tripped == "deadline" or isinstance(e, httpx.TimeoutException):
            if isinstance(e, httpx.ConnectTimeout):
                return ProbeError(f"{where} did not accept a connection within {min(limit, 10.0):g} s"
                                  + (f" ({self.hint})" if self.hint else ""))
            more = f" (it sent {got:,} bytes and kept the connection open)" if got else ""
            return ProbeError(f"{where} did not answer {method} {path} within {limit:g} s{more}")
        if tripped == "size":
            return ProbeError(f"{where}: {method} {path} sent more than {self._budget.raw_cap // 2**20} MiB; "
                              "the probe stops reading there (not the server it expects?)")
        if isinstance(e, httpx.ConnectError):
            words = _connect_words(where, e, self.base)
            hint = self.hint and ("refused" in words or "unknown" in words)
            return ProbeError(words + (f" ({self.hint})" if hint else ""))
        if isinstance(e, httpx.RemoteProtocolError) and not got:
            text = str(e).lower()
            if "illegal" in text or "invalid" in text or "malformed" in text or "bad" in text:
                tls = " (an HTTPS server? try https://)" if self.base.startswith("http://") else ""
                return ProbeError(f"{where} did not answer in HTTP/1.1 to {method} {path}{tls}")
        if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return ProbeError(f"{where} closed the connection in the middle of {method} {path} (truncated answer)")
        return ProbeError(f"{where}: {method} {path} failed ({e.__class__.__name__}: {one_line(e, 120)})")

    # -------------------------------------------------------------- requests
    def _open(self, method: str, path: str, limit: float, raw_cap: int, kw: dict) -> httpx.Response:
        self._budget.start(limit, raw_cap)
        try:
            req = self._c.build_request(method, path, timeout=httpx.Timeout(limit, connect=min(limit, 10.0)), **kw)
            r = self._c.send(req, stream=True)
        except httpx.HTTPError as e:
            raise self._fail(method, path, e, limit) from None
        except (httpx.InvalidURL, ValueError) as e:
            raise BadUrl(f"--url: {self.base}{path} can't be requested ({one_line(e, 80)})") from None
        if r.status_code >= 400:
            try:
                body = self._read(r, method, path, limit, MAX_ERROR_BODY, truncate=True)
            except ProbeError:
                body = b""
            finally:
                r.close()
            raise ProbeError(f"{self._where()}: {method} {path} answered HTTP {r.status_code}"
                             + _server_message(body))
        return r

    def _chunks(self, r: httpx.Response, method: str, path: str, limit: float, cap: int, truncate=False):
        """Inflated body pieces, at most cap bytes in all (truncate=False: more is an error)."""
        inflate = _Inflate(r.headers.get("content-encoding", ""), f"{self._where()}: {method} {path}")
        total = 0
        try:
            for raw in r.iter_raw():
                out = inflate.feed(raw, cap - total)
                total += len(out)
                if total > cap:
                    if truncate:
                        yield out[: len(out) - (total - cap)]
                        return
                    raise ProbeError(f"{self._where()}: {method} {path} sent more than {cap // 2**20} MiB; "
                                     "the probe stops reading there (not the server it expects?)")
                if out:
                    yield out
        except httpx.HTTPError as e:
            raise self._fail(method, path, e, limit, got=max(total, self._budget.raw)) from None

    def _read(self, r, method, path, limit, cap, truncate=False) -> bytes:
        return b"".join(self._chunks(r, method, path, limit, cap, truncate))

    def _limit(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else min(self.timeout, float(timeout))

    def text(self, method: str, path: str, timeout: float | None = None, **kw) -> str:
        limit = self._limit(timeout)
        r = self._open(method, path, limit, MAX_BODY, kw)
        try:
            return self._read(r, method, path, limit, MAX_BODY).decode("utf-8", errors="replace")
        finally:
            r.close()

    def json(self, method: str, path: str, timeout: float | None = None, **kw) -> Any:
        limit = self._limit(timeout)
        r = self._open(method, path, limit, MAX_BODY, kw)
        try:
            body = self._read(r, method, path, limit, MAX_BODY)
        finally:
            r.close()
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            snippet = body[:60].decode("utf-8", errors="replace")
            raise ProbeError(f"{self._where()}: {method} {path} did not answer JSON "
                             f"(truncated, or not a {self.what}): {one_line(snippet, 60)!r}") from None

    def stream(self, method: str, path: str, timeout: float | None = None, **kw):
        return _LineStream(self, method, path, self._limit(timeout), kw)


class _LineStream:
    """Context manager over a streamed answer: .lines() yields its lines (bounded, within the deadline)."""

    def __init__(self, client: HttpClient, method: str, path: str, limit: float, kw: dict):
        self.client, self.method, self.path, self.limit, self.kw = client, method, path, limit, kw
        self.response: httpx.Response | None = None

    def __enter__(self):
        self.response = self.client._open(self.method, self.path, self.limit, MAX_STREAM, self.kw)
        return self

    def lines(self):
        c = self.client
        buf = b""
        for piece in c._chunks(self.response, self.method, self.path, self.limit, MAX_STREAM):
            buf += piece
            while True:
                i = buf.find(b"\n")
                if i < 0:
                    break
                line, buf = buf[:i], buf[i + 1:]
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")
            if len(buf) > MAX_LINE:
                raise ProbeError(f"{c._where()}: {self.method} {self.path} streamed a line longer than "
                                 f"{MAX_LINE // 2**20} MiB (not the server it expects?)")
        if buf:
            yield buf.rstrip(b"\r").decode("utf-8", errors="replace")

    def __exit__(self, *exc):
        if self.response is not None:
            try:
                self.response.close()
            except (httpx.HTTPError, OSError):
                pass
            self.response = None
        return False


def _chain(e: BaseException | None):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _connect_words(where: str, e: Exception, base: str) -> str:
    causes = list(_chain(e))
    text = " ".join(str(c) for c in causes).lower()
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes) or "certificate verify failed" in text:
        return f"cannot reach {where}: its TLS certificate is not trusted ({one_line(causes[-1], 100)})"
    if any(isinstance(c, ssl.SSLError) for c in causes) or "ssl" in text or "tls" in text:
        plain = " (a plain-HTTP server? try http://)" if base.startswith("https://") else ""
        return f"cannot reach {where}: the TLS handshake failed{plain}: {one_line(causes[-1], 100)}"
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in text:
        return f"cannot reach {where}: connection refused"
    if any(isinstance(c, socket.gaierror) for c in causes) or "name or service not known" in text \
            or "nodename nor servname" in text or "temporary failure in name resolution" in text:
        return f"cannot reach {where}: host {host_of(base)!r} unknown"
    return f"cannot reach {where}: {one_line(causes[-1], 100)}"


def _server_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        text = body.decode("utf-8", errors="replace").strip()
        return f": {one_line(text, 120)}" if text else ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    if err is None and isinstance(data, dict):
        err = data.get("message") or data.get("detail")
    return f": {one_line(err, 160)}" if err else ""


def loads_line(line: str, what: str) -> dict:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        raise ProbeError(f"{what}: a streamed line is not JSON (truncated?): {one_line(line, 60)!r}") from None
    if not isinstance(data, dict):
        raise ProbeError(f"{what}: a streamed line is not a JSON object: {one_line(line, 60)!r}")
    return data


# ------------------------------------------------------------------ the figures a server reports
def number(value: Any, field: str, where: str, *, lo: float = 0, hi: float = 1e15, integer: bool = False,
           optional: bool = False):
    """`value` as a checked int/float in [lo, hi]; else one ProbeError line naming the field."""
    if value is None and optional:
        return None
    kind = "whole number" if integer else "number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and (not integer or value.is_integer())
    if ok:
        ok = lo <= value <= hi
    if not ok:
        shown = one_line(repr(value), 40)
        raise ProbeError(f"{where}: {field} = {shown} is not a {kind} in {lo:,g} .. {hi:,g} (a server that lies?)")
    return int(value) if integer else float(value)


def object_list(client: HttpClient, path: str, key: str, where: str, not_list: str = "", *,
                timeout: float | None = None) -> list[dict]:
    """GET `path` and its `key` list, every entry an object; else ProbeError naming the entry (`where`)."""
    data = client.json("GET", path, timeout=timeout)
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ProbeError(f"{where} has no '{key}' list{not_list}")
    for i, m in enumerate(items):
        if not isinstance(m, dict):
            raise ProbeError(f"{where}: {key}[{i}] is not an object")
    return items


@overload
def text_field(value: Any, field: str, where: str, *, optional: Literal[False], limit: int = 200) -> str: ...
@overload
def text_field(value: Any, field: str, where: str, *, optional: bool = True, limit: int = 200) -> str | None: ...
def text_field(value: Any, field: str, where: str, *, optional: bool = True, limit: int = 200) -> str | None:
    """A name a server reported: a string of at most `limit` characters (None when absent and optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ProbeError(f"{where}: {field} = {one_line(repr(value), 40)} is not a name of at most {limit} characters")
    return value
