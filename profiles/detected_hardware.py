"""From what NVML reported to what servewise plans with: catalog SKUs, groups, the profile's Hardware.

A GPU maps to a catalog SKU through the SKU's ``nvml_names`` (and ``nvml_memory_range_bytes`` where
the name is ambiguous). A GPU that matches nothing becomes a ``CustomGpu`` with NVML's memory and
compute capability and the performance figures of the nearest SKU, with a warning. Identical devices
form a group; a mixed box has several groups and a plan uses one of them.
"""

from __future__ import annotations

import re
from dataclasses import replace

from servewise.perfdata import GpuSpec, all_gpus, get_gpu
from servewise.perfdata.errors import DeviceError, UsageError
from servewise.perfdata.gpus import gpus_for_nvml
from servewise.profiles.detect import Detection, DetectedGpu, GpuGroup
from servewise.profiles.schema import CustomGpu, Fingerprint, Hardware

GIB = 1024**3


def finish(det: Detection) -> Detection:
    """Map every device to the catalog, then group them and collect the warnings."""
    warnings = [g.error for g in det.gpus if g.error]
    gpus = []
    for g in det.gpus:
        if g.error or g.name is None:
            gpus.append(g)
            continue
        g = map_to_catalog(g)
        gpus.append(g)
        warnings += device_warnings(g)
    det = replace(det, gpus=gpus)
    groups = build_groups(det)
    for grp in groups:
        sku = next(g for g in det.gpus if g.usable and g.key == grp.devices[0])
        spec = get_gpu(sku.catalog_id or sku.nearest_id or "")
        if grp.interconnect == "nvlink" and not spec.has_nvlink:
            warnings.append(f"NVLink bridges join the {grp.count} x {grp.sku}; planning models {spec.id} as the "
                            f"catalog does, over PCIe (conservative)")
    if len(groups) > 1:
        listing = "; ".join(f"{i}: {grp.count} x {grp.sku}" for i, grp in enumerate(groups))
        warnings.append(f"the devices form {len(groups)} groups ({listing}); a plan uses one group "
                        f"(--detect-group N, default 0)")
    if not groups:
        return Detection(source="none", error="no usable GPU: " + ("; ".join(warnings) or "none reported"))
    return replace(det, groups=groups, warnings=list(dict.fromkeys(warnings)))


def map_to_catalog(g: DetectedGpu) -> DetectedGpu:
    """Set ``catalog_id`` (a whole GPU named in the catalog) or ``nearest_id`` (anything else)."""
    if g.mig_instance is None:
        found = gpus_for_nvml(g.name or "", g.memory_total_bytes)
        if len(found) == 1:
            return replace(g, catalog_id=found[0].id)
    base = g.name.split(" MIG ")[0] if g.mig_instance and g.name else g.name
    parent = gpus_for_nvml(base or "")
    nearest = parent[0] if len(parent) == 1 else nearest_sku(g.compute_capability, g.memory_total_bytes)
    return replace(g, nearest_id=nearest.id if nearest else None)


def nearest_sku(compute_capability: str | None, memory_bytes: int | None) -> GpuSpec | None:
    """The catalog SKU most like an unknown GPU: same compute capability first, then same major
    version, then the closest memory size (ties: the newer part)."""
    def score(s: GpuSpec) -> tuple:
        same = compute_capability == s.compute_capability
        major = compute_capability is not None and \
            compute_capability.split(".")[0] == s.compute_capability.split(".")[0]
        mem = abs((s.nvml_memory_bytes or s.memory_bytes) - memory_bytes) if memory_bytes else 0
        return (not same, not major, mem, -float(s.compute_capability))
    specs = list(all_gpus().values())
    return min(specs, key=score) if specs else None


def cuda_memory_bytes(g: DetectedGpu) -> int:
    """CUDA-visible memory of a device: the catalog's measured figure for a known SKU; otherwise
    NVML's total less the driver reserve (v2 memory info), or the total when the reserve is unknown."""
    if g.catalog_id:
        return get_gpu(g.catalog_id).memory_bytes
    total = g.memory_total_bytes or 0
    return total - (g.memory_reserved_bytes or 0)


