"""SLO checks: TTFT against the user's target and TR127's bands; p95 latency; decode rate."""

from __future__ import annotations

from advisor.rules.base import Rule, plan


def candidates_rules(k) -> list[Rule]:
    """Interactive targets, judged on the point estimate: a target it misses fails; one it meets but the
    band's far edge misses is 'at risk' (plan stage). An offline batch has its deadline instead."""
    bad = k.row("ttft_unacceptable_ms")
    # a queue that never drains has no p95 to compare: it breaks slo.saturated instead
    cand = _live
    return [
        Rule("slo.saturated", "the load model (advisor/load/schedulers.py: arrivals past a replica's capacity)", "gate",
             lambda m: (m.kind == "cand") & (m.mode == "rate") & (m.saturated == 1),
             lambda f: (f"{f.rate_rps:.3g} requests/s on each replica is more than it completes "
                        f"({f.capacity_rps:.3g}/s): the queue never drains, so no TTFT or latency holds; "
                        f"{f.replicas_why}"),
             sets=("replicas",), kind="performance"),
        # Targets are judged on the point estimate: a candidate whose point estimate misses fails, and a
        # wide band never rescues it (uncertainty is a risk, never an advantage). A target the user typed
        # is hard (performance); the workload's default, which the user left blank, only ranks (target).
        _target("slo.ttft", "answers: slo.ttft_ms", default=False),
        _target("slo.ttft-default-target", "knowledge/workloads.toml default_ttft_ms", default=True),
        Rule("slo.ttft-unacceptable", bad.source, "gate",
             lambda m: cand(m) & (m.ttft_p95_ms > bad.value),
             lambda f: f"predicted p95 TTFT {f.ttft_p95_ms:,.0f} ms is in the unacceptable band (> {bad.value:,.0f} ms)",
             kind="performance"),
        _target("slo.p95-latency", "answers: slo.p95_latency_s", default=False),
        _target("slo.p95-default-target", "knowledge/workloads.toml default_p95_latency_s", default=True),
        Rule("slo.decode-rate", "answers: slo.min_decode_tok_s", "gate",
             lambda m: cand(m) & (m.decode_per_user < m.slo_decode),
             lambda f: f"predicted {f.decode_per_user:.1f} tok/s per user is below the {f.slo_decode:g} tok/s target",
             kind="performance"),
    ]


def _live(m):
    """A candidate with interactive figures that settle (not a batch, not a queue that never drains)."""
    return (m.kind == "cand") & (m.mode != "batch") & (m.saturated == 0)


def _target(name: str, source: str, default: bool) -> Rule:
    """A TTFT or p95 target judged on the point estimate: one the user typed is hard (performance);
    the workload's default, left blank by the user, only ranks (target)."""
    d = int(default)
    whose = "default target for {w}" if default else "target"
    if name.startswith("slo.ttft"):
        return Rule(name, source, "gate",
                    lambda m: _live(m) & (m.slo_ttft_default == d) & (m.ttft_p95_ms > m.slo_ttft),
                    lambda f: (f"predicted p95 TTFT {f.ttft_p95_ms:,.0f} ms with {f.seqs} "
                               f"{'in flight' if f.mode == 'concurrent' else 'arriving'} misses the {f.slo_ttft:,.0f} ms "
                               + whose.format(w=f.workload)),
                    kind="target" if default else "performance")
    return Rule(name, source, "gate",
                lambda m: _live(m) & (m.slo_p95_default == d) & (m.e2e_p95_s > m.slo_p95),
                lambda f: (f"predicted p95 latency {f.e2e_p95_s:.1f} s (TTFT + {f.output:,} tokens at "
                           f"{f.decode_per_user:.1f} tok/s) misses the {f.slo_p95:g} s " + whose.format(w=f.workload)),
                kind="target" if default else "performance")


