"""Disaggregated candidates: xPyD systems (``x`` prefill workers, ``y`` decode workers) and their replicas
within the GPU budget, evaluated with ``performance.disagg_grid``.

The full product (prefill layout x decode layout x x x y x replicas x budgets x fractions) is too large
to evaluate whole on big budgets, so two cheap screens come first, each one broadcast call:

1. **prefill**: every prefill layout x step budget alone (one worker, one client): its own prompt
   latency and its prompt capacity per GPU. Rows whose latency cannot meet the TTFT target are dropped
   (unless none can: then the nearest stay, for the near misses and the advice); of the rest the Pareto
   front of (latency, capacity per GPU) and the best by capacity are kept (``SearchOptions.prefill_keep``).
2. **decode**: every decode layout x memory fraction x batch with the batch full and prefill not limiting:
   its TPOT and decode capacity per GPU. Rows whose TPOT misses the target are dropped (unless all do);
   per layout and fraction the best capacity per GPU ranks them; the front of (TPOT at its smallest batch, capacity) and
   the best are kept (``decode_keep``).

Then every kept prefill x kept decode x worker counts (``x * prefill GPUs + y * decode GPUs`` within the
budget, each up to ``max_workers``) x replicas of the system is evaluated in one call, under the load:
concurrency ``C`` split over replicas (decode ``max_num_seqs = ceil(C / (R y dp))``), a request rate
``R`` (replica counts around what it needs and pools neither idle nor saturated, from the screens'
capacities, ``search_space.rate_replicas`` and ``POOL_UTILIZATION``; the closed loop's concurrency found
by the same fixed point ``estimate`` uses), or max throughput (the
most replicas that pack; the decode batch is one of the screen's).
"""

from __future__ import annotations

import numpy as np

from servewise.estimator import budget as membudget
from servewise.estimator.context import Context
from servewise.estimator.pareto import pareto_mask
from servewise.estimator.performance import disagg_grid
from servewise.estimator.search import LoadSpec, SearchOptions, Sla, Table, empty_table, percentile_exponent
from servewise.estimator.search_space import (
    BATCH_GRID, budgets, charged_gpus, default_fraction, engine_defaults_by_tp, fractions, layouts, most_replicas,
    nodes_needed, rate_replicas,
    prefill_gpu,
)
from servewise.estimator.serving import kv_capacity_requests

ROLE_COLUMNS = ("tp", "pp", "dp", "ep", "workers", "seqs", "budget", "fraction")
DISAGG_COLUMNS = tuple(f"{r}_{c}" for r in ("p", "d") for c in ROLE_COLUMNS) + (
    "replicas", "kv_tokens", "weights_bytes", "kv_cache_bytes", "kv_transfer")
# Under a request rate, each pool's utilisation (rate / its capacity from the screens) kept: a pool busy
# less than a quarter of the time spends GPUs the objective counts for nothing; past 3x the screens
# capacity the rate is not sustained (the margin covers their approximation).
POOL_UTILIZATION = (0.25, 3.0)
BIG_PREFILL_POOL = 1.0e4       # prefill workers assumed in the decode screen, so prefill never limits it


def disagg_unavailable(ctx: Context) -> str | None:
    if not ctx.engine.disaggregation:
        return f"{ctx.engine_name} {ctx.engine.version} has no disaggregated serving"
    if ctx.hardware.total_gpus < 2:
        return "it needs at least 2 GPUs"
    return None


def _stat(value, high, k: float):
    if k == 0.0:
        return value
    with np.errstate(divide="ignore", invalid="ignore"):
        return value * np.maximum(np.where(value > 0, high / value, 1.0), 1.0) ** k


def _req(ctx: Context, gpu):
    return membudget.MemoryRequest.from_context(ctx, gpu=None if gpu is ctx.hardware.gpu else gpu)


