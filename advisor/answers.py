"""Reading, validating and saving the user's answers (TOML file, flags, questionnaire).

Every failure is one line naming the field, the value and what is allowed; the
CLI prints it and exits non-zero. Nothing here ever raises anything else.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from advisor.domain import OSES, QUANTIZATIONS, RISKS, WORKLOADS, Answers
from advisor.errors import AdvisorError, InputError, choice_error, closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from advisor.fields import FIELDS  # noqa: E402  (kept light for the CLI's --help)

_CHOICES = {
    "workload": WORKLOADS,
    "risk": RISKS,
    "hardware.os": OSES,
}


def _describe_allowed(field: str, err: dict) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        bound = next(iter(ctx.values()), "")
        what = "an integer" if kind and _field_type(field) is int else "a number"
        return f"{what} {words[kind]} {bound}"
    if kind.startswith("int"):
        return "a whole number"
    if kind.startswith("float") or kind == "finite_number":
        return "a number"
    if kind.startswith("string"):
        return "text"
    if kind.startswith("model") or kind == "dict_type":
        return "a table"
    return err.get("msg", "a valid value")


def _field_type(field: str) -> type | None:
    for _, path, typ, _ in FIELDS:
        if path == field:
            return typ
    return None


def _get(data: dict, path: str) -> Any:
    cur: Any = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _known_fields(model: type[BaseModel] = Answers, prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _known_fields(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def _reject_non_finite(data: Any, path: str = "") -> None:
    if isinstance(data, dict):
        for key, val in data.items():
            _reject_non_finite(val, f"{path}{key}.")
    elif isinstance(data, float) and not math.isfinite(data):
        raise InputError(path.rstrip("."), data, "a finite number")


def answers_from_dict(data: dict) -> Answers:
    """Validate a parsed answers document; one InputError line on the first problem."""
    if not isinstance(data, dict):
        raise InputError("answers", data, "a TOML table of answers")
    _reject_non_finite(data)
    try:
        return Answers.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            parent = field.rsplit(".", 1)[0] + "." if "." in field else ""
            siblings = [f for f in _known_fields() if f.startswith(parent) and "." not in f[len(parent):]]
            if "." not in field:
                siblings = [f.split(".")[0] for f in _known_fields()]
                siblings = list(dict.fromkeys(siblings))
            names = [f.split(".")[-1] for f in siblings]
            hint = closest(field.split(".")[-1], names)
            raise AdvisorError(
                f"{field}: unknown field; allowed: " + ", ".join(names)
                + (f" (did you mean {hint!r}?)" if hint else "")
            ) from None
        if field in _CHOICES or err["type"] == "literal_error":
            raise choice_error(field, value, _CHOICES.get(field, ())) from None
        raise InputError(field, value, _describe_allowed(field, err)) from None


def load_answers(path: str | os.PathLike) -> Answers:
    """Read an answers TOML file; a missing or malformed file is one line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AdvisorError(f"answers file {str(p)!r}: not found") from None
    except IsADirectoryError:
        raise AdvisorError(f"answers file {str(p)!r}: is a directory, expected a .toml file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AdvisorError(f"answers file {str(p)!r}: cannot read ({e.__class__.__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AdvisorError(f"answers file {str(p)!r}: not valid TOML ({e})") from None
    try:
        return answers_from_dict(data)
    except InputError as e:
        raise AdvisorError(f"answers file {str(p)!r}: {e}") from None


def merge_flags(answers: Answers | None, flags: dict[str, Any]) -> Answers:
    """Apply flag values (dotted field -> value, None = not given) over the file's answers."""
    data = answers.model_dump() if answers is not None else {}
    for path, value in flags.items():
        if value is None:
            continue
        cur = data
        parts = path.split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = value
    return answers_from_dict(data)


def check_names(answers: Answers, knowledge) -> None:
    """Names that must exist: the GPU in the catalog, the model somewhere, constraint words."""
    gpu = answers.hardware.gpu
    if gpu.strip().lower() != "auto":
        knowledge.gpu(gpu)
    name = answers.model.name.strip()
    if name and not _is_local_model(name):
        try:
            knowledge.model(name)
        except InputError:
            if ":" not in name:  # an ollama tag we don't know ("llama3.2:1b") may still be served
                raise
    known = tuple(knowledge.backends)  # the bundled backends and the user's own rows
    if answers.constraints.backend and answers.constraints.backend not in known:
        raise choice_error("constraints.backend", answers.constraints.backend, known)
    q = answers.constraints.quantization
    if q and q not in QUANTIZATIONS:
        raise choice_error("constraints.quantization", q, QUANTIZATIONS)


def _is_local_model(name: str) -> bool:
    p = Path(name).expanduser()
    return p.suffix.lower() == ".gguf" or (p.is_dir() and (p / "config.json").exists())


# ------------------------------------------------------------------ TOML out
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        esc = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        esc = "".join(ch if ch >= " " or ch in "\\" else f"\\u{ord(ch):04x}" for ch in esc)
        return f'"{esc}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if v is None:
        return '""'
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: dict, _prefix: str = "") -> str:
    """A small TOML writer (tomllib only reads): scalars first, then tables, arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    arrays: list[tuple[str, list]] = []
    for key, val in data.items():
        if val is None:
            continue
        if isinstance(val, dict):
            tables.append((key, val))
        elif isinstance(val, list) and val and all(isinstance(x, dict) for x in val):
            arrays.append((key, val))
        else:
            lines.append(f"{_key(key)} = {_toml_value(val)}")
    for key, val in tables:
        name = f"{_prefix}{_key(key)}"
        lines += ["", f"[{name}]", to_toml(val, name + ".").strip("\n")]
    for key, items in arrays:
        name = f"{_prefix}{_key(key)}"
        for item in items:
            lines += ["", f"[[{name}]]", to_toml(item, name + ".").strip("\n")]
    return "\n".join(x for x in lines) + "\n"


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def answers_to_toml(answers: Answers) -> str:
    return "# advisor answers — reload with: advisor --answers FILE\n" + to_toml(answers.model_dump())


def save_answers(answers: Answers, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write answers as TOML; never silently replace a file the user saved."""
    p = Path(path).expanduser()
    if p.exists() and not overwrite:
        raise AdvisorError(f"{str(p)!r} already exists; choose another name or pass overwrite")
    try:
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(answers_to_toml(answers), encoding="utf-8")
        tmp.replace(p)
    except OSError as e:
        raise AdvisorError(f"cannot save answers to {str(p)!r} ({e.strerror or e})") from None
    return p
