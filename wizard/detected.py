"""Local GPUs for the hardware step, through ``servewise.profiles.detect`` when this build has it.

The wizard needs, per group of identical GPUs, the ``Hardware`` to plan with (the detection
module's ``hardware_from_detection``), what NVML calls them and the memory free on them. Tests pass their
own ``Detector`` so no test ever touches NVML. Nothing here imports Textual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from servewise.perfdata.errors import ServewiseError
from servewise.profiles.schema import Hardware


@dataclass(frozen=True)
class DetectedGroup:
    hardware: Hardware             # total memory, as detection maps it
    free_memory_bytes: int | None  # per GPU, the least free of the group
    name: str = ""                 # what NVML calls these GPUs
    memory_bytes: int | None = None  # per GPU, the CUDA-visible memory (as `servewise detect` shows it)


@dataclass(frozen=True)
class Detected:
    groups: tuple[DetectedGroup, ...] = field(default_factory=tuple)
    driver_version: str | None = None
    error: str | None = None       # why nothing was detected, in words a user understands
    warnings: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.groups)


Detector = Callable[[], Detected]


def not_asked() -> Detected:
    return Detected(error="GPU detection was switched off (--no-detect)")


def detect_local(nvml: Any = None) -> Detected:
    """Ask NVML (through ``servewise.profiles.detect``) for the local GPUs; never raises.

    ``nvml`` is the ``pynvml`` module or a stand-in with its API (tests pass a fake one)."""
    try:
        from servewise.profiles import detect as detection
    except ImportError:
        return Detected(error="GPU detection is not available in this build")
    try:
        det = detection.detect(nvml)
        if det.source == "none" or not det.groups:
            return Detected(error=det.error or "no usable GPU found", warnings=tuple(det.warnings))
        groups = tuple(DetectedGroup(detection.hardware_from_detection(det, group=i), g.free_memory_bytes, g.name,
                                     g.memory_bytes) for i, g in enumerate(det.groups))
        return Detected(groups, det.driver_version, warnings=tuple(det.warnings))
    except ServewiseError as e:
        return Detected(error=str(e))
    except Exception as e:  # noqa: BLE001 - detection must never take the wizard down
        return Detected(error=f"GPU detection failed: {type(e).__name__}: {e}")
