"""One test per rule, at and around its threshold. Thresholds come from the knowledge tables,
so these tests read them there too: a rule that ignored its knowledge row would fail here."""

from __future__ import annotations

import pytest


def test_the_base_candidate_passes_every_gate(fired):
    assert not {r for r in fired() if r.split(".")[0] in ("slo", "context", "quality")} - {"quality.pass"}


# ---------------------------------------------------------------- quantization
def test_q2k_is_rejected_for_every_tier(fired):
    for risk in ("low", "moderate", "high"):
        assert "quantization.never-q2k" in fired(quant="q2_k", risk=risk)
    assert "quantization.never-q2k" not in fired(quant="q3_k_s")


def test_risk_tier_gate_follows_p1(fired):
    # P.1's rows are facts the gate joins on: q4_k_m is allowed for moderate and low risk, not high
    assert "quantization.risk-tier" in fired(quant="q4_k_m", risk="high")
    assert "quantization.risk-tier" not in fired(quant="q4_k_m", risk="moderate")
    assert "quantization.risk-tier" not in fired(quant="q8_0", risk="high")
    assert "quantization.risk-tier" in fired(quant="fp8", risk="high")


def test_p3_model_failures_gate_and_q3_only_where_validated(fired):
    # P.3's verdicts are facts the gates join on: llama3.2-1b fails at q3_k_s; phi-2 passes there;
    # a model P.3 never tested gets no q3_k_s
    assert "quantization.model-compat" in fired(model="llama3.2-1b", quant="q3_k_s")
    assert "quantization.model-compat" not in fired(model="llama3.2-1b", quant="q4_k_m")
    assert "quantization.q3-unvalidated" not in fired(model="phi-2", quant="q3_k_s")
    assert "quantization.q3-unvalidated" in fired(model="qwen2.5-72b", quant="q3_k_s")
    assert "quantization.p3-validated" in fired("plan", model="llama3.2-1b", quant="q4_k_m")
    assert "quantization.p3-validated" not in fired("plan", model="qwen2.5-72b", quant="q4_k_m")


def test_high_risk_uses_fp16_when_it_fits_with_margin_else_q8(fired, k):
    frac = k.value("fp16_fit_fraction")
    fits = dict(fp16_gb=10.0, usable_all_gb=10.0 / frac * 1.01)
    too_big = dict(fp16_gb=10.0, usable_all_gb=10.0 / frac * 0.99)
    assert "quantization.high-risk-fp16-fits" in fired(risk="high", quant="q8_0", **fits)
    assert "quantization.high-risk-fp16-fits" not in fired(risk="high", quant="fp16", **fits)
    assert "quantization.high-risk-fp16-fits" not in fired(risk="high", quant="q8_0", **too_big)
    assert "quantization.high-risk-fp16-too-big" in fired(risk="high", quant="fp16", **too_big)
    assert "quantization.high-risk-fp16-too-big" in fired(risk="high", quant="bf16", **too_big)
    assert "quantization.high-risk-fp16-too-big" not in fired(risk="high", quant="q8_0", **too_big)


def test_fp16_fit_margin_is_the_p1_fraction(k):
    from advisor.answers import answers_from_dict
    from advisor.estimate import estimate_for

    frac = k.value("fp16_fit_fraction")
    m = k.model("qwen2.5-3b")
    fp16_gb = m.params * 2 / 1024**3
    for vram, fits in ((fp16_gb / frac * 0.98, False), (fp16_gb / frac * 1.02, True)):
        a = answers_from_dict({"hardware": {"gpu": "RTX 4090", "vram_gb": vram}})
        est = estimate_for(k, a, m, "vllm", "fp16")
        assert (est.memory.fp16_gb < frac * est.memory.usable_gb) is fits, vram


# ---------------------------------------------------------------- backend
def test_backend_without_the_quantization_or_os_is_rejected(fired):
    # the backends' rows are facts: vLLM serves no GGUF k-quant and runs on Linux only
    assert "backend.lacks-quantization" in fired(backend="vllm", quant="q4_k_m", real_rows=True)
    assert "backend.lacks-quantization" not in fired(backend="vllm", quant="awq", real_rows=True)
    assert "backend.os-unsupported" in fired(backend="vllm", quant="awq", os="windows", real_rows=True)
    assert "backend.os-unsupported" not in fired(backend="ollama", os="windows", real_rows=True)
    assert not {"backend.lacks-quantization", "backend.os-unsupported"} & fired()


