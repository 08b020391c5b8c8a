"""Engine facts: one YAML per engine in ``perfdata/engines/``, keyed by version, plus the
Dynamo runtime releases in ``perfdata/runtimes/`` (images and the engine versions each pins).

Every fact of an engine version names its source under ``sources`` (a test enforces the keys
in ``EngineVersion.SOURCED_FACTS``); flag names are checked against the accepted-flags lists
in ``../shared/engine_flags`` by the tests.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from servewise.perfdata.errors import UnknownIdError
from servewise.perfdata.loader import read_yaml_dir

EngineName = Literal["vllm", "sglang", "trtllm"]
WeightsDtype = Literal["auto", "bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4", "bnb-4bit"]
"""Weights formats an engine serves: the profile's --weights-dtype vocabulary plus formats only a
checkpoint can bring (bnb-4bit: bitsandbytes NF4/FP4, detected, never requested)."""
KvDtype = Literal["auto", "bf16", "fp16", "fp8"]
QuantMethod = Literal["fp8", "compressed-tensors", "awq", "gptq", "bitsandbytes", "mxfp4",
                      "modelopt_fp8", "modelopt_fp4"]
"""Checkpoint quantization methods servewise detects (``quantization_config.quant_method``, or
``hf_quant_config.json`` for NVIDIA ModelOpt exports: FP8 -> modelopt_fp8, NVFP4 -> modelopt_fp4)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryKnob(_Strict):
    """The engine's memory-fraction setting and what it is a fraction of."""

    flag: str = Field(description="CLI flag as the engine spells it")
    default: float | None = Field(description="None where the engine picks a value itself")
    default_rule: str | None = Field(default=None, description="how the engine picks the value when default is None")
    of: Literal["total", "free_after_weights"] = Field(
        description="total: fraction of total GPU memory (vLLM, SGLang); free_after_weights: fraction of "
        "the memory still free after weights and warm-up allocations (TensorRT-LLM)")
    meaning: str = Field(description="what the budgeted fraction holds, in the engine's own terms")


class CheckpointQuant(_Strict):
    """How an engine version serves a checkpoint quantized with one method."""

    weights_dtypes: list[WeightsDtype] = Field(min_length=1, description="servewise weights formats this method "
                                               "can store (compressed-tensors: fp8, int8 W8A8 or int4 W4A16)")
    value: str | None = Field(description="the engine's name for the method (its --quantization value); "
                              "None where the engine has no such flag")
    autodetect: bool = Field(description="the engine reads the method from the checkpoint's config, so no flag is "
                             "needed (passing one can only pick a slower kernel, e.g. vLLM awq vs awq_marlin)")
    pin: bool = Field(default=False, description="emit the flag anyway to pin the kernel servewise models (the "
                      "method has several kernels; the fast one needs min_compute_capability)")
    min_compute_capability: str | None = Field(default=None, pattern=r"^\d+\.\d+$",
                                               description="oldest GPU generation the pinned kernel runs on")
    fallback_value: str | None = Field(default=None, description="the value to pin on older GPUs")

    def pinned_value(self, compute_capability: str | None) -> str | None:
        """The kernel to pin on a GPU of this compute capability (None: let the engine choose)."""
        if not self.pin:
            return None
        if self.min_compute_capability and compute_capability and \
                _cc(compute_capability) < _cc(self.min_compute_capability):
            return self.fallback_value
        return self.value


