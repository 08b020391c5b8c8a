"""Local GPU detection through NVML (the official ``nvidia-ml-py`` bindings, imported lazily here only).

``detect()`` never raises for a missing library, driver or GPU: the returned ``Detection`` says why
in ``error``. NVML is shut down whenever ``nvmlInit`` succeeded, and only then (shutting down after a
failed init raises and would hide the real error). A field a GPU does not support becomes ``None``;
a lost GPU is reported with its error and does not hide the others. Mapping to the catalog, groups
and the profile's ``Hardware`` live in ``profiles.detected_hardware``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from servewise.profiles.schema import Hardware

# nvmlNvlinkVersion_t -> NVLink generation (NVML_NVLINK_VERSION_3_1 = 5 is still NVLink 3, ...).
NVLINK_GENERATION = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 5, 8: 6}
# nvmlGpuTopologyLevel_t -> the closest common ancestor of two GPUs, in words.
TOPOLOGY_LEVELS = {0: "same-board", 10: "pcie-switch", 20: "pcie-switches", 30: "host-bridge",
                   40: "cpu-socket", 50: "cross-socket"}
# What a driver may plausibly report; anything outside is treated as not reported. NVML names fit
# NVML_DEVICE_NAME_V2_BUFFER_SIZE (96 bytes); no machine has thousands of GPUs or a petabyte on one.
MAX_TEXT = 96
MAX_DEVICES = 1024
MAX_MEMORY_BYTES = 10**14


@dataclass(frozen=True)
class DetectedGpu:
    """One plannable device (a whole GPU, or a MIG instance) and what NVML said about it."""

    index: int                                 # NVML index (of the parent GPU for a MIG instance)
    name: str | None
    uuid: str | None = None
    pci_bus_id: str | None = None
    memory_total_bytes: int | None = None      # NVML total (what nvidia-smi prints)
    memory_reserved_bytes: int | None = None   # driver reserve (v2 memory info), not usable by CUDA
    memory_free_bytes: int | None = None
    memory_used_bytes: int | None = None
    compute_capability: str | None = None
    power_limit_w: float | None = None
    mig_enabled: bool | None = None
    mig_instance: str | None = None            # "MIG 3g.20gb" profile of an instance; None for a whole GPU
    mig_slot: int | None = None                # the instance's MIG device index on its parent
    mig_parent_uuid: str | None = None
    processes: int | None = None               # compute processes holding memory
    processes_memory_bytes: int | None = None
    nvlink_active_links: int | None = None
    nvlink_generation: int | None = None
    catalog_id: str | None = None              # the matched SKU; None = not in the catalog
    nearest_id: str | None = None              # for a GPU not in the catalog: the SKU whose figures stand in
    error: str | None = None                   # a lost GPU: why it is left out

    @property
    def key(self) -> str:
        return f"{self.index}" if self.mig_slot is None else f"{self.index}/{self.mig_slot}"

    @property
    def usable(self) -> bool:
        """Plannable: not lost, and not a whole GPU split into MIG instances."""
        return self.error is None and self.name is not None and not (self.mig_enabled and not self.mig_instance)


@dataclass(frozen=True)
class PeerLink:
    """How two whole GPUs reach each other."""

    a: int
    b: int
    nvlink: bool | None                        # NVLink P2P (direct or through NVSwitch)
    nvlink_links: int | None                   # links between them ("NV18" in nvidia-smi topo)
    p2p_read: bool | None                      # CUDA peer reads possible
    common_ancestor: str | None                # same-board | pcie-switch | ... | cross-socket


@dataclass(frozen=True)
class GpuGroup:
    """Identical plannable devices; planning uses one group at a time."""

    sku: str                                   # catalog id, or the custom id of an unknown GPU
    name: str
    devices: list[str]                         # DetectedGpu.key of each member
    count: int
    mig: bool
    interconnect: Literal["nvlink", "pcie"] | None
    memory_bytes: int                          # CUDA-visible per device
    free_memory_bytes: int | None              # the smallest free memory among the members
    known: bool                                # in the catalog


@dataclass(frozen=True)
class Detection:
    source: Literal["nvml", "none"]
    gpus: list[DetectedGpu] = field(default_factory=list)
    groups: list[GpuGroup] = field(default_factory=list)
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    error: str | None = None
    links: list[PeerLink] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``detect --json`` document; a failed detection is ``{"source": "none", "gpus": [], "error": ...}``."""
        if self.source == "none":
            return {"source": "none", "gpus": [], "error": self.error}
        return asdict(self)


