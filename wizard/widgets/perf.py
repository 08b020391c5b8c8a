"""Performance of the selected configuration: headline figures with their bands, what dominates
them and where they come from. Shows only what the estimate carries."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from servewise.estimator.results import Estimate, PerfEstimate
from servewise.profiles.schema import Sla
from servewise.wizard.widgets.text import num, perf_rows

MAX_TERMS = 4


def target_note(label: str, sla: Sla | None) -> str:
    if sla is None:
        return ""
    target = {"TTFT": sla.ttft_ms, "TPOT": sla.tpot_ms}.get(label)
    return f"target {num(target)} ms ({sla.percentile})" if target is not None else ""


def perf_of(est: Estimate) -> PerfEstimate | None:
    """The system's figures (for disaggregated plans the top-level perf is the system's)."""
    return est.perf


class PerfSummary(Widget):
    DEFAULT_CSS = """
    PerfSummary { height: auto; }
    """

    estimate: reactive[Estimate | None] = reactive(None, layout=True)
    sla: reactive[Sla | None] = reactive(None, layout=True)

    def render(self) -> Content:
        est = self.estimate
        if est is None:
            return Content("No configuration selected.")
        perf = perf_of(est)
        if perf is None:
            return Content.styled("No performance figures: this estimate carries memory only.", "$text-muted")
        lines = []
        for label, value, band in perf_rows(perf):
            lines.append(Content.assemble(f"{label:<11}", (f"{value:>10}", "bold"),
                                          (f"  {band:<19}" if band else " " * 21, "$text-muted"),
                                          (target_note(label, self.sla), "$text-muted")))
        if perf.kv_transfer_ms is not None:
            lines.append(Content.assemble(f"{'KV transfer':<11}", (f"{num(perf.kv_transfer_ms)} ms".rjust(10), "bold")))
        if perf.dominant_terms:
            lines.append(Content.styled("dominated by: " + "; ".join(perf.dominant_terms[:MAX_TERMS]), "$text-muted"))
        if perf.provenance:
            lines.append(Content.styled(f"source: {perf.provenance}", "$text-muted"))
        return Content("\n").join(lines)
