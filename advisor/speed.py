"""Each engine's step costs on this GPU: a prefill curve and a decode step per batch size.

prefill(n) = floor + max(FLOPs(n) / (peak of the math the engine runs x efficiency), weights read once)
decode step(N) = max(weights read / (bandwidth x efficiency), layers x per-layer launch cost)
                 + N x (one sequence's KV read / (bandwidth x efficiency) + per-sequence cost)

Every coefficient is a calibration row (knowledge/calibration.toml) named
`<engine>.<coefficient>`, with its source; a coefficient an engine has no row for is left
out (0), and the figure's band says how far the rows were checked: a measured fit carries
its residuals (`band.<engine>.prefill|decode`), an assumed one the wide default band.
The step costs feed advisor/load.py, whose scheduler model turns them into TTFT and
latency under the load the user described.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from advisor import physics
from advisor.backends import Backend
from advisor.domain import GpuSpec, ModelSpec
from advisor.load import EngineCosts, amdahl_step


@dataclass(frozen=True)
class StepCosts:
    """One candidate's costs; times in ms."""

    floor_ms: float  # per prompt: launches and scheduling before the first matmul
    ms_per_flop: float  # 1 / (peak x efficiency), per TP group
    model: ModelSpec
    decode_fixed_ms: float  # one step's weight read (or launch floor), whatever the batch
    decode_per_seq_ms: float  # what each sequence in the batch adds to a step
    batching: str  # continuous | slots | sequential
    amdahl_s: float = 0.0  # slots engines: Amdahl serial fraction (TR129)
    prefill_scale: float = 1.0  # compiled prefill: 1 - speedup (TR126)
    ubatch_ms_per_layer: float = 0.0  # a fixed cost per layer per micro-batch of the prompt (llama.cpp)
    ubatch_tokens: int = 512
    attn_ms_per_flop: float = 0.0  # attention's own rate where measured (0: the matmuls' rate)
    # measured step multipliers of the weights part at batch N (llama-batched-bench), sorted by N
    batch_multiplier: tuple[tuple[int, float], ...] = ()
    # reading every weight once: a short prompt's matmuls are bound by it, not by the FLOPs
    prefill_read_ms: float = 0.0

    def scaled(self, prefill: float = 1.0, decode: float = 1.0) -> "StepCosts":
        """The same curve shapes scaled to a measurement (a probe on this machine)."""
        return replace(self, prefill_scale=self.prefill_scale * prefill, decode_fixed_ms=self.decode_fixed_ms * decode,
                       decode_per_seq_ms=self.decode_per_seq_ms * decode)

    def prefill_ms(self, tokens: int) -> float:
        n = max(int(tokens), 1)
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
        import math

        for (n0, m0), (n1, m1) in zip(((1, 1.0),) + pts, pts):
            if n <= n1:
                f = (math.log(n) - math.log(n0)) / (math.log(n1) - math.log(n0)) if n1 > n0 else 1.0
                return m0 + f * (m1 - m0)
        return pts[-1][1] * n / pts[-1][0] if n > pts[-1][0] else pts[-1][1]

    def step_ms(self, n: int) -> float:
        """One decode step with n sequences in the batch: memory-bound (weights once, each
        sequence's KV) until the batch's matmuls take longer than the reads (compute-bound)."""
        if self.batching == "slots":
            fixed, per = amdahl_step(self.decode_fixed_ms + self.decode_per_seq_ms, self.amdahl_s)
            return fixed + per * n
        if self.batching == "sequential":
            return self.decode_fixed_ms + self.decode_per_seq_ms
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

    def engine(self, max_seqs: int) -> EngineCosts:
        """The scheduler model's view: how many sequences it runs at once, and what a step costs."""
        seqs = 1 if self.batching == "sequential" else max(int(max_seqs), 1)
        if self.batching == "slots":
            decode = amdahl_step(self.decode_fixed_ms + self.decode_per_seq_ms, self.amdahl_s)
        elif self.batching == "sequential":
            decode = (self.decode_fixed_ms + self.decode_per_seq_ms, 0.0)
        else:
            decode = self.step_ms
        return EngineCosts(batching=self.batching, max_seqs=seqs, prefill_ms=self.prefill_ms,
                           decode_step_ms=decode, chunked_prefill=self.batching == "continuous")


