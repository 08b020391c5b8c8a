"""Step 6: where the profile and the artifacts go, which targets, and a preview of every file."""

from __future__ import annotations

import os
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.validation import Function
from textual.widgets import Button, Checkbox, Input, Label, Static

from servewise.perfdata.errors import ServewiseError
from servewise.profiles.schema import Deploy
from servewise.render import render
from servewise.wizard.planning import PlanOutcome
from servewise.wizard.screens.base import Navigate, StepScreen
from servewise.wizard.state import Draft, available_targets
from servewise.wizard.widgets.field import Field, Tick
from servewise.wizard.widgets.preview import ArtifactPreview

TARGET_TITLES = {"shell": "shell", "compose": "compose", "helm": "helm", "k8s": "k8s"}


def _path_ok(text: str) -> bool:
    return bool(text.strip()) and "\0" not in text


def _file_ok(text: str) -> bool:
    """A path that names a file: not blank, and not a bare folder such as "/", "." or "~"."""
    return _path_ok(text) and not text.strip().endswith(("/", os.sep)) and \
        Path(os.path.expanduser(text.strip())).name not in ("", ".", "..")


class PreviewReady(Message):
    def __init__(self, key: object, files: dict[str, str] | None, error: str | None) -> None:
        super().__init__()
        self.key, self.files, self.error = key, files, error


class SaveScreen(StepScreen):
    STEP = "save"
    STEP_KEYS = [("enter", "save the profile (and the artifacts) — also ctrl+s from any step"),
                 ("↑ / ↓ in the tree", "preview a file")]

    def compose_body(self) -> ComposeResult:
        draft: Draft = self.app.draft  # type: ignore[attr-defined]
        yield Field("Profile file", input_id="save-path", wide=True,
                    validators=[Function(_file_ok, "a file path, e.g. profile.yaml")])
        with Horizontal(classes="fields-row"):
            yield Label("Artifacts", classes="field-label")
            yield Tick("write them too", value=draft.write_artifacts, id="write-artifacts", compact=True)
        yield Field("Artifacts folder", input_id="artifacts-dir", wide=True,
                    validators=[Function(_path_ok, "a folder path")], hint="replaced whole (asks first)")
        can = set(available_targets())
        with Horizontal(classes="fields-row targets"):
            yield Label("Targets", classes="field-label")
            for t, title in TARGET_TITLES.items():
                yield Tick(title, value=t in draft.deploy.targets, id=f"target-{t}", compact=True,
                               disabled=t not in can and t not in draft.deploy.targets)
        missing = [t for t in TARGET_TITLES if t not in can]
        if missing:
            yield Static(f"{', '.join(missing)}: not in this build yet", classes="muted indent")
        yield Static(id="targets-error", classes="field-error")
        yield Static("Preview", classes="section-title")
        yield ArtifactPreview(id="preview")

    # ---------------------------------------------------------------- attributes down
    def load(self, draft: Draft) -> None:
        with self.prevent(Input.Changed, Checkbox.Changed):
            self.query_one("#save-path", Input).value = draft.save_path
            self.query_one("#artifacts-dir", Input).value = str(draft.artifacts_path())
            self.query_one("#write-artifacts", Checkbox).value = draft.write_artifacts
            for t in TARGET_TITLES:
                self.query_one(f"#target-{t}", Checkbox).value = t in draft.deploy.targets
        self.query_one("#targets-error", Static).display = False
        self._refresh_preview()

    def show_outcome(self, outcome: PlanOutcome | None, planning: bool) -> None:
        self._refresh_preview()

    def focus_first(self) -> None:
        self.query_one("#nav-next", Button).focus()

    def _refresh_preview(self) -> None:
        if not self.is_mounted:
            return
        preview = self.query_one("#preview", ArtifactPreview)
        draft, outcome = self.app.draft, self.outcome  # type: ignore[attr-defined]
        preview.root_label = str(draft.artifacts_path())
        preview.display = draft.write_artifacts
        if self.planning or outcome is None:
            preview.error, preview.files = None, None
            return
        if outcome.error:
            preview.files, preview.error = None, f"nothing to render: {outcome.error}"
            return
        self._render_preview(draft, outcome)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _render_preview(self, draft: Draft, outcome: PlanOutcome) -> None:
        key = (draft, outcome)
        try:
            profile = draft.to_profile(outcome.result)
            if profile.plan is None:
                self.post_message(PreviewReady(key, None, "nothing to render: no feasible plan to pin"))
                return
            self.post_message(PreviewReady(key, render(profile), None))
        except ServewiseError as e:
            self.post_message(PreviewReady(key, None, str(e)))

    def on_preview_ready(self, msg: PreviewReady) -> None:
        if msg.key != (self.app.draft, self.outcome):  # type: ignore[attr-defined]
            return  # stale: the draft or the plan changed since
        preview = self.query_one("#preview", ArtifactPreview)
        preview.files, preview.error = msg.files, msg.error

    # ---------------------------------------------------------------- messages up
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.validation_result is not None and not event.validation_result.is_valid:
            return
        value = event.value.strip()
        draft: Draft = self.app.draft  # type: ignore[attr-defined]
        if event.input.id == "save-path":
            self.edit(save_path=value)
            if draft.artifacts_dir is None:  # the folder follows the profile's name until set by hand
                with self.prevent(Input.Changed):
                    self.query_one("#artifacts-dir", Input).value = str(draft.with_(save_path=value).artifacts_path())
        elif event.input.id == "artifacts-dir":
            derived = draft.with_(artifacts_dir=None).artifacts_path()
            self.edit(artifacts_dir=None if Path(value).expanduser() == derived else value)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "write-artifacts":
            self.edit(write_artifacts=event.value)
            self.query_one("#artifacts-dir", Input).disabled = not event.value
            return
        targets = [t for t in TARGET_TITLES if self.query_one(f"#target-{t}", Checkbox).value]
        err = self.query_one("#targets-error", Static)
        err.display = not targets
        if not targets:
            err.update("✗ choose at least one target")
            return
        draft: Draft = self.app.draft  # type: ignore[attr-defined]
        self.edit(deploy=Deploy.model_validate({**draft.deploy.model_dump(), "targets": targets}))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.post_message(Navigate("next"))

    def problems(self):  # type: ignore[no-untyped-def]
        out = super().problems()
        if not any(self.query_one(f"#target-{t}", Checkbox).value for t in TARGET_TITLES):
            out.append((self.query_one("#target-shell", Checkbox), "choose at least one target"))
        return out
