"""Probe results feed the recommendation: a measurement beats a table row, a wild one is flagged."""

from __future__ import annotations

from advisor import physics
from advisor.answers import answers_from_dict
from advisor.domain import CurveFit, ProbeResult, TimingPoint, TtftFit
from advisor.recommend import recommend

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
        "ttft": [TimingPoint(context_tokens=512, ttft_ms=30.0, repetitions=3)], "ttft_fit": TtftFit(**fit)})
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
    # an older result kept the server's memory in `extra`: it still reads
    served = ProbeResult.model_validate({"backend": "openai", "model": "llama3.1-8b", "gpu": "NVIDIA H100 80GB HBM3",
                                         "extra": {"server_vram": {"mib": 72_000, "method": "pid listening on the port"}}})
    assert served.server_vram is not None and served.server_vram.mib == 72_000
    rec = recommend(a, probes=[served], knowledge=k).recommendation
    assert rec.predicted.vram_gb == round(72_000 / 1024, 2) != table.predicted.vram_gb
    assert rec.predicted.origins["vram_gb"].origin == "probe"
    assert "NVML memory of the server process" in rec.predicted.origins["vram_gb"].source
    # a transformers plan is not a server's: the figure does not transfer
    hf = recommend(answers_from_dict({**ask, "constraints": {"backend": "transformers"}}), probes=[served],
                   knowledge=k).recommendation
    assert hf.predicted.origins["vram_gb"].origin != "probe"


def _h100_transformers_serve_probe():
    """The advisor's OpenAI probe of a real transformers serve (qwen2.5-1.5b, H100, bench/results); that run
    predates the `server` field, which today's probe writes from the server's /v1/models (test_transformers_serve_runs)."""
    import json
    from pathlib import Path

    raw = json.loads((Path(__file__).resolve().parents[1] / "bench" / "results" /
                      "transformers-serve-probe-h100.json").read_text())["results"]["qwen2.5-1.5b"]
    p = ProbeResult.model_validate(raw)
    return p.model_copy(update={"server": "transformers-serve"})


def _h100_chat(backend: str) -> dict:
    return {"workload": "chat", "concurrency": 16, "context_tokens": 2000, "output_tokens": 128,
            "model": {"name": "qwen2.5-1.5b"}, "hardware": {"gpu": "H100 80GB"},
            "constraints": {"backend": backend, "quantization": "fp16"}}


def test_a_transformers_serve_probe_feeds_its_plan(k):
    probe = _h100_transformers_serve_probe()
    a = answers_from_dict(_h100_chat("transformers-serve"))
    rec = recommend(a, probes=[probe], knowledge=k).recommendation
    o = rec.predicted.origins
    assert o["ttft_ms"].origin == o["decode_tok_s_per_user"].origin == o["vram_gb"].origin == "probe"
    # the server process held 64,406 MiB (NVML): the plan's VRAM is what the server holds
    assert rec.predicted.vram_gb == round(probe.server_vram.mib / 1024, 2)
    single = recommend(answers_from_dict({**_h100_chat("transformers-serve"), "concurrency": 1}),
                       probes=[probe], knowledge=k).recommendation
    # one user decodes at the measured stream rate (less the share of the GPU its own prefills take)
    assert 0.9 * probe.decode_tok_s <= single.predicted.decode_tok_s_per_user <= probe.decode_tok_s
    # 16 users share each step: slower each, several times the total (the fitted batch curve, scaled to the probe)
    assert rec.predicted.decode_tok_s_per_user < single.predicted.decode_tok_s_per_user
    assert rec.predicted.total_tok_s > 4 * single.predicted.total_tok_s


def test_a_probe_of_one_server_does_not_describe_another(k):
    """The same model on vLLM: a transformers serve measurement says nothing of vLLM's kernels."""
    probe = _h100_transformers_serve_probe()
    a = answers_from_dict(_h100_chat("vllm"))
    rec = recommend(a, probes=[probe], knowledge=k).recommendation
    assert rec.backend == "vllm"
    # nothing measured on this machine: the roofline, or NVIDIA's vLLM tables where the extra has them
    assert "probe" not in {o.origin for o in rec.predicted.origins.values()}
    assert rec == recommend(a, knowledge=k).recommendation
