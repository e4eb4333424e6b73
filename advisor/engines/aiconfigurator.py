"""vLLM step costs from NVIDIA's aiconfigurator-core, where it has measured data (optional extra).

aiconfigurator-core (Apache-2.0, `pip install 'advisor[aiconfigurator]'`) ships per-GPU tables of
kernels timed under vLLM, SGLang and TRT-LLM (GEMMs per quantization, attention, communication)
for datacenter parts (H100/H200 SXM, A100 SXM, L40S, B200, ...), and composes a model's prefill
and decode step from them. Where a GPU row names its system (`aiconfigurator_system` in
knowledge/gpus.toml), the engine row names the aiconfigurator backend that models it
(`aiconfigurator` in knowledge/backends.toml) and the architecture and quantization are ones it
models, the plan's prefill curve and decode steps come from those tables instead of the roofline
x a calibrated efficiency. Everything else keeps advisor/engines/roofline.py's model, whose vLLM
rows were themselves fitted to these tables (bench/calibrate/aiconfigurator_vllm.py).

The import is lazy (only when a plan asks for it) and never reaches a network: the model is
described by a config.json written from the advisor's own architecture facts into the
advisor's cache folder, so aiconfigurator never looks a name up on a hub.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import json
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from advisor.domain import GpuSpec, ModelSpec
from advisor.probes.cache import cache_root  # the one cache folder, shared with the probes

DIST = "aiconfigurator-core"
# The advisor's quantization -> aiconfigurator's GEMM mode under vLLM. FP16 runs the BF16
# tables (same tensor-core rate). Its vLLM tables (0.12.0) hold bfloat16, fp8 and fp8_block
# GEMMs only: AWQ/GPTQ (W4A16) plans keep the calibrated roofline.
GEMM_MODE = {"fp16": "bfloat16", "bf16": "bfloat16", "fp8": "fp8"}
# Architectures aiconfigurator composes (its ARCHITECTURE_TO_MODEL_FAMILY), as the advisor's
# families map onto them: Mistral without sliding layers is the Llama graph.
DENSE = {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"}
MOE = {"MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"}

_LOCK = threading.Lock()
_ENGINES: dict[tuple, object] = {}


def available() -> bool:
    """True when the optional extra is installed (checked without importing it) and not switched
    off with ADVISOR_AICONFIGURATOR=off (the calibrated roofline alone, e.g. to compare)."""
    if os.environ.get("ADVISOR_AICONFIGURATOR", "").strip().lower() in ("0", "off", "no", "false"):
        return False
    try:
        return importlib.util.find_spec("aiconfigurator_core") is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _v

    try:
        return _v(DIST)
    except PackageNotFoundError:
        return "?"


def hf_config(model: ModelSpec) -> dict | None:
    """A config.json for the architectures aiconfigurator composes, from the stored facts."""
    arch = model.hf_architecture
    if model.is_mla or model.sliding_layers:
        return None
    if arch not in DENSE | MOE:
        return None
    if (arch in MOE) != bool(model.experts):
        return None
    cfg = {
        "architectures": ["LlamaForCausalLM" if arch == "MistralForCausalLM" else arch],
        "model_type": "mixtral" if arch == "MixtralForCausalLM" else "llama",
        "hidden_size": model.hidden_size, "intermediate_size": model.intermediate_size,
        "num_hidden_layers": model.layers, "num_attention_heads": model.attention_heads,
        "num_key_value_heads": model.kv_heads, "head_dim": model.head_dim,
        "vocab_size": model.vocab_size, "max_position_embeddings": model.max_context,
        "tie_word_embeddings": model.tied_embeddings, "torch_dtype": model.dtype or "bfloat16",
        "rope_theta": model.rope_theta or 10000.0, "hidden_act": "silu", "rms_norm_eps": 1e-6,
    }
    if arch in MOE:
        cfg.update(num_local_experts=model.experts, num_experts=model.experts,
                   num_experts_per_tok=model.experts_active,
                   moe_intermediate_size=model.moe_intermediate_size or model.intermediate_size)
        if model.shared_intermediate_size:
            cfg["shared_expert_intermediate_size"] = model.shared_intermediate_size
    return cfg


def why_not(backend: str, model: ModelSpec, gpu: GpuSpec, quant: str, engine: str = "") -> str:
    """'' when aiconfigurator models this candidate under its `backend` (vllm, sglang, trtllm: the
    backends row's `aiconfigurator`); else the reason, in a few words."""
    if not backend:
        return f"{engine or 'this engine'}: aiconfigurator has no tables for this engine"
    if not gpu.aiconfigurator_system:
        return f"{gpu.name}: aiconfigurator has no measured tables for this GPU"
    if quant not in GEMM_MODE:
        return f"{quant}: not a quantization aiconfigurator models under {backend}"
    if hf_config(model) is None:
        return f"{model.id} ({model.hf_architecture}): not an architecture aiconfigurator composes"
    if not available():
        return "the optional extra is not installed (pip install 'advisor[aiconfigurator]') or is switched off"
    return ""


@dataclass(frozen=True)
class AicCosts:
    """The StepCosts protocol (advisor/load/costs.py) over an aiconfigurator engine: the prefill of
    a prompt of n tokens, and a decode step of n sequences at the plan's mean context."""

    handle: Any  # aiconfigurator_core.AicEngine
    context: int  # mean context of a decoding sequence (prompt + half the output)
    system: str
    backend_version: str
    prefill_scale: float = 1.0  # a probe on this machine rescales, as it does the roofline
    decode_scale: float = 1.0
    # the tables' answers, each asked once (a call into the Rust engine costs tens of microseconds)
    _memo: dict = field(default_factory=dict, compare=False, repr=False)

    def _raw(self, kind: str, n: int) -> float:
        key = (kind, n)
        got = self._memo.get(key)
        if got is None:
            if kind == "prefill":
                got = _call(self.handle.predict_prefill_latency, 1, n, 0)
            else:  # a step of n sequences at this context (osl 2: the step right after the prompt's)
                got = _call(self.handle.predict_decode_latency, n, self.context, 2)
            self._memo[key] = got
        return got

    def prefill_ms(self, tokens: int) -> float:
        return self._raw("prefill", max(int(tokens), 1)) * self.prefill_scale

    def step_ms(self, n: int) -> float:
        return self._raw("decode", max(int(n), 1)) * self.decode_scale

    def scaled(self, prefill: float = 1.0, decode: float = 1.0) -> AicCosts:
        return replace(self, prefill_scale=self.prefill_scale * prefill, decode_scale=self.decode_scale * decode)


def _call(fn, *args) -> float:
    with _LOCK:  # the Rust engine is shared between the TUI's worker threads
        return float(fn(*args))


def step_costs(backend: str, model: ModelSpec, gpu: GpuSpec, quant: str, tp: int,
               avg_ctx: int) -> tuple[AicCosts, dict[str, str]] | None:
    """The candidate's step costs from aiconfigurator's tables for its `backend`, or None where it
    has none."""
    if why_not(backend, model, gpu, quant):
        return None
    handle, ver = _engine(backend, gpu.aiconfigurator_system, model, quant, max(int(tp), 1))
    if handle is None:
        return None
    costs = AicCosts(handle=handle, context=max(int(avg_ctx), 1), system=gpu.aiconfigurator_system,
                     backend_version=ver)
    where = (f"aiconfigurator-core {version()}: {backend} {ver} kernel tables measured on "
             f"{gpu.aiconfigurator_system} ({GEMM_MODE[quant]} GEMMs, bf16 KV cache, TP {max(int(tp), 1)})")
    return costs, {"prefill": f"{where}, prefill of the prompt",
                   "decode": f"{where}, decode step at {costs.context:,} tokens of context"}


def _engine(backend: str, system: str, model: ModelSpec, quant: str, tp: int):
    cfg = hf_config(model)
    if cfg is None:  # why_not() said so first; kept for the type checker
        return None, ""
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    key = (backend, system, digest, quant, tp)
    with _LOCK:
        if key in _ENGINES:
            return _ENGINES[key]
    got = _compile(backend, system, cfg, digest, quant, tp)
    with _LOCK:
        _ENGINES[key] = got
    return got


@functools.cache
def _latest(system: str, backend: str) -> str:
    """The engine version aiconfigurator's tables for this GPU describe (its own lookup reads
    every system's YAML, seconds: kept beside the compiled specs)."""
    path = os.path.join(os.path.dirname(_spec_cache(backend, system, "x", "fp16", 1)), f"{backend}-{system}.version")
    try:
        with open(path, encoding="utf-8") as f:
            got = f.read(64).strip()
        if got:
            return got
    except OSError:
        pass
    from aiconfigurator_core.sdk.perf_database import get_latest_database_version

    ver = get_latest_database_version(system, backend) or ""
    if ver:
        _write(path, ver)
    return ver


def _write(path: str, text: str) -> bool:
    """Written whole or not at all (a temporary file renamed over it); False where it could not be."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return True
    except OSError:  # a read-only cache costs seconds next time, nothing else
        return False


def _spec_cache(backend: str, system: str, digest: str, quant: str, tp: int) -> str:
    """Where a compiled engine spec is kept: building one loads the GPU's tables in Python (about a
    second); the compiled spec starts the Rust engine in a fraction of that."""
    return os.path.join(cache_root(), "aiconfigurator", version(), f"{backend}-{system}-{digest}-{GEMM_MODE[quant]}-tp{tp}.json")


def _from_cache(path: str):
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > 1_000_000:
            return None
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
        if entry.get("unsupported"):  # aiconfigurator could not build it last time either
            return None, ""
        from aiconfigurator_core import AicEngine

        engine = AicEngine.from_spec(base64.b64decode(entry["spec"]), None)
        engine.predict_prefill_latency(1, 128, 0)
        return engine, str(entry["backend_version"])
    except Exception:  # a damaged or stale entry: build it again
        return None


def _to_cache(path: str, spec: bytes | None, ver: str) -> None:
    entry = {"backend_version": ver, "spec": base64.b64encode(spec).decode()} if spec else {"unsupported": True}
    _write(path, json.dumps(entry))


def _compile(backend: str, system: str, cfg: dict, digest: str, quant: str, tp: int):
    """(engine, backend version) or (None, '') where aiconfigurator cannot build it."""
    logging.getLogger("aiconfigurator_core").setLevel(logging.ERROR)
    cache = _spec_cache(backend, system, digest, quant, tp)
    hit = _from_cache(cache)
    if hit is not None:
        return hit
    try:
        from aiconfigurator_core import AicEngine
        from aiconfigurator_core.sdk.engine import compile_engine
    except Exception:  # a broken install is the same as none: the roofline stays
        return None, ""
    folder = os.path.join(os.path.dirname(cache), "models", digest)  # the config.json it reads
    try:
        if not _write(os.path.join(folder, "config.json"), json.dumps(cfg)):
            return None, ""
        ver = _latest(system, backend)
        if not ver:
            _to_cache(cache, None, "")
            return None, ""
        spec = compile_engine(folder, system, backend, backend_version=ver, tp_size=tp,
                              gemm_quant_mode=GEMM_MODE[quant], kvcache_quant_mode="bfloat16",
                              fmha_quant_mode="bfloat16")
        engine = AicEngine.from_spec(spec, None)
        engine.predict_prefill_latency(1, 128, 0)  # fails here, not mid-plan, where a table is missing
        _to_cache(cache, bytes(spec), str(ver))
        return engine, str(ver)
    except Exception:  # unsupported shape or table: this candidate keeps the calibrated roofline
        _to_cache(cache, None, "")
        return None, ""
