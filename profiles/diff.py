"""What changed between two profiles: inputs, plan and estimates, as dotted field paths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servewise.profiles.schema import Profile

_SECTIONS = {"plan": "plan", "calibration": "calibration", "deploy": "deploy", "generator": "generator"}


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    @property
    def section(self) -> str:
        """inputs | plan | estimates | calibration | deploy | generator."""
        if self.path.startswith("plan.estimates"):
            return "estimates"
        head = self.path.split(".", 1)[0]
        return _SECTIONS.get(head, "inputs")

    @property
    def kind(self) -> str:
        if self.old is _MISSING:
            return "added"
        if self.new is _MISSING:
            return "removed"
        return "changed"


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


_MISSING: Any = _Missing()


def _walk(a: Any, b: Any, path: str, out: list[Change]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            _walk(a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}" if path else str(k), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
            any(isinstance(x, dict) for x in a + b):
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(Change(path, a, b))


def diff_profiles(a: Profile, b: Profile) -> list[Change]:
    """Field-level changes from ``a`` to ``b`` in document order (``plan.mode`` switching agg/disagg
    shows the whole plan block as removed/added)."""
    out: list[Change] = []
    _walk(a.model_dump(mode="json"), b.model_dump(mode="json"), "", out)
    return out


def is_missing(value: Any) -> bool:
    return value is _MISSING