def _keep(front_x: np.ndarray, front_y: np.ndarray, rank: np.ndarray, limit: int) -> np.ndarray:
    """Indices (into the given arrays) of the Pareto front of (low x, high y) and the best by ``rank``,
    at most ``limit``: the best by rank first, then front points spread along it."""
    if len(rank) == 0:
        return np.zeros(0, dtype=np.int64)
    by_rank = np.argsort(-rank, kind="stable")
    front = np.flatnonzero(pareto_mask(-front_x, front_y))
    front = front[np.argsort(front_x[front], kind="stable")]
    if len(front) > limit:
        front = front[np.unique(np.linspace(0, len(front) - 1, limit).round().astype(int))]
    out: list[int] = []
    for i in [*by_rank[:1], *front, *by_rank[1:]]:
        if int(i) not in out:
            out.append(int(i))
        if len(out) >= limit:
            break
    return np.array(out, dtype=np.int64)


def _flat(*arrays):
    b = np.broadcast_arrays(*arrays)
    return [x.ravel() for x in b]


def screen_prefill(ctx: Context, sla: Sla, opts: SearchOptions, ref_decode: dict) -> dict[str, np.ndarray]:
    wl = ctx.profile.workload
    gpu = prefill_gpu(ctx)
    per_node = gpu.gpus_per_node if gpu is not ctx.hardware.gpu else ctx.hardware.gpus_per_node
    lay = layouts(ctx, gpu, per_node, ctx.hardware.total_gpus - 1)
    B = budgets(ctx, prefill_only=True)
    li, bi = _flat(np.arange(len(lay))[:, None], np.arange(len(B))[None, :])
    L, Bp = lay.take(li), B[bi]
    seqs = np.maximum(Bp // wl.isl, 1)
    f = default_fraction(ctx, L.tp, L.pp, Bp, seqs, gpu=gpu)
    mem = membudget.memory_terms(_req(ctx, gpu), L.tp, L.pp, L.ep, L.dp, seqs, Bp, f)
    ok = np.asarray(mem.feasible)
    rows = dict(tp=L.tp, pp=L.pp, dp=L.dp, ep=L.ep, seqs=seqs, budget=Bp, fraction=f)
    rows = {k: v[ok] for k, v in rows.items()}
    if not len(rows["tp"]):
        return rows
    d = ref_decode
    g = disagg_grid(ctx, (rows["tp"], rows["pp"], rows["dp"], rows["ep"]), (d["tp"], d["pp"], d["dp"], d["ep"]), 1, 1,
                    concurrency=1.0, prefill_budget=rows["budget"], prefill_max_seqs=rows["seqs"],
                    decode_budget=d["budget"], decode_max_seqs=d["seqs"], fraction=d["fraction"],
                    prefill_gpu_id=gpu.id, decode_gpu_id=ctx.hardware.gpu.id, decode_kv_tokens=d["kv"])
    pt = g.point
    lat = np.broadcast_to(pt.prefill_s, rows["tp"].shape)
    hi = lat * np.broadcast_to(g.ttft_band_s[1] / np.maximum(g.ttft_s, 1e-30), lat.shape)
    lat_stat = _stat(lat, hi, percentile_exponent(sla.percentile))
    cap = np.broadcast_to(pt.prefill_capacity_rps, lat.shape) / (rows["tp"] * rows["pp"] * rows["dp"])
    good = np.isfinite(lat_stat) & ((lat_stat <= sla.ttft_s) if sla.ttft_s is not None else True)
    if not good.any():            # none can meet TTFT: keep the nearest, so the plan shows misses and advice
        good = np.isfinite(lat_stat)
    idx = np.flatnonzero(good)
    keep = idx[_keep(lat[idx], cap[idx], cap[idx], opts.prefill_keep)]
    out = {k: v[keep] for k, v in rows.items()}
    out["cap_per_gpu"] = cap[keep]
    return out


def decode_rows(ctx: Context, opts: SearchOptions, batches: np.ndarray) -> dict[str, np.ndarray]:
    """Decode layouts x fractions x batches that fit in memory, with their KV capacity."""
    hw, wl = ctx.hardware, ctx.profile.workload
    lay = layouts(ctx, hw.gpu, hw.gpus_per_node, hw.total_gpus - 1)
    tokens = engine_defaults_by_tp(ctx, lay.tp)[1]
    li, bi = _flat(np.arange(len(lay))[:, None], np.arange(len(batches))[None, :])
    L, b = lay.take(li), batches[bi]
    Bd = np.maximum(tokens[li], b)
    base = default_fraction(ctx, L.tp, L.pp, Bd, b)
    f = fractions(base, opts.fraction)
    cols = {k: np.broadcast_to(np.asarray(v)[:, None], f.shape).ravel() for k, v in
            (("tp", L.tp), ("pp", L.pp), ("dp", L.dp), ("ep", L.ep), ("seqs", b), ("budget", Bd), ("layout", li))}
    cols["fraction"] = f.ravel()
    cols["offset"] = (f - base[:, None]).ravel()
    cols["frac_default"] = np.isclose(f, base[:, None]).ravel()
    mem = membudget.memory_terms(ctx, cols["tp"], cols["pp"], cols["ep"], cols["dp"], cols["seqs"], cols["budget"],
                                 cols["fraction"])
    kv = np.asarray(mem.kv_cache_tokens, dtype=np.float64)
    ok = np.asarray(mem.feasible) & (kv_capacity_requests(ctx.engine_name, kv, wl.isl, wl.osl) >= cols["seqs"])
    cols.update(kv=kv, weights_bytes=np.asarray(mem.weights_bytes, np.float64),
                kv_cache_bytes=np.asarray(mem.kv_cache_bytes, np.float64))
    return {k: v[ok] for k, v in cols.items()}


def screen_decode(ctx: Context, sla: Sla, opts: SearchOptions, load: LoadSpec, ref_prefill: dict) -> dict:
    wl = ctx.profile.workload
    batches = BATCH_GRID if load.kind != "concurrency" else BATCH_GRID[BATCH_GRID <= max(load.value, 1)]
    if not len(batches):
        batches = BATCH_GRID[:1]
    rows = decode_rows(ctx, opts, batches)
    if not len(rows["tp"]):
        return {"rows": rows, "keep": np.zeros(0, dtype=np.int64)}
    p = ref_prefill
    g = disagg_grid(ctx, (p["tp"], p["pp"], p["dp"], p["ep"]), (rows["tp"], rows["pp"], rows["dp"], rows["ep"]),
                    BIG_PREFILL_POOL, 1, concurrency=10.0 * rows["seqs"] * rows["dp"], prefill_budget=p["budget"],
                    prefill_max_seqs=p["seqs"], decode_budget=rows["budget"], decode_max_seqs=rows["seqs"],
                    fraction=rows["fraction"], prefill_gpu_id=prefill_gpu(ctx).id, decode_gpu_id=ctx.hardware.gpu.id,
                    decode_kv_tokens=rows["kv"])
    tpot = np.broadcast_to(g.tpot_s, rows["tp"].shape)
    tpot_stat = _stat(tpot, np.broadcast_to(g.tpot_band_s[1], tpot.shape), percentile_exponent(sla.percentile))
    gpus = rows["tp"] * rows["pp"] * rows["dp"]
    cap = np.broadcast_to(g.point.decode_capacity_rps, tpot.shape) * wl.osl / gpus
    good = np.isfinite(tpot_stat) & ((tpot_stat <= sla.tpot_s) if sla.tpot_s is not None else True)
    if not good.any():            # none can meet TPOT: keep the nearest, so the plan shows misses and advice
        good = np.isfinite(tpot_stat)
    rows["cap_per_gpu"] = np.where(good, cap, 0.0)
    # one entry per (layout, fraction): its best batch by capacity, its smallest TPOT
    group = rows["layout"] * 1000 + np.round(rows["fraction"] * 1000).astype(np.int64)
    idx = np.flatnonzero(good)
    if not len(idx):
        return {"rows": rows, "keep": np.zeros(0, dtype=np.int64)}
    pref = np.where(rows["frac_default"][idx], 1.0, 0.99)
    o = idx[np.lexsort((-rows["cap_per_gpu"][idx] * pref, group[idx]))]     # by group, best first
    first = np.r_[True, group[o][1:] != group[o][:-1]]
    heads = o[first]
    starts = np.flatnonzero(first)
    best_tpot = np.minimum.reduceat(tpot[o], starts)
    keep = heads[_keep(best_tpot, cap[heads], cap[heads] * np.where(rows["frac_default"][heads], 1.0, 0.99),
                       opts.decode_keep)]
    batches_of = np.full((len(keep), opts.batches_keep), -1, dtype=np.int64)
    ends = np.r_[starts[1:], len(o)]
    where = {int(h): k for k, h in enumerate(heads)}
    for row, h in enumerate(keep):                # a handful of kept decode configurations
        k = where[int(h)]
        chosen = _spread(o[starts[k]:ends[k]], rows["seqs"], opts.batches_keep)
        batches_of[row, :len(chosen)] = chosen
    return {"rows": rows, "keep": keep, "batches": batches_of}


def _spread(rows_idx: np.ndarray, seqs: np.ndarray, limit: int) -> np.ndarray:
    """Up to ``limit`` of the rows, spread evenly over their batch sizes (smallest and largest kept):
    a smaller batch trades throughput for TTFT, so the final grid needs the range, not the top."""
    o = rows_idx[np.argsort(seqs[rows_idx], kind="stable")]
    if len(o) <= limit:
        return o
    return o[np.unique(np.linspace(0, len(o) - 1, limit).round().astype(int))]


def _pairs(gp: np.ndarray, gd: np.ndarray, total: int, max_workers: int):
    """(prefill index, decode index, x, y) with x gp + y gd <= total."""
    w = np.arange(1, max_workers + 1)
    ip, idd, x, y = _flat(np.arange(len(gp))[:, None, None, None], np.arange(len(gd))[None, :, None, None],
                          w[None, None, :, None], w[None, None, None, :])
    ok = x * gp[ip] + y * gd[idd] <= total
    return ip[ok], idd[ok], x[ok], y[ok]


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row index, 0..counts[row]-1) flattened over rows."""
    counts = np.maximum(counts, 0)
    li = np.repeat(np.arange(len(counts)), counts)
    return li, np.arange(len(li)) - np.repeat(np.cumsum(counts) - counts, counts)


def final_rows(ctx: Context, load: LoadSpec, opts: SearchOptions, pre: dict, dec: dict) -> dict[str, np.ndarray]:
    """Kept prefill x kept decode x worker counts x replicas (x decode batch at max throughput)."""
    total = ctx.hardware.total_gpus
    D = {k: v[dec["keep"]] for k, v in dec["rows"].items()}
    gp = pre["tp"] * pre["pp"] * pre["dp"]
    gd = D["tp"] * D["pp"] * D["dp"]
    ip, idd, x, y = _pairs(gp, gd, total, opts.max_workers)
    s = x * gp[ip] + y * gd[idd]
    hw = ctx.hardware
    one_pool = prefill_gpu(ctx) is hw.gpu    # one pool of nodes: all replicas' workers must pack onto it
    if one_pool:
        fits = nodes_needed([(x, gp[ip]), (y, gd[idd])], hw.gpus_per_node) <= hw.nodes
        ip, idd, x, y, s = ip[fits], idd[fits], x[fits], y[fits], s[fits]
    rmax = total // s
    if load.kind == "max_throughput":          # replicas fill the budget: the most that pack
        if one_pool:
            rmax = most_replicas([(x, gp[ip]), (y, gd[idd])], rmax, hw.gpus_per_node, hw.nodes)
        ok = rmax >= 1
        ip, idd, x, y, reps = ip[ok], idd[ok], x[ok], y[ok], rmax[ok]
        table = dec["batches"]                 # (kept decode, batch slot) -> decode row, -1 = none
        li, j = _expand((table >= 0).sum(axis=1)[idd])
        ip, idd, x, y, reps = ip[li], idd[li], x[li], y[li], reps[li]
    else:
        rmin = np.ones_like(rmax)
        if load.kind == "concurrency":
            rmax = np.minimum(rmax, (load.value // (y * D["dp"][idd])).astype(np.int64))
        else:                                  # around what the rate needs (search_space.rate_replicas)
            mu_p = pre["cap_per_gpu"][ip] * gp[ip]
            mu_d = D["cap_per_gpu"][idd] * gd[idd] / ctx.profile.workload.osl
            rmin, rmax = rate_replicas(load.value, np.minimum(x * mu_p, y * mu_d), rmax)
        group, r0 = _expand(rmax - rmin + 1)
        ip, idd, x, y, reps = ip[group], idd[group], x[group], y[group], rmin[group] + r0
        if load.kind == "request_rate":         # neither pool idle most of the time nor past saturation
            with np.errstate(divide="ignore"):
                rho_p = load.value / (reps * x * mu_p[group])
                rho_d = load.value / (reps * y * mu_d[group])
            low, high = POOL_UTILIZATION       # one worker (and one replica) is the least there can be
            busy = (rho_p <= high) & (rho_d <= high) & ((rho_p >= low) | (x == 1)) & \
                ((rho_d >= low) | (y == 1)) & ((reps == 1) | (np.maximum(rho_p, rho_d) >= low))
            ip, idd, x, y, reps = ip[busy], idd[busy], x[busy], y[busy], reps[busy]
        j = np.zeros(len(x), dtype=np.int64)
        if one_pool:
            keep = nodes_needed([(reps * x, gp[ip]), (reps * y, gd[idd])], hw.gpus_per_node) <= hw.nodes
            ip, idd, x, y, j, reps = ip[keep], idd[keep], x[keep], y[keep], j[keep], reps[keep]
    if load.kind == "max_throughput":
        seqs = dec["rows"]["seqs"][dec["batches"][idd, j]]
    elif load.kind == "concurrency":
        seqs = np.ceil(load.value / (reps * y * D["dp"][idd])).astype(np.int64)
    else:
        seqs = engine_defaults_by_tp(ctx, D["tp"][idd])[0]
    out = {f"p_{k}": pre[k][ip] for k in ("tp", "pp", "dp", "ep", "seqs", "budget", "fraction")}
    out.update({f"d_{k}": D[k][idd] for k in ("tp", "pp", "dp", "ep", "offset", "frac_default")})
    out.update(p_workers=x, d_workers=y, replicas=reps, d_seqs=seqs)
    tokens = engine_defaults_by_tp(ctx, out["d_tp"])[1]
    out["d_budget"] = np.maximum(tokens, seqs)
    base = default_fraction(ctx, out["d_tp"], out["d_pp"], out["d_budget"], seqs)
    out["d_fraction"] = np.round(base + out.pop("d_offset"), 3) if opts.fraction is None else \
        np.full(len(seqs), opts.fraction)
    out["frac_default"] = out.pop("d_frac_default")
    return out


def _at_rate(ctx: Context, args: tuple, kw: dict, rate: np.ndarray, osl: int, iterations: int = 30):
    """The closed-loop concurrency an open-loop rate implies, by the fixed point ``estimate`` uses
    (perf_estimate.disagg_perf): c <- (c + rate (TTFT + (osl - 1) TPOT)) / 2 from c = rate (1 + osl / 50)."""
    conc = rate * (1.0 + osl * 0.02)
    for _ in range(iterations):
        g = disagg_grid(ctx, *args, concurrency=conc, **kw)
        conc = 0.5 * conc + 0.5 * rate * (g.ttft_s + (osl - 1) * g.tpot_s)
    return disagg_grid(ctx, *args, concurrency=conc, **kw), conc


def evaluate_disagg(ctx: Context, load: LoadSpec, sla: Sla, opts: SearchOptions) -> Table:
    """Every disaggregated candidate kept by the screens, evaluated (module docstring)."""
    hw, wl = ctx.hardware, ctx.profile.workload
    ref = decode_rows(ctx, opts, np.array([1]))
    if not len(ref["tp"]):
        return empty_table("disagg", DISAGG_COLUMNS)
    i0 = int(np.lexsort((ref["tp"] * ref["pp"] * ref["dp"], ~ref["frac_default"]))[0])
    ref_decode = {k: v[i0] for k, v in ref.items()}
    pre = screen_prefill(ctx, sla, opts, ref_decode)
    if not len(pre["tp"]):
        return empty_table("disagg", DISAGG_COLUMNS)
    dec = screen_decode(ctx, sla, opts, load, {k: v[0] for k, v in pre.items()})
    screened = {"prefill_kept": len(pre["tp"]), "decode_kept": len(dec["keep"])}
    if not len(dec["keep"]):
        t = empty_table("disagg", DISAGG_COLUMNS)
        t.screened = screened
        return t
    rows = final_rows(ctx, load, opts, pre, dec)
    n = len(rows["replicas"])
    pgpu = prefill_gpu(ctx)
    mem = membudget.memory_terms(ctx, rows["d_tp"], rows["d_pp"], rows["d_ep"], rows["d_dp"], rows["d_seqs"],
                                 rows["d_budget"], rows["d_fraction"])
    kv = np.asarray(mem.kv_cache_tokens, dtype=np.float64)
    ok = np.asarray(mem.feasible) & (kv >= wl.isl + wl.osl)
    if load.kind != "request_rate":   # a fixed batch must fit (at a rate the engine's default limit is a cap)
        ok &= kv_capacity_requests(ctx.engine_name, kv, wl.isl, wl.osl) >= rows["d_seqs"]
    cols: dict[str, np.ndarray] = dict(rows)
    cols.update(kv_tokens=kv, weights_bytes=np.asarray(mem.weights_bytes, np.float64),
                kv_cache_bytes=np.asarray(mem.kv_cache_bytes, np.float64))
    for c in ("ttft", "ttft_lo", "ttft_hi", "tpot", "tpot_lo", "tpot_hi", "thr", "thr_lo", "thr_hi", "rps", "conc",
              "kv_transfer"):
        cols[c] = np.full(n, np.nan)
    idx = np.flatnonzero(ok)
    provenance = ""
    if len(idx):
        s = {k: v[idx] for k, v in rows.items()}
        R = s["replicas"].astype(np.float64)
        args = ((s["p_tp"], s["p_pp"], s["p_dp"], s["p_ep"]), (s["d_tp"], s["d_pp"], s["d_dp"], s["d_ep"]),
                s["p_workers"], s["d_workers"])
        kw = dict(prefill_budget=s["p_budget"], prefill_max_seqs=s["p_seqs"], decode_budget=s["d_budget"],
                  decode_max_seqs=s["d_seqs"], fraction=s["d_fraction"], prefill_gpu_id=pgpu.id,
                  decode_gpu_id=hw.gpu.id, decode_kv_tokens=kv[idx])
        if load.kind == "request_rate":
            rate = load.value / R
            g, conc = _at_rate(ctx, args, kw, rate, wl.osl)
            sustained = np.asarray(g.requests_per_s) >= 0.99 * rate
        else:
            conc = load.value / R if load.kind == "concurrency" else \
                (s["d_seqs"] * s["d_dp"] * s["d_workers"]).astype(np.float64)
            g = disagg_grid(ctx, *args, concurrency=conc, **kw)
            sustained = True
        provenance = g.coverage.provenance
        vals = {"ttft": g.ttft_s, "ttft_lo": g.ttft_band_s[0], "ttft_hi": g.ttft_band_s[1], "tpot": g.tpot_s,
                "tpot_lo": g.tpot_band_s[0], "tpot_hi": g.tpot_band_s[1], "thr": g.output_tokens_per_s * R,
                "thr_lo": g.output_tokens_per_s_band[0] * R, "thr_hi": g.output_tokens_per_s_band[1] * R,
                "rps": g.requests_per_s * R, "conc": conc * R, "kv_transfer": g.point.kv_transfer_s}
        for c, v in vals.items():
            cols[c][idx] = np.broadcast_to(v, idx.shape)
        ok[idx] &= np.broadcast_to(sustained, idx.shape) & np.isfinite(cols["ttft"][idx]) & (cols["thr"][idx] > 0)
    p_used = rows["p_tp"] * rows["p_pp"] * rows["p_dp"] * rows["p_workers"] * rows["replicas"]
    d_used = rows["d_tp"] * rows["d_pp"] * rows["d_dp"] * rows["d_workers"] * rows["replicas"]
    cols["gpus"] = (p_used + d_used).astype(np.float64)
    cols["charged"] = charged_gpus(p_used + d_used, hw.total_gpus, load)
    cols["ok"] = ok
    screened.update(grid=n, memory_feasible=len(idx))
    return Table("disagg", cols, provenance, evaluated=len(idx), screened=screened)
