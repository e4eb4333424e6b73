"""Domain types shared by every layer: answers, hardware, probes, recommendation.

Defined once here; the CLI, the TUI, the rules, the probes and the exporters all
speak these. Nothing here imports torch, transformers or Textual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


WORKLOADS = ("rag", "summarization", "chat", "balanced", "codegen", "classification")
RISKS = ("high", "moderate", "low")
OSES = ("linux", "windows")
BACKENDS = ("ollama", "llamacpp", "vllm", "tgi", "transformers", "transformers-compiled")
QUANTIZATIONS = (
    "fp16", "bf16", "fp8", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_s", "q2_k",
    "awq", "gptq", "int8", "nf4",
)
EXPORT_TARGETS = ("vllm", "ollama", "llamacpp", "transformers", "tgi")

# Keys of Plan.settings (each optional; exporters render what is present):
SETTING_KEYS = {
    "hf_repo": "Hugging Face repo id of the model ('' when not known)",
    "ollama_tag": "Ollama tag of the model, including the quantization suffix when known",
    "local_path": "local HF directory or GGUF file the user pointed at",
    "dtype": "torch / server dtype: float16 | bfloat16 | auto",
    "max_num_seqs": "max concurrent sequences per replica (vLLM --max-num-seqs, TGI, llama.cpp slots)",
    "gpu_memory_utilization": "vLLM fraction of GPU memory it may claim",
    "num_parallel": "Ollama OLLAMA_NUM_PARALLEL / llama.cpp --parallel",
    "num_ctx": "context per sequence for Ollama/llama.cpp (Ollama reserves num_ctx x num_parallel at load)",
    "ctx_size_total": "llama.cpp -c: total context shared by all --parallel slots (num_ctx x num_parallel)",
    "max_model_len": "vLLM --max-model-len / TGI --max-total-tokens: context + output per sequence",
    "max_input_tokens": "TGI --max-input-tokens: the longest prompt per sequence",
    "flash_attention": "bool: enable flash attention (Ollama OLLAMA_FLASH_ATTENTION, llama.cpp -fa)",
    "kv_cache_type": "KV cache element type: f16 | q8_0 | q4_0 (Ollama OLLAMA_KV_CACHE_TYPE, llama.cpp -ctk/-ctv)",
    "gpu_layers": "layers offloaded to the GPU (llama.cpp -ngl); 999 = all",
    "attn_implementation": "transformers attn_implementation: sdpa | eager | flash_attention_2",
    "compile": "transformers torch.compile policy: 'prefill-only' | 'off'",
    "temperature": "sampling temperature for the task (Modelfile PARAMETER)",
}

Workload = Literal[WORKLOADS]
Risk = Literal[RISKS]
OS = Literal[OSES]
Origin = Literal["probe", "knowledge", "roofline", "answers"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- answers

# Each answer field is defined once, here: its type and bounds (pydantic) and how it is asked
# (Ask: label, unit, help, CLI flag, TUI widget and page). advisor.fields turns these into the CLI
# flags of `recommend` and `export`, the TOML keys, the TUI's inputs and every validation message.
# Strict: a TOML `true` is not the number 1, 8.0 is not a whole number; no inf or nan anywhere.
@dataclass(frozen=True)
class Ask:
    """How an answer field is asked: its words and its place, beside its type on the model."""

    label: str
    help: str
    unit: str = ""
    flag: str = ""      # the CLI flag without "--" (default: the field name, _ as -)
    widget: str = ""    # number | choice | text | gpu | model (default: from the type)
    page: str = ""      # where the TUI asks it: hardware | workload | risk | load | model


_ANSWERS_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class HardwareAnswers(BaseModel):
    model_config = _ANSWERS_CONFIG

    gpu: Annotated[str, Field(min_length=1, max_length=200),
                   Ask("GPU", 'catalog GPU name, or "auto" to detect this machine\'s with NVML',
                       widget="gpu", page="hardware")] = "auto"
    gpus: Annotated[int | None, Field(ge=1, le=64),
                    Ask("GPUs", "GPUs to plan for (empty: all detected, or 1 catalog GPU)",
                        page="hardware")] = None
    vram_gb: Annotated[float | None, Field(ge=1, le=2048),
                       Ask("VRAM", "VRAM per GPU (empty: the catalog's or NVML's)", unit="GB",
                           page="hardware")] = None
    background_vram_gb: Annotated[float, Field(ge=0, le=2048),
                                  Ask("other tenants", "VRAM used by the desktop or other tenants",
                                      unit="GB", page="hardware")] = 0.0
    os: Annotated[OS, Ask("OS", "the server's OS (the spill-over cliff depends on it)",
                          widget="choice", page="hardware")] = "linux"


class ModelAnswers(BaseModel):
    model_config = _ANSWERS_CONFIG

    name: Annotated[str, Field(max_length=4096),
                    Ask("model", "catalog id, HF folder, GGUF file or Ollama tag (empty: advisor picks)",
                        flag="model", widget="model", page="model")] = ""


class SLOAnswers(BaseModel):
    model_config = _ANSWERS_CONFIG

    ttft_ms: Annotated[float, Field(ge=1, le=3_600_000),
                       Ask("TTFT target", "time to first token", unit="ms", page="load")] = 1000.0
    p95_latency_s: Annotated[float, Field(ge=0.01, le=86_400),
                             Ask("p95 latency", "whole answer, 95th percentile", unit="s", page="load")] = 5.0
    min_decode_tok_s: Annotated[float, Field(ge=0, le=100_000),
                                Ask("min decode", "per user, 0 = any", unit="tok/s", page="load")] = 0.0


class ConstraintAnswers(BaseModel):
    model_config = _ANSWERS_CONFIG

    # any backend the knowledge has (the bundled ones and the user's own rows): checked by name
    backend: Annotated[str, Field(max_length=64),
                       Ask("backend", "a backend you are tied to (empty: any)",
                           widget="backend", page="model")] = ""
    quantization: Annotated[Literal[("",) + QUANTIZATIONS],
                            Ask("quantization", "a quantization you are tied to (empty: any)",
                                widget="choice", page="model")] = ""


class Answers(BaseModel):
    """What the user told us (questionnaire, TOML file or flags)."""

    model_config = _ANSWERS_CONFIG

    workload: Annotated[Workload, Ask("workload", "what the model mostly does (Appendix F)",
                                      widget="choice", page="workload")] = "chat"
    risk: Annotated[Risk, Ask("risk tier", "how bad a wrong answer is (Appendix P.1)",
                              widget="choice", page="risk")] = "moderate"
    concurrency: Annotated[int, Field(ge=1, le=4096),
                           Ask("concurrency", "simultaneous requests", page="load")] = 1
    context_tokens: Annotated[int, Field(ge=1, le=2_000_000),
                              Ask("context", "typical prompt + history", unit="tokens", page="load")] = 4096
    output_tokens: Annotated[int, Field(ge=1, le=1_000_000),
                             Ask("output", "typical answer length", unit="tokens", page="load")] = 256
    arrival_rate_rps: Annotated[float, Field(ge=0, le=1_000_000),
                                Ask("arrival rate", "requests per second arriving, 0 = use concurrency",
                                    unit="req/s", page="load")] = 0.0
    requests_per_day: Annotated[int, Field(ge=0, le=1_000_000_000),
                                Ask("requests / day", "batch volume, 0 = not a batch job",
                                    page="load")] = 0
    deadline_hours: Annotated[float, Field(ge=0, le=8760),
                              Ask("deadline", "batch window, 0 = none", unit="hours", page="load")] = 0.0
    hardware: HardwareAnswers = HardwareAnswers()
    model: ModelAnswers = ModelAnswers()
    slo: SLOAnswers = SLOAnswers()
    constraints: ConstraintAnswers = ConstraintAnswers()


# ---------------------------------------------------------------- knowledge rows
class GpuSpec(_Strict):
    name: str
    aliases: list[str] = []
    vram_gb: float = Field(gt=0)
    bandwidth_gb_s: float = Field(gt=0)
    fp16_tflops: float = Field(gt=0)
    int8_tops: float | None = Field(default=None, gt=0)
    # FP16 with FP32 accumulate: the math PyTorch, vLLM and TGI run. GeForce parts run it at
    # half their FP16-accumulate rate (fp16_tflops); datacenter parts at the same rate.
    fp16_acc32_tflops: float | None = Field(default=None, gt=0)
    fp8_tflops: float | None = Field(default=None, gt=0)  # dense FP8 tensor (Ada, Hopper and later)
    compute_capability: float | None = Field(default=None, gt=0)  # e.g. 8.9 for Ada: decides FP8
    architecture: str = ""
    source: str = Field(min_length=1)

    @property
    def peak_flops(self) -> float:
        return self.fp16_tflops * 1e12

    @property
    def acc32_flops(self) -> float:
        """The FP16/BF16 rate real serving kernels get (FP32 accumulate)."""
        return (self.fp16_acc32_tflops or self.fp16_tflops) * 1e12

    @property
    def peak_ops_any(self) -> float:
        """The most generous tensor peak (INT8 for quantized kernels)."""
        return max(self.fp16_tflops, self.int8_tops or 0.0) * 1e12


class ModelSpec(_Strict):
    id: str
    family: str
    hf_architecture: str
    hf_repo: str = ""
    ollama_tag: str = ""
    params_b: float = Field(gt=0)
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    tied_embeddings: bool
    max_context: int = Field(gt=0)
    rope_theta: float = 0.0
    dtype: str = ""  # the precision it ships in (config.json torch_dtype): bfloat16 | float16 | float32
    mmlu: float | None = None
    source: str = Field(min_length=1)
    # set when the model came from a local directory ("local") or a GGUF file ("gguf"), not the catalog
    origin: str = "catalog"
    # a GGUF file's own weights: their stored bytes and the quantization they were written at
    weight_bytes: float | None = Field(default=None, gt=0)
    file_quantization: str = ""

    @property
    def params(self) -> float:
        return self.params_b * 1e9

    @property
    def embedding_params(self) -> float:
        """vocab x hidden: the token embedding (and the LM head when tied)."""
        return float(self.vocab_size * self.hidden_size)

    @property
    def non_embedding_params(self) -> float:
        """Parameters in the transformer blocks: what every prompt token multiplies through."""
        heads = 1 if self.tied_embeddings else 2
        return max(self.params - heads * self.embedding_params, 0.0)

    @property
    def decode_read_params(self) -> float:
        """Parameters read per decoded token: all but an untied input embedding (a row lookup)."""
        return self.params - (0.0 if self.tied_embeddings else self.embedding_params)

    def kv_bytes_per_token(self, kv_dtype_bytes: float = 2.0) -> float:
        """2 (K and V) x layers x kv_heads x head_dim x bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_dtype_bytes


