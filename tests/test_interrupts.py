"""Interrupted writes: a real ``servewise`` process, slowed down inside its writer, is signalled
mid-write; the output is then the old complete state or the new complete state, never a mix, and
the exit code is 128 + the signal (Ctrl-C 130, SIGTERM 143)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servewise.profiles import load_profile
from servewise.render import render
from servewise.render.output import read_tree

from .conftest import EXAMPLES

EXAMPLE = EXAMPLES / "qwen3-32b-8xh200-vllm.yaml"

# The child: servewise's own main(), with the writer slowed by a hook installed from outside (the
# product carries no test hooks). SLOW_FILE_S sleeps after each artifact file; SLOW_SWAP_S sleeps
# inside the swap (signals are deferred there); SLOW_PROFILE_S sleeps with half a profile written.
CHILD = r"""
import os, sys, time
import servewise.profiles.atomic as atomic
import servewise.render.output as output

def mark():
    open(os.environ["READY"], "w").close()

if os.environ.get("SLOW_FILE_S"):
    write_synced = output.write_synced
    def slow_file(path, text, mode=0o644):
        write_synced(path, text, mode)
        mark()
        time.sleep(float(os.environ["SLOW_FILE_S"]))
    output.write_synced = slow_file
if os.environ.get("SLOW_SWAP_S"):
    exchange = output.exchange
    def slow_swap(a, b):
        mark()
        time.sleep(float(os.environ["SLOW_SWAP_S"]))
        return exchange(a, b)
    output.exchange = slow_swap
if os.environ.get("SLOW_PROFILE_S"):
    def slow_write(fd, text, mode):
        f = os.fdopen(fd, "w", encoding="utf-8")
        f.write(text[: len(text) // 2])
        f.flush()
        mark()
        time.sleep(float(os.environ["SLOW_PROFILE_S"]))
        f.write(text[len(text) // 2:])
        f.close()
    atomic._write_fd = slow_write

from servewise.wizard.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_and_signal(tmp: Path, argv: list[str], env: dict[str, str], sig: int) -> subprocess.CompletedProcess:
    ready = tmp / "ready"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *argv], env={**os.environ, **env, "READY": str(ready)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the writer never started"
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _old_and_new(tmp: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """An artifact directory in its old state, and the files a --force render would put there."""
    out = tmp / "out"
    r = subprocess.run([sys.executable, "-m", "servewise.wizard.cli", "render", "--profile", str(EXAMPLE), "--out",
                        str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    old = read_tree(out)
    prof = load_profile(EXAMPLE)
    new = render(prof.model_copy(update={"deploy": prof.deploy.model_copy(update={"namespace": "other"})}))
    assert old != new
    return out, old, new


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


RENDER_NEW = ["--force", "--set", "deploy.namespace=other"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_render_interrupted_mid_write_leaves_the_old_directory(tmp_path, sig, code):
    out, old, _ = _old_and_new(tmp_path)
    r = _run_and_signal(tmp_path, ["render", "--profile", str(EXAMPLE), "--out", str(out), *RENDER_NEW],
                        {"SLOW_FILE_S": "0.5"}, sig)
    assert r.returncode == code, r.stderr
    assert r.stderr.count("\n") == 1 and "interrupted" in r.stderr and "Traceback" not in r.stderr
    assert read_tree(out) == old
    assert _siblings(out) == [], "the half-built directory is removed"


def test_a_signal_during_the_swap_waits_for_it_and_leaves_the_new_directory(tmp_path):
    out, _, new = _old_and_new(tmp_path)
    r = _run_and_signal(tmp_path, ["render", "--profile", str(EXAMPLE), "--out", str(out), *RENDER_NEW],
                        {"SLOW_SWAP_S": "0.5"}, signal.SIGTERM)
    assert r.returncode == 143, r.stderr
    assert read_tree(out) == new
    assert _siblings(out) == []


def test_a_killed_render_never_touches_the_old_directory(tmp_path):
    """SIGKILL cannot be handled: the half-built sibling stays behind, the target does not change."""
    out, old, _ = _old_and_new(tmp_path)
    r = _run_and_signal(tmp_path, ["render", "--profile", str(EXAMPLE), "--out", str(out), *RENDER_NEW],
                        {"SLOW_FILE_S": "0.5"}, signal.SIGKILL)
    assert r.returncode == -signal.SIGKILL
    assert read_tree(out) == old


def test_a_profile_save_interrupted_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "p.yaml"
    before = "# the profile as it was\n"
    target.write_text(before)
    argv = ["plan", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm", "--save", str(target)]
    r = _run_and_signal(tmp_path, argv, {"SLOW_PROFILE_S": "5"}, signal.SIGINT)
    assert r.returncode == 130, r.stderr
    assert target.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml", "ready"]
