"""User calibration: correction points, log-concurrency interpolation, and the estimate hook."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servewise.estimator import estimate
from servewise.estimator.results import PerfEstimate
from servewise.estimator.user_calibration import (
    apply_to_estimate,
    calibrate_perf,
    correction_points,
    deployment_of,
    factor_at,
)
from servewise.profiles import load_profile, parse_profile, profile_from_dict
from servewise.profiles.schema import Calibration, CorrectionPoint
from tests.bench_support import write_profile


def _pts(metric, pairs):
    return [CorrectionPoint(metric=metric, concurrency=c, factor=f) for c, f in pairs]


def _perf(**kw) -> PerfEstimate:
    base = dict(ttft_ms=100.0, ttft_ms_range=(80.0, 130.0), tpot_ms=10.0, tpot_ms_range=(9.0, 12.0),
                output_tokens_per_s=400.0, output_tokens_per_s_range=(350.0, 450.0),
                output_tokens_per_s_per_gpu=200.0, output_tokens_per_s_per_gpu_range=(175.0, 225.0),
                tokens_per_s_per_user=100.0, tokens_per_s_per_user_range=(83.3, 111.1), requests_per_s=2.0,
                requests_per_s_range=(1.75, 2.25), concurrency=8.0, provenance="servewise performance model")
    return PerfEstimate(**{**base, **kw})


def test_factor_is_exact_at_points_linear_in_log_concurrency_between_and_flat_outside():
    pts = _pts("tpot", [(1, 2.0), (4, 1.0), (16, 1.5)])
    assert factor_at(pts, "tpot", 1) == pytest.approx(2.0)
    assert factor_at(pts, "tpot", 4) == pytest.approx(1.0)
    assert factor_at(pts, "tpot", 2) == pytest.approx(1.5)        # log2(2) is halfway from log 1 to log 4
    assert factor_at(pts, "tpot", 8) == pytest.approx(1.25)
    assert factor_at(pts, "tpot", 0.5) == pytest.approx(2.0)      # held flat below the first point
    assert factor_at(pts, "tpot", 64) == pytest.approx(1.5)       # and above the last
    assert factor_at(pts, "ttft", 4) is None                      # no points for that metric
    arr = factor_at(pts, "tpot", np.array([1.0, 2.0, 4.0, 100.0]))
    assert isinstance(arr, np.ndarray) and arr.tolist() == pytest.approx([2.0, 1.5, 1.0, 1.5])


def test_correction_points_are_measured_over_predicted_and_skip_what_cannot_be_a_factor():
    pts = correction_points([("ttft", 1, 200.0, 100.0), ("tpot", 1, 20.0, 10.0), ("tpot", 1, 45.0, 10.0),
                             ("ttft", 2, None, 100.0), ("ttft", 4, 1.0, 0.0), ("ttft", 8, math.inf, 1.0),
                             ("ttft", 16, 1e6, 1.0), ("tpot", 0, 1.0, 1.0), ("bogus", 1, 1.0, 1.0)])
    assert [(p.metric, p.concurrency, p.factor) for p in pts] == [
        ("ttft", 1.0, 2.0), ("tpot", 1.0, pytest.approx(3.0))]  # two tpot points at c=1: geometric mean


def test_calibrate_perf_scales_values_bands_and_derived_figures():
    cal = _pts("ttft", [(8, 2.0)]) + _pts("tpot", [(8, 1.25)]) + _pts("output_tokens_per_s", [(8, 0.5)])
    p = calibrate_perf(_perf(), cal, 8)
    assert (p.ttft_ms, p.ttft_ms_range) == (200.0, (160.0, 260.0))
    assert (p.tpot_ms, p.tpot_ms_range) == (12.5, (11.25, 15.0))
    assert p.tokens_per_s_per_user == pytest.approx(80.0)
    assert p.output_tokens_per_s == 200.0 and p.output_tokens_per_s_per_gpu == 100.0
    assert p.requests_per_s == 1.0 and p.requests_per_s_range == (0.875, 1.125)
    assert p.provenance == "servewise performance model + user calibration"
    assert calibrate_perf(_perf(), [], 8) == _perf()


@pytest.fixture
def profile(tmp_path):
    return load_profile(write_profile(tmp_path / "p.yaml", concurrency=4, isl=1024, osl=64))


def _with_calibration(profile, **kw):
    doc = profile.model_dump(mode="json")
    doc["calibration"] = Calibration(**{"source": "servewise bench http://x on 2026-11-30", **kw}).model_dump(
        mode="json")
    return profile_from_dict(doc)


def test_a_profile_without_calibration_estimates_exactly_as_before(profile):
    est = estimate(profile)
    assert est.perf is not None
    assert apply_to_estimate(est, profile, est.engine_version) is est
    other = _with_calibration(profile, points=_pts("ttft", [(4, 3.0)]), deployment="another deployment")
    e2 = estimate(other)
    assert e2.perf == est.perf and e2.provenance == est.provenance
    assert any("user calibration not applied: measured on another deployment" in a for a in e2.assumptions)


def test_estimate_applies_the_profiles_calibration_with_provenance(profile):
    raw = estimate(profile).perf
    dep = deployment_of(profile, estimate(profile).engine_version, profile.plan)
    cal = _with_calibration(profile, points=_pts("ttft", [(1, 1.5), (16, 3.0)]) + _pts("tpot", [(4, 2.0)]),
                            deployment=dep, isl=2048, osl=64)
    est = estimate(cal)
    f = 1.5 + 1.5 * math.log(4) / math.log(16)  # concurrency 4 between the points at 1 and 16
    assert est.perf.ttft_ms == pytest.approx(raw.ttft_ms * f)
    assert est.perf.tpot_ms == pytest.approx(raw.tpot_ms * 2.0)
    assert est.perf.output_tokens_per_s == raw.output_tokens_per_s  # no throughput point: unchanged
    assert est.perf.provenance.endswith("+ user calibration")
    assert est.provenance["calibration"] == "user calibration: servewise bench http://x on 2026-11-30"
    notes = [a for a in est.assumptions if a.startswith("user calibration")]
    assert any("measured at concurrency 1, 4, 16" in n for n in notes)
    assert any("ISL 2048 / OSL 64; this workload is 1024 / 64" in n for n in notes)


def test_at_a_request_rate_the_calibration_corrects_latencies_not_the_offered_rate(tmp_path):
    """A throughput factor measured in a closed loop cannot make a system serve more (or fewer) requests
    than arrive: at 0.5 requests/s the calibrated estimate still completes 0.5 requests/s."""
    rated = load_profile(write_profile(tmp_path / "r.yaml", isl=1024, osl=64, load={"request_rate": 0.5}))
    raw = estimate(rated).perf
    dep = deployment_of(rated, estimate(rated).engine_version, rated.plan)
    pts = _pts("output_tokens_per_s", [(1, 0.5), (16, 0.5)]) + _pts("tpot", [(1, 2.0), (16, 2.0)])
    est = estimate(_with_calibration(rated, points=pts, deployment=dep))
    assert est.perf.requests_per_s == pytest.approx(0.5, rel=1e-3) == raw.requests_per_s
    assert est.perf.output_tokens_per_s == raw.output_tokens_per_s
    assert est.perf.tpot_ms == pytest.approx(raw.tpot_ms * 2.0, rel=1e-3)


def test_outside_the_measured_concurrencies_the_estimate_says_so(profile):
    dep = deployment_of(profile, estimate(profile).engine_version, profile.plan)
    est = estimate(_with_calibration(profile, points=_pts("tpot", [(1, 2.0), (2, 1.5)]), deployment=dep))
    assert any("concurrency 4 is outside the measured 1-2" in a for a in est.assumptions)


def test_calibration_fields_round_trip_through_yaml(profile, tmp_path):
    from servewise.profiles import dump_profile

    cal = _with_calibration(profile, points=_pts("tpot", [(2, 1.1)]), sidecar="p.bench.json", deployment="d",
                            isl=1024, osl=64)
    again = parse_profile(dump_profile(cal))
    assert again == cal and again.calibration.isl == 1024


def test_plan_shows_and_pins_the_calibrated_figures_of_the_calibrated_deployment(tmp_path):
    """`plan --profile P` for a calibrated P: the chosen configuration is the measured deployment, so
    its calibrated figures are printed and `--save` pins them; a calibration of another deployment
    is reported as not applied and the pinned figures stay the model's."""
    from servewise.profiles import dump_profile
    from tests.conftest import ROOT, run_cli

    path = ROOT / "profiles" / "examples" / "llama-3.1-8b-1xl4-vllm.yaml"   # replays without drift
    base = load_profile(path)
    dep = deployment_of(base, base.engine.version, base.plan)
    cal_path, other_path = tmp_path / "cal.yaml", tmp_path / "other.yaml"
    cal_path.write_text(dump_profile(_with_calibration(base, points=_pts("ttft", [(8, 2.0)]), deployment=dep)))
    other_path.write_text(dump_profile(_with_calibration(base, points=_pts("ttft", [(8, 2.0)]), deployment="d")))
    raw = estimate(base).perf.ttft_ms

    r = run_cli("plan", "--profile", str(cal_path), "--save", str(tmp_path / "cal-saved.yaml"))
    assert r.code == 0, r.err
    line = next(ln for ln in r.out.splitlines() if ln.startswith("user calibration: servewise bench http://x"))
    assert f"TTFT {2 * raw:,.0f} (" in line
    saved = load_profile(tmp_path / "cal-saved.yaml")
    assert saved.plan.estimates.ttft_ms == pytest.approx(2 * raw)
    assert saved.plan.estimates.provenance.endswith("+ user calibration") and saved.calibration is not None

    r = run_cli("plan", "--profile", str(other_path), "--save", str(tmp_path / "other-saved.yaml"))
    assert r.code == 0, r.err
    assert "user calibration not applied: measured on d, estimating" in r.out
    assert load_profile(tmp_path / "other-saved.yaml").plan.estimates.ttft_ms == pytest.approx(raw)
