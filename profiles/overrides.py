"""``--set key.path=value`` overrides, applied to the raw profile and re-validated (like helm --set)."""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import yaml
from pydantic import BaseModel

from servewise.profiles.errors import ProfileError
from servewise.profiles.schema import Profile
from servewise.profiles.store import profile_from_dict, profile_to_dict
from servewise.profiles.yamlio import loads_strict

_KEY = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")


def parse_value(text: str) -> Any:
    """A YAML scalar or flow collection: ``8``, ``0.9``, ``true``, ``null``, ``[a, b]``, ``prod``; read
    as strictly as a profile file (no tags, no aliases). What is not YAML stays a string."""
    try:
        return loads_strict(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def _field_type(parts: list[str]) -> Any:
    """The schema's annotation of the dotted field ``parts`` (None where it is not a model field)."""
    model: Any = Profile
    ann: Any = None
    for part in parts:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        models = [a for a in _members(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = models[0] if models else None
    return ann


def _members(ann: Any) -> tuple[Any, ...]:
    """The alternatives of a union (``str | None`` -> str, NoneType), Annotated unwrapped, else ``(ann,)``."""
    if typing.get_origin(ann) is typing.Annotated:
        return _members(typing.get_args(ann)[0])
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return tuple(m for a in typing.get_args(ann) for m in _members(a))
    return (ann,)


def _wants_text(parts: list[str]) -> bool:
    """A field typed as text only (a version, a revision, a name): ``--set engine.version=0.34`` must stay
    the string "0.34", not become the number YAML reads (what ``helm --set-string`` is for)."""
    kinds = {a for a in _members(_field_type(parts)) if a is not type(None)}
    return kinds == {str}


def apply_overrides(profile: Profile, sets: list[str]) -> Profile:
    """Return ``profile`` with each ``key.path=value`` applied; the result is validated as a whole."""
    if not sets:
        return profile
    doc = profile_to_dict(profile)
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ProfileError(f"--set {item!r}: expected key.path=value (e.g. deploy.namespace=prod)")
        node: Any = doc
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise ProfileError(f"--set {key}: no such field {p!r}", field=key)
            if node[p] is None:
                node[p] = {}
            node = node[p]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ProfileError(f"--set {key}: no such field", field=key)
        value = parse_value(raw)
        if isinstance(value, (int, float, bool)) and _wants_text(parts):
            value = raw.strip()
        node[parts[-1]] = value
    return profile_from_dict(doc, path="--set")
