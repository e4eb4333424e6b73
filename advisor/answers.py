"""Reading, validating and saving the user's answers (TOML file, flags, questionnaire).

Every failure is one line naming the field, the value and what is allowed; the
CLI prints it and exits non-zero. Nothing here ever raises anything else.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from advisor.domain import Answers
from advisor.errors import AdvisorError, InputError, closest
from advisor.fields import AnswerField, answer_fields, shorten, shorten_path
from advisor.load.demand import Demand

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# An answers file is a few hundred bytes; anything this big is not one (and is not read whole).
MAX_ANSWERS_BYTES = 1 << 20


def _field_at(path: str) -> AnswerField | None:
    return next((f for f in answer_fields() if f.path == path), None)


def _tables() -> dict[str, list[str]]:
    """Allowed keys per table ('' = the top level), from the model's fields."""
    out: dict[str, list[str]] = {"": []}
    for f in answer_fields():
        if f.table:
            if f.table not in out[""]:
                out[""].append(f.table)
            out.setdefault(f.table, []).append(f.key)
        else:
            out[""].append(f.key)
    return out


def _one_line(err: ErrorDetails) -> AdvisorError:
    """A pydantic error as the one line the user reads: the field, the value, what is allowed."""
    field = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = field.rsplit(".", 1)[0] if "." in field else ""
        names = _tables().get(parent, [])
        hint = closest(field.rsplit(".", 1)[-1], names)
        return AdvisorError(f"{shorten(field)}: unknown field; allowed: " + ", ".join(names)
                            + (f" (did you mean {hint!r}?)" if hint else ""))
    spec = _field_at(field)
    if spec is not None and spec.kind == "choice":
        hint = closest(str(value), [c for c in spec.choices if c]) if isinstance(value, str) else None
        return InputError(field, value, spec.allowed(), hint)
    if spec is not None:
        return InputError(field, value, spec.allowed())
    if field in _tables():  # a table written as a value: `hardware = 5`
        return InputError(field, value, "a table of " + ", ".join(_tables()[field]))
    return InputError(field or "answers", value, err.get("msg", "a valid value"))


def answers_from_dict(data: dict) -> Answers:
    """Validate a parsed answers document; one AdvisorError line on the first problem."""
    if not isinstance(data, dict):
        raise InputError("answers", data, "a TOML table of answers")
    try:
        return Answers.model_validate(data)
    except ValidationError as e:
        raise _one_line(e.errors()[0]) from None


def check_value(path: str, value: Any) -> Any:
    """One field's value validated by the model alone (its type, bounds, finiteness): the value,
    or the one-line InputError. The TUI checks each input with this as it is typed."""
    data: dict[str, Any] = {}
    cur = data
    parts = path.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
    a = answers_from_dict(data)
    out: Any = a
    for part in parts:
        out = getattr(out, part)
    return out


def check_text(path: str, text: str) -> Any:
    """A typed-in value for one field (a flag, a TUI input): parsed and validated, or InputError."""
    spec = _field_at(path)
    if spec is None:
        raise KeyError(path)
    return check_value(path, spec.parse(text))


