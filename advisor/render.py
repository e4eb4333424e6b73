"""Recommendation -> JSON, TOML or text (80 columns). Renderers format; they never decide."""

from __future__ import annotations

import json
import math
import textwrap

from advisor.answers import to_toml
from advisor.domain import Answers, Plan, Recommendation

WIDTH = 80


def fig(x: float | None, decimals: int, grouped: bool = True) -> str:
    """A figure for people: `decimals` places, but never a bare 0 for a value that is not zero
    (two significant digits instead), and never 'nan' or 'inf'."""
    if x is None:
        return "n/a"
    if not math.isfinite(x):
        return "not a number"
    if x != 0 and round(x, decimals) == 0:
        return f"{x:.2g}"
    return f"{x:,.{decimals}f}" if grouped else f"{x:.{decimals}f}"


def _non_finite(v, path: str = "") -> list[str]:
    """Dotted paths of every NaN or infinity in a dumped recommendation."""
    if isinstance(v, float):
        return [] if math.isfinite(v) else [path]
    if isinstance(v, dict):
        return [p for k, x in v.items() for p in _non_finite(x, f"{path}.{k}" if path else str(k))]
    if isinstance(v, list):
        return [p for i, x in enumerate(v) for p in _non_finite(x, f"{path}[{i}]")]
    return []


def nulled(v):
    """The same data with every NaN or infinity replaced by None (JSON null)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: nulled(x) for k, x in v.items()}
    if isinstance(v, list):
        return [nulled(x) for x in v]
    return v


def _not_finite_warning(paths: list[str], how: str) -> str:
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return f"{shown} could not be computed (NaN or infinity, from inputs out of range); {how}"


def _dump(rec: Recommendation, how: str) -> dict:
    """The recommendation as plain data, with no NaN or infinity left in it (each one warned about)."""
    data = rec.model_dump(mode="json")
    bad = _non_finite(data)
    if bad:
        data = nulled(data)
        data["warnings"] = [*data.get("warnings", []), _not_finite_warning(bad, how)]
    return data


def to_json(rec: Recommendation) -> str:
    # allow_nan=False: bare NaN is not JSON; _dump has already replaced any with null
    return json.dumps(_dump(rec, "written as null"), indent=2, ensure_ascii=False, allow_nan=False)


def to_toml_text(rec: Recommendation) -> str:
    data = _dump(rec, "left out")
    return "# advisor recommendation\n" + to_toml(_drop_none(data))


def _drop_none(v):
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_none(x) for x in v if x is not None]
    return v


def _wrap(text: str, indent: str = "  ", first: str | None = None, width: int = WIDTH) -> list[str]:
    return textwrap.wrap(text, width, initial_indent=first if first is not None else indent,
                         subsequent_indent=indent, break_on_hyphens=False) or [indent.rstrip()]


def headline(p: Plan) -> str:
    extra = []
    if p.tensor_parallel > 1:
        extra.append(f"TP={p.tensor_parallel}")
    if p.replicas > 1:
        extra.append(f"{p.replicas} replicas")
    tail = f" ({', '.join(extra)})" if extra else ""
    return (f"{p.model} on {p.backend} at {p.quantization}, N={p.concurrency}, "
            f"context up to {p.max_context_tokens:,} tokens{tail}")


def batch_figures(p: Plan, answers: Answers | None = None) -> tuple[float | None, float | None, float | None]:
    """An offline batch's (hours to finish it, requests/s, generated tokens/s) on the plan's replicas
    together: the Plan's own figures, else worked out from the answers (its volume) and one
    replica's capacity."""
    ld = p.predicted.load
    if ld is None or ld.mode != "batch":
        return None, None, None
    if ld.batch_requests_per_s is not None:
        return ld.batch_hours, ld.batch_requests_per_s, ld.batch_tokens_per_s
    done = ld.capacity_rps * max(p.replicas, 1)
    hours = (answers.requests_per_day / done / 3600 if answers is not None and done > 0
             and answers.requests_per_day > 0 else None)
    tokens = done * answers.output_tokens if answers is not None and answers.output_tokens else None
    return hours, done, tokens


