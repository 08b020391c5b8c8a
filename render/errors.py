"""Render errors."""

from servewise.perfdata.errors import UsageError


class RenderError(UsageError):
    """A profile that cannot be rendered as asked (exit 2): no plan, an engine feature the pinned
    version lacks, a conflicting extra argument, an invalid name."""
