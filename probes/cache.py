"""Probe results cached per (GPU, model, backend, attention, dtype, library versions).

One JSON file per key under $ADVISOR_CACHE_DIR/probes, else $XDG_CACHE_HOME/advisor/probes,
else ~/.cache/advisor/probes. A second run with the same key is answered from here
(cached=True); `--fresh` measures again and overwrites. A damaged file is ignored.

Safe across threads and processes: every writer writes its own temporary file (pid, thread and
a random part in the name) and renames it over the entry, so a reader sees a whole entry, old or
new, never a torn one, and no writer's rename takes another's file. A reader opens non-blocking,
accepts only a regular file of at most MAX_ENTRY bytes, and reads no more than that: a FIFO,
/dev/zero or a huge file placed as an entry is skipped, never waited on or read whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import threading
import time
from pathlib import Path

from pydantic import ValidationError

from advisor.domain import ProbeResult


def cache_root() -> Path:
    """The advisor's cache folder: $ADVISOR_CACHE_DIR, else $XDG_CACHE_HOME/advisor, else ~/.cache/advisor."""
    if os.environ.get("ADVISOR_CACHE_DIR"):
        return Path(os.environ["ADVISOR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "advisor"


def cache_dir() -> Path:
    return cache_root() / "probes"


def make_key(gpu: str, model: str, backend: str, attention: str = "", dtype: str = "",
             versions: dict[str, str] | None = None, url: str = "") -> dict:
    return {"gpu": gpu, "model": model, "backend": backend, "attention": attention, "dtype": dtype,
            "versions": dict(sorted((versions or {}).items())), "url": url}


def _path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in f"{key['backend']}-{key['model']}")[-60:]
    return cache_dir() / f"{safe}-{digest}.json"


def load(key: dict) -> ProbeResult | None:
    entry = _read(_path(key))
    if entry is None or entry[0] != key:
        return None
    return entry[1]


MAX_ENTRY = 4 * 2**20  # a transformers result with its curve is tens of KB
TMP_SUFFIX = ".tmp"
STALE_TMP_S = 3600  # a temporary file this old was left by a writer that died


def store(key: dict, result: ProbeResult) -> Path | None:
    """Write atomically; a cache that can't be written is not an error (the result still stands)."""
    path = _path(key)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"key": key, "result": result.model_copy(update={"cached": False}).model_dump(mode="json")}
        blob = json.dumps(data, indent=1, allow_nan=False).encode("utf-8")
        if len(blob) > MAX_ENTRY:
            return None
        tmp = path.parent / (f".{path.stem}.{os.getpid()}.{threading.get_ident()}."
                             f"{secrets.token_hex(6)}{TMP_SUFFIX}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        for attempt in range(5):  # Windows: a reader holding the entry open blocks the rename a moment
            try:
                os.replace(tmp, path)
                break
            except PermissionError:
                if attempt == 4:
                    raise
                time.sleep(0.02 * (attempt + 1))
        tmp = None
        _sweep(path.parent)
        return path
    except (OSError, ValueError):
        return None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _sweep(folder: Path) -> None:
    """Remove temporary files that writers which died left behind (never a live writer's)."""
    now = time.time()
    try:
        for p in folder.glob(f".*{TMP_SUFFIX}"):
            try:
                if now - p.lstat().st_mtime > STALE_TMP_S:
                    p.unlink()
            except OSError:
                continue
    except OSError:
        pass


def read_bounded(path: Path | str, limit: int = MAX_ENTRY) -> bytes | None:
    """A regular file's bytes, at most `limit`; None for anything else (FIFO, device, directory, too big).

    Opened with O_NONBLOCK, so a FIFO with no writer does not block the open, and checked with
    fstat on the open descriptor (no race between the check and the read).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 16, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                return None
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(path: Path) -> tuple[dict, ProbeResult] | None:
    raw = read_bounded(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        result = ProbeResult.model_validate(data["result"])
        key = data["key"]
        if not isinstance(key, dict):
            return None
        return key, result.model_copy(update={"cached": True})
    except (ValueError, KeyError, TypeError, RecursionError, ValidationError):
        return None


def _same_model(a: str, b: str) -> bool:
    a, b = a.strip().lower(), b.strip().lower()
    if a == b:
        return True
    try:
        from advisor.knowledge import load_knowledge

        k = load_knowledge()
        ids = []
        for name in (a, b):
            try:
                ids.append(k.model(name).id)
            except Exception:
                ids.append(name)
        return ids[0] == ids[1]
    except Exception:
        return False


def cached_results(gpu: str | None = None, model: str | None = None) -> list[ProbeResult]:
    """Every cached result for this GPU and model (catalog id, Ollama tag or HF repo), newest first."""
    d = cache_dir()
    if not d.is_dir():
        return []
    out = []
    for path in d.glob("*.json"):
        if path.name.startswith("."):
            continue
        entry = _read(path)
        if entry is None:
            continue
        key, result = entry
        if gpu is not None and str(key.get("gpu", "")).strip().lower() != gpu.strip().lower():
            continue
        if model and not _same_model(str(key.get("model", "")), model):
            continue
        out.append(result)
    out.sort(key=lambda r: r.measured_at, reverse=True)
    return out
