"""SLO checks: TTFT against the user's target and TR127's bands; p95 latency; decode rate."""

from __future__ import annotations

from advisor.rules.base import Rule


def candidates_rules(k) -> list[Rule]:
    bad = k.row("ttft_unacceptable_ms")
    cand = lambda m: m.kind == "cand"  # noqa: E731
    return [
        Rule("slo.ttft", "answers: slo.ttft_ms", "gate",
             lambda m: cand(m) & (m.ttft_n_ms > m.slo_ttft),
             lambda f: f"predicted TTFT {f.ttft_n_ms:,.0f} ms at N={f.n} misses the {f.slo_ttft:,.0f} ms target",
             kind="performance"),
        Rule("slo.ttft-unacceptable", bad.source, "gate",
             lambda m: cand(m) & (m.ttft_n_ms > bad.value),
             lambda f: f"predicted TTFT {f.ttft_n_ms:,.0f} ms is in the unacceptable band (> {bad.value:,.0f} ms)",
             kind="performance"),
        Rule("slo.p95-latency", "answers: slo.p95_latency_s", "gate",
             lambda m: cand(m) & (m.p95_s > m.slo_p95),
             lambda f: (f"predicted p95 latency {f.p95_s:.1f} s (prefill of {f.n} prompts + "
                        f"{f.output:,} tokens at {f.decode_pu:.1f} tok/s) misses the {f.slo_p95:g} s target"),
             kind="performance"),
        Rule("slo.decode-rate", "answers: slo.min_decode_tok_s", "gate",
             lambda m: cand(m) & (m.decode_pu < m.slo_decode),
             lambda f: f"predicted {f.decode_pu:.1f} tok/s per user is below the {f.slo_decode:g} tok/s target",
             kind="performance"),
    ]


def plan_rules(k) -> list[Rule]:
    ex, good, poor, bad = (k.row(f"ttft_{b}_ms") for b in ("excellent", "good", "poor", "unacceptable"))
    plan = lambda m: m.kind == "plan"  # noqa: E731
    band = lambda name: (lambda f: f"predicted TTFT {f.ttft_n_ms:,.0f} ms at N={f.n} is {name}")  # noqa: E731
    return [
        Rule("slo.ttft-band-excellent", ex.source, "note",
             lambda m: plan(m) & (m.ttft_n_ms < ex.value), band(f"excellent (< {ex.value:,.0f} ms)")),
        Rule("slo.ttft-band-good", good.source, "note",
             lambda m: plan(m) & (m.ttft_n_ms >= ex.value) & (m.ttft_n_ms < good.value),
             band(f"good (< {good.value:,.0f} ms)")),
        Rule("slo.ttft-band-poor", poor.source, "warn",
             lambda m: plan(m) & (m.ttft_n_ms >= good.value) & (m.ttft_n_ms < poor.value),
             band(f"poor ({good.value:,.0f}-{poor.value:,.0f} ms)")),
        Rule("slo.ttft-band-bad", bad.source, "warn",
             lambda m: plan(m) & (m.ttft_n_ms >= poor.value),
             band(f"bad (>= {poor.value:,.0f} ms; > {bad.value:,.0f} ms is unacceptable)")),
    ]
