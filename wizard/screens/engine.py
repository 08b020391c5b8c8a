"""Step 4: the serving engine, its version and image, and which modes the search considers."""

from __future__ import annotations

from pydantic import ValidationError
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.validation import ValidationResult, Validator
from textual.widgets import Checkbox, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from servewise.perfdata import all_engines
from servewise.profiles.schema import Engine, Search
from servewise.profiles.store import validation_message
from servewise.wizard.flags import ENGINES
from servewise.wizard.screens.base import Navigate, StepScreen
from servewise.wizard.state import Draft
from servewise.wizard.widgets.field import Field, Tick

ENGINE_TITLES = {"vllm": "vLLM", "sglang": "SGLang", "trtllm": "TensorRT-LLM"}
DEFAULT_VERSION = ""   # the Select value that stands for "servewise's default version"


class ImageValidator(Validator):
    """A pinned container image, as the profile schema accepts it (blank = the version's image)."""

    def validate(self, value: str) -> ValidationResult:
        if not value.strip():
            return self.success()
        try:
            Engine(image=value.strip())
        except ValidationError as e:
            return self.failure(validation_message(e)[1])
        return self.success()


def version_options(name: str) -> list[tuple[str, str]]:
    spec = all_engines().get(name)
    if spec is None:
        return [("default", DEFAULT_VERSION)]
    return [(f"default ({spec.default_version})", DEFAULT_VERSION)] + [(v.version, v.version) for v in spec.versions]


class EngineScreen(StepScreen):
    STEP = "engine"
    STEP_KEYS = [("↑ / ↓", "choose the engine"), ("enter", "accept and go on"),
                 ("space", "toggle a search mode (when focused)")]

    def compose_body(self) -> ComposeResult:
        known = all_engines()
        yield Static("Engine", classes="section-title")
        yield OptionList(*[Option(ENGINE_TITLES[n] if n in known else f"{ENGINE_TITLES[n]} (no data in this build)",
                                  id=n, disabled=n not in known) for n in ENGINES], id="engines", classes="engines")
        draft: Draft = self.app.draft  # type: ignore[attr-defined]
        with Horizontal(classes="fields-row"):
            yield Label("Version", classes="field-label")
            yield Select(version_options(draft.engine.name), value=draft.engine.version or DEFAULT_VERSION,
                         id="engine-version", allow_blank=False, compact=True)
        yield Field("Image", input_id="engine-image", wide=True, validators=[ImageValidator()])
        yield Static("Modes to search", classes="section-title")
        with Horizontal(classes="fields-row modes"):
            yield Tick("aggregated", value="agg" in draft.search.modes, id="mode-agg", compact=True)
            yield Tick("disaggregated (prefill / decode pools)", value="disagg" in draft.search.modes,
                           id="mode-disagg", compact=True)
        yield Static(id="modes-error", classes="field-error")
        yield Static(id="engine-facts", classes="muted")

    # ---------------------------------------------------------------- attributes down
    def load(self, draft: Draft) -> None:
        eng = draft.engine
        engines = self.query_one("#engines", OptionList)
        with engines.prevent(OptionList.OptionHighlighted):
            engines.highlighted = engines.get_option_index(eng.name)
        self._reset_versions(eng.name, eng.version)
        with self.prevent(Input.Changed, Checkbox.Changed):
            self.query_one("#engine-image", Input).value = eng.image or ""
            self.query_one("#mode-agg", Checkbox).value = "agg" in draft.search.modes
            self.query_one("#mode-disagg", Checkbox).value = "disagg" in draft.search.modes
        self._show_facts(eng)
        self.query_one("#modes-error", Static).display = False

    def _reset_versions(self, name: str, version: str | None) -> None:
        sel = self.query_one("#engine-version", Select)
        with self.prevent(Select.Changed):
            sel.set_options(version_options(name))
            sel.value = version or DEFAULT_VERSION

    def _show_facts(self, eng: Engine) -> None:
        spec = all_engines().get(eng.name)
        facts = self.query_one("#engine-facts", Static)
        image_input = self.query_one("#engine-image", Input)
        if spec is None:
            facts.update("")
            return
        try:
            v = spec.version(eng.version)
        except Exception:  # noqa: BLE001 - an unknown version is reported by the plan status line
            facts.update("")
            return
        image_input.placeholder = f"{v.image} (blank = this pinned image)"
        of = "total GPU memory" if v.memory_knob.of == "total" else "the memory free after loading"
        facts.update(f"{spec.display_name} {v.version}: image {v.image}; {v.memory_knob.flag} is a fraction of {of}; "
                     f"disaggregated serving {'supported' if v.disaggregation else 'not supported'}.")

    def focus_first(self) -> None:
        self.query_one("#engines", OptionList).focus()

    # ---------------------------------------------------------------- messages up
    def _set_engine(self, **fields: object) -> None:
        assert self.draft is not None
        new = Engine.model_validate({**self.draft.engine.model_dump(), **fields})
        self._show_facts(new)
        if new != self.draft.engine:
            self.edit(engine=new)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = event.option.id
        if event.option_index != event.option_list.highlighted:
            return  # stale: the highlight moved on (or was set from the draft) since
        if self.draft is None or name is None or name == self.draft.engine.name:
            return
        self._reset_versions(name, None)
        with self.prevent(Input.Changed):
            self.query_one("#engine-image", Input).value = ""
        self._set_engine(name=name, version=None, image=None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.on_option_list_option_highlighted(event)  # type: ignore[arg-type]
        self.post_message(Navigate("next"))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "engine-version":
            self._set_engine(version=str(event.value) or None)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "engine-image" and (event.validation_result is None or event.validation_result.is_valid):
            self._set_engine(image=event.value.strip() or None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.post_message(Navigate("next"))

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        assert self.draft is not None
        modes = [m for m in ("agg", "disagg") if self.query_one(f"#mode-{m}", Checkbox).value]
        err = self.query_one("#modes-error", Static)
        if not modes:
            err.update("✗ choose at least one mode")
            err.display = True
            return
        err.display = False
        search = Search.model_validate({**self.draft.search.model_dump(), "modes": modes})
        if search != self.draft.search:
            self.edit(search=search)

    def problems(self):  # type: ignore[no-untyped-def]
        out = super().problems()
        if not any(self.query_one(f"#mode-{m}", Checkbox).value for m in ("agg", "disagg")):
            out.append((self.query_one("#mode-agg", Checkbox), "choose at least one mode"))
        return out
