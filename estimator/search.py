"""The SLA search: every candidate configuration of a mode evaluated as numpy arrays in one pass, then
masked (memory, load, SLA) and ranked by the objective.

The evaluation (``search_agg.evaluate_agg``, ``search_disagg.evaluate_disagg``) does not depend on the
SLA targets, so ``select`` can re-apply other targets to the same arrays: the advice's "relax TPOT to
X ms" is checked by re-running the selection, not by a second model.

**Load** (``workload.load``), explicit in the result:

- ``concurrency C``: closed loop; a candidate of ``r`` replicas runs ``C / r`` clients per replica and must
  admit all of them (batch limit and KV cache hold its share: nothing waits outside the engine);
- ``request_rate R``: open loop; a candidate must sustain ``R / r`` requests/s per replica (a finite
  steady state);
- ``max_throughput``: offline; replicas fill the GPUs and the per-rank batch is swept.

**SLA statistic** (``sla.percentile``): the performance model predicts the mean over requests, with a
band that is the central ``band_level`` interval of its held-out errors (``uncertainty``,
``perfdata/calibration.yaml``; 90%, so its high end is their 95th percentile). ``mean`` and ``p50``
compare the point estimate (fixed-length requests in a steady state: the median request is at or below
the mean, which the closed-loop first wave skews upward). ``p90`` and ``p99`` compare the value the
measured figure stays under in 90% / 99% of held-out cases, read off the band assuming log-normal
errors: ``value x (high / value) ^ (z_p / z_high)`` with ``z_high`` the normal quantile of the band's
high end (``percentile_exponent``). This stands in for a per-request percentile: the model has no
request-to-request spread of its own beyond the closed loop's first wave.

**Objective** (``search.objective``): output tokens/s per GPU over the GPUs a candidate is charged for
(``search_space.charged_gpus``: the GPUs it uses under a concurrency or a rate; the whole budget at max
throughput, stranded GPUs included), tokens/s per user (1 / TPOT), or cost per million output tokens
(the per-GPU objective priced). Ties go to fewer GPUs; a memory fraction other than the engine's default
must gain at least ``FRACTION_PREFERENCE`` to be chosen over it; then the candidate with the most latency
headroom (``_slack``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from servewise.estimator.context import Context

PERCENTILE_PROBABILITY = {"mean": None, "p50": None, "p90": 0.90, "p99": 0.99}
FRACTION_PREFERENCE = 0.01
METRIC_COLUMNS = ("ttft", "ttft_lo", "ttft_hi", "tpot", "tpot_lo", "tpot_hi", "thr", "thr_lo", "thr_hi", "rps",
                  "conc", "gpus", "charged")


@dataclass(frozen=True)
class Sla:
    ttft_s: float | None = None
    tpot_s: float | None = None
    percentile: str = "mean"

    @classmethod
    def of(cls, ctx: Context) -> Sla:
        s = ctx.profile.sla
        return cls(None if s.ttft_ms is None else s.ttft_ms / 1e3, None if s.tpot_ms is None else s.tpot_ms / 1e3,
                   s.percentile)

    def relaxed(self, ttft_s: float | None = None, tpot_s: float | None = None) -> Sla:
        return Sla(ttft_s if ttft_s is not None else self.ttft_s, tpot_s if tpot_s is not None else self.tpot_s,
                   self.percentile)


@dataclass(frozen=True)
class LoadSpec:
    kind: str                 # concurrency | request_rate | max_throughput
    value: float | None

    @classmethod
    def of(cls, ctx: Context) -> LoadSpec:
        ld = ctx.profile.workload.load
        if ld.request_rate is not None:
            return cls("request_rate", float(ld.request_rate))
        if ld.max_throughput:
            return cls("max_throughput", None)
        return cls("concurrency", float(ld.concurrency or 1))


@dataclass(frozen=True)
class SearchOptions:
    """Knobs of the search itself (the tests widen them to compare against a plain loop)."""

    fraction: float | None = None     # the user's memory fraction; None: the engine default and offsets
    prefill_keep: int = 12            # disaggregated: prefill configurations kept after the screen
    decode_keep: int = 8              # disaggregated: decode configurations kept after the screen
    batches_keep: int = 24            # disaggregated max-throughput: decode batches kept per decode config
    max_workers: int = 16             # disaggregated: most prefill / decode workers in one xPyD system


@dataclass
class Table:
    """One mode's evaluated candidates: 1-D columns of equal length (module docstring of each evaluator)."""

    mode: str
    cols: dict[str, np.ndarray]
    provenance: str = ""
    evaluated: int = 0                # grid points whose performance was computed
    screened: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cols["ok"])

    def __getitem__(self, key: str) -> np.ndarray:
        return self.cols[key]


