"""Where the TUI gets what it does not compute: GPUs, probes, Ollama tags, snippets.

Each default imports its module only when called, so the TUI starts without
NVML, torch or transformers loaded, and a module that is missing (a partial
install, or a part still being written) becomes one clear line on the screen,
never a traceback. Tests inject stand-ins with the same signatures.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

from advisor.errors import AdvisorError, ProbeError

GpuDetector = Callable[[Any], list]          # (knowledge) -> list[GpuDevice]; raises ProbeError
ProbeRunner = Callable[..., Any]             # run_probe's signature -> ProbeResult
TagLister = Callable[[], list[str]]          # () -> ollama tags; [] when no server answers
Exporter = Callable[[Any, str], Any]         # (recommendation, target) -> Snippet


# the probes speak to the CLI ("... with --gpu NAME", "set --url"); on screen the same advice
# names the screen's own fields, and the hardware screen stands for --gpu
_CLI_GPU_HINT = re.compile(r"[;,]?\s*(?:or )?plan for a catalog GPU with --gpu NAME")
_CLI_FLAGS = ((re.compile(r"\b(set|check) --url\b"), r"\1 the server URL"),
              (re.compile(r"--url\b"), "server URL"), (re.compile(r"--model\b"), "model"),
              (re.compile(r"--backend\b"), "backend"), (re.compile(r"--attention\b"), "attention"))


def tui_words(message: str) -> str:
    """A probe's one-line error in the screen's words: its fields, not the CLI's flags."""
    message = _CLI_GPU_HINT.sub("", message)
    for flag, words in _CLI_FLAGS:
        message = flag.sub(words, message)
    return message.strip()


def detect_gpus(knowledge) -> list:
    try:
        from advisor.probes.hardware import detect_gpus as detect
    except ImportError as e:
        raise ProbeError(f"the NVML probe is not available ({e})") from None
    return detect(knowledge)


def run_probe(model, **kwargs):
    """The real probe; torch/transformers load inside it, only now."""
    try:
        from advisor.probes.runner import run_probe as run
    except ImportError as e:
        raise ProbeError(f"the probes are not installed ({e}); pip install 'advisor[probe]'") from None
    return run(model, **kwargs)


def ollama_url() -> str:
    host = os.environ.get("OLLAMA_HOST", "").strip() or "http://localhost:11434"
    if not host.startswith(("http://", "https://")):
        host = "http://" + host
    return host.rstrip("/")


def list_ollama_tags() -> list[str]:
    """Tags the local Ollama server offers; [] when none answers (quickly)."""
    ollama: ModuleType | None
    try:
        import advisor.probes.ollama as ollama  # the probes' own lister, when it has one
    except ImportError:
        ollama = None
    for name in ("list_tags", "list_models", "tags"):
        fn = getattr(ollama, name, None) if ollama else None
        if callable(fn):
            try:
                out = fn()
                return [t if isinstance(t, str) else str(getattr(t, "name", t)) for t in out]
            except Exception:
                return []
    try:
        import httpx

        r = httpx.get(ollama_url() + "/api/tags", timeout=0.5)
        r.raise_for_status()
        return sorted(m.get("name", "") for m in r.json().get("models", []) if m.get("name"))
    except Exception:
        return []


def export_snippet(rec, target: str):
    try:
        from advisor.export import export
    except ImportError as e:
        raise AdvisorError(f"the exporters are not available ({e})") from None
    return export(rec, target)


def snippet_text(snippet) -> str:
    try:
        from advisor.export import render_text
    except ImportError:
        return plain_snippet_text(snippet)
    return render_text(snippet)


def plain_snippet_text(snippet) -> str:
    """Each file under a '# --- NAME' line, then the notes: when the exporters' renderer is absent."""
    parts = []
    for name, text in getattr(snippet, "files", {}).items():
        parts.append(f"# --- {name}\n{text.rstrip()}\n")
    notes = getattr(snippet, "notes", None) or []
    if isinstance(notes, str):
        notes = [notes]
    parts += [f"# {n}" for n in notes]
    return "\n".join(parts)
