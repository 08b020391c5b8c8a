"""Estimator errors."""

from __future__ import annotations

from servewise.perfdata.errors import UsageError


class ConfigError(UsageError):
    """A configuration that cannot be run at all (TP not dividing heads, max length beyond the
    model's positions, a dtype the GPU or engine cannot use); exit 2, names the flag or field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)
