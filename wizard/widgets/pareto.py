"""A terminal scatter chart of the search: tokens/s per GPU against tokens/s per user.

Aggregated and disaggregated candidates and the Pareto front have their own glyphs (not only
colours), and the selected configuration is a star. Only candidates that carry performance
figures are drawn; without any, the chart says so.
"""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from servewise.estimator.results import Candidate, PlanResult
from servewise.profiles.schema import AggPlan, DisaggPlan

# (kind, glyph, style), drawn in this order so later kinds win a shared cell
GLYPHS = {
    "agg": ("○", "$primary"),
    "disagg": ("△", "$secondary"),
    "agg-front": ("●", "$primary bold"),
    "disagg-front": ("▲", "$secondary bold"),
    "selected": ("★", "$warning bold"),
}
Y_LABEL_WIDTH = 8


def _xy(c: Candidate) -> tuple[float, float] | None:
    if c.perf is None:
        return None
    return c.perf.tokens_per_s_per_user, c.perf.output_tokens_per_s_per_gpu


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def plotted(result: PlanResult) -> list[Candidate]:
    return [c for cs in result.candidates.values() for c in cs if _xy(c) is not None]


class ParetoChart(Widget):
    """Scatter of every candidate with figures; the front and the selection stand out."""

    DEFAULT_CSS = """
    ParetoChart { height: 16; text-wrap: nowrap; text-overflow: clip; }
    ParetoChart.-empty { height: auto; text-wrap: wrap; }
    """

    result: reactive[PlanResult | None] = reactive(None)
    selected: reactive[AggPlan | DisaggPlan | None] = reactive(None)

    def watch_result(self) -> None:
        self.set_class(self.result is None or not plotted(self.result), "-empty")

    def render(self) -> Content:
        r = self.result
        if r is None:
            return Content("No search result yet.")
        points = plotted(r)
        if not points:
            return Content("No Pareto chart: this plan carries no throughput figures for its candidates "
                           "(tokens/s per GPU and per user come from the performance model).")
        width = max(10, self.size.width - Y_LABEL_WIDTH - 1)
        height = max(4, self.size.height - 4)
        xs = [_xy(c)[0] for c in points]  # type: ignore[index]
        ys = [_xy(c)[1] for c in points]  # type: ignore[index]
        x_max, y_max = max(xs) * 1.05 or 1.0, max(ys) * 1.05 or 1.0
        grid: list[list[tuple[str, str] | None]] = [[None] * width for _ in range(height)]
        on_front = [c in r.pareto for c in points]

        def put(c: Candidate, kind: str) -> None:
            x, y = _xy(c)  # type: ignore[misc]
            col = min(width - 1, int(x / x_max * (width - 1) + 0.5))
            row = height - 1 - min(height - 1, int(y / y_max * (height - 1) + 0.5))
            grid[row][col] = GLYPHS[kind]

        for c in points:
            put(c, c.mode)
        for c, front in zip(points, on_front):
            if front:
                put(c, f"{c.mode}-front")
        for c in points:
            if self.selected is not None and c.plan == self.selected:
                put(c, "selected")

        lines = [Content.styled("output tokens/s per GPU", "$text-muted")]
        for row, cells in enumerate(grid):
            if row == 0:
                label = _fmt(y_max)
            elif row == height - 1:
                label = "0"
            elif row == height // 2:
                label = _fmt(y_max / 2)
            else:
                label = ""
            axis = Content(label.rjust(Y_LABEL_WIDTH - 1) + ("┤" if label else "│"))
            line = Content("").join(Content.styled(g[0], g[1]) if g else Content(" ") for g in cells)
            lines.append(axis + line)
        lines.append(Content(" " * (Y_LABEL_WIDTH - 1) + "└" + "─" * width))
        left, right = "0", _fmt(x_max)
        mid = "tokens/s per user"
        gap = max(1, width - len(left) - len(right) - len(mid))
        lines.append(Content(" " * Y_LABEL_WIDTH + left + " " * (gap // 2) + mid + " " * (gap - gap // 2) + right))
        lines.append(self._legend())
        return Content("\n").join(lines)

    def _legend(self) -> Content:
        items = [("agg", "aggregated"), ("disagg", "disaggregated"), ("agg-front", "Pareto front"),
                 ("selected", "selected")]
        parts = []
        for kind, text in items:
            glyph, style = GLYPHS[kind]
            extra = GLYPHS["disagg-front"][0] if kind == "agg-front" else ""
            parts.append(Content.assemble((glyph + extra, style), f" {text}"))
        return Content(" " * Y_LABEL_WIDTH).append(Content("   ").join(parts))
