"""GPU detection through NVML against a fake NVML with named scenarios (tests/fake_nvml.py)."""

from __future__ import annotations

import json

import pynvml
import pytest

from servewise.perfdata import get_gpu
from servewise.perfdata.errors import DeviceError, UsageError
from servewise.profiles import CustomGpu
from servewise.profiles.detect import Detection, detect, hardware_from_detection
from servewise.profiles.detected_hardware import fingerprint_difference, nearest_sku

from . import fake_nvml as fake
from .test_gpu_catalog import REAL_NVML_NAMES

GIB = 1024**3
MIB = 1024**2


def run(scenario: fake.FakeNvml) -> Detection:
    det = detect(scenario)
    assert scenario.init_calls == 1
    assert scenario.shutdown_calls == (1 if scenario.init_error is None else 0), "shut down iff init succeeded"
    return det


def test_hgx_h100_with_nvlink():
    det = run(fake.h100_x8())
    assert det.source == "nvml" and det.error is None and det.warnings == []
    assert (det.driver_version, det.cuda_driver_version) == ("570.124.06", "12.8")
    assert [g.catalog_id for g in det.gpus] == ["h100-sxm"] * 8
    g = det.gpus[0]
    assert (g.compute_capability, g.power_limit_w, g.mig_enabled) == ("9.0", 700.0, False)
    assert (g.memory_total_bytes, g.memory_reserved_bytes) == (81559 * MIB, 477 * MIB)
    assert (g.nvlink_active_links, g.nvlink_generation) == (18, 4)
    assert len(det.links) == 28 and all(lk.nvlink and lk.nvlink_links == 18 and lk.p2p_read for lk in det.links)
    assert {lk.common_ancestor for lk in det.links} == {"cpu-socket"}
    [grp] = det.groups
    assert (grp.sku, grp.count, grp.interconnect, grp.known) == ("h100-sxm", 8, "nvlink", True)
    hw = hardware_from_detection(det)
    assert (hw.gpu, hw.gpus_per_node, hw.nodes, hw.interconnect, hw.source) == ("h100-sxm", 8, 1, "nvlink", "nvml")
    assert hw.fingerprint.count == 8 and hw.fingerprint.names == ["NVIDIA H100 80GB HBM3"] * 8
    assert hw.fingerprint.driver_version == "570.124.06" and hw.memory_bytes is None
    assert hardware_from_detection(det, gpus=4).gpus_per_node == 4


def test_two_rtx_4090_over_pcie_with_a_process_holding_memory():
    det = run(fake.rtx4090_x2())
    assert [g.catalog_id for g in det.gpus] == ["rtx-4090", "rtx-4090"]
    [link] = det.links
    assert (link.nvlink, link.nvlink_links, link.p2p_read, link.common_ancestor) == (False, None, False, "host-bridge")
    assert det.gpus[0].nvlink_active_links is None
    assert (det.gpus[0].processes, det.gpus[0].processes_memory_bytes) == (1, 1536 * MIB)
    assert any("1 process(es) already hold 1.5 GiB" in w for w in det.warnings)
    [grp] = det.groups
    assert grp.interconnect == "pcie"
    free = (24564 - 347 - 1536) * MIB
    assert grp.free_memory_bytes == free
    assert hardware_from_detection(det).memory_bytes is None
    hw = hardware_from_detection(det, use_free_memory=True)
    assert hw.memory_bytes == free and hw.interconnect == "pcie"


def test_a100_with_mig_instances_as_plannable_devices():
    det = run(fake.a100_mig())
    parent, *instances = det.gpus
    assert parent.mig_enabled and parent.mig_instance is None and not parent.usable
    assert [i.mig_instance for i in instances] == ["MIG 3g.20gb", "MIG 3g.20gb", "MIG 1g.5gb"]
    assert all(i.mig_parent_uuid == parent.uuid and i.nearest_id == "a100-sxm-40gb" for i in instances)
    assert instances[0].memory_total_bytes == 19968 * MIB and instances[1].memory_free_bytes == (19968 - 2048) * MIB
    big, small = det.groups
    assert (big.count, big.mig, small.count) == (2, True, 1)
    assert big.sku == "custom-nvidia-a100-sxm4-40gb-mig-3g-20gb"
    hw = hardware_from_detection(det)
    assert isinstance(hw.gpu, CustomGpu) and hw.gpu.nearest == "a100-sxm-40gb"
    assert hw.gpu.memory_bytes == 19968 * MIB and hw.gpu.compute_capability == "8.0"
    assert (hw.gpus_per_node, hw.nodes) == (1, 2), "MIG instances cannot be joined by tensor parallelism"
    assert hardware_from_detection(det, group=1).gpu.memory_bytes == 4864 * MIB
    with pytest.raises(UsageError, match="--detect-group 2: this machine has 2 GPU group"):
        hardware_from_detection(det, group=2)


