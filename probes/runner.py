"""run_probe(): pick the probe for a backend, answer from the cache when it can, store what it measures."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib import metadata

from advisor.domain import ProbeProgress, ProbeResult
from advisor.errors import ProbeError

BACKENDS = ("transformers", "ollama", "openai")
DEFAULT_MODEL = "qwen2.5-1.5b"  # DESIGN.md's reference architecture; small enough for a 6 GB GPU


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _gpu_name(knowledge, required: bool) -> str:
    from advisor.probes.hardware import detect_gpus

    try:
        return detect_gpus(knowledge)[0].name
    except ProbeError:
        if required:
            raise
        return ""


def run_probe(model: str | None = None, backend: str = "transformers", url: str | None = None,
              fresh: bool = False, attention: str = "sdpa", dtype: str = "float16",
              contexts: list[int] | None = None, progress: Callable[[ProbeProgress], None] | None = None,
              cancel: threading.Event | None = None, knowledge=None, device: str | None = None) -> ProbeResult:
    """Measure `model` with `backend` on this machine (cached per GPU, model, backend, attention, dtype, versions).

    device: None = the first CUDA GPU (an error without one); "cpu" runs the transformers probe on
    the CPU, which checks the pipeline but measures tensor bytes, not VRAM.
    """
    from advisor.probes import cache

    if backend not in BACKENDS:
        raise ProbeError(f"--backend: {backend!r} is not allowed; expected one of {', '.join(BACKENDS)}")
    if contexts is not None and (not contexts or any(int(c) <= 0 for c in contexts)):
        raise ProbeError("--contexts: every context must be a positive number of tokens")
    if knowledge is None:
        from advisor.knowledge import load_knowledge

        knowledge = load_knowledge()

    if backend == "transformers" and model and model.lower().endswith(".gguf"):
        from advisor.probes.gguf_probe import probe_gguf

        return probe_gguf(model, knowledge=knowledge)

    if backend == "transformers":
        from advisor.probes.transformers_probe import ATTENTIONS, DTYPES, resolve_label

        if attention not in ATTENTIONS:
            raise ProbeError(f"--attention: {attention!r} is not allowed; expected one of {', '.join(ATTENTIONS)}")
        if dtype not in DTYPES:
            raise ProbeError(f"--dtype: {dtype!r} is not allowed; expected one of {', '.join(DTYPES)}")
        label = resolve_label(model or DEFAULT_MODEL, knowledge)
        gpu = "cpu" if device == "cpu" else _gpu_name(knowledge, required=True)
        versions = {"torch": _version("torch"), "transformers": _version("transformers")}
        key = cache.make_key(gpu, label, backend, attention, dtype, versions)
        if contexts:
            key["contexts"] = sorted(set(int(c) for c in contexts))
        if not fresh and (hit := cache.load(key)) is not None:
            _done(progress, "cached result from " + (hit.measured_at or "an earlier run"))
            return hit
        from advisor.probes.transformers_probe import probe_transformers

        result = probe_transformers(label, knowledge=knowledge, attention=attention, dtype=dtype,
                                    contexts=contexts, device=device, gpu_name=gpu if gpu != "cpu" else "",
                                    progress=progress, cancel=cancel)
        cache.store(key, result)
        return result

    gpu = _gpu_name(knowledge, required=False)
    if backend == "ollama":
        from advisor.probes import ollama as mod

        base = url or os.environ.get("OLLAMA_HOST_URL") or mod.DEFAULT_URL
    else:
        from advisor.probes import openai_compat as mod

        if not url:
            raise ProbeError("--url is required with --backend openai (e.g. http://localhost:8000)")
        base = url
    client = mod.Client(base)
    try:
        name, versions = mod.identify(client, model)
        key = cache.make_key(gpu, name, backend, "", "", versions, url=client.base)
        if contexts:
            key["contexts"] = sorted(set(int(c) for c in contexts))
        if not fresh and (hit := cache.load(key)) is not None:
            _done(progress, "cached result from " + (hit.measured_at or "an earlier run"))
            return hit
        result = mod.probe(client, name, contexts=contexts, progress=progress, cancel=cancel, gpu=gpu,
                           versions=versions)
    finally:
        client.close()
    cache.store(key, result)
    return result


def _done(progress, message: str) -> None:
    if progress is not None:
        progress(ProbeProgress(step="done", fraction=1.0, message=message))
