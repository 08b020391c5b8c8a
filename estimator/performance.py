"""The performance model's public, vectorised entry points (what ``estimate`` and the search call).

Every parallel size, batch limit, worker count and load argument may be a numpy array; all of them
broadcast together, and every returned field has the broadcast shape. One call evaluates a whole
candidate grid (numpy only, no Python loop over candidates)::

    g = agg_grid(ctx, tp=np.array([1, 2, 4, 8]), concurrency=64,
                 max_num_batched_tokens=8192, max_num_seqs=256, fraction=0.9)
    g.ttft_s, g.ttft_band_s            # arrays: point estimate and (low, high)
    g.output_tokens_per_s              # per worker (multiply by replicas)
    g.coverage.provenance              # how sure, and why

Metric definitions: ARCHITECTURE.md section 3 (closed loop at a concurrency, or open loop at a
request rate; TTFT includes queueing). Bands: ``estimator.uncertainty``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from servewise.estimator import budget
from servewise.estimator.context import Context
from servewise.estimator.disagg import DisaggPoint, disaggregated, disaggregated_at_rate
from servewise.estimator.perf import ArrayLike, Parallel, PerfTarget, make_target
from servewise.estimator.serving import ServingPoint, aggregated, aggregated_at_rate, max_batch
from servewise.estimator.uncertainty import Coverage, band, coverage, widening
from servewise.perfdata import get_gpu


def perf_target(ctx: Context, gpu_id: str | None = None) -> PerfTarget:
    """The model / formats / GPU / engine of a request (``gpu_id``: another catalog GPU for one role)."""
    hw = ctx.hardware
    gpu = get_gpu(gpu_id) if gpu_id and gpu_id != hw.gpu.id else hw.gpu
    link = hw.intra_node if gpu is hw.gpu else gpu.interconnect
    rm = ctx.model
    return make_target(rm.arch, rm.scheme, gpu, ctx.engine_name, ctx.kv_dtype, gpus_per_node=hw.gpus_per_node,
                       intra_link=link, engine_version=ctx.engine.version)


def family(ctx: Context) -> str:
    return "moe" if ctx.model.arch.is_moe else "dense"


@dataclass(frozen=True)
class PerfGrid:
    """Estimates over a broadcast grid. Agg rates are per worker; disagg rates are per xPyD system."""

    ttft_s: np.ndarray
    ttft_band_s: tuple[np.ndarray, np.ndarray]
    tpot_s: np.ndarray
    tpot_band_s: tuple[np.ndarray, np.ndarray]
    output_tokens_per_s: np.ndarray
    output_tokens_per_s_band: tuple[np.ndarray, np.ndarray]
    requests_per_s: np.ndarray
    batch: np.ndarray                 # running sequences per DP rank (decode pool for disagg)
    coverage: Coverage
    point: ServingPoint | DisaggPoint


def kv_tokens_for(ctx: Context, tp, pp, dp, ep, max_num_seqs, max_num_batched_tokens, fraction,
                  gpu_id: str | None = None) -> np.ndarray:
    """KV-cache tokens per rank from the memory model (budget.memory_terms, vectorised); ``gpu_id``:
    a role's own GPU when it differs from the hardware's."""
    req = budget.MemoryRequest.from_context(ctx)
    if gpu_id and gpu_id != ctx.hardware.gpu.id:
        gpu = get_gpu(gpu_id)
        req = replace(req, gpu=gpu, memory_bytes=gpu.memory_bytes)
    t = budget.memory_terms(req, tp, pp, ep, dp, max_num_seqs, max_num_batched_tokens, fraction)
    return np.asarray(t.kv_cache_tokens, dtype=np.float64)


def _grid(pt: ServingPoint | DisaggPoint, cov: Coverage, extra, batch, open_loop: bool = False) -> PerfGrid:
    """``open_loop``: at a request rate the system sustains, it completes exactly the requests that arrive,
    so throughput is the offered rate x OSL with no band; the model's uncertainty sits in the latencies
    (and in the requests in flight they imply)."""
    thr = np.asarray(pt.output_tokens_per_s, dtype=np.float64)
    thr_band = (thr, thr) if open_loop else band(pt.output_tokens_per_s, cov, "throughput", extra)
    return PerfGrid(ttft_s=pt.ttft_s, ttft_band_s=band(pt.ttft_s, cov, "ttft", extra), tpot_s=pt.tpot_s,
                    tpot_band_s=band(pt.tpot_s, cov, "tpot", extra), output_tokens_per_s=pt.output_tokens_per_s,
                    output_tokens_per_s_band=thr_band,
                    requests_per_s=pt.requests_per_s, batch=batch, coverage=cov, point=pt)


def agg_grid(ctx: Context, tp: ArrayLike = 1, pp: ArrayLike = 1, dp: ArrayLike = 1, ep: ArrayLike = 1, *,
             max_num_batched_tokens: ArrayLike, max_num_seqs: ArrayLike, fraction: ArrayLike,
             concurrency: ArrayLike | None = None, request_rate: ArrayLike | None = None,
             max_throughput: bool = False, kv_tokens: ArrayLike | None = None,
             gpu_id: str | None = None) -> PerfGrid:
    """One aggregated worker per grid point at a concurrency, a request rate, or offline max throughput.

    ``concurrency`` / ``request_rate`` are per worker. ``max_throughput``: the batch is the largest the KV
    cache (and ``max_num_seqs``) holds, kept full (closed loop at that batch).
    """
    wl = ctx.profile.workload
    isl, osl = float(wl.isl), float(wl.osl)
    t = perf_target(ctx, gpu_id)
    par = Parallel.of(tp, pp, dp, ep)
    if kv_tokens is None:
        kv_tokens = kv_tokens_for(ctx, tp, pp, dp, ep, max_num_seqs, max_num_batched_tokens, fraction, gpu_id)
    if max_throughput:
        n = max_batch(t, isl, osl, kv_tokens, max_num_seqs)
        pt = aggregated(t, par, isl, osl, n * par.dp, max_num_batched_tokens, max_num_seqs, kv_tokens)
        load = n * par.dp
    elif request_rate is not None:
        pt = aggregated_at_rate(t, par, isl, osl, request_rate, max_num_batched_tokens, max_num_seqs, kv_tokens)
        load = pt.running * par.dp
    else:
        load = np.asarray(concurrency if concurrency is not None else 1, dtype=np.float64)
        pt = aggregated(t, par, isl, osl, load, max_num_batched_tokens, max_num_seqs, kv_tokens)
    cov = coverage(t.generation, t.engine, family(ctx))
    extra = widening(cov, pp=pp, concurrency=load, isl=isl, osl=osl)
    return _grid(pt, cov, extra, pt.running, open_loop=request_rate is not None)


def pools_link_bandwidth(ctx: Context, gpus: ArrayLike, prefill: PerfTarget,
                         decode: PerfTarget | None = None) -> np.ndarray:
    """The link KV caches cross: the scale-up link when the whole xPyD system fits in one node, else the
    per-GPU scale-out network (the host PCIe link where the GPU spec has none). Pools of different GPU
    models never share a scale-up domain (an NVLink domain is one SKU), so heterogeneous pools always
    cross the scale-out network, at the slower side's bandwidth."""
    sides = [prefill] if decode is None else [prefill, decode]
    inter = min((t.gpu.inter_node or t.gpu.host_link).bandwidth_bytes_per_s for t in sides)
    same_domain = decode is None or decode.gpu.id == prefill.gpu.id
    return np.where((np.asarray(gpus) <= prefill.scale_up_gpus) & same_domain,
                    prefill.intra_link.bandwidth_bytes_per_s, inter)


