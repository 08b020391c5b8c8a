"""Turn profile inputs into the concrete facts the estimator computes with."""

from __future__ import annotations

from dataclasses import dataclass

from servewise.estimator.arch import ModelArch
from servewise.estimator.errors import ConfigError
from servewise.estimator.quant import (
    QuantScheme, WeightFormat, dtype_from_quantization_config, plain_scheme, scheme_from_quantization_config,
    weight_format,
)
from servewise.perfdata import GpuSpec, get_engine, get_gpu
from servewise.perfdata.engines import EngineVersion
from servewise.perfdata.gpus import Link
from servewise.perfdata.models import find_model
from servewise.profiles.schema import CustomGpu, Hardware, Model


@dataclass(frozen=True)
class ResolvedModel:
    """A model's architecture and the weights format servewise sizes it with."""

    id: str
    arch: ModelArch
    checkpoint_dtype: str            # what the checkpoint stores (catalog dtype / detected quantization)
    weights: WeightFormat            # format of the quantized linear layers at serving time
    source: str                      # catalog | hub | local | profile
    published_params: float | None = None
    engine_quantization: str | None = None  # the engine --quantization value the checkpoint needs, if any
    quant: QuantScheme | None = None  # which modules use ``weights``; None: every decoder linear layer

    @property
    def weights_dtype(self) -> str:
        return self.weights.name

    @property
    def scheme(self) -> QuantScheme:
        """The quantization scheme (``quant``, or the default one for ``weights``)."""
        return self.quant if self.quant is not None else plain_scheme(self.weights)


@dataclass(frozen=True)
class ResolvedHardware:
    gpu: GpuSpec
    gpus_per_node: int
    nodes: int
    intra_node: Link
    memory_bytes: int                # usable per GPU (CUDA-visible total, or free memory when asked)
    source: str = "manual"

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes


def resolve_model(model: Model) -> ResolvedModel:
    """Catalog lookup by id (Hub and local folders: ``servewise.estimator.hub``)."""
    entry = find_model(model.id)
    if entry is not None:
        arch = ModelArch.from_hf_config(entry.config)
        ckpt = entry.dtype
        source, published = "catalog", entry.params
        qcfg = entry.quantization_config or entry.config.get("quantization_config")
    elif model.architecture is not None:
        arch = ModelArch.from_hf_config(model.architecture)
        ckpt = _dtype_from_config(model.architecture)
        source, published = "profile", None
        qcfg = model.architecture.get("quantization_config")
    else:
        from servewise.perfdata.models import get_model

        get_model(model.id)  # raises UnknownIdError with suggestions
        raise AssertionError("unreachable")
    fmt = weight_format(_serving_format(ckpt))
    scheme = scheme_from_quantization_config(qcfg if isinstance(qcfg, dict) else None, fmt.name)
    return with_weights_dtype(ResolvedModel(model.id, arch, ckpt, scheme.format, source, published, quant=scheme),
                              model.weights_dtype)


def _dtype_from_config(cfg: dict) -> str:
    qcfg = cfg.get("quantization_config")
    quantized = dtype_from_quantization_config(qcfg if isinstance(qcfg, dict) else None)
    if quantized:
        return quantized
    d = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(d, "bf16")


def _serving_format(ckpt: str) -> str:
    return "bf16" if ckpt == "fp32" else ckpt


_HIGH_PRECISION = ("bf16", "fp16", "fp32")


def with_weights_dtype(rm: ResolvedModel, weights_dtype: str) -> ResolvedModel:
    """Apply the requested weights dtype: ``auto`` keeps the checkpoint's; a 16-bit checkpoint may be
    served as fp8 (online quantization); a quantized checkpoint cannot be served in another format."""
    if weights_dtype == "auto" or weights_dtype == rm.weights.name:
        return rm
    ckpt = rm.checkpoint_dtype
    if ckpt in _HIGH_PRECISION and weights_dtype in ("bf16", "fp16", "fp8"):
        fmt = weight_format(weights_dtype)
        return ResolvedModel(rm.id, rm.arch, ckpt, fmt, rm.source, rm.published_params,
                             "fp8" if weights_dtype == "fp8" else None, quant=plain_scheme(fmt))
    raise ConfigError(f"{rm.id} is a {ckpt} checkpoint; it cannot be served as {weights_dtype} "
                      f"(use a {weights_dtype} checkpoint of the model, or --weights-dtype auto)",
                      field="--weights-dtype")


def resolve_hardware(hw: Hardware) -> ResolvedHardware:
    if isinstance(hw.gpu, CustomGpu):
        base = get_gpu(hw.gpu.nearest)
        gpu = base.model_copy(update={"id": hw.gpu.id, "name": hw.gpu.name, "memory_bytes": hw.gpu.memory_bytes,
                                      "compute_capability": hw.gpu.compute_capability})
    else:
        gpu = get_gpu(hw.gpu)
    link = gpu.interconnect
    if hw.interconnect == "pcie" and link.kind != "pcie":
        link = gpu.host_link
    elif hw.interconnect == "nvlink" and link.kind != "nvlink":
        raise ConfigError(f"{gpu.name} has no NVLink", field="hardware.interconnect")
    mem = min(hw.memory_bytes, gpu.memory_bytes) if hw.memory_bytes else gpu.memory_bytes
    return ResolvedHardware(gpu, hw.gpus_per_node, hw.nodes, link, mem, hw.source)


def resolve_engine(name: str, version: str | None) -> EngineVersion:
    return get_engine(name).version(version)
