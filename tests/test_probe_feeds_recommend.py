"""Probe results feed the recommendation: a measurement beats a table row, a wild one is flagged."""

from __future__ import annotations

from advisor import physics
from advisor.answers import answers_from_dict
from advisor.domain import CurveFit, ProbeResult, TimingPoint
from advisor.engine import recommend

ANSWERS = {"workload": "summarization", "context_tokens": 4096, "output_tokens": 128, "model": {"name": "qwen2.5-1.5b"},
           "hardware": {"gpu": "RTX 4090"}, "constraints": {"backend": "transformers", "quantization": "fp16"}}


def _probe(k, ttft_ms: float, decode: float, base_mb: float | None = None) -> ProbeResult:
    m = k.model("qwen2.5-1.5b")
    base = base_mb if base_mb is not None else physics.weights_gb(k, m, "fp16") * 1024
    return ProbeResult(backend="transformers", model="qwen2.5-1.5b", gpu="NVIDIA GeForce RTX 4090", attention="sdpa",
                       dtype="float16", base_vram_mb=base,
                       fit=CurveFit(kind="linear", base_mb=base, linear_mb_per_token=0.16),
                       ttft=[TimingPoint(context_tokens=4096, ttft_ms=ttft_ms, repetitions=3)], decode_tok_s=decode)


def test_measured_figures_replace_the_roofline_estimates(k):
    a = answers_from_dict(ANSWERS)
    table = recommend(a, knowledge=k).recommendation
    roof = physics.prefill_roofline_ms(k.model("qwen2.5-1.5b"), k.gpu("RTX 4090"), "fp16", 4096)
    probe = _probe(k, ttft_ms=table.predicted.ttft_ms * 1.1, decode=table.predicted.decode_tok_s_per_user * 0.9)
    rec = recommend(a, probes=[probe], knowledge=k).recommendation
    assert rec.predicted.origins["ttft_ms"].origin == "probe"
    assert rec.predicted.ttft_ms == round(probe.ttft[0].ttft_ms, 1) and probe.ttft[0].ttft_ms > roof
    assert rec.predicted.origins["decode_tok_s_per_user"].origin == "probe"
    assert rec.predicted.origins["vram_gb"].origin == "probe"


def test_a_measurement_far_from_the_table_is_a_warning_naming_both(k):
    a = answers_from_dict(ANSWERS)
    table = recommend(a, knowledge=k).recommendation
    probe = _probe(k, ttft_ms=table.predicted.ttft_ms * 2.0, decode=table.predicted.decode_tok_s_per_user)
    rec = recommend(a, probes=[probe], knowledge=k)
    hits = [w for w in rec.warnings if "TTFT" in w and "more than 25% off" in w]
    assert hits and "probe" in hits[0] and "roofline" in hits[0]


def test_a_probe_faster_than_physics_is_not_used(k):
    a = answers_from_dict(ANSWERS)
    roof = physics.prefill_roofline_ms(k.model("qwen2.5-1.5b"), k.gpu("RTX 4090"), "fp16", 4096)
    rec = recommend(a, probes=[_probe(k, ttft_ms=roof / 3, decode=10.0)], knowledge=k)
    assert rec.recommendation.predicted.origins["ttft_ms"].origin == "roofline"
    assert any("beats the" in w and "not used" in w for w in rec.warnings)


def test_a_probe_of_another_model_changes_nothing(k):
    a = answers_from_dict(ANSWERS)
    other = _probe(k, ttft_ms=1.0, decode=1.0).model_copy(update={"model": "llama3.2-1b"})
    assert recommend(a, probes=[other], knowledge=k).recommendation == recommend(a, knowledge=k).recommendation
