"""Quality gates per application (Appendix P.2), applied to MMLU after the quantization's loss."""

from __future__ import annotations

from advisor.rules.base import Rule, cand, plan


def candidates_rules(k) -> list[Rule]:
    return [
        Rule("quality.gate", "Appendix P.2 (quality gates); TR125 (quantization deltas)", "gate",
             lambda m: cand(m) & (m.gate_min >= 0) & (m.mmlu >= 0) & (m.eff_mmlu < m.gate_min),
             lambda f: (f"{f.model} at {f.quant}: MMLU {f.mmlu:g} - {f.mmlu - f.eff_mmlu:g} pp = {f.eff_mmlu:g} "
                        f"is below the {f.gate_name} gate ({f.gate_min:g})"),
             sets=("model",), kind="policy"),
    ]


def plan_rules(k) -> list[Rule]:
    return [
        Rule("quality.unknown", "Appendix P.2; Appendix H.4 (validate a new model)", "note",
             lambda m: plan(m) & (m.gate_min >= 0) & (m.mmlu < 0),
             lambda f: f"{f.model} has no MMLU in the catalog: the {f.gate_name} gate is not checked; validate it (H.3/H.4)"),
        Rule("quality.pass", "Appendix P.2 (quality gates)", "note",
             lambda m: plan(m) & (m.gate_min >= 0) & (m.mmlu >= 0) & (m.eff_mmlu >= m.gate_min),
             lambda f: f"{f.model} at {f.quant}: MMLU {f.eff_mmlu:g} passes the {f.gate_name} gate ({f.gate_min:g})",
             sets=("model",)),
        Rule("quality.composite-only", "Appendix P.2 (composite score gates)", "note",
             lambda m: plan(m) & (m.gate_min < 0),
             lambda f: f"the {f.gate_name} gate is a composite score the catalog lacks: not checked; run your own eval (H.3)"),
    ]

