"""The two pure entry points the CLI and the TUI share: ``estimate`` and ``plan``."""

from __future__ import annotations

from servewise.estimator.budget import memory_estimate
from servewise.estimator.context import Context, build_context, check_parallelism
from servewise.estimator.errors import ConfigError
from servewise.estimator.perf_estimate import agg_perf, disagg_perf
from servewise.estimator.resolve import quantization_note
from servewise.estimator.results import Estimate, PlanResult, RoleEstimate, SlaInfo
from servewise.estimator.user_calibration import apply_to_estimate
from servewise.perfdata import get_gpu
from servewise.profiles.schema import AggPlan, DisaggPlan, Profile


def default_memory_fraction(ctx: Context, tp: int = 1, pp: int = 1) -> float:
    """The engine's own memory fraction when none is given (SGLang derives it from the GPU and TP)."""
    from servewise.estimator.engine_defaults import batch_defaults
    from servewise.estimator.engine_defaults import default_memory_fraction as engine_default

    hw = ctx.hardware
    d = batch_defaults(ctx.engine_name, ctx.engine.version, hw.gpu, hw.gpu.memory_bytes, tp, ctx.max_model_len)
    return engine_default(ctx.engine_name, ctx.engine.version, ctx.engine.memory_knob.default, hw.memory_bytes,
                          tp, pp, d.max_num_batched_tokens, d.max_num_seqs, ctx.model.arch.is_mla)


def estimate(profile: Profile) -> Estimate:
    """Memory (and, where modelled, performance) of the configuration pinned in ``profile.plan``."""
    if profile.plan is None:
        raise ConfigError("no pinned plan to estimate; pin one with `servewise plan --profile P --save P`",
                          field="plan")
    ctx = build_context(profile)
    return estimate_in_context(ctx, profile.plan)


def estimate_in_context(ctx: Context, plan: AggPlan | DisaggPlan) -> Estimate:
    """The estimate of ``plan``, with the profile's user calibration applied where it was measured, and
    judged against the profile's SLA (and priced) on those figures."""
    return with_sla(apply_to_estimate(_estimate_in_context(ctx, plan), ctx.profile, ctx.engine.version),
                    ctx.profile)


def with_sla(est: Estimate, profile: Profile) -> Estimate:
    """``est`` with the SLA statistics and verdict ``plan`` would give it (``search.at_percentile`` on the
    point estimate and its band) and, with a GPU-hour price, $ per million output tokens over its GPUs."""
    import numpy as np

    from servewise.estimator.cost import cost_per_million_tokens_usd
    from servewise.estimator.search import at_percentile

    p, sla = est.perf, profile.sla
    if p is None:
        return est
    upd: dict[str, object] = {}
    if sla.ttft_ms is not None or sla.tpot_ms is not None:
        ttft = float(at_percentile(np.float64(p.ttft_ms), np.float64(p.ttft_ms_range[1]), sla.percentile))
        tpot = float(at_percentile(np.float64(p.tpot_ms), np.float64(p.tpot_ms_range[1]), sla.percentile))
        from servewise.estimator.planning import STATISTICS

        upd.update(sla=SlaInfo(ttft_ms=sla.ttft_ms, tpot_ms=sla.tpot_ms, percentile=sla.percentile,
                               statistic=STATISTICS[sla.percentile]),
                   ttft_ms_at_percentile=round(ttft, 3), tpot_ms_at_percentile=round(tpot, 3),
                   meets_sla=(sla.ttft_ms is None or ttft <= sla.ttft_ms) and (sla.tpot_ms is None or tpot <= sla.tpot_ms))
    price = profile.search.gpu_hour_usd
    if price is not None and p.output_tokens_per_s > 0:
        upd["cost_per_million_tokens_usd"] = round(float(cost_per_million_tokens_usd(price, est.gpus,
                                                                                      p.output_tokens_per_s)), 4)
    return est.model_copy(update=upd) if upd else est


