"""The wizard's draft and planning glue, without Textual: defaults, prefill round trips, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from servewise.estimator import plan
from servewise.profiles import load_profile
from servewise.profiles.schema import Load, Workload
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.planning import compute_outcome
from servewise.wizard.state import PRESETS, Draft

from .conftest import example_profiles


def test_defaults_are_8_h100_sxm_on_one_node_with_the_chat_preset():
    d = Draft.new()
    assert (d.hardware.gpu, d.hardware.gpus_per_node, d.hardware.nodes) == ("h100-sxm", 8, 1)
    assert d.hardware.source == "manual"
    assert d.workload == PRESETS["chat"].workload and d.sla == PRESETS["chat"].sla
    assert d.engine.name == "vllm" and d.engine.version is None
    assert d.search.modes == ["agg", "disagg"]
    assert d.save_path == "servewise-profile.yaml"
    assert str(d.artifacts_path()) == "servewise-profile-deploy"


def test_the_default_draft_plans_feasibly():
    out = compute_outcome(Draft.new())
    assert out.error is None and out.feasible and out.exit_code == ExitCode.OK
    assert out.selected_from == "search" and out.selected is not None
    assert [r.tp for r in out.weights] == [1, 2, 4, 8]
    assert out.weights[0].weights_bytes > out.weights[1].weights_bytes > out.weights[3].weights_bytes


def test_with_replaces_and_forgets_a_picked_candidate_on_input_changes():
    d = Draft.new()
    picked = compute_outcome(d).result.chosen.plan
    d2 = d.with_(picked=picked)
    assert d2.picked == picked and d.picked is None          # the old draft is untouched
    assert d2.with_(save_path="x.yaml").picked == picked     # not a plan input
    assert d2.with_(workload=Workload(isl=100, osl=10, load=Load(concurrency=1))).picked is None
    with pytest.raises(TypeError, match="unknown draft field"):
        d.with_(isl=3)


@pytest.mark.parametrize("path", example_profiles(), ids=lambda p: p.name)
def test_an_opened_profile_saved_without_edits_is_the_same_profile(path):
    base = load_profile(path)
    d = Draft.from_profile(base, source=str(path))
    assert not d.inputs_changed and d.keeps_pinned_plan and d.save_path == str(path)
    assert d.to_profile(plan(d.inputs())) == base


@pytest.mark.parametrize("path", example_profiles(), ids=lambda p: p.name)
def test_an_edit_changes_that_field_and_the_plan_only(path):
    base = load_profile(path)
    d = Draft.from_profile(base)
    wl = base.workload.model_copy(update={"osl": base.workload.osl + 1})
    d = d.with_(workload=wl)
    assert d.inputs_changed and not d.keeps_pinned_plan
    result = plan(d.inputs())
    saved = d.to_profile(result)
    assert saved.workload == wl
    same = ("schema_version", "generator", "hardware", "model", "sla", "search", "calibration", "deploy")
    assert {k: getattr(saved, k) for k in same} == {k: getattr(base, k) for k in same}
    # a plan is pinned exactly when the search finds one that meets the example's SLA
    assert saved.engine.name == base.engine.name and (saved.plan is not None) == result.feasible


def test_errors_become_messages_with_the_cli_exit_code():
    d = Draft.new()
    unknown = compute_outcome(d.with_(model=d.model.model_copy(update={"id": "meta-llama/Llama-3.1-8B-Instruc"})))
    assert unknown.error and "did you mean" in unknown.error and unknown.exit_code == ExitCode.DATA
    too_long = compute_outcome(d.with_(model=d.model.model_copy(update={"max_model_len": 1000})))
    assert "max_model_len" in too_long.error and too_long.exit_code == ExitCode.USAGE


def test_infeasible_plans_save_the_inputs_without_a_plan():
    d = Draft.new()
    d = d.with_(hardware=d.hardware.model_copy(update={"gpu": "l4", "gpus_per_node": 1}),
                model=d.model.model_copy(update={"id": "meta-llama/Llama-3.1-70B-Instruct"}))
    out = compute_outcome(d)
    assert out.error is None and not out.feasible and out.exit_code == ExitCode.INFEASIBLE
    assert d.to_profile(out.result).plan is None


def test_state_and_planning_do_not_import_textual():
    code = ("import sys; import servewise.wizard.state, servewise.wizard.planning, servewise.wizard.detected, "
            "servewise.wizard.commands.wizard_cmd; assert 'textual' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("scenario, expect", [
    ("h100_x8", [("h100-sxm", 8, "nvlink")]),
    ("mixed_l4_a10g", None),
    ("no_driver", []),
    ("no_gpu", []),
])
def test_detection_through_a_fake_nvml(scenario, expect):
    from servewise.wizard.detected import detect_local

    from . import fake_nvml

    det = detect_local(fake_nvml.SCENARIOS[scenario]())
    if expect == []:
        assert not det.found and det.error
        return
    assert det.found and det.error is None and det.driver_version
    got = [(g.hardware.gpu_id, g.hardware.total_gpus, g.hardware.interconnect) for g in det.groups]
    if expect is None:       # a mixed box: one group per kind, with a warning that a plan uses one
        assert len(got) >= 2 and any("groups" in w for w in det.warnings)
    else:
        assert got == expect and det.groups[0].hardware.source == "nvml"
        assert 0 < det.groups[0].free_memory_bytes <= det.groups[0].hardware.fingerprint.memory_bytes[0]


def test_fewer_gpus_than_detected_keep_only_theirs_in_the_fingerprint():
    """As ``plan --detect --gpus N``: planning on 2 of 8 detected GPUs records those 2, so a replay on a
    2-GPU machine does not warn; more than detected (more nodes of this machine) keeps what was seen."""
    from servewise.profiles.schema import Fingerprint, Hardware
    from servewise.profiles.detected_hardware import with_counts

    fp = Fingerprint(names=[f"NVIDIA H100 80GB HBM3 #{i}" for i in range(8)], count=8,
                     memory_bytes=[85_520_809_984 + i for i in range(8)], driver_version="580.95.05")
    hw = Hardware(gpu="h100-sxm", gpus_per_node=8, nodes=1, source="nvml", fingerprint=fp)
    two = with_counts(hw, 2, 1)
    assert two.total_gpus == 2 and two.fingerprint is not None
    assert (two.fingerprint.count, two.fingerprint.names, two.fingerprint.memory_bytes) == (
        2, fp.names[:2], fp.memory_bytes[:2])
    assert two.fingerprint.driver_version == "580.95.05"
    assert with_counts(hw, 8, 2).fingerprint == fp
