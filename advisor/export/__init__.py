"""Deployment config export: the recommendation's values, verbatim, in a target's own format.

``export(rec, target)`` returns a :class:`Snippet` (files + notes) for vllm, ollama, llamacpp,
transformers or tgi; ``render_text(snippet)`` prints it as one block. Each target's exporter
lives in its engine's module (advisor/engines/<engine>.py, registered in advisor.engines.EXPORTERS)
and writes each value beside a comment naming the rule that set it; what they share is
advisor/snippet. A target that cannot express the plan raises :class:`ExportError` (an
``AdvisorError``) with one line saying why.

The upstream versions the flags were checked against are in ``VERSIONS.md`` next to this file.
"""

from __future__ import annotations

from advisor.domain import Recommendation
from advisor.engines import EXPORTERS, TARGETS
from advisor.errors import choice_error
from advisor.snippet import Ctx, ExportError, Snippet, render_text, write_files

__all__ = ["export", "render_text", "write_files", "Snippet", "ExportError", "TARGETS"]


def export(rec: Recommendation, target: str) -> Snippet:
    """The deployment snippet for ``target`` carrying ``rec``'s values, or ExportError saying why not."""
    if target not in EXPORTERS:
        raise choice_error("--target", target, TARGETS)
    return EXPORTERS[target](Ctx(rec, target))
