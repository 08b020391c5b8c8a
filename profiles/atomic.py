"""Crash- and interrupt-safe file writing: every file servewise writes goes through here.

A file is written to a temporary sibling, flushed to disk (fsync) and renamed over the target;
a directory is built as a sibling and swapped in. The commit (the renames and the clean-up of the
temporaries) runs with SIGINT/SIGTERM deferred, so an interrupt lands either before it (the old
state stays, the temporaries are removed) or after it (the new state is complete), never between.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then deliver them (main thread only; elsewhere
    Python delivers signals to the main thread anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in DEFERRED_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, lambda signum, _frame: pending.append(signum))
        except (ValueError, OSError):  # not settable here (an embedding interpreter)
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in pending[:1]:
            signal.raise_signal(signum)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_fd(fd: int, text: str, mode: int) -> None:
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fchmod(f.fileno(), mode)  # exactly ``mode``, whatever the umask
        os.fsync(f.fileno())


def write_synced(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Create ``path`` (which must not exist) with ``text`` (UTF-8, LF) and flush it to disk."""
    _write_fd(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), text, mode)


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int | None = None) -> None:
    """Write a file so readers see the old or the new content, never a mix: temp file in the same
    folder, fsync, rename, fsync the folder. A symlink is followed (the link stays a link); an
    existing file keeps its permissions, a new one gets ``mode`` (default 0644)."""
    p = Path(path)
    if p.is_symlink():
        p = Path(os.path.realpath(p))
    parent = p.parent if str(p.parent) else Path(".")
    if mode is None:
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
        except OSError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    try:
        _write_fd(fd, text, mode)
        with signals_deferred():
            os.replace(tmp, p)
    except BaseException:
        with signals_deferred():
            _unlink_quietly(tmp)
        raise
    fsync_dir(parent)


def _unlink_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot, so the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))
