"""Writing an artifact tree atomically: build beside the target, then swap with renames.

A reader (or an interrupted run) sees the old directory or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from servewise.profiles.atomic import exchange, fsync_dir, signals_deferred, write_synced
from servewise.render.errors import RenderError

EXECUTABLE_SUFFIXES = (".sh",)


MARKER = "plan.json"   # every artifact directory has one, with "schema": "servewise-plan/N"


def _check_relpath(rel: str) -> None:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or rel != p.as_posix() or "\\" in rel or \
            not rel.isprintable() or any(part.startswith(".") for part in p.parts):
        raise RenderError(f"refusing to write outside the output directory: {rel!r}")


def is_artifact_dir(root: Path) -> bool:
    """An empty directory, or one servewise wrote (its plan.json says so)."""
    if not any(root.iterdir()):
        return True
    try:
        doc = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and str(doc.get("schema", "")).startswith("servewise-plan/")


def read_tree(root: Path) -> dict[str, str] | None:
    """The text files under ``root`` (None when it does not exist)."""
    if not root.exists():
        return None
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            try:
                out[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                out[path.relative_to(root).as_posix()] = "\0binary"
    return out


def write_tree(files: dict[str, str], out_dir: str | os.PathLike[str], *, force: bool = False) -> str:
    """Write ``files`` as the whole content of ``out_dir``; returns "created" / "replaced".

    An existing non-empty ``out_dir`` is replaced only with ``force`` (UsageError otherwise, and
    nothing changes), and only when servewise wrote it: a mistyped ``--out ~ --force`` must not
    replace a home directory. Scripts get the executable bit.
    """
    for rel in files:
        _check_relpath(rel)
    target = Path(out_dir)
    if target.is_symlink():  # replace what the link points at; the link stays
        target = Path(os.path.realpath(target))
    if target.exists() and not target.is_dir():
        raise RenderError(f"{target}: exists and is not a directory")
    if target.is_dir() and not is_artifact_dir(target):
        raise RenderError(f"{out_dir}: is a directory servewise did not write (no {MARKER} of servewise's); "
                          "refusing to replace it, even with --force: choose a new or empty --out")
    existing = read_tree(target)
    if existing and not force:
        same = existing == files
        raise RenderError(f"{target}: already exists" + (" with identical content" if same else
                                                           " with different content") +
                          "; pass --force to replace it")
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
    except OSError as e:
        raise RenderError(f"{target}: cannot create the output directory ({e.strerror})") from None
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            write_synced(path, text, 0o755 if rel.endswith(EXECUTABLE_SUFFIXES) else 0o644)
        for folder in sorted({(tmp / rel).parent for rel in files}, key=lambda p: -len(p.parts)):
            fsync_dir(folder)
        os.chmod(tmp, 0o755)
        with signals_deferred():
            how = _swap_in(tmp, target, existing is not None)
    except BaseException:
        with signals_deferred():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(parent)
    return how


def _swap_in(tmp: Path, target: Path, replace: bool) -> str:
    """Put the complete tree ``tmp`` at ``target``: one rename, or an atomic exchange with the old
    tree (two renames where the system has no exchange), then remove the old tree."""
    if not replace:
        os.rename(tmp, target)
        return "created"
    if exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # ``tmp`` now holds the old tree
        return "replaced"
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return "replaced"
