"""``servewise detect``: the GPUs of this machine, through NVML, mapped to the catalog."""

from __future__ import annotations

import argparse

from typing import TYPE_CHECKING

from servewise.perfdata.errors import DeviceError
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import GIB, print_json, table

if TYPE_CHECKING:  # NVML detection is imported when the command runs, not when the CLI starts
    from servewise.profiles.detect import Detection, DetectedGpu

# nvidia-smi topo -m spellings for a pair without NVLink, by closest common ancestor.
_TOPO = {"same-board": "BRD", "pcie-switch": "PIX", "pcie-switches": "PXB", "host-bridge": "PHB",
         "cpu-socket": "NODE", "cross-socket": "SYS"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="the local GPUs, through NVML",
                       description="Detect the local NVIDIA GPUs through NVML (nvidia-ml-py), map them to the "
                                   "catalog and show how they connect. Exits 4 when detection is impossible.")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run)


def run(a: argparse.Namespace) -> int:
    from servewise.profiles.detect import detect

    det = detect()
    if a.json:
        print_json(det.to_json())
    if det.source == "none":
        raise DeviceError(f"GPU detection failed: {det.error}")
    if not a.json:
        print(format_detection(det))
    return ExitCode.OK


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f}"


def _row(g: DetectedGpu) -> list[str]:
    if g.error or g.name is None:
        return [str(g.index), "(lost)", "-", "-", "-", "-", "-", "-", "-", "-"]
    name = g.mig_instance if g.mig_instance else g.name
    sku = g.catalog_id or f"? ~{g.nearest_id}"
    if g.mig_enabled and not g.mig_instance:
        sku, memory = "(MIG on)", "-"
    else:
        from servewise.profiles.detected_hardware import cuda_memory_bytes

        memory = _gib(cuda_memory_bytes(g))
    in_use = "-" if g.processes is None else f"{g.processes} / {_gib(g.processes_memory_bytes)}"
    nvlink = "-" if not g.nvlink_active_links else f"{g.nvlink_active_links} x NV{g.nvlink_generation or '?'}"
    power = "-" if g.power_limit_w is None else f"{g.power_limit_w:.0f}"
    index = f"{g.index}m" if g.mig_instance else str(g.index)
    return [index, name, sku, memory, _gib(g.memory_free_bytes), in_use, g.compute_capability or "-",
            power, nvlink, "-" if g.mig_enabled is None else ("on" if g.mig_enabled else "off")]


def topology_matrix(det: Detection) -> str:
    """Pairwise links like ``nvidia-smi topo -m``: NV<links> over NVLink, else the PCIe path."""
    idx = sorted({g.index for g in det.gpus if g.error is None and not g.mig_instance})
    if len(idx) < 2:
        return ""
    cell: dict[tuple[int, int], str] = {}
    for lk in det.links:
        if lk.nvlink:
            text = f"NV{lk.nvlink_links}" if lk.nvlink_links else "NV"
        else:
            text = _TOPO.get(lk.common_ancestor or "", "?")
        cell[(lk.a, lk.b)] = cell[(lk.b, lk.a)] = text
    rows = [[f"GPU{a}"] + ["X" if a == b else cell.get((a, b), "?") for b in idx] for a in idx]
    return table([""] + [f"GPU{b}" for b in idx], rows, "l" + "r" * len(idx))


def format_detection(det: Detection) -> str:
    usable = [g for g in det.gpus if g.error is None and not g.mig_instance]
    head = (f"NVIDIA driver {det.driver_version or '?'} (CUDA {det.cuda_driver_version or '?'}): "
            f"{len(usable)} GPU(s)")
    rows = [_row(g) for g in det.gpus]
    parts = [head, table(["#", "name", "catalog", "GiB (CUDA)", "free GiB", "procs / GiB", "CC", "power W",
                          "NVLink", "MIG"], rows, "llllrrlrll")]
    topo = topology_matrix(det)
    if topo:
        parts += ["", "topology (NV# = NVLink links; PIX/PXB/PHB/NODE/SYS = PCIe path as in nvidia-smi topo -m)", topo]
    parts += ["", "groups (plan one with `servewise plan --detect [--detect-group N] ...`):"]
    for i, grp in enumerate(det.groups):
        link = f" over {grp.interconnect}" if grp.interconnect else ""
        free = f", {_gib(grp.free_memory_bytes)} GiB free" if grp.free_memory_bytes is not None else ""
        kind = " MIG instances" if grp.mig else ""
        parts.append(f"  {i}: {grp.count} x {grp.sku}{kind}{link} ({_gib(grp.memory_bytes)} GiB each{free})")
    if det.warnings:
        parts += ["", "warnings:"] + [f"  - {w}" for w in det.warnings]
    return "\n".join(parts)
