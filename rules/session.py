"""The durable-rules wrapper: build rulesets once, run one consultation per session id.

durable-rules swallows exceptions raised inside actions and keeps ruleset names
process-global, so: every action is wrapped and records its error for the
consultation, which then fails loudly; rulesets are built once per knowledge
object; each consultation gets a fresh sid whose state is deleted afterwards.

durable.lang's default host also runs two background threads that dispatch every
ruleset every 0.2 s; they raced our synchronous consultations (rules silently not
firing for part of the facts, "error code: 307", segfaults). We install a host
without them, and check that every fact reached the catch-all rule, so an
incomplete consultation is an error instead of a quietly different answer.
"""

from __future__ import annotations

import itertools
import math
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from advisor.errors import AdvisorError
from advisor.rules.base import Conclusion, Rule, Trace

# feasible: hard rejections; candidates: gates and penalties on what survived; plan: the winner
STAGES = ("feasible", "candidates", "plan")
_LOCK = threading.Lock()
_BUILT: dict[int, tuple[object, dict[str, str], dict[str, list[Rule]]]] = {}
_LIVE: dict[str, Trace] = {}  # sid -> the running consultation's trace
_COUNTER = itertools.count()


class RuleError(AdvisorError):
    """A rule failed while it ran; its name and error are in the message."""

    exit_code = 5


def rules_for(knowledge, stage: str) -> list[Rule]:
    from advisor.rules import advice, backend, context, plausibility, playbooks, quality, quantization, scaling, slo

    if stage in ("feasible", "candidates"):
        out: list[Rule] = []
        for mod in (quantization, backend, context, slo, scaling, quality):
            out += mod.candidates_rules(knowledge)
        # Rejections run first, on every candidate; gates and penalties only on the survivors:
        # durable's cost is per firing, and where most candidates cannot run (a small card) the
        # gates they would also break are most of the firings.
        return _weighted(knowledge, [r for r in out if (r.effect == "reject") == (stage == "feasible")])
    out = []
    for mod in (advice, quantization, backend, context, slo, scaling, quality, playbooks, plausibility):
        out += mod.plan_rules(knowledge)
    return _weighted(knowledge, out)


def _weighted(knowledge, rules: list[Rule]) -> list[Rule]:
    """A penalty's weight is data: thresholds row weight.<rule name>, with its source."""
    for r in rules:
        if r.effect == "penalty":
            r.weight = knowledge.value(f"weight.{r.name}")
    return rules


# durable-rules 2.0.28's C parser segfaults on JSON numbers in exponent form without a
# decimal point (1e-05, 1e+16) and on Infinity/NaN: every number that enters the engine
# passes here. Python writes floats in exponent form below 1e-4 and from 1e16 up; no rule
# compares at either end, so magnitudes are held inside [1e-4, 1e15]. Integers past 2**53
# lose exactness in the C engine's doubles and are held there too.
_TINY, _HUGE, _INT_MAX = 1e-4, 1e15, 2 ** 53


def engine_safe(fact: dict) -> dict:
    """A copy of the fact that durable-rules can parse; a non-finite number is a RuleError."""
    out: dict[str, Any] = {}
    for key, val in fact.items():
        kind = type(val)
        if kind is float:
            if not math.isfinite(val):
                raise RuleError(f"rules engine: fact field {key!r} is {val!r}, not a finite number")
            mag = abs(val)
            out[key] = val if _TINY <= mag <= _HUGE else (0.0 if mag < _TINY else math.copysign(_HUGE, val))
        elif kind is int:
            out[key] = val if -_INT_MAX <= val <= _INT_MAX else max(-_INT_MAX, min(_INT_MAX, val))
        elif kind is bool:
            out[key] = int(val)
        elif isinstance(val, float):  # a float subclass (numpy's): as a float
            out.update(engine_safe({key: float(val)}))
        elif isinstance(val, int) and not isinstance(val, bool):
            out.update(engine_safe({key: int(val)}))
        else:
            out[key] = val
    return out


