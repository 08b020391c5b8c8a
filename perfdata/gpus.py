"""GPU catalog: one YAML file per SKU in ``perfdata/gpus/``, SI units, a source per figure."""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from servewise.perfdata.errors import UnknownIdError
from servewise.perfdata.loader import read_yaml_dir

TensorDtype = Literal["fp64", "tf32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"]
"""Dense tensor-core math formats a GPU may list in ``flops``. Absent = no hardware support."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Link(_Strict):
    """A GPU-to-GPU or host link; bandwidth is per GPU and per direction."""

    kind: Literal["nvlink", "pcie", "nvlink-c2c", "infiniband", "ethernet"]
    generation: int | None = None
    bandwidth_bytes_per_s: float = Field(gt=0)
    latency_s: float | None = Field(default=None, gt=0)


class GpuSpec(_Strict):
    """One GPU SKU. Throughput figures are dense (no 2:4 sparsity), per GPU."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    name: str
    vendor: Literal["nvidia"] = "nvidia"
    architecture: Literal["turing", "ampere", "ada", "hopper", "blackwell"]
    segment: Literal["datacenter", "workstation", "consumer"]
    form_factor: str
    memory_bytes: int = Field(gt=0, description="total memory as CUDA reports it (cudaMemGetInfo total)")
    memory_type: str
    memory_bandwidth_bytes_per_s: float = Field(gt=0)
    flops: dict[TensorDtype, float] = Field(description="dense tensor-core FLOP/s (OP/s for int) per format")
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    interconnect: Link = Field(description="scale-up link between GPUs of one node")
    host_link: Link = Field(description="the GPU's link to the host (PCIe)")
    inter_node: Link | None = Field(default=None, description="typical scale-out network per GPU")
    gpus_per_node: int = Field(gt=0, description="typical GPUs in one server")
    tdp_w: float = Field(gt=0)
    nvml_names: list[str] = Field(min_length=1, description="regexes matched against nvmlDeviceGetName")
    nvml_memory_range_bytes: tuple[int, int] | None = Field(
        default=None, description="[min, max] total memory reported by NVML, to tell variants apart"
    )
    sources: dict[str, str] = Field(description="field (dotted for nested) -> where the figure came from")
    notes: str | None = None

    @model_validator(mode="after")
    def _every_figure_sourced(self) -> GpuSpec:
        needed = ["memory_bytes", "memory_bandwidth_bytes_per_s", "compute_capability", "interconnect",
                  "host_link", "tdp_w", "gpus_per_node"]
        needed += [f"flops.{k}" for k in self.flops]
        if self.inter_node is not None:
            needed.append("inter_node")
        missing = [k for k in needed if k not in self.sources and k.split(".")[0] not in self.sources]
        if missing:
            raise ValueError(f"gpu {self.id}: no source for {', '.join(missing)}")
        return self

    @property
    def fp8_supported(self) -> bool:
        return "fp8" in self.flops

    @property
    def fp4_supported(self) -> bool:
        return "fp4" in self.flops

    def peak_flops(self, dtype: str) -> float:
        """Dense tensor FLOP/s for a math format, falling back to the next wider one the GPU has.

        A GPU without FP8 tensor cores runs FP8 weights as weight-only (dequantised to 16-bit),
        so its compute peak is the 16-bit one.
        """
        for d in _WIDER.get(dtype, (dtype,)):
            if d in self.flops:
                return self.flops[d]
        return self.flops.get("bf16") or self.flops["fp16"]

    def matches_nvml(self, name: str, memory_bytes: int | None = None) -> bool:
        if not any(re.search(p, name, flags=re.IGNORECASE) for p in self.nvml_names):
            return False
        if memory_bytes is not None and self.nvml_memory_range_bytes is not None:
            lo, hi = self.nvml_memory_range_bytes
            return lo <= memory_bytes <= hi
        return True


_WIDER = {
    "fp4": ("fp4", "fp8", "bf16", "fp16"),
    "int4": ("int4", "int8", "bf16", "fp16"),
    "fp8": ("fp8", "bf16", "fp16"),
    "int8": ("int8", "bf16", "fp16"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
}


@cache
def all_gpus() -> dict[str, GpuSpec]:
    """Every GPU in the catalog, by id."""
    return {d["id"]: GpuSpec.model_validate(d) for d in read_yaml_dir("gpus")}


def get_gpu(gpu_id: str) -> GpuSpec:
    """The catalog GPU ``gpu_id``; raises ``UnknownIdError`` (exit 3) with suggestions."""
    gpus = all_gpus()
    try:
        return gpus[gpu_id]
    except KeyError:
        raise UnknownIdError("GPU", gpu_id, gpus, hint="(list them with `servewise gpus`)") from None
