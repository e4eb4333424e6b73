"""Context budgets that hold where the attention kernel builds the n x n score matrix (TR127's
Windows laptop), and stay linear where a flash/memory-efficient kernel runs."""

from __future__ import annotations

import pytest

from advisor.answers import answers_from_dict
from advisor.recommend import recommend

HF = {"backend": "transformers", "quantization": "fp16"}


def plan(k, model, os_name, gpu="RTX 4080 Laptop", context=2048):
    rec = recommend(answers_from_dict({"workload": "summarization", "context_tokens": context, "output_tokens": 128,
                                       "model": {"name": model}, "constraints": HF,
                                       "hardware": {"gpu": gpu, "os": os_name}}), knowledge=k)
    return rec, rec.recommendation


# TR127 §14.3's safe context on a 12 GB GPU, per model
@pytest.mark.parametrize("model, tr127_safe", [("qwen2.5-0.5b", 4200), ("qwen2.5-1.5b", 3900), ("qwen2.5-3b", 3700)])
def test_on_tr127s_own_setup_the_budget_agrees_with_its_measured_safe_budget(k, model, tr127_safe):
    rec, p = plan(k, model, "windows")
    assert p.max_context_tokens == pytest.approx(tr127_safe, rel=0.25)
    assert "context.stored-bound" in {f.rule for f in rec.rules_fired}


def test_the_same_laptop_on_linux_runs_a_linear_kernel_and_plans_far_longer(k):
    _, win = plan(k, "qwen2.5-1.5b", "windows")
    rec, lin = plan(k, "qwen2.5-1.5b", "linux")
    assert lin.max_context_tokens > 3 * win.max_context_tokens
    assert "context.attention-quadratic" not in {f.rule for f in rec.rules_fired}


def test_a_windows_model_tr127_never_measured_is_budgeted_for_the_quadratic_kernel(k):
    rec, win = plan(k, "llama3.2-1b", "windows")
    _, lin = plan(k, "llama3.2-1b", "linux")
    assert win.max_context_tokens < lin.max_context_tokens / 2
    warn = next(w for w in rec.warnings if "n x n score matrix" in w)
    assert "advisor probe" in warn
    # the VRAM it predicts at the budget carries the n^2 term: past 8K it is most of the memory
    _, long_ = plan(k, "llama3.2-1b", "windows", context=win.max_context_tokens - 128)
    assert long_.predicted.vram_gb <= 12 * 0.9


def test_tr127s_slope_is_explained_as_what_it_is(k):
    rec, _ = plan(k, "qwen2.5-1.5b", "windows")
    why = next(f.because for f in rec.rules_fired if f.rule == "plausibility.tr127-slope")
    assert "least-squares line" in why and "quadratic" in why
