"""Profile v1: strict validation, one-line errors naming the field, migrations, stable output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from servewise.profiles import (
    Profile, ProfileError, dump_profile, json_schema_text, load_profile, parse_profile, save_profile,
)
from servewise.profiles.migrations import STEPS, migrate
from servewise.profiles.schema import SCHEMA_VERSION

from .conftest import ROOT, example_profiles, run_cli


def _example_text() -> str:
    return example_profiles()[0].read_text()


def _doc() -> dict:
    return yaml.safe_load(_example_text())


def _err(doc: dict) -> str:
    with pytest.raises(ProfileError) as e:
        parse_profile(yaml.safe_dump(doc), path="p.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("path", example_profiles(), ids=lambda p: p.name)
def test_examples_load_and_round_trip(path: Path):
    prof = load_profile(path)
    assert isinstance(prof, Profile)
    assert prof.plan is not None, "examples pin a plan"
    assert dump_profile(prof) == path.read_text(), "examples are saved in canonical form"
    assert parse_profile(dump_profile(prof)) == prof


def test_unknown_key_names_the_field():
    doc = _doc()
    doc["model"]["weigths_dtype"] = "bf16"
    assert "model.weigths_dtype" in _err(doc) and "unknown key" in _err(doc)


def test_wrong_type_names_the_field():
    doc = _doc()
    doc["workload"]["isl"] = "4000"
    assert "workload.isl" in _err(doc)


def test_future_schema_version_is_refused():
    doc = _doc()
    doc["schema_version"] = 2
    msg = _err(doc)
    assert "schema_version" in msg and "newer" in msg


def test_choice_field():
    doc = _doc()
    doc["engine"]["name"] = "tgi"
    assert "engine.name" in _err(doc)


def test_plan_cannot_exceed_hardware():
    doc = _doc()
    doc["plan"]["replicas"] = 99
    assert "GPUs" in _err(doc)


def test_duplicate_keys_and_aliases_are_refused():
    text = _example_text() + "\nschema_version: 1\n"
    with pytest.raises(ProfileError, match="duplicate key"):
        parse_profile(text)
    with pytest.raises(ProfileError, match="aliases"):
        parse_profile("a: &x [1]\nb: *x\n")


def test_migration_walks_a_fake_v0():
    v0 = {"profile_version": 0, "gpu": "h100-sxm", "gpus": 4, "gpus_per_node": 4, "concurrency": 16,
          "generator": {"servewise": "0.0.1", "perfdata": "x"},
          "model": {"id": "meta-llama/Llama-3.1-8B-Instruct"}, "workload": {"isl": 100, "osl": 10}}
    out = migrate(v0)
    assert out["schema_version"] == 1
    prof = Profile.model_validate(out)
    assert prof.hardware.gpu == "h100-sxm" and prof.hardware.total_gpus == 4
    assert prof.workload.load.concurrency == 16


def test_migration_steps_are_applied_in_order():
    steps = {0: lambda d: {**d, "schema_version": 1, "a": 1}, 1: lambda d: {**d, "schema_version": 2, "b": 2}}
    out = migrate({"schema_version": 0}, steps=steps, target=2)
    assert out == {"schema_version": 2, "a": 1, "b": 2}


FIXTURES = ROOT / "tests" / "fixtures" / "profiles"


def test_every_released_version_keeps_a_fixture_that_loads():
    """One frozen profile per schema version, kept forever: each still loads (migrated) and validates."""
    versions = range(min(STEPS), SCHEMA_VERSION + 1)
    assert sorted(p.name for p in FIXTURES.glob("v*.yaml")) == sorted(f"v{v}.yaml" for v in versions)
    for v in versions:
        prof = load_profile(FIXTURES / f"v{v}.yaml")
        assert prof.schema_version == SCHEMA_VERSION
    v0 = load_profile(FIXTURES / "v0.yaml")
    assert (v0.hardware.gpu, v0.hardware.total_gpus, v0.workload.load.concurrency) == ("h100-sxm", 4, 16)
    assert load_profile(FIXTURES / "v1.yaml").plan is not None


def test_committed_json_schema_matches_the_model():
    committed = (ROOT / "profiles" / "profile.schema.json").read_text()
    assert committed == json_schema_text(), "regenerate with: servewise profile schema > profiles/profile.schema.json"
    json.loads(committed)


def test_save_is_atomic_and_stable(tmp_path):
    prof = load_profile(example_profiles()[0])
    out = tmp_path / "p.yaml"
    save_profile(prof, out)
    first = out.read_bytes()
    save_profile(load_profile(out), out)
    assert out.read_bytes() == first
    assert not [p for p in tmp_path.iterdir() if p.name != "p.yaml"], "no temp files left behind"


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["model"].__setitem__("bogus", 1), "model.bogus"),
    (lambda d: d["workload"].__setitem__("osl", -5), "workload.osl"),
    (lambda d: d.__setitem__("schema_version", 7), "schema_version"),
])
def test_cli_validate_exit_2_one_line(tmp_path, mutate, field):
    doc = _doc()
    mutate(doc)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(doc))
    r = run_cli("profile", "validate", str(p))
    assert r.code == 2
    assert r.err.count("\n") == 1 and field in r.err and "Traceback" not in r.err
    r = run_cli("--profile", str(p), "--out", str(tmp_path / "out"))
    assert r.code == 2 and field in r.err
    assert not (tmp_path / "out").exists()


def test_a_local_folder_without_a_recorded_architecture_says_so(tmp_path):
    doc = _doc()
    doc["model"]["id"] = "./gone"
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(doc))
    r = run_cli("--profile", str(p), "--out", str(tmp_path / "out"))
    assert r.code == 3 and r.err.count("\n") == 1
    assert "model.id: './gone' is a local folder and the profile records no model.architecture" in r.err
    assert not (tmp_path / "out").exists()