def arch_token(gpu: GpuSpec) -> str:
    """The GPU's architecture as calibration keys name it (sm90 Hopper, sm89 Ada, sm80 A100):
    kernels and their efficiencies are a property of the architecture, fitted on one part of it."""
    cc = gpu.compute_capability
    return f"sm{int(round(cc * 10))}" if cc else ""


def coefficient(k, b: Backend, name: str, os_name: str = "", quant: str = "", arch: str = "") -> tuple[float, str] | None:
    """<engine>.<name>[.<quant>.<arch>|.<arch>|.<quant>|.<os>] from calibration, the most specific
    row first, with its source; None where the engine has none."""
    base = b.calibration_key()
    keys = ((f"{base}.{name}.{quant}.{arch}",) if quant and arch else ()) + ((f"{base}.{name}.{arch}",) if arch else ())
    # an engine no one measured, running the same class of kernels as one that was (TGI ~ vLLM):
    # the measured engine's rows for this architecture before this engine's own assumed ones
    like = b.row.calibration_like
    if like and arch:
        keys += ((f"{like}.{name}.{quant}.{arch}",) if quant else ()) + (f"{like}.{name}.{arch}",)
    keys += ((f"{base}.{name}.{quant}",) if quant else ()) + ((f"{base}.{name}.{os_name}",) if os_name else ())
    for key in keys + (f"{base}.{name}",):
        if k.has(key):
            borrowed = "" if key.startswith(base + ".") else f"as {like}'s, assumed for {b.name}: "
            return k.value(key), f"{borrowed}{key} = {k.value(key):g} ({k.source(key)})"
    return None


def _band_key(k, b: Backend, figure: str, arch: str, quant: str) -> str:
    names = [f"band.{base}.{figure}.{quant}.{arch}" for base in (b.name, b.calibration_key()) if arch and quant]
    names += [f"band.{base}.{figure}" for base in (b.name, b.calibration_key())]
    return next((n for n in names if k.has(n)), "band.assumed")


def band(k, b: Backend, figure: str, arch: str = "", quant: str = "") -> tuple[float, str]:
    """The relative uncertainty of this engine's figure: its fit's residuals (for this
    quantization on this GPU architecture where the fit was that specific), else the assumed band."""
    key = _band_key(k, b, figure, arch, quant)
    return k.value(key), f"±{k.value(key):.0%} ({k.source(key)})"


def assumed(k, b: Backend, figure: str, arch: str = "", quant: str = "") -> bool:
    """True where no fit covers this engine's figure here: its band is the assumed one."""
    return _band_key(k, b, figure, arch, quant) == "band.assumed"


