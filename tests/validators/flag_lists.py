"""The reference flag lists in ``../shared/engine_flags`` and the compact index servewise ships.

``derive_index`` is the one definition of how ``render/flags/*.json`` is made from the reference
lists; a test compares the shipped files with it (``SERVEWISE_UPDATE_FLAG_INDEX=1`` rewrites them).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

# shipped index stem -> (reference file, {command: path to its flags in the reference document})
INDEXES: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "vllm-0.33.0": ("vllm-0.33.0.json", {"": ("flags",)}),
    "vllm-0.31.0": ("vllm-0.31.0.json", {"": ("flags",)}),
    "sglang-0.5.23": ("sglang-0.5.23.json", {"": ("flags",)}),
    "sglang-0.5.21": ("sglang-0.5.21.json", {"": ("flags",)}),
    "sglang-router-0.3.2": ("sglang-router-0.3.2.json", {"": ("flags",)}),
    "vllm-router-0.1.17": ("vllm-router-0.1.17.json", {"": ("flags",)}),
    "trtllm-1.2.1": ("trtllm-1.2.1.json", {"serve": ("trtllm-serve", "flags"),
                                           "disaggregated": ("trtllm-serve disaggregated", "flags")}),
    "dynamo-1.6.1": ("dynamo-1.6.1.json",
                     {c: ("commands", c, "flags") for c in ("frontend", "vllm", "sglang", "trtllm")}),
}
_SWITCH_ACTIONS = {"store_true", "store_const", "DeprecatedStoreTrueAction", "DeprecatedStoreConstAction"}


@cache
def reference(shared: Path, filename: str) -> dict[str, Any]:
    return json.loads((shared / "engine_flags" / filename).read_text())


def _dig(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for p in path:
        doc = doc[p]
    return doc


def _arity(e: dict[str, Any]) -> str:
    if e["type"] == "bool" or e.get("action") in _SWITCH_ACTIONS or e.get("is_flag"):
        return "0"
    return {"+": "+", "*": "+", "?": "?"}.get(str(e.get("nargs")), "1")


def _entry(e: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": e["type"], "arity": _arity(e)}
    values = e.get("choices") or e.get("known_values")
    if values and out["arity"] != "0":
        out["values"] = [str(v) for v in values]
    names = [*e.get("aliases", []), *([e["bool_negation"]] if e.get("bool_negation") else []),
             *e.get("negation_aliases", [])]
    if names:
        out["names"] = names
    if e.get("deprecated") or e.get("rejected_after_parse"):
        out["deprecated"] = True
    return out


def _command(doc: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    flags = _dig(doc, path)
    body: dict[str, Any] = {"underscore_equivalent": bool(doc.get("parser", {}).get("underscore_dash_equivalent"))}
    frontend = sorted(k for k, e in flags.items() if str(e.get("scope", "")).startswith("frontend"))
    if frontend:
        body["frontend_only"] = frontend
    body["flags"] = {k: _entry(flags[k]) for k in sorted(flags)}
    return body


def derive_index(shared: Path, stem: str) -> dict[str, Any]:
    filename, commands = INDEXES[stem]
    doc = reference(shared, filename)
    head = {"about": "Derived by servewise from the reference flag list named in 'source': for each flag only its "
                     "value type, arity, accepted values and other accepted names.",
            "engine": doc["engine"], "version": doc["version"], "source": doc["source"]}
    if "" in commands:
        return {**head, **_command(doc, commands[""])}
    return {**head, "commands": {c: _command(doc, p) for c, p in commands.items()}}


def dump_index(data: dict[str, Any]) -> str:
    """One flag per line, so a change of the reference list diffs readably."""
    def flags_block(flags: dict[str, Any], indent: str) -> str:
        rows = [f'{indent}  {json.dumps(k)}: {json.dumps(v, separators=(", ", ": "))}' for k, v in flags.items()]
        return "{\n" + ",\n".join(rows) + f"\n{indent}}}"

    def body(d: dict[str, Any], indent: str) -> str:
        parts = []
        for k, v in d.items():
            if k == "flags":
                parts.append(f"{indent}  {json.dumps(k)}: {flags_block(v, indent + '  ')}")
            elif k == "commands":
                inner = ",\n".join(f"{indent}    {json.dumps(c)}: {body(cv, indent + '    ')}" for c, cv in v.items())
                parts.append(f"{indent}  \"commands\": {{\n{inner}\n{indent}  }}")
            else:
                parts.append(f"{indent}  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}")
        return "{\n" + ",\n".join(parts) + f"\n{indent}}}"

    return body(data, "") + "\n"
