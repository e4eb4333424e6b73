"""The transformers probe pipeline on tiny random architectures, on the CPU.

On the CPU, memory is the bytes of live tensors tracked op by op (what CUDA's allocator counts,
up to its rounding); the GPU figures are in bench/results/probe-gpu-h100.md. These tests check
what a user relies on: the fit extrapolates for each attention implementation, points that
would not fit are skipped, out-of-memory is survived, Ctrl-C frees the model.
"""

from __future__ import annotations

import threading
import weakref

import pytest
import torch
from conftest import write_tiny

from advisor.errors import InputError, ProbeError
from advisor.probes import transformers_probe as tp


def probe(k, model, **kw):
    kw.setdefault("dtype", "float32")
    kw.setdefault("contexts", [128, 256, 512])
    return tp.probe_transformers(model, knowledge=k, device="cpu", **kw)


def measured_at(k, model, n, **kw):
    r = probe(k, model, contexts=[n], repetitions=1, full_logits=False, **kw)
    assert r.curve[0].status == "ok"
    return r.curve[0].peak_mb


@pytest.mark.parametrize("attention, kind", [("sdpa", "linear"), ("eager", "quadratic")])
def test_fit_predicts_8x_the_largest_context_within_5_percent(k, tiny, attention, kind):
    r = probe(k, tiny, attention=attention)
    assert r.fit.kind == kind and r.attention == attention
    assert [p.status for p in r.curve] == ["ok"] * 3
    truth = measured_at(k, tiny, 4096, attention=attention)
    assert abs(r.fit.predict(4096) - truth) / truth < 0.05


def test_eager_needs_its_n_squared_term(k, tiny):
    r = probe(k, tiny, attention="eager")
    line = tp.fit_curve([(p.context_tokens, p.peak_mb) for p in r.curve], "sdpa")
    truth = measured_at(k, tiny, 4096, attention="eager")
    assert (line.predict(4096) - truth) / truth < -0.5  # a straight line misses most of it


def test_half_precision_eager_term_on_a_llama(k, tmp_path):
    model = write_tiny(tmp_path / "tiny-llama", arch="llama", heads=8, kv_heads=2)
    r = probe(k, model, attention="eager", dtype="float16")
    assert r.fit.quadratic_mb_per_token2 * 2**20 == pytest.approx(8 * 8 + 2)
    truth = measured_at(k, model, 2048, attention="eager", dtype="float16")
    assert abs(r.fit.predict(2048) - truth) / truth < 0.05


def test_full_logits_forward_costs_vocab_bytes_per_token_more(k, tmp_path):
    model = write_tiny(tmp_path / "big-vocab", vocab=8192)
    r = probe(k, model, attention="sdpa")
    for p in r.curve:
        extra = p.full_logits_peak_mb - p.peak_mb
        assert extra >= 0.9 * p.context_tokens * 8192 * 4 / 2**20  # float32 logits for every token
    from advisor.domain import CurveFit

    full = CurveFit(**r.extra["full_logits_fit"])
    assert full.linear_mb_per_token > 2 * r.fit.linear_mb_per_token


def test_ttft_is_a_median_after_warm_up_and_decode_is_measured(k, tiny):
    r = probe(k, tiny)
    assert [t.context_tokens for t in r.ttft] == [128, 256, 512]
    assert all(t.repetitions == 3 and t.rep0_ms is not None and t.ttft_ms > 0 for t in r.ttft)
    assert r.decode_tok_s and r.decode_tok_s > 0
    assert r.ttft_fit.form == "max"  # the batched-prefill model
    assert r.kv_bytes_per_token == 2 * 2 * 2 * 16 * 4  # measured from the KV cache: layers x kv heads x head_dim x fp32
    assert r.base_vram_mb > 0 and r.extra["probe_s"] < 30


