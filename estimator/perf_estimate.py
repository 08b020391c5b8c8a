"""Performance of one fixed plan (``estimate``): the scalar view of ``performance``'s grids."""

from __future__ import annotations

import math

import numpy as np

from servewise.estimator.context import Context
from servewise.estimator.performance import agg_grid, disagg_grid
from servewise.estimator.perf import Parallel, StepTime
from servewise.estimator.results import MemoryEstimate, PerfEstimate, RoleEstimate, RolePerf
from servewise.estimator.uncertainty import band
from servewise.profiles.schema import AggPlan, DisaggPlan


def _f(x) -> float:
    return float(np.asarray(x))


def _ms(x) -> float:
    v = _f(x) * 1e3
    return round(v, 3) if math.isfinite(v) else v


def _band_ms(b) -> tuple[float, float]:
    return (_ms(b[0]), _ms(b[1]))


def _band(b, scale: float = 1.0) -> tuple[float, float]:
    return (round(_f(b[0]) * scale, 3), round(_f(b[1]) * scale, 3))


def step_terms(step: StepTime, what: str, top: int = 3, share: float = 1.0) -> list[str]:
    """The largest terms of a step as 'what: term NN%' strings; ``share`` is the step's part of ``what``
    (a TPOT whose steps also carry other requests' prompt chunks), so every percentage of one ``what``
    has the same denominator."""
    terms = {k: _f(v) for k, v in step.terms().items()}
    total = sum(terms.values()) or 1.0
    ranked = sorted(terms.items(), key=lambda kv: -kv[1])[:top]
    return [f"{what}: {k} {100 * share * v / total:.0f}%" for k, v in ranked if v > 0.02 * total]


def kv_limited_batch(ctx: Context, tp: int, pp: int, dp: int, ep: int, max_num_batched_tokens: int,
                     fraction: float, gpu_id: str | None = None) -> int:
    """Offline max-throughput batch of a worker rank: the requests its KV cache holds at the engine's
    default sequence cap (serving.max_batch), at least 1."""
    from servewise.estimator.engine_defaults import batch_defaults
    from servewise.estimator.performance import kv_tokens_for, perf_target
    from servewise.estimator.serving import max_batch

    t = perf_target(ctx, gpu_id)
    cap = batch_defaults(ctx.engine_name, ctx.engine.version, t.gpu, t.gpu.memory_bytes, tp,
                         ctx.max_model_len).max_num_seqs
    if ctx.engine.serving.default_running_limit == "kv_pool":   # only the KV pool limits its running requests
        cap = 1_000_000
    wl = ctx.profile.workload
    batch = cap
    for _ in range(6):   # the sampler's activation grows with the batch: settle on a batch that fits
        kv = kv_tokens_for(ctx, tp, pp, dp, ep, batch, max_num_batched_tokens, fraction, gpu_id)
        nxt = max(1, int(_f(max_batch(t, wl.isl, wl.osl, kv, cap))))
        if nxt == batch:
            break
        batch = nxt
    return batch


def _load(ctx: Context, replicas: int) -> dict:
    ld = ctx.profile.workload.load
    if ld.request_rate is not None:
        return {"request_rate": ld.request_rate / replicas}
    if ld.max_throughput:
        return {"max_throughput": True}
    return {"concurrency": (ld.concurrency or 1) / replicas}


def overload_reason(rate: float, sustainable: float, replicas: int) -> str:
    """Why a request rate has no steady state, naming the rate the plan does sustain."""
    return (f"workload.load.request_rate {rate:g} requests/s is more than this plan sustains: about "
            f"{_floor3(sustainable):g} requests/s over {replicas} replica(s); lower the rate or add replicas")


def _floor3(x: float) -> float:
    """``x`` rounded down to 3 significant digits (a rate quoted as sustainable must be)."""
    if x <= 0 or not math.isfinite(x):
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(x)) - 2)
    return math.floor(x / scale) * scale


