"""The speed stage: a candidate's step costs, rescaled to this machine where a probe measured them.

The engine gives its step costs (NVIDIA's tables or the calibrated roofline, advisor/engines);
a probe of this very model feeds its measured TTFT and single-stream decode rate back in, and
the curves keep their shapes (batching, long prompts) scaled to the measurement. A measured
figure that beats the roofline is reported, never used.
"""

from __future__ import annotations

import math
from dataclasses import replace

from advisor import physics
from advisor.domain import GpuSpec, ModelSpec, ProbeResult
from advisor.engines import Engine, Speed
from advisor.knowledge import Knowledge


def speed(k: Knowledge, eng: Engine, model: ModelSpec, gpu: GpuSpec, quant: str, tp: int, prompt_tokens: int,
          mean_context: int, os_name: str, probe: ProbeResult | None) -> Speed:
    """The speed stage for one candidate."""
    s = eng.speed(model, gpu, quant, tp, prompt_tokens, mean_context, os_name)
    if probe is None:
        return s
    notes: list[str] = []
    replaced: list[tuple[str, float, float, str]] = []
    costs = s.costs
    if probe.ttft:
        got = _probe_ttft(probe, model, prompt_tokens)
        if got is not None:
            measured, how = got
            table = costs.prefill_ms(prompt_tokens)
            roof = physics.prefill_roofline_ms(model, gpu, quant, prompt_tokens)
            if measured >= roof:
                replaced.append(("TTFT (ms)", measured, table, f"{s.prefill_origin}: {s.prefill_source}"))
                costs = costs.scaled(prefill=measured / table)
                band, band_src, _ = eng.band("probe", "prefill", gpu, quant)
                s = replace(s, prefill_origin="probe", prefill_source=f"probe on {probe.gpu or 'this GPU'}: {how}",
                            prefill_band=band, prefill_band_source=band_src, prefill_assumed=False)
            else:
                notes.append(f"probe TTFT {measured:.1f} ms beats the {roof:.1f} ms roofline; not used")
    if probe.decode_tok_s:
        single = 1e3 / costs.step_ms(1)
        roof = physics.decode_roofline_tok_s(k, model, gpu, quant, mean_context) * max(tp, 1)
        if probe.decode_tok_s <= roof:
            replaced.append(("decode (tok/s, one stream)", probe.decode_tok_s, single,
                             f"{s.decode_origin}: {s.decode_source}"))
            # the measured single stream; batching keeps the model's shape
            costs = costs.scaled(decode=single / probe.decode_tok_s)
            band, band_src, _ = eng.band("probe", "decode", gpu, quant)
            s = replace(s, decode_origin="probe",
                        decode_source=f"probe: decode tok/s measured on {probe.gpu or 'this GPU'}",
                        decode_band=band, decode_band_source=band_src, decode_assumed=False)
        else:
            notes.append(f"probe decode {probe.decode_tok_s:.1f} tok/s beats the {roof:.1f} tok/s roofline; not used")
    return replace(s, costs=costs, replaced=tuple(replaced), notes=tuple(notes))


def _probe_ttft(probe: ProbeResult, model: ModelSpec, ctx: int) -> tuple[float, str] | None:
    """TTFT at ctx from the probe, and how it was got.

    The probe's fitted TTFT curve (launch floor, linear and attention terms from batched
    prefills) extrapolates within 5-9 % at 8x on an H100; scaling the nearest short prompt by
    FLOPs was off by up to +513 % because short prompts are launch-bound
    (bench/results/probe-gpu-h100.md). The FLOPs scaling stays as the fallback for results
    without a fit (older caches, servers).
    """
    if probe.ttft_fit is not None:
        ms = probe.ttft_fit.predict_ms(ctx)
        if ms > 0 and math.isfinite(ms):
            return ms, f"fitted TTFT curve (floor + linear + attention n^2) at {ctx:,} tokens"
    pts = [t for t in probe.ttft if t.ttft_ms > 0]
    if not pts:
        return None
    t = min(pts, key=lambda p: abs(math.log(p.context_tokens / ctx)))
    ms = t.ttft_ms * physics.prefill_flops(model, ctx) / physics.prefill_flops(model, t.context_tokens)
    return ms, f"median TTFT at {t.context_tokens:,} tokens, scaled by FLOPs to {ctx:,} tokens"
