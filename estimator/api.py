"""The two pure entry points the CLI and the TUI share: ``estimate`` and ``plan``."""

from __future__ import annotations

import math

from servewise.estimator.budget import memory_estimate
from servewise.estimator.context import Context, build_context, check_parallelism
from servewise.estimator.perf_estimate import agg_perf, disagg_perf
from servewise.estimator.resolve import quantization_note
from servewise.estimator.results import Candidate, Estimate, PlanResult, RoleEstimate
from servewise.estimator.user_calibration import apply_to_estimate
from servewise.perfdata import get_gpu
from servewise.profiles.schema import AggPlan, DisaggPlan, Profile, Worker

DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192


def default_memory_fraction(ctx: Context, tp: int = 1, pp: int = 1) -> float:
    """The engine's own memory fraction when none is given (SGLang derives it from the GPU and TP)."""
    from servewise.estimator.engine_defaults import batch_defaults
    from servewise.estimator.engine_defaults import default_memory_fraction as engine_default

    hw = ctx.hardware
    d = batch_defaults(ctx.engine_name, ctx.engine.version, hw.gpu, hw.memory_bytes, tp, ctx.max_model_len)
    return engine_default(ctx.engine_name, ctx.engine.version, ctx.engine.memory_knob.default, hw.memory_bytes,
                          tp, pp, d.max_num_batched_tokens, d.max_num_seqs, ctx.model.arch.is_mla)


def estimate(profile: Profile) -> Estimate:
    """Memory (and, where modelled, performance) of the configuration pinned in ``profile.plan``."""
    if profile.plan is None:
        raise ValueError("estimate needs a profile with a plan")
    ctx = build_context(profile)
    return estimate_in_context(ctx, profile.plan)


def estimate_in_context(ctx: Context, plan: AggPlan | DisaggPlan) -> Estimate:
    """The estimate of ``plan``, with the profile's user calibration applied where it was measured."""
    return apply_to_estimate(_estimate_in_context(ctx, plan), ctx.profile, ctx.engine.version)


def _estimate_in_context(ctx: Context, plan: AggPlan | DisaggPlan) -> Estimate:
    common = dict(model=ctx.model.id, gpu=ctx.hardware.gpu.id, engine=ctx.engine_name,
                  engine_version=ctx.engine.version, gpus=plan.gpus, max_model_len=ctx.max_model_len, plan=plan)
    assumptions = _assumptions(ctx)
    if isinstance(plan, AggPlan):
        check_parallelism(ctx, plan.worker)
        m = memory_estimate(ctx, plan.worker)
        reason = None if m.feasible else m.overflow.message  # type: ignore[union-attr]
        perf = agg_perf(ctx, plan, m) if m.feasible else None
        prov = {"memory": "servewise memory model"}
        if perf:
            prov["perf"] = perf.provenance
        return Estimate(feasible=m.feasible, reason=reason, mode="agg", memory=m, perf=perf,
                        assumptions=assumptions + _perf_assumptions(ctx, plan), provenance=prov, **common)
    roles: dict[str, RoleEstimate] = {}
    for role, w in (("prefill", plan.prefill), ("decode", plan.decode)):
        check_parallelism(ctx, w, role)
        gpu = w.gpu or (ctx.profile.hardware.prefill_gpu if role == "prefill" else None) or ctx.hardware.gpu.id
        mem = get_gpu(gpu).memory_bytes if gpu != ctx.hardware.gpu.id else None
        roles[role] = RoleEstimate(worker=w, gpu=gpu, memory=memory_estimate(ctx, w, mem))
    bad = [f"{r}: {e.memory.overflow.message}" for r, e in roles.items() if e.memory.overflow]
    perf, role_perf = disagg_perf(ctx, plan, roles) if not bad else (None, {})
    roles = {r: e.model_copy(update={"perf": role_perf.get(r)}) for r, e in roles.items()}
    prov = {"memory": "servewise memory model"}
    if perf:
        prov["perf"] = perf.provenance
    return Estimate(feasible=not bad, reason="; ".join(bad) or None, mode="disagg", roles=roles, perf=perf,
                    assumptions=assumptions + _perf_assumptions(ctx, plan), provenance=prov, **common)


def _perf_assumptions(ctx: Context, plan: AggPlan | DisaggPlan) -> list[str]:
    ld = ctx.profile.workload.load
    if ld.request_rate is not None:
        load = f"open loop at {ld.request_rate:g} requests/s (Poisson arrivals)"
    elif ld.max_throughput:
        load = "offline: the batch is the largest the KV cache holds, kept full"
    else:
        load = (f"closed loop at {ld.concurrency} concurrent requests (all sent at once, then one per finished "
                "request), fixed input/output lengths, TTFT including queueing")
    return [f"performance: {load}; engine step budget and batch limits as planned; no prefix caching, no "
            "speculative decoding"]


def _assumptions(ctx: Context) -> list[str]:
    p = ctx.profile
    quant = quantization_note(ctx.model, ctx.engine_name, ctx.engine)
    return [f"weights {ctx.model.weights.name} ({ctx.model.source}), KV cache {p.model.kv_cache_dtype}",
            *([quant] if quant else []),
            f"{ctx.engine_name} {ctx.engine.version}: {ctx.engine.memory_knob.flag} is a fraction of "
            f"{'total memory' if ctx.engine.memory_knob.of == 'total' else 'the memory free after loading'}",
            f"GPU memory {ctx.hardware.memory_bytes / 1024**3:.2f} GiB per GPU (CUDA-visible)"]


def plan(profile: Profile) -> PlanResult:
    """Choose a configuration for ``profile``'s inputs (aggregated: the smallest TP that holds the
    workload's concurrency; replicas fill the GPUs)."""
    ctx = build_context(profile)
    hw, wl = ctx.hardware, profile.workload
    seq_tokens = wl.isl + wl.osl
    conc = wl.load.concurrency or 1
    fraction = default_memory_fraction(ctx)
    tried: list[str] = []
    chosen = None
    tps = [t for t in (1, 2, 4, 8, 16) if t <= min(hw.gpus_per_node, hw.total_gpus)]
    for tp in tps:
        if ctx.model.arch.num_attention_heads % tp:
            continue
        replicas = hw.total_gpus // tp
        seqs = max(1, math.ceil(conc / replicas))
        worker = Worker(tp=tp, max_num_seqs=seqs, max_num_batched_tokens=max(DEFAULT_MAX_NUM_BATCHED_TOKENS, 1),
                        gpu_memory_utilization=fraction)
        m = memory_estimate(ctx, worker)
        if m.feasible and m.kv_cache_tokens >= seqs * seq_tokens:
            chosen = AggPlan(replicas=replicas, worker=worker)
            break
        tried.append(f"TP{tp}: " + (m.overflow.message if m.overflow else
                                    f"KV cache holds {m.kv_cache_tokens} tokens, {seqs} x {seq_tokens} needed"))
    common = dict(model=ctx.model.id, gpu=hw.gpu.id, engine=ctx.engine_name, engine_version=ctx.engine.version,
                  gpus=hw.total_gpus, max_model_len=ctx.max_model_len, objective=profile.search.objective)
    if chosen is None:
        return PlanResult(feasible=False, reason="no tensor-parallel size fits: " + "; ".join(tried), **common)
    est = estimate_in_context(ctx, chosen)
    cand = Candidate(mode="agg", plan=chosen, gpus_used=chosen.gpus, meets_sla=True, score=0.0)
    return PlanResult(feasible=True, chosen=cand, best={"agg": cand}, candidates={"agg": [cand]},
                      chosen_estimate=est, assumptions=est.assumptions, **common)
