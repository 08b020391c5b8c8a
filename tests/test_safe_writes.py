"""Every file servewise writes is written whole or not at all: profiles (temp + fsync + rename,
permissions and symlinks kept) and artifact directories (built beside, swapped in, only over a
directory servewise wrote)."""

from __future__ import annotations

import os
import stat

import pytest

from servewise.profiles import load_profile, save_profile
from servewise.profiles.atomic import atomic_write_text, exchange, signals_deferred
from servewise.render.errors import RenderError
from servewise.render.output import read_tree, write_tree

from .conftest import EXAMPLES

FILES = {"plan.json": '{"schema": "servewise-plan/1"}\n', "shell/serve.sh": "#!/bin/bash\nexit 0\n"}


def test_a_profile_save_keeps_permissions_and_follows_a_symlink(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    save_profile(load_profile(EXAMPLES / "qwen3-32b-8xh200-vllm.yaml"), link)
    assert link.is_symlink() and load_profile(link) == load_profile(EXAMPLES / "qwen3-32b-8xh200-vllm.yaml")
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.yaml", "real.yaml"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "p.yaml"
    target.write_text("old\n")
    import servewise.profiles.atomic as atomic

    def disk_full(fd, text, mode):  # type: ignore[no-untyped-def]
        os.close(fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_write_fd", disk_full)
    with pytest.raises(OSError):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["p.yaml"]


def test_a_new_file_gets_the_mode_asked_for_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "a.yaml", "x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.yaml").stat().st_mode) == 0o644


def test_exchange_swaps_two_directories_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("a")
    (b / "f").write_text("b")
    if not exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) on this system; write_tree uses two renames")
    assert (a / "f").read_text() == "b" and (b / "f").read_text() == "a"


def test_signals_are_delivered_after_a_deferred_block():
    import signal

    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            signal.raise_signal(signal.SIGINT)
            reached = True
    assert reached


def test_write_tree_replaces_its_own_directory_whole(tmp_path):
    out = tmp_path / "out"
    assert write_tree(FILES, out) == "created"
    (out / "stale.txt").write_text("left from an older render")
    assert write_tree({**FILES, "README.md": "new\n"}, out, force=True) == "replaced"
    assert read_tree(out) == {**FILES, "README.md": "new\n"}
    assert os.access(out / "shell" / "serve.sh", os.X_OK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no temporary siblings remain"


def test_write_tree_never_replaces_a_directory_it_did_not_write(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine\n")
    with pytest.raises(RenderError, match="did not write"):
        write_tree(FILES, home, force=True)
    assert read_tree(home) == {"notes.txt": "mine\n"}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_tree(FILES, empty) == "replaced"


def test_write_tree_follows_a_symlinked_output_directory(tmp_path):
    real = tmp_path / "real"
    write_tree(FILES, real)
    link = tmp_path / "link"
    link.symlink_to(real)
    write_tree({**FILES, "README.md": "x\n"}, link, force=True)
    assert link.is_symlink() and "README.md" in read_tree(real)


@pytest.mark.parametrize("rel", ["../escape.sh", "/etc/cron.d/x", "a/../../b", "", "a\\b", "a/./b", ".env",
                                 "k8s/.hidden.yaml", "bad\nname.yaml", "nul\x00.yaml"])
def test_write_tree_refuses_paths_outside_the_directory(tmp_path, rel):
    with pytest.raises(RenderError, match="refusing to write outside"):
        write_tree({**FILES, rel: "x"}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
