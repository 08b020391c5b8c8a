"""Accepted command-line flags per engine version, and the checks render applies with them.

The index files in ``render/flags/`` are derived from the engines' own argument definitions
(the per-version flag lists named in each file's ``source``): for every flag only its value
type, arity, enforced or documented values and other accepted names. ``tests/test_render_flag_index.py``
re-derives them from the reference lists and fails when they drift.

Render uses them twice: every command line it emits is checked before it is written, and
``deploy.extra_args`` are refused when a flag is unknown, mistyped, or one servewise sets itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from servewise.render.errors import RenderError


@dataclass(frozen=True)
class Flag:
    name: str                    # canonical spelling
    type: str                    # int | float | str | json | bool
    arity: str                   # "0" (switch), "1", "?" (optional value), "+" (one or more)
    values: tuple[str, ...] | None
    deprecated: bool


@dataclass(frozen=True)
class FlagIndex:
    key: str                     # e.g. "vllm-0.33.0" or "dynamo-1.6.1:vllm"
    label: str                   # for messages, e.g. "vLLM 0.33.0"
    flags: dict[str, Flag]
    names: dict[str, str]        # every accepted spelling -> canonical name
    underscore_equivalent: bool
    frontend_only: frozenset[str]

    def canonical(self, token: str) -> str | None:
        name = token.split("=", 1)[0]
        if name in self.names:
            return self.names[name]
        if self.underscore_equivalent and name.startswith("--"):
            return self.names.get("--" + name[2:].replace("_", "-"))
        return None

    def merged(self, other: FlagIndex, label: str) -> FlagIndex:
        """Flags of ``self`` plus those of ``other`` that ``self`` does not define (e.g. dynamo.vllm
        over vLLM's engine flags)."""
        flags = {**{k: v for k, v in other.flags.items() if k not in other.frontend_only}, **self.flags}
        names = {**{k: v for k, v in other.names.items() if v in flags and v not in other.frontend_only},
                 **self.names}
        return FlagIndex(f"{self.key}+{other.key}", label, flags, names,
                         self.underscore_equivalent or other.underscore_equivalent, frozenset())


@cache
def load_index(key: str, label: str | None = None) -> FlagIndex:
    """``key`` is a file stem in ``render/flags`` (``vllm-0.33.0``), or ``dynamo-1.6.1:vllm`` for one
    command of a multi-command file."""
    stem, _, command = key.partition(":")
    try:
        text = resources.files("servewise.render").joinpath("flags", f"{stem}.json").read_text("utf-8")
    except FileNotFoundError:
        raise RenderError(f"no accepted-flags list for {stem} in this servewise version") from None
    doc = json.loads(text)
    body = doc["commands"][command] if command else doc
    flags: dict[str, Flag] = {}
    names: dict[str, str] = {}
    for name, spec in body["flags"].items():
        flags[name] = Flag(name, spec["type"], spec["arity"],
                           tuple(spec["values"]) if spec.get("values") else None, bool(spec.get("deprecated")))
        names[name] = name
        for other in spec.get("names", []):
            names[other] = name
    return FlagIndex(key, label or key, flags, names, bool(body.get("underscore_equivalent")),
                     frozenset(body.get("frontend_only", [])))


def _takes(tok: str) -> bool:
    """Whether ``tok`` can be a flag's value (not the next flag)."""
    return not tok.startswith("-") or _is_number(tok)


def _parse(index: FlagIndex, args: list[str], where: str) -> list[tuple[str, str, list[str]]]:
    """(token, canonical flag, values) for each flag in ``args``; raises on anything not accepted."""
    out: list[tuple[str, str, list[str]]] = []
    i = 0
    while i < len(args):
        tok = args[i]
        i += 1
        if not tok.startswith("-") or tok == "-":
            raise RenderError(f"{where}: {tok!r} is not a flag (positional arguments are set by servewise)")
        name, eq, inline = tok.partition("=")
        canon = index.canonical(name)
        if canon is None:
            raise RenderError(f"{where}: {index.label} has no flag {name}")
        flag = index.flags[canon]
        values = [inline] if eq else []
        if flag.arity == "0" and eq:
            raise RenderError(f"{where}: {name} takes no value")
        if flag.arity in ("1", "?") and not eq and i < len(args) and _takes(args[i]):
            values.append(args[i])
            i += 1
        elif flag.arity == "+" and not eq:
            while i < len(args) and _takes(args[i]):
                values.append(args[i])
                i += 1
        if flag.arity in ("1", "+") and not values:
            raise RenderError(f"{where}: {name} needs a value")
        for v in values if flag.arity != "+" else values[:1]:
            _check_value(flag, v, where)
        out.append((name, canon, values))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_value(flag: Flag, value: str, where: str) -> None:
    if flag.type == "int" and not value.lstrip("-").isdigit():
        raise RenderError(f"{where}: {flag.name} takes an integer, not {value!r}")
    if flag.type == "float" and not _is_number(value):
        raise RenderError(f"{where}: {flag.name} takes a number, not {value!r}")
    if flag.type == "json" and value.lstrip().startswith("{"):
        try:
            json.loads(value)
        except ValueError:
            raise RenderError(f"{where}: {flag.name} takes JSON; {value!r} does not parse") from None
    if flag.values is not None and value not in flag.values:
        raise RenderError(f"{where}: {flag.name} {value!r} is not one of {', '.join(flag.values)}")


def check_command(index: FlagIndex, args: list[str], where: str) -> None:
    """Every flag in an emitted command line exists in ``index`` with a well-typed value."""
    _parse(index, args, where)


def check_extra_args(index: FlagIndex, extra: list[str], servewise_args: list[str], where: str,
                     reserved: tuple[str, ...] = ()) -> None:
    """``deploy.extra_args`` must be known flags with valid values, none of which servewise sets, nor
    any of ``reserved``: flags it derives from the plan but leaves out at the engine's default (a
    ``--data-parallel-size 2`` there would run twice the GPUs the plan reserves)."""
    if not extra:
        return
    ours = {canon: tok for tok, canon, _ in _parse(index, servewise_args, "servewise command")}
    planned = {canon for name in reserved if (canon := index.canonical(name)) is not None}
    for tok, canon, _ in _parse(index, extra, where):
        if canon in ours:
            raise RenderError(f"{where}: {tok} conflicts with {ours[canon]}, which servewise sets "
                              f"from the plan; change the profile field instead")
        if canon in planned:
            raise RenderError(f"{where}: {tok} would override what servewise derives from the plan and profile "
                              f"(it leaves {canon} at the engine's default here); change the profile field instead")
        if index.flags[canon].deprecated:
            raise RenderError(f"{where}: {tok} is deprecated in {index.label}")
