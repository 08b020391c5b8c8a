"""Structured output is built as data and dumped, never pasted into text templates."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002
        return True


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data and not re.search(r"[\x00-\x08\x0b-\x1f\x7f]|\s\n|\n\s*$", data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(data: Any, header: str | None = None) -> str:
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
                     width=4096)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    return text


def dump_yaml_documents(docs: list[Any], header: str | None = None) -> str:
    body = "---\n".join(dump_yaml(d) for d in docs)
    if header:
        body = "".join(f"# {line}\n" for line in header.splitlines()) + body
    return body


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def comment_safe(text: str) -> str:
    """One line with no control characters, safe inside a shell or YAML comment."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)


def compose_escape(text: str) -> str:
    """Compose interpolates ``$VAR`` in values; a literal ``$`` is written ``$$``."""
    return text.replace("$", "$$")
