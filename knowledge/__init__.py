"""The knowledge base: TOML tables in knowledge/ (and the user's own), validated on load.

Every row carries a `source`. A malformed file, bundled or the user's, fails with
the file, the row and the field in one line.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from advisor.domain import QUANTIZATIONS, WORKLOADS, GpuSpec, ModelSpec
from advisor.errors import KnowledgeError, choice_error
from advisor.physics import Verdict, judge_measurement  # physics imports no knowledge at run time

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1)


class QuantRow(_Row):
    quant: str
    bits_per_weight: float = Field(gt=0, le=32)
    tier: str
    mmlu_delta_pp: float = Field(ge=0)
    risk_tiers: list[str]
    # formats that keep the token embedding and the LM head at higher precision (AWQ/GPTQ/FP8/
    # bitsandbytes keep them at 16 bits; GGUF's Q4_K_M writes the output at Q6_K): their bits
    embedding_bits: float | None = Field(default=None, gt=0, le=32)
    head_bits: float | None = Field(default=None, gt=0, le=32)
    min_compute_capability: float | None = None


class CompatRow(_Row):
    model: str
    passes: list[str]
    fails: list[str]
    q3_k_s_delta_pp: float | None = None


class GateRow(_Row):
    application: str
    workloads: list[str] = []
    risk: str | None = None
    min_composite: float | None = None
    min_mmlu: float | None = None
    min_arc: float | None = None
    recommended: list[str] = []


class WorkloadRow(_Row):
    workload: str
    section: str
    profile: str
    input_share: float = Field(ge=0, le=100)
    dominant_phase: str
    typical_context_min: int
    typical_context_max: int
    typical_output_min: int
    typical_output_max: int
    backend_low_n: str
    quant_low_n: str
    backend_high_n: str
    quant_high_n: str
    high_n_from: int = Field(ge=1)
    compiled_hf_at_n1: bool


class ValueRow(_Row):
    key: str
    value: float
    unit: str


class BackendRow(_Row):
    backend: str
    title: str
    quantizations: list[str]
    os: list[str]
    engine: Literal["ollama", "llama-server", "vllm", "tgi", "transformers"]  # advisor/backends.py class
    # continuous: sequences share each decode step; slots: a few parallel slots, then a queue
    # (per-agent efficiency by Amdahl, TR129); sequential: one request at a time
    batching: Literal["continuous", "slots", "sequential"]
    family: str  # engines whose measurements and probes describe each other (ollama ~ llama.cpp)
    export_target: str
    probe_kinds: list[str]  # advisor probe --backend values whose results feed this engine
    calibration: str = ""  # prefix of its efficiency rows in calibration.toml (default: its name)
    overhead_keys: list[str] = []  # fixed buffers besides the CUDA context (thresholds/calibration keys)
    tensor_parallel: bool = True  # the advisor plans tensor parallel for it
    prefill_activations: bool = False  # prefills the whole prompt at once, holding its activations
    compiled_prefill: bool = False  # torch.compile on the prefill graph (TR126)
    pages_kv: bool = False  # KV cache paged on demand from one pool (vLLM PagedAttention, TGI)
    kv_reserved_at_load: bool
    spills_silently_on_windows: bool
    serves_gguf: bool = False  # serves a GGUF file as it is
    local_hf_quantizations: list[str] = []  # what it can serve a local HF directory at


class PlaybookRow(_Row):
    id: str
    title: str
    when: str
    prerequisites: str = ""
    steps: list[str] = Field(min_length=1)
    correction: str = ""


class ContextRow(_Row):
    model: str
    gpu: str
    backend: str
    quant: str
    base_mb: float = Field(gt=0)
    slope_mb_per_token: float = Field(gt=0)
    spillover_tokens: int
    oom_tokens: int
    practical_budget_tokens: int


class MeasurementRow(_Row):
    kind: str  # prefill_ms | decode_tok_s | peak_vram_mb
    model: str
    backend: str
    quant: str
    gpu: str
    os: str = "linux"
    context_tokens: int = Field(gt=0)
    value: float = Field(gt=0)
    unit: str
    statistic: str = ""


class GenericRow(BaseModel):
    """Rows of a table the user invented: anything, as long as it says where it came from."""

    model_config = ConfigDict(extra="allow")
    source: str = Field(min_length=1)


class GpuRow(GpuSpec):
    pass


class ModelRow(ModelSpec):
    pass


SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    # table -> (row model, key field)
    "gpus": (GpuRow, "name"),
    "models": (ModelRow, "id"),
    "quantization": (QuantRow, "quant"),
    "quant_compat": (CompatRow, "model"),
    "quality_gates": (GateRow, "application"),
    "workloads": (WorkloadRow, "workload"),
    "scaling": (ValueRow, "key"),
    "thresholds": (ValueRow, "key"),
    "calibration": (ValueRow, "key"),
    "backends": (BackendRow, "backend"),
    "playbooks": (PlaybookRow, "id"),
    "tr127_context": (ContextRow, "model"),
    "measurements": (MeasurementRow, ""),
}


class Table(BaseModel):
    name: str
    title: str
    description: str = ""
    units: dict[str, str] = {}
    files: list[str] = []
    rows: list[Any] = []


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


def _describe_row(raw: dict, key: str) -> str:
    if key and isinstance(raw, dict) and key in raw:
        return f" ({key}={raw[key]!r})"
    return ""


def _load_file(path: Path, tables: dict[str, Table]) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise KnowledgeError(f"knowledge: {path}: cannot read ({e.__class__.__name__}: {e})") from None
    except tomllib.TOMLDecodeError as e:
        raise KnowledgeError(f"knowledge: {path}: not valid TOML ({e})") from None
    meta = data.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("table"), str) or not meta["table"]:
        raise KnowledgeError(f"knowledge: {path}: missing [meta] with a table = \"name\" line")
    name = meta["table"]
    rows = data.get("rows", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise KnowledgeError(f"knowledge: {path}: rows must be [[rows]] tables")
    model, key = SCHEMAS.get(name, (GenericRow, ""))
    table = tables.get(name) or Table(
        name=name,
        title=str(meta.get("title", name)),
        description=str(meta.get("description", "")),
        units={str(k): str(v) for k, v in dict(meta.get("units", {})).items()},
    )
    table.files.append(str(path))
    parsed = []
    for i, raw in enumerate(rows):
        try:
            parsed.append(model.model_validate(raw))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "row"
            raise KnowledgeError(
                f"knowledge: {path}: table {name!r} row {i + 1}{_describe_row(raw, key)}: "
                f"field {field!r}: {err['msg']}"
            ) from None
    if key:
        # A later file (the user's) replaces a bundled row with the same key.
        merged = {getattr(r, key): r for r in table.rows}
        for r in parsed:
            merged[getattr(r, key)] = r
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
        self.models: dict[str, ModelSpec] = {m.id: m for m in tables["models"].rows}
        self.quant: dict[str, QuantRow] = {q.quant: q for q in tables["quantization"].rows}
        self.compat: dict[str, CompatRow] = {c.model: c for c in tables["quant_compat"].rows}
        self.gates: list[GateRow] = list(tables["quality_gates"].rows)
        self.workloads: dict[str, WorkloadRow] = {w.workload: w for w in tables["workloads"].rows}
        self.backends: dict[str, BackendRow] = {b.backend: b for b in tables["backends"].rows}
        self.playbooks: dict[str, PlaybookRow] = {p.id: p for p in tables["playbooks"].rows}
        self.context: dict[str, ContextRow] = {c.model: c for c in tables["tr127_context"].rows}
        self.measurements: list[MeasurementRow] = list(tables.get("measurements", Table(name="m", title="")).rows)
        self._values: dict[str, ValueRow] = {}
        for t in ("scaling", "thresholds", "calibration"):
            for r in tables[t].rows:
                self._values[r.key] = r
        self._check_vocabulary()
        self.verdicts: list[Verdict] = [judge_measurement(self, m) for m in self.measurements]

    def _check_vocabulary(self) -> None:
        for w in self.workloads.values():
            if w.workload not in WORKLOADS:
                raise KnowledgeError(f"knowledge: workloads: unknown workload {w.workload!r}")
        for b in self.backends.values():
            # which backend serves which quantization is said once, on the backend's row
            for q in b.quantizations:
                if q not in QUANTIZATIONS:
                    raise KnowledgeError(f"knowledge: backends {b.backend!r}: unknown quantization {q!r}")

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
                if c and c in want and (best is None or len(c) > best[0]):
                    best = (len(c), g)
        return best[1] if best else None

    def model(self, name: str, field: str = "model.name") -> ModelSpec:
        key = name.strip().lower()
        if key in self.models:
            return self.models[key]
        for m in self.models.values():
            if m.ollama_tag and key == m.ollama_tag.lower():
                return m
            if m.hf_repo and key == m.hf_repo.lower():
                return m
        raise choice_error(field, name, list(self.models))


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


@functools.lru_cache(maxsize=4)
def _load(user_dir: str | None) -> Knowledge:
    tables: dict[str, Table] = {}
    for path in _bundled_files():
        _load_file(path, tables)
    if user_dir:
        d = Path(user_dir)
        if d.is_dir():
            for path in sorted(d.glob("*.toml")):
                _load_file(path, tables)
    return Knowledge(tables)


def load_knowledge(user_dir: str | Path | None = "default") -> Knowledge:
    """Load the bundled tables plus the user's (cached per process)."""
    if user_dir == "default":
        user_dir = user_knowledge_dir()
    return _load(str(user_dir) if user_dir else None)
