"""The TUI's inputs for answer fields, generated from the model's field definitions (advisor.fields).

Each input is labelled with the field's title, validated as it is typed by the model itself
(advisor.answers.check_text: type, bounds, finiteness) and reads back as the field's typed value.
"""

from __future__ import annotations

from typing import Any

from textual.containers import Horizontal
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Select, Static

from advisor.errors import AdvisorError, InputError
from advisor.fields import AnswerField, field, shorten


def wid(path: str, prefix: str = "q-") -> str:
    """The widget id of a field's input: 'q-slo-ttft-ms'."""
    return prefix + path.replace(".", "-").replace("_", "-")


def get(answers, path: str) -> Any:
    obj = answers
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def put(data: dict, path: str, value: Any) -> None:
    """Set a dotted field in an answers dict (model_dump())."""
    cur = data
    parts = path.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def problem(spec: AnswerField, text: str) -> str:
    """'' when text is an allowed value of the field, else one line naming the field by its label
    on screen, short enough for one line at 80 columns (the value typed is cut at 16 characters):
    'TTFT target ms: 1e16 is not a number from 1 to 3,600,000'."""
    from advisor.answers import check_text

    try:
        check_text(spec.path, text)
    except InputError:
        typed = shorten(" ".join(text.split()), 16) or "empty"
        return f"{spec.title}: {typed} is not {spec.allowed(unit=False)}"
    except AdvisorError as e:
        return str(e)
    return ""


class FieldValidator(Validator):
    """The model's own check of one field; the failure is its one line (label, value, allowed)."""

    def __init__(self, spec: AnswerField):
        super().__init__()
        self.spec = spec

    def validate(self, value: str) -> ValidationResult:
        bad = problem(self.spec, value)
        return self.failure(bad) if bad else self.success()


class FieldInput(Input):
    """An Input for one answer field: its id, placeholder and validator come from the field."""

    def __init__(self, spec: AnswerField, value: Any = None, prefix: str = "q-", placeholder: str = "",
                 **kw):
        kw.setdefault("compact", True)
        kw.setdefault("classes", "num")
        super().__init__(spec.format(value), id=wid(spec.path, prefix), placeholder=placeholder,
                         validators=[FieldValidator(spec)], **kw)
        self.spec = spec

    def typed_value(self) -> Any:
        """The field's value (raises AdvisorError with the one line when it is not allowed)."""
        from advisor.answers import check_text

        return check_text(self.spec.path, self.value)

    def problem(self) -> str:
        """'' when the value is allowed, else the one line saying why."""
        return problem(self.spec, self.value)


def field_select(path: str, value: Any, prefix: str = "q-", any_label: str = "any",
                 choices: tuple[str, ...] | None = None) -> Select:
    """A dropdown for a choice field; '' (when the field allows it) reads as any_label."""
    spec = field(path)
    options = [(c or any_label, c) for c in (spec.choices if choices is None else choices)]
    return Select(options, value=value, id=wid(path, prefix), allow_blank=False, compact=True)


def field_row(spec: AnswerField, value: Any, label_width: int | None = None, hint: str | None = None,
              prefix: str = "q-") -> Horizontal:
    """label  [input]  hint: one row for a number field."""
    title = spec.title if label_width is None else f"{spec.title:<{label_width}}"
    parts = [Label(title, classes="field"), FieldInput(spec, value, prefix=prefix)]
    if hint is not None:
        parts.append(Static(hint, classes="hint", id=wid(spec.path, prefix) + "-hint", markup=False))
    return Horizontal(*parts, classes="row")