FREE_MEMORY_HINT = "(plan on what is left with --use-free-memory)"


def device_warnings(g: DetectedGpu) -> list[str]:
    out = []
    if g.catalog_id is None:
        what = f"{g.name} (a MIG instance)" if g.mig_instance else g.name
        out.append(f"{what} is not in the catalog: planning uses its memory "
                   f"({cuda_memory_bytes(g) / GIB:.1f} GiB) and compute capability from NVML and the performance "
                   f"figures of the nearest known GPU, {g.nearest_id}; performance estimates are rough")
    else:
        spec = get_gpu(g.catalog_id)
        if spec.nvml_memory_bytes and g.memory_total_bytes and \
                abs(g.memory_total_bytes - spec.nvml_memory_bytes) > 0.03 * spec.nvml_memory_bytes:
            out.append(f"GPU {g.index} reports {g.memory_total_bytes / GIB:.1f} GiB where {spec.id} has "
                       f"{spec.nvml_memory_bytes / GIB:.1f} GiB; planning uses the catalog figure")
    if g.processes and g.processes_memory_bytes:
        out.append(f"GPU {g.index}{' ' + g.mig_instance if g.mig_instance else ''}: {g.processes} process(es) "
                   f"already hold {g.processes_memory_bytes / GIB:.1f} GiB {FREE_MEMORY_HINT}")
    return out


def _group_key(g: DetectedGpu) -> tuple:
    return (g.catalog_id or custom_id(g), g.mig_instance is not None)


def build_groups(det: Detection) -> list[GpuGroup]:
    """Identical usable devices, largest group first (then more memory per device first)."""
    by_key: dict[tuple, list[DetectedGpu]] = {}
    for g in det.gpus:
        if g.usable:
            by_key.setdefault(_group_key(g), []).append(g)
    groups = []
    for (sku, mig), members in by_key.items():
        frees = [m.memory_free_bytes for m in members if m.memory_free_bytes is not None]
        groups.append(GpuGroup(
            sku=sku, name=members[0].name or sku, devices=[m.key for m in members], count=len(members), mig=mig,
            interconnect=None if mig else group_interconnect(det, [m.index for m in members]),
            memory_bytes=min(cuda_memory_bytes(m) for m in members),
            free_memory_bytes=min(frees) if len(frees) == len(members) else None,
            known=members[0].catalog_id is not None))
    return sorted(groups, key=lambda grp: (-grp.count, -grp.memory_bytes, grp.sku))


def group_interconnect(det: Detection, indices: list[int]) -> str | None:
    """``nvlink`` when every pair of the group has NVLink P2P, ``pcie`` when none has; ``None`` (the
    catalog's own model, e.g. bridged pairs) when some do, or when NVML could not tell."""
    if len(indices) < 2:
        return None
    wanted = set(indices)
    pairs = [lk for lk in det.links if lk.a in wanted and lk.b in wanted]
    states = {lk.nvlink for lk in pairs}
    if len(pairs) != len(indices) * (len(indices) - 1) // 2 or None in states:
        return None
    if states == {True}:
        return "nvlink"
    return "pcie" if states == {False} else None


def custom_id(g: DetectedGpu) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (g.name or "gpu").lower()).strip("-") or "gpu"
    return f"custom-{slug}"[:60].rstrip("-")


def custom_gpu(g: DetectedGpu) -> CustomGpu:
    nearest = get_gpu(g.nearest_id) if g.nearest_id else None
    cc = g.compute_capability or (nearest.compute_capability if nearest else None)
    if nearest is None or cc is None:
        raise DeviceError(f"GPU {g.index} ({g.name}) is not in the catalog and nothing similar is known")
    name = re.sub(r"[\x00-\x1f\x7f]", "", g.name or custom_id(g))[:200]
    return CustomGpu(id=custom_id(g), name=name, memory_bytes=cuda_memory_bytes(g), compute_capability=cc,
                     nearest=nearest.id)