def failed(reason: str) -> Detection:
    return Detection(source="none", error=reason)


def _import_nvml() -> Any:
    import pynvml  # the official nvidia-ml-py bindings; only this module imports them

    return pynvml


def detect(nvml: Any = None) -> Detection:
    """Query every GPU through NVML (``nvml``: the ``pynvml`` module, or a stand-in with its API)."""
    if nvml is None:
        try:
            nvml = _import_nvml()
        except ImportError:
            return failed("the nvidia-ml-py package is not installed (pip install nvidia-ml-py)")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        return failed(explain_init_error(nvml, e))
    try:
        return _query(_Nvml(nvml))
    except (nvml.NVMLError, _GpuLost) as e:
        return failed(f"NVML query failed: {_text(str(e), 300)}")
    except Exception as e:  # noqa: BLE001 - a driver or binding answering nonsense: detection fails, not servewise
        return failed(f"NVML query failed ({type(e).__name__}: {_text(str(e), 300)})")
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def explain_init_error(nvml: Any, e: Exception) -> str:
    """``nvmlInit`` failures in words a user acts on."""
    code = getattr(e, "value", None)
    if code == nvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return ("no NVIDIA driver found: libnvidia-ml.so.1 could not be loaded (no NVIDIA GPU or driver on this "
                "machine, or a container started without GPU access, e.g. without --gpus all)")
    if code == nvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return "the NVIDIA kernel driver is not loaded (check `nvidia-smi`; reboot after installing a driver)"
    if code == nvml.NVML_ERROR_NO_PERMISSION:
        return "no permission to query the NVIDIA driver (run as a user who may open /dev/nvidia*)"
    if code == nvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return "the NVML library and the loaded NVIDIA driver differ in version (reboot after a driver update)"
    return f"NVML could not start: {e}"


class _GpuLost(Exception):
    pass


class _Nvml:
    """NVML calls where an unsupported field is ``None`` and a lost GPU raises ``_GpuLost``."""

    def __init__(self, nvml: Any) -> None:
        self.m = nvml

    def req(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.m, fn)(*args)
        except self.m.NVMLError as e:
            if getattr(e, "value", None) == self.m.NVML_ERROR_GPU_IS_LOST:
                raise _GpuLost(str(e)) from None
            raise

    def opt(self, fn: str, *args: Any) -> Any:
        if not hasattr(self.m, fn):
            return None
        try:
            return self.req(fn, *args)
        except self.m.NVMLError:
            return None


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A string from the driver, safe to print and to store: control and format characters (escape
    sequences, bidi overrides) removed, whitespace collapsed, at most ``limit`` characters."""
    if value is None:
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
                   or c.isspace())
    return " ".join(text.split())[:limit]


def _size(value: Any, *, positive: bool = False) -> int | None:
    """A byte count from the driver, or None when it is not a plausible one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if (0 < value if positive else 0 <= value) and value <= MAX_MEMORY_BYTES else None