def agg_perf(ctx: Context, plan: AggPlan, memory: MemoryEstimate) -> tuple[PerfEstimate | None, str | None]:
    """TTFT / TPOT / throughput of an aggregated plan, or (None, why) when there is no steady state: the
    KV cache holds no request (why None: the memory estimate says so), or the request rate exceeds what
    the plan sustains."""
    w = plan.worker
    wl = ctx.profile.workload
    if memory.kv_cache_tokens < wl.isl + wl.osl:
        return None, None
    g = agg_grid(ctx, w.tp, w.pp, w.dp, w.ep, max_num_batched_tokens=w.max_num_batched_tokens,
                 max_num_seqs=w.max_num_seqs, fraction=w.gpu_memory_utilization,
                 kv_tokens=memory.kv_cache_tokens, **_load(ctx, plan.replicas))
    r = plan.replicas
    if wl.load.request_rate is not None and not math.isfinite(_f(g.ttft_s)):
        from servewise.estimator.performance import perf_target
        from servewise.estimator.serving import sustainable_rate

        per_worker = sustainable_rate(perf_target(ctx), Parallel.of(w.tp, w.pp, w.dp, w.ep), wl.isl, wl.osl,
                                      w.max_num_batched_tokens, w.max_num_seqs, memory.kv_cache_tokens)
        return None, overload_reason(wl.load.request_rate, per_worker * r, r)
    pt = g.point
    if wl.load.request_rate is None:
        conc = _f(pt.concurrency) * w.dp * r
    else:   # in the system, by Little's law over the latencies reported (as disaggregated)
        conc = _f(g.requests_per_s) * r * (_f(g.ttft_s) + (wl.osl - 1) * _f(g.tpot_s))
    tpot = _f(g.tpot_s)
    interference = max(1.0 - _f(pt.light.total_s) / tpot, 0.0) if tpot > 0 else 0.0
    dom = step_terms(pt.light, "TPOT", share=1.0 - interference)
    if interference > 0.05:
        dom.append(f"TPOT: other requests' prompt chunks {100 * interference:.0f}%")
    dom += ttft_terms(ctx, pt, _f(g.ttft_s))
    dom += step_terms(pt.heavy, "prefill step", 2)
    return _perf(g, r, plan.gpus, conc, dom, open_loop=wl.load.request_rate is not None), None


def ttft_terms(ctx: Context, pt, ttft: float) -> list[str]:
    """TTFT's parts beside the prompt's own heavy steps: the request overhead (HTTP, tokenisation; the
    calibrated ``request_overhead_s``) and the queueing (other prompts ahead, the step in progress, KV
    admission): what is left of TTFT after the own steps and the overhead."""
    if not (math.isfinite(ttft) and ttft > 0):
        return []
    from servewise.estimator.performance import perf_target

    overhead = perf_target(ctx).coef["request_overhead_s"] / ttft
    queue = 1.0 - _f(pt.heavy.total_s * pt.prompt_steps) / ttft - overhead
    terms = [(queue, "queueing (other prompts, the step in progress)"),
             (overhead, "request overhead (HTTP, tokenisation)")]
    return [f"TTFT: {what} {100 * v:.0f}%" for v, what in sorted(terms, reverse=True) if v > 0.05]


def _perf(g, replicas: int, gpus: int, concurrency: float, dominant: list[str],
          kv_transfer_s: float | None = None, open_loop: bool = False) -> PerfEstimate:
    thr = _f(g.output_tokens_per_s) * replicas
    lo, hi = g.output_tokens_per_s_band
    tpot_lo, tpot_hi = g.tpot_band_s
    tpot = _f(g.tpot_s)
    return PerfEstimate(
        ttft_ms=_ms(g.ttft_s), ttft_ms_range=_band_ms(g.ttft_band_s), tpot_ms=_ms(tpot),
        tpot_ms_range=_band_ms(g.tpot_band_s), output_tokens_per_s=round(thr, 2),
        output_tokens_per_s_range=_band((lo, hi), replicas),
        output_tokens_per_s_per_gpu=round(thr / gpus, 3), output_tokens_per_s_per_gpu_range=_band((lo, hi),
                                                                                                   replicas / gpus),
        tokens_per_s_per_user=round(1.0 / tpot, 3), tokens_per_s_per_user_range=(round(1.0 / _f(tpot_hi), 3),
                                                                                  round(1.0 / _f(tpot_lo), 3)),
        requests_per_s=round(_f(g.requests_per_s) * replicas, 4),
        requests_per_s_range=_band(g.output_tokens_per_s_band, replicas / _osl(g)),
        concurrency=round(concurrency, 3), concurrency_range=_concurrency_band(g, replicas, concurrency, open_loop),
        kv_transfer_ms=None if kv_transfer_s is None else _ms(kv_transfer_s),
        dominant_terms=dominant, provenance=g.coverage.provenance)


def _concurrency_band(g, replicas: int, concurrency: float, open_loop: bool) -> tuple[float, float]:
    """Closed loop: the load is given. Open loop: Little's law over the TTFT and TPOT bands."""
    if not open_loop:
        return (round(concurrency, 3), round(concurrency, 3))
    rate = _f(g.requests_per_s) * replicas
    osl = _osl(g)
    lo = rate * (_f(g.ttft_band_s[0]) + (osl - 1) * _f(g.tpot_band_s[0]))
    hi = rate * (_f(g.ttft_band_s[1]) + (osl - 1) * _f(g.tpot_band_s[1]))
    return (round(min(lo, concurrency), 3), round(max(hi, concurrency), 3))


