"""The roofline: the seeds' impossible figures are flagged, the possible ones are not."""

from __future__ import annotations

import pytest

from advisor import physics


def _verdicts(k, **match):
    out = []
    for m, v in zip(k.measurements, physics.verdicts(k)):
        if all(getattr(m, f) == val for f, val in match.items()):
            out.append((m, v))
    assert out, match
    return out


@pytest.mark.parametrize("model", ["llama3.2-1b", "llama3.2-3b", "qwen2.5-1.5b"])
def test_ollama_prefill_medians_from_8k_to_32k_are_flagged_as_implausible(k, model):
    rows = [(m, v) for m, v in _verdicts(k, kind="prefill_ms", backend="ollama", model=model)
            if m.context_tokens >= 8192 and m.source.startswith("TR127 §4.6")]
    assert {m.context_tokens for m, _ in rows} == {8192, 16384, 32768}
    for m, v in rows:
        assert not v.plausible, (m, v)
        assert "prompt cache" in v.reason and v.bound > m.value


def test_ollama_rep0_prefills_and_hf_prefills_pass(k):
    for m, v in _verdicts(k, kind="prefill_ms", backend="transformers") + [
        (m, v) for m, v in _verdicts(k, kind="prefill_ms", backend="ollama") if "§4.5" in m.source
    ]:
        assert v.plausible, (m, v)


def test_every_stored_decode_rate_respects_the_bandwidth_roofline(k):
    for m, v in _verdicts(k, kind="decode_tok_s"):
        assert v.plausible and m.value <= v.bound


def test_a_figure_faster_than_the_roofline_is_flagged(k):
    from advisor.knowledge import MeasurementRow

    gpu = k.gpu("H100 80GB")
    model = k.model("qwen2.5-1.5b")
    bound = physics.prefill_roofline_ms(model, gpu, "fp16", 32768)
    fast = MeasurementRow(kind="prefill_ms", model="qwen2.5-1.5b", backend="transformers", quant="fp16",
                          gpu="H100 80GB", context_tokens=32768, value=bound * 0.9, unit="ms", source="t")
    slow = fast.model_copy(update={"value": bound * 1.1})
    assert not physics.judge_measurement(k, fast).plausible
    assert physics.judge_measurement(k, slow).plausible


def test_design_facts_base_vram_and_kv_bytes(k):
    m = k.model("qwen2.5-1.5b")
    # DESIGN: qwen2.5-1.5b loads at 2,978 MiB in fp16
    assert physics.weights_gb(k, m, "fp16") * 1024 == pytest.approx(2978, rel=0.03)
    # 2 x 28 layers x 2 kv heads x 128 x 2 bytes
    assert m.kv_bytes_per_token() == 2 * 28 * 2 * 128 * 2
    # a 152K vocab keeps ~0.6 MiB of fp32 logits per prompt token in a plain forward
    assert physics.logits_gb_per_token(m) * 1024 == pytest.approx(0.58, abs=0.03)


def test_32k_prefill_of_a_1_5b_model_on_an_h100_takes_hundreds_of_ms(k):
    # DESIGN: ~0.4 s measured; the roofline must be below it and the same order of magnitude.
    bound = physics.prefill_roofline_ms(k.model("qwen2.5-1.5b"), k.gpu("H100 80GB"), "fp16", 32768)
    assert 100 < bound < 400
