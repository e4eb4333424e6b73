"""Recommendation -> JSON, TOML or text (80 columns). Renderers format; they never decide."""

from __future__ import annotations

import json
import textwrap

from advisor.answers import to_toml
from advisor.domain import Plan, Recommendation

WIDTH = 80


def to_json(rec: Recommendation) -> str:
    return json.dumps(rec.model_dump(mode="json"), indent=2, ensure_ascii=False)


def to_toml_text(rec: Recommendation) -> str:
    data = rec.model_dump(mode="json")
    return "# advisor recommendation\n" + to_toml(_drop_none(data))


def _drop_none(v):
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_none(x) for x in v if x is not None]
    return v


def _wrap(text: str, indent: str = "  ", first: str | None = None) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first if first is not None else indent,
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


def predicted_lines(p: Plan) -> list[str]:
    pr = p.predicted
    rows = [
        ("VRAM per GPU", f"{pr.vram_gb:.2f} GB", "vram_gb"),
        ("TTFT", f"{pr.ttft_ms:,.0f} ms", "ttft_ms"),
        ("decode per user", f"{pr.decode_tok_s_per_user:,.1f} tok/s", "decode_tok_s_per_user"),
        ("decode total", f"{pr.total_tok_s:,.1f} tok/s", "total_tok_s"),
    ]
    if pr.p95_latency_s is not None:
        rows.append(("p95 latency", f"{pr.p95_latency_s:,.2f} s", "p95_latency_s"))
    out = []
    for label, value, key in rows:
        origin = pr.origins.get(key)
        tag = f"[{origin.origin}]" if origin else ""
        out.append(f"  {label:<16}{value:>14}  {tag}")
    return out


def to_text(rec: Recommendation) -> str:
    out: list[str] = []
    hw = rec.hardware or {}
    if hw:
        out += _wrap(f"Hardware: {hw.get('count', 1)} x {hw.get('gpu')} ({round(hw.get('vram_gb', 0), 1):g} GB, "
                     f"{hw.get('os')}) from {hw.get('source')}", first="")
    p = rec.recommendation
    if p is None:
        out += _wrap(f"No recommendation: {rec.no_plan_because or 'nothing can run here for these answers'}.",
                     first="")
    else:
        out += _wrap("Recommendation: " + headline(p), first="")
        out.append("")
        out.append("Predicted (origin in brackets; sources with --format json):")
        out += predicted_lines(p)
    if rec.warnings:
        out += ["", "Warnings:"]
        for w in rec.warnings:
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
