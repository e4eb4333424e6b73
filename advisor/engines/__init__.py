"""The serving engines: one module each, behind one base class (advisor/engines/base.py).

  ollama.py              Ollama: fixed slots, num_ctx reserved at load; Modelfile export
  llamacpp.py            llama-server: slots batched continuously, -c split across them; serve.sh
  vllm.py                vLLM: paged pool claimed at start, chunked prefill; serve.sh + compose
  tgi.py                 TGI: vLLM's memory and scheduling, vLLM's borrowed speed rows; docker run
  transformers.py        a generate() loop, one request at a time; `transformers serve` export
  transformers_serve.py  transformers serve --continuous-batching: its own paged cache

The registry here is the one list of engines: the rows of knowledge/backends.toml (the bundled
ones and a site's own) each become an engine object of the class their `engine` names, and each
engine module that writes a deployment registers its exporter under its export target.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from advisor.engines import llamacpp, ollama, tgi, transformers, transformers_serve, vllm
from advisor.engines.base import Engine, Sizing, Speed
from advisor.errors import KnowledgeError
from advisor.knowledge import Knowledge
from advisor.load import SCHEDULERS
from advisor.snippet import Ctx, Snippet

# the backends row's `engine` -> the class that runs it
KINDS: dict[str, type[Engine]] = {cls.kind: cls for cls in (
    ollama.Ollama, llamacpp.LlamaServer, vllm.Vllm, tgi.Tgi, transformers.Transformers,
    transformers_serve.TransformersServe)}
# `advisor export --target` -> the engine module's exporter
EXPORTERS: dict[str, Callable[[Ctx], Snippet]] = {m.TARGET: m.export for m in (vllm, ollama, llamacpp, transformers, tgi)}
TARGETS: tuple[str, ...] = tuple(EXPORTERS)

_BUILT: weakref.WeakKeyDictionary[Knowledge, dict[str, Engine]] = weakref.WeakKeyDictionary()

__all__ = ["EXPORTERS", "KINDS", "TARGETS", "Engine", "Sizing", "Speed", "engine", "engines"]


def engines(k: Knowledge) -> dict[str, Engine]:
    """Every engine of this knowledge, built once per knowledge object, in the table's order."""
    got = _BUILT.get(k)
    if got is None:
        got = _BUILT[k] = {name: _build(k, row) for name, row in k.backends.items()}
    return got


def engine(k: Knowledge, name: str) -> Engine:
    return engines(k)[name]


def _build(k: Knowledge, row) -> Engine:
    """The engine a row describes; a row naming an engine, scheduler or exporter the advisor lacks
    is one line naming the file, the row and the field (exit 3)."""
    for field, value, allowed in (("engine", row.engine, KINDS), ("batching", row.batching, SCHEDULERS),
                                  ("export_target", row.export_target, EXPORTERS)):
        if value not in allowed:
            files = k.tables["backends"].files
            raise KnowledgeError(f"knowledge: {files[-1] if files else 'backends'}: table 'backends' row "
                                 f"(backend={row.backend!r}): field {field!r}: {value!r} is not one the advisor "
                                 f"has; allowed: {', '.join(allowed)}")
    return KINDS[row.engine](row, k)
