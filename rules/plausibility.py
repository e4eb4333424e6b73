"""Plausibility: a figure that beats the roofline is never used silently; probes vs tables."""

from __future__ import annotations

from advisor.rules.base import Rule


def plan_rules(k) -> list[Rule]:
    dis = k.row("probe_table_disagreement")
    fig = lambda m: m.kind == "figure"  # noqa: E731
    return [
        Rule("plausibility.roofline", "DESIGN (roofline: 2 x params x tokens / peak FLOP/s; bytes / bandwidth)", "warn",
             lambda m: fig(m) & (m.plausible == 0),
             lambda f: f"{f.what} ({f.source}) not used: {f.reason}"),
        Rule("plausibility.probe-vs-table", dis.source, "warn",
             lambda m: fig(m) & (m.table_value > 0)
             & ((m.value > m.table_value * (1 + dis.value)) | (m.value < m.table_value * (1 - dis.value))),
             lambda f: (f"{f.what}: measured {f.value:,.4g} ({f.source}) is more than {dis.value:.0%} off "
                        f"the table's {f.table_value:,.4g} ({f.table_source}); using the measurement")),
        Rule("plausibility.tr127-slope", "DESIGN (TR127's slope is a least-squares line through a quadratic curve)", "note",
             lambda m: (m.kind == "slope") & (m.table_slope > m.kv_mb * 2),
             lambda f: (f"TR127's {f.table_slope:g} MB/token for {f.model} ({f.source}) is neither KV ({f.kv_mb:g} MB/token) "
                        f"nor logits ({f.logits_mb:g} MB/token): it is a least-squares line through every point, the "
                        f"spilled one included; before the spill the curve is quadratic (about {f.n2_bytes:g} B x heads x "
                        f"n^2: attention that builds the score matrix), which is what the budget uses on that setup")),
    ]


def candidates_rules(k) -> list[Rule]:
    return []
