"""Safe YAML reading for user files: size limit, no tags, no aliases, no duplicate keys."""

from __future__ import annotations

from typing import Any

import yaml

# A profile is a few kB (the largest example is under 2 kB; a recorded architecture adds a few
# more). Pure-Python YAML parses a hostile file of this size (one flow list of 60,000 items) in
# about 2 s on one core, which bounds the cost of a bad input.
MAX_PROFILE_BYTES = 128 * 1024
MAX_DEPTH = 32   # a profile nests 4 levels; a recorded config.json a few more


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, non-scalar keys, anchors/aliases (billion-laughs) and
    deep nesting (the composer recurses once per level)."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(None, None, "YAML aliases are not allowed", event.start_mark)
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_DEPTH:
            raise yaml.constructor.ConstructorError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                    self.peek_event().start_mark)
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "mapping keys must be plain values",
                                                        key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def loads_strict(text: str) -> Any:
    """Parse YAML text strictly; raises ``yaml.YAMLError`` with a position."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def dumps(data: Any) -> str:
    """Stable, human-readable YAML: declaration order kept, no aliases, unicode as is."""

    class _Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002
            return True

    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=100)
