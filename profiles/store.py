"""Load (read -> migrate -> validate) and atomic save of profiles."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from servewise.profiles.errors import ProfileError
from servewise.profiles.migrations import migrate
from servewise.profiles.schema import Profile
from servewise.profiles.yamlio import MAX_PROFILE_BYTES, dumps, loads_strict


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("AggPlan", "DisaggPlan", "agg", "disagg", "CustomGpu", "str", "function-after[_no_latest()]") \
                or str(p).startswith(("function-", "constrained-", "literal[")):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def validation_message(err: ValidationError) -> tuple[str, str]:
    """The first error of a pydantic ValidationError as (field path, one-line message)."""
    first = err.errors(include_url=False)[0]
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see `servewise profile schema`)"
    elif first["type"] == "missing":
        msg = "required field is missing"
    msg = msg.removeprefix("Value error, ")
    extra = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return _loc(first["loc"]), msg + extra


def profile_from_dict(doc: Any, *, path: str | None = None) -> Profile:
    """Migrate and validate a raw mapping."""
    if not isinstance(doc, dict):
        raise ProfileError("a profile must be a YAML mapping", path=path)
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
        raise ProfileError(f"file is larger than {MAX_PROFILE_BYTES // 1000} kB; not a profile", path=path)
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
    """Read, migrate and validate a profile file; raises ``ProfileError`` (exit 2)."""
    p = Path(path)
    shown = str(path)
    try:
        if p.is_dir():
            raise ProfileError("is a directory, not a profile file", path=shown)
        size = p.stat().st_size
        if size > MAX_PROFILE_BYTES:
            raise ProfileError(f"file is larger than {MAX_PROFILE_BYTES // 1000} kB; not a profile", path=shown)
        raw = p.read_bytes()
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


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """Every field, in declaration order, JSON-compatible."""
    return profile.model_dump(mode="json")


def dump_profile(profile: Profile) -> str:
    return dumps(profile_to_dict(profile))


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Write a file so readers see the old or the new content, never a mix: temp file in the
    same folder, fsync, rename, fsync the folder."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


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


def json_schema() -> dict[str, Any]:
    """The JSON Schema of profile v1 (committed as profiles/profile.schema.json)."""
    schema = Profile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://servewise.dev/schemas/profile-v1.json"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
