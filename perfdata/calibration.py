"""Fitted performance-model coefficients (``perfdata/calibration.yaml``), loaded once.

The file holds efficiencies and overheads fitted by ``benchmarks/calibrate.py`` on named measured
data, in layers: ``global`` values, overridden per GPU ``generations`` (architecture), per
``engines`` and per ``engine x generation`` pair where the data allowed a fit of its own. It also
holds the held-out residual quantiles per segment that the uncertainty bands come from.
"""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from servewise.perfdata.loader import read_yaml

COEFFICIENTS = (
    "gemm_efficiency", "gemm_efficiency_8bit", "gemm_efficiency_4bit", "memory_efficiency", "attention_efficiency", "kv_read_efficiency", "roofline_sharpness",
    "allreduce_efficiency", "allreduce_latency_s", "alltoall_efficiency", "alltoall_latency_s",
    "step_overhead_s", "seq_overhead_s", "layer_overhead_graph_s", "layer_overhead_eager_s",
    "request_overhead_s", "requests_per_client", "prefill_group_requests", "moe_imbalance", "moe_efficiency", "mla_efficiency",
    "kv_transfer_efficiency", "kv_transfer_latency_s",
)
"""Names a layer may set (see estimator/perf.py for what each one scales)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantiles(_Strict):
    """Held-out log-residual statistics, log(measured / predicted), of one metric in one segment."""

    n: int = Field(ge=0)
    groups: int = Field(ge=0, description="held-out (model, GPU, engine, parallelism) groups behind n")
    lo: float = Field(description="lower band quantile of log(measured/predicted)")
    hi: float = Field(description="upper band quantile of log(measured/predicted)")
    median_abs_pct: float = Field(ge=0, description="median |predicted/measured - 1| in percent")


class Segment(_Strict):
    ttft: Quantiles
    tpot: Quantiles
    throughput: Quantiles
    range: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="measured span of concurrency, isl, osl, tp in the segment")


class Calibration(_Strict):
    dataset: str
    fitted: str = Field(description="date of the fit (YYYY-MM-DD)")
    method: str
    band_level: float = Field(gt=0, lt=1, description="central probability the [lo, hi] quantiles enclose")
    rows_used: int = Field(ge=0)
    global_: dict[str, float] = Field(alias="global")
    generations: dict[str, dict[str, float]] = Field(default_factory=dict)
    engines: dict[str, dict[str, float]] = Field(default_factory=dict)
    engine_generations: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="'<engine>/<generation>' -> coefficients")
    segments: dict[str, Segment] = Field(
        default_factory=dict, description="'<generation>/<engine>/<dense|moe>' -> held-out residuals")
    transfer: dict[str, Segment] = Field(
        default_factory=dict, description="residuals when a level is unseen: 'generation', 'engine', 'family'")
    notes: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def coefficients(self, generation: str, engine: str) -> dict[str, float]:
        """global <- generation <- engine <- engine/generation (later layers win)."""
        out = dict(self.global_)
        for layer in (self.generations.get(generation), self.engines.get(engine),
                      self.engine_generations.get(f"{engine}/{generation}")):
            out.update(layer or {})
        return out

    def fitted_levels(self, generation: str, engine: str) -> tuple[bool, bool]:
        """Whether data covered this GPU generation, and this engine on it."""
        return generation in self.generations, f"{engine}/{generation}" in self.engine_generations


@cache
def load_calibration() -> Calibration:
    doc = read_yaml("calibration.yaml")
    cal = Calibration.model_validate(doc)
    unknown = {k for layer in [cal.global_, *cal.generations.values(), *cal.engines.values(),
                               *cal.engine_generations.values()] for k in layer} - set(COEFFICIENTS)
    if unknown:
        raise ValueError(f"perfdata/calibration.yaml: unknown coefficients {sorted(unknown)}")
    missing = set(COEFFICIENTS) - set(cal.global_)
    if missing:
        raise ValueError(f"perfdata/calibration.yaml: global layer lacks {sorted(missing)}")
    return cal
