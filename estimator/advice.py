"""What would make a plan feasible when nothing meets the SLA: each suggestion is a concrete change to the
inputs, and each is checked by running the search again with that change (the search is vectorised, so
a re-run costs a fraction of a second).

Tried in order, each on its own:
- the smallest TTFT target (TPOT kept) and the smallest TPOT target (TTFT kept) some candidate meets; when
  neither alone suffices, both, for the candidate that misses by the least;
- more GPUs: whole nodes, doubling up to ``MAX_GPU_FACTOR`` x the budget (stopping when a doubling
  brings the nearest candidate that fits no closer to the SLA; while nothing fits, doubling goes on),
  then the smallest node count between the last failure and the first success;
- FP8 weights (a 16-bit checkpoint quantized online, where the engine does it and the GPU has FP8), and
  an FP8 KV cache;
- a shorter max_model_len (when memory is what fails): halving down to ISL + OSL, then the largest
  multiple of 1,024 tokens between the last failure and the first success.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from servewise.estimator.context import Context, build_context
from servewise.estimator.results import Advice, Candidate
from servewise.estimator.search import SearchOptions, SearchOutcome, Sla, run_search, shortfall
from servewise.perfdata.errors import ServewiseError
from servewise.profiles.store import profile_from_dict

MAX_GPU_FACTOR = 8
MAX_GPUS = 4096
NO_GAIN = 0.02          # a doubling of the GPUs that brings the nearest candidate < 2% closer ends the search


def nice_up(x: float) -> float:
    """Round up to two significant figures (347.2 -> 350, 14.3 -> 15, 1.234 -> 1.3)."""
    if x <= 0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return round(math.ceil(x / step - 1e-9) * step, 10)


def _best(ctx: Context, outcome: SearchOutcome) -> Candidate | None:
    """What ``plan`` would choose from this outcome."""
    from servewise.estimator.planning import candidate, choose

    price = ctx.profile.search.gpu_hour_usd
    best = {m: candidate(ctx, r, int(r.best), price) if r.best is not None else None
            for m, r in outcome.ranked.items()}
    return choose(best)


def _describe(c: Candidate) -> str:
    """'aggregated 1 x TP8 on 8 GPUs: 176.2 output tokens/s per GPU, TTFT 296 ms, TPOT 8.1 ms'."""
    from servewise.estimator.planning import MODE_NAMES

    p = c.plan
    if p.mode == "agg":
        shape = f"{p.replicas} x {_par(p.worker)}"
    else:
        shape = f"{p.prefill.workers} x {_par(p.prefill)} prefill + {p.decode.workers} x {_par(p.decode)} decode" + \
            (f", {p.replicas} replicas" if p.replicas > 1 else "")
    gpus = f"{c.gpus_used} GPU{'s' if c.gpus_used > 1 else ''}"
    return (f"{MODE_NAMES[c.mode]} {shape} on {gpus}: {c.output_tokens_per_s_per_gpu_charged:,.1f} output tokens/s "
            f"per GPU, TTFT {_fmt(c.ttft_ms_at_percentile)} ms, TPOT {_fmt(c.tpot_ms_at_percentile)} ms")


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _par(w) -> str:  # type: ignore[no-untyped-def]
    return "TP" + str(w.tp) + "".join(f" {n}{v}" for n, v in (("PP", w.pp), ("DP", w.dp), ("EP", w.ep)) if v > 1)


def _with(ctx: Context, edit: Callable[[dict], None]) -> Context | None:
    doc = ctx.profile.model_dump(mode="json")
    doc["plan"] = None
    edit(doc)
    try:
        return build_context(profile_from_dict(doc, path="advice"))
    except ServewiseError:
        return None


def _try(ctx: Context | None, opts: SearchOptions, sla: Sla | None = None) -> tuple[Context, Candidate] | None:
    return _search(ctx, opts, sla)[0]


def _search(ctx: Context | None, opts: SearchOptions, sla: Sla | None = None
            ) -> tuple[tuple[Context, Candidate] | None, float]:
    """(the plan's choice with this change, or None; the smallest SLA shortfall of anything that fits)."""
    if ctx is None:
        return None, math.inf
    out = run_search(ctx, opts, sla)
    best = _best(ctx, out)
    return ((ctx, best) if best is not None else None), nearest(out)


def nearest(outcome: SearchOutcome) -> float:
    """The smallest factor by which a candidate that fits misses the SLA (1 = meets it; inf: none fits)."""
    return min((float(shortfall(r, outcome.sla).min()) for r in outcome.ranked.values() if len(r.table)),
               default=math.inf)


def relaxations(ctx: Context, outcome: SearchOutcome, opts: SearchOptions) -> list[Advice]:
    s = outcome.sla
    out: list[Advice] = []
    ttft = [r.ttft_stat[r.tpot_ok] for r in outcome.ranked.values()]
    tpot = [r.tpot_stat[r.ttft_ok] for r in outcome.ranked.values()]
    t_min = min((float(x.min()) for x in ttft if len(x)), default=math.inf)
    p_min = min((float(x.min()) for x in tpot if len(x)), default=math.inf)
    found = False
    if s.ttft_s is not None and math.isfinite(t_min):
        ms = nice_up(t_min * 1e3)
        hit = _try(ctx, opts, s.relaxed(ttft_s=ms / 1e3))
        if hit:
            found = True
            out.append(Advice(kind="relax_ttft", value=ms, change={"sla.ttft_ms": ms}, best=hit[1],
                              message=f"a TTFT target of {ms:g} ms (from {s.ttft_s * 1e3:g}) is met by "
                                      f"{_describe(hit[1])}"))
    if s.tpot_s is not None and math.isfinite(p_min):
        ms = nice_up(p_min * 1e3)
        hit = _try(ctx, opts, s.relaxed(tpot_s=ms / 1e3))
        if hit:
            found = True
            out.append(Advice(kind="relax_tpot", value=ms, change={"sla.tpot_ms": ms}, best=hit[1],
                              message=f"a TPOT target of {ms:g} ms (from {s.tpot_s * 1e3:g}) is met by "
                                      f"{_describe(hit[1])}"))
    if not found and s.ttft_s is not None and s.tpot_s is not None:
        both = _both(outcome)
        if both is not None:
            t_ms, p_ms = nice_up(both[0] * 1e3), nice_up(both[1] * 1e3)
            hit = _try(ctx, opts, s.relaxed(ttft_s=max(t_ms / 1e3, s.ttft_s), tpot_s=max(p_ms / 1e3, s.tpot_s)))
            if hit:
                out.append(Advice(kind="relax_sla", change={"sla.ttft_ms": t_ms, "sla.tpot_ms": p_ms}, best=hit[1],
                                  message=f"TTFT {t_ms:g} ms and TPOT {p_ms:g} ms together are met by "
                                          f"{_describe(hit[1])}"))
    return out


def _both(outcome: SearchOutcome) -> tuple[float, float] | None:
    """(TTFT, TPOT) statistics of the candidate that misses both targets by the smallest ratio."""
    s = outcome.sla
    best, pick = math.inf, None
    for r in outcome.ranked.values():
        ok = r.table["ok"]
        if not ok.any():
            continue
        worst = np.maximum(r.ttft_stat / s.ttft_s, r.tpot_stat / s.tpot_s)  # type: ignore[operator]
        worst = np.where(ok & np.isfinite(worst), worst, math.inf)
        i = int(np.argmin(worst))
        if worst[i] < best:
            best, pick = float(worst[i]), (float(r.ttft_stat[i]), float(r.tpot_stat[i]))
    return pick


def more_gpus(ctx: Context, opts: SearchOptions, shortfall_now: float) -> Advice | None:
    """Doubling the GPUs stops early once a doubling brings no candidate closer to the SLA (more
    replicas cannot lower the latency of one, and TP stops at the node)."""
    hw = ctx.profile.hardware
    per_node = hw.gpus_per_node
    full = max(per_node, ctx.hardware.gpu.gpus_per_node)

    def sized(total: int) -> Context | None:
        def edit(doc: dict) -> None:
            n = min(total, full)
            doc["hardware"]["gpus_per_node"] = n
            doc["hardware"]["nodes"] = max(1, total // n)
        return _with(ctx, edit)

    total = hw.total_gpus
    tried, hit = total, None
    prev = shortfall_now
    while hit is None and tried < min(total * MAX_GPU_FACTOR, MAX_GPUS):
        lo, tried = tried, tried * 2
        hit, short = _search(sized(tried), opts)
        # Nothing fitting on either count measures no progress: the weights per GPU still shrink, so keep doubling.
        if hit is None and math.isfinite(prev) and short >= prev * (1.0 - NO_GAIN):
            return None
        prev = short
    if hit is None:
        return None
    step = min(tried, full)
    while tried - lo > step:       # smallest whole-node count that works
        mid = lo + ((tried - lo) // 2 // step) * step
        if mid <= lo:
            break
        got = _try(sized(mid), opts)
        if got:
            tried, hit = mid, got
        else:
            lo = mid
    used = hit[1].gpus_used
    if used < tried and (used <= full or used % full == 0) and used > total:
        fewer = _try(sized(used), opts)          # the chosen candidate may need fewer GPUs than the step
        if fewer:
            tried, hit = used, fewer
    c, best = hit
    nodes = c.hardware.nodes
    return Advice(kind="more_gpus", value=tried, change={"hardware.gpus_per_node": c.hardware.gpus_per_node, "hardware.nodes": nodes}, best=best,
                  message=f"{tried} x {c.hardware.gpu.id}" + (f" ({nodes} nodes of {c.hardware.gpus_per_node})"
                                                              if nodes > 1 else "") + f" would meet it: {_describe(best)}")


def fp8_checkpoint(ctx: Context) -> str | None:
    """A catalog FP8 checkpoint of this model (``base_model``), for engines that cannot quantize online."""
    from servewise.perfdata.models import all_models

    me = ctx.model.id.lower()
    found = sorted(m.id for m in all_models().values() if m.dtype == "fp8" and (m.base_model or "").lower() == me)
    return found[0] if found else None


def quantize(ctx: Context, opts: SearchOptions) -> list[Advice]:
    out: list[Advice] = []
    if ctx.model.weights.name in ("bf16", "fp16") and ctx.hardware.gpu.fp8_supported:
        if "fp8" in ctx.engine.quantization.online:
            hit = _try(_with(ctx, lambda d: d["model"].update(weights_dtype="fp8")), opts)
            if hit:
                out.append(Advice(kind="quantize_weights", value="fp8", change={"model.weights_dtype": "fp8"},
                                  best=hit[1], message=f"FP8 weights (--weights-dtype fp8, quantized at load) would "
                                                       f"meet it: {_describe(hit[1])}"))
        else:
            ckpt = fp8_checkpoint(ctx)
            hit = _try(_with(ctx, lambda d: d["model"].update(id=ckpt, weights_dtype="auto")), opts) if ckpt else None
            if hit:
                out.append(Advice(kind="quantize_weights", value=ckpt, change={"model.id": ckpt}, best=hit[1],
                                  message=f"the FP8 checkpoint {ckpt} (--model {ckpt}; {ctx.engine_name} does not "
                                          f"quantize at load) would meet it: {_describe(hit[1])}"))
    if ctx.profile.model.kv_cache_dtype in ("auto", "bf16", "fp16") and "fp8" in ctx.engine.kv_cache_dtypes:
        hit = _try(_with(ctx, lambda d: d["model"].update(kv_cache_dtype="fp8")), opts)
        if hit:
            out.append(Advice(kind="quantize_kv", value="fp8", change={"model.kv_cache_dtype": "fp8"}, best=hit[1],
                              message=f"an FP8 KV cache (--kv-cache-dtype fp8) would meet it: "
                                      f"{_describe(hit[1])}"))
    return out


def shorter_context(ctx: Context, opts: SearchOptions) -> Advice | None:
    wl = ctx.profile.workload
    floor = int(math.ceil((wl.isl + wl.osl) / 1024) * 1024)
    cur = ctx.max_model_len

    def sized(n: int) -> Context | None:
        return _with(ctx, lambda d: d["model"].update(max_model_len=n))

    hi, hit = cur, None
    n = cur // 2 // 1024 * 1024
    while n >= floor and hit is None:
        hit = _try(sized(n), opts)
        if hit is None:
            hi, n = n, n // 2 // 1024 * 1024
    if hit is None and floor < hi:
        n, hit = floor, _try(sized(floor), opts)
    if hit is None:
        return None
    good = n
    while hi - good > 1024:        # the largest multiple of 1,024 that still works
        mid = (good + hi) // 2 // 1024 * 1024
        if mid <= good:
            break
        got = _try(sized(mid), opts)
        if got:
            good, hit = mid, got
        else:
            hi = mid
    return Advice(kind="shorter_context", value=good, change={"model.max_model_len": good}, best=hit[1],
                  message=f"--max-model-len {good} (from {cur}) would fit: {_describe(hit[1])}")


def advise(ctx: Context, outcome: SearchOutcome, opts: SearchOptions) -> list[Advice]:
    """Concrete, re-checked changes that would make the plan feasible (module docstring)."""
    if outcome.feasible:
        return []
    fits = any(t["ok"].any() for t in outcome.tables.values())
    out = relaxations(ctx, outcome, opts) if fits else []
    g = more_gpus(ctx, opts, nearest(outcome))
    if g:
        out.append(g)
    out += quantize(ctx, opts)
    if not fits:
        c = shorter_context(ctx, opts)
        if c:
            out.append(c)
    return out
