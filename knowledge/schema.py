"""The knowledge tables' schema: one row model per table, with the bounds a value must meet.

Every row carries a `source`. Numbers are range-checked where they are declared: bounds on each
row model's fields, and per-key bounds (VALUE_BOUNDS) for the key/value tables (thresholds,
calibration, scaling). No NaN or infinity anywhere. Reading the files is knowledge/loader.py's.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from advisor.domain import OS, GpuSpec, ModelSpec, Quantization, Risk, Workload

# Every row model: unknown fields rejected, no type coercion (a string is not a number,
# true is not 1), no NaN or infinity.
_ROW_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

# Sanity ceilings shared by the catalog rows and a local model's own metadata (advisor/models.py).
MAX_TOKENS = 2**28  # context lengths: 268M tokens
MODEL_LIMITS: dict[str, tuple[int | float, int | float]] = {
    # field -> (smallest, largest) allowed; both inclusive
    "params_b": (1e-6, 100_000),  # up to 100 T parameters
    "layers": (1, 4096),
    "hidden_size": (1, 2**20),
    "attention_heads": (1, 65536),
    "kv_heads": (1, 65536),
    "head_dim": (1, 65536),
    "intermediate_size": (1, 2**24),
    "vocab_size": (1, 2**24),
    "max_context": (1, MAX_TOKENS),
    "rope_theta": (0, 1e15),
    "mmlu": (0, 100),
    "weight_bytes": (1, 1e15),
    # mixture of experts, MLA, sliding windows: 0 = not used
    "experts": (0, 65536),
    "experts_active": (0, 65536),
    "moe_intermediate_size": (0, 2**24),
    "shared_intermediate_size": (0, 2**24),
    "dense_layers": (0, 4096),
    "kv_lora_rank": (0, 2**20),
    "q_lora_rank": (0, 2**20),
    "qk_rope_head_dim": (0, 65536),
    "qk_nope_head_dim": (0, 65536),
    "v_head_dim": (0, 65536),
    "sliding_window": (0, MAX_TOKENS),
    "sliding_layers": (0, 4096),
}



# The vocabulary (advisor/domain.py): a row naming anything else is a typo the rules would never match.
# Backend names are the backends table's own rows (a site may add its own): the loader checks
# every reference to one across the tables (Knowledge), not a fixed list here.
Quant = Quantization
Os = OS


def _lim(name: str, **kw):
    lo, hi = MODEL_LIMITS[name]
    return Field(ge=lo, le=hi, **kw)


class _Row(BaseModel):
    model_config = _ROW_CONFIG
    source: str = Field(min_length=1)


class QuantRow(_Row):
    quant: Quant
    bits_per_weight: float = Field(gt=0, le=32)
    tier: str
    mmlu_delta_pp: float = Field(ge=0, le=100)
    risk_tiers: list[Risk]
    # formats that keep the token embedding and the LM head at higher precision (AWQ/GPTQ/FP8/
    # bitsandbytes keep them at 16 bits; GGUF's Q4_K_M writes the output at Q6_K): their bits
    embedding_bits: float | None = Field(default=None, gt=0, le=32)
    head_bits: float | None = Field(default=None, gt=0, le=32)
    min_compute_capability: float | None = Field(default=None, ge=0, le=100)


class CompatRow(_Row):
    model: str = Field(min_length=1)
    passes: list[Quant]
    fails: list[Quant]
    q3_k_s_delta_pp: float | None = Field(default=None, ge=-100, le=100)


class GateRow(_Row):
    application: str = Field(min_length=1)
    workloads: list[Workload] = []
    risk: Risk | None = None
    min_composite: float | None = Field(default=None, ge=0, le=1)
    min_mmlu: float | None = Field(default=None, ge=0, le=100)
    min_arc: float | None = Field(default=None, ge=0, le=100)
    recommended: list[Quant] = []


class WorkloadRow(_Row):
    workload: Workload
    section: str
    profile: str
    input_share: float = Field(ge=0, le=100)
    dominant_phase: str
    typical_context_min: int = Field(ge=0, le=MAX_TOKENS)
    typical_context_max: int = Field(ge=0, le=MAX_TOKENS)
    typical_output_min: int = Field(ge=0, le=MAX_TOKENS)
    typical_output_max: int = Field(ge=0, le=MAX_TOKENS)
    backend_low_n: str = Field(min_length=1)
    quant_low_n: Quant
    backend_high_n: str = Field(min_length=1)
    quant_high_n: Quant
    high_n_from: int = Field(ge=1, le=1_000_000)
    compiled_hf_at_n1: bool
    # what a user who leaves them out gets (answers output_tokens, slo.ttft_ms, slo.p95_latency_s)
    default_output_tokens: int = Field(ge=1, le=MAX_TOKENS)
    default_ttft_ms: float = Field(ge=1, le=3_600_000)
    default_p95_latency_s: float = Field(ge=0.01, le=86_400)
    defaults_source: str = Field(min_length=1)


@dataclass(frozen=True)
class Bound:
    """The range a key/value row's value must lie in; `whole` for counts."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself excluded
    hi_open: bool = False  # hi itself excluded
    whole: bool = False

    def ok(self, x: float) -> bool:
        if not math.isfinite(x) or (self.whole and not float(x).is_integer()):
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))

    def describe(self) -> str:
        what = "a whole number" if self.whole else "a number"
        if self.lo is None and self.hi is None:
            return f"{what} (finite)"
        if self.hi is None:
            assert self.lo is not None
            return f"{what} {'>' if self.lo_open else '>='} {_plain(self.lo)}"
        lo = "(" if self.lo_open else "["
        hi = ")" if self.hi_open else "]"
        low = "-inf" if self.lo is None else _plain(self.lo)
        return f"{what} in {lo}{low}, {_plain(self.hi)}{hi}"


