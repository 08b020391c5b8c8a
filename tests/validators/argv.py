"""Check an engine command line against the reference flag list of its exact version.

Independent of servewise's own flag index: it reads ``../shared/engine_flags`` directly and follows
its README (exact names, ``_``/``-`` equivalence for vLLM only, JSON values parsed with known keys).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .flag_lists import reference

SWITCH_ACTIONS = {"store_true", "store_const", "DeprecatedStoreTrueAction", "DeprecatedStoreConstAction"}


@dataclass
class Parsed:
    program: str                        # e.g. "vllm serve", "dynamo.vllm", "trtllm-serve"
    positional: list[str]
    flags: dict[str, list[list[str]]]   # canonical flag -> values of each occurrence


def _names(flags: dict[str, Any], underscore: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, e in flags.items():
        for n in [k, *e.get("aliases", []), e.get("bool_negation"), *e.get("negation_aliases", [])]:
            if n:
                out[n] = k
    return out


def flag_table(shared: Path, program: str, versions: dict[str, str]) -> tuple[dict[str, Any], bool]:
    """(flags, underscore-equivalent) for a program; ``versions`` maps engine -> version."""
    def load(name: str) -> dict[str, Any]:
        return reference(shared, name)

    if program == "vllm serve":
        d = load(f"vllm-{versions['vllm']}.json")
        return d["flags"], True
    if program == "sglang.launch_server":
        return load(f"sglang-{versions['sglang']}.json")["flags"], False
    if program == "sglang_router.launch_router":
        return load("sglang-router-0.3.2.json")["flags"], False
    if program == "vllm-router":
        return load("vllm-router-0.1.17.json")["flags"], False
    if program == "trtllm-serve":
        return load("trtllm-1.2.1.json")["trtllm-serve"]["flags"], False
    if program == "trtllm-serve disaggregated":
        return load("trtllm-1.2.1.json")["trtllm-serve disaggregated"]["flags"], False
    if program.startswith("dynamo."):
        dyn = load("dynamo-1.6.1.json")
        cmd = program.split(".", 1)[1]
        own = dict(dyn["commands"][cmd]["flags"])
        if cmd == "vllm":
            eng = load(f"vllm-{dyn['pinned_engine_versions']['vllm']}.json")["flags"]
            own = {**{k: v for k, v in eng.items() if v.get("scope") == "engine"}, **own}
            return own, True
        if cmd == "sglang":
            eng = load(f"sglang-{dyn['pinned_engine_versions']['sglang']}.json")["flags"]
            return {**eng, **own}, False
        return own, False
    raise AssertionError(f"unknown program {program!r}")


def split_program(argv: list[str]) -> tuple[str, list[str]]:
    """(program name, the rest) for the commands servewise emits."""
    head = Path(argv[0]).name
    if head == "vllm" and argv[1:2] == ["serve"]:
        return "vllm serve", argv[2:]
    if head.startswith("python") and argv[1:2] == ["-m"]:
        return argv[2], argv[3:]
    if head == "trtllm-serve" and argv[1:2] == ["disaggregated"]:
        return "trtllm-serve disaggregated", argv[2:]
    if head in ("trtllm-serve", "vllm-router"):
        return head, argv[1:]
    raise AssertionError(f"unexpected command {argv[:3]}")


def _is_value(tok: str) -> bool:
    if not tok.startswith("-"):
        return True
    try:
        float(tok)
        return True
    except ValueError:
        return False


def parse_and_check(shared: Path, argv: list[str], versions: dict[str, str]) -> Parsed:
    """Parse ``argv``; assert every flag exists with a value of the right type and among its choices."""
    program, rest = split_program(argv)
    flags, underscore = flag_table(shared, program, versions)
    names = _names(flags, underscore)
    parsed = Parsed(program, [], {})
    i = 0
    while i < len(rest) and _is_value(rest[i]):
        parsed.positional.append(rest[i])
        i += 1
    while i < len(rest):
        tok = rest[i]
        i += 1
        assert tok.startswith("-"), f"{program}: stray positional {tok!r}"
        name, eq, inline = tok.partition("=")
        key = name
        if key not in names and underscore and key.startswith("--"):
            key = "--" + key[2:].replace("_", "-")
        assert key in names, f"{program} would reject {name} (not in its flag list)"
        canon = names[key]
        e = flags[canon]
        switch = e["type"] == "bool" or e.get("action") in SWITCH_ACTIONS or e.get("is_flag")
        values: list[str] = [inline] if eq else []
        if switch:
            assert not eq, f"{name} takes no value"
        elif not eq:
            many = str(e.get("nargs")) in ("+", "*")
            while i < len(rest) and _is_value(rest[i]):
                values.append(rest[i])
                i += 1
                if not many:
                    break
            assert values or str(e.get("nargs")) in ("?", "*"), f"{name} needs a value"
        for v in values[:1]:
            check_value(shared, program, canon, e, v, versions)
        if canon in ("--prefill", "--decode") and program in ("vllm-router", "sglang_router.launch_router"):
            u = urlparse(values[0])
            assert u.scheme == "http" and u.hostname and u.port, f"{canon} {values[0]!r} is not http://host:port"
            for extra in values[1:]:
                assert extra == "none" or extra.isdigit(), f"{canon} bootstrap port {extra!r}"
            assert len(values) <= (2 if canon == "--prefill" else 1)
        parsed.flags.setdefault(canon, []).append(values)
    return parsed


def check_value(shared: Path, program: str, canon: str, e: dict[str, Any], v: str, versions: dict[str, str]) -> None:
    t = e["type"]
    if t == "int":
        int(v)
    elif t == "float":
        float(v)
    elif t == "json":
        doc = json.loads(v)
        fields = e.get("json_fields")
        if fields:
            unknown = set(doc) - set(fields)
            assert not unknown, f"{canon}: unknown keys {sorted(unknown)}"
        if canon == "--kv-transfer-config":
            kv = reference(shared, f"vllm-{versions['vllm'] if program == 'vllm serve' else '0.31.0'}.json")
            kv = kv["kv_transfer"]
            assert doc["kv_connector"] in kv["kv_connectors"], doc["kv_connector"]
            assert doc["kv_role"] in kv["kv_roles"], doc["kv_role"]
    allowed = e.get("choices") or e.get("known_values")
    if allowed:
        assert v in [str(a) for a in allowed], f"{canon} {v!r} not in {allowed}"
