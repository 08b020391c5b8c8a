"""Load (read -> migrate -> validate) and atomic save of profiles."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from servewise.perfdata.errors import located
from servewise.profiles.atomic import atomic_write_text
from servewise.profiles.errors import ProfileError
from servewise.profiles.migrations import migrate
from servewise.profiles.schema import PATTERN_MEANING, Profile
from servewise.profiles.values import FieldValueError, check_values
from servewise.profiles.yamlio import MAX_PROFILE_BYTES, dumps, loads_strict

M = TypeVar("M", bound=BaseModel)


def _loc(loc: tuple[Any, ...]) -> str | None:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("AggPlan", "DisaggPlan", "agg", "disagg", "CustomGpu", "str", "function-after[_no_latest()]") \
                or str(p).startswith(("function-", "constrained-", "literal[")):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or None


def validation_message(err: ValidationError) -> tuple[str | None, str]:
    """The first error of a pydantic ValidationError as (field path or None, one-line message).

    A cross-field validator names its field by raising ``FieldValueError`` (the field path is then
    that error's ``field``, not the model's top level)."""
    first = err.errors(include_url=False)[0]
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see `servewise profile schema`)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    elif first["type"] == "string_pattern_mismatch":
        msg = PATTERN_MEANING.get(str((first.get("ctx") or {}).get("pattern")), msg)
    cause = (first.get("ctx") or {}).get("error")
    msg = msg.removeprefix("Value error, ")
    field = _loc(first["loc"])
    if isinstance(cause, FieldValueError):
        field, msg = ".".join(p for p in (field, cause.field) if p), str(cause)
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return field, msg + extra


def validated(cls: type[M], data: Any, *, field: str | None = None, path: str | None = None) -> M:
    """``cls.model_validate(data)``, a ProfileError naming ``field``'s sub-path on failure (for parts
    of a profile built from flags or detection rather than read from a file)."""
    try:
        part = cls.model_validate(data)
        check_values(part, field or "")
    except ValidationError as e:
        sub, msg = validation_message(e)
        raise ProfileError(msg, path=path, field=".".join(p for p in (field, sub) if p) or None) from None
    except FieldValueError as e:
        raise ProfileError(str(e), path=path, field=e.field) from None
    return part


def profile_from_dict(doc: Any, *, path: str | None = None) -> Profile:
    """Migrate and validate a raw mapping."""
    if not isinstance(doc, dict):
        raise ProfileError("a profile must be a YAML mapping", path=path)
    with located(path=path):
        doc = migrate(doc)
    try:
        return Profile.model_validate(doc)
    except ValidationError as e:
        field, msg = validation_message(e)
        raise ProfileError(msg, path=path, field=field) from None
    except ProfileError:
        raise
    except ValueError as e:
        raise ProfileError(str(e), path=path) from None


def parse_profile(text: str, *, path: str | None = None) -> Profile:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PROFILE_BYTES:
        raise ProfileError(f"file is larger than {MAX_PROFILE_BYTES // 1024} KiB; not a profile", path=path)
    try:
        doc = loads_strict(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or getattr(e, "context", None) or "malformed YAML"
        raise ProfileError(f"not valid YAML{where}: {problem}", path=path) from None
    if doc is None:
        raise ProfileError("the file is empty", path=path)
    return profile_from_dict(doc, path=path)


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read, migrate and validate a profile file (``-``: standard input); raises ``ProfileError``
    (exit 2). At most ``MAX_PROFILE_BYTES`` are read, so a device or a pipe cannot stall it."""
    shown = str(path)
    try:
        if shown == "-":
            shown = "<stdin>"
            raw = _read_limited(sys.stdin.buffer, shown)
        else:
            p = Path(path)
            if p.is_dir():
                raise ProfileError("is a directory, not a profile file", path=shown)
            with open(p, "rb") as f:
                raw = _read_limited(f, shown)
    except FileNotFoundError:
        raise ProfileError("no such file", path=shown) from None
    except PermissionError:
        raise ProfileError("permission denied", path=shown) from None
    except OSError as e:
        raise ProfileError(e.strerror or "cannot read the file", path=shown) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError("not UTF-8 text", path=shown) from None
    return parse_profile(text, path=shown)


def _read_limited(f: BinaryIO, shown: str) -> bytes:
    raw = f.read(MAX_PROFILE_BYTES + 1)
    if len(raw) > MAX_PROFILE_BYTES:
        raise ProfileError(f"file is larger than {MAX_PROFILE_BYTES // 1024} KiB; not a profile", path=shown)
    return raw


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """Every field, in declaration order, JSON-compatible."""
    return profile.model_dump(mode="json")


def dump_profile(profile: Profile) -> str:
    return dumps(profile_to_dict(profile))


def save_profile(profile: Profile, path: str | os.PathLike[str]) -> None:
    """Atomically write ``profile`` as YAML."""
    try:
        atomic_write_text(path, dump_profile(profile))
    except FileNotFoundError:
        raise ProfileError("the folder does not exist", path=str(path)) from None
    except PermissionError:
        raise ProfileError("permission denied", path=str(path)) from None
    except IsADirectoryError:
        raise ProfileError("is a directory", path=str(path)) from None
    except OSError as e:
        raise ProfileError(f"cannot write the file ({e.strerror or e})", path=str(path)) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of profile v1 (committed as profiles/profile.schema.json)."""
    schema = Profile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://servewise.dev/schemas/profile-v1.json"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
