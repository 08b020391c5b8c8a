"""Local GPUs for the hardware step, through ``servewise.profiles.detect`` when this build has it.

The wizard only needs, per group of identical GPUs, the ``Hardware`` to plan with and the memory
free on them; both come from the detection module's ``hardware_from_detection``. Tests pass their
own ``Detector`` so no test ever touches NVML. Nothing here imports Textual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from servewise.perfdata.errors import ServewiseError
from servewise.profiles.schema import Hardware


@dataclass(frozen=True)
class DetectedGroup:
    hardware: Hardware            # total memory, as detection maps it
    free_memory_bytes: int | None  # per GPU, the least free of the group


@dataclass(frozen=True)
class Detected:
    groups: tuple[DetectedGroup, ...] = field(default_factory=tuple)
    driver_version: str | None = None
    error: str | None = None       # why nothing was detected, in words a user understands

    @property
    def found(self) -> bool:
        return bool(self.groups)


Detector = Callable[[], Detected]


def not_asked() -> Detected:
    return Detected(error="GPU detection was switched off (--no-detect)")


def detect_local() -> Detected:
    """Ask NVML (through the detection module) for the local GPUs; never raises."""
    try:
        from servewise.profiles import detect as detection  # type: ignore[attr-defined]
    except ImportError:
        return Detected(error="GPU detection is not available in this build")
    try:
        det = detection.detect()
        if getattr(det, "error", None) and not getattr(det, "gpus", None):
            return Detected(error=str(det.error))
        groups = []
        for i, _ in enumerate(getattr(det, "groups", None) or [None]):
            total = detection.hardware_from_detection(det, group=i)
            free = detection.hardware_from_detection(det, group=i, use_free_memory=True)
            groups.append(DetectedGroup(total, free.memory_bytes))
        return Detected(tuple(groups), getattr(det, "driver_version", None))
    except ServewiseError as e:
        return Detected(error=str(e))
    except Exception as e:  # noqa: BLE001 - detection must never take the wizard down
        return Detected(error=f"GPU detection failed: {type(e).__name__}: {e}")
