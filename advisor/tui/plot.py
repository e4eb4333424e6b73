"""A character plot of peak VRAM against context, for the probe screen.

Plain text so it reads the same in xterm, screen and tmux, and in a test: the
meaning is carried by symbols and labels, never by colour alone.

    * measured peak   x skipped or out of memory   . fitted curve
    = VRAM ceiling    - safe budget

The safe budget follows TR127 §14.3 as the engine's context rule does: the
weights (the probe's base) plus the safety margin (0.8) of what is left of the
usable VRAM (total minus other tenants). Before the base is known it is the
margin of the usable VRAM.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from advisor.domain import CurveFit, CurvePoint

LEGEND = "* measured  x skipped/OOM  . fit  = ceiling  - safe budget"


def safe_budget_mb(total_mb: float, other_mb: float = 0.0, base_mb: float | None = None,
                   margin: float = 0.8) -> float:
    usable = max(total_mb - other_mb, 0.0)
    if base_mb is None or base_mb >= usable:
        return margin * usable
    return base_mb + margin * (usable - base_mb)


def _fmt_tokens(n: float) -> str:
    n = int(round(n))
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    if n >= 1000:
        return f"{n / 1024:.0f}K"
    return str(n)


def _fmt_mb(mb: float) -> str:
    return f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb:.0f}M"


def render_plot(points: Iterable[CurvePoint], ceiling_mb: float | None, safe_mb: float | None = None,
                contexts: Iterable[int] | None = None, fit: CurveFit | None = None,
                width: int = 70, height: int = 9) -> str:
    """Peak VRAM (y, MB) against context tokens (x, log2 scale) as text lines.

    `width` counts the whole line, the y labels included; `height` the plot rows
    (the x axis and its labels add two more lines).
    """
    pts = list(points)
    label_w = 6
    plot_w = max(width - label_w - 1, 10)
    xs = [p.context_tokens for p in pts] + list(contexts or [])
    xs = [x for x in xs if x and x > 0]
    if not xs:
        xs = [512, 32768]
    lo, hi = math.log2(min(xs)), math.log2(max(xs))
    if hi - lo < 1:
        lo, hi = lo - 0.5, hi + 0.5

    ys = [ceiling_mb] if ceiling_mb is not None else []
    for p in pts:
        for v in (p.peak_mb, p.predicted_mb):
            if v is not None:
                ys.append(v)
    ymax = (max(ys) if ys else 0.0) * 1.08 or 1.0

    def col(x: float) -> int:
        return round((math.log2(x) - lo) / (hi - lo) * (plot_w - 1))

    def row(y: float) -> int:  # 0 = top
        r = height - 1 - round(y / ymax * (height - 1))
        return min(max(r, 0), height - 1)

    grid = [[" "] * plot_w for _ in range(height)]
    if fit is not None:
        for c in range(plot_w):
            x = 2 ** (lo + c / (plot_w - 1) * (hi - lo))
            y = fit.predict(x)
            if 0 <= y <= ymax:
                grid[row(y)][c] = "."
    safe_row = row(safe_mb) if safe_mb is not None else None
    ceil_row = row(ceiling_mb) if ceiling_mb is not None else None
    if safe_row is not None:
        grid[safe_row] = ["-" if ch == " " else ch for ch in grid[safe_row]]
    if ceil_row is not None:
        grid[ceil_row] = ["=" if ch in " ." else ch for ch in grid[ceil_row]]
    for p in pts:
        c = col(p.context_tokens)
        if p.status == "ok" and p.peak_mb is not None:
            grid[row(p.peak_mb)][c] = "*"
        else:
            y = p.predicted_mb if p.predicted_mb is not None else ymax
            grid[row(y)][c] = "x"

    labels = {height - 1: "0"}
    if ceil_row is not None and ceiling_mb is not None:  # (the one is None when the other is)
        labels[ceil_row] = _fmt_mb(ceiling_mb)
    elif ys:  # no ceiling: label the top of the scale instead
        labels[row(max(ys))] = _fmt_mb(max(ys))
    if safe_row is not None and safe_mb is not None and safe_row != ceil_row:
        labels[safe_row] = _fmt_mb(safe_mb)
    lines = []
    for r in range(height):
        lines.append(f"{labels.get(r, ''):>{label_w}}|" + "".join(grid[r]).rstrip())
    lines.append(" " * label_w + "+" + "-" * plot_w)
    axis = [" "] * (plot_w + 8)
    ticks = sorted(set(xs))
    last_end = -2
    for t in ticks:
        text = _fmt_tokens(t)
        start = max(min(col(t) - len(text) // 2, plot_w - len(text)), 0)
        if start <= last_end + 1:
            continue
        axis[start:start + len(text)] = list(text)
        last_end = start + len(text) - 1
    lines.append(" " * (label_w + 1) + "".join(axis).rstrip())
    return "\n".join(line[:width] for line in lines)
