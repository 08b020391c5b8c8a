"""Profile errors: one line naming the file and the field path."""

from __future__ import annotations

from servewise.perfdata.errors import UsageError


class ProfileError(UsageError):
    """An invalid, unreadable or unsupported profile (exit 2); ``path`` is the file, ``field``
    the dotted field path."""