# ---------------------------------------------------------------- hardware
class GpuDevice(_Strict):
    index: int = 0
    name: str
    total_gb: float
    free_gb: float | None = None
    used_gb: float | None = None
    other_processes_gb: float | None = None
    driver: str = ""
    cuda: str = ""
    compute_capability: str = ""
    pcie: str = ""
    catalog_name: str | None = None  # matched catalog row


class Hardware(_Strict):
    """The GPUs we plan for: detected with NVML, or a catalog GPU named in the answers."""

    source: Literal["nvml", "catalog"]
    devices: list[GpuDevice]
    spec: GpuSpec  # catalog facts (bandwidth, FLOP/s) for the first device
    os: OS = "linux"
    note: str = ""

    @property
    def count(self) -> int:
        return len(self.devices)

    @property
    def vram_gb(self) -> float:
        return self.devices[0].total_gb

    @property
    def compute_capability(self) -> float | None:
        """NVML's reading of the card, else the catalog row's; None when neither says."""
        try:
            return float(self.devices[0].compute_capability)
        except (TypeError, ValueError):
            return self.spec.compute_capability


# ---------------------------------------------------------------- probes
class CurvePoint(_Strict):
    context_tokens: int
    peak_mb: float | None = None  # generate()-style prefill (last-token logits)
    full_logits_peak_mb: float | None = None  # plain forward, logits for every token
    predicted_mb: float | None = None
    status: Literal["ok", "skipped", "oom"] = "ok"
    note: str = ""


