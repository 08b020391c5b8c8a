"""The step indicator: where you are, what is done, and a click target per step."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

STEP_TITLES = (
    ("hardware", "Hardware"),
    ("model", "Model"),
    ("workload", "Workload & SLA"),
    ("engine", "Engine"),
    ("results", "Results"),
    ("save", "Save"),
)


class StepIndicator(Widget):
    """``1 Hardware › 2 Model › …`` with the current step highlighted; click a step to go there."""

    DEFAULT_CSS = """
    StepIndicator { height: 1; width: 1fr; padding: 0 1; }
    """

    current: reactive[int] = reactive(0)

    def __init__(self, current: int = 0, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.current = current

    def render(self) -> Content:
        parts: list[Content] = []
        narrow = self.size.width and self.size.width < 84
        for i, (key, title) in enumerate(STEP_TITLES):
            if narrow and i != self.current and key == "workload":
                title = "Workload"
            mark = "✓" if i < self.current else str(i + 1)
            label = f" {mark} {title} "
            if i == self.current:
                style = "$text-accent on $accent-muted bold"
            elif i < self.current:
                style = "$text-success"
            else:
                style = "$text-muted"
            parts.append(Content.from_markup(f"[{style} @click=app.goto('{key}')]{label}[/]"))
            if i < len(STEP_TITLES) - 1:
                parts.append(Content.styled("›", "$text-muted"))
        return Content("").join(parts)
