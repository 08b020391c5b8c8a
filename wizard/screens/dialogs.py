"""Modal dialogs: help with every key binding, a yes/no question, a message (errors included)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

GENERAL_KEYS = (
    ("enter", "accept this step's values and go on (on the Save step: save)"),
    ("ctrl+n", "next step"),
    ("escape", "previous step (or close this dialog)"),
    ("tab / shift+tab", "move between fields"),
    ("ctrl+s", "save the profile and artifacts, from any step"),
    ("ctrl+r", "plan again now"),
    ("ctrl+p", "command palette: go to a step, save, re-plan, cancel the search, help, quit"),
    ("f1", "this help"),
    ("ctrl+q", "quit (asks when there are unsaved changes)"),
)


class HelpScreen(ModalScreen[None]):
    """Every binding: the general keys, then those of the step it was opened from."""

    BINDINGS = [Binding("escape,f1,enter", "dismiss", "Close", priority=True)]

    def __init__(self, step_title: str, step_keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.step_title, self.step_keys = step_title, step_keys

    def compose(self) -> ComposeResult:
        lines = [Content.styled("Keys everywhere", "bold")]
        lines += [Content.assemble((f"  {k:<16}", "$accent bold"), d) for k, d in GENERAL_KEYS]
        if self.step_keys:
            lines += [Content(""), Content.styled(f"On the {self.step_title} step", "bold")]
            lines += [Content.assemble((f"  {k:<16}", "$accent bold"), d) for k, d in self.step_keys]
        lines += [Content(""), Content.styled("Every step has defaults: pressing Enter on each one reaches the "
                                              "Save step, and Enter there saves.", "$text-muted")]
        with Vertical(classes="dialog help"):
            yield Static(Content.styled("servewise wizard — help", "bold"), classes="dialog-title")
            with VerticalScroll():
                yield Static(Content("\n").join(lines))
            yield Static(Content.styled("escape / f1 / enter closes; ↑ / ↓ scroll", "$text-muted"),
                         classes="dialog-foot")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # the arrows and page keys scroll the list


class ConfirmScreen(ModalScreen[bool]):
    """A question with two buttons; the ``yes`` button has the focus."""

    BINDINGS = [Binding("escape", "answer(False)", "No", show=False)]

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.title_text, self.message, self.yes, self.no = title, message, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content.styled(self.title_text, "bold"), classes="dialog-title")
            yield Static(self.message, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.yes, id="yes", variant="primary", compact=True)
                yield Button(self.no, id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class MessageScreen(ModalScreen[None]):
    """A message with one button, for errors that need more than an inline line."""

    BINDINGS = [Binding("escape", "dismiss", "Close", show=False)]

    def __init__(self, title: str, message: str, *, error: bool = True) -> None:
        super().__init__()
        self.title_text, self.message, self.error = title, message, error

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog" + (" error" if self.error else "")):
            yield Static(Content.styled(self.title_text, "bold"), classes="dialog-title")
            yield Static(self.message, classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", id="ok", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)
