"""Aggregated candidates: worker layout x replicas x batch limit x step budget x memory fraction, one
``budget.memory_terms`` call and one ``performance.agg_grid`` call over the whole grid.

Per load (``search.LoadSpec``):

- concurrency ``C``: replicas ``r`` from 1 to the GPUs (and to ``C``), each worker's ``max_num_seqs`` is
  its share ``ceil(C / (r x dp))``; the candidate serves the load when nothing queues outside the engine;
- request rate ``R``: ``R / r`` each, at the engine's default batch limit, for the replica counts around
  what the rate needs (``search_space.rate_replicas``); the candidate sustains the rate when the model
  finds a steady state (finite TTFT);
- max throughput: replicas fill the GPUs; ``max_num_seqs`` sweeps ``search_space.BATCH_GRID`` up to what
  the KV cache holds, and the batch runs full.
"""

from __future__ import annotations

import numpy as np

from servewise.estimator import budget as membudget
from servewise.estimator.context import Context
from servewise.estimator.performance import agg_grid
from servewise.estimator.search import LoadSpec, SearchOptions, Table, empty_table
from servewise.estimator.search_space import (
    BATCH_GRID, budgets, charged_gpus, default_fraction, engine_defaults_by_tp, fractions, layouts, rate_replicas,
)
from servewise.estimator.serving import kv_capacity_requests

AGG_COLUMNS = ("tp", "pp", "dp", "ep", "replicas", "seqs", "budget", "fraction", "kv_tokens", "weights_bytes",
               "kv_cache_bytes")


def _replicas(rmax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, replicas 1..rmax[row]) flattened over rows."""
    rmax = np.maximum(rmax, 0)
    li = np.repeat(np.arange(len(rmax)), rmax)
    starts = np.repeat(np.cumsum(rmax) - rmax, rmax)
    return li, np.arange(len(li)) - starts + 1


def worker_capacity_rps(ctx: Context, lay) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Requests/s one worker of each layout sustains at most: its max-throughput steady state at the
    engine's default batch limit, step budget and memory fraction (0 where it does not fit)."""
    seqs, tokens = engine_defaults_by_tp(ctx, lay.tp)
    frac = default_fraction(ctx, lay.tp, lay.pp, tokens, seqs)
    mem = membudget.memory_terms(ctx, lay.tp, lay.pp, lay.ep, lay.dp, seqs, tokens, frac)
    kv = np.asarray(mem.kv_cache_tokens, dtype=np.float64)
    g = agg_grid(ctx, lay.tp, lay.pp, lay.dp, lay.ep, max_num_batched_tokens=tokens, max_num_seqs=seqs,
                 fraction=frac, kv_tokens=np.maximum(kv, 1.0), max_throughput=True)
    return np.where(np.asarray(mem.feasible), np.broadcast_to(g.requests_per_s, kv.shape), 0.0)