def disagg_grid(ctx: Context, prefill: tuple, decode: tuple, prefill_workers: ArrayLike,
                decode_workers: ArrayLike, *, concurrency: ArrayLike | None = None, prefill_budget: ArrayLike,
                prefill_max_seqs: ArrayLike, decode_budget: ArrayLike, decode_max_seqs: ArrayLike,
                fraction: ArrayLike, prefill_gpu_id: str | None = None, decode_gpu_id: str | None = None,
                decode_kv_tokens: ArrayLike | None = None, request_rate: ArrayLike | None = None) -> PerfGrid:
    """An xPyD system per grid point: ``prefill`` / ``decode`` are (tp, pp, dp, ep) tuples of arrays; the
    load is ``concurrency`` clients (closed loop) or ``request_rate`` requests/s (open loop), both for the
    whole system. Heterogeneous pools: ``prefill_gpu_id`` / ``decode_gpu_id``."""
    wl = ctx.profile.workload
    isl, osl = float(wl.isl), float(wl.osl)
    pt_, dt_ = perf_target(ctx, prefill_gpu_id), perf_target(ctx, decode_gpu_id)
    p_par, d_par = Parallel.of(*prefill), Parallel.of(*decode)
    if decode_kv_tokens is None:
        decode_kv_tokens = kv_tokens_for(ctx, decode[0], decode[1], decode[2], decode[3], decode_max_seqs,
                                         decode_budget, fraction, decode_gpu_id)
    gpus = np.asarray(prefill_workers) * p_par.gpus + np.asarray(decode_workers) * d_par.gpus
    link = pools_link_bandwidth(ctx, gpus, pt_, dt_)
    if request_rate is not None:
        pt = disaggregated_at_rate(pt_, dt_, p_par, d_par, isl, osl, request_rate, prefill_workers, decode_workers,
                                   prefill_budget, decode_max_seqs, decode_kv_tokens, link)
        e2e = np.where(np.isfinite(pt.ttft_s), pt.ttft_s + (osl - 1.0) * pt.tpot_s, 0.0)
        load = np.maximum(pt.requests_per_s * e2e, 1.0)        # requests in flight, by Little's law
    else:
        load = np.asarray(concurrency if concurrency is not None else 1, dtype=np.float64)
        pt = disaggregated(pt_, dt_, p_par, d_par, isl, osl, load, prefill_workers, decode_workers,
                           prefill_budget, decode_max_seqs, decode_kv_tokens, link)
    cov = coverage(dt_.generation, dt_.engine, family(ctx), mode="disagg")
    extra = widening(cov, pp=np.maximum(prefill[1], decode[1]), concurrency=load, isl=isl, osl=osl)
    return _grid(pt, cov, extra, pt.decode_batch, open_loop=request_rate is not None)