class CurveFit(_Strict):
    """peak_mb(n) = base_mb + linear_mb_per_token * n + quadratic_mb_per_token2 * n^2"""

    kind: Literal["linear", "quadratic"]
    base_mb: float
    linear_mb_per_token: float
    quadratic_mb_per_token2: float = 0.0

    def predict(self, n: float) -> float:
        return self.base_mb + self.linear_mb_per_token * n + self.quadratic_mb_per_token2 * n * n


class TimingPoint(_Strict):
    context_tokens: int
    ttft_ms: float
    repetitions: int
    rep0_ms: float | None = None


class ProbeProgress(_Strict):
    """One progress report from a running probe (for a progress bar and a live plot)."""

    step: str  # "load" | "curve" | "ttft" | "decode" | "ollama" | "openai" | "done"
    fraction: float = Field(ge=0, le=1)  # of the whole probe
    message: str = ""
    point: CurvePoint | None = None  # a new VRAM-curve point, for the live plot


class ProbeResult(_Strict):
    """What a probe measured on this machine; feeds recommend()."""

    backend: str
    model: str
    gpu: str = ""
    attention: str = ""
    dtype: str = ""
    versions: dict[str, str] = {}
    base_vram_mb: float | None = None
    curve: list[CurvePoint] = []
    fit: CurveFit | None = None
    kv_bytes_per_token: float | None = None
    ttft: list[TimingPoint] = []
    decode_tok_s: float | None = None
    max_model_len: int | None = None
    warnings: list[str] = []
    measured_at: str = ""
    duration_s: float | None = None
    cached: bool = False
    extra: dict[str, Any] = {}