def _osl(g) -> float:
    return _f(g.output_tokens_per_s) / max(_f(g.requests_per_s), 1e-30)


def disagg_perf(ctx: Context, plan: DisaggPlan, roles: dict[str, RoleEstimate]
                ) -> tuple[PerfEstimate | None, dict[str, RolePerf], str | None]:
    """System and per-role performance of a disaggregated plan, or (None, {}, why) without a steady
    state: a pool holds no request (why None), or the request rate exceeds what the pools sustain."""
    p, d = plan.prefill, plan.decode
    wl = ctx.profile.workload
    if any(r.memory.kv_cache_tokens < wl.isl + wl.osl for r in roles.values()):
        return None, {}, None
    ld = wl.load
    per_system = _load(ctx, plan.replicas)
    if "concurrency" in per_system:
        conc = per_system["concurrency"]
    elif ld.max_throughput:
        from servewise.estimator.serving import kv_capacity_requests

        cap = min(float(kv_capacity_requests(ctx.engine.serving, roles["decode"].memory.kv_cache_tokens, wl.isl,
                                             wl.osl)), d.max_num_seqs)
        conc = cap * d.dp * d.workers
    else:
        conc = None
    kw = dict(prefill_budget=p.max_num_batched_tokens, prefill_max_seqs=p.max_num_seqs,
              decode_budget=d.max_num_batched_tokens, decode_max_seqs=d.max_num_seqs,
              fraction=d.gpu_memory_utilization, prefill_gpu_id=p.gpu or roles["prefill"].gpu,
              decode_gpu_id=d.gpu or roles["decode"].gpu, decode_kv_tokens=roles["decode"].memory.kv_cache_tokens)
    shape = ((p.tp, p.pp, p.dp, p.ep), (d.tp, d.pp, d.dp, d.ep), p.workers, d.workers)
    if conc is None:  # open loop at the replica's share of the rate
        g = disagg_grid(ctx, *shape, request_rate=ld.request_rate / plan.replicas, **kw)
        if not math.isfinite(_f(g.ttft_s)):     # sustained up to the slower pool's capacity (disaggregated_at_rate)
            pt = g.point
            cap = 0.999 * min(_f(pt.prefill_capacity_rps), _f(pt.decode_capacity_rps)) * plan.replicas
            return None, {}, overload_reason(ld.request_rate, cap, plan.replicas)
        conc = _f(g.requests_per_s) * (_f(g.ttft_s) + (wl.osl - 1) * _f(g.tpot_s))
    else:
        g = disagg_grid(ctx, *shape, concurrency=conc, **kw)
    pt = g.point
    system_gpus = plan.gpus
    perf = _perf(g, plan.replicas, system_gpus, conc * plan.replicas,
                 step_terms(pt.decode_step, "TPOT") + step_terms(pt.prefill_step, "prefill step", 2),
                 kv_transfer_s=_f(pt.kv_transfer_s), open_loop=ld.request_rate is not None)
    rps = _f(pt.requests_per_s)
    pre = RolePerf(role="prefill", ttft_ms=_ms(pt.prefill_s), ttft_ms_range=_band_ms(band(pt.prefill_s, g.coverage,
                                                                                          "ttft")),
                   kv_transfer_ms=_ms(pt.kv_transfer_s), capacity_requests_per_s=round(_f(pt.prefill_capacity_rps), 4),
                   requests_per_s=round(rps, 4), utilization=round(_f(pt.prefill_utilization), 4),
                   step_ms=_ms(pt.prefill_step.total_s), dominant_terms=step_terms(pt.prefill_step, "prefill step"))
    dec = RolePerf(role="decode", ttft_ms=_ms(pt.decode_step.total_s), tpot_ms=_ms(pt.tpot_s),
                   tpot_ms_range=_band_ms(g.tpot_band_s), capacity_requests_per_s=round(_f(pt.decode_capacity_rps), 4),
                   requests_per_s=round(rps, 4), utilization=round(_f(pt.decode_utilization), 4),
                   batch=round(_f(pt.decode_batch), 3), step_ms=_ms(pt.decode_step.total_s),
                   dominant_terms=step_terms(pt.decode_step, "decode step"))
    return perf, {"prefill": pre, "decode": dec}, None
