"""Engine facts: one YAML per engine in ``perfdata/engines/``, keyed by version."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from servewise.perfdata.errors import UnknownIdError
from servewise.perfdata.loader import read_yaml_dir

EngineName = Literal["vllm", "sglang", "trtllm"]
WeightsDtype = Literal["auto", "bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4"]
KvDtype = Literal["auto", "bf16", "fp16", "fp8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemoryKnob(_Strict):
    """The engine's memory-fraction setting and what it is a fraction of."""

    flag: str = Field(description="CLI flag as the engine spells it")
    default: float | None = Field(description="None where the engine picks a value itself")
    of: Literal["total", "free_after_weights"] = Field(
        description="total: fraction of total GPU memory (vLLM, SGLang); free_after_weights: fraction of "
        "the memory still free after weights and warm-up allocations (TensorRT-LLM)")


class EngineVersion(_Strict):
    version: str
    image: str = Field(description="pinned container image (never :latest)")
    released: str | None = None
    memory_knob: MemoryKnob
    block_size_tokens: int = Field(gt=0, description="KV block / page size the engine uses by default")
    port: int = Field(gt=0, lt=65536)
    default_bind: str = Field(description="address the server binds when --host is not given")
    weights_dtypes: list[WeightsDtype]
    kv_cache_dtypes: dict[KvDtype, str] = Field(description="servewise KV dtype -> engine spelling")
    disaggregation: bool
    cuda_graph_memory_budgeted: bool = Field(
        description="whether start-up profiling subtracts the CUDA-graph memory before sizing the KV cache")
    flags_reference: str | None = Field(default=None, description="name of the accepted-flags list")
    dynamo_runtime_image: str | None = None
    sources: dict[str, str]


class EngineSpec(_Strict):
    name: EngineName
    display_name: str
    default_version: str
    versions: list[EngineVersion]

    def version(self, v: str | None = None) -> EngineVersion:
        v = v or self.default_version
        for ev in self.versions:
            if ev.version == v:
                return ev
        raise UnknownIdError(f"{self.display_name} version", v, [e.version for e in self.versions])


@cache
def all_engines() -> dict[str, EngineSpec]:
    return {d["name"]: EngineSpec.model_validate(d) for d in read_yaml_dir("engines")}


def get_engine(name: str) -> EngineSpec:
    engines = all_engines()
    try:
        return engines[name]
    except KeyError:
        raise UnknownIdError("engine", name, engines) from None
