"""Turn profile inputs into the concrete facts the estimator computes with."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from servewise.estimator.arch import ModelArch
from servewise.estimator.errors import ConfigError
from servewise.estimator.linear_modules import modules
from servewise.estimator.quant import (
    DEFAULT_QUANTIZED, QuantScheme, WeightFormat, plain_scheme, weight_format,
)
from servewise.estimator.quant_scheme import CheckpointQuant, detect, weight_split
from servewise.perfdata import GpuSpec, get_engine, get_gpu
from servewise.perfdata.engines import EngineVersion
from servewise.perfdata.gpus import Link
from servewise.perfdata.models import find_model, get_model
from servewise.perfdata.errors import DataError
from servewise.profiles.schema import CustomGpu, Hardware, Model, is_local_model_path


@dataclass(frozen=True)
class ResolvedModel:
    """A model's architecture and the weights format servewise sizes it with."""

    id: str
    arch: ModelArch
    checkpoint_dtype: str            # what the checkpoint stores (catalog dtype / detected quantization)
    weights: WeightFormat            # format of the quantized linear layers at serving time
    source: str                      # catalog | hub | local | profile
    published_params: float | None = None
    engine_quantization: str | None = None  # online quantization the engine must be told (fp8); a pre-quantized
    #                                         checkpoint's method is ``quantization_method`` (engines read it)
    quant: QuantScheme | None = None  # which module kinds use ``weights``; None: every decoder linear layer
    checkpoint_quant: CheckpointQuant | None = None  # the checkpoint's quantization as detected from its configs
    weight_bytes: float | None = None       # whole model as stored: exact from safetensors, else from the architecture
    weight_bytes_source: str = "architecture"  # architecture | safetensors
    revision: str | None = None
    config_hash: str | None = None

    @property
    def weights_dtype(self) -> str:
        return self.weights.name

    @property
    def scheme(self) -> QuantScheme:
        """The quantization scheme (``quant``, or the default one for ``weights``)."""
        return self.quant if self.quant is not None else plain_scheme(self.weights)

    @property
    def quantization_method(self) -> str | None:
        """Engine-neutral method of a pre-quantized checkpoint (perfdata.engines.QuantMethod); each
        engine maps it with ``EngineVersion.quantization.flag_value``."""
        return self.checkpoint_quant.method if self.checkpoint_quant else None


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
    """Catalog lookup by id; a profile's recorded architecture for other models."""
    entry = find_model(model.id)
    if entry is not None:
        return with_weights_dtype(_resolve_catalog(entry.id), model.weights_dtype)
    if model.architecture is not None:
        rm = resolve_config(model.id, dict(model.architecture), source="profile")
        return with_weights_dtype(replace(rm, revision=model.revision, config_hash=model.config_hash),
                                  model.weights_dtype)
    if is_local_model_path(model.id):
        raise DataError(f"{model.id!r} is a local folder and the profile records no model.architecture; record it "
                        f"with `servewise plan --model {model.id} ... --save P`", field="model.id")
    get_model(model.id)  # raises UnknownIdError with suggestions
    raise AssertionError("unreachable")


@cache
def _resolve_catalog(model_id: str) -> ResolvedModel:
    """Catalog models resolve once per process (the search and the wizard ask repeatedly)."""
    entry = get_model(model_id)
    return resolve_config(entry.id, entry.config, entry.quantization_config, source="catalog",
                          published_params=entry.params)


def serving_scheme(arch: ModelArch, cq: CheckpointQuant) -> QuantScheme:
    """The module-kind scheme the memory model sizes with, from a detected checkpoint quantization:
    the exact storage format, and the kinds whose linear weights are mostly (>= half) quantized
    once the checkpoint's exclusion patterns are applied module by module."""
    quantized: dict[str, int] = {}
    total: dict[str, int] = {}
    for m in modules(arch):
        if m.linear:
            total[m.role] = total.get(m.role, 0) + m.weight_params
            if cq.quantizes(m.name):
                quantized[m.role] = quantized.get(m.role, 0) + m.weight_params
    kinds = frozenset(k for k in DEFAULT_QUANTIZED if total.get(k) and 2 * quantized.get(k, 0) >= total[k])
    fmt = cq.fmt
    if cq.method == "gptq" and cq.raw.get("sym", True):
        fmt = replace(fmt, zero_bits=0.0)  # symmetric GPTQ: the Marlin kernels drop the zero points
    return QuantScheme(format=fmt, quantized=kinds, method=cq.method)


