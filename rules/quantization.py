"""Quantization gates: P.1 by risk tier, P.3 per model, never Q2_K, high risk prefers FP16."""

from __future__ import annotations

from advisor.rules.base import Rule, cand, plan

REFERENCE = ("fp16", "bf16")  # the unquantized precisions


def _reference(m):
    return (m.quant == REFERENCE[0]) | (m.quant == REFERENCE[1])


def _quantized(m):
    return (m.quant != REFERENCE[0]) & (m.quant != REFERENCE[1])


def _fp16_fits(m, fit):
    return m.fp16_gb < m.usable_all_gb * fit.value


def _fp16_too_big(m, fit):
    return m.fp16_gb >= m.usable_all_gb * fit.value


def candidates_rules(k) -> list[Rule]:
    from durable.lang import c, none

    q2 = k.quant["q2_k"]
    q3 = k.quant["q3_k_s"]
    fit = k.row("fp16_fit_fraction")
    room = k.row("vram_alert_warning")
    return [
        Rule("quantization.never-q2k", q2.source, "reject",
             lambda m: cand(m) & (m.quant == "q2_k"),
             lambda f: f"Q2_K is prohibited for every tier (tier '{q2.tier}': quality collapses)",
             sets=("quantization",)),
        Rule("quantization.gpu-lacks-kernels", "knowledge/quantization.toml (min_compute_capability)", "reject",
             lambda m: cand(m) & (m.q_min_cc > 0) & (m.gpu_cc < m.q_min_cc),
             lambda f: (f"{f.quant} needs compute capability {f.q_min_cc:g}+ (FP8 tensor cores); this GPU has "
                        + (f"{f.gpu_cc:g}" if f.gpu_cc > 0 else "an unknown one")),
             sets=("quantization",)),
        # P.1's rows are facts (rules/facts.py TierFact): one join per risk tier, on the row of the
        # candidate's quantization that does not allow it
        *[_risk_tier(risk) for risk in ("high", "moderate", "low")],
        # P.3's verdicts are facts (rules/facts.py CompatFact), asserted before the candidates
        Rule("quantization.model-compat", "Appendix P.3", "gate",
             lambda m: (c.p << ((m.kind == "compat") & (m.verdict == "fail")),
                        c.c << (cand(m) & (m.model == c.p.model) & (m.quant == c.p.quant) & (m.quant != "q2_k"))),
             lambda ctx: f"{ctx.c.model} fails the quality check at {ctx.c.quant} (P.3)",
             sets=("quantization",), kind="policy", joins=("p", "c"), source_from=lambda ctx: ctx.p.source),
        Rule("quantization.q3-unvalidated", q3.source, "gate",
             lambda m: (c.c << (cand(m) & (m.quant == "q3_k_s")),
                        none((m.kind == "compat") & (m.verdict == "pass") & (m.model == c.c.model)
                             & (m.quant == c.c.quant))),
             lambda ctx: f"Q3_K_S is used only where P.3 validated it; {ctx.c.model} was not tested",
             sets=("quantization",), kind="policy", joins=("c",)),
        Rule("quantization.high-risk-fp16-fits", fit.source, "gate",
             lambda m: cand(m) & (m.risk == "high") & _fp16_fits(m, fit) & _quantized(m),
             lambda f: (f"high risk: FP16 weights ({f.params_b:g}B x 2 B) fit within "
                        f"{fit.value:g} x VRAM, so no quantization ({f.quant} rejected)"),
             sets=("quantization",), kind="policy"),
        Rule("quantization.high-risk-fp16-too-big", fit.source, "gate",
             lambda m: cand(m) & (m.risk == "high") & _fp16_too_big(m, fit) & _reference(m),
             lambda f: (f"high risk: FP16 weights ({f.params_b:g}B x 2 B) exceed {fit.value:g} x VRAM; "
                        f"Q8_0 (or a smaller model) instead"),
             sets=("quantization",), kind="policy"),
        # Precision by headroom: the ranking prefers the higher precision of a model among the
        # candidates that pass every gate, so a lower one has to be asked for by memory (the
        # 16-bit candidate does not fit) or by an SLO (its gates fail the 16-bit candidate).
        # Appendix F's default quantization, where memory leaves the choice to it: its 16-bit
        # default always, a quantized default only once 16 bits do not fit with the margin.
        _workload_default("low", room), _workload_default("high", room),
    ]


