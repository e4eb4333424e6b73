"""Quality gates per application (Appendix P.2), applied to MMLU after the quantization's loss.

A chain inside the engine: the gate-choosing rules join the ask with P.2's rows and assert the one
`gate` that applies (the risk tier's gate for high risk, else the workload's); the quality rules
join each candidate (or the plan) with that gate."""

from __future__ import annotations

from advisor.rules.base import Rule, cand, plan

P2 = "Appendix P.2 (quality gates)"


def _choose() -> list[Rule]:
    """Which P.2 gate applies: asserted as a `gate` fact the quality rules join on."""
    from durable.lang import c, none

    def gate(ctx) -> dict:
        return {"kind": "gate", "application": ctx.g.application, "min_mmlu": ctx.g.min_mmlu,
                "source": ctx.g.source}

    row = lambda m: m.kind == "gate_row"  # noqa: E731
    return [
        Rule("quality.gate-for-risk", P2, "note",
             lambda m: (c.a << ((m.kind == "ask") & (m.risk == "high")),
                        c.g << (row(m) & (m.workload == "*") & (m.risk == c.a.risk))),
             lambda ctx: f"{ctx.a.risk}-risk work: the {ctx.g.application} gate applies ({ctx.g.source})",
             joins=("a", "g"), asserts=gate, source_from=lambda ctx: ctx.g.source),
        Rule("quality.gate-for-workload", P2, "note",
             lambda m: (c.a << ((m.kind == "ask") & (m.risk != "high")),
                        c.g << (row(m) & (m.workload == c.a.workload))),
             lambda ctx: f"{ctx.a.workload}: the {ctx.g.application} gate applies ({ctx.g.source})",
             joins=("a", "g"), asserts=gate, source_from=lambda ctx: ctx.g.source),
        # high risk with no gate of its own in the table: the workload's gate still applies
        Rule("quality.gate-for-workload", P2, "note",
             lambda m: (c.a << ((m.kind == "ask") & (m.risk == "high")),
                        none(row(m) & (m.workload == "*") & (m.risk == c.a.risk)),
                        c.g << (row(m) & (m.workload == c.a.workload))),
             lambda ctx: f"{ctx.a.workload}: the {ctx.g.application} gate applies ({ctx.g.source})",
             joins=("a", "g"), asserts=gate, source_from=lambda ctx: ctx.g.source),
    ]


def candidates_rules(k) -> list[Rule]:
    from durable.lang import c

    return [
        *_choose(),
        Rule("quality.gate", "Appendix P.2 (quality gates); TR125 (quantization deltas)", "gate",
             lambda m: (c.g << ((m.kind == "gate") & (m.min_mmlu >= 0)),
                        c.c << (cand(m) & (m.mmlu >= 0) & (m.eff_mmlu < c.g.min_mmlu))),
             lambda ctx: (f"{ctx.c.model} at {ctx.c.quant}: MMLU {ctx.c.mmlu:g} - {ctx.c.mmlu - ctx.c.eff_mmlu:g} pp = "
                          f"{ctx.c.eff_mmlu:g} is below the {ctx.g.application} gate ({ctx.g.min_mmlu:g})"),
             sets=("model",), kind="policy", joins=("g", "c")),
    ]


def plan_rules(k) -> list[Rule]:
    from durable.lang import c

    def gate(m, floor: bool):
        return c.g << ((m.kind == "gate") & ((m.min_mmlu >= 0) if floor else (m.min_mmlu < 0)))

    return [
        *_choose(),
        Rule("quality.unknown", "Appendix P.2; Appendix H.4 (validate a new model)", "note",
             lambda m: (gate(m, True), c.c << (plan(m) & (m.mmlu < 0))),
             lambda ctx: (f"{ctx.c.model} has no MMLU in the catalog: the {ctx.g.application} gate is not checked; "
                          f"validate it (H.3/H.4)"), joins=("g", "c")),
        Rule("quality.pass", P2, "note",
             lambda m: (gate(m, True), c.c << (plan(m) & (m.mmlu >= 0) & (m.eff_mmlu >= c.g.min_mmlu))),
             lambda ctx: (f"{ctx.c.model} at {ctx.c.quant}: MMLU {ctx.c.eff_mmlu:g} passes the {ctx.g.application} "
                          f"gate ({ctx.g.min_mmlu:g})"),
             sets=("model",), joins=("g", "c")),
        Rule("quality.composite-only", "Appendix P.2 (composite score gates)", "note",
             lambda m: (gate(m, False), c.c << plan(m)),
             lambda ctx: (f"the {ctx.g.application} gate is a composite score the catalog lacks: not checked; "
                          f"run your own eval (H.3)"), joins=("g", "c")),
    ]
