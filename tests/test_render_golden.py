"""Golden files for every example profile, and structural checks of each artifact."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from servewise.profiles import load_profile
from servewise.render import render

from .conftest import ROOT, example_profiles

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("SERVEWISE_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("path", example_profiles(), ids=lambda p: p.stem)
def test_golden(path: Path):
    files = render(load_profile(path))
    gold = GOLDEN / path.stem
    if UPDATE:
        for rel, text in files.items():
            (gold / rel).parent.mkdir(parents=True, exist_ok=True)
            (gold / rel).write_text(text)
    expected = {p.relative_to(gold).as_posix(): p.read_text() for p in gold.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected), "set SERVEWISE_UPDATE_GOLDEN=1 to regenerate after a deliberate change"
    for rel, text in files.items():
        assert text == expected[rel], f"{path.stem}/{rel} differs from its golden file"


@pytest.mark.parametrize("path", example_profiles(), ids=lambda p: p.stem)
def test_artifacts_parse(tmp_path, path: Path):
    files = render(load_profile(path))
    for rel, text in files.items():
        if rel.endswith((".yaml", ".yml")):
            assert list(yaml.safe_load_all(text)), rel
        elif rel.endswith(".json"):
            json.loads(text)
        elif rel.endswith(".sh"):
            f = tmp_path / Path(rel).name
            f.write_text(text)
            subprocess.run(["bash", "-n", str(f)], check=True)
            assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
