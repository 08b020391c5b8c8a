"""Writing an artifact tree atomically: build beside the target, then swap with renames.

A reader (or an interrupted run) sees the old directory or the new one, never a mix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from servewise.render.errors import RenderError

EXECUTABLE_SUFFIXES = (".sh",)


def _check_relpath(rel: str) -> None:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or rel != p.as_posix() or "\\" in rel:
        raise RenderError(f"refusing to write outside the output directory: {rel!r}")


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
    nothing changes). Scripts get the executable bit.
    """
    for rel in files:
        _check_relpath(rel)
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise RenderError(f"{target}: exists and is not a directory")
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
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(path, 0o755 if rel.endswith(EXECUTABLE_SUFFIXES) else 0o644)
        os.chmod(tmp, 0o755)
        if existing is None:
            os.rename(tmp, target)
            return "created"
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
        os.rmdir(old)
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return "replaced"
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