@dataclass
class Ranked:
    """The selection over one table: statistics at the SLA percentile, masks, score and order."""

    table: Table
    ttft_stat: np.ndarray
    tpot_stat: np.ndarray
    ttft_ok: np.ndarray
    tpot_ok: np.ndarray
    meets: np.ndarray
    score: np.ndarray
    per_gpu: np.ndarray               # output tokens/s per charged GPU
    order: np.ndarray                 # indices of ``ok`` points: SLA-meeting first, each group by rank

    @property
    def best(self) -> int | None:
        if not len(self.order) or not self.meets[self.order[0]]:
            return None
        return int(self.order[0])


def percentile_exponent(percentile: str, band_level: float | None = None) -> float:
    """k in ``value x (high / value) ^ k``: 0 for mean and p50; z_p / z_((1 + band_level) / 2) for p90 and
    p99 (the band's high end is the (1 + band_level) / 2 quantile of the held-out errors)."""
    p = PERCENTILE_PROBABILITY[percentile]
    if p is None:
        return 0.0
    from statistics import NormalDist

    from servewise.perfdata.calibration import load_calibration

    level = band_level if band_level is not None else load_calibration().band_level
    z = NormalDist().inv_cdf
    return z(p) / z((1.0 + level) / 2.0)


def at_percentile(value: np.ndarray, high: np.ndarray, percentile: str) -> np.ndarray:
    """The SLA statistic from a point estimate and its band's high end (module docstring)."""
    k = percentile_exponent(percentile)
    if k == 0.0:
        return value
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(value > 0, high / value, 1.0)
    return value * np.maximum(ratio, 1.0) ** k


def objective_values(t: Table, objective: str) -> tuple[np.ndarray, np.ndarray]:
    """(score to maximise, tokens/s per charged GPU)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per_gpu = np.where(t["charged"] > 0, t["thr"] / t["charged"], 0.0)
        if objective == "tokens_per_s_per_user":
            return np.where(t["tpot"] > 0, 1.0 / t["tpot"], 0.0), per_gpu
    return per_gpu, per_gpu


def select(t: Table, sla: Sla, objective: str) -> Ranked:
    """Mask and rank one table under ``sla`` (cheap: no model evaluation)."""
    ttft_stat = at_percentile(t["ttft"], t["ttft_hi"], sla.percentile)
    tpot_stat = at_percentile(t["tpot"], t["tpot_hi"], sla.percentile)
    ok = t["ok"]
    ttft_ok = ok & np.isfinite(ttft_stat) & ((ttft_stat <= sla.ttft_s) if sla.ttft_s is not None else True)
    tpot_ok = ok & np.isfinite(tpot_stat) & ((tpot_stat <= sla.tpot_s) if sla.tpot_s is not None else True)
    meets = ttft_ok & tpot_ok
    score, per_gpu = objective_values(t, objective)
    pref = np.where(t["frac_default"], 1.0, 1.0 - FRACTION_PREFERENCE)
    key = np.round(score * pref, 9)
    slack = _slack(ttft_stat, tpot_stat, sla)
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((idx, slack[idx], t["charged"][idx], -key[idx], ~meets[idx]))]
    return Ranked(t, ttft_stat, tpot_stat, ttft_ok, tpot_ok, meets, score, per_gpu, order)


def _slack(ttft_stat: np.ndarray, tpot_stat: np.ndarray, sla: Sla) -> np.ndarray:
    """The last tie-break: how close to the targets a candidate runs (the larger of statistic / target),
    or its TPOT without targets. Under a request rate every candidate that sustains it has the same
    throughput, so among equal GPU counts the one with the most latency headroom wins."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if sla.ttft_s is None and sla.tpot_s is None:
            return np.nan_to_num(tpot_stat, nan=np.inf)
        worst = np.zeros_like(ttft_stat)
        if sla.ttft_s is not None:
            worst = np.maximum(worst, ttft_stat / sla.ttft_s)
        if sla.tpot_s is not None:
            worst = np.maximum(worst, tpot_stat / sla.tpot_s)
    return np.nan_to_num(worst, nan=np.inf)


