"""Run generated scripts with stub executables on PATH that record the argv and environment
they were started with (each script ends in ``exec <engine> ...``)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .artifacts import scratch

STUBBED = ("vllm", "python3", "trtllm-serve", "vllm-router", "docker")
_STUB = """#!/bin/bash
printf '%s\\0' "$0" "$@" > "$STUB_OUT.argv"
env -0 > "$STUB_OUT.env"
"""


@dataclass(frozen=True)
class Captured:
    argv: list[str]
    env: dict[str, str]


@cache
def stub_bin() -> Path:
    d = scratch() / "stub-bin"
    d.mkdir(parents=True, exist_ok=True)
    for name in STUBBED:
        p = d / name
        p.write_text(_STUB)
        p.chmod(0o755)
    return d


def run_script(script: Path, env: dict[str, str], tag: str) -> Captured:
    """Run ``script`` with bash; the stub it execs writes what it received."""
    out = scratch() / "stub-out" / tag
    out.parent.mkdir(parents=True, exist_ok=True)
    base = {"PATH": f"{stub_bin()}:/usr/bin:/bin", "HOME": str(scratch()), "STUB_OUT": str(out)}
    proc = subprocess.run(["bash", str(script)], env={**base, **env}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{script.name} failed (rc {proc.returncode}): {proc.stderr.strip()}"
    argv = Path(f"{out}.argv").read_bytes().split(b"\0")[:-1]
    envs = Path(f"{out}.env").read_bytes().split(b"\0")[:-1]
    argv_s = [a.decode() for a in argv]
    argv_s[0] = os.path.basename(argv_s[0])
    return Captured(argv_s, dict(e.decode().split("=", 1) for e in envs if b"=" in e))