def test_compiled_hf_only_for_prefill_and_single_stream(fired, k):
    cross = int(k.value("vllm_crossover_n"))
    base = dict(backend="transformers-compiled", quant="fp16")
    assert "backend.compile-prefill-only" in fired(**base, phase="decode")
    assert "backend.compile-prefill-only" not in fired(**base, phase="prefill")
    assert "backend.compile-single-stream" in fired(**base, phase="prefill", seqs=cross)
    assert "backend.compile-single-stream" not in fired(**base, phase="prefill", seqs=cross - 1)


def test_crossover_penalises_backends_without_continuous_batching(fired, k):
    cross = int(k.value("vllm_crossover_n"))
    assert "backend.crossover" in fired(seqs=cross, backend="ollama")
    assert "backend.crossover" in fired(seqs=cross, backend="transformers")
    assert "backend.crossover" not in fired(seqs=cross - 1, backend="ollama")
    assert "backend.crossover" not in fired(seqs=cross + 4, backend="llamacpp")
    assert "backend.crossover" not in fired(seqs=cross + 4, backend="vllm")


def test_workload_preference_is_a_bonus_on_the_preferred_backend(fired):
    # Appendix F's row is a fact the rule joins on; the side of the crossover is the candidate's own N
    assert "backend.workload-preference" in fired(backend="ollama", pref={"backend_low": "ollama", "high_n_from": 4})
    assert "backend.workload-preference" not in fired(backend="vllm", pref={"backend_low": "ollama", "high_n_from": 4})
    assert "backend.workload-preference" in fired(backend="vllm", seqs=8,
                                                  pref={"backend_high": "vllm", "high_n_from": 4})
    assert "backend.workload-preference" not in fired(backend="ollama", seqs=8,
                                                      pref={"backend_low": "ollama", "backend_high": "vllm",
                                                            "high_n_from": 4})
    assert "quantization.workload-default" in fired(quant="q4_k_m", pref={"quant_low": "q4_k_m"},
                                                    fp16_need_gb=100, usable_gb=24)
    assert "quantization.workload-default" not in fired(quant="q4_k_m", pref={"quant_low": "q4_k_m"},
                                                        fp16_need_gb=2, usable_gb=24)


@pytest.mark.parametrize("rule, threshold, knob, backend, other", [
    ("backend.hf-long-context", "hf_fp16_context_redirect", "seq_tokens", "transformers", "vllm"),  # above 4k
    ("scaling.ollama-agents", "ollama_max_agents", "seqs", "ollama", "llamacpp"),  # agents per GPU
])
def test_a_backend_limit_fires_just_above_its_threshold_on_its_backend_only(fired, k, rule, threshold, knob,
                                                                              backend, other):
    limit = int(k.value(threshold))
    assert rule in fired(backend=backend, **{knob: limit + 1})
    assert rule not in fired(backend=backend, **{knob: limit})
    assert rule not in fired(backend=other, **{knob: limit + 1})


# ---------------------------------------------------------------- context budget
def test_weights_that_do_not_fit_are_rejected(fired):
    assert "context.weights-do-not-fit" in fired(base_gb=24.0, usable_gb=24.0)
    assert "context.weights-do-not-fit" not in fired(base_gb=23.9, usable_gb=24.0)


def test_a_context_longer_than_the_model_was_trained_for_is_rejected(fired):
    assert "context.model-max-context" in fired(max_context=4096, seq_tokens=4097)
    assert "context.model-max-context" not in fired(max_context=4096, seq_tokens=4096)


@pytest.mark.parametrize("os_name, rule, words", [
    ("linux", "context.over-budget-linux", "out-of-memory"),
    ("windows", "context.over-budget-windows", "silently spills"),
])
def test_context_over_the_budget_fails_the_os_way(k, base_fact, os_name, rule, words):
    from advisor.rules.session import consult, consult_candidates

    fact = base_fact.model_copy(update={"os": os_name, "budget_tokens": 8000, "seq_tokens": 8001})
    conclusions = consult_candidates(k, [fact]).conclusions
    hit = [c for c in conclusions if c.rule == rule]
    assert hit and words in hit[0].because
    fact = fact.model_copy(update={"seq_tokens": 8000})
    assert rule not in {c.rule for c in consult_candidates(k, [fact]).conclusions}


def test_vram_alert_and_hard_stop_lines(fired, k):
    warn, stop = k.value("vram_alert_warning"), k.value("vram_alert_hard_stop")
    assert "context.vram-alert" not in fired(vram_frac=warn)
    assert "context.vram-alert" in fired(vram_frac=warn + 0.001)
    assert "context.vram-hard-stop" not in fired(vram_frac=stop)
    assert "context.vram-hard-stop" in fired(vram_frac=stop + 0.001)