def _query(q: _Nvml) -> Detection:
    count = q.req("nvmlDeviceGetCount")
    driver = _text(q.opt("nvmlSystemGetDriverVersion"), 50)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_DEVICES:
        return failed(f"the NVIDIA driver reports an impossible GPU count ({_text(repr(count), 40)})")
    cuda = q.opt("nvmlSystemGetCudaDriverVersion")
    cuda_text = f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) and cuda > 0 else None
    if count == 0:
        return failed(f"the NVIDIA driver{f' {driver}' if driver else ''} is loaded but reports no GPU")
    gpus: list[DetectedGpu] = []
    whole_gpus: dict[int, tuple[Any, DetectedGpu, list[str] | None]] = {}
    for i in range(count):
        try:
            handle = q.req("nvmlDeviceGetHandleByIndex", i)
            ends, generation = _nvlink_ends(q, handle)
            whole = _device(q, i, handle, ends, generation)
            whole_gpus[i] = (handle, whole, ends)
            gpus.append(whole)
            if whole.mig_enabled:
                gpus += _mig_instances(q, i, handle, whole)
        except _GpuLost as e:
            gpus.append(DetectedGpu(index=i, name=None, error=f"GPU {i} is lost ({e}); it is left out"))
        except q.m.NVMLError as e:
            gpus.append(DetectedGpu(index=i, name=None,
                                    error=f"GPU {i} could not be queried ({_text(str(e))}); it is left out"))
        except Exception as e:  # noqa: BLE001 - one device answering nonsense does not hide the others
            gpus.append(DetectedGpu(index=i, name=None, error=f"GPU {i} could not be queried "
                                    f"({type(e).__name__}: {_text(str(e))}); it is left out"))
    links = _links(q, whole_gpus)
    from servewise.profiles.detected_hardware import finish

    return finish(Detection(source="nvml", gpus=gpus, driver_version=driver, cuda_driver_version=cuda_text,
                            links=links))


def _memory(q: _Nvml, handle: Any) -> dict[str, int | None]:
    version = getattr(q.m, "nvmlMemory_v2", None)
    mem = q.opt("nvmlDeviceGetMemoryInfo", handle, version) if version else None
    reserved = getattr(mem, "reserved", None) if mem is not None else None
    if mem is None:
        mem = q.opt("nvmlDeviceGetMemoryInfo", handle)
    if mem is None:
        return {}
    return {"memory_total_bytes": _size(getattr(mem, "total", None), positive=True),
            "memory_reserved_bytes": _size(reserved), "memory_free_bytes": _size(getattr(mem, "free", None)),
            "memory_used_bytes": _size(getattr(mem, "used", None))}


def _processes(q: _Nvml, handle: Any) -> dict[str, int | None]:
    procs = q.opt("nvmlDeviceGetComputeRunningProcesses", handle)
    if procs is None:
        return {}
    used = [_size(getattr(p, "usedGpuMemory", None)) for p in procs]
    return {"processes": len(procs), "processes_memory_bytes": sum(u for u in used if u is not None)}


def _device(q: _Nvml, index: int, handle: Any, ends: list[str] | None, generation: int | None) -> DetectedGpu:
    cc = q.opt("nvmlDeviceGetCudaComputeCapability", handle)
    power_mw = q.opt("nvmlDeviceGetPowerManagementLimit", handle)
    mig = q.opt("nvmlDeviceGetMigMode", handle)
    pci = q.opt("nvmlDeviceGetPciInfo", handle)
    return DetectedGpu(
        index=index, name=_text(q.req("nvmlDeviceGetName", handle)), uuid=_text(q.opt("nvmlDeviceGetUUID", handle)),
        pci_bus_id=_text(getattr(pci, "busId", None)), **_memory(q, handle),
        compute_capability=_compute_capability(cc),
        power_limit_w=power_mw / 1000.0 if isinstance(power_mw, int) and 0 < power_mw < 10**8 else None,
        mig_enabled=None if mig is None else mig[0] == getattr(q.m, "NVML_DEVICE_MIG_ENABLE", 1),
        **_processes(q, handle), nvlink_active_links=None if ends is None else len(ends),
        nvlink_generation=generation)


def _compute_capability(cc: Any) -> str | None:
    """``(9, 0)`` -> ``"9.0"``; None for anything that is not a pair of small whole numbers."""
    if isinstance(cc, tuple | list) and len(cc) == 2 and all(isinstance(v, int) and 0 <= v < 100 for v in cc):
        return f"{cc[0]}.{cc[1]}"
    return None


