"""A labelled input with its validation message underneath."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.validation import Validator
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Static


class Field(Widget):
    """``label [input] hint`` on one row and the validation message (if any) below it."""

    DEFAULT_CSS = """
    Field { height: auto; layout: vertical; margin-bottom: 0; }
    Field > .field-row { height: 1; layout: horizontal; }
    Field .field-label { width: 22; color: $text-muted; }
    Field Input { width: 18; }
    Field Input.-wide { width: 1fr; }
    Field .field-hint { width: 1fr; padding-left: 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    Field .field-error { color: $text-error; padding-left: 22; height: auto; }
    """

    def __init__(self, label: str, *, input_id: str, value: str = "", placeholder: str = "",
                 validators: Iterable[Validator] = (), hint: str = "", wide: bool = False,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.label, self.hint = label, hint
        self.input = Input(value=value, placeholder=placeholder, id=input_id, validators=list(validators),
                           validate_on=["changed", "submitted"], compact=True, classes="-wide" if wide else "")

    def compose(self) -> ComposeResult:
        with Widget(classes="field-row"):
            yield Label(self.label, classes="field-label")
            yield self.input
            if self.hint:
                yield Static(self.hint, classes="field-hint")
        yield Static("", classes="field-error")

    def on_input_changed(self, event: Input.Changed) -> None:
        res = event.validation_result
        self.show_error(None if res is None or res.is_valid else "; ".join(res.failure_descriptions))

    def show_error(self, message: str | None) -> None:
        err = self.query_one(".field-error", Static)
        err.update(f"✗ {message}" if message else "")
        err.display = bool(message)

    def on_mount(self) -> None:
        self.show_error(None)


class Tick(Checkbox):
    """A checkbox whose mark shows its state by glyph as well as colour (✓ on, blank off)."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # noqa: N802 - Textual's name
        return "✓" if self.value else " "
