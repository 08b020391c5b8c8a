"""What the plan predicts at each measured load: the seam between bench and the estimator.

A ``Predictor`` maps (profile, concurrency, request rate) to the *uncalibrated* prediction
at that load; the default asks ``estimate()`` for the profile's pinned plan with its
workload load replaced. Where the model has no performance figures, the plan's pinned
estimates stand in at the planned load. The profile's user calibration, where it applies,
is laid over the raw prediction for display; new correction factors are always measured
against the raw one, so calibrating twice does not compound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from servewise.estimator.results import PerfEstimate
from servewise.estimator.user_calibration import PROVENANCE, factor_at
from servewise.profiles.schema import AggPlan, Calibration, Profile

Band = tuple[float, float]


@dataclass(frozen=True)
class Prediction:
    source: str
    ttft_ms: float | None = None
    ttft_ms_range: Band | None = None
    tpot_ms: float | None = None
    tpot_ms_range: Band | None = None
    output_tokens_per_s: float | None = None
    output_tokens_per_s_range: Band | None = None

    def value(self, metric: str) -> float | None:
        return getattr(self, _FIELD[metric])

    def band(self, metric: str) -> Band | None:
        return getattr(self, _FIELD[metric] + "_range")


_FIELD = {"ttft": "ttft_ms", "tpot": "tpot_ms", "output_tokens_per_s": "output_tokens_per_s"}
Predictor = Callable[[Profile, "int | None", "float | None"], "Prediction | None"]


def from_perf(perf: PerfEstimate, source: str) -> Prediction:
    return Prediction(source, perf.ttft_ms, tuple(perf.ttft_ms_range), perf.tpot_ms, tuple(perf.tpot_ms_range),
                      perf.output_tokens_per_s, tuple(perf.output_tokens_per_s_range))


def at_load(profile: Profile, concurrency: int | None, request_rate: float | None) -> Profile:
    """``profile`` at another load, without user calibration (the raw model's view)."""
    load = {"concurrency": concurrency, "request_rate": request_rate, "max_throughput": None}
    workload = profile.workload.model_copy(update={"load": profile.workload.load.model_copy(update=load)})
    return profile.model_copy(update={"workload": workload, "calibration": None})


class NoPrediction(Exception):
    """The model gives no figures at this load; the message says why (e.g. a rate the plan cannot sustain)."""


def model_predictor(profile: Profile, concurrency: int | None, request_rate: float | None) -> Prediction | None:
    """The performance model's prediction at a load (None without a pinned plan; :class:`NoPrediction`
    with the estimate's reason when the model has no figures at this load)."""
    from servewise.estimator import estimate

    if profile.plan is None:
        return None
    est = estimate(at_load(profile, concurrency, request_rate))
    if est.perf is None:
        raise NoPrediction(est.reason or "the performance model has no figures for this configuration")
    return from_perf(est.perf, est.perf.provenance or "servewise model")


def pinned_prediction(profile: Profile) -> Prediction | None:
    """The figures pinned with the plan (``plan.estimates``), valid at the planned load only."""
    e = profile.plan.estimates if profile.plan else None
    if e is None or (e.ttft_ms is None and e.tpot_ms is None and e.output_tokens_per_s is None):
        return None

    def band(b: list[float] | None) -> Band | None:
        return None if b is None else (b[0], b[1])

    return Prediction("pinned plan estimates", e.ttft_ms, band(e.ttft_ms_range), e.tpot_ms, band(e.tpot_ms_range),
                      e.output_tokens_per_s, band(e.output_tokens_per_s_range))


def calibrated(pred: Prediction, calibration: Calibration, concurrency: float) -> Prediction:
    """``pred`` with the correction factors at ``concurrency`` applied (value and band)."""
    upd: dict[str, object] = {}
    for metric, name in _FIELD.items():
        f = factor_at(calibration.points, metric, concurrency)
        v = getattr(pred, name)
        if f is None or v is None:
            continue
        upd[name] = v * f
        b = getattr(pred, name + "_range")
        upd[name + "_range"] = None if b is None else (b[0] * f, b[1] * f)
    if not upd:
        return pred
    return replace(pred, source=f"{pred.source} + {PROVENANCE}", **upd)  # type: ignore[arg-type]


def planned_concurrency(profile: Profile) -> int | None:
    """The concurrency the plan was made for: the workload's, or for max throughput the batch
    the plan's estimates (or, failing those, its batch limits) hold."""
    load = profile.workload.load
    if load.concurrency is not None:
        return load.concurrency
    if load.request_rate is not None:
        return None
    p = profile.plan
    if p is None:
        return None
    if p.estimates and p.estimates.concurrency:
        return max(1, round(p.estimates.concurrency))
    w = p.worker if isinstance(p, AggPlan) else p.decode
    return w.max_num_seqs * w.dp * w.workers * p.replicas
