"""Printing: JSON to stdout (one document), human text to stdout, diagnostics to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel

GIB = 1024**3


def print_json(data: Any) -> None:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def info(message: str) -> None:
    """A diagnostic line on stderr (never in --json success output)."""
    sys.stderr.write(message.rstrip("\n") + "\n")


def gib(n: float | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f}"


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A plain-text table; ``align`` is one char per column, 'l' or 'r'."""
    cols = len(headers)
    align = align or "l" * cols
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(cols)]

    def fmt(row: list[str]) -> str:
        cells = [str(c).rjust(w) if a == "r" else str(c).ljust(w) for c, w, a in zip(row, widths, align)]
        return "  ".join(cells).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), sep, *(fmt(r) for r in rows)])