def figure_rows(p: Plan, answers: Answers | None = None) -> list[tuple[str, str, str]]:
    """(label, value, key) of each predicted figure, the value with its band: the one list the
    text output and the TUI show. An offline batch shows batch figures (the whole batch's time,
    requests/s, tokens/s), not an interactive TTFT or latency."""
    pr = p.predicted
    ld = pr.load
    over = ld is not None and not ld.steady  # the queue never drains: no p95 settles
    if ld is not None and ld.mode == "batch":
        hours, rps, tps = batch_figures(p, answers)
        rows = [("VRAM per GPU", f"{fig(pr.vram_gb, 2)} GB", "vram_gb")]
        if hours is not None:
            rows.append(("batch done in", f"{fig(hours, 1)} h", "total_tok_s"))
        rows += [("requests/s", f"{fig(rps, 2)} req/s", "total_tok_s"),
                 ("tokens/s", f"{fig(tps if tps is not None else pr.total_tok_s, 0)} tok/s", "total_tok_s"),
                 ("decode/sequence", f"{fig(pr.decode_tok_s_per_user, 1)} tok/s", "decode_tok_s_per_user")]
    else:
        rows = [
            ("VRAM per GPU", f"{fig(pr.vram_gb, 2)} GB", "vram_gb"),
            ("TTFT p95", "saturated" if over or pr.ttft_ms is None else f"{fig(pr.ttft_ms, 0)} ms", "ttft_ms"),
            ("decode per user", f"{fig(pr.decode_tok_s_per_user, 1)} tok/s", "decode_tok_s_per_user"),
            ("decode total", f"{fig(pr.total_tok_s, 1)} tok/s", "total_tok_s"),
        ]
        if pr.p95_latency_s is not None or over:
            rows.append(("p95 latency", "saturated" if over else f"{fig(pr.p95_latency_s, 2)} s", "p95_latency_s"))
    return [(label, value + (f" ±{pr.bands[key]:.0%}" if pr.bands.get(key) and value != "saturated" else ""), key)
            for label, value, key in rows]


def predicted_lines(p: Plan, answers: Answers | None = None) -> list[str]:
    pr = p.predicted
    out = []
    for label, value, key in figure_rows(p, answers):
        origin = pr.origins.get(key)
        tag = f"[{origin.origin}{', assumed' if origin.assumed else ''}]" if origin else ""
        out.append(f"  {label:<18}{value:>20}  {tag}")
    return out + load_lines(p, answers=answers)