def _cc(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


class Quantization(_Strict):
    flag: str | None = Field(description="the engine's quantization flag, None where it has none (TensorRT-LLM)")
    online: dict[WeightsDtype, str] = Field(
        description="servewise weights dtype -> flag value that quantizes a 16-bit checkpoint at load time")
    checkpoint: dict[QuantMethod, CheckpointQuant] = Field(
        description="pre-quantized checkpoint methods this version serves")

    def flag_value(self, method: str | None, online_dtype: str | None = None,
                   compute_capability: str | None = None) -> str | None:
        """The value to pass with ``flag``: online quantization needs it; a pre-quantized checkpoint
        where the engine does not detect the method itself, or where servewise pins the kernel."""
        if method is None:
            return self.online.get(online_dtype) if online_dtype else None
        cq = self.checkpoint.get(method)  # type: ignore[call-overload]
        if cq is None:
            return None
        if cq.autodetect:
            return cq.pinned_value(compute_capability)
        return cq.value


class Disaggregation(_Strict):
    how: str = Field(description="how prefill and decode workers are launched and paired")
    transfer_backends: list[str] = Field(description="KV transfer backends / connectors, engine spelling")
    default_backend: str | None = None


class ServingBehaviour(_Strict):
    """How an engine version schedules requests at its defaults: what the performance model's serving
    dynamics (estimator/serving.py) and the search depend on."""

    scheduling: Literal["mixed", "prefill_first"] = Field(
        description="mixed: every step runs the running decodes and fills the rest of the token budget with "
        "prompt chunks; prefill_first: waiting prompts run as a prefill batch of their own before decoding "
        "resumes")
    kv_reservation: Literal["whole_request", "incremental"] = Field(
        description="whole_request: a request is admitted only when its prompt and every output token fit in "
        "the KV cache (reserved up front); incremental: blocks are allocated as tokens are computed and "
        "running requests are preempted when they run out")
    chunked_prefill: bool = Field(description="whether prompts longer than the token budget are split over "
                                  "steps by default (False: a step must hold a whole prompt)")
    default_running_limit: Literal["max_num_seqs", "kv_pool"] = Field(
        description="what caps running requests when the batch limit is left at the engine's default: the "
        "default max_num_seqs, or only the KV pool (SGLang derives --max-running-requests from it)")


class EngineVersion(_Strict):
    SOURCED_FACTS: ClassVar[tuple[str, ...]] = (
        "image", "memory_knob", "block_size_tokens", "port", "default_bind", "weights_dtypes", "kv_cache_dtypes",
        "quantization", "disaggregation", "cuda_graph_memory_budgeted", "serving")

    version: str
    image: str = Field(description="pinned container image (never :latest)")
    released: str | None = None
    memory_knob: MemoryKnob
    block_size_tokens: int = Field(gt=0, description="KV block / page size the engine uses by default")
    block_size_flag: str = Field(description="flag (or YAML key) that sets the block / page size")
    port: int = Field(gt=0, lt=65536)
    default_bind: str = Field(description="address the server binds when --host is not given")
    weights_dtypes: list[WeightsDtype]
    kv_cache_dtypes: dict[KvDtype, str] = Field(description="servewise KV dtype -> engine spelling")
    kv_cache_dtype_flag: str = Field(description="flag (or YAML key) that sets the KV-cache dtype")
    quantization: Quantization
    disaggregation: bool
    disaggregation_transfer: Disaggregation | None = None
    cuda_graph_memory_budgeted: bool = Field(
        description="whether start-up profiling subtracts the CUDA-graph memory before sizing the KV cache")
    serving: ServingBehaviour = Field(description="scheduling behaviour at the engine's defaults")
    flags_reference: str | None = Field(default=None, description="name of the accepted-flags list "
                                        "(../shared/engine_flags/<name>.json)")
    dynamo_runtime_image: str | None = Field(default=None, description="Dynamo runtime image that pins this version")
    sources: dict[str, str]

    @model_validator(mode="after")
    def _consistent(self) -> EngineVersion:
        missing = [k for k in self.SOURCED_FACTS if not self.sources.get(k)]
        if missing:
            raise ValueError(f"version {self.version}: sources has no entry for {', '.join(missing)}")
        if self.image.endswith(":latest") or ":" not in self.image:
            raise ValueError(f"version {self.version}: image {self.image!r} must carry a pinned tag")
        if self.disaggregation != (self.disaggregation_transfer is not None):
            raise ValueError(f"version {self.version}: disaggregation and disaggregation_transfer disagree")
        for method, cq in self.quantization.checkpoint.items():
            unknown = [d for d in cq.weights_dtypes if d not in self.weights_dtypes]
            if unknown:
                raise ValueError(f"version {self.version}: quantization.checkpoint.{method} stores "
                                 f"{', '.join(unknown)}, which weights_dtypes does not list")
        for dtype in self.quantization.online:
            if dtype not in self.weights_dtypes:
                raise ValueError(f"version {self.version}: quantization.online.{dtype} is not in weights_dtypes")
        return self


class EngineSpec(_Strict):
    name: EngineName
    display_name: str
    default_version: str
    versions: list[EngineVersion]

    @model_validator(mode="after")
    def _default_exists(self) -> EngineSpec:
        if self.default_version not in [v.version for v in self.versions]:
            raise ValueError(f"{self.name}: default_version {self.default_version} is not among its versions")
        return self

    def version(self, v: str | None = None) -> EngineVersion:
        v = v or self.default_version
        for ev in self.versions:
            if ev.version == v:
                return ev
        known = [e.version for e in self.versions]
        raise UnknownIdError(f"{self.display_name} version", v, known, hint=f"(supported: {', '.join(known)})")

    @property
    def renderable_versions(self) -> list[str]:
        """The versions with an accepted-flags list: the ones whose commands render can check."""
        return [e.version for e in self.versions if e.flags_reference]


class DynamoEngine(_Strict):
    """One engine as a Dynamo release runs it."""

    version: str = Field(description="the engine version this Dynamo release pins")
    image: str = Field(description="Dynamo runtime image carrying the engine")
    module: str = Field(description="worker entry point, e.g. dynamo.vllm")
    flags: list[str] = Field(min_length=1, description="accepted-flags lists of the worker: '<file>' (the engine's "
                             "own flags, passed through) or '<file>#commands.<name>' (the Dynamo command's flags)")
    memory_knob: MemoryKnob = Field(description="the memory fraction as the Dynamo worker spells it")
    block_size_flag: str
    block_size_tokens: int = Field(gt=0)


class DynamoRelease(_Strict):
    version: str
    frontend_image: str
    frontend_module: str
    frontend_port: int = Field(gt=0, lt=65536)
    worker_system_port: int = Field(gt=0, lt=65536, description="DYN_SYSTEM_PORT for worker health probes")
    flags_reference: str
    engines: dict[EngineName, DynamoEngine]
    sources: dict[str, str]


@cache
def all_engines() -> dict[str, EngineSpec]:
    return {d["name"]: EngineSpec.model_validate(d) for d in read_yaml_dir("engines")}


def get_engine(name: str) -> EngineSpec:
    engines = all_engines()
    try:
        return engines[name]
    except KeyError:
        raise UnknownIdError("engine", name, engines) from None


@cache
def all_dynamo_releases() -> dict[str, DynamoRelease]:
    return {d["version"]: DynamoRelease.model_validate(d) for d in read_yaml_dir("runtimes/dynamo")}


def get_dynamo(version: str | None = None) -> DynamoRelease:
    """A Dynamo release by version (default: the newest catalogued)."""
    releases = all_dynamo_releases()
    if version is None:
        return releases[max(releases, key=lambda v: tuple(int(p) for p in v.split(".")))]
    try:
        return releases[version]
    except KeyError:
        raise UnknownIdError("Dynamo version", version, releases) from None