def test_mixed_l4_and_a10g_form_groups():
    det = run(fake.mixed_l4_a10g())
    assert [(g.sku, g.count) for g in det.groups] == [("l4", 2), ("a10g", 1)]
    assert any("2 groups" in w for w in det.warnings)
    assert hardware_from_detection(det).gpu == "l4"
    hw = hardware_from_detection(det, group=1)
    assert (hw.gpu, hw.gpus_per_node, hw.interconnect) == ("a10g", 1, None)
    with pytest.raises(UsageError, match="--gpus 3: group 0 has 2 x l4"):
        hardware_from_detection(det, gpus=3)


def test_a_lost_gpu_does_not_hide_the_others():
    det = run(fake.lost_gpu())
    assert det.source == "nvml"
    assert det.gpus[2].error and "lost" in det.gpus[2].error and det.gpus[2].name is None
    assert [g.index for g in det.gpus if g.usable] == [0, 1, 3]
    assert {(lk.a, lk.b) for lk in det.links} == {(0, 1), (0, 3), (1, 3)}
    assert det.groups[0].count == 3 and det.groups[0].interconnect == "nvlink"
    assert any("GPU 2 is lost" in w for w in det.warnings)


def test_fields_not_supported_become_null():
    det = run(fake.not_supported())
    g = det.gpus[0]
    assert g.catalog_id == "l4"
    for field in ("uuid", "pci_bus_id", "memory_reserved_bytes", "power_limit_w", "mig_enabled", "processes",
                  "compute_capability", "nvlink_active_links"):
        assert getattr(g, field) is None, field
    assert g.memory_total_bytes == 23034 * MIB                 # v1 memory info still answers
    assert hardware_from_detection(det).gpu == "l4"


def test_unknown_future_gpu_becomes_a_custom_spec_with_the_nearest_sku():
    det = run(fake.future_gpu())
    g = det.gpus[0]
    assert g.catalog_id is None and g.nearest_id == "gb300" and g.nvlink_generation == 6
    assert any("NVIDIA B400 is not in the catalog" in w and "gb300" in w and "rough" in w for w in det.warnings)
    assert len([w for w in det.warnings if "B400" in w]) == 1
    hw = hardware_from_detection(det)
    assert hw.gpu == CustomGpu(id="custom-nvidia-b400", name="NVIDIA B400", memory_bytes=(300 * 1024 - 1100) * MIB,
                               compute_capability="10.3", nearest="gb300")
    assert hw.interconnect == "nvlink" and hw.gpus_per_node == 8


def test_bridged_pairs_leave_the_interconnect_to_the_catalog():
    det = run(fake.h100_nvl_x4())
    pairs = {(lk.a, lk.b): lk for lk in det.links}
    assert pairs[(0, 1)].nvlink and pairs[(0, 1)].nvlink_links == 12
    assert not pairs[(0, 2)].nvlink and pairs[(0, 2)].common_ancestor == "cross-socket"
    assert det.groups[0].interconnect is None
    assert get_gpu("h100-nvl").scale_up_domain_gpus == 2


@pytest.mark.parametrize("code, words", [
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver found"),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "kernel driver is not loaded"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "no permission"),
    (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "differ in version"),
    (pynvml.NVML_ERROR_UNKNOWN, "NVML could not start"),
])
def test_init_failures_are_explained_and_never_shut_down(code, words):
    det = run(fake.no_driver(code))
    assert det.source == "none" and words in det.error and det.gpus == [] and det.groups == []
    assert det.to_json() == {"source": "none", "gpus": [], "error": det.error}
    with pytest.raises(DeviceError, match=words):
        hardware_from_detection(det)


