"""Reading the knowledge tables: the bundled knowledge/*.toml and the user's own, validated on load.

A malformed file, bundled or the user's, fails with the file, the row and the field in one line
(exit 3). The row models and their bounds are knowledge/schema.py's.
"""

from __future__ import annotations

import functools
import math
import os
import stat
import sys
from pathlib import Path

from pydantic import ValidationError

from advisor.domain import GpuSpec, ModelSpec
from advisor.errors import KnowledgeError, choice_error
from advisor.knowledge.schema import (
    SCHEMAS,
    BackendRow,
    CompatRow,
    ContextRow,
    GateRow,
    GenericRow,
    MeasurementRow,
    PlaybookRow,
    QuantRow,
    RankingRow,
    Table,
    ValueRow,
    WorkloadRow,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# A knowledge table is a few KB of TOML; anything far bigger is not one (or is /dev/zero).
MAX_FILE_BYTES = 4 * 2**20


class IdMap(dict):
    """Rows keyed by their id as written, looked up without regard to case ("MyModel" == "mymodel")."""

    def __init__(self, items=()):
        super().__init__(items)
        self._folded = {k.casefold(): k for k in self if isinstance(k, str)}

    def _real(self, key):
        if dict.__contains__(self, key):  # the key as written: most look-ups, without folding
            return key
        return self._folded.get(key.casefold(), key) if isinstance(key, str) else key

    def __getitem__(self, key):
        return super().__getitem__(self._real(key))

    def __contains__(self, key):
        return super().__contains__(self._real(key))

    def get(self, key, default=None):
        return super().get(self._real(key), default)


def _fold(v: object) -> object:
    return v.casefold() if isinstance(v, str) else v


def user_knowledge_dir() -> Path:
    """Where a user's own tables live: $ADVISOR_KNOWLEDGE_DIR, else the XDG config dir."""
    env = os.environ.get("ADVISOR_KNOWLEDGE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "advisor" / "knowledge"


def _bundled_files() -> list[Path]:
    root = Path(__file__).parent  # the bundled tables sit beside this loader
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".toml"))


def _short(v: object, limit: int = 60) -> str:
    """repr(v), cut to `limit` characters: an error line never echoes a whole pasted file."""
    r = repr(v)
    r = r.replace("\n", "\\n")
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _describe_row(raw: dict, key: str) -> str:
    if key and isinstance(raw, dict) and key in raw:
        return f" ({key}={_short(raw[key])})"
    return ""


def _non_finite(v: object, path: str = "") -> str | None:
    """The dotted path of the first NaN or infinity inside a TOML value, if any."""
    if isinstance(v, float) and not math.isfinite(v):
        return path or "value"
    if isinstance(v, dict):
        for k, x in v.items():
            hit = _non_finite(x, f"{path}.{k}" if path else str(k))
            if hit:
                return hit
    if isinstance(v, list):
        for i, x in enumerate(v):
            hit = _non_finite(x, f"{path}[{i}]")
            if hit:
                return hit
    return None


