"""What a rule is, and what it concludes.

A rule is a durable-rules condition over one fact plus an effect. Rule modules
return lists of `Rule`; thresholds come from the knowledge tables passed in, so a
user's own knowledge rows change the rules without touching code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Effect = Literal["reject", "gate", "penalty", "note", "warn", "playbook"]
# What breaking a gate means for the ranking: breaking policy (risk tier, quality, compile
# policy) is worse than missing a performance target (SLO, VRAM, replicas).
# A "target" gate is a workload's default target the user left blank: it ranks, it never blocks.
GateKind = Literal["policy", "performance", "target", ""]
# reject:   the candidate cannot run (does not fit, unsupported) — never recommended
# gate:     breaks advice (quality, SLO, policy) — recommended only if nothing passes, with a warning
# penalty:  a soft preference; candidates are ranked by their total
# note:     recorded in the trace when the candidate wins
# warn:     (plan stage) a warning on the recommendation
# playbook: (plan stage) the playbook id in `value`


@dataclass
class Rule:
    name: str
    source: str
    effect: Effect
    # m -> durable condition, e.g. lambda m: (m.kind == 'cand') & (m.seqs >= 4); or a tuple of
    # named conditions joining several facts, e.g. (c.v << ..., c.p << ...): then `because`,
    # `asserts` and `source_from` get durable's context (c.v, c.p) instead of one fact
    when: Callable[[Any], Any]
    because: Callable[[Any], str]  # fact -> the reason, with the facts that made it fire
    weight: float = 0.0  # penalties: read from knowledge (thresholds: weight.<rule name>) at build time
    value: str = ""
    sets: tuple[str, ...] = ()  # plan fields this rule decides (for exports' comments)
    kind: GateKind = ""  # gates: policy or performance
    # a conclusion other rules join on: fact -> the new fact's fields (asserted in the same session)
    asserts: Callable[[Any], dict] | None = None
    source_from: Callable[[Any], str] | None = None  # a joined verdict's own source, when it has one
    joins: tuple[str, ...] = ()  # the names a joining rule binds, in `when`'s order; the last one owns the conclusion


@dataclass
class Conclusion:
    rule: str
    source: str
    effect: Effect
    because: str
    fact_id: str = ""
    weight: float = 0.0
    value: str = ""
    sets: tuple[str, ...] = ()
    kind: GateKind = ""


@dataclass
class Trace:
    conclusions: list[Conclusion] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # ids of the facts the catch-all rule saw

    def for_fact(self, fact_id: str) -> list[Conclusion]:
        return [c for c in self.conclusions if c.fact_id == fact_id]


def cand(m):
    """The condition "this fact is a candidate" (durable-rules condition over `m`)."""
    return m.kind == "cand"


def plan(m):
    """The condition "this fact is the chosen plan"."""
    return m.kind == "plan"
