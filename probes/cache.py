"""Probe results cached per (GPU, model, backend, attention, dtype, library versions).

One JSON file per key under $ADVISOR_CACHE_DIR/probes, else $XDG_CACHE_HOME/advisor/probes,
else ~/.cache/advisor/probes. A second run with the same key is answered from here
(cached=True); `--fresh` measures again and overwrites. A damaged file is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import ValidationError

from advisor.domain import ProbeResult


def cache_dir() -> Path:
    if os.environ.get("ADVISOR_CACHE_DIR"):
        return Path(os.environ["ADVISOR_CACHE_DIR"]) / "probes"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "advisor" / "probes"


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


def store(key: dict, result: ProbeResult) -> Path | None:
    """Write atomically; a cache that can't be written is not an error (the result still stands)."""
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        data = {"key": key, "result": result.model_copy(update={"cached": False}).model_dump(mode="json")}
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        return path
    except OSError:
        return None


def _read(path: Path) -> tuple[dict, ProbeResult] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        result = ProbeResult.model_validate(data["result"])
        return data["key"], result.model_copy(update={"cached": True})
    except (OSError, ValueError, KeyError, TypeError, ValidationError):
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
        entry = _read(path)
        if entry is None:
            continue
        key, result = entry
        if gpu is not None and key.get("gpu", "").strip().lower() != gpu.strip().lower():
            continue
        if model and not _same_model(key.get("model", ""), model):
            continue
        out.append(result)
    out.sort(key=lambda r: r.measured_at, reverse=True)
    return out
