"""``--set key.path=value`` overrides, applied to the raw profile and re-validated (like helm --set)."""

from __future__ import annotations

import re
from typing import Any

import yaml

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
        node[parts[-1]] = parse_value(raw)
    return profile_from_dict(doc, path="--set")