def _estimate_in_context(ctx: Context, plan: AggPlan | DisaggPlan) -> Estimate:
    common = dict(model=ctx.model.id, gpu=ctx.hardware.gpu.id, engine=ctx.engine_name,
                  engine_version=ctx.engine.version, gpus=plan.gpus, max_model_len=ctx.max_model_len, plan=plan)
    assumptions = _assumptions(ctx)
    if isinstance(plan, AggPlan):
        check_parallelism(ctx, plan.worker)
        m = memory_estimate(ctx, plan.worker)
        perf, overload = agg_perf(ctx, plan, m) if m.feasible else (None, None)
        reason = overload if m.feasible else m.overflow.message  # type: ignore[union-attr]
        prov = {"memory": "servewise memory model"}
        if perf:
            prov["perf"] = perf.provenance
        return Estimate(feasible=m.feasible and overload is None, reason=reason, mode="agg", memory=m, perf=perf,
                        assumptions=assumptions + _perf_assumptions(ctx, plan), provenance=prov, **common)
    roles: dict[str, RoleEstimate] = {}
    for role, w in (("prefill", plan.prefill), ("decode", plan.decode)):
        check_parallelism(ctx, w, role)
        gpu = w.gpu or (ctx.profile.hardware.prefill_gpu if role == "prefill" else None) or ctx.hardware.gpu.id
        mem = get_gpu(gpu).memory_bytes if gpu != ctx.hardware.gpu.id else None
        roles[role] = RoleEstimate(worker=w, gpu=gpu, memory=memory_estimate(ctx, w, mem))
    bad = [f"{r}: {e.memory.overflow.message}" for r, e in roles.items() if e.memory.overflow]
    perf, role_perf, overload = disagg_perf(ctx, plan, roles) if not bad else (None, {}, None)
    roles = {r: e.model_copy(update={"perf": role_perf.get(r)}) for r, e in roles.items()}
    prov = {"memory": "servewise memory model"}
    if perf:
        prov["perf"] = perf.provenance
    return Estimate(feasible=not bad and overload is None, reason="; ".join(bad) or overload, mode="disagg",
                    roles=roles, perf=perf,
                    assumptions=assumptions + _perf_assumptions(ctx, plan), provenance=prov, **common)


def _perf_assumptions(ctx: Context, plan: AggPlan | DisaggPlan) -> list[str]:
    wl = ctx.profile.workload
    ld = wl.load
    if ld.request_rate is not None:
        load = f"open loop at {ld.request_rate:g} requests/s (Poisson arrivals)"
    elif ld.max_throughput:
        load = "offline: the batch is the largest the KV cache holds, kept full"
    else:
        load = (f"closed loop at {ld.concurrency} concurrent requests (all sent at once, then one per finished "
                "request), fixed input/output lengths, TTFT including queueing")
    return [f"performance: {wl.isl} input + {wl.osl} output tokens per request, {load}; engine step budget and batch limits as planned; no prefix caching, no "
            "speculative decoding"]


def _assumptions(ctx: Context) -> list[str]:
    p = ctx.profile
    quant = quantization_note(ctx.model, ctx.engine_name, ctx.engine)
    return [f"weights {ctx.model.weights.name} ({ctx.model.source}), KV cache {p.model.kv_cache_dtype}",
            *([quant] if quant else []),
            f"{ctx.engine_name} {ctx.engine.version}: {ctx.engine.memory_knob.flag} is a fraction of "
            f"{'total memory' if ctx.engine.memory_knob.of == 'total' else 'the memory free after loading'}",
            f"GPU memory {ctx.hardware.memory_bytes / 1024**3:.2f} GiB per GPU (CUDA-visible)"]


def plan(profile: Profile, *, memory_fraction: float | None = None) -> PlanResult:
    """Search the configuration that best meets ``profile``'s SLA (``estimator.search``): best per mode,
    candidates, Pareto front, verdict, and advice when nothing meets it. ``memory_fraction`` fixes the
    engine's memory fraction instead of searching around its default."""
    from servewise.estimator.search import SearchOptions

    ctx = build_context(profile)
    if memory_fraction is None:
        memory_fraction = profile.search.memory_fraction
    return plan_in_context(ctx, SearchOptions(fraction=memory_fraction))


def plan_in_context(ctx: Context, opts) -> PlanResult:  # type: ignore[no-untyped-def]
    from servewise.estimator.advice import advise
    from servewise.estimator.planning import plan_result
    from servewise.estimator.search import run_search

    hw = ctx.hardware
    common = dict(model=ctx.model.id, gpu=hw.gpu.id, engine=ctx.engine_name, engine_version=ctx.engine.version,
                  gpus=hw.total_gpus, max_model_len=ctx.max_model_len, objective=ctx.profile.search.objective)
    outcome = run_search(ctx, opts)
    result = plan_result(ctx, outcome, common)
    searched = _search_assumptions(ctx, outcome)
    if result.chosen is None:
        return result.model_copy(update={"advice": advise(ctx, outcome, opts),
                                         "assumptions": _assumptions(ctx) + searched})
    est = estimate_in_context(ctx, result.chosen.plan)
    return result.model_copy(update={"chosen_estimate": est, "assumptions": est.assumptions + searched})


def _search_assumptions(ctx: Context, outcome) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    s = ctx.profile.search
    if s.objective == "cost_per_million_tokens" and s.gpu_hour_usd is None:
        out.append("objective cost_per_million_tokens without a GPU-hour price: ranked by output tokens/s per "
                   "GPU, which orders candidates the same at one price per GPU")
    if ctx.profile.hardware.prefill_gpu and s.gpu_hour_usd is not None:
        out.append("cost: one GPU-hour price for both the prefill and the decode GPUs")
    return out + list(outcome.notes)
