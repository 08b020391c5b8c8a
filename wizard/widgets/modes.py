"""Best aggregated and best disaggregated configurations side by side, with their bands."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from servewise.estimator.results import PerfEstimate, PlanResult
from servewise.profiles.schema import AggPlan, DisaggPlan
from servewise.wizard.widgets.text import MODE_TITLES, batch, layout, perf_rows


def card_text(result: PlanResult | None, mode: str, searched: bool,
              selected: AggPlan | DisaggPlan | None, selected_perf: PerfEstimate | None = None) -> Content:
    """The content of one mode's card; says plainly what is missing."""
    title = Content.styled(MODE_TITLES[mode], "bold")
    if result is None:
        return Content("\n").join([title, Content("waiting for the search…")])
    if not searched:
        return Content("\n").join([title, Content.styled("not searched (choose it on the Engine step)",
                                                         "$text-muted")])
    if mode not in result.best and not result.candidates.get(mode):
        return Content("\n").join([title, Content.styled("this plan did not evaluate this mode", "$text-muted")])
    best = result.best.get(mode)
    if best is None:
        return Content("\n").join([title, Content.styled("no configuration of this mode fits or meets the SLA",
                                                         "$text-warning")])
    if selected == best.plan:
        title = Content.assemble(title, "  ", ("★ selected", "$warning bold"))
    lines = [title, Content(f"{layout(best.plan)} · {best.gpus_used} GPUs · batch {batch(best.plan)}")]
    rows = perf_rows(best.perf or (selected_perf if selected == best.plan else None))
    if not rows:
        lines.append(Content.styled("no performance figures: this plan is sized on memory only", "$text-muted"))
    else:
        for label, value, band in rows:
            lines.append(Content.assemble(f"{label:<11}", (f"{value:>9}", "bold"),
                                          (f"  {band}" if band else "", "$text-muted")))
    sla = "meets the SLA ✓" if best.meets_sla else "misses the SLA ✗"
    lines.append(Content.styled(sla, "$text-success" if best.meets_sla else "$text-error"))
    return Content("\n").join(lines)


class ModeCard(Widget):
    DEFAULT_CSS = """
    ModeCard { height: auto; width: 1fr; border: round $border-blurred; padding: 0 1; }
    """

    result: reactive[PlanResult | None] = reactive(None, layout=True)
    searched: reactive[bool] = reactive(True, layout=True)
    selected: reactive[AggPlan | DisaggPlan | None] = reactive(None, layout=True)
    selected_perf: reactive[PerfEstimate | None] = reactive(None, layout=True)

    def __init__(self, mode: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.mode = mode

    def render(self) -> Content:
        return card_text(self.result, self.mode, self.searched, self.selected, self.selected_perf)


class ModeComparison(Widget):
    """Two cards; the app sets ``result``, ``modes`` and ``selected``."""

    DEFAULT_CSS = """
    ModeComparison { height: auto; }
    ModeComparison > Horizontal { height: auto; }
    """

    result: reactive[PlanResult | None] = reactive(None)
    modes: reactive[tuple[str, ...]] = reactive(("agg", "disagg"))
    selected: reactive[AggPlan | DisaggPlan | None] = reactive(None)
    selected_perf: reactive[PerfEstimate | None] = reactive(None)

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield ModeCard("agg", id="card-agg")
            yield ModeCard("disagg", id="card-disagg")

    def _sync(self) -> None:
        for card in self.query(ModeCard):
            card.result, card.searched, card.selected = self.result, card.mode in self.modes, self.selected
            card.selected_perf = self.selected_perf

    def watch_result(self) -> None:
        self._sync()

    def watch_modes(self) -> None:
        self._sync()

    def watch_selected(self) -> None:
        self._sync()

    def watch_selected_perf(self) -> None:
        self._sync()

    def on_mount(self) -> None:
        self._sync()
