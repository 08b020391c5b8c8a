"""Step-by-step migrations of raw profile dicts to the current schema version.

Each step takes a dict of version N and returns one of version N+1; ``migrate`` applies
them in order. Steps work on plain dicts (never on the pydantic model), so old files keep
loading after the model changes. Every released version keeps a fixture in
``tests/fixtures/profiles/`` forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from servewise.profiles.errors import ProfileError
from servewise.profiles.schema import SCHEMA_VERSION

Raw = dict[str, Any]


def _v0_count(doc: Raw, key: str) -> int | None:
    """A v0 GPU count (``gpus``, ``gpus_per_node``): a positive integer, None when absent."""
    v = doc.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ProfileError(f"must be a positive integer (schema_version 0 profile), got {v!r}", field=key)
    return v


def _v0_to_v1(doc: Raw) -> Raw:
    """v0 (pre-release drafts): ``profile_version`` key, flat ``gpu``/``gpus`` and ``concurrency``."""
    out = {k: v for k, v in doc.items() if k not in ("profile_version", "gpu", "gpus", "gpus_per_node",
                                                      "concurrency", "request_rate")}
    out["schema_version"] = 1
    if "hardware" not in out and "gpu" in doc:
        gpus, per_node = _v0_count(doc, "gpus"), _v0_count(doc, "gpus_per_node")
        per_node = per_node or gpus or 1
        nodes = max(1, -(-(gpus or per_node) // per_node))
        out["hardware"] = {"gpu": doc["gpu"], "gpus_per_node": per_node, "nodes": nodes}
    workload = out.get("workload")
    if workload is not None and not isinstance(workload, dict):
        raise ProfileError("must be a mapping (schema_version 0 profile)", field="workload")
    wl = dict(workload or {})
    if "load" not in wl:
        if "concurrency" in doc:
            wl["load"] = {"concurrency": doc["concurrency"]}
        elif "request_rate" in doc:
            wl["load"] = {"request_rate": doc["request_rate"]}
    if wl:
        out["workload"] = wl
    return out


# version N -> function producing version N+1
STEPS: dict[int, Callable[[Raw], Raw]] = {0: _v0_to_v1}


def version_of(doc: Raw) -> int:
    v = doc.get("schema_version", doc.get("profile_version", 0 if "profile_version" in doc else None))
    if v is None:
        raise ProfileError("missing schema_version (this does not look like a servewise profile)",
                           field="schema_version")
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProfileError(f"schema_version must be an integer, got {v!r}", field="schema_version")
    return v


def migrate(doc: Raw, steps: dict[int, Callable[[Raw], Raw]] | None = None,
            target: int = SCHEMA_VERSION) -> Raw:
    """Bring ``doc`` to ``target`` one step at a time; refuse versions newer than ``target``."""
    steps = STEPS if steps is None else steps
    v = version_of(doc)
    if v > target:
        raise ProfileError(f"schema_version {v} is newer than this servewise understands ({target}); "
                           "upgrade servewise", field="schema_version")
    while v < target:
        if v not in steps:
            raise ProfileError(f"schema_version {v} is too old to migrate (oldest supported: {min(steps)})",
                               field="schema_version")
        doc = steps[v](doc)
        nv = version_of(doc)
        if nv != v + 1:
            raise AssertionError(f"migration from {v} produced version {nv}")
        v = nv
    return doc
