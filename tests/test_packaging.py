"""Packaging: every source folder ships, under the servewise namespace only."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("wizard", "estimator", "render", "profiles", "perfdata")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_source_package_is_listed():
    cfg = _pyproject()["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    for folder in SOURCE_FOLDERS:
        assert mapping[f"servewise.{folder}"] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join(["servewise", folder, *rel.parts])
            assert name in listed, f"{name} ({init.parent}) is missing from [tool.setuptools] packages"


def test_listed_packages_exist():
    for name in _pyproject()["tool"]["setuptools"]["packages"]:
        parts = name.split(".")[1:]
        assert (ROOT.joinpath(*parts) / "__init__.py").is_file(), name


@pytest.mark.slow
def test_wheel_has_no_generic_top_level_names(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("servewise-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert not tops & set(SOURCE_FOLDERS), tops
    assert "servewise" in tops
    # Package data travels: catalogs, templates, the profile schema and examples.
    assert any(n.startswith("servewise/perfdata/gpus/") and n.endswith(".yaml") for n in names)
    assert any(n.startswith("servewise/render/templates/") for n in names)
    assert "servewise/profiles/profile.schema.json" in names
    assert any(n.startswith("servewise/profiles/examples/") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_domain_imports_do_not_load_textual():
    code = ("import sys; import servewise.perfdata, servewise.profiles, servewise.estimator, servewise.render, "
            "servewise.wizard.cli; assert 'textual' not in sys.modules, 'textual imported'; "
            "from servewise.wizard.cli import build_parser; build_parser(); "
            "assert 'textual' not in sys.modules, 'textual imported by the parser'")
    subprocess.run([sys.executable, "-c", code], check=True)
