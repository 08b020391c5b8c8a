"""CI on committed profiles: ``servewise --profile P --strict`` exits 5 when re-planning drifts from the
pinned plan (and says what changed); ``servewise profile diff`` reviews a change field by field."""

from __future__ import annotations

import yaml

from .conftest import EXAMPLES, run_cli

STABLE = EXAMPLES / "qwen3-32b-8xh200-vllm.yaml"   # its pinned plan is what re-planning chooses


def _edited(tmp_path, name: str, edit) -> str:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(STABLE.read_text())
    edit(doc)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(p)


def test_strict_replay_without_drift_exits_0(tmp_path):
    r = run_cli("--profile", str(STABLE), "--strict", "--out", str(tmp_path / "out"))
    assert r.code == 0 and "drift" not in r.err
    assert (tmp_path / "out" / "plan.json").exists()


def test_strict_replay_with_drift_exits_5_names_the_change_and_still_renders_the_pinned_plan(tmp_path):
    p = _edited(tmp_path, "p.yaml", lambda d: d["plan"]["worker"].update(max_num_seqs=17))
    r = run_cli("--profile", p, "--strict", "--out", str(tmp_path / "out"))
    assert r.code == 5, r.err
    drift = [line for line in r.err.splitlines() if line.startswith("drift:")]
    assert len(drift) == 1 and "plan.worker.max_num_seqs 17 -> 16" in drift[0] and "--replan --save" in drift[0]
    assert "--max-num-seqs 17" in (tmp_path / "out" / "shell" / "serve.sh").read_text(), "the pinned plan"
    r = run_cli("--profile", p)
    assert r.code == 0 and "drift:" in r.err, "without --strict drift is reported, not fatal"


def test_strict_replay_exits_5_when_nothing_is_feasible_any_more(tmp_path):
    p = _edited(tmp_path, "p.yaml", lambda d: d["hardware"].update(memory_bytes=1024**3))
    r = run_cli("--profile", p, "--strict")
    assert r.code == 5 and "re-planning finds nothing feasible" in r.err


def test_replan_save_then_diff_is_the_review_of_the_drift(tmp_path):
    p = _edited(tmp_path, "p.yaml", lambda d: d["plan"]["worker"].update(max_num_seqs=17))
    p2 = tmp_path / "p2.yaml"
    assert run_cli("--profile", p, "--replan", "--save", str(p2)).code == 0
    r = run_cli("profile", "diff", p, str(p2), "--exit-code")
    assert r.code == 5
    assert "plan:\n  plan.worker.max_num_seqs: 17 -> 16 (-5.9%)" in r.out
    assert r.out.rstrip().endswith("1 change (1 plan)")
    assert run_cli("--profile", str(p2), "--strict").code == 0


def test_diff_shows_inputs_plan_and_estimates_with_relative_changes(tmp_path):
    def edit_b(d):  # type: ignore[no-untyped-def]
        d["workload"]["isl"] = 6000
        d["plan"]["replicas"] = 4
        d["plan"]["worker"]["tp"] = 2
        d["plan"]["estimates"] = {"ttft_ms": 700.0, "ttft_ms_range": [600.0, 800.0]}
    a = _edited(tmp_path, "a.yaml", lambda d: d["plan"].update(estimates={"ttft_ms": 640.0,
                                                                            "ttft_ms_range": [520.0, 790.0]}))
    b = _edited(tmp_path, "b.yaml", edit_b)
    r = run_cli("profile", "diff", a, b)
    assert r.code == 0
    assert r.out.splitlines() == [
        "inputs:", "  workload.isl: 4000 -> 6000 (+50.0%)",
        "plan:", "  plan.replicas: 8 -> 4 (-50.0%)", "  plan.worker.tp: 1 -> 2 (+100.0%)",
        "estimates:", "  plan.estimates.ttft_ms: 640.0 -> 700.0 (+9.4%)",
        "  plan.estimates.ttft_ms_range: [520.0, 790.0] -> [600.0, 800.0]",
        "5 changes (1 inputs, 2 plan, 2 estimates)"]


def test_diff_reads_the_old_profile_from_standard_input(tmp_path, monkeypatch):
    """``git show main:p.yaml | servewise profile diff - p.yaml`` in a pull request check."""
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(STABLE.read_bytes())))
    r = run_cli("profile", "diff", "-", str(STABLE), "--exit-code")
    assert r.code == 0 and r.out.strip() == "identical"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"- not a profile\n")))
    r = run_cli("profile", "diff", "-", str(STABLE))
    assert r.code == 2 and r.err == "servewise: <stdin>: a profile must be a YAML mapping\n"