# ---------------------------------------------------------------- recommendation
class Provenance(_Strict):
    origin: Origin
    source: str


class LoadFigures(_Strict):
    """The load the predictions describe, and what one replica holds (advisor/load.py)."""

    mode: Literal["concurrent", "rate", "batch"]  # N users in flight | arrivals per second | offline batch
    sequences: int  # in flight at once (max_num_seqs / -np / OLLAMA_NUM_PARALLEL)
    rate_rps: float  # requests per second on one replica (concurrent: N / time in system)
    ttft_p95_ms: float  # steady state
    e2e_p95_s: float
    burst_last_ttft_ms: float  # if all N prompts arrived in the same instant: the last one's TTFT
    capacity_rps: float  # one replica saturated
    max_rate_rps: float | None = None  # the largest arrival rate one replica holds within the SLO (simulated)
    simulated: dict[str, float] | None = None  # the scheduler simulation at this rate: p50/p95
    steady: bool = True


class Predicted(_Strict):
    vram_gb: float
    ttft_ms: float  # p95 time to first token under the described load (steady state; see load)
    decode_tok_s_per_user: float
    total_tok_s: float
    p95_latency_s: float | None = None
    origins: dict[str, Provenance] = {}
    # relative uncertainty of each figure: calibration residuals, a probe's repeatability, or assumed
    bands: dict[str, float] = {}
    load: LoadFigures | None = None


class Setting(_Strict):
    """One deployment knob (num_ctx, gpu_memory_utilization, ...), with the rule that set it."""

    value: str | int | float | bool
    rule: str
    source: str


class Plan(_Strict):
    backend: str
    quantization: str
    model: str
    max_context_tokens: int
    concurrency: int
    replicas: int = 1
    tensor_parallel: int = 1
    predicted: Predicted
    lost_because: list[str] = []  # alternatives: why this did not win
    # which rule set each headline field (backend, quantization, model, max_context_tokens,
    # concurrency, replicas, tensor_parallel) -> rule name (its source is in rules_fired)
    set_by: dict[str, str] = {}
    # backend knobs the exporters render verbatim; keys listed in SETTING_KEYS
    settings: dict[str, Setting] = {}


class RuleFiring(_Strict):
    rule: str
    source: str
    because: str


class PlaybookRef(_Strict):
    id: str
    title: str


class Recommendation(_Strict):
    recommendation: Plan | None
    # one line on why there is no recommendation (empty when there is one)
    no_plan_because: str = ""
    alternatives: list[Plan] = []
    playbooks: list[PlaybookRef] = []
    rules_fired: list[RuleFiring] = []
    warnings: list[str] = []
    probes: dict[str, Any] | None = None
    answers: Answers | None = None
    hardware: dict[str, Any] | None = None
