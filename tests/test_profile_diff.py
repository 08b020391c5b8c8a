"""``servewise profile diff``: field paths grouped by section; --exit-code for CI."""

from __future__ import annotations

import json

import yaml

from servewise.profiles import load_profile, profile_from_dict
from servewise.profiles.diff import diff_profiles

from .conftest import example_profiles, run_cli


def _variant(tmp_path, mutate):
    src = example_profiles()[0]
    doc = yaml.safe_load(src.read_text())
    mutate(doc)
    out = tmp_path / "variant.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return src, out


def test_identical():
    p = example_profiles()[0]
    r = run_cli("profile", "diff", str(p), str(p), "--exit-code")
    assert r.code == 0 and r.out.strip() == "identical"


def test_changes_are_grouped_and_exit_code(tmp_path):
    def mutate(d):
        d["workload"]["isl"] = 1234
        d["plan"]["worker"]["max_num_seqs"] = 3
        d["deploy"]["namespace"] = "prod"
    a, b = _variant(tmp_path, mutate)
    r = run_cli("profile", "diff", str(a), str(b), "--json", "--exit-code")
    assert r.code == 5 and r.err == ""
    doc = json.loads(r.out)
    got = {(c["section"], c["path"]) for c in doc["changes"]}
    assert got == {("inputs", "workload.isl"), ("plan", "plan.worker.max_num_seqs"), ("deploy", "deploy.namespace")}
    isl = load_profile(a).workload.isl
    r = run_cli("profile", "diff", str(a), str(b))
    assert r.code == 0 and f"workload.isl: {isl} -> 1234" in r.out


def test_estimates_section(tmp_path):
    a = load_profile(example_profiles()[0])
    doc = a.model_dump(mode="json")
    assert doc["plan"]["estimates"]["ttft_ms"] != 100.0      # examples pin their estimates
    doc["plan"]["estimates"]["ttft_ms"] = 100.0
    b = profile_from_dict(doc)
    changes = diff_profiles(a, b)
    assert [(c.section, c.path) for c in changes] == [("estimates", "plan.estimates.ttft_ms")]
    doc["plan"]["estimates"] = None
    assert {c.section for c in diff_profiles(a, profile_from_dict(doc))} == {"estimates"}


def test_standard_input_is_one_side_only():
    r = run_cli("profile", "diff", "-", "-")
    assert r.code == 2 and r.err.count("\n") == 1 and "only one of OLD and NEW can be '-'" in r.err
