"""Step 5: what the search found: memory per GPU, best aggregated vs disaggregated, the Pareto
chart, the verdict, advice when nothing fits, and every candidate to pick from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, DataTable, ProgressBar, Static

from servewise.estimator.results import Candidate, PerfEstimate, PlanResult
from servewise.wizard.planning import PlanOutcome
from servewise.wizard.screens.base import Edited, Navigate, StepScreen
from servewise.wizard.widgets.membar import MemoryBar
from servewise.wizard.widgets.modes import ModeComparison
from servewise.wizard.widgets.pareto import ParetoChart
from servewise.wizard.widgets.perf import PerfSummary
from servewise.wizard.widgets.text import batch, describe, layout, num

MAX_ROWS = 500
SOURCES = {"search": "chosen by the search", "picked": "picked from the candidates",
           "pinned": "pinned in the profile you opened (unchanged inputs keep it)"}


def all_candidates(r: PlanResult) -> list[Candidate]:
    return [c for cs in r.candidates.values() for c in cs][:MAX_ROWS]


def candidate_row(c: Candidate, selected: bool, selected_perf: PerfEstimate | None = None) -> tuple[str, ...]:
    """One table row; the selected row falls back to the selected estimate's figures."""
    p = c.perf or (selected_perf if selected else None)
    return ("★" if selected else "", c.mode, layout(c.plan), str(c.gpus_used), batch(c.plan),
            num(p.ttft_ms) if p else "—", num(p.tpot_ms) if p else "—",
            num(p.output_tokens_per_s_per_gpu) if p else "—", num(p.tokens_per_s_per_user) if p else "—",
            "✓" if c.meets_sla else "✗")


