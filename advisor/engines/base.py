"""What every serving engine answers: one base class, one module per engine.

An engine object is built from its row in knowledge/backends.toml (a site's own rows too): the
row's `engine` picks the class (advisor/engines/__init__.py's registry), its flags and prefixes
say the rest. Everything the advisor knows about how an engine behaves is answered here or in
the engine's own module, so no other module compares engine names:

- its scheduler (advisor/load/schedulers.py): continuous batching, fixed slots, one at a time;
- its memory: what it holds besides weights and KV, whether it sizes its own KV pool or claims
  memory up front, whether it splits weights over GPUs;
- its speed: step costs behind the StepCosts protocol, from NVIDIA's measured tables where it
  names them (advisor/engines/aiconfigurator.py), else the calibrated roofline
  (advisor/engines/roofline.py), with the band each figure carries;
- its probes: which probe kinds feed it, and which server it must have met;
- the knobs a plan sets for it (from a Sizing record, decided once) and its exporter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from advisor.domain import GpuSpec, ModelSpec, Origin, ProbeResult, Setting
from advisor.engines import aiconfigurator
from advisor.engines.roofline import Calibration, arch_token, roofline_costs
from advisor.knowledge import BackendRow, Knowledge
from advisor.load import SCHEDULERS, ContinuousBatching, FixedSlots, Mode, Scheduler, StepCosts

DTYPES = {"fp16": "float16", "bf16": "bfloat16"}
PRE_QUANTIZED = ("awq", "gptq", "fp8")  # the checkpoint (or the engine at load) sets the dtype


@dataclass(frozen=True)
class Sizing:
    """What a plan decided, once, that an engine's knobs follow (advisor/plan.py builds it)."""

    model: ModelSpec
    quant: str
    local_path: str  # the user's GGUF file or HF folder ('' for a catalog model)
    tensor_parallel: int
    replicas: int
    seqs: int  # sequences each replica runs at once (its max_num_seqs / -np / slots)
    mode: Mode
    prompt_tokens: int
    output_tokens: int
    max_context_tokens: int  # context per sequence the plan holds
    budget_one: int  # the longest single sequence the pool holds (a paged pool's longest request)
    base_gb: float  # weights + runtime per GPU
    usable_gb: float  # per GPU, after other tenants
    total_gb: float  # per GPU
    bf16_ok: bool  # the GPU has bf16 tensor cores (compute capability 8.0+)
    pool_tokens: int = 0  # the engine's own KV pool, all sequences together (0: sized by the margin)
    pool_source: str = ""
    # the rule and source behind `seqs` (advisor/estimate.py seqs_reason): the head count of agents back
    # to back, the in-flight count's high percentile, or an offline batch's batch; "" = from `mode`
    seqs_rule: str = ""
    seqs_why: str = ""


@dataclass(frozen=True)
class Speed:
    """A candidate's step costs, where each part came from and how far it may be off.

    origin: roofline (the calibrated roofline), aiconfigurator (NVIDIA's measured tables) or probe
    (rescaled to a measurement on this machine); band: relative uncertainty (calibration residuals,
    the tables' own error, a probe's repeatability, else the assumed band); assumed: no measurement
    of this engine checks the efficiency behind the figure."""

    costs: StepCosts
    prefill_origin: Origin
    decode_origin: Origin
    prefill_source: str
    decode_source: str
    prefill_band: float
    prefill_band_source: str
    decode_band: float
    decode_band_source: str
    prefill_assumed: bool = False
    decode_assumed: bool = False
    # figures a probe replaced: what -> (probe value, table/roofline value, its source)
    replaced: tuple[tuple[str, float, float, str], ...] = ()
    notes: tuple[str, ...] = ()  # a probe figure that beat the roofline, and was not used


