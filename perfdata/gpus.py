"""GPU catalog: one YAML file per SKU in ``perfdata/gpus/``, SI units, a source per figure.

Memory is recorded twice on purpose: ``memory_bytes`` is what CUDA reports
(``cudaMemGetInfo`` total / ``torch.cuda.get_device_properties().total_memory``), the figure
engines size their budgets from; ``nvml_memory_bytes`` is what NVML and ``nvidia-smi`` print as
the total, which is larger by the driver's reserve. Detection matches on the NVML figure.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from servewise.perfdata.errors import DataError, UnknownIdError
from servewise.perfdata.loader import read_yaml, read_yaml_dir_named

TensorDtype = Literal["bf16", "fp16", "fp8", "int8", "fp4"]
"""Dense tensor-core math formats a GPU may list in ``flops``. Absent = no hardware support."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Link(_Strict):
    """A GPU-to-GPU, host or network link; bandwidth is per GPU and per direction."""

    kind: Literal["nvlink", "pcie", "nvlink-c2c", "infiniband", "ethernet"]
    generation: int | None = Field(default=None, ge=1, description="NVLink / PCIe generation")
    bandwidth_bytes_per_s: float = Field(gt=0, description="per GPU, per direction")
    latency_s: float | None = Field(default=None, gt=0)


# Fields whose value is a figure of the world and so needs an entry in ``sources``.
_SOURCED = ("memory_gb", "memory_bytes", "memory_bandwidth_bytes_per_s", "compute_capability", "interconnect",
            "scale_up_domain_gpus", "host_link", "gpus_per_node", "tdp_w", "nvml_names")
_OPTIONAL_SOURCED = ("nvml_memory_bytes", "inter_node", "nvml_memory_range_bytes")


class GpuSpec(_Strict):
    """One GPU SKU. Throughput figures are dense (no 2:4 sparsity), per GPU."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    name: str
    vendor: Literal["nvidia"] = "nvidia"
    architecture: Literal["turing", "ampere", "ada", "hopper", "blackwell"]
    segment: Literal["datacenter", "workstation", "consumer"]
    form_factor: str
    memory_gb: float = Field(gt=0, description="marketed capacity in GB, as the datasheet names it")
    memory_bytes: int = Field(gt=0, description="total memory as CUDA reports it (cudaMemGetInfo total)")
    nvml_memory_bytes: int | None = Field(default=None, gt=0,
                                          description="total memory as NVML / nvidia-smi report it")
    memory_type: str
    memory_bandwidth_bytes_per_s: float = Field(gt=0)
    flops: dict[TensorDtype, float] = Field(min_length=1,
                                            description="dense tensor-core FLOP/s (OP/s for int8) per format")
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    interconnect: Link = Field(description="scale-up link between GPUs of one node (or NVLink domain)")
    scale_up_domain_gpus: int = Field(gt=0, description="GPUs that reach each other over `interconnect`: "
                                      "8 on an HGX board, 72 in an NVL72 rack, 2 for a bridged pair")
    host_link: Link = Field(description="the GPU's link to its CPU (PCIe or NVLink-C2C)")
    inter_node: Link | None = Field(default=None, description="typical scale-out network per GPU")
    gpus_per_node: int = Field(gt=0, description="typical GPUs in one server (one OS instance)")
    tdp_w: float = Field(gt=0)
    nvml_names: list[str] = Field(min_length=1, description="regexes matched against nvmlDeviceGetName")
    nvml_memory_range_bytes: tuple[int, int] | None = Field(
        default=None, description="[min, max] NVML total memory, where the name alone is ambiguous")
    aiconfigurator_system: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]+$",
        description="the `system` name NVIDIA aiconfigurator (and its measured sample) uses for this SKU")
    sources: dict[str, str] = Field(description="field (dotted for nested) -> where the figure came from")
    notes: str | None = None

    @model_validator(mode="after")
    def _consistent_and_sourced(self) -> GpuSpec:
        needed = list(_SOURCED) + [f"flops.{k}" for k in self.flops]
        needed += [k for k in _OPTIONAL_SOURCED if getattr(self, k) is not None]
        missing = [k for k in needed if k not in self.sources and k.split(".")[0] not in self.sources]
        if missing:
            raise ValueError(f"gpu {self.id}: no source for {', '.join(missing)}")
        known = set(_SOURCED) | set(_OPTIONAL_SOURCED) | {"flops"} | {f"flops.{k}" for k in self.flops}
        stray = sorted(set(self.sources) - known)
        if stray:
            raise ValueError(f"gpu {self.id}: sources names unknown figure(s) {', '.join(stray)}")
        if self.nvml_memory_bytes is not None and self.memory_bytes > self.nvml_memory_bytes:
            raise ValueError(f"gpu {self.id}: memory_bytes (CUDA) exceeds nvml_memory_bytes")
        if self.nvml_memory_range_bytes is not None:
            lo, hi = self.nvml_memory_range_bytes
            if lo >= hi:
                raise ValueError(f"gpu {self.id}: nvml_memory_range_bytes must be [min, max] with min < max")
            if self.nvml_memory_bytes is not None and not lo <= self.nvml_memory_bytes <= hi:
                raise ValueError(f"gpu {self.id}: nvml_memory_bytes lies outside nvml_memory_range_bytes")
        if self.interconnect.kind == "pcie" and self.scale_up_domain_gpus != self.gpus_per_node:
            raise ValueError(f"gpu {self.id}: over PCIe every GPU of the node is in the scale-up domain "
                             f"(scale_up_domain_gpus {self.scale_up_domain_gpus} != "
                             f"gpus_per_node {self.gpus_per_node})")
        for pattern in self.nvml_names:
            re.compile(pattern)
        return self

    @property
    def fp8_supported(self) -> bool:
        return "fp8" in self.flops

    @property
    def fp4_supported(self) -> bool:
        return "fp4" in self.flops

    @property
    def has_nvlink(self) -> bool:
        return self.interconnect.kind == "nvlink"

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
        """Whether NVML's device name (and, where the SKU needs it, its total memory) is this SKU."""
        if not any(re.search(p, name.strip(), flags=re.IGNORECASE) for p in self.nvml_names):
            return False
        if memory_bytes is not None and self.nvml_memory_range_bytes is not None:
            lo, hi = self.nvml_memory_range_bytes
            return lo <= memory_bytes <= hi
        return True