def load_lines(p: Plan, width: int = WIDTH, answers: Answers | None = None) -> list[str]:
    """The load the figures describe, named so a burst is never read as the steady state."""
    ld = p.predicted.load
    if ld is None:
        return []
    reps = max(p.replicas, 1)
    if ld.mode == "batch":
        hours, rps, _ = batch_figures(p, answers)
        volume = ld.batch_requests if ld.batch_requests is not None else (answers.requests_per_day if answers else None)
        deadline = ld.deadline_hours if ld.deadline_hours is not None else (answers.deadline_hours if answers else None)
        lines = [f"Load: offline batch, {ld.sequences} sequences at once on each of {reps} replica(s); together they "
                 f"complete {fig(rps, 2)} requests/s ({fig(ld.rate_rps, 2)}/s needed per the deadline)"]
        if hours is not None and volume:
            lines.append(f"Batch: {volume:,} requests finish in {fig(hours, 1)} h"
                         + (f" of the {deadline:g} h deadline" if deadline else ""))
    else:
        users = ld.users if ld.users is not None else (answers.concurrency if answers is not None else ld.sequences)
        share = f"; {ld.sequences} sequences at once on each of {reps} replicas" if reps > 1 else ""
        high = (f"; the engine runs up to {ld.sequences} at once (the in-flight count's p99, within the KV pool)"
                if ld.mode == "rate" or ld.think_time_s else "")
        if ld.mode == "concurrent" and ld.think_time_s:
            what = (f"{users} user{'s' if users != 1 else ''} pausing {fig(ld.think_time_s, 1)} s between requests "
                    f"({fig(ld.rate_rps, 2)} requests/s, {fig(ld.in_flight or 0, 1)} in flight on average"
                    f"{' per replica' if reps > 1 else ''})")
        elif ld.mode == "concurrent":
            what = f"{users} agent{'s' if users != 1 else ''} back to back ({fig(ld.rate_rps, 2)} requests/s" \
                   f"{' per replica' if reps > 1 else ''})"
        else:
            what = f"{fig(ld.rate_rps, 2)} requests/s arriving" + (" at each replica" if reps > 1 else "")
        lines = [f"Load: steady state with {what}{share}; TTFT p95 {fig(ld.ttft_p95_ms, 0)} ms, latency p95 "
                 f"{fig(ld.e2e_p95_s, 2)} s{high}" if ld.steady else
                 f"Load: {what} is more than one replica completes: the queue never drains"]
        if ld.sequences > 1:
            lines.append(f"Burst: all {ld.sequences} prompts in the same instant: the last waits "
                         f"{fig(ld.burst_last_ttft_ms, 0)} ms for its first token")
        cap = f"One replica: saturates at {fig(ld.capacity_rps, 2)} requests/s"
        if ld.max_rate_rps is not None:
            cap += (f"; holds {fig(ld.max_rate_rps, 2)} requests/s within the SLO" if ld.max_rate_rps > 0
                    else "; no arrival rate meets the SLO")
        lines.append(cap)
    out = []
    for line in lines:
        out += _wrap(line, indent="    ", first="  ", width=width)
    return out


def to_text(rec: Recommendation) -> str:
    out: list[str] = []
    hw = rec.hardware
    if hw is not None:
        vram_text = fig(hw.vram_gb, 1)
        if vram_text.endswith(".0"):
            vram_text = vram_text[:-2]
        out += _wrap(f"Hardware: {hw.count} x {hw.gpu} ({vram_text} GB, {hw.os}) from {hw.source}", first="")
    p = rec.recommendation
    if p is None:
        out += _wrap(f"No recommendation: {rec.no_plan_because or 'nothing can run here for these answers'}.",
                     first="")
    else:
        out += _wrap("Recommendation: " + headline(p), first="")
        out.append("")
        out.append("Predicted (origin in brackets; sources with --format json):")
        out += predicted_lines(p, rec.answers)
    warnings = list(rec.warnings)
    bad = _non_finite(rec.model_dump(mode="json"))
    if bad:
        warnings.append(_not_finite_warning(bad, "shown as 'not a number'"))
    if warnings:
        out += ["", "Warnings:"]
        for w in warnings:
            out += _wrap(w, indent="    ", first="  ! ")
    if rec.alternatives:
        out += ["", "Alternatives (why each lost):"]
        for i, a in enumerate(rec.alternatives, 1):
            out += _wrap(f"{a.model} on {a.backend} at {a.quantization}", first=f"  {i}. ", indent="     ")
            for why in a.lost_because[:3]:
                out += _wrap(why, indent="       ", first="     - ")
    if rec.playbooks:
        out += ["", "Playbooks:"]
        out += [f"  {pb.id}  {pb.title}" for pb in rec.playbooks]
    if rec.rules_fired:
        out += ["", "Rules that fired:"]
        for r in rec.rules_fired:
            out += _wrap(f"{r.rule}: {r.because} [{r.source}]", indent="    ", first="  - ")
    return "\n".join(out) + "\n"


def render(rec: Recommendation, fmt: str) -> str:
    if fmt == "json":
        return to_json(rec) + "\n"
    if fmt == "toml":
        return to_toml_text(rec)
    return to_text(rec)
