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


def test_ttft_comes_from_the_probes_fitted_curve_not_a_flops_scaled_short_prompt(k):
    """Short prompts are launch-bound: a 512-token median scaled by FLOPs to 16K overstates
    TTFT many times over. With a fitted curve the plan's TTFT is the curve's value at the
    user's context."""
    a = answers_from_dict({**ANSWERS, "context_tokens": 16384})
    fit = {"form": "max", "c_ms": 30.0, "a_ms_per_token": 0.02, "b_ms_per_token2": 1e-7}
    probe = _probe(k, ttft_ms=30.0, decode=30.0).model_copy(update={
        "ttft": [TimingPoint(context_tokens=512, ttft_ms=30.0, repetitions=3)], "extra": {"ttft_fit": fit}})
    rec = recommend(a, probes=[probe], knowledge=k).recommendation
    expected = max(30.0, 0.02 * 16384 + 1e-7 * 16384 ** 2)  # 354.5 ms for one prompt
    assert expected > physics.prefill_roofline_ms(k.model("qwen2.5-1.5b"), k.gpu("RTX 4090"), "fp16", 16384)
    assert rec.predicted.origins["ttft_ms"].origin == "probe"
    assert "fitted TTFT curve" in rec.predicted.origins["ttft_ms"].source
    # N=1: the mean TTFT of N simultaneous prompts is the single prompt's
    assert abs(rec.predicted.ttft_ms - expected) < 0.1
    scaled = physics.prefill_flops(k.model("qwen2.5-1.5b"), 16384) / physics.prefill_flops(k.model("qwen2.5-1.5b"), 512) * 30
    assert scaled > 2 * expected  # what the old FLOPs scaling would have said


def test_an_sdpa_probe_is_preferred_to_an_eager_one_for_the_sdpa_plan(k):
    a = answers_from_dict(ANSWERS)
    sdpa = _probe(k, ttft_ms=400.0, decode=30.0)
    eager = sdpa.model_copy(update={
        "attention": "eager", "ttft": [TimingPoint(context_tokens=4096, ttft_ms=900.0, repetitions=3)],
        "fit": CurveFit(kind="quadratic", base_mb=sdpa.fit.base_mb, linear_mb_per_token=0.16,
                        quadratic_mb_per_token2=1e-4)})
    for order in ([eager, sdpa], [sdpa, eager]):
        rec = recommend(a, probes=order, knowledge=k).recommendation
        assert rec.settings["attn_implementation"].value == "sdpa"
        assert rec.predicted.ttft_ms == 400.0
        assert "sdpa" in rec.predicted.origins["vram_gb"].source


def test_a_running_servers_own_gpu_memory_is_the_plans_vram(k):
    # advisor probe --backend openai against a server on this machine reads the memory its
    # process holds (NVML): vLLM claims most of the GPU at start, whatever the KV needs.
    ask = {**ANSWERS, "model": {"name": "llama3.1-8b"}, "hardware": {"gpu": "H100 80GB"},
           "constraints": {"backend": "vllm", "quantization": "fp16"}}
    a = answers_from_dict(ask)
    table = recommend(a, knowledge=k).recommendation
    served = ProbeResult(backend="openai", model="llama3.1-8b", gpu="NVIDIA H100 80GB HBM3",
                         extra={"server_vram": {"mib": 72_000, "method": "pid listening on the port"}})
    rec = recommend(a, probes=[served], knowledge=k).recommendation
    assert rec.predicted.vram_gb == round(72_000 / 1024, 2) != table.predicted.vram_gb
    assert rec.predicted.origins["vram_gb"].origin == "probe"
    assert "NVML memory of the server process" in rec.predicted.origins["vram_gb"].source
    # a transformers plan is not a server's: the figure does not transfer
    hf = recommend(answers_from_dict({**ask, "constraints": {"backend": "transformers"}}), probes=[served],
                   knowledge=k).recommendation
    assert hf.predicted.origins["vram_gb"].origin != "probe"
