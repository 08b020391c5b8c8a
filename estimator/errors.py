"""Estimator errors."""

from __future__ import annotations

from servewise.perfdata.errors import UsageError


class ConfigError(UsageError):
    """A configuration that cannot be run at all (TP not dividing heads, max length beyond the
    model's positions, a dtype the GPU or engine cannot use); exit 2. ``field`` is the profile
    field path at fault (``plan.worker.tp``); the CLI shows the matching flag."""