_WIDER = {
    "fp4": ("fp4", "fp8", "bf16", "fp16"),
    "int4": ("int8", "bf16", "fp16"),
    "fp8": ("fp8", "bf16", "fp16"),
    "int8": ("int8", "bf16", "fp16"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
}


_LOADED: dict[str, GpuSpec] = {}   # one object per SKU, whether read alone or with the whole catalog


@cache
def all_gpus() -> dict[str, GpuSpec]:
    """Every GPU in the catalog, by id (the file name is the id)."""
    out: dict[str, GpuSpec] = {}
    for stem, doc in read_yaml_dir_named("gpus"):
        try:
            spec = GpuSpec.model_validate(doc)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "document"
            raise DataError(f"perfdata/gpus/{stem}.yaml: {where}: {err['msg']}") from None
        if spec.id != stem:
            raise DataError(f"perfdata/gpus/{stem}.yaml: id {spec.id!r} differs from the file name")
        out[spec.id] = _LOADED.setdefault(spec.id, spec)
    return out


def _exact(gpu_id: str) -> GpuSpec | None:
    """``gpus/<id>.yaml`` read alone (planning on one GPU need not parse the catalog); None when absent
    or broken (``all_gpus`` then reports the file and field)."""
    if gpu_id in _LOADED:
        return _LOADED[gpu_id]
    if not re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", gpu_id):
        return None
    try:
        spec = GpuSpec.model_validate(read_yaml(f"gpus/{gpu_id}.yaml"))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValidationError):
        return None
    return _LOADED.setdefault(gpu_id, spec) if spec.id == gpu_id else None


def get_gpu(gpu_id: str) -> GpuSpec:
    """The catalog GPU ``gpu_id``; raises ``UnknownIdError`` (exit 3) with suggestions."""
    exact = _exact(gpu_id)
    if exact is not None:
        return exact
    gpus = all_gpus()
    try:
        return gpus[gpu_id]
    except KeyError:
        raise UnknownIdError("GPU", gpu_id, gpus, hint="(list them with `servewise gpus`)") from None


def gpu_for_aiconfigurator_system(system: str) -> GpuSpec:
    """The catalog SKU an aiconfigurator `system` name (``h100_sxm``, ``gb200`` ...) stands for."""
    found = [g for g in all_gpus().values() if g.aiconfigurator_system == system]
    if len(found) != 1:
        known = [g.aiconfigurator_system for g in all_gpus().values() if g.aiconfigurator_system]
        raise UnknownIdError("aiconfigurator system", system, known)
    return found[0]


def gpus_for_nvml(name: str, memory_bytes: int | None = None) -> list[GpuSpec]:
    """The catalog SKUs whose ``nvml_names`` (and memory range) match what NVML reports; the
    catalog's tests keep this at most one for every real device name."""
    return [g for g in all_gpus().values() if g.matches_nvml(name, memory_bytes)]
