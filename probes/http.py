"""One HTTP client for the server probes: every failure becomes one clear ProbeError line."""

from __future__ import annotations

import json
from typing import Any

import httpx

from advisor.errors import ProbeError


class HttpClient:
    def __init__(self, base: str, what: str, timeout: float = 30.0, hint: str = ""):
        base = base.strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            base = "http://" + base
        self.base, self.what, self.hint = base, what, hint
        self.timeout = timeout
        self._c = httpx.Client(base_url=base, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))

    def close(self) -> None:
        self._c.close()

    def _fail(self, method: str, path: str, e: Exception) -> ProbeError:
        where = f"{self.what} at {self.base}"
        if isinstance(e, httpx.ConnectError):
            return ProbeError(f"cannot reach {where}: connection refused or host unknown"
                              + (f" ({self.hint})" if self.hint else ""))
        if isinstance(e, httpx.TimeoutException):
            return ProbeError(f"{where} did not answer {method} {path} within {self.timeout:g} s")
        if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)):
            return ProbeError(f"{where} closed the connection in the middle of {method} {path} (truncated answer)")
        return ProbeError(f"{where}: {method} {path} failed ({e.__class__.__name__}: {str(e)[:120]})")

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            r = self._c.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise self._fail(method, path, e) from None
        if r.status_code >= 400:
            raise ProbeError(f"{self.what} at {self.base}: {method} {path} answered HTTP {r.status_code}"
                             + _server_message(r))
        return r

    def json(self, method: str, path: str, **kw) -> Any:
        r = self.request(method, path, **kw)
        try:
            return r.json()
        except (ValueError, UnicodeDecodeError):
            raise ProbeError(f"{self.what} at {self.base}: {method} {path} did not answer JSON "
                             f"(truncated, or not a {self.what}): {r.text[:60]!r}") from None

    def stream(self, method: str, path: str, **kw):
        return _Stream(self, method, path, kw)


class _Stream:
    """Context manager yielding (arrival time, line) pairs of a streamed answer."""

    def __init__(self, client: HttpClient, method: str, path: str, kw: dict):
        self.client, self.method, self.path, self.kw = client, method, path, kw
        self._cm = None

    def __enter__(self):
        try:
            self._cm = self.client._c.stream(self.method, self.path, **self.kw)
            self.response = self._cm.__enter__()
        except httpx.HTTPError as e:
            raise self.client._fail(self.method, self.path, e) from None
        if self.response.status_code >= 400:
            self.response.read()
            code = self.response.status_code
            msg = _server_message(self.response)
            self.__exit__(None, None, None)
            raise ProbeError(f"{self.client.what} at {self.client.base}: {self.method} {self.path} "
                             f"answered HTTP {code}{msg}")
        return self

    def lines(self):
        try:
            yield from self.response.iter_lines()
        except httpx.HTTPError as e:
            raise self.client._fail(self.method, self.path, e) from None

    def __exit__(self, *exc):
        if self._cm is not None:
            try:
                self._cm.__exit__(*exc)
            except httpx.HTTPError:
                pass
            self._cm = None
        return False


def _server_message(r: httpx.Response) -> str:
    try:
        data = r.json()
    except (ValueError, UnicodeDecodeError):
        text = r.text.strip().splitlines()
        return f": {text[0][:120]}" if text else ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    if err is None and isinstance(data, dict):
        err = data.get("message") or data.get("detail")
    return f": {str(err)[:160]}" if err else ""


def loads_line(line: str, what: str) -> dict:
    try:
        data = json.loads(line)
    except ValueError:
        raise ProbeError(f"{what}: a streamed line is not JSON (truncated?): {line[:60]!r}") from None
    if not isinstance(data, dict):
        raise ProbeError(f"{what}: a streamed line is not a JSON object: {line[:60]!r}")
    return data
