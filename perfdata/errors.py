"""The error categories every servewise package builds on.

Each package defines its own errors as subclasses of these categories; the front doors
(CLI, TUI) map a category to an exit code in one place (``servewise.wizard.exitcodes``).
Every message is one line that names the file, field or flag at fault and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


def one_line(text: object) -> str:
    """``text`` on one line: runs of whitespace (newlines included) become one space, and other
    control characters are shown escaped, so a message never moves a terminal's cursor."""
    flat = " ".join(str(text).split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)


class ServewiseError(Exception):
    """Base of every error meant for a user: ``str(err)`` is one line.

    ``path`` names the file and ``field`` the profile field (dotted path, e.g. ``workload.isl``)
    at fault, when known; the front door shows them as ``FILE: FIELD: message``, or turns the
    field into its command-line flag when the request came from flags.
    """

    def __init__(self, message: str, *, field: str | None = None, path: str | None = None) -> None:
        self.message = one_line(message)
        self.field, self.path = field, path
        super().__init__(self.message)

    def __str__(self) -> str:
        return ": ".join(one_line(p) for p in (self.path, self.field) if p) + \
            (": " if self.path or self.field else "") + self.message


@contextmanager
def located(*, path: str | None = None, field: str | None = None) -> Iterator[None]:
    """Errors raised inside the block that name no file (field) are about ``path`` (``field``)."""
    try:
        yield
    except ServewiseError as e:
        if e.path is None and path is not None:
            e.path = path
        if e.field is None and field is not None:
            e.field = field
        raise


def error_field(field: str):  # type: ignore[no-untyped-def]
    """Errors raised inside the block that name no field are about ``field``."""
    return located(field=field)


class UsageError(ServewiseError):
    """Bad flags or values, an invalid profile, a refused overwrite (exit 2)."""


class DataError(ServewiseError):
    """Unknown model / GPU / engine, missing or unreachable data (exit 3)."""


class DeviceError(ServewiseError):
    """GPU detection was asked for and is unavailable (exit 4)."""


class EndpointError(ServewiseError):
    """A benchmarked endpoint is unreachable or failing (exit 6)."""


class UnknownIdError(DataError):
    """An id that is not in a catalog; the message suggests the closest ids."""

    def __init__(self, kind: str, value: str, known: Iterable[str], hint: str = "") -> None:
        known = sorted(set(known))
        self.kind, self.value, self.suggestions = kind, value, closest(value, known)
        tip = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} {value!r}{tip}{(' ' + hint) if hint else ''}")


def closest(value: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The ids nearest to ``value``: substring matches first, then by edit similarity."""
    known = list(known)
    low = value.lower()
    subs = [k for k in known if low and low in k.lower()]
    by_ratio = difflib.get_close_matches(low, [k.lower() for k in known], n=n, cutoff=0.4)
    lowered = {k.lower(): k for k in known}
    out: list[str] = []
    for k in subs + [lowered[r] for r in by_ratio]:
        if k not in out:
            out.append(k)
    return out[:n]
