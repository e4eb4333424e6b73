"""Which operational playbook (Appendix H) matches the chosen plan."""

from __future__ import annotations

from advisor.rules.base import Rule, plan


def plan_rules(k) -> list[Rule]:
    cross = k.row("vllm_crossover_n")
    pb = k.playbooks
    return [
        Rule("playbook.h1-move-to-vllm", pb["H.1"].source, "playbook",
             lambda m: plan(m) & (m.seqs >= cross.value) & (m.pages_kv == 1),
             lambda f: f"N={f.seqs} >= {cross.value:g} on {f.backend}: {pb['H.1'].title}", value="H.1"),
        # chained: the context rules' VRAM concerns (rules/context.py) call for H.2
        Rule("playbook.h2-vram", pb["H.2"].source, "playbook",
             lambda m: (m.kind == "concern") & (m.topic == "vram"),
             lambda f: f"{f.because}: {pb['H.2'].title}", value="H.2"),
        Rule("playbook.h3-quality", pb["H.3"].source, "playbook",
             lambda m: plan(m) & (m.risk == "high"),
             lambda f: "high-risk (quality-critical) tier: keep the quality regression checks running", value="H.3"),
        Rule("playbook.h4-new-model", pb["H.4"].source, "playbook",
             lambda m: plan(m) & (m.origin != "catalog"),
             lambda f: f"{f.model} is not in the catalog ({f.origin}): add and validate it", value="H.4"),
        Rule("playbook.h5-agents", pb["H.5"].source, "playbook",
             lambda m: plan(m) & (m.seqs >= 2),
             lambda f: f"N={f.seqs} concurrent agents on one GPU", value="H.5"),
    ]


def candidates_rules(k) -> list[Rule]:
    return []