class Engine:
    """The behaviour common to every engine; each engine's module adds its memory and its knobs."""

    kind: ClassVar[str] = ""  # the backends row's `engine` value that picks this class

    def __init__(self, row: BackendRow, knowledge: Knowledge):
        self.row = row
        self.k = knowledge
        self.name: str = row.backend
        self.title: str = row.title
        self.calibration = Calibration(knowledge, row.calibration or row.backend, row.backend, row.calibration_like)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # ------------------------------------------------------------ what it is
    @property
    def family(self) -> str:
        """Engines whose stored measurements and probes describe each other (ollama ~ llama.cpp)."""
        return self.row.family

    @property
    def export_target(self) -> str:
        """The exporter that writes this engine's plans (`advisor export --target`)."""
        return self.row.export_target

    @property
    def pages_kv(self) -> bool:
        """The KV cache is paged on demand from one pool (vLLM PagedAttention, TGI)."""
        return bool(self.row.pages_kv)

    @property
    def compiled_prefill(self) -> bool:
        return bool(self.row.compiled_prefill)

    @property
    def prefill_activations(self) -> bool:
        """Prefills the whole prompt at once and holds its activations (no chunked prefill)."""
        return bool(self.row.prefill_activations)

    @property
    def splits_tensor_parallel(self) -> bool:
        return bool(self.row.tensor_parallel)

    def supports(self, quant: str, os_name: str) -> tuple[bool, bool]:
        """(serves this quantization, runs on this OS)."""
        return quant in self.row.quantizations, os_name in self.row.os

    def servable(self, model: ModelSpec) -> list[str]:
        """The quantizations it can serve this model at, given the form the model comes in.

        Catalog models are pulled in whatever form an engine wants. A GGUF file is served as it
        is by the engines that read GGUF; a local HF directory at its own precision by the
        HF-format engines, or imported by those that convert it themselves (Ollama's create)."""
        row = self.row
        if model.origin == "gguf":
            ok = row.serves_gguf and model.file_quantization in row.quantizations
            return [model.file_quantization] if ok else []
        if model.origin == "local":
            return [q for q in row.quantizations if q in row.local_hf_quantizations]
        return list(row.quantizations)

    # ------------------------------------------------------------ its scheduler
    def scheduler(self, model: ModelSpec) -> Scheduler:
        """How it admits requests and shares its steps (the row's `batching`)."""
        kind = SCHEDULERS[self.row.batching]
        if kind is FixedSlots:
            key = f"amdahl_s.{model.id}" if self.k.has(f"amdahl_s.{model.id}") else "amdahl_s.default"
            return FixedSlots(amdahl_s=self.k.value(key), source=f"Amdahl s = {self.k.value(key):g} across "
                                                                 f"slots ({self.k.source(key)})")
        if kind is ContinuousBatching:
            return ContinuousBatching(max_batched_tokens=self.max_batched_tokens())
        return kind()

    def max_batched_tokens(self) -> int:
        """Tokens one step takes (prompt chunks and decodes together): vLLM --max-num-batched-tokens,
        llama.cpp -b. The engine's calibration row, else the one it borrows from, else the default."""
        for base in (self.calibration.prefix, self.calibration.like):
            if base and self.k.has(f"{base}.max_batched_tokens"):
                return int(self.k.value(f"{base}.max_batched_tokens"))
        return int(self.k.value("load.max_batched_tokens"))

    # ------------------------------------------------------------ memory
    def overhead_gb(self) -> tuple[float, str]:
        """Fixed memory besides the weights: the CUDA context, plus the engine's own buffers."""
        k = self.k
        gb = k.value("cuda_context_overhead_gb")
        src = f"cuda_context_overhead_gb ({k.source('cuda_context_overhead_gb')})"
        for key in self.row.overhead_keys:
            gb += k.value(key)
            src += f" + {key} ({k.source(key)})"
        return gb, src

    def kv_pool(self, model: ModelSpec, free_gb: float, base_gb: float, total_gb: float) -> tuple[int, str] | None:
        """Tokens the engine's own KV pool holds when `free_gb` is free after its weights and runtime
        (`base_gb`) load on a GPU of `total_gb`, and how that was worked out; None for an engine whose
        pool the advisor sizes itself (margin x free)."""
        return None

    def claim_gb(self, base_gb: float, usable_gb: float, total_gb: float) -> tuple[float, str] | None:
        """GPU memory the engine takes whatever the load (its weights and runtime at `base_gb`, on a GPU
        with `usable_gb` usable of `total_gb`), and why; None for an engine whose memory grows with what it holds."""
        return None

    # ------------------------------------------------------------ speed
    def speed(self, model: ModelSpec, gpu: GpuSpec, quant: str, tp: int, prompt_tokens: int, mean_context: int,
              os_name: str) -> Speed:
        """Its step costs for this candidate: NVIDIA's measured tables where the row names the
        aiconfigurator backend that models it and they cover the candidate, else the calibrated
        roofline (which is quoted beside the tables' figures as a cross-check)."""
        roof, src = roofline_costs(self.calibration, model, gpu, quant, tp, mean_context, os_name,
                                   compiled_prefill=self.compiled_prefill)
        tables = aiconfigurator.step_costs(self.row.aiconfigurator, model, gpu, quant, tp, mean_context) \
            if self.row.aiconfigurator else None
        costs: StepCosts = roof
        origin: Origin = "roofline"
        prefill_src, decode_src = src["prefill"], src["decode"]
        if tables is not None:
            costs, where = tables
            origin = "aiconfigurator"  # the calibrated roofline stays beside it as a cross-check the user can read
            prefill_src = where["prefill"] + f"; the calibrated roofline says {roof.prefill_ms(prompt_tokens):.0f} ms"
            decode_src = where["decode"] + f"; the calibrated roofline says {1e3 / roof.step_ms(1):.1f} tok/s one stream"
        pb, pb_src, p_assumed = self.band(origin, "prefill", gpu, quant)
        db, db_src, d_assumed = self.band(origin, "decode", gpu, quant)
        return Speed(costs=costs, prefill_origin=origin, decode_origin=origin, prefill_source=prefill_src,
                     decode_source=decode_src, prefill_band=pb, prefill_band_source=pb_src, decode_band=db,
                     decode_band_source=db_src, prefill_assumed=p_assumed, decode_assumed=d_assumed)

    def band(self, origin: Origin, figure: str, gpu: GpuSpec, quant: str) -> tuple[float, str, bool]:
        """(relative uncertainty, its source, whether the efficiency behind it is assumed) of a figure
        from `origin` (probe, aiconfigurator, roofline): `figure` is prefill or decode."""
        k = self.k
        if origin == "probe":
            return k.value("band.probe"), f"±{k.value('band.probe'):.0%} ({k.source('band.probe')})", False
        if origin == "aiconfigurator":
            return (k.value("band.aiconfigurator"), f"±{k.value('band.aiconfigurator'):.0%} "
                    f"({k.source('band.aiconfigurator')})", False)
        arch = arch_token(gpu)
        value, src = self.calibration.band(figure, arch, quant)
        return value, src, self.calibration.assumed(figure, arch, quant)

    # ------------------------------------------------------------ probes
    def takes_probe(self, probe: ProbeResult) -> bool:
        """A probe of one of its kinds; a server probe that says which server it met only when it met this one."""
        if probe.backend not in self.row.probe_kinds:
            return False
        return not probe.server or probe.server == self.row.engine

    # ------------------------------------------------------------ the plan's knobs
    def settings(self, s: Sizing) -> dict[str, Setting]:
        """The knobs the exporters paste verbatim, each with the rule that set it."""
        out: dict[str, Setting] = {}
        model = s.model
        if model.hf_repo:
            put(out, "hf_repo", model.hf_repo, "model.catalog", model.source)
        if model.ollama_tag:
            put(out, "ollama_tag", model.ollama_tag, "model.catalog", model.source)
        if model.origin != "catalog":
            put(out, "local_path", s.local_path, "model.answers", "answers: model.name")
        put(out, "dtype", *self._dtype(s))
        self._engine_settings(out, s)
        return out

    def _engine_settings(self, out: dict[str, Setting], s: Sizing) -> None:
        pass

    def _dtype(self, s: Sizing) -> tuple[str, str, str]:
        """(dtype, rule, source): a 16-bit plan runs in the precision the model ships in (bf16 for
        most current models) where the GPU has bf16 (compute capability 8.0+), else float16."""
        model, quant = s.model, s.quant
        if quant in PRE_QUANTIZED:
            return "auto", "quantization.choice", self.k.quant[quant].source
        if quant == "bf16" or (quant == "fp16" and model.dtype == "bfloat16" and s.bf16_ok):
            return "bfloat16", "quantization.native-dtype", f"{model.id} ships in {model.dtype or 'bfloat16'} ({model.source})"
        if quant == "fp16" and model.dtype == "bfloat16":
            return "float16", "quantization.native-dtype", (f"{model.id} ships in bfloat16, which this GPU lacks "
                                                           f"(compute capability < 8.0): float16")
        return DTYPES.get(quant, "float16"), "quantization.choice", self.k.quant[quant].source

    def budget_source(self) -> str:
        return self.k.source("context_safety_margin")

    @staticmethod
    def seqs_source(s: Sizing, what: str) -> str:
        """Where the sequence limit came from: what the plan said, else by the load's mode (`what`:
        the engine's words for N users' head count)."""
        if s.seqs_why:
            return s.seqs_why
        if s.mode == "batch":
            return "offline batch: the throughput-optimal batch (advisor/load/schedulers.py)"
        if s.mode == "rate":
            return ("the in-flight count's high percentile at the arrival rate (Little's law, a Poisson count; "
                    "advisor/load/inflight.py), within the KV pool")
        return what

    @staticmethod
    def seqs_rule(s: Sizing) -> str:
        """The rule that set the sequence limit (rules/scaling.py)."""
        return s.seqs_rule or {"batch": "scaling.batch-seqs", "rate": "scaling.in-flight"}.get(s.mode, "scaling.concurrency")


def put(out: dict[str, Setting], key: str, value, rule: str, source: str) -> None:
    out[key] = Setting(value=value, rule=rule, source=source)


def memory_share(usable_gb: float, total_gb: float, wanted: float) -> float:
    """A server's claim as a share of the GPU, lowered where other tenants leave less free."""
    free = usable_gb / total_gb
    return wanted if free >= wanted else math.floor(free * 100 - 1) / 100
