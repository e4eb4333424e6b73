"""A real candidate fact to perturb: llama3.2-1b on Ollama at Q4_K_M, chat, N=1, RTX 4090."""

from __future__ import annotations

import pytest

from advisor.answers import answers_from_dict
from advisor.engine import _fact
from advisor.hardware import resolve_hardware
from advisor.predict import estimate
from advisor.rules.engine import consult, consult_candidates


@pytest.fixture(scope="session")
def base_fact(k):
    a = answers_from_dict({"workload": "chat", "hardware": {"gpu": "RTX 4090"}, "model": {"name": "llama3.2-1b"}})
    hw = resolve_hardware(a, k)
    est = estimate(k, a, hw, k.model("llama3.2-1b"), "ollama", "q4_k_m")
    return _fact(k, a, hw, 0, est)


def perturb(k, fact, **overrides):
    """The fact with some fields changed; naming another backend brings that backend's
    behaviour (batching, paging, compiled prefill) along, as the engine would."""
    if "backend" in overrides:
        from advisor.backends import backend

        b = backend(k, overrides["backend"])
        overrides = {"batching": b.batching, "continuous": int(b.continuous), "pages_kv": int(b.pages_kv),
                     "compiled_prefill": int(b.compiled_prefill),
                     "prefill_activations": int(b.prefill_activations), **overrides}
    return fact.model_copy(update=overrides)


@pytest.fixture(scope="session")
def fired(k, base_fact):
    """fired(stage, **overrides) -> names of the rules that fired on the perturbed fact."""

    def run(stage: str = "candidates", **overrides) -> set[str]:
        fact = perturb(k, base_fact, **overrides)
        if stage == "plan":
            fact = fact.as_plan(constraints="")
        if stage == "plan":
            return {c.rule for c in consult(k, stage, [fact]).conclusions}
        return {c.rule for c in consult_candidates(k, [fact]).conclusions}

    return run
