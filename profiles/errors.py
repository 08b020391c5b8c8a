"""Profile errors: one line naming the file and the field path."""

from __future__ import annotations

from servewise.perfdata.errors import UsageError


class ProfileError(UsageError):
    """An invalid, unreadable or unsupported profile (exit 2)."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None) -> None:
        self.path, self.field = path, field
        where = f"{path}: " if path else ""
        at = f"{field}: " if field else ""
        super().__init__(f"{where}{at}{message}")
