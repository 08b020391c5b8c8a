"""CI on committed profiles: ``servewise --profile P --strict`` exits 5 when re-planning drifts from the
pinned plan (and says what changed); ``servewise profile diff`` reviews a change field by field."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import EXAMPLES, run_cli


@pytest.fixture(scope="module")
def stable(tmp_path_factory) -> Path:
    """A profile whose pinned plan is what re-planning chooses today."""
    p = tmp_path_factory.mktemp("stable") / "p.yaml"
    r = run_cli("plan", "--profile", str(EXAMPLES / "qwen3-32b-8xh200-vllm.yaml"), "--save", str(p))
    assert r.code == 0, r.err
    return p


@pytest.fixture
def edited(tmp_path, stable):  # type: ignore[no-untyped-def]
    """``edited(name, edit)``: the stable profile with ``edit(doc)`` applied, written to ``name``."""
    def make(name: str, edit) -> str:  # type: ignore[no-untyped-def]
        doc = yaml.safe_load(stable.read_text())
        edit(doc)
        p = tmp_path / name
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        return str(p)
    return make


def _seqs(path: Path | str) -> int:
    return yaml.safe_load(Path(path).read_text())["plan"]["worker"]["max_num_seqs"]


def test_strict_replay_without_drift_exits_0(tmp_path, stable):
    r = run_cli("--profile", str(stable), "--strict", "--out", str(tmp_path / "out"))
    assert r.code == 0 and "drift" not in r.err
    assert (tmp_path / "out" / "plan.json").exists()


def test_strict_replay_with_drift_exits_5_names_the_change_and_still_renders_the_pinned_plan(tmp_path, stable,
                                                                                          edited):
    seqs = _seqs(stable)
    p = edited("p.yaml", lambda d: d["plan"]["worker"].update(max_num_seqs=seqs + 1))
    r = run_cli("--profile", p, "--strict", "--out", str(tmp_path / "out"))
    assert r.code == 5, r.err
    drift = [line for line in r.err.splitlines() if line.startswith("drift:")]
    assert len(drift) == 1 and f"plan.worker.max_num_seqs {seqs + 1} -> {seqs}" in drift[0]
    assert "--replan --save" in drift[0]
    assert f"--max-num-seqs {seqs + 1}" in (tmp_path / "out" / "shell" / "serve.sh").read_text(), "the pinned plan"
    r = run_cli("--profile", p)
    assert r.code == 0 and "drift:" in r.err, "without --strict drift is reported, not fatal"


def test_strict_replay_exits_5_when_nothing_is_feasible_any_more(edited):
    p = edited("p.yaml", lambda d: d["hardware"].update(memory_bytes=1024**3))
    r = run_cli("--profile", p, "--strict")
    assert r.code == 5 and "re-planning finds nothing feasible" in r.err


def test_replan_save_then_diff_is_the_review_of_the_drift(tmp_path, stable, edited):
    seqs = _seqs(stable)
    p = edited("p.yaml", lambda d: d["plan"]["worker"].update(max_num_seqs=seqs * 2))
    p2 = tmp_path / "p2.yaml"
    assert run_cli("--profile", p, "--replan", "--save", str(p2)).code == 0
    r = run_cli("profile", "diff", p, str(p2), "--exit-code")
    assert r.code == 5
    assert f"plan:\n  plan.worker.max_num_seqs: {seqs * 2} -> {seqs} (-50.0%)" in r.out
    assert run_cli("--profile", str(p2), "--strict").code == 0


def test_diff_shows_inputs_plan_and_estimates_with_relative_changes(edited):
    def edit_a(d):  # type: ignore[no-untyped-def]
        d["workload"]["isl"] = 4000
        d["plan"].update(replicas=2, estimates={"ttft_ms": 640.0, "ttft_ms_range": [520.0, 790.0]})
        d["plan"]["worker"]["tp"] = 4

    def edit_b(d):  # type: ignore[no-untyped-def]
        d["workload"]["isl"] = 6000
        d["plan"].update(replicas=1, estimates={"ttft_ms": 700.0, "ttft_ms_range": [600.0, 800.0]})
        d["plan"]["worker"]["tp"] = 8
    r = run_cli("profile", "diff", edited("a.yaml", edit_a), edited("b.yaml", edit_b))
    assert r.code == 0
    assert r.out.splitlines() == [
        "inputs:", "  workload.isl: 4000 -> 6000 (+50.0%)",
        "plan:", "  plan.replicas: 2 -> 1 (-50.0%)", "  plan.worker.tp: 4 -> 8 (+100.0%)",
        "estimates:", "  plan.estimates.ttft_ms: 640.0 -> 700.0 (+9.4%)",
        "  plan.estimates.ttft_ms_range: [520.0, 790.0] -> [600.0, 800.0]",
        "5 changes (1 inputs, 2 plan, 2 estimates)"]


def test_diff_reads_the_old_profile_from_standard_input(monkeypatch, stable):
    """``git show main:p.yaml | servewise profile diff - p.yaml`` in a pull request check."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stable.read_bytes())))
    r = run_cli("profile", "diff", "-", str(stable), "--exit-code")
    assert r.code == 0 and r.out.strip() == "identical"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"- not a profile\n")))
    r = run_cli("profile", "diff", "-", str(stable))
    assert r.code == 2 and r.err == "servewise: <stdin>: a profile must be a YAML mapping\n"


def test_stale_pinned_estimates_are_noted_when_the_configuration_stands(tmp_path, stable, edited):
    """The artifacts' README prints the pinned figures: when re-planning keeps the configuration but
    its figures move (here the pinned TPOT is doubled), replay says so, names the figure, and it is
    not drift (``--strict`` still exits 0)."""
    doc = yaml.safe_load(stable.read_text())
    tpot = doc["plan"]["estimates"]["tpot_ms"]
    p = edited("p.yaml", lambda d: d["plan"]["estimates"].update(tpot_ms=2 * tpot))
    r = run_cli("--profile", p, "--strict")
    assert r.code == 0, r.err
    notes = [line for line in r.err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "tpot_ms" in notes[0] and "ttft_ms" not in notes[0], r.err
    assert "--replan --save" in notes[0]
    r = run_cli("--profile", str(stable), "--strict")
    assert r.code == 0 and "note:" not in r.err, "figures that stand are not noted"


def test_replan_save_pins_the_estimates_and_engine_version(tmp_path, stable):
    """``--replan --save P2`` pins what ``plan --save`` pins: the same profile when nothing drifted."""
    p2 = tmp_path / "p2.yaml"
    r = run_cli("--profile", str(stable), "--replan", "--save", str(p2))
    assert r.code == 0, r.err
    assert yaml.safe_load(p2.read_text()) == yaml.safe_load(stable.read_text())


def test_drift_hint_repeats_the_set_overrides_it_drifted_with(tmp_path, stable):
    """The hinted command re-plans what this replay re-planned: without the ``--set`` the file as it
    stands would be re-planned, which need not drift at all."""
    r = run_cli("--profile", str(stable), "--set", "workload.isl=100", "--set", "model.served_name=my model")
    drift = [line for line in r.err.splitlines() if line.startswith("drift:")]
    assert r.code == 0 and len(drift) == 1, r.err
    assert (f"`servewise --profile {stable} --set workload.isl=100 --set 'model.served_name=my model' --replan "
            "--save P2`") in drift[0]
