"""The answer fields, each defined once on the pydantic model (advisor.domain), for every front end.

A field's type and bounds are pydantic's (Field(ge=..., le=...), Literal choices); how it is
asked is an `Ask` beside them in the same Annotated type. From the two, `answer_fields()` gives
each field's CLI flag, TOML key, TUI label and widget, and the words for what it allows; the CLI's
flags, the TOML writer, the TUI's inputs and every validation message are generated from it.

This module itself imports nothing heavy; the field list is built from advisor.domain on first use,
so `advisor --help` loads no pydantic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from advisor.errors import shorten, shorten_path, show  # noqa: F401  (one-line helpers, re-exported)


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


@dataclass(frozen=True)
class AnswerField:
    path: str                      # dotted: "slo.ttft_ms" (the TOML table and key)
    ask: Any  # advisor.domain.Ask
    kind: str                      # int | float | choice | text
    default: Any
    optional: bool = False         # None allowed (an empty flag / input means "not given")
    choices: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None
    max_length: int | None = None

    @property
    def flag(self) -> str:
        return self.ask.flag or self.key.replace("_", "-")

    @property
    def key(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def table(self) -> str:
        return self.path.rsplit(".", 1)[0] if "." in self.path else ""

    @property
    def dest(self) -> str:
        return "f_" + self.path.replace(".", "__")

    @property
    def widget(self) -> str:
        return self.ask.widget or {"int": "number", "float": "number"}.get(self.kind, self.kind)

    @property
    def title(self) -> str:
        """The label with its unit: 'TTFT target ms'."""
        return f"{self.ask.label} {self.ask.unit}".strip()

    def allowed(self, unit: bool = True) -> str:
        """What the field allows, in words: 'a whole number from 1 to 4,096'; unit=False leaves
        out the '(ms)' (where the label already says it)."""
        if self.kind == "choice":
            words = [c for c in self.choices if c]
            out = "one of " + ", ".join(words)
            return out + (f' (or "" for {self.ask.empty})' if "" in self.choices else "")
        if self.kind in ("int", "float"):
            what = "a whole number" if self.kind == "int" else "a number"
            lo = f"from {_num(self.ge)}" if self.ge is not None else (
                f"above {_num(self.gt)}" if self.gt is not None else "")
            hi = f"to {_num(self.le)}" if self.le is not None else (
                f"below {_num(self.lt)}" if self.lt is not None else "")
            if lo and hi and lo.startswith("above"):
                hi = "and up " + hi
            out = " ".join(x for x in (what, lo, hi) if x)
            if self.ask.unit and unit:
                out += f" ({self.ask.unit})"
            if self.optional:
                out += ", or empty"
            return out
        if self.widget == "gpu":
            return 'a catalog GPU name or "auto"'
        if self.widget == "backend":
            return 'a backend name (advisor knowledge backends), or "" for any'
        out = "text"
        if self.max_length is not None:
            out += f" of at most {self.max_length:,} characters"
        return out

    def parse(self, text: str) -> Any:
        """A typed value from text (a flag, a TUI input); InputError naming the field if it is
        not one. Ranges are the model's to check (answers.check_value)."""
        from advisor.errors import InputError

        raw = text
        text = text.strip()
        if self.optional and text == "":
            return None
        if self.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise InputError(self.path, raw, self.allowed()) from None
        if self.kind == "float":
            try:
                return float(text)
            except ValueError:
                raise InputError(self.path, raw, self.allowed()) from None
        return text

    def format(self, value: Any) -> str:
        """The value as the TUI shows it in an input (the inverse of parse)."""
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:g}" if abs(value) < 1e15 else repr(value)
        return str(value)


def _describe(path: str, info) -> AnswerField:
    import types
    from typing import Literal, Union, get_args, get_origin

    import annotated_types as at

    from advisor.domain import Ask

    ask = next((m for m in info.metadata if isinstance(m, Ask)), None)
    if ask is None:
        raise TypeError(f"answer field {path} has no Ask(...) beside its type")
    ann = info.annotation
    args = get_args(ann)
    optional = get_origin(ann) in (Union, types.UnionType) and type(None) in args
    if optional:
        ann = next(a for a in args if a is not type(None))
    choices: tuple[str, ...] = ()
    if get_origin(ann) is Literal:
        kind, choices = "choice", tuple(get_args(ann))
    elif ann is bool:
        raise TypeError(f"answer field {path}: booleans are not supported")
    elif ann is int:
        kind = "int"
    elif ann is float:
        kind = "float"
    else:
        kind = "text"
    bounds: dict[str, Any] = {}
    for m in info.metadata:
        for name, cls in (("ge", at.Ge), ("gt", at.Gt), ("le", at.Le), ("lt", at.Lt),
                          ("min_length", at.MinLen), ("max_length", at.MaxLen)):
            if isinstance(m, cls):
                bounds[name] = getattr(m, name)
    return AnswerField(path=path, ask=ask, kind=kind, default=info.default, optional=optional,
                       choices=choices, **bounds)


@functools.lru_cache(maxsize=1)
def answer_fields() -> tuple[AnswerField, ...]:
    """Every answer field, in the model's order (top-level fields, then each table's)."""
    from pydantic import BaseModel

    from advisor.domain import Answers

    out: list[AnswerField] = []

    def walk(model, prefix: str) -> None:
        for name, info in model.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
            else:
                out.append(_describe(prefix + name, info))

    walk(Answers, "")
    return tuple(out)


def field(path: str) -> AnswerField:
    for f in answer_fields():
        if f.path == path:
            return f
    raise KeyError(path)


def on_page(page: str) -> list[AnswerField]:
    """The fields the TUI asks on one page, in the model's order."""
    return [f for f in answer_fields() if f.ask.page == page]
