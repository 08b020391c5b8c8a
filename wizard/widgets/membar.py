"""Per-GPU memory of the selected configuration: weights / KV cache / activations / other vs budget.

Each term has its own glyph as well as its own colour, so the bar reads the same without colour.
"""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from servewise.estimator.results import Estimate, MemoryEstimate

GIB = 1024**3

# (term, label, glyph, style)
SEGMENTS = (
    ("weights_bytes", "weights", "█", "$primary"),
    ("kv_cache_bytes", "KV cache", "▓", "$success"),
    ("activation_bytes", "activations", "▒", "$warning"),
    ("other_bytes", "other", "░", "$secondary"),
)
FREE_GLYPH, BUDGET_GLYPH = "·", "┃"


def _gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def segment_bytes(m: MemoryEstimate) -> list[int]:
    """Bytes per bar segment; CUDA graphs count as "other", an overdrawn KV cache as zero."""
    return [max(m.weights_bytes, 0), max(m.kv_cache_bytes, 0), max(m.activation_bytes, 0),
            max(m.other_bytes + m.cuda_graph_bytes, 0)]


def bar_cells(values: list[int], total: int, width: int) -> list[int]:
    """Cells per segment, rounding the running sum so the cells add up exactly."""
    total = max(total, sum(values), 1)
    cells, acc, used = [], 0, 0
    for v in values:
        acc += v
        end = round(acc * width / total)
        cells.append(end - used)
        used = end
    return cells


def bar_line(m: MemoryEstimate, width: int) -> Content:
    """One bar ``width`` cells wide spanning the GPU's memory, with the budget marked."""
    values = segment_bytes(m)
    total = max(m.gpu_memory_bytes, sum(values), m.budget_bytes, 1)
    cells = bar_cells(values, total, width)
    glyphs: list[tuple[str, str]] = []
    for (_, _, glyph, style), n in zip(SEGMENTS, cells):
        glyphs += [(glyph, style)] * n
    glyphs += [(FREE_GLYPH, "$text-muted")] * (width - len(glyphs))
    at = min(width - 1, round(m.budget_bytes * width / total))
    glyphs[at] = (BUDGET_GLYPH, "$text bold")
    return Content("").join(Content.styled(g, s) for g, s in glyphs)


def legend(m: MemoryEstimate) -> Content:
    items = []
    for (_, label, glyph, style), v in zip(SEGMENTS, segment_bytes(m)):
        extra = f" ({m.kv_cache_tokens:,} tokens)" if label == "KV cache" else ""
        items.append(Content.assemble((glyph, style), f" {label} {_gib(v)}{extra}"))
    return Content("  ").join(items).append(" GiB")


def budget_line(m: MemoryEstimate) -> str:
    of = "total" if m.memory_fraction_of == "total" else "the memory free after loading"
    used = sum(segment_bytes(m))
    text = (f"{BUDGET_GLYPH} budget {_gib(m.budget_bytes)} GiB = {m.memory_fraction:g} of {of}; "
            f"GPU {_gib(m.gpu_memory_bytes)} GiB, {_gib(max(m.gpu_memory_bytes - used, 0))} GiB unused")
    if m.overflow is not None:
        text += f"\n✗ {m.overflow.message}"
    return text


class MemoryBar(Widget):
    """The memory breakdown of one estimate (one bar per role for disaggregated plans)."""

    DEFAULT_CSS = """
    MemoryBar { height: auto; }
    """

    estimate: reactive[Estimate | None] = reactive(None, layout=True)
    caption: reactive[str] = reactive("", layout=True)

    def render(self) -> Content:
        est = self.estimate
        if est is None:
            return Content(self.caption or "No configuration to show memory for yet.")
        width = max(10, self.size.width - 2)
        rows: list[tuple[str, MemoryEstimate]] = []
        if est.memory is not None:
            rows.append(("", est.memory))
        for role, r in (est.roles or {}).items():
            rows.append((f"{role} ({r.gpu}, TP{r.worker.tp}) ", r.memory))
        out: list[Content] = [Content.from_markup("[b]$text[/b]", text=self.caption)] if self.caption else []
        if not rows:
            out.append(Content("The estimate carries no memory breakdown."))
        for label, m in rows:
            if label:
                out.append(Content.styled(label, "bold"))
            out += [bar_line(m, width), legend(m), Content(budget_line(m))]
        return Content("\n").join(out)
