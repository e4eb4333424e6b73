"""An engine's step costs from the roofline of the math it runs, times calibrated coefficients.

prefill(n) = floor + max(FLOPs(n) / (peak of the math the engine runs x efficiency), weights read once)
decode step(N) = max(weights read / (bandwidth x efficiency), layers x per-layer launch cost)
                 + N x (one sequence's KV read / (bandwidth x efficiency) + per-sequence cost)

Every coefficient is a calibration row (knowledge/calibration.toml) named
`<engine>.<coefficient>`, with its source; a coefficient an engine has no row for is left
out (0), and the figure's band says how far the rows were checked: a measured fit carries
its residuals (`band.<engine>.prefill|decode`), an assumed one the wide default band.
The step costs (the StepCosts protocol, advisor/load/costs.py) feed the engine's scheduler
(advisor/load/schedulers.py), which turns them into TTFT and latency under the load described.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

from advisor import physics
from advisor.domain import GpuSpec, ModelSpec
from advisor.knowledge import Knowledge


@dataclass(frozen=True)
class RooflineCosts:
    """One candidate's costs from the calibrated roofline; times in ms (the StepCosts protocol)."""

    floor_ms: float  # per prompt: launches and scheduling before the first matmul
    ms_per_flop: float  # 1 / (peak x efficiency), per TP group
    model: ModelSpec
    decode_fixed_ms: float  # one step's weight read (or launch floor), whatever the batch
    decode_per_seq_ms: float  # what each sequence in the batch adds to a step
    prefill_scale: float = 1.0  # compiled prefill: 1 - speedup (TR126)
    ubatch_ms_per_layer: float = 0.0  # a fixed cost per layer per micro-batch of the prompt (llama.cpp)
    ubatch_tokens: int = 512
    attn_ms_per_flop: float = 0.0  # attention's own rate where measured (0: the matmuls' rate)
    # measured step multipliers of the weights part at batch N (llama-batched-bench), sorted by N
    batch_multiplier: tuple[tuple[int, float], ...] = ()
    # reading every weight once: a short prompt's matmuls are bound by it, not by the FLOPs
    prefill_read_ms: float = 0.0
    # each prompt length and batch size worked out once (the load model asks for the same ones often)
    _memo: dict = field(default_factory=dict, compare=False, repr=False)

    def scaled(self, prefill: float = 1.0, decode: float = 1.0) -> RooflineCosts:
        """The same curve shapes scaled to a measurement (a probe on this machine)."""
        return replace(self, prefill_scale=self.prefill_scale * prefill, decode_fixed_ms=self.decode_fixed_ms * decode,
                       decode_per_seq_ms=self.decode_per_seq_ms * decode, _memo={})

    def prefill_ms(self, tokens: int) -> float:
        n = max(int(tokens), 1)
        got = self._memo.get(("p", n))
        if got is None:
            got = self._memo[("p", n)] = self._prefill_ms(n)
        return got

    def _prefill_ms(self, n: int) -> float:
        launch = self.ubatch_ms_per_layer * self.model.layers * -(-n // self.ubatch_tokens)
        flops = physics.prefill_flops(self.model, n)
        if self.attn_ms_per_flop:
            attn = self.model.attention_flops(n)
            work = (flops - attn) * self.ms_per_flop + attn * self.attn_ms_per_flop
        else:
            work = flops * self.ms_per_flop
        return (self.floor_ms + launch + max(work, self.prefill_read_ms)) * self.prefill_scale

    def multiplier(self, n: int) -> float:
        """The measured growth of a step's weight part with the batch, interpolated in log N."""
        pts = self.batch_multiplier
        if not pts or n <= 1:
            return 1.0
        for (n0, m0), (n1, m1) in zip(((1, 1.0),) + pts, pts, strict=False):  # consecutive points
            if n <= n1:
                f = (math.log(n) - math.log(n0)) / (math.log(n1) - math.log(n0)) if n1 > n0 else 1.0
                return m0 + f * (m1 - m0)
        return pts[-1][1] * n / pts[-1][0] if n > pts[-1][0] else pts[-1][1]

    def step_ms(self, n: int) -> float:
        """One decode step with n sequences in the batch: memory-bound (weights once, each
        sequence's KV) until the batch's matmuls take longer than the reads (compute-bound)."""
        got = self._memo.get(n)
        if got is None:
            got = self._memo[n] = self._step_ms(n)
        return got

    def _step_ms(self, n: int) -> float:
        weights = self.decode_fixed_ms * (self.multiplier(n) if self.batch_multiplier else self.experts_read(n))
        return max(weights + self.decode_per_seq_ms * n, self.compute_ms_per_token * n)

    def experts_read(self, n: int) -> float:
        """A mixture of experts reads more experts as the batch's tokens route apart (1 for dense)."""
        if not self.model.experts:
            return 1.0
        return self.model.decode_step_read_params(max(n, 1)) / self.model.decode_step_read_params(1)

    @functools.cached_property
    def compute_ms_per_token(self) -> float:
        """One decoded token's matmuls at the prefill efficiency: 2 x params FLOPs (+ the LM head)."""
        return physics.prefill_flops(self.model, 1) * self.ms_per_flop


def arch_token(gpu: GpuSpec) -> str:
    """The GPU's architecture as calibration keys name it (sm90 Hopper, sm89 Ada, sm80 A100):
    kernels and their efficiencies are a property of the architecture, fitted on one part of it."""
    cc = gpu.compute_capability
    return f"sm{int(round(cc * 10))}" if cc else ""


@dataclass(frozen=True)
class Calibration:
    """Where an engine's coefficients and bands live in knowledge/calibration.toml: rows named
    `<prefix>.<coefficient>`, an engine no one measured borrowing a measured one's (`like`)."""

    k: Knowledge
    prefix: str  # the backends row's `calibration` (default: its name)
    name: str  # the backends row's name (its bands may be its own)
    like: str = ""  # the backends row's `calibration_like`

    def coefficient(self, name: str, os_name: str = "", quant: str = "", arch: str = "") -> tuple[float, str] | None:
        """<prefix>.<name>[.<quant>.<arch>|.<arch>|.<quant>|.<os>], the most specific row first, with
        its source; None where the engine has none."""
        return _coefficient(self.k, self.prefix, self.like, self.name, name, os_name, quant, arch)

    def _band_key(self, figure: str, arch: str, quant: str) -> str:
        return _band_key(self.k, self.name, self.prefix, figure, arch, quant)

    def band(self, figure: str, arch: str = "", quant: str = "") -> tuple[float, str]:
        """The relative uncertainty of this engine's figure: its fit's residuals (for this
        quantization on this GPU architecture where the fit was that specific), else the assumed band."""
        key = self._band_key(figure, arch, quant)
        return self.k.value(key), f"±{self.k.value(key):.0%} ({self.k.source(key)})"

    def assumed(self, figure: str, arch: str = "", quant: str = "") -> bool:
        """True where no fit covers this engine's figure here: its band is the assumed one."""
        return self._band_key(figure, arch, quant) == "band.assumed"


@functools.lru_cache(maxsize=4096)
def _band_key(k: Knowledge, name: str, prefix: str, figure: str, arch: str, quant: str) -> str:
    names = [f"band.{base}.{figure}.{quant}.{arch}" for base in (name, prefix) if arch and quant]
    names += [f"band.{base}.{figure}" for base in (name, prefix)]
    return next((n for n in names if k.has(n)), "band.assumed")


@functools.lru_cache(maxsize=4096)
def _coefficient(k: Knowledge, base: str, like: str, engine: str, name: str, os_name: str, quant: str,
                 arch: str) -> tuple[float, str] | None:
    keys = ((f"{base}.{name}.{quant}.{arch}",) if quant and arch else ()) + ((f"{base}.{name}.{arch}",) if arch else ())
    # an engine no one measured, running the same class of kernels as one that was (TGI ~ vLLM):
    # the measured engine's rows for this architecture before this engine's own assumed ones
    if like and arch:
        keys += ((f"{like}.{name}.{quant}.{arch}",) if quant else ()) + (f"{like}.{name}.{arch}",)
    keys += ((f"{base}.{name}.{quant}",) if quant else ()) + ((f"{base}.{name}.{os_name}",) if os_name else ())
    for key in keys + (f"{base}.{name}",):
        if k.has(key):
            borrowed = "" if key.startswith(base + ".") else f"as {like}'s, assumed for {engine}: "
            return k.value(key), f"{borrowed}{key} = {k.value(key):g} ({k.source(key)})"
    return None


@functools.lru_cache(maxsize=1024)
def _batch_multiplier(k: Knowledge, prefix: str, quant: str) -> tuple[tuple[tuple[int, float], ...], str]:
    """The measured step multipliers of the weights part at batch N (llama-batched-bench), and their key."""
    for middle in (f".{quant}", ""):
        mult = tuple((n, k.value(key)) for n in (2, 4, 8, 16, 32, 64)
                     if k.has(key := f"{prefix}.batch_step_multiplier{middle}.n{n}"))
        if mult:
            return mult, f"{prefix}.batch_step_multiplier{middle}.*"
    return (), ""


def roofline_costs(cal: Calibration, model: ModelSpec, gpu: GpuSpec, quant: str, tp: int, avg_ctx: int,
                   os_name: str, compiled_prefill: bool = False) -> tuple[RooflineCosts, dict[str, str]]:
    """The candidate's step costs, and the source of each part (for the plan's origins)."""
    k = cal.k
    tp = max(tp, 1)
    arch = arch_token(gpu)

    eff, eff_src = cal.coefficient("prefill_flops_efficiency", os_name, quant, arch) or (None, "")
    if eff is None:
        raise KeyError(f"calibration row {cal.prefix}.prefill_flops_efficiency missing")
    peak = physics.math_peak(gpu, quant) * tp
    floor = cal.coefficient("prefill_floor_ms", os_name, arch=arch)
    scale = 1.0
    prefill_src = f"FLOPs / ({peak / 1e12:g} TFLOP/s x {eff_src})"
    if floor:
        prefill_src = f"{floor[1]} + " + prefill_src
    floor_ms = floor[0] if floor else 0.0
    per_layer_once = cal.coefficient("prefill_ms_per_layer", os_name, arch=arch)
    if per_layer_once:  # launches and scheduling once per prompt, per layer (vLLM: one chunk)
        floor_ms += model.layers * per_layer_once[0]
        prefill_src = f"{model.layers} layers x {per_layer_once[1]} + " + prefill_src
    if compiled_prefill:
        sp = k.value("transformers-compiled.prefill_speedup")
        scale = 1 - sp
        prefill_src += f" x (1 - {sp:g}, {k.source('transformers-compiled.prefill_speedup')})"

    bw_eff, bw_src = cal.coefficient("decode_bw_efficiency", os_name, quant, arch) or (None, "")
    if bw_eff is None:
        raise KeyError(f"calibration row {cal.prefix}.decode_bw_efficiency missing")
    bw = gpu.bandwidth_gb_s * 1e9 * bw_eff
    kv_seq = model.kv_bytes_for(avg_ctx) / model.kv_split(tp)
    weights_read = physics.decode_bytes_per_token(k, model, quant, avg_ctx) / tp - kv_seq
    fixed = read_ms = weights_read / bw * 1e3
    decode_src = f"{weights_read / 1e9:.2f} GB of weights per step / ({gpu.bandwidth_gb_s:g} GB/s x {bw_src})"
    launch = cal.coefficient("decode_overhead_ms_per_layer", os_name, arch=arch)
    if launch and model.layers * launch[0] > fixed:  # small models are launch-bound
        fixed = model.layers * launch[0]
        decode_src = f"kernel-launch floor: {model.layers} layers x {launch[1]}"
    per_layer = cal.coefficient("decode_ms_per_layer", os_name, arch=arch)
    if per_layer:  # measured: a fixed cost per layer per step on top of the reads (llama.cpp)
        fixed += model.layers * per_layer[0]
        decode_src += f" + {model.layers} layers x {per_layer[1]}"
    kv_eff = cal.coefficient("decode_kv_bw_efficiency", os_name, arch=arch)
    per_seq = kv_seq / (gpu.bandwidth_gb_s * 1e9 * (kv_eff[0] if kv_eff else bw_eff)) * 1e3
    extra = cal.coefficient("decode_ms_per_seq", os_name, arch=arch)
    if extra:
        per_seq += extra[0]
        decode_src += f"; + {extra[1]} per sequence in the batch"
    attn_eff = cal.coefficient("prefill_attention_efficiency", os_name, arch=arch)
    if attn_eff:  # flash attention runs in 16 bits whatever the weights' quantization
        prefill_src += f"; attention at {attn_eff[1]} of the FP16 peak"
    ubatch = cal.coefficient("prefill_ms_per_layer_per_ubatch", os_name, arch=arch)
    if ubatch:
        prefill_src += f" + {model.layers} layers x {ubatch[1]} per 512-token micro-batch"
    # measured step growth with the batch: per quantization where the kernels differ by it (llama.cpp),
    # else one curve for the engine (transformers serve: a step's time is its Python, not its weights)
    mult, mult_key = _batch_multiplier(k, cal.prefix, quant)
    if mult:
        decode_src += f"; batch growth of the weight part measured ({mult_key})"
    costs = RooflineCosts(floor_ms=floor_ms, ms_per_flop=1e3 / (peak * eff), model=model,
                      decode_fixed_ms=fixed, decode_per_seq_ms=per_seq, prefill_scale=scale,
                      ubatch_ms_per_layer=ubatch[0] if ubatch else 0.0,
                      batch_multiplier=mult, prefill_read_ms=read_ms,
                      attn_ms_per_flop=1e3 / (gpu.acc32_flops * tp * attn_eff[0]) if attn_eff else 0.0)
    return costs, {"prefill": prefill_src, "decode": decode_src}
