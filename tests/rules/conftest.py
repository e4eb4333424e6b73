"""A real candidate fact to perturb: llama3.2-1b on Ollama at Q4_K_M, chat, N=1, RTX 4090."""

from __future__ import annotations

import pytest

from advisor.answers import answers_from_dict, with_workload_defaults
from advisor.estimate import estimate_for
from advisor.rules.facts import (
    ServesFact,
    candidate_fact,
    compat_facts,
    preference_fact,
    serves_facts,
    tier_facts,
)
from advisor.rules.session import consult, consult_candidates


@pytest.fixture(scope="session")
def base_fact(k):
    a = answers_from_dict({"workload": "chat", "hardware": {"gpu": "RTX 4090"}, "model": {"name": "llama3.2-1b"}})
    est = estimate_for(k, a, "llama3.2-1b", "ollama", "q4_k_m")
    return candidate_fact(k, with_workload_defaults(a, k), 0, est)


def perturb(k, fact, **overrides):
    """The fact with some fields changed; naming another engine brings that engine's
    behaviour (its scheduler, paging, compiled prefill) along, as the pipeline would."""
    if "backend" in overrides:
        from advisor.engines import engine

        b = engine(k, overrides["backend"])
        sched = b.scheduler(k.model(fact.model))
        overrides = {"continuous": int(sched.continuous), "slots": int(sched.fixed_slots), "pages_kv": int(b.pages_kv),
                     "compiled_prefill": int(b.compiled_prefill),
                     "prefill_activations": int(b.prefill_activations), **overrides}
    if "current_backend" in overrides:  # today's engine's behaviour, as candidate_fact asks its object
        from advisor.rules.facts import _fixed_slots

        overrides = {"current_slots": _fixed_slots(k, overrides["current_backend"], k.model(fact.model)), **overrides}
    return fact.model_copy(update=overrides)


@pytest.fixture(scope="session")
def fired(k, base_fact):
    """fired(stage, **overrides) -> names of the rules that fired on the perturbed fact."""

    def run(stage: str = "candidates", pref: dict | None = None, real_rows: bool = False, **overrides) -> set[str]:
        """`pref`: fields of Appendix F's row (the PreferenceFact the preference rules join on) to change.
        The backend's rows say it serves the fact's quantization on its OS (a test perturbs one field
        at a time), unless `real_rows`: then only knowledge/backends.toml's lines."""
        fact = perturb(k, base_fact, **overrides)
        if stage == "plan":
            fact = fact.as_plan(constraints="")
        p3 = [*compat_facts(k, [fact.model]), *serves_facts(k, [fact.backend])]
        if not real_rows:
            p3 += [ServesFact(kind="serves", id="serves:test", backend=fact.backend, quant=fact.quant),
                   ServesFact(kind="runs", id="runs:test", backend=fact.backend, os=fact.os)]
        if stage == "plan":
            return {c.rule for c in consult(k, stage, [*p3, fact]).conclusions}
        row = preference_fact(k, answers_from_dict({"workload": fact.workload})).model_copy(update=pref or {})
        return {c.rule for c in consult_candidates(k, [row, *tier_facts(k), *p3, fact]).conclusions}

    return run