def resolve_config(model_id: str, config: dict, quantization_config: dict | None = None, *,
                   hf_quant_config: dict | None = None, source: str, published_params: float | None = None,
                   ) -> ResolvedModel:
    """A model from its config.json mapping and quantization configs: architecture, the detected
    checkpoint quantization, its serving scheme and the whole-model weight bytes.

    ``config`` may be a recorded architecture (``profiles.checkpoint``): its ``hf_quant_config`` and
    ``safetensors`` entries then give the ModelOpt scheme and the exact bytes the engine loads."""
    arch = ModelArch.from_hf_config(config)
    recorded_hfq = config.get("hf_quant_config")
    hfq = hf_quant_config or (recorded_hfq if isinstance(recorded_hfq, dict) else None)
    cq = detect(quantization_config or config.get("quantization_config"), hfq)
    if cq:
        ckpt, scheme = cq.weights_dtype, serving_scheme(arch, cq)
    else:
        ckpt = _dtype_from_config(config)
        scheme = plain_scheme(weight_format(_serving_format(ckpt)))
    weight_bytes, how = weight_split(arch, cq).weight_bytes, "architecture"
    st = config.get("safetensors")
    if isinstance(st, dict) and isinstance(st.get("served_bytes"), int) and st["served_bytes"] > 0:
        weight_bytes, how = float(st["served_bytes"]), "safetensors"
    return ResolvedModel(model_id, arch, ckpt, scheme.format, source, published_params, quant=scheme,
                         checkpoint_quant=cq, weight_bytes=weight_bytes, weight_bytes_source=how)


def _dtype_from_config(cfg: dict) -> str:
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
        served = weight_split(rm.arch, None, uniform=fmt if weights_dtype == "fp8" else None)
        return replace(rm, weights=fmt, engine_quantization="fp8" if weights_dtype == "fp8" else None,
                       quant=plain_scheme(fmt), weight_bytes=served.weight_bytes, weight_bytes_source="architecture")
    raise ConfigError(f"{rm.id} is a {ckpt} checkpoint; it cannot be served as {weights_dtype} "
                      f"(use a checkpoint of the model quantized to {weights_dtype}, or --weights-dtype auto)",
                      field="model.weights_dtype")


def checkpoint_gib(model: Model) -> int | None:
    """The checkpoint as downloaded, in whole GiB: its stored dtype even when the engine quantizes it at
    load (``weights_dtype`` fp8 over a bf16 checkpoint); the least a model-cache volume must hold."""
    stored = resolve_model(model.model_copy(update={"weights_dtype": "auto"}))
    return -(-int(stored.weight_bytes) // 1024**3) if stored.weight_bytes else None


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


def quantization_note(rm: ResolvedModel, engine_name: str, engine: EngineVersion) -> str | None:
    """One line on how the engine is told about the weights' quantization (None for 16-bit)."""
    q = engine.quantization
    if rm.checkpoint_quant:
        cq = rm.checkpoint_quant
        spec = q.checkpoint.get(cq.method)  # type: ignore[call-overload]
        head = f"checkpoint quantization {cq.method} ({cq.detail}) from {cq.source}"
        if spec is None:
            return f"{head}: {engine_name} {engine.version} does not list this method"
        if spec.autodetect and spec.pin:
            return (f"{head}: {engine_name} {engine.version} detects it; servewise pins the kernel with {q.flag} "
                    f"{spec.value} (GPUs of compute capability {spec.min_compute_capability} or newer; "
                    f"{spec.fallback_value} below), since an explicit {cq.method} would force the slower kernel")
        if spec.autodetect:
            how = f", kernel {spec.value}" if spec.value and spec.value != cq.method else ""
            return f"{head}: {engine_name} {engine.version} reads it from the checkpoint{how}; no quantization flag"
        return f"{head}: {q.flag} {spec.value}"
    if rm.engine_quantization:
        value = q.flag_value(None, rm.weights.name)
        w, ckpt = rm.weights.name, rm.checkpoint_dtype
        if value:
            return f"{w} weights quantized online from the {ckpt} checkpoint: {q.flag} {value}"
        return f"{engine_name} {engine.version} cannot quantize {ckpt} weights to {w} online"
    return None