def test_near_budget_warning_at_ninety_percent(fired, k):
    near = k.value("context_near_budget")
    assert "context.near-budget" in fired("plan", budget_tokens=10000, seq_tokens=int(10000 * near))
    assert "context.near-budget" not in fired("plan", budget_tokens=10000, seq_tokens=int(10000 * near) - 1)


# ---------------------------------------------------------------- SLO
def test_ttft_slo_and_bands(fired, k):
    # The point estimate decides: a target it misses fails, however wide the band; a target it meets
    # but the band's far edge misses is at risk. A typed target is hard; the workload's default ranks.
    assert "slo.ttft" in fired(ttft_p95_ms=1000.1, ttft_hi_ms=1500, slo_ttft=1000)
    assert "slo.ttft" not in fired(ttft_p95_ms=1000, ttft_hi_ms=1500, slo_ttft=1000)
    assert "slo.ttft-at-risk" in fired("plan", ttft_p95_ms=900, ttft_hi_ms=1200, slo_ttft=1000)
    assert "slo.ttft-at-risk" not in fired("plan", ttft_p95_ms=700, ttft_hi_ms=950, slo_ttft=1000)
    assert "slo.ttft-at-risk" not in fired("plan", ttft_p95_ms=1100, ttft_hi_ms=1500, slo_ttft=1000)
    default = fired(ttft_p95_ms=1000.1, slo_ttft=1000, slo_ttft_default=1)
    assert "slo.ttft-default-target" in default and "slo.ttft" not in default
    bad = k.value("ttft_unacceptable_ms")
    assert "slo.ttft-unacceptable" in fired(ttft_p95_ms=bad + 1, slo_ttft=10**9)
    assert "slo.ttft-unacceptable" not in fired(ttft_p95_ms=bad, slo_ttft=10**9)
    ex, good, poor = (k.value(f"ttft_{b}_ms") for b in ("excellent", "good", "poor"))
    assert "slo.ttft-band-excellent" in fired("plan", ttft_p95_ms=ex - 1)
    assert "slo.ttft-band-good" in fired("plan", ttft_p95_ms=ex)
    assert "slo.ttft-band-good" in fired("plan", ttft_p95_ms=good - 1)
    assert "slo.ttft-band-poor" in fired("plan", ttft_p95_ms=good)
    assert "slo.ttft-band-bad" in fired("plan", ttft_p95_ms=poor)


def test_p95_and_decode_targets(fired):
    assert "slo.p95-latency" in fired(e2e_p95_s=5.01, e2e_p95_hi_s=6, slo_p95=5)
    assert "slo.p95-latency" not in fired(e2e_p95_s=5.0, e2e_p95_hi_s=6, slo_p95=5)
    assert "slo.p95-at-risk" in fired("plan", e2e_p95_s=4, e2e_p95_hi_s=5.5, slo_p95=5)
    default = fired(e2e_p95_s=5.01, slo_p95=5, slo_p95_default=1)
    assert "slo.p95-default-target" in default and "slo.p95-latency" not in default
    assert "slo.decode-rate" in fired(decode_per_user=19.9, decode_per_user_lo=15, slo_decode=20)
    assert "slo.decode-rate" not in fired(decode_per_user=20, decode_per_user_lo=15, slo_decode=20)


def test_an_offline_batch_has_its_deadline_not_interactive_targets(fired):
    assert "slo.ttft" not in fired(mode="batch", ttft_p95_ms=10**6, ttft_hi_ms=10**6, slo_ttft=1000)
    assert "slo.p95-latency" not in fired(mode="batch", e2e_p95_s=10**4, e2e_p95_hi_s=10**4, slo_p95=5)


# ---------------------------------------------------------------- scaling and sizing
def test_tensor_parallel_needs_the_gpus(fired):
    assert "scaling.tensor-parallel-too-few-gpus" in fired(tensor_parallel=2, gpus=1)
    assert "scaling.tensor-parallel-too-few-gpus" not in fired(tensor_parallel=2, gpus=2)
    assert "scaling.tensor-parallel" in fired("plan", tensor_parallel=2, gpus=2)


def test_replicas_for_a_batch_deadline(fired):
    assert "scaling.replicas-short" in fired(replicas_needed=3, replicas_possible=2)
    assert "scaling.replicas-short" not in fired(replicas_needed=2, replicas_possible=2)
    assert "scaling.replicas" in fired("plan", replicas_needed=2, requests_per_day=10**6, deadline_hours=8)


