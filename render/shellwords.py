"""Shell quoting for generated scripts: every user string goes through shlex.quote."""

from __future__ import annotations

import shlex


class ShellVar(str):
    """A token emitted as a double-quoted variable expansion (``"$NAME"``) instead of a literal."""

    __slots__ = ()


def quote(token: str) -> str:
    if isinstance(token, ShellVar):
        return f'"${{{token}}}"'
    return shlex.quote(token)


def arg_lines(args: list[str]) -> list[str]:
    """Group ``--flag value`` pairs on one line each, quoted."""
    lines: list[str] = []
    i = 0
    while i < len(args):
        tok = args[i]
        if tok.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            lines.append(f"{quote(tok)} {quote(args[i + 1])}")
            i += 2
        else:
            lines.append(quote(tok))
            i += 1
    return lines