def test_points_that_would_not_fit_are_skipped_before_running(k, tiny, monkeypatch):
    ran = []
    real = tp._Runner.prefill

    def spy(self, ids, full_logits):
        ran.append(ids.shape[-1])
        return real(self, ids, full_logits)

    monkeypatch.setattr(tp._Runner, "prefill", spy)
    monkeypatch.setattr(tp._CpuMeter, "free_mb", lambda self: 40.0)
    r = probe(k, tiny, attention="eager", contexts=[128, 256, 4096])
    assert [p.status for p in r.curve] == ["ok", "ok", "skipped"]
    assert "would not fit" in r.curve[2].note and r.curve[2].predicted_mb > 40
    assert 4096 not in ran
    assert any("4,096 tokens skipped" in w for w in r.warnings)


def test_out_of_memory_is_caught_freed_and_reported(k, tiny, monkeypatch):
    real = tp._Runner.prefill

    def oom_at_512(self, ids, full_logits):
        if ids.shape[-1] >= 512:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, ids, full_logits)

    monkeypatch.setattr(tp._Runner, "prefill", oom_at_512)
    r = probe(k, tiny)
    assert [p.status for p in r.curve] == ["ok", "ok", "oom"]
    assert r.fit is not None and r.fit.kind == "linear"  # the two good points still give a fit
    assert any("oom" in w for w in r.warnings)


def test_ctrl_c_frees_the_model(k, tiny, monkeypatch):
    models = []
    real = tp.build_model

    def keep_ref(*a, **kw):
        m, got = real(*a, **kw)
        models.append(weakref.ref(m))
        return m, got

    monkeypatch.setattr(tp, "build_model", keep_ref)

    def interrupt(p):
        if p.step == "curve":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        probe(k, tiny, progress=interrupt)
    assert models and models[0]() is None


def test_cancel_event_stops_with_one_line(k, tiny):
    ev = threading.Event()

    def cancel_on_curve(p):
        if p.step == "curve":
            ev.set()

    with pytest.raises(ProbeError, match="cancelled"):
        probe(k, tiny, progress=cancel_on_curve, cancel=ev)


def test_progress_reaches_done_with_curve_points(k, tiny):
    seen = []
    probe(k, tiny, progress=seen.append)
    assert seen[-1].step == "done" and seen[-1].fraction == 1.0
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions)
    assert [p.point.context_tokens for p in seen if p.point is not None] == [128, 256, 512]


def test_catalog_architectures_build_from_stored_facts(k):
    for mid, cls in [("qwen2.5-1.5b", "Qwen2Config"), ("llama3.1-8b", "LlamaConfig"), ("phi-2", "PhiConfig"),
                     ("gpt2", "GPT2Config"), ("mistral-7b", "MistralConfig")]:
        cfg = tp.config_from_spec(k.model(mid))
        spec = k.model(mid)
        facts = tp.facts_from_config(cfg, mid)
        assert type(cfg).__name__ == cls
        assert (facts.layers, facts.heads, facts.kv_heads, facts.vocab) == (
            spec.layers, spec.attention_heads, spec.kv_heads, spec.vocab_size)


def test_contexts_beyond_the_model_are_skipped(k, tmp_path):
    model = write_tiny(tmp_path / "short", max_pos=256)
    r = probe(k, model, contexts=[128, 512])
    assert r.curve[1].status == "skipped" and "context" in r.curve[1].note


def test_bad_model_names_are_one_line(k, tmp_path):
    with pytest.raises(InputError, match="did you mean 'qwen2.5-1.5b'"):
        tp.resolve_label("qwen2.5-1.5", k)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProbeError, match="no config.json"):
        probe(k, str(tmp_path / "empty"))
    with pytest.raises(ProbeError, match="no such directory"):
        tp.resolve_label("./nowhere/model", k)


def test_without_cuda_the_gpu_probe_says_so_in_one_line(k, tiny):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the no-CUDA message is not reachable (not counted as proof)")
    with pytest.raises(ProbeError) as e:
        tp.probe_transformers(tiny, knowledge=k)
    assert "sees no CUDA GPU" in str(e.value) and "\n" not in str(e.value)
