"""The bench result document (``--json`` and the saved JSON), and its CSV view."""

from __future__ import annotations

import csv
import io
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from servewise.profiles.schema import Calibration

SCHEMA = "servewise-bench/1"
Metric = Literal["ttft", "tpot", "output_tokens_per_s"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stat(_Out):
    mean: float
    p50: float
    p90: float
    p99: float
    n: int


class LevelResult(_Out):
    """One load level: a concurrency (closed loop) or a request rate (Poisson)."""

    concurrency: int | None = None
    request_rate: float | None = None
    requests: int = Field(description="measured requests sent (warm-up excluded)")
    completed: int
    failed: int
    errors: dict[str, int] = Field(default_factory=dict, description="failed measured requests by kind")
    warmup_requests: int = 0
    warmup_failed: int = 0
    warmup_errors: dict[str, int] = Field(default_factory=dict)
    error_examples: list[str] = Field(default_factory=list)
    stopped: str | None = Field(default=None, description="why the level ended early")
    duration_s: float | None = None
    ttft_ms: Stat | None = None
    tpot_ms: Stat | None = None
    itl_ms: Stat | None = None
    e2e_ms: Stat | None = None
    output_tokens_per_s: float | None = None
    output_tokens_per_s_per_gpu: float | None = None
    requests_per_s: float | None = None
    mean_in_flight: float | None = None
    input_tokens_mean: float | None = None
    output_tokens_mean: float | None = None
    short_outputs: int = Field(default=0, description="answers whose token count differs from OSL")

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency is not None else f"{self.request_rate:g}/s"

    @property
    def load_concurrency(self) -> float | None:
        """The concurrency the level ran at: set (closed loop) or measured (open loop)."""
        return float(self.concurrency) if self.concurrency is not None else self.mean_in_flight

    def measured(self, metric: Metric, statistic: str = "mean") -> float | None:
        if metric == "output_tokens_per_s":
            return self.output_tokens_per_s
        s = self.ttft_ms if metric == "ttft" else self.tpot_ms
        return None if s is None else getattr(s, statistic)


class MetricComparison(_Out):
    metric: Metric
    measured: float | None
    predicted: float | None
    low: float | None = None
    high: float | None = None
    error_pct: float | None = Field(default=None, description="(measured - predicted) / predicted")
    within_band: bool | None = None


class LevelComparison(_Out):
    label: str
    concurrency: float | None
    source: str | None = Field(description="where the prediction came from; null: none at this level")
    metrics: list[MetricComparison]

    def get(self, metric: Metric) -> MetricComparison:
        return next(m for m in self.metrics if m.metric == metric)


class SlaVerdict(_Out):
    load: str
    level: str | None = Field(description="the measured level at the planned load; null: not measured")
    percentile: str
    ttft_target_ms: float | None = None
    ttft_measured_ms: float | None = None
    tpot_target_ms: float | None = None
    tpot_measured_ms: float | None = None
    met: bool | None
    message: str


class BenchReport(_Out):
    schema_: str = Field(default=SCHEMA, alias="schema")
    url: str
    model: str
    api: str
    prompt: str = Field(description="token_ids or text")
    chars_per_token: float | None = None
    isl: int
    osl: int
    gpus: int
    profile: str | None = None
    levels: list[LevelResult] = Field(default_factory=list)
    comparison: list[LevelComparison] = Field(default_factory=list)
    sla: SlaVerdict | None = None
    calibration: Calibration | None = Field(default=None, description="the correction points measured "
                                            "(written into the profile with --calibrate)")
    calibrated: bool = False
    notes: list[str] = Field(default_factory=list)
    partial: bool = False
    stopped: str | None = None
    files: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def dump(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def failed(self) -> int:
        return sum(lv.failed + lv.warmup_failed for lv in self.levels)


_STATS = ("mean", "p50", "p90", "p99")


def csv_text(report: BenchReport) -> str:
    """One row per level: the measured figures, then each metric's prediction, band and error."""
    heads = ["concurrency", "request_rate", "requests", "completed", "failed", "errors", "duration_s"]
    for m in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        heads += [f"{m}_{s}" for s in _STATS]
    heads += ["output_tokens_per_s", "output_tokens_per_s_per_gpu", "requests_per_s", "mean_in_flight",
              "input_tokens_mean", "output_tokens_mean", "short_outputs", "prediction_source"]
    for m in ("ttft", "tpot", "output_tokens_per_s"):
        heads += [f"predicted_{m}", f"predicted_{m}_low", f"predicted_{m}_high", f"{m}_error_pct"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(heads)
    comps = {c.label: c for c in report.comparison}
    for lv in report.levels:
        row: list[object] = [lv.concurrency, lv.request_rate, lv.requests, lv.completed, lv.failed,
                             ";".join(f"{k}:{v}" for k, v in lv.errors.items()), lv.duration_s]
        for s in (lv.ttft_ms, lv.tpot_ms, lv.itl_ms, lv.e2e_ms):
            row += [getattr(s, k) if s else None for k in _STATS]
        row += [lv.output_tokens_per_s, lv.output_tokens_per_s_per_gpu, lv.requests_per_s, lv.mean_in_flight,
                lv.input_tokens_mean, lv.output_tokens_mean, lv.short_outputs]
        c = comps.get(lv.label)
        row.append(c.source if c else None)
        for m in ("ttft", "tpot", "output_tokens_per_s"):
            mc = c.get(m) if c else None  # type: ignore[arg-type]
            row += [mc.predicted, mc.low, mc.high, mc.error_pct] if mc else [None] * 4
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def json_text(report: BenchReport) -> str:
    return json.dumps(report.dump(), indent=2, ensure_ascii=False) + "\n"
