"""What the winner's verdicts mean for the user: chained on the candidate stage's conclusions.

The candidate stage's gates and penalties on the winner are asserted again as `verdict`
facts; these rules join each one with the plan fact, so a broken gate becomes the warning
the user reads (and the constraint that forced it is named), inside the engine rather than
in Python.
"""

from __future__ import annotations

from advisor.rules.base import Rule


def candidates_rules(k) -> list[Rule]:
    return []


def plan_rules(k) -> list[Rule]:
    from durable.lang import c

    def gate(m):
        # a workload's default target missed is said by rules/slo.py's slo.default-target-missed
        return c.v << ((m.kind == "verdict") & (m.effect == "gate") & (m.rule_kind != "target"))

    def plan(m, tied: int):
        return c.p << ((m.kind == "plan") & (m.tied == tied))

    verdict_source = lambda ctx: ctx.v.source  # noqa: E731
    return [
        Rule("advice.gate-broken", "advisor ranking: the best candidate breaks a gate only when none passes",
             "warn", lambda m: (gate(m), plan(m, 0)),
             lambda ctx: f"no candidate passes every check; this one breaks {ctx.v.rule}: {ctx.v.because}",
             joins=("v", "p"), source_from=verdict_source),
        Rule("advice.constraint-breaks-gate", "answers: constraints", "warn",
             lambda m: (gate(m), plan(m, 1)),
             lambda ctx: f"your constraint ({ctx.p.constraints}) breaks {ctx.v.rule}: {ctx.v.because}",
             joins=("v", "p"), source_from=verdict_source),
        Rule("advice.constraint-against-preference", "answers: constraints", "warn",
             lambda m: (c.v << ((m.kind == "verdict") & (m.effect == "penalty") & (m.weight > 0)), plan(m, 1)),
             lambda ctx: f"your constraint ({ctx.p.constraints}) goes against {ctx.v.rule}: {ctx.v.because}",
             joins=("v", "p"), source_from=verdict_source),
    ]
