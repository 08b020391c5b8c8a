"""The GPU catalog: every file validates, every figure has a source, NVML names resolve to
exactly one SKU, and published figures spot-check (each test cites what it checks against)."""

from __future__ import annotations

import csv
import re

import pytest
from pydantic import ValidationError

from servewise.perfdata.gpus import (
    GpuSpec, all_gpus, get_gpu, gpu_for_aiconfigurator_system, gpus_for_nvml,
)

GIB = 1024**3
MIB = 1024**2

REQUIRED_IDS = {
    "a100-sxm-80gb", "a100-sxm-40gb", "a100-pcie-40gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie", "h100-nvl",
    "h200-sxm", "h200-nvl", "h20", "gh200", "b200", "b300", "gb200", "gb300", "l4", "l40", "l40s", "a10", "a10g",
    "a30", "a40", "t4", "rtx-a6000", "rtx-6000-ada", "rtx-pro-6000", "rtx-pro-6000-server", "rtx-3090",
    "rtx-4090", "rtx-5090",
}

# Device names as nvmlDeviceGetName returns them, seen in public logs (cited in each SKU's
# `sources.nvml_names`), with the SKU each must resolve to.
REAL_NVML_NAMES = {
    "NVIDIA A100-SXM4-80GB": "a100-sxm-80gb",
    "NVIDIA A100-SXM4-40GB": "a100-sxm-40gb",
    "NVIDIA A100-PCIE-40GB": "a100-pcie-40gb",
    "NVIDIA A100 80GB PCIe": "a100-pcie-80gb",
    "NVIDIA H100 80GB HBM3": "h100-sxm",
    "NVIDIA H100 PCIe": "h100-pcie",
    "NVIDIA H100 NVL": "h100-nvl",
    "NVIDIA H200": "h200-sxm",
    "NVIDIA H200 NVL": "h200-nvl",
    "NVIDIA H20": "h20",
    "NVIDIA GH200 480GB": "gh200",
    "NVIDIA GH200 120GB": "gh200",
    "NVIDIA B200": "b200",
    "NVIDIA B300 SXM6 AC": "b300",
    "NVIDIA GB200": "gb200",
    "NVIDIA GB300": "gb300",
    "NVIDIA L4": "l4",
    "NVIDIA L40": "l40",
    "NVIDIA L40S": "l40s",
    "NVIDIA A10": "a10",
    "NVIDIA A10G": "a10g",
    "NVIDIA A30": "a30",
    "NVIDIA A40": "a40",
    "Tesla T4": "t4",
    "NVIDIA RTX A6000": "rtx-a6000",
    "NVIDIA RTX 6000 Ada Generation": "rtx-6000-ada",
    "NVIDIA RTX PRO 6000 Blackwell Workstation Edition": "rtx-pro-6000",
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": "rtx-pro-6000-server",
    "NVIDIA GeForce RTX 3090": "rtx-3090",
    "GeForce RTX 3090": "rtx-3090",
    "NVIDIA GeForce RTX 4090": "rtx-4090",
    "NVIDIA GeForce RTX 5090": "rtx-5090",
}

# Real devices that are *not* catalog SKUs: they must match nothing, so detection treats them as
# custom GPUs instead of silently planning with the wrong figures.
NOT_IN_CATALOG = [
    ("NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", None),
    ("NVIDIA GeForce RTX 4090 D", None),
    ("NVIDIA GeForce RTX 3090 Ti", None),
    ("NVIDIA H800", None),
    ("NVIDIA GH200 144G HBM3e", None),
    ("Tesla V100-SXM2-32GB", None),
    ("NVIDIA GeForce RTX 4090", 49140 * MIB),   # 48 GB modified boards (tinygrad/open-gpu-kernel-modules#36)
]


def test_catalog_holds_every_required_sku():
    assert REQUIRED_IDS <= set(all_gpus())
    assert len(all_gpus()) >= 25


@pytest.mark.parametrize("gpu", list(all_gpus().values()), ids=lambda g: g.id)
def test_every_figure_has_a_source(gpu: GpuSpec):
    """The validator enforces this on load; check it independently from the dumped data."""
    doc = gpu.model_dump()
    for field in ("memory_gb", "memory_bytes", "memory_bandwidth_bytes_per_s", "compute_capability",
                  "interconnect", "scale_up_domain_gpus", "host_link", "gpus_per_node", "tdp_w", "nvml_names"):
        assert field in gpu.sources, field
        assert len(gpu.sources[field]) > 10
    for dtype in gpu.flops:
        assert f"flops.{dtype}" in gpu.sources or "flops" in gpu.sources
    for field in ("nvml_memory_bytes", "inter_node", "nvml_memory_range_bytes"):
        if doc[field] is not None:
            assert field in gpu.sources, field


