"""``servewise detect``, ``plan/estimate --detect`` and the replay hardware check, per fake-NVML scenario."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest
import yaml

import servewise.profiles.detect as detect_module

from . import fake_nvml as fake
from .conftest import run_cli, run_cli_subprocess

MODEL_70B = ["--model", "meta-llama/Llama-3.1-70B-Instruct"]
MODEL_8B = ["--model", "meta-llama/Llama-3.1-8B-Instruct"]


def _has_nvidia_driver() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


no_driver_here = pytest.mark.skipif(_has_nvidia_driver(), reason="this machine has an NVIDIA driver")


@pytest.fixture
def machine(monkeypatch):
    """Install a fake NVML scenario for in-process CLI runs: ``machine("h100_x8")``."""
    def use(name: str) -> fake.FakeNvml:
        scenario = fake.SCENARIOS[name]()
        monkeypatch.setattr(detect_module, "_import_nvml", lambda: scenario)
        return scenario
    return use


@no_driver_here
def test_detect_without_a_gpu_exits_4_with_one_line():
    r = run_cli_subprocess("detect")
    assert r.code == 4 and r.out == ""
    assert r.err.count("\n") == 1 and "no NVIDIA driver found" in r.err


@no_driver_here
def test_detect_json_without_a_gpu_is_valid_json():
    r = run_cli_subprocess("detect", "--json")
    assert r.code == 4 and r.err.count("\n") == 1
    doc = json.loads(r.out)
    assert doc["source"] == "none" and doc["gpus"] == [] and "libnvidia-ml.so.1" in doc["error"]
    assert set(doc) == {"source", "gpus", "error"}


@no_driver_here
def test_plan_detect_without_a_gpu_exits_4():
    r = run_cli("plan", "--detect", *MODEL_8B, "--json")
    assert r.code == 4 and r.out == "" and r.err.count("\n") == 1 and "--detect" in r.err


def test_detect_h100_box(machine):
    machine("h100_x8")
    r = run_cli("detect")
    assert r.code == 0 and r.err == ""
    lines = r.out.splitlines()
    assert lines[0] == "NVIDIA driver 570.124.06 (CUDA 12.8): 8 GPU(s)"
    assert lines[3].split()[:4] == ["0", "NVIDIA", "H100", "80GB"] and "h100-sxm" in lines[3]
    assert "18 x NV4" in lines[3] and "79.18" in lines[3]
    assert any(line.startswith("GPU0") and line.split()[1:3] == ["X", "NV18"] for line in lines)
    assert "  0: 8 x h100-sxm over nvlink (79.18 GiB each, 79.18 GiB free)" in lines


def test_detect_json_h100_box(machine):
    machine("h100_x8")
    r = run_cli("detect", "--json")
    assert r.code == 0 and r.err == ""
    doc = json.loads(r.out)
    assert doc["source"] == "nvml" and len(doc["gpus"]) == 8 and doc["error"] is None
    assert doc["groups"][0] | {"devices": None} == {
        "sku": "h100-sxm", "name": "NVIDIA H100 80GB HBM3", "devices": None, "count": 8, "mig": False,
        "interconnect": "nvlink", "memory_bytes": 85020639232, "free_memory_bytes": (81559 - 477) * 1024**2,
        "known": True}


def test_detect_rtx_4090_pair_shows_pcie_and_the_busy_gpu(machine):
    machine("rtx4090_x2")
    out = run_cli("detect").out
    assert "GPU0     X   PHB" in out
    assert "1 / 1.50" in out and "--use-free-memory" in out
    assert "0: 2 x rtx-4090 over pcie (23.65 GiB each, 22.15 GiB free)" in out


def test_detect_mig_lists_instances_and_groups(machine):
    machine("a100_mig")
    out = run_cli("detect").out
    assert "(MIG on)" in out and out.count("MIG 3g.20gb") >= 2 and "? ~a100-sxm-40gb" in out
    assert "0: 2 x custom-nvidia-a100-sxm4-40gb-mig-3g-20gb MIG instances (19.50 GiB each" in out


def test_detect_mixed_box_lists_two_groups(machine):
    machine("mixed_l4_a10g")
    out = run_cli("detect").out
    assert "  0: 2 x l4 over pcie" in out and "  1: 1 x a10g (" in out and "form 2 groups" in out


def test_detect_lost_gpu_and_unsupported_fields(machine):
    machine("lost_gpu")
    out = run_cli("detect").out
    assert "(lost)" in out and "GPU 2 is lost" in out and "0: 3 x h100-sxm over nvlink" in out
    machine("not_supported")
    r = run_cli("detect")
    assert r.code == 0 and "NVIDIA L4  l4" in r.out and "0: 1 x l4 (21.99 GiB each" in r.out


def test_detect_unknown_gpu_warns_with_the_nearest(machine):
    machine("future_gpu")
    out = run_cli("detect").out
    assert "? ~gb300" in out and "NVIDIA B400 is not in the catalog" in out and "0: 8 x custom-nvidia-b400" in out


@pytest.mark.parametrize("name", ["no_driver", "no_gpu"])
def test_detect_failures_exit_4(machine, name):
    scenario = machine(name)
    r = run_cli("detect", "--json")
    assert r.code == 4 and r.err.count("\n") == 1
    assert json.loads(r.out)["source"] == "none"
    assert scenario.shutdown_calls == (0 if name == "no_driver" else 1)


def test_plan_detect_on_8_h100_plans_for_nvlink_h100_and_saves_it(machine, tmp_path):
    machine("h100_x8")
    saved = tmp_path / "p.yaml"
    r = run_cli("plan", "--detect", *MODEL_70B, "--save", str(saved))
    assert r.code == 0, r.err
    assert r.out.startswith("meta-llama/Llama-3.1-70B-Instruct on 8 x h100-sxm")
    hw = yaml.safe_load(saved.read_text())["hardware"]
    assert (hw["gpu"], hw["gpus_per_node"], hw["nodes"], hw["interconnect"], hw["source"]) == \
        ("h100-sxm", 8, 1, "nvlink", "nvml")
    assert hw["fingerprint"]["count"] == 8 and hw["fingerprint"]["names"] == ["NVIDIA H100 80GB HBM3"] * 8
    assert hw["fingerprint"]["memory_bytes"] == [81559 * 1024**2] * 8


def test_plan_detect_json_keeps_stderr_empty(machine):
    machine("rtx4090_x2")                      # has a warning, which --json must not print
    r = run_cli("plan", "--detect", *MODEL_8B, "--json")
    assert r.code == 0 and r.err == ""
    doc = json.loads(r.out)
    assert (doc["gpu"], doc["gpus"]) == ("rtx-4090", 2)


def test_plan_detect_use_free_memory_plans_on_what_is_left(machine):
    machine("rtx4090_x2")
    full = json.loads(run_cli("plan", "--detect", *MODEL_8B, "--json").out)
    free = json.loads(run_cli("plan", "--detect", "--use-free-memory", *MODEL_8B, "--json").out)
    assert free["chosen_estimate"]["memory"]["gpu_memory_bytes"] == (24564 - 347 - 1536) * 1024**2
    assert full["chosen_estimate"]["memory"]["gpu_memory_bytes"] == 25393364992


def test_estimate_detect_on_a_mixed_box_uses_the_chosen_group(machine):
    machine("mixed_l4_a10g")
    r = run_cli("estimate", "--detect", "--detect-group", "1", *MODEL_8B, "--max-model-len", "4096", "--json")
    assert r.code in (0, 1) and r.err == ""
    assert json.loads(r.out)["gpu"] == "a10g"


@pytest.mark.parametrize("argv, words", [
    (["--detect", "--gpu", "h100-sxm"], "--detect takes the GPUs from this machine"),
    (["--gpu", "h100-sxm", "--use-free-memory"], "need --detect"),
    (["--detect", "--detect-group", "3"], "--detect-group 3"),
    (["--detect", "--gpus", "9"], "--gpus 9: group 0 has 8 x h100-sxm"),
])
def test_detect_flag_misuse_is_a_usage_error(machine, argv, words):
    machine("h100_x8")
    r = run_cli("plan", *argv, *MODEL_8B)
    assert r.code == 2 and r.err.count("\n") == 1 and words in r.err


def test_replay_warns_on_other_hardware(machine, tmp_path):
    machine("h100_x8")
    saved = tmp_path / "p.yaml"
    assert run_cli("plan", "--detect", *MODEL_70B, "--save", str(saved)).code == 0
    assert "planned on" not in run_cli("--profile", str(saved)).err
    machine("rtx4090_x2")
    r = run_cli("--profile", str(saved))
    assert "warning: the profile was planned on 8 x NVIDIA H100 80GB HBM3; this machine has 2 x NVIDIA GeForce " \
           "RTX 4090" in r.err
    machine("no_driver")
    assert "planned on" not in run_cli("--profile", str(saved)).err   # replay needs no GPU


def test_bindings_are_imported_only_when_detecting():
    """nvidia-ml-py is imported lazily, by profiles/detect.py alone."""
    code = ("import sys; from servewise.wizard.cli import main; main(['gpus', 'h100', '--json']); "
            "assert 'pynvml' not in sys.modules; main(['detect', '--json']); assert 'pynvml' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_busy_gpu_warning_says_when_free_memory_is_already_used(machine):
    machine("rtx4090_x2")
    args = ("estimate", "--detect", *MODEL_8B, "--tp", "1", "--max-model-len", "4096")
    plain = run_cli(*args).err
    assert "already hold 1.5 GiB (plan on what is left with --use-free-memory)" in plain
    asked = run_cli(*args, "--use-free-memory").err
    assert "already hold 1.5 GiB (planning on what is left: --use-free-memory)" in asked
    assert "plan on what is left with" not in asked
