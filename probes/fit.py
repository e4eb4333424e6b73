"""Fitting the peak-memory curve and the TTFT curve from a few probe points.

Peak memory of a prefill is base + KV and activations (linear in the context n)
and, with eager attention, the n x n score matrices (heads x n^2 x bytes): a
straight line through small contexts under-predicts long ones by 35-80 %
(DESIGN.md, "Facts"). So the fit must know the attention implementation:

- sdpa / flash: a least-squares line;
- eager: the line plus the known heads x n^2 term (`eager_quadratic_bytes`),
  the linear part fitted to what is left. Three points that all lie where the
  score matrices dominate also give a free quadratic fit; the known term is
  preferred because a second difference of three small contexts multiplies
  any allocator rounding by (8x)^2 when it extrapolates.

Pure numpy: no torch here, so the fit is cheap to import and test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from advisor.domain import CurveFit

MIB = 1024.0 * 1024.0


def eager_quadratic_bytes(heads: int, dtype_bytes: int) -> float:
    """Bytes per n^2 that eager attention holds at its peak in one layer, plus the causal mask.

    transformers' eager_attention_forward computes `matmul(q, k^T) * scaling` (+ mask), then
    `softmax(..., dtype=float32).to(dtype)`: while the float32 probabilities are cast back, the
    half-precision scores (still named by the variable), the float32 copy and the half-precision
    result are alive together: heads x n^2 x (2 + 4 + 2) bytes. In float32 the cast is a no-op
    (4 + 4). The 4-D causal mask (1 x 1 x n x n in the model dtype) lives for the whole forward.
    Measured on an H100 (bench/results/probe-gpu-h100.md): 8 x heads + 2 bytes for fp16, exactly.
    """
    per_head = 2 * dtype_bytes + 4 if dtype_bytes < 4 else 2 * dtype_bytes
    return float(heads * per_head + dtype_bytes)


def is_quadratic(attention: str) -> bool:
    return attention == "eager"


def fit_curve(points: Sequence[tuple[float, float | None]], attention: str,
              known_quadratic_mb: float | None = None, method: str = "auto") -> CurveFit | None:
    """Fit peak_mb(n) through (context, peak MiB) points (a point without a peak is left out).

    method: "auto" (line for sdpa/flash; line + known n^2 term for eager, or a free quadratic
    when no known term is given), "linear", "known" (line + known term), "quadratic" (free).
    """
    pts = sorted((float(n), float(mb)) for n, mb in points if mb is not None and n > 0)
    if len(pts) < 2:
        return None
    n = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    if method == "auto":
        if not is_quadratic(attention):
            method = "linear"
        elif known_quadratic_mb is not None:
            method = "known"
        else:
            method = "quadratic" if len(pts) >= 3 else "linear"
    if method == "linear":
        a, b = _line(n, y)
        return CurveFit(kind="linear", base_mb=b, linear_mb_per_token=a)
    if method == "known":
        q = float(known_quadratic_mb or 0.0)
        a, b = _line(n, y - q * n * n)
        return CurveFit(kind="quadratic", base_mb=b, linear_mb_per_token=a, quadratic_mb_per_token2=q)
    if method == "quadratic":
        if len(pts) < 3:
            return None
        c, a, q = _nnls_poly(n, y, fix_base_free=True)
        return CurveFit(kind="quadratic", base_mb=c, linear_mb_per_token=a, quadratic_mb_per_token2=q)
    raise ValueError(f"unknown fit method {method!r}")


def _line(n: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    a, b = np.polyfit(n, y, 1)
    return float(a), float(b)


def _nnls_poly(n: np.ndarray, y: np.ndarray, fix_base_free: bool = False,
               use: tuple[int, ...] = (0, 1, 2)) -> tuple[float, float, float]:
    """Least squares for y = c + a n + q n^2 with a, q >= 0 (c free when fix_base_free, else >= 0).

    Three unknowns: enumerate the active sets (which coefficients are pinned to zero) and keep the
    best feasible solution. Columns are scaled so n^2 does not swamp the conditioning.
    """
    scale_n = float(n.max())
    cols = [np.ones_like(n), n / scale_n, (n / scale_n) ** 2]
    best: tuple[float, np.ndarray] | None = None
    for free in itertools.chain.from_iterable(itertools.combinations(range(3), k) for k in (3, 2, 1)):
        if (fix_base_free and 0 not in free) or not set(free) <= set(use):
            continue
        A = np.stack([cols[i] for i in free], axis=1)
        sol, *_ = np.linalg.lstsq(A, y, rcond=None)
        coef = np.zeros(3)
        coef[list(free)] = sol
        if any(coef[i] < -1e-12 for i in (1, 2)) or (not fix_base_free and coef[0] < -1e-12):
            continue
        err = float(np.sum((np.stack(cols, axis=1) @ coef - y) ** 2))
        if best is None or err < best[0] - 1e-15:
            best = (err, coef)
    if best is None:
        return float(np.mean(y)), 0.0, 0.0
    c, a, q = best[1]
    return float(c), float(a / scale_n), float(q / scale_n ** 2)


# ------------------------------------------------------------------ TTFT
def fit_ttft(points: Sequence[tuple[float, float | None]]) -> dict[str, float] | None:
    """t_ms(n) = c + a n + b n^2 with a, b >= 0 (weights' FLOPs are linear, attention's quadratic)."""
    pts = sorted((float(n), float(t)) for n, t in points if t is not None and t > 0)
    if len(pts) < 2:
        return None
    n = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    if len(pts) == 2:
        a, c = _line(n, y)
        c, a, _ = _nnls_poly(n, y, fix_base_free=False, use=(0, 1))
        return {"c_ms": c, "a_ms_per_token": a, "b_ms_per_token2": 0.0}
    c, a, b = _nnls_poly(n, y, fix_base_free=False)
    return {"c_ms": c, "a_ms_per_token": a, "b_ms_per_token2": b}


def ttft_from_batches(singles: Sequence[tuple[float, float]],
                      batches: Sequence[tuple[int, int, float]]) -> dict | None:
    """TTFT model from two batched prefills with the same total tokens.

    Short prompts are launch-bound (a 0.5B model prefills 512 and 2,048 tokens in the same 15 ms
    on an H100), so single short prompts cannot show the compute rate. A batch of B prompts of n
    tokens does the weights' work of B x n tokens (the same GEMM shapes as one prompt of B x n)
    and B x the attention of n. Two batches with equal B x n, e.g. 8 x 2,048 and 2 x 8,192, give
    the linear part L and the attention coefficient b: T = L + B b n^2. A single prompt of N
    tokens then takes max(floor, a N + b N^2) with a = L / (B n), the floor being the
    launch-bound time the short prompts showed.
    """
    if len(batches) < 2:
        return None
    (b1, n1, t1), (b2, n2, t2) = sorted(batches, key=lambda x: x[0] * x[1] ** 2)[:2]
    d = b2 * n2 * n2 - b1 * n1 * n1
    if d <= 0 or b1 * n1 != b2 * n2:
        return None
    b = max((t2 - t1) / d, 0.0)
    linear = max(t1 - b1 * b * n1 * n1, 0.0)
    floor = min((t for _, t in singles if t > 0), default=0.0)
    return {"form": "max", "c_ms": floor, "a_ms_per_token": linear / (b1 * n1), "b_ms_per_token2": b,
            "batches": [{"batch": bb, "context": nn, "ms": tt} for bb, nn, tt in batches]}


def predict_ttft_ms(fit: dict, n: float) -> float:
    """TTFT at n tokens from a fit of fit_ttft ("sum": c + a n + b n^2) or ttft_from_batches ("max")."""
    compute = fit["a_ms_per_token"] * n + fit["b_ms_per_token2"] * n * n
    if fit.get("form") == "max":
        return max(fit["c_ms"], compute)
    return fit["c_ms"] + compute


def relative_error(predicted: float, measured: float) -> float:
    return (predicted - measured) / measured if measured else math.inf