def test_missing_source_is_refused():
    doc = get_gpu("h100-sxm").model_dump()
    del doc["sources"]["memory_bandwidth_bytes_per_s"]
    with pytest.raises(ValidationError, match="no source for memory_bandwidth_bytes_per_s"):
        GpuSpec.model_validate(doc)


def test_stray_source_key_is_refused():
    doc = get_gpu("l4").model_dump()
    doc["sources"]["flops.fp4"] = "L4 has no FP4"
    with pytest.raises(ValidationError, match="unknown figure"):
        GpuSpec.model_validate(doc)


def test_cuda_total_above_nvml_total_is_refused():
    doc = get_gpu("h100-sxm").model_dump()
    doc["memory_bytes"] = doc["nvml_memory_bytes"] + 1
    with pytest.raises(ValidationError, match="exceeds nvml_memory_bytes"):
        GpuSpec.model_validate(doc)


@pytest.mark.parametrize("gpu", list(all_gpus().values()), ids=lambda g: g.id)
def test_memory_figures_are_plausible(gpu: GpuSpec):
    """CUDA sees 90-100 % of the marketed capacity (read as GiB); NVML's total is at most 3 % above
    CUDA's (the driver reserve)."""
    ratio = gpu.memory_bytes / (gpu.memory_gb * GIB)
    assert 0.90 <= ratio <= 1.0, ratio
    if gpu.nvml_memory_bytes is not None:
        assert 1.0 <= gpu.nvml_memory_bytes / gpu.memory_bytes <= 1.03


@pytest.mark.parametrize("gpu", list(all_gpus().values()), ids=lambda g: g.id)
def test_links_and_domains_are_consistent(gpu: GpuSpec):
    if gpu.interconnect.kind == "pcie":
        assert gpu.scale_up_domain_gpus == gpu.gpus_per_node
        assert gpu.interconnect == gpu.host_link
    else:
        assert gpu.interconnect.kind == "nvlink" and gpu.interconnect.generation in (3, 4, 5)
    assert gpu.interconnect.bandwidth_bytes_per_s >= gpu.host_link.bandwidth_bytes_per_s or gpu.host_link.kind != "pcie"


@pytest.mark.parametrize("name, sku", sorted(REAL_NVML_NAMES.items()))
def test_real_nvml_names_resolve_to_exactly_one_sku(name, sku):
    gpu = get_gpu(sku)
    memory = gpu.nvml_memory_bytes or gpu.memory_bytes
    assert [g.id for g in gpus_for_nvml(name, memory)] == [sku]
    assert [g.id for g in gpus_for_nvml(name)] == [sku]


@pytest.mark.parametrize("gpu", list(all_gpus().values()), ids=lambda g: g.id)
def test_every_sku_is_reachable_from_a_real_name(gpu: GpuSpec):
    assert gpu.id in REAL_NVML_NAMES.values()
    for pattern in gpu.nvml_names:
        assert pattern.startswith("^") and pattern.endswith("$"), "anchor the pattern so L4 never matches L40"
        assert any(re.search(pattern, n, re.IGNORECASE) for n in REAL_NVML_NAMES), pattern


@pytest.mark.parametrize("name, memory", NOT_IN_CATALOG, ids=lambda x: str(x))
def test_other_devices_match_nothing(name, memory):
    assert gpus_for_nvml(name, memory) == []


def test_aiconfigurator_systems_of_the_calibration_data_resolve(shared_dir):
    """Every `system` of the measured sample maps to one catalog SKU."""
    with open(shared_dir / "calibration" / "aiconfigurator_silicon_sample.csv", newline="") as f:
        systems = {row["system"] for row in csv.DictReader(f)}
    assert systems == {"h100_sxm", "h200_sxm", "b200_sxm", "b300_sxm", "gb200", "gb300"}
    assert {gpu_for_aiconfigurator_system(s).id for s in systems} == {"h100-sxm", "h200-sxm", "b200", "b300",
                                                                      "gb200", "gb300"}


def test_h100_cuda_memory_matches_the_vllm_calibration_data(shared_dir):
    """vLLM v0.11 reports 79.18 GiB total on H100 80GB (../shared/calibration/vllm_memory_startup_h100.csv)."""
    with open(shared_dir / "calibration" / "vllm_memory_startup_h100.csv", newline="") as f:
        reported = {row["gpu_total_mem_reported"] for row in csv.DictReader(f)}
    assert reported == {"79.18 GiB"}
    assert f"{get_gpu('h100-sxm').memory_bytes / GIB:.2f} GiB" == "79.18 GiB"