def step_costs(k, b: Backend, model: ModelSpec, gpu: GpuSpec, quant: str, tp: int, avg_ctx: int,
               os_name: str) -> tuple[StepCosts, dict[str, str]]:
    """The candidate's step costs, and the source of each part (for the plan's origins)."""
    tp = max(tp, 1)
    arch = arch_token(gpu)
    eff, eff_src = coefficient(k, b, "prefill_flops_efficiency", os_name, quant, arch) or (None, "")
    if eff is None:
        raise KeyError(f"calibration row {b.calibration_key()}.prefill_flops_efficiency missing")
    peak = physics.math_peak(gpu, quant) * tp
    floor = coefficient(k, b, "prefill_floor_ms", os_name, arch=arch)
    scale = 1.0
    prefill_src = f"FLOPs / ({peak / 1e12:g} TFLOP/s x {eff_src})"
    if floor:
        prefill_src = f"{floor[1]} + " + prefill_src
    floor_ms = floor[0] if floor else 0.0
    per_layer_once = coefficient(k, b, "prefill_ms_per_layer", os_name, arch=arch)
    if per_layer_once:  # launches and scheduling once per prompt, per layer (vLLM: one chunk)
        floor_ms += model.layers * per_layer_once[0]
        prefill_src = f"{model.layers} layers x {per_layer_once[1]} + " + prefill_src
    if b.compiled_prefill:
        sp = k.value("transformers-compiled.prefill_speedup")
        scale = 1 - sp
        prefill_src += f" x (1 - {sp:g}, {k.source('transformers-compiled.prefill_speedup')})"

    bw_eff, bw_src = coefficient(k, b, "decode_bw_efficiency", os_name, quant, arch) or (None, "")
    if bw_eff is None:
        raise KeyError(f"calibration row {b.calibration_key()}.decode_bw_efficiency missing")
    bw = gpu.bandwidth_gb_s * 1e9 * bw_eff
    kv_seq = model.kv_bytes_for(avg_ctx) / model.kv_split(tp)
    weights_read = physics.decode_bytes_per_token(k, model, quant, avg_ctx) / tp - kv_seq
    fixed = read_ms = weights_read / bw * 1e3
    decode_src = f"{weights_read / 1e9:.2f} GB of weights per step / ({gpu.bandwidth_gb_s:g} GB/s x {bw_src})"
    launch = coefficient(k, b, "decode_overhead_ms_per_layer", os_name, arch=arch)
    if launch and model.layers * launch[0] > fixed:  # small models are launch-bound
        fixed = model.layers * launch[0]
        decode_src = f"kernel-launch floor: {model.layers} layers x {launch[1]}"
    per_layer = coefficient(k, b, "decode_ms_per_layer", os_name, arch=arch)
    if per_layer:  # measured: a fixed cost per layer per step on top of the reads (llama.cpp)
        fixed += model.layers * per_layer[0]
        decode_src += f" + {model.layers} layers x {per_layer[1]}"
    kv_eff = coefficient(k, b, "decode_kv_bw_efficiency", os_name, arch=arch)
    per_seq = kv_seq / (gpu.bandwidth_gb_s * 1e9 * (kv_eff[0] if kv_eff else bw_eff)) * 1e3
    extra = coefficient(k, b, "decode_ms_per_seq", os_name, arch=arch)
    if extra:
        per_seq += extra[0]
        decode_src += f"; + {extra[1]} per sequence in the batch"
    amdahl = 0.0
    if b.batching == "slots":
        s_key = f"amdahl_s.{model.id}" if k.has(f"amdahl_s.{model.id}") else "amdahl_s.default"
        amdahl = k.value(s_key)
        decode_src += f"; Amdahl s = {amdahl:g} across slots ({k.source(s_key)})"
    attn_eff = coefficient(k, b, "prefill_attention_efficiency", os_name, arch=arch)
    if attn_eff:  # flash attention runs in 16 bits whatever the weights' quantization
        prefill_src += f"; attention at {attn_eff[1]} of the FP16 peak"
    ubatch = coefficient(k, b, "prefill_ms_per_layer_per_ubatch", os_name, arch=arch)
    if ubatch:
        prefill_src += f" + {model.layers} layers x {ubatch[1]} per 512-token micro-batch"
    # measured step growth with the batch: per quantization where the kernels differ by it (llama.cpp),
    # else one curve for the engine (transformers serve: a step's time is its Python, not its weights)
    mult = tuple((n_, k.value(key)) for n_ in (2, 4, 8, 16, 32, 64)
                 if k.has(key := f"{b.calibration_key()}.batch_step_multiplier.{quant}.n{n_}"))
    mult_key = f"{b.calibration_key()}.batch_step_multiplier.{quant}.*"
    if not mult:
        mult = tuple((n_, k.value(key)) for n_ in (2, 4, 8, 16, 32, 64)
                     if k.has(key := f"{b.calibration_key()}.batch_step_multiplier.n{n_}"))
        mult_key = f"{b.calibration_key()}.batch_step_multiplier.*"
    if mult:
        decode_src += f"; batch growth of the weight part measured ({mult_key})"
    costs = StepCosts(floor_ms=floor_ms, ms_per_flop=1e3 / (peak * eff), model=model,
                      decode_fixed_ms=fixed, decode_per_seq_ms=per_seq, batching=b.batching,
                      amdahl_s=amdahl, prefill_scale=scale, ubatch_ms_per_layer=ubatch[0] if ubatch else 0.0,
                      batch_multiplier=mult, prefill_read_ms=read_ms,
                      attn_ms_per_flop=1e3 / (gpu.acc32_flops * tp * attn_eff[0]) if attn_eff else 0.0)
    return costs, {"prefill": prefill_src, "decode": decode_src}