def test_no_gpu_and_a_failing_query_still_shut_down():
    assert "reports no GPU" in run(fake.no_gpu()).error
    broken = fake.h100_x8()
    broken.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN))
    det = run(broken)
    assert det.source == "none" and "NVML query failed" in det.error


def test_all_gpus_lost_is_a_failure():
    nvml = fake.lost_gpu()
    for d in nvml.devices:
        d.lost = True
    det = run(nvml)
    assert det.source == "none" and "no usable GPU" in det.error and "lost" in det.error


def test_missing_bindings_are_reported(monkeypatch):
    import servewise.profiles.detect as mod

    def no_module():
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(mod, "_import_nvml", no_module)
    assert detect().error == "the nvidia-ml-py package is not installed (pip install nvidia-ml-py)"


@pytest.mark.parametrize("name, sku", sorted(REAL_NVML_NAMES.items()))
def test_every_catalog_sku_is_detected_from_its_nvml_name(name, sku):
    spec = get_gpu(sku)
    total_mib = (spec.nvml_memory_bytes or spec.memory_bytes) // MIB
    major, minor = (int(x) for x in spec.compute_capability.split("."))
    det = run(fake.FakeNvml([fake.FakeDevice(name, total_mib, cc=(major, minor))]))
    assert det.gpus[0].catalog_id == sku and not det.warnings
    assert hardware_from_detection(det).gpu == sku


def test_modified_48gb_4090_is_not_taken_for_the_catalog_card():
    det = run(fake.FakeNvml([fake.FakeDevice("NVIDIA GeForce RTX 4090", 49140, cc=(8, 9))]))
    assert det.gpus[0].catalog_id is None and det.gpus[0].nearest_id == "rtx-4090"


def test_nearest_sku_prefers_compute_capability_then_memory():
    assert nearest_sku("9.0", 80 * GIB).id == "h100-sxm"
    assert nearest_sku("10.0", 190 * GIB).id == "gb200"
    assert nearest_sku("8.9", 24 * GIB).id == "rtx-4090"
    assert nearest_sku(None, 80 * GIB).id in {"a100-sxm-80gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie"}


def test_fingerprint_difference():
    hw = hardware_from_detection(run(fake.h100_x8()))
    assert fingerprint_difference(hw.fingerprint, run(fake.h100_x8())) is None
    assert "planned on 8 x NVIDIA H100 80GB HBM3; this machine has 3 x NVIDIA H100" in \
        fingerprint_difference(hw.fingerprint, run(fake.lost_gpu()))
    assert fingerprint_difference(hw.fingerprint, run(fake.no_driver())) is None


def test_success_json_is_serialisable():
    doc = json.loads(json.dumps(run(fake.a100_mig()).to_json()))
    assert doc["source"] == "nvml" and len(doc["gpus"]) == 4 and len(doc["groups"]) == 2
    assert doc["gpus"][1]["mig_instance"] == "MIG 3g.20gb"


def test_only_profiles_detect_imports_the_bindings():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    users = sorted(str(p.relative_to(root)) for folder in ("perfdata", "profiles", "estimator", "render", "wizard")
                   for p in (root / folder).rglob("*.py") if "import pynvml" in p.read_text())
    assert users == ["profiles/detect.py"]


def test_mig_instances_without_uuids_stay_distinct():
    nvml = fake.a100_mig()
    for inst in nvml.devices[0].mig:
        inst.unsupported.add("nvmlDeviceGetUUID")
    det = run(nvml)
    assert [g.key for g in det.gpus] == ["0", "0/0", "0/1", "0/2"]
    assert det.groups[0].devices == ["0/0", "0/1"]


def test_nvlink_bridged_pcie_cards_are_planned_as_the_catalog_models_them():
    """Two RTX 3090 with an NVLink bridge: NVLink is seen, but the catalog's rtx-3090 is a PCIe card."""
    nvml = fake.FakeNvml([fake.FakeDevice("NVIDIA GeForce RTX 3090", 24576, cc=(8, 6), nvlinks=4, nvlink_version=4,
                                          nvswitch=False) for _ in range(2)])
    det = run(nvml)
    assert det.groups[0].interconnect == "nvlink" and det.links[0].nvlink_links == 4
    assert det.gpus[0].nvlink_generation == 3
    assert hardware_from_detection(det).interconnect is None
    assert any("NVLink bridges join the 2 x rtx-3090" in w for w in det.warnings)