def test_spot_check_hopper():
    """NVIDIA H100 whitepaper: H100 SXM5 BF16 989.4 dense TFLOPS, FP8 1,978.9; datasheet 3.35 TB/s,
    NVLink 900 GB/s bidirectional; H200 datasheet: 4.8 TB/s, 141 GB, same compute as H100 SXM."""
    h100, h200 = get_gpu("h100-sxm"), get_gpu("h200-sxm")
    assert h100.flops["bf16"] == pytest.approx(989.4e12)
    assert h100.flops["fp8"] == pytest.approx(1978.9e12)
    assert h100.memory_bandwidth_bytes_per_s == 3.35e12
    assert 2 * h100.interconnect.bandwidth_bytes_per_s == 900e9
    assert h200.flops == h100.flops and h200.memory_bandwidth_bytes_per_s == 4.8e12 and h200.memory_gb == 141
    assert not h100.fp4_supported


def test_spot_check_blackwell():
    """HGX B200 datasheet: 18 PFLOPS sparse FP4 per GPU (9 dense), 7.7 TB/s, NVLink 1.8 TB/s, 1,000 W;
    GB200 NVL72: 72 GPUs in one NVLink domain, 4 per compute tray, 10 PFLOPS dense FP4, 1,200 W."""
    b200, gb200, gb300 = get_gpu("b200"), get_gpu("gb200"), get_gpu("gb300")
    assert b200.flops["fp4"] == 9.0e15 and b200.memory_bandwidth_bytes_per_s == 7.7e12 and b200.tdp_w == 1000
    assert 2 * b200.interconnect.bandwidth_bytes_per_s == 1.8e12
    assert gb200.flops["fp4"] == 10.0e15 and gb200.tdp_w == 1200
    for g in (gb200, gb300):
        assert (g.gpus_per_node, g.scale_up_domain_gpus, g.host_link.kind) == (4, 72, "nvlink-c2c")
    assert gb300.compute_capability == "10.3" and b200.compute_capability == "10.0"


def test_spot_check_no_fp8_before_ada_and_no_bf16_on_turing():
    """A100 datasheet lists no FP8; T4 datasheet lists FP16 65 TFLOPS and INT8 130 TOPS only."""
    assert not get_gpu("a100-sxm-80gb").fp8_supported
    t4 = get_gpu("t4")
    assert set(t4.flops) == {"fp16", "int8"} and t4.flops["fp16"] == 65e12
    assert t4.peak_flops("bf16") == 65e12          # bf16 checkpoints run as fp16 there
    assert get_gpu("a100-sxm-80gb").peak_flops("fp8") == 312e12   # weight-only fp8 runs 16-bit math


def test_spot_check_ada_and_consumer():
    """L40S datasheet: FP8 733 dense TFLOPS, 864 GB/s, 350 W; Ada whitepaper: RTX 4090 BF16 with FP32
    accumulate 165.2 dense TFLOPS, 1,008 GB/s; L4 datasheet: 300 GB/s, 72 W."""
    assert get_gpu("l40s").flops["fp8"] == 733e12 and get_gpu("l40s").memory_bandwidth_bytes_per_s == 864e9
    assert get_gpu("rtx-4090").flops["bf16"] == pytest.approx(165.2e12)
    assert get_gpu("rtx-4090").memory_bandwidth_bytes_per_s == 1.008e12
    assert get_gpu("l4").memory_bandwidth_bytes_per_s == 300e9 and get_gpu("l4").tdp_w == 72


def test_spot_check_ampere_memory():
    """A100 datasheet: 2,039 GB/s (80GB SXM), 1,555 GB/s (40GB), 1,935 GB/s (80GB PCIe)."""
    assert get_gpu("a100-sxm-80gb").memory_bandwidth_bytes_per_s == 2.039e12
    assert get_gpu("a100-sxm-40gb").memory_bandwidth_bytes_per_s == 1.555e12
    assert get_gpu("a100-pcie-80gb").memory_bandwidth_bytes_per_s == 1.935e12


def test_memory_range_tells_4090_from_a_48gb_board():
    gpu = get_gpu("rtx-4090")
    assert gpu.matches_nvml("NVIDIA GeForce RTX 4090", 24564 * MIB)
    assert not gpu.matches_nvml("NVIDIA GeForce RTX 4090", 49140 * MIB)


def test_unknown_aiconfigurator_system_suggests():
    with pytest.raises(Exception, match="h100_sxm"):
        gpu_for_aiconfigurator_system("h100_sx")
