"""What every step shares: the chrome (header, step indicator, back/next, footer), the live plan
status line, and the two messages screens send up to the app.

Attributes down, messages up: the app sets ``draft`` and ``outcome`` on the active step; a step
never edits state itself, it posts :class:`Edited` with the fields that changed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Header, Input, Static

from servewise.wizard.planning import PlanOutcome
from servewise.wizard.state import Draft
from servewise.wizard.widgets.steps import STEP_TITLES, StepIndicator
from servewise.wizard.widgets.text import describe


class Edited(Message):
    """A step changed some draft fields (``Draft.with_`` keyword arguments)."""

    def __init__(self, **changes: Any) -> None:
        super().__init__()
        self.changes = changes


class Navigate(Message):
    """Go to the next / previous step, or to a named one."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where


def status_text(outcome: PlanOutcome | None, planning: bool) -> Content:
    """One line about the live plan, for the bottom of every step."""
    if planning or outcome is None:
        return Content.styled("⋯ planning…", "$text-muted")
    if outcome.error:
        return Content.styled(f"✗ {outcome.error}", "$text-error")
    r = outcome.result
    assert r is not None
    if not r.feasible:
        return Content.styled(f"✗ nothing feasible: {r.reason or 'see Results'}", "$text-warning")
    est = outcome.selected
    plan = est.plan if est is not None else (r.chosen.plan if r.chosen else None)
    what = {"pinned": "pinned", "picked": "picked", "search": "plan"}.get(outcome.selected_from, "plan")
    return Content.styled(f"✓ {what}: {describe(plan)}" if plan is not None else "✓ feasible", "$text-success")


class PlanStatus(Static):
    DEFAULT_CSS = """
    PlanStatus { width: 1fr; height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """


class StepScreen(Screen[None]):
    """Base of the six steps. Subclasses set ``STEP`` and implement ``compose_body`` and ``load``."""

    AUTO_FOCUS = None  # focus_first() decides where Enter lands
    STEP: ClassVar[str] = ""
    STEP_KEYS: ClassVar[list[tuple[str, str]]] = []
    BINDINGS = [Binding("escape", "back", "Back")]

    draft: reactive[Draft | None] = reactive(None, init=False, always_update=True)
    outcome: reactive[PlanOutcome | None] = reactive(None, init=False)
    planning: reactive[bool] = reactive(False, init=False)

    @property
    def index(self) -> int:
        return [k for k, _ in STEP_TITLES].index(self.STEP)

    @property
    def step_title(self) -> str:
        return dict(STEP_TITLES)[self.STEP]

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield StepIndicator(self.index)
        with VerticalScroll(classes="step-body", id=f"{self.STEP}-body"):
            yield from self.compose_body()
        with Horizontal(classes="nav"):
            yield Button("← Back", id="nav-back", compact=True, disabled=self.index == 0)
            yield PlanStatus(id="plan-status")
            yield Button(self.next_label(), id="nav-next", variant="primary", compact=True)
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def next_label(self) -> str:
        return "Save ⏎" if self.STEP == "save" else "Next →"

    # ---------------------------------------------------------------- attributes down
    def load(self, draft: Draft) -> None:
        """Fill the widgets from ``draft`` (called when the step is shown, never while typing)."""

    def show_outcome(self, outcome: PlanOutcome | None, planning: bool) -> None:
        """Show a new plan outcome (and whether a newer one is being computed)."""

    def watch_outcome(self) -> None:
        self._refresh_outcome()

    def watch_planning(self) -> None:
        self._refresh_outcome()

    def _refresh_outcome(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#plan-status", PlanStatus).update(status_text(self.outcome, self.planning))
        self.show_outcome(self.outcome, self.planning)

    def on_screen_resume(self) -> None:
        app = self.app
        self.draft = app.draft  # type: ignore[attr-defined]
        self.load(app.draft)  # type: ignore[attr-defined]
        self.set_reactive(StepScreen.outcome, app.outcome)  # type: ignore[attr-defined]
        self.set_reactive(StepScreen.planning, app.planning)  # type: ignore[attr-defined]
        self._refresh_outcome()
        self.focus_first()

    def focus_first(self) -> None:
        """Focus the widget where Enter accepts the step (subclasses override)."""
        self.query_one("#nav-next", Button).focus()

    # ---------------------------------------------------------------- messages up
    def edit(self, **changes: Any) -> None:
        self.post_message(Edited(**changes))

    def problems(self) -> list[tuple[Widget, str]]:
        """Fields whose current text is not valid, with the message; Next refuses while any remain."""
        out: list[tuple[Widget, str]] = []
        for inp in self.query(Input):
            if inp.display and not inp.disabled and inp.validators:
                res = inp.validate(inp.value)
                if res is not None and not res.is_valid:
                    out.append((inp, res.failure_descriptions[0] if res.failure_descriptions else "invalid"))
        return out

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "nav-next":
            event.stop()
            self.post_message(Navigate("next"))
        elif event.button.id == "nav-back":
            event.stop()
            self.post_message(Navigate("back"))

    def action_back(self) -> None:
        self.post_message(Navigate("back"))
