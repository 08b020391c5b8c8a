"""User calibration: correction factors measured on one deployment (``servewise bench --calibrate``).

A point is ``factor = measured / predicted`` for one metric at one concurrency. Between
measured concurrencies the factor is interpolated linearly in log(concurrency); outside
them it is held at the nearest measured point (and the estimate says so). Several points
per metric follow a miss that changes with load, which one constant factor cannot.
A profile without calibration, or whose calibration was measured on another deployment,
is estimated exactly as before.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from servewise.estimator.results import Estimate, PerfEstimate
from servewise.profiles.schema import AggPlan, Calibration, CorrectionPoint, DisaggPlan, Profile, Worker

METRICS = ("ttft", "tpot", "output_tokens_per_s")
MAX_FACTOR = 1000.0  # the schema's bound on a stored factor
PROVENANCE = "user calibration"


def correction_points(pairs: Iterable[tuple[str, float, float | None, float | None]]) -> list[CorrectionPoint]:
    """Points from (metric, concurrency, measured, predicted) tuples: factor = measured / predicted.

    Pairs without both figures, or with a ratio outside (0, 1000], give no point; repeated
    (metric, concurrency) pairs are merged by their geometric mean.
    """
    logs: dict[tuple[str, float], list[float]] = defaultdict(list)
    for metric, conc, measured, predicted in pairs:
        if metric not in METRICS or measured is None or predicted is None or not conc or conc <= 0:
            continue
        if not (math.isfinite(measured) and math.isfinite(predicted)) or measured <= 0 or predicted <= 0:
            continue
        f = measured / predicted
        if f <= MAX_FACTOR:
            logs[(metric, round(float(conc), 6))].append(math.log(f))
    return [CorrectionPoint(metric=m, concurrency=c, factor=round(math.exp(sum(v) / len(v)), 6))
            for (m, c), v in sorted(logs.items(), key=lambda kv: (METRICS.index(kv[0][0]), kv[0][1]))]


def factor_at(points: Iterable[CorrectionPoint], metric: str, concurrency):
    """The correction of ``metric`` at ``concurrency`` (scalar or numpy array); None without points.

    f(c) = interp(log c; log c_i, f_i), flat beyond the first and last measured c_i.
    """
    pts = sorted((p.concurrency, p.factor) for p in points if p.metric == metric)
    if not pts:
        return None
    xs = np.log([c for c, _ in pts])
    fs = np.asarray([f for _, f in pts])
    out = np.interp(np.log(np.maximum(np.asarray(concurrency, dtype=float), 1e-12)), xs, fs)
    return float(out) if np.ndim(out) == 0 else out


def calibrate_perf(perf: PerfEstimate, points: list[CorrectionPoint], concurrency: float,
                   open_loop: bool = False) -> PerfEstimate:
    """``perf`` with each metric (value and band) scaled by its factor at ``concurrency``.

    Derived figures follow their metric: tokens/s/user = 1 / TPOT, per-GPU throughput and
    requests/s scale with output tokens/s. ``open_loop`` (a request rate): throughput is the offered
    rate, which no factor changes; only the latencies are corrected.
    """
    upd: dict[str, object] = {}
    f = factor_at(points, "ttft", concurrency)
    if f is not None:
        upd.update(ttft_ms=perf.ttft_ms * f, ttft_ms_range=_scaled(perf.ttft_ms_range, f))
    f = factor_at(points, "tpot", concurrency)
    if f is not None:
        upd.update(tpot_ms=perf.tpot_ms * f, tpot_ms_range=_scaled(perf.tpot_ms_range, f),
                   tokens_per_s_per_user=perf.tokens_per_s_per_user / f,
                   tokens_per_s_per_user_range=_scaled(perf.tokens_per_s_per_user_range, 1.0 / f))
    f = None if open_loop else factor_at(points, "output_tokens_per_s", concurrency)
    if f is not None:
        upd.update(output_tokens_per_s=perf.output_tokens_per_s * f,
                   output_tokens_per_s_range=_scaled(perf.output_tokens_per_s_range, f),
                   output_tokens_per_s_per_gpu=perf.output_tokens_per_s_per_gpu * f,
                   output_tokens_per_s_per_gpu_range=_scaled(perf.output_tokens_per_s_per_gpu_range, f),
                   requests_per_s=perf.requests_per_s * f, requests_per_s_range=_scaled(perf.requests_per_s_range, f))
    if not upd:
        return perf
    # the same precision as the model's own figures (3 decimals), so pinned profiles diff cleanly
    upd = {k: (round(v, 3) if isinstance(v, float) else tuple(round(x, 3) for x in v)) for k, v in upd.items()}
    upd["provenance"] = f"{perf.provenance} + {PROVENANCE}" if perf.provenance else PROVENANCE
    return perf.model_copy(update=upd)


def _scaled(band: tuple[float, float], f: float) -> tuple[float, float]:
    lo, hi = band[0] * f, band[1] * f
    return (min(lo, hi), max(lo, hi))


def _worker(w: Worker) -> str:
    return (f"tp{w.tp} pp{w.pp} dp{w.dp} ep{w.ep}{' adp' if w.attention_dp else ''} x{w.workers} "
            f"seqs {w.max_num_seqs} tokens {w.max_num_batched_tokens}{f' on {w.gpu}' if w.gpu else ''}")


def deployment_of(profile: Profile, engine_version: str, plan: AggPlan | DisaggPlan) -> str:
    """A readable description of what a calibration was measured on: model, weights and KV
    dtypes, GPU, engine and version, and the plan's layout and batch limits."""
    m = profile.model
    layout = f"agg {plan.replicas} x [{_worker(plan.worker)}]" if isinstance(plan, AggPlan) else \
        f"disagg {plan.replicas} x [prefill {_worker(plan.prefill)} | decode {_worker(plan.decode)}]"
    return (f"{m.id} {m.weights_dtype}/kv {m.kv_cache_dtype} on {profile.hardware.gpu_id}, "
            f"{profile.engine.name} {engine_version}, {layout}")


