"""Curve fits: a line for sdpa, the heads x n^2 term for eager, and why a line fails for eager."""

from __future__ import annotations

import pytest

from advisor.probes.fit import eager_quadratic_bytes, fit_curve, fit_ttft, predict_ttft_ms, ttft_from_batches

MIB = 2 ** 20


def eager_peak(n, base=3000.0, lin=0.06, heads=12):
    return base + lin * n + eager_quadratic_bytes(heads, 2) / MIB * n * n


def test_sdpa_line_extrapolates_to_8x_exactly():
    pts = [(n, 2945 + 0.0455 * n) for n in (512, 1024, 2048)]
    fit = fit_curve(pts, "sdpa")
    assert fit.kind == "linear"
    assert fit.predict(16384) == pytest.approx(2945 + 0.0455 * 16384, rel=1e-9)


def test_eager_known_term_extrapolates_where_a_line_under_predicts_by_more_than_half():
    pts = [(n, eager_peak(n)) for n in (512, 1024, 2048)]
    fit = fit_curve(pts, "eager", known_quadratic_mb=eager_quadratic_bytes(12, 2) / MIB)
    line = fit_curve(pts, "sdpa")
    truth = eager_peak(16384)
    assert fit.kind == "quadratic"
    assert abs(fit.predict(16384) - truth) / truth < 1e-6
    assert (line.predict(16384) - truth) / truth < -0.5  # DESIGN.md: a straight line under-predicts 16K by 70-80%


def test_eager_free_quadratic_when_no_known_term():
    pts = [(n, eager_peak(n)) for n in (512, 1024, 2048)]
    fit = fit_curve(pts, "eager")
    assert fit.kind == "quadratic"
    assert fit.predict(16384) == pytest.approx(eager_peak(16384), rel=1e-6)


def test_known_term_matches_the_h100_measurement():
    # bench/results/probe-gpu-h100.md: eager fp16 holds 8 x heads + 2 bytes per token^2 (qwen2.5-0.5b: 14 heads)
    assert eager_quadratic_bytes(14, 2) == 114
    assert eager_quadratic_bytes(32, 2) == 258
    assert eager_quadratic_bytes(4, 4) == 36  # float32: the cast back is a no-op


def test_one_point_is_not_a_fit():
    assert fit_curve([(512, 1000.0)], "sdpa") is None


def test_ttft_from_batches_recovers_linear_and_attention_terms():
    a, b, floor = 0.004, 2e-7, 15.0  # ms/token, ms/token^2, launch-bound floor
    t = lambda batch, n: batch * (a * n + b * n * n)  # noqa: E731
    singles = [(512, floor), (1024, floor), (2048, floor)]  # short prompts all launch-bound
    fit = ttft_from_batches(singles, [(8, 2048, t(8, 2048)), (2, 8192, t(2, 8192))])
    assert predict_ttft_ms(fit, 16384) == pytest.approx(a * 16384 + b * 16384 ** 2, rel=1e-6)
    assert predict_ttft_ms(fit, 512) == floor
    # the three flat single points alone cannot see the slope: a fit of them is far off at 16K
    naive = fit_ttft(singles)
    assert predict_ttft_ms(naive, 16384) < 0.5 * predict_ttft_ms(fit, 16384)


def test_ttft_fit_never_goes_negative():
    fit = fit_ttft([(512, 12.5), (1024, 11.0), (2048, 250.0)])
    assert all(predict_ttft_ms(fit, n) > 0 for n in (128, 512, 1024, 4096))
