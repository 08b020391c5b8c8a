"""Memory rules per engine version and the coefficients fitted on measured start-up logs.

``perfdata/memory_calibration.yaml`` holds, per engine and first version a rule applies to
(``since``): the engine's default batch limits, how its start-up profiling sizes the sampler
pass, whether CUDA-graph memory is budgeted before the KV cache, and its memory-fraction rule;
plus the coefficients fitted on ``calibration/vllm_memory_startup_h100.csv`` (data set and date
recorded in the file). Nothing here computes; the estimator reads these facts.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from servewise.perfdata.errors import DataError
from servewise.perfdata.loader import read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coefficient(_Strict):
    """One number the memory model uses, and where it came from."""

    value: float
    unit: str
    how: Literal["fitted", "source", "derived"] = Field(
        description="fitted on the data set; read from an engine's source; derived from other facts")
    source: str


class BatchTier(_Strict):
    """Default batch limits on GPUs with at least ``min_memory_gib`` (first matching tier wins)."""

    min_memory_gib: float = Field(ge=0)
    exclude_names: list[str] = Field(default_factory=list, description="lowercase GPU-name substrings that "
                                     "fall through to the next tier (vLLM: a100)")
    exclude_compute_capability: list[str] = Field(default_factory=list)
    max_num_seqs: int = Field(gt=0)
    max_num_batched_tokens: int = Field(gt=0)


class VllmRules(_Strict):
    since: str
    runner: Literal["v1", "v2"] = Field(description="GPU model runner that runs the start-up profile")
    batch_defaults: list[BatchTier] = Field(min_length=1, description="API-server defaults by GPU memory")
    batched_tokens_capped_by_max_model_len: bool = Field(
        description="the default max_num_batched_tokens is capped at max_num_seqs x max_model_len")
    sampler_bytes_per_logit: Coefficient
    cuda_graph_budgeted: bool = Field(description="CUDA-graph memory profiled and subtracted before KV sizing")
    cuda_graph_sizes: Literal["v0.11", "v0.21"] = Field(
        description="v0.11: [1, 2, 4] + multiples of 8; v0.21: + multiples of 16 above 256")
    cuda_graph_max_capture: int = Field(gt=0, description="cap of 2 x max_num_seqs for the largest graph")
    kv_tokens_reported: Literal["blocks", "concurrency"] = Field(
        description="'GPU KV cache size': blocks // groups x block size, or max concurrency x max_model_len")
    hybrid_group_size: Literal["min", "max_within_1.5x"] = Field(
        description="layers per KV-cache group of a hybrid model: the smallest kind's count, or the largest "
        "when it is under 1.5 x the smallest (padding the others)")
    sources: dict[str, str]


class SglangRules(_Strict):
    since: str
    chunked_prefill_tiers: list[BatchTier] = Field(
        min_length=1, description="max_num_seqs = decode CUDA-graph max batch (TP < 4), max_num_batched_tokens "
        "= chunked_prefill_size")
    decode_graph_max_bs_tp4: list[int] = Field(description="decode CUDA-graph max batch at TP >= 4, per tier")
    reserve_base_mib: float
    reserve_per_activation_token_mib: float
    reserve_min_activation_tokens: int
    reserve_per_tp_pp_mib: float = Field(description="MiB per (tp x pp), the engine's tp x pp / 8 GiB")
    reserve_per_decode_graph_bs_mib: float
    reserve_per_prefill_graph_mib: float
    reserve_mla_prefill_graph_mib: float
    reserve_floor_mib: float = Field(description="floor of the reserve on GPUs over 60 GiB")
    swa_full_tokens_ratio: float = Field(gt=0, le=1)
    sampler_bytes_per_logit: Coefficient
    sources: dict[str, str]


class TrtllmRules(_Strict):
    since: str
    max_batch_size: int = Field(gt=0)
    max_num_tokens: int = Field(gt=0)
    sampler_bytes_per_logit: Coefficient
    sources: dict[str, str]


class Dataset(_Strict):
    file: str
    rows_fitted: list[str]
    rows_excluded: dict[str, str]
    rows_corrected: dict[str, str]
    fitted_on: str
    command: str


class MemoryCalibration(_Strict):
    dataset: Dataset
    coefficients: dict[str, Coefficient]
    vllm: list[VllmRules] = Field(min_length=1)
    sglang: list[SglangRules] = Field(min_length=1)
    trtllm: list[TrtllmRules] = Field(min_length=1)

    def coefficient(self, name: str) -> float:
        try:
            return self.coefficients[name].value
        except KeyError:
            raise DataError(f"perfdata/memory_calibration.yaml has no coefficient {name!r}") from None


def version_key(v: str) -> tuple[int, ...]:
    """'0.11.0' -> (0, 11, 0); non-numeric parts (rc1, post1) sort as 0."""
    out = []
    for part in v.replace("-", ".").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def rules_for(entries: list, version: str):
    """The entry with the greatest ``since`` <= ``version`` (the earliest entry below every ``since``)."""
    ordered = sorted(entries, key=lambda e: version_key(e.since))
    chosen = ordered[0]
    for e in ordered:
        if version_key(e.since) <= version_key(version):
            chosen = e
    return chosen


@cache
def memory_calibration() -> MemoryCalibration:
    return MemoryCalibration.model_validate(read_yaml("memory_calibration.yaml"))
