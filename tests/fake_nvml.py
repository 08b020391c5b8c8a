"""A stand-in for the ``pynvml`` module with named machine scenarios (in the manner of gpustat's tests).

Constants and error classes are the real ones from nvidia-ml-py, so detection code sees exactly the
exceptions and values the bindings produce; the functions answer from a scenario instead of a driver.
Memory figures follow public nvidia-smi / torch readings (see the GPU catalog's sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml as real

MIB = 1024**2
GIB = 1024**3


def err(code: int) -> real.NVMLError:
    return real.NVMLError(code)


@dataclass
class FakeDevice:
    name: str
    total_mib: int
    reserved_mib: int = 0
    used_mib: int = 0
    cc: tuple[int, int] | None = (9, 0)
    power_mw: int | None = 700_000
    uuid: str = ""
    bus_id: str = ""
    nvlinks: int = 0                            # active links
    nvlink_version: int = 6                     # nvmlNvlinkVersion_t (6 = NVLink 4.0)
    nvswitch: bool = True
    mig: list[FakeDevice] | None = None         # MIG instances when MIG mode is on
    processes: list[tuple[int, int]] = field(default_factory=list)   # (pid, used MiB)
    lost: bool = False
    unsupported: set[str] = field(default_factory=set)               # NVML functions answering NOT_SUPPORTED


class FakeNvml:
    """The subset of pynvml that servewise uses."""

    def __init__(self, devices: list[FakeDevice], *, init_error: int | None = None, driver: str = "570.124.06",
                 cuda: int = 12080, p2p_read: bool = True, topology: int = real.NVML_TOPOLOGY_NODE) -> None:
        for i, d in enumerate(devices):
            d.uuid = d.uuid or f"GPU-{i:08x}-0000-0000-0000-000000000000"
            d.bus_id = d.bus_id or f"00000000:{0x18 + 0x10 * i:02X}:00.0"
            for j, m in enumerate(d.mig or []):
                m.uuid = m.uuid or f"MIG-{i:04x}{j:04x}-0000-0000-0000-000000000000"
        self.devices, self.init_error, self.driver, self.cuda = devices, init_error, driver, cuda
        self.p2p_read, self.topology = p2p_read, topology
        self.initialized = False
        self.init_calls = self.shutdown_calls = 0

    def __getattr__(self, name: str):
        if name.startswith("NVML") or name == "nvmlMemory_v2":     # constants and error classes
            return getattr(real, name)
        raise AttributeError(name)

    # ---------------------------------------------------------------- library
    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise err(self.init_error)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1
        if not self.initialized:
            raise err(real.NVML_ERROR_UNINITIALIZED)
        self.initialized = False

    def _ready(self) -> None:
        if not self.initialized:
            raise err(real.NVML_ERROR_UNINITIALIZED)

    def nvmlSystemGetDriverVersion(self) -> str:
        self._ready()
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._ready()
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        self._ready()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeDevice:
        self._ready()
        return self.devices[i]

    # ---------------------------------------------------------------- per device
    def _dev(self, d: FakeDevice, fn: str) -> FakeDevice:
        self._ready()
        if d.lost:
            raise err(real.NVML_ERROR_GPU_IS_LOST)
        if fn in d.unsupported:
            raise err(real.NVML_ERROR_NOT_SUPPORTED)
        return d

    def nvmlDeviceGetName(self, d: FakeDevice) -> str:
        return self._dev(d, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, d: FakeDevice) -> str:
        return self._dev(d, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetPciInfo(self, d: FakeDevice):
        return SimpleNamespace(busId=self._dev(d, "nvmlDeviceGetPciInfo").bus_id)

    def nvmlDeviceGetMemoryInfo(self, d: FakeDevice, version=None):
        self._dev(d, "nvmlDeviceGetMemoryInfo")
        total, used = d.total_mib * MIB, d.used_mib * MIB
        if version is None:                                  # v1: used includes the reserve
            return SimpleNamespace(total=total, free=total - used - d.reserved_mib * MIB,
                                   used=used + d.reserved_mib * MIB)
        if "nvmlDeviceGetMemoryInfo_v2" in d.unsupported:
            raise err(real.NVML_ERROR_FUNCTION_NOT_FOUND)
        reserved = d.reserved_mib * MIB
        return SimpleNamespace(version=version, total=total, reserved=reserved, free=total - reserved - used,
                               used=used)

    def nvmlDeviceGetCudaComputeCapability(self, d: FakeDevice):
        self._dev(d, "nvmlDeviceGetCudaComputeCapability")
        if d.cc is None:
            raise err(real.NVML_ERROR_NOT_SUPPORTED)
        return d.cc

    def nvmlDeviceGetPowerManagementLimit(self, d: FakeDevice) -> int:
        self._dev(d, "nvmlDeviceGetPowerManagementLimit")
        if d.power_mw is None:
            raise err(real.NVML_ERROR_NOT_SUPPORTED)
        return d.power_mw

    def nvmlDeviceGetMigMode(self, d: FakeDevice):
        self._dev(d, "nvmlDeviceGetMigMode")
        on = real.NVML_DEVICE_MIG_ENABLE if d.mig is not None else real.NVML_DEVICE_MIG_DISABLE
        return [on, on]

    def nvmlDeviceGetMaxMigDeviceCount(self, d: FakeDevice) -> int:
        self._dev(d, "nvmlDeviceGetMaxMigDeviceCount")
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, d: FakeDevice, index: int) -> FakeDevice:
        self._dev(d, "nvmlDeviceGetMigDeviceHandleByIndex")
        if not d.mig or index >= len(d.mig):
            raise err(real.NVML_ERROR_NOT_FOUND)
        return d.mig[index]

    def nvmlDeviceGetComputeRunningProcesses(self, d: FakeDevice):
        self._dev(d, "nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=pid, usedGpuMemory=mib * MIB) for pid, mib in d.processes]

    def nvmlDeviceGetNvLinkState(self, d: FakeDevice, link: int) -> int:
        self._dev(d, "nvmlDeviceGetNvLinkState")
        if d.nvlinks == 0:
            raise err(real.NVML_ERROR_NOT_SUPPORTED)
        if link >= 18:
            raise err(real.NVML_ERROR_INVALID_ARGUMENT)
        return real.NVML_FEATURE_ENABLED if link < d.nvlinks else real.NVML_FEATURE_DISABLED

    def nvmlDeviceGetNvLinkVersion(self, d: FakeDevice, link: int) -> int:
        return self._dev(d, "nvmlDeviceGetNvLinkVersion").nvlink_version

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, d: FakeDevice, link: int) -> int:
        self._dev(d, "nvmlDeviceGetNvLinkRemoteDeviceType")
        return real.NVML_NVLINK_DEVICE_TYPE_SWITCH if d.nvswitch else real.NVML_NVLINK_DEVICE_TYPE_GPU

    def nvmlDeviceGetNvLinkRemotePciInfo(self, d: FakeDevice, link: int):
        self._dev(d, "nvmlDeviceGetNvLinkRemotePciInfo")
        peer = self._bridge_peer(d)
        return SimpleNamespace(busId=peer.bus_id if peer else "00000000:FF:00.0")

    def _bridge_peer(self, d: FakeDevice) -> FakeDevice | None:
        """Without NVSwitch, devices are bridged in pairs (0-1, 2-3, ...)."""
        i = self.devices.index(d)
        j = i ^ 1
        return self.devices[j] if j < len(self.devices) else None

    def nvmlDeviceGetP2PStatus(self, a: FakeDevice, b: FakeDevice, index) -> int:
        self._dev(a, "nvmlDeviceGetP2PStatus")
        self._dev(b, "nvmlDeviceGetP2PStatus")
        if index == real.NVML_P2P_CAPS_INDEX_NVLINK:
            linked = a.nvlinks and b.nvlinks and (a.nvswitch or self._bridge_peer(a) is b)
            return real.NVML_P2P_STATUS_OK if linked else real.NVML_P2P_STATUS_NOT_SUPPORTED
        return real.NVML_P2P_STATUS_OK if self.p2p_read else real.NVML_P2P_STATUS_GPU_NOT_SUPPORTED

    def nvmlDeviceGetTopologyCommonAncestor(self, a: FakeDevice, b: FakeDevice) -> int:
        self._dev(a, "nvmlDeviceGetTopologyCommonAncestor")
        return self.topology


# -------------------------------------------------------------------- scenarios
def h100_x8() -> FakeNvml:
    """An HGX H100 box: 8 x H100 SXM on NVSwitch, 18 NVLink 4 links each."""
    return FakeNvml([FakeDevice("NVIDIA H100 80GB HBM3", 81559, reserved_mib=477, nvlinks=18) for _ in range(8)])


def rtx4090_x2() -> FakeNvml:
    """A workstation with two RTX 4090 over PCIe (no NVLink, no P2P); a desktop session holds memory."""
    devs = [FakeDevice("NVIDIA GeForce RTX 4090", 24564, reserved_mib=347, cc=(8, 9), power_mw=450_000,
                       used_mib=1536, processes=[(4242, 1536)]) for _ in range(2)]
    devs[1].used_mib, devs[1].processes = 0, []
    return FakeNvml(devs, p2p_read=False, topology=real.NVML_TOPOLOGY_HOSTBRIDGE)


def a100_mig() -> FakeNvml:
    """An A100 40GB split into MIG instances 3g.20gb, 3g.20gb and 1g.5gb."""
    base = "NVIDIA A100-SXM4-40GB"
    inst = [FakeDevice(f"{base} MIG 3g.20gb", 19968), FakeDevice(f"{base} MIG 3g.20gb", 19968, used_mib=2048,
                                                                  processes=[(7, 2048)]),
            FakeDevice(f"{base} MIG 1g.5gb", 4864)]
    return FakeNvml([FakeDevice(base, 40960, reserved_mib=446, cc=(8, 0), power_mw=400_000, mig=inst)])


def mixed_l4_a10g() -> FakeNvml:
    """Two L4 and one A10G in one box."""
    l4 = [FakeDevice("NVIDIA L4", 23034, reserved_mib=516, cc=(8, 9), power_mw=72_000) for _ in range(2)]
    return FakeNvml(l4 + [FakeDevice("NVIDIA A10G", 23028, reserved_mib=441, cc=(8, 6), power_mw=300_000)],
                    topology=real.NVML_TOPOLOGY_HOSTBRIDGE)


def lost_gpu() -> FakeNvml:
    """Four H100, the third one fallen off the bus."""
    nvml = FakeNvml([FakeDevice("NVIDIA H100 80GB HBM3", 81559, reserved_mib=477, nvlinks=18) for _ in range(4)])
    nvml.devices[2].lost = True
    return nvml


def not_supported() -> FakeNvml:
    """An L4 whose driver answers NOT_SUPPORTED for every optional field."""
    fields = {"nvmlDeviceGetUUID", "nvmlDeviceGetPciInfo", "nvmlDeviceGetMemoryInfo_v2",
              "nvmlDeviceGetPowerManagementLimit", "nvmlDeviceGetMigMode", "nvmlDeviceGetComputeRunningProcesses",
              "nvmlDeviceGetCudaComputeCapability"}
    return FakeNvml([FakeDevice("NVIDIA L4", 23034, reserved_mib=516, unsupported=fields)])


def future_gpu() -> FakeNvml:
    """Eight GPUs of a generation the catalog does not know yet."""
    return FakeNvml([FakeDevice("NVIDIA B400", 300 * 1024, reserved_mib=1100, cc=(10, 3), power_mw=1_400_000,
                                nvlinks=18, nvlink_version=8) for _ in range(8)])


def no_driver(code: int = real.NVML_ERROR_LIBRARY_NOT_FOUND) -> FakeNvml:
    return FakeNvml([], init_error=code)


def no_gpu() -> FakeNvml:
    return FakeNvml([])


def h100_nvl_x4() -> FakeNvml:
    """Four H100 NVL bridged in pairs (0-1, 2-3): NVLink inside a pair, PCIe between pairs."""
    return FakeNvml([FakeDevice("NVIDIA H100 NVL", 95830, reserved_mib=510, power_mw=400_000, nvlinks=12,
                                nvswitch=False) for _ in range(4)], topology=real.NVML_TOPOLOGY_SYSTEM)


SCENARIOS = {
    "h100_x8": h100_x8, "rtx4090_x2": rtx4090_x2, "a100_mig": a100_mig, "mixed_l4_a10g": mixed_l4_a10g,
    "lost_gpu": lost_gpu, "not_supported": not_supported, "future_gpu": future_gpu, "no_driver": no_driver,
    "no_gpu": no_gpu, "h100_nvl_x4": h100_nvl_x4,
}
