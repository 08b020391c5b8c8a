"""The servewise wizard: six steps from GPUs to a saved profile and deployment artifacts.

The app owns the draft and the latest plan outcome and hands them down to the active step; steps
post :class:`Edited` / :class:`Navigate` up. Every edit re-plans in an exclusive thread worker; a
result for an older draft is discarded. It calls the same ``plan`` / ``render`` / ``save_profile``
as the CLI, and exits with the CLI's exit codes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input
from textual.worker import Worker, WorkerState, get_current_worker

from servewise.perfdata.errors import ServewiseError
from servewise.profiles import load_profile, save_profile
from servewise.render import render
from servewise.render.output import is_artifact_dir, read_tree, write_tree
from servewise.wizard.detected import Detected, Detector, detect_local, not_asked
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.planning import PlanOutcome, compute_outcome
from servewise.wizard.screens.base import Edited, Navigate, StepScreen
from servewise.wizard.screens.dialogs import ConfirmScreen, HelpScreen, MessageScreen
from servewise.wizard.screens.engine import EngineScreen
from servewise.wizard.screens.hardware import HardwareScreen
from servewise.wizard.screens.model import ModelScreen
from servewise.wizard.screens.results import ResultsScreen
from servewise.wizard.screens.save import SaveScreen
from servewise.wizard.screens.workload import WorkloadScreen
from servewise.wizard.state import PLAN_INPUTS, Draft
from servewise.wizard.widgets.steps import STEP_TITLES

STEPS = [k for k, _ in STEP_TITLES]
SCREENS = {"hardware": HardwareScreen, "model": ModelScreen, "workload": WorkloadScreen, "engine": EngineScreen,
           "results": ResultsScreen, "save": SaveScreen}
REPLAN_DELAY_S = 0.05  # coalesce keystrokes; the search itself runs in a worker


class PlanReady(Message):
    def __init__(self, generation: int, outcome: PlanOutcome) -> None:
        super().__init__()
        self.generation, self.outcome = generation, outcome


class DetectionReady(Message):
    def __init__(self, detected: Detected) -> None:
        super().__init__()
        self.detected = detected


class WizardApp(App[int]):
    CSS_PATH = "wizard.tcss"
    TITLE = "servewise"
    SUB_TITLE = "plan LLM serving"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+n", "next", "Next", priority=True),
        Binding("f1", "help", "Help", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+r", "replan", "Plan again", show=False, priority=True),
    ]

    draft: var[Draft] = var(None, init=False)  # type: ignore[arg-type]
    outcome: var[PlanOutcome | None] = var(None, init=False)
    planning: var[bool] = var(False, init=False)
    detected: var[Detected | None] = var(None, init=False)

    def __init__(self, draft: Draft, *, detector: Detector = detect_local, replan_delay_s: float = REPLAN_DELAY_S,
                 debug: bool = False) -> None:
        super().__init__()
        self.set_reactive(WizardApp.draft, draft)
        self.detector, self.replan_delay_s, self.show_tracebacks = detector, replan_delay_s, debug
        self._generation = 0
        self._plan_timer: Timer | None = None
        self._save_pending = False
        self._hardware_touched = draft.base is not None
        self._clean: Draft | None = draft if draft.base is not None else None
        self.saved_code: int | None = None  # the exit code of the last save; None = nothing saved
        self._error_line: str | None = None

    # ------------------------------------------------------------------ start
    def on_mount(self) -> None:
        for name, cls in SCREENS.items():
            self.install_screen(cls(), name=name)
        self.push_screen("hardware")
        self._detect()
        self._schedule_plan()

    @work(thread=True, exclusive=True, group="detect", exit_on_error=False)
    def _detect(self) -> None:
        self.post_message(DetectionReady(self.detector()))

    def on_detection_ready(self, msg: DetectionReady) -> None:
        self.detected = msg.detected
        # The detected GPUs become the default while the user has not moved past the hardware step.
        if msg.detected.found and not self._hardware_touched and self.draft.base is None \
                and self.step in (None, "hardware"):
            self.draft = self.draft.with_(hardware=msg.detected.groups[0].hardware)
            if isinstance(self.screen, HardwareScreen):
                self.screen.load(self.draft)
                if not isinstance(self.focused, Input):  # unless the user is already typing
                    self.screen.focus_first()

    def watch_detected(self) -> None:
        hw = self.get_screen("hardware")
        if isinstance(hw, HardwareScreen):
            hw.detected = self.detected

    # ------------------------------------------------------------------ state down
    def watch_draft(self, old: Draft, new: Draft) -> None:
        if isinstance(self.screen, StepScreen):
            self.screen.draft = new
        if old.hardware != new.hardware:
            self._hardware_touched = True
        if any(getattr(old, k) != getattr(new, k) for k in (*PLAN_INPUTS, "picked")):
            self._schedule_plan()
        elif self.outcome is not None:
            self.outcome = replace(self.outcome, draft=new)

    def watch_outcome(self) -> None:
        if isinstance(self.screen, StepScreen):
            self.screen.outcome = self.outcome

    def watch_planning(self) -> None:
        if isinstance(self.screen, StepScreen):
            self.screen.planning = self.planning

    # ------------------------------------------------------------------ planning
    def _schedule_plan(self) -> None:
        self._generation += 1
        self.planning = True
        if self._plan_timer is not None:
            self._plan_timer.stop()
        gen, draft = self._generation, self.draft
        if self.replan_delay_s > 0:
            self._plan_timer = self.set_timer(self.replan_delay_s, partial(self._plan, gen, draft))
        else:
            self._plan_timer = None
            self._plan(gen, draft)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def _plan(self, generation: int, draft: Draft) -> None:
        outcome = compute_outcome(draft)
        if not get_current_worker().is_cancelled:
            self.post_message(PlanReady(generation, outcome))

    def on_plan_ready(self, msg: PlanReady) -> None:
        if msg.generation != self._generation:
            return  # stale: the draft changed while this plan ran
        self.outcome = msg.outcome
        self.planning = False
        if self._save_pending:
            self._save_pending = False
            self.action_save()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "plan" and event.state == WorkerState.ERROR:
            err = event.worker.error
            self.outcome = PlanOutcome(self.draft, error=f"internal error while planning ({type(err).__name__}: "
                                                         f"{err}); please report it", error_code=ExitCode.INTERNAL)
            self.planning = False
        elif event.worker.group == "detect" and event.state == WorkerState.ERROR:
            self.detected = Detected(error=f"GPU detection failed: {event.worker.error}")

    def action_replan(self) -> None:
        self._schedule_plan()

    def action_cancel_plan(self) -> None:
        if not self.planning:
            return
        self._generation += 1
        if self._plan_timer is not None:
            self._plan_timer.stop()
        self.workers.cancel_group(self, "plan")
        self.outcome = PlanOutcome(self.draft, error="search cancelled (ctrl+r plans again)",
                                   error_code=ExitCode.INTERRUPT)
        self.planning = False
        self._save_pending = False

    # ------------------------------------------------------------------ messages up
    def on_edited(self, msg: Edited) -> None:
        self.draft = self.draft.with_(**msg.changes)

    def on_navigate(self, msg: Navigate) -> None:
        {"next": self.action_next, "back": self.action_back}.get(msg.where, partial(self.goto, msg.where))()

    # ------------------------------------------------------------------ navigation
    @property
    def step(self) -> str | None:
        return self.screen.STEP if isinstance(self.screen, StepScreen) else None

    def goto(self, step: str) -> None:
        if step in STEPS and isinstance(self.screen, StepScreen) and step != self.step:
            self.switch_screen(step)

    def action_goto(self, step: str) -> None:
        self.goto(step)

    def action_next(self) -> None:
        screen = self.screen
        if not isinstance(screen, StepScreen):
            return
        if self._refuse_invalid_fields():
            return
        if screen.STEP == "save":
            self.action_save(from_save_step=True)
        else:
            self.goto(STEPS[STEPS.index(screen.STEP) + 1])

    def _refuse_invalid_fields(self) -> bool:
        """Whether a field of the active step holds text that is not valid (its value is then not in
        the draft); focuses the first such field and says why."""
        screen = self.screen
        problems = screen.problems() if isinstance(screen, StepScreen) else []
        if problems:
            widget, message = problems[0]
            widget.focus()
            self.notify(message, title="Check this field", severity="error")
        return bool(problems)

    def action_back(self) -> None:
        if self.step and self.step != STEPS[0]:
            self.goto(STEPS[STEPS.index(self.step) - 1])

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        step = self.screen if isinstance(self.screen, StepScreen) else None
        self.push_screen(HelpScreen(step.step_title if step else "", step.STEP_KEYS if step else []))

    # ------------------------------------------------------------------ saving
    def action_save(self, from_save_step: bool = False) -> None:
        if self._refuse_invalid_fields():  # never save a value other than the one on screen
            return
        if self.planning:
            self._save_pending = True
            self.notify("Saving as soon as the plan is ready…")
            return
        outcome, draft = self.outcome, self.draft
        if outcome is None or outcome.error:
            self.push_screen(MessageScreen("Nothing to save yet", outcome.error if outcome else "planning…"))
            return
        try:
            profile = draft.to_profile(outcome.result)
            files = render(profile) if draft.write_artifacts and profile.plan is not None else None
        except ServewiseError as e:
            self.push_screen(MessageScreen("Could not render the artifacts", str(e)))
            return
        out = draft.artifacts_path()
        if files is not None and out.is_dir() and not is_artifact_dir(out):
            self.push_screen(MessageScreen("Choose another artifacts folder", f"{out} holds files servewise did not "
                                           "write; servewise never replaces such a folder"))
            return
        existing = read_tree(out) if files is not None else None
        if files is not None and existing and existing != files:
            self.push_screen(ConfirmScreen("Replace the artifacts?", f"{out} already holds other files; "
                                           "replace the whole folder?", yes="Replace", no="Cancel"),
                             lambda yes: self._write(profile, files, out, from_save_step) if yes else None)
            return
        self._write(profile, files, out, from_save_step)

    def _write(self, profile, files, out: Path, from_save_step: bool) -> None:  # type: ignore[no-untyped-def]
        path = Path(self.draft.save_path).expanduser()
        try:
            save_profile(profile, path)
        except ServewiseError as e:
            self.push_screen(MessageScreen("Could not save the profile", str(e)))
            return
        lines = [f"profile → {path}"]
        if files is not None:
            try:
                write_tree(files, out, force=True)
            except (ServewiseError, OSError) as e:
                self.push_screen(MessageScreen("Profile saved; the artifacts were not written", str(e)))
                return
            lines.append(f"artifacts → {out}/ ({len(files)} files)")
        elif profile.plan is None:
            lines.append("no plan pinned: nothing fits or meets the SLA, so no artifacts were written")
        self._clean = self.draft
        self.saved_code = ExitCode.OK if profile.plan is not None else ExitCode.INFEASIBLE
        summary = "\n".join(lines)
        if from_save_step:
            self.push_screen(ConfirmScreen("Saved", summary, yes="Quit", no="Keep editing"),
                             lambda yes: self.exit(self.saved_code) if yes else None)
        else:
            self.notify(summary, title="Saved")

    # ------------------------------------------------------------------ quitting
    @property
    def dirty(self) -> bool:
        return self._clean is None or self.draft != self._clean

    def exit_code(self) -> int:
        return self.saved_code if self.saved_code is not None else ExitCode.INTERRUPT

    async def action_quit(self) -> None:
        if not self.dirty:
            self.exit(self.exit_code())
            return
        self.push_screen(ConfirmScreen("Quit without saving?", "Your changes are not saved (ctrl+s saves them).",
                                       yes="Quit", no="Stay"),
                         lambda yes: self.exit(self.exit_code()) if yes else None)

    # ------------------------------------------------------------------ palette
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Save", "Write the profile and the artifacts (ctrl+s)", self.action_save)
        for i, (key, title) in enumerate(STEP_TITLES, 1):
            yield SystemCommand(f"Go to step {i}: {title}", f"Show the {title} step", partial(self.goto, key))
        yield SystemCommand("Plan again", "Re-run the search for the current inputs (ctrl+r)", self.action_replan)
        yield SystemCommand("Cancel the search", "Stop waiting for the running search (ctrl+x)",
                            self.action_cancel_plan)
        yield SystemCommand("Help", "Every key binding (f1)", self.action_help)
        yield from super().get_system_commands(screen)

    # ------------------------------------------------------------------ errors
    def _fatal_error(self) -> None:
        """A bug: one line instead of Textual's traceback (the traceback with --debug)."""
        if self.show_tracebacks:
            super()._fatal_error()
            return
        err = self._exception
        detail = " ".join(str(err).split())[:300]
        self.bell()
        self._return_code = ExitCode.INTERNAL
        if self._error_line is None:  # the first error is the one to report
            self._error_line = (f"servewise: internal error in the wizard ({type(err).__name__}: {detail}); "
                                "rerun with --debug for the traceback and please report it")
        self._close_messages_no_wait()

    def _print_error_renderables(self) -> None:
        if self._error_line is None:
            super()._print_error_renderables()
            return
        sys.stderr.write(self._error_line + "\n")
        self._exit_renderables.clear()


def run_wizard(profile: str | None = None, save: str | None = None, *, detect: bool = True,
               debug: bool = False) -> int:
    """Open the wizard (prefilled from ``profile``); returns the CLI exit code.

    0 saved with a plan · 1 saved inputs only (nothing feasible) · 130 quit without saving ·
    2 / 3 a profile that cannot be opened (raised before the screen opens) · 70 a bug.
    """
    if profile:
        draft = Draft.from_profile(load_profile(profile), save_path=save, source=profile)
    else:
        draft = Draft.new(save)
    debug = debug or os.environ.get("SERVEWISE_DEBUG", "") not in ("", "0")
    app = WizardApp(draft, detector=detect_local if detect else not_asked, debug=debug)
    code = app.run()
    if code is None:
        return int(app.return_code or 0) or app.exit_code()
    return int(code)
