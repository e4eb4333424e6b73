"""Which operational playbook (Appendix H) fits the user and the chosen plan.

A playbook is attached for the situation it was written for, never for a figure that merely
resembles it: H.1 (moving off Ollama) for the users who serve with Ollama today; H.5 (1 to 8
agents) for agents back to back on one GPU, not for people who pause between turns, an arrival
rate or a batch; an offline batch gets the batch advice instead.
"""

from __future__ import annotations

from advisor.rules.base import Rule, plan


def plan_rules(k) -> list[Rule]:
    pb = k.playbooks
    agents_max = k.row("playbook_h5_agents_max")
    return [
        # H.1 is a migration: it needs someone on Ollama today and a plan that moves them to a
        # continuous-batching engine
        Rule("playbook.h1-move-off-ollama", pb["H.1"].source, "playbook",
             lambda m: plan(m) & (m.current_slots == 1) & (m.continuous == 1),
             lambda f: (f"you serve with {f.current_backend} today (fixed slots) and this plan runs {f.backend}, which "
                        f"batches every running sequence into each step (N={f.seqs}): {pb['H.1'].title}"),
             value="H.1"),
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
        # H.5 walks N = 1, 2, 4, 8 agents on a single GPU: a closed loop with no think time
        Rule("playbook.h5-agents", f"{pb['H.5'].source}; {agents_max.source}", "playbook",
             lambda m: plan(m) & (m.mode == "concurrent") & (m.think_time_s == 0) & (m.users >= 2)
             & (m.users <= agents_max.value) & (m.gpus == 1),
             lambda f: f"{f.users} agents back to back on one GPU ({f.backend}): {pb['H.5'].title}",
             value="H.5"),
        Rule("playbook.batch-throughput", "SERVING.md (offline batch: throughput, not TTFT, is the target)", "note",
             lambda m: plan(m) & (m.mode == "batch"),
             lambda f: (f"offline batch: throughput is the target, not the first token; keep more requests "
                        f"queued than the {f.seqs} {f.backend} runs at once (vLLM: LLM.generate() over the whole "
                        f"list) so every step stays full")),
    ]


def candidates_rules(k) -> list[Rule]:
    return []