def load_concurrency(profile: Profile, perf: PerfEstimate) -> float:
    """The concurrency to look factors up at: the offered one (closed loop), else the model's own."""
    return float(profile.workload.load.concurrency or perf.concurrency)


def applies(calibration: Calibration | None, deployment: str) -> bool:
    return bool(calibration and calibration.points and calibration.deployment in (None, deployment))


def apply_to_estimate(est: Estimate, profile: Profile, engine_version: str) -> Estimate:
    """``est`` with the profile's user calibration applied to its performance (provenance
    "user calibration"); unchanged when there is none, no perf, or another deployment was measured."""
    cal = profile.calibration
    if cal is None or not cal.points or est.perf is None:
        return est
    here = deployment_of(profile, engine_version, est.plan)
    if not applies(cal, here):
        return est.model_copy(update={"assumptions": [*est.assumptions, (
            f"{PROVENANCE} not applied: measured on {cal.deployment}, estimating {here}")]})
    conc = load_concurrency(profile, est.perf)
    perf = calibrate_perf(est.perf, cal.points, conc, open_loop=profile.workload.load.request_rate is not None)
    measured = sorted({p.concurrency for p in cal.points})
    notes = [f"{PROVENANCE} ({cal.source}): factors measured at concurrency "
             f"{', '.join(f'{c:g}' for c in measured)}, interpolated in log concurrency"]
    if conc < measured[0] or conc > measured[-1]:
        notes.append(f"{PROVENANCE}: concurrency {conc:g} is outside the measured {measured[0]:g}-{measured[-1]:g};"
                     " the nearest point's factors are used unchanged")
    wl = profile.workload
    if (cal.isl, cal.osl) != (None, None) and (cal.isl, cal.osl) != (wl.isl, wl.osl):
        notes.append(f"{PROVENANCE} was measured at ISL {cal.isl} / OSL {cal.osl}; this workload is "
                     f"{wl.isl} / {wl.osl}")
    return est.model_copy(update={"perf": perf, "assumptions": [*est.assumptions, *notes],
                                  "provenance": {**est.provenance, "perf": perf.provenance,
                                                 "calibration": f"{PROVENANCE}: {cal.source}"}})
