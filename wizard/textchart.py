"""A plain-text scatter chart (ASCII only, no colour): glyphs on a character grid with labelled axes."""

from __future__ import annotations

import math


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def scatter(points: list[tuple[float, float, str]], *, width: int = 56, height: int = 12, x_label: str = "",
            y_label: str = "", vline: float | None = None, vline_glyph: str = ":") -> list[str]:
    """Lines of a chart of ``(x, y, glyph)`` points; later points win a shared cell. ``vline``: an x value
    drawn as a column of ``vline_glyph`` (a target), kept inside the x range."""
    pts = [(x, y, g) for x, y, g in points if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return ["(no points to draw)"]
    xs = [p[0] for p in pts] + ([vline] if vline is not None and math.isfinite(vline) else [])
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    if x1 <= x0:
        x0, x1 = x0 * 0.9 - 1e-9, x1 * 1.1 + 1e-9
    if y1 <= y0:
        y1 = y0 + 1.0
    grid = [[" "] * width for _ in range(height)]

    def col(x: float) -> int:
        return min(width - 1, max(0, round((x - x0) / (x1 - x0) * (width - 1))))

    def row(y: float) -> int:
        return min(height - 1, max(0, height - 1 - round((y - y0) / (y1 - y0) * (height - 1))))

    if vline is not None and math.isfinite(vline):
        c = col(vline)
        for r in range(height):
            grid[r][c] = vline_glyph
    for x, y, g in pts:
        grid[row(y)][col(x)] = g
    top, bottom = _fmt(y1), _fmt(y0)
    pad = max(len(top), len(bottom), len(y_label) if len(y_label) <= 10 else 0)
    lines = [y_label] if y_label else []
    for r in range(height):
        label = top if r == 0 else bottom if r == height - 1 else ""
        lines.append(f"{label:>{pad}} |" + "".join(grid[r]).rstrip())
    lines.append(" " * pad + " +" + "-" * width)
    left, right = _fmt(x0), _fmt(x1)
    lines.append(" " * (pad + 2) + left + " " * max(1, width - len(left) - len(right)) + right)
    if x_label:
        lines.append(" " * (pad + 2) + x_label)
    return lines
