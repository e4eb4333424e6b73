"""What a rule is, and what it concludes.

A rule is a durable-rules condition over one fact plus an effect. Rule modules
return lists of `Rule`; thresholds come from the knowledge tables passed in, so a
user's own knowledge rows change the rules without touching code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Effect = Literal["reject", "gate", "penalty", "note", "warn", "playbook"]
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
    when: Callable[[Any], Any]  # m -> durable condition, e.g. lambda m: (m.kind == 'cand') & (m.n >= 4)
    because: Callable[[Any], str]  # fact -> the reason, with the facts that made it fire
    weight: float = 0.0
    value: str = ""
    sets: tuple[str, ...] = ()  # plan fields this rule decides (for exports' comments)


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


@dataclass
class Trace:
    conclusions: list[Conclusion] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # ids of the facts the catch-all rule saw

    def for_fact(self, fact_id: str) -> list[Conclusion]:
        return [c for c in self.conclusions if c.fact_id == fact_id]