def read_answers_text(path: str | os.PathLike) -> str:
    """The text of an answers file: a regular file, at most MAX_ANSWERS_BYTES (a FIFO, a device
    such as /dev/zero or a huge file is one line, never a hang or a memory blow-up)."""
    p = Path(path)
    name = repr(shorten_path(p))
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise AdvisorError(f"answers file {name}: not found") from None
    except OSError as e:
        raise AdvisorError(f"answers file {name}: cannot read ({e.strerror or e.__class__.__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AdvisorError(f"answers file {name}: is a directory, expected a .toml file")
    if not stat.S_ISREG(st.st_mode):
        raise AdvisorError(f"answers file {name}: not a regular file (a pipe or device?); expected a .toml file")
    if st.st_size > MAX_ANSWERS_BYTES:
        raise AdvisorError(f"answers file {name}: {st.st_size:,} bytes; an answers file is at most "
                           f"{MAX_ANSWERS_BYTES:,}")
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, open does not wait
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_ANSWERS_BYTES + 1)
    except OSError as e:
        raise AdvisorError(f"answers file {name}: cannot read ({e.strerror or e.__class__.__name__})") from None
    if len(data) > MAX_ANSWERS_BYTES:
        raise AdvisorError(f"answers file {name}: larger than {MAX_ANSWERS_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AdvisorError(f"answers file {name}: not UTF-8 text") from None


def load_answers(path: str | os.PathLike) -> Answers:
    """Read an answers TOML file; a missing or malformed file is one line."""
    text = read_answers_text(path)
    name = repr(shorten_path(path))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AdvisorError(f"answers file {name}: not valid TOML ({shorten(str(e), 120)})") from None
    except ValueError as e:  # tomllib: an integer of more than 4,300 digits
        raise AdvisorError(f"answers file {name}: a value TOML cannot hold ({shorten(str(e), 80)})") from None
    try:
        return answers_from_dict(data)
    except AdvisorError as e:
        raise AdvisorError(f"answers file {name}: {e}") from None


def merge_flags(answers: Answers | None, flags: dict[str, Any]) -> Answers:
    """Apply flag values (dotted field -> text, None = not given) over the file's answers.
    Each text is parsed as its field's type; the model then validates the whole."""
    data = answers.model_dump() if answers is not None else {}
    for path, value in flags.items():
        if value is None:
            continue
        spec = _field_at(path)
        if spec is not None and isinstance(value, str):
            value = spec.parse(value)
        cur = data
        parts = path.split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = value
    return answers_from_dict(data)


def check_names(answers: Answers, knowledge) -> None:
    """Names that must exist: the GPU in the catalog, the model somewhere (catalog, a local HF
    folder or GGUF file). Checked before anything is planned, so the TUI can ask where the name
    is typed and the CLI says it in one line."""
    gpu = answers.hardware.gpu
    if gpu.strip().lower() != "auto":
        knowledge.gpu(gpu)
    check_model_name(answers.model.name, knowledge)
    known = tuple(knowledge.backends)  # the bundled backends and the user's own rows
    if answers.constraints.backend and answers.constraints.backend not in known:
        raise InputError("constraints.backend", answers.constraints.backend, "one of " + ", ".join(known),
                         closest(answers.constraints.backend, known))


def check_model_name(name: str, knowledge) -> None:
    name = name.strip()
    if not name or local_model_kind(name):
        return
    try:
        knowledge.model(name)
    except InputError as e:
        if ":" in name:  # an Ollama tag: served by name only if the catalog knows its architecture
            raise AdvisorError(
                f"model.name: {shorten(name)!r} is not in the catalog; point at its GGUF file, or add it "
                f"to your knowledge directory (models table) following playbook H.4"
                + (f" (did you mean {e.suggestion!r}?)" if e.suggestion else "")
            ) from None
        if "/" in name or name.startswith((".", "~")):
            raise AdvisorError(f"model.name: {shorten(name)!r} is neither a catalog model, a folder with "
                               "config.json nor a .gguf file") from None
        raise


def local_model_kind(name: str) -> str:
    """'gguf', 'folder' or '' for a model name that is a path; a path the OS refuses (too long,
    no permission) is one line naming the field, not an OSError."""
    p = Path(name).expanduser()
    try:
        if p.suffix.lower() == ".gguf":
            if p.exists() and not p.is_file():
                raise AdvisorError(f"model.name: {shorten_path(p)!r} is not a file")
            return "gguf"
        if p.is_dir():
            # a config.json that is not a regular file (a FIFO) is the reader's to refuse, by name
            return "folder" if (p / "config.json").exists() else ""
    except OSError as e:
        raise AdvisorError(f"model.name: cannot use {shorten_path(p)!r} ({e.strerror or e.__class__.__name__})") from None
    except ValueError:  # an embedded NUL
        raise AdvisorError(f"model.name: {shorten_path(p)!r} is not a usable path") from None
    return ""


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
    """The answers as a TOML file, every field the model defines (an empty optional one as a
    comment), each with its help: `advisor --answers FILE` and `recommend --answers FILE` read it."""
    lines = ["# advisor answers: reload with  advisor --answers FILE  or  advisor recommend --answers FILE"]
    table = ""
    for f in answer_fields():
        if f.table != table:
            table = f.table
            lines += ["", f"[{table}]"]
        value: Any = answers
        for part in f.path.split("."):
            value = getattr(value, part)
        comment = f"  # {f.ask.help}" + (f" ({f.ask.unit})" if f.ask.unit else "")
        if value is None:
            lines.append(f"# {_key(f.key)}: not set; {comment.strip()[2:]}")
        else:
            lines.append(f"{_key(f.key)} = {_toml_value(value)}{comment}")
    return "\n".join(lines) + "\n"


def save_answers(answers: Answers, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write answers as TOML; never silently replace a file the user saved. A path the OS
    refuses (too long, no such folder, read-only) is one line, and nothing is half-written."""
    p = Path(path).expanduser()
    name = repr(shorten_path(p))
    try:
        if p.exists() and not overwrite:
            raise AdvisorError(f"{name} already exists; choose another name or pass overwrite")
        if p.is_dir():
            raise AdvisorError(f"{name} is a folder; add a file name")
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(answers_to_toml(answers), encoding="utf-8")
        tmp.replace(p)
    except OSError as e:
        raise AdvisorError(f"cannot save answers to {name} ({e.strerror or e.__class__.__name__})") from None
    except ValueError:  # an embedded NUL
        raise AdvisorError(f"cannot save answers to {name} (not a usable path)") from None
    return p


def with_workload_defaults(answers: Answers, k) -> Answers:
    """The answers with what the user left out filled from the workload's knowledge row
    (output length, TTFT and p95 targets: Appendix F, TR127's bands)."""
    w = k.workloads[answers.workload]
    slo = answers.slo
    fill = {}
    if slo.ttft_ms is None:
        fill["ttft_ms"] = w.default_ttft_ms
    if slo.p95_latency_s is None:
        fill["p95_latency_s"] = w.default_p95_latency_s
    update = {"slo": slo.model_copy(update=fill)} if fill else {}
    if answers.output_tokens is None:
        update["output_tokens"] = w.default_output_tokens
    return answers.model_copy(update=update) if update else answers


def demand(answers: Answers) -> Demand:
    """The load the answers ask for, once their workload defaults are filled (with_workload_defaults)."""
    if answers.output_tokens is None or answers.slo.ttft_ms is None or answers.slo.p95_latency_s is None:
        raise ValueError("demand() needs the answers with their workload defaults filled")
    return Demand.of(prompt_tokens=answers.context_tokens, output_tokens=answers.output_tokens,
                     users=answers.concurrency, think_time_s=answers.think_time_s,
                     rate_rps=answers.arrival_rate_rps, requests_per_day=answers.requests_per_day,
                     deadline_hours=answers.deadline_hours, ttft_slo_ms=answers.slo.ttft_ms,
                     e2e_slo_s=answers.slo.p95_latency_s)


# ------------------------------------------------------------------ which load input wins
LOAD_PRECEDENCE = ("an offline batch (requests_per_day with deadline_hours) first, then an arrival rate "
                   "(arrival_rate_rps), then N users (concurrency, with think_time_s)")


def load_conflicts(answers: Answers) -> list[str]:
    """One line per load input the demand does not use, naming the input that wins
    (advisor/load/demand.py Demand.of: LOAD_PRECEDENCE). Empty when the inputs agree."""
    a = answers
    batch = a.requests_per_day > 0 and a.deadline_hours > 0
    users = [f"{name}={value:g}" for name, value, unset in (("concurrency", a.concurrency, 1),
                                                             ("think_time_s", a.think_time_s, 0))
             if value != unset]
    out = []
    if batch:
        winner = (f"the offline batch (requests_per_day={a.requests_per_day:,}, deadline_hours={a.deadline_hours:g})"
                  " wins")
        ignored = ([f"arrival_rate_rps={a.arrival_rate_rps:g}"] if a.arrival_rate_rps > 0 else []) + users
        if ignored:
            out.append(f"conflicting load inputs: {winner}; ignored: {', '.join(ignored)}")
    elif a.arrival_rate_rps > 0 and users:
        out.append(f"conflicting load inputs: the arrival rate (arrival_rate_rps={a.arrival_rate_rps:g}) wins; "
                   f"ignored: {', '.join(users)}")
    if not batch and (a.requests_per_day > 0) != (a.deadline_hours > 0):
        given, lacking = (("requests_per_day", "deadline_hours") if a.requests_per_day > 0
                          else ("deadline_hours", "requests_per_day"))
        out.append(f"{given} is ignored without {lacking}: a batch needs both; the plan serves "
                   + ("the arrival rate" if a.arrival_rate_rps > 0 else f"{a.concurrency} user(s)"))
    return out
