"""Shell quoting for generated scripts: every literal goes through shlex.quote."""

from __future__ import annotations

import re
import shlex

from servewise.render.command import Expr


def quote(token: str) -> str:
    """A literal, quoted for bash; an :class:`Expr` (already shell syntax) as is."""
    return str(token) if isinstance(token, Expr) else shlex.quote(token)


def array_item(token: str) -> str:
    """An element of a bash array literal, always quoted (shellcheck reads ``(0,1 2,3)`` as a mistake)."""
    if isinstance(token, Expr):
        return str(token)
    return f'"{token}"' if re.fullmatch(r"[A-Za-z0-9_.,:/@+=-]*", token) else shlex.quote(token)


def arg_lines(args: list[str]) -> list[str]:
    """One flag per line with its values, quoted."""
    lines: list[str] = []
    for tok in args:
        if lines and not (tok.startswith("-") and not isinstance(tok, Expr)) and lines[-1].startswith("-"):
            lines[-1] += " " + quote(tok)
        else:
            lines.append(quote(tok))
    return lines


def var_name(text: str) -> str:
    """``--master-port`` -> ``MASTER_PORT`` (a bash identifier)."""
    out = "".join(c if c.isalnum() else "_" for c in text.lstrip("-").upper()).strip("_")
    return out if out and not out[0].isdigit() else f"V_{out}"
