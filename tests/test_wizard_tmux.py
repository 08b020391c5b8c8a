"""The wizard in a real terminal (tmux): Enter through the defaults, save, quit; the profile
validates and replays. GPU detection is switched off (--no-detect): no test touches NVML."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servewise.profiles import load_profile

from .conftest import ROOT, run_cli

TMUX = shutil.which("tmux")
pytestmark = [pytest.mark.tui, pytest.mark.skipif(TMUX is None, reason="tmux is not installed")]


class Terminal:
    def __init__(self, socket: Path, width: int, height: int, command: str) -> None:
        self.base = [TMUX, "-S", str(socket), "-f", "/dev/null"]
        env = {**os.environ, "TERM": "xterm-256color"}
        env.pop("NO_COLOR", None)
        subprocess.run([*self.base, "new-session", "-d", "-x", str(width), "-y", str(height), command],
                       check=True, env=env, cwd=ROOT)

    def screen(self) -> str:
        out = subprocess.run([*self.base, "capture-pane", "-p"], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", *keys], check=True)

    def wait_for(self, text: str, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the terminal shows:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.mark.slow
def test_enter_through_the_wizard_in_tmux(tmp_path):
    profile, rc = tmp_path / "p.yaml", tmp_path / "rc"
    cmd = (f"{shlex.quote(sys.executable)} -m servewise.wizard.cli wizard --no-detect --save {shlex.quote(str(profile))}"
           f"; echo $? > {shlex.quote(str(rc))}; sleep 30")
    term = Terminal(tmp_path / "tmux.sock", 100, 30, cmd)
    try:
        term.wait_for("Plan for other hardware")
        term.wait_for("✓ plan:")
        for marker in ("Weights per GPU", "Input tokens (ISL)", "Modes to search", "Memory per GPU", "Save ⏎"):
            term.keys("Enter")
            term.wait_for(marker)
        term.wait_for("docker-compose.yaml")   # the preview has rendered
        term.keys("Enter")
        term.wait_for("Saved")
        term.keys("Enter")
        deadline = time.monotonic() + 20
        while not rc.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rc.exists(), term.screen()
        assert rc.read_text().strip() == "0"
    finally:
        term.close()
    saved = load_profile(profile)                       # exists and validates
    assert saved.plan is not None and saved.hardware.gpu == "h100-sxm"
    assert (tmp_path / "p-deploy" / "plan.json").is_file()
    r = run_cli("--profile", str(profile), "--out", str(tmp_path / "replay"))
    assert r.code == 0, r.err
    assert (tmp_path / "replay" / "plan.json").read_text() == (tmp_path / "p-deploy" / "plan.json").read_text()
