"""run_probe(): pick the probe for a backend, answer from the cache when it can, store what it measures.

The probe kinds are one table, KINDS: name -> how it runs, the progress steps it reports, whether it
talks to a server (and where that server is by default). The CLI, the TUI and the runner read it;
nothing else compares backend names. Importing this module is cheap (no pydantic, no torch).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from advisor.errors import ProbeError

if TYPE_CHECKING:
    from advisor.domain import ProbeProgress, ProbeResult

DEFAULT_MODEL = "qwen2.5-1.5b"  # DESIGN.md's reference architecture; small enough for a 6 GB GPU


@dataclass(frozen=True)
class ProbeKind:
    name: str
    run: Callable[..., ProbeResult]  # run(request) -> ProbeResult (cache handled by run_probe)
    steps: tuple[str, ...]             # ProbeProgress.step values it reports, in order ("done" comes last)
    needs_url: str                     # "no": local | "optional": a server, with default_url | "required"
    default_url: Callable[[], str] | None = None
    about: str = ""


@dataclass
class _Request:
    model: str | None
    url: str | None
    fresh: bool
    attention: str
    dtype: str
    contexts: list[int] | None
    progress: Callable | None
    cancel: threading.Event | None
    knowledge: object
    device: str | None
    timeout: float | None


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


def _key_with_contexts(key: dict, contexts: list[int] | None) -> dict:
    if contexts:
        key["contexts"] = sorted(set(int(c) for c in contexts))
    return key


def _cached(key: dict, req: _Request):
    from advisor.probes import cache

    if req.fresh:
        return None
    hit = cache.load(key)
    if hit is not None:
        _done(req.progress, "cached result from " + (hit.measured_at or "an earlier run"))
    return hit


def _run_transformers(req: _Request) -> ProbeResult:
    from advisor.probes import cache

    if req.model and req.model.lower().endswith(".gguf"):
        from advisor.probes.gguf_probe import probe_gguf

        return probe_gguf(req.model, knowledge=req.knowledge)
    from advisor.probes.transformers_probe import ATTENTIONS, DTYPES, resolve_label

    if req.attention not in ATTENTIONS:
        raise ProbeError(f"--attention: {req.attention!r} is not allowed; expected one of {', '.join(ATTENTIONS)}")
    if req.dtype not in DTYPES:
        raise ProbeError(f"--dtype: {req.dtype!r} is not allowed; expected one of {', '.join(DTYPES)}")
    label = resolve_label(req.model or DEFAULT_MODEL, req.knowledge)
    gpu = "cpu" if req.device == "cpu" else _gpu_name(req.knowledge, required=True)
    versions = {"torch": _version("torch"), "transformers": _version("transformers")}
    key = _key_with_contexts(cache.make_key(gpu, label, "transformers", req.attention, req.dtype, versions),
                             req.contexts)
    if (hit := _cached(key, req)) is not None:
        return hit
    from advisor.probes.transformers_probe import probe_transformers

    result = probe_transformers(label, knowledge=req.knowledge, attention=req.attention, dtype=req.dtype,
                                contexts=req.contexts, device=req.device, gpu_name=gpu if gpu != "cpu" else "",
                                progress=req.progress, cancel=req.cancel)
    cache.store(key, result)
    return result


def _server_runner(kind_name: str, module: str):
    """The run function of a server probe: identify (cheap, for the cache key), then measure."""

    def run(req: _Request) -> ProbeResult:
        import importlib

        from advisor.probes import cache

        mod = importlib.import_module(module)
        gpu = _gpu_name(req.knowledge, required=False)
        client = mod.Client(req.url, timeout=req.timeout, cancel=req.cancel)
        try:
            name, versions = mod.identify(client, req.model)
            key = _key_with_contexts(cache.make_key(gpu, name, kind_name, "", "", versions, url=client.base),
                                     req.contexts)
            if (hit := _cached(key, req)) is not None:
                return hit
            result = mod.probe(client, name, contexts=req.contexts, progress=req.progress, cancel=req.cancel,
                               gpu=gpu, versions=versions)
        finally:
            client.close()
        cache.store(key, result)
        return result

    return run


def _ollama_default_url() -> str:
    from advisor.probes.ollama import default_url

    return default_url()


KINDS: dict[str, ProbeKind] = {k.name: k for k in (
    ProbeKind("transformers", _run_transformers, ("load", "curve", "ttft", "decode"), "no",
              about="load the model with torch/transformers on this GPU: VRAM curve, TTFT, decode "
                    "(a .gguf file: its metadata)"),
    ProbeKind("ollama", _server_runner("ollama", "advisor.probes.ollama"), ("ollama",), "optional",
              _ollama_default_url, about="an Ollama server (default: OLLAMA_HOST, else http://127.0.0.1:11434)"),
    ProbeKind("openai", _server_runner("openai", "advisor.probes.openai_compat"), ("openai",), "required",
              about="an OpenAI-compatible server: vLLM, llama-server, TGI, transformers serve"),
)}
BACKENDS = tuple(KINDS)


def kind(name: str) -> ProbeKind:
    """The probe kind called `name`; ProbeError naming the allowed ones otherwise."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ProbeError(f"--backend: {str(name)[:40]!r} is not allowed; "
                         f"expected one of {', '.join(BACKENDS)}") from None


def run_probe(model: str | None = None, backend: str = "transformers", url: str | None = None,
              fresh: bool = False, attention: str = "sdpa", dtype: str = "float16",
              contexts: list[int] | None = None, progress: Callable[[ProbeProgress], None] | None = None,
              cancel: threading.Event | None = None, knowledge=None, device: str | None = None,
              timeout: float | None = None) -> ProbeResult:
    """Measure `model` with `backend` on this machine (cached per GPU, model, backend, attention, dtype, versions).

    device: None = the first CUDA GPU (an error without one); "cpu" runs the transformers probe on
    the CPU, which checks the pipeline but measures tensor bytes, not VRAM.
    url: the server of a server probe (KINDS[backend].needs_url); None takes the kind's default_url.
    timeout: the most one request to a server may take, start to last byte (None: the probe's default).
    """
    k = kind(backend)
    if contexts is not None and (not contexts or any(int(c) <= 0 for c in contexts)):
        raise ProbeError("--contexts: every context must be a positive number of tokens")
    if url and k.needs_url == "no":
        servers = ", ".join(n for n, x in KINDS.items() if x.needs_url != "no")
        raise ProbeError(f"--url: only with a server backend ({servers})")
    if not url and k.needs_url == "required":
        raise ProbeError(f"--url is required with --backend {k.name} (e.g. http://localhost:8000)")
    if timeout is not None and not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):
        raise ProbeError(f"--timeout: {timeout!r} is not allowed; expected a number of seconds > 0")
    if knowledge is None:
        from advisor.knowledge import load_knowledge

        knowledge = load_knowledge()
    req = _Request(model, url or None, fresh, attention, dtype, contexts, progress, cancel, knowledge, device, timeout)
    return k.run(req)


def _done(progress, message: str) -> None:
    if progress is not None:
        from advisor.domain import ProbeProgress

        progress(ProbeProgress(step="done", fraction=1.0, message=message))