def _mig_instances(q: _Nvml, index: int, handle: Any, parent: DetectedGpu) -> list[DetectedGpu]:
    out = []
    for slot in range(q.opt("nvmlDeviceGetMaxMigDeviceCount", handle) or 0):
        mig = q.opt("nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
        if mig is None:
            continue                           # an empty slot (NVML_ERROR_NOT_FOUND)
        name = _text(q.opt("nvmlDeviceGetName", mig)) or parent.name or ""
        profile = name[name.find("MIG "):] if "MIG " in name else f"MIG slot {slot}"
        out.append(DetectedGpu(
            index=index, name=name, uuid=_text(q.opt("nvmlDeviceGetUUID", mig)), pci_bus_id=parent.pci_bus_id,
            **_memory(q, mig), compute_capability=parent.compute_capability, mig_enabled=True,
            mig_instance=profile, mig_slot=slot, mig_parent_uuid=parent.uuid))
    return out


SWITCH = "nvswitch"


def _nvlink_ends(q: _Nvml, handle: Any) -> tuple[list[str] | None, int | None]:
    """The far end of every active NVLink link (a peer's PCI bus id, or ``SWITCH``) and the links'
    generation; ``(None, None)`` where the GPU has no NVLink."""
    ends: list[str] = []
    versions = set()
    enabled = getattr(q.m, "NVML_FEATURE_ENABLED", 1)
    switch = getattr(q.m, "NVML_NVLINK_DEVICE_TYPE_SWITCH", 2)
    for link in range(getattr(q.m, "NVML_NVLINK_MAX_LINKS", 18)):
        try:
            state = q.req("nvmlDeviceGetNvLinkState", handle, link)
        except q.m.NVMLError:
            if link == 0:
                return None, None              # no NVLink on this GPU
            break                              # past the GPU's last link
        if state != enabled:
            continue
        if q.opt("nvmlDeviceGetNvLinkRemoteDeviceType", handle, link) == switch:
            ends.append(SWITCH)
        else:
            ends.append((_text(getattr(q.opt("nvmlDeviceGetNvLinkRemotePciInfo", handle, link), "busId", None))
                         or "?").lower())
        version = q.opt("nvmlDeviceGetNvLinkVersion", handle, link)
        if version in NVLINK_GENERATION:
            versions.add(NVLINK_GENERATION[version])
    return ends, max(versions) if versions else None


def _links(q: _Nvml, gpus: dict[int, tuple[Any, DetectedGpu, list[str] | None]]) -> list[PeerLink]:
    out = []
    ids = sorted(gpus)
    ok = getattr(q.m, "NVML_P2P_STATUS_OK", 0)
    for n, a in enumerate(ids):
        for b in ids[n + 1:]:
            (ha, _, ends), (hb, gb, _) = gpus[a], gpus[b]
            try:
                nvl = q.opt("nvmlDeviceGetP2PStatus", ha, hb, getattr(q.m, "NVML_P2P_CAPS_INDEX_NVLINK", 2))
                read = q.opt("nvmlDeviceGetP2PStatus", ha, hb, 0)   # NVML_P2P_CAPS_INDEX_READ (a tuple in pynvml)
                level = q.opt("nvmlDeviceGetTopologyCommonAncestor", ha, hb)
            except _GpuLost:
                continue
            peer = (gb.pci_bus_id or "").lower()
            direct = len([e for e in ends or [] if e == SWITCH or (peer and e == peer)])
            out.append(PeerLink(a=a, b=b, nvlink=None if nvl is None else nvl == ok, nvlink_links=direct or None,
                                p2p_read=None if read is None else read == ok,
                                common_ancestor=TOPOLOGY_LEVELS.get(level) if level is not None else None))
    return out


def hardware_from_detection(det: Detection, group: int = 0, use_free_memory: bool = False,
                            gpus: int | None = None) -> Hardware:
    """The profile's ``Hardware`` for one group of a detection (see ``profiles.detected_hardware``)."""
    from servewise.profiles.detected_hardware import hardware_for_group

    return hardware_for_group(det, group, use_free_memory=use_free_memory, gpus=gpus)
