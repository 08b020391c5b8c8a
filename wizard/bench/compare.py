"""Measured vs predicted per level, the SLA verdict at the planned load, and correction points."""

from __future__ import annotations

from servewise.estimator.user_calibration import METRICS, PROVENANCE, correction_points
from servewise.profiles.schema import Calibration, Profile
from servewise.wizard.bench.predict import (
    NoPrediction, Prediction, Predictor, calibrated, pinned_prediction, planned_concurrency,
)
from servewise.wizard.bench.results import LevelComparison, LevelResult, MetricComparison, SlaVerdict


def is_planned(profile: Profile, lv: LevelResult) -> bool:
    rate = profile.workload.load.request_rate
    if rate is not None:
        return lv.request_rate is not None and abs(lv.request_rate - rate) <= 1e-9 * rate
    return lv.concurrency is not None and lv.concurrency == planned_concurrency(profile)


def _predict(predictor: Predictor, profile: Profile, lv: LevelResult, notes: list[str],
             why_not: dict[str, str]) -> Prediction | None:
    """The predictor's answer; a failure costs that level its prediction, never the measurement."""
    try:
        return predictor(profile, lv.concurrency, lv.request_rate)
    except NoPrediction as e:
        why_not[lv.label] = " ".join(str(e).split())[:240]
        return None
    except Exception as e:  # noqa: BLE001 - measured results outlive a failing model
        notes.append(f"{lv.label}: no prediction ({type(e).__name__}: {' '.join(str(e).split())[:160]})")
        return None


def predictions(profile: Profile, levels: list[LevelResult], predictor: Predictor, calibration_applies: bool,
                notes: list[str]) -> list[tuple[Prediction | None, Prediction | None]]:
    """(raw, shown) per level: raw is the uncalibrated prediction new factors are measured against;
    shown carries the profile's user calibration where it applies. Levels the predictor fails on
    get a line in ``notes``."""
    out: list[tuple[Prediction | None, Prediction | None]] = []
    why_not: dict[str, str] = {}
    for lv in levels:
        raw = _predict(predictor, profile, lv, notes, why_not)
        if raw is None and is_planned(profile, lv):
            raw = pinned_prediction(profile)
            e = profile.plan.estimates if profile.plan else None
            if raw is not None and e is not None and PROVENANCE in (e.provenance or ""):
                out.append((None, raw))  # pinned already calibrated: shown as is, no new factor from it
                continue
        if raw is None and lv.label in why_not:
            notes.append(f"{lv.label}: no prediction: {why_not[lv.label]}")
        shown = raw
        conc = lv.load_concurrency
        if raw is not None and calibration_applies and profile.calibration and conc:
            shown = calibrated(raw, profile.calibration, conc)
        out.append((raw, shown))
    return out


def compare_level(lv: LevelResult, pred: Prediction | None) -> LevelComparison:
    """Mean TTFT and TPOT and the output throughput against the prediction and its band."""
    rows = []
    for metric in METRICS:
        measured = lv.measured(metric)  # type: ignore[arg-type]
        predicted = pred.value(metric) if pred else None
        band = pred.band(metric) if pred else None
        err = None
        if measured is not None and predicted:
            err = round(100.0 * (measured - predicted) / predicted, 2)
        within = None if measured is None or band is None else band[0] <= measured <= band[1]
        rows.append(MetricComparison(metric=metric, measured=measured, predicted=_r(predicted),
                                     low=_r(band[0]) if band else None, high=_r(band[1]) if band else None,
                                     error_pct=err, within_band=within))
    return LevelComparison(label=lv.label, concurrency=lv.load_concurrency, source=pred.source if pred else None,
                           metrics=rows)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def planned_load_text(profile: Profile) -> str:
    rate = profile.workload.load.request_rate
    if rate is not None:
        return f"request rate {rate:g}/s"
    c = planned_concurrency(profile)
    return f"concurrency {c}" if c else "the planned load"


def sla_verdict(profile: Profile, levels: list[LevelResult]) -> SlaVerdict:
    """Does the chosen statistic of TTFT and TPOT stay within the SLA at the planned load?"""
    sla = profile.sla
    load = planned_load_text(profile)
    base = dict(load=load, percentile=sla.percentile, ttft_target_ms=sla.ttft_ms, tpot_target_ms=sla.tpot_ms)
    lv = next((x for x in levels if is_planned(profile, x)), None)
    if sla.ttft_ms is None and sla.tpot_ms is None:
        return SlaVerdict(level=lv.label if lv else None, met=None, message="the profile sets no SLA", **base)
    if lv is None or lv.ttft_ms is None or lv.tpot_ms is None:
        why = "not measured" if lv is None else "measured without a successful request"
        return SlaVerdict(level=lv.label if lv else None, met=None,
                          message=f"SLA not checked: the planned load ({load}) was {why}", **base)
    ttft = getattr(lv.ttft_ms, sla.percentile)
    tpot = getattr(lv.tpot_ms, sla.percentile)
    parts, met = [], True
    for name, value, target in (("TTFT", ttft, sla.ttft_ms), ("TPOT", tpot, sla.tpot_ms)):
        if target is None:
            continue
        ok = value <= target
        met = met and ok
        parts.append(f"{name} {sla.percentile} {value:.1f} ms {'<=' if ok else '>'} {target:g} ms")
    errs = f" ({lv.failed} of {lv.requests} requests failed)" if lv.failed else ""
    msg = f"SLA {'met' if met else 'MISSED'} at {load}: {', '.join(parts)}{errs}"
    return SlaVerdict(level=lv.label, met=met, ttft_measured_ms=round(ttft, 3), tpot_measured_ms=round(tpot, 3),
                      message=msg, **base)


def calibration_from(levels: list[LevelResult], raws: list[Prediction | None], *, source: str,
                     deployment: str | None, sidecar: str | None, isl: int, osl: int) -> Calibration | None:
    """Correction points (measured mean / raw prediction) at every level with both figures."""
    pairs = [(m, lv.load_concurrency, lv.measured(m), raw.value(m))  # type: ignore[arg-type]
             for lv, raw in zip(levels, raws) if raw is not None and lv.completed for m in METRICS]
    points = correction_points(pairs)  # type: ignore[arg-type]
    if not points:
        return None
    return Calibration(source=source, points=points, sidecar=sidecar, deployment=deployment, isl=isl, osl=osl)