def _risk_tier(risk: str) -> Rule:
    """P.1: a join of the candidate with its quantization's row where that row does not allow `risk`."""
    from durable.lang import c

    return Rule("quantization.risk-tier", "Appendix P.1", "gate",
                lambda m: (c.t << ((m.kind == "tier") & (getattr(m, risk) == 0)),
                           c.c << (cand(m) & (m.risk == risk) & (m.quant == c.t.quant) & (m.quant != "q2_k"))),
                lambda ctx: (f"{ctx.c.quant} is not allowed for {ctx.c.risk}-risk work (P.1 tiers: {ctx.t.quant} is "
                             f"'{ctx.t.tier}')"),
                sets=("quantization",), kind="policy", joins=("t", "c"), source_from=lambda ctx: ctx.t.source)


def _workload_default(side: str, room) -> Rule:
    """Appendix F's quantization on one side of its crossover (a bonus)."""
    return Rule("quantization.workload-default", "Appendix F (recommended quantization per workload)", "penalty",
                lambda m: _default_here(m, side, room),
                lambda ctx: (f"{getattr(ctx.w, 'quant_' + side)} is the default quantization for "
                             f"{ctx.w.workload} at N={ctx.c.seqs} ({ctx.w.source})"),
                sets=("quantization",), joins=("w", "c"))


def _default_here(m, side: str, room):
    """Appendix F's quantization on the candidate's side of the crossover (a join on its row,
    rules/backend.py preferred), where memory leaves the choice to it: its 16-bit default always,
    a quantized default only once 16 bits do not fit with the margin; never for high risk."""
    from advisor.rules.backend import preferred

    return preferred(m, side, "quant",
                     (m.risk != "high") & (_reference(m) | (m.fp16_need_gb >= m.usable_gb * room.value)))


def plan_rules(k) -> list[Rule]:
    from durable.lang import c

    fit = k.row("fp16_fit_fraction")
    return [
        Rule("quantization.high-risk-fp16", fit.source, "note",
             lambda m: plan(m) & (m.risk == "high") & _reference(m) & _fp16_fits(m, fit),
             lambda f: f"high risk: FP16 weights fit within {fit.value:g} x VRAM, so no quantization",
             sets=("quantization",)),
        Rule("quantization.high-risk-q8", fit.source, "note",
             lambda m: plan(m) & (m.risk == "high") & _quantized(m) & _fp16_too_big(m, fit),
             lambda f: f"high risk: FP16 does not fit with margin; {f.quant} is the near-lossless step down",
             sets=("quantization",)),
        Rule("quantization.memory-demands", k.row("vram_alert_warning").source, "note",
             lambda m: plan(m) & _quantized(m) & (m.fp16_need_gb >= m.usable_gb * k.value("vram_alert_warning")),
             lambda f: (f"{f.quant} because memory demands it: at 16 bits {f.model} would need {f.fp16_need_gb:.1f} GB "
                        f"of {f.usable_gb:.1f} GB per GPU, past the {k.value('vram_alert_warning'):.0%} alert line"),
             sets=("quantization",)),
        Rule("quantization.slo-demands", k.row("vram_alert_warning").source, "note",
             lambda m: plan(m) & _quantized(m) & (m.fp16_need_gb < m.usable_gb * k.value("vram_alert_warning"))
             & (m.tied == 0),
             lambda f: (f"{f.quant}: 16 bits would fit ({f.fp16_need_gb:.1f} of {f.usable_gb:.1f} GB per GPU) but "
                        f"fails a check the ranking puts first (speed targets or quality); {f.quant} is the highest "
                        f"precision of {f.model} that passes"),
             sets=("quantization",)),
        Rule("quantization.headroom-kept", k.row("vram_alert_warning").source, "note",
             lambda m: plan(m) & _reference(m) & (m.risk != "high"),
             lambda f: (f"16-bit weights: {f.fp16_need_gb:.1f} GB of {f.usable_gb:.1f} GB per GPU leaves the headroom, "
                        f"so no quantization"),
             sets=("quantization",)),
        Rule("quantization.p3-validated", "Appendix P.3", "note",
             lambda m: (c.p << ((m.kind == "compat") & (m.verdict == "pass")),
                        c.c << (plan(m) & (m.model == c.p.model) & (m.quant == c.p.quant))),
             lambda ctx: f"{ctx.c.model} passes the P.3 check at {ctx.c.quant}", joins=("p", "c"),
             source_from=lambda ctx: ctx.p.source),
    ]
