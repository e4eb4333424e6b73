"""Deployment config export: one module per target, rendering Plan values verbatim.

``export(rec, target)`` returns a :class:`Snippet` (files + notes) for vllm, ollama, llamacpp,
transformers or tgi; ``render_text(snippet)`` prints it as one block. The exporters never decide
anything: each value comes from the recommendation (a headline field or a ``Plan.settings`` knob)
and is written beside a comment naming the rule that set it. A target that cannot express the
plan raises :class:`ExportError` (an ``AdvisorError``) with one line saying why.

The upstream versions the flags were checked against are in ``VERSIONS.md`` next to this file.
"""

from __future__ import annotations

from importlib import import_module

from advisor.domain import EXPORT_TARGETS, Recommendation
from advisor.errors import choice_error
from advisor.export._common import Ctx, ExportError, Snippet, render_text, write_files

__all__ = ["export", "render_text", "write_files", "Snippet", "ExportError", "TARGETS"]

TARGETS = EXPORT_TARGETS
_MODULES = {"vllm": "vllm", "ollama": "ollama", "llamacpp": "llamacpp",
            "transformers": "transformers_serve", "tgi": "tgi"}


def export(rec: Recommendation, target: str) -> Snippet:
    """The deployment snippet for ``target`` carrying ``rec``'s values, or ExportError saying why not."""
    if target not in _MODULES:
        raise choice_error("--target", target, TARGETS)
    ctx = Ctx(rec, target)
    module = import_module(f"advisor.export.{_MODULES[target]}")
    return module.export(ctx)