def read_regular_file(path: str | Path, limit: int) -> bytes:
    """A small file's bytes, never hanging or filling memory: a FIFO, a device such as /dev/zero,
    a directory (ValueError) or anything over `limit` bytes (ValueError) is refused; an unreadable
    file raises OSError. Shared by every reader of a user's file (knowledge, config.json)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ValueError(f"larger than {_size(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n >= 2**20 else f"{n // 1024} KiB"


def _read_text(path: Path) -> str:
    try:
        data = read_regular_file(path, MAX_FILE_BYTES)
    except OSError as e:
        raise KnowledgeError(f"knowledge: {path}: cannot read ({e.strerror or e.__class__.__name__})") from None
    except ValueError as e:
        hint = "a knowledge table is a few KB of TOML" if "larger" in str(e) else "a knowledge table is a .toml file"
        raise KnowledgeError(f"knowledge: {path}: {e}; {hint}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KnowledgeError(f"knowledge: {path}: not UTF-8 text (byte {e.start})") from None


def _load_file(path: Path, tables: dict[str, Table]) -> None:
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise KnowledgeError(f"knowledge: {path}: not valid TOML ({' '.join(str(e).split())[:200]})") from None
    except (ValueError, RecursionError) as e:  # an integer of 5,000 digits; arrays nested 10,000 deep
        raise KnowledgeError(f"knowledge: {path}: not valid TOML ({e.__class__.__name__}: "
                             f"{' '.join(str(e).split())[:100]})") from None
    meta = data.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("table"), str) or not meta["table"].strip():
        raise KnowledgeError(f"knowledge: {path}: missing [meta] with a table = \"name\" line")
    name = meta["table"]
    for field in ("title", "description"):
        if field in meta and not isinstance(meta[field], str):
            raise KnowledgeError(f"knowledge: {path}: [meta] {field} must be a string")
    units = meta.get("units", {})
    if not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values()):
        raise KnowledgeError(f"knowledge: {path}: [meta] units must be a table of strings, e.g. {{ value = \"GB\" }}")
    rows = data.get("rows", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise KnowledgeError(f"knowledge: {path}: rows must be [[rows]] tables")
    model, key = SCHEMAS.get(name, (GenericRow, ""))
    table = tables.get(name) or Table(
        name=name,
        title=str(meta.get("title", name)),
        description=str(meta.get("description", "")),
        units={str(k): v for k, v in units.items()},
    )
    parsed = []
    seen: dict[object, int] = {}
    for i, raw in enumerate(rows):
        where = f"knowledge: {path}: table {name!r} row {i + 1}{_describe_row(raw, key)}"
        bad = _non_finite(raw)
        if bad:
            raise KnowledgeError(f"{where}: field {bad!r}: NaN and infinity are not allowed; expected a finite number")
        try:
            row = model.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "row"
            got = f" (got {_short(err['input'])})" if err["loc"] and err["type"] != "missing" else ""
            raise KnowledgeError(f"{where}: field {field!r}: {err['msg']}{got}") from None
        if key:
            k = _fold(getattr(row, key))
            if k in seen:
                raise KnowledgeError(f"{where}: repeats {key} {_short(getattr(row, key))} of row {seen[k]}; "
                                     "one row per key")
            seen[k] = i + 1
        parsed.append(row)
    table.files.append(str(path))
    if key:
        # A later file (the user's) replaces a bundled row with the same key, whatever its case.
        merged = {_fold(getattr(r, key)): r for r in table.rows}
        for r in parsed:
            merged[_fold(getattr(r, key))] = r
        table.rows = list(merged.values())
    else:
        table.rows.extend(parsed)
    tables[name] = table


class Knowledge:
    """All tables, plus typed look-ups used by the rules and the physics."""

    def __init__(self, tables: dict[str, Table]):
        self.tables = tables
        for name in SCHEMAS:
            if name not in tables and name != "measurements":
                raise KnowledgeError(f"knowledge: table {name!r} is missing from the bundled knowledge/")
        self.gpus: list[GpuSpec] = list(tables["gpus"].rows)
        self.models: dict[str, ModelSpec] = IdMap((m.id, m) for m in tables["models"].rows)
        self.quant: dict[str, QuantRow] = {q.quant: q for q in tables["quantization"].rows}
        self.compat: dict[str, CompatRow] = IdMap((c.model, c) for c in tables["quant_compat"].rows)
        self.gates: list[GateRow] = list(tables["quality_gates"].rows)
        self.workloads: dict[str, WorkloadRow] = {w.workload: w for w in tables["workloads"].rows}
        self.backends: dict[str, BackendRow] = {b.backend: b for b in tables["backends"].rows}
        self.playbooks: dict[str, PlaybookRow] = IdMap((p.id, p) for p in tables["playbooks"].rows)
        self.context: dict[str, ContextRow] = IdMap((c.model, c) for c in tables["tr127_context"].rows)
        self.ranking: list[RankingRow] = sorted(tables["ranking"].rows, key=lambda r: r.order)
        self.measurements: list[MeasurementRow] = list(tables.get("measurements", Table(name="m", title="")).rows)
        values: dict[str, ValueRow] = {}
        for t in ("scaling", "thresholds", "calibration"):
            for r in tables[t].rows:
                values[r.key] = r
        self._values: dict[str, ValueRow] = IdMap(values)
        self._check_references()

    def _check_references(self) -> None:
        """Rows that name a row of another table (a workload's preferred backend) name one that exists:
        a typo there would make a rule never match, silently."""
        for w in self.workloads.values():
            for field in ("backend_low_n", "backend_high_n"):
                name = getattr(w, field)
                if name not in self.backends:
                    t = self.tables["workloads"]
                    raise KnowledgeError(
                        f"knowledge: {t.files[-1] if t.files else 'workloads'}: table 'workloads' row "
                        f"(workload={w.workload!r}): field {field!r}: {name!r} is not a backend; allowed: "
                        + ", ".join(self.backends))

    # ------------------------------------------------------------ look-ups
    def value(self, key: str) -> float:
        try:
            return self._values[key].value
        except KeyError:
            raise KnowledgeError(f"knowledge: no row with key {key!r} in scaling/thresholds/calibration") from None

    def has(self, key: str) -> bool:
        return key in self._values

    def row(self, key: str) -> ValueRow:
        self.value(key)
        return self._values[key]

    def source(self, key: str) -> str:
        return self.row(key).source

    def gpu(self, name: str, field: str = "hardware.gpu") -> GpuSpec:
        want = _norm(name)
        for g in self.gpus:
            if want == _norm(g.name) or want in {_norm(a) for a in g.aliases}:
                return g
        raise choice_error(field, name, [g.name for g in self.gpus])

    def match_gpu(self, nvml_name: str) -> GpuSpec | None:
        """Best catalog row for a name NVML reports (e.g. 'NVIDIA H100 80GB HBM3')."""
        try:
            return self.gpu(nvml_name)
        except Exception:
            pass
        want = _norm(nvml_name)
        best = None
        for g in self.gpus:
            for cand in [g.name, *g.aliases]:
                c = _norm(cand)
                if c and _names_part(c, want) and (best is None or len(c) > best[0]):
                    best = (len(c), g)
        return best[1] if best else None

    def model(self, name: str, field: str = "model.name") -> ModelSpec:
        """A catalog model by id, Ollama tag or HF repo; none of them case-sensitive."""
        key = name.strip()
        hit = self.models.get(key)
        if hit is not None:
            return hit
        want = key.casefold()
        for m in self.models.values():
            if m.ollama_tag and want == m.ollama_tag.casefold():
                return m
            if m.hf_repo and want == m.hf_repo.casefold():
                return m
        raise choice_error(field, name, list(self.models))


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


# A mobile part is not its desktop namesake (an RTX 4070 Laptop has a fraction of the 4070's
# bandwidth): a name that says so only matches a row that says so too.
_MOBILE = ("laptop", "mobile", "maxq")


def _names_part(cand: str, want: str) -> bool:
    """`cand` (normalised) names the GPU `want` (normalised): it occurs in it not followed by a
    digit (so "a10" is not "A100 80GB PCIe" and "l4" is not "L40S"), and a mobile name only matches
    a mobile row. A Ti/SUPER card still falls back to its base row (NVML gives its real VRAM; the
    base row's bandwidth and FLOP/s are the slower, safe side)."""
    if any(m in want and m not in cand for m in _MOBILE):
        return False
    i = want.find(cand)
    while i >= 0:
        rest = want[i + len(cand):]
        if not rest or not rest[0].isdigit():
            return True
        i = want.find(cand, i + 1)
    return False


def _user_files(user_dir: str, label: str) -> list[Path]:
    """The *.toml files of the user's knowledge directory (hidden files skipped).

    `label` names where the directory came from; "" is the XDG default, which need not exist.
    Any other directory was asked for, so one that is missing or is not a directory is an error.
    """
    d = Path(user_dir)
    try:
        st = d.stat()
    except FileNotFoundError:
        if not label:
            return []
        raise KnowledgeError(f"knowledge: {label} {user_dir!r} does not exist; expected a directory of "
                             "*.toml tables (create it, or unset it to use the bundled tables only)") from None
    except OSError as e:
        raise KnowledgeError(f"knowledge: {label or 'knowledge directory'} {user_dir!r}: cannot read "
                             f"({e.strerror or e.__class__.__name__})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise KnowledgeError(f"knowledge: {label or 'knowledge directory'} {user_dir!r} is not a directory; "
                             "expected a directory of *.toml tables")
    try:
        names = sorted(e.name for e in os.scandir(d) if e.name.endswith(".toml") and not e.name.startswith("."))
    except OSError as e:
        raise KnowledgeError(f"knowledge: {label or 'knowledge directory'} {user_dir!r}: cannot list "
                             f"({e.strerror or e.__class__.__name__})") from None
    return [d / n for n in names]


@functools.lru_cache(maxsize=4)
def _load(user_dir: str | None, label: str = "knowledge directory") -> Knowledge:
    tables: dict[str, Table] = {}
    for path in _bundled_files():
        _load_file(path, tables)
    if user_dir:
        for path in _user_files(user_dir, label):
            _load_file(path, tables)
    return Knowledge(tables)


def load_knowledge(user_dir: str | Path | None = "default") -> Knowledge:
    """Load the bundled tables plus the user's (cached per process).

    "default": $ADVISOR_KNOWLEDGE_DIR (which must be a directory), else the XDG config
    directory (used when it exists). A path: that directory, which must exist. None: bundled only.
    """
    if user_dir == "default":
        env = os.environ.get("ADVISOR_KNOWLEDGE_DIR")
        if env:
            return _load(env, "ADVISOR_KNOWLEDGE_DIR")
        return _load(str(user_knowledge_dir()), "")
    return _load(str(user_dir) if user_dir else None)
