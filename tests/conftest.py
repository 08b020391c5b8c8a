"""Shared fixtures: the ../shared folder, a CLI runner, example profiles."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "profiles" / "examples"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (or ``$SERVEWISE_SHARED``); tests that need it skip when it is absent."""
    path = Path(os.environ.get("SERVEWISE_SHARED", ROOT.parent / "shared"))
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set SERVEWISE_SHARED)")
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*argv: str) -> Result:
    """Run ``servewise`` in-process and capture its streams."""
    from servewise.wizard.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return Result(int(code), out.getvalue(), err.getvalue())


def run_cli_subprocess(*argv: str, env: dict[str, str] | None = None, timeout: float = 120,
                       cwd: str | None = None) -> Result:
    """Run the installed console script in a child process (real stdio, real exit code)."""
    proc = subprocess.run([sys.executable, "-m", "servewise.wizard.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli


def example_profiles() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))