def shape_key(t: Table) -> np.ndarray:
    """One integer per candidate naming its shape (layouts, worker and replica counts), so listings can
    show the best variant (budget, batch, fraction) of each shape once."""
    names = ("tp", "pp", "dp", "ep", "replicas") if t.mode == "agg" else (
        "p_tp", "p_pp", "p_dp", "p_ep", "p_workers", "d_tp", "d_pp", "d_dp", "d_ep", "d_workers", "replicas")
    key = np.zeros(len(t), dtype=np.int64)
    for n in names:
        key = key * 1031 + t[n].astype(np.int64)
    return key


def first_per_shape(r: Ranked, indices: np.ndarray, limit: int) -> list[int]:
    """The first of each shape among ``indices`` (kept in their order), at most ``limit``."""
    indices = np.asarray(indices, dtype=np.int64)
    if not len(indices):
        return []
    _, first = np.unique(shape_key(r.table)[indices], return_index=True)
    return [int(i) for i in indices[np.sort(first)][:limit]]


def distinct_best(r: Ranked, limit: int, meeting: bool = True) -> list[int]:
    """Up to ``limit`` indices in rank order, the best of each shape, SLA-meeting (or missing) only."""
    return first_per_shape(r, r.order[r.meets[r.order] == meeting], limit)


def shortfall(r: Ranked, sla: Sla) -> np.ndarray:
    """How far each candidate misses the SLA: the largest ratio statistic / target (1 = on target)."""
    worst = np.ones(len(r.table))
    with np.errstate(divide="ignore", invalid="ignore"):
        if sla.ttft_s is not None:
            worst = np.maximum(worst, r.ttft_stat / sla.ttft_s)
        if sla.tpot_s is not None:
            worst = np.maximum(worst, r.tpot_stat / sla.tpot_s)
    return np.where(r.table["ok"], np.nan_to_num(worst, nan=math.inf), math.inf)


def empty_table(mode: str, extra: tuple[str, ...] = ()) -> Table:
    cols = {c: np.zeros(0) for c in (*METRIC_COLUMNS, *extra)}
    cols["ok"] = np.zeros(0, dtype=bool)
    cols["frac_default"] = np.zeros(0, dtype=bool)
    return Table(mode, cols)


@dataclass
class SearchOutcome:
    tables: dict[str, Table]
    ranked: dict[str, Ranked]
    sla: Sla
    load: LoadSpec
    objective: str
    notes: list[str] = field(default_factory=list)

    def reselect(self, sla: Sla) -> SearchOutcome:
        return SearchOutcome(self.tables, {m: select(t, sla, self.objective) for m, t in self.tables.items()},
                             sla, self.load, self.objective, self.notes)

    @property
    def feasible(self) -> bool:
        return any(r.best is not None for r in self.ranked.values())


def run_search(ctx: Context, opts: SearchOptions | None = None, sla: Sla | None = None) -> SearchOutcome:
    """Evaluate every searched mode and rank it (``profile.search.modes``)."""
    from servewise.estimator.search_agg import evaluate_agg
    from servewise.estimator.search_disagg import disagg_unavailable, evaluate_disagg

    opts = opts or SearchOptions()
    sla = sla or Sla.of(ctx)
    load = LoadSpec.of(ctx)
    objective = ctx.profile.search.objective
    tables: dict[str, Table] = {}
    notes: list[str] = []
    for mode in ctx.profile.search.modes:
        if mode == "agg":
            tables["agg"] = evaluate_agg(ctx, load, opts)
        else:
            why = disagg_unavailable(ctx)
            if why:
                notes.append(f"disaggregated not searched: {why}")
                continue
            tables["disagg"] = evaluate_disagg(ctx, load, sla, opts)
    ranked = {m: select(t, sla, objective) for m, t in tables.items()}
    return SearchOutcome(tables, ranked, sla, load, objective, notes)