# ---------------------------------------------------------------- quality
def test_quality_gate_after_the_quantization_loss(fired):
    assert "quality.gate" in fired(eff_mmlu=44.9, gate_min=45)
    assert "quality.gate" not in fired(eff_mmlu=45, gate_min=45)
    assert "quality.unknown" in fired("plan", mmlu=-1, gate_min=45)
    assert "quality.composite-only" in fired("plan", gate_min=-1)


# ---------------------------------------------------------------- playbooks
def test_playbook_selection(fired, k):
    warn = k.value("vram_alert_warning")
    h5_max = int(k.value("playbook_h5_agents_max"))
    # H.1 is a migration: for the user on Ollama today whose plan moves them to a batching engine
    assert "playbook.h1-move-off-ollama" in fired("plan", current_backend="ollama", backend="vllm")
    assert "playbook.h1-move-off-ollama" in fired("plan", current_backend="ollama", backend="tgi", seqs=1)
    assert "playbook.h1-move-off-ollama" not in fired("plan", current_backend="", backend="vllm", seqs=64)
    assert "playbook.h1-move-off-ollama" not in fired("plan", current_backend="vllm", backend="vllm", seqs=64)
    assert "playbook.h1-move-off-ollama" not in fired("plan", current_backend="ollama", backend="ollama", seqs=64)
    assert "playbook.h2-vram" in fired("plan", vram_frac=warn + 0.001)
    assert "playbook.h2-vram" not in fired("plan", vram_frac=warn, budget_tokens=10**6, seq_tokens=10)
    assert "playbook.h3-quality" in fired("plan", risk="high")
    assert "playbook.h3-quality" not in fired("plan", risk="moderate")
    assert "playbook.h4-new-model" in fired("plan", origin="local")
    assert "playbook.h4-new-model" not in fired("plan", origin="catalog")
    # H.5: 2 to 8 agents back to back on one GPU, and nothing that merely has as many sequences
    agents = dict(mode="concurrent", think_time_s=0.0, gpus=1)
    assert "playbook.h5-agents" in fired("plan", users=2, seqs=2, **agents)
    assert "playbook.h5-agents" in fired("plan", users=h5_max, seqs=h5_max, **agents)
    assert "playbook.h5-agents" not in fired("plan", users=1, seqs=1, **agents)
    assert "playbook.h5-agents" not in fired("plan", users=h5_max + 1, seqs=h5_max + 1, **agents)
    assert "playbook.h5-agents" not in fired("plan", users=4, seqs=4, **{**agents, "gpus": 2})
    assert "playbook.h5-agents" not in fired("plan", users=100, seqs=5, **{**agents, "think_time_s": 30.0})
    assert "playbook.h5-agents" not in fired("plan", users=1, seqs=4, **{**agents, "mode": "rate"})
    assert "playbook.h5-agents" not in fired("plan", users=1, seqs=4, **{**agents, "mode": "batch"})
    # a batch gets the batch advice instead; nothing else does
    assert "playbook.batch-throughput" in fired("plan", mode="batch", seqs=64, requests_per_day=10**5,
                                                deadline_hours=8.0, rate_rps=3.47)
    assert "playbook.batch-throughput" not in fired("plan", mode="concurrent", seqs=4)


# ---------------------------------------------------------------- plausibility
def _figure(**kw):
    base = {"kind": "figure", "id": "f", "what": "TTFT at 8K", "value": 100.0, "plausible": 1, "reason": "",
            "source": "probe on this GPU", "table_value": -1, "table_source": ""}
    return {**base, **kw}


def test_a_figure_beating_the_roofline_is_a_warning(k):
    from advisor.rules.session import consult, consult_candidates

    t = consult(k, "plan", [_figure(plausible=0, reason="8.4 ms beats the 75 ms roofline")])
    assert [c.rule for c in t.conclusions] == ["plausibility.roofline"]
    assert "not used" in t.conclusions[0].because
    assert not consult(k, "plan", [_figure()]).conclusions


def test_a_probe_more_than_25_percent_off_the_table_is_a_warning_naming_both(k):
    from advisor.rules.session import consult, consult_candidates

    d = k.value("probe_table_disagreement")
    off = consult(k, "plan", [_figure(value=100 * (1 + d) + 0.1, table_value=100.0, table_source="catalog")])
    assert [c.rule for c in off.conclusions] == ["plausibility.probe-vs-table"]
    assert "probe on this GPU" in off.conclusions[0].because and "catalog" in off.conclusions[0].because
    assert not consult(k, "plan", [_figure(value=100 * (1 + d) - 0.1, table_value=100.0)]).conclusions
    assert consult(k, "plan", [_figure(value=100 * (1 - d) - 0.1, table_value=100.0)]).conclusions
