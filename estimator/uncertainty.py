"""Uncertainty bands and provenance of performance estimates.

A band is ``[value x exp(lo), value x exp(hi)]`` where ``lo``/``hi`` are quantiles of
log(measured / predicted) on held-out measurement groups of the estimate's segment (GPU generation x
engine x dense/MoE; ``perfdata/calibration.yaml``). Where the estimate leaves the data the band widens:

- engine without data on this GPU generation: the leave-one-engine-out residuals (``transfer.engine``);
- GPU generation without any data: the leave-one-generation-out residuals (``transfer.generation``:
  Hopper predicted from Blackwell's fit and the reverse), widened by ``UNSEEN_GENERATION`` on each side
  because older or consumer GPUs (Ampere, Ada) differ more from the fitted ones than those two do from
  each other (an assumption: no data exists to measure it);
- model family (dense / MoE) without data: widened by ``UNSEEN_FAMILY`` on each side (assumed);
- a workload outside the measured range of the segment (concurrency, input or output length): widened
  by ``PER_DECADE`` per decade beyond the range (assumed), and ``pp > 1`` (never measured) by ``UNSEEN_PP``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from servewise.perfdata.calibration import Calibration, Quantiles, load_calibration

UNSEEN_GENERATION = math.log(1.5)
UNSEEN_FAMILY = math.log(1.6)
UNSEEN_PP = math.log(1.3)
PER_DECADE = math.log(1.5)
FALLBACK = Quantiles(n=0, groups=0, lo=-math.log(2.0), hi=math.log(2.0), median_abs_pct=100.0)
Metric = str  # "ttft" | "tpot" | "throughput"


@dataclass(frozen=True)
class Coverage:
    """Where an estimate stands relative to the calibration data, and what that does to its band."""

    segment: str
    quantiles: dict[str, Quantiles]
    widen: float = 0.0                       # extra log-width added on both sides
    reasons: list[str] = field(default_factory=list)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)   # measured spans behind the band

    fitted: bool = True                      # the segment itself has held-out measurements

    @property
    def provenance(self) -> str:
        q = self.quantiles["tpot"]
        if self.fitted and q.n:
            base = (f"servewise performance model, calibrated on {self.segment} ({q.n} held-out rows, "
                    f"{q.groups} groups)")
        else:
            base = f"servewise performance model, no measurements for {self.segment}"
        return base + ("; " + "; ".join(self.reasons) if self.reasons else "")


def coverage(generation: str, engine: str, family: str, cal: Calibration | None = None,
             beyond: list[tuple[str, float]] | None = None) -> Coverage:
    """The band basis for (generation, engine, family) plus widening for ``beyond``: (reason, decades)."""
    cal = cal or load_calibration()
    key = f"{generation}/{engine}/{family}"
    seg = cal.segments.get(key)
    reasons: list[str] = []
    widen = 0.0
    ranges = _union([seg] if seg is not None else list(cal.segments.values()))
    if seg is not None:
        qs = {"ttft": seg.ttft, "tpot": seg.tpot, "throughput": seg.throughput}
        return _beyond(Coverage(key, qs, ranges=ranges), beyond)
    same_gen = [s for k, s in cal.segments.items() if k.startswith(generation + "/")]
    same_engine = [s for k, s in cal.segments.items() if k.startswith(f"{generation}/{engine}/")]
    family_on_gen = any(k.startswith(generation + "/") and k.endswith("/" + family) for k in cal.segments)
    if same_engine:
        qs = _widest(same_engine)
        widen += UNSEEN_FAMILY
        reasons.append(f"no {family} models measured with {engine} on {generation}: band of its other models, "
                       f"widened (assumed x{math.exp(UNSEEN_FAMILY):.1f})")
    elif same_gen:
        t = cal.transfer.get("engine")
        qs = _widest([t] if t else same_gen)
        reasons.append(f"no {engine} measurements on {generation} GPUs: band from leave-one-engine-out fits")
        if not family_on_gen:
            widen += UNSEEN_FAMILY
            reasons.append(f"no {family} models measured on {generation}: band widened (assumed x"
                           f"{math.exp(UNSEEN_FAMILY):.1f})")
    else:
        t = cal.transfer.get("generation") or cal.transfer.get("engine")
        qs = _widest([t] if t else list(cal.segments.values()))
        widen += UNSEEN_GENERATION
        reasons.append(f"no measurements on {generation} GPUs: efficiencies transferred from "
                       f"{', '.join(sorted(cal.generations)) or 'priors'}; band from leave-one-generation-out "
                       f"fits, widened (assumed x{math.exp(UNSEEN_GENERATION):.1f})")
        if not any(k.endswith("/" + family) for k in cal.segments):
            widen += UNSEEN_FAMILY
    return _beyond(Coverage(key, qs, widen, reasons, ranges, fitted=False), beyond)


def _union(segs) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for s in segs:
        for k, (lo, hi) in s.range.items():
            a, b = out.get(k, (lo, hi))
            out[k] = (min(a, lo), max(b, hi))
    return out


def outside_decades(cov: Coverage, **values) -> np.ndarray:
    """Decades by which workload values (arrays: concurrency=, isl=, osl=) leave the measured span."""
    total = 0.0
    for name, v in values.items():
        if name not in cov.ranges:
            continue
        lo, hi = cov.ranges[name]
        v = np.maximum(np.asarray(v, dtype=np.float64), 1e-9)
        total = total + np.maximum(np.log10(v / hi), 0.0) + np.maximum(np.log10(lo / v), 0.0)
    return np.asarray(total)


def widening(cov: Coverage, pp=1, **values) -> np.ndarray:
    """Extra log-width (array) for workloads beyond the data and pipeline parallelism (never measured)."""
    return PER_DECADE * outside_decades(cov, **values) + np.where(np.asarray(pp) > 1, UNSEEN_PP, 0.0)


def _widest(segs) -> dict[str, Quantiles]:
    out = {}
    for m in ("ttft", "tpot", "throughput"):
        qs = [getattr(s, m) for s in segs if getattr(s, m).n]
        if not qs:
            out[m] = FALLBACK
            continue
        out[m] = Quantiles(n=sum(q.n for q in qs), groups=sum(q.groups for q in qs), lo=min(q.lo for q in qs),
                           hi=max(q.hi for q in qs), median_abs_pct=max(q.median_abs_pct for q in qs))
    return out


def _beyond(cov: Coverage, beyond: list[tuple[str, float]] | None) -> Coverage:
    widen, reasons = cov.widen, list(cov.reasons)
    for reason, decades in beyond or []:
        if decades > 0:
            widen += PER_DECADE * decades if reason != "pp" else UNSEEN_PP
            reasons.append("pipeline parallel never measured: band widened" if reason == "pp"
                           else f"{reason} beyond the measured range: band widened")
    return Coverage(cov.segment, cov.quantiles, widen, reasons, cov.ranges, cov.fitted)


def band(value, cov: Coverage, metric: Metric, extra=0.0) -> tuple[np.ndarray, np.ndarray]:
    """[low, high] of ``value`` (array) for ``metric``: value x exp(quantile -/+ widening), with ``extra``
    (array, e.g. from ``widening``) added to the coverage's own widening."""
    q = cov.quantiles[metric]
    v = np.asarray(value, dtype=np.float64)
    w = cov.widen + np.asarray(extra, dtype=np.float64)
    return v * np.exp(min(q.lo, 0.0) - w), v * np.exp(max(q.hi, 0.0) + w)


def band_inverse(value, cov: Coverage, metric: Metric, extra=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Band of a quantity inversely proportional to ``metric`` (tokens/s/user from TPOT)."""
    lo, hi = band(1.0, cov, metric, extra)
    v = np.asarray(value, dtype=np.float64)
    return v / hi, v / lo
