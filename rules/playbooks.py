"""Which operational playbook (Appendix H) matches the chosen plan."""

from __future__ import annotations

from advisor.rules.base import Rule


def plan_rules(k) -> list[Rule]:
    cross = k.row("vllm_crossover_n")
    warn = k.row("vram_alert_warning")
    near = k.row("context_near_budget")
    pb = k.playbooks
    plan = lambda m: m.kind == "plan"  # noqa: E731
    return [
        Rule("playbook.h1-move-to-vllm", pb["H.1"].source, "playbook",
             lambda m: plan(m) & (m.n >= cross.value) & ((m.backend == "vllm") | (m.backend == "tgi")),
             lambda f: f"N={f.n} >= {cross.value:g} on {f.backend}: {pb['H.1'].title}", value="H.1"),
        Rule("playbook.h2-vram", pb["H.2"].source, "playbook",
             lambda m: plan(m) & ((m.vram_frac > warn.value) | (m.context >= m.budget * near.value)),
             lambda f: (f"predicted VRAM {f.vram_frac:.0%} (alert {warn.value:.0%}) or context "
                        f"{f.context:,} near the budget {f.budget:,}"), value="H.2"),
        Rule("playbook.h3-quality", pb["H.3"].source, "playbook",
             lambda m: plan(m) & (m.risk == "high"),
             lambda f: "high-risk (quality-critical) tier: keep the quality regression checks running", value="H.3"),
        Rule("playbook.h4-new-model", pb["H.4"].source, "playbook",
             lambda m: plan(m) & (m.origin != "catalog"),
             lambda f: f"{f.model} is not in the catalog ({f.origin}): add and validate it", value="H.4"),
        Rule("playbook.h5-agents", pb["H.5"].source, "playbook",
             lambda m: plan(m) & (m.n >= 2),
             lambda f: f"N={f.n} concurrent agents on one GPU", value="H.5"),
    ]


def candidates_rules(k) -> list[Rule]:
    return []