def _plain(x: float) -> str:
    """1e7 as 10000000, 0.001 as 0.001: bounds read as people write them."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# Floors: a share under 0.1 % or a TTFT band under 1 ms is a typo, not a measurement. (They also
# keep every threshold the rules compare against out of the exponent form Python writes below
# 1e-4, which durable-rules' parser rejects.)
FRACTION = Bound(0.001, 1)  # a share of something that must be there
REDUCTION = Bound(0, 1, hi_open=True)  # a share removed: [0, 1) (1 would leave nothing)
SERIAL = Bound(0, 1)  # Amdahl's serial fraction
COUNT = Bound(1, 1_000_000, whole=True)
GIGABYTES = Bound(0, 4096)  # a fixed memory cost per GPU: never negative
MILLISECONDS = Bound(1, 1e7)
RATIO = Bound(0.001, 1000)
FINITE = Bound()

# Key (fnmatch pattern) -> bound; the first match wins. A key no pattern names (a user's
# own) must still be a finite number.
VALUE_BOUNDS: list[tuple[str, Bound]] = [
    ("*.decode_bw_efficiency", FRACTION),
    ("*.prefill_flops_efficiency", FRACTION),
    ("*.prefill_flops_efficiency.*", FRACTION),
    ("*.prefill_speedup", REDUCTION),
    ("*.gpu_memory_utilization", FRACTION),
    ("*.decode_overhead_ms_per_layer", Bound(0, 1000)),
    ("*.decode_overhead_ms_per_layer.*", Bound(0, 1000)),
    ("runtime.activation_bytes_per_token", Bound(0, 1000)),
    ("*_gb", GIGABYTES),
    ("vram_alert_*", FRACTION),
    ("context_safety_margin", FRACTION),
    ("context_near_budget", FRACTION),
    ("fp16_fit_fraction", FRACTION),
    ("ttft_*_ms", MILLISECONDS),
    ("hf_fp16_context_redirect", Bound(1, MAX_TOKENS, whole=True)),
    ("probe_table_disagreement", Bound(0.001, 100)),
    ("amdahl_s.*", SERIAL),
    ("vllm_crossover_n", COUNT),
    ("*_max_agents", COUNT),
    ("vllm_advantage_n8", RATIO),
    ("vllm_batch_amortization_n8", RATIO),
    ("compile_prefill_speedup_*", REDUCTION),
    ("*.prefill_floor_ms", Bound(0, 10_000)),
    ("*.prefill_ms_per_layer_per_ubatch", Bound(0, 100)),
    ("*.decode_ms_per_layer", Bound(0, 100)),
    ("*.decode_kv_bw_efficiency", FRACTION),
    ("*.decode_bw_efficiency.*", FRACTION),
    ("*.prefill_attention_efficiency", FRACTION),
    ("*.batch_step_multiplier.*", Bound(1, 64)),
    ("*.decode_ms_per_seq", Bound(0, 1000)),
    ("*.prefill_floor_ms.*", Bound(0, 10_000)),  # per GPU architecture (.sm90, ...)
    ("*.prefill_ms_per_layer", Bound(0, 100)),
    ("*.prefill_ms_per_layer.*", Bound(0, 100)),
    ("*.decode_ms_per_layer.*", Bound(0, 100)),
    ("*.decode_kv_bw_efficiency.*", FRACTION),
    ("*.prefill_attention_efficiency.*", FRACTION),
    ("*.decode_ms_per_seq.*", Bound(0, 1000)),
    ("band.*", Bound(0.01, 0.95)),
    ("attention.n2_bytes_per_head.*", Bound(0.1, 100)),
    ("attention.linear_min_compute_capability", Bound(1, 100)),  # a band of 100 % would let any target pass
    ("weight.*", Bound(-100, 100)),
    ("quality_margin_pp", Bound(0, 100)),
    ("load.in_flight_percentile", Bound(0.5, 0.9999)),  # a quantile of the in-flight count
    ("playbook_h5_agents_max", COUNT),
    ("quality_trade_max_gpus", COUNT),  # ranking points; negative is a bonus
    ("load.max_utilisation", Bound(0.05, 0.99)),
    ("batch.max_seqs", COUNT),
    ("max_model_len_headroom", Bound(1, 16)),
    ("nearest.min_context_tokens", Bound(1, MAX_TOKENS, whole=True)),
    ("kv_cache_q8_context_gain", Bound(1, 8)),
    ("*.max_memory_percent", FRACTION),  # transformers serve: share of the free memory after load
    ("*.max_batch_tokens", Bound(16, 1_000_000, whole=True)),
    ("*.max_batched_tokens", Bound(16, 1_000_000, whole=True)),
    ("*.page_size", Bound(4, 65_536, whole=True)),
    ("*.max_requests_per_batch", COUNT),
    ("*", FINITE),
]


def value_bound(key: str) -> Bound:
    """The bound a key/value row must meet (keys match without regard to case, as look-ups do)."""
    key = key.casefold()
    for pattern, bound in VALUE_BOUNDS:
        if fnmatch.fnmatchcase(key, pattern):
            return bound
    return FINITE


class ValueRow(_Row):
    key: str = Field(min_length=1)
    value: float
    unit: str

    @field_validator("value")
    @classmethod
    def _in_bounds(cls, v: float, info: ValidationInfo) -> float:
        key = info.data.get("key")
        if isinstance(key, str):
            bound = value_bound(key)
            if not bound.ok(v):
                raise PydanticCustomError("bound", "expected {allowed}", {"allowed": bound.describe()})
        return v


class BackendRow(_Row):
    # a site's own engine rows may add names; what it does comes from `engine` and the flags
    backend: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str
    quantizations: list[Quant]
    os: list[Os]
    # which engine implementation runs this row (advisor/engines: the registry checks the name)
    engine: str = Field(min_length=1, max_length=64)
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
    local_hf_quantizations: list[Quant] = []  # what it can serve a local HF directory at
    # the aiconfigurator-core backend whose measured kernel tables model this engine (vllm,
    # sglang, trtllm); '' for none: advisor/aiconfigurator.py
    aiconfigurator: str = Field(default="", max_length=32, pattern=r"^[a-z0-9_]*$")
    # the engine whose per-architecture calibration rows this one borrows where it has none of
    # its own (the figures stay assumed, with the wide band): TGI runs vLLM's class of kernels
    calibration_like: str = Field(default="", max_length=64)


class PlaybookRow(_Row):
    id: str = Field(min_length=1)
    title: str
    when: str
    prerequisites: str = ""
    steps: list[str] = Field(min_length=1)
    correction: str = ""


RankingTerm = Literal["policy", "targets", "replicas", "default_targets", "quality", "gpus", "preferences",
                      "certainty", "speed"]


class RankingRow(_Row):
    """One term of the declared objective (knowledge/ranking.toml), applied in `order`."""

    term: RankingTerm
    order: int = Field(ge=0, le=1000)
    meaning: str = Field(min_length=1)


class ContextRow(_Row):
    model: str = Field(min_length=1)
    gpu: str
    backend: str
    quant: str
    base_mb: float = Field(gt=0, le=2**30)
    slope_mb_per_token: float = Field(gt=0, le=2**20)
    spillover_tokens: int = Field(ge=0, le=MAX_TOKENS)
    oom_tokens: int = Field(ge=0, le=MAX_TOKENS)
    practical_budget_tokens: int = Field(ge=0, le=MAX_TOKENS)


class MeasurementRow(_Row):
    kind: str  # prefill_ms | decode_tok_s | peak_vram_mb
    model: str
    backend: str
    quant: str
    gpu: str
    os: str = "linux"
    context_tokens: int = Field(gt=0, le=MAX_TOKENS)
    value: float = Field(gt=0, le=1e12)
    unit: str
    statistic: str = ""


class GenericRow(BaseModel):
    """Rows of a table the user invented: anything, as long as it says where it came from."""

    model_config = ConfigDict(extra="allow")
    source: str = Field(min_length=1)


class GpuRow(GpuSpec):
    # Floors: a GPU under 256 MB, 1 GB/s or 10 GFLOP/s is a unit typo (MB for GB, TB/s for GB/s),
    # and one the advice would divide by.
    model_config = _ROW_CONFIG
    name: str = Field(min_length=1)
    vram_gb: float = Field(ge=0.25, le=4096)  # HardwareAnswers.vram_gb allows up to 4096 too
    bandwidth_gb_s: float = Field(ge=1, le=1_000_000)
    fp16_tflops: float = Field(ge=0.01, le=1_000_000)
    int8_tops: float | None = Field(default=None, ge=0.01, le=1_000_000)
    fp16_acc32_tflops: float | None = Field(default=None, ge=0.01, le=1_000_000)
    fp8_tflops: float | None = Field(default=None, ge=0.01, le=1_000_000)
    compute_capability: float | None = Field(default=None, ge=1, le=100)


class ModelRow(ModelSpec):
    model_config = _ROW_CONFIG
    id: str = Field(min_length=1)
    params_b: float = _lim("params_b")
    layers: int = _lim("layers")
    hidden_size: int = _lim("hidden_size")
    attention_heads: int = _lim("attention_heads")
    kv_heads: int = _lim("kv_heads")
    head_dim: int = _lim("head_dim")
    intermediate_size: int = _lim("intermediate_size")
    vocab_size: int = _lim("vocab_size")
    max_context: int = _lim("max_context")
    rope_theta: float = _lim("rope_theta", default=0.0)
    mmlu: float | None = _lim("mmlu", default=None)
    weight_bytes: float | None = _lim("weight_bytes", default=None)
    experts: int = _lim("experts", default=0)
    experts_active: int = _lim("experts_active", default=0)
    moe_intermediate_size: int = _lim("moe_intermediate_size", default=0)
    shared_intermediate_size: int = _lim("shared_intermediate_size", default=0)
    dense_layers: int = _lim("dense_layers", default=0)
    kv_lora_rank: int = _lim("kv_lora_rank", default=0)
    q_lora_rank: int = _lim("q_lora_rank", default=0)
    qk_rope_head_dim: int = _lim("qk_rope_head_dim", default=0)
    qk_nope_head_dim: int = _lim("qk_nope_head_dim", default=0)
    v_head_dim: int = _lim("v_head_dim", default=0)
    sliding_window: int = _lim("sliding_window", default=0)
    sliding_layers: int = _lim("sliding_layers", default=0)

    @field_validator("kv_heads")
    @classmethod
    def _kv_within_heads(cls, v: int, info: ValidationInfo) -> int:
        heads = info.data.get("attention_heads")
        if isinstance(heads, int) and v > heads:
            raise PydanticCustomError("kv_heads", "kv_heads ({kv}) must not exceed attention_heads ({heads})",
                                      {"kv": v, "heads": heads})
        return v


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
    "ranking": (RankingRow, "term"),
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