def agg_rows(ctx: Context, load: LoadSpec, opts: SearchOptions) -> dict[str, np.ndarray]:
    """The flattened aggregated grid (before any model call)."""
    hw = ctx.hardware
    total = hw.total_gpus
    lay = layouts(ctx, hw.gpu, hw.gpus_per_node, total)
    g = lay.gpus
    n = hw.gpus_per_node
    # replicas that pack: whole workers per node, a worker wider than a node on whole nodes of its own
    packed = np.where(g <= n, hw.nodes * (n // g), np.where(g % n == 0, hw.nodes // np.maximum(g // n, 1), 0))
    if load.kind == "max_throughput":
        li = np.repeat(np.arange(len(lay)), len(BATCH_GRID))
        reps = packed[li]
        seqs = np.tile(BATCH_GRID, len(lay))
    else:
        rmin, rmax = np.ones_like(packed), packed
        if load.kind == "concurrency":
            rmax = np.minimum(rmax, int(load.value // 1))
        else:
            rmin, rmax = rate_replicas(load.value, worker_capacity_rps(ctx, lay), rmax)
        li, reps = _replicas(rmax - rmin + 1)
        reps = reps + rmin[li] - 1
        L = lay.take(li)
        if load.kind == "concurrency":
            seqs = np.ceil(load.value / (reps * L.dp)).astype(np.int64)
        else:
            seqs = engine_defaults_by_tp(ctx, L.tp)[0]
    L = lay.take(li)
    B = budgets(ctx)
    col = lambda x: np.asarray(x)[:, None, None]  # noqa: E731
    base = default_fraction(ctx, col(L.tp), col(L.pp), B[None, :, None], col(seqs))[..., 0]
    f = fractions(base, opts.fraction)
    shape = f.shape
    out = {k: np.broadcast_to(col(v), shape).ravel() for k, v in
           (("tp", L.tp), ("pp", L.pp), ("dp", L.dp), ("ep", L.ep), ("replicas", reps), ("seqs", seqs))}
    out["budget"] = np.broadcast_to(B[None, :, None], shape).ravel()
    out["fraction"] = f.ravel()
    out["frac_default"] = np.isclose(f, base[..., None]).ravel()
    keep = out["budget"] >= out["seqs"]             # engines refuse a step budget below the batch limit
    keep &= out["replicas"] >= 1
    if load.kind == "concurrency":
        keep &= out["replicas"] * out["dp"] <= max(load.value, 1.0)
    return {k: v[keep] for k, v in out.items()}


def evaluate_agg(ctx: Context, load: LoadSpec, opts: SearchOptions) -> Table:
    """Every aggregated candidate's memory and performance (module docstring)."""
    rows = agg_rows(ctx, load, opts)
    n = len(rows["tp"])
    if n == 0:
        return empty_table("agg", AGG_COLUMNS)
    hw, wl = ctx.hardware, ctx.profile.workload
    mem = membudget.memory_terms(ctx, rows["tp"], rows["pp"], rows["ep"], rows["dp"], rows["seqs"], rows["budget"],
                                 rows["fraction"])
    kv = np.asarray(mem.kv_cache_tokens, dtype=np.float64)
    cap = kv_capacity_requests(ctx.engine.serving, kv, wl.isl, wl.osl)
    ok = np.asarray(mem.feasible) & (kv >= wl.isl + wl.osl)
    if load.kind == "max_throughput":
        ok &= rows["seqs"] <= cap                   # larger limits than the KV cache holds add nothing
    cols = {k: v for k, v in rows.items()}
    cols.update(kv_tokens=kv, weights_bytes=np.asarray(mem.weights_bytes, dtype=np.float64),
                kv_cache_bytes=np.asarray(mem.kv_cache_bytes, dtype=np.float64))
    for c in ("ttft", "ttft_lo", "ttft_hi", "tpot", "tpot_lo", "tpot_hi", "thr", "thr_lo", "thr_hi", "rps", "conc"):
        cols[c] = np.full(n, np.nan)
    idx = np.flatnonzero(ok)
    provenance = ""
    if len(idx):
        s = {k: v[idx] for k, v in rows.items()}
        r = s["replicas"].astype(np.float64)
        if load.kind == "concurrency":
            kw = {"concurrency": load.value / r}
        elif load.kind == "request_rate":
            kw = {"request_rate": load.value / r}
        else:
            kw = {"max_throughput": True}
        gr = agg_grid(ctx, s["tp"], s["pp"], s["dp"], s["ep"], max_num_batched_tokens=s["budget"],
                      max_num_seqs=s["seqs"], fraction=s["fraction"], kv_tokens=kv[idx], **kw)
        pt = gr.point
        provenance = gr.coverage.provenance
        vals = {"ttft": gr.ttft_s, "ttft_lo": gr.ttft_band_s[0], "ttft_hi": gr.ttft_band_s[1], "tpot": gr.tpot_s,
                "tpot_lo": gr.tpot_band_s[0], "tpot_hi": gr.tpot_band_s[1], "thr": gr.output_tokens_per_s * r,
                "thr_lo": gr.output_tokens_per_s_band[0] * r, "thr_hi": gr.output_tokens_per_s_band[1] * r,
                "rps": gr.requests_per_s * r}
        if load.kind == "request_rate":     # in the system, by Little's law (as disaggregated candidates)
            e2e = np.where(np.isfinite(gr.ttft_s), gr.ttft_s + (wl.osl - 1) * gr.tpot_s, np.nan)
            vals["conc"] = vals["rps"] * e2e
        else:
            vals["conc"] = pt.concurrency * s["dp"] * r
        for c, v in vals.items():
            cols[c][idx] = np.broadcast_to(v, idx.shape)
        if load.kind == "concurrency":
            ok[idx] &= np.broadcast_to(pt.queued, idx.shape) <= 1e-9
        ok[idx] &= np.isfinite(cols["ttft"][idx]) & (cols["thr"][idx] > 0)
    used = rows["tp"] * rows["pp"] * rows["dp"] * rows["replicas"]
    cols["gpus"] = used.astype(np.float64)
    cols["charged"] = charged_gpus(used, hw.total_gpus, load)
    cols["ok"] = ok
    return Table("agg", cols, provenance, evaluated=len(idx), screened={"grid": n, "memory_feasible": len(idx)})