def fingerprint(det: Detection, members: list[DetectedGpu]) -> Fingerprint:
    return Fingerprint(names=[m.name or "" for m in members], count=len(members),
                       memory_bytes=[m.memory_total_bytes or 0 for m in members], driver_version=det.driver_version)


def hardware_for_group(det: Detection, group: int = 0, use_free_memory: bool = False,
                       gpus: int | None = None) -> Hardware:
    """``Hardware`` (source ``nvml``, with a fingerprint) for group ``group`` of a detection.

    MIG instances cannot be joined by tensor parallelism, so a MIG group is modelled as one device
    per node. ``gpus`` plans on the first N devices of the group.
    """
    if det.source != "nvml" or not det.groups:
        raise DeviceError(f"GPU detection failed: {det.error or 'no GPU found'}")
    if not 0 <= group < len(det.groups):
        raise UsageError(f"--detect-group {group}: this machine has {len(det.groups)} GPU group(s) "
                         f"(0..{len(det.groups) - 1}; see `servewise detect`)")
    grp = det.groups[group]
    count = grp.count if gpus is None else gpus
    if not 1 <= count <= grp.count:
        raise UsageError(f"--gpus {gpus}: group {group} has {grp.count} x {grp.sku}")
    members = [g for g in det.gpus if g.usable and g.key in grp.devices][:count]
    first = members[0]
    gpu: str | CustomGpu = first.catalog_id if first.catalog_id else custom_gpu(first)
    free = [m.memory_free_bytes for m in members]
    memory = None
    if use_free_memory:
        if None in free:
            raise DeviceError("--use-free-memory: NVML did not report free memory for every GPU of the group")
        memory = min(min(free), cuda_memory_bytes(first))
    per_node, nodes = (1, count) if grp.mig else (count, 1)
    interconnect = None if count < 2 else grp.interconnect
    spec = get_gpu(first.catalog_id or first.nearest_id or "")
    if interconnect == "nvlink" and not spec.has_nvlink:
        interconnect = None                    # bridged pairs of a PCIe card: the catalog models it as PCIe
    return Hardware(gpu=gpu, gpus_per_node=per_node, nodes=nodes, interconnect=interconnect, source="nvml",
                    fingerprint=fingerprint(det, members), memory_bytes=memory)


def with_counts(hw: Hardware, per_node: int, nodes: int) -> Hardware:
    """``hw`` with other GPU counts. Planning on fewer of the detected GPUs records only those in the
    fingerprint, as ``plan --detect --gpus N`` does, so a replay on a machine with just them does not warn."""
    doc = {**hw.model_dump(), "gpus_per_node": per_node, "nodes": nodes}
    fp = hw.fingerprint
    if fp is not None and per_node * nodes < fp.count:
        n = per_node * nodes
        doc["fingerprint"] = {**fp.model_dump(), "count": n, "names": fp.names[:n], "memory_bytes": fp.memory_bytes[:n]}
    return Hardware.model_validate(doc)


def fingerprint_difference(expected: Fingerprint, det: Detection) -> str | None:
    """Why this machine differs from the hardware a profile was detected on; ``None`` when it has the
    same devices (same names, NVML memory within 3 %), possibly among others."""
    if det.source != "nvml":
        return None
    seen = [(g.name or "", g.memory_total_bytes or 0) for g in det.gpus if g.usable]
    want = list(zip(expected.names, expected.memory_bytes))

    def same(a: tuple[str, int], b: tuple[str, int]) -> bool:
        return a[0] == b[0] and (not a[1] or not b[1] or abs(a[1] - b[1]) <= 0.03 * b[1])

    for start in range(len(seen) - len(want) + 1):
        if all(same(s, w) for s, w in zip(seen[start:start + len(want)], want)):
            return None
    names = [n for n, _ in seen]
    have = ", ".join(f"{names.count(n)} x {n}" for n in dict.fromkeys(names)) or "no usable GPU"
    wanted = ", ".join(f"{expected.names.count(n)} x {n}" for n in dict.fromkeys(expected.names))
    return f"the profile was planned on {wanted}; this machine has {have}"