def _action(rule: Rule, joined: bool):
    def act(c):
        sid = None
        try:
            # one fact (c.m), or a join: the conclusion belongs to the last fact joined (the plan)
            f = c if joined else c.m
            anchor = getattr(c, rule.joins[-1]) if joined else c.m
            sid = anchor.sid
            trace = _LIVE[sid]
            trace.conclusions.append(Conclusion(
                rule=rule.name, source=rule.source_from(f) if rule.source_from else rule.source,
                effect=rule.effect, because=rule.because(f), fact_id=str(anchor.id).split(":", 1)[1],
                weight=rule.weight, value=rule.value, sets=rule.sets, kind=rule.kind,
            ))
            if rule.asserts is not None:  # a conclusion other rules join on
                new = rule.asserts(f)
                c.assert_fact(engine_safe({**new, "sid": sid, "id": f"{sid}:{rule.name}:{len(trace.conclusions)}"}))
        except Exception as e:  # durable-rules would swallow it: record it for the consultation
            if sid in _LIVE:
                _LIVE[sid].errors.append(f"rule {rule.name} ({rule.source}) failed: {e.__class__.__name__}: {e}")
    return act


def _seen(c) -> None:
    try:
        _LIVE[c.m.sid].seen.add(str(c.m.id))
    except Exception:  # a fact of a finished consultation: nothing to record
        pass


def _install_quiet_host() -> None:
    """durable.lang's default Host starts two daemon threads that dispatch every ruleset
    every 0.2 s. They race the synchronous consultation on the same C state: some runs
    stopped firing half-way without an error (a quarter of the conclusions missing),
    others failed with error 307 or segfaulted. We never use timers or async actions, so
    the host here does no background dispatch at all."""
    from durable import engine, lang

    if getattr(lang._main_host, "advisor_quiet", False):
        return

    class QuietHost(engine.Host):
        advisor_quiet = True

        def _run(self):  # no dispatch threads: every action runs inside assert_facts
            pass

    # Called before the first of our rulesets is registered, so replacing the host loses nothing of ours.
    lang._main_host = QuietHost()


def _build(knowledge) -> dict[str, str]:
    from durable.lang import m, ruleset, when_all

    _install_quiet_host()
    names: dict[str, str] = {}
    all_rules: dict[str, list[Rule]] = {}
    for stage in STAGES:
        name = f"advisor_{stage}_{next(_COUNTER)}"
        rules = rules_for(knowledge, stage)
        with ruleset(name):
            for rule in rules:
                if rule.joins:
                    when_all(*rule.when(m))(_action(rule, True))
                else:
                    when_all(rule.when(m))(_action(rule, False))
            # Every fact reaches this rule: it keeps durable from raising MessageNotHandled for a
            # candidate nothing objects to, and proves each fact was evaluated.
            when_all(+m.kind)(_seen)
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


def consult(knowledge, stage: str, facts: Sequence[BaseModel | dict]) -> Trace:
    """Assert the facts in a fresh session, collect the conclusions, delete the state."""
    from durable.lang import assert_facts, delete_state

    name = ruleset_names(knowledge)[stage]
    sid = uuid.uuid4().hex
    trace = Trace()
    _LIVE[sid] = trace
    # durable-rules identifies a fact by its `id` across sessions: ids reused by a later
    # consultation were silently skipped (rules never fired on them), so every posted id
    # is made unique with the session id; conclusions map back to the caller's ids.
    posted = [engine_safe({**_as_dict(f), "sid": sid, "id": f"{sid}:{_as_dict(f)['id']}"}) for f in facts]
    try:
        if posted:
            assert_facts(name, posted)
            delete_state(name, sid)
    except Exception as e:
        raise RuleError(f"rules engine ({stage}): {e.__class__.__name__}: {e}") from None
    finally:
        _LIVE.pop(sid, None)
    missing = {p["id"] for p in posted} - trace.seen
    if missing:
        raise RuleError(f"rules engine ({stage}): only {len(posted) - len(missing)} of {len(posted)} facts were evaluated")
    if trace.errors:
        raise RuleError(trace.errors[0])
    return trace


def consult_candidates(knowledge, facts: Sequence[BaseModel | dict]) -> Trace:
    """Both candidate stages: rejections for all, then gates and penalties for the rest."""
    first = consult(knowledge, "feasible", facts)
    rejected = {c.fact_id for c in first.conclusions}
    second = consult(knowledge, "candidates", [f for f in facts if str(_as_dict(f)["id"]) not in rejected])
    return Trace(conclusions=first.conclusions + second.conclusions, seen=first.seen)


def _as_dict(fact: BaseModel | dict) -> dict:
    """A typed fact (rules/facts.py) or a plain dict, as the engine's JSON object."""
    return fact.model_dump() if isinstance(fact, BaseModel) else fact
