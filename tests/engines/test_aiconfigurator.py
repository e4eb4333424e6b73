"""vLLM's speed on a datacenter GPU: NVIDIA's measured tables (aiconfigurator-core, the optional
extra, installed with the test extra) and the advisor's own calibrated model, checked against
each other; where neither has data the figure stays assumed, with the wide band."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from advisor.answers import answers_from_dict
from advisor.engines import aiconfigurator as aic
from advisor.engines import engine as backend
from advisor.engines.roofline import arch_token, roofline_costs
from advisor.recommend import recommend

needs_tables = pytest.mark.skipif(not aic.available(), reason="needs the aiconfigurator extra (in the test extra)")
logging.getLogger("aiconfigurator_core").setLevel(logging.ERROR)


def _chat(gpu: str, quant: str = "bf16", model: str = "llama3.1-8b") -> dict:
    return {"workload": "chat", "concurrency": 16, "context_tokens": 2048, "output_tokens": 256,
            "model": {"name": model}, "hardware": {"gpu": gpu},
            "constraints": {"backend": "vllm", "quantization": quant}}


def test_extra_is_installed_where_the_test_extra_promises_it():
    # The test extra pulls aiconfigurator-core on Linux x86-64, Python 3.11-3.13: a missing
    # install there would silently skip every check below.
    import platform

    if sys.platform == "linux" and platform.machine() == "x86_64" and (3, 11) <= sys.version_info[:2] < (3, 14):
        assert aic.available()


@needs_tables
def test_a_vllm_plan_on_an_h100_takes_its_speed_from_nvidias_tables(k):
    rec = recommend(answers_from_dict(_chat("H100 80GB")), knowledge=k).recommendation
    p = rec.predicted
    assert rec.backend == "vllm"
    for figure in ("ttft_ms", "decode_tok_s_per_user", "total_tok_s"):
        assert p.origins[figure].origin == "aiconfigurator"
    src = p.origins["ttft_ms"].source
    assert "h100_sxm" in src and "vllm 0.24" in src and "calibrated roofline says" in src
    assert p.bands["ttft_ms"] == k.value("band.aiconfigurator") < k.value("band.assumed")


def test_switched_off_the_plan_uses_the_calibrated_rows_fitted_to_those_tables(k, monkeypatch):
    monkeypatch.setenv("ADVISOR_AICONFIGURATOR", "off")
    p = recommend(answers_from_dict(_chat("H100 80GB")), knowledge=k).recommendation.predicted
    assert p.origins["ttft_ms"].origin == "roofline"
    assert "vllm.prefill_flops_efficiency.bf16.sm90" in p.origins["ttft_ms"].source
    assert "aiconfigurator" in p.origins["ttft_ms"].source  # the row names what it was fitted to
    assert p.bands["ttft_ms"] == k.value("band.vllm.prefill.bf16.sm90") < k.value("band.assumed")


def test_another_part_of_the_same_architecture_gets_the_fitted_rows_not_the_tables(k):
    # H100 PCIe: no tables of its own; Hopper's fitted efficiencies apply to its own peak and bandwidth
    p = recommend(answers_from_dict(_chat("H100 PCIe")), knowledge=k).recommendation.predicted
    assert p.origins["ttft_ms"].origin == "roofline"
    assert ".sm90" in p.origins["ttft_ms"].source
    h100 = recommend(answers_from_dict(_chat("H100 80GB")), knowledge=k).recommendation.predicted
    assert p.decode_tok_s_per_user < h100.decode_tok_s_per_user  # 2.0 TB/s against 3.35


def test_a_gpu_no_one_measured_vllm_on_stays_assumed_with_the_wide_band(k):
    p = recommend(answers_from_dict(_chat("RTX 3090")), knowledge=k).recommendation.predicted  # sm86
    assert p.origins["ttft_ms"].origin == "roofline"
    assert p.bands["ttft_ms"] == p.bands["decode_tok_s_per_user"] == k.value("band.assumed")
    assert "assumed" in p.origins["ttft_ms"].source


def test_a_quantization_the_tables_lack_is_not_dressed_up_as_measured(k):
    # aiconfigurator's vLLM tables hold no W4A16 GEMMs: an AWQ plan keeps the assumed efficiency
    p = recommend(answers_from_dict(_chat("H100 80GB", quant="awq")), knowledge=k).recommendation.predicted
    assert p.origins["ttft_ms"].origin == "roofline"
    assert p.bands["ttft_ms"] == k.value("band.assumed")


@needs_tables
def test_an_architecture_it_does_not_compose_falls_back_without_a_network(k):
    gpu, gemma = k.gpu("H100 80GB"), k.model("gemma-2-9b")
    assert aic.step_costs("vllm", gemma, gpu, "bf16", 1, 2048) is None
    assert "not an architecture" in aic.why_not("vllm", gemma, gpu, "bf16")


# ---------------------------------------------------------------- the cross-check
# Off the fit's grid (bench/calibrate/aiconfigurator_vllm.py samples 256..32K-token prompts in powers of
# two and batches of 1..128 at 512/2K/8K tokens): prompts, batches and contexts it never saw.
CASES = [("H100 80GB", "llama3.1-8b", "bf16"), ("H100 80GB", "qwen2.5-14b", "fp8"), ("H200 141GB", "qwen2.5-32b", "bf16"),
         ("H200 141GB", "mistral-7b", "fp8"), ("L40S", "qwen2.5-7b", "bf16"), ("L40S", "llama3.2-3b", "fp8"),
         ("A100 80GB", "qwen2.5-3b", "bf16"), ("A100 80GB", "mistral-7b", "bf16")]
PROMPTS = (700, 3000, 12000)
STEPS = ((3, 1000), (24, 3000), (48, 6000))


@needs_tables
@pytest.mark.parametrize("gpu,model,quant", CASES)
def test_the_calibrated_model_agrees_with_nvidias_tables_within_its_band(k, gpu, model, quant):
    b, g, m = backend(k, "vllm"), k.gpu(gpu), k.model(model)
    arch = arch_token(g)
    for n in PROMPTS:
        ours, _ = roofline_costs(b.calibration, m, g, quant, 1, n, "linux")
        tables, _ = aic.step_costs("vllm", m, g, quant, 1, n)
        band = k.value(f"band.vllm.prefill.{quant}.{arch}")
        assert abs(ours.prefill_ms(n) / tables.prefill_ms(n) - 1) <= band, (gpu, model, quant, "prefill", n)
    for batch, ctx in STEPS:
        ours, _ = roofline_costs(b.calibration, m, g, quant, 1, ctx, "linux")
        tables, _ = aic.step_costs("vllm", m, g, quant, 1, ctx)
        band = k.value(f"band.vllm.decode.{quant}.{arch}")
        assert abs(ours.step_ms(batch) / tables.step_ms(batch) - 1) <= band, (gpu, model, quant, "decode", batch, ctx)


@needs_tables
def test_the_cli_says_where_the_speed_came_from():
    env = {**os.environ, "ADVISOR_AICONFIGURATOR": "on"}
    out = subprocess.run([sys.executable, "-m", "advisor", "recommend", "--gpu", "H200 141GB", "--model", "qwen2.5-7b",
                          "--backend", "vllm", "--quantization", "bf16", "--concurrency", "8", "--format", "json",
                          "--no-cache"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    p = json.loads(out.stdout)["recommendation"]["predicted"]
    assert p["origins"]["decode_tok_s_per_user"]["origin"] == "aiconfigurator"
    assert "h200_sxm" in p["origins"]["decode_tok_s_per_user"]["source"]


def test_every_output_marks_an_assumed_efficiency_beside_the_figure(k, monkeypatch):
    from advisor.render import predicted_lines
    from advisor.tui.screens.advice import predicted_text

    monkeypatch.setenv("ADVISOR_AICONFIGURATOR", "off")
    tgi = recommend(answers_from_dict({**_chat("H100 80GB"), "constraints": {"backend": "tgi", "quantization": "bf16"}}),
                    knowledge=k).recommendation
    assert tgi.predicted.origins["ttft_ms"].assumed and tgi.predicted.origins["decode_tok_s_per_user"].assumed
    assert not tgi.predicted.origins["vram_gb"].assumed
    ttft_line = next(line for line in predicted_lines(tgi) if "TTFT" in line)
    assert "[roofline, assumed]" in ttft_line and "±50%" in ttft_line
    assert "assumed efficiency" in predicted_text(tgi, width=100)
    assert '"assumed": true' in tgi.model_dump_json(indent=1).replace("true,", "true")

    fitted = recommend(answers_from_dict(_chat("H100 80GB")), knowledge=k).recommendation
    assert not fitted.predicted.origins["ttft_ms"].assumed
    assert "assumed" not in next(line for line in predicted_lines(fitted) if "TTFT" in line)


def test_tgi_borrows_vllms_fitted_rows_but_stays_assumed_and_never_outruns_it(k, monkeypatch):
    """No one's tables cover TGI: on an architecture where vLLM was fitted it is assumed to run
    at vLLM's measured efficiency (the same class of kernels), not at an optimistic guess that
    would rank an unmeasured engine above a measured one, and its band stays the wide one."""
    monkeypatch.setenv("ADVISOR_AICONFIGURATOR", "off")
    for gpu in ("H100 80GB", "L40S"):
        ask = {**_chat(gpu, quant="fp8"), "constraints": {"backend": "tgi", "quantization": "fp8"}}
        tgi = recommend(answers_from_dict(ask), knowledge=k).recommendation.predicted
        vllm = recommend(answers_from_dict(_chat(gpu, quant="fp8")), knowledge=k).recommendation.predicted
        assert "as vllm's, assumed for tgi" in tgi.origins["ttft_ms"].source
        assert tgi.origins["ttft_ms"].assumed and tgi.bands["ttft_ms"] == k.value("band.assumed")
        assert tgi.ttft_ms >= vllm.ttft_ms * 0.99 and tgi.decode_tok_s_per_user <= vllm.decode_tok_s_per_user * 1.01
