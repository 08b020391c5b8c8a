"""Reading the YAML data files shipped inside the package (``importlib.resources``)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml

PACKAGE = "servewise.perfdata"
# libyaml's C parser reads the catalog ~8x faster than the pure-Python one (same documents); fall back
# where PyYAML was built without it.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


def data_root() -> Traversable:
    return resources.files(PACKAGE)


def _walk(node: Traversable):
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            yield from _walk(child)
        elif child.name.endswith((".yaml", ".yml")):
            yield child


def read_yaml(relpath: str) -> Any:
    node = data_root()
    for part in relpath.split("/"):
        node = node / part
    return _load(node.read_text(encoding="utf-8"))


def read_yaml_dir(relpath: str) -> list[dict[str, Any]]:
    """Every YAML document under a data folder, in a stable (sorted path) order."""
    return [doc for _, doc in read_yaml_dir_named(relpath)]


def read_yaml_dir_named(relpath: str) -> list[tuple[str, dict[str, Any]]]:
    """(file name without extension, document) for every YAML file under a data folder, sorted by path."""
    node = data_root()
    for part in relpath.split("/"):
        node = node / part
    out = []
    for f in _walk(node):
        doc = _load(f.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError(f"perfdata/{relpath}/{f.name}: expected a mapping")
        out.append((f.name.rsplit(".", 1)[0], doc))
    return out
