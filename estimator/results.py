"""Result types of ``estimate`` and ``plan`` (serialised as the CLI's --json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from servewise.profiles.schema import AggPlan, DisaggPlan, Worker

Band = tuple[float, float]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Overflow(_Out):
    """Which term does not fit, and by how much."""

    term: str
    bytes: int
    message: str


class MemoryEstimate(_Out):
    """Per GPU of one worker, in bytes (keys: ARCHITECTURE.md section 3; formulas: estimator/budget.py)."""

    weights_bytes: int
    kv_cache_bytes: int = Field(description="what the engine's rule leaves for the KV cache (0 when the other "
                                            "terms exceed the budget; overflow.bytes says by how much)")
    activation_bytes: int = Field(description="peak transient memory of the engine's start-up profile")
    cuda_graph_bytes: int
    other_bytes: int = Field(description="non-torch memory: CUDA context growth, NCCL / all-reduce buffers")
    total_bytes: int = Field(description="everything the engine holds on the GPU")
    budget_bytes: int = Field(description="the memory the engine's fraction grants (TRT-LLM: what it uses)")
    gpu_memory_bytes: int
    memory_fraction: float
    memory_fraction_of: Literal["total", "free_after_weights"]
    budget_rule: str = Field(description="how this engine version sizes the KV cache")
    cuda_graph_in_budget: bool = Field(description="CUDA graphs subtracted before KV sizing (else outside)")
    activation_forward_bytes: int
    activation_sampler_bytes: int
    max_num_seqs: int = Field(description="batch limit the activation term was sized with")
    max_num_batched_tokens: int
    weights_by_module: dict[str, int] = Field(default_factory=dict)
    kv_bytes_per_token: float = Field(description="one token over every attention layer of the stage")
    kv_bytes_per_token_per_layer: float
    kv_layers: dict[str, int] = Field(default_factory=dict, description="cache layers by kind (full, sliding, "
                                      "linear) on the most loaded stage")
    state_bytes_per_seq: float = Field(default=0.0, description="linear-attention state one sequence holds")
    sliding_window: int | None = None
    block_size_tokens: int
    kv_cache_blocks: int
    kv_cache_tokens: int = Field(description="the engine's KV size in tokens, floored to whole blocks")
    max_concurrency: float = Field(description="requests of max_model_len tokens that fit at once")
    max_concurrency_at_workload: float | None = Field(default=None, description="KV tokens / (isl + osl)")
    max_context_tokens: int = Field(description="longest single request the KV cache holds")
    estimated_max_model_len: int | None = Field(default=None, description="vLLM-style suggestion when one "
                                                "max_model_len request does not fit")
    headroom_bytes: int = Field(description="GPU memory left after everything the engine holds")
    feasible: bool
    overflow: Overflow | None = None


class PerfEstimate(_Out):
    ttft_ms: float
    ttft_ms_range: Band
    tpot_ms: float
    tpot_ms_range: Band
    output_tokens_per_s: float
    output_tokens_per_s_range: Band
    output_tokens_per_s_per_gpu: float
    output_tokens_per_s_per_gpu_range: Band
    tokens_per_s_per_user: float
    tokens_per_s_per_user_range: Band
    requests_per_s: float
    requests_per_s_range: Band
    concurrency: float
    concurrency_range: Band | None = Field(default=None, description="requests in the system: the load itself in "
                                           "a closed loop; rate x (TTFT + (osl-1) TPOT) at a request rate")
    kv_transfer_ms: float | None = None
    dominant_terms: list[str] = Field(default_factory=list)
    provenance: str = ""


class RolePerf(_Out):
    """One role of a disaggregated system: its share of the latency and how busy its pool is."""

    role: Literal["prefill", "decode"]
    ttft_ms: float | None = Field(default=None, description="prefill: queueing + own prompt; decode: first step")
    ttft_ms_range: Band | None = None
    tpot_ms: float | None = None
    tpot_ms_range: Band | None = None
    kv_transfer_ms: float | None = None
    capacity_requests_per_s: float = Field(description="requests/s the pool sustains when busy")
    requests_per_s: float
    utilization: float
    batch: float | None = Field(default=None, description="decode: sequences per DP rank")
    step_ms: float = Field(description="a prefill step (prompt chunk) / a decode step")
    dominant_terms: list[str] = Field(default_factory=list)


class RoleEstimate(_Out):
    worker: Worker
    gpu: str
    memory: MemoryEstimate
    perf: RolePerf | None = None


class SlaInfo(_Out):
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    percentile: Literal["mean", "p50", "p90", "p99"] = "mean"
    statistic: str = Field(description="how the percentile is taken from the estimate and its band")


class Estimate(_Out):
    """One fixed configuration: memory breakdown + performance."""

    feasible: bool
    reason: str | None = None
    mode: Literal["agg", "disagg"]
    model: str
    gpu: str
    engine: str
    engine_version: str
    gpus: int
    max_model_len: int
    plan: AggPlan | DisaggPlan
    memory: MemoryEstimate | None = None
    roles: dict[str, RoleEstimate] | None = None
    perf: PerfEstimate | None = None
    sla: SlaInfo | None = Field(default=None, description="the targets judged; null without targets")
    meets_sla: bool | None = Field(default=None, description="the SLA's targets met by the statistics below "
                                   "(as plan judges a candidate); null without targets or performance")
    ttft_ms_at_percentile: float | None = Field(default=None, description="TTFT statistic the SLA compares")
    tpot_ms_at_percentile: float | None = Field(default=None, description="TPOT statistic the SLA compares")
    cost_per_million_tokens_usd: float | None = Field(default=None, description="with a GPU-hour price: "
                                                      "price x gpus / output tokens per hour x 1e6")
    assumptions: list[str] = Field(default_factory=list)
    provenance: dict[str, str] = Field(default_factory=dict)


class Candidate(_Out):
    """One configuration the search evaluated."""

    mode: Literal["agg", "disagg"]
    plan: AggPlan | DisaggPlan
    gpus_used: int
    meets_sla: bool
    perf: PerfEstimate | None = None
    score: float = Field(description="the objective's value (output tokens/s per GPU: over gpus_charged)")
    gpus_charged: int | None = Field(default=None, description="GPUs the deployment ties up: the nodes it "
                                     "touches, whole (max throughput: the whole budget); stranded GPUs counted")
    stranded_gpus: int | None = Field(default=None, description="gpus_charged - gpus_used")
    ttft_ms_at_percentile: float | None = Field(default=None, description="TTFT statistic the SLA compares")
    tpot_ms_at_percentile: float | None = Field(default=None, description="TPOT statistic the SLA compares")
    output_tokens_per_s_per_gpu_charged: float | None = None
    output_tokens_per_s_per_gpu_charged_range: Band | None = None
    cost_per_million_tokens_usd: float | None = Field(default=None, description="with a GPU-hour price: "
                                                      "price x gpus_charged / output tokens per hour x 1e6")
    cost_per_million_tokens_usd_range: Band | None = None
    kv_cache_tokens: int | None = Field(default=None, description="KV-cache tokens per rank (decode for disagg)")
    weights_bytes: int | None = Field(default=None, description="weights per GPU (decode for disagg)")
    kv_cache_bytes: int | None = Field(default=None, description="KV-cache bytes per GPU (decode for disagg)")


class Advice(_Out):
    kind: Literal["relax_ttft", "relax_tpot", "relax_sla", "more_gpus", "quantize_weights", "quantize_kv",
                  "shorter_context", "other"]
    message: str
    value: int | float | str | None = None
    change: dict[str, int | float | str] = Field(default_factory=dict, description="the input changes, by "
                                                 "profile field, that a re-run of the search confirmed")
    best: Candidate | None = Field(default=None, description="what the re-run chose")


class LoadInfo(_Out):
    """Which load the candidates were sized for (search.LoadSpec)."""

    kind: Literal["concurrency", "request_rate", "max_throughput"]
    value: float | None = None
    meaning: str


class Comparison(_Out):
    """Best aggregated against best disaggregated on the objective."""

    winner: Literal["agg", "disagg"] | None = None
    ratio: float | None = Field(default=None, description="disaggregated / aggregated objective")
    close_call: bool = False
    agg_range: Band | None = None
    disagg_range: Band | None = None


class SearchStats(_Out):
    grid: dict[str, int] = Field(default_factory=dict, description="grid points per mode (after screens)")
    evaluated: dict[str, int] = Field(default_factory=dict, description="points whose performance was computed")
    meeting_sla: dict[str, int] = Field(default_factory=dict)
    screens: dict[str, dict[str, int]] = Field(default_factory=dict)
    pareto_size: int = 0
    notes: list[str] = Field(default_factory=list)


class PlanResult(_Out):
    feasible: bool
    reason: str | None = None
    model: str
    gpu: str
    engine: str
    engine_version: str
    gpus: int
    max_model_len: int
    objective: str
    load: LoadInfo | None = None
    sla: SlaInfo | None = None
    gpu_hour_usd: float | None = None
    chosen: Candidate | None = None
    best: dict[str, Candidate | None] = Field(default_factory=dict)
    candidates: dict[str, list[Candidate]] = Field(default_factory=dict)
    pareto: list[Candidate] = Field(default_factory=list)
    verdict: str | None = None
    comparison: Comparison | None = None
    advice: list[Advice] = Field(default_factory=list)
    chosen_estimate: Estimate | None = None
    search: SearchStats | None = None
    assumptions: list[str] = Field(default_factory=list)
