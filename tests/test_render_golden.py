"""Golden files for every example profile x target; rendering is deterministic."""

from __future__ import annotations

import os

import pytest

from servewise.profiles import load_profile
from servewise.render import render

from .conftest import ROOT, example_profiles
from .validators.artifacts import examples

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("SERVEWISE_UPDATE_GOLDEN") == "1"
TARGET_DIRS = {"shell": "shell/", "compose": "compose/", "helm": "helm/", "k8s": "k8s/"}


@pytest.mark.parametrize("stem", [p.stem for p in example_profiles()])
def test_golden(stem: str):
    files = examples()[stem].files
    gold = GOLDEN / stem
    if UPDATE:
        import shutil

        shutil.rmtree(gold, ignore_errors=True)
        for rel, text in files.items():
            (gold / rel).parent.mkdir(parents=True, exist_ok=True)
            (gold / rel).write_text(text)
    expected = {p.relative_to(gold).as_posix(): p.read_text() for p in gold.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected), "set SERVEWISE_UPDATE_GOLDEN=1 to regenerate after a deliberate change"
    for rel, text in files.items():
        assert text == expected[rel], f"{stem}/{rel} differs from its golden file"


def test_no_stale_golden_directories():
    stems = {p.stem for p in example_profiles()}
    assert {p.name for p in GOLDEN.iterdir() if p.is_dir()} == stems


def test_every_example_renders_every_target():
    for stem, r in examples().items():
        for target in r.profile.deploy.targets:
            produced = [f for f in r.files if f.startswith(TARGET_DIRS[target])]
            if target == "helm" and not any(f.endswith("-values.yaml") for f in produced):
                assert "Not generated for this plan" in r.files["README.md"], stem   # with the reason
            else:
                assert produced, (stem, target)


def test_render_twice_is_identical():
    for path in example_profiles()[:3]:
        assert render(load_profile(path)) == render(load_profile(path))