class ResultsScreen(StepScreen):
    STEP = "results"
    STEP_KEYS = [("↑ / ↓", "move in the candidates table"), ("enter", "pick the highlighted candidate; "
                 "Enter on the selected one goes on"), ("ctrl+x", "cancel a running search"),
                 ("ctrl+r", "plan again now")]
    BINDINGS = [Binding("ctrl+x", "app.cancel_plan", "Cancel search", priority=True)]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="plan-progress")
            yield Static("searching…", id="progress-label")
            yield Button("Cancel", id="cancel-plan", compact=True)
        yield Static(id="results-headline")
        with Vertical(id="results-grid"):
            with Vertical(id="results-left"):
                yield Static("Memory per GPU", classes="section-title")
                yield MemoryBar(id="memory-bar")
                yield Static("Performance (bands: the model's uncertainty)", classes="section-title")
                yield PerfSummary(id="perf-summary")
                yield Static("Best aggregated vs best disaggregated", classes="section-title")
                yield ModeComparison(id="modes")
                yield Static(id="verdict")
                yield Static(id="advice")
            with Vertical(id="results-right"):
                yield Static("Pareto front", classes="section-title")
                yield ParetoChart(id="pareto")
                yield Static("Candidates (enter picks one)", classes="section-title")
                yield DataTable(id="candidates", cursor_type="row", classes="table")

    _rows: list[Candidate] = []
    _selected_row: int | None = None

    def on_mount(self) -> None:
        self.query_one("#candidates", DataTable).add_columns(
            "", "mode", "layout", "GPUs", "batch", "TTFT ms", "TPOT ms", "tok/s/GPU", "tok/s/user", "SLA")

    def focus_first(self) -> None:
        # Enter on the table picks the highlighted row: focus it only when that row is the selection,
        # so Enter through the steps never changes the plan.
        table = self.query_one("#candidates", DataTable)
        if self._selected_row is not None:
            table.focus(scroll_visible=False)
        else:
            self.query_one("#nav-next", Button).focus()
        self.query_one("#results-body").scroll_home(animate=False)

    # ---------------------------------------------------------------- attributes down
    def show_outcome(self, outcome: PlanOutcome | None, planning: bool) -> None:
        self.query_one("#progress-row").display = planning
        headline = self.query_one("#results-headline", Static)
        bar = self.query_one("#memory-bar", MemoryBar)
        modes = self.query_one("#modes", ModeComparison)
        chart = self.query_one("#pareto", ParetoChart)
        if outcome is None:
            headline.update("Planning…")
            return
        if outcome.error:
            headline.update(Content.assemble(("✗ ", "$text-error bold"), (outcome.error, "$text-error"),
                                             "\nChange the inputs on an earlier step, or ctrl+r to plan again."))
            bar.estimate, bar.caption = None, "No estimate: planning failed."
            self.query_one("#perf-summary", PerfSummary).estimate = None
            modes.result, chart.result = None, None
            self._fill_table(None, None)
            self.query_one("#verdict", Static).update("")
            self.query_one("#advice", Static).update("")
            return
        r = outcome.result
        assert r is not None
        selected = outcome.selected.plan if outcome.selected is not None else None
        if selected is not None:
            headline.update(Content.assemble(("Selected: ", "bold"), describe(selected),
                                             (f"  ({SOURCES.get(outcome.selected_from, '')})", "$text-muted")))
        else:
            headline.update(Content.assemble(("✗ Nothing fits or meets the SLA", "$text-warning bold"),
                                             f": {r.reason}" if r.reason else ""))
        bar.caption = f"{r.model} on {r.gpu}, {r.engine} {r.engine_version}, max_model_len {r.max_model_len:,}"
        bar.estimate = outcome.selected
        perf = self.query_one("#perf-summary", PerfSummary)
        perf.estimate, perf.sla = outcome.selected, outcome.draft.sla
        modes.result, modes.modes, modes.selected = r, tuple(outcome.draft.search.modes), selected
        modes.selected_perf = outcome.selected.perf if outcome.selected is not None else None
        chart.result, chart.selected = r, selected
        self._show_verdict(r)
        self._fill_table(r, selected, outcome.selected.perf if outcome.selected is not None else None)

    def _show_verdict(self, r: PlanResult) -> None:
        verdict = self.query_one("#verdict", Static)
        if r.verdict:
            verdict.update(Content.assemble(("Verdict: ", "bold"), r.verdict))
        elif len(r.best) < 2:
            verdict.update(Content.styled("Verdict: none — it compares the best aggregated and disaggregated "
                                          "configurations, and this plan does not carry both.", "$text-muted"))
        else:
            verdict.update(Content.styled("Verdict: none given by this plan.", "$text-muted"))
        advice = self.query_one("#advice", Static)
        if r.advice:
            lines = [Content.styled("Advice", "bold")] + [Content(f"• {a.message}") for a in r.advice]
            advice.update(Content("\n").join(lines))
        elif not r.feasible:
            advice.update(Content.styled("No advice came with this result: try more GPUs, FP8 weights or KV "
                                         "cache, a shorter max model length, or looser targets.", "$text-muted"))
        else:
            advice.update("")

    def _fill_table(self, r: PlanResult | None, selected, selected_perf=None) -> None:  # type: ignore[no-untyped-def]
        table = self.query_one("#candidates", DataTable)
        self._rows = all_candidates(r) if r is not None else []
        self._selected_row = None
        with table.prevent(DataTable.RowHighlighted):
            table.clear()
            for i, c in enumerate(self._rows):
                is_sel = selected is not None and c.plan == selected
                if is_sel and self._selected_row is None:
                    self._selected_row = i
                table.add_row(*candidate_row(c, is_sel, selected_perf), key=str(i))
            if self._rows:
                table.move_cursor(row=self._selected_row or 0, animate=False)

    # ---------------------------------------------------------------- messages up
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key is None or event.row_key.value is None or self.outcome is None \
                or self.outcome.selected is None:
            self.post_message(Navigate("next"))
            return
        cand = self._rows[int(event.row_key.value)]
        if cand.plan == self.outcome.selected.plan:
            self.post_message(Navigate("next"))
        else:
            self.post_message(Edited(picked=cand.plan))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        # Textual also runs StepScreen's handler (it dispatches along the MRO): Back/Next are handled there.
        if event.button.id == "cancel-plan":
            event.stop()
            self.app.action_cancel_plan()  # type: ignore[attr-defined]
