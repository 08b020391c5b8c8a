"""Assemble a bench report (measured, predicted, SLA, correction points) and save it atomically."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from servewise.estimator.user_calibration import applies
from servewise.profiles.schema import Calibration, Profile
from servewise.profiles.secrets import redact
from servewise.profiles.store import atomic_write_text
from servewise.wizard.bench.compare import calibration_from, compare_level, predictions, sla_verdict
from servewise.wizard.bench.predict import Predictor
from servewise.wizard.bench.results import BenchReport, csv_text, json_text
from servewise.wizard.bench.runner import BenchState, Settings


def default_results_path(profile_path: str) -> Path:
    """``<profile folder>/<profile stem>.bench.json`` (the CSV sits beside it)."""
    p = Path(profile_path)
    return p.with_name(p.stem + ".bench.json")


def sidecar_name(profile_path: str, results_json: Path) -> str:
    return os.path.relpath(results_json.resolve(), Path(profile_path).resolve().parent)


def build_report(profile: Profile, s: Settings, state: BenchState, predictor: Predictor, *,
                 profile_path: str | None, deployment: str | None, results_json: Path | None) -> BenchReport:
    notes = list(state.probe.notes) if state.probe else []
    levels = state.levels
    cal_applies = bool(deployment and applies(profile.calibration, deployment))
    if profile.calibration and not cal_applies:
        notes.append(f"the profile's user calibration was measured on {profile.calibration.deployment}; "
                     "predictions are shown without it")
    pairs = predictions(profile, levels, predictor, cal_applies, notes)
    comparison = [compare_level(lv, shown) for lv, (_, shown) in zip(levels, pairs)]
    short = sum(lv.short_outputs for lv in levels)
    if short:
        notes.append(f"{short} answers did not have exactly {s.osl} output tokens (the server may ignore "
                     "ignore_eos); TPOT uses the count each answer reported")
    off = [lv for lv in levels if lv.input_tokens_mean is not None
           and abs(lv.input_tokens_mean - s.isl) > max(2.0, 0.02 * s.isl)]
    if off:
        notes.append(f"prompts averaged {off[0].input_tokens_mean:g} tokens by the server's count for ISL {s.isl} "
                     f"({', '.join(lv.label for lv in off)})")
    sidecar = sidecar_name(profile_path, results_json) if profile_path and results_json else None
    source = f"servewise bench {s.url} on {date.today().isoformat()}"
    cal: Calibration | None = calibration_from(levels, [raw for raw, _ in pairs], source=source,
                                               deployment=deployment, sidecar=sidecar, isl=s.isl, osl=s.osl)
    plan = state.probe.plan if state.probe else None
    return BenchReport(url=s.url, model=s.model, api=plan.api if plan else s.api,
                       prompt=plan.kind if plan else "-", chars_per_token=plan.chars_per_token if plan else None,
                       isl=s.isl, osl=s.osl, gpus=s.gpus, profile=profile_path, levels=levels, comparison=comparison,
                       sla=sla_verdict(profile, levels) if levels else None, calibration=cal, notes=notes,
                       partial=bool(state.stopped) or len(levels) < len(s.levels), stopped=state.stopped)


def save_results(report: BenchReport, results_json: Path) -> BenchReport:
    """Write ``results_json`` and its CSV twin (each atomically); the report lists both."""
    csv_path = results_json.with_suffix(".csv")
    report = report.model_copy(update={"files": [str(results_json), str(csv_path)]})
    atomic_write_text(csv_path, redact(csv_text(report)))   # an endpoint's error text may echo a token
    atomic_write_text(results_json, redact(json_text(report)))
    return report
