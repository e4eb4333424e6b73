"""The durable-rules wrapper: build rulesets once, run one consultation per session id.

durable-rules swallows exceptions raised inside actions and keeps ruleset names
process-global, so: every action is wrapped and records its error for the
consultation, which then fails loudly; rulesets are built once per knowledge
object; each consultation gets a fresh sid that no other consultation ever sees,
so nothing leaks from one to the next.

We do not call `delete_state`: in durable-rules 2.0.28 deleting a state that held a
few hundred facts corrupts the C engine's pools — later consultations fail with
"error code: 307" (ERR_NODE_DELETED) or segfault (reproduced by
tests/rules/test_engine.py::test_many_consultations_in_one_process). Retracting
the facts instead is stable but costs as much as asserting them, and buys nothing
that a fresh sid does not already give.
"""

from __future__ import annotations

import itertools
import threading
import uuid

from advisor.errors import AdvisorError
from rules.base import Conclusion, Rule, Trace

STAGES = ("candidates", "plan")
_LOCK = threading.Lock()
_BUILT: dict[int, tuple[object, dict[str, str], dict[str, list[Rule]]]] = {}
_LIVE: dict[str, Trace] = {}  # sid -> the running consultation's trace
_COUNTER = itertools.count()


class RuleError(AdvisorError):
    """A rule failed while it ran; its name and error are in the message."""

    exit_code = 5


def rules_for(knowledge, stage: str) -> list[Rule]:
    from rules import backend, context, playbooks, plausibility, quality, quantization, scaling, slo

    if stage == "candidates":
        modules = (quantization, backend, context, slo, scaling, quality)
    else:  # the chosen plan: explanations, playbooks, bands, plausibility
        modules = (quantization, backend, context, slo, scaling, quality, playbooks, plausibility)
    out: list[Rule] = []
    for mod in modules:
        out += getattr(mod, f"{stage}_rules")(knowledge)
    return out


def _action(rule: Rule):
    def act(c):
        sid = None
        try:
            sid = c.m.sid
            trace = _LIVE[sid]
            trace.conclusions.append(Conclusion(
                rule=rule.name, source=rule.source, effect=rule.effect, because=rule.because(c.m),
                fact_id=str(c.m.id), weight=rule.weight, value=rule.value, sets=rule.sets,
            ))
        except Exception as e:  # durable-rules would swallow it: record it for the consultation
            if sid in _LIVE:
                _LIVE[sid].errors.append(f"rule {rule.name} ({rule.source}) failed: {e.__class__.__name__}: {e}")
    return act


def _build(knowledge) -> dict[str, str]:
    from durable.lang import m, ruleset, when_all

    names: dict[str, str] = {}
    all_rules: dict[str, list[Rule]] = {}
    for stage in STAGES:
        name = f"advisor_{stage}_{next(_COUNTER)}"
        rules = rules_for(knowledge, stage)
        with ruleset(name):
            for rule in rules:
                when_all(rule.when(m))(_action(rule))
            # Facts that match no rule are normal (a candidate nothing objects to).
            when_all(+m.kind)(lambda c: None)
        names[stage] = name
        all_rules[stage] = rules
    _BUILT[id(knowledge)] = (knowledge, names, all_rules)  # keep knowledge alive so its id is not reused
    return names


def ruleset_names(knowledge) -> dict[str, str]:
    with _LOCK:
        hit = _BUILT.get(id(knowledge))
        if hit is not None and hit[0] is knowledge:
            return hit[1]
        return _build(knowledge)


def consult(knowledge, stage: str, facts: list[dict]) -> Trace:
    """Assert the facts in a fresh session, collect the conclusions, delete the state."""
    from durable.lang import assert_facts

    name = ruleset_names(knowledge)[stage]
    sid = uuid.uuid4().hex
    trace = Trace()
    _LIVE[sid] = trace
    posted = [{**f, "sid": sid} for f in facts]
    try:
        if posted:
            assert_facts(name, posted)
    except Exception as e:
        raise RuleError(f"rules engine ({stage}): {e.__class__.__name__}: {e}") from None
    finally:
        _LIVE.pop(sid, None)
    if trace.errors:
        raise RuleError(trace.errors[0])
    return trace
