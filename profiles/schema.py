"""The servewise profile, schema version 1: a strict, versioned, git-friendly document.

Every field is written on save, keys in declaration order, no timestamps. Choice fields
are ``Literal``s, the plan is discriminated on ``mode``, and cross-field validators name
the field path in their message. Fields that later features fill are optional already,
so v1 can stay frozen; a change of shape means v2 and a migration (``migrations.py``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from servewise.profiles.secrets import secret_flag_with_value
from servewise.profiles.values import FieldValueError, check_values

SCHEMA_VERSION = 1

WeightsDtype = Literal["auto", "bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4"]
KvDtype = Literal["auto", "bf16", "fp16", "fp8"]
EngineName = Literal["vllm", "sglang", "trtllm"]
Target = Literal["shell", "compose", "helm", "k8s"]
Percentile = Literal["mean", "p50", "p90", "p99"]

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CATALOG_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){1,3}([a-z0-9.+-]*)$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9._-]{1,128})?(@sha256:[a-f0-9]{64})?$")
_SAFE_TEXT = re.compile(r"^[^\x00-\x1f\x7f]*$")
_SIDECAR = re.compile(r"^[^/\x00-\x1f][^\x00-\x1f]*$")
# A Hugging Face repo id as the Hub accepts it (huggingface_hub validate_repo_id): org/name, each part
# letters, digits, '-', '_' and '.', at most 96 characters, no '--' or '..'.
HF_ID = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def is_local_model_path(model_id: str) -> bool:
    """``./x``, ``../x``, ``/x``, ``~/x`` (and ``.``, ``..``) name a checkpoint folder; anything else is an id."""
    return model_id in (".", "..") or model_id.startswith(("./", "../", "/", "~"))

Count = Annotated[int, Field(ge=1, le=1_000_000)]
Tokens = Annotated[int, Field(ge=1, le=100_000_000)]
PositiveMs = Annotated[float, Field(gt=0, le=86_400_000, allow_inf_nan=False)]
Figure = Annotated[float, Field(ge=0, le=1e18, allow_inf_nan=False)]
Band = Annotated[list[Figure], Field(min_length=2, max_length=2, description="[low, high]")]
Bytes = Annotated[int, Field(ge=0, le=10**15)]

# What a pattern means, for error messages (pydantic would print the regular expression).
PATTERN_MEANING = {
    _SAFE_TEXT.pattern: "must not contain control characters (newlines, tabs, escape sequences)",
    _CATALOG_ID.pattern: "must be a catalog id: lowercase letters, digits and '-' (see `servewise gpus`)",
    _VERSION.pattern: "must be a version number such as 0.33.0",
    _IMAGE.pattern: "must be a container image such as vllm/vllm-openai:v0.33.0 (registry/name:tag[@sha256:...])",
    _SIDECAR.pattern: "must be a file path relative to the profile's folder (no leading '/', no control characters)",
}


def dns1123(value: str, max_len: int = 63) -> str:
    if len(value) > max_len or not _DNS1123.match(value):
        shown = repr(value) if len(value) <= 2 * max_len else f"{value[:max_len]!r}... ({len(value)} characters)"
        raise ValueError(f"{shown} is not a valid Kubernetes name (lowercase letters, digits and '-', "
                         f"starting and ending with a letter or digit, at most {max_len} characters)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)


# ----------------------------------------------------------------------------- hardware
class CustomGpu(_Strict):
    """A GPU that is not in the catalog, described from what NVML reports."""

    id: str = Field(pattern=r"^custom-[a-z0-9-]+$")
    name: str = Field(max_length=200, pattern=_SAFE_TEXT.pattern)
    memory_bytes: int = Field(gt=0, le=10**14)
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    nearest: str = Field(pattern=_CATALOG_ID.pattern, description="catalog SKU whose performance figures are used")


class Fingerprint(_Strict):
    """What NVML saw, so a replay on other hardware can warn."""

    names: list[Annotated[str, Field(max_length=200, pattern=_SAFE_TEXT.pattern)]] = Field(max_length=4096)
    count: Count
    memory_bytes: list[Bytes] = Field(max_length=4096)
    driver_version: str | None = Field(default=None, max_length=50, pattern=_SAFE_TEXT.pattern)


class Hardware(_Strict):
    gpu: Annotated[str, Field(pattern=_CATALOG_ID.pattern)] | CustomGpu
    gpus_per_node: Count = 8
    nodes: Count = 1
    interconnect: Literal["nvlink", "pcie"] | None = Field(
        default=None, description="link between GPUs of a node; null = the catalog GPU's own")
    source: Literal["manual", "nvml"] = "manual"
    fingerprint: Fingerprint | None = None
    prefill_gpu: Annotated[str, Field(pattern=_CATALOG_ID.pattern)] | None = Field(
        default=None, description="heterogeneous disaggregation: the prefill pool's GPU (catalog id)")
    memory_bytes: int | None = Field(default=None, gt=0, le=10**14,
                                     description="usable memory per GPU when planning on free memory only")

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def gpu_id(self) -> str:
        return self.gpu if isinstance(self.gpu, str) else self.gpu.id


# ----------------------------------------------------------------------------- model
class Model(_Strict):
    id: str = Field(min_length=1, max_length=400, pattern=_SAFE_TEXT.pattern,
                    description="catalog / Hugging Face id, or a local checkpoint folder (./x, /x, ~/x)")
    revision: str | None = Field(default=None, max_length=200, pattern=_SAFE_TEXT.pattern)
    config_hash: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    weights_dtype: WeightsDtype = "auto"
    kv_cache_dtype: KvDtype = "auto"
    max_model_len: Tokens | None = Field(default=None, description="null = the model's maximum")
    served_name: str | None = Field(default=None, min_length=1, max_length=400, pattern=_SAFE_TEXT.pattern)
    architecture: dict[str, object] | None = Field(
        default=None, description="resolved config.json fields of a non-catalog model, so replay needs no network")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not is_local_model_path(v) and not HF_ID.match(v):
            raise ValueError(f"{v!r} is neither a Hugging Face id (org/name: letters, digits, '-', '_', '.') nor a "
                             "local checkpoint folder (./path, /path, ~/path)")
        return v


# ----------------------------------------------------------------------------- workload / SLA
class Load(_Strict):
    """Exactly one of: closed-loop concurrency, open-loop request rate, or offline max throughput."""

    concurrency: Count | None = None
    request_rate: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] | None = None
    max_throughput: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Load:
        if sum(v is not None for v in (self.concurrency, self.request_rate, self.max_throughput)) != 1:
            raise ValueError("give exactly one of concurrency, request_rate or max_throughput")
        return self


class Workload(_Strict):
    isl: Tokens = Field(description="input (prompt) tokens per request")
    osl: Tokens = Field(description="output tokens per request")
    load: Load


class Sla(_Strict):
    ttft_ms: PositiveMs | None = None
    tpot_ms: PositiveMs | None = None
    percentile: Percentile = "mean"


# ----------------------------------------------------------------------------- engine / search
class Engine(_Strict):
    name: EngineName = "vllm"
    version: str | None = Field(default=None, pattern=_VERSION.pattern, description="null = servewise's default")
    image: str | None = Field(default=None, max_length=300, pattern=_IMAGE.pattern,
                              description="null = the pinned image of the version")

    @field_validator("image")
    @classmethod
    def _no_latest(cls, v: str | None) -> str | None:
        if v is not None and (v.endswith(":latest") or ":" not in v.rsplit("/", 1)[-1] and "@" not in v):
            raise ValueError("pin the image to a version tag (not 'latest' or untagged)")
        return v


class Search(_Strict):
    modes: list[Literal["agg", "disagg"]] = Field(default_factory=lambda: ["agg", "disagg"], min_length=1)
    objective: Literal["output_tokens_per_s_per_gpu", "tokens_per_s_per_user", "cost_per_million_tokens"] = \
        "output_tokens_per_s_per_gpu"
    gpu_hour_usd: Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)] | None = None
    memory_fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = Field(
        default=None, description="fix the engine's memory fraction (its own semantics); null = the search "
                                  "tries the engine default and its neighbours")

    @field_validator("modes")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("modes must not repeat")
        return v


# ----------------------------------------------------------------------------- plan
class Worker(_Strict):
    """One engine instance (a worker) and how many of them run; the values are emitted as flags."""

    tp: Count = 1
    pp: Count = 1
    dp: Count = Field(default=1, description="data-parallel ranks inside one engine instance")
    ep: Count = Field(default=1, description="expert-parallel size (MoE); 1 = experts sharded by TP")
    attention_dp: bool = Field(default=False, description="attention data parallel across the dp ranks (MoE)")
    workers: Count = 1
    max_num_seqs: Count
    max_num_batched_tokens: Tokens
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        description="the engine's memory fraction in its own semantics (vLLM/SGLang: of total; TRT-LLM: of free)")
    gpu: Annotated[str, Field(pattern=_CATALOG_ID.pattern)] | None = Field(
        default=None, description="this role's GPU when it differs from hardware.gpu")

    @property
    def gpus_per_worker(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def gpus(self) -> int:
        return self.gpus_per_worker * self.workers


class Estimates(_Strict):
    """The figures the plan was chosen on (metric definitions: ARCHITECTURE.md section 3); finite and
    non-negative."""

    ttft_ms: Figure | None = None
    ttft_ms_range: Band | None = None
    tpot_ms: Figure | None = None
    tpot_ms_range: Band | None = None
    output_tokens_per_s: Figure | None = None
    output_tokens_per_s_range: Band | None = None
    output_tokens_per_s_per_gpu: Figure | None = None
    output_tokens_per_s_per_gpu_range: Band | None = None
    tokens_per_s_per_user: Figure | None = None
    tokens_per_s_per_user_range: Band | None = None
    requests_per_s: Figure | None = None
    concurrency: Figure | None = None
    kv_transfer_ms: Figure | None = None
    kv_cache_tokens: Bytes | None = None
    max_concurrency: Figure | None = None
    weights_bytes: Bytes | None = None
    kv_cache_bytes: Bytes | None = None
    cost_per_million_tokens_usd: Figure | None = None
    provenance: str | None = Field(default=None, max_length=2000, pattern=_SAFE_TEXT.pattern)


class AggPlan(_Strict):
    mode: Literal["agg"] = "agg"
    replicas: Count = 1
    worker: Worker
    estimates: Estimates | None = None

    @property
    def gpus(self) -> int:
        return self.replicas * self.worker.gpus


class DisaggPlan(_Strict):
    mode: Literal["disagg"] = "disagg"
    replicas: Count = 1
    prefill: Worker
    decode: Worker
    estimates: Estimates | None = None

    @property
    def gpus(self) -> int:
        return self.replicas * (self.prefill.gpus + self.decode.gpus)


Plan = Annotated[AggPlan | DisaggPlan, Field(discriminator="mode")]


# ----------------------------------------------------------------------------- calibration
class CorrectionPoint(_Strict):
    metric: Literal["ttft", "tpot", "output_tokens_per_s"]
    concurrency: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    factor: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = Field(
        description="measured / predicted at this concurrency")


class Calibration(_Strict):
    """Per-deployment corrections from ``servewise bench --calibrate`` (interpolated in log concurrency)."""

    source: str = Field(max_length=500, pattern=_SAFE_TEXT.pattern, description="what was measured (URL, date)")
    points: list[CorrectionPoint] = Field(default_factory=list)
    sidecar: str | None = Field(default=None, max_length=400, pattern=_SIDECAR.pattern,
                                description="a results file next to the profile")
    deployment: str | None = Field(default=None, max_length=500, pattern=_SAFE_TEXT.pattern,
                                   description="the configuration measured; the points apply only to it "
                                               "(null: to any)")
    isl: Tokens | None = Field(default=None, description="input tokens per request when measured")
    osl: Tokens | None = Field(default=None, description="output tokens per request when measured")


# ----------------------------------------------------------------------------- deploy
class ExtraArgs(_Strict):
    agg: list[Annotated[str, Field(max_length=4000)]] = Field(default_factory=list)
    prefill: list[Annotated[str, Field(max_length=4000)]] = Field(default_factory=list)
    decode: list[Annotated[str, Field(max_length=4000)]] = Field(default_factory=list)


_QUANTITY_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def quantity_bytes(size: str) -> int:
    """A Kubernetes binary quantity as a profile writes it (``200Gi``, the pattern of
    ``deploy.model_cache_size``) in bytes."""
    return int(size[:-2]) * _QUANTITY_UNITS[size[-2:]]


class Deploy(_Strict):
    targets: list[Target] = Field(default_factory=lambda: ["shell", "compose", "helm", "k8s"], min_length=1)
    runtime: Literal["native", "dynamo"] = "native"
    name: str | None = Field(default=None, description="base name of services and Kubernetes objects; "
                                                       "null = derived from the model id")
    namespace: str = "llm"
    service_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    model_cache_pvc: str = "model-cache"
    model_cache_size: str = Field(default="200Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)$")
    hf_token_secret: str = "hf-token"
    dynamo_api: Literal["v1beta1", "v1alpha1"] = "v1beta1"
    kv_transfer: Literal["nixl", "mooncake"] = "nixl"
    extra_args: ExtraArgs = Field(default_factory=ExtraArgs)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else dns1123(v, 40)

    @field_validator("namespace", "model_cache_pvc", "hf_token_secret")
    @classmethod
    def _k8s_names(cls, v: str) -> str:
        return dns1123(v)

    @field_validator("targets")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("targets must not repeat")
        return v


class Generator(_Strict):
    servewise: str = Field(max_length=50, pattern=_SAFE_TEXT.pattern)
    perfdata: str = Field(max_length=50, pattern=_SAFE_TEXT.pattern)


# ----------------------------------------------------------------------------- the profile
class Profile(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    generator: Generator
    hardware: Hardware
    model: Model
    workload: Workload
    sla: Sla = Field(default_factory=Sla)
    engine: Engine = Field(default_factory=Engine)
    search: Search = Field(default_factory=Search)
    plan: Plan | None = None
    calibration: Calibration | None = None
    deploy: Deploy = Field(default_factory=Deploy)

    @model_validator(mode="after")
    def _cross_checks(self) -> Profile:
        check_values(self)
        hw = self.hardware
        if self.plan is not None:
            if self.plan.gpus > hw.total_gpus:
                p = self.plan
                how = f" ({p.replicas} x (prefill {p.prefill.gpus} + decode {p.decode.gpus}))" \
                    if isinstance(p, DisaggPlan) else ""
                raise FieldValueError("plan", f"uses {p.gpus} GPUs{how} but hardware has {hw.total_gpus} "
                                              f"(hardware.gpus_per_node x hardware.nodes)")
            workers = [("plan.worker", self.plan.worker)] if isinstance(self.plan, AggPlan) else \
                [("plan.prefill", self.plan.prefill), ("plan.decode", self.plan.decode)]
            for path, w in workers:
                if w.attention_dp and w.dp == 1:
                    raise FieldValueError(f"{path}.attention_dp", f"needs {path}.dp > 1")
            if isinstance(self.plan, AggPlan) and (self.deploy.extra_args.prefill or self.deploy.extra_args.decode):
                raise FieldValueError("deploy.extra_args", "prefill/decode apply to disaggregated plans only")
            if isinstance(self.plan, DisaggPlan) and self.deploy.extra_args.agg:
                raise FieldValueError("deploy.extra_args.agg", "applies to aggregated plans only")
        if hw.prefill_gpu is not None and "disagg" not in self.search.modes:
            raise FieldValueError("hardware.prefill_gpu", "needs 'disagg' in search.modes")
        for role in ("agg", "prefill", "decode"):
            found = secret_flag_with_value(getattr(self.deploy.extra_args, role))
            if found:
                i, flag = found
                raise FieldValueError(f"deploy.extra_args.{role}[{i}]",
                                      f"{flag} takes a secret; servewise never writes secrets into artifacts: "
                                      "give it to the engine through its environment variable (e.g. VLLM_API_KEY) "
                                      "or a Kubernetes Secret instead")
        return self