def plan_rules(k) -> list[Rule]:
    ex, good, poor, bad = (k.row(f"ttft_{b}_ms") for b in ("excellent", "good", "poor", "unacceptable"))
    band = lambda name: (lambda f: f"predicted p95 TTFT {f.ttft_p95_ms:,.0f} ms at N={f.seqs} is {name}")  # noqa: E731
    live = lambda m: plan(m) & (m.mode != "batch") & (m.saturated == 0)  # noqa: E731
    return [
        Rule("slo.ttft-at-risk", "calibration bands (knowledge/calibration.toml band.*)", "warn",
             lambda m: live(m) & (m.ttft_p95_ms <= m.slo_ttft) & (m.ttft_hi_ms > m.slo_ttft),
             lambda f: (f"at risk: predicted p95 TTFT {f.ttft_p95_ms:,.0f} ms meets the {f.slo_ttft:,.0f} ms target, "
                        f"but the prediction's band (+{f.band_pct}%: {f.ttft_hi_ms:,.0f} ms) misses it; measure it "
                        f"(advisor probe) before relying on it")),
        Rule("slo.p95-at-risk", "calibration bands (knowledge/calibration.toml band.*)", "warn",
             lambda m: live(m) & (m.e2e_p95_s <= m.slo_p95) & (m.e2e_p95_hi_s > m.slo_p95),
             lambda f: (f"at risk: predicted p95 latency {f.e2e_p95_s:.1f} s meets the {f.slo_p95:g} s target, but the "
                        f"band's far edge ({f.e2e_p95_hi_s:.1f} s) misses it; measure it before relying on it")),
        Rule("slo.default-target-missed", "knowledge/workloads.toml (the workload's default targets)", "warn",
             lambda m: live(m) & (((m.slo_ttft_default == 1) & (m.ttft_p95_ms > m.slo_ttft))
                                  | ((m.slo_p95_default == 1) & (m.e2e_p95_s > m.slo_p95))),
             lambda f: (f"no candidate here meets {f.workload}'s default targets (TTFT {f.slo_ttft:,.0f} ms, p95 "
                        f"{f.slo_p95:g} s; you typed none): this plan comes closest at TTFT {f.ttft_p95_ms:,.0f} ms, "
                        f"p95 {f.e2e_p95_s:.1f} s; type --ttft-ms / --p95-latency-s to make a target binding")),
        Rule("slo.quality-trade-gpus", "knowledge/ranking.toml (replicas short rank before quality)", "warn",
             lambda m: plan(m) & (m.trade_quality > m.quality) & (m.trade_gpus > 0),
             lambda f: (f"a better model needs more GPUs than the {f.gpus} given: {f.trade} (MMLU {f.trade_quality:.1f} "
                        f"vs {f.quality:.1f}) needs {f.trade_gpus} GPUs for this load ({f.trade_why})")),
        Rule("slo.quality-trade", "knowledge/ranking.toml (default targets rank before quality)", "warn",
             lambda m: plan(m) & (m.trade_quality > m.quality) & (m.trade_gpus == 0),
             lambda f: (f"a better model misses only {f.workload}'s default targets: {f.trade} (MMLU {f.trade_quality:.1f} "
                        f"vs {f.quality:.1f}) at TTFT p95 {f.trade_ttft_ms:,.0f} ms, p95 latency {f.trade_e2e_s:.1f} s; "
                        f"if that is fast enough, type those targets (--ttft-ms, --p95-latency-s) and it is the plan")),
        Rule("slo.burst", "DESIGN/SERVING: a burst is not steady state", "note",
             lambda m: live(m) & (m.seqs > 1),
             lambda f: (f"burst: if all {f.seqs} prompts arrived in the same instant, the last would wait "
                        f"{f.burst_ttft_ms:,.0f} ms for its first token (prefills back to back); the TTFT above is "
                        f"the steady state")),
        Rule("slo.ttft-band-excellent", ex.source, "note",
             lambda m: live(m) & (m.ttft_p95_ms < ex.value), band(f"excellent (< {ex.value:,.0f} ms)")),
        Rule("slo.ttft-band-good", good.source, "note",
             lambda m: live(m) & (m.ttft_p95_ms >= ex.value) & (m.ttft_p95_ms < good.value),
             band(f"good (< {good.value:,.0f} ms)")),
        Rule("slo.ttft-band-poor", poor.source, "warn",
             lambda m: live(m) & (m.ttft_p95_ms >= good.value) & (m.ttft_p95_ms < poor.value),
             band(f"poor ({good.value:,.0f}-{poor.value:,.0f} ms)")),
        Rule("slo.ttft-band-bad", bad.source, "warn",
             lambda m: live(m) & (m.ttft_p95_ms >= poor.value),
             band(f"bad (>= {poor.value:,.0f} ms; > {bad.value:,.0f} ms is unacceptable)")),
    ]
